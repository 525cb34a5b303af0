//! Protection of the GraphQL endpoint against abusive or cross-site requests.
//!
//! Invariants protected here: a browser form cannot post to the API (only JSON is accepted,
//! so a cross-site request must pass CORS preflight); GET never mutates; oversized bodies,
//! deep or wide queries and large batches are refused before they cost anything; password
//! guessing is throttled per e-mail; and none of it takes the server down.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::harness::{TestApp, assert_error_code, data, first_error, pretty};

async fn body_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("read the body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("not JSON ({status}, {error}): {text}"));
    (status, body)
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let mut app = TestApp::spawn().await;
    let padding = "x".repeat(1024 * 1024 + 1024);
    let body =
        json!({"query": "query($pad: String) { __typename }", "variables": {"pad": padding}})
            .to_string();

    // Declared by Content-Length: refused from the headers alone.
    let (declared, response) = app
        .raw_http(
            &format!(
                "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
                body.len()
            ),
            body.clone().into_bytes(),
        )
        .await;
    assert_eq!(
        declared,
        413,
        "{}",
        response.chars().take(500).collect::<String>()
    );

    // Streamed in chunks with no length up front: refused once the limit is crossed.
    let mut chunked = Vec::new();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        chunked.extend(chunk);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let (streamed, response) = app
        .raw_http(
            "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
            chunked,
        )
        .await;
    assert_eq!(
        streamed,
        413,
        "{}",
        response.chars().take(500).collect::<String>()
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_body_under_the_limit_is_served() {
    let app = TestApp::spawn().await;
    // A comment pads the document without changing what it asks.
    let query = format!("# {}\n{{ __typename }}", "x".repeat(512 * 1024));

    let response = app.gql(&query, json!({})).await;

    assert_eq!(data(&response)["__typename"], "Query");
}

/// Forms and `text/plain` are what a cross-site page can post without a preflight.
#[tokio::test]
async fn a_post_that_is_not_json_is_415() {
    let mut app = TestApp::spawn().await;
    let query = r#"{"query":"{ __typename }"}"#;

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .http()
            .post(app.url("/graphql"))
            .header(CONTENT_TYPE, content_type)
            .body(query)
            .send()
            .await
            .expect("POST /graphql");
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    app.assert_healthy().await;
}

#[tokio::test]
async fn malformed_json_is_400_with_a_coded_error() {
    let mut app = TestApp::spawn().await;

    let response = app
        .http()
        .post(app.url("/graphql"))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"query": "{ __typename }""#)
        .send()
        .await
        .expect("POST /graphql");

    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", pretty(&body));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT",
        "{}",
        pretty(&body)
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_query_over_get_works() {
    let app = TestApp::spawn().await;
    let mut url = reqwest::Url::parse(&app.url("/graphql")).expect("a URL");
    url.query_pairs_mut().append_pair("query", "{ __typename }");

    let response = app
        .http()
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("GET /graphql");

    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(data(&body)["__typename"], "Query");
}

/// GET requests are not protected against cross-site use, so they must never change state.
#[tokio::test]
async fn a_mutation_over_get_is_405() {
    let mut app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.com", "Ada").await;
    let mut url = reqwest::Url::parse(&app.url("/graphql")).expect("a URL");
    url.query_pairs_mut().append_pair(
        "query",
        r#"mutation { createWorkspace(input: {name: "via GET"}) { id } }"#,
    );

    let response = app
        .http()
        .get(url)
        .header(ACCEPT, "application/json")
        .bearer_auth(&session.access_token)
        .send()
        .await
        .expect("GET /graphql");

    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A mutation picked out of a mixed document by its operation name (in the standard
    // spelling and in async-graphql's), and a subscription: none may run over GET.
    let mixed =
        r#"query Q { __typename } mutation M { createWorkspace(input: {name: "via GET"}) { id } }"#;
    for params in [
        vec![("query", mixed), ("operationName", "M")],
        vec![("query", mixed), ("operation_name", "M")],
        vec![(
            "query",
            "subscription { workflowEvents(workspaceId: \"x\") { kind } }",
        )],
    ] {
        let mut url = reqwest::Url::parse(&app.url("/graphql")).expect("a URL");
        url.query_pairs_mut().extend_pairs(&params);
        let response = app
            .http()
            .get(url)
            .header(ACCEPT, "application/json")
            .bearer_auth(&session.access_token)
            .send()
            .await
            .expect("GET /graphql");
        let (status, body) = body_json(response).await;
        let refused = status == StatusCode::METHOD_NOT_ALLOWED
            || (body["data"].is_null() && !crate::harness::errors(&body).is_empty());
        assert!(refused, "{params:?}: {status} {}", pretty(&body));
    }
    let viewer = app
        .gql_as(
            &session.access_token,
            "{ viewer { workspaces { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&viewer)["viewer"]["workspaces"],
        json!([]),
        "the GET created a workspace"
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_query_deeper_than_the_limit_is_refused() {
    let mut app = TestApp::spawn().await;
    // Introspection's `ofType` nests without bound: 25 levels is well past the default 15.
    let mut selection = "name".to_owned();
    for _ in 0..25 {
        selection = format!("ofType {{ {selection} }}");
    }
    let query = format!("{{ __schema {{ types {{ fields {{ type {{ {selection} }} }} }} }} }}");

    let response = app.gql(&query, json!({})).await;

    assert_error_code(&response, "BAD_USER_INPUT");
    assert!(response["data"].is_null(), "{}", pretty(&response));
    let message = first_error(&response)["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains("deep") || message.contains("depth"),
        "{message}"
    );
    app.assert_healthy().await;
}

/// Fragments that each spread the next one twice expand to 2^20 fields from a few hundred
/// bytes: the server must refuse such a document without expanding it.
#[tokio::test]
async fn a_fragment_bomb_is_refused_quickly() {
    let mut app = TestApp::spawn().await;
    let levels = 20;
    let mut document = String::from("query { ...F0 }\n");
    for level in 0..levels {
        let next = level + 1;
        document.push_str(&format!(
            "fragment F{level} on Query {{ ...F{next} ...F{next} }}\n"
        ));
    }
    document.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));

    let response = app.gql(&document, json!({})).await;

    // The refusal must come from the size check that runs before validation: validation
    // and complexity analysis would expand all 2^20 spreads first, which is the attack.
    assert_error_code(&response, "BAD_USER_INPUT");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("expands to more than"), "{message}");
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_query_over_the_complexity_limit_is_refused() {
    let mut app = TestApp::spawn().await;
    // No aliases and shallow: only the field count (complexity) is over the default 2000.
    // (`__typename` costs nothing, so real fields; unauthenticated, so only a refusal
    // before execution can produce BAD_USER_INPUT here.)
    let query = format!("{{ {} }}", vec!["viewer { user { id } }"; 700].join(" "));

    let response = app.gql(&query, json!({})).await;

    assert_error_code(&response, "BAD_USER_INPUT");
    assert!(response["data"].is_null(), "{}", pretty(&response));
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_hundred_aliases_are_refused() {
    let mut app = TestApp::spawn().await;
    let aliases: Vec<String> = (0..100).map(|n| format!("a{n}: __typename")).collect();
    let query = format!("{{ {} }}", aliases.join(" "));

    let response = app.gql(&query, json!({})).await;

    assert_error_code(&response, "BAD_USER_INPUT");
    assert!(response["data"].is_null(), "{}", pretty(&response));
    let message = first_error(&response)["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(message.contains("alias"), "{message}");
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_batch_over_the_limit_is_400() {
    let mut app = TestApp::spawn().await;
    let batch: Vec<Value> = (0..50)
        .map(|_| json!({"query": "{ __typename }"}))
        .collect();

    let response = app.post_graphql(None, &Value::Array(batch)).await;

    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", pretty(&body));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT",
        "{}",
        pretty(&body)
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_small_batch_is_answered_in_order() {
    let app = TestApp::spawn().await;
    let batch = json!([
        {"query": "{ __typename }"},
        {"query": "query Named { t: __typename }", "operationName": "Named"}
    ]);

    let response = app.post_graphql(None, &batch).await;

    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{}", pretty(&body));
    let answers = body
        .as_array()
        .unwrap_or_else(|| panic!("a batch answer is an array: {}", pretty(&body)));
    assert_eq!(answers.len(), 2);
    assert_eq!(data(&answers[0])["__typename"], "Query");
    assert_eq!(data(&answers[1])["t"], "Query");
}

/// Online password guessing is bounded per e-mail, and the client is told when to retry.
#[tokio::test]
async fn repeated_failed_log_ins_for_one_email_are_rate_limited() {
    let mut app = TestApp::builder()
        .env("AOS_AUTH_ATTEMPTS_PER_MINUTE", "3")
        .spawn()
        .await;

    for attempt in 1..=3 {
        let response = app
            .log_in("target@example.com", &format!("guess {attempt}"))
            .await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
    let fourth = app.log_in("target@example.com", "guess 4").await;
    let other_email = app.log_in("someone-else@example.com", "guess").await;

    assert_error_code(&fourth, "RATE_LIMITED");
    let retry_after_ms = first_error(&fourth)["extensions"]["retryAfterMs"]
        .as_f64()
        .unwrap_or_default();
    assert!(
        retry_after_ms > 0.0,
        "retryAfterMs must be positive: {}",
        pretty(&fourth)
    );
    assert_error_code(&other_email, "UNAUTHENTICATED");
    app.assert_healthy().await;
}

/// Spreading guesses over many e-mail addresses does not escape the limit: one client
/// address gets ten times the per-address allowance, then is refused.
#[tokio::test]
async fn log_ins_from_one_client_address_are_rate_limited_across_emails() {
    let mut app = TestApp::builder()
        .env("AOS_AUTH_ATTEMPTS_PER_MINUTE", "2")
        .spawn()
        .await;

    for attempt in 1..=20 {
        let response = app
            .log_in(&format!("target{attempt}@example.com"), "guess")
            .await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
    let over = app.log_in("target21@example.com", "guess").await;

    assert_error_code(&over, "RATE_LIMITED");
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_browser_gets_graphiql() {
    let app = TestApp::spawn().await;

    let response = app
        .http()
        .get(app.url("/graphql"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("GET /graphql");

    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("the page");
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
}

/// Every error, including those the server makes before GraphQL runs, carries a code.
#[tokio::test]
async fn errors_of_the_query_itself_carry_a_code() {
    let mut app = TestApp::spawn().await;

    for query in [
        "{ nope }",
        "{ viewer { ",
        "query { __typename } query { __typename }",
    ] {
        let response = app.gql(query, json!({})).await;
        assert_error_code(&response, "BAD_USER_INPUT");
    }
    app.assert_healthy().await;
}

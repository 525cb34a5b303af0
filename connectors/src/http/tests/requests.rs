//! What goes on the wire: method, query, headers, body, idempotency key; and the limits
//! (timeouts, redirects) that bound a request. Wiremock listens on loopback, so these run
//! with private addresses allowed.

use std::time::Duration;

use aos_domain::workflow::node_types::HttpMethod;
use serde_json::json;
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{client, get, permissive_policy, request_count};
use crate::http::{HttpError, HttpPolicy, OutgoingRequest};

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn get_appends_query_to_the_urls_own_and_sends_headers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/search"))
        .and(query_param("fixed", "1"))
        .and(query_param("q", "rust & tokio"))
        .and(query_param("page", "2"))
        .and(header("x-custom", "yes"))
        .and(header("user-agent", "aos-test/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"found": 3})))
        .expect(1)
        .mount(&server)
        .await;
    let http = client(HttpPolicy {
        user_agent: "aos-test/1".to_owned(),
        ..permissive_policy()
    });

    let response = http
        .send(OutgoingRequest {
            query: headers(&[("q", "rust & tokio"), ("page", "2")]),
            headers: headers(&[("X-Custom", "yes")]),
            ..OutgoingRequest::new(HttpMethod::Get, format!("{}/search?fixed=1", server.uri()))
        })
        .await
        .expect("the request succeeds");

    assert_eq!(response.status, 200);
    assert_eq!(response.body, json!({"found": 3}));
}

#[tokio::test]
async fn json_body_is_sent_as_json_and_echoed_back() {
    let server = MockServer::start().await;
    let payload = json!({"name": "Ada", "tags": ["a", "b"], "n": 2});
    Mock::given(method("POST"))
        .and(path("/echo"))
        .and(header("content-type", "application/json"))
        .and(body_json(&payload))
        .respond_with(ResponseTemplate::new(201).set_body_json(&payload))
        .expect(1)
        .mount(&server)
        .await;

    let response = client(permissive_policy())
        .send(OutgoingRequest {
            body: Some(payload.clone()),
            ..OutgoingRequest::new(HttpMethod::Post, format!("{}/echo", server.uri()))
        })
        .await
        .expect("the request succeeds");

    assert_eq!(response.status, 201);
    assert_eq!(response.body, payload);
}

#[tokio::test]
async fn string_body_is_sent_as_text() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("content-type", "text/plain; charset=utf-8"))
        .and(body_string("plain words"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let response = client(permissive_policy())
        .send(OutgoingRequest {
            body: Some(json!("plain words")),
            ..OutgoingRequest::new(HttpMethod::Put, server.uri())
        })
        .await
        .expect("the request succeeds");

    assert_eq!(response.status, 204);
}

#[tokio::test]
async fn authors_content_type_wins_over_the_default() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(header("content-type", "application/merge-patch+json"))
        .and(body_json(json!({"a": null})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let response = client(permissive_policy())
        .send(OutgoingRequest {
            headers: headers(&[("Content-Type", "application/merge-patch+json")]),
            body: Some(json!({"a": null})),
            ..OutgoingRequest::new(HttpMethod::Patch, server.uri())
        })
        .await
        .expect("the request succeeds");

    assert_eq!(response.status, 200);
    let received = server.received_requests().await.expect("recording is on");
    assert_eq!(
        received[0].headers.get_all("content-type").iter().count(),
        1
    );
}

#[tokio::test]
async fn idempotency_key_is_sent_unless_the_author_set_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let http = client(permissive_policy());
    let with_key = |extra: &[(&str, &str)]| OutgoingRequest {
        headers: headers(extra),
        idempotency_key: Some("run-7:call:1".to_owned()),
        body: Some(json!({})),
        ..OutgoingRequest::new(HttpMethod::Post, server.uri())
    };

    http.send(with_key(&[]))
        .await
        .expect("the request succeeds");
    http.send(with_key(&[("Idempotency-Key", "authors-own")]))
        .await
        .expect("the request succeeds");

    let received = server.received_requests().await.expect("recording is on");
    let keys: Vec<Vec<&str>> = received
        .iter()
        .map(|request| {
            request
                .headers
                .get_all("idempotency-key")
                .iter()
                .map(|value| value.to_str().expect("ASCII"))
                .collect()
        })
        .collect();
    assert_eq!(keys, vec![vec!["run-7:call:1"], vec!["authors-own"]]);
}

#[tokio::test]
async fn redirects_are_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved here"))
        .mount(&server)
        .await;

    let response = get(
        &client(permissive_policy()),
        &format!("{}/old", server.uri()),
    )
    .await
    .expect("the redirect is followed");

    assert_eq!(response.status, 200);
    assert_eq!(response.body, "moved here");
}

#[tokio::test]
async fn too_many_redirects_stop_at_the_limit() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    let http = client(HttpPolicy {
        max_redirects: 3,
        ..permissive_policy()
    });

    let result = get(&http, &format!("{}/loop", server.uri())).await;

    assert!(matches!(result, Err(HttpError::Redirect(_))), "{result:?}");
    // The original request and three followed redirects.
    assert_eq!(request_count(&server).await, 4);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let http = client(HttpPolicy {
        total_timeout: Duration::from_millis(200),
        ..permissive_policy()
    });

    let error = get(&http, &server.uri()).await.expect_err("it times out");

    assert_eq!(error, HttpError::Timeout);
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_request_timeout_overrides_the_policy() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;

    let result = client(permissive_policy())
        .send(OutgoingRequest {
            timeout: Some(Duration::from_millis(200)),
            ..OutgoingRequest::new(HttpMethod::Get, server.uri())
        })
        .await;

    assert_eq!(result, Err(HttpError::Timeout));
}

#[tokio::test]
async fn connection_refused_is_a_transient_connect_error_without_the_url() {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);

    let error = get(
        &client(permissive_policy()),
        &format!("http://127.0.0.1:{port}/x?api_key=s3cret"),
    )
    .await
    .expect_err("nothing listens");

    assert!(matches!(error, HttpError::Connect(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[tokio::test]
async fn header_errors_never_echo_the_value() {
    let http = client(permissive_policy());
    let cases = [
        ("Authorization", "Bearer s3cret\r\nX-Injected: 1"),
        ("Bad Name", "s3cret"),
        ("Host", "s3cret.internal"),
        ("Transfer-Encoding", "chunked"),
    ];
    for (name, value) in cases {
        let error = http
            .send(OutgoingRequest {
                headers: headers(&[(name, value)]),
                ..OutgoingRequest::new(HttpMethod::Get, "https://example.com/")
            })
            .await
            .expect_err("the header is refused before sending");
        assert!(
            matches!(error, HttpError::InvalidHeader { .. }),
            "{name}: {error:?}"
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!error.is_transient());
    }
}

#[tokio::test]
async fn an_unparseable_url_is_invalid() {
    let http = client(permissive_policy());
    for url in ["", "not a url", "/relative/path", "http://", "http://[::1/"] {
        let result = get(&http, url).await;
        assert!(
            matches!(result, Err(HttpError::InvalidUrl(_))),
            "{url:?}: {result:?}"
        );
    }
}

#[test]
fn debug_output_hides_header_values_query_and_user_info() {
    let request = OutgoingRequest {
        headers: headers(&[("Authorization", "Bearer s3cret-1")]),
        query: headers(&[("token", "s3cret-2")]),
        body: Some(json!({"password": "s3cret-3"})),
        ..OutgoingRequest::new(
            HttpMethod::Post,
            "https://user:s3cret-4@example.com/p?key=s3cret-5",
        )
    };

    let debug = format!("{request:?}");

    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("example.com/p"), "{debug}");
    assert!(debug.contains("Authorization"), "{debug}");
}

//! The exchanges against a local fake authorization server: what each grant sends, how
//! the client authenticates, that PKCE is S256 of the verifier, and that failures show no
//! secret and follow no redirect.

use std::collections::HashMap;

use aos_domain::oauth::OAuth2Grant;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{client_at, flows, issued_at};
use crate::http::HttpError;
use crate::oauth::OAuthError;

const REDIRECT: &str = "https://aos.example.com/oauth/callback";

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The client id and secret of an HTTP Basic header, each form-urlencoded first as
/// RFC 6749 §2.3.1 asks.
fn basic_auth(request: &Request) -> Option<(String, String)> {
    let header = request.headers.get("authorization")?.to_str().ok()?;
    let decoded = STANDARD.decode(header.strip_prefix("Basic ")?).ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

async fn token_server(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn token_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "acc-1", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "ref-1", "scope": "read"
    }))
}

#[test]
fn the_authorization_url_asks_for_a_code_with_an_s256_challenge_and_a_256_bit_state() {
    let client = client_at("https://auth.example.com");

    let first = flows(true)
        .authorization_request(&client, REDIRECT)
        .expect("an authorization URL");
    let second = flows(true)
        .authorization_request(&client, REDIRECT)
        .expect("an authorization URL");

    let url = url::Url::parse(&first.url).expect("a URL");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/authorize");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], "client one");
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["scope"], "read write:all");
    assert_eq!(query["state"], first.state);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(&first.state)
            .map(|bytes| bytes.len()),
        Ok(32)
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["code_challenge"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(first.pkce_verifier.as_bytes()))
    );
    assert!(
        !first.url.contains(&first.pkce_verifier),
        "the verifier stays here"
    );
    assert!(
        !first.url.contains("s3cret"),
        "the client secret stays here"
    );
    assert_ne!(first.state, second.state);
    assert_ne!(first.pkce_verifier, second.pkce_verifier);
    assert!(!format!("{first:?}").contains(&first.state));
}

#[tokio::test]
async fn a_code_is_exchanged_with_its_verifier_and_the_client_authenticated_by_basic_auth() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());

    let token = flows(true)
        .exchange_code(&client, REDIRECT, "the-code", "the-verifier")
        .await
        .expect("a token");

    assert_eq!(token.access_token, "acc-1");
    assert_eq!(token.refresh_token.as_deref(), Some("ref-1"));
    assert_eq!(token.expires_in, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(token.scopes, Some(vec!["read".to_owned()]));
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let body = form(&sent[0]);
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "the-code");
    assert_eq!(body["code_verifier"], "the-verifier");
    assert_eq!(body["redirect_uri"], REDIRECT);
    assert!(
        !body.contains_key("client_secret"),
        "the secret goes in the header"
    );
    assert_eq!(
        basic_auth(&sent[0]),
        Some(("client one".to_owned(), "s3cret:/+=".to_owned()))
    );
}

#[tokio::test]
async fn a_public_client_names_itself_in_the_body_and_sends_no_secret() {
    let server = token_server(token_answer()).await;
    let mut client = client_at(&server.uri());
    client.client_secret = String::new();

    flows(true)
        .exchange_code(&client, REDIRECT, "the-code", "the-verifier")
        .await
        .expect("a token");

    let sent = requests(&server).await;
    assert!(sent[0].headers.get("authorization").is_none());
    assert_eq!(form(&sent[0])["client_id"], "client one");
}

#[tokio::test]
async fn client_credentials_ask_for_the_scopes_as_the_client_itself() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());

    let token = flows(true)
        .client_credentials(&client)
        .await
        .expect("a token");

    assert_eq!(token.access_token, "acc-1");
    let sent = requests(&server).await;
    let body = form(&sent[0]);
    assert_eq!(body["grant_type"], "client_credentials");
    assert_eq!(body["scope"], "read write:all");
    assert!(basic_auth(&sent[0]).is_some());
}

#[tokio::test]
async fn a_refresh_sends_the_refresh_token_and_a_client_credentials_one_asks_again() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());
    let code_grant = issued_at(&client, OAuth2Grant::AuthorizationCode, Some("ref-0"), 10);
    let client_grant = issued_at(&client, OAuth2Grant::ClientCredentials, None, 10);

    flows(true).refresh(&code_grant).await.expect("refreshed");
    flows(true)
        .refresh(&client_grant)
        .await
        .expect("asked again");

    let sent = requests(&server).await;
    let refresh = form(&sent[0]);
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(refresh["refresh_token"], "ref-0");
    assert_eq!(form(&sent[1])["grant_type"], "client_credentials");
}

#[tokio::test]
async fn a_revoked_grant_is_refused_for_good_and_the_servers_words_are_not_repeated() {
    let server = token_server(ResponseTemplate::new(400).set_body_json(json!({
        "error": "invalid_grant",
        "error_description": "refresh token ref-0 was revoked for s3cret:/+="
    })))
    .await;
    let client = client_at(&server.uri());
    let credentials = issued_at(&client, OAuth2Grant::AuthorizationCode, Some("ref-0"), 10);

    let error = flows(true)
        .refresh(&credentials)
        .await
        .expect_err("refused");

    assert_eq!(
        error,
        OAuthError::Refused {
            code: "invalid_grant".into()
        }
    );
    assert!(error.needs_reauth());
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("ref-0") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[tokio::test]
async fn without_a_refresh_token_an_authorization_code_grant_cannot_refresh() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());
    let credentials = issued_at(&client, OAuth2Grant::AuthorizationCode, None, 10);

    let error = flows(true)
        .refresh(&credentials)
        .await
        .expect_err("refused");

    assert!(error.needs_reauth());
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_server_in_trouble_is_not_a_reason_to_reauthorize() {
    for answer in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(500).set_body_json(json!({"error": "temporarily_unavailable"})),
    ] {
        let server = token_server(answer).await;
        let client = client_at(&server.uri());

        let error = flows(true)
            .client_credentials(&client)
            .await
            .expect_err("failed");

        assert!(!error.needs_reauth(), "{error:?}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_a_token_response_is_not_shown() {
    let server = token_server(
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string(r#"{"access_token": "leaked-acc", "token_type": 7}"#),
    )
    .await;
    let client = client_at(&server.uri());

    let error = flows(true)
        .client_credentials(&client)
        .await
        .expect_err("malformed");

    assert_eq!(error, OAuthError::Malformed);
    assert!(!format!("{error} {error:?}").contains("leaked-acc"));
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/elsewhere", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(token_answer())
        .expect(0)
        .mount(&server)
        .await;
    let client = client_at(&server.uri());

    let error = flows(true)
        .client_credentials(&client)
        .await
        .expect_err("not followed");

    assert!(
        matches!(error, OAuthError::Unreachable(HttpError::Redirect(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn without_http_allow_private_a_loopback_token_url_is_never_reached() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());

    let error = flows(false)
        .client_credentials(&client)
        .await
        .expect_err("refused");

    assert!(
        matches!(error, OAuthError::Unreachable(HttpError::Forbidden { .. })),
        "{error:?}"
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn without_a_revocation_endpoint_nothing_is_sent_to_revoke() {
    let server = token_server(token_answer()).await;
    let client = client_at(&server.uri());
    let credentials = issued_at(&client, OAuth2Grant::AuthorizationCode, Some("ref-0"), 10);

    let revoked = flows(true).revoke(&credentials).await;

    assert_eq!(revoked, Ok(false));
    assert!(requests(&server).await.is_empty());
}

//! Authentication: sign-up, log-in, session rotation and access-token verification.
//!
//! Invariants protected here: only a password proves who a user is; a log-in failure does
//! not reveal whether the e-mail exists; a refresh token is spent once, and spending it twice
//! (a stolen copy in use) revokes its whole family; an access token is accepted only while
//! unexpired and only exactly as the server signed it: no `alg: none`, no edited claims, no
//! other key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestApp, assert_error_code, data, first_error, string_at};

const VIEWER: &str = "{ viewer { user { id email name } workspaces { id } } }";
const REFRESH: &str = "mutation($input: RefreshSessionInput!) { refreshSession(input: $input) { accessToken refreshToken user { id } } }";

async fn refresh(app: &TestApp, refresh_token: &str) -> Value {
    app.gql(REFRESH, json!({"input": {"refreshToken": refresh_token}}))
        .await
}

#[tokio::test]
async fn sign_up_returns_a_working_session() {
    let app = TestApp::spawn().await;

    let session = app.sign_up("ada@example.com", "Ada").await;

    let viewer = app.gql_as(&session.access_token, VIEWER, json!({})).await;
    let user = &data(&viewer)["viewer"]["user"];
    assert_eq!(user["id"], session.user_id.as_str());
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(data(&viewer)["viewer"]["workspaces"], json!([]));
}

#[tokio::test]
async fn sign_up_with_a_taken_email_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.sign_up("ada@example.com", "Ada").await;

    let again = app
        .gql(
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
            json!({"input": {"email": "ada@example.com", "password": PASSWORD, "name": "Other Ada"}}),
        )
        .await;

    assert_error_code(&again, "CONFLICT");
}

#[tokio::test]
async fn sign_up_rejects_a_bad_email_and_a_short_password() {
    let app = TestApp::spawn().await;
    let sign_up = "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }";

    let bad_email = app
        .gql(
            sign_up,
            json!({"input": {"email": "not-an-email", "password": PASSWORD, "name": "X"}}),
        )
        .await;
    let short_password = app
        .gql(
            sign_up,
            json!({"input": {"email": "x@example.com", "password": "short", "name": "X"}}),
        )
        .await;

    assert_error_code(&bad_email, "BAD_USER_INPUT");
    assert_error_code(&short_password, "BAD_USER_INPUT");
    // Neither attempt created an account: the e-mail is still free.
    app.sign_up("x@example.com", "X").await;
}

#[tokio::test]
async fn log_in_with_the_right_password_returns_a_session() {
    let app = TestApp::spawn().await;
    let signed_up = app.sign_up("ada@example.com", "Ada").await;

    let logged_in = app.log_in("ada@example.com", PASSWORD).await;

    let payload = &data(&logged_in)["logIn"];
    assert_eq!(payload["user"]["id"], signed_up.user_id.as_str());
    let viewer = app
        .gql_as(&string_at(&payload["accessToken"]), VIEWER, json!({}))
        .await;
    assert_eq!(data(&viewer)["viewer"]["user"]["email"], "ada@example.com");
}

/// A wrong password and an unknown e-mail are indistinguishable, so log-in cannot be used
/// to find out who has an account.
#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let app = TestApp::spawn().await;
    app.sign_up("ada@example.com", "Ada").await;

    let wrong_password = app.log_in("ada@example.com", "not the password").await;
    let unknown_email = app.log_in("nobody@example.com", PASSWORD).await;

    assert_error_code(&wrong_password, "UNAUTHENTICATED");
    assert_error_code(&unknown_email, "UNAUTHENTICATED");
    assert_eq!(
        first_error(&wrong_password)["message"],
        first_error(&unknown_email)["message"],
        "the messages must not tell the two cases apart"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.com", "Ada").await;

    let rotated = refresh(&app, &session.refresh_token).await;

    let payload = &data(&rotated)["refreshSession"];
    let new_refresh = string_at(&payload["refreshToken"]);
    assert_ne!(
        new_refresh, session.refresh_token,
        "a refresh must issue a new refresh token"
    );
    assert_eq!(payload["user"]["id"], session.user_id.as_str());
    let viewer = app
        .gql_as(&string_at(&payload["accessToken"]), VIEWER, json!({}))
        .await;
    assert_eq!(
        data(&viewer)["viewer"]["user"]["id"],
        session.user_id.as_str()
    );
}

/// Reusing a spent refresh token means two parties hold the family: the server must refuse
/// it and revoke the family, so the newest token (possibly the thief's) stops working too.
#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.com", "Ada").await;
    let rotated = refresh(&app, &session.refresh_token).await;
    let newest = string_at(&data(&rotated)["refreshSession"]["refreshToken"]);

    let reuse = refresh(&app, &session.refresh_token).await;
    let newest_after_reuse = refresh(&app, &newest).await;

    assert_error_code(&reuse, "UNAUTHENTICATED");
    assert_error_code(&newest_after_reuse, "UNAUTHENTICATED");
}

#[tokio::test]
async fn log_out_revokes_the_refresh_token() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.com", "Ada").await;

    let logged_out = app
        .gql(
            "mutation($input: LogOutInput!) { logOut(input: $input) }",
            json!({"input": {"refreshToken": session.refresh_token}}),
        )
        .await;

    assert_eq!(data(&logged_out)["logOut"], true);
    assert_error_code(
        &refresh(&app, &session.refresh_token).await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn a_garbage_refresh_token_is_unauthenticated() {
    let app = TestApp::spawn().await;

    let response = refresh(&app, "not-a-refresh-token").await;

    assert_error_code(&response, "UNAUTHENTICATED");
}

#[tokio::test]
async fn viewer_without_a_token_is_unauthenticated() {
    let app = TestApp::spawn().await;

    assert_error_code(&app.gql(VIEWER, json!({})).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_garbage_bearer_token_is_unauthenticated() {
    let app = TestApp::spawn().await;

    for garbage in ["garbage", "aos_garbage", "a.b.c", ""] {
        let response = app.gql_as(garbage, VIEWER, json!({})).await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn an_expired_access_token_is_unauthenticated() {
    let app = TestApp::builder()
        .env("AOS_ACCESS_TOKEN_TTL_SECS", "1")
        .spawn()
        .await;
    let session = app.sign_up("ada@example.com", "Ada").await;
    data(&app.gql_as(&session.access_token, VIEWER, json!({})).await);

    // exp is whole seconds with no leeway: 2.5 s is past it wherever in a second we signed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = app.gql_as(&session.access_token, VIEWER, json!({})).await;

    assert_error_code(&response, "UNAUTHENTICATED");
}

// ---- forged access tokens ----

/// The three dot-separated parts of a JWT, decoded where they are JSON.
struct JwtParts {
    header: Value,
    claims: Value,
    signature: String,
}

fn split_jwt(token: &str) -> JwtParts {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "an access token is a JWS in compact form: {token}"
    );
    let decode = |part: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
        serde_json::from_slice(&bytes).expect("JSON JWT part")
    };
    JwtParts {
        header: decode(parts[0]),
        claims: decode(parts[1]),
        signature: parts[2].to_owned(),
    }
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Two users: the forger (whose genuine token is the starting point) and the victim.
async fn forger_and_victim(app: &TestApp) -> (crate::harness::Session, crate::harness::Session) {
    let forger = app.sign_up("mallory@example.com", "Mallory").await;
    let victim = app.sign_up("victim@example.com", "Victim").await;
    (forger, victim)
}

#[tokio::test]
async fn a_token_with_alg_none_is_refused() {
    let app = TestApp::spawn().await;
    let (forger, victim) = forger_and_victim(&app).await;
    let genuine = split_jwt(&forger.access_token);
    let mut header = genuine.header.clone();
    header["alg"] = json!("none");
    let mut claims = genuine.claims.clone();
    claims["sub"] = json!(victim.user_id);

    for forged in [
        format!("{}.{}.", encode_part(&header), encode_part(&claims)),
        format!(
            "{}.{}.{}",
            encode_part(&header),
            encode_part(&claims),
            genuine.signature
        ),
    ] {
        let response = app.gql_as(&forged, VIEWER, json!({})).await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn a_token_whose_subject_was_changed_is_refused() {
    let app = TestApp::spawn().await;
    let (forger, victim) = forger_and_victim(&app).await;
    let genuine = split_jwt(&forger.access_token);
    let mut claims = genuine.claims.clone();
    claims["sub"] = json!(victim.user_id);
    let header_part = forger
        .access_token
        .split('.')
        .next()
        .expect("a header part");

    let forged = format!(
        "{header_part}.{}.{}",
        encode_part(&claims),
        genuine.signature
    );
    let response = app.gql_as(&forged, VIEWER, json!({})).await;

    assert_error_code(&response, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let app = TestApp::spawn().await;
    let (forger, victim) = forger_and_victim(&app).await;
    let genuine = split_jwt(&forger.access_token);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = genuine.header["kid"].as_str().map(str::to_owned);
    let mut claims = genuine.claims.clone();
    claims["sub"] = json!(victim.user_id);

    for claims in [genuine.claims.clone(), claims] {
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(
                b"a key the server has never seen, 32+ bytes long",
            ),
        )
        .expect("sign a forged token");
        let response = app.gql_as(&forged, VIEWER, json!({})).await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn a_garbled_or_unsigned_token_is_refused() {
    let app = TestApp::spawn().await;
    let (forger, _) = forger_and_victim(&app).await;
    let token = &forger.access_token;
    let (signed_part, signature) = token.rsplit_once('.').expect("a JWT");
    let mut flipped = signature.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");

    for forged in [
        format!("{signed_part}."),
        signed_part.to_owned(),
        format!("{signed_part}.{flipped}"),
        format!("{token}x"),
        token.chars().rev().collect::<String>(),
    ] {
        let response = app.gql_as(&forged, VIEWER, json!({})).await;
        assert_error_code(&response, "UNAUTHENTICATED");
    }
    // The genuine token still works: the refusals above were about the forgeries.
    data(&app.gql_as(token, VIEWER, json!({})).await);
}

#[tokio::test]
async fn an_expired_refresh_token_is_unauthenticated() {
    let app = TestApp::builder()
        .env("AOS_REFRESH_TOKEN_TTL_SECS", "1")
        .spawn()
        .await;
    let session = app.sign_up("ada@example.com", "Ada").await;

    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_error_code(
        &refresh(&app, &session.refresh_token).await,
        "UNAUTHENTICATED",
    );
}

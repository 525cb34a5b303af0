use base64::Engine;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::connection::{AuthKind, Redactor};

fn client() -> OAuth2Client {
    OAuth2Client {
        client_id: "client-1".into(),
        client_secret: "s3cret/+=".into(),
        token_url: "https://auth.example.com/token".into(),
        authorization_url: Some("https://auth.example.com/authorize".into()),
        revocation_url: None,
        scopes: vec!["read".into(), "write:all".into()],
    }
}

fn issued(access: &str, refresh: Option<&str>, lifetime_secs: Option<u64>) -> IssuedToken {
    IssuedToken {
        access_token: access.into(),
        refresh_token: refresh.map(str::to_owned),
        token_type: "bearer".into(),
        expires_in: lifetime_secs.map(std::time::Duration::from_secs),
        scopes: None,
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0)
        .single()
        .unwrap_or_else(|| unreachable!())
}

#[test]
fn issued_credentials_expire_after_the_lifetime_the_server_gave() {
    let credentials = client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("a1", Some("r1"), Some(3600)),
        at(0),
    );

    assert_eq!(credentials.expires_at, Some(at(3600)));
    assert!(!credentials.expires_within(at(3000), Duration::seconds(60)));
    assert!(credentials.expires_within(at(3541), Duration::seconds(60)));
    assert!(credentials.expires_within(at(4000), Duration::seconds(60)));
    assert_eq!(credentials.scopes, vec!["read", "write:all"]);
}

#[test]
fn a_token_of_unknown_lifetime_is_never_refreshed_ahead() {
    let credentials = client().credentials(
        OAuth2Grant::ClientCredentials,
        &issued("a1", None, None),
        at(0),
    );

    assert_eq!(credentials.expires_at, None);
    assert!(!credentials.expires_within(at(1_000_000), Duration::seconds(60)));
}

#[test]
fn a_refresh_keeps_the_refresh_token_unless_the_server_rotated_it() {
    let first = client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("a1", Some("r1"), Some(60)),
        at(0),
    );

    let kept = first.refreshed(&issued("a2", None, Some(60)), at(50));
    let rotated = kept.refreshed(&issued("a3", Some("r2"), Some(60)), at(100));

    assert_eq!(kept.access_token, "a2");
    assert_eq!(kept.refresh_token.as_deref(), Some("r1"));
    assert_eq!(kept.obtained_at, at(50));
    assert_eq!(rotated.refresh_token.as_deref(), Some("r2"));
    assert_eq!(rotated.expires_at, Some(at(160)));
    assert_eq!(rotated.client_id, "client-1");
}

#[test]
fn only_a_grant_with_a_way_to_renew_can_refresh() {
    let with_refresh = client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("a", Some("r"), None),
        at(0),
    );
    let without = client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("a", None, None),
        at(0),
    );
    let client_credentials = client().credentials(
        OAuth2Grant::ClientCredentials,
        &issued("a", None, None),
        at(0),
    );

    assert!(with_refresh.can_refresh());
    assert!(!without.can_refresh());
    assert!(client_credentials.can_refresh());
}

#[test]
fn sealed_and_opened_credentials_are_the_same_and_never_printed() {
    let credentials = Credentials::OAuth2(client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("acc-tok", Some("ref-tok"), Some(60)),
        at(0),
    ));

    let text = serde_json::to_string(&credentials).unwrap_or_default();
    let back: Credentials = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(back, credentials);
    assert_eq!(back.auth_kind(), AuthKind::OAuth2);
    assert!(text.contains("\"kind\":\"oauth2\""), "{text}");
    let shown = format!("{credentials:?} {:?}", credentials.oauth2());
    for secret in ["acc-tok", "ref-tok", "s3cret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn every_secret_of_an_oauth2_connection_is_redacted_with_its_wire_forms() {
    let credentials = Credentials::OAuth2(client().credentials(
        OAuth2Grant::AuthorizationCode,
        &issued("acc-tok", Some("ref-tok"), Some(60)),
        at(0),
    ));
    let basic = base64::engine::general_purpose::STANDARD.encode("client-1:s3cret%2F%2B%3D");
    let redactor = Redactor::for_credentials(&credentials);

    let text = format!(
        "Bearer acc-tok refresh=ref-tok secret=s3cret/+= form=s3cret%2F%2B%3D Basic {basic}"
    );

    assert_eq!(
        redactor.redact_text(&text),
        "Bearer [REDACTED] refresh=[REDACTED] secret=[REDACTED] form=[REDACTED] Basic [REDACTED]"
    );
}

#[test]
fn a_client_cannot_hand_over_tokens_or_pick_the_authorization_code_grant_here() {
    let cases = [
        json!({"kind": "oauth2", "accessToken": "hunter2", "grant": "clientCredentials"}),
        json!({"kind": "oauth2", "grant": "authorizationCode", "clientId": "c", "clientSecret": "hunter2", "tokenUrl": "https://a.example/t"}),
        json!({"kind": "oauth2", "grant": "clientCredentials", "clientId": "c", "clientSecret": "hunter2", "tokenUrl": "ftp://a.example/t"}),
        json!({"kind": "oauth2", "grant": "clientCredentials", "clientId": "c", "clientSecret": "hunter2", "tokenUrl": "https://a.example/t", "scopes": ["two words"]}),
        json!({"kind": "oauth2", "grant": "clientCredentials", "clientId": "c", "clientSecret": "", "tokenUrl": "https://a.example/t"}),
        json!({"kind": "oauth2", "grant": "clientCredentials", "clientId": "c", "clientSecret": ["hunter2"], "tokenUrl": "https://a.example/t"}),
    ];
    for case in cases {
        let error = ClientCredentialsRequest::parse(&case)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_else(|| panic!("{case} must be refused"));
        assert!(!error.contains("hunter2"), "{error}");
    }
    let generic = Credentials::parse(&json!({"kind": "oauth2", "accessToken": "hunter2"}));
    assert!(generic.is_err_and(|error| error.to_string().contains("startOAuth2Connection")));
}

#[test]
fn the_client_credentials_shape_parses() {
    let raw = json!({"kind": "oauth2", "grant": "clientCredentials", "clientId": "c",
        "clientSecret": "s", "tokenUrl": "https://a.example/token", "scopes": ["x", "y.z"]});

    let parsed = ClientCredentialsRequest::parse(&raw).unwrap_or_else(|e| panic!("{e}"));

    assert!(ClientCredentialsRequest::is_oauth2(&raw));
    assert_eq!(parsed.client.client_id, "c");
    assert_eq!(parsed.client.scopes, vec!["x", "y.z"]);
    assert_eq!(parsed.client.authorization_url, None);
}

#[test]
fn the_authorization_code_grant_needs_an_authorization_url() {
    let mut registration = client();
    assert!(registration.check(OAuth2Grant::AuthorizationCode).is_ok());
    registration.authorization_url = None;
    assert!(registration.check(OAuth2Grant::AuthorizationCode).is_err());
    // A public client proves itself with PKCE alone.
    registration.authorization_url = Some("http://127.0.0.1:9/authorize".into());
    registration.client_secret = String::new();
    assert!(registration.check(OAuth2Grant::AuthorizationCode).is_ok());
}

#[test]
fn a_revocation_url_must_be_https() {
    let mut registration = client();
    registration.revocation_url = Some("http://auth.example.com/revoke".into());
    assert!(registration.check(OAuth2Grant::AuthorizationCode).is_err());
    registration.revocation_url = Some("https://auth.example.com/revoke".into());
    assert!(registration.check(OAuth2Grant::AuthorizationCode).is_ok());
}

#[test]
fn a_refresh_outcome_says_where_the_connection_stands_after_it() {
    let refreshed = RefreshOutcome::Refreshed {
        sealed_credentials: vec![1],
        token_expires_at: None,
    };
    assert_eq!(refreshed.status(), ConnectionStatus::Valid);
    assert_eq!(RefreshOutcome::Released.status(), ConnectionStatus::Valid);
    assert_eq!(
        RefreshOutcome::NeedsReauth.status(),
        ConnectionStatus::NeedsReauth
    );
}

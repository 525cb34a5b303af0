use serde_json::json;

use super::*;

#[test]
fn each_documented_shape_parses() {
    let bearer = Credentials::parse(&json!({"kind": "bearer", "token": "t0k"}));
    assert!(matches!(bearer, Ok(Credentials::Bearer { .. })));
    let api_key = Credentials::parse(
        &json!({"kind": "apiKey", "in": "query", "name": "api_key", "value": "v"}),
    );
    assert!(matches!(
        api_key,
        Ok(Credentials::ApiKey {
            placement: KeyPlacement::Query,
            ..
        })
    ));
    let basic = Credentials::parse(&json!({"kind": "basic", "username": "u", "password": "p"}));
    assert_eq!(basic.map(|c| c.auth_kind()).ok(), Some(AuthKind::Basic));
}

#[test]
fn errors_name_the_field_never_the_value() {
    let cases = [
        json!({"kind": "bearer", "token": "hunter2\nX-Evil: 1"}),
        json!({"kind": "bearer", "token": ["hunter2"]}),
        json!({"kind": "basic", "username": "a:b", "password": "hunter2"}),
        json!({"kind": "apiKey", "in": "header", "name": "bad name", "value": "hunter2"}),
        json!({"kind": "apiKey", "in": "cookie", "name": "k", "value": "hunter2"}),
        json!({"kind": "bearer", "token": "hunter2", "extra": 1}),
        json!({"kind": "magic", "token": "hunter2"}),
        json!("hunter2"),
    ];
    for case in cases {
        let error = Credentials::parse(&case).err().map(|e| e.to_string());
        let message = error.unwrap_or_else(|| panic!("{case} must be refused"));
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn an_empty_token_is_refused() {
    assert!(Credentials::parse(&json!({"kind": "bearer", "token": ""})).is_err());
}

#[test]
fn debug_never_shows_a_secret() {
    let Ok(credentials) = Credentials::parse(&json!({"kind": "bearer", "token": "hunter2"})) else {
        unreachable!()
    };
    assert!(!format!("{credentials:?}").contains("hunter2"));
}

#[test]
fn the_redactor_replaces_values_and_their_wire_forms() {
    let Ok(basic) =
        Credentials::parse(&json!({"kind": "basic", "username": "ann", "password": "s3cr3t pw"}))
    else {
        unreachable!()
    };
    let Ok(key) = Credentials::parse(
        &json!({"kind": "apiKey", "in": "query", "name": "k", "value": "a&b c"}),
    ) else {
        unreachable!()
    };
    let mut redactor = Redactor::for_credentials(&basic);
    redactor.add(&key);
    let mut value = json!({
        "headers": {"authorization": "Basic YW5uOnMzY3IzdCBwdw=="},
        "echo": ["s3cr3t pw", "url?k=a%26b+c"],
        "s3cr3t pw": 1,
        "count": 3
    });
    redactor.redact_value(&mut value);
    assert_eq!(
        value,
        json!({
            "headers": {"authorization": "Basic [REDACTED]"},
            "echo": ["[REDACTED]", "url?k=[REDACTED]"],
            "[REDACTED]": 1,
            "count": 3
        })
    );
    assert_eq!(redactor.redact_text("no secret here"), "no secret here");
}

#[test]
fn statuses_and_kinds_round_trip() {
    for status in [
        ConnectionStatus::Valid,
        ConnectionStatus::Refreshing,
        ConnectionStatus::NeedsReauth,
        ConnectionStatus::Revoked,
    ] {
        assert_eq!(ConnectionStatus::parse(status.as_str()), Some(status));
    }
    for kind in AuthKind::ALL {
        assert_eq!(AuthKind::parse(kind.as_str()), Some(kind));
    }
}

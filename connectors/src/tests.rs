use aos_domain::connection::AuthKind;
use serde_json::json;

use super::*;

#[test]
fn the_http_connector_takes_every_generic_auth_kind() {
    let registry = Registry::builtin();
    for kind in AuthKind::ALL {
        assert_eq!(registry.check_connection("http", kind, &json!({})), Ok(()));
    }
}

#[test]
fn unknown_connectors_and_bad_settings_are_refused_with_the_reason() {
    let registry = Registry::builtin();
    let unknown = registry.check_connection("telepathy", AuthKind::Bearer, &json!({}));
    assert!(unknown.is_err_and(|error| error.contains("unknown connector `telepathy`")));
    let bad_url =
        registry.check_connection("http", AuthKind::Bearer, &json!({"testUrl": "ftp://x"}));
    assert!(bad_url.is_err_and(|error| error.contains("testUrl")));
    let unknown_setting =
        registry.check_connection("http", AuthKind::Bearer, &json!({"colour": "red"}));
    assert!(unknown_setting.is_err_and(|error| error.contains("colour")));
    let not_object = registry.check_connection("http", AuthKind::Bearer, &json!([1]));
    assert!(not_object.is_err());
    let huge = json!({"testUrl": format!("https://example.com/{}", "a".repeat(20_000))});
    assert!(
        registry
            .check_connection("http", AuthKind::Bearer, &huge)
            .is_err()
    );
}

#[test]
fn every_operation_declares_object_schemas() {
    for connector in Registry::builtin().all() {
        let info = connector.info();
        assert!(!info.operations.is_empty(), "{}", info.key);
        for operation in &info.operations {
            assert_eq!(operation.parameters["type"], "object", "{}", operation.key);
        }
    }
}

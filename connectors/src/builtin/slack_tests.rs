//! The `slack` connector against a loopback fake speaking the Slack Web API's shapes:
//! the exact requests it sends, how `ok: false` and HTTP failures are sorted, paging,
//! and that neither the SSRF rules nor the token's secrecy have exceptions here.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{
    bearer_token, body_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::connection::AuthKind;

use super::{MAX_PAGES, SlackConnector};
use crate::builtin::test_support::{Fixture, bearer, client};
use crate::{Connector, ConnectorError, Registry};

const TOKEN: &str = "xoxb-1111-2222-secretvalue";

fn fixture(server: &MockServer) -> Fixture {
    Fixture::new(
        "slack",
        json!({"baseUrl": format!("{}/api", server.uri())}),
        bearer(TOKEN),
    )
}

async fn execute(
    server: &MockServer,
    operation: &str,
    params: Value,
) -> Result<Value, ConnectorError> {
    let fixture = fixture(server);
    SlackConnector::default()
        .execute(&fixture.ctx(), operation, &params)
        .await
}

fn slack_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

fn assert_no_token(error: &ConnectorError) {
    assert!(!error.to_string().contains(TOKEN), "{error}");
}

#[tokio::test]
async fn post_message_sends_slack_json_with_the_bot_token_and_returns_the_posted_message() {
    let server = MockServer::start().await;
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* done"}}]);
    let posted = json!({
        "text": "Deploy done",
        "username": "aos",
        "bot_id": "B123ABC456",
        "type": "message",
        "subtype": "bot_message",
        "ts": "1503435956.000247"
    });
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(bearer_token(TOKEN))
        .and(header("content-type", "application/json; charset=utf-8"))
        .and(body_json(json!({
            "channel": "C123ABC456",
            "text": "Deploy done",
            "blocks": blocks,
            "thread_ts": "1503435900.000100"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channel": "C123ABC456",
            "ts": "1503435956.000247",
            "message": posted
        })))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(
        &server,
        "postMessage",
        json!({
            "channel": "C123ABC456",
            "text": "Deploy done",
            "blocks": blocks,
            "threadTs": "1503435900.000100"
        }),
    )
    .await;

    assert_eq!(
        output,
        Ok(json!({
            "ok": true,
            "channel": "C123ABC456",
            "ts": "1503435956.000247",
            "message": posted
        }))
    );
}

#[tokio::test]
async fn optional_fields_left_out_are_not_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(body_json(json!({"channel": "#general", "text": "hi"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "channel": "C1", "ts": "1.2", "message": {"text": "hi"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(
        &server,
        "postMessage",
        json!({"channel": "#general", "text": "hi", "blocks": null, "threadTs": null}),
    )
    .await;

    assert_eq!(output.map(|output| output["ts"].clone()), Ok(json!("1.2")));
}

#[tokio::test]
async fn ok_false_fails_with_a_message_naming_slacks_error_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slack_error("channel_not_found"))
        .mount(&server)
        .await;

    let error = execute(
        &server,
        "postMessage",
        json!({"channel": "C404", "text": "hi"}),
    )
    .await;

    assert_eq!(
        error,
        Err(ConnectorError::Invalid(
            "Slack refused chat.postMessage: channel_not_found".to_owned()
        ))
    );
}

#[tokio::test]
async fn an_unlisted_error_code_is_a_plain_failure_with_slacks_explanations() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": false,
            "error": "missing_scope",
            "needed": "chat:write",
            "provided": "channels:read",
            "response_metadata": {"messages": ["[ERROR] the bot lacks chat:write"]}
        })))
        .mount(&server)
        .await;

    let error = execute(
        &server,
        "postMessage",
        json!({"channel": "C1", "text": "hi"}),
    )
    .await;

    assert_eq!(
        error,
        Err(ConnectorError::Failed(
            "Slack refused chat.postMessage: missing_scope (the token needs the chat:write scope): [ERROR] the bot lacks chat:write"
                .to_owned()
        ))
    );
}

#[tokio::test]
async fn codes_refusing_the_token_are_unauthorized_and_never_quote_it() {
    for code in ["invalid_auth", "token_revoked", "not_authed"] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(slack_error(code))
            .mount(&server)
            .await;

        let error = execute(
            &server,
            "postMessage",
            json!({"channel": "C1", "text": "hi"}),
        )
        .await
        .expect_err("a refused token fails the call");

        assert_eq!(
            error,
            ConnectorError::Unauthorized(format!("Slack refused chat.postMessage: {code}"))
        );
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn http_429_is_rate_limited_for_the_retry_after_slack_asked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = execute(
        &server,
        "postMessage",
        json!({"channel": "C1", "text": "hi"}),
    )
    .await
    .expect_err("a rate limit fails the call");

    assert!(
        matches!(&error, ConnectorError::RateLimited { retry_after: Some(wait), .. } if *wait == Duration::from_secs(30)),
        "{error:?}"
    );
    assert_no_token(&error);
}

#[tokio::test]
async fn list_channels_sends_the_paging_and_filter_parameters_and_maps_the_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/conversations.list"))
        .and(bearer_token(TOKEN))
        .and(query_param("limit", "2"))
        .and(query_param("cursor", "dGVhbTpDMDYxRkE1UEI="))
        .and(query_param("types", "public_channel,private_channel"))
        .and(query_param("exclude_archived", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [
                {"id": "C012AB3CD", "name": "general", "is_channel": true, "is_private": false, "is_archived": false, "num_members": 4},
                {"id": "G061EG9T2", "name": "secret-plans", "is_channel": false, "is_private": true, "is_archived": false}
            ],
            "response_metadata": {"next_cursor": "dGVhbTpDMUg5RkVTTkQ="}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(
        &server,
        "listChannels",
        json!({
            "limit": 2,
            "cursor": "dGVhbTpDMDYxRkE1UEI=",
            "types": ["public_channel", "private_channel"],
            "excludeArchived": true
        }),
    )
    .await;

    assert_eq!(
        output,
        Ok(json!({
            "channels": [
                {"id": "C012AB3CD", "name": "general", "isPrivate": false, "isArchived": false},
                {"id": "G061EG9T2", "name": "secret-plans", "isPrivate": true, "isArchived": false}
            ],
            "nextCursor": "dGVhbTpDMUg5RkVTTkQ="
        }))
    );
}

#[tokio::test]
async fn the_last_page_has_no_next_cursor_and_a_direct_message_has_no_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/conversations.list"))
        .and(query_param_is_missing("cursor"))
        .and(query_param_is_missing("limit"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "D0C0F7S8Y", "is_im": true, "user": "U0BS9U4SV"}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(&server, "listChannels", json!({})).await;

    assert_eq!(
        output,
        Ok(json!({
            "channels": [{"id": "D0C0F7S8Y", "name": null, "isPrivate": false, "isArchived": false}],
            "nextCursor": null
        }))
    );
}

#[tokio::test]
async fn all_pages_follows_the_cursor_to_the_end() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C1", "name": "one", "is_private": false, "is_archived": false}],
            "response_metadata": {"next_cursor": "page-2"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("cursor", "page-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C2", "name": "two", "is_private": false, "is_archived": true}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(&server, "listChannels", json!({"allPages": true})).await;

    assert_eq!(
        output,
        Ok(json!({
            "channels": [
                {"id": "C1", "name": "one", "isPrivate": false, "isArchived": false},
                {"id": "C2", "name": "two", "isPrivate": false, "isArchived": true}
            ],
            "nextCursor": null
        }))
    );
}

#[tokio::test]
async fn all_pages_stops_after_the_page_limit_and_returns_where_it_stopped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C1", "name": "again", "is_private": false, "is_archived": false}],
            "response_metadata": {"next_cursor": "more"}
        })))
        .expect(MAX_PAGES as u64)
        .mount(&server)
        .await;

    let output = execute(&server, "listChannels", json!({"allPages": true}))
        .await
        .expect("the pages are read");

    assert_eq!(output["channels"].as_array().map(Vec::len), Some(MAX_PAGES));
    assert_eq!(output["nextCursor"], "more");
}

#[tokio::test]
async fn without_all_pages_one_page_is_read() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [],
            "response_metadata": {"next_cursor": "more"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(&server, "listChannels", json!({"allPages": false})).await;

    assert_eq!(output, Ok(json!({"channels": [], "nextCursor": "more"})));
}

#[tokio::test]
async fn wrong_params_are_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let cases = [
        (
            "postMessage",
            json!({"text": "hi"}),
            "params.channel is required: a non-empty string",
        ),
        (
            "postMessage",
            json!({"channel": "C1", "text": ""}),
            "params.text must be a non-empty string",
        ),
        (
            "postMessage",
            json!({"channel": "C1", "text": "hi", "thread_ts": "1.2"}),
            "params.thread_ts is not a parameter of `postMessage`; known: channel, text, blocks, threadTs",
        ),
        (
            "postMessage",
            json!({"channel": "C1", "text": "hi", "blocks": [1]}),
            "params.blocks must be a list of at most 50 Block Kit objects",
        ),
        (
            "listChannels",
            json!({"limit": 0}),
            "params.limit must be an integer from 1 to 1000",
        ),
        (
            "listChannels",
            json!({"types": ["public_channel", "dm"]}),
            "params.types may only hold public_channel, private_channel, mpim, im",
        ),
        (
            "listChannels",
            json!({"allPages": "yes"}),
            "params.allPages must be true or false",
        ),
        (
            "postMessage",
            json!("hi"),
            "params of `postMessage` must be an object",
        ),
        (
            "archiveChannel",
            json!({}),
            "the `slack` connector has no operation `archiveChannel`; it has postMessage, listChannels",
        ),
    ];
    for (operation, params, expected) in cases {
        let error = execute(&server, operation, params).await;

        assert_eq!(error, Err(ConnectorError::Invalid(expected.to_owned())));
    }
}

#[tokio::test]
async fn the_ssrf_rules_refuse_the_loopback_fake_to_a_client_without_private_access() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let fixture = Fixture::with_client(
        "slack",
        json!({"baseUrl": format!("{}/api", server.uri())}),
        bearer(TOKEN),
        client(false),
    );

    let error = SlackConnector::default()
        .execute(
            &fixture.ctx(),
            "postMessage",
            &json!({"channel": "C1", "text": "hi"}),
        )
        .await
        .expect_err("loopback is refused");

    assert!(
        matches!(&error, ConnectorError::Failed(message) if message.contains("refused to reach 127.0.0.1")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_connection_test_calls_auth_test_and_names_who_the_token_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .and(bearer_token(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "aos-bot",
            "team_id": "T12345678",
            "user_id": "W12345678",
            "bot_id": "B123"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let result = SlackConnector::default()
        .test(&fixture(&server).ctx())
        .await;

    assert!(result.ok, "{result:?}");
    assert_eq!(
        result.message,
        "Slack accepted the token: aos-bot in workspace Acme"
    );
}

#[tokio::test]
async fn a_connection_test_with_a_revoked_token_fails_naming_the_code_not_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .respond_with(slack_error("invalid_auth"))
        .mount(&server)
        .await;

    let result = SlackConnector::default()
        .test(&fixture(&server).ctx())
        .await;

    assert!(!result.ok);
    assert_eq!(
        result.message,
        "the service refused the credentials: Slack refused auth.test: invalid_auth"
    );
    assert!(!result.message.contains(TOKEN));
}

#[test]
fn settings_take_only_a_base_url() {
    let slack = SlackConnector::default();
    assert_eq!(slack.check_settings(&json!({})), Ok(()));
    assert_eq!(
        slack.check_settings(&json!({"baseUrl": "https://slack.example.com/api/"})),
        Ok(())
    );
    assert_eq!(
        slack.check_settings(&json!({"teamId": "T1"})),
        Err("unknown setting `teamId`; known: baseUrl".to_owned())
    );
    assert!(
        slack
            .check_settings(&json!({"baseUrl": "ftp://slack.com"}))
            .is_err_and(|error| error.contains("http or https"))
    );
    assert!(
        slack
            .check_settings(&json!({"baseUrl": "https://user:pw@slack.com/api"}))
            .is_err_and(|error| error.contains("user info"))
    );
}

#[test]
fn the_registry_lists_slack_with_its_auth_kinds_and_operations() {
    let registry = Registry::builtin();
    let slack = registry.get("slack").expect("slack is built in").info();

    assert_eq!(slack.auth_kinds, vec![AuthKind::Bearer, AuthKind::OAuth2]);
    let operations: Vec<&str> = slack
        .operations
        .iter()
        .map(|operation| operation.key)
        .collect();
    assert_eq!(operations, ["postMessage", "listChannels"]);
    assert_eq!(
        slack
            .operation("postMessage")
            .map(|operation| operation.parameters["required"].clone()),
        Some(json!(["channel", "text"]))
    );
    assert_eq!(
        registry.check_connection("slack", AuthKind::Basic, &json!({})),
        Err(
            "the `slack` connector does not take `basic` credentials; it takes bearer, oauth2"
                .to_owned()
        )
    );
}

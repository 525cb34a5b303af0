//! The `openai` connector against a loopback fake speaking OpenAI's chat completions API:
//! the exact request async-openai sends through our transport, the real response shape
//! (usage included), how 401/429/5xx are sorted and that each is tried exactly once, the
//! transport's limits, the SSRF rules on both paths (an IP literal and a resolved name),
//! and that no message carries the key even when the server echoes it.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{any, bearer_token, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::connection::{AuthKind, Credentials, KeyPlacement, REDACTED};

use super::OpenAiConnector;
use super::transport::MAX_RESPONSE_BYTES;
use crate::builtin::test_support::{Fixture, bearer, client, message};
use crate::{Connector, ConnectorError, Registry};

const KEY: &str = "sk-proj-4f9Q2xLrT7vB1nM8kZ3sY6wD";

fn fixture_with(server: &MockServer, credentials: Credentials) -> Fixture {
    Fixture::new(
        "openai",
        json!({"baseUrl": format!("{}/v1", server.uri())}),
        credentials,
    )
}

async fn complete(server: &MockServer, params: Value) -> Result<Value, ConnectorError> {
    complete_with(server, bearer(KEY), params).await
}

async fn complete_with(
    server: &MockServer,
    credentials: Credentials,
    params: Value,
) -> Result<Value, ConnectorError> {
    OpenAiConnector::default()
        .execute(
            &fixture_with(server, credentials).ctx(),
            "chatCompletion",
            &params,
        )
        .await
}

fn hello() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]})
}

/// A chat completion exactly as OpenAI sends one.
fn completion(content: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": content,
                "refusal": null,
                "annotations": []
            },
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306"
    })
}

fn openai_error(status: u16, code: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": text, "type": "invalid_request_error", "param": null, "code": code}
    }))
}

#[tokio::test]
async fn a_chat_completion_sends_openais_request_and_reads_the_answer_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(bearer_token(KEY))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": "Hello!"},
                {"role": "assistant", "content": "{\"greeting\": \"hi\"}"},
                {"role": "developer", "content": "Be brief."}
            ],
            "temperature": 0.5,
            "max_completion_tokens": 50,
            "response_format": {"type": "json_object"}
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(json!("{\"greeting\": \"Hello there\"}"), "stop")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = complete(
        &server,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": "Hello!"},
                {"role": "assistant", "content": "{\"greeting\": \"hi\"}"},
                {"role": "developer", "content": "Be brief."}
            ],
            "temperature": 0.5,
            "maxTokens": 50,
            "responseFormat": "json_object"
        }),
    )
    .await;

    assert_eq!(
        output,
        Ok(json!({
            "content": "{\"greeting\": \"Hello there\"}",
            "refusal": null,
            "finishReason": "stop",
            "model": "gpt-4o-mini-2024-07-18",
            "usage": {"promptTokens": 19, "completionTokens": 10, "totalTokens": 29}
        }))
    );
}

#[tokio::test]
async fn a_truncated_answer_reports_length_and_a_missing_usage_is_null() {
    let server = MockServer::start().await;
    let mut answer = completion(json!("Once upon a"), "length");
    answer.as_object_mut().map(|fields| fields.remove("usage"));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hello!"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;

    let output = complete(&server, hello()).await.expect("a completion");

    assert_eq!(output["content"], "Once upon a");
    assert_eq!(output["finishReason"], "length");
    assert_eq!(output["usage"], Value::Null);
}

#[tokio::test]
async fn a_refused_key_is_unauthorized_and_the_echoed_key_is_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_error(
            401,
            "invalid_api_key",
            &format!("Incorrect API key provided: {KEY}."),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert_eq!(
        error,
        Err(ConnectorError::Unauthorized(format!(
            "the server answered HTTP 401 (invalid_api_key): Incorrect API key provided: {REDACTED}."
        )))
    );
}

#[tokio::test]
async fn a_rate_limit_is_returned_at_once_with_its_retry_after_not_retried_inside() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            openai_error(
                429,
                "rate_limit_exceeded",
                "Rate limit reached for gpt-4o-mini",
            )
            .insert_header("retry-after", "7"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert_eq!(
        error,
        Err(ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "the server answered HTTP 429 (rate_limit_exceeded): Rate limit reached for gpt-4o-mini".to_owned(),
        })
    );
}

#[tokio::test]
async fn retry_after_ms_is_the_more_precise_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            openai_error(429, "rate_limit_exceeded", "slow down")
                .insert_header("retry-after-ms", "1500")
                .insert_header("retry-after", "2"),
        )
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert!(
        matches!(&error, Err(ConnectorError::RateLimited { retry_after: Some(wait), .. }) if *wait == Duration::from_millis(1500)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_spent_quota_is_a_failure_since_waiting_will_not_refill_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "param": null,
                "code": "insufficient_quota"
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert!(
        matches!(&error, Err(ConnectorError::Failed(message)) if message.starts_with("the server answered HTTP 429 (insufficient_quota)")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_error_fails_after_exactly_one_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .expect(1)
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert_eq!(
        error,
        Err(ConnectorError::Failed(
            "the server answered HTTP 500: upstream exploded".to_owned()
        ))
    );
}

#[tokio::test]
async fn an_answer_that_is_not_a_completion_fails_saying_so() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"hello": "world"})))
        .mount(&server)
        .await;

    let error = complete(&server, hello())
        .await
        .expect_err("not a completion");

    assert!(
        message(&error).starts_with("the server's answer is not a chat completion: "),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_cap_is_abandoned() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(vec![b' '; MAX_RESPONSE_BYTES + 1], "application/json"),
        )
        .mount(&server)
        .await;

    let error = complete(&server, hello()).await;

    assert_eq!(
        error,
        Err(ConnectorError::Failed(format!(
            "the response body is larger than {MAX_RESPONSE_BYTES} bytes"
        )))
    );
}

#[tokio::test]
async fn a_slow_server_is_given_up_on_after_the_steps_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(json!("late"), "stop"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut params = hello();
    params["timeoutMs"] = json!(200);

    let error = complete(&server, params).await;

    assert_eq!(
        error,
        Err(ConnectorError::Failed(
            "the server did not answer within 200 ms".to_owned()
        ))
    );
}

#[tokio::test]
async fn an_api_key_connection_sends_its_key_as_bearer_and_under_its_own_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(bearer_token(KEY))
        .and(header("api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("hi"), "stop")))
        .expect(1)
        .mount(&server)
        .await;
    let credentials = Credentials::ApiKey {
        placement: KeyPlacement::Header,
        name: "api-key".to_owned(),
        value: KEY.to_owned(),
    };

    let output = complete_with(&server, credentials, hello()).await;

    assert_eq!(
        output.map(|output| output["content"].clone()),
        Ok(json!("hi"))
    );
}

#[tokio::test]
async fn an_api_key_named_authorization_is_sent_as_it_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Token abc-123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(json!("hi"), "stop")))
        .expect(1)
        .mount(&server)
        .await;
    let credentials = Credentials::ApiKey {
        placement: KeyPlacement::Header,
        name: "Authorization".to_owned(),
        value: "Token abc-123".to_owned(),
    };

    let output = complete_with(&server, credentials, hello()).await;

    assert!(output.is_ok(), "{output:?}");
}

#[tokio::test]
async fn a_key_meant_for_the_query_is_refused_unsent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let credentials = Credentials::ApiKey {
        placement: KeyPlacement::Query,
        name: "key".to_owned(),
        value: KEY.to_owned(),
    };

    let error = complete_with(&server, credentials, hello()).await;

    assert!(
        matches!(&error, Err(ConnectorError::Invalid(message)) if message.contains("sends keys in a header")),
        "{error:?}"
    );
}

#[tokio::test]
async fn wrong_params_are_refused_unsent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            json!({"messages": user}),
            "params.model is required: a non-empty string",
        ),
        (
            json!({"model": "m", "messages": []}),
            "params.messages is required: a non-empty list of {role, content}",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "params.messages[0].role must be one of system, developer, user, assistant",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 42}]}),
            "params.messages[0].content must be a string",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "bob"}]}),
            "params.messages[0] must be an object with only role and content",
        ),
        (
            json!({"model": "m", "messages": user, "temperature": 3}),
            "params.temperature must be a number from 0 to 2",
        ),
        (
            json!({"model": "m", "messages": user, "responseFormat": "xml"}),
            "params.responseFormat must be text or json_object",
        ),
        (
            json!({"model": "m", "messages": user, "maxTokens": 0}),
            "params.maxTokens must be an integer from 1 to 4294967295",
        ),
        (
            json!({"model": "m", "messages": user, "stream": true}),
            "params.stream is not a parameter of `chatCompletion`; known: model, messages, temperature, maxTokens, responseFormat, timeoutMs",
        ),
    ];
    for (params, expected) in cases {
        let error = complete(&server, params).await;

        assert_eq!(error, Err(ConnectorError::Invalid(expected.to_owned())));
    }
}

#[tokio::test]
async fn an_ip_literal_base_url_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let fixture = Fixture::with_client(
        "openai",
        json!({"baseUrl": format!("{}/v1", server.uri())}),
        bearer(KEY),
        client(false),
    );

    let error = OpenAiConnector::default()
        .execute(&fixture.ctx(), "chatCompletion", &hello())
        .await;

    assert!(
        matches!(&error, Err(ConnectorError::Failed(message)) if message.contains("refused to reach 127.0.0.1")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_by_the_guarded_transport() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let port = server.address().port();
    let fixture = Fixture::with_client(
        "openai",
        json!({"baseUrl": format!("http://localhost:{port}/v1")}),
        bearer(KEY),
        client(false),
    );

    let error = OpenAiConnector::default()
        .execute(&fixture.ctx(), "chatCompletion", &hello())
        .await;

    assert!(
        matches!(&error, Err(ConnectorError::Failed(message)) if message.contains("refused to reach localhost")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_connection_test_lists_the_models_with_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(bearer_token(KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
                {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let result = OpenAiConnector::default()
        .test(&fixture_with(&server, bearer(KEY)).ctx())
        .await;

    assert!(result.ok, "{result:?}");
    assert_eq!(
        result.message,
        "the server accepted the key and offers 2 models"
    );
}

#[tokio::test]
async fn a_connection_test_with_a_wrong_key_fails_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(openai_error(
            401,
            "invalid_api_key",
            &format!("Incorrect API key provided: {KEY}."),
        ))
        .mount(&server)
        .await;

    let result = OpenAiConnector::default()
        .test(&fixture_with(&server, bearer(KEY)).ctx())
        .await;

    assert!(!result.ok);
    assert_eq!(
        result.message,
        format!(
            "the service refused the credentials: the server answered HTTP 401 (invalid_api_key): Incorrect API key provided: {REDACTED}."
        )
    );
}

#[test]
fn the_registry_lists_openai_with_its_auth_kinds_and_settings() {
    let registry = Registry::builtin();
    let openai = registry.get("openai").expect("openai is built in").info();

    assert_eq!(openai.auth_kinds, vec![AuthKind::Bearer, AuthKind::ApiKey]);
    let operation = openai.operation("chatCompletion").expect("chatCompletion");
    assert_eq!(
        operation.parameters["required"],
        json!(["model", "messages"])
    );
    assert_eq!(
        operation.output["required"],
        json!(["content", "finishReason", "model", "usage"])
    );
    assert_eq!(
        registry.check_connection(
            "openai",
            AuthKind::ApiKey,
            &json!({"baseUrl": "http://ollama.internal:11434/v1"})
        ),
        Ok(())
    );
    assert_eq!(
        registry.check_connection("openai", AuthKind::Bearer, &json!({"model": "gpt-4o"})),
        Err("settings: unknown setting `model`; known: baseUrl".to_owned())
    );
}

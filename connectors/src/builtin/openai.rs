//! `openai`: chat completions through async-openai, against OpenAI or any server that
//! speaks its API (`settings.baseUrl`).
//!
//! The key: a bearer connection's token, sent as `Authorization: Bearer`. An apiKey
//! connection's value is sent the same way, and also under its own header name when that
//! is another one (`api-key` for Azure-style servers; a name of `Authorization` sends the
//! value as it is). Keys in the query are refused: the OpenAI API takes keys in headers,
//! and a key in a URL ends up in access logs.
//!
//! Invariants:
//! - the client is built per call from the connection alone: base URL from its settings,
//!   key from its credentials, and no organization or project from the environment (the
//!   operator's `OPENAI_*` variables are for the server's own planner, not for a user's
//!   server);
//! - requests go out through [`transport::GuardedTransport`] over the SSRF-safe client,
//!   once each, and an IP-literal base URL is vetted with `check_url` before anything is
//!   sent;
//! - a call ends within its `timeoutMs` (default [`DEFAULT_TIMEOUT`]), since async-openai
//!   applies no total timeout of its own;
//! - error messages pass through the connection's `Redactor`: they quote the server,
//!   which could be anyone's and could echo the key.

use std::time::Duration;

use aos_domain::connection::{AuthKind, ConnectionTestResult, Credentials, KeyPlacement, Redactor};
use aos_domain::workflow::node_types::HttpMethod;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestDeveloperMessage,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
    ResponseFormat,
};
use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::fields::{self, BASE_URL_SETTING};
use super::http_check::TEST_TIMEOUT;
use crate::http::OutgoingRequest;
use crate::{Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, call};

#[path = "openai_transport.rs"]
mod transport;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// A completion can take a while; the operator's HTTP step timeout is sized for APIs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a step may ask for, as for `http.request` steps.
const MAX_TIMEOUT_MS: u64 = 300_000;

/// The roles a workflow may write messages as; `tool` needs tool calls, which this
/// operation does not make.
const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

pub struct OpenAiConnector {
    info: ConnectorInfo,
}

impl Default for OpenAiConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "openai",
                name: "OpenAI",
                description: "Chat completions from OpenAI or any OpenAI-compatible server, with an API key.",
                auth_kinds: vec![AuthKind::Bearer, AuthKind::ApiKey],
                operations: vec![chat_completion_info()],
                triggers: Vec::new(),
                settings: json!({
                    "type": "object",
                    "properties": {
                        BASE_URL_SETTING: {
                            "type": "string",
                            "format": "uri",
                            "title": "API base URL",
                            "description": "The server's API root, up to and including /v1 (e.g. http://ollama.internal:11434/v1).",
                            "default": DEFAULT_BASE_URL
                        }
                    },
                    "additionalProperties": false
                }),
            },
        }
    }
}

fn chat_completion_info() -> OperationInfo {
    OperationInfo {
        key: "chatCompletion",
        name: "Chat completion",
        description: "Asks a model for the next message of a conversation.",
        parameters: json!({
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": {
                    "type": "string",
                    "minLength": 1,
                    "title": "Model",
                    "description": "The model's id, such as gpt-4o-mini."
                },
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "title": "Messages",
                    "description": "The conversation so far, oldest first.",
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"enum": ROLES, "title": "Role"},
                            "content": {"type": "string", "title": "Content"}
                        },
                        "additionalProperties": false
                    }
                },
                "temperature": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 2,
                    "title": "Temperature",
                    "description": "Higher is more varied, lower more focused."
                },
                "maxTokens": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": u32::MAX,
                    "title": "Maximum tokens",
                    "description": "At most this many tokens in the answer (sent as max_completion_tokens)."
                },
                "responseFormat": {
                    "enum": ["text", "json_object"],
                    "default": "text",
                    "title": "Response format",
                    "description": "json_object makes the model answer with a JSON object; the messages must ask for JSON."
                },
                "timeoutMs": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_TIMEOUT_MS,
                    "default": DEFAULT_TIMEOUT.as_millis(),
                    "title": "Timeout (ms)"
                }
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["content", "finishReason", "model", "usage"],
            "properties": {
                "content": {"type": ["string", "null"], "description": "The model's answer; null when it refused or called a tool."},
                "refusal": {"type": ["string", "null"], "description": "Why the model refused, when it did."},
                "finishReason": {
                    "type": ["string", "null"],
                    "description": "stop, length (maxTokens reached), content_filter, tool_calls or function_call."
                },
                "model": {"type": "string", "description": "The model that answered."},
                "usage": {
                    "type": ["object", "null"],
                    "properties": {
                        "promptTokens": {"type": "integer"},
                        "completionTokens": {"type": "integer"},
                        "totalTokens": {"type": "integer"}
                    }
                }
            }
        }),
    }
}

#[async_trait]
impl Connector for OpenAiConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        fields::check_base_url_settings(settings)
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        if operation != "chatCompletion" {
            return Err(ConnectorError::Invalid(format!(
                "the `openai` connector has no operation `{operation}`; it has chatCompletion"
            )));
        }
        chat_completion(ctx, params)
            .await
            .map_err(|error| redacted(error, ctx.credentials))
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let (ok, message) = match list_models(ctx).await {
            Ok(count) => (
                true,
                match count {
                    Some(count) => format!("the server accepted the key and offers {count} models"),
                    None => "the server accepted the key".to_owned(),
                },
            ),
            Err(error) => (false, redacted(error, ctx.credentials).to_string()),
        };
        ConnectionTestResult { ok, message }
    }
}

async fn chat_completion(
    ctx: &ConnectorContext<'_>,
    params: &Value,
) -> Result<Value, ConnectorError> {
    let (request, timeout) = chat_request(params)?;
    let base = fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL)?;
    let parsed = url::Url::parse(&base).map_err(|error| {
        ConnectorError::Invalid(format!("settings.{BASE_URL_SETTING}: {error}"))
    })?;
    ctx.http.check_url(&parsed).map_err(call::transport_error)?;
    let guarded = ctx.http.reqwest_client().clone();
    // `build` is `with_config(..).with_http_client(..)` without the throwaway default
    // client; the service then replaces the retrying executor (see `transport`).
    let client = Client::build(guarded.clone(), config(&base, ctx.credentials)?)
        .with_http_service(transport::GuardedTransport::new(guarded));
    let response = tokio::time::timeout(timeout, client.chat().create(request))
        .await
        .map_err(|_| {
            ConnectorError::Failed(format!(
                "the server did not answer within {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(from_openai)?;
    completion_output(response)
}

/// The request and the call's timeout, from `params` as the schema describes them.
fn chat_request(params: &Value) -> Result<(CreateChatCompletionRequest, Duration), ConnectorError> {
    let fields = fields::params_object(
        params,
        "chatCompletion",
        &[
            "model",
            "messages",
            "temperature",
            "maxTokens",
            "responseFormat",
            "timeoutMs",
        ],
    )?;
    let model = fields::required_str(fields, "model")?.to_owned();
    let messages = match fields.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages
            .iter()
            .enumerate()
            .map(|(index, message)| chat_message(index, message))
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(ConnectorError::Invalid(
                "params.messages is required: a non-empty list of {role, content}".to_owned(),
            ));
        }
    };
    // Within 0..=2 the narrowing to the API type's f32 loses only far decimals.
    let temperature =
        fields::optional_number(fields, "temperature", 0.0..=2.0)?.map(|value| value as f32);
    let max_completion_tokens =
        fields::optional_integer(fields, "maxTokens", 1..=u64::from(u32::MAX))?
            .and_then(|tokens| u32::try_from(tokens).ok());
    let response_format = match fields::optional_str(fields, "responseFormat")? {
        None => None,
        Some("text") => Some(ResponseFormat::Text),
        Some("json_object") => Some(ResponseFormat::JsonObject),
        Some(_) => {
            return Err(ConnectorError::Invalid(
                "params.responseFormat must be text or json_object".to_owned(),
            ));
        }
    };
    let timeout = fields::optional_integer(fields, "timeoutMs", 1..=MAX_TIMEOUT_MS)?
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let request = CreateChatCompletionRequest {
        model,
        messages,
        temperature,
        max_completion_tokens,
        response_format,
        ..CreateChatCompletionRequest::default()
    };
    Ok((request, timeout))
}

fn chat_message(
    index: usize,
    message: &Value,
) -> Result<ChatCompletionRequestMessage, ConnectorError> {
    let invalid = |what: &str| ConnectorError::Invalid(format!("params.messages[{index}]{what}"));
    let fields = message
        .as_object()
        .filter(|fields| fields.keys().all(|key| key == "role" || key == "content"))
        .ok_or_else(|| invalid(" must be an object with only role and content"))?;
    let content = match fields.get("content") {
        Some(Value::String(content)) => content.clone(),
        _ => return Err(invalid(".content must be a string")),
    };
    Ok(match fields.get("role").and_then(Value::as_str) {
        Some("system") => ChatCompletionRequestSystemMessage::from(content).into(),
        Some("developer") => ChatCompletionRequestDeveloperMessage::from(content).into(),
        Some("user") => ChatCompletionRequestUserMessage::from(content).into(),
        Some("assistant") => ChatCompletionRequestAssistantMessage::from(content).into(),
        _ => {
            return Err(invalid(&format!(
                ".role must be one of {}",
                ROLES.join(", ")
            )));
        }
    })
}

fn completion_output(response: CreateChatCompletionResponse) -> Result<Value, ConnectorError> {
    let Some(choice) = response.choices.into_iter().next() else {
        return Err(ConnectorError::Failed(
            "the server answered with no choices".to_owned(),
        ));
    };
    let usage = response.usage.map(|usage| {
        json!({
            "promptTokens": usage.prompt_tokens,
            "completionTokens": usage.completion_tokens,
            "totalTokens": usage.total_tokens,
        })
    });
    Ok(json!({
        "content": choice.message.content,
        "refusal": choice.message.refusal,
        // The enum serializes as the API's own snake_case name.
        "finishReason": choice.finish_reason.map(|reason| json!(reason)),
        "model": response.model,
        "usage": usage,
    }))
}

/// The connection's key as OpenAI-compatible servers take it (see the module doc).
struct Key<'a> {
    bearer: Option<&'a str>,
    header: Option<(&'a str, &'a str)>,
}

fn key(credentials: &Credentials) -> Result<Key<'_>, ConnectorError> {
    match credentials {
        Credentials::Bearer { token } => Ok(Key {
            bearer: Some(token),
            header: None,
        }),
        Credentials::ApiKey {
            placement: KeyPlacement::Header,
            name,
            value,
        } => Ok(Key {
            bearer: (!name.trim().eq_ignore_ascii_case(AUTHORIZATION.as_str())).then_some(value.as_str()),
            header: Some((name.trim(), value)),
        }),
        Credentials::ApiKey {
            placement: KeyPlacement::Query,
            ..
        } => Err(ConnectorError::Invalid(
            "the openai connector sends keys in a header; this connection's key goes in the query (set `in` to `header`)".to_owned(),
        )),
        Credentials::Basic { .. } | Credentials::OAuth2(_) => Err(ConnectorError::Invalid(
            format!(
                "the openai connector takes bearer or apiKey credentials, not {}",
                credentials.auth_kind().as_str()
            ),
        )),
    }
}

fn config(base: &str, credentials: &Credentials) -> Result<OpenAIConfig, ConnectorError> {
    let key = key(credentials)?;
    let mut config = OpenAIConfig::new()
        .with_api_base(base)
        .with_org_id("")
        .with_project_id("")
        .with_api_key(key.bearer.unwrap_or_default());
    if let Some((name, value)) = key.header {
        let invalid =
            || ConnectorError::Invalid("credentials.name is not a valid header name".to_owned());
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        config = config.with_header(name, value).map_err(|_| {
            ConnectorError::Invalid("credentials.value cannot be sent in a header".to_owned())
        })?;
    }
    Ok(config)
}

/// `GET {base}/models`: changes nothing, and every compatible server has it. Returns how
/// many models it lists, if the answer is a model list.
async fn list_models(ctx: &ConnectorContext<'_>) -> Result<Option<usize>, ConnectorError> {
    let base = fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL)?;
    let key = key(ctx.credentials)?;
    let mut request = OutgoingRequest::new(HttpMethod::Get, format!("{base}/models"));
    request.timeout = Some(TEST_TIMEOUT);
    if let Some(token) = key.bearer {
        request
            .headers
            .push((AUTHORIZATION.as_str().to_owned(), format!("Bearer {token}")));
    }
    if let Some((name, value)) = key.header {
        request.headers.push((name.to_owned(), value.to_owned()));
    }
    let response = ctx
        .http
        .send(request)
        .await
        .map_err(call::transport_error)?;
    if response.status >= 400 {
        let body = match &response.body {
            Value::String(text) => text.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        return Err(transport::refusal(
            response.status,
            &header_map(&response.headers),
            &body,
        ));
    }
    Ok(response
        .body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::len))
}

/// The headers `refusal` reads, back from their JSON form.
fn header_map(headers: &Map<String, Value>) -> reqwest::header::HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = HeaderValue::from_str(value.as_str()?).ok()?;
            Some((name, value))
        })
        .collect()
}

fn from_openai(error: OpenAIError) -> ConnectorError {
    match error {
        OpenAIError::Boxed(inner) => match inner.downcast::<ConnectorError>() {
            Ok(error) => *error,
            Err(other) => ConnectorError::Failed(other.to_string()),
        },
        // Only reached if a status error slips past the transport; same mapping.
        OpenAIError::ApiError(answer) => {
            let status = answer.status_code.as_u16();
            let message = format!("the server answered HTTP {status}: {}", answer.api_error);
            match status {
                401 => ConnectorError::Unauthorized(message),
                429 => ConnectorError::RateLimited {
                    retry_after: None,
                    message,
                },
                _ => ConnectorError::Failed(message),
            }
        }
        OpenAIError::Reqwest(error) => {
            call::transport_error(crate::http::HttpError::from_reqwest(error))
        }
        // The content is the whole body; the parse error says what was wrong with it.
        OpenAIError::JSONDeserialize(error, _content) => ConnectorError::Failed(format!(
            "the server's answer is not a chat completion: {error}"
        )),
        OpenAIError::InvalidArgument(message) => ConnectorError::Invalid(message),
        other => ConnectorError::Failed(other.to_string()),
    }
}

fn redacted(error: ConnectorError, credentials: &Credentials) -> ConnectorError {
    let redactor = Redactor::for_credentials(credentials);
    let clean = |text: String| redactor.redact_text(&text).into_owned();
    match error {
        ConnectorError::Invalid(message) => ConnectorError::Invalid(clean(message)),
        ConnectorError::Unauthorized(message) => ConnectorError::Unauthorized(clean(message)),
        ConnectorError::RateLimited {
            retry_after,
            message,
        } => ConnectorError::RateLimited {
            retry_after,
            message: clean(message),
        },
        ConnectorError::Failed(message) => ConnectorError::Failed(clean(message)),
        ConnectorError::Unsupported(message) => ConnectorError::Unsupported(clean(message)),
    }
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;

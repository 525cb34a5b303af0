//! `slack`: post a message and list channels through the Slack Web API, with a bot token
//! or an OAuth2 connection.
//!
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": "<code>"}`, so
//! every answer is read for `ok` before it is believed; the error code is named in the
//! message. Codes that mean the token is no good are `Unauthorized` (a refresh may help),
//! codes that mean the parameters are wrong are `Invalid` (a retry will not), a
//! `ratelimited` answer or HTTP 429 is `RateLimited` with its `Retry-After`, and anything
//! else is `Failed`.
//!
//! Paging: `listChannels` returns one page and `nextCursor` (null on the last page) unless
//! the step asks for `allPages`, in which case it follows Slack's cursor for at most
//! [`MAX_PAGES`] pages and returns the cursor it stopped at. A step is one bounded unit of
//! work: a workspace with a hundred thousand channels must not hold a worker for minutes,
//! and a workflow that wants everything can loop on `nextCursor`.

use aos_domain::connection::{AuthKind, ConnectionTestResult};
use aos_domain::workflow::node_types::HttpMethod;
use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::fields::{self, BASE_URL_SETTING};
use super::http_check::TEST_TIMEOUT;
use crate::http::OutgoingRequest;
use crate::{Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, call};

pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";

/// How many pages `allPages` reads at most.
pub const MAX_PAGES: usize = 10;

/// Slack's own ceiling for `conversations.list`.
const MAX_LIMIT: u64 = 1000;

/// Slack caps a message at 50 blocks.
const MAX_BLOCKS: usize = 50;

/// The conversation types `conversations.list` filters on.
const CHANNEL_TYPES: [&str; 4] = ["public_channel", "private_channel", "mpim", "im"];

/// Error codes saying the token itself is no good.
const AUTH_ERRORS: [&str; 5] = [
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
];

/// Error codes saying the request is wrong, so sending it again cannot help.
const PARAMS_ERRORS: [&str; 13] = [
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "no_text",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "invalid_cursor",
    "invalid_limit",
    "invalid_types",
    "thread_not_found",
    "too_many_attachments",
];

/// How many of Slack's explanations (`response_metadata.messages`) a message quotes.
const QUOTED_EXPLANATIONS: usize = 3;

pub struct SlackConnector {
    info: ConnectorInfo,
}

impl Default for SlackConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "slack",
                name: "Slack",
                description: "Post messages to Slack channels and list them, with a bot token (xoxb-…) or OAuth2.",
                auth_kinds: vec![AuthKind::Bearer, AuthKind::OAuth2],
                operations: vec![post_message_info(), list_channels_info()],
                triggers: Vec::new(),
                settings: json!({
                    "type": "object",
                    "properties": {
                        BASE_URL_SETTING: {
                            "type": "string",
                            "format": "uri",
                            "title": "API base URL",
                            "description": "Where the Slack Web API is reached; only a proxy or a test server needs another.",
                            "default": DEFAULT_BASE_URL
                        }
                    },
                    "additionalProperties": false
                }),
            },
        }
    }
}

fn post_message_info() -> OperationInfo {
    OperationInfo {
        key: "postMessage",
        name: "Post a message",
        description: "Posts a message to a channel, a direct message or a thread (chat.postMessage).",
        parameters: json!({
            "type": "object",
            "required": ["channel", "text"],
            "properties": {
                "channel": {
                    "type": "string",
                    "minLength": 1,
                    "title": "Channel",
                    "description": "A channel, group or DM id (C0123…), or a channel name such as #general. The bot must be a member of the channel."
                },
                "text": {
                    "type": "string",
                    "minLength": 1,
                    "title": "Text",
                    "description": "The message in Slack mrkdwn; with blocks, the fallback shown in notifications."
                },
                "blocks": {
                    "type": "array",
                    "maxItems": MAX_BLOCKS,
                    "items": {"type": "object"},
                    "title": "Blocks",
                    "description": "Block Kit layout blocks, shown instead of the text."
                },
                "threadTs": {
                    "type": "string",
                    "title": "Thread",
                    "description": "The `ts` of a message to reply to in its thread."
                }
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["ok", "channel", "ts"],
            "properties": {
                "ok": {"type": "boolean", "const": true},
                "channel": {"type": "string", "description": "The id of the channel posted to."},
                "ts": {"type": "string", "description": "The message's timestamp, its id within the channel (use it as threadTs to reply)."},
                "message": {"type": "object", "description": "The message as Slack stored it."}
            }
        }),
    }
}

fn list_channels_info() -> OperationInfo {
    OperationInfo {
        key: "listChannels",
        name: "List channels",
        description: "Lists the workspace's conversations the token can see (conversations.list), one page at a time unless allPages is set.",
        parameters: json!({
            "type": "object",
            "properties": {
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "title": "Page size",
                    "description": "At most this many per page (Slack's default is 100)."
                },
                "cursor": {
                    "type": "string",
                    "title": "Cursor",
                    "description": "The nextCursor of a previous call, to read the following page."
                },
                "types": {
                    "type": "array",
                    "items": {"enum": CHANNEL_TYPES},
                    "uniqueItems": true,
                    "title": "Types",
                    "description": "Which conversations to list (Slack's default: public_channel)."
                },
                "excludeArchived": {
                    "type": "boolean",
                    "default": false,
                    "title": "Exclude archived"
                },
                "allPages": {
                    "type": "boolean",
                    "default": false,
                    "title": "All pages",
                    "description": format!("Follow Slack's cursor for up to {MAX_PAGES} pages; nextCursor is where it stopped.")
                }
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["channels", "nextCursor"],
            "properties": {
                "channels": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "isPrivate", "isArchived"],
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": ["string", "null"], "description": "Null for direct messages."},
                            "isPrivate": {"type": "boolean"},
                            "isArchived": {"type": "boolean"}
                        }
                    }
                },
                "nextCursor": {
                    "type": ["string", "null"],
                    "description": "Pass as cursor to read on; null when there is nothing more."
                }
            }
        }),
    }
}

#[async_trait]
impl Connector for SlackConnector {
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
        let base = fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL)?;
        match operation {
            "postMessage" => post_message(ctx, &base, params).await,
            "listChannels" => list_channels(ctx, &base, params).await,
            other => Err(ConnectorError::Invalid(format!(
                "the `slack` connector has no operation `{other}`; it has postMessage, listChannels"
            ))),
        }
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let outcome = match fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL) {
            Ok(base) => {
                let mut request =
                    OutgoingRequest::new(HttpMethod::Post, format!("{base}/auth.test"));
                request.timeout = Some(TEST_TIMEOUT);
                web_api(ctx, request, "auth.test").await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(answer) => {
                let text = |field: &str| answer.get(field).and_then(Value::as_str).unwrap_or("?");
                ConnectionTestResult {
                    ok: true,
                    message: format!(
                        "Slack accepted the token: {} in workspace {}",
                        text("user"),
                        text("team")
                    ),
                }
            }
            Err(error) => ConnectionTestResult {
                ok: false,
                message: error.to_string(),
            },
        }
    }
}

async fn post_message(
    ctx: &ConnectorContext<'_>,
    base: &str,
    params: &Value,
) -> Result<Value, ConnectorError> {
    let fields = fields::params_object(
        params,
        "postMessage",
        &["channel", "text", "blocks", "threadTs"],
    )?;
    let mut body = json!({
        "channel": fields::required_str(fields, "channel")?,
        "text": fields::required_str(fields, "text")?,
    });
    match fields.get("blocks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(blocks))
            if blocks.len() <= MAX_BLOCKS && blocks.iter().all(Value::is_object) =>
        {
            body["blocks"] = Value::Array(blocks.clone());
        }
        Some(_) => {
            return Err(ConnectorError::Invalid(format!(
                "params.blocks must be a list of at most {MAX_BLOCKS} Block Kit objects"
            )));
        }
    }
    if let Some(thread) = fields::optional_str(fields, "threadTs")? {
        body["thread_ts"] = json!(thread);
    }
    let mut request = OutgoingRequest::new(HttpMethod::Post, format!("{base}/chat.postMessage"));
    // Without the charset Slack answers with a `missing_charset` warning.
    request.headers.push((
        "Content-Type".to_owned(),
        "application/json; charset=utf-8".to_owned(),
    ));
    request.body = Some(body);
    let answer = web_api(ctx, request, "chat.postMessage").await?;
    Ok(json!({
        "ok": true,
        "channel": answer.get("channel").cloned().unwrap_or(Value::Null),
        "ts": answer.get("ts").cloned().unwrap_or(Value::Null),
        "message": answer.get("message").cloned().unwrap_or(Value::Null),
    }))
}

async fn list_channels(
    ctx: &ConnectorContext<'_>,
    base: &str,
    params: &Value,
) -> Result<Value, ConnectorError> {
    let fields = fields::params_object(
        params,
        "listChannels",
        &["limit", "cursor", "types", "excludeArchived", "allPages"],
    )?;
    let limit = fields::optional_integer(fields, "limit", 1..=MAX_LIMIT)?;
    let mut cursor = fields::optional_str(fields, "cursor")?.map(str::to_owned);
    let types = match fields::optional_strings(fields, "types")? {
        Some(types)
            if types
                .iter()
                .all(|kind| CHANNEL_TYPES.contains(&kind.as_str())) =>
        {
            Some(types.join(","))
        }
        Some(_) => {
            return Err(ConnectorError::Invalid(format!(
                "params.types may only hold {}",
                CHANNEL_TYPES.join(", ")
            )));
        }
        None => None,
    };
    let exclude_archived = fields::optional_bool(fields, "excludeArchived")?;
    let pages = if fields::optional_bool(fields, "allPages")? {
        MAX_PAGES
    } else {
        1
    };

    let mut channels = Vec::new();
    for _ in 0..pages {
        let mut request =
            OutgoingRequest::new(HttpMethod::Get, format!("{base}/conversations.list"));
        if let Some(limit) = limit {
            request.query.push(("limit".to_owned(), limit.to_string()));
        }
        if let Some(cursor) = &cursor {
            request.query.push(("cursor".to_owned(), cursor.clone()));
        }
        if let Some(types) = &types {
            request.query.push(("types".to_owned(), types.clone()));
        }
        if exclude_archived {
            request
                .query
                .push(("exclude_archived".to_owned(), "true".to_owned()));
        }
        let answer = web_api(ctx, request, "conversations.list").await?;
        let page = answer
            .get("channels")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ConnectorError::Failed(
                    "Slack's answer to conversations.list has no channels list".to_owned(),
                )
            })?;
        channels.extend(page.iter().map(channel_output));
        cursor = answer
            .get("response_metadata")
            .and_then(|metadata| metadata.get("next_cursor"))
            .and_then(Value::as_str)
            // Slack marks the last page with an empty cursor.
            .filter(|next| !next.is_empty())
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    Ok(json!({"channels": channels, "nextCursor": cursor}))
}

fn channel_output(channel: &Value) -> Value {
    let flag = |field: &str| channel.get(field).and_then(Value::as_bool).unwrap_or(false);
    json!({
        "id": channel.get("id").cloned().unwrap_or(Value::Null),
        "name": channel.get("name").cloned().unwrap_or(Value::Null),
        "isPrivate": flag("is_private"),
        "isArchived": flag("is_archived"),
    })
}

/// Sends a Web API call and returns its answer if Slack says `ok`.
async fn web_api(
    ctx: &ConnectorContext<'_>,
    request: OutgoingRequest,
    method: &str,
) -> Result<Map<String, Value>, ConnectorError> {
    let response = call::send(ctx, request).await?;
    let Value::Object(answer) = response.body else {
        return Err(ConnectorError::Failed(format!(
            "Slack's answer to {method} is not a Web API response (HTTP {}, not a JSON object)",
            response.status
        )));
    };
    match answer.get("ok") {
        Some(Value::Bool(true)) => Ok(answer),
        _ => Err(refusal(method, &answer, &response.headers)),
    }
}

/// What an `ok: false` answer amounts to.
fn refusal(
    method: &str,
    answer: &Map<String, Value>,
    headers: &Map<String, Value>,
) -> ConnectorError {
    let code = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let mut message = format!("Slack refused {method}: {code}");
    if let Some(needed) = answer.get("needed").and_then(Value::as_str) {
        message.push_str(&format!(" (the token needs the {needed} scope)"));
    }
    let explanations: Vec<&str> = answer
        .get("response_metadata")
        .and_then(|metadata| metadata.get("messages"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(QUOTED_EXPLANATIONS)
        .collect();
    if !explanations.is_empty() {
        message.push_str(&format!(": {}", explanations.join("; ")));
    }
    if AUTH_ERRORS.contains(&code) {
        ConnectorError::Unauthorized(message)
    } else if code == "ratelimited" {
        ConnectorError::RateLimited {
            retry_after: call::retry_after(headers, chrono::Utc::now()),
            message,
        }
    } else if PARAMS_ERRORS.contains(&code) {
        ConnectorError::Invalid(message)
    } else {
        ConnectorError::Failed(message)
    }
}

#[cfg(test)]
#[path = "slack_tests.rs"]
mod tests;

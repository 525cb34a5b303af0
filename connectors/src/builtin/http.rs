//! `http`: any HTTP API, with any of the generic auth kinds. An `http.request` step names
//! the connection in `connectionId` and the engine signs its request with it; a
//! `connector` step runs the `request` operation, the same request as an operation; a
//! `trigger.poll` runs `newItems`, which starts a run per new item of a JSON listing
//! (the rule is in `http_new_items.rs`).

use std::time::Duration;

use aos_domain::connection::{AuthKind, ConnectionTestResult};
use aos_domain::workflow::node_types::HttpMethod;
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::http::{BodyEncoding, OutgoingRequest};
use crate::{
    Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, Polled, call,
    optional_url,
};

#[path = "http_new_items.rs"]
mod new_items;

use new_items::NewItemsParams;

/// The longest a request may take, as for `http.request` steps.
const MAX_TIMEOUT_MS: u64 = 300_000;

pub struct HttpConnector {
    info: ConnectorInfo,
}

impl Default for HttpConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "http",
                name: "HTTP",
                description: "Any HTTP API: requests signed with a bearer token, an API key or basic auth.",
                auth_kinds: vec![
                    AuthKind::Bearer,
                    AuthKind::ApiKey,
                    AuthKind::Basic,
                    AuthKind::OAuth2,
                ],
                operations: vec![OperationInfo {
                    key: "request",
                    name: "Send a request",
                    description: "An `http.request` step with this connection's credentials applied.",
                    parameters: json!({
                        "type": "object",
                        "required": ["url"],
                        "properties": {
                            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], "default": "GET"},
                            "url": {"type": "string", "format": "uri"},
                            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                            "query": {"type": "object"},
                            "body": {},
                            "timeoutMs": {"type": "integer", "minimum": 1, "maximum": 300_000}
                        },
                        "additionalProperties": false
                    }),
                    output: json!({
                        "type": "object",
                        "properties": {
                            "status": {"type": "integer"},
                            "headers": {"type": "object"},
                            "body": {}
                        }
                    }),
                }],
                triggers: vec![OperationInfo {
                    key: "newItems",
                    name: "New items in a listing",
                    description: "GETs a JSON listing every interval and starts a run for each item whose id it has not seen, oldest first.",
                    parameters: json!({
                        "type": "object",
                        "required": ["url"],
                        "properties": {
                            "url": {"type": "string", "format": "uri"},
                            "itemsPath": {
                                "type": "string",
                                "description": "Dotted path to the array of items in the JSON answer (`data.items`); default: the answer itself."
                            },
                            "idField": {"type": "string", "minLength": 1, "default": "id"},
                            "order": {"enum": ["oldestFirst", "newestFirst"], "default": "oldestFirst"}
                        },
                        "additionalProperties": false
                    }),
                    output: json!({
                        "type": "object",
                        "description": "One item of the listing, as the service sent it."
                    }),
                }],
                settings: json!({
                    "type": "object",
                    "properties": {
                        "testUrl": {
                            "type": "string",
                            "format": "uri",
                            "description": "GET here, signed, when the connection is tested."
                        }
                    },
                    "additionalProperties": false
                }),
            },
        }
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        if let Some(unknown) = settings
            .as_object()
            .into_iter()
            .flat_map(|fields| fields.keys())
            .find(|key| key.as_str() != "testUrl")
        {
            return Err(format!("unknown setting `{unknown}`; known: testUrl"));
        }
        optional_url(settings, "testUrl").map(|_| ())
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        if operation != "request" {
            return Err(ConnectorError::Invalid(format!(
                "the `http` connector has no operation `{operation}`; it has `request`"
            )));
        }
        let response = call::send(ctx, request_from(params)?).await?;
        Ok(response.into_output())
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        super::test_connection(ctx.http, ctx.connection, ctx.credentials).await
    }

    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        trigger: &str,
        params: &Value,
        cursor: Option<&Value>,
    ) -> Result<Polled, ConnectorError> {
        if trigger != "newItems" {
            return Err(ConnectorError::Unsupported(format!(
                "the `http` connector has no polling trigger `{trigger}`; it has `newItems`"
            )));
        }
        let params = NewItemsParams::parse(params)?;
        let response = call::send(
            ctx,
            OutgoingRequest::new(HttpMethod::Get, params.url.clone()),
        )
        .await?;
        if response.body_encoding != BodyEncoding::Json {
            return Err(ConnectorError::Failed(
                "the answer is not JSON (its content type must say JSON)".to_owned(),
            ));
        }
        new_items::new_items(&params, &response.body, cursor)
    }
}

/// The `request` operation's parameters, as its schema describes them.
fn request_from(params: &Value) -> Result<OutgoingRequest, ConnectorError> {
    let invalid = |message: &str| ConnectorError::Invalid(format!("params.{message}"));
    let method = match params.get("method") {
        None | Some(Value::Null) => HttpMethod::Get,
        Some(Value::String(raw)) => HttpMethod::parse(raw).ok_or_else(|| {
            invalid("method must be GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
        })?,
        Some(_) => return Err(invalid("method must be a string")),
    };
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("url must be a URL string"))?;
    let mut request = OutgoingRequest::new(method, url);
    for (field, target) in [
        ("headers", &mut request.headers),
        ("query", &mut request.query),
    ] {
        match params.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(pairs)) => {
                for (name, value) in pairs {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other if field == "query" => other.to_string(),
                        _ => return Err(invalid(&format!("{field}.{name} must be a string"))),
                    };
                    target.push((name.clone(), text));
                }
            }
            Some(_) => return Err(invalid(&format!("{field} must be an object"))),
        }
    }
    request.body = params.get("body").filter(|body| !body.is_null()).cloned();
    request.timeout = match params.get("timeoutMs") {
        None | Some(Value::Null) => None,
        Some(value) => Some(Duration::from_millis(
            value
                .as_u64()
                .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
                .ok_or_else(|| invalid("timeoutMs must be an integer from 1 to 300000"))?,
        )),
    };
    Ok(request)
}

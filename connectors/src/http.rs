//! `http`: any HTTP API, with any of the generic auth kinds. An `http.request` step names
//! the connection in `connectionId` and the engine signs its request with it.

use aos_domain::connection::AuthKind;
use serde_json::{Value, json};

use crate::{Connector, ConnectorInfo, OperationInfo, optional_url};

pub struct HttpConnector {
    info: ConnectorInfo,
}

impl HttpConnector {
    pub fn new() -> Self {
        Self {
            info: ConnectorInfo {
                key: "http",
                name: "HTTP",
                description: "Any HTTP API: requests signed with a bearer token, an API key or basic auth.",
                auth_kinds: vec![AuthKind::Bearer, AuthKind::ApiKey, AuthKind::Basic],
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
}

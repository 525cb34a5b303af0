//! The smallest complete connector: one operation, bearer auth, a settings-configurable
//! base URL, and a `test`. README's "Adding a connector" walks through it; CI compiles
//! it with the tests, so the guide cannot drift from the SDK.
//!
//! Run it against any server: `cargo run -p aos-connectors --example minimal_connector`.

use aos_connectors::http::{HttpClient, HttpPolicy, OutgoingRequest};
use aos_connectors::{
    Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, call, optional_url,
};
use aos_domain::connection::{AuthKind, ConnectionTestResult};
use aos_domain::workflow::node_types::HttpMethod;
use async_trait::async_trait;
use serde_json::{Value, json};

const DEFAULT_BASE_URL: &str = "https://api.pager.example";

/// `pager`: pages whoever is on call, through a (made-up) paging service's API.
pub struct PagerConnector {
    info: ConnectorInfo,
}

impl Default for PagerConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "pager",
                name: "Pager",
                description: "Page whoever is on call.",
                auth_kinds: vec![AuthKind::Bearer],
                operations: vec![OperationInfo {
                    key: "page",
                    name: "Page on-call",
                    description: "Opens an incident and pages the on-call person.",
                    parameters: json!({
                        "type": "object",
                        "required": ["summary"],
                        "properties": {"summary": {"type": "string", "minLength": 1}},
                        "additionalProperties": false
                    }),
                    output: json!({
                        "type": "object",
                        "properties": {"incidentId": {"type": "string"}}
                    }),
                }],
                triggers: Vec::new(),
                settings: json!({
                    "type": "object",
                    "properties": {"baseUrl": {"type": "string", "format": "uri"}},
                    "additionalProperties": false
                }),
            },
        }
    }
}

impl PagerConnector {
    fn base_url(ctx: &ConnectorContext<'_>) -> String {
        ctx.connection
            .settings
            .get("baseUrl")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_owned()
    }
}

#[async_trait]
impl Connector for PagerConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        if let Some(unknown) = settings
            .as_object()
            .into_iter()
            .flat_map(|fields| fields.keys())
            .find(|key| key.as_str() != "baseUrl")
        {
            return Err(format!("unknown setting `{unknown}`; known: baseUrl"));
        }
        optional_url(settings, "baseUrl").map(|_| ())
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        if operation != "page" {
            return Err(ConnectorError::Invalid(format!(
                "unknown operation `{operation}`"
            )));
        }
        let summary = params
            .get("summary")
            .and_then(Value::as_str)
            .filter(|summary| !summary.is_empty())
            .ok_or_else(|| ConnectorError::Invalid("params.summary must be a string".into()))?;
        let mut request = OutgoingRequest::new(
            HttpMethod::Post,
            format!("{}/incidents", Self::base_url(ctx)),
        );
        request.body = Some(json!({ "summary": summary }));
        // Signs with the connection, goes through the SSRF guard, and turns 401, 429 and
        // other failures into the errors the engine acts on.
        let response = call::send(ctx, request).await?;
        Ok(json!({ "incidentId": response.body["id"] }))
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let request = OutgoingRequest::new(HttpMethod::Get, format!("{}/me", Self::base_url(ctx)));
        match call::send(ctx, request).await {
            Ok(_) => ConnectionTestResult {
                ok: true,
                message: "the paging service accepted the token".into(),
            },
            Err(error) => ConnectionTestResult {
                ok: false,
                message: error.to_string(),
            },
        }
    }
}

fn main() {
    let connector = PagerConnector::default();
    let http = HttpClient::new(HttpPolicy::default());
    println!(
        "{} offers {:?}; HTTP client ready: {}",
        connector.info().key,
        connector
            .info()
            .operations
            .iter()
            .map(|operation| operation.key)
            .collect::<Vec<_>>(),
        http.is_ok()
    );
}

//! `postgres`: one parameterised SQL statement against the user's own Postgres database,
//! signed in with `basic` credentials (the database user and password).
//!
//! Invariants:
//! - the server is reached only at an address [`HttpClient::vet_host`] returned for the
//!   configured host, so the SSRF rules hold as for HTTP steps; TLS is negotiated by the
//!   connector itself (see `session`) so `verify-full` checks the certificate against the
//!   configured host name, not the address;
//! - values reach the server only as bind parameters (`$1`, `$2`, ...), never spliced into
//!   the SQL text;
//! - a call holds one connection for one statement and closes it: no pool, so no session
//!   state (`SET`, temporary tables, an open transaction) passes from one step to the next,
//!   a changed password takes effect at once, and no idle sockets to users' databases are
//!   kept. Connecting costs a round trip or three, small next to a workflow step;
//! - every statement has a timeout (`statement_timeout` on the server, and the client gives
//!   up a little later should the server not), and connecting has one too;
//! - no message carries the password (see `errors`).
//!
//! Parameters, by JSON type: `null` is an untyped NULL (the server infers its type, or
//! takes it as text where nothing says), booleans `bool`, integers `int8`, other numbers
//! `float8`, strings `text`, objects and arrays `jsonb`. Cast where the server cannot
//! convert on its own: `$1::uuid`, `$1::timestamptz`, `$1::numeric`, `$1::int4` for a
//! function that takes only `int4`.
//!
//! Column values, by type:
//!
//! | Postgres | JSON |
//! | --- | --- |
//! | `bool` | boolean |
//! | `int2`, `int4`, `int8`, `oid` | number (exact; JavaScript loses `int8` precision past 2^53) |
//! | `float4`, `float8` | number; `NaN` and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `numeric` | string, exact (`"12.50"`, `"NaN"`) |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, `xml`, enums | string |
//! | `uuid` | string, hyphenated lower case |
//! | `date` | string `YYYY-MM-DD` |
//! | `timestamp` | string `YYYY-MM-DDTHH:MM:SS[.ffffff]` (no zone) |
//! | `timestamptz` | string, RFC 3339 in UTC (`...Z`) |
//! | `time`, `timetz` | string `HH:MM:SS[.ffffff]`, `timetz` with its offset |
//! | `interval` | string, ISO 8601 as Postgres writes it (`P1Y2M3DT4H5M6S`) |
//! | `json`, `jsonb` | the JSON value itself |
//! | `bytea` | string, base64 (standard alphabet, padded) |
//! | `inet`, `cidr` | string (`10.0.0.1`, `10.0.0.0/8`) |
//! | arrays of the above | arrays, nested for several dimensions |
//! | domains | as their base type |
//! | anything else (`money`, ranges, geometric types, composites, extension types) | string: the server's own text form |
//!
//! Date and time infinities are the strings `"infinity"` and `"-infinity"`. A column name
//! that repeats gets `_2`, `_3`, ... so no value is lost (`SELECT 1, 2` gives `?column?`
//! and `?column?_2`).
//!
//! [`HttpClient::vet_host`]: crate::http::HttpClient::vet_host

mod errors;
mod relay;
mod request;
mod run;
mod session;
mod settings;
mod tls;
mod values;

use std::time::Duration;

use aos_domain::connection::{AuthKind, ConnectionTestResult};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo};

use self::errors::Secrets;
use self::request::QueryRequest;
use self::settings::PgSettings;

/// The key of the one operation.
const QUERY: &str = "query";

/// `testConnection` is answered to someone waiting on the API.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresConnector {
    info: ConnectorInfo,
}

impl Default for PostgresConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "postgres",
                name: "PostgreSQL",
                description: "Runs SQL against your own PostgreSQL database, signed in with a database user and password (`basic` credentials).",
                auth_kinds: vec![AuthKind::Basic],
                operations: vec![OperationInfo {
                    key: QUERY,
                    name: "Run a query",
                    description: "Runs one SQL statement with positional parameters ($1, $2, ...) and returns its rows. Any statement the user may run works: SELECT, INSERT ... RETURNING, UPDATE, DDL.",
                    parameters: query_parameters(),
                    output: query_output(),
                }],
                triggers: Vec::new(),
                settings: settings::schema(),
            },
        }
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        settings::check_known_keys(settings)?;
        PgSettings::parse(settings).map(|_| ())
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        if operation != QUERY {
            return Err(ConnectorError::Invalid(format!(
                "the `postgres` connector has no operation `{operation}`; it has `{QUERY}`"
            )));
        }
        let settings = PgSettings::parse(&ctx.connection.settings)
            .map_err(|error| ConnectorError::Invalid(format!("settings: {error}")))?;
        let request = QueryRequest::parse(params)?;
        let secrets = Secrets::of(ctx.credentials);
        let mut session = session::open(ctx, &settings, request.timeout, &secrets).await?;
        let output = run::query(&mut session, &request, &secrets).await;
        session.close().await;
        output
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let outcome = async {
            let settings = PgSettings::parse(&ctx.connection.settings)
                .map_err(|error| ConnectorError::Invalid(format!("settings: {error}")))?;
            let secrets = Secrets::of(ctx.credentials);
            let mut session = session::open(ctx, &settings, TEST_TIMEOUT, &secrets).await?;
            let answered = run::select_one(&mut session, &secrets).await;
            let channel = if session.encrypted {
                "TLS"
            } else {
                "unencrypted"
            };
            session.close().await;
            answered?;
            Ok::<_, ConnectorError>(format!(
                "connected to {}:{}/{} ({channel}); SELECT 1 answered",
                settings.host, settings.port, settings.database
            ))
        };
        match outcome.await {
            Ok(message) => ConnectionTestResult { ok: true, message },
            Err(error) => ConnectionTestResult {
                ok: false,
                message: error.to_string(),
            },
        }
    }
}

fn query_parameters() -> Value {
    json!({
        "type": "object",
        "required": ["sql"],
        "properties": {
            "sql": {
                "type": "string",
                "minLength": 1,
                "description": "One SQL statement; refer to parameters as $1, $2, ..."
            },
            "params": {
                "type": "array",
                "maxItems": request::MAX_PARAMS,
                "description": "Values for $1, $2, ... in order: null, booleans, integers (int8), numbers (float8), strings (text), objects and arrays (jsonb). Cast in the SQL where needed, such as $1::uuid.",
                "items": {}
            },
            "maxRows": {
                "type": "integer",
                "minimum": 1,
                "maximum": request::MAX_ROWS,
                "default": request::DEFAULT_MAX_ROWS,
                "description": "At most this many rows are returned; `truncated` says whether there were more."
            },
            "timeoutMs": {
                "type": "integer",
                "minimum": 1,
                "maximum": request::MAX_TIMEOUT_MS,
                "default": request::DEFAULT_TIMEOUT_MS,
                "description": "The statement is cancelled after this long."
            }
        },
        "additionalProperties": false
    })
}

fn query_output() -> Value {
    json!({
        "type": "object",
        "required": ["rows", "rowCount", "columns", "truncated"],
        "properties": {
            "rows": {
                "type": "array",
                "items": {"type": "object"},
                "description": "One object per row, keyed by column name."
            },
            "rowCount": {
                "type": "integer",
                "description": "The rows the statement returned, all of them and not only those in `rows`; for a statement that returns none (UPDATE without RETURNING), the rows it affected."
            },
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "description": "The Postgres type, such as int4, text or timestamptz."}
                    }
                }
            },
            "truncated": {
                "type": "boolean",
                "description": "Whether rows were left out, past maxRows or past the output size limit."
            }
        }
    })
}

#[cfg(test)]
mod tests;

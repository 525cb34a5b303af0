//! The `query` operation's parameters, and each JSON value as a typed bind parameter.
//!
//! A parameter's Postgres type follows its JSON type (see the module above for the table)
//! and is sent with the statement, so the server parses `$1 + 1` or `WHERE id = $1`
//! against the value the author gave, not a guess. `null` goes untyped (OID 0): the server
//! infers its type from where it stands, so it fits any column; where nothing says
//! (`SELECT $1`), it is sent again as a text NULL ([`Param::typed_nulls`]).

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::types::Type;

use crate::ConnectorError;

pub(super) const DEFAULT_MAX_ROWS: u64 = 1000;
pub(super) const MAX_ROWS: u64 = 10_000;
pub(super) const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// As for `http.request` steps.
pub(super) const MAX_TIMEOUT_MS: u64 = 300_000;
/// The protocol counts parameters in 16 bits.
pub(super) const MAX_PARAMS: usize = 65_535;

const KNOWN_PARAMS: [&str; 4] = ["sql", "params", "maxRows", "timeoutMs"];

// Built-in type OIDs, fixed in every Postgres (pg_type.dat).
const BOOL: Oid = Oid(16);
const INT8: Oid = Oid(20);
const TEXT: Oid = Oid(25);
const FLOAT8: Oid = Oid(701);
const JSONB: Oid = Oid(3802);
/// "Unspecified": the server infers the type.
const UNSPECIFIED: Oid = Oid(0);

/// The jsonb binary format: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

#[derive(Debug)]
pub(super) struct QueryRequest {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
    pub(super) max_rows: usize,
    pub(super) timeout: Duration,
}

impl QueryRequest {
    pub(super) fn parse(params: &Value) -> Result<Self, ConnectorError> {
        let fields = params
            .as_object()
            .ok_or_else(|| invalid("params of `query` must be an object".to_owned()))?;
        if let Some(unknown) = fields
            .keys()
            .find(|key| !KNOWN_PARAMS.contains(&key.as_str()))
        {
            return Err(invalid(format!(
                "params.{unknown} is not a parameter of `query`; known: {}",
                KNOWN_PARAMS.join(", ")
            )));
        }
        let sql = match present(fields, "sql") {
            Some(Value::String(sql)) if !sql.trim().is_empty() => sql.clone(),
            _ => {
                return Err(invalid(
                    "params.sql is required: one SQL statement".to_owned(),
                ));
            }
        };
        let values = match present(fields, "params") {
            None => Vec::new(),
            Some(Value::Array(values)) if values.len() <= MAX_PARAMS => values.clone(),
            Some(Value::Array(_)) => {
                return Err(invalid(format!(
                    "params.params may hold at most {MAX_PARAMS} values"
                )));
            }
            Some(_) => {
                return Err(invalid(
                    "params.params must be a list of values for $1, $2, ...".to_owned(),
                ));
            }
        };
        let params = values
            .iter()
            .enumerate()
            .map(|(index, value)| Param::from_json(index, value))
            .collect::<Result<_, _>>()?;
        let max_rows = integer(fields, "maxRows", MAX_ROWS)?.unwrap_or(DEFAULT_MAX_ROWS);
        let timeout_ms =
            integer(fields, "timeoutMs", MAX_TIMEOUT_MS)?.unwrap_or(DEFAULT_TIMEOUT_MS);
        Ok(Self {
            sql,
            params,
            // At most MAX_ROWS, which fits any usize.
            max_rows: usize::try_from(max_rows).unwrap_or(usize::MAX),
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::Invalid(message)
}

/// `null` is the same as absent: a template that rendered nothing gives one.
fn present<'a>(fields: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    fields.get(field).filter(|value| !value.is_null())
}

fn integer(
    fields: &Map<String, Value>,
    field: &str,
    max: u64,
) -> Result<Option<u64>, ConnectorError> {
    match present(fields, field) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|number| (1..=max).contains(number))
            .map(Some)
            .ok_or_else(|| invalid(format!("params.{field} must be an integer from 1 to {max}"))),
    }
}

/// One bind parameter, typed by its JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Null,
    /// A NULL of type text, for where the server cannot infer one.
    TextNull,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Serialized JSON, for an object or an array.
    Jsonb(String),
}

impl Param {
    fn from_json(index: usize, value: &Value) -> Result<Self, ConnectorError> {
        Ok(match value {
            Value::Null => Param::Null,
            Value::Bool(flag) => Param::Bool(*flag),
            Value::Number(number) => {
                if let Some(integer) = number.as_i64() {
                    Param::Int(integer)
                } else if number.is_u64() {
                    return Err(invalid(format!(
                        "params.params[{index}] is larger than int8 allows; pass it as a string and cast it (`${}::numeric`)",
                        index + 1
                    )));
                } else {
                    Param::Float(number.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(text) => Param::Text(text.clone()),
            Value::Array(_) | Value::Object(_) => Param::Jsonb(value.to_string()),
        })
    }

    /// `params` with every untyped NULL typed as text, if there is one to type.
    pub(super) fn typed_nulls(params: &[Param]) -> Option<Vec<Param>> {
        params.contains(&Param::Null).then(|| {
            params
                .iter()
                .map(|param| match param {
                    Param::Null => Param::TextNull,
                    other => other.clone(),
                })
                .collect()
        })
    }

    pub(super) fn type_info(&self) -> PgTypeInfo {
        PgTypeInfo::with_oid(match self {
            Param::Null => UNSPECIFIED,
            Param::TextNull => TEXT,
            Param::Bool(_) => BOOL,
            Param::Int(_) => INT8,
            Param::Float(_) => FLOAT8,
            Param::Text(_) => TEXT,
            Param::Jsonb(_) => JSONB,
        })
    }
}

/// A parameter's type depends on its value, which [`Encode::produces`] reports; this is
/// only the fallback the trait asks for.
impl Type<Postgres> for Param {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(UNSPECIFIED)
    }
}

/// The binary formats of the types [`Param::type_info`] names (big-endian, as Postgres's
/// `*send` functions write them).
impl Encode<'_, Postgres> for Param {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Param::Null | Param::TextNull => return Ok(IsNull::Yes),
            Param::Bool(flag) => buf.push(u8::from(*flag)),
            Param::Int(integer) => buf.extend_from_slice(&integer.to_be_bytes()),
            Param::Float(number) => buf.extend_from_slice(&number.to_be_bytes()),
            Param::Text(text) => buf.extend_from_slice(text.as_bytes()),
            Param::Jsonb(json) => {
                buf.push(JSONB_VERSION);
                buf.extend_from_slice(json.as_bytes());
            }
        }
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.type_info())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parameters_take_their_type_from_the_json_value() {
        let request = QueryRequest::parse(&json!({
            "sql": "SELECT $1, $2, $3, $4, $5, $6, $7",
            "params": [null, true, -7, 2.5, "text", {"a": 1}, [1, 2]]
        }))
        .expect("a valid request");
        assert_eq!(
            request.params,
            [
                Param::Null,
                Param::Bool(true),
                Param::Int(-7),
                Param::Float(2.5),
                Param::Text("text".to_owned()),
                Param::Jsonb(r#"{"a":1}"#.to_owned()),
                Param::Jsonb("[1,2]".to_owned()),
            ]
        );
        assert_eq!(request.max_rows, 1000);
        assert_eq!(request.timeout, Duration::from_secs(30));
    }

    #[test]
    fn malformed_requests_name_the_field_at_fault() {
        let cases = [
            (json!({}), "params.sql is required"),
            (json!({"sql": "  "}), "params.sql is required"),
            (
                json!({"sql": "SELECT 1", "params": {"a": 1}}),
                "params.params must be a list",
            ),
            (
                json!({"sql": "SELECT 1", "maxRows": 0}),
                "params.maxRows must be an integer from 1 to 10000",
            ),
            (
                json!({"sql": "SELECT 1", "maxRows": 10_001}),
                "params.maxRows",
            ),
            (
                json!({"sql": "SELECT 1", "timeoutMs": 300_001}),
                "params.timeoutMs must be an integer from 1 to 300000",
            ),
            (
                json!({"sql": "SELECT $1", "params": [u64::MAX]}),
                "params.params[0] is larger than int8 allows",
            ),
            (
                json!({"sql": "SELECT 1", "rows": 5}),
                "params.rows is not a parameter of `query`; known: sql, params, maxRows, timeoutMs",
            ),
            (json!("SELECT 1"), "must be an object"),
        ];
        for (params, expected) in cases {
            let error = QueryRequest::parse(&params).expect_err("a malformed request");
            assert!(
                matches!(&error, ConnectorError::Invalid(message) if message.contains(expected)),
                "{params}: {error:?}"
            );
        }
    }
}

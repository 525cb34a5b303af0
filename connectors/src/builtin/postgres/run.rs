//! Running the statement and shaping its result as the `query` output.
//!
//! - The statement is prepared first, to learn its columns (so an empty result still has
//!   them) and whether each column's type can be read from its binary form. If one
//!   cannot, the statement runs wrapped as `WITH q (c1, ...) AS (<sql>) SELECT c1,
//!   c2::text, ... FROM q`, so the server writes that column in its own text form; the
//!   same single statement runs, data-modifying ones included.
//! - Every row is read to the end even past `maxRows`: stopping early would leave the
//!   statement unfinished, and a write (`INSERT ... RETURNING`) would then roll back. Rows
//!   past the limit, or past [`MAX_OUTPUT_BYTES`] of JSON, are dropped as they arrive, so
//!   memory stays bounded; the statement timeout bounds the time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgArguments, PgColumn, PgConnection, PgRow, PgStatement, PgTypeInfo};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Either, Executor, Row, SqlSafeStr, Statement, TypeInfo,
};

use super::errors::{Secrets, statement_failure};
use super::request::{Param, QueryRequest};
use super::session::Session;
use super::values::{self, Malformed};
use crate::ConnectorError;

/// The rows of one step's output, as JSON; as much as an HTTP step may read.
pub(super) const MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;

/// How long past the statement timeout the client waits for a server that did not stop.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// What the output says about a column.
struct OutputColumn {
    name: String,
    type_name: String,
}

/// Runs `request` on the session; the `query` output.
pub(super) async fn query(
    session: &mut Session,
    request: &QueryRequest,
    secrets: &Secrets,
) -> Result<Value, ConnectorError> {
    tokio::time::timeout(
        request.timeout + CLIENT_GRACE,
        run(session, request, secrets),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ConnectorError::Failed(format!(
            "the query did not finish within its timeout of {} ms",
            request.timeout.as_millis()
        )))
    })
}

/// `SELECT 1`, for the connection test.
pub(super) async fn select_one(
    session: &mut Session,
    secrets: &Secrets,
) -> Result<(), ConnectorError> {
    sqlx::query("SELECT 1")
        .execute(&mut session.connection)
        .await
        .map(drop)
        .map_err(|error| statement_failure(&error, secrets))
}

async fn run(
    session: &mut Session,
    request: &QueryRequest,
    secrets: &Secrets,
) -> Result<Value, ConnectorError> {
    let connection = &mut session.connection;
    let Prepared {
        statement,
        columns,
        params,
    } = prepare_readable(connection, request, secrets).await?;
    let mut arguments = PgArguments::default();
    for param in params.iter() {
        arguments.add(param).map_err(|error| {
            ConnectorError::Invalid(format!("a parameter cannot be sent: {error}"))
        })?;
    }
    let mut results = connection.fetch_many(statement.query_with(arguments));
    let mut rows = Vec::new();
    let mut output_bytes = 0;
    let mut returned: u64 = 0;
    let mut affected: u64 = 0;
    let mut truncated = false;
    while let Some(result) = results
        .try_next()
        .await
        .map_err(|error| statement_failure(&error, secrets))?
    {
        let row = match result {
            Either::Left(done) => {
                affected += done.rows_affected();
                continue;
            }
            Either::Right(row) => row,
        };
        returned += 1;
        if truncated || rows.len() >= request.max_rows {
            truncated = true;
            continue;
        }
        let row = Value::Object(row_object(&row, statement.columns(), &columns)?);
        output_bytes += row.to_string().len();
        if output_bytes > MAX_OUTPUT_BYTES {
            truncated = true;
            continue;
        }
        rows.push(row);
    }
    let row_count = if columns.is_empty() {
        affected
    } else {
        returned
    };
    Ok(json!({
        "rows": rows,
        "rowCount": row_count,
        "columns": columns
            .iter()
            .map(|column| json!({"name": column.name, "type": column.type_name}))
            .collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

/// The statement to run, what the output says of its columns, and the parameters to bind.
struct Prepared<'a> {
    statement: PgStatement,
    columns: Vec<OutputColumn>,
    params: Cow<'a, [Param]>,
}

/// Prepares the request's statement, typing its NULLs as text if the server could not
/// infer them, and wrapping it if a column can only be read as text.
async fn prepare_readable<'a>(
    connection: &mut PgConnection,
    request: &'a QueryRequest,
    secrets: &Secrets,
) -> Result<Prepared<'a>, ConnectorError> {
    let mut params = Cow::Borrowed(request.params.as_slice());
    let mut parameter_types: Vec<_> = params.iter().map(Param::type_info).collect();
    let mut prepared = prepare(connection, request.sql.clone(), &parameter_types).await;
    if let Err(error) = &prepared
        && is_indeterminate_type(error)
        && let Some(typed) = Param::typed_nulls(&params)
    {
        params = Cow::Owned(typed);
        parameter_types = params.iter().map(Param::type_info).collect();
        prepared = prepare(connection, request.sql.clone(), &parameter_types).await;
    }
    let prepared = prepared.map_err(|error| statement_failure(&error, secrets))?;
    let columns = output_columns(prepared.columns());
    let readable: Vec<bool> = prepared
        .columns()
        .iter()
        .map(|column| values::is_readable(column.type_info()))
        .collect();
    if readable.iter().all(|&readable| readable) {
        return Ok(Prepared {
            statement: prepared,
            columns,
            params,
        });
    }
    let statement = prepare(connection, as_text(&request.sql, &readable), &parameter_types)
        .await
        .map_err(|error| {
            ConnectorError::Invalid(format!(
                "a column's type can only be read as text, and this statement cannot be wrapped to ask for it ({}); cast the column to text in the query (`column::text`)",
                statement_failure(&error, secrets)
            ))
        })?;
    Ok(Prepared {
        statement,
        columns,
        params,
    })
}

async fn prepare(
    connection: &mut PgConnection,
    sql: String,
    parameter_types: &[PgTypeInfo],
) -> Result<PgStatement, sqlx::Error> {
    // The SQL is the workflow author's own, run with their database user's rights;
    // values travel separately as bind parameters.
    connection
        .prepare_with(AssertSqlSafe(sql).into_sql_str(), parameter_types)
        .await
}

/// SQLSTATE 42P08: a parameter's type could not be inferred (`SELECT $1` with a NULL).
fn is_indeterminate_type(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|reported| reported.code())
        .is_some_and(|code| code == "42P08")
}

/// Names that repeat get `_2`, `_3`, ... so each column keeps its value in a row object.
fn output_columns(columns: &[PgColumn]) -> Vec<OutputColumn> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    columns
        .iter()
        .map(|column| {
            let count = seen.entry(column.name()).or_default();
            *count += 1;
            let name = if *count == 1 {
                column.name().to_owned()
            } else {
                format!("{}_{count}", column.name())
            };
            OutputColumn {
                name,
                type_name: column.type_info().name().to_ascii_lowercase(),
            }
        })
        .collect()
}

/// The statement with each column `readable` says cannot be read cast to text.
fn as_text(sql: &str, readable: &[bool]) -> String {
    // A trailing `;` would end the statement inside the parentheses.
    let body = sql.trim_end().trim_end_matches(';').trim_end();
    let names: Vec<String> = (1..=readable.len())
        .map(|index| format!("c{index}"))
        .collect();
    let selected: Vec<String> = names
        .iter()
        .zip(readable)
        .map(|(name, &readable)| {
            if readable {
                name.clone()
            } else {
                format!("{name}::text")
            }
        })
        .collect();
    // The body on lines of its own, so a `--` comment on its last line ends there.
    format!(
        "WITH aos_query ({}) AS (\n{body}\n)\nSELECT {} FROM aos_query",
        names.join(", "),
        selected.join(", ")
    )
}

fn row_object(
    row: &PgRow,
    executed: &[PgColumn],
    columns: &[OutputColumn],
) -> Result<Map<String, Value>, ConnectorError> {
    let mut object = Map::new();
    for (index, (column, output)) in executed.iter().zip(columns).enumerate() {
        let raw = row.try_get_raw(index).map_err(|error| {
            ConnectorError::Failed(format!("could not read column `{}`: {error}", output.name))
        })?;
        let value = values::to_json(column.type_info(), raw).map_err(|Malformed(reason)| {
            ConnectorError::Failed(format!(
                "could not read column `{}` ({}): {reason}",
                output.name, output.type_name
            ))
        })?;
        object.insert(output.name.clone(), value);
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::as_text;

    #[test]
    fn unreadable_columns_are_asked_for_as_text() {
        assert_eq!(
            as_text("SELECT a, b FROM t -- note\n ; ", &[true, false]),
            "WITH aos_query (c1, c2) AS (\nSELECT a, b FROM t -- note\n)\nSELECT c1, c2::text FROM aos_query"
        );
    }
}

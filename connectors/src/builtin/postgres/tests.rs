//! The `postgres` connector against the machine's real Postgres (a fresh database per
//! test, from aos-testkit) and, for what a trusting local server cannot show, a fake
//! server on loopback: typed binding, the documented type mapping, limits, timeouts, how
//! failures are sorted, that the SSRF rules hold, and that no message carries the password.
//!
//! Postgres is named by `AOS_TEST_DATABASE_URL`, else the local default: these tests need
//! a server and run in both of CI's passes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use aos_domain::connection::{AuthKind, Credentials};
use aos_testkit::FreshDatabase;

use super::PostgresConnector;
use crate::builtin::test_support::{Fixture, client, message};
use crate::{Connector, ConnectorError, Registry};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Sent with every call; the local server trusts loopback and ignores it, the fake server
/// receives it: either way no message may show it.
const PASSWORD: &str = "pg-pass-0c4f9e";

/// A fresh database and how to reach it.
struct Database {
    fresh: FreshDatabase,
    name: String,
    host: String,
    port: u16,
    user: String,
}

impl Database {
    async fn create() -> Self {
        let admin =
            aos_testkit::postgres_admin_url().unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
        let fresh = FreshDatabase::postgres(&admin, "aos_conn_pg")
            .await
            .expect("a fresh Postgres database (is Postgres running?)");
        let url = url::Url::parse(fresh.url()).expect("a database URL");
        Self {
            name: url.path().trim_start_matches('/').to_owned(),
            host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: url.port().unwrap_or(5432),
            user: url.username().to_owned(),
            fresh,
        }
    }

    /// As stored: with the registry's own `maxRequestsPerSecond` beside the connector's keys.
    fn settings(&self, ssl_mode: &str) -> Value {
        json!({
            "host": self.host, "port": self.port, "database": self.name, "sslMode": ssl_mode,
            "maxRequestsPerSecond": 20
        })
    }

    /// A fixture reaching this database; its client reaches loopback when `allow_private`.
    fn fixture(&self, ssl_mode: &str, allow_private: bool) -> Fixture {
        Fixture::with_client(
            "postgres",
            self.settings(ssl_mode),
            basic(&self.user),
            client(allow_private),
        )
    }

    async fn query(&self, params: Value) -> Result<Value, ConnectorError> {
        let fixture = self.fixture("disable", true);
        PostgresConnector::default()
            .execute(&fixture.ctx(), "query", &params)
            .await
    }

    async fn run(&self, sql: &str) -> Value {
        self.query(json!({"sql": sql}))
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error:?}"))
    }

    async fn destroy(self) {
        self.fresh.destroy().await;
    }
}

fn basic(user: &str) -> Credentials {
    Credentials::Basic {
        username: user.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

fn assert_no_password(error: &ConnectorError) {
    assert!(
        !message(error).contains(PASSWORD) && !format!("{error:?}").contains(PASSWORD),
        "{error:?}"
    );
}

fn first_row(output: &Value) -> &Value {
    &output["rows"][0]
}

fn column_types(output: &Value) -> Vec<(String, String)> {
    output["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|column| {
            (
                column["name"].as_str().unwrap_or_default().to_owned(),
                column["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn parameters_are_bound_with_the_type_of_their_json_value() {
    let db = Database::create().await;

    let output = db
        .query(json!({
            "sql": "SELECT $1 AS nothing, $1 IS NULL AS is_null, NOT $2 AS negated, $3 + 1 AS next, $4 * 2 AS doubled, $5 || '!' AS shout, $6 -> 'k' AS picked, $7::uuid AS id",
            "params": [null, true, 41, 1.25, "hi", {"k": [1, "x"]}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]
        }))
        .await
        .expect("the query runs");

    assert_eq!(
        first_row(&output),
        &json!({
            "nothing": null, "is_null": true, "negated": false, "next": 42, "doubled": 2.5,
            "shout": "hi!", "picked": [1, "x"], "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        })
    );
    let types = column_types(&output);
    assert_eq!(types[3], ("next".to_owned(), "int8".to_owned()));
    assert_eq!(types[4], ("doubled".to_owned(), "float8".to_owned()));
    assert_eq!(types[6], ("picked".to_owned(), "jsonb".to_owned()));

    // Values are data, never SQL; an untyped null fits a typed column; int8 fits int4.
    db.run("CREATE TABLE notes (id int4 PRIMARY KEY, body text, extra int4, doc jsonb)")
        .await;
    let hostile = "x'); DROP TABLE notes; --";
    let inserted = db
        .query(json!({
            "sql": "INSERT INTO notes (id, body, extra, doc) VALUES ($1, $2, $3, $4) RETURNING id, body, extra, doc",
            "params": [7, hostile, null, {"tags": ["a"]}]
        }))
        .await
        .expect("the insert runs");
    assert_eq!(
        inserted["rows"],
        json!([{"id": 7, "body": hostile, "extra": null, "doc": {"tags": ["a"]}}])
    );
    assert_eq!(
        db.run("SELECT count(*) AS n FROM notes").await["rows"],
        json!([{"n": 1}])
    );
    db.destroy().await;
}

#[tokio::test]
async fn each_supported_type_reads_as_its_documented_json() {
    let db = Database::create().await;
    db.run("CREATE TYPE mood AS ENUM ('sad', 'happy')").await;
    db.run("CREATE DOMAIN positive AS int4 CHECK (VALUE > 0)")
        .await;

    let output = db
        .run(
            r#"SELECT
                true AS b, 7::int2 AS i2, 42::int4 AS i4, 9007199254740993::int8 AS i8, 42::oid AS o,
                1.1::float4 AS f4, 2.25::float8 AS f8, 'NaN'::float8 AS f_nan, '-Infinity'::float8 AS f_minf,
                12.50::numeric(10,2) AS n, '-0.0001'::numeric AS n_small, 'NaN'::numeric AS n_nan,
                123456789012345678901234567890.123::numeric AS n_big, 0::numeric AS n_zero,
                'txt'::text AS t, 'vc'::varchar(5) AS vc, 'ab'::char(4) AS bp, 'nm'::name AS nm, 'x'::"char" AS ch,
                '<a>1</a>'::xml AS x,
                'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS u,
                '2024-02-29'::date AS d, 'infinity'::date AS d_inf,
                '2024-02-29 13:14:15.123456'::timestamp AS ts, '2024-02-29 13:14:15'::timestamp AS ts_whole,
                '2024-02-29 13:14:15.5+02'::timestamptz AS tstz, '-infinity'::timestamptz AS tstz_inf,
                '13:14:15.5'::time AS tm, '13:14:15+05:30'::timetz AS tmtz,
                '1 year 2 months 3 days 04:05:06.5'::interval AS iv, '0'::interval AS iv_zero,
                '{"a": [1, 2.5]}'::json AS j, '{"b": null}'::jsonb AS jb,
                '\xdeadbeef'::bytea AS by,
                '192.168.0.1'::inet AS ip, '10.0.0.0/8'::cidr AS net, '::1'::inet AS ip6, '10.1.2.3/24'::inet AS ip_net,
                ARRAY[1, NULL, 3]::int4[] AS arr, ARRAY['a', 'b']::text[] AS arr_t,
                '{{1,2},{3,4}}'::int4[] AS arr_2d, '{}'::int4[] AS arr_empty,
                'happy'::mood AS m, ARRAY['sad', 'happy']::mood[] AS arr_m, 5::positive AS dom,
                NULL::int4 AS null_i"#,
        )
        .await;

    // Written as JSON text: the literal is too long for `json!`.
    let expected: Value = serde_json::from_str(
        r#"{
            "b": true, "i2": 7, "i4": 42, "i8": 9007199254740993, "o": 42,
            "f4": 1.1, "f8": 2.25, "f_nan": "NaN", "f_minf": "-Infinity",
            "n": "12.50", "n_small": "-0.0001", "n_nan": "NaN",
            "n_big": "123456789012345678901234567890.123", "n_zero": "0",
            "t": "txt", "vc": "vc", "bp": "ab  ", "nm": "nm", "ch": "x", "x": "<a>1</a>",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "d": "2024-02-29", "d_inf": "infinity",
            "ts": "2024-02-29T13:14:15.123456", "ts_whole": "2024-02-29T13:14:15",
            "tstz": "2024-02-29T11:14:15.5Z", "tstz_inf": "-infinity",
            "tm": "13:14:15.5", "tmtz": "13:14:15+05:30",
            "iv": "P1Y2M3DT4H5M6.5S", "iv_zero": "PT0S",
            "j": {"a": [1, 2.5]}, "jb": {"b": null},
            "by": "3q2+7w==",
            "ip": "192.168.0.1", "net": "10.0.0.0/8", "ip6": "::1", "ip_net": "10.1.2.3/24",
            "arr": [1, null, 3], "arr_t": ["a", "b"], "arr_2d": [[1, 2], [3, 4]], "arr_empty": [],
            "m": "happy", "arr_m": ["sad", "happy"], "dom": 5,
            "null_i": null
        }"#,
    )
    .expect("valid JSON");
    assert_eq!(first_row(&output), &expected);
    let types = column_types(&output);
    let type_of = |name: &str| {
        types
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, ty)| ty.as_str())
    };
    assert_eq!(type_of("tstz"), Some("timestamptz"));
    assert_eq!(type_of("arr"), Some("int4[]"));
    assert_eq!(type_of("m"), Some("mood"));
    assert_eq!(output["rowCount"], 1);
    assert_eq!(output["truncated"], false);
    db.destroy().await;
}

#[tokio::test]
async fn other_types_come_back_in_the_servers_text_form() {
    let db = Database::create().await;

    let output = db
        .run(
            "SELECT int4range(1, 5) AS r, point(1, 2) AS p, ROW(1, 'a') AS rec, \
             ARRAY[int4range(1, 2)] AS ranges, 'a:1 b:2'::tsvector AS tv, 42 AS plain",
        )
        .await;
    assert_eq!(
        first_row(&output),
        &json!({
            "r": "[1,5)", "p": "(1,2)", "rec": "(1,a)", "ranges": "{\"[1,2)\"}",
            "tv": "'a':1 'b':2", "plain": 42
        })
    );
    assert_eq!(
        column_types(&output)[0],
        ("r".to_owned(), "int4range".to_owned()),
        "the column keeps its own type"
    );

    // Order, parameters and data-modifying statements survive the rewrite.
    db.run("CREATE TABLE spans (id int4, span int4range)").await;
    let inserted = db
        .query(json!({
            "sql": "INSERT INTO spans SELECT g, int4range(g, g + $1::int4) FROM generate_series(1, 3) g RETURNING id, span;",
            "params": [10]
        }))
        .await
        .expect("the insert runs");
    assert_eq!(
        inserted["rows"],
        json!([{"id": 1, "span": "[1,11)"}, {"id": 2, "span": "[2,12)"}, {"id": 3, "span": "[3,13)"}])
    );
    let descending = db.run("SELECT span FROM spans ORDER BY id DESC").await;
    assert_eq!(
        descending["rows"],
        json!([{"span": "[3,13)"}, {"span": "[2,12)"}, {"span": "[1,11)"}])
    );
    db.destroy().await;
}

#[tokio::test]
async fn rows_past_max_rows_are_counted_not_returned_and_writes_still_commit() {
    let db = Database::create().await;

    let output = db
        .query(json!({"sql": "SELECT g AS n FROM generate_series(1, 50) g", "maxRows": 10}))
        .await
        .expect("the query runs");
    assert_eq!(output["rows"].as_array().map(Vec::len), Some(10));
    assert_eq!(output["rows"][9], json!({"n": 10}));
    assert_eq!(output["rowCount"], 50);
    assert_eq!(output["truncated"], true);

    db.run("CREATE TABLE items (n int4)").await;
    let inserted = db
        .query(json!({
            "sql": "INSERT INTO items SELECT g FROM generate_series(1, 5) g RETURNING n",
            "maxRows": 2
        }))
        .await
        .expect("the insert runs");
    assert_eq!(inserted["rows"], json!([{"n": 1}, {"n": 2}]));
    assert_eq!(inserted["rowCount"], 5);
    assert_eq!(
        db.run("SELECT count(*) AS n FROM items").await["rows"],
        json!([{"n": 5}]),
        "every row was inserted, not only those returned"
    );

    let updated = db.run("UPDATE items SET n = n + 1 WHERE n > 2").await;
    assert_eq!(
        updated,
        json!({"rows": [], "rowCount": 3, "columns": [], "truncated": false}),
        "a statement without rows reports the rows it affected"
    );
    let empty = db.run("SELECT n, n AS n FROM items WHERE false").await;
    assert_eq!(
        empty["columns"],
        json!([{"name": "n", "type": "int4"}, {"name": "n_2", "type": "int4"}]),
        "an empty result still has its columns, and a repeated name is kept apart"
    );
    db.destroy().await;
}

#[tokio::test]
async fn mistakes_in_the_statement_are_invalid_with_the_servers_message() {
    let db = Database::create().await;
    db.run("CREATE TABLE people (email text UNIQUE)").await;
    db.run("INSERT INTO people VALUES ('ada@example.org')")
        .await;

    let cases = [
        ("SELEC 1", "42601", "syntax error"),
        (
            "SELECT * FROM nowhere",
            "42P01",
            "\"nowhere\" does not exist",
        ),
        ("SELECT nope FROM people", "42703", "nope"),
        (
            "INSERT INTO people VALUES ('ada@example.org')",
            "23505",
            "already exists",
        ),
        ("SELECT 1/0", "22012", "division by zero"),
    ];
    for (sql, code, expected) in cases {
        let error = db
            .query(json!({"sql": sql}))
            .await
            .expect_err("the statement is wrong");
        assert!(
            matches!(&error, ConnectorError::Invalid(text) if text.contains(code) && text.contains(expected)),
            "{sql}: {error:?}"
        );
        assert_no_password(&error);
    }
    let error = db
        .query(json!({"sql": "SELEC 1"}))
        .await
        .expect_err("a syntax error");
    assert!(message(&error).contains("at character 1"), "{error:?}");
    db.destroy().await;
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_cancelled() {
    let db = Database::create().await;
    let started = Instant::now();

    let error = db
        .query(json!({"sql": "SELECT pg_sleep(20)", "timeoutMs": 300}))
        .await
        .expect_err("the statement takes too long");

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&error, ConnectorError::Failed(text) if text.contains("statement timeout") && text.contains("57014")),
        "{error:?}"
    );
    assert_no_password(&error);
    db.destroy().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allowed_them() {
    let db = Database::create().await;

    for host in ["127.0.0.1", "localhost"] {
        let mut settings = db.settings("disable");
        settings["host"] = json!(host);
        let fixture = Fixture::with_client("postgres", settings, basic(&db.user), client(false));
        let error = PostgresConnector::default()
            .execute(&fixture.ctx(), "query", &json!({"sql": "SELECT 1"}))
            .await
            .expect_err("loopback is off limits");
        assert!(message(&error).contains("loopback"), "{host}: {error:?}");
        assert_no_password(&error);
        let tested = PostgresConnector::default().test(&fixture.ctx()).await;
        assert!(
            !tested.ok && tested.message.contains("loopback"),
            "{}",
            tested.message
        );
    }
    db.destroy().await;
}

/// A server that asks for a cleartext password and refuses whatever it gets, as Postgres
/// does for a wrong one; it quotes the password back, as a hostile server might.
async fn refusing_server() -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let addr = listener.local_addr().expect("an address");
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("a client");
        let mut head = [0u8; 8];
        stream.read_exact(&mut head).await.expect("a first message");
        if head[4..] == [0x04, 0xD2, 0x16, 0x2F] {
            stream.write_all(b"N").await.expect("declining TLS");
            stream
                .read_exact(&mut head)
                .await
                .expect("a startup message");
        }
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let mut startup = vec![0u8; usize::try_from(length).expect("a length") - 8];
        stream
            .read_exact(&mut startup)
            .await
            .expect("the startup message");
        // AuthenticationCleartextPassword.
        stream
            .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
            .await
            .expect("asking for the password");
        let mut kind_and_length = [0u8; 5];
        stream
            .read_exact(&mut kind_and_length)
            .await
            .expect("a password message");
        let length = u32::from_be_bytes([
            kind_and_length[1],
            kind_and_length[2],
            kind_and_length[3],
            kind_and_length[4],
        ]);
        let mut password = vec![0u8; usize::try_from(length).expect("a length") - 4];
        stream
            .read_exact(&mut password)
            .await
            .expect("the password");
        let password = String::from_utf8_lossy(&password)
            .trim_end_matches('\0')
            .to_owned();
        let mut fields = Vec::new();
        for (code, value) in [
            (b'S', "FATAL".to_owned()),
            (b'V', "FATAL".to_owned()),
            (b'C', "28P01".to_owned()),
            (
                b'M',
                format!("password authentication failed for user \"alice\" (got {password})"),
            ),
        ] {
            fields.push(code);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut error = vec![b'E'];
        error.extend_from_slice(
            &u32::try_from(fields.len() + 4)
                .expect("a length")
                .to_be_bytes(),
        );
        error.extend_from_slice(&fields);
        stream.write_all(&error).await.expect("refusing");
        password
    });
    (addr, task)
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_and_the_password_is_not_shown() {
    let (addr, server) = refusing_server().await;
    let settings =
        json!({"host": "127.0.0.1", "port": addr.port(), "database": "app", "sslMode": "prefer"});
    let fixture = Fixture::with_client("postgres", settings, basic("alice"), client(true));

    let error = PostgresConnector::default()
        .execute(&fixture.ctx(), "query", &json!({"sql": "SELECT 1"}))
        .await
        .expect_err("the server refuses the password");

    assert_eq!(
        server.await.expect("the server ran"),
        PASSWORD,
        "the password was sent"
    );
    let ConnectorError::Unauthorized(text) = &error else {
        panic!("expected Unauthorized, got {error:?}");
    };
    assert!(
        text.contains("password authentication failed") && text.contains("28P01"),
        "{text}"
    );
    assert!(text.contains("[REDACTED]"), "{text}");
    assert_no_password(&error);
}

#[tokio::test]
async fn an_unreachable_server_is_a_failure_worth_retrying() {
    // A port nobody listens on: bound, then released.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let port = listener.local_addr().expect("an address").port();
    drop(listener);
    let settings = json!({"host": "127.0.0.1", "port": port, "database": "app"});
    let fixture = Fixture::with_client("postgres", settings, basic("alice"), client(true));

    let error = PostgresConnector::default()
        .execute(&fixture.ctx(), "query", &json!({"sql": "SELECT 1"}))
        .await
        .expect_err("nobody answers");

    assert!(
        matches!(&error, ConnectorError::Failed(text) if text.contains("could not connect")),
        "{error:?}"
    );
    assert_no_password(&error);
}

#[tokio::test]
async fn tls_is_used_as_ssl_mode_says() {
    let db = Database::create().await;
    let connector = PostgresConnector::default();
    let server_has_tls = db.run("SHOW ssl").await["rows"][0]["ssl"] == "on";

    let plain = connector.test(&db.fixture("disable", true).ctx()).await;
    assert!(
        plain.ok && plain.message.contains("unencrypted"),
        "{}",
        plain.message
    );

    let required = connector.test(&db.fixture("require", true).ctx()).await;
    let preferred = connector.test(&db.fixture("prefer", true).ctx()).await;
    if server_has_tls {
        assert!(
            required.ok && required.message.contains("(TLS)"),
            "{}",
            required.message
        );
        assert!(
            preferred.ok && preferred.message.contains("(TLS)"),
            "{}",
            preferred.message
        );
        // Its certificate is self-signed (and not for 127.0.0.1): verify-full refuses it.
        let verified = connector.test(&db.fixture("verify-full", true).ctx()).await;
        assert!(
            !verified.ok && verified.message.contains("TLS"),
            "{}",
            verified.message
        );
    } else {
        assert!(
            !required.ok && required.message.contains("does not support TLS"),
            "{}",
            required.message
        );
        assert!(
            preferred.ok && preferred.message.contains("unencrypted"),
            "{}",
            preferred.message
        );
    }
    db.destroy().await;
}

#[tokio::test]
async fn the_connection_test_runs_select_1() {
    let db = Database::create().await;

    let result = PostgresConnector::default()
        .test(&db.fixture("disable", true).ctx())
        .await;
    assert!(result.ok, "{}", result.message);
    assert!(
        result.message.contains("SELECT 1 answered"),
        "{}",
        result.message
    );

    let mut settings = db.settings("disable");
    settings["database"] = json!("no_such_database_here");
    let fixture = Fixture::with_client("postgres", settings, basic(&db.user), client(true));
    let missing = PostgresConnector::default().test(&fixture.ctx()).await;
    assert!(
        !missing.ok && missing.message.contains("3D000"),
        "{}",
        missing.message
    );
    db.destroy().await;
}

#[test]
fn settings_are_checked_and_unknown_keys_listed() {
    let registry = Registry::builtin();
    let check = |settings: Value| registry.check_connection("postgres", AuthKind::Basic, &settings);
    assert_eq!(
        check(json!({"host": "db.example.com", "database": "app"})),
        Ok(())
    );
    assert_eq!(
        check(
            json!({"host": "10.0.0.5", "port": 6432, "database": "app", "sslMode": "verify-full", "maxRequestsPerSecond": 2})
        ),
        Ok(())
    );
    for (settings, expected) in [
        (json!({"database": "app"}), "host is required"),
        (
            json!({"host": "db.example.com:5432", "database": "app"}),
            "host must be",
        ),
        (json!({"host": "db.example.com"}), "database is required"),
        (
            json!({"host": "db.example.com", "database": "a".repeat(64)}),
            "at most 63 bytes",
        ),
        (
            json!({"host": "db.example.com", "database": "app", "port": "5432"}),
            "port must be",
        ),
        (
            json!({"host": "db.example.com", "database": "app", "sslMode": "verify-ca"}),
            "sslMode must be",
        ),
        (
            json!({"host": "db.example.com", "database": "app", "user": "x"}),
            "unknown setting `user`; known: host, port, database, sslMode",
        ),
    ] {
        let result = check(settings.clone());
        assert!(
            result.as_ref().is_err_and(|error| error.contains(expected)),
            "{settings}: {result:?}"
        );
    }
    assert!(
        registry
            .check_connection(
                "postgres",
                AuthKind::ApiKey,
                &json!({"host": "h", "database": "d"})
            )
            .is_err(),
        "only basic credentials"
    );
}

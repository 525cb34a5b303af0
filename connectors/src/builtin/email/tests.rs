//! The `email` connector against a real SMTP conversation with [`sink::Sink`] on
//! loopback: what reaches the server (envelope, headers, body), how refusals are sorted,
//! that the SSRF rules hold, and that no message ever carries the password.

mod sink;

use serde_json::{Value, json};

use aos_domain::connection::{AuthKind, Credentials};

use self::sink::{Session, Sink, SinkConfig};
use super::EmailConnector;
use crate::builtin::test_support::{Fixture, client};
use crate::{Connector, ConnectorContext, ConnectorError, Registry};

const PASSWORD: &str = "smtp-pass-5a7e";

/// A fixture for the sink; its client reaches loopback when `allow_private`.
fn fixture(settings: Value, password: &str, allow_private: bool) -> Fixture {
    Fixture::with_client(
        "email",
        settings,
        credentials(password),
        client(allow_private),
    )
}

/// As stored: with the registry's own `maxRequestsPerSecond` beside the connector's keys.
fn sink_settings(sink: &Sink) -> Value {
    json!({
        "host": "127.0.0.1",
        "port": sink.addr.port(),
        "security": "none",
        "from": "Billing <billing@example.com>",
        "heloName": "worker.example.net",
        "maxRequestsPerSecond": 20
    })
}

fn credentials(password: &str) -> Credentials {
    Credentials::Basic {
        username: "mailer".to_owned(),
        password: password.to_owned(),
    }
}

/// Runs `sendEmail` through the sink with `password`.
async fn send_with(
    sink: &Sink,
    password: &str,
    allow_private: bool,
    params: Value,
) -> Result<Value, ConnectorError> {
    let fixture = fixture(sink_settings(sink), password, allow_private);
    let ctx = ConnectorContext {
        idempotency_key: Some("run-7:notify"),
        ..fixture.ctx()
    };
    EmailConnector::default()
        .execute(&ctx, "sendEmail", &params)
        .await
}

async fn send(sink: &Sink, params: Value) -> Result<Value, ConnectorError> {
    send_with(sink, PASSWORD, true, params).await
}

fn only_session(sink: &Sink) -> Session {
    let sessions = sink.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sessions.into_iter().next().expect("one session")
}

/// The header block of a message, unfolded, one `Name: value` per line.
fn headers(data: &str) -> Vec<String> {
    let head = data.split("\r\n\r\n").next().unwrap_or_default();
    let mut unfolded: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match unfolded.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => unfolded.push(line.to_owned()),
        }
    }
    unfolded
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    headers
        .iter()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
}

#[tokio::test]
async fn a_message_reaches_the_server_with_its_envelope_headers_and_body() {
    let sink = Sink::start(SinkConfig::default()).await;

    let output = send(
        &sink,
        json!({
            "to": ["Ada <ada@example.org>", "bob@example.org"],
            "cc": "carol@example.org",
            "bcc": ["dave@example.org"],
            "subject": "Invoice 42",
            "text": "Hello Ada,\n.a line starting with a dot\nBye",
            "replyTo": "support@example.com"
        }),
    )
    .await
    .expect("the message is sent");

    let session = only_session(&sink);
    assert_eq!(session.ehlo, vec!["worker.example.net".to_owned()]);
    assert_eq!(
        session.signed_in,
        Some(("PLAIN".to_owned(), "mailer".to_owned(), PASSWORD.to_owned()))
    );
    assert_eq!(session.mail_from.as_deref(), Some("billing@example.com"));
    assert_eq!(
        session.rcpt_to,
        [
            "ada@example.org",
            "bob@example.org",
            "carol@example.org",
            "dave@example.org"
        ]
    );
    assert!(session.quit);
    let data = session.data.expect("a message was sent");
    let headers = headers(&data);
    assert_eq!(header(&headers, "Subject"), Some("Invoice 42"));
    assert_eq!(
        header(&headers, "From"),
        Some("Billing <billing@example.com>")
    );
    assert_eq!(
        header(&headers, "To"),
        Some("Ada <ada@example.org>, bob@example.org")
    );
    assert_eq!(header(&headers, "Cc"), Some("carol@example.org"));
    assert_eq!(header(&headers, "Reply-To"), Some("support@example.com"));
    assert_eq!(
        header(&headers, "Bcc"),
        None,
        "Bcc stays out of the headers"
    );
    assert!(!data.contains("dave@example.org"));
    assert_eq!(
        header(&headers, "Message-ID"),
        Some("<aos.run-7.notify@example.com>")
    );
    let (_, body) = data.split_once("\r\n\r\n").expect("a body");
    assert_eq!(
        body.trim_end(),
        "Hello Ada,\r\n.a line starting with a dot\r\nBye",
        "line ends are CRLF, and the sink unstuffed the dot the client stuffed"
    );
    assert_eq!(
        output,
        json!({
            "messageId": "<aos.run-7.notify@example.com>",
            "accepted": ["ada@example.org", "bob@example.org", "carol@example.org", "dave@example.org"],
            "rejected": [],
            "response": "250 2.0.0 Ok: queued as SINK42"
        })
    );
}

#[tokio::test]
async fn text_and_html_together_make_a_multipart_alternative() {
    let sink = Sink::start(SinkConfig::default()).await;

    send(
        &sink,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "plain words", "html": "<p>html words</p>", "from": "ops@example.net"}),
    )
    .await
    .expect("the message is sent");

    let session = only_session(&sink);
    assert_eq!(session.mail_from.as_deref(), Some("ops@example.net"));
    let data = session.data.expect("a message was sent");
    let headers = headers(&data);
    assert!(
        header(&headers, "Content-Type")
            .is_some_and(|value| value.starts_with("multipart/alternative")),
        "{headers:?}"
    );
    assert!(data.contains("text/plain") && data.contains("plain words"));
    assert!(data.contains("text/html") && data.contains("<p>html words</p>"));
}

#[tokio::test]
async fn auth_login_is_used_when_the_server_offers_only_that() {
    let sink = Sink::start(SinkConfig {
        mechanisms: "LOGIN",
        ..SinkConfig::default()
    })
    .await;

    send(
        &sink,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
    )
    .await
    .expect("the message is sent");

    let session = only_session(&sink);
    assert_eq!(
        session
            .signed_in
            .map(|(mechanism, ..)| mechanism)
            .as_deref(),
        Some("LOGIN")
    );
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_and_never_quoted() {
    // The sink quotes the client's AUTH line back, as a careless server might: the
    // message must still not carry the password in any form.
    let sink = Sink::start(SinkConfig {
        echoes_auth: true,
        ..SinkConfig::default()
    })
    .await;
    let wrong = "wrong-pass-93c1";

    let error = send_with(
        &sink,
        wrong,
        true,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
    )
    .await
    .expect_err("the server refuses the credentials");

    let ConnectorError::Unauthorized(message) = &error else {
        panic!("expected Unauthorized, got {error:?}");
    };
    assert!(message.starts_with("535"), "{message}");
    assert!(message.contains("[REDACTED]"), "{message}");
    assert_no_secret(&error.to_string(), wrong);
    let session = only_session(&sink);
    assert_eq!(
        session.mail_from, None,
        "nothing is sent after a refused sign-in"
    );

    // The same for AUTH LOGIN, where the password travels alone.
    let sink = Sink::start(SinkConfig {
        echoes_auth: true,
        mechanisms: "LOGIN",
        ..SinkConfig::default()
    })
    .await;
    let error = send_with(
        &sink,
        wrong,
        true,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
    )
    .await
    .expect_err("the server refuses the credentials");
    assert!(
        matches!(error, ConnectorError::Unauthorized(_)),
        "{error:?}"
    );
    assert_no_secret(&error.to_string(), wrong);
}

fn assert_no_secret(message: &str, password: &str) {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    for form in [
        password.to_owned(),
        STANDARD.encode(password),
        STANDARD.encode(format!("\0mailer\0{password}")),
    ] {
        assert!(!message.contains(&form), "{message} holds {form}");
    }
}

#[tokio::test]
async fn a_refused_recipient_is_reported_while_the_others_get_the_message() {
    let sink = Sink::start(SinkConfig {
        refused: vec![(
            "nobody@example.org".to_owned(),
            "550 5.1.1 <nobody@example.org>: mailbox unavailable",
        )],
        ..SinkConfig::default()
    })
    .await;

    let output = send(
        &sink,
        json!({"to": ["ada@example.org", "nobody@example.org"], "subject": "Hi", "text": "x"}),
    )
    .await
    .expect("the message goes to the recipient the server took");

    assert_eq!(output["accepted"], json!(["ada@example.org"]));
    assert_eq!(
        output["rejected"],
        json!([{
            "address": "nobody@example.org",
            "code": 550,
            "message": "5.1.1 <nobody@example.org>: mailbox unavailable"
        }])
    );
    let session = only_session(&sink);
    assert_eq!(session.rcpt_to, ["ada@example.org"]);
    assert!(session.data.is_some());
}

#[tokio::test]
async fn a_message_every_recipient_of_which_is_refused_fails_as_the_server_said() {
    let sink = Sink::start(SinkConfig {
        refused: vec![
            ("gone@example.org".to_owned(), "550 5.1.1 no such user"),
            ("full@example.org".to_owned(), "452 4.2.2 mailbox full"),
        ],
        ..SinkConfig::default()
    })
    .await;

    let permanent = send(
        &sink,
        json!({"to": "gone@example.org", "subject": "Hi", "text": "x"}),
    )
    .await;
    let ConnectorError::Invalid(message) = permanent.expect_err("nobody took it") else {
        panic!("a 5xx refusal is Invalid");
    };
    assert!(
        message.contains("550") && message.contains("no such user"),
        "{message}"
    );

    // One temporary refusal among them makes the whole failure worth retrying.
    let transient = send(
        &sink,
        json!({"to": ["gone@example.org", "full@example.org"], "subject": "Hi", "text": "x"}),
    )
    .await;
    let ConnectorError::Failed(message) = transient.expect_err("nobody took it") else {
        panic!("a 4xx refusal is Failed");
    };
    assert!(
        message.contains("452") && message.contains("temporary"),
        "{message}"
    );
    assert!(sink.sessions().iter().all(|session| session.data.is_none()));
}

#[tokio::test]
async fn a_temporary_refusal_of_the_sender_is_failed_with_its_code() {
    let sink = Sink::start(SinkConfig {
        mail_from_reply: Some("451 4.3.0 try again later"),
        ..SinkConfig::default()
    })
    .await;

    let error = send(
        &sink,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
    )
    .await
    .expect_err("the server put the sender off");

    let ConnectorError::Failed(message) = error else {
        panic!("a 4xx is Failed");
    };
    assert!(
        message.contains("MAIL FROM") && message.contains("451"),
        "{message}"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allowed_them() {
    let sink = Sink::start(SinkConfig::default()).await;

    let error = send_with(
        &sink,
        PASSWORD,
        false,
        json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
    )
    .await
    .expect_err("loopback is off limits");

    assert!(
        error.to_string().contains("loopback"),
        "{error:?} names the reason"
    );
    assert!(sink.sessions().is_empty(), "no connection was made");

    // A name that resolves to loopback is judged by its address, not its spelling.
    let mut settings = sink_settings(&sink);
    settings["host"] = json!("localhost");
    let fixture = fixture(settings, PASSWORD, false);
    let result = EmailConnector::default().test(&fixture.ctx()).await;
    assert!(!result.ok);
    assert!(result.message.contains("loopback"), "{}", result.message);
    assert!(sink.sessions().is_empty());
}

#[tokio::test]
async fn starttls_is_required_when_chosen_and_never_skipped() {
    // The server does not offer STARTTLS: the client must stop before signing in.
    let sink = Sink::start(SinkConfig::default()).await;
    let mut settings = sink_settings(&sink);
    settings["security"] = json!("starttls");
    let fixture = fixture(settings, PASSWORD, true);

    let error = EmailConnector::default()
        .execute(
            &fixture.ctx(),
            "sendEmail",
            &json!({"to": "ada@example.org", "subject": "Hi", "text": "x"}),
        )
        .await
        .expect_err("no STARTTLS, no sending");

    assert!(error.to_string().contains("STARTTLS"), "{error:?}");
    let session = only_session(&sink);
    assert_eq!(
        session.auth_attempts, 0,
        "the password never went out in the clear"
    );
    assert_eq!(session.mail_from, None);
}

#[tokio::test]
async fn the_connection_test_signs_in_and_sends_nothing() {
    let sink = Sink::start(SinkConfig::default()).await;
    let good = fixture(sink_settings(&sink), PASSWORD, true);

    let result = EmailConnector::default().test(&good.ctx()).await;

    assert!(result.ok, "{}", result.message);
    assert!(
        result.message.contains("signed in as mailer"),
        "{}",
        result.message
    );
    let session = only_session(&sink);
    assert!(session.signed_in.is_some() && session.quit);
    assert_eq!(session.mail_from, None);
    assert_eq!(session.data, None);

    let bad = fixture(sink_settings(&sink), "nope-0000", true);
    let result = EmailConnector::default().test(&bad.ctx()).await;
    assert!(!result.ok);
    assert!(result.message.contains("535"), "{}", result.message);
    assert!(!result.message.contains("nope-0000"));
}

#[tokio::test]
async fn malformed_parameters_fail_before_anything_is_sent() {
    let sink = Sink::start(SinkConfig::default()).await;
    let cases = [
        (
            json!({"to": "not an address", "subject": "s", "text": "x"}),
            "params.to[0]",
        ),
        (
            json!({"to": ["ada@example.org", 7], "subject": "s", "text": "x"}),
            "params.to",
        ),
        (
            json!({"subject": "s", "text": "x"}),
            "params.to is required",
        ),
        (
            json!({"to": "ada@example.org", "text": "x"}),
            "params.subject",
        ),
        (
            json!({"to": "ada@example.org", "subject": "s"}),
            "params.text or params.html",
        ),
        (
            json!({"to": "ada@example.org", "subject": "s", "text": "x", "from": "@@"}),
            "params.from",
        ),
        (
            json!({"to": "ada@example.org", "subject": "s", "text": "x", "attachments": []}),
            "known: to, cc, bcc",
        ),
        (json!("a string"), "must be an object"),
    ];
    for (params, expected) in cases {
        let error = send(&sink, params.clone())
            .await
            .expect_err("malformed parameters are refused");
        assert!(
            matches!(&error, ConnectorError::Invalid(message) if message.contains(expected)),
            "{params}: {error:?}"
        );
    }
    let too_many: Vec<String> = (0..101).map(|n| format!("r{n}@example.org")).collect();
    let error = send(&sink, json!({"to": too_many, "subject": "s", "text": "x"}))
        .await
        .expect_err("too many recipients");
    assert!(
        error.to_string().contains("at most 100 recipients"),
        "{error:?}"
    );
    assert!(sink.sessions().is_empty(), "nothing reached the server");
}

#[test]
fn settings_are_checked_and_unknown_keys_listed() {
    let registry = Registry::builtin();
    let check = |settings: Value| registry.check_connection("email", AuthKind::Basic, &settings);
    assert_eq!(
        check(json!({"host": "smtp.example.com", "from": "a@example.com"})),
        Ok(())
    );
    assert_eq!(
        check(
            json!({"host": "smtp.example.com", "port": 465, "security": "tls", "from": "A <a@example.com>", "heloName": "mx.example.com", "maxRequestsPerSecond": 2})
        ),
        Ok(())
    );
    for (settings, expected) in [
        (json!({"from": "a@example.com"}), "host is required"),
        (
            json!({"host": "smtp://x", "from": "a@example.com"}),
            "host must be",
        ),
        (json!({"host": "smtp.example.com"}), "from is required"),
        (
            json!({"host": "smtp.example.com", "from": "nope"}),
            "from must be",
        ),
        (
            json!({"host": "smtp.example.com", "from": "a@example.com", "port": 0}),
            "port must be",
        ),
        (
            json!({"host": "smtp.example.com", "from": "a@example.com", "port": 70000}),
            "port must be",
        ),
        (
            json!({"host": "smtp.example.com", "from": "a@example.com", "security": "ssl"}),
            "security must be",
        ),
        (
            json!({"host": "smtp.example.com", "from": "a@example.com", "heloName": "a b"}),
            "heloName",
        ),
        (
            json!({"host": "smtp.example.com", "from": "a@example.com", "password": "x"}),
            "unknown setting `password`; known: host, port, security, from, heloName",
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
            .check_connection("email", AuthKind::Bearer, &json!({}))
            .is_err(),
        "only basic credentials"
    );
}

#[tokio::test]
async fn transport_failures_are_failed_and_send_nothing() {
    // TLS from the first byte, to a server that speaks plain SMTP: the handshake fails.
    let sink = Sink::start(SinkConfig::default()).await;
    let mut settings = sink_settings(&sink);
    settings["security"] = json!("tls");
    let tls = fixture(settings, PASSWORD, true);
    let params = json!({"to": "ada@example.org", "subject": "Hi", "text": "x"});

    let error = EmailConnector::default()
        .execute(&tls.ctx(), "sendEmail", &params)
        .await
        .expect_err("no TLS, no session");

    assert!(
        matches!(&error, ConnectorError::Failed(text) if text.starts_with("connecting to the SMTP server")),
        "{error:?}"
    );
    assert!(
        sink.sessions()
            .iter()
            .all(|session| session.auth_attempts == 0),
        "the password never went out in the clear"
    );

    // Nobody listening at all.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let mut settings = sink_settings(&sink);
    settings["port"] = json!(closed.local_addr().expect("an address").port());
    drop(closed);
    let unreachable = fixture(settings, PASSWORD, true);
    let error = EmailConnector::default()
        .execute(&unreachable.ctx(), "sendEmail", &params)
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(&error, ConnectorError::Failed(text) if text.contains("refused")),
        "{error:?}"
    );
    assert_no_secret(&error.to_string(), PASSWORD);
}

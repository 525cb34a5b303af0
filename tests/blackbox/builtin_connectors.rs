//! The built-in connectors through the public API: for each one, a connection created and
//! tested over GraphQL, then used by a `connector` step of a run against a local fake of
//! the service (or, for `postgres`, the machine's real database), checking what the
//! service received and that the secret shows up nowhere.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Session, TestApp, data, pretty, step, string_at};

/// A server whose steps may reach loopback, and an owner with a workspace.
async fn setup() -> (TestApp, Session, String) {
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Acme").await;
    (app, owner, workspace)
}

async fn create_connection(
    app: &TestApp,
    token: &str,
    workspace: &str,
    connector: &str,
    credentials: Value,
    settings: Value,
) -> String {
    let response = app
        .gql_as(
            token,
            "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id connector authKind } }",
            json!({"input": {"workspaceId": workspace, "connector": connector, "name": connector,
                "credentials": credentials, "settings": settings}}),
        )
        .await;
    string_at(&data(&response)["createConnection"]["id"])
}

/// `testConnection`, asserting it passed.
async fn assert_test_passes(app: &TestApp, token: &str, connection: &str) {
    let tested = app.test_connection(token, connection).await;
    assert_eq!(
        data(&tested)["testConnection"]["ok"],
        true,
        "{}",
        pretty(&tested)
    );
}

/// Runs trigger.manual -> one `connector` step and returns the finished run.
async fn run_step(
    app: &TestApp,
    token: &str,
    workspace: &str,
    config: Value,
    input: Value,
) -> Value {
    let workflow = app
        .create_workflow(
            token,
            workspace,
            "uses a connector",
            json!({
                "nodes": [
                    {"id": "t", "type": "trigger.manual"},
                    {"id": "call", "type": "connector", "config": config}
                ],
                "edges": [{"from": "t", "to": "call"}]
            }),
        )
        .await;
    let run = app
        .run_workflow(token, &string_at(&workflow["id"]), input)
        .await;
    app.wait_for_run(token, &string_at(&run["id"])).await
}

fn assert_hidden(app: &TestApp, run: &Value, secret: &str) {
    assert!(
        !run.to_string().contains(secret),
        "the run shows the secret"
    );
    assert!(
        !app.log_lines().join("\n").contains(secret),
        "the log shows the secret"
    );
}

#[tokio::test]
async fn slack_posts_a_message_with_the_bot_token() {
    const BOT_TOKEN: &str = "xoxb-1234-secret-bot-token";
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .and(header("authorization", format!("Bearer {BOT_TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "bot", "team_id": "T1", "user_id": "U1"}),
        ))
        .mount(&slack)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/auth.test"))
        .and(header("authorization", format!("Bearer {BOT_TOKEN}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "team": "Acme", "user": "bot"})),
        )
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {BOT_TOKEN}")))
        .and(body_partial_json(
            json!({"channel": "#deploys", "text": "Deployed v42"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C024BE91L", "ts": "1700000000.000100",
            "message": {"type": "message", "text": "Deployed v42", "ts": "1700000000.000100"}
        })))
        .expect(1)
        .mount(&slack)
        .await;
    let (app, owner, workspace) = setup().await;
    let token = owner.access_token.as_str();
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "slack",
        json!({"kind": "bearer", "token": BOT_TOKEN}),
        json!({"baseUrl": format!("{}/api", slack.uri())}),
    )
    .await;
    assert_test_passes(&app, token, &connection).await;

    let run = run_step(
        &app,
        token,
        &workspace,
        json!({"connector": "slack", "operation": "postMessage", "connectionId": connection,
            "params": {"channel": "#deploys", "text": "Deployed {{ trigger.version }}"}}),
        json!({"version": "v42"}),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let output = &step(&run, "call")["output"];
    assert_eq!(output["ts"], "1700000000.000100", "{}", pretty(&run));
    assert_eq!(output["channel"], "C024BE91L");
    assert_hidden(&app, &run, BOT_TOKEN);
}

#[tokio::test]
async fn github_creates_an_issue_with_the_token() {
    const GITHUB_TOKEN: &str = "ghp_secretTokenForTests0123456789";
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .and(header("authorization", format!("Bearer {GITHUB_TOKEN}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"login": "octocat", "id": 1})),
        )
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/api/issues"))
        .and(header("authorization", format!("Bearer {GITHUB_TOKEN}")))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(body_partial_json(
            json!({"title": "Checkout fails", "labels": ["bug"]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1, "number": 1347, "title": "Checkout fails", "state": "open",
            "url": format!("{}/repos/acme/api/issues/1347", github.uri()),
            "html_url": "https://github.com/acme/api/issues/1347"
        })))
        .expect(1)
        .mount(&github)
        .await;
    let (app, owner, workspace) = setup().await;
    let token = owner.access_token.as_str();
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "github",
        json!({"kind": "bearer", "token": GITHUB_TOKEN}),
        json!({"baseUrl": github.uri()}),
    )
    .await;
    assert_test_passes(&app, token, &connection).await;

    let run = run_step(
        &app,
        token,
        &workspace,
        json!({"connector": "github", "operation": "createIssue", "connectionId": connection,
            "params": {"owner": "acme", "repo": "api", "title": "{{ trigger.title }}", "labels": ["bug"]}}),
        json!({"title": "Checkout fails"}),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    assert_eq!(
        step(&run, "call")["output"]["number"],
        1347,
        "{}",
        pretty(&run)
    );
    assert_hidden(&app, &run, GITHUB_TOKEN);
}

#[tokio::test]
async fn openai_answers_a_chat_completion() {
    const API_KEY: &str = "sk-test-secret-openai-key-0123";
    let openai = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {API_KEY}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]})),
        )
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {API_KEY}")))
        .and(body_partial_json(json!({"model": "gpt-4o-mini"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Three issues were opened."},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        })))
        .expect(1)
        .mount(&openai)
        .await;
    let (app, owner, workspace) = setup().await;
    let token = owner.access_token.as_str();
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "openai",
        json!({"kind": "bearer", "token": API_KEY}),
        json!({"baseUrl": format!("{}/v1", openai.uri())}),
    )
    .await;
    assert_test_passes(&app, token, &connection).await;

    let run = run_step(
        &app,
        token,
        &workspace,
        json!({"connector": "openai", "operation": "chatCompletion", "connectionId": connection,
            "params": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise: {{ trigger.text }}"}]}}),
        json!({"text": "three new issues"}),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let output = &step(&run, "call")["output"];
    assert_eq!(
        output["content"],
        "Three issues were opened.",
        "{}",
        pretty(&run)
    );
    assert_eq!(output["usage"]["totalTokens"], 17);
    let received = openai.received_requests().await.unwrap_or_default();
    let sent: Value = received
        .iter()
        .find(|request| request.url.path() == "/v1/chat/completions")
        .and_then(|request| serde_json::from_slice(&request.body).ok())
        .unwrap_or_default();
    assert_eq!(
        sent["messages"][0]["content"],
        "Summarise: three new issues"
    );
    assert_hidden(&app, &run, API_KEY);
}

/// What a local SMTP sink received.
#[derive(Debug, Default, Clone)]
struct Mail {
    auth: Vec<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server on loopback: advertises AUTH PLAIN and LOGIN, accepts one
/// message per connection, and records what it was told.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
    let port = listener.local_addr().expect("address").port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::clone(&mails);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut mail = Mail::default();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            received
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(mail.clone());
                            let _ = write.write_all(b"250 2.0.0 queued as 1\r\n").await;
                        } else {
                            mail.data.push_str(&line);
                            mail.data.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("AUTH PLAIN") {
                        mail.auth.push(line[10..].trim().to_owned());
                        b"235 2.7.0 ok\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line[10..].trim().to_owned();
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.to.push(line[8..].trim().to_owned());
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else if upper == "RSET" || upper == "NOOP" {
                        b"250 ok\r\n"
                    } else {
                        b"502 not here\r\n"
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, mails)
}

#[tokio::test]
async fn email_is_sent_through_smtp_with_the_password() {
    const PASSWORD: &str = "smtp-secret-password-77";
    let (port, mails) = smtp_sink().await;
    let (app, owner, workspace) = setup().await;
    let token = owner.access_token.as_str();
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "email",
        json!({"kind": "basic", "username": "mailer", "password": PASSWORD}),
        json!({"host": "127.0.0.1", "port": port, "security": "none", "from": "robot@acme.test"}),
    )
    .await;
    assert_test_passes(&app, token, &connection).await;

    let run = run_step(
        &app,
        token,
        &workspace,
        json!({"connector": "email", "operation": "sendEmail", "connectionId": connection,
            "params": {"to": "{{ trigger.to }}", "subject": "Build {{ trigger.build }} passed", "text": "All green."}}),
        json!({"to": "ann@acme.test", "build": 981}),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let mails = mails
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let sent = mails
        .iter()
        .find(|mail| !mail.data.is_empty())
        .unwrap_or_else(|| panic!("the sink got no message: {mails:?}"));
    assert_eq!(sent.to, vec!["<ann@acme.test>".to_owned()]);
    assert_eq!(sent.from, "<robot@acme.test>");
    assert!(
        sent.data.contains("Subject: Build 981 passed"),
        "{}",
        sent.data
    );
    assert!(sent.data.contains("All green."), "{}", sent.data);
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0mailer\0{PASSWORD}"));
    assert!(
        sent.auth.contains(&plain),
        "authenticated as the connection: {sent:?}"
    );
    assert_hidden(&app, &run, PASSWORD);
}

#[tokio::test]
async fn postgres_runs_a_parameterised_query_on_the_users_database() {
    // The connector's own database lives on the machine's Postgres server, which CI
    // runs for both passes; only the server's own store switches between the two.
    let admin = aos_testkit::postgres_admin_url()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let target = aos_testkit::FreshDatabase::postgres(&admin, "aos_bb_pgconn")
        .await
        .expect("a database for the connector to query");
    let database = target
        .url()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (app, owner, workspace) = setup().await;
    let token = owner.access_token.as_str();
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "postgres",
        json!({"kind": "basic", "username": "postgres", "password": "pg-unused-secret-31"}),
        json!({"host": "127.0.0.1", "port": 5432, "database": database, "sslMode": "disable"}),
    )
    .await;
    assert_test_passes(&app, token, &connection).await;

    let run = run_step(
        &app,
        token,
        &workspace,
        json!({"connector": "postgres", "operation": "query", "connectionId": connection,
            "params": {"sql": "SELECT $1::int + 1 AS next, $2::text AS name, now() IS NOT NULL AS alive",
                "params": ["{{ trigger.n }}", "{{ trigger.name }}"]}}),
        json!({"n": 41, "name": "Ann"}),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let output = &step(&run, "call")["output"];
    assert_eq!(
        output["rows"],
        json!([{"next": 42, "name": "Ann", "alive": true}]),
        "{}",
        pretty(&run)
    );
    assert_eq!(output["rowCount"], 1);
    assert_hidden(&app, &run, "pg-unused-secret-31");
}

/// GitHub's issue listing, newest first, as the fake serves it; issues can be added.
#[derive(Clone, Default)]
struct Issues(Arc<Mutex<Vec<Value>>>);

impl Issues {
    fn open(&self, number: u64, title: &str, pull_request: bool) {
        let mut issue = json!({"id": number * 10, "number": number, "title": title, "state": "open",
            "html_url": format!("https://github.com/acme/api/issues/{number}"), "user": {"login": "ann"}});
        if pull_request {
            issue["pull_request"] = json!({"url": "https://api.github.com/repos/acme/api/pulls/1"});
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(0, issue);
    }
}

impl wiremock::Respond for Issues {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        let issues = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        ResponseTemplate::new(200).set_body_json(issues)
    }
}

#[tokio::test]
async fn a_github_poll_trigger_starts_one_run_per_new_issue_and_skips_pull_requests() {
    const GITHUB_TOKEN: &str = "ghp_pollingSecretToken987654321";
    let github = MockServer::start().await;
    let issues = Issues::default();
    issues.open(1, "already there", false);
    Mock::given(method("GET"))
        .and(path("/repos/acme/api/issues"))
        .and(header("authorization", format!("Bearer {GITHUB_TOKEN}")))
        .respond_with(issues.clone())
        .mount(&github)
        .await;
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .env("AOS_POLL_INTERVAL_OVERRIDE_MS", "200")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Acme").await;
    let connection = create_connection(
        &app,
        token,
        &workspace,
        "github",
        json!({"kind": "bearer", "token": GITHUB_TOKEN}),
        json!({"baseUrl": github.uri()}),
    )
    .await;
    let workflow = app
        .create_workflow(
            token,
            &workspace,
            "triage",
            json!({
                "nodes": [
                    {"id": "issue", "type": "trigger.poll", "config": {"connector": "github", "trigger": "newIssues",
                     "connectionId": connection, "params": {"owner": "acme", "repo": "api"}}},
                    {"id": "note", "type": "set", "config": {"fields": {"title": "{{ trigger.title }}"}}}
                ],
                "edges": [{"from": "issue", "to": "note"}]
            }),
        )
        .await;
    let activated = app
        .gql_as(
            token,
            "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }",
            json!({"input": {"id": workflow["id"], "active": true}}),
        )
        .await;
    assert_eq!(data(&activated)["setWorkflowActive"]["active"], true);

    // Let the first poll record what already exists, then open more.
    let polls = || async { github.received_requests().await.unwrap_or_default().len() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while polls().await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "GitHub was never polled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    issues.open(2, "Checkout fails", false);
    issues.open(3, "Bump deps", true);
    issues.open(4, "Login slow", false);
    let runs_query =
        "query($id: ID!) { workspace(id: $id) { runs(first: 50) { nodes { id status input } } } }";
    loop {
        let response = app
            .gql_as(token, runs_query, json!({"id": workspace}))
            .await;
        let runs = data(&response)["workspace"]["runs"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= 2 && runs.iter().all(|run| run["status"] == "SUCCEEDED") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs so far: {runs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A few more polls must not fire anything again.
    let seen = polls().await;
    while polls().await < seen + 3 {
        assert!(std::time::Instant::now() < deadline, "polling stopped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = app
        .gql_as(token, runs_query, json!({"id": workspace}))
        .await;
    let mut titles: Vec<String> = data(&response)["workspace"]["runs"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|run| string_at(&run["input"]["title"]))
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        vec!["Checkout fails", "Login slow"],
        "one run per new issue, no pull request"
    );
    assert!(!app.log_lines().join("\n").contains(GITHUB_TOKEN));
}

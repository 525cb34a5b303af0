//! OAuth2 connections through the public API, against a fake provider on loopback
//! (`oauth_server`): the authorization-code flow with PKCE from `startOAuth2Connection`
//! through the browser to `GET /oauth/callback`, client credentials, renewal before expiry
//! and after a 401, one renewal however many servers need it, a revoked grant turning the
//! connection `NEEDS_REAUTH` (announced on `connectionEvents`, also from a `worker`
//! process through Redis), and re-authorization.
//!
//! Invariants protected: a `state` works once, for the user and workspace that started it,
//! and only while that user may still manage connections; the provider sees PKCE S256,
//! Basic client authentication and no reused code or rotated-away refresh token; steps
//! never use an expired token when a renewal can be had; and no secret (token, code,
//! verifier, client secret) shows up in an API answer, a step, an event or the log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    DataDir, Session, TestApp, TestDatabase, WsClient, assert_error_code, binary, data,
    first_error, pretty, step, string_at,
};
use provider::{Behaviour, Provider};

#[path = "oauth_server.rs"]
mod provider;

const START: &str = "mutation($input: StartOAuth2ConnectionInput!) { startOAuth2Connection(input: $input) { authorizationUrl state expiresAt } }";
const CONNECTION: &str =
    "query($id: ID!) { connection(id: $id) { id name connector authKind status } }";
const CONNECTION_EVENTS: &str = "subscription($workspaceId: ID!) { connectionEvents(workspaceId: $workspaceId) { connectionId workspaceId kind status at message connection { id status } } }";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// A hang guard for one message, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A server whose steps and token requests may reach loopback, with an owner and a
/// workspace.
async fn app_with_workspace() -> (TestApp, Session, String) {
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Acme").await;
    (app, owner, workspace)
}

/// The user's browser: it does not follow redirects, the test does.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {} answer", response.status()))
        .to_owned()
}

/// `startOAuth2Connection` for `provider`'s registration, with `extra` fields.
async fn start(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    provider: &Provider,
    extra: Value,
) -> Value {
    let mut input = provider.registration();
    input["workspaceId"] = json!(workspace_id);
    input["connector"] = json!("http");
    input["name"] = json!("CRM");
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    app.gql_as(token, START, json!({"input": input})).await
}

/// The user consents at the provider, which sends the browser back: the callback URL.
async fn consent(authorization_url: &str) -> String {
    let answer = browser()
        .get(authorization_url)
        .send()
        .await
        .expect("GET the authorization URL");
    assert_eq!(answer.status(), 302, "the provider sends the user back");
    location(&answer)
}

async fn follow(url: &str) -> reqwest::Response {
    browser().get(url).send().await.expect("GET the callback")
}

/// The whole flow: returns the connection's id and our server's answers on the way, as text.
async fn connect(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    provider: &Provider,
    extra: Value,
) -> (String, Vec<String>) {
    let started = start(app, token, workspace_id, provider, extra).await;
    let authorization_url = string_at(&data(&started)["startOAuth2Connection"]["authorizationUrl"]);
    let callback = consent(&authorization_url).await;
    let answer = follow(&callback).await;
    assert_eq!(
        answer.status(),
        303,
        "the callback redirects to the connection"
    );
    let back_to = location(&answer);
    let id = back_to
        .strip_prefix(&app.url("/connections/"))
        .and_then(|rest| rest.strip_suffix("?oauth=connected"))
        .unwrap_or_else(|| panic!("unexpected redirect {back_to}"))
        .to_owned();
    // Not the callback URL: it carries the code, as the provider meant it to.
    (id, vec![started.to_string(), back_to])
}

async fn connection(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.gql_as(token, CONNECTION, json!({"id": id})).await;
    data(&response)["connection"].clone()
}

/// A workflow whose step `me` calls the provider's API with connection `id`.
fn calls_api(provider: &Provider, connection_id: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "me", "type": "http.request", "config": {
                "method": "GET", "url": provider.url("/api/me"), "connectionId": connection_id}}
        ],
        "edges": [{"from": "start", "to": "me"}]
    })
}

/// Runs a workflow calling the API with connection `id`, returns the finished run.
async fn run_calling_api(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    provider: &Provider,
    id: &str,
) -> Value {
    let workflow = app
        .create_workflow(
            token,
            workspace_id,
            &format!("calls {}", uuid::Uuid::new_v4()),
            calls_api(provider, id),
        )
        .await;
    let run = app
        .run_workflow(token, &string_at(&workflow["id"]), json!({}))
        .await;
    app.wait_for_run(token, &string_at(&run["id"])).await
}

/// Waits until a token issued with a lifetime of one second has expired.
async fn until_expired() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[track_caller]
fn assert_no_secret(provider: &Provider, texts: &[String], context: &str) {
    for secret in provider.secrets() {
        for text in texts {
            assert!(
                !text.contains(&secret),
                "{context} shows the secret {secret}:\n{text}"
            );
        }
    }
}

async fn subscribed(app: &TestApp, token: &str, workspace_id: &str) -> WsClient {
    let mut socket = app.ws_connect().await;
    socket.init_ok(token).await;
    socket
        .subscribe(
            "events",
            CONNECTION_EVENTS,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    socket
}

/// The next connection event of connection `id`, skipping others.
async fn next_event_of(socket: &mut WsClient, id: &str) -> Value {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = socket
            .next_for("events", remaining)
            .await
            .unwrap_or_else(|| panic!("no event of connection {id}"));
        assert_eq!(message["type"], "next", "{}", pretty(&message));
        let event = &message["payload"]["data"]["connectionEvents"];
        if event["connectionId"] == id {
            return event.clone();
        }
    }
}

/// Subscribes, then makes sure the subscription is live: creates a connection and waits
/// for its event (`subscribe` is not acknowledged).
async fn live_subscription(app: &TestApp, token: &str, workspace_id: &str) -> WsClient {
    let mut socket = subscribed(app, token, workspace_id).await;
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let probe = app
            .create_connection(
                token,
                workspace_id,
                &format!("probe {}", uuid::Uuid::new_v4()),
                json!({"kind": "bearer", "token": "probe"}),
            )
            .await;
        if let Some(message) = socket.next_for("events", Duration::from_secs(1)).await
            && message["payload"]["data"]["connectionEvents"]["connectionId"] == probe.as_str()
        {
            return socket;
        }
        assert!(
            Instant::now() < deadline,
            "the subscription never went live"
        );
    }
}

#[tokio::test]
async fn the_authorization_code_round_trip_connects_and_signs_requests() {
    let provider = Provider::start(Behaviour::default()).await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();

    let redirect = app.gql_as(token, "{ oauth2RedirectUrl }", json!({})).await;
    let started = start(&app, token, &workspace_id, &provider, json!({})).await;
    let authorization = &data(&started)["startOAuth2Connection"];
    let authorization_url =
        reqwest::Url::parse(&string_at(&authorization["authorizationUrl"])).expect("a URL");
    let query: std::collections::HashMap<String, String> =
        authorization_url.query_pairs().into_owned().collect();
    let callback = consent(authorization_url.as_str()).await;
    let answer = follow(&callback).await;
    let replayed = follow(&callback).await;

    assert_eq!(
        data(&redirect)["oauth2RedirectUrl"],
        app.url("/oauth/callback")
    );
    assert!(
        authorization_url
            .as_str()
            .starts_with(&provider.url("/authorize"))
    );
    assert_eq!(query["state"], string_at(&authorization["state"]));
    assert_eq!(query["redirect_uri"], app.url("/oauth/callback"));
    assert_eq!(query["code_challenge_method"], "S256");
    let expires_at: chrono::DateTime<chrono::Utc> = string_at(&authorization["expiresAt"])
        .parse()
        .expect("a timestamp");
    let lifetime = expires_at - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::minutes(9) && lifetime <= chrono::Duration::minutes(10),
        "{lifetime}"
    );
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let back_to = location(&answer);
    let id = back_to
        .strip_prefix(&app.url("/connections/"))
        .and_then(|rest| rest.strip_suffix("?oauth=connected"))
        .unwrap_or_else(|| panic!("unexpected redirect {back_to}"))
        .to_owned();
    assert_eq!(replayed.status(), 400, "a state is used once");
    let connected = connection(&app, token, &id).await;
    assert_eq!(
        connected,
        json!({"id": id, "name": "CRM", "connector": "http", "authKind": "oauth2", "status": "VALID"})
    );
    provider.assert_no_violations();
    assert_eq!(provider.seen(|seen| seen.code_exchanges), 1);

    let run = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    assert_eq!(
        step(&run, "me")["output"]["body"],
        json!({"user": "ann", "plan": "pro"})
    );
    let first_token = provider.seen(|seen| seen.issued_access[0].clone());
    assert_eq!(
        provider.seen(|seen| seen.api_calls.clone()),
        vec![(first_token, 200)]
    );
    assert_eq!(provider.seen(|seen| seen.refreshes), 0);
    assert_no_secret(
        &provider,
        &[
            started.to_string(),
            connected.to_string(),
            run.to_string(),
            back_to,
            app.log_lines().join("\n"),
        ],
        "the API, the run or the log",
    );
}

#[tokio::test]
async fn an_expiring_token_is_renewed_before_the_step_uses_it() {
    let provider = Provider::start(Behaviour {
        code_token_lifetime: 1,
        ..Behaviour::default()
    })
    .await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let (id, answers) = connect(&app, token, &workspace_id, &provider, json!({})).await;
    until_expired().await;

    let first = run_calling_api(&app, token, &workspace_id, &provider, &id).await;
    let second = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(first["status"], "SUCCEEDED", "{}", pretty(&first));
    assert_eq!(second["status"], "SUCCEEDED", "{}", pretty(&second));
    let renewed = provider.seen(|seen| seen.issued_access[1].clone());
    assert_eq!(
        provider.seen(|seen| seen.api_calls.clone()),
        vec![(renewed.clone(), 200), (renewed, 200)],
        "the expiring token is never sent; the renewed one lasts"
    );
    assert_eq!(provider.seen(|seen| seen.refreshes), 1);
    provider.assert_no_violations();
    assert_eq!(connection(&app, token, &id).await["status"], "VALID");
    let mut texts = answers;
    texts.extend([
        first.to_string(),
        second.to_string(),
        app.log_lines().join("\n"),
    ]);
    assert_no_secret(&provider, &texts, "the API, the runs or the log");
}

#[tokio::test]
async fn a_refused_token_is_renewed_and_the_request_sent_once_more() {
    let provider = Provider::start(Behaviour {
        api_refuses_first_token: true,
        ..Behaviour::default()
    })
    .await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let (id, _) = connect(&app, token, &workspace_id, &provider, json!({})).await;

    let run = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    assert_eq!(step(&run, "me")["output"]["status"], 200);
    let issued = provider.seen(|seen| seen.issued_access.clone());
    assert_eq!(
        provider.seen(|seen| seen.api_calls.clone()),
        vec![(issued[0].clone(), 401), (issued[1].clone(), 200)]
    );
    assert_eq!(provider.seen(|seen| seen.refreshes), 1);
    provider.assert_no_violations();
    assert_no_secret(
        &provider,
        &[run.to_string(), app.log_lines().join("\n")],
        "the run or the log",
    );
}

#[tokio::test]
async fn two_servers_needing_a_renewal_at_once_ask_the_token_endpoint_once() {
    let provider = Provider::start(Behaviour {
        code_token_lifetime: 1,
        refresh_delay: Duration::from_millis(1500),
        ..Behaviour::default()
    })
    .await;
    let shared_dir = DataDir::new();
    let database = TestDatabase::create_if_configured().await;
    let database_url = database.as_ref().map_or_else(
        || {
            format!(
                "sqlite://{}?mode=rwc",
                shared_dir.path().join("shared.db").display()
            )
        },
        |database| database.url.clone(),
    );
    let node = || {
        TestApp::builder()
            .env("AOS_MASTER_KEY", MASTER_KEY)
            .database(None)
            .arg("--database-url")
            .arg(&database_url)
            .arg("--http-allow-private")
    };
    let first = node().spawn().await;
    let second = node().spawn().await;
    let owner = first.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = first.create_workspace(token, "Acme").await;
    let (id, _) = connect(&first, token, &workspace_id, &provider, json!({})).await;
    until_expired().await;
    let mut definition = calls_api(&provider, &id);
    definition["nodes"][0] =
        json!({"id": "start", "type": "trigger.webhook", "config": {"respond": "onCompletion"}});
    let workflow = first
        .create_workflow(token, &workspace_id, "calls the API", definition)
        .await;
    let activated = first
        .gql_as(
            token,
            "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }",
            json!({"input": {"id": workflow["id"], "active": true}}),
        )
        .await;
    assert_eq!(data(&activated)["setWorkflowActive"]["active"], true);
    let hook = string_at(&workflow["webhookUrl"])
        .strip_prefix(&first.url(""))
        .expect("a webhook URL on the first node")
        .to_owned();

    // Each node executes its webhook's run itself: both need the renewal at once.
    let (on_first, on_second) = tokio::join!(
        first.http().post(first.url(&hook)).json(&json!({})).send(),
        second
            .http()
            .post(second.url(&hook))
            .json(&json!({}))
            .send(),
    );

    for answer in [on_first, on_second] {
        let answer = answer.expect("the webhook answers");
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(body["status"], 200, "{}", pretty(&body));
    }
    assert_eq!(
        provider.seen(|seen| seen.refreshes),
        1,
        "one renewal for both"
    );
    let renewed = provider.seen(|seen| seen.issued_access[1].clone());
    assert_eq!(
        provider.seen(|seen| seen.api_calls.clone()),
        vec![(renewed.clone(), 200), (renewed, 200)]
    );
    provider.assert_no_violations();
    drop(second);
    drop(first);
    drop(database);
}

#[tokio::test]
async fn a_revoked_grant_needs_reauth_is_announced_and_can_be_authorized_again() {
    let provider = Provider::start(Behaviour {
        code_token_lifetime: 1,
        refresh_revoked: true,
        ..Behaviour::default()
    })
    .await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let (id, _) = connect(&app, token, &workspace_id, &provider, json!({})).await;
    until_expired().await;
    let mut socket = live_subscription(&app, token, &workspace_id).await;

    let failed = run_calling_api(&app, token, &workspace_id, &provider, &id).await;
    let announced = next_event_of(&mut socket, &id).await;
    let status = connection(&app, token, &id).await["status"].clone();
    let still_failing = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(failed["status"], "FAILED", "{}", pretty(&failed));
    let error = string_at(&step(&failed, "me")["error"]);
    assert!(
        error.contains("needs to be authorized again") && error.contains("reconnect"),
        "{error}"
    );
    assert_eq!(
        announced["kind"],
        "CONNECTION_NEEDS_REAUTH",
        "{}",
        pretty(&announced)
    );
    assert_eq!(announced["status"], "NEEDS_REAUTH");
    assert_eq!(announced["workspaceId"], workspace_id.as_str());
    assert_eq!(
        announced["connection"],
        json!({"id": id, "status": "NEEDS_REAUTH"})
    );
    assert!(string_at(&announced["message"]).contains("reconnect"));
    assert_eq!(status, "NEEDS_REAUTH");
    assert_eq!(still_failing["status"], "FAILED");
    assert!(string_at(&step(&still_failing, "me")["error"]).contains("reconnect"));
    assert_eq!(
        provider.seen(|seen| seen.refreshes),
        1,
        "a revoked grant is not retried"
    );
    assert!(
        provider.seen(|seen| seen.api_calls.is_empty()),
        "no expired token was sent"
    );

    // The user connects it again, keeping its id.
    provider.change(|behaviour| {
        behaviour.refresh_revoked = false;
        behaviour.code_token_lifetime = 3600;
    });
    let (again, _) = connect(
        &app,
        token,
        &workspace_id,
        &provider,
        json!({"connectionId": id}),
    )
    .await;
    let reauthorized = next_event_of(&mut socket, &id).await;
    let works = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(again, id);
    assert_eq!(reauthorized["kind"], "CONNECTION_UPDATED");
    assert_eq!(reauthorized["status"], "VALID");
    assert_eq!(works["status"], "SUCCEEDED", "{}", pretty(&works));
    provider.assert_no_violations();
    assert_no_secret(
        &provider,
        &[
            failed.to_string(),
            announced.to_string(),
            works.to_string(),
            app.log_lines().join("\n"),
        ],
        "the runs, the events or the log",
    );
}

/// A `worker` process that kills its child on drop.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_worker_that_finds_a_grant_revoked_tells_the_subscribers_of_the_api_nodes() {
    let (Some(database), Ok(redis_url)) = (
        TestDatabase::create_if_configured().await,
        std::env::var("AOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipped: a worker process needs AOS_TEST_DATABASE_URL and AOS_TEST_REDIS_URL");
        return;
    };
    let provider = Provider::start(Behaviour {
        api_refuses_first_token: true,
        refresh_revoked: true,
        client_token_lifetime: 1,
        ..Behaviour::default()
    })
    .await;
    // The API node executes no run: every step runs in the worker.
    let app = TestApp::builder()
        .env("AOS_MASTER_KEY", MASTER_KEY)
        .env("REDIS_URL", &redis_url)
        .database(None)
        .arg("--database-url")
        .arg(&database.url)
        .arg("--workers")
        .arg("0")
        .arg("--http-allow-private")
        .spawn()
        .await;
    let worker_dir = DataDir::new();
    let _worker = Worker(
        binary()
            .arg("worker")
            .arg("--database-url")
            .arg(&database.url)
            .arg("--data-dir")
            .arg(worker_dir.path())
            .arg("--http-allow-private")
            .env("AOS_MASTER_KEY", MASTER_KEY)
            .env("REDIS_URL", &redis_url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a worker"),
    );
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = app.create_workspace(token, "Acme").await;
    let (id, _) = connect(&app, token, &workspace_id, &provider, json!({})).await;
    let mut socket = subscribed(&app, token, &workspace_id).await;
    // Redis relays only to nodes already listening: a client-credentials connection whose
    // token always expires is renewed by the worker on every use, until one of its
    // `CONNECTION_REFRESHED` events comes through.
    let mut credentials =
        json!({"kind": "oauth2", "grant": "clientCredentials", "scopes": ["api:read"]});
    for field in ["clientId", "clientSecret", "tokenUrl"] {
        credentials[field] = provider.registration()[field].clone();
    }
    let warm_up = app
        .create_connection(token, &workspace_id, "warm-up", credentials)
        .await;
    let deadline = Instant::now() + HANG_GUARD;
    'live: loop {
        run_calling_api(&app, token, &workspace_id, &provider, &warm_up).await;
        while let Some(message) = socket.next_for("events", Duration::from_secs(1)).await {
            if message["payload"]["data"]["connectionEvents"]["connectionId"] == warm_up.as_str() {
                break 'live;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no event of the worker came through Redis"
        );
    }

    let failed = run_calling_api(&app, token, &workspace_id, &provider, &id).await;
    let announced = next_event_of(&mut socket, &id).await;

    assert_eq!(failed["status"], "FAILED", "{}", pretty(&failed));
    assert!(string_at(&step(&failed, "me")["error"]).contains("reconnect"));
    assert_eq!(announced["kind"], "CONNECTION_NEEDS_REAUTH");
    assert_eq!(announced["status"], "NEEDS_REAUTH");
    drop(app);
    drop(database);
}

#[tokio::test]
async fn a_client_credentials_connection_is_created_with_its_first_token_and_used() {
    let provider = Provider::start(Behaviour::default()).await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let mut credentials =
        json!({"kind": "oauth2", "grant": "clientCredentials", "scopes": ["api:read"]});
    for field in ["clientId", "clientSecret", "tokenUrl"] {
        credentials[field] = provider.registration()[field].clone();
    }

    let created = app
        .try_create_connection(token, &workspace_id, "service", credentials.clone(), None)
        .await;
    let id = string_at(&data(&created)["createConnection"]["id"]);
    let run = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(data(&created)["createConnection"]["authKind"], "oauth2");
    assert_eq!(data(&created)["createConnection"]["status"], "VALID");
    assert_eq!(provider.seen(|seen| seen.client_credentials), 1);
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    provider.assert_no_violations();
    assert_no_secret(
        &provider,
        &[
            created.to_string(),
            run.to_string(),
            app.log_lines().join("\n"),
        ],
        "the API, the run or the log",
    );

    let mut wrong = credentials.clone();
    wrong["clientSecret"] = json!("wrong-secret-Vq83");
    let refused = app
        .try_create_connection(token, &workspace_id, "refused", wrong, None)
        .await;
    let raw_tokens = app
        .try_create_connection(
            token,
            &workspace_id,
            "raw",
            json!({"kind": "oauth2", "accessToken": "raw-token-Vq83", "refreshToken": "r"}),
            None,
        )
        .await;

    assert_error_code(&refused, "BAD_USER_INPUT");
    let message = string_at(&first_error(&refused)["message"]);
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!refused.to_string().contains("wrong-secret-Vq83"));
    assert_error_code(&raw_tokens, "BAD_USER_INPUT");
    assert!(string_at(&first_error(&raw_tokens)["message"]).contains("startOAuth2Connection"));
    assert!(!raw_tokens.to_string().contains("raw-token-Vq83"));
}

#[tokio::test]
async fn a_state_is_refused_when_unknown_denied_or_its_user_lost_the_right() {
    let provider = Provider::start(Behaviour::default()).await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let admin = app
        .member(token, &workspace_id, "admin@example.com", "ADMIN")
        .await;
    let editor = app
        .member(token, &workspace_id, "editor@example.com", "EDITOR")
        .await;

    let without_state = follow(&app.url("/oauth/callback?code=abc")).await;
    let unknown_state = follow(&app.url("/oauth/callback?code=abc&state=nobody-issued-this")).await;
    let by_editor = start(
        &app,
        &editor.access_token,
        &workspace_id,
        &provider,
        json!({}),
    )
    .await;

    assert_eq!(without_state.status(), 400);
    assert_eq!(unknown_state.status(), 400);
    assert_error_code(&by_editor, "FORBIDDEN");

    // The user says no at the provider.
    provider.change(|behaviour| behaviour.user_denies = true);
    let started = start(&app, token, &workspace_id, &provider, json!({})).await;
    let denied = follow(
        &consent(&string_at(
            &data(&started)["startOAuth2Connection"]["authorizationUrl"],
        ))
        .await,
    )
    .await;
    let denied_to = location(&denied);

    assert_eq!(denied.status(), 303);
    let denied_id = denied_to
        .strip_prefix(&app.url("/connections/"))
        .and_then(|rest| rest.strip_suffix("?oauth=error&reason=access_denied"))
        .unwrap_or_else(|| panic!("unexpected redirect {denied_to}"));
    let never_created = app
        .gql_as(token, CONNECTION, json!({"id": denied_id}))
        .await;
    assert_error_code(&never_created, "NOT_FOUND");

    // An admin starts, loses the workspace, then comes back from the provider.
    provider.change(|behaviour| behaviour.user_denies = false);
    let started = start(
        &app,
        &admin.access_token,
        &workspace_id,
        &provider,
        json!({}),
    )
    .await;
    let callback = consent(&string_at(
        &data(&started)["startOAuth2Connection"]["authorizationUrl"],
    ))
    .await;
    let removed = app
        .gql_as(
            token,
            "mutation($input: RemoveMemberInput!) { removeMember(input: $input) }",
            json!({"input": {"workspaceId": workspace_id, "userId": admin.user_id}}),
        )
        .await;
    assert_eq!(data(&removed)["removeMember"], true);
    let refused = follow(&callback).await;

    assert_eq!(refused.status(), 303);
    assert!(
        location(&refused).ends_with("?oauth=error&reason=forbidden"),
        "{}",
        location(&refused)
    );
    assert_eq!(
        provider.seen(|seen| seen.code_exchanges),
        0,
        "no code was exchanged"
    );
    let listed = app
        .gql_as(
            token,
            "query($id: ID!) { workspace(id: $id) { connections { name authKind } } }",
            json!({"id": workspace_id}),
        )
        .await;
    assert_eq!(data(&listed)["workspace"]["connections"], json!([]));
}

#[tokio::test]
async fn a_revoked_connection_is_not_used_until_it_is_authorized_again() {
    let provider = Provider::start(Behaviour::default()).await;
    let (app, owner, workspace_id) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let (id, _) = connect(&app, token, &workspace_id, &provider, json!({})).await;
    let mut socket = live_subscription(&app, token, &workspace_id).await;

    let revoked = app
        .gql_as(
            token,
            "mutation($input: RevokeConnectionInput!) { revokeConnection(input: $input) { id status } }",
            json!({"input": {"id": id}}),
        )
        .await;
    let announced = next_event_of(&mut socket, &id).await;
    let failed = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(data(&revoked)["revokeConnection"]["status"], "REVOKED");
    assert_eq!(announced["kind"], "CONNECTION_REVOKED");
    assert_eq!(announced["status"], "REVOKED");
    assert_eq!(failed["status"], "FAILED");
    assert!(string_at(&step(&failed, "me")["error"]).contains("revoked"));
    assert!(provider.seen(|seen| seen.api_calls.is_empty()));

    connect(
        &app,
        token,
        &workspace_id,
        &provider,
        json!({"connectionId": id}),
    )
    .await;
    let works = run_calling_api(&app, token, &workspace_id, &provider, &id).await;

    assert_eq!(works["status"], "SUCCEEDED", "{}", pretty(&works));
    provider.assert_no_violations();
}

//! (d) What using a connection costs, in three layers, each compared like with like in
//! one process:
//!
//! 1. in memory: sealing and opening a bearer credential with a data key, unwrapping a
//!    data key with the master key (what a data-key cache miss adds), and redacting a
//!    typical 2 KiB step output with 1 and with 4 secret forms;
//! 2. through storage: `ConnectionSecrets::open_connection` of the vault (one indexed read
//!    and a decryption, the data key cached) and of `RefreshingSecrets` (the OAuth2-aware
//!    port steps really hold) for a bearer connection, sequential and with concurrent
//!    callers;
//! 3. end to end: a webhook workflow (answering on completion) whose one step is an
//!    `http.request` to a server of ours on loopback, run without and with a bearer
//!    connection on the same release binary.
//!
//! The two sides of each comparison take turns (A B B A, or request by request), so a
//! change in the machine's load while they run falls on both alike.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aos_connectors::http::HttpPolicy;
use aos_connectors::oauth::{OAuthFlows, RefreshTiming, RefreshingSecrets};
use aos_domain::access::Action;
use aos_domain::connection::{
    AuthKind, ConnectionEvent, ConnectionName, Credentials, KeyPlacement, NewConnection, Redactor,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::{ConnectionEventSink, ConnectionSecrets, ConnectionStore};
use aos_persistence::SeaStore;
use aos_vault::service::{CredentialVault, MasterKeys};
use aos_vault::{Keyring, MasterKey};
use axum::Json;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::database::{Backend, FreshDatabase};
use crate::server::{Owner, Server, string_at};
use crate::stats::{Samples, Summary, micros, rate};
use crate::tenant::{bench_user, owned_workspace};

pub struct ConnectionsBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub binary: PathBuf,
    pub server_env: Vec<(String, String)>,
    pub operations: usize,
    pub opens: usize,
    pub callers: usize,
    pub runs: usize,
    pub clients: usize,
    pub concurrent_runs: usize,
}

/// The benchmark's own master key: nothing it seals outlives the run.
const BENCH_MASTER_KEY: [u8; 32] = [0x5a; 32];
/// As long as a typical provider's personal access token.
const BEARER_TOKEN: &str = "tok_live_4f9c2a71d3e8b5064a1f7c9e2b8d3a60";
/// Cache misses through storage, each by a vault of its own: a few hundred show the shape.
const COLD_OPENS: usize = 200;
/// How many times the sides of a comparison take turns (A B B A each time).
const TURNS: usize = 4;
/// A B B A: a drift of the machine's load within a turn falls on both sides alike.
const ORDER: [usize; 4] = [0, 1, 1, 0];

pub async fn run(bench: ConnectionsBench) -> anyhow::Result<()> {
    let backend = bench.backend.name();
    println!("# connections [{backend}]");
    in_memory(bench.operations)?;

    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = through_storage(&bench, &database).await;
    database.destroy().await;
    outcome?;

    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = end_to_end(&bench, &database).await;
    database.destroy().await;
    outcome
}

fn bearer() -> Credentials {
    Credentials::Bearer {
        token: BEARER_TOKEN.to_owned(),
    }
}

/// Times `op` `count` times, after a tenth as many untimed.
fn time_each(count: usize, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Samples> {
    for _ in 0..(count / 10).max(1) {
        op()?;
    }
    let mut times = Samples::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        op()?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// One line of figures: the summary, and how many a second one core does back to back.
fn report(label: &str, times: &Samples) {
    println!(
        "{label}: {} => {:.0}/s",
        times.summary(),
        rate(times.len(), times.total())
    );
}

/// 1. The vault's cryptography and the redactor, with no storage and no I/O.
fn in_memory(operations: usize) -> anyhow::Result<()> {
    let workspace = Uuid::new_v4();
    let connection = Uuid::new_v4();
    let keyring = Keyring::new(MasterKey::derived(&BENCH_MASTER_KEY));
    let (data_key, wrapped) = keyring.new_data_key(workspace)?;
    let credentials = bearer();
    // What `CredentialVault::seal` encrypts: the credentials as JSON.
    let plaintext = serde_json::to_vec(&credentials)?;
    let sealed = data_key.seal(&plaintext, workspace, connection)?;
    println!(
        "in memory: bearer credential {} B as JSON, {} B sealed; {operations} operations each",
        plaintext.len(),
        sealed.len()
    );

    let seal = time_each(operations, || {
        black_box(data_key.seal(black_box(&plaintext), workspace, connection)?);
        Ok(())
    })?;
    report("DataKey::seal", &seal);
    let open = time_each(operations, || {
        black_box(data_key.open(black_box(&sealed), workspace, connection)?);
        Ok(())
    })?;
    report("DataKey::open", &open);
    // `CredentialVault::open` does both: decrypt, then parse the JSON back.
    let open_parse = time_each(operations, || {
        let opened = data_key.open(black_box(&sealed), workspace, connection)?;
        let parsed: Credentials = serde_json::from_slice(&opened)?;
        black_box(&parsed);
        Ok(())
    })?;
    report("DataKey::open + parse the credentials", &open_parse);
    let unwrap = time_each(operations, || {
        black_box(keyring.unwrap(black_box(&wrapped), workspace)?);
        Ok(())
    })?;
    report("Keyring::unwrap (a data-key cache miss)", &unwrap);

    let output = typical_output();
    let size = serde_json::to_vec(&output)?.len();
    let one_form = Redactor::for_credentials(&credentials);
    let mut four_forms = Redactor::for_credentials(&Credentials::Basic {
        username: "ann".to_owned(),
        password: "s3cr3t-pw-Qx91".to_owned(),
    });
    // `&` and the space make the query encoding a form of its own.
    four_forms.add(&Credentials::ApiKey {
        placement: KeyPlacement::Query,
        name: "key".to_owned(),
        value: "k3y&7 value".to_owned(),
    });
    let mut echoed = output.clone();
    echoed["headers"]["x-echo-authorization"] = json!(format!("Bearer {BEARER_TOKEN}"));
    for (label, redactor, value) in [
        ("1 secret form, none present", &one_form, &output),
        ("4 secret forms, none present", &four_forms, &output),
        ("1 secret form, echoed once", &one_form, &echoed),
    ] {
        let times = redact_times(redactor, value, operations);
        report(
            &format!("Redactor::redact_value, {size} B output, {label} ({redactor:?})"),
            &times,
        );
    }
    Ok(())
}

/// Each redaction gets its own copy, made before its timer starts: redacting changes it.
fn redact_times(redactor: &Redactor, value: &Value, count: usize) -> Samples {
    for _ in 0..(count / 10).max(1) {
        redactor.redact_value(&mut value.clone());
    }
    let mut times = Samples::with_capacity(count);
    for _ in 0..count {
        let mut copy = value.clone();
        let started = Instant::now();
        redactor.redact_value(black_box(&mut copy));
        times.push(started.elapsed());
        black_box(copy);
    }
    times
}

/// What an `http.request` step typically hands the redactor: a JSON API's answer and its
/// headers, about 2 KiB serialized, with no secret in it (services do not echo them).
fn typical_output() -> Value {
    let items: Vec<Value> = (0..10)
        .map(|index| {
            json!({
                "id": format!("item_{index:04}_9f3c2a71"),
                "name": format!("Widget number {index}"),
                "price": {"amount": 1999 + index, "currency": "EUR"},
                "tags": ["catalog", "active"],
                "updatedAt": "2026-11-30T09:15:00Z"
            })
        })
        .collect();
    json!({
        "status": 200,
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "date": "Mon, 30 Nov 2026 09:15:02 GMT",
            "server": "nginx",
            "cache-control": "private, max-age=0, no-cache",
            "etag": "W/\"5c1-2b7d9a0f3e\"",
            "vary": "Accept, Authorization, Cookie",
            "x-request-id": "req_8d1e4f6a2b9c7305",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4987",
            "x-ratelimit-reset": "1796030400",
            "strict-transport-security": "max-age=31536000; includeSubDomains"
        },
        "body": {
            "object": "list",
            "url": "/v1/items",
            "hasMore": true,
            "data": items
        }
    })
}

/// Discards connection events: nothing here changes a connection.
struct NoEvents;

impl ConnectionEventSink for NoEvents {
    fn publish(&self, _event: ConnectionEvent) {}
}

/// A workspace of a fresh database with one bearer connection, sealed by the vault.
struct StoredConnection {
    store: Arc<SeaStore>,
    keys: Arc<MasterKeys>,
    vault: Arc<CredentialVault>,
    workspace_id: WorkspaceId,
    id: ConnectionId,
}

impl StoredConnection {
    async fn create(store: SeaStore) -> anyhow::Result<Self> {
        let store = Arc::new(store);
        let user = bench_user(&store).await?;
        let (workspace, scope) =
            owned_workspace(&store, &user, "Bench", Action::ManageConnections).await?;
        let keys = Arc::new(MasterKeys::fixed(Keyring::new(MasterKey::derived(
            &BENCH_MASTER_KEY,
        ))));
        let vault = Arc::new(CredentialVault::new(
            Arc::clone(&keys),
            Arc::clone(&store) as Arc<dyn aos_vault::service::VaultStorage>,
        ));
        // As `createConnection` does it: sealed for the id it will be stored under.
        let id = ConnectionId::generate();
        let sealed_credentials = vault.seal(workspace.id, id, &bearer()).await?;
        store
            .create_connection(
                &scope,
                NewConnection {
                    id,
                    name: ConnectionName::parse("bench bearer")?,
                    connector: "http".to_owned(),
                    auth_kind: AuthKind::Bearer,
                    settings: json!({}),
                    sealed_credentials,
                },
            )
            .await?;
        Ok(Self {
            store,
            keys,
            vault,
            workspace_id: workspace.id,
            id,
        })
    }

    /// The port `serve` hands the engine, built the same way (with default settings: a
    /// bearer connection never reaches a token endpoint).
    fn refreshing(&self) -> anyhow::Result<Arc<RefreshingSecrets>> {
        Ok(Arc::new(RefreshingSecrets::new(
            Arc::clone(&self.vault),
            Arc::clone(&self.store) as Arc<dyn aos_connectors::oauth::RefreshStorage>,
            OAuthFlows::new(HttpPolicy::default()).context("the OAuth2 client")?,
            Arc::new(NoEvents),
            RefreshTiming::default(),
        )))
    }
}

/// 2. `open_connection` through real storage: the vault's, and the OAuth2-aware wrapper's.
async fn through_storage(bench: &ConnectionsBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let backend = bench.backend.name();
    let db = aos_persistence::connect(&database.url).await?;
    aos_persistence::migrate(&db).await?;
    let stored = StoredConnection::create(SeaStore::new(db.clone())).await?;

    // A process's first use of a workspace: the data key is read and unwrapped too.
    let mut cold = Samples::with_capacity(COLD_OPENS);
    for _ in 0..COLD_OPENS {
        let vault = CredentialVault::new(
            Arc::clone(&stored.keys),
            Arc::clone(&stored.store) as Arc<dyn aos_vault::service::VaultStorage>,
        );
        let started = Instant::now();
        let opened = vault.open_connection(stored.workspace_id, stored.id).await;
        cold.push(started.elapsed());
        opened.map_err(|message| anyhow!("open_connection: {message}"))?;
    }
    println!(
        "[{backend}] CredentialVault::open_connection, data key not cached (two reads, unwrap, decrypt): {}",
        cold.summary()
    );

    let ports: [(&str, Arc<dyn ConnectionSecrets>); 2] = [
        ("CredentialVault", Arc::clone(&stored.vault) as _),
        ("RefreshingSecrets", stored.refreshing()? as _),
    ];
    // Warm at the widest concurrency measured: a pool that grows mid-pass would make
    // whichever side goes first pay for its new connections.
    for (_, port) in &ports {
        let callers = bench.callers.max(1);
        open_many(Arc::clone(port), &stored, 100 * callers, callers).await?;
    }
    for callers in [1, bench.callers.max(1)] {
        // Concurrent callers finish sooner, so they do more within the same time.
        let total = if callers == 1 {
            bench.opens
        } else {
            bench.opens * 4
        };
        let mut results = [
            (Samples::default(), Duration::ZERO),
            (Samples::default(), Duration::ZERO),
        ];
        for index in (0..TURNS).flat_map(|_| ORDER) {
            let (times, wall) = open_many(
                Arc::clone(&ports[index].1),
                &stored,
                total / (2 * TURNS),
                callers,
            )
            .await?;
            results[index].0.extend(times);
            results[index].1 += wall;
        }
        let mut summaries = Vec::new();
        for ((label, _), (times, wall)) in ports.iter().zip(&results) {
            let summary = times.summary();
            println!(
                "[{backend}] {label}::open_connection, {callers} caller(s): {summary} => {:.0} opens/s",
                rate(times.len(), *wall)
            );
            summaries.push(summary);
        }
        if let [vault, refreshing] = summaries.as_slice() {
            println!(
                "[{backend}]     RefreshingSecrets − CredentialVault, {callers} caller(s): p50 {}, mean {}",
                signed_micros(refreshing.p50, vault.p50),
                signed_micros(refreshing.mean, vault.mean)
            );
        }
    }
    drop(db.close().await);
    Ok(())
}

/// `total` opens of the stored connection by `callers` tasks that take them from one
/// counter; each call timed, and the wall time of them all.
async fn open_many(
    port: Arc<dyn ConnectionSecrets>,
    stored: &StoredConnection,
    total: usize,
    callers: usize,
) -> anyhow::Result<(Samples, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let (workspace_id, id) = (stored.workspace_id, stored.id);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..callers.max(1) {
        let port = Arc::clone(&port);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut times = Samples::default();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let opened = port.open_connection(workspace_id, id).await;
                times.push(sent.elapsed());
                let (_, credentials) =
                    opened.map_err(|message| anyhow!("open_connection: {message}"))?;
                if credentials.auth_kind() != AuthKind::Bearer {
                    bail!("opened {:?}, not the bearer credential", credentials);
                }
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut all = Samples::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("an opening task")??);
    }
    Ok((all, started.elapsed()))
}

/// `after − before`, signed, in the unit that reads best.
fn signed_micros(after: Duration, before: Duration) -> String {
    if after >= before {
        format!("+{}", micros(after - before))
    } else {
        format!("−{}", micros(before - after))
    }
}

/// Our stand-in for a service: says whether the request carried the bench's token, and
/// never echoes it (services do not).
struct Upstream {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("listen on loopback")?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().route("/item", axum::routing::get(item));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the upstream server stopped: {error}");
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn item(headers: HeaderMap) -> Json<Value> {
    let expected = format!("Bearer {BEARER_TOKEN}");
    let authorized = headers
        .get(AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    Json(json!({
        "authorized": authorized,
        "id": "item_0001_9f3c2a71",
        "name": "Widget number 1",
        "price": {"amount": 2000, "currency": "EUR"},
        "tags": ["catalog", "active"],
        "updatedAt": "2026-11-30T09:15:00Z"
    }))
}

/// A webhook answering on completion, then one `GET {upstream}/item`, with the connection
/// when one is named. Without a `respond` node the answer is the run's output, the step's.
fn one_request(upstream: &str, connection_id: Option<&str>) -> Value {
    let mut config = json!({"method": "GET", "url": format!("{upstream}/item")});
    if let (Some(id), Some(fields)) = (connection_id, config.as_object_mut()) {
        fields.insert("connectionId".to_owned(), json!(id));
    }
    json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "fetch", "type": "http.request", "config": config}
        ],
        "edges": [{"from": "hook", "to": "fetch"}]
    })
}

/// One side of the end-to-end comparison.
#[derive(Clone)]
struct Variant {
    label: &'static str,
    url: String,
    /// What the upstream must have said: whether the step's request carried the token.
    authorized: bool,
}

/// 3. The release binary, one workflow without and one with a connection.
async fn end_to_end(bench: &ConnectionsBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let backend = bench.backend.name();
    let upstream = Upstream::start().await?;
    // `--http-allow-private`: the step's server is on loopback. Settings given with
    // `--server-env` come later, so they win.
    let mut envs = vec![("AOS_HTTP_ALLOW_PRIVATE".to_owned(), "true".to_owned())];
    envs.extend(bench.server_env.iter().cloned());
    let server = Server::start(&bench.binary, database, &envs)?;
    let owner = Owner::sign_up(&server).await?;
    let created = owner
        .gql(
            "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }",
            json!({"input": {"workspaceId": owner.workspace_id, "connector": "http",
                "name": "bench bearer", "credentials": {"kind": "bearer", "token": BEARER_TOKEN}}}),
        )
        .await?;
    let connection_id = string_at(&created["createConnection"]["id"])?;
    let mut variants = Vec::new();
    for (label, connection) in [
        ("without connectionId", None),
        ("with a bearer connectionId", Some(connection_id.as_str())),
    ] {
        let (_, url) = owner
            .active_workflow(one_request(&upstream.url, connection))
            .await?;
        variants.push(Variant {
            label,
            url: url.context("a webhook workflow has a webhook URL")?,
            authorized: connection.is_some(),
        });
    }
    println!(
        "[{backend}] end to end: webhook (onCompletion) → http.request GET {}/item",
        upstream.url
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.clients.max(1))
        .build()?;
    for variant in &variants {
        for _ in 0..50 {
            post(&client, variant).await?;
        }
        // As for the opens: the server's pool grows here, not in the first timed pass.
        concurrent_runs(&client, variant, 10 * bench.clients, bench.clients).await?;
    }

    // Request by request, turn about, so both see the same moments of the machine.
    let mut sequential = [
        (Samples::with_capacity(bench.runs), Duration::ZERO),
        (Samples::with_capacity(bench.runs), Duration::ZERO),
    ];
    for _ in 0..bench.runs {
        for (variant, (times, wall)) in variants.iter().zip(sequential.iter_mut()) {
            let sent = Instant::now();
            post(&client, variant).await?;
            let took = sent.elapsed();
            times.push(took);
            *wall += took;
        }
    }
    let sequential = report_runs(backend, &variants, &sequential, "sequential");

    let mut concurrent = [
        (Samples::default(), Duration::ZERO),
        (Samples::default(), Duration::ZERO),
    ];
    for index in (0..TURNS).flat_map(|_| ORDER) {
        let (times, wall) = concurrent_runs(
            &client,
            &variants[index],
            bench.concurrent_runs / (2 * TURNS),
            bench.clients,
        )
        .await?;
        concurrent[index].0.extend(times);
        concurrent[index].1 += wall;
    }
    let label = format!("{} clients", bench.clients);
    let concurrent = report_runs(backend, &variants, &concurrent, &label);

    for (label, summaries) in [("sequential", sequential), (label.as_str(), concurrent)] {
        if let [plain, signed] = summaries.as_slice() {
            println!(
                "[{backend}]     with − without, {label}: p50 {}, mean {}",
                signed_micros(signed.p50, plain.p50),
                signed_micros(signed.mean, plain.mean)
            );
        }
    }
    Ok(())
}

/// Prints each variant's runs; returns their summaries.
fn report_runs(
    backend: &str,
    variants: &[Variant],
    results: &[(Samples, Duration)],
    how: &str,
) -> Vec<Summary> {
    variants
        .iter()
        .zip(results)
        .map(|(variant, (times, wall))| {
            let summary = times.summary();
            println!(
                "[{backend}] {how}, {}: {summary} => {:.0} runs/s",
                variant.label,
                rate(times.len(), *wall)
            );
            summary
        })
        .collect()
}

/// `total` runs of `variant` by `clients` tasks that take them from one counter.
async fn concurrent_runs(
    client: &reqwest::Client,
    variant: &Variant,
    total: usize,
    clients: usize,
) -> anyhow::Result<(Samples, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..clients.max(1) {
        let client = client.clone();
        let next = Arc::clone(&next);
        let variant = variant.clone();
        tasks.spawn(async move {
            let mut times = Samples::default();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                post(&client, &variant).await?;
                times.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut all = Samples::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a client task")??);
    }
    Ok((all, started.elapsed()))
}

/// Runs `variant` once through its webhook and checks the answer is the step's output,
/// with the token applied exactly when the workflow names the connection.
async fn post(client: &reqwest::Client, variant: &Variant) -> anyhow::Result<()> {
    let response = client
        .post(&variant.url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if status != reqwest::StatusCode::OK
        || answer["status"] != 200
        || answer["body"]["authorized"] != variant.authorized
    {
        bail!("unexpected answer {status} ({}): {answer}", variant.label);
    }
    Ok(())
}

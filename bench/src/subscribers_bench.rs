//! (c) Delay from a step's journal write to its event reaching a `runEvents` subscriber,
//! with many subscriptions open on the release binary.
//!
//! Every subscription follows its own run of one workflow: a manual trigger, a first long
//! delay (time to queue every run and open every subscription), then `pairs` × (a delay
//! of `delay_ms`, a `set`). Events are stamped `at` by the worker when it builds them,
//! just before the journal transaction that stores them; the client stamps each event
//! when it has read and parsed its frame. The delay reported is arrival − `at`, for the
//! events stamped after the last subscription received its first message (from then on
//! every subscription is following the live bus). Server and client share the machine
//! and its clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::database::{Backend, FreshDatabase};
use crate::server::{Owner, Server, rss_kib};
use crate::stats::Samples;

pub struct SubscribersBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub binary: PathBuf,
    pub server_env: Vec<(String, String)>,
    pub subscriptions: usize,
    pub per_connection: usize,
    pub first_delay_ms: u64,
    pub pairs: usize,
    pub delay_ms: u64,
}

const RUN_EVENTS: &str =
    "subscription($runId: ID!) { runEvents(runId: $runId) { runId seq at kind } }";
/// A hang guard, not a figure.
const DEADLINE: Duration = Duration::from_secs(600);

fn live_definition(first_delay_ms: u64, pairs: usize, delay_ms: u64) -> Value {
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger.manual", "config": {}}),
        json!({"id": "settle", "type": "delay", "config": {"ms": first_delay_ms}}),
    ];
    let mut edges = vec![json!({"from": "start", "to": "settle"})];
    let mut previous = "settle".to_owned();
    for index in 1..=pairs {
        let wait = format!("wait{index}");
        let set = format!("set{index}");
        nodes.push(json!({"id": wait, "type": "delay", "config": {"ms": delay_ms}}));
        nodes.push(json!({"id": set, "type": "set", "config": {"fields": {"i": index}}}));
        edges.push(json!({"from": previous, "to": wait}));
        edges.push(json!({"from": wait, "to": set}));
        previous = set;
    }
    json!({"nodes": nodes, "edges": edges})
}

/// One event as the client saw it.
struct Arrival {
    subscription: usize,
    at: DateTime<Utc>,
    arrived: DateTime<Utc>,
    kind: String,
}

pub async fn run(bench: SubscribersBench) -> anyhow::Result<()> {
    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = against_server(&bench, &database).await;
    database.destroy().await;
    outcome
}

async fn against_server(bench: &SubscribersBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let server = Server::start(&bench.binary, database, &bench.server_env)?;
    let owner = Owner::sign_up(&server).await?;
    let (workflow_id, _) = owner
        .active_workflow(live_definition(
            bench.first_delay_ms,
            bench.pairs,
            bench.delay_ms,
        ))
        .await?;
    let backend = bench.backend.name();
    println!(
        "# subscribers [{backend}]: {} runEvents subscriptions, {} per connection",
        bench.subscriptions, bench.per_connection
    );

    let queued_from = Utc::now();
    let runs: Vec<String> = futures::stream::iter(0..bench.subscriptions)
        .map(|_| owner.run_workflow(&workflow_id, json!({})))
        .buffered(16)
        .try_collect()
        .await?;
    println!(
        "queued {} runs in {:.2}s",
        runs.len(),
        (Utc::now() - queued_from).num_milliseconds() as f64 / 1_000.0
    );

    let mut connections = tokio::task::JoinSet::new();
    for (index, chunk) in runs.chunks(bench.per_connection.max(1)).enumerate() {
        let url = server.ws_url();
        let token = owner.token.clone();
        let first = index * bench.per_connection.max(1);
        let chunk = chunk.to_vec();
        connections.spawn(async move { follow(&url, &token, first, &chunk).await });
    }
    let mut arrivals = Vec::new();
    while let Some(joined) = connections.join_next().await {
        arrivals.extend(joined.context("a connection task")??);
    }
    report(&arrivals, bench.subscriptions);
    if let Some(rss) = rss_kib(server.pid()) {
        println!("server RSS after the run: {:.1} MB", rss as f64 / 1024.0);
    }
    Ok(())
}

/// Opens one graphql-transport-ws connection, subscribes to each run's events and reads
/// until every subscription completes.
async fn follow(
    url: &str,
    token: &str,
    first: usize,
    runs: &[String],
) -> anyhow::Result<Vec<Arrival>> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await?;
    for (offset, run_id) in runs.iter().enumerate() {
        let subscribe = json!({"type": "subscribe", "id": (first + offset).to_string(), "payload": {"query": RUN_EVENTS, "variables": {"runId": run_id}}});
        socket.send(Message::text(subscribe.to_string())).await?;
    }
    let mut arrivals = Vec::new();
    let mut open = runs.len();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while open > 0 {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("subscriptions still open at the deadline")?;
        let Some(frame) = frame else {
            bail!("the server closed a connection with {open} subscriptions open")
        };
        let Message::Text(text) = frame? else {
            continue;
        };
        let arrived = Utc::now();
        let message: Value = serde_json::from_str(text.as_str())?;
        match message["type"].as_str() {
            Some("next") => {
                let event = &message["payload"]["data"]["runEvents"];
                let at = event["at"]
                    .as_str()
                    .context("an event without `at`")
                    .and_then(|at| Ok(DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc)))
                    .with_context(|| format!("in {message}"))?;
                arrivals.push(Arrival {
                    subscription: message["id"].as_str().unwrap_or("").parse().unwrap_or(0),
                    at,
                    arrived,
                    kind: event["kind"].as_str().unwrap_or("?").to_owned(),
                });
            }
            Some("complete") => open -= 1,
            Some("ping") => {
                socket
                    .send(Message::text(json!({"type": "pong"}).to_string()))
                    .await?;
            }
            Some("error") => bail!("subscription error: {message}"),
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    Ok(arrivals)
}

fn report(arrivals: &[Arrival], subscriptions: usize) {
    // From the moment the last subscription saw its first event, all of them are live.
    let mut first_seen: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    for arrival in arrivals {
        first_seen
            .entry(arrival.subscription)
            .and_modify(|seen| *seen = (*seen).min(arrival.arrived))
            .or_insert(arrival.arrived);
    }
    let Some(ready) = first_seen.values().max().copied() else {
        println!("no events arrived");
        return;
    };
    let live: Vec<&Arrival> = arrivals.iter().filter(|a| a.at > ready).collect();
    let (Some(from), Some(to)) = (
        live.iter().map(|a| a.at).min(),
        live.iter().map(|a| a.arrived).max(),
    ) else {
        println!("no event was stamped after every subscription was live");
        return;
    };
    let window = (to - from).to_std().unwrap_or_default();
    println!(
        "{} subscriptions live; {} of {} events stamped after that, over {:.2}s ({:.0} events/s delivered)",
        first_seen.len().min(subscriptions),
        live.len(),
        arrivals.len(),
        window.as_secs_f64(),
        live.len() as f64 / window.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    let mut all = Samples::with_capacity(live.len());
    let mut by_kind: BTreeMap<&str, Samples> = BTreeMap::new();
    for arrival in &live {
        let delay = (arrival.arrived - arrival.at).to_std().unwrap_or_default();
        all.push(delay);
        by_kind
            .entry(arrival.kind.as_str())
            .or_default()
            .push(delay);
    }
    println!("delay at -> arrival, all kinds: {}", all.summary());
    for (kind, samples) in by_kind {
        println!("    {kind}: {}", samples.summary());
    }
}

//! (b) Webhook round trip through the release binary: the contract's example workflow
//! (webhook → set → if → code → respond, answering on completion), with the `if` taking the
//! branch through `code`. Sequential latency over one keep-alive connection, then
//! throughput with 16 concurrent clients (a Rust load loop; optionally wrk as well).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::database::{Backend, FreshDatabase};
use crate::server::{Owner, Server, rss_kib};
use crate::stats::{Samples, rate};

pub struct WebhookBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub binary: PathBuf,
    pub server_env: Vec<(String, String)>,
    pub requests: usize,
    pub clients: usize,
    pub seconds: u64,
    pub wrk: bool,
}

/// The contract's example with `call` a `code` node: `n` = 20 doubles to 40, so `big`
/// takes the `true` branch through `call` to `reply`.
pub fn contract_example_with_code() -> Value {
    json!({
      "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
        {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}", "n": "{{ trigger.body.n * 2 }}"}}},
        {"id": "big", "type": "if", "config": {"condition": "{{ steps.greet.n > 10 }}"}},
        {"id": "call", "type": "code", "config": {"language": "javascript", "source": "return {m: steps.greet.message, big: steps.greet.n};"}},
        {"id": "reply", "type": "respond", "config": {"status": 200, "body": {"message": "{{ steps.greet.message }}", "via": "{{ steps.call.big }}"}}}
      ],
      "edges": [
        {"from": "hook", "to": "greet"},
        {"from": "greet", "to": "big"},
        {"from": "big", "to": "call", "branch": "true"},
        {"from": "big", "to": "reply", "branch": "false"},
        {"from": "call", "to": "reply"}
      ]
    })
}

const BODY: &str = r#"{"name":"Ada","n":20}"#;

pub async fn run(bench: WebhookBench) -> anyhow::Result<()> {
    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = against_server(&bench, &database).await;
    database.destroy().await;
    outcome
}

async fn against_server(bench: &WebhookBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let server = Server::start(&bench.binary, database, &bench.server_env)?;
    let owner = Owner::sign_up(&server).await?;
    let (_, url) = owner.active_workflow(contract_example_with_code()).await?;
    let url = url.context("a webhook workflow has a webhook URL")?;
    let backend = bench.backend.name();
    println!("# webhook [{backend}] {url}");

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.clients.max(1))
        .build()?;
    let first = post(&client, &url).await?;
    println!("answer: {first}");

    for _ in 0..50 {
        post(&client, &url).await?;
    }
    let mut sequential = Samples::with_capacity(bench.requests);
    let started = Instant::now();
    for _ in 0..bench.requests {
        let sent = Instant::now();
        post(&client, &url).await?;
        sequential.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    println!(
        "[{backend}] sequential: {} => {:.0} req/s",
        sequential.summary(),
        rate(sequential.len(), elapsed)
    );

    let (latencies, elapsed, failed) = concurrent(
        &client,
        &url,
        bench.clients,
        Duration::from_secs(bench.seconds),
    )
    .await;
    println!(
        "[{backend}] {} clients (Rust load loop, reqwest, keep-alive) for {:.1}s: {} ok, {failed} failed => {:.0} req/s; latency {}",
        bench.clients,
        elapsed.as_secs_f64(),
        latencies.len(),
        rate(latencies.len(), elapsed),
        latencies.summary()
    );

    if bench.wrk {
        wrk(&url, bench.clients, bench.seconds, database)?;
    }
    if let Some(rss) = rss_kib(server.pid()) {
        println!("server RSS after the run: {:.1} MB", rss as f64 / 1024.0);
    }
    Ok(())
}

/// POSTs the body and checks the answer is the `respond` node's, not a 202 or an error.
async fn post(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status != reqwest::StatusCode::OK || body["message"] != "Hello Ada" {
        bail!("unexpected answer {status}: {body}");
    }
    Ok(body)
}

async fn concurrent(
    client: &reqwest::Client,
    url: &str,
    clients: usize,
    duration: Duration,
) -> (Samples, Duration, usize) {
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let client = client.clone();
        let url = url.to_owned();
        let failed = Arc::clone(&failed);
        tasks.spawn(async move {
            let mut latencies = Samples::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match post(&client, &url).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        });
    }
    let mut all = Samples::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(latencies) = joined {
            all.extend(latencies);
        }
    }
    (all, started.elapsed(), failed.load(Ordering::Relaxed))
}

/// The same load from wrk (POST with the JSON body), when it is installed.
fn wrk(url: &str, clients: usize, seconds: u64, database: &FreshDatabase) -> anyhow::Result<()> {
    let script = database.data_dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let output = Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{clients}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .context("run wrk (apt-get install -y wrk)")?;
    println!(
        "wrk -t2 -c{clients} -d{seconds}s --latency -s post.lua:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(())
}

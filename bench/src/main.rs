//! `aos-bench`: benchmarks of the run engine, the webhook round trip, live run events and
//! the cost of using a connection. Figures, and the commands that produced them, are in
//! docs/benchmarks.md.
//!
//! Run in release mode (`cargo run --release -p aos-bench -- <command>`); the webhook,
//! subscriber and connection benchmarks start the release binary, so build it first
//! (`cargo build --release --bin automationos`).

mod connections_bench;
mod database;
mod engine_bench;
mod fairness_bench;
mod null_queue;
mod server;
mod stats;
mod stats_bench;
mod subscribers_bench;
mod tenant;
mod timed_queue;
mod webhook_bench;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use database::Backend;

#[derive(Debug, Parser)]
#[command(name = "aos-bench", about = "AutomationOS benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// (a) Drain a queue of 10-node linear runs; bare journal writes; engine cost per step.
    Engine {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 2_000)]
        runs: usize,
        /// Worker pool sizes to drain with, one fresh batch of runs each.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        concurrency: Vec<usize>,
        #[arg(long, default_value_t = 2_000)]
        heartbeats: usize,
        /// Runs driven against a queue with no storage.
        #[arg(long, default_value_t = 20_000)]
        in_memory_runs: usize,
    },
    /// (b) Webhook round trip of the contract example through the release binary.
    Webhook {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        server: ServerArgs,
        /// Sequential requests timed (after 50 of warm-up).
        #[arg(long, default_value_t = 500)]
        requests: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// How long the concurrent load runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Also measure with wrk (POST + JSON through a Lua script).
        #[arg(long)]
        wrk: bool,
    },
    /// (c) Journal-to-subscriber delay with many runEvents subscriptions open.
    Subscribers {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, default_value_t = 1_000)]
        subscriptions: usize,
        /// Subscriptions per WebSocket (the server allows 50 by default).
        #[arg(long, default_value_t = 10)]
        per_connection: usize,
        /// The first delay of every run: time to queue them all and subscribe.
        #[arg(long, default_value_t = 15_000)]
        first_delay_ms: u64,
        /// (delay, set) pairs after it.
        #[arg(long, default_value_t = 5)]
        pairs: usize,
        #[arg(long, default_value_t = 200)]
        delay_ms: u64,
    },
    /// (d) What using a connection costs: the vault and the redactor in memory, opening a
    /// connection through storage, and an `http.request` step without and with one.
    Connections {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        server: ServerArgs,
        /// In-memory operations timed, of each kind.
        #[arg(long, default_value_t = 100_000)]
        operations: usize,
        /// Sequential opens through storage, of each port (16 callers do four times as many).
        #[arg(long, default_value_t = 10_000)]
        opens: usize,
        #[arg(long, default_value_t = 16)]
        callers: usize,
        /// Sequential runs of each workflow (after a warm-up), taking turns.
        #[arg(long, default_value_t = 2_000)]
        runs: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Runs of each workflow by `clients` concurrent clients.
        #[arg(long, default_value_t = 4_000)]
        concurrent_runs: usize,
    },
    /// (e) Fair claiming: the latency of workspace B's runs with and without workspace A
    /// flooding the queue.
    Fairness {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        args: fairness_bench::FairnessArgs,
    },
    /// (f) Run statistics (`Workflow.stats`, `Workspace.usage`) over a million runs.
    Stats {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: stats_bench::StatsArgs,
    },
}

#[derive(Debug, Args)]
struct Target {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// The Postgres server on which a database `aos_bench_<random>` is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/")]
    postgres_server: String,
}

#[derive(Debug, Args)]
struct ServerArgs {
    #[arg(long, default_value = "target/release/automationos")]
    binary: PathBuf,
    /// Extra settings for the server, `NAME=VALUE` (e.g. `AOS_RUNS_PER_WORKSPACE=16`).
    #[arg(long = "server-env", value_parser = name_value)]
    server_env: Vec<(String, String)>,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Engine {
                target,
                runs,
                concurrency,
                heartbeats,
                in_memory_runs,
            } => {
                engine_bench::run(engine_bench::EngineBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    runs,
                    concurrency,
                    heartbeats,
                    in_memory_runs,
                })
                .await
            }
            Command::Webhook {
                target,
                server,
                requests,
                clients,
                seconds,
                wrk,
            } => {
                webhook_bench::run(webhook_bench::WebhookBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    binary: server.binary,
                    server_env: server.server_env,
                    requests,
                    clients,
                    seconds,
                    wrk,
                })
                .await
            }
            Command::Subscribers {
                target,
                server,
                subscriptions,
                per_connection,
                first_delay_ms,
                pairs,
                delay_ms,
            } => {
                subscribers_bench::run(subscribers_bench::SubscribersBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    binary: server.binary,
                    server_env: server.server_env,
                    subscriptions,
                    per_connection,
                    first_delay_ms,
                    pairs,
                    delay_ms,
                })
                .await
            }
            Command::Connections {
                target,
                server,
                operations,
                opens,
                callers,
                runs,
                clients,
                concurrent_runs,
            } => {
                connections_bench::run(connections_bench::ConnectionsBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    binary: server.binary,
                    server_env: server.server_env,
                    operations,
                    opens,
                    callers,
                    runs,
                    clients,
                    concurrent_runs,
                })
                .await
            }
            Command::Fairness {
                target,
                server,
                args,
            } => {
                fairness_bench::run(fairness_bench::FairnessBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    binary: server.binary,
                    server_env: server.server_env,
                    args,
                })
                .await
            }
            Command::Stats { target, args } => {
                stats_bench::run(stats_bench::StatsBench {
                    backend: target.backend,
                    postgres_server: target.postgres_server,
                    args,
                })
                .await
            }
        }
    })
}

//! Command line and environment configuration. Every flag has an environment variable;
//! the defaults make `serve` work on a fresh machine with nothing else installed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "automationos",
    version,
    about = "Workflow automation backend: GraphQL API, webhooks and durable runs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API with an embedded worker pool (and, as later issues land,
    /// webhooks and the scheduler).
    Serve(Box<ServeArgs>),
    /// Run workers only: claim queued runs from the shared database and execute them.
    Worker(WorkerArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the GraphQL schema (SDL); `schema.graphql` must equal it byte for byte.
    Schema,
    /// Manage the master keys that seal connection credentials and signing keys.
    Keys(KeysArgs),
    /// Per-workspace request rate-limit overrides. Whoever can run this against the
    /// database is the instance administrator: there is no GraphQL way to change them.
    Limits(LimitsArgs),
    /// Per-workspace quotas (plan-like ceilings) and fair-share settings. Like `limits`,
    /// only whoever can run this against the database changes them.
    Quotas(QuotasArgs),
}

#[derive(Debug, Args)]
pub struct QuotasArgs {
    #[command(subcommand)]
    pub command: QuotasCommand,
}

#[derive(Debug, Subcommand)]
pub enum QuotasCommand {
    /// Set some of one workspace's quotas (the others keep their current setting). Each
    /// value is a positive number or `unlimited`. Applies at once on every node.
    Set {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The workspace's id, as GraphQL shows it.
        #[arg(long)]
        workspace: String,
        /// `<quota>=<limit>`, repeatable: activeWorkflows, runsPerMonth, retentionDays,
        /// connections, members, aiGenerationsPerDay, queuedRuns.
        #[arg(long = "quota", value_name = "QUOTA=LIMIT")]
        quotas: Vec<String>,
        /// How many of its runs may execute at once, across all workers.
        #[arg(long)]
        running_runs: Option<u32>,
        /// Its share of the workers when workspaces compete for them (default 1).
        #[arg(long)]
        scheduling_weight: Option<u32>,
    },
    /// Return one workspace to the instance defaults.
    Clear {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        workspace: String,
    },
    /// List the workspaces with settings of their own.
    Show(DatabaseArgs),
}

/// The instance's default quotas, which `automationos quotas set` overrides per
/// workspace. 0 means unlimited.
#[derive(Debug, Clone, Args)]
pub struct QuotaArgs {
    /// Workflows a workspace may have active at once.
    #[arg(long, env = "AOS_QUOTA_ACTIVE_WORKFLOWS", default_value_t = 1_000)]
    pub quota_active_workflows: u64,
    /// Runs a workspace may start per calendar month (UTC); 0: unlimited.
    #[arg(long, env = "AOS_QUOTA_RUNS_PER_MONTH", default_value_t = 0)]
    pub quota_runs_per_month: u64,
    /// Days a workspace's finished runs (and its audit log) are kept.
    #[arg(long, env = "AOS_QUOTA_RETENTION_DAYS", default_value_t = 90)]
    pub quota_retention_days: u64,
    /// Connections a workspace may hold.
    #[arg(long, env = "AOS_QUOTA_CONNECTIONS", default_value_t = 500)]
    pub quota_connections: u64,
    /// Members a workspace may have, owners included.
    #[arg(long, env = "AOS_QUOTA_MEMBERS", default_value_t = 200)]
    pub quota_members: u64,
    /// Workflow generations (AI) a workspace may ask for per day (UTC).
    #[arg(long, env = "AOS_QUOTA_AI_GENERATIONS_PER_DAY", default_value_t = 200)]
    pub quota_ai_generations_per_day: u64,
    /// Runs a workspace may have waiting in the queue at once.
    #[arg(long, env = "AOS_QUOTA_QUEUED_RUNS", default_value_t = 100_000)]
    pub quota_queued_runs: u64,
}

impl QuotaArgs {
    pub fn limits(&self) -> aos_domain::quota::QuotaLimits {
        let limit = |value: u64| (value > 0).then_some(value);
        aos_domain::quota::QuotaLimits {
            active_workflows: limit(self.quota_active_workflows),
            runs_per_month: limit(self.quota_runs_per_month),
            retention_days: limit(self.quota_retention_days),
            connections: limit(self.quota_connections),
            members: limit(self.quota_members),
            ai_generations_per_day: limit(self.quota_ai_generations_per_day),
            queued_runs: limit(self.quota_queued_runs),
        }
    }
}

#[derive(Debug, Args)]
pub struct LimitsArgs {
    #[command(subcommand)]
    pub command: LimitsCommand,
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Give one workspace its own quota instead of the default; servers apply it within
    /// about 10 seconds, without a restart.
    Set {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The workspace's id, as GraphQL shows it.
        #[arg(long)]
        workspace: String,
        /// Requests per second on average (at least 1).
        #[arg(long)]
        rps: u32,
        /// Requests at once above that rate (at least 1).
        #[arg(long)]
        burst: u32,
    },
    /// Return one workspace to the default quota.
    Clear {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        workspace: String,
    },
    /// List the workspaces with their own quota.
    Show(DatabaseArgs),
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Base64 of 32 random bytes. Unset: kept in `<data-dir>/master.key`, generated on
    /// first start. Every node of a cluster needs the same key.
    #[arg(long, env = "AOS_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Comma-separated base64 keys that `AOS_MASTER_KEY` replaced: still used to open
    /// what they sealed until `keys rotate` has re-sealed it all under the current key.
    #[arg(long, env = "AOS_MASTER_KEY_PREVIOUS", hide_env_values = true)]
    pub master_key_previous: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Where the keys and what they seal live.
#[derive(Debug, Args)]
pub struct KeyStoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub keys: KeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show the current and previous master keys and what each one seals.
    Status(KeyStoreArgs),
    /// Make a new master key current and re-seal every data key and signing key under
    /// it, while servers keep running. With the key file, the new key is generated into
    /// it; with `AOS_MASTER_KEY`, set it to the new key and `AOS_MASTER_KEY_PREVIOUS` to
    /// the old ones first.
    Rotate(KeyStoreArgs),
    /// Drop from the key file the previous keys that seal nothing any more.
    Retire(KeyStoreArgs),
    /// Print a fresh random key in the form `AOS_MASTER_KEY` takes.
    Generate,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    /// Default: the embedded SQLite database `<data-dir>/automationos.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis, for a cluster: live run and workflow events reach subscribers on every node
    /// at once. Unset: events are local to each process (run events from other nodes are
    /// read from the database).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Where local state lives: the embedded database and a generated master key.
    #[arg(long, env = "AOS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl DatabaseArgs {
    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("automationos.db").display()
            )
        })
    }
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// How many runs this process executes at once (0: none, an API-only node).
    #[arg(long, env = "AOS_WORKERS", default_value_t = 8)]
    pub workers: usize,

    /// Most runs of one workspace in progress at once across the cluster, so a busy
    /// workspace cannot take every worker.
    #[arg(long, env = "AOS_RUNS_PER_WORKSPACE", default_value_t = 4)]
    pub runs_per_workspace: u32,

    /// A worker that stops renewing its lease for this long loses the run to another.
    #[arg(long, env = "AOS_RUN_LEASE_MS", default_value_t = 30_000)]
    pub run_lease_ms: u64,

    /// Let workflow HTTP steps reach loopback, private and link-local addresses.
    #[arg(long, env = "AOS_HTTP_ALLOW_PRIVATE")]
    pub http_allow_private: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub keys: KeyArgs,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Where to serve `GET /metrics` (Prometheus) and `GET /healthz`; unset: nowhere. A
    /// `serve` node exports its metrics on its API address instead.
    #[arg(long, env = "AOS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Address to listen on; port 0 picks a free port (the printed URL has the real one).
    #[arg(long, env = "AOS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub keys: KeyArgs,

    /// Webhook runs (`respond: onCompletion`) this node executes at once itself, on top of
    /// its workers, instead of queueing them; 0 queues every run. Past the limit, runs
    /// are queued.
    #[arg(long, env = "AOS_RUNS_IN_PLACE", default_value_t = 64)]
    pub runs_in_place: usize,

    /// Skip migrations at start (for clusters that migrate as a release step).
    #[arg(long, env = "AOS_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Public base URL, used in webhook URLs. Default: `http://<listen address>`.
    #[arg(long, env = "AOS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest accepted request body (and WebSocket message), in bytes.
    #[arg(long, env = "AOS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// logIn/signUp attempts allowed per e-mail address per minute (per client IP: 10x).
    #[arg(long, env = "AOS_AUTH_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub auth_attempts_per_minute: u32,

    /// Requests per second each workspace may make on average (GraphQL requests,
    /// subscription starts, webhook calls), and each client IP without credentials; 0
    /// turns request rate limiting off. `automationos limits set` overrides it per
    /// workspace. With `--redis-url` the budget is shared by every node.
    #[arg(long, env = "AOS_RATE_LIMIT_RPS", default_value_t = 50)]
    pub rate_limit_rps: u32,

    /// Requests a workspace (or client IP) may make at once above that rate.
    #[arg(long, env = "AOS_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    #[command(flatten)]
    pub quotas: QuotaArgs,

    /// Lifetime of access tokens (JWTs), in seconds.
    #[arg(long, env = "AOS_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds.
    #[arg(long, env = "AOS_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Deepest allowed GraphQL selection nesting.
    #[arg(long, env = "AOS_GRAPHQL_MAX_DEPTH", default_value_t = 15)]
    pub graphql_max_depth: usize,

    /// Largest allowed GraphQL query complexity (fields counted, lists weighted).
    #[arg(long, env = "AOS_GRAPHQL_MAX_COMPLEXITY", default_value_t = 2000)]
    pub graphql_max_complexity: usize,

    /// Most aliases one GraphQL document may use.
    #[arg(long, env = "AOS_GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,

    /// Most operations in one batched request.
    #[arg(long, env = "AOS_GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Time a WebSocket client has to send a valid `connection_init`, in milliseconds.
    #[arg(long, env = "AOS_WS_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_init_timeout_ms: u64,

    /// Most concurrent subscriptions on one WebSocket.
    #[arg(long, env = "AOS_WS_MAX_SUBSCRIPTIONS", default_value_t = 50)]
    pub ws_max_subscriptions: usize,

    /// Most live subscriptions on this node, all workspaces together. Per node: a cluster
    /// of N nodes admits N times as many.
    #[arg(
        long,
        env = "AOS_WS_MAX_SUBSCRIPTIONS_PER_NODE",
        default_value_t = 10_000
    )]
    pub ws_max_subscriptions_per_node: usize,

    /// Most live subscriptions of one workspace on this node.
    #[arg(
        long,
        env = "AOS_WS_MAX_SUBSCRIPTIONS_PER_WORKSPACE",
        default_value_t = 500
    )]
    pub ws_max_subscriptions_per_workspace: usize,

    /// A WebSocket that holds no subscription this long is closed (code 4410), in
    /// milliseconds.
    #[arg(long, env = "AOS_WS_IDLE_TIMEOUT_MS", default_value_t = 300_000)]
    pub ws_idle_timeout_ms: u64,

    /// For tests only: every polling trigger polls this often (in milliseconds) instead
    /// of every `intervalSeconds`, whose 15 s minimum is too slow for a test to wait for.
    #[arg(long, env = "AOS_POLL_INTERVAL_OVERRIDE_MS", hide = true)]
    pub poll_interval_override_ms: Option<u64>,
}

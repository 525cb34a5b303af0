//! Settings of the API layer, passed in explicitly by the binary (no globals).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base of public URLs (webhooks), without a trailing slash.
    pub public_url: String,
    pub max_body_bytes: usize,
    pub auth_attempts_per_minute: u32,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub graphql: GraphqlLimits,
    pub ws_init_timeout: Duration,
    /// Per socket.
    pub ws_max_subscriptions: usize,
    /// Live subscriptions on this node, all workspaces together (not cluster-wide).
    pub ws_max_subscriptions_per_node: usize,
    /// Live subscriptions of one workspace on this node (not cluster-wide).
    pub ws_max_subscriptions_per_workspace: usize,
    /// How long a socket may hold no subscription before it is closed.
    pub ws_idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_batch: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            auth_attempts_per_minute: 10,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            graphql: GraphqlLimits {
                max_depth: 15,
                max_complexity: 2000,
                max_aliases: 30,
                max_batch: 10,
            },
            ws_init_timeout: Duration::from_secs(10),
            ws_max_subscriptions: 50,
            ws_max_subscriptions_per_node: 10_000,
            ws_max_subscriptions_per_workspace: 500,
            ws_idle_timeout: Duration::from_secs(300),
        }
    }
}

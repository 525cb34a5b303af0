//! Black-box tests: every test starts the real `automationos` binary on a free port with its
//! own data directory (and, when `AOS_TEST_DATABASE_URL` names a Postgres server, its own
//! database) and talks to it only as a client would, over HTTP and WebSocket.
//!
//! One test binary, so the harness and the dependencies link once.

#[path = "blackbox/harness.rs"]
mod harness;

#[path = "blackbox/ai.rs"]
mod ai;
#[path = "blackbox/architecture.rs"]
mod architecture;
#[path = "blackbox/audit_log.rs"]
mod audit_log;
#[path = "blackbox/auth.rs"]
mod auth;
#[path = "blackbox/builtin_connectors.rs"]
mod builtin_connectors;
#[path = "blackbox/connections.rs"]
mod connections;
#[path = "blackbox/connector_nodes.rs"]
mod connector_nodes;
#[path = "blackbox/crash.rs"]
mod crash;
#[path = "blackbox/in_place.rs"]
mod in_place;
#[path = "blackbox/isolation.rs"]
mod isolation;
#[path = "blackbox/key_rotation.rs"]
mod key_rotation;
#[path = "blackbox/nodes.rs"]
mod nodes;
#[path = "blackbox/oauth.rs"]
mod oauth;
#[path = "blackbox/observability.rs"]
mod observability;
#[path = "blackbox/ops.rs"]
mod ops;
#[path = "blackbox/protection.rs"]
mod protection;
#[path = "blackbox/quotas.rs"]
mod quotas;
#[path = "blackbox/rate_limits.rs"]
mod rate_limits;
#[path = "blackbox/run_events.rs"]
mod run_events;
#[path = "blackbox/run_stats.rs"]
mod run_stats;
#[path = "blackbox/runs.rs"]
mod runs;
#[path = "blackbox/schedules.rs"]
mod schedules;
#[path = "blackbox/stall.rs"]
mod stall;
#[path = "blackbox/subscription_limits.rs"]
mod subscription_limits;
#[path = "blackbox/tokens.rs"]
mod tokens;
#[path = "blackbox/validation.rs"]
mod validation;
#[path = "blackbox/webhooks.rs"]
mod webhooks;
#[path = "blackbox/websocket.rs"]
mod websocket;
#[path = "blackbox/workflow_events.rs"]
mod workflow_events;
#[path = "blackbox/workflows.rs"]
mod workflows;
#[path = "blackbox/workspaces.rs"]
mod workspaces;

//! The poller: while a workflow whose trigger is a `trigger.poll` is active, asks the
//! trigger's connector for new items every interval and starts one run per new item
//! (its trigger output is the item).
//!
//! Every `serve` runs one, and each node is still polled once per interval: a poll is
//! claimed under a lease in storage ([`PollStore::claim_due_poll`]), and the poller that
//! holds it records the cursor, the runs and the next due time in one write, or nothing
//! if its lease was taken over meanwhile (see `aos_domain::polling`). The lease outlasts
//! [`PollerConfig::poll_timeout`], so a poll that is still going is not taken over; a
//! process that dies mid-poll leaves the lease to expire, and the next poll starts from
//! the old cursor, finding the same items again: none is lost, none runs twice.
//!
//! Rules:
//! - the first poll of a node (no cursor yet) only records the cursor and starts nothing,
//!   so a new trigger does not fire for everything that already exists;
//! - a failed poll (the connection cannot be opened, a NEEDS_REAUTH one included; the
//!   service fails; a rate limit) is recorded on the node and logged, both without a
//!   secret, and tried again after [`failure_backoff`], or after the service's
//!   `Retry-After` if that is longer;
//! - a node that is no longer its workflow's trigger (a new version changed it) has its
//!   state dropped when it next falls due; a deleted workflow takes its states with it,
//!   and an inactive one is never claimed; a new version, or the workflow activated
//!   again, polls on from the stored cursor, so items added meanwhile still start runs;
//! - items are redacted with the connection's credentials before they become runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::watch;

use aos_connectors::Polled;
use aos_domain::DomainError;
use aos_domain::ids::WorkflowId;
use aos_domain::journal::{NewRun, RunTrigger};
use aos_domain::polling::{ClaimedPoll, PollKey, PollOutcome, PollStore, failure_backoff};
use aos_domain::ports::{RunEventSink, TriggerStore, TriggerTarget};
use aos_domain::run::RunId;
use aos_domain::workflow::node_types::{NodeKind, PollTriggerConfig};
use aos_domain::workflow::validate_definition;

use crate::connector_call::{CallFailure, open_connection, poll_trigger, shown_wait};
use crate::step::NodeServices;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Names this process in the leases it takes.
    pub owner: String,
    /// How long a claimed poll is this poller's; longer than `poll_timeout`.
    pub lease: Duration,
    /// The longest one poll may take; past it, it fails.
    pub poll_timeout: Duration,
    /// Polls at once.
    pub concurrency: usize,
    /// How often to look for due polls.
    pub tick: Duration,
    /// How often to look for newly active polling triggers.
    pub refresh: Duration,
    /// For tests only: every trigger polls this often instead of every `intervalSeconds`
    /// (whose minimum, 15 s, is too slow for a test to wait for).
    pub interval_override: Option<Duration>,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            owner: "poller".to_owned(),
            lease: Duration::from_secs(120),
            poll_timeout: Duration::from_secs(60),
            concurrency: 8,
            tick: Duration::from_millis(250),
            refresh: Duration::from_secs(2),
            interval_override: None,
        }
    }
}

pub struct Poller {
    triggers: Arc<dyn TriggerStore>,
    polls: Arc<dyn PollStore>,
    services: NodeServices,
    events: Arc<dyn RunEventSink>,
    wake_workers: Arc<dyn Fn() + Send + Sync>,
    config: PollerConfig,
    /// Active workflow versions whose polling trigger (if any) has a state already, so a
    /// refresh parses only new ones.
    known: HashSet<(WorkflowId, i32)>,
}

impl Poller {
    pub fn new(
        triggers: Arc<dyn TriggerStore>,
        polls: Arc<dyn PollStore>,
        services: NodeServices,
        events: Arc<dyn RunEventSink>,
        wake_workers: Arc<dyn Fn() + Send + Sync>,
        config: PollerConfig,
    ) -> Self {
        Self {
            triggers,
            polls,
            services,
            events,
            wake_workers,
            config,
            known: HashSet::new(),
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut last_refresh: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            if last_refresh.is_none_or(|at| at.elapsed() >= self.config.refresh) {
                self.refresh(Utc::now().timestamp_millis()).await;
                last_refresh = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                _ = self.poll_due(Utc::now().timestamp_millis()) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.tick) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    /// Gives every polling trigger of an active workflow a state (the first due at
    /// `now_ms`), unless it has one.
    pub async fn refresh(&mut self, now_ms: i64) {
        let active = match self.triggers.active_workflows().await {
            Ok(active) => active,
            Err(error) => {
                tracing::error!(error = %error, "reading the active workflows failed");
                return;
            }
        };
        let mut known = HashSet::new();
        for target in active {
            let version = (target.workflow_id, target.version);
            if self.known.contains(&version) {
                known.insert(version);
                continue;
            }
            if let Some((node_id, _)) = polling_trigger(&target) {
                let key = PollKey {
                    workflow_id: target.workflow_id,
                    node_id,
                };
                if let Err(error) = self
                    .polls
                    .ensure_poll_state(target.workspace_id, &key, now_ms)
                    .await
                {
                    tracing::error!(workflow.id = %target.workflow_id, error = %error, "starting a poll state failed");
                    continue;
                }
            }
            known.insert(version);
        }
        self.known = known;
    }

    /// Polls every node due at `now_ms`, at most `concurrency` at once, and returns how
    /// many it claimed.
    pub async fn poll_due(&self, now_ms: i64) -> usize {
        let mut in_flight = FuturesUnordered::new();
        let mut claimed = 0;
        let mut exhausted = false;
        loop {
            while !exhausted && in_flight.len() < self.config.concurrency.max(1) {
                match self.claim(now_ms).await {
                    Some(poll) => {
                        claimed += 1;
                        in_flight.push(self.poll(poll, now_ms));
                    }
                    None => exhausted = true,
                }
            }
            if in_flight.next().await.is_none() {
                return claimed;
            }
        }
    }

    async fn claim(&self, now_ms: i64) -> Option<ClaimedPoll> {
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        match self
            .polls
            .claim_due_poll(&self.config.owner, now_ms, lease_ms)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(error = %error, "claiming a poll failed");
                None
            }
        }
    }

    async fn poll(&self, claimed: ClaimedPoll, now_ms: i64) {
        let key = &claimed.lease.key;
        let Some(config) = polling_trigger(&claimed.target)
            .filter(|(node_id, _)| *node_id == key.node_id)
            .map(|(_, config)| config)
        else {
            if let Err(error) = self.polls.forget_poll_state(&claimed.lease).await {
                tracing::error!(workflow.id = %key.workflow_id, error = %error, "dropping an unused poll state failed");
            }
            return;
        };
        let interval = self
            .config
            .interval_override
            .unwrap_or(Duration::from_secs(u64::from(config.interval_seconds)));
        let asked = tokio::time::timeout(self.config.poll_timeout, self.ask(&claimed, &config));
        let found = asked.await.unwrap_or_else(|_| {
            Err(CallFailure {
                message: format!(
                    "the poll took longer than {}",
                    shown_wait(self.config.poll_timeout)
                ),
                retry_after: None,
            })
        });
        let outcome = match found {
            Ok(polled) => PollOutcome::Polled {
                // The first poll only learns where the trigger stands.
                runs: match claimed.state.cursor {
                    None => Vec::new(),
                    Some(_) => polled
                        .items
                        .into_iter()
                        .map(|item| new_run(&claimed.target, item))
                        .collect(),
                },
                cursor: polled.cursor,
                next_poll_at_ms: now_ms.saturating_add(millis(interval)),
            },
            Err(failure) => {
                let backoff = failure_backoff(interval, claimed.state.failures.saturating_add(1));
                let wait = failure
                    .retry_after
                    .map_or(backoff, |asked| asked.max(backoff));
                tracing::warn!(
                    workspace.id = %claimed.target.workspace_id,
                    workflow.id = %key.workflow_id,
                    node.id = %key.node_id,
                    error = %failure.message,
                    "a poll failed; trying again in {}",
                    shown_wait(wait)
                );
                PollOutcome::Failed {
                    error: failure.message,
                    next_poll_at_ms: now_ms.saturating_add(millis(wait)),
                }
            }
        };
        match self
            .polls
            .finish_poll(&claimed.lease, outcome, Utc::now())
            .await
        {
            Ok(Some(runs)) if runs.is_empty() => {}
            Ok(Some(runs)) => {
                tracing::info!(workflow.id = %key.workflow_id, node.id = %key.node_id, runs = runs.len(), "a poll found new items");
                let queued: Vec<_> = runs.iter().map(|run| run.queued_event()).collect();
                self.events.publish(&queued);
                (self.wake_workers)();
            }
            Ok(None) => {
                tracing::warn!(workflow.id = %key.workflow_id, node.id = %key.node_id, "another poller took this poll over; its result is dropped");
            }
            // The workspace's own limit: its new items wait, unrecorded, for room.
            Err(error @ DomainError::QuotaExceeded { .. }) => {
                tracing::warn!(workflow.id = %key.workflow_id, node.id = %key.node_id, error = %error, "a poll's runs were refused by a quota; it is polled again once its lease ends");
            }
            Err(error) => {
                tracing::error!(workflow.id = %key.workflow_id, node.id = %key.node_id, error = %error, "recording a poll failed; it is polled again once its lease ends");
            }
        }
    }

    /// What the trigger's connector finds after the stored cursor, items redacted.
    async fn ask(
        &self,
        claimed: &ClaimedPoll,
        config: &PollTriggerConfig,
    ) -> Result<Polled, CallFailure> {
        let fail = |message: String| CallFailure {
            message,
            retry_after: None,
        };
        let mut opened = open_connection(
            &self.services,
            claimed.target.workspace_id,
            config.connection_id,
        )
        .await
        .map_err(fail)?;
        if opened.connection.connector != config.connector {
            return Err(fail(format!(
                "connection `{}` is a `{}` connection, and this trigger needs a `{}` one",
                opened.connection.name.as_str(),
                opened.connection.connector,
                config.connector
            )));
        }
        let params = Value::Object(config.params.clone());
        let mut polled = poll_trigger(
            &self.services,
            &mut opened,
            &config.trigger,
            &params,
            claimed.state.cursor.as_ref(),
        )
        .await?;
        for item in &mut polled.items {
            opened.redactor.redact_value(item);
        }
        Ok(polled)
    }
}

/// The polling trigger of `target`'s current version, with its node id.
fn polling_trigger(target: &TriggerTarget) -> Option<(String, PollTriggerConfig)> {
    let definition = validate_definition(&target.definition).ok()?;
    let trigger = definition.trigger();
    match trigger.kind() {
        NodeKind::PollTrigger(config) => Some((trigger.id().to_string(), config.clone())),
        _ => None,
    }
}

fn new_run(target: &TriggerTarget, item: Value) -> NewRun {
    NewRun {
        id: RunId::generate(),
        workflow_id: target.workflow_id,
        workflow_version: target.version,
        trigger: RunTrigger::Poll,
        input: item,
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at: Utc::now(),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

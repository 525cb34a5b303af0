//! The worker pool: each worker claims a run, resumes it from its journal and drives it
//! step by step until it ends, sleeps (a delay or a retry backoff), is handed back at
//! shutdown, or is lost to another worker.
//!
//! Durability: every write carries the claim's fencing token, so a worker that lost its
//! lease (stalled past its lease, or partitioned away) commits nothing. A side-effecting
//! step's result is journaled, with its events and the skips it causes, before the next
//! step starts. Pure steps (`set`, `if`, `code`, ...) are journaled with the next write
//! the run needs anyway (a side effect, a wait, its end), or once they have waited
//! [`BUFFER_FOR`]: nobody has seen them before that write, and a worker that resumes the
//! run computes them again from the same journaled inputs. A side-effecting step (`http.request`, `connector`, or a `loop` whose body has one) is
//! journaled as RUNNING before it executes, and a step found RUNNING on resume is executed again with the same
//! idempotency key: at-least-once execution that a receiver honouring `Idempotency-Key`
//! turns into effectively-once. Waits hold no worker: the run is put back in the queue
//! with the time it becomes claimable.
//!
//! Events: a run's start and its `RUN_STARTED` event go with its first write. Every step
//! event is journaled with the step record it describes.
//!
//! A run can also be executed at once by the process that received it
//! ([`Engine::execute_now`], for webhooks): it is stored with its first write, so a run
//! of pure steps costs one write in all.
//!
//! Making way: the queue's claim order is fair across workspaces, but it only acts when a
//! worker claims. When every worker of this process holds a run, a worker asks between two
//! steps (at most once per step, never before its first) whether another workspace has a
//! due run that the fair order would serve first (`RunQueue::another_workspace_waiting`:
//! one indexed query, asked only then). If so, it claims that run while it still holds its
//! own (so its own workspace still counts the slot and cannot win the claim back), then
//! hands its run back with what it has buffered in one write, like a shutdown does, and
//! drives the claimed one to its end or its next wait (it does not make way in turn, or two
//! workspaces sharing one worker would trade it at every step). So a workspace whose runs
//! fill the process delays another's run by at most about one step per worker, not by
//! whole runs. The handed-back run goes back with its creation as its available time, ahead
//! of what its workspace queued since, so making way does not send a started run to the end
//! of its workspace's backlog. Nothing is lost or repeated: the hand-back is an ordinary
//! fenced journal write at a step boundary, where nothing is in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::journal::{
    ClaimedRun, Journal, JournalRefusal, Lease, NewRun, NewRunEvent, RunChange, RunEventKind,
    RunOutcome, StepRecord,
};
use aos_domain::ports::{ExecutedRun, QueueError, RunEventSink, RunExecutor, RunQueue};
use aos_domain::run::{
    IdempotencyKey, IfBranch, RetryDecision, RunEnd, RunId, RunStatus, Scheduler, StepOutcome,
    StepStatus, UnitFraction, next_attempt,
};
use aos_domain::workflow::definition::Node;
use aos_domain::workflow::node_types::NodeKind;
use aos_domain::workflow::{Definition, DefinitionCache};

use crate::loop_node::{DueItems, FinishedItems, LoopProgress, done_items, next_due};
use crate::observe;
use crate::step::{Attempt, AttemptResult, NodeServices, execute};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this process in leases, for operators reading the `runs` table.
    pub worker_id: String,
    /// How many runs this process executes at once.
    pub concurrency: usize,
    pub lease: Duration,
    /// How often an idle worker looks for work it was not woken for (runs queued by
    /// another node, timers coming due).
    pub poll_interval: Duration,
    pub per_workspace_limit: u32,
    /// How many runs this process executes at once in place ([`Engine::execute_now`]),
    /// besides its workers; 0 sends every run through the queue.
    pub in_place_limit: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", std::process::id()),
            concurrency: 8,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            per_workspace_limit: 4,
            in_place_limit: 64,
        }
    }
}

/// Heartbeats come three times per lease, but never in a busy loop.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// How long pure steps' results may wait for a write: the delay a live subscriber may see
/// on a run of slow `code` steps.
pub const BUFFER_FOR: Duration = Duration::from_millis(250);
/// Events held back at most, so that one write stays small.
const MAX_BUFFERED_EVENTS: usize = 256;

pub struct Engine {
    queue: Arc<dyn RunQueue>,
    services: NodeServices,
    events: Arc<dyn RunEventSink>,
    config: EngineConfig,
    wake: Notify,
    in_place: Arc<Semaphore>,
    /// Claims of runs pinned to one version validate its definition once.
    definitions: DefinitionCache,
    /// Workers driving a claimed run: when all are, a run makes way between its steps for
    /// another workspace's (see the module doc).
    busy_workers: AtomicUsize,
}

impl Engine {
    pub fn new(
        queue: Arc<dyn RunQueue>,
        services: NodeServices,
        events: Arc<dyn RunEventSink>,
        config: EngineConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            queue,
            services,
            events,
            in_place: Arc::new(Semaphore::new(config.in_place_limit)),
            definitions: DefinitionCache::default(),
            busy_workers: AtomicUsize::new(0),
            config,
            wake: Notify::new(),
        })
    }

    /// Tells an idle worker that a run was queued here, so it need not wait for its poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the workers. When `shutdown` turns true (or its sender is dropped) they stop
    /// claiming; a worker driving a run finishes and journals the step it is in, then
    /// hands the run back to the queue for any worker to resume at once.
    pub fn spawn_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
        let mut workers = JoinSet::new();
        for index in 0..self.config.concurrency.max(1) {
            let engine = Arc::clone(self);
            let shutdown = shutdown.clone();
            workers.spawn(async move { engine.work(index, shutdown).await });
        }
        workers
    }

    async fn work(&self, index: usize, mut shutdown: watch::Receiver<bool>) {
        let worker = format!("{}/{index}", self.config.worker_id);
        while !*shutdown.borrow() {
            match self.claim(&worker).await {
                Ok(Some(claimed)) => self.drive_claimed(claimed, &worker, &shutdown).await,
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        // A dropped sender can never say "go on": stop, rather than
                        // spin on a `changed()` that returns at once.
                        changed = shutdown.changed() => if changed.is_err() { return },
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "claiming a run failed");
                    tokio::select! {
                        () = tokio::time::sleep(self.config.poll_interval * 4) => {}
                        changed = shutdown.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
    }

    /// Drives a worker's claimed run, then each run it made way for, in turn.
    async fn drive_claimed(
        &self,
        claimed: ClaimedRun,
        worker: &str,
        shutdown: &watch::Receiver<bool>,
    ) {
        let _busy = BusyWorker::new(&self.busy_workers);
        let mut next = Some(claimed);
        let mut made_way_for = false;
        while let Some(claimed) = next.take() {
            let run_id = claimed.run.id;
            let span = observe::run_span(run_id, claimed.lease.workspace_id);
            let mut turn = Turn {
                worker,
                shutdown,
                requeue_at_ms: claimed.run.created_at.timestamp_millis(),
                may_make_way: !made_way_for,
                next: None,
            };
            let driven = self
                .drive_until(claimed, Some(&mut turn))
                .instrument(span)
                .await;
            if let Err(error) = &driven {
                observe::run_abandoned(error);
            }
            match driven {
                Ok(_) => {}
                Err(QueueError::Refused(refusal)) => {
                    tracing::info!(run_id = %run_id, %refusal, "stopped driving a run");
                }
                Err(QueueError::Storage(error)) => {
                    tracing::error!(run_id = %run_id, error = %error, "a run's journal write failed; its lease will expire and another worker resumes it");
                }
            }
            // Claimed before the hand-back was written: ours whether or not that write went
            // through.
            next = turn.next;
            made_way_for = true;
        }
    }

    async fn claim(&self, worker: &str) -> Result<Option<ClaimedRun>, aos_domain::DomainError> {
        self.queue
            .claim(
                worker,
                Utc::now().timestamp_millis(),
                lease_ms(self.config.lease),
                self.config.per_workspace_limit,
            )
            .await
    }

    /// Drives one claimed run until it ends, sleeps or is lost.
    pub async fn drive(&self, claimed: ClaimedRun) -> Result<(), QueueError> {
        self.drive_until(claimed, None).await.map(drop)
    }

    /// Executes a new run here and now, without queueing it first (see
    /// [`RunExecutor`]). The run goes on in a task of its own, so a caller that stops
    /// waiting does not interrupt it.
    pub async fn execute_now(
        self: &Arc<Self>,
        workspace_id: WorkspaceId,
        run: NewRun,
        definition: Arc<Definition>,
    ) -> DomainResult<ExecutedRun> {
        let Ok(permit) = Arc::clone(&self.in_place).try_acquire_owned() else {
            return Ok(ExecutedRun::Declined(Box::new(run)));
        };
        let engine = Arc::clone(self);
        let span = observe::run_span(run.id, workspace_id);
        let task = tokio::spawn(
            async move {
                let executed = engine.drive_new(workspace_id, run, &definition).await;
                drop(permit);
                executed
            }
            .instrument(span),
        );
        task.await.map_err(DomainError::internal)?
    }

    async fn drive_new(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        definition: &Definition,
    ) -> DomainResult<ExecutedRun> {
        let mut state = RunState::resume(
            definition,
            &[],
            workspace_id,
            run.id,
            run.workflow_id,
            run.input.clone(),
        )
        .map_err(DomainError::internal)?;
        let mut journal = Journaler {
            queue: self.queue.as_ref(),
            events: self.events.as_ref(),
            holder: Holder::Unborn {
                workspace_id,
                run: Box::new(run),
                worker: format!("{}/now", self.config.worker_id),
            },
            lease_ms: lease_ms(self.config.lease),
            started_at: None,
        };
        match self.run_steps(&mut journal, &mut state, None).await {
            Ok(Some(outcome)) => Ok(ExecutedRun::Ended(outcome)),
            Ok(None) => Ok(ExecutedRun::Continues),
            Err(QueueError::Storage(error)) if !journal.is_stored() => Err(error),
            Err(QueueError::Refused(refusal)) if !journal.is_stored() => {
                Err(DomainError::internal(refusal))
            }
            Err(error) => {
                observe::run_abandoned(&error);
                tracing::error!(error = %error, "a run executed in place stopped; its lease will expire and a worker resumes it");
                Ok(ExecutedRun::Continues)
            }
        }
    }

    /// Like [`Engine::drive`], and, for a worker's `turn`, hands the run back at the first
    /// step boundary after shutdown or to make way for another workspace's run. The run's
    /// outcome when it ended here.
    async fn drive_until(
        &self,
        claimed: ClaimedRun,
        turn: Option<&mut Turn<'_>>,
    ) -> Result<Option<RunOutcome>, QueueError> {
        let ClaimedRun {
            lease,
            run,
            definition,
            steps,
        } = claimed;
        let workspace_id = lease.workspace_id;
        let mut journal = Journaler {
            queue: self.queue.as_ref(),
            events: self.events.as_ref(),
            holder: Holder::Leased(lease),
            lease_ms: lease_ms(self.config.lease),
            started_at: run.started_at,
        };
        if run.cancel_requested {
            // A queued run goes straight to CANCELLED, without having started.
            journal.cancel(steps.iter()).await?;
            return Ok(None);
        }
        let definition = match self.definitions.get(
            run.workflow_id,
            run.workflow_version,
            &definition,
        ) {
            Ok(definition) => definition,
            Err(problems) => {
                let error = format!(
                    "the workflow version this run is pinned to no longer validates ({} problems)",
                    problems.len()
                );
                journal.fail(run.status, error).await?;
                return Ok(None);
            }
        };
        let resumed = RunState::resume(
            &definition,
            &steps,
            workspace_id,
            run.id,
            run.workflow_id,
            run.input,
        );
        let mut state = match resumed {
            Ok(state) => state,
            // A journal that does not replay never will: retrying it on every claim
            // would only loop.
            Err(error) => {
                journal
                    .fail(
                        run.status,
                        format!("the run's journal does not fit its workflow: {error}"),
                    )
                    .await?;
                return Ok(None);
            }
        };
        state.started = run.status != RunStatus::Queued;
        self.run_steps(&mut journal, &mut state, turn).await
    }

    /// Executes the run's steps until it ends (its outcome), sleeps, or is handed back.
    async fn run_steps(
        &self,
        journal: &mut Journaler<'_>,
        state: &mut RunState<'_>,
        mut turn: Option<&mut Turn<'_>>,
    ) -> Result<Option<RunOutcome>, QueueError> {
        let mut write = Journal::default();
        if !state.started {
            start_run(&mut write);
            state.started = true;
        }
        // The claim that gave us the run just put it first; asking again before a step
        // has run would only cost a query.
        let mut stepped = false;
        loop {
            state.journal_new_skips(&mut write);
            if let Some(outcome) = state.end(&mut write) {
                journal.write(write).await?;
                return Ok(Some(outcome));
            }
            if turn.as_ref().is_some_and(|turn| *turn.shutdown.borrow()) {
                // Hand the run back now rather than let its lease run out.
                write.run = Some(RunChange::SleepUntil {
                    until_ms: Utc::now().timestamp_millis(),
                });
                journal.write(write).await?;
                return Ok(None);
            }
            if stepped
                && let Some(turn) = turn.as_deref_mut()
                && self.make_way(journal, state, turn, &mut write).await?
            {
                return Ok(None);
            }
            if buffered_long_enough(&write) && journal.write(std::mem::take(&mut write)).await? {
                state.cancel(&mut write);
                journal.write(write).await?;
                return Ok(None);
            }
            let Some(node) = state.scheduler.start_next() else {
                // The scheduler has neither an end nor ready work: a journal that cannot
                // be replayed. Fail the run rather than spin on it.
                end_run(
                    &mut write,
                    RunStatus::Failed,
                    None,
                    Some("the run's journal is inconsistent with its workflow".into()),
                );
                journal.write(write).await?;
                return Ok(None);
            };
            let span = observe::step_span(node);
            let step = self
                .step(journal, state, node, &mut write)
                .instrument(span)
                .await?;
            if step == AfterStep::Stop {
                return Ok(None);
            }
            stepped = true;
        }
    }

    /// At a step boundary: when every worker is busy and another workspace's due run would
    /// come first, claims that run into `turn.next` and hands this one back with `write`
    /// (see the module doc). Whether it did; a failed look-up or claim only means the run
    /// goes on here.
    async fn make_way(
        &self,
        journal: &mut Journaler<'_>,
        state: &RunState<'_>,
        turn: &mut Turn<'_>,
        write: &mut Journal,
    ) -> Result<bool, QueueError> {
        if !turn.may_make_way
            || self.busy_workers.load(Ordering::Relaxed) < self.config.concurrency.max(1)
        {
            return Ok(false);
        }
        let waiting = self
            .queue
            .another_workspace_waiting(
                state.workspace_id,
                Utc::now().timestamp_millis(),
                self.config.per_workspace_limit,
            )
            .await;
        match waiting {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(error) => {
                tracing::warn!(error = %error, "looking for another workspace's due run failed");
                return Ok(false);
            }
        }
        // Claimed while this run still holds its slot, so its workspace cannot win it back.
        let next = match self.claim(turn.worker).await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(false),
            Err(error) => {
                tracing::warn!(error = %error, "claiming the run to make way for failed");
                return Ok(false);
            }
        };
        tracing::debug!(
            next_run_id = %next.run.id,
            next_workspace_id = %next.lease.workspace_id,
            "making way for another workspace's run"
        );
        turn.next = Some(next);
        write.run = Some(RunChange::SleepUntil {
            until_ms: turn.requeue_at_ms,
        });
        // A cancel requested meanwhile is the next claimer's to carry out.
        journal.write(std::mem::take(write)).await?;
        Ok(true)
    }

    /// Executes one attempt of `node` and adds what became of it to `write`, writing it
    /// when the step had a side effect or made the run wait.
    async fn step(
        &self,
        journal: &mut Journaler<'_>,
        state: &mut RunState<'_>,
        node: &Node,
        write: &mut Journal,
    ) -> Result<AfterStep, QueueError> {
        let previous = state
            .records
            .get(node.id().as_str())
            .map(|step| (step.status, step.attempt, step.started_at));
        let (attempt, resumed) = match previous {
            Some((StepStatus::Retrying, failed, _)) => (failed + 1, false),
            // Journaled before a side effect or a wait by a worker that did not see it
            // through: the same attempt once more, with the same idempotency key.
            Some((StepStatus::Running, attempt, _)) => (attempt.max(1), true),
            _ => (1, false),
        };
        if resumed && has_side_effects(node) {
            // The receiving end sees this request twice; this line is how an operator
            // learns why.
            observe::step_repeated(node);
            tracing::warn!(
                attempt,
                "repeating an attempt its worker did not see through, with the same idempotency key"
            );
        }
        // A step's start is its first attempt's: a delay counts from it across restarts.
        let started_at = previous
            .and_then(|(_, _, started_at)| started_at)
            .unwrap_or_else(Utc::now);
        let side_effect = has_side_effects(node);
        if !resumed {
            state.started_event(write, node, attempt);
            if side_effect {
                // Durable before the side effect, so a crash during it is resumed as a
                // repeat of this attempt (same idempotency key), never as a fresh one.
                state.step_running(write, node, attempt, started_at);
                if journal.write(std::mem::take(write)).await? {
                    state.cancel(write);
                    journal.write(std::mem::take(write)).await?;
                    return Ok(AfterStep::Stop);
                }
            }
        }
        let result = self
            .attempt_with_heartbeat(journal, state, node, attempt, started_at)
            .await?;
        let finished_at = Utc::now();
        if let AttemptResult::Finished(StepOutcome::Failed(error)) = &result
            && let Some(delay) = retry_delay(node, attempt)
        {
            observe::step_retrying(node);
            state.step_retrying(write, node, attempt, started_at, error, delay);
            write.run = Some(RunChange::SleepUntil {
                until_ms: (finished_at + chrono_duration(delay)).timestamp_millis(),
            });
            journal.write(std::mem::take(write)).await?;
            return Ok(AfterStep::Stop);
        }
        match result {
            AttemptResult::WaitUntil(wake_at) => {
                state.step_running(write, node, attempt, started_at);
                write.run = Some(RunChange::SleepUntil {
                    until_ms: wake_at.timestamp_millis(),
                });
                journal.write(std::mem::take(write)).await?;
                Ok(AfterStep::Stop)
            }
            AttemptResult::Finished(outcome) => {
                state.step_finished(write, node, attempt, started_at, finished_at, outcome)?;
                // A side effect's result is durable before anything else happens; the
                // run's end (the next write anyway) is the one exception.
                if side_effect && state.scheduler.end().is_none() {
                    state.journal_new_skips(write);
                    if journal.write(std::mem::take(write)).await? {
                        state.cancel(write);
                        journal.write(std::mem::take(write)).await?;
                        return Ok(AfterStep::Stop);
                    }
                }
                Ok(AfterStep::Next)
            }
        }
    }

    /// Runs one attempt while keeping the lease alive; a lost lease abandons the attempt.
    /// A loop with side effects has its finished iterations journaled as it goes.
    async fn attempt_with_heartbeat(
        &self,
        journal: &mut Journaler<'_>,
        state: &RunState<'_>,
        node: &Node,
        attempt_number: u32,
        started_at: DateTime<Utc>,
    ) -> Result<AttemptResult, QueueError> {
        let scope = state.scope();
        let input = state.input_of(node);
        let inputs = state.taken_inputs_of(node);
        let key = IdempotencyKey::for_step(state.run_id, node.id());
        let journals_items = matches!(node.kind(), NodeKind::Loop(_)) && has_side_effects(node);
        let journaled_items = if journals_items {
            state.done_items(node)
        } else {
            BTreeMap::new()
        };
        let (mut finished_items, report) = if journals_items {
            let (items, report) = FinishedItems::new(journaled_items.clone());
            (Some(items), Some(report))
        } else {
            (None, None)
        };
        let attempt = Attempt {
            workspace_id: state.workspace_id,
            scope: &scope,
            input: &input,
            inputs: &inputs,
            idempotency_key: &key,
            started_at,
            now: Utc::now(),
            loop_progress: LoopProgress {
                done: Some(&journaled_items),
                report: report.as_ref(),
            },
        };
        let work = execute(node, attempt, &self.services);
        tokio::pin!(work);
        let beat = (self.config.lease / 3).max(MIN_HEARTBEAT);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A heartbeat is an empty journal write, and journaling iterations extends the
            // lease as well: either tells us the lease is gone (and then the attempt is
            // dropped). A storage error says neither, so the attempt goes on; journaling
            // its result finds out whether the lease held.
            let written = tokio::select! {
                result = &mut work => return Ok(result),
                due = next_due(&mut finished_items) => {
                    journal.write(state.loop_progress(node, attempt_number, started_at, due)).await
                }
                _ = heartbeat.tick() => journal.heartbeat().await,
            };
            match written {
                Ok(_) => {}
                Err(QueueError::Refused(refusal)) => return Err(refusal.into()),
                Err(QueueError::Storage(error)) => {
                    tracing::warn!(error = %error, "a heartbeat or a loop's progress write failed");
                }
            }
        }
    }
}

/// A worker's hold on its claimed run, between two steps.
struct Turn<'w> {
    /// Names the worker in the lease of a run it makes way for.
    worker: &'w str,
    /// Turns true when the process stops: the run is handed back at the next boundary.
    shutdown: &'w watch::Receiver<bool>,
    /// Where the run goes back in its workspace's queue when it makes way: its creation.
    requeue_at_ms: i64,
    /// False for a run claimed to make way for it: it keeps the slot until it ends or
    /// waits, so that two workspaces sharing one slot do not trade it at every step.
    may_make_way: bool,
    /// The run claimed to make way for, which the worker drives next.
    next: Option<ClaimedRun>,
}

/// Counts a worker as busy for as long as it lives.
struct BusyWorker<'e>(&'e AtomicUsize);

impl<'e> BusyWorker<'e> {
    fn new(busy: &'e AtomicUsize) -> Self {
        busy.fetch_add(1, Ordering::Relaxed);
        Self(busy)
    }
}

impl Drop for BusyWorker<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the run loop does once a step is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStep {
    /// Schedule the next step (or end the run).
    Next,
    /// The run sleeps or was cancelled, and this worker no longer holds it.
    Stop,
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn has_side_effects(node: &Node) -> bool {
    match node.kind() {
        NodeKind::Loop(config) => config
            .steps
            .iter()
            .any(|step| step.kind.node_type().has_side_effects()),
        kind => kind.node_type().has_side_effects(),
    }
}

/// The pause before the next attempt, when the node's retry policy allows one after
/// attempt number `failed_attempt`.
fn retry_delay(node: &Node, failed_attempt: u32) -> Option<Duration> {
    let random = UnitFraction::new(rand::random::<f64>()).unwrap_or(UnitFraction::ZERO);
    match next_attempt(node.retry(), failed_attempt, random) {
        RetryDecision::Retry { delay, .. } => Some(delay),
        RetryDecision::GiveUp => None,
    }
}

/// Writes journals under the run's lease and publishes what they appended.
struct Journaler<'a> {
    queue: &'a dyn RunQueue,
    events: &'a dyn RunEventSink,
    holder: Holder,
    lease_ms: i64,
    /// When the run started, for its duration (`None` until its start is written).
    started_at: Option<DateTime<Utc>>,
}

enum Holder {
    Leased(Lease),
    /// A run executed in place and not stored yet: its first write stores it.
    Unborn {
        workspace_id: WorkspaceId,
        run: Box<NewRun>,
        worker: String,
    },
    /// Its first write failed: nothing more may be written.
    Stillborn,
}

impl Journaler<'_> {
    /// Writes `journal`; answers whether a cancel was requested.
    async fn write(&mut self, journal: Journal) -> Result<bool, QueueError> {
        let observed = observe::RunWrite::of(&journal, self.started_at);
        let now_ms = Utc::now().timestamp_millis();
        let renewal = match std::mem::replace(&mut self.holder, Holder::Stillborn) {
            Holder::Leased(lease) => {
                let renewal = self
                    .queue
                    .journal(&lease, journal, now_ms, self.lease_ms)
                    .await;
                self.holder = Holder::Leased(lease);
                renewal?
            }
            Holder::Unborn {
                workspace_id,
                run,
                worker,
            } => {
                let (lease, renewal) = self
                    .queue
                    .insert_claimed(workspace_id, *run, &worker, journal, now_ms, self.lease_ms)
                    .await?;
                self.holder = Holder::Leased(lease);
                renewal
            }
            Holder::Stillborn => {
                return Err(QueueError::Refused(JournalRefusal::RunGone));
            }
        };
        self.started_at = observed.committed();
        if !renewal.events.is_empty() {
            self.events.publish(&renewal.events);
        }
        Ok(renewal.cancel_requested)
    }

    /// Extends the lease, if the run is stored yet (until it is, nobody else knows it).
    async fn heartbeat(&mut self) -> Result<bool, QueueError> {
        match self.holder {
            Holder::Leased(_) => self.write(Journal::default()).await,
            Holder::Unborn { .. } | Holder::Stillborn => Ok(false),
        }
    }

    /// Whether the run is in storage (for a run executed in place: its first write went
    /// through).
    fn is_stored(&self) -> bool {
        matches!(self.holder, Holder::Leased(_))
    }

    /// Ends the run as cancelled, failing the steps it interrupted.
    async fn cancel<'s>(
        &mut self,
        steps: impl Iterator<Item = &'s StepRecord> + Clone,
    ) -> Result<(), QueueError> {
        let mut write = Journal::default();
        cancel_run(&mut write, steps);
        self.write(write).await.map(drop)
    }

    /// Ends the run as failed before any step could run.
    async fn fail(&mut self, status: RunStatus, error: String) -> Result<(), QueueError> {
        let mut write = Journal::default();
        if status == RunStatus::Queued {
            start_run(&mut write);
        }
        end_run(&mut write, RunStatus::Failed, None, Some(error));
        self.write(write).await.map(drop)
    }
}

/// Whether pure steps' results have waited long enough for a write of their own.
fn buffered_long_enough(write: &Journal) -> bool {
    write.events.len() >= MAX_BUFFERED_EVENTS
        || write.events.first().is_some_and(|oldest| {
            Utc::now()
                .signed_duration_since(oldest.at)
                .to_std()
                .is_ok_and(|waited| waited >= BUFFER_FOR)
        })
}

fn event(
    kind: RunEventKind,
    node: Option<&Node>,
    message: String,
    data: Option<Value>,
) -> NewRunEvent {
    NewRunEvent {
        kind,
        node_id: node.map(|node| node.id().to_string()),
        message,
        data,
        at: Utc::now(),
    }
}

/// QUEUED → RUNNING, with the run's first write.
fn start_run(write: &mut Journal) {
    let now = Utc::now();
    write.starts = Some(now);
    write.events.insert(
        0,
        NewRunEvent {
            at: now,
            ..event(RunEventKind::RunStarted, None, "run started".into(), None)
        },
    );
}

fn end_run(write: &mut Journal, status: RunStatus, output: Option<Value>, error: Option<String>) {
    let (kind, message) = match status {
        RunStatus::Succeeded => (RunEventKind::RunSucceeded, "run succeeded".to_owned()),
        RunStatus::Cancelled => (RunEventKind::RunCancelled, "run cancelled".to_owned()),
        _ => (
            RunEventKind::RunFailed,
            format!(
                "run failed: {}",
                error.as_deref().unwrap_or("unknown error")
            ),
        ),
    };
    write.events.push(event(kind, None, message, None));
    write.run = Some(RunChange::Finished {
        status,
        output,
        error,
        at: Utc::now(),
    });
}

/// Ends the run as cancelled; a step caught mid-attempt or between attempts fails, with
/// its `STEP_FAILED` event, after the steps that finished before it.
fn cancel_run<'s>(write: &mut Journal, steps: impl Iterator<Item = &'s StepRecord> + Clone) {
    let now = Utc::now();
    let mut finish_order = last_finish_order(steps.clone());
    for step in
        steps.filter(|step| matches!(step.status, StepStatus::Running | StepStatus::Retrying))
    {
        finish_order += 1;
        let error = "the run was cancelled";
        write.events.push(NewRunEvent {
            kind: RunEventKind::StepFailed,
            node_id: Some(step.node_id.clone()),
            message: format!("{} failed: {error}", step.node_id),
            data: Some(json!({"attempt": step.attempt, "error": error})),
            at: now,
        });
        write.steps.push(StepRecord {
            status: StepStatus::Failed,
            output: None,
            error: Some(error.into()),
            finish_order: Some(finish_order),
            finished_at: Some(now),
            ..step.clone()
        });
    }
    end_run(write, RunStatus::Cancelled, None, Some("cancelled".into()));
}

/// The highest finish position taken; a reused journal (`retryRun`) may have gaps, so
/// counting the finished steps could hand out a position twice.
fn last_finish_order<'s>(steps: impl Iterator<Item = &'s StepRecord>) -> u32 {
    steps
        .filter_map(|step| step.finish_order)
        .max()
        .unwrap_or(0)
}

/// One run's progress while a worker drives it: the scheduler replayed from the journal
/// and the step records as last written.
struct RunState<'d> {
    /// The claimed run's workspace, whose connections alone its steps may open.
    workspace_id: WorkspaceId,
    run_id: RunId,
    workflow_id: WorkflowId,
    definition: &'d Definition,
    scheduler: Scheduler<'d>,
    /// By node id, so that whatever walks them does so in one order.
    records: BTreeMap<String, StepRecord>,
    trigger_input: Value,
    last_finish_order: u32,
    /// Whether the run's start is journaled (or is in the write being built).
    started: bool,
}

impl<'d> RunState<'d> {
    fn resume(
        definition: &'d Definition,
        steps: &[StepRecord],
        workspace_id: WorkspaceId,
        run_id: RunId,
        workflow_id: WorkflowId,
        trigger_input: Value,
    ) -> Result<Self, aos_domain::run::RunError> {
        let mut finished: Vec<&StepRecord> = steps
            .iter()
            .filter(|step| matches!(step.status, StepStatus::Succeeded | StepStatus::Failed))
            .collect();
        finished.sort_by_key(|step| step.finish_order.unwrap_or(u32::MAX));
        let outcomes = finished
            .iter()
            .map(|step| (step.node_id.as_str(), outcome_of(step)));
        let scheduler = Scheduler::resume(definition, outcomes)?;
        Ok(Self {
            workspace_id,
            run_id,
            workflow_id,
            definition,
            scheduler,
            records: steps
                .iter()
                .map(|step| (step.node_id.clone(), step.clone()))
                .collect(),
            trigger_input,
            last_finish_order: last_finish_order(steps.iter()),
            started: false,
        })
    }

    /// The expression scope: `trigger`, `steps` (finished outputs), `vars`, `run`.
    fn scope(&self) -> Value {
        let trigger_id = self.definition.trigger().id().as_str();
        let trigger = self
            .scheduler
            .output_of(trigger_id)
            .cloned()
            .unwrap_or_else(|| self.trigger_input.clone());
        let steps: Map<String, Value> = self
            .scheduler
            .outputs()
            .map(|(id, output)| (id.to_string(), output.clone()))
            .collect();
        json!({
            "trigger": trigger,
            "steps": steps,
            "vars": {},
            "run": {"id": self.run_id.to_string(), "workflowId": self.workflow_id.to_string()},
        })
    }

    /// The output of the first finished node this one follows; `null` for the trigger.
    fn input_of(&self, node: &Node) -> Value {
        self.definition
            .incoming(node.id().as_str())
            .find_map(|edge| self.scheduler.output_of(edge.from().as_str()))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The predecessors whose edge into `node` was taken, with their outputs, in edge
    /// order, each once (two edges from one node are never both taken, but say so here
    /// rather than rely on it).
    fn taken_inputs_of(&self, node: &Node) -> Vec<(&'d str, &Value)> {
        let mut inputs: Vec<(&'d str, &Value)> = Vec::new();
        for edge in self.definition.incoming(node.id().as_str()) {
            let from = edge.from().as_str();
            if !self.scheduler.is_taken(edge) || inputs.iter().any(|(id, _)| *id == from) {
                continue;
            }
            if let Some(output) = self.scheduler.output_of(from) {
                inputs.push((from, output));
            }
        }
        inputs
    }

    /// The iterations a loop journaled while RUNNING (empty unless it was interrupted).
    fn done_items(&self, node: &Node) -> BTreeMap<usize, Value> {
        match self.records.get(node.id().as_str()) {
            Some(record) if record.status == StepStatus::Running => {
                done_items(record.output.as_ref())
            }
            _ => BTreeMap::new(),
        }
    }

    /// A write of a loop's finished iterations: its step, still RUNNING, with them as its
    /// output so far, and a `STEP_LOG` naming the new ones.
    fn loop_progress(
        &self,
        node: &Node,
        attempt: u32,
        started_at: DateTime<Utc>,
        due: DueItems,
    ) -> Journal {
        let listed: Vec<String> = due.new.iter().map(usize::to_string).collect();
        let record = StepRecord {
            node_id: node.id().to_string(),
            status: StepStatus::Running,
            attempt,
            input: Some(self.input_of(node)),
            output: Some(due.output),
            error: None,
            branch: None,
            finish_order: None,
            started_at: Some(started_at),
            finished_at: None,
        };
        Journal {
            steps: vec![record],
            events: vec![event(
                RunEventKind::StepLog,
                Some(node),
                format!(
                    "{}: {} {} done ({} so far)",
                    node.id(),
                    if due.new.len() == 1 { "item" } else { "items" },
                    listed.join(", "),
                    due.done
                ),
                Some(json!({"attempt": attempt, "doneItems": due.new, "done": due.done})),
            )],
            ..Journal::default()
        }
    }

    fn started_event(&self, write: &mut Journal, node: &Node, attempt: u32) {
        write.events.push(event(
            RunEventKind::StepStarted,
            Some(node),
            format!("{} started", node.id()),
            Some(json!({"attempt": attempt})),
        ));
    }

    fn step_running(
        &mut self,
        write: &mut Journal,
        node: &Node,
        attempt: u32,
        started_at: DateTime<Utc>,
    ) {
        let record = StepRecord {
            node_id: node.id().to_string(),
            status: StepStatus::Running,
            attempt,
            input: Some(self.input_of(node)),
            output: None,
            error: None,
            branch: None,
            finish_order: None,
            started_at: Some(started_at),
            finished_at: None,
        };
        self.records.insert(record.node_id.clone(), record.clone());
        write.steps.push(record);
    }

    fn step_retrying(
        &mut self,
        write: &mut Journal,
        node: &Node,
        attempt: u32,
        started_at: DateTime<Utc>,
        error: &str,
        delay: Duration,
    ) {
        let record = StepRecord {
            node_id: node.id().to_string(),
            status: StepStatus::Retrying,
            attempt,
            input: Some(self.input_of(node)),
            output: None,
            error: Some(error.to_owned()),
            branch: None,
            finish_order: None,
            started_at: Some(started_at),
            finished_at: None,
        };
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        write.events.push(event(
            RunEventKind::StepRetrying,
            Some(node),
            format!("{} failed attempt {attempt}: {error}", node.id()),
            Some(json!({
                "attempt": attempt,
                "nextAttempt": attempt + 1,
                "delayMs": delay_ms,
                "error": error,
            })),
        ));
        self.records.insert(record.node_id.clone(), record.clone());
        write.steps.push(record);
    }

    fn step_finished(
        &mut self,
        write: &mut Journal,
        node: &Node,
        attempt: u32,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        outcome: StepOutcome,
    ) -> Result<(), QueueError> {
        let (status, output, error, branch) = match &outcome {
            StepOutcome::Succeeded(output) => {
                (StepStatus::Succeeded, Some(output.clone()), None, None)
            }
            StepOutcome::Branched { output, branch } => (
                StepStatus::Succeeded,
                Some(output.clone()),
                None,
                Some(branch.as_str().to_owned()),
            ),
            StepOutcome::Failed(error) => (StepStatus::Failed, None, Some(error.clone()), None),
        };
        let (kind, message) = match &error {
            None => (
                RunEventKind::StepSucceeded,
                format!("{} succeeded", node.id()),
            ),
            Some(error) => (
                RunEventKind::StepFailed,
                format!("{} failed: {error}", node.id()),
            ),
        };
        write.events.push(event(
            kind,
            Some(node),
            message,
            Some(json!({"attempt": attempt, "output": output, "branch": branch, "error": error})),
        ));
        self.last_finish_order += 1;
        let record = StepRecord {
            node_id: node.id().to_string(),
            status,
            attempt,
            input: Some(self.input_of(node)),
            output,
            error,
            branch,
            finish_order: Some(self.last_finish_order),
            started_at: Some(started_at),
            finished_at: Some(finished_at),
        };
        self.records.insert(record.node_id.clone(), record.clone());
        write.steps.push(record);
        self.scheduler
            .record(node.id().as_str(), outcome)
            .map_err(|error| QueueError::Storage(error.into()))?;
        Ok(())
    }

    /// Journals the skips the scheduler has decided that are not written yet (on
    /// resume, those a previous worker wrote are not written again).
    fn journal_new_skips(&mut self, write: &mut Journal) {
        let new: Vec<&Node> = self
            .scheduler
            .skipped()
            .filter(|node| {
                self.records
                    .get(node.id().as_str())
                    .is_none_or(|record| record.status != StepStatus::Skipped)
            })
            .collect();
        for node in new {
            let record = StepRecord {
                node_id: node.id().to_string(),
                status: StepStatus::Skipped,
                attempt: 0,
                input: None,
                output: None,
                error: None,
                branch: None,
                finish_order: None,
                started_at: None,
                finished_at: None,
            };
            write.events.push(event(
                RunEventKind::StepSkipped,
                Some(node),
                format!("{} skipped: no branch leading to it was taken", node.id()),
                None,
            ));
            self.records.insert(record.node_id.clone(), record.clone());
            write.steps.push(record);
        }
    }

    /// Adds the run's end to `write` when the scheduler says it has ended.
    fn end(&self, write: &mut Journal) -> Option<RunOutcome> {
        let (status, output, error) = match self.scheduler.end()? {
            RunEnd::Succeeded { output } => (RunStatus::Succeeded, Some(output.clone()), None),
            RunEnd::Failed { node, error } => {
                (RunStatus::Failed, None, Some(format!("{node}: {error}")))
            }
        };
        end_run(write, status, output.clone(), error.clone());
        Some(RunOutcome {
            status,
            output,
            error,
            steps: self.records.values().cloned().collect(),
        })
    }

    /// Ends the run as cancelled; a step caught mid-attempt is marked failed.
    fn cancel(&self, write: &mut Journal) {
        cancel_run(write, self.records.values());
    }
}

fn outcome_of(step: &StepRecord) -> StepOutcome {
    match (step.status, &step.branch) {
        (StepStatus::Failed, _) => {
            StepOutcome::Failed(step.error.clone().unwrap_or_else(|| "failed".into()))
        }
        (_, Some(branch)) => match IfBranch::parse(branch) {
            Some(branch) => StepOutcome::Branched {
                output: step.output.clone().unwrap_or(Value::Null),
                branch,
            },
            None => StepOutcome::Failed(format!("unknown branch {branch}")),
        },
        _ => StepOutcome::Succeeded(step.output.clone().unwrap_or(Value::Null)),
    }
}

/// The engine as the API sees it: a webhook's run executed in place.
pub struct InPlaceExecutor(pub Arc<Engine>);

#[async_trait::async_trait]
impl RunExecutor for InPlaceExecutor {
    async fn execute_now(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        definition: Arc<Definition>,
    ) -> DomainResult<ExecutedRun> {
        self.0.execute_now(workspace_id, run, definition).await
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;

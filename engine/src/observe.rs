//! What the engine tells operators: the spans of runs and steps, lifecycle log lines (at
//! DEBUG), and its Prometheus metrics. The worker calls these small functions; nothing
//! here decides anything about a run.
//!
//! Policy:
//! - Spans carry `run_id`, `workspace_id`, `node_id` and `node_type`, so every line logged
//!   while a run executes says whose run and which step it is.
//! - Metric labels are bounded: a node type, a run status, a step outcome, a reason. Never
//!   a run, node, workflow or workspace id: one time series per run would grow without
//!   end (ids belong in logs and spans, where an operator follows one run).
//! - A run's start and end are counted when the write that records them commits, by the
//!   worker that made it: a write refused because the lease was lost counts nothing, so
//!   the run that another worker resumes is not counted twice.
//! - A step attempt is counted when it returns, and as `abandoned` when the worker drops
//!   it (its lease was lost mid-attempt).
//! - Nothing logged or labelled here carries a step's input, output or error: those may
//!   hold what a workflow's author considers secret.
//!
//! The queue's gauges are sampled from storage (by the `serve` process, see
//! [`queue_depth`]), because the queue is shared by every worker of a cluster and a crashed
//! worker cannot report the lease it lost.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Span;

use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{Journal, JournalRefusal, RunChange};
use aos_domain::ports::QueueError;
use aos_domain::queue_gauge::QueueDepth;
use aos_domain::run::{RunId, RunStatus, StepOutcome};
use aos_domain::workflow::definition::Node;

use crate::step::AttemptResult;

pub const RUNS_STARTED: &str = "aos_runs_started_total";
pub const RUNS_FINISHED: &str = "aos_runs_finished_total";
pub const RUN_DURATION: &str = "aos_run_duration_seconds";
pub const RUNS_ABANDONED: &str = "aos_runs_abandoned_total";
pub const STEP_ATTEMPTS: &str = "aos_step_attempts_total";
pub const STEP_DURATION: &str = "aos_step_duration_seconds";
pub const STEP_RETRIES: &str = "aos_step_retries_total";
pub const STEP_REPEATS: &str = "aos_step_repeats_total";
pub const QUEUE_RUNS: &str = "aos_queue_runs";
pub const QUEUE_EXPIRED_LEASES: &str = "aos_queue_runs_lease_expired";
pub const QUEUE_OLDEST_DUE_AGE: &str = "aos_queue_oldest_due_age_seconds";
pub const QUEUE_SAMPLE_ERRORS: &str = "aos_queue_sample_errors_total";

/// Bucket bounds (seconds) for [`STEP_DURATION`]: from a pure step's sub-millisecond to
/// an HTTP call's or a `code` node's seconds and a `loop`'s minutes.
pub const STEP_DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Bucket bounds (seconds) for [`RUN_DURATION`]: runs of pure steps end in milliseconds,
/// runs with delays and retry backoffs in hours or days (a `delay` waits up to 30 days).
pub const RUN_DURATION_BUCKETS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3_600.0, 21_600.0, 86_400.0, 604_800.0,
];

/// Registers the help text of the engine's metrics with the installed recorder, so that
/// `/metrics` explains them. Call once, after installing the recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        RUNS_STARTED,
        "Runs started (QUEUED to RUNNING) by this process's workers."
    );
    describe_counter!(
        RUNS_FINISHED,
        "Runs ended by this process's workers, by status."
    );
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "From a run's start to its end, by status."
    );
    describe_counter!(
        RUNS_ABANDONED,
        "Runs a worker stopped driving because a journal write was refused or failed, by reason."
    );
    describe_counter!(
        STEP_ATTEMPTS,
        "Step attempts that returned (or were dropped), by node type and outcome."
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "How long one step attempt took, by node type."
    );
    describe_counter!(
        STEP_RETRIES,
        "Failed step attempts that will be retried after a backoff, by node type."
    );
    describe_counter!(
        STEP_REPEATS,
        "Side-effecting attempts executed again because the worker running them lost its lease, by node type."
    );
    describe_gauge!(
        QUEUE_RUNS,
        "Runs that have not ended, by queue state (due, leased, delayed), across the cluster."
    );
    describe_gauge!(
        QUEUE_EXPIRED_LEASES,
        "Due runs whose worker's lease ran out before it let go of them."
    );
    describe_gauge!(
        QUEUE_OLDEST_DUE_AGE,
        Unit::Seconds,
        "How long the longest-waiting due run has been claimable."
    );
    describe_counter!(QUEUE_SAMPLE_ERRORS, "Failed reads of the queue's gauges.");
}

/// The span of one run, for everything its worker does with it.
pub fn run_span(run_id: RunId, workspace_id: WorkspaceId) -> Span {
    tracing::info_span!("run", run_id = %run_id, workspace_id = %workspace_id)
}

/// The span of one step of a run (inside the run's span).
pub fn step_span(node: &Node) -> Span {
    tracing::info_span!(
        "step",
        node_id = %node.id(),
        node_type = node_type(node),
    )
}

fn node_type(node: &Node) -> &'static str {
    node.node_type().as_str()
}

fn status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

/// What one journal write does to its run's lifecycle, counted once the write commits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "count the write with `committed` once it went through"]
pub struct RunWrite {
    starts: bool,
    finished: Option<(RunStatus, DateTime<Utc>)>,
    /// When the run started, if this write or an earlier one says.
    started_at: Option<DateTime<Utc>>,
}

impl RunWrite {
    /// Before writing `journal`: `started_at` is the run's start as its worker knows it
    /// (the claimed run's `started_at`; `None` for a run not started yet).
    pub fn of(journal: &Journal, started_at: Option<DateTime<Utc>>) -> Self {
        let finished = match &journal.run {
            Some(RunChange::Finished { status, at, .. }) => Some((*status, *at)),
            Some(RunChange::SleepUntil { .. }) | None => None,
        };
        Self {
            starts: journal.starts.is_some(),
            finished,
            started_at: journal.starts.or(started_at),
        }
    }

    /// Counts the write, which went through; answers the run's start, for the next write.
    pub fn committed(self) -> Option<DateTime<Utc>> {
        if self.starts {
            metrics::counter!(RUNS_STARTED).increment(1);
            tracing::debug!("run started");
        }
        if let Some((status, at)) = self.finished {
            let status = status_label(status);
            metrics::counter!(RUNS_FINISHED, "status" => status).increment(1);
            // A run cancelled while queued never started: it has no duration.
            let took = self
                .started_at
                .and_then(|started_at| (at - started_at).to_std().ok());
            if let Some(took) = took {
                metrics::histogram!(RUN_DURATION, "status" => status).record(took.as_secs_f64());
            }
            tracing::debug!(status, duration_ms = took.map(millis), "run finished");
        }
        self.started_at
    }
}

/// Whole milliseconds as a number in the JSON logs (`u128` would be written as a string).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A worker stopped driving a run: its journal write was refused (the lease was lost, or
/// the run was deleted) or failed (its lease will expire and a worker resumes it).
pub fn run_abandoned(error: &QueueError) {
    let reason = match error {
        QueueError::Refused(JournalRefusal::LeaseLost) => "lease_lost",
        QueueError::Refused(JournalRefusal::RunGone) => "run_gone",
        QueueError::Storage(_) => "storage_error",
    };
    metrics::counter!(RUNS_ABANDONED, "reason" => reason).increment(1);
}

/// A failed attempt of `node` will be retried after a backoff.
pub fn step_retrying(node: &Node) {
    metrics::counter!(STEP_RETRIES, "node_type" => node_type(node)).increment(1);
}

/// A side-effecting attempt of `node` found RUNNING on resume is executed again: the
/// worker that started it lost its lease before journaling its result.
pub fn step_repeated(node: &Node) {
    metrics::counter!(STEP_REPEATS, "node_type" => node_type(node)).increment(1);
}

/// One attempt of one step, timed from its start; counted as `abandoned` if dropped
/// before [`StepAttempt::returned`].
#[must_use = "an attempt dropped unfinished is counted as abandoned"]
pub struct StepAttempt {
    node_type: &'static str,
    started: Instant,
    returned: bool,
}

impl StepAttempt {
    pub fn start(node: &Node) -> Self {
        Self {
            node_type: node_type(node),
            started: Instant::now(),
            returned: false,
        }
    }

    /// The attempt returned `result`.
    pub fn returned(mut self, result: &AttemptResult) {
        self.returned = true;
        let outcome = match result {
            AttemptResult::Finished(StepOutcome::Succeeded(_) | StepOutcome::Branched { .. }) => {
                "succeeded"
            }
            AttemptResult::Finished(StepOutcome::Failed(_)) => "failed",
            AttemptResult::WaitUntil(_) => "waiting",
        };
        let took = self.started.elapsed();
        metrics::counter!(STEP_ATTEMPTS, "node_type" => self.node_type, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(STEP_DURATION, "node_type" => self.node_type)
            .record(took.as_secs_f64());
        tracing::debug!(outcome, duration_ms = millis(took), "step attempt returned");
    }
}

impl Drop for StepAttempt {
    fn drop(&mut self) {
        if !self.returned {
            metrics::counter!(STEP_ATTEMPTS, "node_type" => self.node_type, "outcome" => "abandoned")
                .increment(1);
        }
    }
}

/// Publishes a sample of the queue taken at `now_ms`. The same in every process that
/// samples it (the queue is the cluster's): aggregate with `max`, not `sum`.
pub fn queue_depth(depth: &QueueDepth, now_ms: i64) {
    // Run counts are far below 2^53, so exact as f64.
    let runs = |count: u64| count as f64;
    metrics::gauge!(QUEUE_RUNS, "state" => "due").set(runs(depth.due));
    metrics::gauge!(QUEUE_RUNS, "state" => "leased").set(runs(depth.leased));
    metrics::gauge!(QUEUE_RUNS, "state" => "delayed").set(runs(depth.delayed));
    metrics::gauge!(QUEUE_EXPIRED_LEASES).set(runs(depth.expired));
    metrics::gauge!(QUEUE_OLDEST_DUE_AGE).set(depth.oldest_due_age_secs(now_ms));
}

/// Reading the queue's gauges failed; they keep their last values until a read works.
pub fn queue_sample_failed() {
    metrics::counter!(QUEUE_SAMPLE_ERRORS).increment(1);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use chrono::TimeZone;
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };
    use serde_json::json;

    use super::*;

    /// Every value recorded, by metric and labels (`name{label=value,...}`).
    #[derive(Default)]
    struct Recorded(Mutex<BTreeMap<String, Vec<f64>>>);

    impl Recorded {
        fn push(&self, key: &str, value: f64) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.to_owned())
                .or_default()
                .push(value);
        }

        fn values(&self) -> BTreeMap<String, Vec<f64>> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    struct Handle {
        key: String,
        recorded: Arc<Recorded>,
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.recorded.push(&self.key, value as f64);
        }

        fn absolute(&self, value: u64) {
            self.recorded.push(&self.key, value as f64);
        }
    }

    impl GaugeFn for Handle {
        fn increment(&self, value: f64) {
            self.recorded.push(&self.key, value);
        }

        fn decrement(&self, value: f64) {
            self.recorded.push(&self.key, -value);
        }

        fn set(&self, value: f64) {
            self.recorded.push(&self.key, value);
        }
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.recorded.push(&self.key, value);
        }
    }

    #[derive(Default)]
    struct TestRecorder(Arc<Recorded>);

    impl TestRecorder {
        fn handle(&self, key: &Key) -> Arc<Handle> {
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            Arc::new(Handle {
                key,
                recorded: Arc::clone(&self.0),
            })
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.handle(key))
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.handle(key))
        }
    }

    /// What `f` records, by metric.
    fn recorded(f: impl FnOnce()) -> BTreeMap<String, Vec<f64>> {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, f);
        recorder.0.values()
    }

    fn expected(entries: &[(&str, &[f64])]) -> BTreeMap<String, Vec<f64>> {
        entries
            .iter()
            .map(|(key, values)| ((*key).to_owned(), values.to_vec()))
            .collect()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000 + secs, 0)
            .single()
            .expect("a representable instant")
    }

    fn finished(status: RunStatus, secs: i64) -> Journal {
        Journal {
            run: Some(RunChange::Finished {
                status,
                output: None,
                error: None,
                at: at(secs),
            }),
            ..Journal::default()
        }
    }

    /// A workflow whose trigger leads to an `http.request` (`call`) and a `set` (`greet`).
    fn workflow() -> aos_domain::workflow::Definition {
        aos_domain::workflow::validate_definition(&json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "call", "type": "http.request", "config": {"method": "GET", "url": "https://example.com"}},
                {"id": "greet", "type": "set", "config": {"fields": {}}}
            ],
            "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "greet"}]
        }))
        .unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    #[test]
    fn a_write_counts_nothing_until_it_commits() {
        let journal = Journal {
            starts: Some(at(0)),
            ..finished(RunStatus::Succeeded, 2)
        };

        let values = recorded(|| {
            let _refused = RunWrite::of(&journal, None);
        });

        assert_eq!(values, BTreeMap::new());
    }

    #[test]
    fn a_run_started_and_ended_in_one_write_is_counted_once_each() {
        let journal = Journal {
            starts: Some(at(0)),
            ..finished(RunStatus::Failed, 0)
        };

        let values = recorded(|| {
            assert_eq!(RunWrite::of(&journal, None).committed(), Some(at(0)));
        });

        assert_eq!(
            values,
            expected(&[
                ("aos_run_duration_seconds{status=failed}", &[0.0]),
                ("aos_runs_finished_total{status=failed}", &[1.0]),
                ("aos_runs_started_total", &[1.0]),
            ])
        );
    }

    #[test]
    fn a_resumed_run_lasts_from_its_journaled_start_across_writes() {
        let values = recorded(|| {
            let started = RunWrite::of(&Journal::default(), Some(at(-60))).committed();
            assert_eq!(started, Some(at(-60)), "a heartbeat keeps the start");
            RunWrite::of(&finished(RunStatus::Succeeded, 30), started).committed();
        });

        assert_eq!(
            values,
            expected(&[
                ("aos_run_duration_seconds{status=succeeded}", &[90.0]),
                ("aos_runs_finished_total{status=succeeded}", &[1.0]),
            ]),
            "a resumed run was counted as started by the worker that started it"
        );
    }

    #[test]
    fn a_run_cancelled_before_it_started_has_no_duration() {
        let values = recorded(|| {
            assert_eq!(
                RunWrite::of(&finished(RunStatus::Cancelled, 5), None).committed(),
                None
            );
        });

        assert_eq!(
            values,
            expected(&[("aos_runs_finished_total{status=cancelled}", &[1.0])])
        );
    }

    #[test]
    fn a_sleep_is_neither_a_start_nor_an_end() {
        let sleep = Journal {
            run: Some(RunChange::SleepUntil { until_ms: 0 }),
            ..Journal::default()
        };

        let values = recorded(|| {
            RunWrite::of(&sleep, Some(at(0))).committed();
        });

        assert_eq!(values, BTreeMap::new());
    }

    #[test]
    fn step_attempts_are_counted_by_node_type_and_outcome() {
        let workflow = workflow();
        let (Some(http), Some(set)) = (workflow.node("call"), workflow.node("greet")) else {
            panic!("the workflow's nodes");
        };

        let values = recorded(|| {
            StepAttempt::start(set).returned(&StepOutcome::Succeeded(json!({})).into());
            StepAttempt::start(http).returned(&StepOutcome::Failed("HTTP 500".into()).into());
            let _dropped = StepAttempt::start(http);
            step_retrying(http);
            step_repeated(http);
        });

        let counts: BTreeMap<String, Vec<f64>> = values
            .iter()
            .filter(|(key, _)| !key.starts_with(STEP_DURATION))
            .map(|(key, values)| (key.clone(), values.clone()))
            .collect();
        assert_eq!(
            counts,
            expected(&[
                (
                    "aos_step_attempts_total{node_type=http.request,outcome=abandoned}",
                    &[1.0]
                ),
                (
                    "aos_step_attempts_total{node_type=http.request,outcome=failed}",
                    &[1.0]
                ),
                (
                    "aos_step_attempts_total{node_type=set,outcome=succeeded}",
                    &[1.0]
                ),
                ("aos_step_repeats_total{node_type=http.request}", &[1.0]),
                ("aos_step_retries_total{node_type=http.request}", &[1.0]),
            ])
        );
        let timed: Vec<(&String, usize)> = values
            .iter()
            .filter(|(key, _)| key.starts_with(STEP_DURATION))
            .map(|(key, values)| (key, values.len()))
            .collect();
        assert_eq!(
            timed,
            vec![
                (
                    &"aos_step_duration_seconds{node_type=http.request}".to_owned(),
                    1
                ),
                (&"aos_step_duration_seconds{node_type=set}".to_owned(), 1),
            ],
            "only attempts that returned are timed"
        );
    }

    #[test]
    fn abandoned_runs_are_counted_by_reason() {
        let values = recorded(|| {
            run_abandoned(&QueueError::Refused(JournalRefusal::LeaseLost));
            run_abandoned(&QueueError::Refused(JournalRefusal::RunGone));
            run_abandoned(&QueueError::Storage(aos_domain::DomainError::internal(
                "the database is gone",
            )));
        });

        assert_eq!(
            values,
            expected(&[
                ("aos_runs_abandoned_total{reason=lease_lost}", &[1.0]),
                ("aos_runs_abandoned_total{reason=run_gone}", &[1.0]),
                ("aos_runs_abandoned_total{reason=storage_error}", &[1.0]),
            ])
        );
    }

    #[test]
    fn a_queue_sample_sets_every_gauge() {
        let depth = QueueDepth {
            due: 3,
            expired: 1,
            leased: 2,
            delayed: 7,
            oldest_due_since_ms: Some(1_000),
        };

        let values = recorded(|| queue_depth(&depth, 4_500));

        assert_eq!(
            values,
            expected(&[
                ("aos_queue_oldest_due_age_seconds", &[3.5]),
                ("aos_queue_runs_lease_expired", &[1.0]),
                ("aos_queue_runs{state=delayed}", &[7.0]),
                ("aos_queue_runs{state=due}", &[3.0]),
                ("aos_queue_runs{state=leased}", &[2.0]),
            ])
        );
    }
}

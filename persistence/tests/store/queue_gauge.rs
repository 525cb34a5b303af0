//! The queue's gauges: how many runs are due, leased, delayed, and how long the oldest
//! due run has waited.
//!
//! Invariants protected: every run that has not ended is counted in exactly one of due,
//! leased and delayed, across every workspace; an ended run is not counted; a run whose
//! lease ran out is due (and counted as expired) and has waited since its lease ended, not
//! since it was queued; a run that sleeps gave its lease up and is delayed, not expired.
//! Every time is passed explicitly: no test sleeps or reads the clock.

use aos_domain::journal::{ClaimedRun, Journal, RunChange};
use aos_domain::ports::RunQueue;
use aos_domain::queue_gauge::{QueueDepth, QueueGauge};
use aos_domain::run::RunStatus;
use serde_json::json;

use crate::runs::{T0, at, enqueue};
use crate::support::{Backend, Ctx, on_every_backend, run};
use crate::workflows;

on_every_backend!(
    an_empty_queue_counts_nothing,
    every_unfinished_run_is_counted_once_across_workspaces,
);

/// The gauge reads every workspace, as the connecting role that owns the tables. On a
/// managed server that role is no superuser, and row-level security must still not hide
/// any workspace's runs from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_owner_counts_every_workspace() {
    run(
        Backend::PostgresAsOwner,
        every_unfinished_run_is_counted_once_across_workspaces,
    )
    .await;
}

const LEASE_MS: i64 = 1_000;
const NO_LIMIT: u32 = 100;

async fn depth(t: &Ctx, now_ms: i64) -> QueueDepth {
    t.store.queue_depth(now_ms).await.expect("count the queue")
}

/// Claims the only claimable run at `now_ms`.
async fn claim(t: &Ctx, worker: &str, now_ms: i64) -> ClaimedRun {
    t.store
        .claim(worker, now_ms, LEASE_MS, NO_LIMIT)
        .await
        .expect("claim")
        .expect("a claimable run")
}

async fn write(t: &Ctx, claimed: &ClaimedRun, run: RunChange, now_ms: i64) {
    t.store
        .journal(
            &claimed.lease,
            Journal {
                starts: Some(at(now_ms)),
                run: Some(run),
                ..Journal::default()
            },
            now_ms,
            LEASE_MS,
        )
        .await
        .expect("journal");
}

fn succeeded(now_ms: i64) -> RunChange {
    RunChange::Finished {
        status: RunStatus::Succeeded,
        output: Some(json!({"done": true})),
        error: None,
        at: at(now_ms),
    }
}

async fn an_empty_queue_counts_nothing(t: Ctx) {
    assert_eq!(depth(&t, T0).await, QueueDepth::default());
    assert!(depth(&t, T0).await.oldest_due_age_secs(T0).abs() < f64::EPSILON);
}

async fn every_unfinished_run_is_counted_once_across_workspaces(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let a_workflow = workflows::create(&t, &in_a, "A").await;
    let b_workflow = workflows::create(&t, &in_b, "B").await;
    // Each claim below has exactly one candidate, so the test does not depend on the
    // claim's order of preference.
    let a1 = enqueue(&t, &in_a, &a_workflow, T0).await;
    let leased = claim(&t, "w1", T0).await;
    assert_eq!(leased.run.id, a1.id);
    enqueue(&t, &in_b, &b_workflow, T0 + 100).await;
    let finished = claim(&t, "w2", T0 + 100).await;
    write(&t, &finished, succeeded(T0 + 100), T0 + 100).await;
    enqueue(&t, &in_b, &b_workflow, T0 + 200).await;
    let sleeping = claim(&t, "w3", T0 + 200).await;
    write(
        &t,
        &sleeping,
        RunChange::SleepUntil {
            until_ms: T0 + 20_000,
        },
        T0 + 200,
    )
    .await;
    enqueue(&t, &in_b, &b_workflow, T0 + 300).await;
    enqueue(&t, &in_a, &a_workflow, T0 + 5_000).await;

    assert_eq!(
        depth(&t, T0 + 500).await,
        QueueDepth {
            due: 1,
            expired: 0,
            leased: 1,
            delayed: 2,
            oldest_due_since_ms: Some(T0 + 300),
        },
        "B's last run is due, A's first leased, the sleeper and A's later run delayed"
    );

    let done = claim(&t, "w4", T0 + 600).await;
    write(&t, &done, succeeded(T0 + 600), T0 + 600).await;
    // A's first lease ended at T0 + LEASE_MS without a word from its worker.
    let expired = depth(&t, T0 + 2_500).await;
    assert_eq!(
        expired,
        QueueDepth {
            due: 1,
            expired: 1,
            leased: 0,
            delayed: 2,
            oldest_due_since_ms: Some(T0 + LEASE_MS),
        },
        "a lost lease makes its run due again, waiting since the lease ended"
    );
    assert!((expired.oldest_due_age_secs(T0 + 2_500) - 1.5).abs() < f64::EPSILON);

    let resumed = claim(&t, "w5", T0 + 2_500).await;
    assert_eq!(resumed.run.id, a1.id);
    assert_eq!(
        depth(&t, T0 + 2_500).await,
        QueueDepth {
            due: 0,
            expired: 0,
            leased: 1,
            delayed: 2,
            oldest_due_since_ms: None,
        },
        "a new claim is a live lease again"
    );

    assert_eq!(
        depth(&t, T0 + 6_000).await,
        QueueDepth {
            due: 2,
            expired: 1,
            leased: 0,
            delayed: 1,
            oldest_due_since_ms: Some(T0 + 2_500 + LEASE_MS),
        },
        "A's later run came due, the resumed run's lease ran out too, the sleeper sleeps"
    );
}

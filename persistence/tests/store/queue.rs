//! The engine's queue: claiming, leases and their fencing tokens, journaling.
//!
//! Invariants protected: a run is held by at most one worker at a time (concurrent claims
//! never share a run); a worker whose lease was taken over changes nothing; a run's events
//! are numbered from 1 without gaps across every write; a run leaves the queue when it
//! finishes and waits in it while it sleeps. Every time is passed explicitly: no test
//! sleeps or reads the clock.

use std::collections::BTreeSet;

use aos_domain::DomainError;
use aos_domain::journal::{
    ClaimedRun, Journal, JournalRefusal, NewRun, NewRunEvent, RunChange, RunEventKind, StepRecord,
};
use aos_domain::ports::{
    CancelOutcome, LeaseRenewal, QueueError, RunQueue, RunStore, WorkflowStore,
};
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::workflow::WorkflowChange;
use serde_json::json;

use crate::runs::{T0, at, enqueue, events, new_run, step};
use crate::support::{Backend, Ctx, on_every_backend, run};
use crate::workflows;

on_every_backend!(
    nothing_is_claimed_before_a_run_is_due,
    a_claim_carries_the_pinned_definition_and_the_steps,
    a_live_lease_keeps_other_workers_out_until_it_expires,
    a_workspace_at_its_limit_waits_for_a_lease_to_end,
    claims_favour_the_workspace_with_the_fewest_leases,
    journal_writes_number_events_without_gaps,
    a_sleeping_run_is_claimable_again_when_it_wakes,
    an_illegal_status_change_is_refused_and_changes_nothing,
    cancelling_a_claimed_run_reaches_its_worker,
    cancelling_a_sleeping_run_wakes_it,
    a_sleep_written_after_a_cancel_request_does_not_delay_the_cancel,
    concurrent_claims_never_share_a_run,
    a_run_deleted_with_its_workflow_is_gone,
    a_run_inserted_claimed_is_leased_to_its_worker,
    complete_runs_stored_together_fail_only_for_their_own_reasons,
);

/// The queue runs unscoped, as the connecting role that owns the tables. On a managed
/// server that role is no superuser, and row-level security must still not hide the runs
/// of any workspace from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_owner_runs_the_queue() {
    run(Backend::PostgresAsOwner, |t: Ctx| async move {
        // Each leaves no claimable run behind for the next, except the last.
        journal_writes_number_events_without_gaps(t.clone()).await;
        cancelling_a_claimed_run_reaches_its_worker(t.clone()).await;
        concurrent_claims_never_share_a_run(t).await;
    })
    .await;
}

const LEASE_MS: i64 = 1_000;
const NO_LIMIT: u32 = 100;

fn event(kind: RunEventKind, node_id: Option<&str>, at_ms: i64) -> NewRunEvent {
    NewRunEvent {
        kind,
        node_id: node_id.map(str::to_owned),
        message: kind.as_str().to_lowercase(),
        data: None,
        at: at(at_ms),
    }
}

fn started(at_ms: i64) -> Journal {
    Journal {
        starts: Some(at(at_ms)),
        events: vec![event(RunEventKind::RunStarted, None, at_ms)],
        ..Journal::default()
    }
}

fn finished(status: RunStatus, kind: RunEventKind, at_ms: i64) -> Journal {
    Journal {
        steps: Vec::new(),
        events: vec![event(kind, None, at_ms)],
        starts: None,
        run: Some(RunChange::Finished {
            status,
            output: Some(json!({ "done": true })),
            error: None,
            at: at(at_ms),
        }),
    }
}

async fn claim(t: &Ctx, worker: &str, now_ms: i64) -> Option<ClaimedRun> {
    t.store
        .claim(worker, now_ms, LEASE_MS, NO_LIMIT)
        .await
        .expect("claim")
}

async fn claimed(t: &Ctx, worker: &str, now_ms: i64) -> ClaimedRun {
    claim(t, worker, now_ms).await.expect("a claimable run")
}

async fn write(t: &Ctx, claimed: &ClaimedRun, journal: Journal, now_ms: i64) -> LeaseRenewal {
    t.store
        .journal(&claimed.lease, journal, now_ms, LEASE_MS)
        .await
        .expect("journal")
}

fn refusal(result: Result<LeaseRenewal, QueueError>) -> JournalRefusal {
    match result {
        Err(QueueError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal: {other:?}"),
    }
}

async fn nothing_is_claimed_before_a_run_is_due(t: Ctx) {
    assert_eq!(claim(&t, "w1", T0).await, None, "an empty queue");
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Later").await;
    let run = enqueue(&t, &scope, &workflow, T0 + 500).await;

    assert_eq!(claim(&t, "w1", T0 + 499).await, None, "not due yet");
    let taken = claimed(&t, "w1", T0 + 500).await;
    assert_eq!(taken.run.id, run.id);
    assert_eq!(
        claim(&t, "w2", T0 + 500).await,
        None,
        "the only run is leased"
    );
    assert_eq!(
        t.store
            .claim("w2", T0 + 500, LEASE_MS, 0)
            .await
            .expect("claim"),
        None,
        "a limit of zero admits nothing"
    );
}

async fn a_claim_carries_the_pinned_definition_and_the_steps(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Pinned").await;
    let reused = vec![step("hook", StepStatus::Succeeded, Some(T0 - 10))];
    let run = t
        .store
        .enqueue_run(
            &scope,
            aos_domain::journal::NewRun {
                reused_steps: reused.clone(),
                ..new_run(&workflow, T0)
            },
        )
        .await
        .expect("queue");
    // A later version must not change what the queued run executes.
    t.store
        .update_workflow(
            &scope,
            workflow.id,
            WorkflowChange {
                definition: Some(workflows::definition("v2")),
                ..WorkflowChange::default()
            },
        )
        .await
        .expect("second version");

    let taken = claimed(&t, "w1", T0).await;

    assert_eq!(taken.run, run, "the status is the worker's to change");
    assert_eq!(taken.definition, workflows::definition("v1"));
    assert_eq!(taken.steps, reused);
    assert_eq!(
        (
            taken.lease.run_id,
            taken.lease.workspace_id,
            taken.lease.worker.as_str(),
            taken.lease.fencing_token
        ),
        (run.id, workspace.id, "w1", 1)
    );
}

async fn a_live_lease_keeps_other_workers_out_until_it_expires(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Contended").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let first = claimed(&t, "w1", T0).await;
    write(&t, &first, started(T0 + 100), T0 + 100).await;
    // The journal write extended the lease to T0 + 100 + LEASE_MS.
    assert_eq!(claim(&t, "w2", T0 + LEASE_MS).await, None);
    assert_eq!(claim(&t, "w2", T0 + 100 + LEASE_MS - 1).await, None);

    let second = claimed(&t, "w2", T0 + 100 + LEASE_MS).await;

    assert_eq!(second.run.id, run.id);
    assert_eq!(
        second.run.status,
        RunStatus::Running,
        "resumed, not restarted"
    );
    assert_eq!(second.lease.fencing_token, first.lease.fencing_token + 1);
    let before = events(&t, &scope, run.id).await;
    let late = t
        .store
        .journal(
            &first.lease,
            Journal {
                steps: vec![step("hook", StepStatus::Running, Some(T0 + 1200))],
                events: vec![event(RunEventKind::StepStarted, Some("hook"), T0 + 1200)],
                ..Journal::default()
            },
            T0 + 1200,
            LEASE_MS,
        )
        .await;
    assert_eq!(refusal(late), JournalRefusal::LeaseLost);
    assert_eq!(events(&t, &scope, run.id).await, before);
    assert!(
        t.store
            .run_steps(&scope, run.id)
            .await
            .expect("steps")
            .is_empty()
    );
    let renewal = write(&t, &second, Journal::default(), T0 + 1200).await;
    assert_eq!(renewal.events, vec![]);
}

async fn a_workspace_at_its_limit_waits_for_a_lease_to_end(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let a_workflow = workflows::create(&t, &in_a, "A").await;
    let b_workflow = workflows::create(&t, &in_b, "B").await;
    let a1 = enqueue(&t, &in_a, &a_workflow, T0).await;
    let a2 = enqueue(&t, &in_a, &a_workflow, T0).await;
    let claim_one = |worker: &'static str, now_ms: i64| {
        let store = t.store.clone();
        async move {
            store
                .claim(worker, now_ms, LEASE_MS, 1)
                .await
                .expect("claim")
        }
    };

    let first = claim_one("w1", T0).await.expect("A's first run");
    assert_eq!(first.run.id, a1.id);
    assert_eq!(claim_one("w2", T0).await, None, "A is at its limit");
    let b1 = enqueue(&t, &in_b, &b_workflow, T0 + 1).await;
    assert_eq!(
        claim_one("w2", T0 + 1).await.map(|c| c.run.id),
        Some(b1.id),
        "B is not held back by A"
    );
    write(&t, &first, started(T0 + 2), T0 + 2).await;
    write(
        &t,
        &first,
        finished(RunStatus::Succeeded, RunEventKind::RunSucceeded, T0 + 3),
        T0 + 3,
    )
    .await;
    assert_eq!(
        claim_one("w3", T0 + 3).await.map(|c| c.run.id),
        Some(a2.id),
        "A's finished run freed its slot"
    );
}

async fn claims_favour_the_workspace_with_the_fewest_leases(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let a_workflow = workflows::create(&t, &in_a, "Busy").await;
    let b_workflow = workflows::create(&t, &in_b, "Quiet").await;
    let mut a_runs = Vec::new();
    for n in 0..5 {
        a_runs.push(enqueue(&t, &in_a, &a_workflow, T0 + n).await.id);
    }
    // B's only run has waited the least of all.
    let b_run = enqueue(&t, &in_b, &b_workflow, T0 + 10).await.id;

    let mut order = Vec::new();
    while let Some(taken) = claim(&t, "w", T0 + 20).await {
        order.push(taken.run.id);
    }

    assert_eq!(order.len(), 6);
    assert_eq!(
        order[..2],
        [a_runs[0], b_run],
        "B waits behind one of A's runs at most"
    );
    assert_eq!(
        order[2..],
        a_runs[1..],
        "then A's in the order they became available"
    );
}

async fn journal_writes_number_events_without_gaps(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Journaled").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;

    let mut journal = started(T0 + 1);
    journal.steps = vec![step("hook", StepStatus::Running, Some(T0 + 1))];
    journal
        .events
        .push(event(RunEventKind::StepStarted, Some("hook"), T0 + 1));
    let first = write(&t, &taken, journal, T0 + 1).await;
    let mut done = step("hook", StepStatus::Succeeded, Some(T0 + 1));
    done.output = Some(json!({ "body": "hi" }));
    done.finish_order = Some(1);
    done.finished_at = Some(at(T0 + 2));
    let second = write(
        &t,
        &taken,
        Journal {
            steps: vec![done.clone()],
            events: vec![
                event(RunEventKind::StepLog, Some("hook"), T0 + 2),
                event(RunEventKind::StepSucceeded, Some("hook"), T0 + 2),
            ],
            ..Journal::default()
        },
        T0 + 2,
    )
    .await;
    let heartbeat = write(&t, &taken, Journal::default(), T0 + 3).await;
    let last = write(
        &t,
        &taken,
        finished(RunStatus::Succeeded, RunEventKind::RunSucceeded, T0 + 4),
        T0 + 4,
    )
    .await;

    let seqs = |renewal: &LeaseRenewal| renewal.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        [&first, &second, &heartbeat, &last].map(seqs),
        [vec![2, 3], vec![4, 5], vec![], vec![6]]
    );
    assert!(!heartbeat.cancel_requested);
    let stored = events(&t, &scope, run.id).await;
    assert_eq!(
        stored.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        vec![
            (1, RunEventKind::RunQueued),
            (2, RunEventKind::RunStarted),
            (3, RunEventKind::StepStarted),
            (4, RunEventKind::StepLog),
            (5, RunEventKind::StepSucceeded),
            (6, RunEventKind::RunSucceeded),
        ]
    );
    assert_eq!(stored[1..3], first.events[..]);
    assert_eq!(
        t.store
            .run_events(&scope, run.id, 2, 2)
            .await
            .expect("a window")
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(
        t.store.run_steps(&scope, run.id).await.expect("steps"),
        vec![done],
        "a step is one row, as last journaled"
    );
    let ended = t
        .store
        .run(&scope, run.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (
            ended.status,
            ended.output,
            ended.last_seq,
            ended.started_at,
            ended.finished_at
        ),
        (
            RunStatus::Succeeded,
            Some(json!({ "done": true })),
            6,
            Some(at(T0 + 1)),
            Some(at(T0 + 4))
        )
    );
    assert_eq!(
        claim(&t, "w2", T0 + 100_000).await,
        None,
        "a finished run left the queue"
    );
    let after_the_end = t
        .store
        .journal(&taken.lease, Journal::default(), T0 + 5, LEASE_MS)
        .await;
    assert_eq!(refusal(after_the_end), JournalRefusal::LeaseLost);
}

async fn a_sleeping_run_is_claimable_again_when_it_wakes(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Patient").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;
    write(&t, &taken, started(T0 + 1), T0 + 1).await;

    write(
        &t,
        &taken,
        Journal {
            run: Some(RunChange::SleepUntil {
                until_ms: T0 + 5_000,
            }),
            ..Journal::default()
        },
        T0 + 2,
    )
    .await;

    assert_eq!(claim(&t, "w2", T0 + 4_999).await, None, "asleep");
    let gave_up = t
        .store
        .journal(&taken.lease, Journal::default(), T0 + 3, LEASE_MS)
        .await;
    assert_eq!(
        refusal(gave_up),
        JournalRefusal::LeaseLost,
        "the lease was given up"
    );
    let woken = claimed(&t, "w2", T0 + 5_000).await;
    assert_eq!(woken.run.id, run.id);
    assert_eq!(woken.run.status, RunStatus::Running);
    assert_eq!(woken.lease.fencing_token, taken.lease.fencing_token + 1);
}

async fn an_illegal_status_change_is_refused_and_changes_nothing(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Buggy").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;

    // QUEUED cannot become SUCCEEDED without RUNNING in between.
    let mut journal = finished(RunStatus::Succeeded, RunEventKind::RunSucceeded, T0 + 1);
    journal.steps = vec![step("hook", StepStatus::Succeeded, Some(T0))];
    let refused = t
        .store
        .journal(&taken.lease, journal, T0 + 1, LEASE_MS)
        .await;

    assert!(
        matches!(refused, Err(QueueError::Storage(DomainError::Internal(_)))),
        "{refused:?}"
    );
    assert_eq!(
        t.store.run(&scope, run.id).await.expect("read"),
        Some(run.clone())
    );
    assert_eq!(events(&t, &scope, run.id).await.len(), 1);
    assert!(
        t.store
            .run_steps(&scope, run.id)
            .await
            .expect("steps")
            .is_empty()
    );
}

async fn cancelling_a_claimed_run_reaches_its_worker(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Stoppable").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;

    let outcome = t
        .store
        .request_cancel(&scope, run.id, at(T0 + 10))
        .await
        .expect("cancel");

    let CancelOutcome::Requested(requested) = outcome else {
        panic!("a held run is only marked: {outcome:?}");
    };
    assert_eq!(
        (
            requested.status,
            requested.cancel_requested,
            requested.last_seq
        ),
        (RunStatus::Queued, true, 1)
    );
    let renewal = write(&t, &taken, started(T0 + 20), T0 + 20).await;
    assert!(renewal.cancel_requested);
    let renewal = write(
        &t,
        &taken,
        finished(RunStatus::Cancelled, RunEventKind::RunCancelled, T0 + 30),
        T0 + 30,
    )
    .await;
    assert_eq!(
        renewal.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3]
    );
    let ended = t
        .store
        .run(&scope, run.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(ended.status, RunStatus::Cancelled);
}

async fn cancelling_a_sleeping_run_wakes_it(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Sleepy").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;
    write(&t, &taken, started(T0 + 1), T0 + 1).await;
    write(
        &t,
        &taken,
        Journal {
            run: Some(RunChange::SleepUntil {
                until_ms: T0 + 3_600_000,
            }),
            ..Journal::default()
        },
        T0 + 2,
    )
    .await;

    let outcome = t
        .store
        .request_cancel(&scope, run.id, at(T0 + 100))
        .await
        .expect("cancel");

    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );
    let woken = claimed(&t, "w2", T0 + 100).await;
    assert_eq!(woken.run.id, run.id);
    assert!(woken.run.cancel_requested);
}

/// The worker decided to sleep before it saw the cancel request; its sleep must not push
/// the cancellation back to the end of the sleep.
async fn a_sleep_written_after_a_cancel_request_does_not_delay_the_cancel(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Sleepy").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;
    write(&t, &taken, started(T0 + 1), T0 + 1).await;
    t.store
        .request_cancel(&scope, run.id, at(T0 + 2))
        .await
        .expect("cancel");

    write(
        &t,
        &taken,
        Journal {
            run: Some(RunChange::SleepUntil {
                until_ms: T0 + 3_600_000,
            }),
            ..Journal::default()
        },
        T0 + 3,
    )
    .await;

    let woken = claimed(&t, "w2", T0 + 4).await;
    assert_eq!(woken.run.id, run.id);
    assert!(woken.run.cancel_requested);
}

async fn concurrent_claims_never_share_a_run(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let a_workflow = workflows::create(&t, &in_a, "A").await;
    let b_workflow = workflows::create(&t, &in_b, "B").await;
    let mut queued = BTreeSet::new();
    for n in 0..4 {
        queued.insert(enqueue(&t, &in_a, &a_workflow, T0 + n).await.id);
        queued.insert(enqueue(&t, &in_b, &b_workflow, T0 + n).await.id);
    }

    let claims = (0..16).map(|n| {
        let store = t.store.clone();
        tokio::spawn(async move {
            store
                .claim(&format!("w{n}"), T0 + 10, LEASE_MS, NO_LIMIT)
                .await
        })
    });
    let mut taken: Vec<ClaimedRun> = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter_map(|joined| joined.expect("task").expect("claim"))
        .collect();
    // Whatever the race left unclaimed is still there for a worker that comes later.
    while let Some(late) = claim(&t, "late", T0 + 10).await {
        taken.push(late);
    }

    let ids: Vec<RunId> = taken.iter().map(|c| c.run.id).collect();
    let distinct: BTreeSet<RunId> = ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "a run was claimed twice: {ids:?}"
    );
    assert_eq!(distinct, queued);
    assert!(taken.iter().all(|c| c.lease.fencing_token == 1));
}

async fn a_run_deleted_with_its_workflow_is_gone(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Doomed").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;
    let taken = claimed(&t, "w1", T0).await;

    t.store
        .delete_workflow(&scope, workflow.id)
        .await
        .expect("delete the workflow");

    let gone = t
        .store
        .journal(&taken.lease, started(T0 + 1), T0 + 1, LEASE_MS)
        .await;
    assert_eq!(refusal(gone), JournalRefusal::RunGone);
    assert_eq!(t.store.run(&scope, run.id).await.expect("read"), None);
    assert!(events(&t, &scope, run.id).await.is_empty());
}

/// A run executed in place and stored with its first write: leased to the worker that
/// executes it, claimable by nobody else until the lease ends, journaled like any other.
async fn a_run_inserted_claimed_is_leased_to_its_worker(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Now").await;
    let run = new_run(&workflow, T0);
    let run_id = run.id;
    let first = Journal {
        starts: Some(at(T0 + 1)),
        steps: vec![step("hook", StepStatus::Running, Some(T0 + 1))],
        events: vec![
            event(RunEventKind::RunStarted, None, T0 + 1),
            event(RunEventKind::StepStarted, Some("hook"), T0 + 1),
        ],
        run: None,
    };

    let (lease, renewal) = t
        .store
        .insert_claimed(scope.workspace_id(), run, "now", first, T0 + 1, LEASE_MS)
        .await
        .expect("stored");

    let seqs: Vec<(i64, RunEventKind)> = renewal
        .events
        .iter()
        .map(|event| (event.seq, event.kind))
        .collect();
    assert_eq!(
        seqs,
        [
            (1, RunEventKind::RunQueued),
            (2, RunEventKind::RunStarted),
            (3, RunEventKind::StepStarted)
        ]
    );
    assert_eq!(
        claim(&t, "w1", T0 + 2).await,
        None,
        "leased to its executor"
    );
    let stored = t
        .store
        .run(&scope, run_id)
        .await
        .expect("read")
        .expect("the run");
    assert_eq!(stored.status, RunStatus::Running);
    t.store
        .journal(
            &lease,
            finished(RunStatus::Succeeded, RunEventKind::RunSucceeded, T0 + 3),
            T0 + 3,
            LEASE_MS,
        )
        .await
        .expect("its executor journals on");
    assert_eq!(events(&t, &scope, run_id).await.len(), 4);
    assert_eq!(claim(&t, "w1", T0 + LEASE_MS + 10).await, None, "finished");
}

/// Runs that end in their first write are stored in shared transactions. One among them
/// whose workflow version does not exist fails alone, and the others are stored whole.
async fn complete_runs_stored_together_fail_only_for_their_own_reasons(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Now").await;
    let complete = || Journal {
        starts: Some(at(T0 + 1)),
        steps: vec![StepRecord {
            status: StepStatus::Succeeded,
            finish_order: Some(1),
            finished_at: Some(at(T0 + 1)),
            ..step("hook", StepStatus::Succeeded, Some(T0 + 1))
        }],
        events: vec![
            event(RunEventKind::RunStarted, None, T0 + 1),
            event(RunEventKind::StepStarted, Some("hook"), T0 + 1),
            event(RunEventKind::StepSucceeded, Some("hook"), T0 + 1),
            event(RunEventKind::RunSucceeded, None, T0 + 1),
        ],
        run: Some(RunChange::Finished {
            status: RunStatus::Succeeded,
            output: Some(json!({"ok": true})),
            error: None,
            at: at(T0 + 1),
        }),
    };
    let mut runs: Vec<NewRun> = (0..24).map(|_| new_run(&workflow, T0)).collect();
    runs[7].workflow_version = 99;
    let doomed = runs[7].id;

    let stored = futures::future::join_all(runs.iter().cloned().map(|run| {
        let store = t.store.clone();
        let workspace = scope.workspace_id();
        let journal = complete();
        tokio::spawn(async move {
            store
                .insert_claimed(workspace, run, "now", journal, T0 + 1, LEASE_MS)
                .await
        })
    }))
    .await;

    for (run, outcome) in runs.iter().zip(stored) {
        let outcome = outcome.expect("the task ran");
        if run.id == doomed {
            assert!(
                matches!(
                    outcome,
                    Err(QueueError::Storage(DomainError::NotFound("workflow")))
                ),
                "{outcome:?}"
            );
            assert!(events(&t, &scope, run.id).await.is_empty());
            continue;
        }
        let (_, renewal) = outcome.expect("stored");
        assert_eq!(renewal.events.len(), 5);
        let read = t
            .store
            .run(&scope, run.id)
            .await
            .expect("read")
            .expect("the run");
        assert_eq!(read.status, RunStatus::Succeeded);
        assert_eq!(read.output, Some(json!({"ok": true})));
        assert_eq!(events(&t, &scope, run.id).await, renewal.events);
    }
    assert_eq!(
        claim(&t, "w1", T0 + LEASE_MS + 10).await,
        None,
        "all finished"
    );
}

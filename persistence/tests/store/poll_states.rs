//! Polling triggers' state: one lease per poll, however many pollers claim it; the cursor
//! and the runs of a poll are written together or not at all, and only by the holder of
//! the newest lease; the state outlives new versions and goes with the workflow.

use aos_domain::journal::RunTrigger;
use aos_domain::page::PageRequest;
use aos_domain::polling::{ClaimedPoll, PollKey, PollOutcome, PollStore};
use aos_domain::ports::{RunFilter, RunStore, WorkflowStore};
use aos_domain::workflow::{Workflow, WorkflowChange};
use serde_json::json;

use crate::runs::{T0, at, new_run};
use crate::support::{Ctx, on_every_backend};
use crate::workflows;

on_every_backend!(
    a_poll_state_is_started_once_and_keeps_its_cursor_across_versions,
    only_due_polls_of_active_workflows_are_claimed,
    a_live_lease_keeps_other_pollers_out_until_it_expires,
    a_poll_queues_its_runs_with_its_cursor,
    a_poller_whose_lease_was_taken_over_writes_nothing,
    failed_polls_are_counted_until_one_works,
    a_state_is_forgotten_only_by_its_lease_holder_and_goes_with_its_workflow,
    concurrent_pollers_claim_a_poll_once,
);

const LEASE_MS: i64 = 60_000;

fn key(workflow: &Workflow) -> PollKey {
    PollKey {
        workflow_id: workflow.id,
        node_id: "poll".to_owned(),
    }
}

/// An active workflow with a poll state due at `T0`.
async fn polled_workflow(t: &Ctx, name: &str) -> (Workflow, aos_domain::access::WorkspaceScope) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(t, &scope, name).await;
    let workflow = t
        .store
        .set_workflow_active(&scope, workflow.id, true)
        .await
        .expect("activate");
    t.store
        .ensure_poll_state(workspace.id, &key(&workflow), T0)
        .await
        .expect("start the poll state");
    (workflow, scope)
}

async fn claim(t: &Ctx, owner: &str, now_ms: i64) -> Option<ClaimedPoll> {
    t.store
        .claim_due_poll(owner, now_ms, LEASE_MS)
        .await
        .expect("claim")
}

fn polled(cursor: serde_json::Value, runs: Vec<aos_domain::journal::NewRun>) -> PollOutcome {
    PollOutcome::Polled {
        cursor,
        runs,
        next_poll_at_ms: T0 + 60_000,
    }
}

fn poll_run(workflow: &Workflow, item: serde_json::Value) -> aos_domain::journal::NewRun {
    let mut run = new_run(workflow, T0);
    run.trigger = RunTrigger::Poll;
    run.input = item;
    run
}

async fn a_poll_state_is_started_once_and_keeps_its_cursor_across_versions(t: Ctx) {
    let (workflow, scope) = polled_workflow(&t, "Poller").await;
    let claimed = claim(&t, "a", T0).await.expect("due at T0");
    assert_eq!(claimed.state.cursor, None);
    assert_eq!(claimed.target.workflow_id, workflow.id);
    assert_eq!(claimed.target.version, 1);
    t.store
        .finish_poll(
            &claimed.lease,
            polled(json!({"seen": ["1"]}), Vec::new()),
            at(T0),
        )
        .await
        .expect("finish")
        .expect("the lease held");

    let updated = t
        .store
        .update_workflow(
            &scope,
            workflow.id,
            WorkflowChange {
                definition: Some(json!({"nodes": [], "v": 2})),
                ..WorkflowChange::default()
            },
        )
        .await
        .expect("a new version");
    t.store
        .ensure_poll_state(updated.workspace_id, &key(&workflow), T0 + 1)
        .await
        .expect("ensure again");

    let state = t
        .store
        .poll_state(&key(&workflow))
        .await
        .expect("read")
        .expect("a state");
    assert_eq!(state.cursor, Some(json!({"seen": ["1"]})));
    assert_eq!(
        state.next_poll_at_ms,
        T0 + 60_000,
        "the schedule is kept too"
    );
    let next = claim(&t, "a", T0 + 60_000).await.expect("due again");
    assert_eq!(
        next.target.version, 2,
        "the claim carries the current version"
    );
}

async fn only_due_polls_of_active_workflows_are_claimed(t: Ctx) {
    let (workflow, scope) = polled_workflow(&t, "Poller").await;

    assert!(claim(&t, "a", T0 - 1).await.is_none(), "not due yet");
    t.store
        .set_workflow_active(&scope, workflow.id, false)
        .await
        .expect("deactivate");
    assert!(claim(&t, "a", T0).await.is_none(), "inactive");
    t.store
        .set_workflow_active(&scope, workflow.id, true)
        .await
        .expect("activate again");
    let claimed = claim(&t, "a", T0).await.expect("due and active");
    assert_eq!(claimed.lease.key, key(&workflow));
    assert_eq!(claimed.lease.owner, "a");
}

async fn a_live_lease_keeps_other_pollers_out_until_it_expires(t: Ctx) {
    let _ = polled_workflow(&t, "Poller").await;

    let first = claim(&t, "a", T0).await.expect("due");
    let meanwhile = claim(&t, "b", T0 + LEASE_MS - 1).await;
    let after_expiry = claim(&t, "b", T0 + LEASE_MS)
        .await
        .expect("the lease ended");

    assert!(meanwhile.is_none());
    assert_eq!(after_expiry.lease.owner, "b");
    assert!(after_expiry.lease.token > first.lease.token);
}

async fn a_poll_queues_its_runs_with_its_cursor(t: Ctx) {
    let (workflow, scope) = polled_workflow(&t, "Poller").await;
    let claimed = claim(&t, "a", T0).await.expect("due");

    let runs = t
        .store
        .finish_poll(
            &claimed.lease,
            polled(
                json!({"seen": ["1", "2"]}),
                vec![
                    poll_run(&workflow, json!({"id": 1})),
                    poll_run(&workflow, json!({"id": 2})),
                ],
            ),
            at(T0 + 5),
        )
        .await
        .expect("finish")
        .expect("the lease held");

    assert_eq!(runs.len(), 2);
    for run in &runs {
        let stored = t
            .store
            .run(&scope, run.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.trigger, RunTrigger::Poll);
    }
    let inputs: Vec<_> = runs.iter().map(|run| run.input.clone()).collect();
    assert_eq!(inputs, [json!({"id": 1}), json!({"id": 2})]);
    let state = t
        .store
        .poll_state(&key(&workflow))
        .await
        .expect("read")
        .expect("a state");
    assert_eq!(state.cursor, Some(json!({"seen": ["1", "2"]})));
    assert_eq!(state.last_polled_at, Some(at(T0 + 5)));
    assert!(
        claim(&t, "b", T0 + 60_000).await.is_some(),
        "the lease is given up, and the poll due at its next time"
    );
}

async fn a_poller_whose_lease_was_taken_over_writes_nothing(t: Ctx) {
    let (workflow, scope) = polled_workflow(&t, "Poller").await;
    let stalled = claim(&t, "a", T0).await.expect("due");
    let took_over = claim(&t, "b", T0 + LEASE_MS).await.expect("expired");

    let refused = t
        .store
        .finish_poll(
            &stalled.lease,
            polled(
                json!({"seen": ["1"]}),
                vec![poll_run(&workflow, json!({"id": 1}))],
            ),
            at(T0),
        )
        .await
        .expect("finish");
    let forgot = t.store.forget_poll_state(&stalled.lease).await;

    assert_eq!(refused, None);
    assert!(forgot.is_ok());
    let runs = t
        .store
        .runs(
            &scope,
            RunFilter::default(),
            PageRequest {
                first: 10,
                after: None,
            },
        )
        .await
        .expect("list runs");
    assert!(runs.items.is_empty(), "no run of the stale poll was queued");
    let state = t
        .store
        .poll_state(&key(&workflow))
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(state.cursor, None);
    let accepted = t
        .store
        .finish_poll(
            &took_over.lease,
            polled(json!({"seen": []}), Vec::new()),
            at(T0),
        )
        .await
        .expect("finish");
    assert_eq!(accepted, Some(Vec::new()));
}

async fn failed_polls_are_counted_until_one_works(t: Ctx) {
    let (workflow, _) = polled_workflow(&t, "Poller").await;
    for (attempt, now) in [(1, T0), (2, T0 + 1_000)] {
        let claimed = claim(&t, "a", now).await.expect("due");
        t.store
            .finish_poll(
                &claimed.lease,
                PollOutcome::Failed {
                    error: format!("HTTP 500 ({attempt})"),
                    next_poll_at_ms: now + 1_000,
                },
                at(now),
            )
            .await
            .expect("finish")
            .expect("the lease held");
    }
    let state = t
        .store
        .poll_state(&key(&workflow))
        .await
        .expect("read")
        .expect("a state");
    assert_eq!(state.failures, 2);
    assert_eq!(state.last_error.as_deref(), Some("HTTP 500 (2)"));
    assert_eq!(state.next_poll_at_ms, T0 + 2_000);

    let claimed = claim(&t, "a", T0 + 2_000).await.expect("due");
    t.store
        .finish_poll(
            &claimed.lease,
            polled(json!({}), Vec::new()),
            at(T0 + 2_000),
        )
        .await
        .expect("finish");
    let state = t
        .store
        .poll_state(&key(&workflow))
        .await
        .expect("read")
        .expect("a state");
    assert_eq!((state.failures, state.last_error), (0, None));
}

async fn a_state_is_forgotten_only_by_its_lease_holder_and_goes_with_its_workflow(t: Ctx) {
    let (workflow, scope) = polled_workflow(&t, "Changed").await;
    let claimed = claim(&t, "a", T0).await.expect("due");
    t.store
        .forget_poll_state(&claimed.lease)
        .await
        .expect("forget");
    assert_eq!(
        t.store.poll_state(&key(&workflow)).await.expect("read"),
        None
    );

    let (deleted, deleted_scope) = polled_workflow(&t, "Deleted").await;
    t.store
        .delete_workflow(&deleted_scope, deleted.id)
        .await
        .expect("delete");
    assert_eq!(
        t.store.poll_state(&key(&deleted)).await.expect("read"),
        None
    );
    assert!(claim(&t, "a", T0 + LEASE_MS * 2).await.is_none());
    let _ = scope;
}

async fn concurrent_pollers_claim_a_poll_once(t: Ctx) {
    let _ = polled_workflow(&t, "Poller").await;

    let attempts = (0..8).map(|i| {
        let owner = format!("p{i}");
        let store = t.store.clone();
        async move { store.claim_due_poll(&owner, T0, LEASE_MS).await }
    });
    let outcomes = futures::future::join_all(attempts).await;

    let claimed = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("claim"))
        .filter(Option::is_some)
        .count();
    assert_eq!(claimed, 1);
}

//! Runs through the API's port: queueing, reading back, listing, cancelling, and the
//! tenant wall around all of it.
//!
//! Invariant protected: a scope for another workspace sees none of a workspace's runs,
//! steps or events and cannot cancel them, exactly as if they did not exist.

use aos_domain::DomainError;
use aos_domain::access::WorkspaceScope;
use aos_domain::journal::{NewRun, Run, RunEvent, RunEventKind, RunTrigger, StepRecord};
use aos_domain::page::PageRequest;
use aos_domain::ports::{CancelOutcome, RunFilter, RunQueue, RunStore};
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::workflow::Workflow;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::support::{Ctx, on_every_backend};
use crate::workflows;

on_every_backend!(
    a_queued_run_reads_back_with_its_steps_and_first_event,
    a_run_needs_a_workflow_version_of_its_workspace,
    runs_are_listed_newest_first_and_filtered,
    another_workspace_sees_none_of_the_runs,
    a_queued_run_nobody_holds_is_cancelled_at_once,
);

/// An arbitrary instant in the future of any test machine's clock, in epoch ms: tests
/// pass every time explicitly, relative to it.
pub const T0: i64 = 1_900_000_000_000;

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a representable instant")
}

pub fn new_run(workflow: &Workflow, queued_at_ms: i64) -> NewRun {
    NewRun {
        id: RunId::generate(),
        workflow_id: workflow.id,
        workflow_version: workflow.version,
        trigger: RunTrigger::Manual,
        input: json!({ "n": 1 }),
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at: at(queued_at_ms),
    }
}

pub async fn enqueue(
    t: &Ctx,
    scope: &WorkspaceScope,
    workflow: &Workflow,
    queued_at_ms: i64,
) -> Run {
    t.store
        .enqueue_run(scope, new_run(workflow, queued_at_ms))
        .await
        .expect("queue a run")
}

pub fn step(node_id: &str, status: StepStatus, started_at_ms: Option<i64>) -> StepRecord {
    StepRecord {
        node_id: node_id.to_owned(),
        status,
        attempt: 1,
        input: Some(json!({ "from": node_id })),
        output: None,
        error: None,
        branch: None,
        finish_order: None,
        started_at: started_at_ms.map(at),
        finished_at: None,
    }
}

pub async fn events(t: &Ctx, scope: &WorkspaceScope, run: RunId) -> Vec<RunEvent> {
    t.store
        .run_events(scope, run, 0, 1000)
        .await
        .expect("read events")
}

fn page(first: i64, after: Option<RunId>) -> PageRequest<RunId> {
    PageRequest::new(Some(first), after).expect("valid page")
}

async fn a_queued_run_reads_back_with_its_steps_and_first_event(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    let retried = RunId::generate();
    let mut greet = step("greet", StepStatus::Succeeded, Some(T0 - 500));
    greet.output = Some(json!({ "message": "hello" }));
    greet.finish_order = Some(2);
    greet.finished_at = Some(at(T0 - 400));
    let mut hook = step("hook", StepStatus::Succeeded, Some(T0 - 900));
    hook.finish_order = Some(1);
    let skipped = step("a-skipped", StepStatus::Skipped, None);
    let queued_at = at(T0) + Duration::nanoseconds(123_456_789);
    let new = NewRun {
        trigger: RunTrigger::Retry,
        retry_of: Some((retried, "call".to_owned())),
        reused_steps: vec![skipped.clone(), greet.clone(), hook.clone()],
        queued_at,
        ..new_run(&workflow, T0)
    };

    let run = t
        .store
        .enqueue_run(&scope, new.clone())
        .await
        .expect("queue");

    let expected = Run {
        id: new.id,
        workspace_id: workspace.id,
        workflow_id: workflow.id,
        workflow_version: 1,
        status: RunStatus::Queued,
        trigger: RunTrigger::Retry,
        input: json!({ "n": 1 }),
        output: None,
        error: None,
        retry_of: Some(retried),
        retry_from_node: Some("call".to_owned()),
        cancel_requested: false,
        last_seq: 1,
        // Cut to the microseconds the database keeps.
        created_at: at(T0) + Duration::microseconds(123_456),
        started_at: None,
        finished_at: None,
    };
    assert_eq!(run, expected);
    assert_eq!(
        t.store.run(&scope, run.id).await.expect("read"),
        Some(run.clone())
    );
    assert_eq!(
        t.store.run_steps(&scope, run.id).await.expect("steps"),
        vec![hook, greet, skipped],
        "in the order they started, the unstarted last"
    );
    let queued = RunEvent {
        run_id: run.id,
        workspace_id: workspace.id,
        seq: 1,
        at: expected.created_at,
        kind: RunEventKind::RunQueued,
        node_id: None,
        message: "queued".to_owned(),
        data: Some(json!({ "trigger": "RETRY" })),
    };
    assert_eq!(events(&t, &scope, run.id).await, vec![queued]);
    assert!(
        t.store
            .run_events(&scope, run.id, 1, 10)
            .await
            .expect("after the first")
            .is_empty()
    );
}

async fn a_run_needs_a_workflow_version_of_its_workspace(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let workflow = workflows::create(&t, &in_a, "Nightly").await;
    let b_workflow = workflows::create(&t, &in_b, "Theirs").await;

    let unknown_version = NewRun {
        workflow_version: 2,
        ..new_run(&workflow, T0)
    };
    let other_workspace = new_run(&b_workflow, T0);
    for (case, new) in [
        ("a version not saved yet", unknown_version),
        ("another workspace's workflow", other_workspace),
    ] {
        let refused = t.store.enqueue_run(&in_a, new).await;
        assert!(
            matches!(refused, Err(DomainError::NotFound("workflow"))),
            "{case}: {refused:?}"
        );
    }
    for scope in [&in_a, &in_b] {
        let listed = t
            .store
            .runs(scope, RunFilter::default(), page(10, None))
            .await
            .expect("list");
        assert!(listed.items.is_empty(), "{listed:?}");
    }
}

async fn runs_are_listed_newest_first_and_filtered(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let first = workflows::create(&t, &scope, "First").await;
    let second = workflows::create(&t, &scope, "Second").await;
    let mut ids = Vec::new();
    for workflow in [&first, &second, &first, &first, &second] {
        ids.push(enqueue(&t, &scope, workflow, T0).await.id);
    }
    let [r1, r2, r3, r4, r5] = ids[..] else {
        unreachable!("five runs")
    };
    t.store
        .request_cancel(&scope, r3, at(T0 + 1))
        .await
        .expect("cancel r3");
    let list = |filter: RunFilter, first: i64, after: Option<RunId>| {
        let store = t.store.clone();
        let scope = scope.clone();
        async move {
            let page = store
                .runs(&scope, filter, page(first, after))
                .await
                .expect("list");
            let ids: Vec<RunId> = page.items.iter().map(|run| run.id).collect();
            (ids, page.has_next_page)
        }
    };
    let all = RunFilter::default();
    let by_status = |status| RunFilter {
        status: Some(status),
        ..RunFilter::default()
    };

    assert_eq!(list(all, 2, None).await, (vec![r5, r4], true));
    assert_eq!(list(all, 2, Some(r4)).await, (vec![r3, r2], true));
    assert_eq!(list(all, 2, Some(r2)).await, (vec![r1], false));
    assert_eq!(list(all, 5, None).await, (vec![r5, r4, r3, r2, r1], false));
    let cases = [
        (
            RunFilter {
                workflow_id: Some(first.id),
                ..RunFilter::default()
            },
            vec![r4, r3, r1],
        ),
        (by_status(RunStatus::Cancelled), vec![r3]),
        (by_status(RunStatus::Queued), vec![r5, r4, r2, r1]),
        (by_status(RunStatus::Running), vec![]),
        (
            RunFilter {
                status: Some(RunStatus::Queued),
                workflow_id: Some(second.id),
            },
            vec![r5, r2],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            list(filter, 10, None).await,
            (expected, false),
            "{filter:?}"
        );
    }
    assert_eq!(
        list(by_status(RunStatus::Queued), 1, Some(r4)).await,
        (vec![r2], true)
    );
}

async fn another_workspace_sees_none_of_the_runs(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let workflow = workflows::create(&t, &in_a, "A's workflow").await;
    let new = NewRun {
        reused_steps: vec![step("hook", StepStatus::Succeeded, Some(T0 - 10))],
        ..new_run(&workflow, T0)
    };
    let run = t.store.enqueue_run(&in_a, new).await.expect("queue in A");

    assert_eq!(t.store.run(&in_b, run.id).await.expect("read"), None);
    let listed = t
        .store
        .runs(&in_b, RunFilter::default(), page(10, None))
        .await
        .expect("list");
    assert!(listed.items.is_empty());
    assert!(
        t.store
            .run_steps(&in_b, run.id)
            .await
            .expect("steps")
            .is_empty()
    );
    assert!(events(&t, &in_b, run.id).await.is_empty());
    let cancel = t.store.request_cancel(&in_b, run.id, at(T0)).await;
    assert!(
        matches!(cancel, Err(DomainError::NotFound("run"))),
        "{cancel:?}"
    );

    assert_eq!(
        t.store.run(&in_a, run.id).await.expect("read"),
        Some(run.clone())
    );
    assert_eq!(
        t.store.run_steps(&in_a, run.id).await.expect("steps").len(),
        1
    );
    assert_eq!(events(&t, &in_a, run.id).await.len(), 1);
}

async fn a_queued_run_nobody_holds_is_cancelled_at_once(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    let run = enqueue(&t, &scope, &workflow, T0).await;

    let outcome = t
        .store
        .request_cancel(&scope, run.id, at(T0 + 50))
        .await
        .expect("cancel");

    let CancelOutcome::Cancelled {
        run: cancelled,
        events: written,
    } = outcome
    else {
        panic!("a queued run nobody holds is cancelled at once: {outcome:?}");
    };
    assert_eq!(
        (cancelled.status, cancelled.finished_at, cancelled.last_seq),
        (RunStatus::Cancelled, Some(at(T0 + 50)), 2)
    );
    assert_eq!(
        written,
        vec![RunEvent {
            run_id: run.id,
            workspace_id: workspace.id,
            seq: 2,
            at: at(T0 + 50),
            kind: RunEventKind::RunCancelled,
            node_id: None,
            message: "cancelled before it started".to_owned(),
            data: None,
        }]
    );
    assert_eq!(
        t.store.run(&scope, run.id).await.expect("read"),
        Some(cancelled)
    );
    let stored = events(&t, &scope, run.id).await;
    assert_eq!(
        stored.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        vec![
            (1, RunEventKind::RunQueued),
            (2, RunEventKind::RunCancelled)
        ]
    );
    assert_eq!(
        t.store
            .claim("w1", T0 + 10_000, 1000, 10)
            .await
            .expect("claim"),
        None,
        "a cancelled run left the queue"
    );
    let again = t.store.request_cancel(&scope, run.id, at(T0 + 60)).await;
    assert!(
        matches!(&again, Err(DomainError::Conflict(message)) if message == "the run has already finished"),
        "{again:?}"
    );
}

//! Quotas in storage: overrides, the boundary under concurrency, metered counters and
//! retention.
//!
//! Invariants protected: concurrent additions never pass a limit together (exactly
//! `limit` of them succeed); a refused run leaves no row and no count behind; metered
//! counters count per workspace and period; an override lays over the defaults quota by
//! quota and can be cleared; retention deletes only finished runs older than their
//! workspace's cutoff, with their steps and events.

use std::collections::HashMap;

use aos_domain::DomainError;
use aos_domain::access::WorkspaceScope;
use aos_domain::audit::AuditRetention;
use aos_domain::journal::{NewRun, RunTrigger};
use aos_domain::ports::{RunStore, WorkspaceStore};
use aos_domain::quota::{Quota, QuotaLimits, QuotaOverride, QuotaStore, Setting};
use aos_domain::run::RunId;
use aos_domain::workflow::Workflow;
use aos_domain::workspace::Role;
use aos_persistence::SeaStore;
use chrono::{Duration, Utc};
use serde_json::json;
use uuid::{NoContext, Timestamp, Uuid};

use crate::support::{Ctx, on_every_backend};
use crate::workflows;

on_every_backend!(
    concurrent_runs_never_pass_the_month_or_the_queue_together,
    concurrent_members_never_pass_the_limit_together,
    a_refused_run_leaves_no_row_and_no_count,
    metered_quotas_count_per_workspace_and_refuse_at_the_limit,
    an_override_lays_over_the_defaults_and_clears,
    retention_deletes_only_finished_runs_past_their_workspace_cutoff,
);

fn limits(set: &[(Quota, u64)]) -> QuotaLimits {
    let mut limits = QuotaLimits::unlimited();
    for &(quota, limit) in set {
        limits.set(quota, Some(limit));
    }
    limits
}

fn run_of(workflow: &Workflow, id: RunId) -> NewRun {
    NewRun {
        id,
        workflow_id: workflow.id,
        workflow_version: workflow.version,
        trigger: RunTrigger::Manual,
        input: json!({}),
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at: Utc::now(),
    }
}

/// Queues `attempts` runs at once; returns how many were admitted and how many refused
/// by `quota`.
async fn enqueue_concurrently(
    store: &SeaStore,
    scope: &WorkspaceScope,
    workflow: &Workflow,
    attempts: usize,
) -> (usize, HashMap<Quota, usize>) {
    let tasks: Vec<_> = (0..attempts)
        .map(|_| {
            let (store, scope, run) = (
                store.clone(),
                scope.clone(),
                run_of(workflow, RunId::generate()),
            );
            tokio::spawn(async move { store.enqueue_run(&scope, run).await })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = HashMap::new();
    for task in tasks {
        match task.await.expect("the task ends") {
            Ok(_) => admitted += 1,
            Err(DomainError::QuotaExceeded { quota, .. }) => {
                *refused.entry(quota).or_default() += 1
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    (admitted, refused)
}

async fn concurrent_runs_never_pass_the_month_or_the_queue_together(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, monthly) = t.workspace(&ada, "Monthly").await;
    let (_, queued) = t.workspace(&ada, "Queued").await;
    let store = t
        .store
        .clone()
        .with_quota_defaults(limits(&[(Quota::RunsPerMonth, 5)]));
    let workflow = workflows::create(&t, &monthly, "Nightly").await;
    let (admitted, refused) = enqueue_concurrently(&store, &monthly, &workflow, 12).await;
    assert_eq!(admitted, 5);
    assert_eq!(refused.get(&Quota::RunsPerMonth), Some(&7));

    let store = t
        .store
        .clone()
        .with_quota_defaults(limits(&[(Quota::QueuedRuns, 3)]));
    let workflow = workflows::create(&t, &queued, "Nightly").await;
    let (admitted, refused) = enqueue_concurrently(&store, &queued, &workflow, 10).await;
    assert_eq!(admitted, 3);
    assert_eq!(refused.get(&Quota::QueuedRuns), Some(&7));
}

async fn concurrent_members_never_pass_the_limit_together(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Team").await;
    let store = t
        .store
        .clone()
        .with_quota_defaults(limits(&[(Quota::Members, 4)]));
    let mut users = Vec::new();
    for index in 0..8 {
        users.push(t.user(&format!("user{index}")).await);
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (store, scope, id) = (store.clone(), scope.clone(), user.id);
            tokio::spawn(async move { store.add_member(&scope, id, Role::Editor).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.expect("the task ends") {
            Ok(_) => added += 1,
            Err(DomainError::QuotaExceeded {
                quota: Quota::Members,
                limit: 4,
            }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(added, 3, "the owner and three members make four");
    assert_eq!(store.members(&scope).await.expect("members").len(), 4);
}

async fn a_refused_run_leaves_no_row_and_no_count(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Team").await;
    let store = t
        .store
        .clone()
        .with_quota_defaults(limits(&[(Quota::QueuedRuns, 1), (Quota::RunsPerMonth, 10)]));
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    store
        .enqueue_run(&scope, run_of(&workflow, RunId::generate()))
        .await
        .expect("the first run is admitted");
    let refused_id = RunId::generate();
    let refused = store
        .enqueue_run(&scope, run_of(&workflow, refused_id))
        .await;
    assert!(matches!(
        refused,
        Err(DomainError::QuotaExceeded {
            quota: Quota::QueuedRuns,
            limit: 1
        })
    ));
    assert!(store.run(&scope, refused_id).await.expect("read").is_none());
    let usage = store.quota_usage(&scope, Utc::now()).await.expect("usage");
    let of = |quota: Quota| usage.iter().find(|u| u.quota == quota).map(|u| u.used);
    assert_eq!(
        of(Quota::RunsPerMonth),
        Some(1),
        "the refused run is not counted"
    );
    assert_eq!(of(Quota::QueuedRuns), Some(1));
}

async fn metered_quotas_count_per_workspace_and_refuse_at_the_limit(t: Ctx) {
    let ada = t.user("ada").await;
    let (first, first_scope) = t.workspace(&ada, "First").await;
    let (_, second_scope) = t.workspace(&ada, "Second").await;
    let store = t.store.clone().with_quota_defaults(limits(&[
        (Quota::AiGenerationsPerDay, 2),
        (Quota::RunsPerMonth, 1),
    ]));
    let now = Utc::now();
    for _ in 0..2 {
        store
            .consume_quota(&first_scope, Quota::AiGenerationsPerDay, now)
            .await
            .expect("within the day's generations");
    }
    let refused = store
        .consume_quota(&first_scope, Quota::AiGenerationsPerDay, now)
        .await;
    assert!(matches!(
        refused,
        Err(DomainError::QuotaExceeded {
            quota: Quota::AiGenerationsPerDay,
            limit: 2
        })
    ));
    store
        .consume_quota(
            &first_scope,
            Quota::AiGenerationsPerDay,
            now + Duration::days(1),
        )
        .await
        .expect("a new day starts from zero");
    store
        .consume_quota(&second_scope, Quota::AiGenerationsPerDay, now)
        .await
        .expect("another workspace counts on its own");
    assert!(matches!(
        store.consume_quota(&first_scope, Quota::Members, now).await,
        Err(DomainError::Invalid(_))
    ));

    // A run executed in place is admitted, and given back when it is queued instead.
    store.admit_run_now(first.id, now).await.expect("admitted");
    assert!(matches!(
        store.admit_run_now(first.id, now).await,
        Err(DomainError::QuotaExceeded {
            quota: Quota::RunsPerMonth,
            limit: 1
        })
    ));
    store.refund_run_now(first.id, now).await.expect("refunded");
    store
        .admit_run_now(first.id, now)
        .await
        .expect("room again after the refund");
}

async fn an_override_lays_over_the_defaults_and_clears(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Team").await;
    let (other, _) = t.workspace(&ada, "Other").await;
    let store = t
        .store
        .clone()
        .with_quota_defaults(limits(&[(Quota::Members, 5), (Quota::Connections, 7)]));
    let set = QuotaOverride {
        limits: vec![
            (Quota::Members, Setting::Limited(50)),
            (Quota::Connections, Setting::Unlimited),
        ],
        running_runs: Some(3),
        scheduling_weight: Some(2),
    };
    store
        .set_quota_override(workspace.id, set)
        .await
        .expect("set");
    let merged = store
        .set_quota_override(
            workspace.id,
            QuotaOverride {
                limits: vec![(Quota::RetentionDays, Setting::Limited(9))],
                ..QuotaOverride::default()
            },
        )
        .await
        .expect("set more");
    assert_eq!(merged.limits.len(), 3, "earlier settings stay: {merged:?}");
    assert_eq!(merged.running_runs, Some(3));
    assert_eq!(
        store.quota_override(workspace.id).await.expect("read"),
        merged
    );

    let limits = store.quota_limits(workspace.id).await.expect("limits");
    assert_eq!(limits.members, Some(50));
    assert_eq!(limits.connections, None);
    assert_eq!(limits.retention_days, Some(9));
    let untouched = store.quota_limits(other.id).await.expect("limits");
    assert_eq!(
        (untouched.members, untouched.connections),
        (Some(5), Some(7))
    );
    let usage = store.quota_usage(&scope, Utc::now()).await.expect("usage");
    assert_eq!(usage.len(), Quota::ALL.len());
    assert!(
        usage
            .iter()
            .any(|u| u.quota == Quota::Members && u.limit == Some(50) && u.used == 1)
    );

    let listed = store.quota_overrides().await.expect("list");
    assert_eq!(
        listed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![workspace.id]
    );
    assert!(
        store
            .clear_quota_override(workspace.id)
            .await
            .expect("clear")
    );
    assert!(
        !store
            .clear_quota_override(workspace.id)
            .await
            .expect("clear again")
    );
    assert_eq!(
        store
            .quota_limits(workspace.id)
            .await
            .expect("limits")
            .members,
        Some(5)
    );

    let nowhere = store
        .set_quota_override(
            aos_domain::ids::WorkspaceId::generate(),
            QuotaOverride {
                running_runs: Some(1),
                ..QuotaOverride::default()
            },
        )
        .await;
    assert!(matches!(nowhere, Err(DomainError::NotFound("workspace"))));
}

/// A run id minted `days_ago` days ago: run ids carry their creation time.
fn id_days_ago(days_ago: i64) -> RunId {
    let at = Utc::now() - Duration::days(days_ago);
    let seconds = u64::try_from(at.timestamp()).expect("after 1970");
    RunId::from_uuid(Uuid::new_v7(Timestamp::from_unix(NoContext, seconds, 0)))
}

async fn retention_deletes_only_finished_runs_past_their_workspace_cutoff(t: Ctx) {
    let ada = t.user("ada").await;
    let (short, short_scope) = t.workspace(&ada, "Short").await;
    let (_, plain_scope) = t.workspace(&ada, "Plain").await;
    let store = t.store.clone();
    let short_flow = workflows::create(&t, &short_scope, "Nightly").await;
    let plain_flow = workflows::create(&t, &plain_scope, "Nightly").await;

    let finished = |scope: WorkspaceScope, workflow: Workflow, days_ago: i64| {
        let store = store.clone();
        async move {
            let id = id_days_ago(days_ago);
            store
                .enqueue_run(&scope, run_of(&workflow, id))
                .await
                .expect("queue");
            store
                .request_cancel(&scope, id, Utc::now())
                .await
                .expect("cancel: it ends at once");
            id
        }
    };
    let short_old = finished(short_scope.clone(), short_flow.clone(), 10).await;
    let short_recent = finished(short_scope.clone(), short_flow.clone(), 2).await;
    let plain_old = finished(plain_scope.clone(), plain_flow.clone(), 40).await;
    let plain_kept = finished(plain_scope.clone(), plain_flow.clone(), 10).await;
    let still_queued = id_days_ago(100);
    store
        .enqueue_run(&plain_scope, run_of(&plain_flow, still_queued))
        .await
        .expect("queue");

    let mut retention = AuditRetention::uniform(30);
    retention.per_workspace.insert(short.id, 5);
    let deleted = store
        .purge_expired_runs(&retention, Utc::now(), 1)
        .await
        .expect("purge one");
    assert_eq!(deleted, 1, "batches are bounded");
    let rest = store
        .purge_expired_runs(&retention, Utc::now(), 100)
        .await
        .expect("purge the rest");
    assert_eq!(deleted + rest, 2);

    let exists = |scope: WorkspaceScope, id: RunId| {
        let store = store.clone();
        async move { store.run(&scope, id).await.expect("read").is_some() }
    };
    assert!(!exists(short_scope.clone(), short_old).await);
    assert!(exists(short_scope.clone(), short_recent).await);
    assert!(!exists(plain_scope.clone(), plain_old).await);
    assert!(exists(plain_scope.clone(), plain_kept).await);
    assert!(
        exists(plain_scope.clone(), still_queued).await,
        "an unfinished run stays"
    );
    let events = store.run_events(&short_scope, short_old, 0, 100).await;
    assert!(
        matches!(&events, Ok(list) if list.is_empty())
            || matches!(events, Err(DomainError::NotFound(_))),
        "its events went with it"
    );
}

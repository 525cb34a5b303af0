//! Fair claiming across workspaces: the order in which claims serve workspaces, their
//! running limits, and the question a worker asks before making way for another workspace.
//!
//! Invariants protected: under contention, workspaces get slots in proportion to their
//! scheduling weights; a workspace's running limit is its own override, else the
//! instance's; a workspace that floods the queue delays another workspace's run only until
//! the next slot frees, however many runs it queued; concurrent claimers never share a run,
//! flood or not; a worker is told to make way only for a workspace below its share. Every
//! time is passed explicitly: no test sleeps or reads the clock.

use std::collections::BTreeSet;

use aos_domain::access::WorkspaceScope;
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{ClaimedRun, Journal, RunChange};
use aos_domain::ports::RunQueue;
use aos_domain::run::{RunId, RunStatus};
use aos_domain::workflow::Workflow;
use aos_persistence::Intent;
use chrono::Utc;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::runs::{T0, at, enqueue};
use crate::support::{Ctx, on_every_backend};
use crate::workflows;

on_every_backend!(
    claims_share_slots_in_proportion_to_weights,
    equal_weights_take_turns,
    a_running_limit_override_replaces_the_instance_default,
    a_flood_delays_another_workspace_only_until_a_slot_frees,
    a_worker_makes_way_only_for_a_workspace_below_its_share,
    concurrent_claims_under_a_flood_never_share_a_run,
);

/// Longer than any test takes, in the tests' own clock: no lease runs out by accident.
const LEASE_MS: i64 = 600_000;
const INSTANCE_LIMIT: u32 = 100;

/// One workspace of a test: its id, its owner's scope and a workflow to run.
struct Space {
    id: WorkspaceId,
    scope: WorkspaceScope,
    workflow: Workflow,
}

async fn space(t: &Ctx, name: &str) -> Space {
    let owner = t.user("owner").await;
    let (workspace, scope) = t.workspace(&owner, name).await;
    let workflow = workflows::create(t, &scope, name).await;
    Space {
        id: workspace.id,
        scope,
        workflow,
    }
}

/// Sets the workspace's `running_runs` and `scheduling_weight` overrides, as the quotas
/// CLI would; `None` keeps the instance's default.
async fn set_quota(t: &Ctx, space: &Space, running_runs: Option<i64>, weight: Option<i32>) {
    let txn = t
        .store
        .begin_scoped(&space.scope, Intent::Write)
        .await
        .expect("a transaction");
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO workspace_quotas (workspace_id, running_runs, scheduling_weight, updated_at) \
         VALUES ($1, $2, $3, $4)",
        [
            space.id.as_uuid().into(),
            running_runs.into(),
            weight.into(),
            Utc::now().into(),
        ],
    ))
    .await
    .expect("set the quota");
    txn.commit().await.expect("commit the quota");
}

/// Queues `count` runs of the workspace's workflow straight into the table, available
/// from `first_ms` on, one millisecond apart: a flood too big to queue one transaction at a
/// time. Their ids, oldest first.
async fn flood(t: &Ctx, space: &Space, count: usize, first_ms: i64) -> Vec<RunId> {
    const COLUMNS: usize = 7;
    const BATCH: usize = 500;
    let ids: Vec<RunId> = (0..count).map(|_| RunId::generate()).collect();
    let txn = t
        .store
        .begin_scoped(&space.scope, Intent::Write)
        .await
        .expect("a transaction");
    let backend = txn.get_database_backend();
    for (batch, chunk) in ids.chunks(BATCH).enumerate() {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * COLUMNS);
        for (index, id) in chunk.iter().enumerate() {
            let n = |column: usize| index * COLUMNS + column;
            rows.push(format!(
                "(${}, ${}, ${}, ${}, 'QUEUED', 'MANUAL', ${}, 1, ${}, ${})",
                n(1),
                n(2),
                n(3),
                n(4),
                n(5),
                n(6),
                n(7)
            ));
            let offset = i64::try_from(batch * BATCH + index).expect("a small flood");
            values.extend([
                id.as_uuid().into(),
                space.id.as_uuid().into(),
                space.workflow.id.as_uuid().into(),
                space.workflow.version.into(),
                json!({ "n": offset }).into(),
                (first_ms + offset).into(),
                at(first_ms + offset).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO runs (id, workspace_id, workflow_id, workflow_version, status, \
             trigger_kind, input, last_seq, available_at_ms, created_at) VALUES {}",
            rows.join(", ")
        );
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .expect("queue a flood");
    }
    txn.commit().await.expect("commit the flood");
    ids
}

async fn claim(t: &Ctx, worker: &str, now_ms: i64) -> Option<ClaimedRun> {
    t.store
        .claim(worker, now_ms, LEASE_MS, INSTANCE_LIMIT)
        .await
        .expect("claim")
}

/// Ends a claimed run, which frees its slot.
async fn finish(t: &Ctx, claimed: &ClaimedRun, now_ms: i64) {
    let journal = Journal {
        starts: Some(at(now_ms)),
        run: Some(RunChange::Finished {
            status: RunStatus::Succeeded,
            output: None,
            error: None,
            at: at(now_ms),
        }),
        ..Journal::default()
    };
    t.store
        .journal(&claimed.lease, journal, now_ms, LEASE_MS)
        .await
        .expect("finish the run");
}

async fn waiting_besides(t: &Ctx, space: &Space, now_ms: i64) -> bool {
    t.store
        .another_workspace_waiting(space.id, now_ms, INSTANCE_LIMIT)
        .await
        .expect("ask")
}

/// Which workspace each claim served, as the letter of its name.
fn letters(claims: &[ClaimedRun], spaces: &[(&Space, char)]) -> String {
    claims
        .iter()
        .map(|claimed| {
            spaces
                .iter()
                .find(|(space, _)| space.id == claimed.lease.workspace_id)
                .map_or('?', |(_, letter)| *letter)
        })
        .collect()
}

async fn claims_share_slots_in_proportion_to_weights(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    set_quota(&t, &a, None, Some(2)).await;
    flood(&t, &a, 40, T0).await;
    flood(&t, &b, 40, T0 + 1_000).await;

    let mut claims = Vec::new();
    for _ in 0..30 {
        claims.push(claim(&t, "w", T0 + 2_000).await.expect("a run"));
    }

    let order = letters(&claims, &[(&a, 'A'), (&b, 'B')]);
    // Fewest leases per unit of weight first; on a tie, the run waiting longest (A's).
    assert_eq!(&order[..11], "ABAABAABAAB", "weighted turns: {order}");
    assert_eq!(
        (order.matches('A').count(), order.matches('B').count()),
        (20, 10),
        "2:1 under contention: {order}"
    );
}

async fn equal_weights_take_turns(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    let a_runs = flood(&t, &a, 5, T0).await;
    let b_runs = flood(&t, &b, 5, T0 + 1_000).await;

    let mut claims = Vec::new();
    while let Some(claimed) = claim(&t, "w", T0 + 2_000).await {
        claims.push(claimed);
    }

    assert_eq!(letters(&claims, &[(&a, 'A'), (&b, 'B')]), "ABABABABAB");
    let ids: Vec<RunId> = claims.iter().map(|claimed| claimed.run.id).collect();
    let alternating: Vec<RunId> = a_runs
        .iter()
        .zip(&b_runs)
        .flat_map(|(a_run, b_run)| [*a_run, *b_run])
        .collect();
    assert_eq!(ids, alternating, "each workspace's runs oldest first");
}

async fn a_running_limit_override_replaces_the_instance_default(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    let c = space(&t, "C").await;
    let d = space(&t, "D").await;
    set_quota(&t, &a, Some(3), None).await;
    set_quota(&t, &c, Some(1), None).await;
    // A weight alone leaves the instance's running limit in place.
    set_quota(&t, &d, None, Some(5)).await;
    for (index, space) in [&a, &b, &c, &d].into_iter().enumerate() {
        flood(&t, space, 5, T0 + 100 * i64::try_from(index).expect("few")).await;
    }
    let claim_with_default_two = || {
        let store = t.store.clone();
        async move {
            store
                .claim("w", T0 + 1_000, LEASE_MS, 2)
                .await
                .expect("claim")
        }
    };

    let mut claims = Vec::new();
    while let Some(claimed) = claim_with_default_two().await {
        claims.push(claimed);
    }

    let spaces = [(&a, 'A'), (&b, 'B'), (&c, 'C'), (&d, 'D')];
    let order = letters(&claims, &spaces);
    let count = |letter: char| order.matches(letter).count();
    assert_eq!(
        [count('A'), count('B'), count('C'), count('D')],
        [3, 2, 1, 2],
        "each at its own limit or the default: {order}"
    );
    let a_claim = claims
        .iter()
        .find(|claimed| claimed.lease.workspace_id == a.id)
        .expect("one of A's");
    finish(&t, a_claim, T0 + 1_001).await;
    let next = claim_with_default_two().await.expect("A's freed slot");
    assert_eq!(next.lease.workspace_id, a.id, "only A had a slot free");
    assert_eq!(claim_with_default_two().await, None);
}

async fn a_flood_delays_another_workspace_only_until_a_slot_frees(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    // A may fill a whole pool of eight workers, and more.
    set_quota(&t, &a, Some(64), None).await;
    let a_runs = flood(&t, &a, 10_000, T0).await;
    let now = T0 + 20_000;
    let mut pool = Vec::new();
    for worker in 0..8 {
        pool.push(
            claim(&t, &format!("w{worker}"), now)
                .await
                .expect("A's run"),
        );
    }
    assert_eq!(
        pool.iter()
            .map(|claimed| claimed.run.id)
            .collect::<Vec<_>>(),
        a_runs[..8],
        "A's runs oldest first"
    );

    // B's single run is the newest run in the queue, behind all ten thousand of A's.
    let b_run = enqueue(&t, &b.scope, &b.workflow, now).await;
    assert!(
        waiting_besides(&t, &a, now).await,
        "B waits while A fills the pool"
    );
    let done = pool.remove(0);
    finish(&t, &done, now + 1).await;
    let next = claim(&t, "w0", now + 1).await.expect("a run");

    assert_eq!(next.run.id, b_run.id, "B's run takes the first free slot");
    assert!(
        !waiting_besides(&t, &a, now + 1).await,
        "B has no run waiting"
    );
    let after = claim(&t, "w8", now + 1).await.expect("a run");
    assert_eq!(after.run.id, a_runs[8], "then A goes on where it was");
}

async fn a_worker_makes_way_only_for_a_workspace_below_its_share(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    let c = space(&t, "C").await;
    flood(&t, &a, 10, T0).await;
    let mut a_claims = Vec::new();
    for _ in 0..3 {
        a_claims.push(claim(&t, "w", T0 + 100).await.expect("A's run"));
    }
    assert!(
        !waiting_besides(&t, &a, T0 + 100).await,
        "nobody else has a run"
    );
    let b_runs = flood(&t, &b, 2, T0 + 5_000).await;
    let due = T0 + 5_010;
    assert!(
        !waiting_besides(&t, &a, T0 + 100).await,
        "B's runs are not due yet"
    );
    assert!(
        waiting_besides(&t, &a, due).await,
        "B holds no slot and has a due run"
    );

    let b_claim = claim(&t, "w", due).await.expect("a run");
    assert_eq!(b_claim.run.id, b_runs[0]);
    assert!(
        waiting_besides(&t, &a, due).await,
        "B holds one slot to A's three: one more would still leave it below A"
    );
    finish(&t, &a_claims.remove(0), due + 1).await;
    assert!(
        !waiting_besides(&t, &a, due + 1).await,
        "one to two: a slot moving over would only turn it around"
    );
    assert!(
        !waiting_besides(&t, &b, due + 1).await,
        "B, below its share, never makes way for A"
    );

    // C, with three times A's weight, is below its share even with as many slots as A.
    set_quota(&t, &c, Some(3), Some(3)).await;
    flood(&t, &c, 4, T0 + 5_005).await;
    for _ in 0..2 {
        let claimed = claim(&t, "w", due + 2).await.expect("a run");
        assert_eq!(
            claimed.lease.workspace_id, c.id,
            "C is furthest below its share"
        );
    }
    assert!(
        waiting_besides(&t, &a, due + 2).await,
        "two slots each, and C weighs three times as much"
    );
    let third = claim(&t, "w", due + 2).await.expect("a run");
    assert_eq!(third.lease.workspace_id, c.id);
    assert!(
        !waiting_besides(&t, &a, due + 2).await,
        "C is at its running limit, and B is not far enough below its share"
    );
}

async fn concurrent_claims_under_a_flood_never_share_a_run(t: Ctx) {
    let a = space(&t, "A").await;
    let b = space(&t, "B").await;
    let c = space(&t, "C").await;
    flood(&t, &a, 10_000, T0).await;
    flood(&t, &b, 4, T0 + 10).await;
    flood(&t, &c, 4, T0 + 20).await;

    let claims = (0..24).map(|n| {
        let store = t.store.clone();
        tokio::spawn(async move {
            store
                .claim(&format!("w{n}"), T0 + 20_000, LEASE_MS, INSTANCE_LIMIT)
                .await
        })
    });
    let taken: Vec<Option<ClaimedRun>> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("claim"))
        .collect();

    // A claimer that finds a workspace's runs all held by concurrent claims tries the
    // next workspace, and A always has one left.
    assert!(
        taken.iter().all(Option::is_some),
        "every claimer got a run: {taken:?}"
    );
    let ids: Vec<RunId> = taken.iter().flatten().map(|c| c.run.id).collect();
    let distinct: BTreeSet<RunId> = ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "a run was claimed twice: {ids:?}"
    );
}

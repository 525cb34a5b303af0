//! The audit log's store.
//!
//! Invariants protected: a workspace's log lists only its own records, newest first,
//! filtered and paged; the port has no way to change a record (there is no update method
//! to call, and on Postgres the tenant role may neither update nor delete, and sees no
//! other workspace's rows even with unfiltered SQL); retention deletes only records older
//! than their workspace's number of days, in batches no larger than asked.

use std::net::{IpAddr, Ipv4Addr};

use aos_domain::access::Actor;
use aos_domain::audit::{
    AuditEvent, AuditEventId, AuditFilter, AuditRetention, AuditStore, AuditTarget, SUCCESS,
};
use aos_domain::ids::{ApiTokenId, UserId, WorkspaceId};
use aos_domain::page::PageRequest;
use aos_persistence::Intent;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::{Ctx, on_every_backend, on_postgres};

on_every_backend!(
    a_workspace_lists_its_own_records_newest_first,
    filters_narrow_the_log,
    pages_walk_the_log_without_gaps_or_repeats,
    retention_deletes_only_expired_records_in_batches,
);

fn record(
    workspace_id: WorkspaceId,
    actor: Actor,
    action: &str,
    outcome: &str,
    at: DateTime<Utc>,
) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        workspace_id,
        actor,
        action: action.to_owned(),
        target: Some(AuditTarget {
            kind: "Workflow".to_owned(),
            id: format!("target-of-{action}"),
        }),
        client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        at: at.trunc_subsecs(3),
        outcome: outcome.to_owned(),
    }
}

async fn append(t: &Ctx, event: &AuditEvent) {
    t.store
        .append_audit_event(event)
        .await
        .expect("append an audit event");
}

fn all() -> PageRequest<AuditEventId> {
    PageRequest::new(Some(100), None).expect("a valid page")
}

async fn a_workspace_lists_its_own_records_newest_first(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (a, a_scope) = t.workspace(&ada, "A").await;
    let (b, b_scope) = t.workspace(&bob, "B").await;
    let now = Utc::now();
    let token = Actor::ApiToken {
        id: ApiTokenId::generate(),
        on_behalf_of: ada.id,
    };
    let first = record(a.id, Actor::User(ada.id), "createWorkflow", SUCCESS, now);
    let second = record(a.id, token, "runWorkflow", "FORBIDDEN", now);
    let elsewhere = record(b.id, Actor::User(bob.id), "createWorkflow", SUCCESS, now);
    for event in [&first, &second, &elsewhere] {
        append(&t, event).await;
    }

    let a_log = t
        .store
        .audit_events(&a_scope, &AuditFilter::default(), all())
        .await
        .expect("list A's log");
    let b_log = t
        .store
        .audit_events(&b_scope, &AuditFilter::default(), all())
        .await
        .expect("list B's log");

    assert_eq!(a_log.items, vec![second, first]);
    assert!(!a_log.has_next_page);
    assert_eq!(b_log.items, vec![elsewhere]);
}

async fn filters_narrow_the_log(t: Ctx) {
    let ada = t.user("ada").await;
    let eve = t.user("eve").await;
    let (a, scope) = t.workspace(&ada, "A").await;
    let now = Utc::now();
    let old = record(
        a.id,
        Actor::User(ada.id),
        "createWorkflow",
        SUCCESS,
        now - Duration::hours(2),
    );
    let refused = record(
        a.id,
        Actor::User(eve.id),
        "deleteWorkflow",
        "FORBIDDEN",
        now,
    );
    let recent = record(a.id, Actor::User(ada.id), "updateWorkflow", SUCCESS, now);
    for event in [&old, &refused, &recent] {
        append(&t, event).await;
    }
    let list = |filter: AuditFilter| {
        let t = t.clone();
        let scope = scope.clone();
        async move {
            t.store
                .audit_events(&scope, &filter, all())
                .await
                .expect("list the log")
                .items
        }
    };

    let by_action = list(AuditFilter {
        action: Some("deleteWorkflow".into()),
        ..AuditFilter::default()
    })
    .await;
    let by_actor = list(AuditFilter {
        actor_id: Some(ada.id.as_uuid()),
        ..AuditFilter::default()
    })
    .await;
    let by_target = list(AuditFilter {
        target_id: Some("target-of-updateWorkflow".into()),
        ..AuditFilter::default()
    })
    .await;
    let by_outcome = list(AuditFilter {
        outcome: Some("FORBIDDEN".into()),
        ..AuditFilter::default()
    })
    .await;
    let in_window = list(AuditFilter {
        since: Some(now - Duration::hours(3)),
        until: Some(now - Duration::hours(1)),
        ..AuditFilter::default()
    })
    .await;

    assert_eq!(by_action, vec![refused.clone()]);
    assert_eq!(by_actor, vec![recent.clone(), old.clone()]);
    assert_eq!(by_target, vec![recent]);
    assert_eq!(by_outcome, vec![refused]);
    assert_eq!(in_window, vec![old]);
}

async fn pages_walk_the_log_without_gaps_or_repeats(t: Ctx) {
    let ada = t.user("ada").await;
    let (a, scope) = t.workspace(&ada, "A").await;
    let mut appended = Vec::new();
    for n in 0..5 {
        let event = record(
            a.id,
            Actor::User(ada.id),
            &format!("action{n}"),
            SUCCESS,
            Utc::now(),
        );
        append(&t, &event).await;
        appended.push(event.id);
    }

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = t
            .store
            .audit_events(
                &scope,
                &AuditFilter::default(),
                PageRequest::new(Some(2), after).expect("a valid page"),
            )
            .await
            .expect("a page of the log");
        seen.extend(page.items.iter().map(|event| event.id));
        after = page.items.last().map(|event| event.id);
        if !page.has_next_page {
            break;
        }
    }

    appended.reverse();
    assert_eq!(seen, appended);
}

async fn retention_deletes_only_expired_records_in_batches(t: Ctx) {
    let ada = t.user("ada").await;
    let (a, a_scope) = t.workspace(&ada, "A").await;
    let (b, b_scope) = t.workspace(&ada, "B").await;
    let now = Utc::now();
    let actor = Actor::User(ada.id);
    // A keeps 7 days (its own number), B the default of 30.
    let mut retention = AuditRetention::uniform(30);
    retention.per_workspace.insert(a.id, 7);
    for _ in 0..3 {
        append(
            &t,
            &record(a.id, actor, "old", SUCCESS, now - Duration::days(10)),
        )
        .await;
        append(
            &t,
            &record(b.id, actor, "old", SUCCESS, now - Duration::days(40)),
        )
        .await;
    }
    let a_kept = record(a.id, actor, "recent", SUCCESS, now - Duration::days(5));
    let b_kept = record(b.id, actor, "kept", SUCCESS, now - Duration::days(10));
    append(&t, &a_kept).await;
    append(&t, &b_kept).await;

    let first_batch = t
        .store
        .purge_audit_events(&retention, now, 4)
        .await
        .expect("a retention batch");
    let mut rest = 0;
    loop {
        let deleted = t
            .store
            .purge_audit_events(&retention, now, 4)
            .await
            .expect("a retention batch");
        rest += deleted;
        if deleted < 4 {
            break;
        }
    }

    assert_eq!(first_batch, 4);
    assert_eq!(first_batch + rest, 6);
    let list = |scope| {
        let t = t.clone();
        async move {
            t.store
                .audit_events(&scope, &AuditFilter::default(), all())
                .await
                .expect("list the log")
                .items
        }
    };
    assert_eq!(list(a_scope).await, vec![a_kept]);
    assert_eq!(list(b_scope).await, vec![b_kept]);
}

/// Raw SQL under the tenant role, modelling a repository bug the database must contain.
mod tenant_role {
    use super::*;

    on_postgres!(the_tenant_role_can_neither_change_nor_cross_the_log);

    async fn the_tenant_role_can_neither_change_nor_cross_the_log(t: Ctx) {
        let ada = t.user("ada").await;
        let bob = t.user("bob").await;
        let (a, a_scope) = t.workspace(&ada, "A").await;
        let (b, _) = t.workspace(&bob, "B").await;
        append(
            &t,
            &record(a.id, Actor::User(ada.id), "mine", SUCCESS, Utc::now()),
        )
        .await;
        append(
            &t,
            &record(b.id, Actor::User(bob.id), "theirs", SUCCESS, Utc::now()),
        )
        .await;

        let txn = t
            .store
            .begin_scoped(&a_scope, Intent::Write)
            .await
            .expect("scoped transaction");
        let visible: i64 = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) FROM audit_events",
            ))
            .await
            .expect("count the log")
            .expect("one row")
            .try_get_by_index(0)
            .expect("a count");
        assert_eq!(visible, 1, "only A's record is visible to A's scope");
        let update = txn
            .execute_unprepared("UPDATE audit_events SET outcome = 'SUCCESS'")
            .await;
        assert!(
            update
                .as_ref()
                .is_err_and(|error| error.to_string().contains("permission denied")),
            "the tenant role may not update the log: {update:?}"
        );
        drop(txn);

        let txn = t
            .store
            .begin_scoped(&a_scope, Intent::Write)
            .await
            .expect("scoped transaction");
        let delete = txn.execute_unprepared("DELETE FROM audit_events").await;
        assert!(
            delete
                .as_ref()
                .is_err_and(|error| error.to_string().contains("permission denied")),
            "the tenant role may not delete from the log: {delete:?}"
        );
        drop(txn);

        let unknown = UserId::generate();
        let txn = t
            .store
            .begin_scoped(&a_scope, Intent::Write)
            .await
            .expect("scoped transaction");
        let forged = txn
            .execute_unprepared(&format!(
                "INSERT INTO audit_events (id, workspace_id, actor_kind, actor_id, actor_user_id, \
                 action, at_ms, outcome) VALUES ('{}', '{}', 'user', '{unknown}', '{unknown}', \
                 'forged', 0, 'SUCCESS')",
                AuditEventId::generate(),
                b.id
            ))
            .await;
        assert!(
            forged
                .as_ref()
                .is_err_and(|error| error.to_string().contains("row-level security")),
            "A's scope may not write into B's log: {forged:?}"
        );
    }
}

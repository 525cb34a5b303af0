//! `AuditStore`: the audit log, append-only.
//!
//! Invariants: this file inserts and reads `audit_events` and deletes them only by age
//! (`purge_audit_events`); nothing here updates a row. Reads filter by the scope's
//! workspace inside `SeaStore::begin_scoped` (row-level security on Postgres). Appends and
//! retention run as the connecting role, outside any scope: an append records refusals
//! too, where no scope was granted, and retention spans workspaces; on Postgres the tenant
//! role could not delete here anyway (it has no UPDATE or DELETE on the table). Retention
//! deletes at most one batch per call, by primary key, so it never holds many locks for
//! long.

use std::net::IpAddr;

use aos_domain::access::{Actor, WorkspaceScope};
use aos_domain::audit::{
    AuditEvent, AuditEventId, AuditFilter, AuditRetention, AuditStore, AuditTarget,
};
use aos_domain::error::DomainResult;
use aos_domain::ids::{ApiTokenId, UserId, WorkspaceId};
use aos_domain::page::{Page, PageRequest};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::page_from;
use super::{Retained, purge_by_retention};
use crate::entities::audit_events;
use crate::error::{corrupt_row, internal};
use crate::scoped::Intent;
use crate::store::SeaStore;

const USER: &str = "user";
const TOKEN: &str = "token";

#[async_trait]
impl AuditStore for SeaStore {
    async fn append_audit_event(&self, event: &AuditEvent) -> DomainResult<()> {
        let txn = self.begin_unscoped_write().await?;
        row(event)
            .into_active_model()
            .insert(&*txn)
            .await
            .map_err(internal("append an audit event"))?;
        txn.commit()
            .await
            .map_err(internal("commit an audit event"))
    }

    async fn audit_events(
        &self,
        scope: &WorkspaceScope,
        filter: &AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> DomainResult<Page<AuditEvent>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let mut query = audit_events::Entity::find()
            .filter(audit_events::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()));
        if let Some(after) = page.after {
            query = query.filter(audit_events::Column::Id.lt(after.as_uuid()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_events::Column::Action.eq(action.as_str()));
        }
        if let Some(actor_id) = filter.actor_id {
            query = query.filter(audit_events::Column::ActorId.eq(actor_id));
        }
        if let Some(target_id) = &filter.target_id {
            query = query.filter(audit_events::Column::TargetId.eq(target_id.as_str()));
        }
        if let Some(outcome) = &filter.outcome {
            query = query.filter(audit_events::Column::Outcome.eq(outcome.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_events::Column::AtMs.gte(since.timestamp_millis()));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_events::Column::AtMs.lt(until.timestamp_millis()));
        }
        let rows = query
            .order_by_desc(audit_events::Column::Id)
            .limit(page.first + 1)
            .all(&*txn)
            .await
            .map_err(internal("list audit events"))?;
        txn.commit()
            .await
            .map_err(internal("end an audit log read"))?;
        page_from(rows, page.first, event)
    }

    async fn purge_audit_events(
        &self,
        retention: &AuditRetention,
        now: DateTime<Utc>,
        batch: u64,
    ) -> DomainResult<u64> {
        purge_by_retention(retention, now, batch, |which, cutoff, limit| {
            let workspaces = match which {
                Retained::Only(workspace) => audit_events::Column::WorkspaceId.eq(workspace),
                Retained::AllBut(others) => audit_events::Column::WorkspaceId.is_not_in(others),
            };
            let expired = Condition::all()
                .add(workspaces)
                .add(audit_events::Column::AtMs.lt(cutoff.timestamp_millis()));
            self.delete_oldest(expired, limit)
        })
        .await
    }
}

impl SeaStore {
    /// Deletes up to `limit` of the oldest rows matching `expired`, in one short
    /// transaction.
    async fn delete_oldest(&self, expired: Condition, limit: u64) -> DomainResult<u64> {
        let txn = self.begin_unscoped_write().await?;
        let ids: Vec<Uuid> = audit_events::Entity::find()
            .select_only()
            .column(audit_events::Column::Id)
            .filter(expired)
            .order_by_asc(audit_events::Column::AtMs)
            .limit(limit)
            .into_tuple()
            .all(&*txn)
            .await
            .map_err(internal("find expired audit events"))?;
        if ids.is_empty() {
            return Ok(0);
        }
        let result = audit_events::Entity::delete_many()
            .filter(audit_events::Column::Id.is_in(ids))
            .exec(&*txn)
            .await
            .map_err(internal("delete expired audit events"))?;
        txn.commit()
            .await
            .map_err(internal("commit an audit retention batch"))?;
        Ok(result.rows_affected)
    }
}

fn row(event: &AuditEvent) -> audit_events::Model {
    let (actor_kind, actor_id) = match event.actor {
        Actor::User(id) => (USER, id.as_uuid()),
        Actor::ApiToken { id, .. } => (TOKEN, id.as_uuid()),
    };
    audit_events::Model {
        id: event.id.as_uuid(),
        workspace_id: event.workspace_id.as_uuid(),
        actor_kind: actor_kind.to_owned(),
        actor_id,
        actor_user_id: event.actor.user_id().as_uuid(),
        action: event.action.clone(),
        target_kind: event.target.as_ref().map(|target| target.kind.clone()),
        target_id: event.target.as_ref().map(|target| target.id.clone()),
        client_ip: event.client_ip.map(|ip| ip.to_string()),
        at_ms: event.at.timestamp_millis(),
        outcome: event.outcome.clone(),
    }
}

fn event(row: audit_events::Model) -> DomainResult<AuditEvent> {
    let actor = match row.actor_kind.as_str() {
        USER => Actor::User(UserId::from_uuid(row.actor_id)),
        TOKEN => Actor::ApiToken {
            id: ApiTokenId::from_uuid(row.actor_id),
            on_behalf_of: UserId::from_uuid(row.actor_user_id),
        },
        _ => return Err(corrupt_row("audit event actor kind")),
    };
    let target = match (row.target_kind, row.target_id) {
        (Some(kind), Some(id)) => Some(AuditTarget { kind, id }),
        _ => None,
    };
    let client_ip = row
        .client_ip
        .map(|ip| ip.parse::<IpAddr>())
        .transpose()
        .map_err(|_| corrupt_row("audit event client IP"))?;
    let at = Utc
        .timestamp_millis_opt(row.at_ms)
        .single()
        .ok_or_else(|| corrupt_row("audit event time"))?;
    Ok(AuditEvent {
        id: AuditEventId::from_uuid(row.id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        actor,
        action: row.action,
        target,
        client_ip,
        at,
        outcome: row.outcome,
    })
}

//! `WorkflowStore`: workflows and their immutable versions, always through a scope.
//!
//! Invariants: every query filters by `scope.workspace_id()` inside
//! `SeaStore::begin_scoped`. An update locks the workflow row (`FOR UPDATE` on Postgres;
//! the write lock taken at `BEGIN IMMEDIATE` on SQLite) before reading the current version,
//! so concurrent updates queue up and each stores the next number; the primary key on
//! (workflow_id, version) would reject a duplicate rather than overwrite history.

use aos_domain::access::WorkspaceScope;
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::WorkflowId;
use aos_domain::page::{Page, PageRequest};
use aos_domain::ports::WorkflowStore;
use aos_domain::quota::Quota;
use aos_domain::workflow::{NewWorkflow, Workflow, WorkflowChange, WorkflowVersion};
use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef, RelationTrait, Select, SelectTwo,
};
use uuid::Uuid;

use super::quotas::refuse_past_limit;
use crate::convert;
use crate::entities::{workflow_versions, workflows};
use crate::error::{corrupt_row, internal};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// Joins each workflow to the row of its current version.
pub(super) fn current_version() -> RelationDef {
    workflows::Relation::WorkflowVersions
        .def()
        .on_condition(|workflow, version| {
            Expr::col((version, workflow_versions::Column::Version))
                .equals((workflow, workflows::Column::CurrentVersion))
                .into_condition()
        })
}

/// The workflows of one workspace, each with its current version.
fn in_workspace(workspace_id: Uuid) -> SelectTwo<workflows::Entity, workflow_versions::Entity> {
    workflows::Entity::find()
        .filter(workflows::Column::WorkspaceId.eq(workspace_id))
        .select_also(workflow_versions::Entity)
        .join(JoinType::InnerJoin, current_version())
}

fn assemble(
    (row, current): (workflows::Model, Option<workflow_versions::Model>),
) -> DomainResult<Workflow> {
    let current = current.ok_or_else(|| corrupt_row("workflow without its current version"))?;
    convert::workflow(row, current)
}

async fn one_workflow(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: WorkflowId,
) -> DomainResult<Option<Workflow>> {
    in_workspace(workspace_id)
        .filter(workflows::Column::Id.eq(id.as_uuid()))
        .one(db)
        .await
        .map_err(internal("read a workflow"))?
        .map(assemble)
        .transpose()
}

fn locked_row(workspace_id: Uuid, id: WorkflowId) -> Select<workflows::Entity> {
    workflows::Entity::find_by_id(id.as_uuid())
        .filter(workflows::Column::WorkspaceId.eq(workspace_id))
        .lock_exclusive()
}

async fn commit(txn: Txn) -> DomainResult<()> {
    txn.commit()
        .await
        .map_err(internal("commit a workflow change"))
}

#[async_trait]
impl WorkflowStore for SeaStore {
    async fn create_workflow(
        &self,
        scope: &WorkspaceScope,
        workflow: NewWorkflow,
    ) -> DomainResult<Workflow> {
        let now = timestamps::now();
        let row = workflows::Model {
            id: WorkflowId::generate().as_uuid(),
            workspace_id: scope.workspace_id().as_uuid(),
            name: workflow.name.as_str().to_owned(),
            description: workflow.description.map(|d| d.as_str().to_owned()),
            current_version: 1,
            active: false,
            webhook_key: workflow.webhook_key,
            created_at: now,
            updated_at: now,
        };
        let first = workflow_versions::Model {
            workflow_id: row.id,
            workspace_id: row.workspace_id,
            version: row.current_version,
            name: row.name.clone(),
            description: row.description.clone(),
            definition: workflow.definition,
            created_by: scope.actor().user_id().as_uuid(),
            created_at: now,
        };
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        // Webhook keys are random: a clash is not the caller's to fix, so it stays internal.
        workflows::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("create a workflow"))?;
        workflow_versions::Entity::insert(first.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("store a workflow's first version"))?;
        commit(txn).await?;
        convert::workflow(row, first)
    }

    async fn workflow(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
    ) -> DomainResult<Option<Workflow>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let workflow = one_workflow(&txn, scope.workspace_id().as_uuid(), id).await?;
        commit(txn).await?;
        Ok(workflow)
    }

    async fn workflows(
        &self,
        scope: &WorkspaceScope,
        page: PageRequest<WorkflowId>,
    ) -> DomainResult<Page<Workflow>> {
        let mut query = in_workspace(scope.workspace_id().as_uuid());
        if let Some(after) = page.after {
            // Newest first, and UUIDv7 ids grow with time: "after" means "older than".
            query = query.filter(workflows::Column::Id.lt(after.as_uuid()));
        }
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        // One extra row tells whether another page follows.
        let rows = query
            .order_by_desc(workflows::Column::Id)
            .limit(page.first.saturating_add(1))
            .all(&txn)
            .await
            .map_err(internal("list workflows"))?;
        commit(txn).await?;
        super::page_from(rows, page.first, assemble)
    }

    async fn update_workflow(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
        change: WorkflowChange,
    ) -> DomainResult<Workflow> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let mut row = locked_row(workspace_id, id)
            .one(&txn)
            .await
            .map_err(internal("lock a workflow"))?
            .ok_or(DomainError::NotFound("workflow"))?;
        let current = workflow_versions::Entity::find_by_id((row.id, row.current_version))
            .one(&txn)
            .await
            .map_err(internal("read a workflow's current version"))?
            .ok_or_else(|| corrupt_row("workflow without its current version"))?;
        let now = timestamps::now();
        if let Some(name) = change.name {
            row.name = name.as_str().to_owned();
        }
        if let Some(description) = change.description {
            row.description = description.map(|d| d.as_str().to_owned());
        }
        row.current_version += 1;
        row.updated_at = now;
        let next = workflow_versions::Model {
            workflow_id: row.id,
            workspace_id,
            version: row.current_version,
            name: row.name.clone(),
            description: row.description.clone(),
            definition: change.definition.unwrap_or(current.definition),
            created_by: scope.actor().user_id().as_uuid(),
            created_at: now,
        };
        workflow_versions::Entity::insert(next.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("store a workflow version"))?;
        workflows::Entity::update_many()
            .col_expr(workflows::Column::Name, Expr::value(row.name.clone()))
            .col_expr(
                workflows::Column::Description,
                Expr::value(row.description.clone()),
            )
            .col_expr(
                workflows::Column::CurrentVersion,
                Expr::value(row.current_version),
            )
            .col_expr(workflows::Column::UpdatedAt, Expr::value(now))
            .filter(workflows::Column::Id.eq(row.id))
            .filter(workflows::Column::WorkspaceId.eq(workspace_id))
            .exec(&txn)
            .await
            .map_err(internal("move a workflow to its new version"))?;
        commit(txn).await?;
        convert::workflow(row, next)
    }

    async fn set_workflow_active(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
        active: bool,
    ) -> DomainResult<Workflow> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let updated = workflows::Entity::update_many()
            .col_expr(workflows::Column::Active, Expr::value(active))
            .col_expr(workflows::Column::UpdatedAt, Expr::value(timestamps::now()))
            .filter(workflows::Column::Id.eq(id.as_uuid()))
            .filter(workflows::Column::WorkspaceId.eq(workspace_id))
            .exec(&txn)
            .await
            .map_err(internal("activate or deactivate a workflow"))?;
        if updated.rows_affected == 0 {
            return Err(DomainError::NotFound("workflow"));
        }
        if active {
            refuse_past_limit(
                &txn,
                &self.quota_defaults,
                workspace_id,
                Quota::ActiveWorkflows,
            )
            .await?;
        }
        let workflow = one_workflow(&txn, workspace_id, id)
            .await?
            .ok_or(DomainError::NotFound("workflow"))?;
        commit(txn).await?;
        Ok(workflow)
    }

    async fn delete_workflow(&self, scope: &WorkspaceScope, id: WorkflowId) -> DomainResult<()> {
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        // Versions go with it through the cascading foreign key.
        let deleted = workflows::Entity::delete_many()
            .filter(workflows::Column::Id.eq(id.as_uuid()))
            .filter(workflows::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .exec(&txn)
            .await
            .map_err(internal("delete a workflow"))?;
        if deleted.rows_affected == 0 {
            return Err(DomainError::NotFound("workflow"));
        }
        commit(txn).await
    }

    async fn workflow_versions(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
    ) -> DomainResult<Vec<WorkflowVersion>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let rows = workflow_versions::Entity::find()
            .filter(workflow_versions::Column::WorkflowId.eq(id.as_uuid()))
            .filter(workflow_versions::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .order_by_desc(workflow_versions::Column::Version)
            .all(&txn)
            .await
            .map_err(internal("list workflow versions"))?;
        commit(txn).await?;
        rows.into_iter().map(convert::workflow_version).collect()
    }
}

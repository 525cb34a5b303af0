//! `TriggerStore`: what webhooks and schedules need to start runs on behalf of no caller.
//!
//! Unscoped like the queue: a webhook reaches a workflow only through the secret key in its
//! URL, and every write still names the workspace the key resolved to.

use aos_domain::error::DomainResult;
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::journal::{NewRun, Run, StepRecord};
use aos_domain::ports::{TriggerStore, TriggerTarget};
use aos_domain::run::RunId;
use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, JoinType, QueryFilter, QuerySelect};

use super::runs::{insert_run, steps_of};
use super::workflows::current_version;
use crate::convert;
use crate::entities::{runs, schedule_ticks, workflow_versions, workflows};
use crate::error::internal;
use crate::store::SeaStore;
use crate::timestamps;

#[async_trait]
impl TriggerStore for SeaStore {
    async fn webhook_target(&self, key: &str) -> DomainResult<Option<TriggerTarget>> {
        // One query: every webhook call starts here.
        let found = workflows::Entity::find()
            .filter(workflows::Column::WebhookKey.eq(key))
            .select_also(workflow_versions::Entity)
            .join(JoinType::InnerJoin, current_version())
            .one(&self.db)
            .await
            .map_err(internal("find a webhook's workflow"))?;
        Ok(found.and_then(|(workflow, version)| Some(target(workflow, version?))))
    }

    async fn enqueue_triggered(&self, target: &TriggerTarget, run: NewRun) -> DomainResult<Run> {
        let txn = self.begin_unscoped_write().await?;
        let run = insert_run(
            &txn,
            &self.quota_defaults,
            target.workspace_id.as_uuid(),
            run,
        )
        .await?;
        txn.commit()
            .await
            .map_err(internal("commit a triggered run"))?;
        Ok(run)
    }

    async fn triggered_run(&self, run_id: RunId) -> DomainResult<Option<(Run, Vec<StepRecord>)>> {
        let Some(row) = runs::Entity::find_by_id(run_id.as_uuid())
            .one(&self.db)
            .await
            .map_err(internal("read a triggered run"))?
        else {
            return Ok(None);
        };
        let steps = steps_of(&self.db, row.workspace_id, row.id).await?;
        Ok(Some((convert::run(row)?, steps)))
    }

    async fn active_workflows(&self) -> DomainResult<Vec<TriggerTarget>> {
        let rows = workflows::Entity::find()
            .filter(workflows::Column::Active.eq(true))
            .select_also(workflow_versions::Entity)
            .join(JoinType::InnerJoin, current_version())
            .all(&self.db)
            .await
            .map_err(internal("list active workflows"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(workflow, version)| Some(target(workflow, version?)))
            .collect())
    }

    async fn fire_schedule_tick(
        &self,
        target: &TriggerTarget,
        tick_ms: i64,
        run: NewRun,
    ) -> DomainResult<Option<Run>> {
        let tick = schedule_ticks::Model {
            workflow_id: target.workflow_id.as_uuid(),
            tick_at_ms: tick_ms,
            workspace_id: target.workspace_id.as_uuid(),
            run_id: Some(run.id.as_uuid()),
            fired_at: timestamps::now(),
        };
        let txn = self.begin_unscoped_write().await?;
        // The primary key (workflow, tick) is the arbiter between schedulers: a second
        // insert of the same tick, on this node or another, changes nothing.
        let inserted = schedule_ticks::Entity::insert(tick.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    schedule_ticks::Column::WorkflowId,
                    schedule_ticks::Column::TickAtMs,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(internal("record a schedule tick"))?;
        if inserted == 0 {
            return Ok(None);
        }
        let run = insert_run(
            &txn,
            &self.quota_defaults,
            target.workspace_id.as_uuid(),
            run,
        )
        .await?;
        txn.commit()
            .await
            .map_err(internal("commit a scheduled run"))?;
        Ok(Some(run))
    }
}

pub(super) fn target(
    workflow: workflows::Model,
    version: workflow_versions::Model,
) -> TriggerTarget {
    TriggerTarget {
        workspace_id: WorkspaceId::from_uuid(workflow.workspace_id),
        workflow_id: WorkflowId::from_uuid(workflow.id),
        version: version.version,
        active: workflow.active,
        definition: version.definition,
    }
}

//! `TriggerStore`: what webhooks (and schedules) need to start runs on behalf of no caller.
//!
//! Unscoped like the queue: a webhook reaches a workflow only through the secret key in its
//! URL, and every write still names the workspace the key resolved to.

use aos_domain::error::DomainResult;
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::journal::{NewRun, Run, StepRecord};
use aos_domain::ports::{TriggerStore, TriggerTarget};
use aos_domain::run::RunId;
use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::runs::{insert_run, steps_of};
use crate::convert;
use crate::entities::{runs, workflow_versions, workflows};
use crate::error::internal;
use crate::store::SeaStore;

#[async_trait]
impl TriggerStore for SeaStore {
    async fn webhook_target(&self, key: &str) -> DomainResult<Option<TriggerTarget>> {
        let Some(workflow) = workflows::Entity::find()
            .filter(workflows::Column::WebhookKey.eq(key))
            .one(&self.db)
            .await
            .map_err(internal("find a webhook's workflow"))?
        else {
            return Ok(None);
        };
        let version =
            workflow_versions::Entity::find_by_id((workflow.id, workflow.current_version))
                .one(&self.db)
                .await
                .map_err(internal("read a webhook's workflow version"))?;
        Ok(version.map(|version| TriggerTarget {
            workspace_id: WorkspaceId::from_uuid(workflow.workspace_id),
            workflow_id: WorkflowId::from_uuid(workflow.id),
            version: version.version,
            active: workflow.active,
            definition: version.definition,
        }))
    }

    async fn enqueue_triggered(&self, target: &TriggerTarget, run: NewRun) -> DomainResult<Run> {
        let txn = self.begin_unscoped_write().await?;
        let run = insert_run(&txn, target.workspace_id.as_uuid(), run).await?;
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
}

//! GraphQL types of runs: the run, its steps, its events and the paged list of runs.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::journal::{Run, RunEvent, StepRecord};
use aos_domain::run::{RunStatus as DomainRunStatus, StepStatus as DomainStepStatus};

use super::app;
use super::types::PageInfo;
use crate::error::ApiResult;

/// The most events one `Run.events` read returns; page on with `afterSeq`.
const EVENTS_PER_READ: u64 = 1000;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "DomainRunStatus")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// The contract's four values, plus `RETRYING` for a step waiting for its next attempt
/// and `PENDING`, which a stored step never has but the domain names.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "DomainStepStatus")]
pub enum StepStatus {
    Pending,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
}

pub struct RunObject {
    pub run: Run,
    pub scope: WorkspaceScope,
}

#[Object(name = "Run")]
impl RunObject {
    async fn id(&self) -> ID {
        ID(self.run.id.to_string())
    }

    async fn workspace_id(&self) -> ID {
        ID(self.run.workspace_id.to_string())
    }

    async fn workflow_id(&self) -> ID {
        ID(self.run.workflow_id.to_string())
    }

    /// The version the run executes, fixed when it was queued.
    async fn workflow_version(&self) -> i32 {
        self.run.workflow_version
    }

    async fn status(&self) -> RunStatus {
        self.run.status.into()
    }

    /// `MANUAL`, `WEBHOOK`, `SCHEDULE` or `RETRY`.
    async fn trigger(&self) -> &str {
        self.run.trigger.as_str()
    }

    async fn input(&self) -> Json<&serde_json::Value> {
        Json(&self.run.input)
    }

    async fn output(&self) -> Option<Json<&serde_json::Value>> {
        self.run.output.as_ref().map(Json)
    }

    async fn error(&self) -> Option<&str> {
        self.run.error.as_deref()
    }

    /// The run this one retries, for a run made by `retryRun`.
    async fn retry_of(&self) -> Option<ID> {
        self.run.retry_of.map(|id| ID(id.to_string()))
    }

    async fn retry_from_node(&self) -> Option<&str> {
        self.run.retry_from_node.as_deref()
    }

    /// Someone asked to cancel the run and its worker has not stopped it yet.
    async fn cancel_requested(&self) -> bool {
        self.run.cancel_requested
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.run.created_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.run.started_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.run.finished_at
    }

    /// Steps in the order they started; skipped nodes last.
    async fn steps(&self, ctx: &Context<'_>) -> ApiResult<Vec<StepObject>> {
        self.scope.require(Action::ReadRuns)?;
        let steps = app(ctx)?.store.run_steps(&self.scope, self.run.id).await?;
        Ok(steps.into_iter().map(StepObject).collect())
    }

    /// Stored events after `afterSeq` (default 0), oldest first, at most 1000 per read.
    async fn events(
        &self,
        ctx: &Context<'_>,
        after_seq: Option<i32>,
    ) -> ApiResult<Vec<RunEventObject>> {
        self.scope.require(Action::ReadRuns)?;
        let after = i64::from(after_seq.unwrap_or(0).max(0));
        let events = app(ctx)?
            .store
            .run_events(&self.scope, self.run.id, after, EVENTS_PER_READ)
            .await?;
        Ok(events.into_iter().map(RunEventObject).collect())
    }
}

pub struct StepObject(pub StepRecord);

#[Object(name = "Step")]
impl StepObject {
    async fn node_id(&self) -> &str {
        &self.0.node_id
    }

    async fn status(&self) -> StepStatus {
        self.0.status.into()
    }

    /// The attempt the step is on or ended with, from 1 (0 for a skipped step).
    async fn attempt(&self) -> i32 {
        i32::try_from(self.0.attempt).unwrap_or(i32::MAX)
    }

    async fn input(&self) -> Option<Json<&serde_json::Value>> {
        self.0.input.as_ref().map(Json)
    }

    async fn output(&self) -> Option<Json<&serde_json::Value>> {
        self.0.output.as_ref().map(Json)
    }

    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// The branch an `if` took: `true` or `false`.
    async fn branch(&self) -> Option<&str> {
        self.0.branch.as_deref()
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

pub struct RunEventObject(pub RunEvent);

#[Object(name = "RunEvent")]
impl RunEventObject {
    async fn run_id(&self) -> ID {
        ID(self.0.run_id.to_string())
    }

    /// Counts from 1 within a run, without gaps.
    async fn seq(&self) -> i32 {
        i32::try_from(self.0.seq).unwrap_or(i32::MAX)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// One of the contract's kinds, e.g. `STEP_SUCCEEDED`.
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }

    async fn node_id(&self) -> Option<&str> {
        self.0.node_id.as_deref()
    }

    async fn message(&self) -> &str {
        &self.0.message
    }

    async fn data(&self) -> Option<Json<&serde_json::Value>> {
        self.0.data.as_ref().map(Json)
    }
}

/// A Relay cursor connection of runs; the cursor is the run id.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RunConnection {
    pub edges: Vec<RunEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl RunConnection {
    /// The nodes of `edges`, for clients that do not need cursors.
    async fn nodes(&self) -> Vec<&RunObject> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }
}

impl RunConnection {
    pub fn new(nodes: Vec<RunObject>, has_next_page: bool) -> Self {
        let (edges, page_info) = PageInfo::forward_page(
            nodes,
            has_next_page,
            |node| node.run.id.to_string(),
            |cursor, node| RunEdge { cursor, node },
        );
        Self { edges, page_info }
    }
}

#[derive(SimpleObject)]
pub struct RunEdge {
    pub cursor: String,
    pub node: RunObject,
}

//! Runs: start one by hand, cancel one, retry one from a node.

use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::Utc;

use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::ids::WorkflowId;
use aos_domain::journal::{NewRun, Run, RunTrigger, StepRecord};
use aos_domain::ports::{CancelOutcome, ObjectRef, RunEventSink};
use aos_domain::run::{RunId, StepStatus};
use aos_domain::workflow::validate_definition;

use crate::authz::{parse_id, scope_for};
use crate::error::{ApiError, ApiResult};
use crate::graphql::run_types::RunObject;
use crate::graphql::{app, request};
use crate::state::AppState;

#[derive(InputObject)]
pub struct RunWorkflowInput {
    /// The workflow to run.
    pub id: ID,
    /// What the trigger outputs (`trigger` in expressions); default `{}`.
    pub input: Option<Json<serde_json::Value>>,
}

#[derive(InputObject)]
pub struct CancelRunInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct RetryRunInput {
    pub id: ID,
    /// Re-execute this node and everything after it, reusing the outputs of the nodes
    /// before it. Default: the first node that failed, or the whole workflow.
    pub from_node: Option<String>,
}

#[derive(Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Queues a run of the workflow's current version, active or not.
    async fn run_workflow(
        &self,
        ctx: &Context<'_>,
        input: RunWorkflowInput,
    ) -> ApiResult<RunObject> {
        let state = app(ctx)?;
        let workflow_id: WorkflowId = parse_id(&input.id, "workflow")?;
        let scope = scope_of(ctx, ObjectRef::Workflow(workflow_id), "workflow").await?;
        let workflow = state
            .store
            .workflow(&scope, workflow_id)
            .await?
            .ok_or_else(|| ApiError::not_found("workflow"))?;
        let run = NewRun {
            id: RunId::generate(),
            workflow_id,
            workflow_version: workflow.version,
            trigger: RunTrigger::Manual,
            input: input
                .input
                .map(|json| json.0)
                .unwrap_or_else(|| serde_json::json!({})),
            retry_of: None,
            reused_steps: Vec::new(),
            queued_at: Utc::now(),
        };
        let run = queue(state, &scope, run).await?;
        Ok(RunObject { run, scope })
    }

    /// A queued run is cancelled at once; a running one stops at its next step boundary
    /// (its `cancelRequested` is true until then). `CONFLICT` once it has finished.
    async fn cancel_run(&self, ctx: &Context<'_>, input: CancelRunInput) -> ApiResult<RunObject> {
        let state = app(ctx)?;
        let run_id: RunId = parse_id(&input.id, "run")?;
        let scope = scope_of(ctx, ObjectRef::Run(run_id), "run").await?;
        let run = match state
            .store
            .request_cancel(&scope, run_id, Utc::now())
            .await?
        {
            CancelOutcome::Cancelled { run, events } => {
                metrics::counter!("aos_runs_finished_total", "status" => "cancelled").increment(1);
                state.run_events.publish(&events);
                run
            }
            CancelOutcome::Requested(run) => {
                (state.wake_workers)();
                run
            }
        };
        Ok(RunObject { run, scope })
    }

    /// A new run of the same workflow version and input that re-executes `fromNode` and
    /// everything reachable from it, and reuses every other finished step. The retried
    /// run must have finished.
    async fn retry_run(&self, ctx: &Context<'_>, input: RetryRunInput) -> ApiResult<RunObject> {
        let state = app(ctx)?;
        let run_id: RunId = parse_id(&input.id, "run")?;
        let scope = scope_of(ctx, ObjectRef::Run(run_id), "run").await?;
        let previous = state
            .store
            .run(&scope, run_id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        if !previous.status.is_terminal() {
            return Err(ApiError::coded(
                crate::error::CONFLICT,
                "the run has not finished; cancel it or wait for it before retrying",
            ));
        }
        let version = state
            .store
            .workflow_versions(&scope, previous.workflow_id)
            .await?
            .into_iter()
            .find(|version| version.version == previous.workflow_version)
            .ok_or_else(|| ApiError::not_found("workflow"))?;
        let definition = validate_definition(&version.definition).map_err(|_| {
            ApiError::coded(
                crate::error::CONFLICT,
                "the workflow version of this run no longer validates",
            )
        })?;
        let steps = state.store.run_steps(&scope, run_id).await?;
        let from_node = match input.from_node {
            Some(node) => node,
            None => first_failure(&steps).unwrap_or_else(|| definition.trigger().id().to_string()),
        };
        if definition.node(&from_node).is_none() {
            return Err(ApiError::bad_input(format!(
                "`fromNode`: the workflow has no node `{from_node}`"
            )));
        }
        let rerun: std::collections::HashSet<String> = definition
            .downstream_of(&from_node)
            .into_iter()
            .map(|node| node.id().to_string())
            .collect();
        let run = NewRun {
            id: RunId::generate(),
            workflow_id: previous.workflow_id,
            workflow_version: previous.workflow_version,
            trigger: RunTrigger::Retry,
            input: previous.input.clone(),
            retry_of: Some((previous.id, from_node)),
            reused_steps: reused_steps(steps, &rerun),
            queued_at: Utc::now(),
        };
        let run = queue(state, &scope, run).await?;
        Ok(RunObject { run, scope })
    }
}

async fn scope_of(
    ctx: &Context<'_>,
    object: ObjectRef,
    name: &'static str,
) -> ApiResult<WorkspaceScope> {
    let principal = request(ctx)?.caller.principal()?;
    scope_for(app(ctx)?, principal, object, Action::WriteRuns, name).await
}

/// Stores the run, tells live subscribers and wakes a worker.
async fn queue(state: &AppState, scope: &WorkspaceScope, run: NewRun) -> ApiResult<Run> {
    let run = state.store.enqueue_run(scope, run).await?;
    state.announce_queued(&run);
    Ok(run)
}

fn first_failure(steps: &[StepRecord]) -> Option<String> {
    steps
        .iter()
        .filter(|step| step.status == StepStatus::Failed)
        .min_by_key(|step| step.finish_order.unwrap_or(u32::MAX))
        .map(|step| step.node_id.clone())
}

/// The finished steps outside the re-executed part, renumbered in their finishing order
/// so the new run's journal continues without gaps.
fn reused_steps(
    steps: Vec<StepRecord>,
    rerun: &std::collections::HashSet<String>,
) -> Vec<StepRecord> {
    let mut kept: Vec<StepRecord> = steps
        .into_iter()
        .filter(|step| matches!(step.status, StepStatus::Succeeded | StepStatus::Failed))
        .filter(|step| !rerun.contains(&step.node_id))
        .collect();
    kept.sort_by_key(|step| step.finish_order.unwrap_or(u32::MAX));
    for (position, step) in kept.iter_mut().enumerate() {
        step.finish_order = Some(u32::try_from(position + 1).unwrap_or(u32::MAX));
    }
    kept
}

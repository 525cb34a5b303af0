//! Workflows. Every save validates the whole definition first (the domain's rules and the
//! connector registry's) and reports every problem; every update stores a new immutable
//! version.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object};

use aos_domain::DomainError;
use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::ids::WorkflowId;
use aos_domain::ports::ObjectRef;
use aos_domain::workflow::{
    NewWorkflow, Workflow, WorkflowChange, WorkflowDescription, WorkflowName,
};

use crate::auth::secrets;
use crate::authz::{parse_id, scope_for};
use crate::error::ApiResult;
use crate::events::{WorkflowEvent, WorkflowEventKind};
use crate::graphql::query::definition_problems;
use crate::graphql::types::WorkflowObject;
use crate::graphql::{app, request, workspace_scope};
use crate::state::AppState;

#[derive(InputObject)]
pub struct CreateWorkflowInput {
    pub workspace_id: ID,
    pub name: String,
    pub description: Option<String>,
    pub definition: Json<serde_json::Value>,
}

/// Omitted fields keep their value; `description: null` clears it.
#[derive(InputObject)]
pub struct UpdateWorkflowInput {
    pub id: ID,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub definition: Option<Json<serde_json::Value>>,
}

#[derive(InputObject)]
pub struct SetWorkflowActiveInput {
    pub id: ID,
    pub active: bool,
}

#[derive(InputObject)]
pub struct DeleteWorkflowInput {
    pub id: ID,
}

#[derive(Default)]
pub struct WorkflowMutation;

#[Object]
impl WorkflowMutation {
    async fn create_workflow(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkflowInput,
    ) -> ApiResult<WorkflowObject> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::WriteWorkflows).await?;
        let name = WorkflowName::parse(&input.name)?;
        let description = WorkflowDescription::parse(input.description.as_deref())?;
        validate(state, &input.definition.0)?;
        let workflow = state
            .store
            .create_workflow(
                &scope,
                NewWorkflow {
                    name,
                    description,
                    definition: input.definition.0,
                    webhook_key: secrets::url_key(),
                },
            )
            .await?;
        Ok(announce(state, scope, workflow, WorkflowEventKind::Created))
    }

    /// Stores version N+1; runs already started keep the version they started with.
    async fn update_workflow(
        &self,
        ctx: &Context<'_>,
        input: UpdateWorkflowInput,
    ) -> ApiResult<WorkflowObject> {
        let (state, scope, id) = locate(ctx, &input.id, Action::WriteWorkflows).await?;
        let change = WorkflowChange {
            name: input.name.as_deref().map(WorkflowName::parse).transpose()?,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(text) => Some(WorkflowDescription::parse(Some(&text))?),
            },
            definition: match input.definition {
                Some(Json(definition)) => {
                    validate(state, &definition)?;
                    Some(definition)
                }
                None => None,
            },
        };
        let workflow = state.store.update_workflow(&scope, id, change).await?;
        Ok(announce(state, scope, workflow, WorkflowEventKind::Updated))
    }

    async fn set_workflow_active(
        &self,
        ctx: &Context<'_>,
        input: SetWorkflowActiveInput,
    ) -> ApiResult<WorkflowObject> {
        let (state, scope, id) = locate(ctx, &input.id, Action::WriteWorkflows).await?;
        let workflow = state
            .store
            .set_workflow_active(&scope, id, input.active)
            .await?;
        let kind = if input.active {
            WorkflowEventKind::Activated
        } else {
            WorkflowEventKind::Deactivated
        };
        Ok(announce(state, scope, workflow, kind))
    }

    async fn delete_workflow(
        &self,
        ctx: &Context<'_>,
        input: DeleteWorkflowInput,
    ) -> ApiResult<bool> {
        let (state, scope, id) = locate(ctx, &input.id, Action::WriteWorkflows).await?;
        state.store.delete_workflow(&scope, id).await?;
        state.workflow_events.publish(WorkflowEvent {
            workspace_id: scope.workspace_id(),
            kind: WorkflowEventKind::Deleted,
            workflow_id: id,
            workflow: None,
        });
        Ok(true)
    }
}

fn validate(state: &AppState, definition: &serde_json::Value) -> Result<(), DomainError> {
    let problems = definition_problems(state, definition);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DomainError::InvalidWorkflow(problems))
    }
}

async fn locate<'a>(
    ctx: &Context<'a>,
    raw_id: &ID,
    action: Action,
) -> ApiResult<(&'a AppState, WorkspaceScope, WorkflowId)> {
    let principal = request(ctx)?.caller.principal()?;
    let state = app(ctx)?;
    let id: WorkflowId = parse_id(raw_id, "workflow")?;
    let scope = scope_for(
        state,
        principal,
        ObjectRef::Workflow(id),
        action,
        "workflow",
    )
    .await?;
    Ok((state, scope, id))
}

fn announce(
    state: &AppState,
    scope: WorkspaceScope,
    workflow: Workflow,
    kind: WorkflowEventKind,
) -> WorkflowObject {
    state.workflow_events.publish(WorkflowEvent {
        workspace_id: scope.workspace_id(),
        kind,
        workflow_id: workflow.id,
        workflow: Some(workflow.clone()),
    });
    WorkflowObject { workflow, scope }
}

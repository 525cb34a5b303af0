//! Root queries.

use async_graphql::{Context, ID, Json, Object};

use aos_domain::access::{Action, Principal};
use aos_domain::ids::WorkflowId;
use aos_domain::ports::ObjectRef;
use aos_domain::run::RunId;
use aos_domain::workflow::{Problem, validate_definition};

use super::connection_types::{ConnectionObject, ConnectorTypeObject};
use super::mutation::connections::connection_scope;
use super::run_types::RunObject;
use super::types::{UserObject, Viewer, WorkflowObject, WorkflowProblem, WorkspaceObject};
use super::{app, request, workspace_scope};
use crate::authz::{parse_id, scope_for, scope_with_role};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user and their workspaces. User sessions only: an API token acts on
    /// its workspace and is not a person.
    async fn viewer(&self, ctx: &Context<'_>) -> ApiResult<Viewer> {
        let Principal::User(user_id) = request(ctx)?.caller.principal()? else {
            return Err(ApiError::forbidden(
                "`viewer` needs a user session; API tokens cannot use it",
            ));
        };
        let state = app(ctx)?;
        let user = state
            .store
            .user(*user_id)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("the account no longer exists"))?;
        let principal = Principal::User(*user_id);
        let mut workspaces = Vec::new();
        for (workspace, role) in state.store.workspaces_of(*user_id).await? {
            let scope = scope_with_role(&principal, workspace.id, role, Action::ReadWorkspace)?;
            workspaces.push(WorkspaceObject { workspace, scope });
        }
        Ok(Viewer {
            user: UserObject(user),
            workspaces,
        })
    }

    /// A workspace the caller belongs to; `NOT_FOUND` for any other.
    async fn workspace(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<WorkspaceObject>> {
        let (state, scope) = workspace_scope(ctx, &id, Action::ReadWorkspace).await?;
        let workspace = state.store.workspace(&scope).await?;
        Ok(Some(WorkspaceObject { workspace, scope }))
    }

    /// A run of a workspace the caller belongs to; `NOT_FOUND` for any other.
    async fn run(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<RunObject>> {
        let principal = request(ctx)?.caller.principal()?;
        let state = app(ctx)?;
        let run_id: RunId = parse_id(&id, "run")?;
        let scope = scope_for(
            state,
            principal,
            ObjectRef::Run(run_id),
            Action::ReadRuns,
            "run",
        )
        .await?;
        let run = state
            .store
            .run(&scope, run_id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        Ok(Some(RunObject { run, scope }))
    }

    async fn workflow(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<WorkflowObject>> {
        let principal = request(ctx)?.caller.principal()?;
        let state = app(ctx)?;
        let workflow_id: WorkflowId = parse_id(&id, "workflow")?;
        let scope = scope_for(
            state,
            principal,
            ObjectRef::Workflow(workflow_id),
            Action::ReadWorkflows,
            "workflow",
        )
        .await?;
        let workflow = state
            .store
            .workflow(&scope, workflow_id)
            .await?
            .ok_or_else(|| ApiError::not_found("workflow"))?;
        Ok(Some(WorkflowObject { workflow, scope }))
    }

    /// A connection of a workspace the caller belongs to; `NOT_FOUND` for any other.
    async fn connection(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<ConnectionObject>> {
        let (state, scope, id) = connection_scope(ctx, &id, Action::ReadConnections).await?;
        let connection = state
            .store
            .connection(&scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        Ok(Some(ConnectionObject(connection)))
    }

    /// Every connector this server offers, with its operations' parameter schemas.
    async fn connector_types(&self, ctx: &Context<'_>) -> ApiResult<Vec<ConnectorTypeObject>> {
        request(ctx)?.caller.principal()?;
        Ok(app(ctx)?
            .connectors
            .all()
            .cloned()
            .map(ConnectorTypeObject)
            .collect())
    }

    /// The redirect URI to register with an OAuth2 authorization server for
    /// `startOAuth2Connection`: this server's `/oauth/callback`.
    #[graphql(name = "oauth2RedirectUrl")]
    async fn oauth2_redirect_url(&self, ctx: &Context<'_>) -> ApiResult<String> {
        request(ctx)?.caller.principal()?;
        Ok(crate::oauth::redirect_uri(&app(ctx)?.config.public_url))
    }

    /// Every problem of a definition, without saving it: the editor's live check.
    async fn validate_workflow_definition(
        &self,
        ctx: &Context<'_>,
        definition: Json<serde_json::Value>,
    ) -> ApiResult<Vec<WorkflowProblem>> {
        request(ctx)?.caller.principal()?;
        Ok(definition_problems(app(ctx)?, &definition.0)
            .into_iter()
            .map(WorkflowProblem::from)
            .collect())
    }
}

/// Every problem of `definition`: the validator's, then the connector registry's (unknown
/// connectors, operations and polling triggers), so a client sees them all in one answer.
pub(crate) fn definition_problems(
    state: &AppState,
    definition: &serde_json::Value,
) -> Vec<Problem> {
    let mut problems = validate_definition(definition).err().unwrap_or_default();
    problems.extend(state.connectors.check_definition_json(definition));
    problems
}

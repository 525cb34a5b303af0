//! GraphQL output types. Each wraps a domain value (GraphQL types live only in this crate)
//! and, where its fields reach further data, the `WorkspaceScope` it was read under, so a
//! nested field can never read outside the workspace its parent was authorized for.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_domain::access::{Access, Action, WorkspaceScope};
use aos_domain::api_token::{ApiToken, Scope as DomainScope};
use aos_domain::page::PageRequest;
use aos_domain::user::User;
use aos_domain::workflow::{Problem, Workflow, WorkflowVersion};
use aos_domain::workspace::{Member, Role as DomainRole, Workspace};

use aos_domain::ports::RunFilter;

use super::connection_types::ConnectionObject;

use super::app;
use super::run_types::{RunConnection, RunObject, RunStatus};
use super::stats_types::{RunStatsObject, run_stats};
use super::usage_types::WorkspaceUsageObject;
use crate::audit::graphql::{AuditEventConnection, AuditEventObject, AuditLogFilter};
use crate::authz::parse_id;
use crate::error::ApiResult;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "DomainRole")]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Viewer,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    WorkflowsRead,
    WorkflowsWrite,
    RunsRead,
    RunsWrite,
    ConnectionsRead,
    ConnectionsWrite,
    Admin,
}

impl From<DomainScope> for Scope {
    fn from(scope: DomainScope) -> Self {
        match scope {
            DomainScope::WorkflowsRead => Scope::WorkflowsRead,
            DomainScope::WorkflowsWrite => Scope::WorkflowsWrite,
            DomainScope::RunsRead => Scope::RunsRead,
            DomainScope::RunsWrite => Scope::RunsWrite,
            DomainScope::ConnectionsRead => Scope::ConnectionsRead,
            DomainScope::ConnectionsWrite => Scope::ConnectionsWrite,
            DomainScope::Admin => Scope::Admin,
        }
    }
}

impl From<Scope> for DomainScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::WorkflowsRead => DomainScope::WorkflowsRead,
            Scope::WorkflowsWrite => DomainScope::WorkflowsWrite,
            Scope::RunsRead => DomainScope::RunsRead,
            Scope::RunsWrite => DomainScope::RunsWrite,
            Scope::ConnectionsRead => DomainScope::ConnectionsRead,
            Scope::ConnectionsWrite => DomainScope::ConnectionsWrite,
            Scope::Admin => DomainScope::Admin,
        }
    }
}

pub struct UserObject(pub User);

#[Object(name = "User")]
impl UserObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn email(&self) -> &str {
        self.0.email.as_str()
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }
}

pub struct MemberObject(pub Member);

#[Object(name = "Member")]
impl MemberObject {
    async fn user(&self) -> UserObject {
        UserObject(self.0.user.clone())
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

pub struct ApiTokenObject(pub ApiToken);

/// Never exposes the secret: only its hash is stored, and it is not a field.
#[Object(name = "ApiToken")]
impl ApiTokenObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    async fn scopes(&self) -> Vec<Scope> {
        self.0.scopes.iter().map(Scope::from).collect()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

#[derive(SimpleObject)]
pub struct NewApiToken {
    /// The secret. Shown once, here; it cannot be read again.
    pub token: String,
    pub api_token: ApiTokenObject,
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    pub user: UserObject,
}

#[derive(SimpleObject)]
pub struct Viewer {
    pub user: UserObject,
    pub workspaces: Vec<WorkspaceObject>,
}

pub struct WorkspaceObject {
    pub workspace: Workspace,
    pub scope: WorkspaceScope,
}

#[Object(name = "Workspace")]
impl WorkspaceObject {
    async fn id(&self) -> ID {
        ID(self.workspace.id.to_string())
    }

    async fn name(&self) -> &str {
        self.workspace.name.as_str()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.workspace.created_at
    }

    /// The caller's role. An API token reports the role its scopes amount to: ADMIN with
    /// the ADMIN scope, EDITOR with any write scope, else VIEWER.
    async fn viewer_role(&self) -> Role {
        match self.scope.access() {
            Access::Member(role) => (*role).into(),
            Access::Token(_) if self.scope.permits(Action::ManageMembers) => Role::Admin,
            Access::Token(_)
                if self.scope.permits(Action::WriteWorkflows)
                    || self.scope.permits(Action::WriteRuns)
                    || self.scope.permits(Action::ManageConnections) =>
            {
                Role::Editor
            }
            Access::Token(_) => Role::Viewer,
        }
    }

    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<MemberObject>> {
        self.scope.require(Action::ReadMembers)?;
        let members = app(ctx)?.store.members(&self.scope).await?;
        Ok(members.into_iter().map(MemberObject).collect())
    }

    /// Newest first.
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<WorkflowConnection> {
        self.scope.require(Action::ReadWorkflows)?;
        let after = after
            .map(|cursor| parse_id(&cursor, "cursor"))
            .transpose()?;
        let page = PageRequest::new(first.map(i64::from), after)?;
        let page = app(ctx)?.store.workflows(&self.scope, page).await?;
        let nodes: Vec<WorkflowObject> = page
            .items
            .into_iter()
            .map(|workflow| WorkflowObject {
                workflow,
                scope: self.scope.clone(),
            })
            .collect();
        Ok(WorkflowConnection::new(nodes, page.has_next_page))
    }

    /// Newest first, optionally only those with `status` or of `workflowId`.
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<RunStatus>,
        workflow_id: Option<ID>,
    ) -> ApiResult<RunConnection> {
        self.scope.require(Action::ReadRuns)?;
        let after = after
            .map(|cursor| parse_id(&cursor, "cursor"))
            .transpose()?;
        let page = PageRequest::new(first.map(i64::from), after)?;
        let filter = RunFilter {
            status: status.map(Into::into),
            workflow_id: workflow_id
                .map(|id| parse_id(&id, "workflow"))
                .transpose()?,
        };
        let page = app(ctx)?.store.runs(&self.scope, filter, page).await?;
        let nodes = page
            .items
            .into_iter()
            .map(|run| RunObject {
                run,
                scope: self.scope.clone(),
            })
            .collect();
        Ok(RunConnection::new(nodes, page.has_next_page))
    }

    /// Every mutation attempted in the workspace, newest first: who (user or API token),
    /// what, on which object, from where, and how it ended. ADMIN and above, or a token
    /// with the ADMIN scope.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditLogFilter>,
    ) -> ApiResult<AuditEventConnection> {
        self.scope.require(Action::ReadAuditLog)?;
        let after = after
            .map(|cursor| parse_id(&cursor, "cursor"))
            .transpose()?;
        let page = PageRequest::new(first.map(i64::from), after)?;
        let filter = filter.unwrap_or_default().into_domain()?;
        let page = app(ctx)?
            .store
            .audit_events(&self.scope, &filter, page)
            .await?;
        let nodes = page.items.into_iter().map(AuditEventObject).collect();
        Ok(AuditEventConnection::new(nodes, page.has_next_page))
    }

    /// Usage against each quota, and the runs' statistics. Every member and every token
    /// with RUNS_READ may read it.
    async fn usage(&self) -> ApiResult<WorkspaceUsageObject> {
        self.scope.require(Action::ReadRuns)?;
        Ok(WorkspaceUsageObject {
            scope: self.scope.clone(),
        })
    }

    /// Ordered by name. Never a secret.
    async fn connections(&self, ctx: &Context<'_>) -> ApiResult<Vec<ConnectionObject>> {
        self.scope.require(Action::ReadConnections)?;
        let connections = app(ctx)?.store.connections(&self.scope).await?;
        Ok(connections.into_iter().map(ConnectionObject).collect())
    }

    /// Live tokens, newest first. ADMIN and above.
    async fn api_tokens(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiTokenObject>> {
        self.scope.require(Action::ManageApiTokens)?;
        let tokens = app(ctx)?.store.api_tokens(&self.scope).await?;
        Ok(tokens.into_iter().map(ApiTokenObject).collect())
    }
}

pub struct WorkflowObject {
    pub workflow: Workflow,
    pub scope: WorkspaceScope,
}

#[Object(name = "Workflow")]
impl WorkflowObject {
    async fn id(&self) -> ID {
        ID(self.workflow.id.to_string())
    }

    async fn workspace_id(&self) -> ID {
        ID(self.workflow.workspace_id.to_string())
    }

    async fn name(&self) -> &str {
        self.workflow.name.as_str()
    }

    async fn description(&self) -> Option<&str> {
        self.workflow.description.as_ref().map(|d| d.as_str())
    }

    /// The current version number; every update adds one.
    async fn version(&self) -> i32 {
        self.workflow.version
    }

    async fn definition(&self) -> Json<&serde_json::Value> {
        Json(&self.workflow.definition)
    }

    async fn active(&self) -> bool {
        self.workflow.active
    }

    /// Where to send webhooks, when the trigger is `trigger.webhook`. The key is a secret:
    /// anyone who knows it can start runs.
    async fn webhook_url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if !self.workflow.has_webhook_trigger() {
            return Ok(None);
        }
        Ok(Some(format!(
            "{}/hooks/{}",
            app(ctx)?.config.public_url,
            self.workflow.webhook_key
        )))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.workflow.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.workflow.updated_at
    }

    /// This workflow's runs since `since` (default: the last 30 days).
    async fn stats(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
    ) -> ApiResult<RunStatsObject> {
        self.scope.require(Action::ReadRuns)?;
        run_stats(ctx, &self.scope, Some(self.workflow.id), since).await
    }

    /// Every version, newest first.
    async fn versions(&self, ctx: &Context<'_>) -> ApiResult<Vec<WorkflowVersionObject>> {
        let versions = app(ctx)?
            .store
            .workflow_versions(&self.scope, self.workflow.id)
            .await?;
        Ok(versions.into_iter().map(WorkflowVersionObject).collect())
    }
}

pub struct WorkflowVersionObject(pub WorkflowVersion);

#[Object(name = "WorkflowVersion")]
impl WorkflowVersionObject {
    async fn version(&self) -> i32 {
        self.0.version
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_ref().map(|d| d.as_str())
    }

    async fn definition(&self) -> Json<&serde_json::Value> {
        Json(&self.0.definition)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct WorkflowProblem {
    pub node_id: Option<String>,
    pub message: String,
}

impl From<Problem> for WorkflowProblem {
    fn from(problem: Problem) -> Self {
        Self {
            node_id: problem.node_id,
            message: problem.message,
        }
    }
}

/// A Relay cursor connection of workflows; the cursor is the workflow id.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WorkflowConnection {
    pub edges: Vec<WorkflowEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl WorkflowConnection {
    /// The nodes of `edges`, for clients that do not need cursors.
    async fn nodes(&self) -> Vec<&WorkflowObject> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }
}

impl WorkflowConnection {
    fn new(nodes: Vec<WorkflowObject>, has_next_page: bool) -> Self {
        let (edges, page_info) = PageInfo::forward_page(
            nodes,
            has_next_page,
            |node| node.workflow.id.to_string(),
            |cursor, node| WorkflowEdge { cursor, node },
        );
        Self { edges, page_info }
    }
}

#[derive(SimpleObject)]
pub struct WorkflowEdge {
    pub cursor: String,
    pub node: WorkflowObject,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// The edges of a page of `nodes`, each with its `cursor`, and the page's info. Pages
    /// are only ever walked forwards, so there is never a previous page.
    pub fn forward_page<N, E>(
        nodes: Vec<N>,
        has_next_page: bool,
        cursor: impl Fn(&N) -> String,
        edge: impl Fn(String, N) -> E,
    ) -> (Vec<E>, Self) {
        let mut start_cursor = None;
        let mut end_cursor = None;
        let edges = nodes
            .into_iter()
            .map(|node| {
                let cursor = cursor(&node);
                start_cursor.get_or_insert_with(|| cursor.clone());
                end_cursor = Some(cursor.clone());
                edge(cursor, node)
            })
            .collect();
        let info = Self {
            has_next_page,
            has_previous_page: false,
            start_cursor,
            end_cursor,
        };
        (edges, info)
    }
}

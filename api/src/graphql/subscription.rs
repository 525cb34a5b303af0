//! Subscriptions. Each one is authorized when it starts and again before every event it
//! delivers, so a member who is removed stops receiving at once: they get one error and
//! the subscription completes. Once authorized, each takes a slot under this node's caps
//! (`ws::SubscriptionSlots`) that its stream holds until it ends.

use async_graphql::{Context, Enum, ID, Object, Subscription as SubscriptionRoot};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use aos_domain::access::{Action, Principal, WorkspaceScope};
use aos_domain::connection::{ConnectionEvent, ConnectionEventKind as DomainConnectionEventKind};
use aos_domain::ids::WorkspaceId;

use aos_domain::ports::ObjectRef;
use aos_domain::run::RunId;

use super::connection_types::{ConnectionObject, ConnectionStatus};
use super::run_streams;
use super::run_types::{RunEventObject, RunObject};
use super::types::WorkflowObject;
use super::{app, request};
use crate::authz::{parse_id, scope_for, scope_in};
use crate::error::{ApiError, ApiResult};
use crate::events::{WorkflowEvent, WorkflowEventKind as Kind};
use crate::state::AppState;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "Kind")]
pub enum WorkflowEventKind {
    Created,
    Updated,
    Activated,
    Deactivated,
    Deleted,
}

pub struct WorkflowEventObject {
    event: WorkflowEvent,
    scope: WorkspaceScope,
}

#[Object(name = "WorkflowEvent")]
impl WorkflowEventObject {
    async fn kind(&self) -> WorkflowEventKind {
        self.event.kind.into()
    }

    async fn workflow_id(&self) -> ID {
        ID(self.event.workflow_id.to_string())
    }

    /// The version after the change; null once deleted.
    async fn version(&self) -> Option<i32> {
        self.event.workflow.as_ref().map(|w| w.version)
    }

    async fn workflow(&self) -> Option<WorkflowObject> {
        self.event.workflow.clone().map(|workflow| WorkflowObject {
            workflow,
            scope: self.scope.clone(),
        })
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEventKind {
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    /// Its OAuth2 access token was renewed.
    ConnectionRefreshed,
    /// Its OAuth2 grant can no longer be renewed: authorize it again.
    ConnectionNeedsReauth,
    ConnectionRevoked,
}

impl From<DomainConnectionEventKind> for ConnectionEventKind {
    fn from(kind: DomainConnectionEventKind) -> Self {
        match kind {
            DomainConnectionEventKind::Created => Self::ConnectionCreated,
            DomainConnectionEventKind::Updated => Self::ConnectionUpdated,
            DomainConnectionEventKind::Deleted => Self::ConnectionDeleted,
            DomainConnectionEventKind::Refreshed => Self::ConnectionRefreshed,
            DomainConnectionEventKind::NeedsReauth => Self::ConnectionNeedsReauth,
            DomainConnectionEventKind::Revoked => Self::ConnectionRevoked,
        }
    }
}

pub struct ConnectionEventObject {
    event: ConnectionEvent,
    scope: WorkspaceScope,
}

/// A change to one of the workspace's connections. Never carries a secret.
#[Object(name = "ConnectionEvent")]
impl ConnectionEventObject {
    async fn connection_id(&self) -> ID {
        ID(self.event.connection_id.to_string())
    }

    async fn workspace_id(&self) -> ID {
        ID(self.event.workspace_id.to_string())
    }

    async fn kind(&self) -> ConnectionEventKind {
        self.event.kind.into()
    }

    /// The connection's status after the change.
    async fn status(&self) -> ConnectionStatus {
        self.event.status.into()
    }

    async fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.event.at
    }

    /// What happened, for a person (e.g. why it needs to be authorized again).
    async fn message(&self) -> &str {
        &self.event.message
    }

    /// The connection as it is now; null once deleted.
    async fn connection(&self, ctx: &Context<'_>) -> ApiResult<Option<ConnectionObject>> {
        let connection = app(ctx)?
            .store
            .connection(&self.scope, self.event.connection_id)
            .await?;
        Ok(connection.map(ConnectionObject))
    }
}

pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// A run's events: the stored ones after `afterSeq` (default 0), then live ones, in
    /// `seq` order with no gap and no duplicate; completes after the terminal event.
    async fn run_events(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
        after_seq: Option<i32>,
    ) -> Result<impl Stream<Item = ApiResult<RunEventObject>> + use<>, ApiError> {
        let state = app(ctx)?.clone();
        let principal = request(ctx)?.caller.principal()?.clone();
        let run_id: RunId = parse_id(&run_id, "run")?;
        let scope = scope_for(
            &state,
            &principal,
            ObjectRef::Run(run_id),
            Action::ReadRuns,
            "run",
        )
        .await?;
        let slot = state.subscription_slots.acquire(scope.workspace_id())?;
        Ok(slot.hold(run_streams::run_events(
            state,
            principal,
            run_id,
            i64::from(after_seq.unwrap_or(0)),
        )))
    }

    /// The workspace's runs, each time one is queued, starts or finishes.
    async fn workspace_runs(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<RunObject>> + use<>, ApiError> {
        let (state, principal, workspace_id) =
            allowed_in_workspace(ctx, &workspace_id, Action::ReadRuns).await?;
        let slot = state.subscription_slots.acquire(workspace_id)?;
        Ok(slot.hold(run_streams::workspace_runs(state, principal, workspace_id)))
    }

    /// Live changes to the workspace's workflows.
    async fn workflow_events(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<WorkflowEventObject>> + use<>, ApiError> {
        let (state, principal, workspace_id) =
            allowed_in_workspace(ctx, &workspace_id, Action::ReadWorkflows).await?;
        let slot = state.subscription_slots.acquire(workspace_id)?;
        let events = BroadcastStream::new(state.workflow_events.subscribe());
        let stream = events
            .filter(move |event| match event {
                Ok(event) => event.workspace_id == workspace_id,
                Err(BroadcastStreamRecvError::Lagged(_)) => true,
            })
            .then(move |event| {
                let state = state.clone();
                let principal = principal.clone();
                async move {
                    let event = event.map_err(|BroadcastStreamRecvError::Lagged(missed)| {
                        ApiError::coded(crate::error::INTERNAL, format!("this subscriber fell behind and missed {missed} events; resubscribe and refetch"))
                    })?;
                    let scope = scope_in(&state, &principal, workspace_id, Action::ReadWorkflows, "workspace").await?;
                    Ok(WorkflowEventObject { event, scope })
                }
            });
        Ok(slot.hold(until_first_error(stream)))
    }

    /// Live changes to the workspace's connections: created, changed, deleted, revoked,
    /// and OAuth2 tokens renewed or no longer renewable (`CONNECTION_NEEDS_REAUTH`),
    /// whichever node or worker made the change.
    async fn connection_events(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<ConnectionEventObject>> + use<>, ApiError> {
        let (state, principal, workspace_id) =
            allowed_in_workspace(ctx, &workspace_id, Action::ReadConnections).await?;
        let slot = state.subscription_slots.acquire(workspace_id)?;
        let events = BroadcastStream::new(state.connection_events.subscribe());
        let stream = events
            .filter(move |event| match event {
                Ok(event) => event.workspace_id == workspace_id,
                Err(BroadcastStreamRecvError::Lagged(_)) => true,
            })
            .then(move |event| {
                let state = state.clone();
                let principal = principal.clone();
                async move {
                    let event = event.map_err(|BroadcastStreamRecvError::Lagged(missed)| {
                        ApiError::coded(crate::error::INTERNAL, format!("this subscriber fell behind and missed {missed} events; resubscribe and refetch"))
                    })?;
                    let scope = scope_in(&state, &principal, workspace_id, Action::ReadConnections, "workspace").await?;
                    Ok(ConnectionEventObject { event, scope })
                }
            });
        Ok(slot.hold(until_first_error(stream)))
    }
}

/// The first error is delivered and ends the subscription: a subscriber who lost access
/// or missed events has to resubscribe, not keep a stream of refusals open. Ends right
/// after yielding it, without waiting for another event to arrive.
fn until_first_error<T>(
    stream: impl Stream<Item = ApiResult<T>>,
) -> impl Stream<Item = ApiResult<T>> {
    futures::stream::unfold(Some(Box::pin(stream)), |events| async move {
        let mut events = events?;
        let item = events.next().await?;
        let more = item.is_ok().then_some(events);
        Some((item, more))
    })
}

/// The app state, the caller and the workspace, once the caller may do `action` there.
async fn allowed_in_workspace(
    ctx: &Context<'_>,
    workspace_id: &ID,
    action: Action,
) -> Result<(AppState, Principal, WorkspaceId), ApiError> {
    let state = app(ctx)?.clone();
    let principal = request(ctx)?.caller.principal()?.clone();
    let workspace_id: WorkspaceId = parse_id(workspace_id, "workspace")?;
    scope_in(&state, &principal, workspace_id, action, "workspace").await?;
    Ok((state, principal, workspace_id))
}

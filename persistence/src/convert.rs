//! Row -> domain conversions, the one place where stored text becomes typed values again,
//! and for runs also the way back, since two repositories (`RunStore`, `RunQueue`) write
//! the same step and event rows.
//!
//! Stored values were valid when written, so a value that no longer parses is corruption
//! and surfaces as `Internal`, never as the caller's `Invalid` input. Timestamps are cut
//! to what the database keeps on the way in (`timestamps::stored`).

use aos_domain::DomainError;
use aos_domain::api_token::{ApiToken, ApiTokenName, Scopes};
use aos_domain::connection::{
    AuthKind, Connection, ConnectionName, ConnectionStatus, SealedConnection, StoredDataKey,
};
use aos_domain::ids::{ApiTokenId, ConnectionId, UserId, WorkflowId, WorkspaceId};
use aos_domain::journal::{NewRunEvent, Run, RunEvent, RunEventKind, RunTrigger, StepRecord};
use aos_domain::oauth::PendingAuthorization;
use aos_domain::ports::StoredSigningKey;
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::user::{Email, User, UserCredentials, UserName};
use aos_domain::workflow::{Workflow, WorkflowDescription, WorkflowName, WorkflowVersion};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use sea_orm::{FromQueryResult, JsonValue};
use uuid::Uuid;

use crate::entities::{
    api_tokens, connections, data_keys, oauth_authorizations, run_events, run_steps, runs,
    signing_keys, users, workflow_versions, workflows, workspaces,
};
use crate::error::{CorruptData, corrupt};
use crate::timestamps;

/// The columns of a user that may be shown to fellow members (no password hash).
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct PublicUserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<users::Model> for PublicUserRow {
    fn from(row: users::Model) -> Self {
        Self {
            id: row.id,
            email: row.email,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

pub(crate) fn user(row: PublicUserRow) -> Result<User, DomainError> {
    Ok(User {
        id: UserId::from_uuid(row.id),
        email: Email::parse(&row.email).map_err(corrupt("user e-mail"))?,
        name: UserName::parse(&row.name).map_err(corrupt("user name"))?,
        created_at: row.created_at,
    })
}

pub(crate) fn credentials(row: users::Model) -> Result<UserCredentials, DomainError> {
    let password_hash = row.password_hash.clone();
    Ok(UserCredentials {
        user: user(row.into())?,
        password_hash,
    })
}

pub(crate) fn workspace(row: workspaces::Model) -> Result<Workspace, DomainError> {
    Ok(Workspace {
        id: WorkspaceId::from_uuid(row.id),
        name: WorkspaceName::parse(&row.name).map_err(corrupt("workspace name"))?,
        created_at: row.created_at,
    })
}

pub(crate) fn role(stored: &str) -> Result<Role, DomainError> {
    Role::parse(stored).map_err(corrupt("member role"))
}

pub(crate) fn api_token(row: api_tokens::Model) -> Result<ApiToken, DomainError> {
    Ok(ApiToken {
        id: ApiTokenId::from_uuid(row.id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        name: ApiTokenName::parse(&row.name).map_err(corrupt("API token name"))?,
        scopes: Scopes::from_storage(&row.scopes).map_err(corrupt("API token scopes"))?,
        created_by: UserId::from_uuid(row.created_by),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    })
}

pub(crate) fn signing_key(row: signing_keys::Model) -> StoredSigningKey {
    StoredSigningKey {
        kid: row.kid,
        encrypted_secret: row.encrypted_secret,
        master_key_id: row.master_key_id,
        created_at: row.created_at,
    }
}

pub(crate) fn data_key(row: data_keys::Model) -> StoredDataKey {
    StoredDataKey {
        id: row.id,
        master_key_id: row.master_key_id,
        wrapped: row.wrapped,
    }
}

pub(crate) fn connection(row: connections::Model) -> Result<Connection, DomainError> {
    Ok(Connection {
        id: ConnectionId::from_uuid(row.id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        name: ConnectionName::parse(&row.name).map_err(corrupt("connection name"))?,
        connector: row.connector,
        auth_kind: known(
            AuthKind::parse(&row.auth_kind),
            "connection auth kind",
            &row.auth_kind,
        )?,
        status: known(
            ConnectionStatus::parse(&row.status),
            "connection status",
            &row.status,
        )?,
        settings: row.settings,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_tested_at: row.last_tested_at,
        last_test_ok: row.last_test_ok,
    })
}

/// A connection with its sealed credentials; the bytes are passed on untouched.
pub(crate) fn sealed_connection(
    mut row: connections::Model,
) -> Result<SealedConnection, DomainError> {
    let sealed_credentials = std::mem::take(&mut row.sealed_credentials);
    Ok(SealedConnection {
        connection: connection(row)?,
        sealed_credentials,
    })
}

/// A pending OAuth2 authorization as stored; its sealed secrets are passed on untouched.
pub(crate) fn pending_authorization(
    row: oauth_authorizations::Model,
) -> Result<PendingAuthorization, DomainError> {
    let scopes = row
        .scopes
        .as_array()
        .and_then(|scopes| {
            scopes
                .iter()
                .map(|scope| scope.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        })
        .ok_or_else(|| {
            DomainError::internal(CorruptData::Value {
                what: "OAuth2 authorization scopes",
                detail: "not an array of strings".to_owned(),
            })
        })?;
    Ok(PendingAuthorization {
        id: row.id,
        state_hash: row.state_hash,
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        user_id: UserId::from_uuid(row.user_id),
        connection_id: ConnectionId::from_uuid(row.connection_id),
        reauthorize: row.reauthorize,
        connector: row.connector,
        name: ConnectionName::parse(&row.name).map_err(corrupt("connection name"))?,
        settings: row.settings,
        client_id: row.client_id,
        authorization_url: row.authorization_url,
        token_url: row.token_url,
        revocation_url: row.revocation_url,
        scopes,
        redirect_uri: row.redirect_uri,
        sealed_secrets: row.sealed_secrets,
        created_at: row.created_at,
        expires_at: chrono::DateTime::from_timestamp_millis(row.expires_at_ms)
            .ok_or_else(|| corrupt_timestamp("OAuth2 authorization expiry", row.expires_at_ms))?,
    })
}

/// The row of a pending authorization of `workspace_id`.
pub(crate) fn pending_authorization_row(
    workspace_id: Uuid,
    pending: PendingAuthorization,
) -> oauth_authorizations::Model {
    oauth_authorizations::Model {
        state_hash: pending.state_hash,
        id: pending.id,
        workspace_id,
        user_id: pending.user_id.as_uuid(),
        connection_id: pending.connection_id.as_uuid(),
        reauthorize: pending.reauthorize,
        connector: pending.connector,
        name: pending.name.as_str().to_owned(),
        settings: pending.settings,
        client_id: pending.client_id,
        authorization_url: pending.authorization_url,
        token_url: pending.token_url,
        revocation_url: pending.revocation_url,
        scopes: JsonValue::Array(pending.scopes.into_iter().map(JsonValue::String).collect()),
        redirect_uri: pending.redirect_uri,
        sealed_secrets: pending.sealed_secrets,
        created_at: timestamps::stored(pending.created_at),
        expires_at_ms: pending.expires_at.timestamp_millis(),
    }
}

fn corrupt_timestamp(what: &'static str, ms: i64) -> DomainError {
    DomainError::internal(CorruptData::Value {
        what,
        detail: format!("{ms} ms is out of range"),
    })
}

fn workflow_name(stored: &str) -> Result<WorkflowName, DomainError> {
    WorkflowName::parse(stored).map_err(corrupt("workflow name"))
}

fn workflow_description(stored: Option<&str>) -> Result<Option<WorkflowDescription>, DomainError> {
    WorkflowDescription::parse(stored).map_err(corrupt("workflow description"))
}

/// A workflow from its row and the row of its current version.
pub(crate) fn workflow(
    row: workflows::Model,
    current: workflow_versions::Model,
) -> Result<Workflow, DomainError> {
    Ok(Workflow {
        id: WorkflowId::from_uuid(row.id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        name: workflow_name(&row.name)?,
        description: workflow_description(row.description.as_deref())?,
        version: row.current_version,
        definition: current.definition,
        active: row.active,
        webhook_key: row.webhook_key,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub(crate) fn workflow_version(
    row: workflow_versions::Model,
) -> Result<WorkflowVersion, DomainError> {
    Ok(WorkflowVersion {
        workflow_id: WorkflowId::from_uuid(row.workflow_id),
        version: row.version,
        name: workflow_name(&row.name)?,
        description: workflow_description(row.description.as_deref())?,
        definition: row.definition,
        created_by: UserId::from_uuid(row.created_by),
        created_at: row.created_at,
    })
}

/// `parsed`, or `Internal` naming the stored text that did not parse as a `what`.
fn known<T>(parsed: Option<T>, what: &'static str, stored: &str) -> Result<T, DomainError> {
    parsed.ok_or_else(|| {
        DomainError::internal(CorruptData::Value {
            what,
            detail: format!("unknown name `{stored}`"),
        })
    })
}

pub(crate) fn run_status(stored: &str) -> Result<RunStatus, DomainError> {
    known(RunStatus::parse(stored), "run status", stored)
}

/// A count stored as `INTEGER` (attempts, finish positions), which is never negative.
fn count(stored: i32, what: &'static str) -> Result<u32, DomainError> {
    u32::try_from(stored).map_err(|_| {
        DomainError::internal(CorruptData::Value {
            what,
            detail: format!("negative count {stored}"),
        })
    })
}

/// A count as stored; the engine never counts past `i32::MAX`, so more is a bug.
fn stored_count(count: u32, what: &'static str) -> Result<i32, DomainError> {
    i32::try_from(count)
        .map_err(|_| DomainError::internal(format!("{what} {count} does not fit its column")))
}

pub(crate) fn run(row: runs::Model) -> Result<Run, DomainError> {
    Ok(Run {
        id: RunId::from_uuid(row.id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        workflow_id: WorkflowId::from_uuid(row.workflow_id),
        workflow_version: row.workflow_version,
        status: run_status(&row.status)?,
        trigger: known(
            RunTrigger::parse(&row.trigger_kind),
            "run trigger",
            &row.trigger_kind,
        )?,
        input: row.input,
        output: row.output,
        error: row.error,
        retry_of: row.retry_of.map(RunId::from_uuid),
        retry_from_node: row.retry_from_node,
        cancel_requested: row.cancel_requested,
        last_seq: row.last_seq,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}

pub(crate) fn step(row: run_steps::Model) -> Result<StepRecord, DomainError> {
    Ok(StepRecord {
        status: known(StepStatus::parse(&row.status), "step status", &row.status)?,
        attempt: count(row.attempt, "step attempt")?,
        finish_order: row
            .finish_order
            .map(|order| count(order, "step finish order"))
            .transpose()?,
        node_id: row.node_id,
        input: row.input,
        output: row.output,
        error: row.error,
        branch: row.branch,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}

pub(crate) fn step_row(
    run_id: Uuid,
    workspace_id: Uuid,
    step: StepRecord,
) -> Result<run_steps::Model, DomainError> {
    Ok(run_steps::Model {
        run_id,
        node_id: step.node_id,
        workspace_id,
        status: step.status.as_str().to_owned(),
        attempt: stored_count(step.attempt, "step attempt")?,
        input: step.input,
        output: step.output,
        error: step.error,
        branch: step.branch,
        finish_order: step
            .finish_order
            .map(|order| stored_count(order, "step finish order"))
            .transpose()?,
        started_at: step.started_at.map(timestamps::stored),
        finished_at: step.finished_at.map(timestamps::stored),
    })
}

pub(crate) fn run_event(row: run_events::Model) -> Result<RunEvent, DomainError> {
    Ok(RunEvent {
        run_id: RunId::from_uuid(row.run_id),
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        seq: row.seq,
        at: row.at,
        kind: known(RunEventKind::parse(&row.kind), "run event kind", &row.kind)?,
        node_id: row.node_id,
        message: row.message,
        data: row.data,
    })
}

pub(crate) fn event_row(
    run_id: Uuid,
    workspace_id: Uuid,
    seq: i64,
    event: NewRunEvent,
) -> run_events::Model {
    run_events::Model {
        run_id,
        seq,
        workspace_id,
        at: timestamps::stored(event.at),
        kind: event.kind.as_str().to_owned(),
        node_id: event.node_id,
        message: event.message,
        data: event.data,
    }
}

//! Row -> domain conversions, the one place where stored text becomes typed values again.
//!
//! Stored values were valid when written, so a value that no longer parses is corruption
//! and surfaces as `Internal`, never as the caller's `Invalid` input.

use aos_domain::DomainError;
use aos_domain::api_token::{ApiToken, ApiTokenName, Scopes};
use aos_domain::ids::{ApiTokenId, UserId, WorkflowId, WorkspaceId};
use aos_domain::ports::StoredSigningKey;
use aos_domain::user::{Email, User, UserCredentials, UserName};
use aos_domain::workflow::{Workflow, WorkflowDescription, WorkflowName, WorkflowVersion};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use sea_orm::FromQueryResult;
use uuid::Uuid;

use crate::entities::{api_tokens, signing_keys, users, workflow_versions, workflows, workspaces};
use crate::error::corrupt;

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
        created_at: row.created_at,
    }
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

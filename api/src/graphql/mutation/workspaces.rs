//! Workspaces and their members.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;

use aos_domain::access::{Action, Principal, check_membership_change};
use aos_domain::ids::UserId;
use aos_domain::user::Email;
use aos_domain::workspace::{Role as DomainRole, WorkspaceName};

use crate::authz::{parse_id, scope_with_role};
use crate::error::{ApiError, ApiResult};
use crate::graphql::types::{MemberObject, Role, WorkspaceObject};
use crate::graphql::{app, request, workspace_scope};

#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    pub name: String,
}

#[derive(InputObject)]
pub struct RenameWorkspaceInput {
    pub id: ID,
    pub name: String,
}

#[derive(InputObject)]
pub struct DeleteWorkspaceInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct AddMemberInput {
    pub workspace_id: ID,
    pub email: String,
    pub role: Role,
}

#[derive(InputObject)]
pub struct UpdateMemberRoleInput {
    pub workspace_id: ID,
    pub user_id: ID,
    pub role: Role,
}

#[derive(InputObject)]
pub struct RemoveMemberInput {
    pub workspace_id: ID,
    pub user_id: ID,
}

#[derive(Default)]
pub struct WorkspaceMutation;

#[Object]
impl WorkspaceMutation {
    /// The caller becomes its first OWNER. User sessions only.
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> ApiResult<WorkspaceObject> {
        let principal = request(ctx)?.caller.principal()?;
        let Principal::User(user_id) = principal else {
            return Err(ApiError::forbidden("API tokens cannot create workspaces"));
        };
        let name = WorkspaceName::parse(&input.name)?;
        let workspace = app(ctx)?.store.create_workspace(*user_id, &name).await?;
        let scope = scope_with_role(
            principal,
            workspace.id,
            DomainRole::Owner,
            Action::ReadWorkspace,
        )?;
        Ok(WorkspaceObject { workspace, scope })
    }

    async fn rename_workspace(
        &self,
        ctx: &Context<'_>,
        input: RenameWorkspaceInput,
    ) -> ApiResult<WorkspaceObject> {
        let (state, scope) = workspace_scope(ctx, &input.id, Action::ManageMembers).await?;
        let name = WorkspaceName::parse(&input.name)?;
        let workspace = state.store.rename_workspace(&scope, &name).await?;
        Ok(WorkspaceObject { workspace, scope })
    }

    /// Deletes the workspace with everything in it. OWNER only.
    async fn delete_workspace(
        &self,
        ctx: &Context<'_>,
        input: DeleteWorkspaceInput,
    ) -> ApiResult<bool> {
        let (state, scope) = workspace_scope(ctx, &input.id, Action::DeleteWorkspace).await?;
        state.store.delete_workspace(&scope).await?;
        Ok(true)
    }

    /// Adds an existing account by e-mail. Only an OWNER may add another OWNER.
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        input: AddMemberInput,
    ) -> ApiResult<MemberObject> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageMembers).await?;
        let role = DomainRole::from(input.role);
        check_membership_change(&scope, None, Some(role), 0)?;
        let email = Email::parse(&input.email)?;
        let user = state
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(MemberObject(
            state.store.add_member(&scope, user.id, role).await?,
        ))
    }

    async fn update_member_role(
        &self,
        ctx: &Context<'_>,
        input: UpdateMemberRoleInput,
    ) -> ApiResult<MemberObject> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageMembers).await?;
        let user_id: UserId = parse_id(&input.user_id, "member")?;
        let current = state
            .store
            .member_role(&scope, user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        let role = DomainRole::from(input.role);
        check_membership_change(
            &scope,
            Some(current),
            Some(role),
            state.store.owner_count(&scope).await?,
        )?;
        Ok(MemberObject(
            state.store.set_member_role(&scope, user_id, role).await?,
        ))
    }

    /// Access ends at once: the member's sessions find the workspace gone on their next
    /// request, and the API tokens they created are revoked.
    async fn remove_member(&self, ctx: &Context<'_>, input: RemoveMemberInput) -> ApiResult<bool> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageMembers).await?;
        let user_id: UserId = parse_id(&input.user_id, "member")?;
        let current = state
            .store
            .member_role(&scope, user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        check_membership_change(
            &scope,
            Some(current),
            None,
            state.store.owner_count(&scope).await?,
        )?;
        state
            .store
            .remove_member(&scope, user_id, Utc::now())
            .await?;
        Ok(true)
    }
}

//! `WorkspaceStore`: a workspace, its members and its API tokens, always through a scope.
//!
//! Invariant: every query filters by `scope.workspace_id()` and runs in
//! `SeaStore::begin_scoped`. Removing a member revokes the tokens they created here in the
//! same transaction, so their access ends with the membership, not at token expiry.

use aos_domain::access::WorkspaceScope;
use aos_domain::api_token::ApiToken;
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::{ApiTokenId, UserId};
use aos_domain::ports::{NewApiToken, WorkspaceStore};
use aos_domain::quota::Quota;
use aos_domain::workspace::{Member, Role, Workspace, WorkspaceName};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IntoActiveModel, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};
use uuid::Uuid;

use super::quotas::refuse_past_limit;
use crate::convert::{self, PublicUserRow};
use crate::entities::{api_tokens, members, users, workspaces};
use crate::error::{internal, missing_or_conflict};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;

/// A membership with the member's public user columns, read in one join.
#[derive(Debug, FromQueryResult)]
struct MemberRow {
    user_id: Uuid,
    email: String,
    name: String,
    user_created_at: DateTime<Utc>,
    role: String,
    joined_at: DateTime<Utc>,
}

impl MemberRow {
    fn into_member(self) -> DomainResult<Member> {
        Ok(Member {
            user: convert::user(PublicUserRow {
                id: self.user_id,
                email: self.email,
                name: self.name,
                created_at: self.user_created_at,
            })?,
            role: convert::role(&self.role)?,
            joined_at: self.joined_at,
        })
    }
}

/// Members of `workspace_id` (only `user_id` when given), oldest first. The password
/// hash is not selected: the tenant role may not read it.
async fn member_rows(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    user_id: Option<Uuid>,
) -> DomainResult<Vec<Member>> {
    let mut query = members::Entity::find()
        .select_only()
        .column(members::Column::UserId)
        .column(users::Column::Email)
        .column(users::Column::Name)
        .column_as(users::Column::CreatedAt, "user_created_at")
        .column(members::Column::Role)
        .column_as(members::Column::CreatedAt, "joined_at")
        .join(JoinType::InnerJoin, members::Relation::Users.def())
        .filter(members::Column::WorkspaceId.eq(workspace_id));
    if let Some(user_id) = user_id {
        query = query.filter(members::Column::UserId.eq(user_id));
    }
    query
        .order_by_asc(members::Column::CreatedAt)
        .order_by_asc(members::Column::UserId)
        .into_model::<MemberRow>()
        .all(db)
        .await
        .map_err(internal("read members"))?
        .into_iter()
        .map(MemberRow::into_member)
        .collect()
}

async fn one_member(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    user_id: UserId,
) -> DomainResult<Member> {
    member_rows(db, workspace_id, Some(user_id.as_uuid()))
        .await?
        .into_iter()
        .next()
        .ok_or(DomainError::NotFound("member"))
}

async fn workspace_row(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> DomainResult<workspaces::Model> {
    workspaces::Entity::find_by_id(workspace_id)
        .one(db)
        .await
        .map_err(internal("read a workspace"))?
        .ok_or(DomainError::NotFound("workspace"))
}

/// Locks the workspace's owner rows (`FOR UPDATE` on Postgres; SQLite has one writer at a
/// time), so two concurrent changes that each take away a different owner run one after
/// the other and the second sees the first.
async fn lock_owners(db: &impl ConnectionTrait, workspace_id: Uuid) -> DomainResult<()> {
    members::Entity::find()
        .filter(members::Column::WorkspaceId.eq(workspace_id))
        .filter(members::Column::Role.eq(Role::Owner.as_str()))
        .lock_exclusive()
        .all(db)
        .await
        .map_err(internal("lock the owners"))?;
    Ok(())
}

/// The API checks this before a change with a friendlier message; checking it again inside
/// the change's transaction is what makes it hold under concurrent requests.
async fn ensure_an_owner_remains(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> DomainResult<()> {
    let owners = members::Entity::find()
        .filter(members::Column::WorkspaceId.eq(workspace_id))
        .filter(members::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await
        .map_err(internal("count owners"))?;
    if owners == 0 {
        return Err(DomainError::Conflict(
            "a workspace must keep at least one owner; make another member OWNER first".into(),
        ));
    }
    Ok(())
}

async fn commit(txn: crate::txn::Txn) -> DomainResult<()> {
    txn.commit()
        .await
        .map_err(internal("commit a workspace change"))
}

#[async_trait]
impl WorkspaceStore for SeaStore {
    async fn workspace(&self, scope: &WorkspaceScope) -> DomainResult<Workspace> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let row = workspace_row(&txn, scope.workspace_id().as_uuid()).await?;
        commit(txn).await?;
        convert::workspace(row)
    }

    async fn delete_workspace(&self, scope: &WorkspaceScope) -> DomainResult<()> {
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let deleted = workspaces::Entity::delete_many()
            .filter(workspaces::Column::Id.eq(scope.workspace_id().as_uuid()))
            .exec(&txn)
            .await
            .map_err(internal("delete a workspace"))?;
        if deleted.rows_affected == 0 {
            return Err(DomainError::NotFound("workspace"));
        }
        commit(txn).await
    }

    async fn rename_workspace(
        &self,
        scope: &WorkspaceScope,
        name: &WorkspaceName,
    ) -> DomainResult<Workspace> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let updated = workspaces::Entity::update_many()
            .col_expr(workspaces::Column::Name, Expr::value(name.as_str()))
            .filter(workspaces::Column::Id.eq(workspace_id))
            .exec(&txn)
            .await
            .map_err(internal("rename a workspace"))?;
        if updated.rows_affected == 0 {
            return Err(DomainError::NotFound("workspace"));
        }
        let row = workspace_row(&txn, workspace_id).await?;
        commit(txn).await?;
        convert::workspace(row)
    }

    async fn members(&self, scope: &WorkspaceScope) -> DomainResult<Vec<Member>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let members = member_rows(&txn, scope.workspace_id().as_uuid(), None).await?;
        commit(txn).await?;
        Ok(members)
    }

    async fn member_role(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
    ) -> DomainResult<Option<Role>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let member =
            members::Entity::find_by_id((scope.workspace_id().as_uuid(), user_id.as_uuid()))
                .one(&txn)
                .await
                .map_err(internal("read a member's role"))?;
        commit(txn).await?;
        member.map(|member| convert::role(&member.role)).transpose()
    }

    async fn owner_count(&self, scope: &WorkspaceScope) -> DomainResult<u64> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let owners = members::Entity::find()
            .filter(members::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .filter(members::Column::Role.eq(Role::Owner.as_str()))
            .count(&txn)
            .await
            .map_err(internal("count owners"))?;
        commit(txn).await?;
        Ok(owners)
    }

    async fn add_member(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        role: Role,
    ) -> DomainResult<Member> {
        let workspace_id = scope.workspace_id().as_uuid();
        let row = members::Model {
            workspace_id,
            user_id: user_id.as_uuid(),
            role: role.as_str().to_owned(),
            created_at: timestamps::now(),
        };
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        members::Entity::insert(row.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(missing_or_conflict(
                "add a member",
                "user",
                "this user is already a member of the workspace",
            ))?;
        refuse_past_limit(&txn, &self.quota_defaults, workspace_id, Quota::Members).await?;
        let member = one_member(&txn, workspace_id, user_id).await?;
        commit(txn).await?;
        Ok(member)
    }

    async fn set_member_role(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        role: Role,
    ) -> DomainResult<Member> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        lock_owners(&txn, workspace_id).await?;
        let updated = members::Entity::update_many()
            .col_expr(members::Column::Role, Expr::value(role.as_str()))
            .filter(members::Column::WorkspaceId.eq(workspace_id))
            .filter(members::Column::UserId.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(internal("change a member's role"))?;
        if updated.rows_affected == 0 {
            return Err(DomainError::NotFound("member"));
        }
        ensure_an_owner_remains(&txn, workspace_id).await?;
        let member = one_member(&txn, workspace_id, user_id).await?;
        commit(txn).await?;
        Ok(member)
    }

    async fn remove_member(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        lock_owners(&txn, workspace_id).await?;
        let removed = members::Entity::delete_many()
            .filter(members::Column::WorkspaceId.eq(workspace_id))
            .filter(members::Column::UserId.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(internal("remove a member"))?;
        if removed.rows_affected == 0 {
            return Err(DomainError::NotFound("member"));
        }
        ensure_an_owner_remains(&txn, workspace_id).await?;
        api_tokens::Entity::update_many()
            .col_expr(
                api_tokens::Column::RevokedAt,
                Expr::value(timestamps::stored(now)),
            )
            .filter(api_tokens::Column::WorkspaceId.eq(workspace_id))
            .filter(api_tokens::Column::CreatedBy.eq(user_id.as_uuid()))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal("revoke a removed member's API tokens"))?;
        commit(txn).await
    }

    async fn create_api_token(
        &self,
        scope: &WorkspaceScope,
        token: NewApiToken,
    ) -> DomainResult<ApiToken> {
        let row = api_tokens::Model {
            id: ApiTokenId::generate().as_uuid(),
            workspace_id: scope.workspace_id().as_uuid(),
            name: token.name.as_str().to_owned(),
            scopes: token.scopes.to_storage(),
            token_hash: token.token_hash,
            created_by: scope.actor().user_id().as_uuid(),
            created_at: timestamps::now(),
            expires_at: token.expires_at.map(timestamps::stored),
            last_used_at: None,
            revoked_at: None,
        };
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        // A clash of random secrets' hashes is not the caller's to fix: it stays internal.
        api_tokens::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("create an API token"))?;
        commit(txn).await?;
        convert::api_token(row)
    }

    async fn api_tokens(&self, scope: &WorkspaceScope) -> DomainResult<Vec<ApiToken>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let rows = api_tokens::Entity::find()
            .filter(api_tokens::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .order_by_desc(api_tokens::Column::Id)
            .all(&txn)
            .await
            .map_err(internal("list API tokens"))?;
        commit(txn).await?;
        rows.into_iter().map(convert::api_token).collect()
    }

    async fn revoke_api_token(
        &self,
        scope: &WorkspaceScope,
        id: ApiTokenId,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let revoked = api_tokens::Entity::update_many()
            .col_expr(
                api_tokens::Column::RevokedAt,
                Expr::value(timestamps::stored(now)),
            )
            .filter(api_tokens::Column::Id.eq(id.as_uuid()))
            .filter(api_tokens::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal("revoke an API token"))?;
        if revoked.rows_affected == 0 {
            return Err(DomainError::NotFound("API token"));
        }
        commit(txn).await
    }
}

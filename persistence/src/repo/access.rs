//! `AccessStore`: the unscoped look-ups that authentication and authorization need before
//! a `WorkspaceScope` can exist. They run as the connecting user, outside row-level
//! security, and return only what the authorization step needs.

use aos_domain::api_token::ApiToken;
use aos_domain::error::DomainResult;
use aos_domain::ids::{ApiTokenId, UserId, WorkspaceId};
use aos_domain::ports::{AccessStore, ObjectRef};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::convert;
use crate::entities::{api_tokens, connections, members, runs, workflows, workspaces};
use crate::error::{internal, missing_or_conflict};
use crate::store::SeaStore;
use crate::timestamps;

#[async_trait]
impl AccessStore for SeaStore {
    async fn membership(
        &self,
        user_id: UserId,
        workspace_id: WorkspaceId,
    ) -> DomainResult<Option<Role>> {
        members::Entity::find_by_id((workspace_id.as_uuid(), user_id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(internal("read a membership"))?
            .map(|member| convert::role(&member.role))
            .transpose()
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> DomainResult<Option<ApiToken>> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await
            .map_err(internal("find an API token"))?
            .map(convert::api_token)
            .transpose()
    }

    async fn touch_api_token(&self, id: ApiTokenId, now: DateTime<Utc>) -> DomainResult<()> {
        api_tokens::Entity::update_many()
            .col_expr(
                api_tokens::Column::LastUsedAt,
                Expr::value(timestamps::stored(now)),
            )
            .filter(api_tokens::Column::Id.eq(id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(internal("record an API token's use"))?;
        Ok(())
    }

    async fn workspaces_of(&self, user_id: UserId) -> DomainResult<Vec<(Workspace, Role)>> {
        let rows = workspaces::Entity::find()
            .find_also_related(members::Entity)
            .filter(members::Column::UserId.eq(user_id.as_uuid()))
            // Ids are UUIDv7, so id order is creation order.
            .order_by_asc(workspaces::Column::Id)
            .all(&self.db)
            .await
            .map_err(internal("list a user's workspaces"))?;
        rows.into_iter()
            .filter_map(|(workspace, member)| member.map(|member| (workspace, member)))
            .map(|(workspace, member)| {
                Ok((convert::workspace(workspace)?, convert::role(&member.role)?))
            })
            .collect()
    }

    async fn create_workspace(
        &self,
        owner: UserId,
        name: &WorkspaceName,
    ) -> DomainResult<Workspace> {
        let now = timestamps::now();
        let workspace = workspaces::Model {
            id: WorkspaceId::generate().as_uuid(),
            name: name.as_str().to_owned(),
            created_at: now,
        };
        let membership = members::Model {
            workspace_id: workspace.id,
            user_id: owner.as_uuid(),
            role: Role::Owner.as_str().to_owned(),
            created_at: now,
        };
        let txn = self.begin_unscoped_write().await?;
        workspaces::Entity::insert(workspace.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("create a workspace"))?;
        members::Entity::insert(membership.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(missing_or_conflict(
                "add a workspace's first owner",
                "user",
                "already a member of this workspace",
            ))?;
        txn.commit()
            .await
            .map_err(internal("commit a new workspace"))?;
        convert::workspace(workspace)
    }

    async fn locate(&self, object: ObjectRef) -> DomainResult<Option<WorkspaceId>> {
        let workspace_id: Option<Uuid> = match object {
            ObjectRef::Workflow(id) => workflows::Entity::find_by_id(id.as_uuid())
                .select_only()
                .column(workflows::Column::WorkspaceId)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(internal("locate a workflow"))?,
            ObjectRef::ApiToken(id) => api_tokens::Entity::find_by_id(id.as_uuid())
                .select_only()
                .column(api_tokens::Column::WorkspaceId)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(internal("locate an API token"))?,
            ObjectRef::Run(id) => runs::Entity::find_by_id(id.as_uuid())
                .select_only()
                .column(runs::Column::WorkspaceId)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(internal("locate a run"))?,
            ObjectRef::Connection(id) => connections::Entity::find_by_id(id.as_uuid())
                .select_only()
                .column(connections::Column::WorkspaceId)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(internal("locate a connection"))?,
        };
        Ok(workspace_id.map(WorkspaceId::from_uuid))
    }
}

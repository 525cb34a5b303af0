//! `UserStore`: accounts, looked up before any workspace is known (unscoped).

use aos_domain::error::DomainResult;
use aos_domain::ids::UserId;
use aos_domain::ports::UserStore;
use aos_domain::user::{Email, User, UserCredentials, UserName};
use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};

use crate::convert;
use crate::entities::users;
use crate::error::{conflict_on_unique, internal};
use crate::store::SeaStore;
use crate::timestamps;

impl SeaStore {
    async fn user_row_by_email(&self, email: &Email) -> DomainResult<Option<users::Model>> {
        users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await
            .map_err(internal("find a user by e-mail"))
    }
}

#[async_trait]
impl UserStore for SeaStore {
    async fn create_user(
        &self,
        email: &Email,
        name: &UserName,
        password_hash: &str,
    ) -> DomainResult<User> {
        let row = users::Model {
            id: UserId::generate().as_uuid(),
            email: email.as_str().to_owned(),
            name: name.as_str().to_owned(),
            password_hash: password_hash.to_owned(),
            created_at: timestamps::now(),
        };
        users::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map_err(conflict_on_unique(
                "create a user",
                "an account with this e-mail already exists",
            ))?;
        convert::user(row.into())
    }

    async fn user(&self, id: UserId) -> DomainResult<Option<User>> {
        users::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(internal("find a user"))?
            .map(|row| convert::user(row.into()))
            .transpose()
    }

    async fn user_by_email(&self, email: &Email) -> DomainResult<Option<User>> {
        self.user_row_by_email(email)
            .await?
            .map(|row| convert::user(row.into()))
            .transpose()
    }

    async fn credentials_by_email(&self, email: &Email) -> DomainResult<Option<UserCredentials>> {
        self.user_row_by_email(email)
            .await?
            .map(convert::credentials)
            .transpose()
    }
}

//! A user and the workspaces it owns, created straight through the store, for the
//! benchmarks that drive storage or the engine without the API.

use anyhow::anyhow;
use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::ports::{AccessStore, UserStore};
use aos_domain::user::{Email, User, UserName};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use aos_persistence::SeaStore;
use uuid::Uuid;

/// A new user with an e-mail address no other bench user has.
pub async fn bench_user(store: &SeaStore) -> anyhow::Result<User> {
    let email = Email::parse(&format!("bench.{}@example.com", Uuid::new_v4().simple()))
        .map_err(|error| anyhow!("an e-mail: {error:?}"))?;
    let name = UserName::parse("Bench").map_err(|error| anyhow!("{error:?}"))?;
    Ok(store.create_user(&email, &name, "$argon2id$x").await?)
}

/// A new workspace called `name`, owned by `owner`, with the owner's scope in it for
/// `action`.
pub async fn owned_workspace(
    store: &SeaStore,
    owner: &User,
    name: &str,
    action: Action,
) -> anyhow::Result<(Workspace, WorkspaceScope)> {
    let name = WorkspaceName::parse(name).map_err(|error| anyhow!("{error:?}"))?;
    let workspace = store.create_workspace(owner.id, &name).await?;
    let scope = authorize(
        &Principal::User(owner.id),
        workspace.id,
        Some(Role::Owner),
        action,
        "workspace",
    )?;
    Ok((workspace, scope))
}

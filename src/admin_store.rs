//! What the instance administrator's commands (`limits`, `quotas`) share: the store they
//! act on and the workspace id they are given.

use anyhow::Context;
use aos_domain::ids::WorkspaceId;
use aos_persistence::SeaStore;

use crate::cli::DatabaseArgs;

pub fn workspace_id(raw: &str) -> anyhow::Result<WorkspaceId> {
    raw.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{raw} is not a workspace id"))
}

pub async fn open(database: &DatabaseArgs) -> anyhow::Result<SeaStore> {
    let db = aos_persistence::connect(&database.url())
        .await
        .context("connecting to the database")?;
    Ok(SeaStore::new(db))
}

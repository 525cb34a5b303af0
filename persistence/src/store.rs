//! `SeaStore`, the one type that implements every storage port (`repo` holds the impls).

use sea_orm::DatabaseConnection;

use crate::database::Database;

/// The sea-orm implementation of `aos_domain::ports::Store`. Cheap to clone; clones share
/// the connection pool.
#[derive(Debug, Clone)]
pub struct SeaStore {
    pub(crate) db: DatabaseConnection,
    /// Where write transactions begin (see `Database::writer`).
    pub(crate) writer: DatabaseConnection,
}

impl SeaStore {
    pub fn new(database: Database) -> Self {
        let writer = database.writer.unwrap_or_else(|| database.conn.clone());
        Self {
            db: database.conn,
            writer,
        }
    }
}

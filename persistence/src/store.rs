//! `SeaStore`, the one type that implements every storage port (`repo` holds the impls).

use std::sync::{Arc, OnceLock};

use aos_domain::quota::QuotaLimits;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::Mutex;

use crate::database::Database;
use crate::repo::run_batch::RunBatcher;

/// The sea-orm implementation of `aos_domain::ports::Store`. Cheap to clone; clones share
/// the connection pool.
#[derive(Debug, Clone)]
pub struct SeaStore {
    pub(crate) db: DatabaseConnection,
    /// SQLite only: taken by every write transaction for its lifetime, so writers queue
    /// here in order instead of colliding on SQLite's write lock, whose busy handler
    /// sleeps in growing steps (up to 100 ms) and leaves the lock idle meanwhile. A lock
    /// of ours, not a one-connection pool: sqlx pings a connection each time it returns
    /// to the pool, and the next writer would wait for that too.
    pub(crate) write_lane: Option<Arc<Mutex<()>>>,
    /// Started with the first run it stores (it needs a runtime; `new` may run outside).
    run_batcher: Arc<OnceLock<RunBatcher>>,
    /// The instance's quotas, which a workspace's override replaces one by one.
    pub(crate) quota_defaults: Arc<QuotaLimits>,
}

// A port added to `Store` but not implemented here fails this crate's build, not only the
// binary's, where the store is wired in.
const _: fn() = || {
    fn implements_every_port<T: aos_domain::ports::Store>() {}
    implements_every_port::<SeaStore>();
};

impl SeaStore {
    pub fn new(database: Database) -> Self {
        let write_lane = (database.conn.get_database_backend() == DbBackend::Sqlite)
            .then(|| Arc::new(Mutex::new(())));
        Self {
            db: database.conn,
            write_lane,
            run_batcher: Arc::new(OnceLock::new()),
            quota_defaults: Arc::new(QuotaLimits::unlimited()),
        }
    }

    /// Enforces `defaults` on every workspace without an override of its own. Without
    /// this call nothing is limited (tools and tests that are not about quotas).
    pub fn with_quota_defaults(mut self, defaults: QuotaLimits) -> Self {
        self.quota_defaults = Arc::new(defaults);
        self
    }

    /// The group commit of complete runs, on this store's pool and write lane.
    pub(crate) fn run_batcher(&self) -> &RunBatcher {
        self.run_batcher.get_or_init(|| {
            // Its own store holds no batcher, so the task ends once this store is gone.
            RunBatcher::start(Self {
                db: self.db.clone(),
                write_lane: self.write_lane.clone(),
                run_batcher: Arc::new(OnceLock::new()),
                quota_defaults: Arc::clone(&self.quota_defaults),
            })
        })
    }
}

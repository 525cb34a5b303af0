//! Opening the database, migrating it and checking that it answers.
//!
//! SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout,
//! so readers never block the single writer and a writer waits for the lock instead of
//! failing. Postgres gets a connection pool; migrations there run under an advisory lock,
//! because several nodes may start against one database at the same time.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use aos_migrations::Migrator;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; more connections only serve concurrent readers.
const SQLITE_POOL_SIZE: u32 = 8;
const POSTGRES_POOL_SIZE: u32 = 16;
/// Postgres ends a session left idle inside a transaction this long, releasing its locks.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// An arbitrary constant that names "migrations of this database" for `pg_advisory_lock`.
const MIGRATION_LOCK_KEY: i64 = 0x616f_735f_6d69_6772;

/// Why the database could not be opened or migrated. Messages never include the URL,
/// which may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("unsupported database URL: expected `sqlite:` or `postgres://`")]
    UnsupportedUrl,
    #[error("invalid SQLite URL")]
    InvalidSqliteUrl(#[source] sea_orm::sqlx::Error),
    #[error("cannot create the SQLite database directory {path}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the database")]
    Connect(#[source] DbErr),
    #[error("cannot migrate the database")]
    Migrate(#[source] DbErr),
}

/// An open connection pool. Cheap to clone; every clone shares the pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) conn: DatabaseConnection,
}

impl Database {
    /// Whether this is Postgres (true) or SQLite (false).
    pub fn is_postgres(&self) -> bool {
        self.conn.get_database_backend() == DbBackend::Postgres
    }

    /// Closes every connection of the pool, e.g. before dropping a test database.
    pub async fn close(self) -> Result<(), PersistenceError> {
        self.conn.close().await.map_err(PersistenceError::Connect)
    }
}

/// Opens a pool for `database_url`: `sqlite:` (the file and its directory are created when
/// missing) or `postgres://` / `postgresql://`.
pub async fn connect(database_url: &str) -> Result<Database, PersistenceError> {
    let mut options = ConnectOptions::new(database_url);
    // Statement logging would print every query at INFO; tracing spans cover what we need.
    options.sqlx_logging(false).acquire_timeout(ACQUIRE_TIMEOUT);
    if database_url.starts_with("sqlite:") {
        configure_sqlite(database_url, &mut options)?;
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        options.max_connections(POSTGRES_POOL_SIZE);
        options.map_sqlx_postgres_opts(|postgres| {
            // Our transactions never wait on anything but the database. One that sits idle
            // belongs to a stalled process (stopped, swapped out, in a debugger) and holds
            // its row locks: a claim skips a locked run, so without this limit the run
            // would wait for the stall to end instead of only for its lease.
            postgres.options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            )])
        });
    } else {
        return Err(PersistenceError::UnsupportedUrl);
    }
    let conn = sea_orm::Database::connect(options)
        .await
        .map_err(PersistenceError::Connect)?;
    Ok(Database { conn })
}

fn configure_sqlite(url: &str, options: &mut ConnectOptions) -> Result<(), PersistenceError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        // Each pooled connection to a private in-memory database would see another one.
        options.max_connections(1);
    } else {
        create_parent_directory(url)?;
        options.max_connections(SQLITE_POOL_SIZE);
    }
    // A connection to a local file does not go stale the way a socket does, and the test
    // is one more round trip to the connection's thread on every acquire.
    options.test_before_acquire(false);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable across process crashes in WAL mode; only an OS crash can lose the
            // last commits, which is the usual trade for an embedded server.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
    });
    Ok(())
}

fn create_parent_directory(url: &str) -> Result<(), PersistenceError> {
    let sqlite = SqliteConnectOptions::from_str(url).map_err(PersistenceError::InvalidSqliteUrl)?;
    match sqlite.get_filename().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| PersistenceError::CreateDirectory {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Applies every pending migration; a no-op when the schema is current.
pub async fn migrate(db: &Database) -> Result<(), PersistenceError> {
    if !db.is_postgres() {
        return Migrator::up(&db.conn, None)
            .await
            .map_err(PersistenceError::Migrate);
    }
    // The lock lives as long as this transaction, on its own pooled connection, while the
    // migrations run on others; it is released by the commit (or by the drop on failure).
    let lock = db.conn.begin().await.map_err(PersistenceError::Migrate)?;
    lock.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
    ))
    .await
    .map_err(PersistenceError::Migrate)?;
    Migrator::up(&db.conn, None)
        .await
        .map_err(PersistenceError::Migrate)?;
    lock.commit().await.map_err(PersistenceError::Migrate)
}

/// Whether the database answers a trivial query now (for `/readyz`).
pub async fn ping(db: &Database) -> bool {
    db.conn.ping().await.is_ok()
}

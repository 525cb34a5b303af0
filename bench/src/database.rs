//! A database of the benchmark's own, created fresh and removed afterwards (by
//! `aos-testkit`): a SQLite file in a new temporary directory, or `aos_bench_<random>` on
//! the Postgres server given, with a temporary data dir for the server beside it.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use tempfile::TempDir;

/// Names the benchmark's databases and directories.
const PREFIX: &str = "aos_bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

pub struct FreshDatabase {
    /// Where the server keeps its data (its master key, and the SQLite file).
    pub data_dir: PathBuf,
    pub url: String,
    backend: Backend,
    database: aos_testkit::FreshDatabase,
    /// The data dir when the database brings none (Postgres).
    _data_dir: Option<TempDir>,
}

impl FreshDatabase {
    pub async fn create(backend: Backend, postgres_server: &str) -> anyhow::Result<Self> {
        let (database, data_dir, own_data_dir) = match backend {
            // The server keeps its SQLite file in its data dir.
            Backend::Sqlite => {
                let database = aos_testkit::FreshDatabase::sqlite(PREFIX, "automationos.db")?;
                let data_dir = database
                    .dir()
                    .context("a SQLite database's directory")?
                    .to_owned();
                (database, data_dir, None)
            }
            Backend::Postgres => {
                let own = tempfile::Builder::new()
                    .prefix(&format!("{PREFIX}_"))
                    .tempdir()
                    .context("create the benchmark's data dir")?;
                let database =
                    aos_testkit::FreshDatabase::postgres(postgres_server, PREFIX).await?;
                (database, own.path().to_owned(), Some(own))
            }
        };
        Ok(Self {
            data_dir,
            url: database.url().to_owned(),
            backend,
            database,
            _data_dir: own_data_dir,
        })
    }

    /// The URL to hand the server, when it must not use its SQLite default.
    pub fn server_database_url(&self) -> Option<&str> {
        (self.backend == Backend::Postgres).then_some(self.url.as_str())
    }

    /// Best effort: leftovers are litter, not a failed benchmark.
    pub async fn destroy(self) {
        self.database.destroy().await;
        // The data dir goes with `self`.
    }
}

//! Fresh, migrated databases per test (the part of `persistence/tests/store/support.rs`
//! these tests need).
//!
//! SQLite tests use a file in a new temporary directory. Postgres tests run when
//! `AOS_TEST_DATABASE_URL` names a server: each creates `aos_t_<random>` through that URL
//! and drops it afterwards, best-effort, even when the test panics. Without the variable a
//! Postgres test reports that it was skipped and passes.

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use aos_persistence::{Database, SeaStore, connect, migrate};
use futures::FutureExt;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

pub const POSTGRES_URL_VARIABLE: &str = "AOS_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `test` against a fresh database on `backend`, then removes the database.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(SeaStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = Fixture::create(backend).await else {
        eprintln!("skipped: set {POSTGRES_URL_VARIABLE} to run the Postgres tests");
        return;
    };
    let store = SeaStore::new(fixture.database.clone());
    let outcome = AssertUnwindSafe(test(store)).catch_unwind().await;
    fixture.destroy().await;
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

struct Fixture {
    database: Database,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Fixture {
    async fn create(backend: Backend) -> Option<Self> {
        let fixture = match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await?,
        };
        migrate(&fixture.database)
            .await
            .expect("migrate the test database");
        Some(fixture)
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let file = dir.path().join("aos.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let database = connect(&url).await.expect("open a SQLite test database");
        Self {
            database,
            place: Place::Sqlite(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_VARIABLE).ok()?;
        let name = format!("aos_t_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_connection(&admin_url).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        drop(admin.close().await);
        let mut url = url::Url::parse(&admin_url).expect("a valid Postgres URL");
        url.set_path(&name);
        let database = connect(url.as_str())
            .await
            .expect("connect to the test database");
        Some(Self {
            database,
            place: Place::Postgres { admin_url, name },
        })
    }

    async fn destroy(self) {
        // Best effort: a leftover test database is litter, not a failure.
        drop(self.database.close().await);
        match self.place {
            Place::Sqlite(dir) => drop(dir.close()),
            Place::Postgres { admin_url, name } => {
                let admin = admin_connection(&admin_url).await;
                let dropped = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                if let Err(error) = dropped {
                    eprintln!("could not drop test database {name}: {error}");
                }
                drop(admin.close().await);
            }
        }
    }
}

async fn admin_connection(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .expect("connect to the Postgres server named by AOS_TEST_DATABASE_URL")
}

/// Declares each listed `async fn(SeaStore)` as a test on SQLite and on Postgres.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

pub(crate) use on_every_backend;

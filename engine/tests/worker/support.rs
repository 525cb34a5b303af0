//! Fresh, migrated databases per test (the part of `persistence/tests/store/support.rs`
//! these tests need).
//!
//! SQLite tests use a file in a new temporary directory. Postgres tests run when
//! `AOS_TEST_DATABASE_URL` names a server: each creates `aos_t_<random>` through that URL
//! and drops it afterwards, best-effort, even when the test panics. Without the variable a
//! Postgres test reports that it was skipped and passes. Creating and removing the
//! databases is `aos-testkit`'s; connecting and migrating is done here.

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use aos_persistence::{Database, SeaStore, connect, migrate};
use aos_testkit::{FreshDatabase, POSTGRES_URL_VARIABLE, postgres_admin_url};
use futures::FutureExt;

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
    fresh: FreshDatabase,
}

impl Fixture {
    async fn create(backend: Backend) -> Option<Self> {
        let fresh = match backend {
            Backend::Sqlite => {
                FreshDatabase::sqlite("aos_t", "aos.db").expect("create a SQLite test database")
            }
            Backend::Postgres => FreshDatabase::postgres(&postgres_admin_url()?, "aos_t")
                .await
                .expect("create the test database"),
        };
        let database = connect(fresh.url())
            .await
            .expect("connect to the test database");
        migrate(&database).await.expect("migrate the test database");
        Some(Self { database, fresh })
    }

    async fn destroy(self) {
        // Best effort: a leftover test database is litter, not a failure.
        drop(self.database.close().await);
        self.fresh.destroy().await;
    }
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

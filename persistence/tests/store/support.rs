//! The harness: every test gets a fresh, migrated database of its own.
//!
//! SQLite tests use a file in a new temporary directory (one level deeper than the
//! directory that exists, so `connect` has to create it). Postgres tests run when
//! `AOS_TEST_DATABASE_URL` names a server: each creates `aos_t_<random>` through that URL
//! and drops it afterwards, best-effort, even when the test panics. Without the variable a
//! Postgres test reports that it was skipped and passes. Creating and removing the
//! databases is `aos-testkit`'s; connecting and migrating is done here.

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::ids::{UserId, WorkspaceId};
use aos_domain::ports::{AccessStore, UserStore};
use aos_domain::user::{Email, User, UserName};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use aos_persistence::{Database, SeaStore, connect, migrate};
use aos_testkit::{FreshDatabase, POSTGRES_URL_VARIABLE, postgres_admin_url};
use futures::FutureExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Postgres, connecting as a fresh non-superuser role that owns the database and runs
    /// the migrations, as on a managed server.
    PostgresAsOwner,
}

/// What a test works with.
#[derive(Clone)]
pub struct Ctx {
    pub store: SeaStore,
    pub database: Database,
}

impl Ctx {
    /// A new user called `name`, with an e-mail address no other test user has.
    pub async fn user(&self, name: &str) -> User {
        let unique = uuid::Uuid::new_v4().simple();
        let email = Email::parse(&format!("{name}.{unique}@example.com")).expect("valid e-mail");
        let name = UserName::parse(name).expect("valid test name");
        self.store
            .create_user(&email, &name, "$argon2id$test-hash")
            .await
            .expect("create a test user")
    }

    /// A new workspace owned by `owner`, with the owner's scope in it.
    pub async fn workspace(&self, owner: &User, name: &str) -> (Workspace, WorkspaceScope) {
        let name = WorkspaceName::parse(name).expect("valid test workspace name");
        let workspace = self
            .store
            .create_workspace(owner.id, &name)
            .await
            .expect("create a test workspace");
        let scope = scope(owner.id, workspace.id, Role::Owner);
        (workspace, scope)
    }
}

/// A scope as the API would mint it after checking `user`'s `role` in `workspace_id`.
pub fn scope(user: UserId, workspace_id: WorkspaceId, role: Role) -> WorkspaceScope {
    authorize(
        &Principal::User(user),
        workspace_id,
        Some(role),
        Action::ReadWorkspace,
        "workspace",
    )
    .expect("every role may read its workspace")
}

/// Runs `test` against a fresh database on `backend`, then removes the database.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = Fixture::create(backend).await else {
        eprintln!("skipped: set {POSTGRES_URL_VARIABLE} to run the Postgres tests");
        return;
    };
    let ctx = Ctx {
        store: SeaStore::new(fixture.database.clone()),
        database: fixture.database.clone(),
    };
    let outcome = AssertUnwindSafe(test(ctx)).catch_unwind().await;
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
            // One level deeper than the directory that exists, so `connect` has to create it.
            Backend::Sqlite => FreshDatabase::sqlite("aos_t", "not-yet-there/aos.db")
                .expect("create a SQLite test database"),
            Backend::Postgres => FreshDatabase::postgres(&postgres_admin_url()?, "aos_t")
                .await
                .expect("create the test database"),
            // A managed server's application role: it may create roles, nothing more.
            Backend::PostgresAsOwner => {
                FreshDatabase::postgres_with_owner(&postgres_admin_url()?, "aos_t")
                    .await
                    .expect("create the test database and its owner role")
            }
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

/// Declares each listed `async fn(Ctx)` as a test on SQLite and on Postgres.
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
        crate::support::on_postgres!($($name),*);
    };
}

/// Declares each listed `async fn(Ctx)` as a test on Postgres only.
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {
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

pub(crate) use {on_every_backend, on_postgres};

//! The harness: every test gets a fresh, migrated database of its own.
//!
//! SQLite tests use a file in a new temporary directory (one level deeper than the
//! directory that exists, so `connect` has to create it). Postgres tests run when
//! `AOS_TEST_DATABASE_URL` names a server: each creates `aos_t_<random>` through that URL
//! and drops it afterwards, best-effort, even when the test panics. Without the variable a
//! Postgres test reports that it was skipped and passes.

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::ids::{UserId, WorkspaceId};
use aos_domain::ports::{AccessStore, UserStore};
use aos_domain::user::{Email, User, UserName};
use aos_domain::workspace::{Role, Workspace, WorkspaceName};
use aos_persistence::{Database, SeaStore, connect, migrate};
use futures::FutureExt;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

pub const POSTGRES_URL_VARIABLE: &str = "AOS_TEST_DATABASE_URL";

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
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
        owner: Option<String>,
    },
}

impl Fixture {
    async fn create(backend: Backend) -> Option<Self> {
        let fixture = match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres(false).await?,
            Backend::PostgresAsOwner => Self::postgres(true).await?,
        };
        migrate(&fixture.database)
            .await
            .expect("migrate the test database");
        Some(fixture)
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let file = dir.path().join("not-yet-there").join("aos.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let database = connect(&url).await.expect("open a SQLite test database");
        Self {
            database,
            place: Place::Sqlite(dir),
        }
    }

    async fn postgres(as_owner: bool) -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_VARIABLE).ok()?;
        let name = format!("aos_t_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_connection(&admin_url).await;
        let mut url = url::Url::parse(&admin_url).expect("a valid Postgres URL");
        url.set_path(&name);
        let owner = if as_owner {
            // A managed server's application role: it may create roles, nothing more.
            let password = uuid::Uuid::new_v4().simple().to_string();
            admin
                .execute_unprepared(&format!(
                    "CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{password}'"
                ))
                .await
                .expect("create the owner role");
            url.set_username(&name).expect("a URL with a user");
            url.set_password(Some(&password))
                .expect("a URL with a password");
            Some(name.clone())
        } else {
            None
        };
        let owner_clause = owner
            .as_ref()
            .map(|role| format!(" OWNER {role}"))
            .unwrap_or_default();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}{owner_clause}"))
            .await
            .expect("create the test database");
        drop(admin.close().await);
        let database = connect(url.as_str())
            .await
            .expect("connect to the test database");
        Some(Self {
            database,
            place: Place::Postgres {
                admin_url,
                name,
                owner,
            },
        })
    }

    async fn destroy(self) {
        // Best effort: a leftover test database is litter, not a failure.
        drop(self.database.close().await);
        match self.place {
            Place::Sqlite(dir) => drop(dir.close()),
            Place::Postgres {
                admin_url,
                name,
                owner,
            } => {
                let admin = admin_connection(&admin_url).await;
                let dropped = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                if let Err(error) = dropped {
                    eprintln!("could not drop test database {name}: {error}");
                }
                if let Some(role) = owner {
                    let dropped = admin
                        .execute_unprepared(&format!("DROP ROLE IF EXISTS {role}"))
                        .await;
                    if let Err(error) = dropped {
                        eprintln!("could not drop test role {role}: {error}");
                    }
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

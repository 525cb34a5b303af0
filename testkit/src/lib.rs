//! Fresh, throw-away databases for tests and benchmarks (dev-only; nothing shipped uses it).
//!
//! The storage tests, the engine's worker tests, the black-box tests and the benchmarks each
//! need a database of their own that nothing else touches and that is gone afterwards: a
//! SQLite file in a new temporary directory, or `<prefix>_<random>` created on the Postgres
//! server named by an admin URL (for tests, by [`POSTGRES_URL_VARIABLE`]) and dropped with
//! `DROP DATABASE ... WITH (FORCE)`. This crate is the one place that does that, so they
//! all name, address and clean up their databases the same way.
//!
//! It works at the level of URLs: it creates the database and hands out its URL; callers
//! connect and migrate (with `aos-persistence`) or give the URL to a server. So it depends
//! on none of the project's crates and any of them can use it.

use std::path::Path;

use anyhow::{Context, anyhow, ensure};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};
use tempfile::TempDir;
use url::Url;
use uuid::Uuid;

/// Names the Postgres server the tests run against; unset, Postgres tests are skipped.
pub const POSTGRES_URL_VARIABLE: &str = "AOS_TEST_DATABASE_URL";

/// The Postgres admin URL from [`POSTGRES_URL_VARIABLE`], when it is set (and not blank).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A database of its own, removed by [`FreshDatabase::destroy`] or, failing that, on drop.
///
/// Removal is best effort: a leftover database is litter, not a failure, so errors are
/// printed, not returned.
pub struct FreshDatabase {
    url: String,
    place: Place,
}

enum Place {
    Sqlite(TempDir),
    /// `None` once removed.
    Postgres(Option<Postgres>),
}

struct Postgres {
    admin_url: String,
    name: String,
    /// The role created to own the database, removed after it.
    owner: Option<String>,
}

impl FreshDatabase {
    /// A SQLite database at `file` (a relative path, which may name directories that do not
    /// exist yet) inside a new temporary directory `<prefix>_<random>`. Nothing is created
    /// in it: the URL carries `mode=rwc`, so connecting creates the file.
    pub fn sqlite(prefix: &str, file: impl AsRef<Path>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}_"))
            .tempdir()
            .context("create a temporary directory")?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join(file).display());
        Ok(Self {
            url,
            place: Place::Sqlite(dir),
        })
    }

    /// A new, empty database `<prefix>_<random>` on the Postgres server `admin_url` names,
    /// reached as the same user.
    pub async fn postgres(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        Self::create_postgres(admin_url, prefix, false).await
    }

    /// Like [`FreshDatabase::postgres`], but the database is owned by a new login role of
    /// the same name, which may create roles and nothing more (as an application's role on
    /// a managed server), and the URL connects as that role. The role is dropped with the
    /// database.
    pub async fn postgres_with_owner(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        Self::create_postgres(admin_url, prefix, true).await
    }

    async fn create_postgres(
        admin_url: &str,
        prefix: &str,
        with_owner: bool,
    ) -> anyhow::Result<Self> {
        ensure!(
            is_name_prefix(prefix),
            "{prefix:?} is not a database name prefix (lowercase letters, digits and _, at most 30)"
        );
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let mut url = database_url(admin_url, &name)?;
        let admin = admin_connection(admin_url).await?;
        let owner = with_owner.then(|| name.clone());
        // From here on the value removes what was created, should a step below fail.
        let mut database = Self {
            url: String::new(),
            place: Place::Postgres(Some(Postgres {
                admin_url: admin_url.to_owned(),
                name: name.clone(),
                owner: owner.clone(),
            })),
        };
        let created = async {
            if let Some(role) = &owner {
                let password = Uuid::new_v4().simple().to_string();
                admin
                    .execute_unprepared(&format!(
                        "CREATE ROLE \"{role}\" LOGIN CREATEROLE PASSWORD '{password}'"
                    ))
                    .await
                    .with_context(|| format!("create test role {role}"))?;
                url.set_username(role)
                    .map_err(|()| anyhow!("{admin_url} cannot carry a user name"))?;
                url.set_password(Some(&password))
                    .map_err(|()| anyhow!("{admin_url} cannot carry a password"))?;
            }
            let owner_clause = owner
                .as_ref()
                .map(|role| format!(" OWNER \"{role}\""))
                .unwrap_or_default();
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\"{owner_clause}"))
                .await
                .with_context(|| format!("create test database {name}"))?;
            anyhow::Ok(())
        }
        .await;
        drop(admin.close().await);
        created?;
        database.url = url.into();
        Ok(database)
    }

    /// The URL to connect to (or to hand a server).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory a SQLite database lives in; `None` on Postgres.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Sqlite(dir) => Some(dir.path()),
            Place::Postgres(_) => None,
        }
    }

    /// Removes the database (and its directory or owner role). Close your connections
    /// first; on Postgres any left open are cut.
    pub async fn destroy(mut self) {
        if let Place::Postgres(postgres) = &mut self.place
            && let Some(postgres) = postgres.take()
        {
            postgres.remove().await;
        }
        // A SQLite database's directory goes with `self`.
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let Place::Postgres(postgres) = &mut self.place else {
            return;
        };
        let Some(postgres) = postgres.take() else {
            return;
        };
        // Drop may run inside an async runtime, which cannot be blocked on; a short-lived
        // runtime on its own thread can.
        drop(std::thread::spawn(move || postgres.remove_blocking()).join());
    }
}

impl Postgres {
    fn remove_blocking(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => runtime.block_on(self.remove()),
            Err(error) => eprintln!("could not drop test database {}: {error}", self.name),
        }
    }

    async fn remove(self) {
        let admin = match admin_connection(&self.admin_url).await {
            Ok(admin) => admin,
            Err(error) => {
                eprintln!("could not drop test database {}: {error:#}", self.name);
                return;
            }
        };
        let dropped = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await;
        if let Err(error) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
        if let Some(role) = &self.owner {
            let dropped = admin
                .execute_unprepared(&format!("DROP ROLE IF EXISTS \"{role}\""))
                .await;
            if let Err(error) = dropped {
                eprintln!("could not drop test role {role}: {error}");
            }
        }
        drop(admin.close().await);
    }
}

async fn admin_connection(admin_url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(admin_url);
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .with_context(|| format!("connect to the Postgres server {admin_url}"))
}

/// `admin_url` with its database (the path) replaced by `name`; the rest is kept.
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(admin_url).with_context(|| format!("a Postgres URL: {admin_url}"))?;
    url.set_path(name);
    Ok(url)
}

/// Short enough to leave room for `_<32 hex digits>` in Postgres's 63, and the same quoted
/// or not.
fn is_name_prefix(prefix: &str) -> bool {
    (1..=30).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_database_name(server_url: &str, name: &str) -> String {
        database_url(server_url, name)
            .expect("a valid URL")
            .to_string()
    }

    #[test]
    fn database_name_replaces_the_path_and_keeps_parameters() {
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/test", "aos_bb_1"),
            "postgres://postgres@127.0.0.1:5432/aos_bb_1"
        );
        assert_eq!(
            with_database_name("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database_name("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }

    #[test]
    fn prefixes_must_be_plain_lowercase_names() {
        assert!(is_name_prefix("aos_t"));
        assert!(is_name_prefix("aos_bench"));
        assert!(!is_name_prefix(""));
        assert!(!is_name_prefix("Aos"));
        assert!(!is_name_prefix("aos-t"));
        assert!(!is_name_prefix("1aos"));
        assert!(!is_name_prefix("aos\"; DROP"));
        assert!(!is_name_prefix(&"a".repeat(31)));
    }

    #[test]
    fn a_sqlite_database_lives_in_a_directory_removed_with_it() {
        let database = FreshDatabase::sqlite("aos_kit", Path::new("deeper").join("aos.db"))
            .expect("create a SQLite test database");
        let dir = database.dir().expect("a directory").to_owned();
        assert!(dir.is_dir());
        assert!(
            dir.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("aos_kit_"))
        );
        let file = dir.join("deeper").join("aos.db");
        assert_eq!(
            database.url(),
            format!("sqlite://{}?mode=rwc", file.display())
        );
        drop(database);
        assert!(!dir.exists());
    }

    /// Whether `sql` (on the admin connection) returns a row.
    async fn found(admin_url: &str, sql: String) -> bool {
        let admin = admin_connection(admin_url).await.expect("connect");
        let found = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .expect("query the catalogue");
        drop(admin.close().await);
        found.is_some()
    }

    async fn exists(admin_url: &str, name: &str) -> bool {
        found(
            admin_url,
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        )
        .await
    }

    async fn role_exists(admin_url: &str, name: &str) -> bool {
        found(
            admin_url,
            format!("SELECT 1 FROM pg_roles WHERE rolname = '{name}'"),
        )
        .await
    }

    fn name_in(url: &str) -> String {
        Url::parse(url)
            .expect("a URL")
            .path()
            .trim_start_matches('/')
            .to_owned()
    }

    #[tokio::test]
    async fn a_postgres_database_is_gone_after_destroy_and_after_drop() {
        let Some(admin_url) = postgres_admin_url() else {
            eprintln!("skipped: set {POSTGRES_URL_VARIABLE} to run the Postgres tests");
            return;
        };
        let destroyed = FreshDatabase::postgres(&admin_url, "aos_kit")
            .await
            .expect("create a test database");
        let dropped = FreshDatabase::postgres_with_owner(&admin_url, "aos_kit")
            .await
            .expect("create a test database with an owner");
        let (destroyed_name, dropped_name) = (name_in(destroyed.url()), name_in(dropped.url()));
        assert!(destroyed_name.starts_with("aos_kit_"));
        assert!(exists(&admin_url, &destroyed_name).await);
        assert!(exists(&admin_url, &dropped_name).await);
        assert!(role_exists(&admin_url, &dropped_name).await);
        assert_eq!(
            Url::parse(dropped.url()).expect("a URL").username(),
            dropped_name,
            "the owner's URL connects as the owner"
        );

        destroyed.destroy().await;
        drop(dropped);
        assert!(!exists(&admin_url, &destroyed_name).await);
        assert!(!exists(&admin_url, &dropped_name).await);
        assert!(!role_exists(&admin_url, &dropped_name).await);
    }
}

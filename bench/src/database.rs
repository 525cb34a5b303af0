//! A database of the benchmark's own, created fresh and removed afterwards: a SQLite file
//! in a new temporary directory, or `aos_bench_<random>` on the Postgres server given.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

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
    postgres: Option<Postgres>,
}

struct Postgres {
    server_url: String,
    name: String,
}

impl FreshDatabase {
    pub async fn create(backend: Backend, postgres_server: &str) -> anyhow::Result<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("aos-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir).context("create the benchmark's data dir")?;
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("automationos.db").display()
                ),
                data_dir,
                postgres: None,
            }),
            Backend::Postgres => {
                let name = format!("aos_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = admin(postgres_server).await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| format!("create database {name}"))?;
                drop(admin.close().await);
                let mut url = url::Url::parse(postgres_server).context("a Postgres URL")?;
                url.set_path(&name);
                Ok(Self {
                    data_dir,
                    url: url.to_string(),
                    postgres: Some(Postgres {
                        server_url: postgres_server.to_owned(),
                        name,
                    }),
                })
            }
        }
    }

    /// The URL to hand the server, when it must not use its SQLite default.
    pub fn server_database_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|_| self.url.as_str())
    }

    /// Best effort: leftovers are litter, not a failed benchmark.
    pub async fn destroy(self) {
        if let Some(postgres) = self.postgres
            && let Ok(admin) = admin(&postgres.server_url).await
        {
            let dropped = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    postgres.name
                ))
                .await;
            if let Err(error) = dropped {
                eprintln!("could not drop {}: {error}", postgres.name);
            }
            drop(admin.close().await);
        }
        drop(std::fs::remove_dir_all(&self.data_dir));
    }
}

async fn admin(server_url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(server_url);
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .with_context(|| format!("connect to the Postgres server {server_url}"))
}

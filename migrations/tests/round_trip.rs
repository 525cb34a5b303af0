//! The schema can be applied, rolled back and applied again. Postgres is covered as well
//! when `AOS_TEST_DATABASE_URL` names a server (a fresh database is created and dropped).

use aos_migrations::Migrator;
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

async fn round_trip(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("apply every migration");
    Migrator::up(db, None)
        .await
        .expect("applying again is a no-op");
    Migrator::down(db, None)
        .await
        .expect("roll every migration back");
    assert!(
        Migrator::get_applied_migrations(db)
            .await
            .expect("list applied")
            .is_empty()
    );
    Migrator::up(db, None)
        .await
        .expect("apply again after a rollback");
    assert_eq!(
        Migrator::get_pending_migrations(db)
            .await
            .expect("list pending")
            .len(),
        0
    );
}

#[tokio::test]
async fn migrations_round_trip_on_sqlite() {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1);
    let db = Database::connect(options).await.expect("open SQLite");
    db.execute_unprepared("PRAGMA foreign_keys = ON")
        .await
        .expect("enable foreign keys");
    round_trip(&db).await;
}

#[tokio::test]
async fn migrations_round_trip_on_postgres() {
    let Ok(server) = std::env::var("AOS_TEST_DATABASE_URL") else {
        eprintln!("skipped: set AOS_TEST_DATABASE_URL to run the Postgres round trip");
        return;
    };
    let name = format!("aos_m_{}", std::process::id());
    let admin = Database::connect(server.as_str()).await.expect("connect");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .expect("clear a leftover database");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
    let db = Database::connect(format!("{base}/{name}"))
        .await
        .expect("connect to the new database");
    round_trip(&db).await;
    drop(db.close().await);
    drop(
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await,
    );
}

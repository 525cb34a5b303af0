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
    let Some(server) = aos_testkit::postgres_admin_url() else {
        eprintln!("skipped: set AOS_TEST_DATABASE_URL to run the Postgres round trip");
        return;
    };
    let fresh = aos_testkit::FreshDatabase::postgres(&server, "aos_m")
        .await
        .expect("create a database");
    let db = Database::connect(fresh.url())
        .await
        .expect("connect to the new database");
    round_trip(&db).await;
    drop(db.close().await);
    fresh.destroy().await;
}

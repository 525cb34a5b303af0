//! Opening, migrating and pinging the database.

use aos_persistence::{PersistenceError, connect, migrate, ping};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(migrating_again_changes_nothing_and_ping_answers);

async fn migrating_again_changes_nothing_and_ping_answers(t: Ctx) {
    let alice = t.user("alice").await;
    migrate(&t.database).await.expect("a second migration run");
    assert!(ping(&t.database).await);
    let found = aos_domain::ports::UserStore::user(&t.store, alice.id)
        .await
        .expect("read the user after migrating again");
    assert_eq!(found, Some(alice));
}

#[tokio::test]
async fn urls_of_other_databases_are_refused() {
    let refused = connect("mysql://root@localhost/aos").await;
    assert!(matches!(refused, Err(PersistenceError::UnsupportedUrl)));
}

#[tokio::test]
async fn a_closed_database_does_not_answer_ping() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!(
        "sqlite://{}",
        dir.path().join("deeper").join("aos.db").display()
    );
    let database = connect(&url)
        .await
        .expect("open a SQLite database in a new directory");
    assert!(dir.path().join("deeper").join("aos.db").exists());
    assert!(ping(&database).await);
    database.clone().close().await.expect("close the pool");
    assert!(!ping(&database).await);
}

#[tokio::test]
async fn an_in_memory_sqlite_database_works() {
    let database = connect("sqlite::memory:").await.expect("open in memory");
    migrate(&database).await.expect("migrate in memory");
    let email = aos_domain::user::Email::parse("mem@example.com").expect("valid");
    let name = aos_domain::user::UserName::parse("Mem").expect("valid");
    let store = aos_persistence::SeaStore::new(database);
    let created = aos_domain::ports::UserStore::create_user(&store, &email, &name, "h")
        .await
        .expect("create");
    let found = aos_domain::ports::UserStore::user_by_email(&store, &email)
        .await
        .expect("read");
    assert_eq!(found, Some(created));
}

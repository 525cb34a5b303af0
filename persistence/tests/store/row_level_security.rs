//! Postgres row-level security, the second wall behind the repositories' filters.
//!
//! Invariant protected: inside a transaction scoped to workspace A, even SQL that forgets
//! every `workspace_id` filter sees only A's rows, cannot write rows into another
//! workspace, and cannot read password hashes. The tests use raw SQL on purpose: they model
//! a repository bug, which the policies must contain.

use aos_domain::connection::StoredDataKey;
use aos_domain::page::PageRequest;
use aos_domain::ports::{
    AccessStore, ConnectionStore, DataKeyStore, ObjectRef, WorkflowStore, WorkspaceStore,
};
use aos_domain::workspace::Role;
use aos_persistence::Intent;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};

use crate::support::{Backend, Ctx, on_postgres, run};
use crate::{connections, tokens, workflows};

on_postgres!(
    a_session_left_idle_in_a_transaction_is_ended,
    unfiltered_sql_in_a_scoped_transaction_sees_only_that_workspace,
    a_scoped_transaction_cannot_write_into_another_workspace,
);

/// The same guarantees when the application connects as a non-superuser that owns the
/// tables (as on a managed server), where only the tenant role keeps it in bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_owner_gets_the_same_walls() {
    run(Backend::PostgresAsOwner, |t: Ctx| async move {
        unfiltered_sql_in_a_scoped_transaction_sees_only_that_workspace(t.clone()).await;
        a_scoped_transaction_cannot_write_into_another_workspace(t).await;
    })
    .await;
}

/// A stalled process must not hold row locks (a claim skips a locked run) for longer
/// than the stall's first seconds.
async fn a_session_left_idle_in_a_transaction_is_ended(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "A").await;
    let txn = t
        .store
        .begin_scoped(&scope, Intent::Read)
        .await
        .expect("scoped transaction");
    let timeout: String = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SHOW idle_in_transaction_session_timeout",
        ))
        .await
        .expect("show the setting")
        .expect("one row")
        .try_get_by_index(0)
        .expect("a text");
    assert_eq!(timeout, "10s");
}

async fn count(txn: &DatabaseTransaction, sql: &str) -> i64 {
    txn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect("count query")
        .expect("one row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

/// Refused by a row-level-security policy, not by anything else (a typo in the SQL).
fn refused_by_policy(outcome: &Result<(), DbErr>) -> bool {
    outcome
        .as_ref()
        .is_err_and(|error| error.to_string().contains("row-level security"))
}

async fn execute(txn: &DatabaseTransaction, sql: String) -> Result<(), DbErr> {
    txn.execute_unprepared(&sql).await.map(drop)
}

async fn unfiltered_sql_in_a_scoped_transaction_sees_only_that_workspace(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let carol = t.user("carol").await;
    let (a, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    t.store
        .add_member(&in_b, carol.id, Role::Viewer)
        .await
        .expect("carol joins B");
    let a_workflow = workflows::create(&t, &in_a, "A1").await;
    for name in ["B1", "B2", "B3"] {
        workflows::create(&t, &in_b, name).await;
    }
    tokens::create(&t, &in_b, "B's token", "hash-b").await;
    connections::create(&t, &in_a, "A's connection").await;
    for name in ["B's first", "B's second"] {
        connections::create(&t, &in_b, name).await;
    }
    for workspace_id in [a.id, in_b.workspace_id()] {
        t.store
            .insert_data_key(
                workspace_id,
                StoredDataKey {
                    id: uuid::Uuid::now_v7(),
                    master_key_id: "mk-1".into(),
                    wrapped: vec![1; 40],
                },
            )
            .await
            .expect("store a data key");
    }

    let txn = t
        .store
        .begin_scoped(&in_a, Intent::Read)
        .await
        .expect("scoped transaction");
    assert_eq!(count(&txn, "SELECT count(*) FROM workflows").await, 1);
    assert_eq!(
        count(&txn, "SELECT count(*) FROM workflow_versions").await,
        1
    );
    assert_eq!(count(&txn, "SELECT count(*) FROM members").await, 1);
    assert_eq!(count(&txn, "SELECT count(*) FROM workspaces").await, 1);
    assert_eq!(count(&txn, "SELECT count(*) FROM api_tokens").await, 0);
    assert_eq!(count(&txn, "SELECT count(*) FROM connections").await, 1);
    assert_eq!(count(&txn, "SELECT count(*) FROM data_keys").await, 1);
    // Only fellow members' public columns: ada, not bob or carol.
    assert_eq!(count(&txn, "SELECT count(id) FROM users").await, 1);
    let hashes = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT password_hash FROM users",
        ))
        .await;
    assert!(hashes.is_err(), "the tenant role read password hashes");
    drop(txn);

    // The role and setting ended with the transaction: unscoped look-ups see everything.
    assert_eq!(
        t.store
            .locate(ObjectRef::Workflow(a_workflow.id))
            .await
            .expect("locate"),
        Some(a.id)
    );
    let page = PageRequest::new(Some(10), None).expect("page");
    assert_eq!(
        t.store.workflows(&in_b, page).await.expect("B").items.len(),
        3
    );
    assert_eq!(t.store.members(&in_b).await.expect("B members").len(), 2);
    assert_eq!(
        t.store
            .connections(&in_b)
            .await
            .expect("B connections")
            .len(),
        2
    );
}

async fn a_scoped_transaction_cannot_write_into_another_workspace(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (b, in_b) = t.workspace(&bob, "B").await;
    let b_workflow = workflows::create(&t, &in_b, "B1").await;

    let refused = |statement: String| {
        let store = t.store.clone();
        let in_a = in_a.clone();
        async move {
            let txn = store
                .begin_scoped(&in_a, Intent::Write)
                .await
                .expect("scoped transaction");
            execute(&txn, statement).await
        }
    };
    let wf = uuid::Uuid::now_v7();
    let inserted = refused(format!(
        "INSERT INTO workflows (id, workspace_id, name, current_version, active, webhook_key, \
         created_at, updated_at) VALUES ('{wf}', '{}', 'smuggled', 1, false, 'k-{wf}', now(), now())",
        b.id
    ))
    .await;
    assert!(inserted.is_err(), "inserted a workflow into B");
    let joined = refused(format!(
        "INSERT INTO members (workspace_id, user_id, role, created_at) \
         VALUES ('{}', '{}', 'OWNER', now())",
        b.id, ada.id
    ))
    .await;
    assert!(joined.is_err(), "joined B");
    let a_token = tokens::create(&t, &in_a, "A's token", "hash-a").await;
    let moved = refused(format!(
        "UPDATE api_tokens SET workspace_id = '{}' WHERE id = '{}'",
        b.id, a_token.id
    ))
    .await;
    assert!(moved.is_err(), "moved a token into B");
    let connection = uuid::Uuid::now_v7();
    let planted = refused(format!(
        "INSERT INTO connections (id, workspace_id, name, connector, auth_kind, status, \
         settings, sealed_credentials, created_at, updated_at) VALUES ('{connection}', '{}', \
         'planted', 'http', 'bearer', 'VALID', '{{}}', '\\x00', now(), now())",
        b.id
    ))
    .await;
    assert!(
        refused_by_policy(&planted),
        "planted a connection in B: {planted:?}"
    );
    let keyed = refused(format!(
        "INSERT INTO data_keys (id, workspace_id, master_key_id, wrapped, created_at, \
         updated_at) VALUES ('{}', '{}', 'mk-evil', '\\x00', now(), now())",
        uuid::Uuid::now_v7(),
        b.id
    ))
    .await;
    assert!(refused_by_policy(&keyed), "gave B a data key: {keyed:?}");

    // Blind writes to B's rows match nothing.
    let txn = t
        .store
        .begin_scoped(&in_a, Intent::Write)
        .await
        .expect("scoped transaction");
    let deleted = txn
        .execute_unprepared("DELETE FROM workflows")
        .await
        .expect("delete");
    assert_eq!(
        deleted.rows_affected(),
        0,
        "A has no workflows; B's are invisible"
    );
    let renamed = txn
        .execute_unprepared("UPDATE workspaces SET name = 'pwned'")
        .await
        .expect("update");
    assert_eq!(renamed.rows_affected(), 1, "only A itself");
    txn.commit().await.expect("commit");

    assert_eq!(
        t.store.workspace(&in_b).await.expect("B").name.as_str(),
        "B"
    );
    assert_eq!(
        t.store.workflow(&in_b, b_workflow.id).await.expect("read"),
        Some(b_workflow)
    );
    assert_eq!(
        t.store.membership(ada.id, b.id).await.expect("membership"),
        None
    );
}

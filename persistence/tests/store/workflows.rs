//! Workflows: immutable versions, concurrent updates, pagination, deletion.

use std::collections::BTreeSet;

use aos_domain::DomainError;
use aos_domain::access::WorkspaceScope;
use aos_domain::ids::WorkflowId;
use aos_domain::page::PageRequest;
use aos_domain::ports::{AccessStore, ObjectRef, WorkflowStore};
use aos_domain::workflow::{
    NewWorkflow, Workflow, WorkflowChange, WorkflowDescription, WorkflowName,
};
use serde_json::json;

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    updates_store_new_versions_and_keep_the_old_ones,
    concurrent_updates_get_distinct_versions,
    workflows_are_paged_newest_first,
    deleting_a_workflow_removes_its_versions,
);

pub fn definition(label: &str) -> serde_json::Value {
    json!({
        "nodes": [{ "id": "start", "type": "trigger.webhook", "label": label }],
        "edges": []
    })
}

pub async fn create(t: &Ctx, scope: &WorkspaceScope, name: &str) -> Workflow {
    t.store
        .create_workflow(
            scope,
            NewWorkflow {
                name: WorkflowName::parse(name).expect("valid workflow name"),
                description: WorkflowDescription::parse(Some("first draft")).expect("valid"),
                definition: definition("v1"),
                webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
            },
        )
        .await
        .expect("create a workflow")
}

async fn updates_store_new_versions_and_keep_the_old_ones(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let created = create(&t, &scope, "Nightly").await;
    assert_eq!((created.version, created.active), (1, false));
    assert_eq!(created.workspace_id, workspace.id);

    let renamed = t
        .store
        .update_workflow(
            &scope,
            created.id,
            WorkflowChange {
                name: Some(WorkflowName::parse("Nightly sync").expect("valid")),
                ..WorkflowChange::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.version, 2);
    assert_eq!(renamed.definition, definition("v1"));
    assert_eq!(renamed.description, created.description);

    let redefined = t
        .store
        .update_workflow(
            &scope,
            created.id,
            WorkflowChange {
                description: Some(None),
                definition: Some(definition("v3")),
                ..WorkflowChange::default()
            },
        )
        .await
        .expect("redefine");
    assert_eq!(redefined.version, 3);
    assert_eq!(redefined.name.as_str(), "Nightly sync");
    assert_eq!(redefined.description, None);
    assert_eq!(
        t.store.workflow(&scope, created.id).await.expect("read"),
        Some(redefined.clone())
    );

    let activated = t
        .store
        .set_workflow_active(&scope, created.id, true)
        .await
        .expect("activate");
    assert!(activated.active);
    assert_eq!(activated.version, 3);

    let versions = t
        .store
        .workflow_versions(&scope, created.id)
        .await
        .expect("versions");
    let summary: Vec<_> = versions
        .iter()
        .map(|v| {
            (
                v.version,
                v.name.as_str(),
                v.definition["nodes"][0]["label"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, "Nightly sync", json!("v3")),
            (2, "Nightly sync", json!("v1")),
            (1, "Nightly", json!("v1")),
        ]
    );
    assert!(
        versions
            .iter()
            .all(|v| v.created_by == ada.id && v.workflow_id == created.id)
    );
    assert_eq!(
        versions[2].description.as_ref().map(|d| d.as_str()),
        Some("first draft")
    );
}

async fn concurrent_updates_get_distinct_versions(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = create(&t, &scope, "Contended").await;

    let updates = (0..10).map(|i| {
        let store = t.store.clone();
        let scope = scope.clone();
        tokio::spawn(async move {
            let change = WorkflowChange {
                definition: Some(definition(&format!("edit {i}"))),
                ..WorkflowChange::default()
            };
            store.update_workflow(&scope, workflow.id, change).await
        })
    });
    let versions: Vec<i32> = futures::future::join_all(updates)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("update").version)
        .collect();

    let distinct: BTreeSet<i32> = versions.iter().copied().collect();
    assert_eq!(distinct, (2..=11).collect(), "{versions:?}");
    let current = t
        .store
        .workflow(&scope, workflow.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(current.version, 11);
    let stored = t
        .store
        .workflow_versions(&scope, workflow.id)
        .await
        .expect("versions");
    assert_eq!(
        stored.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=11).rev().collect::<Vec<_>>()
    );
}

async fn workflows_are_paged_newest_first(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(create(&t, &scope, &format!("wf {n}")).await.id);
    }
    let page = |first: i64, after: Option<WorkflowId>| {
        let store = t.store.clone();
        let scope = scope.clone();
        async move {
            let request = PageRequest::new(Some(first), after).expect("valid page");
            let page = store.workflows(&scope, request).await.expect("page");
            let names: Vec<String> = page
                .items
                .iter()
                .map(|w| w.name.as_str().to_owned())
                .collect();
            (names, page.has_next_page, page.items.last().map(|w| w.id))
        }
    };

    let (names, more, last) = page(2, None).await;
    assert_eq!(
        (names, more),
        (vec!["wf 5".to_owned(), "wf 4".to_owned()], true)
    );
    let (names, more, last) = page(2, last).await;
    assert_eq!(
        (names, more),
        (vec!["wf 3".to_owned(), "wf 2".to_owned()], true)
    );
    let (names, more, _) = page(2, last).await;
    assert_eq!((names, more), (vec!["wf 1".to_owned()], false));
    let (names, more, _) = page(5, None).await;
    assert_eq!((names.len(), more), (5, false));
    let (names, more, _) = page(10, Some(ids[0])).await;
    assert_eq!((names.len(), more), (0, false));
}

async fn deleting_a_workflow_removes_its_versions(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = create(&t, &scope, "Doomed").await;
    t.store
        .update_workflow(&scope, workflow.id, WorkflowChange::default())
        .await
        .expect("second version");
    assert_eq!(
        t.store
            .locate(ObjectRef::Workflow(workflow.id))
            .await
            .expect("locate"),
        Some(workspace.id)
    );

    t.store
        .delete_workflow(&scope, workflow.id)
        .await
        .expect("delete");

    assert_eq!(
        t.store.workflow(&scope, workflow.id).await.expect("read"),
        None
    );
    assert!(
        t.store
            .workflow_versions(&scope, workflow.id)
            .await
            .expect("versions")
            .is_empty()
    );
    assert_eq!(
        t.store
            .locate(ObjectRef::Workflow(workflow.id))
            .await
            .expect("locate"),
        None
    );
    let twice = t.store.delete_workflow(&scope, workflow.id).await;
    assert!(
        matches!(twice, Err(DomainError::NotFound("workflow"))),
        "{twice:?}"
    );
    let update = t
        .store
        .update_workflow(&scope, workflow.id, WorkflowChange::default())
        .await;
    assert!(
        matches!(update, Err(DomainError::NotFound("workflow"))),
        "{update:?}"
    );
}

//! The tenant-isolation matrix.
//!
//! Invariants protected here: an object of a workspace the caller does not belong to is
//! NOT_FOUND, exactly as if it did not exist, for every query, mutation and subscription that
//! takes an id, whether the caller is another user's session or another workspace's API token;
//! a garbage or wrong-kind id is NOT_FOUND too; a member whose role (or a token whose scopes)
//! only allows reading gets FORBIDDEN on every write; and none of these attempts changes
//! anything (checked afterwards).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    NewToken, Session, TestApp, WORKFLOW_EVENTS_SUBSCRIPTION, assert_error_code, data, definitions,
    error_codes, pretty, string_at, subscription_error_codes,
};

/// The ids the cases aim at.
#[derive(Clone)]
struct Ids {
    workspace: String,
    workflow: String,
    /// A member (EDITOR) of the workspace, target of the member mutations.
    member_user: String,
    api_token: String,
    /// An existing account that is not a member of the workspace.
    outsider_email: String,
}

struct Case {
    name: &'static str,
    query: &'static str,
    variables: Value,
    write: bool,
}

fn cases(ids: &Ids) -> Vec<Case> {
    let Ids {
        workspace,
        workflow,
        member_user,
        api_token,
        outsider_email,
    } = ids;
    vec![
        Case {
            name: "workspace",
            query: "query($id: ID!) { workspace(id: $id) { id name } }",
            variables: json!({"id": workspace}),
            write: false,
        },
        Case {
            name: "workflow",
            query: "query($id: ID!) { workflow(id: $id) { id definition } }",
            variables: json!({"id": workflow}),
            write: false,
        },
        Case {
            name: "renameWorkspace",
            query: "mutation($input: RenameWorkspaceInput!) { renameWorkspace(input: $input) { id name } }",
            variables: json!({"input": {"id": workspace, "name": "pwned"}}),
            write: true,
        },
        Case {
            name: "deleteWorkspace",
            query: "mutation($input: DeleteWorkspaceInput!) { deleteWorkspace(input: $input) }",
            variables: json!({"input": {"id": workspace}}),
            write: true,
        },
        Case {
            name: "addMember",
            query: "mutation($input: AddMemberInput!) { addMember(input: $input) { role } }",
            variables: json!({"input": {"workspaceId": workspace, "email": outsider_email, "role": "OWNER"}}),
            write: true,
        },
        Case {
            name: "updateMemberRole",
            query: "mutation($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) { role } }",
            variables: json!({"input": {"workspaceId": workspace, "userId": member_user, "role": "OWNER"}}),
            write: true,
        },
        Case {
            name: "removeMember",
            query: "mutation($input: RemoveMemberInput!) { removeMember(input: $input) }",
            variables: json!({"input": {"workspaceId": workspace, "userId": member_user}}),
            write: true,
        },
        Case {
            name: "createApiToken",
            query: "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }",
            variables: json!({"input": {"workspaceId": workspace, "name": "pwned", "scopes": ["ADMIN"]}}),
            write: true,
        },
        Case {
            name: "revokeApiToken",
            query: "mutation($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) }",
            variables: json!({"input": {"id": api_token}}),
            write: true,
        },
        Case {
            name: "createWorkflow",
            query: "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }",
            variables: json!({"input": {"workspaceId": workspace, "name": "pwned", "definition": definitions::manual()}}),
            write: true,
        },
        Case {
            name: "updateWorkflow",
            query: "mutation($input: UpdateWorkflowInput!) { updateWorkflow(input: $input) { id version } }",
            variables: json!({"input": {"id": workflow, "name": "pwned", "definition": definitions::manual()}}),
            write: true,
        },
        Case {
            name: "setWorkflowActive",
            query: "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { id active } }",
            variables: json!({"input": {"id": workflow, "active": true}}),
            write: true,
        },
        Case {
            name: "deleteWorkflow",
            query: "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            variables: json!({"input": {"id": workflow}}),
            write: true,
        },
    ]
}

/// Workspace A (owned by A, with an EDITOR, a VIEWER, a workflow and two tokens) and
/// workspace B (owned by B, with an all-scopes token).
struct World {
    app: TestApp,
    a: Session,
    a_ids: Ids,
    viewer: Session,
    /// A WORKFLOWS_READ token of workspace A.
    a_read_only_token: NewToken,
    /// A's ADMIN token, which the revoke case aims at; it must still work afterwards.
    a_admin_token: NewToken,
    b: Session,
    b_token: NewToken,
}

const ALL_SCOPES: [&str; 7] = [
    "WORKFLOWS_READ",
    "WORKFLOWS_WRITE",
    "RUNS_READ",
    "RUNS_WRITE",
    "CONNECTIONS_READ",
    "CONNECTIONS_WRITE",
    "ADMIN",
];

async fn world() -> World {
    let app = TestApp::spawn().await;
    let a = app.sign_up("alice@example.com", "Alice").await;
    let workspace = app.create_workspace(&a.access_token, "Alpha").await;
    let editor = app
        .member(&a.access_token, &workspace, "editor@example.com", "EDITOR")
        .await;
    let viewer = app
        .member(&a.access_token, &workspace, "viewer@example.com", "VIEWER")
        .await;
    let workflow = app
        .create_workflow(
            &a.access_token,
            &workspace,
            "Alpha flow",
            definitions::webhook(),
        )
        .await;
    let a_admin_token = app
        .create_token(&a.access_token, &workspace, &["ADMIN"])
        .await;
    let a_read_only_token = app
        .create_token(&a.access_token, &workspace, &["WORKFLOWS_READ"])
        .await;
    app.sign_up("bystander@example.com", "Bystander").await;

    let b = app.sign_up("bob@example.com", "Bob").await;
    let b_workspace = app.create_workspace(&b.access_token, "Beta").await;
    let b_token = app
        .create_token(&b.access_token, &b_workspace, &ALL_SCOPES)
        .await;

    let a_ids = Ids {
        workspace,
        workflow: string_at(&workflow["id"]),
        member_user: editor.user_id,
        api_token: a_admin_token.id.clone(),
        outsider_email: "bystander@example.com".into(),
    };
    World {
        app,
        a,
        a_ids,
        viewer,
        a_read_only_token,
        a_admin_token,
        b,
        b_token,
    }
}

/// Runs every case as `token` and checks each fails with `code` (writes only if
/// `writes_only`), collecting all failures before panicking so one run shows the whole row.
async fn run_matrix_row(
    app: &TestApp,
    caller: &str,
    token: &str,
    ids: &Ids,
    code: &str,
    writes_only: bool,
) {
    let mut failures = Vec::new();
    for case in cases(ids) {
        if writes_only && !case.write {
            continue;
        }
        let response = app.gql_as(token, case.query, case.variables.clone()).await;
        let codes = error_codes(&response);
        if codes.is_empty() || codes.iter().any(|c| c != code) {
            failures.push(format!(
                "{caller} / {}: expected {code}, got {}",
                case.name,
                pretty(&response)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} matrix cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every case that only reads succeeds for `token`.
async fn assert_reads_allowed(app: &TestApp, caller: &str, token: &str, ids: &Ids) {
    for case in cases(ids).into_iter().filter(|case| !case.write) {
        let response = app.gql_as(token, case.query, case.variables.clone()).await;
        let errors = error_codes(&response);
        assert!(
            errors.is_empty(),
            "{caller} / {}: a read should succeed: {}",
            case.name,
            pretty(&response)
        );
    }
}

/// Workspace A is exactly as `world()` made it.
async fn assert_workspace_a_unchanged(world: &World) {
    let app = &world.app;
    let response = app
        .gql_as(
            &world.a.access_token,
            "query($id: ID!) { workspace(id: $id) { name members { role user { id email } } apiTokens { id name } workflows(first: 100) { nodes { id name version active definition } } } }",
            json!({"id": world.a_ids.workspace}),
        )
        .await;
    let workspace = &data(&response)["workspace"];
    assert_eq!(workspace["name"], "Alpha", "{}", pretty(&response));

    let mut members: Vec<(String, String)> = workspace["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| (string_at(&m["user"]["email"]), string_at(&m["role"])))
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    assert_eq!(
        members,
        [
            ("alice@example.com".to_owned(), "OWNER".to_owned()),
            ("editor@example.com".to_owned(), "EDITOR".to_owned()),
            ("viewer@example.com".to_owned(), "VIEWER".to_owned()),
        ],
        "members changed: {}",
        pretty(&response)
    );

    let mut token_ids: Vec<String> = workspace["apiTokens"]
        .as_array()
        .map(|tokens| tokens.iter().map(|t| string_at(&t["id"])).collect())
        .unwrap_or_default();
    token_ids.sort();
    let mut expected_tokens = vec![
        world.a_admin_token.id.clone(),
        world.a_read_only_token.id.clone(),
    ];
    expected_tokens.sort();
    assert_eq!(
        token_ids,
        expected_tokens,
        "tokens changed: {}",
        pretty(&response)
    );

    let workflows = &workspace["workflows"]["nodes"];
    assert_eq!(
        workflows,
        &json!([{"id": world.a_ids.workflow, "name": "Alpha flow", "version": 1, "active": false, "definition": definitions::webhook()}]),
        "workflows changed"
    );

    // The token the revoke cases aimed at still works.
    let with_token = app
        .gql_as(
            &world.a_admin_token.token,
            "query($id: ID!) { workspace(id: $id) { id } }",
            json!({"id": world.a_ids.workspace}),
        )
        .await;
    data(&with_token);
}

#[tokio::test]
async fn another_users_session_gets_not_found_for_every_id_of_a_workspace_it_is_not_in() {
    let world = world().await;

    run_matrix_row(
        &world.app,
        "B's session",
        &world.b.access_token,
        &world.a_ids,
        "NOT_FOUND",
        false,
    )
    .await;

    // B may even name himself as the member to add: still NOT_FOUND, not a way in.
    let mut self_add = world.a_ids.clone();
    self_add.outsider_email = world.b.email.clone();
    run_matrix_row(
        &world.app,
        "B's session adding B",
        &world.b.access_token,
        &self_add,
        "NOT_FOUND",
        true,
    )
    .await;
    assert_workspace_a_unchanged(&world).await;
}

#[tokio::test]
async fn another_workspaces_token_gets_not_found_for_every_id() {
    let world = world().await;

    run_matrix_row(
        &world.app,
        "B's token",
        &world.b_token.token,
        &world.a_ids,
        "NOT_FOUND",
        false,
    )
    .await;

    assert_workspace_a_unchanged(&world).await;
}

#[tokio::test]
async fn garbage_and_wrong_kind_ids_are_not_found() {
    let world = world().await;
    let unknown_uuid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned();
    let garbage = |id: &str| Ids {
        workspace: id.to_owned(),
        workflow: id.to_owned(),
        member_user: id.to_owned(),
        api_token: id.to_owned(),
        outsider_email: world.a_ids.outsider_email.clone(),
    };
    let wrong_kinds = Ids {
        workspace: world.a_ids.workflow.clone(),
        workflow: world.a_ids.workspace.clone(),
        member_user: world.b.user_id.clone(),
        api_token: world.a_ids.workflow.clone(),
        outsider_email: world.a_ids.outsider_email.clone(),
    };

    for (label, ids) in [
        ("not an id", garbage("not-an-id")),
        ("empty id", garbage("")),
        ("unknown uuid", garbage(&unknown_uuid)),
        ("ids of the wrong kind", wrong_kinds),
    ] {
        run_matrix_row(
            &world.app,
            label,
            &world.a.access_token,
            &ids,
            "NOT_FOUND",
            false,
        )
        .await;
    }

    assert_workspace_a_unchanged(&world).await;
}

#[tokio::test]
async fn a_viewer_may_read_but_every_write_is_forbidden() {
    let world = world().await;

    assert_reads_allowed(
        &world.app,
        "viewer",
        &world.viewer.access_token,
        &world.a_ids,
    )
    .await;
    run_matrix_row(
        &world.app,
        "viewer",
        &world.viewer.access_token,
        &world.a_ids,
        "FORBIDDEN",
        true,
    )
    .await;

    assert_workspace_a_unchanged(&world).await;
}

#[tokio::test]
async fn a_read_only_token_may_read_but_every_write_is_forbidden() {
    let world = world().await;
    let token = world.a_read_only_token.token.clone();

    assert_reads_allowed(&world.app, "read-only token", &token, &world.a_ids).await;
    run_matrix_row(
        &world.app,
        "read-only token",
        &token,
        &world.a_ids,
        "FORBIDDEN",
        true,
    )
    .await;

    assert_workspace_a_unchanged(&world).await;
}

#[tokio::test]
async fn another_workspace_does_not_show_up_in_lists() {
    let world = world().await;

    let viewer = world
        .app
        .gql_as(
            &world.b.access_token,
            "{ viewer { workspaces { id name workflows(first: 100) { nodes { id } } } } }",
            json!({}),
        )
        .await;

    let workspaces = &data(&viewer)["viewer"]["workspaces"];
    assert_eq!(
        workspaces.as_array().map(Vec::len),
        Some(1),
        "{}",
        pretty(&viewer)
    );
    assert_eq!(workspaces[0]["name"], "Beta");
    assert_eq!(workspaces[0]["workflows"]["nodes"], json!([]));
}

#[tokio::test]
async fn outsiders_cannot_subscribe_to_a_workspaces_events() {
    let world = world().await;

    for (caller, token, workspace_id) in [
        (
            "B's session",
            world.b.access_token.as_str(),
            world.a_ids.workspace.as_str(),
        ),
        (
            "B's token",
            world.b_token.token.as_str(),
            world.a_ids.workspace.as_str(),
        ),
        (
            "A with a garbage id",
            world.a.access_token.as_str(),
            "not-an-id",
        ),
        (
            "A with a workflow id",
            world.a.access_token.as_str(),
            world.a_ids.workflow.as_str(),
        ),
    ] {
        let mut socket = world.app.ws_connect().await;
        socket.init_ok(token).await;
        socket
            .subscribe(
                "1",
                WORKFLOW_EVENTS_SUBSCRIPTION,
                json!({"workspaceId": workspace_id}),
            )
            .await;

        let message = socket
            .next_for("1", Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{caller}: no answer to the subscription"));
        let codes = subscription_error_codes(&message);
        assert!(
            !codes.is_empty() && codes.iter().all(|code| code == "NOT_FOUND"),
            "{caller}: expected NOT_FOUND, got {}",
            pretty(&message)
        );
    }
    assert_error_code(
        &world
            .app
            .gql_as(
                &world.b.access_token,
                "query($id: ID!) { workspace(id: $id) { id } }",
                json!({"id": world.a_ids.workspace}),
            )
            .await,
        "NOT_FOUND",
    );
}

//! The audit trail of mutations: what authorization learned while one mutation field was
//! resolved, and the record made of it.
//!
//! Invariants:
//! - Every root mutation field is recorded by one extension (`graphql::extensions::
//!   AuditLog`) around its resolution, so a mutation cannot forget to record itself. The
//!   extension opens a [`Notes`] cell for the field; `authz` writes into it, so the record's
//!   workspace is the one authorization actually decided about.
//! - A record goes only into the log of a workspace the caller belongs to: one where
//!   authorization granted a scope or refused with `FORBIDDEN` (the caller is a member, or
//!   the token is of that workspace). A `NOT_FOUND` from authorization notes nothing, so
//!   probing another tenant's ids never writes into that tenant's log (which would tell
//!   its admins, and through timing the prober, that the id exists). A token's mutation
//!   that reached no workspace is recorded in the token's own workspace; a user's (an
//!   account mutation, a probe) in none: users have no single home workspace.
//! - A record never holds the mutation's input: only ids are read from it.

pub mod graphql;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::{ServerError, Value};
use chrono::Utc;

use aos_domain::DomainError;
use aos_domain::access::{Actor, Principal, WorkspaceScope};
use aos_domain::audit::{AuditEvent, AuditEventId, AuditTarget, SUCCESS};
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::ObjectRef;

use crate::error::ErrorChain;
use crate::graphql::extensions::ensure_code;
use crate::state::AppState;

tokio::task_local! {
    static NOTES: Notes;
}

/// What authorization learned during one mutation field; the first answer counts (a
/// mutation that authorizes twice acts in the workspace of its first check).
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<Noted>>);

#[derive(Default)]
struct Noted {
    workspace: Option<(WorkspaceId, Actor)>,
    object: Option<ObjectRef>,
}

impl Notes {
    /// Runs `resolution` with this cell open for `authz` to write into.
    pub async fn collect<F: Future>(&self, resolution: F) -> F::Output {
        NOTES.scope(self.clone(), resolution).await
    }

    fn update(edit: impl FnOnce(&mut Noted)) {
        // Outside a mutation field (queries, subscriptions, HTTP callbacks) there is no
        // cell and nothing to note.
        let _ = NOTES.try_with(|notes| {
            if let Ok(mut noted) = notes.0.lock() {
                edit(&mut noted);
            }
        });
    }

    fn take(&self) -> Noted {
        self.0
            .lock()
            .map(|mut noted| std::mem::take(&mut *noted))
            .unwrap_or_default()
    }
}

/// Called by `authz` with every authorization verdict in `workspace_id`.
pub fn note_verdict(
    principal: &Principal,
    workspace_id: WorkspaceId,
    verdict: &Result<WorkspaceScope, DomainError>,
) {
    let belongs = match verdict {
        Ok(_) | Err(DomainError::Forbidden(_)) => true,
        Err(_) => false,
    };
    if belongs {
        let actor = actor_of(principal);
        Notes::update(|noted| {
            noted.workspace.get_or_insert((workspace_id, actor));
        });
    }
}

/// Called by `authz` when a mutation addresses an existing object by its id.
pub fn note_object(object: ObjectRef) {
    Notes::update(|noted| {
        noted.object.get_or_insert(object);
    });
}

fn actor_of(principal: &Principal) -> Actor {
    match principal {
        Principal::User(id) => Actor::User(*id),
        Principal::ApiToken(token) => Actor::ApiToken {
            id: token.id,
            on_behalf_of: token.created_by,
        },
    }
}

/// One mutation field as it ended, with what is known of its caller.
pub struct Resolved<'a> {
    pub action: &'a str,
    /// The field's type, e.g. `Workflow!`.
    pub return_type: &'a str,
    /// The field as the document asked for it, to tell a real `id` from an alias.
    pub field: &'a Field,
    /// The `input` argument with variables substituted; only ids are read from it.
    pub input: Option<Value>,
    pub result: &'a Result<Option<Value>, ServerError>,
    pub principal: Option<&'a Principal>,
    pub client_ip: Option<IpAddr>,
}

/// Records `resolved` in its workspace's log, if it belongs in one. Awaited by the
/// mutation's request: a mutation that happened without a record is worse than a
/// slightly slower one. A failed write is logged at error level; the caller's answer
/// stands, because the mutation has already happened.
pub async fn record(state: &AppState, notes: &Notes, resolved: Resolved<'_>) {
    let noted = notes.take();
    let Some(event) = event(noted, &resolved) else {
        tracing::debug!(
            action = resolved.action,
            "mutation not recorded in any workspace's audit log"
        );
        return;
    };
    if let Err(error) = state.store.append_audit_event(&event).await {
        tracing::error!(
            workspace.id = %event.workspace_id,
            action = %event.action,
            outcome = %event.outcome,
            error = %ErrorChain(&error),
            "could not record a mutation in the audit log"
        );
    }
}

fn event(noted: Noted, resolved: &Resolved<'_>) -> Option<AuditEvent> {
    let (workspace_id, actor) = match (noted.workspace, resolved.principal) {
        (Some(found), _) => found,
        (None, Some(principal @ Principal::ApiToken(token))) => {
            (token.workspace_id, actor_of(principal))
        }
        (None, _) => return None,
    };
    let target = noted
        .object
        .map(object_target)
        .or_else(|| input_user(resolved.input.as_ref()))
        .or_else(|| returned_target(resolved))
        .unwrap_or_else(|| AuditTarget {
            kind: "Workspace".into(),
            id: workspace_id.to_string(),
        });
    Some(AuditEvent {
        id: AuditEventId::generate(),
        workspace_id,
        actor,
        action: resolved.action.to_owned(),
        target: Some(target),
        client_ip: resolved.client_ip,
        at: Utc::now(),
        outcome: outcome(resolved.result),
    })
}

fn outcome(result: &Result<Option<Value>, ServerError>) -> String {
    match result {
        Ok(_) => SUCCESS.to_owned(),
        Err(error) => {
            let mut error = error.clone();
            ensure_code(&mut error);
            match error.extensions.as_ref().and_then(|ext| ext.get("code")) {
                Some(Value::String(code)) => code.clone(),
                _ => crate::error::INTERNAL.to_owned(),
            }
        }
    }
}

fn object_target(object: ObjectRef) -> AuditTarget {
    let (kind, id) = match object {
        ObjectRef::Workflow(id) => ("Workflow", id.to_string()),
        ObjectRef::ApiToken(id) => ("ApiToken", id.to_string()),
        ObjectRef::Run(id) => ("Run", id.to_string()),
        ObjectRef::Connection(id) => ("Connection", id.to_string()),
    };
    AuditTarget {
        kind: kind.into(),
        id,
    }
}

/// Membership mutations address the member by `userId`.
fn input_user(input: Option<&Value>) -> Option<AuditTarget> {
    let Value::Object(fields) = input? else {
        return None;
    };
    match fields.get("userId")? {
        Value::String(id) => Some(AuditTarget {
            kind: "User".into(),
            id: id.clone(),
        }),
        _ => None,
    }
}

/// A created object: the `id` of what the mutation returned, or of an object it wraps
/// (`NewApiToken.apiToken`, `Member.user`), when the caller selected it. Only a field
/// really named `id` counts: a client could alias another field as `id` to forge a target.
fn returned_target(resolved: &Resolved<'_>) -> Option<AuditTarget> {
    let Ok(Some(Value::Object(fields))) = resolved.result else {
        return None;
    };
    let selection = &resolved.field.selection_set.node;
    if let (Some(Value::String(id)), Some(_)) = (fields.get("id"), plain(selection, "id")) {
        return Some(AuditTarget {
            kind: resolved.return_type.trim_end_matches('!').to_owned(),
            id: id.clone(),
        });
    }
    fields.iter().find_map(|(key, value)| {
        let Value::Object(inner) = value else {
            return None;
        };
        let wrapped = plain(selection, key.as_str())?;
        plain(&wrapped.selection_set.node, "id")?;
        match inner.get("id") {
            Some(Value::String(id)) => Some(AuditTarget {
                kind: type_name_of_field(key.as_str()),
                id: id.clone(),
            }),
            _ => None,
        }
    })
}

/// The field selected directly under the response key `name`, if it is the field of that
/// name (not an alias of another).
fn plain<'s>(selection: &'s SelectionSet, name: &str) -> Option<&'s Field> {
    selection.items.iter().find_map(|item| match &item.node {
        Selection::Field(field)
            if field.node.name.node == name
                && field
                    .node
                    .alias
                    .as_ref()
                    .is_none_or(|alias| alias.node == name) =>
        {
            Some(&field.node)
        }
        _ => None,
    })
}

fn type_name_of_field(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

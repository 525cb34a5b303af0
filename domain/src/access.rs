//! Who may do what: permissions as a pure function of (role or token scopes, action),
//! and `WorkspaceScope`, the proof that a check passed.
//!
//! Invariant: a `WorkspaceScope` can only be made by `authorize` in this module, and every
//! repository method on workspace-owned data takes one. Code that has not passed the
//! check therefore cannot reach a workspace's data at all.

use crate::DomainError;
use crate::api_token::{Scope, Scopes};
use crate::ids::{ApiTokenId, UserId, WorkspaceId};
use crate::workspace::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the workspace itself (name, the caller's role).
    ReadWorkspace,
    /// See who the members are (their e-mail addresses are personal data).
    ReadMembers,
    ReadWorkflows,
    WriteWorkflows,
    ReadRuns,
    /// Start, cancel and retry runs.
    WriteRuns,
    ReadConnections,
    /// Use a connection's credentials from a workflow step.
    UseConnections,
    ManageConnections,
    ManageMembers,
    ManageApiTokens,
    /// Grant or take away the OWNER role.
    ManageOwners,
    DeleteWorkspace,
    /// Read the workspace's audit log (who did what, from where).
    ReadAuditLog,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::ReadWorkspace,
        Action::ReadMembers,
        Action::ReadWorkflows,
        Action::WriteWorkflows,
        Action::ReadRuns,
        Action::WriteRuns,
        Action::ReadConnections,
        Action::UseConnections,
        Action::ManageConnections,
        Action::ManageMembers,
        Action::ManageApiTokens,
        Action::ManageOwners,
        Action::DeleteWorkspace,
        Action::ReadAuditLog,
    ];

    /// The least role that may perform the action.
    pub fn minimum_role(self) -> Role {
        match self {
            Action::ReadWorkspace
            | Action::ReadMembers
            | Action::ReadWorkflows
            | Action::ReadRuns
            | Action::ReadConnections => Role::Viewer,
            Action::WriteWorkflows | Action::WriteRuns | Action::UseConnections => Role::Editor,
            Action::ManageConnections
            | Action::ManageMembers
            | Action::ManageApiTokens
            | Action::ReadAuditLog => Role::Admin,
            Action::ManageOwners | Action::DeleteWorkspace => Role::Owner,
        }
    }

    /// Whether a token holding `scopes` may perform the action. Write scopes imply their
    /// read scope; `ADMIN` implies all. Owner-only actions are never open to a token: a
    /// leaked token must not be able to take a workspace away from its owners.
    pub fn permitted_by_scopes(self, scopes: &Scopes) -> bool {
        let has = |scope| scopes.contains(scope) || scopes.contains(Scope::Admin);
        match self {
            Action::ReadWorkspace => true,
            Action::ReadWorkflows => has(Scope::WorkflowsRead) || has(Scope::WorkflowsWrite),
            Action::WriteWorkflows => has(Scope::WorkflowsWrite),
            Action::ReadRuns => has(Scope::RunsRead) || has(Scope::RunsWrite),
            Action::WriteRuns => has(Scope::RunsWrite),
            Action::ReadConnections | Action::UseConnections => {
                has(Scope::ConnectionsRead) || has(Scope::ConnectionsWrite)
            }
            Action::ManageConnections => has(Scope::ConnectionsWrite),
            Action::ReadMembers
            | Action::ManageMembers
            | Action::ManageApiTokens
            | Action::ReadAuditLog => has(Scope::Admin),
            Action::ManageOwners | Action::DeleteWorkspace => false,
        }
    }
}

/// What a caller holds in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Member(Role),
    Token(Scopes),
}

impl Access {
    pub fn permits(&self, action: Action) -> bool {
        match self {
            Access::Member(role) => *role >= action.minimum_role(),
            Access::Token(scopes) => action.permitted_by_scopes(scopes),
        }
    }
}

/// An authenticated caller, as established by the API's authentication step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(UserId),
    ApiToken(TokenPrincipal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub id: ApiTokenId,
    pub workspace_id: WorkspaceId,
    pub scopes: Scopes,
    pub created_by: UserId,
}

/// Who acts, for records such as "created by".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    ApiToken {
        id: ApiTokenId,
        on_behalf_of: UserId,
    },
}

impl Actor {
    /// The user answerable for the action: the caller, or the creator of the token.
    pub fn user_id(self) -> UserId {
        match self {
            Actor::User(id)
            | Actor::ApiToken {
                on_behalf_of: id, ..
            } => id,
        }
    }
}

/// Proof that `actor` passed an authorization check in `workspace_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceScope {
    workspace_id: WorkspaceId,
    actor: Actor,
    access: Access,
}

impl WorkspaceScope {
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The caller's role, when the caller is a member rather than a token.
    pub fn role(&self) -> Option<Role> {
        match self.access {
            Access::Member(role) => Some(role),
            Access::Token(_) => None,
        }
    }

    pub fn permits(&self, action: Action) -> bool {
        self.access.permits(action)
    }

    /// Checks a further action within the same workspace.
    pub fn require(&self, action: Action) -> Result<(), DomainError> {
        if self.permits(action) {
            Ok(())
        } else {
            Err(forbidden(action))
        }
    }
}

/// The one place a `WorkspaceScope` is made.
///
/// `membership` is the caller's role in `workspace_id` as stored (ignored for tokens, which
/// carry their workspace). A caller outside the workspace gets `NotFound(object)`, exactly
/// as if the object did not exist; a caller inside it without the right gets `Forbidden`.
pub fn authorize(
    principal: &Principal,
    workspace_id: WorkspaceId,
    membership: Option<Role>,
    action: Action,
    object: &'static str,
) -> Result<WorkspaceScope, DomainError> {
    let (actor, access) = match principal {
        Principal::User(user_id) => match membership {
            Some(role) => (Actor::User(*user_id), Access::Member(role)),
            None => return Err(DomainError::NotFound(object)),
        },
        Principal::ApiToken(token) if token.workspace_id == workspace_id => (
            Actor::ApiToken {
                id: token.id,
                on_behalf_of: token.created_by,
            },
            Access::Token(token.scopes.clone()),
        ),
        Principal::ApiToken(_) => return Err(DomainError::NotFound(object)),
    };
    if !access.permits(action) {
        return Err(forbidden(action));
    }
    Ok(WorkspaceScope {
        workspace_id,
        actor,
        access,
    })
}

fn forbidden(action: Action) -> DomainError {
    DomainError::Forbidden(format!(
        "your role or token scopes do not allow this ({action:?} needs {} or a matching scope)",
        action.minimum_role().as_str()
    ))
}

/// Rules for changing a membership, beyond the plain permission check: only an owner may
/// grant, change or take away the OWNER role, and a workspace never loses its last owner.
///
/// `current` is the target's role now (`None` when being added), `next` the role after the
/// change (`None` when being removed), `owners_now` how many owners the workspace has.
pub fn check_membership_change(
    scope: &WorkspaceScope,
    current: Option<Role>,
    next: Option<Role>,
    owners_now: u64,
) -> Result<(), DomainError> {
    scope.require(Action::ManageMembers)?;
    if current == Some(Role::Owner) || next == Some(Role::Owner) {
        scope.require(Action::ManageOwners)?;
    }
    if current == Some(Role::Owner) && next != Some(Role::Owner) && owners_now <= 1 {
        return Err(DomainError::Conflict(
            "a workspace must keep at least one owner; make another member OWNER first".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal::User(UserId::generate())
    }

    fn token(workspace_id: WorkspaceId, scopes: &[Scope]) -> Principal {
        Principal::ApiToken(TokenPrincipal {
            id: ApiTokenId::generate(),
            workspace_id,
            scopes: Scopes::new(scopes.iter().copied()).unwrap_or_else(|_| unreachable!()),
            created_by: UserId::generate(),
        })
    }

    #[test]
    fn role_rights_follow_the_contract_table() {
        let expected = |role: Role, action: Action| match role {
            Role::Viewer => matches!(
                action,
                Action::ReadWorkspace
                    | Action::ReadMembers
                    | Action::ReadWorkflows
                    | Action::ReadRuns
                    | Action::ReadConnections
            ),
            Role::Editor => expected_editor(action),
            Role::Admin => !matches!(action, Action::ManageOwners | Action::DeleteWorkspace),
            Role::Owner => true,
        };
        fn expected_editor(action: Action) -> bool {
            !matches!(
                action,
                Action::ManageConnections
                    | Action::ManageMembers
                    | Action::ManageApiTokens
                    | Action::ManageOwners
                    | Action::DeleteWorkspace
                    | Action::ReadAuditLog
            )
        }
        for role in Role::ALL {
            for action in Action::ALL {
                assert_eq!(
                    Access::Member(role).permits(action),
                    expected(role, action),
                    "{role:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn non_members_get_not_found_and_weak_members_forbidden() {
        let ws = WorkspaceId::generate();
        assert!(matches!(
            authorize(&user(), ws, None, Action::ReadWorkflows, "workflow"),
            Err(DomainError::NotFound("workflow"))
        ));
        assert!(matches!(
            authorize(
                &user(),
                ws,
                Some(Role::Viewer),
                Action::WriteWorkflows,
                "workflow"
            ),
            Err(DomainError::Forbidden(_))
        ));
        let scope = authorize(
            &user(),
            ws,
            Some(Role::Editor),
            Action::WriteWorkflows,
            "workflow",
        );
        assert_eq!(scope.map(|s| s.workspace_id()).ok(), Some(ws));
    }

    #[test]
    fn tokens_act_only_in_their_workspace_and_scopes() {
        let ws = WorkspaceId::generate();
        let other = WorkspaceId::generate();
        let reader = token(ws, &[Scope::WorkflowsRead]);
        // A stored membership never widens a token.
        assert!(matches!(
            authorize(
                &reader,
                other,
                Some(Role::Owner),
                Action::ReadWorkflows,
                "workflow"
            ),
            Err(DomainError::NotFound(_))
        ));
        assert!(authorize(&reader, ws, None, Action::ReadWorkflows, "workflow").is_ok());
        assert!(matches!(
            authorize(&reader, ws, None, Action::WriteWorkflows, "workflow"),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            authorize(&reader, ws, None, Action::ReadRuns, "run"),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn write_scopes_imply_read_and_admin_implies_all_but_ownership() {
        let writer = Scopes::new([Scope::WorkflowsWrite]).ok();
        assert!(
            writer
                .as_ref()
                .is_some_and(|s| Action::ReadWorkflows.permitted_by_scopes(s))
        );
        let admin = Scopes::new([Scope::Admin]).ok();
        for action in Action::ALL {
            let allowed = admin
                .as_ref()
                .is_some_and(|s| action.permitted_by_scopes(s));
            assert_eq!(
                allowed,
                !matches!(action, Action::ManageOwners | Action::DeleteWorkspace),
                "{action:?}"
            );
        }
    }

    #[test]
    fn only_owners_touch_the_owner_role_and_the_last_owner_stays() {
        let ws = WorkspaceId::generate();
        let admin = authorize(
            &user(),
            ws,
            Some(Role::Admin),
            Action::ManageMembers,
            "workspace",
        );
        let owner = authorize(
            &user(),
            ws,
            Some(Role::Owner),
            Action::ManageMembers,
            "workspace",
        );
        let (Ok(admin), Ok(owner)) = (admin, owner) else {
            unreachable!()
        };
        assert!(check_membership_change(&admin, None, Some(Role::Editor), 1).is_ok());
        assert!(matches!(
            check_membership_change(&admin, None, Some(Role::Owner), 1),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            check_membership_change(&admin, Some(Role::Owner), None, 2),
            Err(DomainError::Forbidden(_))
        ));
        assert!(check_membership_change(&owner, Some(Role::Owner), Some(Role::Admin), 2).is_ok());
        assert!(matches!(
            check_membership_change(&owner, Some(Role::Owner), None, 1),
            Err(DomainError::Conflict(_))
        ));
    }
}

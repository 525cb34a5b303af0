//! Workspaces, their members and the four roles.

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::ids::WorkspaceId;
use crate::user::User;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("workspace name must not be empty"));
        }
        if name.chars().count() > Self::MAX_LEN || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(format!(
                "workspace name must be at most {} printable characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: WorkspaceName,
    pub created_at: DateTime<Utc>,
}

/// Roles are ordered: each one has every right of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Editor => "EDITOR",
            Role::Viewer => "VIEWER",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| DomainError::invalid(format!("unknown role `{raw}`")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_are_ordered() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).ok(), Some(role));
        }
        assert!(
            Role::Owner > Role::Admin && Role::Admin > Role::Editor && Role::Editor > Role::Viewer
        );
        assert!(Role::parse("owner").is_err());
    }

    #[test]
    fn workspace_names_are_bounded() {
        assert!(WorkspaceName::parse(" ").is_err());
        assert!(WorkspaceName::parse(&"w".repeat(101)).is_err());
        assert_eq!(
            WorkspaceName::parse(" Acme ")
                .ok()
                .map(|n| n.as_str().to_owned())
                .as_deref(),
            Some("Acme")
        );
    }
}

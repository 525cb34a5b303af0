//! API tokens: per-workspace credentials for integrators, limited to a set of scopes.
//! Only a hash of the secret is ever stored; the secret is shown once at creation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::ids::{ApiTokenId, UserId, WorkspaceId};

/// Every API token secret starts with this, so scanners and humans can recognise one.
pub const TOKEN_PREFIX: &str = "aos_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    WorkflowsRead,
    WorkflowsWrite,
    RunsRead,
    RunsWrite,
    ConnectionsRead,
    ConnectionsWrite,
    /// Members and API tokens; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::WorkflowsRead,
        Scope::WorkflowsWrite,
        Scope::RunsRead,
        Scope::RunsWrite,
        Scope::ConnectionsRead,
        Scope::ConnectionsWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::WorkflowsRead => "WORKFLOWS_READ",
            Scope::WorkflowsWrite => "WORKFLOWS_WRITE",
            Scope::RunsRead => "RUNS_READ",
            Scope::RunsWrite => "RUNS_WRITE",
            Scope::ConnectionsRead => "CONNECTIONS_READ",
            Scope::ConnectionsWrite => "CONNECTIONS_WRITE",
            Scope::Admin => "ADMIN",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw)
            .ok_or_else(|| DomainError::invalid(format!("unknown scope `{raw}`")))
    }
}

/// A non-empty set of scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Self, DomainError> {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            return Err(DomainError::invalid(
                "an API token needs at least one scope",
            ));
        }
        Ok(Self(set))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The stored form: scope names joined by commas, in a stable order.
    pub fn to_storage(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn from_storage(stored: &str) -> Result<Self, DomainError> {
        Self::new(
            stored
                .split(',')
                .filter(|s| !s.is_empty())
                .map(Scope::parse)
                .collect::<Result<Vec<_>, _>>()?,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenName(String);

impl ApiTokenName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty()
            || name.chars().count() > Self::MAX_LEN
            || name.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(format!(
                "token name must be 1 to {} printable characters",
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
pub struct ApiToken {
    pub id: ApiTokenId,
    pub workspace_id: WorkspaceId,
    pub name: ApiTokenName,
    pub scopes: Scopes,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// A token authenticates only while it is neither revoked nor expired.
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_storage() {
        let scopes = Scopes::new([Scope::RunsRead, Scope::WorkflowsWrite]).ok();
        let stored = scopes.as_ref().map(Scopes::to_storage);
        assert_eq!(stored.as_deref(), Some("WORKFLOWS_WRITE,RUNS_READ"));
        assert_eq!(stored.and_then(|s| Scopes::from_storage(&s).ok()), scopes);
    }

    #[test]
    fn a_token_needs_a_scope() {
        assert!(Scopes::new([]).is_err());
        assert!(Scopes::from_storage("").is_err());
        assert!(Scopes::from_storage("NOPE").is_err());
    }
}

//! Users and the values that identify them. Parse, don't validate: an `Email` or a
//! `UserName` that exists is valid.

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::ids::UserId;

/// A normalised (trimmed, lower-cased) e-mail address: one account per mailbox,
/// whatever case the user types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim().to_lowercase();
        let invalid =
            || DomainError::invalid(format!("`{}` is not a valid e-mail address", raw.trim()));
        if email.is_empty()
            || email.len() > Self::MAX_LEN
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name must not be empty"));
        }
        if name.chars().count() > Self::MAX_LEN || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(format!(
                "name must be at most {} printable characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed, checked against the policy. It never prints.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_LEN: usize = 8;
    /// Long enough for any passphrase, short enough that hashing cannot be abused.
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: String) -> Result<Self, DomainError> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(DomainError::invalid(format!(
                "password must be at least {} characters",
                Self::MIN_LEN
            )));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(DomainError::invalid(format!(
                "password must be at most {} bytes",
                Self::MAX_LEN
            )));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(**redacted**)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub created_at: DateTime<Utc>,
}

/// A user together with the stored password hash, for the log-in check only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        let email = Email::parse("  Ada@Example.COM ").map(|e| e.as_str().to_owned());
        assert_eq!(email.ok().as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@example.com",
            "ada@.com",
            "ada@example.",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            UserName::parse(" Ada ")
                .ok()
                .map(|n| n.as_str().to_owned())
                .as_deref(),
            Some("Ada")
        );
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn password_policy_bounds_length() {
        assert!(NewPassword::parse("short".into()).is_err());
        assert!(NewPassword::parse("long enough".into()).is_ok());
        assert!(NewPassword::parse("x".repeat(257)).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let password = NewPassword::parse("hunter2hunter2".into()).ok();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}

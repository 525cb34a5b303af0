//! A newtype for every identifier, so that one kind of id can never be passed for another.
//!
//! Ids are UUIDv7: time-ordered, so ordering by id is ordering by creation, which keeps
//! cursor pagination simple and index-friendly.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }
    };
}

/// A string that is not an id of ours. Callers treat it as "not found": an id that
/// cannot exist is indistinguishable from one that does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct InvalidId;

id_type!(UserId);
id_type!(WorkspaceId);
id_type!(WorkflowId);
id_type!(ApiTokenId);
id_type!(
    /// Refresh tokens issued from one log-in share a family; reuse of a spent one revokes it.
    SessionFamilyId
);
id_type!(RefreshTokenId);
id_type!(ConnectionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = WorkflowId::generate();
        assert_eq!(id.to_string().parse::<WorkflowId>(), Ok(id));
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert_eq!("nope".parse::<UserId>(), Err(InvalidId));
        assert_eq!("".parse::<UserId>(), Err(InvalidId));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = WorkspaceId::generate();
        let second = WorkspaceId::generate();
        assert!(first < second);
    }
}

//! The run's identifier and the idempotency key its steps carry to the outside world.
//!
//! `RunId` mirrors the ids of [`crate::ids`] exactly (a UUIDv7 newtype). It lives here
//! only because the `id_type!` macro there is private to that module; moving it there is
//! a one-line change that keeps this type's API.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::ids::InvalidId;
use crate::workflow::definition::NodeId;

/// A run of a workflow version.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RunId(Uuid);

impl RunId {
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

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
    }
}

/// The key a step sends with its side effects (`Idempotency-Key` header, connector
/// calls), so that re-executing it after a crash or lease loss is recognised as the same
/// request. It is the same for every attempt of a step, since a retry repeats the same
/// intent; a `retryRun` creates a new run and so new keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `"{run_id}:{node_id}"`: node ids cannot contain `:`, so the key is unambiguous.
    pub fn for_step(run_id: RunId, node_id: &NodeId) -> Self {
        Self(format!("{run_id}:{node_id}"))
    }

    /// The key of body step `body_step` in iteration `index` of the loop node whose key
    /// this is: `"{run_id}:{loop_node_id}:{index}:{body_step}"`, so a loop executed again
    /// sends each item's requests with the same keys as before.
    pub fn for_iteration(&self, index: usize, body_step: &NodeId) -> Self {
        Self(format!("{}:{index}:{body_step}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

//! Live subscriptions counted on this node: all of them, and per workspace, each under a
//! cap (the per-socket cap is [`super::WsLimits::max_subscriptions`]).
//!
//! Invariants:
//! - A subscription takes its slot in its resolver, after it was authorized, because only
//!   then is its workspace known and trusted: an outsider's refused attempt holds nothing
//!   and counts against nobody's workspace.
//! - A slot is a guard freed on drop, and it lives inside the subscription's stream, so a
//!   subscription that ends for any reason (its last event, `complete`, an error, a
//!   panic, its socket closing) gives its slot back.
//! - The counts never exceed their caps: the workspace check and the node increment
//!   happen under one lock. A release may briefly leave the node count one too high,
//!   which only ever refuses, never admits, too much.
//! - The caps are per node: a cluster of N nodes admits up to N times each. That is what
//!   they protect (the memory and tasks one node holds); a cluster-wide cap would need a
//!   shared counter in Redis with leases that expire, so a crashed node's slots come back.
//! - The `aos_ws_subscriptions_live` gauge follows the node's count. It has no workspace
//!   label: one series per workspace would grow without bound.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use aos_domain::ids::WorkspaceId;
use futures::Stream;

use crate::error::ApiError;

const LIVE_GAUGE: &str = "aos_ws_subscriptions_live";
const REFUSED_COUNTER: &str = "aos_ws_subscriptions_refused_total";
/// A slot frees only when some other subscription ends, which the server cannot foresee;
/// this asks clients to back off for a few seconds rather than retry in a tight loop.
const RETRY_AFTER_MS: u64 = 5_000;

/// The caps and the live counts of this node.
pub struct SubscriptionSlots {
    per_node: usize,
    per_workspace: usize,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    live: AtomicUsize,
    /// Only workspaces with a live subscription have an entry, so the map stays as small
    /// as the set of workspaces subscribed right now.
    by_workspace: Mutex<HashMap<WorkspaceId, usize>>,
}

impl Counts {
    fn workspaces(&self) -> MutexGuard<'_, HashMap<WorkspaceId, usize>> {
        // The map is consistent after every statement, so a panic elsewhere cannot have
        // left it half-updated.
        self.by_workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which cap refused a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    Node { limit: usize },
    Workspace { limit: usize },
}

impl From<SlotRefused> for ApiError {
    fn from(refused: SlotRefused) -> Self {
        let message = match refused {
            SlotRefused::Workspace { limit } => format!(
                "this workspace already has {limit} live subscriptions on this server, the \
                 most it may have; end one before starting another"
            ),
            SlotRefused::Node { limit } => format!(
                "this server already holds {limit} live subscriptions, the most it may \
                 hold; try again later"
            ),
        };
        ApiError::over_limit(message, RETRY_AFTER_MS)
    }
}

impl SubscriptionSlots {
    pub fn new(per_node: usize, per_workspace: usize) -> Self {
        // Published from the start, so a dashboard shows 0 rather than no data.
        metrics::gauge!(LIVE_GAUGE).set(0.0);
        Self {
            per_node,
            per_workspace,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for a subscription of `workspace_id`, which its caller may read.
    pub fn acquire(&self, workspace_id: WorkspaceId) -> Result<SubscriptionSlot, SlotRefused> {
        let mut by_workspace = self.counts.workspaces();
        let in_workspace = by_workspace.get(&workspace_id).copied().unwrap_or(0);
        let refused = if in_workspace >= self.per_workspace {
            Some(SlotRefused::Workspace {
                limit: self.per_workspace,
            })
        } else {
            self.counts
                .live
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |live| {
                    (live < self.per_node).then_some(live + 1)
                })
                .err()
                .map(|_| SlotRefused::Node {
                    limit: self.per_node,
                })
        };
        if let Some(refused) = refused {
            let limit = match refused {
                SlotRefused::Node { .. } => "node",
                SlotRefused::Workspace { .. } => "workspace",
            };
            metrics::counter!(REFUSED_COUNTER, "limit" => limit).increment(1);
            return Err(refused);
        }
        by_workspace.insert(workspace_id, in_workspace + 1);
        metrics::gauge!(LIVE_GAUGE).increment(1.0);
        Ok(SubscriptionSlot {
            counts: Arc::clone(&self.counts),
            workspace_id,
        })
    }

    /// Live subscriptions on this node.
    pub fn live(&self) -> usize {
        self.counts.live.load(Ordering::SeqCst)
    }

    /// Live subscriptions of `workspace_id` on this node.
    pub fn live_in(&self, workspace_id: WorkspaceId) -> usize {
        self.counts
            .workspaces()
            .get(&workspace_id)
            .copied()
            .unwrap_or(0)
    }
}

/// One live subscription's place under the caps; freed when dropped.
pub struct SubscriptionSlot {
    counts: Arc<Counts>,
    workspace_id: WorkspaceId,
}

impl SubscriptionSlot {
    /// `stream`, holding this slot until the stream is dropped.
    pub fn hold<S: Stream>(self, stream: S) -> Held<S> {
        Held {
            stream: Box::pin(stream),
            _slot: self,
        }
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        {
            let mut by_workspace = self.counts.workspaces();
            if let Some(count) = by_workspace.get_mut(&self.workspace_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    by_workspace.remove(&self.workspace_id);
                }
            }
        }
        self.counts.live.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(LIVE_GAUGE).decrement(1.0);
    }
}

/// A subscription's stream with its slot; boxed so it is `Unpin` whatever the stream is.
pub struct Held<S> {
    stream: Pin<Box<S>>,
    _slot: SubscriptionSlot,
}

impl<S: Stream> Stream for Held<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.get_mut().stream.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[test]
    fn a_workspace_at_its_cap_is_refused_while_another_is_not() {
        let slots = SubscriptionSlots::new(10, 2);
        let (full, other) = (WorkspaceId::generate(), WorkspaceId::generate());
        let _held = [slots.acquire(full), slots.acquire(full)];

        let refused = slots.acquire(full);
        let admitted = slots.acquire(other);

        assert_eq!(refused.err(), Some(SlotRefused::Workspace { limit: 2 }));
        assert!(admitted.is_ok());
        assert_eq!(slots.live(), 3, "a refusal takes no node slot");
    }

    #[test]
    fn the_node_cap_spans_workspaces() {
        let slots = SubscriptionSlots::new(2, 10);
        let _held = [
            slots.acquire(WorkspaceId::generate()),
            slots.acquire(WorkspaceId::generate()),
        ];

        let refused = slots.acquire(WorkspaceId::generate());

        assert_eq!(refused.err(), Some(SlotRefused::Node { limit: 2 }));
    }

    #[test]
    fn a_node_refusal_takes_no_workspace_slot() {
        let slots = SubscriptionSlots::new(1, 10);
        let workspace = WorkspaceId::generate();
        let _held = slots.acquire(WorkspaceId::generate());

        assert!(slots.acquire(workspace).is_err());

        assert_eq!(slots.live_in(workspace), 0);
    }

    #[tokio::test]
    async fn dropping_the_stream_frees_the_slot() {
        let slots = SubscriptionSlots::new(1, 1);
        let workspace = WorkspaceId::generate();
        let Ok(slot) = slots.acquire(workspace) else {
            panic!("the first slot is free");
        };
        let mut stream = slot.hold(futures::stream::iter([1, 2]));
        assert_eq!(stream.next().await, Some(1));
        assert!(slots.acquire(workspace).is_err());

        drop(stream);

        assert_eq!((slots.live(), slots.live_in(workspace)), (0, 0));
        assert!(slots.acquire(workspace).is_ok());
    }
}

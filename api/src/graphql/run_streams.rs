//! The streams behind `runEvents` and `workspaceRuns`.
//!
//! `runEvents` delivers a run's events in `seq` order with no gap and no duplicate: it
//! subscribes to the live bus first, then replays the stored events after `afterSeq`, and
//! from then on takes a live event only when it is the next `seq`; anything else (a gap, a
//! lagged receiver, a quiet spell in which another node may have journaled) makes it read
//! the missing events back from storage. It completes after the run's terminal event.
//! Every read from storage re-authorizes the caller, so a removed member stops at once.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use aos_domain::access::{Action, Principal};
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::RunEvent;
use aos_domain::ports::ObjectRef;
use aos_domain::run::RunId;

use super::run_types::{RunEventObject, RunObject};
use crate::authz::{scope_for, scope_in};
use crate::error::ApiResult;
use crate::state::AppState;

const REFILL_BATCH: u64 = 500;

struct RunEventFeed {
    state: AppState,
    principal: Principal,
    run_id: RunId,
    live: broadcast::Receiver<Arc<RunEvent>>,
    pending: VecDeque<RunEvent>,
    last_seq: i64,
    needs_refill: bool,
    finished: bool,
}

pub fn run_events(
    state: AppState,
    principal: Principal,
    run_id: RunId,
    after_seq: i64,
) -> impl Stream<Item = ApiResult<RunEventObject>> {
    let feed = RunEventFeed {
        live: state.run_events.subscribe_run(run_id),
        state,
        principal,
        run_id,
        pending: VecDeque::new(),
        last_seq: after_seq.max(0),
        needs_refill: true,
        finished: false,
    };
    futures::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        match feed.next().await {
            Ok(Some(event)) => Some((Ok(RunEventObject(event)), Some(feed))),
            Ok(None) => None,
            // The error ends the stream: the caller resubscribes once allowed again.
            Err(error) => Some((Err(error), None)),
        }
    })
}

impl RunEventFeed {
    async fn next(&mut self) -> ApiResult<Option<RunEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(self.deliver(event)));
            }
            if self.finished {
                return Ok(None);
            }
            if self.needs_refill {
                self.refill().await?;
                continue;
            }
            let quiet = self.state.run_events.quiet_refill();
            match tokio::time::timeout(quiet, self.live.recv()).await {
                // Quiet for a while, or fell behind: look in storage.
                Err(_) | Ok(Err(RecvError::Lagged(_))) => self.needs_refill = true,
                Ok(Err(RecvError::Closed)) => return Ok(None),
                Ok(Ok(event)) if event.run_id != self.run_id || event.seq <= self.last_seq => {}
                Ok(Ok(event)) if event.seq == self.last_seq + 1 => {
                    return Ok(Some(self.deliver(event.as_ref().clone())));
                }
                Ok(Ok(_ahead)) => self.needs_refill = true,
            }
        }
    }

    fn deliver(&mut self, event: RunEvent) -> RunEvent {
        self.last_seq = event.seq;
        if event.kind.is_terminal() {
            self.finished = true;
            self.pending.clear();
        }
        event
    }

    async fn refill(&mut self) -> ApiResult<()> {
        let scope = scope_for(
            &self.state,
            &self.principal,
            ObjectRef::Run(self.run_id),
            Action::ReadRuns,
            "run",
        )
        .await?;
        let events = self
            .state
            .store
            .run_events(&scope, self.run_id, self.last_seq, REFILL_BATCH)
            .await?;
        // A full batch means more are stored: read again before going back to the bus.
        self.needs_refill = events.len() as u64 == REFILL_BATCH;
        if events.is_empty() {
            // Nothing after `last_seq`: when the run has ended, the caller already has its
            // terminal event (it subscribed with `afterSeq` at or past it), so complete.
            let run = self.state.store.run(&scope, self.run_id).await?;
            self.finished =
                run.is_some_and(|run| run.status.is_terminal() && run.last_seq <= self.last_seq);
        }
        self.pending.extend(events);
        Ok(())
    }
}

/// Status changes of a workspace's runs, as the run after the change.
pub fn workspace_runs(
    state: AppState,
    principal: Principal,
    workspace_id: WorkspaceId,
) -> impl Stream<Item = ApiResult<RunObject>> {
    let live = state.run_events.subscribe_statuses();
    futures::stream::unfold(Some((state, principal, live)), move |feed| async move {
        let (state, principal, mut live) = feed?;
        loop {
            let run_id = match live.recv().await {
                Ok(event) if event.workspace_id == workspace_id => event.run_id,
                Ok(_) => continue,
                // A slow subscriber skips changes it missed; the next one carries the
                // run's current state anyway.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            };
            let scope = match scope_in(
                &state,
                &principal,
                workspace_id,
                Action::ReadRuns,
                "workspace",
            )
            .await
            {
                Ok(scope) => scope,
                Err(error) => return Some((Err(error), None)),
            };
            match state.store.run(&scope, run_id).await {
                Ok(Some(run)) => {
                    return Some((Ok(RunObject { run, scope }), Some((state, principal, live))));
                }
                Ok(None) => continue,
                Err(error) => return Some((Err(error.into()), None)),
            }
        }
    })
}

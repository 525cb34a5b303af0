//! The cron scheduler: starts a run of each active `trigger.schedule` workflow at every
//! tick of its cron expression, in its time zone.
//!
//! Every `serve` process runs one, and each tick still starts exactly one run: firing a
//! tick records `(workflow, tick)` under a primary key in the same transaction as the run,
//! so the second scheduler to try finds it taken and writes nothing. Ticks that fall while
//! no scheduler runs are not made up afterwards (like cron); a scheduler that falls behind
//! by more than one tick fires only the latest, so a stalled process does not flood the
//! queue when it wakes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use aos_domain::DomainError;
use aos_domain::ids::WorkflowId;
use aos_domain::journal::{NewRun, RunTrigger};
use aos_domain::ports::{RunEventSink, TriggerStore, TriggerTarget};
use aos_domain::run::RunId;
use aos_domain::workflow::node_types::{NodeKind, ScheduleTriggerConfig};
use aos_domain::workflow::validate_definition;

/// How often the scheduler looks for due ticks: cron expressions may have seconds.
const TICK_CHECK: Duration = Duration::from_millis(250);
/// How often it re-reads which workflows are active and what their schedules are.
const REFRESH: Duration = Duration::from_secs(2);

struct Schedule {
    target: TriggerTarget,
    config: ScheduleTriggerConfig,
    /// Ticks at or before this have been dealt with.
    checked_until: DateTime<Utc>,
}

pub struct Scheduler {
    store: Arc<dyn TriggerStore>,
    events: Arc<dyn RunEventSink>,
    wake_workers: Arc<dyn Fn() + Send + Sync>,
    schedules: HashMap<WorkflowId, Schedule>,
    /// Active workflow versions known not to start with a schedule, so a refresh does not
    /// parse their definitions again every time.
    unscheduled: HashSet<(WorkflowId, i32)>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn TriggerStore>,
        events: Arc<dyn RunEventSink>,
        wake_workers: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            store,
            events,
            wake_workers,
            schedules: HashMap::new(),
            unscheduled: HashSet::new(),
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut last_refresh: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            if last_refresh.is_none_or(|at| at.elapsed() >= REFRESH) {
                if let Err(error) = self.refresh(Utc::now()).await {
                    tracing::error!(error = %error, "reading the schedules failed");
                }
                last_refresh = Some(tokio::time::Instant::now());
            }
            self.fire_due(Utc::now()).await;
            tokio::select! {
                () = tokio::time::sleep(TICK_CHECK) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    /// Picks up new and changed schedules and drops deactivated ones. A schedule seen for
    /// the first time, or changed, counts from `now`.
    async fn refresh(&mut self, now: DateTime<Utc>) -> Result<(), aos_domain::DomainError> {
        let active = self.store.active_workflows().await?;
        let mut current = HashMap::new();
        let mut unscheduled = HashSet::new();
        for target in active {
            let key = (target.workflow_id, target.version);
            if self.unscheduled.contains(&key) {
                unscheduled.insert(key);
                continue;
            }
            // A version is immutable: one already known keeps its parsed schedule and
            // its progress; only new versions are parsed.
            let schedule = match self.schedules.remove(&target.workflow_id) {
                Some(known) if known.target.version == target.version => known,
                _ => match schedule_of(&target) {
                    Some(config) => Schedule {
                        target,
                        config,
                        checked_until: now,
                    },
                    None => {
                        unscheduled.insert(key);
                        continue;
                    }
                },
            };
            current.insert(schedule.target.workflow_id, schedule);
        }
        self.schedules = current;
        self.unscheduled = unscheduled;
        Ok(())
    }

    async fn fire_due(&mut self, now: DateTime<Utc>) {
        let mut due = Vec::new();
        for schedule in self.schedules.values_mut() {
            if let Some(tick) = latest_tick(&schedule.config, schedule.checked_until, now) {
                due.push((schedule.target.clone(), tick));
            }
            schedule.checked_until = now;
        }
        for (target, tick) in due {
            self.fire(&target, tick).await;
        }
    }

    async fn fire(&self, target: &TriggerTarget, tick: DateTime<Utc>) {
        let run = NewRun {
            id: RunId::generate(),
            workflow_id: target.workflow_id,
            workflow_version: target.version,
            trigger: RunTrigger::Schedule,
            input: json!({"scheduledAt": tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
            retry_of: None,
            reused_steps: Vec::new(),
            queued_at: Utc::now(),
        };
        match self
            .store
            .fire_schedule_tick(target, tick.timestamp_millis(), run)
            .await
        {
            Ok(Some(run)) => {
                tracing::info!(workflow.id = %target.workflow_id, run.id = %run.id, %tick, "schedule fired");
                self.events.publish(&[run.queued_event()]);
                (self.wake_workers)();
            }
            // Another scheduler fired this tick.
            Ok(None) => {}
            // The workspace's own limit, not a fault: the tick is skipped, not retried.
            Err(error @ DomainError::QuotaExceeded { .. }) => {
                tracing::warn!(workflow.id = %target.workflow_id, error = %error, %tick, "schedule tick skipped");
            }
            Err(error) => {
                tracing::error!(workflow.id = %target.workflow_id, error = %error, "firing a schedule failed");
            }
        }
    }
}

fn schedule_of(target: &TriggerTarget) -> Option<ScheduleTriggerConfig> {
    let definition = validate_definition(&target.definition).ok()?;
    match definition.trigger().kind() {
        NodeKind::ScheduleTrigger(config) => Some(config.clone()),
        _ => None,
    }
}

/// The latest tick in `(after, until]`, if any.
pub fn latest_tick(
    config: &ScheduleTriggerConfig,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut latest = None;
    let mut cursor = after;
    // Bounded: a schedule firing every second, checked after a long stall, must not make
    // this loop long; past the bound only the ticks seen so far count.
    for _ in 0..10_000 {
        match config.next_after(cursor) {
            Some(tick) if tick <= until => {
                latest = Some(tick);
                cursor = tick;
            }
            _ => break,
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::latest_tick;
    use aos_domain::workflow::node_types::{NodeKind, ScheduleTriggerConfig};
    use aos_domain::workflow::validate_definition;

    fn schedule(cron: &str, timezone: &str) -> ScheduleTriggerConfig {
        let definition = validate_definition(&json!({
            "nodes": [{"id": "tick", "type": "trigger.schedule", "config": {"cron": cron, "timezone": timezone}}],
            "edges": []
        }))
        .unwrap_or_else(|problems| panic!("{problems:?}"));
        match definition.trigger().kind() {
            NodeKind::ScheduleTrigger(config) => config.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn utc(h: u32, m: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, h, m, s)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn the_latest_tick_in_the_window_is_fired_and_earlier_ones_are_not_made_up() {
        let every_minute = schedule("* * * * *", "UTC");

        assert_eq!(
            latest_tick(&every_minute, utc(10, 0, 30), utc(10, 0, 59)),
            None
        );
        assert_eq!(
            latest_tick(&every_minute, utc(10, 0, 30), utc(10, 1, 0)),
            Some(utc(10, 1, 0))
        );
        assert_eq!(
            latest_tick(&every_minute, utc(10, 0, 30), utc(10, 5, 10)),
            Some(utc(10, 5, 0))
        );
    }

    #[test]
    fn a_tick_exactly_at_the_start_of_the_window_was_dealt_with_before() {
        let every_minute = schedule("* * * * *", "UTC");

        assert_eq!(
            latest_tick(&every_minute, utc(10, 1, 0), utc(10, 1, 30)),
            None
        );
    }

    #[test]
    fn time_zones_shift_the_ticks() {
        // 09:00 in Paris is 08:00 UTC in winter.
        let nine_in_paris = schedule("0 9 * * *", "Europe/Paris");

        assert_eq!(
            latest_tick(&nine_in_paris, utc(7, 0, 0), utc(8, 30, 0)),
            Some(utc(8, 0, 0))
        );
        assert_eq!(
            latest_tick(&nine_in_paris, utc(8, 0, 0), utc(8, 30, 0)),
            None
        );
    }

    #[test]
    fn schedules_with_seconds_tick_every_second() {
        let every_second = schedule("* * * * * *", "UTC");

        assert_eq!(
            latest_tick(&every_second, utc(10, 0, 0), utc(10, 0, 3)),
            Some(utc(10, 0, 3))
        );
    }
}

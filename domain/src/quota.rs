//! Per-workspace quotas: plan-like ceilings on what a workspace may hold or use, the
//! instance-wide defaults an operator sets with flags, and the overrides an instance
//! administrator sets per workspace (`automationos quotas set`).
//!
//! Invariants:
//! - A limit is a positive number or "unlimited" (`None`); a zero limit does not exist,
//!   so no setting can silently refuse everything.
//! - A refusal happens at the boundary and not before: the `limit`-th object is admitted,
//!   the one after it is refused with [`DomainError::QuotaExceeded`] naming the quota.
//! - Counted quotas (active workflows, connections, members, queued runs) are checked in
//!   the transaction that adds the object, under a per-workspace lock, so concurrent
//!   additions cannot pass the boundary together. Metered quotas (runs per month, AI
//!   generations per day) are counters of the current period, incremented only if below
//!   the limit in one statement, in the transaction of what they count.
//! - Usage is only ever reported to a scope of its own workspace.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};

use crate::access::WorkspaceScope;
use crate::error::{DomainError, DomainResult};
use crate::ids::WorkspaceId;

/// A quota's name, as the API and the CLI spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quota {
    ActiveWorkflows,
    RunsPerMonth,
    RetentionDays,
    Connections,
    Members,
    AiGenerationsPerDay,
    QueuedRuns,
}

impl Quota {
    pub const ALL: [Quota; 7] = [
        Quota::ActiveWorkflows,
        Quota::RunsPerMonth,
        Quota::RetentionDays,
        Quota::Connections,
        Quota::Members,
        Quota::AiGenerationsPerDay,
        Quota::QueuedRuns,
    ];

    /// The name in `QUOTA_EXCEEDED` errors and `Workspace.usage`.
    pub fn name(self) -> &'static str {
        match self {
            Quota::ActiveWorkflows => "activeWorkflows",
            Quota::RunsPerMonth => "runsPerMonth",
            Quota::RetentionDays => "retentionDays",
            Quota::Connections => "connections",
            Quota::Members => "members",
            Quota::AiGenerationsPerDay => "aiGenerationsPerDay",
            Quota::QueuedRuns => "queuedRuns",
        }
    }

    /// The metered period a quota counts in; `None` for a quota on what exists now.
    pub fn period(self) -> Option<Period> {
        match self {
            Quota::RunsPerMonth => Some(Period::Month),
            Quota::AiGenerationsPerDay => Some(Period::Day),
            _ => None,
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quota {
    type Err = DomainError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Quota::ALL
            .into_iter()
            .find(|quota| quota.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let names: Vec<&str> = Quota::ALL.iter().map(|quota| quota.name()).collect();
                DomainError::invalid(format!(
                    "unknown quota {text:?}; quotas are {}",
                    names.join(", ")
                ))
            })
    }
}

/// The calendar period (UTC) a metered quota is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// The key of the period holding `at`: "2026-11" for a month, "2026-11-30" for a day.
    pub fn key(self, at: DateTime<Utc>) -> String {
        match self {
            Period::Month => format!("{:04}-{:02}", at.year(), at.month()),
            Period::Day => format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day()),
        }
    }

    /// When the period holding `at` ends and its counter starts again from zero.
    pub fn resets_at(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let next = match self {
            Period::Day => date.succ_opt(),
            Period::Month => {
                let (year, month) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                chrono::NaiveDate::from_ymd_opt(year, month, 1)
            }
        };
        next.and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|midnight| midnight.and_utc())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A limit: a positive number, or unlimited.
pub type Limit = Option<u64>;

/// One limit per quota.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QuotaLimits {
    pub active_workflows: Limit,
    pub runs_per_month: Limit,
    pub retention_days: Limit,
    pub connections: Limit,
    pub members: Limit,
    pub ai_generations_per_day: Limit,
    pub queued_runs: Limit,
}

impl QuotaLimits {
    /// No limit at all: what storage enforces when nobody configured it (tests, tools).
    pub fn unlimited() -> Self {
        Self::default()
    }

    pub fn get(&self, quota: Quota) -> Limit {
        match quota {
            Quota::ActiveWorkflows => self.active_workflows,
            Quota::RunsPerMonth => self.runs_per_month,
            Quota::RetentionDays => self.retention_days,
            Quota::Connections => self.connections,
            Quota::Members => self.members,
            Quota::AiGenerationsPerDay => self.ai_generations_per_day,
            Quota::QueuedRuns => self.queued_runs,
        }
    }

    pub fn set(&mut self, quota: Quota, limit: Limit) {
        let slot = match quota {
            Quota::ActiveWorkflows => &mut self.active_workflows,
            Quota::RunsPerMonth => &mut self.runs_per_month,
            Quota::RetentionDays => &mut self.retention_days,
            Quota::Connections => &mut self.connections,
            Quota::Members => &mut self.members,
            Quota::AiGenerationsPerDay => &mut self.ai_generations_per_day,
            Quota::QueuedRuns => &mut self.queued_runs,
        };
        *slot = limit.filter(|&limit| limit > 0);
    }

    /// These defaults with `overrides` laid over them.
    pub fn with(&self, overrides: &QuotaOverride) -> QuotaLimits {
        let mut limits = self.clone();
        for (quota, setting) in &overrides.limits {
            limits.set(*quota, setting.limit());
        }
        limits
    }
}

/// What an override sets one quota to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Limited(u64),
    Unlimited,
}

impl Setting {
    pub fn limit(self) -> Limit {
        match self {
            Setting::Limited(limit) => Some(limit),
            Setting::Unlimited => None,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Limited(limit) => write!(f, "{limit}"),
            Setting::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for Setting {
    type Err = DomainError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(Setting::Unlimited);
        }
        match text.parse::<u64>() {
            Ok(limit) if limit > 0 && limit < STORED_UNLIMITED => Ok(Setting::Limited(limit)),
            _ => Err(DomainError::invalid(format!(
                "{text:?} is not a limit: give a positive whole number or \"unlimited\""
            ))),
        }
    }
}

/// How storage spells "unlimited" in a column where NULL means "the default".
pub const STORED_UNLIMITED: u64 = i64::MAX as u64;

/// An instance administrator's settings for one workspace. Quotas absent from `limits`
/// follow the instance defaults; so do `running_runs` and `scheduling_weight` when `None`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QuotaOverride {
    pub limits: Vec<(Quota, Setting)>,
    /// How many of the workspace's runs may execute at once, across all workers.
    pub running_runs: Option<u32>,
    /// The workspace's share of the workers when workspaces compete (default 1).
    pub scheduling_weight: Option<u32>,
}

impl QuotaOverride {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.running_runs.is_none() && self.scheduling_weight.is_none()
    }

    /// `self` with every setting `newer` makes replacing the old one.
    pub fn merged(mut self, newer: QuotaOverride) -> QuotaOverride {
        for (quota, setting) in newer.limits {
            self.limits.retain(|(old, _)| *old != quota);
            self.limits.push((quota, setting));
        }
        self.limits.sort_by_key(|(quota, _)| *quota);
        self.running_runs = newer.running_runs.or(self.running_runs);
        self.scheduling_weight = newer.scheduling_weight.or(self.scheduling_weight);
        self
    }
}

/// One quota's usage, for `Workspace.usage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaUsage {
    pub quota: Quota,
    /// For `retentionDays`, the age in whole days of the oldest stored run.
    pub used: u64,
    pub limit: Limit,
    /// When a metered quota's counter starts again from zero.
    pub resets_at: Option<DateTime<Utc>>,
}

/// The refusal of one more `quota`.
pub fn exceeded(quota: Quota, limit: u64) -> DomainError {
    DomainError::QuotaExceeded { quota, limit }
}

/// Refuses adding one more to `used` when that passes `limit`.
pub fn admit_one(quota: Quota, used: u64, limit: Limit) -> DomainResult<()> {
    match limit {
        Some(limit) if used >= limit => Err(exceeded(quota, limit)),
        _ => Ok(()),
    }
}

#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// The limits that hold for `workspace_id`: the defaults with its override over them.
    async fn quota_limits(&self, workspace_id: WorkspaceId) -> DomainResult<QuotaLimits>;

    /// Usage against every quota, in [`Quota::ALL`] order.
    async fn quota_usage(
        &self,
        scope: &WorkspaceScope,
        now: DateTime<Utc>,
    ) -> DomainResult<Vec<QuotaUsage>>;

    /// Counts one use of a metered quota (`Quota::period` is `Some`) now, or refuses it.
    async fn consume_quota(
        &self,
        scope: &WorkspaceScope,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;

    /// Counts a run about to be executed in place (not queued) against the month's runs,
    /// or refuses it. Unscoped, like the webhook call that starts such runs.
    async fn admit_run_now(
        &self,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;

    /// Gives back a run admitted by [`QuotaStore::admit_run_now`] that was not executed
    /// in place after all (and is queued instead, which counts it again).
    async fn refund_run_now(
        &self,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;

    /// Adds runs executed in place to the month's counts, unconditionally: for workspaces
    /// whose month is unlimited, where there is nothing to refuse.
    async fn count_runs_now(
        &self,
        counts: &[(WorkspaceId, u64)],
        now: DateTime<Utc>,
    ) -> DomainResult<()>;

    /// The override of `workspace_id` (empty when there is none).
    async fn quota_override(&self, workspace_id: WorkspaceId) -> DomainResult<QuotaOverride>;

    /// Lays `settings` over the workspace's override; `NotFound` for an unknown workspace.
    async fn set_quota_override(
        &self,
        workspace_id: WorkspaceId,
        settings: QuotaOverride,
    ) -> DomainResult<QuotaOverride>;

    /// Removes the override; `false` when there was none.
    async fn clear_quota_override(&self, workspace_id: WorkspaceId) -> DomainResult<bool>;

    async fn quota_overrides(&self) -> DomainResult<Vec<(WorkspaceId, QuotaOverride)>>;

    /// Deletes up to `batch` finished runs (with their steps and events) created before
    /// their workspace's retention cutoff, oldest first; returns how many went. Runs not
    /// yet finished stay, however old. Unscoped: retention spans workspaces.
    async fn purge_expired_runs(
        &self,
        retention: &Retention,
        now: DateTime<Utc>,
        batch: u64,
    ) -> DomainResult<u64>;
}

/// Days of history kept per workspace, from the `retentionDays` quota: the default and
/// the workspaces whose override sets it.
pub type Retention = crate::audit::AuditRetention;

/// What "unlimited" retention keeps: far beyond any real history, within the calendar.
pub const UNLIMITED_RETENTION_DAYS: u32 = 1_000_000;

/// The retention the `retentionDays` quota sets, for the audit log and the runs alike.
pub fn retention(defaults: &QuotaLimits, overrides: &[(WorkspaceId, QuotaOverride)]) -> Retention {
    let days = |limit: Limit| {
        limit.map_or(UNLIMITED_RETENTION_DAYS, |days| {
            u32::try_from(days)
                .unwrap_or(UNLIMITED_RETENTION_DAYS)
                .min(UNLIMITED_RETENTION_DAYS)
        })
    };
    let mut retention = Retention::uniform(days(defaults.retention_days));
    for (workspace_id, settings) in overrides {
        if let Some((_, setting)) = settings
            .limits
            .iter()
            .find(|(quota, _)| *quota == Quota::RetentionDays)
        {
            retention
                .per_workspace
                .insert(*workspace_id, days(setting.limit()));
        }
    }
    retention
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn retention_follows_the_quota_default_and_overrides() {
        let defaults = QuotaLimits {
            retention_days: Some(30),
            ..QuotaLimits::unlimited()
        };
        let kept_forever = WorkspaceId::generate();
        let short = WorkspaceId::generate();
        let other = WorkspaceId::generate();
        let overrides = vec![
            (
                kept_forever,
                QuotaOverride {
                    limits: vec![(Quota::RetentionDays, Setting::Unlimited)],
                    ..QuotaOverride::default()
                },
            ),
            (
                short,
                QuotaOverride {
                    limits: vec![(Quota::RetentionDays, Setting::Limited(7))],
                    ..QuotaOverride::default()
                },
            ),
            (
                other,
                QuotaOverride {
                    running_runs: Some(2),
                    ..QuotaOverride::default()
                },
            ),
        ];
        let retention = retention(&defaults, &overrides);
        assert_eq!(retention.default_days, 30);
        assert_eq!(retention.per_workspace.get(&short), Some(&7));
        assert_eq!(
            retention.per_workspace.get(&kept_forever),
            Some(&UNLIMITED_RETENTION_DAYS)
        );
        assert_eq!(retention.per_workspace.get(&other), None);
        let now = Utc::now();
        assert!(retention.cutoff(Some(kept_forever), now).timestamp() < 0);
    }

    #[test]
    fn quota_names_round_trip() {
        for quota in Quota::ALL {
            assert_eq!(quota.name().parse::<Quota>().ok(), Some(quota));
        }
        assert!("runs".parse::<Quota>().is_err());
    }

    #[test]
    fn periods_key_and_reset_at_utc_calendar_boundaries() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(Period::Month.key(at), "2026-12");
        assert_eq!(Period::Day.key(at), "2026-12-31");
        assert_eq!(
            Period::Month.resets_at(at),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            Period::Day.resets_at(at),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let feb = Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap();
        assert_eq!(
            Period::Month.resets_at(feb),
            Utc.with_ymd_and_hms(2028, 3, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_limit_th_is_admitted_and_the_next_refused() {
        assert!(admit_one(Quota::Members, 2, Some(3)).is_ok());
        let refused = admit_one(Quota::Members, 3, Some(3));
        assert!(matches!(
            refused,
            Err(DomainError::QuotaExceeded {
                quota: Quota::Members,
                limit: 3
            })
        ));
        assert!(admit_one(Quota::Members, u64::MAX - 1, None).is_ok());
    }

    #[test]
    fn settings_parse_positive_numbers_and_unlimited_only() {
        assert_eq!("5".parse::<Setting>().ok(), Some(Setting::Limited(5)));
        assert_eq!(
            "Unlimited".parse::<Setting>().ok(),
            Some(Setting::Unlimited)
        );
        for bad in ["0", "-1", "many", "", "9223372036854775807"] {
            assert!(bad.parse::<Setting>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_override_lays_over_the_defaults() {
        let defaults = QuotaLimits {
            members: Some(10),
            connections: Some(5),
            ..QuotaLimits::unlimited()
        };
        let settings = QuotaOverride {
            limits: vec![
                (Quota::Members, Setting::Limited(3)),
                (Quota::Connections, Setting::Unlimited),
            ],
            ..QuotaOverride::default()
        };
        let limits = defaults.with(&settings);
        assert_eq!(limits.members, Some(3));
        assert_eq!(limits.connections, None);
        assert_eq!(limits.runs_per_month, None);
    }

    #[test]
    fn merging_keeps_old_settings_that_the_newer_leaves_alone() {
        let old = QuotaOverride {
            limits: vec![(Quota::Members, Setting::Limited(3))],
            running_runs: Some(2),
            scheduling_weight: None,
        };
        let newer = QuotaOverride {
            limits: vec![
                (Quota::Members, Setting::Limited(4)),
                (Quota::QueuedRuns, Setting::Limited(9)),
            ],
            running_runs: None,
            scheduling_weight: Some(3),
        };
        let merged = old.merged(newer);
        assert_eq!(
            merged.limits,
            vec![
                (Quota::Members, Setting::Limited(4)),
                (Quota::QueuedRuns, Setting::Limited(9)),
            ]
        );
        assert_eq!(merged.running_runs, Some(2));
        assert_eq!(merged.scheduling_weight, Some(3));
    }
}

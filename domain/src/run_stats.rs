//! Run statistics: how the runs of a workspace, or of one of its workflows, ended over a
//! window of days, how long they took, and how many are queued or running now.
//!
//! Policy:
//! - Statistics come from daily aggregates that storage keeps as runs end, never from a
//!   scan of the runs, so a read costs about the same with a million runs as with ten.
//!   A window is therefore made of whole UTC days: `since` is taken back to the midnight
//!   (UTC) that starts its day, and the window ends now, today included.
//! - A run counts on the UTC day it finished, under its terminal status. Queued and
//!   running runs are not history: they are counted as they are now, whatever the window.
//! - A run's duration runs from its start to its end. A run cancelled before it started
//!   has none: it is counted, but not timed.
//! - The success rate is succeeded / (succeeded + failed). Cancelled runs are left out: a
//!   cancellation is someone's decision, not how the workflow did.
//! - Percentiles are estimated from a histogram of the durations (its buckets are fixed
//!   by storage) by interpolating inside the bucket that holds the wanted rank, narrowed
//!   to the shortest and longest duration recorded. The estimate and the true value
//!   (nearest rank) lie in the same bucket, so they differ by less than its width; with
//!   storage's buckets that is less than half the true value, and nothing below 4 ms.
//! - Statistics are only ever read through a scope of their own workspace.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::access::WorkspaceScope;
use crate::error::{DomainError, DomainResult};
use crate::ids::WorkflowId;
use crate::run::RunStatus;

/// The window when the caller names no `since`.
pub const DEFAULT_WINDOW_DAYS: u64 = 30;
/// How far back `since` may reach: a bound on the days one read aggregates.
pub const MAX_WINDOW_DAYS: u64 = 400;

/// The UTC days the statistics cover, from `since`'s day to today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsWindow {
    first_day: NaiveDate,
    last_day: NaiveDate,
    until: DateTime<Utc>,
}

impl StatsWindow {
    /// The window from `since` (default: [`DEFAULT_WINDOW_DAYS`] ago) to `now`.
    /// `Invalid` when `since` is after `now` or more than [`MAX_WINDOW_DAYS`] before it.
    pub fn new(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DomainResult<Self> {
        let days_back = |days: u64| {
            now.checked_sub_days(Days::new(days))
                .ok_or_else(|| DomainError::internal("the clock reads before the calendar"))
        };
        let since = match since {
            Some(since) => since,
            None => days_back(DEFAULT_WINDOW_DAYS)?,
        };
        if since > now {
            return Err(DomainError::invalid("`since` must not be in the future"));
        }
        if since < days_back(MAX_WINDOW_DAYS)? {
            return Err(DomainError::invalid(format!(
                "`since` may be at most {MAX_WINDOW_DAYS} days ago"
            )));
        }
        Ok(Self {
            first_day: since.date_naive(),
            last_day: now.date_naive(),
            until: now,
        })
    }

    /// Midnight (UTC) of the first day: where the window really starts.
    pub fn since(&self) -> DateTime<Utc> {
        self.first_day.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }

    pub fn first_day(&self) -> NaiveDate {
        self.first_day
    }

    /// Today, at `until`.
    pub fn last_day(&self) -> NaiveDate {
        self.last_day
    }

    /// Every day of the window, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let last = self.last_day;
        self.first_day
            .iter_days()
            .take_while(move |day| *day <= last)
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        (self.first_day..=self.last_day).contains(&day)
    }
}

/// Runs that finished, by terminal status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl Outcomes {
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled
    }

    /// succeeded / (succeeded + failed); `None` when neither happened.
    pub fn success_rate(&self) -> Option<f64> {
        let decided = self.succeeded + self.failed;
        (decided > 0).then(|| self.succeeded as f64 / decided as f64)
    }

    /// Adds `runs` runs that ended with `status`; `Internal` for a status that is not
    /// terminal, which storage never aggregates.
    fn add(&mut self, status: RunStatus, runs: u64) -> DomainResult<()> {
        let slot = match status {
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::Cancelled => &mut self.cancelled,
            RunStatus::Queued | RunStatus::Running => {
                return Err(DomainError::internal(
                    "run statistics of a run that has not finished",
                ));
            }
        };
        *slot += runs;
        Ok(())
    }
}

/// How long the timed runs took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Durations {
    /// Finished runs with a duration (all but those cancelled before they started).
    pub timed: u64,
    /// Exact: the sum of the durations over `timed`.
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// One day of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct DayStats {
    pub day: NaiveDate,
    pub outcomes: Outcomes,
    pub durations: Durations,
}

/// The statistics of a window; see the module doc for what each figure means.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    pub window: StatsWindow,
    pub outcomes: Outcomes,
    pub durations: Durations,
    /// Every day of the window, oldest first, days without runs included.
    pub days: Vec<DayStats>,
    /// Queued now (waiting, or sleeping until a delay or a retry is due).
    pub queued: u64,
    /// Running now.
    pub running: u64,
}

impl RunStats {
    /// Every status with its count: the terminal ones over the window, the others now.
    pub fn by_status(&self) -> [(RunStatus, u64); 5] {
        [
            (RunStatus::Queued, self.queued),
            (RunStatus::Running, self.running),
            (RunStatus::Succeeded, self.outcomes.succeeded),
            (RunStatus::Failed, self.outcomes.failed),
            (RunStatus::Cancelled, self.outcomes.cancelled),
        ]
    }

    /// The runs these statistics count: those that finished in the window and those queued
    /// or running now.
    pub fn total(&self) -> u64 {
        self.outcomes.finished() + self.queued + self.running
    }

    /// The statistics from storage's aggregates, with estimated percentiles. Rows of days
    /// outside the window are left out.
    pub fn from_aggregates(
        window: StatsWindow,
        live: LiveRuns,
        outcomes: &[DailyOutcomes],
        durations: &[DailyBucket],
    ) -> DomainResult<Self> {
        let mut days: BTreeMap<NaiveDate, (Outcomes, Histogram)> =
            window.days().map(|day| (day, Default::default())).collect();
        for row in outcomes {
            if let Some((counts, histogram)) = days.get_mut(&row.day) {
                counts.add(row.status, row.runs)?;
                histogram.add_timed(row.timed, row.duration_ms_sum, row.min_ms, row.max_ms);
            }
        }
        for row in durations {
            if let Some((_, histogram)) = days.get_mut(&row.day) {
                histogram.add_bucket(row.bucket, row.runs);
            }
        }
        let mut total = (Outcomes::default(), Histogram::default());
        let days = days
            .into_iter()
            .map(|(day, (outcomes, histogram))| {
                total.0.add_all(&outcomes);
                total.1.merge(&histogram);
                DayStats {
                    day,
                    outcomes,
                    durations: histogram.durations(),
                }
            })
            .collect();
        Ok(Self {
            window,
            outcomes: total.0,
            durations: total.1.durations(),
            days,
            queued: live.queued,
            running: live.running,
        })
    }

    /// The statistics from the runs themselves, with exact (nearest-rank) percentiles:
    /// what the aggregates are checked against. Runs of days outside the window are left
    /// out.
    pub fn from_runs(
        window: StatsWindow,
        live: LiveRuns,
        runs: &[FinishedRun],
    ) -> DomainResult<Self> {
        let mut days: BTreeMap<NaiveDate, (Outcomes, Vec<u64>)> =
            window.days().map(|day| (day, Default::default())).collect();
        for run in runs {
            if let Some((counts, durations)) = days.get_mut(&run.day) {
                counts.add(run.status, 1)?;
                durations.extend(run.duration_ms);
            }
        }
        let mut total = (Outcomes::default(), Vec::new());
        let days = days
            .into_iter()
            .map(|(day, (outcomes, mut durations))| {
                total.0.add_all(&outcomes);
                total.1.extend_from_slice(&durations);
                DayStats {
                    day,
                    outcomes,
                    durations: exact_durations(&mut durations),
                }
            })
            .collect();
        Ok(Self {
            window,
            outcomes: total.0,
            durations: exact_durations(&mut total.1),
            days,
            queued: live.queued,
            running: live.running,
        })
    }
}

impl Outcomes {
    fn add_all(&mut self, other: &Outcomes) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
    }
}

/// Runs queued and running now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveRuns {
    pub queued: u64,
    pub running: u64,
}

/// The runs of one day that ended with one status, summed over the workflows read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyOutcomes {
    pub day: NaiveDate,
    pub status: RunStatus,
    pub runs: u64,
    /// How many of them have a duration, and the sum, least and greatest of those.
    pub timed: u64,
    pub duration_ms_sum: u64,
    pub min_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

/// A bucket of the duration histogram: `lower_ms <= duration < upper_ms`; the last
/// bucket has no upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationBucket {
    pub lower_ms: u64,
    pub upper_ms: Option<u64>,
}

/// How many runs of one day took a duration in `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyBucket {
    pub day: NaiveDate,
    pub bucket: DurationBucket,
    pub runs: u64,
}

/// One finished run, for [`RunStats::from_runs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedRun {
    pub day: NaiveDate,
    pub status: RunStatus,
    pub duration_ms: Option<u64>,
}

/// Durations as storage aggregates them: a histogram plus the exact count, sum, least and
/// greatest.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// By lower bound: the upper bound and the count.
    buckets: BTreeMap<u64, (Option<u64>, u64)>,
    timed: u64,
    sum_ms: u64,
    min_ms: Option<u64>,
    max_ms: Option<u64>,
}

impl Histogram {
    fn add_timed(&mut self, timed: u64, sum_ms: u64, min_ms: Option<u64>, max_ms: Option<u64>) {
        self.timed += timed;
        self.sum_ms += sum_ms;
        self.min_ms = lesser(self.min_ms, min_ms);
        self.max_ms = self.max_ms.max(max_ms);
    }

    fn add_bucket(&mut self, bucket: DurationBucket, runs: u64) {
        let entry = self
            .buckets
            .entry(bucket.lower_ms)
            .or_insert((bucket.upper_ms, 0));
        entry.1 += runs;
    }

    fn merge(&mut self, other: &Histogram) {
        self.add_timed(other.timed, other.sum_ms, other.min_ms, other.max_ms);
        for (&lower_ms, &(upper_ms, runs)) in &other.buckets {
            self.add_bucket(DurationBucket { lower_ms, upper_ms }, runs);
        }
    }

    fn durations(&self) -> Durations {
        Durations {
            timed: self.timed,
            mean_ms: mean(self.sum_ms, self.timed),
            p50_ms: self.estimate(0.50),
            p95_ms: self.estimate(0.95),
        }
    }

    /// The `fraction` percentile (nearest rank), estimated inside its bucket: see the
    /// module doc for the error bound.
    fn estimate(&self, fraction: f64) -> Option<f64> {
        let total: u64 = self.buckets.values().map(|(_, runs)| runs).sum();
        let rank = nearest_rank(fraction, total)?;
        let mut before = 0;
        for (&lower_ms, &(upper_ms, runs)) in &self.buckets {
            if before + runs < rank {
                before += runs;
                continue;
            }
            // Durations are whole milliseconds: the highest one a bucket holds is one below
            // its upper bound. Both ends narrow to what was recorded.
            let low = self.min_ms.map_or(lower_ms, |min| min.max(lower_ms));
            let high = match (upper_ms, self.max_ms) {
                (Some(upper), Some(max)) => max.min(upper.saturating_sub(1)),
                (Some(upper), None) => upper.saturating_sub(1),
                (None, Some(max)) => max,
                (None, None) => lower_ms,
            }
            .max(low);
            // The rank's place among the bucket's runs, as if they were spread evenly.
            let position = ((rank - before) as f64 - 0.5) / runs as f64;
            return Some((low as f64 + (high - low) as f64 * position).round());
        }
        None
    }
}

fn lesser(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn mean(sum_ms: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum_ms as f64 / count as f64)
}

/// The 1-based rank of the `fraction` percentile among `count` values (nearest rank).
fn nearest_rank(fraction: f64, count: u64) -> Option<u64> {
    (count > 0).then(|| ((fraction * count as f64).ceil() as u64).clamp(1, count))
}

fn exact_durations(durations: &mut [u64]) -> Durations {
    durations.sort_unstable();
    let count = durations.len() as u64;
    let at = |fraction: f64| {
        nearest_rank(fraction, count).and_then(|rank| {
            usize::try_from(rank - 1)
                .ok()
                .and_then(|index| durations.get(index))
                .map(|&ms| ms as f64)
        })
    };
    Durations {
        timed: count,
        mean_ms: mean(durations.iter().sum(), count),
        p50_ms: at(0.50),
        p95_ms: at(0.95),
    }
}

/// Run statistics, read from storage's aggregates.
#[async_trait]
pub trait RunStatsStore: Send + Sync {
    /// The statistics of the scope's workspace over `window`, or of `workflow` only (which
    /// the caller has found in the scope's workspace).
    async fn run_stats(
        &self,
        scope: &WorkspaceScope,
        workflow: Option<WorkflowId>,
        window: &StatsWindow,
    ) -> DomainResult<RunStats>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instant(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 instant")
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    /// The same ladder as storage's (1, 1.5, 2, 3, 4, 6, 8 per decade).
    fn ladder() -> Vec<u64> {
        let mut bounds = vec![0, 1, 2, 3, 4, 6, 8];
        for decade in (1..8).map(|power| 10_u64.pow(power)) {
            for step in [10, 15, 20, 30, 40, 60, 80] {
                bounds.push(decade * step / 10);
            }
        }
        bounds.push(100_000_000);
        bounds
    }

    fn bucket_of(ladder: &[u64], duration: u64) -> DurationBucket {
        let index = ladder.partition_point(|&lower| lower <= duration) - 1;
        DurationBucket {
            lower_ms: ladder[index],
            upper_ms: ladder.get(index + 1).copied(),
        }
    }

    /// What storage would aggregate for `runs`, all on `day`.
    fn aggregates(day: NaiveDate, runs: &[FinishedRun]) -> (Vec<DailyOutcomes>, Vec<DailyBucket>) {
        let ladder = ladder();
        let mut outcomes: BTreeMap<&str, DailyOutcomes> = BTreeMap::new();
        let mut buckets: BTreeMap<u64, DailyBucket> = BTreeMap::new();
        for run in runs {
            let row = outcomes
                .entry(run.status.as_str())
                .or_insert(DailyOutcomes {
                    day,
                    status: run.status,
                    runs: 0,
                    timed: 0,
                    duration_ms_sum: 0,
                    min_ms: None,
                    max_ms: None,
                });
            row.runs += 1;
            if let Some(ms) = run.duration_ms {
                row.timed += 1;
                row.duration_ms_sum += ms;
                row.min_ms = lesser(row.min_ms, Some(ms));
                row.max_ms = row.max_ms.max(Some(ms));
                let bucket = bucket_of(&ladder, ms);
                buckets
                    .entry(bucket.lower_ms)
                    .or_insert(DailyBucket {
                        day,
                        bucket,
                        runs: 0,
                    })
                    .runs += 1;
            }
        }
        (
            outcomes.into_values().collect(),
            buckets.into_values().collect(),
        )
    }

    #[test]
    fn the_window_starts_at_midnight_of_the_day_of_since() {
        let now = instant("2026-11-30T15:00:00Z");
        let window =
            StatsWindow::new(Some(instant("2026-11-28T09:30:00Z")), now).expect("a window");
        assert_eq!(window.since(), instant("2026-11-28T00:00:00Z"));
        assert_eq!(window.until(), now);
        assert_eq!(
            window.days().collect::<Vec<_>>(),
            [date("2026-11-28"), date("2026-11-29"), date("2026-11-30")]
        );
    }

    #[test]
    fn the_default_window_is_the_last_thirty_days_and_today() {
        let window = StatsWindow::new(None, instant("2026-11-30T15:00:00Z")).expect("a window");
        assert_eq!(window.first_day(), date("2026-10-31"));
        assert_eq!(window.days().count(), 31);
    }

    #[test]
    fn since_in_the_future_or_too_far_back_is_invalid() {
        let now = instant("2026-11-30T15:00:00Z");
        for since in ["2026-11-30T15:00:01Z", "2025-10-26T14:59:59Z"] {
            assert!(
                matches!(
                    StatsWindow::new(Some(instant(since)), now),
                    Err(DomainError::Invalid(_))
                ),
                "{since}"
            );
        }
        for since in ["2026-11-30T15:00:00Z", "2025-10-26T15:00:00Z"] {
            assert!(
                StatsWindow::new(Some(instant(since)), now).is_ok(),
                "{since}"
            );
        }
    }

    #[test]
    fn the_success_rate_leaves_cancelled_runs_out() {
        let outcomes = Outcomes {
            succeeded: 3,
            failed: 1,
            cancelled: 10,
        };
        assert_eq!(outcomes.success_rate(), Some(0.75));
        let only_cancelled = Outcomes {
            cancelled: 2,
            ..Outcomes::default()
        };
        assert_eq!(only_cancelled.success_rate(), None);
    }

    #[test]
    fn days_without_runs_are_listed_and_days_outside_are_left_out() {
        let window = StatsWindow::new(
            Some(instant("2026-11-29T00:00:00Z")),
            instant("2026-11-30T12:00:00Z"),
        )
        .expect("a window");
        let run = |day: &str, status| FinishedRun {
            day: date(day),
            status,
            duration_ms: Some(100),
        };
        let runs = [
            run("2026-11-28", RunStatus::Succeeded),
            run("2026-11-30", RunStatus::Failed),
            run("2026-11-30", RunStatus::Succeeded),
        ];
        let live = LiveRuns {
            queued: 2,
            running: 1,
        };
        let (outcomes, buckets) = aggregates(date("2026-11-30"), &runs[1..]);
        let mut stale = aggregates(date("2026-11-28"), &runs[..1]);
        stale.0.extend(outcomes);
        stale.1.extend(buckets);

        let stats = RunStats::from_aggregates(window, live, &stale.0, &stale.1).expect("stats");

        assert_eq!(
            stats,
            RunStats::from_runs(window, live, &runs).expect("stats")
        );
        assert_eq!(stats.days.len(), 2);
        assert_eq!(stats.days[0].outcomes, Outcomes::default());
        assert_eq!(stats.days[0].durations, Durations::default());
        assert_eq!(stats.outcomes.finished(), 2);
        assert_eq!(stats.total(), 5);
        assert_eq!(stats.durations.p95_ms, Some(100.0), "narrowed to min = max");
    }

    #[test]
    fn a_non_terminal_status_in_the_aggregates_is_an_internal_error() {
        let window = StatsWindow::new(None, instant("2026-11-30T12:00:00Z")).expect("a window");
        let row = DailyOutcomes {
            day: date("2026-11-30"),
            status: RunStatus::Running,
            runs: 1,
            timed: 0,
            duration_ms_sum: 0,
            min_ms: None,
            max_ms: None,
        };
        assert!(matches!(
            RunStats::from_aggregates(window, LiveRuns::default(), &[row], &[]),
            Err(DomainError::Internal(_))
        ));
    }

    #[test]
    fn the_open_last_bucket_reaches_to_the_longest_run() {
        let mut histogram = Histogram::default();
        histogram.add_timed(2, 300_000_000, Some(100_000_000), Some(200_000_000));
        histogram.add_bucket(
            DurationBucket {
                lower_ms: 100_000_000,
                upper_ms: None,
            },
            2,
        );
        assert_eq!(histogram.estimate(0.5), Some(125_000_000.0));
        assert_eq!(histogram.estimate(0.95), Some(175_000_000.0));
    }

    proptest! {
        /// The documented bound: the estimate is in the bucket of the true value, narrowed
        /// to the recorded extremes, so it is off by less than that bucket's width, which
        /// is less than half the true value; counts and means are exact.
        #[test]
        fn estimates_stay_inside_the_bucket_of_the_true_percentile(
            durations in proptest::collection::vec(
                prop_oneof![0_u64..20, 0_u64..5_000, 0_u64..300_000_000],
                1..300,
            ),
        ) {
            let day = date("2026-11-30");
            let window = StatsWindow::new(None, instant("2026-11-30T12:00:00Z"))
                .expect("a window");
            let runs: Vec<FinishedRun> = durations
                .iter()
                .map(|&ms| FinishedRun { day, status: RunStatus::Succeeded, duration_ms: Some(ms) })
                .collect();
            let (outcomes, buckets) = aggregates(day, &runs);
            let estimated = RunStats::from_aggregates(window, LiveRuns::default(), &outcomes, &buckets)
                .expect("stats");
            let exact = RunStats::from_runs(window, LiveRuns::default(), &runs).expect("stats");

            prop_assert_eq!(estimated.outcomes, exact.outcomes);
            prop_assert_eq!(estimated.durations.timed, exact.durations.timed);
            prop_assert_eq!(estimated.durations.mean_ms, exact.durations.mean_ms);
            let ladder = ladder();
            let max = durations.iter().copied().max().unwrap_or_default();
            for (guess, truth) in [
                (estimated.durations.p50_ms, exact.durations.p50_ms),
                (estimated.durations.p95_ms, exact.durations.p95_ms),
            ] {
                let (guess, truth) = (guess.unwrap_or(-1.0), truth.unwrap_or(-1.0));
                let bucket = bucket_of(&ladder, truth as u64);
                let width = bucket.upper_ms.map_or(max, |upper| upper - 1) - bucket.lower_ms;
                prop_assert!((guess - truth).abs() <= width as f64, "{guess} vs {truth}");
                if truth < 100_000_000.0 {
                    prop_assert!((guess - truth).abs() <= truth / 2.0, "{guess} vs {truth}");
                }
                if truth < 4.0 {
                    prop_assert_eq!(guess, truth);
                }
            }
        }
    }
}

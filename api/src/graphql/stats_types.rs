//! `RunStats`: run statistics over a window of days, for `Workflow.stats` and
//! `WorkspaceUsage.runs`. The figures and their definitions are `aos_domain::run_stats`'s;
//! this file only names them for GraphQL.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_domain::access::WorkspaceScope;
use aos_domain::ids::WorkflowId;
use aos_domain::run_stats::{DayStats, Durations, Outcomes, RunStats, StatsWindow};

use super::app;
use super::run_types::RunStatus;
use crate::error::ApiResult;

/// GraphQL's `Int` of these counts is 64-bit in practice; a count never comes near it.
fn int(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

pub struct RunStatsObject(RunStats);

/// Runs of a workspace or a workflow: those that finished in the window (by the UTC day
/// they finished on) and those queued or running now. Read from daily aggregates, so the
/// window is made of whole UTC days.
#[Object(name = "RunStats")]
impl RunStatsObject {
    /// Midnight (UTC) of the day of the `since` asked for: where the window starts.
    async fn since(&self) -> DateTime<Utc> {
        self.0.window.since()
    }

    /// Now: the window includes today so far.
    async fn until(&self) -> DateTime<Utc> {
        self.0.window.until()
    }

    /// The runs counted: those that finished in the window plus those queued or running
    /// now, the sum of `byStatus`.
    async fn total(&self) -> i64 {
        int(self.0.total())
    }

    /// Every status: the terminal ones over the window, QUEUED and RUNNING now.
    async fn by_status(&self) -> Vec<RunStatusCount> {
        self.0
            .by_status()
            .into_iter()
            .map(|(status, count)| RunStatusCount {
                status: status.into(),
                count: int(count),
            })
            .collect()
    }

    /// Runs that finished in the window, whatever their status.
    async fn finished(&self) -> i64 {
        int(self.0.outcomes.finished())
    }

    async fn succeeded(&self) -> i64 {
        int(self.0.outcomes.succeeded)
    }

    async fn failed(&self) -> i64 {
        int(self.0.outcomes.failed)
    }

    async fn cancelled(&self) -> i64 {
        int(self.0.outcomes.cancelled)
    }

    /// Queued now, including runs sleeping until a delay or a retry is due.
    async fn queued(&self) -> i64 {
        int(self.0.queued)
    }

    /// Running now.
    async fn running(&self) -> i64 {
        int(self.0.running)
    }

    /// succeeded / (succeeded + failed), from 0 to 1: cancelled runs are left out. Null
    /// when no run succeeded or failed in the window.
    async fn success_rate(&self) -> Option<f64> {
        self.0.outcomes.success_rate()
    }

    /// Finished runs with a duration (from start to end): all but those cancelled before
    /// they started.
    async fn timed(&self) -> i64 {
        int(self.0.durations.timed)
    }

    /// The mean duration of the timed runs, exact. Null when none.
    async fn mean_duration_ms(&self) -> Option<f64> {
        self.0.durations.mean_ms
    }

    /// The median duration of the timed runs, estimated from a histogram: off by less than
    /// half the true value, exact under 4 ms. Null when none.
    async fn p50_duration_ms(&self) -> Option<f64> {
        self.0.durations.p50_ms
    }

    /// The 95th percentile of the durations, estimated like `p50DurationMs`.
    async fn p95_duration_ms(&self) -> Option<f64> {
        self.0.durations.p95_ms
    }

    /// Every day of the window, oldest first, days without runs included.
    async fn per_day(&self) -> Vec<RunDayStats> {
        self.0.days.iter().map(RunDayStats::from).collect()
    }
}

/// How many runs have a status.
#[derive(SimpleObject)]
pub struct RunStatusCount {
    pub status: RunStatus,
    pub count: i64,
}

/// The runs that finished on one UTC day.
#[derive(SimpleObject)]
pub struct RunDayStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub finished: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// succeeded / (succeeded + failed); null when neither happened that day.
    pub success_rate: Option<f64>,
    pub p50_duration_ms: Option<f64>,
    pub p95_duration_ms: Option<f64>,
}

impl From<&DayStats> for RunDayStats {
    fn from(day: &DayStats) -> Self {
        let Outcomes {
            succeeded,
            failed,
            cancelled,
        } = day.outcomes;
        let Durations { p50_ms, p95_ms, .. } = day.durations;
        Self {
            day: day.day.format("%Y-%m-%d").to_string(),
            finished: int(day.outcomes.finished()),
            succeeded: int(succeeded),
            failed: int(failed),
            cancelled: int(cancelled),
            success_rate: day.outcomes.success_rate(),
            p50_duration_ms: p50_ms,
            p95_duration_ms: p95_ms,
        }
    }
}

/// The statistics of the scope's workspace's runs, or of one workflow's, since `since`
/// (default: 30 days ago). `BAD_USER_INPUT` for a `since` in the future or more than 400
/// days ago. The caller has checked `Action::ReadRuns`, and that `workflow` is the
/// scope's workspace's.
pub async fn run_stats(
    ctx: &Context<'_>,
    scope: &WorkspaceScope,
    workflow: Option<WorkflowId>,
    since: Option<DateTime<Utc>>,
) -> ApiResult<RunStatsObject> {
    let window = StatsWindow::new(since, Utc::now())?;
    let stats = app(ctx)?.store.run_stats(scope, workflow, &window).await?;
    Ok(RunStatsObject(stats))
}

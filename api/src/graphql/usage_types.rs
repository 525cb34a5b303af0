//! `Workspace.usage`: the workspace's usage against each of its quotas, and its runs'
//! statistics.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_domain::access::WorkspaceScope;
use aos_domain::quota::QuotaUsage;

use super::app;
use super::stats_types::{RunStatsObject, run_stats};
use crate::error::ApiResult;

/// One quota: how much of it the workspace uses, against what limit.
#[derive(SimpleObject)]
#[graphql(name = "QuotaUsage")]
pub struct QuotaUsageObject {
    /// The quota's name, as `QUOTA_EXCEEDED` errors give it in `extensions.quota`:
    /// activeWorkflows, runsPerMonth, retentionDays, connections, members,
    /// aiGenerationsPerDay, queuedRuns.
    pub quota: String,
    /// What the workspace holds or used this period; for retentionDays, the age in days
    /// of its oldest stored run.
    pub used: i64,
    /// Null when unlimited.
    pub limit: Option<i64>,
    /// When a per-period quota starts again from zero (UTC calendar month or day).
    pub resets_at: Option<DateTime<Utc>>,
}

impl From<QuotaUsage> for QuotaUsageObject {
    fn from(usage: QuotaUsage) -> Self {
        let number = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        Self {
            quota: usage.quota.name().to_owned(),
            used: number(usage.used),
            limit: usage.limit.map(number),
            resets_at: usage.resets_at,
        }
    }
}

pub struct WorkspaceUsageObject {
    pub scope: WorkspaceScope,
}

#[Object(name = "WorkspaceUsage")]
impl WorkspaceUsageObject {
    /// Every quota of the workspace, in a fixed order.
    async fn quotas(&self, ctx: &Context<'_>) -> ApiResult<Vec<QuotaUsageObject>> {
        let usage = app(ctx)?.store.quota_usage(&self.scope, Utc::now()).await?;
        Ok(usage.into_iter().map(Into::into).collect())
    }

    /// The workspace's runs since `since` (default: the last 30 days).
    async fn runs(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
    ) -> ApiResult<RunStatsObject> {
        run_stats(ctx, &self.scope, None, since).await
    }
}

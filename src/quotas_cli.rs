//! `automationos quotas`: per-workspace quotas and fair-share settings.
//!
//! Like `limits`, these are instance configuration: whoever can run this binary against
//! the database is the instance administrator, and no GraphQL caller can raise its own
//! workspace's quotas. Every node reads a workspace's quotas in the transaction that
//! checks them, so a change applies at once, everywhere.

use anyhow::{Context, bail};
use aos_domain::DomainError;
use aos_domain::ids::WorkspaceId;
use aos_domain::quota::{Quota, QuotaOverride, QuotaStore, Setting};

use crate::admin_store::{open, workspace_id};
use crate::cli::{QuotasArgs, QuotasCommand};

pub async fn run(args: QuotasArgs) -> anyhow::Result<()> {
    match args.command {
        QuotasCommand::Set {
            database,
            workspace,
            quotas,
            running_runs,
            scheduling_weight,
        } => {
            let workspace_id = workspace_id(&workspace)?;
            let settings = QuotaOverride {
                limits: quotas
                    .iter()
                    .map(|pair| parse_pair(pair))
                    .collect::<anyhow::Result<_>>()?,
                running_runs: positive("--running-runs", running_runs)?,
                scheduling_weight: positive("--scheduling-weight", scheduling_weight)?,
            };
            if settings.is_empty() {
                bail!(
                    "nothing to set: give --quota NAME=LIMIT, --running-runs or --scheduling-weight"
                );
            }
            let store = open(&database).await?;
            match store.set_quota_override(workspace_id, settings).await {
                Ok(merged) => {
                    println!("{}", describe(workspace_id, &merged));
                    Ok(())
                }
                Err(DomainError::NotFound(_)) => bail!("no workspace has the id {workspace}"),
                Err(error) => Err(error).context("setting the quotas"),
            }
        }
        QuotasCommand::Clear {
            database,
            workspace,
        } => {
            let workspace_id = workspace_id(&workspace)?;
            let store = open(&database).await?;
            if store.clear_quota_override(workspace_id).await? {
                println!("workspace {workspace_id}: back to the instance defaults");
            } else {
                println!("workspace {workspace_id} had no settings of its own");
            }
            Ok(())
        }
        QuotasCommand::Show(database) => {
            let store = open(&database).await?;
            let overrides = store.quota_overrides().await?;
            if overrides.is_empty() {
                println!("no workspace has settings of its own: the instance defaults hold");
            }
            for (workspace_id, settings) in overrides {
                println!("{}", describe(workspace_id, &settings));
            }
            Ok(())
        }
    }
}

fn parse_pair(pair: &str) -> anyhow::Result<(Quota, Setting)> {
    let Some((name, value)) = pair.split_once('=') else {
        bail!("expected QUOTA=LIMIT, got {pair:?}");
    };
    let quota: Quota = name
        .trim()
        .parse()
        .map_err(|error: DomainError| anyhow::anyhow!("{error}"))?;
    let setting: Setting = value
        .trim()
        .parse()
        .map_err(|error: DomainError| anyhow::anyhow!("{quota}: {error}"))?;
    Ok((quota, setting))
}

fn positive(flag: &str, value: Option<u32>) -> anyhow::Result<Option<u32>> {
    match value {
        Some(0) => bail!("{flag} must be at least 1"),
        other => Ok(other),
    }
}

fn describe(workspace_id: WorkspaceId, settings: &QuotaOverride) -> String {
    let mut parts: Vec<String> = settings
        .limits
        .iter()
        .map(|(quota, setting)| format!("{quota}={setting}"))
        .collect();
    if let Some(running) = settings.running_runs {
        parts.push(format!("runningRuns={running}"));
    }
    if let Some(weight) = settings.scheduling_weight {
        parts.push(format!("schedulingWeight={weight}"));
    }
    format!("workspace {workspace_id}: {}", parts.join(" "))
}

//! `automationos limits`: per-workspace request rate-limit overrides.
//!
//! Instance administrators are whoever can run this binary against the database: the
//! overrides are instance configuration, so no GraphQL caller (not even a workspace
//! owner) can raise its own workspace's limit. Servers read an override through a cache of
//! about 10 seconds, so a change applies within that time on every node, without a restart.

use anyhow::{Context, bail};
use aos_domain::DomainError;
use aos_domain::rate_limits::{RateLimitOverride, RateLimitStore, RateQuota};

use crate::admin_store::{open, workspace_id};
use crate::cli::{LimitsArgs, LimitsCommand};

pub async fn run(args: LimitsArgs) -> anyhow::Result<()> {
    match args.command {
        LimitsCommand::Set {
            database,
            workspace,
            rps,
            burst,
        } => {
            let workspace_id = workspace_id(&workspace)?;
            let Some(quota) = RateQuota::new(rps, burst) else {
                bail!("--rps and --burst must both be at least 1");
            };
            let store = open(&database).await?;
            let entry = RateLimitOverride {
                workspace_id,
                quota,
            };
            match store.set_rate_limit_override(&entry).await {
                Ok(()) => {
                    println!("workspace {workspace_id}: {rps} requests/s, burst {burst}");
                    Ok(())
                }
                Err(DomainError::NotFound(_)) => bail!("no workspace has the id {workspace}"),
                Err(error) => Err(error).context("setting the override"),
            }
        }
        LimitsCommand::Clear {
            database,
            workspace,
        } => {
            let workspace_id = workspace_id(&workspace)?;
            let store = open(&database).await?;
            if store.clear_rate_limit_override(workspace_id).await? {
                println!("workspace {workspace_id}: back to the default quota");
            } else {
                println!("workspace {workspace_id} had no override");
            }
            Ok(())
        }
        LimitsCommand::Show(database) => {
            let store = open(&database).await?;
            let overrides = store.rate_limit_overrides().await?;
            if overrides.is_empty() {
                println!("no overrides: every workspace has the default quota");
            }
            for entry in overrides {
                println!(
                    "{}  {} requests/s  burst {}",
                    entry.workspace_id,
                    entry.quota.per_second(),
                    entry.quota.burst()
                );
            }
            Ok(())
        }
    }
}

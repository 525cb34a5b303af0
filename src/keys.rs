//! `automationos keys`: master key status, rotation and retirement.
//!
//! A rotation never touches a connection's sealed credentials: it re-wraps the data keys
//! (a few bytes each) and re-seals the JWT signing keys under the new master key, row by
//! row with conditional updates, so servers and workers keep running throughout and a
//! second rotation racing this one is harmless.

use std::sync::Arc;

use anyhow::{Context, bail};
use aos_domain::ports::{DataKeyStore, Store};
use aos_persistence::SeaStore;
use aos_vault::service::{CredentialVault, MasterKeys};

use crate::cli::{KeyStoreArgs, KeysArgs, KeysCommand};
use crate::master_key;

/// Data keys re-wrapped per round trip.
const REWRAP_BATCH: u64 = 200;

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let (KeysCommand::Status(target) | KeysCommand::Rotate(target) | KeysCommand::Retire(target)) =
        &args.command
    else {
        println!("{}", master_key::generate_encoded());
        return Ok(());
    };
    let data_dir = &target.database.data_dir;
    if master_key::uses_key_file(&target.keys) && !master_key::key_file(data_dir).exists() {
        bail!(
            "no master key: set AOS_MASTER_KEY, or point --data-dir at the directory holding master.key"
        );
    }
    let db = aos_persistence::connect(&target.database.url())
        .await
        .context("connecting to the database")?;
    let store = Arc::new(SeaStore::new(db));
    match &args.command {
        KeysCommand::Status(_) => status(target, &store).await,
        KeysCommand::Rotate(_) => rotate(target, store).await,
        KeysCommand::Retire(_) => retire(target, &store).await,
        KeysCommand::Generate => Ok(()),
    }
}

async fn status(args: &KeyStoreArgs, store: &SeaStore) -> anyhow::Result<()> {
    let keys = master_key::load(&args.keys, &args.database.data_dir)?;
    let keyring = keys.keyring();
    let usage = store.master_key_usage().await?;
    for (index, id) in keyring.ids().iter().enumerate() {
        let role = if index == 0 { "current" } else { "previous" };
        println!("{id}  {role}  seals {}", sealed_by(&usage, id));
    }
    for (id, count) in &usage {
        match id {
            Some(id) if !keyring.knows(id) => {
                println!("{id}  UNKNOWN to this configuration  seals {count}");
            }
            None => println!("(unnamed, from before key ids)  seals {count}"),
            Some(_) => {}
        }
    }
    Ok(())
}

async fn rotate(args: &KeyStoreArgs, store: Arc<SeaStore>) -> anyhow::Result<()> {
    let data_dir = &args.database.data_dir;
    if master_key::uses_key_file(&args.keys) {
        let id = master_key::add_current_key(&master_key::key_file(data_dir))?;
        println!(
            "added master key {id} to {}",
            master_key::key_file(data_dir).display()
        );
    }
    let keys = Arc::new(master_key::load(&args.keys, data_dir)?);
    let keyring = keys.keyring();
    let current = keyring.current_id().to_owned();
    let vault = CredentialVault::new(Arc::clone(&keys), store.clone());
    let rewrapped = vault
        .rewrap_all(REWRAP_BATCH)
        .await
        .context("re-wrapping data keys")?;
    let store_port: Arc<dyn Store> = store.clone();
    let resealed = aos_api::auth::jwt::reseal_signing_keys(store_port.as_ref(), &keys)
        .await
        .context("re-sealing signing keys")?;
    println!(
        "re-wrapped {} data keys and re-sealed {resealed} signing keys under master key {current}",
        rewrapped.data_keys
    );
    report_retirable(args, &keys, store.as_ref()).await
}

async fn retire(args: &KeyStoreArgs, store: &SeaStore) -> anyhow::Result<()> {
    let usage = store.master_key_usage().await?;
    let still_used: Vec<String> = usage.iter().filter_map(|(id, _)| id.clone()).collect();
    if !master_key::uses_key_file(&args.keys) {
        let keys = master_key::load(&args.keys, &args.database.data_dir)?;
        return report_retirable(args, &keys, store).await;
    }
    if usage.iter().any(|(id, count)| id.is_none() && *count > 0) {
        bail!("some signing keys predate master key ids: run `automationos keys rotate` first");
    }
    let path = master_key::key_file(&args.database.data_dir);
    let dropped = master_key::drop_unused_keys(&path, &still_used)?;
    if dropped.is_empty() {
        println!("no previous master key could be retired");
    }
    for id in dropped {
        println!("retired master key {id}: it sealed nothing any more");
    }
    let keys = master_key::load(&args.keys, &args.database.data_dir)?;
    for id in keys.keyring().ids().iter().skip(1) {
        println!(
            "master key {id} still seals {}: run `automationos keys rotate` first",
            sealed_by(&usage, id)
        );
    }
    Ok(())
}

async fn report_retirable(
    args: &KeyStoreArgs,
    keys: &MasterKeys,
    store: &SeaStore,
) -> anyhow::Result<()> {
    let usage = store.master_key_usage().await?;
    let unnamed = usage.iter().any(|(id, count)| id.is_none() && *count > 0);
    for id in keys.keyring().ids().iter().skip(1) {
        let count = sealed_by(&usage, id);
        if count > 0 || unnamed {
            println!("previous master key {id} still seals {count}; keep it");
        } else if master_key::uses_key_file(&args.keys) {
            println!(
                "previous master key {id} seals nothing now: `automationos keys retire` removes it"
            );
        } else {
            println!(
                "previous master key {id} seals nothing now: remove it from AOS_MASTER_KEY_PREVIOUS"
            );
        }
    }
    Ok(())
}

fn sealed_by(usage: &[(Option<String>, u64)], id: &str) -> u64 {
    usage
        .iter()
        .filter(|(used, _)| used.as_deref() == Some(id))
        .map(|(_, count)| count)
        .sum()
}

//! The master keys that seal the server's secrets at rest: given in the environment, or
//! kept in `<data-dir>/master.key`, generated on first start, readable by the owner only.
//!
//! The key file holds one base64 key per line, the current key first and the keys it
//! replaced after it. `keys rotate` puts a new key first; `keys retire` drops the old ones
//! once nothing is sealed by them. Both write a new file and rename it into place, so a
//! process reading the file sees the old or the new one, never half of either.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aos_vault::service::MasterKeys;
use aos_vault::{Keyring, MasterKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::cli::KeyArgs;

const FILE_NAME: &str = "master.key";

type KeyBytes = Zeroizing<[u8; 32]>;

/// The keys `args` name, or else those of the key file, created if missing.
pub fn load(args: &KeyArgs, data_dir: &Path) -> anyhow::Result<MasterKeys> {
    if let Some(current) = &args.master_key {
        let current =
            decode(current).context("AOS_MASTER_KEY must be the base64 of 32 random bytes")?;
        let previous = args
            .master_key_previous
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(|key| {
                decode(key).context("AOS_MASTER_KEY_PREVIOUS must list base64 keys of 32 bytes")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok(MasterKeys::fixed(keyring(&current, &previous)));
    }
    let path = key_file(data_dir);
    if !path.exists() {
        create(&path, &[generate()])?;
        tracing::warn!(
            path = %path.display(),
            "generated a master key: back it up, and give every node of a cluster the same key via AOS_MASTER_KEY"
        );
    }
    let keyring = read_keyring(&path)?;
    Ok(MasterKeys::reloadable(
        keyring,
        Box::new(move || read_keyring(&path).map_err(|error| format!("{error:#}"))),
    ))
}

/// Whether the keys come from the key file (and rotation may write it).
pub fn uses_key_file(args: &KeyArgs) -> bool {
    args.master_key.is_none()
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Puts a fresh key first in the key file; the others stay, to open what they sealed.
pub fn add_current_key(path: &Path) -> anyhow::Result<String> {
    let mut keys = read_keys(path)?;
    let key = generate();
    let id = MasterKey::derived(&key).id().to_owned();
    keys.insert(0, key);
    replace(path, &keys)?;
    Ok(id)
}

/// Drops from the key file the previous keys that `still_used` does not name; returns
/// the ids dropped.
pub fn drop_unused_keys(path: &Path, still_used: &[String]) -> anyhow::Result<Vec<String>> {
    let keys = read_keys(path)?;
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (index, key) in keys.into_iter().enumerate() {
        let id = MasterKey::derived(&key).id().to_owned();
        if index == 0 || still_used.contains(&id) {
            kept.push(key);
        } else {
            dropped.push(id);
        }
    }
    if !dropped.is_empty() {
        replace(path, &kept)?;
    }
    Ok(dropped)
}

/// A fresh key, in the form `AOS_MASTER_KEY` takes.
pub fn generate_encoded() -> String {
    STANDARD.encode(*generate())
}

fn generate() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
    key
}

fn keyring(current: &KeyBytes, previous: &[KeyBytes]) -> Keyring {
    previous
        .iter()
        .fold(Keyring::new(MasterKey::derived(current)), |keyring, key| {
            keyring.with_previous(MasterKey::derived(key))
        })
}

fn read_keyring(path: &Path) -> anyhow::Result<Keyring> {
    let keys = read_keys(path)?;
    let Some((current, previous)) = keys.split_first() else {
        bail!("{} holds no key", path.display());
    };
    Ok(keyring(current, previous))
}

fn read_keys(path: &Path) -> anyhow::Result<Vec<KeyBytes>> {
    let text = Zeroizing::new(
        fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            decode(line).with_context(|| format!("{} holds an invalid key", path.display()))
        })
        .collect()
}

fn create(path: &Path, keys: &[KeyBytes]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(encode_all(keys).as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn replace(path: &Path, keys: &[KeyBytes]) -> anyhow::Result<()> {
    let staging = path.with_extension(format!("new-{}", std::process::id()));
    let _ = fs::remove_file(&staging);
    create(&staging, keys)?;
    fs::rename(&staging, path).with_context(|| format!("replacing {}", path.display()))
}

fn encode_all(keys: &[KeyBytes]) -> Zeroizing<String> {
    Zeroizing::new(
        keys.iter()
            .map(|key| STANDARD.encode(key.as_slice()) + "\n")
            .collect(),
    )
}

fn decode(encoded: &str) -> anyhow::Result<KeyBytes> {
    let bytes = Zeroizing::new(STANDARD.decode(encoded.trim())?);
    let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        bail!("expected 32 bytes, got {}", bytes.len());
    };
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("aos-key-{name}-{}", std::process::id()))
    }

    fn file_args() -> KeyArgs {
        KeyArgs {
            master_key: None,
            master_key_previous: None,
        }
    }

    #[test]
    fn a_generated_key_is_private_and_stable() -> anyhow::Result<()> {
        let dir = temp_dir("stable");
        let first = load(&file_args(), &dir)?.keyring().ids();
        let second = load(&file_args(), &dir)?.keyring().ids();
        assert_eq!(first, second);
        let mode = fs::metadata(key_file(&dir))?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn explicit_keys_must_be_32_bytes() {
        let args = |current: &str, previous: Option<&str>| KeyArgs {
            master_key: Some(current.to_owned()),
            master_key_previous: previous.map(str::to_owned),
        };
        let good = STANDARD.encode([1u8; 32]);
        let dir = Path::new("/nonexistent");
        assert!(load(&args("c2hvcnQ=", None), dir).is_err());
        assert!(load(&args(&good, Some("c2hvcnQ=")), dir).is_err());
        let keys = load(
            &args(&good, Some(&format!("{},", STANDARD.encode([2u8; 32])))),
            dir,
        );
        assert_eq!(keys.map(|keys| keys.keyring().ids().len()).ok(), Some(2));
    }

    #[test]
    fn rotation_puts_a_new_key_first_and_retiring_drops_only_unused_ones() -> anyhow::Result<()> {
        let dir = temp_dir("rotate");
        let keys = load(&file_args(), &dir)?;
        let original = keys.keyring().current_id().to_owned();
        let path = key_file(&dir);

        let added = add_current_key(&path)?;
        assert_eq!(keys.refresh().ids(), vec![added.clone(), original.clone()]);

        assert!(drop_unused_keys(&path, std::slice::from_ref(&original))?.is_empty());
        assert_eq!(drop_unused_keys(&path, &[])?, vec![original]);
        assert_eq!(keys.refresh().ids(), vec![added]);
        let mode = fs::metadata(&path)?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

//! The master key that seals the server's secrets at rest. Given explicitly, or generated
//! once into the data directory, readable by the owner only.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const FILE_NAME: &str = "master.key";

pub fn load(explicit: Option<&str>, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(encoded) = explicit {
        return decode(encoded).context("AOS_MASTER_KEY must be the base64 of 32 random bytes");
    }
    let path = data_dir.join(FILE_NAME);
    if path.exists() {
        let encoded =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return decode(encoded.trim())
            .with_context(|| format!("{} is not a valid master key", path.display()));
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(STANDARD.encode(key).as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "generated a master key: back it up, and give every node of a cluster the same key via AOS_MASTER_KEY"
    );
    Ok(key)
}

fn decode(encoded: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = STANDARD.decode(encoded.trim())?;
    let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        bail!("expected 32 bytes, got {}", bytes.len());
    };
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_and_stable() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("aos-key-{}", std::process::id()));
        let first = load(None, &dir)?;
        let second = load(None, &dir)?;
        assert_eq!(first, second);
        let mode = fs::metadata(dir.join(FILE_NAME))?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn explicit_keys_must_be_32_bytes() {
        assert!(load(Some("c2hvcnQ="), Path::new("/nonexistent")).is_err());
        assert!(load(Some(&STANDARD.encode([1u8; 32])), Path::new("/nonexistent")).is_ok());
    }
}

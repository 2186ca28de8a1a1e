//! The access keys of `--auth strict`: loaded from the state directory's keys file,
//! which is created (mode 0600) with one fresh key for the default account when missing.

use std::path::Path;

use anyhow::Context;

use crate::api::sigv4::{AccessKey, KeyFile};

/// Loads the strict-mode keys, creating the file with one fresh key if it is missing.
pub fn load_or_create(path: &Path) -> anyhow::Result<KeyFile> {
    let path = path.to_path_buf();
    if !path.exists() {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut pick = |n: usize, upper: bool| -> String {
            (&mut rng)
                .sample_iter(rand::distr::Alphanumeric)
                .map(char::from)
                .map(|c| if upper { c.to_ascii_uppercase() } else { c })
                .take(n)
                .collect()
        };
        let file = KeyFile {
            keys: vec![AccessKey {
                access_key: format!("AKIA{}", pick(16, true)),
                secret_key: pick(40, false),
                account: crate::model::DEFAULT_ACCOUNT.to_string(),
            }],
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("state directory {} is not usable", dir.display()))?;
        }
        let text = toml::to_string(&file).context("cannot encode the access keys")?;
        write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(file);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: KeyFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid keys file", path.display()))?;
    if file.keys.is_empty() {
        anyhow::bail!("{} holds no [[key]] entries", path.display());
    }
    for k in &file.keys {
        if k.account.len() != 12 || !k.account.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!(
                "{}: account {:?} is not a 12-digit account id",
                path.display(),
                k.account
            );
        }
        if k.access_key.is_empty() || k.secret_key.is_empty() {
            anyhow::bail!(
                "{}: every key needs access_key and secret_key",
                path.display()
            );
        }
    }
    Ok(file)
}

/// Writes a file readable only by its owner (it holds secret keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

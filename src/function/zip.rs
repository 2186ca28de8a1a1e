//! Just enough of the zip format to unpack a Lambda deployment package: the central
//! directory, stored and deflated entries. Paths that would leave the target folder
//! (absolute, `..`) are refused, and so is a package bigger than Lambda's unzipped
//! quota, checked before anything is written.

use std::io::Read;
use std::path::{Component, Path};

/// Lambda's quota for a function's unzipped code (250 MB).
pub const MAX_UNZIPPED: u64 = 262_144_000;

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("not a zip file")]
    NotZip,
    #[error("unsupported compression method {0}")]
    Method(u16),
    #[error("entry name `{0}` leaves the package")]
    Path(String),
    #[error("unzipped size must be smaller than {MAX_UNZIPPED} bytes")]
    TooBig,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Entry {
    name: String,
    method: u16,
    compressed: u64,
    size: u64,
    local: u64,
    mode: u32,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ZipError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ZipError::NotZip)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ZipError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ZipError::NotZip)
}

fn entries(zip: &[u8]) -> Result<Vec<Entry>, ZipError> {
    // The end-of-central-directory record is in the last 64 KiB + 22 bytes.
    let floor = zip.len().saturating_sub(65_557);
    let eocd = (floor..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| zip[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or(ZipError::NotZip)?;
    let count = usize::from(u16_at(zip, eocd + 10)?);
    let mut at = u32_at(zip, eocd + 16)? as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(zip, at)? != 0x0201_4b50 {
            return Err(ZipError::NotZip);
        }
        let method = u16_at(zip, at + 10)?;
        let compressed = u64::from(u32_at(zip, at + 20)?);
        let size = u64::from(u32_at(zip, at + 24)?);
        let name_len = usize::from(u16_at(zip, at + 28)?);
        let extra_len = usize::from(u16_at(zip, at + 30)?);
        let comment_len = usize::from(u16_at(zip, at + 32)?);
        let mode = u32_at(zip, at + 38)? >> 16;
        let local = u64::from(u32_at(zip, at + 42)?);
        let name = zip
            .get(at + 46..at + 46 + name_len)
            .ok_or(ZipError::NotZip)?;
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method,
            compressed,
            size,
            local,
            mode,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// Checks that `zip` is a package vpclab can unpack, without writing anything.
pub fn check(zip: &[u8]) -> Result<(), ZipError> {
    let list = entries(zip)?;
    let mut total = 0u64;
    for e in &list {
        safe_path(&e.name)?;
        if e.method != 0 && e.method != 8 {
            return Err(ZipError::Method(e.method));
        }
        total = total.saturating_add(e.size);
    }
    if total > MAX_UNZIPPED {
        return Err(ZipError::TooBig);
    }
    Ok(())
}

fn safe_path(name: &str) -> Result<&Path, ZipError> {
    let p = Path::new(name);
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(p)
    } else {
        Err(ZipError::Path(name.to_string()))
    }
}

/// Unpacks `zip` into `dir` (which must exist).
pub fn extract(zip: &[u8], dir: &Path) -> Result<(), ZipError> {
    check(zip)?;
    for e in entries(zip)? {
        let rel = safe_path(&e.name)?;
        let target = dir.join(rel);
        if e.name.ends_with('/') {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let at = usize::try_from(e.local).map_err(|_| ZipError::NotZip)?;
        if u32_at(zip, at)? != 0x0403_4b50 {
            return Err(ZipError::NotZip);
        }
        let start =
            at + 30 + usize::from(u16_at(zip, at + 26)?) + usize::from(u16_at(zip, at + 28)?);
        let len = usize::try_from(e.compressed).map_err(|_| ZipError::NotZip)?;
        let data = zip.get(start..start + len).ok_or(ZipError::NotZip)?;
        let bytes = match e.method {
            0 => data.to_vec(),
            _ => {
                let mut out = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
                flate2::read::DeflateDecoder::new(data)
                    .take(e.size + 1)
                    .read_to_end(&mut out)?;
                out
            }
        };
        std::fs::write(&target, bytes)?;
        if e.mode & 0o111 != 0 {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip made by Python's zipfile (one deflated entry `a/b.txt` = "hello hello hello").
    fn sample() -> Vec<u8> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import io,zipfile,sys\nb=io.BytesIO()\nz=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED)\nz.writestr('a/b.txt','hello hello hello')\nz.writestr('c.txt','x')\nz.close()\nsys.stdout.buffer.write(b.getvalue())",
            ])
            .output()
            .expect("python3 runs");
        out.stdout
    }

    #[test]
    fn unpacks_what_python_zips_and_refuses_what_is_not_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        extract(&sample(), dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/b.txt")).unwrap(),
            "hello hello hello"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c.txt")).unwrap(),
            "x"
        );
        assert!(matches!(check(b"not a zip at all"), Err(ZipError::NotZip)));
        assert!(matches!(safe_path("../etc/passwd"), Err(ZipError::Path(_))));
        assert!(matches!(safe_path("/etc/passwd"), Err(ZipError::Path(_))));
    }
}

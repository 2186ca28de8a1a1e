//! Object bytes on disk: one file per object version or multipart part, named by a
//! random id, under the state directory's `objects/` folder.
//!
//! A blob is written to a temporary name, then renamed into place, all before the
//! metadata commit that names it: after the process dies (even SIGKILL mid-write) every
//! row names a complete file, because a rename is atomic and written pages belong to
//! the kernel, not the process. Files no row names (a death between the rename and the
//! commit, or between a commit and the deletes it freed) are swept at start-up
//! ([`BlobStore::sweep`]).
//!
//! Blobs are not fsynced: the guarantee is the store's own (`model::store` runs SQLite
//! with `synchronous=NORMAL`), surviving the process being killed, not an OS crash or a
//! power cut. An fsync per object cost 5–50 ms on the development machine and made a
//! 1 MiB PutObject slower than moto's in-memory one; after an OS crash the last objects,
//! like the last transactions, may be lost, and a GET of an object whose file did not
//! reach the disk answers `InternalError`.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::Digest as _;

use crate::model::{ApiError, ApiResult};

#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
}

/// What writing a blob produced: its name and the digests S3 reports.
pub struct Written {
    pub name: String,
    pub size: u64,
    pub md5: [u8; 16],
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "object store I/O failed");
    ApiError::new(
        "InternalError",
        "We encountered an internal error. Please try again.",
    )
    .with_status(500)
}

impl BlobStore {
    /// Opens (creating) the folder.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<BlobStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(BlobStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn fresh_name() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// Writes `chunks` (concatenated) as a new blob: temporary file, then rename.
    pub fn write<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> ApiResult<Written> {
        let name = Self::fresh_name();
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            for c in chunks {
                md5.update(c);
                size += c.len() as u64;
                f.write_all(c)?;
            }
            std::fs::rename(&tmp, self.path(&name))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(e));
        }
        Ok(Written {
            name,
            size,
            md5: md5.finalize().into(),
        })
    }

    /// Writes the concatenation of existing blobs (CompleteMultipartUpload) as a new one.
    pub fn concat(&self, parts: &[String]) -> ApiResult<Written> {
        let name = Self::fresh_name();
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        let result = (|| -> std::io::Result<()> {
            let mut out = std::fs::File::create(&tmp)?;
            for p in parts {
                let bytes = std::fs::read(self.path(p))?;
                md5.update(&bytes);
                size += bytes.len() as u64;
                out.write_all(&bytes)?;
            }
            std::fs::rename(&tmp, self.path(&name))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(e));
        }
        Ok(Written {
            name,
            size,
            md5: md5.finalize().into(),
        })
    }

    /// Reads a blob (or the byte range `start..end` of it).
    pub async fn read(&self, name: &str, range: Option<(u64, u64)>) -> ApiResult<Vec<u8>> {
        let path = self.path(name);
        match range {
            None => tokio::fs::read(&path).await.map_err(io_error),
            Some((start, end)) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(&path).await.map_err(io_error)?;
                f.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(io_error)?;
                let mut buf = vec![0; usize::try_from(end - start).unwrap_or(0)];
                f.read_exact(&mut buf).await.map_err(io_error)?;
                Ok(buf)
            }
        }
    }

    /// Deletes blobs no row names any more (after the commit that freed them).
    pub fn delete(&self, names: &[String]) {
        for n in names {
            if let Err(e) = std::fs::remove_file(self.path(n))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(blob = %n, error = %e, "could not delete a freed blob");
            }
        }
    }

    /// Deletes every file not in `live` (temporaries and orphans). Returns how many.
    pub fn sweep(&self, live: &HashSet<String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }
}

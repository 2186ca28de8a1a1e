//! Object bytes on disk: one file per object version or multipart part, named by a
//! random id, under the state directory's `objects/` folder.
//!
//! A blob is written whole under its own name before the metadata commit that names
//! it, so after the process dies (even SIGKILL mid-write) every row names a complete
//! file: written pages belong to the kernel, not the process, and no row names a file
//! before it is complete. Files no row names (an upload cut short, a refused one whose
//! file could not be removed, a death between a write and its commit or between a
//! commit and the deletes it freed, the empty files kept ready for the next uploads)
//! are swept at start-up ([`BlobStore::sweep`]). Until 2026-12-02 blobs were written to
//! a temporary name and renamed; the rename added nothing to that guarantee (the row is
//! what makes a blob exist), and it needed the directory's lock, which file creation
//! holds for a tenth to a half of a millisecond on ext4 (see [`BlobStore::stage`]).
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

use super::checksum::{Algorithm, Running};
use super::etag_md5::Md5;
use crate::model::{ApiError, ApiResult};
use sha2::Digest as _;

#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    /// Empty files created ahead of the next uploads (see [`BlobStore::stage`]).
    spare: SpareSlot,
}

/// An empty blob file waiting for an upload: its name, path and open handle.
#[derive(Debug)]
struct Spare {
    name: String,
    path: PathBuf,
    file: std::fs::File,
}

impl Spare {
    fn create(dir: &Path) -> std::io::Result<Spare> {
        let (name, path, file) = BlobStore::create(dir)?;
        Ok(Spare { name, path, file })
    }
}

/// What writing a blob produced: its name and the digests S3 reports.
pub struct Written {
    pub name: String,
    pub size: u64,
    pub md5: [u8; 16],
    /// The additional checksum computed while writing, when one was asked for.
    pub checksum: Option<Vec<u8>>,
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
        Ok(BlobStore {
            dir,
            spare: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new, empty blob file under a fresh random name: (name, path, handle).
    fn create(dir: &Path) -> std::io::Result<(String, PathBuf, std::fs::File)> {
        let name = format!("{:032x}", rand::random::<u128>());
        let path = dir.join(&name);
        let file = std::fs::File::create_new(&path)?;
        Ok((name, path, file))
    }

    /// Writes `chunks` (concatenated) as a new blob.
    pub fn write<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> ApiResult<Written> {
        let (name, path, mut f) = Self::create(&self.dir).map_err(io_error)?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let result = (|| -> std::io::Result<()> {
            for c in chunks {
                md5.update(c);
                size += c.len() as u64;
                f.write_all(c)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(io_error(e));
        }
        Ok(Written {
            name,
            size,
            md5: md5.finalize(),
            checksum: None,
        })
    }

    /// Starts a blob whose bytes arrive in pieces (a request body as the network
    /// delivers it): see [`Staged`] and [`StageOptions`].
    ///
    /// The file is usually one created ahead, on a blocking-pool thread, while earlier
    /// uploads were finishing: creating a file costs ext4 an inode allocation, which
    /// measured 0.1 to 0.5 ms on the development machine (its search skips the inodes
    /// freed in the last minutes, reading each one's table entry, so the cost grows
    /// with recent deletions anywhere in the directory's block group), and every
    /// microsecond spent before the body is read delays the MD5 of the whole upload.
    /// Spares left over when the daemon stops are files no row names, removed by the
    /// next start's [`BlobStore::sweep`].
    ///
    /// Replacements are made once an upload is done with the directory
    /// ([`Received::persist`], or the drop of a refused upload), not while its body
    /// arrives, when they would take a core from its MD5. Up to [`SPARES`] are kept, so
    /// the next upload finds one even when it comes before the last replacement is
    /// made.
    pub fn stage(&self, opts: StageOptions) -> ApiResult<Staged> {
        let spare = self.spare.ready().pop();
        let Spare { name, path, file } = match spare {
            Some(s) => s,
            None => Spare::create(&self.dir).map_err(io_error)?,
        };
        let rt = tokio::runtime::Handle::try_current().ok();
        let md5 = match &rt {
            Some(rt) if opts.md5_beside => Md5Feed::beside(rt),
            _ => Md5Feed::Here(Md5::new()),
        };
        Ok(Staged {
            name,
            path,
            file: Some(std::io::BufWriter::with_capacity(STAGE_BUFFER, file)),
            refill: rt.map(|rt| (rt, self.spare.clone(), self.dir.clone())),
            persisted: std::sync::atomic::AtomicBool::new(false),
            md5,
            sha256: opts.sha256.then(sha2::Sha256::new),
            checksum: opts.checksum.and_then(running),
            md5_is_checksum: opts.checksum == Some(Algorithm::Md5),
            size: 0,
        })
    }

    /// Opens a blob for streaming `start..end` of it (the whole blob: `0..size`) to a
    /// response, [`READ_CHUNK`] bytes at a time. The file is opened now, so a missing
    /// blob is an error before any status line is sent, and a blob deleted while it is
    /// being sent is still read whole (an unlinked file lives while it is open).
    pub fn open_range(&self, name: &str, start: u64, end: u64) -> ApiResult<BlobReader> {
        use std::io::Seek;
        let mut file = std::fs::File::open(self.path(name)).map_err(io_error)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .map_err(io_error)?;
        }
        Ok(BlobReader {
            file,
            remaining: end.saturating_sub(start),
        })
    }

    /// Writes the concatenation of existing blobs (CompleteMultipartUpload) as a new one,
    /// computing `checksum` over the whole of it when asked (a `FULL_OBJECT` checksum).
    pub fn concat(&self, parts: &[String], checksum: Option<Algorithm>) -> ApiResult<Written> {
        let (name, path, mut out) = Self::create(&self.dir).map_err(io_error)?;
        let mut md5 = Md5::new();
        let mut running = checksum.and_then(running);
        let mut size = 0u64;
        let result = (|| -> std::io::Result<()> {
            for p in parts {
                let bytes = std::fs::read(self.path(p))?;
                md5.update(&bytes);
                if let Some(r) = &mut running {
                    r.update(&bytes);
                }
                size += bytes.len() as u64;
                out.write_all(&bytes)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(io_error(e));
        }
        let md5 = md5.finalize();
        Ok(Written {
            name,
            size,
            md5,
            checksum: match running {
                Some(r) => Some(r.finish()),
                None => checksum.map(|_| md5.to_vec()),
            },
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

    /// A new blob with the bytes of `name` (a replica's): a hard link to the same file,
    /// which costs no copy and leaves each name deletable on its own (blobs are never
    /// written after their row names them), or a copy where the file system refuses
    /// hard links. Like any new blob it is an orphan until a commit names it.
    pub fn link(&self, name: &str) -> ApiResult<String> {
        let new = format!("{:032x}", rand::random::<u128>());
        let (from, to) = (self.path(name), self.path(&new));
        if std::fs::hard_link(&from, &to).is_err()
            && let Err(e) = std::fs::copy(&from, &to)
        {
            let _ = std::fs::remove_file(&to);
            return Err(io_error(e));
        }
        Ok(new)
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

/// The running checksum for `algorithm`, or `None` for MD5: an MD5 checksum
/// (`x-amz-checksum-md5`) is the MD5 every blob computes for its ETag, so it is taken
/// from there instead of being hashed a second time.
fn running(algorithm: Algorithm) -> Option<Running> {
    (algorithm != Algorithm::Md5).then(|| Running::new(algorithm))
}

/// Buffer between the network's pieces of a body and the temporary file: the first
/// pieces of a connection are a few KiB (hyper's reads start small and grow), and one
/// `write` per piece would cost a system call each. Pieces at least this long go to the
/// file directly (`BufWriter` skips its buffer for them), which saves copying most of
/// a large upload once more in memory.
const STAGE_BUFFER: usize = 64 * 1024;

/// Bytes read from a blob per piece of a response body. Large enough that a 1 MiB
/// object is one read and one piece; bounded so a large object is never held whole.
pub const READ_CHUNK: usize = 1024 * 1024;

/// What a [`Staged`] blob computes besides MD5 (always: the ETag).
#[derive(Clone, Copy, Debug, Default)]
pub struct StageOptions {
    /// The body's SHA-256, for a SigV4 signature that covers the payload.
    pub sha256: bool,
    /// The additional checksum the request claims (`x-amz-checksum-*`).
    pub checksum: Option<Algorithm>,
    /// Hash MD5 on a thread of the blocking pool, beside the thread that receives and
    /// writes the body (see [`MD5_BESIDE_MIN`]). Without a tokio runtime MD5 is hashed
    /// in place whatever this says.
    pub md5_beside: bool,
}

/// Bodies at least this long (by their Content-Length) have their MD5 computed beside
/// the receiving thread. MD5 cannot be split (each 64-byte block needs the state the
/// previous one left), and at about 1.2 ms of one core per MiB it is the longest part of
/// an upload; on its own thread it overlaps the socket reads and the file writes
/// instead of adding to them. (Writing the file on a third thread as well was tried,
/// 2026-12-02: no faster on two cores, the extra wake-ups costing what it overlapped.)
/// Below this, handing pieces to another thread costs more (a wake-up, on a loaded
/// machine a wait for a core) than hashing them here.
pub const MD5_BESIDE_MIN: u64 = 256 * 1024;

/// Pieces queued for the MD5 thread before the receiving side waits for it: bounds the
/// memory an upload holds (hyper's pieces are at most a few hundred KiB) when the hash
/// falls behind the network.
const MD5_QUEUE: usize = 32;

/// Where an upload's MD5 is computed.
enum Md5Feed {
    Here(Md5),
    /// On a blocking-pool thread fed the body's pieces in order (cheap `Bytes` clones of
    /// the ones being written); the digest comes back through `done`.
    Beside {
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
        done: tokio::task::JoinHandle<[u8; 16]>,
    },
}

impl Md5Feed {
    fn beside(rt: &tokio::runtime::Handle) -> Md5Feed {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(MD5_QUEUE);
        let done = rt.spawn_blocking(move || {
            let mut h = Md5::new();
            while let Some(piece) = rx.blocking_recv() {
                h.update(&piece);
            }
            h.finalize()
        });
        Md5Feed::Beside { tx, done }
    }
}

/// A blob being written while its bytes arrive: each piece goes through MD5 (the ETag),
/// SHA-256 when asked (SigV4's payload hash), the claimed `x-amz-checksum-*` when there
/// is one (an `x-amz-checksum-md5` being the ETag's MD5 itself), and into the blob's file, in one pass, so an upload is never gathered in
/// memory and never read twice. MD5 may run on a thread of its own (see
/// [`StageOptions::md5_beside`]); [`Staged::finish`] waits for it, so the digests are
/// all known before anything can be checked or committed. No row names the file until
/// [`Received::persist`] has handed it to a commit; dropping a `Staged` that was not
/// persisted removes the file, so an upload refused after its body arrived (bad
/// signature, wrong Content-MD5 or checksum, no such bucket) leaves nothing behind.
pub struct Staged {
    name: String,
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    md5: Md5Feed,
    sha256: Option<sha2::Sha256>,
    checksum: Option<Running>,
    /// The claimed checksum is MD5: the ETag's digest is reported as it (see [`running`]).
    md5_is_checksum: bool,
    size: u64,
    /// Where to make the store's next spare files, and the runtime whose blocking pool
    /// makes them.
    refill: Option<(tokio::runtime::Handle, SpareSlot, PathBuf)>,
    /// Set once the file has its final name: nothing is left to remove on drop.
    persisted: std::sync::atomic::AtomicBool,
}

type SpareSlot = std::sync::Arc<Spares>;

/// The files kept ready, and whether a refill is making more (one at a time, so the
/// folder never holds more than [`SPARES`] of them).
#[derive(Debug, Default)]
struct Spares {
    ready: std::sync::Mutex<Vec<Spare>>,
    refilling: std::sync::atomic::AtomicBool,
}

impl Spares {
    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Spare>> {
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many spare temporary files the store keeps ready (see [`BlobStore::stage`]).
const SPARES: usize = 2;

/// Tops the spare files up to [`SPARES`] on a blocking-pool thread.
fn refill(rt: &tokio::runtime::Handle, slot: SpareSlot, dir: PathBuf) {
    use std::sync::atomic::Ordering;
    if slot.ready().len() >= SPARES || slot.refilling.swap(true, Ordering::AcqRel) {
        return;
    }
    rt.spawn_blocking(move || {
        while slot.ready().len() < SPARES {
            let Ok(s) = Spare::create(&dir) else { break };
            slot.ready().push(s);
        }
        slot.refilling.store(false, Ordering::Release);
    });
}

/// A staged blob whose bytes have all arrived.
pub struct Received {
    staged: Staged,
    pub md5: [u8; 16],
    /// Hex SHA-256 of the body, when [`StageOptions::sha256`] asked for it.
    pub sha256_hex: Option<String>,
    /// The claimed checksum's algorithm computed over the body (see
    /// [`super::checksum::Running::finish`]), when [`StageOptions::checksum`] named one.
    pub checksum: Option<Vec<u8>>,
}

impl Staged {
    /// Appends a piece of the body. With MD5 beside, the piece is queued for it first
    /// (waiting when the queue is full), so the hash runs while this thread hashes
    /// the rest and writes the piece.
    pub async fn push(&mut self, piece: bytes::Bytes) -> ApiResult<()> {
        match &mut self.md5 {
            Md5Feed::Here(h) => h.update(&piece),
            Md5Feed::Beside { tx, .. } => tx
                .send(piece.clone())
                .await
                .map_err(|_| io_error(std::io::Error::other("the MD5 thread stopped")))?,
        }
        if let Some(h) = &mut self.sha256 {
            h.update(&piece);
        }
        if let Some(c) = &mut self.checksum {
            c.update(&piece);
        }
        self.size += piece.len() as u64;
        match &mut self.file {
            Some(f) => f.write_all(&piece).map_err(io_error),
            None => Err(io_error(std::io::Error::other("blob already finished"))),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The body is complete: flushes and closes the file, finishes the digests (waiting
    /// for the MD5 thread, if any, to hash what it was given).
    pub async fn finish(mut self) -> ApiResult<Received> {
        if let Some(f) = self.file.take() {
            f.into_inner().map_err(|e| io_error(e.into_error()))?;
        }
        let md5 = match std::mem::replace(&mut self.md5, Md5Feed::Here(Md5::new())) {
            Md5Feed::Here(h) => h.finalize(),
            Md5Feed::Beside { tx, done } => {
                // Closing the queue ends the thread's loop once it has drained it.
                drop(tx);
                done.await
                    .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
            }
        };
        let sha256_hex = self.sha256.take().map(|h| hex::encode(h.finalize()));
        let checksum = match self.checksum.take() {
            Some(r) => Some(r.finish()),
            None => self.md5_is_checksum.then(|| md5.to_vec()),
        };
        Ok(Received {
            staged: self,
            md5,
            sha256_hex,
            checksum,
        })
    }
}

impl Received {
    pub fn size(&self) -> u64 {
        self.staged.size
    }

    /// Hands the blob to the metadata commit that will name it: from now on its file is
    /// kept when this is dropped (a commit that fails leaves it to the next start's
    /// sweep). Called once; a second call fails.
    pub fn persist(&self) -> ApiResult<Written> {
        use std::sync::atomic::Ordering;
        if self.staged.persisted.swap(true, Ordering::Relaxed) {
            return Err(io_error(std::io::Error::other("blob already persisted")));
        }
        if let Some((rt, slot, dir)) = &self.staged.refill {
            refill(rt, slot.clone(), dir.clone());
        }
        Ok(Written {
            name: self.staged.name.clone(),
            size: self.staged.size,
            md5: self.md5,
            checksum: self.checksum.clone(),
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        drop(self.file.take());
        if self.persisted.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some((rt, slot, dir)) = self.refill.take() {
            refill(&rt, slot, dir);
        }
    }
}

/// A blob range being sent (see [`BlobStore::open_range`]).
pub struct BlobReader {
    file: std::fs::File,
    remaining: u64,
}

impl BlobReader {
    /// The bytes still to send.
    pub fn size(&self) -> u64 {
        self.remaining
    }

    /// The response body: pieces of at most [`READ_CHUNK`] bytes, read when hyper asks
    /// for the next one. The reads are plain blocking reads on the runtime's thread, as
    /// the uploads' writes are: objects live in the page cache, a piece takes a fraction
    /// of a millisecond, and handing each one to the blocking pool would add a thread
    /// wake-up per piece, which on a loaded machine waits for a CPU. A blob shorter than its row says (it cannot
    /// be, short of someone editing `objects/`) ends the body with an error, which makes
    /// hyper close the connection instead of sending a short response as a whole one.
    pub fn into_body(self) -> axum::body::Body {
        use std::io::Read;
        let stream = futures_util::stream::unfold(self, |mut r| async move {
            if r.remaining == 0 {
                return None;
            }
            let want = usize::try_from(r.remaining).map_or(READ_CHUNK, |n| n.min(READ_CHUNK));
            let mut buf = vec![0u8; want];
            let result = r.file.read_exact(&mut buf).map(|()| {
                r.remaining -= want as u64;
                bytes::Bytes::from(buf)
            });
            if result.is_err() {
                r.remaining = 0;
            }
            Some((result, r))
        });
        axum::body::Body::from_stream(stream)
    }
}

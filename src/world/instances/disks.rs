//! Instance disks on disk: one SQLite database per instance,
//! `<state dir>/instances/<account>/<instance id>.db`.
//!
//! The filesystem is stored as rows, one per file or directory (`files`), and the file
//! data in [`CHUNK`]-sized pieces (`chunks`), so a save writes only what changed since
//! the last one: the filesystem's journal ([`Vfs::take_changes`]) is replayed into one
//! transaction, taken in batches of [`BATCH_BYTES`] so the instance's disk lock is held
//! only while a batch is copied out. The small rest of the disk (packages, enabled
//! services, first-boot flag, host key, console) is one JSON value in `info`.
//!
//! State directories written before this store kept each disk as one JSON document
//! (`<instance id>.json`); [`load_legacy`] reads it, the first save writes it here, and
//! the JSON file is then removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::instance::vfs::{CHUNK, Change, Node, NodeKind, Vfs};
use crate::instance::{HostKey, InstanceDisk, InstanceState};

/// File data copied out of the filesystem per batch while saving.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches per save at most; whatever a learner writes meanwhile waits for the next.
const MAX_BATCHES: usize = 1024;
/// Bumped when the schema changes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id    INTEGER PRIMARY KEY,
    path  TEXT NOT NULL UNIQUE,
    dir   INTEGER NOT NULL,
    mode  INTEGER NOT NULL,
    uid   INTEGER NOT NULL,
    gid   INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    size  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    file  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    idx   INTEGER NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (file, idx)
) WITHOUT ROWID;
";

/// Everything on the disk but the filesystem.
#[derive(Serialize, Deserialize)]
struct Info {
    packages: BTreeSet<String>,
    enabled: BTreeSet<String>,
    first_boot_done: bool,
    host_key: HostKey,
    console: String,
    #[serde(default)]
    mounts: std::collections::BTreeMap<String, crate::instance::volumes::Mount>,
}

impl Info {
    fn of(disk: &InstanceDisk) -> Info {
        Info {
            packages: disk.packages.clone(),
            enabled: disk.enabled.clone(),
            first_boot_done: disk.first_boot_done,
            host_key: disk.host_key.clone(),
            console: disk.console.clone(),
            mounts: disk.mounts.clone(),
        }
    }
}

/// Why a disk could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("unreadable disk description: {0}")]
    Info(#[from] serde_json::Error),
    #[error("the disk was written by a newer vpclab (schema {0})")]
    Newer(i64),
}

/// One instance's database.
pub(crate) struct DiskStore {
    conn: Connection,
}

/// The database file of an instance, and the legacy JSON one.
pub(crate) fn paths(dir: &Path, instance_id: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{instance_id}.db")),
        dir.join(format!("{instance_id}.json")),
    )
}

/// Removes an instance's stored disk (terminated instances), legacy file included.
pub(crate) fn remove(dir: &Path, instance_id: &str) {
    let (db, json) = paths(dir, instance_id);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let _ = std::fs::remove_file(json);
}

impl DiskStore {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<DiskStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer(version));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(DiskStore { conn })
    }

    /// The stored disk, or `None` when nothing was saved yet.
    pub(crate) fn load(&self) -> Result<Option<InstanceDisk>, StoreError> {
        let info: Option<String> = self
            .conn
            .query_row("SELECT value FROM info WHERE key = 'disk'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(info) = info else {
            return Ok(None);
        };
        let info: Info = serde_json::from_str(&info)?;
        let mut rows = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id, path, dir, mode, uid, gid, mtime, size FROM files")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                rows.push((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, u64>(7)?,
                ));
            }
        }
        let mut chunks = self
            .conn
            .prepare("SELECT idx, data FROM chunks WHERE file = ?1 ORDER BY idx")?;
        let mut nodes = BTreeMap::new();
        for (id, path, dir, mode, uid, gid, mtime, size) in rows {
            let kind = if dir {
                NodeKind::Dir
            } else {
                // Memory follows the pieces actually stored, never the size column.
                let mut data: Vec<u8> = Vec::new();
                let mut q = chunks.query([id])?;
                while let Some(r) = q.next()? {
                    let idx: u64 = r.get(0)?;
                    let mut bytes: Vec<u8> = r.get(1)?;
                    bytes.truncate(CHUNK);
                    let Ok(start) = usize::try_from(idx.saturating_mul(CHUNK as u64)) else {
                        continue;
                    };
                    if start >= usize::try_from(size).unwrap_or(usize::MAX) {
                        continue;
                    }
                    if data.len() < start {
                        data.resize(start, 0);
                    }
                    let end = start + bytes.len();
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[start..end].copy_from_slice(&bytes);
                }
                data.truncate(usize::try_from(size).unwrap_or(usize::MAX));
                data.shrink_to_fit();
                NodeKind::File(data)
            };
            nodes.insert(
                path,
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                },
            );
        }
        let mut fs = Vfs::from_nodes(nodes);
        fs.mark_saved();
        Ok(Some(InstanceDisk {
            fs,
            packages: info.packages,
            enabled: info.enabled,
            first_boot_done: info.first_boot_done,
            host_key: info.host_key,
            console: info.console,
            mounts: info.mounts,
        }))
    }

    /// Writes what changed on `state`'s disk since the last save, in one transaction.
    /// On error the caller marks the disk unsaved (the changes taken are lost).
    pub(crate) fn save(&mut self, state: &InstanceState) -> Result<(), StoreError> {
        let info = serde_json::to_string(&state.with_disk(Info::of))?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO info (key, value) VALUES ('disk', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [info],
        )?;
        for _ in 0..MAX_BATCHES {
            let batch = state.take_disk_changes(BATCH_BYTES);
            if batch.is_empty() {
                break;
            }
            for change in &batch {
                apply(&tx, change)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The `files` rows at `path` and under it, as a WHERE clause on `?1`.
const SUBTREE: &str = "(path = ?1 OR (path >= ?1 || '/' AND path < ?1 || '0'))";

fn apply(tx: &rusqlite::Transaction<'_>, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::Reset => {
            tx.execute("DELETE FROM chunks", [])?;
            tx.execute("DELETE FROM files", [])?;
        }
        Change::Remove { path } => {
            tx.prepare_cached(&format!(
                "DELETE FROM chunks WHERE file IN (SELECT id FROM files WHERE {SUBTREE})"
            ))?
            .execute([path])?;
            tx.prepare_cached(&format!("DELETE FROM files WHERE {SUBTREE}"))?
                .execute([path])?;
        }
        Change::Rename { from, to } => {
            // A file at `to` is replaced (the filesystem refused other cases).
            tx.prepare_cached(
                "DELETE FROM chunks WHERE file IN (SELECT id FROM files WHERE path = ?1)",
            )?
            .execute([to])?;
            tx.prepare_cached("DELETE FROM files WHERE path = ?1")?
                .execute([to])?;
            tx.prepare_cached(&format!(
                "UPDATE files SET path = ?2 || substr(path, length(?1) + 1) WHERE {SUBTREE}"
            ))?
            .execute([from, to])?;
        }
        Change::Node { path, meta } => {
            tx.prepare_cached(
                "INSERT INTO files (path, dir, mode, uid, gid, mtime, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(path) DO UPDATE SET dir = excluded.dir, mode = excluded.mode,
                     uid = excluded.uid, gid = excluded.gid, mtime = excluded.mtime,
                     size = excluded.size",
            )?
            .execute(params![
                path, meta.dir, meta.mode, meta.uid, meta.gid, meta.mtime, meta.size
            ])?;
            // Pieces past the end are gone (a truncated file, or a file that became a
            // directory).
            let pieces = meta.size.div_ceil(CHUNK as u64);
            tx.prepare_cached(
                "DELETE FROM chunks WHERE file = (SELECT id FROM files WHERE path = ?1)
                 AND idx >= ?2",
            )?
            .execute(params![path, pieces])?;
        }
        Change::ClearData { path } => {
            tx.prepare_cached(
                "DELETE FROM chunks WHERE file = (SELECT id FROM files WHERE path = ?1)",
            )?
            .execute([path])?;
        }
        Change::Data { path, index, bytes } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO chunks (file, idx, data)
                 SELECT id, ?2, ?3 FROM files WHERE path = ?1",
            )?
            .execute(params![path, index, bytes])?;
        }
    }
    Ok(())
}

/// Reads a disk saved by an older vpclab as one JSON document; `None` when there is
/// none or it is unreadable (then the instance starts from its image, as before).
pub(crate) fn load_legacy(path: &Path) -> Option<InstanceDisk> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "instance disk unreadable; starting from the image");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::instance::vfs::Cred;
    use crate::instance::{FakeNet, Image, InstanceProfile};

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    fn launch() -> Arc<InstanceState> {
        let p = InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        let net = FakeNet::new(p.private_ip, 24, &p.mac);
        InstanceState::launch(p, net)
    }

    fn count(store: &DiskStore, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_disk_round_trips_and_saves_only_what_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i-1.db");
        let state = launch();
        let mut store = DiskStore::open(&path).expect("open");
        state
            .lock_disk()
            .fs
            .write(
                "/home/ec2-user/big",
                &vec![3u8; 5 * CHUNK + 7],
                false,
                USER,
                0o600,
            )
            .expect("write");
        store.save(&state).expect("save");
        let files = count(&store, "files");
        let d = state.disk();
        let pieces: usize = walk(&d, "/")
            .iter()
            .map(|p| {
                d.fs.read(p, Cred::ROOT)
                    .map_or(0, |b| b.len().div_ceil(CHUNK))
            })
            .sum();
        assert_eq!(count(&store, "chunks") as usize, pieces);
        // One byte changed: one piece rewritten, nothing else.
        state
            .lock_disk()
            .fs
            .write_at("/home/ec2-user/big", Some(3), b"x", false, USER, 0o600)
            .expect("write");
        assert_eq!(
            state
                .take_disk_changes(usize::MAX)
                .iter()
                .filter(|c| matches!(c, Change::Data { .. }))
                .count(),
            1
        );
        state.mark_disk_unsaved();
        store.save(&state).expect("save");
        assert_eq!(count(&store, "files"), files);
        let back = DiskStore::open(&path)
            .expect("reopen")
            .load()
            .expect("load");
        let back = back.expect("saved");
        assert_eq!(back, state.disk());
        assert_eq!(back.host_key, state.host_key());
    }

    fn walk(d: &InstanceDisk, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (name, node) in d.fs.list(dir, Cred::ROOT).unwrap_or_default() {
            let p = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            if node.is_dir() {
                out.extend(walk(d, &p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn renames_and_removals_replay_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i-2.db");
        let state = launch();
        let mut store = DiskStore::open(&path).expect("open");
        store.save(&state).expect("first save");
        {
            let mut d = state.lock_disk();
            d.fs.mkdir("/home/ec2-user/a/b", USER, true, 0o755)
                .expect("mkdir");
            d.fs.write("/home/ec2-user/a/b/f", b"one", false, USER, 0o644)
                .expect("w");
        }
        store.save(&state).expect("save");
        {
            let mut d = state.lock_disk();
            d.fs.rename("/home/ec2-user/a", "/home/ec2-user/z", USER)
                .expect("mv");
            d.fs.write("/home/ec2-user/z/b/f", b"two", true, USER, 0o644)
                .expect("append");
            d.fs.write("/home/ec2-user/a-file", b"x", false, USER, 0o644)
                .expect("w");
            d.fs.remove("/home/ec2-user/a-file", USER, false)
                .expect("rm");
        }
        store.save(&state).expect("save");
        let back = store.load().expect("load").expect("saved");
        assert_eq!(back, state.disk());
        assert_eq!(
            back.fs.read("/home/ec2-user/z/b/f", USER),
            Ok(&b"onetwo"[..])
        );
        assert!(!back.fs.exists("/home/ec2-user/a"));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i-3.db");
        DiskStore::open(&path)
            .expect("open")
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        assert!(matches!(DiskStore::open(&path), Err(StoreError::Newer(_))));
    }
}

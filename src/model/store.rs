//! Durable state: one SQLite database (`state.db`) in the state directory, one row per
//! resource (`resources(account, kind, id, body)` with the resource as JSON), and an
//! exclusive lock file so a second daemon on the same directory fails at once. Beside
//! the world, `journal(stream, seq, body)` keeps append-only streams of opaque entries
//! for layers above the model (the lab engine's progress events), so they live and
//! survive with the world they describe.
//!
//! Every mutation's rows are written in one transaction that is committed before the
//! API answers. The database runs in WAL mode with `synchronous=NORMAL`: a committed
//! transaction survives the process being killed (SIGKILL), which is what "acknowledged
//! means durable" needs here; an OS crash or power cut may lose the last transactions.
//!
//! A mutation's transaction appends; it does not update `resources` in place. Its rows
//! go into `row_log` beside the commit record (both at the end of their tables, so a
//! commit writes a few pages instead of one random `resources` leaf per row), and
//! [`Store::apply_log`] moves logged rows into `resources` in batches: when the log
//! holds [`LOG_LIMIT`] commits, when the daemon's ticker finds it non-empty, when the
//! store opens (replaying a log a killed daemon left) and when it closes. Every reader
//! of rows (`load_all`, `rows_of`) lays the log over `resources`, so the two together
//! are always the state as of the last commit.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use rusqlite::{Connection, params};

use super::change::{Change, ChangeOp, Commit};
use super::table::RowWrite;
use super::{META_KIND, Timestamp, known_kind};

/// Errors of the store. Each message is complete on its own (logs print it with `%`),
/// so no variant also reports its cause as `source()`: `main` prints an error with its
/// chain (`{:#}`), and a cause both in the message and in the chain printed twice
/// (issue 10). `Corrupt` and `Serialize` keep their cause as `source()` (built
/// elsewhere, or by `?`) and so leave it out of their messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {dir} is not usable: {cause}")]
    Dir { dir: PathBuf, cause: std::io::Error },
    #[error("another vpclab daemon is already using the state directory {0}")]
    Locked(PathBuf),
    #[error("state database {path}: {cause}")]
    Sqlite {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("state database holds a damaged {kind} row {id}")]
    Corrupt {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
    #[error("could not serialise a resource")]
    Serialize(#[from] serde_json::Error),
}

/// Logged commits after which a commit applies the log itself (the daemon's ticker
/// usually applies it sooner); it bounds the replay at start-up and the overlay readers
/// build.
pub const LOG_LIMIT: usize = 512;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    dir: PathBuf,
    /// Commits whose rows are in `row_log` and not yet in `resources` (none, or unknown
    /// and never applied, for a read-only store).
    logged: usize,
    /// Whether this store may write (a read-only one never applies the log).
    writable: bool,
    /// Whether the WAL holds transactions written since the last checkpoint.
    unchecked: std::cell::Cell<bool>,
    /// Whether `commits` has the `changes` column (every database this version opened
    /// for writing does; an older one read beside an older daemon may not).
    folded: bool,
    /// Held for the daemon's lifetime; dropping it releases the lock.
    _lock: File,
}

/// One stored row.
pub struct Row {
    pub account: String,
    pub kind: String,
    pub id: String,
    pub body: String,
}

/// Where the store lives: the directory, the database in it and the lock file (the
/// daemon's `StateDir` decides the names).
#[derive(Clone, Debug)]
pub struct StorePaths {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub lock: PathBuf,
}

#[cfg(test)]
impl StorePaths {
    /// A store in a scratch directory (unit tests; the daemon's `StateDir` names the
    /// files of a real state directory).
    pub(crate) fn scratch(dir: &Path) -> StorePaths {
        StorePaths {
            dir: dir.to_path_buf(),
            db: dir.join("test.db"),
            lock: dir.join("test.lock"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the state directory and database, taking the lock.
    pub fn open(paths: &StorePaths) -> Result<Store, StoreError> {
        let dir = paths.dir.as_path();
        let dir_err = |cause| StoreError::Dir {
            dir: dir.to_path_buf(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&paths.lock)
            .map_err(dir_err)?;
        if lock.try_lock_exclusive().is_err() {
            return Err(StoreError::Locked(dir.to_path_buf()));
        }
        let path = paths.db.clone();
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        // A new database keys `resources` by its primary key alone (`WITHOUT ROWID`: one
        // b-tree written per row instead of a table and its index) and numbers commits
        // by rowid without `AUTOINCREMENT` (no `sqlite_sequence` page per commit;
        // commits are never deleted, so the next number is always one past the last).
        // A database created by an older build keeps its tables, which answer the same
        // statements.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // SQLite's default page cache is 2 MiB: past ~5,000 resources a commit re-read
        // about 19 evicted pages from the file before writing (issue 9). The cache grows
        // only as pages are read, up to 64 MiB.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(sql)?;
        // Checkpoints (copying the WAL into the database, with an fsync) run when the
        // row log is applied, between requests, instead of inside whichever commit
        // crosses SQLite's 1,000-page mark.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS resources (
                account TEXT NOT NULL,
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (account, kind, id)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS commits (
                seq INTEGER PRIMARY KEY,
                account TEXT NOT NULL,
                at INTEGER NOT NULL,
                action TEXT NOT NULL,
                changes TEXT
            );
            CREATE TABLE IF NOT EXISTS changes (
                seq INTEGER NOT NULL REFERENCES commits (seq),
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                op TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS changes_by_seq ON changes (seq);
            CREATE TABLE IF NOT EXISTS journal (
                stream TEXT NOT NULL,
                seq INTEGER NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (stream, seq)
            );
            CREATE TABLE IF NOT EXISTS row_log (
                seq INTEGER PRIMARY KEY,
                account TEXT NOT NULL,
                rows TEXT NOT NULL
            );",
        )
        .map_err(sql)?;
        // Databases from before the commit's changes were folded into its row gain the
        // column; their older commits keep their rows in `changes`.
        if !has_folded_changes(&conn).map_err(sql)? {
            conn.execute_batch("ALTER TABLE commits ADD COLUMN changes TEXT")
                .map_err(sql)?;
        }
        let mut store = Store {
            conn,
            path,
            dir: dir.to_path_buf(),
            logged: 0,
            writable: true,
            unchecked: std::cell::Cell::new(true),
            folded: true,
            _lock: lock,
        };
        // A daemon killed with commits still in the log: they are committed state, and
        // go where they belong before anything reads the world.
        store.apply_log()?;
        Ok(store)
    }

    /// Opens an existing database read-only, without the lock, beside a running daemon
    /// (SQLite's WAL lets it read while the daemon writes): what `vpclab status` uses.
    pub fn open_read_only(paths: &StorePaths) -> Result<Store, StoreError> {
        let sql = |cause| StoreError::Sqlite {
            path: paths.db.clone(),
            cause,
        };
        let conn = Connection::open_with_flags(
            &paths.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        // A reader beside a writer can still meet SQLITE_BUSY (the daemon resetting the
        // WAL after a checkpoint): wait for it as the daemon's own connection would.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        let lock = File::open(&paths.db).map_err(|cause| StoreError::Dir {
            dir: paths.dir.clone(),
            cause,
        })?;
        let folded = has_folded_changes(&conn).map_err(sql)?;
        Ok(Store {
            conn,
            path: paths.db.clone(),
            dir: paths.dir.clone(),
            logged: 0,
            writable: false,
            unchecked: std::cell::Cell::new(false),
            folded,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sql(&self, cause: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            cause,
        }
    }

    /// Every stored row, ordered by account, kind and id: `resources` with the rows of
    /// logged commits laid over it.
    pub fn load_all(&self) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT account, kind, id, body FROM resources ORDER BY account, kind, id")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    account: r.get(0)?,
                    kind: r.get(1)?,
                    id: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.sql(e))?);
        }
        let log = self.read_log()?;
        if log.is_empty() {
            return Ok(out);
        }
        let mut all: BTreeMap<(String, String, String), String> = out
            .into_iter()
            .map(|r| ((r.account, r.kind, r.id), r.body))
            .collect();
        for (_, account, rows) in log {
            for (kind, id, body) in rows {
                let key = (account.clone(), kind, id);
                match body {
                    Some(body) => all.insert(key, body),
                    None => all.remove(&key),
                };
            }
        }
        Ok(all
            .into_iter()
            .map(|((account, kind, id), body)| Row {
                account,
                kind,
                id,
                body,
            })
            .collect())
    }

    /// The logged commits not yet applied, oldest first: each one's sequence number,
    /// account and rows (`None` for a deleted row). Empty for a database from before the
    /// log.
    fn read_log(&self) -> Result<Vec<(i64, String, Vec<LoggedRow>)>, StoreError> {
        if !self.writable && !has_table(&self.conn, "row_log").map_err(|e| self.sql(e))? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, account, rows FROM row_log ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let entries = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        entries
            .into_iter()
            .map(|(seq, account, text)| {
                let rows = serde_json::from_str::<Vec<LoggedRow>>(&text).map_err(|source| {
                    StoreError::Corrupt {
                        kind: "row_log".into(),
                        id: seq.to_string(),
                        source,
                    }
                })?;
                Ok((seq, account, rows))
            })
            .collect()
    }

    /// Moves every logged commit's rows into `resources`, in commit order, and empties
    /// the log, in one transaction. Returns how many commits it applied. Batching is
    /// the point: rows of many commits that share a b-tree page cost that page once.
    pub fn apply_log(&mut self) -> Result<usize, StoreError> {
        if !self.writable {
            return Ok(0);
        }
        let log = self.read_log()?;
        if log.is_empty() {
            self.logged = 0;
            return Ok(0);
        }
        let path = self.path.clone();
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut up = tx.prepare_cached(UPSERT).map_err(sql)?;
            let mut del = tx.prepare_cached(DELETE).map_err(sql)?;
            for (_, account, rows) in &log {
                for (kind, id, body) in rows {
                    match body {
                        Some(body) => up.execute(params![account, kind, id, body]).map_err(sql)?,
                        None => del.execute(params![account, kind, id]).map_err(sql)?,
                    };
                }
            }
            let last = log.last().map(|(seq, _, _)| *seq).unwrap_or_default();
            tx.prepare_cached("DELETE FROM row_log WHERE seq <= ?1")
                .map_err(sql)?
                .execute(params![last])
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        self.logged = 0;
        self.unchecked.set(true);
        Ok(log.len())
    }

    /// Applies the log if it holds anything and checkpoints the WAL if anything was
    /// written since the last time (the daemon's ticker calls this between requests).
    pub fn settle(&mut self) {
        if !self.writable {
            return;
        }
        if self.logged > 0
            && let Err(e) = self.apply_log()
        {
            // The rows stay in the log, which every reader lays over `resources`, and
            // the next call tries again: nothing committed is lost.
            tracing::warn!(error = %e, "could not apply the row log");
        }
        if self.unchecked.get() {
            // PASSIVE: copies what no reader (`vpclab status`) still needs and never
            // waits for one; the rest goes at a later checkpoint.
            match self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            {
                Ok(()) => self.unchecked.set(false),
                Err(e) => tracing::warn!(error = %e, "could not checkpoint the state database"),
            }
        }
    }

    /// The stored rows of one account, ordered by kind and id (a world to carry
    /// elsewhere: a lab report's final state).
    pub fn rows_of(&self, account: &str) -> Result<Vec<Row>, StoreError> {
        Ok(self
            .load_all()?
            .into_iter()
            .filter(|r| r.account == account)
            .collect())
    }

    /// Writes `rows` as they are, in one transaction: a world carried from elsewhere
    /// (an instructor rebuilding a learner's final state in a scratch directory).
    pub fn insert_rows(&mut self, rows: &[Row]) -> Result<(), StoreError> {
        // Logged rows are older than these: they must not land on top of them later.
        self.apply_log()?;
        let path = self.path.clone();
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        for r in rows {
            tx.execute(
                "INSERT OR REPLACE INTO resources (account, kind, id, body) VALUES (?1, ?2, ?3, ?4)",
                params![r.account, r.kind, r.id, r.body],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        self.unchecked.set(true);
        Ok(())
    }

    /// Writes one mutation in a single transaction: the changed rows (`Some(body)`
    /// upserts, `None` deletes), the commit record and its typed changes. Returns the
    /// commit's sequence number, only after the transaction committed.
    pub(crate) fn commit(
        &mut self,
        account: &str,
        action: &str,
        at: Timestamp,
        rows: &[(&'static str, RowWrite)],
    ) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        // The rows go into the log as one value (applied to `resources` later, in
        // batches); serialised before the transaction opens.
        let logged: Vec<(&str, &str, Option<&str>)> = rows
            .iter()
            .map(|(kind, w)| (*kind, w.id.as_str(), w.body.as_deref()))
            .collect();
        let logged = serde_json::to_string(&logged)?;
        let tx = self.conn.transaction().map_err(sql)?;
        let seq = {
            // The typed changes ride in the commit's own row (one row, not one per
            // change: fewer pages written per commit). The meta row is bookkeeping (the
            // id allocator), not a resource.
            let changes: Vec<[&str; 3]> = rows
                .iter()
                .filter(|(kind, _)| *kind != META_KIND)
                .map(|(kind, w)| [*kind, w.id.as_str(), w.op.as_str()])
                .collect();
            let changes = serde_json::to_string(&changes).unwrap_or_else(|_| "[]".into());
            tx.prepare_cached(
                "INSERT INTO commits (account, at, action, changes) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql)?
            .execute(params![account, at.0, action, changes])
            .map_err(sql)?;
            let seq = tx.last_insert_rowid();
            tx.prepare_cached("INSERT INTO row_log (seq, account, rows) VALUES (?1, ?2, ?3)")
                .map_err(sql)?
                .execute(params![seq, account, logged])
                .map_err(sql)?;
            seq
        };
        tx.commit().map_err(sql)?;
        self.logged += 1;
        self.unchecked.set(true);
        if self.logged >= LOG_LIMIT {
            self.settle();
        }
        Ok(u64::try_from(seq).unwrap_or_default())
    }

    /// Appends `body` to the append-only `stream` as entry `seq` (one past the last one
    /// read). A second entry with the same number is refused by the table's key, so two
    /// writers that read the same tail cannot both append after it.
    pub fn journal_append(&self, stream: &str, seq: u64, body: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO journal (stream, seq, body) VALUES (?1, ?2, ?3)",
                params![stream, i64::try_from(seq).unwrap_or(i64::MAX), body],
            )
            .map_err(|e| self.sql(e))?;
        self.unchecked.set(true);
        Ok(())
    }

    /// Every entry of `stream`, oldest first, with its number.
    pub fn journal(&self, stream: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, body FROM journal WHERE stream = ?1 ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        stmt.query_map(params![stream], |r| {
            Ok((
                u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
                r.get::<_, String>(1)?,
            ))
        })
        .map_err(|e| self.sql(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| self.sql(e))
    }

    /// The stored commits after `after`, oldest first, at most `limit` (the audit trail
    /// and the catch-up of a late reader).
    pub fn commits_since(&self, after: u64, limit: usize) -> Result<Vec<Commit>, StoreError> {
        let query = if self.folded {
            "SELECT seq, account, at, action, changes FROM commits WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        } else {
            "SELECT seq, account, at, action, NULL FROM commits WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        };
        let mut stmt = self.conn.prepare(query).map_err(|e| self.sql(e))?;
        let heads = stmt
            .query_map(
                params![
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        // Commits written before the fold keep their changes as rows of `changes`.
        let mut legacy = self
            .conn
            .prepare("SELECT kind, id, op FROM changes WHERE seq = ?1 ORDER BY rowid")
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::with_capacity(heads.len());
        for (seq, account, at, action, folded) in heads {
            let rows: Vec<(String, String, String)> = match folded {
                Some(text) => serde_json::from_str::<Vec<[String; 3]>>(&text)
                    .map_err(|source| StoreError::Corrupt {
                        kind: "commit".into(),
                        id: seq.to_string(),
                        source,
                    })?
                    .into_iter()
                    .map(|[k, i, o]| (k, i, o))
                    .collect(),
                None => legacy
                    .query_map(params![seq], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .map_err(|e| self.sql(e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.sql(e))?,
            };
            out.push(Commit {
                seq: u64::try_from(seq).unwrap_or_default(),
                account,
                action,
                at: Timestamp(at),
                changes: rows
                    .into_iter()
                    .filter_map(|(kind, id, op)| {
                        Some(Change {
                            kind: known_kind(&kind)?,
                            id,
                            op: match op.as_str() {
                                "created" => ChangeOp::Created,
                                "modified" => ChangeOp::Modified,
                                _ => ChangeOp::Deleted,
                            },
                        })
                    })
                    .collect(),
            });
        }
        Ok(out)
    }
}

impl Drop for Store {
    /// A daemon that stops leaves `resources` complete (a killed one leaves the log,
    /// which the next open applies).
    fn drop(&mut self) {
        self.settle();
    }
}

/// One row as the log keeps it: kind, id, and the body (`None`: deleted).
type LoggedRow = (String, String, Option<String>);

const UPSERT: &str = "INSERT INTO resources (account, kind, id, body) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (account, kind, id) DO UPDATE SET body = excluded.body";
const DELETE: &str = "DELETE FROM resources WHERE account = ?1 AND kind = ?2 AND id = ?3";

/// Whether the database has a table named `name`.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Whether the `commits` table has the `changes` column.
fn has_folded_changes(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('commits') WHERE name = 'changes'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(paths: &StorePaths, table: &str) -> i64 {
        let conn = Connection::open(&paths.db).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// A commit's rows wait in the log: every reader (the daemon's own, `vpclab status`
    /// beside it) sees them at once, deletions included, and closing the store moves
    /// them into `resources`.
    #[test]
    fn logged_rows_are_read_before_they_are_applied_and_applied_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StorePaths::scratch(dir.path());
        let account = "000000000000";
        let put = |id: &str, body: &str| RowWrite {
            id: id.into(),
            op: ChangeOp::Created,
            body: Some(body.into()),
        };
        let mut store = Store::open(&paths).unwrap();
        store
            .commit(
                account,
                "CreateVpc",
                Timestamp(1),
                &[
                    ("vpc", put("vpc-1", "{\"n\":1}")),
                    ("vpc", put("vpc-2", "{\"n\":2}")),
                ],
            )
            .unwrap();
        assert_eq!(store.apply_log().unwrap(), 1);
        store
            .commit(
                account,
                "DeleteVpc",
                Timestamp(2),
                &[
                    (
                        "vpc",
                        RowWrite {
                            id: "vpc-1".into(),
                            op: ChangeOp::Deleted,
                            body: None,
                        },
                    ),
                    ("vpc", put("vpc-2", "{\"n\":3}")),
                    ("vpc", put("vpc-3", "{\"n\":4}")),
                ],
            )
            .unwrap();
        let rows = |store: &Store| {
            store
                .load_all()
                .unwrap()
                .into_iter()
                .map(|r| format!("{} {}", r.id, r.body))
                .collect::<Vec<_>>()
        };
        let want = ["vpc-2 {\"n\":3}", "vpc-3 {\"n\":4}"];
        assert_eq!(
            count(&paths, "row_log"),
            1,
            "the second commit is still logged"
        );
        assert_eq!(rows(&store), want);
        assert_eq!(store.rows_of(account).unwrap().len(), 2);
        let reader = Store::open_read_only(&paths).unwrap();
        assert_eq!(rows(&reader), want, "a reader beside the daemon");
        drop(store);
        assert_eq!(count(&paths, "row_log"), 0);
        assert_eq!(count(&paths, "resources"), 2);
        assert_eq!(rows(&reader), want);
        assert_eq!(rows(&Store::open(&paths).unwrap()), want);
    }

    /// A state database written before a commit's changes moved into its row (one
    /// `changes` row per change) still reads its old commits after the upgrade, and the
    /// commits written after it read the same way.
    #[test]
    fn commits_written_before_the_fold_keep_their_changes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StorePaths::scratch(dir.path());
        {
            let conn = Connection::open(&paths.db).unwrap();
            conn.execute_batch(
                "CREATE TABLE commits (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    account TEXT NOT NULL, at INTEGER NOT NULL, action TEXT NOT NULL);
                 CREATE TABLE changes (seq INTEGER NOT NULL REFERENCES commits (seq),
                    kind TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL);
                 INSERT INTO commits (account, at, action) VALUES ('000000000000', 5, 'CreateVpc');
                 INSERT INTO changes VALUES (1, 'vpc', 'vpc-old', 'created');
                 INSERT INTO changes VALUES (1, 'route_table', 'rtb-old', 'created');",
            )
            .unwrap();
        }
        let mut store = Store::open(&paths).unwrap();
        let row = |id: &str, op| RowWrite {
            id: id.into(),
            op,
            body: (op != ChangeOp::Deleted).then(|| "{}".to_string()),
        };
        store
            .commit(
                "000000000000",
                "DeleteVpc",
                Timestamp(6),
                &[
                    ("vpc", row("vpc-old", ChangeOp::Deleted)),
                    (META_KIND, row("ids", ChangeOp::Modified)),
                ],
            )
            .unwrap();
        let read = |store: &Store| {
            store
                .commits_since(0, 10)
                .unwrap()
                .into_iter()
                .map(|c| {
                    let ch: Vec<(String, ChangeOp)> =
                        c.changes.iter().map(|ch| (ch.id.clone(), ch.op)).collect();
                    (c.action, ch)
                })
                .collect::<Vec<_>>()
        };
        let want = vec![
            (
                "CreateVpc".to_string(),
                vec![
                    ("vpc-old".to_string(), ChangeOp::Created),
                    ("rtb-old".to_string(), ChangeOp::Created),
                ],
            ),
            // The id allocator's row is not a change anyone subscribes to.
            (
                "DeleteVpc".to_string(),
                vec![("vpc-old".to_string(), ChangeOp::Deleted)],
            ),
        ];
        assert_eq!(read(&store), want);
        drop(store);
        let reader = Store::open_read_only(&paths).unwrap();
        assert_eq!(
            read(&reader),
            want,
            "a read-only reader sees the same trail"
        );
    }
}

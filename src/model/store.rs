//! Durable state: one SQLite database (`state.db`) in the state directory, one row per
//! resource (`resources(account, kind, id, body)` with the resource as JSON), and an
//! exclusive lock file so a second daemon on the same directory fails at once.
//!
//! Every mutation's rows are written in one transaction that is committed before the
//! API answers. The database runs in WAL mode with `synchronous=NORMAL`: a committed
//! transaction survives the process being killed (SIGKILL), which is what "acknowledged
//! means durable" needs here; an OS crash or power cut may lose the last transactions.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use rusqlite::{Connection, params};

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

pub struct Store {
    conn: Connection,
    path: PathBuf,
    dir: PathBuf,
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

pub const DB_FILE: &str = "state.db";
pub const LOCK_FILE: &str = "daemon.lock";

impl Store {
    /// Opens (creating if needed) the state directory and database, taking the lock.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let dir_err = |cause| StoreError::Dir {
            dir: dir.to_path_buf(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(dir_err)?;
        if lock.try_lock_exclusive().is_err() {
            return Err(StoreError::Locked(dir.to_path_buf()));
        }
        let path = dir.join(DB_FILE);
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS resources (
                account TEXT NOT NULL,
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (account, kind, id)
            );",
        )
        .map_err(sql)?;
        Ok(Store {
            conn,
            path,
            dir: dir.to_path_buf(),
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

    /// Every stored row, ordered by account, kind and id.
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
        Ok(out)
    }

    /// Writes one mutation's changes in a single transaction: `Some(body)` upserts,
    /// `None` deletes. Returns only after the commit.
    pub fn commit(
        &mut self,
        account: &str,
        changes: &[(&'static str, String, Option<String>)],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = |cause| StoreError::Sqlite {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO resources (account, kind, id, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, kind, id) DO UPDATE SET body = excluded.body",
                )
                .map_err(sql)?;
            let mut del = tx
                .prepare_cached(
                    "DELETE FROM resources WHERE account = ?1 AND kind = ?2 AND id = ?3",
                )
                .map_err(sql)?;
            for (kind, id, body) in changes {
                match body {
                    Some(body) => up.execute(params![account, kind, id, body]).map_err(sql)?,
                    None => del.execute(params![account, kind, id]).map_err(sql)?,
                };
            }
        }
        tx.commit().map_err(sql)
    }
}

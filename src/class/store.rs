//! Where a course keeps what changes while it runs: the roster, every learner's
//! hash-chained progress log and the gradebook. [`ClassStore`] is that storage; the
//! course's `course.db` (SQLite, [`SqliteStore`], the default) and a PostgreSQL database
//! (`--database postgres://…`, [`PgStore`]) implement it. The learners' worlds stay in
//! the state directory's SQLite files either way.
//!
//! Both schemas are created on first use and carry a version (`PRAGMA user_version` in
//! SQLite, the `vpclab_schema` table in PostgreSQL); a store written by a newer vpclab is
//! refused rather than guessed at. PostgreSQL rows carry the course's id (derived from
//! its secret), so one database can hold many courses.
//!
//! The sync `postgres` client runs its own small runtime, which must not run on a tokio
//! worker: [`PgStore`] keeps its connection on a thread of its own and hands it jobs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use super::Learner;
use super::dashboard::Score;
use crate::lab::progress::{Journal, LogError, MakeEntry};

/// The schema version this vpclab writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The roster, the progress journal and the grades of one course.
pub trait ClassStore: Journal {
    /// Where the store is, for messages (never a password).
    fn describe(&self) -> String;
    /// Every learner, by name.
    fn learners(&self) -> anyhow::Result<Vec<Learner>>;
    /// Adds a learner: `make` gets the highest account number ever used by the course (0
    /// for none, removed learners included) and returns the learner to insert. Refused
    /// when the name is taken.
    fn add_learner(&self, name: &str, make: &dyn Fn(u64) -> Learner) -> anyhow::Result<Learner>;
    /// Removes a learner and retires their account; `None` when there is no such learner.
    fn remove_learner(&self, name: &str) -> anyhow::Result<Option<Learner>>;
    /// Replaces one learner's gradebook cells.
    fn put_grades(&self, learner: &str, scores: &[Score]) -> anyhow::Result<()>;
    /// Every gradebook cell, by learner then lab.
    fn grades(&self) -> anyhow::Result<Vec<Score>>;
}

/// Opens the store `database` names (`postgres://…` or `postgresql://…`), or the course's
/// `course.db` without one.
pub fn open(
    course_dir: &std::path::Path,
    course_id: &str,
    database: Option<&str>,
) -> anyhow::Result<Arc<dyn ClassStore>> {
    match database {
        None => Ok(Arc::new(SqliteStore::open(
            &course_dir.join(super::ROSTER_DB),
        )?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::open(url, course_id)?))
        }
        Some(other) => bail!(
            "--database {:?}: expected a PostgreSQL URL, postgres://USER@HOST/DB (or postgresql:///DB?host=/socket/dir)",
            redact(other)
        ),
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.find('@') {
        Some(at) if rest[..at].find('/').is_none() => (&rest[..at], &rest[at..]),
        _ => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{tail}"),
        None => url.to_string(),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// The course's `course.db`.
pub struct SqliteStore {
    path: std::path::PathBuf,
    conn: Mutex<rusqlite::Connection>,
}

impl SqliteStore {
    pub fn open(path: &std::path::Path) -> anyhow::Result<SqliteStore> {
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let not_roster = || format!("{} is not a course database", path.display());
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .with_context(not_roster)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .with_context(not_roster)?;
        if version > SCHEMA_VERSION {
            bail!(
                "{}: schema version {version} was written by a newer vpclab (this one reads {SCHEMA_VERSION})",
                path.display()
            );
        }
        // Version 0 is a new file or a roster from before the journal moved here: the
        // statements below only add what is missing.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS learners (
                name TEXT PRIMARY KEY,
                display TEXT NOT NULL,
                account TEXT NOT NULL UNIQUE,
                access_key TEXT NOT NULL UNIQUE,
                secret_key TEXT NOT NULL,
                password_hash TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS retired (account TEXT PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS journal (
                stream TEXT NOT NULL,
                seq INTEGER NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (stream, seq)
            );
            CREATE TABLE IF NOT EXISTS grades (
                learner TEXT NOT NULL,
                lab TEXT NOT NULL,
                points INTEGER NOT NULL,
                max_points INTEGER NOT NULL,
                percent INTEGER NOT NULL,
                passed INTEGER NOT NULL,
                completed INTEGER NOT NULL,
                PRIMARY KEY (learner, lab)
            );
            PRAGMA user_version = 1;
            COMMIT;",
        )
        .with_context(not_roster)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn learner_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Learner> {
        Ok(Learner {
            name: r.get(0)?,
            display: r.get(1)?,
            account: r.get(2)?,
            access_key: r.get(3)?,
            secret_key: r.get(4)?,
            password_hash: r.get(5)?,
        })
    }
}

const LEARNER_COLUMNS: &str = "name, display, account, access_key, secret_key, password_hash";

impl Journal for SqliteStore {
    fn entries(&self, stream: &str) -> Result<Vec<(u64, String)>, String> {
        let conn = self.conn();
        sqlite_entries(&conn, stream).map_err(|e| e.to_string())
    }

    fn append_with(&self, stream: &str, make: &mut MakeEntry<'_>) -> Result<(), LogError> {
        let store = |e: rusqlite::Error| LogError::Store(e.to_string());
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(store)?;
        let rows = sqlite_entries(&tx, stream).map_err(store)?;
        let (seq, body) = make(&rows)?;
        tx.execute(
            "INSERT INTO journal (stream, seq, body) VALUES (?1, ?2, ?3)",
            rusqlite::params![stream, to_i64(seq), body],
        )
        .map_err(store)?;
        tx.commit().map_err(store)
    }
}

fn sqlite_entries(
    conn: &rusqlite::Connection,
    stream: &str,
) -> rusqlite::Result<Vec<(u64, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, body FROM journal WHERE stream = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([stream], |r| {
        Ok((
            u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
            r.get::<_, String>(1)?,
        ))
    })?;
    rows.collect()
}

impl ClassStore for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    fn learners(&self) -> anyhow::Result<Vec<Learner>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LEARNER_COLUMNS} FROM learners ORDER BY name"
        ))?;
        let rows = stmt.query_map([], Self::learner_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_learner(&self, name: &str, make: &dyn Fn(u64) -> Learner) -> anyhow::Result<Learner> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: i64 = tx.query_row(
            "SELECT COUNT(*) FROM learners WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        if exists > 0 {
            bail!("learner {name:?} is already on the roster");
        }
        // Account numbers are compared as numbers: every one has twelve digits.
        let highest: Option<String> = tx.query_row(
            "SELECT MAX(account) FROM (SELECT account FROM learners UNION ALL SELECT account FROM retired)",
            [],
            |r| r.get(0),
        )?;
        let l = make(highest.and_then(|a| a.parse().ok()).unwrap_or(0));
        tx.execute(
            &format!("INSERT INTO learners ({LEARNER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            rusqlite::params![
                l.name,
                l.display,
                l.account,
                l.access_key,
                l.secret_key,
                l.password_hash
            ],
        )?;
        tx.commit()?;
        Ok(l)
    }

    fn remove_learner(&self, name: &str) -> anyhow::Result<Option<Learner>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {LEARNER_COLUMNS} FROM learners WHERE name = ?1"
            ))?;
            let mut rows = stmt.query_map([name], Self::learner_row)?;
            rows.next().transpose()?
        };
        let Some(l) = found else {
            return Ok(None);
        };
        tx.execute(
            "INSERT OR IGNORE INTO retired (account) VALUES (?1)",
            [&l.account],
        )?;
        tx.execute("DELETE FROM learners WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(Some(l))
    }

    fn put_grades(&self, learner: &str, scores: &[Score]) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM grades WHERE learner = ?1", [learner])?;
        for s in scores {
            tx.execute(
                "INSERT INTO grades (learner, lab, points, max_points, percent, passed, completed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    s.learner,
                    s.lab,
                    s.points,
                    s.max_points,
                    s.percent,
                    s.passed,
                    s.completed
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn grades(&self) -> anyhow::Result<Vec<Score>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT learner, lab, points, max_points, percent, passed, completed FROM grades ORDER BY learner, lab",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Score {
                learner: r.get(0)?,
                lab: r.get(1)?,
                points: r.get(2)?,
                max_points: r.get(3)?,
                percent: r.get(4)?,
                passed: r.get(5)?,
                completed: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

type Job = Box<dyn FnOnce(&mut Result<postgres::Client, String>) + Send>;

/// A PostgreSQL database; one connection, on its own thread.
pub struct PgStore {
    jobs: mpsc::Sender<Job>,
    course: Arc<str>,
    shown: String,
    /// Held from reading a stream's tail to appending after it (one daemon appends;
    /// another writer is stopped by the table's key).
    append: Mutex<()>,
}

const PG_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS vpclab_schema (
        component TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS vpclab_class_learners (
        course TEXT NOT NULL,
        name TEXT NOT NULL,
        display TEXT NOT NULL,
        account TEXT NOT NULL,
        access_key TEXT NOT NULL UNIQUE,
        secret_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        PRIMARY KEY (course, name),
        UNIQUE (course, account)
    );
    CREATE TABLE IF NOT EXISTS vpclab_class_retired (
        course TEXT NOT NULL,
        account TEXT NOT NULL,
        PRIMARY KEY (course, account)
    );
    CREATE TABLE IF NOT EXISTS vpclab_class_journal (
        course TEXT NOT NULL,
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (course, stream, seq)
    );
    CREATE TABLE IF NOT EXISTS vpclab_class_grades (
        course TEXT NOT NULL,
        learner TEXT NOT NULL,
        lab TEXT NOT NULL,
        points INTEGER NOT NULL,
        max_points INTEGER NOT NULL,
        percent INTEGER NOT NULL,
        passed BOOLEAN NOT NULL,
        completed BOOLEAN NOT NULL,
        PRIMARY KEY (course, learner, lab)
    );
";

/// An arbitrary constant: the advisory lock that serialises creating the schema.
const SCHEMA_LOCK: i64 = 0x7670_636c_6162;

fn pg_error(e: &postgres::Error) -> String {
    // The server's own message (and hint) when there is one, else the client's.
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(h) => format!("{}: {} ({h})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

impl PgStore {
    /// Connects (within ten seconds unless the URL says otherwise) and creates or checks
    /// the schema.
    pub fn open(url: &str, course_id: &str) -> anyhow::Result<PgStore> {
        let shown = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            anyhow::anyhow!("--database {shown:?}: {}", pg_error(&e))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("vpclab");
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("vpclab-postgres".into())
            .spawn(move || {
                let mut client: Result<postgres::Client, String> = Err(String::new());
                while let Ok(job) = rx.recv() {
                    if !matches!(&client, Ok(c) if !c.is_closed()) {
                        client = config.connect(postgres::NoTls).map_err(|e| pg_error(&e));
                    }
                    job(&mut client);
                }
            })
            .context("cannot start the PostgreSQL thread")?;
        let store = PgStore {
            jobs: tx,
            course: Arc::from(course_id),
            shown,
            append: Mutex::new(()),
        };
        store.call(|c, _| {
            let mut t = c.transaction()?;
            t.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            t.batch_execute(PG_SCHEMA)?;
            t.execute(
                "INSERT INTO vpclab_schema (component, version) VALUES ('class', $1) ON CONFLICT (component) DO NOTHING",
                &[&(SCHEMA_VERSION as i32)],
            )?;
            let v: i32 = t
                .query_one(
                    "SELECT version FROM vpclab_schema WHERE component = 'class'",
                    &[],
                )?
                .get(0);
            t.commit()?;
            Ok(v)
        })
        .and_then(|v| {
            if i64::from(v) > SCHEMA_VERSION {
                bail!(
                    "{}: schema version {v} was written by a newer vpclab (this one reads {SCHEMA_VERSION})",
                    store.describe()
                );
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `f` on the connection's thread and waits for it.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client, &str) -> Result<T, postgres::Error> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = mpsc::channel();
        let course = self.course.clone();
        let shown = self.shown.clone();
        let job: Job = Box::new(move |client| {
            let out = match client.as_mut() {
                Ok(c) => f(c, &course).map_err(|e| format!("PostgreSQL {shown}: {}", pg_error(&e))),
                Err(e) => Err(format!("cannot connect to PostgreSQL at {shown}: {e}")),
            };
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the PostgreSQL thread has stopped"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the PostgreSQL thread has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn learner_row(r: &postgres::Row) -> Learner {
        Learner {
            name: r.get(0),
            display: r.get(1),
            account: r.get(2),
            access_key: r.get(3),
            secret_key: r.get(4),
            password_hash: r.get(5),
        }
    }
}

impl Journal for PgStore {
    fn entries(&self, stream: &str) -> Result<Vec<(u64, String)>, String> {
        let stream = stream.to_string();
        self.call(move |c, course| {
            let rows = c.query(
                "SELECT seq, body FROM vpclab_class_journal WHERE course = $1 AND stream = $2 ORDER BY seq",
                &[&course, &stream],
            )?;
            Ok(rows
                .iter()
                .map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap_or_default(), r.get(1)))
                .collect())
        })
        .map_err(|e| e.to_string())
    }

    fn append_with(&self, stream: &str, make: &mut MakeEntry<'_>) -> Result<(), LogError> {
        let _serial = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let rows = self.entries(stream).map_err(LogError::Store)?;
        let (seq, body) = make(&rows)?;
        let stream = stream.to_string();
        self.call(move |c, course| {
            c.execute(
                "INSERT INTO vpclab_class_journal (course, stream, seq, body) VALUES ($1, $2, $3, $4)",
                &[&course, &stream, &to_i64(seq), &body],
            )
        })
        .map(|_| ())
        .map_err(|e| LogError::Store(e.to_string()))
    }
}

impl ClassStore for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.shown)
    }

    fn learners(&self) -> anyhow::Result<Vec<Learner>> {
        self.call(|c, course| {
            let rows = c.query(
                &format!(
                    "SELECT {LEARNER_COLUMNS} FROM vpclab_class_learners WHERE course = $1 ORDER BY name"
                ),
                &[&course],
            )?;
            Ok(rows.iter().map(Self::learner_row).collect())
        })
    }

    fn add_learner(&self, name: &str, make: &dyn Fn(u64) -> Learner) -> anyhow::Result<Learner> {
        let name = name.to_string();
        let (exists, highest) = self.call({
            let name = name.clone();
            move |c, course| {
                let n: i64 = c
                    .query_one(
                        "SELECT COUNT(*) FROM vpclab_class_learners WHERE course = $1 AND name = $2",
                        &[&course, &name],
                    )?
                    .get(0);
                let high: Option<String> = c
                    .query_one(
                        "SELECT MAX(account) FROM (SELECT account FROM vpclab_class_learners WHERE course = $1 UNION ALL SELECT account FROM vpclab_class_retired WHERE course = $1) a",
                        &[&course],
                    )?
                    .get(0);
                Ok((n > 0, high))
            }
        })?;
        if exists {
            bail!("learner {name:?} is already on the roster");
        }
        let l = make(highest.and_then(|a| a.parse().ok()).unwrap_or(0));
        let row = l.clone();
        // The table's keys refuse a name or account another writer took meanwhile.
        self.call(move |c, course| {
            c.execute(
                &format!(
                    "INSERT INTO vpclab_class_learners (course, {LEARNER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[
                    &course,
                    &row.name,
                    &row.display,
                    &row.account,
                    &row.access_key,
                    &row.secret_key,
                    &row.password_hash,
                ],
            )
        })?;
        Ok(l)
    }

    fn remove_learner(&self, name: &str) -> anyhow::Result<Option<Learner>> {
        let name = name.to_string();
        self.call(move |c, course| {
            let mut t = c.transaction()?;
            let row = t.query_opt(
                &format!(
                    "DELETE FROM vpclab_class_learners WHERE course = $1 AND name = $2 RETURNING {LEARNER_COLUMNS}"
                ),
                &[&course, &name],
            )?;
            let Some(l) = row.as_ref().map(Self::learner_row) else {
                return Ok(None);
            };
            t.execute(
                "INSERT INTO vpclab_class_retired (course, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&course, &l.account],
            )?;
            t.commit()?;
            Ok(Some(l))
        })
    }

    fn put_grades(&self, learner: &str, scores: &[Score]) -> anyhow::Result<()> {
        let learner = learner.to_string();
        let scores = scores.to_vec();
        self.call(move |c, course| {
            let mut t = c.transaction()?;
            t.execute(
                "DELETE FROM vpclab_class_grades WHERE course = $1 AND learner = $2",
                &[&course, &learner],
            )?;
            for s in &scores {
                t.execute(
                    "INSERT INTO vpclab_class_grades (course, learner, lab, points, max_points, percent, passed, completed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &course,
                        &s.learner,
                        &s.lab,
                        &i32::try_from(s.points).unwrap_or(i32::MAX),
                        &i32::try_from(s.max_points).unwrap_or(i32::MAX),
                        &i32::try_from(s.percent).unwrap_or(i32::MAX),
                        &s.passed,
                        &s.completed,
                    ],
                )?;
            }
            t.commit()
        })
    }

    fn grades(&self) -> anyhow::Result<Vec<Score>> {
        self.call(|c, course| {
            let rows = c.query(
                "SELECT learner, lab, points, max_points, percent, passed, completed FROM vpclab_class_grades WHERE course = $1 ORDER BY learner, lab",
                &[&course],
            )?;
            Ok(rows
                .iter()
                .map(|r| Score {
                    learner: r.get(0),
                    lab: r.get(1),
                    points: to_u32(i64::from(r.get::<_, i32>(2))),
                    max_points: to_u32(i64::from(r.get::<_, i32>(3))),
                    percent: to_u32(i64::from(r.get::<_, i32>(4))),
                    passed: r.get(5),
                    completed: r.get(6),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redact("postgres://ann:s3cret@db.example:5432/class"),
            "postgres://ann:***@db.example:5432/class"
        );
        assert_eq!(redact("postgres://ann@db/class"), "postgres://ann@db/class");
        assert_eq!(
            redact("postgresql:///class?host=/run/pg"),
            "postgresql:///class?host=/run/pg"
        );
    }

    #[test]
    fn a_database_that_is_not_postgresql_is_refused_by_name() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = open(d.path(), "c", Some("mysql://root:pw@db/x"))
            .err()
            .expect("refused");
        let m = format!("{e:#}");
        assert!(m.contains("expected a PostgreSQL URL"), "{m}");
        assert!(!m.contains("pw"), "{m}");
    }

    #[test]
    fn a_course_db_from_a_newer_vpclab_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("course.db");
        rusqlite::Connection::open(&p)
            .expect("open")
            .execute_batch("PRAGMA user_version = 9;")
            .expect("set");
        let e = SqliteStore::open(&p).err().expect("refused");
        assert!(format!("{e:#}").contains("newer vpclab"), "{e:#}");
    }
}

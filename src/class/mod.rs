//! The classroom: one daemon for a whole class (docs/teaching.md).
//!
//! A course is a folder: `course.toml` (name, secret, labs, which are assessed, the
//! instructor's key, the "stuck" thresholds), `course.db` (the roster: per learner an
//! account, an access key pair and a hashed console password; every learner's progress
//! log; the gradebook; in SQLite, or in PostgreSQL with `--database`: [`store`]),
//! `labs/` (the course's own copy of its labs, so grading later uses the labs the class
//! ran) and `state/` (the daemon's state directory: every learner's world).
//!
//! This module owns those files ([`Course`]), turns the roster into a key store for strict
//! SigV4 ([`RosterKeys`]) and into the lab engine's [`crate::lab::service::CoursePolicy`],
//! and serves the instructor's dashboard ([`dashboard`]). Worlds, labs and the console
//! stay where they are: a learner is an account like any other, which is what keeps
//! learners apart (each account is its own world).

pub mod dashboard;
pub mod roster;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::sigv4::{KeyRecord, KeyStore, Principal};
use crate::lab::service::{CoursePolicy, Roster};

/// The course settings file.
pub const COURSE_FILE: &str = "course.toml";
/// The roster database.
pub const ROSTER_DB: &str = "course.db";
/// The first learner account; the instructor's is the one before it.
const FIRST_ACCOUNT: u64 = 100_000_000_001;
const INSTRUCTOR_ACCOUNT: &str = "100000000000";

/// `course.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseFile {
    pub name: String,
    /// Seeds every learner's lab parameters and the key that signs reports.
    pub secret: String,
    /// Lab ids, in course order.
    pub labs: Vec<String>,
    /// Lab ids run in assessed mode.
    #[serde(default)]
    pub assessed: Vec<String>,
    /// A learner is "stuck" after this long without progress …
    #[serde(default = "default_stuck_minutes")]
    pub stuck_minutes: u32,
    /// … or after the same check failed this many runs in a row.
    #[serde(default = "default_stuck_failures")]
    pub stuck_failures: u32,
    pub instructor: InstructorKey,
    /// `postgresql` when the roster, journal and grades are in PostgreSQL (the URL is
    /// given to each command with `--database`, never kept here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

fn default_stuck_minutes() -> u32 {
    10
}
fn default_stuck_failures() -> u32 {
    3
}

/// The instructor's admin key and console password.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructorKey {
    pub access_key: String,
    pub secret_key: String,
    pub account: String,
    pub password_hash: String,
}

/// One learner of the roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Learner {
    pub name: String,
    pub display: String,
    pub account: String,
    pub access_key: String,
    #[serde(skip)]
    pub secret_key: String,
    #[serde(skip)]
    pub password_hash: String,
}

/// An open course folder.
#[derive(Clone)]
pub struct Course {
    pub dir: PathBuf,
    pub file: CourseFile,
    /// Lab id → the course's copy of the lab.
    pub labs: BTreeMap<String, PathBuf>,
    /// The roster, progress logs and grades.
    pub store: Arc<dyn store::ClassStore>,
}

impl std::fmt::Debug for Course {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Course")
            .field("dir", &self.dir)
            .field("name", &self.file.name)
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

/// What `vpclab class init` and `add-learner` hand back once: passwords are stored hashed.
pub struct NewLearner {
    pub learner: Learner,
    pub password: String,
}

fn random_text(n: usize, upper: bool) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .map(char::from)
        .map(|c| if upper { c.to_ascii_uppercase() } else { c })
        .take(n)
        .collect()
}

/// A console password: four groups of four lower-case letters and digits.
fn new_password() -> String {
    let t = random_text(16, false).to_ascii_lowercase();
    format!("{}-{}-{}-{}", &t[0..4], &t[4..8], &t[8..12], &t[12..16])
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2), one block: enough for a 32-byte key.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    type H = Hmac<Sha256>;
    let mac = || H::new_from_slice(password).expect("HMAC takes a key of any length");
    let mut m = mac();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut m = mac();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

const PBKDF2_ROUNDS: u32 = 100_000;

/// `pbkdf2-sha256$ROUNDS$SALT$HASH` (hex).
pub fn hash_password(password: &str) -> String {
    let salt = random_text(16, false);
    let h = pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), PBKDF2_ROUNDS);
    format!("pbkdf2-sha256${PBKDF2_ROUNDS}${salt}${}", hex::encode(h))
}

/// Whether `password` matches a stored hash (compared in constant time).
pub fn password_matches(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Ok(rounds) = rounds.parse::<u32>() else {
        return false;
    };
    if rounds == 0 || rounds > 10_000_000 {
        return false;
    }
    let h = pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), rounds);
    crate::console::session::same(hex::encode(h).as_bytes(), hash.as_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// The lab id of a lab folder (its `lab.toml`'s `id`).
fn lab_id(dir: &Path) -> anyhow::Result<String> {
    let spec = crate::lab::spec::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(spec.id)
}

impl Course {
    /// Creates a course folder: settings with a fresh secret and instructor key, the
    /// course's copy of each lab (found in `labs_root` by id), and the roster of
    /// `roster_csv`. Returns every learner with their one-time console password, and the
    /// instructor's.
    pub fn init(
        dir: &Path,
        name: &str,
        labs_root: &Path,
        labs: &[String],
        assessed: &[String],
        roster_csv: &Path,
        database: Option<&str>,
    ) -> anyhow::Result<(Course, String, Vec<NewLearner>)> {
        if dir.join(COURSE_FILE).exists() {
            bail!("{} already holds a course", dir.display());
        }
        let entries = roster::parse_csv_file(roster_csv)?;
        if labs.is_empty() {
            bail!("--labs names no lab");
        }
        for a in assessed {
            if !labs.contains(a) {
                bail!("--assessed {a:?} is not one of --labs");
            }
        }
        std::fs::create_dir_all(dir.join("labs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for id in labs {
            let from = crate::lab::find_lab(labs_root, id)?;
            let folder = from.file_name().context("a lab folder has a name")?;
            copy_dir(&from, &dir.join("labs").join(folder))?;
        }
        let password = new_password();
        let file = CourseFile {
            name: name.to_string(),
            secret: random_text(32, false),
            labs: labs.to_vec(),
            assessed: assessed.to_vec(),
            stuck_minutes: default_stuck_minutes(),
            stuck_failures: default_stuck_failures(),
            instructor: InstructorKey {
                access_key: format!("AKIA{}", random_text(16, true)),
                secret_key: random_text(40, false),
                account: INSTRUCTOR_ACCOUNT.to_string(),
                password_hash: hash_password(&password),
            },
            storage: database.map(|_| POSTGRESQL.to_string()),
        };
        let text = toml::to_string(&file).context("cannot encode the course")?;
        write_private(&dir.join(COURSE_FILE), text.as_bytes())?;
        let course = Course::open(dir, database)?;
        let mut added = Vec::new();
        for e in entries {
            added.push(course.add_learner(&e.name, &e.display)?);
        }
        Ok((course, password, added))
    }

    /// Opens a course folder for grading reports offline: its settings and labs, not its
    /// store (the roster and progress are not needed to verify a report).
    pub fn open_for_grading(dir: &Path) -> anyhow::Result<Course> {
        let text = std::fs::read_to_string(dir.join(COURSE_FILE)).unwrap_or_default();
        let database = toml::from_str::<CourseFile>(&text)
            .ok()
            .and_then(|f| f.storage)
            .map(|_| "postgresql://offline");
        Course::open_with(dir, database, |_| {
            Ok(Arc::new(store::SqliteStore::open(Path::new(":memory:"))?))
        })
    }

    /// Opens a course folder, checking its settings and labs, and its store: `database`
    /// (a PostgreSQL URL) for a course made with `--database`, none for `course.db`.
    pub fn open(dir: &Path, database: Option<&str>) -> anyhow::Result<Course> {
        Course::open_with(dir, database, |file| {
            store::open(dir, &course_id(&file.secret), database)
        })
    }

    fn open_with(
        dir: &Path,
        database: Option<&str>,
        store: impl FnOnce(&CourseFile) -> anyhow::Result<Arc<dyn store::ClassStore>>,
    ) -> anyhow::Result<Course> {
        let path = dir.join(COURSE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (vpclab class init)", path.display()))?;
        let file: CourseFile =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if file.secret.len() < 16 {
            bail!(
                "{}: key `secret`: at least 16 characters, so that learners cannot guess it",
                path.display()
            );
        }
        let mut labs = BTreeMap::new();
        let root = dir.join("labs");
        for id in &file.labs {
            let d = crate::lab::find_lab(&root, id)
                .map_err(|e| anyhow::anyhow!("{}: key `labs`: {e:#}", path.display()))?;
            let d = d.canonicalize().unwrap_or(d);
            let real = lab_id(&d).map_err(|e| anyhow::anyhow!("{}: {e:#}", d.display()))?;
            labs.insert(real, d);
        }
        for a in &file.assessed {
            if !file.labs.contains(a) {
                bail!(
                    "{}: key `assessed`: {a:?} is not one of `labs`",
                    path.display()
                );
            }
        }
        match (file.storage.as_deref(), database) {
            (None, None) | (Some(POSTGRESQL), Some(_)) => {}
            (Some(POSTGRESQL), None) => bail!(
                "{}: this course keeps its roster and progress in PostgreSQL: pass --database postgres://…",
                path.display()
            ),
            (None, Some(_)) => bail!(
                "{}: this course keeps its roster and progress in {} (made without --database); \
                 leave out --database",
                path.display(),
                dir.join(ROSTER_DB).display()
            ),
            (Some(other), _) => bail!(
                "{}: key `storage`: {other:?}: expected \"{POSTGRESQL}\" or no key",
                path.display()
            ),
        }
        let store = store(&file)?;
        Ok(Course {
            dir: dir.to_path_buf(),
            file,
            labs,
            store,
        })
    }

    /// The state directory of the course's daemon.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Every learner, by name.
    pub fn learners(&self) -> anyhow::Result<Vec<Learner>> {
        self.store.learners()
    }

    pub fn learner(&self, name: &str) -> anyhow::Result<Learner> {
        self.learners()?
            .into_iter()
            .find(|l| l.name == name)
            .with_context(|| format!("no learner {name:?} in {}", self.dir.display()))
    }

    /// Adds a learner with a new account, key pair and console password.
    pub fn add_learner(&self, name: &str, display: &str) -> anyhow::Result<NewLearner> {
        if !crate::lab::progress::valid_learner(name) {
            bail!("learner {name:?}: expected letters, digits, '.', '_' or '-'");
        }
        let password = new_password();
        let password_hash = hash_password(&password);
        // Accounts are never reused, so a removed learner's world is never handed on.
        let learner = self.store.add_learner(name, &|highest| Learner {
            name: name.to_string(),
            display: display.to_string(),
            account: format!("{:012}", (highest + 1).max(FIRST_ACCOUNT)),
            access_key: format!("AKIA{}", random_text(16, true)),
            secret_key: random_text(40, false),
            password_hash: password_hash.clone(),
        })?;
        Ok(NewLearner { learner, password })
    }

    /// Removes a learner: their key stops working (after the daemon restarts); their
    /// world and progress stay, and the account is never reused.
    pub fn remove_learner(&self, name: &str) -> anyhow::Result<Learner> {
        self.store
            .remove_learner(name)?
            .with_context(|| format!("no learner {name:?} in {}", self.dir.display()))
    }

    /// The progress logs, through the store, with each learner's gradebook cells
    /// recomputed after every event.
    pub fn journal(&self) -> Arc<dyn crate::lab::progress::Journal> {
        Arc::new(GradingJournal {
            course: self.clone(),
        })
    }

    /// Every learner's progress log (empty for a learner with none).
    pub fn logs(&self) -> anyhow::Result<BTreeMap<String, Vec<crate::lab::progress::Event>>> {
        let mut out = BTreeMap::new();
        for l in self.learners()? {
            let events = crate::lab::progress::Log::on(self.store.clone(), &l.name)
                .read()
                .with_context(|| format!("the progress log of {}", l.name))?;
            out.insert(l.name, events);
        }
        Ok(out)
    }

    /// One learner's gradebook cells, from their log.
    pub fn scores_of(
        &self,
        learner: &str,
        events: &[crate::lab::progress::Event],
    ) -> Vec<dashboard::Score> {
        let member = dashboard::Member {
            name: learner.to_string(),
            display: learner.to_string(),
            account: String::new(),
        };
        let logs = BTreeMap::from([(learner.to_string(), events.to_vec())]);
        dashboard::summarise(self, &[member], &logs, 0).scores
    }

    /// Recomputes every learner's gradebook cells from their logs (at start-up, so the
    /// gradebook matches the logs whatever happened before).
    pub fn refresh_grades(&self) -> anyhow::Result<()> {
        for (name, events) in self.logs()? {
            self.store
                .put_grades(&name, &self.scores_of(&name, &events))?;
        }
        Ok(())
    }

    /// Copies the progress logs a daemon kept in its state database (before the course's
    /// store held them) into the store, for learners whose log there is empty.
    pub fn adopt_logs(
        &self,
        old: &dyn Fn(&str) -> anyhow::Result<crate::lab::progress::Entries>,
    ) -> anyhow::Result<usize> {
        let mut moved = 0;
        for l in self.learners()? {
            let stream = crate::lab::progress::stream_of(&l.name);
            let rows = old(&stream)?;
            if rows.is_empty()
                || !self
                    .store
                    .entries(&stream)
                    .map_err(|e| anyhow::anyhow!(e))?
                    .is_empty()
            {
                continue;
            }
            crate::lab::progress::events_of(rows.clone())
                .with_context(|| format!("the progress log of {} in the state database", l.name))?;
            for (seq, body) in rows {
                self.store
                    .append_with(&stream, &mut |_| Ok((seq, body.clone())))?;
            }
            moved += 1;
        }
        Ok(moved)
    }

    /// The ed25519 key every report of the course is signed with: derived from the
    /// secret, so `vpclab grade --course DIR` trusts it without another file.
    pub fn report_key(&self) -> ed25519_dalek::SigningKey {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"vpclab course report key\0")
            .chain_update(self.file.secret.as_bytes())
            .finalize()
            .into();
        ed25519_dalek::SigningKey::from_bytes(&seed)
    }

    /// The roster as the daemon uses it (read once at start-up).
    pub fn index(&self) -> anyhow::Result<Arc<RosterKeys>> {
        let mut keys = BTreeMap::new();
        let mut by_account = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for l in self.learners()? {
            keys.insert(
                l.access_key.clone(),
                KeyRecord {
                    secret_key: l.secret_key.clone(),
                    account: l.account.clone(),
                    principal: Principal::Root,
                    session_token: None,
                    expires: None,
                },
            );
            by_account.insert(l.account.clone(), l.name.clone());
            by_name.insert(l.name.clone(), l);
        }
        let i = &self.file.instructor;
        keys.insert(
            i.access_key.clone(),
            KeyRecord {
                secret_key: i.secret_key.clone(),
                account: i.account.clone(),
                principal: Principal::Instructor,
                session_token: None,
                expires: None,
            },
        );
        Ok(Arc::new(RosterKeys {
            keys,
            by_account,
            by_name,
            instructor: i.clone(),
        }))
    }

    /// The lab engine's rules for this course.
    pub fn policy(&self, roster: Arc<RosterKeys>) -> CoursePolicy {
        CoursePolicy {
            secret: self.file.secret.clone(),
            labs: self.labs.clone(),
            assessed: self.file.assessed.iter().cloned().collect::<BTreeSet<_>>(),
            roster,
            report_key: self.report_key(),
            progress: tokio::sync::watch::channel(0).0,
            journal: self.journal(),
        }
    }
}

/// `storage` in `course.toml` for a course in PostgreSQL.
const POSTGRESQL: &str = "postgresql";

/// The id a course's rows carry in a shared database: derived from its secret, so two
/// courses never share one and a course folder always finds its own.
pub fn course_id(secret: &str) -> String {
    let h = Sha256::new()
        .chain_update(b"vpclab course id\0")
        .chain_update(secret.as_bytes())
        .finalize();
    hex::encode(&h[..12])
}

/// The course's journal: appends go to the store, and each one updates the learner's
/// gradebook cells.
struct GradingJournal {
    course: Course,
}

impl crate::lab::progress::Journal for GradingJournal {
    fn entries(&self, stream: &str) -> Result<Vec<(u64, String)>, String> {
        self.course.store.entries(stream)
    }

    fn append_with(
        &self,
        stream: &str,
        make: &mut crate::lab::progress::MakeEntry<'_>,
    ) -> Result<(), crate::lab::progress::LogError> {
        self.course.store.append_with(stream, make)?;
        let Some(learner) = stream.strip_prefix("lab:") else {
            return Ok(());
        };
        // The event is stored: a gradebook that failed to update is put right by the
        // next event or the next start, so it is reported, not returned.
        let updated = self
            .course
            .store
            .entries(stream)
            .map_err(|e| anyhow::anyhow!(e))
            .and_then(|rows| Ok(crate::lab::progress::events_of(rows)?))
            .and_then(|events| {
                self.course
                    .store
                    .put_grades(learner, &self.course.scores_of(learner, &events))
            });
        if let Err(e) = updated {
            tracing::warn!("the gradebook of {learner} was not updated: {e:#}");
        }
        Ok(())
    }
}

/// The roster, indexed: access keys for SigV4, and learner ↔ account for the labs.
pub struct RosterKeys {
    keys: BTreeMap<String, KeyRecord>,
    by_account: BTreeMap<String, String>,
    by_name: BTreeMap<String, Learner>,
    instructor: InstructorKey,
}

impl RosterKeys {
    pub fn learners(&self) -> impl Iterator<Item = &Learner> {
        self.by_name.values()
    }

    pub fn learner(&self, name: &str) -> Option<&Learner> {
        self.by_name.get(name)
    }

    pub fn instructor_account(&self) -> &str {
        &self.instructor.account
    }

    /// The account a console login (learner name or `instructor`, and password) opens.
    pub fn password_login(&self, user: &str, password: &str) -> Option<String> {
        if user == "instructor" {
            return password_matches(&self.instructor.password_hash, password)
                .then(|| self.instructor.account.clone());
        }
        let l = self.by_name.get(user)?;
        password_matches(&l.password_hash, password).then(|| l.account.clone())
    }
}

impl KeyStore for RosterKeys {
    fn find(&self, access_key: &str) -> Option<KeyRecord> {
        self.keys.get(access_key).cloned()
    }
}

impl Roster for RosterKeys {
    fn learner_of(&self, account: &str) -> Option<String> {
        self.by_account.get(account).cloned()
    }
    fn account_of(&self, learner: &str) -> Option<String> {
        self.by_name.get(learner).map(|l| l.account.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, first 32 bytes.
        let h = pbkdf2_sha256(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(h),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn a_password_matches_its_hash_and_nothing_else() {
        let h = hash_password("abcd-efgh");
        assert!(password_matches(&h, "abcd-efgh"));
        assert!(!password_matches(&h, "abcd-efgi"));
        assert!(!password_matches("plain", "plain"));
    }
}

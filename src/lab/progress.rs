//! Progress: every start, check run, hint, answer, skip, reset and completion is an
//! event appended to the learner's log, stored with the world in the state database (the
//! model store's journal, stream `lab:<learner>`). Each event carries the SHA-256 of the
//! previous one, so an edited, reordered or truncated log does not verify ([`verify`]:
//! the same test an instructor's `vpclab grade` applies to a report). The learner's
//! current lab, attempts and answers are computed from the log: it is the only state,
//! and it survives restarts of the kit.
//!
//! Where the entries live is a [`Journal`]: the model store's journal by default
//! ([`ControlJournal`]), a classroom's own store (SQLite or PostgreSQL) in a class.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Control;

/// The hash of "no previous event".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Start,
    Check,
    Hint,
    Answer,
    Reset,
    Complete,
    /// The learner had the kit run a step's reference solution (practice mode only).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub learner: String,
    pub lab: String,
    pub kind: EventKind,
    pub step: Option<String>,
    /// What happened: the lab folder and region of a start, the results of a check run,
    /// the hint shown, the answer given.
    pub detail: serde_json::Value,
    pub prev: String,
    pub hash: String,
}

impl Event {
    fn digest(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// A log that cannot be read, or whose chain does not verify.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the progress store failed: {0}")]
    Store(String),
    #[error("event {seq} does not parse: {message}")]
    Parse { seq: u64, message: String },
    #[error("event {seq} breaks the hash chain (the log was edited)")]
    Chain { seq: u64 },
}

/// Checks the chain of `events`: numbered from 0, each naming the hash of the one
/// before, each hash the SHA-256 of its event.
pub fn verify(events: &[Event]) -> Result<(), LogError> {
    let mut prev = GENESIS;
    for (i, ev) in events.iter().enumerate() {
        if ev.seq != i as u64 || ev.prev != prev || ev.digest() != ev.hash {
            return Err(LogError::Chain { seq: i as u64 });
        }
        prev = &ev.hash;
    }
    Ok(())
}

/// A learner id: letters, digits, `.`, `_`, `-`.
pub fn valid_learner(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A stream's entries: number and body, oldest first.
pub type Entries = Vec<(u64, String)>;

/// Makes the entry to append from a stream's entries so far.
pub type MakeEntry<'a> = dyn FnMut(&[(u64, String)]) -> Result<(u64, String), LogError> + 'a;

/// Append-only streams of numbered entries: where progress logs are kept.
pub trait Journal: Send + Sync {
    /// Every entry of `stream`, oldest first.
    fn entries(&self, stream: &str) -> Result<Vec<(u64, String)>, String>;
    /// Reads `stream` and appends the entry `make` returns for it, with no other append
    /// to the stream in between (so the hash chain cannot fork).
    fn append_with(&self, stream: &str, make: &mut MakeEntry<'_>) -> Result<(), LogError>;
}

/// The model store's journal, beside the world.
pub struct ControlJournal(pub Arc<Mutex<Control>>);

impl Journal for ControlJournal {
    fn entries(&self, stream: &str) -> Result<Vec<(u64, String)>, String> {
        let control = self.0.lock().unwrap_or_else(|e| e.into_inner());
        control.journal(stream).map_err(|e| e.to_string())
    }

    fn append_with(&self, stream: &str, make: &mut MakeEntry<'_>) -> Result<(), LogError> {
        // The control's lock is held from reading the tail to writing.
        let control = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rows = control
            .journal(stream)
            .map_err(|e| LogError::Store(e.to_string()))?;
        let (seq, body) = make(&rows)?;
        control
            .journal_append(stream, seq, &body)
            .map_err(|e| LogError::Store(e.to_string()))
    }
}

/// One learner's log.
#[derive(Clone)]
pub struct Log {
    journal: Arc<dyn Journal>,
    stream: String,
}

/// The journal stream of a learner's log.
pub fn stream_of(learner: &str) -> String {
    format!("lab:{learner}")
}

impl Log {
    /// The learner's log in the model store.
    pub fn new(control: Arc<Mutex<Control>>, learner: &str) -> Log {
        Log::on(Arc::new(ControlJournal(control)), learner)
    }

    /// The learner's log in `journal`.
    pub fn on(journal: Arc<dyn Journal>, learner: &str) -> Log {
        Log {
            journal,
            stream: stream_of(learner),
        }
    }

    /// Every event, with the chain verified.
    pub fn read(&self) -> Result<Vec<Event>, LogError> {
        let rows = self
            .journal
            .entries(&self.stream)
            .map_err(LogError::Store)?;
        parse_rows(rows)
    }

    /// Appends an event after the last one and returns every event, the new one last.
    /// Appends to one log are serialised by the journal.
    pub fn append(
        &self,
        at_ms: i64,
        learner: &str,
        lab: &str,
        kind: EventKind,
        step: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<Vec<Event>, LogError> {
        let mut out = Vec::new();
        self.journal.append_with(&self.stream, &mut |rows| {
            let mut events = parse_rows(rows.to_vec())?;
            let (seq, prev) = events
                .last()
                .map_or((0, GENESIS.to_string()), |e| (e.seq + 1, e.hash.clone()));
            let mut ev = Event {
                seq,
                at_ms,
                learner: learner.to_string(),
                lab: lab.to_string(),
                kind: kind.clone(),
                step: step.map(str::to_string),
                detail: detail.clone(),
                prev,
                hash: String::new(),
            };
            ev.hash = ev.digest();
            let body = serde_json::to_string(&ev).map_err(|e| LogError::Store(e.to_string()))?;
            events.push(ev);
            out = events;
            Ok((seq, body))
        })?;
        Ok(out)
    }
}

fn parse_rows(rows: Vec<(u64, String)>) -> Result<Vec<Event>, LogError> {
    let mut out = Vec::with_capacity(rows.len());
    for (seq, body) in rows {
        let ev: Event = serde_json::from_str(&body).map_err(|e| LogError::Parse {
            seq,
            message: e.to_string(),
        })?;
        if ev.seq != seq {
            return Err(LogError::Chain { seq });
        }
        out.push(ev);
    }
    verify(&out)?;
    Ok(out)
}

/// Parses and verifies a stream's entries (as [`Log::read`] does).
pub fn events_of(rows: Vec<(u64, String)>) -> Result<Vec<Event>, LogError> {
    parse_rows(rows)
}

/// Where the latest attempt of `lab` ends in a log: the index of the first start or reset
/// after its last start (or the log's length). `current(&events[..end])` is that attempt.
pub fn attempt_end(events: &[Event], lab: &str) -> Option<usize> {
    let start = events
        .iter()
        .rposition(|e| e.kind == EventKind::Start && e.lab == lab)?;
    Some(
        events[start + 1..]
            .iter()
            .position(|e| matches!(e.kind, EventKind::Start | EventKind::Reset))
            .map_or(events.len(), |i| start + 1 + i),
    )
}

/// The learner's current attempt, computed from the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attempt {
    pub lab: String,
    pub dir: PathBuf,
    pub region: String,
    pub started_ms: i64,
    /// Check runs per step.
    pub runs: BTreeMap<String, u32>,
    /// The latest result of each check, per step: check id → (status, points).
    pub latest: BTreeMap<String, BTreeMap<String, (String, u32)>>,
    /// The latest answer per quiz check id.
    pub answers: BTreeMap<String, String>,
    pub hints_shown: u32,
    /// Steps the learner skipped: solved by the kit, so worth no points.
    pub skipped: std::collections::BTreeSet<String>,
    pub completed: bool,
}

/// The attempt begun by the last `start` (none after a `reset`).
pub fn current(events: &[Event]) -> Option<Attempt> {
    let start = events
        .iter()
        .rposition(|e| e.kind == EventKind::Start || e.kind == EventKind::Reset)?;
    let first = &events[start];
    if first.kind == EventKind::Reset {
        return None;
    }
    let mut a = Attempt {
        lab: first.lab.clone(),
        dir: PathBuf::from(first.detail["dir"].as_str().unwrap_or_default()),
        region: first.detail["region"]
            .as_str()
            .unwrap_or("us-east-1")
            .to_string(),
        started_ms: first.at_ms,
        ..Attempt::default()
    };
    for e in &events[start + 1..] {
        match e.kind {
            EventKind::Check => {
                let step = e.step.clone().unwrap_or_default();
                *a.runs.entry(step.clone()).or_default() += 1;
                let latest = a.latest.entry(step).or_default();
                for r in e.detail["results"].as_array().into_iter().flatten() {
                    latest.insert(
                        r["id"].as_str().unwrap_or_default().to_string(),
                        (
                            r["status"].as_str().unwrap_or_default().to_string(),
                            u32::try_from(r["points"].as_u64().unwrap_or(0)).unwrap_or(0),
                        ),
                    );
                }
            }
            EventKind::Answer => {
                if let (Some(id), Some(text)) =
                    (e.detail["check"].as_str(), e.detail["answer"].as_str())
                {
                    a.answers.insert(id.to_string(), text.to_string());
                }
            }
            EventKind::Hint => a.hints_shown += 1,
            EventKind::Skip => {
                a.skipped.insert(e.step.clone().unwrap_or_default());
            }
            EventKind::Complete => a.completed = true,
            EventKind::Start | EventKind::Reset => {}
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(dir: &std::path::Path) -> Arc<Mutex<Control>> {
        let paths = crate::model::store::StorePaths::scratch(dir);
        Arc::new(Mutex::new(Control::open(&paths).expect("open")))
    }

    fn two_events(log: &Log) {
        log.append(
            1,
            "ann",
            "x",
            EventKind::Start,
            None,
            serde_json::json!({"dir": "/l/x"}),
        )
        .expect("append");
        log.append(
            2,
            "ann",
            "x",
            EventKind::Check,
            Some("a"),
            serde_json::json!({"results": [{"id": "c", "status": "pass", "points": 1}]}),
        )
        .expect("append");
    }

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = Log::new(control(d.path()), "ann");
        two_events(&log);
        let mut events = log.read().expect("verifies");
        assert_eq!(events.len(), 2);
        let a = current(&events).expect("an attempt");
        assert_eq!(a.latest["a"]["c"], ("pass".to_string(), 1));
        // A check result turned from fail to pass, or the first event dropped: neither
        // verifies.
        let mut edited = events.clone();
        edited[1].detail["results"][0]["status"] = "fail".into();
        assert!(matches!(verify(&edited), Err(LogError::Chain { seq: 1 })));
        events.remove(0);
        assert!(matches!(verify(&events), Err(LogError::Chain { seq: 0 })));
    }

    #[test]
    fn progress_lives_in_the_state_database_and_survives_a_reopen() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let log = Log::new(control(d.path()), "ann");
            two_events(&log);
        }
        // The store is closed (its lock released) and opened again, as by a restart.
        let again = Log::new(control(d.path()), "ann");
        let events = again.read().expect("verifies");
        assert_eq!(events.len(), 2);
        assert_eq!(current(&events).expect("attempt").runs["a"], 1);
        assert!(
            Log::on(again.journal.clone(), "bob")
                .read()
                .expect("empty")
                .is_empty(),
            "each learner has their own stream"
        );
    }

    #[test]
    fn an_edited_row_in_the_database_does_not_verify() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let log = Log::new(control(d.path()), "ann");
            two_events(&log);
        }
        let db = crate::model::store::StorePaths::scratch(d.path()).db;
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute(
            "UPDATE journal SET body = replace(body, '\"pass\"', '\"fail\"') WHERE seq = 1",
            [],
        )
        .expect("edit");
        drop(conn);
        let log = Log::new(control(d.path()), "ann");
        assert!(matches!(log.read(), Err(LogError::Chain { seq: 1 })));
    }
}

//! Progress: every start, check run, hint, answer, reset and completion is an event
//! appended to the learner's log (`<state dir>/labs/<learner>.jsonl`). Each event carries
//! the SHA-256 of the previous one, so an edited or truncated log does not verify. The
//! learner's current lab, attempts and answers are computed from the log: it is the only
//! state, and it survives restarts of the kit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// One learner's log file.
#[derive(Debug, Clone)]
pub struct Log {
    path: PathBuf,
}

/// A log whose chain does not verify.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read or write {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}: event {line} does not parse: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: event {line} breaks the hash chain (the log was edited)")]
    Chain { path: PathBuf, line: usize },
}

/// A learner id as a file name: letters, digits, `.`, `_`, `-`.
pub fn valid_learner(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Log {
    pub fn new(dir: &Path, learner: &str) -> Log {
        Log {
            path: dir.join(format!("{learner}.jsonl")),
        }
    }

    /// Every event, with the chain verified.
    pub fn read(&self) -> Result<Vec<Event>, LogError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogError::Io(self.path.clone(), e)),
        };
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let ev: Event = serde_json::from_str(line).map_err(|e| LogError::Parse {
                path: self.path.clone(),
                line: i + 1,
                message: e.to_string(),
            })?;
            if ev.prev != prev || ev.digest() != ev.hash {
                return Err(LogError::Chain {
                    path: self.path.clone(),
                    line: i + 1,
                });
            }
            prev = ev.hash.clone();
            out.push(ev);
        }
        Ok(out)
    }

    /// Appends an event after the last one and returns it.
    pub fn append(
        &self,
        at_ms: i64,
        learner: &str,
        lab: &str,
        kind: EventKind,
        step: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<Event, LogError> {
        let events = self.read()?;
        let (seq, prev) = events
            .last()
            .map_or((0, GENESIS.to_string()), |e| (e.seq + 1, e.hash.clone()));
        let mut ev = Event {
            seq,
            at_ms,
            learner: learner.to_string(),
            lab: lab.to_string(),
            kind,
            step: step.map(str::to_string),
            detail,
            prev,
            hash: String::new(),
        };
        ev.hash = ev.digest();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LogError::Io(dir.to_path_buf(), e))?;
        }
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(|e| LogError::Io(self.path.clone(), e))?;
        Ok(ev)
    }
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

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = Log::new(d.path(), "ann");
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
        let events = log.read().expect("verifies");
        assert_eq!(events.len(), 2);
        let a = current(&events).expect("an attempt");
        assert_eq!(a.latest["a"]["c"], ("pass".to_string(), 1));
        let path = d.path().join("ann.jsonl");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("\"pass\"", "\"fail\"")).expect("write");
        assert!(matches!(log.read(), Err(LogError::Chain { line: 2, .. })));
    }
}

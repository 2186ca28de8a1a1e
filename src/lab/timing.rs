//! Time per step, computed from the progress log (its events carry their times).
//!
//! A step becomes current when the attempt starts (the first step) or when the last of
//! the steps before it is done; it is done at the first check run after which every one
//! of its checks has passed (a later run that fails again does not undo the time). A
//! step done out of order counts from the latest completion of the steps before it
//! that were done, so its time is never negative. The first step not done yet is the
//! current one: its time runs until `now` and is marked open.
//!
//! One definition, used by `vpclab lab status`, the signed report, `vpclab grade` and
//! the instructor's dashboard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::progress::{Event, EventKind};
use super::resolve::Lab;

/// One step's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTime {
    pub step: String,
    /// When the step became current (ms since the Unix epoch).
    pub started_ms: Option<i64>,
    /// When it was first done.
    pub done_ms: Option<i64>,
    /// Milliseconds spent: from current to done, or to `now` while the step is open.
    pub spent_ms: Option<i64>,
    /// The current step, not done yet: `spent_ms` is still growing.
    pub open: bool,
}

impl StepTime {
    /// Whole seconds spent, if the step was reached.
    pub fn seconds(&self) -> Option<i64> {
        self.spent_ms.map(|ms| ms / 1000)
    }
}

/// Each step's time in the attempt begun by the last `start` of `events` (every step
/// unreached after a `reset`), with `now_ms` closing the current step.
pub fn step_times(events: &[Event], lab: &Lab, now_ms: i64) -> Vec<StepTime> {
    let begin = events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::Start | EventKind::Reset))
        .filter(|&i| events[i].kind == EventKind::Start);
    let mut done: Vec<Option<i64>> = vec![None; lab.steps.len()];
    let mut started_ms = None;
    if let Some(b) = begin {
        started_ms = Some(events[b].at_ms);
        // The latest status of each check, per step, as the log replays.
        let mut latest: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
        for e in &events[b + 1..] {
            if e.kind != EventKind::Check {
                continue;
            }
            let Some(step) = e.step.as_deref() else {
                continue;
            };
            let l = latest.entry(step).or_default();
            for r in e.detail["results"].as_array().into_iter().flatten() {
                if let Some(id) = r["id"].as_str() {
                    l.insert(id, r["status"] == "pass");
                }
            }
            for (i, s) in lab.steps.iter().enumerate() {
                if done[i].is_none()
                    && s.id == step
                    && s.checks
                        .iter()
                        .all(|c| l.get(c.id.as_str()).copied().unwrap_or(false))
                {
                    done[i] = Some(e.at_ms);
                }
            }
        }
    }
    let current = done.iter().position(Option::is_none);
    let mut out = Vec::with_capacity(lab.steps.len());
    for (i, s) in lab.steps.iter().enumerate() {
        let since = started_ms.map(|start| {
            done[..i]
                .iter()
                .flatten()
                .copied()
                .filter(|t| done[i].is_none_or(|d| *t <= d))
                .fold(start, i64::max)
        });
        let (started, spent, open) = match (since, done[i]) {
            (Some(t), Some(d)) => (Some(t), Some((d - t).max(0)), false),
            (Some(t), None) if current == Some(i) => (Some(t), Some((now_ms - t).max(0)), true),
            _ => (None, None, false),
        };
        out.push(StepTime {
            step: s.id.clone(),
            started_ms: started,
            done_ms: done[i],
            spent_ms: spent,
            open,
        });
    }
    out
}

/// `42s`, `3m05s`, `1h02m`: a duration as a learner reads it.
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A three-step lab (one check per step, `a`, `b`, `c`) resolved from a folder.
    fn lab() -> (tempfile::TempDir, Lab) {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("timed");
        std::fs::create_dir_all(dir.join("steps")).expect("mkdir");
        std::fs::create_dir_all(dir.join("solution")).expect("mkdir");
        let mut toml = String::from(
            "id = \"timed\"\nversion = 1\ntitle = \"Timed\"\nsummary = \"three steps\"\n",
        );
        for (n, id) in ["a", "b", "c"].iter().enumerate() {
            let page = format!("steps/0{n}-{id}.md");
            let solve = format!("solution/0{n}-{id}.sh");
            std::fs::write(dir.join(&page), "x\n").expect("write");
            std::fs::write(dir.join(&solve), "true\n").expect("write");
            toml.push_str(&format!(
                "\n[[steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nbody = \"{page}\"\nsolve = \"{solve}\"\n\n[[steps.checks]]\nid = \"{id}-ok\"\nkind = \"file\"\npath = \"{id}.txt\"\n"
            ));
        }
        std::fs::write(dir.join("lab.toml"), toml).expect("write");
        let lab = crate::lab::resolve::load(&dir, "ann", "").expect("resolves");
        (d, lab)
    }

    fn ev(at_s: i64, kind: EventKind, step: Option<&str>, pass: bool) -> Event {
        let detail = match (kind.clone(), step) {
            (EventKind::Check, Some(s)) => json!({"results": [{
                "id": format!("{s}-ok"), "status": if pass { "pass" } else { "fail" }, "points": 1
            }]}),
            _ => json!({}),
        };
        Event {
            seq: 0,
            at_ms: at_s * 1000,
            learner: "ann".into(),
            lab: "timed".into(),
            kind,
            step: step.map(str::to_string),
            detail,
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn each_step_counts_from_the_previous_completion_and_the_current_one_runs_on() {
        let (_d, lab) = lab();
        let events = [
            ev(100, EventKind::Start, None, false),
            ev(130, EventKind::Check, Some("a"), false),
            ev(160, EventKind::Check, Some("a"), true),
            ev(200, EventKind::Hint, Some("b"), false),
            ev(400, EventKind::Check, Some("b"), true),
            // b fails again later: its time stays what it took the first time.
            ev(420, EventKind::Check, Some("b"), false),
        ];
        let t = step_times(&events, &lab, 1_000_000);
        let secs: Vec<Option<i64>> = t.iter().map(StepTime::seconds).collect();
        assert_eq!(secs, [Some(60), Some(240), Some(1_000_000 / 1000 - 400)]);
        assert_eq!(
            t.iter().map(|s| s.open).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(t[1].started_ms, Some(160_000));
        assert_eq!(t[1].done_ms, Some(400_000));
    }

    #[test]
    fn a_step_done_out_of_order_and_a_restart_are_counted_sensibly() {
        let (_d, lab) = lab();
        // c is done before b: c counts from a's completion, b from a's to its own.
        let events = [
            ev(0, EventKind::Start, None, false),
            ev(10, EventKind::Check, Some("a"), true),
            ev(25, EventKind::Check, Some("c"), true),
            ev(70, EventKind::Check, Some("b"), true),
        ];
        let t = step_times(&events, &lab, 100_000);
        let secs: Vec<Option<i64>> = t.iter().map(StepTime::seconds).collect();
        assert_eq!(secs, [Some(10), Some(60), Some(15)]);
        assert!(t.iter().all(|s| !s.open));
        // A new start forgets the old attempt; a reset leaves no step reached.
        let mut again = events.to_vec();
        again.push(ev(500, EventKind::Start, None, false));
        let t = step_times(&again, &lab, 530_000);
        assert_eq!(t[0].seconds(), Some(30));
        assert!(t[0].open && t[1].spent_ms.is_none());
        again.push(ev(600, EventKind::Reset, None, false));
        assert!(
            step_times(&again, &lab, 700_000)
                .iter()
                .all(|s| s.spent_ms.is_none())
        );
    }

    #[test]
    fn durations_read_as_a_learner_writes_them() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(185), "3m05s");
        assert_eq!(human(3720), "1h02m");
    }
}

//! `vpclab grade FILE…`: the instructor's side of lab reports. Each report is opened
//! (signature, trusted key, hash chain: a report that does not verify is refused with the
//! reason), the learner's final state is rebuilt in a scratch world (a daemon on a
//! temporary state directory, loopback only, stopped afterwards), and every check of
//! every step runs again there. The instructor trusts the re-run, not the learner's
//! claims: the table shows both.
//!
//! The scratch world holds the learner's resources (the report's rows) and, inside each
//! instance that was running, what the learner changed on its disk (files, packages,
//! services): `exec` and `http` checks see work done by hand over SSH.
//!
//! What cannot be re-run is taken from the report's hash-chained log and marked
//! "recorded": `file` and `ssh` checks observe the learner's own computer (their key
//! file), which the instructor does not have. Quiz answers are replayed from the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::lab::{Style, call, find_lab, labs_root};
use crate::cli::outln;
use crate::lab::progress::{self, Attempt};
use crate::lab::report::{self, ReportBody};
use crate::lab::resolve::{Check, CheckKind, Lab};

#[derive(Debug, Args)]
pub struct GradeArgs {
    /// Report files (`vpclab lab report --out FILE`), or archives of reports (the class
    /// dashboard's `reports.json`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A course folder: its labs, its secret, and only reports signed with its key.
    #[arg(long, value_name = "COURSE_DIR", conflicts_with = "labs")]
    pub course: Option<PathBuf>,
    /// The folder of labs (as for `vpclab lab`).
    #[arg(long)]
    pub labs: Option<PathBuf>,
    /// Accept only reports signed by this key: 64 hex digits of a public key, or a key
    /// file (the course's `report-key`). Repeatable. Without it, any valid signature.
    #[arg(long, value_name = "KEY")]
    pub trust: Vec<String>,
    /// Print comma-separated values (one line per report).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One check as re-graded.
#[derive(Debug, Serialize)]
struct CheckGrade {
    id: String,
    status: String,
    points: u32,
    max_points: u32,
    message: String,
    /// `re-run` in the scratch world, or `recorded` (from the learner's log).
    source: &'static str,
}

#[derive(Debug, Serialize)]
struct StepGrade {
    id: String,
    passed: bool,
    points: u32,
    max_points: u32,
    /// Seconds the learner spent on the step, from the report's events (up to the
    /// report's time for the step they were on).
    seconds: Option<i64>,
    /// The learner was still on this step when the report was made.
    open: bool,
    checks: Vec<CheckGrade>,
}

/// One report's outcome.
#[derive(Debug, Serialize)]
struct Graded {
    file: PathBuf,
    learner: String,
    lab: String,
    version: u32,
    seed: u64,
    points: u32,
    max_points: u32,
    percent: u32,
    pass_percent: u32,
    passed: bool,
    /// The points the learner's own log claims.
    claimed_points: u32,
    /// Seconds spent on the steps in all.
    seconds: i64,
    steps: Vec<StepGrade>,
    /// Instance state the report did not carry (the re-run could not see it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// The reports in a file: the file itself, or each report of an archive, named
/// `FILE#N`. A file that cannot be read is one refused entry.
fn expand(file: &Path) -> Vec<(PathBuf, anyhow::Result<String>)> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            return vec![(
                file.to_path_buf(),
                Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
            )];
        }
    };
    let archive = serde_json::from_str::<Value>(&text)
        .ok()
        .filter(|v| v["format"] == crate::class::dashboard::ARCHIVE_FORMAT);
    match archive {
        Some(v) => v["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                (
                    PathBuf::from(format!("{}#{}", file.display(), i + 1)),
                    Ok(r.to_string()),
                )
            })
            .collect(),
        None => vec![(file.to_path_buf(), Ok(text))],
    }
}

pub fn run(args: GradeArgs) -> anyhow::Result<ExitCode> {
    let course = args
        .course
        .as_deref()
        .map(crate::class::Course::open_for_grading)
        .transpose()?;
    let root = match &course {
        Some(c) => c.dir.join("labs"),
        None => labs_root(args.labs.as_deref())?,
    };
    let mut trusted = args
        .trust
        .iter()
        .map(|t| report::trusted_key(t).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let secret = match &course {
        Some(c) => {
            trusted.push(c.report_key().verifying_key());
            c.file.secret.clone()
        }
        None => std::env::var("VPCLAB_COURSE_SECRET").unwrap_or_default(),
    };
    let mut outcomes: Vec<(PathBuf, Result<Graded, String>)> = Vec::new();
    for (file, text) in args.files.iter().flat_map(|f| expand(f)) {
        let spin = super::lab::spinner(
            &format!("re-grading {}", file.display()),
            args.json || args.csv,
        );
        let r = text
            .and_then(|text| grade_one(&file, &text, &root, &trusted, &secret))
            .map_err(|e| format!("{e:#}"));
        if let Some(s) = spin {
            s.finish_and_clear();
        }
        outcomes.push((file.clone(), r));
    }
    let refused = outcomes.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let v: Vec<Value> = outcomes
            .iter()
            .map(|(f, r)| match r {
                Ok(g) => serde_json::to_value(g).unwrap_or(Value::Null),
                Err(e) => json!({"file": f, "refused": e}),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else if args.csv {
        print_csv(&outcomes)?;
    } else {
        print_table(&outcomes)?;
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn grade_one(
    file: &Path,
    text: &str,
    root: &Path,
    trusted: &[ed25519_dalek::VerifyingKey],
    secret: &str,
) -> anyhow::Result<Graded> {
    let body = report::open(text, trusted).map_err(|e| anyhow::anyhow!("refused: {e}"))?;
    let dir = find_lab(root, &body.lab)?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let lab = crate::lab::resolve::load(&dir, &body.learner, secret).map_err(|errs| {
        anyhow::anyhow!(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    if lab.version != body.version {
        anyhow::bail!(
            "the report is for version {} of {}, the lab here is version {}",
            body.version,
            body.lab,
            lab.version
        );
    }
    if lab.seed != body.seed {
        anyhow::bail!(
            "the report's seed {} is not the one this course gives {} ({}): a different course secret?",
            body.seed,
            body.learner,
            lab.seed
        );
    }
    let attempt = progress::current(&body.events).context("the report has no attempt")?;
    let rerun = rerun_in_scratch_world(&body, &dir, &lab, &attempt, secret)?;
    let times = crate::lab::timing::step_times(&body.events, &lab, body.created_ms);
    let mut steps = Vec::new();
    for ((step, results), time) in lab.steps.iter().zip(rerun).zip(&times) {
        let mut checks = Vec::new();
        for c in &step.checks {
            let g = if on_learners_computer(c) {
                let (status, points) = attempt
                    .latest
                    .get(&step.id)
                    .and_then(|l| l.get(&c.id))
                    .cloned()
                    .unwrap_or_else(|| ("fail".to_string(), 0));
                CheckGrade {
                    id: c.id.clone(),
                    points: if status == "pass" { points } else { 0 },
                    status,
                    max_points: c.points,
                    message: "as recorded on the learner's computer (a file or their SSH key)"
                        .into(),
                    source: "recorded",
                }
            } else {
                let r = results
                    .iter()
                    .find(|r| r["id"] == c.id.as_str())
                    .cloned()
                    .unwrap_or(Value::Null);
                CheckGrade {
                    id: c.id.clone(),
                    status: r["status"].as_str().unwrap_or("error").to_string(),
                    points: u32::try_from(r["points"].as_u64().unwrap_or(0)).unwrap_or(0),
                    max_points: c.points,
                    message: r["message"].as_str().unwrap_or("").to_string(),
                    source: "re-run",
                }
            };
            checks.push(g);
        }
        // A skipped step earns nothing, as in the learner's own score.
        let skipped = attempt.skipped.contains(&step.id);
        let points = if skipped {
            0
        } else {
            checks.iter().map(|c| c.points).sum()
        };
        steps.push(StepGrade {
            id: step.id.clone(),
            passed: checks.iter().all(|c| c.status == "pass"),
            points,
            max_points: checks.iter().map(|c| c.max_points).sum(),
            seconds: time.seconds(),
            open: time.open,
            checks,
        });
    }
    let points: u32 = steps.iter().map(|s| s.points).sum();
    let max_points: u32 = steps.iter().map(|s| s.max_points).sum();
    let percent = (points * 100).checked_div(max_points).unwrap_or(100);
    let claimed_points = claimed(&attempt, &lab);
    Ok(Graded {
        file: file.to_path_buf(),
        learner: body.learner.clone(),
        lab: body.lab.clone(),
        version: body.version,
        seed: body.seed,
        points,
        max_points,
        percent,
        pass_percent: lab.pass_percent,
        passed: percent >= lab.pass_percent,
        claimed_points,
        seconds: steps.iter().filter_map(|s| s.seconds).sum(),
        steps,
        notes: body.instance_notes.clone(),
    })
}

/// Whether a check looks at the learner's own computer (a file, or an SSH login with
/// their key file), which a re-grade cannot see.
fn on_learners_computer(c: &Check) -> bool {
    match &c.kind {
        CheckKind::File { .. } | CheckKind::Ssh { .. } => true,
        CheckKind::All(list) | CheckKind::Any(list) => list.iter().any(on_learners_computer),
        CheckKind::Not(inner) => on_learners_computer(inner),
        _ => false,
    }
}

/// The points of the learner's own latest results.
fn claimed(a: &Attempt, lab: &Lab) -> u32 {
    lab.steps
        .iter()
        .filter(|s| !a.skipped.contains(&s.id))
        .flat_map(|s| {
            s.checks.iter().filter_map(|c| {
                a.latest
                    .get(&s.id)
                    .and_then(|l| l.get(&c.id))
                    .filter(|(st, _)| st == "pass")
                    .map(|(_, p)| *p)
            })
        })
        .sum()
}

/// Rebuilds the report's state in a scratch daemon and runs every step's checks there;
/// the results of each step, in order.
fn rerun_in_scratch_world(
    body: &ReportBody,
    dir: &Path,
    lab: &Lab,
    attempt: &Attempt,
    secret: &str,
) -> anyhow::Result<Vec<Vec<Value>>> {
    use crate::daemon::{Background, DaemonConfig, StateDir};
    use crate::model::store::{Row, Store};
    let state = tempfile::tempdir().context("cannot create a scratch state directory")?;
    let work = tempfile::tempdir().context("cannot create a scratch folder")?;
    let sd = StateDir::new(state.path());
    // The scratch daemon answers any credentials as its default account: the learner's
    // rows become that account's world.
    let rows: Vec<Row> = body
        .state
        .iter()
        .map(|r| Row {
            account: crate::model::DEFAULT_ACCOUNT.to_string(),
            kind: r.kind.clone(),
            id: r.id.clone(),
            body: match &r.body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        })
        .collect();
    Store::open(&sd.store())
        .and_then(|mut s| s.insert_rows(&rows))
        .context("cannot write the learner's state into the scratch world")?;
    // What the learner did inside each instance: its disk boots with those changes.
    for row in &body.instances {
        crate::world::write_disk_overlay(
            &sd.instances_dir(),
            crate::model::DEFAULT_ACCOUNT,
            &row.instance_id,
            &row.disk,
        )
        .with_context(|| {
            format!(
                "cannot write instance {}'s disk into the scratch world",
                row.instance_id
            )
        })?;
    }
    let daemon = Background::start(DaemonConfig::for_tests(sd))?;
    let endpoint = daemon.url();
    let dir_text = dir.to_string_lossy().to_string();
    let cwd = work.path().to_string_lossy().to_string();
    let learner = body.learner.as_str();
    let rt = daemon.runtime();
    let out = rt.block_on(async {
        call(
            &endpoint,
            "start",
            &[
                ("learner", learner),
                ("dir", &dir_text),
                ("region", &body.region),
                ("secret", secret),
            ],
        )
        .await?;
        for (check, text) in &attempt.answers {
            call(
                &endpoint,
                "answer",
                &[
                    ("learner", learner),
                    ("check", check),
                    ("text", text),
                    ("secret", secret),
                ],
            )
            .await?;
        }
        let mut out = Vec::new();
        for step in &lab.steps {
            let v = call(
                &endpoint,
                "check",
                &[
                    ("learner", learner),
                    ("step", &step.id),
                    ("cwd", &cwd),
                    ("secret", secret),
                ],
            )
            .await?;
            out.push(v["results"].as_array().cloned().unwrap_or_default());
        }
        anyhow::Ok(out)
    });
    daemon.stop()?;
    out
}

fn print_table(outcomes: &[(PathBuf, Result<Graded, String>)]) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let style = Style {
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    outln!(
        "{:<16} {:<18} {:>9} {:>6} {:>8} {:>7}  steps (time on each)",
        "learner",
        "lab",
        "points",
        "%",
        "claimed",
        "time"
    )?;
    for (file, r) in outcomes {
        match r {
            Ok(g) => {
                let steps: Vec<String> = g
                    .steps
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}{}",
                            style.mark(if s.passed { "pass" } else { "fail" }),
                            s.id,
                            step_time(s).map(|t| format!(" ({t})")).unwrap_or_default()
                        )
                    })
                    .collect();
                outln!(
                    "{:<16} {:<18} {:>9} {:>5}% {:>8} {:>7}  {}{}",
                    g.learner,
                    g.lab,
                    format!("{}/{}", g.points, g.max_points),
                    g.percent,
                    g.claimed_points,
                    crate::lab::timing::human(g.seconds),
                    steps.join("  "),
                    if g.passed {
                        ""
                    } else {
                        "  (below the pass mark)"
                    }
                )?;
            }
            Err(e) => outln!("{} {}: {e}", style.mark("fail"), file.display())?,
        }
    }
    for (_, r) in outcomes {
        if let Ok(g) = r {
            for n in &g.notes {
                outln!("note: {}: {n}", g.learner)?;
            }
        }
    }
    Ok(())
}

/// A step's time as the table and CSV show it: `3m05s`, with `+` while the learner was
/// still on it.
fn step_time(s: &StepGrade) -> Option<String> {
    let t = crate::lab::timing::human(s.seconds?);
    Some(if s.open { format!("{t}+") } else { t })
}

fn print_csv(outcomes: &[(PathBuf, Result<Graded, String>)]) -> anyhow::Result<()> {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    outln!(
        "file,learner,lab,version,seed,points,max_points,percent,passed,claimed_points,failed_steps,seconds,step_seconds,refused"
    )?;
    for (file, r) in outcomes {
        let f = field(&file.to_string_lossy());
        match r {
            Ok(g) => {
                let failed: Vec<&str> = g
                    .steps
                    .iter()
                    .filter(|s| !s.passed)
                    .map(|s| s.id.as_str())
                    .collect();
                // `step=seconds` pairs, in step order; `+` marks the step still open.
                let times: Vec<String> = g
                    .steps
                    .iter()
                    .filter_map(|s| {
                        let secs = s.seconds?;
                        Some(format!("{}={secs}{}", s.id, if s.open { "+" } else { "" }))
                    })
                    .collect();
                outln!(
                    "{f},{},{},{},{},{},{},{},{},{},{},{},{},",
                    field(&g.learner),
                    field(&g.lab),
                    g.version,
                    g.seed,
                    g.points,
                    g.max_points,
                    g.percent,
                    g.passed,
                    g.claimed_points,
                    field(&failed.join(" ")),
                    g.seconds,
                    field(&times.join(" "))
                )?;
            }
            Err(e) => outln!("{f},,,,,,,,,,,,,{}", field(e))?,
        }
    }
    Ok(())
}

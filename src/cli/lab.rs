//! `vpclab lab …`: guided labs that grade themselves. The running daemon does the
//! grading (it owns the world the checks observe) through `/_vpclab/lab/…` on its API
//! port; this module finds lab folders, talks to it, and prints ✓/✗ per check (or JSON
//! with `--json`). `vpclab lab test` starts its own daemon per lab and proves each
//! step's checks fail before and pass after its reference solution.
//!
//! Labs are found in `--labs DIR`, then `$VPCLAB_LABS`, then a `labs/` folder in the
//! current directory or one of its parents, then the `labs/` of the source tree.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cli::outln;

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
    /// The folder of labs (default: $VPCLAB_LABS, ./labs or a parent's, the source tree's).
    #[arg(long, global = true)]
    pub labs: Option<PathBuf>,
    /// The vpclab endpoint (default: $VPCLAB_ENDPOINT, $AWS_ENDPOINT_URL, http://127.0.0.1:4566).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Your learner id (default: $VPCLAB_LEARNER, $USER).
    #[arg(long, global = true)]
    pub learner: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The labs of the curriculum.
    List,
    /// Start LAB (from step 1) and show its first step.
    Start { lab: String },
    /// The step table of your current lab: done, current, points.
    Status,
    /// Run the checks of STEP (default: the current step) and record the result.
    Check { step: Option<String> },
    /// Hints for the current step (more appear after more attempts).
    Hint,
    /// Answer the quiz check CHECK.
    Answer { check: String, text: String },
    /// Skip the current step: run its reference solution, then check it. Practice mode
    /// only; a skipped step earns no points.
    Skip,
    /// Forget the progress of your current lab (your AWS resources stay).
    Reset,
    /// Write your signed report (learner, lab, seed, every event, your world's final
    /// state) for an instructor's `vpclab grade`.
    Report {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check lab files: syntax, references, parameters, pages and solutions.
    Lint {
        #[arg(value_name = "LAB")]
        ids: Vec<String>,
    },
    /// For each lab, in a fresh world: each step's checks fail, its solution runs, its
    /// checks pass; the lab ends at 100%.
    Test {
        #[arg(value_name = "LAB")]
        ids: Vec<String>,
        /// How many learner seeds to test each lab with.
        #[arg(long, default_value_t = 1)]
        seeds: u32,
    },
}

/// The folder of labs, in the documented order.
pub(crate) fn labs_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(f) = flag {
        return Ok(f.to_path_buf());
    }
    if let Ok(v) = std::env::var("VPCLAB_LABS")
        && !v.is_empty()
    {
        return Ok(PathBuf::from(v));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    for dir in cwd.ancestors() {
        let candidate = dir.join("labs");
        if candidate.join(".").is_dir() && has_labs(&candidate) {
            return Ok(candidate);
        }
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    if built_in.is_dir() {
        return Ok(built_in);
    }
    bail!("no labs folder found (pass --labs DIR or set VPCLAB_LABS)")
}

fn has_labs(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().any(|e| e.path().join("lab.toml").is_file()))
        .unwrap_or(false)
}

pub(crate) use crate::lab::{find_lab, lab_dirs};

fn learner_id(flag: Option<&str>) -> String {
    flag.filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(crate::lab::default_learner)
}

fn region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".to_string())
}

/// One lab operation against the daemon (`/_vpclab/lab/OP` with `params`, signed with
/// the environment's credentials): its JSON answer, or its error.
pub async fn call(endpoint: &str, op: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    // A secret passed by the caller (a re-grade of a course's report) wins.
    if !params.iter().any(|(k, _)| *k == "secret")
        && let Ok(secret) = std::env::var("VPCLAB_COURSE_SECRET")
    {
        q.append_pair("secret", &secret);
    }
    let query = q.finish();
    // SigV4 wants the canonical query with `%20`, never `+`.
    let query = query.replace('+', "%20");
    let (sock, status, rest) =
        super::connect::request(endpoint, &format!("/_vpclab/lab/{op}"), &query, false).await?;
    let text = super::connect::body(sock, rest).await;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("vpclab answered {status} with: {text}"))?;
    if status != 200 {
        bail!(
            "{}",
            v["error"].as_str().unwrap_or("the lab operation failed")
        );
    }
    Ok(v)
}

pub(crate) struct Style {
    pub(crate) colour: bool,
}

impl Style {
    pub(crate) fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(crate) fn mark(&self, status: &str) -> String {
        match status {
            "pass" => self.paint("32", "✓"),
            "fail" => self.paint("31", "✗"),
            _ => self.paint("33", "!"),
        }
    }
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let style = Style {
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    match &args.command {
        LabCommand::List => return list(&args),
        LabCommand::Lint { ids } => return lint(&args, ids),
        LabCommand::Test { ids, seeds } => return test(&args, ids, *seeds, &style),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let endpoint = super::connect::endpoint(args.endpoint.as_deref());
    let learner = learner_id(args.learner.as_deref());
    let l = learner.as_str();
    let probing = match &args.command {
        LabCommand::Check { .. } => Some("running the checks"),
        LabCommand::Skip => Some("running the step's solution, then its checks"),
        _ => None,
    };
    let spin = probing.and_then(|m| spinner(m, args.json));
    let v = rt.block_on(async {
        match &args.command {
            LabCommand::Start { lab } => {
                let dir = find_lab(&labs_root(args.labs.as_deref())?, lab)?;
                let dir = dir.canonicalize().unwrap_or(dir);
                let dir = dir.to_string_lossy();
                call(
                    &endpoint,
                    "start",
                    &[("learner", l), ("dir", &dir), ("region", &region())],
                )
                .await
            }
            LabCommand::Status => call(&endpoint, "status", &[("learner", l)]).await,
            LabCommand::Check { step } => {
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                let cwd = cwd.to_string_lossy();
                let step = step.clone().unwrap_or_default();
                call(
                    &endpoint,
                    "check",
                    &[("learner", l), ("step", &step), ("cwd", &cwd)],
                )
                .await
            }
            LabCommand::Hint => call(&endpoint, "hint", &[("learner", l)]).await,
            LabCommand::Answer { check, text } => {
                call(
                    &endpoint,
                    "answer",
                    &[("learner", l), ("check", check), ("text", text)],
                )
                .await
            }
            LabCommand::Reset => call(&endpoint, "reset", &[("learner", l)]).await,
            LabCommand::Report { out } => {
                let report = call(&endpoint, "report", &[("learner", l)]).await?;
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(out, format!("{text}\n"))
                    .with_context(|| format!("cannot write {}", out.display()))?;
                Ok(serde_json::json!({
                    "written": out,
                    "learner": report["body"]["learner"],
                    "lab": report["body"]["lab"],
                    "events": report["body"]["events"].as_array().map_or(0, Vec::len),
                    "resources": report["body"]["state"].as_array().map_or(0, Vec::len),
                    "instances": report["body"]["instances"].as_array().map_or(0, Vec::len),
                    "instance_notes": report["body"]["instance_notes"].as_array().cloned().unwrap_or_default(),
                    "public_key": report["public_key"],
                }))
            }
            LabCommand::Skip => {
                let skipped = call(&endpoint, "skip", &[("learner", l)]).await?;
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                let script = PathBuf::from(skipped["solve"].as_str().unwrap_or_default());
                let step = skipped["step"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                // The solution runs in the learner's own environment, like the setup.
                run_script(&script, &cwd, None, l, &skipped["params"])
                    .with_context(|| format!("step {step}: the reference solution failed"))?;
                let cwd = cwd.to_string_lossy();
                let checked = call(
                    &endpoint,
                    "check",
                    &[("learner", l), ("step", &step), ("cwd", &cwd)],
                )
                .await?;
                Ok(serde_json::json!({"skipped": skipped, "check": checked}))
            }
            LabCommand::List | LabCommand::Lint { .. } | LabCommand::Test { .. } => {
                unreachable!("handled above")
            }
        }
    });
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    let v = v?;
    if let LabCommand::Start { .. } = &args.command {
        // The starting world: built in the learner's own environment (their credentials
        // and endpoint), in the current folder.
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        for a in v["setup"].as_array().into_iter().flatten() {
            if !args.json {
                outln!("setting up: {}", a["description"].as_str().unwrap_or(""))?;
            }
            let script = PathBuf::from(a["run"].as_str().unwrap_or_default());
            run_script(&script, &cwd, None, l, &v["params"]).context("the lab's setup failed")?;
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &args.command {
        LabCommand::Start { .. } => {
            outln!(
                "{} — {}",
                v["title"].as_str().unwrap_or(""),
                v["summary"].as_str().unwrap_or("")
            )?;
            outln!()?;
            print_step(&v["step"])?;
        }
        LabCommand::Status => print_status(&v, &style)?,
        LabCommand::Check { .. } => {
            let passed = print_check(&v, &style)?;
            if !passed {
                return Ok(ExitCode::from(1));
            }
        }
        LabCommand::Skip => {
            outln!(
                "skipped step {} (its reference solution ran; no points for it)",
                v["skipped"]["step"]["id"].as_str().unwrap_or("")
            )?;
            if !print_check(&v["check"], &style)? {
                return Ok(ExitCode::from(1));
            }
        }
        LabCommand::Hint => {
            let hints = v["hints"].as_array().cloned().unwrap_or_default();
            if hints.is_empty() {
                outln!(
                    "No hint yet: run `vpclab lab check` first, or try again after another attempt."
                )?;
            }
            for h in hints {
                outln!("hint: {}", h.as_str().unwrap_or(""))?;
            }
        }
        LabCommand::Answer { check, .. } => {
            outln!("answer to {check} recorded; run `vpclab lab check`")?
        }
        LabCommand::Report { .. } => {
            outln!(
                "report of {} for {} written to {} ({} events, {} resources, {} instance disks), signed by key {}",
                v["learner"].as_str().unwrap_or(""),
                v["lab"].as_str().unwrap_or(""),
                v["written"].as_str().unwrap_or(""),
                v["events"],
                v["resources"],
                v["instances"],
                v["public_key"].as_str().unwrap_or("")
            )?;
            for note in v["instance_notes"].as_array().into_iter().flatten() {
                outln!("note: {}", note.as_str().unwrap_or(""))?;
            }
        }
        LabCommand::Reset => outln!(
            "progress of {} forgotten",
            v["reset"].as_str().unwrap_or("")
        )?,
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// A spinner on standard error while probes run, for a person at a terminal only (never
/// with `--json` or when output is piped).
pub(crate) fn spinner(message: &str, json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() || !std::io::stdout().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("{message}…"));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

/// Prints a check run: ✓/✗ per check, the score, what comes next. Returns whether every
/// check passed.
fn print_check(v: &Value, style: &Style) -> anyhow::Result<bool> {
    outln!(
        "step {}: {}",
        v["step"]["id"].as_str().unwrap_or(""),
        v["step"]["title"].as_str().unwrap_or("")
    )?;
    for r in v["results"].as_array().into_iter().flatten() {
        let status = r["status"].as_str().unwrap_or("error");
        outln!(
            "  {} {} — {}{}",
            style.mark(status),
            r["id"].as_str().unwrap_or(""),
            r["message"].as_str().unwrap_or(""),
            if status == "error" {
                " (a fault of the kit, not yours: not counted)"
            } else {
                ""
            }
        )?;
    }
    outln!(
        "score: {}/{} points ({}%)",
        v["points"],
        v["max_points"],
        v["percent"]
    )?;
    if v["completed"].as_bool() == Some(true) {
        outln!("{}", style.paint("32", "Lab complete."))?;
    } else if !v["next"].is_null() {
        outln!()?;
        print_step(&v["next"])?;
    }
    Ok(v["passed"].as_bool() == Some(true))
}

fn print_step(step: &Value) -> anyhow::Result<()> {
    outln!(
        "── step {}/{}: {} ──",
        step["index"],
        step["of"],
        step["title"].as_str().unwrap_or("")
    )?;
    outln!("{}", step["page"].as_str().unwrap_or("").trim_end())?;
    outln!()?;
    outln!("When done: vpclab lab check")?;
    Ok(())
}

fn print_status(v: &Value, style: &Style) -> anyhow::Result<()> {
    outln!(
        "{} ({})",
        v["title"].as_str().unwrap_or(""),
        v["lab"].as_str().unwrap_or("")
    )?;
    for s in v["steps"].as_array().into_iter().flatten() {
        let state = s["state"].as_str().unwrap_or("");
        let mark = match state {
            "done" => style.mark("pass"),
            "skipped" => "↷".to_string(),
            "current" => "▶".to_string(),
            _ => " ".to_string(),
        };
        // Time on the step: from when it became current to when it was done, or so far.
        let time = match s["seconds"].as_i64() {
            Some(secs) if s["timing"]["open"] == true => {
                format!("{} so far", crate::lab::timing::human(secs))
            }
            Some(secs) => crate::lab::timing::human(secs),
            None => String::new(),
        };
        outln!(
            "  {mark} {:<20} {:<40} {:>5} {}",
            s["id"].as_str().unwrap_or(""),
            s["title"].as_str().unwrap_or(""),
            format!("{}/{}", s["points"], s["max_points"]),
            time
        )?;
    }
    outln!(
        "score: {}/{} ({}%, pass at {}%), time {}{}",
        v["points"],
        v["max_points"],
        v["percent"],
        v["pass_percent"],
        crate::lab::timing::human(v["seconds"].as_i64().unwrap_or(0)),
        if v["completed"].as_bool() == Some(true) {
            " — complete"
        } else {
            ""
        }
    )?;
    Ok(())
}

fn list(args: &LabArgs) -> anyhow::Result<ExitCode> {
    let root = labs_root(args.labs.as_deref())?;
    // The learner's progress, when a daemon answers (the list works without one).
    let progress = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
        .and_then(|rt| {
            let endpoint = super::connect::endpoint(args.endpoint.as_deref());
            let learner = learner_id(args.learner.as_deref());
            rt.block_on(async {
                // Built inside the runtime: a timer needs its reactor.
                tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    call(&endpoint, "progress", &[("learner", &learner)]),
                )
                .await
            })
            .ok()?
            .ok()
        })
        .map(|v| v["labs"].clone())
        .unwrap_or(Value::Null);
    let mut rows = Vec::new();
    for d in lab_dirs(&root)? {
        match crate::lab::spec::load(&d) {
            Ok(s) => rows.push(serde_json::json!({
                "id": s.id, "title": s.title, "summary": s.summary,
                "difficulty": s.difficulty, "estimated_minutes": s.estimated_minutes,
                "steps": s.steps.len(), "dir": d,
                "progress": progress[&s.id],
            })),
            Err(e) => rows.push(serde_json::json!({"dir": d, "error": e.to_string()})),
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in rows {
        match r["error"].as_str() {
            Some(e) => outln!("  (invalid) {e}")?,
            None => {
                let p = &r["progress"];
                let progress = if p.is_null() {
                    String::new()
                } else if p["completed"] == true {
                    format!("  done, {}%", p["percent"])
                } else {
                    format!(
                        "  {}%{}",
                        p["percent"],
                        if p["current"] == true {
                            " (current)"
                        } else {
                            ""
                        }
                    )
                };
                outln!(
                    "  {:<18} {:<40} {} steps, ~{} min{progress}",
                    r["id"].as_str().unwrap_or(""),
                    r["title"].as_str().unwrap_or(""),
                    r["steps"],
                    r["estimated_minutes"]
                )?
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn selected(root: &Path, ids: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    if ids.is_empty() {
        lab_dirs(root)
    } else {
        ids.iter().map(|id| find_lab(root, id)).collect()
    }
}

fn lint(args: &LabArgs, ids: &[String]) -> anyhow::Result<ExitCode> {
    let root = labs_root(args.labs.as_deref())?;
    let known: BTreeSet<String> = lab_dirs(&root)?
        .iter()
        .filter_map(|d| crate::lab::spec::load(d).ok().map(|s| s.id))
        .collect();
    let mut problems = Vec::new();
    for d in selected(&root, ids)? {
        problems.extend(crate::lab::resolve::lint(&d, &known));
    }
    if args.json {
        let v: Vec<Value> = problems
            .iter()
            .map(|p| serde_json::json!({"file": p.file, "line": p.line, "key": p.key, "message": p.message}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for p in &problems {
            outln!("{p}")?;
        }
        if problems.is_empty() {
            outln!("every lab is valid")?;
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `vpclab lab test`: see [`test_lab`]. Prints the time of each lab (and of each seed
/// and step); with several seeds (run side by side), fails a lab whose seeds drew the
/// same parameters.
fn test(args: &LabArgs, ids: &[String], seeds: u32, style: &Style) -> anyhow::Result<ExitCode> {
    let root = labs_root(args.labs.as_deref())?;
    let mut failed = 0;
    let mut report = Vec::new();
    for dir in selected(&root, ids)? {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let lab_started = Instant::now();
        let mut drawn: Vec<(u32, Value)> = Vec::new();
        // The seeds run side by side, each in its own daemon and folders (most of a run
        // waits on the clients the solutions call); results are reported in seed order.
        let runs: Vec<(u32, f64, anyhow::Result<TestRun>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..seeds.max(1))
                .map(|seed| {
                    let dir = &dir;
                    s.spawn(move || {
                        let started = Instant::now();
                        let result = test_lab(dir, &format!("test-seed-{seed}"));
                        (seed, started.elapsed().as_secs_f64(), result)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(0..)
                .map(|(h, seed)| {
                    h.join().unwrap_or_else(|_| {
                        (
                            seed,
                            0.0,
                            Err(anyhow::anyhow!("the test run of seed {seed} panicked")),
                        )
                    })
                })
                .collect()
        });
        for (seed, secs, result) in runs {
            match result {
                Ok(run) => {
                    if !args.json {
                        for l in &run.lines {
                            outln!("    {l}")?;
                        }
                        outln!(
                            "{} {name} seed {seed}: 100% in {secs:.1} s",
                            style.mark("pass")
                        )?;
                    }
                    let has_params = run.params.as_object().is_some_and(|m| !m.is_empty());
                    let twin = drawn
                        .iter()
                        .find(|(_, p)| *p == run.params)
                        .map(|(s, _)| *s);
                    drawn.push((seed, run.params.clone()));
                    let mut row = serde_json::json!({
                        "lab": name, "seed": seed, "learner": run.learner, "ok": true,
                        "seconds": secs, "params": run.params, "steps": run.steps,
                    });
                    if has_params && let Some(other) = twin {
                        failed += 1;
                        let e = format!(
                            "seeds {other} and {seed} drew the same parameters: every learner would get the same answers"
                        );
                        if !args.json {
                            outln!("{} {name} seed {seed}: {e}", style.mark("fail"))?;
                        }
                        row["ok"] = false.into();
                        row["error"] = e.into();
                    }
                    report.push(row);
                }
                Err(e) => {
                    failed += 1;
                    if !args.json {
                        outln!(
                            "{} {name} seed {seed} ({secs:.1} s): {e:#}",
                            style.mark("fail")
                        )?;
                    }
                    report.push(serde_json::json!({"lab": name, "seed": seed, "ok": false, "seconds": secs, "error": format!("{e:#}")}));
                }
            }
        }
        if !args.json {
            outln!(
                "{name}: {} seed(s) in {:.1} s",
                seeds.max(1),
                lab_started.elapsed().as_secs_f64()
            )?;
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What one seed's test run observed: the learner's parameters and, per step, the
/// status of each check before and after the solution (the same seed gives the same).
struct TestRun {
    learner: String,
    params: Value,
    steps: Vec<Value>,
    lines: Vec<String>,
}

/// One lab for one learner in a fresh daemon: every step's checks fail first (unless
/// the step says `expect_initial = "pass"`), its solution runs, its checks pass; the
/// lab ends at 100%.
fn test_lab(dir: &Path, learner: &str) -> anyhow::Result<TestRun> {
    use crate::daemon::{Background, DaemonConfig, StateDir};
    let state = tempfile::tempdir().context("cannot create a state directory")?;
    let work = tempfile::tempdir().context("cannot create a work directory")?;
    let daemon = Background::start(DaemonConfig::for_tests(StateDir::new(state.path())))?;
    let endpoint = daemon.url();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let dir_text = dir.to_string_lossy().to_string();
    let cwd = work.path().to_string_lossy().to_string();
    let rt = daemon.runtime();
    let started = rt.block_on(call(
        &endpoint,
        "start",
        &[
            ("learner", learner),
            ("dir", &dir_text),
            ("region", "us-east-1"),
        ],
    ))?;
    let lab = crate::lab::resolve::load(&dir, learner, "").map_err(|errs| {
        anyhow::anyhow!(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    for a in started["setup"].as_array().into_iter().flatten() {
        let script = PathBuf::from(a["run"].as_str().unwrap_or_default());
        run_script(
            &script,
            work.path(),
            Some(&endpoint),
            learner,
            &started["params"],
        )
        .context("the lab's setup failed")?;
    }
    let mut lines = Vec::new();
    let mut steps = Vec::new();
    let statuses = |v: &Value| -> Vec<Value> {
        v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| serde_json::json!({"id": r["id"], "status": r["status"]}))
            .collect()
    };
    for step in &lab.steps {
        let step_started = Instant::now();
        let before = rt.block_on(call(
            &endpoint,
            "check",
            &[
                ("learner", learner),
                ("step", &step.id),
                ("cwd", &cwd),
                ("no_retry", "1"),
            ],
        ))?;
        if step.expect_initial == crate::lab::spec::Initial::Fail {
            for r in before["results"].as_array().into_iter().flatten() {
                if r["status"] != "fail" {
                    bail!(
                        "step {}: before its solution, check {} should fail but is {}: {}",
                        step.id,
                        r["id"],
                        r["status"],
                        r["message"]
                    );
                }
            }
        }
        let t = Instant::now();
        run_script(
            &step.solve,
            work.path(),
            Some(&endpoint),
            learner,
            &started["params"],
        )
        .with_context(|| format!("step {}: the solution failed", step.id))?;
        let solved = t.elapsed().as_secs_f64();
        let after = rt.block_on(call(
            &endpoint,
            "check",
            &[("learner", learner), ("step", &step.id), ("cwd", &cwd)],
        ))?;
        for r in after["results"].as_array().into_iter().flatten() {
            if r["status"] != "pass" {
                bail!(
                    "step {}: after its solution, check {} is {}: {}",
                    step.id,
                    r["id"],
                    r["status"],
                    r["message"]
                );
            }
        }
        lines.push(format!(
            "step {}: {} checks fail, then pass (solution {solved:.1} s, step {:.1} s)",
            step.id,
            step.checks.len(),
            step_started.elapsed().as_secs_f64()
        ));
        steps.push(serde_json::json!({
            "id": step.id,
            "before": statuses(&before),
            "after": statuses(&after),
        }));
    }
    let status = rt.block_on(call(&endpoint, "status", &[("learner", learner)]))?;
    if status["percent"] != 100 || status["completed"] != true {
        bail!("the lab ends at {}%, not complete", status["percent"]);
    }
    daemon.stop()?;
    Ok(TestRun {
        learner: learner.to_string(),
        params: started["params"].clone(),
        steps,
        lines,
    })
}

/// Runs a lab script (setup or reference solution) with bash in `work`, with the lab's
/// parameters as `LAB_<NAME>` variables. With `isolated` set to a daemon's endpoint
/// (`lab test`), the aws CLI is pointed at it with test credentials and no user config;
/// otherwise the learner's own environment is used.
fn run_script(
    script: &Path,
    work: &Path,
    isolated: Option<&str>,
    learner: &str,
    params: &Value,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the vpclab binary")?;
    let mut path = exe
        .parent()
        .map(|p| p.as_os_str().to_os_string())
        .unwrap_or_default();
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(script)
        .current_dir(work)
        .env("PATH", path)
        .env("VPCLAB_LEARNER", learner)
        .env("AWS_PAGER", "");
    if let Some(endpoint) = isolated {
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("VPCLAB_ENDPOINT", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", work.join(".aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", work.join(".aws-credentials"));
    }
    for (k, v) in params.as_object().into_iter().flatten() {
        cmd.env(
            format!("LAB_{}", k.to_ascii_uppercase()),
            v.as_str().unwrap_or_default(),
        );
    }
    let out = cmd.output().context("cannot run bash")?;
    if !out.status.success() {
        bail!(
            "{} exited with {}:\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Style;

    #[test]
    fn marks_are_coloured_on_a_terminal_and_plain_otherwise() {
        let tty = Style { colour: true };
        let piped = Style { colour: false };
        assert_eq!(tty.mark("pass"), "\u{1b}[32m✓\u{1b}[0m");
        assert_eq!(tty.mark("fail"), "\u{1b}[31m✗\u{1b}[0m");
        assert_eq!(piped.mark("pass"), "✓");
        assert_eq!(piped.mark("fail"), "✗");
        assert_eq!(piped.mark("error"), "!");
    }
}

//! The lab engine on the API port: `GET /_vpclab/lab/{start,status,check,hint,answer,
//! skip,report,reset,progress}`, authenticated like every API call (the caller's account is the world that is
//! graded). Answers are JSON; an error is `{"error": "…"}` with a 4xx/5xx status.
//! `vpclab lab …` is the client.
//!
//! In a classroom ([`CoursePolicy`]) the caller does not choose who they are: the learner
//! is the one the roster gives the caller's account, the course secret replaces any
//! `secret` sent, labs come from the course's own folders, and a lab the course assesses
//! runs assessed whatever its `lab.toml` says. The instructor's key may act for any
//! learner (`learner=`), in that learner's world.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::grade::{CheckResult, Observer, Status};
use super::progress::{self, Attempt, EventKind, Log};
use super::resolve::{self, Lab};
use super::spec::Mode;
use crate::api::AppState;
use crate::api::sigv4::{Identity, Principal};
use crate::world::Worlds;

/// Who is who in a course: the roster as the lab engine needs it.
pub trait Roster: Send + Sync {
    /// The learner whose world is this account.
    fn learner_of(&self, account: &str) -> Option<String>;
    /// The account of this learner.
    fn account_of(&self, learner: &str) -> Option<String>;
}

/// The rules of a classroom daemon (`vpclab up --class`).
pub struct CoursePolicy {
    /// Seeds every learner's parameters.
    pub secret: String,
    /// The course's labs by id, each with its folder.
    pub labs: BTreeMap<String, PathBuf>,
    /// Labs run in assessed mode (no hints, no skip, no solutions).
    pub assessed: BTreeSet<String>,
    pub roster: Arc<dyn Roster>,
    /// Signs every report of the course.
    pub report_key: ed25519_dalek::SigningKey,
    /// Counts progress events, so that the instructor's dashboard redraws on each one.
    pub progress: tokio::sync::watch::Sender<u64>,
    /// Where the learners' progress logs are kept (the course's store).
    pub journal: Arc<dyn progress::Journal>,
}

impl CoursePolicy {
    /// Decides who the caller acts as and rewrites the request's `learner`, `secret` and
    /// (for `start`) `dir` accordingly. Returns the account whose world is used.
    fn admit(
        &self,
        id: &Identity,
        op: &str,
        q: &mut BTreeMap<String, String>,
    ) -> Result<String, Refusal> {
        let (learner, account) = if id.principal == Principal::Instructor {
            let l = q
                .get("learner")
                .cloned()
                .ok_or_else(|| bad("the instructor acts for a learner: pass learner=NAME"))?;
            let a = self.roster.account_of(&l).ok_or_else(|| {
                Refusal(
                    StatusCode::NOT_FOUND,
                    format!("no learner {l:?} in this course"),
                )
            })?;
            (l, a)
        } else {
            let l = self.roster.learner_of(&id.account).ok_or_else(|| {
                Refusal(
                    StatusCode::FORBIDDEN,
                    "UnauthorizedOperation: this key belongs to no learner of the course".into(),
                )
            })?;
            if let Some(asked) = q.get("learner")
                && asked != &l
            {
                return Err(Refusal(
                    StatusCode::FORBIDDEN,
                    format!(
                        "UnauthorizedOperation: you are learner {l:?} and cannot act for {asked:?} (set VPCLAB_LEARNER={l})"
                    ),
                ));
            }
            (l, id.account.clone())
        };
        q.insert("learner".into(), learner);
        q.insert("secret".into(), self.secret.clone());
        if op == "start" {
            let asked = q.get("lab").cloned().or_else(|| {
                q.get("dir").and_then(|d| {
                    std::path::Path::new(d)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
            });
            let asked = asked.ok_or_else(|| bad("missing lab"))?;
            // A folder name `NN-id` names lab `id`.
            let bare = asked
                .split_once('-')
                .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
                .map_or(asked.as_str(), |(_, rest)| rest);
            let dir = self.labs.get(bare).ok_or_else(|| {
                bad(format!(
                    "lab {asked:?} is not part of this course (labs: {})",
                    self.labs.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            q.insert("dir".into(), dir.to_string_lossy().into_owned());
        }
        Ok(account)
    }
}

#[derive(Clone)]
struct LabState {
    api: AppState,
    worlds: Worlds,
    /// The key file that signs reports outside a course (created on first use).
    report_key: PathBuf,
    course: Option<Arc<CoursePolicy>>,
}

/// The lab routes, to merge into the API router. Progress is kept in the model's store.
/// `report_key` is the file of the key that signs reports (created on first use) when
/// there is no course.
pub fn router(
    api: AppState,
    worlds: Worlds,
    report_key: PathBuf,
    course: Option<Arc<CoursePolicy>>,
) -> Router {
    Router::new()
        .route("/_vpclab/lab/{op}", get(handle))
        .with_state(LabState {
            api,
            worlds,
            report_key,
            course,
        })
}

/// The lab engine called in-process (the instructor dashboard's re-grade and reports):
/// the same operations as the routes, for a given account, with no authentication.
#[derive(Clone)]
pub struct LabEngine(LabState);

impl LabEngine {
    pub fn new(
        api: AppState,
        worlds: Worlds,
        report_key: PathBuf,
        course: Option<Arc<CoursePolicy>>,
    ) -> LabEngine {
        LabEngine(LabState {
            api,
            worlds,
            report_key,
            course,
        })
    }

    /// Runs `op` in `account`'s world with these parameters (`learner` among them).
    pub async fn op(
        &self,
        op: &str,
        account: &str,
        q: &BTreeMap<String, String>,
    ) -> Result<Value, String> {
        let mut q = q.clone();
        if let Some(c) = &self.0.course {
            q.insert("secret".into(), c.secret.clone());
        }
        run_op(&self.0, op, account, &q).await.map_err(|r| r.1)
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(
        serde_json::to_vec_pretty(body).unwrap_or_default(),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A request the lab engine refuses, with the status to answer.
struct Refusal(StatusCode, String);

fn bad(m: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, m.into())
}

async fn handle(
    State(st): State<LabState>,
    axum::extract::Path(op): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let id = match st
        .api
        .authenticate(&crate::api::signed_request(&parts), b"")
    {
        Ok(id) => id,
        Err(e) => {
            return reply(
                StatusCode::FORBIDDEN,
                &json!({"error": format!("{}: {}", e.code, e.message)}),
            );
        }
    };
    let mut q: BTreeMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let account = match &st.course {
        None => id.account,
        Some(c) => match c.admit(&id, &op, &mut q) {
            Ok(a) => a,
            Err(Refusal(s, m)) => return reply(s, &json!({ "error": m })),
        },
    };
    match run_op(&st, &op, &account, &q).await {
        Ok(v) => reply(StatusCode::OK, &v),
        Err(Refusal(s, m)) => reply(s, &json!({ "error": m })),
    }
}

async fn run_op(
    st: &LabState,
    op: &str,
    account: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    let (st, account, q) = (st, account.to_string(), q);
    match op {
        "start" => start(st, q),
        "status" => status(st, q),
        "check" => check(st, &account, q).await,
        "hint" => hint(st, q),
        "answer" => answer(st, q),
        "skip" => skip(st, q),
        "report" => report(st, &account, q).await,
        "reset" => reset(st, q),
        "progress" => progress_of(st, q),
        other => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("no lab operation {other:?}"),
        )),
    }
}

fn learner(q: &BTreeMap<String, String>) -> Result<String, Refusal> {
    let l = q
        .get("learner")
        .cloned()
        .unwrap_or_else(|| "learner".into());
    if !progress::valid_learner(&l) {
        return Err(bad(format!(
            "learner id {l:?}: expected letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(l)
}

impl LabState {
    fn now_ms(&self) -> i64 {
        (self.api.clock)().0
    }

    /// Resolves a lab for a learner; a lab the course assesses is assessed.
    fn load(
        &self,
        dir: &std::path::Path,
        learner: &str,
        secret: &str,
    ) -> Result<Lab, Vec<super::spec::LabFileError>> {
        let mut lab = resolve::load(dir, learner, secret)?;
        if self
            .course
            .as_ref()
            .is_some_and(|c| c.assessed.contains(&lab.id))
        {
            lab.mode = Mode::Assessed;
        }
        Ok(lab)
    }

    fn log(&self, learner: &str) -> Log {
        match &self.course {
            Some(c) => Log::on(c.journal.clone(), learner),
            None => Log::new(self.api.control.clone(), learner),
        }
    }

    fn append(
        &self,
        learner: &str,
        lab: &str,
        kind: EventKind,
        step: Option<&str>,
        detail: Value,
    ) -> Result<Vec<progress::Event>, Refusal> {
        let events = self
            .log(learner)
            .append(self.now_ms(), learner, lab, kind, step, detail)
            .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Some(c) = &self.course {
            c.progress.send_modify(|n| *n += 1);
        }
        Ok(events)
    }

    /// The learner's current attempt and its lab, resolved again from its folder.
    fn attempt(
        &self,
        learner: &str,
        q: &BTreeMap<String, String>,
    ) -> Result<(Attempt, Lab), Refusal> {
        let events = self
            .log(learner)
            .read()
            .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
        let a = progress::current(&events).ok_or_else(|| {
            bad(format!(
                "{learner} has no lab in progress (vpclab lab start LAB)"
            ))
        })?;
        let secret = q.get("secret").map(String::as_str).unwrap_or("");
        let lab = self.load(&a.dir, learner, secret).map_err(|errs| {
            Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        Ok((a, lab))
    }
}

/// A step as the learner sees it. An assessed lab shows no solution.
fn step_json(lab: &Lab, i: usize) -> Value {
    let s = &lab.steps[i];
    let mut v = json!({
        "index": i + 1,
        "of": lab.steps.len(),
        "id": s.id,
        "title": s.title,
        "page": s.page,
        "checks": s.checks.iter().map(|c| json!({"id": c.id, "points": c.points})).collect::<Vec<_>>(),
    });
    if lab.mode == Mode::Practice {
        v["solve"] = json!(s.solve);
    }
    v
}

/// Whether every check of step `i` passed in its latest run.
pub fn step_done(a: &Attempt, lab: &Lab, i: usize) -> bool {
    let s = &lab.steps[i];
    a.latest.get(&s.id).is_some_and(|latest| {
        s.checks
            .iter()
            .all(|c| latest.get(&c.id).is_some_and(|(st, _)| st == "pass"))
    })
}

pub fn current_step(a: &Attempt, lab: &Lab) -> Option<usize> {
    (0..lab.steps.len()).find(|i| !step_done(a, lab, *i))
}

pub fn score(a: &Attempt, lab: &Lab) -> (u32, u32) {
    let mut got = 0;
    let mut max = 0;
    for s in &lab.steps {
        for c in &s.checks {
            max += c.points;
            if let Some((st, p)) = a.latest.get(&s.id).and_then(|l| l.get(&c.id))
                && st == "pass"
                && !a.skipped.contains(&s.id)
            {
                got += *p;
            }
        }
    }
    (got, max)
}

pub fn percent(got: u32, max: u32) -> u32 {
    (got * 100).checked_div(max).unwrap_or(100)
}

fn start(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let dir = PathBuf::from(q.get("dir").ok_or_else(|| bad("missing dir"))?);
    let secret = q.get("secret").map(String::as_str).unwrap_or("");
    let lab = st.load(&dir, &learner, secret).map_err(|errs| {
        bad(errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    let region = q
        .get("region")
        .cloned()
        .unwrap_or_else(|| "us-east-1".into());
    if crate::model::region::region(&region).is_none() {
        return Err(bad(format!("unknown region {region:?}")));
    }
    st.append(
        &learner,
        &lab.id,
        EventKind::Start,
        None,
        json!({"dir": dir, "region": region, "seed": lab.seed, "version": lab.version}),
    )?;
    Ok(json!({
        "learner": learner,
        "lab": lab.id,
        "title": lab.title,
        "summary": lab.summary,
        "objectives": lab.objectives,
        "seed": lab.seed,
        "params": lab.params,
        "mode": lab.mode,
        "setup": lab.setup.iter().map(|(d, p)| json!({"description": d, "run": p})).collect::<Vec<_>>(),
        "step": step_json(&lab, 0),
    }))
}

fn status(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let (a, lab) = st.attempt(&learner, q)?;
    let current = current_step(&a, &lab);
    let events = st
        .log(&learner)
        .read()
        .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
    let times = super::timing::step_times(&events, &lab, st.now_ms());
    let steps: Vec<Value> = lab
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let latest = a.latest.get(&s.id);
            let skipped = a.skipped.contains(&s.id);
            let got: u32 = s
                .checks
                .iter()
                .filter_map(|c| latest.and_then(|l| l.get(&c.id)))
                .filter(|(st, _)| st == "pass" && !skipped)
                .map(|(_, p)| *p)
                .sum();
            let max: u32 = s.checks.iter().map(|c| c.points).sum();
            json!({
                "id": s.id,
                "title": s.title,
                "state": if step_done(&a, &lab, i) { if skipped { "skipped" } else { "done" } } else if Some(i) == current { "current" } else { "todo" },
                "points": got,
                "max_points": max,
                "runs": a.runs.get(&s.id).copied().unwrap_or(0),
                "seconds": times[i].seconds(),
                "timing": times[i],
            })
        })
        .collect();
    let (got, max) = score(&a, &lab);
    let total: i64 = times.iter().filter_map(|t| t.seconds()).sum();
    Ok(json!({
        "learner": learner,
        "lab": lab.id,
        "title": lab.title,
        "params": lab.params,
        "steps": steps,
        "points": got,
        "max_points": max,
        "percent": percent(got, max),
        "pass_percent": lab.pass_percent,
        "mode": lab.mode,
        "completed": a.completed,
        "seconds": total,
        "current": current.map(|i| step_json(&lab, i)),
        "log": "verified",
    }))
}

async fn check(
    st: &LabState,
    account: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let (a, lab) = st.attempt(&learner, q)?;
    let index = match q.get("step").filter(|s| !s.is_empty()) {
        Some(s) => lab
            .steps
            .iter()
            .position(|x| &x.id == s || (x.id.len() > 3 && s.parse::<usize>().ok() == Some(0)))
            .or_else(|| s.parse::<usize>().ok().and_then(|n| n.checked_sub(1)))
            .filter(|i| *i < lab.steps.len())
            .ok_or_else(|| {
                bad(format!(
                    "lab {} has no step {s:?} (steps: {})",
                    lab.id,
                    lab.steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => current_step(&a, &lab).unwrap_or(lab.steps.len() - 1),
    };
    // Make sure the account's world exists (the first call creates its default VPC).
    {
        let env = crate::model::Env::new(a.region.clone(), (st.api.clock)())
            .with_action("vpclab:LabCheck");
        if let Err(e) = st.api.lock().read(account, &env) {
            return Err(Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {}", e.code, e.message),
            ));
        }
    }
    let control = st.api.control.clone();
    let acct = account.to_string();
    let observer = Observer {
        snapshot: Box::new(move || {
            control
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .snapshot(&acct)
        }),
        net: st.worlds.get(account),
        dns: st.worlds.cfg().dns.of(account),
        region: a.region.clone(),
        cwd: PathBuf::from(q.get("cwd").cloned().unwrap_or_else(|| "/".into())),
        answers: a.answers.clone(),
    };
    let step = &lab.steps[index];
    // `no_retry=1` reports a failing check at once (`vpclab lab test`, before a step's
    // solution runs, expects failures and need not wait for them to settle).
    let no_retry = q.get("no_retry").is_some_and(|v| v == "1");
    let mut results: Vec<CheckResult> = Vec::new();
    for c in &step.checks {
        let mut c = c.clone();
        if no_retry {
            c.retry = None;
        }
        results.push(observer.run(&c).await);
    }
    let events = st.append(
        &learner,
        &lab.id,
        EventKind::Check,
        Some(&step.id),
        json!({ "results": results }),
    )?;
    // Completion is recorded once, when the last step's checks first all pass.
    let after = progress::current(&events).unwrap_or_default();
    let (got, max) = score(&after, &lab);
    let next = current_step(&after, &lab);
    let mut completed = after.completed;
    if next.is_none() && !completed {
        st.append(
            &learner,
            &lab.id,
            EventKind::Complete,
            None,
            json!({"points": got, "max_points": max}),
        )?;
        completed = true;
    }
    let passed = results.iter().all(|r| r.status == Status::Pass);
    Ok(json!({
        "learner": learner,
        "lab": lab.id,
        "step": {"id": step.id, "title": step.title},
        "results": results,
        "passed": passed,
        "errors": results.iter().filter(|r| r.status == Status::Error).count(),
        "points": got,
        "max_points": max,
        "percent": percent(got, max),
        "completed": completed,
        "next": if passed { next.map(|i| step_json(&lab, i)) } else { None },
    }))
}

fn hint(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let (a, lab) = st.attempt(&learner, q)?;
    if lab.mode == Mode::Assessed {
        return Err(bad("this lab is assessed: no hints"));
    }
    let Some(i) = current_step(&a, &lab) else {
        return Ok(json!({"hints": [], "message": "every step is done"}));
    };
    let step = &lab.steps[i];
    let runs = a.runs.get(&step.id).copied().unwrap_or(0);
    let latest = a.latest.get(&step.id);
    let failing = |id: &str| {
        latest
            .and_then(|l| l.get(id))
            .is_none_or(|(s, _)| s != "pass")
    };
    let hints: Vec<&str> = step
        .hints
        .iter()
        .filter(|h| runs >= h.after_attempts)
        .filter(|h| h.for_check.as_deref().is_none_or(failing))
        .map(|h| h.text.as_str())
        .collect();
    st.append(
        &learner,
        &lab.id,
        EventKind::Hint,
        Some(&step.id),
        json!({ "shown": hints }),
    )?;
    Ok(json!({"step": step.id, "hints": hints}))
}

fn answer(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let (_, lab) = st.attempt(&learner, q)?;
    let check = q.get("check").ok_or_else(|| bad("missing check"))?;
    let text = q.get("text").ok_or_else(|| bad("missing text"))?;
    let step = lab
        .steps
        .iter()
        .find(|s| {
            s.checks
                .iter()
                .any(|c| &c.id == check && matches!(c.kind, resolve::CheckKind::Quiz { .. }))
        })
        .ok_or_else(|| bad(format!("lab {} has no quiz {check:?}", lab.id)))?;
    st.append(
        &learner,
        &lab.id,
        EventKind::Answer,
        Some(&step.id),
        json!({"check": check, "answer": text}),
    )?;
    Ok(json!({"recorded": true, "check": check}))
}

/// Records that the learner skips the current step and hands back its reference
/// solution for the CLI to run in the learner's environment (then it checks the step).
/// Practice mode only.
fn skip(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let (a, lab) = st.attempt(&learner, q)?;
    if lab.mode == Mode::Assessed {
        return Err(bad(
            "this lab is assessed: steps cannot be skipped (and no solution is shown)",
        ));
    }
    let Some(i) = current_step(&a, &lab) else {
        return Err(bad("every step is done: nothing to skip"));
    };
    let step = &lab.steps[i];
    st.append(
        &learner,
        &lab.id,
        EventKind::Skip,
        Some(&step.id),
        json!({ "solve": step.solve }),
    )?;
    Ok(json!({
        "learner": learner,
        "lab": lab.id,
        "step": {"id": step.id, "title": step.title},
        "solve": step.solve,
        "params": lab.params,
    }))
}

/// The learner's signed report: the lab, their seed, every event of their log and the
/// stored rows of the caller's world.
async fn report(
    st: &LabState,
    account: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    use super::report::{ReportBody, StateRow, load_or_create_key, sign};
    let internal = |m: String| Refusal(StatusCode::INTERNAL_SERVER_ERROR, m);
    let learner = learner(q)?;
    let mut events = st
        .log(&learner)
        .read()
        .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
    // `lab=ID`: the report of that lab's latest attempt (the log up to the next start).
    if let Some(id) = q.get("lab") {
        let end = progress::attempt_end(&events, id)
            .ok_or_else(|| bad(format!("{learner} never started lab {id}")))?;
        events.truncate(end);
    }
    let a = progress::current(&events)
        .ok_or_else(|| bad(format!("{learner} has no lab in progress")))?;
    let secret = q.get("secret").map(String::as_str).unwrap_or("");
    let lab = st.load(&a.dir, &learner, secret).map_err(|errs| {
        internal(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let rows = st
        .api
        .control
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .export_rows(account)
        .map_err(|e| internal(e.to_string()))?;
    let instance_ids: Vec<String> = rows
        .iter()
        .filter(|r| r.kind == "instance")
        .map(|r| r.id.clone())
        .collect();
    let (instances, instance_notes) = instance_state(st, account, &instance_ids).await;
    let state = rows
        .into_iter()
        .map(|r| StateRow {
            body: serde_json::from_str(&r.body).unwrap_or(Value::String(r.body)),
            kind: r.kind,
            id: r.id,
        })
        .collect();
    let now = st.now_ms();
    let step_times = super::timing::step_times(&events, &lab, now);
    let body = ReportBody {
        learner,
        lab: lab.id.clone(),
        version: lab.version,
        seed: lab.seed,
        region: a.region.clone(),
        account: account.to_string(),
        created_ms: now,
        events,
        state,
        step_times,
        instances,
        instance_notes,
    };
    let key = match &st.course {
        Some(c) => c.report_key.clone(),
        None => load_or_create_key(&st.report_key)
            .map_err(|e| internal(format!("the report key: {e}")))?,
    };
    let signed = sign(&body, &key).map_err(|e| internal(e.to_string()))?;
    serde_json::to_value(signed).map_err(|e| internal(e.to_string()))
}

/// What the learner changed inside each running instance of `ids`, and notes on what
/// the report leaves out. A sandboxed instance's files and services are read by its
/// agent.
async fn instance_state(
    st: &LabState,
    account: &str,
    ids: &[String],
) -> (Vec<super::report::InstanceRow>, Vec<String>) {
    use crate::instance::overlay::DiskOverlay;
    use crate::instance::sandbox::RuntimeKind;
    let Some(net) = st.worlds.get(account) else {
        return (Vec::new(), Vec::new());
    };
    if matches!(st.worlds.cfg().runtime, RuntimeKind::Sandbox { .. }) {
        let mut read = Vec::new();
        let mut notes = Vec::new();
        for id in ids {
            let (Some(agent), _) = net.sandbox_agent(id) else {
                continue;
            };
            let Some(state) = net.instance(id) else {
                continue;
            };
            match agent.disk().await {
                Ok(disk) => read.push((id.clone(), state.profile(), disk)),
                Err(e) => notes.push(format!(
                    "instance {id}: its sandbox's files could not be read ({e})"
                )),
            }
        }
        let (rows, more) = super::report::rows_of(
            read.into_iter()
                .map(|(id, profile, disk)| {
                    let make = move |left| {
                        let image = crate::instance::image::build_fs(&profile);
                        let user = profile.image.default_user();
                        DiskOverlay::from_sandbox(&image, disk, user, left)
                    };
                    (id, make)
                })
                .collect(),
        );
        notes.extend(more);
        return (rows, notes);
    }
    let live: Vec<_> = ids
        .iter()
        .filter_map(|id| net.instance(id).map(|s| (id.clone(), s)))
        .collect();
    super::report::instance_rows(&live)
}

/// The learner's progress in each lab they started (its latest attempt, unless reset):
/// points, percent, whether complete, and which lab is the current one.
fn progress_of(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let events = st
        .log(&learner)
        .read()
        .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
    let secret = q.get("secret").map(String::as_str).unwrap_or("");
    let current = progress::current(&events).map(|a| a.lab);
    let ids: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Start)
        .map(|e| e.lab.as_str())
        .collect();
    let mut labs = serde_json::Map::new();
    for id in ids {
        let Some(end) = progress::attempt_end(&events, id) else {
            continue;
        };
        if events.get(end).is_some_and(|e| e.kind == EventKind::Reset) {
            continue;
        }
        let Some(a) = progress::current(&events[..end]) else {
            continue;
        };
        // A lab whose folder no longer resolves is left out rather than failing the list.
        let Ok(lab) = st.load(&a.dir, &learner, secret) else {
            continue;
        };
        let (got, max) = score(&a, &lab);
        labs.insert(
            id.to_string(),
            json!({
                "points": got,
                "max_points": max,
                "percent": percent(got, max),
                "completed": a.completed,
                "current": current.as_deref() == Some(id),
            }),
        );
    }
    Ok(json!({"learner": learner, "labs": labs}))
}

fn reset(st: &LabState, q: &BTreeMap<String, String>) -> Result<Value, Refusal> {
    let learner = learner(q)?;
    let events = st
        .log(&learner)
        .read()
        .map_err(|e| Refusal(StatusCode::CONFLICT, e.to_string()))?;
    let Some(a) = progress::current(&events) else {
        return Err(bad(format!("{learner} has no lab in progress")));
    };
    st.append(&learner, &a.lab, EventKind::Reset, None, json!({}))?;
    Ok(json!({"reset": a.lab}))
}

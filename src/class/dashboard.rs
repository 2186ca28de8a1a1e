//! The instructor's dashboard: console pages under `/console/class/`, open only to a
//! session of the instructor's account (signed in with the instructor key or password).
//!
//! Everything shown is computed from the learners' hash-chained progress logs by
//! [`summarise`] (a pure function of the events, the course and the time), so the same
//! events give the same dashboard whatever stores them. The pages:
//!
//! - `/console/class/`: a tile per learner (lab, step, score, time on the step, a
//!   "stuck" flag, hints used, the last failure), redrawn live: the lab engine counts
//!   progress events and `/console/class/events` announces each one (server-sent events).
//! - `/console/class/learner/NAME`: the event log, the VPC picture (read-only), re-grade
//!   now (the step's checks against the live world) and reset the lab.
//! - `/console/class/lab/ID`: completion histogram, the checks that fail most, average
//!   time per step.
//! - `/console/class/scores.csv` (a gradebook: one row per learner, three columns per
//!   lab), `/console/class/reports.json` (every learner's signed report of every lab they
//!   started, one archive that `vpclab grade` verifies), `/console/class/dashboard.json`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Course, RosterKeys};
use crate::console::{Console, Ctx, FormData, Nav};
use crate::lab::progress::{self, Event, EventKind};
use crate::lab::resolve::{self, Lab};
use crate::lab::service::{LabEngine, current_step, percent, score};

/// One learner's tile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tile {
    pub learner: String,
    pub display: String,
    pub account: String,
    /// The lab of the current attempt.
    pub lab: Option<String>,
    /// The current step's id, its number and the lab's step count (none when complete).
    pub step: Option<String>,
    pub step_index: Option<usize>,
    pub steps: usize,
    pub points: u32,
    pub max_points: u32,
    pub percent: u32,
    pub completed: bool,
    /// Milliseconds since the current step became current.
    pub on_step_ms: i64,
    /// Why the learner looks stuck, if they do.
    pub stuck: Option<String>,
    pub hints: u32,
    /// The message of the newest failing check.
    pub last_failure: Option<String>,
}

/// One learner's result in one lab (their latest attempt of it), a gradebook cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Score {
    pub learner: String,
    pub lab: String,
    pub points: u32,
    pub max_points: u32,
    pub percent: u32,
    pub passed: bool,
    pub completed: bool,
}

/// What the class did in one lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabStats {
    pub lab: String,
    pub title: String,
    pub started: u32,
    pub completed: u32,
    /// Learners by score: `[0–9 %, 10–19 %, …, 90–99 %, 100 %]`.
    pub histogram: [u32; 11],
    /// `step/check` and how many check runs it failed, most first.
    pub failing: Vec<(String, u32)>,
    /// Per step: its id, the average milliseconds learners took, and how many finished it.
    pub step_times: Vec<(String, i64, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dashboard {
    pub course: String,
    pub tiles: Vec<Tile>,
    pub scores: Vec<Score>,
    pub labs: Vec<LabStats>,
}

/// The learners the dashboard shows: id, display name, account.
pub struct Member {
    pub name: String,
    pub display: String,
    pub account: String,
}

/// The dashboard of these learners' logs at `now_ms`. Labs are resolved per learner from
/// the course's folders with the course secret (`course_labs`: id → folder).
pub fn summarise(
    course: &Course,
    members: &[Member],
    logs: &BTreeMap<String, Vec<Event>>,
    now_ms: i64,
) -> Dashboard {
    let empty = Vec::new();
    let mut tiles = Vec::new();
    let mut scores = Vec::new();
    let mut stats: BTreeMap<String, LabStats> = BTreeMap::new();
    for id in &course.file.labs {
        let dir = course.labs.iter().find(|(k, d)| {
            *k == id
                || d.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(id.as_str()))
        });
        let (real, title) = match dir.and_then(|(_, d)| crate::lab::spec::load(d).ok()) {
            Some(spec) => (spec.id.clone(), spec.title.clone()),
            None => (id.clone(), id.clone()),
        };
        stats.insert(
            real.clone(),
            LabStats {
                lab: real,
                title,
                started: 0,
                completed: 0,
                histogram: [0; 11],
                failing: Vec::new(),
                step_times: Vec::new(),
            },
        );
    }
    let mut failing: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut step_sums: BTreeMap<String, BTreeMap<usize, (i64, u32)>> = BTreeMap::new();
    let mut lab_cache: BTreeMap<(String, String), Option<Lab>> = BTreeMap::new();
    let mut load = |learner: &str, lab: &str| -> Option<Lab> {
        lab_cache
            .entry((learner.to_string(), lab.to_string()))
            .or_insert_with(|| {
                let dir = course.labs.get(lab)?;
                let mut l = resolve::load(dir, learner, &course.file.secret).ok()?;
                if course.file.assessed.iter().any(|a| a == lab) {
                    l.mode = crate::lab::spec::Mode::Assessed;
                }
                Some(l)
            })
            .clone()
    };
    for m in members {
        let events = logs.get(&m.name).unwrap_or(&empty);
        // Failing check runs, over every attempt.
        for e in events.iter().filter(|e| e.kind == EventKind::Check) {
            for r in e.detail["results"].as_array().into_iter().flatten() {
                if r["status"] != "pass" {
                    let key = format!(
                        "{}/{}",
                        e.step.as_deref().unwrap_or(""),
                        r["id"].as_str().unwrap_or("")
                    );
                    *failing
                        .entry(e.lab.clone())
                        .or_default()
                        .entry(key)
                        .or_default() += 1;
                }
            }
        }
        // Each lab's latest attempt: the gradebook and the per-lab figures.
        for (lab_id, st) in stats.iter_mut() {
            let Some(end) = progress::attempt_end(events, lab_id) else {
                continue;
            };
            let part = &events[..end];
            let (Some(a), Some(lab)) = (progress::current(part), load(&m.name, lab_id)) else {
                continue;
            };
            let (got, max) = score(&a, &lab);
            let pct = percent(got, max);
            st.started += 1;
            if a.completed {
                st.completed += 1;
            }
            st.histogram[usize::try_from(pct / 10).unwrap_or(10).min(10)] += 1;
            // Steps done: the time each took (`lab::timing`, as `vpclab lab status`
            // and `vpclab grade` show it).
            let sums = step_sums.entry(lab_id.clone()).or_default();
            for (j, t) in crate::lab::timing::step_times(part, &lab, now_ms)
                .iter()
                .enumerate()
            {
                if let (Some(spent), false) = (t.spent_ms, t.open) {
                    let e = sums.entry(j).or_default();
                    e.0 += spent;
                    e.1 += 1;
                }
            }
            scores.push(Score {
                learner: m.name.clone(),
                lab: lab_id.clone(),
                points: got,
                max_points: max,
                percent: pct,
                passed: pct >= lab.pass_percent,
                completed: a.completed,
            });
        }
        tiles.push(tile(course, m, events, &mut load, now_ms));
    }
    for (lab_id, st) in stats.iter_mut() {
        let mut f: Vec<(String, u32)> = failing
            .remove(lab_id)
            .unwrap_or_default()
            .into_iter()
            .collect();
        f.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        f.truncate(10);
        st.failing = f;
        if let Some(lab) = course
            .labs
            .get(lab_id)
            .and_then(|d| crate::lab::spec::load(d).ok())
        {
            let sums = step_sums.remove(lab_id).unwrap_or_default();
            st.step_times = lab
                .steps
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let (sum, n) = sums.get(&j).copied().unwrap_or((0, 0));
                    (s.id.clone(), if n == 0 { 0 } else { sum / i64::from(n) }, n)
                })
                .collect();
        }
    }
    Dashboard {
        course: course.file.name.clone(),
        tiles,
        scores,
        labs: stats.into_values().collect(),
    }
}

fn tile(
    course: &Course,
    m: &Member,
    events: &[Event],
    load: &mut impl FnMut(&str, &str) -> Option<Lab>,
    now_ms: i64,
) -> Tile {
    let mut t = Tile {
        learner: m.name.clone(),
        display: m.display.clone(),
        account: m.account.clone(),
        lab: None,
        step: None,
        step_index: None,
        steps: 0,
        points: 0,
        max_points: 0,
        percent: 0,
        completed: false,
        on_step_ms: 0,
        stuck: None,
        hints: 0,
        last_failure: None,
    };
    let Some(a) = progress::current(events) else {
        return t;
    };
    t.lab = Some(a.lab.clone());
    t.hints = a.hints_shown;
    t.completed = a.completed;
    let Some(lab) = load(&m.name, &a.lab) else {
        return t;
    };
    let (got, max) = score(&a, &lab);
    t.points = got;
    t.max_points = max;
    t.percent = percent(got, max);
    t.steps = lab.steps.len();
    let start = events
        .iter()
        .rposition(|e| e.kind == EventKind::Start)
        .unwrap_or(0);
    let attempt = &events[start..];
    t.last_failure = attempt
        .iter()
        .rev()
        .filter(|e| e.kind == EventKind::Check)
        .find_map(|e| {
            e.detail["results"]
                .as_array()?
                .iter()
                .find(|r| r["status"] != "pass")
                .map(|r| {
                    format!(
                        "{}: {}",
                        r["id"].as_str().unwrap_or(""),
                        r["message"].as_str().unwrap_or("")
                    )
                })
        });
    let times = crate::lab::timing::step_times(events, &lab, now_ms);
    let Some(i) = current_step(&a, &lab) else {
        return t;
    };
    t.step = Some(lab.steps[i].id.clone());
    t.step_index = Some(i + 1);
    // Since the step became current; a step done once and broken again since counts
    // from the latest completion.
    let since = times
        .get(i)
        .filter(|x| x.open)
        .and_then(|x| x.started_ms)
        .unwrap_or_else(|| {
            times
                .iter()
                .filter_map(|x| x.done_ms)
                .max()
                .unwrap_or(a.started_ms)
        });
    t.on_step_ms = (now_ms - since).max(0);
    // Stuck: the same check failed in each of the last M runs of this step, or no step
    // was done for N minutes.
    let step_id = &lab.steps[i].id;
    let runs: Vec<&Event> = attempt
        .iter()
        .filter(|e| e.kind == EventKind::Check && e.step.as_deref() == Some(step_id))
        .collect();
    let m_runs = usize::try_from(course.file.stuck_failures)
        .unwrap_or(3)
        .max(1);
    if runs.len() >= m_runs {
        let tail = &runs[runs.len() - m_runs..];
        let failing = |e: &Event| -> Vec<String> {
            e.detail["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["status"] != "pass")
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        };
        let first = failing(tail[0]);
        if let Some(c) = first
            .iter()
            .find(|c| tail.iter().all(|e| failing(e).contains(c)))
        {
            t.stuck = Some(format!("check {c} failed {m_runs} runs in a row"));
        }
    }
    let limit = i64::from(course.file.stuck_minutes) * 60_000;
    if t.stuck.is_none() && t.on_step_ms > limit {
        t.stuck = Some(format!(
            "no step done for {} minutes",
            t.on_step_ms / 60_000
        ));
    }
    t
}

/// The gradebook: one row per learner, three columns per lab (empty when not started),
/// from the store's gradebook cells. Labs are the course's, by id.
pub fn scores_csv(course: &Course, members: &[Member], scores: &[Score]) -> String {
    let labs: Vec<&String> = course.labs.keys().collect();
    let mut out = String::from("learner,name,account");
    for l in &labs {
        out.push_str(&format!(",{l} points,{l} max points,{l} percent"));
    }
    out.push('\n');
    for m in members {
        out.push_str(&format!(
            "{},{},{}",
            m.name,
            csv_field(&m.display),
            m.account
        ));
        for l in &labs {
            match scores.iter().find(|s| s.learner == m.name && &s.lab == *l) {
                Some(s) => out.push_str(&format!(",{},{},{}", s.points, s.max_points, s.percent)),
                None => out.push_str(",,,"),
            }
        }
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Clone)]
struct Dash {
    console: Console,
    course: Arc<Course>,
    roster: Arc<RosterKeys>,
    engine: LabEngine,
    progress: tokio::sync::watch::Receiver<u64>,
}

/// The dashboard's routes (merge before the console's, whose `/console/{*rest}` would
/// answer them otherwise).
pub fn router(
    console: Console,
    course: Course,
    roster: Arc<RosterKeys>,
    engine: LabEngine,
    progress: tokio::sync::watch::Receiver<u64>,
) -> Router {
    Router::new()
        .route("/console/class/", get(home))
        .route("/console/class/tiles", get(tiles_fragment))
        .route("/console/class/events", get(events))
        .route("/console/class/dashboard.json", get(dashboard_json))
        .route("/console/class/scores.csv", get(scores_route))
        .route("/console/class/reports.json", get(reports_route))
        .route("/console/class/learner/{name}", get(learner_page))
        .route("/console/class/learner/{name}/regrade", post(regrade))
        .route("/console/class/learner/{name}/reset", post(reset))
        .route("/console/class/lab/{id}", get(lab_page))
        .with_state(Dash {
            console,
            course: Arc::new(course),
            roster,
            engine,
            progress,
        })
}

impl Dash {
    /// The instructor's page context, or the refusal.
    #[allow(clippy::result_large_err)]
    fn instructor(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        let ctx = self.console.page_ctx(headers)?;
        if ctx.session.account != self.roster.instructor_account() {
            return Err(crate::console::refused(
                "The class dashboard is for the course's instructor: sign in with the instructor key or as `instructor`.",
            ));
        }
        Ok(ctx)
    }

    fn members(&self) -> Vec<Member> {
        self.roster
            .learners()
            .map(|l| Member {
                name: l.name.clone(),
                display: l.display.clone(),
                account: l.account.clone(),
            })
            .collect()
    }

    fn logs(&self) -> BTreeMap<String, Vec<Event>> {
        self.roster
            .learners()
            .map(|l| {
                let log = progress::Log::on(self.course.store.clone(), &l.name);
                (l.name.clone(), log.read().unwrap_or_default())
            })
            .collect()
    }

    fn dashboard(&self) -> Dashboard {
        let now = (self.console.api.clock)().0;
        summarise(&self.course, &self.members(), &self.logs(), now)
    }
}

fn minutes(ms: i64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

fn tiles_markup(d: &Dashboard) -> Markup {
    html! {
        ul.tiles #class-tiles {
            @for t in &d.tiles {
                li.tile data-learner=(t.learner) data-stuck=[t.stuck.as_ref().map(|_| "true")] {
                    h3 { a href={ "/console/class/learner/" (t.learner) } { (t.display) } }
                    @match &t.lab {
                        None => { p { "Not started" } }
                        Some(lab) => {
                            p { "Lab " b { (lab) } }
                            @if t.completed { p.done { "Complete" } }
                            @else if let (Some(step), Some(i)) = (&t.step, t.step_index) {
                                p { "Step " (i) " of " (t.steps) ": " code { (step) } " for " (minutes(t.on_step_ms)) }
                            }
                            p.score { (t.points) " / " (t.max_points) " points (" (t.percent) " %)" }
                            p { "Hints used: " (t.hints) }
                            @if let Some(s) = &t.stuck { p.alert.stuck role="status" { "Stuck: " (s) } }
                            @if let Some(f) = &t.last_failure { p.failure { "Last failure: " (f) } }
                        }
                    }
                }
            }
        }
    }
}

async fn home(State(d): State<Dash>, headers: HeaderMap) -> Response {
    let ctx = match d.instructor(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let dash = d.dashboard();
    let body = html! {
        h1 { "Class " (dash.course) }
        p #live-status data-live-events="/console/class/events" { "Live: tiles redraw as learners make progress." }
        p {
            a href="/console/class/scores.csv" download="scores.csv" { "Scores (CSV, one row per learner)" } " · "
            a href="/console/class/reports.json" download="reports.json" { "Every signed report (one archive for vpclab grade)" }
        }
        h2 { "Labs" }
        ul { @for l in &dash.labs { li { a href={ "/console/class/lab/" (l.lab) } { (l.title) } " — " (l.completed) " of " (l.started) " complete" } } }
        h2 { "Learners" }
        div data-live-src="/console/class/tiles" { (tiles_markup(&dash)) }
    };
    crate::console::page(&ctx, "Class", Nav::Home, body)
}

async fn tiles_fragment(State(d): State<Dash>, headers: HeaderMap) -> Response {
    if let Err(r) = d.instructor(&headers) {
        return r;
    }
    crate::console::fragment(tiles_markup(&d.dashboard()))
}

async fn events(State(d): State<Dash>, headers: HeaderMap) -> Response {
    if let Err(r) = d.instructor(&headers) {
        return r;
    }
    let rx = d.progress.clone();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let n = *rx.borrow_and_update();
        let ev = SseEvent::default()
            .event("change")
            .data(format!("progress event {n}"));
        Some((Ok::<SseEvent, Infallible>(ev), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn file_response(content_type: &'static str, name: &str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn dashboard_json(State(d): State<Dash>, headers: HeaderMap) -> Response {
    if let Err(r) = d.instructor(&headers) {
        return r;
    }
    file_response(
        "application/json",
        "dashboard.json",
        serde_json::to_string_pretty(&d.dashboard()).unwrap_or_default(),
    )
}

async fn scores_route(State(d): State<Dash>, headers: HeaderMap) -> Response {
    if let Err(r) = d.instructor(&headers) {
        return r;
    }
    match d.course.store.grades() {
        Ok(scores) => file_response(
            "text/csv; charset=utf-8",
            "scores.csv",
            scores_csv(&d.course, &d.members(), &scores),
        ),
        Err(e) => {
            tracing::warn!("the gradebook cannot be read: {e:#}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The gradebook cannot be read from {}.",
                    d.course.store.describe()
                ),
            )
                .into_response()
        }
    }
}

/// The archive format `vpclab grade` reads beside single reports.
pub const ARCHIVE_FORMAT: &str = "vpclab-report-archive/1";

async fn reports_route(State(d): State<Dash>, headers: HeaderMap) -> Response {
    if let Err(r) = d.instructor(&headers) {
        return r;
    }
    let dash = d.dashboard();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for s in &dash.scores {
        let Some(account) = d.roster.learner(&s.learner).map(|l| l.account.clone()) else {
            continue;
        };
        let q: BTreeMap<String, String> = [
            ("learner".to_string(), s.learner.clone()),
            ("lab".to_string(), s.lab.clone()),
        ]
        .into();
        match d.engine.op("report", &account, &q).await {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(json!({"learner": s.learner, "lab": s.lab, "error": e})),
        }
    }
    let body = json!({
        "format": ARCHIVE_FORMAT,
        "course": d.course.file.name,
        "public_key": hex::encode(d.course.report_key().verifying_key().to_bytes()),
        "reports": reports,
        "errors": errors,
    });
    file_response(
        "application/json",
        "reports.json",
        serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
}

fn learner_body(d: &Dash, name: &str, csrf: &str, regraded: Option<&Value>) -> Option<Markup> {
    let l = d.roster.learner(name)?;
    let dash = d.dashboard();
    let tile = dash.tiles.iter().find(|t| t.learner == name)?.clone();
    let log = progress::Log::on(d.course.store.clone(), name)
        .read()
        .unwrap_or_default();
    let region = progress::current(&log).map_or_else(|| "us-east-1".to_string(), |a| a.region);
    let world = d
        .console
        .api
        .control
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .snapshot(&l.account);
    let now = (d.console.api.clock)();
    let svg = world.map(|w| crate::console::topology::picture_svg(&w, &region, None, now));
    Some(html! {
        h1 { (l.display) " " small.mono { (l.name) " · account " (l.account) } }
        p { a href="/console/class/" { "Back to the class" } }
        (tiles_markup(&Dashboard { course: dash.course.clone(), tiles: vec![tile], scores: vec![], labs: vec![] }))
        div.actions {
            form method="post" action={ "/console/class/learner/" (name) "/regrade" } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Re-grade now" }
            }
            form method="post" action={ "/console/class/learner/" (name) "/reset" } {
                input type="hidden" name="csrf" value=(csrf);
                button.secondary type="submit" { "Reset the lab" }
            }
        }
        @if let Some(v) = regraded {
            section #regrade aria-label="Re-grade" {
                h2 { "Re-graded: " (v["points"]) " / " (v["max_points"]) " points" }
                ul { @for r in v["results"].as_array().into_iter().flatten() {
                    li { code { (r["id"].as_str().unwrap_or("")) } " " b { (r["status"].as_str().unwrap_or("")) } " — " (r["message"].as_str().unwrap_or("")) }
                } }
            }
        }
        h2 { "Their VPCs (read-only)" }
        @match svg {
            Some(s) => { div.picture { (maud::PreEscaped(s)) } }
            None => { p { "No world yet." } }
        }
        h2 { "Event log" }
        table {
            thead { tr { th { "#" } th { "time (ms)" } th { "lab" } th { "event" } th { "step" } th { "detail" } } }
            tbody { @for e in log.iter().rev() {
                tr {
                    td { (e.seq) } td { (e.at_ms) } td { (e.lab) } td { (format!("{:?}", e.kind)) }
                    td { (e.step.as_deref().unwrap_or("")) }
                    td.mono { (summary(e)) }
                }
            } }
        }
    })
}

fn summary(e: &Event) -> String {
    match e.kind {
        EventKind::Check => e.detail["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {}",
                    r["id"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => {
            let s = e.detail.to_string();
            s.chars().take(120).collect()
        }
    }
}

async fn learner_page(
    State(d): State<Dash>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let ctx = match d.instructor(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match learner_body(&d, &name, &ctx.csrf, None) {
        Some(b) => crate::console::page(&ctx, &name, Nav::Home, b),
        None => not_found(&ctx, &format!("No learner {name:?} in this course.")),
    }
}

fn not_found(ctx: &Ctx, m: &str) -> Response {
    let mut r = crate::console::page(
        ctx,
        "Not found",
        Nav::Home,
        html! { h1 { "Not found" } p.alert { (m) } },
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

async fn regrade(
    State(d): State<Dash>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    lab_action(d, headers, name, form, "check").await
}

async fn reset(
    State(d): State<Dash>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    lab_action(d, headers, name, form, "reset").await
}

async fn lab_action(
    d: Dash,
    headers: HeaderMap,
    name: String,
    form: FormData,
    op: &str,
) -> Response {
    let ctx = match d.console.post_ctx(&headers, &form) {
        Ok(c) if c.session.account == d.roster.instructor_account() => c,
        Ok(_) => return crate::console::refused("Only the instructor may re-grade or reset."),
        Err(r) => return r,
    };
    let Some(account) = d.roster.learner(&name).map(|l| l.account.clone()) else {
        return not_found(&ctx, &format!("No learner {name:?} in this course."));
    };
    let q: BTreeMap<String, String> = [("learner".to_string(), name.clone())].into();
    let result = d.engine.op(op, &account, &q).await;
    match result {
        Ok(v) => {
            let shown = (op == "check").then_some(&v);
            match learner_body(&d, &name, &ctx.csrf, shown) {
                Some(b) => crate::console::page(&ctx, &name, Nav::Home, b),
                None => not_found(&ctx, &format!("No learner {name:?} in this course.")),
            }
        }
        Err(e) => {
            let mut r = crate::console::page(
                &ctx,
                &name,
                Nav::Home,
                html! { h1 { (name) } p.alert role="alert" { (e) } p { a href={ "/console/class/learner/" (name) } { "Back" } } },
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

async fn lab_page(
    State(d): State<Dash>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let ctx = match d.instructor(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let dash = d.dashboard();
    let Some(l) = dash.labs.iter().find(|l| l.lab == id) else {
        return not_found(&ctx, &format!("No lab {id:?} in this course."));
    };
    let most = l.histogram.iter().copied().max().unwrap_or(0).max(1);
    let body = html! {
        h1 { (l.title) " " small.mono { (l.lab) } }
        p { a href="/console/class/" { "Back to the class" } }
        p { (l.completed) " of " (l.started) " learners who started have completed it." }
        h2 { "Scores" }
        table #histogram {
            thead { tr { th { "score" } th { "learners" } th { "" } } }
            tbody { @for (i, n) in l.histogram.iter().enumerate() {
                tr {
                    td { @if i == 10 { "100 %" } @else { (i * 10) "–" (i * 10 + 9) " %" } }
                    td { (n) }
                    td { meter min="0" max=(most) value=(n) {} }
                }
            } }
        }
        h2 { "Checks that fail most" }
        @if l.failing.is_empty() { p { "No failed check yet." } }
        ol #failing { @for (c, n) in &l.failing { li { code { (c) } ": " (n) " failed runs" } } }
        h2 { "Average time per step" }
        table #step-times {
            thead { tr { th { "step" } th { "average" } th { "learners done" } } }
            tbody { @for (s, ms, n) in &l.step_times { tr { td { code { (s) } } td { @if *n > 0 { (minutes(*ms)) } @else { "—" } } td { (n) } } } }
        }
    };
    crate::console::page(&ctx, &l.title, Nav::Home, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn course() -> Course {
        let labs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/03-custom-vpc");
        Course {
            dir: std::path::PathBuf::from("/nonexistent"),
            file: super::super::CourseFile {
                name: "net101".into(),
                secret: "a-secret-of-sixteen".into(),
                labs: vec!["custom-vpc".into()],
                assessed: vec![],
                stuck_minutes: 10,
                stuck_failures: 3,
                instructor: super::super::InstructorKey {
                    access_key: "AKIAINSTRUCTOR".into(),
                    secret_key: "s".into(),
                    account: "100000000000".into(),
                    password_hash: String::new(),
                },
                storage: None,
            },
            labs: [("custom-vpc".to_string(), labs)].into(),
            store: std::sync::Arc::new(
                super::super::store::SqliteStore::open(std::path::Path::new(":memory:"))
                    .expect("an in-memory store"),
            ),
        }
    }

    fn ev(
        seq: u64,
        at_ms: i64,
        learner: &str,
        kind: EventKind,
        step: Option<&str>,
        detail: Value,
    ) -> Event {
        Event {
            seq,
            at_ms,
            learner: learner.into(),
            lab: "custom-vpc".into(),
            kind,
            step: step.map(str::to_string),
            detail,
            prev: String::new(),
            hash: String::new(),
        }
    }

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            display: name.into(),
            account: "100000000001".into(),
        }
    }

    fn failed_vpc(seq: u64, at: i64, who: &str) -> Event {
        ev(
            seq,
            at,
            who,
            EventKind::Check,
            Some("vpc"),
            json!({"results": [{"id": "vpc-exists", "status": "fail", "points": 0, "max_points": 2, "message": "There is no VPC named lab-vpc"}]}),
        )
    }

    #[test]
    fn the_same_failing_check_three_runs_in_a_row_or_ten_idle_minutes_is_stuck() {
        let c = course();
        let start = |who: &str| {
            ev(
                0,
                0,
                who,
                EventKind::Start,
                None,
                json!({"dir": "/x", "region": "us-east-1"}),
            )
        };
        let logs: BTreeMap<String, Vec<Event>> = [
            (
                "ann".to_string(),
                vec![
                    start("ann"),
                    failed_vpc(1, 10_000, "ann"),
                    failed_vpc(2, 20_000, "ann"),
                    failed_vpc(3, 30_000, "ann"),
                ],
            ),
            (
                "bob".to_string(),
                vec![start("bob"), failed_vpc(1, 10_000, "bob")],
            ),
            ("cy".to_string(), vec![]),
        ]
        .into();
        let members = [member("ann"), member("bob"), member("cy")];
        // One minute in: Ann is stuck on her failing check, Bob is not (yet).
        let d = summarise(&c, &members, &logs, 60_000);
        let ann = &d.tiles[0];
        assert_eq!(ann.step.as_deref(), Some("vpc"));
        assert_eq!(ann.step_index, Some(1));
        assert_eq!(ann.on_step_ms, 60_000);
        assert_eq!(
            ann.stuck.as_deref(),
            Some("check vpc-exists failed 3 runs in a row")
        );
        assert_eq!(
            ann.last_failure.as_deref(),
            Some("vpc-exists: There is no VPC named lab-vpc")
        );
        assert_eq!(d.tiles[1].stuck, None);
        assert_eq!(d.tiles[2].lab, None);
        assert_eq!(d.labs[0].started, 2);
        assert_eq!(d.labs[0].histogram[0], 2);
        assert_eq!(d.labs[0].failing, vec![("vpc/vpc-exists".to_string(), 4)]);
        // Eleven minutes in: Bob has done nothing for more than ten.
        let d = summarise(&c, &members, &logs, 11 * 60_000);
        assert_eq!(
            d.tiles[1].stuck.as_deref(),
            Some("no step done for 11 minutes")
        );
    }
}

//! The lab side panel: while a lab is running, every console page shows its current
//! step, a Check button, ✓/✗ per check with the reasons the grader gives, and the hints
//! the lab offers.
//!
//! The console does not grade: the daemon hands it a [`LabOps`] that runs the lab
//! engine's own operations (`status`, `check`, `hint`) for the session's account, the
//! same ones `vpclab lab status|check|hint` call, so the panel and the CLI agree. The
//! frame loads the panel with htmx (`/console/lab/panel`); `/console/lab` is the same
//! panel as a page, for browsers without scripts. Check and Hint are POSTs carrying the
//! session's CSRF token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::{Console, FormData, Nav, fragment, page};

/// Runs one lab-engine operation (`status`, `check`, `hint`) for an account; the
/// engine's JSON answer, or its error text (`… has no lab in progress` among them).
pub type LabOps = Arc<
    dyn Fn(&'static str, String) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>
        + Send
        + Sync,
>;

/// What the panel shows below the step after a Check or a Hint.
enum Outcome {
    None,
    Checked(Value),
    Hints(Value),
    Failed(String),
}

/// `GET /console/lab/panel`: the panel as a fragment (empty when no lab runs).
pub(crate) async fn panel(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    fragment(render(&c, &ctx.session.account, &ctx.csrf, Outcome::None).await)
}

/// `GET /console/lab`: the panel as a whole page.
pub(crate) async fn page_route(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = render(&c, &ctx.session.account, &ctx.csrf, Outcome::None).await;
    page(&ctx, "Lab", Nav::Lab, html! { h1 { "Lab" } (body) })
}

/// `POST /console/lab/check` and `/console/lab/hint`.
pub(crate) async fn check(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<FormData>,
) -> Response {
    act(c, headers, form, "check").await
}

pub(crate) async fn hint(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<FormData>,
) -> Response {
    act(c, headers, form, "hint").await
}

async fn act(c: Console, headers: HeaderMap, form: FormData, op: &'static str) -> Response {
    let ctx = match c.post_ctx(&headers, &form) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(ops) = c.labs.clone() else {
        return fragment(html! { p.muted { "This daemon runs no lab engine." } });
    };
    let outcome = match ops(op, ctx.session.account.clone()).await {
        Ok(v) if op == "check" => Outcome::Checked(v),
        Ok(v) => Outcome::Hints(v),
        Err(e) => Outcome::Failed(e),
    };
    let body = render(&c, &ctx.session.account, &ctx.csrf, outcome).await;
    // htmx swaps the fragment into the panel; a plain form post gets the whole page.
    if headers.contains_key("hx-request") {
        fragment(body)
    } else {
        page(&ctx, "Lab", Nav::Lab, html! { h1 { "Lab" } (body) })
    }
}

async fn render(c: &Console, account: &str, csrf: &str, outcome: Outcome) -> Markup {
    let Some(ops) = c.labs.clone() else {
        return html! {};
    };
    let status = match ops("status", account.to_string()).await {
        Ok(s) => s,
        // No lab in progress: no panel.
        Err(_) => return html! {},
    };
    let current = &status["current"];
    let done = status["completed"].as_bool().unwrap_or(false) || current.is_null();
    html! {
        section.lab-panel aria-labelledby="lab-title" {
            h2 #lab-title { "Lab: " (status["title"].as_str().unwrap_or("")) }
            p #lab-score { (status["points"]) " / " (status["max_points"]) " points (" (status["percent"]) " %)" }
            ol.lab-steps {
                @for s in status["steps"].as_array().into_iter().flatten() {
                    li class=(format!("step-{}", s["state"].as_str().unwrap_or("todo"))) {
                        (step_mark(s["state"].as_str().unwrap_or(""))) " " (s["title"].as_str().unwrap_or(""))
                    }
                }
            }
            @if done {
                p #lab-done { "Every step is done." }
            } @else {
                h3 #lab-step { "Step " (current["index"]) " of " (current["of"]) ": " (current["title"].as_str().unwrap_or("")) }
                form method="post" action="/console/lab/check" hx-post="/console/lab/check" hx-target="closest .lab-panel" hx-swap="outerHTML" {
                    input type="hidden" name="csrf" value=(csrf);
                    button #lab-check type="submit" { "Check" }
                }
                @if status["mode"] != "assessed" {
                    form method="post" action="/console/lab/hint" hx-post="/console/lab/hint" hx-target="closest .lab-panel" hx-swap="outerHTML" {
                        input type="hidden" name="csrf" value=(csrf);
                        button.secondary #lab-hint type="submit" { "Hint" }
                    }
                }
            }
            (outcome_markup(&outcome))
        }
    }
}

fn step_mark(state: &str) -> &'static str {
    match state {
        "done" => "✓",
        "skipped" => "↷",
        "current" => "▶",
        _ => "·",
    }
}

fn outcome_markup(o: &Outcome) -> Markup {
    match o {
        Outcome::None => html! {},
        Outcome::Failed(e) => html! { p.alert role="alert" { (e) } },
        Outcome::Checked(v) => html! {
            div #lab-results role="status" {
                p { strong { @if v["passed"].as_bool() == Some(true) { "Step passed." } @else { "Not yet." } } }
                ul {
                    @for r in v["results"].as_array().into_iter().flatten() {
                        @let status = r["status"].as_str().unwrap_or("");
                        li class=(format!("check-{status}")) {
                            span aria-hidden="true" { @if status == "pass" { "✓ " } @else { "✗ " } }
                            span.visually-hidden { (status) ": " }
                            code { (r["id"].as_str().unwrap_or("")) } " — " (r["message"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
        },
        Outcome::Hints(v) => {
            let hints: Vec<&str> = v["hints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            html! {
                div #lab-hints role="status" {
                    @if hints.is_empty() {
                        p.muted { (v["message"].as_str().unwrap_or("No hint yet: try Check first, hints unlock after attempts.")) }
                    } @else {
                        ul { @for h in hints { li { (h) } } }
                    }
                }
            }
        }
    }
}

//! The web console: the learner's AWS in a browser, served by the daemon on the API port
//! under `/console/`.
//!
//! Pages are HTML rendered on the server ([`maud`]), one stylesheet and htmx vendored
//! into the binary (no CDN, works offline). A browser's plain `GET /` (no AWS signature,
//! asking for HTML) is redirected here; every AWS client request keeps going to the
//! service router ([`crate::api::services`]).
//!
//! - `mod.rs`: the router, sessions and the page frame (header, region selector,
//!   navigation), login for `--auth strict`, static files.
//! - [`pages`]: home, resource tables and detail pages, read from the model.
//! - [`forms`]: every state change (create VPC, "VPC and more", launch instance, key
//!   pairs, security-group and NACL editors, stop/start/terminate). Each calls the same
//!   model action as the EC2 API, through [`crate::model::Control::mutate`], so a form
//!   shows the same AWS error text as the CLI would print.
//! - [`topology`]: the VPC dashboard's SVG picture; [`live`]: server-sent events fed by
//!   the model's change events.
//! - [`reach`]: "why can't A reach B?", from the fabric's own decision path.
//! - [`billing`]: what the resources would cost on AWS.
//! - [`lab`]: the lab side panel (current step, Check, ✓/✗ with reasons, hints).
//! - [`cloudwatch`]: alarms, metric charts (SVG drawn on the server), dashboards, logs.
//!
//! Security: open mode has no login (each browser gets an anonymous session for the
//! default account); strict mode asks for an access key pair. Sessions are signed
//! cookies ([`session`]), every state change is a POST carrying the session's CSRF
//! token, and every page reads only the session's account.

pub mod billing;
pub mod cloudwatch;
pub mod forms;
pub mod lab;
pub mod live;
pub mod pages;
pub mod reach;
pub mod session;
pub mod topology;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use maud::{DOCTYPE, Markup, html};

use crate::api::AppState;
use crate::api::sigv4::AuthMode;
use crate::model::{ApiError, ApiResult, Env, World};
use session::{Keyring, Session};

/// Every console URL starts with this.
pub const PREFIX: &str = "/console";

const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
const CSS: &[u8] = include_bytes!("assets/console.css");
const JS: &[u8] = include_bytes!("assets/console.js");

/// The console's shared state.
#[derive(Clone)]
pub struct Console {
    pub(crate) api: AppState,
    pub(crate) keys: Keyring,
    /// The region shown until the user picks one (the daemon's `--region`).
    pub(crate) default_region: String,
    pub(crate) live: live::Feed,
    /// The account worlds' runtimes, when the daemon runs them (absent in unit tests).
    pub(crate) worlds: Option<crate::world::Worlds>,
    /// A classroom's second way in: user name and console password → account.
    pub(crate) password_login: Option<PasswordLogin>,
    /// The browser proxy's address (`daemon::proxy`), shown as a browser setting.
    pub(crate) proxy: Option<std::net::SocketAddr>,
    /// The lab engine's operations, when the daemon runs one (the lab side panel).
    pub(crate) labs: Option<lab::LabOps>,
}

/// Checks a console user name and password; the account it opens, if they match.
pub type PasswordLogin = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

impl Console {
    /// A console over the API's state. Register [`Console::subscriber`] with the control
    /// so live updates flow.
    pub fn new(api: AppState, default_region: &str) -> Console {
        Console {
            api,
            keys: Keyring::random(),
            default_region: default_region.to_string(),
            live: live::Feed::default(),
            worlds: None,
            password_login: None,
            proxy: None,
            labs: None,
        }
    }

    /// Shows the lab side panel, running the lab engine's operations through `ops`.
    pub fn with_labs(mut self, ops: lab::LabOps) -> Console {
        self.labs = Some(ops);
        self
    }

    /// The browser proxy the pages tell the learner to set.
    pub fn with_proxy(mut self, proxy: Option<std::net::SocketAddr>) -> Console {
        self.proxy = proxy;
        self
    }

    /// Lets the login form also take a user name and password (a classroom's roster).
    pub fn with_password_login(mut self, check: PasswordLogin) -> Console {
        self.password_login = Some(check);
        self
    }

    /// Gives the console the running worlds (for the instance console output).
    pub fn with_worlds(mut self, worlds: crate::world::Worlds) -> Console {
        self.worlds = Some(worlds);
        self
    }

    /// Ends the open live-update streams (call when the daemon stops, before draining).
    pub fn close_streams(&self) {
        self.live.close();
    }

    /// The change-event subscriber that feeds live updates.
    pub fn subscriber(&self) -> crate::model::Subscriber {
        self.live.subscriber()
    }

    /// The console's routes, to merge before the API router (whose fallback takes the
    /// rest). `/` answers browsers with a redirect and hands everything else to the
    /// service router.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", any(root))
            .route(
                "/console",
                get(|| async { redirect(&format!("{PREFIX}/")) }),
            )
            .route("/console/", get(pages::home))
            .route("/console/static/{file}", get(asset))
            .route("/console/login", get(login_page).post(login))
            .route("/console/logout", post(logout))
            .route("/console/region", post(set_region))
            .route("/console/r/{kind}", get(pages::table))
            .route("/console/r/{kind}/{id}", get(pages::detail))
            .route("/console/vpc", get(topology::dashboard))
            .route("/console/vpc/picture", get(topology::picture))
            .route("/console/events", get(live::events))
            .route("/console/billing", get(billing::page_route))
            .route("/console/reach", get(reach::page_route))
            .route("/console/lab", get(lab::page_route))
            .route("/console/lab/panel", get(lab::panel))
            .route("/console/lab/check", post(lab::check))
            .route("/console/lab/hint", post(lab::hint))
            .route("/console/cloudwatch", get(cloudwatch::overview))
            .route("/console/cloudwatch/metric", get(cloudwatch::metric))
            .route("/console/cloudwatch/alarms/{name}", get(cloudwatch::alarm))
            .route(
                "/console/cloudwatch/dashboards/{name}",
                get(cloudwatch::dashboard),
            )
            .route("/console/cloudwatch/logs", get(cloudwatch::logs))
            .merge(forms::routes())
            // Not a fallback: the API router's fallback answers every other path.
            .route("/console/{*rest}", get(not_found_page))
            .with_state(self)
    }

    /// The context of a page request: the session (a new anonymous one in open mode),
    /// or, in strict mode without one, the login page.
    // The refusal is the response itself, sent at once: boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn page_ctx(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        let region = self.region(headers);
        if let Some(s) = session::cookie(headers, session::COOKIE).and_then(|v| self.keys.open(v)) {
            return Ok(self.ctx(s, region, None));
        }
        match self.api.auth {
            AuthMode::Open => {
                let s = self.keys.new_session(crate::model::DEFAULT_ACCOUNT);
                let cookie = session::set_cookie(&self.keys.cookie_value(&s));
                Ok(self.ctx(s, region, Some(cookie)))
            }
            AuthMode::Strict(_) => Err(redirect(&format!("{PREFIX}/login"))),
        }
    }

    /// The context of a state-changing request: a valid session and its CSRF token, or
    /// a refusal (403; in strict mode without a session, the login page).
    #[allow(clippy::result_large_err)]
    pub(crate) fn post_ctx(&self, headers: &HeaderMap, form: &FormData) -> Result<Ctx, Response> {
        let region = self.region(headers);
        let Some(s) = session::cookie(headers, session::COOKIE).and_then(|v| self.keys.open(v))
        else {
            return Err(match self.api.auth {
                AuthMode::Strict(_) => redirect(&format!("{PREFIX}/login")),
                AuthMode::Open => {
                    refused("Your console session has expired: reload the page and try again.")
                }
            });
        };
        if !self.keys.csrf_ok(&s, form.get("csrf").unwrap_or("")) {
            return Err(refused(
                "This form did not carry the console's CSRF token, so the change was refused. Reload the page and try again.",
            ));
        }
        Ok(self.ctx(s, region, None))
    }

    fn ctx(&self, session: Session, region: String, set_cookie: Option<String>) -> Ctx {
        Ctx {
            csrf: self.keys.csrf(&session),
            session,
            region,
            set_cookie,
            strict: matches!(self.api.auth, AuthMode::Strict(_)),
            proxy: self.proxy,
            lab_panel: self.labs.is_some(),
        }
    }

    fn region(&self, headers: &HeaderMap) -> String {
        session::cookie(headers, session::REGION_COOKIE)
            .filter(|r| crate::model::region::region(r).is_some())
            .unwrap_or(&self.default_region)
            .to_string()
    }

    fn now(&self) -> crate::model::Timestamp {
        (self.api.clock)()
    }

    /// The account's world in the page's region (created with its default VPC on first
    /// use, as the API does).
    pub(crate) fn world(&self, ctx: &Ctx) -> ApiResult<Arc<World>> {
        let env = Env::new(ctx.region.clone(), self.now()).with_action("vpclab:ConsoleRead");
        self.api.lock().read(&ctx.session.account, &env)
    }

    /// Runs one model action for the session's account, as the API action `action`
    /// would: the same door, the same validation, the same change events.
    pub(crate) fn mutate<R>(
        &self,
        ctx: &Ctx,
        action: &str,
        f: impl FnOnce(&mut World, &Env) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let env = Env::new(ctx.region.clone(), self.now()).with_action(action);
        self.api.lock().mutate(&ctx.session.account, &env, false, f)
    }
}

/// What every page knows about its request.
pub(crate) struct Ctx {
    pub session: Session,
    pub region: String,
    pub csrf: String,
    /// A new session's cookie, set with the response.
    pub set_cookie: Option<String>,
    pub strict: bool,
    /// The browser proxy's address, when the daemon runs one.
    pub proxy: Option<std::net::SocketAddr>,
    /// Whether pages load the lab side panel.
    pub lab_panel: bool,
}

/// A decoded `application/x-www-form-urlencoded` body (or query string), in order.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// A value, trimmed; empty means absent.
    pub fn val(&self, k: &str) -> Option<String> {
        self.get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn checked(&self, k: &str) -> bool {
        self.get(k)
            .is_some_and(|v| v == "on" || v == "true" || v == "1")
    }
}

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Vpc,
    Ec2,
    Route53,
    Reach,
    Billing,
    CloudWatch,
    Lab,
    Kind(&'static str),
}

/// The frame of every page: header with services and the region selector, the resource
/// navigation, and `body` as the main landmark.
pub(crate) fn page(ctx: &Ctx, title: &str, nav: Nav, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                title { (title) " · vpclab console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/htmx.min.js" defer {}
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to main content" }
                header.top {
                    a.brand href="/console/" { "vpclab console" }
                    nav aria-label="Services" {
                        ul {
                            li { a href="/console/vpc" aria-current=[(nav == Nav::Vpc).then_some("page")] { "VPC" } }
                            li { a href="/console/r/instances" aria-current=[(nav == Nav::Ec2).then_some("page")] { "EC2" } }
                            li { a href="/console/r/hosted-zones" aria-current=[(nav == Nav::Route53).then_some("page")] { "Route 53" } }
                            li { a href="/console/cloudwatch" aria-current=[(nav == Nav::CloudWatch).then_some("page")] { "CloudWatch" } }
                            li { a href="/console/reach" aria-current=[(nav == Nav::Reach).then_some("page")] { "Reachability" } }
                            li { a href="/console/billing" aria-current=[(nav == Nav::Billing).then_some("page")] { "Billing" } }
                        }
                    }
                    div.who {
                        form method="post" action="/console/region" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            label for="region-select" { "Region" }
                            select #region-select name="region" {
                                @for r in crate::model::region::REGIONS {
                                    option value=(r.name) selected[r.name == ctx.region] { (r.name) }
                                }
                            }
                            button.secondary type="submit" { "Switch" }
                        }
                        span { "Account " span.mono { (ctx.session.account) } }
                        @if ctx.strict {
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                div.layout {
                    (side_nav(nav))
                    main #main tabindex="-1" { (body) }
                    // The running lab, if any (empty otherwise); the lab page itself is
                    // the panel already.
                    @if ctx.lab_panel && nav != Nav::Lab {
                        aside #lab-panel aria-label="Lab" hx-get="/console/lab/panel" hx-trigger="load" {}
                    }
                }
            }
        }
    };
    let mut r = html_response(StatusCode::OK, markup);
    if let Some(c) = &ctx.set_cookie
        && let Ok(v) = HeaderValue::from_str(c)
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn side_nav(nav: Nav) -> Markup {
    let link = |href: &str, slug: &'static str, text: &str| {
        html! { li { a href=(href) aria-current=[(nav == Nav::Kind(slug)).then_some("page")] { (text) } } }
    };
    html! {
        nav.side aria-label="Resources" {
            h2 { "Virtual private cloud" }
            ul {
                li { a href="/console/vpc" aria-current=[(nav == Nav::Vpc).then_some("page")] { "VPC dashboard" } }
                (link("/console/r/vpcs", "vpcs", "Your VPCs"))
                (link("/console/r/subnets", "subnets", "Subnets"))
                (link("/console/r/route-tables", "route-tables", "Route tables"))
                (link("/console/r/internet-gateways", "internet-gateways", "Internet gateways"))
                (link("/console/r/nat-gateways", "nat-gateways", "NAT gateways"))
                (link("/console/r/elastic-ips", "elastic-ips", "Elastic IPs"))
                (link("/console/r/network-acls", "network-acls", "Network ACLs"))
                (link("/console/r/security-groups", "security-groups", "Security groups"))
            }
            h2 { "EC2" }
            ul {
                (link("/console/r/instances", "instances", "Instances"))
                li { a href="/console/launch" { "Launch an instance" } }
                (link("/console/r/images", "images", "AMIs"))
                (link("/console/r/key-pairs", "key-pairs", "Key pairs"))
                (link("/console/r/network-interfaces", "network-interfaces", "Network interfaces"))
            }
            h2 { "Route 53" }
            ul {
                (link("/console/r/hosted-zones", "hosted-zones", "Hosted zones"))
                (link("/console/r/health-checks", "health-checks", "Health checks"))
            }
            h2 { "CloudWatch" }
            ul {
                li { a href="/console/cloudwatch#alarms" aria-current=[(nav == Nav::CloudWatch).then_some("page")] { "Alarms" } }
                li { a href="/console/cloudwatch#metrics" { "Metrics" } }
                li { a href="/console/cloudwatch#dashboards" { "Dashboards" } }
                li { a href="/console/cloudwatch#logs" { "Log groups" } }
            }
            h2 { "Tools" }
            ul {
                li { a href="/console/lab" aria-current=[(nav == Nav::Lab).then_some("page")] { "Lab" } }
                li { a href="/console/reach" aria-current=[(nav == Nav::Reach).then_some("page")] { "Reachability" } }
                li { a href="/console/billing" aria-current=[(nav == Nav::Billing).then_some("page")] { "Billing" } }
            }
        }
    }
}

pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = Response::new(Body::from(markup.into_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Scripts, styles and images only from the console itself: no inline script runs,
    // and no other site may frame the console.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// A fragment (for live refresh): HTML without the frame.
pub(crate) fn fragment(markup: Markup) -> Response {
    html_response(StatusCode::OK, markup)
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A refused request (403) as a small page.
pub(crate) fn refused(message: &str) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Refused · vpclab console" } link rel="stylesheet" href="/console/static/console.css"; }
                body { main #main { h1 { "Request refused" } p.alert role="alert" { (message) } p { a href="/console/" { "Back to the console" } } } }
            }
        },
    )
}

/// An AWS error as the CLI prints it (`Code: message`).
pub(crate) fn aws_error_text(e: &ApiError) -> String {
    format!("{}: {}", e.code, e.message)
}

/// A page whose model read failed (an internal error: the store is broken).
pub(crate) fn error_page(ctx: &Ctx, e: &ApiError) -> Response {
    let mut r = page(
        ctx,
        "Error",
        Nav::Home,
        html! { h1 { "Something went wrong" } p.alert role="alert" { (aws_error_text(e)) } },
    );
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Whether a request to `/` is a browser asking for a page rather than an AWS client:
/// a GET without a query string, without any AWS signature, that accepts HTML.
fn is_browser(req: &Request) -> bool {
    let h = req.headers();
    req.method() == Method::GET
        && req.uri().query().is_none_or(str::is_empty)
        && !h.contains_key(header::AUTHORIZATION)
        && !h.keys().any(|k| k.as_str().starts_with("x-amz-"))
        && h.get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

async fn root(State(c): State<Console>, req: Request) -> Response {
    if is_browser(&req) {
        return redirect(&format!("{PREFIX}/"));
    }
    crate::api::services::dispatch(c.api.clone(), req).await
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, ty): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

pub(crate) async fn not_found_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut r = page(
        &ctx,
        "Not found",
        Nav::Home,
        html! { h1 { "Not found" } p { "The console has no page at this address. " a href="/console/" { "Go to the console home." } } },
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

fn login_markup(error: Option<&str>, access_key: &str, class: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · vpclab console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header.top { span.brand { "vpclab console" } }
                main #main {
                    h1 { "Sign in" }
                    p { "This daemon runs with " code { "--auth strict" } ": sign in with an access key pair from its "
                        code { "access-keys.toml" } " (the same keys the AWS CLI uses)." }
                    @if class {
                        p #class-login { "In a class, you may instead type your learner name and the console password your instructor gave you (the instructor signs in as "
                            code { "instructor" } ")." }
                    }
                    @if let Some(e) = error { p.alert role="alert" #login-error { (e) } }
                    form.stack method="post" action="/console/login" {
                        div.field {
                            label for="access_key" { "Access key ID" }
                            input #access_key name="access_key" autocomplete="username" required value=(access_key)
                                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "login-error")];
                        }
                        div.field {
                            label for="secret_key" { "Secret access key" }
                            input #secret_key name="secret_key" type="password" autocomplete="current-password" required;
                        }
                        div { button type="submit" { "Sign in" } }
                    }
                }
            }
        }
    }
}

async fn login_page(State(c): State<Console>) -> Response {
    match c.api.auth {
        AuthMode::Open => redirect(&format!("{PREFIX}/")),
        AuthMode::Strict(_) => html_response(
            StatusCode::OK,
            login_markup(None, "", c.password_login.is_some()),
        ),
    }
}

/// Signs in with an access key pair. The login form carries no CSRF token (there is no
/// session yet); a forged login could only sign the victim into a key the forger
/// already holds, and `SameSite=Strict` keeps the cookie from cross-site requests.
async fn login(State(c): State<Console>, axum::Form(form): axum::Form<FormData>) -> Response {
    let AuthMode::Strict(keys) = &c.api.auth else {
        return redirect(&format!("{PREFIX}/"));
    };
    let id = form.val("access_key").unwrap_or_default();
    let secret = form.get("secret_key").unwrap_or("");
    // Temporary credentials need their session token, which the form does not carry.
    let account = keys
        .find(&id)
        .filter(|k| {
            k.session_token.is_none() && session::same(k.secret_key.as_bytes(), secret.as_bytes())
        })
        .map(|k| k.account)
        .or_else(|| {
            c.password_login
                .as_ref()
                .and_then(|check| check(&id, secret))
        });
    let Some(account) = account else {
        // The code and message the API answers for an unknown key or bad signature.
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_markup(
                Some("AuthFailure: AWS was not able to validate the provided access credentials"),
                &id,
                c.password_login.is_some(),
            ),
        );
    };
    let s = c.keys.new_session(&account);
    let mut r = redirect(&format!("{PREFIX}/"));
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&c.keys.cookie_value(&s))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn logout(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    if let Err(r) = c.post_ctx(&headers, &form) {
        return r;
    }
    let mut r = redirect(&format!("{PREFIX}/login"));
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn set_region(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    if let Err(r) = c.post_ctx(&headers, &form) {
        return r;
    }
    let region = form.val("region").unwrap_or_default();
    if crate::model::region::region(&region).is_none() {
        return refused(&format!("Unknown region {region:?}."));
    }
    // Back to where the user was, when that is a console page.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console/").map(|i| r[i..].to_string()))
        .unwrap_or_else(|| format!("{PREFIX}/"));
    let mut r = redirect(&back);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={region}; Path=/console; SameSite=Strict; Max-Age=31536000",
        session::REGION_COOKIE
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

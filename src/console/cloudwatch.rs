//! CloudWatch in the console: alarms (state, reason, history), metrics (the list, and a
//! line chart of one metric's datapoints drawn as SVG on the server), dashboards (each
//! metric widget of the dashboard's JSON body drawn the same way) and CloudWatch Logs
//! (groups, their streams, a stream's events).
//!
//! Everything is read from the account's world snapshot, with the same period
//! aggregation as GetMetricStatistics ([`crate::model::cloudwatch::Metric::periods`]).
//! Nothing here changes state.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::pages::query_form;
use super::{Console, Ctx, FormData, Nav, error_page, page};
use crate::model::cloudwatch::{Dimension, Metric, STATISTICS};
use crate::model::{ApiError, World};

/// How far back the charts look unless the page asks otherwise.
const DEFAULT_HOURS: i64 = 3;
/// The periods a chart offers (seconds), as the CloudWatch console does.
const PERIODS: &[i64] = &[1, 10, 60, 300, 3600];

/// `/console/cloudwatch`: alarms, metrics, dashboards and log groups of the region.
pub(crate) async fn overview(State(c): State<Console>, headers: HeaderMap) -> Response {
    let (ctx, w) = match open(&c, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let region = ctx.region.clone();
    let alarms: Vec<_> = w.alarms.in_region(&region).collect();
    let metrics: Vec<&Metric> = w.metrics.in_region(&region).collect();
    let groups: Vec<_> = w.log_groups.in_region(&region).collect();
    let body = html! {
        h1 { "CloudWatch" }
        p { "Alarms, metrics, dashboards and logs of " (region) ". The "
            code { "AWS/EC2" } " metrics come from the instances' real traffic and CPU time." }
        h2 #alarms { "Alarms" }
        @if alarms.is_empty() {
            p.muted { "No alarms. Create one with " code { "aws cloudwatch put-metric-alarm" } "." }
        } @else {
            table #alarm-list {
                thead { tr { th { "Name" } th { "State" } th { "Metric" } th { "Condition" } th { "Last state change" } } }
                tbody {
                    @for a in &alarms {
                        tr {
                            td { a href=(format!("/console/cloudwatch/alarms/{}", enc(&a.name))) { (a.name) } }
                            td { span class=(format!("badge state-{}", a.state.to_lowercase())) { (a.state) } }
                            td { @if a.is_composite() { "composite: " code { (a.rule.as_deref().unwrap_or("")) } }
                                 @else { a href=(metric_href(&a.namespace, &a.metric_name, &a.dimensions)) { (a.namespace) " " (a.metric_name) } } }
                            td { @if !a.is_composite() { (a.statistic) " " (op(&a.comparison)) " " (num(a.threshold)) " for " (a.evaluation_periods) " × " (a.period) " s" } }
                            td { (time_of(a.state_updated)) }
                        }
                    }
                }
            }
        }
        h2 #metrics { "Metrics" }
        @if metrics.is_empty() {
            p.muted { "No metrics yet." }
        } @else {
            table #metric-list {
                thead { tr { th { "Namespace" } th { "Metric" } th { "Dimensions" } th { "Datapoints" } } }
                tbody {
                    @for m in &metrics {
                        tr {
                            td { (m.namespace) }
                            td { a href=(metric_href(&m.namespace, &m.name, &m.dimensions)) { (m.name) } }
                            td.mono { (dims_text(&m.dimensions)) }
                            td { (m.points.len()) }
                        }
                    }
                }
            }
        }
        h2 #dashboards { "Dashboards" }
        @if w.dashboards.iter().next().is_none() {
            p.muted { "No dashboards. Create one with " code { "aws cloudwatch put-dashboard" } "." }
        } @else {
            ul #dashboard-list {
                @for d in w.dashboards.iter() {
                    li { a href=(format!("/console/cloudwatch/dashboards/{}", enc(&d.name))) { (d.name) } }
                }
            }
        }
        h2 #logs { "Log groups" }
        @if groups.is_empty() {
            p.muted { "No log groups." }
        } @else {
            table #log-group-list {
                thead { tr { th { "Log group" } th { "Streams" } th { "Retention" } } }
                tbody {
                    @for g in &groups {
                        tr {
                            td { a href=(format!("/console/cloudwatch/logs?group={}", enc(&g.name))) { (g.name) } }
                            td { (w.log_streams_of(g).count()) }
                            td { @match g.retention_days { Some(d) => { (d) " days" }, None => "Never expire" } }
                        }
                    }
                }
            }
        }
    };
    page(&ctx, "CloudWatch", Nav::CloudWatch, body)
}

/// `/console/cloudwatch/metric?ns=…&name=…&dim=Name=Value&stat=…&period=…&hours=…`.
pub(crate) async fn metric(State(c): State<Console>, headers: HeaderMap, uri: Uri) -> Response {
    let (ctx, w) = match open(&c, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_form(uri.query());
    let (Some(ns), Some(name)) = (q.val("ns"), q.val("name")) else {
        return error_page(
            &ctx,
            &ApiError::new(
                "MissingParameter",
                "The parameters ns and name are required.",
            ),
        );
    };
    let dims = match parse_dims(&q) {
        Ok(d) => d,
        Err(e) => return error_page(&ctx, &e),
    };
    let Some(m) = w.metric(&ctx.region, &ns, &name, &dims) else {
        return error_page(
            &ctx,
            &ApiError::new(
                "ResourceNotFound",
                format!(
                    "No metric {ns} {name} {} in {}.",
                    dims_text(&dims),
                    ctx.region
                ),
            ),
        );
    };
    let view = match View::from_query(&q, default_period(m)) {
        Ok(v) => v,
        Err(e) => return error_page(&ctx, &e),
    };
    let now = c.now().0;
    let series = view.series(m, now);
    let title = format!("{} {}", m.namespace, m.name);
    let body = html! {
        p { a href="/console/cloudwatch#metrics" { "CloudWatch metrics" } }
        h1 { (title) }
        p.mono { (dims_text(&m.dimensions)) }
        (view.form(&ns, &name, &dims))
        (chart(&format!("{} of {title}", view.stat), &[(m.name.clone(), series.clone())], None, &m.unit_label()))
        (datapoints(&view.stat, &series, m.unit()))
    };
    page(&ctx, &title, Nav::CloudWatch, body)
}

/// `/console/cloudwatch/alarms/{name}`: state, reason, the metric against the
/// threshold, and the history.
pub(crate) async fn alarm(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (ctx, w) = match open(&c, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(a) = w.alarm(&ctx.region, &name) else {
        return error_page(
            &ctx,
            &crate::model::cloudwatch::alarm::alarm_not_found(&name),
        );
    };
    let chart_markup = if a.is_composite() {
        html! {}
    } else {
        match w.metric(&ctx.region, &a.namespace, &a.metric_name, &a.dimensions) {
            Some(m) => {
                let view = View {
                    stat: if STATISTICS.contains(&a.statistic.as_str()) {
                        a.statistic.clone()
                    } else {
                        "Average".into()
                    },
                    period: a.period.max(1),
                    hours: DEFAULT_HOURS,
                };
                let series = view.series(m, c.now().0);
                chart(
                    &format!(
                        "{} of {} {} against the threshold",
                        view.stat, a.namespace, a.metric_name
                    ),
                    &[(a.metric_name.clone(), series)],
                    Some(a.threshold),
                    &m.unit_label(),
                )
            }
            None => html! { p.muted { "The metric has no datapoints yet." } },
        }
    };
    let body = html! {
        p { a href="/console/cloudwatch#alarms" { "CloudWatch alarms" } }
        h1 { "Alarm " (a.name) }
        p { "State " span #alarm-state class=(format!("badge state-{}", a.state.to_lowercase())) { (a.state) }
            " since " (time_of(a.state_updated)) }
        p #alarm-reason { (a.reason) }
        @if let Some(d) = &a.description { p { (d) } }
        @if let Some(rule) = &a.rule {
            p { "Rule: " code { (rule) } }
        } @else {
            p { "When " (a.statistic) " of " a href=(metric_href(&a.namespace, &a.metric_name, &a.dimensions)) { (a.namespace) " " (a.metric_name) }
                " " (op(&a.comparison)) " " (num(a.threshold)) " for "
                (a.datapoints_to_alarm.unwrap_or(a.evaluation_periods)) " of " (a.evaluation_periods)
                " periods of " (a.period) " s; missing data: " (a.treat_missing) "." }
        }
        @if !a.alarm_actions.is_empty() {
            p { "Actions on ALARM: " @for (i, x) in a.alarm_actions.iter().enumerate() { @if i > 0 { ", " } code { (x) } } }
        }
        (chart_markup)
        h2 { "History" }
        table #alarm-history {
            thead { tr { th { "Time" } th { "Type" } th { "Summary" } } }
            tbody {
                @for h in a.history.iter().rev() {
                    tr { td { (time_of(h.at)) } td { (h.kind) } td { (h.summary) } }
                }
            }
        }
    };
    page(&ctx, &format!("Alarm {}", a.name), Nav::CloudWatch, body)
}

/// `/console/cloudwatch/dashboards/{name}`: each metric widget as a chart; other
/// widgets (text, alarms, logs) are named, not drawn.
pub(crate) async fn dashboard(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (ctx, w) = match open(&c, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let d = match w.dashboard(&name) {
        Ok(d) => d,
        Err(e) => return error_page(&ctx, &e),
    };
    let body_json: serde_json::Value = serde_json::from_str(&d.body).unwrap_or_default();
    let widgets = body_json["widgets"].as_array().cloned().unwrap_or_default();
    let now = c.now().0;
    let body = html! {
        p { a href="/console/cloudwatch#dashboards" { "CloudWatch dashboards" } }
        h1 { "Dashboard " (d.name) }
        @if widgets.is_empty() { p.muted { "This dashboard has no widgets." } }
        div.widgets {
            @for wd in &widgets {
                section.widget { (widget(&w, &ctx, wd, now)) }
            }
        }
    };
    page(
        &ctx,
        &format!("Dashboard {}", d.name),
        Nav::CloudWatch,
        body,
    )
}

/// `/console/cloudwatch/logs?group=…[&stream=…]`: a group's streams, or a stream's
/// newest events.
pub(crate) async fn logs(State(c): State<Console>, headers: HeaderMap, uri: Uri) -> Response {
    let (ctx, w) = match open(&c, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_form(uri.query());
    let Some(group) = q.val("group") else {
        return error_page(
            &ctx,
            &ApiError::new("MissingParameter", "The parameter group is required."),
        );
    };
    let env = crate::model::Env::new(ctx.region.clone(), c.now());
    let g = match w.log_group(&env, &group) {
        Ok(g) => g,
        Err(e) => return error_page(&ctx, &e),
    };
    let body = match q.val("stream") {
        None => {
            let mut streams: Vec<_> = w.log_streams_of(g).collect();
            streams.sort_by_key(|s| std::cmp::Reverse(s.last_event()));
            html! {
                p { a href="/console/cloudwatch#logs" { "Log groups" } }
                h1 { "Log group " (g.name) }
                @if streams.is_empty() { p.muted { "No log streams." } }
                @else {
                    table #log-stream-list {
                        thead { tr { th { "Log stream" } th { "Last event" } th { "Events" } } }
                        tbody {
                            @for s in &streams {
                                tr {
                                    td { a href=(format!("/console/cloudwatch/logs?group={}&stream={}", enc(&g.name), enc(&s.name))) { (s.name) } }
                                    td { @match s.last_event() { Some(t) => (time_of(t)), None => "-" } }
                                    td { (w.retained_events(g, s, c.now().0).len()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        Some(stream) => {
            let s = match w.log_stream(&env, &group, &stream) {
                Ok(s) => s,
                Err(e) => return error_page(&ctx, &e),
            };
            let events = w.retained_events(g, s, c.now().0);
            // The newest 500, oldest first, as the console's event view pages them.
            let shown = &events[events.len().saturating_sub(500)..];
            html! {
                p { a href=(format!("/console/cloudwatch/logs?group={}", enc(&g.name))) { "Log group " (g.name) } }
                h1 { "Log stream " (s.name) }
                @if shown.len() < events.len() { p.muted { "The newest " (shown.len()) " of " (events.len()) " events." } }
                table #log-events {
                    thead { tr { th { "Timestamp" } th { "Message" } } }
                    tbody {
                        @for e in shown {
                            tr { td { (time_of(e.timestamp)) } td.mono { (e.message) } }
                        }
                    }
                }
            }
        }
    };
    page(&ctx, &format!("Logs {group}"), Nav::CloudWatch, body)
}

#[allow(clippy::result_large_err)]
fn open(c: &Console, headers: &HeaderMap) -> Result<(Ctx, std::sync::Arc<World>), Response> {
    let ctx = c.page_ctx(headers)?;
    match c.world(&ctx) {
        Ok(w) => Ok((ctx, w)),
        Err(e) => Err(error_page(&ctx, &e)),
    }
}

/// What a chart shows: the statistic, the period and how far back.
struct View {
    stat: String,
    period: i64,
    hours: i64,
}

impl View {
    fn from_query(q: &FormData, default_period: i64) -> Result<View, ApiError> {
        let stat = q.val("stat").unwrap_or_else(|| "Average".into());
        if !STATISTICS.contains(&stat.as_str()) {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!(
                    "The statistic {stat} is not one of {}.",
                    STATISTICS.join(", ")
                ),
            ));
        }
        let period = match q.val("period") {
            None => default_period,
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| PERIODS.contains(p))
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidParameterValue",
                        format!("The period {p} is not one of 1, 10, 60, 300, 3600 seconds."),
                    )
                })?,
        };
        let hours = match q.val("hours") {
            None => DEFAULT_HOURS,
            Some(h) => h
                .parse::<i64>()
                .ok()
                .filter(|h| (1..=24 * 15).contains(h))
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidParameterValue",
                        format!("The range {h} must be a number of hours from 1 to 360."),
                    )
                })?,
        };
        Ok(View {
            stat,
            period,
            hours,
        })
    }

    /// The datapoints (period start, value) of the range ending `now`.
    fn series(&self, m: &Metric, now: i64) -> Vec<(i64, f64)> {
        let period_ms = self.period * 1000;
        // Periods aligned on the epoch, as CloudWatch aligns them.
        let end = (now / period_ms + 1) * period_ms;
        let start = end - self.hours * 3_600_000;
        m.periods(start, end, period_ms, None)
            .into_iter()
            .filter_map(|(t, s)| Some((t, s.get(&self.stat)?)))
            .collect()
    }

    fn form(&self, ns: &str, name: &str, dims: &[Dimension]) -> Markup {
        html! {
            form.inline method="get" action="/console/cloudwatch/metric" {
                input type="hidden" name="ns" value=(ns);
                input type="hidden" name="name" value=(name);
                @for d in dims { input type="hidden" name="dim" value=(format!("{}={}", d.name, d.value)); }
                label for="stat" { "Statistic" }
                select #stat name="stat" {
                    @for s in STATISTICS { option value=(s) selected[*s == self.stat] { (s) } }
                }
                label for="period" { "Period" }
                select #period name="period" {
                    @for p in PERIODS { option value=(p) selected[*p == self.period] { (p) " s" } }
                }
                label for="hours" { "Last (hours)" }
                input #hours name="hours" type="number" min="1" max="360" value=(self.hours);
                button type="submit" { "Show" }
            }
        }
    }
}

/// A metric's natural period: 1 s for high-resolution points, 60 s otherwise.
fn default_period(m: &Metric) -> i64 {
    if m.points.iter().any(|p| p.resolution == 1) {
        1
    } else {
        60
    }
}

trait UnitLabel {
    fn unit_label(&self) -> String;
}

impl UnitLabel for Metric {
    fn unit_label(&self) -> String {
        match self.unit() {
            "None" => String::new(),
            u => u.to_string(),
        }
    }
}

fn parse_dims(q: &FormData) -> Result<Vec<Dimension>, ApiError> {
    q.all("dim")
        .into_iter()
        .map(|d| match d.split_once('=') {
            Some((n, v)) if !n.is_empty() => Ok(Dimension {
                name: n.to_string(),
                value: v.to_string(),
            }),
            _ => Err(ApiError::new(
                "InvalidParameterValue",
                format!("The dimension '{d}' is not Name=Value."),
            )),
        })
        .collect()
}

/// One dashboard widget: a `metric` widget's metrics drawn together, others named.
fn widget(w: &World, ctx: &Ctx, wd: &serde_json::Value, now: i64) -> Markup {
    let kind = wd["type"].as_str().unwrap_or("");
    let props = &wd["properties"];
    let title = props["title"].as_str().unwrap_or("").to_string();
    if kind == "text" {
        return html! { h2 { "Text" } pre { (props["markdown"].as_str().unwrap_or("")) } };
    }
    if kind != "metric" {
        return html! { h2 { (title) } p.muted { "A " (kind) " widget (vpclab draws metric and text widgets)." } };
    }
    let region = props["region"].as_str().unwrap_or(&ctx.region);
    let stat = props["stat"].as_str().unwrap_or("Average").to_string();
    let period = props["period"].as_i64().unwrap_or(300).max(1);
    let view = View {
        stat: if STATISTICS.contains(&stat.as_str()) {
            stat
        } else {
            "Average".into()
        },
        period,
        hours: DEFAULT_HOURS,
    };
    let mut series = Vec::new();
    let mut missing = Vec::new();
    let mut unit = String::new();
    // Each entry: [Namespace, MetricName, DimName, DimValue, …, {options}?]; "..." and
    // "." repeat the previous entry's values, as the dashboard body syntax allows.
    let mut prev: Vec<String> = Vec::new();
    for entry in props["metrics"].as_array().into_iter().flatten() {
        let Some(parts) = entry.as_array() else {
            continue;
        };
        let mut fields: Vec<String> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            match p.as_str() {
                Some("...") => fields.extend(prev.iter().skip(i).cloned()),
                Some(".") => fields.push(prev.get(i).cloned().unwrap_or_default()),
                Some(s) => fields.push(s.to_string()),
                None => {}
            }
        }
        prev = fields.clone();
        if fields.len() < 2 {
            continue;
        }
        let dims: Vec<Dimension> = fields[2..]
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| Dimension {
                name: c[0].clone(),
                value: c[1].clone(),
            })
            .collect();
        let label = format!(
            "{} {}",
            fields[1],
            dims.iter()
                .map(|d| d.value.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        match w.metric(region, &fields[0], &fields[1], &dims) {
            Some(m) => {
                unit = m.unit_label();
                series.push((label.trim().to_string(), view.series(m, now)));
            }
            None => missing.push(label),
        }
    }
    html! {
        h2 { (if title.is_empty() { "Metrics" } else { &title }) }
        @if series.is_empty() { p.muted { "No datapoints for this widget's metrics." } }
        @else { (chart(&title, &series, None, &unit)) }
        @if !missing.is_empty() { p.muted { "No data: " (missing.join(", ")) } }
    }
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Line colours, distinguishable for the common colour-vision deficiencies.
const COLOURS: &[&str] = &[
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

/// A line chart of one or more series as inline SVG, with its threshold (dashed)
/// when an alarm's, labelled axes and a title for screen readers.
pub(crate) fn chart(
    title: &str,
    series: &[(String, Vec<(i64, f64)>)],
    threshold: Option<f64>,
    unit: &str,
) -> Markup {
    let pts = series.iter().flat_map(|(_, s)| s.iter());
    let (mut t0, mut t1, mut vmax) = (i64::MAX, i64::MIN, threshold.unwrap_or(0.0));
    for &(t, v) in pts {
        t0 = t0.min(t);
        t1 = t1.max(t);
        vmax = vmax.max(v);
    }
    if t0 > t1 {
        return html! { p.muted.chart-empty { "No datapoints in this range." } };
    }
    let vmax = if vmax <= 0.0 { 1.0 } else { vmax * 1.1 };
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| {
        if t1 == t0 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (t - t0) as f64 / span * (W - LEFT - RIGHT)
        }
    };
    let y = |v: f64| TOP + (1.0 - v / vmax) * (H - TOP - BOTTOM);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="chart-title"><title id="chart-title">{}</title>"#,
        esc(title)
    );
    // Axes and the two value labels.
    svg += &format!(
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#666"/><line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#666"/>"##,
        b = H - BOTTOM,
        r = W - RIGHT
    );
    svg += &format!(
        r#"<text x="{lx}" y="{ty}" text-anchor="end" font-size="11">{}</text><text x="{lx}" y="{by}" text-anchor="end" font-size="11">0</text>"#,
        esc(&format!("{} {unit}", num(vmax))),
        lx = LEFT - 4.0,
        ty = TOP + 10.0,
        by = H - BOTTOM
    );
    svg += &format!(
        r#"<text x="{LEFT}" y="{ty}" font-size="11">{}</text><text x="{rx}" y="{ty}" text-anchor="end" font-size="11">{}</text>"#,
        esc(&time_of(t0)),
        esc(&time_of(t1)),
        ty = H - 8.0,
        rx = W - RIGHT
    );
    if let Some(th) = threshold {
        svg += &format!(
            r##"<line class="threshold" x1="{LEFT}" y1="{yy:.1}" x2="{r}" y2="{yy:.1}" stroke="#c00" stroke-dasharray="6 4"><title>threshold {}</title></line>"##,
            num(th),
            yy = y(th),
            r = W - RIGHT
        );
    }
    for (i, (label, s)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        svg += &format!(
            r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            esc(label)
        );
        for &(t, v) in s {
            svg += &format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} {}</title></circle>"#,
                x(t),
                y(v),
                esc(&time_of(t)),
                num(v)
            );
        }
    }
    svg += "</svg>";
    html! {
        figure.chart {
            (PreEscaped(svg))
            @if series.len() > 1 {
                figcaption {
                    @for (i, (label, _)) in series.iter().enumerate() {
                        span style=(format!("color:{}", COLOURS[i % COLOURS.len()])) { "■ " } (label) " "
                    }
                }
            }
        }
    }
}

/// The datapoints under a chart, for reading exact values (and for screen readers).
fn datapoints(stat: &str, series: &[(i64, f64)], unit: &str) -> Markup {
    html! {
        details {
            summary { (series.len()) " datapoints" }
            table #datapoints {
                thead { tr { th { "Period start" } th { (stat) } th { "Unit" } } }
                tbody {
                    @for (t, v) in series { tr { td { (time_of(*t)) } td { (num(*v)) } td { (unit) } } }
                }
            }
        }
    }
}

fn esc(s: &str) -> String {
    html! { (s) }.into_string()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The console URL of a metric's chart.
pub(crate) fn metric_href(ns: &str, name: &str, dims: &[Dimension]) -> String {
    let mut s = format!(
        "/console/cloudwatch/metric?ns={}&name={}",
        enc(ns),
        enc(name)
    );
    for d in dims {
        s.push_str("&dim=");
        s.push_str(&enc(&format!("{}={}", d.name, d.value)));
    }
    s
}

fn dims_text(dims: &[Dimension]) -> String {
    dims.iter()
        .map(|d| format!("{}={}", d.name, d.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn op(comparison: &str) -> &str {
    match comparison {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => "≥",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "≤",
        other => other,
    }
}

/// A value without needless decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `2025-11-24 16:00:05 UTC`.
fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

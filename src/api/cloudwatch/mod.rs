//! Amazon CloudWatch (`monitoring`, `GraniteServiceVersion20100801`): metrics, metric
//! math, dashboards and alarms, shaped as botocore's `cloudwatch/2010-08-01` model
//! describes them. Parsing and rendering only: the rules are in `model::cloudwatch`.
//!
//! One handler serves the three protocols clients use: Smithy RPC v2 CBOR (boto3 with
//! botocore 1.43 prefers it) through [`super::cbor`], AWS JSON 1.0 (what the aws CLI
//! v1.45 sends) through [`super::json`], and awsQuery (older SDKs) through
//! [`super::awsquery`]. All hand the handler a JSON tree; in awsQuery every
//! scalar is text, so the readers here accept numbers and booleans as either, and
//! timestamps as epoch seconds or ISO 8601.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::AppState;
use super::awsquery::QueryService;
use super::cbor::CborService;
use super::json::{JsonCall, JsonService};
use crate::model::cloudwatch::alarm::{Alarm, MetricAlarmInput};
use crate::model::cloudwatch::math::{self, Scope, Series, Val};
use crate::model::cloudwatch::{self as cw, Datum, Dimension, Metric, Stats, invalid, missing};
use crate::model::{ApiError, ApiResult};

/// Output members that are timestamps (epoch ms in the handler's answers).
const TIMESTAMPS: &[&str] = &[
    "Timestamp",
    "Timestamps",
    "StateUpdatedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "LastModified",
];

pub static CBOR: CborService = CborService {
    name: "GraniteServiceVersion20100801",
    validation_code: "InvalidParameterValue",
    query_compatible: true,
    timestamps: TIMESTAMPS,
    handler: dispatch,
    iam_prefix: "cloudwatch",
    resource: super::json::any_resource,
};

/// AWS JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`), what the aws
/// CLI v1.45 sends (boto3 sends CBOR).
pub static JSON: JsonService = JsonService {
    content_type: "application/x-amz-json-1.0",
    validation_code: "InvalidParameterValue",
    timestamps: TIMESTAMPS,
    query_compatible: true,
    handler: dispatch,
    iam_prefix: "cloudwatch",
    resource: super::json::any_resource,
    passed_roles: super::json::no_roles,
};

pub static QUERY: QueryService = QueryService {
    xmlns: "http://monitoring.amazonaws.com/doc/2010-08-01/",
    timestamps: TIMESTAMPS,
    maps: &[],
    handler: dispatch,
    iam_prefix: "cloudwatch",
    resource: super::json::any_resource,
};

/// The operations vpclab answers (docs/api.md lists the same).
pub const OPERATIONS: &[&str] = &[
    "PutMetricData",
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "PutDashboard",
    "GetDashboard",
    "ListDashboards",
    "DeleteDashboards",
    "PutMetricAlarm",
    "PutCompositeAlarm",
    "DescribeAlarms",
    "DescribeAlarmsForMetric",
    "DescribeAlarmHistory",
    "SetAlarmState",
    "DeleteAlarms",
    "EnableAlarmActions",
    "DisableAlarmActions",
];

/// The service router's entry: RPC v2 CBOR when the request says so, JSON 1.0 when it
/// names an `X-Amz-Target`, else awsQuery.
pub async fn endpoint(state: AppState, req: Request) -> Response {
    if super::cbor::is_rpc_v2_cbor(&req) {
        super::cbor::endpoint(state, req, &CBOR).await
    } else if req.headers().contains_key("x-amz-target") {
        super::json::endpoint(state, req, &JSON).await
    } else {
        super::awsquery::endpoint(state, req, &QUERY).await
    }
}

// ---- lenient readers (CBOR numbers or Query text) ----

fn get<'a>(c: &'a JsonCall, name: &str) -> Option<&'a Value> {
    c.body.get(name)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn wrong(name: &str, what: &str) -> ApiError {
    invalid(format!("The parameter {name} must be {what}."))
}

fn str_of(v: Option<&Value>, name: &str) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong(name, "a string")),
    }
}

fn f64_of(v: Option<&Value>, name: &str) -> ApiResult<Option<f64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| wrong(name, "a number")),
        Some(_) => Err(wrong(name, "a number")),
    }
}

fn i64_of(v: Option<&Value>, name: &str) -> ApiResult<Option<i64>> {
    match f64_of(v, name)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => Ok(Some(x as i64)),
        Some(_) => Err(wrong(name, "an integer")),
    }
}

fn bool_of(v: Option<&Value>, name: &str) -> ApiResult<Option<bool>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(wrong(name, "true or false")),
    }
}

fn list_of<'a>(v: Option<&'a Value>, name: &str) -> ApiResult<&'a [Value]> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        // awsQuery writes an empty list as `Name=`.
        Some(Value::String(s)) if s.is_empty() => Ok(&[]),
        Some(_) => Err(wrong(name, "a list")),
    }
}

fn strings(v: Option<&Value>, name: &str) -> ApiResult<Vec<String>> {
    list_of(v, name)?
        .iter()
        .map(|x| text(Some(x)).ok_or_else(|| wrong(name, "a list of strings")))
        .collect()
}

/// Epoch milliseconds from epoch seconds (a number, or its text) or ISO 8601 text.
fn time_of(v: Option<&Value>, name: &str) -> ApiResult<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|s| (s * 1000.0).round() as i64)),
        Some(Value::String(s)) => {
            if let Ok(secs) = s.trim().parse::<f64>() {
                return Ok(Some((secs * 1000.0).round() as i64));
            }
            parse_iso(s)
                .map(Some)
                .ok_or_else(|| wrong(name, "a timestamp (ISO 8601 or epoch seconds)"))
        }
        Some(_) => Err(wrong(name, "a timestamp")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` → epoch ms.
fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, m, day): (i32, u8, u8) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|&i| i >= 8) {
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, mi) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            c,
            sign * (h.parse::<i64>().ok()? * 3600 + mi.parse::<i64>().ok()? * 60) * 1000,
        )
    } else {
        (rest, 0)
    };
    let mut t = clock.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, day).ok()?;
    let days = i64::from(date.to_julian_day()) - 2_440_588;
    Some(
        days * 86_400_000 + h * 3_600_000 + mi * 60_000 + (sec * 1000.0).round() as i64 - offset_ms,
    )
}

fn dimensions(v: Option<&Value>, name: &str) -> ApiResult<Vec<Dimension>> {
    list_of(v, name)?
        .iter()
        .map(|d| {
            let n = text(d.get("Name")).ok_or_else(|| missing(&format!("{name}.member.N.Name")))?;
            let v =
                text(d.get("Value")).ok_or_else(|| missing(&format!("{name}.member.N.Value")))?;
            Ok(Dimension { name: n, value: v })
        })
        .collect()
}

fn dims_json(d: &[Dimension]) -> Value {
    json!(
        d.iter()
            .map(|d| json!({"Name": d.name, "Value": d.value}))
            .collect::<Vec<_>>()
    )
}

fn required(c: &JsonCall, name: &str) -> ApiResult<String> {
    str_of(get(c, name), name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(name))
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "PutMetricData" => put_metric_data(c),
        "GetMetricStatistics" => get_metric_statistics(c),
        "GetMetricData" => get_metric_data(c),
        "ListMetrics" => list_metrics(c),
        "PutDashboard" => {
            let name = required(c, "DashboardName")?;
            let body = required(c, "DashboardBody")?;
            c.mutate(|w, env| w.put_dashboard(env, &name, &body))?;
            Ok(json!({ "DashboardValidationMessages": [] }))
        }
        "GetDashboard" => {
            let name = required(c, "DashboardName")?;
            let w = c.read()?;
            let d = w.dashboard(&name)?;
            Ok(json!({ "DashboardArn": d.id, "DashboardBody": d.body, "DashboardName": d.name }))
        }
        "ListDashboards" => {
            let prefix =
                str_of(get(c, "DashboardNamePrefix"), "DashboardNamePrefix")?.unwrap_or_default();
            let w = c.read()?;
            let entries: Vec<Value> = w
                .dashboards
                .iter()
                .filter(|d| d.name.starts_with(&prefix))
                .map(|d| {
                    json!({
                        "DashboardName": d.name,
                        "DashboardArn": d.id,
                        "LastModified": d.modified,
                        "Size": d.body.len(),
                    })
                })
                .collect();
            Ok(json!({ "DashboardEntries": entries }))
        }
        "DeleteDashboards" => {
            let names = strings(get(c, "DashboardNames"), "DashboardNames")?;
            c.mutate(|w, _| w.delete_dashboards(&names))?;
            Ok(json!({}))
        }
        "PutMetricAlarm" => put_metric_alarm(c),
        "PutCompositeAlarm" => {
            let name = required(c, "AlarmName")?;
            let rule = required(c, "AlarmRule")?;
            let description = str_of(get(c, "AlarmDescription"), "AlarmDescription")?;
            let enabled = bool_of(get(c, "ActionsEnabled"), "ActionsEnabled")?;
            let ok = strings(get(c, "OKActions"), "OKActions")?;
            let alarm = strings(get(c, "AlarmActions"), "AlarmActions")?;
            let insufficient =
                strings(get(c, "InsufficientDataActions"), "InsufficientDataActions")?;
            let tags = tags(c)?;
            c.mutate(|w, env| {
                w.put_composite_alarm(
                    env,
                    &name,
                    &rule,
                    description,
                    enabled,
                    ok,
                    alarm,
                    insufficient,
                    tags,
                )
            })?;
            Ok(json!({}))
        }
        "DescribeAlarms" => describe_alarms(c),
        "DescribeAlarmsForMetric" => {
            let ns = required(c, "Namespace")?;
            let name = required(c, "MetricName")?;
            let mut dims = dimensions(get(c, "Dimensions"), "Dimensions")?;
            dims.sort();
            let stat = str_of(get(c, "Statistic"), "Statistic")?;
            let period = i64_of(get(c, "Period"), "Period")?;
            let w = c.read()?;
            let alarms: Vec<Value> = w
                .alarms
                .in_region(&c.env.region)
                .filter(|a| !a.is_composite() && a.namespace == ns && a.metric_name == name)
                .filter(|a| get(c, "Dimensions").is_none() || a.dimensions == dims)
                .filter(|a| stat.as_deref().is_none_or(|s| a.statistic == s))
                .filter(|a| period.is_none_or(|p| a.period == p))
                .map(metric_alarm_json)
                .collect();
            Ok(json!({ "MetricAlarms": alarms }))
        }
        "DescribeAlarmHistory" => describe_alarm_history(c),
        "SetAlarmState" => {
            let name = required(c, "AlarmName")?;
            let state = required(c, "StateValue")?;
            let reason = required(c, "StateReason")?;
            let data = str_of(get(c, "StateReasonData"), "StateReasonData")?;
            c.mutate(|w, env| w.set_alarm_state(env, &name, &state, &reason, data))?;
            Ok(json!({}))
        }
        "DeleteAlarms" => {
            let names = strings(get(c, "AlarmNames"), "AlarmNames")?;
            if names.is_empty() {
                return Err(missing("AlarmNames"));
            }
            c.mutate(|w, env| w.delete_alarms(env, &names))?;
            Ok(json!({}))
        }
        "EnableAlarmActions" | "DisableAlarmActions" => {
            let names = strings(get(c, "AlarmNames"), "AlarmNames")?;
            let on = op == "EnableAlarmActions";
            c.mutate(|w, env| w.set_alarm_actions_enabled(env, &names, on))?;
            Ok(json!({}))
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("vpclab does not implement the CloudWatch operation {op} (see docs/api.md)"),
        )),
    }
}

fn tags(c: &JsonCall) -> ApiResult<BTreeMap<String, String>> {
    list_of(get(c, "Tags"), "Tags")?
        .iter()
        .map(|t| {
            let k = text(t.get("Key")).ok_or_else(|| missing("Tags.member.N.Key"))?;
            let v = text(t.get("Value")).ok_or_else(|| missing("Tags.member.N.Value"))?;
            Ok((k, v))
        })
        .collect()
}

fn put_metric_data(c: &mut JsonCall) -> ApiResult<Value> {
    let ns = required(c, "Namespace")?;
    let mut data = Vec::new();
    let items = list_of(get(c, "MetricData"), "MetricData")?;
    if items.is_empty() {
        return Err(missing("MetricData"));
    }
    for d in items {
        let name =
            text(d.get("MetricName")).ok_or_else(|| missing("MetricData.member.N.MetricName"))?;
        let value = f64_of(d.get("Value"), "Value")?;
        let sv = d.get("StatisticValues").filter(|v| !v.is_null());
        let values = list_of(d.get("Values"), "Values")?;
        let counts = list_of(d.get("Counts"), "Counts")?;
        let given = [value.is_some(), sv.is_some(), !values.is_empty()];
        if given.iter().filter(|x| **x).count() > 1 {
            return Err(ApiError::new(
                "InvalidParameterCombination",
                format!(
                    "The parameters MetricData.member.N.Value, MetricData.member.N.StatisticValues and MetricData.member.N.Values are mutually exclusive (metric {name})."
                ),
            ));
        }
        let mut stats = Vec::new();
        if let Some(v) = value {
            stats.push(Stats::one(v));
        }
        if let Some(sv) = sv {
            let f = |k: &str| -> ApiResult<f64> {
                f64_of(sv.get(k), k)?
                    .ok_or_else(|| missing(&format!("MetricData.member.N.StatisticValues.{k}")))
            };
            stats.push(Stats {
                count: f("SampleCount")?,
                sum: f("Sum")?,
                min: f("Minimum")?,
                max: f("Maximum")?,
            });
        }
        if !values.is_empty() {
            if values.len() > cw::MAX_VALUES {
                return Err(invalid(format!(
                    "The collection Values must not have a size greater than {}.",
                    cw::MAX_VALUES
                )));
            }
            if !counts.is_empty() && counts.len() != values.len() {
                return Err(invalid(
                    "The Values and Counts arrays must have the same length.",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                let v = f64_of(Some(v), "Values")?.unwrap_or(0.0);
                let n = match counts.get(i) {
                    Some(n) => f64_of(Some(n), "Counts")?.unwrap_or(1.0),
                    None => 1.0,
                };
                stats.push(Stats {
                    count: n,
                    sum: v * n,
                    min: v,
                    max: v,
                });
            }
        }
        data.push(Datum {
            name,
            dimensions: dimensions(d.get("Dimensions"), "Dimensions")?,
            timestamp: time_of(d.get("Timestamp"), "Timestamp")?,
            stats,
            unit: text(d.get("Unit")),
            resolution: i64_of(d.get("StorageResolution"), "StorageResolution")?,
        });
    }
    c.mutate(|w, env| w.put_metric_data(env, &ns, data))?;
    Ok(json!({}))
}

/// StartTime and EndTime (epoch ms), start before end.
fn window(c: &JsonCall) -> ApiResult<(i64, i64)> {
    let start = time_of(get(c, "StartTime"), "StartTime")?.ok_or_else(|| missing("StartTime"))?;
    let end = time_of(get(c, "EndTime"), "EndTime")?.ok_or_else(|| missing("EndTime"))?;
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok((start, end))
}

fn get_metric_statistics(c: &mut JsonCall) -> ApiResult<Value> {
    let ns = required(c, "Namespace")?;
    let name = required(c, "MetricName")?;
    let dims = dimensions(get(c, "Dimensions"), "Dimensions")?;
    let (start, end) = window(c)?;
    let period = i64_of(get(c, "Period"), "Period")?.ok_or_else(|| missing("Period"))?;
    cw::check_period(period)?;
    let stats = strings(get(c, "Statistics"), "Statistics")?;
    let extended = strings(get(c, "ExtendedStatistics"), "ExtendedStatistics")?;
    if stats.is_empty() && extended.is_empty() {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            "Must specify either Statistics or ExtendedStatistics",
        ));
    }
    if !extended.is_empty() {
        return Err(invalid(
            "vpclab does not compute percentiles (ExtendedStatistics).",
        ));
    }
    for s in &stats {
        if !cw::STATISTICS.contains(&s.as_str()) {
            return Err(invalid(format!(
                "The parameter Statistics.member.N must be a value in the set [ SampleCount, Average, Sum, Minimum, Maximum ] (got {s})."
            )));
        }
    }
    let unit = text(get(c, "Unit"));
    if let Some(u) = &unit {
        cw::check_unit(u)?;
    }
    let p = period * 1000;
    if (end - start) / p > 1440 {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            "You have requested up to 1,440 datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
        ));
    }
    let w = c.read()?;
    let mut points = Vec::new();
    if let Some(m) = w.metric(&c.env.region, &ns, &name, &dims) {
        for (t, s) in m.periods(start, end, p, unit.as_deref()) {
            let mut dp = json!({
                "Timestamp": t,
                "Unit": unit.clone().unwrap_or_else(|| m.unit().to_string()),
            });
            for st in &stats {
                dp[st] = json!(s.get(st).unwrap_or(0.0));
            }
            points.push(dp);
        }
    }
    Ok(json!({ "Label": name, "Datapoints": points }))
}

fn metric_key(m: &Metric) -> Value {
    json!({ "Namespace": m.namespace, "MetricName": m.name, "Dimensions": dims_json(&m.dimensions) })
}

const LIST_PAGE: usize = 500;

fn list_metrics(c: &mut JsonCall) -> ApiResult<Value> {
    let ns = str_of(get(c, "Namespace"), "Namespace")?;
    let name = str_of(get(c, "MetricName"), "MetricName")?;
    let filters: Vec<(String, Option<String>)> = list_of(get(c, "Dimensions"), "Dimensions")?
        .iter()
        .map(|d| {
            Ok((
                text(d.get("Name")).ok_or_else(|| missing("Dimensions.member.N.Name"))?,
                text(d.get("Value")),
            ))
        })
        .collect::<ApiResult<_>>()?;
    let recent = str_of(get(c, "RecentlyActive"), "RecentlyActive")?;
    if recent.as_deref().is_some_and(|r| r != "PT3H") {
        return Err(invalid("The parameter RecentlyActive must be PT3H."));
    }
    let after = match str_of(get(c, "NextToken"), "NextToken")? {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(&t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::new("InvalidNextToken", "The NextToken is invalid."))?,
        ),
    };
    let w = c.read()?;
    let now = c.env.now.0;
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut more = false;
    for m in w.metrics.in_region(&c.env.region) {
        if after.as_deref().is_some_and(|a| m.id.as_str() <= a) {
            continue;
        }
        if ns.as_deref().is_some_and(|n| n != m.namespace)
            || name.as_deref().is_some_and(|n| n != m.name)
        {
            continue;
        }
        let dims_ok = filters.iter().all(|(n, v)| {
            m.dimensions
                .iter()
                .any(|d| &d.name == n && v.as_deref().is_none_or(|v| v == d.value))
        });
        if !dims_ok {
            continue;
        }
        if recent.is_some() && m.points.last().is_none_or(|p| p.t < now - 3 * 3600 * 1000) {
            continue;
        }
        if out.len() == LIST_PAGE {
            more = true;
            break;
        }
        out.push((m.id.clone(), metric_key(m)));
    }
    let mut v = json!({ "Metrics": out.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>() });
    if more && let Some((id, _)) = out.last() {
        v["NextToken"] = json!(URL_SAFE_NO_PAD.encode(id));
    }
    Ok(v)
}

/// The metric queries' results, for expressions to refer to.
struct Results {
    by_id: BTreeMap<String, Series>,
    metrics: Vec<(String, Series)>,
}

impl Scope for Results {
    fn series(&self, id: &str) -> Option<Series> {
        self.by_id.get(id).cloned()
    }
    fn metrics(&self) -> Vec<(String, Series)> {
        self.metrics.clone()
    }
}

fn check_query_id(id: &str) -> ApiResult<()> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id.len() <= 255
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            "ValidationError",
            format!(
                "The value {id} for parameter MetricDataQueries.member.N.Id is not valid: it must start with a lowercase letter and hold only letters, numbers and underscores."
            ),
        ))
    }
}

fn get_metric_data(c: &mut JsonCall) -> ApiResult<Value> {
    let (start, end) = window(c)?;
    let queries = list_of(get(c, "MetricDataQueries"), "MetricDataQueries")?.to_vec();
    if queries.is_empty() {
        return Err(missing("MetricDataQueries"));
    }
    if queries.len() > 500 {
        return Err(invalid(
            "The collection MetricDataQueries must not have a size greater than 500.",
        ));
    }
    let descending = match str_of(get(c, "ScanBy"), "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(o) => {
            return Err(invalid(format!(
                "The value {o} for parameter ScanBy is not valid."
            )));
        }
    };
    let w = c.read()?;
    let mut results = Results {
        by_id: BTreeMap::new(),
        metrics: Vec::new(),
    };
    let mut order = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    // Metric queries first (expressions may refer to any of them), then expressions
    // in the order given.
    for q in &queries {
        let id = text(q.get("Id")).ok_or_else(|| missing("MetricDataQueries.member.N.Id"))?;
        check_query_id(&id)?;
        if !ids.insert(id.clone()) {
            return Err(ApiError::new(
                "ValidationError",
                format!("The Id {id} is used more than once."),
            ));
        }
        let label = text(q.get("Label"));
        let ret = bool_of(q.get("ReturnData"), "ReturnData")?.unwrap_or(true);
        let stat = q.get("MetricStat").filter(|v| !v.is_null());
        let expr = text(q.get("Expression"));
        match (stat, &expr) {
            (Some(ms), None) => {
                let m = ms
                    .get("Metric")
                    .ok_or_else(|| missing("MetricStat.Metric"))?;
                let ns = text(m.get("Namespace"))
                    .ok_or_else(|| missing("MetricStat.Metric.Namespace"))?;
                let name = text(m.get("MetricName"))
                    .ok_or_else(|| missing("MetricStat.Metric.MetricName"))?;
                let dims = dimensions(m.get("Dimensions"), "Dimensions")?;
                let period = i64_of(ms.get("Period"), "Period")?
                    .ok_or_else(|| missing("MetricStat.Period"))?;
                cw::check_period(period)?;
                let st = text(ms.get("Stat")).ok_or_else(|| missing("MetricStat.Stat"))?;
                if !cw::STATISTICS.contains(&st.as_str()) {
                    return Err(invalid(format!(
                        "The statistic {st} is not supported by vpclab (SampleCount, Average, Sum, Minimum, Maximum)."
                    )));
                }
                let unit = text(ms.get("Unit"));
                let series: Series = w
                    .metric(&c.env.region, &ns, &name, &dims)
                    .map(|m| {
                        m.periods(start, end, period * 1000, unit.as_deref())
                            .into_iter()
                            .filter_map(|(t, s)| Some((t, s.get(&st)?)))
                            .collect()
                    })
                    .unwrap_or_default();
                let label = label.unwrap_or_else(|| name.clone());
                results.metrics.push((label.clone(), series.clone()));
                results.by_id.insert(id.clone(), series);
                order.push((id, label, ret, None));
            }
            (None, Some(e)) => order.push((id.clone(), label.unwrap_or(id), ret, Some(e.clone()))),
            _ => {
                return Err(ApiError::new(
                    "ValidationError",
                    format!("The query {id} must have exactly one of MetricStat and Expression."),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (id, label, ret, expr) in order {
        let series = match expr {
            None => results.by_id.get(&id).cloned().unwrap_or_default(),
            Some(e) => {
                let v = math::eval(&e, &results).map_err(|m| {
                    ApiError::new("ValidationError", format!("Error in expression {id}: {m}"))
                })?;
                let s = match v {
                    Val::Series(s) => s,
                    // A number is reported at every timestamp the metric queries have.
                    Val::Scalar(x) => results
                        .metrics
                        .iter()
                        .flat_map(|(_, s)| s.keys().copied())
                        .map(|t| (t, x))
                        .collect(),
                    Val::List(_) => {
                        return Err(ApiError::new(
                            "ValidationError",
                            format!(
                                "Error in expression {id}: the expression returns an array of time series; wrap it in a function such as SUM()."
                            ),
                        ));
                    }
                };
                results.by_id.insert(id.clone(), s.clone());
                s
            }
        };
        if !ret {
            continue;
        }
        let mut points: Vec<(i64, f64)> =
            series.into_iter().filter(|(_, v)| v.is_finite()).collect();
        if descending {
            points.reverse();
        }
        out.push(json!({
            "Id": id,
            "Label": label,
            "Timestamps": points.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": "Complete",
        }));
    }
    Ok(json!({ "MetricDataResults": out, "Messages": [] }))
}

fn put_metric_alarm(c: &mut JsonCall) -> ApiResult<Value> {
    let a = MetricAlarmInput {
        name: required(c, "AlarmName")?,
        description: str_of(get(c, "AlarmDescription"), "AlarmDescription")?,
        namespace: str_of(get(c, "Namespace"), "Namespace")?,
        metric_name: str_of(get(c, "MetricName"), "MetricName")?,
        dimensions: dimensions(get(c, "Dimensions"), "Dimensions")?,
        statistic: str_of(get(c, "Statistic"), "Statistic")?,
        extended_statistic: str_of(get(c, "ExtendedStatistic"), "ExtendedStatistic")?,
        has_metrics: !list_of(get(c, "Metrics"), "Metrics")?.is_empty(),
        period: i64_of(get(c, "Period"), "Period")?,
        unit: text(get(c, "Unit")),
        threshold: f64_of(get(c, "Threshold"), "Threshold")?,
        comparison: str_of(get(c, "ComparisonOperator"), "ComparisonOperator")?,
        evaluation_periods: i64_of(get(c, "EvaluationPeriods"), "EvaluationPeriods")?,
        datapoints_to_alarm: i64_of(get(c, "DatapointsToAlarm"), "DatapointsToAlarm")?,
        treat_missing: str_of(get(c, "TreatMissingData"), "TreatMissingData")?,
        actions_enabled: bool_of(get(c, "ActionsEnabled"), "ActionsEnabled")?,
        ok_actions: strings(get(c, "OKActions"), "OKActions")?,
        alarm_actions: strings(get(c, "AlarmActions"), "AlarmActions")?,
        insufficient_actions: strings(
            get(c, "InsufficientDataActions"),
            "InsufficientDataActions",
        )?,
        tags: tags(c)?,
    };
    c.mutate(|w, env| w.put_metric_alarm(env, a))?;
    Ok(json!({}))
}

fn common_alarm_json(a: &Alarm) -> Value {
    let mut v = json!({
        "AlarmName": a.name,
        "AlarmArn": a.id,
        "AlarmConfigurationUpdatedTimestamp": a.config_updated,
        "ActionsEnabled": a.actions_enabled,
        "OKActions": a.ok_actions,
        "AlarmActions": a.alarm_actions,
        "InsufficientDataActions": a.insufficient_actions,
        "StateValue": a.state,
        "StateReason": a.reason,
        "StateUpdatedTimestamp": a.state_updated,
        "StateTransitionedTimestamp": a.state_updated,
    });
    if let Some(d) = &a.description {
        v["AlarmDescription"] = json!(d);
    }
    if let Some(d) = &a.reason_data {
        v["StateReasonData"] = json!(d);
    }
    v
}

fn metric_alarm_json(a: &Alarm) -> Value {
    let mut v = common_alarm_json(a);
    v["MetricName"] = json!(a.metric_name);
    v["Namespace"] = json!(a.namespace);
    v["Statistic"] = json!(a.statistic);
    v["Dimensions"] = dims_json(&a.dimensions);
    v["Period"] = json!(a.period);
    v["EvaluationPeriods"] = json!(a.evaluation_periods);
    v["Threshold"] = json!(a.threshold);
    v["ComparisonOperator"] = json!(a.comparison);
    v["TreatMissingData"] = json!(a.treat_missing);
    if let Some(m) = a.datapoints_to_alarm {
        v["DatapointsToAlarm"] = json!(m);
    }
    if let Some(u) = &a.unit {
        v["Unit"] = json!(u);
    }
    v
}

fn composite_alarm_json(a: &Alarm) -> Value {
    let mut v = common_alarm_json(a);
    v["AlarmRule"] = json!(a.rule);
    v
}

fn alarm_types(c: &JsonCall) -> ApiResult<(bool, bool)> {
    let types = strings(get(c, "AlarmTypes"), "AlarmTypes")?;
    if types.is_empty() {
        // Without AlarmTypes, AWS answers metric alarms only.
        return Ok((true, false));
    }
    for t in &types {
        if t != "MetricAlarm" && t != "CompositeAlarm" {
            return Err(invalid(format!(
                "The value {t} for parameter AlarmTypes is not valid (MetricAlarm, CompositeAlarm)."
            )));
        }
    }
    Ok((
        types.iter().any(|t| t == "MetricAlarm"),
        types.iter().any(|t| t == "CompositeAlarm"),
    ))
}

fn max_records(c: &JsonCall) -> ApiResult<usize> {
    match i64_of(get(c, "MaxRecords"), "MaxRecords")? {
        None => Ok(100),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "The value {n} for parameter MaxRecords must be between 1 and 100."
        ))),
    }
}

fn token_after(c: &JsonCall) -> ApiResult<Option<String>> {
    match str_of(get(c, "NextToken"), "NextToken")? {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(&t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::new("InvalidNextToken", "The NextToken is invalid.")),
    }
}

fn describe_alarms(c: &mut JsonCall) -> ApiResult<Value> {
    let names = strings(get(c, "AlarmNames"), "AlarmNames")?;
    let prefix = str_of(get(c, "AlarmNamePrefix"), "AlarmNamePrefix")?;
    if !names.is_empty() && prefix.is_some() {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            "AlarmNames and AlarmNamePrefix cannot be used together.",
        ));
    }
    let state = str_of(get(c, "StateValue"), "StateValue")?;
    if let Some(s) = &state
        && !crate::model::cloudwatch::alarm::STATES.contains(&s.as_str())
    {
        return Err(invalid(format!(
            "The value {s} for parameter StateValue is not valid."
        )));
    }
    let action_prefix = str_of(get(c, "ActionPrefix"), "ActionPrefix")?;
    let (metric, composite) = alarm_types(c)?;
    let max = max_records(c)?;
    let after = token_after(c)?;
    let w = c.read()?;
    let mut rows: Vec<&Alarm> = w
        .alarms
        .in_region(&c.env.region)
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .filter(|a| prefix.as_deref().is_none_or(|p| a.name.starts_with(p)))
        .filter(|a| state.as_deref().is_none_or(|s| a.state == s))
        .filter(|a| {
            action_prefix.as_deref().is_none_or(|p| {
                a.alarm_actions
                    .iter()
                    .chain(&a.ok_actions)
                    .chain(&a.insufficient_actions)
                    .any(|x| x.starts_with(p))
            })
        })
        .filter(|a| if a.is_composite() { composite } else { metric })
        .filter(|a| after.as_deref().is_none_or(|x| a.name.as_str() > x))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let more = rows.len() > max;
    rows.truncate(max);
    let mut v = json!({
        "MetricAlarms": rows.iter().filter(|a| !a.is_composite()).map(|a| metric_alarm_json(a)).collect::<Vec<_>>(),
        "CompositeAlarms": rows.iter().filter(|a| a.is_composite()).map(|a| composite_alarm_json(a)).collect::<Vec<_>>(),
    });
    if more && let Some(last) = rows.last() {
        v["NextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.name));
    }
    Ok(v)
}

fn describe_alarm_history(c: &mut JsonCall) -> ApiResult<Value> {
    let name = str_of(get(c, "AlarmName"), "AlarmName")?;
    let kind = str_of(get(c, "HistoryItemType"), "HistoryItemType")?;
    if let Some(k) = &kind
        && !["ConfigurationUpdate", "StateUpdate", "Action"].contains(&k.as_str())
    {
        return Err(invalid(format!(
            "The value {k} for parameter HistoryItemType is not valid."
        )));
    }
    let start = time_of(get(c, "StartDate"), "StartDate")?;
    let end = time_of(get(c, "EndDate"), "EndDate")?;
    let (metric, composite) = match get(c, "AlarmTypes") {
        None => (true, true),
        Some(_) => alarm_types(c)?,
    };
    let ascending = match str_of(get(c, "ScanBy"), "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(o) => {
            return Err(invalid(format!(
                "The value {o} for parameter ScanBy is not valid."
            )));
        }
    };
    let max = max_records(c)?;
    let skip: usize = token_after(c)?.and_then(|t| t.parse().ok()).unwrap_or(0);
    let w = c.read()?;
    let mut items: Vec<(i64, Value)> = Vec::new();
    for a in w.alarms.in_region(&c.env.region) {
        if name.as_deref().is_some_and(|n| n != a.name)
            || !(if a.is_composite() { composite } else { metric })
        {
            continue;
        }
        for h in &a.history {
            if kind.as_deref().is_some_and(|k| k != h.kind)
                || start.is_some_and(|s| h.at < s)
                || end.is_some_and(|e| h.at > e)
            {
                continue;
            }
            items.push((
                h.at,
                json!({
                    "AlarmName": a.name,
                    "AlarmType": if a.is_composite() { "CompositeAlarm" } else { "MetricAlarm" },
                    "Timestamp": h.at,
                    "HistoryItemType": h.kind,
                    "HistorySummary": h.summary,
                    "HistoryData": h.data,
                }),
            ));
        }
    }
    items.sort_by_key(|(t, _)| *t);
    if !ascending {
        items.reverse();
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(max)
        .map(|(_, v)| v)
        .collect();
    let mut v = json!({ "AlarmHistoryItems": page });
    if skip + max < total {
        v["NextToken"] = json!(URL_SAFE_NO_PAD.encode((skip + max).to_string()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_epoch_timestamps_parse_to_milliseconds() {
        assert_eq!(parse_iso("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_iso("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_iso("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(time_of(Some(&json!(1.5)), "T").unwrap(), Some(1500));
        assert_eq!(time_of(Some(&json!("2")), "T").unwrap(), Some(2000));
        assert!(time_of(Some(&json!("soon")), "T").is_err());
    }
}

//! CloudWatch Logs (`Logs_20140328`, AWS JSON 1.1): log groups, streams, events,
//! metric filters, retention and tags, shaped as botocore's `logs/2014-03-28/service-2.json` describes
//! them. Parsing and rendering only: the rules are in `model::logs`.
//!
//! Pagination tokens are opaque to clients but readable here: DescribeLogGroups and
//! DescribeLogStreams page by the last name returned, GetLogEvents by the (timestamp,
//! sequence) key of the next or previous event (`f/…`, `b/…` as AWS's tokens look),
//! FilterLogEvents by the key of the last event returned. A token this server did not
//! hand out is `InvalidParameterException`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::json::{JsonCall, JsonService, unknown_operation};
use crate::model::logs::pattern::Pattern;
use crate::model::logs::{self, InputEvent, LogEvent, LogGroup, LogStream, invalid};
use crate::model::{ApiResult, World};

pub static SERVICE: JsonService = JsonService {
    content_type: "application/x-amz-json-1.1",
    validation_code: "InvalidParameterException",
    timestamps: &[],
    query_compatible: false,
    handler: dispatch,
    iam_prefix: "logs",
    resource: log_group_arn,
    passed_roles: super::json::no_roles,
};

/// The log group a call names (Service Authorization Reference: the `log-group`
/// resource type, `arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*`), else `*`.
fn log_group_arn(region: &str, account: &str, body: &super::json::Body) -> String {
    match body.str("logGroupName").ok().flatten() {
        Some(name) => format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
        None => "*".to_string(),
    }
}

/// The operations vpclab answers (docs/api.md lists the same).
pub const OPERATIONS: &[&str] = &[
    "CreateLogGroup",
    "DeleteLogGroup",
    "DescribeLogGroups",
    "CreateLogStream",
    "DeleteLogStream",
    "DescribeLogStreams",
    "PutLogEvents",
    "GetLogEvents",
    "FilterLogEvents",
    "PutMetricFilter",
    "DescribeMetricFilters",
    "DeleteMetricFilter",
    "PutRetentionPolicy",
    "DeleteRetentionPolicy",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "TagLogGroup",
    "UntagLogGroup",
    "ListTagsLogGroup",
];

/// Largest page of DescribeLogGroups/DescribeLogStreams (`limit` 1–50).
const MAX_DESCRIBE: i64 = 50;
/// Largest page of GetLogEvents/FilterLogEvents (`limit` 1–10,000).
const MAX_EVENTS: i64 = 10_000;

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "CreateLogGroup" => {
            let name = c.body.required_str("logGroupName")?.to_string();
            let kms = c.body.str("kmsKeyId")?.map(str::to_string);
            let tags = c.body.str_map("tags")?;
            c.mutate(|w, env| w.create_log_group(env, &name, kms, tags))?;
            Ok(json!({}))
        }
        "DeleteLogGroup" => {
            let name = c.body.required_str("logGroupName")?.to_string();
            c.mutate(|w, env| w.delete_log_group(env, &name))?;
            Ok(json!({}))
        }
        "DescribeLogGroups" => describe_log_groups(c),
        "CreateLogStream" => {
            let (g, s) = group_and_stream(c)?;
            c.mutate(|w, env| w.create_log_stream(env, &g, &s))?;
            Ok(json!({}))
        }
        "DeleteLogStream" => {
            let (g, s) = group_and_stream(c)?;
            c.mutate(|w, env| w.delete_log_stream(env, &g, &s))?;
            Ok(json!({}))
        }
        "DescribeLogStreams" => describe_log_streams(c),
        "PutLogEvents" => put_log_events(c),
        "GetLogEvents" => get_log_events(c),
        "FilterLogEvents" => filter_log_events(c),
        "PutMetricFilter" => put_metric_filter(c),
        "DescribeMetricFilters" => describe_metric_filters(c),
        "DeleteMetricFilter" => {
            let g = c.body.required_str("logGroupName")?.to_string();
            let name = c.body.required_str("filterName")?.to_string();
            c.mutate(|w, env| w.delete_metric_filter(env, &g, &name))?;
            Ok(json!({}))
        }
        "PutRetentionPolicy" => {
            let g = c.body.required_str("logGroupName")?.to_string();
            let days = c.body.int("retentionInDays")?.ok_or_else(|| {
                invalid("1 validation error detected: Value null at 'retentionInDays' failed to satisfy constraint: Member must not be null")
            })?;
            c.mutate(|w, env| w.put_retention_policy(env, &g, days))?;
            Ok(json!({}))
        }
        "DeleteRetentionPolicy" => {
            let g = c.body.required_str("logGroupName")?.to_string();
            c.mutate(|w, env| w.delete_retention_policy(env, &g))?;
            Ok(json!({}))
        }
        "TagResource" | "TagLogGroup" => {
            let ident = tag_target(c, op)?;
            let tags = c.body.str_map("tags")?;
            if tags.is_empty() {
                return Err(invalid(
                    "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
                ));
            }
            c.mutate(|w, env| w.tag_log_group(env, &ident, &tags))?;
            Ok(json!({}))
        }
        "UntagResource" | "UntagLogGroup" => {
            let ident = tag_target(c, op)?;
            let keys = c.body.str_list(if op == "UntagResource" {
                "tagKeys"
            } else {
                "tags"
            })?;
            c.mutate(|w, env| w.untag_log_group(env, &ident, &keys))?;
            Ok(json!({}))
        }
        "ListTagsForResource" | "ListTagsLogGroup" => {
            let ident = tag_target(c, op)?;
            let w = c.read()?;
            let g = w.log_group_by_ident(&c.env, &ident)?;
            Ok(json!({ "tags": g.tags }))
        }
        _ => Err(unknown_operation(op)),
    }
}

/// The group a tagging call names: `resourceArn` (TagResource …) or `logGroupName`
/// (the older TagLogGroup …).
fn tag_target(c: &JsonCall, op: &str) -> ApiResult<String> {
    let member = if op.ends_with("LogGroup") {
        "logGroupName"
    } else {
        "resourceArn"
    };
    let v = c.body.required_str(member)?;
    if member == "resourceArn" && !v.starts_with("arn:aws:logs:") {
        return Err(invalid(format!("Invalid resource ARN: {v}")));
    }
    Ok(v.to_string())
}

fn group_and_stream(c: &JsonCall) -> ApiResult<(String, String)> {
    Ok((
        c.body.required_str("logGroupName")?.to_string(),
        c.body.required_str("logStreamName")?.to_string(),
    ))
}

/// The group named by `logGroupName` or `logGroupIdentifier` (exactly one).
fn target_group<'w>(c: &JsonCall, w: &'w World) -> ApiResult<&'w LogGroup> {
    match (
        c.body.str("logGroupName")?,
        c.body.str("logGroupIdentifier")?,
    ) {
        (Some(n), None) => w.log_group(&c.env, n),
        (None, Some(i)) => w.log_group_by_ident(&c.env, i),
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Should provide either name or identifier for the log group.",
        )),
    }
}

fn limit(c: &JsonCall, max: i64) -> ApiResult<usize> {
    match c.body.int("limit")? {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
        ))),
    }
}

fn bad_token() -> crate::model::ApiError {
    invalid("The specified nextToken is invalid.")
}

fn name_token(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("n:{name}"))
}

fn read_name_token(c: &JsonCall) -> ApiResult<Option<String>> {
    let Some(t) = c.body.str("nextToken")? else {
        return Ok(None);
    };
    let bytes = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad_token())?;
    let s = String::from_utf8(bytes).map_err(|_| bad_token())?;
    s.strip_prefix("n:")
        .map(|n| Some(n.to_string()))
        .ok_or_else(bad_token)
}

fn group_json(g: &LogGroup, w: &World) -> Value {
    let stored: u64 = w.log_streams_of(g).map(LogStream::stored_bytes).sum();
    let mut v = json!({
        "logGroupName": g.name,
        "creationTime": g.created,
        "metricFilterCount": 0,
        "arn": format!("{}:*", g.id),
        "logGroupArn": g.id,
        "storedBytes": stored,
        "logGroupClass": "STANDARD",
    });
    if let Some(d) = g.retention_days {
        v["retentionInDays"] = json!(d);
    }
    if let Some(k) = &g.kms_key_id {
        v["kmsKeyId"] = json!(k);
    }
    v
}

fn describe_log_groups(c: &mut JsonCall) -> ApiResult<Value> {
    let prefix = c.body.str("logGroupNamePrefix")?.map(str::to_string);
    let pattern = c.body.str("logGroupNamePattern")?.map(str::to_string);
    if prefix.is_some() && pattern.is_some() {
        return Err(invalid(
            "LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.",
        ));
    }
    let limit = limit(c, MAX_DESCRIBE)?;
    let after = read_name_token(c)?;
    let w = c.read()?;
    let pattern = pattern.map(|p| p.to_lowercase());
    let mut rows: Vec<&LogGroup> = w
        .log_groups
        .in_region(&c.env.region)
        .filter(|g| prefix.as_deref().is_none_or(|p| g.name.starts_with(p)))
        .filter(|g| {
            pattern
                .as_deref()
                .is_none_or(|p| g.name.to_lowercase().contains(p))
        })
        .filter(|g| after.as_deref().is_none_or(|a| g.name.as_str() > a))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out =
        json!({ "logGroups": rows.iter().map(|g| group_json(g, &w)).collect::<Vec<_>>() });
    if more && let Some(last) = rows.last() {
        out["nextToken"] = json!(name_token(&last.name));
    }
    Ok(out)
}

fn stream_json(s: &LogStream) -> Value {
    let mut v = json!({
        "logStreamName": s.name,
        "creationTime": s.created,
        "arn": s.id,
        "storedBytes": 0,
    });
    if let (Some(f), Some(l)) = (s.first_event(), s.last_event()) {
        v["firstEventTimestamp"] = json!(f);
        v["lastEventTimestamp"] = json!(l);
    }
    if let Some(i) = s.last_ingestion {
        v["lastIngestionTime"] = json!(i);
    }
    v
}

fn describe_log_streams(c: &mut JsonCall) -> ApiResult<Value> {
    let prefix = c.body.str("logStreamNamePrefix")?.map(str::to_string);
    let order = c
        .body
        .str("orderBy")?
        .unwrap_or("LogStreamName")
        .to_string();
    let descending = c.body.bool("descending")?.unwrap_or(false);
    let by_time = match order.as_str() {
        "LogStreamName" => false,
        "LastEventTime" => true,
        o => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{o}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )));
        }
    };
    if by_time && prefix.is_some() {
        return Err(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let limit = limit(c, MAX_DESCRIBE)?;
    let after = read_name_token(c)?;
    let w = c.read()?;
    let g = target_group(c, &w)?;
    let mut rows: Vec<&LogStream> = w
        .log_streams_of(g)
        .filter(|s| prefix.as_deref().is_none_or(|p| s.name.starts_with(p)))
        .collect();
    if by_time {
        rows.sort_by(|a, b| (a.last_event(), &a.name).cmp(&(b.last_event(), &b.name)));
    }
    if descending {
        rows.reverse();
    }
    // The token names the last stream returned: skip through it.
    if let Some(a) = &after {
        match rows.iter().position(|s| &s.name == a) {
            Some(p) => {
                rows.drain(..=p);
            }
            None => return Err(bad_token()),
        }
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out = json!({ "logStreams": rows.iter().map(|s| stream_json(s)).collect::<Vec<_>>() });
    if more && let Some(last) = rows.last() {
        out["nextToken"] = json!(name_token(&last.name));
    }
    Ok(out)
}

fn put_log_events(c: &mut JsonCall) -> ApiResult<Value> {
    let (g, s) = group_and_stream(c)?;
    let mut events = Vec::new();
    for (i, e) in c.body.list("logEvents")?.iter().enumerate() {
        let timestamp = e.get("timestamp").and_then(Value::as_i64);
        let message = e.get("message").and_then(Value::as_str);
        match (timestamp, message) {
            (Some(timestamp), Some(message)) => events.push(InputEvent {
                timestamp,
                message: message.to_string(),
            }),
            _ => {
                return Err(invalid(format!(
                    "1 validation error detected: Value at 'logEvents.{}.member' failed to satisfy constraint: timestamp and message must be present",
                    i + 1
                )));
            }
        }
    }
    let rejected = c.mutate(|w, env| w.put_log_events(env, &g, &s, &events, false))?;
    let mut out = json!({});
    let mut info = serde_json::Map::new();
    if let Some(i) = rejected.too_new_start {
        info.insert("tooNewLogEventStartIndex".into(), json!(i));
    }
    if let Some(i) = rejected.too_old_end {
        info.insert("tooOldLogEventEndIndex".into(), json!(i));
    }
    if let Some(i) = rejected.expired_end {
        info.insert("expiredLogEventEndIndex".into(), json!(i));
    }
    if !info.is_empty() {
        out["rejectedLogEventsInfo"] = Value::Object(info);
    }
    Ok(out)
}

/// GetLogEvents tokens: `f/` or `b/` and 56 digits, the (timestamp, sequence) key.
fn event_token(dir: char, key: (i64, u64)) -> String {
    format!("{dir}/{:026}{:030}", key.0.max(0), key.1)
}

fn read_event_token(t: &str) -> ApiResult<(char, (i64, u64))> {
    let (dir, digits) = t.split_once('/').ok_or_else(bad_token)?;
    let dir = match dir {
        "f" => 'f',
        "b" => 'b',
        _ => return Err(bad_token()),
    };
    if digits.len() != 56 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_token());
    }
    let ts = digits[..26].parse().map_err(|_| bad_token())?;
    let seq = digits[26..].parse().map_err(|_| bad_token())?;
    Ok((dir, (ts, seq)))
}

fn event_json(e: &LogEvent) -> Value {
    json!({ "timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion })
}

fn get_log_events(c: &mut JsonCall) -> ApiResult<Value> {
    let stream = c.body.required_str("logStreamName")?.to_string();
    let start = c.body.int("startTime")?;
    let end = c.body.int("endTime")?;
    let from_head = c.body.bool("startFromHead")?.unwrap_or(false);
    let limit = limit(c, MAX_EVENTS)?;
    let token = c.body.str("nextToken")?.map(read_event_token).transpose()?;
    let w = c.read()?;
    let g = target_group(c, &w)?;
    let s = w
        .log_streams
        .get(&logs::stream_arn(&g.id, &stream))
        .ok_or_else(logs::stream_not_found)?;
    let all: Vec<&LogEvent> = w
        .retained_events(g, s, c.env.now.0)
        .iter()
        .filter(|e| start.is_none_or(|t| e.timestamp >= t) && end.is_none_or(|t| e.timestamp < t))
        .collect();
    // Which slice of `all` this page is.
    let (lo, hi) = match token {
        Some(('f', k)) => {
            let lo = all.partition_point(|e| e.key() < k);
            (lo, (lo + limit).min(all.len()))
        }
        Some((_, k)) => {
            let hi = all.partition_point(|e| e.key() < k);
            (hi.saturating_sub(limit), hi)
        }
        None if from_head => (0, limit.min(all.len())),
        None => (all.len().saturating_sub(limit), all.len()),
    };
    let page = &all[lo..hi];
    // At the end of the stream the forward token stays where it is (how clients know
    // they have caught up); likewise the backward token at its start.
    let fwd = match page.last() {
        Some(e) => (e.timestamp, e.seq + 1),
        None => match token {
            Some(('f', k)) => k,
            _ => all.get(lo).map_or((c.env.now.0, 0), |e| e.key()),
        },
    };
    let back = match page.first() {
        Some(e) => e.key(),
        None => match token {
            Some(('b', k)) => k,
            _ => all.get(lo).map_or((0, 0), |e| e.key()),
        },
    };
    Ok(json!({
        "events": page.iter().map(|e| event_json(e)).collect::<Vec<_>>(),
        "nextForwardToken": event_token('f', fwd),
        "nextBackwardToken": event_token('b', back),
    }))
}

fn filter_log_events(c: &mut JsonCall) -> ApiResult<Value> {
    let names = c.body.str_list("logStreamNames")?;
    let prefix = c.body.str("logStreamNamePrefix")?.map(str::to_string);
    if !names.is_empty() && prefix.is_some() {
        return Err(invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    let start = c.body.int("startTime")?;
    let end = c.body.int("endTime")?;
    let pattern = Pattern::parse(c.body.str("filterPattern")?.unwrap_or(""))?;
    let limit = limit(c, MAX_EVENTS)?;
    let after = match c.body.str("nextToken")? {
        None => None,
        Some(t) => {
            let s = URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(bad_token)?;
            let (ts, seq) = s
                .strip_prefix("e:")
                .and_then(|r| r.split_once(':'))
                .ok_or_else(bad_token)?;
            Some((
                ts.parse::<i64>().map_err(|_| bad_token())?,
                seq.parse::<u64>().map_err(|_| bad_token())?,
            ))
        }
    };
    let w = c.read()?;
    let g = target_group(c, &w)?;
    let streams: Vec<&LogStream> = w
        .log_streams_of(g)
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .filter(|s| prefix.as_deref().is_none_or(|p| s.name.starts_with(p)))
        .collect();
    if !names.is_empty() && streams.len() < names.len() {
        return Err(logs::stream_not_found());
    }
    let mut hits: Vec<(&LogStream, &LogEvent)> = Vec::new();
    for s in &streams {
        for e in w.retained_events(g, s, c.env.now.0) {
            if start.is_some_and(|t| e.timestamp < t) || end.is_some_and(|t| e.timestamp > t) {
                continue;
            }
            if after.is_some_and(|k| e.key() <= k) {
                continue;
            }
            if pattern.matches(&e.message) {
                hits.push((s, e));
            }
        }
    }
    hits.sort_by_key(|(_, e)| e.key());
    let more = hits.len() > limit;
    hits.truncate(limit);
    let events: Vec<Value> = hits
        .iter()
        .map(|(s, e)| {
            json!({
                "logStreamName": s.name,
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": e.ingestion,
                "eventId": format!("{:056}", e.seq),
            })
        })
        .collect();
    let mut out = json!({
        "events": events,
        "searchedLogStreams": streams.iter().map(|s| json!({"logStreamName": s.name, "searchedCompletely": !more})).collect::<Vec<_>>(),
    });
    if more && let Some((_, e)) = hits.last() {
        out["nextToken"] = json!(URL_SAFE_NO_PAD.encode(format!("e:{}:{}", e.timestamp, e.seq)));
    }
    Ok(out)
}

/// PutMetricFilter: `metricTransformations` holds exactly one transformation.
fn put_metric_filter(c: &mut JsonCall) -> ApiResult<Value> {
    use crate::model::logs::metric_filter::MetricTransformation;
    let g = c.body.required_str("logGroupName")?.to_string();
    let name = c.body.required_str("filterName")?.to_string();
    let pattern = c.body.required_str("filterPattern")?.to_string();
    let ts = c.body.list("metricTransformations")?;
    if ts.len() != 1 {
        return Err(invalid(format!(
            "1 validation error detected: Value at 'metricTransformations' failed to satisfy constraint: Member must have length less than or equal to 1 and greater than or equal to 1 (got {})",
            ts.len()
        )));
    }
    let t = &ts[0];
    let text = |key: &str| -> ApiResult<String> {
        t.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                invalid(format!(
                    "1 validation error detected: Value null at 'metricTransformations.1.member.{key}' failed to satisfy constraint: Member must not be null"
                ))
            })
    };
    let dimensions = match t.get("dimensions") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid("metricTransformations.1.member.dimensions must map names to strings")
            })?,
        Some(_) => {
            return Err(invalid(
                "metricTransformations.1.member.dimensions must map names to strings",
            ));
        }
    };
    let transformation = MetricTransformation {
        metric_name: text("metricName")?,
        metric_namespace: text("metricNamespace")?,
        metric_value: text("metricValue")?,
        default_value: match t.get("defaultValue") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                invalid("metricTransformations.1.member.defaultValue must be a number")
            })?),
        },
        unit: t.get("unit").and_then(Value::as_str).map(str::to_string),
        dimensions,
    };
    c.mutate(|w, env| w.put_metric_filter(env, &g, &name, &pattern, transformation))?;
    Ok(json!({}))
}

/// DescribeMetricFilters: by group (and name prefix), or by metric name and namespace
/// across the region's groups; in group, then filter-name order.
fn describe_metric_filters(c: &mut JsonCall) -> ApiResult<Value> {
    let group = c.body.str("logGroupName")?.map(str::to_string);
    let prefix = c.body.str("filterNamePrefix")?.map(str::to_string);
    let metric = c.body.str("metricName")?.map(str::to_string);
    let namespace = c.body.str("metricNamespace")?.map(str::to_string);
    if prefix.is_some() && group.is_none() {
        return Err(invalid(
            "logGroupName is required when filterNamePrefix is given.",
        ));
    }
    if metric.is_some() != namespace.is_some() {
        return Err(invalid(
            "metricName and metricNamespace must be given together.",
        ));
    }
    let w = c.read()?;
    let groups: Vec<&LogGroup> = match &group {
        Some(name) => vec![w.log_group(&c.env, name)?],
        None => w.log_groups.in_region(&c.env.region).collect(),
    };
    let mut out = Vec::new();
    for g in groups {
        for f in g.metric_filters.values() {
            let t = &f.transformation;
            if prefix.as_deref().is_some_and(|p| !f.name.starts_with(p))
                || metric.as_deref().is_some_and(|m| t.metric_name != m)
                || namespace
                    .as_deref()
                    .is_some_and(|n| t.metric_namespace != n)
            {
                continue;
            }
            let mut mt = json!({
                "metricName": t.metric_name,
                "metricNamespace": t.metric_namespace,
                "metricValue": t.metric_value,
            });
            if let Some(v) = t.default_value {
                mt["defaultValue"] = json!(v);
            }
            if !t.dimensions.is_empty() {
                mt["dimensions"] = json!(t.dimensions);
            }
            if let Some(u) = &t.unit {
                mt["unit"] = json!(u);
            }
            out.push(json!({
                "filterName": f.name,
                "filterPattern": f.pattern,
                "metricTransformations": [mt],
                "creationTime": f.created,
                "logGroupName": g.name,
            }));
        }
    }
    Ok(json!({ "metricFilters": out }))
}

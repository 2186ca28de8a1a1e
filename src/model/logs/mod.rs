//! CloudWatch Logs in the model: log groups, log streams and their events, per account
//! and region, durable in the store like every other resource.
//!
//! A [`LogGroup`] row's id is its ARN without the trailing `:*`
//! (`arn:aws:logs:REGION:ACCOUNT:log-group:NAME`), a [`LogStream`]'s is the stream ARN
//! (`…:log-group:NAME:log-stream:STREAM`), so the table's id order is name order within
//! a group and a region, which is the order AWS lists them in. Events live in their
//! stream's row, ordered by (timestamp, sequence) and bounded by
//! [`MAX_EVENTS_PER_STREAM`]: the oldest are dropped first (docs/fidelity.md).
//!
//! Validation follows the CloudWatch Logs API reference; errors carry its codes
//! (`ResourceNotFoundException`, `ResourceAlreadyExistsException`,
//! `InvalidParameterException`). Filter patterns are in [`pattern`], metric filters
//! (log events turned into CloudWatch metrics) in [`metric_filter`].

pub mod metric_filter;
pub mod pattern;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, World};

/// The newest events kept per stream (older ones are dropped on write).
pub const MAX_EVENTS_PER_STREAM: usize = 10_000;
/// PutLogEvents: at most 10,000 events and 1,048,576 bytes per batch, each event
/// counting its UTF-8 message plus 26 bytes.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
/// Events more than 2 hours ahead or 14 days behind the server's clock are rejected
/// (and reported in `rejectedLogEventsInfo`); a batch may not span more than 24 hours.
const TOO_NEW_MS: i64 = 2 * 3600 * 1000;
const TOO_OLD_MS: i64 = 14 * 24 * 3600 * 1000;
const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;
/// The values PutRetentionPolicy accepts (API reference, `retentionInDays`).
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const MAX_TAGS: usize = 50;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogGroup {
    pub id: String,
    pub region: String,
    pub name: String,
    pub created: i64,
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The next event sequence number (unique within the group: event ids, tokens).
    #[serde(default)]
    pub next_seq: u64,
    /// Metric filters by name (see [`metric_filter`]).
    #[serde(default)]
    pub metric_filters: BTreeMap<String, metric_filter::MetricFilter>,
}

impl Resource for LogGroup {
    const KIND: &'static str = "log_group";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEvent {
    pub timestamp: i64,
    pub message: String,
    pub ingestion: i64,
    pub seq: u64,
}

impl LogEvent {
    /// The position of an event in its stream and in interleaved listings.
    pub fn key(&self) -> (i64, u64) {
        (self.timestamp, self.seq)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogStream {
    pub id: String,
    pub region: String,
    pub group: String,
    pub name: String,
    pub created: i64,
    pub last_ingestion: Option<i64>,
    pub events: Vec<LogEvent>,
}

impl Resource for LogStream {
    const KIND: &'static str = "log_stream";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl LogStream {
    pub fn first_event(&self) -> Option<i64> {
        self.events.first().map(|e| e.timestamp)
    }
    pub fn last_event(&self) -> Option<i64> {
        self.events.last().map(|e| e.timestamp)
    }
    pub fn stored_bytes(&self) -> u64 {
        self.events.iter().map(|e| e.message.len() as u64).sum()
    }
}

/// One event of a PutLogEvents batch.
#[derive(Clone, Debug)]
pub struct InputEvent {
    pub timestamp: i64,
    pub message: String,
}

/// What PutLogEvents reports about events it did not store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_new_start: Option<usize>,
    pub too_old_end: Option<usize>,
    pub expired_end: Option<usize>,
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterException", message)
}

pub fn group_not_found() -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

pub fn stream_not_found() -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
}

/// The group's ARN (without `:*`).
pub fn group_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{name}")
}

pub fn stream_arn(group_arn: &str, name: &str) -> String {
    format!("{group_arn}:log-stream:{name}")
}

/// Log group names: 1–512 characters of `a-zA-Z0-9_-/.#`.
fn check_group_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        )))
    }
}

/// Log stream names: 1–512 characters, no `:` or `*`.
fn check_stream_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 512 || name.contains([':', '*']) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{name}' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
        )));
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(invalid(format!("Invalid tag: {k}")));
        }
        if k.starts_with("aws:") {
            return Err(invalid("Tag keys beginning with 'aws:' are reserved."));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(invalid("A log group can have at most 50 tags."));
    }
    Ok(())
}

impl World {
    /// The log group `name` in the request's region.
    pub fn log_group(&self, env: &Env, name: &str) -> ApiResult<&LogGroup> {
        self.log_groups
            .get(&group_arn(&env.region, &self.account, name))
            .ok_or_else(group_not_found)
    }

    /// A log group by name or ARN (`logGroupIdentifier`, `resourceArn`), with or without
    /// the trailing `:*`.
    pub fn log_group_by_ident(&self, env: &Env, ident: &str) -> ApiResult<&LogGroup> {
        if let Some(arn) = ident.strip_prefix("arn:") {
            let arn = format!("arn:{}", arn.strip_suffix(":*").unwrap_or(arn));
            return self.log_groups.get(&arn).ok_or_else(group_not_found);
        }
        self.log_group(env, ident)
    }

    pub fn log_stream(&self, env: &Env, group: &str, name: &str) -> ApiResult<&LogStream> {
        let g = self.log_group(env, group)?;
        self.log_streams
            .get(&stream_arn(&g.id, name))
            .ok_or_else(stream_not_found)
    }

    /// The streams of a group, in name order.
    pub fn log_streams_of<'a>(&'a self, g: &'a LogGroup) -> impl Iterator<Item = &'a LogStream> {
        let prefix = format!("{}:log-stream:", g.id);
        self.log_streams
            .in_region(&g.region)
            .filter(move |s| s.id.starts_with(&prefix))
    }

    pub fn create_log_group(
        &mut self,
        env: &Env,
        name: &str,
        kms_key_id: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        check_group_name(name)?;
        check_tags(&tags)?;
        let id = group_arn(&env.region, &self.account, name);
        if self.log_groups.contains(&id) {
            return Err(ApiError::new(
                "ResourceAlreadyExistsException",
                "The specified log group already exists",
            ));
        }
        self.log_groups.insert(LogGroup {
            id,
            region: env.region.clone(),
            name: name.to_string(),
            created: env.now.0,
            retention_days: None,
            kms_key_id,
            tags,
            next_seq: 0,
            metric_filters: BTreeMap::new(),
        });
        Ok(())
    }

    /// Deletes a group and every stream in it.
    pub fn delete_log_group(&mut self, env: &Env, name: &str) -> ApiResult<()> {
        let id = self.log_group(env, name)?.id.clone();
        let prefix = format!("{id}:log-stream:");
        for s in self.log_streams.ids_where(|s| s.id.starts_with(&prefix)) {
            self.log_streams.remove(&s);
        }
        self.log_groups.remove(&id);
        Ok(())
    }

    pub fn create_log_stream(&mut self, env: &Env, group: &str, name: &str) -> ApiResult<()> {
        check_stream_name(name)?;
        let g = self.log_group(env, group)?;
        let id = stream_arn(&g.id, name);
        if self.log_streams.contains(&id) {
            return Err(ApiError::new(
                "ResourceAlreadyExistsException",
                "The specified log stream already exists",
            ));
        }
        self.log_streams.insert(LogStream {
            id,
            region: env.region.clone(),
            group: group.to_string(),
            name: name.to_string(),
            created: env.now.0,
            last_ingestion: None,
            events: Vec::new(),
        });
        Ok(())
    }

    pub fn delete_log_stream(&mut self, env: &Env, group: &str, name: &str) -> ApiResult<()> {
        let id = self.log_stream(env, group, name)?.id.clone();
        self.log_streams.remove(&id);
        Ok(())
    }

    pub fn put_retention_policy(&mut self, env: &Env, group: &str, days: i64) -> ApiResult<()> {
        let days = u32::try_from(days)
            .ok()
            .filter(|d| RETENTION_DAYS.contains(d))
            .ok_or_else(|| {
                invalid(format!(
                    "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
                ))
            })?;
        let id = self.log_group(env, group)?.id.clone();
        if let Some(g) = self.log_groups.get_mut(&id) {
            g.retention_days = Some(days);
        }
        Ok(())
    }

    pub fn delete_retention_policy(&mut self, env: &Env, group: &str) -> ApiResult<()> {
        let id = self.log_group(env, group)?.id.clone();
        if let Some(g) = self.log_groups.get_mut(&id) {
            g.retention_days = None;
        }
        Ok(())
    }

    pub fn tag_log_group(
        &mut self,
        env: &Env,
        ident: &str,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<()> {
        let g = self.log_group_by_ident(env, ident)?;
        let mut merged = g.tags.clone();
        merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        check_tags(&merged)?;
        let id = g.id.clone();
        if let Some(g) = self.log_groups.get_mut(&id) {
            g.tags = merged;
        }
        Ok(())
    }

    pub fn untag_log_group(&mut self, env: &Env, ident: &str, keys: &[String]) -> ApiResult<()> {
        let id = self.log_group_by_ident(env, ident)?.id.clone();
        if let Some(g) = self.log_groups.get_mut(&id) {
            for k in keys {
                g.tags.remove(k);
            }
        }
        Ok(())
    }

    /// PutLogEvents: validates the batch as AWS does (limits and chronological order
    /// fail the whole call), stores the events within the time window and reports the
    /// others. `create_stream` is for the daemon's own deliveries (flow logs create
    /// their stream on first use, as AWS's delivery does).
    pub fn put_log_events(
        &mut self,
        env: &Env,
        group: &str,
        stream: &str,
        events: &[InputEvent],
        create_stream: bool,
    ) -> ApiResult<Rejected> {
        if events.is_empty() {
            return Err(invalid(
                "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if events.len() > MAX_BATCH_EVENTS {
            return Err(invalid(format!(
                "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to {MAX_BATCH_EVENTS}"
            )));
        }
        let bytes: usize = events
            .iter()
            .map(|e| e.message.len() + EVENT_OVERHEAD)
            .sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "Upload too large: {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        if events.iter().any(|e| e.message.is_empty()) {
            return Err(invalid(
                "1 validation error detected: Value '' at 'logEvents.1.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }
        let span = events[events.len() - 1].timestamp - events[0].timestamp;
        if span > MAX_SPAN_MS {
            return Err(invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
        let g = self.log_group(env, group)?.clone();
        check_stream_name(stream)?;
        let sid = stream_arn(&g.id, stream);
        if !self.log_streams.contains(&sid) {
            if !create_stream {
                return Err(stream_not_found());
            }
            self.create_log_stream(env, group, stream)?;
        }
        let now = env.now.0;
        let retention_floor = g
            .retention_days
            .map(|d| now - i64::from(d) * 24 * 3600 * 1000);
        let mut rejected = Rejected::default();
        let mut accepted = Vec::new();
        let mut seq = g.next_seq;
        for (i, e) in events.iter().enumerate() {
            if e.timestamp > now + TOO_NEW_MS {
                rejected.too_new_start.get_or_insert(i);
                continue;
            }
            if retention_floor.is_some_and(|f| e.timestamp < f) {
                rejected.expired_end = Some(i + 1);
                continue;
            }
            if e.timestamp < now - TOO_OLD_MS {
                rejected.too_old_end = Some(i + 1);
                continue;
            }
            accepted.push(LogEvent {
                timestamp: e.timestamp,
                message: e.message.clone(),
                ingestion: now,
                seq,
            });
            seq += 1;
        }
        if let Some(g) = self.log_groups.get_mut(&g.id) {
            g.next_seq = seq;
        }
        if !g.metric_filters.is_empty() {
            self.apply_metric_filters(env, group, &accepted);
        }
        if let Some(s) = self.log_streams.get_mut(&sid) {
            s.last_ingestion = Some(now);
            // Batches are chronological but may overlap earlier ones: merge by key.
            let appended = s
                .events
                .last()
                .is_none_or(|l| accepted.first().is_none_or(|f| f.key() >= l.key()));
            s.events.extend(accepted);
            if !appended {
                s.events.sort_by_key(LogEvent::key);
            }
            if s.events.len() > MAX_EVENTS_PER_STREAM {
                let drop = s.events.len() - MAX_EVENTS_PER_STREAM;
                s.events.drain(..drop);
            }
        }
        Ok(rejected)
    }

    /// The events of a stream still inside the group's retention at `now`.
    pub fn retained_events<'a>(
        &'a self,
        g: &LogGroup,
        s: &'a LogStream,
        now: i64,
    ) -> &'a [LogEvent] {
        match g.retention_days {
            None => &s.events,
            Some(d) => {
                let floor = now - i64::from(d) * 24 * 3600 * 1000;
                let start = s.events.partition_point(|e| e.timestamp < floor);
                &s.events[start..]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    const NOW: i64 = 1_764_000_000_000;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(NOW))
    }

    fn ev(ts: i64, m: &str) -> InputEvent {
        InputEvent {
            timestamp: ts,
            message: m.into(),
        }
    }

    fn world() -> World {
        let mut w = World::new("000000000000");
        w.create_log_group(&env(), "/app", None, BTreeMap::new())
            .unwrap();
        w.create_log_stream(&env(), "/app", "s1").unwrap();
        w
    }

    #[test]
    fn names_and_duplicates_are_checked_with_aws_codes() {
        let mut w = world();
        let e = w
            .create_log_group(&env(), "/app", None, BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.code, "ResourceAlreadyExistsException");
        let e = w
            .create_log_group(&env(), "bad name", None, BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert_eq!(
            w.create_log_stream(&env(), "/app", "a:b").unwrap_err().code,
            "InvalidParameterException"
        );
        assert_eq!(
            w.create_log_stream(&env(), "/nope", "x").unwrap_err().code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            w.put_retention_policy(&env(), "/app", 2).unwrap_err().code,
            "InvalidParameterException"
        );
        w.put_retention_policy(&env(), "/app", 7).unwrap();
        w.delete_log_group(&env(), "/app").unwrap();
        assert!(w.log_streams.is_empty(), "streams go with their group");
    }

    /// PutLogEvents: "The log events in the batch must be in chronological order"; a
    /// batch over 1,048,576 bytes (message bytes + 26 per event) fails; events over 2 h
    /// ahead or 14 days behind are reported, the rest stored.
    #[test]
    fn put_log_events_applies_aws_batch_rules() {
        let mut w = world();
        let e = w
            .put_log_events(
                &env(),
                "/app",
                "s1",
                &[ev(NOW, "b"), ev(NOW - 1, "a")],
                false,
            )
            .unwrap_err();
        assert!(e.message.contains("chronological"), "{e:?}");
        let big = "x".repeat(MAX_BATCH_BYTES - EVENT_OVERHEAD);
        assert!(
            w.put_log_events(&env(), "/app", "s1", &[ev(NOW, &big)], false)
                .is_ok()
        );
        let big = "x".repeat(MAX_BATCH_BYTES - EVENT_OVERHEAD + 1);
        assert_eq!(
            w.put_log_events(&env(), "/app", "s1", &[ev(NOW, &big)], false)
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
        let r = w
            .put_log_events(
                &env(),
                "/app",
                "s1",
                &[
                    ev(NOW - TOO_OLD_MS - 1, "old"),
                    ev(NOW - 5, "ok"),
                    ev(NOW + TOO_NEW_MS + 1, "new"),
                ],
                false,
            )
            .unwrap_err();
        // The span rule comes first: 14 days apart is more than 24 hours.
        assert!(r.message.contains("24 hours"), "{r:?}");
        let mut w = world();
        let r = w
            .put_log_events(
                &env(),
                "/app",
                "s1",
                &[ev(NOW - 5, "ok"), ev(NOW + TOO_NEW_MS + 1, "new")],
                false,
            )
            .unwrap();
        assert_eq!(r.too_new_start, Some(1));
        let s = w.log_stream(&env(), "/app", "s1").unwrap();
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].message, "ok");
        assert_eq!(
            w.put_log_events(&env(), "/app", "nope", &[ev(NOW, "x")], false)
                .unwrap_err()
                .message,
            "The specified log stream does not exist."
        );
    }

    #[test]
    fn streams_keep_the_newest_events_in_order_within_their_bound() {
        let mut w = world();
        let batch: Vec<_> = (0..MAX_BATCH_EVENTS as i64)
            .map(|i| ev(NOW - 100_000 + i, "e"))
            .collect();
        w.put_log_events(&env(), "/app", "s1", &batch, false)
            .unwrap();
        w.put_log_events(&env(), "/app", "s1", &[ev(NOW - 200_000, "earlier")], false)
            .unwrap();
        w.put_log_events(&env(), "/app", "s1", &[ev(NOW, "last")], false)
            .unwrap();
        let s = w.log_stream(&env(), "/app", "s1").unwrap();
        assert_eq!(s.events.len(), MAX_EVENTS_PER_STREAM);
        assert!(s.events.windows(2).all(|p| p[0].key() <= p[1].key()));
        assert_eq!(s.events.last().unwrap().message, "last");
        assert!(
            s.events.iter().all(|e| e.message != "earlier"),
            "oldest dropped"
        );
    }
}

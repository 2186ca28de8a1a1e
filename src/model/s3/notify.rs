//! S3 event notifications (Amazon S3 User Guide, "Amazon S3 Event Notifications"): the
//! bucket's notification configuration, its validation, and the event messages an
//! object write, delete or tagging, a restore, or a lifecycle action sends. Events S3
//! causes by itself (lifecycle, the end of a restore) are sent in the commit of the
//! daemon's sweep, or of the request that found them due first.
//!
//! SNS topics receive events here, in the same commit as the write (the topic's
//! subscriptions get them like any published message: `vpclab mail` shows an email
//! subscription's copy). A Lambda destination gets a queued asynchronous invocation
//! ([`crate::model::lambda::PendingEvent`]) in the same commit, which the Lambda event
//! source task runs after it. SQS is not emulated, so queue configurations are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{ApiError, ApiResult, Env, World};

/// The event types S3 documents ("Supported event types"), which a configuration may
/// name (also with a trailing `*`).
pub const EVENT_TYPES: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectRestore:*",
    "s3:ObjectRestore:Post",
    "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:ReducedRedundancyLostObject",
    "s3:Replication:*",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
    "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
    "s3:ObjectAcl:Put",
];

/// Where a configuration sends events.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Destination {
    Topic(String),
    Lambda(String),
}

/// One `TopicConfiguration` / `CloudFunctionConfiguration`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventConfig {
    pub id: String,
    pub destination: Destination,
    pub events: Vec<String>,
    /// Key filter rules (`prefix`, `suffix`), empty when absent.
    pub prefix: String,
    pub suffix: String,
}

impl EventConfig {
    /// Whether an event (`ObjectCreated:Put`) on `key` is one this configuration wants.
    pub fn wants(&self, event: &str, key: &str) -> bool {
        let full = format!("s3:{event}");
        let type_hit = self.events.iter().any(|e| match e.strip_suffix('*') {
            Some(stem) => full.starts_with(stem),
            None => *e == full,
        });
        type_hit && key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

/// A bucket's notification configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotificationConfig {
    pub configs: Vec<EventConfig>,
}

fn invalid_argument(message: &str, name: &str, value: &str) -> ApiError {
    ApiError::new(
        "InvalidArgument",
        format!("{message} (ArgumentName: {name}, ArgumentValue: {value})"),
    )
}

/// Whether a topic's access policy lets S3 publish (the user guide's "Granting
/// permissions to publish event notification messages to a destination": an Allow of
/// `SNS:Publish` to the service principal `s3.amazonaws.com`, or to everyone).
pub fn topic_allows_s3(policy: Option<&str>) -> bool {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return false;
    };
    let list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let principal = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(m)) => {
                list(m.get("Service"))
                    .iter()
                    .any(|p| p == "s3.amazonaws.com")
                    || list(m.get("AWS")).iter().any(|p| p == "*")
            }
            _ => false,
        };
        let action = list(s.get("Action")).iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "sns:publish" || a == "sns:*" || a == "*"
        });
        allow && principal && action
    })
}

/// Whether S3 itself caused the event rather than a caller: lifecycle actions and the
/// completion and expiry of a restore. Such records name `s3.amazonaws.com` as the
/// principal and the source address (the user guide's lifecycle event example).
pub fn by_s3(event: &str) -> bool {
    event.starts_with("Lifecycle")
        || event == "ObjectRestore:Completed"
        || event == "ObjectRestore:Delete"
}

/// The structure version of an event's record ("Event message structure": "It uses
/// version 2.3 for S3 Lifecycle, S3 Intelligent-Tiering, object ACL, object tagging,
/// and object restoration delete events"; 2.1 for all other types vpclab sends).
fn event_version(event: &str) -> &'static str {
    let v23 = event.starts_with("Lifecycle")
        || event.starts_with("IntelligentTiering")
        || event.starts_with("ObjectAcl")
        || event.starts_with("ObjectTagging")
        || event == "ObjectRestore:Delete";
    if v23 { "2.3" } else { "2.1" }
}

/// One event record as S3 sends it (the user guide's "Event message structure"). The
/// key is URL-encoded as S3 encodes it (spaces as `+`).
#[allow(clippy::too_many_arguments)]
pub fn event_record(
    env: &Env,
    account: &str,
    bucket: &str,
    event: &str,
    key: &str,
    size: u64,
    etag: &str,
    version_id: Option<&str>,
    sequencer: &str,
    config_id: &str,
    principal: &str,
) -> Value {
    let encoded = encode_key(key);
    let mut object = json!({
        "key": encoded,
        "sequencer": sequencer,
    });
    if event.starts_with("ObjectCreated") {
        object["size"] = json!(size);
        object["eTag"] = json!(etag.trim_matches('"'));
    }
    if let Some(v) = version_id.filter(|v| *v != "null") {
        object["versionId"] = json!(v);
    }
    let source_ip = if by_s3(event) {
        "s3.amazonaws.com"
    } else {
        "127.0.0.1"
    };
    json!({
        "eventVersion": event_version(event),
        "eventSource": "aws:s3",
        "awsRegion": env.region,
        "eventTime": env.now.iso(),
        "eventName": event,
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {
            "x-amz-request-id": "0000000000000000",
            "x-amz-id-2": "vpclab",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": config_id,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": account},
                "arn": format!("arn:aws:s3:::{bucket}"),
            },
            "object": object,
        },
    })
}

/// A key as event messages carry it: form-URL-encoded (space as `+`), with `/` kept.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|part| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

impl World {
    /// PutBucketNotificationConfiguration: every topic must exist in the bucket's region
    /// and let S3 publish; on success each topic gets an `s3:TestEvent`, as S3 sends.
    pub fn put_bucket_notification(
        &mut self,
        env: &Env,
        bucket: &str,
        config: NotificationConfig,
    ) -> ApiResult<()> {
        let b = self.bucket(bucket)?.clone();
        let mut ids = std::collections::BTreeSet::new();
        for c in &config.configs {
            if !ids.insert(c.id.clone()) {
                return Err(invalid_argument(
                    "Configuration ids must be unique",
                    "Id",
                    &c.id,
                ));
            }
            if c.events.is_empty() {
                return Err(ApiError::new(
                    "MalformedXML",
                    "The XML you provided was not well-formed or did not validate against our published schema",
                ));
            }
            for e in &c.events {
                if !EVENT_TYPES.contains(&e.as_str()) {
                    return Err(invalid_argument(
                        "The event is not supported for notifications",
                        "Event",
                        e,
                    ));
                }
            }
            if let Destination::Topic(arn) = &c.destination {
                let region_ok = arn.split(':').nth(3) == Some(b.region.as_str());
                let topic = self.sns_topics.get(arn).filter(|_| region_ok);
                let allowed = topic.is_some_and(|t| {
                    topic_allows_s3(t.attributes.get("Policy").map(String::as_str))
                });
                if !allowed {
                    return Err(invalid_argument(
                        "Unable to validate the following destination configurations",
                        arn,
                        "Permissions on the destination topic do not allow S3 to publish notifications from this bucket",
                    ));
                }
            }
            if let Destination::Lambda(arn) = &c.destination {
                // S3 checks that the function's resource policy lets S3 invoke it from
                // this bucket (the user guide's "Granting permissions to invoke an AWS
                // Lambda function"); the function must be in the bucket's region.
                let region_ok = arn.split(':').nth(3) == Some(b.region.as_str());
                let bucket_arn = format!("arn:aws:s3:::{bucket}");
                let allowed = region_ok
                    && self.lambda_function_by_arn(arn).is_some_and(|f| {
                        f.allows_service("s3.amazonaws.com", &bucket_arn, &self.account)
                    });
                if !allowed {
                    return Err(invalid_argument(
                        "Unable to validate the following destination configurations",
                        arn,
                        &format!("Not authorized to invoke function [{arn}]"),
                    ));
                }
            }
        }
        // Overlapping configurations for the same event type are refused by S3.
        for (i, a) in config.configs.iter().enumerate() {
            for b2 in &config.configs[i + 1..] {
                let shared_event = a.events.iter().any(|e| b2.events.contains(e));
                let overlap = (a.prefix.starts_with(&b2.prefix)
                    || b2.prefix.starts_with(&a.prefix))
                    && (a.suffix.ends_with(&b2.suffix) || b2.suffix.ends_with(&a.suffix));
                if shared_event && overlap {
                    return Err(invalid_argument(
                        "Configurations overlap. Configurations on the same bucket cannot share a common event type.",
                        "Event",
                        a.events.first().map(String::as_str).unwrap_or(""),
                    ));
                }
            }
        }
        let topics: Vec<String> = config
            .configs
            .iter()
            .filter_map(|c| match &c.destination {
                Destination::Topic(t) => Some(t.clone()),
                Destination::Lambda(_) => None,
            })
            .collect();
        self.update_bucket(bucket, |b| {
            b.notification = (!config.configs.is_empty()).then_some(config);
            Ok(())
        })?;
        let test = json!({
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": env.now.iso(),
            "Bucket": bucket,
            "RequestId": "0000000000000000",
            "HostId": "vpclab",
        })
        .to_string();
        for t in topics {
            let _ = self.sns_publish(
                env,
                &t,
                Some("Amazon S3 Notification".into()),
                &test,
                BTreeMap::new(),
            );
        }
        Ok(())
    }

    /// The configurations an event on `key` goes to.
    pub fn s3_event_targets(&self, bucket: &str, event: &str, key: &str) -> Vec<EventConfig> {
        self.buckets
            .get(bucket)
            .and_then(|b| b.notification.as_ref())
            .map(|n| {
                n.configs
                    .iter()
                    .filter(|c| c.wants(event, key))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends an event (`ObjectCreated:Put`, `ObjectRemoved:Delete` …) to the bucket's
    /// SNS destinations. A delivery that fails (the topic was deleted since) is dropped,
    /// as S3 drops it: the write itself has succeeded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn s3_notify(
        &mut self,
        env: &Env,
        bucket: &str,
        event: &str,
        key: &str,
        size: u64,
        etag: &str,
        version_id: Option<&str>,
    ) {
        self.s3_notify_with(env, bucket, event, key, size, etag, version_id, None);
    }

    /// [`World::s3_notify`] with one more block in the record beside `s3`
    /// (`lifecycleEventData` of a transition, `glacierEventData` of a completed
    /// restore), as ("name", value).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn s3_notify_with(
        &mut self,
        env: &Env,
        bucket: &str,
        event: &str,
        key: &str,
        size: u64,
        etag: &str,
        version_id: Option<&str>,
        extra: Option<(&str, Value)>,
    ) {
        let targets = self.s3_event_targets(bucket, event, key);
        if targets.is_empty() {
            return;
        }
        // Sequencers only grow for one key: the clock plus a per-world counter.
        let sequencer = format!("{:012X}{:08X}", env.now.0, self.next_serial() & 0xffff_ffff);
        let account = self.account.clone();
        // A lifecycle action or a restore's end is S3's own doing, not a caller's.
        let principal = if by_s3(event) {
            "s3.amazonaws.com".to_string()
        } else {
            account.clone()
        };
        for t in targets {
            let mut record = event_record(
                env, &account, bucket, event, key, size, etag, version_id, &sequencer, &t.id,
                &principal,
            );
            if let Some((name, value)) = &extra {
                record[*name] = value.clone();
            }
            let message = json!({ "Records": [record] }).to_string();
            match &t.destination {
                Destination::Topic(topic) => {
                    let _ = self.sns_publish(
                        env,
                        topic,
                        Some("Amazon S3 Notification".into()),
                        &message,
                        BTreeMap::new(),
                    );
                }
                // S3 invokes the function asynchronously with the event as payload; the
                // invocation runs outside the model (the Lambda event-source task).
                Destination::Lambda(function) => {
                    self.queue_lambda_event(env, function, "s3.amazonaws.com", message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(events: &[&str], prefix: &str, suffix: &str) -> EventConfig {
        EventConfig {
            id: "c".into(),
            destination: Destination::Topic("t".into()),
            events: events.iter().map(|s| s.to_string()).collect(),
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    #[test]
    fn wildcards_and_filter_rules_select_events() {
        let c = config(&["s3:ObjectCreated:*"], "images/", ".jpg");
        assert!(c.wants("ObjectCreated:Put", "images/cat.jpg"));
        assert!(c.wants("ObjectCreated:CompleteMultipartUpload", "images/a.jpg"));
        assert!(!c.wants("ObjectRemoved:Delete", "images/cat.jpg"));
        assert!(!c.wants("ObjectCreated:Put", "docs/cat.jpg"));
        assert!(!c.wants("ObjectCreated:Put", "images/cat.png"));
        let d = config(&["s3:ObjectRemoved:Delete"], "", "");
        assert!(d.wants("ObjectRemoved:Delete", "x"));
        assert!(!d.wants("ObjectRemoved:DeleteMarkerCreated", "x"));
    }

    /// "Supported event types": the wildcard of a family selects its members only;
    /// "Event message structure": version 2.3 for lifecycle, tagging and restore
    /// delete events, 2.1 for the rest.
    #[test]
    fn restore_tagging_and_transition_events_are_selected_and_versioned() {
        let c = config(&["s3:ObjectRestore:*", "s3:LifecycleTransition"], "", "");
        for e in [
            "ObjectRestore:Post",
            "ObjectRestore:Completed",
            "ObjectRestore:Delete",
            "LifecycleTransition",
        ] {
            assert!(c.wants(e, "k"), "{e}");
        }
        assert!(!c.wants("LifecycleExpiration:Delete", "k"));
        assert!(!c.wants("ObjectTagging:Put", "k"));
        let t = config(&["s3:ObjectTagging:*"], "docs/", "");
        assert!(
            t.wants("ObjectTagging:Put", "docs/a") && t.wants("ObjectTagging:Delete", "docs/a")
        );
        assert!(!t.wants("ObjectTagging:Put", "other/a"));
        for (e, v) in [
            ("ObjectCreated:Put", "2.1"),
            ("ObjectRestore:Completed", "2.1"),
            ("ObjectRestore:Delete", "2.3"),
            ("ObjectTagging:Put", "2.3"),
            ("LifecycleTransition", "2.3"),
        ] {
            assert_eq!(event_version(e), v, "{e}");
        }
        assert!(by_s3("ObjectRestore:Completed") && !by_s3("ObjectRestore:Post"));
    }

    #[test]
    fn only_a_policy_granting_s3_publish_validates() {
        let ok = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"SNS:Publish","Resource":"arn:aws:sns:us-east-1:1:t"}]}"#;
        assert!(topic_allows_s3(Some(ok)));
        let owner_only = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"SNS:Publish","Resource":"*"}]}"#;
        assert!(!topic_allows_s3(Some(owner_only)));
        assert!(!topic_allows_s3(None));
    }

    #[test]
    fn records_encode_keys_as_s3_does() {
        let env = Env::new("us-east-1", crate::model::Timestamp(0));
        let r = event_record(
            &env,
            "1",
            "b",
            "ObjectCreated:Put",
            "my photos/a+b.jpg",
            5,
            "\"abc\"",
            None,
            "00",
            "c",
            "1",
        );
        assert_eq!(r["s3"]["object"]["key"], "my+photos/a%2Bb.jpg");
        assert_eq!(r["s3"]["object"]["eTag"], "abc");
        assert_eq!(r["eventName"], "ObjectCreated:Put");
    }
}

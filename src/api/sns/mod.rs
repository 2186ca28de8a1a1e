//! Amazon SNS (awsQuery, `2010-03-31`): topics, subscriptions, Publish and tags, shaped
//! as botocore's `sns/2010-03-31` model describes them, through the shared awsQuery
//! layer ([`super::awsquery`]). The rules and the mailbox are in `model::sns`.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::AppState;
use super::awsquery::QueryService;
use super::json::JsonCall;
use crate::model::sns::{Subscription, invalid};
use crate::model::{ApiError, ApiResult};

/// The topic a call names (Service Authorization Reference: the `topic` resource type,
/// its ARN as given), else `*`.
fn topic_arn(_region: &str, _account: &str, body: &super::json::Body) -> String {
    match body.str("TopicArn") {
        Ok(Some(arn)) if !arn.is_empty() => arn.to_string(),
        _ => "*".to_string(),
    }
}

pub static QUERY: QueryService = QueryService {
    xmlns: "http://sns.amazonaws.com/doc/2010-03-31/",
    timestamps: &[],
    maps: &["Attributes"],
    handler: dispatch,
    iam_prefix: "sns",
    resource: topic_arn,
};

/// The operations vpclab answers (docs/api.md lists the same).
pub const OPERATIONS: &[&str] = &[
    "CreateTopic",
    "DeleteTopic",
    "ListTopics",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "ConfirmSubscription",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
    "Unsubscribe",
    "Publish",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Topics and subscriptions per page (ListTopics, ListSubscriptions: 100).
const PAGE: usize = 100;

pub async fn endpoint(state: AppState, req: Request) -> Response {
    super::awsquery::endpoint(state, req, &QUERY).await
}

fn text(c: &JsonCall, name: &str) -> Option<String> {
    match c.body.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn required(c: &JsonCall, name: &str) -> ApiResult<String> {
    text(c, name)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("Invalid parameter: {name} is required")))
}

fn string_map(c: &JsonCall, name: &str) -> ApiResult<BTreeMap<String, String>> {
    match c.body.get(name) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid(format!(
                    "Invalid parameter: {name}.{k} must be text"
                ))),
            })
            .collect(),
        Some(Value::String(s)) if s.is_empty() => Ok(BTreeMap::new()),
        Some(_) => Err(invalid(format!("Invalid parameter: {name} must be a map"))),
    }
}

fn tag_list(c: &JsonCall) -> ApiResult<Vec<(String, String)>> {
    match c.body.get("Tags") {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                let k = t.get("Key").and_then(Value::as_str);
                let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
                k.map(|k| (k.to_string(), v.to_string()))
                    .ok_or_else(|| invalid("Invalid parameter: Tags.member.N.Key is required"))
            })
            .collect(),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(_) => Err(invalid("Invalid parameter: Tags must be a list")),
    }
}

fn page_after(c: &JsonCall) -> ApiResult<Option<String>> {
    match text(c, "NextToken") {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(&t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| invalid("Invalid parameter: NextToken")),
    }
}

fn sub_json(s: &Subscription, owner: &str) -> Value {
    json!({
        "SubscriptionArn": if s.pending { "PendingConfirmation" } else { s.id.as_str() },
        "Owner": owner,
        "Protocol": s.protocol,
        "Endpoint": s.endpoint,
        "TopicArn": s.topic,
    })
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "CreateTopic" => {
            let name = required(c, "Name")?;
            let attrs = string_map(c, "Attributes")?;
            let tags: BTreeMap<String, String> = tag_list(c)?.into_iter().collect();
            let arn = c.mutate(|w, env| w.create_topic(env, &name, attrs, tags))?;
            Ok(json!({ "TopicArn": arn }))
        }
        "DeleteTopic" => {
            let arn = required(c, "TopicArn")?;
            c.mutate(|w, env| w.delete_topic(env, &arn))?;
            Ok(json!({}))
        }
        "ListTopics" => {
            let after = page_after(c)?;
            let w = c.read()?;
            let mut ids: Vec<&str> = w
                .sns_topics
                .in_region(&c.env.region)
                .map(|t| t.id.as_str())
                .filter(|id| after.as_deref().is_none_or(|a| *id > a))
                .collect();
            let more = ids.len() > PAGE;
            ids.truncate(PAGE);
            let mut v = json!({ "Topics": ids.iter().map(|id| json!({"TopicArn": id})).collect::<Vec<_>>() });
            if more && let Some(last) = ids.last() {
                v["NextToken"] = json!(URL_SAFE_NO_PAD.encode(last));
            }
            Ok(v)
        }
        "GetTopicAttributes" => {
            let arn = required(c, "TopicArn")?;
            let w = c.read()?;
            Ok(json!({ "Attributes": w.topic_attributes(&c.env, &arn)? }))
        }
        "SetTopicAttributes" => {
            let arn = required(c, "TopicArn")?;
            let name = required(c, "AttributeName")?;
            let value = text(c, "AttributeValue").unwrap_or_default();
            c.mutate(|w, env| w.set_topic_attribute(env, &arn, &name, &value))?;
            Ok(json!({}))
        }
        "Subscribe" => {
            let topic = required(c, "TopicArn")?;
            let protocol = required(c, "Protocol")?;
            let endpoint = required(c, "Endpoint")?;
            let attrs = string_map(c, "Attributes")?;
            let arn = c.mutate(|w, env| w.subscribe(env, &topic, &protocol, &endpoint, attrs))?;
            Ok(json!({ "SubscriptionArn": arn }))
        }
        "ConfirmSubscription" => {
            let topic = required(c, "TopicArn")?;
            let token = required(c, "Token")?;
            let arn = c.mutate(|w, env| w.confirm_subscription(env, &topic, &token))?;
            Ok(json!({ "SubscriptionArn": arn }))
        }
        "ListSubscriptions" | "ListSubscriptionsByTopic" => {
            let topic = if op == "ListSubscriptionsByTopic" {
                Some(required(c, "TopicArn")?)
            } else {
                None
            };
            let after = page_after(c)?;
            let w = c.read()?;
            if let Some(t) = &topic {
                w.topic(&c.env, t)?;
            }
            let mut subs: Vec<&Subscription> = w
                .sns_subscriptions
                .in_region(&c.env.region)
                .filter(|s| topic.as_deref().is_none_or(|t| s.topic == t))
                .filter(|s| after.as_deref().is_none_or(|a| s.id.as_str() > a))
                .collect();
            let more = subs.len() > PAGE;
            subs.truncate(PAGE);
            let mut v = json!({ "Subscriptions": subs.iter().map(|s| sub_json(s, &w.account)).collect::<Vec<_>>() });
            if more && let Some(last) = subs.last() {
                v["NextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.id));
            }
            Ok(v)
        }
        "Unsubscribe" => {
            let arn = required(c, "SubscriptionArn")?;
            c.mutate(|w, env| w.unsubscribe(env, &arn))?;
            Ok(json!({}))
        }
        "Publish" => {
            let topic = match (
                text(c, "TopicArn"),
                text(c, "TargetArn"),
                text(c, "PhoneNumber"),
            ) {
                (Some(t), None, None) | (None, Some(t), None) => t,
                (None, None, Some(_)) => {
                    return Err(invalid(
                        "Invalid parameter: vpclab does not send SMS (PhoneNumber)",
                    ));
                }
                (None, None, None) => {
                    return Err(invalid(
                        "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
                    ));
                }
                _ => {
                    return Err(invalid(
                        "Invalid parameter: only one of TopicArn, TargetArn and PhoneNumber may be given",
                    ));
                }
            };
            let message = text(c, "Message").unwrap_or_default();
            let subject = text(c, "Subject");
            let mut attrs = BTreeMap::new();
            if let Some(Value::Object(m)) = c.body.get("MessageAttributes") {
                for (k, v) in m {
                    let ty = v.get("DataType").and_then(Value::as_str).ok_or_else(|| {
                        invalid(format!("Invalid parameter: MessageAttributes: the attribute {k} has no DataType"))
                    })?;
                    let val = v
                        .get("StringValue")
                        .or_else(|| v.get("BinaryValue"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("Invalid parameter: MessageAttributes: the attribute {k} has no value")))?;
                    attrs.insert(k.clone(), (ty.to_string(), val.to_string()));
                }
            }
            let id = c.mutate(|w, env| w.sns_publish(env, &topic, subject, &message, attrs))?;
            Ok(json!({ "MessageId": id }))
        }
        "TagResource" => {
            let arn = required(c, "ResourceArn")?;
            let tags = tag_list(c)?;
            c.mutate(|w, env| w.tag_sns(env, &arn, &tags))?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let arn = required(c, "ResourceArn")?;
            let keys: Vec<String> = match c.body.get("TagKeys") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            c.mutate(|w, env| w.untag_sns(env, &arn, &keys))?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            let arn = required(c, "ResourceArn")?;
            let w = c.read()?;
            let t = w.topic(&c.env, &arn).map_err(|_| {
                ApiError::new("ResourceNotFound", "Resource does not exist").with_status(404)
            })?;
            Ok(
                json!({ "Tags": t.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>() }),
            )
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("vpclab does not implement the SNS operation {op} (see docs/api.md)"),
        )),
    }
}

//! Put/GetBucketNotificationConfiguration: the XML of S3's `NotificationConfiguration`
//! read into [`crate::model::s3::notify::NotificationConfig`] and written back. The model
//! validates destinations and sends the events.

use super::{Out, malformed_xml, parse_xml};
use crate::api::xml::read::Element;
use crate::model::s3::notify::{Destination, EventConfig, NotificationConfig};
use crate::model::{ApiError, ApiResult};

/// Reads one configuration element (`TopicConfiguration` …) with the element naming
/// its destination (`Topic`, `CloudFunction`).
fn one(e: &Element, dest: &str, n: usize) -> ApiResult<EventConfig> {
    let target = e
        .text_of(dest)
        .filter(|t| !t.is_empty())
        .ok_or_else(malformed_xml)?
        .to_string();
    let events: Vec<String> = e
        .children_named("Event")
        .map(|x| x.text.trim().to_string())
        .collect();
    let (mut prefix, mut suffix) = (String::new(), String::new());
    if let Some(key) = e.child("Filter").and_then(|f| f.child("S3Key")) {
        for rule in key.children_named("FilterRule") {
            let name = rule.text_of("Name").unwrap_or("").to_ascii_lowercase();
            let value = rule.text_of("Value").unwrap_or("").to_string();
            match name.as_str() {
                "prefix" if prefix.is_empty() => prefix = value,
                "suffix" if suffix.is_empty() => suffix = value,
                _ => {
                    return Err(ApiError::new(
                        "InvalidArgument",
                        format!(
                            "filter rule name must be either prefix or suffix, and each at most once (ArgumentName: FilterRule.Name, ArgumentValue: {name})"
                        ),
                    ));
                }
            }
        }
    }
    let id = e
        .text_of("Id")
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        // S3 makes up an id when none is given.
        .unwrap_or_else(|| format!("vpclab-notification-{n}"));
    let destination = if dest == "Topic" {
        Destination::Topic(target)
    } else {
        Destination::Lambda(target)
    };
    Ok(EventConfig {
        id,
        destination,
        events,
        prefix,
        suffix,
    })
}

/// The body of PutBucketNotificationConfiguration.
pub fn parse(body: &[u8]) -> ApiResult<NotificationConfig> {
    let doc = parse_xml(body)?;
    if doc.name != "NotificationConfiguration" {
        return Err(malformed_xml());
    }
    if doc.child("QueueConfiguration").is_some() {
        return Err(ApiError::new(
            "InvalidArgument",
            "vpclab does not emulate Amazon SQS, so queue destinations cannot be validated; use an SNS topic (docs/fidelity.md) (ArgumentName: QueueConfiguration)",
        ));
    }
    if doc.child("EventBridgeConfiguration").is_some() {
        return Err(ApiError::new(
            "InvalidArgument",
            "vpclab does not emulate Amazon EventBridge (ArgumentName: EventBridgeConfiguration)",
        ));
    }
    let mut configs = Vec::new();
    for e in doc.children_named("TopicConfiguration") {
        configs.push(one(e, "Topic", configs.len() + 1)?);
    }
    for e in doc.children_named("CloudFunctionConfiguration") {
        configs.push(one(e, "CloudFunction", configs.len() + 1)?);
    }
    Ok(NotificationConfig { configs })
}

/// GetBucketNotificationConfiguration's answer (empty when none is set, as S3's).
pub fn render(cfg: Option<&NotificationConfig>) -> Out {
    Out::xml("NotificationConfiguration", |x| {
        let Some(cfg) = cfg else {
            return;
        };
        for c in &cfg.configs {
            let (wrapper, dest, arn) = match &c.destination {
                Destination::Topic(t) => ("TopicConfiguration", "Topic", t),
                Destination::Lambda(f) => ("CloudFunctionConfiguration", "CloudFunction", f),
            };
            x.node(wrapper, |x| {
                x.leaf("Id", &c.id).leaf(dest, arn);
                for e in &c.events {
                    x.leaf("Event", e);
                }
                if !c.prefix.is_empty() || !c.suffix.is_empty() {
                    x.node("Filter", |x| {
                        x.node("S3Key", |x| {
                            for (name, value) in [("prefix", &c.prefix), ("suffix", &c.suffix)] {
                                if !value.is_empty() {
                                    x.node("FilterRule", |x| {
                                        x.leaf("Name", name).leaf("Value", value);
                                    });
                                }
                            }
                        });
                    });
                }
            });
        }
    })
}

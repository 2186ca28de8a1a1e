//! Amazon SNS in the model: topics, subscriptions, and the local mailbox that `email`
//! and `email-json` subscriptions deliver to, durable in the store.
//!
//! As on AWS, an `email`/`email-json` subscription starts as `PendingConfirmation` and
//! is sent a confirmation message carrying a token; ConfirmSubscription with that token
//! confirms it, and only confirmed subscriptions receive Publish's messages. Mail is a
//! row per message ([`Mail`], newest [`MAX_MAIL`] kept per account), read by `vpclab
//! mail` and the console. `http`/`https` subscriptions are recorded and their
//! confirmation and notifications are written to the mailbox addressed to the URL,
//! marked as not sent: vpclab does not yet POST them through the fabric
//! (docs/fidelity.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// The newest messages kept in an account's mailbox.
pub const MAX_MAIL: usize = 1000;
/// Publish: at most 256 KiB of message (API reference).
pub const MAX_MESSAGE: usize = 262_144;
/// Topic attributes SetTopicAttributes accepts.
pub const SETTABLE: &[&str] = &[
    "DisplayName",
    "Policy",
    "DeliveryPolicy",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
];
pub const PROTOCOLS: &[&str] = &["email", "email-json", "http", "https", "lambda"];

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameter", message)
}

pub fn not_found(what: &str) -> ApiError {
    ApiError::new("NotFound", format!("{what} does not exist")).with_status(404)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Topic {
    /// `arn:aws:sns:REGION:ACCOUNT:NAME`.
    pub id: String,
    pub region: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl Resource for Topic {
    const KIND: &'static str = "sns_topic";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subscription {
    /// `TOPIC_ARN:UUID`.
    pub id: String,
    pub region: String,
    pub topic: String,
    pub protocol: String,
    pub endpoint: String,
    pub pending: bool,
    pub token: String,
    pub attributes: BTreeMap<String, String>,
}

impl Resource for Subscription {
    const KIND: &'static str = "sns_subscription";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// One delivered message in the local mailbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Mail {
    /// `mail-<ms, 13 digits>-<bits>`: id order is delivery order.
    pub id: String,
    pub region: String,
    pub at: i64,
    /// The subscription's endpoint (an address, or a URL for http/https).
    pub to: String,
    pub protocol: String,
    pub topic: String,
    pub subject: String,
    pub body: String,
    /// `SubscriptionConfirmation` or `Notification`.
    pub kind: String,
    /// Whether it reached its endpoint (always for email; never for http(s) yet).
    pub delivered: bool,
}

impl Resource for Mail {
    const KIND: &'static str = "sns_mail";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

pub fn topic_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sns:{region}:{account}:{name}")
}

fn check_topic_name(name: &str) -> ApiResult<()> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let ok = !base.is_empty()
        && name.len() <= 256
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Invalid parameter: Topic Name: must be 1-256 alphanumeric characters, hyphens (-) or underscores (_).",
        ))
    }
}

pub(crate) fn uuid(bits: u64, more: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (bits >> 32) as u32,
        (bits >> 16) as u16,
        bits & 0xfff,
        more & 0xfff,
        (more >> 12) & 0xffff_ffff_ffff
    )
}

impl World {
    /// A topic by ARN in the request's region.
    pub fn topic(&self, env: &Env, arn: &str) -> ApiResult<&Topic> {
        self.sns_topics
            .get(arn)
            .filter(|t| t.region == env.region)
            .ok_or_else(|| not_found("Topic"))
    }

    /// CreateTopic: idempotent for the same name and attributes.
    pub fn create_topic(
        &mut self,
        env: &Env,
        name: &str,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        check_topic_name(name)?;
        if name.ends_with(".fifo")
            && attributes.get("FifoTopic").map(String::as_str) != Some("true")
        {
            return Err(invalid(
                "Invalid parameter: Topic Name: a name ending in .fifo needs the attribute FifoTopic=true.",
            ));
        }
        for k in attributes.keys() {
            if !SETTABLE.contains(&k.as_str())
                && k != "FifoTopic"
                && k != "ContentBasedDeduplication"
            {
                return Err(invalid(format!(
                    "Invalid parameter: Attributes Reason: Unknown attribute {k}"
                )));
            }
        }
        let id = topic_arn(&env.region, &self.account, name);
        if let Some(t) = self.sns_topics.get(&id) {
            if attributes
                .iter()
                .any(|(k, v)| t.attributes.get(k) != Some(v))
            {
                return Err(invalid(
                    "Invalid parameter: Attributes Reason: Topic already exists with different attributes",
                ));
            }
            return Ok(id);
        }
        self.sns_topics.insert(Topic {
            id: id.clone(),
            region: env.region.clone(),
            name: name.to_string(),
            attributes,
            tags,
        });
        Ok(id)
    }

    /// DeleteTopic: the topic and its subscriptions.
    pub fn delete_topic(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        let id = self.topic(env, arn)?.id.clone();
        for s in self.sns_subscriptions.ids_where(|s| s.topic == id) {
            self.sns_subscriptions.remove(&s);
        }
        self.sns_topics.remove(&id);
        Ok(())
    }

    /// GetTopicAttributes: the stored attributes plus the computed ones.
    pub fn topic_attributes(&self, env: &Env, arn: &str) -> ApiResult<BTreeMap<String, String>> {
        let t = self.topic(env, arn)?;
        let subs: Vec<&Subscription> = self
            .sns_subscriptions
            .iter()
            .filter(|s| s.topic == t.id)
            .collect();
        let mut out = t.attributes.clone();
        out.insert("TopicArn".into(), t.id.clone());
        out.insert("Owner".into(), self.account.clone());
        out.entry("DisplayName".into()).or_default();
        out.entry("Policy".into()).or_insert_with(|| {
            serde_json::json!({
                "Version": "2008-10-17",
                "Id": "__default_policy_ID",
                "Statement": [{
                    "Sid": "__default_statement_ID",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["SNS:Publish", "SNS:Subscribe", "SNS:GetTopicAttributes"],
                    "Resource": t.id,
                    "Condition": {"StringEquals": {"AWS:SourceOwner": self.account}},
                }],
            })
            .to_string()
        });
        out.insert(
            "SubscriptionsConfirmed".into(),
            subs.iter().filter(|s| !s.pending).count().to_string(),
        );
        out.insert(
            "SubscriptionsPending".into(),
            subs.iter().filter(|s| s.pending).count().to_string(),
        );
        out.insert("SubscriptionsDeleted".into(), "0".into());
        Ok(out)
    }

    pub fn set_topic_attribute(
        &mut self,
        env: &Env,
        arn: &str,
        name: &str,
        value: &str,
    ) -> ApiResult<()> {
        if !SETTABLE.contains(&name) {
            return Err(invalid(format!(
                "Invalid parameter: AttributeName: {name} (settable: {})",
                SETTABLE.join(", ")
            )));
        }
        if name == "Policy" && serde_json::from_str::<serde_json::Value>(value).is_err() {
            return Err(invalid(
                "Invalid parameter: Policy Error: the policy is not JSON",
            ));
        }
        let id = self.topic(env, arn)?.id.clone();
        if let Some(t) = self.sns_topics.get_mut(&id) {
            t.attributes.insert(name.to_string(), value.to_string());
        }
        Ok(())
    }

    pub fn tag_sns(&mut self, env: &Env, arn: &str, tags: &[(String, String)]) -> ApiResult<()> {
        let id = self
            .topic(env, arn)
            .map_err(|_| {
                ApiError::new("ResourceNotFound", "Resource does not exist").with_status(404)
            })?
            .id
            .clone();
        let t = self.sns_topics.get_mut(&id).expect("checked above");
        for (k, v) in tags {
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(invalid(format!("Invalid parameter: Tags: invalid tag {k}")));
            }
            t.tags.insert(k.clone(), v.clone());
        }
        if t.tags.len() > 50 {
            return Err(ApiError::new(
                "TagLimitExceeded",
                "Could not complete request: tag quota of per resource exceeded",
            ));
        }
        Ok(())
    }

    pub fn untag_sns(&mut self, env: &Env, arn: &str, keys: &[String]) -> ApiResult<()> {
        let id = self
            .topic(env, arn)
            .map_err(|_| {
                ApiError::new("ResourceNotFound", "Resource does not exist").with_status(404)
            })?
            .id
            .clone();
        if let Some(t) = self.sns_topics.get_mut(&id) {
            for k in keys {
                t.tags.remove(k);
            }
        }
        Ok(())
    }

    /// Subscribe: answers the subscription ARN, or `pending confirmation` for a
    /// subscription that waits for its endpoint to confirm.
    pub fn subscribe(
        &mut self,
        env: &Env,
        topic: &str,
        protocol: &str,
        endpoint: &str,
        attributes: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        let topic = self.topic(env, topic)?.clone();
        if !PROTOCOLS.contains(&protocol) {
            return Err(invalid(format!(
                "Invalid parameter: Protocol: vpclab delivers to {} (not {protocol})",
                PROTOCOLS.join(", ")
            )));
        }
        let ok = match protocol {
            "email" | "email-json" => {
                let (user, host) = endpoint.split_once('@').unwrap_or(("", ""));
                !user.is_empty() && host.contains('.') && !endpoint.contains(char::is_whitespace)
            }
            "http" => endpoint.starts_with("http://"),
            "lambda" => endpoint.starts_with("arn:aws:lambda:"),
            _ => endpoint.starts_with("https://"),
        };
        if !ok {
            return Err(invalid(format!(
                "Invalid parameter: Endpoint: {endpoint} is not a valid {protocol} endpoint"
            )));
        }
        for k in attributes.keys() {
            if ![
                "RawMessageDelivery",
                "FilterPolicy",
                "FilterPolicyScope",
                "DeliveryPolicy",
                "RedrivePolicy",
            ]
            .contains(&k.as_str())
            {
                return Err(invalid(format!(
                    "Invalid parameter: Attributes Reason: Unknown attribute {k}"
                )));
            }
        }
        // Subscribing an endpoint again answers the existing subscription.
        if let Some(s) = self
            .sns_subscriptions
            .iter()
            .find(|s| s.topic == topic.id && s.protocol == protocol && s.endpoint == endpoint)
        {
            return Ok(if s.pending {
                "pending confirmation".into()
            } else {
                s.id.clone()
            });
        }
        let (a, b) = (self.alloc_bits(), self.alloc_bits());
        let id = format!("{}:{}", topic.id, uuid(a, b));
        let token = format!("{a:016x}{b:016x}{:016x}", self.alloc_bits());
        // A Lambda subscription needs no confirmation (AWS confirms it at once; the
        // function's resource policy decides whether SNS may invoke it).
        let confirmed = protocol == "lambda";
        self.sns_subscriptions.insert(Subscription {
            id: id.clone(),
            region: env.region.clone(),
            topic: topic.id.clone(),
            protocol: protocol.to_string(),
            endpoint: endpoint.to_string(),
            pending: !confirmed,
            token: token.clone(),
            attributes,
        });
        if confirmed {
            return Ok(id);
        }
        let display = topic
            .attributes
            .get("DisplayName")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| "AWS Notifications".into());
        let confirm_url = format!(
            "https://sns.{}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={}&Token={token}",
            env.region, topic.id
        );
        let body = if protocol == "email" {
            format!(
                "You have chosen to subscribe to the topic:\n{}\n\nTo confirm this subscription, click or visit the link below (If this was in error no action is necessary):\n{confirm_url}\n\nWith vpclab, confirm it with:\naws sns confirm-subscription --topic-arn {} --token {token}\n",
                topic.id, topic.id
            )
        } else {
            serde_json::json!({
                "Type": "SubscriptionConfirmation",
                "MessageId": uuid(self.alloc_bits(), self.alloc_bits()),
                "Token": token,
                "TopicArn": topic.id,
                "Message": format!("You have chosen to subscribe to the topic {}.\nTo confirm the subscription, visit the SubscribeURL included in this message.", topic.id),
                "SubscribeURL": confirm_url,
                "Timestamp": Timestamp(env.now.0).iso(),
                "SignatureVersion": "1",
            })
            .to_string()
        };
        self.deliver_mail(
            env,
            &topic.id,
            protocol,
            endpoint,
            &format!("{display} - Subscription Confirmation"),
            body,
            "SubscriptionConfirmation",
        );
        Ok("pending confirmation".into())
    }

    /// ConfirmSubscription: the token of a pending subscription of the topic.
    pub fn confirm_subscription(
        &mut self,
        env: &Env,
        topic: &str,
        token: &str,
    ) -> ApiResult<String> {
        let topic = self.topic(env, topic)?.id.clone();
        let Some(s) = self
            .sns_subscriptions
            .iter()
            .find(|s| s.topic == topic && s.token == token)
        else {
            return Err(invalid("Invalid token"));
        };
        let id = s.id.clone();
        if let Some(s) = self.sns_subscriptions.get_mut(&id) {
            s.pending = false;
        }
        Ok(id)
    }

    pub fn unsubscribe(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        match self.sns_subscriptions.get(arn) {
            Some(s) if s.region == env.region => {
                self.sns_subscriptions.remove(arn);
                Ok(())
            }
            _ => Err(not_found("Subscription")),
        }
    }

    /// Publish to a topic: one message to every confirmed subscription. Returns the
    /// message id.
    pub fn sns_publish(
        &mut self,
        env: &Env,
        topic: &str,
        subject: Option<String>,
        message: &str,
        attributes: BTreeMap<String, (String, String)>,
    ) -> ApiResult<String> {
        if message.is_empty() {
            return Err(invalid("Invalid parameter: Empty message"));
        }
        if message.len() > MAX_MESSAGE {
            return Err(invalid("Invalid parameter: Message too long"));
        }
        if let Some(s) = &subject
            && (s.is_empty() || s.len() > 100 || s.chars().any(|c| c.is_control() || !c.is_ascii()))
        {
            return Err(invalid(
                "Invalid parameter: Subject: must be ASCII text of 1-100 characters without line breaks",
            ));
        }
        for (name, (ty, _)) in &attributes {
            if !(ty == "String"
                || ty == "Number"
                || ty == "Binary"
                || ty.starts_with("String.")
                || ty.starts_with("Number.")
                || ty == "String.Array")
            {
                return Err(invalid(format!(
                    "Invalid parameter: MessageAttributes: the data type {ty} of attribute {name} is not String, Number, Binary or String.Array"
                )));
            }
        }
        let topic = self.topic(env, topic)?.clone();
        let message_id = uuid(self.alloc_bits(), self.alloc_bits());
        let subs: Vec<Subscription> = self
            .sns_subscriptions
            .iter()
            .filter(|s| s.topic == topic.id && !s.pending)
            .cloned()
            .collect();
        let display = topic
            .attributes
            .get("DisplayName")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| "AWS Notifications".into());
        for s in subs {
            let unsubscribe = format!(
                "https://sns.{}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={}",
                env.region, s.id
            );
            let raw = s.attributes.get("RawMessageDelivery").map(String::as_str) == Some("true");
            let body = if s.protocol == "lambda" {
                // The event a Lambda function receives from SNS ("Using Lambda with
                // Amazon SNS"): one record with the notification under `Sns`.
                let attrs: serde_json::Map<String, serde_json::Value> = attributes
                    .iter()
                    .map(|(k, (t, v))| (k.clone(), serde_json::json!({"Type": t, "Value": v})))
                    .collect();
                serde_json::json!({
                    "Records": [{
                        "EventVersion": "1.0",
                        "EventSubscriptionArn": s.id,
                        "EventSource": "aws:sns",
                        "Sns": {
                            "SignatureVersion": "1",
                            "Timestamp": Timestamp(env.now.0).iso(),
                            "Signature": "",
                            "SigningCertUrl": "",
                            "MessageId": message_id,
                            "Message": message,
                            "MessageAttributes": attrs,
                            "Type": "Notification",
                            "UnsubscribeUrl": unsubscribe,
                            "TopicArn": topic.id,
                            "Subject": subject,
                        }
                    }]
                })
                .to_string()
            } else if s.protocol == "email" || raw {
                if s.protocol == "email" {
                    format!(
                        "{message}\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n{unsubscribe}\n"
                    )
                } else {
                    message.to_string()
                }
            } else {
                let attrs: serde_json::Map<String, serde_json::Value> = attributes
                    .iter()
                    .map(|(k, (t, v))| (k.clone(), serde_json::json!({"Type": t, "Value": v})))
                    .collect();
                let mut v = serde_json::json!({
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic.id,
                    "Message": message,
                    "Timestamp": Timestamp(env.now.0).iso(),
                    "SignatureVersion": "1",
                    "UnsubscribeURL": unsubscribe,
                });
                if let Some(sub) = &subject {
                    v["Subject"] = serde_json::json!(sub);
                }
                if !attrs.is_empty() {
                    v["MessageAttributes"] = serde_json::Value::Object(attrs);
                }
                v.to_string()
            };
            let subj = subject.clone().unwrap_or_else(|| display.clone());
            self.deliver_mail(
                env,
                &topic.id,
                &s.protocol,
                &s.endpoint,
                &subj,
                body,
                "Notification",
            );
        }
        Ok(message_id)
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_mail(
        &mut self,
        env: &Env,
        topic: &str,
        protocol: &str,
        to: &str,
        subject: &str,
        body: String,
        kind: &str,
    ) {
        let id = format!("mail-{:013}-{:016x}", env.now.0.max(0), self.alloc_bits());
        self.sns_mail.insert(Mail {
            id,
            region: env.region.clone(),
            at: env.now.0,
            to: to.to_string(),
            protocol: protocol.to_string(),
            topic: topic.to_string(),
            subject: subject.to_string(),
            body,
            kind: kind.to_string(),
            delivered: protocol.starts_with("email"),
        });
        let n = self.sns_mail.len();
        if n > MAX_MAIL {
            let mut ids: Vec<String> = self.sns_mail.iter().map(|m| m.id.clone()).collect();
            ids.sort();
            for old in ids.into_iter().take(n - MAX_MAIL) {
                self.sns_mail.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000)).with_action("Test")
    }

    #[test]
    fn email_needs_confirmation_before_it_receives_messages() {
        let mut w = World::new("000000000000");
        let t = w
            .create_topic(&env(), "ops", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(
            w.create_topic(&env(), "ops", BTreeMap::new(), BTreeMap::new())
                .unwrap(),
            t
        );
        let r = w
            .subscribe(&env(), &t, "email", "me@example.com", BTreeMap::new())
            .unwrap();
        assert_eq!(r, "pending confirmation");
        assert_eq!(w.sns_mail.len(), 1);
        w.sns_publish(&env(), &t, Some("hi".into()), "before", BTreeMap::new())
            .unwrap();
        assert_eq!(w.sns_mail.len(), 1, "a pending subscription gets nothing");
        let token = w.sns_subscriptions.iter().next().unwrap().token.clone();
        assert!(w.sns_mail.iter().next().unwrap().body.contains(&token));
        assert_eq!(
            w.confirm_subscription(&env(), &t, "nope").unwrap_err().code,
            "InvalidParameter"
        );
        let arn = w.confirm_subscription(&env(), &t, &token).unwrap();
        assert!(arn.starts_with(&t));
        w.sns_publish(&env(), &t, Some("hi".into()), "after", BTreeMap::new())
            .unwrap();
        let mail: Vec<&Mail> = w.sns_mail.iter().collect();
        assert_eq!(mail.len(), 2);
        assert!(
            mail.iter()
                .any(|m| m.subject == "hi" && m.body.starts_with("after"))
        );
    }

    #[test]
    fn bad_input_gets_sns_codes() {
        let mut w = World::new("000000000000");
        assert_eq!(
            w.create_topic(&env(), "bad name", BTreeMap::new(), BTreeMap::new())
                .unwrap_err()
                .code,
            "InvalidParameter"
        );
        let t = w
            .create_topic(&env(), "ops", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(
            w.subscribe(&env(), &t, "email", "not-an-address", BTreeMap::new())
                .unwrap_err()
                .code,
            "InvalidParameter"
        );
        assert_eq!(
            w.subscribe(&env(), &t, "sqs", "arn:x", BTreeMap::new())
                .unwrap_err()
                .code,
            "InvalidParameter"
        );
        assert_eq!(
            w.sns_publish(
                &env(),
                "arn:aws:sns:us-east-1:000000000000:nope",
                None,
                "m",
                BTreeMap::new()
            )
            .unwrap_err()
            .code,
            "NotFound"
        );
        assert_eq!(
            w.sns_publish(&env(), &t, None, "", BTreeMap::new())
                .unwrap_err()
                .code,
            "InvalidParameter"
        );
    }
}

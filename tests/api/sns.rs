//! SNS through the real `aws sns` CLI (awsQuery): topics, an email subscription that
//! must be confirmed with the token from its confirmation message, read from the local
//! mailbox with `vpclab mail --json`, then Publish reaching that mailbox.

use serde_json::Value;

use crate::support::{Lab, TestDaemon, have, stderr};

fn sns(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["sns"];
    full.extend_from_slice(args);
    d.aws_cli_json(&full)
}

fn sns_err(d: &TestDaemon, args: &[&str], code: &str) {
    let mut full = vec!["sns"];
    full.extend_from_slice(args);
    let out = d.aws_cli(&full);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} should fail with {code}");
    assert!(err.contains(&format!("({code})")), "expected {code}: {err}");
}

/// The mailbox as `vpclab mail --json` prints it, one message per line.
fn mailbox(d: &dyn Lab) -> Vec<Value> {
    let state = d.state_dir();
    let out = d.vpclab(
        &["mail", "--json", "--state-dir", state.to_str().unwrap()],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn an_email_subscription_is_confirmed_from_the_mailbox_then_receives_publish() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let topic = sns(
        &d,
        &[
            "create-topic",
            "--name",
            "ops",
            "--attributes",
            "DisplayName=Ops",
            "--tags",
            "Key=team,Value=net",
        ],
    )["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(topic, "arn:aws:sns:us-east-1:000000000000:ops");
    assert_eq!(
        sns(&d, &["create-topic", "--name", "ops"])["TopicArn"],
        topic.as_str(),
        "idempotent"
    );
    let listed = sns(&d, &["list-topics"]);
    assert_eq!(listed["Topics"][0]["TopicArn"], topic.as_str());
    let sub = sns(
        &d,
        &[
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "email",
            "--notification-endpoint",
            "learner@example.com",
        ],
    );
    assert_eq!(sub["SubscriptionArn"], "pending confirmation");
    let subs = sns(&d, &["list-subscriptions-by-topic", "--topic-arn", &topic]);
    assert_eq!(
        subs["Subscriptions"][0]["SubscriptionArn"],
        "PendingConfirmation"
    );
    let attrs = sns(&d, &["get-topic-attributes", "--topic-arn", &topic]);
    assert_eq!(attrs["Attributes"]["SubscriptionsPending"], "1");
    assert_eq!(attrs["Attributes"]["DisplayName"], "Ops");

    // The confirmation is in the mailbox, with its token.
    let mail = mailbox(&d);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], "learner@example.com");
    assert_eq!(mail[0]["type"], "SubscriptionConfirmation");
    assert_eq!(mail[0]["subject"], "Ops - Subscription Confirmation");
    let body = mail[0]["body"].as_str().unwrap();
    let token = body
        .split("--token ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a token in the message")
        .to_string();
    sns(
        &d,
        &["publish", "--topic-arn", &topic, "--message", "not yet"],
    );
    assert_eq!(
        mailbox(&d).len(),
        1,
        "a pending subscription receives nothing"
    );
    sns_err(
        &d,
        &[
            "confirm-subscription",
            "--topic-arn",
            &topic,
            "--token",
            "0000",
        ],
        "InvalidParameter",
    );
    let confirmed = sns(
        &d,
        &[
            "confirm-subscription",
            "--topic-arn",
            &topic,
            "--token",
            &token,
        ],
    );
    let sub_arn = confirmed["SubscriptionArn"].as_str().unwrap().to_string();
    assert!(sub_arn.starts_with(&format!("{topic}:")), "{sub_arn}");

    let published = sns(
        &d,
        &[
            "publish",
            "--topic-arn",
            &topic,
            "--subject",
            "Deploy",
            "--message",
            "web-1 is up",
            "--message-attributes",
            r#"{"env":{"DataType":"String","StringValue":"lab"}}"#,
        ],
    );
    assert!(
        published["MessageId"]
            .as_str()
            .is_some_and(|m| m.len() == 36),
        "{published}"
    );
    let mail = mailbox(&d);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert_eq!(mail[1]["subject"], "Deploy");
    assert!(mail[1]["body"].as_str().unwrap().starts_with("web-1 is up"));

    let tags = sns(&d, &["list-tags-for-resource", "--resource-arn", &topic]);
    assert_eq!(tags["Tags"][0]["Key"], "team");

    sns_err(
        &d,
        &[
            "publish",
            "--topic-arn",
            "arn:aws:sns:us-east-1:000000000000:nope",
            "--message",
            "x",
        ],
        "NotFound",
    );
    sns_err(
        &d,
        &[
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "email",
            "--notification-endpoint",
            "not-an-address",
        ],
        "InvalidParameter",
    );
    sns_err(
        &d,
        &["create-topic", "--name", "has space"],
        "InvalidParameter",
    );
    sns(&d, &["unsubscribe", "--subscription-arn", &sub_arn]);
    sns_err(
        &d,
        &["unsubscribe", "--subscription-arn", &sub_arn],
        "NotFound",
    );
    sns(&d, &["delete-topic", "--topic-arn", &topic]);
    assert_eq!(
        sns(&d, &["list-topics"])["Topics"].as_array().map(Vec::len),
        Some(0)
    );
}

/// Topics, subscriptions, the mailbox, metrics and alarms are in the state database:
/// a restarted daemon has them all.
#[test]
fn topics_mail_metrics_and_alarms_survive_a_restart() {
    if !have("aws") {
        return;
    }
    let mut d = TestDaemon::start();
    let topic = sns(&d, &["create-topic", "--name", "keep"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    sns(
        &d,
        &[
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "email-json",
            "--notification-endpoint",
            "a@example.com",
        ],
    );
    d.aws_cli_json(&[
        "cloudwatch",
        "put-metric-data",
        "--namespace",
        "Keep",
        "--metric-name",
        "M",
        "--value",
        "7",
    ]);
    d.aws_cli_json(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        "kept",
        "--namespace",
        "Keep",
        "--metric-name",
        "M",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "1",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--alarm-actions",
        &topic,
    ]);
    d.stop();
    d.launch();
    assert_eq!(
        sns(&d, &["list-topics"])["Topics"][0]["TopicArn"],
        topic.as_str()
    );
    let mail = mailbox(&d);
    assert_eq!(mail.len(), 1, "{mail:?}");
    // email-json confirmations are the JSON document AWS posts.
    let doc: Value = serde_json::from_str(mail[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(doc["Type"], "SubscriptionConfirmation");
    assert_eq!(doc["TopicArn"], topic.as_str());
    let metrics = d.aws_cli_json(&["cloudwatch", "list-metrics", "--namespace", "Keep"]);
    assert_eq!(metrics["Metrics"][0]["MetricName"], "M");
    let alarms = d.aws_cli_json(&["cloudwatch", "describe-alarms", "--alarm-names", "kept"]);
    assert_eq!(alarms["MetricAlarms"][0]["AlarmActions"][0], topic.as_str());
}

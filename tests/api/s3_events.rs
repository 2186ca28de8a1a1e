//! Issue 15: S3 event notifications to SNS (S3 User Guide, "Amazon S3 Event
//! Notifications"): the configuration is validated against the topic's access policy,
//! a test event goes out when it is set, and object writes and deletes reach an email
//! subscription as S3's event message (Records[0].eventName, s3.bucket.name,
//! s3.object.key URL-encoded, size, eTag, sequencer).

use serde_json::Value;

use crate::support::{Lab, TestDaemon, require_aws, stderr};

pub(crate) fn mailbox(d: &dyn Lab) -> Vec<Value> {
    let state = d.state_dir();
    let out = d.vpclab(
        &[
            "mail",
            "--json",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A topic with a confirmed email subscription; returns its ARN.
pub(crate) fn subscribed_topic(d: &TestDaemon, name: &str) -> String {
    let topic = d.aws_cli_json(&["sns", "create-topic", "--name", name])["TopicArn"]
        .as_str()
        .expect("TopicArn")
        .to_string();
    d.aws_cli_json(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "email",
        "--notification-endpoint",
        "ops@example.com",
    ]);
    let mail = mailbox(d);
    let body = mail.last().expect("a confirmation")["body"]
        .as_str()
        .expect("body")
        .to_string();
    let token = body
        .split("--token ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a token")
        .to_string();
    d.aws_cli_json(&[
        "sns",
        "confirm-subscription",
        "--topic-arn",
        &topic,
        "--token",
        &token,
    ]);
    topic
}

/// A topic S3 may publish to, with a confirmed email subscription.
pub(crate) fn s3_topic(d: &TestDaemon, name: &str) -> String {
    let topic = subscribed_topic(d, name);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"s3.amazonaws.com"}},"Action":"SNS:Publish","Resource":"{topic}"}}]}}"#
    );
    d.aws_cli_json(&[
        "sns",
        "set-topic-attributes",
        "--topic-arn",
        &topic,
        "--attribute-name",
        "Policy",
        "--attribute-value",
        &policy,
    ]);
    topic
}

/// `aws s3 …` (text output) expected to succeed.
fn s3_ok(d: &TestDaemon, args: &[&str]) {
    let out = d.aws_cli(args);
    assert!(out.status.success(), "aws {args:?}: {}", stderr(&out));
}

fn notification_json(topic: &str, suffix: &str) -> String {
    format!(
        r#"{{"TopicConfigurations":[{{"Id":"uploads","TopicArn":"{topic}","Events":["s3:ObjectCreated:*","s3:ObjectRemoved:*"],"Filter":{{"Key":{{"FilterRules":[{{"Name":"prefix","Value":"in/"}},{{"Name":"suffix","Value":"{suffix}"}}]}}}}}}]}}"#
    )
}

/// The S3 records of the mails after the first `skip`.
pub(crate) fn records(d: &TestDaemon, skip: usize) -> Vec<Value> {
    mailbox(d)
        .into_iter()
        .skip(skip)
        .map(|m| {
            let body = m["body"].as_str().expect("body");
            // An email subscription gets the message followed by the unsubscribe text.
            let json = body.split("\n\n--\n").next().expect("message");
            serde_json::from_str::<Value>(json).expect("the event JSON")
        })
        .collect()
}

#[test]
fn issue15_s3_events_reach_an_email_subscription_of_an_sns_topic() {
    require_aws();
    let d = TestDaemon::start();
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", "photos"]);
    let topic = subscribed_topic(&d, "uploads");

    // The topic's default policy does not let S3 publish: refused, with the reason.
    let out = d.aws_cli(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "photos",
        "--notification-configuration",
        &notification_json(&topic, ".jpg"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("(InvalidArgument)"), "{err}");
    assert!(
        err.contains("Unable to validate the following destination"),
        "{err}"
    );

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"s3.amazonaws.com"}},"Action":"SNS:Publish","Resource":"{topic}","Condition":{{"ArnLike":{{"aws:SourceArn":"arn:aws:s3:::photos"}}}}}}]}}"#
    );
    d.aws_cli_json(&[
        "sns",
        "set-topic-attributes",
        "--topic-arn",
        &topic,
        "--attribute-name",
        "Policy",
        "--attribute-value",
        &policy,
    ]);
    let before = mailbox(&d).len();
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "photos",
        "--notification-configuration",
        &notification_json(&topic, ".jpg"),
    ]);
    // S3 sends a test event when the configuration is set.
    let test = &mailbox(&d)[before];
    assert!(
        test["body"]
            .as_str()
            .is_some_and(|b| b.contains("\"Event\":\"s3:TestEvent\"")),
        "{test}"
    );
    let got = d.aws_cli_json(&[
        "s3api",
        "get-bucket-notification-configuration",
        "--bucket",
        "photos",
    ]);
    let c = &got["TopicConfigurations"][0];
    assert_eq!(c["TopicArn"], topic.as_str(), "{got}");
    assert_eq!(c["Events"][0], "s3:ObjectCreated:*");
    assert_eq!(c["Filter"]["Key"]["FilterRules"][0]["Value"], "in/");

    let start = mailbox(&d).len();
    let photo = d.path("cat.jpg");
    std::fs::write(&photo, b"not really a jpeg").expect("write");
    let photo = photo.to_string_lossy().to_string();
    s3_ok(&d, &["s3", "cp", &photo, "s3://photos/in/my cat.jpg"]);
    // Outside the filter: neither the prefix nor the suffix fits.
    s3_ok(&d, &["s3", "cp", &photo, "s3://photos/out/cat.jpg"]);
    s3_ok(&d, &["s3", "cp", &photo, "s3://photos/in/cat.png"]);
    s3_ok(&d, &["s3", "rm", "s3://photos/in/my cat.jpg"]);

    let recs = records(&d, start);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let put = &recs[0]["Records"][0];
    assert_eq!(put["eventSource"], "aws:s3");
    assert_eq!(put["eventName"], "ObjectCreated:Put");
    assert_eq!(put["s3"]["bucket"]["name"], "photos");
    assert_eq!(put["s3"]["object"]["key"], "in/my+cat.jpg");
    assert_eq!(put["s3"]["object"]["size"], 17);
    assert_eq!(put["s3"]["configurationId"], "uploads");
    assert_eq!(
        put["s3"]["object"]["eTag"].as_str().map(str::len),
        Some(32),
        "{put}"
    );
    let removed = &recs[1]["Records"][0];
    assert_eq!(removed["eventName"], "ObjectRemoved:Delete");
    assert!(
        removed["s3"]["object"]["sequencer"].as_str() > put["s3"]["object"]["sequencer"].as_str(),
        "sequencers grow: {removed} {put}"
    );

    // SQS is not emulated: a queue destination is refused with a clear message.
    let out = d.aws_cli(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "photos",
        "--notification-configuration",
        r#"{"QueueConfigurations":[{"QueueArn":"arn:aws:sqs:us-east-1:000000000000:q","Events":["s3:ObjectCreated:*"]}]}"#,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SQS"), "{}", stderr(&out));
    // An empty configuration turns notifications off.
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "photos",
        "--notification-configuration",
        "{}",
    ]);
    let n = mailbox(&d).len();
    s3_ok(&d, &["s3", "cp", &photo, "s3://photos/in/again.jpg"]);
    assert_eq!(mailbox(&d).len(), n);
}

/// S3 User Guide, "Event notification types and destinations": `s3:LifecycleExpiration:
/// DeleteMarkerCreated` when a lifecycle expiration makes a delete marker in a versioned
/// bucket, `s3:LifecycleExpiration:Delete` when it removes a version for good. The
/// lifecycle runs when the bucket is next used, on the daemon's clock moved days ahead.
#[test]
fn lifecycle_expirations_send_lifecycle_events() {
    require_aws();
    let (d, clock) = TestDaemon::start_with_clock();
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", "archive"]);
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "archive",
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let topic = s3_topic(&d, "expiry");
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "archive",
        "--notification-configuration",
        &format!(
            r#"{{"TopicConfigurations":[{{"Id":"expiry","TopicArn":"{topic}","Events":["s3:LifecycleExpiration:*"]}}]}}"#
        ),
    ]);
    let file = d.path("report.txt");
    std::fs::write(&file, "q1").unwrap();
    let put = d.aws_cli_json(&[
        "s3api",
        "put-object",
        "--bucket",
        "archive",
        "--key",
        "reports/q1.txt",
        "--body",
        file.to_str().unwrap(),
    ]);
    let version = put["VersionId"].as_str().expect("VersionId").to_string();
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        "archive",
        "--lifecycle-configuration",
        r#"{"Rules":[{"ID":"reports","Status":"Enabled","Filter":{"Prefix":"reports/"},"Expiration":{"Days":1},"NoncurrentVersionExpiration":{"NoncurrentDays":1}}]}"#,
    ]);
    let before = mailbox(&d).len();

    clock.advance_days(3);
    s3_ok(&d, &["s3", "ls", "s3://archive"]);
    let events = records(&d, before);
    assert_eq!(events.len(), 1, "{events:?}");
    let r = &events[0]["Records"][0];
    assert_eq!(
        r["eventName"], "LifecycleExpiration:DeleteMarkerCreated",
        "{r}"
    );
    assert_eq!(r["userIdentity"]["principalId"], "s3.amazonaws.com", "{r}");
    assert_eq!(r["s3"]["object"]["key"], "reports/q1.txt", "{r}");

    // The version the marker covered is removed a day after it became noncurrent, and
    // then the marker, left alone, is an expired object delete marker and goes too.
    clock.advance_days(10);
    s3_ok(&d, &["s3", "ls", "s3://archive"]);
    let events = records(&d, before + 1);
    assert_eq!(events.len(), 2, "{events:?}");
    let mut removed: Vec<&str> = events
        .iter()
        .map(|e| {
            let r = &e["Records"][0];
            assert_eq!(r["eventName"], "LifecycleExpiration:Delete", "{r}");
            r["s3"]["object"]["versionId"].as_str().expect("versionId")
        })
        .collect();
    removed.retain(|v| *v != version);
    assert_eq!(removed.len(), 1, "the version and the marker: {events:?}");
}

//! The daemon's S3 sweep (s15): lifecycle actions and the end of restores happen when
//! the clock makes them due, with no request naming the bucket, and send the events
//! S3 sends for them (S3 User Guide, "Event notification types and destinations",
//! "Event message structure", "Configuring S3 Lifecycle event notifications"); object
//! tagging events; the lifecycle's default 128 KB transition minimum (API reference,
//! PutBucketLifecycleConfiguration, `x-amz-transition-default-minimum-object-size`).
//!
//! Each test reads the events from an email subscription with `vpclab mail`, which
//! reads the state directory and sends no request to the daemon: whatever arrives
//! while a test only waits was sent by the sweep.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::s3_events::{mailbox, records, s3_topic};
use crate::support::{Lab, TestDaemon, require_aws, stderr};

/// Sends `events` (with a key prefix filter) of `bucket` to `topic`.
fn notify(d: &TestDaemon, bucket: &str, topic: &str, events: &[&str], prefix: &str) {
    let events: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
    let config = format!(
        r#"{{"TopicConfigurations":[{{"Id":"sweep","TopicArn":"{topic}","Events":[{}],"Filter":{{"Key":{{"FilterRules":[{{"Name":"prefix","Value":"{prefix}"}}]}}}}}}]}}"#,
        events.join(",")
    );
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        bucket,
        "--notification-configuration",
        &config,
    ]);
}

/// The first record of each S3 event mail after the first `skip` mails.
fn events(d: &TestDaemon, skip: usize) -> Vec<Value> {
    records(d, skip)
        .into_iter()
        .map(|r| r["Records"][0].clone())
        .collect()
}

/// Waits (without a request to the daemon) until an event named `name` about `key`
/// has come after the first `skip` mails; returns it.
fn wait_for(d: &TestDaemon, skip: usize, name: &str, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = events(d, skip)
            .into_iter()
            .find(|e| e["eventName"] == name && e["s3"]["object"]["key"] == key);
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {name} event for {key}: {:?}",
            events(d, skip)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn names(d: &TestDaemon, skip: usize) -> Vec<(String, String)> {
    events(d, skip)
        .into_iter()
        .map(|e| {
            (
                e["eventName"].as_str().unwrap_or_default().to_string(),
                e["s3"]["object"]["key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn put(d: &TestDaemon, bucket: &str, key: &str, bytes: usize, class: &str) {
    let file = d.path(&format!("body-{bytes}"));
    std::fs::write(&file, vec![b'x'; bytes]).expect("write");
    d.aws_cli_json(&[
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        key,
        "--body",
        file.to_str().expect("utf-8"),
        "--storage-class",
        class,
    ]);
}

fn class_of(d: &TestDaemon, bucket: &str, key: &str) -> String {
    let h = d.aws_cli_json(&["s3api", "head-object", "--bucket", bucket, "--key", key]);
    h["StorageClass"].as_str().unwrap_or("STANDARD").to_string()
}

/// "Event notification types": `s3:ObjectRestore:Completed` "when the restoration of
/// an object is complete", `s3:ObjectRestore:Delete` "when a temporary copy of a
/// restored object expires". "The glacierEventData key is only visible for
/// s3:ObjectRestore:Completed events"; version 2.3 is used for "object restoration
/// delete events". Neither needs a request: the sweep sends them.
#[test]
fn s15_a_restore_completes_and_expires_with_events_and_no_request() {
    require_aws();
    let (d, clock) = TestDaemon::start_with_clock();
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", "vault"]);
    let topic = s3_topic(&d, "restores");
    notify(&d, "vault", &topic, &["s3:ObjectRestore:*"], "cold/");
    put(&d, "vault", "cold/a.txt", 10, "GLACIER");
    put(&d, "vault", "warm/b.txt", 10, "GLACIER");
    let start = mailbox(&d).len();
    for key in ["cold/a.txt", "warm/b.txt"] {
        d.aws_cli_json(&[
            "s3api",
            "restore-object",
            "--bucket",
            "vault",
            "--key",
            key,
            "--restore-request",
            "Days=1,GlacierJobParameters={Tier=Expedited}",
        ]);
    }

    // vpclab's Expedited restore takes 1 s; the sweep announces it.
    let done = wait_for(&d, start, "ObjectRestore:Completed", "cold/a.txt");
    assert_eq!(done["eventVersion"], "2.1", "{done}");
    assert_eq!(done["userIdentity"]["principalId"], "s3.amazonaws.com");
    let data = &done["glacierEventData"]["restoreEventData"];
    assert_eq!(data["lifecycleRestoreStorageClass"], "GLACIER", "{done}");
    let expiry = data["lifecycleRestorationExpiryTime"]
        .as_str()
        .expect("an expiry time");
    assert!(
        expiry.ends_with("T00:00:00.000Z"),
        "a midnight UTC: {expiry}"
    );
    assert_eq!(
        names(&d, start),
        [
            ("ObjectRestore:Post".to_string(), "cold/a.txt".to_string()),
            (
                "ObjectRestore:Completed".to_string(),
                "cold/a.txt".to_string()
            ),
        ],
        "warm/b.txt is outside the filter; Completed comes once"
    );

    // Two days later the copy has expired: the sweep removes it and says so.
    let before = mailbox(&d).len();
    clock.advance_days(2);
    let gone = wait_for(&d, before, "ObjectRestore:Delete", "cold/a.txt");
    assert_eq!(gone["eventVersion"], "2.3", "{gone}");
    assert!(gone.get("glacierEventData").is_none(), "{gone}");
    assert_eq!(names(&d, before).len(), 1, "{:?}", names(&d, before));
    let h = d.aws_cli_json(&[
        "s3api",
        "head-object",
        "--bucket",
        "vault",
        "--key",
        "cold/a.txt",
    ]);
    assert!(h.get("Restore").is_none(), "{h}");
}

/// "Configuring S3 Lifecycle event notifications": `s3:LifecycleTransition` "when an
/// object is transitioned from one Amazon S3 storage class to another by an S3
/// Lifecycle configuration", with `lifecycleEventData.transitionEventData.
/// destinationStorageClass`. The transition and its event come from the sweep. And
/// the default minimum: "all_storage_classes_128K - Objects smaller than 128 KB will
/// not transition to any storage class by default. varies_by_storage_class - Objects
/// smaller than 128 KB will transition to Glacier Flexible Retrieval or Glacier Deep
/// Archive storage classes."
#[test]
fn s15_lifecycle_transitions_happen_without_a_request_and_small_objects_wait() {
    require_aws();
    let (d, clock) = TestDaemon::start_with_clock();
    let b = "tiers";
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", b]);
    let topic = s3_topic(&d, "tiers");
    notify(&d, b, &topic, &["s3:LifecycleTransition"], "logs/");
    put(&d, b, "logs/big.log", 200 * 1024, "STANDARD");
    put(&d, b, "logs/small.log", 1000, "STANDARD");
    let rules = r#"{"Rules":[{"ID":"archive","Status":"Enabled","Filter":{"Prefix":"logs/"},
        "Transitions":[{"Days":1,"StorageClass":"GLACIER"}]}]}"#;
    let put_rules = |extra: &[&str]| {
        let args = [
            &[
                "s3api",
                "put-bucket-lifecycle-configuration",
                "--bucket",
                b,
                "--lifecycle-configuration",
                rules,
            ],
            extra,
        ]
        .concat();
        d.aws_cli_json(&args)
    };
    let out = put_rules(&[]);
    // Without the header, S3's default since September 2024, returned on both answers.
    assert_eq!(
        out["TransitionDefaultMinimumObjectSize"], "all_storage_classes_128K",
        "{out}"
    );
    let got = d.aws_cli_json(&["s3api", "get-bucket-lifecycle-configuration", "--bucket", b]);
    assert_eq!(
        got["TransitionDefaultMinimumObjectSize"], "all_storage_classes_128K",
        "{got}"
    );

    let start = mailbox(&d).len();
    clock.advance_days(3);
    let moved = wait_for(&d, start, "LifecycleTransition", "logs/big.log");
    assert_eq!(moved["eventVersion"], "2.3", "{moved}");
    assert_eq!(moved["userIdentity"]["principalId"], "s3.amazonaws.com");
    assert_eq!(
        moved["lifecycleEventData"]["transitionEventData"]["destinationStorageClass"], "GLACIER",
        "{moved}"
    );
    // Give the sweep a few more runs: the small object stays.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        names(&d, start),
        [(
            "LifecycleTransition".to_string(),
            "logs/big.log".to_string()
        )]
    );
    assert_eq!(class_of(&d, b, "logs/big.log"), "GLACIER");
    assert_eq!(class_of(&d, b, "logs/small.log"), "STANDARD");

    // A value S3 does not define is refused.
    let out = d.aws_cli(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        b,
        "--lifecycle-configuration",
        rules,
        "--transition-default-minimum-object-size",
        "everything",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("(InvalidArgument)"),
        "{}",
        stderr(&out)
    );

    // varies_by_storage_class lets small objects go to GLACIER.
    let before = mailbox(&d).len();
    let out = put_rules(&[
        "--transition-default-minimum-object-size",
        "varies_by_storage_class",
    ]);
    assert_eq!(
        out["TransitionDefaultMinimumObjectSize"], "varies_by_storage_class",
        "{out}"
    );
    let got = d.aws_cli_json(&["s3api", "get-bucket-lifecycle-configuration", "--bucket", b]);
    assert_eq!(
        got["TransitionDefaultMinimumObjectSize"], "varies_by_storage_class",
        "{got}"
    );
    let moved = wait_for(&d, before, "LifecycleTransition", "logs/small.log");
    assert_eq!(
        moved["lifecycleEventData"]["transitionEventData"]["destinationStorageClass"], "GLACIER",
        "{moved}"
    );
    assert_eq!(class_of(&d, b, "logs/small.log"), "GLACIER");
}

/// "Event notification types": `s3:ObjectTagging:Put` "when a tag is PUT on an object
/// or an existing tag is updated", `s3:ObjectTagging:Delete` "when all tags are removed
/// from an object"; their records are version 2.3 ("Event message structure").
#[test]
fn s15_object_tagging_sends_its_events() {
    require_aws();
    let d = TestDaemon::start();
    let b = "tagged";
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", b]);
    d.aws_cli_json(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        b,
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let topic = s3_topic(&d, "tags");
    notify(&d, b, &topic, &["s3:ObjectTagging:*"], "docs/");
    put(&d, b, "docs/a.txt", 5, "STANDARD");
    put(&d, b, "other/b.txt", 5, "STANDARD");
    let start = mailbox(&d).len();
    for key in ["docs/a.txt", "other/b.txt"] {
        d.aws_cli_json(&[
            "s3api",
            "put-object-tagging",
            "--bucket",
            b,
            "--key",
            key,
            "--tagging",
            "TagSet=[{Key=team,Value=blue}]",
        ]);
        d.aws_cli_json(&[
            "s3api",
            "delete-object-tagging",
            "--bucket",
            b,
            "--key",
            key,
        ]);
    }
    let got = events(&d, start);
    let seen: Vec<&str> = got
        .iter()
        .map(|e| e["eventName"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        seen,
        ["ObjectTagging:Put", "ObjectTagging:Delete"],
        "only the key under docs/: {got:?}"
    );
    for e in &got {
        assert_eq!(e["eventVersion"], "2.3", "{e}");
        assert_eq!(e["s3"]["object"]["key"], "docs/a.txt");
        assert!(
            e["s3"]["object"]["versionId"].as_str().is_some(),
            "versioned: {e}"
        );
    }
    // A tagging request on a key that does not exist sends nothing and is S3's error.
    let err = d.aws_cli_err(&[
        "s3api",
        "put-object-tagging",
        "--bucket",
        b,
        "--key",
        "docs/none.txt",
        "--tagging",
        "TagSet=[{Key=a,Value=b}]",
    ]);
    assert!(err.contains("(NoSuchKey)"), "{err}");
    assert_eq!(events(&d, start).len(), 2);
}

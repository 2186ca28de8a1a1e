//! S3 storage classes and the restore of archived objects, through the real `aws` CLI:
//! `aws s3 cp --storage-class`, `s3api put-object` / `copy-object` /
//! `create-multipart-upload --storage-class`, the class in every listing, and the
//! Glacier cycle (`get-object` refused, `restore-object`, `x-amz-restore`, then read).
//! Each test quotes the S3 rule it checks.

use std::time::Duration;

use crate::support::{Lab, TestDaemon, have};

const REGION: &[&str] = &["--region", "us-east-1"];

fn s3(d: &dyn Lab, args: &[&str]) -> String {
    let out = d.aws_cli(&[REGION, args].concat());
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s3api(d: &dyn Lab, args: &[&str]) -> serde_json::Value {
    d.aws_cli_json(&[REGION, &["s3api"], args].concat())
}

fn s3api_err(d: &dyn Lab, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(&[REGION, &["s3api"], args].concat());
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

/// Runs an `s3api` command with `--debug` and returns the HTTP status of its answer
/// (urllib3 logs `"POST /… HTTP/1.1" 202 0`) and the whole debug log.
fn s3api_status(d: &dyn Lab, args: &[&str]) -> (u16, String) {
    let out = d.aws_cli(&[REGION, &["--debug", "s3api"], args].concat());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = log
        .lines()
        .filter_map(|l| l.split("HTTP/1.1\" ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0);
    (status, log)
}

fn head(d: &dyn Lab, bucket: &str, key: &str) -> serde_json::Value {
    s3api(d, &["head-object", "--bucket", bucket, "--key", key])
}

#[test]
fn storage_classes_are_set_reported_and_validated() {
    if !have("aws") {
        return;
    }
    let mut d = TestDaemon::start();
    let file = d.dir().join("notes.txt");
    std::fs::write(&file, "infrequently read").unwrap();
    let file = file.to_str().unwrap();
    s3(&d, &["s3", "mb", "s3://classes"]);

    // `aws s3 cp --storage-class` sends `x-amz-storage-class` on PutObject.
    s3(
        &d,
        &[
            "s3",
            "cp",
            file,
            "s3://classes/ia.txt",
            "--storage-class",
            "STANDARD_IA",
        ],
    );
    s3(&d, &["s3", "cp", file, "s3://classes/plain.txt"]);
    // HeadObject: "Amazon S3 returns this header for all objects except for S3
    // Standard storage class objects."
    assert_eq!(head(&d, "classes", "ia.txt")["StorageClass"], "STANDARD_IA");
    assert!(
        head(&d, "classes", "plain.txt")
            .get("StorageClass")
            .is_none()
    );

    // Every class S3 documents for general purpose buckets is accepted.
    for class in [
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    ] {
        let key = format!("every/{class}");
        s3api(
            &d,
            &[
                "put-object",
                "--bucket",
                "classes",
                "--key",
                &key,
                "--body",
                file,
                "--storage-class",
                class,
            ],
        );
        let listed = s3api(
            &d,
            &["list-objects-v2", "--bucket", "classes", "--prefix", &key],
        );
        assert_eq!(listed["Contents"][0]["StorageClass"], class);
    }
    // Classes of other kinds of storage (directory buckets, Outposts, Snow) and unknown
    // names are refused: InvalidStorageClass, "The storage class you specified is not
    // valid".
    for bad in ["EXPRESS_ONEZONE", "OUTPOSTS", "SNOW", "PLATINUM"] {
        s3api_err(
            &d,
            &[
                "put-object",
                "--bucket",
                "classes",
                "--key",
                "bad",
                "--body",
                file,
                "--storage-class",
                bad,
            ],
            "InvalidStorageClass",
        );
    }
    let listed = s3api(&d, &["list-objects-v2", "--bucket", "classes"]);
    let keys: Vec<&str> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["Key"].as_str())
        .collect();
    assert!(!keys.contains(&"bad"), "{keys:?}");
    let v1 = s3api(
        &d,
        &["list-objects", "--bucket", "classes", "--prefix", "ia"],
    );
    assert_eq!(v1["Contents"][0]["StorageClass"], "STANDARD_IA");

    // CopyObject: "You can use the CopyObject action to change the storage class of an
    // object that is already stored in Amazon S3" — onto itself with a new class.
    s3api(
        &d,
        &[
            "copy-object",
            "--bucket",
            "classes",
            "--key",
            "ia.txt",
            "--copy-source",
            "classes/ia.txt",
            "--storage-class",
            "ONEZONE_IA",
        ],
    );
    assert_eq!(head(&d, "classes", "ia.txt")["StorageClass"], "ONEZONE_IA");
    // Without a change it is still refused, and a copy elsewhere is STANDARD unless a
    // class is named ("the copied object will be stored in the STANDARD Storage Class
    // by default").
    s3api_err(
        &d,
        &[
            "copy-object",
            "--bucket",
            "classes",
            "--key",
            "ia.txt",
            "--copy-source",
            "classes/ia.txt",
            "--storage-class",
            "ONEZONE_IA",
        ],
        "InvalidRequest",
    );
    s3api(
        &d,
        &[
            "copy-object",
            "--bucket",
            "classes",
            "--key",
            "copy.txt",
            "--copy-source",
            "classes/ia.txt",
        ],
    );
    assert!(
        head(&d, "classes", "copy.txt")
            .get("StorageClass")
            .is_none()
    );

    // Multipart: the class named at CreateMultipartUpload shows in
    // ListMultipartUploads and ListParts, and the completed object has it.
    let up = s3api(
        &d,
        &[
            "create-multipart-upload",
            "--bucket",
            "classes",
            "--key",
            "big.bin",
            "--storage-class",
            "GLACIER_IR",
        ],
    );
    let id = up["UploadId"].as_str().unwrap().to_string();
    let uploads = s3api(&d, &["list-multipart-uploads", "--bucket", "classes"]);
    assert_eq!(uploads["Uploads"][0]["StorageClass"], "GLACIER_IR");
    let part = s3api(
        &d,
        &[
            "upload-part",
            "--bucket",
            "classes",
            "--key",
            "big.bin",
            "--upload-id",
            &id,
            "--part-number",
            "1",
            "--body",
            file,
        ],
    );
    let parts = s3api(
        &d,
        &[
            "list-parts",
            "--bucket",
            "classes",
            "--key",
            "big.bin",
            "--upload-id",
            &id,
        ],
    );
    assert_eq!(parts["StorageClass"], "GLACIER_IR");
    let etag = part["ETag"].as_str().unwrap();
    let layout = format!(r#"{{"Parts":[{{"PartNumber":1,"ETag":{etag:?}}}]}}"#);
    s3api(
        &d,
        &[
            "complete-multipart-upload",
            "--bucket",
            "classes",
            "--key",
            "big.bin",
            "--upload-id",
            &id,
            "--multipart-upload",
            &layout,
        ],
    );
    assert_eq!(head(&d, "classes", "big.bin")["StorageClass"], "GLACIER_IR");
    let attrs = s3api(
        &d,
        &[
            "get-object-attributes",
            "--bucket",
            "classes",
            "--key",
            "big.bin",
            "--object-attributes",
            "StorageClass",
        ],
    );
    assert_eq!(attrs["StorageClass"], "GLACIER_IR");

    // ListObjectVersions reports each version's class.
    s3api(
        &d,
        &[
            "put-bucket-versioning",
            "--bucket",
            "classes",
            "--versioning-configuration",
            "Status=Enabled",
        ],
    );
    s3api(
        &d,
        &[
            "put-object",
            "--bucket",
            "classes",
            "--key",
            "ia.txt",
            "--body",
            file,
            "--storage-class",
            "INTELLIGENT_TIERING",
        ],
    );
    let versions = s3api(
        &d,
        &[
            "list-object-versions",
            "--bucket",
            "classes",
            "--prefix",
            "ia.txt",
        ],
    );
    let classes: Vec<&str> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["StorageClass"].as_str())
        .collect();
    assert_eq!(classes, ["INTELLIGENT_TIERING", "ONEZONE_IA"], "{versions}");

    // The class is durable.
    d.stop();
    d.launch();
    assert_eq!(
        head(&d, "classes", "ia.txt")["StorageClass"],
        "INTELLIGENT_TIERING"
    );
    assert_eq!(head(&d, "classes", "big.bin")["StorageClass"], "GLACIER_IR");
}

#[test]
fn a_glacier_object_is_restored_before_it_can_be_read() {
    if !have("aws") {
        return;
    }
    let mut d = TestDaemon::start();
    let file = d.dir().join("archive.txt");
    std::fs::write(&file, "kept for years").unwrap();
    let file = file.to_str().unwrap();
    let out = d.dir().join("out.txt");
    let out = out.to_str().unwrap();
    s3(&d, &["s3", "mb", "s3://vault"]);
    for (key, class) in [
        ("cold.txt", "GLACIER"),
        ("colder.txt", "GLACIER"),
        ("deep.txt", "DEEP_ARCHIVE"),
    ] {
        s3(
            &d,
            &[
                "s3",
                "cp",
                file,
                &format!("s3://vault/{key}"),
                "--storage-class",
                class,
            ],
        );
    }
    s3(&d, &["s3", "cp", file, "s3://vault/warm.txt"]);

    // GetObject of an archived object: "before you can retrieve the object you must
    // first restore a copy using RestoreObject. Otherwise, this operation returns an
    // InvalidObjectState error" — a 403 whose document names the StorageClass.
    let get = ["get-object", "--bucket", "vault", "--key", "cold.txt", out];
    s3api_err(&d, &get, "InvalidObjectState");
    let (status, log) = s3api_status(&d, &get);
    assert_eq!(status, 403, "{log}");
    assert!(
        log.contains("<StorageClass>GLACIER</StorageClass>"),
        "{log}"
    );
    // HeadObject works on an archived object and names its class.
    let h = head(&d, "vault", "cold.txt");
    assert_eq!(h["StorageClass"], "GLACIER");
    assert!(h.get("Restore").is_none(), "{h}");
    // CopyObject: "Before using an object as a source object for the copy operation,
    // you must restore a copy of it if ... the storage class of the source object is
    // GLACIER or DEEP_ARCHIVE."
    s3api_err(
        &d,
        &[
            "copy-object",
            "--bucket",
            "vault",
            "--key",
            "thawed.txt",
            "--copy-source",
            "vault/cold.txt",
        ],
        "InvalidObjectState",
    );

    // RestoreObject: 202 Accepted for a new restore.
    let restore = |key: &str, tier: &str| {
        s3api_status(
            &d,
            &[
                "restore-object",
                "--bucket",
                "vault",
                "--key",
                key,
                "--restore-request",
                &format!("Days=1,GlacierJobParameters={{Tier={tier}}}"),
            ],
        )
    };
    let (status, log) = restore("cold.txt", "Standard");
    assert_eq!(status, 202, "{log}");
    let (status, log) = restore("colder.txt", "Standard");
    assert_eq!(status, 202, "{log}");
    // "If the object restoration is in progress, the header returns the value
    // ongoing-request="true"."
    assert_eq!(
        head(&d, "vault", "cold.txt")["Restore"],
        "ongoing-request=\"true\""
    );
    // A second request while the first runs: RestoreAlreadyInProgress (409).
    let (status, log) = restore("cold.txt", "Standard");
    assert_eq!(status, 409, "{log}");
    assert!(log.contains("RestoreAlreadyInProgress"), "{log}");
    s3api_err(&d, &get, "InvalidObjectState");
    // Only archived objects are restored; Deep Archive has no Expedited tier.
    let (status, log) = restore("warm.txt", "Standard");
    assert_eq!(status, 403, "{log}");
    assert!(log.contains("InvalidObjectState"), "{log}");
    let (status, _) = restore("deep.txt", "Expedited");
    assert_eq!(status, 400);

    // vpclab's Standard tier takes 5 seconds (docs/fidelity.md: times compressed).
    std::thread::sleep(Duration::from_millis(5_500));
    // "If an archive copy is already restored, the header value indicates when Amazon
    // S3 is scheduled to delete the object copy."
    let h = head(&d, "vault", "cold.txt");
    let restored = h["Restore"].as_str().unwrap_or_default().to_string();
    assert!(
        restored.starts_with("ongoing-request=\"false\", expiry-date=\"")
            && restored.ends_with(" GMT\""),
        "{h}"
    );
    // The restored copy is readable, and copyable, until it expires.
    s3api(&d, &get);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "kept for years");
    s3api(
        &d,
        &[
            "copy-object",
            "--bucket",
            "vault",
            "--key",
            "thawed.txt",
            "--copy-source",
            "vault/cold.txt",
        ],
    );
    assert!(
        head(&d, "vault", "thawed.txt")
            .get("StorageClass")
            .is_none()
    );
    // A restore of a restored object is answered 200 OK (its expiry is moved).
    let (status, log) = restore("cold.txt", "Bulk");
    assert_eq!(status, 200, "{log}");

    // Restores are stored, their state computed from the clock: after a restart both
    // are still complete and readable.
    d.stop();
    d.launch();
    for key in ["cold.txt", "colder.txt"] {
        let h = head(&d, "vault", key);
        assert!(
            h["Restore"]
                .as_str()
                .is_some_and(|r| r.starts_with("ongoing-request=\"false\"")),
            "{key}: {h}"
        );
        s3api(&d, &["get-object", "--bucket", "vault", "--key", key, out]);
    }
    s3api_err(
        &d,
        &["get-object", "--bucket", "vault", "--key", "deep.txt", out],
        "InvalidObjectState",
    );
}

/// S3 User Guide, "Transitioning objects using Amazon S3 Lifecycle": a rule's
/// `Transition`s move current versions down the classes ("Supported lifecycle
/// transitions": STANDARD → STANDARD_IA → … → GLACIER), days counted from the next
/// midnight UTC after creation; an object in GLACIER must be restored before it is read
/// ("Working with archived objects"); objects the filter does not select stay STANDARD.
#[test]
fn lifecycle_transitions_move_objects_down_the_classes() {
    if !have("aws") {
        return;
    }
    let (d, clock) = TestDaemon::start_with_clock();
    let b = "tiering";
    s3api(&d, &["create-bucket", "--bucket", b]);
    // Over 128 KB: smaller objects do not transition by default ("all_storage_classes_128K",
    // PutBucketLifecycleConfiguration's TransitionDefaultMinimumObjectSize).
    let body = d.dir().join("log.txt");
    std::fs::write(&body, "a line of log\n".repeat(10_000)).unwrap();
    let body = body.to_str().unwrap();
    for key in ["logs/app.log", "data/keep.csv"] {
        s3api(
            &d,
            &["put-object", "--bucket", b, "--key", key, "--body", body],
        );
    }
    // "Constraints and considerations for transitions": at least 30 days before
    // STANDARD_IA.
    s3api_err(
        &d,
        &[
            "put-bucket-lifecycle-configuration",
            "--bucket",
            b,
            "--lifecycle-configuration",
            r#"{"Rules":[{"ID":"early","Status":"Enabled","Filter":{"Prefix":"logs/"},
                "Transitions":[{"Days":10,"StorageClass":"STANDARD_IA"}]}]}"#,
        ],
        "InvalidArgument",
    );
    s3api(
        &d,
        &[
            "put-bucket-lifecycle-configuration",
            "--bucket",
            b,
            "--lifecycle-configuration",
            r#"{"Rules":[{"ID":"tier","Status":"Enabled","Filter":{"Prefix":"logs/"},
                "Transitions":[{"Days":30,"StorageClass":"STANDARD_IA"},
                               {"Days":90,"StorageClass":"GLACIER"}]}]}"#,
        ],
    );
    let class = |key: &str| head(&d, b, key).get("StorageClass").cloned();

    clock.advance_days(32);
    assert_eq!(class("logs/app.log"), Some("STANDARD_IA".into()));
    assert_eq!(class("data/keep.csv"), None, "outside the prefix");

    clock.advance_days(60);
    assert_eq!(class("logs/app.log"), Some("GLACIER".into()));
    assert_eq!(class("data/keep.csv"), None, "outside the prefix");
    let out = d.dir().join("out.txt");
    let out = out.to_str().unwrap();
    s3api_err(
        &d,
        &["get-object", "--bucket", b, "--key", "logs/app.log", out],
        "InvalidObjectState",
    );
    s3api(
        &d,
        &["get-object", "--bucket", b, "--key", "data/keep.csv", out],
    );
    // Listings show the class too.
    let list = s3api(&d, &["list-objects-v2", "--bucket", b]);
    let classes: Vec<(&str, &str)> = list["Contents"]
        .as_array()
        .expect("Contents")
        .iter()
        .map(|o| {
            (
                o["Key"].as_str().unwrap(),
                o["StorageClass"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [("data/keep.csv", "STANDARD"), ("logs/app.log", "GLACIER")]
    );
}

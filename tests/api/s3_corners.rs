//! S3's corners through the real clients (issue s15): anonymous path-style reads on the
//! shared endpoint with curl, `InvalidPartNumber`'s details with boto3,
//! CompleteMultipartUpload's `x-amz-checksum-type` with the aws CLI, and the global
//! bucket namespace across the daemon's accounts and restarts. Each test quotes the S3
//! rule it checks.

use std::process::{Command, Output};

use crate::support::{Lab, TestDaemon, have};

const ALICE: (&str, &str) = ("AKIAALICE0000000000", "alice-secret");
const BOB: (&str, &str) = ("AKIABOB000000000000", "bob-secret");
const KEYS: &str = "[[key]]\naccess_key = \"AKIAALICE0000000000\"\nsecret_key = \"alice-secret\"\naccount = \"111111111111\"\n\n\
                    [[key]]\naccess_key = \"AKIABOB000000000000\"\nsecret_key = \"bob-secret\"\naccount = \"222222222222\"\n";

/// `aws s3api …` as `who` in `region`.
fn s3api_as(d: &dyn Lab, who: (&str, &str), region: &str, args: &[&str]) -> Output {
    crate::support::require_aws();
    let mut cmd = Command::new("aws");
    cmd.args(["--region", region, "s3api"]).args(args);
    d.env(&mut cmd);
    cmd.env("AWS_ACCESS_KEY_ID", who.0)
        .env("AWS_SECRET_ACCESS_KEY", who.1);
    cmd.output().expect("run aws")
}

fn ok_as(d: &dyn Lab, who: (&str, &str), region: &str, args: &[&str]) -> serde_json::Value {
    let out = s3api_as(d, who, region, args);
    assert!(
        out.status.success(),
        "aws s3api {args:?} as {} failed: {}",
        who.0,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON")
    }
}

fn err_as(d: &dyn Lab, who: (&str, &str), region: &str, args: &[&str], code: &str) -> String {
    let out = s3api_as(d, who, region, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.contains(&format!("({code})")),
        "aws s3api {args:?} as {}: expected {code}, got: {err}",
        who.0
    );
    err
}

fn s3api(d: &dyn Lab, args: &[&str]) -> serde_json::Value {
    d.aws_cli_json(&[&["--region", "us-east-1", "s3api"], args].concat())
}

fn s3api_err(d: &dyn Lab, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(&[&["--region", "us-east-1", "s3api"], args].concat());
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

/// `curl -s -i` without credentials: (status, head and body as text).
fn curl(args: &[&str]) -> (u16, String) {
    crate::support::require("curl");
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// S3 User Guide, "Bucket policy examples" ("Granting read-only permission to
/// anonymous users") and "Methods for accessing a bucket" (path-style requests,
/// `https://s3.region-code.amazonaws.com/bucket-name/key-name`): an object that a bucket
/// policy lets anyone read is fetched by a browser or curl without credentials, in path
/// style as well as virtual-hosted; an object the policy does not cover is S3's 403
/// `AccessDenied` XML, and a bucket that does not exist is `NoSuchBucket`. The shared
/// endpoint keeps routing EC2 Query calls (which name an `Action`) to EC2, and the
/// console to the console.
#[test]
fn s15_unsigned_path_style_gets_reach_s3_and_query_calls_still_reach_ec2() {
    if !have("aws") || !have("curl") {
        return;
    }
    let d = TestDaemon::start();
    let base = d.url();
    s3api(&d, &["create-bucket", "--bucket", "corner-public"]);
    s3api(
        &d,
        &["delete-public-access-block", "--bucket", "corner-public"],
    );
    s3api(
        &d,
        &[
            "put-bucket-policy",
            "--bucket",
            "corner-public",
            "--policy",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::corner-public/public/*"}]}"#,
        ],
    );
    for (key, text) in [
        ("public/hello.txt", "hello, world"),
        ("private/secret.txt", "not for you"),
    ] {
        let f = d.path("body.txt");
        std::fs::write(&f, text).unwrap();
        s3api(
            &d,
            &[
                "put-object",
                "--bucket",
                "corner-public",
                "--key",
                key,
                "--body",
                f.to_str().unwrap(),
                "--content-type",
                "text/plain",
            ],
        );
    }

    // The public object, path style, as a browser or curl asks for it.
    let (status, text) = curl(&[&format!("{base}/corner-public/public/hello.txt")]);
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nhello, world"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{text}"
    );
    let (status, text) = curl(&["-I", &format!("{base}/corner-public/public/hello.txt")]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length: 12"),
        "{text}"
    );
    // A key with characters to escape.
    let f = d.path("space.txt");
    std::fs::write(&f, "spaced").unwrap();
    s3api(
        &d,
        &[
            "put-object",
            "--bucket",
            "corner-public",
            "--key",
            "public/a b+c.txt",
            "--body",
            f.to_str().unwrap(),
        ],
    );
    let (status, text) = curl(&[&format!("{base}/corner-public/public/a%20b%2Bc.txt")]);
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("spaced"), "{text}");

    // What the policy does not cover is refused, in S3's error shape.
    let (status, text) = curl(&[&format!("{base}/corner-public/private/secret.txt")]);
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("<Error><Code>AccessDenied</Code>") && !text.contains("not for you"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/xml"),
        "{text}"
    );
    // Listing is s3:ListBucket, which the policy does not grant either.
    let (status, text) = curl(&[&format!("{base}/corner-public")]);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    let (status, text) = curl(&[&format!("{base}/corner-missing/public/hello.txt")]);
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("<Code>NoSuchBucket</Code>"), "{text}");
    // An anonymous write is refused too.
    let (status, text) = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "overwritten",
        &format!("{base}/corner-public/public/hello.txt"),
    ]);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");

    // A part past the last of the (one-part) object: 416 with the details S3 sends.
    let (status, text) = curl(&[&format!(
        "{base}/corner-public/public/hello.txt?partNumber=2"
    )]);
    assert_eq!(status, 416, "{text}");
    assert!(
        text.contains("<Code>InvalidPartNumber</Code><Message>The requested partnumber is not satisfiable</Message><PartNumberRequested>2</PartNumberRequested><ActualPartCount>1</ActualPartCount><RequestId>"),
        "{text}"
    );

    // EC2 Query calls still reach EC2: signed through the CLI, and unsigned ones get
    // EC2's own refusal (they name an Action), at `/` or anywhere else.
    let regions = d.aws(&["describe-regions", "--query", "Regions[].RegionName"]);
    assert!(
        regions
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "us-east-1")),
        "{regions}"
    );
    let (status, text) = curl(&[&format!(
        "{base}/?Action=DescribeRegions&Version=2016-11-15"
    )]);
    assert_eq!(status, 401, "{text}");
    assert!(
        text.contains("<Response><Errors><Error><Code>AuthFailure</Code>"),
        "{text}"
    );
    let (status, text) = curl(&[
        "--data",
        "Action=DescribeVpcs&Version=2016-11-15",
        &format!("{base}/"),
    ]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("<Response><Errors>"), "{text}");
    let (status, text) = curl(&[&format!(
        "{base}/corner-public/public/hello.txt?Action=DescribeVpcs"
    )]);
    assert!(
        status == 404 && text.contains("<Response><Errors>"),
        "a query-API request is never S3's: {text}"
    );
    // The console and vpclab's own routes are unchanged.
    let (status, text) = curl(&[&format!("{base}/console/")]);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<html"), "{text}");
    let (status, text) = curl(&[&format!("{base}/console/r/no-such-kind")]);
    assert!(status == 404 && text.contains("<html"), "{text}");
    // Other services, signed, are routed by their credential scope as before.
    let out = d.aws_cli(&["--region", "us-east-1", "sts", "get-caller-identity"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GetObject and HeadObject API reference, "partNumber", and S3's error
/// `InvalidPartNumber` (416, "The requested partnumber is not satisfiable"): a part
/// number past the object's last part is refused with the number asked for
/// (`PartNumberRequested`) and the object's part count (`ActualPartCount`) in the error
/// document, which boto3 hands to the caller.
#[test]
fn s15_invalid_part_number_names_the_part_asked_for_and_the_part_count() {
    if !have("python3") {
        return;
    }
    crate::support::require_boto3();
    let d = TestDaemon::start();
    let out = d.boto3("boto3_s3_corners.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a multipart upload of `key` in `bucket` (with `extra` CreateMultipartUpload
/// arguments), uploads one part of 100 bytes with `part_args`, and returns the upload
/// id and the `--multipart-upload` document naming the part.
fn one_part_upload(
    d: &dyn Lab,
    bucket: &str,
    key: &str,
    extra: &[&str],
    part_args: &[&str],
) -> (String, String) {
    let mut args = vec!["create-multipart-upload", "--bucket", bucket, "--key", key];
    args.extend_from_slice(extra);
    let up = s3api(d, &args);
    let id = up["UploadId"].as_str().expect("UploadId").to_string();
    let body = d.path(&format!("{key}.part"));
    std::fs::write(&body, [7u8; 100]).unwrap();
    let mut args = vec![
        "upload-part",
        "--bucket",
        bucket,
        "--key",
        key,
        "--upload-id",
        &id,
        "--part-number",
        "1",
        "--body",
        body.to_str().unwrap(),
    ];
    args.extend_from_slice(part_args);
    let part = s3api(d, &args);
    let mut entry = serde_json::json!({"PartNumber": 1, "ETag": part["ETag"]});
    for name in ["ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME"] {
        if let Some(v) = part.get(name) {
            entry[name] = v.clone();
        }
    }
    (id, serde_json::json!({ "Parts": [entry] }).to_string())
}

/// `complete-multipart-upload` of `key` in `corner-sums`, with `--checksum-type kind`.
fn complete_args<'a>(
    key: &'a str,
    id: &'a str,
    doc: &'a str,
    kind: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec![
        "complete-multipart-upload",
        "--bucket",
        "corner-sums",
        "--key",
        key,
        "--upload-id",
        id,
        "--multipart-upload",
        doc,
    ];
    if let Some(k) = kind {
        args.extend(["--checksum-type", k]);
    }
    args
}

/// CompleteMultipartUpload API reference, `x-amz-checksum-type`: "You can use this
/// header as a data integrity check to verify that the checksum type that is received
/// is the same checksum that was specified. If the checksum type doesn't match the
/// checksum type that was specified for the object during the CreateMultipartUpload
/// request, it'll result in a BadDigest error." A refused completion leaves the upload
/// in place, to be completed with the right type.
#[test]
fn s15_complete_multipart_upload_refuses_a_checksum_type_other_than_the_uploads() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    s3api(&d, &["create-bucket", "--bucket", "corner-sums"]);

    // CRC32, COMPOSITE (the default type).
    let (id, doc) = one_part_upload(
        &d,
        "corner-sums",
        "composite",
        &["--checksum-algorithm", "CRC32"],
        &["--checksum-algorithm", "CRC32"],
    );
    let err = s3api_err(
        &d,
        &complete_args("composite", &id, &doc, Some("FULL_OBJECT")),
        "BadDigest",
    );
    assert!(err.contains("COMPOSITE"), "{err}");
    let done = s3api(
        &d,
        &complete_args("composite", &id, &doc, Some("COMPOSITE")),
    );
    assert_eq!(done["ChecksumType"], "COMPOSITE", "{done}");
    assert!(
        done["ChecksumCRC32"]
            .as_str()
            .is_some_and(|v| v.ends_with("-1")),
        "{done}"
    );

    // CRC32 again, FULL_OBJECT (the CLI computes CRC32C only with the AWS CRT).
    let (id, doc) = one_part_upload(
        &d,
        "corner-sums",
        "full",
        &[
            "--checksum-algorithm",
            "CRC32",
            "--checksum-type",
            "FULL_OBJECT",
        ],
        &["--checksum-algorithm", "CRC32"],
    );
    s3api_err(
        &d,
        &complete_args("full", &id, &doc, Some("COMPOSITE")),
        "BadDigest",
    );
    // The refusal changed nothing: the upload is still there, its part listed.
    let parts = s3api(
        &d,
        &[
            "list-parts",
            "--bucket",
            "corner-sums",
            "--key",
            "full",
            "--upload-id",
            &id,
        ],
    );
    assert_eq!(parts["Parts"].as_array().map(Vec::len), Some(1), "{parts}");
    let done = s3api(&d, &complete_args("full", &id, &doc, Some("FULL_OBJECT")));
    assert_eq!(done["ChecksumType"], "FULL_OBJECT", "{done}");

    // Without an algorithm the object gets S3's default, a full-object CRC64NVME: a
    // completion that says COMPOSITE disagrees.
    let (id, doc) = one_part_upload(&d, "corner-sums", "plain", &[], &[]);
    s3api_err(
        &d,
        &complete_args("plain", &id, &doc, Some("COMPOSITE")),
        "BadDigest",
    );
    let done = s3api(&d, &complete_args("plain", &id, &doc, Some("FULL_OBJECT")));
    assert_eq!(done["ChecksumType"], "FULL_OBJECT", "{done}");

    // Not sending the header completes as before.
    let (id, doc) = one_part_upload(
        &d,
        "corner-sums",
        "quiet",
        &["--checksum-algorithm", "SHA256"],
        &["--checksum-algorithm", "SHA256"],
    );
    let done = s3api(&d, &complete_args("quiet", &id, &doc, None));
    assert_eq!(done["ChecksumType"], "COMPOSITE", "{done}");

    // A value that is no checksum type at all is bad input, not a panic or a 500
    // (botocore checks types, not enumerations, so the CLI sends it as given).
    let (id, doc) = one_part_upload(&d, "corner-sums", "odd", &[], &[]);
    let out = d.aws_cli(&[
        "--region",
        "us-east-1",
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "corner-sums",
        "--key",
        "odd",
        "--upload-id",
        &id,
        "--multipart-upload",
        &doc,
        "--checksum-type",
        "SIDEWAYS",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("(InvalidRequest)"),
        "{err}"
    );
}

/// General purpose bucket naming rules ("Bucket names must be unique across all AWS
/// accounts in all the AWS Regions within a partition") and CreateBucket's errors:
/// `BucketAlreadyExists` (409, "The requested bucket name is not available. The bucket
/// namespace is shared by all users of the system.") for a name another account holds;
/// `BucketAlreadyOwnedByYou` (409) for your own, "except in the North Virginia Region.
/// For legacy compatibility, if you re-create an existing bucket that you already own in
/// the North Virginia Region, Amazon S3 returns 200 OK". The namespace survives a
/// restart, and a deleted bucket's name is free again. Two accounts that already held
/// one name before names were global keep working, each with its own bucket.
#[test]
fn s15_bucket_names_are_global_across_accounts_and_restarts() {
    if !have("aws") {
        return;
    }
    let mut d = TestDaemon::start_strict(KEYS);
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
    );
    // Bob cannot have it, in us-east-1 or elsewhere.
    let err = err_as(
        &d,
        BOB,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
        "BucketAlreadyExists",
    );
    assert!(err.contains("namespace is shared"), "{err}");
    err_as(
        &d,
        BOB,
        "eu-west-1",
        &[
            "create-bucket",
            "--bucket",
            "corner-global",
            "--create-bucket-configuration",
            "LocationConstraint=eu-west-1",
        ],
        "BucketAlreadyExists",
    );
    // Alice re-creating hers in us-east-1: 200, as S3 answers there.
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
    );
    // Outside us-east-1 the owner gets BucketAlreadyOwnedByYou, another account
    // BucketAlreadyExists.
    let eu = [
        "create-bucket",
        "--bucket",
        "corner-regional",
        "--create-bucket-configuration",
        "LocationConstraint=eu-west-1",
    ];
    ok_as(&d, ALICE, "eu-west-1", &eu);
    err_as(&d, ALICE, "eu-west-1", &eu, "BucketAlreadyOwnedByYou");
    err_as(&d, BOB, "eu-west-1", &eu, "BucketAlreadyExists");
    // Bad input is still judged first.
    err_as(
        &d,
        BOB,
        "us-east-1",
        &["create-bucket", "--bucket", "Corner_Global"],
        "InvalidBucketName",
    );
    // Bob's list has none of them.
    let list = ok_as(&d, BOB, "us-east-1", &["list-buckets"]);
    assert_eq!(list["Buckets"].as_array().map(Vec::len), Some(0), "{list}");

    // Durable: after a restart the name is still Alice's.
    d.stop();
    d.launch();
    err_as(
        &d,
        BOB,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
        "BucketAlreadyExists",
    );
    // Deleted, the name is free for anyone.
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["delete-bucket", "--bucket", "corner-global"],
    );
    ok_as(
        &d,
        BOB,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
    );
    err_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-global"],
        "BucketAlreadyExists",
    );

    // State from before names were global: both accounts hold `corner-legacy` (written
    // here through the model, as an older vpclab let CreateBucket do).
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-legacy"],
    );
    d.stop();
    {
        let dir = vpclab::daemon::StateDir::new(d.state_dir());
        let mut control = vpclab::model::Control::open(&dir.store()).expect("open the store");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let env = vpclab::model::Env::new("us-east-1".to_string(), vpclab::model::Timestamp(now));
        control
            .mutate("222222222222", &env, false, |w, env| {
                w.create_bucket(env, "corner-legacy", None)
            })
            .expect("a second corner-legacy, in Bob's account");
        assert_eq!(
            control.bucket_holders("corner-legacy"),
            ["111111111111", "222222222222"]
        );
    }
    d.launch();
    // Each keeps its own bucket: what one writes the other does not see.
    for (who, text) in [(ALICE, "alice's"), (BOB, "bob's")] {
        let f = d.path("legacy.txt");
        std::fs::write(&f, text).unwrap();
        ok_as(
            &d,
            who,
            "us-east-1",
            &[
                "put-object",
                "--bucket",
                "corner-legacy",
                "--key",
                "whose.txt",
                "--body",
                f.to_str().unwrap(),
            ],
        );
    }
    for (who, text) in [(ALICE, "alice's"), (BOB, "bob's")] {
        let out = d.path("legacy-back.txt");
        ok_as(
            &d,
            who,
            "us-east-1",
            &[
                "get-object",
                "--bucket",
                "corner-legacy",
                "--key",
                "whose.txt",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
        // Re-creating it in us-east-1 is the owner's 200 for both.
        ok_as(
            &d,
            who,
            "us-east-1",
            &["create-bucket", "--bucket", "corner-legacy"],
        );
    }
    // The name is free again only once both are gone.
    for who in [ALICE, BOB] {
        ok_as(
            &d,
            who,
            "us-east-1",
            &[
                "delete-object",
                "--bucket",
                "corner-legacy",
                "--key",
                "whose.txt",
            ],
        );
    }
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["delete-bucket", "--bucket", "corner-legacy"],
    );
    err_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-legacy"],
        "BucketAlreadyExists",
    );
    ok_as(
        &d,
        BOB,
        "us-east-1",
        &["delete-bucket", "--bucket", "corner-legacy"],
    );
    ok_as(
        &d,
        ALICE,
        "us-east-1",
        &["create-bucket", "--bucket", "corner-legacy"],
    );
}

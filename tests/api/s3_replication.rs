//! S3 Replication through the real `aws` CLI (S3 User Guide, "Replicating objects within
//! and across Regions"; API reference, PutBucketReplication): a configuration with an
//! IAM role and V2 rules, new writes that appear in a bucket of another region as the
//! same version, `x-amz-replication-status`, delete markers per
//! `DeleteMarkerReplication`, and S3's errors for configurations it refuses.

use serde_json::Value;

use crate::support::{Lab, ProcessDaemon, TestDaemon, have, stderr};

/// `aws --region REGION s3api …` expecting success.
fn s3api(d: &dyn Lab, region: &str, args: &[&str]) -> Value {
    d.aws_cli_json(&[&["--region", region, "s3api"], args].concat())
}

/// `aws --region REGION s3api …` expecting failure with `code`; returns stderr.
fn s3api_err(d: &dyn Lab, region: &str, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(&[&["--region", region, "s3api"], args].concat());
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

/// A bucket in `region` with versioning enabled.
fn versioned_bucket(d: &dyn Lab, region: &str, name: &str) {
    let mut args = vec!["create-bucket", "--bucket", name];
    let constraint = format!("LocationConstraint={region}");
    if region != "us-east-1" {
        args.extend(["--create-bucket-configuration", &constraint]);
    }
    s3api(d, region, &args);
    s3api(
        d,
        region,
        &[
            "put-bucket-versioning",
            "--bucket",
            name,
            "--versioning-configuration",
            "Status=Enabled",
        ],
    );
}

/// The role S3 assumes to replicate (the user guide's "Setting up permissions for live
/// replication": trusted by s3.amazonaws.com).
fn replication_role(d: &dyn Lab) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = d.aws_cli_json(&[
        "iam",
        "create-role",
        "--role-name",
        "s3-replication",
        "--assume-role-policy-document",
        trust,
    ]);
    role["Role"]["Arn"].as_str().expect("role ARN").to_string()
}

fn head(d: &dyn Lab, region: &str, bucket: &str, key: &str) -> Value {
    s3api(
        d,
        region,
        &[
            "head-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--checksum-mode",
            "ENABLED",
        ],
    )
}

/// What must be the same in a source version and its replica.
fn same_version(src: &Value, dst: &Value) {
    for field in [
        "VersionId",
        "ETag",
        "ContentLength",
        "ContentType",
        "Metadata",
        "ChecksumCRC64NVME",
        "ChecksumType",
    ] {
        assert_eq!(src[field], dst[field], "{field}: {src} / {dst}");
    }
}

fn s3_ok(d: &dyn Lab, args: &[&str]) {
    let out = d.aws_cli(args);
    assert!(out.status.success(), "aws {args:?}: {}", stderr(&out));
}

/// The delete markers of `key` in a bucket, as version ids.
fn markers(d: &dyn Lab, region: &str, bucket: &str, key: &str) -> Vec<String> {
    let v = s3api(
        d,
        region,
        &["list-object-versions", "--bucket", bucket, "--prefix", key],
    );
    v["DeleteMarkers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["Key"] == key)
                .map(|m| m["VersionId"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

const RULES: &str = r#"[
  {"ID": "docs", "Priority": 2, "Status": "Enabled",
   "Filter": {"Prefix": "docs/"},
   "DeleteMarkerReplication": {"Status": "Enabled"},
   "Destination": {"Bucket": "arn:aws:s3:::repl-eu", "StorageClass": "STANDARD_IA"}},
  {"ID": "logs", "Priority": 1, "Status": "Enabled",
   "Filter": {"Prefix": "logs/"},
   "DeleteMarkerReplication": {"Status": "Disabled"},
   "Destination": {"Bucket": "arn:aws:s3:::repl-eu"}}
]"#;

fn configuration(role: &str) -> String {
    format!(r#"{{"Role": "{role}", "Rules": {RULES}}}"#)
}

#[test]
fn objects_written_after_the_rule_appear_in_the_other_region_bucket_with_their_version_and_status()
{
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    versioned_bucket(&d, "us-east-1", "repl-us");
    versioned_bucket(&d, "eu-west-1", "repl-eu");
    let dir = d.dir().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let before = dir.join("before.txt");
    std::fs::write(&before, "written before the rule").unwrap();
    // "Objects that existed before you set up replication aren't replicated."
    s3_ok(
        &d,
        &[
            "s3",
            "cp",
            before.to_str().unwrap(),
            "s3://repl-us/docs/old.txt",
        ],
    );

    let role = replication_role(&d);
    s3api(
        &d,
        "us-east-1",
        &[
            "put-bucket-replication",
            "--bucket",
            "repl-us",
            "--replication-configuration",
            &configuration(&role),
        ],
    );
    let got = s3api(
        &d,
        "us-east-1",
        &["get-bucket-replication", "--bucket", "repl-us"],
    );
    let c = &got["ReplicationConfiguration"];
    assert_eq!(c["Role"], role.as_str());
    assert_eq!(c["Rules"][0]["ID"], "docs");
    assert_eq!(c["Rules"][0]["Priority"], 2);
    assert_eq!(c["Rules"][0]["Filter"]["Prefix"], "docs/");
    assert_eq!(
        c["Rules"][0]["DeleteMarkerReplication"]["Status"],
        "Enabled"
    );
    assert_eq!(
        c["Rules"][1]["Destination"]["Bucket"],
        "arn:aws:s3:::repl-eu"
    );

    // PutObject (`aws s3 cp`), with user metadata: the replica is the same version.
    let f = dir.join("a.txt");
    std::fs::write(&f, "replicate me").unwrap();
    s3_ok(
        &d,
        &[
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://repl-us/docs/a.txt",
            "--metadata",
            "owner=ops",
        ],
    );
    let src = head(&d, "us-east-1", "repl-us", "docs/a.txt");
    assert_eq!(src["ReplicationStatus"], "COMPLETED", "{src}");
    let dst = head(&d, "eu-west-1", "repl-eu", "docs/a.txt");
    assert_eq!(dst["ReplicationStatus"], "REPLICA", "{dst}");
    same_version(&src, &dst);
    assert_eq!(dst["Metadata"]["owner"], "ops");
    // The rule's Destination/StorageClass is the replica's; the source stays STANDARD.
    assert_eq!(dst["StorageClass"], "STANDARD_IA", "{dst}");
    assert!(src.get("StorageClass").is_none(), "{src}");
    let out = dir.join("back.txt");
    s3_ok(
        &d,
        &[
            "--region",
            "eu-west-1",
            "s3",
            "cp",
            "s3://repl-eu/docs/a.txt",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "replicate me");

    // Tags travel with the version (PutObject with x-amz-tagging).
    s3api(
        &d,
        "us-east-1",
        &[
            "put-object",
            "--bucket",
            "repl-us",
            "--key",
            "logs/b.txt",
            "--body",
            f.to_str().unwrap(),
            "--tagging",
            "team=blue",
            "--storage-class",
            "ONEZONE_IA",
        ],
    );
    // A rule without a StorageClass: the replica keeps the source's class.
    let logs = head(&d, "eu-west-1", "repl-eu", "logs/b.txt");
    assert_eq!(logs["StorageClass"], "ONEZONE_IA", "{logs}");
    let tags = s3api(
        &d,
        "eu-west-1",
        &[
            "get-object-tagging",
            "--bucket",
            "repl-eu",
            "--key",
            "logs/b.txt",
        ],
    );
    assert_eq!(tags["TagSet"][0]["Key"], "team", "{tags}");

    // CopyObject and CompleteMultipartUpload (`aws s3 cp` of 9 MiB) replicate too.
    s3api(
        &d,
        "us-east-1",
        &[
            "copy-object",
            "--bucket",
            "repl-us",
            "--key",
            "docs/copy.txt",
            "--copy-source",
            "repl-us/docs/a.txt",
        ],
    );
    same_version(
        &head(&d, "us-east-1", "repl-us", "docs/copy.txt"),
        &head(&d, "eu-west-1", "repl-eu", "docs/copy.txt"),
    );
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![7u8; 9 * 1024 * 1024]).unwrap();
    s3_ok(
        &d,
        &[
            "s3",
            "cp",
            big.to_str().unwrap(),
            "s3://repl-us/docs/big.bin",
        ],
    );
    let src = head(&d, "us-east-1", "repl-us", "docs/big.bin");
    assert!(
        src["ETag"].as_str().unwrap_or("").contains('-'),
        "multipart: {src}"
    );
    assert_eq!(src["ReplicationStatus"], "COMPLETED");
    same_version(&src, &head(&d, "eu-west-1", "repl-eu", "docs/big.bin"));

    // A key no rule selects gets no status and no replica; nor does the object written
    // before the configuration.
    s3_ok(
        &d,
        &[
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://repl-us/private/c.txt",
        ],
    );
    let src = head(&d, "us-east-1", "repl-us", "private/c.txt");
    assert!(src.get("ReplicationStatus").is_none(), "{src}");
    for key in ["private/c.txt", "docs/old.txt"] {
        s3api_err(
            &d,
            "eu-west-1",
            &["head-object", "--bucket", "repl-eu", "--key", key],
            "404",
        );
    }

    // Delete markers: replicated by the rule with DeleteMarkerReplication Enabled, not
    // by the other.
    s3_ok(&d, &["s3", "rm", "s3://repl-us/docs/a.txt"]);
    let src_markers = markers(&d, "us-east-1", "repl-us", "docs/a.txt");
    assert_eq!(src_markers.len(), 1);
    assert_eq!(
        markers(&d, "eu-west-1", "repl-eu", "docs/a.txt"),
        src_markers
    );
    s3_ok(&d, &["s3", "rm", "s3://repl-us/logs/b.txt"]);
    assert_eq!(markers(&d, "us-east-1", "repl-us", "logs/b.txt").len(), 1);
    assert!(markers(&d, "eu-west-1", "repl-eu", "logs/b.txt").is_empty());

    // Deleting a version is never replicated: the replica keeps it, and its bytes.
    let vid = dst["VersionId"].as_str().expect("version id").to_string();
    s3api(
        &d,
        "us-east-1",
        &[
            "delete-object",
            "--bucket",
            "repl-us",
            "--key",
            "docs/a.txt",
            "--version-id",
            &vid,
        ],
    );
    let kept = s3api(
        &d,
        "eu-west-1",
        &[
            "get-object",
            "--bucket",
            "repl-eu",
            "--key",
            "docs/a.txt",
            "--version-id",
            &vid,
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(kept["VersionId"], vid.as_str());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "replicate me");

    // "A replication configuration is present on this bucket, so you cannot change
    // the versioning state."
    s3api_err(
        &d,
        "us-east-1",
        &[
            "put-bucket-versioning",
            "--bucket",
            "repl-us",
            "--versioning-configuration",
            "Status=Suspended",
        ],
        "InvalidBucketState",
    );

    // A destination that stopped taking versions: the write succeeds, its status is
    // FAILED.
    s3api(
        &d,
        "eu-west-1",
        &[
            "put-bucket-versioning",
            "--bucket",
            "repl-eu",
            "--versioning-configuration",
            "Status=Suspended",
        ],
    );
    s3_ok(
        &d,
        &[
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://repl-us/docs/late.txt",
        ],
    );
    let src = head(&d, "us-east-1", "repl-us", "docs/late.txt");
    assert_eq!(src["ReplicationStatus"], "FAILED", "{src}");

    // Without the configuration, versioning may be suspended again.
    s3api(
        &d,
        "us-east-1",
        &["delete-bucket-replication", "--bucket", "repl-us"],
    );
    s3api(
        &d,
        "us-east-1",
        &[
            "put-bucket-versioning",
            "--bucket",
            "repl-us",
            "--versioning-configuration",
            "Status=Suspended",
        ],
    );
}

#[test]
fn configuration_errors_are_aws_errors() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    s3api(&d, "us-east-1", &["create-bucket", "--bucket", "plain-src"]);
    versioned_bucket(&d, "eu-west-1", "good-dst");
    s3api(
        &d,
        "eu-west-1",
        &[
            "create-bucket",
            "--bucket",
            "plain-dst",
            "--create-bucket-configuration",
            "LocationConstraint=eu-west-1",
        ],
    );
    let role = replication_role(&d);
    let config = |dest: &str| {
        format!(
            r#"{{"Role":"{role}","Rules":[{{"ID":"all","Priority":1,"Status":"Enabled","Filter":{{"Prefix":""}},"DeleteMarkerReplication":{{"Status":"Disabled"}},"Destination":{{"Bucket":"arn:aws:s3:::{dest}"}}}}]}}"#
        )
    };
    let put = |bucket: &str, cfg: &str, code: &str| {
        s3api_err(
            &d,
            "us-east-1",
            &[
                "put-bucket-replication",
                "--bucket",
                bucket,
                "--replication-configuration",
                cfg,
            ],
            code,
        )
    };

    // Get with none.
    s3api_err(
        &d,
        "us-east-1",
        &["get-bucket-replication", "--bucket", "plain-src"],
        "ReplicationConfigurationNotFoundError",
    );
    // The source must have versioning enabled.
    let err = put("plain-src", &config("good-dst"), "InvalidRequest");
    assert!(
        err.contains(
            "Versioning must be 'Enabled' on the bucket to apply a replication configuration"
        ),
        "{err}"
    );
    s3api(
        &d,
        "us-east-1",
        &[
            "put-bucket-versioning",
            "--bucket",
            "plain-src",
            "--versioning-configuration",
            "Status=Enabled",
        ],
    );
    // The destination must exist, with versioning enabled.
    let err = put("plain-src", &config("nowhere-bucket"), "InvalidRequest");
    assert!(err.contains("Destination bucket must exist"), "{err}");
    let err = put("plain-src", &config("plain-dst"), "InvalidRequest");
    assert!(
        err.contains("Destination bucket must have versioning enabled"),
        "{err}"
    );
    // Off the schema: a status that is neither Enabled nor Disabled.
    put(
        "plain-src",
        &config("good-dst").replace(r#""Status":"Enabled""#, r#""Status":"Sometimes""#),
        "MalformedXML",
    );
    // A V2 rule (with Filter) must say DeleteMarkerReplication.
    let err = put(
        "plain-src",
        &config("good-dst").replace(r#","DeleteMarkerReplication":{"Status":"Disabled"}"#, ""),
        "InvalidRequest",
    );
    assert!(
        err.contains("DeleteMarkerReplication must be specified"),
        "{err}"
    );
    // Delete markers cannot be replicated by a tag-based rule.
    put(
        "plain-src",
        &config("good-dst")
            .replace(
                r#""Filter":{"Prefix":""}"#,
                r#""Filter":{"Tag":{"Key":"k","Value":"v"}}"#,
            )
            .replace(
                r#""DeleteMarkerReplication":{"Status":"Disabled"}"#,
                r#""DeleteMarkerReplication":{"Status":"Enabled"}"#,
            ),
        "InvalidRequest",
    );
    // Nothing was stored by the refusals.
    s3api_err(
        &d,
        "us-east-1",
        &["get-bucket-replication", "--bucket", "plain-src"],
        "ReplicationConfigurationNotFoundError",
    );
    // The good one, then deleted.
    s3api(
        &d,
        "us-east-1",
        &[
            "put-bucket-replication",
            "--bucket",
            "plain-src",
            "--replication-configuration",
            &config("good-dst"),
        ],
    );
    s3api(
        &d,
        "us-east-1",
        &["delete-bucket-replication", "--bucket", "plain-src"],
    );
    s3api_err(
        &d,
        "us-east-1",
        &["get-bucket-replication", "--bucket", "plain-src"],
        "ReplicationConfigurationNotFoundError",
    );
}

/// The configuration and the replicas are state like any other: they survive SIGKILL.
#[test]
fn the_configuration_and_replicas_survive_sigkill() {
    if !have("aws") {
        return;
    }
    let mut d = ProcessDaemon::start();
    versioned_bucket(&d, "us-east-1", "durable-src");
    versioned_bucket(&d, "eu-west-1", "durable-dst");
    let role = replication_role(&d);
    let cfg = format!(
        r#"{{"Role":"{role}","Rules":[{{"Status":"Enabled","Prefix":"","Destination":{{"Bucket":"arn:aws:s3:::durable-dst"}}}}]}}"#
    );
    s3api(
        &d,
        "us-east-1",
        &[
            "put-bucket-replication",
            "--bucket",
            "durable-src",
            "--replication-configuration",
            &cfg,
        ],
    );
    let f = d.dir().join("f");
    std::fs::write(&f, "kept twice").unwrap();
    s3_ok(&d, &["s3", "cp", f.to_str().unwrap(), "s3://durable-src/k"]);
    let vid = head(&d, "us-east-1", "durable-src", "k")["VersionId"]
        .as_str()
        .expect("version id")
        .to_string();
    d.kill9();
    d.launch();
    let got = s3api(
        &d,
        "us-east-1",
        &["get-bucket-replication", "--bucket", "durable-src"],
    );
    // A V1 rule (Prefix, no Filter) comes back as V1.
    assert_eq!(got["ReplicationConfiguration"]["Rules"][0]["Prefix"], "");
    let out = d.dir().join("o");
    s3_ok(
        &d,
        &[
            "--region",
            "eu-west-1",
            "s3",
            "cp",
            "s3://durable-dst/k",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept twice");
    // A V1 rule replicates the delete marker; deleting the source version (its file
    // name) leaves the replica's bytes alone.
    s3_ok(&d, &["s3", "rm", "s3://durable-src/k"]);
    assert_eq!(markers(&d, "eu-west-1", "durable-dst", "k").len(), 1);
    s3api(
        &d,
        "us-east-1",
        &[
            "delete-object",
            "--bucket",
            "durable-src",
            "--key",
            "k",
            "--version-id",
            &vid,
        ],
    );
    s3api(
        &d,
        "eu-west-1",
        &[
            "get-object",
            "--bucket",
            "durable-dst",
            "--key",
            "k",
            "--version-id",
            &vid,
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept twice");
}

/// The permissions policy of the user guide's "Setting up permissions for live
/// replication", for `src` → `dst`, with `replicate` as the destination's actions.
fn permissions(src: &str, dst: &str, replicate: &[&str]) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow",
             "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
             "Resource": [format!("arn:aws:s3:::{src}")]},
            {"Effect": "Allow",
             "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                        "s3:GetObjectVersionTagging"],
             "Resource": [format!("arn:aws:s3:::{src}/*")]},
            {"Effect": "Allow", "Action": replicate,
             "Resource": format!("arn:aws:s3:::{dst}/*")}
        ]
    })
    .to_string()
}

/// A role trusted by `service`, with `policy` inline; its ARN.
fn role_with(d: &dyn Lab, name: &str, service: &str, policy: &str) -> String {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                       "Action": "sts:AssumeRole"}]
    })
    .to_string();
    let role = d.aws_cli_json(&[
        "iam",
        "create-role",
        "--role-name",
        name,
        "--assume-role-policy-document",
        &trust,
    ]);
    d.aws_cli_json(&[
        "iam",
        "put-role-policy",
        "--role-name",
        name,
        "--policy-name",
        "replication",
        "--policy-document",
        policy,
    ]);
    role["Role"]["Arn"].as_str().expect("role ARN").to_string()
}

/// Puts a one-rule configuration (every key of `src` to `dst`, delete markers too)
/// naming `role`.
fn replicate_all(d: &dyn Lab, src: &str, dst: &str, role: &str) {
    let cfg = serde_json::json!({
        "Role": role,
        "Rules": [{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {},
                   "DeleteMarkerReplication": {"Status": "Enabled"},
                   "Destination": {"Bucket": format!("arn:aws:s3:::{dst}")}}]
    })
    .to_string();
    s3api(
        d,
        "us-east-1",
        &[
            "put-bucket-replication",
            "--bucket",
            src,
            "--replication-configuration",
            &cfg,
        ],
    );
}

/// Writes `key` to `src` and returns the source's `ReplicationStatus` and whether the
/// replica is in `dst`.
fn write_and_look(d: &dyn Lab, src: &str, dst: &str, key: &str) -> (Value, bool) {
    let f = d.dir().join(key.replace('/', "_"));
    std::fs::write(&f, format!("bytes of {key}")).unwrap();
    s3api(
        d,
        "us-east-1",
        &[
            "put-object",
            "--bucket",
            src,
            "--key",
            key,
            "--body",
            f.to_str().unwrap(),
        ],
    );
    let status = head(d, "us-east-1", src, key)["ReplicationStatus"].clone();
    let out = d.aws_cli(&[
        "--region",
        "eu-west-1",
        "s3api",
        "head-object",
        "--bucket",
        dst,
        "--key",
        key,
    ]);
    (status, out.status.success())
}

/// "Setting up permissions for live replication": S3 assumes the configuration's role,
/// which must trust s3.amazonaws.com and allow s3:GetReplicationConfiguration and
/// s3:ListBucket on the source, s3:GetObjectVersionForReplication on its objects and
/// s3:ReplicateObject (s3:ReplicateDelete for delete markers) on the destination's.
/// Under `--iam enforce` a role that falls short leaves the version FAILED (replication
/// failure reasons `AssumeRoleNotPermitted`, `DstPutObjectNotPermitted`).
#[test]
fn under_iam_enforcement_the_replication_role_decides_completed_or_failed() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start_with(|cfg| cfg.iam_enforce = true);
    versioned_bucket(&d, "us-east-1", "role-src");
    versioned_bucket(&d, "eu-west-1", "role-dst");
    let all = [
        "s3:ReplicateObject",
        "s3:ReplicateDelete",
        "s3:ReplicateTags",
    ];

    // The documented role: the version is COMPLETED and the replica is there.
    let good = role_with(
        &d,
        "repl-good",
        "s3.amazonaws.com",
        &permissions("role-src", "role-dst", &all),
    );
    replicate_all(&d, "role-src", "role-dst", &good);
    let (status, replica) = write_and_look(&d, "role-src", "role-dst", "good.txt");
    assert_eq!(status, "COMPLETED");
    assert!(replica, "the replica of good.txt is missing");
    // Its delete markers go too (s3:ReplicateDelete).
    s3api(
        &d,
        "us-east-1",
        &["delete-object", "--bucket", "role-src", "--key", "good.txt"],
    );
    assert_eq!(markers(&d, "eu-west-1", "role-dst", "good.txt").len(), 1);

    // Without s3:ReplicateObject: FAILED, nothing in the destination.
    let no_put = role_with(
        &d,
        "repl-no-put",
        "s3.amazonaws.com",
        &permissions(
            "role-src",
            "role-dst",
            &["s3:ReplicateDelete", "s3:ReplicateTags"],
        ),
    );
    replicate_all(&d, "role-src", "role-dst", &no_put);
    let (status, replica) = write_and_look(&d, "role-src", "role-dst", "no-put.txt");
    assert_eq!(status, "FAILED");
    assert!(
        !replica,
        "no-put.txt was replicated without s3:ReplicateObject"
    );

    // A trust policy for another service: S3 cannot assume the role.
    let ec2 = role_with(
        &d,
        "repl-ec2-trust",
        "ec2.amazonaws.com",
        &permissions("role-src", "role-dst", &all),
    );
    replicate_all(&d, "role-src", "role-dst", &ec2);
    let (status, replica) = write_and_look(&d, "role-src", "role-dst", "ec2.txt");
    assert_eq!(status, "FAILED");
    assert!(
        !replica,
        "ec2.txt was replicated with a role S3 cannot assume"
    );
    // Nor are delete markers replicated with it.
    s3api(
        &d,
        "us-east-1",
        &["delete-object", "--bucket", "role-src", "--key", "good.txt"],
    );
    assert_eq!(markers(&d, "eu-west-1", "role-dst", "good.txt").len(), 1);

    // A role that does not exist (deleted after the configuration was put).
    let gone = role_with(
        &d,
        "repl-gone",
        "s3.amazonaws.com",
        &permissions("role-src", "role-dst", &all),
    );
    replicate_all(&d, "role-src", "role-dst", &gone);
    d.aws_cli_json(&[
        "iam",
        "delete-role-policy",
        "--role-name",
        "repl-gone",
        "--policy-name",
        "replication",
    ]);
    d.aws_cli_json(&["iam", "delete-role", "--role-name", "repl-gone"]);
    let (status, replica) = write_and_look(&d, "role-src", "role-dst", "gone.txt");
    assert_eq!(status, "FAILED");
    assert!(!replica, "gone.txt was replicated with a deleted role");
}

/// Without `--iam enforce` the role is not evaluated: a role with no permissions at all
/// still replicates (vpclab's documented default, docs/fidelity.md).
#[test]
fn without_iam_enforcement_the_replication_role_is_not_evaluated() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    versioned_bucket(&d, "us-east-1", "lax-src");
    versioned_bucket(&d, "eu-west-1", "lax-dst");
    let ec2 = role_with(
        &d,
        "repl-lax",
        "ec2.amazonaws.com",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
    );
    replicate_all(&d, "lax-src", "lax-dst", &ec2);
    let (status, replica) = write_and_look(&d, "lax-src", "lax-dst", "lax.txt");
    assert_eq!(status, "COMPLETED");
    assert!(replica);
}

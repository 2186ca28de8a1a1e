//! IAM and STS through the real `aws` CLI with `--auth strict` and `--iam enforce`:
//! access keys that work as credentials, policies that decide (IAM User Guide, "Policy
//! evaluation logic"), AWS's denial errors and the encoded message STS decodes,
//! AssumeRole's temporary credentials.

use std::process::{Command, Output};

use crate::support::{Lab, TestDaemon, require_aws};

const ROOT: (&str, &str) = ("AKIAROOT000000000000", "root-secret");
const ACCOUNT: &str = "123456789012";

/// A strict daemon with IAM enforcement on and one root key for [`ACCOUNT`].
fn enforcing() -> TestDaemon {
    TestDaemon::start_with(|cfg| {
        std::fs::write(
            cfg.state_dir.keys_file(),
            format!(
                "[[key]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\naccount = \"{ACCOUNT}\"\n",
                ROOT.0, ROOT.1
            ),
        )
        .expect("write keys");
        cfg.auth = vpclab::daemon::AuthConfig::Strict;
        cfg.iam_enforce = true;
    })
}

/// Credentials a command runs with.
#[derive(Clone)]
struct Creds {
    key: String,
    secret: String,
    token: Option<String>,
}

fn root() -> Creds {
    Creds {
        key: ROOT.0.into(),
        secret: ROOT.1.into(),
        token: None,
    }
}

fn run(d: &TestDaemon, who: &Creds, args: &[&str]) -> Output {
    require_aws();
    let mut cmd = Command::new("aws");
    cmd.args(args);
    d.env(&mut cmd);
    cmd.env("AWS_ACCESS_KEY_ID", &who.key)
        .env("AWS_SECRET_ACCESS_KEY", &who.secret);
    match &who.token {
        Some(t) => cmd.env("AWS_SESSION_TOKEN", t),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    cmd.output().expect("run aws")
}

fn ok(d: &TestDaemon, who: &Creds, args: &[&str]) -> serde_json::Value {
    let out = run(d, who, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("json output")
    }
}

fn fails(d: &TestDaemon, who: &Creds, args: &[&str], code: &str) -> String {
    let out = run(d, who, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "aws {args:?} should fail with {code}"
    );
    assert!(
        err.contains(&format!("({code})")),
        "aws {args:?}: expected {code}, got {err}"
    );
    err
}

/// Root creates a user with an access key and these managed policies.
fn user_with(d: &TestDaemon, name: &str, policies: &[&str]) -> Creds {
    ok(d, &root(), &["iam", "create-user", "--user-name", name]);
    for p in policies {
        ok(
            d,
            &root(),
            &[
                "iam",
                "attach-user-policy",
                "--user-name",
                name,
                "--policy-arn",
                &format!("arn:aws:iam::aws:policy/{p}"),
            ],
        );
    }
    let key = ok(
        d,
        &root(),
        &["iam", "create-access-key", "--user-name", name],
    );
    Creds {
        key: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .expect("key id")
            .into(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .into(),
        token: None,
    }
}

const RUN: &[&str] = &[
    "ec2",
    "run-instances",
    "--image-id",
    "ami-0c02fb55956c7d316",
    "--instance-type",
    "t3.micro",
];

/// The encoded message of an UnauthorizedOperation, decoded by root through STS.
fn decoded(d: &TestDaemon, err: &str) -> serde_json::Value {
    let encoded = err
        .split("Encoded authorization failure message: ")
        .nth(1)
        .expect("an encoded message")
        .trim();
    let out = ok(
        d,
        &root(),
        &[
            "sts",
            "decode-authorization-message",
            "--encoded-message",
            encoded,
        ],
    );
    serde_json::from_str(out["DecodedMessage"].as_str().expect("text")).expect("decoded JSON")
}

/// Issue 15: a user with only AmazonEC2ReadOnlyAccess describes but cannot launch; the
/// decoded message names the missing permission. IAM and CloudWatch Logs deny in their
/// own protocols' shapes.
#[test]
fn issue15_ec2_read_only_user_describes_but_cannot_run_instances() {
    let d = enforcing();
    let bob = user_with(&d, "bob", &["AmazonEC2ReadOnlyAccess"]);
    let vpcs = ok(&d, &bob, &["ec2", "describe-vpcs"]);
    assert_eq!(vpcs["Vpcs"].as_array().map(Vec::len), Some(1), "{vpcs}");
    let err = fails(&d, &bob, RUN, "UnauthorizedOperation");
    assert!(
        err.contains("You are not authorized to perform this operation.")
            && err.contains("ec2:RunInstances"),
        "{err}"
    );
    let msg = decoded(&d, &err);
    assert_eq!(msg["allowed"], false);
    assert_eq!(msg["explicitDeny"], false, "no statement denied: {msg}");
    assert_eq!(msg["context"]["action"], "ec2:RunInstances");
    assert_eq!(
        msg["context"]["principal"]["arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/bob")
    );
    assert!(
        msg["context"]["resource"]
            .as_str()
            .is_some_and(|r| r.ends_with(":instance/*")),
        "{msg}"
    );
    // The user cannot decode it without sts:DecodeAuthorizationMessage.
    fails(
        &d,
        &bob,
        &[
            "sts",
            "decode-authorization-message",
            "--encoded-message",
            "x",
        ],
        "AccessDenied",
    );
    let err = fails(
        &d,
        &bob,
        &["iam", "create-user", "--user-name", "eve"],
        "AccessDenied",
    );
    assert!(
        err.contains(&format!(
            "User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: iam:CreateUser"
        )),
        "{err}"
    );
    fails(
        &d,
        &bob,
        &["logs", "create-log-group", "--log-group-name", "app"],
        "AccessDeniedException",
    );
    // Whoever they are, a caller may ask who it is.
    let me = ok(&d, &bob, &["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], format!("arn:aws:iam::{ACCOUNT}:user/bob"));
    assert_eq!(me["Account"], ACCOUNT);
    // Root is never subject to policies.
    let me = ok(&d, &root(), &["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], format!("arn:aws:iam::{ACCOUNT}:root"));
    ok(
        &d,
        &root(),
        &["logs", "create-log-group", "--log-group-name", "app"],
    );
}

/// IAM User Guide: "An explicit deny in any policy overrides any allows."
#[test]
fn issue15_an_explicit_deny_beats_administrator_access() {
    let d = enforcing();
    let ann = user_with(&d, "ann", &["AdministratorAccess"]);
    ok(&d, &ann, &["ec2", "describe-vpcs"]);
    ok(
        &d,
        &root(),
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ann",
            "--policy-name",
            "no-launch",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoLaunch","Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}"#,
        ],
    );
    let err = fails(&d, &ann, RUN, "UnauthorizedOperation");
    let msg = decoded(&d, &err);
    assert_eq!(msg["explicitDeny"], true, "{msg}");
    assert_eq!(
        msg["matchedStatements"]["items"][0]["statementId"],
        "NoLaunch"
    );
    // Everything else is still allowed, through groups too.
    ok(&d, &ann, &["ec2", "describe-vpcs"]);
    ok(&d, &ann, &["iam", "create-group", "--group-name", "ops"]);
    // The simulator answers from the same evaluator.
    let sim = ok(
        &d,
        &root(),
        &[
            "iam",
            "simulate-principal-policy",
            "--policy-source-arn",
            &format!("arn:aws:iam::{ACCOUNT}:user/ann"),
            "--action-names",
            "ec2:RunInstances",
            "ec2:DescribeVpcs",
        ],
    );
    let decisions: Vec<&str> = sim["EvaluationResults"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["EvalDecision"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(decisions, ["explicitDeny", "allowed"], "{sim}");
    let custom = ok(
        &d,
        &root(),
        &[
            "iam",
            "simulate-custom-policy",
            "--policy-input-list",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}}"#,
            "--action-names",
            "s3:GetObject",
            "s3:PutObject",
        ],
    );
    assert_eq!(custom["EvaluationResults"][0]["EvalDecision"], "allowed");
    assert_eq!(
        custom["EvaluationResults"][1]["EvalDecision"],
        "implicitDeny"
    );
}

/// AssumeRole: the trust policy decides, the credentials work with their session token
/// only, and GetCallerIdentity names the assumed-role session.
#[test]
fn issue15_assume_role_credentials_work_and_carry_the_assumed_role_arn() {
    let d = enforcing();
    let dev = user_with(&d, "dev", &[]);
    ok(
        &d,
        &root(),
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "dev",
            "--policy-name",
            "assume",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}}"#,
        ],
    );
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole"}}}}"#
    );
    ok(
        &d,
        &root(),
        &[
            "iam",
            "create-role",
            "--role-name",
            "viewer",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    ok(
        &d,
        &root(),
        &[
            "iam",
            "attach-role-policy",
            "--role-name",
            "viewer",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess",
        ],
    );
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/viewer");
    // Longer than the role's maximum session, and root, are refused as on AWS.
    fails(
        &d,
        &dev,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "long",
            "--duration-seconds",
            "7200",
        ],
        "ValidationError",
    );
    fails(
        &d,
        &root(),
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "s1",
        ],
        "AccessDenied",
    );
    let out = ok(
        &d,
        &dev,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "night-shift",
        ],
    );
    let c = &out["Credentials"];
    assert!(
        c["AccessKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("ASIA")),
        "{out}"
    );
    let session = Creds {
        key: c["AccessKeyId"].as_str().expect("key").into(),
        secret: c["SecretAccessKey"].as_str().expect("secret").into(),
        token: Some(c["SessionToken"].as_str().expect("token").into()),
    };
    let assumed = format!("arn:aws:sts::{ACCOUNT}:assumed-role/viewer/night-shift");
    assert_eq!(out["AssumedRoleUser"]["Arn"], assumed);
    let me = ok(&d, &session, &["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], assumed);
    assert!(
        me["UserId"]
            .as_str()
            .is_some_and(|u| u.starts_with("AROA") && u.ends_with(":night-shift"))
    );
    // The role's policies apply to the session.
    ok(&d, &session, &["ec2", "describe-vpcs"]);
    let err = fails(&d, &session, RUN, "UnauthorizedOperation");
    assert!(err.contains(&assumed), "{err}");
    // Without its session token the key is refused.
    let tokenless = Creds {
        token: None,
        ..session.clone()
    };
    fails(
        &d,
        &tokenless,
        &["sts", "get-caller-identity"],
        "AuthFailure",
    );
    // A trust policy that does not name the caller's account refuses it.
    ok(
        &d,
        &root(),
        &[
            "iam",
            "update-assume-role-policy",
            "--role-name",
            "viewer",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#,
        ],
    );
    fails(
        &d,
        &dev,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &role_arn,
            "--role-session-name",
            "again",
        ],
        "AccessDenied",
    );
}

/// A malformed document is refused with IAM's reason, and nothing is stored.
#[test]
fn issue15_malformed_policies_get_malformed_policy_document_with_the_reason() {
    let d = enforcing();
    for (doc, reason) in [
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*"}}"#,
            "Policy statement must contain resources.",
        ),
        ("{not json", "Syntax errors in policy."),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Principal":"*"}}"#,
            "Policy document should not specify a principal.",
        ),
    ] {
        let err = fails(
            &d,
            &root(),
            &[
                "iam",
                "create-policy",
                "--policy-name",
                "bad",
                "--policy-document",
                doc,
            ],
            "MalformedPolicyDocument",
        );
        assert!(err.contains(reason), "{doc}: {err}");
    }
    let listed = ok(&d, &root(), &["iam", "list-policies", "--scope", "Local"]);
    assert_eq!(
        listed["Policies"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    // A good one round-trips (the CLI decodes IAM's URL-encoded document).
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::notes/*"}]}"#;
    let p = ok(
        &d,
        &root(),
        &[
            "iam",
            "create-policy",
            "--policy-name",
            "notes",
            "--policy-document",
            doc,
        ],
    );
    let arn = p["Policy"]["Arn"].as_str().expect("arn").to_string();
    assert_eq!(arn, format!("arn:aws:iam::{ACCOUNT}:policy/notes"));
    let v = ok(
        &d,
        &root(),
        &[
            "iam",
            "get-policy-version",
            "--policy-arn",
            &arn,
            "--version-id",
            "v1",
        ],
    );
    assert_eq!(
        v["PolicyVersion"]["Document"]["Statement"][0]["Resource"],
        "arn:aws:s3:::notes/*"
    );
}

/// Keys survive a restart; deleting or deactivating an access key stops it working at
/// once; a user keeps at most two keys; a user with keys cannot be deleted.
#[test]
fn issue15_a_deleted_access_key_stops_working() {
    let mut d = enforcing();
    let cid = user_with(&d, "cid", &["AmazonEC2ReadOnlyAccess"]);
    ok(&d, &cid, &["ec2", "describe-vpcs"]);
    // Keys and policies are durable: after a restart the key still signs, as cid.
    d.stop();
    d.launch();
    ok(&d, &cid, &["ec2", "describe-vpcs"]);
    fails(&d, &cid, RUN, "UnauthorizedOperation");
    ok(
        &d,
        &root(),
        &["iam", "create-access-key", "--user-name", "cid"],
    );
    fails(
        &d,
        &root(),
        &["iam", "create-access-key", "--user-name", "cid"],
        "LimitExceeded",
    );
    fails(
        &d,
        &root(),
        &["iam", "delete-user", "--user-name", "cid"],
        "DeleteConflict",
    );
    ok(
        &d,
        &root(),
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "cid",
            "--access-key-id",
            &cid.key,
            "--status",
            "Inactive",
        ],
    );
    fails(&d, &cid, &["ec2", "describe-vpcs"], "AuthFailure");
    ok(
        &d,
        &root(),
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "cid",
            "--access-key-id",
            &cid.key,
            "--status",
            "Active",
        ],
    );
    ok(&d, &cid, &["ec2", "describe-vpcs"]);
    ok(
        &d,
        &root(),
        &[
            "iam",
            "delete-access-key",
            "--user-name",
            "cid",
            "--access-key-id",
            &cid.key,
        ],
    );
    fails(&d, &cid, &["ec2", "describe-vpcs"], "AuthFailure");
    let keys = ok(
        &d,
        &root(),
        &["iam", "list-access-keys", "--user-name", "cid"],
    );
    assert_eq!(keys["AccessKeyMetadata"].as_array().map(Vec::len), Some(1));
}

/// boto3 drives the same flow: keys, AssumeRole with its datetime expiry and session
/// token, the role's policy deciding.
#[test]
fn issue15_boto3_assumes_a_role_and_its_policy_decides() {
    crate::support::require_boto3();
    let d = enforcing();
    let path: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "interop",
        "boto3_iam.py",
    ]
    .iter()
    .collect();
    let mut cmd = Command::new("python3");
    cmd.arg(&path);
    d.env(&mut cmd);
    let out = cmd
        .env("VPCLAB_ENDPOINT", d.url())
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", ROOT.0)
        .env("AWS_SECRET_ACCESS_KEY", ROOT.1)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("boto3 iam ok"));
}

/// Issue 15: a user with only AmazonS3ReadOnlyAccess lists buckets and reads objects, but
/// `aws s3 mb` and a put get S3's AccessDenied, `ec2 run-instances` UnauthorizedOperation,
/// and DynamoDB and SSM AccessDeniedException; root does all of it.
#[test]
fn issue15_s3_read_only_user_reads_but_cannot_create_or_write() {
    let d = enforcing();
    let root = root();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("week1.txt");
    std::fs::write(&file, "subnets and route tables\n").expect("write");
    let file = file.to_string_lossy().to_string();
    ok(
        &d,
        &root,
        &["s3api", "create-bucket", "--bucket", "course-notes"],
    );
    ok(
        &d,
        &root,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "course-notes",
            "--key",
            "week1.txt",
            "--body",
            &file,
        ],
    );
    let reader = user_with(&d, "reader", &["AmazonS3ReadOnlyAccess"]);
    let buckets = ok(&d, &reader, &["s3api", "list-buckets"]);
    assert_eq!(buckets["Buckets"][0]["Name"], "course-notes", "{buckets}");
    let listed = ok(
        &d,
        &reader,
        &["s3api", "list-objects-v2", "--bucket", "course-notes"],
    );
    assert_eq!(listed["Contents"][0]["Key"], "week1.txt", "{listed}");
    let out = dir.path().join("copy.txt");
    ok(
        &d,
        &reader,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "course-notes",
            "--key",
            "week1.txt",
            &out.to_string_lossy(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "subnets and route tables\n"
    );
    let out = run(&d, &reader, &["s3", "mb", "s3://reader-bucket"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AccessDenied"),
        "s3 mb: {err}"
    );
    fails(
        &d,
        &reader,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "course-notes",
            "--key",
            "week2.txt",
            "--body",
            &file,
        ],
        "AccessDenied",
    );
    fails(&d, &reader, RUN, "UnauthorizedOperation");
    fails(
        &d,
        &reader,
        &["dynamodb", "list-tables"],
        "AccessDeniedException",
    );
    fails(
        &d,
        &reader,
        &["ssm", "get-parameter", "--name", "/course/week"],
        "AccessDeniedException",
    );
    // Nothing the reader was refused happened; root may do it all.
    let buckets = ok(&d, &root, &["s3api", "list-buckets"]);
    assert_eq!(
        buckets["Buckets"].as_array().map(Vec::len),
        Some(1),
        "{buckets}"
    );
    ok(
        &d,
        &root,
        &["s3api", "create-bucket", "--bucket", "root-bucket"],
    );
    ok(&d, &root, &["dynamodb", "list-tables"]);
}

/// IAM lists page as AWS documents (MaxItems, IsTruncated, Marker): the CLI's
/// `--page-size` makes it follow the markers and still show every user, `--max-items`
/// stops early with a NextToken that resumes. (A MaxItems outside 1..1000 never leaves
/// the CLI: botocore refuses it first.)
#[test]
fn iam_lists_page_with_max_items_and_markers() {
    let d = enforcing();
    for name in ["ann", "bob", "cy", "dee", "eve"] {
        ok(&d, &root(), &["iam", "create-user", "--user-name", name]);
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["Users"]
            .as_array()
            .expect("Users")
            .iter()
            .map(|u| u["UserName"].as_str().expect("name").to_string())
            .collect()
    };
    let all = ok(&d, &root(), &["iam", "list-users", "--page-size", "2"]);
    assert_eq!(names(&all), ["ann", "bob", "cy", "dee", "eve"]);
    let first = ok(&d, &root(), &["iam", "list-users", "--max-items", "3"]);
    assert_eq!(names(&first), ["ann", "bob", "cy"]);
    let token = first["NextToken"].as_str().expect("NextToken").to_string();
    let rest = ok(
        &d,
        &root(),
        &["iam", "list-users", "--starting-token", &token],
    );
    assert_eq!(names(&rest), ["dee", "eve"]);
}

/// `curl` without credentials (an anonymous request) of `path` in `bucket`, addressed
/// virtual-hosted style as a browser would; returns (status, body).
fn anonymous_get(d: &TestDaemon, bucket: &str, path: &str) -> (u16, String) {
    crate::support::require("curl");
    let host = format!("Host: {bucket}.s3.localhost:{}", d.api_port());
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-H",
            &host,
        ])
        .arg(format!("{}{path}", d.url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn put_policy(d: &TestDaemon, bucket: &str, statements: &str) {
    ok(
        d,
        &root(),
        &[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            bucket,
            "--policy",
            &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
        ],
    );
}

fn put_file(d: &TestDaemon, who: &Creds, bucket: &str, key: &str, text: &str) -> Output {
    let file = d.path(&format!("upload-{key}"));
    std::fs::write(&file, text).expect("write");
    run(
        d,
        who,
        &[
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--body",
            &file.to_string_lossy(),
        ],
    )
}

/// Issue 15, S3 User Guide "How Amazon S3 authorizes a request": in the bucket
/// owner's account a bucket policy alone can allow, an explicit deny in it refuses even
/// root (who may still manage the policy), and anonymous requests are let in only by a
/// public policy that Block Public Access does not restrict.
#[test]
fn issue15_bucket_policies_allow_deny_and_open_a_bucket_to_anonymous_readers() {
    let d = enforcing();
    let root = root();
    ok(&d, &root, &["s3api", "create-bucket", "--bucket", "shared"]);
    let out = put_file(&d, &root, "shared", "notes.txt", "vpc notes\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = user_with(&d, "alice", &[]);
    let get = |who: &Creds| {
        run(
            &d,
            who,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "shared",
                "--key",
                "notes.txt",
                &d.path("got.txt").to_string_lossy(),
            ],
        )
    };
    // No identity policy and no bucket policy: an implicit deny.
    let out = get(&alice);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AccessDenied"), "{err}");
    // The bucket policy alone allows alice (same account).
    put_policy(
        &d,
        "shared",
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/alice"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}}"#
        ),
    );
    let out = get(&alice);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...for what it names only.
    let out = put_file(&d, &alice, "shared", "mine.txt", "x");
    assert!(!out.status.success());

    // An explicit deny in the bucket policy refuses root too; root may still remove it.
    put_policy(
        &d,
        "shared",
        r#"{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::shared/*"}"#,
    );
    let err = fails(
        &d,
        &root,
        &[
            "s3api",
            "delete-object",
            "--bucket",
            "shared",
            "--key",
            "notes.txt",
        ],
        "AccessDenied",
    );
    assert!(
        err.contains("explicit deny in a resource-based policy"),
        "{err}"
    );
    ok(
        &d,
        &root,
        &["s3api", "delete-bucket-policy", "--bucket", "shared"],
    );

    // Anonymous: refused while nothing public allows it.
    let (status, _) = anonymous_get(&d, "shared", "/notes.txt");
    assert_eq!(status, 403);
    // A public policy is refused while Block Public Access is on (new buckets have it).
    let public = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}"#;
    let out = run(
        &d,
        &root,
        &[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            "shared",
            "--policy",
            &format!(r#"{{"Version":"2012-10-17","Statement":[{public}]}}"#),
        ],
    );
    assert!(!out.status.success());
    ok(
        &d,
        &root,
        &["s3api", "delete-public-access-block", "--bucket", "shared"],
    );
    put_policy(&d, "shared", public);
    let (status, body) = anonymous_get(&d, "shared", "/notes.txt");
    assert_eq!((status, body.as_str()), (200, "vpc notes\n"));
    // Reading is all it allows: an anonymous listing is still refused.
    assert_eq!(anonymous_get(&d, "shared", "/").0, 403);
    // RestrictPublicBuckets takes the public policy's effect away again.
    ok(
        &d,
        &root,
        &[
            "s3api",
            "put-public-access-block",
            "--bucket",
            "shared",
            "--public-access-block-configuration",
            "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=false,RestrictPublicBuckets=true",
        ],
    );
    assert_eq!(anonymous_get(&d, "shared", "/notes.txt").0, 403);
    // A bucket that does not exist anywhere is NoSuchBucket, even anonymously.
    assert_eq!(anonymous_get(&d, "no-such-bucket", "/x").0, 404);
}

/// Issue 15: a condition in a bucket policy's Deny — here "only over HTTPS"
/// (aws:SecureTransport) — refuses even a user with AdministratorAccess, since the
/// daemon's API is plain HTTP.
#[test]
fn issue15_a_secure_transport_deny_in_a_bucket_policy_beats_administrator_access() {
    let d = enforcing();
    let root = root();
    ok(
        &d,
        &root,
        &["s3api", "create-bucket", "--bucket", "tls-only"],
    );
    let admin = user_with(&d, "admin", &["AdministratorAccess"]);
    let out = put_file(&d, &admin, "tls-only", "a.txt", "a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    put_policy(
        &d,
        "tls-only",
        r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::tls-only","arn:aws:s3:::tls-only/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
    );
    let out = put_file(&d, &admin, "tls-only", "b.txt", "b");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AccessDenied"),
        "{err}"
    );
    fails(
        &d,
        &admin,
        &["s3api", "list-objects-v2", "--bucket", "tls-only"],
        "AccessDenied",
    );
}

/// Issue 15: a bucket of another account of the daemon needs both sides — the
/// caller's identity policy and the owner's bucket policy.
#[test]
fn issue15_cross_account_bucket_access_needs_the_bucket_policy_and_the_identity_policy() {
    const OTHER: &str = "210987654321";
    let other_root = Creds {
        key: "AKIAOTHER00000000000".into(),
        secret: "other-secret".into(),
        token: None,
    };
    let d = TestDaemon::start_with(|cfg| {
        std::fs::write(
            cfg.state_dir.keys_file(),
            format!(
                "[[key]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\naccount = \"{ACCOUNT}\"\n\n[[key]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\naccount = \"{OTHER}\"\n",
                ROOT.0, ROOT.1, other_root.key, other_root.secret
            ),
        )
        .expect("write keys");
        cfg.auth = vpclab::daemon::AuthConfig::Strict;
        cfg.iam_enforce = true;
    });
    let root = root();
    ok(
        &d,
        &root,
        &["s3api", "create-bucket", "--bucket", "team-share"],
    );
    let out = put_file(&d, &root, "team-share", "plan.txt", "the plan\n");
    assert!(out.status.success());
    let get = |who: &Creds| {
        run(
            &d,
            who,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "team-share",
                "--key",
                "plan.txt",
                &d.path("plan-copy.txt").to_string_lossy(),
            ],
        )
    };
    // The other account's root: its identity side allows, the bucket does not.
    assert!(!get(&other_root).status.success());
    put_policy(
        &d,
        "team-share",
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::team-share/*"}}"#
        ),
    );
    let out = get(&other_root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.path("plan-copy.txt")).expect("read"),
        "the plan\n"
    );
    // A user of the other account with no identity policy: the bucket side allows (it
    // names the account), the user's side does not.
    ok(
        &d,
        &other_root,
        &["iam", "create-user", "--user-name", "bob"],
    );
    let key = ok(
        &d,
        &other_root,
        &["iam", "create-access-key", "--user-name", "bob"],
    );
    let bob = Creds {
        key: key["AccessKey"]["AccessKeyId"].as_str().expect("id").into(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .into(),
        token: None,
    };
    let out = get(&bob);
    assert!(!out.status.success());
    ok(
        &d,
        &other_root,
        &[
            "iam",
            "attach-user-policy",
            "--user-name",
            "bob",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        ],
    );
    let out = get(&bob);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Writing is in neither policy.
    let out = put_file(&d, &other_root, "team-share", "x.txt", "x");
    assert!(!out.status.success());
}

/// Issue 15: launching with an instance profile hands its role to EC2, which takes
/// `iam:PassRole` on the role (EC2 User Guide, "Grant permissions to attach an IAM role
/// to an instance"): AmazonEC2FullAccess alone is refused with the role named, and an
/// inline policy allowing PassRole for `ec2.amazonaws.com` lets the same launch through.
/// A PassRole limited to another service does not count.
#[test]
fn issue15_launching_with_an_instance_profile_needs_pass_role() {
    let d = enforcing();
    let root = root();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = ok(
        &d,
        &root,
        &[
            "iam",
            "create-role",
            "--role-name",
            "app-role",
            "--assume-role-policy-document",
            trust,
        ],
    );
    let role_arn = role["Role"]["Arn"].as_str().expect("role arn").to_string();
    ok(
        &d,
        &root,
        &[
            "iam",
            "create-instance-profile",
            "--instance-profile-name",
            "app-profile",
        ],
    );
    ok(
        &d,
        &root,
        &[
            "iam",
            "add-role-to-instance-profile",
            "--instance-profile-name",
            "app-profile",
            "--role-name",
            "app-role",
        ],
    );
    let dev = user_with(&d, "dev", &["AmazonEC2FullAccess"]);
    let image = ok(
        &d,
        &root,
        &[
            "ec2",
            "describe-images",
            "--owners",
            "amazon",
            "--query",
            "Images[0].ImageId",
        ],
    );
    let image = image.as_str().expect("an image id").to_string();
    let plain = ["ec2", "run-instances", "--image-id", &image];
    let launch: Vec<&str> = plain
        .iter()
        .copied()
        .chain(["--iam-instance-profile", "Name=app-profile"])
        .collect();
    let err = fails(&d, &dev, &launch, "UnauthorizedOperation");
    assert!(
        err.contains("iam:PassRole") && err.contains(&role_arn),
        "the denial names the action and the role: {err}"
    );
    // Without a profile the same user launches: only the role needed the extra right.
    ok(&d, &dev, &plain);
    let pass_to = |service: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iam:PassRole","Resource":"{role_arn}","Condition":{{"StringEquals":{{"iam:PassedToService":"{service}"}}}}}}]}}"#
        )
    };
    let put = |doc: &str| {
        ok(
            &d,
            &root,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                "dev",
                "--policy-name",
                "pass-app-role",
                "--policy-document",
                doc,
            ],
        );
    };
    put(&pass_to("lambda.amazonaws.com"));
    fails(&d, &dev, &launch, "UnauthorizedOperation");
    put(&pass_to("ec2.amazonaws.com"));
    let out = ok(&d, &dev, &launch);
    let id = out["Instances"][0]["InstanceId"]
        .as_str()
        .expect("instance id");
    let assoc = ok(
        &d,
        &dev,
        &[
            "ec2",
            "describe-iam-instance-profile-associations",
            "--filters",
            &format!("Name=instance-id,Values={id}"),
        ],
    );
    assert_eq!(
        assoc["IamInstanceProfileAssociations"][0]["IamInstanceProfile"]["Arn"]
            .as_str()
            .map(|a| a.ends_with(":instance-profile/app-profile")),
        Some(true),
        "{assoc}"
    );
}

/// Issue 15: a task definition's task role is handed to ECS tasks, so registering one
/// takes `iam:PassRole` on the role for `ecs-tasks.amazonaws.com` besides
/// `ecs:RegisterTaskDefinition` (Amazon ECS Developer Guide, "IAM roles for Amazon ECS").
/// A role name is read as a role of the caller's account, as ECS does.
#[test]
fn issue15_a_task_role_needs_pass_role_to_ecs_tasks() {
    let d = enforcing();
    let root = root();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = ok(
        &d,
        &root,
        &[
            "iam",
            "create-role",
            "--role-name",
            "task-role",
            "--assume-role-policy-document",
            trust,
        ],
    );
    let role_arn = role["Role"]["Arn"].as_str().expect("role arn").to_string();
    let dev = user_with(&d, "ops", &[]);
    let put = |doc: &str| {
        ok(
            &d,
            &root,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                "ops",
                "--policy-name",
                "ops",
                "--policy-document",
                doc,
            ],
        );
    };
    let ecs_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#;
    put(ecs_only);
    let register = |role: &str| {
        vec![
            "ecs".to_string(),
            "register-task-definition".into(),
            "--family".into(),
            "web".into(),
            "--requires-compatibilities".into(),
            "FARGATE".into(),
            "--network-mode".into(),
            "awsvpc".into(),
            "--cpu".into(),
            "256".into(),
            "--memory".into(),
            "512".into(),
            "--container-definitions".into(),
            r#"[{"name":"web","image":"nginx","essential":true}]"#.into(),
            "--task-role-arn".into(),
            role.into(),
        ]
    };
    let args = register(&role_arn);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&d, &dev, &args, "AccessDeniedException");
    assert!(
        err.contains("iam:PassRole") && err.contains(&role_arn),
        "the denial names the action and the role: {err}"
    );
    // By name: the same role of the caller's account, refused the same way.
    let by_name = register("task-role");
    let by_name: Vec<&str> = by_name.iter().map(String::as_str).collect();
    let err = fails(&d, &dev, &by_name, "AccessDeniedException");
    assert!(err.contains(&role_arn), "{err}");
    // Without a role, ecs:* is enough.
    ok(&d, &dev, &args[..args.len() - 2]);
    put(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ecs:*","Resource":"*"}},{{"Effect":"Allow","Action":"iam:PassRole","Resource":"{role_arn}","Condition":{{"StringEquals":{{"iam:PassedToService":"ecs-tasks.amazonaws.com"}}}}}}]}}"#
    ));
    let out = ok(&d, &dev, &args);
    assert_eq!(
        out["taskDefinition"]["taskRoleArn"].as_str(),
        Some(role_arn.as_str()),
        "{out}"
    );
}

/// PutBucketReplication hands the configuration's role to S3, so the caller needs
/// `iam:PassRole` on it for `s3.amazonaws.com` (S3 User Guide, "Setting up permissions
/// for live replication": the user that creates replication rules needs
/// `iam:PassRole`). AmazonS3FullAccess alone is refused with the role named.
#[test]
fn put_bucket_replication_needs_pass_role_on_the_replication_role() {
    let d = enforcing();
    let root = root();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = ok(
        &d,
        &root,
        &[
            "iam",
            "create-role",
            "--role-name",
            "replication",
            "--assume-role-policy-document",
            trust,
        ],
    );
    let role_arn = role["Role"]["Arn"].as_str().expect("role arn").to_string();
    for b in ["pass-src", "pass-dst"] {
        ok(&d, &root, &["s3api", "create-bucket", "--bucket", b]);
        ok(
            &d,
            &root,
            &[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                b,
                "--versioning-configuration",
                "Status=Enabled",
            ],
        );
    }
    let ops = user_with(&d, "ops", &["AmazonS3FullAccess"]);
    let cfg = format!(
        r#"{{"Role":"{role_arn}","Rules":[{{"ID":"all","Priority":1,"Status":"Enabled","Filter":{{}},"DeleteMarkerReplication":{{"Status":"Disabled"}},"Destination":{{"Bucket":"arn:aws:s3:::pass-dst"}}}}]}}"#
    );
    let put = [
        "s3api",
        "put-bucket-replication",
        "--bucket",
        "pass-src",
        "--replication-configuration",
        &cfg,
    ];
    let err = fails(&d, &ops, &put, "AccessDenied");
    assert!(
        err.contains("iam:PassRole") && err.contains(&role_arn),
        "the denial names the action and the role: {err}"
    );
    let pass = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iam:PassRole","Resource":"{role_arn}","Condition":{{"StringEquals":{{"iam:PassedToService":"s3.amazonaws.com"}}}}}}]}}"#
    );
    ok(
        &d,
        &root,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ops",
            "--policy-name",
            "pass-replication",
            "--policy-document",
            &pass,
        ],
    );
    ok(&d, &ops, &put);
    // Root is not subject to identity policies.
    ok(&d, &root, &put);
}

//! Issue 15: an instance launched with an IAM instance profile gets the role's temporary
//! credentials from its metadata service (EC2 user guide, "Retrieve security credentials
//! from instance metadata"), and those credentials act as the role — allowed what its
//! policy allows, refused the rest — when the real `aws` CLI uses them under
//! `--iam enforce`.

use std::process::{Command, Output};

use crate::support::{Lab, Network, TestDaemon, require_aws, stderr, stdout};

const ACCOUNT: &str = "123456789012";

/// Strict authentication where the harness's own `test`/`test` key is the account's
/// root, and IAM policies enforced.
fn enforcing() -> TestDaemon {
    TestDaemon::start_with(|cfg| {
        std::fs::write(
            cfg.state_dir.keys_file(),
            format!(
                "[[key]]\naccess_key = \"test\"\nsecret_key = \"test\"\naccount = \"{ACCOUNT}\"\n"
            ),
        )
        .expect("write keys");
        cfg.auth = vpclab::daemon::AuthConfig::Strict;
        cfg.iam_enforce = true;
    })
}

/// `aws …` signed with temporary credentials.
fn aws_with(d: &TestDaemon, creds: &serde_json::Value, args: &[&str]) -> Output {
    require_aws();
    let mut cmd = Command::new("aws");
    cmd.args(args);
    d.env(&mut cmd);
    let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    cmd.env("AWS_ACCESS_KEY_ID", field("AccessKeyId"))
        .env("AWS_SECRET_ACCESS_KEY", field("SecretAccessKey"))
        .env("AWS_SESSION_TOKEN", field("Token"));
    cmd.output().expect("run aws")
}

/// A role EC2 may assume, with AmazonS3ReadOnlyAccess, in an instance profile.
fn profile_with_s3_read(d: &TestDaemon, role: &str, profile: &str) {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    d.aws_cli_json(&[
        "iam",
        "create-role",
        "--role-name",
        role,
        "--assume-role-policy-document",
        trust,
    ]);
    d.aws_cli_json(&[
        "iam",
        "attach-role-policy",
        "--role-name",
        role,
        "--policy-arn",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    ]);
    d.aws_cli_json(&[
        "iam",
        "create-instance-profile",
        "--instance-profile-name",
        profile,
    ]);
    d.aws_cli_json(&[
        "iam",
        "add-role-to-instance-profile",
        "--instance-profile-name",
        profile,
        "--role-name",
        role,
    ]);
}

#[test]
fn issue15_instance_profile_credentials_from_imds_act_as_the_role() {
    let d = enforcing();
    profile_with_s3_read(&d, "app-role", "app-profile");
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", "app-data"]);
    let body = d.path("hello.txt");
    std::fs::write(&body, "hello from s3\n").expect("write");
    d.aws_cli_json(&[
        "s3api",
        "put-object",
        "--bucket",
        "app-data",
        "--key",
        "hello.txt",
        "--body",
        body.to_str().expect("utf-8 path"),
    ]);

    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (id, ip, _) = net.launch(
        &d,
        &net.public_subnet,
        "lab",
        &sg,
        &["--iam-instance-profile", "Name=app-profile"],
    );

    // EC2 shows the association and the instance's profile.
    let assoc = d.aws_cli_json(&[
        "ec2",
        "describe-iam-instance-profile-associations",
        "--filters",
        &format!("Name=instance-id,Values={id}"),
    ]);
    let a = &assoc["IamInstanceProfileAssociations"][0];
    assert_eq!(a["State"], "associated", "{assoc}");
    assert_eq!(
        a["IamInstanceProfile"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:instance-profile/app-profile")
    );
    let described = d.aws_cli_json(&["ec2", "describe-instances", "--instance-ids", &id]);
    assert_eq!(
        described["Reservations"][0]["Instances"][0]["IamInstanceProfile"]["Arn"],
        a["IamInstanceProfile"]["Arn"]
    );
    // One profile per instance.
    let err = d.aws_cli_err(&[
        "ec2",
        "associate-iam-instance-profile",
        "--instance-id",
        &id,
        "--iam-instance-profile",
        "Name=app-profile",
    ]);
    assert!(err.contains("(IncorrectState)"), "{err}");

    // Inside: IMDSv2 token, the role listed, its credentials as JSON. The first
    // session is issued as the instance comes up; allow the runtime a moment.
    let script = "T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
                  M=http://169.254.169.254/latest/meta-data/iam; \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/security-credentials/; echo; \
                  curl -s -H \"X-aws-ec2-metadata-token: $T\" $M/security-credentials/app-role";
    let mut creds = serde_json::Value::Null;
    for _ in 0..20 {
        let out = d.ssh(&key, "ec2-user", &ip, script);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let (role, json) = text.split_once('\n').expect("two answers");
        assert_eq!(role, "app-role");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
            creds = v;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(creds["Code"], "Success", "{creds}");
    assert_eq!(creds["Type"], "AWS-HMAC");
    let key_id = creds["AccessKeyId"].as_str().expect("AccessKeyId");
    assert!(key_id.starts_with("ASIA") && key_id.len() == 20, "{key_id}");
    assert!(
        creds["Expiration"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );

    // The credentials are the role: its policy allows reading S3, nothing more.
    let out = aws_with(&d, &creds, &["sts", "get-caller-identity"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        me["Arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-role/{id}")
    );
    let out = aws_with(&d, &creds, &["s3", "ls", "s3://app-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello.txt"), "{}", stdout(&out));
    let out = aws_with(&d, &creds, &["s3", "rm", "s3://app-data/hello.txt"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("AccessDenied"), "{}", stderr(&out));
    let out = aws_with(&d, &creds, &["ec2", "describe-vpcs"]);
    assert!(
        stderr(&out).contains("(UnauthorizedOperation)"),
        "{}",
        stderr(&out)
    );

    // Disassociated: the metadata no longer lists the role.
    let assoc_id = a["AssociationId"].as_str().expect("AssociationId");
    let gone = d.aws_cli_json(&[
        "ec2",
        "disassociate-iam-instance-profile",
        "--association-id",
        assoc_id,
    ]);
    assert_eq!(
        gone["IamInstanceProfileAssociation"]["State"],
        "disassociating"
    );
    let err = d.aws_cli_err(&[
        "ec2",
        "disassociate-iam-instance-profile",
        "--association-id",
        assoc_id,
    ]);
    assert!(err.contains("(InvalidAssociationID.NotFound)"), "{err}");
    let mut listed = String::from("app-role");
    for _ in 0..20 {
        let out = d.ssh(
            &key,
            "ec2-user",
            &ip,
            "T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
             curl -s -o /dev/null -w '%{http_code}' -H \"X-aws-ec2-metadata-token: $T\" http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        );
        listed = stdout(&out);
        if listed == "404" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(listed, "404");
}

#[test]
fn issue15_instance_profile_errors_name_the_bad_parameter() {
    let d = enforcing();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "none", &[]);
    d.key_pair("k", "ed25519");
    // An unknown profile: nothing launches.
    let mut args = vec![
        "ec2",
        "run-instances",
        "--image-id",
        &net.ami,
        "--instance-type",
        "t3.micro",
        "--subnet-id",
        &net.private_subnet,
        "--security-group-ids",
        &sg,
        "--iam-instance-profile",
        "Name=nope",
    ];
    let err = d.aws_cli_err(&args);
    assert!(err.contains("(InvalidParameterValue)"), "{err}");
    assert!(err.contains("Invalid IAM Instance Profile name"), "{err}");
    let count = d.aws_cli_json(&[
        "ec2",
        "describe-instances",
        "--query",
        "length(Reservations)",
    ]);
    assert_eq!(count, 0);

    // Launched without one, then associated and replaced.
    args.truncate(args.len() - 2);
    args.extend(["--query", "Instances[0].InstanceId", "--output", "text"]);
    let out = d.aws_cli(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    profile_with_s3_read(&d, "r1", "p1");
    profile_with_s3_read(&d, "r2", "p2");
    let a = d.aws_cli_json(&[
        "ec2",
        "associate-iam-instance-profile",
        "--instance-id",
        &id,
        "--iam-instance-profile",
        "Name=p1",
    ]);
    let first = a["IamInstanceProfileAssociation"]["AssociationId"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(first.starts_with("iip-assoc-"), "{first}");
    let r = d.aws_cli_json(&[
        "ec2",
        "replace-iam-instance-profile-association",
        "--association-id",
        &first,
        "--iam-instance-profile",
        &format!("Arn=arn:aws:iam::{ACCOUNT}:instance-profile/p2"),
    ]);
    let second = r["IamInstanceProfileAssociation"]["AssociationId"]
        .as_str()
        .expect("id");
    assert_ne!(second, first);
    let listed = d.aws_cli_json(&["ec2", "describe-iam-instance-profile-associations"]);
    let all = listed["IamInstanceProfileAssociations"]
        .as_array()
        .expect("list");
    assert_eq!(all.len(), 1, "{listed}");
    assert!(
        all[0]["IamInstanceProfile"]["Arn"]
            .as_str()
            .is_some_and(|a| a.ends_with("/p2"))
    );
    let err = d.aws_cli_err(&[
        "ec2",
        "describe-iam-instance-profile-associations",
        "--association-ids",
        &first,
    ]);
    assert!(err.contains("(InvalidAssociationID.NotFound)"), "{err}");
}

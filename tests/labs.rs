//! Black-box tests of `vpclab lab`: every lab in `labs/` passes `vpclab lab test` (each
//! step's checks fail, its reference solution runs with the real aws CLI, its checks
//! pass, the lab ends at 100%), and a failing `reach` check names the rule that blocked
//! the packet, from the fabric's own decision path.
//!
//! Needs the real `aws` CLI (`scripts/install-test-deps`).

use std::path::Path;
use std::process::Command;

fn vpclab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpclab"))
}

fn labs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

/// Runs `vpclab lab test LAB --seeds 1` and asserts it ends at 100%. One test per lab,
/// so that nextest runs the labs in parallel processes.
fn lab_passes(folder: &str) {
    let id = folder.split_once('-').map_or(folder, |(_, id)| id);
    let out = vpclab()
        .args(["lab", "test", id, "--seeds", "1", "--labs"])
        .arg(labs_dir())
        .output()
        .expect("run vpclab lab test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("✓ {folder} seed 0: 100%")),
        "{folder} passed: {stdout}"
    );
    assert!(!stdout.contains('✗'), "{stdout}");
}

#[test]
fn lab_01_first_instance_passes_lab_test() {
    lab_passes("01-first-instance");
}

#[test]
fn lab_02_web_server_passes_lab_test() {
    lab_passes("02-web-server");
}

#[test]
fn lab_03_custom_vpc_passes_lab_test() {
    lab_passes("03-custom-vpc");
}

#[test]
fn lab_04_bastion_passes_lab_test() {
    lab_passes("04-bastion");
}

#[test]
fn lab_05_nacl_vs_sg_passes_lab_test() {
    lab_passes("05-nacl-vs-sg");
}

#[test]
fn lab_06_route53_passes_lab_test() {
    lab_passes("06-route53");
}

#[test]
fn lab_07_troubleshooting_passes_lab_test() {
    lab_passes("07-troubleshooting");
}

#[test]
fn lab_08_imds_and_user_data_passes_lab_test() {
    lab_passes("08-imds-and-user-data");
}

/// The curriculum of issue 11, in its order: a new lab folder needs its test above.
#[test]
fn the_curriculum_is_the_eight_labs_in_order() {
    let mut found: Vec<String> = std::fs::read_dir(labs_dir())
        .expect("labs/")
        .flatten()
        .filter(|e| e.path().join("lab.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "01-first-instance",
            "02-web-server",
            "03-custom-vpc",
            "04-bastion",
            "05-nacl-vs-sg",
            "06-route53",
            "07-troubleshooting",
            "08-imds-and-user-data",
        ]
    );
}

/// A one-step lab whose only check is SSH from the learner to the instance `target`.
fn reach_lab(dir: &Path) {
    std::fs::create_dir_all(dir.join("steps")).expect("mkdir");
    std::fs::create_dir_all(dir.join("solution")).expect("mkdir");
    std::fs::write(dir.join("steps/01-ssh.md"), "Open SSH to target.\n").expect("write");
    std::fs::write(dir.join("solution/01-ssh.sh"), "true\n").expect("write");
    std::fs::write(
        dir.join("lab.toml"),
        r#"
id = "reach-msg"
version = 1
title = "Reach"
summary = "reach"

[[steps]]
id = "ssh"
title = "SSH"
body = "steps/01-ssh.md"
solve = "solution/01-ssh.sh"

[[steps.checks]]
id = "ssh-reaches"
kind = "reach"
from = "learner"
to = "instance:target"
port = 22
fail = "SSH from your computer does not reach target."
"#,
    )
    .expect("write");
}

#[test]
fn a_failing_reach_check_names_the_network_acl_rule_that_blocked_it() {
    use vpclab::daemon::{Background, DaemonConfig, StateDir};
    let state = tempfile::tempdir().expect("tempdir");
    let labs = tempfile::tempdir().expect("tempdir");
    let lab = labs.path().join("reach-msg");
    reach_lab(&lab);
    let daemon =
        Background::start(DaemonConfig::for_tests(StateDir::new(state.path()))).expect("start");
    let url = daemon.url();
    let aws = |args: &[&str]| -> String {
        let out = Command::new("aws")
            .args(args)
            .args(["--output", "text"])
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .output()
            .expect("run aws (scripts/install-test-deps installs it)");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // An instance in the default VPC whose security group allows SSH from anywhere …
    let sg = aws(&[
        "ec2",
        "describe-security-groups",
        "--group-names",
        "default",
        "--query",
        "SecurityGroups[0].GroupId",
    ]);
    aws(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "0.0.0.0/0",
    ]);
    let ami = aws(&[
        "ec2",
        "describe-images",
        "--owners",
        "amazon",
        "--query",
        "Images[0].ImageId",
    ]);
    let subnet = aws(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=default-for-az,Values=true",
        "--query",
        "Subnets[0].SubnetId",
    ]);
    aws(&[
        "ec2",
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "t2.micro",
        "--subnet-id",
        &subnet,
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=target}]",
    ]);
    // … and a network ACL entry that denies it first.
    let acl = aws(&[
        "ec2",
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={subnet}"),
        "--query",
        "NetworkAcls[0].NetworkAclId",
    ]);
    aws(&[
        "ec2",
        "create-network-acl-entry",
        "--network-acl-id",
        &acl,
        "--ingress",
        "--rule-number",
        "90",
        "--protocol",
        "tcp",
        "--port-range",
        "From=22,To=22",
        "--cidr-block",
        "0.0.0.0/0",
        "--rule-action",
        "deny",
    ]);
    let work = tempfile::tempdir().expect("tempdir");
    let lab_cmd = |args: &[&str]| {
        let out = vpclab()
            .arg("lab")
            .args(args)
            .args(["--learner", "ann", "--endpoint", &url, "--labs"])
            .arg(labs.path())
            .current_dir(work.path())
            .output()
            .expect("run vpclab lab");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = lab_cmd(&["start", "reach-msg"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = lab_cmd(&["check"]);
    assert_eq!(code, Some(1), "a failing check exits 1: {out}{err}");
    let line = out
        .lines()
        .find(|l| l.contains("ssh-reaches"))
        .unwrap_or_else(|| panic!("a line for the check: {out}"));
    assert!(line.contains('✗'), "{line}");
    assert!(
        line.contains("SSH from your computer does not reach target."),
        "the lab's message first: {line}"
    );
    assert!(
        line.contains(&format!("blocked by network ACL {acl} inbound rule 90")),
        "names the rule: {line}"
    );
    // The same check as JSON, and the progress it recorded.
    let (_, out, _) = lab_cmd(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["results"][0]["status"], "fail");
    assert_eq!(v["passed"], false);
    let (code, out, _) = lab_cmd(&["status", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["steps"][0]["runs"], 2);
    assert_eq!(v["percent"], 0);
    assert!(state.path().join("labs/ann.jsonl").is_file());
}

//! Black-box tests of `vpclab lab`: every lab in `labs/` passes `vpclab lab test` (each
//! step's checks fail, its reference solution runs with the real aws CLI, its checks
//! pass, the lab ends at 100%), and a failing `reach` check names the rule that blocked
//! the packet, from the fabric's own decision path.
//!
//! Needs the real `aws` CLI (`scripts/install-test-deps`).

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::{Lab as _, Network, TestDaemon};

fn vpclab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpclab"))
}

fn labs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

/// Runs `vpclab lab test LAB --seeds 3` (issue 11: three learners, side by side) and
/// asserts every seed ends at 100%. One test per lab, so that nextest runs the labs in
/// parallel processes.
fn lab_passes(folder: &str) {
    const SEEDS: u32 = 3;
    let id = folder.split_once('-').map_or(folder, |(_, id)| id);
    let out = vpclab()
        .args(["lab", "test", id, "--seeds", &SEEDS.to_string(), "--labs"])
        .arg(labs_dir())
        .output()
        .expect("run vpclab lab test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for seed in 0..SEEDS {
        assert!(
            stdout.contains(&format!("✓ {folder} seed {seed}: 100%")),
            "{folder} seed {seed} passed: {stdout}"
        );
    }
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
fn lab_09_flow_logs_and_analyzer_passes_lab_test() {
    lab_passes("09-flow-logs-and-analyzer");
}

#[test]
fn lab_10_iam_least_privilege_passes_lab_test() {
    lab_passes("10-iam-least-privilege");
}

#[test]
fn lab_11_s3_static_website_passes_lab_test() {
    lab_passes("11-s3-static-website");
}

#[test]
fn lab_12_vpc_peering_passes_lab_test() {
    lab_passes("12-vpc-peering");
}

#[test]
fn lab_13_private_s3_endpoint_passes_lab_test() {
    lab_passes("13-private-s3-endpoint");
}

#[test]
fn lab_14_alb_and_asg_passes_lab_test() {
    lab_passes("14-alb-and-asg");
}

#[test]
fn lab_15_fargate_service_passes_lab_test() {
    lab_passes("15-fargate-service");
}

#[test]
fn the_curriculum_is_the_labs_in_order() {
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
            "09-flow-logs-and-analyzer",
            "10-iam-least-privilege",
            "11-s3-static-website",
            "12-vpc-peering",
            "13-private-s3-endpoint",
            "14-alb-and-asg",
            "15-fargate-service",
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
}

/// Writes a lab folder `dir` with one page and one no-op solution per step of `toml`.
fn write_lab(dir: &Path, toml: &str) {
    std::fs::create_dir_all(dir.join("steps")).expect("mkdir");
    std::fs::create_dir_all(dir.join("solution")).expect("mkdir");
    for line in toml.lines() {
        for key in ["body = \"", "solve = \""] {
            if let Some(rest) = line.strip_prefix(key) {
                let file = rest.trim_end_matches('"');
                std::fs::write(dir.join(file), "true\n").expect("write");
            }
        }
    }
    std::fs::write(dir.join("lab.toml"), toml).expect("write");
}

/// The `ssh`, `http` and `exec` kinds, each passing and failing, in one world.
const KINDS_LAB: &str = r#"
id = "kinds"
version = 1
title = "Kinds"
summary = "ssh, http, exec"

[[steps]]
id = "good"
title = "Everything works"
body = "steps/01-good.md"
solve = "solution/01-good.sh"

[[steps.checks]]
id = "ssh-in"
kind = "ssh"
to = "instance:web"
user = "ec2-user"
key = "lab-key.pem"
command = "cat /etc/os-release"
output = "Amazon Linux"

[[steps.checks]]
id = "page"
kind = "http"
to = "instance:web"
body = "Hello from the lab"
retry_seconds = 10

[[steps.checks]]
id = "web-out"
kind = "http"
from = "instance:web"
to = "internet:web"
body = "It works"

[[steps.checks]]
id = "page-from-anywhere"
kind = "http"
from = "internet"
to = "instance:web"
body = "Hello from the lab"

[[steps.checks]]
id = "httpd-active"
kind = "exec"
on = "instance:web"
command = "systemctl is-active httpd"
output = "^active"

[[steps]]
id = "bad"
title = "Everything fails"
body = "steps/02-bad.md"
solve = "solution/02-bad.sh"

[[steps.checks]]
id = "wrong-key"
kind = "ssh"
to = "instance:web"
user = "ec2-user"
key = "other-key.pem"

[[steps.checks]]
id = "wrong-user"
kind = "ssh"
to = "instance:web"
user = "ubuntu"
key = "lab-key.pem"

[[steps.checks]]
id = "no-key"
kind = "ssh"
to = "instance:web"
user = "ec2-user"
key = "missing.pem"

[[steps.checks]]
id = "missing-page"
kind = "http"
to = "instance:web"
path = "/missing.html"

[[steps.checks]]
id = "wrong-body"
kind = "http"
to = "instance:web"
body = "Goodbye"
fail = "The page should say goodbye."

[[steps.checks]]
id = "no-file"
kind = "exec"
on = "instance:web"
command = "test -f /etc/vpclab-nothing"

[[steps.checks]]
id = "no-match"
kind = "exec"
on = "instance:web"
command = "echo hello"
output = "^goodbye"
"#;

const WEB_USER_DATA: &str = "#!/bin/bash\nyum install -y httpd\nsystemctl start httpd\nsystemctl enable httpd\necho 'Hello from the lab' > /var/www/html/index.html\n";

#[test]
fn ssh_http_and_exec_checks_observe_the_world_and_say_why_they_fail() {
    support::require_aws();
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.key_pair("lab-key", "rsa");
    d.key_pair("other-key", "ed25519");
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0"), (80, "0.0.0.0/0")]);
    let ud = d.path("web.sh");
    std::fs::write(&ud, WEB_USER_DATA).expect("write user data");
    let ud_arg = format!("file://{}", ud.display());
    let (_, public, _) = net.launch(
        &d,
        &net.public_subnet,
        "lab-key",
        &sg,
        &[
            "--user-data",
            &ud_arg,
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Name,Value=web}]",
        ],
    );
    let labs = tempfile::tempdir().expect("tempdir");
    write_lab(&labs.path().join("kinds"), KINDS_LAB);
    let lab = |args: &[&str]| run_lab(&d, labs.path(), d.dir(), "ann", args);
    let (code, out) = lab(&["start", "kinds"]);
    assert_eq!(code, Some(0), "{out}");
    let check = |step: &str| -> serde_json::Value {
        let (_, out) = lab(&["check", step, "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("json ({e}): {out}"))
    };
    let message = |v: &serde_json::Value, id: &str| -> (String, String) {
        let r = v["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == id))
            .unwrap_or_else(|| panic!("a result for {id}: {v}"));
        (
            r["status"].as_str().unwrap_or("").to_string(),
            r["message"].as_str().unwrap_or("").to_string(),
        )
    };

    let good = check("good");
    for id in [
        "ssh-in",
        "page",
        "web-out",
        "page-from-anywhere",
        "httpd-active",
    ] {
        let (status, m) = message(&good, id);
        assert_eq!(status, "pass", "{id}: {m}");
    }
    assert!(
        message(&good, "ssh-in")
            .1
            .contains(&format!("ec2-user@{public}"))
    );

    let bad = check("bad");
    let expect = |id: &str, needle: &str| {
        let (status, m) = message(&bad, id);
        assert_eq!(status, "fail", "{id}: {m}");
        assert!(m.contains(needle), "{id}: {m:?} should contain {needle:?}");
    };
    let dir = d.dir().display().to_string();
    expect(
        "wrong-key",
        &format!("the key {dir}/other-key.pem was refused for user ec2-user"),
    );
    expect(
        "wrong-user",
        &format!("the key {dir}/lab-key.pem was refused for user ubuntu"),
    );
    expect(
        "no-key",
        &format!("your key file {dir}/missing.pem does not exist"),
    );
    expect("missing-page", "status 404 Not Found, expected 200");
    expect("wrong-body", "The page should say goodbye. (GET http://");
    expect(
        "wrong-body",
        "does not match /Goodbye/ (it begins \"Hello from the lab\")",
    );
    expect(
        "no-file",
        "on web: \"test -f /etc/vpclab-nothing\" exited with 1, expected 0",
    );
    expect(
        "no-match",
        "printed \"hello\", which does not match /^goodbye/",
    );

    // A network ACL entry that denies SSH and HTTP: the checks name it.
    let acl = d.aws_text(&[
        "describe-network-acls",
        "--filters",
        &format!("Name=association.subnet-id,Values={}", net.public_subnet),
        "--query",
        "NetworkAcls[0].NetworkAclId",
    ]);
    for (rule, port) in [("90", "22"), ("91", "80")] {
        d.aws_text(&[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--ingress",
            "--rule-number",
            rule,
            "--protocol",
            "tcp",
            "--port-range",
            &format!("From={port},To={port}"),
            "--cidr-block",
            "0.0.0.0/0",
            "--rule-action",
            "deny",
        ]);
    }
    let blocked = check("good");
    let (status, m) = message(&blocked, "ssh-in");
    assert_eq!(status, "fail", "{m}");
    assert!(
        m.contains(&format!(
            "tcp/22 to {public} from your computer: blocked by network ACL {acl} inbound rule 90"
        )),
        "{m}"
    );
    // The page's check retries for 10 s before failing: the reason is the same rule.
    let (status, m) = message(&blocked, "page");
    assert_eq!(status, "fail", "{m}");
    assert!(
        m.contains(&format!("network ACL {acl} inbound rule 91")),
        "{m}"
    );
    // From inside, to the internet, nothing changed (the entries are inbound only and the
    // reply's port is ephemeral).
    assert_eq!(message(&blocked, "web-out").0, "pass");
}

/// A two-step lab graded by files in the learner's folder (no AWS needed), in `mode`.
fn file_lab(dir: &Path, id: &str, mode: &str) {
    write_lab(
        dir,
        &format!(
            r#"
id = "{id}"
version = 1
title = "Files"
summary = "files"

[scoring]
mode = "{mode}"

[[steps]]
id = "one"
title = "One"
body = "steps/01-one.md"
solve = "solution/01-one.sh"

[[steps.checks]]
id = "one-exists"
kind = "file"
path = "one.txt"
points = 2

[[steps.hints]]
text = "Create one.txt."

[[steps]]
id = "two"
title = "Two"
body = "steps/02-two.md"
solve = "solution/02-two.sh"

[[steps.checks]]
id = "two-exists"
kind = "file"
path = "two.txt"
"#
        ),
    );
    std::fs::write(dir.join("solution/01-one.sh"), "touch one.txt\n").expect("write");
    std::fs::write(dir.join("solution/02-two.sh"), "touch two.txt\n").expect("write");
}

#[test]
fn skip_runs_the_solution_for_no_points_in_practice_and_assessed_mode_refuses_help() {
    let d = TestDaemon::start();
    let labs = tempfile::tempdir().expect("tempdir");
    file_lab(&labs.path().join("practice"), "practice", "practice");
    file_lab(&labs.path().join("exam"), "exam", "assessed");
    let work = tempfile::tempdir().expect("tempdir");
    let lab = |learner: &str, args: &[&str]| -> (Option<i32>, String) {
        let mut cmd = vpclab();
        d.env(&mut cmd);
        let out = cmd
            .arg("lab")
            .args(args)
            .args(["--learner", learner, "--endpoint", &d.url(), "--labs"])
            .arg(labs.path())
            .current_dir(work.path())
            .output()
            .expect("run vpclab lab");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // Practice: the step page offers the solution; skip runs it and checks the step.
    let (code, out) = lab("ann", &["start", "practice", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["step"]["solve"].is_string(), "{v}");
    let (code, out) = lab("ann", &["skip"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("skipped step one"), "{out}");
    assert!(out.contains("✓ one-exists"), "{out}");
    assert!(work.path().join("one.txt").is_file(), "the solution ran");
    let (_, out) = lab("ann", &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["steps"][0]["state"], "skipped", "{v}");
    assert_eq!(v["steps"][0]["points"], 0, "a skipped step earns nothing");
    assert_eq!(v["steps"][1]["state"], "current");
    std::fs::write(work.path().join("two.txt"), "").expect("write");
    let (code, out) = lab("ann", &["check", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["completed"], true);
    assert_eq!(
        (v["points"].as_u64(), v["max_points"].as_u64()),
        (Some(1), Some(3))
    );

    // Assessed: no solution shown, no hints, no skipping.
    std::fs::remove_file(work.path().join("one.txt")).expect("rm");
    let (code, out) = lab("bob", &["start", "exam", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["step"].get("solve").is_none(), "no solution shown: {v}");
    assert_eq!(v["mode"], "assessed");
    let (code, out) = lab("bob", &["hint"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("this lab is assessed: no hints"), "{out}");
    let (code, out) = lab("bob", &["skip"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("this lab is assessed: steps cannot be skipped"),
        "{out}"
    );
    assert!(!work.path().join("one.txt").exists(), "no solution ran");
}

/// `vpclab lab ARGS --learner LEARNER` against `d`, in `cwd`: exit code and output.
fn run_lab(
    d: &TestDaemon,
    labs: &Path,
    cwd: &Path,
    learner: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    let mut cmd = vpclab();
    d.env(&mut cmd);
    let out = cmd
        .arg("lab")
        .args(args)
        .args(["--learner", learner, "--endpoint", &d.url(), "--labs"])
        .arg(labs)
        .current_dir(cwd)
        .output()
        .expect("run vpclab lab");
    outcome(&out)
}

/// A command's exit code and its standard output and error, together.
fn outcome(out: &std::process::Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn progress_is_stored_with_the_world_and_survives_a_restart() {
    let mut d = TestDaemon::start();
    let labs = tempfile::tempdir().expect("tempdir");
    file_lab(&labs.path().join("practice"), "practice", "practice");
    let work = tempfile::tempdir().expect("tempdir");
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["start", "practice"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["check"]);
    assert_eq!(code, Some(1), "{out}");
    std::fs::write(work.path().join("one.txt"), "").expect("write");
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["check"]);
    assert_eq!(code, Some(0), "{out}");
    d.stop();
    d.launch();
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["status", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["steps"][0]["runs"], 2, "{v}");
    assert_eq!(v["steps"][0]["state"], "done");
    assert_eq!(v["points"], 2);
    // In the state database, beside the world; no files of its own.
    assert!(!d.state_dir().join("labs").exists());
    let db = rusqlite::Connection::open(d.state_dir().join("state.db")).expect("open");
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM journal WHERE stream = 'lab:ann'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 3, "a start and two check runs");
}

const FIXIT_LAB: &str = r#"
id = "fixit"
version = 1
title = "Fix it"
summary = "a VPC, then its route to the internet"

[[steps]]
id = "vpc"
title = "The VPC"
body = "steps/01-vpc.md"
solve = "solution/01-vpc.sh"

[[steps.checks]]
id = "vpc-exists"
kind = "resource"
type = "vpc"
filters = { "tag:Name" = "fix-vpc" }

[[steps]]
id = "route"
title = "The route out"
body = "steps/02-route.md"
solve = "solution/02-route.sh"

[[steps.checks]]
id = "default-route"
kind = "route"
subnet = "fix-a"
destination = "0.0.0.0/0"
target = "igw"
points = 3
"#;

#[test]
fn grade_reruns_a_report_in_a_scratch_world_and_refuses_one_that_does_not_verify() {
    support::require_aws();
    let d = TestDaemon::start();
    let labs = tempfile::tempdir().expect("tempdir");
    write_lab(&labs.path().join("fixit"), FIXIT_LAB);
    let work = tempfile::tempdir().expect("tempdir");
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["start", "fixit"]);
    assert_eq!(code, Some(0), "{out}");
    // The learner's work: a VPC, a subnet, an internet gateway and the default route.
    let vpc = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.9.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=fix-vpc}]",
        "--query",
        "Vpc.VpcId",
    ]);
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["check"]);
    assert_eq!(code, Some(0), "{out}");
    d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.9.1.0/24",
        "--tag-specifications",
        "ResourceType=subnet,Tags=[{Key=Name,Value=fix-a}]",
        "--query",
        "Subnet.SubnetId",
    ]);
    let igw = d.aws_text(&[
        "create-internet-gateway",
        "--query",
        "InternetGateway.InternetGatewayId",
    ]);
    d.aws_text(&[
        "attach-internet-gateway",
        "--internet-gateway-id",
        &igw,
        "--vpc-id",
        &vpc,
    ]);
    let rtb = d.aws_text(&[
        "describe-route-tables",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--query",
        "RouteTables[0].RouteTableId",
    ]);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &rtb,
        "--destination-cidr-block",
        "0.0.0.0/0",
        "--gateway-id",
        &igw,
    ]);
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Lab complete."), "{out}");
    let report = work.path().join("ann.report.json");
    let (code, out) = run_lab(
        &d,
        labs.path(),
        work.path(),
        "ann",
        &["report", "--out", &report.to_string_lossy()],
    );
    assert_eq!(code, Some(0), "{out}");

    let grade = |files: &[&Path], extra: &[&str]| grade(labs.path(), files, extra);
    // As handed in: both steps re-run in the scratch world and pass.
    let key = d.state_dir().join("report-key");
    let (code, out) = grade(&[&report], &["--json", "--trust", &key.to_string_lossy()]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["points"], 4, "{v}");
    assert_eq!(v[0]["percent"], 100);
    assert_eq!(v[0]["steps"][1]["checks"][0]["source"], "re-run");

    // The final state edited to re-break the route, re-signed with the same key (so the
    // signature holds): the re-run finds the step failed, whatever the log claims.
    let text = std::fs::read_to_string(&report).expect("read");
    let mut r: serde_json::Value = serde_json::from_str(&text).expect("json");
    for row in r["body"]["state"].as_array_mut().expect("state") {
        if row["kind"] == "route_table" && row["id"] == rtb.as_str() {
            row["body"]["routes"]
                .as_array_mut()
                .expect("routes")
                .retain(|route| route["target"].get("Gateway").is_none());
        }
    }
    let secret = vpclab::lab::report::load_or_create_key(&key).expect("the state's key");
    let resigned = vpclab::lab::report::sign_value(r["body"].take(), &secret).expect("sign");
    let edited = work.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_string(&resigned).expect("json")).expect("write");
    let (code, out) = grade(&[&edited], &["--csv"]);
    assert_eq!(code, Some(0), "{out}");
    let line = out.lines().nth(1).unwrap_or_default();
    assert!(
        line.contains(",ann,fixit,1,") && line.contains(",1,4,25,false,4,route,"),
        "1 of 4 points, 4 claimed, step route failed: {out}"
    );

    // One byte flipped in the handed-in file: refused, with the reason.
    let flipped = work.path().join("flipped.json");
    std::fs::write(&flipped, text.replacen("fix-vpc", "fix-vpd", 1)).expect("write");
    let (code, out) = grade(&[&report, &flipped], &[]);
    assert_eq!(code, Some(1), "a refused report fails the run: {out}");
    assert!(
        out.contains(
            "refused: the signature does not verify: the report was changed after it was signed"
        ),
        "{out}"
    );
    assert!(
        out.contains("4/4"),
        "the good report is still graded: {out}"
    );
}

const SEEDED_LAB: &str = r#"
id = "seeded"
version = 1
title = "Seeded"
summary = "parameters per learner"

[params.name]
pattern = "file-####"

[params.block]
cidr = { within = "10.0.0.0/8", prefix = 16 }

[[steps]]
id = "make"
title = "Make {{name}}.txt"
body = "steps/01-make.md"
solve = "solution/01-make.sh"

[[steps.checks]]
id = "made"
kind = "file"
path = "{{name}}.txt"
"#;

#[test]
fn lab_test_gives_the_same_results_for_a_seed_and_different_parameters_across_seeds() {
    let labs = tempfile::tempdir().expect("tempdir");
    let dir = labs.path().join("seeded");
    write_lab(&dir, SEEDED_LAB);
    std::fs::write(dir.join("solution/01-make.sh"), "touch \"$LAB_NAME.txt\"\n").expect("write");
    let run = |json: bool| -> (Option<i32>, String) {
        let mut cmd = vpclab();
        cmd.args(["lab", "test", "--seeds", "2", "--labs"])
            .arg(labs.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run vpclab lab test");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = run(false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("✓ seeded seed 1: 100% in "), "{text}");
    assert!(
        text.contains("seeded: 2 seed(s) in "),
        "time per lab: {text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour when piped: {text:?}");
    let transcript = || -> Vec<serde_json::Value> {
        let (code, out) = run(true);
        assert_eq!(code, Some(0), "{out}");
        let mut v: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
        for row in &mut v {
            row.as_object_mut().expect("object").remove("seconds");
        }
        v
    };
    let first = transcript();
    assert_eq!(first, transcript(), "the same seeds give the same results");
    assert_eq!(first.len(), 2);
    assert_ne!(
        first[0]["params"], first[1]["params"],
        "two seeds draw different parameters"
    );
    assert_eq!(first[0]["steps"][0]["before"][0]["status"], "fail");
    assert_eq!(first[0]["steps"][0]["after"][0]["status"], "pass");
}

/// Runs `lab test` on a copy of a lab whose solution `script` is replaced by `broken`,
/// and returns what it printed: the self-test must fail.
fn broken_variant(folder: &str, script: &str, broken: &str) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join(folder);
    let status = Command::new("cp")
        .arg("-r")
        .arg(labs_dir().join(folder))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let path = copy.join("solution").join(script);
    std::fs::write(
        &path,
        format!("#!/usr/bin/env bash\nset -euo pipefail\n{broken}\n"),
    )
    .expect("write the broken solution");
    let id = folder.split_once('-').map_or(folder, |(_, id)| id);
    let out = vpclab()
        .args(["lab", "test", id, "--labs"])
        .arg(tmp.path())
        .output()
        .expect("run vpclab lab test");
    assert!(!out.status.success(), "the broken variant must fail");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Issue 15: the least-privilege lab refuses the usual shortcuts — a broad managed
/// policy reads the payroll bucket too; `s3:*` on the bucket allows writing.
#[test]
fn lab_10_refuses_a_read_only_managed_policy_and_a_wildcard_policy() {
    let out = broken_variant(
        "10-iam-least-privilege",
        "02-policy.sh",
        r#"aws iam attach-user-policy --user-name "$LAB_USER" --policy-arn arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"#,
    );
    assert!(out.contains("nothing-more"), "{out}");
    assert!(out.contains("payroll-"), "the other bucket is named: {out}");
    let out = broken_variant(
        "10-iam-least-privilege",
        "02-policy.sh",
        r#"cat > p.json <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::$LAB_BUCKET","arn:aws:s3:::$LAB_BUCKET/*"]}]}
JSON
ARN=$(aws iam create-policy --policy-name wide --policy-document file://p.json --query Policy.Arn --output text)
aws iam attach-user-policy --user-name "$LAB_USER" --policy-arn "$ARN""#,
    );
    assert!(out.contains("nothing-more"), "{out}");
    assert!(out.contains("is allowed s3:PutObject"), "{out}");
}

/// Issue 15: the website lab's site stays private when the policy names the bucket
/// instead of its objects.
#[test]
fn lab_11_refuses_a_policy_on_the_bucket_instead_of_its_objects() {
    let out = broken_variant(
        "11-s3-static-website",
        "02-public.sh",
        r#"aws s3api delete-public-access-block --bucket "$LAB_BUCKET"
aws s3api put-bucket-policy --bucket "$LAB_BUCKET" --policy "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$LAB_BUCKET\"}]}""#,
    );
    assert!(out.contains("home-page"), "{out}");
    assert!(out.contains("403"), "the status seen is quoted: {out}");
}

/// A step graded inside an instance: a file and a service the learner sets up by hand.
const HANDWORK_LAB: &str = r#"
id = "handwork"
version = 1
title = "By hand"
summary = "a file and a service set up over SSH"

[[steps]]
id = "by-hand"
title = "Set the box up by hand"
body = "steps/01-by-hand.md"
solve = "solution/01-by-hand.sh"

[[steps.checks]]
id = "note"
kind = "exec"
on = "instance:box"
command = "cat /home/ec2-user/handmade.txt"
output = "^made by hand"
retry_seconds = 15

[[steps.checks]]
id = "httpd-running"
kind = "exec"
on = "instance:box"
command = "systemctl is-active httpd"
output = "^active"
retry_seconds = 15
"#;

/// `vpclab grade FILES… EXTRA --labs LABS`: exit code and output.
fn grade(labs: &Path, files: &[&Path], extra: &[&str]) -> (Option<i32>, String) {
    let out = vpclab()
        .arg("grade")
        .args(files)
        .args(extra)
        .arg("--labs")
        .arg(labs)
        .output()
        .expect("run vpclab grade");
    outcome(&out)
}

/// Issue 11: work done inside an instance (a file written and a package installed and
/// started over SSH, nothing through the API) travels in the signed report, and the
/// re-grade's scratch world boots the instance with it; the file edited and re-signed
/// fails that check; a flipped byte of it is refused.
#[test]
fn issue11_work_done_by_hand_inside_an_instance_is_regraded_from_the_report() {
    use base64::Engine as _;
    support::require_aws();
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let key = d.key_pair("lab-key", "ed25519");
    let sg = net.security_group(&d, "box", &[(22, "0.0.0.0/0")]);
    let (id, public, _) = net.launch(
        &d,
        &net.public_subnet,
        "lab-key",
        &sg,
        &[
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Name,Value=box}]",
        ],
    );
    let out = d.ssh(
        &key,
        "ec2-user",
        &public,
        "echo 'made by hand' > handmade.txt && sudo dnf install -y httpd && sudo systemctl start httpd",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let labs = tempfile::tempdir().expect("tempdir");
    write_lab(&labs.path().join("handwork"), HANDWORK_LAB);
    let work = tempfile::tempdir().expect("tempdir");
    let lab = |args: &[&str]| run_lab(&d, labs.path(), work.path(), "ann", args);
    let (code, out) = lab(&["start", "handwork"]);
    assert_eq!(code, Some(0), "{out}");
    // The checks see the work inside the instance (in a sandbox: through its agent).
    let (code, out) = lab(&["check"]);
    assert_eq!(code, Some(0), "{out}");
    let report = work.path().join("ann.report.json");
    let (code, out) = lab(&["report", "--out", &report.to_string_lossy()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 instance disks"), "{out}");

    let trust = d.state_dir().join("report-key");
    let trust = trust.to_string_lossy();
    let (code, out) = grade(labs.path(), &[&report], &["--json", "--trust", &trust]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["percent"], 100, "re-run in the scratch world: {v}");
    for c in v[0]["steps"][0]["checks"].as_array().expect("checks") {
        assert_eq!(c["source"], "re-run", "{c}");
    }

    // The file's content edited in the report, its hash recomputed, re-signed with the
    // same key: the note check fails in the re-run, the service still runs.
    let text = std::fs::read_to_string(&report).expect("read");
    let mut r: serde_json::Value = serde_json::from_str(&text).expect("json");
    let row = &mut r["body"]["instances"][0];
    assert_eq!(row["instance_id"], id.as_str());
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = &mut row["disk"]["nodes"]["/home/ec2-user/handmade.txt"]["kind"]["File"];
    assert_eq!(file.as_str(), Some(b64.encode("made by hand\n").as_str()));
    *file = b64.encode("edited afterwards\n").into();
    let disk: vpclab::instance::overlay::DiskOverlay =
        serde_json::from_value(row["disk"].clone()).expect("overlay");
    row["sha256"] = disk.digest().into();
    let secret = vpclab::lab::report::load_or_create_key(&d.state_dir().join("report-key"))
        .expect("the state's key");
    let resigned = vpclab::lab::report::sign_value(r["body"].take(), &secret).expect("sign");
    let edited = work.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_string(&resigned).expect("json")).expect("write");
    let (code, out) = grade(labs.path(), &[&edited], &["--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let checks = &v[0]["steps"][0]["checks"];
    assert_eq!(checks[0]["id"], "note");
    assert_eq!(checks[0]["status"], "fail", "{v}");
    assert!(
        checks[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("edited afterwards")),
        "the re-run read the edited file: {v}"
    );
    assert_eq!(checks[1]["status"], "pass", "{v}");
    assert_eq!(v[0]["percent"], 50);

    // One byte of the instance's file flipped in the handed-in report: refused.
    let flipped = work.path().join("flipped.json");
    let original = b64.encode("made by hand\n");
    let changed = b64.encode("made by hanD\n");
    assert!(text.contains(&original));
    std::fs::write(&flipped, text.replacen(&original, &changed, 1)).expect("write");
    let (code, out) = grade(labs.path(), &[&flipped], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "refused: the signature does not verify: the report was changed after it was signed"
        ),
        "{out}"
    );
}

/// Issue 11: time per step, from the progress log's event times, as `vpclab lab status`
/// (text and JSON), the signed report and `vpclab grade` (table, CSV, JSON) show it.
/// The events are written with known times while the daemon is stopped.
#[test]
fn issue11_time_per_step_is_shown_in_status_report_and_grade() {
    use vpclab::lab::progress::{EventKind, Log};
    let mut d = TestDaemon::start();
    let labs = tempfile::tempdir().expect("tempdir");
    let dir = labs.path().join("practice");
    file_lab(&dir, "practice", "practice");
    let work = tempfile::tempdir().expect("tempdir");
    let (code, out) = run_lab(&d, labs.path(), work.path(), "ann", &["start", "practice"]);
    assert_eq!(code, Some(0), "{out}");
    d.stop();
    {
        // A new attempt at known times: step one done 90 s after the start (a failed run
        // on the way), step two 45 s after that.
        let paths = vpclab::daemon::StateDir::new(d.state_dir()).store();
        let control = std::sync::Arc::new(std::sync::Mutex::new(
            vpclab::model::Control::open(&paths).expect("open the store"),
        ));
        let log = Log::new(control, "ann");
        let t0: i64 = 1_700_000_000_000;
        let check = |id: &str, status: &str, points: u32| serde_json::json!({"results": [{"id": id, "status": status, "points": points}]});
        let dir = dir.canonicalize().expect("dir");
        for (at, kind, step, detail) in [
            (
                t0,
                EventKind::Start,
                None,
                serde_json::json!({"dir": dir, "region": "us-east-1", "version": 1}),
            ),
            (
                t0 + 30_000,
                EventKind::Check,
                Some("one"),
                check("one-exists", "fail", 0),
            ),
            (
                t0 + 90_000,
                EventKind::Check,
                Some("one"),
                check("one-exists", "pass", 2),
            ),
            (
                t0 + 135_000,
                EventKind::Check,
                Some("two"),
                check("two-exists", "pass", 1),
            ),
            (
                t0 + 135_000,
                EventKind::Complete,
                None,
                serde_json::json!({}),
            ),
        ] {
            log.append(at, "ann", "practice", kind, step, detail)
                .expect("append");
        }
    }
    d.launch();
    let lab = |args: &[&str]| run_lab(&d, labs.path(), work.path(), "ann", args);
    let (code, out) = lab(&["status", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["steps"][0]["seconds"], 90, "{v}");
    assert_eq!(v["steps"][1]["seconds"], 45, "{v}");
    assert_eq!(v["seconds"], 135);
    let (code, out) = lab(&["status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1m30s") && out.contains("45s"), "{out}");
    assert!(out.contains("time 2m15s"), "{out}");
    // `vpclab lab list` shows the learner's progress in each lab.
    let (code, out) = lab(&["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["progress"]["percent"], 100, "{v}");
    assert_eq!(v[0]["progress"]["completed"], true, "{v}");

    let report = work.path().join("ann.report.json");
    let (code, out) = lab(&["report", "--out", &report.to_string_lossy()]);
    assert_eq!(code, Some(0), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("read")).expect("json");
    let times = &r["body"]["step_times"];
    assert_eq!(times[0]["step"], "one");
    assert_eq!(times[0]["spent_ms"], 90_000, "{times}");
    assert_eq!(times[1]["spent_ms"], 45_000, "{times}");

    let (code, out) = grade(labs.path(), &[&report], &["--csv"]);
    assert_eq!(code, Some(0), "{out}");
    let line = out.lines().nth(1).unwrap_or_default();
    assert!(line.ends_with(",135,one=90 two=45,"), "{out}");
    let (code, out) = grade(labs.path(), &[&report], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("one (1m30s)") && out.contains("two (45s)"),
        "{out}"
    );
    let (_, out) = grade(labs.path(), &[&report], &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["seconds"], 135);
    assert_eq!(v[0]["steps"][1]["seconds"], 45);
}

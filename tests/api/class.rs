//! The classroom (issue 13): `vpclab class init` from a roster, `vpclab up --class`
//! serving two learners from one daemon, each in their own world; the instructor's
//! dashboard showing exactly each learner's progress; the gradebook CSV agreeing with
//! `vpclab grade` on the exported archive of signed reports.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{self, Lab, ProcessDaemon, VPCLAB, stderr, stdout};

pub(super) fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

pub(super) fn vpclab(args: &[&str]) -> Output {
    Command::new(VPCLAB)
        .args(args)
        .env_remove("VPCLAB_STATE_DIR")
        .env_remove("VPCLAB_COURSE_SECRET")
        .output()
        .expect("run vpclab")
}

/// A learner's (or the instructor's) credentials from `vpclab class credentials`.
pub(super) struct Creds {
    pub(super) key: String,
    pub(super) secret: String,
    pub(super) learner: Option<String>,
}

pub(super) fn credentials(course: &Path, who: &str, endpoint: &str) -> Creds {
    credentials_with(course, who, endpoint, &[])
}

/// [`credentials`] with more arguments (`--database URL`).
pub(super) fn credentials_with(course: &Path, who: &str, endpoint: &str, extra: &[&str]) -> Creds {
    let c = course.to_string_lossy();
    let mut args = vec!["class", "credentials", &c, who, "--endpoint", endpoint];
    args.extend_from_slice(extra);
    let out = vpclab(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let export = text
        .lines()
        .find(|l| l.starts_with("export "))
        .expect("an export line");
    let vars: BTreeMap<&str, &str> = export
        .trim_start_matches("export ")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(vars["AWS_ENDPOINT_URL"], endpoint);
    assert!(
        text.contains(&format!("vpclab ssh-config --endpoint {endpoint}")),
        "{text}"
    );
    Creds {
        key: vars["AWS_ACCESS_KEY_ID"].to_string(),
        secret: vars["AWS_SECRET_ACCESS_KEY"].to_string(),
        learner: vars.get("VPCLAB_LEARNER").map(|s| (*s).to_string()),
    }
}

/// A command in a learner's shell: the test environment with their keys.
pub(super) fn as_learner(d: &dyn Lab, c: &Creds, program: &str) -> Command {
    let mut cmd = Command::new(program);
    d.env(&mut cmd);
    cmd.env("AWS_ACCESS_KEY_ID", &c.key)
        .env("AWS_SECRET_ACCESS_KEY", &c.secret)
        .env("VPCLAB_ENDPOINT", d.url())
        .env_remove("VPCLAB_COURSE_SECRET")
        .env_remove("VPCLAB_LABS");
    if let Some(l) = &c.learner {
        cmd.env("VPCLAB_LEARNER", l);
    }
    cmd
}

pub(super) fn lab_json(d: &dyn Lab, c: &Creds, args: &[&str]) -> Result<serde_json::Value, String> {
    let mut cmd = as_learner(d, c, VPCLAB);
    cmd.arg("lab").args(args).arg("--json");
    cmd.arg("--labs").arg(labs_dir());
    let out = cmd.output().expect("vpclab lab");
    if !out.status.success() {
        return Err(stderr(&out));
    }
    Ok(serde_json::from_slice(&out.stdout).expect("lab json"))
}

/// Runs every step of custom-vpc as the learner: its solution, then its check.
pub(super) fn complete_custom_vpc(d: &dyn Lab, c: &Creds, fail_first: bool) {
    let started = lab_json(d, c, &["start", "custom-vpc"]).expect("start");
    let params = started["params"].clone();
    let work = tempfile::tempdir().expect("work dir");
    let lab_dir = labs_dir().join("03-custom-vpc");
    let mut steps: Vec<PathBuf> = std::fs::read_dir(lab_dir.join("solution"))
        .expect("solutions")
        .map(|e| e.expect("entry").path())
        .collect();
    steps.sort();
    if fail_first {
        let r = lab_json(d, c, &["check"]).expect("check");
        assert_eq!(r["passed"], false, "{r}");
    }
    for (i, script) in steps.iter().enumerate() {
        let mut cmd = as_learner(d, c, "bash");
        cmd.arg(script).current_dir(work.path());
        let bin_dir = Path::new(VPCLAB).parent().expect("bin dir");
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        for (k, v) in params.as_object().into_iter().flatten() {
            cmd.env(
                format!("LAB_{}", k.to_ascii_uppercase()),
                v.as_str().unwrap_or_default(),
            );
        }
        let out = cmd.output().expect("bash");
        assert!(
            out.status.success(),
            "{}: {}{}",
            script.display(),
            stdout(&out),
            stderr(&out)
        );
        let r = lab_json(d, c, &["check", &(i + 1).to_string()]).expect("check");
        assert_eq!(r["passed"], true, "step {}: {r}", i + 1);
    }
}

fn http(port: u16, head: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        s,
        "{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

pub(super) fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Signs in to the console; the session cookie, or the login page's status line.
pub(super) fn login(port: u16, user: &str, secret: &str) -> Result<String, String> {
    let r = http(
        port,
        "POST /console/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form_encode(&[("access_key", user), ("secret_key", secret)]),
    );
    r.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case("set-cookie").then_some(v)
        })
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| r.lines().next().unwrap_or_default().to_string())
}

pub(super) fn get(port: u16, path: &str, cookie: &str) -> String {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nAccept: text/html\r\nCookie: {cookie}"),
        "",
    )
}

/// The one-time passwords `vpclab class init` printed, by learner (and `instructor`).
pub(super) fn passwords(init_out: &str) -> BTreeMap<String, String> {
    init_out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, pw) = (w.next()?, w.next()?);
            (pw.len() == 19 && pw.matches('-').count() == 3).then(|| (name.into(), pw.into()))
        })
        .collect()
}

#[test]
fn a_roster_or_course_file_with_a_mistake_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.csv");
    std::fs::write(&roster, "learner,name\nann,Ann\nbob smith,Bob\n").expect("roster");
    let course = dir.path().join("course");
    let out = vpclab(&[
        "class",
        "init",
        &course.to_string_lossy(),
        "--labs",
        "custom-vpc",
        "--learners",
        &roster.to_string_lossy(),
        "--labs-dir",
        &labs_dir().to_string_lossy(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:3: column `learner`", roster.display())),
        "{err}"
    );
    assert!(!course.join("course.toml").exists(), "nothing half-made");

    std::fs::write(&roster, "ann\n").expect("roster");
    let out = vpclab(&[
        "class",
        "init",
        &course.to_string_lossy(),
        "--labs",
        "custom-vpc",
        "--learners",
        &roster.to_string_lossy(),
        "--labs-dir",
        &labs_dir().to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A misspelt key in course.toml.
    let file = course.join("course.toml");
    let text = std::fs::read_to_string(&file).expect("course.toml");
    std::fs::write(&file, text.replace("stuck_minutes", "stuck_minuts")).expect("write");
    let out = vpclab(&["class", "list", &course.to_string_lossy()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("course.toml"), "{err}");
    assert!(err.contains("line"), "{err}");
    assert!(err.contains("stuck_minuts"), "{err}");
}

#[test]
fn two_learners_in_one_daemon_stay_apart_and_the_dashboard_and_grades_show_each_one() {
    support::require_aws();
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.csv");
    std::fs::write(&roster, "learner,name\nann,Ann Lee\nbob,Bob Roy\n").expect("roster");
    let course = dir.path().join("course");
    let out = vpclab(&[
        "class",
        "init",
        &course.to_string_lossy(),
        "--labs",
        "custom-vpc",
        "--learners",
        &roster.to_string_lossy(),
        "--labs-dir",
        &labs_dir().to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pw = passwords(&stdout(&out));
    assert_eq!(pw.len(), 3, "{}", stdout(&out));

    let d = ProcessDaemon::start_with(&["--class", &course.to_string_lossy()]);
    let port = d.api_port();
    let ann = credentials(&course, "ann", &d.url());
    let bob = credentials(&course, "bob", &d.url());
    let teacher = credentials(&course, "instructor", &d.url());
    assert_eq!(ann.learner.as_deref(), Some("ann"));
    assert_ne!(ann.key, bob.key);

    // Unknown keys are refused as AWS refuses them.
    let out = d.aws_as(
        "us-east-1",
        ("AKIAUNKNOWN000000000", "x"),
        &["describe-vpcs"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("AuthFailure"), "{}", stderr(&out));
    // Ann's key id with Bob's secret: the signature does not verify.
    let out = d.aws_as("us-east-1", (&ann.key, &bob.secret), &["describe-vpcs"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );

    complete_custom_vpc(&d, &ann, false);
    complete_custom_vpc(&d, &bob, true);

    // Worlds: Ann's key does not see Bob's VPC, nor can it delete it.
    let bob_vpcs = {
        let mut cmd = as_learner(&d, &bob, "aws");
        cmd.args([
            "ec2",
            "describe-vpcs",
            "--filters",
            "Name=tag:Name,Values=lab-vpc",
        ]);
        let out = cmd.output().expect("aws");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["Vpcs"].as_array().expect("vpcs").clone()
    };
    assert_eq!(bob_vpcs.len(), 1);
    let bob_vpc = support::s(&bob_vpcs[0]["VpcId"]);
    for args in [
        vec!["describe-vpcs", "--vpc-ids", bob_vpc.as_str()],
        vec!["delete-vpc", "--vpc-id", bob_vpc.as_str()],
    ] {
        let out = d.aws_as("us-east-1", (&ann.key, &ann.secret), &args);
        assert!(!out.status.success(), "{args:?} worked across worlds");
        assert!(
            stderr(&out).contains("InvalidVpcID.NotFound"),
            "{}",
            stderr(&out)
        );
    }
    // Ann cannot read or grade Bob's progress.
    let as_bob = Creds {
        key: ann.key.clone(),
        secret: ann.secret.clone(),
        learner: Some("bob".into()),
    };
    let err = lab_json(&d, &as_bob, &["status"]).expect_err("ann as bob");
    assert!(err.contains("UnauthorizedOperation"), "{err}");
    let err = lab_json(&d, &as_bob, &["check"]).expect_err("ann grades bob");
    assert!(err.contains("UnauthorizedOperation"), "{err}");

    // `vpclab connect` reaches only the caller's own world: Bob's instance answers Bob
    // on port 22 and does not exist for Ann.
    let run = |c: &Creds, args: &[&str]| -> serde_json::Value {
        let mut cmd = as_learner(&d, c, "aws");
        cmd.args(args);
        let out = cmd.output().expect("aws");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let sgs = run(
        &bob,
        &[
            "ec2",
            "describe-security-groups",
            "--filters",
            "Name=group-name,Values=default",
        ],
    );
    let default_vpc_sg = sgs["SecurityGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["VpcId"] != bob_vpc.as_str())
        .expect("the default VPC's group")["GroupId"]
        .clone();
    run(
        &bob,
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &support::s(&default_vpc_sg),
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    let images = run(
        &bob,
        &[
            "ec2",
            "describe-images",
            "--owners",
            "amazon",
            "--filters",
            "Name=name,Values=al2023-ami-*",
        ],
    );
    let ami = support::s(&images["Images"][0]["ImageId"]);
    let launched = run(
        &bob,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t2.micro",
            "--security-group-ids",
            &support::s(&default_vpc_sg),
        ],
    );
    let instance = support::s(&launched["Instances"][0]["InstanceId"]);
    let mut public_ip = String::new();
    for _ in 0..60 {
        let v = run(
            &bob,
            &["ec2", "describe-instances", "--instance-ids", &instance],
        );
        let i = &v["Reservations"][0]["Instances"][0];
        if i["State"]["Name"] == "running"
            && let Some(ip) = i["PublicIpAddress"].as_str()
        {
            public_ip = ip.to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!public_ip.is_empty(), "bob's instance has a public address");
    let connect = |c: &Creds| -> Output {
        let mut cmd = as_learner(&d, c, VPCLAB);
        cmd.args(["connect", "--timeout", "3", &public_ip, "22"])
            .stdin(std::process::Stdio::null());
        cmd.output().expect("vpclab connect")
    };
    let bobs = connect(&bob);
    assert!(
        String::from_utf8_lossy(&bobs.stdout).starts_with("SSH-2.0"),
        "bob reaches his instance: {}",
        stderr(&bobs)
    );
    let anns = connect(&ann);
    assert!(
        !String::from_utf8_lossy(&anns.stdout).contains("SSH-2.0"),
        "ann reached bob's instance"
    );

    // The dashboard: only for the instructor.
    let ann_cookie = login(port, "ann", &pw["ann"]).expect("ann signs in with her password");
    let r = get(port, "/console/class/", &ann_cookie);
    assert!(
        r.starts_with("HTTP/1.1 403"),
        "{}",
        r.lines().next().unwrap_or("")
    );
    assert!(login(port, "ann", "wrong-pass-word-0000").is_err());
    let cookie = login(port, &teacher.key, &teacher.secret).expect("instructor key");
    let cookie_pw = login(port, "instructor", &pw["instructor"]).expect("instructor password");
    let page = get(port, "/console/class/", &cookie_pw);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Ann Lee") && page.contains("Bob Roy"));

    let dash: serde_json::Value = serde_json::from_str(body_of(&get(
        port,
        "/console/class/dashboard.json",
        &cookie,
    )))
    .expect("dashboard json");
    let tiles = dash["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 2);
    for (t, who, account) in [
        (&tiles[0], "ann", "100000000001"),
        (&tiles[1], "bob", "100000000002"),
    ] {
        assert_eq!(t["learner"], who);
        assert_eq!(t["account"], account);
        assert_eq!(t["lab"], "custom-vpc");
        assert_eq!(t["completed"], true, "{t}");
        assert_eq!(t["percent"], 100, "{t}");
        assert_eq!(t["hints"], 0);
        assert_eq!(t["stuck"], serde_json::Value::Null);
    }
    // Ann never failed a check; Bob checked step 1 before doing it.
    assert_eq!(tiles[0]["last_failure"], serde_json::Value::Null);
    assert!(
        tiles[1]["last_failure"]
            .as_str()
            .is_some_and(|f| !f.is_empty()),
        "{}",
        tiles[1]
    );
    let lab = &dash["labs"][0];
    assert_eq!(lab["lab"], "custom-vpc");
    assert_eq!(lab["started"], 2);
    assert_eq!(lab["completed"], 2);
    assert_eq!(lab["histogram"][10], 2);
    let failing = lab["failing"].as_array().expect("failing");
    assert!(
        failing
            .iter()
            .all(|f| f[0].as_str().unwrap_or("").starts_with("vpc/")),
        "only bob's early check of step 1 failed: {failing:?}"
    );
    assert!(!failing.is_empty());
    let lab_page = get(port, "/console/class/lab/custom-vpc", &cookie);
    assert!(lab_page.contains("id=\"histogram\""), "{lab_page}");
    let learner_page = get(port, "/console/class/learner/bob", &cookie);
    assert!(learner_page.contains("Event log"), "{learner_page}");
    assert!(learner_page.contains("<svg"), "the VPC picture");

    // The gradebook and the archive of reports; `vpclab grade` agrees with the CSV.
    let csv = body_of(&get(port, "/console/class/scores.csv", &cookie)).to_string();
    let archive = body_of(&get(port, "/console/class/reports.json", &cookie)).to_string();
    let archive_file = dir.path().join("reports.json");
    std::fs::write(&archive_file, &archive).expect("archive");
    let v: serde_json::Value = serde_json::from_str(&archive).expect("archive json");
    assert_eq!(
        v["reports"].as_array().map(Vec::len),
        Some(2),
        "{}",
        v["errors"]
    );
    let out = vpclab(&[
        "grade",
        "--course",
        &course.to_string_lossy(),
        "--csv",
        &archive_file.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let graded = stdout(&out);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let points_col = header
        .iter()
        .position(|h| *h == "custom-vpc points")
        .expect("a points column");
    let mut from_csv = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        from_csv.insert(f[0].to_string(), f[points_col].to_string());
    }
    let mut gl = graded.lines();
    let gh: Vec<&str> = gl.next().expect("grade header").split(',').collect();
    let (li, pi) = (
        gh.iter().position(|h| *h == "learner").expect("learner"),
        gh.iter().position(|h| *h == "points").expect("points"),
    );
    let mut from_grade = BTreeMap::new();
    for l in gl {
        let f: Vec<&str> = l.split(',').collect();
        from_grade.insert(f[li].to_string(), f[pi].to_string());
    }
    assert_eq!(from_csv.len(), 2, "{csv}");
    assert_eq!(from_csv, from_grade, "CSV:\n{csv}\ngrade:\n{graded}");

    // A report archive from another course's key is refused.
    let other = dir.path().join("other");
    std::fs::write(&roster, "zed\n").expect("roster");
    let out = vpclab(&[
        "class",
        "init",
        &other.to_string_lossy(),
        "--labs",
        "custom-vpc",
        "--learners",
        &roster.to_string_lossy(),
        "--labs-dir",
        &labs_dir().to_string_lossy(),
    ]);
    assert!(out.status.success());
    let out = vpclab(&[
        "grade",
        "--course",
        &other.to_string_lossy(),
        "--csv",
        &archive_file.to_string_lossy(),
    ]);
    assert!(!out.status.success(), "another course's key accepted");
}

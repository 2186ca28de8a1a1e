//! A class in PostgreSQL (`--database postgres://…`, issue 13): the roster, progress
//! logs and gradebook in a real PostgreSQL server, the worlds in the state directory.
//!
//! The server is the one `scripts/test` starts (its URL in `VPCLAB_TEST_PG`), or else a
//! throwaway one from `scripts/pg-test-server` (Debian's `postgresql` binaries, a unix
//! socket in a temporary folder, no TCP port). Without the binaries the tests are
//! skipped, except in CI, where that fails them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use vpclab::class::Course;
use vpclab::class::dashboard::{self, Member};
use vpclab::lab::progress::{EventKind, Log};

use super::class::{
    body_of, complete_custom_vpc, credentials_with, get, labs_dir, login, passwords, vpclab,
};
use crate::support::{self, Lab, ProcessDaemon, stderr, stdout};

/// A PostgreSQL server for one test.
pub(super) struct Pg {
    pub url: String,
    /// The throwaway server's folder (stopped and removed on drop).
    dir: Option<String>,
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new("bash")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-test-server"))
                .args(["stop", dir])
                .output();
        }
    }
}

pub(super) fn pg() -> Option<Pg> {
    if let Some(url) = std::env::var("VPCLAB_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(Pg { url, dir: None });
    }
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-test-server"))
        .arg("start")
        .output()
        .expect("run scripts/pg-test-server");
    if out.status.code() == Some(2) {
        assert!(
            !support::in_ci(),
            "{} (CI=true: no test is skipped; bash scripts/install-test-deps installs it)",
            stderr(&out)
        );
        eprintln!("skipped: {}", stderr(&out));
        return None;
    }
    assert!(out.status.success(), "pg-test-server: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let dir = lines.next().expect("the server's folder").to_string();
    let url = lines.next().expect("the server's URL").to_string();
    Some(Pg {
        url,
        dir: Some(dir),
    })
}

fn members(c: &Course) -> Vec<Member> {
    c.learners()
        .expect("roster")
        .into_iter()
        .map(|l| Member {
            name: l.name,
            display: l.display,
            account: l.account,
        })
        .collect()
}

/// The dashboard as `/console/class/dashboard.json` serves it, and the gradebook CSV.
fn views(c: &Course, now_ms: i64) -> (Value, String) {
    let m = members(c);
    let d = dashboard::summarise(c, &m, &c.logs().expect("logs"), now_ms);
    let csv = dashboard::scores_csv(c, &m, &c.store.grades().expect("grades"));
    (serde_json::to_value(&d).expect("json"), csv)
}

/// A class's worth of events: Ann starts, fails the VPC check, takes a hint, passes it;
/// Bob fails the same check three runs in a row; Cy has not started.
fn play(c: &Course) {
    let lab_dir = c.labs["custom-vpc"].to_string_lossy().into_owned();
    let j = c.journal();
    let check = |ok: bool| {
        json!({"results": [{
            "id": "vpc-exists",
            "status": if ok { "pass" } else { "fail" },
            "points": u32::from(ok),
            "max_points": 1,
            "message": if ok { "ok" } else { "There is no VPC named lab-vpc" },
        }]})
    };
    let start = json!({"dir": lab_dir, "region": "us-east-1"});
    let ann = Log::on(j.clone(), "ann");
    let bob = Log::on(j, "bob");
    let lab = "custom-vpc";
    ann.append(1_000, "ann", lab, EventKind::Start, None, start.clone())
        .expect("append");
    bob.append(2_000, "bob", lab, EventKind::Start, None, start)
        .expect("append");
    ann.append(
        60_000,
        "ann",
        lab,
        EventKind::Check,
        Some("vpc"),
        check(false),
    )
    .expect("append");
    ann.append(
        70_000,
        "ann",
        lab,
        EventKind::Hint,
        Some("vpc"),
        json!({"hint": 0}),
    )
    .expect("append");
    for at in [80_000, 90_000, 100_000] {
        bob.append(at, "bob", lab, EventKind::Check, Some("vpc"), check(false))
            .expect("append");
    }
    ann.append(
        120_000,
        "ann",
        lab,
        EventKind::Check,
        Some("vpc"),
        check(true),
    )
    .expect("append");
}

fn roster(dir: &Path) -> PathBuf {
    let p = dir.join("roster.csv");
    std::fs::write(&p, "learner,name\nann,Ann Lee\nbob,Bob Roy\ncy\n").expect("roster");
    p
}

#[test]
fn the_same_events_in_sqlite_and_postgresql_give_the_same_dashboard_and_gradebook() {
    let Some(pg) = pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster(dir.path());
    let labs = ["custom-vpc".to_string()];
    let a_dir = dir.path().join("a");
    let (a, _, _) =
        Course::init(&a_dir, "net101", &labs_dir(), &labs, &[], &roster, None).expect("init");
    // The same course (same secret, same lab copies) with its store in PostgreSQL.
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).expect("mkdir");
    let toml = std::fs::read_to_string(a_dir.join("course.toml")).expect("course.toml");
    std::fs::write(
        b_dir.join("course.toml"),
        format!("storage = \"postgresql\"\n{toml}"),
    )
    .expect("write");
    std::os::unix::fs::symlink(a_dir.join("labs"), b_dir.join("labs")).expect("symlink");
    let b = Course::open(&b_dir, Some(&pg.url)).expect("open in PostgreSQL");
    assert!(b.store.describe().starts_with("PostgreSQL"), "{b:?}");
    for l in a.learners().expect("roster") {
        b.add_learner(&l.name, &l.display).expect("add");
    }

    play(&a);
    play(&b);
    let now = 5 * 60_000;
    let (a_dash, a_csv) = views(&a, now);
    let (b_dash, b_csv) = views(&b, now);
    assert_eq!(a_dash, b_dash);
    assert_eq!(a_csv, b_csv);
    // … and they say what happened.
    let tiles = a_dash["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 3);
    assert_eq!(tiles[0]["learner"], "ann");
    assert_eq!(tiles[0]["hints"], 1);
    assert_eq!(tiles[0]["step"], "subnets", "{a_dash}");
    assert_eq!(
        tiles[1]["stuck"], "check vpc-exists failed 3 runs in a row",
        "{a_dash}"
    );
    assert_eq!(tiles[2]["lab"], Value::Null);
    let lines: Vec<&str> = a_csv.lines().collect();
    assert_eq!(
        lines[0],
        "learner,name,account,custom-vpc points,custom-vpc max points,custom-vpc percent"
    );
    assert!(lines[1].starts_with("ann,Ann Lee,100000000001,"), "{a_csv}");
    assert!(!lines[1].ends_with(",,,"), "Ann has a grade: {a_csv}");
    assert!(
        lines[2].starts_with("bob,Bob Roy,100000000002,0,"),
        "{a_csv}"
    );
    assert_eq!(lines[3], "cy,cy,100000000003,,,", "{a_csv}");

    // A restart: a new connection reads the same progress, and the chain goes on.
    drop(b);
    let b = Course::open(&b_dir, Some(&pg.url)).expect("reopen");
    assert_eq!(views(&b, now), (a_dash, a_csv));
    let events = Log::on(b.journal(), "ann")
        .append(
            130_000,
            "ann",
            "custom-vpc",
            EventKind::Reset,
            None,
            json!({}),
        )
        .expect("append after a restart");
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].prev, events[3].hash);

    // An edited row breaks the chain, as in SQLite.
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).expect("connect");
    let n = client
        .execute(
            "UPDATE vpclab_class_journal SET body = replace(body, '\"fail\"', '\"pass\"') \
             WHERE stream = 'lab:bob' AND seq = 1 AND course = $1",
            &[&vpclab::class::course_id(&b.file.secret)],
        )
        .expect("edit");
    assert_eq!(n, 1);
    let e = Log::on(b.journal(), "bob").read().expect_err("edited");
    assert!(e.to_string().contains("breaks the hash chain"), "{e}");

    // Another course in the same database sees only its own roster.
    let c_dir = dir.path().join("c");
    std::fs::write(dir.path().join("one.csv"), "zoe\n").expect("roster");
    let (c, _, _) = Course::init(
        &c_dir,
        "net102",
        &labs_dir(),
        &labs,
        &[],
        &dir.path().join("one.csv"),
        Some(&pg.url),
    )
    .expect("init in PostgreSQL");
    let names: Vec<String> = c
        .learners()
        .expect("roster")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["zoe"]);
    assert!(!c_dir.join("course.db").exists());

    // Without --database, or with a server that is not there: a clear refusal.
    let e = Course::open(&b_dir, None).expect_err("no --database");
    assert!(format!("{e:#}").contains("pass --database"), "{e:#}");
    let e = Course::open(&a_dir, Some(&pg.url)).expect_err("a SQLite course");
    assert!(format!("{e:#}").contains("leave out --database"), "{e:#}");
    let e = Course::open(
        &b_dir,
        Some("postgresql://vpclab:secret-pw@/postgres?host=/nonexistent/vpclab-pg"),
    )
    .expect_err("no server");
    let m = format!("{e:#}");
    assert!(m.contains("cannot connect to PostgreSQL"), "{m}");
    assert!(!m.contains("secret-pw"), "{m}");
}

#[test]
fn a_class_served_from_postgresql_keeps_progress_and_grades_across_a_restart() {
    support::require_aws();
    let Some(pg) = pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster(dir.path());
    let course = dir.path().join("course");
    let c = course.to_string_lossy().into_owned();
    let out = vpclab(&[
        "class",
        "init",
        &c,
        "--labs",
        "custom-vpc",
        "--learners",
        &roster.to_string_lossy(),
        "--labs-dir",
        &labs_dir().to_string_lossy(),
        "--database",
        &pg.url,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pw = passwords(&stdout(&out));
    assert!(
        !course.join("course.db").exists(),
        "the roster is in PostgreSQL"
    );
    let out = vpclab(&["class", "list", &c]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pass --database"), "{}", stderr(&out));
    let out = vpclab(&["class", "list", &c, "--database", &pg.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Ann Lee"), "{}", stdout(&out));

    let mut d = ProcessDaemon::start_with(&["--class", &c, "--database", &pg.url]);
    let ann = credentials_with(&course, "ann", &d.url(), &["--database", &pg.url]);
    complete_custom_vpc(&d, &ann, true);

    let port = d.api_port();
    let cookie = login(port, "instructor", &pw["instructor"]).expect("instructor");
    let dash = |port: u16, cookie: &str| -> Value {
        serde_json::from_str(body_of(&get(port, "/console/class/dashboard.json", cookie)))
            .expect("dashboard json")
    };
    let before = dash(port, &cookie);
    let ann_score = before["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .find(|s| s["learner"] == "ann")
        .cloned()
        .expect("ann's score");
    assert_eq!(ann_score["percent"], 100, "{before}");
    assert_eq!(ann_score["completed"], true);
    let csv_http = body_of(&get(port, "/console/class/scores.csv", &cookie)).to_string();
    let out = vpclab(&["class", "grades", &c, "--database", &pg.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), csv_http);
    assert!(
        csv_http.contains("\nann,Ann Lee,100000000001,"),
        "{csv_http}"
    );
    assert!(csv_http.contains(",100\n"), "{csv_http}");

    // The daemon restarts: progress and grades come back from PostgreSQL.
    d.stop();
    d.launch();
    let port = d.api_port();
    let cookie = login(port, "instructor", &pw["instructor"]).expect("instructor");
    let after = dash(port, &cookie);
    assert_eq!(after["scores"], before["scores"]);
    let tiles = |v: &Value| -> BTreeMap<String, Value> {
        v["tiles"]
            .as_array()
            .expect("tiles")
            .iter()
            .map(|t| {
                (
                    t["learner"].as_str().unwrap_or("").to_string(),
                    t["percent"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(tiles(&after), tiles(&before));
    assert_eq!(
        body_of(&get(port, "/console/class/scores.csv", &cookie)),
        csv_http
    );
    // Ann's key still works after the restart (the roster came from PostgreSQL).
    let out = d.aws_as("us-east-1", (&ann.key, &ann.secret), &["describe-vpcs"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

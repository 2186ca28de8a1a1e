//! Lab benchmark: how long a full check of the troubleshooting lab takes (every check of
//! its three steps: a `not` over a resource, a resource, a route and a `reach` probe
//! through the fabric), as `vpclab lab check` asks the daemon for it over the API port.
//!
//! Prints `BENCH labs check_all_ms=<p50> check_all_solved_ms=<p50> runs=<n>`: the first
//! figure with the lab as it starts (every step broken), the second after the reference
//! solutions ran (every check passes, the `reach` probe opens a real connection). Goal:
//! under 300 ms. The daemon runs in-process on loopback; the setup and solutions run
//! with the real aws CLI (`scripts/install-test-deps`). `LABS_BENCH_N` (default 20) sets
//! the number of timed runs.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use vpclab::daemon::{Background, DaemonConfig, StateDir};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `vpclab lab ARGS` as the learner runs it, against `url`.
fn lab(url: &str, labs: &Path, work: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpclab"))
        .arg("lab")
        .args(args)
        .args(["--learner", "bench", "--endpoint", url, "--labs"])
        .arg(labs)
        .current_dir(work)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/vpclab-bench-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/vpclab-bench-credentials",
        )
        .env("AWS_PAGER", "")
        .output()
        .expect("run vpclab lab");
    assert!(
        out.status.success() || args[0] == "check",
        "vpclab lab {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let n = env_usize("LABS_BENCH_N", 20);
    let labs = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    // The folder is `<NN>-troubleshooting` (NN orders the curriculum).
    let lab_dir = std::fs::read_dir(&labs)
        .expect("labs/")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("troubleshooting"))
        })
        .expect("the troubleshooting lab");
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let daemon =
        Background::start(DaemonConfig::for_tests(StateDir::new(state.path()))).expect("start");
    let url = daemon.url();
    // The lab as it starts: the setup builds the broken shop.
    lab(&url, &labs, work.path(), &["start", "troubleshooting"]);
    let steps: Vec<String> = vpclab::lab::resolve::load(&lab_dir, "bench", "")
        .expect("the lab resolves")
        .steps
        .into_iter()
        .map(|s| s.id)
        .collect();
    let cwd = work.path().to_string_lossy().to_string();
    let full_check = |expect_pass: bool| -> f64 {
        let t = Instant::now();
        for step in &steps {
            let v = daemon
                .runtime()
                .block_on(vpclab::cli::lab::call(
                    &url,
                    "check",
                    &[
                        ("learner", "bench"),
                        ("step", step),
                        ("cwd", &cwd),
                        ("no_retry", "1"),
                    ],
                ))
                .expect("check");
            assert_eq!(v["passed"], expect_pass, "step {step}: {v}");
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    full_check(false);
    let broken: Vec<f64> = (0..n).map(|_| full_check(false)).collect();
    // Solve every step with its reference solution, then time the passing checks.
    for _ in &steps {
        lab(&url, &labs, work.path(), &["skip"]);
    }
    full_check(true);
    let solved: Vec<f64> = (0..n).map(|_| full_check(true)).collect();
    println!(
        "BENCH labs check_all_ms={:.1} check_all_solved_ms={:.1} runs={n}",
        p50(broken),
        p50(solved)
    );
    daemon.stop().expect("stop");
}

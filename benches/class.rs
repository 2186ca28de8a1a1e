//! The classroom load run (issue 13): one `vpclab up --class` daemon, N learners (default
//! 30, `CLASS_BENCH_LEARNERS`) each running the `custom-vpc` lab at the same time as a
//! learner would: `vpclab lab start`, each step's reference solution (bash and the real
//! aws CLI with the learner's own key), `vpclab lab check`. Meanwhile a probe sends signed
//! DescribeVpcs requests, round-robin over the learners' keys, and times them: that is
//! the API latency learners feel while the class works.
//!
//! Prints `BENCH class learners=N api_p50_ms=… api_p95_ms=… rss_mib=… cpu_s=…
//! all_complete=true|false`: the daemon's resident memory and CPU time (from /proc) at the
//! end, and whether every learner reached 100 %. Goals: p95 under 250 ms and under 40 MiB
//! per learner. Loopback only; it stops by itself (each learner's run is bounded by the
//! lab's steps, and the whole run by `CLASS_BENCH_TIMEOUT_S`, default 900).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Killed, VPCLAB, env_usize};
use vpclab::api::sigv4::{AccessKey, SignedRequest, sign};

fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

struct Learner {
    name: String,
    key: String,
    secret: String,
}

fn learner_cmd(program: &str, url: &str, l: &Learner, work: &Path) -> Command {
    let mut cmd = Command::new(program);
    let bin_dir = Path::new(VPCLAB).parent().expect("bin dir");
    cmd.current_dir(work)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("AWS_ENDPOINT_URL", url)
        .env("VPCLAB_ENDPOINT", url)
        .env("AWS_ACCESS_KEY_ID", &l.key)
        .env("AWS_SECRET_ACCESS_KEY", &l.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .env("AWS_CONFIG_FILE", "/nonexistent/vpclab-bench-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/vpclab-bench-credentials",
        )
        .env("VPCLAB_LEARNER", &l.name)
        .env_remove("VPCLAB_COURSE_SECRET")
        .env_remove("AWS_PROFILE");
    cmd
}

fn lab(url: &str, l: &Learner, work: &Path, args: &[&str]) -> serde_json::Value {
    let out = learner_cmd(VPCLAB, url, l, work)
        .arg("lab")
        .args(args)
        .arg("--json")
        .arg("--labs")
        .arg(labs_dir())
        .output()
        .expect("vpclab lab");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// One learner's whole lab; true when it ends at 100 %.
fn run_learner(url: &str, l: &Learner) -> bool {
    let work = tempfile::tempdir().expect("work dir");
    let started = lab(url, l, work.path(), &["start", "custom-vpc"]);
    let params = started["params"].clone();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(labs_dir().join("03-custom-vpc/solution"))
        .expect("solutions")
        .map(|e| e.expect("entry").path())
        .collect();
    scripts.sort();
    for (i, s) in scripts.iter().enumerate() {
        let mut cmd = learner_cmd("bash", url, l, work.path());
        cmd.arg(s);
        for (k, v) in params.as_object().into_iter().flatten() {
            cmd.env(
                format!("LAB_{}", k.to_ascii_uppercase()),
                v.as_str().unwrap_or_default(),
            );
        }
        let out = cmd.output().expect("bash");
        if !out.status.success() {
            eprintln!(
                "{}: {} failed: {}",
                l.name,
                s.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            return false;
        }
        lab(url, l, work.path(), &["check", &(i + 1).to_string()]);
    }
    let status = lab(url, l, work.path(), &["status"]);
    status["percent"] == 100
}

/// One signed DescribeVpcs over a fresh loopback connection; its latency in ms.
fn probe(port: u16, l: &Learner) -> Option<f64> {
    let body = "Action=DescribeVpcs&Version=2016-11-15";
    let mut req = SignedRequest {
        method: "POST".into(),
        path: "/".into(),
        query: None,
        headers: vec![
            ("host".into(), format!("127.0.0.1:{port}")),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
        ],
    };
    let now = vpclab::model::Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis(),
        )
        .ok()?,
    );
    let key = AccessKey {
        access_key: l.key.clone(),
        secret_key: l.secret.clone(),
        account: String::new(),
    };
    sign(&mut req, body.as_bytes(), &key, "us-east-1", "ec2", now);
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(head.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let ok = buf.starts_with(b"HTTP/1.1 200");
    ok.then(|| t.elapsed().as_secs_f64() * 1000.0)
}

/// Resident memory (MiB) and CPU time (s) of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (rss_kib / 1024.0, ticks / 100.0)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() {
    let n = env_usize("CLASS_BENCH_LEARNERS", 30);
    let timeout = Duration::from_secs(env_usize("CLASS_BENCH_TIMEOUT_S", 900) as u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.csv");
    let names: Vec<String> = (1..=n).map(|i| format!("learner{i:02}")).collect();
    std::fs::write(&roster, names.join("\n")).expect("roster");
    let course = dir.path().join("course");
    let out = Command::new(VPCLAB)
        .args(["class", "init"])
        .arg(&course)
        .args(["--labs", "custom-vpc", "--learners"])
        .arg(&roster)
        .arg("--labs-dir")
        .arg(labs_dir())
        .output()
        .expect("class init");
    common::check(&out, "vpclab class init");
    let mut child = Command::new(VPCLAB)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
            "--class",
        ])
        .arg(&course)
        .env("VPCLAB_BOOT_DELAY_MS", "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vpclab up --class");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id();
    let _daemon = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("vpclab up ended").expect("read");
        if let Some(rest) = line.strip_prefix("export AWS_ENDPOINT_URL=") {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let learners: Vec<Arc<Learner>> = names
        .iter()
        .map(|name| {
            let out = Command::new(VPCLAB)
                .args(["class", "credentials"])
                .arg(&course)
                .arg(name)
                .output()
                .expect("credentials");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let get = |k: &str| {
                text.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .expect("a credential")
                    .to_string()
            };
            Arc::new(Learner {
                name: name.clone(),
                key: get("AWS_ACCESS_KEY_ID"),
                secret: get("AWS_SECRET_ACCESS_KEY"),
            })
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        let learners = learners.clone();
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                if let Some(ms) = probe(port, &learners[i % learners.len()]) {
                    lat.push(ms);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            lat
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = learners
        .iter()
        .map(|l| {
            let l = l.clone();
            let url = url.clone();
            std::thread::spawn(move || run_learner(&url, &l))
        })
        .collect();
    let mut complete = 0;
    for w in workers {
        if started.elapsed() > timeout {
            eprintln!("the run took longer than {timeout:?}: stopping");
            break;
        }
        if w.join().unwrap_or(false) {
            complete += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let lat = prober.join().unwrap_or_default();
    let (rss, cpu) = usage(pid);
    eprintln!(
        "{n} learners in {:.0} s; {} probes",
        started.elapsed().as_secs_f64(),
        lat.len()
    );
    println!(
        "BENCH class learners={n} api_p50_ms={:.1} api_p95_ms={:.1} rss_mib={rss:.1} cpu_s={cpu:.1} all_complete={}",
        percentile(lat.clone(), 0.5),
        percentile(lat, 0.95),
        complete == n
    );
}

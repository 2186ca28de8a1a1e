//! Load run (issue 10's figures): a hostile-classroom afternoon against one `vpclab up`,
//! on loopback only, bounded in count and time.
//!
//! 1. `LOAD_SSH_LOGINS` (default 500) OpenSSH logins (`ssh … true` through
//!    `vpclab connect`, the learner's path: API port → internet gateway → security
//!    group → the instance's SSH server), `LOAD_SSH_PARALLEL` (default 8) at a time.
//! 2. `LOAD_API_CLIENTS` (default 20) API clients for `LOAD_API_SECS` (default 30)
//!    seconds, each on its own new connection per request, mixing reads (DescribeVpcs,
//!    DescribeInstances, DescribeSecurityGroups) and writes (CreateTags, DeleteTags).
//! 3. Slowloris: `LOAD_IDLE` (default 1,000, capped below this process's open-file limit)
//!    connections that send nothing and stay open; while they are held, 20 ordinary API
//!    calls and 5 SSH logins must still succeed.
//!
//! The daemon's resident memory (VmRSS) is read before and after. Prints, as its last
//! line, `BENCH load ssh_ok=<ok>/<n> ssh_p50_ms=… api_ok=<ok>/<n> api_rps=…
//! rss_before_mb=… rss_after_mb=… idle=<held> legit_api_ok=<ok>/20 legit_ssh_ok=<ok>/5
//! legit_api_p50_ms=…`, and exits non-zero when anything failed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{VPCLAB, Vpclab, env_usize, have, p50};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

/// One EC2 Query call on a new connection: (status, body). Status 0 is a transport
/// failure (refused, reset, timed out).
fn post(port: u16, form: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "connect failed".into());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.set_nodelay(true);
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: {AUTH}\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, "write failed".into());
    }
    let mut buf = String::new();
    if let Err(e) = s.read_to_string(&mut buf)
        && buf.is_empty()
    {
        return (0, format!("read failed: {e}"));
    }
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf)
}

/// The daemon's resident set in MiB (Linux `/proc`).
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// This process's soft limit on open files.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024)
}

/// `ssh -i pem ec2-user@ip true` through `vpclab connect`: Ok(ms) or the error text.
fn ssh_login(vpclab: &Vpclab, pem: &Path, ip: &str) -> Result<f64, String> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i").arg(pem).args([
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",
        "-o",
        "KexAlgorithms=curve25519-sha256",
        "-o",
    ]);
    cmd.arg(format!("ProxyCommand={VPCLAB} connect %h %p"))
        .arg(format!("ec2-user@{ip}"))
        .arg("true")
        .stdin(Stdio::null());
    vpclab.env(&mut cmd);
    let t = Instant::now();
    let out = cmd.output().map_err(|e| format!("run ssh: {e}"))?;
    if out.status.success() {
        Ok(t.elapsed().as_secs_f64() * 1e3)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `total` logins, `parallel` at a time: (ok, p50 ms, first error).
fn ssh_phase(
    vpclab: &Vpclab,
    pem: &Path,
    ip: &str,
    total: usize,
    parallel: usize,
) -> (usize, f64, Option<String>) {
    let next = AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1) {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let r = ssh_login(vpclab, pem, ip);
                    results.lock().expect("results").push(r);
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    let times: Vec<f64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    let first_err = results.iter().find_map(|r| r.as_ref().err()).cloned();
    let p = if times.is_empty() {
        f64::NAN
    } else {
        p50(times.clone())
    };
    (times.len(), p, first_err)
}

/// `clients` threads calling the API for `secs` seconds: (ok, total, first failure).
fn api_phase(
    port: u16,
    instance: &str,
    clients: usize,
    secs: u64,
) -> (usize, usize, Option<String>) {
    let ok = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let first = std::sync::Mutex::new(None::<String>);
    let until = Instant::now() + Duration::from_secs(secs);
    std::thread::scope(|s| {
        for c in 0..clients {
            let (ok, total, first) = (&ok, &total, &first);
            s.spawn(move || {
                let calls = [
                    "Action=DescribeVpcs&Version=2016-11-15".to_string(),
                    format!(
                        "Action=CreateTags&Version=2016-11-15&ResourceId.1={instance}&Tag.1.Key=client{c}&Tag.1.Value=v"
                    ),
                    "Action=DescribeInstances&Version=2016-11-15".to_string(),
                    "Action=DescribeSecurityGroups&Version=2016-11-15".to_string(),
                    format!(
                        "Action=DeleteTags&Version=2016-11-15&ResourceId.1={instance}&Tag.1.Key=client{c}"
                    ),
                ];
                let mut i = 0;
                while Instant::now() < until {
                    let (status, body) = post(port, &calls[i % calls.len()]);
                    total.fetch_add(1, Ordering::Relaxed);
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let mut f = first.lock().expect("first");
                        if f.is_none() {
                            *f = Some(format!("{status}: {}", body.chars().take(300).collect::<String>()));
                        }
                    }
                    i += 1;
                }
            });
        }
    });
    let first = first.into_inner().expect("first");
    (
        ok.load(Ordering::Relaxed),
        total.load(Ordering::Relaxed),
        first,
    )
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "load bench: not run under cargo test (run `cargo bench --bench load` for figures)"
        );
        return ExitCode::SUCCESS;
    }
    for (tool, arg) in [("aws", "--version"), ("ssh", "-V")] {
        if !have(tool, arg) {
            eprintln!(
                "load bench: `{tool}` is missing (bash scripts/install-test-deps installs the clients)"
            );
            return ExitCode::from(2);
        }
    }
    let logins = env_usize("LOAD_SSH_LOGINS", 500);
    let parallel = env_usize("LOAD_SSH_PARALLEL", 8);
    let clients = env_usize("LOAD_API_CLIENTS", 20);
    let secs = env_usize("LOAD_API_SECS", 30) as u64;
    // Keep room for this process's own files and the clients' sockets.
    let idle_wanted = env_usize("LOAD_IDLE", 1000);
    let idle = idle_wanted.min(open_file_limit().saturating_sub(200));

    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("load.pem");
    let vpclab = Vpclab::start(&dir.path().join("state"));
    let port: u16 = vpclab
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("the endpoint's port");
    let ip = vpclab.launch(&pem);
    let instance = vpclab.aws(&[
        "describe-instances",
        "--filters",
        "Name=instance-state-name,Values=running",
        "--query",
        "Reservations[0].Instances[0].InstanceId",
    ]);
    ssh_login(&vpclab, &pem, &ip).expect("a first login");
    let rss_before = rss_mb(vpclab.pid);
    eprintln!("load: instance {instance} at {ip}; daemon RSS {rss_before:.1} MiB");

    let t = Instant::now();
    let (ssh_ok, ssh_p50, ssh_err) = ssh_phase(&vpclab, &pem, &ip, logins, parallel);
    eprintln!(
        "load: {ssh_ok}/{logins} SSH logins ok ({parallel} at a time) in {:.1} s, p50 {ssh_p50:.0} ms{}",
        t.elapsed().as_secs_f64(),
        ssh_err
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );

    let (api_ok, api_total, api_err) = api_phase(port, &instance, clients, secs);
    let rps = api_total as f64 / secs as f64;
    eprintln!(
        "load: {api_ok}/{api_total} API calls ok from {clients} clients over {secs} s ({rps:.0}/s){}",
        api_err
            .as_deref()
            .map(|e| format!("; first failure: {e}"))
            .unwrap_or_default()
    );
    let rss_after = rss_mb(vpclab.pid);
    eprintln!("load: daemon RSS {rss_after:.1} MiB after");

    // Slowloris: hold `idle` silent connections, then do ordinary work beside them.
    let mut held = Vec::with_capacity(idle);
    for _ in 0..idle {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!(
                    "load: stopped opening idle connections at {}: {e}",
                    held.len()
                );
                break;
            }
        }
    }
    let holding = held.len();
    let mut legit = Vec::new();
    let mut legit_api_ok = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _) = post(port, "Action=DescribeVpcs&Version=2016-11-15");
        legit.push(t.elapsed().as_secs_f64() * 1e3);
        legit_api_ok += usize::from(status == 200);
    }
    let legit_ssh_ok = (0..5)
        .filter(|_| ssh_login(&vpclab, &pem, &ip).is_ok())
        .count();
    drop(held);
    let legit_p50 = p50(legit);
    eprintln!(
        "load: with {holding} idle connections held: {legit_api_ok}/20 API calls ok (p50 {legit_p50:.1} ms), {legit_ssh_ok}/5 SSH logins ok"
    );

    println!(
        "BENCH load ssh_ok={ssh_ok}/{logins} ssh_p50_ms={ssh_p50:.0} api_ok={api_ok}/{api_total} api_rps={rps:.0} rss_before_mb={rss_before:.1} rss_after_mb={rss_after:.1} idle={holding} legit_api_ok={legit_api_ok}/20 legit_ssh_ok={legit_ssh_ok}/5 legit_api_p50_ms={legit_p50:.1}"
    );
    let all_ok = ssh_ok == logins && api_ok == api_total && legit_api_ok == 20 && legit_ssh_ok == 5;
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

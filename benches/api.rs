//! API benchmark: p50 latencies of CreateVpc and DescribeVpcs over HTTP on loopback,
//! against vpclab and against moto's server doing the same calls in the same run, and the
//! time from spawning `vpclab up` to its first successful answer.
//!
//! Prints `BENCH api describe_vpcs_ms=<p50> create_vpc_ms=<p50> moto_ratio=<moto/ours>
//! moto_create_ratio=… moto_describe_ratio=… startup_ms=<median>` (moto_ratio is the
//! geometric mean of the two per-call ratios). Requests use a new loopback connection
//! each, for both servers; vpclab runs as `vpclab up` does (SQLite commit and topology
//! compilation on every change). DescribeInstances is not measured here: instances are not part of
//! this branch (describe_vpcs with the same number of VPCs stands in for a large Describe).
//! moto must be importable by `python3` (`pip install 'moto[server]'`); without it the
//! ratio is printed as `na`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

fn post(port: u16, form: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: {AUTH}\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf)
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// (create_vpc p50 ms, describe_vpcs p50 ms) against a server on `port`.
fn measure(port: u16, calls: usize) -> (f64, f64) {
    let mut create = Vec::with_capacity(calls);
    for i in 0..calls {
        let form = format!(
            "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.{}.{}.0%2F24",
            i / 256,
            i % 256
        );
        let t = Instant::now();
        let (status, body) = post(port, &form);
        create.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200, "CreateVpc failed: {body}");
    }
    let mut describe = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let (status, body) = post(port, "Action=DescribeVpcs&Version=2016-11-15");
        describe.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200, "DescribeVpcs failed: {body}");
    }
    (p50(create), p50(describe))
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts vpclab; returns (process, port, ms from spawn to first 200).
fn start_vpclab(dir: &std::path::Path) -> (Killed, u16, f64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpclab"))
        .args(["up", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vpclab");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let port: u16 = loop {
        let line = lines.next().expect("endpoint line").expect("utf8");
        if let Some(rest) = line.strip_prefix("export AWS_ENDPOINT_URL=http://127.0.0.1:") {
            break rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    loop {
        if post(port, "Action=DescribeRegions").0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (Killed(child), port, t.elapsed().as_secs_f64() * 1e3)
}

fn start_moto() -> Option<(Killed, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && post(port, "Action=DescribeRegions&Version=2016-11-15").0 == 200
        {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn main() {
    // `cargo bench` passes `--bench`. Without it (`cargo test --all-targets`), run a
    // small smoke version without moto so CI stays fast.
    let full = std::env::args().any(|a| a == "--bench");
    let (calls, starts) = if full { (300, 5) } else { (20, 1) };
    let mut startups = Vec::new();
    for _ in 0..starts {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_d, _, ms) = start_vpclab(dir.path());
        startups.push(ms);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_d, port, _) = start_vpclab(dir.path());
    let (create, describe) = measure(port, calls);
    eprintln!(
        "vpclab: create_vpc p50 {create:.3} ms, describe_vpcs p50 {describe:.3} ms ({calls} VPCs)"
    );
    if !full {
        println!("api bench smoke run ok (run `cargo bench -p vpclab --bench api` for figures)");
        return;
    }
    let ratio = match start_moto() {
        Some((_m, mport)) => {
            let (mc, md) = measure(mport, calls);
            eprintln!("moto:   create_vpc p50 {mc:.3} ms, describe_vpcs p50 {md:.3} ms");
            let (rc, rd) = (mc / create, md / describe);
            // The geometric mean of the two ratios, then each one.
            format!(
                "{:.1} moto_create_ratio={rc:.1} moto_describe_ratio={rd:.1}",
                (rc * rd).sqrt()
            )
        }
        None => {
            eprintln!("moto is not available (pip install 'moto[server]'): no ratio");
            "na".to_string()
        }
    };
    println!(
        "BENCH api describe_vpcs_ms={describe:.3} create_vpc_ms={create:.3} moto_ratio={ratio} startup_ms={:.1}",
        p50(startups)
    );
}

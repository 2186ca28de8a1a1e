//! The data services' throughput, against vpclab and against moto's server doing the
//! same requests in the same run (when `python3 -m moto.server` is available).
//!
//! Prints `BENCH data s3_put_mib_s=… s3_get_mib_s=… ddb_put_per_s=… ddb_query_p50_us=…`
//! and, with moto, `moto_s3_put_ratio=…` (ours / moto's, higher is better) for each
//! figure (`moto_ddb_query_ratio` is moto's p50 over ours). Loopback only; sizes from
//! `VPCLAB_BENCH_S3_OBJECTS` (1 MiB objects, default 32) and `VPCLAB_BENCH_DDB_ITEMS`
//! (default 500).
//!
//! Both servers get byte-identical requests from the same client code: a new
//! connection per request, path-style, `UNSIGNED-PAYLOAD`, no Content-MD5, the whole
//! response read. The S3 figures are the median of `VPCLAB_BENCH_S3_ROUNDS` rounds
//! (default 3), each round putting then getting its own `n` objects on vpclab and then
//! on moto, so that a change in the machine's load during the run (the benches run on
//! shared machines) falls on both servers rather than on whichever went second. Each
//! round's figures go to stderr.
//!
//! `s3_put_x10_mib_s` puts the same number of objects from 10 client threads at once,
//! as `aws s3 cp --recursive` and `aws s3 sync` do (the CLI's `max_concurrent_requests`
//! is 10 by default): the throughput a learner's upload of a folder sees, where the
//! sequential figure is the latency of one upload after another.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Killed, Vpclab, env_usize, p50};

fn scope(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
    )
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body length).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let status = std::str::from_utf8(&out[..out.len().min(12)])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body_at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    (status, out[body_at..].to_vec())
}

fn s3_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", scope("s3")),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".into()),
    ]
}

fn create_bucket(port: u16) {
    let (status, body) = request(port, "PUT", "/bench-bucket", &s3_headers(), b"");
    assert_eq!(
        status,
        200,
        "CreateBucket: {}",
        String::from_utf8_lossy(&body)
    );
}

/// One round: (put MiB/s, get MiB/s) of `n` 1 MiB objects named `obj-ROUND-I`.
fn measure_s3(port: u16, round: usize, n: usize) -> (f64, f64) {
    let h = s3_headers();
    let object: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let t = Instant::now();
    for i in 0..n {
        let path = format!("/bench-bucket/obj-{round}-{i}");
        let (status, body) = request(port, "PUT", &path, &h, &object);
        assert_eq!(status, 200, "PutObject: {}", String::from_utf8_lossy(&body));
    }
    let put = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n {
        let path = format!("/bench-bucket/obj-{round}-{i}");
        let (status, body) = request(port, "GET", &path, &h, b"");
        assert_eq!(status, 200);
        assert_eq!(body.len(), 1 << 20);
    }
    let get = n as f64 / t.elapsed().as_secs_f64();
    (put, get)
}

/// One round of `n` 1 MiB PutObject calls from [`CONCURRENCY`] client threads at once
/// (keys `par-ROUND-I`): MiB/s over the wall time of all of them.
fn measure_s3_parallel(port: u16, round: usize, n: usize) -> f64 {
    let h = s3_headers();
    let object: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..CONCURRENCY {
            let (h, object) = (&h, &object);
            scope.spawn(move || {
                for i in (thread..n).step_by(CONCURRENCY) {
                    let path = format!("/bench-bucket/par-{round}-{i}");
                    let (status, body) = request(port, "PUT", &path, h, object);
                    assert_eq!(status, 200, "PutObject: {}", String::from_utf8_lossy(&body));
                }
            });
        }
    });
    n as f64 / t.elapsed().as_secs_f64()
}

/// The aws CLI's default `max_concurrent_requests` for `s3 cp`/`sync`.
const CONCURRENCY: usize = 10;

/// The median of each column.
fn medians(rounds: &[(f64, f64)]) -> (f64, f64) {
    (
        p50(rounds.iter().map(|r| r.0).collect()),
        p50(rounds.iter().map(|r| r.1).collect()),
    )
}

fn ddb(port: u16, op: &str, body: &str) -> (u16, Vec<u8>) {
    let h = vec![
        ("Authorization", scope("dynamodb")),
        ("X-Amz-Target", format!("DynamoDB_20120810.{op}")),
        ("Content-Type", "application/x-amz-json-1.0".into()),
    ];
    request(port, "POST", "/", &h, body.as_bytes())
}

/// (puts per second, Query p50 µs over a 10-item partition).
fn measure_ddb(port: u16, n: usize) -> (f64, f64) {
    let (status, body) = ddb(
        port,
        "CreateTable",
        r#"{"TableName":"bench","AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}],"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],"BillingMode":"PAY_PER_REQUEST"}"#,
    );
    assert_eq!(
        status,
        200,
        "CreateTable: {}",
        String::from_utf8_lossy(&body)
    );
    let t = Instant::now();
    for i in 0..n {
        let item = format!(
            r#"{{"TableName":"bench","Item":{{"pk":{{"S":"p{}"}},"sk":{{"N":"{i}"}},"v":{{"S":"value {i}"}}}}}}"#,
            i % (n / 10).max(1)
        );
        let (status, body) = ddb(port, "PutItem", &item);
        assert_eq!(status, 200, "PutItem: {}", String::from_utf8_lossy(&body));
    }
    let puts = n as f64 / t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (status, _) = ddb(
            port,
            "Query",
            r#"{"TableName":"bench","KeyConditionExpression":"pk = :p","ExpressionAttributeValues":{":p":{"S":"p1"}}}"#,
        );
        assert_eq!(status, 200);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (puts, p50(times))
}

fn start_moto() -> Option<(Killed, u16)> {
    let port = common::free_port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn main() {
    let objects = env_usize("VPCLAB_BENCH_S3_OBJECTS", 32);
    let rounds = env_usize("VPCLAB_BENCH_S3_ROUNDS", 3);
    let items = env_usize("VPCLAB_BENCH_DDB_ITEMS", 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Vpclab::start(dir.path());
    let port: u16 = d
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let moto = start_moto();
    create_bucket(port);
    if let Some((_, mport)) = &moto {
        create_bucket(*mport);
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_par, mut theirs_par) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        ours.push(measure_s3(port, round, objects));
        ours_par.push(measure_s3_parallel(port, round, objects));
        if let Some((_, mport)) = &moto {
            theirs.push(measure_s3(*mport, round, objects));
            theirs_par.push(measure_s3_parallel(*mport, round, objects));
        }
        eprintln!(
            "round {round}: vpclab put/get/put x10 MiB/s {:.1}/{:.1}/{:.1}{}",
            ours[round].0,
            ours[round].1,
            ours_par[round],
            theirs
                .get(round)
                .map(|m| format!(", moto {:.1}/{:.1}/{:.1}", m.0, m.1, theirs_par[round]))
                .unwrap_or_default()
        );
    }
    let (put, get) = medians(&ours);
    let put_par = p50(ours_par);
    let (dput, query) = measure_ddb(port, items);
    let mut line = format!(
        "BENCH data s3_put_mib_s={put:.1} s3_get_mib_s={get:.1} s3_put_x10_mib_s={put_par:.1} ddb_put_per_s={dput:.0} ddb_query_p50_us={query:.0}"
    );
    if let Some((_moto, mport)) = &moto {
        let (mput, mget) = medians(&theirs);
        let mput_par = p50(theirs_par);
        let (mdput, mquery) = measure_ddb(*mport, items);
        line.push_str(&format!(
            " moto_s3_put_ratio={:.1} moto_s3_get_ratio={:.1} moto_s3_put_x10_ratio={:.1} moto_ddb_put_ratio={:.1} moto_ddb_query_ratio={:.1}",
            put / mput,
            get / mget,
            put_par / mput_par,
            dput / mdput,
            mquery / query
        ));
    } else {
        line.push_str(" moto=absent");
    }
    println!("{line}");
}

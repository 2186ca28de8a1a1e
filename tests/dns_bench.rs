//! Benchmark of the public DNS endpoint against Debian's `unbound` serving the same 1,000
//! records, both measured with `dnsperf` on loopback in the same run. Ignored by default
//! (it takes about 25 s and needs `dnsperf` and `unbound`); run it with
//!
//! ```text
//! cargo test --release --test dns_bench -- --ignored --nocapture
//! ```
//!
//! It prints `BENCH dns qps=<ours> baseline_qps=<unbound> ratio=<ours/unbound>`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use vpclab::dns::{DnsView, HostedZone, SharedView, serve_public_dns};

const RECORDS: u32 = 1000;
const SECONDS: &str = "10";

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: `{tool}` is not installed (apt-get install dnsperf unbound)");
    }
    found
}

fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xC612_0000u32 + i) // 198.18.x.y
}

fn view() -> DnsView {
    let mut zone = HostedZone::new("bench.lab", false);
    zone.add(
        "bench.lab",
        RecordType::SOA,
        900,
        &["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"],
    )
    .expect("soa");
    for i in 0..RECORDS {
        zone.add(
            &format!("host{i}.bench.lab"),
            RecordType::A,
            300,
            &[&address(i).to_string()],
        )
        .expect("record");
    }
    let mut view = DnsView::default();
    view.zones.insert("ZBENCH".into(), zone);
    view
}

/// Runs dnsperf for [`SECONDS`] against `port` and returns its queries per second.
fn dnsperf(port: u16, queries: &std::path::Path) -> f64 {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-l", SECONDS])
        .args(["-c", "4", "-q", "200"])
        .arg("-d")
        .arg(queries)
        .stderr(Stdio::null())
        .output()
        .expect("run dnsperf");
    let text = String::from_utf8_lossy(&out.stdout);
    let lost = text
        .lines()
        .find(|l| l.contains("Queries lost"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("dnsperf on port {port}: {lost}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("dnsperf reports queries per second")
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
#[ignore = "benchmark: needs dnsperf and unbound, takes ~25 s"]
fn bench_public_endpoint_against_unbound() {
    if !have("dnsperf") || !have("unbound") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut queries = String::new();
    for i in 0..RECORDS {
        let _ = writeln!(queries, "host{i}.bench.lab A");
    }
    let query_file = dir.path().join("queries.txt");
    std::fs::write(&query_file, queries).expect("queries");

    // Ours: the endpoint on a runtime of two worker threads, as `vpclab up` runs it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shared: SharedView = Arc::new(RwLock::new(view()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let port = rt.block_on(async {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tcp");
        let port = tcp.local_addr().expect("addr").port();
        let udp = tokio::net::UdpSocket::bind(("127.0.0.1", port))
            .await
            .expect("udp");
        tokio::spawn(serve_public_dns(udp, tcp, shared, async {
            let _ = stopped.await;
        }));
        port
    });
    let ours = dnsperf(port, &query_file);
    let _ = stop.send(());
    rt.shutdown_timeout(Duration::from_secs(2));

    // Baseline: unbound with the same records as local data, also two threads.
    let unbound_port = free_port();
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {unbound_port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 2\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  local-zone: \"bench.lab.\" static\n",
        dir = dir.path().display()
    );
    for i in 0..RECORDS {
        let _ = writeln!(
            conf,
            "  local-data: \"host{i}.bench.lab. 300 IN A {}\"",
            address(i)
        );
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    let conf_file = dir.path().join("unbound.conf");
    std::fs::write(&conf_file, conf).expect("unbound.conf");
    let mut unbound = Command::new("unbound")
        .arg("-c")
        .arg(&conf_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unbound");
    // Wait until it answers.
    for _ in 0..100 {
        let ok = Command::new("dig")
            .args(["@127.0.0.1", "-p", &unbound_port.to_string()])
            .args(["+time=1", "+tries=1", "+short", "host1.bench.lab"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let baseline = dnsperf(unbound_port, &query_file);
    let _ = unbound.kill();
    let _ = unbound.wait();

    println!(
        "BENCH dns qps={ours:.0} baseline_qps={baseline:.0} ratio={:.2}",
        ours / baseline
    );
    assert!(ours > 0.0 && baseline > 0.0);
}

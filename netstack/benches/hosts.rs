//! Host-layer benchmark: bulk TCP between two hosts in different subnets
//! through the forwarder, against Linux loopback TCP measured by the same
//! program in the same run, and resident memory per idle host.
//!
//! Last line: `BENCH hosts tcp_gbps=<x> loopback_gbps=<y> ratio=<x/y> idle_host_kib=<n>`.
//! Bounded: three rounds of 0.7 s per throughput figure (about 6 s), 1,000
//! hosts for memory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab_netstack::Port;
use vpclab_netstack::host::{AddressForwarder, Forwarder, HostConfig, Net};

const CHUNK: usize = 256 * 1024;
const RUN: Duration = Duration::from_millis(700);
/// Rounds of (world, loopback) measurements; the best of each is reported,
/// so that a burst of load from other processes on the machine does not
/// decide the ratio.
const ROUNDS: usize = 3;

/// The fabric on the fixture VPC: web (10.0.1.10, public subnet) to app
/// (10.0.2.20:8080, private subnet), through both security groups (sg-app
/// allows 8080 from sg-web), both subnets' network ACLs and the route
/// tables.
fn forwarder() -> (impl Forwarder, &'static str) {
    let (topology, _) = vpclab_netstack::fixture::public_private_vpc();
    (
        vpclab_netstack::Fabric::new(std::sync::Arc::new(topology)),
        "the fabric (SG, NACL, routing; fixture VPC, web -> app)",
    )
}

/// Gbit/s of one TCP stream from a host in 10.0.1.0/24 to one in
/// 10.0.2.0/24, on a two-worker runtime (as the daemon runs) or on one
/// thread.
fn world_tcp(multi_thread: bool) -> (f64, &'static str) {
    let mut builder = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = builder.enable_all().build().unwrap();
    rt.block_on(async {
        let (fwd, via) = forwarder();
        let net = Net::new(fwd);
        let a = net
            .add_host(HostConfig::vpc(
                Port::Eni("eni-web".into()),
                "10.0.1.10/24".parse().unwrap(),
            ))
            .unwrap();
        let b = net
            .add_host(HostConfig::vpc(
                Port::Eni("eni-app".into()),
                "10.0.2.20/24".parse().unwrap(),
            ))
            .unwrap();
        let listener = b.listen(8080).unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            (total, Instant::now())
        });
        let mut c = a
            .connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 20), 8080))
            .await
            .unwrap();
        let chunk = vec![0x5au8; CHUNK];
        let start = Instant::now();
        while start.elapsed() < RUN {
            c.write_all(&chunk).await.unwrap();
        }
        c.shutdown().await.unwrap();
        let (total, end) = reader.await.unwrap();
        (total as f64 * 8.0 / (end - start).as_secs_f64() / 1e9, via)
    })
}

/// Gbit/s of one kernel TCP stream over 127.0.0.1.
fn loopback_tcp() -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        (total, Instant::now())
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    while start.elapsed() < RUN {
        c.write_all(&chunk).unwrap();
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (total, end) = reader.join().unwrap();
    total as f64 * 8.0 / (end - start).as_secs_f64() / 1e9
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Resident KiB per idle host (an instance-like host listening on port 22),
/// over 1,000 hosts.
fn idle_host_kib() -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let net = Net::new(AddressForwarder::new());
        let before = rss_kib();
        let mut keep = Vec::new();
        for i in 0..1000u32 {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 10)) + i);
            let h = net
                .add_host(HostConfig::vpc(
                    Port::Eni(format!("eni-{i:08x}").into()),
                    ipnet::Ipv4Net::new(addr, 16).unwrap(),
                ))
                .unwrap();
            let l = h.listen(22).unwrap();
            keep.push((h, l));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = rss_kib();
        println!("hosts: resident memory {before} KiB before, {after} KiB after 1000 idle hosts");
        after.saturating_sub(before) as f64 / 1000.0
    })
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    // Memory first, while the heap is fresh: freed buffers of the
    // throughput runs would otherwise hide new allocations from RSS.
    let idle = idle_host_kib();
    let (mut tcp_one, mut tcp, mut lo) = (0f64, 0f64, 0f64);
    let mut via = "";
    for _ in 0..ROUNDS {
        tcp_one = tcp_one.max(world_tcp(false).0);
        let (t, v) = world_tcp(true);
        tcp = tcp.max(t);
        via = v;
        lo = lo.max(loopback_tcp());
    }
    println!("hosts: best of {ROUNDS} rounds of {RUN:?} each");
    println!("hosts: world TCP on a current-thread runtime: {tcp_one:.2} Gbit/s");
    println!(
        "hosts: world TCP via {via}, 2 tokio workers: {tcp:.2} Gbit/s; kernel loopback: {lo:.2} Gbit/s"
    );
    println!(
        "BENCH hosts tcp_gbps={tcp:.2} loopback_gbps={lo:.2} ratio={:.2} idle_host_kib={idle:.1}",
        tcp / lo
    );
}

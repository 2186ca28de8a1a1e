//! TUN access: the kernel's own TCP reaches an instance's public IP through
//! a TUN device, the internet gateway and the security group.
//!
//! Runs inside a network namespace the test creates (`unshare -n`), so no
//! route or device touches the machine's real network; skipped, with the
//! reason printed, when not root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use vpclab_netstack::fixture;
use vpclab_netstack::host::{HostConfig, Net};
use vpclab_netstack::tun::Tun;
use vpclab_netstack::{Fabric, Port};

const INSIDE: &str = "VPCLAB_TUN_TEST_IN_NETNS";
const NAME: &str = "tun_carries_kernel_tcp_to_a_public_instance";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn tun_carries_kernel_tcp_to_a_public_instance() {
    if std::env::var_os(INSIDE).is_none() {
        if !is_root() {
            println!("skipped {NAME}: creating a network namespace and a TUN device needs root");
            return;
        }
        // Root without the right to create namespaces (some containers).
        let probe = Command::new("unshare").args(["-n", "true"]).output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            println!("skipped {NAME}: `unshare -n` is not permitted here: {probe:?}");
            return;
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            println!("skipped {NAME}: /dev/net/tun does not exist");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let status = Command::new("unshare")
            .arg("-n")
            .arg(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
            .env(INSIDE, "1")
            .status();
        match status {
            Ok(s) => assert!(s.success(), "the test inside the namespace failed"),
            Err(e) => println!("skipped {NAME}: cannot run `unshare -n`: {e}"),
        }
        return;
    }
    // From here on we are alone in a fresh network namespace.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (topology, ids) = fixture::public_private_vpc();
        let net = Net::new(Fabric::new(Arc::new(topology)));
        let web = net
            .add_host(HostConfig::vpc(
                Port::Eni(ids.web_eni.clone()),
                ipnet::Ipv4Net::new(ids.web_ip, 24).unwrap(),
            ))
            .unwrap();
        let listener = web.listen(80).unwrap();
        // A canned answer to the kernel's one request: netstack speaks no HTTP, and the
        // test is about the packets, not the protocol.
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = format!("hello {}\n", peer.ip());
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let tun = Tun::attach(&net, "vpclab0", "203.0.113.0/24".parse().unwrap()).unwrap();
        let learner = Ipv4Addr::new(203, 0, 113, 10);
        for cmd in tun.setup_commands(learner, &["198.18.0.0/15".parse().unwrap()]) {
            let ok = Command::new(&cmd[0]).args(&cmd[1..]).status().unwrap();
            assert!(ok.success(), "{cmd:?} failed");
        }
        let public = SocketAddrV4::new(ids.web_public, 80);
        let body = tokio::task::spawn_blocking(move || {
            let mut s =
                std::net::TcpStream::connect_timeout(&public.into(), Duration::from_secs(5))
                    .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        // The kernel's packets crossed the internet gateway: the instance
        // saw the TUN side's address.
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with(&format!("hello {learner}\n")), "{body}");
        drop(tun);
    });
}

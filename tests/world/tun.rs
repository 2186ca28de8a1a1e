//! `vpclab up --tun`: plain OpenSSH, with no `ProxyCommand`, reaches an instance's public
//! IP through the kernel's own routing, and the security group still decides.
//!
//! Everything runs inside a network namespace the test creates (`unshare -n`, the test
//! binary re-executing itself there), so the TUN device and its route never touch the
//! machine's real network; the namespace disappears with the process. Skipped, with the
//! reason printed, when not root, when `unshare -n` is not permitted, or without
//! /dev/net/tun.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{Lab, Network, ProcessDaemon, stderr, stdout};

const INSIDE: &str = "VPCLAB_WORLD_TUN_TEST_IN_NETNS";
/// The test's name in the `world` test binary (the binary re-executes itself with it).
const NAME: &str = "tun::up_tun_lets_plain_ssh_reach_a_public_ip_and_the_security_group_decides";
/// The kernel side's address (what the world sees as the source of host traffic).
const TUN_ADDR: &str = "203.0.113.1";

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

/// Whether network device `name` exists in this process's network namespace.
fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Plain OpenSSH: no ProxyCommand, the kernel routes the connection.
fn plain_ssh(d: &dyn Lab, key: &Path, host: &str, command: &str, timeout_s: u32) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(key)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            &format!("ConnectTimeout={timeout_s}"),
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            d.path("known_hosts").display()
        ))
        .arg(format!("ec2-user@{host}"))
        .arg(command)
        .stdin(Stdio::null());
    cmd.output().expect("run ssh")
}

#[test]
fn up_tun_lets_plain_ssh_reach_a_public_ip_and_the_security_group_decides() {
    if std::env::var_os(INSIDE).is_none() {
        if !is_root() {
            println!("skipped {NAME}: creating a network namespace and a TUN device needs root");
            return;
        }
        let probe = Command::new("unshare").args(["-n", "true"]).output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            println!("skipped {NAME}: `unshare -n` is not permitted here: {probe:?}");
            return;
        }
        if !Path::new("/dev/net/tun").exists() {
            println!("skipped {NAME}: /dev/net/tun does not exist");
            return;
        }
        let host_had_device = link_exists("vpclab0");
        let exe = std::env::current_exe().expect("the test binary's path");
        let status = Command::new("unshare")
            .arg("-n")
            .arg(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
            .env(INSIDE, "1")
            .status()
            .expect("run the test inside `unshare -n`");
        assert!(status.success(), "the test inside the namespace failed");
        // The machine's own network namespace got no device.
        assert_eq!(link_exists("vpclab0"), host_had_device);
        return;
    }

    // From here on we are alone in a fresh network namespace: only `lo`, down.
    ip(&["link", "set", "lo", "up"]);
    let mut d = ProcessDaemon::start_with(&["--tun"]);
    // The kernel side: its /32 address, and one route, for the public range only.
    let addr = ip(&["-4", "-o", "addr", "show", "dev", "vpclab0"]);
    assert!(addr.contains(&format!("inet {TUN_ADDR}/32")), "{addr}");
    let routes = ip(&["-4", "route", "show"]);
    assert_eq!(
        routes.lines().map(str::trim).collect::<Vec<_>>(),
        ["198.18.0.0/15 dev vpclab0 scope link"],
        "{routes}"
    );

    let net = Network::build(&d);
    // Only the TUN side's address may connect: success proves the kernel's packets
    // arrive from it.
    let sg = net.security_group(&d, "ssh-from-tun", &[(22, &format!("{TUN_ADDR}/32"))]);
    let key = d.key_pair("lab", "ed25519");
    let (_, public_ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    assert!(public_ip.starts_with("198.18."), "{public_ip}");

    let out = plain_ssh(&d, &key, &public_ip, "echo hi", 10);
    assert!(out.status.success(), "ssh: {}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");

    // Revoking the rule governs the next connection: the SYN is dropped, ssh times out.
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        &format!("{TUN_ADDR}/32"),
    ]);
    let started = std::time::Instant::now();
    let out = plain_ssh(&d, &key, &public_ip, "echo hi", 3);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // A clean stop closes the device: the kernel removes it with its route.
    d.stop();
    assert!(
        !link_exists("vpclab0"),
        "the TUN device outlived the daemon"
    );
}

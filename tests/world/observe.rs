//! `vpclab trace` and `vpclab capture` against a running world: the hop-by-hop walk names
//! the deciding security-group rule, the missing route and AWS's explanation code; a
//! live capture of an SSH handshake into an instance is a pcap that tshark reads.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{Lab, Network, TestDaemon, VPCLAB, have, stderr, stdout};

#[test]
fn trace_names_the_rule_the_missing_route_and_the_code() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    d.key_pair("lab", "ed25519");
    let (instance, _ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);

    let ok = d.vpclab(&["trace", "me", &format!("{instance}:22")], b"");
    let text = stdout(&ok);
    assert!(ok.status.success(), "{text}{}", stderr(&ok));
    assert!(text.contains("result: reachable"), "{text}");
    assert!(
        text.contains("ingress rule: protocol tcp ports 22-22 from 0.0.0.0/0"),
        "the deciding security-group rule: {text}"
    );
    assert!(text.contains("return path (the reply):"), "{text}");

    let closed = d.vpclab(&["trace", "me", &format!("{instance}:80")], b"");
    let text = stdout(&closed);
    assert_eq!(closed.status.code(), Some(3), "{text}{}", stderr(&closed));
    assert!(text.contains("[ENI_SG_RULES_MISMATCH]"), "{text}");
    assert!(text.contains("result: NOT reachable"), "{text}");

    // An interface in the private subnet has no route to the internet.
    let eni = d.aws_text(&[
        "create-network-interface",
        "--subnet-id",
        &net.private_subnet,
        "--query",
        "NetworkInterface.NetworkInterfaceId",
    ]);
    let out = d.vpclab(&["trace", &eni, "internet:443", "--json"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["forward"]["code"], "NO_ROUTE_TO_DESTINATION", "{v}");
    assert!(
        v["forward"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("missing route") && h.contains(&net.private_rt)),
        "{v}"
    );

    let bad = d.vpclab(&["trace", "i-0123456789abcdef0", "internet"], b"");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("i-0123456789abcdef0"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn tshark_reads_a_capture_of_an_ssh_handshake() {
    if !have("aws") || !have("ssh") || !have("tshark") {
        return;
    }
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (instance, ip, private_ip) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let pcap = d.path("ssh.pcap");

    let mut cmd = Command::new(VPCLAB);
    cmd.args([
        "capture",
        &instance,
        "--count",
        "400",
        "--duration",
        "20",
        "-w",
    ])
    .arg(&pcap)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    d.env(&mut cmd);
    let mut child = cmd.spawn().expect("run vpclab capture");
    // The first line says the daemon is capturing.
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.contains("capturing on"), "{line}");

    let out = d.ssh(&key, "ec2-user", &ip, "echo captured");
    assert!(out.status.success(), "{}", stderr(&out));

    let status = child.wait().expect("wait capture");
    assert!(status.success());
    let read = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "tcp.flags.syn",
            "-e",
            "ssh.protocol",
        ])
        .output()
        .expect("run tshark");
    let fields = String::from_utf8_lossy(&read.stdout).to_string();
    assert!(
        read.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    // The handshake as the instance sees it: the SYN arrives at its private address, its
    // SYN-ACK leaves from it, and both sides' SSH banners are in the stream.
    let syn = fields
        .lines()
        .find(|l| matches!(l.split('\t').nth(2), Some("1" | "True")))
        .unwrap_or("");
    assert!(
        fields
            .lines()
            .any(|l| l.split('\t').nth(1) == Some(private_ip.as_str())),
        "packets to {private_ip}: {fields}"
    );
    assert!(!syn.is_empty(), "a SYN: {fields}");
    let banners: Vec<&str> = fields
        .lines()
        .filter_map(|l| l.split('\t').nth(3))
        .filter(|b| b.starts_with("SSH-2.0"))
        .collect();
    assert!(banners.len() >= 2, "both SSH banners: {fields}");
}

//! Instance metadata (IMDSv1/v2) over a byte stream, and first-boot user data with its
//! console output — the services an instance answers besides SSH.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use crate::support::emulated_only;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab::http1;
use vpclab::instance::imds::serve_imds;
use vpclab::instance::net::{FakeNet, FakeService, InstanceNet};
use vpclab::instance::vfs::Cred;
use vpclab::instance::{Image, InstanceProfile, InstanceState};

/// Why these tests skip the sandbox runtime: they drive the emulated runtime's metadata
/// service and user data in this process (no daemon), so `VPCLAB_TEST_RUNTIME` does not
/// reach them; a sandbox's metadata and user data are checked through a daemon in
/// `ssh.rs` and `sandbox.rs`.
const IN_PROCESS: &str =
    "an in-process test of the emulated runtime's metadata service and user data (no daemon)";

fn profile() -> InstanceProfile {
    let mut p = InstanceProfile::example(Image::AmazonLinux2023, Ipv4Addr::new(10, 0, 1, 5));
    p.public_ip = Some(Ipv4Addr::new(198, 18, 0, 7));
    p.key_name = Some("test01".into());
    p.authorized_key = Some(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test01"
            .into(),
    );
    p.security_groups = vec!["web-sg".into(), "ssh-sg".into()];
    p
}

fn launch(p: InstanceProfile) -> (Arc<InstanceState>, Arc<FakeNet>) {
    let net = FakeNet::new(p.private_ip, p.subnet_prefix_len, &p.mac);
    (InstanceState::launch(p, net.clone()), net)
}

/// Sends one raw HTTP request to the metadata service; returns status and body.
async fn imds(inst: &Arc<InstanceState>, request: &str) -> (u16, String) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(serve_imds(server, inst.clone()));
    client.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.expect("read");
    let _ = task.await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(path: &str, token: Option<&str>) -> String {
    let t = token
        .map(|t| format!("X-aws-ec2-metadata-token: {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{t}Connection: close\r\n\r\n")
}

fn put_token(ttl: &str) -> String {
    format!(
        "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn imdsv1_answers_the_documented_paths() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (inst, _) = launch(profile());
    let cases = [
        ("/latest/meta-data/instance-id", "i-0123456789abcdef0"),
        ("/latest/meta-data/local-ipv4", "10.0.1.5"),
        ("/latest/meta-data/public-ipv4", "198.18.0.7"),
        (
            "/latest/meta-data/local-hostname",
            "ip-10-0-1-5.ec2.internal",
        ),
        (
            "/latest/meta-data/public-hostname",
            "ec2-198-18-0-7.compute-1.amazonaws.com",
        ),
        (
            "/latest/meta-data/placement/availability-zone",
            "us-east-1a",
        ),
        ("/latest/meta-data/security-groups", "web-sg\nssh-sg"),
        ("/latest/meta-data/instance-type", "t2.micro"),
        ("/latest/meta-data/mac", "02:00:0a:00:01:05"),
        ("/latest/meta-data/public-keys/", "0=test01"),
        (
            "/latest/meta-data/network/interfaces/macs/02:00:0a:00:01:05/subnet-ipv4-cidr-block",
            "10.0.1.0/24",
        ),
    ];
    for (path, want) in cases {
        assert_eq!(
            imds(&inst, &get(path, None)).await,
            (200, want.to_string()),
            "{path}"
        );
    }
    let (st, key) = imds(
        &inst,
        &get("/latest/meta-data/public-keys/0/openssh-key", None),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        key.starts_with("ssh-ed25519 AAAA") && key.ends_with("test01\n"),
        "{key}"
    );
    let (st, listing) = imds(&inst, &get("/latest/meta-data/", None)).await;
    assert_eq!(st, 200);
    assert!(
        listing.lines().any(|l| l == "instance-id") && listing.lines().any(|l| l == "placement/")
    );
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/nope", None)).await.0,
        404
    );
    assert_eq!(
        imds(&inst, &get("/latest/user-data", None)).await.0,
        404,
        "no user data given"
    );
}

#[tokio::test]
async fn imdsv2_token_is_required_when_the_instance_says_so() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let mut p = profile();
    p.imds_v2_required = true;
    let (inst, _) = launch(p);
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/instance-id", None))
            .await
            .0,
        401
    );
    assert_eq!(
        imds(&inst, &put_token("0")).await.0,
        400,
        "TTL must be 1..21600"
    );
    assert_eq!(imds(&inst, &put_token("21601")).await.0, 400);
    let (st, token) = imds(&inst, &put_token("21600")).await;
    assert_eq!(st, 200);
    assert!(token.len() > 40);
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/instance-id", Some(&token))).await,
        (200, "i-0123456789abcdef0".to_string())
    );
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/instance-id", Some("forged")))
            .await
            .0,
        401
    );
}

#[tokio::test(start_paused = true)]
async fn imdsv2_token_expires_after_its_ttl() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (inst, _) = launch(profile());
    let (_, token) = imds(&inst, &put_token("2")).await;
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/ami-id", Some(&token)))
            .await
            .0,
        200
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(
        imds(&inst, &get("/latest/meta-data/ami-id", Some(&token)))
            .await
            .0,
        401
    );
}

fn mirror() -> FakeService {
    Arc::new(|stream, peer| {
        let handler: http1::Handler =
            Arc::new(|_: &http1::Request| http1::Response::new(200, "text/xml", "<repomd/>"));
        Box::pin(async move {
            let _ = http1::serve_connection(stream, peer.into(), handler).await;
        })
    })
}

const USER_DATA: &str = "#!/bin/bash\nyum update -y\nyum install -y httpd\nsystemctl start httpd\nsystemctl enable httpd\necho \"<h1>Hello World from $(hostname -f)</h1>\" > /var/www/html/index.html\necho user-data-done\n";

#[tokio::test(start_paused = true)]
async fn user_data_runs_once_as_root_and_its_web_server_answers() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let mut p = profile();
    p.user_data = USER_DATA.as_bytes().to_vec();
    let (inst, net) = launch(p);
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 80),
        mirror(),
    );
    inst.boot().await;

    let log = inst
        .disk()
        .fs
        .read("/var/log/cloud-init-output.log", Cred::ROOT)
        .map(|d| String::from_utf8_lossy(d).to_string())
        .expect("log exists");
    assert!(log.contains("Complete!"), "{log}");
    assert!(log.ends_with("user-data-done\n"), "{log}");
    let console = inst.console_output();
    assert!(
        console.contains("cloud-init[1580]: user-data-done"),
        "{console}"
    );
    assert!(console.contains("-----BEGIN SSH HOST KEY FINGERPRINTS-----"));
    assert!(console.contains(&inst.host_key().fingerprint_sha256()));

    // The web server listens on port 80 of the instance's stack.
    let stream = net
        .tcp_connect(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 5), 80),
            Duration::from_secs(1),
        )
        .await
        .expect("port 80 open");
    let resp = http1::request(stream, "GET", "10.0.1.5", "/", &[], b"")
        .await
        .expect("http");
    assert_eq!(resp.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&resp.body),
        "<h1>Hello World from ip-10-0-1-5.ec2.internal</h1>\n"
    );

    // A reboot does not run user data again, but the enabled service comes back.
    inst.shutdown();
    inst.boot().await;
    let log2 = inst
        .disk()
        .fs
        .read("/var/log/cloud-init-output.log", Cred::ROOT)
        .map(<[u8]>::to_vec)
        .expect("log");
    assert_eq!(String::from_utf8_lossy(&log2), log);
    assert!(inst.console_output().contains("Started httpd.service"));
}

#[tokio::test(start_paused = true)]
async fn user_data_without_internet_logs_the_dnf_timeout() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let mut p = profile();
    p.user_data = USER_DATA.as_bytes().to_vec();
    let (inst, _net) = launch(p);
    inst.boot().await;
    let console = inst.console_output();
    assert!(console.contains("Timeout was reached"), "{console}");
    assert!(
        console.contains("Unit httpd.service not found."),
        "{console}"
    );
}

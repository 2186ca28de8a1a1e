//! The sandbox runtime (issue 16): how fast a sandboxed instance boots, how much memory
//! an idle one holds, and how fast TCP runs between two of them through the fabric,
//! against two emulated instances doing the same.
//!
//! Prints, as its last line, `BENCH sandbox boot_ms=… rss_kib_per_idle_instance=…
//! tcp_gbps=… ratio_to_emulated=…`:
//!
//! - `boot_ms`: p50 of sandbox boots measured in the library (`Sandbox::spawn` of
//!   `bwrap` until the agent's "sshd listening" line: namespaces, `ens5`, its address
//!   and route, the SSH listener), without the daemon's pending delay or the aws CLI;
//! - `rss_kib_per_idle_instance`: resident memory of every process a running `vpclab up
//!   --runtime sandbox` has started (the sandboxes: `bwrap` and the agent), divided by
//!   the number of idle instances;
//! - `tcp_gbps`: instance A `curl`s a file from instance B's web server (`dnf install
//!   httpd`, `systemctl start httpd`) through the VPC: bits over the time of the
//!   transfer (the time of the same SSH command without the transfer subtracted);
//! - `ratio_to_emulated`: that figure over the same transfer between two emulated
//!   instances (`--runtime emulated`).
//!
//! Loopback only; bounded: `VPCLAB_BENCH_SANDBOX_MB` (default 64; 2 without `--bench`,
//! the CI smoke mode of `cargo test --bench sandbox`) and 3 transfers each. Needs the
//! aws CLI, `ssh`, `scp`, and a machine where the sandbox runs (else it says why and
//! prints `NA`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{VPCLAB, Vpclab, check, env_usize, have, p50};
use vpclab::instance::InstanceProfile;
use vpclab::instance::image::Image;
use vpclab::instance::sandbox::{self, AgentSpec, InstanceRoot, Sandbox};
use vpclab::instance::ssh::HostKey;

/// One sandbox boot in the library: spawn until the agent listens on port 22.
fn boot_once(dir: &Path, n: usize) -> f64 {
    let ip: std::net::Ipv4Addr = format!("10.0.1.{}", 10 + n).parse().expect("ip");
    let profile = InstanceProfile::example(Image::AmazonLinux2023, ip);
    let root = InstanceRoot::new(
        dir,
        &format!("i-bench{n}"),
        &format!("ip-10-0-1-{}", 10 + n),
    );
    let key = HostKey::from_seed([n as u8; 32]);
    root.prepare(&profile, &key).expect("prepare the root");
    let spec = AgentSpec {
        image: profile.image,
        address: ip,
        prefix_len: 24,
        gateway: "10.0.1.1".parse().expect("gw"),
        mtu: sandbox::MTU,
        host_key: key,
        user_data: String::new(),
        region: "us-east-1".into(),
        package_mirror: None,
        tool_timeout_ms: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let start = Instant::now();
    let mut sb = Sandbox::spawn(Path::new(VPCLAB), &root, &spec).expect("spawn bwrap");
    let ctl = sb.take_control().expect("control socket");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut device = None;
        let _ = sandbox::handshake(
            ctl,
            |fd| device = Some(fd),
            |line| {
                if line.starts_with("Cloud-init finished") {
                    let _ = tx.send(start.elapsed());
                }
            },
        );
    });
    let took = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the sandbox booted");
    sb.kill();
    took.as_secs_f64() * 1000.0
}

/// Resident KiB of every descendant of `pid` (not `pid` itself).
fn descendants_rss_kib(pid: u32) -> u64 {
    let mut parent = std::collections::HashMap::new();
    let mut rss = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(pp) = field("PPid:") {
            parent.insert(p, pp as u32);
        }
        rss.insert(p, field("VmRSS:").unwrap_or(0));
    }
    let under = |mut p: u32| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == pid => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    rss.iter().filter(|(p, _)| under(**p)).map(|(_, k)| k).sum()
}

fn ssh(d: &Vpclab, pem: &Path, ip: &str, command: &str) -> std::process::Output {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(pem)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o"])
        .arg(format!("ProxyCommand={VPCLAB} connect %h %p"))
        .arg(format!("ec2-user@{ip}"))
        .arg(command);
    d.env(&mut cmd);
    cmd.output().expect("run ssh")
}

fn wait_ssh(d: &Vpclab, pem: &Path, ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ssh(d, pem, ip, "true").status.success() {
        assert!(Instant::now() < deadline, "no SSH on {ip}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two instances of one runtime; B serves an `mb` MiB file with httpd, A fetches it.
/// Returns (Gbit/s, resident KiB per idle instance).
fn transfer(runtime: &str, mb: usize) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Vpclab::start_with(dir.path(), &["--runtime", runtime]);
    let pem = dir.path().join("bench.pem");
    let a = d.launch(&pem);
    let sg = d.aws(&[
        "describe-security-groups",
        "--group-names",
        "bench-ssh",
        "--query",
        "SecurityGroups[0].GroupId",
    ]);
    d.aws(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "172.31.0.0/16",
    ]);
    let ami = d.aws(&[
        "describe-instances",
        "--query",
        "Reservations[0].Instances[0].ImageId",
    ]);
    let b_id = d.aws(&[
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "t3.micro",
        "--key-name",
        "bench",
        "--security-group-ids",
        &sg,
        "--query",
        "Instances[0].InstanceId",
    ]);
    let mut row = String::new();
    for _ in 0..150 {
        row = d.aws(&[
            "describe-instances",
            "--instance-ids",
            &b_id,
            "--query",
            "Reservations[0].Instances[0].[State.Name,PublicIpAddress,PrivateIpAddress]",
        ]);
        if row.starts_with("running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut it = row.split_whitespace().skip(1);
    let (b, b_priv) = (
        it.next().expect("B's public IP").to_string(),
        it.next().expect("B's private IP").to_string(),
    );
    wait_ssh(&d, &pem, &a);
    wait_ssh(&d, &pem, &b);
    std::thread::sleep(Duration::from_millis(500));
    let rss = descendants_rss_kib(d.pid) / 2;

    let payload = dir.path().join("payload.bin");
    let bytes: Vec<u8> = (0..mb * 1024 * 1024)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    std::fs::write(&payload, &bytes).expect("write payload");
    let mut scp = Command::new("scp");
    scp.arg("-i")
        .arg(&pem)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o"])
        .arg(format!("ProxyCommand={VPCLAB} connect %h %p"))
        .arg(&payload)
        .arg(format!("ec2-user@{b}:payload.bin"));
    d.env(&mut scp);
    check(&scp.output().expect("scp"), "scp the payload to B");
    let out = ssh(
        &d,
        &pem,
        &b,
        "sudo dnf install -y -q httpd && sudo cp payload.bin /var/www/html/ && sudo systemctl start httpd",
    );
    check(&out, "httpd on B");
    let url = format!("http://{b_priv}/payload.bin");
    let timed = |command: &str| {
        let t = Instant::now();
        let out = ssh(&d, &pem, &a, command);
        check(&out, command);
        t.elapsed().as_secs_f64()
    };
    let base = p50((0..3).map(|_| timed("true")).collect());
    let fetch = p50((0..3)
        .map(|_| timed(&format!("curl -s -o /dev/null {url}")))
        .collect());
    let secs = (fetch - base).max(1e-3);
    ((mb * 1024 * 1024 * 8) as f64 / secs / 1e9, rss)
}

fn main() {
    if !have("aws", "--version") || !have("ssh", "-V") || !have("scp", "-h") {
        eprintln!("sandbox bench: needs the aws CLI, ssh and scp; skipped");
        return;
    }
    if let Err(e) = sandbox::probe(Path::new(VPCLAB)) {
        eprintln!("sandbox bench: the sandbox cannot run here: {e}");
        println!(
            "BENCH sandbox boot_ms=NA rss_kib_per_idle_instance=NA tcp_gbps=NA ratio_to_emulated=NA"
        );
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let mb = env_usize("VPCLAB_BENCH_SANDBOX_MB", if full { 64 } else { 2 });
    let boots = if full { 9 } else { 2 };
    let dir = tempfile::tempdir().expect("tempdir");
    let boot_ms = p50((0..boots).map(|n| boot_once(dir.path(), n)).collect());
    let (gbps, rss) = transfer("sandbox", mb);
    let (emulated_gbps, _) = transfer("emulated", mb);
    eprintln!(
        "sandbox bench: {boots} boots, {mb} MiB transfers; emulated {emulated_gbps:.3} Gbit/s"
    );
    println!(
        "BENCH sandbox boot_ms={boot_ms:.1} rss_kib_per_idle_instance={rss} tcp_gbps={gbps:.3} ratio_to_emulated={:.2}",
        gbps / emulated_gbps
    );
}

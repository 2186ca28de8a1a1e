//! The sandbox runtime (issue 16): how fast a sandboxed instance boots, how much memory
//! an idle one holds, and how fast TCP runs between two of them through the fabric,
//! against two emulated instances doing the same.
//!
//! Prints, as its last line, `BENCH sandbox boot_ms=… rss_kib_per_idle_instance=…
//! vmrss_kib_per_idle_instance=… tcp_gbps=… ratio_to_emulated=…`:
//!
//! - `boot_ms`: p50 of sandbox boots measured in the library (`Sandbox::spawn` of
//!   `bwrap` until the agent's "sshd listening" line: namespaces, `ens5`, its address
//!   and route, the SSH listener), without the daemon's pending delay or the aws CLI;
//! - `rss_kib_per_idle_instance`: what one more idle instance adds to the machine's
//!   memory: the proportional set size (PSS, `Pss:` of `/proc/PID/smaps_rollup`) of the
//!   whole `vpclab up --runtime sandbox` process tree (the daemon, every `bwrap` and
//!   agent) with `IDLE` more idle instances running, minus the same sum before they
//!   were launched, over `IDLE`. PSS divides a page shared by N processes by N, so the
//!   text of the vpclab binary that the daemon and every agent map is counted once in
//!   all, not once per process as `VmRSS` counts it; the daemon's own share of each
//!   new instance (its TUN bridge, handshake thread, console) is in the difference;
//! - `vmrss_kib_per_idle_instance`, for transparency: the `VmRSS` sum of one instance's
//!   processes (the two `bwrap`s and the agent), shared pages counted in full;
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
        ipv6_addresses: Vec::new(),
        subnet6: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let start = Instant::now();
    let mut sb = Sandbox::spawn(Path::new(VPCLAB), &root, &spec, None).expect("spawn bwrap");
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

/// Every process in the tree under `root` (itself included): (pid, parent).
fn process_tree(root: u32) -> Vec<(u32, u32)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent is the second field after the command name's closing parenthesis.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|v| v.parse().ok());
        if let Some(pp) = ppid {
            all.push((p, pp));
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &(p, pp) in &all {
            if tree.contains(&pp) && !tree.contains(&p) {
                tree.push(p);
                grew = true;
            }
        }
    }
    all.into_iter().filter(|(p, _)| tree.contains(p)).collect()
}

/// A `kB` field of a `/proc/PID/…` file (0 if the process has gone).
fn kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The PSS of the daemon's whole process tree, in KiB.
fn tree_pss_kib(daemon: u32) -> u64 {
    process_tree(daemon)
        .iter()
        .map(|&(p, _)| kib(p, "smaps_rollup", "Pss:"))
        .sum()
}

/// Memory of one idle instance: (PSS increase per instance, VmRSS of one instance's
/// processes), with `idle` more instances launched on `d` (whose first instance, A,
/// already runs; PSS is measured after it, so the daemon's own warm-up is not
/// counted). Returns the public and private IP of one of the new instances.
fn idle_instances(d: &Vpclab, pem: &Path, sg: &str, idle: usize) -> (u64, u64, [String; 2]) {
    let ami = d.aws(&[
        "describe-instances",
        "--query",
        "Reservations[0].Instances[0].ImageId",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let before = tree_pss_kib(d.pid);
    let new = d.run_instances(&ami, sg, idle);
    for [_, public, _] in &new {
        d.wait_ssh(pem, public);
    }
    // The logins' own processes end; what is left is idle.
    std::thread::sleep(Duration::from_millis(1000));
    let after = tree_pss_kib(d.pid);
    let tree = process_tree(d.pid);
    // The sandboxes are the daemon's children (`bwrap`) and everything under them.
    let sandboxed: Vec<u32> = tree
        .iter()
        .filter(|(p, _)| *p != d.pid)
        .map(|&(p, _)| p)
        .collect();
    let vmrss: u64 = sandboxed.iter().map(|&p| kib(p, "status", "VmRSS:")).sum();
    let instances = tree.iter().filter(|(_, pp)| *pp == d.pid).count().max(1) as u64;
    let [_, public, private] = new.into_iter().next().expect("an idle instance");
    (
        after.saturating_sub(before) / idle as u64,
        vmrss / instances,
        [public, private],
    )
}

/// Two instances of one runtime; B serves an `mb` MiB file with httpd, A fetches it.
/// Returns (Gbit/s, PSS KiB per idle instance, VmRSS KiB per idle instance).
fn transfer(runtime: &str, mb: usize, idle: usize) -> (f64, u64, u64) {
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
    d.open_port(&sg, 80, "172.31.0.0/16");
    d.wait_ssh(&pem, &a);
    let (pss, vmrss, [b, b_priv]) = idle_instances(&d, &pem, &sg, idle);

    let payload = dir.path().join("payload.bin");
    let bytes: Vec<u8> = (0..mb * 1024 * 1024)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    std::fs::write(&payload, &bytes).expect("write payload");
    let out = d
        .ssh_program("scp", &pem)
        .arg(&payload)
        .arg(format!("ec2-user@{b}:payload.bin"))
        .output()
        .expect("scp");
    check(&out, "scp the payload to B");
    let out = d.ssh(
        &pem,
        &b,
        "sudo dnf install -y -q httpd && sudo mv payload.bin /var/www/html/ && sudo systemctl start httpd",
    );
    check(&out, "httpd on B");
    let url = format!("http://{b_priv}/payload.bin");
    let timed = |command: &str| {
        let t = Instant::now();
        let out = d.ssh(&pem, &a, command);
        check(&out, command);
        t.elapsed().as_secs_f64()
    };
    let base = p50((0..3).map(|_| timed("true")).collect());
    let fetch = p50((0..3)
        .map(|_| timed(&format!("curl -s -o /dev/null {url}")))
        .collect());
    let secs = (fetch - base).max(1e-3);
    ((mb * 1024 * 1024 * 8) as f64 / secs / 1e9, pss, vmrss)
}

fn main() {
    if !have("aws", "--version") || !have("ssh", "-V") || !have("scp", "-h") {
        eprintln!("sandbox bench: needs the aws CLI, ssh and scp; skipped");
        return;
    }
    if let Err(e) = sandbox::probe(Path::new(VPCLAB)) {
        eprintln!("sandbox bench: the sandbox cannot run here: {e}");
        println!(
            "BENCH sandbox boot_ms=NA rss_kib_per_idle_instance=NA vmrss_kib_per_idle_instance=NA tcp_gbps=NA ratio_to_emulated=NA"
        );
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let mb = env_usize("VPCLAB_BENCH_SANDBOX_MB", if full { 64 } else { 2 });
    let boots = if full { 9 } else { 2 };
    let dir = tempfile::tempdir().expect("tempdir");
    let boot_ms = p50((0..boots).map(|n| boot_once(dir.path(), n)).collect());
    let idle = env_usize("VPCLAB_BENCH_SANDBOX_IDLE", if full { 4 } else { 2 });
    let (gbps, pss, vmrss) = transfer("sandbox", mb, idle);
    let (emulated_gbps, emulated_pss, _) = transfer("emulated", mb, idle);
    eprintln!(
        "sandbox bench: {boots} boots, {mb} MiB transfers, {idle} idle instances; \
         emulated {emulated_gbps:.3} Gbit/s, {emulated_pss} KiB PSS per idle instance"
    );
    println!(
        "BENCH sandbox boot_ms={boot_ms:.1} rss_kib_per_idle_instance={pss} vmrss_kib_per_idle_instance={vmrss} tcp_gbps={gbps:.3} ratio_to_emulated={:.2}",
        gbps / emulated_gbps
    );
}

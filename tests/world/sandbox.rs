//! `--runtime sandbox` (issue 16): instances are real Linux processes in rootless
//! sandboxes whose only network is the fabric. Reached with the real OpenSSH client
//! through `vpclab connect`; between instances, the sandbox kernels' own TCP crosses
//! the security groups. Skipped (with the reason) where the sandbox cannot run; with
//! `CI=true` that is a failure.

use std::path::Path;

use crate::support::{Lab, Network, TestDaemon, VPCLAB, have, in_ci, stderr, stdout};

/// Whether the sandbox works on this machine (else the reason, printed).
fn sandbox_available() -> bool {
    match vpclab::instance::sandbox::probe(Path::new(VPCLAB)) {
        Ok(()) => true,
        Err(e) if in_ci() => panic!("the sandbox runtime must work in CI: {e}"),
        Err(e) => {
            eprintln!("skipped: the sandbox runtime is unavailable here: {e}");
            false
        }
    }
}

fn sandbox_daemon() -> TestDaemon {
    TestDaemon::start_with(|cfg| {
        cfg.runtime = vpclab::instance::sandbox::RuntimeChoice::Sandbox;
        cfg.agent_exe = Some(VPCLAB.into());
    })
}

/// Runs `command` over SSH and returns its stdout, asserting success.
fn run(d: &dyn Lab, key: &Path, host: &str, command: &str) -> String {
    let out = d.ssh(key, "ec2-user", host, command);
    assert!(
        out.status.success(),
        "`{command}` on {host}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Retries SSH while the sandbox's sshd is still starting (the model says `running`
/// when the API does; the agent listens a few milliseconds later).
fn wait_for_ssh(d: &dyn Lab, key: &Path, host: &str) {
    for _ in 0..40 {
        if d.ssh_with(key, "ec2-user", host, "true", 3)
            .status
            .success()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("no SSH on {host}");
}

#[test]
fn issue16_sandboxed_instances_run_real_bash_and_python_and_talk_through_security_groups() {
    if !have("aws") || !have("ssh") || !sandbox_available() {
        return;
    }
    let d = sandbox_daemon();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let ud = d.path("user-data.sh");
    std::fs::write(
        &ud,
        "#!/bin/bash\necho \"made by $(python3 -c 'print(6*7)')\" > /home/ec2-user/ud.txt\n",
    )
    .expect("write user data");
    let ud_arg = format!("file://{}", ud.display());
    let (a, a_pub, _a_priv) = net.launch(
        &d,
        &net.public_subnet,
        "lab",
        &sg,
        &["--user-data", &ud_arg],
    );
    let (b, b_pub, b_priv) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    wait_for_ssh(&d, &key, &a_pub);
    wait_for_ssh(&d, &key, &b_pub);

    // Real bash and python3.
    assert_eq!(
        run(&d, &key, &a_pub, "for i in 1 2 3; do echo $i; done"),
        "1\n2\n3\n"
    );
    assert_eq!(run(&d, &key, &a_pub, "python3 -c 'print(6*7)'"), "42\n");
    // The image's identity: user, host name, os-release, the interface.
    let who = run(
        &d,
        &key,
        &a_pub,
        "whoami; hostname; . /etc/os-release; echo $NAME; ip -4 -o addr show ens5; ip -o link show ens5",
    );
    assert!(who.starts_with("ec2-user\nip-10-0-1-"), "{who}");
    assert!(who.contains("Amazon Linux"), "{who}");
    assert!(who.contains("ens5") && who.contains("/24"), "{who}");
    assert!(who.contains("mtu 9001"), "{who}");
    // User data ran once at first boot, with bash (and python3).
    let mut ud_text = String::new();
    for _ in 0..40 {
        ud_text = run(&d, &key, &a_pub, "cat ud.txt 2>/dev/null || true");
        if !ud_text.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(ud_text, "made by 42\n");

    // A web server on B, fetched from A over the VPC once the security group allows it.
    run(
        &d,
        &key,
        &b_pub,
        "mkdir -p /tmp/www && echo hello-from-b > /tmp/www/index.html && \
         (nohup python3 -m http.server 8080 --directory /tmp/www >/dev/null 2>&1 &) ; sleep 1",
    );
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--cidr",
        "10.0.0.0/16",
    ]);
    let url = format!("http://{b_priv}:8080/index.html");
    assert_eq!(
        run(&d, &key, &a_pub, &format!("curl -s -m 5 {url}")),
        "hello-from-b\n"
    );
    d.aws_text(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--cidr",
        "10.0.0.0/16",
    ]);
    let out = d.ssh(
        &key,
        "ec2-user",
        &a_pub,
        &format!("curl -s -m 2 {url}; echo rc=$?"),
    );
    assert_eq!(stdout(&out), "rc=28\n", "curl times out: {}", stderr(&out));
    let trace = d.vpclab(&["trace", &a, &format!("{b}:8080")], b"");
    let text = stdout(&trace);
    assert_eq!(trace.status.code(), Some(3), "{text}{}", stderr(&trace));
    assert!(text.contains("ENI_SG_RULES_MISMATCH"), "{text}");

    // Isolation: not the host's loopback (the API), not the host's files, not the
    // other instance's processes.
    let api = d.url();
    let port = api.rsplit(':').next().expect("port").trim_end_matches('/');
    let out = d.ssh(
        &key,
        "ec2-user",
        &a_pub,
        &format!("curl -s -m 2 http://127.0.0.1:{port}/; echo rc=$?"),
    );
    assert_eq!(
        stdout(&out),
        "rc=7\n",
        "connection refused inside the sandbox"
    );
    let state = d.path("state");
    let out = run(
        &d,
        &key,
        &a_pub,
        &format!(
            "test -e {} && echo state-visible; test -e {VPCLAB} && echo binary-visible; \
             ls /home; pgrep -f 'http[.]server' || echo no-http-server",
            state.display()
        ),
    );
    assert_eq!(out, "ec2-user\nno-http-server\n", "{out}");
}

#[test]
fn issue16_stop_kills_the_sandbox_and_start_keeps_its_disk_and_host_key() {
    if !have("aws") || !have("ssh") || !sandbox_available() {
        return;
    }
    let d = sandbox_daemon();
    let net = Network::build(&d);
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (id, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    wait_for_ssh(&d, &key, &ip);
    run(
        &d,
        &key,
        &ip,
        "echo kept > notes.txt; (nohup sleep 4242 >/dev/null 2>&1 &); sudo whoami",
    );
    let host_key = run(&d, &key, &ip, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let host_procs = || {
        std::process::Command::new("pgrep")
            .args(["-f", "sleep 4242"])
            .output()
            .map(|o| stdout(&o))
            .unwrap_or_default()
    };
    assert!(!host_procs().is_empty(), "the sandbox's process runs");
    d.aws_text(&["stop-instances", "--instance-ids", &id]);
    d.aws_text(&["wait", "instance-stopped", "--instance-ids", &id]);
    let mut gone = false;
    for _ in 0..20 {
        if host_procs().is_empty() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "stop kills every process of the instance");
    d.aws_text(&["start-instances", "--instance-ids", &id]);
    d.aws_text(&["wait", "instance-running", "--instance-ids", &id]);
    // A new public IP after a start, as on AWS; the same host key.
    let ip = d.aws_text(&[
        "describe-instances",
        "--instance-ids",
        &id,
        "--query",
        "Reservations[0].Instances[0].PublicIpAddress",
    ]);
    wait_for_ssh(&d, &key, &ip);
    assert_eq!(
        run(&d, &key, &ip, "cat /etc/ssh/ssh_host_ed25519_key.pub"),
        host_key
    );
    assert_eq!(run(&d, &key, &ip, "cat notes.txt"), "kept\n");
    let console = d.aws_text(&[
        "get-console-output",
        "--instance-id",
        &id,
        "--query",
        "Output",
    ]);
    assert!(
        console.contains("BEGIN SSH HOST KEY FINGERPRINTS") && console.contains("ens5"),
        "{console}"
    );
}

/// No root needed: as an unprivileged user (`nobody`, through `setpriv`), `vpclab up
/// --runtime sandbox` probes a sandbox (user and network namespaces, a TUN device made
/// inside) and starts on it. Only runs as root (which can drop to `nobody`).
#[test]
fn issue16_the_sandbox_runtime_starts_for_an_unprivileged_user() {
    use std::io::BufRead;
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !have("setpriv") || !sandbox_available() {
        eprintln!("skipped: needs root (to become nobody), setpriv and the sandbox");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
    }
    let mut child = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--reset-env",
            "--",
        ])
        .arg(VPCLAB)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--runtime", "sandbox"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv vpclab up");
    let out = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let done = line.starts_with("export ");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("instances:  sandbox (unprivileged user namespaces"),
        "{text}"
    );
}

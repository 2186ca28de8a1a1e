//! `--runtime sandbox` (issue 16): instances are real Linux processes in rootless
//! sandboxes whose only network is the fabric. Reached with the real OpenSSH client
//! through `vpclab connect`; between instances, the sandbox kernels' own TCP crosses
//! the security groups. Skipped (with the reason) where the sandbox cannot run; with
//! `CI=true` that is a failure.

use std::path::{Path, PathBuf};

use crate::support::{
    Lab, Network, ProcessDaemon, TestDaemon, VPCLAB, allow_tcp, have, in_ci, revoke_tcp, stderr,
    stdout,
};

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

/// A sandbox daemon, the test network and the key pair `lab`; `None` (the test is
/// skipped) where one of `tools` or the sandbox is missing.
fn sandbox_world(tools: &[&str]) -> Option<(TestDaemon, Network, PathBuf)> {
    if !tools.iter().all(|t| have(t)) || !sandbox_available() {
        return None;
    }
    let d = sandbox_daemon();
    let net = Network::build(&d);
    let key = d.key_pair("lab", "ed25519");
    Some((d, net, key))
}

/// An instance in the public subnet with group `sg` (and `extra` run-instances
/// arguments) whose SSH answers: (id, public IP, private IP).
fn launch_ready(
    d: &TestDaemon,
    net: &Network,
    key: &Path,
    sg: &str,
    extra: &[&str],
) -> (String, String, String) {
    let (id, public, private) = net.launch(d, &net.public_subnet, "lab", sg, extra);
    wait_for_ssh(d, key, &public);
    (id, public, private)
}

/// [`sandbox_world`] plus a security group `web` allowing SSH and the user-data file
/// `script`: (daemon, network, key, group id, `--user-data` value).
fn web_world(script: &str) -> Option<(TestDaemon, Network, PathBuf, String, String)> {
    let (d, net, key) = sandbox_world(&["aws", "ssh"])?;
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0")]);
    let path = d.path("user-data.sh");
    std::fs::write(&path, script).expect("write user data");
    let ud = format!("file://{}", path.display());
    Some((d, net, key, sg, ud))
}

/// Calls `f` every 250 ms, 40 times at most, until it gives something.
fn poll<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_for(40, f)
}

fn poll_for<T>(tries: usize, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..tries {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    None
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
    let up = poll(|| {
        d.ssh_with(key, "ec2-user", host, "true", 3)
            .status
            .success()
            .then_some(())
    });
    assert!(up.is_some(), "no SSH on {host}");
}

#[test]
fn issue16_sandboxed_instances_run_real_bash_and_python_and_talk_through_security_groups() {
    let script =
        "#!/bin/bash\necho \"made by $(python3 -c 'print(6*7)')\" > /home/ec2-user/ud.txt\n";
    let Some((d, net, key, sg, ud_arg)) = web_world(script) else {
        return;
    };
    let (a, a_pub, _) = launch_ready(&d, &net, &key, &sg, &["--user-data", &ud_arg]);
    let (b, b_pub, b_priv) = launch_ready(&d, &net, &key, &sg, &[]);

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
    let ud_text = poll(|| {
        Some(run(&d, &key, &a_pub, "cat ud.txt 2>/dev/null || true")).filter(|t| !t.is_empty())
    });
    assert_eq!(ud_text.as_deref(), Some("made by 42\n"));

    // A web server on B, fetched from A over the VPC once the security group allows it.
    run(
        &d,
        &key,
        &b_pub,
        "mkdir -p /tmp/www && echo hello-from-b > /tmp/www/index.html && \
         (nohup python3 -m http.server 8080 --directory /tmp/www >/dev/null 2>&1 &) ; sleep 1",
    );
    allow_tcp(&d, &sg, 8080, "10.0.0.0/16");
    let url = format!("http://{b_priv}:8080/index.html");
    assert_eq!(
        run(&d, &key, &a_pub, &format!("curl -s -m 5 {url}")),
        "hello-from-b\n"
    );
    revoke_tcp(&d, &sg, 8080, "10.0.0.0/16");
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
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh"]) else {
        return;
    };
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let (id, ip, _) = launch_ready(&d, &net, &key, &sg, &[]);
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
    d.wait_running(&[&id]);
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
    // `vpclab up` as the harness starts it, run by `setpriv` as nobody.
    let up = ProcessDaemon::up_command(&dir.path().join("state"));
    let mut child = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--reset-env",
            "--",
        ])
        .arg(up.get_program())
        .args(
            up.get_args()
                .filter(|a| *a != "--runtime" && *a != "sandbox"),
        )
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
    // Whether instances get their type's CPU and memory limits, and if not, why.
    assert!(
        text.contains("; CPU and memory limits of the instance type (cgroup v2, ")
            || text.contains("; no CPU or memory limits: "),
        "{text}"
    );
}

/// OpenSSH to `host` (a private address) through `bastion`: the bastion's SSH server
/// opens the connection (`ssh -W`, what `-J` does), so it crosses the fabric from the
/// bastion's address. `extra` goes before the destination (such as `-L …`).
fn ssh_via(
    d: &dyn Lab,
    key: &Path,
    bastion: &str,
    host: &str,
    extra: &[&str],
    command: &str,
) -> std::process::Output {
    let opts = format!(
        "-i {} -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        key.display()
    );
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(opts.split(' '))
        .arg("-o")
        .arg(format!(
            // `%%h %%p` reach the inner ssh as `%h %p` (the bastion); `-W %h:%p` is the
            // outer destination.
            "ProxyCommand=ssh {opts} -o 'ProxyCommand={VPCLAB} connect %%h %%p' -W %h:%p ec2-user@{bastion}"
        ))
        .args(extra)
        .arg(format!("ec2-user@{host}"))
        .arg(command)
        .stdin(std::process::Stdio::null());
    d.env(&mut cmd);
    cmd.output().expect("run ssh")
}

/// A private instance's SSH through the bastion, retried while its sshd starts.
fn wait_for_ssh_via(d: &dyn Lab, key: &Path, bastion: &str, host: &str) {
    let up = poll(|| {
        ssh_via(d, key, bastion, host, &[], "true")
            .status
            .success()
            .then_some(())
    });
    assert!(up.is_some(), "no SSH on {host} through {bastion}");
}

/// A bastion in the public subnet and one instance in the private one (SSH from the
/// public subnet, port 80 and 8080 from the VPC): (bastion public IP, private id,
/// private IP).
fn bastion_and_private(d: &dyn Lab, net: &Network, key: &Path) -> (String, String, String) {
    let bastion_sg = net.security_group(d, "bastion", &[(22, "0.0.0.0/0")]);
    let private_sg = net.security_group(
        d,
        "private",
        &[
            (22, "10.0.1.0/24"),
            (80, "10.0.0.0/16"),
            (8080, "10.0.0.0/16"),
        ],
    );
    let (_, bastion, _) = net.launch(d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let (id, _, private) = net.launch(d, &net.private_subnet, "lab", &private_sg, &[]);
    wait_for_ssh(d, key, &bastion);
    wait_for_ssh_via(d, key, &bastion, &private);
    (bastion, id, private)
}

#[test]
fn issue16_sandbox_dnf_needs_a_route_to_the_mirror_and_systemctl_runs_httpd() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh"]) else {
        return;
    };
    let (bastion, id, private) = bastion_and_private(&d, &net, &key);
    let on_private = |command: &str| {
        let out = ssh_via(&d, &key, &bastion, &private, &[], command);
        (out.status.code(), stdout(&out), stderr(&out))
    };

    // Without sudo, dnf refuses before it goes anywhere.
    let (code, _, err) = on_private("dnf install -y httpd");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("has to be run with superuser privileges"),
        "{err}"
    );
    // No route out of the private subnet: the mirror's metadata times out.
    let (code, _, err) = on_private("sudo dnf install -y httpd");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Curl error (28): Timeout was reached"),
        "{err}"
    );
    assert!(err.contains("Cannot download repomd.xml"), "{err}");
    let (code, _, err) = on_private("sudo systemctl start httpd");
    assert_eq!(code, Some(5), "not installed, no unit: {err}");
    assert!(err.contains("Unit httpd.service not found."), "{err}");

    // Through a NAT gateway the mirror answers and httpd installs.
    net.nat_gateway(&d);
    let (code, out, err) = on_private("sudo dnf install -y httpd");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Installing       : httpd-") && out.ends_with("Complete!\n"),
        "{out}"
    );
    let (code, out, err) = on_private(
        "echo '<h1>private web</h1>' | sudo tee /var/www/html/index.html >/dev/null && \
         sudo systemctl enable --now httpd && systemctl is-active httpd && curl -s http://localhost/",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "active\n<h1>private web</h1>\n", "{err}");
    assert!(
        err.contains("Created symlink /etc/systemd/system/multi-user.target.wants/httpd.service"),
        "{err}"
    );
    // Another instance fetches the page over the VPC (the security group allows 80).
    let page = run(
        &d,
        &key,
        &bastion,
        &format!("curl -s -i -m 5 http://{private}/"),
    );
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("Server: Apache/2.4.62 (Amazon Linux)"),
        "{page}"
    );
    assert!(page.ends_with("<h1>private web</h1>\n"), "{page}");
    let (_, log, _) = on_private("cat /var/log/httpd/access_log");
    assert!(log.contains("\"GET / HTTP/1.1\" 200 "), "{log}");

    // Enabled, it comes back after a reboot; stopped, it no longer answers.
    let boots = || {
        d.aws_text(&[
            "get-console-output",
            "--instance-id",
            &id,
            "--query",
            "Output",
        ])
        .matches("Started httpd.service")
        .count()
    };
    assert_eq!(boots(), 0, "not enabled at the first boot");
    d.aws_text(&["reboot-instances", "--instance-ids", &id]);
    let _ = poll_for(80, || (boots() == 1).then_some(()));
    assert_eq!(boots(), 1, "the agent starts the enabled unit at boot");
    wait_for_ssh_via(&d, &key, &bastion, &private);
    let page = run(
        &d,
        &key,
        &bastion,
        &format!("curl -s -m 5 http://{private}/"),
    );
    assert_eq!(page, "<h1>private web</h1>\n");
    let (code, out, err) = on_private("sudo systemctl stop httpd; systemctl is-active httpd");
    assert_eq!((code, out.as_str()), (Some(3), "inactive\n"), "{err}");
    let out = d.ssh(
        &key,
        "ec2-user",
        &bastion,
        &format!("curl -s -m 5 http://{private}/; echo rc=$?"),
    );
    assert_eq!(stdout(&out), "rc=7\n", "refused once stopped");
}

/// The seed's web-server user data (`yum install -y httpd; systemctl start httpd`) on
/// a public instance serves its page to the learner once port 80 is allowed.
#[test]
fn issue16_sandbox_web_server_user_data_serves_the_learner() {
    let script = "#!/bin/bash\nyum update -y\nyum install -y httpd\nsystemctl start httpd\nsystemctl enable httpd\necho \"<h1>Hello World from $(hostname -f)</h1>\" > /var/www/html/index.html\n";
    let Some((d, net, _, sg, ud)) = web_world(script) else {
        return;
    };
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &["--user-data", &ud]);
    let get = || {
        d.vpclab(
            &["connect", "--timeout", "2", &ip, "80"],
            format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes(),
        )
    };
    // The security group does not allow 80 yet.
    assert!(!stdout(&get()).contains("Hello World"));
    allow_tcp(&d, &sg, 80, "0.0.0.0/0");
    let page = poll(|| Some(stdout(&get())).filter(|p| p.contains("Hello World")))
        .unwrap_or_else(|| stdout(&get()));
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("<h1>Hello World from ip-10-0-1-"), "{page}");
}

/// `ssh -L` through a bastion reaches a `python3 -m http.server` on a private instance:
/// the private instance's kernel answers the bastion's kernel through the fabric.
#[test]
fn issue16_sandbox_ssh_local_forward_through_a_bastion() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh", "curl"]) else {
        return;
    };
    let (bastion, _, private) = bastion_and_private(&d, &net, &key);
    let out = ssh_via(
        &d,
        &key,
        &bastion,
        &private,
        &[],
        "echo forwarded > index.html && (nohup python3 -m http.server 8080 >/dev/null 2>&1 &); sleep 1",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A free loopback port for the forward.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let forward = format!("127.0.0.1:{port}:{private}:8080");
    let mut cmd = d.openssh("ssh", &key, 10);
    cmd.args(["-o", "ExitOnForwardFailure=yes", "-N", "-L", &forward])
        .arg(format!("ec2-user@{bastion}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut tunnel = cmd.spawn().expect("ssh -L");
    let body = poll(|| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "3"])
            .arg(format!("http://127.0.0.1:{port}/index.html"))
            .output()
            .expect("curl");
        Some(stdout(&out)).filter(|b| !b.is_empty())
    });
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    assert_eq!(body.as_deref(), Some("forwarded\n"));
}

/// `scp` (SFTP since OpenSSH 9) and `sftp -b` against the sandbox's built-in SFTP server:
/// an upload lands in the home directory, a download returns the same bytes, and a
/// batch makes, lists, renames and removes files.
#[test]
fn issue16_sandbox_scp_and_sftp_use_the_built_in_sftp_server() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh", "scp", "sftp"]) else {
        return;
    };
    let sg = net.security_group(&d, "ssh", &[(22, "0.0.0.0/0")]);
    let (_, ip, _) = launch_ready(&d, &net, &key, &sg, &[]);
    // 300 KiB of varied bytes: more than one SFTP read or write.
    let payload: Vec<u8> = (0..300 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = d.path("payload.bin");
    std::fs::write(&local, &payload).expect("write payload");
    let out = d
        .openssh("scp", &key, 10)
        .arg(&local)
        .arg(format!("ec2-user@{ip}:payload.bin"))
        .output()
        .expect("scp");
    assert!(out.status.success(), "scp up: {}", stderr(&out));
    assert_eq!(run(&d, &key, &ip, "wc -c < payload.bin"), "307200\n");
    let back = d.path("back.bin");
    let out = d
        .openssh("scp", &key, 10)
        .arg(format!("ec2-user@{ip}:payload.bin"))
        .arg(&back)
        .output()
        .expect("scp");
    assert!(out.status.success(), "scp down: {}", stderr(&out));
    assert_eq!(std::fs::read(&back).expect("read back"), payload);

    let batch = d.path("batch.txt");
    let sftp_batch = |file: &Path| {
        d.openssh("sftp", &key, 10)
            .arg("-b")
            .arg(file)
            .arg(format!("ec2-user@{ip}"))
            .output()
            .expect("sftp")
    };
    std::fs::write(
        &batch,
        format!(
            "mkdir reports\nput {} reports/one.bin\nrename reports/one.bin reports/two.bin\nls reports\nrm payload.bin\n",
            local.display()
        ),
    )
    .expect("write batch");
    let out = sftp_batch(&batch);
    assert!(
        out.status.success(),
        "sftp -b: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("reports/two.bin"), "{}", stdout(&out));
    assert_eq!(
        run(
            &d,
            &key,
            &ip,
            "ls reports; test -e payload.bin || echo removed"
        ),
        "two.bin\nremoved\n"
    );
    // A failing command fails the batch, with sftp-server's words.
    std::fs::write(&batch, "get no-such-file\n").expect("write batch");
    let out = sftp_batch(&batch);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

/// IPv6 on the sandbox runtime: the TUN bridge carries IPv6 both ways, and the agent
/// gives `ens5` the instance's IPv6 address as a /128 (as Amazon Linux 2023's DHCPv6
/// does), the subnet's /64 on-link and a default route via fe80::1. The sandbox
/// kernels' own ping6 reaches the other dual-stack instance and the simulated internet
/// (through the egress-only gateway), and real curl fetches the internet's web page
/// over IPv6. AWS rule (Amazon VPC User Guide): an IPv6 security-group rule is needed
/// for IPv6 traffic.
#[test]
fn dual_stack_sandboxes_ping6_each_other_and_the_internet() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh"]) else {
        return;
    };
    crate::ipv6::dual_stack(&d, &net);
    let subnet64 = d.aws_text(&[
        "describe-subnets",
        "--subnet-ids",
        &net.public_subnet,
        "--query",
        "Subnets[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock",
    ]);
    let sg = net.security_group(&d, "v6", &[(22, "0.0.0.0/0")]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=icmpv6,FromPort=-1,ToPort=-1,Ipv6Ranges=[{CidrIpv6=::/0}]",
    ]);
    let (_, a_public, a6) = crate::ipv6::launch6(&d, &net, &net.public_subnet, &sg);
    let (_, b_public, b6) = crate::ipv6::launch6(&d, &net, &net.public_subnet, &sg);
    wait_for_ssh(&d, &key, &a_public);
    wait_for_ssh(&d, &key, &b_public);
    let out = d.ssh(
        &key,
        "ec2-user",
        &a_public,
        &format!(
            "ip -6 addr show dev ens5; ip -6 route; ping6 -c 2 -W 2 {b6}; \
             ping6 -c 1 -W 2 2606:4700:4700::1111; \
             curl -6 -s -m 5 -o /dev/null -w 'http %{{http_code}}\\n' 'http://[2606:4700:4700::1111]/'"
        ),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("inet6 {a6}/128 scope global")),
        "{text}"
    );
    assert!(text.contains(&format!("{subnet64} dev ens5")), "{text}");
    assert!(text.contains("default via fe80::1 dev ens5"), "{text}");
    assert!(
        text.contains(&format!("64 bytes from {b6}: icmp_seq=1 ttl=64")),
        "{text}"
    );
    assert!(text.contains("2 packets transmitted, 2 received"), "{text}");
    assert!(
        text.contains("64 bytes from 2606:4700:4700::1111: icmp_seq=1"),
        "{text}"
    );
    assert!(text.contains("http 200"), "{text}");
    eprintln!("{text}");
}

/// An instance in an IPv6-only subnet on the sandbox runtime: its kernel's `ens5` holds
/// the IPv6 address and no IPv4 address or route, its sshd answers on IPv6 (reached with
/// `ssh -J` through a dual-stack bastion), and real curl reaches the simulated internet
/// over IPv6 through the egress-only gateway. AWS rule (EC2 User Guide, "IPv6-only
/// subnets"): such an instance has no IPv4 address.
#[test]
fn an_ipv6_only_sandbox_has_no_ipv4_and_answers_ssh_over_ipv6() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh", "curl"]) else {
        return;
    };
    let eigw = crate::ipv6::dual_stack(&d, &net);
    let (v6only, _) = crate::ipv6::ipv6_only_subnet(&d, &net, &eigw);
    let sg = net.security_group(&d, "v6", &[(22, "0.0.0.0/0")]);
    d.aws_text(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=22,ToPort=22,Ipv6Ranges=[{CidrIpv6=::/0}]",
    ]);
    let (_, bastion_public, _) = crate::ipv6::launch6(&d, &net, &net.public_subnet, &sg);
    let (_, _, app6) = crate::ipv6::launch6(&d, &net, &v6only, &sg);
    wait_for_ssh(&d, &key, &bastion_public);
    let config = crate::ipv6::jump_config6(&d, &key, &bastion_public);
    let command = "ip -4 addr show dev ens5; ip -6 addr show dev ens5; ip -4 route; \
                   curl -6 -s -m 5 -o /dev/null -w 'http %{http_code}\\n' 'http://[2606:4700:4700::1111]/'";
    let out = poll(|| {
        let out = crate::ipv6::jump6(&d, &config, &app6, command);
        out.status.success().then_some(out)
    })
    .expect("SSH over IPv6 through the bastion");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("inet6 {app6}/128 scope global")),
        "{text}"
    );
    assert!(!text.contains("inet "), "no IPv4 address: {text}");
    assert!(!text.contains("default via"), "no IPv4 route: {text}");
    assert!(text.contains("http 200"), "{text}");
}

/// The VPC's services over IPv6 from a sandbox's real kernel and tools: the host's own
/// `dig` asks the resolver at fd00:ec2::253 ("The Route 53 Resolver is located at
/// 169.254.169.253 (IPv4), fd00:ec2::253 (IPv6) …", Amazon VPC User Guide), and real
/// `curl -6` reaches the metadata service at [fd00:ec2::254] once the instance's
/// `HttpProtocolIpv6` is enabled ("By default, the IPv6 endpoint is disabled"), with an
/// IMDSv2 token as the image requires.
#[test]
fn a_sandbox_reaches_the_resolver_and_metadata_over_ipv6() {
    let Some((d, net, key)) = sandbox_world(&["aws", "ssh"]) else {
        return;
    };
    crate::ipv6::dual_stack(&d, &net);
    let sg = net.security_group(&d, "v6svc", &[(22, "0.0.0.0/0")]);
    let (id, public, _) = crate::ipv6::launch6(&d, &net, &net.public_subnet, &sg);
    wait_for_ssh(&d, &key, &public);
    d.aws_text(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &id,
        "--http-protocol-ipv6",
        "enabled",
    ]);
    let script = "dig +short +tries=1 +time=3 @fd00:ec2::253 example.com AAAA; \
                  T=$(curl -6 -s -m 5 -X PUT 'http://[fd00:ec2::254]/latest/api/token' -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); \
                  curl -6 -s -m 5 -H \"X-aws-ec2-metadata-token: $T\" 'http://[fd00:ec2::254]/latest/meta-data/instance-id'; echo";
    let text = poll(|| {
        let out = d.ssh(&key, "ec2-user", &public, script);
        let text = stdout(&out);
        text.contains(&id).then_some(text)
    })
    .unwrap_or_else(|| stdout(&d.ssh(&key, "ec2-user", &public, script)));
    assert!(text.contains("3fff:198:51:100::129"), "{text}");
    assert!(text.contains(&id), "{text}");
}

//! The instance SSH server against the real OpenSSH client (`ssh`, `scp`,
//! `ssh-keygen`, `ssh-keyscan`). The server runs on 127.0.0.1 sockets only as a test
//! harness; in the product it serves port 22 on the instance's fabric stack.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;

use crate::support::emulated_only;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::process::Command;
use vpclab::instance::{FakeNet, Image, InstanceProfile, InstanceState, serve_ssh};

/// Why these tests skip the sandbox runtime: they drive the emulated runtime's SSH
/// server in this process (no daemon), so `VPCLAB_TEST_RUNTIME` does not reach them; the
/// sandbox's SSH server is checked through a daemon in `ssh.rs` and `sandbox.rs`.
const IN_PROCESS: &str = "an in-process test of the emulated runtime's SSH server (no daemon)";

struct Lab {
    dir: tempfile::TempDir,
    port: u16,
    inst: Arc<InstanceState>,
}

/// Creates a key pair with ssh-keygen (mode 0400 private key, like `chmod 400`).
async fn keygen(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    for tool in ["ssh", "scp", "ssh-keygen", "ssh-keyscan"] {
        crate::support::require(tool);
    }
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-C", name, "-f"]).arg(&path);
    match kind {
        // AWS hands out RSA keys as PKCS#1 PEM ("BEGIN RSA PRIVATE KEY").
        "rsa" => cmd.args(["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        _ => cmd.args(["-t", "ed25519"]),
    };
    let out = cmd.output().await.expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    set_mode(&path, 0o400);
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", path.display())))
        .expect("public key");
    (path, public.trim().to_string())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

async fn lab(image: Image, key_kind: &str) -> (Lab, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = keygen(dir.path(), "test01.pem", key_kind).await;
    let mut p = InstanceProfile::example(image, "10.0.1.5".parse().expect("ip"));
    p.key_name = Some("test01".to_string());
    p.authorized_key = Some(public);
    let net = FakeNet::new(p.private_ip, 24, &p.mac);
    let inst = InstanceState::launch(p, net);
    let port = serve(inst.clone()).await;
    (Lab { dir, port, inst }, key)
}

/// Serves SSH for `inst` on a fresh loopback port.
async fn serve(inst: Arc<InstanceState>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let inst = inst.clone();
            tokio::spawn(async move {
                let _ = serve_ssh(sock, inst).await;
            });
        }
    });
    port
}

fn base_opts(port: u16) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["-p".to_string(), port.to_string()])
    .collect()
}

async fn ssh(port: u16, key: &Path, user: &str, args: &[&str]) -> Output {
    Command::new("ssh")
        .args(base_opts(port))
        .arg("-i")
        .arg(key)
        .arg(format!("{user}@127.0.0.1"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("ssh runs")
}

/// Runs `scp` against the lab's server with its key.
async fn scp(lab: &Lab, key: &Path, args: &[String]) -> Output {
    Command::new("scp")
        .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
        .args(["-P", &lab.port.to_string(), "-i"])
        .arg(key)
        .args(args)
        .output()
        .await
        .expect("scp runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_login_exec_returns_output_and_exit_status() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let out = ssh(lab.port, &key, "ec2-user", &["hostname; whoami; exit 3"]).await;
    assert_eq!(text(&out.stdout), "ip-10-0-1-5.ec2.internal\nec2-user\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = ssh(lab.port, &key, "ec2-user", &["no-such-tool"]).await;
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        text(&out.stderr),
        "-bash: no-such-tool: command not found\n"
    );
    let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pem_key_logs_in_as_ubuntu_on_ubuntu() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::Ubuntu2404, "rsa").await;
    let pem = std::fs::read_to_string(&key).expect("key");
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let out = ssh(
        lab.port,
        &key,
        "ubuntu",
        &["id -un && grep PRETTY /etc/os-release"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ubuntu\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_user_or_wrong_key_gets_permission_denied_publickey() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let out = ssh(lab.port, &key, "ubuntu", &["true"]).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
    let (other, _) = keygen(lab.dir.path(), "other.pem", "ed25519").await;
    // root with a key nobody authorized is refused like any other user.
    let out = ssh(lab.port, &other, "root", &["true"]).await;
    assert!(text(&out.stderr).contains("Permission denied (publickey)"));
    let out = ssh(lab.port, &other, "ec2-user", &["true"]).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_readable_by_others_is_refused_by_openssh_itself() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    set_mode(&key, 0o644);
    let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255));
    assert!(err.contains("UNPROTECTED PRIVATE KEY FILE"), "{err}");
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    set_mode(&key, 0o400);
    let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_appended_to_authorized_keys_on_the_instance_can_log_in() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let (second, public) = keygen(lab.dir.path(), "second.pem", "ed25519").await;
    let out = ssh(lab.port, &second, "ec2-user", &["true"]).await;
    assert_eq!(out.status.code(), Some(255));
    let add = format!("echo '{public}' >> ~/.ssh/authorized_keys");
    let out = ssh(lab.port, &key, "ec2-user", &[&add]).await;
    assert_eq!(out.status.code(), Some(0));
    let out = ssh(lab.port, &second, "ec2-user", &["whoami"]).await;
    assert_eq!(text(&out.stdout), "ec2-user\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_piped_into_exec_commands() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let mut child = Command::new("ssh")
        .args(base_opts(lab.port))
        .arg("-i")
        .arg(&key)
        .arg("ec2-user@127.0.0.1")
        .arg("cat > notes.txt; wc -c notes.txt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hello vpclab\n").await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("wait");
    assert_eq!(text(&out.stdout), "13 notes.txt\n", "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_uploads_and_downloads_through_sftp() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let local = lab.dir.path().join("up.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).expect("write");
    let scp = |args: Vec<String>| async move {
        Command::new("scp")
            .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
            .args(args)
            .output()
            .await
            .expect("scp runs")
    };
    let common = |lab: &Lab, key: &Path| {
        vec![
            "-P".to_string(),
            lab.port.to_string(),
            "-i".to_string(),
            key.display().to_string(),
        ]
    };
    let mut up = common(&lab, &key);
    up.push(local.display().to_string());
    up.push("ec2-user@127.0.0.1:upload.bin".to_string());
    let out = scp(up).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stored = lab
        .inst
        .disk()
        .fs
        .read(
            "/home/ec2-user/upload.bin",
            vpclab::instance::vfs::Cred::ROOT,
        )
        .expect("uploaded")
        .to_vec();
    assert_eq!(stored, data);

    let back = lab.dir.path().join("down.bin");
    let mut down = common(&lab, &key);
    down.push("ec2-user@127.0.0.1:upload.bin".to_string());
    down.push(back.display().to_string());
    let out = scp(down).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&back).expect("downloaded"), data);

    // Without sudo the web root is not writable, over scp as in the shell.
    let mut denied = common(&lab, &key);
    denied.push(local.display().to_string());
    denied.push("ec2-user@127.0.0.1:/var/www/html/up.bin".to_string());
    let out = scp(denied).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_pty_session_shows_banner_prompt_and_runs_commands() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let mut child = Command::new("ssh")
        .args(base_opts(lab.port))
        .arg("-tt")
        .arg("-i")
        .arg(&key)
        .arg("ec2-user@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // A typo fixed with backspace, then a command, then exit with a status.
    stdin
        .write_all(b"whoamx\x7fi\ncd /var/log\nexit 5\n")
        .await
        .expect("write");
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("session ends")
        .expect("wait");
    drop(stdin);
    let screen = text(&out.stdout);
    assert!(screen.contains("Amazon Linux 2023"), "{screen}");
    assert!(screen.contains("[ec2-user@ip-10-0-1-5 ~]$ "), "{screen}");
    assert!(screen.contains("ec2-user\r\n"), "{screen}");
    assert!(screen.contains("[ec2-user@ip-10-0-1-5 log]$ "), "{screen}");
    assert!(screen.contains("logout"), "{screen}");
    assert_eq!(out.status.code(), Some(5));
}

async fn keyscan_fingerprint(port: u16) -> String {
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .await
        .expect("keyscan");
    let mut fp = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ssh-keygen");
    let mut stdin = fp.stdin.take().expect("stdin");
    stdin.write_all(&scan.stdout).await.expect("write");
    drop(stdin);
    let out = fp.wait_with_output().await.expect("wait");
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_output_fingerprint_matches_what_ssh_sees_and_survives_restart() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, _key) = lab(Image::AmazonLinux2023, "ed25519").await;
    lab.inst.boot().await;
    let console = lab.inst.console_output();
    let seen = keyscan_fingerprint(lab.port).await;
    assert!(seen.starts_with("SHA256:"), "{seen}");
    assert!(
        console.contains(&format!(
            "256 {seen} root@ip-10-0-1-5.ec2.internal (ED25519)"
        )),
        "{console}"
    );
    // Persist the disk, bring the instance back: same host key, so known_hosts stays valid.
    let saved = serde_json::to_string(&lab.inst.disk()).expect("serialize");
    let disk = serde_json::from_str(&saved).expect("deserialize");
    let profile = lab.inst.profile();
    let net = FakeNet::new(profile.private_ip, 24, &profile.mac);
    let again = InstanceState::from_disk(profile, disk, net);
    let port = serve(again).await;
    assert_eq!(keyscan_fingerprint(port).await, seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bastion_hop_relays_an_interactive_session_to_the_private_instance() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use std::net::{Ipv4Addr, SocketAddrV4};
    // The private instance, reachable only on the bastion's network.
    let inner_key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
    let private_ip = Ipv4Addr::new(10, 0, 2, 10);
    let mut pp = InstanceProfile::example(Image::AmazonLinux2023, private_ip);
    pp.authorized_key = Some(inner_key.public_key().to_openssh().expect("public"));
    let private = InstanceState::launch(pp.clone(), FakeNet::new(private_ip, 24, &pp.mac));

    let dir = tempfile::tempdir().expect("tempdir");
    let (bkey, bpub) = keygen(dir.path(), "bastion.pem", "ed25519").await;
    let mut bp = InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
    bp.authorized_key = Some(bpub);
    let net = FakeNet::new(bp.private_ip, 24, &bp.mac);
    net.add_service(
        SocketAddrV4::new(private_ip, 22),
        Arc::new(move |stream, _| {
            let inst = private.clone();
            Box::pin(async move {
                let _ = serve_ssh(stream, inst).await;
            })
        }),
    );
    let bastion = InstanceState::launch(bp, net);
    let pem = inner_key
        .to_openssh(LineEnding::LF)
        .expect("pem")
        .to_string();
    // The learner copies the private instance's key to the bastion with scp.
    let port = serve(bastion.clone()).await;
    let local_pem = dir.path().join("private.pem");
    std::fs::write(&local_pem, pem).expect("write");
    let out = Command::new("scp")
        .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
        .args(["-P", &port.to_string(), "-i"])
        .arg(&bkey)
        .arg(&local_pem)
        .arg("ec2-user@127.0.0.1:private.pem")
        .output()
        .await
        .expect("scp");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut child = Command::new("ssh")
        .args(base_opts(port))
        .arg("-tt")
        .arg("-i")
        .arg(&bkey)
        .arg("ec2-user@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let pause = std::time::Duration::from_millis(700);
    for line in [
        "chmod 400 private.pem\n",
        "ssh -o StrictHostKeyChecking=no -i private.pem ec2-user@10.0.2.10\n",
        "hostname\n",
        "exit\n",
        "hostname\n",
        "exit\n",
    ] {
        stdin.write_all(line.as_bytes()).await.expect("type");
        tokio::time::sleep(pause).await;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("session ends")
        .expect("wait");
    drop(stdin);
    let screen = text(&out.stdout);
    assert!(screen.contains("[ec2-user@ip-10-0-2-10 ~]$ "), "{screen}");
    assert!(screen.contains("ip-10-0-2-10.ec2.internal"), "{screen}");
    assert!(
        screen.contains("Connection to 10.0.2.10 closed."),
        "{screen}"
    );
    // Back on the bastion after the inner exit.
    let after = screen
        .split("Connection to 10.0.2.10 closed.")
        .nth(1)
        .unwrap_or_default();
    assert!(after.contains("ip-10-0-1-5.ec2.internal"), "{screen}");
    assert_eq!(out.status.code(), Some(0));
}

/// Figures for the report, not a pass/fail check:
/// `cargo test --test world instance_ssh::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_login_exec_and_scp_throughput() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
        assert_eq!(out.status.code(), Some(0));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let size = 32 * 1024 * 1024;
    let local = lab.dir.path().join("big.bin");
    std::fs::write(&local, vec![0x5a; size]).expect("write");
    let t = std::time::Instant::now();
    let out = Command::new("scp")
        .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
        .args(["-P", &lab.port.to_string(), "-i"])
        .arg(&key)
        .arg(&local)
        .arg("ec2-user@127.0.0.1:big.bin")
        .output()
        .await
        .expect("scp");
    assert_eq!(out.status.code(), Some(0));
    let up = size as f64 * 8.0 / 1e6 / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let out = Command::new("scp")
        .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
        .args(["-P", &lab.port.to_string(), "-i"])
        .arg(&key)
        .arg("ec2-user@127.0.0.1:big.bin")
        .arg(lab.dir.path().join("back.bin"))
        .output()
        .await
        .expect("scp");
    assert_eq!(out.status.code(), Some(0));
    let down = size as f64 * 8.0 / 1e6 / t.elapsed().as_secs_f64();
    println!(
        "MEASURE ssh login_exec_ms p50={:.1} min={:.1} max={:.1}; scp 32MiB up_mbps={up:.0} down_mbps={down:.0}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_sha1_ssh_rsa_signatures_are_refused() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "rsa").await;
    // AL2023's sshd (OpenSSH 8.7 with the DEFAULT crypto policy) and Ubuntu 24.04's
    // refuse SHA-1 RSA signatures; rsa-sha2-256/512 with the same key work.
    let out = ssh(
        lab.port,
        &key,
        "ec2-user",
        &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa", "true"],
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
    for alg in ["rsa-sha2-256", "rsa-sha2-512"] {
        let opt = format!("PubkeyAcceptedAlgorithms={alg}");
        let out = ssh(lab.port, &key, "ec2-user", &["-o", &opt, "true"]).await;
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", text(&out.stderr));
    }
    // A client that signs with SHA-1 anyway (not announced by the server) is refused
    // by the server itself.
    let mut h = russh_login(lab.port).await;
    let private = russh::keys::load_secret_key(&key, None).expect("key");
    let sha1 = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(private.clone()), None);
    let r = h
        .authenticate_publickey("ec2-user", sha1)
        .await
        .expect("auth");
    assert!(!r.success(), "an ssh-rsa (SHA-1) signature was accepted");
    let sha2 = russh::keys::PrivateKeyWithHashAlg::new(
        Arc::new(private),
        Some(russh::keys::HashAlg::Sha256),
    );
    let r = h
        .authenticate_publickey("ec2-user", sha2)
        .await
        .expect("auth");
    assert!(r.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_root_login_prints_which_user_to_log_in_as() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let ((al, al_key), (ub, ub_key)) = tokio::join!(
        lab(Image::AmazonLinux2023, "ed25519"),
        lab(Image::Ubuntu2404, "ed25519")
    );
    let started = std::time::Instant::now();
    let (al_out, ub_out) = tokio::join!(
        ssh(al.port, &al_key, "root", &["whoami"]),
        ssh(ub.port, &ub_key, "root", &["whoami"])
    );
    // cloud-init's forced command for root: the message, a blank line, ten seconds,
    // status 142; the command asked for never runs.
    for (out, user) in [(al_out, "ec2-user"), (ub_out, "ubuntu")] {
        assert_eq!(
            text(&out.stdout),
            format!("Please login as the user \"{user}\" rather than the user \"root\".\n\n"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(142));
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_scp_and_sftp_cannot_overwrite_root_owned_files() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let cred = vpclab::instance::vfs::Cred::ROOT;
    let before = |p: &str| lab.inst.disk().fs.read(p, cred).map(<[u8]>::to_vec);
    let (hostname, passwd) = (before("/etc/hostname"), before("/etc/passwd"));
    let local = lab.dir.path().join("evil");
    std::fs::write(&local, b"evil\n").expect("write");
    for target in ["/etc/hostname", "/etc/passwd"] {
        let out = scp(
            &lab,
            &key,
            &[
                local.display().to_string(),
                format!("ec2-user@127.0.0.1:{target}"),
            ],
        )
        .await;
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{}",
            text(&out.stderr)
        );
    }
    // With the sftp client: put, then rename over the file.
    let batch = lab.dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} evil\n-rename evil /etc/hostname\n-chmod 666 /etc/passwd\n",
            local.display()
        ),
    )
    .expect("batch");
    let out = Command::new("sftp")
        .args(base_opts(0).into_iter().filter(|a| a != "-p" && a != "0"))
        .args(["-P", &lab.port.to_string(), "-i"])
        .arg(&key)
        .arg("-b")
        .arg(&batch)
        .arg("ec2-user@127.0.0.1")
        .output()
        .await
        .expect("sftp runs");
    let err = text(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(before("/etc/hostname"), hostname);
    assert_eq!(before("/etc/passwd"), passwd);
    assert_eq!(
        lab.inst.disk().fs.get("/etc/passwd").map(|n| n.mode),
        Some(0o644)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_a_full_disk_says_no_space_left_on_device() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    // A 300 KB upload into 100 KB of free space.
    lab.inst
        .set_disk_capacity(lab.inst.disk_used() + 100 * 1024);
    let local = lab.dir.path().join("big.bin");
    std::fs::write(&local, vec![1u8; 300_000]).expect("write");
    let out = scp(
        &lab,
        &key,
        &[
            local.display().to_string(),
            "ec2-user@127.0.0.1:big.bin".to_string(),
        ],
    )
    .await;
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("No space left on device") || err.contains("Failure"),
        "{err}"
    );
    // Free it again, then fill the disk to the byte: the shell reports the failed
    // writes as bash and coreutils do.
    let out = ssh(
        lab.port,
        &key,
        "ec2-user",
        &["rm -f big.bin; echo 12345 > small"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    lab.inst.set_disk_capacity(lab.inst.disk_used());
    let out = ssh(
        lab.port,
        &key,
        "ec2-user",
        &["echo more >> small; echo status=$?; echo x > new"],
    )
    .await;
    assert_eq!(text(&out.stdout), "status=1\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("-bash: echo: write error: No space left on device"),
        "{err}"
    );
    assert!(err.contains("-bash: new: No space left on device"), "{err}");
    assert_eq!(out.status.code(), Some(1));
    // The disk still holds what it held.
    let cred = vpclab::instance::vfs::Cred::ROOT;
    assert_eq!(
        lab.inst.disk().fs.read("/home/ec2-user/small", cred),
        Ok(&b"12345\n"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_ssh_connections_per_instance_are_limited() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    use vpclab::instance::ssh::MAX_CONNECTIONS_PER_INSTANCE;
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    // Connections that never authenticate hold their places (until the login grace
    // time); the next one is closed at once.
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_INSTANCE {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", lab.port))
            .await
            .expect("connect");
        // The banner proves the server took it.
        let mut banner = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut c, &mut banner)
            .await
            .expect("banner");
        assert_eq!(&banner, b"SSH-");
        held.push(c);
    }
    let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    // One place given back: logins work again.
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        let out = ssh(lab.port, &key, "ec2-user", &["true"]).await;
        if out.status.code() == Some(0) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a freed place is not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_ssh_sessions_per_connection_are_limited() {
    if emulated_only(IN_PROCESS) {
        return;
    }
    use vpclab::instance::ssh::MAX_SESSIONS;
    let (lab, key) = lab(Image::AmazonLinux2023, "ed25519").await;
    let mut h = russh_login(lab.port).await;
    let private = russh::keys::load_secret_key(&key, None).expect("key");
    let r = h
        .authenticate_publickey(
            "ec2-user",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(private), None),
        )
        .await
        .expect("auth");
    assert!(r.success());
    let mut open = Vec::new();
    for _ in 0..MAX_SESSIONS {
        open.push(h.channel_open_session().await.expect("session"));
    }
    assert!(
        h.channel_open_session().await.is_err(),
        "a session past MaxSessions was opened"
    );
    // The open ones keep working.
    let mut ch = open.pop().expect("one");
    ch.exec(true, "echo alive").await.expect("exec");
    let mut out = Vec::new();
    while let Some(msg) = ch.wait().await {
        if let russh::ChannelMsg::Data { data } = msg {
            out.extend_from_slice(&data);
        }
    }
    assert_eq!(out, b"alive\n");
    // That one has ended: there is room for another.
    let mut room = false;
    for _ in 0..50 {
        if h.channel_open_session().await.is_ok() {
            room = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(room);
}

/// A russh client connected to the lab's server, before authentication.
async fn russh_login(port: u16) -> russh::client::Handle<AnyHost> {
    let config = Arc::new(russh::client::Config::default());
    russh::client::connect(config, ("127.0.0.1", port), AnyHost)
        .await
        .expect("connect")
}

/// Accepts any host key (the test's own server).
struct AnyHost;

impl russh::client::Handler for AnyHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

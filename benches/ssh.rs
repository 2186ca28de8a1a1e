//! SSH benchmark: the real OpenSSH client logging into an instance through
//! `vpclab connect` (ProxyCommand → daemon API port → learner host → internet gateway →
//! security group → the instance's russh server), against the same client logging into a
//! real `sshd` (Debian's openssh-server) that this bench starts on a loopback port, in
//! the same run. Then a 100 MB `scp` upload and download (OpenSSH 9: SFTP) each way.
//!
//! Prints, as its last line,
//! `BENCH ssh login_exec_ms=<p50> sshd_login_exec_ms=<p50> ratio=<ours/sshd>
//! scp_mbps=<n> sshd_scp_mbps=<n>`, where a login is `ssh … host true` (new process,
//! key exchange, public-key authentication, exec, exit status) and scp Mbit/s counts the
//! bytes of both directions over the time of both transfers.
//!
//! Needs `aws` (the CLI), `ssh`, `scp`, `ssh-keygen` and `/usr/sbin/sshd`
//! (`apt-get install -y openssh-server`); without them it says so and exits with 2.
//! Everything listens on and connects to 127.0.0.1 only. `SSH_BENCH_N` (default 20)
//! sets the number of timed logins; `SSH_BENCH_MB` (default 100) the file size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Killed, VPCLAB, Vpclab, check, env_usize, free_port, have, p50};
const SSHD: &str = "/usr/sbin/sshd";
/// Debian's path of the SFTP server sshd runs for `scp`.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// The baseline: Debian's sshd in the foreground, its own host key, only our key.
struct Sshd {
    _child: Killed,
    port: u16,
    user: String,
}

impl Sshd {
    fn start(dir: &Path, pem: &Path) -> Sshd {
        let host_key = dir.join("ssh_host_ed25519_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .output()
            .expect("run ssh-keygen");
        check(&out, "ssh-keygen (host key)");
        let out = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(pem)
            .output()
            .expect("run ssh-keygen -y");
        check(&out, "ssh-keygen -y (public key of the .pem)");
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, &out.stdout).expect("write authorized_keys");
        let sftp = if Path::new(SFTP_SERVER).exists() {
            SFTP_SERVER
        } else {
            "internal-sftp"
        };
        // `SetEnv SHLVL=1`: Debian's bash sources ~/.bashrc when sshd runs it (`bash -c
        // true`) unless it is a nested shell; an account's .bashrc (pyenv init on a
        // developer machine runs a hundred processes) would otherwise be measured as
        // sshd's login time. The instance runs no rc file either.
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "HostKey {}\nAuthorizedKeysFile {}\nPidFile none\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPrintMotd no\nPrintLastLog no\n\
                 LogLevel ERROR\nSubsystem sftp {sftp}\nSetEnv SHLVL=1\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .expect("write sshd_config");
        // sshd refuses to start as root without its privilege-separation directory.
        if is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let port = free_port();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .args(["-p", &port.to_string(), "-o", "ListenAddress=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sshd");
        let child = Killed(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sshd_answers(port) {
            assert!(Instant::now() < deadline, "sshd did not answer on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            _child: child,
            port,
            user: whoami(),
        }
    }
}

/// Whether an SSH server answers on the port: reads its version line and sends one back,
/// so the probe ends as an ordinary early disconnect rather than an error in sshd's log.
fn sshd_answers(port: u16) -> bool {
    use std::io::Read as _;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    let _ = s.write_all(b"SSH-2.0-vpclab-bench-probe\r\n");
    buf[..n].starts_with(b"SSH-")
}

fn is_root() -> bool {
    whoami() == "root"
}

fn whoami() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// One side of the comparison: how OpenSSH reaches it.
struct Target<'a> {
    name: &'static str,
    /// `user@host`.
    dest: String,
    /// Options that differ between the sides (port, ProxyCommand).
    extra: Vec<String>,
    /// Where scp puts the file on the server.
    remote_path: String,
    vpclab: Option<&'a Vpclab>,
}

impl Target<'_> {
    fn command(&self, program: &str, pem: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-i").arg(pem).args([
            "-F",
            "/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            // The key exchange both servers speak. OpenSSH 9 would pick the
            // post-quantum sntrup761x25519 with sshd (russh lacks it), whose key
            // generation alone costs more than a whole login on a loaded machine:
            // the ratio would then flatter vpclab by a cost that is not the server's.
            "-o",
            "KexAlgorithms=curve25519-sha256",
        ]);
        cmd.args(&self.extra).stdin(Stdio::null());
        if let Some(v) = self.vpclab {
            v.env(&mut cmd);
        }
        cmd
    }

    /// One `ssh … true`, in milliseconds.
    fn login(&self, pem: &Path) -> f64 {
        let mut cmd = self.command("ssh", pem);
        cmd.arg(&self.dest).arg("true");
        let t = Instant::now();
        let out = cmd.output().expect("run ssh");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        check(&out, &format!("ssh into {}", self.name));
        ms
    }

    /// Seconds of `scp from to`.
    fn scp(&self, pem: &Path, from: &str, to: &str) -> f64 {
        let mut cmd = self.command("scp", pem);
        // scp takes the port as -P; `extra` holds `-o Port=…`, which both accept.
        cmd.arg("-q").arg(from).arg(to);
        let t = Instant::now();
        let out = cmd.output().expect("run scp");
        let s = t.elapsed().as_secs_f64();
        check(&out, &format!("scp {from} {to} ({})", self.name));
        s
    }

    /// (upload s, download s) of `file`; checks the copy came back identical.
    fn transfer(&self, pem: &Path, file: &Path, back: &Path) -> (f64, f64) {
        let remote = format!("{}:{}", self.dest, self.remote_path);
        let up = self.scp(pem, &file.display().to_string(), &remote);
        let _ = std::fs::remove_file(back);
        let down = self.scp(pem, &remote, &back.display().to_string());
        let (a, b) = (
            std::fs::read(file).expect("read the original"),
            std::fs::read(back).expect("read the copy"),
        );
        assert!(
            a == b,
            "{}: the downloaded file differs from the uploaded one",
            self.name
        );
        (up, down)
    }
}

/// `mb` MiB of incompressible bytes (xorshift), so no layer can cheat by compressing.
fn make_file(path: &Path, mb: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create test file"));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block).expect("write test file");
    }
    f.flush().expect("flush test file");
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` runs this binary without
    // it: the login and scp paths are covered by tests/world/ssh.rs, and the baseline
    // needs an OpenSSH server that the test machine need not have, so stop here.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ssh bench: not run under cargo test (run `cargo bench --bench ssh` for figures)");
        return ExitCode::SUCCESS;
    }
    let n = env_usize("SSH_BENCH_N", 20);
    let mb = env_usize("SSH_BENCH_MB", 100);
    for (tool, arg) in [("aws", "--version"), ("ssh", "-V"), ("ssh-keygen", "-?")] {
        if !have(tool, arg) {
            eprintln!(
                "ssh bench: `{tool}` is missing (bash scripts/install-test-deps installs the clients)"
            );
            return ExitCode::from(2);
        }
    }
    if !Path::new(SSHD).exists() {
        eprintln!(
            "ssh bench: {SSHD} is missing; the baseline needs Debian's OpenSSH server: \
             sudo apt-get install -y openssh-server"
        );
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path();
    let pem: PathBuf = tmp.join("bench.pem");

    let vpclab = Vpclab::start(&tmp.join("state"));
    let public_ip = vpclab.launch(&pem);
    let sshd = Sshd::start(tmp, &pem);
    eprintln!(
        "ssh bench: instance at {public_ip} (through vpclab connect, {}), sshd on 127.0.0.1:{}; setup {:.1} s",
        vpclab.url,
        sshd.port,
        started.elapsed().as_secs_f64()
    );

    let ours = Target {
        name: "vpclab",
        dest: format!("ec2-user@{public_ip}"),
        extra: vec!["-o".into(), format!("ProxyCommand={VPCLAB} connect %h %p")],
        remote_path: "bench.bin".into(),
        vpclab: Some(&vpclab),
    };
    let theirs = Target {
        name: "sshd",
        dest: format!("{}@127.0.0.1", sshd.user),
        extra: vec!["-o".into(), format!("Port={}", sshd.port)],
        remote_path: tmp.join("remote.bin").display().to_string(),
        vpclab: None,
    };

    // Warm up both (page cache, first-connection costs), then alternate, so load from
    // other processes on the machine falls on both sides alike.
    for _ in 0..2 {
        ours.login(&pem);
        theirs.login(&pem);
    }
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        a.push(ours.login(&pem));
        b.push(theirs.login(&pem));
    }
    let (login, sshd_login) = (p50(a.clone()), p50(b.clone()));
    eprintln!(
        "login+exec p50 over {n}: vpclab {login:.1} ms (min {:.1}), sshd {sshd_login:.1} ms (min {:.1})",
        a.iter().copied().fold(f64::MAX, f64::min),
        b.iter().copied().fold(f64::MAX, f64::min)
    );

    let file = tmp.join("payload.bin");
    make_file(&file, mb);
    let bits = (mb as f64) * 1024.0 * 1024.0 * 8.0;
    let mbps = |(up, down): (f64, f64)| 2.0 * bits / (up + down) / 1e6;
    let back = tmp.join("back.bin");
    let t_ours = ours.transfer(&pem, &file, &back);
    let t_sshd = theirs.transfer(&pem, &file, &back);
    let (scp, sshd_scp) = (mbps(t_ours), mbps(t_sshd));
    eprintln!(
        "scp {mb} MiB: vpclab up {:.2} s down {:.2} s ({scp:.0} Mbit/s); sshd up {:.2} s down {:.2} s ({sshd_scp:.0} Mbit/s); total {:.1} s",
        t_ours.0,
        t_ours.1,
        t_sshd.0,
        t_sshd.1,
        started.elapsed().as_secs_f64()
    );
    println!(
        "BENCH ssh login_exec_ms={login:.1} sshd_login_exec_ms={sshd_login:.1} ratio={:.2} scp_mbps={scp:.0} sshd_scp_mbps={sshd_scp:.0}",
        login / sshd_login
    );
    ExitCode::SUCCESS
}

//! What the benches that drive a real `vpclab up` share: the daemon started as a learner
//! starts it, the aws CLI pointed at it, and a first instance to log into.

#![allow(dead_code)] // each bench uses its own subset

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const VPCLAB: &str = env!("CARGO_BIN_EXE_vpclab");

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

pub fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback TCP port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The daemon under test, started like a learner would (`vpclab up`), on port 0.
pub struct Vpclab {
    _child: Killed,
    /// The daemon's process id (for its resident memory).
    pub pid: u32,
    pub url: String,
}

impl Vpclab {
    pub fn start(state: &Path) -> Vpclab {
        Vpclab::start_with(state, &[])
    }

    /// Starts the daemon with more `vpclab up` arguments.
    pub fn start_with(state: &Path, extra: &[&str]) -> Vpclab {
        let mut child = Command::new(VPCLAB)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(state)
            .args(extra)
            // A short boot: the bench measures SSH, not the pending state.
            .env("VPCLAB_BOOT_DELAY_MS", "200")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vpclab up");
        let stdout = child.stdout.take().expect("piped stdout");
        let pid = child.id();
        let child = Killed(child);
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("vpclab up exited before printing its endpoint")
                .expect("read vpclab stdout");
            if let Some(rest) = line.strip_prefix("export AWS_ENDPOINT_URL=") {
                break rest.split_whitespace().next().expect("url").to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Vpclab {
            _child: child,
            pid,
            url,
        }
    }

    /// The environment the aws CLI and `vpclab connect` use: this daemon, test keys,
    /// no user configuration.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "")
            .env("AWS_CONFIG_FILE", "/nonexistent/vpclab-bench-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/vpclab-bench-credentials",
            )
            .env("AWS_ENDPOINT_URL", &self.url)
            .env_remove("VPCLAB_ENDPOINT")
            .env_remove("AWS_PROFILE");
    }

    /// `aws ec2 … --output text`, trimmed.
    pub fn aws(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("aws");
        cmd.arg("ec2").args(args).args(["--output", "text"]);
        self.env(&mut cmd);
        let out = cmd.output().expect("run aws");
        check(&out, &format!("aws ec2 {}", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Key pair, security group allowing SSH, one Amazon Linux instance in the default
    /// VPC; returns its public IP once it is running.
    pub fn launch(&self, pem: &Path) -> String {
        let material = self.aws(&[
            "create-key-pair",
            "--key-name",
            "bench",
            "--key-type",
            "ed25519",
            "--query",
            "KeyMaterial",
        ]);
        write_private_key(pem, &format!("{material}\n"));
        let vpc = self.aws(&[
            "describe-vpcs",
            "--filters",
            "Name=is-default,Values=true",
            "--query",
            "Vpcs[0].VpcId",
        ]);
        let sg = self.aws(&[
            "create-security-group",
            "--group-name",
            "bench-ssh",
            "--description",
            "SSH for the benchmark",
            "--vpc-id",
            &vpc,
            "--query",
            "GroupId",
        ]);
        self.aws(&[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ]);
        let ami = self.aws(&[
            "describe-images",
            "--owners",
            "amazon",
            "--filters",
            "Name=name,Values=al2023-ami-*",
            "--query",
            "sort_by(Images, &CreationDate)[-1].ImageId",
        ]);
        let id = self.aws(&[
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let row = self.aws(&[
                "describe-instances",
                "--instance-ids",
                &id,
                "--query",
                "Reservations[0].Instances[0].[State.Name,PublicIpAddress]",
            ]);
            let mut it = row.split_whitespace();
            if let (Some("running"), Some(ip)) = (it.next(), it.next())
                && ip != "None"
            {
                return ip.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not reach running with a public IP: {row}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub fn write_private_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write the key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod 400");
}

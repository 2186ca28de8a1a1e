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

    /// `PROGRAM -i PEM` (ssh, scp, sftp) with the options every bench login uses:
    /// no user configuration, no host-key prompts, through `vpclab connect`.
    pub fn ssh_program(&self, program: &str, pem: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-i").arg(pem);
        for opt in [
            "BatchMode=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
        ] {
            cmd.args(["-o", opt]);
        }
        cmd.args(["-F", "/dev/null", "-o"])
            .arg(format!("ProxyCommand={VPCLAB} connect %h %p"));
        self.env(&mut cmd);
        cmd
    }

    /// `ssh ec2-user@HOST COMMAND` with [`Vpclab::ssh_program`]'s options.
    pub fn ssh(&self, pem: &Path, host: &str, command: &str) -> Output {
        self.ssh_program("ssh", pem)
            .arg(format!("ec2-user@{host}"))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// Retries `true` over SSH until the instance's server answers (30 s at most).
    pub fn wait_ssh(&self, pem: &Path, host: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ssh(pem, host, "true").status.success() {
            assert!(Instant::now() < deadline, "no SSH on {host}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Lets TCP `port` in from `cidr` on security group `sg`.
    pub fn open_port(&self, sg: &str, port: u16, cidr: &str) {
        let rule =
            format!("IpProtocol=tcp,FromPort={port},ToPort={port},IpRanges=[{{CidrIp={cidr}}}]");
        self.aws(&[
            "authorize-security-group-ingress",
            "--group-id",
            sg,
            "--ip-permissions",
            &rule,
        ]);
    }

    /// `count` t3.micro instances of `ami` with the `bench` key pair and group `sg`;
    /// returns their ids once all are running, with their public and private IPs.
    pub fn run_instances(&self, ami: &str, sg: &str, count: usize) -> Vec<[String; 3]> {
        let ids = self.aws(&[
            "run-instances",
            "--image-id",
            ami,
            "--instance-type",
            "t3.micro",
            "--key-name",
            "bench",
            "--security-group-ids",
            sg,
            "--count",
            &count.to_string(),
            "--query",
            "Instances[].InstanceId",
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut args = vec!["describe-instances", "--instance-ids"];
            args.extend(&ids);
            args.extend([
                "--query",
                "Reservations[].Instances[].[InstanceId,State.Name,PublicIpAddress,PrivateIpAddress]",
            ]);
            let rows = self.aws(&args);
            let running: Vec<[String; 3]> = rows
                .lines()
                .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                    [id, "running", public, private] if public != "None" => {
                        Some([id.to_string(), public.to_string(), private.to_string()])
                    }
                    _ => None,
                })
                .collect();
            if running.len() == ids.len() {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "{} instances did not reach running with a public IP: {rows}",
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Key pair `bench`, security group `bench-ssh` allowing SSH, one Amazon Linux
    /// instance in the default VPC; returns its public IP once it is running.
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
        self.open_port(&sg, 22, "0.0.0.0/0");
        let ami = self.aws(&[
            "describe-images",
            "--owners",
            "amazon",
            "--filters",
            "Name=name,Values=al2023-ami-*",
            "--query",
            "sort_by(Images, &CreationDate)[-1].ImageId",
        ]);
        let [[_, public, _]] =
            <[[String; 3]; 1]>::try_from(self.run_instances(&ami, &sg, 1)).expect("one instance");
        public
    }
}

pub fn write_private_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write the key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod 400");
}

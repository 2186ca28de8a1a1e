//! Shared by the world runtime tests: a `vpclab up` on loopback port 0 in a temporary
//! state directory, driven by the real `aws` CLI, reached with the real OpenSSH client
//! through `vpclab connect`. Instance transitions are short (300 ms) and instance tool
//! timeouts are capped at 3 s, so "times out" tests stay quick.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const VPCLAB: &str = env!("CARGO_BIN_EXE_vpclab");

/// A running daemon in its own temporary directory; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            child: None,
            url: String::new(),
            dir,
        };
        d.launch();
        d
    }

    /// A daemon started with extra `vpclab up` arguments (such as `--tun`).
    pub fn start_with(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            child: None,
            url: String::new(),
            dir,
        };
        d.launch_with(extra);
        d
    }

    /// Starts (or restarts) `vpclab up` on this daemon's state directory.
    pub fn launch(&mut self) {
        self.launch_with(&[]);
    }

    /// [`Daemon::launch`] with extra `vpclab up` arguments.
    pub fn launch_with(&mut self, extra: &[&str]) {
        require("aws", "--version");
        require("ssh", "-V");
        let mut child = Command::new(VPCLAB)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(self.state_dir())
            .args(extra)
            .env("VPCLAB_BOOT_DELAY_MS", "300")
            .env("VPCLAB_INSTANCE_TIMEOUT_CAP_MS", "3000")
            // Route 53 health checkers probe every 500 ms instead of every 10 or 30 s.
            .env("VPCLAB_HEALTH_CHECK_INTERVAL_MS", "500")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vpclab up");
        let stdout = child.stdout.take().expect("piped stdout");
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
        self.child = Some(child);
        self.url = url;
    }

    /// SIGTERM and wait: a clean daemon stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_DEFAULT_OUTPUT", "json")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "")
            .env("AWS_CONFIG_FILE", "/nonexistent/vpclab-test-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/vpclab-test-credentials",
            )
            .env("AWS_ENDPOINT_URL", &self.url)
            .env_remove("VPCLAB_ENDPOINT")
            .env_remove("AWS_PROFILE");
    }

    /// `aws ec2 … --output text`, trimmed; panics on failure.
    pub fn aws(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("aws");
        cmd.arg("ec2").args(args).args(["--output", "text"]);
        self.env(&mut cmd);
        let out = cmd.output().expect("run aws");
        assert!(
            out.status.success(),
            "aws ec2 {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `vpclab …` with the daemon found through AWS_ENDPOINT_URL.
    pub fn vpclab(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new(VPCLAB);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.env(&mut cmd);
        let mut child = cmd.spawn().expect("run vpclab");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin).expect("write stdin");
        drop(input);
        child.wait_with_output().expect("wait vpclab")
    }

    /// Creates a key pair and writes its `.pem` with mode 0400.
    pub fn key_pair(&self, name: &str, key_type: &str) -> PathBuf {
        let pem = self.aws(&[
            "create-key-pair",
            "--key-name",
            name,
            "--key-type",
            key_type,
            "--query",
            "KeyMaterial",
        ]);
        let path = self.path(&format!("{name}.pem"));
        write_private_key(&path, &format!("{pem}\n"));
        path
    }

    /// OpenSSH through `vpclab connect`: `ssh -i key user@host command`.
    pub fn ssh(&self, key: &Path, user: &str, host: &str, command: &str) -> Output {
        self.ssh_with(key, user, host, command, 10)
    }

    pub fn ssh_with(
        &self,
        key: &Path,
        user: &str,
        host: &str,
        command: &str,
        timeout_s: u32,
    ) -> Output {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(key)
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
            ])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path("known_hosts").display()
            ))
            .arg("-o")
            .arg(format!(
                "ProxyCommand={VPCLAB} connect --timeout {timeout_s} %h %p"
            ))
            .arg(format!("{user}@{host}"))
            .arg(command)
            .stdin(Stdio::null());
        self.env(&mut cmd);
        cmd.output().expect("run ssh")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn require(tool: &str, arg: &str) {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not on PATH: install the test dependencies (scripts/install-test-deps); these tests need the real client"
    );
}

pub fn write_private_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod 400");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A VPC 10.0.0.0/16 with an internet gateway, a public subnet 10.0.1.0/24 (public IPs
/// on launch, 0.0.0.0/0 → igw) and a private subnet 10.0.2.0/24 (its own route table,
/// no default route).
pub struct Network {
    pub vpc: String,
    pub igw: String,
    pub public_subnet: String,
    pub public_rt: String,
    pub private_subnet: String,
    pub private_rt: String,
    pub ami: String,
}

impl Network {
    pub fn build(d: &Daemon) -> Network {
        let vpc = d.aws(&[
            "create-vpc",
            "--cidr-block",
            "10.0.0.0/16",
            "--query",
            "Vpc.VpcId",
        ]);
        let igw = d.aws(&[
            "create-internet-gateway",
            "--query",
            "InternetGateway.InternetGatewayId",
        ]);
        d.aws(&[
            "attach-internet-gateway",
            "--internet-gateway-id",
            &igw,
            "--vpc-id",
            &vpc,
        ]);
        let subnet = |cidr: &str| {
            d.aws(&[
                "create-subnet",
                "--vpc-id",
                &vpc,
                "--cidr-block",
                cidr,
                "--availability-zone",
                "us-east-1a",
                "--query",
                "Subnet.SubnetId",
            ])
        };
        let public_subnet = subnet("10.0.1.0/24");
        let private_subnet = subnet("10.0.2.0/24");
        d.aws(&[
            "modify-subnet-attribute",
            "--subnet-id",
            &public_subnet,
            "--map-public-ip-on-launch",
        ]);
        let rt = |subnet: &str| {
            let rt = d.aws(&[
                "create-route-table",
                "--vpc-id",
                &vpc,
                "--query",
                "RouteTable.RouteTableId",
            ]);
            d.aws(&[
                "associate-route-table",
                "--route-table-id",
                &rt,
                "--subnet-id",
                subnet,
            ]);
            rt
        };
        let public_rt = rt(&public_subnet);
        let private_rt = rt(&private_subnet);
        d.aws(&[
            "create-route",
            "--route-table-id",
            &public_rt,
            "--destination-cidr-block",
            "0.0.0.0/0",
            "--gateway-id",
            &igw,
        ]);
        let ami = d.aws(&[
            "describe-images",
            "--owners",
            "amazon",
            "--filters",
            "Name=name,Values=al2023-ami-*",
            "--query",
            "sort_by(Images, &CreationDate)[-1].ImageId",
        ]);
        Network {
            vpc,
            igw,
            public_subnet,
            public_rt,
            private_subnet,
            private_rt,
            ami,
        }
    }

    /// A security group of the VPC; `rules` are (port, cidr) TCP ingress rules.
    pub fn security_group(&self, d: &Daemon, name: &str, rules: &[(u16, &str)]) -> String {
        let sg = d.aws(&[
            "create-security-group",
            "--group-name",
            name,
            "--description",
            name,
            "--vpc-id",
            &self.vpc,
            "--query",
            "GroupId",
        ]);
        for (port, cidr) in rules {
            d.aws(&[
                "authorize-security-group-ingress",
                "--group-id",
                &sg,
                "--protocol",
                "tcp",
                "--port",
                &port.to_string(),
                "--cidr",
                cidr,
            ]);
        }
        sg
    }

    /// Launches one instance and waits until it runs; returns (id, public IP or "None",
    /// private IP).
    pub fn launch(
        &self,
        d: &Daemon,
        subnet: &str,
        key: &str,
        sg: &str,
        extra: &[&str],
    ) -> (String, String, String) {
        let mut args = vec![
            "run-instances",
            "--image-id",
            &self.ami,
            "--instance-type",
            "t3.micro",
            "--key-name",
            key,
            "--subnet-id",
            subnet,
            "--security-group-ids",
            sg,
            "--query",
            "Instances[0].InstanceId",
        ];
        args.extend_from_slice(extra);
        let id = d.aws(&args);
        d.aws(&["wait", "instance-running", "--instance-ids", &id]);
        let ips = d.aws(&[
            "describe-instances",
            "--instance-ids",
            &id,
            "--query",
            "Reservations[0].Instances[0].[PublicIpAddress,PrivateIpAddress]",
        ]);
        let mut it = ips.split_whitespace();
        let public = it.next().unwrap_or("None").to_string();
        let private = it.next().unwrap_or("None").to_string();
        (id, public, private)
    }
}

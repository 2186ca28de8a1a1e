//! Shared by the key-pair and instance black-box tests: start `vpclab up` on loopback
//! port 0 with a temporary state directory and drive it with the real `aws` CLI.
//! The CLI is required (CI installs it with `scripts/install-test-deps`); a test that
//! needs it fails with a message saying so.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A running daemon; killed (SIGKILL) on drop.
pub struct Daemon {
    child: Child,
    pub url: String,
    pub state_dir: PathBuf,
}

impl Daemon {
    /// Starts `vpclab up` on `state_dir` with instance transitions of `boot_delay_ms`.
    pub fn start(state_dir: &Path, boot_delay_ms: u64) -> Daemon {
        require_aws();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vpclab"))
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(state_dir)
            .env("VPCLAB_BOOT_DELAY_MS", boot_delay_ms.to_string())
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
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            url,
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `aws ec2 …` (JSON output, us-east-1 unless `--region` is given).
    pub fn aws_raw(&self, args: &[&str]) -> Output {
        Command::new("aws")
            .arg("ec2")
            .args(args)
            .args(["--endpoint-url", &self.url])
            .env("AWS_ACCESS_KEY_ID", "test")
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
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run aws")
    }

    /// `aws ec2 …` expecting success; stdout parsed as JSON (Null when empty).
    pub fn aws(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws_raw(args);
        assert!(
            out.status.success(),
            "aws ec2 {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("aws {args:?} printed non-JSON ({e}): {text}"))
        }
    }

    /// `aws ec2 … --output text`, trimmed.
    pub fn aws_text(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "text"]);
        let out = self.aws_raw(&all);
        assert!(
            out.status.success(),
            "aws ec2 {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `aws ec2 …` expecting failure with the AWS error `code`; returns stderr.
    pub fn aws_err(&self, args: &[&str], code: &str) -> String {
        let out = self.aws_raw(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "aws ec2 {args:?} should fail with {code}"
        );
        assert!(
            err.contains(&format!("({code})")),
            "aws ec2 {args:?}: expected {code}, got: {err}"
        );
        err
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn require_aws() {
    let ok = Command::new("aws")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the `aws` CLI is not on PATH: install it with `bash scripts/install-test-deps` (CI does); \
         these interop tests need the real client"
    );
}

/// A string field of a JSON value.
pub fn s(v: &serde_json::Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Runs a tool; panics with its stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Writes a private key file with mode 0400, as a learner is told to (`chmod 400`).
pub fn write_private_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod 400");
}

//! The one test harness of vpclab's integration tests (`tests/api`, `tests/world`).
//!
//! Two ways to run a daemon, each in its own temporary directory (the state directory is
//! `<dir>/state`; keys, `known_hosts` and scratch files live in `<dir>`):
//!
//! - [`TestDaemon`]: in-process, through the library's composition root
//!   (`Background::start(DaemonConfig::for_tests(..))`): loopback port 0 for the API and
//!   DNS, 300 ms instance transitions, instance tool timeouts capped at 3 s, health checks
//!   every 500 ms. What most tests use.
//! - [`ProcessDaemon`]: the real `vpclab up` binary, for the tests that kill or restart a
//!   process (durability after SIGKILL), need root-only flags (`--tun`), or test the CLI
//!   itself (`vpclab status`, what `up` prints). Same knobs, passed as flags and
//!   environment.
//!
//! Both implement [`Lab`], which gives every client helper: the `aws` CLI (isolated from
//! the user's own configuration), boto3 scripts (tests/interop), OpenSSH through
//! `vpclab connect`, and `dig` against the DNS endpoint.
//!
//! Real clients: in CI (`CI=true`) a missing tool fails the test with its name; outside
//! CI the tests that can do without it are skipped with a printed note ([`have`]), and
//! the ones that always needed it fail ([`require`]).

#![allow(dead_code)]

pub mod elb_args;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use vpclab::daemon::{AuthConfig, Background, DaemonConfig, StateDir};

/// The `vpclab` binary under test.
pub const VPCLAB: &str = env!("CARGO_BIN_EXE_vpclab");

// ---------------------------------------------------------------------------------------
// Real clients

/// Whether we run in CI, where every real client must be installed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether an executable `tool` is on PATH.
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn missing(tool: &str) -> String {
    format!(
        "`{tool}` is not installed: install the test dependencies with \
         `bash scripts/install-test-deps` (CI does); this test needs the real client"
    )
}

/// Whether `tool` is installed. Missing: in CI (`CI=true`) the test fails naming the
/// tool; elsewhere a note is printed and the caller skips its test.
pub fn have(tool: &str) -> bool {
    if on_path(tool) {
        return true;
    }
    assert!(!in_ci(), "{} (CI=true: no test is skipped)", missing(tool));
    eprintln!("skipped: `{tool}` is not installed (bash scripts/install-test-deps)");
    false
}

/// Whether `python3` can import `module` (a test's own Python dependency, such as
/// `xxhash`). Missing: in CI (`CI=true`) the test fails naming the module; elsewhere a
/// note is printed and the caller skips its test, as [`have`] does for tools.
pub fn have_python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let missing = missing(&format!("python3 -m {module}"));
    assert!(!in_ci(), "{missing} (CI=true: no test is skipped)");
    eprintln!(
        "skipped: the Python module `{module}` is not installed (bash scripts/install-test-deps)"
    );
    false
}

/// Fails the test unless `tool` is installed (the tools a test cannot do without).
pub fn require(tool: &str) {
    assert!(on_path(tool), "{}", missing(tool));
}

/// Fails the test unless the aws CLI runs (`aws --version`, checked once per process).
pub fn require_aws() {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *OK.get_or_init(|| {
        Command::new("aws")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(ok, "{}", missing("aws"));
}

/// Python's boto3 is required (tests/interop/*.py).
pub fn require_boto3() {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *OK.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import boto3"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(ok, "{}", missing("boto3"));
}

// ---------------------------------------------------------------------------------------
// What every daemon offers a test

/// A running daemon as the clients see it, with every client helper.
pub trait Lab {
    /// The API endpoint (`AWS_ENDPOINT_URL`).
    fn url(&self) -> String;
    /// The host-side DNS endpoint.
    fn dns_addr(&self) -> Option<SocketAddr>;
    /// The test's temporary directory (keys, `known_hosts`, scratch files).
    fn dir(&self) -> &Path;

    /// The state directory.
    fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// A file in the test's temporary directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The API's port on 127.0.0.1.
    fn api_port(&self) -> u16 {
        let url = self.url();
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"))
    }

    /// The DNS endpoint's port on 127.0.0.1.
    fn dns_port(&self) -> u16 {
        self.dns_addr()
            .expect("the daemon has a DNS endpoint")
            .port()
    }

    /// The environment of the aws CLI, boto3 and `vpclab` subcommands: the test
    /// credentials, us-east-1, JSON output, no retries, no pager, and none of the user's
    /// own configuration.
    fn env(&self, cmd: &mut Command) {
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
            .env("AWS_ENDPOINT_URL", self.url())
            .env_remove("VPCLAB_ENDPOINT")
            .env_remove("AWS_PROFILE");
    }

    /// `aws …` (any service, JSON output); returns the output.
    fn aws_cli(&self, args: &[&str]) -> Output {
        require_aws();
        let mut cmd = Command::new("aws");
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().expect("run aws")
    }

    /// `aws …` (any service) expecting success; stdout parsed as JSON (Null when empty).
    fn aws_cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws_cli(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_of(&out.stdout, args)
    }

    /// `aws …` (any service) expecting failure; returns stderr.
    fn aws_cli_err(&self, args: &[&str]) -> String {
        let out = self.aws_cli(args);
        assert!(!out.status.success(), "aws {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `aws ec2 …` with the given region and (access key, secret key).
    fn aws_as(&self, region: &str, (key, secret): (&str, &str), args: &[&str]) -> Output {
        require_aws();
        let mut cmd = Command::new("aws");
        cmd.arg("ec2").args(args);
        self.env(&mut cmd);
        cmd.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", region);
        cmd.output().expect("run aws")
    }

    /// `aws ec2 …` in `region`.
    fn aws_in(&self, region: &str, args: &[&str]) -> Output {
        self.aws_as(region, ("test", "test"), args)
    }

    /// `aws ec2 …` (JSON output, us-east-1 unless `--region` is given).
    fn aws_raw(&self, args: &[&str]) -> Output {
        self.aws_in("us-east-1", args)
    }

    /// `aws ec2 …` expecting success; stdout parsed as JSON (Null when empty).
    fn aws(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws_raw(args);
        assert!(
            out.status.success(),
            "aws ec2 {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_of(&out.stdout, args)
    }

    /// Polls DescribeInstances every 100 ms until every instance of `ids` is
    /// `running` (60 s at most). The CLI's own `aws ec2 wait instance-running` sleeps
    /// 15 s after a first `pending`, which every launch in a test daemon (300 ms boot)
    /// meets; tests/api/instances.rs keeps the waiter itself covered.
    fn wait_running(&self, ids: &[&str]) {
        let mut args = vec!["describe-instances", "--instance-ids"];
        args.extend_from_slice(ids);
        args.extend(["--query", "Reservations[].Instances[].State.Name"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let states = self.aws_text(&args);
            let states: Vec<&str> = states.split_whitespace().collect();
            if states.len() == ids.len() && states.iter().all(|s| *s == "running") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline && !states.contains(&"terminated"),
                "instances {ids:?} did not reach running: {states:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// `aws ec2 … --output text`, trimmed; panics on failure.
    fn aws_text(&self, args: &[&str]) -> String {
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
    fn aws_err(&self, args: &[&str], code: &str) -> String {
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

    /// Runs `tests/interop/<script>` (boto3) against the daemon; returns its output.
    fn boto3(&self, script: &str) -> Output {
        require_boto3();
        let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "interop", script]
            .iter()
            .collect();
        let mut cmd = Command::new("python3");
        cmd.arg(&path);
        self.env(&mut cmd);
        cmd.env("VPCLAB_ENDPOINT", self.url())
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .expect("run python3")
    }

    /// `vpclab …` with the daemon found through AWS_ENDPOINT_URL.
    fn vpclab(&self, args: &[&str], stdin: &[u8]) -> Output {
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
    fn key_pair(&self, name: &str, key_type: &str) -> PathBuf {
        let pem = self.aws_text(&[
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
    fn ssh(&self, key: &Path, user: &str, host: &str, command: &str) -> Output {
        self.ssh_with(key, user, host, command, 10)
    }

    /// [`Lab::ssh`] with `vpclab connect --timeout timeout_s`.
    fn ssh_with(
        &self,
        key: &Path,
        user: &str,
        host: &str,
        command: &str,
        timeout_s: u32,
    ) -> Output {
        self.openssh("ssh", key, timeout_s)
            .arg(format!("{user}@{host}"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    /// An OpenSSH `program` (ssh, scp, sftp) with `-i key`, no user configuration,
    /// this daemon's `known_hosts` and `vpclab connect --timeout timeout_s` as its
    /// ProxyCommand; the caller adds the destination.
    fn openssh(&self, program: &str, key: &Path, timeout_s: u32) -> Command {
        require(program);
        let mut cmd = Command::new(program);
        cmd.arg("-i").arg(key).args(["-F", "/dev/null"]);
        for opt in [
            "BatchMode=yes".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "StrictHostKeyChecking=accept-new".to_string(),
            format!("UserKnownHostsFile={}", self.path("known_hosts").display()),
            format!("ProxyCommand={VPCLAB} connect --timeout {timeout_s} %h %p"),
        ] {
            cmd.arg("-o").arg(opt);
        }
        self.env(&mut cmd);
        cmd
    }

    /// `dig @127.0.0.1 -p <dns port> +time=2 +tries=1 …`; returns stdout.
    fn dig(&self, args: &[&str]) -> String {
        require("dig");
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.dns_port().to_string(),
                "+time=2",
                "+tries=1",
            ])
            .args(args)
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dig +short name` against the DNS endpoint, trimmed.
    fn dig_short(&self, name: &str) -> String {
        self.dig(&["+short", name]).trim().to_owned()
    }
}

fn json_of(stdout: &[u8], args: &[&str]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("aws {args:?} printed non-JSON ({e}): {text}"))
    }
}

// ---------------------------------------------------------------------------------------
// In-process daemon

/// `VPCLAB_TEST_RUNTIME=sandbox`: every daemon of the run (in-process or `vpclab up`)
/// runs its instances in sandboxes (issue 16) instead of the emulated runtime.
pub fn sandbox_runtime_asked() -> bool {
    std::env::var("VPCLAB_TEST_RUNTIME").is_ok_and(|r| r == "sandbox")
}

/// For a test, or a part of one, that checks what only the emulated runtime does (its
/// own re-implementations of programs, or limits the sandbox does not have): under
/// `VPCLAB_TEST_RUNTIME=sandbox` prints `reason` and returns true, so the caller skips
/// it (`if emulated_only("…") { return; }`). docs/fidelity.md lists these.
pub fn emulated_only(reason: &str) -> bool {
    let sandbox = sandbox_runtime_asked();
    if sandbox {
        eprintln!("emulated runtime only, skipped on the sandbox runtime: {reason}");
    }
    sandbox
}

/// How far a [`TestDaemon::start_with_clock`] daemon's clock is ahead of the wall clock.
#[derive(Clone, Default)]
pub struct ClockOffset(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl ClockOffset {
    /// Moves the daemon's clock `days` days further ahead.
    pub fn advance_days(&self, days: i64) {
        self.0
            .fetch_add(days * 86_400_000, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A daemon in this process (its own tokio runtime) in its own temporary directory;
/// stopped on drop.
pub struct TestDaemon {
    bg: Option<Background>,
    cfg: DaemonConfig,
    url: String,
    dns_addr: Option<SocketAddr>,
    dir: tempfile::TempDir,
}

impl TestDaemon {
    /// `DaemonConfig::for_tests` on `<tmp>/state`.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| {})
    }

    /// [`TestDaemon::start`] with the configuration changed by `tune` first (which may
    /// also prepare the state directory, such as an `access-keys.toml`).
    pub fn start_with(tune: impl FnOnce(&mut DaemonConfig)) -> TestDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("create the state directory");
        let mut cfg = DaemonConfig::for_tests(StateDir::new(state));
        if sandbox_runtime_asked() {
            cfg.runtime = vpclab::instance::sandbox::RuntimeChoice::Sandbox;
            cfg.agent_exe = Some(VPCLAB.into());
        }
        tune(&mut cfg);
        let mut d = TestDaemon {
            bg: None,
            cfg,
            url: String::new(),
            dns_addr: None,
            dir,
        };
        d.launch();
        d
    }

    /// [`TestDaemon::start`] with a clock the test moves ahead
    /// (`DaemonConfig::clock_offset`), for behaviour that counts days (S3 lifecycle).
    /// Requests are signed with the real time, which open mode does not check.
    pub fn start_with_clock() -> (TestDaemon, ClockOffset) {
        let clock = ClockOffset::default();
        let offset = clock.0.clone();
        let d = TestDaemon::start_with(move |cfg| cfg.clock_offset = Some(offset));
        (d, clock)
    }

    /// Strict authentication with these keys (`access-keys.toml` text).
    pub fn start_strict(keys_toml: &str) -> TestDaemon {
        TestDaemon::start_with(|cfg| {
            std::fs::write(cfg.state_dir.keys_file(), keys_toml).expect("write keys");
            cfg.auth = AuthConfig::Strict;
        })
    }

    /// Starts (or restarts, on new ports) the daemon on this state directory.
    pub fn launch(&mut self) {
        assert!(self.bg.is_none(), "the daemon is already running");
        let bg = Background::start(self.cfg.clone()).expect("start the daemon");
        self.url = bg.url();
        self.dns_addr = bg.dns_addr;
        self.bg = Some(bg);
    }

    /// A clean stop (as SIGTERM does): in-flight requests finish, disks are saved.
    pub fn stop(&mut self) {
        if let Some(bg) = self.bg.take() {
            bg.stop().expect("the daemon stopped cleanly");
        }
    }

    /// The running daemon.
    pub fn background(&self) -> &Background {
        self.bg.as_ref().expect("the daemon is running")
    }
}

impl Lab for TestDaemon {
    fn url(&self) -> String {
        self.url.clone()
    }
    fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------------------------------
// The real `vpclab up`

/// `vpclab up` as a child process on loopback port 0 (API and DNS), with the test knobs
/// of [`DaemonConfig::for_tests`] given through its environment; killed (SIGKILL) on drop.
pub struct ProcessDaemon {
    child: Option<Child>,
    extra: Vec<String>,
    url: String,
    dns_addr: Option<SocketAddr>,
    /// What `vpclab up` printed up to and including its `export` line.
    pub startup: Vec<String>,
    dir: tempfile::TempDir,
}

impl ProcessDaemon {
    /// `vpclab up` on `<tmp>/state`.
    pub fn start() -> ProcessDaemon {
        ProcessDaemon::start_with(&[])
    }

    /// [`ProcessDaemon::start`] with extra `vpclab up` arguments (such as `--tun`).
    pub fn start_with(extra: &[&str]) -> ProcessDaemon {
        let mut d = ProcessDaemon {
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            url: String::new(),
            dns_addr: None,
            startup: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        d.launch();
        d
    }

    /// `vpclab up` with this daemon's arguments (for tests of its failures).
    pub fn up_command(state_dir: &Path) -> Command {
        let mut cmd = Command::new(VPCLAB);
        cmd.args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state_dir)
        .env("VPCLAB_BOOT_DELAY_MS", "300")
        .env("VPCLAB_INSTANCE_TIMEOUT_CAP_MS", "3000")
        // Route 53 health checkers probe every 500 ms instead of every 10 or 30 s.
        .env("VPCLAB_HEALTH_CHECK_INTERVAL_MS", "500")
        .env_remove("VPCLAB_STATE_DIR");
        if sandbox_runtime_asked() {
            cmd.args(["--runtime", "sandbox"]);
        }
        cmd
    }

    /// Starts (or restarts, on new ports) `vpclab up` on this state directory.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        let mut child = ProcessDaemon::up_command(&self.state_dir())
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vpclab up");
        let stdout = child.stdout.take().expect("piped stdout");
        // Owned at once, so a failed start still kills and reaps the child.
        self.child = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        self.startup.clear();
        let url = loop {
            let line = lines
                .next()
                .expect("vpclab up exited before printing its endpoint")
                .expect("read vpclab stdout");
            self.startup.push(line.clone());
            if let Some(rest) = line.strip_prefix("export AWS_ENDPOINT_URL=") {
                break rest.split_whitespace().next().expect("url").to_string();
            }
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.url = url;
        let text =
            std::fs::read_to_string(self.state_dir().join("endpoint.json")).expect("endpoint");
        let info: serde_json::Value = serde_json::from_str(&text).expect("endpoint json");
        self.dns_addr = info["dns"].as_str().and_then(|a| a.parse().ok());
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

    /// The `vpclab up` process.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon is running")
    }
}

impl Lab for ProcessDaemon {
    fn url(&self) -> String {
        self.url.clone()
    }
    fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ProcessDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

// ---------------------------------------------------------------------------------------
// A network to launch instances into

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
    /// A second VPC `cidr` with one subnet `subnet` in us-east-1a (its main route table
    /// routes it) and an instance (key pair `lab`) in a group `target` that admits
    /// nothing yet. Returns (vpc, subnet, main route table, group, private IP).
    pub fn second_vpc(
        &self,
        d: &dyn Lab,
        cidr: &str,
        subnet: &str,
    ) -> (String, String, String, String, String) {
        let vpc = d.aws_text(&["create-vpc", "--cidr-block", cidr, "--query", "Vpc.VpcId"]);
        let sub = d.aws_text(&[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            subnet,
            "--availability-zone",
            "us-east-1a",
            "--query",
            "Subnet.SubnetId",
        ]);
        let rt = d.aws_text(&[
            "describe-route-tables",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            "Name=association.main,Values=true",
            "--query",
            "RouteTables[0].RouteTableId",
        ]);
        let sg = d.aws_text(&[
            "create-security-group",
            "--group-name",
            "target",
            "--description",
            "target",
            "--vpc-id",
            &vpc,
            "--query",
            "GroupId",
        ]);
        let id = d.aws_text(&[
            "run-instances",
            "--image-id",
            &self.ami,
            "--instance-type",
            "t3.micro",
            "--key-name",
            "lab",
            "--subnet-id",
            &sub,
            "--security-group-ids",
            &sg,
            "--query",
            "Instances[0].InstanceId",
        ]);
        d.wait_running(&[&id]);
        let ip = d.aws_text(&[
            "describe-instances",
            "--instance-ids",
            &id,
            "--query",
            "Reservations[0].Instances[0].PrivateIpAddress",
        ]);
        (vpc, sub, rt, sg, ip)
    }

    pub fn build(d: &dyn Lab) -> Network {
        let (vpc, igw) = vpc_with_internet_gateway(d);
        let public_subnet = subnet(d, &vpc, "10.0.1.0/24", "us-east-1a");
        let private_subnet = subnet(d, &vpc, "10.0.2.0/24", "us-east-1a");
        d.aws_text(&[
            "modify-subnet-attribute",
            "--subnet-id",
            &public_subnet,
            "--map-public-ip-on-launch",
        ]);
        let public_rt = public_route_table(d, &vpc, &igw, &[&public_subnet]);
        let private_rt = route_table(d, &vpc, &[&private_subnet]);
        let ami = latest_al2023_ami(d);
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

    /// A NAT gateway with a new Elastic IP in the public subnet, available, and the
    /// private subnet's default route through it: (NAT gateway id, Elastic IP).
    pub fn nat_gateway(&self, d: &dyn Lab) -> (String, String) {
        let alloc = d.aws_text(&[
            "allocate-address",
            "--domain",
            "vpc",
            "--query",
            "AllocationId",
        ]);
        let eip = d.aws_text(&[
            "describe-addresses",
            "--allocation-ids",
            &alloc,
            "--query",
            "Addresses[0].PublicIp",
        ]);
        let nat = d.aws_text(&[
            "create-nat-gateway",
            "--subnet-id",
            &self.public_subnet,
            "--allocation-id",
            &alloc,
            "--query",
            "NatGateway.NatGatewayId",
        ]);
        // `aws ec2 wait` polls every 15 s; the gateway is available well before that.
        for _ in 0..40 {
            let state = d.aws_text(&[
                "describe-nat-gateways",
                "--nat-gateway-ids",
                &nat,
                "--query",
                "NatGateways[0].State",
            ]);
            if state == "available" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        d.aws_text(&[
            "create-route",
            "--route-table-id",
            &self.private_rt,
            "--destination-cidr-block",
            "0.0.0.0/0",
            "--nat-gateway-id",
            &nat,
        ]);
        (nat, eip)
    }

    /// A security group of the VPC; `rules` are (port, cidr) TCP ingress rules.
    pub fn security_group(&self, d: &dyn Lab, name: &str, rules: &[(u16, &str)]) -> String {
        security_group(d, &self.vpc, name, rules)
    }

    /// Launches one instance and waits until it runs; returns (id, public IP or "None",
    /// private IP).
    pub fn launch(
        &self,
        d: &dyn Lab,
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
        let id = d.aws_text(&args);
        d.wait_running(&[&id]);
        let ips = d.aws_text(&[
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

/// A 10.0.0.0/16 VPC with an internet gateway attached: (vpc, igw).
pub fn vpc_with_internet_gateway(d: &dyn Lab) -> (String, String) {
    let vpc = d.aws_text(&[
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let igw = d.aws_text(&[
        "create-internet-gateway",
        "--query",
        "InternetGateway.InternetGatewayId",
    ]);
    d.aws_text(&[
        "attach-internet-gateway",
        "--internet-gateway-id",
        &igw,
        "--vpc-id",
        &vpc,
    ]);
    (vpc, igw)
}

/// The newest Amazon Linux 2023 image's id, found as the EC2 User Guide's examples find it.
pub fn latest_al2023_ami(d: &dyn Lab) -> String {
    d.aws_text(&[
        "describe-images",
        "--owners",
        "amazon",
        "--filters",
        "Name=name,Values=al2023-ami-*",
        "--query",
        "sort_by(Images, &CreationDate)[-1].ImageId",
    ])
}

/// A subnet of `vpc` with this block in this Availability Zone; returns its id.
pub fn subnet(d: &dyn Lab, vpc: &str, cidr: &str, az: &str) -> String {
    d.aws_text(&[
        "create-subnet",
        "--vpc-id",
        vpc,
        "--cidr-block",
        cidr,
        "--availability-zone",
        az,
        "--query",
        "Subnet.SubnetId",
    ])
}

/// A route table of `vpc` whose default route (0.0.0.0/0) goes to the internet gateway
/// `igw`, associated with each of `subnets` (which makes them public); returns its id.
pub fn public_route_table(d: &dyn Lab, vpc: &str, igw: &str, subnets: &[&str]) -> String {
    let rt = route_table(d, vpc, subnets);
    d.aws_text(&[
        "create-route",
        "--route-table-id",
        &rt,
        "--destination-cidr-block",
        "0.0.0.0/0",
        "--gateway-id",
        igw,
    ]);
    rt
}

/// A route table of `vpc` (only its local route) associated with each of `subnets`;
/// returns its id.
pub fn route_table(d: &dyn Lab, vpc: &str, subnets: &[&str]) -> String {
    let rt = d.aws_text(&[
        "create-route-table",
        "--vpc-id",
        vpc,
        "--query",
        "RouteTable.RouteTableId",
    ]);
    for subnet in subnets {
        d.aws_text(&[
            "associate-route-table",
            "--route-table-id",
            &rt,
            "--subnet-id",
            subnet,
        ]);
    }
    rt
}

/// A security group of `vpc` named `name`; `rules` are (port, cidr) TCP ingress rules.
pub fn security_group(d: &dyn Lab, vpc: &str, name: &str, rules: &[(u16, &str)]) -> String {
    let sg = d.aws_text(&[
        "create-security-group",
        "--group-name",
        name,
        "--description",
        name,
        "--vpc-id",
        vpc,
        "--query",
        "GroupId",
    ]);
    for (port, cidr) in rules {
        allow_tcp(d, &sg, *port, cidr);
    }
    sg
}

/// Adds an inbound rule to security group `sg`: TCP `port` from `cidr`.
pub fn allow_tcp(d: &dyn Lab, sg: &str, port: u16, cidr: &str) {
    tcp_rule(d, "authorize-security-group-ingress", sg, port, cidr);
}

/// Revokes what [`allow_tcp`] allowed.
pub fn revoke_tcp(d: &dyn Lab, sg: &str, port: u16, cidr: &str) {
    tcp_rule(d, "revoke-security-group-ingress", sg, port, cidr);
}

fn tcp_rule(d: &dyn Lab, action: &str, sg: &str, port: u16, cidr: &str) {
    d.aws_text(&[
        action,
        "--group-id",
        sg,
        "--protocol",
        "tcp",
        "--port",
        &port.to_string(),
        "--cidr",
        cidr,
    ]);
}

/// A VPC with an internet gateway and two subnets in two Availability Zones; returns
/// (vpc, subnet a, subnet b, another subnet in zone a).
pub fn two_zone_vpc(d: &dyn Lab) -> (String, String, String, String) {
    let (vpc, _) = vpc_with_internet_gateway(d);
    let a = subnet(d, &vpc, "10.0.1.0/24", "us-east-1a");
    let b = subnet(d, &vpc, "10.0.2.0/24", "us-east-1b");
    let a2 = subnet(d, &vpc, "10.0.3.0/24", "us-east-1a");
    (vpc, a, b, a2)
}

//! Black-box tests of `vpclab up` and `vpclab status`: startup output, one-line errors
//! with a non-zero exit code for a busy port, an unusable state directory and a second
//! daemon, clean stop on SIGTERM, and the status summary.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Lab, ProcessDaemon, VPCLAB};

fn vpclab() -> Command {
    Command::new(VPCLAB)
}

/// Starts `vpclab up` and checks what it printed up to its export line; returns the
/// daemon and the URL.
fn start() -> (ProcessDaemon, String) {
    let d = ProcessDaemon::start();
    let url = d.url();
    let seen = &d.startup;
    assert!(
        seen.iter()
            .any(|l| l.contains("EC2 API:") && l.contains(&url)),
        "endpoints printed: {seen:?}"
    );
    (d, url)
}

/// Runs a command expected to fail with one `vpclab: …` line; returns that line.
fn one_line_failure(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run vpclab");
    assert!(!out.status.success(), "should fail");
    assert_eq!(out.status.code(), Some(1), "documented error exit code");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one error line, got: {err}");
    assert!(lines[0].starts_with("vpclab: "), "prefixed: {err}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    lines[0].to_string()
}

#[test]
fn second_daemon_on_the_same_state_dir_fails_with_one_line() {
    let (mut first, _) = start();
    let line = one_line_failure(
        vpclab()
            .args(["up", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(first.state_dir()),
    );
    assert!(line.contains("another vpclab daemon"), "{line}");
    first.kill9();
}

#[test]
fn busy_port_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let line = one_line_failure(
        vpclab()
            .args(["up", "--listen", &addr, "--state-dir"])
            .arg(dir.path()),
    );
    assert!(
        line.contains("cannot listen on") && line.contains(&addr),
        "{line}"
    );
}

#[test]
fn unusable_state_dir_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let line = one_line_failure(
        vpclab()
            .args(["up", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(file.join("state")),
    );
    assert!(line.contains("state directory"), "{line}");
}

#[test]
fn sigterm_stops_cleanly_and_status_then_says_not_running() {
    let (mut d, url) = start();
    let state = d.state_dir();
    // status while running: endpoint and the default VPC world after a first request.
    let out = vpclab()
        .args(["status", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .expect("status");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    assert_eq!(v["running"], true);
    assert_eq!(v["api"], url.as_str());
    let text = vpclab()
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("vpclab is running")
            && text.contains(&format!("export AWS_ENDPOINT_URL={url}")),
        "{text}"
    );

    let child = d.child();
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "vpclab did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert!(
        !state.join("endpoint.json").exists(),
        "the endpoint file is removed"
    );
    let out = vpclab()
        .args(["status", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["running"], false);
}

#[test]
fn status_summarises_each_account_and_region() {
    let (mut d, url) = start();
    let state = d.state_dir();
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    // One request creates the region's default VPC (6 subnets in us-east-1).
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let body = "Action=DescribeVpcs";
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let out = vpclab()
        .args(["status", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let region = &v["accounts"]["000000000000"]["us-east-1"];
    assert_eq!(region["vpc"], 1);
    assert_eq!(region["subnet"], 6);
    assert_eq!(region["internet_gateway"], 1);
    d.kill9();
}

/// Issue 10: the error names its cause once (it used to end ": File exists (os error
/// 17): File exists (os error 17)").
#[test]
fn issue10_unusable_state_dir_error_names_its_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    // A file where the state directory should be: refused whatever the user's rights.
    let line = one_line_failure(
        vpclab()
            .args(["up", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&file),
    );
    assert!(line.contains("is not usable"), "{line}");
    assert_eq!(line.matches("(os error").count(), 1, "{line}");
}

/// Issue 10: stderr that is not a terminal carries no ANSI colour codes.
#[test]
fn issue10_logs_to_a_pipe_carry_no_ansi_colours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = vpclab()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path())
        .env("VPCLAB_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vpclab up");
    // Read stderr until a debug line has arrived (the DNS endpoint logs its sockets at
    // start-up), then stop the daemon.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .split(b'\n')
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<u8> = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.extend_from_slice(&line);
            seen.push(b'\n');
            if String::from_utf8_lossy(&line).contains("DEBUG") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let err = String::from_utf8_lossy(&seen);
    assert!(err.contains("DEBUG"), "a debug line within 20 s: {err}");
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
}

/// A closed stdout is success, not a panic (`vpclab status | head -1`).
#[test]
fn a_broken_pipe_is_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = vpclab()
        .args(["status", "--state-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("status");
    // Close the reading end before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 19: `vpclab ca` prints vpclab's own certificate authority, made once in the
/// state directory (the key readable only by its owner) and the same on every run;
/// stdout holds only the PEM, the advice goes to stderr.
#[test]
fn issue19_ca_prints_the_same_certificate_authority_every_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        let out = vpclab()
            .args(["ca", "--state-dir"])
            .arg(dir.path())
            .output()
            .expect("run vpclab ca");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let first = run();
    let pem = String::from_utf8(first.stdout).expect("utf-8");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(
        pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    assert_eq!(
        pem.matches("BEGIN").count(),
        1,
        "only the certificate, never the key"
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("Import"));
    assert_eq!(String::from_utf8(run().stdout).expect("utf-8"), pem);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("ca-key.pem");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

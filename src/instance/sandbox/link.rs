//! The kit's door into a running sandbox: a command run inside it, or a TCP connection
//! opened by its kernel, for the lab grader (never the learner's session).
//!
//! The daemon keeps a copy of the agent's control socket ([`AgentLink`]). For each
//! request it makes a new socket pair and sends one end to the agent with `SCM_RIGHTS`
//! (one byte and one descriptor per `sendmsg`, so requests from several tasks never
//! interleave); the request and its answer travel on that pair alone, so they never
//! mix with the console lines the agent writes on the control socket. The agent serves
//! each request on a thread of its own ([`serve`]):
//!
//! - [`Request::Exec`]: `bash -c` as the image's default user (who is uid 0 inside the
//!   sandbox, as in every SSH session there), in their home, stdin empty, in a process
//!   group of its own that is killed when the timeout passes; the answer is the exit
//!   status and what it printed (stdout, then stderr, each capped).
//! - [`Request::Connect`]: a TCP connection opened inside the sandbox's network
//!   namespace, so its packets leave through `ens5` and cross the learner's security
//!   groups, network ACLs and routes exactly as the instance's own; the connected socket
//!   itself is handed back with `SCM_RIGHTS`, and the daemon reads and writes it.
//!
//! What it leaves to others: when the link exists (`world::instances`, once the agent has
//! handed over its device), what the checks conclude (`lab::grade`).

use std::io::{BufRead, Read, Write};
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How much of each output stream an exec answer carries.
const OUTPUT_CAP: usize = 64 * 1024;
/// How long the daemon waits beyond a request's own timeout for its answer.
const SLACK: Duration = Duration::from_secs(5);

/// What the daemon asks the agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Request {
    Exec {
        command: String,
        timeout_ms: u64,
    },
    Connect {
        addr: SocketAddrV4,
        timeout_ms: u64,
    },
    /// The learner's files and services, for a lab report ([`SandboxDisk`]).
    Disk,
}

/// What a lab report carries of a sandbox, read inside it: the files under the folders
/// learners work in ([`DISK_ROOTS`]; regular files and directories, owned by uid 0 as
/// seen from inside), the installed packages, the enabled and running units, and
/// whether first boot has run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxDisk {
    pub nodes: std::collections::BTreeMap<String, crate::instance::vfs::Node>,
    pub packages: Vec<String>,
    pub enabled: Vec<String>,
    pub running: Vec<String>,
    pub first_boot_done: bool,
}

/// The folders whose files a report carries (the rest of the sandbox's own folders is
/// what its boot writes: `/etc`, logs, the tools' state).
pub const DISK_ROOTS: &[&str] = &["/home", "/root", "/opt", "/srv", "/var/www"];
/// A file larger than this is not read (the report carries at most 4 MiB in all).
const DISK_FILE_CAP: u64 = 4 * 1024 * 1024;
/// At most this many paths are listed.
const DISK_NODES_CAP: usize = 20_000;

/// How a command run inside ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecOutcome {
    /// The exit status (128 + the signal for a killed one); `None` when it did not
    /// finish within its timeout (it was killed then).
    pub code: Option<i32>,
    /// Standard output, then standard error.
    pub output: String,
}

/// Why a connection opened inside failed, as the agent saw it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectError {
    /// `refused`, `timed_out` or `other`.
    kind: String,
    message: String,
}

/// The daemon's copy of a sandbox agent's control socket.
#[derive(Clone, Debug)]
pub struct AgentLink {
    ctl: Arc<UnixStream>,
}

impl AgentLink {
    pub fn new(ctl: UnixStream) -> AgentLink {
        AgentLink { ctl: Arc::new(ctl) }
    }

    /// A new request channel with `req` written on it.
    fn open(&self, req: &Request) -> std::io::Result<UnixStream> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let (mine, theirs) = UnixStream::pair()?;
        let fds = [theirs.as_raw_fd()];
        sendmsg::<()>(
            self.ctl.as_raw_fd(),
            &[std::io::IoSlice::new(b"R")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(std::io::Error::from)?;
        drop(theirs);
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        (&mine).write_all(&line)?;
        Ok(mine)
    }

    /// Runs `command` inside (blocking; see the module's doc).
    pub fn exec_blocking(&self, command: &str, timeout: Duration) -> std::io::Result<ExecOutcome> {
        let req = Request::Exec {
            command: command.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let mut chan = self.open(&req)?;
        chan.set_read_timeout(Some(timeout + SLACK))?;
        let mut text = Vec::new();
        chan.read_to_end(&mut text)?;
        serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the instance agent gave no answer ({e})"),
            )
        })
    }

    /// Opens a TCP connection to `addr` from inside (blocking).
    pub fn connect_blocking(
        &self,
        addr: SocketAddrV4,
        timeout: Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        let req = Request::Connect {
            addr,
            timeout_ms: timeout.as_millis() as u64,
        };
        let mut chan = self.open(&req)?;
        chan.set_read_timeout(Some(timeout + SLACK))?;
        let (byte, fd) = receive_byte_and_fd(&chan)?;
        match (byte, fd) {
            (b'+', Some(fd)) => Ok(std::net::TcpStream::from(fd)),
            _ => {
                let mut rest = Vec::new();
                chan.read_to_end(&mut rest)?;
                let e: ConnectError = serde_json::from_slice(&rest).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the instance agent gave no answer ({e})"),
                    )
                })?;
                let kind = match e.kind.as_str() {
                    "refused" => std::io::ErrorKind::ConnectionRefused,
                    "timed_out" => std::io::ErrorKind::TimedOut,
                    _ => std::io::ErrorKind::Other,
                };
                Err(std::io::Error::new(kind, e.message))
            }
        }
    }

    /// What a report carries of the sandbox (blocking).
    pub fn disk_blocking(&self) -> std::io::Result<SandboxDisk> {
        let mut chan = self.open(&Request::Disk)?;
        chan.set_read_timeout(Some(SLACK * 2))?;
        let mut text = Vec::new();
        chan.read_to_end(&mut text)?;
        serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the instance agent gave no answer ({e})"),
            )
        })
    }

    /// [`disk_blocking`](Self::disk_blocking) off the async workers.
    pub async fn disk(&self) -> std::io::Result<SandboxDisk> {
        let link = self.clone();
        tokio::task::spawn_blocking(move || link.disk_blocking())
            .await
            .map_err(std::io::Error::other)?
    }

    /// [`exec_blocking`](Self::exec_blocking) off the async workers.
    pub async fn exec(&self, command: &str, timeout: Duration) -> std::io::Result<ExecOutcome> {
        let (link, command) = (self.clone(), command.to_string());
        tokio::task::spawn_blocking(move || link.exec_blocking(&command, timeout))
            .await
            .map_err(std::io::Error::other)?
    }

    /// [`connect_blocking`](Self::connect_blocking) off the async workers, as a tokio
    /// stream.
    pub async fn connect(
        &self,
        addr: SocketAddrV4,
        timeout: Duration,
    ) -> std::io::Result<tokio::net::TcpStream> {
        let link = self.clone();
        let s = tokio::task::spawn_blocking(move || link.connect_blocking(addr, timeout))
            .await
            .map_err(std::io::Error::other)??;
        s.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(s)
    }
}

/// Receives one byte and, if one came with it, a descriptor (blocking).
fn receive_byte_and_fd(sock: &UnixStream) -> std::io::Result<(u8, Option<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    if msg.bytes == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the instance agent closed the channel",
        ));
    }
    let mut fd = None;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, &raw) in fds.iter().enumerate() {
                // SAFETY: the kernel has just installed these descriptors in this
                // process for this message; nothing else knows them, so each gets
                // exactly one owner here (the first is kept, the others closed).
                #[allow(unsafe_code)]
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if i == 0 {
                    fd = Some(owned);
                }
            }
        }
    }
    Ok((byte[0], fd))
}

/// The agent's side: serves each request the daemon sends on `ctl` on a thread of its
/// own, until the daemon closes the socket. `user` is the image's default user.
pub fn serve(ctl: UnixStream, user: &'static str) {
    loop {
        match receive_byte_and_fd(&ctl) {
            Ok((_, Some(fd))) => {
                let chan = UnixStream::from(fd);
                std::thread::spawn(move || answer(chan, user));
            }
            Ok((_, None)) => {}
            Err(_) => return,
        }
    }
}

fn answer(chan: UnixStream, user: &str) {
    let mut line = String::new();
    let Ok(reader) = chan.try_clone() else { return };
    if std::io::BufReader::new(reader)
        .read_line(&mut line)
        .is_err()
    {
        return;
    }
    match serde_json::from_str::<Request>(&line) {
        Ok(Request::Exec {
            command,
            timeout_ms,
        }) => {
            let outcome = run(&command, user, Duration::from_millis(timeout_ms));
            if let Ok(text) = serde_json::to_vec(&outcome) {
                let _ = (&chan).write_all(&text);
            }
        }
        Ok(Request::Connect { addr, timeout_ms }) => {
            let timeout = Duration::from_millis(timeout_ms.max(1));
            match std::net::TcpStream::connect_timeout(&addr.into(), timeout) {
                Ok(s) => {
                    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
                    let fds = [s.as_raw_fd()];
                    let _ = sendmsg::<()>(
                        chan.as_raw_fd(),
                        &[std::io::IoSlice::new(b"+")],
                        &[ControlMessage::ScmRights(&fds)],
                        MsgFlags::empty(),
                        None,
                    );
                }
                Err(e) => {
                    let kind = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => "refused",
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                            "timed_out"
                        }
                        _ => "other",
                    };
                    let err = ConnectError {
                        kind: kind.into(),
                        message: e.to_string(),
                    };
                    let mut out = b"-".to_vec();
                    if let Ok(text) = serde_json::to_vec(&err) {
                        out.extend_from_slice(&text);
                    }
                    let _ = (&chan).write_all(&out);
                }
            }
        }
        Ok(Request::Disk) => {
            if let Ok(text) = serde_json::to_vec(&read_disk()) {
                let _ = (&chan).write_all(&text);
            }
        }
        Err(_) => {}
    }
}

/// The agent's side of [`Request::Disk`].
fn read_disk() -> SandboxDisk {
    use crate::instance::vfs::{Node, NodeKind};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut nodes = std::collections::BTreeMap::new();
    let mut todo: Vec<std::path::PathBuf> = DISK_ROOTS.iter().map(Into::into).collect();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if nodes.len() >= DISK_NODES_CAP {
                break;
            }
            let path = e.path();
            let (Ok(meta), Some(name)) = (e.metadata(), path.to_str().map(str::to_string)) else {
                continue;
            };
            let kind = if meta.is_dir() {
                todo.push(path.clone());
                NodeKind::Dir
            } else if meta.is_file() && meta.len() <= DISK_FILE_CAP {
                match std::fs::read(&path) {
                    Ok(bytes) => NodeKind::File(bytes),
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            nodes.insert(
                name,
                Node {
                    kind,
                    mode: meta.permissions().mode() & 0o7777,
                    uid: 0,
                    gid: 0,
                    mtime: meta.mtime(),
                },
            );
        }
    }
    let units = |dir: &str, ext: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(ext))
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let running = units(super::tools::UNIT_PIDS, ".pid")
        .into_iter()
        .filter(|u| super::tools::running_pid(u).is_some())
        .collect();
    SandboxDisk {
        nodes,
        packages: super::tools::installed(),
        enabled: units(super::tools::WANTS, ".service"),
        running,
        first_boot_done: std::path::Path::new(super::agent::BOOT_FINISHED).exists(),
    }
}

/// Runs `command` with bash as `user` in their home, killing its process group after
/// `timeout`.
fn run(command: &str, user: &str, timeout: Duration) -> ExecOutcome {
    let home = format!("/home/{user}");
    run_in(command, super::agent::base_env(user, &home), &home, timeout)
}

fn run_in(command: &str, env: Vec<(String, String)>, cwd: &str, timeout: Duration) -> ExecOutcome {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/bash");
    cmd.args(["-c", command])
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ExecOutcome {
                code: Some(127),
                output: format!("bash: {e}\n"),
            };
        }
    };
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(OUTPUT_CAP as u64).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                break status.code().or_else(|| status.signal().map(|s| 128 + s));
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
        }
    };
    // Whatever the command left in the background keeps its pipes open: the group
    // goes now that the command has ended, so the readers see the end.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let mut output = out.join().unwrap_or_default();
    output.extend(err.join().unwrap_or_default());
    ExecOutcome {
        code,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_here(command: &str, timeout: Duration) -> ExecOutcome {
        let env = vec![("PATH".to_string(), super::super::agent::PATH.to_string())];
        run_in(command, env, "/", timeout)
    }

    #[test]
    fn a_command_gives_its_exit_status_and_stdout_then_stderr() {
        let out = run_here("echo out; echo err >&2; exit 3", Duration::from_secs(10));
        assert_eq!(out.code, Some(3));
        assert_eq!(out.output, "out\nerr\n");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_what_it_left_in_the_background() {
        let started = Instant::now();
        let out = run_here(
            "sleep 30 & echo started; sleep 30",
            Duration::from_millis(300),
        );
        assert_eq!(out.code, None, "timed out");
        assert_eq!(out.output, "started\n");
        assert!(started.elapsed() < Duration::from_secs(10));
        // A finished command's background children go too, so their pipes close.
        let started = Instant::now();
        let out = run_here("sleep 30 & echo done", Duration::from_secs(10));
        assert_eq!(out.code, Some(0));
        assert_eq!(out.output, "done\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn requests_and_answers_round_trip_as_json() {
        let r = Request::Connect {
            addr: "10.0.1.5:80".parse().expect("addr"),
            timeout_ms: 3000,
        };
        let text = serde_json::to_string(&r).expect("json");
        assert_eq!(
            text,
            r#"{"connect":{"addr":"10.0.1.5:80","timeout_ms":3000}}"#
        );
        assert!(
            serde_json::from_str::<Request>(
                r#"{"exec":{"command":"x","timeout_ms":1,"as":"root"}}"#
            )
            .is_err()
        );
    }
}

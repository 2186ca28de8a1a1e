//! The sandbox runtime: an instance as real Linux processes in an unprivileged sandbox
//! whose only network interface is a TUN device bridged into the fabric.
//!
//! The daemon starts one sandbox per running instance with `bwrap` (bubblewrap): new
//! user, mount, PID, UTS, IPC and network namespaces, the daemon's own (unprivileged)
//! uid mapped to uid 0 inside. The host's `/usr` (and `/bin`, `/lib` …) are mounted
//! read-only; `/etc`, `/home`, `/var`, `/tmp`, `/opt`, `/root` and `/usr/local` are
//! folders of the instance's root directory in the state directory ([`InstanceRoot`]),
//! so they persist across stop and start; nothing else of the host (home directories,
//! the state directory) is mounted. Inside, `vpclab instance-agent` ([`agent`]) creates
//! `ens5` (a TUN device), hands its descriptor back over the control socket (its stdin,
//! `SCM_RIGHTS`), configures the address, the default route and the MTU (and, for a
//! dual-stack instance, its IPv6 addresses as /128s, the subnet's /64 on-link and a
//! default IPv6 route via `fe80::1`, as the emulated stack has), runs user data
//! at first boot and serves SSH on port 22 with real processes.
//!
//! The daemon side ([`Sandbox`]) only spawns, hands the agent its [`AgentSpec`],
//! receives the TUN descriptor and the console lines, and kills the sandbox. What it
//! leaves to others: bridging the descriptor into the fabric (`world`, through
//! `vpclab_netstack::tun::PortTun`), when instances start and stop (the model).

pub mod agent;
pub mod cgroup;
pub mod link;
mod root;
pub mod sftp;
pub mod tools;

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cgroup::{Cgroups, InstanceCgroup, Limits};
pub use link::AgentLink;
pub use root::InstanceRoot;

use super::image::Image;
use super::ssh::HostKey;

/// The interface name inside the sandbox (as on Nitro instances).
pub const INTERFACE: &str = "ens5";
/// The MTU of a VPC interface (jumbo frames inside a VPC).
pub const MTU: u32 = 9001;
/// How long the agent has to hand back its TUN device after the sandbox starts.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `vpclab up --runtime`: how instances run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// The sandbox where this machine allows it (unprivileged user namespaces, bwrap,
    /// /dev/net/tun), else emulated.
    Auto,
    /// Real Linux processes in a rootless sandbox; fails at start-up if unavailable.
    Sandbox,
    /// The emulated shell (no processes on the host).
    #[default]
    Emulated,
}

/// The runtime a daemon settled on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Emulated,
    /// Sandboxes, running this agent binary, in cgroups with the instance type's
    /// limits where the machine allows it ([`Cgroups::detect`]).
    Sandbox {
        agent: PathBuf,
        cgroups: Option<Cgroups>,
    },
}

impl RuntimeKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeKind::Emulated => "emulated",
            RuntimeKind::Sandbox { .. } => "sandbox",
        }
    }
}

/// Decides the runtime once, at start-up: `Ok((kind, why))`, or an error when
/// `sandbox` was asked for and cannot work here. `agent` is the `vpclab` binary the
/// sandbox runs (`None` when the daemon runs inside another program, such as a test).
pub fn resolve(
    choice: RuntimeChoice,
    agent: Option<&Path>,
) -> Result<(RuntimeKind, String), String> {
    match choice {
        RuntimeChoice::Emulated => Ok((
            RuntimeKind::Emulated,
            "asked for (--runtime emulated)".into(),
        )),
        RuntimeChoice::Sandbox | RuntimeChoice::Auto => {
            let probed = match agent {
                None => Err("no vpclab binary to run inside the sandbox".to_string()),
                Some(a) => probe(a).map(|()| a.to_path_buf()),
            };
            match (probed, choice) {
                (Ok(agent), _) => {
                    let (cgroups, limits) = match Cgroups::detect() {
                        Ok(c) => {
                            let note = format!(
                                "CPU and memory limits of the instance type (cgroup v2, {})",
                                c.base().display()
                            );
                            (Some(c), note)
                        }
                        Err(e) => (None, format!("no CPU or memory limits: {e}")),
                    };
                    Ok((
                        RuntimeKind::Sandbox { agent, cgroups },
                        format!(
                            "unprivileged user namespaces, bwrap and /dev/net/tun work; {limits}"
                        ),
                    ))
                }
                (Err(e), RuntimeChoice::Auto) => Ok((
                    RuntimeKind::Emulated,
                    format!("the sandbox is unavailable: {e}"),
                )),
                (Err(e), _) => Err(format!("--runtime sandbox is unavailable here: {e}")),
            }
        }
    }
}

/// Whether a sandbox can start here: runs the agent's probe (create a TUN device)
/// inside new user and network namespaces.
pub fn probe(agent: &Path) -> Result<(), String> {
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    let mut cmd = std::process::Command::new("bwrap");
    cmd.args([
        "--unshare-user",
        "--unshare-net",
        "--uid",
        "0",
        "--gid",
        "0",
    ])
    .args(["--cap-add", "CAP_NET_ADMIN", "--die-with-parent"])
    .args(["--ro-bind", "/", "/", "--dev", "/dev"])
    .args(["--dev-bind", "/dev/net/tun", "/dev/net/tun", "--"])
    .arg(agent)
    .args(["instance-agent", "--probe"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("bwrap (bubblewrap) is not installed".into());
        }
        Err(e) => return Err(format!("cannot run bwrap: {e}")),
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "a probe sandbox failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What the agent needs to know, sent as one JSON line on its control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentSpec {
    pub image: Image,
    /// The private IPv4 address; unspecified (0.0.0.0) for an instance in an IPv6-only
    /// subnet, which gets no IPv4 address or route and whose sshd listens on IPv6.
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The subnet router (the subnet's base + 1).
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub host_key: HostKey,
    /// Raw user data (already decoded from base64); empty when none.
    pub user_data: String,
    /// The instance's region (the package managers' mirror names carry it).
    #[serde(default)]
    pub region: String,
    /// The world's package mirror, which `dnf`/`apt` inside ask ([`tools`]).
    #[serde(default)]
    pub package_mirror: Option<SocketAddrV4>,
    /// An upper bound on the network timeouts of those tools (a test knob).
    #[serde(default)]
    pub tool_timeout_ms: Option<u64>,
    /// The interface's IPv6 addresses (each configured as a /128, as Amazon Linux
    /// 2023's DHCPv6 client does); empty for an IPv4-only instance.
    #[serde(default)]
    pub ipv6_addresses: Vec<std::net::Ipv6Addr>,
    /// The subnet's /64, routed on-link (what AWS's router advertisements announce).
    #[serde(default)]
    pub subnet6: Option<ipnet::Ipv6Net>,
}

/// A running sandbox. Dropping it kills every process inside (the outer `bwrap` dies,
/// its PID namespace's init follows, and the kernel kills the rest of the namespace).
pub struct Sandbox {
    child: tokio::process::Child,
    ctl: Option<UnixStream>,
    /// Removed (once empty) after the processes are killed.
    _cgroup: Option<InstanceCgroup>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Sandbox {
    /// Starts the sandbox of `root` running `agent` (inside a tokio runtime), in
    /// `cgroup` when there is one: the new process joins it before it runs `bwrap`.
    pub fn spawn(
        agent: &Path,
        root: &InstanceRoot,
        spec: &AgentSpec,
        cgroup: Option<InstanceCgroup>,
    ) -> std::io::Result<Sandbox> {
        let (mine, theirs) = UnixStream::pair()?;
        let mut cmd = tokio::process::Command::new("bwrap");
        cmd.args(root.bwrap_args(agent))
            .env_clear()
            .env("PATH", agent::PATH)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(cg) = &cgroup {
            let procs = cg.join_fd();
            // SAFETY: the closure runs in the forked child before exec and makes only
            // one `write(2)` on a descriptor the parent keeps open for the whole spawn
            // (`cgroup` lives until after `spawn` returns): async-signal-safe, no
            // allocation, no lock.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    if libc::write(procs, b"0".as_ptr().cast(), 1) == 1 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd.spawn()?;
        let mut line = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        (&mine).write_all(&line)?;
        Ok(Sandbox {
            child,
            ctl: Some(mine),
            _cgroup: cgroup,
        })
    }

    /// The process id of the outer `bwrap` (for tests and logs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The CPU time every process of the sandbox has used: the outer `bwrap` and all its
    /// descendants, live ones from `/proc/<pid>/stat` (user + system), reaped ones
    /// through their parents' `cutime`/`cstime`. Zero once the sandbox is gone.
    pub fn cpu_time(&self) -> std::time::Duration {
        self.pid().map_or(std::time::Duration::ZERO, tree_cpu_time)
    }

    /// Takes the control socket: [`handshake`] reads it on a thread of its own.
    pub fn take_control(&mut self) -> Option<UnixStream> {
        self.ctl.take()
    }

    /// Kills every process of the sandbox.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Blocks until the agent hands over its TUN device, then calls `console` with each
/// line the agent writes until the sandbox ends. Meant for a thread of its own.
pub fn handshake(
    ctl: UnixStream,
    on_device: impl FnOnce(OwnedFd),
    mut console: impl FnMut(&str),
) -> std::io::Result<()> {
    ctl.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let fd = agent::receive_fd(&ctl)?;
    on_device(fd);
    ctl.set_read_timeout(None)?;
    let reader = std::io::BufReader::new(ctl);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        console(&line);
    }
    Ok(())
}

/// The `bwrap` arguments that mount the host's read-only system folders: a folder
/// that is a symbolic link on the host (merged `/usr`) is the same link inside.
fn system_mounts() -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--ro-bind".into(), "/usr".into(), "/usr".into()];
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(dir);
        match std::fs::read_link(p) {
            Ok(target) => {
                args.extend(["--symlink".into(), target.into_os_string(), dir.into()]);
            }
            Err(_) if p.is_dir() => {
                args.extend(["--ro-bind".into(), dir.into(), dir.into()]);
            }
            Err(_) => {}
        }
    }
    args
}

/// One process's parent and CPU ticks (utime + stime + cutime + cstime), from the text
/// of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f
        .get(11..15)?
        .iter()
        .map(|x| x.parse::<u64>().unwrap_or(0))
        .sum();
    Some((ppid, ticks))
}

/// The CPU time of `root` and its descendants (see [`Sandbox::cpu_time`]).
fn tree_cpu_time(root: u32) -> std::time::Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return std::time::Duration::ZERO;
    };
    let mut procs: std::collections::HashMap<u32, (u32, u64)> = Default::default();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(p) = parse_stat(&stat)
        {
            procs.insert(pid, p);
        }
    }
    let mut ticks = 0u64;
    for (&pid, &(_, t)) in &procs {
        // Walk up to the root (bounded: a pid chain is at most as long as the table).
        let mut at = pid;
        for _ in 0..procs.len() {
            if at == root {
                ticks += t;
                break;
            }
            match procs.get(&at) {
                Some(&(ppid, _)) if ppid != 0 && ppid != at => at = ppid,
                _ => break,
            }
        }
    }
    // USER_HZ is 100 on every Linux ABI vpclab runs on (sysconf(_SC_CLK_TCK)).
    std::time::Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod cpu_tests {
    #[test]
    fn reads_the_parent_and_ticks_past_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 150 25 3 2 20 0 1 0 1 0 0";
        assert_eq!(super::parse_stat(stat), Some((7, 180)));
    }

    #[test]
    fn our_own_process_tree_has_used_some_cpu_time() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(super::tree_cpu_time(me) > std::time::Duration::ZERO);
    }
}

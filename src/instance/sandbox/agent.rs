//! `vpclab instance-agent`: the first process of an instance's sandbox.
//!
//! It reads its [`AgentSpec`] from the control socket (its stdin), creates `ens5` (a
//! TUN device: the kernel of the sandbox's network namespace becomes the instance's
//! TCP/IP stack), sends the device's descriptor back (`SCM_RIGHTS`) so the daemon can
//! bridge it into the fabric, configures `lo`, the address, the MTU and the default
//! route with `ip`, serves SSH on port 22, and meanwhile runs user data once (first
//! boot) with bash, its output on the console, before it prints the host keys. The SSH
//! server is vpclab's russh server, whose sessions are real processes (`bash` on a pty,
//! `exec`) or its built-in SFTP server ([`super::sftp`]), and whose `direct-tcpip`
//! connections are opened by the sandbox's own kernel, so they cross the fabric like any
//! packet. `root` with the default user's key is told which user to log in as, as on
//! EC2's images. The daemon's own requests (a lab's `exec` check, a connection from the
//! instance) come on the control socket and are served by [`super::link::serve`].

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use russh::keys::PublicKey;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::io::AsyncWriteExt;

use super::{AgentSpec, INTERFACE};
use crate::instance::ssh::{authorized_keys_contain, refuse_root, server_config};

/// `PATH` of every process the agent starts.
pub(super) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Marks that first-boot user data has run (cloud-init's `boot-finished`).
pub(super) const BOOT_FINISHED: &str = "/var/lib/cloud/instance/boot-finished";
/// How long `direct-tcpip` waits for the target to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// `instance-agent --probe`: can a TUN device be made here?
pub fn probe() -> anyhow::Result<()> {
    tun_tap::Iface::without_packet_info("probe0", tun_tap::Mode::Tun)
        .context("cannot create a TUN device")?;
    Ok(())
}

/// Receives one descriptor sent with `SCM_RIGHTS` on `ctl` (blocking).
pub fn receive_fd(ctl: &UnixStream) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        ctl.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel has just installed `fd` in this process's descriptor
            // table for this message; nothing else knows it, so this is its one owner.
            #[allow(unsafe_code)]
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            return Ok(owned);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the sandbox ended before handing over its network device",
    ))
}

/// The agent's main: never returns while the instance runs.
pub fn run() -> anyhow::Result<()> {
    let ctl = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut reader = std::io::BufReader::new(ctl.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line).context("reading the spec")?;
    let spec: AgentSpec = serde_json::from_str(&line).context("the spec")?;

    let tun = tun_tap::Iface::without_packet_info(INTERFACE, tun_tap::Mode::Tun)
        .context("creating ens5")?;
    tun.set_non_blocking()?;
    {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let fds = [tun.as_raw_fd()];
        sendmsg::<()>(
            ctl.as_raw_fd(),
            &[std::io::IoSlice::new(b"T")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .context("handing over ens5")?;
    }
    // The daemon holds the device now, but this copy stays open: a TUN device lives
    // while any descriptor of it does, and should the daemon drop its copy before the
    // `ip` commands below (a bridge that could not attach), closing this one would
    // remove `ens5` under them ("Cannot find device ens5"). Nothing reads it here.
    let _device = tun;
    let requests = ctl.try_clone()?;
    let console = Arc::new(Console(ctl));
    let say = |text: &str| console.say(text);
    let cidr = format!("{}/{}", spec.address, spec.prefix_len);
    let mtu = spec.mtu.to_string();
    let gw = spec.gateway.to_string();
    // An instance in an IPv6-only subnet has no IPv4 address (the spec's address is
    // unspecified): no IPv4 address or route on ens5, only the IPv6 ones below.
    let has_v4 = !spec.address.is_unspecified();
    let mut v4_cmds = vec![vec!["link", "set", "lo", "up"]];
    if has_v4 {
        v4_cmds.push(vec!["addr", "add", &cidr, "dev", INTERFACE]);
    }
    v4_cmds.push(vec!["link", "set", INTERFACE, "mtu", &mtu, "up"]);
    if has_v4 {
        v4_cmds.push(vec![
            "route", "add", "default", "via", &gw, "dev", INTERFACE,
        ]);
    }
    for args in v4_cmds {
        let out = std::process::Command::new("ip").args(&args).output()?;
        if !out.status.success() {
            anyhow::bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    // IPv6 (a dual-stack instance): each address as a /128 (AL2023's DHCPv6 lease), the
    // subnet's /64 on-link and the default route via fe80::1, the router's address in
    // vpclab. A TUN device has no link layer, so no neighbour discovery is needed to use
    // that next hop: the kernel writes the packet to ens5 and the fabric routes it.
    // `nodad`: nothing else on the link could hold the address.
    let mut v6_cmds: Vec<Vec<String>> = spec
        .ipv6_addresses
        .iter()
        .map(|a| {
            [
                "-6",
                "addr",
                "add",
                &format!("{a}/128"),
                "dev",
                INTERFACE,
                "nodad",
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();
    if !spec.ipv6_addresses.is_empty() {
        if let Some(net) = spec.subnet6 {
            v6_cmds.push(
                ["-6", "route", "add", &net.to_string(), "dev", INTERFACE]
                    .map(String::from)
                    .to_vec(),
            );
        }
        v6_cmds.push(
            [
                "-6", "route", "add", "default", "via", "fe80::1", "dev", INTERFACE,
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    for args in &v6_cmds {
        let out = std::process::Command::new("ip").args(args).output()?;
        if !out.status.success() {
            anyhow::bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    if has_v4 {
        say(&format!(
            "[    0.100000] {INTERFACE}: link up, address {cidr}, mtu {mtu}, default via {gw}"
        ));
    } else {
        say(&format!(
            "[    0.100000] {INTERFACE}: link up, no IPv4 address (IPv6-only subnet), mtu {mtu}"
        ));
    }
    for a in &spec.ipv6_addresses {
        say(&format!(
            "[    0.110000] {INTERFACE}: IPv6 address {a}/128, default via fe80::1"
        ));
    }
    if has_v4 {
        say(&format!(
            "ci-info: | {INTERFACE} | True | {} | {} |",
            spec.address, spec.prefix_len
        ));
    }
    // The kit's requests (lab checks: a command, a connection from inside), from now
    // on: the network is configured.
    let user = spec.image.default_user();
    std::thread::spawn(move || super::link::serve(requests, user));

    // What dnf, apt and systemctl inside need to know; then the units enabled on an
    // earlier boot start again, before user data runs (as systemd orders it).
    let tools = super::tools::ToolConfig {
        image: spec.image,
        region: spec.region.clone(),
        package_mirror: spec.package_mirror,
        timeout_ms: spec.tool_timeout_ms,
    };
    if let Err(e) = tools.save() {
        say(&format!(
            "vpclab: cannot write {}: {e}",
            super::tools::CONFIG
        ));
    }
    for unit in super::tools::start_enabled(&tools) {
        say(&format!("[  OK  ] Started {unit}.service."));
    }
    let first_boot = !Path::new(BOOT_FINISHED).exists();
    if first_boot {
        // Marked before running, so a script that hangs is not run again at next boot.
        let _ = std::fs::write(BOOT_FINISHED, b"");
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // sshd is up before cloud-init's final stage, as on an EC2 instance: the learner
        // can log in while user data still runs.
        // IPv4 as before; an IPv6-only instance's sshd listens on IPv6 (its only way in).
        let listener = if spec.address.is_unspecified() {
            tokio::net::TcpListener::bind(("::", 22)).await?
        } else {
            tokio::net::TcpListener::bind(("0.0.0.0", 22)).await?
        };
        let config = server_config(&spec.host_key, spec.image);
        let spec = Arc::new(spec);
        let final_stage = {
            let (spec, console) = (spec.clone(), console.clone());
            tokio::task::spawn_blocking(move || {
                if first_boot && !spec.user_data.trim().is_empty() {
                    console.say("cloud-init: running user data (first boot)");
                    run_user_data(&spec.user_data, &console);
                }
                let fp = spec.host_key.fingerprint_sha256();
                console.say("-----BEGIN SSH HOST KEY FINGERPRINTS-----");
                console.say(&format!("256 {fp} root@{} (ED25519)", hostname()));
                console.say("-----END SSH HOST KEY FINGERPRINTS-----");
                console.say("-----BEGIN SSH HOST KEY KEYS-----");
                console.say(&spec.host_key.public_openssh());
                console.say("-----END SSH HOST KEY KEYS-----");
                console.say("Cloud-init finished: sshd listening on port 22");
            })
        };
        // Detached: the final stage goes on while sshd serves.
        drop(final_stage);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let handler = AgentSsh {
                spec: spec.clone(),
                user: None,
            };
            let config = config.clone();
            tokio::spawn(async move {
                if let Ok(running) = russh::server::run_stream(config, stream, handler).await {
                    let _ = running.await;
                }
            });
        }
    })
}

/// The control socket as the serial console: one line per write, so lines written by
/// the boot and by user data's output never interleave within a line.
struct Console(UnixStream);

impl Console {
    fn say(&self, text: &str) {
        let _ = (&self.0).write_all(format!("{text}\n").as_bytes());
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Runs user data (a script with `#!` runs as itself, anything else with bash) and
/// waits for it to exit. Its output goes to cloud-init's log and, line by line, to the
/// console (`cloud-init[1580]: …`, as the emulated runtime prints it), as cloud-init's
/// final stage does. A program the script left in the background keeps writing to
/// both; it does not hold up the boot.
fn run_user_data(data: &str, console: &Arc<Console>) {
    let dir = Path::new("/var/lib/cloud/instance");
    let script = dir.join("user-data.txt");
    if std::fs::write(&script, data).is_err() {
        return;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/var/log/cloud-init-output.log");
    let Ok(mut log) = log else { return };
    let Ok((reader, writer)) = std::io::pipe() else {
        return;
    };
    let Ok(writer2) = writer.try_clone() else {
        return;
    };
    let mut cmd = std::process::Command::new("/bin/bash");
    cmd.arg(&script)
        .env_clear()
        .envs(base_env("root", "/root"))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2));
    let spawned = cmd.spawn();
    // The agent's copies of the write end closed: the reader sees the end once every
    // process of the script has.
    drop(cmd);
    let Ok(mut child) = spawned else { return };
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let console = console.clone();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = log.write_all(&line);
                    let text = String::from_utf8_lossy(&line);
                    console.say(&format!(
                        "cloud-init[1580]: {}",
                        text.trim_end_matches('\n')
                    ));
                }
            }
        }
        let _ = done_tx.send(());
    });
    let _ = child.wait();
    // The script's last lines are in the pipe: a moment for the reader to pass them on.
    let _ = done_rx.recv_timeout(Duration::from_millis(500));
}

pub(super) fn base_env(user: &str, home: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), home.into()),
        ("USER".into(), user.into()),
        ("LOGNAME".into(), user.into()),
        ("SHELL".into(), "/bin/bash".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("HOSTNAME".into(), hostname()),
    ]
}

struct AgentSsh {
    spec: Arc<AgentSpec>,
    user: Option<String>,
}

impl AgentSsh {
    /// The image's default user, with a key listed in their `authorized_keys`; `root`
    /// with the same keys, as cloud-init copies them to root's behind a forced command
    /// ([`refuse_root`]).
    fn allowed(&self, user: &str, key: &PublicKey) -> bool {
        let default = self.spec.image.default_user();
        (user == default || user == "root")
            && std::fs::read_to_string(format!("/home/{default}/.ssh/authorized_keys"))
                .is_ok_and(|text| authorized_keys_contain(&text, key))
    }
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
        partial_success: false,
    }
}

impl russh::server::Handler for AgentSsh {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.allowed(user, offer.public_key) {
            Auth::Accept
        } else {
            reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.allowed(user, key.public_key) {
            self.user = Some(user.to_string());
            Ok(Auth::Accept)
        } else {
            Ok(reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        reply.accept().await;
        if user == "root" {
            tokio::spawn(refuse_root(channel, self.spec.image.default_user()));
        } else {
            tokio::spawn(run_session(channel, user));
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn window_change_request(
        &mut self,
        _channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Local forwarding (`ssh -L`, `ssh -J`): the sandbox's kernel opens the
    /// connection, from the instance's address, through the fabric.
    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(user), Ok(port)) = (self.user.as_ref(), u16::try_from(port_to_connect)) else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // root's forced command allows no forwarding (cloud-init's `no-port-forwarding`).
        if user == "root" {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let host = host_to_connect.to_string();
        tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(mut stream)) => {
                    reply.accept().await;
                    let mut chan = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut chan, &mut stream).await;
                }
                Ok(Err(e)) => {
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: 2,
                            reason: e.to_string(),
                        })
                        .await;
                }
                Err(_) => {
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: 2,
                            reason: "Connection timed out".into(),
                        })
                        .await;
                }
            }
        });
        Ok(())
    }
}

/// What a session asked to run.
enum Program {
    Shell,
    Command(String),
}

/// One session channel: collects the pty and environment requests, then runs what
/// the client asked for.
async fn run_session(mut ch: Channel<Msg>, user: String) {
    let mut pty: Option<(String, u16, u16)> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let program = loop {
        let Some(msg) = ch.wait().await else { return };
        match msg {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            } => {
                let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                pty = Some((term, clamp(col_width), clamp(row_height)));
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } if variable_name == "LANG" || variable_name.starts_with("LC_") => {
                env.push((variable_name, variable_value));
            }
            ChannelMsg::RequestShell { .. } => break Program::Shell,
            ChannelMsg::Exec { command, .. } => {
                break Program::Command(String::from_utf8_lossy(&command).into_owned());
            }
            ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                return serve_sftp(ch, format!("/home/{user}")).await;
            }
            ChannelMsg::Eof | ChannelMsg::Close => return,
            _ => {}
        }
    };
    let home = format!("/home/{user}");
    let mut cmd = match &program {
        Program::Shell | Program::Command(_) if pty.is_some() => {
            // A new session whose controlling terminal is the pty (job control works).
            let mut c = tokio::process::Command::new("setsid");
            c.args(["-c", "/bin/bash"]);
            c
        }
        _ => tokio::process::Command::new("/bin/bash"),
    };
    match &program {
        Program::Shell => {
            cmd.arg("-l");
        }
        Program::Command(c) => {
            cmd.args(["-c", c]);
        }
    }
    cmd.env_clear()
        .envs(base_env(&user, &home))
        .envs(env)
        .current_dir(&home)
        .kill_on_drop(true);
    match pty {
        Some((term, cols, rows)) => {
            cmd.env("TERM", term);
            run_on_pty(ch, cmd, cols, rows).await
        }
        _ => run_piped(ch, cmd).await,
    }
}

/// The built-in SFTP server, in this process, as the user. It talks through a pipe so
/// that the session can end as sshd's does: when the client closes its side, the
/// server finishes, then the channel gets exit status 0 and closes (`scp` counts a
/// session without an exit status as failed).
async fn serve_sftp(ch: Channel<Msg>, home: String) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    russh_sftp::server::run(theirs, super::sftp::Sftp::new(home)).await;
    let (mut from_sftp, to_sftp) = tokio::io::split(ours);
    let (mut rd, wr) = ch.split();
    let out = {
        let mut w = wr.make_writer();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_sftp, &mut w).await;
            let _ = w.flush().await;
        })
    };
    let mut to_sftp = Some(to_sftp);
    loop {
        match rd.wait().await {
            Some(ChannelMsg::Data { data }) => {
                if let Some(s) = to_sftp.as_mut()
                    && s.write_all(&data).await.is_err()
                {
                    to_sftp = None;
                }
            }
            Some(ChannelMsg::Eof) => break,
            None | Some(ChannelMsg::Close) => {
                out.abort();
                return;
            }
            _ => {}
        }
    }
    // End of the client's input: the server reads the end, stops and drops its side.
    if let Some(mut s) = to_sftp {
        let _ = s.shutdown().await;
    }
    let _ = out.await;
    finish(&wr, Some(0)).await;
}

/// Runs `cmd` with pipes: stdout as channel data, stderr as extended data 1.
async fn run_piped(ch: Channel<Msg>, mut cmd: tokio::process::Command) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (mut rd, wr) = ch.split();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = wr.extended_data(1, format!("{e}\n").as_bytes()).await;
            let _ = wr.exit_status(127).await;
            let _ = wr.eof().await;
            let _ = wr.close().await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let out = child.stdout.take().map(|mut o| {
        let mut w = wr.make_writer();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut o, &mut w).await;
            let _ = w.flush().await;
        })
    });
    let err = child.stderr.take().map(|mut o| {
        let mut w = wr.make_writer_ext(Some(1));
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut o, &mut w).await;
            let _ = w.flush().await;
        })
    });
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            msg = rd.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(s) = stdin.as_mut() && s.write_all(&data).await.is_err() {
                        stdin = None;
                    }
                }
                Some(ChannelMsg::Eof) => stdin = None,
                None | Some(ChannelMsg::Close) => {
                    let _ = child.start_kill();
                    return;
                }
                _ => {}
            },
        }
    };
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    finish(&wr, status.ok().and_then(|s| exit_code(&s))).await;
}

async fn finish<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    wr: &russh::ChannelWriteHalf<S>,
    code: Option<u32>,
) {
    let _ = wr.exit_status(code.unwrap_or(255)).await;
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

fn exit_code(s: &std::process::ExitStatus) -> Option<u32> {
    use std::os::unix::process::ExitStatusExt;
    s.code()
        .map(|c| c as u32)
        .or_else(|| s.signal().map(|sig| 128 + sig as u32))
}

/// Starts `cmd` with the terminal `tty` as its stdin, stdout and stderr.
fn spawn_on(
    cmd: &mut tokio::process::Command,
    tty: &OwnedFd,
) -> std::io::Result<tokio::process::Child> {
    cmd.stdin(Stdio::from(tty.try_clone()?))
        .stdout(Stdio::from(tty.try_clone()?))
        .stderr(Stdio::from(tty.try_clone()?));
    cmd.spawn()
}

/// Runs `cmd` on a new pty: the client's bytes go to the terminal, the terminal's to
/// the client; a window change is applied with `stty` (the kernel then signals the
/// foreground process group).
async fn run_on_pty(ch: Channel<Msg>, mut cmd: tokio::process::Command, cols: u16, rows: u16) {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut rd, wr) = ch.split();
    let pty = match nix::pty::openpty(Some(&size), None) {
        Ok(p) => p,
        Err(e) => {
            let _ = wr
                .extended_data(1, format!("openpty: {e}\n").as_bytes())
                .await;
            finish(&wr, Some(1)).await;
            return;
        }
    };
    let tty_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).ok();
    let spawned = spawn_on(&mut cmd, &pty.slave);
    // The child holds the terminal now; the agent's copies must close, or the master
    // would never see the end.
    drop(cmd);
    drop(pty.slave);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = wr.extended_data(1, format!("{e}\n").as_bytes()).await;
            finish(&wr, Some(127)).await;
            return;
        }
    };
    let master = std::fs::File::from(pty.master);
    let Ok(mut master_w) = master.try_clone() else {
        let _ = child.start_kill();
        return;
    };
    // Terminal output: a thread reads the master (blocking) until every holder of
    // the terminal has closed it (EIO).
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = vec![0u8; 16384];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(data) = in_rx.recv() {
            if master_w.write_all(&data).is_err() {
                return;
            }
        }
    });
    let mut status = None;
    loop {
        tokio::select! {
            chunk = out_rx.recv() => match chunk {
                Some(c) => {
                    if wr.data(&c[..]).await.is_err() {
                        let _ = child.start_kill();
                        return;
                    }
                }
                None => break,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s.ok().and_then(|s| exit_code(&s)));
            }
            msg = rd.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    let _ = in_tx.send(data.to_vec());
                }
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    if let Some(path) = &tty_path {
                        let _ = std::process::Command::new("stty")
                            .arg("-F")
                            .arg(path)
                            .args(["cols", &col_width.to_string(), "rows", &row_height.to_string()])
                            .status();
                    }
                }
                None | Some(ChannelMsg::Close) => {
                    let _ = child.start_kill();
                    return;
                }
                _ => {}
            },
        }
        // The shell has ended and its background jobs may keep the terminal open:
        // stop reading once it goes quiet.
        if status.is_some() {
            while let Ok(Some(c)) =
                tokio::time::timeout(Duration::from_millis(100), out_rx.recv()).await
            {
                let _ = wr.data(&c[..]).await;
            }
            break;
        }
    }
    let code = match status {
        Some(c) => c,
        None => child.wait().await.ok().and_then(|s| exit_code(&s)),
    };
    finish(&wr, code).await;
}

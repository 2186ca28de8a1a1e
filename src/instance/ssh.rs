//! The instance's SSH server (russh), served on any byte stream.
//!
//! Authentication is public-key only, for the image's default user, against the keys in
//! that user's `~/.ssh/authorized_keys` on the instance's filesystem (which the launch
//! key pair was written to) — so a wrong user or key ends in OpenSSH's
//! `Permission denied (publickey)`, and a key the learner appends there works, as on a
//! real instance. As on AL2023 and Ubuntu 24.04, RSA keys must sign with SHA-2
//! (`rsa-sha2-256`/`-512`): SHA-1 `ssh-rsa` signatures are refused. `root` with the
//! default user's key gets in only to be told, as cloud-init arranges on AWS's images,
//! `Please login as the user "ec2-user" rather than the user "root".`, and the session
//! ends with status 142 ten seconds later.
//!
//! Each session channel runs in its own task: an interactive shell with line editing
//! when a pty was requested, a command for `exec` (exit status sent before EOF, so
//! OpenSSH reports it), or the SFTP subsystem, which OpenSSH 9's `scp` uses.
//!
//! Limits (see `docs/fidelity.md`): [`MAX_CONNECTIONS_PER_INSTANCE`] connections at
//! once per instance (the next is closed before the banner, as sshd does past
//! `MaxStartups`), [`LOGIN_GRACE_TIME`] to authenticate, [`MAX_SESSIONS`] session
//! channels per connection (sshd's `MaxSessions`); command output reaches the channel
//! through the bounded queue of [`super::outq`], and input waits in a bounded queue.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{
    Channel, ChannelId, ChannelMsg, ChannelOpenFailure, Disconnect, MethodKind, MethodSet, SshId,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::InstanceState;
use super::image::Image;
use super::lineedit::{Event, LineEditor};
use super::net::BoxFuture;
use super::outq::{self, OutRx};
use super::shell::{Chunk, Io, Shell, Sink, Stdin, Term};
use std::sync::atomic::Ordering;

/// An instance's SSH host key (ED25519), persisted with the instance so `known_hosts`
/// stays valid across stop/start and daemon restarts. Serialized as its 32-byte seed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    #[serde(with = "hex_seed")]
    seed: [u8; 32],
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "HostKey({})", self.fingerprint_sha256())
    }
}

mod hex_seed {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seed: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(seed))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("host key seed must be 32 bytes"))
    }
}

impl HostKey {
    /// A new random key.
    pub fn generate() -> Self {
        HostKey {
            seed: rand::random(),
        }
    }

    /// The key derived from a seed (deterministic worlds, tests).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        HostKey { seed }
    }

    pub fn private_key(&self) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&self.seed))
    }

    pub fn public_key(&self) -> PublicKey {
        self.private_key().public_key().clone()
    }

    /// `ssh-ed25519 AAAA…` (no comment).
    pub fn public_openssh(&self) -> String {
        self.public_key().to_openssh().unwrap_or_default()
    }

    /// `SHA256:…`, as `ssh` prints it on first connection.
    pub fn fingerprint_sha256(&self) -> String {
        self.public_key().fingerprint(HashAlg::Sha256).to_string()
    }
}

/// sshd's `MaxSessions` default: session channels one connection may have open.
pub const MAX_SESSIONS: usize = 10;
/// SSH connections one instance serves at once, authenticated or not.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 64;
/// sshd's `LoginGraceTime` default: a connection not authenticated by then is closed.
pub const LOGIN_GRACE_TIME: Duration = Duration::from_secs(120);

/// The exit status cloud-init's forced command gives a `root` login.
const ROOT_REFUSED_STATUS: u32 = 142;

/// Public-key algorithms sshd accepts, in russh's order: russh's defaults without
/// SHA-1 `ssh-rsa`, which OpenSSH 8.8 and later (AL2023, Ubuntu 24.04) no longer accept.
/// The list is also what the server announces in `server-sig-algs`.
fn accepted_key_algorithms() -> Vec<Algorithm> {
    russh::Preferred::DEFAULT
        .key
        .iter()
        .filter(|a| !is_sha1_rsa(a))
        .cloned()
        .collect()
}

fn is_sha1_rsa(a: &Algorithm) -> bool {
    *a == Algorithm::Rsa { hash: None }
}

/// The russh configuration for an instance.
pub fn server_config(key: &HostKey, image: Image) -> Arc<russh::server::Config> {
    let mut c = russh::server::Config {
        // The version string of the image's own sshd, so `nc host 22` looks familiar.
        server_id: SshId::Standard(
            match image {
                Image::AmazonLinux2023 => "SSH-2.0-OpenSSH_8.7",
                Image::Ubuntu2404 => "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5",
            }
            .into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH's first "none" probe must not wait (crates.md); real rejections wait a
        // little, as sshd does.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key.private_key()],
        inactivity_timeout: None,
        nodelay: true,
        preferred: russh::Preferred {
            key: accepted_key_algorithms().into(),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    };
    c.max_auth_attempts = 6;
    Arc::new(c)
}

/// A place among the instance's SSH connections, given back on drop.
struct ConnectionSlot(Arc<InstanceState>);

impl ConnectionSlot {
    fn take(inst: &Arc<InstanceState>) -> Option<ConnectionSlot> {
        let n = inst.ssh_connections.fetch_add(1, Ordering::AcqRel);
        let slot = ConnectionSlot(inst.clone());
        (n < MAX_CONNECTIONS_PER_INSTANCE).then_some(slot)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.ssh_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one SSH connection until it ends.
pub async fn serve_ssh<S>(stream: S, inst: Arc<InstanceState>) -> Result<(), russh::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(_slot) = ConnectionSlot::take(&inst) else {
        // As sshd past MaxStartups: closed before the banner; the others carry on.
        tracing::debug!(
            instance = %inst.profile().instance_id,
            "ssh connection refused: {MAX_CONNECTIONS_PER_INSTANCE} already open"
        );
        return Ok(());
    };
    let authenticated = Arc::new(AtomicBool::new(false));
    let handler = SshSession {
        inst: inst.clone(),
        user: None,
        root_refused: false,
        sessions: Arc::new(AtomicUsize::new(0)),
        authenticated: authenticated.clone(),
    };
    let grace = tokio::time::sleep(LOGIN_GRACE_TIME);
    tokio::pin!(grace);
    // The client's version line arrives inside run_stream: a silent client is
    // dropped at the end of the grace time too.
    let running = tokio::select! {
        r = russh::server::run_stream(inst.ssh_config.clone(), stream, handler) => r?,
        _ = &mut grace => return Ok(()),
    };
    let handle = running.handle();
    tokio::pin!(running);
    tokio::select! {
        r = &mut running => return r,
        _ = &mut grace => {}
    }
    if !authenticated.load(Ordering::Acquire) {
        let _ = handle
            .disconnect(
                Disconnect::ByApplication,
                "Timeout before authentication".to_string(),
                String::new(),
            )
            .await;
    }
    running.await
}

struct SshSession {
    inst: Arc<InstanceState>,
    /// The authenticated user.
    user: Option<String>,
    /// `root` logged in with the default user's key: every session only prints
    /// cloud-init's message.
    root_refused: bool,
    /// Session channels open on this connection.
    sessions: Arc<AtomicUsize>,
    authenticated: Arc<AtomicBool>,
}

impl SshSession {
    /// Whether `user` may log in with `key`: the image's default user, with the key
    /// listed in their `~/.ssh/authorized_keys`. `root` is let in with the same keys
    /// (cloud-init copies them to root's `authorized_keys` behind a forced command).
    fn allowed(&self, user: &str, key: &PublicKey) -> bool {
        let image = self.inst.profile().image;
        if user != image.default_user() && user != "root" {
            return false;
        }
        let default = image.default_user();
        let path = format!("/home/{default}/.ssh/authorized_keys");
        let data = match self.inst.lock_disk().fs.read(&path, image.default_cred()) {
            Ok(d) => String::from_utf8_lossy(d).to_string(),
            Err(_) => return false,
        };
        authorized_keys_contain(&data, key)
    }
}

/// Whether an `authorized_keys` text lists `key` (options before the key are skipped).
pub fn authorized_keys_contain(text: &str, key: &PublicKey) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|line| {
            let start = line
                .find("ssh-")
                .or_else(|| line.find("ecdsa-"))
                .unwrap_or(0);
            PublicKey::from_openssh(&line[start..]).is_ok_and(|k| k.key_data() == key.key_data())
        })
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
        partial_success: false,
    }
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if !is_sha1_rsa(offer.algorithm) && self.allowed(user, offer.public_key) {
                Auth::Accept
            } else {
                reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // russh checked that the signature uses the algorithm the request names, so
        // refusing the name refuses SHA-1 signatures.
        if !is_sha1_rsa(key.algorithm) && self.allowed(user, key.public_key) {
            self.user = Some(user.to_string());
            self.root_refused = user == "root";
            self.authenticated.store(true, Ordering::Release);
            Ok(Auth::Accept)
        } else {
            Ok(reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        if self.sessions.load(Ordering::Acquire) >= MAX_SESSIONS {
            // sshd past MaxSessions: "open failed: administratively prohibited".
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.sessions.fetch_add(1, Ordering::AcqRel);
        reply.accept().await;
        let sessions = self.sessions.clone();
        let inst = self.inst.clone();
        let handle = session.handle();
        let root_refused = self.root_refused;
        tokio::spawn(async move {
            if root_refused {
                refuse_root(channel, inst.profile().image.default_user()).await;
            } else {
                run_channel(channel, inst, user, handle).await;
            }
            sessions.fetch_sub(1, Ordering::AcqRel);
        });
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
        // window-change carries no reply (RFC 4254 §6.7); the channel task sees it too.
        Ok(())
    }

    /// Local forwarding (RFC 4254 §7.2), which `ssh -J`/`ProxyJump` and `ssh -W` use:
    /// the instance opens the TCP connection itself, from its own address, so the
    /// second hop crosses route tables, NACLs and security groups like any packet
    /// (sshd's default `AllowTcpForwarding yes`, as on AL2023 and Ubuntu). A target that
    /// does not answer fails the channel with "connect failed", which OpenSSH prints as
    /// `channel 0: open failed: connect failed: …`.
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
        let (Some(user), false, Ok(port)) = (
            self.user.clone(),
            self.root_refused,
            u16::try_from(port_to_connect),
        ) else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let inst = self.inst.clone();
        let host = host_to_connect.to_string();
        // The connection may take as long as a SYN timeout: the handler must not wait
        // for it, or the whole SSH connection would stall.
        tokio::spawn(async move {
            let shell = Shell::new(inst, &user);
            // An IPv6 literal (what `ssh -J` sends for an IPv6 destination) goes over
            // IPv6, as OpenSSH's sshd would: the way to an instance in an IPv6-only
            // subnet.
            let Ok(ip) = super::shell::nettools::resolve_ip(
                &shell,
                &host,
                super::shell::nettools::Family::Any,
            )
            .await
            else {
                reply
                    .reject(ChannelOpenFailure::Other {
                        code: 2,
                        reason: format!("name resolution failed for {host}"),
                    })
                    .await;
                return;
            };
            let target = std::net::SocketAddr::new(ip, port);
            match super::shell::nettools::connect_ip(
                &shell,
                target,
                super::shell::nettools::LINUX_CONNECT_TIMEOUT,
            )
            .await
            {
                Ok(mut stream) => {
                    reply.accept().await;
                    let mut chan = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut chan, &mut stream).await;
                }
                Err(e) => {
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: 2,
                            reason: e.to_string(),
                        })
                        .await;
                }
            }
        });
        Ok(())
    }
}

/// A session of `root` on an image whose cloud-init disables root: whatever was asked
/// (shell, command, SFTP), the forced command runs instead: it prints which user to
/// log in as (`user`, the image's default user), waits ten seconds and exits with 142.
/// The sandbox runtime's SSH server answers `root` with it too.
pub(crate) async fn refuse_root(mut ch: Channel<Msg>, user: &str) {
    let mut tty = false;
    loop {
        match ch.wait().await {
            None | Some(ChannelMsg::Eof | ChannelMsg::Close) => return,
            Some(ChannelMsg::RequestPty { .. }) => tty = true,
            Some(
                ChannelMsg::RequestShell { .. }
                | ChannelMsg::Exec { .. }
                | ChannelMsg::RequestSubsystem { .. },
            ) => break,
            Some(_) => {}
        }
    }
    let text = format!("Please login as the user \"{user}\" rather than the user \"root\".\n\n");
    let text = if tty {
        onlcr(text.as_bytes())
    } else {
        text.into_bytes()
    };
    let (mut rd, wr) = ch.split();
    let _ = wr.data(&text[..]).await;
    let pause = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(pause);
    loop {
        tokio::select! {
            _ = &mut pause => break,
            msg = rd.wait() => if matches!(msg, None | Some(ChannelMsg::Close)) { return },
        }
    }
    let _ = wr.exit_status(ROOT_REFUSED_STATUS).await;
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

/// One session channel: waits for its request, then runs it.
async fn run_channel(
    mut ch: Channel<Msg>,
    inst: Arc<InstanceState>,
    user: String,
    handle: russh::server::Handle,
) {
    let mut pty: Option<(u32, u32)> = None;
    loop {
        let Some(msg) = ch.wait().await else {
            return;
        };
        match msg {
            ChannelMsg::RequestPty {
                col_width,
                row_height,
                ..
            } => pty = Some((col_width, row_height)),
            ChannelMsg::RequestShell { .. } => {
                return interactive(ch, inst, user, pty).await;
            }
            ChannelMsg::Exec { command, .. } => {
                let cmd = String::from_utf8_lossy(&command).to_string();
                return exec(ch, inst, user, cmd, pty.is_some()).await;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                if name == "sftp" {
                    // When the client ends the session, report exit status 0 before the
                    // channel closes: scp treats a missing status as a failure.
                    let id = ch.id();
                    let on_eof: BoxFuture<'static, ()> = Box::pin(async move {
                        let _ = handle.exit_status_request(id, 0).await;
                        let _ = handle.eof(id).await;
                    });
                    let stream = EofHook {
                        inner: ch.into_stream(),
                        on_eof: Some(on_eof),
                        at_eof: false,
                    };
                    super::sftp::serve(stream, inst, user).await;
                }
                return;
            }
            ChannelMsg::Eof | ChannelMsg::Close => return,
            _ => {}
        }
    }
}

/// A stream that runs a future when its reader reaches end of input, before reporting
/// that end to the reader.
struct EofHook<S> {
    inner: S,
    on_eof: Option<BoxFuture<'static, ()>>,
    at_eof: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for EofHook<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.at_eof {
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before => this.at_eof = true,
                other => return other,
            }
        }
        if let Some(f) = this.on_eof.as_mut() {
            if f.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.on_eof = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EofHook<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Output with a terminal's `onlcr`: `\n` becomes `\r\n`.
fn onlcr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

type Writer = russh::ChannelWriteHalf<Msg>;

async fn send(wr: &Writer, chunk: &Chunk, tty: bool) {
    // A failed send means the client went away; the read side will notice and stop.
    if tty {
        let _ = wr.data(&onlcr(&chunk.data)[..]).await;
    } else if chunk.stderr {
        let _ = wr.extended_data(1, &chunk.data[..]).await;
    } else {
        let _ = wr.data(&chunk.data[..]).await;
    }
}

async fn finish(wr: &Writer, status: i32) {
    // exit-status must precede EOF and close, or OpenSSH reports no status (crates.md).
    let _ = wr
        .exit_status(u32::try_from(status & 0xff).unwrap_or(255))
        .await;
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

/// What ended a command run while the channel stays readable.
enum Ran {
    Done(i32),
    /// The client closed the channel.
    Gone,
}

/// Runs `src` in `shell` while relaying output, stdin and Ctrl-C.
async fn run_relayed(
    shell: &mut Shell,
    src: &str,
    rd: &mut russh::ChannelReadHalf,
    wr: &Writer,
    tty: bool,
) -> Ran {
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(outq::INPUT_QUEUE_CHUNKS);
    let (out_tx, mut out_rx) = outq::out_queue(outq::OUTPUT_QUEUE_LIMIT);
    let mut stdin_tx = Some(stdin_tx);
    // Input the command has not taken yet while its queue is full: the channel is not
    // read until it is, so the client's window closes and it waits.
    let mut held: Option<Vec<u8>> = None;
    let term = Arc::new(Term::default());
    let mut io = Io {
        term: term.clone(),
        stdin: Stdin::Stream(stdin_rx),
        out: Sink::Stream {
            tx: out_tx.clone(),
            stderr: false,
        },
        err: Sink::Stream {
            tx: out_tx,
            stderr: true,
        },
    };
    let result = {
        let fut = shell.run_script(src, &mut io);
        tokio::pin!(fut);
        loop {
            // Output first: while the client does not read, the command is not polled.
            tokio::select! {
                biased;
                Some(chunk) = out_rx.recv() => send(wr, &chunk, tty).await,
                status = &mut fut => break Ran::Done(status),
                permit = reserve(stdin_tx.clone()), if held.is_some() => {
                    match (permit, held.take()) {
                        (Some(p), Some(data)) => {
                            p.send(data);
                        }
                        // The command no longer reads input: drop it.
                        _ => stdin_tx = None,
                    }
                }
                msg = rd.wait(), if held.is_none() => match msg {
                    Some(ChannelMsg::Data { data }) if term.raw.load(Ordering::Relaxed) => {
                        // A command relays the terminal to another host: pass keys as typed.
                        held = offer(&mut stdin_tx, data.to_vec());
                    }
                    Some(ChannelMsg::Data { data }) => {
                        if tty && data.contains(&0x03) {
                            if term.catch_interrupt.load(Ordering::Relaxed) {
                                let _ = wr.data(&b"^C"[..]).await;
                                term.interrupt.notify_one();
                                continue;
                            }
                            let _ = wr.data(&b"^C\r\n"[..]).await;
                            break Ran::Done(130);
                        }
                        if tty && data.contains(&0x04) {
                            stdin_tx = None;
                            continue;
                        }
                        if tty {
                            let _ = wr.data(&onlcr(&data)[..]).await;
                            let text: Vec<u8> = data.iter().map(|b| if *b == b'\r' { b'\n' } else { *b }).collect();
                            held = offer(&mut stdin_tx, text);
                        } else {
                            held = offer(&mut stdin_tx, data.to_vec());
                        }
                    }
                    Some(ChannelMsg::Eof) => stdin_tx = None,
                    Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                        let _ = (col_width, row_height);
                    }
                    None | Some(ChannelMsg::Close) => break Ran::Gone,
                    Some(_) => {}
                }
            }
        }
    };
    drop(io);
    drain(&mut out_rx, wr, tty).await;
    result
}

/// Queues input for the command; gives it back when the queue is full.
fn offer(tx: &mut Option<mpsc::Sender<Vec<u8>>>, data: Vec<u8>) -> Option<Vec<u8>> {
    let sender = tx.as_ref()?;
    match sender.try_send(data) {
        Ok(()) => None,
        Err(mpsc::error::TrySendError::Full(data)) => Some(data),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            *tx = None;
            None
        }
    }
}

/// Room for one chunk of input; `None` when nobody reads input any more.
async fn reserve(tx: Option<mpsc::Sender<Vec<u8>>>) -> Option<mpsc::OwnedPermit<Vec<u8>>> {
    tx?.reserve_owned().await.ok()
}

/// Sends what is left of a command's output, then says how much was dropped.
async fn drain(out_rx: &mut OutRx, wr: &Writer, tty: bool) {
    while let Some(chunk) = out_rx.try_recv() {
        send(wr, &chunk, tty).await;
    }
    let dropped = out_rx.take_dropped();
    if dropped > 0 {
        let notice = Chunk {
            stderr: true,
            data: outq::dropped_notice(dropped).into_bytes(),
        };
        send(wr, &notice, tty).await;
    }
}

async fn exec(ch: Channel<Msg>, inst: Arc<InstanceState>, user: String, cmd: String, tty: bool) {
    let (mut rd, wr) = ch.split();
    let mut shell = Shell::new(inst, &user);
    shell.tty = tty;
    match run_relayed(&mut shell, &cmd, &mut rd, &wr, tty).await {
        Ran::Done(status) => {
            let status = shell.exit_requested.unwrap_or(status);
            finish(&wr, status).await;
        }
        Ran::Gone => {}
    }
}

fn login_time() -> String {
    let now = time::OffsetDateTime::from_unix_timestamp(super::unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] UTC [year]"
    ))
    .unwrap_or_default()
}

async fn interactive(
    ch: Channel<Msg>,
    inst: Arc<InstanceState>,
    user: String,
    pty: Option<(u32, u32)>,
) {
    let tty = pty.is_some();
    let image = inst.profile().image;
    let (mut rd, wr) = ch.split();
    let mut shell = Shell::new(inst, &user);
    shell.tty = tty;
    if let Some((cols, rows)) = pty {
        shell.vars.insert("COLUMNS".into(), cols.to_string());
        shell.vars.insert("LINES".into(), rows.to_string());
    }
    if !tty {
        // No terminal (`ssh -T host < script`): read commands from input, no prompt.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let msg = rd.wait().await;
            let eof = matches!(msg, Some(ChannelMsg::Eof));
            match msg {
                Some(ChannelMsg::Data { data }) => pending.extend_from_slice(&data),
                Some(ChannelMsg::Eof) => {}
                None | Some(ChannelMsg::Close) => return,
                Some(_) => continue,
            }
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).to_string();
                if let Ran::Gone = run_relayed(&mut shell, &line, &mut rd, &wr, false).await {
                    return;
                }
                if let Some(status) = shell.exit_requested {
                    return finish(&wr, status).await;
                }
            }
            if eof {
                if !pending.is_empty() {
                    let line = String::from_utf8_lossy(&pending).to_string();
                    if let Ran::Gone = run_relayed(&mut shell, &line, &mut rd, &wr, false).await {
                        return;
                    }
                }
                let status = shell.exit_requested.unwrap_or(shell.last_status);
                return finish(&wr, status).await;
            }
        }
    }
    let banner = onlcr(image.banner(&login_time()).as_bytes());
    let _ = wr.data(&banner[..]).await;
    let _ = wr.data(shell.prompt().as_bytes()).await;
    let mut ed = LineEditor::new();
    loop {
        let Some(msg) = rd.wait().await else {
            return;
        };
        match msg {
            ChannelMsg::Data { data } => {
                for ev in ed.feed(&data) {
                    match ev {
                        Event::Echo(b) => {
                            let _ = wr.data(&b[..]).await;
                        }
                        Event::Line(line) => {
                            if !line.trim().is_empty() {
                                shell.history.push(line.clone());
                                ed.push_history(&line);
                                if let Ran::Gone =
                                    run_relayed(&mut shell, &line, &mut rd, &wr, true).await
                                {
                                    return;
                                }
                            }
                            if let Some(status) = shell.exit_requested {
                                let _ = wr.data(&b"logout\r\n"[..]).await;
                                return finish(&wr, status).await;
                            }
                            let _ = wr.data(shell.prompt().as_bytes()).await;
                        }
                        Event::Interrupt => {
                            shell.last_status = 130;
                            let _ = wr.data(shell.prompt().as_bytes()).await;
                        }
                        Event::Eof => {
                            let _ = wr.data(&b"logout\r\n"[..]).await;
                            shell.exit(shell.last_status);
                            if let Some(status) = shell.exit_requested {
                                return finish(&wr, status).await;
                            }
                            let _ = wr.data(shell.prompt().as_bytes()).await;
                        }
                        Event::Clear(current) => {
                            let screen = format!("\x1b[H\x1b[2J{}{current}", shell.prompt());
                            let _ = wr.data(screen.as_bytes()).await;
                        }
                    }
                }
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                shell.vars.insert("COLUMNS".into(), col_width.to_string());
                shell.vars.insert("LINES".into(), row_height.to_string());
            }
            // End of input on a terminal: the shell reads EOF and logs out.
            ChannelMsg::Eof => {
                let status = shell.exit_requested.unwrap_or(shell.last_status);
                return finish(&wr, status).await;
            }
            ChannelMsg::Close => return,
            _ => {}
        }
    }
}

//! `ssh` from inside an instance — the bastion hop. The connection runs over the
//! instance's own network (so security groups apply to the second hop too), the key file
//! is read from the instance's filesystem, the host key is checked against
//! `~/.ssh/known_hosts` with OpenSSH's first-connection question, and the login uses
//! russh's client. With a command it runs it and returns its status; without one it
//! opens a pty shell and relays the terminal to it until the remote side exits.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use russh::ChannelMsg;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::{Io, Shell};
use crate::instance::net::NetStream;

/// What the command line asked for.
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `-i FILE`, already checked for permissions; `None` = the default key files.
    pub identity: Option<String>,
    /// The identity named with `-i` was refused for its permissions.
    pub identity_ignored: bool,
    /// `-o StrictHostKeyChecking=no`.
    pub no_host_check: bool,
    pub command: Option<String>,
}

struct Client {
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        }
        // The decision is taken after the handshake, where the learner can be asked.
        Ok(true)
    }
}

fn algo_name(key: &PublicKey) -> &'static str {
    match key.algorithm().as_str() {
        "ssh-ed25519" => "ED25519",
        "ssh-rsa" => "RSA",
        _ => "ECDSA",
    }
}

/// Checks (and maybe records) the server's host key; `Err(status)` to stop.
async fn check_host_key(
    sh: &mut Shell,
    io: &mut Io,
    login: &Login,
    key: &PublicKey,
) -> Result<(), i32> {
    let home = super::home_of(&sh.user);
    let path = format!("{home}/.ssh/known_hosts");
    let name = if login.port == 22 {
        login.host.clone()
    } else {
        format!("[{}]:{}", login.host, login.port)
    };
    let known = sh
        .read_file(&path)
        .map(|d| String::from_utf8_lossy(&d).to_string())
        .unwrap_or_default();
    let entry = key.to_openssh().unwrap_or_default();
    let mut other_key = false;
    for line in known.lines() {
        let mut parts = line.splitn(2, ' ');
        let (Some(hosts), Some(k)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !hosts.split(',').any(|h| h == name) {
            continue;
        }
        match PublicKey::from_openssh(k) {
            Ok(pk) if pk.key_data() == key.key_data() => return Ok(()),
            Ok(pk) if pk.algorithm() == key.algorithm() => other_key = true,
            _ => {}
        }
    }
    let fp = key.fingerprint(HashAlg::Sha256);
    let algo = algo_name(key);
    if other_key {
        io.err
            .line("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
        io.err
            .line("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @");
        io.err
            .line("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
        io.err
            .line("IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!");
        io.err.line(&format!(
            "The fingerprint for the {algo} key sent by the remote host is\n{fp}."
        ));
        io.err.line(&format!("Offending {algo} key in {path}"));
        io.err.line("Host key verification failed.");
        return Err(255);
    }
    if !login.no_host_check {
        io.err.line(&format!(
            "The authenticity of host '{name} ({})' can't be established.",
            login.host
        ));
        io.err.line(&format!("{algo} key fingerprint is {fp}."));
        io.err.line("This key is not known by any other names.");
        io.err
            .print("Are you sure you want to continue connecting (yes/no/[fingerprint])? ");
        let answer = io.stdin.read_line().await.unwrap_or_default();
        let answer = answer.trim();
        if answer != "yes" && answer != fp.to_string() {
            io.err.line("Host key verification failed.");
            return Err(255);
        }
    }
    let line = format!("{name} {entry}\n");
    let ssh_dir = format!("{home}/.ssh");
    {
        let cred = sh.cred();
        let mut disk = sh.inst.lock_disk();
        if !disk.fs.exists(&ssh_dir) {
            let _ = disk.fs.mkdir(&ssh_dir, cred, false, 0o700);
        }
        let _ = disk.fs.write(&path, line.as_bytes(), true, cred, 0o644);
    }
    io.err.line(&format!(
        "Warning: Permanently added '{name}' ({algo}) to the list of known hosts."
    ));
    Ok(())
}

type ClientHandle = russh::client::Handle<Client>;

/// Connects over `stream`, checks the host key and authenticates; `Err(status)` when
/// OpenSSH would have given up (the message is already printed).
async fn connect_auth(
    sh: &mut Shell,
    io: &mut Io,
    stream: Box<dyn NetStream>,
    login: &Login,
) -> Result<ClientHandle, i32> {
    // The keys to offer, as OpenSSH picks them.
    let home = super::home_of(&sh.user);
    let candidates: Vec<String> = match &login.identity {
        Some(_) if login.identity_ignored => Vec::new(),
        Some(k) => vec![k.clone()],
        None => ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| format!("{home}/.ssh/{n}"))
            .collect(),
    };
    let mut keys = Vec::new();
    for path in candidates {
        let Ok(data) = sh.read_file(&path) else {
            continue;
        };
        match russh::keys::decode_secret_key(&String::from_utf8_lossy(&data), None) {
            Ok(k) => keys.push(k),
            Err(_) => io.err.line(&format!("Load key \"{path}\": invalid format")),
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let config = Arc::new(russh::client::Config::default());
    let mut handle =
        match russh::client::connect_stream(config, stream, Client { seen: seen.clone() }).await {
            Ok(h) => h,
            Err(_) => {
                io.err
                    .line("kex_exchange_identification: Connection closed by remote host");
                io.err.line(&format!(
                    "Connection closed by {} port {}",
                    login.host, login.port
                ));
                return Err(255);
            }
        };
    let server_key = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(key) = server_key {
        check_host_key(sh, io, login, &key).await?;
    }
    for key in keys {
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
        } else {
            None
        };
        let offer = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        if let Ok(r) = handle
            .authenticate_publickey(login.user.clone(), offer)
            .await
            && r.success()
        {
            return Ok(handle);
        }
    }
    io.err.line(&format!(
        "{}@{}: Permission denied (publickey).",
        login.user, login.host
    ));
    Err(255)
}

/// Logs in over `stream` and runs the session; returns ssh's exit status.
pub async fn run(sh: &mut Shell, io: &mut Io, stream: Box<dyn NetStream>, login: Login) -> i32 {
    let handle = match connect_auth(sh, io, stream, &login).await {
        Ok(h) => h,
        Err(status) => return status,
    };
    let Ok(mut ch) = handle.channel_open_session().await else {
        io.err.line("channel 0: open failed: connect failed");
        return 255;
    };
    let interactive = login.command.is_none();
    if let Some(cmd) = &login.command {
        if ch.exec(true, cmd.as_bytes()).await.is_err() {
            return 255;
        }
        let _ = ch.eof().await;
    } else {
        let cols: u32 = sh
            .vars
            .get("COLUMNS")
            .and_then(|c| c.parse().ok())
            .unwrap_or(80);
        let rows: u32 = sh
            .vars
            .get("LINES")
            .and_then(|c| c.parse().ok())
            .unwrap_or(24);
        if ch
            .request_pty(false, "xterm-256color", cols, rows, 0, 0, &[])
            .await
            .is_err()
            || ch.request_shell(false).await.is_err()
        {
            return 255;
        }
        io.term.raw.store(true, Ordering::Relaxed);
    }
    enum Ev {
        Input(Option<Vec<u8>>),
        Msg(Option<ChannelMsg>),
    }
    let mut status = None;
    let mut stdin_open = interactive;
    loop {
        let ev = tokio::select! {
            chunk = io.stdin.recv_chunk(), if stdin_open => Ev::Input(chunk),
            msg = ch.wait() => Ev::Msg(msg),
        };
        match ev {
            Ev::Input(Some(data)) => {
                let _ = ch.data(&data[..]).await;
            }
            Ev::Input(None) => {
                stdin_open = false;
                let _ = ch.eof().await;
            }
            Ev::Msg(Some(ChannelMsg::Data { data })) => io.out.write(&data),
            Ev::Msg(Some(ChannelMsg::ExtendedData { data, .. })) => io.err.write(&data),
            Ev::Msg(Some(ChannelMsg::ExitStatus { exit_status })) => {
                status = Some(i32::try_from(exit_status).unwrap_or(255));
            }
            Ev::Msg(Some(ChannelMsg::Close) | None) => break,
            Ev::Msg(Some(_)) => {}
        }
    }
    io.term.raw.store(false, Ordering::Relaxed);
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    if interactive {
        io.err
            .line(&format!("Connection to {} closed.", login.host));
    }
    status.unwrap_or(255)
}

/// One `scp` transfer between this instance and another.
pub enum Copy {
    /// Local file (as typed) to a remote path.
    Up { local: String, remote: String },
    /// Remote path to a local file or directory (as typed).
    Down { remote: String, local: String },
}

/// `scp` from an instance, over SFTP like OpenSSH 9's scp.
pub async fn scp(
    sh: &mut Shell,
    io: &mut Io,
    stream: Box<dyn NetStream>,
    login: Login,
    copy: Copy,
) -> i32 {
    let handle = match connect_auth(sh, io, stream, &login).await {
        Ok(h) => h,
        Err(status) => return status,
    };
    let Ok(ch) = handle.channel_open_session().await else {
        return 255;
    };
    if ch.request_subsystem(true, "sftp").await.is_err() {
        io.err.line("scp: Connection closed");
        return 255;
    }
    let sftp = match russh_sftp::client::SftpSession::new(ch.into_stream()).await {
        Ok(s) => s,
        Err(_) => {
            io.err.line("scp: Connection closed");
            return 255;
        }
    };
    let (name, size, result) = match copy {
        Copy::Up { local, remote } => {
            let data = match sh.read_file(&local) {
                Ok(d) => d,
                Err(e) => {
                    io.err.line(&format!("scp: stat local \"{local}\": {e}"));
                    return 1;
                }
            };
            let base = crate::instance::vfs::basename(&sh.abs(&local)).to_string();
            let remote = if remote.is_empty() {
                ".".to_string()
            } else {
                remote
            };
            let target = match sftp.metadata(remote.clone()).await {
                Ok(m) if m.is_dir() => format!("{}/{base}", remote.trim_end_matches('/')),
                _ => remote.clone(),
            };
            let r = match sftp.create(target.clone()).await {
                Ok(mut f) => {
                    use tokio::io::AsyncWriteExt;
                    let written = f.write_all(&data).await;
                    let closed = f.close().await;
                    written
                        .and(closed)
                        .map_err(|e| format!("scp: write remote \"{target}\": {e}"))
                }
                Err(e) => Err(format!("scp: dest open \"{target}\": {e}")),
            };
            (base, data.len(), r)
        }
        Copy::Down { remote, local } => match sftp.read(remote.clone()).await {
            Ok(data) => {
                let base = remote.rsplit('/').next().unwrap_or(&remote).to_string();
                let dest = if sh.inst.lock_disk().fs.is_dir(&sh.abs(&local)) {
                    format!("{}/{base}", local.trim_end_matches('/'))
                } else {
                    local.clone()
                };
                let r = sh
                    .write_file(&dest, &data, false)
                    .map_err(|e| format!("scp: open local \"{dest}\": {e}"));
                (base, data.len(), r)
            }
            Err(e) => (String::new(), 0, Err(format!("scp: {remote}: {e}"))),
        },
    };
    let _ = sftp.close().await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    match result {
        Ok(()) => {
            if sh.tty {
                io.out
                    .line(&format!("{name:<40} 100% {size:>7}     1.0MB/s   00:00"));
            }
            0
        }
        Err(msg) => {
            io.err.line(&msg);
            1
        }
    }
}

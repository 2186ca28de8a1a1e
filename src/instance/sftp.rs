//! The SFTP subsystem over the instance's filesystem, as the logged-in user. OpenSSH 9's
//! `scp` speaks SFTP, so this is what makes `scp file ec2-user@host:` and
//! `scp ec2-user@host:file .` work. Relative paths start in the user's home directory,
//! as with sshd.
//!
//! Packets are framed and decoded here ([`read_frame`], [`decode`], russh-sftp's
//! protocol types) and answered by [`Sftp::process`], following OpenSSH's
//! `sftp-server`:
//!
//! - open flags map to open(2)'s: `WRITE` alone is write-only, `READ|WRITE` both,
//!   neither read-only; `APPEND` writes at the end whatever the offset; `CREAT`,
//!   `TRUNC` and `EXCL` as in open(2). A handle's access is fixed when it is opened:
//!   reading a write-only handle or writing a read-only one fails ("Bad file
//!   descriptor"), and permissions are checked at open, not at each write (so a file
//!   created `0400` by `scp` can still be written through its handle);
//! - `EACCES`/`EPERM` answer `SSH_FX_PERMISSION_DENIED`, a missing file
//!   `SSH_FX_NO_SUCH_FILE`, everything else `SSH_FX_FAILURE` with the error's text
//!   ("No space left on device" on a full volume);
//! - plain `rename` refuses an existing target, as `sftp-server` does without the
//!   `posix-rename@openssh.com` extension (which is not offered).
//!
//! Limits: packets up to [`MAX_PACKET`] bytes (a longer one ends the session, as in
//! `sftp-server`), reads up to [`MAX_READ`] bytes, [`MAX_HANDLES`] open handles, and
//! directory listings sent [`READDIR_BATCH`] names at a time.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::InstanceState;
use super::shell::home_of;
use super::vfs::{self, Cred, FsError, Node, NodeKind};

/// `sftp-server`'s `SFTP_MAX_MSG_LENGTH`: the longest packet accepted.
pub const MAX_PACKET: u32 = 256 * 1024;
/// `sftp-server`'s `SFTP_MAX_READ_LENGTH`: longer reads return this much.
pub const MAX_READ: u32 = MAX_PACKET - 1024;
/// Handles (files and directories) one SFTP session may hold open.
pub const MAX_HANDLES: usize = 100;
/// Names per `SSH_FXP_NAME` reply to `READDIR`, as `sftp-server` sends them.
pub const READDIR_BATCH: usize = 100;
/// The umask `sftp-server` runs with on the images (`022`).
const UMASK: u32 = 0o022;

/// Runs the SFTP server on a channel stream until the client closes it or breaks the
/// protocol's framing.
pub async fn serve<S>(mut stream: S, inst: Arc<InstanceState>, user: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut sftp = Sftp::new(inst, user);
    tracing::debug!(user = %sftp.user, "sftp session");
    loop {
        let frame = match read_frame(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "sftp session ended");
                break;
            }
        };
        let reply = sftp.process(frame);
        let Ok(bytes) = Bytes::try_from(reply) else {
            break;
        };
        if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
            break;
        }
    }
}

/// Why framing failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("packet of {0} bytes is longer than {MAX_PACKET}")]
    TooLong(u32),
    #[error("empty packet")]
    Empty,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one packet (its type and payload, without the length); `None` at a clean end
/// of input. The length is checked before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>, FrameError> {
    let len = match r.read_u32().await {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > MAX_PACKET {
        return Err(FrameError::TooLong(len));
    }
    let mut buf = vec![0; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

/// Decodes one framed packet; `None` when it is malformed.
pub fn decode(frame: Bytes) -> Option<Packet> {
    let mut frame = frame;
    Packet::try_from(&mut frame).ok()
}

enum Open {
    File {
        path: String,
        read: bool,
        write: bool,
        append: bool,
    },
    Dir {
        entries: Vec<File>,
    },
}

/// One SFTP session's state.
pub struct Sftp {
    inst: Arc<InstanceState>,
    home: String,
    user: String,
    cred: Cred,
    handles: HashMap<String, Open>,
    next: u64,
}

/// A failed request: the status code and its message.
struct Failed(StatusCode, String);

impl From<FsError> for Failed {
    fn from(e: FsError) -> Failed {
        let code = match e {
            FsError::NotFound => StatusCode::NoSuchFile,
            FsError::PermissionDenied | FsError::NotPermitted => StatusCode::PermissionDenied,
            _ => StatusCode::Failure,
        };
        Failed(code, e.to_string())
    }
}

impl From<StatusCode> for Failed {
    fn from(code: StatusCode) -> Failed {
        Failed(code, code.to_string())
    }
}

type Reply = Result<Packet, Failed>;

fn ok(id: u32) -> Packet {
    Packet::Status(Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Success".to_string(),
        language_tag: "en-US".to_string(),
    })
}

impl Sftp {
    /// A session for `user` (root's credentials for `root`, the image's default user's
    /// otherwise).
    pub fn new(inst: Arc<InstanceState>, user: String) -> Sftp {
        let cred = if user == "root" {
            Cred::ROOT
        } else {
            inst.profile().image.default_cred()
        };
        Sftp {
            inst,
            home: home_of(&user),
            user,
            cred,
            handles: HashMap::new(),
            next: 0,
        }
    }

    /// Answers one framed packet.
    pub fn process(&mut self, frame: Bytes) -> Packet {
        let Some(packet) = decode(frame) else {
            return Packet::error(0, StatusCode::BadMessage);
        };
        let id = packet.get_request_id();
        match self.dispatch(packet) {
            Ok(reply) => reply,
            Err(Failed(code, message)) => Packet::status(id, code, &message, "en-US"),
        }
    }

    fn dispatch(&mut self, packet: Packet) -> Reply {
        match packet {
            Packet::Init(_) => Ok(Version::new().into()),
            Packet::Open(o) => self.open(o.id, &o.filename, o.pflags, &o.attrs),
            Packet::Close(c) => {
                self.handles
                    .remove(&c.handle)
                    .ok_or(Failed::from(StatusCode::Failure))?;
                Ok(ok(c.id))
            }
            Packet::Read(r) => self.read(r.id, &r.handle, r.offset, r.len),
            Packet::Write(w) => self.write(w.id, &w.handle, w.offset, &w.data),
            Packet::Lstat(s) => self.stat_path(s.id, &s.path),
            Packet::Stat(s) => self.stat_path(s.id, &s.path),
            Packet::Fstat(f) => {
                let path = self.file_path(&f.handle)?;
                self.stat_abs(f.id, &path)
            }
            Packet::SetStat(s) => {
                let p = self.path(&s.path);
                self.apply_attrs(&p, &s.attrs)?;
                Ok(ok(s.id))
            }
            Packet::FSetStat(s) => {
                let path = self.file_path(&s.handle)?;
                self.apply_attrs(&path, &s.attrs)?;
                Ok(ok(s.id))
            }
            Packet::OpenDir(o) => self.opendir(o.id, &o.path),
            Packet::ReadDir(r) => self.readdir(r.id, &r.handle),
            Packet::Remove(r) => {
                let p = self.path(&r.filename);
                let mut disk = self.inst.lock_disk();
                if disk.fs.is_dir(&p) {
                    return Err(FsError::IsADirectory.into());
                }
                disk.fs.remove(&p, self.cred, false)?;
                Ok(ok(r.id))
            }
            Packet::MkDir(m) => {
                let p = self.path(&m.path);
                let mode = m.attrs.permissions.map_or(0o777, |m| m & 0o7777) & !UMASK;
                self.inst.lock_disk().fs.mkdir(&p, self.cred, false, mode)?;
                Ok(ok(m.id))
            }
            Packet::RmDir(r) => {
                let p = self.path(&r.path);
                let mut disk = self.inst.lock_disk();
                if !disk.fs.is_dir(&p) {
                    return Err(FsError::NotADirectory.into());
                }
                disk.fs.remove(&p, self.cred, false)?;
                Ok(ok(r.id))
            }
            Packet::RealPath(r) => Ok(Name {
                id: r.id,
                files: vec![File::dummy(self.path(&r.path))],
            }
            .into()),
            Packet::Rename(r) => {
                let (from, to) = (self.path(&r.oldpath), self.path(&r.newpath));
                let mut disk = self.inst.lock_disk();
                if disk.fs.exists(&to) {
                    return Err(Failed(StatusCode::Failure, FsError::Exists.to_string()));
                }
                disk.fs.rename(&from, &to, self.cred)?;
                Ok(ok(r.id))
            }
            Packet::ReadLink(_) | Packet::Symlink(_) | Packet::Extended(_) => {
                Err(StatusCode::OpUnsupported.into())
            }
            // Replies sent by a client make no sense to a server.
            _ => Err(StatusCode::BadMessage.into()),
        }
    }

    fn path(&self, p: &str) -> String {
        vfs::normalize(&self.home, if p.is_empty() { "." } else { p })
    }

    fn attrs(&self, n: &Node) -> FileAttributes {
        let kind = if n.is_dir() { 0o040000 } else { 0o100000 };
        let name = |uid: u32| {
            if uid == 0 {
                "root".to_string()
            } else {
                self.inst.profile().image.default_user().to_string()
            }
        };
        let mtime = u32::try_from(n.mtime.max(0)).unwrap_or(u32::MAX);
        FileAttributes {
            size: Some(n.len()),
            uid: Some(n.uid),
            user: Some(name(n.uid)),
            gid: Some(n.gid),
            group: Some(name(n.gid)),
            permissions: Some(kind | n.mode),
            atime: Some(mtime),
            mtime: Some(mtime),
        }
    }

    fn new_handle(&mut self, open: Open) -> Result<String, Failed> {
        if self.handles.len() >= MAX_HANDLES {
            // EMFILE, as when a process runs out of descriptors.
            return Err(Failed(
                StatusCode::Failure,
                "Too many open files".to_string(),
            ));
        }
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    fn file_path(&self, handle: &str) -> Result<String, Failed> {
        match self.handles.get(handle) {
            Some(Open::File { path, .. }) => Ok(path.clone()),
            _ => Err(StatusCode::Failure.into()),
        }
    }

    fn stat_path(&self, id: u32, path: &str) -> Reply {
        let p = self.path(path);
        self.stat_abs(id, &p)
    }

    fn stat_abs(&self, id: u32, p: &str) -> Reply {
        let disk = self.inst.lock_disk();
        disk.fs.access(p, self.cred, false, false)?;
        let node = disk.fs.get(p).ok_or(FsError::NotFound)?;
        Ok(Attrs {
            id,
            attrs: self.attrs(node),
        }
        .into())
    }

    fn apply_attrs(&self, path: &str, attrs: &FileAttributes) -> Result<(), Failed> {
        let mut disk = self.inst.lock_disk();
        disk.fs.set_now(super::unix_now());
        if let Some(size) = attrs.size {
            disk.fs.truncate(path, size, self.cred)?;
        }
        if let Some(mode) = attrs.permissions {
            disk.fs.chmod(path, mode & 0o7777, self.cred)?;
        }
        if let Some(mtime) = attrs.mtime {
            disk.fs.utime(path, i64::from(mtime), self.cred)?;
        }
        Ok(())
    }

    fn open(&mut self, id: u32, filename: &str, flags: OpenFlags, attrs: &FileAttributes) -> Reply {
        let p = self.path(filename);
        // sftp-server's flags_from_portable: WRITE makes it O_WRONLY (O_RDWR with READ),
        // anything else is O_RDONLY.
        let write = flags.contains(OpenFlags::WRITE);
        let read = flags.contains(OpenFlags::READ) || !write;
        let append = flags.contains(OpenFlags::APPEND);
        let create = flags.contains(OpenFlags::CREATE);
        {
            let mut disk = self.inst.lock_disk();
            disk.fs.set_now(super::unix_now());
            match disk.fs.get(&p) {
                Some(_) if create && flags.contains(OpenFlags::EXCLUDE) => {
                    return Err(Failed(StatusCode::Failure, FsError::Exists.to_string()));
                }
                Some(n) if n.is_dir() => return Err(FsError::IsADirectory.into()),
                Some(_) => {
                    disk.fs.access(&p, self.cred, read, write)?;
                    if flags.contains(OpenFlags::TRUNCATE) && write {
                        disk.fs.truncate(&p, 0, self.cred)?;
                    }
                }
                None if !create => return Err(FsError::NotFound.into()),
                None => {
                    // A new file gets the requested mode (less the umask) even if that
                    // mode forbids writing: open(2) grants the access asked for.
                    let mode = attrs.permissions.map_or(0o666, |m| m & 0o7777) & !UMASK;
                    disk.fs.write(&p, b"", true, self.cred, mode)?;
                }
            }
        }
        let handle = self.new_handle(Open::File {
            path: p,
            read,
            write,
            append,
        })?;
        Ok(Handle { id, handle }.into())
    }

    fn read(&mut self, id: u32, handle: &str, offset: u64, len: u32) -> Reply {
        let Some(Open::File { path, read, .. }) = self.handles.get(handle) else {
            return Err(StatusCode::Failure.into());
        };
        if !read {
            return Err(FsError::BadDescriptor.into());
        }
        let disk = self.inst.lock_disk();
        let data = match disk.fs.get(path).map(|n| &n.kind) {
            Some(NodeKind::File(d)) => d,
            Some(NodeKind::Dir) => return Err(FsError::IsADirectory.into()),
            // Removed since it was opened: nothing left to read.
            None => return Err(StatusCode::Eof.into()),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= data.len() {
            return Err(StatusCode::Eof.into());
        }
        let end = start
            .saturating_add(len.min(MAX_READ) as usize)
            .min(data.len());
        Ok(Data {
            id,
            data: data[start..end].to_vec(),
        }
        .into())
    }

    fn write(&mut self, id: u32, handle: &str, offset: u64, data: &[u8]) -> Reply {
        let Some(Open::File {
            path,
            write,
            append,
            ..
        }) = self.handles.get(handle)
        else {
            return Err(StatusCode::Failure.into());
        };
        if !write {
            return Err(FsError::BadDescriptor.into());
        }
        let mut disk = self.inst.lock_disk();
        disk.fs.set_now(super::unix_now());
        let offset = if *append {
            disk.fs.get(path).map_or(0, Node::len)
        } else {
            offset
        };
        disk.fs.write_handle(path, offset, data)?;
        Ok(ok(id))
    }

    fn opendir(&mut self, id: u32, path: &str) -> Reply {
        let p = self.path(path);
        let entries = {
            let disk = self.inst.lock_disk();
            let list = disk.fs.list(&p, self.cred)?;
            let mut files = Vec::new();
            if let Some(n) = disk.fs.get(&p) {
                files.push(File::new(".", self.attrs(n)));
                files.push(File::new("..", self.attrs(n)));
            }
            files.extend(
                list.iter()
                    .map(|(name, n)| File::new(name.clone(), self.attrs(n))),
            );
            files
        };
        let handle = self.new_handle(Open::Dir { entries })?;
        Ok(Handle { id, handle }.into())
    }

    fn readdir(&mut self, id: u32, handle: &str) -> Reply {
        match self.handles.get_mut(handle) {
            Some(Open::Dir { entries }) if entries.is_empty() => Err(StatusCode::Eof.into()),
            Some(Open::Dir { entries }) => {
                let n = entries.len().min(READDIR_BATCH);
                let files = entries.drain(..n).collect();
                Ok(Name { id, files }.into())
            }
            _ => Err(StatusCode::Failure.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use russh_sftp::client::RawSftpSession;
    use russh_sftp::client::error::Error as ClientError;
    use tokio::io::DuplexStream;

    use super::*;
    use crate::instance::{FakeNet, Image, InstanceProfile};

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    fn launch() -> Arc<InstanceState> {
        let p = InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        let net = FakeNet::new(p.private_ip, 24, &p.mac);
        InstanceState::launch(p, net)
    }

    /// A client session with the server on an in-memory stream.
    async fn session(inst: &Arc<InstanceState>) -> RawSftpSession {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(server, inst.clone(), "ec2-user".to_string()));
        let s = RawSftpSession::new(client);
        s.init().await.expect("init");
        s
    }

    fn code(r: Result<impl std::fmt::Debug, ClientError>) -> (StatusCode, String) {
        match r {
            Err(ClientError::Status(s)) => (s.status_code, s.error_message),
            other => panic!("expected a status, got {other:?}"),
        }
    }

    fn flags(f: &[OpenFlags]) -> OpenFlags {
        f.iter().fold(OpenFlags::empty(), |a, b| a | *b)
    }

    #[tokio::test]
    async fn issue10_sftp_write_at_huge_offset_is_refused() {
        let inst = launch();
        let s = session(&inst).await;
        let h = s
            .open(
                "big",
                flags(&[OpenFlags::WRITE, OpenFlags::CREATE, OpenFlags::TRUNCATE]),
                FileAttributes::default(),
            )
            .await
            .expect("open")
            .handle;
        let (status, message) = code(s.write(&h, 1 << 40, b"x".to_vec()).await);
        assert_eq!(status, StatusCode::Failure);
        assert_eq!(message, "No space left on device");
        // The server is still there and the file is still empty.
        s.write(&h, 0, b"ok".to_vec()).await.expect("small write");
        let stored = inst
            .disk()
            .fs
            .read("/home/ec2-user/big", USER)
            .map(<[u8]>::to_vec);
        assert_eq!(stored, Ok(b"ok".to_vec()));
    }

    #[tokio::test]
    async fn issue10_sftp_read_only_handle_cannot_write() {
        let inst = launch();
        inst.lock_disk()
            .fs
            .write("/home/ec2-user/f", b"data", false, USER, 0o644)
            .expect("w");
        let s = session(&inst).await;
        let h = s
            .open("f", OpenFlags::READ, FileAttributes::default())
            .await
            .expect("open")
            .handle;
        let (status, message) = code(s.write(&h, 0, b"XX".to_vec()).await);
        assert_eq!(status, StatusCode::Failure);
        assert_eq!(message, "Bad file descriptor");
        // And a write-only handle cannot read.
        let w = s
            .open("f", OpenFlags::WRITE, FileAttributes::default())
            .await
            .expect("open")
            .handle;
        assert_eq!(code(s.read(&w, 0, 10).await).0, StatusCode::Failure);
        assert_eq!(
            inst.disk().fs.read("/home/ec2-user/f", USER),
            Ok(&b"data"[..])
        );
    }

    #[tokio::test]
    async fn issue10_sftp_user_cannot_overwrite_root_owned_files() {
        let inst = launch();
        let before = inst.disk().fs.read("/etc/passwd", USER).map(<[u8]>::to_vec);
        let s = session(&inst).await;
        for path in ["/etc/hostname", "/etc/passwd"] {
            let r = s
                .open(
                    path,
                    flags(&[OpenFlags::WRITE, OpenFlags::CREATE, OpenFlags::TRUNCATE]),
                    FileAttributes::default(),
                )
                .await;
            assert_eq!(code(r).0, StatusCode::PermissionDenied, "{path}");
        }
        // Nor by renaming over them, truncating or re-dating them.
        let h = s
            .open(
                "evil",
                flags(&[OpenFlags::WRITE, OpenFlags::CREATE]),
                FileAttributes::default(),
            )
            .await
            .expect("own file")
            .handle;
        s.close(h).await.expect("close");
        assert_eq!(
            code(s.rename("evil", "/etc/newfile").await).0,
            StatusCode::PermissionDenied
        );
        assert_ne!(
            code(s.rename("evil", "/etc/passwd").await).0,
            StatusCode::Ok
        );
        let size = FileAttributes {
            size: Some(0),
            ..FileAttributes::empty()
        };
        assert_eq!(
            code(s.setstat("/etc/passwd", size).await).0,
            StatusCode::PermissionDenied
        );
        let mtime = FileAttributes {
            mtime: Some(1),
            ..FileAttributes::empty()
        };
        assert_eq!(
            code(s.setstat("/etc/passwd", mtime).await).0,
            StatusCode::PermissionDenied
        );
        let after = inst.disk().fs.read("/etc/passwd", USER).map(<[u8]>::to_vec);
        assert_eq!(before, after);
        assert!(before.is_ok());
    }

    #[tokio::test]
    async fn issue10_sftp_open_flags_follow_open2() {
        let inst = launch();
        let s = session(&inst).await;
        let rwc = flags(&[OpenFlags::WRITE, OpenFlags::CREATE]);
        // Missing without CREAT.
        assert_eq!(
            code(
                s.open("nope", OpenFlags::WRITE, FileAttributes::default())
                    .await
            )
            .0,
            StatusCode::NoSuchFile
        );
        let h = s
            .open("f", rwc, FileAttributes::default())
            .await
            .expect("create")
            .handle;
        s.write(&h, 0, b"hello".to_vec()).await.expect("write");
        // CREAT|EXCL on an existing file.
        let r = s
            .open("f", rwc | OpenFlags::EXCLUDE, FileAttributes::default())
            .await;
        assert_eq!(code(r), (StatusCode::Failure, "File exists".to_string()));
        // APPEND writes at the end whatever the offset.
        let a = s
            .open(
                "f",
                OpenFlags::WRITE | OpenFlags::APPEND,
                FileAttributes::default(),
            )
            .await
            .expect("append")
            .handle;
        s.write(&a, 0, b"!".to_vec()).await.expect("append");
        // TRUNC empties it; READ|WRITE reads back what was written.
        let t = s
            .open(
                "f",
                flags(&[OpenFlags::READ, OpenFlags::WRITE]),
                FileAttributes::default(),
            )
            .await
            .expect("rw")
            .handle;
        assert_eq!(s.read(&t, 0, 100).await.expect("read").data, b"hello!");
        s.open(
            "f",
            OpenFlags::WRITE | OpenFlags::TRUNCATE,
            FileAttributes::default(),
        )
        .await
        .expect("trunc");
        assert_eq!(inst.disk().fs.read("/home/ec2-user/f", USER), Ok(&b""[..]));
        // A new file gets the mode asked for, less the umask.
        let attrs = FileAttributes {
            permissions: Some(0o666),
            ..FileAttributes::empty()
        };
        s.open("g", rwc, attrs).await.expect("create");
        assert_eq!(
            inst.disk().fs.get("/home/ec2-user/g").map(|n| n.mode),
            Some(0o644)
        );
        // A plain rename refuses an existing target, as sftp-server does.
        assert_eq!(code(s.rename("g", "f").await).0, StatusCode::Failure);
    }

    #[tokio::test]
    async fn issue10_sftp_open_handles_are_limited() {
        let inst = launch();
        let s = session(&inst).await;
        let mut handles = Vec::new();
        for i in 0..MAX_HANDLES {
            let h = s
                .open(
                    format!("f{i}"),
                    flags(&[OpenFlags::WRITE, OpenFlags::CREATE]),
                    FileAttributes::default(),
                )
                .await
                .expect("open")
                .handle;
            handles.push(h);
        }
        let (status, message) = code(s.opendir(".").await);
        assert_eq!(status, StatusCode::Failure);
        assert_eq!(message, "Too many open files");
        // The open ones keep working; closing one makes room.
        s.write(&handles[0], 0, b"x".to_vec()).await.expect("write");
        s.close(handles.pop().expect("one")).await.expect("close");
        s.opendir(".").await.expect("room again");
    }

    /// Frames a packet as a client would.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    async fn raw() -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let inst = launch();
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(serve(server, inst, "ec2-user".to_string()));
        // SSH_FXP_INIT, version 3.
        client
            .write_all(&frame(&[1, 0, 0, 0, 3]))
            .await
            .expect("init");
        let version = read_frame(&mut client)
            .await
            .expect("reply")
            .expect("frame");
        assert_eq!(version[0], 2, "SSH_FXP_VERSION");
        (client, task)
    }

    #[tokio::test]
    async fn issue10_sftp_packet_longer_than_the_limit_ends_the_session() {
        let (mut client, task) = raw().await;
        // Only the length is sent: nothing of it may be allocated or awaited.
        client
            .write_all(&(MAX_PACKET + 1).to_be_bytes())
            .await
            .expect("length");
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the session ends")
            .expect("no panic");
        // The server closed its end.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut rest),
        )
        .await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    }

    #[tokio::test]
    async fn malformed_packets_get_bad_message_and_the_session_goes_on() {
        let (mut client, task) = raw().await;
        // SSH_FXP_OPEN whose filename claims 4 GiB.
        client
            .write_all(&frame(&[3, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff]))
            .await
            .expect("write");
        let reply = read_frame(&mut client)
            .await
            .expect("reply")
            .expect("frame");
        match decode(reply) {
            Some(Packet::Status(s)) => assert_eq!(s.status_code, StatusCode::BadMessage),
            other => panic!("{other:?}"),
        }
        drop(client);
        task.await.expect("no panic");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Packet types a client sends, and a few it should not.
        fn packet() -> impl Strategy<Value = Vec<u8>> {
            let kind = prop_oneof![1u8..=20, Just(200u8), any::<u8>()];
            (kind, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(k, mut body)| {
                body.insert(0, k);
                body
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn issue10_sftp_parser_never_panics_on_arbitrary_bytes(
                bytes in proptest::collection::vec(any::<u8>(), 0..512)
            ) {
                let _ = decode(Bytes::from(bytes));
            }

            #[test]
            fn issue10_sftp_server_answers_any_packet_sequence_without_panicking(
                packets in proptest::collection::vec(packet(), 1..20)
            ) {
                let inst = launch();
                let mut sftp = Sftp::new(inst, "ec2-user".to_string());
                for p in packets {
                    let reply = sftp.process(Bytes::from(p));
                    prop_assert!(Bytes::try_from(reply).is_ok());
                }
            }

            #[test]
            fn issue10_sftp_framing_never_panics_on_arbitrary_streams(
                stream in proptest::collection::vec(any::<u8>(), 0..600)
            ) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let mut r = &stream[..];
                    while let Ok(Some(frame)) = read_frame(&mut r).await {
                        let _ = decode(frame);
                    }
                });
            }
        }
    }
}

//! The SFTP subsystem (russh-sftp) over the instance's filesystem, with the logged-in
//! user's permissions. OpenSSH 9's `scp` speaks SFTP, so this is what makes
//! `scp file ec2-user@host:` and `scp ec2-user@host:file .` work. Relative paths start
//! in the user's home directory, as with sshd.

use std::collections::HashMap;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncRead, AsyncWrite};

use super::InstanceState;
use super::shell::home_of;
use super::vfs::{self, Cred, FsError, Node};

/// Runs the SFTP server on a channel stream until the client closes it.
pub async fn serve<S>(stream: S, inst: Arc<InstanceState>, user: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cred = if user == "root" {
        Cred::ROOT
    } else {
        inst.profile().image.default_cred()
    };
    let handler = Sftp {
        inst,
        home: home_of(&user),
        user,
        cred,
        handles: HashMap::new(),
        next: 0,
    };
    russh_sftp::server::run(stream, handler).await;
}

enum Open {
    File { path: String },
    Dir { entries: Option<Vec<File>> },
}

struct Sftp {
    inst: Arc<InstanceState>,
    home: String,
    user: String,
    cred: Cred,
    handles: HashMap<String, Open>,
    next: u64,
}

fn status(id: u32, code: StatusCode) -> Status {
    Status {
        id,
        status_code: code,
        error_message: code.to_string(),
        language_tag: "en-US".to_string(),
    }
}

fn err(e: FsError) -> StatusReply {
    let code = match e {
        FsError::NotFound => StatusCode::NoSuchFile,
        FsError::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    StatusReply::new(code).with_message(e.to_string())
}

impl Sftp {
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

    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        h
    }

    fn stat_path(&self, id: u32, path: &str) -> Result<Attrs, StatusReply> {
        let p = self.path(path);
        let disk = self.inst.lock_disk();
        let node = disk.fs.get(&p).ok_or(err(FsError::NotFound))?;
        Ok(Attrs {
            id,
            attrs: self.attrs(node),
        })
    }

    fn apply_attrs(&self, path: &str, attrs: &FileAttributes) -> Result<(), FsError> {
        let mut disk = self.inst.lock_disk();
        if let Some(mode) = attrs.permissions {
            disk.fs.chmod(path, mode & 0o7777, self.cred)?;
        }
        if let Some(size) = attrs.size {
            let cur = disk.fs.read(path, self.cred)?.to_vec();
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size < cur.len() {
                disk.fs.write(path, &cur[..size], false, self.cred, 0o644)?;
            }
        }
        if let Some(mtime) = attrs.mtime {
            disk.fs.set_mtime(path, i64::from(mtime))?;
        }
        Ok(())
    }
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusReply::new(StatusCode::OpUnsupported)
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        tracing::debug!(user = %self.user, "sftp session");
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let p = self.path(&filename);
        {
            let mut disk = self.inst.lock_disk();
            disk.fs.set_now(super::unix_now());
            let exists = disk.fs.exists(&p);
            if disk.fs.is_dir(&p) {
                return Err(err(FsError::IsADirectory));
            }
            if exists && pflags.contains(OpenFlags::EXCLUDE) {
                return Err(err(FsError::Exists));
            }
            let writing = pflags.intersects(OpenFlags::WRITE | OpenFlags::APPEND);
            if !exists {
                if !pflags.contains(OpenFlags::CREATE) {
                    return Err(err(FsError::NotFound));
                }
                let mode = attrs.permissions.map_or(0o644, |m| m & 0o777);
                disk.fs.write(&p, b"", true, self.cred, mode).map_err(err)?;
            } else if writing {
                // Check write permission now, as open(2) does.
                disk.fs
                    .write(&p, b"", true, self.cred, 0o644)
                    .map_err(err)?;
                if pflags.contains(OpenFlags::TRUNCATE) {
                    disk.fs
                        .write(&p, b"", false, self.cred, 0o644)
                        .map_err(err)?;
                }
            } else {
                disk.fs.read(&p, self.cred).map_err(err)?;
            }
        }
        Ok(Handle {
            id,
            handle: self.handle(Open::File { path: p }),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle);
        Ok(status(id, StatusCode::Ok))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File { path }) = self.handles.get(&handle) else {
            return Err(StatusReply::new(StatusCode::Failure));
        };
        let disk = self.inst.lock_disk();
        let data = disk.fs.read(path, self.cred).map_err(err)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= data.len() {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        let end = start.saturating_add(len as usize).min(data.len());
        Ok(Data {
            id,
            data: data[start..end].to_vec(),
        })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File { path }) = self.handles.get(&handle) else {
            return Err(StatusReply::new(StatusCode::Failure));
        };
        let mut disk = self.inst.lock_disk();
        // Permission was checked when the handle was opened, as for a file descriptor:
        // scp creates a 0400 key file and then writes into it, which open(2) allows.
        disk.fs
            .write_at(
                path,
                Some(offset),
                &data,
                false,
                super::vfs::Cred::ROOT,
                0o644,
            )
            .map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat_path(id, &path)
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat_path(id, &path)
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.handles.get(&handle) {
            Some(Open::File { path }) => {
                let path = path.clone();
                self.stat_path(id, &path)
            }
            _ => Err(StatusReply::new(StatusCode::Failure)),
        }
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let p = self.path(&path);
        self.apply_attrs(&p, &attrs).map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File { path }) = self.handles.get(&handle) else {
            return Err(StatusReply::new(StatusCode::Failure));
        };
        let path = path.clone();
        self.apply_attrs(&path, &attrs).map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let p = self.path(&path);
        let entries = {
            let disk = self.inst.lock_disk();
            let list = disk.fs.list(&p, self.cred).map_err(err)?;
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
        Ok(Handle {
            id,
            handle: self.handle(Open::Dir {
                entries: Some(entries),
            }),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir { entries }) => match entries.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusReply::new(StatusCode::Eof)),
            },
            _ => Err(StatusReply::new(StatusCode::Failure)),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let p = self.path(&filename);
        let mut disk = self.inst.lock_disk();
        if disk.fs.is_dir(&p) {
            return Err(err(FsError::IsADirectory));
        }
        disk.fs.remove(&p, self.cred, false).map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let p = self.path(&path);
        let mode = attrs.permissions.map_or(0o755, |m| m & 0o777);
        self.inst
            .lock_disk()
            .fs
            .mkdir(&p, self.cred, false, mode)
            .map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let p = self.path(&path);
        let mut disk = self.inst.lock_disk();
        if !disk.fs.is_dir(&p) {
            return Err(err(FsError::NotADirectory));
        }
        disk.fs.remove(&p, self.cred, false).map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(self.path(&path))],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (from, to) = (self.path(&oldpath), self.path(&newpath));
        self.inst
            .lock_disk()
            .fs
            .rename(&from, &to, self.cred)
            .map_err(err)?;
        Ok(status(id, StatusCode::Ok))
    }
}

//! The sandbox's built-in SFTP server (version 3): `scp` (which speaks SFTP since
//! OpenSSH 9) and `sftp` work whether or not the host has OpenSSH's `sftp-server`.
//!
//! It runs inside the agent, so it sees the sandbox's own filesystem with the login
//! user's rights; relative paths start in the user's home directory, as with sshd.
//! russh-sftp frames and decodes the packets and calls this [`Handler`]; every request
//! is one blocking file-system call (small and local, so run inline). Errors follow
//! `sftp-server`: a missing file is `SSH_FX_NO_SUCH_FILE`, `EACCES`/`EPERM`
//! `SSH_FX_PERMISSION_DENIED`, anything else `SSH_FX_FAILURE` with the system's text;
//! `rename` refuses an existing target (no `posix-rename@openssh.com`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh_sftp::protocol::{
    Attrs, Data, File as Entry, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
    Version,
};
use russh_sftp::server::{Handler, StatusReply};

/// `sftp-server`'s longest read answer.
const MAX_READ: u32 = 255 * 1024;
/// Open handles one session may hold.
const MAX_HANDLES: usize = 100;
/// Names per `SSH_FXP_NAME` answer to `READDIR`.
const READDIR_BATCH: usize = 100;

enum Open {
    File(File),
    /// A directory's remaining entries (read at `opendir`, sent in batches).
    Dir(Vec<Entry>),
}

/// One SFTP session of a logged-in user.
pub struct Sftp {
    home: PathBuf,
    handles: HashMap<String, Open>,
    next: u64,
}

impl Sftp {
    pub fn new(home: impl Into<PathBuf>) -> Sftp {
        Sftp {
            home: home.into(),
            handles: HashMap::new(),
            next: 0,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        if p.is_empty() || p == "." {
            self.home.clone()
        } else {
            self.home.join(p)
        }
    }

    fn add(&mut self, open: Open) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusReply::new(StatusCode::Failure).with_message("too many open handles"));
        }
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    fn file(&mut self, handle: &str) -> Result<&mut File, StatusReply> {
        match self.handles.get_mut(handle) {
            Some(Open::File(f)) => Ok(f),
            _ => Err(StatusReply::new(StatusCode::Failure).with_message("invalid handle")),
        }
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Success".into(),
        language_tag: "en-US".into(),
    }
}

/// A system error as `sftp-server` reports it.
fn fail(e: std::io::Error) -> StatusReply {
    use std::io::ErrorKind::*;
    let code = match e.kind() {
        NotFound => StatusCode::NoSuchFile,
        PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    let text = match e.kind() {
        NotFound => "No such file".to_string(),
        PermissionDenied => "Permission denied".to_string(),
        _ => e.to_string(),
    };
    StatusReply::new(code).with_message(text)
}

fn attrs_of(meta: &std::fs::Metadata) -> FileAttributes {
    let mut a = FileAttributes::from(meta);
    // The mode with its file-type bits, as stat(2) gives it (symlinks included).
    a.permissions = Some(meta.mode());
    a
}

/// `ls -l`-style long name, which `sftp`'s `ls -l` prints as given.
fn long_name(name: &str, meta: &std::fs::Metadata) -> String {
    let mode = meta.mode();
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    };
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let when = time::OffsetDateTime::from_unix_timestamp(meta.mtime())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]"
        ))
        .unwrap_or_default();
    let owner = if meta.uid() == 0 {
        "ec2-user"
    } else {
        "nobody"
    };
    format!(
        "{kind}{perms}    {} {owner:<8} {owner:<8} {:>8} {when} {name}",
        meta.nlink(),
        meta.len()
    )
}

fn apply(path: &Path, attrs: &FileAttributes) -> std::io::Result<()> {
    if let Some(mode) = attrs.permissions {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    if let Some(size) = attrs.size {
        OpenOptions::new().write(true).open(path)?.set_len(size)?;
    }
    if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
        let t = |s: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s));
        let f = File::options()
            .write(true)
            .open(path)
            .or_else(|_| File::open(path))?;
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(t(atime))
                .set_modified(t(mtime)),
        )?;
    }
    Ok(())
}

impl Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusReply::new(StatusCode::OpUnsupported)
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let write = pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND);
        let mut o = OpenOptions::new();
        o.read(pflags.contains(OpenFlags::READ) || !write)
            .write(write)
            .append(pflags.contains(OpenFlags::APPEND))
            .truncate(pflags.contains(OpenFlags::TRUNCATE))
            .mode(attrs.permissions.map_or(0o666, |m| m & 0o7777));
        if pflags.contains(OpenFlags::EXCLUDE) {
            o.create_new(true);
        } else if pflags.contains(OpenFlags::CREATE) {
            o.create(true);
        }
        let f = o.open(self.path(&filename)).map_err(fail)?;
        let handle = self.add(Open::File(f))?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(ok(id)),
            None => Err(StatusReply::new(StatusCode::Failure).with_message("invalid handle")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let f = self.file(&handle)?;
        f.seek(SeekFrom::Start(offset)).map_err(fail)?;
        let mut data = vec![0u8; len.min(MAX_READ) as usize];
        let n = f.read(&mut data).map_err(fail)?;
        if n == 0 && len > 0 {
            return Err(StatusReply::new(StatusCode::Eof).with_message("End of file"));
        }
        data.truncate(n);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        f.seek(SeekFrom::Start(offset)).map_err(fail)?;
        f.write_all(&data).map_err(fail)?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = std::fs::symlink_metadata(self.path(&path)).map_err(fail)?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&meta),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = std::fs::metadata(self.path(&path)).map_err(fail)?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&meta),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let meta = self.file(&handle)?.metadata().map_err(fail)?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&meta),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        apply(&self.path(&path), &attrs).map_err(fail)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        if let Some(mode) = attrs.permissions {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(fail)?;
        }
        if let Some(size) = attrs.size {
            f.set_len(size).map_err(fail)?;
        }
        if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
            let t = |s: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s));
            f.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(t(atime))
                    .set_modified(t(mtime)),
            )
            .map_err(fail)?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let dir = self.path(&path);
        let mut entries = Vec::new();
        for name in [".", ".."] {
            if let Ok(meta) = std::fs::metadata(dir.join(name)) {
                entries.push(Entry {
                    filename: name.into(),
                    longname: long_name(name, &meta),
                    attrs: attrs_of(&meta),
                });
            }
        }
        for e in std::fs::read_dir(&dir).map_err(fail)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(meta) = e.path().symlink_metadata() {
                entries.push(Entry {
                    longname: long_name(&name, &meta),
                    filename: name,
                    attrs: attrs_of(&meta),
                });
            }
        }
        // Sent from the end (pop) in batches; reversed so the first batch is first.
        entries.reverse();
        let handle = self.add(Open::Dir(entries))?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(rest)) = self.handles.get_mut(&handle) else {
            return Err(StatusReply::new(StatusCode::Failure).with_message("invalid handle"));
        };
        if rest.is_empty() {
            return Err(StatusReply::new(StatusCode::Eof).with_message("End of file"));
        }
        let take = rest.len().min(READDIR_BATCH);
        let files: Vec<Entry> = (0..take).filter_map(|_| rest.pop()).collect();
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        std::fs::remove_file(self.path(&filename)).map_err(fail)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let p = self.path(&path);
        std::fs::create_dir(&p).map_err(fail)?;
        if let Some(mode) = attrs.permissions {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777));
        }
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        std::fs::remove_dir(self.path(&path)).map_err(fail)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let p = self.path(&path);
        // A path that does not exist yet (the target of an upload) is normalised by
        // hand, as `sftp-server` does with its own `realpath`.
        let resolved = std::fs::canonicalize(&p).unwrap_or_else(|_| normalise(&p));
        Ok(Name {
            id,
            files: vec![Entry::dummy(resolved.to_string_lossy())],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (from, to) = (self.path(&oldpath), self.path(&newpath));
        if to.symlink_metadata().is_ok() {
            return Err(StatusReply::new(StatusCode::Failure).with_message("File exists"));
        }
        std::fs::rename(from, to).map_err(fail)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = std::fs::read_link(self.path(&path)).map_err(fail)?;
        Ok(Name {
            id,
            files: vec![Entry::dummy(target.to_string_lossy())],
        })
    }

    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> Result<Status, Self::Error> {
        // OpenSSH's client sends the two paths in the opposite order of the draft
        // (its sftp-server agrees), so the first is the target.
        std::os::unix::fs::symlink(&linkpath, self.path(&targetpath)).map_err(fail)?;
        Ok(ok(id))
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_reads_lists_and_renames_like_sftp_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Sftp::new(dir.path());
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let h = s
            .open(1, "notes.txt".into(), flags, FileAttributes::empty())
            .await
            .expect("open")
            .handle;
        s.write(2, h.clone(), 0, b"hello sftp\n".to_vec())
            .await
            .expect("write");
        // A write-only handle cannot be read back.
        assert!(s.read(3, h.clone(), 0, 100).await.is_err());
        s.close(4, h).await.expect("close");
        let h = s
            .open(
                5,
                "notes.txt".into(),
                OpenFlags::READ,
                FileAttributes::empty(),
            )
            .await
            .expect("open")
            .handle;
        let data = s.read(6, h.clone(), 6, 100).await.expect("read").data;
        assert_eq!(data, b"sftp\n");
        let eof = s.read(7, h, 11, 100).await.expect_err("eof");
        assert_eq!(eof.status_code, StatusCode::Eof);
        let missing = s.stat(8, "nope".into()).await.expect_err("missing");
        assert_eq!(missing.status_code, StatusCode::NoSuchFile);
        s.mkdir(9, "sub".into(), FileAttributes::empty())
            .await
            .expect("mkdir");
        std::fs::write(dir.path().join("other"), "x").expect("write");
        let refused = s
            .rename(10, "notes.txt".into(), "other".into())
            .await
            .expect_err("exists");
        assert_eq!(refused.status_code, StatusCode::Failure);
        s.rename(11, "notes.txt".into(), "sub/moved.txt".into())
            .await
            .expect("rename");
        let h = s.opendir(12, "sub".into()).await.expect("opendir").handle;
        let names: Vec<String> = s
            .readdir(13, h.clone())
            .await
            .expect("readdir")
            .files
            .into_iter()
            .map(|f| f.filename)
            .collect();
        assert_eq!(names, [".", "..", "moved.txt"]);
        assert_eq!(
            s.readdir(14, h).await.expect_err("end").status_code,
            StatusCode::Eof
        );
        let real = s
            .realpath(15, "sub/../new.txt".into())
            .await
            .expect("realpath");
        assert_eq!(
            real.files[0].filename,
            normalise(&dir.path().join("new.txt")).to_string_lossy()
        );
    }
}

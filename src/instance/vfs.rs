//! The per-instance filesystem: an in-memory tree of files and directories with Unix
//! owners and modes, serializable so the caller can persist it with the instance.
//!
//! Paths are absolute and normalised (`/home/ec2-user/a.txt`); the map is flat and
//! ordered, so listing a directory is a range scan and snapshots are deterministic.
//! Permission checks are the small subset a learner meets: the owner's and others' bits,
//! and root may do anything (so `echo hi > /var/www/html/index.html` needs `sudo`, as on
//! a real instance). Groups, ACLs, symlinks and hard links are not modelled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A user as the filesystem sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
}

impl Cred {
    pub const ROOT: Cred = Cred { uid: 0, gid: 0 };
}

/// What a path holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    Dir,
    File(#[serde(with = "b64")] Vec<u8>),
}

/// One file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits only (`0o644`); the type comes from `kind`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }
    pub fn len(&self) -> u64 {
        match &self.kind {
            NodeKind::Dir => 4096,
            NodeKind::File(d) => d.len() as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `drwxr-xr-x` as `ls -l` prints it.
    pub fn mode_string(&self) -> String {
        let mut s = String::with_capacity(10);
        s.push(if self.is_dir() { 'd' } else { '-' });
        for shift in [6u32, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        s
    }
}

/// Filesystem errors, worded as coreutils words them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("No such file or directory")]
    NotFound,
    #[error("Not a directory")]
    NotADirectory,
    #[error("Is a directory")]
    IsADirectory,
    #[error("Permission denied")]
    PermissionDenied,
    #[error("File exists")]
    Exists,
    #[error("Directory not empty")]
    NotEmpty,
    #[error("Invalid argument")]
    Invalid,
}

/// The whole tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vfs {
    nodes: BTreeMap<String, Node>,
    /// The clock used for modification times; the instance sets it before each command
    /// so the filesystem itself never reads a clock.
    #[serde(skip)]
    now: i64,
}

impl Default for Vfs {
    fn default() -> Self {
        Self::new()
    }
}

/// Joins `path` onto `cwd` and removes `.`, `..` and repeated slashes.
pub fn normalize(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", parts.join("/"))
    }
}

/// The parent directory of a normalised path (`/` is its own parent).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a normalised path.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Vfs {
    /// An empty tree holding only `/`.
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node {
                kind: NodeKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        );
        Vfs { nodes, now: 0 }
    }

    /// Sets the time stamped on files changed from now on.
    pub fn set_now(&mut self, secs: i64) {
        self.now = secs;
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.nodes.get(path).is_some_and(Node::is_dir)
    }

    fn may(node: &Node, who: Cred, bit: u32) -> bool {
        if who.uid == 0 {
            return true;
        }
        let shift = if node.uid == who.uid {
            6
        } else if node.gid == who.gid {
            3
        } else {
            0
        };
        (node.mode >> shift) & bit != 0
    }

    /// Every directory above `path` must be searchable.
    fn check_traverse(&self, path: &str, who: Cred) -> Result<(), FsError> {
        let mut p = parent(path);
        loop {
            match self.nodes.get(p) {
                None => return Err(FsError::NotFound),
                Some(n) if !n.is_dir() => return Err(FsError::NotADirectory),
                Some(n) if !Self::may(n, who, 1) => return Err(FsError::PermissionDenied),
                Some(_) => {}
            }
            if p == "/" {
                return Ok(());
            }
            p = parent(p);
        }
    }

    /// Reads a whole file.
    pub fn read(&self, path: &str, who: Cred) -> Result<&[u8], FsError> {
        self.check_traverse(path, who)?;
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        match &node.kind {
            NodeKind::Dir => Err(FsError::IsADirectory),
            NodeKind::File(data) => {
                if Self::may(node, who, 4) {
                    Ok(data)
                } else {
                    Err(FsError::PermissionDenied)
                }
            }
        }
    }

    /// Checks that `who` may create `path` (write permission on its parent).
    fn check_create(&self, path: &str, who: Cred) -> Result<(), FsError> {
        if path == "/" {
            return Err(FsError::Exists);
        }
        self.check_traverse(path, who)?;
        let dir = self.nodes.get(parent(path)).ok_or(FsError::NotFound)?;
        if !dir.is_dir() {
            return Err(FsError::NotADirectory);
        }
        if !Self::may(dir, who, 2) {
            return Err(FsError::PermissionDenied);
        }
        Ok(())
    }

    /// Writes (or appends to) a file, creating it with `mode` if it does not exist.
    pub fn write(
        &mut self,
        path: &str,
        data: &[u8],
        append: bool,
        who: Cred,
        mode: u32,
    ) -> Result<(), FsError> {
        self.write_at(path, None, data, !append, who, mode)
    }

    /// Writes `data` at `offset` (`None` = end of file), optionally truncating first.
    pub fn write_at(
        &mut self,
        path: &str,
        offset: Option<u64>,
        data: &[u8],
        truncate: bool,
        who: Cred,
        mode: u32,
    ) -> Result<(), FsError> {
        let now = self.now;
        match self.nodes.get(path) {
            Some(n) if n.is_dir() => return Err(FsError::IsADirectory),
            Some(n) => {
                self.check_traverse(path, who)?;
                if !Self::may(n, who, 2) {
                    return Err(FsError::PermissionDenied);
                }
            }
            None => {
                self.check_create(path, who)?;
                self.nodes.insert(
                    path.to_string(),
                    Node {
                        kind: NodeKind::File(Vec::new()),
                        mode,
                        uid: who.uid,
                        gid: who.gid,
                        mtime: now,
                    },
                );
            }
        }
        let node = self
            .nodes
            .get_mut(path)
            .expect("node exists: checked or inserted above");
        node.mtime = now;
        if let NodeKind::File(buf) = &mut node.kind {
            if truncate {
                buf.clear();
            }
            let at = offset.map_or(buf.len(), |o| usize::try_from(o).unwrap_or(usize::MAX));
            if at > buf.len() {
                buf.resize(at, 0);
            }
            let end = at + data.len();
            if end > buf.len() {
                buf.resize(end, 0);
            }
            buf[at..end].copy_from_slice(data);
        }
        Ok(())
    }

    /// Creates a file if it is missing, or updates its time (`touch`).
    pub fn touch(&mut self, path: &str, who: Cred) -> Result<(), FsError> {
        if let Some(n) = self.nodes.get(path) {
            if !Self::may(n, who, 2) && n.uid != who.uid {
                return Err(FsError::PermissionDenied);
            }
            let now = self.now;
            if let Some(n) = self.nodes.get_mut(path) {
                n.mtime = now;
            }
            return Ok(());
        }
        self.write(path, b"", true, who, 0o644)
    }

    /// Creates a directory; with `parents`, also the missing ones above it (`mkdir -p`).
    pub fn mkdir(
        &mut self,
        path: &str,
        who: Cred,
        parents: bool,
        mode: u32,
    ) -> Result<(), FsError> {
        if let Some(n) = self.nodes.get(path) {
            if parents && n.is_dir() {
                return Ok(());
            }
            return Err(FsError::Exists);
        }
        if parents && path != "/" && !self.exists(parent(path)) {
            self.mkdir(parent(path), who, true, mode)?;
        }
        self.check_create(path, who)?;
        self.nodes.insert(
            path.to_string(),
            Node {
                kind: NodeKind::Dir,
                mode,
                uid: who.uid,
                gid: who.gid,
                mtime: self.now,
            },
        );
        Ok(())
    }

    /// The entries directly inside `dir`, by name.
    pub fn list(&self, dir: &str, who: Cred) -> Result<Vec<(String, Node)>, FsError> {
        self.check_traverse(dir, who)?;
        let node = self.nodes.get(dir).ok_or(FsError::NotFound)?;
        if !node.is_dir() {
            return Err(FsError::NotADirectory);
        }
        if !Self::may(node, who, 4) {
            return Err(FsError::PermissionDenied);
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, n)| (k[prefix.len()..].to_string(), n.clone()))
            .collect())
    }

    /// Removes a file, or a directory (`recursive` for a non-empty one).
    pub fn remove(&mut self, path: &str, who: Cred, recursive: bool) -> Result<(), FsError> {
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        if path == "/" {
            return Err(FsError::PermissionDenied);
        }
        self.check_traverse(path, who)?;
        let dir = self.nodes.get(parent(path)).ok_or(FsError::NotFound)?;
        if !Self::may(dir, who, 2) {
            return Err(FsError::PermissionDenied);
        }
        if node.is_dir() {
            let prefix = format!("{path}/");
            let children: Vec<String> = self
                .nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            if !children.is_empty() && !recursive {
                return Err(FsError::NotEmpty);
            }
            for c in children {
                self.nodes.remove(&c);
            }
        }
        self.nodes.remove(path);
        Ok(())
    }

    /// Moves a file or directory tree.
    pub fn rename(&mut self, from: &str, to: &str, who: Cred) -> Result<(), FsError> {
        if !self.exists(from) {
            return Err(FsError::NotFound);
        }
        if to == from {
            return Ok(());
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(FsError::Invalid);
        }
        self.check_traverse(from, who)?;
        let src_dir = self.nodes.get(parent(from)).ok_or(FsError::NotFound)?;
        if !Self::may(src_dir, who, 2) {
            return Err(FsError::PermissionDenied);
        }
        if let Some(existing) = self.nodes.get(to) {
            if existing.is_dir() {
                return Err(FsError::IsADirectory);
            }
            self.check_traverse(to, who)?;
        } else {
            self.check_create(to, who)?;
        }
        let prefix = format!("{from}/");
        let moved: Vec<String> = std::iter::once(from.to_string())
            .chain(
                self.nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        for old in moved {
            if let Some(node) = self.nodes.remove(&old) {
                let new = format!("{to}{}", &old[from.len()..]);
                self.nodes.insert(new, node);
            }
        }
        Ok(())
    }

    /// Changes permission bits; only the owner or root may.
    pub fn chmod(&mut self, path: &str, mode: u32, who: Cred) -> Result<(), FsError> {
        self.check_traverse(path, who)?;
        let node = self.nodes.get_mut(path).ok_or(FsError::NotFound)?;
        if who.uid != 0 && node.uid != who.uid {
            return Err(FsError::PermissionDenied);
        }
        node.mode = mode & 0o7777;
        Ok(())
    }

    /// Changes the owner (root only, as `chown` requires).
    pub fn chown(&mut self, path: &str, owner: Cred, who: Cred) -> Result<(), FsError> {
        if who.uid != 0 {
            return Err(FsError::PermissionDenied);
        }
        let node = self.nodes.get_mut(path).ok_or(FsError::NotFound)?;
        node.uid = owner.uid;
        node.gid = owner.gid;
        Ok(())
    }

    /// Sets the modification time (SFTP `setstat`, `scp -p`).
    pub fn set_mtime(&mut self, path: &str, mtime: i64) -> Result<(), FsError> {
        let node = self.nodes.get_mut(path).ok_or(FsError::NotFound)?;
        node.mtime = mtime;
        Ok(())
    }

    /// Writes a file as root with an owner, for building images (no permission checks).
    pub fn install(&mut self, path: &str, data: &[u8], mode: u32, owner: Cred) {
        let p = parent(path).to_string();
        if !self.exists(&p) {
            self.install_dir(&p, 0o755, Cred::ROOT);
        }
        self.nodes.insert(
            path.to_string(),
            Node {
                kind: NodeKind::File(data.to_vec()),
                mode,
                uid: owner.uid,
                gid: owner.gid,
                mtime: self.now,
            },
        );
    }

    /// Creates a directory (and its parents) as root with an owner, for building images.
    pub fn install_dir(&mut self, path: &str, mode: u32, owner: Cred) {
        if path != "/" && !self.exists(parent(path)) {
            self.install_dir(parent(path), 0o755, Cred::ROOT);
        }
        self.nodes.insert(
            path.to_string(),
            Node {
                kind: NodeKind::Dir,
                mode,
                uid: owner.uid,
                gid: owner.gid,
                mtime: self.now,
            },
        );
    }
}

/// File contents serialize as base64, so a JSON snapshot stays compact and readable.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    fn fs() -> Vfs {
        let mut fs = Vfs::new();
        fs.install_dir("/home/ec2-user", 0o700, USER);
        fs.install_dir("/var/www/html", 0o755, Cred::ROOT);
        fs
    }

    #[test]
    fn normalize_resolves_dot_dot_and_relative_paths() {
        assert_eq!(normalize("/home/ec2-user", "../x/./y//z"), "/home/x/y/z");
        assert_eq!(normalize("/a", "/b/.."), "/");
        assert_eq!(normalize("/", ".."), "/");
    }

    #[test]
    fn user_cannot_write_into_root_owned_web_root_but_root_can() {
        let mut fs = fs();
        assert_eq!(
            fs.write("/var/www/html/index.html", b"hi", false, USER, 0o644),
            Err(FsError::PermissionDenied)
        );
        fs.write("/var/www/html/index.html", b"hi", false, Cred::ROOT, 0o644)
            .expect("root writes");
        assert_eq!(fs.read("/var/www/html/index.html", USER), Ok(&b"hi"[..]));
    }

    #[test]
    fn write_at_offset_extends_and_append_adds() {
        let mut fs = fs();
        let p = "/home/ec2-user/f";
        fs.write_at(p, Some(4), b"ab", false, USER, 0o644)
            .expect("write");
        assert_eq!(fs.read(p, USER).expect("read"), b"\0\0\0\0ab");
        fs.write(p, b"c", true, USER, 0o644).expect("append");
        assert_eq!(fs.read(p, USER).expect("read"), b"\0\0\0\0abc");
    }

    #[test]
    fn private_home_is_not_listable_by_others() {
        let fs = fs();
        let other = Cred {
            uid: 1001,
            gid: 1001,
        };
        assert_eq!(
            fs.list("/home/ec2-user", other).map(|v| v.len()),
            Err(FsError::PermissionDenied)
        );
    }

    #[test]
    fn rmdir_refuses_non_empty_without_recursive() {
        let mut fs = fs();
        fs.mkdir("/home/ec2-user/a/b", USER, true, 0o755)
            .expect("mkdir -p");
        assert_eq!(
            fs.remove("/home/ec2-user/a", USER, false),
            Err(FsError::NotEmpty)
        );
        fs.remove("/home/ec2-user/a", USER, true).expect("rm -r");
        assert!(!fs.exists("/home/ec2-user/a/b"));
    }

    #[test]
    fn rename_moves_whole_tree_and_list_is_sorted() {
        let mut fs = fs();
        fs.mkdir("/home/ec2-user/d", USER, false, 0o755)
            .expect("mkdir");
        fs.write("/home/ec2-user/d/z", b"1", false, USER, 0o644)
            .expect("w");
        fs.write("/home/ec2-user/d/a", b"2", false, USER, 0o644)
            .expect("w");
        fs.rename("/home/ec2-user/d", "/home/ec2-user/e", USER)
            .expect("mv");
        let names: Vec<String> = fs
            .list("/home/ec2-user/e", USER)
            .expect("ls")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "z"]);
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut fs = fs();
        fs.write("/home/ec2-user/bin", &[0, 159, 255], false, USER, 0o600)
            .expect("w");
        let json = serde_json::to_string(&fs).expect("ser");
        let back: Vfs = serde_json::from_str(&json).expect("de");
        assert_eq!(
            back.read("/home/ec2-user/bin", USER).expect("r"),
            &[0, 159, 255]
        );
    }
}

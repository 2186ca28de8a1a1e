//! The per-instance filesystem: an in-memory tree of files and directories with Unix
//! owners and modes, bounded by the instance's root volume, that records what changed
//! so the caller can persist it incrementally.
//!
//! Paths are absolute and normalised (`/home/ec2-user/a.txt`); the map is flat and
//! ordered, so listing a directory is a range scan and snapshots are deterministic.
//! Permission checks are the small subset a learner meets: the owner's, group's and
//! others' bits, the sticky bit of `/tmp`, and root may do anything (so
//! `echo hi > /var/www/html/index.html` needs `sudo`, as on a real instance). ACLs,
//! symlinks and hard links are not modelled.
//!
//! **Space.** Every byte the tree holds in memory is charged to the volume: file buffers
//! (their allocated capacity, growth room included), plus [`NODE_COST`] and the path's
//! length for each file or directory. A change that would go past [`Vfs::capacity`] fails
//! with [`FsError::NoSpace`] ("No space left on device") before anything is allocated, so
//! a write at a huge offset is refused instead of allocating its hole; a hole inside the
//! volume is stored as zeros and counted as used. The caller picks the capacity (the
//! instance's root volume, capped; see `docs/fidelity.md`).
//!
//! **Persistence.** The tree keeps a journal of what changed since the caller last took
//! it ([`Vfs::take_changes`]): subtree renames and removals in order, then nodes whose
//! metadata changed and the [`CHUNK`]-sized pieces of file data that changed. Replaying
//! the changes in order onto the previous saved state gives the current tree; the
//! world runtime stores them in a per-instance SQLite database. Storage itself (files,
//! SQL) is left to the caller.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// File data is journaled and persisted in pieces of this size.
pub const CHUNK: usize = 64 * 1024;
/// What the tree charges for one file or directory besides its path and data: about
/// what a map entry, its key and its node cost in memory.
pub const NODE_COST: u64 = 256;
/// Linux's `PATH_MAX` and `NAME_MAX`: longer paths or names fail with "File name too
/// long", as on ext4 and xfs.
pub const PATH_MAX: usize = 4096;
pub const NAME_MAX: usize = 255;
/// The capacity of a tree nobody sized (tests, examples).
pub const DEFAULT_CAPACITY: u64 = 128 * 1024 * 1024;
/// More pending renames and removals than this and the next save rewrites everything:
/// the journal stays small whatever a learner does between two saves.
const MAX_PENDING_MOVES: usize = 10_000;

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
    /// `EPERM`: only the owner (or root) may do this (`utime`, the sticky bit).
    #[error("Operation not permitted")]
    NotPermitted,
    #[error("File exists")]
    Exists,
    #[error("Directory not empty")]
    NotEmpty,
    #[error("Invalid argument")]
    Invalid,
    /// `ENOSPC`: the root volume is full, or the write ends beyond its size.
    #[error("No space left on device")]
    NoSpace,
    #[error("File name too long")]
    NameTooLong,
    /// `EBADF`: writing through a handle opened read-only (or the reverse).
    #[error("Bad file descriptor")]
    BadDescriptor,
}

/// A node's metadata as the store keeps it (the data travels in [`Change::Data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMeta {
    pub dir: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// File length in bytes (0 for a directory).
    pub size: u64,
}

/// One change to replay onto the saved state, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Forget everything saved: the changes that follow describe the whole tree.
    Reset,
    /// Move `from` and everything under it to `to`, replacing a file at `to`.
    Rename { from: String, to: String },
    /// Remove `path` and everything under it.
    Remove { path: String },
    /// Create or update a node; for a file, data pieces past `size` are gone.
    Node { path: String, meta: NodeMeta },
    /// Drop all of a file's stored data (the pieces that follow rewrite it).
    ClearData { path: String },
    /// Piece `index` of a file's data (`index * CHUNK ..`), at most [`CHUNK`] bytes.
    Data {
        path: String,
        index: u64,
        bytes: Vec<u8>,
    },
}

/// Which pieces of a file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dirty {
    All,
    Chunks(BTreeSet<u64>),
}

#[derive(Debug, Clone, Default)]
struct Journal {
    /// Nothing was saved yet, or a save was lost: rewrite everything.
    full: bool,
    /// Subtree renames and removals, in order.
    moves: Vec<Change>,
    /// Nodes whose metadata (or size) changed.
    nodes: BTreeSet<String>,
    /// Files whose data changed.
    data: BTreeMap<String, Dirty>,
}

/// Keys equal to `path` or under it.
fn subtree_keys<V>(map: &BTreeMap<String, V>, path: &str) -> Vec<String> {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    map.get_key_value(path)
        .map(|(k, _)| k.clone())
        .into_iter()
        .chain(
            map.range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone()),
        )
        .collect()
}

fn subtree_set(set: &BTreeSet<String>, path: &str) -> Vec<String> {
    let prefix = format!("{path}/");
    set.get(path)
        .cloned()
        .into_iter()
        .chain(
            set.range(prefix.clone()..)
                .take_while(|k| k.starts_with(&prefix))
                .cloned(),
        )
        .collect()
}

fn moved(old: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &old[from.len()..])
}

impl Journal {
    fn node(&mut self, path: &str) {
        if !self.full {
            self.nodes.insert(path.to_string());
        }
    }

    fn all_data(&mut self, path: &str) {
        if !self.full {
            self.data.insert(path.to_string(), Dirty::All);
        }
    }

    /// Bytes `from..to` of a file changed.
    fn bytes(&mut self, path: &str, from: u64, to: u64) {
        if self.full || to <= from {
            return;
        }
        let chunk = CHUNK as u64;
        let entry = self
            .data
            .entry(path.to_string())
            .or_insert_with(|| Dirty::Chunks(BTreeSet::new()));
        if let Dirty::Chunks(set) = entry {
            set.extend(from / chunk..to.div_ceil(chunk));
        }
    }

    fn forget_subtree(&mut self, path: &str) {
        for k in subtree_set(&self.nodes, path) {
            self.nodes.remove(&k);
        }
        for k in subtree_keys(&self.data, path) {
            self.data.remove(&k);
        }
    }

    fn push_move(&mut self, change: Change) {
        if self.full {
            return;
        }
        if self.moves.len() >= MAX_PENDING_MOVES {
            self.reset();
            return;
        }
        self.moves.push(change);
    }

    fn remove(&mut self, path: &str) {
        self.forget_subtree(path);
        self.push_move(Change::Remove {
            path: path.to_string(),
        });
    }

    fn rename(&mut self, from: &str, to: &str) {
        // Whatever was pending for the replaced file at `to` is moot.
        self.forget_subtree(to);
        for k in subtree_set(&self.nodes, from) {
            self.nodes.remove(&k);
            self.nodes.insert(moved(&k, from, to));
        }
        for k in subtree_keys(&self.data, from) {
            if let Some(d) = self.data.remove(&k) {
                self.data.insert(moved(&k, from, to), d);
            }
        }
        self.push_move(Change::Rename {
            from: from.to_string(),
            to: to.to_string(),
        });
    }

    fn reset(&mut self) {
        *self = Journal {
            full: true,
            ..Journal::default()
        };
    }
}

/// The whole tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "VfsDoc")]
pub struct Vfs {
    nodes: BTreeMap<String, Node>,
    /// The clock used for modification times; the instance sets it before each command
    /// so the filesystem itself never reads a clock.
    #[serde(skip)]
    now: i64,
    /// The most the tree may hold, in bytes (see the module doc).
    #[serde(skip)]
    capacity: u64,
    /// What it holds now, in the same units.
    #[serde(skip)]
    used: u64,
    #[serde(skip)]
    journal: Journal,
}

/// The serialized form (JSON snapshots, and the disks of state directories written
/// before the per-instance store): only the nodes.
#[derive(Deserialize)]
struct VfsDoc {
    nodes: BTreeMap<String, Node>,
}

impl From<VfsDoc> for Vfs {
    fn from(doc: VfsDoc) -> Vfs {
        // Read back from a document: nothing of it is in a store yet.
        Vfs::from_nodes(doc.nodes)
    }
}

impl PartialEq for Vfs {
    fn eq(&self, other: &Vfs) -> bool {
        self.nodes == other.nodes
    }
}

impl Eq for Vfs {}

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

/// What `node` at `path` costs the volume.
fn cost(path: &str, node: &Node) -> u64 {
    let data = match &node.kind {
        NodeKind::Dir => 0,
        NodeKind::File(d) => d.capacity() as u64,
    };
    NODE_COST + path.len() as u64 + data
}

fn meta(node: &Node) -> NodeMeta {
    NodeMeta {
        dir: node.is_dir(),
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtime: node.mtime,
        size: match &node.kind {
            NodeKind::Dir => 0,
            NodeKind::File(d) => d.len() as u64,
        },
    }
}

impl Vfs {
    /// An empty tree holding only `/`, with [`DEFAULT_CAPACITY`].
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
        Vfs::from_nodes(nodes)
    }

    /// A tree of `nodes`, none of them saved yet (the first changes taken are a
    /// [`Change::Reset`] and the whole tree).
    pub fn from_nodes(nodes: BTreeMap<String, Node>) -> Self {
        let mut fs = Vfs {
            nodes,
            now: 0,
            capacity: DEFAULT_CAPACITY,
            used: 0,
            journal: Journal::default(),
        };
        fs.recount();
        fs.journal.reset();
        fs
    }

    /// Every file and directory by path (the whole tree, `/` included).
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    /// Sets the time stamped on files changed from now on.
    pub fn set_now(&mut self, secs: i64) {
        self.now = secs;
    }

    /// The most the tree may hold, in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sets the volume size. A tree already holding more keeps its files (they stay
    /// readable) but cannot grow until enough is removed.
    pub fn set_capacity(&mut self, bytes: u64) {
        self.capacity = bytes;
    }

    /// Bytes charged to the volume now (see the module doc).
    pub fn used(&self) -> u64 {
        self.used
    }

    fn recount(&mut self) {
        self.used = self.nodes.iter().map(|(p, n)| cost(p, n)).sum();
    }

    /// Gives back the growth room of every file buffer (when space runs short).
    fn trim(&mut self) {
        for node in self.nodes.values_mut() {
            if let NodeKind::File(d) = &mut node.kind {
                d.shrink_to_fit();
            }
        }
        self.recount();
    }

    /// Makes room for `extra` more bytes, or fails with `NoSpace`.
    fn ensure_room(&mut self, extra: u64) -> Result<(), FsError> {
        if self.used.saturating_add(extra) <= self.capacity {
            return Ok(());
        }
        self.trim();
        if self.used.saturating_add(extra) <= self.capacity {
            Ok(())
        } else {
            Err(FsError::NoSpace)
        }
    }

    fn check_name(path: &str) -> Result<(), FsError> {
        if path.len() > PATH_MAX || basename(path).len() > NAME_MAX {
            Err(FsError::NameTooLong)
        } else {
            Ok(())
        }
    }

    /// Inserts (or replaces) a node, charging it and journaling it.
    fn put(&mut self, path: &str, node: Node) {
        if let Some(old) = self.nodes.get(path) {
            self.used -= cost(path, old).min(self.used);
        }
        self.used += cost(path, &node);
        let is_file = !node.is_dir();
        self.nodes.insert(path.to_string(), node);
        self.journal.node(path);
        if is_file {
            self.journal.all_data(path);
        }
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

    /// Checks `who` may open an existing file for reading and/or writing, as open(2)
    /// does (`NotFound` when it does not exist, `IsADirectory` to write a directory).
    pub fn access(&self, path: &str, who: Cred, read: bool, write: bool) -> Result<(), FsError> {
        self.check_traverse(path, who)?;
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        if write && node.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if (read && !Self::may(node, who, 4)) || (write && !Self::may(node, who, 2)) {
            return Err(FsError::PermissionDenied);
        }
        Ok(())
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
        Self::check_name(path)?;
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

    /// Checks that `who` may unlink or rename away `path`: write permission on its
    /// directory and, in a sticky directory such as `/tmp`, ownership of the file or
    /// the directory.
    fn check_unlink(&self, path: &str, who: Cred) -> Result<(), FsError> {
        self.check_traverse(path, who)?;
        let dir = self.nodes.get(parent(path)).ok_or(FsError::NotFound)?;
        if !Self::may(dir, who, 2) {
            return Err(FsError::PermissionDenied);
        }
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        if dir.mode & 0o1000 != 0 && who.uid != 0 && who.uid != node.uid && who.uid != dir.uid {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }

    /// Creates an empty file as `who` (the caller checked `check_create`).
    fn create_file(&mut self, path: &str, who: Cred, mode: u32) -> Result<(), FsError> {
        self.ensure_room(NODE_COST + path.len() as u64)?;
        let node = Node {
            kind: NodeKind::File(Vec::new()),
            mode,
            uid: who.uid,
            gid: who.gid,
            mtime: self.now,
        };
        self.put(path, node);
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
    /// Fails with `NoSpace`, changing nothing, when the file would end beyond the
    /// volume or the volume has no room for it.
    pub fn write_at(
        &mut self,
        path: &str,
        offset: Option<u64>,
        data: &[u8],
        truncate: bool,
        who: Cred,
        mode: u32,
    ) -> Result<(), FsError> {
        let end = offset.unwrap_or(0).checked_add(data.len() as u64);
        if end.is_none_or(|e| e > self.capacity) {
            return Err(FsError::NoSpace);
        }
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
                self.create_file(path, who, mode)?;
            }
        }
        self.write_data(path, offset, data, truncate)
    }

    /// Writes into an existing file without permission checks: the file was opened
    /// with the right permissions earlier (a file descriptor, an SFTP handle).
    pub fn write_handle(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), FsError> {
        match self.nodes.get(path) {
            None => Err(FsError::NotFound),
            Some(n) if n.is_dir() => Err(FsError::IsADirectory),
            Some(_) => self.write_data(path, Some(offset), data, false),
        }
    }

    /// The allocated size of a file's buffer.
    fn buffer_capacity(&self, path: &str) -> Result<u64, FsError> {
        match self.nodes.get(path).map(|n| &n.kind) {
            Some(NodeKind::File(buf)) => Ok(buf.capacity() as u64),
            Some(NodeKind::Dir) => Err(FsError::IsADirectory),
            None => Err(FsError::NotFound),
        }
    }

    /// Grows a file's buffer to hold `len` bytes, charging the volume.
    fn reserve(&mut self, path: &str, len: u64) -> Result<(), FsError> {
        let have = self.buffer_capacity(path)?;
        if len <= have {
            return Ok(());
        }
        if self.used.saturating_sub(have).saturating_add(len) > self.capacity {
            // Other buffers' growth room may be what is in the way.
            self.trim();
        }
        let have = self.buffer_capacity(path)?;
        let others = self.used.saturating_sub(have);
        if others.saturating_add(len) > self.capacity {
            return Err(FsError::NoSpace);
        }
        // Geometric growth keeps appends linear, but never past the free space: the
        // room a buffer keeps is charged like its data.
        let want = (have * 2).max(len).min(self.capacity - others);
        let want = usize::try_from(want).map_err(|_| FsError::NoSpace)?;
        let Some(Node {
            kind: NodeKind::File(buf),
            ..
        }) = self.nodes.get_mut(path)
        else {
            return Err(FsError::IsADirectory);
        };
        buf.reserve_exact(want.saturating_sub(buf.len()));
        self.used = others + buf.capacity() as u64;
        Ok(())
    }

    fn write_data(
        &mut self,
        path: &str,
        offset: Option<u64>,
        data: &[u8],
        truncate: bool,
    ) -> Result<(), FsError> {
        let old_len = match self.nodes.get(path).map(|n| &n.kind) {
            Some(NodeKind::File(b)) => b.len() as u64,
            Some(NodeKind::Dir) => return Err(FsError::IsADirectory),
            None => return Err(FsError::NotFound),
        };
        let base = if truncate { 0 } else { old_len };
        let at = offset.unwrap_or(base);
        let end = at
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.capacity)
            .ok_or(FsError::NoSpace)?;
        // Room first, so a refused write leaves the file as it was.
        self.reserve(path, end.max(base))?;
        let now = self.now;
        let node = self
            .nodes
            .get_mut(path)
            .expect("node exists: checked above");
        node.mtime = now;
        let NodeKind::File(buf) = &mut node.kind else {
            return Err(FsError::IsADirectory);
        };
        if truncate {
            buf.clear();
        }
        // Both fit in usize: they are at most the capacity reserved above.
        let (at_u, end_u) = (at as usize, end as usize);
        let hole_from = buf.len() as u64;
        if end_u > buf.len() {
            buf.resize(end_u, 0);
        }
        buf[at_u..end_u].copy_from_slice(data);
        self.journal.node(path);
        if truncate {
            self.journal.all_data(path);
        } else {
            self.journal.bytes(path, at.min(hole_from), end);
        }
        Ok(())
    }

    /// Sets a file's length (`truncate -s`, SFTP `setstat` size): cuts it, or extends
    /// it with zeros within the volume.
    pub fn truncate(&mut self, path: &str, size: u64, who: Cred) -> Result<(), FsError> {
        self.access(path, who, false, true)?;
        let len = match self.nodes.get(path).map(|n| &n.kind) {
            Some(NodeKind::File(b)) => b.len() as u64,
            _ => return Err(FsError::IsADirectory),
        };
        if size > self.capacity {
            return Err(FsError::NoSpace);
        }
        self.reserve(path, size)?;
        let now = self.now;
        if let Some(Node {
            kind: NodeKind::File(buf),
            mtime,
            ..
        }) = self.nodes.get_mut(path)
        {
            buf.resize(size as usize, 0);
            *mtime = now;
        }
        self.journal.node(path);
        // The piece holding the new end changed (pieces wholly past it go with the
        // size); when growing, so did the new zeros.
        self.journal.bytes(path, size.min(len), size.max(len));
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
            self.journal.node(path);
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
        self.ensure_room(NODE_COST + path.len() as u64)?;
        let node = Node {
            kind: NodeKind::Dir,
            mode,
            uid: who.uid,
            gid: who.gid,
            mtime: self.now,
        };
        self.put(path, node);
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

    /// The directory `dir` and everything under it, keyed relative to `dir` (`/` is
    /// `dir` itself): what a mounted volume holds.
    pub fn subtree(&self, dir: &str) -> BTreeMap<String, Node> {
        subtree_keys(&self.nodes, dir)
            .into_iter()
            .filter_map(|k| {
                let n = self.nodes.get(&k)?.clone();
                let rel = match k.strip_prefix(dir) {
                    Some("") => "/".to_string(),
                    Some(r) => r.to_string(),
                    None => return None,
                };
                Some((rel, n))
            })
            .collect()
    }

    /// Puts `nodes` (keyed as [`Vfs::subtree`] returns them) under `dir`, replacing
    /// `dir` itself with the `/` entry (mounting a volume). No space check: the volume's
    /// own size bounded what it holds.
    pub fn graft(&mut self, dir: &str, nodes: &BTreeMap<String, Node>) {
        for (rel, node) in nodes {
            let path = if rel == "/" {
                dir.to_string()
            } else {
                format!("{}{rel}", dir.trim_end_matches('/'))
            };
            self.put(&path, node.clone());
        }
    }

    /// Removes everything under `dir` and puts `dir` back as `covered` (unmounting).
    pub fn prune(&mut self, dir: &str, covered: Node) {
        if dir == "/" {
            return;
        }
        self.drop_subtree(dir);
        self.put(dir, covered);
    }

    /// Removes nodes without checks, giving their space back.
    fn drop_subtree(&mut self, path: &str) {
        for k in subtree_keys(&self.nodes, path) {
            if let Some(n) = self.nodes.remove(&k) {
                self.used -= cost(&k, &n).min(self.used);
            }
        }
        self.journal.remove(path);
    }

    /// Removes a file, or a directory (`recursive` for a non-empty one).
    pub fn remove(&mut self, path: &str, who: Cred, recursive: bool) -> Result<(), FsError> {
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        if path == "/" {
            return Err(FsError::PermissionDenied);
        }
        let is_dir = node.is_dir();
        self.check_unlink(path, who)?;
        if is_dir && !recursive && subtree_keys(&self.nodes, path).len() > 1 {
            return Err(FsError::NotEmpty);
        }
        self.drop_subtree(path);
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
        if from == "/" || to == "/" || to.starts_with(&format!("{from}/")) {
            return Err(FsError::Invalid);
        }
        self.check_unlink(from, who)?;
        Self::check_name(to)?;
        let from_is_dir = self.is_dir(from);
        if let Some(existing) = self.nodes.get(to) {
            if existing.is_dir() {
                return Err(FsError::IsADirectory);
            }
            if from_is_dir {
                return Err(FsError::NotADirectory);
            }
            // Replacing a file needs the same rights as removing it.
            self.check_unlink(to, who)?;
        } else {
            self.check_create(to, who)?;
        }
        let old: Vec<String> = subtree_keys(&self.nodes, from);
        if old
            .iter()
            .any(|k| k.len() - from.len() + to.len() > PATH_MAX)
        {
            return Err(FsError::NameTooLong);
        }
        let growth: u64 = old
            .len()
            .saturating_mul(to.len().saturating_sub(from.len())) as u64;
        let replaced = self.nodes.get(to).map_or(0, |n| cost(to, n));
        self.ensure_room(growth.saturating_sub(replaced))?;
        if let Some(n) = self.nodes.remove(to) {
            self.used -= cost(to, &n).min(self.used);
        }
        for k in old {
            if let Some(node) = self.nodes.remove(&k) {
                let new = moved(&k, from, to);
                self.used -= cost(&k, &node).min(self.used);
                self.used += cost(&new, &node);
                self.nodes.insert(new, node);
            }
        }
        self.journal.rename(from, to);
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
        self.journal.node(path);
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
        self.journal.node(path);
        Ok(())
    }

    /// Sets the modification time without checks (building images, restoring).
    pub fn set_mtime(&mut self, path: &str, mtime: i64) -> Result<(), FsError> {
        let node = self.nodes.get_mut(path).ok_or(FsError::NotFound)?;
        node.mtime = mtime;
        self.journal.node(path);
        Ok(())
    }

    /// Sets the modification time as `who` (SFTP `setstat`, `scp -p`): utime(2) with an
    /// explicit time needs the owner or root.
    pub fn utime(&mut self, path: &str, mtime: i64, who: Cred) -> Result<(), FsError> {
        self.check_traverse(path, who)?;
        let node = self.nodes.get(path).ok_or(FsError::NotFound)?;
        if who.uid != 0 && node.uid != who.uid {
            return Err(FsError::NotPermitted);
        }
        self.set_mtime(path, mtime)
    }

    /// Writes a file as root with an owner, for building images (no permission or
    /// space checks: images are small and fixed).
    pub fn install(&mut self, path: &str, data: &[u8], mode: u32, owner: Cred) {
        let p = parent(path).to_string();
        if !self.exists(&p) {
            self.install_dir(&p, 0o755, Cred::ROOT);
        }
        let node = Node {
            kind: NodeKind::File(data.to_vec()),
            mode,
            uid: owner.uid,
            gid: owner.gid,
            mtime: self.now,
        };
        self.put(path, node);
    }

    /// Creates a directory (and its parents) as root with an owner, for building images.
    pub fn install_dir(&mut self, path: &str, mode: u32, owner: Cred) {
        if path != "/" && !self.exists(parent(path)) {
            self.install_dir(parent(path), 0o755, Cred::ROOT);
        }
        let node = Node {
            kind: NodeKind::Dir,
            mode,
            uid: owner.uid,
            gid: owner.gid,
            mtime: self.now,
        };
        self.put(path, node);
    }

    /// Whether anything changed since the changes were last taken.
    pub fn has_changes(&self) -> bool {
        let j = &self.journal;
        j.full || !j.moves.is_empty() || !j.nodes.is_empty() || !j.data.is_empty()
    }

    /// Forgets the journal: the caller's store now matches the tree (it was just
    /// loaded from it).
    pub fn mark_saved(&mut self) {
        self.journal = Journal::default();
    }

    /// Everything must be written again (a save failed after taking its changes).
    pub fn mark_unsaved(&mut self) {
        self.journal.reset();
    }

    /// Takes the next changes to persist, in order, with at most about `max_bytes` of
    /// file data; call again until it returns nothing. Changes made between two calls
    /// are picked up by the later ones.
    pub fn take_changes(&mut self, max_bytes: usize) -> Vec<Change> {
        let mut out = Vec::new();
        if self.journal.full {
            out.push(Change::Reset);
            let mut j = Journal::default();
            for (path, node) in &self.nodes {
                j.nodes.insert(path.clone());
                if !node.is_dir() {
                    j.data.insert(path.clone(), Dirty::All);
                }
            }
            self.journal = j;
        }
        out.append(&mut self.journal.moves);
        for path in std::mem::take(&mut self.journal.nodes) {
            match self.nodes.get(&path) {
                Some(n) => out.push(Change::Node {
                    meta: meta(n),
                    path,
                }),
                // Not reached (removals forget their pending nodes); harmless anyway.
                None => out.push(Change::Remove { path }),
            }
        }
        let mut budget = max_bytes;
        let paths: Vec<String> = self.journal.data.keys().cloned().collect();
        for path in paths {
            let Some(NodeKind::File(buf)) = self.nodes.get(&path).map(|n| &n.kind) else {
                self.journal.data.remove(&path);
                continue;
            };
            let pieces = (buf.len() as u64).div_ceil(CHUNK as u64);
            let Some(dirty) = self.journal.data.get_mut(&path) else {
                continue;
            };
            if *dirty == Dirty::All {
                out.push(Change::ClearData { path: path.clone() });
                *dirty = Dirty::Chunks((0..pieces).collect());
            }
            let Dirty::Chunks(set) = dirty else {
                continue;
            };
            while budget > 0 {
                let Some(index) = set.pop_first() else { break };
                if index >= pieces {
                    // Cut off since: the node's size already drops it.
                    continue;
                }
                let start = (index as usize) * CHUNK;
                let end = (start + CHUNK).min(buf.len());
                let bytes = buf[start..end].to_vec();
                budget = budget.saturating_sub(bytes.len().max(1));
                out.push(Change::Data {
                    path: path.clone(),
                    index,
                    bytes,
                });
            }
            if set.is_empty() {
                self.journal.data.remove(&path);
            }
            if budget == 0 {
                break;
            }
        }
        out
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
    fn issue10_write_at_huge_offset_is_refused_without_allocating() {
        let mut fs = fs();
        let p = "/home/ec2-user/f";
        fs.write(p, b"", false, USER, 0o644).expect("create");
        let used = fs.used();
        // 2^40 aborted the daemon; 8 GiB ate the host's memory.
        for offset in [1u64 << 40, 8 << 30, u64::MAX - 1] {
            assert_eq!(
                fs.write_at(p, Some(offset), b"x", false, USER, 0o644),
                Err(FsError::NoSpace)
            );
            assert_eq!(fs.write_handle(p, offset, b"x"), Err(FsError::NoSpace));
        }
        assert_eq!(fs.used(), used);
        assert_eq!(fs.read(p, USER).map(<[u8]>::len), Ok(0));
        assert_eq!(
            fs.truncate(p, 1 << 40, USER),
            Err(FsError::NoSpace),
            "ftruncate past the volume"
        );
    }

    #[test]
    fn issue10_filling_the_volume_fails_with_enospc_and_memory_stays_bounded() {
        let mut fs = fs();
        fs.set_capacity(1024 * 1024);
        let p = "/home/ec2-user/fill";
        let chunk = vec![7u8; 32 * 1024];
        let mut written = 0;
        loop {
            match fs.write(p, &chunk, true, USER, 0o644) {
                Ok(()) => written += chunk.len(),
                Err(e) => {
                    assert_eq!(e, FsError::NoSpace);
                    assert_eq!(e.to_string(), "No space left on device");
                    break;
                }
            }
            assert!(written <= 1024 * 1024, "wrote past the volume");
        }
        assert!(written > 900 * 1024, "only {written} bytes fit");
        // What the tree holds, growth room included, is within the volume.
        let held: usize = fs
            .nodes
            .values()
            .map(|n| match &n.kind {
                NodeKind::File(d) => d.capacity(),
                NodeKind::Dir => 0,
            })
            .sum();
        assert!(held as u64 <= fs.capacity());
        assert!(fs.used() <= fs.capacity());
        // The refused write changed nothing; others fail too until space is freed.
        assert_eq!(fs.read(p, USER).map(<[u8]>::len), Ok(written));
        assert_eq!(
            fs.write("/home/ec2-user/other", &chunk, false, USER, 0o644),
            Err(FsError::NoSpace)
        );
        fs.remove(p, USER, false).expect("rm");
        fs.write("/home/ec2-user/other", &chunk, false, USER, 0o644)
            .expect("room again");
    }

    #[test]
    fn issue10_user_cannot_replace_root_owned_files_by_renaming() {
        let mut fs = fs();
        fs.install("/etc/hostname", b"ip-10-0-1-5\n", 0o644, Cred::ROOT);
        fs.write("/home/ec2-user/x", b"evil", false, USER, 0o644)
            .expect("w");
        assert_eq!(
            fs.rename("/home/ec2-user/x", "/etc/hostname", USER),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(
            fs.write("/etc/hostname", b"evil", false, USER, 0o644),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(
            fs.utime("/etc/hostname", 1, USER),
            Err(FsError::NotPermitted)
        );
        assert_eq!(
            fs.truncate("/etc/hostname", 0, USER),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(fs.read("/etc/hostname", USER), Ok(&b"ip-10-0-1-5\n"[..]));
    }

    #[test]
    fn sticky_tmp_protects_other_users_files() {
        let mut fs = fs();
        fs.install_dir("/tmp", 0o1777, Cred::ROOT);
        fs.write("/tmp/root.txt", b"r", false, Cred::ROOT, 0o666)
            .expect("w");
        assert_eq!(
            fs.remove("/tmp/root.txt", USER, false),
            Err(FsError::NotPermitted)
        );
        fs.write("/tmp/mine", b"m", false, USER, 0o644).expect("w");
        fs.remove("/tmp/mine", USER, false).expect("own file");
    }

    #[test]
    fn long_names_are_refused() {
        let mut fs = fs();
        let long = format!("/home/ec2-user/{}", "n".repeat(NAME_MAX + 1));
        assert_eq!(
            fs.write(&long, b"", false, USER, 0o644),
            Err(FsError::NameTooLong)
        );
    }

    #[test]
    fn journal_sends_only_the_changed_pieces() {
        let mut fs = fs();
        let p = "/home/ec2-user/big";
        fs.write(p, &vec![1u8; 4 * CHUNK], false, USER, 0o644)
            .expect("w");
        while !fs.take_changes(usize::MAX).is_empty() {}
        fs.write_at(p, Some(2 * CHUNK as u64 + 5), b"zz", false, USER, 0o644)
            .expect("w");
        let changes = fs.take_changes(usize::MAX);
        let data: Vec<u64> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Data { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(data, [2]);
        assert!(fs.take_changes(usize::MAX).is_empty());
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

/// Properties over arbitrary sequences of operations: nothing panics, the space
/// accounting holds, and replaying the journal onto a store gives back the tree.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };
    /// Paths chosen so prefixes collide (`/a` and `/a-x` sort around `/a/`).
    const PATHS: &[&str] = &[
        "/a", "/a/b", "/a/b/c", "/a-x", "/a-x/y", "/d", "/d/e", "/tmp/t", "/", "/tmp",
    ];

    #[derive(Debug, Clone)]
    enum Op {
        Write {
            path: usize,
            offset: Option<u64>,
            len: usize,
            truncate: bool,
            root: bool,
        },
        Handle {
            path: usize,
            offset: u64,
            len: usize,
        },
        Mkdir {
            path: usize,
            parents: bool,
            root: bool,
        },
        Remove {
            path: usize,
            recursive: bool,
            root: bool,
        },
        Rename {
            from: usize,
            to: usize,
            root: bool,
        },
        Truncate {
            path: usize,
            size: u64,
        },
        Chmod {
            path: usize,
            mode: u32,
        },
        Save {
            budget: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let path = 0..PATHS.len();
        let offset = prop_oneof![
            Just(None),
            (0u64..200_000).prop_map(Some),
            Just(Some(1u64 << 40)),
            Just(Some(u64::MAX)),
        ];
        prop_oneof![
            (
                path.clone(),
                offset,
                0usize..100_000,
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(path, offset, len, truncate, root)| Op::Write {
                    path,
                    offset,
                    len,
                    truncate,
                    root
                }),
            (path.clone(), 0u64..300_000, 0usize..70_000)
                .prop_map(|(path, offset, len)| Op::Handle { path, offset, len }),
            (path.clone(), any::<bool>(), any::<bool>()).prop_map(|(path, parents, root)| {
                Op::Mkdir {
                    path,
                    parents,
                    root,
                }
            }),
            (path.clone(), any::<bool>(), any::<bool>()).prop_map(|(path, recursive, root)| {
                Op::Remove {
                    path,
                    recursive,
                    root,
                }
            }),
            (path.clone(), path.clone(), any::<bool>()).prop_map(|(from, to, root)| Op::Rename {
                from,
                to,
                root
            }),
            (path.clone(), prop_oneof![0u64..300_000, Just(u64::MAX)])
                .prop_map(|(path, size)| Op::Truncate { path, size }),
            (path, 0u32..0o10000).prop_map(|(path, mode)| Op::Chmod { path, mode }),
            (1usize..200_000).prop_map(|budget| Op::Save { budget }),
        ]
    }

    /// What a store holds: node metadata and data pieces, keyed by path.
    #[derive(Default)]
    struct Store {
        rows: BTreeMap<String, (NodeMeta, BTreeMap<u64, Vec<u8>>)>,
    }

    impl Store {
        fn subtree(&self, path: &str) -> Vec<String> {
            let prefix = format!("{path}/");
            self.rows
                .keys()
                .filter(|k| *k == path || k.starts_with(&prefix))
                .cloned()
                .collect()
        }

        fn apply(&mut self, change: Change) {
            match change {
                Change::Reset => self.rows.clear(),
                Change::Remove { path } => {
                    for k in self.subtree(&path) {
                        self.rows.remove(&k);
                    }
                }
                Change::Rename { from, to } => {
                    self.rows.remove(&to);
                    for k in self.subtree(&from) {
                        let row = self.rows.remove(&k).expect("listed");
                        self.rows.insert(moved(&k, &from, &to), row);
                    }
                }
                Change::Node { path, meta } => {
                    let row = self
                        .rows
                        .entry(path)
                        .or_insert_with(|| (meta, BTreeMap::new()));
                    row.0 = meta;
                    let pieces = meta.size.div_ceil(CHUNK as u64);
                    row.1.retain(|i, _| *i < pieces);
                }
                Change::ClearData { path } => {
                    if let Some(row) = self.rows.get_mut(&path) {
                        row.1.clear();
                    }
                }
                Change::Data { path, index, bytes } => {
                    if let Some(row) = self.rows.get_mut(&path) {
                        row.1.insert(index, bytes);
                    }
                }
            }
        }

        fn tree(&self) -> BTreeMap<String, (NodeMeta, Vec<u8>)> {
            self.rows
                .iter()
                .map(|(path, (meta, pieces))| {
                    let mut data = vec![0u8; meta.size as usize];
                    for (i, bytes) in pieces {
                        let start = *i as usize * CHUNK;
                        data[start..start + bytes.len()].copy_from_slice(bytes);
                    }
                    (path.clone(), (*meta, data))
                })
                .collect()
        }
    }

    fn flush(fs: &mut Vfs, store: &mut Store, budget: usize) {
        loop {
            let changes = fs.take_changes(budget);
            if changes.is_empty() {
                return;
            }
            for c in changes {
                store.apply(c);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn issue10_vfs_operations_never_panic_and_the_journal_replays(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let mut fs = Vfs::new();
            fs.install_dir("/tmp", 0o1777, Cred::ROOT);
            fs.install_dir("/a", 0o755, USER);
            fs.set_capacity(256 * 1024);
            let mut store = Store::default();
            for op in ops {
                let who = |root: bool| if root { Cred::ROOT } else { USER };
                match op {
                    Op::Write { path, offset, len, truncate, root } => {
                        let data = vec![0xa5; len];
                        let _ = fs.write_at(PATHS[path], offset, &data, truncate, who(root), 0o644);
                    }
                    Op::Handle { path, offset, len } => {
                        let _ = fs.write_handle(PATHS[path], offset, &vec![1; len]);
                    }
                    Op::Mkdir { path, parents, root } => {
                        let _ = fs.mkdir(PATHS[path], who(root), parents, 0o755);
                    }
                    Op::Remove { path, recursive, root } => {
                        let _ = fs.remove(PATHS[path], who(root), recursive);
                    }
                    Op::Rename { from, to, root } => {
                        let _ = fs.rename(PATHS[from], PATHS[to], who(root));
                    }
                    Op::Truncate { path, size } => {
                        let _ = fs.truncate(PATHS[path], size, USER);
                    }
                    Op::Chmod { path, mode } => {
                        let _ = fs.chmod(PATHS[path], mode, USER);
                    }
                    Op::Save { budget } => {
                        // A partial save: later changes must still replay correctly.
                        for c in fs.take_changes(budget) {
                            store.apply(c);
                        }
                    }
                }
                let recount: u64 = fs.nodes.iter().map(|(p, n)| cost(p, n)).sum();
                prop_assert_eq!(fs.used(), recount);
                prop_assert!(fs.used() <= fs.capacity());
                prop_assert!(fs.exists("/"));
            }
            flush(&mut fs, &mut store, 50_000);
            let want: BTreeMap<String, (NodeMeta, Vec<u8>)> = fs
                .nodes
                .iter()
                .map(|(p, n)| {
                    let data = match &n.kind {
                        NodeKind::File(d) => d.clone(),
                        NodeKind::Dir => Vec::new(),
                    };
                    (p.clone(), (meta(n), data))
                })
                .collect();
            prop_assert_eq!(store.tree(), want);
        }
    }
}

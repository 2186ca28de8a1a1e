//! What a learner changed inside an instance, compared with the image it was launched
//! from: the part of an instance's state that a lab report carries, so that an
//! instructor's re-grade sees the files, packages and services the learner set up by
//! hand (over SSH, in the emulated shell) and not only the resources of the API.
//!
//! [`DiskOverlay::diff`] compares a disk with the image's filesystem built for the same
//! instance ([`super::image::build_fs`]). Modification times are not compared (the image
//! stamps its files at launch), so a file counts as changed when its type, content, mode
//! or owner differ. The overlay is bounded: at most `limit` bytes of file content, the
//! smallest files first (marker files and configuration are what checks look at); each
//! file left out is listed in [`DiskOverlay::omitted`] with its size, so the report says
//! what it does not carry.
//!
//! [`DiskOverlay::apply`] puts an overlay onto the fresh disk of another instance built
//! from the same model rows (the re-grade's scratch world): what the learner did not
//! change (the host key, the CA bundle of that world, its resolver) stays that world's.
//!
//! What it leaves to others: where overlays travel (`lab::report`), when they are taken
//! and restored (`lab::service`, `world::instances`). A sandbox's real folders are read
//! by its agent ([`SandboxDisk`]) and turned into the same overlay
//! ([`DiskOverlay::from_sandbox`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::InstanceDisk;
use super::sandbox::link::SandboxDisk;
use super::vfs::{Node, NodeKind, Vfs, normalize, parent};

/// A changed file that did not fit in the overlay's size limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OmittedFile {
    pub path: String,
    pub bytes: u64,
}

/// The difference between an instance's disk and its image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskOverlay {
    /// Files and directories added or changed, by absolute path (content in base64).
    pub nodes: BTreeMap<String, Node>,
    /// Paths of the image that the learner removed.
    pub removed: Vec<String>,
    /// Installed optional packages (`httpd` …).
    pub packages: BTreeSet<String>,
    /// Services enabled at boot (`systemctl enable`).
    pub enabled: BTreeSet<String>,
    /// Services running when the overlay was taken (`systemctl start`, enabled or not).
    pub running: BTreeSet<String>,
    /// Whether first boot (user data) had happened: a restored instance does not run
    /// its user data again.
    pub first_boot_done: bool,
    /// Changed files left out because of the size limit.
    #[serde(default)]
    pub omitted: Vec<OmittedFile>,
}

/// Why an overlay cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    #[error("{0:?} is not an absolute, normalised path")]
    BadPath(String),
    #[error("{0:?} has no parent directory in the restored disk")]
    NoParent(String),
}

impl DiskOverlay {
    /// What `disk` holds beyond `image` (the image's filesystem for the same instance),
    /// with `running` services, taking at most `limit` bytes of file content.
    pub fn diff(image: &Vfs, disk: &InstanceDisk, running: &BTreeSet<String>, limit: u64) -> Self {
        let same = |a: &Node, b: &Node| {
            a.kind == b.kind && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid
        };
        let mut nodes = BTreeMap::new();
        let mut files: Vec<(&String, &Node)> = Vec::new();
        for (path, node) in disk.fs.nodes() {
            if image.get(path).is_some_and(|b| same(node, b)) {
                continue;
            }
            match node.kind {
                NodeKind::Dir => {
                    nodes.insert(path.clone(), node.clone());
                }
                NodeKind::File(_) => files.push((path, node)),
            }
        }
        // Smallest first, then by path: deterministic, and the small files that checks
        // read are the last to be left out.
        files.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)));
        let mut used = 0u64;
        let mut omitted = Vec::new();
        for (path, node) in files {
            let bytes = node.len();
            if used.saturating_add(bytes) <= limit {
                used += bytes;
                nodes.insert(path.clone(), node.clone());
            } else {
                omitted.push(OmittedFile {
                    path: path.clone(),
                    bytes,
                });
            }
        }
        let removed = image
            .nodes()
            .keys()
            .filter(|p| !disk.fs.exists(p))
            .cloned()
            .collect();
        DiskOverlay {
            nodes,
            removed,
            packages: disk.packages.clone(),
            enabled: disk.enabled.clone(),
            running: running.clone(),
            first_boot_done: disk.first_boot_done,
            omitted,
        }
    }

    /// What a sandbox's files and services ([`SandboxDisk`], read by its agent) hold
    /// beyond `image` (the emulated image's filesystem for the same instance), in the
    /// same form as [`DiskOverlay::diff`], so that a re-grade's (emulated) scratch world
    /// boots with them. The sandbox sees every file as uid 0: a file under the default
    /// user's home gets that user's owner from the image, any other root's. Removals are
    /// not carried (the sandbox's folders are not the image's files).
    pub fn from_sandbox(image: &Vfs, disk: SandboxDisk, user: &str, limit: u64) -> Self {
        let home = format!("/home/{user}");
        let owner = image.get(&home).map_or((1000, 1000), |n| (n.uid, n.gid));
        let mut nodes = BTreeMap::new();
        let mut files: Vec<(String, Node)> = Vec::new();
        for (path, mut node) in disk.nodes {
            if path == home || path.starts_with(&format!("{home}/")) {
                (node.uid, node.gid) = owner;
            }
            if let Some(b) = image.get(&path)
                && b.kind == node.kind
                && (node.is_dir() || b.mode == node.mode)
            {
                continue;
            }
            match node.kind {
                NodeKind::Dir => {
                    nodes.insert(path, node);
                }
                NodeKind::File(_) => files.push((path, node)),
            }
        }
        files.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(&b.0)));
        let mut used = 0u64;
        let mut omitted = Vec::new();
        for (path, node) in files {
            let bytes = node.len();
            if used.saturating_add(bytes) <= limit {
                used += bytes;
                nodes.insert(path, node);
            } else {
                omitted.push(OmittedFile { path, bytes });
            }
        }
        DiskOverlay {
            nodes,
            removed: Vec::new(),
            packages: disk.packages.into_iter().collect(),
            enabled: disk.enabled.into_iter().collect(),
            running: disk.running.into_iter().collect(),
            first_boot_done: disk.first_boot_done,
            omitted,
        }
    }

    /// Bytes of file content the overlay carries.
    pub fn content_bytes(&self) -> u64 {
        self.nodes
            .values()
            .filter(|n| !n.is_dir())
            .map(Node::len)
            .sum()
    }

    /// SHA-256 of the overlay's JSON (hex): what a report records beside it.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Puts the overlay onto `disk` (a fresh instance's): removes what the learner
    /// removed, writes what they added or changed, and takes their packages and
    /// services. A path that is not absolute and normalised, or whose parent would not
    /// be a directory, is refused and `disk` is left as it was.
    pub fn apply(&self, disk: &mut InstanceDisk) -> Result<(), OverlayError> {
        let valid = |p: &String| p.starts_with('/') && normalize("/", p) == *p;
        if let Some(p) = self.nodes.keys().chain(&self.removed).find(|p| !valid(p)) {
            return Err(OverlayError::BadPath(p.clone()));
        }
        let mut map = disk.fs.nodes().clone();
        for gone in &self.removed {
            let below = format!("{gone}/");
            map.retain(|p, _| p != gone && !p.starts_with(&below));
        }
        for (path, node) in &self.nodes {
            map.insert(path.clone(), node.clone());
        }
        if let Some(p) = map
            .keys()
            .filter(|p| p.as_str() != "/")
            .find(|p| !map.get(parent(p)).is_some_and(Node::is_dir))
        {
            return Err(OverlayError::NoParent(p.clone()));
        }
        let capacity = disk.fs.capacity();
        disk.fs = Vfs::from_nodes(map);
        disk.fs.set_capacity(capacity);
        disk.packages = self.packages.clone();
        disk.enabled = self.enabled.clone();
        disk.first_boot_done = self.first_boot_done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::vfs::Cred;
    use crate::instance::{HostKey, Image, InstanceProfile, image};

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    fn fresh() -> (InstanceProfile, InstanceDisk) {
        let p = InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        let d = InstanceDisk::fresh(&p, HostKey::from_seed([1; 32]));
        (p, d)
    }

    /// A sandbox's files as its agent reads them (all uid 0): what the image already
    /// has stays out, a new file in the default user's home is theirs in the overlay,
    /// and it applies to a fresh emulated disk with its packages and services.
    #[test]
    fn a_sandboxs_files_become_an_overlay_owned_as_on_the_image() {
        let (p, mut disk) = fresh();
        let image = image::build_fs(&p);
        let node = |kind, mode| Node {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        let mut read = SandboxDisk::default();
        read.nodes
            .insert("/home/ec2-user".into(), node(NodeKind::Dir, 0o700));
        read.nodes.insert(
            "/home/ec2-user/notes.txt".into(),
            node(NodeKind::File(b"by hand\n".to_vec()), 0o644),
        );
        read.nodes
            .insert("/opt/app".into(), node(NodeKind::Dir, 0o755));
        read.packages = vec!["httpd".into()];
        read.running = vec!["httpd".into()];
        read.first_boot_done = true;
        let o = DiskOverlay::from_sandbox(&image, read, "ec2-user", 1 << 20);
        assert!(!o.nodes.contains_key("/home/ec2-user"), "the image has it");
        let notes = &o.nodes["/home/ec2-user/notes.txt"];
        assert_eq!((notes.uid, notes.gid), (USER.uid, USER.gid));
        assert_eq!(o.nodes["/opt/app"].uid, 0);
        assert!(o.removed.is_empty());
        o.apply(&mut disk).expect("applies");
        assert!(disk.packages.contains("httpd"));
        assert!(disk.fs.exists("/home/ec2-user/notes.txt"));
        // Over the limit, the file is listed as left out.
        let mut read = SandboxDisk::default();
        read.nodes.insert(
            "/home/ec2-user/big".into(),
            node(NodeKind::File(vec![0; 100]), 0o644),
        );
        let o = DiskOverlay::from_sandbox(&image, read, "ec2-user", 10);
        assert_eq!(
            o.omitted,
            [OmittedFile {
                path: "/home/ec2-user/big".into(),
                bytes: 100
            }]
        );
    }

    #[test]
    fn an_untouched_disk_has_an_empty_overlay_and_changes_travel_to_another_disk() {
        let (p, mut disk) = fresh();
        let none = DiskOverlay::diff(&image::build_fs(&p), &disk, &BTreeSet::new(), 1 << 20);
        assert!(none.nodes.is_empty() && none.removed.is_empty(), "{none:?}");

        disk.fs
            .write(
                "/home/ec2-user/notes.txt",
                b"done by hand\n",
                false,
                USER,
                0o644,
            )
            .expect("write");
        disk.fs
            .chmod("/home/ec2-user/.bashrc", 0o600, USER)
            .expect("chmod");
        disk.fs
            .remove("/var/log/cloud-init.log", Cred::ROOT, false)
            .expect("rm");
        disk.packages.insert("httpd".into());
        disk.enabled.insert("httpd".into());
        disk.first_boot_done = true;
        let running = BTreeSet::from(["httpd".to_string()]);
        let o = DiskOverlay::diff(&image::build_fs(&p), &disk, &running, 1 << 20);
        assert_eq!(
            o.nodes.keys().collect::<Vec<_>>(),
            ["/home/ec2-user/.bashrc", "/home/ec2-user/notes.txt"]
        );
        assert_eq!(o.removed, ["/var/log/cloud-init.log"]);

        // Another instance of the same image (another host key): the learner's changes
        // appear on it, its own host key stays.
        let (_, mut other) = fresh();
        other.host_key = HostKey::from_seed([2; 32]);
        o.apply(&mut other).expect("apply");
        assert_eq!(
            other
                .fs
                .read("/home/ec2-user/notes.txt", USER)
                .expect("read"),
            b"done by hand\n"
        );
        assert_eq!(
            other.fs.get("/home/ec2-user/.bashrc").expect("bashrc").mode,
            0o600
        );
        assert!(!other.fs.exists("/var/log/cloud-init.log"));
        assert!(other.packages.contains("httpd") && other.first_boot_done);
        assert_eq!(other.host_key, HostKey::from_seed([2; 32]));
        // Round trip through JSON (the report) keeps it, digest included.
        let back: DiskOverlay =
            serde_json::from_str(&serde_json::to_string(&o).expect("json")).expect("parse");
        assert_eq!(back.digest(), o.digest());
    }

    #[test]
    fn the_size_limit_keeps_the_smallest_files_and_lists_the_rest() {
        let (p, mut disk) = fresh();
        disk.fs
            .write("/tmp/big", &[7u8; 5000], false, USER, 0o644)
            .expect("write");
        disk.fs
            .write("/tmp/small", b"x", false, USER, 0o644)
            .expect("write");
        disk.fs
            .mkdir("/tmp/dir", USER, false, 0o755)
            .expect("mkdir");
        let o = DiskOverlay::diff(&image::build_fs(&p), &disk, &BTreeSet::new(), 100);
        assert!(o.nodes.contains_key("/tmp/small") && o.nodes.contains_key("/tmp/dir"));
        assert_eq!(
            o.omitted,
            [OmittedFile {
                path: "/tmp/big".into(),
                bytes: 5000
            }]
        );
        assert_eq!(o.content_bytes(), 1);
    }

    #[test]
    fn a_bad_path_or_an_orphan_is_refused_and_the_disk_is_unchanged() {
        let (_, mut disk) = fresh();
        let before = disk.clone();
        let node = disk.fs.get("/etc/hostname").expect("hostname").clone();
        for (path, want) in [
            (
                "/etc/../root/x",
                OverlayError::BadPath("/etc/../root/x".into()),
            ),
            ("relative", OverlayError::BadPath("relative".into())),
            (
                "/no/such/dir/x",
                OverlayError::NoParent("/no/such/dir/x".into()),
            ),
        ] {
            let o = DiskOverlay {
                nodes: BTreeMap::from([(path.to_string(), node.clone())]),
                ..DiskOverlay::default()
            };
            assert_eq!(o.apply(&mut disk), Err(want));
            assert_eq!(disk, before);
        }
    }
}

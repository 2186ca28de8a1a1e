//! EBS data volumes inside an instance: the block devices `lsblk` lists, the filesystem
//! `mkfs` writes and what `mount` shows under a directory.
//!
//! A volume's contents live outside any instance, in one file per volume
//! (`<volume dir>/<vol-id>.json`: the filesystem type `mkfs` chose and the files, with
//! their owners and modes), so they follow the volume from one instance to another. A
//! snapshot is the same kind of file (`<snap-id>.json`); a volume made from a snapshot and
//! never written reads the snapshot's file.
//!
//! Mounting copies the volume's files into the instance's tree under the mount point and
//! records the mount in the instance's disk ([`InstanceDisk::mounts`], saved with it);
//! unmounting (`umount`, a detach, the instance stopping) writes them back to the
//! volume's file and removes them from the tree. So what a learner writes under
//! `/data` is on the volume once it is unmounted or detached, as with a real
//! filesystem's `sync` on unmount. The files count against the root volume's emulated
//! capacity while mounted (see `docs/fidelity.md`).
//!
//! Device names: a Xen instance type (t2, m4, c4 …) shows `/dev/sdf` as `xvdf`; a Nitro
//! type (t3, m5 …) shows NVMe devices `nvme1n1`, `nvme2n1` … in attachment order, as
//! AWS's "Device names on Linux instances" describes; the API name (`/dev/sdf`) works as
//! well (Amazon Linux's udev rules link it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::vfs::{Cred, Node, NodeKind};
use super::{InstanceProfile, InstanceState};

/// A data volume attached to the instance, as the runtime hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedVolume {
    pub volume_id: String,
    /// The API's device name (`/dev/sdf`).
    pub device: String,
    pub size_gib: u32,
    pub snapshot_id: Option<String>,
}

/// A mount the instance has made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub volume_id: String,
    /// The kernel's device name (`xvdf`, `nvme1n1`).
    pub device: String,
    pub fs_type: String,
    /// The mount point's own directory as it was before the mount (put back after).
    pub covered: Node,
}

/// What a volume holds: `fs_type` is `None` until `mkfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeData {
    pub fs_type: Option<String>,
    /// Paths relative to the filesystem's root (`/` is the root itself).
    pub nodes: BTreeMap<String, Node>,
}

/// Instance families on the Xen hypervisor (the others are Nitro).
const XEN_FAMILIES: &[&str] = &[
    "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3", "d2", "x1",
    "x1e", "p2", "p3", "g3", "f1", "h1",
];

/// Whether the instance type runs on Xen (`xvd*` devices) rather than Nitro (NVMe).
pub fn is_xen(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or("");
    XEN_FAMILIES.contains(&family)
}

/// The root disk's kernel name (`xvda` or `nvme0n1`) and its partition (`xvda1`,
/// `nvme0n1p1`).
pub fn root_device(instance_type: &str) -> (&'static str, &'static str) {
    if is_xen(instance_type) {
        ("xvda", "xvda1")
    } else {
        ("nvme0n1", "nvme0n1p1")
    }
}

/// The kernel's name for the data volume at `index` (0-based) of the profile's list.
pub fn kernel_name(instance_type: &str, v: &AttachedVolume, index: usize) -> String {
    if is_xen(instance_type) {
        let slot = v
            .device
            .strip_prefix("/dev/sd")
            .or_else(|| v.device.strip_prefix("/dev/xvd"))
            .unwrap_or("f");
        format!("xvd{slot}")
    } else {
        format!("nvme{}n1", index + 1)
    }
}

impl InstanceProfile {
    /// The attached data volume a device path names (`/dev/xvdf`, `/dev/sdf`,
    /// `/dev/nvme1n1`), with its kernel name.
    pub fn volume_for_device(&self, path: &str) -> Option<(AttachedVolume, String)> {
        let name = path.strip_prefix("/dev/")?;
        self.volumes.iter().enumerate().find_map(|(i, v)| {
            let k = kernel_name(&self.instance_type, v, i);
            (k == name || v.device == path).then(|| (v.clone(), k))
        })
    }
}

/// A stable, UUID-shaped string for a filesystem (what `lsblk -f` and `blkid` show,
/// and what an `/etc/fstab` line names with `UUID=`).
pub fn fake_uuid(seed: &str) -> String {
    let h = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let g = h.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        g >> 48,
        g & 0xffff_ffff_ffff
    )
}

/// One `/etc/fstab` line: `SPEC DIR TYPE OPTIONS [DUMP [PASS]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// `/dev/xvdf`, `/dev/sdf`, `/dev/nvme1n1` or `UUID=…`.
    pub spec: String,
    pub dir: String,
    pub fs_type: String,
    pub options: Vec<String>,
}

impl FstabEntry {
    pub fn has(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// The entries of an `/etc/fstab` (comments and blank lines skipped; a line with fewer
/// than four fields is ignored, as `mount` warns and goes on).
pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| FstabEntry {
                spec: f[0].to_string(),
                dir: f[1].to_string(),
                fs_type: f[2].to_string(),
                options: f[3].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Reads a volume's or snapshot's file; `Ok(None)` when it has none.
pub fn read_data(dir: &Path, id: &str) -> std::io::Result<Option<VolumeData>> {
    match std::fs::read(file_of(dir, id)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A volume's contents: its own file, else its snapshot's, else blank.
pub fn load(dir: &Path, v: &AttachedVolume) -> std::io::Result<VolumeData> {
    if let Some(d) = read_data(dir, &v.volume_id)? {
        return Ok(d);
    }
    if let Some(s) = &v.snapshot_id
        && let Some(d) = read_data(dir, s)?
    {
        return Ok(d);
    }
    Ok(VolumeData::default())
}

/// Writes a volume's or snapshot's file durably (temporary file, fsync, rename).
pub fn save(dir: &Path, id: &str, data: &VolumeData) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(data).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{id}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file_of(dir, id))
}

/// Removes a volume's or snapshot's file (it was deleted).
pub fn remove(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(file_of(dir, id));
}

/// The ids with a file in `dir` (`vol-…`, `snap-…`).
pub fn stored_ids(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .filter(|id| !id.starts_with('.'))
        .collect()
}

/// The files of a filesystem `mkfs` just made: an empty root (and ext4's `lost+found`).
pub fn formatted(fs_type: &str, now: i64) -> VolumeData {
    let dir = |mode| Node {
        kind: NodeKind::Dir,
        mode,
        uid: 0,
        gid: 0,
        mtime: now,
    };
    let mut nodes = BTreeMap::new();
    nodes.insert("/".to_string(), dir(0o755));
    if fs_type.starts_with("ext") {
        nodes.insert("/lost+found".to_string(), dir(0o700));
    }
    VolumeData {
        fs_type: Some(fs_type.to_string()),
        nodes,
    }
}

impl InstanceState {
    /// Where volume files live (`None`: the runtime gave no place; volumes cannot be
    /// formatted or mounted).
    pub fn volume_dir(&self) -> Option<PathBuf> {
        self.profile().volume_dir
    }

    /// Mounts `v` (kernel name `device`) on `dir`. Errors are `mount`'s messages.
    pub fn mount_volume(&self, v: &AttachedVolume, device: &str, dir: &str) -> Result<(), String> {
        let store = self
            .volume_dir()
            .ok_or_else(|| format!("mount: {dir}: cannot read /dev/{device}."))?;
        let data = load(&store, v).map_err(|e| format!("mount: /dev/{device}: {e}."))?;
        let Some(fs_type) = data.fs_type.clone() else {
            return Err(format!(
                "mount: {dir}: wrong fs type, bad option, bad superblock on /dev/{device}, missing codepage or helper program, or other error."
            ));
        };
        let mut disk = self.lock_disk();
        if disk.mounts.values().any(|m| m.volume_id == v.volume_id) {
            return Err(format!(
                "mount: {dir}: /dev/{device} already mounted on {}.",
                disk.mounts
                    .iter()
                    .find(|(_, m)| m.volume_id == v.volume_id)
                    .map(|(p, _)| p.as_str())
                    .unwrap_or("?")
            ));
        }
        if disk.mounts.contains_key(dir) {
            return Err(format!(
                "mount: {dir}: {dir} already mounted or mount point busy."
            ));
        }
        let covered = match disk.fs.get(dir) {
            Some(n) if n.is_dir() => n.clone(),
            Some(_) => return Err(format!("mount: {dir}: mount point is not a directory.")),
            None => return Err(format!("mount: {dir}: mount point does not exist.")),
        };
        if disk
            .fs
            .list(dir, Cred::ROOT)
            .is_ok_and(|entries| !entries.is_empty())
        {
            // Linux would hide the directory's files under the mount; vpclab keeps one
            // tree, so it asks for an empty mount point.
            return Err(format!(
                "mount: {dir}: vpclab mounts volumes on empty directories only; {dir} has files."
            ));
        }
        disk.fs.graft(dir, &data.nodes);
        disk.mounts.insert(
            dir.to_string(),
            Mount {
                volume_id: v.volume_id.clone(),
                device: device.to_string(),
                fs_type,
                covered,
            },
        );
        Ok(())
    }

    /// Writes the files under a mount back to its volume's file (without unmounting).
    pub fn sync_mount(&self, dir: &str) -> std::io::Result<()> {
        let Some(store) = self.volume_dir() else {
            return Ok(());
        };
        let disk = self.lock_disk();
        let Some(m) = disk.mounts.get(dir) else {
            return Ok(());
        };
        let data = VolumeData {
            fs_type: Some(m.fs_type.clone()),
            nodes: disk.fs.subtree(dir),
        };
        save(&store, &m.volume_id, &data)
    }

    /// Unmounts `dir`: its files go back to the volume, the directory is as before.
    pub fn unmount(&self, dir: &str) -> std::io::Result<()> {
        self.sync_mount(dir)?;
        let mut disk = self.lock_disk();
        if let Some(m) = disk.mounts.remove(dir) {
            disk.fs.prune(dir, m.covered);
        }
        Ok(())
    }

    /// Mounts whose volume is no longer attached (a detach, a forced detach) are
    /// unmounted; with `all`, every mount (the instance stops: its kernel unmounts
    /// everything on the way down).
    pub fn unmount_detached(&self, all: bool) {
        let attached: Vec<String> = self
            .profile()
            .volumes
            .iter()
            .map(|v| v.volume_id.clone())
            .collect();
        let gone: Vec<String> = self.with_disk(|d| {
            d.mounts
                .iter()
                .filter(|(_, m)| all || !attached.contains(&m.volume_id))
                .map(|(p, _)| p.clone())
                .collect()
        });
        for dir in gone {
            if let Err(e) = self.unmount(&dir) {
                tracing::error!(instance = %self.profile().instance_id, %dir, error = %e, "cannot write the volume back");
            }
        }
    }

    /// Mounts the `/etc/fstab` entries that name a data volume (by device or by the
    /// `UUID=` of its filesystem) and are not mounted yet, as `mount -a` and the boot do.
    /// The root filesystem's and other entries (`proc`, `tmpfs` …) are left alone;
    /// `noauto` entries are skipped. Returns each failure's message with whether the
    /// entry had `nofail`.
    pub fn mount_fstab(&self) -> Vec<(String, bool)> {
        let text = self.with_disk(|d| {
            d.fs.read("/etc/fstab", Cred::ROOT)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        });
        let p = self.profile();
        let mut failures = Vec::new();
        for e in parse_fstab(&text) {
            if e.dir == "/"
                || e.has("noauto")
                || !(e.spec.starts_with("/dev/") || e.spec.starts_with("UUID="))
            {
                continue;
            }
            if self.with_disk(|d| d.mounts.contains_key(&e.dir)) {
                continue;
            }
            let found = match e.spec.strip_prefix("UUID=") {
                Some(uuid) => p.volumes.iter().enumerate().find_map(|(i, v)| {
                    (fake_uuid(&v.volume_id) == uuid.to_ascii_lowercase())
                        .then(|| (v.clone(), kernel_name(&p.instance_type, v, i)))
                }),
                None => p.volume_for_device(&e.spec),
            };
            let nofail = e.has("nofail");
            let Some((v, kname)) = found else {
                failures.push((
                    format!(
                        "mount: {}: special device {} does not exist.",
                        e.dir, e.spec
                    ),
                    nofail,
                ));
                continue;
            };
            if let Err(m) = self.mount_volume(&v, &kname, &e.dir) {
                failures.push((m, nofail));
            }
        }
        failures
    }

    /// The volume mounted from `volume_id`, if any (its mount point).
    pub fn mount_of(&self, volume_id: &str) -> Option<String> {
        self.with_disk(|d| {
            d.mounts
                .iter()
                .find(|(_, m)| m.volume_id == volume_id)
                .map(|(p, _)| p.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::{FakeNet, Image};

    fn vol() -> AttachedVolume {
        AttachedVolume {
            volume_id: "vol-1".into(),
            device: "/dev/sdf".into(),
            size_gib: 8,
            snapshot_id: None,
        }
    }

    #[test]
    fn device_names_follow_the_hypervisor() {
        assert_eq!(kernel_name("t2.micro", &vol(), 0), "xvdf");
        assert_eq!(kernel_name("t3.micro", &vol(), 0), "nvme1n1");
        assert_eq!(root_device("t3.micro").0, "nvme0n1");
    }

    #[test]
    fn files_written_under_a_mount_go_to_the_volume_on_unmount() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = InstanceProfile::example(Image::AmazonLinux2023, "10.0.0.5".parse().unwrap());
        p.volumes = vec![vol()];
        p.volume_dir = Some(dir.path().to_path_buf());
        let net: std::sync::Arc<dyn crate::instance::InstanceNet> =
            FakeNet::new("10.0.0.5".parse().unwrap(), 24, "02:00:0a:00:00:05");
        let a = InstanceState::launch(p.clone(), net.clone());
        assert!(
            a.mount_volume(&vol(), "xvdf", "/mnt")
                .unwrap_err()
                .contains("wrong fs type")
        );
        save(dir.path(), "vol-1", &formatted("xfs", 0)).unwrap();
        a.mount_volume(&vol(), "xvdf", "/mnt").unwrap();
        a.lock_disk()
            .fs
            .write("/mnt/hello.txt", b"hi", false, Cred::ROOT, 0o644)
            .unwrap();
        a.unmount("/mnt").unwrap();
        assert!(!a.with_disk(|d| d.fs.exists("/mnt/hello.txt")));
        assert!(a.with_disk(|d| d.fs.is_dir("/mnt")));
        let b = InstanceState::launch(p, net);
        b.mount_volume(&vol(), "xvdf", "/mnt").unwrap();
        assert_eq!(
            b.with_disk(|d| d.fs.read("/mnt/hello.txt", Cred::ROOT).map(|x| x.to_vec()))
                .unwrap(),
            b"hi"
        );
    }
}

//! CPU and memory limits of the instance type, with cgroup v2, where this daemon may
//! set them without root.
//!
//! An unprivileged process may create cgroups only in a subtree delegated to its user
//! (systemd's `Delegate=yes`: the directory and its `cgroup.procs`,
//! `cgroup.subtree_control` files belong to the user). [`Cgroups::detect`] checks that
//! `/sys/fs/cgroup` is the unified (v2) hierarchy, that the daemon's own cgroup offers
//! the `memory` and `cpu` controllers and that it may write there; it then moves the
//! daemon into a leaf `vpclab-daemon` (a v2 cgroup that hands controllers to its
//! children may hold no processes itself) and enables both controllers for children.
//! Each sandbox then gets a child cgroup named after the instance with `memory.max` (the
//! type's memory), `memory.swap.max` 0 (EC2 instances have no swap unless the learner
//! makes some) and `cpu.max` (the type's vCPUs worth of CPU time per period). Where any
//! check fails, instances run without limits and the reason is said once, in the
//! runtime's line of `vpclab up` and `vpclab status`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the cgroup hierarchy is mounted.
const MOUNT: &str = "/sys/fs/cgroup";
/// The scheduler period `cpu.max` is written with (the kernel's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;
/// The leaf the daemon moves itself into.
const DAEMON_LEAF: &str = "vpclab-daemon";

/// The daemon's delegated cgroup, ready for one child per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroups {
    base: PathBuf,
}

/// What a cgroup of one instance limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub vcpus: u32,
    pub memory_mib: u64,
}

impl Limits {
    /// The limits of an instance type; `None` for a type the catalog does not know.
    pub fn of_type(instance_type: &str) -> Option<Limits> {
        crate::catalog::instance_type(instance_type).map(|t| Limits {
            vcpus: t.vcpus,
            memory_mib: t.memory_mib,
        })
    }

    /// The (file, value) pairs written into the instance's cgroup.
    pub fn files(&self) -> [(&'static str, String); 3] {
        [
            ("memory.max", (self.memory_mib * 1024 * 1024).to_string()),
            ("memory.swap.max", "0".to_string()),
            (
                "cpu.max",
                format!("{} {CPU_PERIOD_US}", u64::from(self.vcpus) * CPU_PERIOD_US),
            ),
        ]
    }
}

/// One instance's cgroup: its directory and an open `cgroup.procs`, which the sandbox's
/// first process writes itself into before it runs `bwrap` ([`InstanceCgroup::join_fd`]),
/// so nothing of the sandbox ever runs outside the limits. Dropping it removes the
/// directory once the sandbox's processes are gone.
#[derive(Debug)]
pub struct InstanceCgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

impl InstanceCgroup {
    /// The descriptor of the cgroup's `cgroup.procs` (writing `0` moves the writer).
    pub fn join_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        // The kernel refuses while the killed sandbox's processes are still exiting:
        // try for a while in the background (a later start reuses the directory).
        let dir = std::mem::take(&mut self.dir);
        if std::fs::remove_dir(&dir).is_err() && dir.exists() {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        return;
                    }
                }
            });
        }
    }
}

impl Cgroups {
    /// The daemon's delegated cgroup (the parent of the instances' cgroups).
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Checks this machine and prepares the daemon's cgroup, or says why limits cannot
    /// be set here.
    pub fn detect() -> Result<Cgroups, String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let base = delegated_dir(Path::new(MOUNT), &mounts, &own)?;
        Cgroups::prepare(base, std::process::id())
    }

    /// Moves `pid` (the daemon) into the leaf and enables the controllers for the
    /// children of `base`.
    fn prepare(base: PathBuf, pid: u32) -> Result<Cgroups, String> {
        let shown = base.display().to_string();
        let leaf = base.join(DAEMON_LEAF);
        std::fs::create_dir_all(&leaf)
            .map_err(|e| format!("cannot create a cgroup in {shown}: {e}"))?;
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("cannot move the daemon into {}: {e}", leaf.display()))?;
        std::fs::write(base.join("cgroup.subtree_control"), "+memory +cpu").map_err(|e| {
            format!(
                "cannot enable the memory and cpu controllers in {shown}: {e} (other \
                 processes share the cgroup: start vpclab in a delegated cgroup of its \
                 own, e.g. `systemd-run --user --scope -p Delegate=yes vpclab up`)"
            )
        })?;
        Ok(Cgroups { base })
    }

    /// A cgroup for `instance_id` with `limits`, ready to be joined.
    pub fn instance(&self, instance_id: &str, limits: Limits) -> io::Result<InstanceCgroup> {
        let dir = self.base.join(instance_id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for (file, value) in limits.files() {
            let path = dir.join(file);
            // `memory.swap.max` exists only with swap accounting: skip it when absent.
            if file == "memory.swap.max" && !path.exists() {
                continue;
            }
            std::fs::write(&path, &value).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {value}: {e}", path.display()))
            })?;
        }
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?;
        Ok(InstanceCgroup {
            dir,
            procs: procs.into(),
        })
    }
}

/// The daemon's own cgroup directory, if it is in a v2 hierarchy with the memory and
/// cpu controllers and writable by this process; else why not. `mounts` is the text of
/// `/proc/self/mounts`, `own` that of `/proc/self/cgroup`.
fn delegated_dir(mount: &Path, mounts: &str, own: &str) -> Result<PathBuf, String> {
    let at = mount.to_string_lossy();
    let fs_type = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next(), f.next()?, f.next()?);
            (point == at).then_some(kind)
        })
        // The last mount at the point is the one in effect.
        .next_back();
    match fs_type {
        Some("cgroup2") => {}
        Some(other) => {
            return Err(format!(
                "{at} is a cgroup v1 or hybrid hierarchy ({other}), where an unprivileged \
                 daemon cannot be delegated the memory and cpu controllers"
            ));
        }
        None => return Err(format!("no cgroup hierarchy is mounted at {at}")),
    }
    let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Err("this process is in no cgroup v2 (no `0::` line in /proc/self/cgroup)".into());
    };
    let mut dir = mount.join(path.trim().trim_start_matches('/'));
    // A daemon started earlier by this process (a test, a restart) already moved it
    // into the leaf: the delegated cgroup is the leaf's parent.
    if dir.file_name().is_some_and(|n| n == DAEMON_LEAF)
        && let Some(parent) = dir.parent()
    {
        dir = parent.to_path_buf();
    }
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let offered: Vec<&str> = controllers.split_whitespace().collect();
    if !(offered.contains(&"memory") && offered.contains(&"cpu")) {
        return Err(format!(
            "the daemon's cgroup {} does not offer the memory and cpu controllers \
             (offered: {})",
            dir.display(),
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(" ")
            }
        ));
    }
    // Opening for writing changes nothing; only the owner of a delegated subtree may.
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.subtree_control"))
        .is_ok();
    if !writable {
        return Err(format!(
            "the daemon's cgroup {} is not delegated to this user",
            dir.display()
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";

    /// A fake cgroup v2 mount in a temporary folder: `user.slice/me` offering `offered`.
    fn fake(offered: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let me = t.path().join("user.slice/me");
        std::fs::create_dir_all(&me).expect("mkdir");
        std::fs::write(me.join("cgroup.controllers"), offered).expect("write");
        std::fs::write(me.join("cgroup.subtree_control"), "").expect("write");
        (t, me)
    }

    fn mounts_at(mount: &Path, kind: &str) -> String {
        format!("{kind} {} {kind} rw 0 0\n", mount.display())
    }

    #[test]
    fn a_t2_micro_gets_one_gib_and_one_cpu_and_an_m5_large_two() {
        let micro = Limits::of_type("t2.micro").expect("t2.micro");
        assert_eq!(
            micro.files(),
            [
                ("memory.max", "1073741824".to_string()),
                ("memory.swap.max", "0".to_string()),
                ("cpu.max", "100000 100000".to_string()),
            ]
        );
        let large = Limits::of_type("m5.large").expect("m5.large");
        assert_eq!(large.files()[0].1, (8u64 << 30).to_string());
        assert_eq!(large.files()[2].1, "200000 100000");
        assert_eq!(Limits::of_type("x9.nothing"), None);
    }

    #[test]
    fn a_v1_or_hybrid_machine_is_refused_with_the_reason() {
        let hybrid =
            "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        let err = delegated_dir(Path::new("/sys/fs/cgroup"), hybrid, "0::/\n").unwrap_err();
        assert!(err.contains("cgroup v1 or hybrid"), "{err}");
        let err = delegated_dir(Path::new("/sys/fs/cgroup"), "", "0::/\n").unwrap_err();
        assert!(err.contains("no cgroup hierarchy"), "{err}");
        let err = delegated_dir(Path::new("/sys/fs/cgroup"), V2, "4:memory:/x\n").unwrap_err();
        assert!(err.contains("no cgroup v2"), "{err}");
    }

    #[test]
    fn a_cgroup_without_the_controllers_is_refused_and_one_with_them_is_used() {
        let (t, me) = fake("pids io");
        let mounts = mounts_at(t.path(), "cgroup2");
        let err = delegated_dir(t.path(), &mounts, "0::/user.slice/me\n").unwrap_err();
        assert!(err.contains("offered: pids io"), "{err}");

        std::fs::write(me.join("cgroup.controllers"), "cpuset cpu io memory pids").unwrap();
        let dir = delegated_dir(t.path(), &mounts, "0::/user.slice/me\n").expect("usable");
        assert_eq!(dir, me);
        // Already moved into the daemon's leaf: the same delegated cgroup, not a new level.
        let again = delegated_dir(t.path(), &mounts, "0::/user.slice/me/vpclab-daemon\n");
        assert_eq!(again, Ok(me));
    }

    #[test]
    fn an_instance_cgroup_gets_the_type_limits_and_the_daemon_a_leaf_of_its_own() {
        let (_t, me) = fake("cpu memory");
        let cg = Cgroups::prepare(me.clone(), 4242).expect("prepare");
        assert_eq!(
            std::fs::read_to_string(me.join("vpclab-daemon/cgroup.procs")).unwrap(),
            "4242"
        );
        assert_eq!(
            std::fs::read_to_string(me.join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu"
        );
        // The kernel makes these files in a new cgroup; the fake makes them by hand.
        let dir = me.join("i-0123");
        std::fs::create_dir(&dir).unwrap();
        for f in ["cgroup.procs", "memory.max", "cpu.max"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let limits = Limits::of_type("t3.small").expect("t3.small");
        let inst = cg.instance("i-0123", limits).expect("instance cgroup");
        assert_eq!(inst.dir(), dir);
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            (2u64 << 30).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "200000 100000"
        );
        // No swap accounting here: the file was absent and is not invented.
        assert!(!dir.join("memory.swap.max").exists());
        assert!(inst.join_fd() >= 0);
    }
}

//! Block devices and filesystems: `lsblk`, `df`, `mkfs` (`mkfs.xfs`, `mkfs.ext4`),
//! `mount`, `umount` and `file -s` on a device — what a learner types to use a new EBS
//! volume. The volumes and their contents are [`crate::instance::volumes`]'; these
//! commands print what the util-linux and xfsprogs/e2fsprogs programs print, trimmed.

use super::{Io, Shell};
use crate::instance::volumes::{self, fake_uuid, kernel_name, root_device};

/// `12G`, `500M`: lsblk's and `df -h`'s sizes.
fn human_gib(gib: u32) -> String {
    format!("{gib}G")
}

/// The root volume's line(s) and one per data volume, with mount points.
pub(super) fn lsblk(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let fs_col = args.iter().any(|a| a == "-f" || a == "--fs");
    let p = sh.inst.profile();
    let (disk, part) = root_device(&p.instance_type);
    let xen = volumes::is_xen(&p.instance_type);
    let major = if xen { 202 } else { 259 };
    let mounts = sh.inst.with_disk(|d| d.mounts.clone());
    if fs_col {
        io.out.line("NAME        FSTYPE FSVER LABEL UUID                                 FSAVAIL FSUSE% MOUNTPOINTS");
        io.out.line(disk);
        io.out.line(&format!(
            "└─{part:<9} xfs          /     {}",
            fake_uuid(&p.instance_id)
        ));
    } else {
        io.out
            .line("NAME        MAJ:MIN RM SIZE RO TYPE MOUNTPOINTS");
        io.out.line(&format!(
            "{disk:<11} {major}:0 {:>5} {:>4}  0 disk ",
            0,
            human_gib(p.root_volume_gib)
        ));
        io.out.line(&format!(
            "└─{part:<9} {major}:1 {:>5} {:>4}  0 part /",
            0,
            human_gib(p.root_volume_gib)
        ));
    }
    for (i, v) in p.volumes.iter().enumerate() {
        let name = kernel_name(&p.instance_type, v, i);
        let mp = mounts
            .iter()
            .find(|(_, m)| m.volume_id == v.volume_id)
            .map(|(dir, _)| dir.clone())
            .unwrap_or_default();
        if fs_col {
            let fs = p
                .volume_dir
                .as_deref()
                .and_then(|d| volumes::load(d, v).ok())
                .and_then(|d| d.fs_type)
                .unwrap_or_default();
            io.out.line(&format!(
                "{name:<11} {fs:<6}                                                          {mp}"
            ));
        } else {
            let minor = if xen { 16 * (i + 5) } else { 4 * (i + 1) };
            io.out.line(&format!(
                "{name:<11} {major}:{minor:<3} 0 {:>4}  0 disk {mp}",
                human_gib(v.size_gib)
            ));
        }
    }
    0
}

/// `blkid [DEVICE…]`: the formatted data volumes with their filesystem's UUID and type
/// (root only, as blkid reads the devices); the root partition comes first.
pub(super) fn blkid(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    if sh.cred().uid != 0 {
        return 2;
    }
    let p = sh.inst.profile();
    let wanted: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut lines = Vec::new();
    if wanted.is_empty() {
        let (_, part) = root_device(&p.instance_type);
        lines.push(format!(
            "/dev/{part}: LABEL=\"/\" UUID=\"{}\" BLOCK_SIZE=\"4096\" TYPE=\"xfs\"",
            fake_uuid(&p.instance_id)
        ));
    }
    for (i, v) in p.volumes.iter().enumerate() {
        let name = format!("/dev/{}", kernel_name(&p.instance_type, v, i));
        if !wanted.is_empty() && !wanted.iter().any(|w| **w == name || **w == v.device) {
            continue;
        }
        let fs = p
            .volume_dir
            .as_deref()
            .and_then(|d| volumes::load(d, v).ok())
            .and_then(|d| d.fs_type);
        if let Some(fs) = fs {
            lines.push(format!(
                "{name}: UUID=\"{}\" BLOCK_SIZE=\"512\" TYPE=\"{fs}\"",
                fake_uuid(&v.volume_id)
            ));
        }
    }
    for l in &lines {
        io.out.line(l);
    }
    if lines.is_empty() { 2 } else { 0 }
}

/// `df` (`-h` or not: sizes are printed the human way either way).
pub(super) fn df(sh: &mut Shell, _: &str, _: &[String], io: &mut Io) -> i32 {
    let p = sh.inst.profile();
    let (_, part) = root_device(&p.instance_type);
    let used = sh.inst.disk_used();
    let mounts = sh.inst.with_disk(|d| d.mounts.clone());
    io.out
        .line("Filesystem      Size  Used Avail Use% Mounted on");
    let root = p.root_volume_gib;
    io.out.line(&format!(
        "{:<15} {:>4}  1.6G {:>4}  {:>2}% /",
        format!("/dev/{part}"),
        format!("{root}G"),
        format!("{:.1}G", f64::from(root) - 1.6),
        (160 / root.max(2)).min(99)
    ));
    for (dir, m) in &mounts {
        let size = p
            .volumes
            .iter()
            .find(|v| v.volume_id == m.volume_id)
            .map_or(0, |v| v.size_gib);
        let here: u64 = sh
            .inst
            .with_disk(|d| d.fs.subtree(dir).values().map(|n| n.len()).sum::<u64>());
        let used_m = 33 + here / (1024 * 1024);
        io.out.line(&format!(
            "{:<15} {:>4} {:>4}M {:>4}  {:>2}% {dir}",
            format!("/dev/{}", m.device),
            format!("{size}G"),
            used_m,
            format!("{size}G"),
            1
        ));
    }
    let _ = used;
    0
}

/// `mkfs -t TYPE DEV`, `mkfs.xfs [-f] DEV`, `mkfs.ext4 DEV`.
pub(super) fn mkfs(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    let mut fs_type = name.strip_prefix("mkfs.").map(str::to_string);
    let mut force = false;
    let mut device = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" => fs_type = it.next().cloned(),
            "-f" | "-F" => force = true,
            "-q" => {}
            s if s.starts_with('-') => {}
            s => device = Some(s.to_string()),
        }
    }
    let prog = format!("mkfs.{}", fs_type.as_deref().unwrap_or("ext2"));
    let fs_type = fs_type.unwrap_or_else(|| "ext2".into());
    if !matches!(fs_type.as_str(), "xfs" | "ext4" | "ext3" | "ext2") {
        io.err.line(&format!(
            "mkfs: failed to execute mkfs.{fs_type}: No such file or directory"
        ));
        return 1;
    }
    let Some(device) = device else {
        io.err
            .line(&format!("{prog}: no device name given in argument list"));
        return 1;
    };
    let p = sh.inst.profile();
    let Some((vol, kname)) = p.volume_for_device(&device) else {
        io.err.line(&format!(
            "{prog}: cannot open {device}: No such file or directory"
        ));
        return 1;
    };
    if sh.cred().uid != 0 {
        io.err
            .line(&format!("{prog}: cannot open {device}: Permission denied"));
        return 1;
    }
    if sh.inst.mount_of(&vol.volume_id).is_some() {
        io.err
            .line(&format!("{prog}: {device} contains a mounted filesystem"));
        return 1;
    }
    let Some(dir) = p.volume_dir.clone() else {
        io.err
            .line(&format!("{prog}: cannot open {device}: Input/output error"));
        return 1;
    };
    let existing = volumes::load(&dir, &vol).ok().and_then(|d| d.fs_type);
    if fs_type == "xfs"
        && !force
        && let Some(old) = existing
    {
        io.err.line(&format!(
            "mkfs.xfs: /dev/{kname} appears to contain an existing filesystem ({old})."
        ));
        io.err
            .line("mkfs.xfs: Use the -f option to force overwrite.");
        return 1;
    }
    let data = volumes::formatted(&fs_type, crate::instance::unix_now());
    if let Err(e) = volumes::save(&dir, &vol.volume_id, &data) {
        io.err.line(&format!("{prog}: {device}: {e}"));
        return 1;
    }
    let blocks = u64::from(vol.size_gib) * 262_144;
    if fs_type == "xfs" {
        io.out.line(&format!(
            "meta-data=/dev/{kname:<12} isize=512    agcount=4, agsize={} blks",
            blocks / 4
        ));
        io.out
            .line("         =                       sectsz=512   attr=2, projid32bit=1");
        io.out.line(&format!(
            "data     =                       bsize=4096   blocks={blocks}, imaxpct=25"
        ));
        io.out
            .line("naming   =version 2              bsize=4096   ascii-ci=0, ftype=1");
        io.out
            .line("log      =internal log           bsize=4096   blocks=16384, version=2");
        io.out
            .line("realtime =none                   extsz=4096   blocks=0, rtextents=0");
    } else {
        io.out.line("mke2fs 1.46.5 (30-Dec-2021)");
        io.out.line(&format!(
            "Creating filesystem with {blocks} 4k blocks and {} inodes",
            blocks / 4
        ));
        io.out
            .line(&format!("Filesystem UUID: {}", fake_uuid(&vol.volume_id)));
        io.out
            .line("Allocating group tables: done                            ");
        io.out
            .line("Writing inode tables: done                            ");
        io.out.line("Creating journal (16384 blocks): done");
        io.out
            .line("Writing superblocks and filesystem accounting information: done");
    }
    0
}

/// `mount` (list), `mount [-t TYPE] DEV DIR`.
pub(super) fn mount(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" | "-o" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            s => rest.push(s.to_string()),
        }
    }
    let p = sh.inst.profile();
    if args.iter().any(|a| a == "-a" || a == "--all") {
        if sh.cred().uid != 0 {
            io.err.line("mount: only root can use \"--all\" option");
            return 1;
        }
        let mut code = 0;
        for (message, nofail) in sh.inst.mount_fstab() {
            io.err.line(&message);
            if !nofail {
                code = 32;
            }
        }
        return code;
    }
    if rest.is_empty() {
        let (_, part) = root_device(&p.instance_type);
        io.out.line(&format!("/dev/{part} on / type xfs (rw,noatime,seclabel,attr2,inode64,logbufs=8,logbsize=32k,sunit=1024,swidth=1024,noquota)"));
        io.out
            .line("proc on /proc type proc (rw,nosuid,nodev,noexec,relatime)");
        io.out
            .line("sysfs on /sys type sysfs (rw,nosuid,nodev,noexec,relatime,seclabel)");
        for (dir, m) in sh.inst.with_disk(|d| d.mounts.clone()) {
            io.out.line(&format!(
                "/dev/{} on {dir} type {} (rw,relatime,seclabel)",
                m.device, m.fs_type
            ));
        }
        return 0;
    }
    let [device, dir] = rest.as_slice() else {
        io.err.line("mount: bad usage");
        io.err.line("Try 'mount --help' for more information.");
        return 1;
    };
    let abs = sh.abs(dir);
    if sh.cred().uid != 0 {
        io.err
            .line(&format!("mount: {abs}: must be superuser to use mount."));
        return 32;
    }
    let Some((vol, kname)) = p.volume_for_device(device) else {
        io.err.line(&format!(
            "mount: {abs}: special device {device} does not exist."
        ));
        return 32;
    };
    match sh.inst.mount_volume(&vol, &kname, &abs) {
        Ok(()) => 0,
        Err(e) => {
            io.err.line(&e);
            32
        }
    }
}

/// `umount DIR` or `umount DEV`.
pub(super) fn umount(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let Some(target) = args.iter().find(|a| !a.starts_with('-')) else {
        io.err.line("umount: bad usage");
        return 1;
    };
    let p = sh.inst.profile();
    let dir = match p.volume_for_device(target) {
        Some((v, _)) => sh.inst.mount_of(&v.volume_id),
        None => {
            let abs = sh.abs(target);
            sh.inst
                .with_disk(|d| d.mounts.contains_key(&abs))
                .then_some(abs)
        }
    };
    let Some(dir) = dir else {
        io.err.line(&format!("umount: {target}: not mounted."));
        return 32;
    };
    if sh.cred().uid != 0 {
        io.err
            .line(&format!("umount: {dir}: must be superuser to unmount."));
        return 32;
    }
    if sh.cwd == dir || sh.cwd.starts_with(&format!("{dir}/")) {
        io.err.line(&format!("umount: {dir}: target is busy."));
        return 32;
    }
    match sh.inst.unmount(&dir) {
        Ok(()) => 0,
        Err(e) => {
            io.err.line(&format!("umount: {dir}: {e}"));
            32
        }
    }
}

/// `file [-s] PATH…`: devices say whether they hold a filesystem (the check before
/// `mkfs`); other paths are a directory, empty, text or data.
pub(super) fn file(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if paths.is_empty() {
        io.err
            .line("Usage: file [-bcCdEhikLlNnprsSvzZ0] [--apple] [--extension] [--mime-encoding]");
        return 1;
    }
    for path in paths {
        if file_s(sh, path, io).is_some() {
            continue;
        }
        let abs = sh.abs(path);
        let what = sh.inst.with_disk(|d| match d.fs.get(&abs) {
            None => format!("cannot open `{path}' (No such file or directory)"),
            Some(n) if n.is_dir() => "directory".to_string(),
            Some(n) if n.is_empty() => "empty".to_string(),
            Some(n) => match &n.kind {
                crate::instance::vfs::NodeKind::File(b) if std::str::from_utf8(b).is_ok() => {
                    "ASCII text".to_string()
                }
                _ => "data".to_string(),
            },
        });
        io.out.line(&format!("{path}: {what}"));
    }
    0
}

fn file_s(sh: &Shell, device: &str, io: &mut Io) -> Option<i32> {
    let p = sh.inst.profile();
    let (vol, _) = p.volume_for_device(device)?;
    let fs = p
        .volume_dir
        .as_deref()
        .and_then(|d| volumes::load(d, &vol).ok())
        .and_then(|d| d.fs_type);
    let what = match fs.as_deref() {
        Some("xfs") => "SGI XFS filesystem data (blksz 4096, inosz 512, v2 dirs)".to_string(),
        Some(t) => format!(
            "Linux rev 1.0 {t} filesystem data, UUID={}",
            fake_uuid(&vol.volume_id)
        ),
        None => "data".to_string(),
    };
    io.out.line(&format!("{device}: {what}"));
    Some(0)
}

//! An instance's own folders in the state directory, and how they are mounted.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::super::InstanceProfile;
use super::super::ssh::HostKey;

/// The folders of the instance that are its own (the rest is the host's `/usr`).
const OWN: &[(&str, &str)] = &[
    ("etc", "/etc"),
    ("home", "/home"),
    ("var", "/var"),
    ("tmp", "/tmp"),
    ("opt", "/opt"),
    ("root", "/root"),
    ("usr-local", "/usr/local"),
];

/// What the first boot copies from the host's `/etc`: what the host's programs need to
/// run (the dynamic loader's cache, `alternatives` links, OpenSSL's configuration, shell
/// start-up files), nothing about the host's users, secrets, network or trusted CAs (the
/// image trusts vpclab's CA only, [`InstanceRoot::write_trust_store`]).
const HOST_ETC: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "environment",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "login.defs",
    "mime.types",
    "nsswitch.conf",
    "profile",
    "profile.d",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "shells",
    "skel",
    "ssl/openssl.cnf",
    "terminfo",
];

/// Marks an instance root whose first boot prepared it.
const SEEDED: &str = "etc/.vpclab-seeded";

/// `<instances dir>/<account>/<instance id>.root`: the instance's writable folders.
#[derive(Clone, Debug)]
pub struct InstanceRoot {
    dir: PathBuf,
    hostname: String,
}

impl InstanceRoot {
    pub fn new(account_dir: &Path, instance_id: &str, hostname: &str) -> InstanceRoot {
        InstanceRoot {
            dir: account_dir.join(format!("{instance_id}.root")),
            hostname: hostname.to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the folders (terminated instance).
    pub fn remove(account_dir: &Path, instance_id: &str) {
        let _ = std::fs::remove_dir_all(account_dir.join(format!("{instance_id}.root")));
    }

    /// Makes the folders and the files the image's first boot (cloud-init) writes:
    /// users, host name, resolver, host keys, the key pair's public key. Identity files
    /// are rewritten at every boot, as cloud-init does; the learner's files are kept.
    pub fn prepare(&self, profile: &InstanceProfile, host_key: &HostKey) -> io::Result<()> {
        for (own, _) in OWN {
            std::fs::create_dir_all(self.dir.join(own))?;
        }
        let first = !self.dir.join(SEEDED).exists();
        let user = profile.image.default_user();
        let etc = self.dir.join("etc");
        if first {
            for name in HOST_ETC {
                let to = etc.join(name);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                copy_tree(&Path::new("/etc").join(name), &to);
            }
            for d in [
                "var/log",
                "var/tmp",
                "var/lib/cloud/instance",
                "var/www/html",
            ] {
                std::fs::create_dir_all(self.dir.join(d))?;
            }
            let ssh = self.dir.join("home").join(user).join(".ssh");
            std::fs::create_dir_all(&ssh)?;
            let key = profile.authorized_key.clone().unwrap_or_default();
            std::fs::write(ssh.join("authorized_keys"), format!("{}\n", key.trim()))?;
            if Path::new("/etc/skel/.bashrc").exists() {
                let _ = std::fs::copy(
                    "/etc/skel/.bashrc",
                    self.dir.join("home").join(user).join(".bashrc"),
                );
            }
        }
        // uid 0 inside is the daemon's own unprivileged uid outside (one uid can be
        // mapped without privileges), so the default user is that uid; it is listed
        // first so `whoami` and `id` name it.
        let gecos = match profile.image {
            super::super::image::Image::AmazonLinux2023 => "EC2 Default User",
            super::super::image::Image::Ubuntu2404 => "Ubuntu",
        };
        std::fs::write(
            etc.join("passwd"),
            format!(
                "{user}:x:0:0:{gecos}:/home/{user}:/bin/bash\n\
                 root:x:0:0:root:/root:/bin/bash\n\
                 nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n"
            ),
        )?;
        std::fs::write(
            etc.join("group"),
            format!("{user}:x:0:\nroot:x:0:\nwheel:x:10:{user}\nnobody:x:65534:\n"),
        )?;
        std::fs::write(etc.join("hostname"), format!("{}\n", self.hostname))?;
        self.write_network(profile)?;
        std::fs::write(etc.join("os-release"), profile.image.os_release())?;
        self.write_trust_store(profile)?;
        let ssh_etc = etc.join("ssh");
        std::fs::create_dir_all(&ssh_etc)?;
        std::fs::write(
            ssh_etc.join("ssh_host_ed25519_key.pub"),
            format!("{}\n", host_key.public_openssh()),
        )?;
        // `sudo` for the default user: already uid 0 in the namespace, it runs the
        // command as given (its options are accepted and ignored). Only where the host
        // has no sudo of its own (which could not work inside anyway: it is setuid).
        let bin = self.dir.join("usr-local/bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::write(bin.join("sudo"), SUDO)?;
        set_mode(&bin.join("sudo"), 0o755)?;
        // The image's package and service managers (rewritten at every boot, so they
        // follow the agent's version).
        for (name, script) in super::tools::wrappers(profile.image) {
            std::fs::write(bin.join(name), script)?;
            set_mode(&bin.join(name), 0o755)?;
        }
        std::fs::write(self.dir.join(SEEDED), b"")?;
        Ok(())
    }

    /// `/etc/hosts` and `/etc/resolv.conf` from the profile's addresses and DHCP options,
    /// at boot and again whenever the VPC's option set changes (the instance renews its
    /// lease, as the emulated runtime's does). The kernel's host name (UTS) is fixed at
    /// boot, so `/etc/hosts` lists the fully qualified name of the option set first (what
    /// `hostname -f` prints) and the boot-time names after it.
    pub fn write_network(&self, profile: &InstanceProfile) -> io::Result<()> {
        let etc = self.dir.join("etc");
        // The kernel's name is the one `/etc/hostname` got at boot (a renewal made
        // later names this root after the new option set).
        let booted = std::fs::read_to_string(etc.join("hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| self.hostname.clone());
        let mut names: Vec<String> = Vec::new();
        for n in [
            profile.fqdn(),
            booted,
            profile.local_hostname(),
            profile.hostname(),
        ] {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        // An instance without IPv4 (IPv6-only subnet) has no line of its own: its
        // names resolve through DNS (AAAA of the resource name).
        let own = profile
            .ipv4()
            .map(|ip| format!("{ip}   {}\n", names.join(" ")))
            .unwrap_or_default();
        write_if_changed(
            &etc.join("hosts"),
            &format!(
                "127.0.0.1   localhost localhost.localdomain\n\
                 ::1         localhost6 localhost6.localdomain6\n\
                 {own}"
            ),
        )?;
        // The same text as the emulated runtime's (and what a DHCP client writes): the
        // option set's servers and search domain, no servers at all for `default`.
        write_if_changed(&etc.join("resolv.conf"), &profile.resolv_conf())
    }

    /// The system trust store, as in the emulated runtime's image: vpclab's CA (which
    /// signs the simulated internet's HTTPS) and nothing else, at the image's bundle path,
    /// at the path the host's OpenSSL, curl and Python read (Debian's
    /// `/etc/ssl/certs/ca-certificates.crt`), and as the image's extra anchor. Rewritten
    /// at every boot.
    fn write_trust_store(&self, profile: &InstanceProfile) -> io::Result<()> {
        let bundle = profile.trusted_ca_pem.as_deref().unwrap_or_default();
        let mut paths = vec![
            "/etc/ssl/certs/ca-certificates.crt",
            profile.image.ca_bundle_path(),
        ];
        if !bundle.is_empty() {
            paths.push(profile.image.ca_anchor_path());
        }
        for path in paths {
            let Some(at) = self.own_path(path) else {
                continue;
            };
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_if_changed(&at, bundle)?;
        }
        Ok(())
    }

    /// Where a path inside the instance lives in this root, when it is in one of the
    /// instance's own folders.
    fn own_path(&self, inside: &str) -> Option<PathBuf> {
        // The longest mount point first: `/usr/local` before any shorter one.
        let mut own: Vec<&(&str, &str)> = OWN.iter().collect();
        own.sort_by_key(|(_, at)| std::cmp::Reverse(at.len()));
        own.into_iter().find_map(|(dir, at)| {
            let rest = inside.strip_prefix(at)?.strip_prefix('/')?;
            Some(self.dir.join(dir).join(rest))
        })
    }

    /// The `bwrap` command line that runs `agent` as the instance.
    pub fn bwrap_args(&self, agent: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-ipc",
            "--unshare-cgroup-try",
            "--uid",
            "0",
            "--gid",
            "0",
            "--die-with-parent",
            "--hostname",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        a.push(self.hostname.clone().into());
        // Root's usual capabilities, inside the instance's own user namespace only:
        // they act on its own network, mounts and processes, never on the host's.
        for cap in [
            "CAP_NET_ADMIN",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_RAW",
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_KILL",
            "CAP_SETUID",
            "CAP_SETGID",
            "CAP_SYS_CHROOT",
        ] {
            a.extend(["--cap-add".into(), cap.into()]);
        }
        a.extend(super::system_mounts());
        for (own, at) in OWN {
            if *at == "/usr/local" && !Path::new("/usr/local").is_dir() {
                continue;
            }
            a.extend([
                "--bind".into(),
                self.dir.join(own).into_os_string(),
                (*at).into(),
            ]);
        }
        for x in ["--proc", "/proc", "--dev", "/dev"] {
            a.push(x.into());
        }
        a.extend([
            "--dev-bind".into(),
            "/dev/net/tun".into(),
            "/dev/net/tun".into(),
            "--tmpfs".into(),
            "/run".into(),
            "--ro-bind".into(),
            agent.as_os_str().to_owned(),
            AGENT_PATH.into(),
            "--chdir".into(),
            "/".into(),
            "--".into(),
            AGENT_PATH.into(),
            "instance-agent".into(),
        ]);
        a
    }
}

/// Where the agent binary is mounted inside.
const AGENT_PATH: &str = "/run/vpclab/agent";

const SUDO: &str = "#!/bin/bash\n\
# vpclab: the default user is already root inside this instance's namespace.\n\
while [ $# -gt 0 ]; do\n\
  case \"$1\" in\n\
    -u|-g|-C|-p|-h) shift 2 ;;\n\
    -i|-s) [ $# -eq 1 ] && USER=root LOGNAME=root HOME=/root exec /bin/bash -l; shift ;;\n\
    --) shift; break ;;\n\
    -*) shift ;;\n\
    *) break ;;\n\
  esac\n\
done\n\
[ $# -eq 0 ] && { echo 'usage: sudo command' >&2; exit 1; }\n\
# As sudo does: the command runs as root, and knows who asked.\n\
export SUDO_USER=\"${USER:-ec2-user}\" USER=root LOGNAME=root\n\
exec \"$@\"\n";

/// Writes `text` unless the file already holds it (a renewal that changes nothing
/// leaves the file, and whoever reads it, alone); through a new file renamed over the
/// old one, so a program inside never reads half of it.
fn write_if_changed(path: &Path, text: &str) -> io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".vpclab-new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Copies a file, link or folder (best effort: what cannot be read is skipped).
fn copy_tree(from: &Path, to: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return;
    };
    if meta.file_type().is_symlink() {
        if let Ok(target) = std::fs::read_link(from) {
            let _ = std::os::unix::fs::symlink(target, to);
        }
    } else if meta.is_dir() {
        if std::fs::create_dir_all(to).is_err() {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(from) {
            for e in entries.flatten() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            }
        }
    } else if meta.is_file() {
        let _ = std::fs::copy(from, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::image::Image;

    #[test]
    fn the_root_has_the_images_identity_and_no_host_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p =
            InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        p.authorized_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey learner".into());
        let ca = "-----BEGIN CERTIFICATE-----\nvpclab\n-----END CERTIFICATE-----\n";
        p.trusted_ca_pem = Some(ca.into());
        let root = InstanceRoot::new(dir.path(), "i-0abc", "ip-10-0-1-5");
        root.prepare(&p, &HostKey::from_seed([7; 32]))
            .expect("prepare");
        let etc = root.dir().join("etc");
        let passwd = std::fs::read_to_string(etc.join("passwd")).expect("passwd");
        assert!(passwd.starts_with("ec2-user:x:0:0:"), "{passwd}");
        assert!(
            !etc.join("shadow").exists(),
            "the host's shadow file is never copied"
        );
        assert_eq!(
            std::fs::read_to_string(etc.join("hostname")).expect("h"),
            "ip-10-0-1-5\n"
        );
        assert!(
            std::fs::read_to_string(etc.join("os-release"))
                .expect("os")
                .contains("Amazon Linux")
        );
        assert!(
            std::fs::read_to_string(etc.join("resolv.conf"))
                .expect("r")
                .contains(&format!("nameserver {}", p.dns_server))
        );
        // The trust store is vpclab's CA alone, where the image and the host's
        // programs look for it; none of the host's CAs is copied.
        for bundle in [
            "etc/pki/tls/certs/ca-bundle.crt",
            "etc/ssl/certs/ca-certificates.crt",
        ] {
            let text = std::fs::read_to_string(root.dir().join(bundle)).expect("bundle");
            assert_eq!(text, ca, "{bundle}");
        }
        let certs: Vec<_> = std::fs::read_dir(etc.join("ssl/certs"))
            .expect("certs")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(certs, ["ca-certificates.crt"], "{certs:?}");
        let keys = root.dir().join("home/ec2-user/.ssh/authorized_keys");
        assert!(
            std::fs::read_to_string(&keys)
                .expect("keys")
                .contains("learner")
        );
        // A learner's change to authorized_keys survives the next boot.
        std::fs::write(&keys, "mine\n").expect("w");
        root.prepare(&p, &HostKey::from_seed([7; 32]))
            .expect("prepare again");
        assert_eq!(std::fs::read_to_string(&keys).expect("keys"), "mine\n");
        InstanceRoot::remove(dir.path(), "i-0abc");
        assert!(!root.dir().exists());
    }

    #[test]
    fn only_the_instances_own_folders_are_writable() {
        let root = InstanceRoot::new(Path::new("/state/instances/acct"), "i-1", "ip-10-0-1-5");
        let args: Vec<String> = root
            .bwrap_args(Path::new("/opt/vpclab"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let writable: Vec<&str> = args
            .windows(3)
            .filter(|w| w[0] == "--bind")
            .map(|w| w[1].as_str())
            .collect();
        assert!(
            writable
                .iter()
                .all(|p| p.starts_with("/state/instances/acct/i-1.root/")),
            "{writable:?}"
        );
        assert!(
            args.windows(3)
                .any(|w| w[0] == "--ro-bind" && w[1] == "/usr" && w[2] == "/usr")
        );
        assert!(args.iter().any(|a| a == "--unshare-net"));
        assert!(
            !args
                .iter()
                .any(|a| a == "/state/instances" || a == "/state"),
            "the state directory itself is not mounted"
        );
    }
}

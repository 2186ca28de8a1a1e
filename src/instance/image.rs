//! The two images an instance can run — Amazon Linux 2023 and Ubuntu 24.04 — and what
//! each one looks like from inside: default user, prompt, banner, `/etc/os-release`,
//! kernel string, package manager, and the filesystem a new instance starts with.

use serde::{Deserialize, Serialize};

use super::InstanceProfile;
use super::vfs::{Cred, Vfs};

/// An operating-system image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Image {
    /// Amazon Linux 2023: user `ec2-user`, `dnf`/`yum`.
    AmazonLinux2023,
    /// Ubuntu 24.04 LTS: user `ubuntu`, `apt`.
    Ubuntu2404,
}

/// The default user's uid and gid on both images.
pub const DEFAULT_UID: u32 = 1000;

impl Image {
    /// The user EC2 puts the launch key under.
    pub fn default_user(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "ec2-user",
            Image::Ubuntu2404 => "ubuntu",
        }
    }

    /// An AMI id shaped like AWS's, for examples and tests.
    pub fn example_ami_id(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "ami-0453ec754f44f9a4a",
            Image::Ubuntu2404 => "ami-0e2c8caa4b6378d8c",
        }
    }

    /// The default user's credentials.
    pub fn default_cred(self) -> Cred {
        Cred {
            uid: DEFAULT_UID,
            gid: DEFAULT_UID,
        }
    }

    /// The `id` line for a user of this image.
    pub fn id_line(self, user: &str) -> String {
        if user == "root" {
            return "uid=0(root) gid=0(root) groups=0(root)".to_string();
        }
        match self {
            Image::AmazonLinux2023 => format!(
                "uid=1000({user}) gid=1000({user}) groups=1000({user}),4(adm),10(wheel),190(systemd-journal)"
            ),
            Image::Ubuntu2404 => format!(
                "uid=1000({user}) gid=1000({user}) groups=1000({user}),4(adm),24(cdrom),27(sudo),30(dip),105(lxd)"
            ),
        }
    }

    /// The shell prompt. Amazon Linux shows the last path component in brackets
    /// (`[ec2-user@ip-10-0-1-5 ~]$ `); Ubuntu shows the whole path (`ubuntu@ip-10-0-1-5:~$ `).
    /// The Ubuntu prompt is printed without its colours.
    pub fn prompt(self, user: &str, host: &str, cwd: &str, home: &str) -> String {
        let sign = if user == "root" { '#' } else { '$' };
        let tilde = if cwd == home {
            "~".to_string()
        } else if let Some(rest) = cwd.strip_prefix(&format!("{home}/")) {
            format!("~/{rest}")
        } else {
            cwd.to_string()
        };
        match self {
            Image::AmazonLinux2023 => {
                let last = if tilde == "~" || cwd == "/" {
                    tilde
                } else {
                    super::vfs::basename(cwd).to_string()
                };
                format!("[{user}@{host} {last}]{sign} ")
            }
            Image::Ubuntu2404 => format!("{user}@{host}:{tilde}{sign} "),
        }
    }

    /// The message of the day printed after an interactive login.
    pub fn banner(self, when: &str) -> String {
        match self {
            Image::AmazonLinux2023 => concat!(
                "   ,     #_\n",
                "   ~\\_  ####_        Amazon Linux 2023\n",
                "  ~~  \\_#####\\\n",
                "  ~~     \\###|\n",
                "  ~~       \\#/ ___   https://aws.amazon.com/linux/amazon-linux-2023\n",
                "   ~~       V~' '->\n",
                "    ~~~         /\n",
                "      ~~._.   _/\n",
                "         _/ _/\n",
                "       _/m/'\n",
            )
            .to_string(),
            Image::Ubuntu2404 => format!(
                "Welcome to Ubuntu 24.04.1 LTS (GNU/Linux {} x86_64)\n\n \
                 * Documentation:  https://help.ubuntu.com\n \
                 * Management:     https://landscape.canonical.com\n \
                 * Support:        https://ubuntu.com/pro\n\n \
                 System information as of {when}\n\n",
                self.kernel_release()
            ),
        }
    }

    /// `uname -r`.
    pub fn kernel_release(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "6.1.115-126.197.amzn2023.x86_64",
            Image::Ubuntu2404 => "6.8.0-1018-aws",
        }
    }

    /// `uname -v`.
    pub fn kernel_version(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "#1 SMP PREEMPT_DYNAMIC Tue Nov  5 17:36:57 UTC 2024",
            Image::Ubuntu2404 => "#19-Ubuntu SMP Wed Oct  9 17:40:41 UTC 2024",
        }
    }

    /// Whether `hostname` prints the fully qualified name (Amazon Linux does).
    pub fn hostname_is_fqdn(self) -> bool {
        matches!(self, Image::AmazonLinux2023)
    }

    /// The line the serial console's getty prints before its login prompt.
    pub fn console_issue(self, hostname: &str) -> String {
        match self {
            Image::AmazonLinux2023 => format!(
                "Amazon Linux 2023.6.20241111\nKernel {} on an x86_64 (ttyS0)",
                self.kernel_release()
            ),
            Image::Ubuntu2404 => format!("Ubuntu 24.04.1 LTS {hostname} ttyS0"),
        }
    }

    /// `/etc/os-release`.
    pub fn os_release(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => concat!(
                "NAME=\"Amazon Linux\"\n",
                "VERSION=\"2023\"\n",
                "ID=\"amzn\"\n",
                "ID_LIKE=\"fedora\"\n",
                "VERSION_ID=\"2023\"\n",
                "PLATFORM_ID=\"platform:al2023\"\n",
                "PRETTY_NAME=\"Amazon Linux 2023.6.20241111\"\n",
                "ANSI_COLOR=\"0;33\"\n",
                "CPE_NAME=\"cpe:2.3:o:amazon:amazon_linux:2023\"\n",
                "HOME_URL=\"https://aws.amazon.com/linux/amazon-linux-2023/\"\n",
                "DOCUMENTATION_URL=\"https://docs.aws.amazon.com/linux/\"\n",
                "SUPPORT_URL=\"https://aws.amazon.com/premiumsupport/\"\n",
                "BUG_REPORT_URL=\"https://github.com/amazonlinux/amazon-linux-2023\"\n",
                "VENDOR_NAME=\"AWS\"\n",
                "VENDOR_URL=\"https://aws.amazon.com/\"\n",
                "SUPPORT_END=\"2029-06-30\"\n",
            ),
            Image::Ubuntu2404 => concat!(
                "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n",
                "NAME=\"Ubuntu\"\n",
                "VERSION_ID=\"24.04\"\n",
                "VERSION=\"24.04.1 LTS (Noble Numbat)\"\n",
                "VERSION_CODENAME=noble\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "HOME_URL=\"https://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"https://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n",
                "UBUNTU_CODENAME=noble\n",
                "LOGO=ubuntu-logo\n",
            ),
        }
    }

    /// The package-manager commands this image has.
    pub fn package_managers(self) -> &'static [&'static str] {
        match self {
            Image::AmazonLinux2023 => &["dnf", "yum"],
            Image::Ubuntu2404 => &["apt", "apt-get"],
        }
    }

    /// The system CA bundle TLS clients (curl, dnf, apt, Python) read.
    pub fn ca_bundle_path(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "/etc/pki/tls/certs/ca-bundle.crt",
            Image::Ubuntu2404 => "/etc/ssl/certs/ca-certificates.crt",
        }
    }

    /// Where an administrator drops an extra trusted CA (`update-ca-trust` or
    /// `update-ca-certificates` then rebuilds the bundle from it).
    pub fn ca_anchor_path(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "/etc/pki/ca-trust/source/anchors/vpclab-ca.pem",
            Image::Ubuntu2404 => "/usr/local/share/ca-certificates/vpclab-ca.crt",
        }
    }

    /// The mirror path prefix the package manager fetches from.
    pub fn mirror_prefix(self) -> &'static str {
        match self {
            Image::AmazonLinux2023 => "/al2023",
            Image::Ubuntu2404 => "/ubuntu",
        }
    }
}

/// The files the DHCP client writes: `/etc/resolv.conf` (name servers and search
/// domain of the VPC's option set) and `/etc/hostname`.
pub fn write_dhcp_files(fs: &mut Vfs, p: &InstanceProfile) {
    let root = Cred::ROOT;
    let hostname = if p.image.hostname_is_fqdn() {
        p.fqdn()
    } else {
        p.hostname()
    };
    fs.install(
        "/etc/hostname",
        format!("{hostname}\n").as_bytes(),
        0o644,
        root,
    );
    fs.install("/etc/resolv.conf", p.resolv_conf().as_bytes(), 0o644, root);
}

/// The filesystem of a freshly launched instance.
pub fn build_fs(p: &InstanceProfile) -> Vfs {
    let mut fs = Vfs::new();
    fs.set_now(super::unix_now());
    let root = Cred::ROOT;
    let user = p.image.default_user();
    let me = p.image.default_cred();
    let home = format!("/home/{user}");
    for dir in [
        "/bin",
        "/usr/bin",
        "/usr/sbin",
        "/usr/share",
        "/opt",
        "/srv",
        "/mnt",
    ] {
        fs.install_dir(dir, 0o755, root);
    }
    fs.install_dir("/tmp", 0o1777, root);
    // Sticky and world-writable like /tmp, but kept across reboots (FHS 3.0 §5.15).
    fs.install_dir("/var/tmp", 0o1777, root);
    fs.install_dir("/root", 0o550, root);
    fs.install_dir("/var/log", 0o755, root);
    fs.install_dir("/var/www/html", 0o755, root);
    fs.install_dir(&home, 0o700, me);
    fs.install_dir(&format!("{home}/.ssh"), 0o700, me);
    if let Some(key) = &p.authorized_key {
        fs.install(
            &format!("{home}/.ssh/authorized_keys"),
            format!("{}\n", key.trim_end()).as_bytes(),
            0o600,
            me,
        );
    }
    let bashrc = "# .bashrc\n\n# User specific aliases and functions\n";
    fs.install(&format!("{home}/.bashrc"), bashrc.as_bytes(), 0o644, me);
    fs.install(
        "/etc/os-release",
        p.image.os_release().as_bytes(),
        0o644,
        root,
    );
    fs.install(
        "/etc/hosts",
        b"127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost6 localhost6.localdomain6\n",
        0o644,
        root,
    );
    write_dhcp_files(&mut fs, p);
    // The system trust store holds vpclab's CA (the simulated internet's HTTPS is
    // signed by it) and nothing else: no real CA's certificate is needed offline.
    let bundle = p.trusted_ca_pem.as_deref().unwrap_or_default();
    fs.install(p.image.ca_bundle_path(), bundle.as_bytes(), 0o644, root);
    if !bundle.is_empty() {
        fs.install(p.image.ca_anchor_path(), bundle.as_bytes(), 0o644, root);
    }
    let shell_path = "/bin/bash";
    let passwd = format!(
        "root:x:0:0:root:/root:{shell_path}\n{user}:x:{uid}:{uid}::{home}:{shell_path}\n",
        uid = me.uid
    );
    fs.install("/etc/passwd", passwd.as_bytes(), 0o644, root);
    fs.install("/var/log/cloud-init-output.log", b"", 0o644, root);
    fs.install("/var/log/cloud-init.log", b"", 0o644, root);
    fs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amazon_linux_prompt_shows_brackets_and_last_component() {
        let i = Image::AmazonLinux2023;
        let h = "/home/ec2-user";
        assert_eq!(
            i.prompt("ec2-user", "ip-10-0-1-5", h, h),
            "[ec2-user@ip-10-0-1-5 ~]$ "
        );
        assert_eq!(
            i.prompt("ec2-user", "ip-10-0-1-5", "/var/www/html", h),
            "[ec2-user@ip-10-0-1-5 html]$ "
        );
        assert_eq!(
            i.prompt("root", "ip-10-0-1-5", "/root", "/root"),
            "[root@ip-10-0-1-5 ~]# "
        );
    }

    #[test]
    fn ubuntu_prompt_shows_full_path_with_tilde() {
        let i = Image::Ubuntu2404;
        let h = "/home/ubuntu";
        assert_eq!(
            i.prompt("ubuntu", "ip-10-0-1-5", h, h),
            "ubuntu@ip-10-0-1-5:~$ "
        );
        assert_eq!(
            i.prompt("ubuntu", "ip-10-0-1-5", "/home/ubuntu/src", h),
            "ubuntu@ip-10-0-1-5:~/src$ "
        );
    }

    #[test]
    fn new_instance_has_authorized_key_private_to_the_user() {
        let mut p =
            InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        p.authorized_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE test01".to_string());
        let fs = build_fs(&p);
        let node = fs
            .get("/home/ec2-user/.ssh/authorized_keys")
            .expect("exists");
        assert_eq!(node.mode, 0o600);
        assert_eq!(node.uid, DEFAULT_UID);
        assert_eq!(
            fs.read("/etc/hostname", Cred::ROOT).expect("hostname"),
            b"ip-10-0-1-5.ec2.internal\n"
        );
    }

    /// User data that keeps state across reboots writes to /var/tmp, which every Linux
    /// image has: sticky and writable by all, like /tmp.
    #[test]
    fn new_instance_has_a_sticky_world_writable_var_tmp() {
        let p = InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"));
        let fs = build_fs(&p);
        let node = fs.get("/var/tmp").expect("exists");
        assert_eq!(node.mode, 0o1777);
        assert_eq!(node.uid, 0);
    }
}

//! The inside of an instance: what a learner meets once a packet reaches it.
//!
//! An [`InstanceState`] holds one instance's identity ([`InstanceProfile`]), its disk
//! ([`InstanceDisk`]: filesystem, installed packages, enabled services, SSH host key,
//! console), and a handle on its network ([`net::InstanceNet`]). The filesystem is
//! bounded by the root volume ([`InstanceProfile::disk_capacity`], at most
//! [`EMULATED_ROOT_VOLUME_LIMIT`]) and journals its changes, which the caller takes with
//! [`InstanceState::take_disk_changes`] to persist them incrementally. Services run on any byte stream the caller hands over:
//!
//! - [`ssh::serve_ssh`] — the SSH server (russh): public-key login for the image's
//!   default user, an interactive shell with a pty, `exec`, and SFTP (so `scp` works);
//! - [`imds::serve_imds`] — instance metadata (IMDSv1 and v2) over HTTP/1.1;
//! - [`InstanceState::boot`] — first-boot user data and the console log;
//! - the emulated shell ([`shell`]) with its command table, over the per-instance
//!   filesystem ([`vfs`]), whose network tools go through [`net::InstanceNet`];
//! - packages and services ([`services`]): `dnf`/`apt`, `systemctl`, the web servers.
//!
//! Every HTTP exchange (metadata, web servers, `curl`, `wget`, the package managers) is
//! hyper through [`crate::http1`].
//!
//! What this module leaves to others: the network stack and the fabric (the caller
//! accepts port 22 and 169.254.169.254:80 connections on the instance's host stack and
//! passes the streams here, and implements `InstanceNet` over that stack), the instance
//! lifecycle and its API (RunInstances, stop/start), key-pair creation, and where disks
//! are stored.

pub mod boot;
pub mod image;
pub mod imds;
pub mod lineedit;
pub mod net;
pub mod outq;
pub mod overlay;
pub mod sandbox;
pub mod services;
pub mod sftp;
pub mod shell;
pub mod ssh;
pub mod vfs;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};

pub use image::Image;
pub use net::{FakeNet, InstanceNet};
pub use ssh::{HostKey, serve_ssh};

/// Who an instance is: everything fixed at launch (or changed by stop/start, like the
/// automatic public address). The caller builds it from the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProfile {
    /// `i-0123456789abcdef0`.
    pub instance_id: String,
    pub image: Image,
    /// The AMI id the instance was launched from (`ami-…`), for metadata.
    pub ami_id: String,
    /// `t2.micro` …
    pub instance_type: String,
    pub private_ip: Ipv4Addr,
    /// The subnet's prefix length (for `ip addr`).
    pub subnet_prefix_len: u8,
    pub public_ip: Option<Ipv4Addr>,
    /// `us-east-1`.
    pub region: String,
    /// `us-east-1a`.
    pub availability_zone: String,
    /// `02:…` lower-case, colon-separated.
    pub mac: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Security group *names* (metadata `security-groups`).
    pub security_groups: Vec<String>,
    /// The same groups by id (metadata `…/macs/<mac>/security-group-ids`).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// The account that owns the instance (identity document `accountId`, the interface's
    /// `owner-id`).
    #[serde(default = "default_account_id")]
    pub account_id: String,
    /// The primary network interface (`eni-…`, metadata `…/macs/<mac>/interface-id`).
    #[serde(default)]
    pub interface_id: String,
    /// The key pair's name, or `None` when launched without one.
    pub key_name: Option<String>,
    /// The authorized public key as an OpenSSH line (`ssh-ed25519 AAAA… name`).
    pub authorized_key: Option<String>,
    /// Raw user data (already base64-decoded).
    pub user_data: Vec<u8>,
    /// `HttpTokens=required`: metadata answers 401 without a session token.
    pub imds_v2_required: bool,
    /// `HttpEndpoint=disabled`: nothing answers at 169.254.169.254 (the in-world
    /// metadata host is not attached, and the emulated shell's own shortcut to the
    /// service times out too).
    #[serde(default)]
    pub imds_disabled: bool,
    /// The VPC resolver (base + 2) the instance's `/etc/resolv.conf` names.
    pub dns_server: Ipv4Addr,
    /// The internet package mirror `dnf`/`apt` download from.
    pub package_mirror: SocketAddrV4,
    /// The root volume's size as the API reports it (the AMI's, 8 GiB for ours).
    #[serde(default = "default_root_volume_gib")]
    pub root_volume_gib: u32,
    /// vpclab's certificate authority (PEM), which the image's CA bundle holds so
    /// that HTTPS to the simulated internet verifies; `None`: an empty bundle.
    #[serde(default)]
    pub trusted_ca_pem: Option<String>,
    /// The IAM instance profile, when the instance has one (metadata `iam/`).
    #[serde(default)]
    pub iam: Option<ImdsIam>,
    /// Attached EBS data volumes (not the root), in device order.
    #[serde(default)]
    pub volumes: Vec<volumes::AttachedVolume>,
    /// Where volume and snapshot contents are kept ([`volumes`]).
    #[serde(default)]
    pub volume_dir: Option<std::path::PathBuf>,
    /// What the VPC's DHCP option set hands the instance; `None`: the default set
    /// (the VPC resolver, the Region's internal domain).
    #[serde(default)]
    pub dhcp: Option<Dhcp>,
}

/// What an instance's DHCP client received from the VPC's DHCP option set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// The `search` domain of `/etc/resolv.conf` (`domain-name`).
    pub domain_name: Option<String>,
    /// The `nameserver` lines (`domain-name-servers`, `AmazonProvidedDNS` replaced by
    /// the VPC resolver's address). Empty when the VPC has no options.
    pub name_servers: Vec<Ipv4Addr>,
    /// `ntp-servers`.
    pub ntp_servers: Vec<Ipv4Addr>,
    /// The domain of the host's fully qualified name when the set gives one (a custom
    /// domain with custom DNS servers, as AWS documents it); `None` keeps EC2's name.
    pub host_domain: Option<String>,
}

/// An instance profile as the metadata service shows it. Times are ISO 8601 in whole
/// seconds (`2024-05-01T12:00:00Z`), as EC2 writes them there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImdsIam {
    pub profile_arn: String,
    /// `AIPA…`.
    pub profile_id: String,
    /// When the association was made (`iam/info` `LastUpdated`).
    pub associated: String,
    /// The profile's role; `None` when the profile has none.
    pub role: Option<String>,
    /// The role's current temporary credentials, once issued.
    pub credentials: Option<ImdsCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImdsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub expiration: String,
    pub last_updated: String,
}

fn default_account_id() -> String {
    "000000000000".to_string()
}

fn default_root_volume_gib() -> u32 {
    8
}

/// The most file data an instance's root volume holds, whatever size the API reports:
/// the files live in the daemon's memory (and in its state directory), so a learner
/// filling a disk must not be able to take the host's memory with it. See
/// `docs/fidelity.md`, "Limits".
pub const EMULATED_ROOT_VOLUME_LIMIT: u64 = 128 * 1024 * 1024;

/// GetConsoleOutput returns the most recent 64 KiB of the console, and so much is kept.
pub const CONSOLE_LIMIT: usize = 64 * 1024;

impl InstanceProfile {
    /// A profile with the usual defaults, for tests and examples: an instance at
    /// `private_ip` in a /24, in us-east-1a.
    pub fn example(image: Image, private_ip: Ipv4Addr) -> Self {
        let o = private_ip.octets();
        InstanceProfile {
            instance_id: "i-0123456789abcdef0".to_string(),
            image,
            ami_id: image.example_ami_id().to_string(),
            instance_type: "t2.micro".to_string(),
            private_ip,
            subnet_prefix_len: 24,
            public_ip: None,
            region: "us-east-1".to_string(),
            availability_zone: "us-east-1a".to_string(),
            mac: format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
            vpc_id: "vpc-0123456789abcdef0".to_string(),
            subnet_id: "subnet-0123456789abcdef0".to_string(),
            security_groups: vec!["default".to_string()],
            security_group_ids: vec!["sg-0123456789abcdef0".to_string()],
            account_id: "123456789012".to_string(),
            interface_id: "eni-0123456789abcdef0".to_string(),
            key_name: None,
            authorized_key: None,
            user_data: Vec::new(),
            imds_v2_required: false,
            imds_disabled: false,
            dns_server: Ipv4Addr::new(o[0], o[1], 0, 2),
            package_mirror: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 80),
            root_volume_gib: default_root_volume_gib(),
            trusted_ca_pem: None,
            iam: None,
            volumes: Vec::new(),
            volume_dir: None,
            dhcp: None,
        }
    }

    /// `/etc/resolv.conf` as the DHCP client writes it from the option set.
    /// An instance without IPv4 (an IPv6-only subnet) is handed the resolver's IPv6
    /// address, fd00:ec2::253, wherever the VPC resolver would be named: it has no
    /// route to base + 2.
    pub fn resolv_conf(&self) -> String {
        let resolver = |ns: Ipv4Addr| -> String {
            if self.ipv4().is_none() && ns == self.dns_server {
                "fd00:ec2::253".to_string()
            } else {
                ns.to_string()
            }
        };
        let Some(d) = &self.dhcp else {
            let search = if self.region == "us-east-1" {
                "ec2.internal".to_string()
            } else {
                format!("{}.compute.internal", self.region)
            };
            return format!(
                "nameserver {}\nsearch {search}\n",
                resolver(self.dns_server)
            );
        };
        let mut out = String::new();
        if d.name_servers.is_empty() {
            out.push_str("# No DNS servers: the VPC has no DHCP options.\n");
        }
        for ns in &d.name_servers {
            out.push_str(&format!("nameserver {}\n", resolver(*ns)));
        }
        if let Some(domain) = &d.domain_name {
            out.push_str(&format!("search {domain}\n"));
        }
        out
    }

    /// The fully qualified host name (`hostname -f`): EC2's internal name, or the host
    /// name in the option set's domain when the set names its own DNS servers.
    pub fn fqdn(&self) -> String {
        match self.dhcp.as_ref().and_then(|d| d.host_domain.as_ref()) {
            Some(domain) => format!("{}.{domain}", self.hostname()),
            None => self.local_hostname(),
        }
    }

    /// What the instance's filesystem may hold, in bytes: the root volume, capped at
    /// [`EMULATED_ROOT_VOLUME_LIMIT`].
    pub fn disk_capacity(&self) -> u64 {
        (u64::from(self.root_volume_gib) << 30).min(EMULATED_ROOT_VOLUME_LIMIT)
    }

    /// The private IPv4 address; `None` in an IPv6-only subnet, where `private_ip` holds
    /// the model's `NO_PRIVATE_IPV4` (0.0.0.0) and the interface has IPv6 only.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        (!self.private_ip.is_unspecified()).then_some(self.private_ip)
    }

    /// `ip-10-0-1-5`: the short host name EC2 derives from the private address; the
    /// instance id (resource-based name) for an instance without IPv4.
    pub fn hostname(&self) -> String {
        let Some(ip) = self.ipv4() else {
            return self.instance_id.clone();
        };
        let o = ip.octets();
        format!("ip-{}-{}-{}-{}", o[0], o[1], o[2], o[3])
    }

    /// `ip-10-0-1-5.ec2.internal` in us-east-1, `ip-….<region>.compute.internal` elsewhere.
    pub fn local_hostname(&self) -> String {
        if self.region == "us-east-1" {
            format!("{}.ec2.internal", self.hostname())
        } else {
            format!("{}.{}.compute.internal", self.hostname(), self.region)
        }
    }

    /// `ec2-198-18-0-7.compute-1.amazonaws.com` (us-east-1) or
    /// `ec2-….<region>.compute.amazonaws.com`, when the instance has a public address.
    pub fn public_hostname(&self) -> Option<String> {
        let o = self.public_ip?.octets();
        let host = format!("ec2-{}-{}-{}-{}", o[0], o[1], o[2], o[3]);
        Some(if self.region == "us-east-1" {
            format!("{host}.compute-1.amazonaws.com")
        } else {
            format!("{host}.{}.compute.amazonaws.com", self.region)
        })
    }
}

/// What survives a stop, a reboot or a daemon restart: the instance's disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDisk {
    pub fs: vfs::Vfs,
    /// Installed optional packages (`httpd`, `nginx` …).
    pub packages: BTreeSet<String>,
    /// Services started at boot (`systemctl enable`).
    pub enabled: BTreeSet<String>,
    /// Whether first boot (user data) has already happened.
    pub first_boot_done: bool,
    pub host_key: HostKey,
    /// The console log so far (GetConsoleOutput).
    pub console: String,
    /// Mounted EBS volumes by mount point ([`volumes`]).
    #[serde(default)]
    pub mounts: BTreeMap<String, volumes::Mount>,
}

impl InstanceDisk {
    /// The disk of a freshly launched instance: the image's filesystem, with `host_key`
    /// (pass `HostKey::from_seed` for deterministic worlds).
    pub fn fresh(profile: &InstanceProfile, host_key: HostKey) -> Self {
        InstanceDisk {
            fs: image::build_fs(profile),
            packages: BTreeSet::new(),
            enabled: BTreeSet::new(),
            first_boot_done: false,
            host_key,
            console: String::new(),
            mounts: BTreeMap::new(),
        }
    }
}

/// Mutable runtime state not worth persisting.
#[derive(Default)]
struct Runtime {
    /// Running services by unit name, with the task serving them.
    running: BTreeMap<String, tokio::task::JoinHandle<()>>,
    /// IMDSv2 session tokens and when they expire.
    imds_tokens: BTreeMap<String, tokio::time::Instant>,
}

/// The locked disk. Reading goes through `Deref`; the first `DerefMut` bumps the
/// instance's disk generation (conservatively: a write that then fails counts too).
pub(crate) struct DiskGuard<'a> {
    disk: MutexGuard<'a, InstanceDisk>,
    generation: &'a AtomicU64,
    bumped: bool,
}

impl std::ops::Deref for DiskGuard<'_> {
    type Target = InstanceDisk;
    fn deref(&self) -> &InstanceDisk {
        &self.disk
    }
}

impl std::ops::DerefMut for DiskGuard<'_> {
    fn deref_mut(&mut self) -> &mut InstanceDisk {
        if !self.bumped {
            // Released with the lock: a snapshot taken after this write sees both.
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.bumped = true;
        }
        &mut self.disk
    }
}

/// One running (or stopped) instance's inside.
pub struct InstanceState {
    profile: RwLock<InstanceProfile>,
    disk: Mutex<InstanceDisk>,
    /// Bumped by every mutable access to the disk ([`DiskGuard`]), so the caller
    /// persists only when something may have changed instead of serializing the whole
    /// disk to find out (a 100 MB upload made that the daemon's main cost).
    disk_generation: AtomicU64,
    runtime: Mutex<Runtime>,
    net: Arc<dyn InstanceNet>,
    ssh_config: Arc<russh::server::Config>,
    /// SSH connections being served now ([`ssh::MAX_CONNECTIONS_PER_INSTANCE`]).
    ssh_connections: std::sync::atomic::AtomicUsize,
    /// CPU time the instance's workload has really used, in nanoseconds, measured per
    /// thread by the commands that burn it ([`shell::stress`]); `CPUUtilization` is
    /// its growth over a period.
    cpu_ns: AtomicU64,
    /// Set when the instance stops: its CPU hogs end.
    halted: std::sync::atomic::AtomicBool,
}

impl InstanceState {
    /// A freshly launched instance: the image's filesystem, a new host key.
    pub fn launch(profile: InstanceProfile, net: Arc<dyn InstanceNet>) -> Arc<Self> {
        let disk = InstanceDisk::fresh(&profile, HostKey::generate());
        Self::from_disk(profile, disk, net)
    }

    /// An instance brought back from its persisted disk (after stop/start or a daemon
    /// restart): same host key, same files.
    pub fn from_disk(
        profile: InstanceProfile,
        disk: InstanceDisk,
        net: Arc<dyn InstanceNet>,
    ) -> Arc<Self> {
        let ssh_config = ssh::server_config(&disk.host_key, profile.image);
        let mut disk = disk;
        disk.fs.set_capacity(profile.disk_capacity());
        Arc::new(InstanceState {
            profile: RwLock::new(profile),
            disk: Mutex::new(disk),
            disk_generation: AtomicU64::new(0),
            runtime: Mutex::new(Runtime::default()),
            net,
            ssh_config,
            ssh_connections: std::sync::atomic::AtomicUsize::new(0),
            cpu_ns: AtomicU64::new(0),
            halted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A copy of the profile.
    pub fn profile(&self) -> InstanceProfile {
        self.profile
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the profile (a new public address after stop/start, an Elastic IP).
    /// When the DHCP options changed, the instance renews its lease at once: its
    /// `/etc/resolv.conf` and `/etc/hostname` are written again, as the OS's DHCP client
    /// does on renewal (AWS: within hours; vpclab: on the next reconcile).
    pub fn set_profile(&self, profile: InstanceProfile) {
        let renew = self.profile().dhcp != profile.dhcp;
        *self.profile.write().unwrap_or_else(|e| e.into_inner()) = profile.clone();
        if renew {
            let mut disk = self.lock_disk();
            image::write_dhcp_files(&mut disk.fs, &profile);
        }
    }

    /// A whole copy of the disk (tests, export); persisting uses
    /// [`Self::take_disk_changes`], which copies only what changed.
    pub fn disk(&self) -> InstanceDisk {
        self.lock_disk().clone()
    }

    /// A snapshot of the disk with its generation: a later [`Self::disk_generation`]
    /// equal to it means the disk has not been written since.
    pub fn disk_snapshot(&self) -> (u64, InstanceDisk) {
        let disk = self.lock_disk();
        (self.disk_generation.load(Ordering::Acquire), disk.clone())
    }

    /// How many times the disk has been opened for writing so far.
    pub fn disk_generation(&self) -> u64 {
        self.disk_generation.load(Ordering::Acquire)
    }

    pub(crate) fn lock_disk(&self) -> DiskGuard<'_> {
        // A poisoned lock means a bug elsewhere panicked mid-command; the tree itself is
        // still consistent (every mutation is a single map operation), so keep serving.
        DiskGuard {
            disk: self.disk.lock().unwrap_or_else(|e| e.into_inner()),
            generation: &self.disk_generation,
            bumped: false,
        }
    }

    fn lock_runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CPU time the instance's workload has used since it booted.
    pub fn cpu_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed))
    }

    /// Charges CPU time spent on the instance's behalf.
    pub(crate) fn add_cpu_time(&self, spent: std::time::Duration) {
        let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Whether the instance has been shut down ([`Self::shutdown`]).
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// The network the instance's tools use.
    pub fn net(&self) -> &Arc<dyn InstanceNet> {
        &self.net
    }

    /// The host key's public half (`ssh-ed25519 AAAA…`).
    pub fn host_key(&self) -> HostKey {
        self.lock_disk().host_key.clone()
    }

    /// The console output (GetConsoleOutput) so far.
    pub fn console_output(&self) -> String {
        self.lock_disk().console.clone()
    }

    pub(crate) fn append_console(&self, text: &str) {
        let mut disk = self.lock_disk();
        disk.console.push_str(text);
        keep_tail(&mut disk.console, CONSOLE_LIMIT);
    }

    /// Takes the filesystem's next changes to persist ([`vfs::Vfs::take_changes`])
    /// without counting as a write to the disk.
    pub fn take_disk_changes(&self, max_bytes: usize) -> Vec<vfs::Change> {
        self.disk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fs
            .take_changes(max_bytes)
    }

    /// A save failed after taking changes: the next one rewrites the whole disk.
    pub fn mark_disk_unsaved(&self) {
        self.disk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fs
            .mark_unsaved();
    }

    /// Bytes the filesystem holds, as charged to the root volume.
    pub fn disk_used(&self) -> u64 {
        self.lock_disk().fs.used()
    }

    /// Sets the root volume's capacity in bytes, overriding the profile's (tests fill a
    /// small disk quickly).
    pub fn set_disk_capacity(&self, bytes: u64) {
        self.lock_disk().fs.set_capacity(bytes);
    }

    /// Runs `f` on the disk without counting as a write (persisting its small parts).
    pub fn with_disk<T>(&self, f: impl FnOnce(&InstanceDisk) -> T) -> T {
        f(&self.lock_disk())
    }

    /// The services running now (`systemctl start`), by unit name.
    pub fn running_units(&self) -> BTreeSet<String> {
        self.lock_runtime().running.keys().cloned().collect()
    }

    /// Starts these services, as `systemctl start` would (a disk restored from a lab
    /// report, whose learner had started them by hand).
    pub async fn start_units(self: &Arc<Self>, units: &BTreeSet<String>) {
        for unit in units {
            if let Err(e) = services::systemd::start_unit(self, unit).await {
                tracing::warn!(unit, "could not start: {e}");
            }
        }
    }

    /// What the learner changed on this instance's disk compared with its image
    /// ([`overlay::DiskOverlay::diff`]), taking at most `limit` bytes of file content.
    pub fn overlay(&self, limit: u64) -> overlay::DiskOverlay {
        let base = image::build_fs(&self.profile());
        let running = self.running_units();
        self.with_disk(|d| overlay::DiskOverlay::diff(&base, d, &running, limit))
    }

    /// Stops every running service (instance stop or terminate).
    pub fn shutdown(&self) {
        self.halted.store(true, Ordering::Relaxed);
        let mut rt = self.lock_runtime();
        for (_, task) in std::mem::take(&mut rt.running) {
            task.abort();
        }
        rt.imds_tokens.clear();
    }
}

/// Drops the start of `text` so that at most `limit` bytes remain (cut at a character
/// boundary).
pub(crate) fn keep_tail(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut cut = text.len() - limit;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text.drain(..cut);
}

/// Seconds since the Unix epoch, for file times and log lines.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

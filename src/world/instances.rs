//! Instances at runtime: one host stack per `pending`/`running` instance at
//! `Port::Eni(eni)`, serving SSH on port 22, plus its metadata service at
//! `Port::Metadata(eni)` (169.254.169.254:80); one Route 53 Resolver host per VPC.
//!
//! The reconcile task compares the model's instances (at the current time) with the
//! hosts attached and fixes the difference. Disks are persisted as JSON under
//! `<state dir>/instances/<account>/<instance id>.json` (written atomically): after the
//! first boot, after every SSH session, every few seconds while running, and at stop —
//! each time only if the disk was written since the last save.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vpclab_netstack::Port;
use vpclab_netstack::host::{Host, HostConfig, Net};
use vpclab_netstack::internet::MIRROR_ADDR;
use vpclab_netstack::topology::rid;

use super::Worlds;
use super::net::HostNet;
use crate::catalog::Os;
use crate::instance::{Image, InstanceDisk, InstanceProfile, InstanceState};
use crate::model::ec2::instance::{InstanceState as Lifecycle, RuntimeInstance};
use crate::model::{Env, World};

/// How often a running instance's disk is checked for changes and saved.
const PERSIST_EVERY: Duration = Duration::from_secs(5);
/// How often the reconcile task looks at the clock even without a model change
/// (transitions are functions of time).
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

/// The metadata service's address.
const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The resolver's link-local address.
const RESOLVER_LINK_LOCAL: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);

struct Running {
    eni: String,
    /// RebootInstances calls seen; a new one restarts the instance's runtime.
    reboots: u32,
    profile: InstanceProfile,
    host: Host,
    imds: Option<Host>,
    state: Arc<InstanceState>,
    tasks: Vec<JoinHandle<()>>,
    path: PathBuf,
    disk: Arc<DiskSaver>,
}

impl Running {
    fn stop(self) {
        self.state.shutdown();
        for t in &self.tasks {
            t.abort();
        }
        self.host.remove();
        if let Some(h) = &self.imds {
            h.remove();
        }
        self.disk.save_if_changed(&self.state);
    }
}

/// Saves one instance's disk when it changed since the last save. Serializing a disk
/// is proportional to its files (a 100 MB `scp` upload makes it a 133 MB JSON file), so
/// the disk's generation decides whether to save, and the periodic and end-of-session
/// saves run on tokio's blocking pool rather than stalling the workers that carry
/// every packet of the world.
struct DiskSaver {
    path: PathBuf,
    /// The generation last written (`None`: nothing written by this runtime yet). The
    /// lock also keeps two saves of the same file from overlapping.
    saved: Mutex<Option<u64>>,
}

impl DiskSaver {
    fn new(path: PathBuf, saved: Option<u64>) -> Arc<DiskSaver> {
        Arc::new(DiskSaver {
            path,
            saved: Mutex::new(saved),
        })
    }

    /// Saves now if the disk changed since the last save. Blocks while it writes.
    fn save_if_changed(&self, state: &InstanceState) {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if *saved == Some(state.disk_generation()) {
            return;
        }
        let (generation, disk) = state.disk_snapshot();
        if save_disk(&self.path, &disk) {
            *saved = Some(generation);
        }
    }

    /// [`Self::save_if_changed`] on the blocking pool.
    async fn save_in_background(self: &Arc<Self>, state: &Arc<InstanceState>) {
        let (me, state) = (self.clone(), state.clone());
        let _ = tokio::task::spawn_blocking(move || me.save_if_changed(&state)).await;
    }
}

/// The instances and resolvers of one world.
pub(crate) struct Runtime {
    account: String,
    net: Net,
    worlds: Worlds,
    running: BTreeMap<String, Running>,
    resolvers: BTreeMap<String, (Ipv4Net, Host, JoinHandle<()>)>,
}

impl Runtime {
    pub(crate) fn new(account: &str, net: Net, worlds: Worlds) -> Runtime {
        Runtime {
            account: account.to_string(),
            net,
            worlds,
            running: BTreeMap::new(),
            resolvers: BTreeMap::new(),
        }
    }

    pub(crate) fn has_eni(&self, eni: &str) -> bool {
        self.running.values().any(|r| r.eni == eni)
    }

    pub(crate) fn shutdown_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.stop();
        }
    }

    fn dir(&self) -> PathBuf {
        self.worlds.cfg().disks_dir.join(&self.account)
    }

    /// Brings the attached hosts in line with `world` at the current time.
    fn reconcile(&mut self, world: &World) {
        let now = (self.worlds.cfg().clock)();
        let wanted: BTreeMap<String, RuntimeInstance> = world
            .runtime_instances(now)
            .into_iter()
            .filter(|ri| {
                matches!(ri.state, Lifecycle::Pending | Lifecycle::Running) && ri.eni_id.is_some()
            })
            .map(|ri| (ri.instance_id.clone(), ri))
            .collect();
        let known: std::collections::BTreeSet<String> = world
            .instances
            .iter()
            .filter(|i| {
                i.settled(now).0 != Lifecycle::Terminated && i.state != Lifecycle::Terminated
            })
            .map(|i| i.id.clone())
            .collect();
        // Stop what should no longer run; forget the disks of terminated instances.
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(r) = self.running.remove(&id) {
                let path = r.path.clone();
                r.stop();
                if !known.contains(&id) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for (id, ri) in &wanted {
            let Some(profile) = profile_of(ri) else {
                continue;
            };
            if self
                .running
                .get(id)
                .is_some_and(|r| r.reboots != ri.reboots)
            {
                // RebootInstances: connections drop, services restart from the
                // persisted disk, user data does not run again.
                if let Some(r) = self.running.remove(id) {
                    r.stop();
                }
            }
            if let Some(r) = self.running.get_mut(id) {
                if r.profile != profile {
                    r.state.set_profile(profile.clone());
                    r.profile = profile;
                }
                continue;
            }
            match self.boot(ri, profile) {
                Ok(r) => {
                    self.running.insert(id.clone(), r);
                }
                Err(e) => tracing::error!(instance = %id, error = %e, "cannot attach the instance"),
            }
        }
        self.reconcile_resolvers(world);
    }

    fn boot(&mut self, ri: &RuntimeInstance, profile: InstanceProfile) -> std::io::Result<Running> {
        let eni = ri.eni_id.clone().unwrap_or_default();
        let subnet = Ipv4Net::new(ri.private_ip, profile.subnet_prefix_len)
            .unwrap_or_else(|_| Ipv4Net::from(ri.private_ip));
        let host = self
            .net
            .add_host(HostConfig::vpc(Port::Eni(rid(&eni)), subnet))
            .map_err(std::io::Error::from)?;
        let net = Arc::new(HostNet {
            host: host.clone(),
            addr: ri.private_ip,
            subnet,
            mac: profile.mac.clone(),
            timeout_cap: self.worlds.cfg().instance_timeout_cap,
            local: Default::default(),
        });
        let path = self.dir().join(format!("{}.json", ri.instance_id));
        let disk = load_disk(&path);
        let fresh = disk.is_none();
        // A disk read back from its file is saved already.
        let saver = DiskSaver::new(path.clone(), if fresh { None } else { Some(0) });
        let state = match disk {
            Some(d) => InstanceState::from_disk(profile.clone(), d, net),
            None => InstanceState::launch(profile.clone(), net),
        };
        if fresh {
            // The host key is fixed from now on: known_hosts stays valid.
            saver.save_if_changed(&state);
        }
        let imds = if ri.http_endpoint != "disabled" {
            match self.net.add_host(HostConfig::service(
                Port::Metadata(rid(&eni)),
                vec![Ipv4Net::from(IMDS_ADDR)],
            )) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metadata service not attached");
                    None
                }
            }
        } else {
            None
        };
        let mut tasks = Vec::new();
        let listener = host.listen(22)?;
        {
            let state = state.clone();
            let saver = saver.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _peer)) = listener.accept().await {
                    let state = state.clone();
                    let saver = saver.clone();
                    tokio::spawn(async move {
                        let _ = crate::instance::serve_ssh(stream, state.clone()).await;
                        saver.save_in_background(&state).await;
                    });
                }
            }));
        }
        if let Some(h) = &imds {
            let l = h.listen(80)?;
            let state = state.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = l.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _ = crate::instance::imds::serve_imds(stream, state).await;
                    });
                }
            }));
        }
        // Boot (console, enabled services, user data at first boot), then tell the model
        // the host key and console, then keep the disk saved.
        {
            let state = state.clone();
            let saver = saver.clone();
            let worlds = self.worlds.clone();
            let account = self.account.clone();
            let region = ri.region.clone();
            let id = ri.instance_id.clone();
            let recorded = ri.host_keys.clone();
            tasks.push(tokio::spawn(async move {
                state.boot().await;
                saver.save_in_background(&state).await;
                record_boot(&worlds, &account, &region, &id, &state, recorded);
                loop {
                    tokio::time::sleep(PERSIST_EVERY).await;
                    saver.save_in_background(&state).await;
                }
            }));
        }
        Ok(Running {
            eni,
            reboots: ri.reboots,
            profile,
            host,
            imds,
            state,
            tasks,
            path,
            disk: saver,
        })
    }

    fn reconcile_resolvers(&mut self, world: &World) {
        let wanted: BTreeMap<String, Ipv4Net> = world
            .vpcs
            .iter()
            .map(|v| (v.id.clone(), v.cidr()))
            .collect();
        self.resolvers.retain(|id, (cidr, host, task)| {
            let keep = wanted.get(id) == Some(cidr);
            if !keep {
                task.abort();
                host.remove();
            }
            keep
        });
        for (id, cidr) in wanted {
            if self.resolvers.contains_key(&id) {
                continue;
            }
            let base2 = Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(2));
            let addrs = vec![
                Ipv4Net::new(base2, cidr.prefix_len()).unwrap_or_else(|_| Ipv4Net::from(base2)),
                Ipv4Net::from(RESOLVER_LINK_LOCAL),
            ];
            match super::resolver::start_vpc(
                &self.net,
                &id,
                addrs,
                self.worlds.cfg().dns.of(&self.account),
            ) {
                Ok((host, task)) => {
                    self.resolvers.insert(id, (cidr, host, task));
                }
                Err(e) => tracing::warn!(vpc = %id, error = %e, "resolver not attached"),
            }
        }
    }
}

/// Writes the model's record of the host key and the runtime's console log.
fn record_boot(
    worlds: &Worlds,
    account: &str,
    region: &str,
    id: &str,
    state: &InstanceState,
    recorded: Vec<String>,
) {
    let Some(control) = worlds.control() else {
        return;
    };
    let key = state.host_key().public_openssh();
    let console = state.console_output();
    let env = Env::new(region, (worlds.cfg().clock)()).with_action("vpclab:InstanceBooted");
    let mut c = control.lock().unwrap_or_else(|e| e.into_inner());
    let keys = vec![key];
    let _ = c.mutate(account, &env, false, |w, env| {
        if recorded != keys {
            w.record_host_keys(env, id, keys.clone())?;
        }
        w.set_console_output(env, id, &console)
    });
}

/// The instance's identity for its inside, from the model's record.
fn profile_of(ri: &RuntimeInstance) -> Option<InstanceProfile> {
    let image = match ri.os? {
        Os::AmazonLinux2023 => Image::AmazonLinux2023,
        Os::Ubuntu2404 => Image::Ubuntu2404,
    };
    let prefix = ri.subnet_prefix_len.unwrap_or(24);
    Some(InstanceProfile {
        instance_id: ri.instance_id.clone(),
        image,
        ami_id: ri.image_id.clone(),
        instance_type: ri.instance_type.clone(),
        private_ip: ri.private_ip,
        subnet_prefix_len: prefix,
        public_ip: ri.public_ip,
        region: ri.region.clone(),
        availability_zone: ri.availability_zone.clone(),
        mac: ri.mac.clone().unwrap_or_default(),
        vpc_id: ri.vpc_id.clone(),
        subnet_id: ri.subnet_id.clone(),
        security_groups: ri.security_group_names.clone(),
        key_name: ri.key_name.clone(),
        authorized_key: ri.public_key.clone(),
        user_data: ri.user_data.clone().unwrap_or_default(),
        imds_v2_required: ri.http_tokens == "required",
        dns_server: ri
            .dns_server
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(ri.private_ip) & 0xffff_0000 | 2)),
        package_mirror: SocketAddrV4::new(MIRROR_ADDR, 80),
    })
}

fn load_disk(path: &PathBuf) -> Option<InstanceDisk> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "instance disk unreadable; starting from the image");
            None
        }
    }
}

/// Saves atomically (temporary file, then rename), so a crash leaves the old disk.
/// Whether it was written.
fn save_disk(path: &PathBuf, disk: &InstanceDisk) -> bool {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(disk).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    match write() {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot save the instance disk");
            false
        }
    }
}

/// Follows the account's model: reconciles on every change and a few times a second.
pub(crate) async fn reconcile_loop(
    mut rx: watch::Receiver<Option<Arc<World>>>,
    runtime: Arc<Mutex<Runtime>>,
    _worlds: Worlds,
) {
    loop {
        let world = rx.borrow_and_update().clone();
        if let Some(w) = world {
            runtime
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reconcile(&w);
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
}

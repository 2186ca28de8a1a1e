//! Instances at runtime: one host stack per `pending`/`running` instance at
//! `Port::Eni(eni)`, serving SSH on port 22, plus its metadata service at
//! `Port::Metadata(eni)` (169.254.169.254:80); one Route 53 Resolver host per VPC.
//!
//! The reconcile task compares the model's instances (at the current time) with the
//! hosts attached and fixes the difference. Disks are persisted in one SQLite database
//! per instance, `<state dir>/instances/<account>/<instance id>.db` ([`disks`]): after
//! the first boot, after every SSH session, every few seconds while running, and at
//! stop — each time only if the disk was written since the last save, and then only
//! what changed. A disk saved by an older vpclab as `<instance id>.json` is read once
//! and moved into the database.

mod disks;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vpclab_netstack::Port;
use vpclab_netstack::host::{Host, HostConfig, Net};
use vpclab_netstack::internet::MIRROR_ADDR;
use vpclab_netstack::topology::rid;
use vpclab_netstack::tun::PortTun;

use super::Worlds;
use super::net::HostNet;
use crate::catalog::Os;
use crate::instance::overlay::DiskOverlay;
use crate::instance::sandbox::{AgentLink, AgentSpec, InstanceRoot, RuntimeKind, Sandbox};
use crate::instance::{
    FakeNet, HostKey, Image, ImdsCredentials, ImdsIam, InstanceDisk, InstanceProfile, InstanceState,
};
use crate::model::ec2::iam_profile::InstanceCredentials;
use crate::model::ec2::instance::{InstanceState as Lifecycle, RuntimeInstance};
use crate::model::{Env, Timestamp, World};

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
    /// The emulated runtime's host stack at the interface (`None` for a sandbox, whose
    /// kernel is the stack).
    host: Option<Host>,
    /// The sandbox runtime: the processes and the bridge of their TUN device.
    sandbox: Option<SandboxSlot>,
    /// The metadata service as attached, and the options it was attached with.
    imds: Option<Imds>,
    imds_options: ImdsOptions,
    state: Arc<InstanceState>,
    tasks: Vec<JoinHandle<()>>,
    disk: Arc<DiskSaver>,
}

impl Running {
    fn stop(self) {
        self.state.shutdown();
        for t in &self.tasks {
            t.abort();
        }
        if let Some(h) = &self.host {
            h.remove();
        }
        if let Some(mut s) = self.sandbox {
            // Stop: every process of the instance dies with its PID namespace; the
            // bridge goes with them. The disk (its folders) stays.
            s.sandbox.kill();
            let mut b = s.bridge.lock().unwrap_or_else(|e| e.into_inner());
            b.stopped = true;
            b.tun = None;
            b.agent = None;
        }
        if let Some(m) = self.imds {
            m.stop();
        }
        // The kernel unmounts every filesystem on the way down: the files go back to
        // their volumes before the disk is saved.
        self.state.unmount_detached(true);
        self.disk.save_if_changed(&self.state);
    }
}

/// The metadata options the runtime acts on: whether the service answers at all
/// (`HttpEndpoint`) and whether it also answers at [fd00:ec2::254] (`HttpProtocolIpv6`).
/// IMDSv1/v2 (`HttpTokens`) is in the instance's profile, read per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ImdsOptions {
    endpoint: bool,
    ipv6: bool,
}

impl ImdsOptions {
    fn of(ri: &RuntimeInstance) -> Self {
        ImdsOptions {
            endpoint: ri.http_endpoint != "disabled",
            ipv6: ri.http_protocol_ipv6,
        }
    }
}

/// An instance's metadata service: its host at `Port::Metadata(eni)` and the task that
/// serves HTTP on port 80.
struct Imds {
    host: Host,
    task: JoinHandle<()>,
}

impl Imds {
    fn stop(self) {
        self.task.abort();
        self.host.remove();
    }
}

/// A sandboxed instance: its processes, and the bridge between its `ens5` and the
/// fabric (set once the agent hands the device over).
struct SandboxSlot {
    sandbox: Sandbox,
    bridge: Arc<Mutex<Bridge>>,
}

/// The bridge of a sandbox's device; `stopped` keeps a device handed over after the
/// instance stopped from being attached.
#[derive(Default)]
struct Bridge {
    tun: Option<PortTun>,
    stopped: bool,
    /// The kit's door into the sandbox, usable once the agent has read its spec
    /// (it hands the device over only after).
    agent: Option<AgentLink>,
}

/// Saves one instance's disk when it changed since the last save. The disk's
/// generation decides whether to save, the store writes only what changed, and the
/// periodic and end-of-session saves run on tokio's blocking pool rather than stalling
/// the workers that carry every packet of the world.
struct DiskSaver {
    /// The lock also keeps two saves of the same disk from overlapping.
    inner: Mutex<SaverState>,
}

struct SaverState {
    /// `None` when the database could not be opened: the instance runs unsaved.
    store: Option<disks::DiskStore>,
    /// The generation last written (`None`: nothing written by this runtime yet).
    saved: Option<u64>,
    /// A legacy JSON disk to remove once its contents are saved in the store.
    legacy: Option<PathBuf>,
}

impl DiskSaver {
    fn new(
        store: Option<disks::DiskStore>,
        saved: Option<u64>,
        legacy: Option<PathBuf>,
    ) -> Arc<DiskSaver> {
        Arc::new(DiskSaver {
            inner: Mutex::new(SaverState {
                store,
                saved,
                legacy,
            }),
        })
    }

    /// Saves now if the disk changed since the last save. Blocks while it writes.
    fn save_if_changed(&self, state: &InstanceState) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let generation = state.disk_generation();
        if inner.saved == Some(generation) {
            return;
        }
        let Some(store) = inner.store.as_mut() else {
            return;
        };
        match store.save(state) {
            Ok(()) => {
                inner.saved = Some(generation);
                if let Some(legacy) = inner.legacy.take() {
                    let _ = std::fs::remove_file(legacy);
                }
            }
            Err(e) => {
                tracing::error!(instance = %state.profile().instance_id, error = %e, "cannot save the instance disk");
                state.mark_disk_unsaved();
            }
        }
    }

    /// [`Self::save_if_changed`] on the blocking pool.
    async fn save_in_background(self: &Arc<Self>, state: &Arc<InstanceState>) {
        let (me, state) = (self.clone(), state.clone());
        let _ = tokio::task::spawn_blocking(move || me.save_if_changed(&state)).await;
    }
}

/// The service host behind a gateway endpoint: the addresses it holds, the host, and
/// its listeners' tasks.
type EndpointHost = (Vec<Ipv4Net>, Host, Vec<JoinHandle<()>>);

/// The instances and resolvers of one world.
pub(crate) struct Runtime {
    account: String,
    net: Net,
    worlds: Worlds,
    running: BTreeMap<String, Running>,
    resolvers: BTreeMap<String, (Ipv4Net, Host, JoinHandle<()>)>,
    /// The volume and snapshot tables whose files the last reconcile put in order.
    filed_volumes: Option<(
        crate::model::Table<crate::model::ec2::volume::Volume>,
        crate::model::Table<crate::model::ec2::volume::Snapshot>,
    )>,
    /// The VPC table as of the last resolver reconcile (what the next one diffs with).
    resolved_vpcs: Option<crate::model::Table<crate::model::ec2::vpc::Vpc>>,
    /// The service host behind each gateway VPC endpoint, with the addresses it holds.
    endpoints: BTreeMap<String, EndpointHost>,
    /// Instances whose credentials renewal was asked for, and when.
    renewing: BTreeMap<String, Timestamp>,
    /// ECS tasks' hosts (`world::tasks`), reconciled with the instances.
    tasks: super::tasks::TaskHosts,
}

impl Runtime {
    pub(crate) fn new(account: &str, net: Net, worlds: Worlds) -> Runtime {
        Runtime {
            account: account.to_string(),
            tasks: super::tasks::TaskHosts::new(account, net.clone(), worlds.clone()),
            net,
            worlds,
            running: BTreeMap::new(),
            resolvers: BTreeMap::new(),
            resolved_vpcs: None,
            filed_volumes: None,
            endpoints: BTreeMap::new(),
            renewing: BTreeMap::new(),
        }
    }

    /// The inside of a running (or booting) instance.
    pub(crate) fn state_of(&self, instance_id: &str) -> Option<Arc<InstanceState>> {
        self.running.get(instance_id).map(|r| r.state.clone())
    }

    /// The agent of a running sandboxed instance, once its sandbox has started (`None`
    /// for the emulated runtime, whose inside is [`Self::state_of`]).
    pub(crate) fn agent_of(&self, instance_id: &str) -> Option<AgentLink> {
        let slot = self.running.get(instance_id)?.sandbox.as_ref()?;
        let b = slot.bridge.lock().unwrap_or_else(|e| e.into_inner());
        b.agent.clone()
    }

    /// Whether `instance_id` runs in a sandbox.
    pub(crate) fn is_sandboxed(&self, instance_id: &str) -> bool {
        self.running
            .get(instance_id)
            .is_some_and(|r| r.sandbox.is_some())
    }

    /// The CPU time each running instance's workload has used so far, with its vCPU
    /// count: the emulated runtime's measured hogs, or the sandbox's process tree.
    pub(crate) fn cpu_times(&self) -> BTreeMap<String, (std::time::Duration, u32)> {
        self.running
            .iter()
            .map(|(id, r)| {
                let used = match &r.sandbox {
                    Some(s) => s.sandbox.cpu_time(),
                    None => r.state.cpu_time(),
                };
                let vcpus =
                    crate::catalog::instance_type(&r.profile.instance_type).map_or(1, |t| t.vcpus);
                (id.clone(), (used, vcpus))
            })
            .collect()
    }

    pub(crate) fn has_eni(&self, eni: &str) -> bool {
        self.running.values().any(|r| r.eni == eni)
    }

    pub(crate) fn shutdown_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.stop();
        }
        self.tasks.shutdown_all();
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
                r.stop();
                if !known.contains(&id) {
                    disks::remove(&self.dir(), &id);
                    InstanceRoot::remove(&self.dir(), &id);
                }
            }
        }
        let dir = self.dir();
        for (id, ri) in &wanted {
            let creds = world.instance_credentials(id);
            if let Some(c) = &creds {
                self.renew_credentials(c, ri, now);
            }
            let Some(mut profile) = profile_of(ri, self.worlds.cfg().ca.cert_pem()) else {
                continue;
            };
            profile.iam = creds.map(|c| imds_iam(world, id, c));
            profile.volume_dir = Some(self.volume_dir());
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
            let imds_options = ImdsOptions::of(ri);
            if self
                .running
                .get(id)
                .is_some_and(|r| r.imds_options != imds_options)
                && let Some(eni) = ri.eni_id.clone()
            {
                // ModifyInstanceMetadataOptions on a running instance: the service is
                // attached again with the new options (its open connections close).
                if let Some(r) = self.running.get_mut(id) {
                    if let Some(m) = r.imds.take() {
                        m.stop();
                    }
                    let state = r.state.clone();
                    let new = self.start_imds(imds_options, &eni, &state).unwrap_or_else(|e| {
                        tracing::warn!(instance = %id, error = %e, "metadata service not attached");
                        None
                    });
                    if let Some(r) = self.running.get_mut(id) {
                        r.imds = new;
                        r.imds_options = imds_options;
                    }
                }
            }
            if let Some(r) = self.running.get_mut(id) {
                if r.profile != profile {
                    // A sandbox reads its resolver and names from its own `/etc`.
                    if r.sandbox.is_some()
                        && let Err(e) = sandbox_root(&dir, id, &profile).write_network(&profile)
                    {
                        tracing::warn!(instance = %id, error = %e, "cannot renew the sandbox's DHCP files");
                    }
                    r.state.set_profile(profile.clone());
                    r.profile = profile;
                    // A detached volume leaves its mount (files back to the volume).
                    r.state.unmount_detached(false);
                }
                continue;
            }
            match self.boot(ri, profile) {
                Ok(r) => {
                    // Mounts left by a daemon that died mid-mount, of volumes since
                    // detached, are written back.
                    r.state.unmount_detached(false);
                    self.running.insert(id.clone(), r);
                }
                Err(e) => tracing::error!(instance = %id, error = %e, "cannot attach the instance"),
            }
        }
        self.reconcile_resolvers(world);
        self.reconcile_endpoints(world);
        self.tasks.reconcile(world);
        self.reconcile_volume_files(world);
    }

    /// Where this account's volume and snapshot contents live.
    fn volume_dir(&self) -> PathBuf {
        self.dir().join("volumes")
    }

    /// Snapshot contents are taken when a snapshot first appears (the mounted files
    /// written back first, so the snapshot is of what the instance wrote); the files
    /// of deleted volumes and snapshots go.
    fn reconcile_volume_files(&mut self, world: &World) {
        use crate::instance::volumes;
        // Most commits touch neither table: then there is nothing to read from disk.
        if let Some((v, s)) = &self.filed_volumes
            && v.same_version(&world.volumes)
            && s.same_version(&world.snapshots)
        {
            return;
        }
        self.filed_volumes = Some((world.volumes.clone(), world.snapshots.clone()));
        let dir = self.volume_dir();
        let stored = volumes::stored_ids(&dir);
        for snap in world.snapshots.iter() {
            if stored.contains(&snap.id) {
                continue;
            }
            for r in self.running.values() {
                if let Some(mp) = r.state.mount_of(&snap.volume_id)
                    && let Err(e) = r.state.sync_mount(&mp)
                {
                    tracing::error!(volume = %snap.volume_id, error = %e, "cannot write the volume back");
                }
            }
            let origin = world
                .volumes
                .get(&snap.volume_id)
                .and_then(|v| v.snapshot_id.clone());
            let data = volumes::read_data(&dir, &snap.volume_id)
                .ok()
                .flatten()
                .or_else(|| origin.and_then(|o| volumes::read_data(&dir, &o).ok().flatten()))
                .unwrap_or_default();
            if let Err(e) = volumes::save(&dir, &snap.id, &data) {
                tracing::error!(snapshot = %snap.id, error = %e, "cannot save the snapshot");
            }
        }
        // A volume made from a snapshot keeps its own copy (the snapshot may go).
        for v in world.volumes.iter() {
            if let Some(snap) = &v.snapshot_id
                && !stored.contains(&v.id)
                && let Ok(Some(data)) = volumes::read_data(&dir, snap)
                && let Err(e) = volumes::save(&dir, &v.id, &data)
            {
                tracing::error!(volume = %v.id, error = %e, "cannot copy the snapshot");
            }
        }
        for id in stored {
            if !world.volumes.contains(&id) && !world.snapshots.contains(&id) {
                volumes::remove(&dir, &id);
            }
        }
    }

    /// One service host per gateway VPC endpoint (at `Port::Endpoint`), holding the
    /// addresses of the endpoint's prefix list; endpoints are few, so this compares the
    /// two maps whole.
    fn reconcile_endpoints(&mut self, world: &World) {
        // Gateway endpoints by endpoint id (no interface), interface endpoints by the
        // id of each of their interfaces (with the endpoint's id).
        let mut want: BTreeMap<String, (Vec<Ipv4Net>, Option<String>)> = world
            .vpc_endpoints
            .iter()
            .filter(|e| !e.is_interface())
            .map(|e| {
                let cidrs = world
                    .prefix_list_cidrs(&e.region, &e.prefix_list_id)
                    .unwrap_or_default();
                (e.id.clone(), (cidrs, None))
            })
            .collect();
        for e in world.vpc_endpoints.iter().filter(|e| e.is_interface()) {
            for eni in &e.network_interface_ids {
                let Some(n) = world.network_interfaces.get(eni) else {
                    continue;
                };
                let prefix = world
                    .subnets
                    .get(&n.subnet_id)
                    .map_or(24, |s| s.cidr.prefix_len());
                if let Ok(addr) = Ipv4Net::new(n.private_ip, prefix) {
                    want.insert(eni.clone(), (vec![addr], Some(e.id.clone())));
                }
            }
        }
        let stale: Vec<String> = self
            .endpoints
            .iter()
            .filter(|(id, (addrs, _, _))| want.get(*id).map(|w| &w.0) != Some(addrs))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some((_, host, tasks)) = self.endpoints.remove(&id) {
                tasks.iter().for_each(JoinHandle::abort);
                host.remove();
            }
        }
        for (id, (addrs, interface_of)) in want {
            if self.endpoints.contains_key(&id) || addrs.is_empty() {
                continue;
            }
            let cfg = self.worlds.cfg();
            let started = match &interface_of {
                Some(vpce) => super::internet::start_interface_endpoint_host(
                    &self.net,
                    &self.account,
                    cfg.ca.clone(),
                    cfg.api_door.clone(),
                    vpce,
                    &id,
                    addrs[0],
                ),
                None => super::internet::start_endpoint_host(
                    &self.net,
                    &self.account,
                    cfg.ca.clone(),
                    cfg.api_door.clone(),
                    &id,
                    addrs.clone(),
                ),
            };
            match started {
                Ok((host, tasks)) => {
                    self.endpoints.insert(id, (addrs, host, tasks));
                }
                Err(e) => tracing::warn!(endpoint = %id, error = %e, "endpoint host not attached"),
            }
        }
    }

    /// Asks the model for a new session of the instance's role when there is none or
    /// the current one is about to expire. The secret and token are drawn here (the
    /// model draws no randomness); the commit runs on its own task, and a request is
    /// not repeated for a few seconds while it is under way.
    fn renew_credentials(
        &mut self,
        creds: &InstanceCredentials,
        ri: &RuntimeInstance,
        now: Timestamp,
    ) {
        if !creds.needs_renewal(now) {
            self.renewing.remove(&ri.instance_id);
            return;
        }
        let recent = self
            .renewing
            .get(&ri.instance_id)
            .is_some_and(|t| now.0 - t.0 < 5_000);
        if recent {
            return;
        }
        self.renewing.insert(ri.instance_id.clone(), now);
        let Some(control) = self.worlds.control() else {
            return;
        };
        let (account, region, id) = (
            self.account.clone(),
            ri.region.clone(),
            ri.instance_id.clone(),
        );
        let clock = self.worlds.cfg().clock.clone();
        let secret = random_text(40);
        let token = random_text(120);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let env = Env::new(&region, clock()).with_action("vpclab:InstanceCredentials");
            let mut c = control.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = c.mutate(&account, &env, false, |w, env| {
                w.refresh_instance_credentials(env, &id, &secret, &token)
            }) {
                tracing::warn!(instance = %id, error = ?e, "cannot issue instance credentials");
            }
        });
    }

    /// The metadata service for the instance's interface: a host at 169.254.169.254 (and
    /// at fd00:ec2::254 when `HttpProtocolIpv6` is enabled) serving HTTP on port 80,
    /// unless the instance turned the endpoint off (or it cannot be attached). With the
    /// IPv6 endpoint disabled, nothing answers at fd00:ec2::254: a connection there
    /// times out.
    fn start_imds(
        &self,
        opts: ImdsOptions,
        eni: &str,
        state: &Arc<InstanceState>,
    ) -> std::io::Result<Option<Imds>> {
        if !opts.endpoint {
            return Ok(None);
        }
        let mut cfg = HostConfig::service(Port::Metadata(rid(eni)), vec![Ipv4Net::from(IMDS_ADDR)]);
        if opts.ipv6 {
            cfg = cfg.with_service_ipv6(vpclab_netstack::ipv6::METADATA_V6);
        }
        let host = match self.net.add_host(cfg) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "metadata service not attached");
                return Ok(None);
            }
        };
        let l = host.listen(80)?;
        let state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = l.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = crate::instance::imds::serve_imds(stream, state).await;
                });
            }
        });
        Ok(Some(Imds { host, task }))
    }

    fn boot(&mut self, ri: &RuntimeInstance, profile: InstanceProfile) -> std::io::Result<Running> {
        if let RuntimeKind::Sandbox { agent, cgroups } = &self.worlds.cfg().runtime {
            let (agent, cgroups) = (agent.clone(), cgroups.clone());
            return self.boot_sandbox(ri, profile, &agent, cgroups.as_ref());
        }
        let eni = ri.eni_id.clone().unwrap_or_default();
        let subnet = Ipv4Net::new(ri.private_ip, profile.subnet_prefix_len)
            .unwrap_or_else(|_| Ipv4Net::from(ri.private_ip));
        let mut cfg = HostConfig::vpc(Port::Eni(rid(&eni)), subnet);
        if profile.ipv4().is_none() {
            // IPv6-only subnet: the interface has no IPv4 address and no IPv4 route, so
            // the stack neither answers nor sends IPv4 (its SSH server is reached on
            // its IPv6 address only).
            cfg.addrs.clear();
            cfg.gateway = None;
        }
        if let Some(subnet6) = ri.subnet_ipv6_cidr {
            cfg = cfg.with_vpc_ipv6(&ri.ipv6_addresses, subnet6);
        }
        let host = self.net.add_host(cfg).map_err(std::io::Error::from)?;
        let net = Arc::new(HostNet {
            host: host.clone(),
            addr: ri.private_ip,
            subnet,
            addrs6: ri.ipv6_addresses.clone(),
            subnet6: ri.subnet_ipv6_cidr,
            mac: profile.mac.clone(),
            timeout_cap: self.worlds.cfg().instance_timeout_cap,
            local: Default::default(),
            net: self.net.clone(),
        });
        let (disk, saver) = open_disk(&self.dir(), &ri.instance_id);
        // Never saved: a disk a lab report handed in (a re-grade's scratch world), else
        // the image's.
        let (disk, restart) = match disk {
            Some(d) => (Some(d), Default::default()),
            None => disk_from_overlay(&self.dir(), &ri.instance_id, &profile),
        };
        let state = match disk {
            Some(d) => InstanceState::from_disk(profile.clone(), d, net),
            None => InstanceState::launch(profile.clone(), net),
        };
        // The host key is fixed from now on (known_hosts stays valid); a migrated disk
        // moves into the store at once.
        saver.save_if_changed(&state);
        let imds_options = ImdsOptions::of(ri);
        let imds = self.start_imds(imds_options, &eni, &state)?;
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
                state.start_units(&restart).await;
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
            host: Some(host),
            sandbox: None,
            imds,
            imds_options,
            state,
            tasks,
            disk: saver,
        })
    }

    /// The sandbox runtime's boot: the instance's folders, a sandbox running the agent,
    /// and (once the agent hands it over) its TUN device bridged at the interface's
    /// port, so every packet of its kernel crosses the fabric. The metadata service and
    /// the record of host key and console are as for the emulated runtime.
    fn boot_sandbox(
        &mut self,
        ri: &RuntimeInstance,
        profile: InstanceProfile,
        agent: &Path,
        cgroups: Option<&crate::instance::sandbox::Cgroups>,
    ) -> std::io::Result<Running> {
        let eni = ri.eni_id.clone().unwrap_or_default();
        let net = FakeNet::new(ri.private_ip, profile.subnet_prefix_len, &profile.mac);
        let (disk, saver) = open_disk(&self.dir(), &ri.instance_id);
        let state = match disk {
            Some(d) => InstanceState::from_disk(profile.clone(), d, net),
            None => InstanceState::launch(profile.clone(), net),
        };
        // The host key lives in the instance's disk record: fixed from the first boot.
        saver.save_if_changed(&state);
        let root = sandbox_root(&self.dir(), &ri.instance_id, &profile);
        root.prepare(&profile, &state.host_key())?;
        let subnet = Ipv4Net::new(ri.private_ip, profile.subnet_prefix_len)
            .unwrap_or_else(|_| Ipv4Net::from(ri.private_ip));
        let gateway = Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(1));
        let spec = AgentSpec {
            image: profile.image,
            address: ri.private_ip,
            prefix_len: profile.subnet_prefix_len,
            gateway,
            mtu: crate::instance::sandbox::MTU,
            host_key: state.host_key(),
            user_data: String::from_utf8_lossy(&profile.user_data).into_owned(),
            region: profile.region.clone(),
            package_mirror: Some(profile.package_mirror),
            tool_timeout_ms: self
                .worlds
                .cfg()
                .instance_timeout_cap
                .map(|d| d.as_millis() as u64),
            // IPv6 only where the subnet has a /64 (the emulated stack's rule too).
            ipv6_addresses: if ri.subnet_ipv6_cidr.is_some() {
                ri.ipv6_addresses.clone()
            } else {
                Vec::new()
            },
            subnet6: ri.subnet_ipv6_cidr,
        };
        // The instance type's CPU and memory, where the daemon has cgroups to give.
        let limits = crate::instance::sandbox::Limits::of_type(&profile.instance_type);
        let cgroup = match (cgroups, limits) {
            (Some(c), Some(l)) => match c.instance(&ri.instance_id, l) {
                Ok(cg) => Some(cg),
                Err(e) => {
                    tracing::warn!(instance = %ri.instance_id, error = %e, "no cgroup limits");
                    None
                }
            },
            _ => None,
        };
        let mut sandbox = Sandbox::spawn(agent, &root, &spec, cgroup)?;
        let imds_options = ImdsOptions::of(ri);
        let imds = self.start_imds(imds_options, &eni, &state)?;
        let tasks = Vec::new();
        state.append_console(&format!(
            "vpclab: booting {} ({}) in a sandbox\n",
            ri.instance_id,
            profile.image.default_user()
        ));
        let bridge: Arc<Mutex<Bridge>> = Arc::default();
        if let Some(ctl) = sandbox.take_control() {
            let link = ctl.try_clone().map(AgentLink::new);
            let (bridge, net, port) = (bridge.clone(), self.net.clone(), Port::Eni(rid(&eni)));
            let handle = tokio::runtime::Handle::current();
            let (state, worlds, account) =
                (state.clone(), self.worlds.clone(), self.account.clone());
            let (region, id, recorded) = (
                ri.region.clone(),
                ri.instance_id.clone(),
                ri.host_keys.clone(),
            );
            // The handshake and the console lines block: a thread of their own, which
            // ends when the sandbox does.
            std::thread::spawn(move || {
                // PortTun's pump and the model's subscribers need the runtime.
                let _guard = handle.enter();
                let on_device = |fd| {
                    let mut b = bridge.lock().unwrap_or_else(|e| e.into_inner());
                    if b.stopped {
                        return;
                    }
                    match link {
                        Ok(l) => b.agent = Some(l),
                        Err(e) => {
                            tracing::warn!(instance = %id, error = %e, "no kit requests to the sandbox")
                        }
                    }
                    match PortTun::attach(&net, fd, port) {
                        Ok(t) => b.tun = Some(t),
                        Err(e) => {
                            tracing::error!(instance = %id, error = %e, "cannot bridge the sandbox")
                        }
                    }
                };
                let mut recorded = Some(recorded);
                let console = |line: &str| {
                    state.append_console(&format!("{line}\n"));
                    // The agent's last boot line: record host key and console now.
                    if line.starts_with("Cloud-init finished")
                        && let Some(r) = recorded.take()
                    {
                        record_boot(&worlds, &account, &region, &id, &state, r);
                    }
                };
                if let Err(e) = crate::instance::sandbox::handshake(ctl, on_device, console) {
                    tracing::error!(error = %e, "the instance's sandbox did not start");
                }
            });
        }
        Ok(Running {
            eni,
            reboots: ri.reboots,
            profile,
            host: None,
            sandbox: Some(SandboxSlot { sandbox, bridge }),
            imds,
            imds_options,
            state,
            tasks,
            disk: saver,
        })
    }

    fn reconcile_resolvers(&mut self, world: &World) {
        // This runs after every commit that touches the runtime, so it must not cost a
        // visit per VPC of the account: against the VPC table last reconciled, the
        // persistent map's diff skips what the two versions share and yields only the
        // VPCs this commit changed. The first time (nothing reconciled yet), one merge
        // pass over the attached resolvers and the VPCs, both in id order.
        let mut stale: Vec<String> = Vec::new();
        let mut missing: Vec<(String, Ipv4Net)> = Vec::new();
        if let Some(before) = self.resolved_vpcs.replace(world.vpcs.clone()) {
            for (id, vpc) in world.vpcs.changes_since(&before) {
                let attached = self.resolvers.get(id).map(|(c, _, _)| *c);
                match (attached, vpc.map(|v| v.cidr())) {
                    (Some(had), Some(want)) if had == want => {}
                    (had, want) => {
                        if had.is_some() {
                            stale.push(id.to_string());
                        }
                        if let Some(cidr) = want {
                            missing.push((id.to_string(), cidr));
                        }
                    }
                }
            }
            self.attach_resolvers(stale, missing);
            return;
        }
        let mut have = self
            .resolvers
            .iter()
            .map(|(id, (c, _, _))| (id.as_str(), *c));
        let mut want = world.vpcs.iter().map(|v| (v.id.as_str(), v.cidr()));
        let (mut h, mut w) = (have.next(), want.next());
        loop {
            match (h, w) {
                (None, None) => break,
                (Some((id, _)), None) => {
                    stale.push(id.to_string());
                    h = have.next();
                }
                (None, Some((id, cidr))) => {
                    missing.push((id.to_string(), cidr));
                    w = want.next();
                }
                (Some((hid, hcidr)), Some((wid, wcidr))) => match hid.cmp(wid) {
                    std::cmp::Ordering::Less => {
                        stale.push(hid.to_string());
                        h = have.next();
                    }
                    std::cmp::Ordering::Greater => {
                        missing.push((wid.to_string(), wcidr));
                        w = want.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if hcidr != wcidr {
                            stale.push(hid.to_string());
                            missing.push((wid.to_string(), wcidr));
                        }
                        h = have.next();
                        w = want.next();
                    }
                },
            }
        }
        self.attach_resolvers(stale, missing);
    }

    /// Detaches the resolvers of `stale` VPCs, then attaches one to each `missing` VPC.
    fn attach_resolvers(&mut self, stale: Vec<String>, missing: Vec<(String, Ipv4Net)>) {
        for id in stale {
            if let Some((_, host, task)) = self.resolvers.remove(&id) {
                task.abort();
                host.remove();
            }
        }
        for (id, cidr) in missing {
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
                Err(e) => {
                    tracing::warn!(vpc = %id, error = %e, "resolver not attached");
                    // The next reconcile walks every VPC again, so it retries this one.
                    self.resolved_vpcs = None;
                }
            }
        }
    }
}

/// The instance's stored disk (`None`: never saved, boot from the image) and its
/// saver. A disk an older vpclab saved as JSON is read and saved at the first save.
fn open_disk(dir: &Path, instance_id: &str) -> (Option<InstanceDisk>, Arc<DiskSaver>) {
    let (db, legacy) = disks::paths(dir, instance_id);
    let store = match disks::DiskStore::open(&db) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(path = %db.display(), error = %e, "cannot open the instance disk; it will not be saved");
            None
        }
    };
    let stored = store.as_ref().and_then(|s| match s.load() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(path = %db.display(), error = %e, "instance disk unreadable; starting from the image");
            None
        }
    });
    if let Some(disk) = stored {
        // Read back from the store: saved already.
        return (Some(disk), DiskSaver::new(store, Some(0), None));
    }
    match disks::load_legacy(&legacy) {
        Some(disk) => (Some(disk), DiskSaver::new(store, None, Some(legacy))),
        None => (None, DiskSaver::new(store, None, None)),
    }
}

/// The file of a disk overlay handed in for an instance that has no disk yet.
fn overlay_path(dir: &Path, instance_id: &str) -> PathBuf {
    dir.join(format!("{instance_id}.overlay.json"))
}

/// Puts a lab report's record of what the learner changed inside instance
/// `instance_id` ([`DiskOverlay`]) where the world runtime finds it: the instance, if it
/// has no disk yet, boots from its image with these changes on it (`vpclab grade`
/// builds its scratch world this way).
pub fn write_disk_overlay(
    disks_dir: &Path,
    account: &str,
    instance_id: &str,
    overlay: &DiskOverlay,
) -> std::io::Result<()> {
    let dir = disks_dir.join(account);
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_vec(overlay).map_err(std::io::Error::other)?;
    std::fs::write(overlay_path(&dir, instance_id), json)
}

/// The image's disk for `profile` with a handed-in overlay on it, and the services to
/// start after boot; `(None, none)` when there is no overlay (or it cannot be used,
/// which is logged: the instance then boots from its image).
fn disk_from_overlay(
    dir: &Path,
    instance_id: &str,
    profile: &InstanceProfile,
) -> (Option<InstanceDisk>, BTreeSet<String>) {
    let path = overlay_path(dir, instance_id);
    let Ok(bytes) = std::fs::read(&path) else {
        return (None, BTreeSet::new());
    };
    let overlay: DiskOverlay = match serde_json::from_slice(&bytes) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "disk overlay unreadable; booting from the image");
            return (None, BTreeSet::new());
        }
    };
    let mut disk = InstanceDisk::fresh(profile, HostKey::generate());
    disk.fs.set_capacity(profile.disk_capacity());
    match overlay.apply(&mut disk) {
        Ok(()) => (Some(disk), overlay.running),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "disk overlay refused; booting from the image");
            (None, BTreeSet::new())
        }
    }
}

/// The folders of a sandboxed instance, named as its image names the host: Amazon
/// Linux's `hostname` prints the fully qualified name, Ubuntu's the short one (the
/// emulated shell's `hostname` does the same).
fn sandbox_root(account_dir: &Path, id: &str, profile: &InstanceProfile) -> InstanceRoot {
    let name = if profile.image.hostname_is_fqdn() {
        profile.fqdn()
    } else {
        profile.hostname()
    };
    InstanceRoot::new(account_dir, id, &name)
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

/// Random base64-alphabet text (a secret key, a session token).
fn random_text(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// ISO 8601 in whole seconds, as the metadata service writes times.
fn iso_seconds(t: Timestamp) -> String {
    let s = t.iso();
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
}

/// The metadata service's view of an instance profile.
fn imds_iam(world: &World, id: &str, c: InstanceCredentials) -> ImdsIam {
    let associated = world
        .profile_association_of(id)
        .map(|a| iso_seconds(a.since))
        .unwrap_or_default();
    ImdsIam {
        profile_arn: c.profile_arn,
        profile_id: c.profile_unique_id,
        associated,
        role: c.role_name,
        credentials: c
            .session
            .map(|(key, secret, token, expires, issued)| ImdsCredentials {
                access_key_id: key,
                secret_access_key: secret,
                token,
                expiration: iso_seconds(expires),
                last_updated: iso_seconds(issued),
            }),
    }
}

/// The instance's identity for its inside, from the model's record.
fn profile_of(ri: &RuntimeInstance, ca_pem: &str) -> Option<InstanceProfile> {
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
        security_group_ids: ri.security_group_ids.clone(),
        account_id: ri.account.clone(),
        interface_id: ri.eni_id.clone().unwrap_or_default(),
        key_name: ri.key_name.clone(),
        authorized_key: ri.public_key.clone(),
        user_data: ri.user_data.clone().unwrap_or_default(),
        imds_v2_required: ri.http_tokens == "required",
        imds_disabled: ri.http_endpoint == "disabled",
        dns_server: ri
            .dns_server
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(ri.private_ip) & 0xffff_0000 | 2)),
        package_mirror: SocketAddrV4::new(MIRROR_ADDR, 80),
        root_volume_gib: crate::catalog::image(&ri.image_id).map_or(8, |i| i.root_volume_size_gib),
        trusted_ca_pem: Some(ca_pem.to_string()),
        iam: None,
        volumes: ri
            .volumes
            .iter()
            .map(|v| crate::instance::volumes::AttachedVolume {
                volume_id: v.volume_id.clone(),
                device: v.device.clone(),
                size_gib: v.size_gib,
                snapshot_id: v.snapshot_id.clone(),
            })
            .collect(),
        volume_dir: None,
        dhcp: ri.dhcp.as_ref().map(|d| crate::instance::Dhcp {
            domain_name: d.domain_name.clone(),
            name_servers: d.name_servers.clone(),
            ntp_servers: d.ntp_servers.clone(),
            host_domain: d.host_domain.clone(),
        }),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::FakeNet;
    use crate::instance::vfs::Cred;

    const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    fn profile() -> InstanceProfile {
        InstanceProfile::example(Image::AmazonLinux2023, "10.0.1.5".parse().expect("ip"))
    }

    #[test]
    fn issue10_disks_saved_as_json_by_older_versions_move_into_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = profile();
        // A state directory as an older vpclab left it: the disk as one JSON document.
        let net = FakeNet::new(p.private_ip, 24, &p.mac);
        let old = InstanceState::launch(p.clone(), net.clone());
        old.lock_disk()
            .fs
            .write("/home/ec2-user/notes.txt", b"kept", false, USER, 0o644)
            .expect("write");
        let legacy = dir.path().join("i-0123456789abcdef0.json");
        std::fs::write(&legacy, serde_json::to_vec(&old.disk()).expect("json")).expect("write");

        let (disk, saver) = open_disk(dir.path(), "i-0123456789abcdef0");
        let disk = disk.expect("the legacy disk is read");
        let state = InstanceState::from_disk(p.clone(), disk, net.clone());
        saver.save_if_changed(&state);
        assert!(!legacy.exists(), "the JSON document is gone once saved");
        assert!(dir.path().join("i-0123456789abcdef0.db").exists());
        drop(saver);

        // The next boot reads the store: same files, same host key.
        let (disk, _saver) = open_disk(dir.path(), "i-0123456789abcdef0");
        let disk = disk.expect("stored");
        assert_eq!(
            disk.fs.read("/home/ec2-user/notes.txt", USER),
            Ok(&b"kept"[..])
        );
        assert_eq!(disk.host_key, old.host_key());
        assert_eq!(disk, old.disk());
    }

    #[test]
    fn a_fresh_instance_is_saved_then_only_its_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = profile();
        let net = FakeNet::new(p.private_ip, 24, &p.mac);
        let (disk, saver) = open_disk(dir.path(), "i-1");
        assert!(disk.is_none());
        let state = InstanceState::launch(p.clone(), net.clone());
        saver.save_if_changed(&state);
        state
            .lock_disk()
            .fs
            .write("/home/ec2-user/a", b"1", false, USER, 0o644)
            .expect("w");
        saver.save_if_changed(&state);
        assert!(!state.lock_disk().fs.has_changes());
        drop(saver);
        let (disk, _) = open_disk(dir.path(), "i-1");
        assert_eq!(disk.expect("stored"), state.disk());
        disks::remove(dir.path(), "i-1");
        assert!(!dir.path().join("i-1.db").exists());
    }
}

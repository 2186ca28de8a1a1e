//! The world runtime: turns each account's persisted model into a live network.
//!
//! One [`AccountWorld`] per account holds a [`Net`] (the host stacks and their driver)
//! whose forwarder is the [`Fabric`], the simulated internet ([`internet`]: what-is-my-IP,
//! web site, package mirror over hyper, the learner's computer; and the public DNS
//! resolver at 192.0.2.53), one Route 53 Resolver host per VPC, and one host stack per
//! running instance with its SSH server on port 22 and its metadata service.
//!
//! How it follows the model: [`Worlds::subscriber`] is registered with the control. On
//! every committed change to a networking resource it hands the new world to the
//! account's fabric ([`fabric::LiveFabric`]), which compiles it into a `Topology` before
//! its next decision (so a new security-group rule governs the next packet, and a burst
//! of commits no packet saw in between costs one compile), then hands the new snapshot
//! to the account's reconcile task, which attaches or detaches instance
//! hosts and resolvers to match (instances `pending`/`running` have a host; stopped and
//! terminated ones do not). Instance disks (filesystem, packages, SSH host key) are
//! persisted in one SQLite database per instance under `<state dir>/instances/<account>/`,
//! so instances come back after a stop/start or a daemon restart with the same files and
//! host key.
//!
//! What it leaves to others: packet rules (`netstack`), what happens inside an instance
//! (`instance`), DNS answers (`dns`), the HTTP endpoint of learner access (`access`) is
//! here but the CLI side is `cli::connect`.

pub mod capture;
mod elb;
pub mod fabric;
mod flowlogs;
pub mod health;
mod instances;
pub mod internet;
mod metrics;
pub mod net;
mod resolver;
mod tasks;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::sync::watch;
use vpclab_netstack::host::{Net, TcpStream};
use vpclab_netstack::internet::{LEARNER_ADDR, LEARNER_ADDR6};
use vpclab_netstack::{Fabric, Flow, Outcome, Port};

use crate::dns::{SharedView, Views};
use crate::model::Clock;
use crate::model::ec2::compile;
use crate::model::{Commit, Control, Subscriber, World};

use fabric::LiveFabric;
pub use instances::write_disk_overlay;
pub use internet::Internet;

/// Some host of the internet other than the learner's computer (TEST-NET-2), the
/// source of probes from the `internet` vantage.
pub const INTERNET_PROBE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

/// The kinds the world's hosts follow: instances (their hosts) and VPCs (a resolver each);
/// interfaces and subnets carry the addresses those hosts use.
/// (`iam_profile_association`: the metadata service shows an instance profile's credentials,
/// which association, disassociation and renewal change.)
const RUNTIME_KINDS: &[&str] = &[
    "instance",
    "network_interface",
    "vpc",
    "subnet",
    "ecs_task",
    "iam_profile_association",
    "volume",
    "snapshot",
    // A gateway endpoint has a service host behind it.
    "vpc_endpoint",
];

/// Settings shared by every world of the daemon.
#[derive(Clone)]
pub struct WorldsConfig {
    /// How instances run (decided once by the daemon).
    pub runtime: crate::instance::sandbox::RuntimeKind,
    /// Where instance disks are kept (one folder per account).
    pub disks_dir: PathBuf,
    /// The DNS views the resolvers answer from, one per account (kept current by the
    /// DNS subscriber).
    pub dns: Views,
    /// The model's clock (instance states are functions of time).
    pub clock: Clock,
    /// An upper bound on the timeouts of instance network tools (tests).
    pub instance_timeout_cap: Option<Duration>,
    /// Replaces the flow-log capture window of 60 s (tests).
    pub flow_log_window: Option<Duration>,
    /// vpclab's certificate authority: the simulated internet's HTTPS is signed by it
    /// and instance images trust it.
    pub ca: Arc<crate::tls::Ca>,
    /// Where requests to AWS service endpoints inside the world go (the daemon's API
    /// router); `None`: the endpoints answer 503.
    pub api_door: Option<internet::ApiDoor>,
    /// Replaces the 5-minute period of the published `AWS/EC2` metrics (tests).
    pub metrics_interval: Option<Duration>,
}

/// Every account's world runtime. Cheap to clone.
#[derive(Clone)]
pub struct Worlds {
    inner: Arc<WorldsInner>,
}

struct WorldsInner {
    cfg: WorldsConfig,
    handle: tokio::runtime::Handle,
    control: Mutex<Option<std::sync::Weak<Mutex<Control>>>>,
    worlds: Mutex<BTreeMap<String, Arc<AccountWorld>>>,
}

/// Why learner access could not open a connection.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0} is not a public address or a name this world resolves")]
    UnknownHost(String),
    #[error("connection to {dst} timed out — {why}")]
    TimedOut { dst: SocketAddr, why: String },
    #[error("connection to {0} refused (the instance answered, but nothing listens on that port)")]
    Refused(SocketAddr),
    #[error("connection to {dst} failed: {source}")]
    Io {
        dst: SocketAddr,
        source: std::io::Error,
    },
}

impl Worlds {
    /// An empty registry. Call inside the daemon's tokio runtime.
    pub fn new(cfg: WorldsConfig) -> Worlds {
        Worlds {
            inner: Arc::new(WorldsInner {
                cfg,
                handle: tokio::runtime::Handle::current(),
                control: Mutex::new(None),
                worlds: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Lets instance runtimes write back what they learn (host keys, console output).
    pub fn set_control(&self, control: &Arc<Mutex<Control>>) {
        *self.inner.control.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::downgrade(control));
    }

    /// The subscriber to register with the control: hands each committed world that
    /// touches the network to the account's fabric (which compiles it before its next
    /// decision, see [`fabric`]), then lets the account's reconcile task catch up with it.
    pub fn subscriber(&self) -> Subscriber {
        let me = self.clone();
        Box::new(move |commit: &Commit, world: &Arc<World>| {
            let account = commit.account.as_str();
            let running = me.get(account);
            // Load balancer nodes and health checks follow their own kinds (a target
            // registration changes no topology).
            if let Some(w) = &running
                && commit.touches(elb::KINDS)
            {
                w.elb.send_replace(Some(world.clone()));
            }
            // A commit that touches no networking resource (tags, key pairs, Route 53)
            // leaves the topology and the hosts as they are.
            if running.is_some()
                && !commit.touches(compile::FABRIC_KINDS)
                && !commit.touches(RUNTIME_KINDS)
            {
                return;
            }
            let running_was_none = running.is_none();
            let w = match running {
                Some(w) => {
                    w.set_world(world.clone());
                    w
                }
                None => me.get_or_start(account, world.clone()),
            };
            let logged = flowlogs::logged(world);
            // The interfaces to log: kept by the fabric across topology swaps, so they
            // need no compile now (the next decision compiles the newest world).
            if let Err(e) = w
                .net
                .with_forwarder::<LiveFabric, _>(|f| f.without_compiling().set_flow_logged(logged))
            {
                tracing::error!(error = %e, "the world's forwarder is not a fabric");
            }
            if commit.touches(RUNTIME_KINDS) {
                w.model.send_replace(Some(world.clone()));
            }
            if running_was_none && commit.touches(elb::KINDS) {
                w.elb.send_replace(Some(world.clone()));
            }
        })
    }

    /// The runtime of `account`, if it has one.
    pub fn get(&self, account: &str) -> Option<Arc<AccountWorld>> {
        self.inner
            .worlds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned()
    }

    fn get_or_start(&self, account: &str, world: Arc<World>) -> Arc<AccountWorld> {
        let mut worlds = self.inner.worlds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = worlds.get(account) {
            return w.clone();
        }
        let _guard = self.inner.handle.enter();
        let w = AccountWorld::start(account, world, self.clone());
        worlds.insert(account.to_string(), w.clone());
        w
    }

    /// Stops every world, persisting instance disks first.
    pub async fn shutdown(&self) {
        let worlds: Vec<_> = self
            .inner
            .worlds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for w in worlds {
            w.shutdown();
        }
    }

    pub(crate) fn cfg(&self) -> &WorldsConfig {
        &self.inner.cfg
    }

    pub(crate) fn control(&self) -> Option<Arc<Mutex<Control>>> {
        self.inner
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|w| w.upgrade())
    }
}

/// One account's live network.
pub struct AccountWorld {
    account: String,
    net: Net,
    internet: Internet,
    model: watch::Sender<Option<Arc<World>>>,
    /// The newest world, for the load balancer nodes (`elb`).
    elb: watch::Sender<Option<Arc<World>>>,
    runtime: Arc<Mutex<instances::Runtime>>,
    /// Another host of the internet (not the learner), attached when a probe first
    /// needs it.
    probe: Mutex<Option<vpclab_netstack::host::Host>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AccountWorld {
    fn start(account: &str, world: Arc<World>, worlds: Worlds) -> Arc<AccountWorld> {
        let net = Net::new(LiveFabric::new(account, world));
        let internet = Internet::start(
            &net,
            internet::InternetConfig {
                account: account.to_string(),
                ca: worlds.cfg().ca.clone(),
                api_door: worlds.cfg().api_door.clone(),
                dns: worlds.cfg().dns.of(account),
            },
        )
        .expect("a fresh world has no hosts, so the internet addresses are free");
        let (model, rx) = watch::channel(None);
        let runtime = Arc::new(Mutex::new(instances::Runtime::new(
            account,
            net.clone(),
            worlds.clone(),
        )));
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(instances::reconcile_loop(
            rx,
            runtime.clone(),
            worlds.clone(),
        )));
        tasks.push(tokio::spawn(flowlogs::run(
            account.to_string(),
            net.clone(),
            worlds.clone(),
        )));
        tasks.push(tokio::spawn(metrics::run(
            account.to_string(),
            net.clone(),
            worlds.clone(),
            runtime.clone(),
        )));
        let (elb_tx, elb_rx) = watch::channel(None);
        tasks.push(tokio::spawn(elb::run(
            account.to_string(),
            net.clone(),
            worlds.clone(),
            elb_rx,
        )));
        tasks.push(tokio::spawn(metrics::run_nat(
            account.to_string(),
            net.clone(),
            worlds.clone(),
        )));
        match resolver::start_public(&net, worlds.cfg().dns.of(account)) {
            Ok(t) => tasks.extend(t),
            Err(e) => tracing::error!(error = %e, "the public DNS resolver could not start"),
        }
        Arc::new(AccountWorld {
            account: account.to_string(),
            net,
            internet,
            model,
            elb: elb_tx,
            runtime,
            probe: Mutex::new(None),
            tasks,
        })
    }

    /// The account this world belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The host stacks of this world.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The simulated internet (mirror, learner).
    pub fn internet(&self) -> &Internet {
        &self.internet
    }

    /// The learner's address as the world sees it.
    pub fn learner_addr(&self) -> Ipv4Addr {
        LEARNER_ADDR
    }

    fn set_world(&self, world: Arc<World>) {
        if let Err(e) = self
            .net
            .with_forwarder::<LiveFabric, _>(|f| f.set_world(world))
        {
            tracing::error!(error = %e, "the world's forwarder is not a fabric");
        }
    }

    /// The capture tap of this world's fabric.
    pub fn tap(&self) -> Option<Arc<capture::Tap>> {
        self.net.with_forwarder::<LiveFabric, _>(|f| f.tap()).ok()
    }

    /// Runs `f` on this world's fabric, with the topology of the newest committed world
    /// (packets wait meanwhile): how "why can't A reach B?" is asked.
    pub fn with_fabric<R>(&self, f: impl FnOnce(&mut Fabric) -> R) -> Option<R> {
        self.net
            .with_forwarder::<LiveFabric, _>(|live| f(live.current()))
            .ok()
    }

    /// Resolves `host` as the world's internet would: an IPv4 literal, or a name answered
    /// by the public DNS view (public instance names, public hosted zones).
    pub fn resolve_public(&self, host: &str, dns: &SharedView) -> Option<Ipv4Addr> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(ip);
        }
        let mut name = host.trim_end_matches('.').to_string();
        name.push('.');
        let qname = Name::from_ascii(&name).ok()?;
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname, RecordType::A));
        let bytes = msg.to_vec().ok()?;
        let view = dns.read().unwrap_or_else(|e| e.into_inner()).clone();
        let reply = crate::dns::answer(
            &view,
            crate::dns::Vantage::Internet,
            &bytes,
            crate::dns::Transport::Tcp,
        )?;
        let reply = Message::from_vec(&reply).ok()?;
        reply.answers.iter().find_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
    }

    /// Opens a TCP connection from the learner's address to `dst`, crossing the internet
    /// gateway, NACLs and security groups. On a timeout, the fabric's own decision path
    /// says why when it knows.
    pub async fn learner_connect(
        &self,
        dst: impl Into<SocketAddr>,
        timeout: Duration,
    ) -> Result<TcpStream, AccessError> {
        let dst = dst.into();
        match self.internet.learner().connect_timeout(dst, timeout).await {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(AccessError::TimedOut {
                dst,
                why: self.explain_timeout(dst),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(AccessError::Refused(dst))
            }
            Err(source) => Err(AccessError::Io { dst, source }),
        }
    }

    /// Opens a TCP connection to `dst` from [`INTERNET_PROBE_ADDR`], some host of the
    /// internet other than the learner's computer.
    pub async fn internet_connect(
        &self,
        dst: SocketAddrV4,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        let host = {
            let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
            match &*probe {
                Some(h) => h.clone(),
                None => {
                    let h = self
                        .net
                        .add_host(vpclab_netstack::host::HostConfig::internet(
                            INTERNET_PROBE_ADDR,
                        ))
                        .map_err(std::io::Error::from)?;
                    *probe = Some(h.clone());
                    h
                }
            }
        };
        host.connect_timeout(dst, timeout).await
    }

    /// The inside of the running (or booting) instance `instance_id`: its shell and
    /// its own network stack, for the kit's probes (never the learner's session).
    pub fn instance(&self, instance_id: &str) -> Option<Arc<crate::instance::InstanceState>> {
        self.runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state_of(instance_id)
    }

    /// The agent of the sandboxed instance `instance_id` (the sandbox runtime's inside,
    /// for the kit's probes), and whether the instance runs in a sandbox at all: a
    /// sandboxed instance whose agent is not ready yet is `(None, true)`.
    pub fn sandbox_agent(
        &self,
        instance_id: &str,
    ) -> (Option<crate::instance::sandbox::AgentLink>, bool) {
        let rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        (rt.agent_of(instance_id), rt.is_sandboxed(instance_id))
    }

    /// Why a SYN from the learner to `dst` got no answer, in one phrase.
    pub fn explain_timeout(&self, dst: SocketAddr) -> String {
        let now = self.net.now();
        let dst = match dst {
            SocketAddr::V4(d) => d,
            SocketAddr::V6(d) => {
                // The IPv6 walk answers for the SYN from the learner's IPv6 address.
                let p = vpclab_netstack::ipv6::Pkt6 {
                    src: LEARNER_ADDR6,
                    dst: *d.ip(),
                    proto: 6,
                    sport: 40000,
                    dport: d.port(),
                    icmp: None,
                };
                // And for its reply: an egress-only gateway drops the answer to a
                // connection that came in through the internet gateway.
                let verdicts =
                    self.with_fabric(|f| f.explain_round_trip6(now, &Port::Internet, &p));
                return match verdicts.map(|(f, b)| (f.outcome, b.map(|b| b.outcome))) {
                    Some((Outcome::Drop(reason), _)) => format!("dropped: {reason}"),
                    Some((Outcome::Deliver(_), Some(Outcome::Drop(reason)))) => {
                        format!("the reply was dropped: {reason}")
                    }
                    Some((Outcome::Deliver(port), _)) => {
                        format!("the network let it through to {port}, but nothing answered")
                    }
                    None => "no answer".to_string(),
                };
            }
        };
        let flow = Flow::tcp_syn(LEARNER_ADDR, 40000, *dst.ip(), dst.port());
        let verdicts = self.with_fabric(|f| f.explain_round_trip(now, &Port::Internet, &flow));
        let Some((forward, back)) = verdicts else {
            return "no answer".to_string();
        };
        match (&forward.outcome, back.as_ref().map(|b| &b.outcome)) {
            (Outcome::Drop(reason), _) => format!("dropped: {reason}"),
            (Outcome::Deliver(_), Some(Outcome::Drop(reason))) => {
                format!("the reply was dropped: {reason}")
            }
            (Outcome::Deliver(Port::Eni(eni)), _) => {
                if self.runtime_has_eni(eni) {
                    "the network let it through, but the instance did not answer".to_string()
                } else {
                    format!(
                        "the network let it through to {eni}, but no running instance answers there (is it stopped or still booting?)"
                    )
                }
            }
            (Outcome::Deliver(port), _) => format!("delivered to {port}, which did not answer"),
        }
    }

    fn runtime_has_eni(&self, eni: &str) -> bool {
        self.runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_eni(eni)
    }

    fn shutdown(&self) {
        self.runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown_all();
    }
}

impl Drop for AccountWorld {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

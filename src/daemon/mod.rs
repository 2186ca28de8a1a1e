//! The composition root: everything `vpclab up` runs, assembled in one place, so that the
//! CLI, every test and the benchmarks start the same daemon.
//!
//! [`DaemonConfig`] holds every knob (listen addresses, authentication, instance boot
//! delay, timeout caps, health-check interval, connection limits); the CLI builds it once
//! from flags and environment, tests build it directly. Nothing below this module reads
//! the environment. [`StateDir`] owns the on-disk layout. [`Daemon::start`] opens the
//! state, wires the model's change events to their subscribers (the DNS view, the world
//! runtime, the Route 53 health checkers), starts the periodic tasks (the model's tick,
//! the S3 sweep of due lifecycle actions and restores), binds the API and DNS
//! endpoints, and returns a [`Running`] daemon with its addresses and a way to stop it.
//!
//! Start-up order matters and is the one place it is written down: the DNS view
//! subscribes before the world runtime (resolvers read the view), the health checkers
//! after it (they join each account's network).

pub mod access;
mod keys;
mod observe;
pub mod proxy;
pub mod serve;
mod state_dir;
pub mod tun;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::api::sigv4::AuthMode;
use crate::api::{self, AppState};
use crate::model::Control;
pub use serve::ApiLimits;
pub use state_dir::{EndpointInfo, StateDir};

/// Where the public DNS endpoint listens unless told otherwise.
pub const DEFAULT_DNS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    5300,
));
/// Where the API listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    4566,
));

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthConfig {
    /// Any well-formed credentials, one account.
    Open,
    /// SigV4 verified against `access-keys.toml` (created with one key if missing).
    Strict,
}

/// Where the browser proxy listens unless told otherwise.
pub const DEFAULT_PROXY_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    4580,
));

/// Where an optional host-side listener (the DNS endpoint, the browser proxy) listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsListen {
    /// Its default address ([`DEFAULT_DNS_LISTEN`], [`DEFAULT_PROXY_LISTEN`]); when that
    /// is busy the daemon starts without it and says so.
    Default,
    /// This address, which must bind.
    At(SocketAddr),
    /// No host-side DNS endpoint.
    Off,
}

/// Every knob of the daemon.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub state_dir: StateDir,
    /// The AWS API endpoint (port 0 picks a free port).
    pub listen: SocketAddr,
    pub dns_listen: DnsListen,
    /// The browser proxy (SOCKS5 and HTTP, `daemon::proxy`).
    pub proxy_listen: DnsListen,
    /// The region of the printed `export` line (every region works per request).
    pub region: String,
    pub auth: AuthConfig,
    /// `--iam enforce`: IAM policies apply to every account's non-root callers.
    pub iam_enforce: bool,
    /// Attach a TUN device of this name to the default credentials' world (root only).
    pub tun: Option<String>,
    /// How long instances stay `pending` (and `stopping`/`shutting-down`).
    pub boot_delay: Duration,
    /// An upper bound on the timeouts of instance network tools (tests).
    pub instance_timeout_cap: Option<Duration>,
    /// Replaces every Route 53 health check's probe interval (tests).
    pub health_interval: Option<Duration>,
    /// Replaces the VPC Flow Logs capture window of 60 s (tests).
    pub flow_log_window: Option<Duration>,
    /// Replaces the 5-minute period of the `AWS/EC2` metrics CloudWatch gets (tests).
    pub metrics_interval: Option<Duration>,
    /// Connection limits and timeouts of the API port.
    pub limits: ApiLimits,
    /// A course folder (`vpclab up --class`): its roster's keys join strict mode, labs
    /// follow the course, and the instructor's dashboard is served.
    pub class: Option<std::path::PathBuf>,
    /// `--database`: the PostgreSQL URL of the class's roster, progress and grades.
    pub class_database: Option<String>,
    /// `--runtime`: how instances run (emulated shell or rootless sandboxes).
    pub runtime: crate::instance::sandbox::RuntimeChoice,
    /// The `vpclab` binary a sandbox runs as its agent (`None`: this process is not
    /// `vpclab`, e.g. a test binary, so only the emulated runtime is possible).
    pub agent_exe: Option<std::path::PathBuf>,
    /// Tests: milliseconds added to the wall clock, read on every use, so a test moves
    /// the daemon days ahead (S3 lifecycle rules count days). `None` in `vpclab up`.
    pub clock_offset: Option<Arc<AtomicI64>>,
    /// How often the S3 sweep applies due lifecycle actions and restore completions in
    /// every bucket (`api::s3::sweep`).
    pub s3_sweep_interval: Duration,
}

impl DaemonConfig {
    /// The defaults of `vpclab up` for a state directory.
    pub fn new(state_dir: StateDir) -> DaemonConfig {
        DaemonConfig {
            state_dir,
            listen: DEFAULT_LISTEN,
            dns_listen: DnsListen::Default,
            proxy_listen: DnsListen::Default,
            region: "us-east-1".to_string(),
            auth: AuthConfig::Open,
            iam_enforce: false,
            tun: None,
            boot_delay: Duration::from_millis(
                u64::try_from(crate::model::ec2::instance::DEFAULT_BOOT_DELAY_MS)
                    .unwrap_or_default(),
            ),
            instance_timeout_cap: None,
            health_interval: None,
            flow_log_window: None,
            metrics_interval: None,
            limits: ApiLimits::default(),
            class: None,
            class_database: None,
            runtime: crate::instance::sandbox::RuntimeChoice::default(),
            agent_exe: std::env::current_exe().ok().filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vpclab"))
            }),
            clock_offset: None,
            s3_sweep_interval: crate::api::s3::sweep::DEFAULT_INTERVAL,
        }
    }

    /// A configuration for tests and benchmarks: loopback port 0 for the API and DNS,
    /// short instance transitions (300 ms), tool timeouts capped at 3 s, health checks
    /// and the S3 sweep every 500 ms.
    pub fn for_tests(state_dir: StateDir) -> DaemonConfig {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        DaemonConfig {
            listen: any_port,
            dns_listen: DnsListen::At(any_port),
            proxy_listen: DnsListen::At(any_port),
            boot_delay: Duration::from_millis(300),
            instance_timeout_cap: Some(Duration::from_secs(3)),
            health_interval: Some(Duration::from_millis(500)),
            s3_sweep_interval: Duration::from_millis(500),
            ..DaemonConfig::new(state_dir)
        }
    }
}

/// The credentials of the printed `export` line and the account they act for.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub account: String,
}

/// The daemon.
pub struct Daemon;

/// A started daemon: where it listens, and the handle that stops it.
pub struct Running {
    pub api_addr: SocketAddr,
    pub dns_addr: Option<SocketAddr>,
    /// The browser proxy (SOCKS5 and HTTP on one port), unless off or busy.
    pub proxy_addr: Option<SocketAddr>,
    pub region: String,
    pub credentials: Credentials,
    /// The TUN device of `--tun`, with the route it carries and the kernel side's address.
    pub tun: Option<String>,
    pub state_dir: StateDir,
    /// Things the operator should know (a default port that was busy, a non-loopback
    /// listen address); the CLI prints them.
    pub warnings: Vec<String>,
    /// The instance runtime chosen at start-up and why (`vpclab status` shows it).
    pub runtime: (String, String),
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    /// Starts everything `vpclab up` runs. Call inside a multi-threaded tokio runtime.
    pub async fn start(cfg: DaemonConfig) -> anyhow::Result<Running> {
        if crate::model::region::region(&cfg.region).is_none() {
            anyhow::bail!("unknown region {:?}", cfg.region);
        }
        let mut warnings = Vec::new();
        let state_dir = cfg.state_dir.clone();
        let control = Control::open(&state_dir.store())?;
        let iam_keys = crate::api::iam::keys::IamKeys::new();
        // A class: the roster is a key store beside the keys file (strict mode only).
        let course = cfg
            .class
            .as_deref()
            .map(|dir| crate::class::Course::open(dir, cfg.class_database.as_deref()))
            .transpose()?;
        if let Some(c) = &course {
            // Progress a daemon kept in its state database before the course's store
            // held it moves there once; then the gradebook is brought up to date.
            let moved = c.adopt_logs(&|stream: &str| Ok(control.journal(stream)?));
            match moved {
                Ok(0) => {}
                Ok(n) => warnings.push(format!(
                    "moved {n} learners' progress logs from the state database to {}",
                    c.store.describe()
                )),
                Err(e) => {
                    anyhow::bail!("cannot move the progress logs to the course's store: {e:#}")
                }
            }
            c.refresh_grades()?;
        }
        let roster = course.as_ref().map(|c| c.index()).transpose()?;
        if roster.is_some() && cfg.auth != AuthConfig::Strict {
            anyhow::bail!("a class needs --auth strict");
        }
        let (auth, credentials) = match cfg.auth {
            AuthConfig::Open => (
                AuthMode::Open,
                Credentials {
                    access_key: "test".to_string(),
                    secret_key: "test".to_string(),
                    account: crate::model::DEFAULT_ACCOUNT.to_string(),
                },
            ),
            AuthConfig::Strict => {
                let keys = keys::load_or_create(&state_dir.keys_file())?;
                let first = keys.keys.first().context("the keys file holds no key")?;
                let creds = Credentials {
                    access_key: first.access_key.clone(),
                    secret_key: first.secret_key.clone(),
                    account: first.account.clone(),
                };
                let mut ring = crate::api::sigv4::KeyRing::new(keys);
                if let Some(r) = &roster {
                    ring = ring.with_store(r.clone());
                }
                // IAM users' access keys and STS sessions, indexed from the model's
                // change events (subscribed below, before anything is served).
                ring = ring.with_store(iam_keys.clone());
                (AuthMode::Strict(Arc::new(ring)), creds)
            }
        };
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let api_addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        if !api_addr.ip().is_loopback() {
            warnings.push(format!(
                "the API listens on {api_addr}, which is not a loopback address: other machines can reach it{}",
                if cfg.auth == AuthConfig::Open {
                    " with any credentials (consider --auth strict)"
                } else {
                    ""
                }
            ));
        }
        let control = Arc::new(Mutex::new(control));
        lock_control(&control).subscribe(iam_keys.subscriber());
        // The view every DNS answer comes from (host endpoint and in-world resolvers).
        let dns_views = crate::dns::Views::default();
        lock_control(&control).subscribe(crate::dns::from_model::dns_subscriber(dns_views.clone()));
        // The world runtime: every account's fabric, internet, resolvers and instances,
        // following each commit (after DNS, so resolvers see the view).
        let clock = match cfg.clock_offset.clone() {
            None => crate::model::system_clock(),
            Some(offset) => {
                let wall = crate::model::system_clock();
                let clock: crate::model::Clock =
                    Arc::new(move || wall().plus_ms(offset.load(Ordering::Relaxed)));
                clock
            }
        };
        // vpclab's certificate authority (the simulated internet's HTTPS), made once
        // and kept in the state directory.
        let ca = Arc::new(
            crate::tls::Ca::load_or_create(&state_dir.ca_cert_file(), &state_dir.ca_key_file())
                .context("vpclab's certificate authority")?,
        );
        // The AWS endpoints inside every world reach the API router, which exists
        // once the API state does (below). The router holds the control, whose
        // subscribers hold the worlds: the slot is emptied when the daemon stops, or
        // that cycle would keep the store (and its lock on the state directory) alive.
        let door_router: DoorRouter = Arc::default();
        // The instance runtime, decided once: every instance of this daemon runs on it.
        let (runtime, why) =
            crate::instance::sandbox::resolve(cfg.runtime, cfg.agent_exe.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(runtime = runtime.name(), reason = %why, "instance runtime");
        let runtime_info = (runtime.name().to_string(), why);
        let acm_ca = ca.clone();
        let worlds = crate::world::Worlds::new(crate::world::WorldsConfig {
            runtime,
            ca,
            api_door: Some(api_door(door_router.clone())),
            disks_dir: state_dir.instances_dir(),
            dns: dns_views.clone(),
            clock: clock.clone(),
            instance_timeout_cap: cfg.instance_timeout_cap,
            flow_log_window: cfg.flow_log_window,
            metrics_interval: cfg.metrics_interval,
        });
        worlds.set_control(&control);
        lock_control(&control).subscribe(worlds.subscriber());
        // Route 53 health checkers: probe through each account's fabric, publish into the
        // DNS view (after the world runtime, whose networks they join).
        let health = crate::dns::health::HealthBoard::new(dns_views.clone());
        lock_control(&control).subscribe(crate::world::health::subscriber(
            worlds.clone(),
            health.clone(),
            cfg.health_interval,
        ));
        // Held until the daemon stops: dropping it closes the device, and the kernel
        // removes it with its address and route.
        let tun = match &cfg.tun {
            Some(name) => Some(tun::attach(
                &control,
                &worlds,
                &credentials.account,
                &cfg.region,
                name,
            )?),
            None => None,
        };
        let dns_sockets = match cfg.dns_listen {
            DnsListen::Off => None,
            // Asked for explicitly: failing to bind is an error, as for the API.
            DnsListen::At(addr) => Some(bind_dns(addr).await?),
            // The default: a busy port (another daemon) must not stop the API.
            DnsListen::Default => match bind_dns(DEFAULT_DNS_LISTEN).await {
                Ok(sockets) => Some(sockets),
                Err(e) => {
                    warnings.push(format!(
                        "{e:#}; DNS endpoint off (pick one with --dns-listen)"
                    ));
                    None
                }
            },
        };
        let mut dns = None;
        if let Some((udp, tcp)) = dns_sockets {
            let addr = udp.local_addr().context("cannot read the DNS address")?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            // The host endpoint answers as the default credentials' world's internet.
            let task = tokio::spawn(crate::dns::serve_public_dns(
                udp,
                tcp,
                dns_views.of(&credentials.account),
                async {
                    let _ = stopped.await;
                },
            ));
            dns = Some((addr, stop, task));
        }
        let dns_addr = dns.as_ref().map(|(a, _, _)| *a);
        let proxy_listener = match cfg.proxy_listen {
            DnsListen::Off => None,
            DnsListen::At(addr) => Some(proxy::bind(addr).await?),
            DnsListen::Default => match proxy::bind(DEFAULT_PROXY_LISTEN).await {
                Ok(l) => Some(l),
                Err(e) => {
                    warnings.push(format!(
                        "{e:#}; browser proxy off (pick one with --proxy-listen)"
                    ));
                    None
                }
            },
        };
        let proxy_addr = match &proxy_listener {
            Some(l) => Some(l.local_addr().context("cannot read the proxy's address")?),
            None => None,
        };
        let info = EndpointInfo {
            api: format!("http://{api_addr}"),
            dns: dns_addr.map(|a| a.to_string()),
            proxy: proxy_addr.map(|a| a.to_string()),
            region: cfg.region.clone(),
            pid: std::process::id(),
            state_dir: state_dir.root().to_path_buf(),
            runtime: Some(format!("{} ({})", runtime_info.0, runtime_info.1)),
        };
        let endpoint_file = state_dir.endpoint_file();
        std::fs::write(&endpoint_file, serde_json::to_vec_pretty(&info)?)
            .with_context(|| format!("cannot write {}", endpoint_file.display()))?;

        let blobs = crate::api::s3::blob::BlobStore::open(state_dir.objects_dir())
            .with_context(|| format!("cannot create {}", state_dir.objects_dir().display()))?;
        let swept = crate::api::s3::sweep_orphans(&lock_control(&control), &blobs);
        if swept > 0 {
            tracing::info!(files = swept, "removed S3 object files no object names");
        }
        let tables = crate::api::dynamodb::Tables::new(state_dir.dynamodb_dir())
            .with_context(|| format!("cannot create {}", state_dir.dynamodb_dir().display()))?;
        let registry = crate::api::ecr::registry::Registry::open(state_dir.ecr_dir())
            .with_context(|| format!("cannot create {}", state_dir.ecr_dir().display()))?;
        let functions = crate::api::lambda::Functions::open(&state_dir.lambda_dir(), clock.clone())
            .with_context(|| format!("cannot create {}", state_dir.lambda_dir().display()))?;
        let swept = crate::api::lambda::sweep_orphans(&lock_control(&control), &functions);
        if swept > 0 {
            tracing::info!(files = swept, "removed function zips no function names");
        }
        let state = AppState::new(control.clone(), clock)
            .with_objects(blobs)
            .with_ecr(registry)
            .with_lambda(functions)
            .with_ca(acm_ca)
            .with_dynamodb(tables)
            .with_auth(auth)
            .with_iam_enforce(cfg.iam_enforce)
            .with_health(health)
            .with_boot_delay(cfg.boot_delay);
        // SNS deliveries to Lambda functions run outside the model's lock.
        let triggers = {
            let (sub, task) = crate::api::lambda::triggers(state.clone());
            lock_control(&control).subscribe(sub);
            task
        };
        let ticker = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(250));
                loop {
                    every.tick().await;
                    let now = (state.clock)();
                    state.lock().tick(now);
                }
            })
        };
        // The S3 sweep: lifecycle actions and restore completions come when they are
        // due, not only when a request names the bucket. Its work (the control's lock,
        // SQLite, deleting freed object files) is blocking, so it runs off the runtime's
        // workers.
        let s3_sweep = {
            let state = state.clone();
            let interval = cfg.s3_sweep_interval;
            tokio::spawn(async move {
                let mut every = tokio::time::interval(interval);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut sweeper = crate::api::s3::sweep::Sweeper::default();
                loop {
                    every.tick().await;
                    let state = state.clone();
                    sweeper = tokio::task::spawn_blocking(move || {
                        sweeper.sweep(&state);
                        sweeper
                    })
                    .await
                    .unwrap_or_default();
                }
            })
        };
        // The web console: live updates follow the change events like the other
        // subscribers; its routes come first so that a browser's `GET /` reaches it.
        *door_router.write().unwrap_or_else(|e| e.into_inner()) = Some(api::router(state.clone()));
        let proxy = proxy_listener.map(|l| {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(
                proxy::Proxy::new(state.clone(), worlds.clone(), &cfg.region).serve(l, async {
                    let _ = stopped.await;
                }),
            );
            (stop, task)
        });
        let mut console = crate::console::Console::new(state.clone(), &cfg.region)
            .with_worlds(worlds.clone())
            .with_proxy(proxy_addr);
        let policy = match (&course, &roster) {
            (Some(c), Some(r)) => {
                let r2 = r.clone();
                console = console.with_password_login(Arc::new(move |user: &str, pw: &str| {
                    r2.password_login(user, pw)
                }));
                Some(Arc::new(c.policy(r.clone())))
            }
            _ => None,
        };
        let engine = crate::lab::service::LabEngine::new(
            state.clone(),
            worlds.clone(),
            state_dir.report_key_file(),
            policy.clone(),
        );
        console = console.with_labs(lab_ops(engine.clone(), policy.clone()));
        lock_control(&control).subscribe(console.subscriber());
        let streams = console.clone();
        let mut app = console
            .clone()
            .router()
            .merge(access::router(state.clone(), worlds.clone()))
            .merge(observe::router(state.clone(), worlds.clone()))
            .merge(crate::lab::service::router(
                state.clone(),
                worlds.clone(),
                state_dir.report_key_file(),
                policy.clone(),
            ));
        if let (Some(c), Some(r), Some(p)) = (course, roster, &policy) {
            let progress = p.progress.subscribe();
            app = app.merge(crate::class::dashboard::router(
                console, c, r, engine, progress,
            ));
        }
        let app = app
            .merge(api::router(state.clone()))
            // Virtual-hosted S3 and website hosts go to S3 before any route looks at
            // the path (`GET /` of a bucket is not the console).
            .layer(axum::middleware::from_fn_with_state(state, api::s3_hosts));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = cfg.limits.clone();
        let task = tokio::spawn(async move {
            let result = serve::serve(listener, app, limits, async {
                let _ = stopped.await;
                // Live-update streams never finish on their own: end them first.
                streams.close_streams();
            })
            .await;
            ticker.abort();
            s3_sweep.abort();
            if let Some((stop, task)) = proxy {
                let _ = stop.send(());
                let _ = task.await;
            }
            triggers.abort();
            drop(tun);
            door_router
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            worlds.shutdown().await;
            if let Some((_, dns_stop, dns_task)) = dns {
                let _ = dns_stop.send(());
                match dns_task.await {
                    Ok(Err(e)) => tracing::error!(error = %e, "the DNS endpoint failed"),
                    Err(e) => tracing::error!(error = %e, "the DNS endpoint stopped abnormally"),
                    Ok(Ok(())) => {}
                }
            }
            let _ = std::fs::remove_file(&endpoint_file);
            result.context("the API server failed")
        });
        Ok(Running {
            api_addr,
            dns_addr,
            proxy_addr,
            region: cfg.region,
            credentials,
            tun: cfg.tun,
            state_dir,
            warnings,
            runtime: runtime_info,
            stop: Some(stop),
            task,
        })
    }
}

impl Running {
    /// The API endpoint URL (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The `export …` line a learner pastes into another terminal.
    pub fn export_line(&self) -> String {
        format!(
            "export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
            self.url(),
            self.credentials.access_key,
            self.credentials.secret_key,
            self.region
        )
    }

    /// Serves until `signal` resolves (or the server fails), then stops gracefully:
    /// in-flight requests finish, instance disks are saved, the endpoint file is removed.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => self.stop().await,
            // The server ended on its own (it failed): that is the result.
            r = &mut self.task => joined(r),
        }
    }

    /// Stops the daemon and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        joined((&mut self.task).await)
    }
}

fn joined(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.unwrap_or_else(|e| Err(anyhow::anyhow!("the daemon stopped abnormally: {e}")))
}

fn lock_control(control: &Mutex<Control>) -> std::sync::MutexGuard<'_, Control> {
    control.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the DNS endpoint's TCP listener and UDP socket on the same address (with port
/// 0, UDP takes the port TCP got, so `dig` falls back to TCP where it asked over UDP).
async fn bind_dns(
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for DNS on {addr} (TCP)"))?;
        let bound = tcp.local_addr().context("cannot read the DNS address")?;
        match tokio::net::UdpSocket::bind(bound).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen for DNS on {addr} (UDP): {}",
        last.map_or_else(|| "no free port".to_owned(), |e| e.to_string())
    ))
}

/// A daemon on its own tokio runtime, for synchronous callers (tests, benchmarks): it
/// starts in [`Background::start`] and stops when dropped.
pub struct Background {
    running: Option<Running>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Background {
    pub fn start(cfg: DaemonConfig) -> anyhow::Result<Background> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let running = rt.block_on(Daemon::start(cfg))?;
        Ok(Background {
            running: Some(running),
            rt: Some(rt),
        })
    }

    /// The runtime the daemon runs on (to drive async clients against it).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// Stops the daemon now and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        let (Some(running), Some(rt)) = (self.running.take(), self.rt.take()) else {
            return Ok(());
        };
        let result = rt.block_on(running.stop());
        rt.shutdown_timeout(Duration::from_secs(5));
        result
    }
}

impl std::ops::Deref for Background {
    type Target = Running;
    fn deref(&self) -> &Running {
        self.running.as_ref().expect("running until stopped")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("vpclab: {e:#}");
        }
    }
}

/// The door from the AWS service endpoints inside the worlds to the API: each request
/// goes through the same router as the API port's (service routing, authentication,
/// handlers), its body read whole.
/// The API router as the in-world endpoints reach it (empty before start and after stop).
type DoorRouter = Arc<std::sync::RwLock<Option<axum::Router>>>;

fn api_door(router: DoorRouter) -> crate::world::internet::ApiDoor {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    Arc::new(move |req: crate::world::internet::DoorRequest| {
        let router = router.read().unwrap_or_else(|e| e.into_inner()).clone();
        Box::pin(async move {
            let Some(router) = router else {
                let mut r =
                    hyper::Response::new(bytes::Bytes::from_static(b"the API is still starting\n"));
                *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                return r;
            };
            let mut request = req.request.map(axum::body::Body::from);
            // A request through a gateway endpoint carries it, where no client can set
            // it, for the service's endpoint-policy check.
            if let Some(endpoint_id) = req.endpoint {
                request
                    .extensions_mut()
                    .insert(crate::model::ec2::vpc_endpoint::ThroughEndpoint {
                        account: req.account.clone(),
                        endpoint_id,
                    });
            }
            let response = match router.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            hyper::Response::from_parts(parts, body)
        })
    })
}

/// The console's lab side panel runs the lab engine's operations for the session's
/// account: in a classroom as the learner the roster gives that account, otherwise as
/// the default learner (the one `vpclab lab` uses on this machine).
fn lab_ops(
    engine: crate::lab::service::LabEngine,
    course: Option<Arc<crate::lab::service::CoursePolicy>>,
) -> crate::console::lab::LabOps {
    Arc::new(move |op, account| {
        let engine = engine.clone();
        let learner = match &course {
            Some(c) => c.roster.learner_of(&account),
            None => Some(crate::lab::default_learner()),
        };
        Box::pin(async move {
            let learner = learner.ok_or_else(|| "no learner has this account".to_string())?;
            let q = std::collections::BTreeMap::from([("learner".to_string(), learner)]);
            engine.op(op, &account, &q).await
        })
    })
}

//! `vpclab up`: opens the state directory (one daemon per directory), loads every world,
//! binds the API listener, prints the endpoints and the `export` line, and serves until
//! Ctrl-C or SIGTERM. A ticker advances time-driven states (NAT gateways pending →
//! available).
//!
//! Other subsystems plug in where marked: the fabric subscribes to the control
//! (`control.subscribe(…)`) before serving; the DNS server binds `--dns-listen`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::api::sigv4::{AccessKey, AuthMode, KeyFile};
use crate::api::{self, AppState};
use crate::model::Control;
use crate::model::ec2::compile;

/// The latest compiled topology of each account.
pub type Topologies = Arc<Mutex<BTreeMap<String, Arc<vpclab_netstack::Topology>>>>;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address of the AWS API endpoint (loopback; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub listen: SocketAddr,
    /// Where state lives (default: your data directory, e.g. ~/.local/share/vpclab).
    #[arg(long, env = "VPCLAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address of the public DNS endpoint (UDP and TCP). Default 127.0.0.1:5300; when that
    /// default is busy, vpclab starts without DNS and says so. A port given here must bind.
    #[arg(long)]
    pub dns_listen: Option<SocketAddr>,
    /// The region printed in the `export` line (any region works per request).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// `open`: any well-formed credentials, one account. `strict`: SigV4 signatures are
    /// verified against `access-keys.toml` in the state directory (created with one key
    /// for account 000000000000 if missing); each key's account is its own world.
    #[arg(long, value_enum, default_value = "open")]
    pub auth: AuthArg,
    /// Root only: attach a TUN device to the world of the default credentials (those of
    /// the printed `export` line) and route the world's public range 198.18.0.0/15 (and
    /// nothing else) through it, so plain `ssh`, `curl` and `ping` reach public IPs.
    #[arg(long)]
    pub tun: bool,
    /// The name of the TUN device of `--tun`.
    #[arg(long, default_value = "vpclab0")]
    pub tun_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    Open,
    Strict,
}

/// The access keys file of `--auth strict`.
pub const KEYS_FILE: &str = "access-keys.toml";

/// Loads the strict-mode keys, creating the file with one fresh key if it is missing.
fn load_or_create_keys(state_dir: &std::path::Path) -> anyhow::Result<KeyFile> {
    let path = state_dir.join(KEYS_FILE);
    if !path.exists() {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut pick = |n: usize, upper: bool| -> String {
            (&mut rng)
                .sample_iter(rand::distr::Alphanumeric)
                .map(char::from)
                .map(|c| if upper { c.to_ascii_uppercase() } else { c })
                .take(n)
                .collect()
        };
        let file = KeyFile {
            keys: vec![AccessKey {
                access_key: format!("AKIA{}", pick(16, true)),
                secret_key: pick(40, false),
                account: crate::model::DEFAULT_ACCOUNT.to_string(),
            }],
        };
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("state directory {} is not usable", state_dir.display()))?;
        let text = toml::to_string(&file).context("cannot encode the access keys")?;
        write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(file);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: KeyFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid keys file", path.display()))?;
    if file.keys.is_empty() {
        anyhow::bail!("{} holds no [[key]] entries", path.display());
    }
    for k in &file.keys {
        if k.account.len() != 12 || !k.account.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!(
                "{}: account {:?} is not a 12-digit account id",
                path.display(),
                k.account
            );
        }
        if k.access_key.is_empty() || k.secret_key.is_empty() {
            anyhow::bail!(
                "{}: every key needs access_key and secret_key",
                path.display()
            );
        }
    }
    Ok(file)
}

/// Writes a file readable only by its owner (it holds secret keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

/// What `up` records in `endpoint.json` for `status` and other tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub api: String,
    pub dns: Option<String>,
    pub region: String,
    pub pid: u32,
    pub state_dir: PathBuf,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    if crate::model::region::region(&args.region).is_none() {
        anyhow::bail!("unknown region {:?}", args.region);
    }
    let state_dir = match args.state_dir.clone() {
        Some(d) => d,
        None => super::default_state_dir()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(args, state_dir))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: UpArgs, state_dir: PathBuf) -> anyhow::Result<()> {
    let control = Control::open(&state_dir)?;
    // The default credentials (printed in the `export` line) and their account.
    let (auth, (key_id, secret), default_account) = match args.auth {
        AuthArg::Open => (
            AuthMode::Open,
            ("test".to_string(), "test".to_string()),
            crate::model::DEFAULT_ACCOUNT.to_string(),
        ),
        AuthArg::Strict => {
            let keys = load_or_create_keys(&state_dir)?;
            let first = keys
                .keys
                .first()
                .map(|k| (k.access_key.clone(), k.secret_key.clone()));
            let account = keys.keys.first().map_or_else(
                || crate::model::DEFAULT_ACCOUNT.to_string(),
                |k| k.account.clone(),
            );
            (AuthMode::strict(keys), first.unwrap_or_default(), account)
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let control = Arc::new(Mutex::new(control));
    // The fabric seam: every committed world is compiled to a netstack Topology (the
    // stored worlds at once, then after each change). The fabric driver swaps these in
    // with `Fabric::set_topology`; until it is wired here, the latest topology of each
    // account is kept in `topologies`.
    let topologies: Topologies = Arc::new(Mutex::new(BTreeMap::new()));
    {
        let topologies = topologies.clone();
        let mut c = control.lock().unwrap_or_else(|e| e.into_inner());
        c.subscribe(compile::subscriber(move |account, topology| {
            topologies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(account.to_string(), topology);
        }));
    }
    // DNS: the public endpoint answers from a view the control keeps current.
    // The view every DNS answer comes from (host endpoint and in-world resolvers).
    let dns_view: crate::dns::SharedView = Arc::default();
    lock_control(&control).subscribe(crate::dns::from_model::dns_subscriber(dns_view.clone()));
    // The world runtime: every account's fabric, internet, resolvers and instances,
    // following each committed world (subscribed after DNS, so resolvers see the view).
    let worlds = crate::world::Worlds::new(crate::world::WorldsConfig {
        state_dir: state_dir.clone(),
        dns: dns_view.clone(),
        clock: api::system_clock(),
        instance_timeout_cap: crate::world::WorldsConfig::timeout_cap_from_env(),
    });
    worlds.set_control(&control);
    lock_control(&control).subscribe(worlds.subscriber());
    // Route 53 health checkers: probe through each account's fabric, publish into the
    // DNS view (subscribed after the world runtime, whose networks they join).
    let health = crate::dns::health::HealthBoard::new(dns_view.clone());
    lock_control(&control).subscribe(crate::world::health::subscriber(
        worlds.clone(),
        health.clone(),
        crate::world::health::interval_from_env(),
    ));
    // Held until the daemon stops: dropping it closes the device, and the kernel removes
    // it with its address and route.
    let tun = if args.tun {
        Some(attach_tun(&control, &worlds, &default_account, &args)?)
    } else {
        None
    };
    let dns_sockets = match args.dns_listen {
        // Asked for explicitly: failing to bind is an error, as for --listen.
        Some(addr) => Some(bind_dns(addr).await?),
        // The default: a busy port (another daemon, a test running in parallel) must not
        // stop the API, so DNS is left off with a warning.
        None => match bind_dns(DEFAULT_DNS_LISTEN.into()).await {
            Ok(sockets) => Some(sockets),
            Err(e) => {
                eprintln!("vpclab: warning: {e:#}; DNS endpoint off (pick one with --dns-listen)");
                None
            }
        },
    };
    let mut dns = None;
    if let Some((dns_udp, dns_tcp)) = dns_sockets {
        let dns_addr = dns_udp
            .local_addr()
            .context("cannot read the DNS address")?;
        let dns_view = dns_view.clone();
        let (dns_stop, dns_stopped) = tokio::sync::oneshot::channel::<()>();
        let dns_task = tokio::spawn(crate::dns::serve_public_dns(
            dns_udp,
            dns_tcp,
            dns_view,
            async {
                let _ = dns_stopped.await;
            },
        ));
        dns = Some((dns_addr, dns_stop, dns_task));
    }
    let url = format!("http://{addr}");
    let info = EndpointInfo {
        api: url.clone(),
        dns: dns.as_ref().map(|(a, _, _)| a.to_string()),
        region: args.region.clone(),
        pid: std::process::id(),
        state_dir: state_dir.clone(),
    };
    let endpoint_file = state_dir.join(super::ENDPOINT_FILE);
    std::fs::write(&endpoint_file, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", endpoint_file.display()))?;

    let state = AppState::new(control.clone(), api::system_clock())
        .with_auth(auth)
        .with_health(health);
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

    println!("vpclab {} is up", env!("CARGO_PKG_VERSION"));
    println!("  EC2 API:    {url}");
    if let Some((dns_addr, _, _)) = &dns {
        println!(
            "  DNS:        {dns_addr} (dig @{} -p {} www.example.com)",
            dns_addr.ip(),
            dns_addr.port()
        );
    }
    if let Some(tun) = &tun {
        println!(
            "  TUN:        {} routes {TUN_ROUTE} into account {default_account}'s world; it sees you as {TUN_ADDR}",
            tun.name()
        );
    }
    println!("  state dir:  {}", state_dir.display());
    println!("In another terminal:");
    println!(
        "export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={}",
        args.region
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let app = api::router(state.clone()).merge(crate::world::access_router(state, worlds.clone()));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    ticker.abort();
    // Closing the device removes it, its address and its route from the kernel.
    drop(tun);
    worlds.shutdown().await;
    if let Some((_, dns_stop, dns_task)) = dns {
        let _ = dns_stop.send(());
        match dns_task.await {
            Ok(Err(e)) => eprintln!("vpclab: {e}"),
            Err(e) => eprintln!("vpclab: the DNS endpoint stopped abnormally: {e}"),
            Ok(Ok(())) => {}
        }
    }
    let _ = std::fs::remove_file(&endpoint_file);
    result.context("the API server failed")?;
    eprintln!("vpclab: stopped");
    Ok(())
}

/// The world's public range: the only route `--tun` adds (never a default route).
const TUN_ROUTE: &str = "198.18.0.0/15";
/// The kernel side of `--tun`. Not the in-world learner host's 203.0.113.10 (what
/// `vpclab whoami` prints): the fabric hands packets for an address an internet host of
/// the world holds to that host, so replies would never reach the kernel. A /32 keeps
/// the kernel from adding a connected route for the rest of 203.0.113.0/24.
const TUN_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(203, 0, 113, 1);

/// `--tun`: makes sure `account`'s world runs, attaches TUN device `--tun-name` to it
/// claiming [`TUN_ADDR`], and gives the kernel side its address, link and one route.
fn attach_tun(
    control: &Mutex<Control>,
    worlds: &crate::world::Worlds,
    account: &str,
    args: &UpArgs,
) -> anyhow::Result<vpclab_netstack::tun::Tun> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        anyhow::bail!("--tun needs root (and /dev/net/tun, which does not exist here)");
    }
    // The first read of an account creates its world (default VPC); the world runtime
    // follows that commit, so the account's network exists afterwards.
    let env = crate::model::Env::new(args.region.clone(), (api::system_clock())());
    lock_control(control)
        .read(account, &env)
        .map_err(|e| anyhow::anyhow!("cannot open account {account}: {}", e.message))?;
    let world = worlds
        .get(account)
        .with_context(|| format!("the world of account {account} is not running"))?;
    let claim = ipnet::Ipv4Net::new(TUN_ADDR, 32).expect("a /32 is a valid prefix");
    let tun = vpclab_netstack::tun::Tun::attach(world.net(), &args.tun_name, claim).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
                anyhow::anyhow!(
                    "--tun needs root (cannot create TUN device {}: {e})",
                    args.tun_name
                )
            }
            _ => anyhow::anyhow!("cannot create TUN device {}: {e}", args.tun_name),
        },
    )?;
    let route: ipnet::Ipv4Net = TUN_ROUTE.parse().expect("a valid CIDR");
    for cmd in tun.setup_commands(TUN_ADDR, &[route]) {
        let out = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .output()
            .with_context(|| format!("--tun cannot run `{}`", cmd.join(" ")))?;
        if !out.status.success() {
            anyhow::bail!(
                "--tun: `{}` failed: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(tun)
}

/// Where the public DNS endpoint listens unless `--dns-listen` says otherwise.
const DEFAULT_DNS_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 5300);

fn lock_control(control: &Mutex<Control>) -> std::sync::MutexGuard<'_, Control> {
    control.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the DNS endpoint's TCP listener and UDP socket on the same address (with port 0,
/// UDP takes the port TCP got, so `dig` falls back to TCP where it asked over UDP).
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

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

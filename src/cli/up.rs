//! `vpclab up`: builds the daemon's configuration from flags and environment (the one
//! place that reads either), starts the daemon, prints the endpoints and the `export`
//! line, and serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::daemon::{AuthConfig, DaemonConfig, DnsListen, StateDir};

/// Instance `pending`/`stopping` duration in milliseconds (tests shorten it).
pub const BOOT_DELAY_ENV: &str = "VPCLAB_BOOT_DELAY_MS";
/// Caps instance network tools' timeouts, in milliseconds (tests of "times out").
pub const TIMEOUT_CAP_ENV: &str = "VPCLAB_INSTANCE_TIMEOUT_CAP_MS";
/// Replaces every Route 53 health check's probe interval, in milliseconds (tests).
pub const HEALTH_INTERVAL_ENV: &str = "VPCLAB_HEALTH_CHECK_INTERVAL_MS";
/// Replaces the VPC Flow Logs capture window (tests).
pub const FLOW_LOG_WINDOW_ENV: &str = "VPCLAB_FLOW_LOG_WINDOW_MS";
/// Replaces the 5-minute period of the published `AWS/EC2` metrics (tests, demos).
pub const METRICS_INTERVAL_ENV: &str = "VPCLAB_METRICS_INTERVAL_MS";

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
    /// Address of the browser proxy (SOCKS5 and HTTP on one port; connections leave from
    /// your computer's address inside the world). Default 127.0.0.1:4580; when that
    /// default is busy, vpclab starts without it and says so. A port given here must bind.
    #[arg(long)]
    pub proxy_listen: Option<SocketAddr>,
    /// The region printed in the `export` line (any region works per request).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// `open`: any well-formed credentials, one account. `strict`: SigV4 signatures are
    /// verified against `access-keys.toml` in the state directory (created with one key
    /// for account 000000000000 if missing); each key's account is its own world.
    #[arg(long, value_enum, default_value = "open")]
    pub auth: AuthArg,
    /// `off`: IAM policies are stored but not applied. `enforce`: every API call of an
    /// IAM user or assumed role is checked against its policies (root is always
    /// allowed); implies `--auth strict`, since in open mode every caller is root.
    #[arg(long, value_enum, default_value = "off")]
    pub iam: IamArg,
    /// Root only: attach a TUN device to the world of the default credentials (those of
    /// the printed `export` line) and route the world's public range 198.18.0.0/15 (and
    /// nothing else) through it, so plain `ssh`, `curl` and `ping` reach public IPs.
    #[arg(long)]
    pub tun: bool,
    /// Serve a course (`vpclab class init`): every learner's key in its own account and
    /// world, strict SigV4, the course's labs and the instructor's dashboard. The state
    /// lives in COURSE_DIR/state unless --state-dir says otherwise.
    #[arg(long, value_name = "COURSE_DIR")]
    pub class: Option<PathBuf>,
    /// With --class: the PostgreSQL database holding the course's roster, progress and
    /// grades (for a course made with `vpclab class init --database`); the worlds stay in
    /// the state directory.
    #[arg(long, value_name = "postgres://…", requires = "class")]
    pub database: Option<String>,
    /// The name of the TUN device of `--tun`.
    #[arg(long, default_value = "vpclab0")]
    pub tun_name: String,
    /// How instances run. `emulated` (the default): vpclab's own shell, no processes on
    /// this machine. `sandbox`: real Linux processes (bash, python3, servers) in a
    /// rootless sandbox per instance (bubblewrap; user, PID, mount and network
    /// namespaces) whose only network is the VPC fabric. `auto`: sandbox where this
    /// machine allows it, else emulated.
    #[arg(long, value_enum, default_value = "emulated")]
    pub runtime: crate::instance::sandbox::RuntimeChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    Open,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IamArg {
    Off,
    Enforce,
}

/// A duration in milliseconds from an environment variable, if set and in `range`.
fn env_ms(name: &str, range: std::ops::RangeInclusive<u64>) -> anyhow::Result<Option<Duration>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => {
            let ms: u64 = v
                .trim()
                .parse()
                .ok()
                .filter(|ms| range.contains(ms))
                .with_context(|| {
                    format!(
                        "{name}={v:?} is not a number of milliseconds in {}..={}",
                        range.start(),
                        range.end()
                    )
                })?;
            Ok(Some(Duration::from_millis(ms)))
        }
    }
}

/// The daemon configuration of these flags and the environment.
pub fn config(args: &UpArgs) -> anyhow::Result<DaemonConfig> {
    let state_dir = match (&args.state_dir, &args.class) {
        (Some(d), _) => StateDir::new(d),
        (None, Some(course)) => StateDir::new(course.join("state")),
        (None, None) => StateDir::default_location()?,
    };
    let mut cfg = DaemonConfig::new(state_dir);
    cfg.listen = args.listen;
    cfg.dns_listen = args.dns_listen.map_or(DnsListen::Default, DnsListen::At);
    cfg.proxy_listen = args.proxy_listen.map_or(DnsListen::Default, DnsListen::At);
    cfg.region = args.region.clone();
    cfg.auth = match args.auth {
        AuthArg::Open => AuthConfig::Open,
        AuthArg::Strict => AuthConfig::Strict,
    };
    if args.iam == IamArg::Enforce {
        cfg.iam_enforce = true;
        cfg.auth = AuthConfig::Strict;
    }
    cfg.tun = args.tun.then(|| args.tun_name.clone());
    cfg.runtime = args.runtime;
    if let Some(course) = &args.class {
        // A class is always strict: every learner signs with their own key.
        cfg.auth = AuthConfig::Strict;
        cfg.class = Some(course.clone());
        cfg.class_database = args.database.clone();
    }
    if let Some(d) = env_ms(BOOT_DELAY_ENV, 0..=600_000)? {
        cfg.boot_delay = d;
    }
    cfg.instance_timeout_cap = env_ms(TIMEOUT_CAP_ENV, 1..=3_600_000)?;
    cfg.health_interval = env_ms(HEALTH_INTERVAL_ENV, 1..=3_600_000)?;
    cfg.flow_log_window = env_ms(FLOW_LOG_WINDOW_ENV, 100..=3_600_000)?;
    cfg.metrics_interval = env_ms(METRICS_INTERVAL_ENV, 100..=3_600_000)?;
    Ok(cfg)
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(&args)?;
    let iam_enforce = cfg.iam_enforce;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let running = crate::daemon::Daemon::start(cfg).await?;
        for w in &running.warnings {
            eprintln!("vpclab: warning: {w}");
        }
        crate::cli::outln!("vpclab {} is up", env!("CARGO_PKG_VERSION"))?;
        crate::cli::outln!("  EC2 API:    {}", running.url())?;
        if let Some(dns) = running.dns_addr {
            crate::cli::outln!(
                "  DNS:        {dns} (dig @{} -p {} www.example.com)",
                dns.ip(),
                dns.port()
            )?;
        }
        if let Some(proxy) = running.proxy_addr {
            crate::cli::outln!(
                "  browser:    SOCKS5/HTTP proxy {proxy} (curl --proxy socks5h://{proxy} http://example.com/)"
            )?;
        }
        crate::cli::outln!("  instances:  {} ({})", running.runtime.0, running.runtime.1)?;
        if let Some(tun) = &running.tun {
            crate::cli::outln!(
                "  TUN:        {tun} routes {} into account {}'s world; it sees you as {}",
                crate::daemon::tun::TUN_ROUTE,
                running.credentials.account,
                crate::daemon::tun::TUN_ADDR
            )?;
        }
        if iam_enforce {
            crate::cli::outln!(
                "  IAM:        policies enforced for IAM users and assumed roles (root is always allowed)"
            )?;
        }
        crate::cli::outln!("  state dir:  {}", running.state_dir.root().display())?;
        if let Some(course) = &args.class {
            crate::cli::outln!(
                "  class:      {} (dashboard {}/console/class/; vpclab class credentials {} LEARNER)",
                course.display(),
                running.url(),
                course.display()
            )?;
        }
        crate::cli::outln!("In another terminal:")?;
        crate::cli::outln!("{}", running.export_line())?;
        use std::io::Write;
        let _ = std::io::stdout().flush();
        running.run_until(shutdown_signal()).await
    })?;
    eprintln!("vpclab: stopped");
    Ok(ExitCode::SUCCESS)
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

//! `vpclab status [--json]`: the daemon's endpoints (from `endpoint.json` in the state
//! directory, checked by connecting) and a per-account, per-region count of resources,
//! read from the state database (read-only: SQLite's WAL lets it read while the daemon
//! writes).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::daemon::{EndpointInfo, StateDir};
use crate::model::Control;
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's state directory (default: your data directory).
    #[arg(long, env = "VPCLAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// account → region → kind → count
type Summary = BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>>;

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = match args.state_dir {
        Some(d) => StateDir::new(d),
        None => StateDir::default_location()?,
    };
    let dir = state.root().to_path_buf();
    let endpoint: Option<EndpointInfo> = state.read_endpoint();
    let running = endpoint.as_ref().is_some_and(|e| {
        e.api
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .is_some_and(|addr| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })
    });
    let summary = summarize(&state)?;
    if args.json {
        let v = serde_json::json!({
            "running": running,
            "api": endpoint.as_ref().filter(|_| running).map(|e| e.api.clone()),
            "dns": endpoint.as_ref().filter(|_| running).and_then(|e| e.dns.clone()),
            "pid": endpoint.as_ref().filter(|_| running).map(|e| e.pid),
            "runtime": endpoint.as_ref().filter(|_| running).and_then(|e| e.runtime.clone()),
            "state_dir": dir,
            "accounts": summary,
        });
        crate::cli::outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    match endpoint.filter(|_| running) {
        Some(e) => {
            crate::cli::outln!("vpclab is running (pid {})", e.pid)?;
            crate::cli::outln!("  EC2 API:    {}", e.api)?;
            if let Some(d) = &e.dns {
                crate::cli::outln!("  DNS:        {d}")?;
            }
            crate::cli::outln!("  state dir:  {}", dir.display())?;
            if let Some(r) = &e.runtime {
                crate::cli::outln!("  instances:  {r}")?;
            }
            crate::cli::outln!("export AWS_ENDPOINT_URL={}", e.api)?;
        }
        None => {
            crate::cli::outln!("vpclab is not running (state dir {})", dir.display())?;
        }
    }
    if summary.is_empty() {
        crate::cli::outln!("no resources yet")?;
    }
    for (account, regions) in &summary {
        for (region, kinds) in regions {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            crate::cli::outln!("account {account} {region}: {}", parts.join(", "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resource counts per account and region, from the model's own summary of each
/// stored world (read-only, beside a running daemon).
fn summarize(dir: &StateDir) -> anyhow::Result<Summary> {
    let mut out = Summary::new();
    let paths = dir.store();
    if !paths.db.exists() {
        return Ok(out);
    }
    let control = Control::open_read_only(&paths)
        .with_context(|| format!("cannot read {}", paths.db.display()))?;
    for account in control.accounts() {
        let Some(world) = control.snapshot(&account) else {
            continue;
        };
        let mut regions: Vec<String> = world
            .meta()
            .map(|m| m.regions.iter().cloned().collect())
            .unwrap_or_default();
        regions.push("global".to_string());
        for region in regions {
            let kinds: BTreeMap<String, usize> = world
                .summary(&region)
                .into_iter()
                .filter(|(kind, n)| *n > 0 && *kind != "tags")
                .map(|(kind, n)| (kind.to_string(), n))
                .collect();
            if !kinds.is_empty() {
                out.entry(account.clone())
                    .or_default()
                    .insert(region, kinds);
            }
        }
    }
    Ok(out)
}

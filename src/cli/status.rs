//! `vpclab status [--json]`: the daemon's endpoints (from `endpoint.json` in the state
//! directory, checked by connecting) and a per-account, per-region count of resources,
//! read from the state database (read-only: SQLite's WAL lets it read while the daemon
//! writes).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rusqlite::{Connection, OpenFlags};

use super::up::EndpointInfo;
use crate::model::store::DB_FILE;

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
    let dir = match args.state_dir {
        Some(d) => d,
        None => super::default_state_dir()?,
    };
    let endpoint: Option<EndpointInfo> = std::fs::read(dir.join(super::ENDPOINT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let running = endpoint.as_ref().is_some_and(|e| {
        e.api
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .is_some_and(|addr| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })
    });
    let summary = summarize(&dir)?;
    if args.json {
        let v = serde_json::json!({
            "running": running,
            "api": endpoint.as_ref().filter(|_| running).map(|e| e.api.clone()),
            "dns": endpoint.as_ref().filter(|_| running).and_then(|e| e.dns.clone()),
            "pid": endpoint.as_ref().filter(|_| running).map(|e| e.pid),
            "state_dir": dir,
            "accounts": summary,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    match endpoint.filter(|_| running) {
        Some(e) => {
            println!("vpclab is running (pid {})", e.pid);
            println!("  EC2 API:    {}", e.api);
            if let Some(d) = &e.dns {
                println!("  DNS:        {d}");
            }
            println!("  state dir:  {}", dir.display());
            println!("export AWS_ENDPOINT_URL={}", e.api);
        }
        None => {
            println!("vpclab is not running (state dir {})", dir.display());
        }
    }
    if summary.is_empty() {
        println!("no resources yet");
    }
    for (account, regions) in &summary {
        for (region, kinds) in regions {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!("account {account} {region}: {}", parts.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summarize(dir: &std::path::Path) -> anyhow::Result<Summary> {
    let path = dir.join(DB_FILE);
    let mut out = Summary::new();
    if !path.exists() {
        return Ok(out);
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut stmt = conn
        .prepare("SELECT account, kind, body FROM resources WHERE kind NOT IN ('meta', 'tags')")
        .with_context(|| format!("cannot read {}", path.display()))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (account, kind, body) = row?;
        let region = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("region").and_then(|r| r.as_str()).map(str::to_string))
            .unwrap_or_else(|| "global".into());
        *out.entry(account)
            .or_default()
            .entry(region)
            .or_default()
            .entry(kind)
            .or_default() += 1;
    }
    Ok(out)
}

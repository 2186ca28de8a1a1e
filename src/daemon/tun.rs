//! `--tun` (root only): a TUN device attached to the default credentials' world, with
//! the world's public range routed to it and nothing else.

use std::sync::Mutex;

use anyhow::Context;

use crate::model::Control;

/// The world's public range: the only route `--tun` adds (never a default route).
pub const TUN_ROUTE: &str = "198.18.0.0/15";
/// The kernel side of `--tun`. Not the in-world learner host's 203.0.113.10 (what
/// `vpclab whoami` prints): the fabric hands packets for an address an internet host of
/// the world holds to that host, so replies would never reach the kernel. A /32 keeps
/// the kernel from adding a connected route for the rest of 203.0.113.0/24.
pub const TUN_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(203, 0, 113, 1);

/// `--tun`: makes sure `account`'s world runs, attaches TUN device `--tun-name` to it
/// claiming [`TUN_ADDR`], and gives the kernel side its address, link and one route.
pub fn attach(
    control: &Mutex<Control>,
    worlds: &crate::world::Worlds,
    account: &str,
    region: &str,
    name: &str,
) -> anyhow::Result<vpclab_netstack::tun::Tun> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        anyhow::bail!("--tun needs root (and /dev/net/tun, which does not exist here)");
    }
    // The first read of an account creates its world (default VPC); the world runtime
    // follows that commit, so the account's network exists afterwards.
    let env = crate::model::Env::new(region, (crate::model::system_clock())())
        .with_action("vpclab:AttachTun");
    control
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .read(account, &env)
        .map_err(|e| anyhow::anyhow!("cannot open account {account}: {}", e.message))?;
    let world = worlds
        .get(account)
        .with_context(|| format!("the world of account {account} is not running"))?;
    let claim = ipnet::Ipv4Net::new(TUN_ADDR, 32).expect("a /32 is a valid prefix");
    let tun = vpclab_netstack::tun::Tun::attach(world.net(), name, claim).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("--tun needs root (cannot create TUN device {}: {e})", name)
            }
            _ => anyhow::anyhow!("cannot create TUN device {}: {e}", name),
        }
    })?;
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

//! The simulated internet of a world: the services outside every VPC, and the learner's
//! computer.
//!
//! The addresses are netstack's address plan (`vpclab_netstack::internet`); this module
//! attaches a host at each web service's address and serves HTTP there on port 80 with
//! [`crate::http1`] (hyper over the fabric's sockets):
//!
//! - 192.0.2.10, "what is my IP" ([`sites::what_is_my_ip`]);
//! - 192.0.2.20, the package mirror ([`Mirror`]);
//! - 192.0.2.80, a small web site ([`sites::website`]).
//!
//! Every other public address is the catch-all host ([`anyhost`]): ping, a generic web
//! site on 80 and 443 (HTTPS signed by vpclab's CA), the AWS service endpoints' door
//! to the API, DNS at the well-known public resolvers.
//!
//! The public DNS resolver (192.0.2.53) is started by `world::resolver`, the health
//! checkers (192.0.2.96/29) by `world::health`. Learner access goes through the
//! learner's host ([`Internet::learner_connect`]).

mod anyhost;
mod sites;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use vpclab_netstack::host::{Host, HostConfig, Net, NetError};
use vpclab_netstack::internet::{Learner, MIRROR_ADDR, WEB_ADDR, WHATISMYIP_ADDR};

use crate::http1;
pub use anyhost::{ApiDoor, DoorRequest};

/// The service host behind gateway VPC endpoint `id` of `account`'s world, at the
/// addresses of the service's prefix list; dropping nothing: the caller removes the host
/// and aborts the tasks when the endpoint goes.
pub fn start_endpoint_host(
    net: &Net,
    account: &str,
    ca: std::sync::Arc<crate::tls::Ca>,
    door: Option<ApiDoor>,
    id: &str,
    addrs: Vec<ipnet::Ipv4Net>,
) -> Result<(Host, Vec<JoinHandle<()>>), NetError> {
    let ctx = anyhost::Ctx {
        account: account.to_string(),
        ca,
        door,
        endpoint: Some(id.to_string()),
    };
    anyhost::start_endpoint(net, id, addrs, ctx)
}

/// The service host behind one network interface `eni` (address `addr` in its subnet)
/// of interface VPC endpoint `id`: an ordinary VPC host at `Port::Eni`, so the
/// interface's security groups and its subnet's network ACL decide what reaches it; it
/// serves the same door to the API as the internet's endpoint addresses, naming the
/// endpoint.
pub fn start_interface_endpoint_host(
    net: &Net,
    account: &str,
    ca: std::sync::Arc<crate::tls::Ca>,
    door: Option<ApiDoor>,
    id: &str,
    eni: &str,
    addr: ipnet::Ipv4Net,
) -> Result<(Host, Vec<JoinHandle<()>>), NetError> {
    let ctx = anyhost::Ctx {
        account: account.to_string(),
        ca,
        door,
        endpoint: Some(id.to_string()),
    };
    let cfg = vpclab_netstack::host::HostConfig::vpc(
        vpclab_netstack::Port::Eni(vpclab_netstack::topology::rid(eni)),
        addr,
    );
    anyhost::serve_door(net, cfg, ctx)
}
pub use sites::{Mirror, website, what_is_my_ip};

/// What a world's internet needs from the daemon.
pub struct InternetConfig {
    /// The account whose world this is (the API door acts for it).
    pub account: String,
    /// vpclab's certificate authority, for HTTPS.
    pub ca: std::sync::Arc<crate::tls::Ca>,
    /// Where requests to AWS service endpoints go.
    pub api_door: Option<ApiDoor>,
    /// The public DNS view (for 8.8.8.8 and the other well-known resolvers).
    pub dns: crate::dns::SharedView,
}

/// The running internet services of one world and the learner's host. Dropping it stops
/// the services and detaches their hosts.
pub struct Internet {
    learner: Learner,
    sites: Vec<Host>,
    mirror: Mirror,
    tasks: Vec<JoinHandle<()>>,
}

impl Internet {
    /// Attaches the internet hosts to `net` and starts their servers. Call inside a
    /// tokio runtime.
    pub fn start(net: &Net, cfg: InternetConfig) -> Result<Internet, NetError> {
        let mirror = Mirror::default();
        let services: [(Ipv4Addr, http1::Handler); 3] = [
            (WHATISMYIP_ADDR, what_is_my_ip()),
            (MIRROR_ADDR, mirror.handler()),
            (WEB_ADDR, website()),
        ];
        let mut internet = Internet {
            learner: Learner::attach(net)?,
            sites: Vec::new(),
            mirror,
            tasks: Vec::new(),
        };
        for (addr, handler) in services {
            let host = net.add_host(HostConfig::internet(addr))?;
            let listener = host.listen(80).map_err(|_| NetError::HostGone)?;
            internet.sites.push(host);
            internet
                .tasks
                .push(tokio::spawn(http1::serve(listener, handler)));
        }
        let ctx = anyhost::Ctx {
            account: cfg.account,
            ca: cfg.ca,
            door: cfg.api_door,
            endpoint: None,
        };
        let (host, tasks) = anyhost::start(net, ctx, cfg.dns)?;
        internet.sites.push(host);
        internet.tasks.extend(tasks);
        Ok(internet)
    }

    /// The package mirror's file map.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The learner's computer.
    pub fn learner(&self) -> &Host {
        self.learner.host()
    }

    /// Opens a TCP connection from the learner's address to `dst` inside the world and
    /// copies bytes both ways between it and `io` until both sides are done. Returns the
    /// bytes sent into the world and received.
    pub async fn learner_connect<S>(&self, dst: SocketAddrV4, io: S) -> io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.learner.connect(dst, io).await
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for h in &self.sites {
            h.remove();
        }
    }
}

#[cfg(test)]
mod tests;

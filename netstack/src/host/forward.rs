//! A forwarder without VPC rules, for tests and benchmarks of the host
//! layer alone: it delivers by longest matching destination prefix, after an
//! optional filter.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use smoltcp::time::Instant;

use super::Forwarder;
use crate::port::Port;

type Filter = Box<dyn FnMut(&Port, &[u8]) -> bool + Send>;

/// Delivers each packet to the port whose prefix best matches its
/// destination. No NAT, no TTL, no policy: the fabric does those.
#[derive(Default)]
pub struct AddressForwarder {
    routes: Vec<(Ipv4Net, Port)>,
    filter: Option<Filter>,
}

impl AddressForwarder {
    /// An empty routing table: everything is dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deliver packets to `net` at `port` (builder style).
    pub fn route(mut self, net: Ipv4Net, port: Port) -> Self {
        self.add_route(net, port);
        self
    }

    /// Deliver packets to `net` at `port`.
    pub fn add_route(&mut self, net: Ipv4Net, port: Port) {
        self.routes.retain(|(n, _)| *n != net);
        self.routes.push((net, port));
    }

    /// Drop packets for which `keep(ingress, packet)` is false.
    pub fn set_filter(&mut self, keep: impl FnMut(&Port, &[u8]) -> bool + Send + 'static) {
        self.filter = Some(Box::new(keep));
    }

    /// Remove the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }
}

impl Forwarder for AddressForwarder {
    fn forward(&mut self, _now: Instant, ingress: &Port, packet: &mut Vec<u8>) -> Option<Port> {
        if let Some(keep) = &mut self.filter
            && !keep(ingress, packet)
        {
            return None;
        }
        let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
        let dst = Ipv4Addr::from(dst);
        self.routes
            .iter()
            .filter(|(n, _)| n.contains(&dst))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, p)| p.clone())
    }
}

/// The VPC fabric as the host layer's forwarder: every packet a host sends
/// takes the one decision path (security groups, NACLs, routes, gateways).
/// Drops are logged at debug level with their typed reason; to ask *why*, use
/// [`Fabric::explain`](crate::Fabric::explain) through
/// [`Net::with_forwarder`](super::Net::with_forwarder).
impl Forwarder for crate::Fabric {
    fn forward(&mut self, now: Instant, ingress: &Port, packet: &mut Vec<u8>) -> Option<Port> {
        match self.process(now, ingress, packet).outcome {
            crate::Outcome::Deliver(port) => Some(port),
            crate::Outcome::Drop(reason) => {
                tracing::debug!(%ingress, ?reason, "fabric dropped a packet");
                None
            }
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.expire(now);
    }

    fn take_reply(&mut self) -> Option<(Port, Vec<u8>)> {
        crate::Fabric::take_reply(self)
    }
}

//! [`LiveFabric`], the forwarder of every account's network: the [`Fabric`] plus the
//! newest committed world whose topology it has not compiled yet.
//!
//! Why the topology is compiled on first use rather than in the control subscriber:
//! compiling is linear in the size of the world (every VPC, subnet, route table, rule
//! and interface), and the subscriber runs under the control's lock on the path of every
//! networking mutation. A script creating 300 VPCs would compile 300 ever-larger
//! topologies that no packet ever crossed. Here a commit only records its world (a
//! reference count), and the fabric compiles the newest one the moment anything asks it
//! to decide: a packet, `explain`, a grader. Nothing can observe the older topology
//! after a commit was acknowledged: every way into the fabric goes through
//! [`LiveFabric::current`], under the same lock the packet path holds, so the next
//! packet after a new security-group rule is decided by that rule, as before. A burst of
//! commits with no packet in between costs one compile instead of one each.

use std::sync::Arc;

use vpclab_netstack::host::Forwarder;
use vpclab_netstack::{Fabric, Port, Topology};

use crate::model::World;
use crate::model::ec2::compile;

pub struct LiveFabric {
    account: String,
    fabric: Fabric,
    /// A committed world newer than the fabric's topology, if any.
    pending: Option<Arc<World>>,
    /// `vpclab capture`'s tap: one atomic load per packet while nobody captures.
    tap: Arc<super::capture::Tap>,
}

impl LiveFabric {
    /// A fabric with an empty topology that will compile `world` on first use.
    pub fn new(account: &str, world: Arc<World>) -> LiveFabric {
        LiveFabric {
            account: account.to_string(),
            fabric: Fabric::new(Arc::new(Topology::empty())),
            pending: Some(world),
            tap: Arc::default(),
        }
    }

    /// Records a newly committed world; its topology is compiled before the next
    /// decision. A world already waiting is replaced (it was never used).
    pub fn set_world(&mut self, world: Arc<World>) {
        self.pending = Some(world);
    }

    /// The fabric with the topology of the newest committed world. A world that does not
    /// compile (a damaged store) is logged and the previous topology stays, as it would
    /// have when compiled at commit time.
    pub fn current(&mut self) -> &mut Fabric {
        if let Some(world) = self.pending.take() {
            match compile::compile(&world) {
                Ok(t) => self.fabric.set_topology(Arc::new(t)),
                Err(e) => {
                    tracing::error!(account = %self.account, error = %e, "the world does not compile; the previous topology stays");
                }
            }
        }
        &mut self.fabric
    }

    /// The capture tap of this fabric.
    pub fn tap(&self) -> Arc<super::capture::Tap> {
        self.tap.clone()
    }

    /// The fabric as it stands, its topology possibly older than the newest commit: for
    /// state that outlives topologies (the flow-log wanted set and records), never for a
    /// decision.
    pub fn without_compiling(&mut self) -> &mut Fabric {
        &mut self.fabric
    }
}

impl Forwarder for LiveFabric {
    fn forward(
        &mut self,
        now: vpclab_netstack::host::SmolInstant,
        ingress: &Port,
        packet: &mut Vec<u8>,
    ) -> Option<Port> {
        if !self.tap.active() {
            return self.current().forward(now, ingress, packet);
        }
        // What an interface sends is seen as sent, whatever the fabric then decides.
        self.tap.offer(ingress, true, packet);
        let out = self.current().forward(now, ingress, packet);
        if let Some(port) = &out {
            self.tap.offer(port, false, packet);
        }
        out
    }

    fn housekeeping(&mut self, now: vpclab_netstack::host::SmolInstant) {
        self.current().housekeeping(now);
    }

    fn take_reply(&mut self) -> Option<(Port, Vec<u8>)> {
        // The fabric's own answer (a time exceeded) is seen as received by its port.
        let reply = self.fabric.take_reply();
        if let Some((port, packet)) = &reply
            && self.tap.active()
        {
            self.tap.offer(port, false, packet);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Env, Timestamp};

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    #[test]
    fn the_newest_committed_world_decides_and_only_it_is_compiled() {
        let mut w = World::new("000000000000");
        w.ensure_region(&env()).unwrap();
        let first = Arc::new(w.clone());
        let vpc = w.create_vpc(&env(), "10.9.0.0/16", None, &[]).unwrap();
        let second = Arc::new(w);
        let mut live = LiveFabric::new("000000000000", first);
        live.set_world(second);
        let t = live.current().topology().clone();
        assert!(
            t.vpc(&vpc).is_some(),
            "the topology is the newest world's, compiled on first use"
        );
        // No new world: the same snapshot stays (no recompilation).
        assert!(Arc::ptr_eq(&t, live.current().topology()));
    }
}

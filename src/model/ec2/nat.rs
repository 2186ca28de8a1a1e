//! NAT gateways: Create/DeleteNatGateway, their filters, and the time-driven states AWS
//! shows (pending → available, deleting → deleted). A public NAT gateway holds an Elastic
//! IP and a requester-managed network interface in its subnet; deleting it frees both.
//! Deleted gateways stay visible for an hour, as on AWS.
//!
//! Time is an argument: [`World::advance`] moves states whose deadline passed; the daemon
//! calls it from a ticker through `Control::tick`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::eni::{EniAssociation, EniSpec};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

/// How long a new NAT gateway stays `pending` (AWS: a minute or two; shortened so a lab
/// does not wait).
pub const NAT_PENDING_MS: i64 = 2_000;
/// How long a deleted NAT gateway stays `deleting`.
pub const NAT_DELETING_MS: i64 = 2_000;
/// How long a deleted NAT gateway stays visible.
pub const NAT_DELETED_VISIBLE_MS: i64 = 3_600_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NatAddress {
    pub allocation_id: Option<String>,
    pub network_interface_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    pub association_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NatGateway {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// `pending`, `available`, `deleting`, `deleted` (or `failed`).
    pub state: String,
    /// `public` or `private`.
    pub connectivity_type: String,
    pub addresses: Vec<NatAddress>,
    pub create_time: Timestamp,
    pub delete_time: Option<Timestamp>,
    /// When the current transitional state ends.
    pub next_transition: Option<Timestamp>,
}

impl Resource for NatGateway {
    const KIND: &'static str = "nat_gateway";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for NatGateway {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "nat-gateway-id" => vec![self.id.clone()],
            "state" => vec![self.state.clone()],
            "subnet-id" => vec![self.subnet_id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "connectivity-type" => vec![self.connectivity_type.clone()],
            _ => return None,
        })
    }
}

pub fn nat_not_found(id: &str) -> ApiError {
    ApiError::new(
        "NatGatewayNotFound",
        format!("The Nat Gateway {id} was not found"),
    )
}

impl World {
    /// CreateNatGateway. A public gateway needs an unassociated Elastic IP.
    pub fn create_nat_gateway(
        &mut self,
        env: &Env,
        subnet_id: &str,
        allocation_id: Option<&str>,
        connectivity: Option<&str>,
        private_ip: Option<Ipv4Addr>,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["natgateway"])?;
        let subnet = self.subnet(&env.region, subnet_id)?.clone();
        let connectivity = connectivity.unwrap_or("public");
        let eip = match connectivity {
            "public" => {
                let id = allocation_id.ok_or_else(|| ApiError::missing("AllocationId"))?;
                let a = self.address(&env.region, id)?.clone();
                if let Some(assoc) = &a.association {
                    return Err(ApiError::new(
                        "Resource.AlreadyAssociated",
                        format!(
                            "Elastic IP address [{id}] is already associated ({})",
                            assoc.association_id
                        ),
                    ));
                }
                Some(a)
            }
            "private" => None,
            other => return Err(ApiError::bad_param("connectivityType", other)),
        };
        let id = self.alloc_id("nat");
        let eni = self.create_interface(
            env,
            EniSpec {
                subnet_id: subnet.id.clone(),
                private_ip,
                groups: Vec::new(),
                description: format!("Interface for NAT Gateway {id}"),
                interface_type: "nat_gateway".into(),
                requester_managed: true,
            },
        )?;
        let eni_ip = self
            .network_interfaces
            .get(&eni)
            .map(|e| e.private_ip)
            .ok_or_else(ApiError::internal)?;
        let mut address = NatAddress {
            allocation_id: None,
            network_interface_id: eni.clone(),
            private_ip: eni_ip,
            public_ip: None,
            association_id: None,
        };
        if let Some(a) = eip {
            let assoc = self.alloc_id("eipassoc");
            if let Some(x) = self.addresses.get_mut(&a.id) {
                x.association = Some(super::address::AddressAssociation {
                    association_id: assoc.clone(),
                    network_interface_id: eni.clone(),
                    private_ip: eni_ip,
                });
            }
            if let Some(e) = self.network_interfaces.get_mut(&eni) {
                e.association = Some(EniAssociation {
                    public_ip: a.public_ip,
                    allocation_id: Some(a.id.clone()),
                    association_id: Some(assoc.clone()),
                });
            }
            address.allocation_id = Some(a.id.clone());
            address.public_ip = Some(a.public_ip);
            address.association_id = Some(assoc);
        }
        self.nat_gateways.insert(NatGateway {
            id: id.clone(),
            region: env.region.clone(),
            vpc_id: subnet.vpc_id.clone(),
            subnet_id: subnet.id.clone(),
            state: "pending".into(),
            connectivity_type: connectivity.to_string(),
            addresses: vec![address],
            create_time: env.now,
            delete_time: None,
            next_transition: Some(env.now.plus_ms(NAT_PENDING_MS)),
        });
        self.apply_tag_specs(env, &id, "natgateway", specs)?;
        Ok(id)
    }

    /// DeleteNatGateway: the gateway goes `deleting`, then `deleted` (its interface and
    /// Elastic IP association are released at that point).
    pub fn delete_nat_gateway(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let nat = match self.nat_gateways.get(id) {
            Some(n) if n.region == env.region => n,
            _ => return Err(nat_not_found(id)),
        };
        if matches!(nat.state.as_str(), "deleting" | "deleted") {
            return Ok(());
        }
        if let Some(n) = self.nat_gateways.get_mut(id) {
            n.state = "deleting".into();
            n.delete_time = Some(env.now);
            n.next_transition = Some(env.now.plus_ms(NAT_DELETING_MS));
        }
        Ok(())
    }

    /// Whether any time-driven state change is due at `now`.
    pub fn has_due_transitions(&self, now: Timestamp) -> bool {
        self.nat_gateways
            .iter()
            .any(|n| n.next_transition.is_some_and(|t| t <= now))
            || self.instances_due(now)
            || self.alarms_due(now)
            || self.elb_due(now)
            || self.autoscaling_due(now)
            || self.ecs_due(now)
            || self.acm_due(now)
            || self.tgw_due(now)
    }

    /// Applies every time-driven state change due at `now`. Other time-driven kinds
    /// (instances) add their step here.
    pub fn advance(&mut self, now: Timestamp) {
        self.advance_instances(now);
        self.advance_elb(now);
        // After instances settle, so a group sees which of its members still run.
        self.advance_autoscaling(now);
        self.advance_ecs(now);
        self.advance_acm(now);
        self.advance_tgw(now);
        // After instances settle, so an alarm's EC2 action sees their current state.
        self.evaluate_alarms(now);
        for id in self
            .nat_gateways
            .ids_where(|n| n.next_transition.is_some_and(|t| t <= now))
        {
            let Some(nat) = self.nat_gateways.get(&id).cloned() else {
                continue;
            };
            match nat.state.as_str() {
                "pending" => {
                    if let Some(n) = self.nat_gateways.get_mut(&id) {
                        n.state = "available".into();
                        n.next_transition = None;
                    }
                }
                "deleting" => {
                    for a in &nat.addresses {
                        if let Some(alloc) = &a.allocation_id
                            && let Some(x) = self.addresses.get_mut(alloc)
                        {
                            x.association = None;
                        }
                        self.network_interfaces.remove(&a.network_interface_id);
                    }
                    if let Some(n) = self.nat_gateways.get_mut(&id) {
                        n.state = "deleted".into();
                        n.next_transition = Some(now.plus_ms(NAT_DELETED_VISIBLE_MS));
                        for a in &mut n.addresses {
                            a.association_id = None;
                        }
                    }
                }
                "deleted" => {
                    self.nat_gateways.remove(&id);
                    self.drop_tags(&id);
                }
                _ => {
                    if let Some(n) = self.nat_gateways.get_mut(&id) {
                        n.next_transition = None;
                    }
                }
            }
        }
    }
}

//! Route tables: Create/DeleteRouteTable, Create/Replace/DeleteRoute, Associate/
//! DisassociateRouteTable, ReplaceRouteTableAssociation, DescribeRouteTables' filters.
//! AWS rules: every VPC has one main table (the implicit table of subnets without an
//! explicit association); each VPC block has a `local` route that cannot be deleted; a
//! subnet has at most one explicit association; a route whose target is gone shows state
//! `blackhole`.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::model::filter::b;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    Local,
    /// An internet gateway (`gatewayId`).
    Gateway(String),
    NatGateway(String),
    NetworkInterface(String),
    Instance(String),
    VpcPeering(String),
    /// A gateway VPC endpoint; only the endpoint itself adds or removes such routes.
    VpcEndpoint(String),
    /// An egress-only internet gateway (`egressOnlyInternetGatewayId`, IPv6 only).
    EgressOnlyGateway(String),
    /// A transit gateway (`transitGatewayId`).
    TransitGateway(String),
}

/// What a route matches: a CIDR block (`destinationCidrBlock`) or a prefix list
/// (`destinationPrefixListId`, such as a gateway endpoint's service list). Stored as
/// one string, the CIDR or the `pl-` id, so rows written before prefix lists read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Cidr(Ipv4Net),
    PrefixList(String),
    /// An IPv6 block (`destinationIpv6CidrBlock`).
    Cidr6(ipnet::Ipv6Net),
}

impl Destination {
    /// The CIDR block, for a CIDR route.
    pub fn cidr(&self) -> Option<Ipv4Net> {
        match self {
            Destination::Cidr(c) => Some(*c),
            Destination::PrefixList(_) | Destination::Cidr6(_) => None,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Cidr(c) => write!(f, "{c}"),
            Destination::PrefixList(p) => f.write_str(p),
            Destination::Cidr6(c) => write!(f, "{c}"),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.starts_with("pl-") {
            return Ok(Destination::PrefixList(s));
        }
        if s.contains(':') {
            return s
                .parse()
                .map(Destination::Cidr6)
                .map_err(serde::de::Error::custom);
        }
        s.parse()
            .map(Destination::Cidr)
            .map_err(serde::de::Error::custom)
    }
}

impl RouteTarget {
    pub fn id(&self) -> &str {
        match self {
            RouteTarget::Local => "local",
            RouteTarget::Gateway(x)
            | RouteTarget::NatGateway(x)
            | RouteTarget::NetworkInterface(x)
            | RouteTarget::Instance(x)
            | RouteTarget::VpcPeering(x)
            | RouteTarget::VpcEndpoint(x)
            | RouteTarget::EgressOnlyGateway(x)
            | RouteTarget::TransitGateway(x) => x,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Route {
    pub destination: Destination,
    pub target: RouteTarget,
    /// `CreateRouteTable` (the local routes and default-VPC routes) or `CreateRoute`.
    pub origin: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RtAssociation {
    pub id: String,
    pub subnet_id: Option<String>,
    pub gateway_id: Option<String>,
    pub main: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteTable {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub routes: Vec<Route>,
    pub associations: Vec<RtAssociation>,
}

impl Resource for RouteTable {
    const KIND: &'static str = "route_table";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl RouteTable {
    /// A table with a `local` route for each block of the VPC (all of them: a table made
    /// after AssociateVpcCidrBlock has the secondary block's local route too).
    pub(crate) fn new_for_vpc(
        world: &mut World,
        env: &Env,
        vpc_id: &str,
        primary: Ipv4Net,
        main: bool,
    ) -> RouteTable {
        let id = world.alloc_id("rtb");
        let mut blocks: Vec<Ipv4Net> = world
            .vpcs
            .get(vpc_id)
            .map(|v| v.cidrs.iter().map(|c| c.cidr).collect())
            .unwrap_or_default();
        if blocks.is_empty() {
            blocks.push(primary);
        }
        let v6: Vec<ipnet::Ipv6Net> = world
            .vpcs
            .get(vpc_id)
            .map(|v| v.ipv6_cidrs.iter().map(|c| c.cidr).collect())
            .unwrap_or_default();
        let routes = blocks
            .into_iter()
            .map(Destination::Cidr)
            .chain(v6.into_iter().map(Destination::Cidr6))
            .map(|destination| Route {
                destination,
                target: RouteTarget::Local,
                origin: "CreateRouteTable".into(),
            })
            .collect();
        let mut associations = Vec::new();
        if main {
            associations.push(RtAssociation {
                id: world.alloc_id("rtbassoc"),
                subnet_id: None,
                gateway_id: None,
                main: true,
            });
        }
        RouteTable {
            id,
            region: env.region.clone(),
            vpc_id: vpc_id.to_string(),
            routes,
            associations,
        }
    }

    pub fn is_main(&self) -> bool {
        self.associations.iter().any(|a| a.main)
    }
}

impl Filterable for RouteTable {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let routes = self.routes.iter();
        Some(match name {
            "route-table-id" => vec![self.id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![world.account.clone()],
            "association.main" => vec![b(self.is_main())],
            "association.subnet-id" => self
                .associations
                .iter()
                .filter_map(|a| a.subnet_id.clone())
                .collect(),
            "association.route-table-association-id" => {
                self.associations.iter().map(|a| a.id.clone()).collect()
            }
            "association.route-table-id" => {
                if self.associations.is_empty() {
                    vec![]
                } else {
                    vec![self.id.clone()]
                }
            }
            "association.gateway-id" => self
                .associations
                .iter()
                .filter_map(|a| a.gateway_id.clone())
                .collect(),
            "route.destination-cidr-block" => routes
                .filter_map(|r| r.destination.cidr().map(|c| c.to_string()))
                .collect(),
            "route.destination-prefix-list-id" => routes
                .filter_map(|r| match &r.destination {
                    Destination::PrefixList(p) => Some(p.clone()),
                    Destination::Cidr(_) | Destination::Cidr6(_) => None,
                })
                .collect(),
            "route.destination-ipv6-cidr-block" => routes
                .filter_map(|r| match &r.destination {
                    Destination::Cidr6(c) => Some(c.to_string()),
                    _ => None,
                })
                .collect(),
            "route.egress-only-internet-gateway-id" => routes
                .filter_map(|r| match &r.target {
                    RouteTarget::EgressOnlyGateway(g) => Some(g.clone()),
                    _ => None,
                })
                .collect(),
            "route.gateway-id" => routes
                .filter_map(|r| match &r.target {
                    RouteTarget::Local => Some("local".to_string()),
                    RouteTarget::Gateway(g) | RouteTarget::VpcEndpoint(g) => Some(g.clone()),
                    _ => None,
                })
                .collect(),
            "route.nat-gateway-id" => routes
                .filter_map(|r| {
                    if let RouteTarget::NatGateway(g) = &r.target {
                        Some(g.clone())
                    } else {
                        None
                    }
                })
                .collect(),
            "route.instance-id" => routes
                .filter_map(|r| {
                    if let RouteTarget::Instance(g) = &r.target {
                        Some(g.clone())
                    } else {
                        None
                    }
                })
                .collect(),
            "route.network-interface-id" => routes
                .filter_map(|r| {
                    if let RouteTarget::NetworkInterface(g) = &r.target {
                        Some(g.clone())
                    } else {
                        None
                    }
                })
                .collect(),
            "route.vpc-peering-connection-id" => routes
                .filter_map(|r| {
                    if let RouteTarget::VpcPeering(g) = &r.target {
                        Some(g.clone())
                    } else {
                        None
                    }
                })
                .collect(),
            "route.transit-gateway-id" => routes
                .filter_map(|r| match &r.target {
                    RouteTarget::TransitGateway(g) => Some(g.clone()),
                    _ => None,
                })
                .collect(),
            "route.origin" => routes.map(|r| r.origin.clone()).collect(),
            "route.state" => routes
                .map(|r| world.route_state(self, r).to_string())
                .collect(),
            _ => return None,
        })
    }
}

pub fn route_table_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidRouteTableID.NotFound", "routeTable ID", id)
}

fn endpoint_route_refused(vpce: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "a route to gateway endpoint {vpce} is managed by the endpoint: use ModifyVpcEndpoint to add or remove route tables"
    ))
}

fn assoc_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidAssociationID.NotFound",
        format!("The association ID '{id}' does not exist"),
    )
}

impl World {
    pub fn route_table(&self, region: &str, id: &str) -> ApiResult<&RouteTable> {
        match self.route_tables.get(id) {
            Some(r) if r.region == region => Ok(r),
            _ => Err(route_table_not_found(id)),
        }
    }

    pub fn main_route_table(&self, vpc_id: &str) -> Option<&RouteTable> {
        self.route_tables
            .iter()
            .find(|r| r.vpc_id == vpc_id && r.is_main())
    }

    /// The table that routes a subnet's traffic: its explicit association, else the main
    /// table of its VPC.
    pub fn route_table_for_subnet(&self, subnet_id: &str) -> Option<&RouteTable> {
        self.route_tables
            .iter()
            .find(|r| {
                r.associations
                    .iter()
                    .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
            })
            .or_else(|| {
                self.subnets
                    .get(subnet_id)
                    .and_then(|s| self.main_route_table(&s.vpc_id))
            })
    }

    /// `active`, or `blackhole` when the target is gone (deleted NAT gateway, detached
    /// internet gateway, deleted interface).
    pub fn route_state(&self, table: &RouteTable, route: &Route) -> &'static str {
        let alive = match &route.target {
            RouteTarget::Local => true,
            RouteTarget::Gateway(g) => self
                .internet_gateways
                .get(g)
                .is_some_and(|g| g.attached_vpc.as_deref() == Some(table.vpc_id.as_str())),
            RouteTarget::NatGateway(n) => self
                .nat_gateways
                .get(n)
                .is_some_and(|n| matches!(n.state.as_str(), "pending" | "available")),
            RouteTarget::NetworkInterface(e) => self
                .network_interfaces
                .get(e)
                .is_some_and(|e| e.attachment.is_some()),
            RouteTarget::Instance(i) => self.primary_eni_of_instance(i).is_some(),
            RouteTarget::VpcPeering(p) => self
                .vpc_peering_connections
                .get(p)
                .is_some_and(|p| p.is_active() && p.other_side(&table.vpc_id).is_some()),
            RouteTarget::VpcEndpoint(e) => self.vpc_endpoints.contains(e),
            RouteTarget::EgressOnlyGateway(g) => self
                .egress_only_internet_gateways
                .get(g)
                .is_some_and(|g| g.vpc_id == table.vpc_id),
            // AWS: the route is active while the gateway has an available attachment
            // in this VPC.
            RouteTarget::TransitGateway(t) => {
                self.tgw_attachment_in_vpc(t, &table.vpc_id).is_some()
            }
        };
        if alive { "active" } else { "blackhole" }
    }

    /// CreateRouteTable.
    pub fn create_route_table(
        &mut self,
        env: &Env,
        vpc_id: &str,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["route-table"])?;
        let primary = self.vpc(&env.region, vpc_id)?.cidr();
        let rt = RouteTable::new_for_vpc(self, env, vpc_id, primary, false);
        let id = rt.id.clone();
        self.route_tables.insert(rt);
        self.apply_tag_specs(env, &id, "route-table", specs)?;
        Ok(id)
    }

    /// DeleteRouteTable: not the main table, not while subnets are associated.
    pub fn delete_route_table(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let rt = self.route_table(&env.region, id)?;
        if !rt.associations.is_empty() {
            return Err(ApiError::dependency(format!(
                "The routeTable '{id}' has dependencies and cannot be deleted."
            )));
        }
        self.route_tables.remove(id);
        self.forget_endpoint_route_table(id);
        self.drop_tags(id);
        Ok(())
    }

    /// Validates a route target for a table of `vpc_id`.
    fn check_target(
        &self,
        env: &Env,
        rt_id: &str,
        vpc_id: &str,
        target: &RouteTarget,
    ) -> ApiResult<()> {
        let different = |t: &str| {
            ApiError::invalid_value(format!(
                "route table {rt_id} and network gateway {t} belong to different networks"
            ))
        };
        match target {
            RouteTarget::Local => Err(ApiError::invalid_value(
                "The target 'local' may not be used in a route you create.",
            )),
            RouteTarget::Gateway(g) => {
                let igw = self
                    .internet_gateways
                    .get(g)
                    .filter(|x| x.region == env.region)
                    .ok_or_else(|| {
                        ApiError::not_found("InvalidGatewayID.NotFound", "gateway ID", g)
                    })?;
                if igw.attached_vpc.as_deref() != Some(vpc_id) {
                    return Err(different(g));
                }
                Ok(())
            }
            RouteTarget::NatGateway(n) => {
                let nat = self
                    .nat_gateways
                    .get(n)
                    .filter(|x| x.region == env.region && x.state != "deleted")
                    .ok_or_else(|| {
                        ApiError::new(
                            "NatGatewayNotFound",
                            format!("NAT gateway {n} was not found"),
                        )
                    })?;
                if nat.vpc_id != vpc_id {
                    return Err(different(n));
                }
                Ok(())
            }
            RouteTarget::NetworkInterface(e) => {
                let eni = self
                    .network_interfaces
                    .get(e)
                    .filter(|x| x.region == env.region)
                    .ok_or_else(|| {
                        ApiError::not_found(
                            "InvalidNetworkInterfaceID.NotFound",
                            "networkInterface ID",
                            e,
                        )
                    })?;
                if eni.vpc_id != vpc_id {
                    return Err(different(e));
                }
                Ok(())
            }
            RouteTarget::Instance(i) => {
                let eni = self.primary_eni_of_instance(i).ok_or_else(|| {
                    ApiError::not_found("InvalidInstanceID.NotFound", "instance ID", i)
                })?;
                if eni.vpc_id != vpc_id {
                    return Err(different(i));
                }
                Ok(())
            }
            RouteTarget::VpcPeering(p) => {
                // AWS accepts a route to an active or still pending connection of this
                // VPC (it is a blackhole until the connection is active).
                let pcx = self
                    .vpc_peering_connections
                    .get(p)
                    .filter(|x| x.visible_in(&env.region))
                    .filter(|x| matches!(x.status.as_str(), "active" | "pending-acceptance"))
                    .ok_or_else(|| super::peering::peering_not_found(p))?;
                if pcx.other_side(vpc_id).is_none() {
                    return Err(different(p));
                }
                Ok(())
            }
            // AWS: endpoint routes are added only by associating the table with the
            // endpoint (CreateVpcEndpoint, ModifyVpcEndpoint).
            RouteTarget::VpcEndpoint(e) => Err(endpoint_route_refused(e)),
            RouteTarget::EgressOnlyGateway(g) => {
                let eigw = self.egress_only_igw(&env.region, g)?;
                if eigw.vpc_id != vpc_id {
                    return Err(different(g));
                }
                Ok(())
            }
            RouteTarget::TransitGateway(t) => {
                let tgw = self.transit_gateway(&env.region, t)?;
                if matches!(tgw.state.as_str(), "deleting" | "deleted") {
                    return Err(super::tgw::tgw_not_found(t));
                }
                // AWS: the VPC must be attached to the gateway before a route can
                // name it.
                if !self.transit_gateway_attachments.iter().any(|a| {
                    a.transit_gateway_id == *t
                        && a.vpc_id == vpc_id
                        && !matches!(a.state.as_str(), "deleting" | "deleted")
                }) {
                    return Err(different(t));
                }
                Ok(())
            }
        }
    }

    /// AWS: an egress-only internet gateway carries IPv6 only, so its routes need an
    /// IPv6 destination.
    fn check_family(dest: &Destination, target: &RouteTarget) -> ApiResult<()> {
        if let RouteTarget::EgressOnlyGateway(g) = target
            && !matches!(dest, Destination::Cidr6(_))
        {
            return Err(ApiError::invalid_value(format!(
                "Egress-only internet gateway {g} supports IPv6 traffic only: use DestinationIpv6CidrBlock."
            )));
        }
        Ok(())
    }

    /// CreateRoute. `RouteAlreadyExists` when the table has a route for that destination.
    pub fn create_route(
        &mut self,
        env: &Env,
        rt_id: &str,
        destination: &str,
        target: RouteTarget,
    ) -> ApiResult<()> {
        let rt = self.route_table(&env.region, rt_id)?.clone();
        let dest = self.parse_destination(env, destination)?;
        if rt.routes.iter().any(|r| r.destination == dest) {
            return Err(ApiError::new(
                "RouteAlreadyExists",
                format!("The route identified by {dest} already exists."),
            ));
        }
        self.check_target(env, rt_id, &rt.vpc_id, &target)?;
        World::check_family(&dest, &target)?;
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.routes.push(Route {
                destination: dest,
                target,
                origin: "CreateRoute".into(),
            });
        }
        Ok(())
    }

    /// A route destination as CreateRoute/ReplaceRoute/DeleteRoute take it: a CIDR
    /// block, or the id of a prefix list of the Region.
    fn parse_destination(&self, env: &Env, destination: &str) -> ApiResult<Destination> {
        if destination.starts_with("pl-") {
            if self.prefix_list_cidrs(&env.region, destination).is_none() {
                return Err(ApiError::new(
                    "InvalidPrefixListID.NotFound",
                    format!("The prefix list ID '{destination}' does not exist"),
                ));
            }
            return Ok(Destination::PrefixList(destination.to_string()));
        }
        if destination.contains(':') {
            return super::ipv6::parse_cidr6("destinationIpv6CidrBlock", destination)
                .map(Destination::Cidr6);
        }
        parse_cidr("destinationCidrBlock", destination).map(Destination::Cidr)
    }

    fn find_route(
        &self,
        env: &Env,
        rt_id: &str,
        destination: &str,
    ) -> ApiResult<(RouteTable, usize, Destination)> {
        let rt = self.route_table(&env.region, rt_id)?.clone();
        let dest = self.parse_destination(env, destination)?;
        let pos = rt
            .routes
            .iter()
            .position(|r| r.destination == dest)
            .ok_or_else(|| {
                let key = match dest {
                    Destination::Cidr(_) => "destination-cidr-block",
                    Destination::Cidr6(_) => "destination-ipv6-cidr-block",
                    Destination::PrefixList(_) => "destination-prefix-list-id",
                };
                ApiError::new(
                    "InvalidRoute.NotFound",
                    format!("no route with {key} {dest} in route table {rt_id}"),
                )
            })?;
        if let RouteTarget::VpcEndpoint(e) = &rt.routes[pos].target {
            return Err(endpoint_route_refused(e));
        }
        Ok((rt, pos, dest))
    }

    /// ReplaceRoute: the route must exist; the local route cannot be replaced.
    pub fn replace_route(
        &mut self,
        env: &Env,
        rt_id: &str,
        destination: &str,
        target: RouteTarget,
    ) -> ApiResult<()> {
        let (rt, pos, dest) = self.find_route(env, rt_id, destination)?;
        if rt.routes[pos].target == RouteTarget::Local {
            return Err(ApiError::invalid_value(format!(
                "cannot replace local route {dest} in route table {rt_id}"
            )));
        }
        self.check_target(env, rt_id, &rt.vpc_id, &target)?;
        World::check_family(&dest, &target)?;
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.routes[pos].target = target;
            rt.routes[pos].origin = "CreateRoute".into();
        }
        Ok(())
    }

    /// DeleteRoute: never the local route.
    pub fn delete_route(&mut self, env: &Env, rt_id: &str, destination: &str) -> ApiResult<()> {
        let (rt, pos, dest) = self.find_route(env, rt_id, destination)?;
        if rt.routes[pos].target == RouteTarget::Local {
            return Err(ApiError::invalid_value(format!(
                "cannot remove local route {dest} in route table {rt_id}"
            )));
        }
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.routes.remove(pos);
        }
        Ok(())
    }

    /// AssociateRouteTable (subnet form). Returns the association id.
    pub fn associate_route_table(
        &mut self,
        env: &Env,
        rt_id: &str,
        subnet_id: &str,
    ) -> ApiResult<String> {
        let rt = self.route_table(&env.region, rt_id)?.clone();
        let subnet = self.subnet(&env.region, subnet_id)?.clone();
        if subnet.vpc_id != rt.vpc_id {
            return Err(ApiError::invalid_value(format!(
                "Route table {rt_id} and subnet {subnet_id} belong to different networks"
            )));
        }
        if let Some(existing) = self.route_tables.iter().find(|r| {
            r.associations
                .iter()
                .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
        }) {
            return Err(ApiError::new(
                "Resource.AlreadyAssociated",
                format!(
                    "the specified association for route table {} conflicts with an existing association",
                    existing.id
                ),
            ));
        }
        let assoc = self.alloc_id("rtbassoc");
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.associations.push(RtAssociation {
                id: assoc.clone(),
                subnet_id: Some(subnet_id.to_string()),
                gateway_id: None,
                main: false,
            });
        }
        Ok(assoc)
    }

    fn find_rt_association(&self, env: &Env, assoc_id: &str) -> ApiResult<(String, RtAssociation)> {
        self.route_tables
            .in_region(&env.region)
            .find_map(|r| {
                r.associations
                    .iter()
                    .find(|a| a.id == assoc_id)
                    .map(|a| (r.id.clone(), a.clone()))
            })
            .ok_or_else(|| assoc_not_found(assoc_id))
    }

    /// DisassociateRouteTable: the subnet falls back to the main table. The main
    /// association itself cannot be disassociated.
    pub fn disassociate_route_table(&mut self, env: &Env, assoc_id: &str) -> ApiResult<()> {
        let (rt_id, assoc) = self.find_rt_association(env, assoc_id)?;
        if assoc.main {
            return Err(ApiError::invalid_value(format!(
                "cannot disassociate the main route table association {assoc_id}"
            )));
        }
        if let Some(rt) = self.route_tables.get_mut(&rt_id) {
            rt.associations.retain(|a| a.id != assoc_id);
        }
        Ok(())
    }

    /// ReplaceRouteTableAssociation: moves a subnet (or the VPC's "main" role) to another
    /// table of the same VPC. Returns the new association id.
    pub fn replace_route_table_association(
        &mut self,
        env: &Env,
        assoc_id: &str,
        new_rt: &str,
    ) -> ApiResult<String> {
        let (old_rt, assoc) = self.find_rt_association(env, assoc_id)?;
        let old_vpc = self.route_table(&env.region, &old_rt)?.vpc_id.clone();
        let target = self.route_table(&env.region, new_rt)?.clone();
        if target.vpc_id != old_vpc {
            return Err(ApiError::invalid_value(format!(
                "Route table {new_rt} and association {assoc_id} belong to different networks"
            )));
        }
        let new_id = self.alloc_id("rtbassoc");
        if let Some(rt) = self.route_tables.get_mut(&old_rt) {
            rt.associations.retain(|a| a.id != assoc_id);
        }
        if let Some(rt) = self.route_tables.get_mut(new_rt) {
            rt.associations.push(RtAssociation {
                id: new_id.clone(),
                ..assoc
            });
        }
        Ok(new_id)
    }
}

//! VPC endpoints: CreateVpcEndpoint, ModifyVpcEndpoint, DeleteVpcEndpoints,
//! DescribeVpcEndpoints and the services they reach (DescribeVpcEndpointServices).
//!
//! What is modelled is the *gateway* endpoint of S3 and DynamoDB, with the rules of the
//! Amazon VPC User Guide ("Gateway endpoints"):
//!
//! - the endpoint adds one route to each chosen route table, destination the service's
//!   AWS-managed prefix list (`pl-…`), target the endpoint (`vpce-…`); modifying the
//!   endpoint adds or removes those routes, deleting it removes them all;
//! - the route APIs cannot create, replace or delete an endpoint route;
//! - one route table holds at most one endpoint route per service;
//! - the endpoint has a policy, full access by default, which the service evaluates for
//!   every request that arrives through the endpoint (beside identity and bucket
//!   policies).
//!
//! The fabric carries the packets: `compile` turns each endpoint route into one route per
//! CIDR of the prefix list with a `VpcEndpoint` target, and the world runtime attaches a
//! service host at `Port::Endpoint(vpce)` that hands requests to the same API router as
//! the public endpoint, marked with [`ThroughEndpoint`].
//!
//! *Interface* endpoints (PrivateLink) of the AWS services vpclab serves follow the
//! User Guide's "Access an AWS service using an interface VPC endpoint": one
//! requester-managed network interface (`interfaceType` `vpc_endpoint`) per chosen
//! subnet, at most one subnet per Availability Zone, with the endpoint's security groups
//! (the VPC's default group when none is given); DNS names
//! `vpce-ID-SUFFIX.SERVICE.REGION.vpce.amazonaws.com` (regional, then one per zone);
//! private DNS (on by default for AWS services) makes the service's public name resolve
//! to the interfaces inside the VPC and needs `enableDnsSupport` and
//! `enableDnsHostnames`; one endpoint per service and VPC may have it. The world runs
//! one service host per interface, so the interface's security group and the subnet's
//! network ACL decide each connection as for any other interface.

use serde::{Deserialize, Serialize};

use super::prefix_list::{MANAGED_SERVICES, managed_prefix_lists};
use super::route_table::{Destination, Route, RouteTarget};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World};

/// The policy AWS attaches when the caller gives none: full access to the service.
pub const DEFAULT_POLICY: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VpcEndpoint {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    /// `com.amazonaws.REGION.SERVICE`.
    pub service_name: String,
    /// `Gateway` (the only type modelled).
    pub endpoint_type: String,
    pub state: String,
    pub route_table_ids: Vec<String>,
    /// The endpoint policy as the caller wrote it (or [`DEFAULT_POLICY`]).
    pub policy: String,
    /// The service's AWS-managed prefix list, the destination of the endpoint's routes
    /// (gateway endpoints; empty for interface endpoints).
    pub prefix_list_id: String,
    pub created: Timestamp,
    /// Interface endpoints: the subnets, one interface in each (same order).
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub network_interface_ids: Vec<String>,
    /// Interface endpoints: the security groups of every interface.
    #[serde(default)]
    pub group_ids: Vec<String>,
    #[serde(default)]
    pub private_dns_enabled: bool,
    /// The random part of the endpoint's DNS names (`vpce-ID-SUFFIX.…`).
    #[serde(default)]
    pub dns_suffix: String,
}

/// The services with an interface endpoint here: the regional services of the simulated
/// internet's endpoint table that AWS offers through PrivateLink (S3 and DynamoDB are
/// reached through gateway endpoints only, docs/fidelity.md).
pub const INTERFACE_SERVICES: &[&str] = &[
    "ec2",
    "sts",
    "logs",
    "monitoring",
    "sns",
    "sqs",
    "ssm",
    "lambda",
    "kms",
    "secretsmanager",
    "elasticloadbalancing",
    "autoscaling",
    "cloudformation",
    "events",
    "ecs",
];

impl VpcEndpoint {
    pub fn is_interface(&self) -> bool {
        self.endpoint_type == "Interface"
    }

    /// `sts` of `com.amazonaws.us-east-1.sts`.
    pub fn service(&self) -> &str {
        self.service_name.rsplit('.').next().unwrap_or_default()
    }

    /// The service's public name, which private DNS makes resolve to the interfaces.
    pub fn private_dns_name(&self) -> String {
        format!("{}.{}.amazonaws.com", self.service(), self.region)
    }

    /// The endpoint's own DNS names: the regional one, then one per zone of its
    /// subnets (given in `zones`), as DescribeVpcEndpoints' `dnsEntrySet` lists them.
    pub fn dns_names(&self, zones: &[String]) -> Vec<String> {
        let base = format!("{}-{}", self.id, self.dns_suffix);
        let tail = format!("{}.{}.vpce.amazonaws.com", self.service(), self.region);
        let mut out = vec![format!("{base}.{tail}")];
        out.extend(zones.iter().map(|z| format!("{base}-{z}.{tail}")));
        out
    }
}

impl Resource for VpcEndpoint {
    const KIND: &'static str = "vpc_endpoint";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for VpcEndpoint {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "vpc-endpoint-id" => vec![self.id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "service-name" => vec![self.service_name.clone()],
            "vpc-endpoint-state" => vec![self.state.clone()],
            "vpc-endpoint-type" => vec![self.endpoint_type.clone()],
            "ip-address-type" => vec!["ipv4".to_string()],
            _ => return None,
        })
    }
}

/// Marks a request that reached a service through a gateway endpoint of `account`'s
/// world (set by the world's endpoint host, read by the service's authorization).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThroughEndpoint {
    pub account: String,
    pub endpoint_id: String,
}

pub fn endpoint_not_found(id: &str) -> ApiError {
    ApiError::new(
        "InvalidVpcEndpointId.NotFound",
        format!("The Vpc Endpoint Id '{id}' does not exist"),
    )
}

fn service_not_found(name: &str) -> ApiError {
    ApiError::new(
        "InvalidServiceName",
        format!("The Vpc Endpoint Service '{name}' does not exist"),
    )
}

/// The service (`s3`, `dynamodb`) of a gateway service name in `region`.
pub fn gateway_service(region: &str, service_name: &str) -> Option<&'static str> {
    let rest = service_name.strip_prefix("com.amazonaws.")?;
    let (r, service) = rest.split_once('.')?;
    if r != region {
        return None;
    }
    MANAGED_SERVICES.iter().copied().find(|s| *s == service)
}

/// The service of an interface service name in `region` (`com.amazonaws.REGION.sts`).
pub fn interface_service(region: &str, service_name: &str) -> Option<&'static str> {
    let rest = service_name.strip_prefix("com.amazonaws.")?;
    let (r, service) = rest.split_once('.')?;
    if r != region {
        return None;
    }
    INTERFACE_SERVICES.iter().copied().find(|s| *s == service)
}

/// What CreateVpcEndpoint asks for.
#[derive(Clone, Debug, Default)]
pub struct EndpointSpec {
    pub vpc_id: String,
    pub service_name: String,
    /// `VpcEndpointType`; AWS's default is `Gateway`.
    pub endpoint_type: Option<String>,
    pub route_table_ids: Vec<String>,
    pub policy: Option<String>,
    /// Interface endpoints.
    pub subnet_ids: Vec<String>,
    pub group_ids: Vec<String>,
    /// `PrivateDnsEnabled`; AWS's default for an AWS service is true.
    pub private_dns_enabled: Option<bool>,
}

/// What ModifyVpcEndpoint changes on an interface endpoint.
#[derive(Clone, Debug, Default)]
pub struct InterfaceChange {
    pub add_subnets: Vec<String>,
    pub remove_subnets: Vec<String>,
    pub add_groups: Vec<String>,
    pub remove_groups: Vec<String>,
    pub private_dns_enabled: Option<bool>,
}

fn check_policy(text: &str) -> ApiResult<()> {
    crate::model::iam::policy::parse(text, crate::model::iam::policy::Kind::Resource)
        .map(|_| ())
        .map_err(|e| ApiError::new("InvalidPolicyDocument", e.message))
}

impl World {
    pub fn vpc_endpoint(&self, region: &str, id: &str) -> ApiResult<&VpcEndpoint> {
        match self.vpc_endpoints.get(id) {
            Some(e) if e.region == region => Ok(e),
            _ => Err(endpoint_not_found(id)),
        }
    }

    /// Adds the endpoint route of `ep` to route table `rt_id` (checked: same VPC, no
    /// other endpoint route to that prefix list in the table).
    fn add_endpoint_route(&mut self, env: &Env, ep: &VpcEndpoint, rt_id: &str) -> ApiResult<()> {
        let rt = self.route_table(&env.region, rt_id)?;
        if rt.vpc_id != ep.vpc_id {
            return Err(ApiError::invalid_value(format!(
                "route table {rt_id} is not in {} (the endpoint's VPC)",
                ep.vpc_id
            )));
        }
        let dest = Destination::PrefixList(ep.prefix_list_id.clone());
        if rt.routes.iter().any(|r| r.destination == dest) {
            return Err(ApiError::new(
                "RouteAlreadyExists",
                format!(
                    "route table {rt_id} already has a route with destination-prefix-list-id {}",
                    ep.prefix_list_id
                ),
            ));
        }
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.routes.push(Route {
                destination: dest,
                target: RouteTarget::VpcEndpoint(ep.id.clone()),
                origin: "CreateRoute".into(),
            });
        }
        Ok(())
    }

    fn remove_endpoint_route(&mut self, ep_id: &str, rt_id: &str) {
        if let Some(rt) = self.route_tables.get_mut(rt_id) {
            rt.routes
                .retain(|r| r.target != RouteTarget::VpcEndpoint(ep_id.to_string()));
        }
    }

    /// CreateVpcEndpoint (gateway endpoints of S3 and DynamoDB).
    pub fn create_vpc_endpoint(
        &mut self,
        env: &Env,
        spec: &EndpointSpec,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["vpc-endpoint"])?;
        self.vpc(&env.region, &spec.vpc_id)?;
        match spec.endpoint_type.as_deref().unwrap_or("Gateway") {
            "Gateway" => {}
            "Interface" => return self.create_interface_endpoint(env, spec, specs),
            "GatewayLoadBalancer" | "Resource" | "ServiceNetwork" => {
                return Err(ApiError::new(
                    "Unsupported",
                    format!(
                        "vpclab models gateway and interface endpoints only; {} endpoints are not implemented",
                        spec.endpoint_type.as_deref().unwrap_or_default()
                    ),
                ));
            }
            other => {
                return Err(ApiError::invalid_value(format!(
                    "Value ({other}) for parameter VpcEndpointType is invalid. Expecting one of Interface, Gateway, GatewayLoadBalancer."
                )));
            }
        }
        let service = gateway_service(&env.region, &spec.service_name)
            .ok_or_else(|| service_not_found(&spec.service_name))?;
        let policy = spec.policy.clone().unwrap_or_else(|| DEFAULT_POLICY.into());
        check_policy(&policy)?;
        let list = managed_prefix_lists(&env.region)
            .into_iter()
            .find(|p| p.name.ends_with(&format!(".{service}")))
            .ok_or_else(|| service_not_found(&spec.service_name))?;
        let mut rts = spec.route_table_ids.clone();
        rts.dedup();
        let ep = VpcEndpoint {
            id: self.alloc_id("vpce"),
            region: env.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            service_name: spec.service_name.clone(),
            endpoint_type: "Gateway".into(),
            state: "available".into(),
            route_table_ids: rts.clone(),
            policy,
            prefix_list_id: list.id,
            created: env.now,
            subnet_ids: Vec::new(),
            network_interface_ids: Vec::new(),
            group_ids: Vec::new(),
            private_dns_enabled: false,
            dns_suffix: String::new(),
        };
        for rt in &rts {
            self.add_endpoint_route(env, &ep, rt)?;
        }
        let id = ep.id.clone();
        self.vpc_endpoints.insert(ep);
        self.apply_tag_specs(env, &id, "vpc-endpoint", specs)?;
        Ok(id)
    }

    /// ModifyVpcEndpoint: add or remove route tables, replace or reset the policy.
    pub fn modify_vpc_endpoint(
        &mut self,
        env: &Env,
        id: &str,
        add: &[String],
        remove: &[String],
        policy: Option<&str>,
        reset_policy: bool,
    ) -> ApiResult<()> {
        let mut ep = self.vpc_endpoint(&env.region, id)?.clone();
        if policy.is_some() && reset_policy {
            return Err(ApiError::invalid_value(
                "PolicyDocument and ResetPolicy cannot be used together",
            ));
        }
        for rt in remove {
            self.route_table(&env.region, rt)?;
            if !ep.route_table_ids.contains(rt) {
                return Err(ApiError::invalid_value(format!(
                    "route table {rt} is not associated with {id}"
                )));
            }
            self.remove_endpoint_route(id, rt);
            ep.route_table_ids.retain(|r| r != rt);
        }
        for rt in add {
            if ep.route_table_ids.contains(rt) {
                continue;
            }
            self.add_endpoint_route(env, &ep, rt)?;
            ep.route_table_ids.push(rt.clone());
        }
        if let Some(p) = policy {
            check_policy(p)?;
            ep.policy = p.to_string();
        }
        if reset_policy {
            ep.policy = DEFAULT_POLICY.into();
        }
        self.vpc_endpoints.insert(ep);
        Ok(())
    }

    /// DeleteVpcEndpoints: removes each endpoint and its routes. Returns the ids that
    /// failed, with their error, as AWS's `unsuccessful` set does.
    pub fn delete_vpc_endpoints(&mut self, env: &Env, ids: &[String]) -> Vec<(String, ApiError)> {
        let mut failed = Vec::new();
        for id in ids {
            let ep = match self.vpc_endpoint(&env.region, id) {
                Ok(e) => e.clone(),
                Err(e) => {
                    failed.push((id.clone(), e));
                    continue;
                }
            };
            for rt in &ep.route_table_ids {
                self.remove_endpoint_route(id, rt);
            }
            for eni in &ep.network_interface_ids {
                self.network_interfaces.remove(eni);
            }
            self.vpc_endpoints.remove(id);
            self.drop_tags(id);
        }
        failed
    }

    /// The interface endpoint part of CreateVpcEndpoint.
    fn create_interface_endpoint(
        &mut self,
        env: &Env,
        spec: &EndpointSpec,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        let service = interface_service(&env.region, &spec.service_name)
            .ok_or_else(|| service_not_found(&spec.service_name))?;
        if !spec.route_table_ids.is_empty() {
            return Err(ApiError::invalid_value(
                "RouteTableIds are only valid for gateway endpoints",
            ));
        }
        let policy = spec.policy.clone().unwrap_or_else(|| DEFAULT_POLICY.into());
        check_policy(&policy)?;
        let private_dns = spec.private_dns_enabled.unwrap_or(true);
        let id = self.alloc_id("vpce");
        let suffix = format!("{:08x}", self.alloc_bits() as u32);
        let mut ep = VpcEndpoint {
            id: id.clone(),
            region: env.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            service_name: spec.service_name.clone(),
            endpoint_type: "Interface".into(),
            state: "available".into(),
            route_table_ids: Vec::new(),
            policy,
            prefix_list_id: String::new(),
            created: env.now,
            subnet_ids: Vec::new(),
            network_interface_ids: Vec::new(),
            group_ids: Vec::new(),
            private_dns_enabled: false,
            dns_suffix: suffix,
        };
        debug_assert_eq!(ep.service(), service);
        let groups = if spec.group_ids.is_empty() {
            self.default_sg(&spec.vpc_id)
                .map(|g| vec![g.id.clone()])
                .unwrap_or_default()
        } else {
            spec.group_ids.clone()
        };
        self.check_groups(env, &spec.vpc_id, &groups)?;
        ep.group_ids = groups;
        for subnet in &spec.subnet_ids {
            self.add_endpoint_subnet(env, &mut ep, subnet)?;
        }
        if private_dns {
            self.check_private_dns(&ep)?;
        }
        ep.private_dns_enabled = private_dns;
        self.vpc_endpoints.insert(ep);
        self.apply_tag_specs(env, &id, "vpc-endpoint", specs)?;
        Ok(id)
    }

    /// Private DNS needs both DNS attributes of the VPC and no other endpoint of the
    /// service with private DNS in it.
    fn check_private_dns(&self, ep: &VpcEndpoint) -> ApiResult<()> {
        let vpc = self.vpc(&ep.region, &ep.vpc_id)?;
        if !vpc.enable_dns_support || !vpc.enable_dns_hostnames {
            return Err(ApiError::new(
                "InvalidParameter",
                format!(
                    "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for {}",
                    vpc.id
                ),
            ));
        }
        let name = ep.private_dns_name();
        if self.vpc_endpoints.iter().any(|o| {
            o.id != ep.id
                && o.vpc_id == ep.vpc_id
                && o.is_interface()
                && o.private_dns_enabled
                && o.private_dns_name() == name
        }) {
            return Err(ApiError::new(
                "InvalidParameter",
                format!(
                    "private-dns-enabled cannot be set because there is already a conflicting DNS domain for {name} in the VPC {}",
                    ep.vpc_id
                ),
            ));
        }
        Ok(())
    }

    /// Adds the endpoint's interface in `subnet_id` (one subnet per zone).
    fn add_endpoint_subnet(
        &mut self,
        env: &Env,
        ep: &mut VpcEndpoint,
        subnet_id: &str,
    ) -> ApiResult<()> {
        let subnet = self.subnet(&env.region, subnet_id)?.clone();
        if subnet.vpc_id != ep.vpc_id {
            return Err(ApiError::invalid_value(format!(
                "The subnet ID '{subnet_id}' does not belong to the VPC '{}'",
                ep.vpc_id
            )));
        }
        for other in &ep.subnet_ids {
            if self
                .subnets
                .get(other)
                .is_some_and(|s| s.availability_zone == subnet.availability_zone)
            {
                return Err(ApiError::new(
                    "DuplicateSubnetsInSameZone",
                    format!(
                        "Found another VPC endpoint subnet in the availability zone of {subnet_id}. VPC endpoint subnets should be in different availability zones supported by the VPC endpoint service."
                    ),
                ));
            }
        }
        let eni = self.create_interface(
            env,
            super::eni::EniSpec {
                subnet_id: subnet_id.to_string(),
                private_ip: None,
                groups: ep.group_ids.clone(),
                description: format!("VPC Endpoint Interface {}", ep.id),
                interface_type: "vpc_endpoint".into(),
                requester_managed: true,
            },
        )?;
        if let Some(e) = self.network_interfaces.get_mut(&eni) {
            e.status = "in-use".into();
        }
        ep.subnet_ids.push(subnet_id.to_string());
        ep.network_interface_ids.push(eni);
        Ok(())
    }

    /// ModifyVpcEndpoint on an interface endpoint: subnets, groups and private DNS.
    pub fn modify_interface_endpoint(
        &mut self,
        env: &Env,
        id: &str,
        change: &InterfaceChange,
        policy: Option<&str>,
        reset_policy: bool,
    ) -> ApiResult<()> {
        let mut ep = self.vpc_endpoint(&env.region, id)?.clone();
        if !ep.is_interface() {
            return Err(ApiError::invalid_value(
                "Subnets, security groups and private DNS apply to interface endpoints only",
            ));
        }
        for subnet in &change.remove_subnets {
            let Some(i) = ep.subnet_ids.iter().position(|s| s == subnet) else {
                return Err(ApiError::invalid_value(format!(
                    "subnet {subnet} is not associated with {id}"
                )));
            };
            ep.subnet_ids.remove(i);
            let eni = ep.network_interface_ids.remove(i);
            self.network_interfaces.remove(&eni);
        }
        let mut groups = ep.group_ids.clone();
        groups.retain(|g| !change.remove_groups.contains(g));
        for g in &change.add_groups {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        if groups.is_empty() {
            return Err(ApiError::invalid_value(
                "An interface endpoint needs at least one security group",
            ));
        }
        self.check_groups(env, &ep.vpc_id, &groups)?;
        ep.group_ids = groups;
        for eni in &ep.network_interface_ids {
            if let Some(e) = self.network_interfaces.get_mut(eni) {
                e.groups = ep.group_ids.clone();
            }
        }
        for subnet in &change.add_subnets {
            if !ep.subnet_ids.contains(subnet) {
                self.add_endpoint_subnet(env, &mut ep, subnet)?;
            }
        }
        if let Some(on) = change.private_dns_enabled {
            if on {
                self.check_private_dns(&ep)?;
            }
            ep.private_dns_enabled = on;
        }
        if policy.is_some() && reset_policy {
            return Err(ApiError::invalid_value(
                "PolicyDocument and ResetPolicy cannot be used together",
            ));
        }
        if let Some(p) = policy {
            check_policy(p)?;
            ep.policy = p.to_string();
        }
        if reset_policy {
            ep.policy = DEFAULT_POLICY.into();
        }
        self.vpc_endpoints.insert(ep);
        Ok(())
    }

    /// Names that private DNS of interface endpoints makes resolve inside `vpc_id`, with
    /// the endpoint interfaces' addresses.
    pub fn endpoint_private_names(&self, vpc_id: &str) -> Vec<(String, Vec<std::net::Ipv4Addr>)> {
        self.vpc_endpoints
            .iter()
            .filter(|e| e.vpc_id == vpc_id && e.is_interface() && e.private_dns_enabled)
            .map(|e| (e.private_dns_name(), self.endpoint_addresses(e)))
            .collect()
    }

    /// The private addresses of an interface endpoint's interfaces, in subnet order.
    pub fn endpoint_addresses(&self, e: &VpcEndpoint) -> Vec<std::net::Ipv4Addr> {
        e.network_interface_ids
            .iter()
            .filter_map(|n| self.network_interfaces.get(n).map(|n| n.private_ip))
            .collect()
    }

    /// Every interface endpoint's own DNS names (regional and zonal) with the
    /// addresses they resolve to everywhere (AWS publishes them in public DNS).
    pub fn endpoint_public_names(&self) -> Vec<(String, Vec<std::net::Ipv4Addr>)> {
        let mut out = Vec::new();
        for e in self.vpc_endpoints.iter().filter(|e| e.is_interface()) {
            let enis: Vec<_> = e
                .network_interface_ids
                .iter()
                .filter_map(|n| self.network_interfaces.get(n))
                .collect();
            let zones: Vec<String> = enis.iter().map(|n| n.availability_zone.clone()).collect();
            let names = e.dns_names(&zones);
            out.push((
                names[0].clone(),
                enis.iter().map(|n| n.private_ip).collect(),
            ));
            for (name, eni) in names[1..].iter().zip(&enis) {
                out.push((name.clone(), vec![eni.private_ip]));
            }
        }
        out
    }

    /// A route table is being deleted: endpoints forget it (their route went with it).
    pub(crate) fn forget_endpoint_route_table(&mut self, rt_id: &str) {
        let touched: Vec<VpcEndpoint> = self
            .vpc_endpoints
            .iter()
            .filter(|e| e.route_table_ids.iter().any(|r| r == rt_id))
            .cloned()
            .collect();
        for mut e in touched {
            e.route_table_ids.retain(|r| r != rt_id);
            self.vpc_endpoints.insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    fn world() -> (World, String, String) {
        let e = env();
        let mut w = World::new("000000000000");
        w.ensure_region(&e).unwrap();
        let vpc = w.create_vpc(&e, "10.0.0.0/16", None, &[]).unwrap();
        let rt = w.create_route_table(&e, &vpc, &[]).unwrap();
        (w, vpc, rt)
    }

    fn spec(vpc: &str, rt: &str, service: &str) -> EndpointSpec {
        EndpointSpec {
            vpc_id: vpc.into(),
            service_name: format!("com.amazonaws.us-east-1.{service}"),
            route_table_ids: vec![rt.into()],
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_routes_come_and_go_with_the_endpoint() {
        let (mut w, vpc, rt) = world();
        let id = w
            .create_vpc_endpoint(&env(), &spec(&vpc, &rt, "s3"), &[])
            .unwrap();
        let pl = w.vpc_endpoints.get(&id).unwrap().prefix_list_id.clone();
        let routes = &w.route_tables.get(&rt).unwrap().routes;
        assert!(
            routes
                .iter()
                .any(|r| r.destination == Destination::PrefixList(pl.clone())
                    && r.target == RouteTarget::VpcEndpoint(id.clone()))
        );

        // One endpoint route per service in a table (Amazon VPC User Guide).
        let err = w
            .create_vpc_endpoint(&env(), &spec(&vpc, &rt, "s3"), &[])
            .unwrap_err();
        assert_eq!(err.code, "RouteAlreadyExists");
        // Another service is fine in the same table.
        w.create_vpc_endpoint(&env(), &spec(&vpc, &rt, "dynamodb"), &[])
            .unwrap();

        w.modify_vpc_endpoint(&env(), &id, &[], std::slice::from_ref(&rt), None, false)
            .unwrap();
        let routes = &w.route_tables.get(&rt).unwrap().routes;
        assert!(
            !routes
                .iter()
                .any(|r| r.target == RouteTarget::VpcEndpoint(id.clone()))
        );
        w.modify_vpc_endpoint(&env(), &id, std::slice::from_ref(&rt), &[], None, false)
            .unwrap();
        assert!(
            w.delete_vpc_endpoints(&env(), std::slice::from_ref(&id))
                .is_empty()
        );
        let routes = &w.route_tables.get(&rt).unwrap().routes;
        assert!(
            !routes
                .iter()
                .any(|r| r.target == RouteTarget::VpcEndpoint(id.clone()))
        );
        let failed = w.delete_vpc_endpoints(&env(), std::slice::from_ref(&id));
        assert_eq!(failed[0].1.code, "InvalidVpcEndpointId.NotFound");
    }

    #[test]
    fn bad_service_type_or_policy_is_refused() {
        let (mut w, vpc, rt) = world();
        let mut s = spec(&vpc, &rt, "sqs");
        assert_eq!(
            w.create_vpc_endpoint(&env(), &s, &[]).unwrap_err().code,
            "InvalidServiceName"
        );
        s.service_name = "com.amazonaws.eu-west-1.s3".into();
        assert_eq!(
            w.create_vpc_endpoint(&env(), &s, &[]).unwrap_err().code,
            "InvalidServiceName"
        );
        let mut s = spec(&vpc, &rt, "s3");
        s.policy = Some("{not json".into());
        assert_eq!(
            w.create_vpc_endpoint(&env(), &s, &[]).unwrap_err().code,
            "InvalidPolicyDocument"
        );
        assert!(w.route_tables.get(&rt).unwrap().routes.len() == 1);
    }
}

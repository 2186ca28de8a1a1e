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
//! Interface endpoints (PrivateLink) are not implemented (docs/fidelity.md).

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
    /// The service's AWS-managed prefix list, the destination of the endpoint's routes.
    pub prefix_list_id: String,
    pub created: Timestamp,
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

/// What CreateVpcEndpoint asks for.
#[derive(Clone, Debug, Default)]
pub struct EndpointSpec {
    pub vpc_id: String,
    pub service_name: String,
    /// `VpcEndpointType`; AWS's default is `Gateway`.
    pub endpoint_type: Option<String>,
    pub route_table_ids: Vec<String>,
    pub policy: Option<String>,
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
            "Interface" | "GatewayLoadBalancer" | "Resource" | "ServiceNetwork" => {
                return Err(ApiError::new(
                    "Unsupported",
                    format!(
                        "vpclab models gateway endpoints only; {} endpoints are not implemented",
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
            self.vpc_endpoints.remove(id);
            self.drop_tags(id);
        }
        failed
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

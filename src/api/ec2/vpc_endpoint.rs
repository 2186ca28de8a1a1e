//! VPC endpoint actions: Create/Modify/DescribeVpcEndpoints, DeleteVpcEndpoints and
//! DescribeVpcEndpointServices, over [`crate::model::ec2::vpc_endpoint`] (gateway
//! endpoints of S3 and DynamoDB).

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ec2::prefix_list::MANAGED_SERVICES;
use crate::model::ec2::vpc_endpoint::{
    EndpointSpec, INTERFACE_SERVICES, InterfaceChange, VpcEndpoint, endpoint_not_found,
};
use crate::model::{ApiError, ApiResult, World};

use super::{Handler, paginate, return_true, tag_set, tf};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateVpcEndpoint", create),
    ("ModifyVpcEndpoint", modify),
    ("DeleteVpcEndpoints", delete),
    ("DescribeVpcEndpoints", describe),
    ("DescribeVpcEndpointServices", describe_services),
];

fn render(x: &mut Xml, w: &World, e: &VpcEndpoint) {
    let enis: Vec<_> = e
        .network_interface_ids
        .iter()
        .filter_map(|n| w.network_interfaces.get(n))
        .collect();
    let zones: Vec<String> = enis.iter().map(|n| n.availability_zone.clone()).collect();
    let dns: Vec<String> = if e.is_interface() {
        let mut names = e.dns_names(&zones);
        if e.private_dns_enabled {
            names.push(e.private_dns_name());
        }
        names
    } else {
        Vec::new()
    };
    let groups: Vec<(String, String)> = e
        .group_ids
        .iter()
        .map(|g| {
            let name = w
                .security_groups
                .get(g)
                .map(|s| s.group_name.clone())
                .unwrap_or_default();
            (g.clone(), name)
        })
        .collect();
    x.leaf("vpcEndpointId", &e.id)
        .leaf("vpcEndpointType", &e.endpoint_type)
        .leaf("vpcId", &e.vpc_id)
        .leaf("serviceName", &e.service_name)
        .leaf("state", &e.state)
        .leaf("policyDocument", &e.policy)
        .set("routeTableIdSet", &e.route_table_ids, |x, r| {
            x.text(r);
        })
        .set("subnetIdSet", &e.subnet_ids, |x, s| {
            x.text(s);
        })
        .set("groupSet", &groups, |x, (id, name)| {
            x.leaf("groupId", id).leaf("groupName", name);
        })
        .leaf("ipAddressType", "ipv4");
    if e.is_interface() {
        x.node("dnsOptions", |x| {
            x.leaf("dnsRecordIpType", "ipv4");
        });
    }
    x.leaf("privateDnsEnabled", tf(e.private_dns_enabled))
        .leaf("requesterManaged", "false")
        .set("networkInterfaceIdSet", &e.network_interface_ids, |x, n| {
            x.text(n);
        })
        .set("dnsEntrySet", &dns, |x, name| {
            // The hosted zone ids AWS adds are not modelled (docs/fidelity.md).
            x.leaf("dnsName", name);
        })
        .leaf("creationTimestamp", e.created.iso())
        .leaf("ownerId", &w.account);
    tag_set(x, w, &e.id);
}

fn create(c: &mut Call) -> ApiResult<Xml> {
    let spec = EndpointSpec {
        vpc_id: c.params.required("VpcId")?.to_string(),
        service_name: c.params.required("ServiceName")?.to_string(),
        endpoint_type: c.params.get("VpcEndpointType").map(str::to_string),
        route_table_ids: c.params.list("RouteTableId"),
        policy: c.params.get("PolicyDocument").map(str::to_string),
        subnet_ids: c.params.list("SubnetId"),
        group_ids: c.params.list("SecurityGroupId"),
        private_dns_enabled: c.params.bool("PrivateDnsEnabled")?,
    };
    for interface_only in ["SubnetId.1", "SecurityGroupId.1"] {
        if c.params.get(interface_only).is_some()
            && spec.endpoint_type.as_deref().unwrap_or("Gateway") == "Gateway"
        {
            return Err(ApiError::invalid_value(format!(
                "{} is not valid for a gateway endpoint (route tables choose where it applies)",
                interface_only.trim_end_matches(".1")
            )));
        }
    }
    let specs = c.params.tag_specs()?;
    let token = c.params.get("ClientToken").map(str::to_string);
    let id = c.mutate(|w, env| w.create_vpc_endpoint(env, &spec, &specs))?;
    let w = c.read()?;
    let e = w.vpc_endpoints.get(&id).ok_or_else(ApiError::internal)?;
    let mut x = Xml::new();
    x.node("vpcEndpoint", |x| render(x, &w, e));
    x.opt("clientToken", token);
    Ok(x)
}

fn modify(c: &mut Call) -> ApiResult<Xml> {
    let id = c.params.required("VpcEndpointId")?.to_string();
    let add = c.params.list("AddRouteTableId");
    let remove = c.params.list("RemoveRouteTableId");
    let policy = c.params.get("PolicyDocument").map(str::to_string);
    let reset = c.params.bool("ResetPolicy")?.unwrap_or(false);
    let change = InterfaceChange {
        add_subnets: c.params.list("AddSubnetId"),
        remove_subnets: c.params.list("RemoveSubnetId"),
        add_groups: c.params.list("AddSecurityGroupId"),
        remove_groups: c.params.list("RemoveSecurityGroupId"),
        private_dns_enabled: c.params.bool("PrivateDnsEnabled")?,
    };
    let interface = c
        .read()?
        .vpc_endpoints
        .get(&id)
        .is_some_and(VpcEndpoint::is_interface);
    if interface {
        if !add.is_empty() || !remove.is_empty() {
            return Err(ApiError::invalid_value(
                "Route tables apply to gateway endpoints only",
            ));
        }
        c.mutate(|w, env| {
            w.modify_interface_endpoint(env, &id, &change, policy.as_deref(), reset)
        })?;
        return Ok(return_true());
    }
    for (given, name) in [
        (&change.add_subnets, "AddSubnetId"),
        (&change.remove_subnets, "RemoveSubnetId"),
        (&change.add_groups, "AddSecurityGroupId"),
        (&change.remove_groups, "RemoveSecurityGroupId"),
    ] {
        if !given.is_empty() {
            return Err(ApiError::invalid_value(format!(
                "{name} is not valid for a gateway endpoint"
            )));
        }
    }
    c.mutate(|w, env| w.modify_vpc_endpoint(env, &id, &add, &remove, policy.as_deref(), reset))?;
    Ok(return_true())
}

fn delete(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VpcEndpointId");
    if ids.is_empty() {
        return Err(ApiError::missing("VpcEndpointId"));
    }
    let failed = c.mutate(|w, env| Ok(w.delete_vpc_endpoints(env, &ids)))?;
    let mut x = Xml::new();
    x.set("unsuccessful", &failed, |x, (id, e)| {
        x.node("error", |x| {
            x.leaf("code", &e.code).leaf("message", &e.message);
        })
        .leaf("resourceId", id);
    });
    Ok(x)
}

fn describe(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("VpcEndpointId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.vpc_endpoints,
        &c.env.region,
        &ids,
        &filters,
        endpoint_not_found,
    )?;
    let (page, next) = paginate(c, rows, |e| &e.id)?;
    let mut x = Xml::new();
    x.set("vpcEndpointSet", page, |x, e| render(x, &w, e));
    x.opt("nextToken", next);
    Ok(x)
}

/// The endpoint services of the Region vpclab serves: S3's and DynamoDB's gateway
/// services (interface services are not modelled). Filters `service-name` and
/// `service-type`.
fn describe_services(c: &mut Call) -> ApiResult<Xml> {
    let region = c.env.region.clone();
    let wanted = c.params.list("ServiceName");
    let filters = c.params.filters()?;
    let mut names = Vec::new();
    let services = MANAGED_SERVICES
        .iter()
        .map(|s| (*s, "Gateway"))
        .chain(INTERFACE_SERVICES.iter().map(|s| (*s, "Interface")));
    for (service, kind) in services {
        let name = format!("com.amazonaws.{region}.{service}");
        if !wanted.is_empty() && !wanted.contains(&name) {
            continue;
        }
        let mut keep = true;
        for f in &filters {
            let value = match f.name.as_str() {
                "service-name" => name.clone(),
                "service-type" => kind.to_string(),
                "owner" => "amazon".to_string(),
                other => {
                    return Err(ApiError::invalid_value(format!(
                        "The filter '{other}' is invalid"
                    )));
                }
            };
            keep &= f.values.contains(&value);
        }
        if keep {
            names.push((name, service, kind));
        }
    }
    for n in &wanted {
        if !names.iter().any(|(name, _, _)| name == n)
            && !MANAGED_SERVICES
                .iter()
                .chain(INTERFACE_SERVICES)
                .any(|s| n == &format!("com.amazonaws.{region}.{s}"))
        {
            return Err(ApiError::new(
                "InvalidServiceName",
                format!("The Vpc Endpoint Service '{n}' does not exist"),
            ));
        }
    }
    let zones = crate::model::region::zones(&region);
    let mut x = Xml::new();
    x.set("serviceNameSet", &names, |x, (n, _, _)| {
        x.text(n);
    });
    x.set("serviceDetailSet", &names, |x, (n, service, kind)| {
        x.leaf("serviceName", n)
            .set("serviceType", [*kind], |x, t| {
                x.leaf("serviceType", t);
            })
            .set("availabilityZoneSet", &zones, |x, z| {
                x.text(&z.name);
            })
            .leaf("owner", "amazon")
            .set(
                "baseEndpointDnsNameSet",
                [format!("{service}.{region}.amazonaws.com")],
                |x, d| {
                    x.text(d);
                },
            )
            .opt(
                "privateDnsName",
                (*kind == "Interface").then(|| format!("{service}.{region}.amazonaws.com")),
            )
            .leaf("vpcEndpointPolicySupported", tf(true))
            .leaf("acceptanceRequired", tf(false))
            .leaf("managesVpcEndpoints", tf(false))
            .set("supportedIpAddressTypes", ["ipv4"], |x, t| {
                x.text(t);
            });
    });
    Ok(x)
}

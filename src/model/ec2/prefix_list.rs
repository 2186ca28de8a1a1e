//! AWS-managed prefix lists: `com.amazonaws.REGION.s3` and `com.amazonaws.REGION.dynamodb`,
//! the lists a gateway VPC endpoint's route names (DescribePrefixLists,
//! DescribeManagedPrefixLists, GetManagedPrefixListEntries).
//!
//! They are not stored: each Region has them from the start, and their CIDRs are the
//! service's endpoint address inside the world (the address plan's 198.51.100.0/26, as
//! the in-world resolver answers `s3.REGION.amazonaws.com`; [`service_address`], which
//! a test in `dns::public_names` holds equal to the resolver's answer). Their ids are
//! derived from the Region and service, so they are stable across restarts and differ by
//! Region as AWS's do.
//!
//! Gateway VPC endpoints route to these lists ([`super::vpc_endpoint`]).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::model::{Filterable, Resource, World};

/// The services with an AWS-managed prefix list (those with gateway endpoints).
pub const MANAGED_SERVICES: &[&str] = &["s3", "dynamodb"];

/// The address of a gateway service's endpoint inside every world (its offset inside
/// the address plan's `SERVICE_ENDPOINTS` block, as `dns::public_names` assigns it).
pub fn service_address(service: &str) -> Option<Ipv4Addr> {
    let offset = match service {
        "s3" => 2,
        "dynamodb" => 5,
        _ => return None,
    };
    let base = vpclab_netstack::internet::SERVICE_ENDPOINTS.network();
    Some(Ipv4Addr::from(u32::from(base) + offset))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedPrefixList {
    pub id: String,
    pub region: String,
    /// `com.amazonaws.REGION.SERVICE`.
    pub name: String,
    pub cidrs: Vec<Ipv4Net>,
}

impl Resource for ManagedPrefixList {
    // Never stored: the kind only satisfies the trait that filtering uses.
    const KIND: &'static str = "aws_managed_prefix_list";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for ManagedPrefixList {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "prefix-list-id" => vec![self.id.clone()],
            "prefix-list-name" => vec![self.name.clone()],
            "owner-id" => vec!["AWS".to_string()],
            _ => return None,
        })
    }
}

/// `pl-` and 8 hex digits from the Region and service name (FNV-1a).
fn derived_id(region: &str, service: &str) -> String {
    let h = format!("{region}/{service}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("pl-{h:08x}")
}

/// The AWS-managed lists of `region`.
pub fn managed_prefix_lists(region: &str) -> Vec<ManagedPrefixList> {
    MANAGED_SERVICES
        .iter()
        .map(|service| ManagedPrefixList {
            id: derived_id(region, service),
            region: region.to_string(),
            name: format!("com.amazonaws.{region}.{service}"),
            cidrs: service_address(service)
                .map(|a| Ipv4Net::new(a, 32).expect("/32 is a valid prefix length"))
                .into_iter()
                .collect(),
        })
        .collect()
}

impl World {
    /// The CIDRs of prefix list `id` of `region` (what a route or rule naming it
    /// matches), or `None` when the Region has no such list.
    pub fn prefix_list_cidrs(&self, region: &str, id: &str) -> Option<Vec<Ipv4Net>> {
        managed_prefix_lists(region)
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.cidrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_per_region_with_stable_distinct_ids() {
        let east = managed_prefix_lists("us-east-1");
        let west = managed_prefix_lists("eu-west-1");
        assert_eq!(east[0].name, "com.amazonaws.us-east-1.s3");
        assert_eq!(east[1].name, "com.amazonaws.us-east-1.dynamodb");
        assert_ne!(east[0].id, west[0].id);
        assert_ne!(east[0].id, east[1].id);
        assert_eq!(east[0].id, managed_prefix_lists("us-east-1")[0].id);
        assert_eq!(east[0].cidrs[0].to_string(), "198.51.100.2/32");
    }
}

//! DHCP option sets: Create/Delete/DescribeDhcpOptions and AssociateDhcpOptions, and
//! [`World::dhcp_settings`], what an instance's DHCP client would receive from the set
//! its VPC uses.
//!
//! AWS rules kept here (CreateDhcpOptions and AssociateDhcpOptions references, VPC User
//! Guide "DHCP option sets"): the keys are `domain-name`, `domain-name-servers` (up to
//! four addresses, or `AmazonProvidedDNS`), `ntp-servers`, `netbios-name-servers` (up to
//! four addresses each), `netbios-node-type` (1, 2, 4 or 8) and
//! `ipv6-address-preferred-lease-time`; a set cannot be changed once created; every
//! region of an account starts with a default set (`AmazonProvidedDNS` and the region's
//! internal domain); associating the id `default` leaves the VPC with no options; a set
//! that a VPC uses cannot be deleted (`DependencyViolation`). An instance receives a
//! custom host name in `domain-name` only when the set names its own DNS servers: with
//! `AmazonProvidedDNS` the domain is only a search suffix.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World};

/// EC2's internal domain of `region`: `ec2.internal` in us-east-1,
/// `<region>.compute.internal` elsewhere (the default set's `domain-name`).
pub fn internal_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_string()
    } else {
        format!("{region}.compute.internal")
    }
}

/// The value of `domain-name-servers` that means the VPC's own resolver (base + 2).
pub const AMAZON_PROVIDED_DNS: &str = "AmazonProvidedDNS";

/// What AssociateDhcpOptions takes to leave a VPC with no options.
pub const NO_OPTIONS: &str = "default";

/// The keys AWS accepts, in the order DescribeDhcpOptions lists them.
const KEYS: &[&str] = &[
    "domain-name",
    "domain-name-servers",
    "ntp-servers",
    "netbios-name-servers",
    "netbios-node-type",
    "ipv6-address-preferred-lease-time",
];

/// Up to four servers per address key (CreateDhcpOptions).
const MAX_SERVERS: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOptions {
    pub id: String,
    pub region: String,
    /// Key → values, as given (a comma-separated value split into its items).
    pub configs: BTreeMap<String, Vec<String>>,
}

impl Resource for DhcpOptions {
    const KIND: &'static str = "dhcp_options";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl DhcpOptions {
    /// The set every region of an account starts with.
    pub fn default_for(id: &str, region: &str) -> DhcpOptions {
        let mut configs = BTreeMap::new();
        configs.insert("domain-name".to_string(), vec![internal_domain(region)]);
        configs.insert(
            "domain-name-servers".to_string(),
            vec![AMAZON_PROVIDED_DNS.to_string()],
        );
        DhcpOptions {
            id: id.to_string(),
            region: region.to_string(),
            configs,
        }
    }

    /// The configurations in AWS's key order.
    pub fn ordered(&self) -> Vec<(&str, &[String])> {
        KEYS.iter()
            .filter_map(|k| self.configs.get(*k).map(|v| (*k, v.as_slice())))
            .collect()
    }
}

impl Filterable for DhcpOptions {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "dhcp-options-id" => vec![self.id.clone()],
            "key" => self.configs.keys().cloned().collect(),
            "value" => self.configs.values().flatten().cloned().collect(),
            "owner-id" => vec![world.account.clone()],
            _ => return None,
        })
    }
}

/// `InvalidDhcpOptionID.NotFound` (AWS spells the code with `Option`, singular).
pub fn dhcp_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidDhcpOptionID.NotFound", "dhcpOption ID", id)
}

/// What an instance's DHCP client receives from its VPC's options: the resolver lines
/// and search domain of `/etc/resolv.conf`, and the domain of its host name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpSettings {
    /// `search` in resolv.conf; `None` with no options.
    pub domain_name: Option<String>,
    /// `nameserver` lines in order (`AmazonProvidedDNS` already replaced by the VPC's
    /// resolver address). Empty with no options.
    pub name_servers: Vec<Ipv4Addr>,
    pub ntp_servers: Vec<Ipv4Addr>,
    /// The domain of the instance's fully qualified host name when the set gives it one
    /// (a custom domain with custom servers); `None` keeps EC2's internal name.
    pub host_domain: Option<String>,
}

fn parse_servers(key: &str, values: &[String], allow_amazon: bool) -> ApiResult<()> {
    if values.len() > MAX_SERVERS {
        return Err(ApiError::invalid_value(format!(
            "Value for parameter {key} exceeds the maximum of {MAX_SERVERS} servers."
        )));
    }
    for v in values {
        if allow_amazon && v == AMAZON_PROVIDED_DNS {
            continue;
        }
        if v.parse::<Ipv4Addr>().is_err() {
            return Err(ApiError::invalid_value(format!(
                "Value ({v}) for parameter {key} is invalid. Must be an IPv4 address{}.",
                if allow_amazon {
                    " or AmazonProvidedDNS"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Checks one configuration as CreateDhcpOptions does.
fn check_config(key: &str, values: &[String]) -> ApiResult<()> {
    if values.is_empty() {
        return Err(ApiError::invalid_value(format!(
            "Value for parameter {key} is missing: each DHCP configuration needs at least one value."
        )));
    }
    match key {
        "domain-name" => {
            for v in values {
                let ok = !v.is_empty()
                    && v.len() <= 255
                    && v.split(' ').all(|d| {
                        !d.is_empty()
                            && d.split('.').all(|l| {
                                !l.is_empty()
                                    && l.len() <= 63
                                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            })
                    });
                if !ok {
                    return Err(ApiError::bad_param("domain-name", v));
                }
            }
            Ok(())
        }
        "domain-name-servers" => parse_servers(key, values, true),
        "ntp-servers" | "netbios-name-servers" => parse_servers(key, values, false),
        "netbios-node-type" => match values {
            [v] if matches!(v.as_str(), "1" | "2" | "4" | "8") => Ok(()),
            _ => Err(ApiError::invalid_value(format!(
                "Value ({}) for parameter netbios-node-type is invalid. Valid values are 1, 2, 4 and 8.",
                values.join(",")
            ))),
        },
        "ipv6-address-preferred-lease-time" => match values {
            [v] if v
                .parse::<u32>()
                .is_ok_and(|s| (140..=2_147_483_647).contains(&s)) =>
            {
                Ok(())
            }
            _ => Err(ApiError::bad_param(
                "ipv6-address-preferred-lease-time",
                &values.join(","),
            )),
        },
        other => Err(ApiError::invalid_value(format!(
            "Value ({other}) for parameter key is invalid. Valid keys are {}.",
            KEYS.join(", ")
        ))),
    }
}

impl World {
    /// The default set's id of `region` (created with the region).
    pub fn default_dhcp_options_id(&self, region: &str) -> Option<String> {
        self.meta()?.dhcp_options.get(region).cloned()
    }

    /// The set `id`, including a default set kept only in `meta` by a state directory
    /// written before sets were rows.
    pub fn dhcp_options_set(&self, region: &str, id: &str) -> Option<DhcpOptions> {
        match self.dhcp_options.get(id) {
            Some(d) if d.region == region => Some(d.clone()),
            Some(_) => None,
            None => (self.default_dhcp_options_id(region).as_deref() == Some(id))
                .then(|| DhcpOptions::default_for(id, region)),
        }
    }

    /// CreateDhcpOptions: `configs` are (key, values) as the request gave them, a value
    /// holding commas already split.
    pub fn create_dhcp_options(
        &mut self,
        env: &Env,
        configs: &[(String, Vec<String>)],
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["dhcp-options"])?;
        if configs.is_empty() {
            return Err(ApiError::missing("DhcpConfiguration"));
        }
        let mut map = BTreeMap::new();
        for (key, values) in configs {
            check_config(key, values)?;
            if map.insert(key.clone(), values.clone()).is_some() {
                return Err(ApiError::invalid_value(format!(
                    "The DHCP configuration key {key} is given more than once."
                )));
            }
        }
        let id = self.alloc_id("dopt");
        self.dhcp_options.insert(DhcpOptions {
            id: id.clone(),
            region: env.region.clone(),
            configs: map,
        });
        self.apply_tag_specs(env, &id, "dhcp-options", specs)?;
        Ok(id)
    }

    /// DeleteDhcpOptions: refused while a VPC uses the set.
    pub fn delete_dhcp_options(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        if self.dhcp_options_set(&env.region, id).is_none() {
            return Err(dhcp_not_found(id));
        }
        if self
            .vpcs
            .in_region(&env.region)
            .any(|v| v.dhcp_options_id == id)
        {
            return Err(ApiError::dependency(format!(
                "The dhcpOptions '{id}' has dependencies and cannot be deleted."
            )));
        }
        self.dhcp_options.remove(id);
        if let Some(meta) = self.meta.get_mut("world")
            && meta.dhcp_options.get(&env.region).map(String::as_str) == Some(id)
        {
            meta.dhcp_options.remove(&env.region);
        }
        self.tags.remove(id);
        Ok(())
    }

    /// AssociateDhcpOptions: `default` associates no options.
    pub fn associate_dhcp_options(
        &mut self,
        env: &Env,
        dhcp_options_id: &str,
        vpc_id: &str,
    ) -> ApiResult<()> {
        self.vpc(&env.region, vpc_id)?;
        if dhcp_options_id != NO_OPTIONS
            && self
                .dhcp_options_set(&env.region, dhcp_options_id)
                .is_none()
        {
            return Err(dhcp_not_found(dhcp_options_id));
        }
        if let Some(v) = self.vpcs.get_mut(vpc_id) {
            v.dhcp_options_id = dhcp_options_id.to_string();
        }
        Ok(())
    }

    /// What an instance in `vpc_id` receives by DHCP. `None` for an unknown VPC.
    pub fn dhcp_settings(&self, vpc_id: &str) -> Option<DhcpSettings> {
        let vpc = self.vpcs.get(vpc_id)?;
        let Some(set) = self.dhcp_options_set(&vpc.region, &vpc.dhcp_options_id) else {
            // `default` (no options), or a set that no longer exists.
            return Some(DhcpSettings::default());
        };
        let resolver = Ipv4Addr::from(u32::from(vpc.cidr().network()).wrapping_add(2));
        let servers = set.configs.get("domain-name-servers");
        let name_servers = servers
            .into_iter()
            .flatten()
            .filter_map(|s| {
                if s == AMAZON_PROVIDED_DNS {
                    Some(resolver)
                } else {
                    s.parse().ok()
                }
            })
            .collect();
        let domain_name = set
            .configs
            .get("domain-name")
            .and_then(|d| d.first().cloned());
        let custom_servers = servers.is_some_and(|s| s.iter().any(|s| s != AMAZON_PROVIDED_DNS));
        Some(DhcpSettings {
            host_domain: domain_name.clone().filter(|_| custom_servers),
            domain_name,
            name_servers,
            ntp_servers: set
                .configs
                .get("ntp-servers")
                .into_iter()
                .flatten()
                .filter_map(|s| s.parse().ok())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_invalid_parameter_value() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_config("domain-name", &s(&["corp.example"])).is_ok());
        assert!(
            check_config(
                "domain-name-servers",
                &s(&["AmazonProvidedDNS", "10.0.0.53"])
            )
            .is_ok()
        );
        for (k, v) in [
            ("domain-nam", s(&["x"])),
            ("domain-name", s(&["bad_name.example"])),
            (
                "domain-name-servers",
                s(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
            ),
            ("ntp-servers", s(&["AmazonProvidedDNS"])),
            ("netbios-node-type", s(&["3"])),
            ("domain-name", s(&[])),
        ] {
            let e = check_config(k, &v).expect_err(k);
            assert_eq!(e.code, "InvalidParameterValue", "{k}: {}", e.message);
        }
    }
}

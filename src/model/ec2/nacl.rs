//! Network ACLs: Create/DeleteNetworkAcl, Create/Replace/DeleteNetworkAclEntry,
//! ReplaceNetworkAclAssociation, DescribeNetworkAcls' filters. AWS rules: rule numbers
//! 1–32766, one rule per number and direction (`NetworkAclEntryAlreadyExists`); the
//! default ACL allows everything (rule 100, both directions); a new ACL denies everything;
//! every ACL ends with the `*` rule (32767, deny all), which is shown but not stored; a
//! subnet has exactly one ACL, so "associating" is always a replacement.

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::model::filter::b;
use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World, parse_cidr};

/// The number of the implicit final deny rule (`*` in the console).
pub const DEFAULT_DENY_RULE: i32 = 32767;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaclEntry {
    pub rule_number: i32,
    pub egress: bool,
    /// IANA protocol number as text, or `-1` for all.
    pub protocol: String,
    /// `allow` or `deny`.
    pub rule_action: String,
    /// `cidrBlock`, or `ipv6CidrBlock` for an IPv6 rule.
    #[serde(with = "super::ipv6::ipnet_serde")]
    pub cidr: IpNet,
    pub port_range: Option<(u16, u16)>,
    /// ICMP (type, code); -1 means any.
    pub icmp: Option<(i32, i32)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NaclAssociation {
    pub id: String,
    pub subnet_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkAcl {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub is_default: bool,
    /// The stored rules, kept sorted by (egress, rule number).
    pub entries: Vec<NaclEntry>,
    pub associations: Vec<NaclAssociation>,
    /// Whether the VPC has (had) an IPv6 block: the ACL then also ends with the IPv6
    /// `*` deny rule.
    #[serde(default)]
    pub ipv6: bool,
}

impl Resource for NetworkAcl {
    const KIND: &'static str = "network_acl";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

fn all_traffic(rule_number: i32, egress: bool, action: &str) -> NaclEntry {
    NaclEntry {
        rule_number,
        egress,
        protocol: "-1".into(),
        rule_action: action.into(),
        cidr: Ipv4Net::default().into(),
        port_range: None,
        icmp: None,
    }
}

impl NetworkAcl {
    pub(crate) fn new_for_vpc(
        world: &mut World,
        env: &Env,
        vpc_id: &str,
        is_default: bool,
    ) -> NetworkAcl {
        let entries = if is_default {
            vec![
                all_traffic(100, false, "allow"),
                all_traffic(100, true, "allow"),
            ]
        } else {
            Vec::new()
        };
        NetworkAcl {
            id: world.alloc_id("acl"),
            region: env.region.clone(),
            vpc_id: vpc_id.to_string(),
            is_default,
            entries,
            associations: Vec::new(),
            ipv6: world.vpc_has_ipv6(vpc_id),
        }
    }

    /// All rules as AWS lists and evaluates them: stored rules in ascending number per
    /// direction, then the final `*` deny of each direction. Egress rules first, as AWS
    /// lists them.
    pub fn effective_entries(&self) -> Vec<NaclEntry> {
        let mut out = Vec::with_capacity(self.entries.len() + 2);
        for egress in [true, false] {
            let mut dir: Vec<NaclEntry> = self
                .entries
                .iter()
                .filter(|e| e.egress == egress)
                .cloned()
                .collect();
            dir.sort_by_key(|e| e.rule_number);
            out.extend(dir);
            out.push(all_traffic(DEFAULT_DENY_RULE, egress, "deny"));
            if self.ipv6 {
                out.push(super::ipv6::all_ipv6(DEFAULT_DENY_RULE, egress, "deny"));
            }
        }
        out
    }
}

impl Filterable for NetworkAcl {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let entries = self.effective_entries();
        let e = entries.iter();
        Some(match name {
            "network-acl-id" => vec![self.id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "default" => vec![b(self.is_default)],
            "owner-id" => vec![world.account.clone()],
            "association.subnet-id" => self
                .associations
                .iter()
                .map(|a| a.subnet_id.clone())
                .collect(),
            "association.association-id" | "association.network-acl-association-id" => {
                self.associations.iter().map(|a| a.id.clone()).collect()
            }
            "association.network-acl-id" => {
                if self.associations.is_empty() {
                    vec![]
                } else {
                    vec![self.id.clone()]
                }
            }
            "entry.cidr" => e.map(|x| x.cidr.to_string()).collect(),
            "entry.egress" => e.map(|x| b(x.egress)).collect(),
            "entry.rule-number" => e.map(|x| x.rule_number.to_string()).collect(),
            "entry.rule-action" => e.map(|x| x.rule_action.clone()).collect(),
            "entry.protocol" => e.map(|x| x.protocol.clone()).collect(),
            "entry.port-range.from" => e
                .filter_map(|x| x.port_range.map(|p| p.0.to_string()))
                .collect(),
            "entry.port-range.to" => e
                .filter_map(|x| x.port_range.map(|p| p.1.to_string()))
                .collect(),
            "entry.icmp.type" => e.filter_map(|x| x.icmp.map(|p| p.0.to_string())).collect(),
            "entry.icmp.code" => e.filter_map(|x| x.icmp.map(|p| p.1.to_string())).collect(),
            _ => return None,
        })
    }
}

pub fn nacl_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidNetworkAclID.NotFound", "networkAcl ID", id)
}

/// A NACL rule as the API gives it, before validation.
#[derive(Clone, Debug, Default)]
pub struct NaclEntryInput {
    pub rule_number: Option<String>,
    pub egress: bool,
    pub protocol: Option<String>,
    pub rule_action: Option<String>,
    pub cidr_block: Option<String>,
    pub ipv6_cidr_block: Option<String>,
    pub port_from: Option<String>,
    pub port_to: Option<String>,
    pub icmp_type: Option<String>,
    pub icmp_code: Option<String>,
}

/// Protocol names and numbers as NACLs accept them, normalised to the number AWS shows.
pub fn nacl_protocol(p: &str) -> ApiResult<String> {
    let n = match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => return Ok("-1".into()),
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        other => other
            .parse::<u8>()
            .map_err(|_| ApiError::bad_param("protocol", p))?,
    };
    Ok(n.to_string())
}

fn parse_i32(name: &str, v: &str) -> ApiResult<i32> {
    v.trim().parse().map_err(|_| ApiError::bad_param(name, v))
}

impl NaclEntryInput {
    fn validate(&self) -> ApiResult<NaclEntry> {
        let rn = self
            .rule_number
            .as_deref()
            .ok_or_else(|| ApiError::missing("ruleNumber"))?;
        let rule_number = parse_i32("ruleNumber", rn)?;
        if !(1..=32766).contains(&rule_number) {
            return Err(ApiError::invalid_value(format!(
                "Value ({rule_number}) for parameter ruleNumber is invalid. Rule number must be between 1 and 32766."
            )));
        }
        let protocol = nacl_protocol(
            self.protocol
                .as_deref()
                .ok_or_else(|| ApiError::missing("protocol"))?,
        )?;
        let action = self
            .rule_action
            .as_deref()
            .ok_or_else(|| ApiError::missing("ruleAction"))?;
        let rule_action = match action.to_ascii_lowercase().as_str() {
            "allow" => "allow",
            "deny" => "deny",
            _ => return Err(ApiError::bad_param("ruleAction", action)),
        };
        let cidr: IpNet = match (&self.cidr_block, &self.ipv6_cidr_block) {
            (Some(c), None) => parse_cidr("cidrBlock", c)?.into(),
            (None, Some(c)) => super::ipv6::parse_cidr6("ipv6CidrBlock", c)?.into(),
            (None, None) => return Err(ApiError::missing("cidrBlock or ipv6CidrBlock")),
            (Some(_), Some(_)) => {
                return Err(ApiError::combination(
                    "Specify either cidrBlock or ipv6CidrBlock, not both.",
                ));
            }
        };
        let mut port_range = None;
        let mut icmp = None;
        if protocol == "6" || protocol == "17" {
            let (Some(f), Some(t)) = (&self.port_from, &self.port_to) else {
                return Err(ApiError::invalid_value(
                    "TCP/UDP network ACL entries need a port range (PortRange.From and PortRange.To).",
                ));
            };
            let (f, t) = (
                parse_i32("portRange.from", f)?,
                parse_i32("portRange.to", t)?,
            );
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(ApiError::invalid_value(format!(
                    "Invalid port range {f}-{t}"
                )));
            }
            port_range = Some((f as u16, t as u16));
        } else if protocol == "1" || protocol == "58" {
            let ty = self
                .icmp_type
                .as_deref()
                .map(|v| parse_i32("icmpTypeCode.type", v))
                .transpose()?;
            let code = self
                .icmp_code
                .as_deref()
                .map(|v| parse_i32("icmpTypeCode.code", v))
                .transpose()?;
            let (Some(ty), Some(code)) = (ty, code) else {
                return Err(ApiError::invalid_value(
                    "ICMP network ACL entries need IcmpTypeCode.Type and IcmpTypeCode.Code.",
                ));
            };
            icmp = Some((ty, code));
        }
        Ok(NaclEntry {
            rule_number,
            egress: self.egress,
            protocol,
            rule_action: rule_action.into(),
            cidr,
            port_range,
            icmp,
        })
    }
}

impl World {
    pub fn network_acl(&self, region: &str, id: &str) -> ApiResult<&NetworkAcl> {
        match self.network_acls.get(id) {
            Some(a) if a.region == region => Ok(a),
            _ => Err(nacl_not_found(id)),
        }
    }

    pub fn default_nacl(&self, vpc_id: &str) -> Option<&NetworkAcl> {
        self.network_acls
            .iter()
            .find(|a| a.vpc_id == vpc_id && a.is_default)
    }

    /// The ACL that guards a subnet (every subnet has exactly one).
    pub fn nacl_for_subnet(&self, subnet_id: &str) -> Option<&NetworkAcl> {
        self.network_acls
            .iter()
            .find(|a| a.associations.iter().any(|x| x.subnet_id == subnet_id))
    }

    pub fn create_network_acl(
        &mut self,
        env: &Env,
        vpc_id: &str,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["network-acl"])?;
        self.vpc(&env.region, vpc_id)?;
        let acl = NetworkAcl::new_for_vpc(self, env, vpc_id, false);
        let id = acl.id.clone();
        self.network_acls.insert(acl);
        self.apply_tag_specs(env, &id, "network-acl", specs)?;
        Ok(id)
    }

    pub fn delete_network_acl(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let acl = self.network_acl(&env.region, id)?;
        if acl.is_default {
            return Err(ApiError::invalid_value(format!(
                "cannot delete default network ACL {id}"
            )));
        }
        if !acl.associations.is_empty() {
            return Err(ApiError::dependency(format!(
                "The networkAcl '{id}' has dependencies and cannot be deleted."
            )));
        }
        self.network_acls.remove(id);
        self.drop_tags(id);
        Ok(())
    }

    pub fn create_network_acl_entry(
        &mut self,
        env: &Env,
        id: &str,
        input: &NaclEntryInput,
    ) -> ApiResult<()> {
        self.network_acl(&env.region, id)?;
        let entry = input.validate()?;
        let acl = self
            .network_acls
            .get_mut(id)
            .ok_or_else(|| nacl_not_found(id))?;
        if acl
            .entries
            .iter()
            .any(|e| e.rule_number == entry.rule_number && e.egress == entry.egress)
        {
            return Err(ApiError::new(
                "NetworkAclEntryAlreadyExists",
                format!(
                    "The network acl entry identified by {} already exists.",
                    entry.rule_number
                ),
            ));
        }
        acl.entries.push(entry);
        acl.entries.sort_by_key(|e| (e.egress, e.rule_number));
        Ok(())
    }

    pub fn replace_network_acl_entry(
        &mut self,
        env: &Env,
        id: &str,
        input: &NaclEntryInput,
    ) -> ApiResult<()> {
        self.network_acl(&env.region, id)?;
        let entry = input.validate()?;
        let acl = self
            .network_acls
            .get_mut(id)
            .ok_or_else(|| nacl_not_found(id))?;
        let Some(pos) = acl
            .entries
            .iter()
            .position(|e| e.rule_number == entry.rule_number && e.egress == entry.egress)
        else {
            return Err(entry_not_found(entry.rule_number, entry.egress, id));
        };
        acl.entries[pos] = entry;
        Ok(())
    }

    pub fn delete_network_acl_entry(
        &mut self,
        env: &Env,
        id: &str,
        rule_number: &str,
        egress: bool,
    ) -> ApiResult<()> {
        self.network_acl(&env.region, id)?;
        let n = parse_i32("ruleNumber", rule_number)?;
        let acl = self
            .network_acls
            .get_mut(id)
            .ok_or_else(|| nacl_not_found(id))?;
        let Some(pos) = acl
            .entries
            .iter()
            .position(|e| e.rule_number == n && e.egress == egress)
        else {
            return Err(entry_not_found(n, egress, id));
        };
        acl.entries.remove(pos);
        Ok(())
    }

    /// ReplaceNetworkAclAssociation: moves the subnet of `assoc_id` to `acl_id` (same
    /// VPC). Returns the new association id.
    pub fn replace_network_acl_association(
        &mut self,
        env: &Env,
        assoc_id: &str,
        acl_id: &str,
    ) -> ApiResult<String> {
        let target_vpc = self.network_acl(&env.region, acl_id)?.vpc_id.clone();
        let Some((old_acl, subnet_id)) = self.network_acls.in_region(&env.region).find_map(|a| {
            a.associations
                .iter()
                .find(|x| x.id == assoc_id)
                .map(|x| (a.id.clone(), x.subnet_id.clone()))
        }) else {
            return Err(ApiError::new(
                "InvalidAssociationID.NotFound",
                format!("The association ID '{assoc_id}' does not exist"),
            ));
        };
        let subnet_vpc = self.subnet(&env.region, &subnet_id)?.vpc_id.clone();
        if subnet_vpc != target_vpc {
            return Err(ApiError::invalid_value(format!(
                "Network ACL {acl_id} and subnet {subnet_id} belong to different networks"
            )));
        }
        let new_id = self.alloc_id("aclassoc");
        if let Some(a) = self.network_acls.get_mut(&old_acl) {
            a.associations.retain(|x| x.id != assoc_id);
        }
        if let Some(a) = self.network_acls.get_mut(acl_id) {
            a.associations.push(NaclAssociation {
                id: new_id.clone(),
                subnet_id,
            });
        }
        Ok(new_id)
    }
}

fn entry_not_found(n: i32, egress: bool, acl: &str) -> ApiError {
    let dir = if egress { "egress" } else { "ingress" };
    ApiError::new(
        "InvalidNetworkAclEntry.NotFound",
        format!("The network acl entry identified by {n} ({dir}) does not exist in {acl}."),
    )
}

//! The DNS view: a read-only snapshot of everything name resolution depends on.
//!
//! The control plane compiles its model (VPCs and their DNS attributes, instances and
//! their addresses, Route 53 hosted zones and health-check results) into a [`DnsView`];
//! the engine in [`super::engine`] answers queries from it and never mutates it. Names
//! are kept as *keys*: lower-case ASCII, no trailing dot (`www.example.com`), because
//! DNS matching is case-insensitive (RFC 4343) and Route 53 accepts names with or
//! without the final dot.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use hickory_proto::rr::{RData, RecordType};
use ipnet::Ipv4Net;

pub use crate::model::route53::rdata::{RdataError, in_domain, name_key, parse_rdata};

/// Everything the resolver needs to know about one world, at one instant.
#[derive(Debug, Clone, Default)]
pub struct DnsView {
    /// The world's seed: weighted and multivalue answers are a deterministic function of
    /// it, the query name and type, and the query's message id.
    pub seed: u64,
    /// VPCs by id (`vpc-…`).
    pub vpcs: BTreeMap<String, VpcDns>,
    /// One entry per private address of an instance (the primary address first).
    pub instances: Vec<InstanceDns>,
    /// Route 53 hosted zones by id (`Z…`).
    pub zones: BTreeMap<String, HostedZone>,
    /// Health-check results by health-check id: `true` when healthy. A record that
    /// names a health check absent from this map counts as healthy.
    pub health: BTreeMap<String, bool>,
    /// Load balancer DNS names (lower case, no final dot) and the addresses of their
    /// nodes: public ones for an internet-facing load balancer, private ones for an
    /// internal one (which AWS also publishes on the internet).
    pub load_balancers: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Interface VPC endpoints' own DNS names (`vpce-….vpce.amazonaws.com`, lower case)
    /// and the private addresses of their interfaces, published everywhere as AWS does.
    pub endpoint_names: BTreeMap<String, Vec<Ipv4Addr>>,
}

/// The DNS-relevant part of a VPC.
#[derive(Debug, Clone)]
pub struct VpcDns {
    /// The region the VPC lives in (`us-east-1`): decides the EC2 name suffixes.
    pub region: String,
    /// `enableDnsSupport`: when false the VPC's resolver does not answer at all.
    pub enable_dns_support: bool,
    /// `enableDnsHostnames`: public DNS names for instances, and (with
    /// `enable_dns_support`) private hosted zones.
    pub enable_dns_hostnames: bool,
    /// The VPC's IPv4 blocks, primary first.
    pub cidrs: Vec<Ipv4Net>,
    /// Peer VPCs (of active peering connections whose side for this VPC has
    /// `AllowDnsResolutionFromRemoteVpc`) from which this VPC's instances' public DNS
    /// names resolve to their private addresses, as inside this VPC.
    pub private_names_for: Vec<String>,
    /// Names that interface endpoints with private DNS answer inside this VPC (the
    /// service's public name, lower case) with their interfaces' addresses.
    pub endpoint_names: BTreeMap<String, Vec<Ipv4Addr>>,
}

/// The link-local address of every VPC's resolver (AWS: 169.254.169.253).
pub const LINK_LOCAL_RESOLVER: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);

impl VpcDns {
    /// The resolver's address in the VPC: the primary block's base plus two (AWS:
    /// "the base of the VPC network range plus two").
    pub fn resolver_address(&self) -> Option<Ipv4Addr> {
        let base = u32::from(self.cidrs.first()?.network());
        Some(Ipv4Addr::from(base.wrapping_add(2)))
    }

    /// Whether `addr` is where this VPC's resolver listens (base+2 or 169.254.169.253).
    pub fn is_resolver(&self, addr: Ipv4Addr) -> bool {
        addr == LINK_LOCAL_RESOLVER || self.resolver_address() == Some(addr)
    }

    /// A VPC as `CreateVpc` makes it: DNS support on, hostnames off.
    pub fn new(region: &str, cidr: Ipv4Net) -> Self {
        Self {
            region: region.to_owned(),
            enable_dns_support: true,
            enable_dns_hostnames: false,
            cidrs: vec![cidr],
            private_names_for: Vec::new(),
            endpoint_names: BTreeMap::new(),
        }
    }
}

/// One private address of an instance (or of any network interface with a name).
#[derive(Debug, Clone)]
pub struct InstanceDns {
    /// `i-…`; used for resource-based names.
    pub instance_id: String,
    /// The VPC the address belongs to.
    pub vpc_id: String,
    /// The private IPv4 address (`None`: an interface in an IPv6-only subnet).
    pub private_ip: Option<Ipv4Addr>,
    /// The public IPv4 address mapped to it (auto-assigned or Elastic IP), if any.
    pub public_ip: Option<Ipv4Addr>,
    /// Whether `i-….ec2.internal` (resource-based name) answers with this address
    /// (the instance's `EnableResourceNameDnsARecord`).
    pub resource_name: bool,
    /// The interface's first IPv6 address, if any.
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// Whether the resource-based name answers AAAA queries with `ipv6` (the
    /// instance's `EnableResourceNameDnsAAAARecord`).
    pub resource_aaaa: bool,
}

/// A Route 53 hosted zone, public or private.
#[derive(Debug, Clone)]
pub struct HostedZone {
    name: String,
    /// Private zones answer only inside the VPCs in `vpcs`.
    pub private: bool,
    /// VPC associations (ids) of a private zone; ignored for public zones.
    pub vpcs: BTreeSet<String>,
    records: BTreeMap<String, Vec<RecordSet>>,
    /// Every owner name and each of its ancestors down to the apex: a name in here
    /// exists (RFC 8020: an empty non-terminal answers NODATA, not NXDOMAIN).
    names: BTreeSet<String>,
}

impl HostedZone {
    /// An empty zone named `name` (any case, trailing dot optional).
    pub fn new(name: &str, private: bool) -> Self {
        let name = name_key(name);
        let mut names = BTreeSet::new();
        names.insert(name.clone());
        Self {
            name,
            private,
            vpcs: BTreeSet::new(),
            records: BTreeMap::new(),
            names,
        }
    }

    /// A private zone associated with the given VPCs.
    pub fn private(name: &str, vpcs: &[&str]) -> Self {
        let mut zone = Self::new(name, true);
        zone.vpcs = vpcs.iter().map(|v| (*v).to_owned()).collect();
        zone
    }

    /// The zone's apex as a key (`example.com`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a record set owned by `owner` (any case, trailing dot optional, `\052` or `*`
    /// for a wildcard label). Names outside the zone are refused.
    pub fn insert(&mut self, owner: &str, set: RecordSet) -> Result<(), RdataError> {
        let key = name_key(owner);
        if !in_domain(&key, &self.name) {
            return Err(RdataError::OutOfZone {
                name: key,
                zone: self.name.clone(),
            });
        }
        // Record the name and every ancestor down to the apex, so that an empty
        // non-terminal (`b.example.com` when only `a.b.example.com` has records) exists.
        let mut cur = key.as_str();
        loop {
            if !self.names.insert(cur.to_owned()) || cur == self.name {
                break;
            }
            match cur.split_once('.') {
                Some((_, parent)) => cur = parent,
                None => break,
            }
        }
        self.records.entry(key).or_default().push(set);
        Ok(())
    }

    /// Convenience: parses presentation-format values (as Route 53's API carries them)
    /// and adds a simple-routing record set.
    pub fn add(
        &mut self,
        owner: &str,
        rtype: RecordType,
        ttl: u32,
        values: &[&str],
    ) -> Result<(), RdataError> {
        let set = RecordSet::simple(rtype, ttl, values)?;
        self.insert(owner, set)
    }

    /// The record sets owned by `key` (a lower-case key).
    pub fn sets(&self, key: &str) -> &[RecordSet] {
        self.records.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `key` exists in the zone (has records, is an ancestor of a name that has,
    /// or is the apex).
    pub fn exists(&self, key: &str) -> bool {
        self.names.contains(key)
    }

    /// Every owner name with its record sets, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[RecordSet])> {
        self.records.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// A Route 53 resource record set: one name, one type, one routing-policy member.
#[derive(Debug, Clone)]
pub struct RecordSet {
    /// The record type.
    pub rtype: RecordType,
    /// Time to live in seconds (ignored for alias records, which take the target's).
    pub ttl: u32,
    /// The values (empty for an alias record).
    pub values: Vec<RData>,
    /// An alias to another record set of the same type in the same zone.
    pub alias: Option<AliasTarget>,
    /// Which routing policy this set takes part in.
    pub policy: Policy,
    /// `SetIdentifier`, required by Route 53 for every policy but simple.
    pub set_identifier: Option<String>,
    /// `HealthCheckId`: the set is left out of answers while the check is unhealthy.
    pub health_check_id: Option<String>,
}

impl RecordSet {
    /// A simple-routing set from presentation-format values (`"10 mail.example.com."`,
    /// `"\"v=spf1 -all\""`, `"0 issue \"amazon.com\""`).
    pub fn simple(rtype: RecordType, ttl: u32, values: &[&str]) -> Result<Self, RdataError> {
        let values = values
            .iter()
            .map(|v| parse_rdata(rtype, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            rtype,
            ttl,
            values,
            alias: None,
            policy: Policy::Simple,
            set_identifier: None,
            health_check_id: None,
        })
    }

    /// An alias set pointing at `target` (same zone) for `rtype`.
    pub fn alias(rtype: RecordType, target: &str, evaluate_target_health: bool) -> Self {
        Self {
            rtype,
            ttl: 0,
            values: Vec::new(),
            alias: Some(AliasTarget {
                dns_name: name_key(target),
                evaluate_target_health,
            }),
            policy: Policy::Simple,
            set_identifier: None,
            health_check_id: None,
        }
    }

    /// The same set with another routing policy and its `SetIdentifier`.
    pub fn with_policy(mut self, policy: Policy, set_identifier: &str) -> Self {
        self.policy = policy;
        self.set_identifier = Some(set_identifier.to_owned());
        self
    }

    /// The same set, watched by a health check.
    pub fn with_health_check(mut self, id: &str) -> Self {
        self.health_check_id = Some(id.to_owned());
        self
    }
}

/// Where an alias record points.
#[derive(Debug, Clone)]
pub struct AliasTarget {
    /// The target's name, as a key.
    pub dns_name: String,
    /// `EvaluateTargetHealth`: the alias is healthy only while the target has a healthy
    /// record set.
    pub evaluate_target_health: bool,
}

/// Route 53 routing policies the engine evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// One set per name and type; all its values are returned.
    Simple,
    /// Weight 0..=255; one set is chosen in proportion to its weight among healthy sets.
    Weighted(u8),
    /// Primary while healthy, otherwise secondary.
    Failover(FailoverRole),
    /// Up to eight healthy sets, each usually with one value.
    MultiValue,
}

/// A failover record's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverRole {
    /// Answered while healthy.
    Primary,
    /// Answered while the primary is unhealthy.
    Secondary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_ignore_case_and_the_final_dot() {
        assert_eq!(name_key("WWW.Example.COM."), "www.example.com");
        assert_eq!(name_key("\\052.example.com"), "*.example.com");
    }

    #[test]
    fn in_domain_needs_a_label_boundary() {
        assert!(in_domain("www.example.com", "example.com"));
        assert!(in_domain("example.com", "example.com"));
        assert!(!in_domain("badexample.com", "example.com"));
        assert!(in_domain("anything", ""));
    }

    #[test]
    fn the_resolver_listens_at_base_plus_two_and_link_local() {
        let vpc = VpcDns::new("us-east-1", "10.0.0.0/16".parse().expect("cidr"));
        assert_eq!(vpc.resolver_address(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(vpc.is_resolver(Ipv4Addr::new(169, 254, 169, 253)));
        assert!(!vpc.is_resolver(Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn empty_non_terminals_exist() {
        let mut zone = HostedZone::new("example.com", false);
        zone.add("a.b.example.com", RecordType::A, 60, &["192.0.2.1"])
            .expect("valid record");
        assert!(zone.exists("b.example.com"));
        assert!(zone.exists("a.b.example.com"));
        assert!(!zone.exists("c.example.com"));
    }

    #[test]
    fn records_outside_the_zone_are_refused() {
        let mut zone = HostedZone::new("example.com", false);
        let err = zone
            .add("www.example.org", RecordType::A, 60, &["192.0.2.1"])
            .expect_err("out of zone");
        assert!(matches!(err, RdataError::OutOfZone { .. }));
    }

    #[test]
    fn route53_presentation_values_parse() {
        for (t, v) in [
            (RecordType::MX, "10 mail.example.com"),
            (RecordType::TXT, "\"v=spf1 -all\""),
            (RecordType::CAA, "0 issue \"amazon.com\""),
            (RecordType::SRV, "1 10 5269 xmpp.example.com."),
            (RecordType::AAAA, "2001:db8::1"),
        ] {
            parse_rdata(t, v).expect(v);
        }
        assert!(parse_rdata(RecordType::A, "300.1.1.1").is_err());
        assert!(parse_rdata(RecordType::A, "").is_err());
        // RFC 1035 §3.3: a character-string is at most 255 octets.
        let long = format!("\"{}\"", "x".repeat(300));
        assert!(parse_rdata(RecordType::TXT, &long).is_err());
    }
}

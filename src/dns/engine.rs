//! The answer engine: one DNS query in, one DNS response out, as Route 53 would answer it
//! from a given vantage point. Sans-IO: no sockets, no clock, no randomness except the
//! world's seed and the query's own message id.
//!
//! Where a name is looked up, in order (AWS "Resolving DNS queries between VPCs and your
//! network" and "Working with private hosted zones"):
//!
//! 1. Inside a VPC whose `enableDnsSupport` is false: nowhere, the query is dropped.
//! 2. Inside a VPC with both DNS attributes on: the most specific private hosted zone
//!    associated with the VPC that contains the name. A matching private zone answers
//!    alone: a name it lacks is NXDOMAIN even if a public zone has it.
//! 3. Inside a VPC: the VPC's own names, `ip-a-b-c-d.ec2.internal` (or
//!    `.<region>.compute.internal`) and `i-….ec2.internal` for its instances, and the
//!    reverse names of addresses inside its CIDR blocks.
//! 4. Everywhere: the public view: the most specific public hosted zone, or EC2's public
//!    names (`ec2-a-b-c-d.compute-1.amazonaws.com`) of instances in VPCs with
//!    `enableDnsHostnames`, which resolve to the private address inside the instance's
//!    own VPC (split horizon) and to the public address elsewhere, and their reverse
//!    names; then the simulated internet's own names (`public_names`: well-known sites
//!    and AWS service endpoints). A name in none of these is NXDOMAIN.
//!
//! Protocol rules (each cites its RFC where it is applied): NXDOMAIN versus NODATA with
//! the zone's SOA in the authority section, CNAME chains followed and kept in the
//! answer, case-insensitive matching with the question echoed as asked, EDNS(0) buffer
//! size and TC on overflow, FORMERR for what does not parse.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::view::{
    DnsView, FailoverRole, HostedZone, InstanceDns, Policy, RecordSet, VpcDns, in_domain,
};
use super::{names, public_names};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vantage<'a> {
    /// An address inside the VPC with this id, asking the VPC's resolver (base+2 or
    /// 169.254.169.253).
    Vpc(&'a str),
    /// Anyone on the world's internet (the host-side endpoint, 192.0.2.53).
    Internet,
}

/// The transport a query arrived on: it bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP, with the largest payload this server is willing to send (and advertises in
    /// its OPT record).
    Udp {
        /// The server's EDNS(0) UDP payload size.
        max_payload: u16,
    },
    /// TCP: up to 65,535 bytes (RFC 1035 §4.2.2).
    Tcp,
}

impl Transport {
    /// UDP with [`DEFAULT_UDP_PAYLOAD`].
    pub const UDP: Transport = Transport::Udp {
        max_payload: DEFAULT_UDP_PAYLOAD,
    };
}

/// The UDP payload size the server advertises: 1232 bytes, the DNS Flag Day 2020 value
/// that avoids IP fragmentation.
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// TTL of the answers EC2 synthesises for instance names.
pub const EC2_NAME_TTL: u32 = 60;

/// Longest CNAME chain followed before giving up (and returning the chain so far).
const MAX_CHAIN: usize = 8;
/// Deepest alias-to-alias nesting followed.
const MAX_ALIAS_DEPTH: usize = 4;
/// Route 53 returns at most eight records for multivalue answer routing.
const MULTIVALUE_MAX: usize = 8;

/// Answers one DNS message (`query`, wire format) as the world would from `vantage`.
///
/// Returns `None` when nothing must be sent back: the query came from a VPC whose
/// `enableDnsSupport` is false (or that does not exist), the bytes are shorter than a
/// DNS header, or the message is itself a response (answering responses invites loops).
/// Anything else gets a response, FORMERR when the message does not parse; this never
/// panics, whatever the bytes.
pub fn answer(
    view: &DnsView,
    vantage: Vantage<'_>,
    query: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    if !resolver_answers(view, vantage) || query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => return Some(formerr(query)),
    };
    let response = respond(view, vantage, &request, transport)?;
    Some(
        response
            .to_vec()
            .unwrap_or_else(|_| servfail(request.metadata.id)),
    )
}

/// Whether the resolver at `vantage` answers at all: inside a VPC only when the VPC
/// exists and has `enableDnsSupport`.
pub fn resolver_answers(view: &DnsView, vantage: Vantage<'_>) -> bool {
    match vantage {
        Vantage::Internet => true,
        Vantage::Vpc(id) => view.vpcs.get(id).is_some_and(|v| v.enable_dns_support),
    }
}

/// Answers an already parsed request; the response fits `transport` (TC set and the
/// records left out when it would not). `None` as for [`answer`].
pub fn respond(
    view: &DnsView,
    vantage: Vantage<'_>,
    request: &Message,
    transport: Transport,
) -> Option<Message> {
    if !resolver_answers(view, vantage) || request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata = Metadata::response_from_request(&request.metadata);
    // Both the VPC resolver and the world's internet resolver recurse for the client.
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    let advertised = match transport {
        Transport::Udp { max_payload } => max_payload.max(512),
        Transport::Tcp => DEFAULT_UDP_PAYLOAD,
    };
    if let Some(edns) = &request.edns {
        // RFC 6891 §6.1.1: a request with OPT gets a response with OPT.
        let mut opt = Edns::new();
        opt.set_max_payload(advertised);
        opt.set_version(0);
        response.set_edns(opt);
        if edns.version() > 0 {
            // RFC 6891 §6.1.3: an unsupported EDNS version gets BADVERS.
            response.metadata.response_code = ResponseCode::BADVERS;
            return Some(response);
        }
    }
    let rcode = check_request(request);
    if rcode != ResponseCode::NoError {
        response.metadata.response_code = rcode;
        return Some(response);
    }
    let query = &request.queries[0];
    let vpc = match vantage {
        Vantage::Vpc(id) => view.vpcs.get_key_value(id).map(|(k, v)| (k.as_str(), v)),
        Vantage::Internet => None,
    };
    let ctx = Ctx {
        view,
        vpc,
        qid: request.metadata.id,
    };
    let resolution = resolve(&ctx, query.name(), query.query_type());
    response.metadata.response_code = resolution.rcode;
    // The VPC resolver is a recursive resolver and never claims authority; the public
    // endpoint speaks for the zones it serves (Route 53's name servers set AA).
    response.metadata.authoritative = vpc.is_none() && resolution.authoritative;
    response.answers = resolution.answers;
    response.authorities = resolution.authorities;

    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        // RFC 1035 §4.2.1: 512 bytes without EDNS; RFC 6891 §6.2.5: with EDNS, the
        // smaller of the requestor's and our payload size, but never below 512.
        Transport::Udp { .. } => match &request.edns {
            None => 512,
            Some(edns) => usize::from(edns.max_payload().clamp(512, advertised)),
        },
    };
    Some(fit(response, limit))
}

/// The response as is when it fits in `limit` bytes; otherwise the header, question and
/// OPT with TC set (RFC 2181 §9: the client retries over TCP).
fn fit(response: Message, limit: usize) -> Message {
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => response,
        Ok(_) => response.truncate(),
        // Data that cannot be encoded (the view should never hold any): SERVFAIL, not a
        // TC that would send the client to TCP for the same failure.
        Err(_) => {
            let mut failed = response.truncate();
            failed.metadata.truncation = false;
            failed.metadata.response_code = ResponseCode::ServFail;
            failed
        }
    }
}

/// RFC 1035 §4.1.1 checks on the request itself.
fn check_request(request: &Message) -> ResponseCode {
    if request.metadata.op_code != OpCode::Query {
        return ResponseCode::NotImp;
    }
    // Every server in use answers exactly one question (RFC 9619 made it the rule).
    if request.queries.len() != 1 {
        return ResponseCode::FormErr;
    }
    let query = &request.queries[0];
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return ResponseCode::Refused;
    }
    match query.query_type() {
        // Route 53 does not allow zone transfers.
        RecordType::AXFR | RecordType::IXFR => ResponseCode::Refused,
        RecordType::OPT => ResponseCode::FormErr,
        _ => ResponseCode::NoError,
    }
}

/// A FORMERR reply to bytes that hold a header but no parsable message: the header's id,
/// opcode and RD are echoed, and nothing else (the question may be what was broken).
fn formerr(query: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = query[0];
    out[1] = query[1];
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | ResponseCode::FormErr.low();
    out
}

/// A bare SERVFAIL header, for the (unexpected) case where a response does not encode.
fn servfail(id: u16) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&id.to_be_bytes());
    out[2] = 0x80;
    out[3] = 0x80 | ResponseCode::ServFail.low();
    out
}

struct Ctx<'v> {
    view: &'v DnsView,
    /// The asking VPC, when the vantage is inside one.
    vpc: Option<(&'v str, &'v VpcDns)>,
    qid: u16,
}

struct Resolution {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    authoritative: bool,
}

/// What one name lookup (one link of a CNAME chain) yields.
enum Outcome {
    Answer(Vec<Record>),
    Cname(Record, Name),
    NoData(Record),
    NxDomain(Record),
    Referral(Vec<Record>),
}

/// The key of a name: lower-case ASCII, no trailing dot.
fn key_of(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

fn fqdn(key: &str) -> Name {
    let mut name = Name::from_ascii(key).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    name
}

fn resolve(ctx: &Ctx<'_>, qname: &Name, qtype: RecordType) -> Resolution {
    let mut answers = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut name = qname.clone();
    let mut authoritative = None;
    let done = |rcode, answers, authorities, authoritative: Option<bool>| Resolution {
        rcode,
        answers,
        authorities,
        authoritative: authoritative.unwrap_or(false),
    };
    for _ in 0..=MAX_CHAIN {
        let key = key_of(&name);
        let (outcome, auth) = lookup(ctx, &name, &key, qtype);
        // RFC 6604 §3: AA describes the first owner name in the answer.
        authoritative.get_or_insert(auth);
        seen.push(key);
        match outcome {
            Outcome::Answer(records) => {
                answers.extend(records);
                return done(ResponseCode::NoError, answers, vec![], authoritative);
            }
            Outcome::Cname(record, target) => {
                answers.push(record);
                // RFC 1034 §3.6.2: a loop ends the chase; the chain so far is the answer.
                if seen.contains(&key_of(&target)) {
                    break;
                }
                name = target;
            }
            // RFC 2308 §2.2 and §3: NODATA is NOERROR with an empty answer, the SOA in
            // the authority section; RFC 6604 §3: after a CNAME the RCODE describes the
            // last name of the chain.
            Outcome::NoData(soa) => {
                return done(ResponseCode::NoError, answers, vec![soa], authoritative);
            }
            Outcome::NxDomain(soa) => {
                return done(ResponseCode::NXDomain, answers, vec![soa], authoritative);
            }
            Outcome::Referral(ns) => {
                return done(ResponseCode::NoError, answers, ns, Some(false));
            }
        }
    }
    done(ResponseCode::NoError, answers, vec![], authoritative)
}

/// One lookup of `name` from the context's vantage; the flag is whether the answer comes
/// from data this world is authoritative for.
fn lookup(ctx: &Ctx<'_>, name: &Name, key: &str, qtype: RecordType) -> (Outcome, bool) {
    if let Some((vpc_id, vpc)) = ctx.vpc {
        // AWS: private hosted zones need both enableDnsSupport and enableDnsHostnames.
        if vpc.enable_dns_hostnames {
            let zone = best_zone(ctx.view, key, |z| z.private && z.vpcs.contains(vpc_id));
            if let Some(zone) = zone {
                return (zone_lookup(ctx, zone, name, key, qtype), true);
            }
            // An interface endpoint's private DNS: AWS's own private hosted zone for the
            // service's name, associated with the VPC (same attribute rule).
            if let Some(addrs) = vpc.endpoint_names.get(key) {
                return (a_records(name, addrs, qtype), true);
            }
        }
        let domain = names::private_domain(&vpc.region);
        if in_domain(key, &domain) {
            return (ec2_private(ctx, vpc_id, &domain, name, key, qtype), true);
        }
        if let Some(ip) = names::parse_reverse(key)
            && vpc.cidrs.iter().any(|c| c.contains(&ip))
        {
            let found = instance(ctx.view, |i| i.vpc_id == vpc_id && i.private_ip == Some(ip));
            let target = found.map(|_| names::private_name(ip, &vpc.region));
            return (reverse(name, ip, target, qtype), true);
        }
    }
    public_lookup(ctx, name, key, qtype)
}

/// Domains AWS owns. A learner's public hosted zone for a name under one of them is
/// never answered on the (simulated) internet, as no registrar would delegate it: the
/// EC2 instance names and service endpoints there stay what AWS says they are.
pub const AWS_OWNED_DOMAINS: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "aws",
    "api.aws",
    "on.aws",
    "cloudfront.net",
    "awsdns.com",
];

/// Whether a zone apex is at or under an AWS-owned domain.
fn aws_owned(apex: &str) -> bool {
    AWS_OWNED_DOMAINS.iter().any(|d| in_domain(apex, d))
}

/// A records for `addrs` (TTL 60), or NODATA for another type or no address.
fn a_records(name: &Name, addrs: &[Ipv4Addr], qtype: RecordType) -> Outcome {
    match qtype {
        RecordType::A | RecordType::ANY if !addrs.is_empty() => Outcome::Answer(
            addrs
                .iter()
                .map(|a| Record::from_rdata(name.clone(), 60, RData::A(A(*a))))
                .collect(),
        ),
        _ => Outcome::NoData(root_soa()),
    }
}

fn public_lookup(ctx: &Ctx<'_>, name: &Name, key: &str, qtype: RecordType) -> (Outcome, bool) {
    // A load balancer's name answers with every node's address (ELB: "the DNS name
    // resolves to one address per enabled Availability Zone"), TTL 60 as AWS gives.
    // An interface endpoint's own names (`vpce-….vpce.amazonaws.com`) are public and
    // answer with the endpoint interfaces' private addresses.
    if let Some(addrs) = ctx
        .view
        .load_balancers
        .get(key)
        .or_else(|| ctx.view.endpoint_names.get(key))
    {
        return (a_records(name, addrs, qtype), true);
    }
    let zone = best_zone(ctx.view, key, |z| !z.private && !aws_owned(z.name()));
    let zone_len = zone.map(|z| z.name().len());
    if let Some(domain) = ec2_public_domain(key)
        && zone_len.is_none_or(|len| len < domain.len())
    {
        return (ec2_public(ctx, domain, name, key, qtype), true);
    }
    if let Some(ip) = names::parse_reverse(key)
        && zone_len.is_none_or(|len| len < "in-addr.arpa".len())
    {
        let found = instance(ctx.view, |i| {
            i.public_ip == Some(ip) && hostnames(ctx.view, &i.vpc_id).is_some()
        });
        let target = found.and_then(|i| {
            let region = hostnames(ctx.view, &i.vpc_id)?;
            Some(names::public_name(ip, region))
        });
        return (reverse(name, ip, target, qtype), true);
    }
    match zone {
        Some(zone) => (zone_lookup(ctx, zone, name, key, qtype), true),
        // No zone of this world holds the name: the simulated internet's own names
        // (well-known sites, AWS endpoints), or nothing.
        None => {
            if let Some(addr) = public_names::lookup(key) {
                // A well-known site with an IPv6 address answers AAAA with it; the
                // others (AWS's IPv4-only endpoint names …) are NODATA for AAAA.
                let outcome = match (qtype, public_names::lookup6(key)) {
                    (RecordType::AAAA, Some(v6)) => Outcome::Answer(vec![Record::from_rdata(
                        name.clone(),
                        PUBLIC_NAME_TTL,
                        RData::AAAA(hickory_proto::rr::rdata::AAAA(v6)),
                    )]),
                    _ => address_outcome_ttl(name, addr, qtype, root_soa(), PUBLIC_NAME_TTL),
                };
                return (outcome, false);
            }
            let soa = root_soa();
            if key.is_empty() {
                (Outcome::NoData(soa), false)
            } else {
                (Outcome::NxDomain(soa), false)
            }
        }
    }
}

/// The region of the instance's VPC when that VPC has `enableDnsHostnames`.
fn hostnames<'v>(view: &'v DnsView, vpc_id: &str) -> Option<&'v str> {
    view.vpcs
        .get(vpc_id)
        .filter(|v| v.enable_dns_hostnames)
        .map(|v| v.region.as_str())
}

fn instance(view: &DnsView, pred: impl Fn(&InstanceDns) -> bool) -> Option<&InstanceDns> {
    view.instances.iter().find(|i| pred(i))
}

/// The most specific zone accepted by `pred` that contains `key`; among zones of the
/// same name, the one whose id sorts first.
fn best_zone<'v>(
    view: &'v DnsView,
    key: &str,
    pred: impl Fn(&HostedZone) -> bool,
) -> Option<&'v HostedZone> {
    let mut best: Option<&HostedZone> = None;
    for zone in view.zones.values() {
        if pred(zone)
            && in_domain(key, zone.name())
            && best.is_none_or(|b| zone.name().len() > b.name().len())
        {
            best = Some(zone);
        }
    }
    best
}

/// The synthetic apex EC2's public names live under, if `key` is below one:
/// `compute-1.amazonaws.com` or `<region>.compute.amazonaws.com`.
fn ec2_public_domain(key: &str) -> Option<&str> {
    const US_EAST_1: &str = "compute-1.amazonaws.com";
    const OTHERS: &str = ".compute.amazonaws.com";
    if in_domain(key, US_EAST_1) {
        return Some(&key[key.len() - US_EAST_1.len()..]);
    }
    let rest = key.strip_suffix(OTHERS)?;
    let region_start = rest.rfind('.').map_or(0, |i| i + 1);
    let region = &rest[region_start..];
    if region.is_empty() {
        return None;
    }
    Some(&key[region_start..])
}

fn ec2_private(
    ctx: &Ctx<'_>,
    vpc_id: &str,
    domain: &str,
    name: &Name,
    key: &str,
    qtype: RecordType,
) -> Outcome {
    let soa = synthetic_soa(domain);
    if key == domain {
        return apex_outcome(soa, qtype);
    }
    let label = &key[..key.len() - domain.len() - 1];
    let found = if let Some(ip) = names::parse_address_label(label, "ip-") {
        instance(ctx.view, |i| i.vpc_id == vpc_id && i.private_ip == Some(ip))
    } else {
        // The resource-based name exists when either of its records is enabled; each
        // query type is answered only by its own option (EC2 User Guide, "resource
        // name DNS A / AAAA record").
        let found = instance(ctx.view, |i| {
            i.vpc_id == vpc_id
                && (i.resource_name || i.resource_aaaa)
                && i.instance_id.eq_ignore_ascii_case(label)
        });
        return match found {
            Some(i) if qtype == RecordType::AAAA => match i.ipv6.filter(|_| i.resource_aaaa) {
                Some(v6) => Outcome::Answer(vec![Record::from_rdata(
                    name.clone(),
                    EC2_NAME_TTL,
                    RData::AAAA(hickory_proto::rr::rdata::AAAA(v6)),
                )]),
                None => Outcome::NoData(soa),
            },
            Some(i) if i.resource_name => match i.private_ip {
                Some(ip) => address_outcome(name, ip, qtype, soa),
                None => Outcome::NoData(soa),
            },
            Some(_) => Outcome::NoData(soa),
            None => Outcome::NxDomain(soa),
        };
    };
    match found.and_then(|i| i.private_ip) {
        Some(ip) => address_outcome(name, ip, qtype, soa),
        None => Outcome::NxDomain(soa),
    }
}

fn ec2_public(ctx: &Ctx<'_>, domain: &str, name: &Name, key: &str, qtype: RecordType) -> Outcome {
    let soa = synthetic_soa(domain);
    if key == domain {
        return apex_outcome(soa, qtype);
    }
    let region = if domain == "compute-1.amazonaws.com" {
        "us-east-1"
    } else {
        domain.split('.').next().unwrap_or_default()
    };
    let label = &key[..key.len() - domain.len() - 1];
    let Some(ip) = names::parse_address_label(label, "ec2-") else {
        return Outcome::NxDomain(soa);
    };
    let found = instance(ctx.view, |i| {
        i.public_ip == Some(ip) && hostnames(ctx.view, &i.vpc_id) == Some(region)
    });
    match found {
        // Split horizon: inside the instance's own VPC its public name means its private
        // address (traffic stays inside the VPC); so it does in a peer VPC when the
        // instance's side of the peering allows DNS resolution from the remote VPC;
        // anywhere else, the public address.
        Some(i) => {
            let inside = ctx.vpc.is_some_and(|(id, _)| {
                id == i.vpc_id
                    || ctx
                        .view
                        .vpcs
                        .get(&i.vpc_id)
                        .is_some_and(|v| v.private_names_for.iter().any(|p| p == id))
            });
            let addr = match i.private_ip {
                Some(private) if inside => private,
                _ => ip,
            };
            address_outcome(name, addr, qtype, soa)
        }
        None => Outcome::NxDomain(soa),
    }
}

fn address_outcome(name: &Name, addr: Ipv4Addr, qtype: RecordType, soa: Record) -> Outcome {
    address_outcome_ttl(name, addr, qtype, soa, EC2_NAME_TTL)
}

/// TTL of the simulated internet's own names (well-known sites, AWS endpoints).
pub const PUBLIC_NAME_TTL: u32 = 60;

fn address_outcome_ttl(
    name: &Name,
    addr: Ipv4Addr,
    qtype: RecordType,
    soa: Record,
    ttl: u32,
) -> Outcome {
    match qtype {
        RecordType::A | RecordType::ANY => Outcome::Answer(vec![Record::from_rdata(
            name.clone(),
            ttl,
            RData::A(A(addr)),
        )]),
        _ => Outcome::NoData(soa),
    }
}

fn apex_outcome(soa: Record, qtype: RecordType) -> Outcome {
    match qtype {
        RecordType::SOA | RecordType::ANY => Outcome::Answer(vec![soa]),
        _ => Outcome::NoData(soa),
    }
}

fn reverse(name: &Name, ip: Ipv4Addr, target: Option<String>, qtype: RecordType) -> Outcome {
    let soa = synthetic_soa(&names::reverse_zone(ip));
    match (target, qtype) {
        (Some(target), RecordType::PTR | RecordType::ANY) => {
            Outcome::Answer(vec![Record::from_rdata(
                name.clone(),
                EC2_NAME_TTL,
                RData::PTR(PTR(fqdn(&target))),
            )])
        }
        (Some(_), _) => Outcome::NoData(soa),
        (None, _) => Outcome::NxDomain(soa),
    }
}

/// The negative-caching SOA for a zone (RFC 2308 §3: its TTL is the smaller of the SOA's
/// own TTL and its MINIMUM field).
fn negative(apex: Name, ttl: u32, soa: &SOA) -> Record {
    Record::from_rdata(apex, ttl.min(soa.minimum), RData::SOA(soa.clone()))
}

fn synthetic_soa(apex: &str) -> Record {
    let soa = SOA::new(
        fqdn(&format!("ns.{apex}")),
        fqdn(&format!("hostmaster.{apex}")),
        1,
        7200,
        900,
        1_209_600,
        EC2_NAME_TTL,
    );
    negative(fqdn(apex), EC2_NAME_TTL, &soa)
}

fn root_soa() -> Record {
    let soa = SOA::new(
        fqdn("ns.vpclab.internal"),
        fqdn("hostmaster.vpclab.internal"),
        1,
        1800,
        900,
        604_800,
        900,
    );
    negative(Name::root(), 900, &soa)
}

/// The SOA Route 53 creates with a zone, used when the view's zone has none.
fn default_route53_soa() -> SOA {
    SOA::new(
        fqdn("ns-2048.awsdns-64.net"),
        fqdn("awsdns-hostmaster.amazon.com"),
        1,
        7200,
        900,
        1_209_600,
        86_400,
    )
}

fn zone_soa(zone: &HostedZone) -> Record {
    let apex = fqdn(zone.name());
    let stored = zone.sets(zone.name()).iter().find_map(|s| {
        if s.rtype != RecordType::SOA {
            return None;
        }
        s.values.iter().find_map(|v| match v {
            RData::SOA(soa) => Some((s.ttl, soa)),
            _ => None,
        })
    });
    match stored {
        Some((ttl, soa)) => negative(apex, ttl, soa),
        None => negative(apex, 900, &default_route53_soa()),
    }
}

/// The full SOA record (positive answers carry the SOA's own TTL).
fn zone_soa_answer(zone: &HostedZone, owner: &Name) -> Vec<Record> {
    let apex = owner.clone();
    let stored: Vec<Record> = zone
        .sets(zone.name())
        .iter()
        .filter(|s| s.rtype == RecordType::SOA)
        .flat_map(|s| {
            s.values
                .iter()
                .map(|v| Record::from_rdata(apex.clone(), s.ttl, v.clone()))
        })
        .collect();
    if stored.is_empty() {
        vec![Record::from_rdata(
            apex,
            900,
            RData::SOA(default_route53_soa()),
        )]
    } else {
        stored
    }
}

fn zone_lookup(
    ctx: &Ctx<'_>,
    zone: &HostedZone,
    name: &Name,
    key: &str,
    qtype: RecordType,
) -> Outcome {
    if let Some(referral) = delegation(zone, key) {
        return referral;
    }
    if key == zone.name() && qtype == RecordType::SOA {
        return Outcome::Answer(zone_soa_answer(zone, name));
    }
    let sets = zone.sets(key);
    if !sets.is_empty() {
        return from_sets(ctx, zone, name, key, sets, qtype);
    }
    // RFC 8020 / RFC 4592 §2.2.2: an existing name without records (empty non-terminal)
    // is NODATA, and wildcards never apply to it.
    if zone.exists(key) {
        return Outcome::NoData(zone_soa(zone));
    }
    // RFC 4592 §3.3.1: find the closest encloser; its `*` child, if any, is the source of
    // synthesis. The owner of the synthesised records is the name asked for.
    let mut ancestor = key;
    while let Some((_, parent)) = ancestor.split_once('.') {
        ancestor = parent;
        if !in_domain(ancestor, zone.name()) {
            break;
        }
        if zone.exists(ancestor) {
            let wildcard = format!("*.{ancestor}");
            let sets = zone.sets(&wildcard);
            if !sets.is_empty() {
                return from_sets(ctx, zone, name, &wildcard, sets, qtype);
            }
            break;
        }
    }
    Outcome::NxDomain(zone_soa(zone))
}

/// RFC 1034 §4.3.2 step 3b: an NS record set below the apex is a zone cut; names at or
/// below it are referred (NS in the authority section, no AA).
fn delegation(zone: &HostedZone, key: &str) -> Option<Outcome> {
    if key.len() <= zone.name().len() {
        return None;
    }
    // Walk from the apex down towards the name, so the topmost cut wins.
    let below = &key[..key.len() - zone.name().len() - 1];
    let mut cut_start = below.len();
    loop {
        let start = below[..cut_start].rfind('.').map_or(0, |i| i + 1);
        let cut = &key[start..];
        let ns: Vec<Record> = zone
            .sets(cut)
            .iter()
            .filter(|s| s.rtype == RecordType::NS && s.alias.is_none())
            .flat_map(|s| {
                let owner = fqdn(cut);
                s.values
                    .iter()
                    .map(move |v| Record::from_rdata(owner.clone(), s.ttl, v.clone()))
            })
            .collect();
        if !ns.is_empty() {
            return Some(Outcome::Referral(ns));
        }
        if start == 0 {
            return None;
        }
        cut_start = start - 1;
    }
}

fn from_sets(
    ctx: &Ctx<'_>,
    zone: &HostedZone,
    name: &Name,
    key: &str,
    sets: &[RecordSet],
    qtype: RecordType,
) -> Outcome {
    let to_records = |chosen: Vec<(u32, &RData)>| -> Vec<Record> {
        chosen
            .into_iter()
            .map(|(ttl, rdata)| Record::from_rdata(name.clone(), ttl, rdata.clone()))
            .collect()
    };
    if qtype == RecordType::ANY {
        let mut types: Vec<RecordType> = sets.iter().map(|s| s.rtype).collect();
        types.dedup();
        let mut records = Vec::new();
        for rtype in types {
            records.extend(to_records(select(ctx, zone, key, sets, rtype, 0)));
        }
        return if records.is_empty() {
            Outcome::NoData(zone_soa(zone))
        } else {
            Outcome::Answer(records)
        };
    }
    if sets.iter().any(|s| s.rtype == qtype) {
        let records = to_records(select(ctx, zone, key, sets, qtype, 0));
        return if records.is_empty() {
            Outcome::NoData(zone_soa(zone))
        } else {
            Outcome::Answer(records)
        };
    }
    // RFC 1034 §3.6.2: a CNAME at the name answers every other type; the resolver goes on
    // with the canonical name.
    if sets.iter().any(|s| s.rtype == RecordType::CNAME) {
        let chosen = select(ctx, zone, key, sets, RecordType::CNAME, 0);
        if let Some((ttl, RData::CNAME(CNAME(target)))) = chosen.first().copied() {
            let record = Record::from_rdata(name.clone(), ttl, RData::CNAME(CNAME(target.clone())));
            return Outcome::Cname(record, target.clone());
        }
    }
    Outcome::NoData(zone_soa(zone))
}

/// The values answered for `rtype` at `key`, after routing policy, health checks and
/// alias resolution, each with its TTL.
fn select<'z>(
    ctx: &Ctx<'_>,
    zone: &'z HostedZone,
    key: &str,
    sets: &'z [RecordSet],
    rtype: RecordType,
    depth: usize,
) -> Vec<(u32, &'z RData)> {
    let group: Vec<&RecordSet> = sets.iter().filter(|s| s.rtype == rtype).collect();
    let Some(first) = group.first() else {
        return Vec::new();
    };
    let chosen: Vec<&RecordSet> = match first.policy {
        Policy::Simple => group
            .iter()
            .copied()
            .filter(|s| s.policy == Policy::Simple)
            .collect(),
        Policy::Weighted(_) => weighted(ctx, zone, key, rtype, &group, depth)
            .into_iter()
            .collect(),
        Policy::Failover(_) => failover(ctx, zone, &group, depth).into_iter().collect(),
        Policy::MultiValue => multivalue(ctx, zone, key, rtype, &group, depth),
    };
    let mut out = Vec::new();
    for set in chosen {
        match &set.alias {
            // Route 53: an alias takes the target's values and TTL; the target must be in
            // the same zone and of the same type.
            Some(alias) => {
                if depth < MAX_ALIAS_DEPTH {
                    let target_sets = zone.sets(&alias.dns_name);
                    out.extend(select(
                        ctx,
                        zone,
                        &alias.dns_name,
                        target_sets,
                        rtype,
                        depth + 1,
                    ));
                }
            }
            None => out.extend(set.values.iter().map(|v| (set.ttl, v))),
        }
    }
    out
}

/// Route 53 health: the set's own health check (if any) and, for an alias with
/// `EvaluateTargetHealth`, at least one healthy set at the target.
fn healthy(ctx: &Ctx<'_>, zone: &HostedZone, set: &RecordSet, depth: usize) -> bool {
    if let Some(id) = &set.health_check_id
        && !ctx.view.health.get(id).copied().unwrap_or(true)
    {
        return false;
    }
    match &set.alias {
        Some(alias) if alias.evaluate_target_health => {
            depth < MAX_ALIAS_DEPTH
                && zone
                    .sets(&alias.dns_name)
                    .iter()
                    .filter(|t| t.rtype == set.rtype)
                    .any(|t| healthy(ctx, zone, t, depth + 1))
        }
        _ => true,
    }
}

/// Route 53 weighted routing: among healthy sets (all of them when none is healthy), one
/// chosen with probability weight / total; when every weight is 0, uniformly. The draw
/// is a hash of the world seed, the name, the type and the query id: a given query always
/// gets the same answer, and a stream of queries follows the weights.
fn weighted<'z>(
    ctx: &Ctx<'_>,
    zone: &HostedZone,
    key: &str,
    rtype: RecordType,
    group: &[&'z RecordSet],
    depth: usize,
) -> Option<&'z RecordSet> {
    let weight = |s: &RecordSet| match s.policy {
        Policy::Weighted(w) => u64::from(w),
        _ => 0,
    };
    let group: Vec<&RecordSet> = group
        .iter()
        .copied()
        .filter(|s| matches!(s.policy, Policy::Weighted(_)))
        .collect();
    let healthy_sets: Vec<&RecordSet> = group
        .iter()
        .copied()
        .filter(|s| healthy(ctx, zone, s, depth))
        .collect();
    let pool = if healthy_sets.is_empty() {
        group
    } else {
        healthy_sets
    };
    if pool.is_empty() {
        return None;
    }
    let draw = choice_hash(ctx, key, rtype, b"weighted");
    let total: u64 = pool.iter().map(|s| weight(s)).sum();
    if total == 0 {
        let index = usize::try_from(draw % pool.len() as u64).unwrap_or(0);
        return pool.get(index).copied();
    }
    let mut point = draw % total;
    for set in &pool {
        let w = weight(set);
        if point < w {
            return Some(set);
        }
        point -= w;
    }
    pool.last().copied()
}

/// Route 53 failover routing: the primary while healthy, else a healthy secondary; when
/// both are unhealthy Route 53 answers with the primary.
fn failover<'z>(
    ctx: &Ctx<'_>,
    zone: &HostedZone,
    group: &[&'z RecordSet],
    depth: usize,
) -> Option<&'z RecordSet> {
    let role = |r| {
        group
            .iter()
            .copied()
            .find(|s| s.policy == Policy::Failover(r))
    };
    let primary = role(FailoverRole::Primary);
    let secondary = role(FailoverRole::Secondary);
    if let Some(p) = primary
        && healthy(ctx, zone, p, depth)
    {
        return Some(p);
    }
    if let Some(s) = secondary
        && healthy(ctx, zone, s, depth)
    {
        return Some(s);
    }
    primary.or(secondary)
}

/// Route 53 multivalue answer routing: up to eight healthy sets (up to eight of all of
/// them when none is healthy), in an order that varies from query to query.
fn multivalue<'z>(
    ctx: &Ctx<'_>,
    zone: &HostedZone,
    key: &str,
    rtype: RecordType,
    group: &[&'z RecordSet],
    depth: usize,
) -> Vec<&'z RecordSet> {
    let group: Vec<&RecordSet> = group
        .iter()
        .copied()
        .filter(|s| s.policy == Policy::MultiValue)
        .collect();
    let healthy_sets: Vec<&RecordSet> = group
        .iter()
        .copied()
        .filter(|s| healthy(ctx, zone, s, depth))
        .collect();
    let mut pool = if healthy_sets.is_empty() {
        group
    } else {
        healthy_sets
    };
    pool.sort_by_cached_key(|s| {
        choice_hash(
            ctx,
            key,
            rtype,
            s.set_identifier.as_deref().unwrap_or_default().as_bytes(),
        )
    });
    pool.truncate(MULTIVALUE_MAX);
    pool
}

/// FNV-1a over the inputs, finished with SplitMix64's mixer: stable across platforms
/// and Rust versions, unlike `std`'s hasher.
fn choice_hash(ctx: &Ctx<'_>, key: &str, rtype: RecordType, extra: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ ctx.view.seed;
    let bytes = key
        .bytes()
        .chain(u16::from(rtype).to_be_bytes())
        .chain(ctx.qid.to_be_bytes())
        .chain(extra.iter().copied());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

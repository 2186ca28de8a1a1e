//! Conformance tests of the DNS answer engine, arranged by topic; each quotes the AWS or
//! RFC rule it checks. The engine is sans-IO, so these feed it wire bytes and read the
//! wire bytes it returns.

use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::Ipv4Net;
use vpclab::dns::{
    DnsView, FailoverRole, HostedZone, InstanceDns, Policy, RecordSet, Transport, Vantage, VpcDns,
    answer,
};

// ---------------------------------------------------------------------------
// Fixture: three VPCs in two regions, one with DNS off, instances with public
// addresses, a public zone, and private zones.
// ---------------------------------------------------------------------------

fn vpc(region: &str, cidr: &str, support: bool, hostnames: bool) -> VpcDns {
    let mut v = VpcDns::new(region, Ipv4Net::from_str(cidr).expect("cidr"));
    v.enable_dns_support = support;
    v.enable_dns_hostnames = hostnames;
    v
}

fn inst(id: &str, vpc: &str, private: [u8; 4], public: Option<[u8; 4]>) -> InstanceDns {
    InstanceDns {
        instance_id: id.to_owned(),
        vpc_id: vpc.to_owned(),
        private_ip: Some(Ipv4Addr::from(private)),
        public_ip: public.map(Ipv4Addr::from),
        resource_name: true,
        ipv6: None,
        resource_aaaa: false,
    }
}

fn world() -> DnsView {
    let mut view = DnsView {
        seed: 7,
        ..DnsView::default()
    };
    view.vpcs
        .insert("vpc-a".into(), vpc("us-east-1", "10.0.0.0/16", true, true));
    view.vpcs
        .insert("vpc-b".into(), vpc("us-east-1", "10.1.0.0/16", true, false));
    view.vpcs
        .insert("vpc-c".into(), vpc("eu-west-1", "10.2.0.0/16", true, true));
    view.vpcs.insert(
        "vpc-off".into(),
        vpc("us-east-1", "10.3.0.0/16", false, true),
    );
    view.instances = vec![
        inst("i-0aaa", "vpc-a", [10, 0, 1, 5], Some([198, 18, 0, 7])),
        inst("i-0bbb", "vpc-b", [10, 1, 1, 5], Some([198, 18, 0, 8])),
        inst("i-0ccc", "vpc-c", [10, 2, 1, 5], Some([198, 18, 0, 9])),
        inst("i-0ddd", "vpc-a", [10, 0, 1, 6], None),
    ];

    let mut public = HostedZone::new("example.lab.", false);
    let z = &mut public;
    z.add(
        "example.lab",
        RecordType::SOA,
        900,
        &["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 300"],
    )
    .expect("soa");
    z.add(
        "example.lab",
        RecordType::NS,
        172_800,
        &["ns-1.awsdns-01.org.", "ns-2.awsdns-02.net."],
    )
    .expect("ns");
    z.add("www.example.lab", RecordType::A, 300, &["198.18.0.10"])
        .expect("a");
    z.add("www.example.lab", RecordType::AAAA, 300, &["2001:db8::10"])
        .expect("aaaa");
    z.add(
        "app.example.lab",
        RecordType::CNAME,
        60,
        &["www.example.lab"],
    )
    .expect("cname");
    z.add(
        "old.example.lab",
        RecordType::CNAME,
        60,
        &["app.example.lab."],
    )
    .expect("cname");
    z.add(
        "gone.example.lab",
        RecordType::CNAME,
        60,
        &["nowhere.example.lab"],
    )
    .expect("cname");
    z.add(
        "loop1.example.lab",
        RecordType::CNAME,
        60,
        &["loop2.example.lab"],
    )
    .expect("cname");
    z.add(
        "loop2.example.lab",
        RecordType::CNAME,
        60,
        &["loop1.example.lab"],
    )
    .expect("cname");
    z.add(
        "mail.example.lab",
        RecordType::MX,
        300,
        &["10 mx1.example.lab.", "20 mx2.example.lab."],
    )
    .expect("mx");
    z.add(
        "mail.example.lab",
        RecordType::TXT,
        300,
        &["\"v=spf1 -all\""],
    )
    .expect("txt");
    z.add(
        "_xmpp._tcp.example.lab",
        RecordType::SRV,
        300,
        &["1 10 5269 xmpp.example.lab."],
    )
    .expect("srv");
    z.add(
        "example.lab",
        RecordType::CAA,
        300,
        &["0 issue \"amazon.com\""],
    )
    .expect("caa");
    z.add("a.b.c.example.lab", RecordType::A, 300, &["198.18.0.11"])
        .expect("deep");
    z.add("*.wild.example.lab", RecordType::A, 120, &["198.18.0.12"])
        .expect("wildcard");
    z.insert(
        "example.lab",
        RecordSet::alias(RecordType::A, "www.example.lab.", false),
    )
    .expect("alias");
    z.add(
        "sub.example.lab",
        RecordType::NS,
        3600,
        &["ns1.elsewhere.test."],
    )
    .expect("delegation");
    // A record set too large for 512 bytes.
    let big: Vec<String> = (0..12)
        .map(|i| format!("\"{}\"", "x".repeat(60 + i)))
        .collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    z.add("big.example.lab", RecordType::TXT, 300, &big)
        .expect("big");
    // Weighted: 70 / 20 / 10 / 0.
    for (id, w, ip) in [
        ("blue", 70, "198.18.1.1"),
        ("green", 20, "198.18.1.2"),
        ("red", 10, "198.18.1.3"),
        ("off", 0, "198.18.1.4"),
    ] {
        let set = RecordSet::simple(RecordType::A, 60, &[ip])
            .expect("a")
            .with_policy(Policy::Weighted(w), id);
        let set = if id == "red" {
            set.with_health_check("hc-red")
        } else {
            set
        };
        z.insert("weighted.example.lab", set).expect("weighted");
    }
    // Failover: primary watched by hc-primary, secondary by hc-secondary.
    z.insert(
        "failover.example.lab",
        RecordSet::simple(RecordType::A, 60, &["198.18.2.1"])
            .expect("a")
            .with_policy(Policy::Failover(FailoverRole::Primary), "primary")
            .with_health_check("hc-primary"),
    )
    .expect("primary");
    z.insert(
        "failover.example.lab",
        RecordSet::simple(RecordType::A, 60, &["198.18.2.2"])
            .expect("a")
            .with_policy(Policy::Failover(FailoverRole::Secondary), "secondary")
            .with_health_check("hc-secondary"),
    )
    .expect("secondary");
    // Multivalue: ten sets, the first two watched by failing checks.
    for i in 0..10u8 {
        let set = RecordSet::simple(RecordType::A, 60, &[&format!("198.18.3.{i}")])
            .expect("a")
            .with_policy(Policy::MultiValue, &format!("mv{i}"));
        let set = if i < 2 {
            set.with_health_check(&format!("hc-mv{i}"))
        } else {
            set
        };
        z.insert("multi.example.lab", set).expect("multi");
    }
    view.zones.insert("Z1PUBLIC".into(), public);

    let mut corp = HostedZone::private("corp.internal", &["vpc-a", "vpc-b"]);
    corp.add("db.corp.internal", RecordType::A, 300, &["10.0.2.10"])
        .expect("db");
    view.zones.insert("Z2CORP".into(), corp);

    // A private zone with the public zone's name, for vpc-c only: it shadows the public one.
    let mut shadow = HostedZone::private("example.lab", &["vpc-c"]);
    shadow
        .add("internal.example.lab", RecordType::A, 300, &["10.2.9.9"])
        .expect("internal");
    view.zones.insert("Z3SHADOW".into(), shadow);

    view.health.insert("hc-red".into(), true);
    view.health.insert("hc-primary".into(), true);
    view.health.insert("hc-secondary".into(), true);
    view.health.insert("hc-mv0".into(), false);
    view.health.insert("hc-mv1".into(), false);
    view
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn build_query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_str(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().expect("encode query")
}

fn ask_with(view: &DnsView, vantage: Vantage<'_>, bytes: &[u8], transport: Transport) -> Message {
    let out = answer(view, vantage, bytes, transport).expect("an answer");
    Message::from_vec(&out).expect("the response parses")
}

fn ask(view: &DnsView, vantage: Vantage<'_>, name: &str, qtype: RecordType) -> Message {
    ask_with(
        view,
        vantage,
        &build_query(4242, name, qtype, Some(1232)),
        Transport::UDP,
    )
}

fn ask_id(view: &DnsView, id: u16, name: &str, qtype: RecordType) -> Message {
    ask_with(
        view,
        Vantage::Internet,
        &build_query(id, name, qtype, Some(1232)),
        Transport::UDP,
    )
}

fn addrs(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn rcode(msg: &Message) -> ResponseCode {
    msg.metadata.response_code
}

fn soa_in_authority(msg: &Message) -> Option<&Record> {
    msg.authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
}

const A: RecordType = RecordType::A;

// ---------------------------------------------------------------------------
// AWS: VPC DNS attributes
// ---------------------------------------------------------------------------

/// AWS: "enableDnsSupport … If this attribute is false, the Amazon Route 53 Resolver
/// server that resolves public DNS hostnames to IP addresses is not enabled."
#[test]
fn dns_support_off_means_no_answer_at_all() {
    let view = world();
    let q = build_query(1, "www.example.lab.", A, None);
    assert_eq!(
        answer(&view, Vantage::Vpc("vpc-off"), &q, Transport::UDP),
        None
    );
    assert_eq!(
        answer(&view, Vantage::Vpc("vpc-nope"), &q, Transport::UDP),
        None
    );
    assert!(answer(&view, Vantage::Vpc("vpc-a"), &q, Transport::UDP).is_some());
}

/// AWS: "To use private hosted zones, you must set the following Amazon VPC settings to
/// true: enableDnsHostnames, enableDnsSupport"; a private zone answers only inside the VPCs
/// associated with it.
#[test]
fn private_zone_visibility_matrix() {
    let view = world();
    let db = "db.corp.internal.";
    // Associated, both attributes on: the private answer.
    let m = ask(&view, Vantage::Vpc("vpc-a"), db, A);
    assert_eq!(addrs(&m), vec![ip("10.0.2.10")]);
    // Associated but enableDnsHostnames off: the zone is not used; the public view has
    // no such name.
    let m = ask(&view, Vantage::Vpc("vpc-b"), db, A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // Not associated.
    let m = ask(&view, Vantage::Vpc("vpc-c"), db, A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // The internet never sees private zones.
    let m = ask(&view, Vantage::Internet, db, A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

/// AWS: when a private hosted zone's name matches, Resolver answers from it alone: a
/// record missing from the private zone is NXDOMAIN, even if a public zone of the same
/// name has it.
#[test]
fn private_zone_shadows_public_zone_of_the_same_name() {
    let view = world();
    let m = ask(&view, Vantage::Vpc("vpc-c"), "www.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(&view, Vantage::Vpc("vpc-c"), "internal.example.lab.", A);
    assert_eq!(addrs(&m), vec![ip("10.2.9.9")]);
    // Other VPCs and the internet see the public zone.
    let m = ask(&view, Vantage::Vpc("vpc-a"), "www.example.lab.", A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.10")]);
    let m = ask(&view, Vantage::Internet, "internal.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

// ---------------------------------------------------------------------------
// AWS: EC2 instance names
// ---------------------------------------------------------------------------

/// AWS: private DNS hostnames take the form `ip-private-ipv4-address.ec2.internal` in
/// us-east-1 and `ip-private-ipv4-address.region.compute.internal` elsewhere, and resolve
/// through the VPC's resolver.
#[test]
fn private_ec2_names_resolve_inside_their_vpc() {
    let view = world();
    let m = ask(&view, Vantage::Vpc("vpc-a"), "ip-10-0-1-5.ec2.internal.", A);
    assert_eq!(addrs(&m), vec![ip("10.0.1.5")]);
    let m = ask(
        &view,
        Vantage::Vpc("vpc-c"),
        "ip-10-2-1-5.eu-west-1.compute.internal.",
        A,
    );
    assert_eq!(addrs(&m), vec![ip("10.2.1.5")]);
    // enableDnsHostnames only governs public names: vpc-b still resolves its own.
    let m = ask(&view, Vantage::Vpc("vpc-b"), "ip-10-1-1-5.ec2.internal.", A);
    assert_eq!(addrs(&m), vec![ip("10.1.1.5")]);
    // An address with no instance in this VPC is NXDOMAIN, with the SOA.
    let m = ask(&view, Vantage::Vpc("vpc-a"), "ip-10-0-9-9.ec2.internal.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(soa_in_authority(&m).is_some());
}

#[test]
fn private_ec2_names_do_not_resolve_outside_their_vpc() {
    let view = world();
    let m = ask(&view, Vantage::Vpc("vpc-b"), "ip-10-0-1-5.ec2.internal.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(&view, Vantage::Internet, "ip-10-0-1-5.ec2.internal.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

/// AWS: resource-based names `i-0123456789abcdef0.ec2.internal` resolve to the instance's
/// private address when the subnet enables resource-name A records.
#[test]
fn resource_based_names_resolve() {
    let view = world();
    let m = ask(&view, Vantage::Vpc("vpc-a"), "i-0aaa.ec2.internal.", A);
    assert_eq!(addrs(&m), vec![ip("10.0.1.5")]);
}

/// AWS (`PrivateDnsNameOptions`): the resource-based name answers AAAA queries with the
/// instance's IPv6 address only when "Enable resource name DNS AAAA record" is on, and A
/// queries only with its A option; the IP-based name never answers AAAA.
#[test]
fn resource_based_names_answer_aaaa_only_when_enabled() {
    let mut view = world();
    let v6: std::net::Ipv6Addr = "2001:db8:1:1::10".parse().unwrap();
    for i in view.instances.iter_mut() {
        i.ipv6 = Some(v6);
        if i.instance_id == "i-0aaa" {
            i.resource_aaaa = true;
        }
        if i.instance_id == "i-0ddd" {
            (i.resource_name, i.resource_aaaa) = (false, true);
        }
    }
    let aaaa = |m: &Message| -> Vec<std::net::Ipv6Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                hickory_proto::rr::RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect()
    };
    let vpc = Vantage::Vpc("vpc-a");
    let m = ask(&view, vpc, "i-0aaa.ec2.internal.", RecordType::AAAA);
    assert_eq!(aaaa(&m), vec![v6]);
    // AAAA only: the A query has no data, the name still exists.
    let m = ask(&view, vpc, "i-0ddd.ec2.internal.", A);
    assert_eq!((rcode(&m), addrs(&m)), (ResponseCode::NoError, vec![]));
    assert_eq!(
        aaaa(&ask(&view, vpc, "i-0ddd.ec2.internal.", RecordType::AAAA)),
        vec![v6]
    );
    // The IP-based name and an instance without the option: no AAAA.
    let m = ask(&view, vpc, "ip-10-0-1-5.ec2.internal.", RecordType::AAAA);
    assert!(aaaa(&m).is_empty());
    let m = ask(
        &view,
        Vantage::Vpc("vpc-b"),
        "i-0bbb.ec2.internal.",
        RecordType::AAAA,
    );
    assert!(aaaa(&m).is_empty());
}

/// AWS (EC2 User Guide, "IPv6-only subnets"): an instance there has no IPv4 address, so
/// its resource-based name answers AAAA with its IPv6 address and A with no data (even
/// with the A option on), and no IP-based name stands for it.
#[test]
fn an_instance_without_ipv4_answers_aaaa_only() {
    let mut view = world();
    let v6: std::net::Ipv6Addr = "2001:db8:1:2::4".parse().unwrap();
    let mut only6 = inst("i-0eee", "vpc-a", [0, 0, 0, 0], None);
    (only6.private_ip, only6.ipv6, only6.resource_aaaa) = (None, Some(v6), true);
    view.instances.push(only6);
    let vpc = Vantage::Vpc("vpc-a");
    let m = ask(&view, vpc, "i-0eee.ec2.internal.", RecordType::AAAA);
    assert!(
        m.answers
            .iter()
            .any(|r| matches!(&r.data, RData::AAAA(a) if a.0 == v6)),
        "{m:?}"
    );
    let m = ask(&view, vpc, "i-0eee.ec2.internal.", A);
    assert_eq!((rcode(&m), addrs(&m)), (ResponseCode::NoError, vec![]));
    let m = ask(&view, vpc, "ip-0-0-0-0.ec2.internal.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

/// AWS: public DNS hostnames `ec2-public-ipv4-address.compute-1.amazonaws.com` exist only
/// with enableDnsHostnames; "the public DNS hostname resolves to the public IPv4 address
/// outside the network of the instance, and to the private IPv4 address within the
/// network of the instance."
#[test]
fn public_names_are_split_horizon() {
    let view = world();
    let name = "ec2-198-18-0-7.compute-1.amazonaws.com.";
    assert_eq!(
        addrs(&ask(&view, Vantage::Internet, name, A)),
        vec![ip("198.18.0.7")]
    );
    assert_eq!(
        addrs(&ask(&view, Vantage::Vpc("vpc-a"), name, A)),
        vec![ip("10.0.1.5")]
    );
    assert_eq!(
        addrs(&ask(&view, Vantage::Vpc("vpc-b"), name, A)),
        vec![ip("198.18.0.7")]
    );
    let eu = "ec2-198-18-0-9.eu-west-1.compute.amazonaws.com.";
    assert_eq!(
        addrs(&ask(&view, Vantage::Internet, eu, A)),
        vec![ip("198.18.0.9")]
    );
    assert_eq!(
        addrs(&ask(&view, Vantage::Vpc("vpc-c"), eu, A)),
        vec![ip("10.2.1.5")]
    );
}

#[test]
fn public_names_need_enable_dns_hostnames() {
    let view = world();
    let m = ask(
        &view,
        Vantage::Internet,
        "ec2-198-18-0-8.compute-1.amazonaws.com.",
        A,
    );
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // The right address in the wrong region's domain does not exist either.
    let m = ask(
        &view,
        Vantage::Internet,
        "ec2-198-18-0-7.eu-west-1.compute.amazonaws.com.",
        A,
    );
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

/// RFC 1035 §3.5 (IN-ADDR.ARPA) and AWS: reverse lookups of an instance's private address
/// inside its VPC give the private name; of its public address, the public name.
#[test]
fn reverse_lookups_name_the_instance() {
    let view = world();
    let m = ask(
        &view,
        Vantage::Vpc("vpc-a"),
        "5.1.0.10.in-addr.arpa.",
        RecordType::PTR,
    );
    let ptr: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ptr, vec!["ip-10-0-1-5.ec2.internal."]);
    let m = ask(
        &view,
        Vantage::Internet,
        "7.0.18.198.in-addr.arpa.",
        RecordType::PTR,
    );
    let ptr: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ptr, vec!["ec2-198-18-0-7.compute-1.amazonaws.com."]);
    // Unknown addresses inside the VPC, and private addresses from outside: NXDOMAIN.
    let m = ask(
        &view,
        Vantage::Vpc("vpc-a"),
        "9.9.0.10.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = ask(
        &view,
        Vantage::Internet,
        "5.1.0.10.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
}

// ---------------------------------------------------------------------------
// RFC 1034/2308: existence, negative answers, TTLs
// ---------------------------------------------------------------------------

/// RFC 2308 §2.1: a name that does not exist is NXDOMAIN with the zone's SOA in the
/// authority section; §3: the SOA's TTL there is min(SOA TTL, SOA MINIMUM).
#[test]
fn nxdomain_carries_the_soa_with_the_negative_ttl() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "nope.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    let soa = soa_in_authority(&m).expect("SOA in authority");
    assert_eq!(soa.name, Name::from_str("example.lab.").expect("name"));
    assert_eq!(soa.ttl, 300, "min(900, MINIMUM 300)");
}

/// RFC 2308 §2.2: a name that exists without the asked type is NOERROR with no answer
/// (NODATA) and the SOA in the authority section.
#[test]
fn nodata_is_noerror_with_the_soa() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "mail.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(soa_in_authority(&m).is_some());
}

/// RFC 8020: an empty non-terminal (`b.c.example.lab` above `a.b.c.example.lab`) exists,
/// so it is NODATA, not NXDOMAIN.
#[test]
fn empty_non_terminals_are_nodata() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "c.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(soa_in_authority(&m).is_some());
}

#[test]
fn record_ttls_are_the_configured_ones() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "www.example.lab.", A);
    assert_eq!(m.answers[0].ttl, 300);
    let m = ask(
        &view,
        Vantage::Internet,
        "ec2-198-18-0-7.compute-1.amazonaws.com.",
        A,
    );
    assert_eq!(m.answers[0].ttl, 60);
}

/// A name in no zone of the world and not one of the simulated internet's own
/// (well-known sites, AWS endpoints) does not exist: nobody registered it.
#[test]
fn names_in_no_zone_are_nxdomain() {
    let view = world();
    let m = ask(
        &view,
        Vantage::Internet,
        "www.nobody-registered-this.com.",
        A,
    );
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(soa_in_authority(&m).is_some());
    assert!(!m.metadata.authoritative);
}

// ---------------------------------------------------------------------------
// Record types
// ---------------------------------------------------------------------------

#[test]
fn every_route53_record_type_is_served() {
    let view = world();
    let cases = [
        ("www.example.lab.", RecordType::AAAA, "2001:db8::10"),
        ("mail.example.lab.", RecordType::MX, "10 mx1.example.lab."),
        ("mail.example.lab.", RecordType::TXT, "v=spf1 -all"),
        (
            "_xmpp._tcp.example.lab.",
            RecordType::SRV,
            "1 10 5269 xmpp.example.lab.",
        ),
        ("example.lab.", RecordType::CAA, "amazon.com"),
        ("example.lab.", RecordType::NS, "ns-1.awsdns-01.org."),
        ("example.lab.", RecordType::SOA, "ns-1.awsdns-01.org."),
        ("app.example.lab.", RecordType::CNAME, "www.example.lab"),
    ];
    for (name, t, expect) in cases {
        let m = ask(&view, Vantage::Internet, name, t);
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name} {t}");
        let texts: Vec<String> = m
            .answers
            .iter()
            .filter(|r| r.record_type() == t)
            .map(|r| r.data.to_string())
            .collect();
        assert!(
            texts.iter().any(|s| s.contains(expect)),
            "{name} {t}: {texts:?} lacks {expect}"
        );
    }
}

/// Route 53: an alias record answers with the target's values and the target's TTL, under
/// the alias's own name (here at the zone apex, where a CNAME is not allowed).
#[test]
fn alias_at_the_apex_answers_with_the_target_records() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "example.lab.", A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.10")]);
    assert_eq!(
        m.answers[0].name,
        Name::from_str("example.lab.").expect("name")
    );
    assert_eq!(m.answers[0].ttl, 300);
}

/// RFC 4592: a wildcard answers names below its parent that do not exist, under the name
/// asked for; it does not answer the parent itself.
#[test]
fn wildcards_synthesise_answers_for_missing_names() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "anything.wild.example.lab.", A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.12")]);
    assert_eq!(
        m.answers[0].name,
        Name::from_str("anything.wild.example.lab.").expect("name")
    );
    let m = ask(&view, Vantage::Internet, "wild.example.lab.", A);
    assert!(m.answers.is_empty());
    assert_eq!(rcode(&m), ResponseCode::NoError);
}

/// RFC 1034 §4.3.2 (3b): below a zone cut (an NS set below the apex) the answer is a
/// referral: the NS set in the authority section, no AA.
#[test]
fn delegated_subdomains_get_a_referral() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "host.sub.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(!m.metadata.authoritative);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS)
    );
}

// ---------------------------------------------------------------------------
// RFC 1034 §3.6.2 and RFC 6604: CNAME
// ---------------------------------------------------------------------------

/// RFC 1034 §3.6.2: the resolver follows a CNAME and returns the chain and the records of
/// the canonical name.
#[test]
fn cname_chains_are_followed() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "old.example.lab.", A);
    let types: Vec<RecordType> = m.answers.iter().map(Record::record_type).collect();
    assert_eq!(
        types,
        vec![RecordType::CNAME, RecordType::CNAME, RecordType::A]
    );
    assert_eq!(addrs(&m), vec![ip("198.18.0.10")]);
}

/// A query for the CNAME type itself is answered with the CNAME, not chased.
#[test]
fn a_cname_query_is_not_chased() {
    let view = world();
    let m = ask(
        &view,
        Vantage::Internet,
        "app.example.lab.",
        RecordType::CNAME,
    );
    assert_eq!(m.answers.len(), 1);
}

/// RFC 6604 §3: when the chain ends at a name that does not exist, the RCODE is NXDOMAIN
/// and the CNAME stays in the answer.
#[test]
fn a_dangling_cname_is_nxdomain_with_the_cname() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "gone.example.lab.", A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
}

#[test]
fn cname_loops_terminate() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "loop1.example.lab.", A);
    assert_eq!(m.answers.len(), 2);
}

/// Inside a VPC, a private-zone CNAME to a public name is chased into the public view,
/// as the Route 53 Resolver (a recursive resolver) does.
#[test]
fn the_vpc_resolver_chases_cnames_across_zones() {
    let mut view = world();
    let corp = view.zones.get_mut("Z2CORP").expect("corp zone");
    corp.add(
        "web.corp.internal",
        RecordType::CNAME,
        60,
        &["www.example.lab"],
    )
    .expect("cname");
    let m = ask(&view, Vantage::Vpc("vpc-a"), "web.corp.internal.", A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.10")]);
}

// ---------------------------------------------------------------------------
// RFC 4343: case
// ---------------------------------------------------------------------------

/// RFC 4343 §3: names match case-insensitively, and the question's case is preserved in
/// the response.
#[test]
fn matching_ignores_case_and_echoes_the_question() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "WwW.ExAmPle.LaB.", A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.10")]);
    let asked = Name::from_str("WwW.ExAmPle.LaB.").expect("name");
    assert!(m.queries[0].name().eq_case(&asked));
    assert!(m.answers[0].name.eq_case(&asked));
    let m = ask(&view, Vantage::Vpc("vpc-a"), "IP-10-0-1-5.EC2.Internal.", A);
    assert_eq!(addrs(&m), vec![ip("10.0.1.5")]);
}

// ---------------------------------------------------------------------------
// Header flags
// ---------------------------------------------------------------------------

#[test]
fn the_internet_endpoint_is_authoritative_and_the_vpc_resolver_is_recursive() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "www.example.lab.", A);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_available);
    assert_eq!(m.metadata.id, 4242);
    assert!(
        m.metadata.recursion_desired,
        "RD is copied (RFC 1035 §4.1.1)"
    );
    let m = ask(&view, Vantage::Vpc("vpc-a"), "www.example.lab.", A);
    assert!(!m.metadata.authoritative);
    assert!(m.metadata.recursion_available);
}

// ---------------------------------------------------------------------------
// RFC 6891 (EDNS) and RFC 1035 §4.2.1 / RFC 2181 §9 (truncation)
// ---------------------------------------------------------------------------

/// RFC 6891 §6.1.1: an OPT in the request gets an OPT in the response; none, none.
#[test]
fn opt_is_answered_with_opt() {
    let view = world();
    let m = ask(&view, Vantage::Internet, "www.example.lab.", A);
    assert!(m.edns.is_some());
    let plain = build_query(9, "www.example.lab.", A, None);
    let m = ask_with(&view, Vantage::Internet, &plain, Transport::UDP);
    assert!(m.edns.is_none());
}

/// RFC 6891 §6.1.3: a request with an EDNS version we do not implement gets BADVERS.
#[test]
fn unknown_edns_version_is_badvers() {
    let view = world();
    let mut msg = Message::new(5, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(
        Name::from_str("www.example.lab.").expect("n"),
        A,
    ));
    let mut e = Edns::new();
    e.set_version(1);
    msg.set_edns(e);
    let m = ask_with(
        &view,
        Vantage::Internet,
        &msg.to_vec().expect("encode"),
        Transport::UDP,
    );
    // BADVERS is 16, split between the header (low bits) and the OPT record (high bits);
    // hickory names the value BADSIG when decoding, as both share it.
    assert_eq!((rcode(&m).high(), rcode(&m).low()), (1, 0));
    assert!(m.edns.is_some(), "BADVERS needs the OPT record to carry it");
}

/// RFC 1035 §4.2.1: without EDNS a UDP response is at most 512 bytes; a larger answer is
/// replaced by a response with TC set (RFC 2181 §9), and the client retries over TCP.
#[test]
fn oversized_udp_answers_are_truncated() {
    let view = world();
    let plain = build_query(10, "big.example.lab.", RecordType::TXT, None);
    let raw = answer(&view, Vantage::Internet, &plain, Transport::UDP).expect("answer");
    assert!(raw.len() <= 512);
    let m = Message::from_vec(&raw).expect("parse");
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1, "the question is kept");
    // Over TCP the whole set comes back.
    let m = ask_with(&view, Vantage::Internet, &plain, Transport::Tcp);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 12);
}

/// RFC 6891 §6.2.5: with EDNS the limit is the requestor's payload size (not below 512),
/// capped by the server's own.
#[test]
fn edns_buffer_size_decides_truncation() {
    let view = world();
    let large = build_query(11, "big.example.lab.", RecordType::TXT, Some(4096));
    let m = ask_with(&view, Vantage::Internet, &large, Transport::UDP);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 12);
    // Our advertised size caps the client's.
    let raw = answer(
        &view,
        Vantage::Internet,
        &large,
        Transport::Udp { max_payload: 600 },
    )
    .expect("answer");
    assert!(raw.len() <= 600);
    assert!(Message::from_vec(&raw).expect("parse").metadata.truncation);
    // A client asking for less than 512 still gets 512.
    let tiny = build_query(12, "www.example.lab.", A, Some(100));
    let m = ask_with(&view, Vantage::Internet, &tiny, Transport::UDP);
    assert!(!m.metadata.truncation);
}

// ---------------------------------------------------------------------------
// RFC 1035 §4.1.1: malformed and unsupported requests
// ---------------------------------------------------------------------------

#[test]
fn garbage_after_a_header_is_formerr() {
    let view = world();
    let mut bytes = build_query(0xBEEF, "www.example.lab.", A, None);
    bytes.truncate(20);
    let m = ask_with(&view, Vantage::Internet, &bytes, Transport::UDP);
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 0xBEEF);
    assert_eq!(m.metadata.message_type, MessageType::Response);
}

#[test]
fn shorter_than_a_header_or_a_response_gets_nothing() {
    let view = world();
    assert_eq!(
        answer(&view, Vantage::Internet, &[1, 2, 3], Transport::UDP),
        None
    );
    let mut response = build_query(1, "www.example.lab.", A, None);
    response[2] |= 0x80;
    assert_eq!(
        answer(&view, Vantage::Internet, &response, Transport::UDP),
        None
    );
}

#[test]
fn no_question_is_formerr() {
    let view = world();
    let msg = Message::new(3, MessageType::Query, OpCode::Query);
    let m = ask_with(
        &view,
        Vantage::Internet,
        &msg.to_vec().expect("encode"),
        Transport::UDP,
    );
    assert_eq!(rcode(&m), ResponseCode::FormErr);
}

#[test]
fn other_opcodes_are_notimp_and_zone_transfers_refused() {
    let view = world();
    let mut msg = Message::new(3, MessageType::Query, OpCode::Status);
    msg.add_query(Query::query(Name::from_str("example.lab.").expect("n"), A));
    let m = ask_with(
        &view,
        Vantage::Internet,
        &msg.to_vec().expect("encode"),
        Transport::UDP,
    );
    assert_eq!(rcode(&m), ResponseCode::NotImp);
    let axfr = build_query(4, "example.lab.", RecordType::AXFR, None);
    let m = ask_with(&view, Vantage::Internet, &axfr, Transport::Tcp);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    let mut chaos = Message::new(5, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_str("version.bind.").expect("n"), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let m = ask_with(
        &view,
        Vantage::Internet,
        &chaos.to_vec().expect("encode"),
        Transport::UDP,
    );
    assert_eq!(rcode(&m), ResponseCode::Refused);
}

// ---------------------------------------------------------------------------
// Route 53 routing policies
// ---------------------------------------------------------------------------

/// Route 53 weighted routing: each record is returned in proportion weight / total; a
/// weight of 0 is never returned while a record with a weight is healthy.
#[test]
fn weighted_answers_follow_the_weights() {
    let view = world();
    let mut counts = std::collections::BTreeMap::new();
    for id in 0..2000u16 {
        let m = ask_id(&view, id, "weighted.example.lab.", A);
        let a = addrs(&m);
        assert_eq!(a.len(), 1, "one weighted record per answer");
        *counts.entry(a[0]).or_insert(0u32) += 1;
    }
    let blue = counts.get(&ip("198.18.1.1")).copied().unwrap_or(0);
    let green = counts.get(&ip("198.18.1.2")).copied().unwrap_or(0);
    let red = counts.get(&ip("198.18.1.3")).copied().unwrap_or(0);
    assert_eq!(
        counts.get(&ip("198.18.1.4")),
        None,
        "weight 0 never answers"
    );
    assert!((1250..1550).contains(&blue), "blue 70%: {blue}");
    assert!((300..500).contains(&green), "green 20%: {green}");
    assert!((120..280).contains(&red), "red 10%: {red}");
}

/// Deterministic per world: the same seed and query id give the same record; another
/// seed gives another sequence.
#[test]
fn weighted_choice_is_deterministic_per_world_seed() {
    let view = world();
    let seq = |v: &DnsView| -> Vec<Vec<Ipv4Addr>> {
        (0..50u16)
            .map(|id| addrs(&ask_id(v, id, "weighted.example.lab.", A)))
            .collect()
    };
    assert_eq!(seq(&view), seq(&view.clone()));
    let mut other = view.clone();
    other.seed = 8;
    assert_ne!(seq(&view), seq(&other));
}

/// Route 53: an unhealthy weighted record is left out.
#[test]
fn unhealthy_weighted_records_are_skipped() {
    let mut view = world();
    view.health.insert("hc-red".into(), false);
    for id in 0..300u16 {
        let a = addrs(&ask_id(&view, id, "weighted.example.lab.", A));
        assert_ne!(a, vec![ip("198.18.1.3")]);
    }
}

/// Route 53 failover: the primary while its health check passes, then the secondary;
/// when both fail, Route 53 answers with the primary.
#[test]
fn failover_follows_the_health_checks() {
    let mut view = world();
    let q = |v: &DnsView| addrs(&ask(v, Vantage::Internet, "failover.example.lab.", A));
    assert_eq!(q(&view), vec![ip("198.18.2.1")]);
    view.health.insert("hc-primary".into(), false);
    assert_eq!(q(&view), vec![ip("198.18.2.2")]);
    view.health.insert("hc-secondary".into(), false);
    assert_eq!(q(&view), vec![ip("198.18.2.1")]);
}

/// Route 53 multivalue answer: up to eight healthy records per response.
#[test]
fn multivalue_returns_up_to_eight_healthy_records() {
    let view = world();
    for id in 0..20u16 {
        let a = addrs(&ask_id(&view, id, "multi.example.lab.", A));
        assert_eq!(a.len(), 8);
        assert!(!a.contains(&ip("198.18.3.0")), "unhealthy mv0 left out");
        assert!(!a.contains(&ip("198.18.3.1")), "unhealthy mv1 left out");
    }
    // When every record is unhealthy, Route 53 still answers with up to eight of them.
    let mut down = view.clone();
    let mut sick = HostedZone::new("sick.lab", false);
    for i in 0..3u8 {
        sick.insert(
            "m.sick.lab",
            RecordSet::simple(RecordType::A, 60, &[&format!("198.18.4.{i}")])
                .expect("a")
                .with_policy(Policy::MultiValue, &format!("s{i}"))
                .with_health_check("hc-mv0"),
        )
        .expect("sick");
    }
    down.zones.insert("Z9SICK".into(), sick);
    let a = addrs(&ask(&down, Vantage::Internet, "m.sick.lab.", A));
    assert_eq!(a.len(), 3);
}

/// Route 53: an alias with EvaluateTargetHealth is unhealthy when its target is; failover
/// then moves to the secondary.
#[test]
fn alias_evaluate_target_health_drives_failover() {
    let mut view = world();
    // The alias target is itself health-checked (a weighted set with a check).
    let mut target = HostedZone::new("ha.lab", false);
    target
        .insert(
            "origin.ha.lab",
            RecordSet::simple(RecordType::A, 60, &["198.18.6.1"])
                .expect("a")
                .with_policy(Policy::Weighted(1), "only")
                .with_health_check("hc-origin"),
        )
        .expect("origin");
    target
        .insert(
            "www.ha.lab",
            RecordSet::alias(RecordType::A, "origin.ha.lab", true)
                .with_policy(Policy::Failover(FailoverRole::Primary), "p"),
        )
        .expect("primary alias");
    target
        .insert(
            "www.ha.lab",
            RecordSet::simple(RecordType::A, 60, &["198.18.6.2"])
                .expect("a")
                .with_policy(Policy::Failover(FailoverRole::Secondary), "s"),
        )
        .expect("secondary");
    view.zones.insert("Z8HA".into(), target);
    view.health.insert("hc-origin".into(), true);
    assert_eq!(
        addrs(&ask(&view, Vantage::Internet, "www.ha.lab.", A)),
        vec![ip("198.18.6.1")]
    );
    view.health.insert("hc-origin".into(), false);
    assert_eq!(
        addrs(&ask(&view, Vantage::Internet, "www.ha.lab.", A)),
        vec![ip("198.18.6.2")]
    );
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

mod robustness {
    use super::*;
    use proptest::prelude::*;

    static WORLD: std::sync::LazyLock<DnsView> = std::sync::LazyLock::new(world);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// Never a panic, whatever the bytes; and any answer is a well-formed response.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let view = &*WORLD;
            for vantage in [Vantage::Internet, Vantage::Vpc("vpc-a")] {
                if let Some(out) = answer(view, vantage, &bytes, Transport::UDP) {
                    prop_assert!(out.len() >= 12);
                    prop_assert!(out.len() <= 1232);
                    prop_assert_eq!(&out[..2], &bytes[..2]);
                    prop_assert!(out[2] & 0x80 != 0, "QR set");
                }
            }
        }

        /// Valid queries with random bytes flipped: still never a panic.
        #[test]
        fn mutated_queries_never_panic(
            pick in 0usize..6,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let names = [
                "www.example.lab.", "db.corp.internal.", "ip-10-0-1-5.ec2.internal.",
                "7.0.18.198.in-addr.arpa.", "weighted.example.lab.", "old.example.lab.",
            ];
            let mut bytes = build_query(77, names[pick], RecordType::A, Some(1232));
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] ^= v;
            }
            let view = &*WORLD;
            let _ = answer(view, Vantage::Vpc("vpc-a"), &bytes, Transport::Tcp);
            let _ = answer(view, Vantage::Internet, &bytes, Transport::UDP);
        }

        /// Random names and types from any vantage: a response, never a panic.
        #[test]
        fn random_names_get_an_answer(
            labels in proptest::collection::vec("[a-z0-9][a-z0-9-]{0,10}[a-z0-9]|[a-z0-9]|[*]", 1..5),
            qtype in any::<u16>(),
            vantage in 0usize..4,
        ) {
            let view = &*WORLD;
            let name = format!("{}.example.lab.", labels.join("."));
            let q = build_query(1, &name, RecordType::from(qtype), None);
            let vantage = [Vantage::Internet, Vantage::Vpc("vpc-a"), Vantage::Vpc("vpc-b"),
                Vantage::Vpc("vpc-c")][vantage];
            prop_assert!(answer(view, vantage, &q, Transport::UDP).is_some());
        }
    }
}

/// Issue 19: the simulated internet's own names. Well-known sites and AWS service
/// endpoints resolve to their stable addresses from inside a VPC and from the internet;
/// an unregistered name is NXDOMAIN; a learner's public hosted zone keeps its names.
#[test]
fn issue19_well_known_names_and_aws_endpoints_resolve_and_unknown_names_do_not() {
    let mut view = world();
    for vantage in [Vantage::Vpc("vpc-a"), Vantage::Internet] {
        let m = ask(&view, vantage, "example.com.", RecordType::A);
        assert_eq!(addrs(&m), vec![ip("198.51.100.129")]);
        let m = ask(&view, vantage, "WWW.Google.com.", RecordType::A);
        assert_eq!(addrs(&m), vec![ip("198.51.100.133")]);
        let m = ask(
            &view,
            vantage,
            "ec2.us-east-1.amazonaws.com.",
            RecordType::A,
        );
        assert_eq!(addrs(&m), vec![ip("198.51.100.1")]);
        let m = ask(
            &view,
            vantage,
            "my-bucket.s3.eu-west-1.amazonaws.com.",
            RecordType::A,
        );
        assert_eq!(addrs(&m), vec![ip("198.51.100.2")]);
        let m = ask(&view, vantage, "checkip.amazonaws.com.", RecordType::A);
        assert_eq!(addrs(&m), vec![ip("192.0.2.10")]);
        let m = ask(&view, vantage, "no-such-site.example.", RecordType::A);
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
        let m = ask(
            &view,
            vantage,
            "ec2.moon-east-1.amazonaws.com.",
            RecordType::A,
        );
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
        // A well-known site answers AAAA at its mirror in 3fff:198:51:100::/64, which
        // the catch-all host serves.
        let m = ask(&view, vantage, "example.com.", RecordType::AAAA);
        assert_eq!(rcode(&m), ResponseCode::NoError);
        let v6: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(v6, vec!["3fff:198:51:100::129".to_string()]);
        // IPv4 only (GitHub, AWS's endpoint names): the name exists, without AAAA data.
        for name in ["github.com.", "ec2.us-east-1.amazonaws.com."] {
            let m = ask(&view, vantage, name, RecordType::AAAA);
            assert_eq!(rcode(&m), ResponseCode::NoError, "{name}");
            assert!(m.answers.is_empty(), "{name}");
        }
    }
    // The learner's own public zone for a name outside AWS's domains answers for it.
    let mut zone = HostedZone::new("example.com.", false);
    zone.add("example.com", RecordType::A, 60, &["198.18.0.42"])
        .expect("a");
    view.zones.insert("Z9MINE".into(), zone);
    let m = ask(&view, Vantage::Internet, "example.com.", RecordType::A);
    assert_eq!(addrs(&m), vec![ip("198.18.0.42")]);
}

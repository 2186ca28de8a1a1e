//! Ready-made topologies for tests: "a VPC with a public and a private
//! subnet, an internet gateway and a NAT gateway", the picture of most labs.
//!
//! ```text
//! vpc-fixture 10.0.0.0/16, igw-fixture attached
//!   subnet-public  10.0.1.0/24  rtb-public:  local, 0.0.0.0/0 -> igw-fixture
//!     eni-web   10.0.1.10  public 198.18.0.10  sg-web (in: tcp 22, 80 from 0.0.0.0/0; icmp from 0.0.0.0/0)
//!     eni-web2  10.0.1.11  public 198.18.0.11  sg-web
//!     eni-nat   10.0.1.100 (nat-fixture, EIP 198.18.0.100)
//!   subnet-private 10.0.2.0/24  rtb-private: local, 0.0.0.0/0 -> nat-fixture
//!     eni-app   10.0.2.20  no public IP        sg-app (in: tcp 8080 from sg-web; all from sg-app)
//!   acl-default (allow all both ways) on both subnets
//! ```
//!
//! Every group allows all outbound, as a new AWS group does. Tests derive
//! variants with [`crate::Topology::to_builder`].

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::port::ResId;
use crate::topology::{
    EniOwner, IcmpMatch, InternetGateway, NatGateway, NetworkAcl, NetworkInterface, Protocol,
    Route, RouteTable, RouteTarget, SecurityGroup, SgPeer, SgRule, Subnet, Topology,
    TopologyBuilder, Vpc, rid,
};

/// The ids and addresses of [`public_private_vpc`].
#[derive(Clone, Debug)]
pub struct FixtureIds {
    pub vpc: ResId,
    pub igw: ResId,
    pub nat: ResId,
    pub public_subnet: ResId,
    pub private_subnet: ResId,
    pub public_rtb: ResId,
    pub private_rtb: ResId,
    pub acl: ResId,
    pub web_sg: ResId,
    pub app_sg: ResId,
    pub web_eni: ResId,
    pub web2_eni: ResId,
    pub app_eni: ResId,
    pub nat_eni: ResId,
    pub web_ip: Ipv4Addr,
    pub web_public: Ipv4Addr,
    pub web2_ip: Ipv4Addr,
    pub web2_public: Ipv4Addr,
    pub app_ip: Ipv4Addr,
    pub nat_ip: Ipv4Addr,
    pub nat_public: Ipv4Addr,
    /// The VPC resolver (base + 2).
    pub resolver: Ipv4Addr,
    /// The learner's address on the internet.
    pub learner: Ipv4Addr,
    /// An internet server (TEST-NET-1).
    pub internet_host: Ipv4Addr,
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("fixture CIDRs are valid")
}

/// The fixture as a builder, to derive variants from.
pub fn public_private_vpc_builder() -> (TopologyBuilder, FixtureIds) {
    let ids = FixtureIds {
        vpc: rid("vpc-fixture"),
        igw: rid("igw-fixture"),
        nat: rid("nat-fixture"),
        public_subnet: rid("subnet-public"),
        private_subnet: rid("subnet-private"),
        public_rtb: rid("rtb-public"),
        private_rtb: rid("rtb-private"),
        acl: rid("acl-default"),
        web_sg: rid("sg-web"),
        app_sg: rid("sg-app"),
        web_eni: rid("eni-web"),
        web2_eni: rid("eni-web2"),
        app_eni: rid("eni-app"),
        nat_eni: rid("eni-nat"),
        web_ip: Ipv4Addr::new(10, 0, 1, 10),
        web_public: Ipv4Addr::new(198, 18, 0, 10),
        web2_ip: Ipv4Addr::new(10, 0, 1, 11),
        web2_public: Ipv4Addr::new(198, 18, 0, 11),
        app_ip: Ipv4Addr::new(10, 0, 2, 20),
        nat_ip: Ipv4Addr::new(10, 0, 1, 100),
        nat_public: Ipv4Addr::new(198, 18, 0, 100),
        resolver: Ipv4Addr::new(10, 0, 0, 2),
        learner: Ipv4Addr::new(203, 0, 113, 10),
        internet_host: Ipv4Addr::new(192, 0, 2, 80),
    };
    let mut b = TopologyBuilder::new();
    b.add_vpc(Vpc::new(&ids.vpc, net("10.0.0.0/16")));
    b.add_internet_gateway(InternetGateway {
        id: ids.igw.clone(),
        vpc: Some(ids.vpc.clone()),
    });
    b.add_network_acl(NetworkAcl::default_allow(&ids.acl, &ids.vpc));
    let local = Route::new(net("10.0.0.0/16"), RouteTarget::Local);
    b.add_route_table(RouteTable {
        id: ids.public_rtb.clone(),
        vpc: ids.vpc.clone(),
        routes: vec![
            local.clone(),
            Route::new(
                net("0.0.0.0/0"),
                RouteTarget::InternetGateway(ids.igw.clone()),
            ),
        ],
    });
    b.add_route_table(RouteTable {
        id: ids.private_rtb.clone(),
        vpc: ids.vpc.clone(),
        routes: vec![
            local,
            Route::new(net("0.0.0.0/0"), RouteTarget::NatGateway(ids.nat.clone())),
        ],
    });
    b.add_subnet(Subnet::new(
        &ids.public_subnet,
        &ids.vpc,
        net("10.0.1.0/24"),
        &ids.public_rtb,
        &ids.acl,
    ));
    b.add_subnet(Subnet::new(
        &ids.private_subnet,
        &ids.vpc,
        net("10.0.2.0/24"),
        &ids.private_rtb,
        &ids.acl,
    ));
    let anywhere = SgPeer::Cidr(net("0.0.0.0/0"));
    let mut web = SecurityGroup::new(&ids.web_sg, &ids.vpc);
    web.ingress = vec![
        SgRule::tcp(22, anywhere.clone()),
        SgRule::tcp(80, anywhere.clone()),
        SgRule {
            id: None,
            protocol: Protocol::Icmp,
            ports: None,
            icmp: Some(IcmpMatch::ANY),
            peer: anywhere,
        },
    ];
    let mut app = SecurityGroup::new(&ids.app_sg, &ids.vpc);
    app.ingress = vec![
        SgRule::tcp(8080, SgPeer::Group(ids.web_sg.clone())),
        SgRule::all(SgPeer::Group(ids.app_sg.clone())),
    ];
    b.add_security_group(web);
    b.add_security_group(app);
    let mut web_eni =
        NetworkInterface::new(&ids.web_eni, &ids.public_subnet, ids.web_ip, &[&ids.web_sg]);
    web_eni.public_ip = Some(ids.web_public);
    web_eni.owner = EniOwner::Instance(rid("i-web"));
    let mut web2 = NetworkInterface::new(
        &ids.web2_eni,
        &ids.public_subnet,
        ids.web2_ip,
        &[&ids.web_sg],
    );
    web2.public_ip = Some(ids.web2_public);
    web2.owner = EniOwner::Instance(rid("i-web2"));
    let mut app_eni = NetworkInterface::new(
        &ids.app_eni,
        &ids.private_subnet,
        ids.app_ip,
        &[&ids.app_sg],
    );
    app_eni.owner = EniOwner::Instance(rid("i-app"));
    let mut nat_eni = NetworkInterface::new(&ids.nat_eni, &ids.public_subnet, ids.nat_ip, &[]);
    nat_eni.public_ip = Some(ids.nat_public);
    nat_eni.source_dest_check = false;
    nat_eni.owner = EniOwner::NatGateway(ids.nat.clone());
    b.add_network_interface(web_eni);
    b.add_network_interface(web2);
    b.add_network_interface(app_eni);
    b.add_network_interface(nat_eni);
    b.add_nat_gateway(NatGateway {
        id: ids.nat.clone(),
        subnet: ids.public_subnet.clone(),
        eni: ids.nat_eni.clone(),
        private_ip: ids.nat_ip,
        public_ip: ids.nat_public,
    });
    (b, ids)
}

/// A VPC with a public and a private subnet, an internet gateway and a NAT gateway.
pub fn public_private_vpc() -> (Topology, FixtureIds) {
    let (b, ids) = public_private_vpc_builder();
    (b.build().expect("the fixture topology is consistent"), ids)
}

/// The ids and addresses of [`default_vpc`].
#[derive(Clone, Debug)]
pub struct DefaultVpcIds {
    pub vpc: ResId,
    pub igw: ResId,
    pub main_rtb: ResId,
    pub acl: ResId,
    pub default_sg: ResId,
    /// One default subnet per zone: 172.31.0.0/20 (a), 172.31.16.0/20 (b).
    pub subnets: Vec<ResId>,
    /// An instance in the first default subnet, with an auto-assigned public IP.
    pub eni: ResId,
    pub ip: Ipv4Addr,
    pub public_ip: Ipv4Addr,
    pub learner: Ipv4Addr,
}

/// The default VPC of a new AWS account: 172.31.0.0/16, a default subnet per
/// zone, an internet gateway, a main route table sending 0.0.0.0/0 to it, the
/// default network ACL (allow all) and the default security group (inbound
/// from its own members, all outbound), plus one instance in it.
pub fn default_vpc() -> (Topology, DefaultVpcIds) {
    let ids = DefaultVpcIds {
        vpc: rid("vpc-default"),
        igw: rid("igw-default"),
        main_rtb: rid("rtb-main"),
        acl: rid("acl-default"),
        default_sg: rid("sg-default"),
        subnets: vec![rid("subnet-default-a"), rid("subnet-default-b")],
        eni: rid("eni-default"),
        ip: Ipv4Addr::new(172, 31, 5, 10),
        public_ip: Ipv4Addr::new(198, 18, 1, 10),
        learner: Ipv4Addr::new(203, 0, 113, 10),
    };
    let mut b = TopologyBuilder::new();
    b.add_vpc(Vpc::new(&ids.vpc, net("172.31.0.0/16")));
    b.add_internet_gateway(InternetGateway {
        id: ids.igw.clone(),
        vpc: Some(ids.vpc.clone()),
    });
    b.add_network_acl(NetworkAcl::default_allow(&ids.acl, &ids.vpc));
    b.add_route_table(RouteTable {
        id: ids.main_rtb.clone(),
        vpc: ids.vpc.clone(),
        routes: vec![
            Route::new(net("172.31.0.0/16"), RouteTarget::Local),
            Route::new(
                net("0.0.0.0/0"),
                RouteTarget::InternetGateway(ids.igw.clone()),
            ),
        ],
    });
    for (i, (id, zone)) in ids
        .subnets
        .iter()
        .zip(["us-east-1a", "us-east-1b"])
        .enumerate()
    {
        let cidr = Ipv4Net::new(Ipv4Addr::new(172, 31, 16 * i as u8, 0), 20).expect("valid /20");
        let mut s = Subnet::new(id, &ids.vpc, cidr, &ids.main_rtb, &ids.acl);
        s.zone = rid(zone);
        b.add_subnet(s);
    }
    let mut sg = SecurityGroup::new(&ids.default_sg, &ids.vpc);
    sg.ingress = vec![SgRule::all(SgPeer::Group(ids.default_sg.clone()))];
    b.add_security_group(sg);
    let mut eni = NetworkInterface::new(&ids.eni, &ids.subnets[0], ids.ip, &[&ids.default_sg]);
    eni.public_ip = Some(ids.public_ip);
    eni.owner = EniOwner::Instance(rid("i-default"));
    b.add_network_interface(eni);
    (
        b.build().expect("the default VPC topology is consistent"),
        ids,
    )
}

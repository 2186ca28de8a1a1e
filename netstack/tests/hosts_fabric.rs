//! Host stacks through the real fabric, on the fixture "a VPC with a public
//! and a private subnet, an internet gateway and a NAT gateway"
//! (`vpclab_netstack::fixture`). Virtual time throughout.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab_netstack::fixture::{self, FixtureIds};
use vpclab_netstack::host::{Host, HostConfig, Net};
use vpclab_netstack::internet::{self, Learner};
use vpclab_netstack::{Fabric, NaclEntry, NetworkAcl, Port, RuleAction};

struct World {
    net: Net,
    ids: FixtureIds,
    web: Host,
    app: Host,
    learner: Learner,
    _whatismyip: Host,
}

fn vpc_host(net: &Net, eni: &str, ip: Ipv4Addr) -> Host {
    net.add_host(HostConfig::vpc(
        Port::Eni(eni.into()),
        Ipv4Net::new(ip, 24).unwrap(),
    ))
    .unwrap()
}

fn world() -> World {
    let (topology, ids) = fixture::public_private_vpc();
    let net = Net::new(Fabric::new(Arc::new(topology)));
    let web = vpc_host(&net, &ids.web_eni, ids.web_ip);
    let app = vpc_host(&net, &ids.app_eni, ids.app_ip);
    let learner = Learner::attach(&net).unwrap();
    let whatismyip = internet_service(&net, internet::WHATISMYIP_ADDR, |peer| {
        format!("{}\n", peer.ip()).into_bytes()
    });
    World {
        net,
        ids,
        web,
        app,
        learner,
        _whatismyip: whatismyip,
    }
}

/// A service on the internet at `addr`, port 80, that sends `reply(peer)` on each
/// connection and closes it: enough to see what an internet or NAT gateway did to a
/// flow, without an application protocol (netstack speaks none).
fn internet_service(
    net: &Net,
    addr: Ipv4Addr,
    reply: impl Fn(std::net::SocketAddr) -> Vec<u8> + Send + Sync + 'static,
) -> Host {
    let host = net.add_host(HostConfig::internet(addr)).unwrap();
    let listener = host.listen(80).unwrap();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = listener.accept().await {
            let bytes = reply(peer);
            tokio::spawn(async move {
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
            });
        }
    });
    host
}

/// Connects from `from` to port 80 of `addr` and reads until the service closes.
async fn fetch(from: &Host, addr: Ipv4Addr) -> Vec<u8> {
    let mut s = from.connect(SocketAddrV4::new(addr, 80)).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test(start_paused = true)]
async fn tcp_handshake_and_data_between_subnets_through_security_groups() {
    let w = world();
    // sg-app allows tcp 8080 from sg-web.
    let listener = w.app.listen(8080).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
        (peer, buf.len())
    });
    let mut c = w
        .web
        .connect(SocketAddrV4::new(w.ids.app_ip, 8080))
        .await
        .unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(&mut c);
    let (sent, back) = tokio::join!(
        async {
            wr.write_all(&data).await.unwrap();
            wr.shutdown().await.unwrap();
        },
        async {
            let mut back = Vec::new();
            rd.read_to_end(&mut back).await.unwrap();
            back
        }
    );
    let () = sent;
    assert!(back == data);
    let (peer, n) = server.await.unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(w.ids.web_ip));
    assert_eq!(n, data.len());
}

#[tokio::test(start_paused = true)]
async fn security_group_drop_makes_connect_time_out() {
    let w = world();
    // sg-app has no rule for port 22 from sg-web: the SYN is silently dropped.
    let _listener = w.app.listen(22).unwrap();
    let started = tokio::time::Instant::now();
    let err = w
        .web
        .connect_timeout(SocketAddrV4::new(w.ids.app_ip, 22), Duration::from_secs(15))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn closed_port_behind_an_open_security_group_answers_with_reset() {
    let w = world();
    // sg-app allows 8080 from sg-web, but nothing listens there.
    let err = w
        .web
        .connect(SocketAddrV4::new(w.ids.app_ip, 8080))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn nacl_blocking_replies_stalls_the_connection() {
    let w = world();
    let listener = w.app.listen(8080).unwrap();
    let mut c = w
        .web
        .connect(SocketAddrV4::new(w.ids.app_ip, 8080))
        .await
        .unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    // A new ACL on the private subnet: inbound all allowed, outbound only
    // to the internet — the replies to the public subnet's ephemeral ports
    // are denied by the final `*` rule (network ACLs are stateless).
    let topology = w
        .net
        .with_forwarder(|f: &mut Fabric| f.topology().clone())
        .unwrap();
    let mut b = topology.to_builder();
    let acl = "acl-private";
    b.add_network_acl(NetworkAcl {
        id: acl.into(),
        vpc: w.ids.vpc.clone(),
        entries: vec![
            NaclEntry::all(100, false, "0.0.0.0/0".parse().unwrap(), RuleAction::Allow),
            NaclEntry::all(100, true, "10.0.1.0/24".parse().unwrap(), RuleAction::Deny),
            NaclEntry::all(200, true, "0.0.0.0/0".parse().unwrap(), RuleAction::Allow),
        ],
    });
    b.subnets
        .get_mut(&w.ids.private_subnet)
        .unwrap()
        .network_acl = acl.into();
    let blocked = Arc::new(b.build().unwrap());
    w.net
        .with_forwarder(|f: &mut Fabric| f.set_topology(blocked))
        .unwrap();
    c.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).await.unwrap();
    s.write_all(b"pong").await.unwrap();
    let stalled = tokio::time::timeout(Duration::from_secs(20), c.read_exact(&mut got)).await;
    assert!(stalled.is_err(), "the reply crossed an ACL that denies it");
    // Fix the ACL: the retransmitted reply arrives.
    w.net
        .with_forwarder(|f: &mut Fabric| f.set_topology(topology))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), c.read_exact(&mut got))
        .await
        .expect("retransmission after the ACL is fixed")
        .unwrap();
    assert_eq!(&got, b"pong");
}

#[tokio::test(start_paused = true)]
async fn private_instance_reaches_the_internet_through_the_nat_gateway() {
    let w = world();
    let seen = fetch(&w.app, internet::WHATISMYIP_ADDR).await;
    // "What is my IP" sees the NAT gateway's Elastic IP, not 10.0.2.20.
    assert_eq!(seen, format!("{}\n", w.ids.nat_public).into_bytes());
    // A public instance is seen with its own public IP (internet gateway).
    let seen = fetch(&w.web, internet::WHATISMYIP_ADDR).await;
    assert_eq!(seen, format!("{}\n", w.ids.web_public).into_bytes());
}

#[tokio::test(start_paused = true)]
async fn package_download_through_nat_crosses_mtu_1500() {
    let w = world();
    let rpm: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 255) as u8).collect();
    let served = rpm.clone();
    let _mirror = internet_service(&w.net, internet::MIRROR_ADDR, move |_| served.clone());
    let got = fetch(&w.app, internet::MIRROR_ADDR).await;
    assert!(got == rpm);
}

#[tokio::test(start_paused = true)]
async fn internet_host_cannot_open_a_connection_to_the_private_instance() {
    let w = world();
    let _listener = w.app.listen(8080).unwrap();
    let learner = w.learner.host();
    // Neither the private address (not routable from the internet) …
    let err = learner
        .connect_timeout(
            SocketAddrV4::new(w.ids.app_ip, 8080),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // … nor the NAT gateway's public address (it only answers connections
    // opened from inside) leads to it.
    let err = learner
        .connect_timeout(
            SocketAddrV4::new(w.ids.nat_public, 8080),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn learner_reaches_a_public_instance_by_its_public_ip() {
    let w = world();
    let listener = w.web.listen(22).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        s.write_all(b"SSH-2.0-vpclab\r\n").await.unwrap();
        peer
    });
    let (mut outside, inside) = tokio::io::duplex(1024);
    let dst = SocketAddrV4::new(w.ids.web_public, 22);
    let learner = w.learner;
    let splice = tokio::spawn(async move { learner.connect(dst, inside).await });
    let mut banner = [0u8; 16];
    outside.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-vpclab\r\n");
    // The instance sees the learner's own address (the IGW translates only
    // the instance side).
    assert_eq!(
        server.await.unwrap().ip(),
        std::net::IpAddr::V4(internet::LEARNER_ADDR)
    );
    drop(outside);
    splice.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn ping_follows_security_group_icmp_rules() {
    let w = world();
    let learner = w.learner.host().clone();
    // sg-web allows ICMP from anywhere.
    learner
        .ping(w.ids.web_public, Duration::from_secs(2))
        .await
        .unwrap();
    // sg-app allows nothing from sg-web but 8080: the echo request is dropped.
    let err = w
        .web
        .ping(w.ids.app_ip, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // The app can ping the web server (sg-web allows ICMP from anywhere).
    w.app
        .ping(w.ids.web_ip, Duration::from_secs(2))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn hundred_simultaneous_connects_through_the_fabric_all_succeed() {
    let w = world();
    let listener = w.app.listen(8080).unwrap();
    let server = tokio::spawn(async move {
        let mut peers = Vec::new();
        for _ in 0..100 {
            let (mut s, peer) = listener.accept().await.unwrap();
            s.write_all(b"hi").await.unwrap();
            peers.push((s, peer));
        }
        peers
    });
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let web = w.web.clone();
            let dst = SocketAddrV4::new(w.ids.app_ip, 8080);
            tokio::spawn(async move {
                let mut c = web.connect(dst).await?;
                let mut buf = [0u8; 2];
                c.read_exact(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            })
        })
        .collect();
    for c in clients {
        assert_eq!(&c.await.unwrap().unwrap(), b"hi");
    }
    let peers = server.await.unwrap();
    // 100 distinct ephemeral source ports, one connection each.
    let ports: std::collections::BTreeSet<u16> = peers.iter().map(|(_, p)| p.port()).collect();
    assert_eq!(ports.len(), 100);
}

#[tokio::test(start_paused = true)]
async fn resolver_answers_from_the_address_it_was_asked() {
    let w = world();
    let resolver = w
        .net
        .add_host(HostConfig::service(
            Port::Resolver(w.ids.vpc.clone()),
            vec![
                Ipv4Net::new(w.ids.resolver, 16).unwrap(),
                "169.254.169.253/32".parse().unwrap(),
            ],
        ))
        .unwrap();
    let server = resolver.bind_udp(53).unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let (n, from, to) = server.recv_from_to(&mut buf).await.unwrap();
            let answer = [&buf[..n], b" from ", to.to_string().as_bytes()].concat();
            server.send_from(&answer, to, from).await.unwrap();
        }
    });
    let client = w.app.bind_udp(0).unwrap();
    for dst in [w.ids.resolver, Ipv4Addr::new(169, 254, 169, 253)] {
        client
            .send_to(b"q", SocketAddrV4::new(dst, 53))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, SocketAddrV4::new(dst, 53));
        assert_eq!(&buf[..n], format!("q from {dst}").as_bytes());
    }
}

#[tokio::test(start_paused = true)]
async fn driver_lets_the_fabric_reclaim_finished_connections() {
    let w = world();
    let listener = w.app.listen(8080).unwrap();
    for _ in 0..5 {
        let mut c = w
            .web
            .connect(SocketAddrV4::new(w.ids.app_ip, 8080))
            .await
            .unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        c.shutdown().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.shutdown().await.unwrap();
        c.read_to_end(&mut buf).await.unwrap();
    }
    let tracked = || {
        w.net
            .with_forwarder(|f: &mut Fabric| f.stats().tracked_connections)
            .unwrap()
    };
    assert!(tracked() >= 5);
    // An hour later, the next packet's run gives the fabric its housekeeping.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    w.web
        .ping(
            std::net::Ipv4Addr::from(w.ids.app_ip.octets()),
            Duration::from_secs(1),
        )
        .await
        .ok();
    assert!(tracked() <= 1, "still tracked: {}", tracked());
}

/// The fabric, noting the largest packet that crossed to or from the
/// internet and the largest inside the VPC.
struct Measuring {
    fabric: Fabric,
    largest_internet: usize,
    largest_vpc: usize,
}

impl vpclab_netstack::host::Forwarder for Measuring {
    fn forward(
        &mut self,
        now: smoltcp::time::Instant,
        ingress: &Port,
        packet: &mut Vec<u8>,
    ) -> Option<Port> {
        let to = self.fabric.process(now, ingress, packet).outcome;
        match to {
            vpclab_netstack::Outcome::Deliver(port) => {
                if port == Port::Internet || *ingress == Port::Internet {
                    self.largest_internet = self.largest_internet.max(packet.len());
                } else {
                    self.largest_vpc = self.largest_vpc.max(packet.len());
                }
                Some(port)
            }
            vpclab_netstack::Outcome::Drop(_) => None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn jumbo_frames_inside_the_vpc_1500_bytes_across_the_internet_gateway() {
    let (topology, ids) = fixture::public_private_vpc();
    let net = Net::new(Measuring {
        fabric: Fabric::new(Arc::new(topology)),
        largest_internet: 0,
        largest_vpc: 0,
    });
    let web = vpc_host(&net, &ids.web_eni, ids.web_ip);
    let app = vpc_host(&net, &ids.app_eni, ids.app_ip);
    let blob = vec![7u8; 200_000];
    let served = blob.clone();
    let _mirror = internet_service(&net, internet::MIRROR_ADDR, move |_| served.clone());
    // Internet -> public instance (download) and back.
    let got = fetch(&web, internet::MIRROR_ADDR).await;
    assert_eq!(got, blob);
    // Instance -> instance inside the VPC.
    let listener = app.listen(8080).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        buf.len()
    });
    let mut c = web
        .connect(SocketAddrV4::new(ids.app_ip, 8080))
        .await
        .unwrap();
    c.write_all(&blob).await.unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap(), blob.len());
    let (internet_max, vpc_max) = net
        .with_forwarder(|m: &mut Measuring| (m.largest_internet, m.largest_vpc))
        .unwrap();
    assert_eq!(
        internet_max, 1500,
        "TCP MSS keeps internet packets at 1500 bytes"
    );
    assert_eq!(vpc_max, 9001, "jumbo frames between instances");
}

//! Learner access over a plain address router: a byte stream spliced into the world
//! from the learner's address (the cases through the real fabric are in
//! `hosts_fabric.rs`; the internet's web services are vpclab's, tested there).

use std::net::SocketAddrV4;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab_netstack::Port;
use vpclab_netstack::host::{AddressForwarder, HostConfig, Net};
use vpclab_netstack::internet::{self, Learner};

fn world() -> (Net, Learner) {
    let fwd = AddressForwarder::new()
        .route("10.0.1.0/24".parse().unwrap(), Port::Eni("eni-a".into()))
        .route("192.0.2.0/24".parse().unwrap(), Port::Internet)
        .route("203.0.113.0/24".parse().unwrap(), Port::Internet);
    let net = Net::new(fwd);
    let learner = Learner::attach(&net).unwrap();
    (net, learner)
}

#[tokio::test(start_paused = true)]
async fn learner_connect_splices_a_byte_stream_into_the_world() {
    let (net, learner) = world();
    let a = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-a".into()),
            "10.0.1.10/24".parse().unwrap(),
        ))
        .unwrap();
    let listener = a.listen(22).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        // The instance sees the learner's internet address.
        assert_eq!(peer.ip(), std::net::IpAddr::V4(internet::LEARNER_ADDR));
        s.write_all(b"SSH-2.0-vpclab\r\n").await.unwrap();
        let mut line = Vec::new();
        s.read_to_end(&mut line).await.unwrap();
        line
    });
    let (mut outside, inside) = tokio::io::duplex(4096);
    let splice = tokio::spawn(async move {
        learner
            .connect(SocketAddrV4::new("10.0.1.10".parse().unwrap(), 22), inside)
            .await
    });
    let mut banner = [0u8; 16];
    outside.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-vpclab\r\n");
    outside.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
    outside.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap(), b"SSH-2.0-OpenSSH_9.6\r\n");
    let (sent, received) = splice.await.unwrap().unwrap();
    assert_eq!((sent, received), (21, 16));
}

/// A world whose instance sends everything off-link to the internet, with the
/// catch-all internet host attached.
fn catch_all_world() -> (
    Net,
    vpclab_netstack::host::Host,
    vpclab_netstack::host::Host,
) {
    let fwd = AddressForwarder::new()
        .route("10.0.1.0/24".parse().unwrap(), Port::Eni("eni-a".into()))
        .route("0.0.0.0/0".parse().unwrap(), Port::Internet);
    let net = Net::new(fwd);
    let a = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-a".into()),
            "10.0.1.10/24".parse().unwrap(),
        ))
        .unwrap();
    let any = net.add_host(HostConfig::catch_all()).unwrap();
    (net, a, any)
}

#[tokio::test(start_paused = true)]
async fn any_public_address_answers_ping_after_the_internet_delay_with_its_ttl() {
    let (_net, a, _any) = catch_all_world();
    for dst in ["8.8.8.8", "1.1.1.1", "93.184.215.14"] {
        let (rtt, ttl) = a
            .ping_ttl(
                dst.parse::<std::net::Ipv4Addr>().unwrap(),
                std::time::Duration::from_secs(2),
            )
            .await
            .unwrap_or_else(|e| panic!("ping {dst}: {e}"));
        assert!(
            rtt >= internet::INTERNET_DELAY && rtt < internet::INTERNET_DELAY * 3,
            "{dst}: {rtt:?}"
        );
        assert_eq!(ttl, Some(internet::INTERNET_TTL), "{dst}");
    }
}

#[tokio::test(start_paused = true)]
async fn special_purpose_addresses_are_nobodys_on_the_internet() {
    let (net, a, _any) = catch_all_world();
    for dst in [
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",
        "192.0.2.77",
        "203.0.113.99",
    ] {
        let r = a
            .ping(
                dst.parse::<std::net::Ipv4Addr>().unwrap(),
                std::time::Duration::from_secs(1),
            )
            .await;
        assert_eq!(
            r.unwrap_err().kind(),
            std::io::ErrorKind::TimedOut,
            "{dst} must not answer"
        );
    }
    assert!(net.stats().unattached >= 5);
    // vpclab's blocks for endpoints and well-known names are served.
    a.ping(
        "198.51.100.10".parse::<std::net::Ipv4Addr>().unwrap(),
        std::time::Duration::from_secs(1),
    )
    .await
    .expect("the endpoint block answers");
}

#[tokio::test(start_paused = true)]
async fn the_catch_all_host_accepts_tcp_for_any_address_and_resets_other_ports() {
    let (_net, a, any) = catch_all_world();
    let listener = any.listen(80).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        // It answers from the address the client asked for.
        let local = s.local_addr();
        s.write_all(format!("{local} {peer}").as_bytes())
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    let mut c = a
        .connect(SocketAddrV4::new("142.250.1.1".parse().unwrap(), 80))
        .await
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("142.250.1.1:80 10.0.1.10:"), "{text}");
    server.await.unwrap();
    let refused = a
        .connect(SocketAddrV4::new("142.250.1.1".parse().unwrap(), 8080))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn a_host_with_the_address_wins_over_the_catch_all_and_only_one_catch_all_exists() {
    let (net, a, _any) = catch_all_world();
    let other = net
        .add_host(HostConfig::internet("8.8.8.8".parse().unwrap()))
        .unwrap();
    let listener = other.listen(53).unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
    a.connect(SocketAddrV4::new("8.8.8.8".parse().unwrap(), 53))
        .await
        .expect("the exact host answers");
    accept.await.unwrap().unwrap();
    assert!(matches!(
        net.add_host(HostConfig::catch_all()),
        Err(vpclab_netstack::host::NetError::CatchAllInUse)
    ));
}

/// On the real clock: every round trip to the internet takes at least its delay, and
/// not much more (prints the figures; bounded: 20 pings on an in-process fabric).
#[tokio::test]
async fn internet_round_trips_on_the_real_clock_are_the_delay_plus_little() {
    let (_net, a, _any) = catch_all_world();
    let mut rtts = Vec::new();
    for _ in 0..20 {
        let rtt = a
            .ping(
                "8.8.8.8".parse::<std::net::Ipv4Addr>().unwrap(),
                std::time::Duration::from_secs(2),
            )
            .await
            .expect("ping");
        assert!(rtt >= internet::INTERNET_DELAY, "{rtt:?}");
        rtts.push(rtt);
    }
    rtts.sort();
    println!(
        "ping 8.8.8.8 x20: min {:?} median {:?} max {:?}",
        rtts[0], rtts[10], rtts[19]
    );
    assert!(rtts[10] < internet::INTERNET_DELAY * 5, "{rtts:?}");
}

//! Host stacks over a plain address router (no VPC rules): TCP, UDP and ICMP
//! behave as a learner expects from real hosts, in virtual time.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab_netstack::Port;
use vpclab_netstack::host::{AddressForwarder, Host, HostConfig, Net};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 20);

fn two_hosts() -> (Net, Host, Host) {
    let fwd = AddressForwarder::new()
        .route("10.0.1.0/24".parse().unwrap(), Port::Eni("eni-a".into()))
        .route("10.0.2.0/24".parse().unwrap(), Port::Eni("eni-b".into()));
    let net = Net::new(fwd);
    let a = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-a".into()),
            "10.0.1.10/24".parse().unwrap(),
        ))
        .unwrap();
    let b = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-b".into()),
            "10.0.2.20/24".parse().unwrap(),
        ))
        .unwrap();
    (net, a, b)
}

#[tokio::test(start_paused = true)]
async fn tcp_handshake_and_data_cross_the_forwarder() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(7).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(A));
        let mut buf = vec![0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut c = a.connect(SocketAddrV4::new(B, 7)).await.unwrap();
    assert_eq!(c.local_addr().ip(), std::net::IpAddr::V4(A));
    c.write_all(b"hello").await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello");
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bulk_transfer_arrives_intact() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(9).unwrap();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let expect = data.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    });
    let mut c = a.connect(SocketAddrV4::new(B, 9)).await.unwrap();
    c.write_all(&data).await.unwrap();
    c.shutdown().await.unwrap();
    let got = server.await.unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect);
}

#[tokio::test(start_paused = true)]
async fn closed_port_answers_with_reset() {
    let (_net, a, _b) = two_hosts();
    let started = tokio::time::Instant::now();
    let err = a.connect(SocketAddrV4::new(B, 81)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // A reset comes back within one round trip, not after a timeout.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn dropped_syn_makes_connect_time_out() {
    let (net, a, b) = two_hosts();
    let _listener = b.listen(22).unwrap();
    net.with_forwarder(|f: &mut AddressForwarder| {
        // Like a security group without an inbound rule for port 22.
        f.set_filter(|ingress, _| *ingress != Port::Eni("eni-a".into()))
    })
    .unwrap();
    let started = tokio::time::Instant::now();
    let err = a
        .connect_timeout(SocketAddrV4::new(B, 22), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_secs(20));
    // Once the rule allows it, the same connect succeeds.
    net.with_forwarder(|f: &mut AddressForwarder| f.clear_filter())
        .unwrap();
    a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn blocked_replies_stall_an_open_connection() {
    let (net, a, b) = two_hosts();
    let listener = b.listen(80).unwrap();
    let mut c = a.connect(SocketAddrV4::new(B, 80)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let block = Arc::new(AtomicBool::new(false));
    let flag = block.clone();
    net.with_forwarder(move |f: &mut AddressForwarder| {
        f.set_filter(move |ingress, _| {
            !(flag.load(Ordering::SeqCst) && *ingress == Port::Eni("eni-b".into()))
        })
    })
    .unwrap();
    block.store(true, Ordering::SeqCst);
    // The request gets through; the answer does not.
    c.write_all(b"GET /").await.unwrap();
    let mut req = [0u8; 5];
    s.read_exact(&mut req).await.unwrap();
    s.write_all(b"200 OK").await.unwrap();
    let mut buf = [0u8; 6];
    let stalled = tokio::time::timeout(Duration::from_secs(30), c.read_exact(&mut buf)).await;
    assert!(
        stalled.is_err(),
        "a reply crossed a forwarder that drops replies"
    );
    // Unblocked, the retransmission delivers it.
    block.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(120), c.read_exact(&mut buf))
        .await
        .expect("retransmission after unblocking")
        .unwrap();
    assert_eq!(&buf, b"200 OK");
}

#[tokio::test(start_paused = true)]
async fn hundred_simultaneous_connects_to_one_listener_all_succeed() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    let server = tokio::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..100 {
            let (s, _) = listener.accept().await.unwrap();
            streams.push(s);
        }
        for mut s in streams {
            s.write_all(b"ok").await.unwrap();
        }
    });
    let mut clients = Vec::new();
    for _ in 0..100 {
        let a = a.clone();
        clients.push(tokio::spawn(async move {
            let mut c = a.connect(SocketAddrV4::new(B, 22)).await?;
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        }));
    }
    let mut ok = 0;
    for c in clients {
        assert_eq!(&c.await.unwrap().unwrap(), b"ok");
        ok += 1;
    }
    assert_eq!(ok, 100);
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn udp_datagrams_carry_source_and_destination() {
    let (_net, a, b) = two_hosts();
    let server = b.bind_udp(53).unwrap();
    let client = a.bind_udp(0).unwrap();
    client
        .send_to(b"query", SocketAddrV4::new(B, 53))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from, to) = server.recv_from_to(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"query");
    assert_eq!(*from.ip(), A);
    assert_eq!(from.port(), client.local_port());
    assert_eq!(to, B);
    server.send_from(b"answer", to, from).await.unwrap();
    let (n, from) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"answer");
    assert_eq!(from, SocketAddrV4::new(B, 53));
}

#[tokio::test(start_paused = true)]
async fn ping_measures_round_trip_and_times_out_when_dropped() {
    let (net, a, _b) = two_hosts();
    let rtt = a.ping(B, Duration::from_secs(1)).await.unwrap();
    assert!(rtt < Duration::from_millis(1));
    net.with_forwarder(|f: &mut AddressForwarder| f.set_filter(|_, p| p[9] != 1))
        .unwrap();
    let err = a.ping(B, Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // No route at all: also no answer.
    let err = a
        .ping(Ipv4Addr::new(10, 9, 9, 9), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn idle_world_sends_nothing() {
    let (net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    let _c = a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
    let _s = listener.accept().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = net.stats();
    // Ten idle minutes: no keep-alive configured, so not a single packet,
    // and the driver never wakes up (no periodic tick, no busy polling).
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(net.stats(), before);
    assert_eq!(net.stats().driver_runs, before.driver_runs);
}

#[tokio::test(start_paused = true)]
async fn closed_connections_are_reaped() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    for _ in 0..50 {
        let mut c = a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        c.shutdown().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        drop(s);
        drop(c);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    // 50 connections later, no socket is left: an idle listener holds none.
    assert!(
        a.socket_count() == 0,
        "client sockets left: {}",
        a.socket_count()
    );
    assert!(
        b.socket_count() <= 2,
        "server sockets left: {}",
        b.socket_count()
    );
}

#[tokio::test(start_paused = true)]
async fn removed_host_fails_pending_reads() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    let mut c = a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
    let _s = listener.accept().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 1];
        c.read(&mut buf).await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    a.remove();
    let r = reader.await.unwrap();
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn reset_by_peer_is_an_error_not_end_of_stream() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    let mut c = a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
    let (s, _) = listener.accept().await.unwrap();
    s.abort();
    let mut buf = [0u8; 8];
    let err = c.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let err = c.write_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test(start_paused = true)]
async fn half_open_handshake_is_given_up_and_the_world_goes_quiet() {
    let (net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    // The SYN-ACKs never come back (a NACL without the ephemeral range).
    net.with_forwarder(|f: &mut AddressForwarder| {
        f.set_filter(|ingress, _| *ingress != Port::Eni("eni-b".into()))
    })
    .unwrap();
    let err = a
        .connect_timeout(SocketAddrV4::new(B, 22), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // The server gives up its half-open connection after about a minute and
    // stops retransmitting: the world falls idle, nothing is left to accept.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let before = net.stats();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(net.stats(), before);
    assert_eq!(b.socket_count(), 0);
    drop(listener);
}

#[tokio::test(start_paused = true)]
async fn accepted_connection_may_stay_idle_for_hours() {
    let (_net, a, b) = two_hosts();
    let listener = b.listen(22).unwrap();
    let mut c = a.connect(SocketAddrV4::new(B, 22)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    s.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still here");
}

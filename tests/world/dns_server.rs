//! The host-side public endpoint, judged by the real `dig` (Debian `bind9-dnsutils`):
//! what a learner types on their own machine. Each test starts the endpoint on a
//! loopback port of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use ipnet::Ipv4Net;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use vpclab::dns::{
    DnsView, HostedZone, InstanceDns, RecordSet, SharedView, TcpLimits, VpcDns, serve_public_dns,
    serve_public_dns_with,
};

fn world() -> DnsView {
    let mut view = DnsView::default();
    let mut vpc = VpcDns::new("us-east-1", Ipv4Net::from_str("10.0.0.0/16").expect("cidr"));
    vpc.enable_dns_hostnames = true;
    view.vpcs.insert("vpc-a".into(), vpc);
    view.instances.push(InstanceDns {
        instance_id: "i-0aaa".into(),
        vpc_id: "vpc-a".into(),
        private_ip: Some(Ipv4Addr::new(10, 0, 1, 5)),
        public_ip: Some(Ipv4Addr::new(198, 18, 0, 7)),
        resource_name: false,
        ipv6: None,
        resource_aaaa: false,
    });
    let mut zone = HostedZone::new("example.lab", false);
    zone.add(
        "example.lab",
        RecordType::SOA,
        900,
        &["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"],
    )
    .expect("soa");
    zone.add(
        "example.lab",
        RecordType::NS,
        172_800,
        &["ns-1.awsdns-01.org."],
    )
    .expect("ns");
    zone.add("www.example.lab", RecordType::A, 300, &["198.18.0.10"])
        .expect("www");
    zone.add(
        "mail.example.lab",
        RecordType::MX,
        300,
        &["10 mx.example.lab."],
    )
    .expect("mx");
    let big: Vec<String> = (0..12)
        .map(|i| format!("\"{}\"", "y".repeat(70 + i)))
        .collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    zone.add("big.example.lab", RecordType::TXT, 300, &big)
        .expect("big");
    view.zones.insert("Z1".into(), zone);
    let mut private = HostedZone::private("example.lab", &["vpc-a"]);
    private
        .add("secret.example.lab", RecordType::A, 300, &["10.0.9.9"])
        .expect("secret");
    view.zones.insert("Z2".into(), private);
    view
}

struct Endpoint {
    port: u16,
    view: SharedView,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), vpclab::dns::ServeError>>,
}

/// Binds TCP and UDP on the same loopback port (dig falls back to TCP on the port it
/// used for UDP) and starts the endpoint.
async fn start() -> Endpoint {
    let (udp, tcp) = bind_pair().await;
    let port = udp.local_addr().expect("addr").port();
    let view: SharedView = Arc::new(RwLock::new(world()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_public_dns(udp, tcp, view.clone(), async {
        let _ = stopped.await;
    }));
    Endpoint {
        port,
        view,
        stop: Some(stop),
        task,
    }
}

async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// `dig` is installed; outside CI a missing one skips the test.
fn have_dig() -> bool {
    crate::support::have("dig")
}

/// Runs `dig @127.0.0.1 -p PORT <args>` and returns its output.
async fn dig(port: u16, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+time=2", "+tries=1"])
        .args(args)
        .output()
        .await
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_resolves_a_public_record() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let out = dig(ep.port, &["www.example.lab"]).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("198.18.0.10"), "{out}");
    // Route 53's name servers are authoritative for the zone.
    assert!(out.contains("flags: qr aa rd ra"), "{out}");
    let short = dig(ep.port, &["+short", "mail.example.lab", "MX"]).await;
    assert_eq!(short.trim(), "10 mx.example.lab.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_nxdomain_and_nodata_with_the_soa() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let out = dig(ep.port, &["nope.example.lab"]).await;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
    assert!(out.contains("SOA"), "{out}");
    let out = dig(ep.port, &["www.example.lab", "AAAA"]).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("ANSWER: 0"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
}

/// The endpoint answers as the internet: private zones are invisible, and instance public
/// names resolve to the public address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_the_internet_view() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let out = dig(ep.port, &["secret.example.lab"]).await;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let short = dig(
        ep.port,
        &["+short", "ec2-198-18-0-7.compute-1.amazonaws.com"],
    )
    .await;
    assert_eq!(short.trim(), "198.18.0.7");
    let short = dig(ep.port, &["+short", "-x", "198.18.0.7"]).await;
    assert_eq!(short.trim(), "ec2-198-18-0-7.compute-1.amazonaws.com.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_over_tcp() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let out = dig(ep.port, &["+tcp", "www.example.lab"]).await;
    assert!(out.contains("198.18.0.10"), "{out}");
    assert!(out.contains("(TCP)"), "{out}");
}

/// RFC 1035 §4.2.1 / RFC 6891: an answer larger than the client's buffer comes back with
/// TC set; dig then retries over TCP by itself and gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_falls_back_to_tcp_on_truncation() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let out = dig(
        ep.port,
        &["+ignore", "+bufsize=512", "big.example.lab", "TXT"],
    )
    .await;
    assert!(out.contains(" tc "), "TC flag expected: {out}");
    let out = dig(ep.port, &["+ignore", "+noedns", "big.example.lab", "TXT"]).await;
    assert!(out.contains(" tc "), "TC flag expected without EDNS: {out}");
    let out = dig(ep.port, &["+bufsize=512", "big.example.lab", "TXT"]).await;
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 12"), "{out}");
    // A buffer large enough needs no retry.
    let out = dig(ep.port, &["+bufsize=4096", "big.example.lab", "TXT"]).await;
    assert!(!out.contains("Truncated"), "{out}");
    assert!(out.contains("ANSWER: 12"), "{out}");
}

/// "A ChangeResourceRecordSets is visible on the next query": replacing the view is
/// enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_view_is_visible_on_the_next_query() {
    if !have_dig() {
        return;
    }
    let ep = start().await;
    let short = dig(ep.port, &["+short", "new.example.lab"]).await;
    assert_eq!(short.trim(), "");
    {
        let mut view = ep.view.write().expect("lock");
        let zone = view.zones.get_mut("Z1").expect("zone");
        zone.insert(
            "new.example.lab",
            RecordSet::simple(RecordType::A, 60, &["198.18.0.99"]).expect("a"),
        )
        .expect("insert");
    }
    let short = dig(ep.port, &["+short", "new.example.lab"]).await;
    assert_eq!(short.trim(), "198.18.0.99");
}

/// Malformed queries get FORMERR (when they carry a header) or nothing, and the endpoint
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_formerr_and_the_endpoint_survives() {
    let ep = start().await;
    let server = SocketAddr::from(([127, 0, 0, 1], ep.port));
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    // A header announcing one question, then noise.
    let mut garbage = vec![0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 7]);
    sock.send_to(&garbage, server).await.expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("a FORMERR reply")
        .expect("recv");
    let reply = Message::from_vec(&buf[..n]).expect("parse reply");
    assert_eq!(reply.metadata.id, 0xABCD);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // Too short for a header: no reply, but no harm either.
    sock.send_to(&[1, 2, 3], server).await.expect("send");
    // A well-formed query still works afterwards.
    let mut q = Message::new(7, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_str("www.example.lab.").expect("name"),
        RecordType::A,
    ));
    sock.send_to(&q.to_vec().expect("encode"), server)
        .await
        .expect("send");
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .expect("recv");
    let reply = Message::from_vec(&buf[..n]).expect("parse reply");
    assert_eq!(reply.metadata.id, 7);
    assert_eq!(reply.answers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_endpoint() {
    let mut ep = start().await;
    ep.stop.take().expect("sender").send(()).expect("send stop");
    let result = tokio::time::timeout(Duration::from_secs(5), ep.task)
        .await
        .expect("stops in time")
        .expect("task joined");
    assert!(result.is_ok(), "{result:?}");
}

/// One query over TCP (RFC 1035 §4.2.2 framing); the answer, or None when the server
/// closed the connection instead.
async fn tcp_query(stream: &mut tokio::net::TcpStream, name: &str) -> Option<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(
        Name::from_str(name).expect("name"),
        RecordType::A,
    ));
    let bytes = query.to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.ok()?;
    let len = stream.read_u16().await.ok()?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.ok()?;
    Message::from_vec(&buf).ok()
}

/// Whether the server has closed `stream` (EOF or reset within two seconds).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Issue 10: DNS over TCP is bounded: connections over the limit are closed at once,
/// idle ones are closed after the idle time, and the endpoint keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_tcp_connections_are_bounded_and_idle_ones_closed() {
    let (udp, tcp) = bind_pair().await;
    let port = udp.local_addr().expect("addr").port();
    let view: SharedView = Arc::new(RwLock::new(world()));
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = TcpLimits {
        max_connections: 3,
        idle: Duration::from_millis(400),
    };
    let task = tokio::spawn(serve_public_dns_with(udp, tcp, view, limits, async {
        let _ = stopped.await;
    }));
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", port));

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect().await.expect("connect");
        let answer = tcp_query(&mut c, "www.example.lab.")
            .await
            .expect("answered");
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        held.push(c);
    }
    let mut extra = connect().await.expect("the kernel accepts");
    assert!(
        closed_by_server(&mut extra).await,
        "a fourth connection is closed at once"
    );
    // Held connections stay quiet: each is closed after the idle time.
    for c in &mut held {
        assert!(closed_by_server(c).await, "idle connection closed");
    }
    let mut again = connect().await.expect("connect");
    let answer = tcp_query(&mut again, "www.example.lab.")
        .await
        .expect("slots are free again");
    assert_eq!(answer.answers.len(), 1);

    // A client that sends half a query and stalls is closed too.
    {
        use tokio::io::AsyncWriteExt;
        let mut slow = connect().await.expect("connect");
        slow.write_all(&[0, 40, 1, 2]).await.expect("partial");
        assert!(closed_by_server(&mut slow).await, "stalled query closed");
    }
    let _ = stop.send(());
    task.await.expect("join").expect("clean stop");
}

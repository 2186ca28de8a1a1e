//! The simulated internet's web services over a plain address router (the NAT cases
//! through the real fabric are in `tests/world/internet.rs`). Moved here from netstack's
//! `hosts_internet.rs` when the services left netstack.

use std::net::SocketAddrV4;

use vpclab_netstack::Port;
use vpclab_netstack::host::{AddressForwarder, HostConfig, Net};
use vpclab_netstack::internet::{self as addrs};

use super::Internet;
use crate::http1;

fn world() -> (Net, Internet) {
    let fwd = AddressForwarder::new()
        .route(
            "10.0.1.0/24".parse().expect("cidr"),
            Port::Eni("eni-a".into()),
        )
        .route("0.0.0.0/0".parse().expect("cidr"), Port::Internet);
    let net = Net::new(fwd);
    let inet = Internet::start(&net, config(None)).expect("internet");
    (net, inet)
}

fn config(api_door: Option<super::ApiDoor>) -> super::InternetConfig {
    super::InternetConfig {
        account: "123456789012".to_string(),
        ca: std::sync::Arc::new(crate::tls::Ca::ephemeral().expect("ca")),
        api_door,
        dns: crate::dns::Views::default().of("123456789012"),
    }
}

fn instance(net: &Net) -> vpclab_netstack::host::Host {
    net.add_host(HostConfig::vpc(
        Port::Eni("eni-a".into()),
        "10.0.1.10/24".parse().expect("cidr"),
    ))
    .expect("host")
}

#[tokio::test(start_paused = true)]
async fn what_is_my_ip_answers_with_the_source_address_it_sees() {
    let (net, _inet) = world();
    let a = instance(&net);
    let dst = SocketAddrV4::new(addrs::WHATISMYIP_ADDR, 80);
    let resp = http1::get(&a, dst, "checkip", "/").await.expect("http");
    assert_eq!(resp.status, 200);
    // No NAT in this forwarder: the service sees the private address.
    assert_eq!(resp.text(), "10.0.1.10\n");
}

#[tokio::test(start_paused = true)]
async fn mirror_serves_published_files_only() {
    let (net, inet) = world();
    let a = instance(&net);
    let dst = SocketAddrV4::new(addrs::MIRROR_ADDR, 80);
    let missing = http1::get(&a, dst, "mirror", "/repo/httpd.rpm")
        .await
        .expect("http");
    assert_eq!(missing.status, 404);
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    inet.mirror().put("repo/httpd.rpm", big.clone());
    let got = http1::get(&a, dst, "mirror", "/repo/httpd.rpm")
        .await
        .expect("http");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, big);
    let index = http1::get(&a, dst, "mirror", "/").await.expect("http");
    assert_eq!(index.text(), "/repo/httpd.rpm\n");
}

#[tokio::test(start_paused = true)]
async fn web_site_serves_its_page_to_the_learner() {
    let (_net, inet) = world();
    let resp = http1::get(
        inet.learner(),
        SocketAddrV4::new(addrs::WEB_ADDR, 80),
        "www",
        "/",
    )
    .await
    .expect("http");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("It works"));
    assert_eq!(resp.header("server"), Some("vpclab"));
    let who = http1::get(
        inet.learner(),
        SocketAddrV4::new(addrs::WHATISMYIP_ADDR, 80),
        "ip",
        "/",
    )
    .await
    .expect("http");
    assert_eq!(who.text(), format!("{}\n", addrs::LEARNER_ADDR));
}

#[tokio::test(start_paused = true)]
async fn any_public_address_serves_a_page_naming_the_site_and_refuses_other_ports() {
    let (net, _inet) = world();
    let a = instance(&net);
    let ip = "93.184.215.14".parse().expect("ip");
    let resp = http1::get(&a, SocketAddrV4::new(ip, 80), "example.com", "/")
        .await
        .expect("http");
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains("<h1>example.com</h1>"),
        "{}",
        resp.text()
    );
    let refused = a
        .connect(SocketAddrV4::new(ip, 25))
        .await
        .expect_err("no mail server");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn https_on_any_address_verifies_against_the_worlds_ca() {
    let fwd = AddressForwarder::new()
        .route(
            "10.0.1.0/24".parse().expect("cidr"),
            Port::Eni("eni-a".into()),
        )
        .route("0.0.0.0/0".parse().expect("cidr"), Port::Internet);
    let net = Net::new(fwd);
    let cfg = config(None);
    let ca_pem = cfg.ca.cert_pem().to_string();
    let _inet = Internet::start(&net, cfg).expect("internet");
    let a = instance(&net);
    let stream = a
        .connect(SocketAddrV4::new(
            "198.51.100.133".parse().expect("ip"),
            443,
        ))
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(
        crate::tls::client_config(ca_pem.as_bytes()).expect("cfg"),
    );
    let name = rustls::pki_types::ServerName::try_from("www.google.com").expect("name");
    let tls = connector.connect(name, stream).await.expect("handshake");
    let resp = http1::request(tls, "GET", "www.google.com", "/", &[], b"")
        .await
        .expect("http");
    assert!(resp.text().contains("<h1>www.google.com</h1>"));
}

#[tokio::test(start_paused = true)]
async fn endpoint_addresses_hand_requests_to_the_api_door_as_the_worlds_account() {
    let door: super::ApiDoor = std::sync::Arc::new(|req: super::DoorRequest| {
        Box::pin(async move {
            let host = req
                .request
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string();
            hyper::Response::new(bytes::Bytes::from(format!(
                "{} {} {}",
                req.account,
                host,
                req.request.uri()
            )))
        })
    });
    let fwd = AddressForwarder::new()
        .route(
            "10.0.1.0/24".parse().expect("cidr"),
            Port::Eni("eni-a".into()),
        )
        .route("0.0.0.0/0".parse().expect("cidr"), Port::Internet);
    let net = Net::new(fwd);
    let _inet = Internet::start(&net, config(Some(door))).expect("internet");
    let a = instance(&net);
    let ep = SocketAddrV4::new("198.51.100.1".parse().expect("ip"), 80);
    let resp = http1::get(
        &a,
        ep,
        "ec2.us-east-1.amazonaws.com",
        "/?Action=DescribeVpcs",
    )
    .await
    .expect("http");
    assert_eq!(
        resp.text(),
        "123456789012 ec2.us-east-1.amazonaws.com /?Action=DescribeVpcs"
    );
}

#[tokio::test(start_paused = true)]
async fn well_known_resolvers_answer_dns_and_other_addresses_do_not() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let (net, _inet) = world();
    let a = instance(&net);
    let sock = a.bind_udp(0).expect("udp");
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(
        Name::from_ascii("example.com.").expect("name"),
        RecordType::A,
    ));
    let bytes = q.to_vec().expect("encode");
    let mut buf = vec![0u8; 1500];
    sock.send_to(
        &bytes,
        SocketAddrV4::new("8.8.8.8".parse().expect("ip"), 53),
    )
    .await
    .expect("send");
    let (n, from) =
        tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer from 8.8.8.8")
            .expect("recv");
    assert_eq!(from, SocketAddrV4::new("8.8.8.8".parse().expect("ip"), 53));
    let m = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(m.answers.len(), 1, "{m:?}");
    sock.send_to(
        &bytes,
        SocketAddrV4::new("93.184.215.14".parse().expect("ip"), 53),
    )
    .await
    .expect("send");
    let silent =
        tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf)).await;
    assert!(silent.is_err(), "a random address runs no DNS server");
}

//! The simulated internet's services and learner access, over a plain
//! address router (the NAT cases through the real fabric are in
//! `hosts_fabric.rs`).

use std::net::SocketAddrV4;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpclab_netstack::Port;
use vpclab_netstack::host::{AddressForwarder, HostConfig, Net};
use vpclab_netstack::internet::{self, Internet, http};

fn world() -> (Net, Internet) {
    let fwd = AddressForwarder::new()
        .route("10.0.1.0/24".parse().unwrap(), Port::Eni("eni-a".into()))
        .route("192.0.2.0/24".parse().unwrap(), Port::Internet)
        .route("203.0.113.0/24".parse().unwrap(), Port::Internet);
    let net = Net::new(fwd);
    let inet = Internet::start(&net).unwrap();
    (net, inet)
}

#[tokio::test(start_paused = true)]
async fn what_is_my_ip_answers_with_the_source_address_it_sees() {
    let (net, _inet) = world();
    let a = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-a".into()),
            "10.0.1.10/24".parse().unwrap(),
        ))
        .unwrap();
    let dst = SocketAddrV4::new(internet::WHATISMYIP_ADDR, 80);
    let resp = http::get(&a, dst, "checkip", "/").await.unwrap();
    assert_eq!(resp.status, 200);
    // No NAT in this forwarder: the service sees the private address.
    assert_eq!(resp.text(), "10.0.1.10\n");
}

#[tokio::test(start_paused = true)]
async fn mirror_serves_published_files_only() {
    let (net, inet) = world();
    let a = net
        .add_host(HostConfig::vpc(
            Port::Eni("eni-a".into()),
            "10.0.1.10/24".parse().unwrap(),
        ))
        .unwrap();
    let dst = SocketAddrV4::new(internet::MIRROR_ADDR, 80);
    let missing = http::get(&a, dst, "mirror", "/repo/httpd.rpm")
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    inet.mirror().put("repo/httpd.rpm", big.clone());
    let got = http::get(&a, dst, "mirror", "/repo/httpd.rpm")
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, big);
    let index = http::get(&a, dst, "mirror", "/").await.unwrap();
    assert_eq!(index.text(), "/repo/httpd.rpm\n");
}

#[tokio::test(start_paused = true)]
async fn web_site_serves_its_page_to_the_learner() {
    let (_net, inet) = world();
    let resp = http::get(
        inet.learner(),
        SocketAddrV4::new(internet::WEB_ADDR, 80),
        "www",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("It works"));
    let who = http::get(
        inet.learner(),
        SocketAddrV4::new(internet::WHATISMYIP_ADDR, 80),
        "ip",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(who.text(), format!("{}\n", internet::LEARNER_ADDR));
}

#[tokio::test(start_paused = true)]
async fn learner_connect_splices_a_byte_stream_into_the_world() {
    let (net, inet) = world();
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
        assert_eq!(*peer.ip(), internet::LEARNER_ADDR);
        s.write_all(b"SSH-2.0-vpclab\r\n").await.unwrap();
        let mut line = Vec::new();
        s.read_to_end(&mut line).await.unwrap();
        line
    });
    let (mut outside, inside) = tokio::io::duplex(4096);
    let splice = tokio::spawn(async move {
        inet.learner_connect(SocketAddrV4::new("10.0.1.10".parse().unwrap(), 22), inside)
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

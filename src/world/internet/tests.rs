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
        .route("192.0.2.0/24".parse().expect("cidr"), Port::Internet)
        .route("203.0.113.0/24".parse().expect("cidr"), Port::Internet);
    let net = Net::new(fwd);
    let inet = Internet::start(&net).expect("internet");
    (net, inet)
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

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
        assert_eq!(*peer.ip(), internet::LEARNER_ADDR);
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

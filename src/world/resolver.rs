//! DNS inside the fabric: the Route 53 Resolver of each VPC (`Port::Resolver(vpc)`, at
//! VPC base + 2, 169.254.169.253 and fd00:ec2::253, the address AWS gives it for
//! instances with IPv6 addresses) and the world's public resolver on the internet
//! (192.0.2.53, and the well-known public resolvers 8.8.8.8, 1.1.1.1 … on the
//! catch-all internet host). They answer UDP and TCP port 53 with the `dns` engine, from
//! the vantage point of the VPC or of the internet; the fabric exempts the VPC resolver
//! from NACLs and security groups, as AWS does.

use std::net::IpAddr;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use vpclab_netstack::Port;
use vpclab_netstack::host::{Host, HostConfig, Net, NetError, TcpListener, TcpStream, UdpSocket};
use vpclab_netstack::internet::PUBLIC_DNS_ADDR;
use vpclab_netstack::topology::rid;

use crate::dns::{SharedView, Transport, Vantage, answer};

/// Attaches the resolver of `vpc` and starts answering.
pub(crate) fn start_vpc(
    net: &Net,
    vpc: &str,
    addrs: Vec<Ipv4Net>,
    view: SharedView,
) -> Result<(Host, JoinHandle<()>), NetError> {
    let host = net.add_host(
        HostConfig::service(Port::Resolver(rid(vpc)), addrs)
            .with_service_ipv6(vpclab_netstack::ipv6::RESOLVER_V6),
    )?;
    let sock = host.bind_udp(53).map_err(|_| NetError::HostGone)?;
    let tcp = host.listen(53).map_err(|_| NetError::HostGone)?;
    let vpc = vpc.to_string();
    let task = tokio::spawn(async move {
        tokio::join!(
            serve_udp(sock, view.clone(), Some(vpc.clone()), None),
            serve_tcp(tcp, view, Some(vpc), None)
        );
    });
    Ok((host, task))
}

/// Attaches the public resolver (192.0.2.53) to the world's internet.
pub(crate) fn start_public(net: &Net, view: SharedView) -> Result<Vec<JoinHandle<()>>, NetError> {
    let host = net.add_host(HostConfig::internet(PUBLIC_DNS_ADDR))?;
    let sock = host.bind_udp(53).map_err(|_| NetError::HostGone)?;
    let tcp = host.listen(53).map_err(|_| NetError::HostGone)?;
    Ok(vec![
        tokio::spawn(serve_udp(sock, view.clone(), None, None)),
        tokio::spawn(serve_tcp(tcp, view, None, None)),
    ])
}

/// Answers DNS as the public resolver on `host` (the catch-all internet host), but
/// only for queries sent to one of `only` (8.8.8.8 …): a random internet address has
/// no DNS server, so a query there goes unanswered (UDP) or is reset (TCP).
pub(crate) fn start_on(
    host: &Host,
    view: SharedView,
    only: &'static [Ipv4Addr],
) -> Result<Vec<JoinHandle<()>>, NetError> {
    let sock = host.bind_udp(53).map_err(|_| NetError::HostGone)?;
    let tcp = host.listen(53).map_err(|_| NetError::HostGone)?;
    Ok(vec![
        tokio::spawn(serve_udp(sock, view.clone(), None, Some(only))),
        tokio::spawn(serve_tcp(tcp, view, None, Some(only))),
    ])
}

async fn serve_udp(
    sock: UdpSocket,
    view: SharedView,
    vpc: Option<String>,
    only: Option<&'static [Ipv4Addr]>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, from, to)) = sock.recv_from_to_any(&mut buf).await else {
            return;
        };
        // The public resolvers of `only` are IPv4 addresses.
        if only.is_some_and(|only| !matches!(to, Some(IpAddr::V4(a)) if only.contains(&a))) {
            continue;
        }
        let reply = {
            let v = view.read().unwrap_or_else(|e| e.into_inner());
            let vantage = match &vpc {
                Some(id) => Vantage::Vpc(id),
                None => Vantage::Internet,
            };
            answer(&v, vantage, &buf[..n], Transport::UDP)
        };
        if let Some(bytes) = reply {
            // A reply comes from the address that was asked (base + 2, the
            // link-local address or fd00:ec2::253), as resolvers must.
            let sent = match to.filter(|a| !a.is_unspecified()) {
                Some(src) => sock.send_from_ip(&bytes, src, from).await,
                None => sock.send_to(&bytes, from).await,
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// DNS over TCP (RFC 1035 §4.2.2: each message prefixed by its two-byte length), for
/// clients that retry a truncated UDP answer.
async fn serve_tcp(
    listener: TcpListener,
    view: SharedView,
    vpc: Option<String>,
    only: Option<&'static [Ipv4Addr]>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        if only.is_some_and(|only| {
            !only
                .iter()
                .any(|a| IpAddr::V4(*a) == stream.local_addr().ip())
        }) {
            stream.abort();
            continue;
        }
        tokio::spawn(serve_tcp_conn(stream, view.clone(), vpc.clone()));
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, view: SharedView, vpc: Option<String>) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let reply = {
            let v = view.read().unwrap_or_else(|e| e.into_inner());
            let vantage = match &vpc {
                Some(id) => Vantage::Vpc(id),
                None => Vantage::Internet,
            };
            answer(&v, vantage, &msg, Transport::Tcp)
        };
        let Some(bytes) = reply else {
            return;
        };
        let Ok(n) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

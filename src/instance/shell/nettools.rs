//! Network tools of the emulated shell: `ip`, `ping`, `curl`, `wget`, `nc`, `dig`,
//! `nslookup`, `host`, `ss`, and the `ssh`/`scp` clients' connection step.
//!
//! Every packet goes through [`InstanceNet`](crate::instance::net::InstanceNet), i.e.
//! through the instance's own stack on the fabric, so a missing route or a closed
//! security group shows up the way it does on AWS: as a timeout, worded as the real
//! tool words it. Names are resolved with a DNS query (built by hand with hickory-proto)
//! to the resolver in `/etc/resolv.conf`. Connections to 169.254.169.254:80 reach the
//! instance's metadata service, which the instance answers itself. `curl` and `wget`
//! speak HTTP with hyper through [`crate::http1`]; their time options are read by
//! [`super::seconds`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Io, Shell, seconds};
use crate::http1;
use crate::instance::net::NetStream;

/// The metadata service's link-local address.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// How long Linux keeps retrying a SYN before `connect` fails (about 130 s with the
/// default `tcp_syn_retries` of 6), which is what a learner waits through when a security
/// group drops the connection.
pub const LINUX_CONNECT_TIMEOUT: Duration = Duration::from_secs(130);

/// Opens a TCP connection from the instance; the metadata address is served in-process.
pub async fn connect(
    sh: &Shell,
    dst: SocketAddrV4,
    timeout: Duration,
) -> io::Result<Box<dyn NetStream>> {
    if *dst.ip() == IMDS_ADDR {
        // A closed port, or the whole endpoint turned off (`HttpEndpoint` disabled):
        // nothing answers, as when the fabric delivers to no metadata host.
        if dst.port() != 80 || sh.inst.profile().imds_disabled {
            tokio::time::sleep(timeout).await;
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        let (a, b) = tokio::io::duplex(64 * 1024);
        let inst = sh.inst.clone();
        tokio::spawn(async move {
            let _ = crate::instance::imds::serve_imds(b, inst).await;
        });
        return Ok(Box::new(a));
    }
    sh.inst.net().tcp_connect(dst, timeout).await
}

/// Opens a TCP connection over either IP version (IPv6 through the instance's IPv6
/// address, `NetworkUnreachable` without one).
pub async fn connect_ip(
    sh: &Shell,
    dst: SocketAddr,
    timeout: Duration,
) -> io::Result<Box<dyn NetStream>> {
    match dst {
        SocketAddr::V4(d) => connect(sh, d, timeout).await,
        SocketAddr::V6(d) => sh.inst.net().tcp_connect6(d, timeout).await,
    }
}

/// Which address family a tool was told to use (`-4`, `-6`), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

/// Resolves `host` for a tool: an address literal as it is, else an A record (or an
/// AAAA record with `-6`). Without a flag, names resolve to IPv4 first, as the C
/// library's default ordering on an instance without a global IPv6 address would.
pub async fn resolve_ip(sh: &Shell, host: &str, family: Family) -> Result<IpAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<Ipv6Addr>() {
        return match family {
            Family::V4 => Err(host.to_string()),
            _ => Ok(IpAddr::V6(ip)),
        };
    }
    if family == Family::V6 {
        return resolve6(sh, host).await.map(IpAddr::V6);
    }
    resolve(sh, host).await.map(IpAddr::V4)
}

/// Resolves a host name to an IPv6 address (an AAAA query), as `getaddrinfo` with
/// `AF_INET6` would.
pub async fn resolve6(sh: &Shell, host: &str) -> Result<Ipv6Addr, String> {
    if let Ok(ip) = host.parse::<Ipv6Addr>() {
        return Ok(ip);
    }
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower == "localhost6" || lower == "ip6-localhost" {
        return Ok(Ipv6Addr::LOCALHOST);
    }
    let server = resolver(sh);
    for _ in 0..2 {
        match dns_query(sh, server, host, RecordType::AAAA, Duration::from_secs(5)).await {
            DnsOutcome::Answer(m) => {
                return m
                    .answers
                    .iter()
                    .find_map(|r| match &r.data {
                        RData::AAAA(a) => Some(a.0),
                        _ => None,
                    })
                    .ok_or_else(|| host.to_string());
            }
            DnsOutcome::Timeout => {}
            DnsOutcome::Garbled | DnsOutcome::Refused | DnsOutcome::Unreachable => {
                return Err(host.to_string());
            }
        }
    }
    Err(host.to_string())
}

/// The link-local address Linux derives from a MAC address (modified EUI-64).
fn link_local(mac: &str) -> Option<Ipv6Addr> {
    let b: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let [m0, m1, m2, m3, m4, m5] = <[u8; 6]>::try_from(b).ok()?;
    let w = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    Some(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        w(m0 ^ 0x02, m1),
        w(m2, 0xff),
        w(0xfe, m3),
        w(m4, m5),
    ))
}

/// The resolver named in `/etc/resolv.conf` (an IPv4 or IPv6 address: a learner may
/// name the VPC resolver's fd00:ec2::253 there).
fn resolver(sh: &Shell) -> IpAddr {
    let conf = sh
        .inst
        .lock_disk()
        .fs
        .read("/etc/resolv.conf", crate::instance::vfs::Cred::ROOT)
        .map(|d| String::from_utf8_lossy(d).to_string())
        .unwrap_or_default();
    conf.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .next()
        .unwrap_or_else(|| {
            // No `nameserver` line: glibc and dig then ask 127.0.0.1, where nothing
            // listens (a VPC associated with no DHCP options gives no DNS server).
            let p = sh.inst.profile();
            match p.dhcp {
                Some(d) if d.name_servers.is_empty() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                _ => IpAddr::V4(p.dns_server),
            }
        })
}

/// The outcome of one DNS exchange.
enum DnsOutcome {
    Answer(Message),
    Timeout,
    /// Nothing listens at the server (the instance's own loopback).
    Refused,
    /// No route to the server's address family (IPv6 on an instance without an IPv6
    /// address).
    Unreachable,
    Garbled,
}

async fn dns_query(
    sh: &Shell,
    server: IpAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> DnsOutcome {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let Ok(qname) = Name::from_ascii(&fqdn) else {
        return DnsOutcome::Garbled;
    };
    if server.is_loopback() {
        // No resolver runs on the instance itself.
        return DnsOutcome::Refused;
    }
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(qname, rtype));
    let id = msg.metadata.id;
    let Ok(bytes) = msg.to_vec() else {
        return DnsOutcome::Garbled;
    };
    let net = sh.inst.net();
    let reply = match server {
        IpAddr::V4(a) => {
            net.udp_exchange(SocketAddrV4::new(a, 53), bytes, timeout)
                .await
        }
        IpAddr::V6(a) => {
            net.udp_exchange6(SocketAddrV6::new(a, 53, 0, 0), bytes, timeout)
                .await
        }
    };
    match reply {
        Ok(reply) => match Message::from_vec(&reply) {
            Ok(m) if m.metadata.id == id => DnsOutcome::Answer(m),
            _ => DnsOutcome::Garbled,
        },
        Err(e) if e.kind() == io::ErrorKind::NetworkUnreachable => DnsOutcome::Unreachable,
        Err(_) => DnsOutcome::Timeout,
    }
}

/// Resolves a host name to an address, as the C library would.
pub async fn resolve(sh: &Shell, host: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let p = sh.inst.profile();
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower == "localhost.localdomain" {
        return Ok(Ipv4Addr::LOCALHOST);
    }
    if let Some(ip) = p.ipv4()
        && (lower == p.hostname() || lower == p.local_hostname())
    {
        return Ok(ip);
    }
    if lower == "instance-data" || lower == "instance-data.ec2.internal" {
        return Ok(IMDS_ADDR);
    }
    let server = resolver(sh);
    // glibc: two attempts of five seconds each.
    for _ in 0..2 {
        match dns_query(sh, server, host, RecordType::A, Duration::from_secs(5)).await {
            DnsOutcome::Answer(m) => {
                return m
                    .answers
                    .iter()
                    .find_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .ok_or_else(|| host.to_string());
            }
            DnsOutcome::Timeout => {}
            DnsOutcome::Garbled | DnsOutcome::Refused | DnsOutcome::Unreachable => {
                return Err(host.to_string());
            }
        }
    }
    Err(host.to_string())
}

pub(super) fn ip(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let net = sh.inst.net();
    // `ip -4 …` and `ip -6 …` show one family only.
    let family = if args.iter().any(|a| a == "-6") {
        Family::V6
    } else if args.iter().any(|a| a == "-4") {
        Family::V4
    } else {
        Family::Any
    };
    let (show4, show6) = (family != Family::V6, family != Family::V4);
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    match sub {
        Some(s) if "addr".starts_with(s) || "address".starts_with(s) || s == "a" => {
            io.out.line("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000");
            if family == Family::Any {
                io.out
                    .line("    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00");
            }
            if show4 {
                io.out.line("    inet 127.0.0.1/8 scope host lo");
                io.out
                    .line("       valid_lft forever preferred_lft forever");
            }
            if show6 {
                io.out.line("    inet6 ::1/128 scope host noprefixroute ");
                io.out
                    .line("       valid_lft forever preferred_lft forever");
            }
            for (i, ifc) in net.interfaces().iter().enumerate() {
                let bcast = ipnet::Ipv4Net::new(ifc.addr, ifc.prefix_len)
                    .map(|n| n.broadcast().to_string())
                    .unwrap_or_default();
                io.out.line(&format!(
                    "{}: {}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {} qdisc mq state UP group default qlen 1000",
                    i + 2,
                    ifc.name,
                    ifc.mtu
                ));
                if family == Family::Any {
                    io.out
                        .line(&format!("    link/ether {} brd ff:ff:ff:ff:ff:ff", ifc.mac));
                    io.out.line(&format!("    altname enp0s{}", i + 5));
                }
                // An interface in an IPv6-only subnet has no IPv4 address to show.
                if show4 && !ifc.addr.is_unspecified() {
                    io.out.line(&format!(
                        "    inet {}/{} metric 512 brd {bcast} scope global dynamic {}",
                        ifc.addr, ifc.prefix_len, ifc.name
                    ));
                    io.out
                        .line("       valid_lft 3599sec preferred_lft 3599sec");
                }
                if show6 {
                    // Amazon Linux 2023 takes its IPv6 address from DHCPv6 as a /128
                    // (the /64 comes from the router's advertisements, as a route).
                    for (a, _prefix) in &ifc.addrs6 {
                        io.out.line(&format!(
                            "    inet6 {a}/128 scope global dynamic noprefixroute "
                        ));
                        io.out.line("       valid_lft 448sec preferred_lft 138sec");
                    }
                    if let Some(ll) = link_local(&ifc.mac) {
                        io.out
                            .line(&format!("    inet6 {ll}/64 scope link proto kernel_ll "));
                        io.out
                            .line("       valid_lft forever preferred_lft forever");
                    }
                }
            }
            0
        }
        Some(s) if ("route".starts_with(s) || s == "r") && family == Family::V6 => {
            for r in net.routes6() {
                match r.via {
                    Some(via) => io.out.line(&format!(
                        "{} via {via} dev {} proto ra metric 512 expires 1798sec pref medium",
                        r.dst, r.dev
                    )),
                    None => io.out.line(&format!(
                        "{} dev {} proto ra metric 512 pref medium",
                        r.dst, r.dev
                    )),
                }
            }
            for ifc in net.interfaces() {
                io.out.line(&format!(
                    "fe80::/64 dev {} proto kernel metric 256 pref medium",
                    ifc.name
                ));
            }
            0
        }
        Some(s) if "route".starts_with(s) || s == "r" => {
            for r in net.routes() {
                let mut line = r.dst.clone();
                if let Some(via) = r.via {
                    line.push_str(&format!(" via {via} dev {} proto dhcp", r.dev));
                } else {
                    line.push_str(&format!(" dev {} proto kernel scope link", r.dev));
                }
                if let Some(src) = r.src {
                    line.push_str(&format!(" src {src}"));
                }
                line.push_str(" metric 512");
                io.out.line(&line);
            }
            0
        }
        Some(s) if "link".starts_with(s) => {
            io.out.line("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000");
            io.out
                .line("    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00");
            for (i, ifc) in net.interfaces().iter().enumerate() {
                io.out.line(&format!(
                    "{}: {}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {} qdisc mq state UP mode DEFAULT group default qlen 1000",
                    i + 2,
                    ifc.name,
                    ifc.mtu
                ));
                io.out
                    .line(&format!("    link/ether {} brd ff:ff:ff:ff:ff:ff", ifc.mac));
            }
            0
        }
        Some(other) => {
            io.err
                .line(&format!("Object \"{other}\" is unknown, try \"ip help\"."));
            1
        }
        None => {
            io.err
                .line("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }");
            io.err
                .line("where  OBJECT := { address | link | route | ... }");
            255
        }
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

pub(super) async fn ping(sh: &mut Shell, tool: &str, args: &[String], io: &mut Io) -> i32 {
    // `ping6` is `ping -6` (iputils makes it a link to ping).
    let mut family = if tool == "ping6" {
        Family::V6
    } else {
        Family::Any
    };
    let mut count: Option<u32> = None;
    let mut wait = Duration::from_secs(1);
    let mut interval = Duration::from_secs(1);
    let mut target = None;
    let mut quiet = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => count = it.next().and_then(|v| v.parse().ok()),
            // iputils refuses a linger time below a millisecond, and any value that is
            // not a finite number, with status 2.
            "-W" => {
                if let Some(v) = it.next() {
                    match seconds::parse_finite(v) {
                        Ok(d) if d >= Duration::from_millis(1) => wait = d,
                        _ => {
                            io.err.line(&format!("ping: bad linger time: {v}"));
                            return 2;
                        }
                    }
                }
            }
            // The deadline: iputils wants a count of seconds from 0 to INT_MAX. Here it
            // bounds the wait for each reply, as -W does.
            "-w" => {
                if let Some(v) = it.next() {
                    match seconds::parse_finite(v) {
                        Ok(d) => wait = d,
                        Err(seconds::BadSeconds::Negative) => {
                            io.err.line(&format!(
                                "ping: invalid argument: '{v}': out of range: 0 <= value <= 2147483647"
                            ));
                            return 2;
                        }
                        Err(seconds::BadSeconds::NotANumber) => {
                            io.err.line(&format!("ping: invalid argument: '{v}'"));
                            return 2;
                        }
                    }
                }
            }
            "-i" => {
                if let Some(v) = it.next() {
                    match seconds::parse_finite(v) {
                        // Unprivileged users cannot go below 2 ms.
                        Ok(d) => interval = d.max(Duration::from_millis(2)),
                        Err(_) => {
                            io.err.line(&format!("ping: bad timing interval: {v}"));
                            return 2;
                        }
                    }
                }
            }
            "-q" => quiet = true,
            "-4" => family = Family::V4,
            "-6" => family = Family::V6,
            s if s.starts_with("-c") => count = s[2..].parse().ok(),
            s if s.starts_with('-') => {}
            s => target = Some(s.to_string()),
        }
    }
    let Some(target) = target else {
        io.err
            .line("ping: usage error: Destination address required");
        return 1;
    };
    let ip = match resolve_ip(sh, &target, family).await {
        Ok(ip) => ip,
        Err(_) if family == Family::V6 => {
            // iputils asks for an AAAA record: none is "no address associated".
            io.err.line(&format!(
                "ping: {target}: Address family for hostname not supported"
            ));
            return 2;
        }
        Err(_) => {
            io.err
                .line(&format!("ping: {target}: Name or service not known"));
            return 2;
        }
    };
    // An instance without an IPv6 address has no IPv6 route at all: iputils fails at
    // its connect() before sending anything.
    if let IpAddr::V6(v6) = ip
        && !v6.is_loopback()
        && sh
            .inst
            .net()
            .interfaces()
            .iter()
            .all(|i| i.addrs6.is_empty())
    {
        io.err.line("ping: connect: Network is unreachable");
        return 2;
    }
    // Without -c ping runs until Ctrl-C; in a non-interactive command that would never
    // end, so four probes are sent there.
    let count = count.unwrap_or(if sh.tty { u32::MAX } else { 4 });
    match ip {
        IpAddr::V4(_) => io
            .out
            .line(&format!("PING {target} ({ip}) 56(84) bytes of data.")),
        // iputils' IPv6 header: no space before the parenthesis, no "(84)".
        IpAddr::V6(_) => io.out.line(&format!("PING {target}({ip}) 56 data bytes")),
    }
    let start = tokio::time::Instant::now();
    let mut rtts = Vec::new();
    let mut sent = 0u32;
    // Ctrl-C ends the run and prints the statistics, as ping's SIGINT handler does.
    io.term
        .catch_interrupt
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let term = io.term.clone();
    'probes: for seq in 1..=count {
        sent += 1;
        let t0 = tokio::time::Instant::now();
        let seq16 = u16::try_from(seq % 65536).unwrap_or(0);
        let reply = tokio::select! {
            r = async {
                match ip {
                    IpAddr::V4(a) => sh.inst.net().ping(a, seq16, wait.max(interval)).await,
                    IpAddr::V6(a) => sh.inst.net().ping6(a, seq16, wait.max(interval)).await,
                }
            } => r,
            () = term.interrupt.notified() => break 'probes,
        };
        match reply {
            Ok(reply) => {
                rtts.push(reply.rtt);
                if !quiet {
                    io.out.line(&format!(
                        "64 bytes from {ip}: icmp_seq={seq} ttl={} time={} ms",
                        reply.ttl,
                        if reply.rtt < Duration::from_millis(10) {
                            fmt_ms(reply.rtt)
                        } else {
                            format!("{:.1}", reply.rtt.as_secs_f64() * 1000.0)
                        }
                    ));
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::HostUnreachable
                    || e.kind() == io::ErrorKind::NetworkUnreachable =>
            {
                io.out.line(&format!(
                    "From {ip} icmp_seq={seq} Destination Host Unreachable"
                ));
            }
            Err(_) => {}
        }
        if seq < count {
            let spent = t0.elapsed();
            if spent < interval {
                tokio::select! {
                    () = tokio::time::sleep(interval - spent) => {}
                    () = term.interrupt.notified() => break 'probes,
                }
            }
        }
    }
    io.term
        .catch_interrupt
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let total = start.elapsed();
    let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX);
    let loss = ((sent - received) * 100).checked_div(sent).unwrap_or(0);
    io.out.line("");
    io.out.line(&format!("--- {target} ping statistics ---"));
    io.out.line(&format!(
        "{sent} packets transmitted, {received} received, {loss}% packet loss, time {}ms",
        total.as_millis()
    ));
    if !rtts.is_empty() {
        let min = rtts.iter().min().copied().unwrap_or_default();
        let max = rtts.iter().max().copied().unwrap_or_default();
        let avg = rtts.iter().sum::<Duration>() / received.max(1);
        let mean = avg.as_secs_f64();
        let var = rtts
            .iter()
            .map(|r| (r.as_secs_f64() - mean).powi(2))
            .sum::<f64>()
            / f64::from(received.max(1));
        io.out.line(&format!(
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
            fmt_ms(min),
            fmt_ms(avg),
            fmt_ms(max),
            fmt_ms(Duration::from_secs_f64(var.sqrt()))
        ));
    }
    if received == 0 { 1 } else { 0 }
}

/// A parsed `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses a URL the way curl does (a missing scheme means http).
pub fn parse_url(url: &str) -> Option<Url> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme == "https" { 443 } else { 80 };
    // An IPv6 literal is written in brackets (`http://[2001:db8::10]:8080/`); the
    // host is kept without them.
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<Ipv6Addr>().ok()?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), p.parse().ok()?),
            None if after.is_empty() => (h.to_string(), default_port),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Url {
        scheme,
        host,
        port,
        path,
    })
}

/// Why a fetch failed, with curl's exit code.
struct FetchError {
    code: i32,
    msg: String,
}

/// curl's limits and TLS choice for one fetch.
#[derive(Clone, Copy)]
struct FetchOpts {
    max_time: Option<Duration>,
    connect_timeout: Option<Duration>,
    /// `-k`: do not verify the server's certificate.
    insecure: bool,
    /// `-4` / `-6`.
    family: Family,
}

struct Fetched {
    ip: IpAddr,
    resp: http1::Response,
}

/// One HTTP exchange from the instance: resolve, connect (the metadata address is served
/// in-process), send `headers` as given, read the response, all within curl's limits.
async fn fetch(
    sh: &Shell,
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    opts: FetchOpts,
) -> Result<Fetched, FetchError> {
    let FetchOpts {
        max_time,
        connect_timeout,
        insecure,
        family,
    } = opts;
    let started = tokio::time::Instant::now();
    let ip = resolve_ip(sh, &url.host, family)
        .await
        .map_err(|h| FetchError {
            code: 6,
            msg: format!("Could not resolve host: {h}"),
        })?;
    let ct = connect_timeout
        .or(max_time)
        .unwrap_or(LINUX_CONNECT_TIMEOUT)
        .min(max_time.unwrap_or(Duration::MAX));
    let stream = connect_ip(sh, SocketAddr::new(ip, url.port), ct)
        .await
        .map_err(|e| {
            let ms = started.elapsed().as_millis();
            match e.kind() {
                io::ErrorKind::TimedOut if max_time.is_some() || connect_timeout.is_some() => {
                    FetchError {
                        code: 28,
                        msg: format!(
                            "Failed to connect to {} port {} after {ms} ms: Timeout was reached",
                            url.host, url.port
                        ),
                    }
                }
                io::ErrorKind::TimedOut => FetchError {
                    code: 28,
                    msg: format!(
                        "Failed to connect to {} port {} after {ms} ms: Couldn't connect to server",
                        url.host, url.port
                    ),
                },
                _ => FetchError {
                    code: 7,
                    msg: format!(
                        "Failed to connect to {} port {} after {ms} ms: Couldn't connect to server",
                        url.host, url.port
                    ),
                },
            }
        })?;
    let stream = if url.scheme == "https" {
        tls_connect(sh, &url.host, stream, insecure).await?
    } else {
        stream
    };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let host_header = if url.port == 80 {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    let fut = http1::request(stream, method, &host_header, &url.path, headers, body);
    let resp = match max_time {
        Some(mt) => match tokio::time::timeout(mt.saturating_sub(started.elapsed()), fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(FetchError {
                    code: 28,
                    msg: format!(
                        "Operation timed out after {} milliseconds with 0 bytes received",
                        mt.as_millis()
                    ),
                });
            }
        },
        None => fut.await,
    }
    .map_err(|e| FetchError {
        code: if e.kind() == io::ErrorKind::ConnectionReset {
            52
        } else {
            56
        },
        msg: if e.kind() == io::ErrorKind::ConnectionReset {
            "Empty reply from server".to_string()
        } else {
            format!("Recv failure: {e}")
        },
    })?;
    Ok(Fetched { ip, resp })
}

/// The TLS handshake of an HTTPS fetch, verified against the instance's system CA
/// bundle (which holds vpclab's CA: the simulated internet's certificates are signed
/// by it), or not verified at all with `-k`. Failures carry curl's codes and words.
async fn tls_connect(
    sh: &Shell,
    host: &str,
    stream: Box<dyn NetStream>,
    insecure: bool,
) -> Result<Box<dyn NetStream>, FetchError> {
    let config = if insecure {
        crate::tls::insecure_client_config()
    } else {
        let path = sh.inst.profile().image.ca_bundle_path();
        let bundle = sh
            .inst
            .lock_disk()
            .fs
            .read(path, crate::instance::vfs::Cred::ROOT)
            .map(|d| d.to_vec())
            .unwrap_or_default();
        crate::tls::client_config(&bundle).map_err(|_| FetchError {
            code: 77,
            msg: format!("error setting certificate file: {path}"),
        })?
    };
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| FetchError {
            code: 3,
            msg: "URL using bad/illegal format or missing URL".to_string(),
        })?;
    match tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
    {
        Ok(tls) => Ok(Box::new(tls)),
        Err(e) => {
            let bad_cert = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
            Err(if bad_cert {
                FetchError {
                    code: 60,
                    msg: "SSL certificate problem: unable to get local issuer certificate"
                        .to_string(),
                }
            } else {
                FetchError {
                    code: 35,
                    msg: format!("TLS connect error: {e}"),
                }
            })
        }
    }
}

/// `traceroute [-n] [-m MAX] [-w WAIT] HOST`: the hops the fabric knows on the way (the
/// VPC router, a NAT gateway, then the destination), three probes each. Hops that do
/// not answer (an internet gateway, anything past a drop) print `* * *` as on Linux;
/// without the destination, the trace stops at the maximum hop count.
pub(super) async fn traceroute(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    // `traceroute6` is `traceroute -6`.
    let mut family = if name == "traceroute6" {
        Family::V6
    } else {
        Family::Any
    };
    let mut max_hops: u32 = 30;
    let mut wait = Duration::from_secs(5);
    let mut numeric = false;
    let mut target = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => numeric = true,
            "-m" => match it.next().and_then(|v| v.parse::<u32>().ok()) {
                Some(m) if (1..=255).contains(&m) => max_hops = m,
                _ => {
                    io.err.line("max hops cannot be more than 255");
                    return 2;
                }
            },
            "-w" => match it.next().map(|v| seconds::parse_finite(v)) {
                Some(Ok(d)) => wait = d,
                _ => {
                    io.err.line("Cannot handle `-w' option");
                    return 2;
                }
            },
            "-4" => family = Family::V4,
            "-6" => family = Family::V6,
            "-I" | "-T" | "-U" => {}
            s if s.starts_with('-') => {
                io.err.line(&format!("Bad option `{s}' (argc 1)"));
                return 2;
            }
            s => target = Some(s.to_string()),
        }
    }
    let Some(target) = target else {
        io.err
            .line("Usage:\n  traceroute [ -n ] [ -m max_ttl ] [ -w waittime ] host");
        return 2;
    };
    let ip = match resolve_ip(sh, &target, family).await {
        Ok(ip) => ip,
        Err(_) => {
            io.err.line(&format!("{target}: Name or service not known"));
            io.err.line(&format!(
                "Cannot handle \"host\" cmdline arg `{target}' on position 1 (argc 1)"
            ));
            return 2;
        }
    };
    // Linux's traceroute probes with 60-byte IPv4 packets and 80-byte IPv6 ones.
    let size = if ip.is_ipv6() { 80 } else { 60 };
    io.out.line(&format!(
        "traceroute to {target} ({ip}), {max_hops} hops max, {size} byte packets"
    ));
    let trace = sh.inst.net().trace(ip, wait).await;
    let mut n = 0;
    for hop in &trace.hops {
        n += 1;
        if n > max_hops {
            break;
        }
        let who = match (&hop.name, numeric) {
            (_, true) => hop.addr.to_string(),
            (Some(name), false) => format!("{name} ({})", hop.addr),
            (None, false) => format!("{} ({})", hop.addr, hop.addr),
        };
        let ms = fmt_ms(hop.rtt);
        io.out
            .line(&format!("{n:>2}  {who}  {ms} ms  {ms} ms  {ms} ms"));
    }
    if !trace.reached {
        while n < max_hops {
            n += 1;
            io.out.line(&format!("{n:>2}  * * *"));
        }
    }
    0
}

fn head_text(resp: &http1::Response) -> String {
    let mut s = format!("{} {} {}\r\n", resp.version, resp.status, resp.reason);
    for (k, v) in &resp.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// A time option of curl (`-m`, `--connect-timeout`). curl refuses a value that is not a
/// proper positive number before any transfer, with status 2, even under `-s`.
fn curl_seconds(opt: &str, value: Option<&String>, io: &mut Io) -> Result<Option<Duration>, i32> {
    let Some(value) = value else {
        return Ok(None);
    };
    let why = match seconds::parse_finite(value) {
        Ok(d) => return Ok(Some(d)),
        Err(seconds::BadSeconds::Negative) => "expected a positive numerical parameter",
        Err(seconds::BadSeconds::NotANumber) => "expected a proper numerical parameter",
    };
    io.err.line(&format!("curl: option {opt}: {why}"));
    io.err
        .line("curl: try 'curl --help' or 'curl --manual' for more information");
    Err(2)
}

pub(super) async fn curl(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut silent = false;
    let mut insecure = false;
    let mut show_error = false;
    let mut head = false;
    let mut include = false;
    let mut verbose = false;
    let mut fail = false;
    let mut follow = false;
    let mut output: Option<String> = None;
    let mut remote_name = false;
    let mut method: Option<String> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut data: Option<String> = None;
    let mut max_time = None;
    let mut connect_timeout = None;
    let mut write_out: Option<String> = None;
    let mut family = Family::Any;
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" | "--silent" => silent = true,
            "-S" | "--show-error" => show_error = true,
            "-sS" | "-Ss" => {
                silent = true;
                show_error = true;
            }
            "-I" | "--head" => head = true,
            "-i" | "--include" => include = true,
            "-v" | "--verbose" => verbose = true,
            "-f" | "--fail" => fail = true,
            "-L" | "--location" => follow = true,
            "-sL" | "-Ls" => {
                silent = true;
                follow = true;
            }
            "-o" | "--output" => output = it.next().cloned(),
            "-O" | "--remote-name" => remote_name = true,
            "-X" | "--request" => method = it.next().cloned(),
            "-H" | "--header" => {
                if let Some(h) = it.next()
                    && let Some((k, v)) = h.split_once(':')
                {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            "-d" | "--data" | "--data-raw" | "--data-binary" => data = it.next().cloned(),
            "-m" | "--max-time" => match curl_seconds(a, it.next(), io) {
                Ok(d) => max_time = d,
                Err(status) => return status,
            },
            "--connect-timeout" => match curl_seconds(a, it.next(), io) {
                Ok(d) => connect_timeout = d,
                Err(status) => return status,
            },
            "-w" | "--write-out" => write_out = it.next().cloned(),
            "-k" | "--insecure" => insecure = true,
            "-4" | "--ipv4" => family = Family::V4,
            "-6" | "--ipv6" => family = Family::V6,
            s if s.starts_with('-') && s.len() > 1 && !s.starts_with("--") => {
                for c in s[1..].chars() {
                    match c {
                        's' => silent = true,
                        'S' => show_error = true,
                        'I' => head = true,
                        'i' => include = true,
                        'v' => verbose = true,
                        'f' => fail = true,
                        'L' => follow = true,
                        'k' => insecure = true,
                        '4' => family = Family::V4,
                        '6' => family = Family::V6,
                        _ => {
                            io.err.line(&format!("curl: option {s}: is unknown"));
                            return 2;
                        }
                    }
                }
            }
            s if s.starts_with("--") => {
                io.err.line(&format!("curl: option {s}: is unknown"));
                return 2;
            }
            s => url = Some(s.to_string()),
        }
    }
    let Some(url_text) = url else {
        io.err.line("curl: no URL specified!");
        io.err
            .line("curl: try 'curl --help' or 'curl --manual' for more information");
        return 2;
    };
    let report = |io: &mut Io, code: i32, msg: &str| {
        if !silent || show_error {
            io.err.line(&format!("curl: ({code}) {msg}"));
        }
        code
    };
    let Some(mut url) = parse_url(&url_text) else {
        return report(io, 3, "URL using bad/illegal format or missing URL");
    };
    if url.scheme != "http" && url.scheme != "https" {
        return report(io, 1, &format!("Protocol \"{}\" not supported", url.scheme));
    }
    let method = method.unwrap_or_else(|| {
        if head {
            "HEAD".to_string()
        } else if data.is_some() {
            "POST".to_string()
        } else {
            "GET".to_string()
        }
    });
    let body = data.unwrap_or_default().into_bytes();
    // What curl sends besides the user's headers, unless the user set them.
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut sent: Vec<(String, String)> = Vec::new();
    if !has("user-agent") {
        sent.push(("User-Agent".into(), "curl/8.5.0".into()));
    }
    if !has("accept") {
        sent.push(("Accept".into(), "*/*".into()));
    }
    sent.extend(headers.iter().cloned());
    if method == "POST" && !has("content-type") {
        sent.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    let mut redirects = 0;
    let fetched = loop {
        if verbose {
            io.err
                .line(&format!("*   Trying {}:{}...", url.host, url.port));
        }
        match fetch(
            sh,
            &url,
            &method,
            &sent,
            &body,
            FetchOpts {
                max_time,
                connect_timeout,
                insecure,
                family,
            },
        )
        .await
        {
            Ok(f) => {
                if verbose {
                    io.err.line(&format!(
                        "* Connected to {} ({}) port {}",
                        url.host, f.ip, url.port
                    ));
                    io.err.line(&format!("> {method} {} HTTP/1.1", url.path));
                    io.err.line(&format!("> Host: {}", url.host));
                    io.err.line("> User-Agent: curl/8.5.0");
                    io.err.line("> Accept: */*");
                    for (k, v) in &headers {
                        io.err.line(&format!("> {k}: {v}"));
                    }
                    io.err.line(">");
                    for line in head_text(&f.resp).lines() {
                        io.err.line(&format!("< {line}"));
                    }
                }
                if follow
                    && (300..400).contains(&f.resp.status)
                    && redirects < 10
                    && let Some(loc) = f.resp.header("location")
                {
                    let next = if loc.starts_with('/') {
                        Some(Url {
                            path: loc.to_string(),
                            ..url.clone()
                        })
                    } else {
                        parse_url(loc)
                    };
                    if let Some(n) = next {
                        url = n;
                        redirects += 1;
                        continue;
                    }
                }
                break f;
            }
            Err(e) => {
                if verbose {
                    io.err.line(&format!("* {}", e.msg));
                    io.err.line("* Closing connection");
                }
                return report(io, e.code, &e.msg);
            }
        }
    };
    let resp = fetched.resp;
    if fail && resp.status >= 400 {
        return report(
            io,
            22,
            &format!("The requested URL returned error: {}", resp.status),
        );
    }
    let mut out = Vec::new();
    if head || include {
        out.extend_from_slice(head_text(&resp).as_bytes());
    }
    if !head {
        out.extend_from_slice(&resp.body);
    }
    if remote_name {
        let name = url
            .path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("index.html");
        output = Some(name.to_string());
    }
    match output {
        Some(path) if path != "-" => {
            if !silent {
                io.err.line("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current");
                io.err.line(
                    "                                 Dload  Upload   Total   Spent    Left  Speed",
                );
                let n = out.len();
                io.err.line(&format!(
                    "100 {n:>5}  100 {n:>5}    0     0   {:>5}      0 --:--:-- --:--:-- --:--:-- {:>5}",
                    n, n
                ));
            }
            if let Err(e) = sh.write_file(&path, &out, false) {
                return report(
                    io,
                    23,
                    &format!(
                        "Failure writing output to destination, passed {} returned 0 ({e})",
                        out.len()
                    ),
                );
            }
        }
        _ => io.out.write(&out),
    }
    if let Some(w) = write_out {
        let w = w
            .replace("%{http_code}", &format!("{:03}", resp.status))
            .replace("%{size_download}", &resp.body.len().to_string())
            .replace("\\n", "\n");
        io.out.print(&w);
    }
    0
}

/// wget's `-T`/`--timeout`: a value that is not a finite, non-negative number is an
/// option error (status 2, wget's "parse error" exit code).
fn wget_seconds(value: &str, io: &mut Io) -> Result<Duration, i32> {
    seconds::parse_finite(value).map_err(|_| {
        io.err.line(&format!(
            "wget: timeout: Invalid time period \u{2018}{value}\u{2019}"
        ));
        2
    })
}

pub(super) async fn wget(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let mut quiet = false;
    let mut insecure = false;
    let mut output: Option<String> = None;
    let mut timeout = None;
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-q" | "--quiet" => quiet = true,
            "--no-check-certificate" => insecure = true,
            "-O" => output = it.next().cloned(),
            "-T" | "--timeout" => {
                if let Some(v) = it.next() {
                    match wget_seconds(v, io) {
                        Ok(d) => timeout = Some(d),
                        Err(status) => return status,
                    }
                }
            }
            "-qO-" => {
                quiet = true;
                output = Some("-".to_string());
            }
            s if s.starts_with("--timeout=") => match wget_seconds(&s[10..], io) {
                Ok(d) => timeout = Some(d),
                Err(status) => return status,
            },
            s if s.starts_with('-') => {}
            s => url = Some(s.to_string()),
        }
    }
    let Some(url_text) = url else {
        io.err.line("wget: missing URL");
        return 1;
    };
    let Some(url) = parse_url(&url_text) else {
        io.err.line(&format!("{url_text}: Invalid URL"));
        return 1;
    };
    let shown = format!(
        "{}://{}{}",
        url.scheme,
        if url.port == 80 {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        },
        url.path
    );
    let now = time::OffsetDateTime::from_unix_timestamp(crate::instance::unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = now
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    if !quiet {
        io.err.line(&format!("--{stamp}--  {shown}"));
    }
    let ip = match resolve(sh, &url.host).await {
        Ok(ip) => ip,
        Err(_) => {
            if !quiet {
                io.err.line(&format!(
                    "Resolving {} ({})... failed: Name or service not known.",
                    url.host, url.host
                ));
                io.err.line(&format!(
                    "wget: unable to resolve host address ‘{}’",
                    url.host
                ));
            }
            return 4;
        }
    };
    if !quiet {
        io.err
            .print(&format!("Connecting to {}:{}... ", ip, url.port));
    }
    let agent = [
        ("User-Agent".to_string(), "Wget/1.21.4".to_string()),
        ("Accept".to_string(), "*/*".to_string()),
    ];
    let fetched = fetch(
        sh,
        &url,
        "GET",
        &agent,
        &[],
        FetchOpts {
            max_time: None,
            connect_timeout: Some(timeout.unwrap_or(LINUX_CONNECT_TIMEOUT)),
            insecure,
            family: Family::Any,
        },
    )
    .await;
    let resp = match fetched {
        Ok(f) => f.resp,
        Err(e) => {
            if !quiet {
                let why = match e.code {
                    7 => "Connection refused.",
                    28 => "Connection timed out.",
                    _ => "Read error.",
                };
                io.err.line(&format!("failed: {why}"));
            }
            return 4;
        }
    };
    if !quiet {
        io.err.line("connected.");
        io.err.line(&format!(
            "HTTP request sent, awaiting response... {} {}",
            resp.status, resp.reason
        ));
    }
    if resp.status >= 400 {
        if !quiet {
            io.err
                .line(&format!("{stamp} ERROR {}: {}.", resp.status, resp.reason));
            io.err.line("");
        }
        return 8;
    }
    let name = output.unwrap_or_else(|| {
        url.path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("index.html")
            .to_string()
    });
    if !quiet {
        let ctype = resp
            .header("content-type")
            .unwrap_or("text/plain")
            .to_string();
        io.err
            .line(&format!("Length: {} [{ctype}]", resp.body.len()));
        io.err.line(&format!(
            "Saving to: ‘{}’",
            if name == "-" { "STDOUT" } else { &name }
        ));
        io.err.line("");
        io.err.line(&format!(
            "{name:<20}100%[===================>] {:>7}  --.-KB/s    in 0s",
            resp.body.len()
        ));
        io.err.line("");
        io.err.line(&format!(
            "{stamp} (1.00 MB/s) - ‘{name}’ saved [{}/{}]",
            resp.body.len(),
            resp.body.len()
        ));
        io.err.line("");
    }
    if name == "-" {
        io.out.write(&resp.body);
    } else if let Err(e) = sh.write_file(&name, &resp.body, false) {
        io.err.line(&format!("{name}: {e}"));
        return 3;
    }
    0
}

/// `nc` and `ncat`.
pub(super) async fn nc(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let ubuntu = sh.inst.profile().image == crate::instance::Image::Ubuntu2404;
    let mut zero = false;
    let mut verbose = false;
    let mut listen = false;
    let mut wait = None;
    let mut family = Family::Any;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-w" => {
                if let Some(v) = it.next() {
                    match nc_seconds(v, ubuntu, io) {
                        Ok(d) => wait = Some(d),
                        Err(status) => return status,
                    }
                }
            }
            s if s.starts_with('-') => {
                for c in s[1..].chars() {
                    match c {
                        'z' => zero = true,
                        'v' => verbose = true,
                        'l' => listen = true,
                        '4' => family = Family::V4,
                        '6' => family = Family::V6,
                        _ => {}
                    }
                }
            }
            s => rest.push(s.to_string()),
        }
    }
    if listen {
        io.err.line("nc: listening is not emulated in vpclab (use a web server: sudo systemctl start httpd)");
        return 1;
    }
    let (Some(host), Some(port)) = (rest.first(), rest.get(1)) else {
        io.err
            .line("usage: nc [-46CDdFhklNnrStUuvZz] [-w timeout] [destination] [port]");
        return 1;
    };
    let Ok(port) = port.parse::<u16>() else {
        io.err.line(&format!("nc: port number invalid: {port}"));
        return 1;
    };
    let ip = match resolve_ip(sh, host, family).await {
        Ok(ip) => ip,
        Err(_) => {
            if ubuntu {
                io.err.line(&format!(
                    "nc: getaddrinfo for host \"{host}\" port {port}: Name or service not known"
                ));
            } else {
                io.err.line(&format!("Ncat: Could not resolve hostname \"{host}\": Name or service not known. QUITTING."));
            }
            return 1;
        }
    };
    if verbose && !ubuntu {
        io.err.line("Ncat: Version 7.93 ( https://nmap.org/ncat )");
    }
    // Ncat's default connect timeout is 10 s; OpenBSD nc waits for the kernel.
    let timeout = wait.unwrap_or(if ubuntu {
        LINUX_CONNECT_TIMEOUT
    } else {
        Duration::from_secs(10)
    });
    match connect_ip(sh, SocketAddr::new(ip, port), timeout).await {
        Ok(mut stream) => {
            if verbose {
                if ubuntu {
                    let svc = match port {
                        22 => "[tcp/ssh]",
                        80 => "[tcp/http]",
                        443 => "[tcp/https]",
                        _ => "[tcp/*]",
                    };
                    io.err.line(&format!(
                        "Connection to {host} {port} port {svc} succeeded!"
                    ));
                } else {
                    io.err.line(&format!(
                        "Ncat: Connected to {}.",
                        SocketAddr::new(ip, port)
                    ));
                }
            }
            if zero {
                if verbose && !ubuntu {
                    io.err
                        .line("Ncat: 0 bytes sent, 0 bytes received in 0.01 seconds.");
                }
                return 0;
            }
            let input = io.stdin.read_all().await;
            if stream.write_all(&input).await.is_err() {
                return 1;
            }
            let _ = stream.flush().await;
            let mut buf = Vec::new();
            let read = stream.read_to_end(&mut buf);
            let _ = tokio::time::timeout(wait.unwrap_or(Duration::from_secs(10)), read).await;
            io.out.write(&buf);
            0
        }
        Err(e) => {
            if ubuntu {
                match e.kind() {
                    io::ErrorKind::TimedOut => io.err.line(&format!("nc: connect to {host} port {port} (tcp) timed out: Operation now in progress")),
                    _ => io.err.line(&format!("nc: connect to {host} port {port} (tcp) failed: Connection refused")),
                }
            } else {
                match e.kind() {
                    io::ErrorKind::TimedOut => io.err.line("Ncat: TIMEOUT."),
                    _ => io.err.line("Ncat: Connection refused."),
                }
            }
            1
        }
    }
}

/// `nc -w`. Amazon Linux's nc is Ncat, which wants a timeout above zero and quits with
/// status 2; Ubuntu's is OpenBSD netcat, which reads the value with `strtonum` and exits
/// with status 1.
fn nc_seconds(value: &str, ubuntu: bool, io: &mut Io) -> Result<Duration, i32> {
    match (seconds::parse_finite(value), ubuntu) {
        (Ok(d), true) => Ok(d),
        (Ok(d), false) if !d.is_zero() => Ok(d),
        (Err(seconds::BadSeconds::Negative), true) => {
            io.err.line(&format!("nc: timeout too small: {value}"));
            Err(1)
        }
        (Err(_), true) => {
            io.err.line(&format!("nc: timeout invalid: {value}"));
            Err(1)
        }
        (_, false) => {
            io.err
                .line("Ncat: Invalid -w timeout (must be greater than 0). QUITTING.");
            Err(2)
        }
    }
}

fn rcode_name(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// `dig`, `nslookup` and `host`.
pub(super) async fn dns_tool(sh: &mut Shell, tool: &str, args: &[String], io: &mut Io) -> i32 {
    let mut server = None;
    let mut rtype = RecordType::A;
    let mut short = false;
    let mut name: Option<String> = None;
    let mut reverse = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(s) = a.strip_prefix('@') {
            server = s.parse::<IpAddr>().ok();
        } else if a == "+short" {
            short = true;
        } else if a.starts_with('+') {
        } else if a == "-t" || a == "-type" {
            if let Some(t) = it.next() {
                rtype = t.to_ascii_uppercase().parse().unwrap_or(RecordType::A);
            }
        } else if let Some(t) = a
            .strip_prefix("-type=")
            .or_else(|| a.strip_prefix("-query="))
        {
            rtype = t.to_ascii_uppercase().parse().unwrap_or(RecordType::A);
        } else if a == "-x" {
            reverse = true;
        } else if a.starts_with('-') {
        } else if name.is_none() {
            name = Some(a.clone());
        } else if tool == "dig"
            && let Ok(t) = a.to_ascii_uppercase().parse::<RecordType>()
        {
            rtype = t;
        } else if let Ok(ip) = a.parse::<IpAddr>() {
            // `nslookup name server`, `host name server`.
            server = Some(ip);
        }
    }
    let Some(mut name) = name else {
        if tool == "dig" {
            io.err
                .line("dig: a name to look up is required in this emulation");
        } else {
            io.err.line(&format!("Usage: {tool} NAME [SERVER]"));
        }
        return 1;
    };
    if (reverse || tool != "dig")
        && let Ok(ip) = name.parse::<Ipv4Addr>()
    {
        let o = ip.octets();
        name = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        rtype = RecordType::PTR;
    } else if (reverse || tool != "dig")
        && let Ok(ip) = name.parse::<Ipv6Addr>()
    {
        // RFC 3596 §2.5: the address's 32 nibbles, last first, under ip6.arpa.
        let hex = format!("{:032x}", u128::from(ip));
        let nibbles: Vec<String> = hex.chars().rev().map(String::from).collect();
        name = format!("{}.ip6.arpa", nibbles.join("."));
        rtype = RecordType::PTR;
    }
    let server = server.unwrap_or_else(|| resolver(sh));
    let tries = if tool == "dig" { 3 } else { 2 };
    let started = tokio::time::Instant::now();
    let mut answer = None;
    for _ in 0..tries {
        match dns_query(sh, server, &name, rtype, Duration::from_secs(5)).await {
            DnsOutcome::Answer(m) => {
                answer = Some(m);
                break;
            }
            DnsOutcome::Timeout | DnsOutcome::Garbled => {
                io.out.line(&format!(
                    ";; communications error to {server}#53: timed out"
                ));
            }
            DnsOutcome::Refused => {
                io.out.line(&format!(
                    ";; communications error to {server}#53: connection refused"
                ));
            }
            DnsOutcome::Unreachable => {
                io.out.line(&format!(
                    ";; UDP setup with {server}#53({server}) for {name} failed: network unreachable."
                ));
            }
        }
    }
    let Some(m) = answer else {
        io.out.line(";; no servers could be reached");
        if tool == "dig" {
            io.out.line("");
        }
        return if tool == "dig" { 9 } else { 1 };
    };
    let fqdn = if name.ends_with('.') {
        name.clone()
    } else {
        format!("{name}.")
    };
    let rcode = m.metadata.response_code;
    match tool {
        "dig" if short => {
            for r in &m.answers {
                io.out.line(&r.data.to_string());
            }
            0
        }
        "dig" => {
            io.out.line("");
            io.out
                .line(&format!("; <<>> DiG 9.18.28 <<>> {}", args.join(" ")));
            io.out.line(";; global options: +cmd");
            io.out.line(";; Got answer:");
            io.out.line(&format!(
                ";; ->>HEADER<<- opcode: QUERY, status: {}, id: {}",
                rcode_name(rcode),
                m.metadata.id
            ));
            let mut flags = vec!["qr"];
            if m.metadata.authoritative {
                flags.push("aa");
            }
            flags.push("rd");
            if m.metadata.recursion_available {
                flags.push("ra");
            }
            io.out.line(&format!(
                ";; flags: {}; QUERY: 1, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
                flags.join(" "),
                m.answers.len(),
                m.authorities.len(),
                m.additionals.len()
            ));
            io.out.line("");
            io.out.line(";; QUESTION SECTION:");
            io.out.line(&format!(";{fqdn}\t\t\tIN\t{rtype}"));
            for (title, records) in [("ANSWER", &m.answers), ("AUTHORITY", &m.authorities)] {
                if records.is_empty() {
                    continue;
                }
                io.out.line("");
                io.out.line(&format!(";; {title} SECTION:"));
                for r in records.iter() {
                    io.out.line(&format!(
                        "{}\t\t{}\tIN\t{}\t{}",
                        r.name,
                        r.ttl,
                        r.record_type(),
                        r.data
                    ));
                }
            }
            io.out.line("");
            io.out.line(&format!(
                ";; Query time: {} msec",
                started.elapsed().as_millis()
            ));
            io.out
                .line(&format!(";; SERVER: {server}#53({server}) (UDP)"));
            let now = time::OffsetDateTime::from_unix_timestamp(crate::instance::unix_now())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            io.out.line(&format!(
                ";; WHEN: {}",
                now.format(&time::macros::format_description!(
                    "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] UTC [year]"
                ))
                .unwrap_or_default()
            ));
            io.out.line(&format!(
                ";; MSG SIZE  rcvd: {}",
                m.to_vec().map(|v| v.len()).unwrap_or(0)
            ));
            io.out.line("");
            0
        }
        "nslookup" => {
            io.out.line(&format!("Server:\t\t{server}"));
            io.out.line(&format!("Address:\t{server}#53"));
            io.out.line("");
            if rcode != ResponseCode::NoError {
                io.out.line(&format!(
                    "** server can't find {name}: {}",
                    rcode_name(rcode)
                ));
                io.out.line("");
                return 1;
            }
            if !m.metadata.authoritative {
                io.out.line("Non-authoritative answer:");
            }
            for r in &m.answers {
                match &r.data {
                    RData::A(a) => {
                        io.out.line(&format!(
                            "Name:\t{}",
                            r.name.to_string().trim_end_matches('.')
                        ));
                        io.out.line(&format!("Address: {}", a.0));
                    }
                    RData::CNAME(c) => io.out.line(&format!(
                        "{}\tcanonical name = {}",
                        r.name.to_string().trim_end_matches('.'),
                        c.0
                    )),
                    RData::PTR(p) => io.out.line(&format!(
                        "{}\tname = {}",
                        r.name.to_string().trim_end_matches('.'),
                        p.0
                    )),
                    other => io.out.line(&format!(
                        "{}\t{other}",
                        r.name.to_string().trim_end_matches('.')
                    )),
                }
            }
            io.out.line("");
            0
        }
        _ => {
            if rcode != ResponseCode::NoError {
                io.out.line(&format!(
                    "Host {} not found: {}({})",
                    name,
                    u16::from(rcode),
                    rcode_name(rcode)
                ));
                return 1;
            }
            for r in &m.answers {
                let owner = r.name.to_string();
                let owner = owner.trim_end_matches('.');
                match &r.data {
                    RData::A(a) => io.out.line(&format!("{owner} has address {}", a.0)),
                    RData::CNAME(c) => io.out.line(&format!(
                        "{owner} is an alias for {}.",
                        c.0.to_string().trim_end_matches('.')
                    )),
                    RData::PTR(p) => io.out.line(&format!("{owner} domain name pointer {}", p.0)),
                    other => io
                        .out
                        .line(&format!("{owner} has {} record {other}", r.record_type())),
                }
            }
            0
        }
    }
}

pub(super) fn ss(sh: &mut Shell, _: &str, args: &[String], io: &mut Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-'))
        .map(|a| a.trim_start_matches('-'))
        .collect();
    let show_proc = flags.contains('p') && sh.user == "root";
    let listening = flags.contains('l');
    let tcp = flags.contains('t') || !flags.contains('u');
    if flags.contains('p') && sh.user != "root" {
        // Like the real ss, processes of other users are not shown without root.
    }
    io.out
        .line("State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess");
    if !tcp || !listening {
        return 0;
    }
    let mut rows: Vec<(String, u16, String)> = vec![
        ("0.0.0.0".into(), 22, "sshd".into()),
        ("[::]".into(), 22, "sshd".into()),
    ];
    for (unit, port) in crate::instance::services::listening(&sh.inst) {
        rows.push(("*".into(), port, unit));
    }
    for (addr, port, proc_name) in rows {
        let peer = if addr == "[::]" {
            "[::]:*"
        } else if addr == "*" {
            "*:*"
        } else {
            "0.0.0.0:*"
        };
        let backlog = if proc_name == "sshd" { 128 } else { 511 };
        let process = if show_proc {
            format!(
                "users:((\"{proc_name}\",pid={},fd=3))",
                1000 + u32::from(port)
            )
        } else {
            String::new()
        };
        io.out.line(&format!(
            "LISTEN 0      {backlog:<6} {:>13}:{port:<5} {peer:>13}    {process}",
            addr
        ));
    }
    0
}

/// `ssh` from the instance (the bastion hop): the connection goes through the
/// instance's stack, the key file is checked like OpenSSH checks it, then
/// [`super::sshclient`] logs in; `scp` copies one file either way over SFTP.
pub(super) async fn ssh_client(sh: &mut Shell, tool: &str, args: &[String], io: &mut Io) -> i32 {
    let mut key: Option<String> = None;
    let mut port = 22u16;
    let mut target = None;
    let mut login_name = None;
    let mut no_host_check = false;
    let mut rest: Vec<String> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if target.is_some() && tool == "ssh" {
            rest.push(a.clone());
            continue;
        }
        match a.as_str() {
            "-i" => key = it.next().cloned(),
            "-p" | "-P" => port = it.next().and_then(|p| p.parse().ok()).unwrap_or(22),
            "-l" => login_name = it.next().cloned(),
            "-o" => {
                if let Some(o) = it.next() {
                    let o = o.to_ascii_lowercase().replace(' ', "=");
                    if o == "stricthostkeychecking=no" || o == "stricthostkeychecking=accept-new" {
                        no_host_check = true;
                    }
                }
            }
            "-F" | "-J" => {
                let _ = it.next();
            }
            s if s.starts_with('-') => {}
            s => {
                if tool == "scp" {
                    positional.push(s.to_string());
                    if !s.contains(':') || target.is_some() {
                        continue;
                    }
                }
                target = Some(s.to_string());
            }
        }
    }
    let Some(target) = target else {
        io.err.line(&format!(
            "usage: {tool} [-i identity_file] [-p port] destination [command]"
        ));
        return 255;
    };
    let host_part = target.split(':').next().unwrap_or(&target);
    let (user, host) = match host_part.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h.to_string()),
        None => (
            login_name.unwrap_or_else(|| sh.user.clone()),
            host_part.to_string(),
        ),
    };
    let mut identity_ignored = false;
    if let Some(k) = &key {
        let abs = sh.abs(k);
        let node = sh.inst.lock_disk().fs.get(&abs).cloned();
        match node {
            None => io.err.line(&format!(
                "Warning: Identity file {k} not accessible: No such file or directory."
            )),
            Some(n) if n.mode & 0o077 != 0 => {
                identity_ignored = true;
                io.err
                    .line("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
                io.err
                    .line("@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @");
                io.err
                    .line("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
                io.err.line(&format!(
                    "Permissions 0{:o} for '{k}' are too open.",
                    n.mode
                ));
                io.err.line(
                    "It is required that your private key files are NOT accessible by others.",
                );
                io.err.line("This private key will be ignored.");
                io.err.line(&format!("Load key \"{k}\": bad permissions"));
            }
            Some(_) => {}
        }
    }
    let ip = match resolve(sh, &host).await {
        Ok(ip) => ip,
        Err(_) => {
            io.err.line(&format!(
                "ssh: Could not resolve hostname {host}: Name or service not known"
            ));
            return 255;
        }
    };
    match connect(sh, SocketAddrV4::new(ip, port), LINUX_CONNECT_TIMEOUT).await {
        Err(e) => {
            let why = match e.kind() {
                io::ErrorKind::TimedOut => "Connection timed out",
                io::ErrorKind::ConnectionRefused => "Connection refused",
                _ => "No route to host",
            };
            io.err
                .line(&format!("ssh: connect to host {host} port {port}: {why}"));
            if tool == "scp" {
                io.err.line("scp: Connection closed");
            }
            255
        }
        Ok(stream) if tool == "scp" => {
            let remote_path = |spec: &str| {
                spec.split_once(':')
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_default()
            };
            let copy = match positional.as_slice() {
                [src, dst] if dst.contains(':') && !src.contains(':') => {
                    super::sshclient::Copy::Up {
                        local: src.clone(),
                        remote: remote_path(dst),
                    }
                }
                [src, dst] if src.contains(':') && !dst.contains(':') => {
                    super::sshclient::Copy::Down {
                        remote: remote_path(src),
                        local: dst.clone(),
                    }
                }
                _ => {
                    io.err.line(
                        "vpclab: scp from an instance copies one file, to or from one other host",
                    );
                    return 1;
                }
            };
            let login = super::sshclient::Login {
                host,
                port,
                user,
                identity: key.map(|k| sh.abs(&k)),
                identity_ignored,
                no_host_check,
                command: None,
            };
            super::sshclient::scp(sh, io, stream, login, copy).await
        }
        Ok(stream) => {
            let login = super::sshclient::Login {
                host,
                port,
                user,
                identity: key.map(|k| sh.abs(&k)),
                identity_ignored,
                no_host_check,
                command: if rest.is_empty() {
                    None
                } else {
                    Some(rest.join(" "))
                },
            };
            super::sshclient::run(sh, io, stream, login).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986: an IPv6 literal in a URL is bracketed; curl connects to the address
    /// inside the brackets.
    #[test]
    fn url_parsing_takes_bracketed_ipv6_literals() {
        let u = parse_url("http://[2001:db8:1:1::10]:8080/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("2001:db8:1:1::10", 8080, "/x")
        );
        let u = parse_url("[2606:4700:4700::1111]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2606:4700:4700::1111", 80));
        assert_eq!(parse_url("http://[not-an-address]/"), None);
        assert_eq!(parse_url("http://[2001:db8::1]x/"), None);
    }

    /// Linux's link-local address from a MAC: the universal/local bit flipped and
    /// ff:fe in the middle (modified EUI-64, RFC 4291 appendix A).
    #[test]
    fn link_local_addresses_follow_modified_eui64() {
        assert_eq!(
            link_local("02:ab:cd:ef:01:02"),
            Some("fe80::ab:cdff:feef:102".parse().unwrap())
        );
        assert_eq!(link_local("not a mac"), None);
    }

    #[test]
    fn url_parsing_defaults_scheme_port_and_path() {
        assert_eq!(
            parse_url("10.0.1.5"),
            Some(Url {
                scheme: "http".into(),
                host: "10.0.1.5".into(),
                port: 80,
                path: "/".into()
            })
        );
        assert_eq!(
            parse_url("http://169.254.169.254/latest/meta-data/instance-id"),
            Some(Url {
                scheme: "http".into(),
                host: "169.254.169.254".into(),
                port: 80,
                path: "/latest/meta-data/instance-id".into()
            })
        );
        assert_eq!(parse_url("https://x:8443").map(|u| u.port), Some(8443));
    }
}

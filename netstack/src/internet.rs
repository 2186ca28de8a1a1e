//! The simulated internet of a world: the services outside every VPC, and
//! the learner's computer.
//!
//! All of them are hosts at [`Port::Internet`](crate::Port::Internet) (MTU 1500), found by their
//! address (ARCHITECTURE.md, "Address plan"):
//!
//! | address | what |
//! | --- | --- |
//! | [`WHATISMYIP_ADDR`] (192.0.2.10) | "what is my IP": answers any HTTP request with the source address it sees, like `checkip.amazonaws.com`; the NAT gateway lesson |
//! | [`MIRROR_ADDR`] (192.0.2.20) | an HTTP package mirror over an in-memory file map the instance runtime fills ([`Mirror`]) |
//! | [`PUBLIC_DNS_ADDR`] (192.0.2.53) | reserved for the public DNS resolver (served by the `dns` module, not here) |
//! | [`WEB_ADDR`] (192.0.2.80) | a small web site |
//! | 192.0.2.96/29 | reserved for the Route 53 health checkers (attached by vpclab's `world::health`) |
//! | [`LEARNER_ADDR`] (203.0.113.10) | the learner's computer, as the VPC sees it |
//!
//! Learner access ([`Internet::learner_connect`]) opens a TCP connection
//! from the learner's address into the world and splices it to any byte
//! stream (what `vpclab connect` runs). Names for these addresses are the
//! DNS module's business.

pub mod http;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use crate::host::{Host, HostConfig, Net, NetError, TcpStream};
use http::{Request, Response};

/// The "what is my IP" service.
pub const WHATISMYIP_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The package mirror.
pub const MIRROR_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
/// The public DNS resolver (not started here).
pub const PUBLIC_DNS_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The web site.
pub const WEB_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
/// The learner's computer.
pub const LEARNER_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// The package mirror's files: path (such as `/repo/x86_64/httpd.rpm`) to
/// content. Cheap to clone; changes are seen by the next request.
#[derive(Clone, Default)]
pub struct Mirror {
    files: Arc<RwLock<BTreeMap<String, Bytes>>>,
}

impl Mirror {
    /// Publish `content` at `path` (a leading `/` is added if missing).
    pub fn put(&self, path: &str, content: impl Into<Bytes>) {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path, content.into());
    }

    /// Withdraw a file.
    pub fn remove(&self, path: &str) {
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<Bytes> {
        self.files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
    }

    /// Published paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn handle(&self, req: &Request) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::new(405, "text/plain", "Method Not Allowed\n");
        }
        let path = req.path.split('?').next().unwrap_or("/");
        if path == "/" {
            let mut index = String::new();
            for p in self.paths() {
                index.push_str(&p);
                index.push('\n');
            }
            return Response::new(200, "text/plain", index);
        }
        match self.get(path) {
            Some(body) => Response::new(200, "application/octet-stream", body.to_vec()),
            None => Response::not_found(),
        }
    }
}

fn what_is_my_ip(req: &Request) -> Response {
    Response::new(200, "text/plain", format!("{}\n", req.peer.ip()))
}

const WEB_PAGE: &str = "<!doctype html>\n<html><head><title>vpclab example site</title></head>\n<body><h1>It works</h1>\n<p>You reached a web site on the simulated internet of your vpclab world.</p>\n</body></html>\n";

fn website(req: &Request) -> Response {
    match req.path.as_str() {
        "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", WEB_PAGE),
        _ => Response::not_found(),
    }
}

/// The running internet services of one world and the learner's host.
/// Dropping it stops the services and detaches their hosts.
pub struct Internet {
    whatismyip: Host,
    mirror_host: Host,
    web: Host,
    learner: Host,
    mirror: Mirror,
    tasks: Vec<JoinHandle<()>>,
}

impl Internet {
    /// Attach the internet hosts to `net` and start their HTTP servers on
    /// port 80. Call inside a tokio runtime.
    pub fn start(net: &Net) -> Result<Internet, NetError> {
        let whatismyip = net.add_host(HostConfig::internet(WHATISMYIP_ADDR))?;
        let mirror_host = net.add_host(HostConfig::internet(MIRROR_ADDR))?;
        let web = net.add_host(HostConfig::internet(WEB_ADDR))?;
        let learner = net.add_host(HostConfig::internet(LEARNER_ADDR))?;
        let mirror = Mirror::default();
        let listen = |h: &Host| h.listen(80).map_err(|_| NetError::HostGone);
        let (l1, l2, l3) = (listen(&whatismyip)?, listen(&mirror_host)?, listen(&web)?);
        let m = mirror.clone();
        let tasks = vec![
            tokio::spawn(http::serve(l1, what_is_my_ip)),
            tokio::spawn(http::serve(l2, move |r: &Request| m.handle(r))),
            tokio::spawn(http::serve(l3, website)),
        ];
        Ok(Internet {
            whatismyip,
            mirror_host,
            web,
            learner,
            mirror,
            tasks,
        })
    }

    /// The package mirror's file map.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The learner's computer.
    pub fn learner(&self) -> &Host {
        &self.learner
    }

    /// Open a TCP connection from the learner's address to `dst` inside the
    /// world (it crosses the internet gateway, NACLs and security groups like
    /// any other) and copy bytes both ways between it and `io` until both
    /// sides are done. Returns the bytes sent into the world and received.
    pub async fn learner_connect<S>(&self, dst: SocketAddrV4, io: S) -> io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.learner.connect(dst).await?;
        splice(stream, io).await
    }
}

/// Copy bytes both ways between a world connection and any byte stream
/// until both directions have ended (a FIN on one side becomes a FIN on the
/// other). Returns (bytes from `io` into the world, bytes out of it).
pub async fn splice<S>(mut stream: TcpStream, mut io: S) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (out, back) = tokio::io::copy_bidirectional(&mut io, &mut stream).await?;
    Ok((out, back))
}

impl Drop for Internet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for h in [
            &self.whatismyip,
            &self.mirror_host,
            &self.web,
            &self.learner,
        ] {
            h.remove();
        }
    }
}

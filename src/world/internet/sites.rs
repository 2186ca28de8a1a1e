//! The web services of the simulated internet, as [`http1`] handlers: "what is my IP", the
//! package mirror and a small web site.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::http1::{self, Request, Response};

/// The package mirror's files: path (such as `/repo/x86_64/httpd.rpm`) to content. Cheap
/// to clone; changes are seen by the next request.
///
/// The package managers only need an answer from the mirror (the packages themselves
/// come from `instance::services::catalog`), so a world's mirror starts empty.
#[derive(Clone, Default)]
pub struct Mirror {
    files: Arc<RwLock<BTreeMap<String, Bytes>>>,
}

impl Mirror {
    /// Publishes `content` at `path` (a leading `/` is added if missing).
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

    /// Withdraws a file.
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

    /// The mirror's HTTP answer: a file, or the list of files at `/`.
    pub fn handler(&self) -> http1::Handler {
        let mirror = self.clone();
        Arc::new(move |req: &Request| site(mirror.answer(req)))
    }

    fn answer(&self, req: &Request) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::new(405, "text/plain", "Method Not Allowed\n");
        }
        let path = req.path();
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

/// The headers every site of the simulated internet adds: one request per connection,
/// and who answered.
fn site(resp: Response) -> Response {
    resp.with_header("Connection", "close")
        .with_header("Server", "vpclab")
}

/// "What is my IP": the source address the service sees, after any NAT, like
/// `checkip.amazonaws.com`. The NAT gateway lesson reads it.
pub fn what_is_my_ip() -> http1::Handler {
    Arc::new(|req: &Request| {
        site(Response::new(
            200,
            "text/plain",
            format!("{}\n", req.peer.ip()),
        ))
    })
}

const WEB_PAGE: &str = "<!doctype html>\n<html><head><title>vpclab example site</title></head>\n<body><h1>It works</h1>\n<p>You reached a web site on the simulated internet of your vpclab world.</p>\n</body></html>\n";

/// A one-page web site.
pub fn website() -> http1::Handler {
    Arc::new(|req: &Request| {
        site(match req.path() {
            "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", WEB_PAGE),
            _ => Response::not_found(),
        })
    })
}

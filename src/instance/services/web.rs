//! The web servers (`httpd`, `nginx`, `apache2`): each running unit listens on port 80
//! through [`InstanceNet::tcp_listen`](crate::instance::net::InstanceNet::tcp_listen) and
//! serves files from its document root on the instance's filesystem, as the web server's
//! user would read them, with the real server's error pages and an access log learners
//! can `tail`. The server binaries themselves (`httpd -v`) answer here too.

use std::sync::{Arc, Weak};

use super::catalog::web_unit;
use crate::http1::{self, Request, Response};
use crate::instance::image::Image;
use crate::instance::net::NetListener;
use crate::instance::shell::{Io, Shell};
use crate::instance::vfs::{self, Cred};
use crate::instance::{InstanceState, unix_now};

/// `httpd -v`, `nginx -v` …: the version line. Run without `-v`, the binary points the
/// learner at systemctl, which is how the emulation runs servers.
pub(crate) async fn server_binary(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> i32 {
    let image = sh.inst.profile().image;
    if args.iter().any(|a| a == "-v" || a == "-V") {
        let line = match name {
            "nginx" => format!(
                "nginx version: {}",
                web_unit(image, "nginx").map_or("nginx", |u| u.server)
            ),
            _ => format!(
                "Server version: {}",
                web_unit(
                    image,
                    if image == Image::Ubuntu2404 {
                        "apache2"
                    } else {
                        "httpd"
                    }
                )
                .map_or("Apache", |u| u.server)
            ),
        };
        io.err.line(&line);
        0
    } else {
        io.err.line(&format!(
            "{name}: start the service with: sudo systemctl start {name}"
        ));
        1
    }
}

/// Accepts connections on the unit's port-80 listener until the unit is stopped (its task
/// aborted), serving each connection in a task of its own.
pub(super) async fn accept_loop(
    mut listener: Box<dyn NetListener>,
    inst: Weak<InstanceState>,
    unit: String,
) {
    let handler: http1::Handler = Arc::new(move |req: &Request| match inst.upgrade() {
        Some(inst) => web_response(&inst, &unit, req),
        // The instance is gone; its listener is about to be.
        None => Response::new(503, "text/plain", "Service Unavailable\n"),
    });
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            return;
        };
        tokio::spawn(http1::serve_connection(stream, peer, handler.clone()));
    }
}

/// One request to a web unit: the file under its document root (or the index of a
/// directory), the server's own error pages, and a line in its access log.
fn web_response(inst: &InstanceState, unit: &str, req: &Request) -> Response {
    let image = inst.profile().image;
    let Some(web) = web_unit(image, unit) else {
        return Response::new(500, "text/plain", "Internal Server Error\n");
    };
    let peer = req.peer;
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .to_string();
    let full = vfs::normalize(web.docroot, path.trim_start_matches('/'));
    let mut disk = inst.lock_disk();
    let mut status = 200;
    let mut ctype = content_type(&full);
    let body: Vec<u8> = if !full.starts_with(web.docroot) {
        status = 403;
        ctype = "text/html; charset=iso-8859-1";
        error_html(
            web.server,
            403,
            "Forbidden",
            "You don't have permission to access this resource.",
        )
    } else if disk.fs.is_dir(&full) {
        let found = web
            .index
            .iter()
            .map(|i| format!("{}/{i}", full.trim_end_matches('/')))
            .find(|p| disk.fs.exists(p));
        match found.and_then(|p| {
            disk.fs
                .read(&p, Cred { uid: 48, gid: 48 })
                .ok()
                .map(<[u8]>::to_vec)
        }) {
            Some(b) => {
                ctype = "text/html; charset=UTF-8";
                b
            }
            None if unit == "httpd" && path == "/" => {
                // Amazon Linux's welcome page: an empty document root answers 403 "It works!".
                status = 403;
                ctype = "text/html; charset=UTF-8";
                b"<html><body><h1>It works!</h1></body></html>\n".to_vec()
            }
            None => {
                status = 403;
                ctype = "text/html";
                error_html(
                    web.server,
                    403,
                    "Forbidden",
                    "You don't have permission to access this resource.",
                )
            }
        }
    } else {
        match disk.fs.read(&full, Cred { uid: 48, gid: 48 }) {
            Ok(b) => b.to_vec(),
            Err(vfs::FsError::PermissionDenied) => {
                status = 403;
                ctype = "text/html";
                error_html(
                    web.server,
                    403,
                    "Forbidden",
                    "You don't have permission to access this resource.",
                )
            }
            Err(_) => {
                status = 404;
                ctype = "text/html; charset=iso-8859-1";
                error_html(
                    web.server,
                    404,
                    "Not Found",
                    "The requested URL was not found on this server.",
                )
            }
        }
    };
    // An access log, as learners `tail` it to see their requests arrive.
    let log = if image == Image::Ubuntu2404 {
        format!("/var/log/{unit}/access.log")
    } else {
        format!("/var/log/{unit}/access_log")
    };
    let when = time::OffsetDateTime::from_unix_timestamp(unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = when
        .format(&time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let line = format!(
        "{} - - [{stamp}] \"{} {} {}\" {} {} \"-\" \"{}\"\n",
        peer.ip(),
        req.method,
        req.target,
        req.version,
        status,
        body.len(),
        req.header("user-agent").unwrap_or("-")
    );
    if !disk.fs.exists(vfs::parent(&log)) {
        disk.fs.install_dir(vfs::parent(&log), 0o700, Cred::ROOT);
    }
    let _ = disk
        .fs
        .write(&log, line.as_bytes(), true, Cred::ROOT, 0o644);
    drop(disk);
    // Apache and nginx send `Server` first.
    let mut resp = Response::new(status, ctype, body);
    resp.headers
        .insert(0, ("Server".to_string(), web.server.to_string()));
    resp
}

pub(crate) fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html" | "htm") => "text/html; charset=UTF-8",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "text/plain; charset=UTF-8",
    }
}

pub(crate) fn error_html(server: &str, code: u16, title: &str, msg: &str) -> Vec<u8> {
    if server.starts_with("nginx") {
        format!("<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n").into_bytes()
    } else {
        format!("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{code} {title}</title>\n</head><body>\n<h1>{title}</h1>\n<p>{msg}</p>\n</body></html>\n").into_bytes()
    }
}

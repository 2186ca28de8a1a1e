//! Packages and services: `dnf`/`yum`/`apt` installing from the internet package mirror,
//! `systemctl`/`service`, and the web servers (`httpd`, `nginx`, `apache2`) that serve
//! files from the instance's filesystem on port 80 through
//! [`InstanceNet::tcp_listen`](super::net::InstanceNet::tcp_listen).
//!
//! The mirror contract: a package manager opens an HTTP connection to the profile's
//! `package_mirror` and sends `GET {prefix}/repodata/repomd.xml` (`/al2023/…` or
//! `/ubuntu/…`); any HTTP response means the mirror is reachable. Which packages exist
//! is decided here, so the mirror only has to answer. Without a path to it the
//! connection times out and the tool fails the way the real one does.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::BufReader;

use super::http;
use super::image::Image;
use super::net::NetListener;
use super::shell::{Io, Shell};
use super::vfs::Cred;
use super::{InstanceState, unix_now};

/// How long dnf waits for the mirror (its `timeout` option, 30 s).
pub const DNF_TIMEOUT: Duration = Duration::from_secs(30);
/// How long apt waits to connect (its `Acquire::http::Timeout`, 30 s here too).
pub const APT_TIMEOUT: Duration = Duration::from_secs(30);

/// A package the mirror offers: name, version string, size.
struct Pkg {
    name: &'static str,
    version: &'static str,
    size: &'static str,
}

const AL_PKGS: &[Pkg] = &[
    Pkg {
        name: "httpd",
        version: "2.4.62-1.amzn2023",
        size: "48 k",
    },
    Pkg {
        name: "nginx",
        version: "1:1.24.0-1.amzn2023.0.4",
        size: "33 k",
    },
    Pkg {
        name: "git",
        version: "2.40.1-1.amzn2023.0.3",
        size: "54 k",
    },
    Pkg {
        name: "tree",
        version: "1.8.0-6.amzn2023.0.2",
        size: "56 k",
    },
    Pkg {
        name: "htop",
        version: "3.2.1-87.amzn2023.0.3",
        size: "184 k",
    },
    Pkg {
        name: "jq",
        version: "1.7.1-49.amzn2023",
        size: "188 k",
    },
    Pkg {
        name: "telnet",
        version: "1:0.17-85.amzn2023.0.2",
        size: "64 k",
    },
    Pkg {
        name: "nmap-ncat",
        version: "3:7.93-1.amzn2023.0.1",
        size: "219 k",
    },
    Pkg {
        name: "bind-utils",
        version: "32:9.18.28-1.amzn2023.0.1",
        size: "215 k",
    },
    Pkg {
        name: "mariadb105",
        version: "3:10.5.25-1.amzn2023.0.1",
        size: "1.6 M",
    },
    Pkg {
        name: "php",
        version: "8.3.10-1.amzn2023.0.1",
        size: "11 k",
    },
    Pkg {
        name: "python3-pip",
        version: "21.3.1-2.amzn2023.0.8",
        size: "1.8 M",
    },
    Pkg {
        name: "tmux",
        version: "3.2a-3.amzn2023.0.2",
        size: "469 k",
    },
    Pkg {
        name: "stress",
        version: "1.0.4-29.amzn2023.0.2",
        size: "37 k",
    },
    Pkg {
        name: "mod_ssl",
        version: "1:2.4.62-1.amzn2023",
        size: "111 k",
    },
    Pkg {
        name: "php-mysqlnd",
        version: "8.3.10-1.amzn2023.0.1",
        size: "152 k",
    },
    Pkg {
        name: "php-fpm",
        version: "8.3.10-1.amzn2023.0.1",
        size: "1.8 M",
    },
    Pkg {
        name: "mariadb105-server",
        version: "3:10.5.25-1.amzn2023.0.1",
        size: "9.9 M",
    },
    Pkg {
        name: "amazon-efs-utils",
        version: "2.1.0-1.amzn2023",
        size: "59 k",
    },
    Pkg {
        name: "nodejs",
        version: "1:18.20.4-1.amzn2023.0.1",
        size: "13 M",
    },
    Pkg {
        name: "unzip",
        version: "6.0-57.amzn2023.0.2",
        size: "182 k",
    },
    Pkg {
        name: "docker",
        version: "25.0.6-1.amzn2023.0.2",
        size: "44 M",
    },
];

const UBUNTU_PKGS: &[Pkg] = &[
    Pkg {
        name: "nginx",
        version: "1.24.0-2ubuntu7.1",
        size: "520 kB",
    },
    Pkg {
        name: "apache2",
        version: "2.4.58-1ubuntu8.5",
        size: "90.2 kB",
    },
    Pkg {
        name: "git",
        version: "1:2.43.0-1ubuntu7.1",
        size: "3679 kB",
    },
    Pkg {
        name: "tree",
        version: "2.1.1-2ubuntu3",
        size: "47.7 kB",
    },
    Pkg {
        name: "htop",
        version: "3.3.0-4build1",
        size: "171 kB",
    },
    Pkg {
        name: "jq",
        version: "1.7.1-3build1",
        size: "65.7 kB",
    },
    Pkg {
        name: "mysql-server",
        version: "8.0.40-0ubuntu0.24.04.1",
        size: "9412 B",
    },
    Pkg {
        name: "php",
        version: "2:8.3+93ubuntu2",
        size: "4208 B",
    },
    Pkg {
        name: "python3-pip",
        version: "24.0+dfsg-1ubuntu1.1",
        size: "1317 kB",
    },
    Pkg {
        name: "stress",
        version: "1.0.7-1",
        size: "18.3 kB",
    },
    Pkg {
        name: "php-mysql",
        version: "2:8.3+93ubuntu2",
        size: "1834 B",
    },
    Pkg {
        name: "mysql-client",
        version: "8.0.40-0ubuntu0.24.04.1",
        size: "9390 B",
    },
    Pkg {
        name: "unzip",
        version: "6.0-28ubuntu4.1",
        size: "174 kB",
    },
    Pkg {
        name: "docker.io",
        version: "26.1.3-0ubuntu1~24.04.1",
        size: "33.3 MB",
    },
];

/// A web server unit: port 80, a document root, the `Server` header.
struct WebUnit {
    docroot: &'static str,
    server: &'static str,
    index: &'static [&'static str],
    description: &'static str,
}

fn web_unit(image: Image, unit: &str) -> Option<WebUnit> {
    match (image, unit) {
        (Image::AmazonLinux2023, "httpd") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "Apache/2.4.62 (Amazon Linux)",
            index: &["index.html"],
            description: "The Apache HTTP Server",
        }),
        (Image::AmazonLinux2023, "nginx") => Some(WebUnit {
            docroot: "/usr/share/nginx/html",
            server: "nginx/1.24.0",
            index: &["index.html"],
            description: "The nginx HTTP and reverse proxy server",
        }),
        (Image::Ubuntu2404, "nginx") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "nginx/1.24.0 (Ubuntu)",
            index: &["index.html", "index.htm", "index.nginx-debian.html"],
            description: "A high performance web server and a reverse proxy server",
        }),
        (Image::Ubuntu2404, "apache2") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "Apache/2.4.58 (Ubuntu)",
            index: &["index.html"],
            description: "The Apache HTTP Server",
        }),
        _ => None,
    }
}

/// Whether an installed package provides `binary` (for `which`).
pub fn installed_binary(packages: &BTreeSet<String>, binary: &str) -> bool {
    packages.contains(binary)
        || (binary == "apachectl" && packages.contains("httpd"))
        || (binary == "mysql"
            && packages
                .iter()
                .any(|p| p.starts_with("mariadb") || p.starts_with("mysql")))
}

/// TCP ports the instance's services listen on, by unit.
pub fn listening(inst: &InstanceState) -> Vec<(String, u16)> {
    let rt = inst.lock_runtime();
    rt.running
        .iter()
        .filter(|(_, task)| !task.is_finished())
        .map(|(unit, _)| (unit.clone(), 80))
        .collect()
}

fn is_running(inst: &InstanceState, unit: &str) -> bool {
    inst.lock_runtime()
        .running
        .get(unit)
        .is_some_and(|t| !t.is_finished())
}

/// Runs `name` if it is a package or service command.
pub async fn run(sh: &mut Shell, name: &str, args: &[String], io: &mut Io) -> Option<i32> {
    let image = sh.inst.profile().image;
    let installed = sh.inst.lock_disk().packages.clone();
    Some(match name {
        "systemctl" => systemctl(sh, args, io).await,
        "service" => {
            // `service httpd start` → `systemctl start httpd`.
            let (Some(unit), Some(action)) = (args.first(), args.get(1)) else {
                io.err.line("Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]");
                return Some(1);
            };
            if image == Image::AmazonLinux2023 {
                io.err.line(&format!(
                    "Redirecting to /bin/systemctl {action} {unit}.service"
                ));
            }
            systemctl(sh, &[action.clone(), unit.clone()], io).await
        }
        "dnf" | "yum" if image == Image::AmazonLinux2023 => dnf(sh, args, io).await,
        "apt" | "apt-get" if image == Image::Ubuntu2404 => apt(sh, name, args, io).await,
        "httpd" | "nginx" | "apache2" | "apachectl" if installed_binary(&installed, name) => {
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
        _ => return None,
    })
}

async fn systemctl(sh: &mut Shell, args: &[String], io: &mut Io) -> i32 {
    let image = sh.inst.profile().image;
    let now_flag = args.iter().any(|a| a == "--now");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(action) = words.first().map(|s| s.as_str()) else {
        io.out
            .line("  UNIT                               LOAD   ACTIVE SUB     DESCRIPTION");
        io.out.line(
            "  sshd.service                       loaded active running OpenSSH server daemon",
        );
        return 0;
    };
    let units: Vec<String> = words[1..]
        .iter()
        .map(|u| u.trim_end_matches(".service").to_string())
        .collect();
    if units.is_empty() && !matches!(action, "daemon-reload" | "list-units") {
        io.err.line("Too few arguments.");
        return 1;
    }
    let installed = sh.inst.lock_disk().packages.clone();
    let ssh_unit = if image == Image::Ubuntu2404 {
        "ssh"
    } else {
        "sshd"
    };
    let mut status = 0;
    for unit in units {
        let builtin = unit == ssh_unit || unit == "chronyd" || unit == "systemd-resolved";
        let web = web_unit(image, &unit).filter(|_| installed.contains(&unit));
        let exists = builtin || web.is_some();
        let needs_root = matches!(
            action,
            "start" | "stop" | "restart" | "reload" | "enable" | "disable"
        );
        if needs_root && sh.user != "root" {
            let verb = action;
            io.err.line(&format!(
                "Failed to {verb} {unit}.service: Interactive authentication required."
            ));
            if matches!(action, "start" | "restart") {
                io.err.line(&format!(
                    "See system logs and 'systemctl status {unit}.service' for details."
                ));
            }
            status = 1;
            continue;
        }
        match action {
            "start" | "restart" | "reload" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to {action} {unit}.service: Unit {unit}.service not found."
                    ));
                    status = 5;
                    continue;
                }
                if builtin {
                    continue;
                }
                if action != "start" {
                    stop_unit_wait(&sh.inst, &unit).await;
                }
                if let Err(e) = start_unit(&sh.inst, &unit).await {
                    io.err.line(&format!(
                        "Job for {unit}.service failed because the control process exited with error code.\nSee \"systemctl status {unit}.service\" and \"journalctl -xeu {unit}.service\" for details."
                    ));
                    tracing::debug!("{unit}: {e}");
                    status = 1;
                }
            }
            "stop" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to stop {unit}.service: Unit {unit}.service not loaded."
                    ));
                    status = 5;
                    continue;
                }
                stop_unit_wait(&sh.inst, &unit).await;
            }
            "enable" | "disable" => {
                if !exists {
                    io.err.line(&format!(
                        "Failed to {action} unit: Unit file {unit}.service does not exist."
                    ));
                    status = 1;
                    continue;
                }
                let path = format!("/etc/systemd/system/multi-user.target.wants/{unit}.service");
                let lib = format!("/usr/lib/systemd/system/{unit}.service");
                if action == "enable" {
                    if sh.inst.lock_disk().enabled.insert(unit.clone()) {
                        io.err.line(&format!("Created symlink {path} → {lib}."));
                    }
                    if now_flag
                        && web.is_some()
                        && !is_running(&sh.inst, &unit)
                        && start_unit(&sh.inst, &unit).await.is_err()
                    {
                        status = 1;
                    }
                } else {
                    if sh.inst.lock_disk().enabled.remove(&unit) {
                        io.err.line(&format!("Removed \"{path}\"."));
                    }
                    if now_flag {
                        stop_unit_wait(&sh.inst, &unit).await;
                    }
                }
            }
            "is-active" => {
                let active = builtin || is_running(&sh.inst, &unit);
                io.out.line(if active { "active" } else { "inactive" });
                if !active {
                    status = 3;
                }
            }
            "is-enabled" => {
                let enabled = builtin || sh.inst.lock_disk().enabled.contains(&unit);
                if !exists {
                    io.err.line(&format!("Failed to get unit file state for {unit}.service: No such file or directory"));
                    status = 1;
                } else {
                    io.out.line(if enabled { "enabled" } else { "disabled" });
                    if !enabled {
                        status = 1;
                    }
                }
            }
            "status" => {
                if !exists {
                    io.err
                        .line(&format!("Unit {unit}.service could not be found."));
                    status = 4;
                    continue;
                }
                let active = builtin || is_running(&sh.inst, &unit);
                let enabled = builtin || sh.inst.lock_disk().enabled.contains(&unit);
                let desc = web
                    .as_ref()
                    .map_or("OpenSSH server daemon", |w| w.description);
                let dot = if active { "●" } else { "○" };
                io.out.line(&format!("{dot} {unit}.service - {desc}"));
                io.out.line(&format!(
                    "     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; {}; preset: disabled)",
                    if enabled { "enabled" } else { "disabled" }
                ));
                if active {
                    io.out.line("     Active: active (running)");
                    if web.is_some() {
                        io.out
                            .line("     Status: \"Started, listening on: port 80\"");
                    }
                } else {
                    io.out.line("     Active: inactive (dead)");
                    status = 3;
                }
            }
            "daemon-reload" | "list-units" => {}
            other => {
                io.err.line(&format!("Unknown command verb '{other}'."));
                return 1;
            }
        }
    }
    status
}

/// Starts a web server unit: listen on port 80 and serve its document root.
pub(crate) async fn start_unit(inst: &Arc<InstanceState>, unit: &str) -> std::io::Result<()> {
    if is_running(inst, unit) {
        return Ok(());
    }
    let image = inst.profile().image;
    let Some(_) = web_unit(image, unit) else {
        return Ok(());
    };
    let listener = inst.net().tcp_listen(80).await?;
    let weak = Arc::downgrade(inst);
    let unit_name = unit.to_string();
    let task = tokio::spawn(accept_loop(listener, weak, unit_name));
    inst.lock_runtime().running.insert(unit.to_string(), task);
    Ok(())
}

fn stop_unit(inst: &InstanceState, unit: &str) -> Option<tokio::task::JoinHandle<()>> {
    let task = inst.lock_runtime().running.remove(unit)?;
    task.abort();
    Some(task)
}

/// Stops a unit and waits until its listener is gone, so the port can be reused at once.
async fn stop_unit_wait(inst: &InstanceState, unit: &str) {
    if let Some(task) = stop_unit(inst, unit) {
        // The task was aborted: awaiting it returns once it is dropped (Err = cancelled).
        let _ = task.await;
    }
}

/// Starts the enabled services (at boot).
pub(crate) async fn start_enabled(inst: &Arc<InstanceState>) {
    let enabled = inst.lock_disk().enabled.clone();
    for unit in enabled {
        if let Err(e) = start_unit(inst, &unit).await {
            tracing::warn!(unit, "could not start at boot: {e}");
        }
    }
}

async fn accept_loop(mut listener: Box<dyn NetListener>, inst: Weak<InstanceState>, unit: String) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            return;
        };
        let inst = inst.clone();
        let unit = unit.clone();
        tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(stream);
            let mut r = BufReader::new(r);
            while let Ok(Some(req)) = http::read_request(&mut r).await {
                let Some(inst) = inst.upgrade() else {
                    return;
                };
                let close = req
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    || req.version == "HTTP/1.0";
                let bytes = web_response(&inst, &unit, &req, peer);
                if http::send(&mut w, &bytes).await.is_err() || close {
                    return;
                }
            }
        });
    }
}

fn web_response(
    inst: &InstanceState,
    unit: &str,
    req: &http::Request,
    peer: SocketAddrV4,
) -> Vec<u8> {
    let image = inst.profile().image;
    let Some(web) = web_unit(image, unit) else {
        return http::response(500, "Internal Server Error", &[], b"", false);
    };
    let head = req.method == "HEAD";
    let path = req.target.split('?').next().unwrap_or("/");
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .to_string();
    let full = super::vfs::normalize(web.docroot, path.trim_start_matches('/'));
    let mut disk = inst.lock_disk();
    let mut status = (200, "OK");
    let mut ctype = content_type(&full);
    let body: Vec<u8> = if !full.starts_with(web.docroot) {
        status = (403, "Forbidden");
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
                status = (403, "Forbidden");
                ctype = "text/html; charset=UTF-8";
                b"<html><body><h1>It works!</h1></body></html>\n".to_vec()
            }
            None => {
                status = (403, "Forbidden");
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
            Err(super::vfs::FsError::PermissionDenied) => {
                status = (403, "Forbidden");
                ctype = "text/html";
                error_html(
                    web.server,
                    403,
                    "Forbidden",
                    "You don't have permission to access this resource.",
                )
            }
            Err(_) => {
                status = (404, "Not Found");
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
        status.0,
        body.len(),
        req.header("user-agent").unwrap_or("-")
    );
    if !disk.fs.exists(super::vfs::parent(&log)) {
        disk.fs
            .install_dir(super::vfs::parent(&log), 0o700, Cred::ROOT);
    }
    let _ = disk
        .fs
        .write(&log, line.as_bytes(), true, Cred::ROOT, 0o644);
    drop(disk);
    http::response(
        status.0,
        status.1,
        &[
            ("Server", web.server.to_string()),
            ("Content-Type", ctype.to_string()),
        ],
        &body,
        head,
    )
}

fn content_type(path: &str) -> &'static str {
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

fn error_html(server: &str, code: u16, title: &str, msg: &str) -> Vec<u8> {
    if server.starts_with("nginx") {
        format!("<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n").into_bytes()
    } else {
        format!("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{code} {title}</title>\n</head><body>\n<h1>{title}</h1>\n<p>{msg}</p>\n</body></html>\n").into_bytes()
    }
}

/// Asks the mirror for its repository metadata; `Err` when it cannot be reached.
async fn reach_mirror(sh: &Shell, timeout: Duration) -> Result<(), std::io::Error> {
    let p = sh.inst.profile();
    let mirror = p.package_mirror;
    let stream = sh.inst.net().tcp_connect(mirror, timeout).await?;
    let path = format!("{}/repodata/repomd.xml", p.image.mirror_prefix());
    tokio::time::timeout(
        timeout,
        http::exchange(stream, "GET", &mirror.ip().to_string(), &path, &[], &[]),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(())
}

/// Installs a package's files (as the package would).
fn install_files(inst: &InstanceState, image: Image, pkg: &str) {
    let mut disk = inst.lock_disk();
    disk.packages.insert(pkg.to_string());
    let root = Cred::ROOT;
    match (image, pkg) {
        (Image::AmazonLinux2023, "httpd") => {
            disk.fs.install_dir("/var/www/html", 0o755, root);
            disk.fs.install_dir("/var/www/cgi-bin", 0o755, root);
            disk.fs.install(
                "/etc/httpd/conf/httpd.conf",
                b"ServerRoot \"/etc/httpd\"\nListen 80\nDocumentRoot \"/var/www/html\"\n",
                0o644,
                root,
            );
            disk.fs.install_dir("/var/log/httpd", 0o700, root);
        }
        (Image::AmazonLinux2023, "nginx") => {
            disk.fs.install(
                "/usr/share/nginx/html/index.html",
                NGINX_WELCOME.as_bytes(),
                0o644,
                root,
            );
            disk.fs.install("/etc/nginx/nginx.conf", b"user nginx;\nhttp {\n    server {\n        listen 80;\n        root /usr/share/nginx/html;\n    }\n}\n", 0o644, root);
            disk.fs.install_dir("/var/log/nginx", 0o711, root);
        }
        (Image::Ubuntu2404, "nginx") => {
            disk.fs.install(
                "/var/www/html/index.nginx-debian.html",
                NGINX_WELCOME.as_bytes(),
                0o644,
                root,
            );
            disk.fs.install("/etc/nginx/sites-available/default", b"server {\n\tlisten 80 default_server;\n\troot /var/www/html;\n\tindex index.html index.htm index.nginx-debian.html;\n}\n", 0o644, root);
            disk.fs.install_dir("/var/log/nginx", 0o755, root);
        }
        (Image::Ubuntu2404, "apache2") => {
            if !disk.fs.exists("/var/www/html/index.html") {
                disk.fs.install("/var/www/html/index.html", b"<html><head><title>Apache2 Ubuntu Default Page: It works</title></head><body><h1>Apache2 Default Page</h1><p>It works!</p></body></html>\n", 0o644, root);
            }
            disk.fs.install_dir("/var/log/apache2", 0o750, root);
        }
        _ => {}
    }
}

const NGINX_WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n</body>\n</html>\n";

async fn dnf(sh: &mut Shell, args: &[String], io: &mut Io) -> i32 {
    let yes = args.iter().any(|a| a == "-y" || a == "--assumeyes");
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first().map(|s| s.as_str()) else {
        io.err.line("usage: dnf [options] COMMAND");
        return 1;
    };
    let pkgs: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
    let installed = sh.inst.lock_disk().packages.clone();
    let p = sh.inst.profile();
    if matches!(
        cmd,
        "install" | "update" | "upgrade" | "remove" | "erase" | "makecache"
    ) && sh.user != "root"
    {
        io.err.line("Error: This command has to be run with superuser privileges (under the root user on most systems).");
        return 1;
    }
    if cmd == "list" && words.get(1).is_some_and(|w| w.as_str() == "installed") {
        io.out.line("Installed Packages");
        for name in &installed {
            if let Some(pkg) = AL_PKGS.iter().find(|k| k.name == name) {
                io.out.line(&format!(
                    "{:<40}{:<35}@amazonlinux",
                    format!("{}.x86_64", pkg.name),
                    pkg.version
                ));
            }
        }
        return 0;
    }
    if matches!(cmd, "remove" | "erase") {
        let mut removed = false;
        {
            let mut disk = sh.inst.lock_disk();
            for name in &pkgs {
                removed |= disk.packages.remove(name);
            }
        }
        for name in &pkgs {
            stop_unit_wait(&sh.inst, name).await;
        }
        io.out.line(if removed {
            "Complete!"
        } else {
            "No packages marked for removal.\nDependencies resolved.\nNothing to do.\nComplete!"
        });
        return 0;
    }
    // Everything else needs repository metadata from the mirror.
    if !quiet {
        io.out
            .print(&format!("{:<64}", "Amazon Linux 2023 repository"));
    }
    if let Err(e) = reach_mirror(sh, DNF_TIMEOUT).await {
        if !quiet {
            io.out.line("0.0  B/s |   0  B     00:30    ");
        }
        let mirror = format!(
            "https://al2023-repos-{}-de612dc2.s3.dualstack.{}.amazonaws.com/core/mirrors/2023.6.20241111/x86_64/mirror.list",
            p.region, p.region
        );
        io.err
            .line("Errors during downloading metadata for repository 'amazonlinux':");
        let detail = if e.kind() == std::io::ErrorKind::TimedOut {
            "Curl error (28): Timeout was reached for {m} [Connection timed out after 30000 milliseconds]".to_string()
        } else {
            "Curl error (7): Couldn't connect to server for {m} [Failed to connect: Connection refused]".to_string()
        };
        io.err
            .line(&format!("  - {}", detail.replace("{m}", &mirror)));
        io.err.line("Error: Failed to download metadata for repo 'amazonlinux': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried");
        return 1;
    }
    if !quiet {
        io.out.line(" 42 MB/s |  29 MB     00:00    ");
    }
    match cmd {
        "makecache" => {
            io.out.line("Metadata cache created.");
            0
        }
        "update" | "upgrade" | "check-update" => {
            io.out.line("Dependencies resolved.");
            io.out.line("Nothing to do.");
            io.out.line("Complete!");
            0
        }
        "install" => {
            let mut unknown = Vec::new();
            let mut todo = Vec::new();
            for name in &pkgs {
                let name = name.trim_end_matches(".x86_64").trim_end_matches(".noarch");
                match AL_PKGS.iter().find(|k| k.name == name) {
                    None => unknown.push(name.to_string()),
                    Some(pkg) if installed.contains(pkg.name) => {
                        io.out.line(&format!(
                            "Package {}-{}.x86_64 is already installed.",
                            pkg.name, pkg.version
                        ));
                    }
                    Some(pkg) => todo.push(pkg),
                }
            }
            if !unknown.is_empty() {
                for u in &unknown {
                    io.out.line(&format!("No match for argument: {u}"));
                }
                io.err.line(&format!(
                    "Error: Unable to find a match: {}",
                    unknown.join(" ")
                ));
                return 1;
            }
            io.out.line("Dependencies resolved.");
            if todo.is_empty() {
                io.out.line("Nothing to do.");
                io.out.line("Complete!");
                return 0;
            }
            io.out.line(&"=".repeat(80));
            io.out.line(&format!(
                " {:<22}{:<12}{:<36}{:<16}{}",
                "Package", "Arch", "Version", "Repository", "Size"
            ));
            io.out.line(&"=".repeat(80));
            io.out.line("Installing:");
            for pkg in &todo {
                io.out.line(&format!(
                    " {:<22}{:<12}{:<36}{:<16}{}",
                    pkg.name, "x86_64", pkg.version, "amazonlinux", pkg.size
                ));
            }
            io.out.line("");
            io.out.line("Transaction Summary");
            io.out.line(&"=".repeat(80));
            io.out.line(&format!(
                "Install  {} Package{}",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" }
            ));
            io.out.line("");
            if !yes {
                io.out.print("Is this ok [y/N]: ");
                let answer = io.stdin.read_line().await.unwrap_or_default();
                if !answer.trim().eq_ignore_ascii_case("y")
                    && !answer.trim().eq_ignore_ascii_case("yes")
                {
                    io.out.line("Operation aborted.");
                    return 1;
                }
            }
            io.out.line("Downloading Packages:");
            io.out.line("Running transaction check");
            io.out.line("Transaction check succeeded.");
            io.out.line("Running transaction test");
            io.out.line("Transaction test succeeded.");
            io.out.line("Running transaction");
            for (i, pkg) in todo.iter().enumerate() {
                io.out.line(&format!(
                    "  Installing       : {}-{}.x86_64{:>20}",
                    pkg.name,
                    pkg.version,
                    format!("{}/{}", i + 1, todo.len())
                ));
                install_files(&sh.inst, Image::AmazonLinux2023, pkg.name);
            }
            io.out.line("");
            io.out.line("Installed:");
            for pkg in &todo {
                io.out
                    .line(&format!("  {}-{}.x86_64", pkg.name, pkg.version));
            }
            io.out.line("");
            io.out.line("Complete!");
            0
        }
        other => {
            io.err.line(&format!(
                "No such command: {other}. Please use /usr/bin/dnf --help"
            ));
            1
        }
    }
}

async fn apt(sh: &mut Shell, tool: &str, args: &[String], io: &mut Io) -> i32 {
    let yes = args
        .iter()
        .any(|a| a == "-y" || a == "--yes" || a == "-qy" || a == "-yq");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first().map(|s| s.as_str()) else {
        io.out
            .line("apt 2.7.14 (amd64)\nUsage: apt [options] command");
        return 1;
    };
    let pkgs: Vec<String> = words[1..].iter().map(|s| s.to_string()).collect();
    let p = sh.inst.profile();
    let archive = format!("http://{}.ec2.archive.ubuntu.com/ubuntu", p.region);
    if matches!(cmd, "install" | "update" | "upgrade" | "remove" | "purge") && sh.user != "root" {
        if cmd == "update" {
            io.err.line("Reading package lists... Done");
            io.err.line("E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)");
            io.err
                .line("E: Unable to lock directory /var/lib/apt/lists/");
        } else {
            io.err.line("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)");
            io.err.line("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?");
        }
        return 100;
    }
    if tool == "apt" {
        io.err.line("");
        io.err.line(
            "WARNING: apt does not have a stable CLI interface. Use with caution in scripts.",
        );
        io.err.line("");
    }
    let installed = sh.inst.lock_disk().packages.clone();
    match cmd {
        "update" | "upgrade" => match reach_mirror(sh, APT_TIMEOUT).await {
            Ok(()) => {
                if cmd == "update" {
                    io.out.line(&format!("Hit:1 {archive} noble InRelease"));
                    io.out
                        .line(&format!("Hit:2 {archive} noble-updates InRelease"));
                    io.out
                        .line(&format!("Hit:3 {archive} noble-backports InRelease"));
                    io.out
                        .line("Hit:4 http://security.ubuntu.com/ubuntu noble-security InRelease");
                    io.out.line("Reading package lists... Done");
                    io.out.line("Building dependency tree... Done");
                    io.out.line("Reading state information... Done");
                    io.out.line("All packages are up to date.");
                } else {
                    io.out.line("Reading package lists... Done");
                    io.out.line("Building dependency tree... Done");
                    io.out.line("Calculating upgrade... Done");
                    io.out
                        .line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                }
                0
            }
            Err(_) => {
                io.out.line(&format!("Ign:1 {archive} noble InRelease"));
                io.out.line(&format!("Err:1 {archive} noble InRelease"));
                io.out.line(&format!("  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out", p.region, p.package_mirror.ip()));
                io.out.line("Reading package lists... Done");
                io.err.line(&format!("W: Failed to fetch {archive}/dists/noble/InRelease  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out", p.region, p.package_mirror.ip()));
                io.err.line("W: Some index files failed to download. They have been ignored, or old ones used instead.");
                0
            }
        },
        "install" => {
            io.out.line("Reading package lists... Done");
            io.out.line("Building dependency tree... Done");
            io.out.line("Reading state information... Done");
            let mut todo = Vec::new();
            for name in &pkgs {
                match UBUNTU_PKGS.iter().find(|k| k.name == name) {
                    None => {
                        io.err.line(&format!("E: Unable to locate package {name}"));
                        return 100;
                    }
                    Some(pkg) if installed.contains(pkg.name) => {
                        io.out.line(&format!(
                            "{} is already the newest version ({}).",
                            pkg.name, pkg.version
                        ));
                    }
                    Some(pkg) => todo.push(pkg),
                }
            }
            if todo.is_empty() {
                io.out
                    .line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                return 0;
            }
            io.out.line("The following NEW packages will be installed:");
            io.out.line(&format!(
                "  {}",
                todo.iter().map(|k| k.name).collect::<Vec<_>>().join(" ")
            ));
            io.out.line(&format!(
                "0 upgraded, {} newly installed, 0 to remove and 0 not upgraded.",
                todo.len()
            ));
            if !yes {
                io.out.print("Do you want to continue? [Y/n] ");
                let answer = io.stdin.read_line().await.unwrap_or_default();
                let a = answer.trim();
                if !(a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")) {
                    io.out.line("Abort.");
                    return 1;
                }
            }
            for (i, pkg) in todo.iter().enumerate() {
                if reach_mirror(sh, APT_TIMEOUT).await.is_err() {
                    io.out.line(&format!(
                        "Ign:{} {archive} noble/main amd64 {} amd64 {}",
                        i + 1,
                        pkg.name,
                        pkg.version
                    ));
                    io.err.line(&format!(
                        "E: Failed to fetch {archive}/pool/main/{}/{}/{}_{}_amd64.deb  Could not connect to {}.ec2.archive.ubuntu.com:80 ({}), connection timed out",
                        &pkg.name[..1], pkg.name, pkg.name, pkg.version, p.region, p.package_mirror.ip()
                    ));
                    io.err.line("E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?");
                    return 100;
                }
                io.out.line(&format!(
                    "Get:{} {archive} noble/main amd64 {} amd64 {} [{}]",
                    i + 1,
                    pkg.name,
                    pkg.version,
                    pkg.size
                ));
            }
            for pkg in &todo {
                io.out.line(&format!(
                    "Selecting previously unselected package {}.",
                    pkg.name
                ));
                io.out
                    .line(&format!("Unpacking {} ({}) ...", pkg.name, pkg.version));
                io.out
                    .line(&format!("Setting up {} ({}) ...", pkg.name, pkg.version));
                install_files(&sh.inst, Image::Ubuntu2404, pkg.name);
                // Debian packages start and enable their services on install.
                if web_unit(Image::Ubuntu2404, pkg.name).is_some() {
                    sh.inst.lock_disk().enabled.insert(pkg.name.to_string());
                    if let Err(e) = start_unit(&sh.inst, pkg.name).await {
                        io.err
                            .line(&format!("Job for {}.service failed: {e}", pkg.name));
                    }
                }
            }
            0
        }
        "remove" | "purge" => {
            for name in &pkgs {
                sh.inst.lock_disk().packages.remove(name);
                stop_unit_wait(&sh.inst, name).await;
            }
            io.out.line("Reading package lists... Done");
            0
        }
        "list" => {
            io.out.line("Listing... Done");
            for name in &installed {
                if let Some(pkg) = UBUNTU_PKGS.iter().find(|k| k.name == name) {
                    io.out.line(&format!(
                        "{}/noble,now {} amd64 [installed]",
                        pkg.name, pkg.version
                    ));
                }
            }
            0
        }
        other => {
            io.err.line(&format!("E: Invalid operation {other}"));
            100
        }
    }
}

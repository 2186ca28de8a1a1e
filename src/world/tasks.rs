//! ECS tasks at runtime: one host stack per `RUNNING` task at `Port::Eni(eni)` (the
//! task's own interface, so its security groups, NACLs and routes decide who reaches
//! it), serving the known images (`model::ecs::images`) with their real default pages
//! on the image's port. Each request adds an access-log line; the lines go to the
//! container's awslogs stream (`prefix/container/task-id`) about once a second, one
//! commit per flush, as the awslogs driver batches them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::task::JoinHandle;
use vpclab_netstack::Port;
use vpclab_netstack::host::{Host, HostConfig, Net};
use vpclab_netstack::topology::rid;

use super::Worlds;
use crate::http1::{self, Request, Response};
use crate::model::ec2::eni::private_dns_name;
use crate::model::ecs::images::Known;
use crate::model::logs::InputEvent;
use crate::model::{Env, Timestamp, World};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const NGINX: &str = "nginx/1.27.3";
const APACHE: &str = "Apache/2.4.62 (Unix)";

/// One access-log line waiting for delivery: (region, group, stream, time, message).
type Line = (String, String, String, i64, String);

struct Attached {
    host: Host,
    tasks: Vec<JoinHandle<()>>,
}

impl Attached {
    fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.host.remove();
    }
}

/// The running tasks of one world.
pub(crate) struct TaskHosts {
    account: String,
    net: Net,
    worlds: Worlds,
    running: BTreeMap<String, Attached>,
    lines: Arc<Mutex<Vec<Line>>>,
    flusher: Option<JoinHandle<()>>,
}

impl TaskHosts {
    pub(crate) fn new(account: &str, net: Net, worlds: Worlds) -> TaskHosts {
        TaskHosts {
            account: account.to_string(),
            net,
            worlds,
            running: BTreeMap::new(),
            lines: Arc::new(Mutex::new(Vec::new())),
            flusher: None,
        }
    }

    pub(crate) fn shutdown_all(&mut self) {
        for (_, a) in std::mem::take(&mut self.running) {
            a.stop();
        }
        if let Some(f) = self.flusher.take() {
            f.abort();
        }
    }

    /// Attaches a host for every running task and removes the others.
    pub(crate) fn reconcile(&mut self, world: &World) {
        let wanted: BTreeMap<&str, &crate::model::ecs::Task> = world
            .ecs_tasks
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .filter(|t| {
                t.eni_id
                    .as_ref()
                    .is_some_and(|e| world.network_interfaces.contains(e))
            })
            .map(|t| (t.id.as_str(), t))
            .collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(a) = self.running.remove(&id) {
                a.stop();
            }
        }
        for (id, t) in wanted {
            if self.running.contains_key(id) {
                continue;
            }
            let (Some(eni), Some(ip)) = (t.eni_id.clone(), t.private_ip) else {
                continue;
            };
            let prefix = world
                .subnets
                .get(&t.subnet_id)
                .map_or(24, |s| s.cidr.prefix_len());
            let subnet = Ipv4Net::new(ip, prefix).unwrap_or_else(|_| Ipv4Net::from(ip));
            let host = match self
                .net
                .add_host(HostConfig::vpc(Port::Eni(rid(&eni)), subnet))
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "cannot attach the task");
                    continue;
                }
            };
            let mut tasks = Vec::new();
            let mut ports = std::collections::BTreeSet::new();
            for c in &t.containers {
                let Some(known) = c.known else { continue };
                if c.exit_code.is_some() {
                    continue;
                }
                for port in known.ports(&c.command) {
                    if !ports.insert(port) {
                        continue;
                    }
                    let Ok(listener) = host.listen(port) else {
                        continue;
                    };
                    let server = Server {
                        known,
                        addr: ip,
                        port,
                        hostname: private_dns_name(&t.region, ip),
                        text: echo_text(&c.command),
                        log: c.log.clone(),
                        lines: self.lines.clone(),
                        clock: self.worlds.cfg().clock.clone(),
                    };
                    let handler: http1::Handler = Arc::new(move |req: &Request| server.answer(req));
                    tasks.push(tokio::spawn(http1::serve(listener, handler)));
                }
            }
            self.running
                .insert(id.to_string(), Attached { host, tasks });
        }
        if self.flusher.is_none() && !self.running.is_empty() {
            self.flusher = Some(tokio::spawn(flush_loop(
                self.account.clone(),
                self.lines.clone(),
                self.worlds.clone(),
            )));
        }
    }
}

/// `hashicorp/http-echo`'s `-text` argument.
fn echo_text(command: &[String]) -> String {
    let mut it = command.iter();
    while let Some(a) = it.next() {
        if let Some(t) = a.strip_prefix("-text=").or(a.strip_prefix("--text=")) {
            return t.to_string();
        }
        if a == "-text" || a == "--text" {
            return it.next().cloned().unwrap_or_default();
        }
    }
    String::new()
}

/// One container's web server.
struct Server {
    known: Known,
    addr: Ipv4Addr,
    port: u16,
    hostname: String,
    text: String,
    log: Option<(String, String, String)>,
    lines: Arc<Mutex<Vec<Line>>>,
    clock: crate::model::Clock,
}

/// `01/Dec/2026:19:45:24 +0000`, the time format of nginx's and Apache's access logs.
fn clf_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".into(),
    }
}

impl Server {
    fn answer(&self, req: &Request) -> Response {
        let now: Timestamp = (self.clock)();
        let path = req.path();
        let ok = self.known.serves(path) && matches!(req.method.as_str(), "GET" | "HEAD");
        let resp = match self.known {
            Known::Nginx | Known::NginxHello => {
                let body = if !ok {
                    format!(
                        "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>{NGINX}</center>\r\n</body>\r\n</html>\r\n"
                    )
                } else if self.known == Known::Nginx {
                    NGINX_WELCOME.to_string()
                } else {
                    format!(
                        "<!DOCTYPE html>\n<html>\n<head>\n<title>Hello World</title>\n</head>\n<body>\n<p><span>Server&nbsp;address:</span> <span>{}:{}</span></p>\n<p><span>Server&nbsp;name:</span> <span>{}</span></p>\n<p><span>Date:</span> <span>{}</span></p>\n<p><span>URI:</span> <span>{}</span></p>\n</body>\n</html>\n",
                        self.addr,
                        self.port,
                        self.hostname,
                        clf_time(now.0),
                        req.target
                    )
                };
                Response::new(if ok { 200 } else { 404 }, "text/html", body)
                    .with_header("Server", NGINX)
            }
            Known::Httpd => {
                let body = if ok {
                    "<html><body><h1>It works!</h1></body></html>\n".to_string()
                } else {
                    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n</body></html>\n".to_string()
                };
                Response::new(if ok { 200 } else { 404 }, "text/html", body)
                    .with_header("Server", APACHE)
            }
            Known::HttpEcho => {
                Response::new(200, "text/plain; charset=utf-8", format!("{}\n", self.text))
                    .with_header("X-App-Name", "http-echo")
                    .with_header("X-App-Version", "1.0.0")
            }
            Known::Busybox => Response::not_found(),
        };
        if let Some((region, group, stream)) = &self.log {
            let ua = req.header("user-agent").unwrap_or("-");
            let referer = req.header("referer").unwrap_or("-");
            let line = match self.known {
                Known::Httpd => format!(
                    "{} - - [{}] \"{} {} {}\" {} {}",
                    req.peer.ip(),
                    clf_time(now.0),
                    req.method,
                    req.target,
                    req.version,
                    resp.status,
                    resp.body.len()
                ),
                Known::HttpEcho => format!(
                    "{} {} \"{} {} {}\" {} {} \"{ua}\"",
                    req.header("host").unwrap_or("-"),
                    req.peer.ip(),
                    req.method,
                    req.target,
                    req.version,
                    resp.status,
                    resp.body.len()
                ),
                _ => format!(
                    "{} - - [{}] \"{} {} {}\" {} {} \"{referer}\" \"{ua}\" \"-\"",
                    req.peer.ip(),
                    clf_time(now.0),
                    req.method,
                    req.target,
                    req.version,
                    resp.status,
                    resp.body.len()
                ),
            };
            self.lines.lock().unwrap_or_else(|e| e.into_inner()).push((
                region.clone(),
                group.clone(),
                stream.clone(),
                now.0,
                line,
            ));
        }
        resp
    }
}

const NGINX_WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n<style>\nhtml { color-scheme: light dark; }\nbody { width: 35em; margin: 0 auto;\nfont-family: Tahoma, Verdana, Arial, sans-serif; }\n</style>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n\n<p>For online documentation and support please refer to\n<a href=\"http://nginx.org/\">nginx.org</a>.<br/>\nCommercial support is available at\n<a href=\"http://nginx.com/\">nginx.com</a>.</p>\n\n<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n";

/// Delivers buffered access-log lines once a second, one commit per flush.
async fn flush_loop(account: String, lines: Arc<Mutex<Vec<Line>>>, worlds: Worlds) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let batch = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            continue;
        }
        let Some(control) = worlds.control() else {
            continue;
        };
        let now = (worlds.cfg().clock)();
        let mut streams: BTreeMap<(String, String, String), Vec<InputEvent>> = BTreeMap::new();
        for (region, group, stream, at, message) in batch {
            streams
                .entry((region, group, stream))
                .or_default()
                .push(InputEvent {
                    timestamp: at,
                    message,
                });
        }
        let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
        for ((region, group, stream), mut events) in streams {
            events.sort_by_key(|e| e.timestamp);
            let env = Env::new(region, now).with_action("vpclab:EcsTaskLogs");
            for chunk in events.chunks(crate::model::logs::MAX_BATCH_EVENTS) {
                // A deleted group loses the lines, as the awslogs driver's do.
                let r = control.mutate(&account, &env, false, |w, env| {
                    w.put_log_events(env, &group, &stream, chunk, true)
                });
                if let Err(e) = r {
                    tracing::debug!(group, error = %e.message, "task log delivery failed");
                }
            }
        }
    }
}

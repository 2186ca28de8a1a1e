//! The Route 53 health checkers of each account's world: one host per checker region on
//! the simulated internet ([`CHECKER_REGIONS`], 192.0.2.96/29), probing every health
//! check's endpoint THROUGH THE FABRIC, so an internet gateway, a route, a network ACL
//! and a security group must all let the checkers in, as on AWS.
//!
//! [`subscriber`] follows the control: for each committed world it starts, restarts
//! (after UpdateHealthCheck) or stops one probe loop per check and checker region. Each
//! loop probes every `RequestInterval` (TCP: connect within 10 s; HTTP: connect within
//! 4 s and a 2xx/3xx status within 2 s more, Route 53's limits) and records the outcome
//! in the [`HealthBoard`], which publishes the verdict into the DNS view. `HTTPS` checks
//! are probed as TCP connections (the simulated internet speaks no TLS). Disabled checks
//! are not probed (Route 53 stops probing them too) and count as healthy.
//!
//! Tests shorten the interval with [`INTERVAL_ENV`] (milliseconds); the configured
//! interval is what the API shows.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use vpclab_netstack::host::{Host, HostConfig, Net};

use super::Worlds;
use crate::dns::health::{CHECKER_REGIONS, CheckRules, HealthBoard, ProbeOutcome};
use crate::http1;
use crate::model::Clock;
use crate::model::cloudwatch::{Datum, Dimension, Stats};
use crate::model::route53::health::{HealthCheck, HealthCheckConfig};
use crate::model::{Commit, Env, Resource, Subscriber, Timestamp, World};

/// Route 53: a TCP connection must be established within ten seconds.
const TCP_CONNECT: Duration = Duration::from_secs(10);
/// Route 53: an HTTP check must connect within four seconds…
const HTTP_CONNECT: Duration = Duration::from_secs(4);
/// …and receive a status within two seconds after connecting.
const HTTP_RESPONSE: Duration = Duration::from_secs(2);
/// Route 53 searches the first 5,120 bytes of the body for `SearchString`.
const SEARCH_WINDOW: usize = 5120;

/// Resolves a domain name as the internet would (public zones, public instance names).
pub type Resolve = Arc<dyn Fn(&str) -> Option<Ipv4Addr> + Send + Sync>;

/// Everything a probe loop needs besides its check.
#[derive(Clone)]
pub struct ProbeCtx {
    pub board: HealthBoard,
    pub resolve: Resolve,
    pub clock: Clock,
    /// Replaces `RequestInterval` (tests).
    pub interval_override: Option<Duration>,
}

/// The subscriber to register with the control, after the world runtime's own (it
/// looks up the account's network there).
pub fn subscriber(
    worlds: Worlds,
    board: HealthBoard,
    interval_override: Option<Duration>,
) -> Subscriber {
    let handle = tokio::runtime::Handle::current();
    let probers: Mutex<BTreeMap<String, Prober>> = Mutex::new(BTreeMap::new());
    Box::new(move |commit: &Commit, world: &Arc<World>| {
        // Probe loops follow the health checks; nothing else changes what they do.
        if !commit.touches(&[<HealthCheck as Resource>::KIND]) {
            return;
        }
        let account = commit.account.as_str();
        let _guard = handle.enter();
        let mut probers = probers.lock().unwrap_or_else(|e| e.into_inner());
        let prober = probers.entry(account.to_owned()).or_default();
        let Some(aw) = worlds.get(account) else {
            return;
        };
        if prober.publisher.is_none() {
            prober.publisher = Some(tokio::spawn(publish_status(
                account.to_owned(),
                worlds.clone(),
                board.clone(),
            )));
        }
        let dns = worlds.cfg().dns.of(account);
        let weak = Arc::downgrade(&aw);
        let ctx = ProbeCtx {
            board: board.clone(),
            resolve: Arc::new(move |name: &str| {
                weak.upgrade().and_then(|w| w.resolve_public(name, &dns))
            }),
            clock: worlds.cfg().clock.clone(),
            interval_override,
        };
        prober.sync(world, aw.net(), &ctx);
    })
}

/// One account's checkers and probe loops.
#[derive(Default)]
pub struct Prober {
    /// Checker hosts by region, attached when the account's first check appears.
    checkers: BTreeMap<String, Host>,
    /// Running loops by check id, with the version they probe for.
    loops: BTreeMap<String, (u64, Vec<JoinHandle<()>>)>,
    /// The task publishing `AWS/Route53` `HealthCheckStatus`.
    publisher: Option<JoinHandle<()>>,
}

/// Route 53 publishes `HealthCheckStatus` (1 healthy, 0 unhealthy, dimension
/// `HealthCheckId`) to CloudWatch in us-east-1 every minute; so does this task, from
/// the board's combined verdict of the checkers (every `metrics_interval` in tests).
async fn publish_status(account: String, worlds: Worlds, board: HealthBoard) {
    let every = worlds
        .cfg()
        .metrics_interval
        .unwrap_or(Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let Some(control) = worlds.control() else {
            return;
        };
        let mut control = control.lock().unwrap_or_else(|e| e.into_inner());
        let Some(world) = control.snapshot(&account) else {
            continue;
        };
        let now = (worlds.cfg().clock)().0;
        let data: Vec<Datum> = world
            .health_checks
            .iter()
            .filter_map(|hc| {
                let healthy = board.healthy(&hc.id)?;
                Some(Datum {
                    name: "HealthCheckStatus".into(),
                    dimensions: vec![Dimension {
                        name: "HealthCheckId".into(),
                        value: hc.id.clone(),
                    }],
                    timestamp: Some(now),
                    stats: vec![Stats::one(if healthy { 1.0 } else { 0.0 })],
                    unit: Some("None".into()),
                    resolution: None,
                })
            })
            .collect();
        if data.is_empty() {
            continue;
        }
        let env = Env::new("us-east-1", Timestamp(now)).with_action("vpclab:Metrics");
        if let Err(e) = control.mutate(&account, &env, false, |w, env| {
            w.put_metric_data(env, "AWS/Route53", data)
        }) {
            tracing::warn!(account, error = %e, "publishing Route 53 metrics failed");
        }
    }
}

impl Prober {
    /// Makes the running loops match the world's health checks.
    pub fn sync(&mut self, world: &World, net: &Net, ctx: &ProbeCtx) {
        self.loops.retain(|id, (_, tasks)| {
            if world.health_checks.contains(id) {
                return true;
            }
            for t in tasks.iter() {
                t.abort();
            }
            ctx.board.remove(id);
            false
        });
        if world.health_checks.is_empty() {
            return;
        }
        if self.checkers.is_empty() {
            for (region, addr) in CHECKER_REGIONS {
                match net.add_host(HostConfig::internet(*addr)) {
                    Ok(h) => {
                        self.checkers.insert((*region).to_owned(), h);
                    }
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "a health checker could not attach");
                    }
                }
            }
        }
        for hc in world.health_checks.iter() {
            if self
                .loops
                .get(&hc.id)
                .is_some_and(|(v, _)| *v == hc.version)
            {
                continue;
            }
            if let Some((_, old)) = self.loops.remove(&hc.id) {
                for t in old {
                    t.abort();
                }
            }
            let regions = hc.config.effective_regions();
            ctx.board.configure(
                &hc.id,
                CheckRules {
                    failure_threshold: hc.config.failure_threshold,
                    inverted: hc.config.inverted,
                    disabled: hc.config.disabled,
                    regions: regions.clone(),
                },
            );
            let mut tasks = Vec::new();
            if !hc.config.disabled {
                let n = regions.len().max(1) as u32;
                for (i, region) in regions.iter().enumerate() {
                    let Some(host) = self.checkers.get(region) else {
                        continue;
                    };
                    // Checkers are staggered over the interval, as Route 53's are.
                    let offset = interval(&hc.config, ctx) * i as u32 / n;
                    tasks.push(tokio::spawn(probe_loop(
                        host.clone(),
                        Arc::new(hc.clone()),
                        region.clone(),
                        offset,
                        ctx.clone(),
                    )));
                }
            }
            self.loops.insert(hc.id.clone(), (hc.version, tasks));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for (_, tasks) in self.loops.values() {
            for t in tasks {
                t.abort();
            }
        }
        for h in self.checkers.values() {
            h.remove();
        }
        if let Some(p) = &self.publisher {
            p.abort();
        }
    }
}

fn interval(c: &HealthCheckConfig, ctx: &ProbeCtx) -> Duration {
    ctx.interval_override
        .unwrap_or(Duration::from_secs(u64::from(c.request_interval)))
}

/// Probes `hc` from the checker `host` of `region` every interval, forever.
pub async fn probe_loop(
    host: Host,
    hc: Arc<HealthCheck>,
    region: String,
    offset: Duration,
    ctx: ProbeCtx,
) {
    let every = interval(&hc.config, &ctx);
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let target = match (hc.config.ip_address, &hc.config.fqdn) {
            (Some(ip), _) => Some(ip),
            (None, Some(name)) => (ctx.resolve)(name),
            (None, None) => None,
        };
        let outcome = match target {
            Some(ip) => probe(&host, &hc.config, ip, every).await,
            None => ProbeOutcome::Unresolvable(hc.config.fqdn.clone().unwrap_or_default()),
        };
        ctx.board.record(&hc.id, &region, &outcome, (ctx.clock)().0);
    }
}

/// One probe of `target` as configured, from `from`; no timeout exceeds `cap`.
pub async fn probe(
    from: &Host,
    c: &HealthCheckConfig,
    target: Ipv4Addr,
    cap: Duration,
) -> ProbeOutcome {
    let port = c.effective_port();
    let dst = SocketAddrV4::new(target, port);
    let is_http = c.check_type == "HTTP" || c.check_type == "HTTP_STR_MATCH";
    let connect = if is_http { HTTP_CONNECT } else { TCP_CONNECT }.min(cap);
    let stream = match from.connect_timeout(dst, connect).await {
        Ok(s) => s,
        Err(e) => {
            return match e.kind() {
                std::io::ErrorKind::TimedOut => ProbeOutcome::ConnectTimedOut,
                std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
                _ => ProbeOutcome::Error(format!("Connection failed: {e}")),
            };
        }
    };
    if !is_http {
        return ProbeOutcome::TcpConnected;
    }
    // Route 53 sends the domain name (with the port unless it is 80) as Host, else the
    // address.
    let name = c.fqdn.clone().unwrap_or_else(|| target.to_string());
    let host_header = if port == 80 {
        name
    } else {
        format!("{name}:{port}")
    };
    let path = match c.resource_path.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    };
    let answer = tokio::time::timeout(
        HTTP_RESPONSE.min(cap),
        http1::request(stream, "GET", &host_header, &path, &probe_headers(), b""),
    )
    .await;
    match answer {
        Err(_) => ProbeOutcome::ResponseTimedOut,
        Ok(Err(e)) => ProbeOutcome::Error(format!("Received an invalid HTTP response: {e}")),
        Ok(Ok(resp)) => match &c.search_string {
            Some(s) if c.check_type == "HTTP_STR_MATCH" => {
                let window = &resp.body[..resp.body.len().min(SEARCH_WINDOW)];
                let found = !s.is_empty() && window.windows(s.len()).any(|w| w == s.as_bytes());
                ProbeOutcome::HttpMatch {
                    status: resp.status,
                    found,
                }
            }
            _ => ProbeOutcome::Http(resp.status),
        },
    }
}

/// The headers of a probe. Route 53's checkers name themselves in `User-Agent`.
fn probe_headers() -> [(String, String); 2] {
    [
        (
            "User-Agent".to_string(),
            "Amazon-Route53-Health-Check-Service (vpclab)".to_string(),
        ),
        ("Accept".to_string(), "*/*".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::SharedView;
    use crate::model::{Env, Timestamp};
    use ipnet::Ipv4Net;
    use vpclab_netstack::fixture::{self, FixtureIds};
    use vpclab_netstack::topology::{SgPeer, SgRule};
    use vpclab_netstack::{Fabric, Port, Topology};

    struct Lab {
        net: Net,
        ids: FixtureIds,
        topology: Topology,
        _web: Host,
        checker: Host,
    }

    /// The fixture VPC; eni-web (198.18.0.10, sg-web allows 80 from anywhere) serves
    /// HTTP on port 80; a checker at 192.0.2.96.
    fn lab() -> Lab {
        let (topology, ids) = fixture::public_private_vpc();
        let net = Net::new(Fabric::new(Arc::new(topology.clone())));
        let web = net
            .add_host(HostConfig::vpc(
                Port::Eni(ids.web_eni.clone()),
                Ipv4Net::new(ids.web_ip, 24).expect("prefix"),
            ))
            .expect("web host");
        let listener = web.listen(80).expect("listen");
        tokio::spawn(http1::serve(
            listener,
            Arc::new(|r: &http1::Request| {
                if r.path() == "/health" {
                    http1::Response::new(200, "text/plain", "all good\n")
                } else {
                    http1::Response::not_found()
                }
            }),
        ));
        let checker = net
            .add_host(HostConfig::internet(Ipv4Addr::new(192, 0, 2, 96)))
            .expect("checker");
        Lab {
            net,
            ids,
            topology,
            _web: web,
            checker,
        }
    }

    /// sg-web without its port-80 rule.
    fn revoke_80(lab: &Lab) {
        let mut b = lab.topology.to_builder();
        let mut sg = lab
            .topology
            .security_group(&lab.ids.web_sg)
            .expect("sg-web")
            .clone();
        sg.ingress
            .retain(|r| *r != SgRule::tcp(80, SgPeer::Cidr("0.0.0.0/0".parse().expect("cidr"))));
        b.add_security_group(sg);
        let t = Arc::new(b.build().expect("topology"));
        lab.net
            .with_forwarder::<Fabric, _>(|f| f.set_topology(t))
            .expect("fabric");
    }

    fn http_check(lab: &Lab, path: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            ip_address: Some(lab.ids.web_public),
            check_type: "HTTP".into(),
            resource_path: Some(path.into()),
            request_interval: 10,
            failure_threshold: 2,
            ..HealthCheckConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn http_probe_crosses_the_internet_gateway_and_the_security_group() {
        let lab = lab();
        let cap = Duration::from_secs(10);
        let ok = probe(
            &lab.checker,
            &http_check(&lab, "/health"),
            lab.ids.web_public,
            cap,
        )
        .await;
        assert_eq!(ok, ProbeOutcome::Http(200));
        let missing = probe(
            &lab.checker,
            &http_check(&lab, "/nope"),
            lab.ids.web_public,
            cap,
        )
        .await;
        assert_eq!(missing, ProbeOutcome::Http(404));
        let mut tcp = http_check(&lab, "/");
        tcp.check_type = "TCP".into();
        tcp.port = Some(8080);
        // sg-web does not allow 8080: the SYN is dropped, the connect times out.
        let started = tokio::time::Instant::now();
        let out = probe(&lab.checker, &tcp, lab.ids.web_public, cap).await;
        assert_eq!(out, ProbeOutcome::ConnectTimedOut);
        assert!(started.elapsed() >= Duration::from_secs(10));
        revoke_80(&lab);
        let blocked = probe(
            &lab.checker,
            &http_check(&lab, "/health"),
            lab.ids.web_public,
            cap,
        )
        .await;
        assert_eq!(blocked, ProbeOutcome::ConnectTimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn string_matching_looks_at_the_body() {
        let lab = lab();
        let mut c = http_check(&lab, "/health");
        c.check_type = "HTTP_STR_MATCH".into();
        c.search_string = Some("good".into());
        let cap = Duration::from_secs(10);
        assert!(
            probe(&lab.checker, &c, lab.ids.web_public, cap)
                .await
                .success()
        );
        c.search_string = Some("bad".into());
        let out = probe(&lab.checker, &c, lab.ids.web_public, cap).await;
        assert_eq!(
            out,
            ProbeOutcome::HttpMatch {
                status: 200,
                found: false
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_domain_name_is_resolved_before_every_probe() {
        let lab = lab();
        let board = HealthBoard::new(crate::dns::Views::default());
        let target = Arc::new(Mutex::new(None::<Ipv4Addr>));
        let mut c = http_check(&lab, "/health");
        c.ip_address = None;
        c.fqdn = Some("www.example.lab".into());
        let hc = HealthCheck {
            id: "hc".into(),
            caller_reference: "r".into(),
            config: c,
            version: 1,
            created: Timestamp(0),
        };
        board.configure(
            "hc",
            CheckRules {
                failure_threshold: 1,
                inverted: false,
                disabled: false,
                regions: vec!["us-east-1".into()],
            },
        );
        let lookup = target.clone();
        let ctx = ProbeCtx {
            board: board.clone(),
            resolve: Arc::new(move |name: &str| {
                assert_eq!(name, "www.example.lab");
                *lookup.lock().expect("lock")
            }),
            clock: Arc::new(|| Timestamp(0)),
            interval_override: None,
        };
        let task = tokio::spawn(probe_loop(
            lab.checker.clone(),
            Arc::new(hc),
            "us-east-1".into(),
            Duration::ZERO,
            ctx,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            board.observations("hc")[0].report.status,
            "Failure: DNS resolution failed: www.example.lab does not resolve to an IPv4 address."
        );
        assert_eq!(board.healthy("hc"), Some(false));
        *target.lock().expect("lock") = Some(lab.ids.web_public);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            board.observations("hc")[0].report.status,
            "Success: HTTP Status Code 200, OK"
        );
        assert_eq!(board.healthy("hc"), Some(true));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_dns_view_turns_unhealthy_when_the_security_group_stops_the_checkers() {
        let lab = lab();
        let view = SharedView::default();
        let board = HealthBoard::new(crate::dns::Views::single(view.clone()));
        let mut w = World::new("000000000000");
        let env = Env::new("us-east-1", Timestamp(0));
        let (hc, _) = w
            .create_health_check(&env, "r", http_check(&lab, "/health"))
            .expect("create");
        let mut checkers_only_first = hc.clone();
        checkers_only_first.config.regions = vec!["us-east-1".into()];
        board.configure(
            &hc.id,
            CheckRules {
                failure_threshold: 2,
                inverted: false,
                disabled: false,
                regions: vec!["us-east-1".into()],
            },
        );
        let ctx = ProbeCtx {
            board: board.clone(),
            resolve: Arc::new(|_| None),
            clock: Arc::new(|| Timestamp(1_700_000_000_000)),
            interval_override: None,
        };
        let task = tokio::spawn(probe_loop(
            lab.checker.clone(),
            Arc::new(checkers_only_first),
            "us-east-1".into(),
            Duration::ZERO,
            ctx,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(board.healthy(&hc.id), Some(true));
        let obs = board.observations(&hc.id);
        assert_eq!(obs[0].report.status, "Success: HTTP Status Code 200, OK");
        revoke_80(&lab);
        // The probe at 10 s times out at 14 s (HTTP: 4 s to connect). One failure
        // (threshold 2) is not enough; the second, at 24 s, is.
        tokio::time::sleep(Duration::from_secs(14)).await;
        assert!(
            board.observations(&hc.id)[0]
                .report
                .status
                .starts_with("Failure: Connection timed out")
        );
        assert_eq!(view.read().expect("view").health.get(&hc.id), Some(&true));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(view.read().expect("view").health.get(&hc.id), Some(&false));
        task.abort();
    }
}

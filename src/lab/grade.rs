//! The grader: runs a step's checks against the learner's running world. Checks are
//! read-only. `resource` and `route` read the model snapshot; `reach` asks the fabric's
//! own decision path (`Fabric::explain_round_trip`, the function that decides real
//! packets) and, from the learner's computer, opens a real TCP connection through it;
//! `dns` asks the DNS engine as the named vantage would; `file` looks at the learner's
//! computer; `quiz` reads the learner's answer. Each result is pass, fail or error (the
//! kit's fault, never counted against the learner).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use vpclab_netstack::internet::LEARNER_ADDR;
use vpclab_netstack::{DropReason, Fabric, Flow, Outcome, Port};

use super::resolve::{Check, CheckKind, Proto, Target, Vantage};
use crate::model::ec2::instance::{Instance, InstanceState};
use crate::model::ec2::route_table::RouteTarget;
use crate::model::{ApiError, Filter, Filterable, Resource, Table, World};
use crate::world::{AccessError, AccountWorld};

/// Some other host of the internet (TEST-NET-2), for the `internet` vantage.
const INTERNET_PROBE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
/// How long a real probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The kit could not observe (its fault): never counted against the learner.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// The result of one top-level check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub status: Status,
    /// Points earned (the check's points on a pass, else 0).
    pub points: u32,
    pub max_points: u32,
    /// What was observed; on a failure, the lab's message first.
    pub message: String,
}

/// What the grader observes: the learner's account, region and computer.
pub struct Observer {
    pub snapshot: Box<dyn Fn() -> Option<Arc<World>> + Send + Sync>,
    pub net: Option<Arc<AccountWorld>>,
    pub dns: crate::dns::SharedView,
    pub region: String,
    /// The learner's working directory (relative `file` paths start there).
    pub cwd: PathBuf,
    pub answers: BTreeMap<String, String>,
}

/// One check's verdict before points.
type Verdict = (Status, String);

fn pass(m: impl Into<String>) -> Verdict {
    (Status::Pass, m.into())
}
fn fail(m: impl Into<String>) -> Verdict {
    (Status::Fail, m.into())
}
fn error(m: impl Into<String>) -> Verdict {
    (Status::Error, m.into())
}

impl Observer {
    /// Runs one top-level check, retrying a failure for its `retry_seconds`.
    pub async fn run(&self, check: &Check) -> CheckResult {
        let deadline = check.retry.map(|r| Instant::now() + r);
        let (status, observed) = loop {
            let v = self.eval(check).await;
            match (v.0, deadline) {
                (Status::Pass, _) | (_, None) => break v,
                (_, Some(d)) if Instant::now() >= d => break v,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let message = match (&status, &check.fail) {
            (Status::Fail, Some(f)) => format!("{f} ({observed})"),
            _ => observed,
        };
        CheckResult {
            id: check.id.clone(),
            status,
            points: if status == Status::Pass {
                check.points
            } else {
                0
            },
            max_points: check.points,
            message,
        }
    }

    fn eval<'a>(
        &'a self,
        check: &'a Check,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let Some(world) = (self.snapshot)() else {
                return error("the account's world is not loaded");
            };
            match &check.kind {
                CheckKind::Resource {
                    resource_type,
                    filters,
                    count,
                } => self.resource(&world, resource_type, filters, *count),
                CheckKind::Route {
                    subnet,
                    destination,
                    target,
                } => self.route(&world, subnet, *destination, target),
                CheckKind::Reach {
                    from,
                    to,
                    protocol,
                    port,
                    allowed,
                } => {
                    self.reach(&world, from, to, *protocol, *port, *allowed)
                        .await
                }
                CheckKind::Dns {
                    from,
                    name,
                    record_type,
                    values,
                } => self.dns(&world, from, name, record_type, values),
                CheckKind::File {
                    path,
                    mode,
                    forbid_bits,
                } => self.file(path, *mode, *forbid_bits),
                CheckKind::Quiz { question, answers } => match self.answers.get(&check.id) {
                    None => fail(format!(
                        "not answered yet: {question} (vpclab lab answer {} \"…\")",
                        check.id
                    )),
                    Some(a)
                        if answers
                            .iter()
                            .any(|x| x.trim().eq_ignore_ascii_case(a.trim())) =>
                    {
                        pass(format!("answered {a:?}"))
                    }
                    Some(a) => fail(format!("{a:?} is not the answer")),
                },
                CheckKind::All(list) => {
                    let mut out = Vec::new();
                    for c in list {
                        let v = self.eval(c).await;
                        if v.0 != Status::Pass {
                            return v;
                        }
                        out.push(v.1);
                    }
                    pass(out.join("; "))
                }
                CheckKind::Any(list) => {
                    let mut why = Vec::new();
                    let mut errored = None;
                    for c in list {
                        let v = self.eval(c).await;
                        match v.0 {
                            Status::Pass => return v,
                            Status::Error => errored = Some(v.1),
                            Status::Fail => why.push(v.1),
                        }
                    }
                    match errored {
                        Some(e) if why.is_empty() => error(e),
                        _ => fail(format!("none holds: {}", why.join("; "))),
                    }
                }
                CheckKind::Not(inner) => {
                    let (s, m) = self.eval(inner).await;
                    match s {
                        Status::Pass => fail(format!("it should not hold, but: {m}")),
                        Status::Fail => pass(format!("as expected, not: {m}")),
                        Status::Error => error(m),
                    }
                }
            }
        })
    }

    fn resource(
        &self,
        world: &World,
        resource_type: &str,
        filters: &[(String, Vec<String>)],
        count: Option<u32>,
    ) -> Verdict {
        let mut resolved = Vec::new();
        for (name, values) in filters {
            let mut out = Vec::new();
            for v in values {
                match self.reference(world, v) {
                    Ok(v) => out.push(v),
                    Err(why) => return fail(why),
                }
            }
            resolved.push(Filter {
                name: name.clone(),
                values: out,
            });
        }
        let filters = resolved;
        let ids = match resource_type {
            "vpc" => select(world, &world.vpcs, &self.region, &filters),
            "subnet" => select(world, &world.subnets, &self.region, &filters),
            "route_table" => select(world, &world.route_tables, &self.region, &filters),
            "internet_gateway" => select(world, &world.internet_gateways, &self.region, &filters),
            "nat_gateway" => select(world, &world.nat_gateways, &self.region, &filters),
            "address" => select(world, &world.addresses, &self.region, &filters),
            "network_acl" => select(world, &world.network_acls, &self.region, &filters),
            "security_group" => select(world, &world.security_groups, &self.region, &filters),
            "key_pair" => select(world, &world.key_pairs, &self.region, &filters),
            "instance" => select(world, &world.instances, &self.region, &filters),
            "network_interface" => select(world, &world.network_interfaces, &self.region, &filters),
            other => return error(format!("the kit has no resource type {other:?}")),
        };
        let ids = match ids {
            Ok(ids) => ids,
            // The lab's filter is wrong: the kit's (the author's) fault.
            Err(e) => return error(format!("the check's filter is invalid: {}", e.message)),
        };
        let what = describe_filters(resource_type, &filters);
        match count {
            Some(n) if ids.len() as u32 == n => pass(format!("{n} {what} ({})", ids.join(", "))),
            Some(n) => fail(format!("expected {n} {what}, found {}", ids.len())),
            None if ids.is_empty() => fail(format!("no {what} found")),
            None => pass(format!("found {what}: {}", ids.join(", "))),
        }
    }

    /// A filter value as written, or for `@<type>:<Name>` the id of the resource of that
    /// type whose `Name` tag (or id) it is (`@vpc:lab-vpc` → `vpc-0a1b…`).
    fn reference(&self, world: &World, value: &str) -> Result<String, String> {
        let Some((kind, name)) = value.strip_prefix('@').and_then(|r| r.split_once(':')) else {
            return Ok(value.to_string());
        };
        let found = match kind {
            "vpc" => find_named(&world.vpcs, world, &self.region, name).map(|r| r.id.clone()),
            "subnet" => find_named(&world.subnets, world, &self.region, name).map(|r| r.id.clone()),
            "security_group" => world
                .security_groups
                .in_region(&self.region)
                .find(|g| g.group_name == name || g.id == name)
                .map(|g| g.id.clone()),
            "instance" => find_instance(world, &self.region, name).map(|i| i.id.clone()),
            "internet_gateway" => find_named(&world.internet_gateways, world, &self.region, name)
                .map(|r| r.id.clone()),
            "nat_gateway" => {
                find_named(&world.nat_gateways, world, &self.region, name).map(|r| r.id.clone())
            }
            _ => {
                return Err(format!(
                    "the lab refers to an unknown resource type in {value}"
                ));
            }
        };
        found.ok_or_else(|| format!("no {} named {name:?}", kind.replace('_', " ")))
    }

    fn route(
        &self,
        world: &World,
        subnet: &str,
        destination: ipnet::Ipv4Net,
        expected: &str,
    ) -> Verdict {
        let Some(sub) = find_named(&world.subnets, world, &self.region, subnet) else {
            return fail(format!("no subnet named {subnet:?}"));
        };
        let explicit = world.route_tables.in_region(&self.region).find(|t| {
            t.associations
                .iter()
                .any(|a| a.subnet_id.as_deref() == Some(sub.id.as_str()))
        });
        let table = explicit.or_else(|| {
            world
                .route_tables
                .in_region(&self.region)
                .find(|t| t.vpc_id == sub.vpc_id && t.is_main())
        });
        let Some(table) = table else {
            return error(format!("subnet {} has no route table", sub.id));
        };
        let how = if explicit.is_some() {
            "associated"
        } else {
            "main"
        };
        // The route the destination's first address takes: longest prefix wins.
        let route = table
            .routes
            .iter()
            .filter(|r| r.destination.contains(&destination.network()))
            .max_by_key(|r| r.destination.prefix_len());
        let (kind, said) = match route {
            None => ("none", format!("no route covers {destination}")),
            Some(r) => {
                let id = r.target.id();
                let gone = !matches!(r.target, RouteTarget::Local) && !world.resource_exists(id);
                let kind = if gone {
                    "blackhole"
                } else {
                    match &r.target {
                        RouteTarget::Local => "local",
                        RouteTarget::Gateway(_) => "igw",
                        RouteTarget::NatGateway(_) => "nat",
                        RouteTarget::NetworkInterface(_) | RouteTarget::Instance(_) => "eni",
                        RouteTarget::VpcPeering(_) => "pcx",
                    }
                };
                (kind, format!("{} → {id}", r.destination))
            }
        };
        let observed = format!(
            "subnet {subnet} ({}) uses the {how} route table {}: {said}",
            sub.id, table.id
        );
        if kind == expected {
            pass(observed)
        } else {
            fail(format!("expected a route via {expected}; {observed}"))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn reach(
        &self,
        world: &World,
        from: &Vantage,
        to: &Target,
        proto: Proto,
        port: u16,
        allowed: bool,
    ) -> Verdict {
        let Some(net) = &self.net else {
            return error("the account's network is not running");
        };
        // The source address and the port it enters the fabric by.
        let (src, ingress, inside) = match from {
            Vantage::Learner => (LEARNER_ADDR, Port::Internet, false),
            Vantage::Internet => (INTERNET_PROBE_ADDR, Port::Internet, false),
            Vantage::Instance(name) => {
                let Some(i) = find_instance(world, &self.region, name) else {
                    return fail(format!("no instance named {name:?}"));
                };
                if i.state != InstanceState::Running {
                    return fail(format!("instance {name} ({}) is {}", i.id, i.state.name()));
                }
                let Some(eni) = &i.primary_eni else {
                    return error(format!("instance {} has no network interface", i.id));
                };
                (i.private_ip, Port::Eni(eni.as_str().into()), true)
            }
            Vantage::Vpc(_) => return error("reach cannot start from a VPC"),
        };
        let dst = match to {
            Target::Addr(a) => *a,
            Target::Instance(name) => {
                let Some(i) = find_instance(world, &self.region, name) else {
                    return fail(format!("no instance named {name:?}"));
                };
                if inside {
                    i.private_ip
                } else {
                    match i
                        .filter_values(world, "ip-address")
                        .and_then(|v| v.first().and_then(|s| s.parse().ok()))
                    {
                        Some(ip) => ip,
                        None => {
                            let observed =
                                format!("instance {name} ({}) has no public IP address", i.id);
                            return if allowed {
                                fail(observed)
                            } else {
                                pass(observed)
                            };
                        }
                    }
                }
            }
        };
        let what = match proto {
            Proto::Icmp => format!("ping {dst}"),
            _ => format!("{proto}/{port} to {dst}"),
        };
        let flow = match proto {
            Proto::Tcp => Flow::tcp_syn(src, 40001, dst, port),
            Proto::Udp => Flow::udp(src, 40001, dst, port),
            Proto::Icmp => Flow::ping(src, dst, 7),
        };
        let now = net.net().now();
        let Ok((forward, back)) = net
            .net()
            .with_forwarder::<Fabric, _>(|f| f.explain_round_trip(now, &ingress, &flow))
        else {
            return error("the account's forwarder is not a fabric");
        };
        let dropped = match (&forward.outcome, back.as_ref().map(|b| &b.outcome)) {
            (Outcome::Drop(r), _) => Some(self.explain_drop(world, r, proto, port, src)),
            (Outcome::Deliver(_), Some(Outcome::Drop(r))) => Some(format!(
                "the reply is dropped: {}",
                self.explain_drop(world, r, proto, port, dst)
            )),
            _ => None,
        };
        if let Some(why) = dropped {
            let observed = format!("{what} from {}: {why}", vantage_name(from));
            return if allowed {
                fail(observed)
            } else {
                pass(observed)
            };
        }
        // The network lets it through. From the learner's computer, a real connection
        // shows that something answers (an instance still booting does not).
        if *from == Vantage::Learner && proto == Proto::Tcp {
            match net
                .learner_connect(SocketAddrV4::new(dst, port), PROBE_TIMEOUT)
                .await
            {
                Ok(_stream) => {}
                Err(AccessError::Refused(_)) if !allowed => {
                    return fail(format!(
                        "{what} from your computer is let through by the network (the instance refused it only because nothing listens)"
                    ));
                }
                Err(e) => {
                    let observed = format!("{what} from your computer: {e}");
                    return if allowed {
                        fail(observed)
                    } else {
                        pass(observed)
                    };
                }
            }
        }
        let observed = format!("{what} from {} is allowed", vantage_name(from));
        if allowed {
            pass(observed)
        } else {
            fail(format!("expected it to be blocked, but {observed}"))
        }
    }

    /// The fabric's reason, with the security groups named when no rule matched.
    fn explain_drop(
        &self,
        world: &World,
        reason: &DropReason,
        proto: Proto,
        port: u16,
        peer: Ipv4Addr,
    ) -> String {
        if let DropReason::SecurityGroupNoMatch { eni, direction } = reason
            && let Some(e) = world.network_interfaces.get(eni)
        {
            let what = match proto {
                Proto::Icmp => "icmp".to_string(),
                _ => format!("{proto}/{port}"),
            };
            return format!(
                "no {direction} rule of {} (on {eni}) allows {what} {} {peer}",
                e.groups.join(", "),
                if direction.to_string() == "inbound" {
                    "from"
                } else {
                    "to"
                }
            );
        }
        reason.to_string()
    }

    fn dns(
        &self,
        world: &World,
        from: &Vantage,
        name: &str,
        record_type: &str,
        expected: &[String],
    ) -> Verdict {
        use hickory_proto::op::{Message, Query, ResponseCode};
        use hickory_proto::rr::{Name, RecordType};
        let vpc_id;
        let vantage = match from {
            Vantage::Learner | Vantage::Internet => crate::dns::Vantage::Internet,
            Vantage::Instance(n) => {
                let Some(i) = find_instance(world, &self.region, n) else {
                    return fail(format!("no instance named {n:?}"));
                };
                vpc_id = i.vpc_id.clone();
                crate::dns::Vantage::Vpc(&vpc_id)
            }
            Vantage::Vpc(n) => {
                let Some(v) = find_named(&world.vpcs, world, &self.region, n) else {
                    return fail(format!("no VPC named {n:?}"));
                };
                vpc_id = v.id.clone();
                crate::dns::Vantage::Vpc(&vpc_id)
            }
        };
        let Ok(rtype) = record_type.parse::<RecordType>() else {
            return error(format!("unknown record type {record_type}"));
        };
        let mut fqdn = name.trim_end_matches('.').to_string();
        fqdn.push('.');
        let Ok(qname) = Name::from_ascii(&fqdn) else {
            return error(format!("{name:?} is not a DNS name"));
        };
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname, rtype));
        let Ok(bytes) = msg.to_vec() else {
            return error("cannot encode the query");
        };
        let view = self.dns.read().unwrap_or_else(|e| e.into_inner()).clone();
        let asked = format!("{name} {record_type} from {}", vantage_name(from));
        let Some(reply) = crate::dns::answer(&view, vantage, &bytes, crate::dns::Transport::Tcp)
        else {
            return fail(format!(
                "{asked}: no answer (is DNS resolution enabled in the VPC?)"
            ));
        };
        let Ok(reply) = Message::from_vec(&reply) else {
            return error("the DNS engine sent a malformed reply");
        };
        let mut got: Vec<String> = reply
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.to_string().trim_end_matches('.').to_string())
            .collect();
        got.sort();
        let code = reply.metadata.response_code;
        if expected.is_empty() {
            return if code == ResponseCode::NXDomain {
                pass(format!("{asked}: NXDOMAIN"))
            } else {
                fail(format!("{asked}: expected NXDOMAIN, got {code} {got:?}"))
            };
        }
        let mut want = Vec::new();
        for v in expected {
            match instance_address(world, &self.region, v) {
                Ok(v) => want.push(v.trim_end_matches('.').to_string()),
                Err(why) => return fail(format!("{asked}: {why}")),
            }
        }
        want.sort();
        if got == want {
            pass(format!("{asked}: {}", got.join(", ")))
        } else if got.is_empty() {
            fail(format!("{asked}: {code}, no {record_type} record"))
        } else {
            fail(format!(
                "{asked}: got {}, expected {}",
                got.join(", "),
                want.join(", ")
            ))
        }
    }

    fn file(&self, path: &str, mode: Option<u32>, forbid: Option<u32>) -> Verdict {
        use std::os::unix::fs::PermissionsExt;
        let expanded = match path.strip_prefix("~/") {
            Some(rest) => dirs::home_dir().map(|h| h.join(rest)),
            None => Some(self.cwd.join(path)),
        };
        let Some(full) = expanded else {
            return error("cannot find your home directory");
        };
        let meta = match std::fs::metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return fail(format!("{} does not exist", full.display()));
            }
            Err(e) => return error(format!("cannot look at {}: {e}", full.display())),
        };
        let have = meta.permissions().mode() & 0o7777;
        if let Some(m) = mode
            && have != m
        {
            return fail(format!(
                "{} has mode {have:04o}, expected {m:04o}",
                full.display()
            ));
        }
        if let Some(f) = forbid
            && have & f != 0
        {
            return fail(format!(
                "{} has mode {have:04o}: bits {:04o} must be off",
                full.display(),
                have & f
            ));
        }
        pass(format!("{} exists with mode {have:04o}", full.display()))
    }
}

/// An expected DNS value as written, or for `@public-ip:<Name>` / `@private-ip:<Name>`
/// the address the instance with that `Name` tag has now: a record that must follow an
/// instance, whose addresses the lab cannot know in advance.
fn instance_address(world: &World, region: &str, value: &str) -> Result<String, String> {
    let (public, name) = match value.split_once(':') {
        Some(("@public-ip", n)) => (true, n),
        Some(("@private-ip", n)) => (false, n),
        _ => return Ok(value.to_string()),
    };
    let Some(i) = find_instance(world, region, name) else {
        return Err(format!("no instance named {name:?}"));
    };
    if !public {
        return Ok(i.private_ip.to_string());
    }
    i.filter_values(world, "ip-address")
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| format!("instance {name} ({}) has no public IP address", i.id))
}

fn vantage_name(v: &Vantage) -> String {
    match v {
        Vantage::Learner => "your computer".into(),
        Vantage::Internet => "the internet".into(),
        Vantage::Instance(n) => format!("instance {n}"),
        Vantage::Vpc(n) => format!("VPC {n}"),
    }
}

fn select<T: Resource + Filterable>(
    world: &World,
    table: &Table<T>,
    region: &str,
    filters: &[Filter],
) -> Result<Vec<String>, ApiError> {
    let rows = world.select(table, region, &[], filters, |id| {
        ApiError::invalid_value(format!("{id} not found"))
    })?;
    Ok(rows.iter().map(|r| r.id().to_string()).collect())
}

fn describe_filters(kind: &str, filters: &[Filter]) -> String {
    let kind = kind.replace('_', " ");
    if filters.is_empty() {
        return kind;
    }
    let f: Vec<String> = filters
        .iter()
        .map(|f| format!("{}={}", f.name, f.values.join("|")))
        .collect();
    format!("{kind} with {}", f.join(", "))
}

/// A resource by id or by `Name` tag.
fn find_named<'a, T: Resource>(
    table: &'a Table<T>,
    world: &World,
    region: &str,
    name: &str,
) -> Option<&'a T> {
    table.in_region(region).find(|r| {
        r.id() == name
            || world
                .tags_of(r.id())
                .and_then(|t| t.get("Name"))
                .is_some_and(|n| n == name)
    })
}

/// The instance with this `Name` tag (or id) that is not terminated, running ones first.
fn find_instance<'a>(world: &'a World, region: &str, name: &str) -> Option<&'a Instance> {
    let mut found: Vec<&Instance> = world
        .instances
        .in_region(region)
        .filter(|i| i.state != InstanceState::Terminated)
        .filter(|i| {
            i.id == name
                || world
                    .tags_of(&i.id)
                    .and_then(|t| t.get("Name"))
                    .is_some_and(|n| n == name)
        })
        .collect();
    found.sort_by_key(|i| i.state != InstanceState::Running);
    found.first().copied()
}

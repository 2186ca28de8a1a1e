//! The grader: runs a step's checks against the learner's running world. Checks are
//! read-only. `resource` and `route` read the model snapshot; `reach` asks the fabric's
//! own decision path (`Fabric::explain_round_trip`, the function that decides real
//! packets) and, from the learner's computer, opens a real TCP connection through it;
//! `ssh` logs in from the learner's computer through the fabric with the key file the
//! learner holds (russh's client, the path OpenSSH takes through `vpclab connect`);
//! `http` sends a real GET through the fabric from the vantage (hyper over fabric
//! sockets); `exec` runs a command in the instance's own shell through the kit's channel
//! (never the learner's session): the emulated shell as root, or in a sandbox `bash` as
//! the image's default user through the sandbox's agent, which also opens the
//! connections of checks `from` a sandboxed instance; `dns` asks the DNS engine as the named vantage would;
//! `file` looks at the learner's computer; `quiz` reads the learner's answer. Each result is pass, fail or error (the
//! kit's fault, never counted against the learner).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use std::time::{Duration, Instant};

use serde::Serialize;
use vpclab_netstack::internet::LEARNER_ADDR;
use vpclab_netstack::{DropReason, Flow, Outcome, Port};

use super::resolve::{AccessPrincipal, Check, CheckKind, Proto, Target, Vantage};
use crate::instance::net::NetStream;
use crate::model::ec2::instance::{Instance, InstanceState};
use crate::model::ec2::route_table::RouteTarget;
use crate::model::{ApiError, Filter, Filterable, Resource, Table, World};
use crate::world::{AccessError, AccountWorld, INTERNET_PROBE_ADDR};

/// How long a real probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an SSH login and its command, an HTTP exchange or an `exec` command may take.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a command's output or a body a message quotes.
const QUOTE_CHARS: usize = 120;

/// Where a probe enters the fabric.
struct Source {
    addr: Ipv4Addr,
    ingress: Port,
    /// The instance it starts from (its id), when inside a VPC.
    instance: Option<String>,
}

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
                CheckKind::Targets {
                    group,
                    state,
                    count,
                } => self.targets(&world, group, state, *count),
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
                CheckKind::Ssh {
                    to,
                    user,
                    key,
                    command,
                    output,
                } => self
                    .ssh(&world, to, user, key, command.as_deref(), output.as_deref())
                    .await
                    .unwrap_or_else(|v| v),
                CheckKind::Http {
                    from,
                    to,
                    port,
                    path,
                    status,
                    body,
                } => self
                    .http(&world, from, to, *port, path, *status, body.as_deref())
                    .await
                    .unwrap_or_else(|v| v),
                CheckKind::Exec {
                    on,
                    command,
                    exit,
                    output,
                } => self
                    .exec(&world, on, command, *exit, output.as_deref())
                    .await
                    .unwrap_or_else(|v| v),
                CheckKind::Access {
                    principal,
                    action,
                    resource,
                    allowed,
                } => self.access(&world, principal, action, resource, *allowed),
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

    /// Asks the API's authorization gate what it would do with this principal's
    /// request (identity policies; for an S3 ARN also the bucket's policy and Block
    /// Public Access), as it decides every signed request under `--iam enforce`.
    fn access(
        &self,
        world: &World,
        principal: &AccessPrincipal,
        action: &str,
        resource: &str,
        want_allowed: bool,
    ) -> Verdict {
        use crate::api::iam::authz;
        use crate::api::sigv4::{Credential, Identity, Principal};
        let (p, who) = match principal {
            AccessPrincipal::User(n) => {
                if world.user(n).is_err() {
                    return fail(format!("there is no IAM user named {n}"));
                }
                (Principal::User(n.clone()), format!("user {n}"))
            }
            AccessPrincipal::Role(n) => {
                if world.role(n).is_err() {
                    return fail(format!("there is no IAM role named {n}"));
                }
                (
                    Principal::AssumedRole {
                        role: n.clone(),
                        session: "vpclab-grader".into(),
                    },
                    format!("role {n}"),
                )
            }
        };
        let identity = Identity {
            account: world.account.clone(),
            principal: p,
            credential: Credential {
                access_key: String::new(),
                date: String::new(),
                region: self.region.clone(),
                service: action.split(':').next().unwrap_or("").to_string(),
            },
        };
        let bucket_name = resource
            .strip_prefix("arn:aws:s3:::")
            .map(|r| r.split('/').next().unwrap_or(r));
        let bucket = bucket_name.and_then(|b| world.buckets.get(b));
        let access = bucket.map(|b| authz::BucketAccess {
            owner: &world.account,
            policy: b.policy.as_deref(),
            restrict_public: b
                .public_access_block
                .as_ref()
                .is_some_and(|p| p.restrict_public_buckets),
        });
        let now = (crate::model::system_clock())();
        let decision = if bucket_name.is_some() {
            authz::decide_s3(
                world,
                true,
                &identity,
                access.as_ref(),
                action,
                resource,
                now,
                None,
            )
        } else {
            authz::decide(world, true, &identity, action, resource, now, None)
        };
        match (decision, want_allowed) {
            (Ok(()), true) => pass(format!("{who} may {action} on {resource}")),
            (Ok(()), false) => fail(format!("{who} is allowed {action} on {resource}")),
            (Err(_), false) => pass(format!("{who} is refused {action} on {resource}")),
            (Err(d), true) => fail(d.message),
        }
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
            "flow_log" => select(world, &world.flow_logs, &self.region, &filters),
            "vpc_endpoint" => select(world, &world.vpc_endpoints, &self.region, &filters),
            "vpc_peering_connection" => select(
                world,
                &world.vpc_peering_connections,
                &self.region,
                &filters,
            ),
            "network_insights_path" => {
                select(world, &world.network_insights_paths, &self.region, &filters)
            }
            "network_insights_analysis" => select(
                world,
                &world.network_insights_analyses,
                &self.region,
                &filters,
            ),
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
        // A prefix-list route covers what one of its list's CIDRs covers.
        let covering = |r: &&crate::model::ec2::route_table::Route| -> Option<u8> {
            let cidrs = match &r.destination {
                crate::model::ec2::route_table::Destination::Cidr(c) => vec![*c],
                crate::model::ec2::route_table::Destination::PrefixList(p) => world
                    .prefix_list_cidrs(&table.region, p)
                    .unwrap_or_default(),
                // An IPv6 route never covers an IPv4 destination.
                crate::model::ec2::route_table::Destination::Cidr6(_) => Vec::new(),
            };
            cidrs
                .iter()
                .filter(|c| c.contains(&destination.network()))
                .map(|c| c.prefix_len())
                .max()
        };
        let route = table
            .routes
            .iter()
            .filter_map(|r| covering(&r).map(|len| (r, len)))
            .max_by_key(|(_, len)| *len)
            .map(|(r, _)| r);
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
                        RouteTarget::VpcEndpoint(_) => "vpce",
                        RouteTarget::EgressOnlyGateway(_) => "eigw",
                        RouteTarget::TransitGateway(_) => "tgw",
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
        let (src, ingress, inside) = match self.source(world, from) {
            Ok(s) => (s.addr, s.ingress, s.instance.is_some()),
            Err(v) => return v,
        };
        let dst = match to {
            Target::Addr(a) => *a,
            Target::Name(n) => return error(format!("reach cannot probe the name {n}")),
            Target::LoadBalancer(n) => {
                return error(format!("reach cannot probe the load balancer {n}"));
            }
            Target::Instance(name) => {
                let Some(i) = find_instance(world, &self.region, name) else {
                    return fail(format!("no instance named {name:?}"));
                };
                if inside {
                    // Lab probes run over IPv4; an IPv6-only instance has no address
                    // they can use.
                    let Some(ip) = i.ipv4() else {
                        return error(format!(
                            "instance {name} has no IPv4 address (IPv6-only subnet)"
                        ));
                    };
                    ip
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
        let dropped = match self.fabric_drop(world, net, &ingress, &flow, proto, port) {
            Ok(d) => d,
            Err(v) => return v,
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

    /// A path on the learner's computer: `~/…` in their home, else relative to the folder
    /// they run `vpclab lab` in.
    fn learner_path(&self, path: &str) -> Result<PathBuf, Verdict> {
        match path.strip_prefix("~/") {
            Some(rest) => dirs::home_dir()
                .map(|h| h.join(rest))
                .ok_or_else(|| error("cannot find your home directory")),
            None => Ok(self.cwd.join(path)),
        }
    }

    fn file(&self, path: &str, mode: Option<u32>, forbid: Option<u32>) -> Verdict {
        use std::os::unix::fs::PermissionsExt;
        let full = match self.learner_path(path) {
            Ok(p) => p,
            Err(v) => return v,
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

    /// Where a probe from `from` enters the fabric.
    fn source(&self, world: &World, from: &Vantage) -> Result<Source, Verdict> {
        match from {
            Vantage::Learner => Ok(Source {
                addr: LEARNER_ADDR,
                ingress: Port::Internet,
                instance: None,
            }),
            Vantage::Internet => Ok(Source {
                addr: INTERNET_PROBE_ADDR,
                ingress: Port::Internet,
                instance: None,
            }),
            Vantage::Instance(name) => {
                let i = running_instance(world, &self.region, name)?;
                let Some(eni) = &i.primary_eni else {
                    return Err(error(format!("instance {} has no network interface", i.id)));
                };
                let Some(addr) = i.ipv4() else {
                    return Err(error(format!(
                        "instance {} has no IPv4 address (IPv6-only subnet)",
                        i.id
                    )));
                };
                Ok(Source {
                    addr,
                    ingress: Port::Eni(eni.as_str().into()),
                    instance: Some(i.id.clone()),
                })
            }
            Vantage::Vpc(_) => Err(error("a probe cannot start from a VPC")),
        }
    }

    /// The fabric's reason for dropping `flow` or its reply, if it does.
    fn fabric_drop(
        &self,
        world: &World,
        net: &AccountWorld,
        ingress: &Port,
        flow: &Flow,
        proto: Proto,
        port: u16,
    ) -> Result<Option<String>, Verdict> {
        let now = net.net().now();
        let Some((forward, back)) = net.with_fabric(|f| f.explain_round_trip(now, ingress, flow))
        else {
            return Err(error("the account's forwarder is not a fabric"));
        };
        Ok(
            match (&forward.outcome, back.as_ref().map(|b| &b.outcome)) {
                (Outcome::Drop(r), _) => Some(self.explain_drop(world, r, proto, port, flow.src)),
                (Outcome::Deliver(_), Some(Outcome::Drop(r))) => Some(format!(
                    "the reply is dropped: {}",
                    self.explain_drop(world, r, proto, port, flow.dst)
                )),
                _ => None,
            },
        )
    }

    /// The address `to` has seen from the vantage (an instance's private address from
    /// inside its VPC, its public one from the internet; a name as the vantage resolves
    /// it), and the name to send as HTTP `Host`.
    fn destination(
        &self,
        world: &World,
        from: &Vantage,
        src: &Source,
        to: &Target,
    ) -> Result<(Ipv4Addr, String), Verdict> {
        match to {
            Target::Addr(a) => Ok((*a, a.to_string())),
            Target::Instance(name) => {
                let Some(i) = find_instance(world, &self.region, name) else {
                    return Err(fail(format!("no instance named {name:?}")));
                };
                if src.instance.is_some() {
                    let Some(ip) = i.ipv4() else {
                        return Err(fail(format!(
                            "instance {name} has no IPv4 address (IPv6-only subnet)"
                        )));
                    };
                    return Ok((ip, ip.to_string()));
                }
                i.filter_values(world, "ip-address")
                    .and_then(|v| v.first().and_then(|s| s.parse::<Ipv4Addr>().ok()))
                    .map(|ip| (ip, ip.to_string()))
                    .ok_or_else(|| {
                        fail(format!(
                            "instance {name} ({}) has no public IP address",
                            i.id
                        ))
                    })
            }
            Target::LoadBalancer(name) => {
                let lb = world
                    .elb_load_balancers
                    .in_region(&self.region)
                    .find(|l| l.name == *name);
                let Some(lb) = lb else {
                    return Err(fail(format!("no load balancer named {name:?}")));
                };
                if lb.state != "active" {
                    return Err(fail(format!(
                        "load balancer {name} is {}, not active",
                        lb.state
                    )));
                }
                let dns = Target::Name(lb.dns_name.clone());
                self.destination(world, from, src, &dns)
            }
            Target::Name(n) => {
                let found = match &src.instance {
                    None => self
                        .net
                        .as_ref()
                        .and_then(|net| net.resolve_public(n, &self.dns)),
                    Some(id) => {
                        let vpc = world.instances.get(id).map(|i| i.vpc_id.clone());
                        vpc.and_then(|v| self.lookup_a(crate::dns::Vantage::Vpc(&v), n))
                    }
                };
                found.map(|ip| (ip, n.clone())).ok_or_else(|| {
                    fail(format!("{n} does not resolve from {}", vantage_name(from)))
                })
            }
        }
    }

    /// The first A record of `name` as `vantage` resolves it.
    fn lookup_a(&self, vantage: crate::dns::Vantage<'_>, name: &str) -> Option<Ipv4Addr> {
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RData, RecordType};
        let mut fqdn = name.trim_end_matches('.').to_string();
        fqdn.push('.');
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(&fqdn).ok()?, RecordType::A));
        let bytes = msg.to_vec().ok()?;
        let view = self.dns.read().unwrap_or_else(|e| e.into_inner()).clone();
        let reply = crate::dns::answer(&view, vantage, &bytes, crate::dns::Transport::Tcp)?;
        Message::from_vec(&reply)
            .ok()?
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
    }

    /// A real TCP connection from the vantage to `to:port` through the fabric. When the
    /// fabric drops the SYN or its answer, the failure is its reason, at once.
    async fn connect(
        &self,
        world: &World,
        from: &Vantage,
        to: &Target,
        port: u16,
    ) -> Result<(Box<dyn NetStream>, SocketAddrV4, String), Verdict> {
        let Some(net) = &self.net else {
            return Err(error("the account's network is not running"));
        };
        let src = self.source(world, from)?;
        let (ip, host) = self.destination(world, from, &src, to)?;
        let dst = SocketAddrV4::new(ip, port);
        let from_text = vantage_name(from);
        let flow = Flow::tcp_syn(src.addr, 40002, ip, port);
        if let Some(why) = self.fabric_drop(world, net, &src.ingress, &flow, Proto::Tcp, port)? {
            return Err(fail(format!("tcp/{port} to {ip} from {from_text}: {why}")));
        }
        let opened: std::io::Result<Box<dyn NetStream>> = match (from, &src.instance) {
            (Vantage::Learner, _) => match net.learner_connect(dst, PROBE_TIMEOUT).await {
                Ok(s) => Ok(Box::new(s)),
                Err(e) => return Err(fail(format!("from {from_text}: {e}"))),
            },
            // A sandboxed instance's kernel opens it (its agent hands the socket
            // over), so it crosses the fabric as the instance's own connections do.
            (_, Some(id)) => match (net.sandbox_agent(id), net.instance(id)) {
                ((Some(agent), _), _) => agent
                    .connect(dst, PROBE_TIMEOUT)
                    .await
                    .map(|s| Box::new(s) as Box<dyn NetStream>),
                ((None, false), Some(inside)) => inside.net().tcp_connect(dst, PROBE_TIMEOUT).await,
                _ => {
                    return Err(error(format!(
                        "instance {id} is running but the kit has no host for it yet"
                    )));
                }
            },
            _ => net
                .internet_connect(dst, PROBE_TIMEOUT)
                .await
                .map(|s| Box::new(s) as Box<dyn NetStream>),
        };
        let host = if port == 80 {
            host
        } else {
            format!("{host}:{port}")
        };
        match opened {
            Ok(s) => Ok((s, dst, host)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(fail(format!(
                "connection to {dst} from {from_text} refused (the network lets it through, but nothing listens on port {port})"
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(fail(format!(
                "connection to {dst} from {from_text} timed out (the network lets it through, but nothing answered)"
            ))),
            Err(e) => Err(fail(format!("connection to {dst} from {from_text}: {e}"))),
        }
    }

    async fn ssh(
        &self,
        world: &World,
        to: &Target,
        user: &str,
        key: &str,
        command: Option<&str>,
        output: Option<&str>,
    ) -> Result<Verdict, Verdict> {
        use russh::keys::PrivateKeyWithHashAlg;
        let path = self.learner_path(key)?;
        let shown = path.display();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(format!("your key file {shown} does not exist")));
            }
            Err(e) => return Err(fail(format!("cannot read your key file {shown}: {e}"))),
        };
        let secret = russh::keys::decode_secret_key(&text, None)
            .map_err(|e| fail(format!("{shown} is not a private key ssh can use: {e}")))?;
        let (stream, dst, _) = self.connect(world, &Vantage::Learner, to, 22).await?;
        let login = format!("ssh -i {key} {user}@{}", dst.ip());
        let session = async {
            let config = Arc::new(russh::client::Config::default());
            let mut handle = russh::client::connect_stream(config, stream, AnyHostKey)
                .await
                .map_err(|e| fail(format!("{login}: the SSH handshake failed: {e}")))?;
            let hash = if secret.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .ok()
                    .flatten()
                    .flatten()
            } else {
                None
            };
            let auth = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(secret), hash))
                .await
                .map_err(|e| error(format!("{login}: the kit's SSH client failed: {e}")))?;
            if !auth.success() {
                return Err(fail(format!(
                    "{login}: the key {shown} was refused for user {user} (Permission denied (publickey))"
                )));
            }
            let Some(cmd) = command else {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
                return Ok(pass(format!("{login}: logged in")));
            };
            let (code, out) = run_remote(&handle, cmd)
                .await
                .map_err(|e| error(format!("{login}: the session failed: {e}")))?;
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            Ok(judge_output(
                &format!("{login} {cmd:?}"),
                code,
                None,
                &out,
                output,
            ))
        };
        tokio::time::timeout(SESSION_TIMEOUT, session)
            .await
            .unwrap_or_else(|_| {
                Err(fail(format!(
                    "{login}: no answer within {} s",
                    SESSION_TIMEOUT.as_secs()
                )))
            })
    }

    /// The target group's targets as DescribeTargetHealth shows them; passes when at
    /// least `count` are in `state`. A failure lists every target's state and reason
    /// (`10.0.1.5:80 unhealthy (Target.Timeout)`), the clue a learner needs.
    fn targets(&self, world: &World, group: &str, state: &str, count: u32) -> Verdict {
        let Some(tg) = world
            .elb_target_groups
            .in_region(&self.region)
            .find(|t| t.name == group)
        else {
            return fail(format!("no target group named {group:?}"));
        };
        let shown: Vec<(String, String, Option<String>)> = tg
            .targets
            .iter()
            .map(|t| {
                let (st, reason, _) = world.shown_health(tg, t);
                (format!("{}:{}", t.id, t.port), st, reason)
            })
            .collect();
        let matching = shown.iter().filter(|(_, st, _)| st == state).count();
        let listed = if shown.is_empty() {
            "no targets are registered".to_string()
        } else {
            shown
                .iter()
                .map(|(t, st, reason)| match reason {
                    Some(r) => format!("{t} {st} ({r})"),
                    None => format!("{t} {st}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if matching >= count as usize {
            pass(format!(
                "{matching} of the targets of {group} are {state}: {listed}"
            ))
        } else {
            fail(format!(
                "{matching} of the targets of {group} are {state}, expected at least {count}: {listed}"
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn http(
        &self,
        world: &World,
        from: &Vantage,
        to: &Target,
        port: u16,
        path: &str,
        status: u16,
        body: Option<&str>,
    ) -> Result<Verdict, Verdict> {
        let (stream, _dst, host) = self.connect(world, from, to, port).await?;
        let url = format!("http://{host}{path}");
        let headers = [
            ("User-Agent".to_string(), "vpclab-lab".to_string()),
            ("Accept".to_string(), "*/*".to_string()),
        ];
        let asked = format!("GET {url} from {}", vantage_name(from));
        let resp = tokio::time::timeout(
            SESSION_TIMEOUT,
            crate::http1::request(stream, "GET", &host, path, &headers, b""),
        )
        .await
        .map_err(|_| {
            fail(format!(
                "{asked}: no answer within {} s",
                SESSION_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| fail(format!("{asked}: {e}")))?;
        let text = resp.text();
        if resp.status != status {
            return Ok(fail(format!(
                "{asked}: status {} {}, expected {status}",
                resp.status, resp.reason
            )));
        }
        if let Some(pattern) = body {
            let re = regex::Regex::new(pattern)
                .map_err(|e| error(format!("the check's body pattern is invalid: {e}")))?;
            if !re.is_match(&text) {
                return Ok(fail(format!(
                    "{asked}: status {status}, but the page does not match /{pattern}/ (it begins {:?})",
                    quote(&text)
                )));
            }
        }
        Ok(pass(format!("{asked}: status {status}")))
    }

    async fn exec(
        &self,
        world: &World,
        on: &str,
        command: &str,
        exit: i32,
        output: Option<&str>,
    ) -> Result<Verdict, Verdict> {
        use crate::instance::shell::{Io, Shell, Sink};
        let i = running_instance(world, &self.region, on)?;
        let Some(net) = &self.net else {
            return Err(error("the account's network is not running"));
        };
        let asked = format!("on {on}: {command:?}");
        match net.sandbox_agent(&i.id) {
            (Some(agent), _) => {
                // A sandbox: the command runs there, as the image's default user.
                let ran = agent.exec(command, SESSION_TIMEOUT).await.map_err(|e| {
                    error(format!(
                        "{asked}: the kit could not run it inside the instance: {e}"
                    ))
                })?;
                let Some(code) = ran.code else {
                    return Err(fail(format!(
                        "{asked} did not finish within {} s",
                        SESSION_TIMEOUT.as_secs()
                    )));
                };
                return Ok(judge_output(&asked, code, Some(exit), &ran.output, output));
            }
            (None, true) => {
                return Err(error(format!(
                    "instance {on} ({}) is running but its sandbox has not started yet",
                    i.id
                )));
            }
            (None, false) => {}
        }
        let Some(inside) = net.instance(&i.id) else {
            return Err(error(format!(
                "instance {on} ({}) is running but the kit has no host for it yet",
                i.id
            )));
        };
        // As root: the kit observes the whole instance, whoever the learner logs in as.
        let mut sh = Shell::new(inside, "root");
        let mut io = Io::buffered();
        let code = tokio::time::timeout(SESSION_TIMEOUT, sh.run_script(command, &mut io))
            .await
            .map_err(|_| {
                fail(format!(
                    "{asked} did not finish within {} s",
                    SESSION_TIMEOUT.as_secs()
                ))
            })?;
        let code = sh.exit_requested.unwrap_or(code);
        let mut out = Vec::new();
        for sink in [&io.out, &io.err] {
            if let Sink::Buf(b) = sink {
                out.extend_from_slice(b);
            }
        }
        let out = String::from_utf8_lossy(&out).to_string();
        Ok(judge_output(&asked, code, Some(exit), &out, output))
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
        return i
            .ipv4()
            .map(|ip| ip.to_string())
            .ok_or_else(|| format!("instance {name} has no IPv4 address (IPv6-only subnet)"));
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

/// The instance `name` if it is running; otherwise why not (the learner's to fix).
fn running_instance<'a>(
    world: &'a World,
    region: &str,
    name: &str,
) -> Result<&'a Instance, Verdict> {
    let Some(i) = find_instance(world, region, name) else {
        return Err(fail(format!("no instance named {name:?}")));
    };
    if i.state != InstanceState::Running {
        return Err(fail(format!(
            "instance {name} ({}) is {}",
            i.id,
            i.state.name()
        )));
    }
    Ok(i)
}

/// The start of `text` for a message: one line, at most [`QUOTE_CHARS`] characters.
fn quote(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(QUOTE_CHARS).collect()
}

/// A command's verdict: its exit status (when one is expected) and its output against
/// the pattern.
fn judge_output(
    asked: &str,
    code: i32,
    want_exit: Option<i32>,
    out: &str,
    pattern: Option<&str>,
) -> Verdict {
    if let Some(want) = want_exit
        && code != want
    {
        return fail(format!(
            "{asked} exited with {code}, expected {want}; it printed {:?}",
            quote(out)
        ));
    }
    if let Some(p) = pattern {
        let re = match regex::Regex::new(p) {
            Ok(r) => r,
            Err(e) => return error(format!("the check's output pattern is invalid: {e}")),
        };
        if !re.is_match(out) {
            return fail(format!(
                "{asked} printed {:?}, which does not match /{p}/",
                quote(out)
            ));
        }
    }
    pass(format!("{asked} exited with {code}"))
}

/// The kit's SSH client trusts any host key: it checks the learner's access, not the
/// instance's identity (which the learner's own `known_hosts` does).
struct AnyHostKey;

impl russh::client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Runs `cmd` in a session channel: its exit status and its output (stdout and stderr).
async fn run_remote(
    handle: &russh::client::Handle<AnyHostKey>,
    cmd: &str,
) -> Result<(i32, String), russh::Error> {
    use russh::ChannelMsg;
    let mut ch = handle.channel_open_session().await?;
    ch.exec(true, cmd.as_bytes()).await?;
    ch.eof().await?;
    let mut out = Vec::new();
    let mut code = 255;
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                let room = (64 * 1024usize).saturating_sub(out.len());
                out.extend_from_slice(&data[..data.len().min(room)]);
            }
            ChannelMsg::ExitStatus { exit_status } => {
                code = i32::try_from(exit_status).unwrap_or(255);
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    Ok((code, String::from_utf8_lossy(&out).to_string()))
}

//! Elastic Load Balancing v2 in the model: application and network load balancers,
//! their listeners and rules, target groups and their registered targets with the
//! health each target last showed.
//!
//! A load balancer owns one network interface per subnet it was given (its nodes):
//! requester-managed, described `ELB app/NAME/ID` (`ELB net/…` for a network load
//! balancer), with the load balancer's security groups, an address from the subnet and,
//! when the scheme is `internet-facing`, a public address. The world runtime
//! (`world::elb`) attaches a proxy host to each interface once the load balancer is
//! `active`, and runs the health checks; it writes what it observes back with
//! [`World::set_target_health`]. The rules here are the API's: names, schemes, subnets
//! in distinct Availability Zones, listener protocols per type, rule priorities, and
//! the error codes of the ELB API reference.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::ec2::eni::{EniAssociation, EniSpec};
use super::ec2::instance::InstanceState;
use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// How long a new load balancer stays `provisioning` (AWS takes minutes; a lab should not).
pub const PROVISION_MS: i64 = 1_000;
/// The default `deregistration_delay.timeout_seconds` (300 s).
pub const DEREGISTRATION_DELAY_S: i64 = 300;

/// The hosted zone id AWS gives a load balancer's DNS name in us-east-1 (ALB, NLB); an
/// alias record names it.
fn canonical_zone(region: &str, network: bool) -> &'static str {
    match (region, network) {
        ("us-east-1", false) => "Z35SXDOTRQ7X7K",
        ("us-east-1", true) => "Z26RNL4JYFTOTI",
        ("us-east-2", false) => "Z3AADJGX6KTTL2",
        ("us-east-2", true) => "ZLMOA37VPKANP",
        ("us-west-2", false) => "Z1H1FL5HABSF5",
        ("us-west-2", true) => "Z18D5FSROUN65G",
        ("eu-west-1", false) => "Z32O12XQLNTSW2",
        ("eu-west-1", true) => "Z2IFOLAFXWLO4F",
        (_, false) => "Z35SXDOTRQ7X7K",
        (_, true) => "Z26RNL4JYFTOTI",
    }
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationError", message)
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// One node: the load balancer's interface in one subnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub subnet_id: String,
    pub availability_zone: String,
    pub eni_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadBalancer {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID`.
    pub id: String,
    pub region: String,
    pub name: String,
    /// `application` or `network`.
    pub lb_type: String,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    pub vpc_id: String,
    pub nodes: Vec<Node>,
    pub security_groups: Vec<String>,
    pub dns_name: String,
    pub created: Timestamp,
    /// `provisioning`, `active`.
    pub state: String,
    pub active_at: Option<Timestamp>,
    pub tags: BTreeMap<String, String>,
}

impl Resource for LoadBalancer {
    const KIND: &'static str = "elb_load_balancer";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl LoadBalancer {
    pub fn is_network(&self) -> bool {
        self.lb_type == "network"
    }

    /// `app/NAME/ID` (`net/…`): the part of the ARN listener ARNs repeat, and the
    /// interface description.
    pub fn short(&self) -> &str {
        self.id.split_once(":loadbalancer/").map_or("", |(_, s)| s)
    }
}

/// Health-check settings of a target group (`CreateTargetGroup`'s names).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HealthCheck {
    pub protocol: String,
    /// `traffic-port` or a port number.
    pub port: String,
    pub path: Option<String>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes: `200`, `200,202`, `200-299`.
    pub matcher: Option<String>,
}

impl HealthCheck {
    /// AWS's defaults for a target group of `protocol` (ELB user guides, "Health check
    /// settings"): HTTP checks every 30 s with a 5 s timeout, 5 successes to become
    /// healthy, 2 failures to become unhealthy, path `/`, code 200; TCP checks every
    /// 30 s with a 10 s timeout.
    pub fn defaults(protocol: &str) -> HealthCheck {
        let http = matches!(protocol, "HTTP" | "HTTPS");
        HealthCheck {
            protocol: if protocol == "HTTPS" {
                "HTTPS".into()
            } else if http {
                "HTTP".into()
            } else {
                "TCP".into()
            },
            port: "traffic-port".into(),
            path: http.then(|| "/".to_string()),
            interval_s: 30,
            timeout_s: if http { 5 } else { 10 },
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: http.then(|| "200".to_string()),
        }
    }

    /// Whether `status` is one the matcher accepts.
    pub fn matches(&self, status: u16) -> bool {
        let m = self.matcher.as_deref().unwrap_or("200");
        m.split(',').any(|part| match part.trim().split_once('-') {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&status),
                _ => false,
            },
            None => part.trim().parse::<u16>() == Ok(status),
        })
    }
}

/// A registered target and the health the load balancer last saw.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// An instance id or an IPv4 address.
    pub id: String,
    pub port: u16,
    pub availability_zone: Option<String>,
    /// `initial`, `healthy`, `unhealthy`, `draining`.
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
    /// When a draining target leaves the group.
    pub drain_until: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetGroup {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`.
    pub id: String,
    pub region: String,
    pub name: String,
    pub protocol: String,
    pub port: Option<u16>,
    pub vpc_id: String,
    /// `instance` or `ip`.
    pub target_type: String,
    pub health: HealthCheck,
    pub targets: Vec<Target>,
    pub deregistration_delay_s: i64,
    pub tags: BTreeMap<String, String>,
}

impl Resource for TargetGroup {
    const KIND: &'static str = "elb_target_group";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// What a listener or rule does with a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Action {
    Forward {
        /// Target groups with their weights.
        groups: Vec<(String, u32)>,
    },
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: Option<String>,
    },
    /// A redirect: each part may use `#{protocol}`, `#{host}`, `#{port}`, `#{path}`
    /// and `#{query}` (ALB user guide, "Redirect actions"); `status` is 301 or 302.
    Redirect {
        protocol: String,
        port: String,
        host: String,
        path: String,
        query: String,
        status: u16,
    },
}

/// The security policies an HTTPS listener may name (ALB user guide, "Security
/// policies"); each offers TLS 1.2, and TLS 1.3 when its name says `TLS13`.
pub const SSL_POLICIES: &[&str] = &[
    "ELBSecurityPolicy-2016-08",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-2018-06",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-1-2021-06",
    "ELBSecurityPolicy-TLS13-1-0-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
];

/// The policy a secure listener gets when CreateListener names none (the API's
/// default; the console picks a TLS 1.3 policy instead).
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-2016-08";

/// The TLS versions a policy offers: (TLS 1.2, TLS 1.3).
pub fn policy_versions(policy: &str) -> (bool, bool) {
    let tls13 = policy.contains("TLS13");
    (!policy.contains("TLS13-1-3"), tls13)
}

impl Action {
    pub fn target_groups(&self) -> impl Iterator<Item = &str> {
        let groups: &[(String, u32)] = match self {
            Action::Forward { groups } => groups,
            Action::FixedResponse { .. } | Action::Redirect { .. } => &[],
        };
        groups.iter().map(|(g, _)| g.as_str())
    }
}

/// A rule condition (`path-pattern`, `host-header`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Condition {
    pub field: String,
    pub values: Vec<String>,
}

impl Condition {
    /// Whether a request matches: any value matches (`*` any run, `?` one character);
    /// host names compare without case, paths with it (ALB user guide, "Listener rules").
    pub fn matches(&self, host: &str, path: &str) -> bool {
        match self.field.as_str() {
            "host-header" => {
                let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
                self.values
                    .iter()
                    .any(|v| glob(&v.to_ascii_lowercase(), &host))
            }
            "path-pattern" => self.values.iter().any(|v| glob(v, path)),
            _ => false,
        }
    }
}

/// `*` and `?` wildcards over the whole text.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub arn: String,
    /// 1–50000.
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Listener {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/LBID/ID`.
    pub id: String,
    pub region: String,
    pub load_balancer: String,
    pub protocol: String,
    pub port: u16,
    pub default_actions: Vec<Action>,
    /// Non-default rules, by priority.
    pub rules: Vec<Rule>,
    pub tags: BTreeMap<String, String>,
    /// HTTPS/TLS listeners: the ACM certificate ARNs, the default first.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// HTTPS/TLS listeners: the security policy.
    #[serde(default)]
    pub ssl_policy: Option<String>,
}

impl Resource for Listener {
    const KIND: &'static str = "elb_listener";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Listener {
    /// The ARN of its default rule.
    pub fn default_rule_arn(&self) -> String {
        format!(
            "{}/{}",
            self.id.replacen(":listener/", ":listener-rule/", 1),
            "default"
        )
    }

    /// The actions for a request: the first rule (by priority) whose conditions all
    /// match, else the default actions.
    pub fn route(&self, host: &str, path: &str) -> &[Action] {
        let mut rules: Vec<&Rule> = self.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        rules
            .into_iter()
            .find(|r| r.conditions.iter().all(|c| c.matches(host, path)))
            .map_or(&self.default_actions, |r| &r.actions)
    }
}

/// What CreateLoadBalancer asks for.
#[derive(Clone, Debug, Default)]
pub struct LoadBalancerSpec {
    pub name: String,
    pub lb_type: String,
    pub scheme: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// What CreateTargetGroup asks for (health settings already merged with the defaults).
#[derive(Clone, Debug)]
pub struct TargetGroupSpec {
    pub name: String,
    pub protocol: Option<String>,
    pub port: Option<u16>,
    pub vpc_id: Option<String>,
    pub target_type: String,
    pub health: HealthCheckInput,
    pub tags: BTreeMap<String, String>,
}

/// Health-check settings as given (each optional).
#[derive(Clone, Debug, Default)]
pub struct HealthCheckInput {
    pub protocol: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub interval_s: Option<i64>,
    pub timeout_s: Option<i64>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub matcher: Option<String>,
}

fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 32 {
        return Err(validation(format!(
            "{kind} name '{name}' must be 1 to 32 characters long"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(validation(format!(
            "{kind} name '{name}' can contain only alphanumeric characters and hyphens"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(validation(format!(
            "{kind} name '{name}' cannot begin or end with a hyphen"
        )));
    }
    if kind == "Load balancer" && name.starts_with("internal-") {
        return Err(validation(format!(
            "Load balancer name '{name}' cannot begin with 'internal-'"
        )));
    }
    Ok(())
}

fn in_range(name: &str, v: Option<i64>, lo: i64, hi: i64, default: u32) -> ApiResult<u32> {
    match v {
        None => Ok(default),
        Some(x) if (lo..=hi).contains(&x) => Ok(x as u32),
        Some(x) => Err(validation(format!(
            "1 validation error detected: Value '{x}' at '{name}' failed to satisfy constraint: Member must have value between {lo} and {hi}"
        ))),
    }
}

fn check_matcher(m: &str) -> ApiResult<()> {
    let ok = m.split(',').all(|part| {
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .is_ok_and(|c| (200..=499).contains(&c))
        };
        match part.split_once('-') {
            Some((a, b)) => code(a) && code(b),
            None => code(part),
        }
    });
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "Health check matcher HTTP code '{m}' must be within '200-499' range"
        )))
    }
}

/// Merges the given settings into `base`, checking each against the API's ranges.
fn merge_health(base: &HealthCheck, h: &HealthCheckInput) -> ApiResult<HealthCheck> {
    let mut out = base.clone();
    if let Some(p) = &h.protocol {
        let p = p.to_ascii_uppercase();
        if !matches!(p.as_str(), "HTTP" | "HTTPS" | "TCP") {
            return Err(validation(format!(
                "Health check protocol '{p}' is not supported"
            )));
        }
        if matches!(p.as_str(), "HTTP" | "HTTPS") && out.path.is_none() {
            out.path = Some("/".into());
            out.matcher = Some("200".into());
        }
        out.protocol = p;
    }
    if let Some(p) = &h.port {
        if p != "traffic-port" && !p.parse::<u16>().is_ok_and(|n| n >= 1) {
            return Err(validation(format!(
                "Health check port '{p}' must be 'traffic-port' or a number from 1 to 65535"
            )));
        }
        out.port = p.clone();
    }
    if let Some(p) = &h.path {
        if !p.starts_with('/') || p.len() > 1024 {
            return Err(validation(format!(
                "Health check path '{p}' must begin with '/' and be at most 1024 characters"
            )));
        }
        out.path = Some(p.clone());
    }
    out.interval_s = in_range(
        "healthCheckIntervalSeconds",
        h.interval_s,
        5,
        300,
        out.interval_s,
    )?;
    out.timeout_s = in_range(
        "healthCheckTimeoutSeconds",
        h.timeout_s,
        2,
        120,
        out.timeout_s,
    )?;
    out.healthy_threshold = in_range(
        "healthyThresholdCount",
        h.healthy_threshold,
        2,
        10,
        out.healthy_threshold,
    )?;
    out.unhealthy_threshold = in_range(
        "unhealthyThresholdCount",
        h.unhealthy_threshold,
        2,
        10,
        out.unhealthy_threshold,
    )?;
    if let Some(m) = &h.matcher {
        check_matcher(m)?;
        out.matcher = Some(m.clone());
    }
    if out.timeout_s >= out.interval_s {
        return Err(validation(
            "Health check interval must be greater than the timeout.",
        ));
    }
    Ok(out)
}

impl World {
    fn elb_hex(&mut self) -> String {
        format!("{:016x}", self.alloc_bits())
    }

    fn elb_arn(&self, region: &str, rest: &str) -> String {
        format!(
            "arn:aws:elasticloadbalancing:{region}:{}:{rest}",
            self.account
        )
    }

    pub fn load_balancer(&self, env: &Env, arn: &str) -> ApiResult<&LoadBalancer> {
        self.elb_load_balancers
            .get(arn)
            .filter(|l| l.region == env.region)
            .ok_or_else(|| {
                not_found(
                    "LoadBalancerNotFound",
                    format!("Load balancer '{arn}' not found"),
                )
            })
    }

    pub fn target_group(&self, env: &Env, arn: &str) -> ApiResult<&TargetGroup> {
        self.elb_target_groups
            .get(arn)
            .filter(|t| t.region == env.region)
            .ok_or_else(|| {
                not_found(
                    "TargetGroupNotFound",
                    format!("Target groups '{arn}' not found"),
                )
            })
    }

    pub fn listener(&self, env: &Env, arn: &str) -> ApiResult<&Listener> {
        self.elb_listeners
            .get(arn)
            .filter(|l| l.region == env.region)
            .ok_or_else(|| not_found("ListenerNotFound", format!("Listener '{arn}' not found")))
    }

    /// The load balancers whose listeners or rules forward to `tg`.
    pub fn load_balancers_of(&self, tg: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .elb_listeners
            .iter()
            .filter(|l| {
                l.default_actions
                    .iter()
                    .chain(l.rules.iter().flat_map(|r| r.actions.iter()))
                    .any(|a| a.target_groups().any(|g| g == tg))
            })
            .map(|l| l.load_balancer.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// CreateLoadBalancer: one node (interface) per subnet.
    pub fn create_load_balancer(&mut self, env: &Env, spec: LoadBalancerSpec) -> ApiResult<String> {
        check_name("Load balancer", &spec.name)?;
        let network = match spec.lb_type.as_str() {
            "application" => false,
            "network" => true,
            "gateway" => {
                return Err(validation(
                    "vpclab does not emulate gateway load balancers (see docs/fidelity.md)",
                ));
            }
            t => {
                return Err(validation(format!(
                    "Load balancer type '{t}' must be one of 'application', 'network', 'gateway'"
                )));
            }
        };
        if !matches!(spec.scheme.as_str(), "internet-facing" | "internal") {
            return Err(validation(format!(
                "Scheme '{}' must be one of 'internet-facing', 'internal'",
                spec.scheme
            )));
        }
        if let Some(existing) = self
            .elb_load_balancers
            .iter()
            .find(|l| l.region == env.region && l.name == spec.name)
        {
            // AWS: the same name with the same settings returns the existing one.
            let same_subnets = existing
                .nodes
                .iter()
                .map(|n| n.subnet_id.as_str())
                .eq(spec.subnets.iter().map(String::as_str));
            if same_subnets && existing.scheme == spec.scheme && existing.lb_type == spec.lb_type {
                return Ok(existing.id.clone());
            }
            return Err(ApiError::new(
                "DuplicateLoadBalancerName",
                format!(
                    "A load balancer with the name '{}' already exists",
                    spec.name
                ),
            ));
        }
        if spec.subnets.is_empty() {
            return Err(validation(
                "At least one subnet must be specified (Subnets or SubnetMappings)",
            ));
        }
        let mut subnets = Vec::new();
        for id in &spec.subnets {
            let s = self.subnet(&env.region, id).map_err(|_| {
                ApiError::new(
                    "SubnetNotFound",
                    format!("The subnet ID '{id}' is not valid"),
                )
            })?;
            subnets.push(s.clone());
        }
        let vpc_id = subnets[0].vpc_id.clone();
        if subnets.iter().any(|s| s.vpc_id != vpc_id) {
            return Err(ApiError::new(
                "InvalidSubnet",
                "The subnets must all belong to the same VPC",
            ));
        }
        let mut zones: Vec<&str> = subnets
            .iter()
            .map(|s| s.availability_zone.as_str())
            .collect();
        zones.sort();
        let before = zones.len();
        zones.dedup();
        if zones.len() != before {
            return Err(ApiError::new(
                "InvalidConfigurationRequest",
                "A load balancer cannot be attached to multiple subnets in the same Availability Zone",
            ));
        }
        // ALB user guide, "Availability Zones": an Application Load Balancer needs
        // subnets in at least two Availability Zones.
        if !network && zones.len() < 2 {
            return Err(validation(
                "At least two subnets in two different Availability Zones must be specified",
            ));
        }
        if spec.scheme == "internet-facing" && self.igw_of_vpc(&vpc_id).is_none() {
            return Err(ApiError::new(
                "InvalidSubnet",
                format!("VPC {vpc_id} has no internet gateway"),
            ));
        }
        let mut groups = spec.security_groups.clone();
        if !network && groups.is_empty() {
            // AWS gives an ALB created without groups the VPC's default group.
            if let Some(g) = self.default_sg(&vpc_id) {
                groups.push(g.id.clone());
            }
        }
        for g in &groups {
            match self.security_groups.get(g) {
                Some(sg) if sg.region == env.region && sg.vpc_id == vpc_id => {}
                Some(_) => {
                    return Err(ApiError::new(
                        "InvalidSecurityGroup",
                        format!("Security group '{g}' does not belong to VPC '{vpc_id}'"),
                    ));
                }
                None => {
                    return Err(ApiError::new(
                        "InvalidSecurityGroup",
                        format!("Security group '{g}' does not exist"),
                    ));
                }
            }
        }
        let hex = self.elb_hex();
        let short = format!(
            "{}/{}/{hex}",
            if network { "net" } else { "app" },
            spec.name
        );
        let id = self.elb_arn(&env.region, &format!("loadbalancer/{short}"));
        // The DNS names as AWS forms them: `NAME-NUMBER.REGION.elb.amazonaws.com` for an
        // ALB, `NAME-HEX.elb.REGION.amazonaws.com` for an NLB, `internal-` in front of an
        // internal one.
        let prefix = if spec.scheme == "internal" {
            "internal-"
        } else {
            ""
        };
        let dns_name = if network {
            format!(
                "{prefix}{}-{}.elb.{}.amazonaws.com",
                spec.name,
                &hex[..16],
                env.region
            )
        } else {
            let number = u32::from_str_radix(&hex[..8], 16).unwrap_or(1) % 2_000_000_000;
            format!(
                "{prefix}{}-{number}.{}.elb.amazonaws.com",
                spec.name, env.region
            )
        };
        let mut nodes = Vec::new();
        for s in &subnets {
            let eni = self.create_interface(
                env,
                EniSpec {
                    subnet_id: s.id.clone(),
                    private_ip: None,
                    groups: if network { Vec::new() } else { groups.clone() },
                    description: format!("ELB {short}"),
                    interface_type: if network {
                        "network_load_balancer".into()
                    } else {
                        "interface".into()
                    },
                    requester_managed: true,
                },
            )?;
            let public = if spec.scheme == "internet-facing" {
                Some(self.alloc_public_ip()?)
            } else {
                None
            };
            if let Some(e) = self.network_interfaces.get_mut(&eni) {
                // AWS shows the interface in use, owned by amazon-elb; there is no
                // instance to attach it to.
                e.status = "in-use".into();
                e.association = public.map(|ip| EniAssociation {
                    public_ip: ip,
                    allocation_id: None,
                    association_id: None,
                });
            }
            nodes.push(Node {
                subnet_id: s.id.clone(),
                availability_zone: s.availability_zone.clone(),
                eni_id: eni,
            });
        }
        self.elb_load_balancers.insert(LoadBalancer {
            id: id.clone(),
            region: env.region.clone(),
            name: spec.name,
            lb_type: spec.lb_type,
            scheme: spec.scheme,
            vpc_id,
            nodes,
            security_groups: if network { Vec::new() } else { groups },
            dns_name,
            created: env.now,
            state: "provisioning".into(),
            active_at: Some(env.now.plus_ms(PROVISION_MS)),
            tags: spec.tags,
        });
        Ok(id)
    }

    /// The addresses a load balancer's DNS name answers with: its nodes' public
    /// addresses (internet-facing) or private ones (internal).
    pub fn node_addresses(&self, lb: &LoadBalancer) -> Vec<Ipv4Addr> {
        lb.nodes
            .iter()
            .filter_map(|n| self.network_interfaces.get(&n.eni_id))
            .filter_map(|e| {
                if lb.scheme == "internet-facing" {
                    e.association.as_ref().map(|a| a.public_ip)
                } else {
                    Some(e.private_ip)
                }
            })
            .collect()
    }

    pub fn canonical_hosted_zone(lb: &LoadBalancer) -> &'static str {
        canonical_zone(&lb.region, lb.is_network())
    }

    /// DeleteLoadBalancer: its listeners and interfaces go with it; target groups stay.
    /// Deleting one that does not exist succeeds, as on AWS.
    pub fn delete_load_balancer(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        let Ok(lb) = self.load_balancer(env, arn).cloned() else {
            return Ok(());
        };
        for l in self.elb_listeners.ids_where(|l| l.load_balancer == arn) {
            self.elb_listeners.remove(&l);
        }
        for n in &lb.nodes {
            self.network_interfaces.remove(&n.eni_id);
            self.drop_tags(&n.eni_id);
        }
        self.elb_load_balancers.remove(arn);
        Ok(())
    }

    /// CreateTargetGroup.
    pub fn create_target_group(&mut self, env: &Env, spec: TargetGroupSpec) -> ApiResult<String> {
        check_name("Target group", &spec.name)?;
        if !matches!(spec.target_type.as_str(), "instance" | "ip") {
            return Err(validation(format!(
                "vpclab emulates target types 'instance' and 'ip', not '{}' (see docs/fidelity.md)",
                spec.target_type
            )));
        }
        let protocol = spec
            .protocol
            .clone()
            .ok_or_else(|| validation("A protocol must be specified"))?
            .to_ascii_uppercase();
        if !matches!(
            protocol.as_str(),
            "HTTP" | "HTTPS" | "TCP" | "TLS" | "UDP" | "TCP_UDP"
        ) {
            return Err(validation(format!(
                "Protocol '{protocol}' must be one of 'HTTP', 'HTTPS', 'TCP', 'TLS', 'UDP', 'TCP_UDP', 'GENEVE'"
            )));
        }
        let port = spec
            .port
            .ok_or_else(|| validation("A port must be specified"))?;
        if port == 0 {
            return Err(validation("Port must be between 1 and 65535"));
        }
        let vpc_id = spec
            .vpc_id
            .clone()
            .ok_or_else(|| validation("A VPC ID must be specified"))?;
        self.vpc(&env.region, &vpc_id)?;
        let health = merge_health(&HealthCheck::defaults(&protocol), &spec.health)?;
        if let Some(existing) = self
            .elb_target_groups
            .iter()
            .find(|t| t.region == env.region && t.name == spec.name)
        {
            if existing.protocol == protocol
                && existing.port == Some(port)
                && existing.vpc_id == vpc_id
                && existing.health == health
            {
                return Ok(existing.id.clone());
            }
            return Err(ApiError::new(
                "DuplicateTargetGroupName",
                format!(
                    "A target group with the same name '{}' exists, but with different settings",
                    spec.name
                ),
            ));
        }
        let hex = self.elb_hex();
        let id = self.elb_arn(&env.region, &format!("targetgroup/{}/{hex}", spec.name));
        self.elb_target_groups.insert(TargetGroup {
            id: id.clone(),
            region: env.region.clone(),
            name: spec.name,
            protocol,
            port: Some(port),
            vpc_id,
            target_type: spec.target_type,
            health,
            targets: Vec::new(),
            deregistration_delay_s: DEREGISTRATION_DELAY_S,
            tags: spec.tags,
        });
        Ok(id)
    }

    /// ModifyTargetGroup: health-check settings.
    pub fn modify_target_group(
        &mut self,
        env: &Env,
        arn: &str,
        h: &HealthCheckInput,
    ) -> ApiResult<()> {
        let tg = self.target_group(env, arn)?;
        let health = merge_health(&tg.health, h)?;
        if let Some(t) = self.elb_target_groups.get_mut(arn) {
            t.health = health;
        }
        Ok(())
    }

    /// ModifyTargetGroupAttributes: `deregistration_delay.timeout_seconds` (0–3600).
    pub fn set_deregistration_delay(&mut self, env: &Env, arn: &str, v: &str) -> ApiResult<()> {
        self.target_group(env, arn)?;
        let secs = v
            .parse::<i64>()
            .ok()
            .filter(|s| (0..=3600).contains(s))
            .ok_or_else(|| {
                validation(format!(
                    "'deregistration_delay.timeout_seconds' value '{v}' must be between '0-3600' inclusive"
                ))
            })?;
        if let Some(t) = self.elb_target_groups.get_mut(arn) {
            t.deregistration_delay_s = secs;
        }
        Ok(())
    }

    /// DeleteTargetGroup: refused while a listener or rule forwards to it.
    pub fn delete_target_group(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        if self.target_group(env, arn).is_err() {
            return Ok(());
        }
        if !self.load_balancers_of(arn).is_empty() {
            return Err(ApiError::new(
                "ResourceInUse",
                format!("Target group '{arn}' is currently in use by a listener or a rule"),
            ));
        }
        self.elb_target_groups.remove(arn);
        Ok(())
    }

    /// The address a target receives traffic on: an instance's primary private address,
    /// or the IP target itself.
    pub fn target_address(&self, tg: &TargetGroup, target: &str) -> Option<Ipv4Addr> {
        if tg.target_type == "ip" {
            return target.parse().ok();
        }
        // An instance in an IPv6-only subnet has no IPv4 address to forward to.
        self.primary_eni_of_instance(target).and_then(|e| e.ipv4())
    }

    /// RegisterTargets.
    pub fn register_targets(
        &mut self,
        env: &Env,
        arn: &str,
        targets: &[(String, Option<u16>, Option<String>)],
    ) -> ApiResult<()> {
        let tg = self.target_group(env, arn)?.clone();
        let mut added = Vec::new();
        for (id, port, az) in targets {
            let port = port
                .or(tg.port)
                .ok_or_else(|| validation("A port must be specified"))?;
            let zone = if tg.target_type == "instance" {
                let inst = self.instances.get(id).filter(|i| i.region == env.region);
                let Some(inst) = inst else {
                    return Err(ApiError::new(
                        "InvalidTarget",
                        format!("The following targets are not valid instances: '{id}'"),
                    ));
                };
                if inst.vpc_id != tg.vpc_id {
                    return Err(ApiError::new(
                        "InvalidTarget",
                        format!(
                            "The following targets are not in the target group VPC '{}': '{id}'",
                            tg.vpc_id
                        ),
                    ));
                }
                if inst.state != InstanceState::Running {
                    return Err(ApiError::new(
                        "InvalidTarget",
                        format!(
                            "The following targets are not in a running state and cannot be registered: '{id}'"
                        ),
                    ));
                }
                Some(inst.availability_zone.clone())
            } else {
                let ip: Ipv4Addr = id.parse().map_err(|_| {
                    validation(format!("The IP address '{id}' is not a valid IPv4 address"))
                })?;
                let vpc = self.vpc(&env.region, &tg.vpc_id)?;
                let inside = vpc.cidrs.iter().any(|c| c.cidr.contains(&ip));
                if !inside && az.as_deref() != Some("all") {
                    return Err(ApiError::new(
                        "InvalidTarget",
                        format!(
                            "The IP address '{id}' is not within the CIDR ranges of VPC '{}'",
                            tg.vpc_id
                        ),
                    ));
                }
                az.clone().or_else(|| {
                    self.subnets
                        .iter()
                        .find(|s| s.vpc_id == tg.vpc_id && s.cidr.contains(&ip))
                        .map(|s| s.availability_zone.clone())
                })
            };
            added.push(Target {
                id: id.clone(),
                port,
                availability_zone: if tg.target_type == "ip" { zone } else { None },
                state: "initial".into(),
                reason: Some("Elb.RegistrationInProgress".into()),
                description: Some("Target registration is in progress".into()),
                drain_until: None,
            });
        }
        if let Some(t) = self.elb_target_groups.get_mut(arn) {
            for new in added {
                // Registering a registered target again changes nothing (a draining one
                // comes back as a new registration).
                match t
                    .targets
                    .iter_mut()
                    .find(|x| x.id == new.id && x.port == new.port)
                {
                    Some(x) if x.state != "draining" => {}
                    Some(x) => *x = new,
                    None => t.targets.push(new),
                }
            }
        }
        Ok(())
    }

    /// DeregisterTargets: the target drains for the group's deregistration delay.
    pub fn deregister_targets(
        &mut self,
        env: &Env,
        arn: &str,
        targets: &[(String, Option<u16>)],
    ) -> ApiResult<()> {
        let tg = self.target_group(env, arn)?.clone();
        for (id, port) in targets {
            let found = tg
                .targets
                .iter()
                .any(|t| &t.id == id && port.is_none_or(|p| p == t.port));
            if !found {
                return Err(ApiError::new(
                    "InvalidTarget",
                    format!(
                        "The following targets are not registered in target group '{arn}': '{id}'"
                    ),
                ));
            }
        }
        let until = env.now.plus_ms(tg.deregistration_delay_s * 1000);
        let in_use = !self.load_balancers_of(arn).is_empty();
        if let Some(t) = self.elb_target_groups.get_mut(arn) {
            for (id, port) in targets {
                for x in t
                    .targets
                    .iter_mut()
                    .filter(|x| &x.id == id && port.is_none_or(|p| p == x.port))
                {
                    x.state = "draining".into();
                    x.reason = Some("Target.DeregistrationInProgress".into());
                    x.description = Some("Target deregistration is in progress".into());
                    x.drain_until = Some(until);
                }
            }
            // A group no load balancer uses has no connections to drain.
            if !in_use || tg.deregistration_delay_s == 0 {
                t.targets.retain(|x| x.state != "draining");
            }
        }
        Ok(())
    }

    /// What the health checker saw: the target's new state, reason and description.
    /// Returns whether anything changed. A target that left the group meanwhile is
    /// left alone.
    pub fn set_target_health(
        &mut self,
        arn: &str,
        id: &str,
        port: u16,
        state: &str,
        reason: Option<&str>,
        description: Option<&str>,
    ) -> bool {
        let same = self.elb_target_groups.get(arn).and_then(|t| {
            t.targets
                .iter()
                .find(|x| x.id == id && x.port == port)
                .map(|x| {
                    x.state == "draining"
                        || (x.state == state
                            && x.reason.as_deref() == reason
                            && x.description.as_deref() == description)
                })
        });
        if same != Some(false) {
            return false;
        }
        if let Some(t) = self.elb_target_groups.get_mut(arn)
            && let Some(x) = t.targets.iter_mut().find(|x| x.id == id && x.port == port)
        {
            x.state = state.into();
            x.reason = reason.map(str::to_string);
            x.description = description.map(str::to_string);
        }
        true
    }

    /// The health DescribeTargetHealth shows: the stored state, unless the group is not
    /// in use (`unused`, `Target.NotInUse`) or the instance is not running
    /// (`unused`, `Target.InvalidState`).
    pub fn shown_health(
        &self,
        tg: &TargetGroup,
        t: &Target,
    ) -> (String, Option<String>, Option<String>) {
        if t.state == "draining" {
            return (t.state.clone(), t.reason.clone(), t.description.clone());
        }
        if self.load_balancers_of(&tg.id).is_empty() {
            return (
                "unused".into(),
                Some("Target.NotInUse".into()),
                Some(
                    "Target group is not configured to receive traffic from the load balancer"
                        .into(),
                ),
            );
        }
        if tg.target_type == "instance" {
            let state = self.instances.get(&t.id).map(|i| i.state);
            if state != Some(InstanceState::Running) {
                let word = match state {
                    Some(InstanceState::Stopped | InstanceState::Stopping) => "stopped",
                    Some(InstanceState::Pending) => "pending",
                    _ => "terminated",
                };
                return (
                    "unused".into(),
                    Some("Target.InvalidState".into()),
                    Some(format!("Target is in the {word} state")),
                );
            }
        }
        (t.state.clone(), t.reason.clone(), t.description.clone())
    }

    /// The certificates and policy of a secure listener (HTTPS, TLS), checked: exactly
    /// one certificate that ACM issued (or that was imported) in this region, a known
    /// policy. A plain listener takes neither.
    fn check_secure(
        &self,
        env: &Env,
        protocol: &str,
        certificates: &[String],
        ssl_policy: Option<&str>,
    ) -> ApiResult<Option<String>> {
        let secure = matches!(protocol, "HTTPS" | "TLS");
        if !secure {
            if !certificates.is_empty() {
                return Err(validation(format!(
                    "A certificate cannot be specified for {protocol} listeners"
                )));
            }
            if ssl_policy.is_some() {
                return Err(validation(format!(
                    "A security policy cannot be specified for {protocol} listeners"
                )));
            }
            return Ok(None);
        }
        match certificates {
            [] => {
                return Err(validation(format!(
                    "A certificate must be specified for {protocol} listeners"
                )));
            }
            [_] => {}
            _ => {
                return Err(validation(
                    "Only one certificate can be specified as the default certificate of a listener (vpclab: additional certificates are not emulated)",
                ));
            }
        }
        for arn in certificates {
            let usable = self
                .acm_certificates
                .get(arn)
                .is_some_and(|c| c.region == env.region && c.status == "ISSUED");
            if !usable {
                return Err(ApiError::new(
                    "CertificateNotFound",
                    format!("Certificate '{arn}' not found"),
                ));
            }
        }
        let policy = ssl_policy.unwrap_or(DEFAULT_SSL_POLICY);
        if !SSL_POLICIES.contains(&policy) {
            return Err(ApiError::new(
                "SSLPolicyNotFound",
                format!("SSL policy '{policy}' not found"),
            ));
        }
        Ok(Some(policy.to_string()))
    }

    /// CreateListener.
    #[allow(clippy::too_many_arguments)]
    pub fn create_listener(
        &mut self,
        env: &Env,
        lb_arn: &str,
        protocol: &str,
        port: u16,
        actions: Vec<Action>,
        tags: BTreeMap<String, String>,
        certificates: Vec<String>,
        ssl_policy: Option<String>,
    ) -> ApiResult<String> {
        let lb = self.load_balancer(env, lb_arn)?.clone();
        let protocol = protocol.to_ascii_uppercase();
        let allowed: &[&str] = if lb.is_network() {
            &["TCP", "TLS"]
        } else {
            &["HTTP", "HTTPS"]
        };
        if !allowed.contains(&protocol.as_str()) {
            let all: &[&str] = if lb.is_network() {
                &["TCP", "TLS", "UDP", "TCP_UDP"]
            } else {
                &["HTTP", "HTTPS"]
            };
            return Err(if all.contains(&protocol.as_str()) {
                validation(format!(
                    "vpclab does not emulate {protocol} listeners yet (see docs/fidelity.md)"
                ))
            } else {
                ApiError::new(
                    "UnsupportedProtocol",
                    format!(
                        "Protocol '{protocol}' is not supported by a load balancer of type '{}'",
                        lb.lb_type
                    ),
                )
            });
        }
        if port == 0 {
            return Err(validation("Port must be between 1 and 65535"));
        }
        if self
            .elb_listeners
            .iter()
            .any(|l| l.load_balancer == lb_arn && l.port == port)
        {
            return Err(ApiError::new(
                "DuplicateListener",
                format!("A listener already exists on port {port} of this load balancer"),
            ));
        }
        self.check_actions(env, &lb, &actions, true)?;
        let ssl_policy = self.check_secure(env, &protocol, &certificates, ssl_policy.as_deref())?;
        let hex = self.elb_hex();
        let id = self.elb_arn(&env.region, &format!("listener/{}/{hex}", lb.short()));
        self.elb_listeners.insert(Listener {
            id: id.clone(),
            region: env.region.clone(),
            load_balancer: lb_arn.to_string(),
            protocol,
            port,
            default_actions: actions,
            rules: Vec::new(),
            tags,
            certificates,
            ssl_policy,
        });
        Ok(id)
    }

    fn check_actions(
        &self,
        env: &Env,
        lb: &LoadBalancer,
        actions: &[Action],
        default: bool,
    ) -> ApiResult<()> {
        if actions.is_empty() {
            return Err(validation(if default {
                "A default action must be specified"
            } else {
                "An action must be specified"
            }));
        }
        for a in actions {
            match a {
                Action::Forward { groups } => {
                    if groups.is_empty() {
                        return Err(validation("A forward action needs a target group"));
                    }
                    for (g, _) in groups {
                        let tg = self.target_group(env, g)?;
                        if tg.vpc_id != lb.vpc_id {
                            return Err(ApiError::new(
                                "InvalidConfigurationRequest",
                                format!(
                                    "Target group '{g}' is in VPC '{}', not in the load balancer's VPC '{}'",
                                    tg.vpc_id, lb.vpc_id
                                ),
                            ));
                        }
                        let http = matches!(tg.protocol.as_str(), "HTTP" | "HTTPS");
                        if http == lb.is_network() {
                            return Err(ApiError::new(
                                "InvalidConfigurationRequest",
                                format!(
                                    "The protocol of target group '{g}' ({}) is not supported by a load balancer of type '{}'",
                                    tg.protocol, lb.lb_type
                                ),
                            ));
                        }
                        let others: Vec<String> = self
                            .load_balancers_of(g)
                            .into_iter()
                            .filter(|x| x != &lb.id)
                            .collect();
                        if !others.is_empty() {
                            return Err(ApiError::new(
                                "TargetGroupAssociationLimit",
                                format!(
                                    "The following target groups cannot be associated with more than one load balancer: '{g}'"
                                ),
                            ));
                        }
                    }
                }
                Action::Redirect {
                    protocol, status, ..
                } => {
                    if lb.is_network() {
                        return Err(validation(
                            "Action type 'redirect' is not supported by network load balancers",
                        ));
                    }
                    if !matches!(protocol.as_str(), "HTTP" | "HTTPS" | "#{protocol}") {
                        return Err(validation(format!(
                            "Redirect protocol '{protocol}' must be 'HTTP', 'HTTPS' or '#{{protocol}}'"
                        )));
                    }
                    if !matches!(status, 301 | 302) {
                        return Err(validation(
                            "A redirect status code must be 'HTTP_301' or 'HTTP_302'",
                        ));
                    }
                }
                Action::FixedResponse { status, .. } => {
                    if lb.is_network() {
                        return Err(validation(
                            "Action type 'fixed-response' is not supported by network load balancers",
                        ));
                    }
                    if !(200..=599).contains(status) {
                        return Err(validation(format!(
                            "Status code '{status}' must be a 2XX, 4XX or 5XX code"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// ModifyListener: new default actions and/or port.
    pub fn modify_listener(
        &mut self,
        env: &Env,
        arn: &str,
        port: Option<u16>,
        actions: Option<Vec<Action>>,
    ) -> ApiResult<()> {
        let l = self.listener(env, arn)?.clone();
        let lb = self.load_balancer(env, &l.load_balancer)?.clone();
        if let Some(p) = port
            && self
                .elb_listeners
                .iter()
                .any(|x| x.load_balancer == l.load_balancer && x.port == p && x.id != arn)
        {
            return Err(ApiError::new(
                "DuplicateListener",
                format!("A listener already exists on port {p} of this load balancer"),
            ));
        }
        if let Some(a) = &actions {
            self.check_actions(env, &lb, a, true)?;
        }
        if let Some(x) = self.elb_listeners.get_mut(arn) {
            if let Some(p) = port {
                x.port = p;
            }
            if let Some(a) = actions {
                x.default_actions = a;
            }
        }
        Ok(())
    }

    pub fn delete_listener(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        self.listener(env, arn)?;
        self.elb_listeners.remove(arn);
        Ok(())
    }

    /// CreateRule.
    pub fn create_rule(
        &mut self,
        env: &Env,
        listener: &str,
        priority: u32,
        conditions: Vec<Condition>,
        actions: Vec<Action>,
    ) -> ApiResult<String> {
        let l = self.listener(env, listener)?.clone();
        let lb = self.load_balancer(env, &l.load_balancer)?.clone();
        if lb.is_network() {
            return Err(validation(
                "Network load balancer listeners have no rules besides the default rule",
            ));
        }
        if !(1..=50_000).contains(&priority) {
            return Err(validation(format!(
                "1 validation error detected: Value '{priority}' at 'priority' failed to satisfy constraint: Member must have value between 1 and 50000"
            )));
        }
        if l.rules.iter().any(|r| r.priority == priority) {
            return Err(ApiError::new(
                "PriorityInUse",
                format!("Priority '{priority}' is currently in use"),
            ));
        }
        if conditions.is_empty() {
            return Err(validation("A rule must have at least one condition"));
        }
        for c in &conditions {
            if !matches!(c.field.as_str(), "path-pattern" | "host-header") {
                return Err(validation(format!(
                    "vpclab matches rule conditions on 'path-pattern' and 'host-header', not '{}' (see docs/fidelity.md)",
                    c.field
                )));
            }
            if c.values.is_empty() || c.values.iter().any(|v| v.is_empty() || v.len() > 128) {
                return Err(validation(format!(
                    "A '{}' condition needs one or more values of 1 to 128 characters",
                    c.field
                )));
            }
        }
        self.check_actions(env, &lb, &actions, false)?;
        let hex = self.elb_hex();
        let arn = format!(
            "{}/{hex}",
            l.id.replacen(":listener/", ":listener-rule/", 1)
        );
        if let Some(x) = self.elb_listeners.get_mut(listener) {
            x.rules.push(Rule {
                arn: arn.clone(),
                priority,
                conditions,
                actions,
            });
            x.rules.sort_by_key(|r| r.priority);
        }
        Ok(arn)
    }

    /// The listener holding rule `arn`.
    pub fn listener_of_rule(&self, env: &Env, arn: &str) -> ApiResult<&Listener> {
        self.elb_listeners
            .iter()
            .find(|l| {
                l.region == env.region
                    && (l.default_rule_arn() == arn || l.rules.iter().any(|r| r.arn == arn))
            })
            .ok_or_else(|| not_found("RuleNotFound", format!("Rule '{arn}' not found")))
    }

    pub fn delete_rule(&mut self, env: &Env, arn: &str) -> ApiResult<()> {
        let l = self.listener_of_rule(env, arn)?.clone();
        if l.default_rule_arn() == arn {
            return Err(ApiError::new(
                "OperationNotPermitted",
                "A default rule cannot be deleted",
            ));
        }
        if let Some(x) = self.elb_listeners.get_mut(&l.id) {
            x.rules.retain(|r| r.arn != arn);
        }
        Ok(())
    }

    /// AddTags / RemoveTags on any ELB resource by ARN.
    pub fn elb_tags_mut(
        &mut self,
        env: &Env,
        arn: &str,
    ) -> ApiResult<&mut BTreeMap<String, String>> {
        let missing = || {
            if arn.contains(":targetgroup/") {
                not_found(
                    "TargetGroupNotFound",
                    format!("Target groups '{arn}' not found"),
                )
            } else if arn.contains(":listener/") {
                not_found("ListenerNotFound", format!("Listener '{arn}' not found"))
            } else {
                not_found(
                    "LoadBalancerNotFound",
                    format!("Load balancer '{arn}' not found"),
                )
            }
        };
        if self
            .elb_load_balancers
            .get(arn)
            .is_some_and(|x| x.region == env.region)
        {
            return self
                .elb_load_balancers
                .get_mut(arn)
                .map(|x| &mut x.tags)
                .ok_or_else(missing);
        }
        if self
            .elb_target_groups
            .get(arn)
            .is_some_and(|x| x.region == env.region)
        {
            return self
                .elb_target_groups
                .get_mut(arn)
                .map(|x| &mut x.tags)
                .ok_or_else(missing);
        }
        if self
            .elb_listeners
            .get(arn)
            .is_some_and(|x| x.region == env.region)
        {
            return self
                .elb_listeners
                .get_mut(arn)
                .map(|x| &mut x.tags)
                .ok_or_else(missing);
        }
        Err(missing())
    }

    pub fn elb_tags(&self, env: &Env, arn: &str) -> ApiResult<BTreeMap<String, String>> {
        let here = |r: &str| r == env.region;
        if let Some(x) = self.elb_load_balancers.get(arn).filter(|x| here(&x.region)) {
            return Ok(x.tags.clone());
        }
        if let Some(x) = self.elb_target_groups.get(arn).filter(|x| here(&x.region)) {
            return Ok(x.tags.clone());
        }
        if let Some(x) = self.elb_listeners.get(arn).filter(|x| here(&x.region)) {
            return Ok(x.tags.clone());
        }
        if arn.contains(":targetgroup/") {
            Err(not_found(
                "TargetGroupNotFound",
                format!("Target groups '{arn}' not found"),
            ))
        } else if arn.contains(":listener/") {
            Err(not_found(
                "ListenerNotFound",
                format!("Listener '{arn}' not found"),
            ))
        } else {
            Err(not_found(
                "LoadBalancerNotFound",
                format!("Load balancer '{arn}' not found"),
            ))
        }
    }

    /// Whether a load balancer is due to become active or a target to finish draining.
    pub fn elb_due(&self, now: Timestamp) -> bool {
        self.elb_load_balancers
            .iter()
            .any(|l| l.active_at.is_some_and(|t| t <= now))
            || self.elb_target_groups.iter().any(|g| {
                g.targets
                    .iter()
                    .any(|t| t.drain_until.is_some_and(|d| d <= now))
            })
    }

    /// provisioning → active; drained targets leave their group.
    pub fn advance_elb(&mut self, now: Timestamp) {
        for id in self
            .elb_load_balancers
            .ids_where(|l| l.active_at.is_some_and(|t| t <= now))
        {
            if let Some(l) = self.elb_load_balancers.get_mut(&id) {
                l.state = "active".into();
                l.active_at = None;
            }
        }
        for id in self.elb_target_groups.ids_where(|g| {
            g.targets
                .iter()
                .any(|t| t.drain_until.is_some_and(|d| d <= now))
        }) {
            if let Some(g) = self.elb_target_groups.get_mut(&id) {
                g.targets.retain(|t| t.drain_until.is_none_or(|d| d > now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_paths_and_hosts_as_alb_rules_do() {
        assert!(glob("/api/*", "/api/users"));
        assert!(!glob("/api/*", "/static/a.css"));
        assert!(glob("*.example.com", "www.example.com"));
        assert!(glob("/img/?.png", "/img/a.png"));
        assert!(!glob("/img/?.png", "/img/ab.png"));
        let c = Condition {
            field: "host-header".into(),
            values: vec!["API.example.com".into()],
        };
        assert!(c.matches("api.EXAMPLE.com:80", "/"));
    }

    #[test]
    fn matchers_accept_lists_and_ranges() {
        let mut h = HealthCheck::defaults("HTTP");
        assert!(h.matches(200) && !h.matches(404));
        h.matcher = Some("200-299,404".into());
        assert!(h.matches(204) && h.matches(404) && !h.matches(500));
        assert!(check_matcher("200-299").is_ok());
        assert_eq!(check_matcher("600").unwrap_err().code, "ValidationError");
    }

    #[test]
    fn health_settings_are_checked_against_the_api_ranges() {
        let base = HealthCheck::defaults("HTTP");
        let bad = HealthCheckInput {
            interval_s: Some(4),
            ..HealthCheckInput::default()
        };
        assert_eq!(
            merge_health(&base, &bad).unwrap_err().code,
            "ValidationError"
        );
        let ok = HealthCheckInput {
            interval_s: Some(5),
            timeout_s: Some(2),
            healthy_threshold: Some(2),
            ..HealthCheckInput::default()
        };
        let h = merge_health(&base, &ok).unwrap();
        assert_eq!((h.interval_s, h.timeout_s, h.healthy_threshold), (5, 2, 2));
        assert_eq!(HealthCheck::defaults("TCP").timeout_s, 10);
    }
}

//! Amazon ECS on Fargate in the model: clusters, task definitions (families and
//! revisions), tasks and services, per account and region, durable in the store.
//!
//! A task in `awsvpc` mode owns an elastic network interface in the subnet it was given
//! (an ordinary `network_interface` row, requester-managed, described as an ECS
//! attachment), so the fabric enforces its security groups, routes and NACLs like any
//! other interface; the world (`world::tasks`) attaches a host stack at that interface
//! while the task is `RUNNING` and serves the known images there. The lifecycle is time
//! driven through [`World::advance_ecs`] (the daemon's tick): `PROVISIONING` →
//! `PENDING` → `RUNNING` → (`DEPROVISIONING`) → `STOPPED`; services start and stop
//! tasks until their running count equals their desired count.
//!
//! Rules follow the Amazon ECS Developer Guide ("Task definition parameters", the
//! Fargate CPU/memory table of "Troubleshoot Amazon ECS task definition invalid CPU or
//! memory errors", "Amazon ECS stopped task error codes") and the API reference's
//! errors. `images.rs` says which images vpclab runs and how.

pub mod images;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};
use crate::model::ec2::eni::EniSpec;
use crate::model::logs::InputEvent;

/// PROVISIONING → PENDING (the interface is attached, images are pulled).
pub const PROVISION_MS: i64 = 500;
/// PENDING → RUNNING.
pub const PENDING_MS: i64 = 1_000;
/// How long a container of an image vpclab cannot run lives before it exits.
pub const UNRUNNABLE_MS: i64 = 1_000;
/// DEPROVISIONING → STOPPED (the interface is detached and deleted).
pub const DEPROVISION_MS: i64 = 500;
/// Stopped tasks stay visible to DescribeTasks for an hour, as on AWS.
pub const STOPPED_VISIBLE_MS: i64 = 3_600_000;
/// Events kept per service (DescribeServices shows the newest 100).
const MAX_SERVICE_EVENTS: usize = 100;

pub fn client(message: impl Into<String>) -> ApiError {
    ApiError::new("ClientException", message)
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterException", message)
}

pub fn cluster_not_found() -> ApiError {
    ApiError::new("ClusterNotFoundException", "Cluster not found.")
}

pub fn service_not_found() -> ApiError {
    ApiError::new("ServiceNotFoundException", "Service not found.")
}

fn td_not_found() -> ApiError {
    client("Unable to describe task definition.")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    /// `REGION|NAME`.
    pub id: String,
    pub region: String,
    pub name: String,
    /// `ACTIVE` or `INACTIVE` (deleted clusters stay describable).
    pub status: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub created: Timestamp,
}

impl Resource for Cluster {
    const KIND: &'static str = "ecs_cluster";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskDefinition {
    /// `REGION|FAMILY:REVISION`, the revision zero-padded so ids sort by revision.
    pub id: String,
    pub region: String,
    pub family: String,
    pub revision: u32,
    /// `ACTIVE`, `INACTIVE` (deregistered) or `DELETE_IN_PROGRESS`.
    pub status: String,
    pub network_mode: String,
    pub requires_compatibilities: Vec<String>,
    /// Task-level CPU units and MiB, as AWS stores them (strings of integers).
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    /// The container definitions as registered (rendered back as they were given,
    /// with AWS's defaults filled in).
    pub containers: Vec<Value>,
    pub registered: Timestamp,
    pub deregistered: Option<Timestamp>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Resource for TaskDefinition {
    const KIND: &'static str = "ecs_task_definition";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl TaskDefinition {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{account}:task-definition/{}:{}",
            self.region, self.family, self.revision
        )
    }
}

fn td_id(region: &str, family: &str, revision: u32) -> String {
    format!("{region}|{family}:{revision:08}")
}

/// One container of a task at run time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskContainer {
    pub name: String,
    pub image: String,
    /// What vpclab runs for the image (`None`: an image it cannot run).
    pub known: Option<images::Known>,
    pub essential: bool,
    pub last_status: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN` (no health check).
    pub health: String,
    /// Container ports (TCP) from the definition's `portMappings`.
    pub ports: Vec<u16>,
    /// The awslogs destination: (region, group, stream).
    pub log: Option<(String, String, String)>,
    /// The image's command (from the definition, for images that take arguments).
    #[serde(default)]
    pub command: Vec<String>,
    /// Why the image cannot be pulled (an ECR image of this account that is not there).
    #[serde(default)]
    pub pull_error: Option<String>,
    /// When a failing health check turns the container `UNHEALTHY` (its health is
    /// `UNKNOWN` until then): see [`unhealthy_after_ms`].
    #[serde(default)]
    pub unhealthy_at: Option<Timestamp>,
}

/// A container health check's settings (ECS API reference, `HealthCheck`): interval
/// 5–300 s (default 30), timeout 2–120 s (default 5), retries 1–10 (default 3),
/// startPeriod 0–300 s (default none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval_s: i64,
    pub timeout_s: i64,
    pub retries: i64,
    pub start_period_s: i64,
}

impl HealthSettings {
    pub fn of(h: &Value) -> HealthSettings {
        HealthSettings {
            interval_s: int_of(h, "interval").unwrap_or(30),
            timeout_s: int_of(h, "timeout").unwrap_or(5),
            retries: int_of(h, "retries").unwrap_or(3),
            start_period_s: int_of(h, "startPeriod").unwrap_or(0),
        }
    }
}

fn check_health_settings(name: &str, h: &Value) -> ApiResult<()> {
    let s = HealthSettings::of(h);
    for (field, v, lo, hi) in [
        ("interval", s.interval_s, 5, 300),
        ("timeout", s.timeout_s, 2, 120),
        ("retries", s.retries, 1, 10),
        ("startPeriod", s.start_period_s, 0, 300),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(client(format!(
                "Invalid setting for container '{name}'. healthCheck.{field} must be between {lo} and {hi}."
            )));
        }
    }
    Ok(())
}

/// How long after a container starts a health check that always fails turns it
/// `UNHEALTHY`: the first check runs one interval after the start and then every
/// interval; a failure counts only once `startPeriod` has passed (ECS developer guide,
/// "Determine Amazon ECS task health using container health checks"), and `retries`
/// counted failures in a row make the container unhealthy.
pub fn unhealthy_after_ms(s: HealthSettings) -> i64 {
    let interval = s.interval_s.max(1);
    let first_counted = (s.start_period_s + interval - 1)
        .div_euclid(interval)
        .max(1);
    (first_counted + s.retries.max(1) - 1) * interval * 1000
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    /// The task id (32 hex digits).
    pub id: String,
    pub region: String,
    pub cluster: String,
    pub task_definition: String,
    /// `family:NAME` or `service:NAME`.
    pub group: String,
    pub started_by: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub eni_id: Option<String>,
    pub attachment_id: String,
    pub subnet_id: String,
    pub private_ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub last_status: String,
    pub desired_status: String,
    pub created: Timestamp,
    pub pull_started: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub stopping: Option<Timestamp>,
    pub stopped: Option<Timestamp>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    pub next_transition: Option<Timestamp>,
    pub containers: Vec<TaskContainer>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Resource for Task {
    const KIND: &'static str = "ecs_task";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Task {
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{account}:task/{}/{}",
            self.region, self.cluster, self.id
        )
    }

    /// The task's health: UNHEALTHY if an essential container is, HEALTHY if every
    /// essential container with a check is, else UNKNOWN.
    pub fn health(&self) -> &'static str {
        let essential: Vec<&TaskContainer> =
            self.containers.iter().filter(|c| c.essential).collect();
        if essential.iter().any(|c| c.health == "UNHEALTHY") {
            "UNHEALTHY"
        } else if !essential.is_empty() && essential.iter().all(|c| c.health == "HEALTHY") {
            "HEALTHY"
        } else {
            "UNKNOWN"
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` or `ACTIVE`.
    pub status: String,
    pub task_definition: String,
    pub desired: u32,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// `IN_PROGRESS` or `COMPLETED`.
    pub rollout_state: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub id: String,
    pub at: Timestamp,
    pub message: String,
}

/// The network configuration of RunTask and CreateService (awsvpc).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsVpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    /// `REGION|CLUSTER|NAME`.
    pub id: String,
    pub region: String,
    pub cluster: String,
    pub name: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub desired: u32,
    pub task_definition: String,
    pub network: AwsVpc,
    /// `loadBalancers` as given. Each names a target group (type `ip`) and a container
    /// port: a task of the service is registered there (its private address and that
    /// port) when it starts running, and deregistered when it begins to stop.
    pub load_balancers: Vec<Value>,
    pub deployments: Vec<Deployment>,
    /// Newest first.
    pub events: Vec<ServiceEvent>,
    pub created: Timestamp,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Next subnet to place a task in (round robin over `network.subnets`).
    #[serde(default)]
    pub next_subnet: usize,
    /// Whether the last event said the service reached a steady state.
    #[serde(default)]
    pub steady: bool,
    /// `healthCheckGracePeriodSeconds`: how long after a task started the scheduler
    /// ignores its load balancer health (default 0, as ECS's).
    #[serde(default)]
    pub grace_s: u32,
}

impl Resource for Service {
    const KIND: &'static str = "ecs_service";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Service {
    /// The (target group ARN, container port) pairs of `loadBalancers`.
    pub fn target_groups(&self) -> Vec<(String, u16)> {
        self.load_balancers
            .iter()
            .filter_map(|lb| {
                let tg = str_of(lb, "targetGroupArn")?;
                let port = int_of(lb, "containerPort").and_then(|p| u16::try_from(p).ok())?;
                Some((tg.to_string(), port))
            })
            .collect()
    }

    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{account}:service/{}/{}",
            self.region, self.cluster, self.name
        )
    }
}

/// The last component of an ARN or the name itself (`cluster`, `--cluster ARN`).
pub fn name_of(ident: &str) -> &str {
    if ident.starts_with("arn:") {
        ident.rsplit('/').next().unwrap_or(ident)
    } else {
        ident
    }
}

/// Parses task-level CPU: CPU units (`256`) or vCPUs (`1 vCPU`, `0.25 vcpu`), as the
/// Developer Guide allows in a task definition; stored as units.
pub fn parse_cpu(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("vcpu") {
        let f: f64 = v.trim().parse().ok()?;
        let units = f * 1024.0;
        (units.fract() == 0.0 && units > 0.0).then_some(units as u32)
    } else {
        t.parse().ok()
    }
}

/// Parses task-level memory: MiB (`512`) or GB (`2 GB`, `0.5gb`); stored as MiB.
pub fn parse_memory(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("gb") {
        let f: f64 = v.trim().parse().ok()?;
        let mib = f * 1024.0;
        (mib.fract() == 0.0 && mib > 0.0).then_some(mib as u32)
    } else {
        t.strip_suffix("mib")
            .or_else(|| t.strip_suffix("mb"))
            .unwrap_or(&t)
            .trim()
            .parse()
            .ok()
    }
}

/// The Fargate table ("Troubleshoot Amazon ECS task definition invalid CPU or memory
/// errors"): whether `memory` MiB is offered with `cpu` units.
pub fn fargate_combination(cpu: u32, memory: u32) -> bool {
    let gb = |n: u32| n * 1024;
    let steps = |lo: u32, hi: u32, step: u32| {
        memory >= gb(lo) && memory <= gb(hi) && (memory - gb(lo)).is_multiple_of(gb(step))
    };
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => steps(1, 4, 1),
        1024 => steps(2, 8, 1),
        2048 => steps(4, 16, 1),
        4096 => steps(8, 30, 1),
        8192 => steps(16, 60, 4),
        16384 => steps(32, 120, 8),
        _ => false,
    }
}

/// What RegisterTaskDefinition was given (the API layer has checked types).
#[derive(Clone, Debug, Default)]
pub struct Register {
    pub family: String,
    pub network_mode: Option<String>,
    pub requires_compatibilities: Vec<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    pub containers: Vec<Value>,
    pub tags: BTreeMap<String, String>,
}

fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// What RunTask (or a service) asks for.
#[derive(Clone, Debug, Default)]
pub struct RunSpec {
    pub cluster: String,
    pub task_definition: String,
    pub launch_type: Option<String>,
    pub network: Option<AwsVpc>,
    pub count: u32,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl World {
    // ---- clusters ----

    pub fn ecs_cluster(&self, env: &Env, ident: Option<&str>) -> ApiResult<&Cluster> {
        let name = name_of(ident.unwrap_or("default"));
        match self.ecs_clusters.get(&format!("{}|{name}", env.region)) {
            Some(c) if c.status == "ACTIVE" => Ok(c),
            _ => Err(cluster_not_found()),
        }
    }

    /// CreateCluster: idempotent for an active cluster of the same name (AWS answers
    /// with the existing cluster).
    pub fn create_ecs_cluster(
        &mut self,
        env: &Env,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        if name.is_empty()
            || name.len() > 255
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "Cluster name should have 1-255 characters and contain only letters (uppercase and lowercase), numbers, underscores, and hyphens.",
            ));
        }
        let id = format!("{}|{name}", env.region);
        match self.ecs_clusters.get_mut(&id) {
            Some(c) if c.status == "ACTIVE" => {}
            Some(c) => {
                c.status = "ACTIVE".into();
                c.tags = tags;
                c.created = env.now;
            }
            None => self.ecs_clusters.insert(Cluster {
                id: id.clone(),
                region: env.region.clone(),
                name: name.to_string(),
                status: "ACTIVE".into(),
                tags,
                created: env.now,
            }),
        }
        Ok(id)
    }

    /// DeleteCluster: refused while services are active or tasks run in it.
    pub fn delete_ecs_cluster(&mut self, env: &Env, ident: &str) -> ApiResult<String> {
        let c = self.ecs_cluster(env, Some(ident))?.clone();
        if self
            .ecs_services
            .iter()
            .any(|s| s.region == c.region && s.cluster == c.name && s.status != "INACTIVE")
        {
            return Err(ApiError::new(
                "ClusterContainsServicesException",
                "The Cluster cannot be deleted while Services are active.",
            ));
        }
        if self
            .ecs_tasks
            .iter()
            .any(|t| t.region == c.region && t.cluster == c.name && t.last_status != "STOPPED")
        {
            return Err(ApiError::new(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            ));
        }
        if let Some(x) = self.ecs_clusters.get_mut(&c.id) {
            x.status = "INACTIVE".into();
        }
        Ok(c.id)
    }

    /// (running, pending, active services) of a cluster.
    pub fn ecs_cluster_counts(&self, c: &Cluster) -> (usize, usize, usize) {
        let tasks = self
            .ecs_tasks
            .iter()
            .filter(|t| t.region == c.region && t.cluster == c.name);
        let (mut running, mut pending) = (0, 0);
        for t in tasks {
            match t.last_status.as_str() {
                "RUNNING" => running += 1,
                "PROVISIONING" | "PENDING" | "ACTIVATING" => pending += 1,
                _ => {}
            }
        }
        let services = self
            .ecs_services
            .iter()
            .filter(|s| s.region == c.region && s.cluster == c.name && s.status == "ACTIVE")
            .count();
        (running, pending, services)
    }

    // ---- task definitions ----

    /// A task definition by `family`, `family:revision` or ARN; `family` alone means
    /// the latest ACTIVE revision.
    pub fn ecs_task_definition(&self, env: &Env, ident: &str) -> ApiResult<&TaskDefinition> {
        let bare = if ident.starts_with("arn:") {
            ident.rsplit_once('/').map_or(ident, |(_, r)| r)
        } else {
            ident
        };
        match bare.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().map_err(|_| td_not_found())?;
                self.ecs_task_definitions
                    .get(&td_id(&env.region, family, rev))
                    .filter(|t| t.status != "DELETE_IN_PROGRESS")
                    .ok_or_else(td_not_found)
            }
            None => self
                .ecs_task_definitions
                .in_region(&env.region)
                .filter(|t| t.family == bare && t.status == "ACTIVE")
                .max_by_key(|t| t.revision)
                .ok_or_else(td_not_found),
        }
    }

    /// RegisterTaskDefinition: a new revision of the family.
    pub fn register_task_definition(&mut self, env: &Env, r: Register) -> ApiResult<String> {
        if r.family.is_empty()
            || r.family.len() > 255
            || !r
                .family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(client(
                "Family contains invalid characters. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
            ));
        }
        if r.containers.is_empty() {
            return Err(client("Container list cannot be empty."));
        }
        if r.containers.len() > 10 {
            return Err(client(
                "Too many containers. A task definition can have at most 10 containers.",
            ));
        }
        let network_mode = r.network_mode.clone().unwrap_or_else(|| "bridge".into());
        if !matches!(network_mode.as_str(), "bridge" | "host" | "awsvpc" | "none") {
            return Err(invalid(format!(
                "Invalid networkMode '{network_mode}'. Valid values: bridge, host, awsvpc, none."
            )));
        }
        for c in &r.requires_compatibilities {
            if !matches!(
                c.as_str(),
                "EC2" | "FARGATE" | "EXTERNAL" | "MANAGED_INSTANCES"
            ) {
                return Err(invalid(format!(
                    "Invalid requiresCompatibilities value '{c}'."
                )));
            }
        }
        let fargate = r.requires_compatibilities.iter().any(|c| c == "FARGATE");
        let cpu = match &r.cpu {
            Some(s) => Some(parse_cpu(s).ok_or_else(|| client("Invalid 'cpu' setting for task."))?),
            None => None,
        };
        let memory = match &r.memory {
            Some(s) => {
                Some(parse_memory(s).ok_or_else(|| client("Invalid 'memory' setting for task."))?)
            }
            None => None,
        };
        if fargate {
            if network_mode != "awsvpc" {
                return Err(client("Fargate only supports network mode ‘awsvpc’."));
            }
            let Some(cpu) = cpu else {
                return Err(client(
                    "Fargate requires that 'cpu' be defined at the task level.",
                ));
            };
            let Some(memory) = memory else {
                return Err(client(
                    "Fargate requires that 'memory' be defined at the task level.",
                ));
            };
            if !fargate_combination(cpu, memory) {
                return Err(client("Invalid 'cpu' setting for task."));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut cpu_sum = 0i64;
        let mut containers = Vec::new();
        for c in &r.containers {
            let name = str_of(c, "name").unwrap_or("");
            if name.is_empty() {
                return Err(client("Container.name should not be null or empty."));
            }
            if str_of(c, "image").is_none_or(str::is_empty) {
                return Err(client("Container.image should not be null or empty."));
            }
            if !names.insert(name.to_string()) {
                return Err(client(format!(
                    "Duplicate container name '{name}' in the task definition."
                )));
            }
            let c_mem = int_of(c, "memory");
            let c_res = int_of(c, "memoryReservation");
            if memory.is_none() && c_mem.is_none() && c_res.is_none() {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
                )));
            }
            if let (Some(m), Some(res)) = (c_mem, c_res)
                && res > m
            {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. 'memoryReservation' must be less than 'memory'."
                )));
            }
            if let Some(m) = c_mem.or(c_res)
                && m < 6
            {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. The memory for a container must be at least 6 MiB."
                )));
            }
            if let (Some(task_mem), Some(m)) = (memory, c_mem.or(c_res))
                && m > i64::from(task_mem)
            {
                return Err(client(format!(
                    "Invalid setting for container '{name}'. The container memory ({m}) must not be greater than the task memory ({task_mem})."
                )));
            }
            cpu_sum += int_of(c, "cpu").unwrap_or(0);
            if let Some(log) = c.get("logConfiguration") {
                let driver = str_of(log, "logDriver").unwrap_or("");
                if fargate && !matches!(driver, "awslogs" | "splunk" | "awsfirelens") {
                    return Err(client(format!(
                        "Log driver {driver} is not supported on Fargate. Supported log drivers: awslogs, splunk, awsfirelens."
                    )));
                }
                if driver == "awslogs" {
                    let opts = log.get("options");
                    let group = opts.and_then(|o| str_of(o, "awslogs-group"));
                    if group.is_none() {
                        return Err(client(
                            "awslogs log driver requires the 'awslogs-group' option.",
                        ));
                    }
                    if fargate
                        && opts
                            .and_then(|o| str_of(o, "awslogs-stream-prefix"))
                            .is_none()
                    {
                        return Err(client(
                            "Fargate requires log configuration options to include awslogs-stream-prefix to support log driver awslogs.",
                        ));
                    }
                    if fargate && r.execution_role_arn.is_none() {
                        return Err(client(
                            "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
                        ));
                    }
                }
            }
            if let Some(h) = c.get("healthCheck") {
                check_health_settings(name, h)?;
            }
            for pm in c
                .get("portMappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let cp = int_of(pm, "containerPort");
                if let Some(hp) = int_of(pm, "hostPort")
                    && network_mode == "awsvpc"
                    && cp.is_some_and(|cp| cp != hp)
                {
                    return Err(client(
                        "When networkMode=awsvpc, the host ports and container ports in port mappings must match.",
                    ));
                }
                if cp.is_none_or(|p| !(1..=65535).contains(&p)) {
                    return Err(client(format!(
                        "Invalid setting for container '{name}'. containerPort must be between 1 and 65535."
                    )));
                }
            }
            containers.push(with_defaults(c, &network_mode));
        }
        if let Some(cpu) = cpu
            && cpu_sum > i64::from(cpu)
        {
            return Err(client(format!(
                "Invalid setting for containers. The sum of container 'cpu' values ({cpu_sum}) must not be greater than the task 'cpu' ({cpu})."
            )));
        }
        let revision = self
            .ecs_task_definitions
            .in_region(&env.region)
            .filter(|t| t.family == r.family)
            .map(|t| t.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let id = td_id(&env.region, &r.family, revision);
        self.ecs_task_definitions.insert(TaskDefinition {
            id: id.clone(),
            region: env.region.clone(),
            family: r.family,
            revision,
            status: "ACTIVE".into(),
            network_mode,
            requires_compatibilities: r.requires_compatibilities,
            cpu: cpu.map(|c| c.to_string()),
            memory: memory.map(|m| m.to_string()),
            execution_role_arn: r.execution_role_arn,
            task_role_arn: r.task_role_arn,
            containers,
            registered: env.now,
            deregistered: None,
            tags: r.tags,
        });
        Ok(id)
    }

    /// DeregisterTaskDefinition: the revision becomes INACTIVE (running tasks keep
    /// running; new tasks cannot use it).
    pub fn deregister_task_definition(&mut self, env: &Env, ident: &str) -> ApiResult<String> {
        if !ident.contains(':') {
            return Err(client(
                "Invalid revision number. Number: the revision is required to deregister a task definition.",
            ));
        }
        let id = self.ecs_task_definition(env, ident)?.id.clone();
        if let Some(t) = self.ecs_task_definitions.get_mut(&id) {
            t.status = "INACTIVE".into();
            t.deregistered = Some(env.now);
        }
        Ok(id)
    }

    // ---- tasks ----

    /// RunTask (and a service's scheduler): starts `count` tasks. Returns their ids.
    pub fn run_ecs_tasks(&mut self, env: &Env, spec: &RunSpec) -> ApiResult<Vec<String>> {
        let cluster = self.ecs_cluster(env, Some(&spec.cluster))?.name.clone();
        let td = self
            .ecs_task_definition(env, &spec.task_definition)?
            .clone();
        if td.status != "ACTIVE" {
            return Err(client("TaskDefinition is inactive"));
        }
        if !(1..=10).contains(&spec.count) {
            return Err(invalid("Count must be between 1 and 10."));
        }
        match spec.launch_type.as_deref() {
            Some("FARGATE") => {}
            Some("EC2") | None => {
                // No launch type and no capacity provider: ECS places on EC2 container
                // instances, and vpclab's clusters have none.
                return Err(invalid(
                    "No Container Instances were found in your cluster.",
                ));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Launch type {other} is not supported by vpclab (FARGATE only)."
                )));
            }
        }
        if !td.requires_compatibilities.iter().any(|c| c == "FARGATE") {
            return Err(invalid(
                "Task definition does not support launch_type FARGATE.",
            ));
        }
        let Some(net) = spec.network.clone() else {
            return Err(invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        };
        if net.subnets.is_empty() {
            return Err(invalid("subnets can not be empty."));
        }
        if net.subnets.len() > 16 {
            return Err(invalid("subnets can have at most 16 items."));
        }
        if net.security_groups.len() > 5 {
            return Err(invalid("securityGroups can have at most 5 items."));
        }
        let mut vpc = None;
        for s in &net.subnets {
            let sub = self
                .subnet(&env.region, s)
                .map_err(|e| invalid(e.message))?;
            match &vpc {
                None => vpc = Some(sub.vpc_id.clone()),
                Some(v) if *v != sub.vpc_id => {
                    return Err(invalid("The subnets must all belong to the same VPC."));
                }
                _ => {}
            }
        }
        for g in &net.security_groups {
            self.security_group(&env.region, g)
                .map_err(|e| invalid(e.message))?;
        }
        let mut ids = Vec::new();
        for i in 0..spec.count as usize {
            let subnet = net.subnets[i % net.subnets.len()].clone();
            ids.push(self.start_task(env, &cluster, &td, &subnet, &net, spec)?);
        }
        Ok(ids)
    }

    /// What runs for `image`: a known image by name, or an image pushed to this
    /// account's ECR whose config labels (`org.opencontainers.image.base.name` or
    /// `vpclab.image`) name a known image. An ECR image that is not there cannot be
    /// pulled (the error ECS reports).
    pub fn resolve_image(
        &self,
        region: &str,
        image: &str,
    ) -> (Option<images::Known>, Option<String>) {
        if let Some(k) = images::known(image) {
            return (Some(k), None);
        }
        let Some((host, path)) = image.split_once('/') else {
            return (None, None);
        };
        let host = host.split(':').next().unwrap_or(host);
        let Some((account, rest)) = host.split_once(".dkr.ecr.") else {
            return (None, None);
        };
        let repo_region = rest
            .strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".localhost"))
            .unwrap_or(region);
        if account != self.account {
            return (None, None);
        }
        let (repo, reference) = match path.split_once('@') {
            Some((r, d)) => (r, d.to_string()),
            None => match path.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r, t.to_string()),
                _ => (path, "latest".to_string()),
            },
        };
        let found = self
            .ecr_repositories
            .get(&format!("{repo_region}|{repo}"))
            .and_then(|r| r.image(&reference));
        match found {
            None => (
                None,
                Some(format!(
                    "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref {image}: {image}: not found"
                )),
            ),
            Some(i) => (
                ["vpclab.image", "org.opencontainers.image.base.name"]
                    .iter()
                    .filter_map(|k| i.labels.get(*k))
                    .find_map(|v| images::known(v)),
                None,
            ),
        }
    }

    fn start_task(
        &mut self,
        env: &Env,
        cluster: &str,
        td: &TaskDefinition,
        subnet: &str,
        net: &AwsVpc,
        spec: &RunSpec,
    ) -> ApiResult<String> {
        let (a, b) = (self.alloc_bits(), self.alloc_bits());
        let id = format!("{a:016x}{b:016x}");
        let attachment = {
            let (x, y) = (self.alloc_bits(), self.alloc_bits());
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                x >> 32,
                (x >> 16) & 0xffff,
                x & 0xfff,
                0x8000 | ((y >> 48) & 0x3fff),
                y & 0xffff_ffff_ffff
            )
        };
        let eni = self.create_interface(
            env,
            EniSpec {
                subnet_id: subnet.to_string(),
                private_ip: None,
                groups: net.security_groups.clone(),
                description: format!(
                    "arn:aws:ecs:{}:{}:attachment/{attachment}",
                    env.region, self.account
                ),
                interface_type: "interface".into(),
                requester_managed: true,
            },
        )?;
        if let Some(e) = self.network_interfaces.get_mut(&eni) {
            e.status = "in-use".into();
        }
        if net.assign_public_ip {
            self.assign_auto_public_ip(&eni, None)?;
        }
        let (ip, mac) = self
            .network_interfaces
            .get(&eni)
            .map(|e| (Some(e.private_ip), Some(e.mac.clone())))
            .unwrap_or((None, None));
        let containers = td
            .containers
            .iter()
            .map(|c| {
                let name = str_of(c, "name").unwrap_or("").to_string();
                let image = str_of(c, "image").unwrap_or("").to_string();
                let log = c
                    .get("logConfiguration")
                    .filter(|l| str_of(l, "logDriver") == Some("awslogs"))
                    .and_then(|l| l.get("options"))
                    .and_then(|o| {
                        let group = str_of(o, "awslogs-group")?.to_string();
                        let prefix = str_of(o, "awslogs-stream-prefix").unwrap_or("ecs");
                        let region = str_of(o, "awslogs-region").unwrap_or(&env.region);
                        Some((region.to_string(), group, format!("{prefix}/{name}/{id}")))
                    });
                let command: Vec<String> = c
                    .get("command")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let (known, pull_error) = self.resolve_image(&env.region, &image);
                TaskContainer {
                    known,
                    pull_error,
                    unhealthy_at: None,
                    essential: c.get("essential").and_then(Value::as_bool).unwrap_or(true),
                    last_status: "PENDING".into(),
                    exit_code: None,
                    reason: None,
                    health: "UNKNOWN".into(),
                    ports: c
                        .get("portMappings")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| str_of(p, "protocol").is_none_or(|p| p == "tcp"))
                        .filter_map(|p| int_of(p, "containerPort"))
                        .filter_map(|p| u16::try_from(p).ok())
                        .collect(),
                    log,
                    command,
                    name,
                    image,
                }
            })
            .collect();
        self.ecs_tasks.insert(Task {
            id: id.clone(),
            region: env.region.clone(),
            cluster: cluster.to_string(),
            task_definition: td.id.clone(),
            group: spec
                .group
                .clone()
                .unwrap_or_else(|| format!("family:{}", td.family)),
            started_by: spec.started_by.clone(),
            cpu: td.cpu.clone(),
            memory: td.memory.clone(),
            eni_id: Some(eni),
            attachment_id: attachment,
            subnet_id: subnet.to_string(),
            private_ip: ip,
            mac,
            last_status: "PROVISIONING".into(),
            desired_status: "RUNNING".into(),
            created: env.now,
            pull_started: None,
            started: None,
            stopping: None,
            stopped: None,
            stopped_reason: None,
            stop_code: None,
            next_transition: Some(env.now.plus_ms(PROVISION_MS)),
            containers,
            tags: spec.tags.clone(),
        });
        Ok(id)
    }

    pub fn ecs_task(&self, env: &Env, cluster: &str, ident: &str) -> Option<&Task> {
        let id = name_of(ident);
        self.ecs_tasks
            .get(id)
            .filter(|t| t.region == env.region && t.cluster == cluster)
    }

    /// StopTask (and the scheduler's stops): desired STOPPED, then DEPROVISIONING.
    pub fn stop_ecs_task(
        &mut self,
        env: &Env,
        cluster: &str,
        ident: &str,
        reason: &str,
        code: &str,
    ) -> ApiResult<String> {
        let id = self
            .ecs_task(env, cluster, ident)
            .ok_or_else(|| invalid("The referenced task was not found."))?
            .id
            .clone();
        self.begin_stop(&id, env.now, reason, code, None);
        Ok(id)
    }

    /// Moves a task towards STOPPED (no-op if it is already on its way).
    fn begin_stop(
        &mut self,
        id: &str,
        now: Timestamp,
        reason: &str,
        code: &str,
        exit: Option<(String, i32, String)>,
    ) {
        if self
            .ecs_tasks
            .get(id)
            .is_some_and(|t| t.desired_status != "STOPPED" && t.last_status == "RUNNING")
        {
            self.service_targets_of(id, now, false);
        }
        let Some(t) = self.ecs_tasks.get_mut(id) else {
            return;
        };
        if t.desired_status == "STOPPED" {
            return;
        }
        t.desired_status = "STOPPED".into();
        t.stopping = Some(now);
        t.stopped_reason = Some(reason.to_string());
        t.stop_code = Some(code.to_string());
        t.last_status = "DEPROVISIONING".into();
        t.next_transition = Some(now.plus_ms(DEPROVISION_MS));
        for c in &mut t.containers {
            match &exit {
                Some((name, status, why)) if *name == c.name => {
                    c.exit_code = Some(*status);
                    c.reason = Some(why.clone()).filter(|r| !r.is_empty());
                }
                _ if c.last_status == "RUNNING" => c.exit_code = Some(137),
                _ => {}
            }
            c.last_status = "STOPPED".into();
        }
    }

    /// Registers a service's task in its target groups (`register`) or deregisters it,
    /// as ECS does when the task starts running and when it begins to stop. A target
    /// group that went away meanwhile is reported in the service's events.
    fn service_targets_of(&mut self, task: &str, now: Timestamp, register: bool) {
        let Some(t) = self.ecs_tasks.get(task) else {
            return;
        };
        let (Some(name), Some(ip)) = (t.group.strip_prefix("service:"), t.private_ip) else {
            return;
        };
        let sid = format!("{}|{}|{name}", t.region, t.cluster);
        let Some(s) = self.ecs_services.get(&sid) else {
            return;
        };
        let groups = s.target_groups();
        let (service, region) = (s.name.clone(), s.region.clone());
        let env = Env::new(region, now).with_action("vpclab:EcsService");
        let ip = ip.to_string();
        for (tg, port) in groups {
            let r = if register {
                self.register_targets(&env, &tg, &[(ip.clone(), Some(port), None)])
            } else {
                self.deregister_targets(&env, &tg, &[(ip.clone(), Some(port))])
            };
            match r {
                Ok(()) if register => self.push_event(
                    &sid,
                    now,
                    format!("(service {service}) registered 1 targets in (target-group {tg})"),
                ),
                Ok(()) => self.push_event(
                    &sid,
                    now,
                    format!(
                        "(service {service}) deregistered 1 targets in (target-group {tg})"
                    ),
                ),
                // Already gone (deregistered by hand): nothing to do.
                Err(_) if !register => {}
                Err(e) => self.push_event(
                    &sid,
                    now,
                    format!(
                        "(service {service}) failed to register targets in (target-group {tg}) with (error {})",
                        e.message
                    ),
                ),
            }
        }
    }

    // ---- services ----

    pub fn ecs_service(&self, env: &Env, cluster: &str, ident: &str) -> ApiResult<&Service> {
        self.ecs_services
            .get(&format!("{}|{cluster}|{}", env.region, name_of(ident)))
            .ok_or_else(service_not_found)
    }

    /// CreateService.
    #[allow(clippy::too_many_arguments)]
    pub fn create_ecs_service(
        &mut self,
        env: &Env,
        cluster: Option<&str>,
        name: &str,
        task_definition: &str,
        desired: u32,
        launch_type: Option<&str>,
        network: Option<AwsVpc>,
        load_balancers: Vec<Value>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<String> {
        let cluster = self.ecs_cluster(env, cluster)?.name.clone();
        if name.is_empty()
            || name.len() > 255
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "Service name should have 1-255 characters and contain only letters (uppercase and lowercase), numbers, underscores, and hyphens.",
            ));
        }
        let id = format!("{}|{cluster}|{name}", env.region);
        if self
            .ecs_services
            .get(&id)
            .is_some_and(|s| s.status != "INACTIVE")
        {
            return Err(invalid("Creation of service was not idempotent."));
        }
        let td = self.ecs_task_definition(env, task_definition)?.clone();
        // Validate what each task will need now, as CreateService does.
        if launch_type != Some("FARGATE") {
            return Err(invalid(
                "No Container Instances were found in your cluster.",
            ));
        }
        if !td.requires_compatibilities.iter().any(|c| c == "FARGATE") {
            return Err(invalid(
                "Task definition does not support launch_type FARGATE.",
            ));
        }
        let Some(network) = network else {
            return Err(invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        };
        if network.subnets.is_empty() {
            return Err(invalid("subnets can not be empty."));
        }
        for s in &network.subnets {
            self.subnet(&env.region, s)
                .map_err(|e| invalid(e.message))?;
        }
        for g in &network.security_groups {
            self.security_group(&env.region, g)
                .map_err(|e| invalid(e.message))?;
        }
        // ECS's rules for `loadBalancers` with awsvpc tasks (Developer Guide, "Use an
        // Application Load Balancer for Amazon ECS"): at most five target groups, each
        // of target type `ip` and forwarded to by a load balancer.
        if load_balancers.len() > 5 {
            return Err(invalid("loadBalancers can have at most 5 items."));
        }
        for lb in &load_balancers {
            let Some(tg_arn) = str_of(lb, "targetGroupArn") else {
                return Err(invalid(
                    "targetGroupArn must be specified for an Application or Network Load Balancer.",
                ));
            };
            let tg = self
                .target_group(env, tg_arn)
                .map_err(|_| invalid(format!("Unable to find the target group {tg_arn}.")))?;
            if tg.target_type != "ip" {
                return Err(invalid(format!(
                    "The provided target group {tg_arn} has target type {}, which is incompatible with the awsvpc network mode specified in the task definition.",
                    tg.target_type
                )));
            }
            if self.load_balancers_of(tg_arn).is_empty() {
                return Err(invalid(format!(
                    "The target group with targetGroupArn {tg_arn} does not have an associated load balancer."
                )));
            }
        }
        for lb in &load_balancers {
            let cname = str_of(lb, "containerName").unwrap_or("");
            let port = int_of(lb, "containerPort");
            let ok = td.containers.iter().any(|c| {
                str_of(c, "name") == Some(cname)
                    && c.get("portMappings")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|p| int_of(p, "containerPort") == port)
            });
            if !ok {
                return Err(invalid(format!(
                    "The container {cname} did not have a container port {} defined.",
                    port.unwrap_or(0)
                )));
            }
        }
        let dep = format!("ecs-svc/{:019}", self.alloc_bits() >> 1);
        self.ecs_services.insert(Service {
            id: id.clone(),
            region: env.region.clone(),
            cluster,
            name: name.to_string(),
            status: "ACTIVE".into(),
            desired,
            task_definition: td.id.clone(),
            network,
            load_balancers,
            deployments: vec![Deployment {
                id: dep,
                status: "PRIMARY".into(),
                task_definition: td.id.clone(),
                desired,
                created: env.now,
                updated: env.now,
                rollout_state: "IN_PROGRESS".into(),
            }],
            events: Vec::new(),
            created: env.now,
            tags,
            next_subnet: 0,
            steady: false,
            grace_s: 0,
        });
        Ok(id)
    }

    /// UpdateService: desired count and/or a new task definition (a new deployment).
    pub fn update_ecs_service(
        &mut self,
        env: &Env,
        cluster: Option<&str>,
        ident: &str,
        desired: Option<u32>,
        task_definition: Option<&str>,
        force: bool,
    ) -> ApiResult<String> {
        let cluster = self.ecs_cluster(env, cluster)?.name.clone();
        let svc = self.ecs_service(env, &cluster, ident)?.clone();
        if svc.status != "ACTIVE" {
            return Err(ApiError::new(
                "ServiceNotActiveException",
                "Service was not ACTIVE.",
            ));
        }
        let td = match task_definition {
            Some(t) => Some(self.ecs_task_definition(env, t)?.id.clone()),
            None => None,
        };
        let new_deployment = force || td.as_ref().is_some_and(|t| *t != svc.task_definition);
        let dep_id = new_deployment.then(|| format!("ecs-svc/{:019}", self.alloc_bits() >> 1));
        let Some(s) = self.ecs_services.get_mut(&svc.id) else {
            return Err(service_not_found());
        };
        if let Some(d) = desired {
            s.desired = d;
        }
        if let Some(t) = td {
            s.task_definition = t;
        }
        if let Some(dep) = dep_id {
            for d in &mut s.deployments {
                d.status = "ACTIVE".into();
            }
            s.deployments.insert(
                0,
                Deployment {
                    id: dep,
                    status: "PRIMARY".into(),
                    task_definition: s.task_definition.clone(),
                    desired: s.desired,
                    created: env.now,
                    updated: env.now,
                    rollout_state: "IN_PROGRESS".into(),
                },
            );
        }
        if let Some(p) = s.deployments.first_mut() {
            p.desired = s.desired;
            p.updated = env.now;
        }
        s.steady = false;
        Ok(svc.id)
    }

    /// DeleteService: refused while scaled above 0 unless forced; the service drains.
    pub fn delete_ecs_service(
        &mut self,
        env: &Env,
        cluster: Option<&str>,
        ident: &str,
        force: bool,
    ) -> ApiResult<String> {
        let cluster = self.ecs_cluster(env, cluster)?.name.clone();
        let svc = self.ecs_service(env, &cluster, ident)?.clone();
        if svc.status != "ACTIVE" {
            return Err(ApiError::new(
                "ServiceNotActiveException",
                "Service was not ACTIVE.",
            ));
        }
        if svc.desired > 0 && !force {
            return Err(invalid(
                "The service cannot be stopped while it is scaled above 0.",
            ));
        }
        if let Some(s) = self.ecs_services.get_mut(&svc.id) {
            s.status = "DRAINING".into();
            s.desired = 0;
        }
        Ok(svc.id)
    }

    // ---- time ----

    /// Whether a task transition or a service's scheduling is due.
    pub fn ecs_due(&self, now: Timestamp) -> bool {
        self.ecs_tasks
            .iter()
            .any(|t| t.next_transition.is_some_and(|x| x <= now))
            || self
                .ecs_services
                .iter()
                .any(|s| self.service_needs_work(s) || !self.elb_unhealthy_tasks(s, now).is_empty())
    }

    /// Sets a service's `healthCheckGracePeriodSeconds` (CreateService, UpdateService;
    /// no new deployment, as the ECS API reference says).
    pub fn set_ecs_service_grace(&mut self, id: &str, seconds: i64) -> ApiResult<()> {
        let grace = u32::try_from(seconds)
            .ok()
            .filter(|s| *s <= i32::MAX as u32)
            .ok_or_else(|| {
                invalid("healthCheckGracePeriodSeconds must be between 0 and 2147483647.")
            })?;
        let s = self
            .ecs_services
            .get_mut(id)
            .ok_or_else(service_not_found)?;
        s.grace_s = grace;
        Ok(())
    }

    /// The running tasks of a service's current deployment that a target group of the
    /// service reports `unhealthy`, once the grace period after their start has passed
    /// (ECS developer guide, "Health checks" and `healthCheckGracePeriodSeconds`): (task,
    /// target group ARN, container port, the target's reason).
    fn elb_unhealthy_tasks(
        &self,
        s: &Service,
        now: Timestamp,
    ) -> Vec<(String, String, u16, String)> {
        if s.status != "ACTIVE" {
            return Vec::new();
        }
        let groups = s.target_groups();
        if groups.is_empty() {
            return Vec::new();
        }
        let grace_ms = i64::from(s.grace_s) * 1000;
        let mut out = Vec::new();
        for t in self.service_tasks(s) {
            let past_grace = t.started.is_some_and(|at| at.0 + grace_ms <= now.0);
            if t.desired_status != "RUNNING" || t.last_status != "RUNNING" || !past_grace {
                continue;
            }
            let Some(ip) = t.private_ip.map(|i| i.to_string()) else {
                continue;
            };
            for (tg, port) in &groups {
                let bad = self.elb_target_groups.get(tg).and_then(|g| {
                    g.targets
                        .iter()
                        .find(|x| x.id == ip && x.port == *port && x.state == "unhealthy")
                });
                if let Some(x) = bad {
                    let why = x
                        .description
                        .clone()
                        .or_else(|| x.reason.clone())
                        .unwrap_or_else(|| "Health checks failed".into());
                    out.push((t.id.clone(), tg.clone(), *port, why));
                    break;
                }
            }
        }
        out
    }

    fn service_tasks<'a>(&'a self, s: &'a Service) -> impl Iterator<Item = &'a Task> + 'a {
        let group = format!("service:{}", s.name);
        self.ecs_tasks
            .iter()
            .filter(move |t| t.region == s.region && t.cluster == s.cluster && t.group == group)
    }

    fn service_needs_work(&self, s: &Service) -> bool {
        if s.status == "INACTIVE" {
            return false;
        }
        let live: Vec<&Task> = self
            .service_tasks(s)
            .filter(|t| t.desired_status == "RUNNING")
            .collect();
        let stale = live.iter().any(|t| t.task_definition != s.task_definition);
        let running = live.iter().filter(|t| t.last_status == "RUNNING").count();
        live.len() != s.desired as usize
            || stale
            || (s.status == "DRAINING"
                && !self.service_tasks(s).any(|t| t.last_status != "STOPPED"))
            || (!s.steady && running == s.desired as usize && live.len() == running)
    }

    /// Applies task transitions and service scheduling due at `now`.
    pub fn advance_ecs(&mut self, now: Timestamp) {
        for id in self
            .ecs_tasks
            .ids_where(|t| t.next_transition.is_some_and(|x| x <= now))
        {
            self.step_task(&id, now);
        }
        for id in self
            .ecs_tasks
            .ids_where(|t| t.stopped.is_some_and(|s| s.0 + STOPPED_VISIBLE_MS <= now.0))
        {
            self.ecs_tasks.remove(&id);
        }
        for id in self.ecs_services.ids_where(|s| s.status != "INACTIVE") {
            self.schedule_service(&id, now);
        }
    }

    fn step_task(&mut self, id: &str, now: Timestamp) {
        let Some(t) = self.ecs_tasks.get(id).cloned() else {
            return;
        };
        match t.last_status.as_str() {
            "PROVISIONING" => {
                if let Some(x) = self.ecs_tasks.get_mut(id) {
                    x.last_status = "PENDING".into();
                    x.pull_started = Some(now);
                    x.next_transition = Some(now.plus_ms(PENDING_MS));
                }
            }
            "PENDING" => self.start_containers(&t, now),
            "RUNNING" => {
                // A container vpclab cannot run has exited.
                let failed = t
                    .containers
                    .iter()
                    .find(|c| c.essential && c.exit_code.is_some())
                    .map(|c| (c.name.clone(), c.exit_code.unwrap_or(1)));
                if let Some((name, code)) = failed {
                    self.begin_stop(
                        id,
                        now,
                        "Essential container in task exited",
                        "EssentialContainerExited",
                        Some((name, code, String::new())),
                    );
                } else if let Some(x) = self.ecs_tasks.get_mut(id) {
                    // Failing health checks whose time has come turn their containers
                    // UNHEALTHY; the next such time, if any, stays due.
                    let mut next: Option<Timestamp> = None;
                    for c in &mut x.containers {
                        match c.unhealthy_at {
                            Some(at) if at <= now => {
                                c.health = "UNHEALTHY".into();
                                c.unhealthy_at = None;
                            }
                            Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                            None => {}
                        }
                    }
                    x.next_transition = next;
                }
            }
            "DEPROVISIONING" => {
                if let Some(eni) = &t.eni_id {
                    self.network_interfaces.remove(eni);
                    self.drop_tags(eni);
                }
                if let Some(x) = self.ecs_tasks.get_mut(id) {
                    x.last_status = "STOPPED".into();
                    x.stopped = Some(now);
                    x.next_transition = None;
                }
            }
            _ => {
                if let Some(x) = self.ecs_tasks.get_mut(id) {
                    x.next_transition = None;
                }
            }
        }
    }

    /// PENDING → RUNNING: checks the log groups (awslogs fails the task when its group
    /// is missing and `awslogs-create-group` is not true), writes what each container
    /// prints at start, decides health, and marks containers that cannot run.
    fn start_containers(&mut self, t: &Task, now: Timestamp) {
        if let Some(e) = t.containers.iter().find_map(|c| c.pull_error.clone()) {
            self.begin_stop(&t.id, now, &e, "TaskFailedToStart", None);
            return;
        }
        let td = self.ecs_task_definitions.get(&t.task_definition).cloned();
        let create_group = |name: &str| {
            td.as_ref()
                .and_then(|td| {
                    td.containers
                        .iter()
                        .find(|c| str_of(c, "name") == Some(name))
                })
                .and_then(|c| c.pointer("/logConfiguration/options/awslogs-create-group"))
                .and_then(Value::as_str)
                == Some("true")
        };
        for c in &t.containers {
            let Some((region, group, _)) = &c.log else {
                continue;
            };
            let env = Env::new(region.clone(), now).with_action("vpclab:EcsTask");
            if self.log_group(&env, group).is_err() {
                if create_group(&c.name) {
                    let _ = self.create_log_group(&env, group, None, BTreeMap::new());
                } else {
                    let reason = "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist. : exit status 1";
                    self.begin_stop(&t.id, now, reason, "TaskFailedToStart", None);
                    return;
                }
            }
        }
        // A passing check makes the container HEALTHY; a failing one leaves it UNKNOWN
        // until its interval, retries and start period have run out.
        let health_of = |name: &str, known: Option<images::Known>| -> (String, Option<Timestamp>) {
            let check = td.as_ref().and_then(|td| {
                td.containers
                    .iter()
                    .find(|c| str_of(c, "name") == Some(name))
                    .and_then(|c| c.get("healthCheck"))
            });
            let cmd = check
                .and_then(|h| h.get("command"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                });
            let passes = match (&cmd, known) {
                (None, _) => return ("UNKNOWN".into(), None),
                (Some(cmd), Some(k)) => images::health_check_passes(k, cmd, &t.containers),
                (Some(_), None) => false,
            };
            if passes {
                return ("HEALTHY".into(), None);
            }
            let settings = HealthSettings::of(check.unwrap_or(&Value::Null));
            (
                "UNKNOWN".into(),
                Some(now.plus_ms(unhealthy_after_ms(settings))),
            )
        };
        let mut lines: Vec<(String, String, String, Vec<String>)> = Vec::new();
        let mut next = None;
        let mut containers = t.containers.clone();
        for c in &mut containers {
            c.last_status = "RUNNING".into();
            (c.health, c.unhealthy_at) = health_of(&c.name, c.known);
            let (out, exits) = images::start_output(c);
            if let Some(code) = exits {
                c.exit_code = Some(code);
                next = Some(now.plus_ms(UNRUNNABLE_MS));
            } else if let Some(at) = c.unhealthy_at {
                next = Some(next.map_or(at, |n: Timestamp| n.min(at)));
            }
            if let Some((region, group, stream)) = &c.log {
                lines.push((region.clone(), group.clone(), stream.clone(), out));
            }
        }
        if let Some(x) = self.ecs_tasks.get_mut(&t.id) {
            x.last_status = "RUNNING".into();
            x.started = Some(now);
            x.containers = containers;
            x.next_transition = next;
        }
        self.service_targets_of(&t.id, now, true);
        for (region, group, stream, out) in lines {
            if out.is_empty() {
                continue;
            }
            let env = Env::new(region, now).with_action("vpclab:EcsTask");
            let events: Vec<InputEvent> = out
                .into_iter()
                .map(|message| InputEvent {
                    timestamp: now.0,
                    message,
                })
                .collect();
            if let Err(e) = self.put_log_events(&env, &group, &stream, &events, true) {
                tracing::warn!(group, error = %e.message, "task log delivery failed");
            }
        }
    }

    fn push_event(&mut self, id: &str, now: Timestamp, message: String) {
        let eid = {
            let b = self.alloc_bits();
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                b >> 32,
                (b >> 16) & 0xffff,
                b & 0xffff,
                (b >> 8) & 0xffff,
                b & 0xffff_ffff_ffff
            )
        };
        if let Some(s) = self.ecs_services.get_mut(id) {
            s.events.insert(
                0,
                ServiceEvent {
                    id: eid,
                    at: now,
                    message,
                },
            );
            s.events.truncate(MAX_SERVICE_EVENTS);
        }
    }

    /// The service scheduler: replaces tasks of an old task definition, stops extra
    /// tasks, starts missing ones, and records events as ECS words them.
    fn schedule_service(&mut self, id: &str, now: Timestamp) {
        let Some(s) = self.ecs_services.get(id).cloned() else {
            return;
        };
        let env = Env::new(s.region.clone(), now).with_action("vpclab:EcsService");
        // Tasks the load balancer reports unhealthy are stopped (their replacements are
        // started below, as for any missing task): "Task failed ELB health checks".
        let unhealthy = self.elb_unhealthy_tasks(&s, now);
        if !unhealthy.is_empty() {
            for (task, tg, port, why) in &unhealthy {
                self.push_event(
                    id,
                    now,
                    format!(
                        "(service {}) (task {task}) (port {port}) is unhealthy in (target-group {tg}) due to (reason {why}).",
                        s.name
                    ),
                );
                self.begin_stop(
                    task,
                    now,
                    &format!("Task failed ELB health checks in (target-group {tg})"),
                    "ServiceSchedulerInitiated",
                    None,
                );
            }
            self.push_event(
                id,
                now,
                format!(
                    "(service {}) has stopped {} running tasks: {}.",
                    s.name,
                    unhealthy.len(),
                    unhealthy
                        .iter()
                        .map(|(t, ..)| format!("(task {t})"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        let live: Vec<Task> = self
            .service_tasks(&s)
            .filter(|t| t.desired_status == "RUNNING")
            .cloned()
            .collect();
        let dep = s
            .deployments
            .first()
            .map(|d| d.id.clone())
            .unwrap_or_default();
        // Stop tasks of an older deployment, and extra tasks (newest first).
        let mut stop: Vec<&Task> = live
            .iter()
            .filter(|t| t.task_definition != s.task_definition)
            .collect();
        let current: Vec<&Task> = live
            .iter()
            .filter(|t| t.task_definition == s.task_definition)
            .collect();
        if current.len() > s.desired as usize {
            let mut extra = current.clone();
            extra.sort_by_key(|t| std::cmp::Reverse(t.created));
            stop.extend(extra.into_iter().take(current.len() - s.desired as usize));
        }
        if !stop.is_empty() {
            let ids: Vec<String> = stop.iter().map(|t| t.id.clone()).collect();
            for t in &ids {
                self.begin_stop(
                    t,
                    now,
                    &format!("Scaling activity initiated by (deployment {dep})"),
                    "ServiceSchedulerInitiated",
                    None,
                );
            }
            self.push_event(
                id,
                now,
                format!(
                    "(service {}) has stopped {} running tasks: {}.",
                    s.name,
                    ids.len(),
                    ids.iter()
                        .map(|t| format!("(task {t})"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        let missing = (s.desired as usize).saturating_sub(current.len());
        if s.status == "ACTIVE" && missing > 0 {
            let mut started = Vec::new();
            let mut next_subnet = s.next_subnet;
            for _ in 0..missing.min(10) {
                let subnet = s.network.subnets[next_subnet % s.network.subnets.len()].clone();
                next_subnet += 1;
                let spec = RunSpec {
                    cluster: s.cluster.clone(),
                    task_definition: s.task_definition.clone(),
                    launch_type: Some("FARGATE".into()),
                    network: Some(AwsVpc {
                        subnets: vec![subnet.clone()],
                        ..s.network.clone()
                    }),
                    count: 1,
                    started_by: Some(dep.clone()),
                    group: Some(format!("service:{}", s.name)),
                    tags: BTreeMap::new(),
                };
                let td = self.ecs_task_definitions.get(&s.task_definition).cloned();
                let r = match td {
                    Some(td) => self.start_task(&env, &s.cluster, &td, &subnet, &s.network, &spec),
                    None => Err(td_not_found()),
                };
                match r {
                    Ok(t) => started.push(t),
                    Err(e) => {
                        self.push_event(
                            id,
                            now,
                            format!(
                                "(service {}) was unable to place a task. Reason: {}.",
                                s.name, e.message
                            ),
                        );
                        break;
                    }
                }
            }
            if let Some(x) = self.ecs_services.get_mut(id) {
                x.next_subnet = next_subnet % s.network.subnets.len().max(1);
                x.steady = false;
            }
            if !started.is_empty() {
                self.push_event(
                    id,
                    now,
                    format!(
                        "(service {}) has started {} tasks: {}.",
                        s.name,
                        started.len(),
                        started
                            .iter()
                            .map(|t| format!("(task {t})"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
            }
            return;
        }
        let all_running = current.iter().all(|t| t.last_status == "RUNNING");
        if s.status == "DRAINING" {
            if !self.service_tasks(&s).any(|t| t.last_status != "STOPPED")
                && let Some(x) = self.ecs_services.get_mut(id)
            {
                x.status = "INACTIVE".into();
            }
            return;
        }
        if stop.is_empty() && all_running && current.len() == s.desired as usize && !s.steady {
            if let Some(x) = self.ecs_services.get_mut(id) {
                x.steady = true;
                x.deployments.retain(|d| d.status == "PRIMARY");
                if let Some(d) = x.deployments.first_mut() {
                    d.rollout_state = "COMPLETED".into();
                    d.updated = now;
                }
            }
            self.push_event(
                id,
                now,
                format!("(service {}) has reached a steady state.", s.name),
            );
        }
    }
}

/// A container definition with the defaults AWS shows after registration.
fn with_defaults(c: &Value, network_mode: &str) -> Value {
    let mut c = c.clone();
    if let Some(m) = c.as_object_mut() {
        m.entry("cpu").or_insert(Value::from(0));
        m.entry("essential").or_insert(Value::Bool(true));
        m.entry("environment").or_insert(Value::Array(Vec::new()));
        m.entry("mountPoints").or_insert(Value::Array(Vec::new()));
        m.entry("volumesFrom").or_insert(Value::Array(Vec::new()));
        m.entry("portMappings").or_insert(Value::Array(Vec::new()));
        if let Some(pms) = m.get_mut("portMappings").and_then(Value::as_array_mut) {
            for pm in pms {
                if let Some(p) = pm.as_object_mut() {
                    p.entry("protocol").or_insert(Value::from("tcp"));
                    if network_mode == "awsvpc"
                        && let Some(cp) = p.get("containerPort").cloned()
                    {
                        p.entry("hostPort").or_insert(cp);
                    }
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_health_check_counts_only_after_the_start_period() {
        let s = |interval_s, retries, start_period_s| HealthSettings {
            interval_s,
            timeout_s: 5,
            retries,
            start_period_s,
        };
        // Defaults: checks at 30, 60 and 90 s; the third failure makes it unhealthy.
        assert_eq!(unhealthy_after_ms(s(30, 3, 0)), 90_000);
        // A 60 s start period: the checks at 30 s does not count; 60, 90, 120 do.
        assert_eq!(unhealthy_after_ms(s(30, 3, 60)), 120_000);
        // A start period that ends between checks: the next check is the first counted.
        assert_eq!(unhealthy_after_ms(s(5, 1, 12)), 15_000);
        assert_eq!(unhealthy_after_ms(s(5, 2, 0)), 10_000);
        let bad = serde_json::json!({"command": ["CMD", "true"], "startPeriod": 301});
        let err = check_health_settings("web", &bad).unwrap_err();
        assert!(
            err.message
                .contains("startPeriod must be between 0 and 300"),
            "{}",
            err.message
        );
        let ok = serde_json::json!({"command": ["CMD", "true"], "interval": 5, "retries": 10});
        assert!(check_health_settings("web", &ok).is_ok());
    }

    #[test]
    fn fargate_table_matches_the_developer_guide() {
        // 256 (.25 vCPU): 512 MiB, 1 GB, 2 GB.
        assert!(fargate_combination(256, 512));
        assert!(fargate_combination(256, 2048));
        assert!(!fargate_combination(256, 3072));
        // 512: 1–4 GB; 1024: 2–8 GB.
        assert!(fargate_combination(512, 4096));
        assert!(!fargate_combination(512, 512));
        assert!(fargate_combination(1024, 2048));
        assert!(!fargate_combination(1024, 1024));
        // 2048: 4–16 GB in 1 GB steps; 4096: 8–30 GB.
        assert!(fargate_combination(2048, 5120));
        assert!(!fargate_combination(2048, 5000));
        assert!(fargate_combination(4096, 30720));
        assert!(!fargate_combination(4096, 31744));
        // 8192: 16–60 GB in 4 GB steps.
        assert!(fargate_combination(8192, 20480));
        assert!(!fargate_combination(8192, 17408));
        assert!(!fargate_combination(99, 1024));
    }

    #[test]
    fn cpu_and_memory_take_the_units_a_task_definition_may_use() {
        assert_eq!(parse_cpu("256"), Some(256));
        assert_eq!(parse_cpu("1 vCpu"), Some(1024));
        assert_eq!(parse_cpu(".25 vcpu"), Some(256));
        assert_eq!(parse_cpu("lots"), None);
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("2 gb"), Some(2048));
        assert_eq!(parse_memory("0.5GB"), Some(512));
    }
}

//! Amazon EC2 Auto Scaling in the model: groups launched from a launch template into a
//! set of subnets, kept at their desired capacity by the daemon's tick
//! ([`World::advance_autoscaling`], called from `World::advance`), with their
//! activity history.
//!
//! What the tick does for each group, in order (EC2 Auto Scaling user guide, "Health
//! checks" and "Replace unhealthy instances"): a member instance that is no longer
//! pending or running (stopped, terminated by someone) is taken out of the group and
//! replaced; with `HealthCheckType=ELB`, a member whose target health is `unhealthy`
//! after the grace period is terminated and replaced; a pending member that is running
//! becomes `InService` and is registered with the group's target groups; then instances
//! are launched (into the zone with the fewest members) or terminated (newest first)
//! until the group has its desired capacity. Every launch and termination is an
//! activity.

pub mod policy;

use serde::{Deserialize, Serialize};

use super::ec2::instance::{InstanceState, RunRequest};
use super::tags::TagSet;
use super::{ApiError, ApiResult, Env, Resource, Timestamp, World};

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationError", message)
}

/// The launch template a group launches from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TemplateRef {
    pub id: String,
    pub name: String,
    /// `$Default`, `$Latest` or a number.
    pub version: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub instance_id: String,
    pub availability_zone: String,
    /// `Pending`, `InService`.
    pub lifecycle: String,
    /// `Healthy`, `Unhealthy`.
    pub health: String,
    pub launched: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Activity {
    pub id: String,
    pub description: String,
    pub cause: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// `Successful`, `Failed`.
    pub status: String,
    pub status_message: Option<String>,
}

/// The newest activities kept per group.
pub const MAX_ACTIVITIES: usize = 100;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    /// The group's ARN.
    pub id: String,
    pub region: String,
    pub name: String,
    pub template: TemplateRef,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub subnets: Vec<String>,
    pub target_groups: Vec<String>,
    /// `EC2` or `ELB`.
    pub health_check_type: String,
    pub grace_s: i64,
    pub created: Timestamp,
    pub members: Vec<Member>,
    /// Newest first.
    pub activities: Vec<Activity>,
    pub tags: Vec<(String, String)>,
    /// How long instances of this daemon take to boot (RunInstances' setting).
    pub boot_delay_ms: i64,
    /// Set when the last launch failed, so a failing launch is retried at most every 10 s.
    #[serde(default)]
    pub retry_at: Option<Timestamp>,
    /// Scaling policies (`policy.rs`).
    #[serde(default)]
    pub policies: Vec<policy::Policy>,
    /// Until when a simple scaling policy's cooldown holds the group.
    #[serde(default)]
    pub cooldown_until: Option<Timestamp>,
    /// Why the desired capacity last changed, when a policy changed it (the first
    /// sentence of the causes of the activities that follow).
    #[serde(default)]
    pub desired_cause: Option<String>,
}

impl Resource for Group {
    const KIND: &'static str = "autoscaling_group";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// What CreateAutoScalingGroup and UpdateAutoScalingGroup give.
#[derive(Clone, Debug, Default)]
pub struct GroupSpec {
    pub name: String,
    pub template: Option<(Option<String>, Option<String>, Option<String>)>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub desired: Option<i64>,
    pub subnets: Option<Vec<String>>,
    pub target_groups: Option<Vec<String>>,
    pub health_check_type: Option<String>,
    pub grace_s: Option<i64>,
    pub tags: Vec<(String, String)>,
}

fn not_found(name: &str) -> ApiError {
    validation(format!(
        "AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"
    ))
}

/// `2026-12-01T20:30:00Z`, as activity causes write times.
fn fmt_time(t: Timestamp) -> String {
    let iso = t.iso();
    format!("{}Z", iso.get(..19).unwrap_or(&iso))
}

impl World {
    pub fn autoscaling_group(&self, env: &Env, name: &str) -> ApiResult<&Group> {
        self.autoscaling_groups
            .in_region(&env.region)
            .find(|g| g.name == name)
            .ok_or_else(|| not_found(name))
    }

    fn check_sizes(min: u32, max: u32, desired: u32) -> ApiResult<()> {
        if min > max {
            return Err(validation(format!(
                "Max bound, {max}, must be greater than or equal to min bound, {min}"
            )));
        }
        if desired < min || desired > max {
            return Err(validation(format!(
                "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
            )));
        }
        Ok(())
    }

    fn check_subnets(&self, env: &Env, subnets: &[String]) -> ApiResult<()> {
        if subnets.is_empty() {
            return Err(validation(
                "The subnet IDs (VPCZoneIdentifier) must be given: vpclab launches groups into VPC subnets",
            ));
        }
        for s in subnets {
            self.subnet(&env.region, s)
                .map_err(|_| validation(format!("The subnet ID '{s}' does not exist")))?;
        }
        Ok(())
    }

    fn check_target_groups(&self, env: &Env, tgs: &[String]) -> ApiResult<()> {
        for t in tgs {
            self.target_group(env, t)
                .map_err(|_| validation(format!("Target group {t} not found")))?;
        }
        Ok(())
    }

    /// CreateAutoScalingGroup.
    pub fn create_autoscaling_group(
        &mut self,
        env: &Env,
        spec: GroupSpec,
        boot_delay_ms: i64,
    ) -> ApiResult<String> {
        let name = spec.name.clone();
        if name.is_empty() || name.len() > 255 {
            return Err(validation(
                "AutoScalingGroupName must be 1 to 255 characters",
            ));
        }
        if self
            .autoscaling_groups
            .in_region(&env.region)
            .any(|g| g.name == name)
        {
            return Err(ApiError::new(
                "AlreadyExists",
                format!(
                    "AutoScalingGroup by this name already exists - A group with the name {name} already exists"
                ),
            ));
        }
        let Some((lt_id, lt_name, version)) = spec.template.clone() else {
            return Err(validation(
                "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.",
            ));
        };
        let t = self
            .launch_template(env, lt_id.as_deref(), lt_name.as_deref())
            .map_err(|e| validation(e.message))?;
        let version = version.unwrap_or_else(|| "$Default".into());
        t.version(Some(&version))
            .map_err(|e| validation(e.message))?;
        let template = TemplateRef {
            id: t.id.clone(),
            name: t.name.clone(),
            version,
        };
        let (Some(min), Some(max)) = (spec.min, spec.max) else {
            return Err(validation("MinSize and MaxSize must be given"));
        };
        let size = |v: i64| {
            u32::try_from(v).map_err(|_| validation(format!("Size {v} must be 0 or more")))
        };
        let (min, max) = (size(min)?, size(max)?);
        let desired = size(spec.desired.unwrap_or(i64::from(min)))?;
        World::check_sizes(min, max, desired)?;
        let subnets = spec.subnets.clone().unwrap_or_default();
        self.check_subnets(env, &subnets)?;
        let target_groups = spec.target_groups.clone().unwrap_or_default();
        self.check_target_groups(env, &target_groups)?;
        let health_check_type = spec
            .health_check_type
            .clone()
            .unwrap_or_else(|| "EC2".into());
        if !matches!(health_check_type.as_str(), "EC2" | "ELB") {
            return Err(validation(format!(
                "vpclab supports health check types EC2 and ELB, not {health_check_type}"
            )));
        }
        let bits = self.alloc_bits();
        let id = format!(
            "arn:aws:autoscaling:{}:{}:autoScalingGroup:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}:autoScalingGroupName/{name}",
            env.region,
            self.account,
            (bits >> 32) as u32,
            (bits >> 16) as u16,
            bits & 0xfff,
            (bits >> 20) & 0xfff,
            bits & 0xffff_ffff_ffff
        );
        self.autoscaling_groups.insert(Group {
            id: id.clone(),
            region: env.region.clone(),
            name,
            template,
            min,
            max,
            desired,
            subnets,
            target_groups,
            health_check_type,
            grace_s: spec.grace_s.unwrap_or(300),
            created: env.now,
            members: Vec::new(),
            activities: Vec::new(),
            tags: spec.tags,
            boot_delay_ms,
            retry_at: None,
            policies: Vec::new(),
            cooldown_until: None,
            desired_cause: None,
        });
        self.advance_autoscaling(env.now);
        Ok(id)
    }

    /// UpdateAutoScalingGroup.
    pub fn update_autoscaling_group(&mut self, env: &Env, spec: GroupSpec) -> ApiResult<()> {
        let g = self.autoscaling_group(env, &spec.name)?.clone();
        let size = |v: i64| {
            u32::try_from(v).map_err(|_| validation(format!("Size {v} must be 0 or more")))
        };
        let min = spec.min.map(size).transpose()?.unwrap_or(g.min);
        let max = spec.max.map(size).transpose()?.unwrap_or(g.max);
        // AWS: changing min or max alone moves the desired capacity into the new range.
        let desired = match spec.desired {
            Some(d) => size(d)?,
            None => g.desired.clamp(min, max.max(min)),
        };
        World::check_sizes(min, max, desired)?;
        if let Some(s) = &spec.subnets {
            self.check_subnets(env, s)?;
        }
        let template = match &spec.template {
            Some((id, name, version)) => {
                let t = self
                    .launch_template(env, id.as_deref(), name.as_deref())
                    .map_err(|e| validation(e.message))?;
                let version = version.clone().unwrap_or_else(|| "$Default".into());
                t.version(Some(&version))
                    .map_err(|e| validation(e.message))?;
                Some(TemplateRef {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    version,
                })
            }
            None => None,
        };
        if let Some(x) = self.autoscaling_groups.get_mut(&g.id) {
            x.min = min;
            x.max = max;
            x.desired = desired;
            x.desired_cause = None;
            if let Some(s) = spec.subnets {
                x.subnets = s;
            }
            if let Some(t) = template {
                x.template = t;
            }
            if let Some(h) = spec.health_check_type {
                x.health_check_type = h;
            }
            if let Some(s) = spec.grace_s {
                x.grace_s = s;
            }
        }
        self.advance_autoscaling(env.now);
        Ok(())
    }

    /// SetDesiredCapacity.
    pub fn set_desired_capacity(&mut self, env: &Env, name: &str, desired: i64) -> ApiResult<()> {
        let g = self.autoscaling_group(env, name)?.clone();
        let d = u32::try_from(desired).unwrap_or(u32::MAX);
        if d < g.min {
            return Err(validation(format!(
                "New SetDesiredCapacity value {desired} is below min value {} for the AutoScalingGroup.",
                g.min
            )));
        }
        if d > g.max {
            return Err(validation(format!(
                "New SetDesiredCapacity value {desired} is above max value {} for the AutoScalingGroup.",
                g.max
            )));
        }
        if let Some(x) = self.autoscaling_groups.get_mut(&g.id) {
            x.desired = d;
            x.desired_cause = None;
        }
        self.advance_autoscaling(env.now);
        Ok(())
    }

    /// DeleteAutoScalingGroup: refused while it has instances, unless `force`, which
    /// terminates them.
    pub fn delete_autoscaling_group(
        &mut self,
        env: &Env,
        name: &str,
        force: bool,
    ) -> ApiResult<()> {
        let g = self.autoscaling_group(env, name)?.clone();
        if !g.members.is_empty() && !force {
            return Err(ApiError::new(
                "ResourceInUse",
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.",
            ));
        }
        let ids: Vec<String> = g
            .members
            .iter()
            .map(|m| m.instance_id.clone())
            .filter(|id| self.instances.contains(id))
            .collect();
        self.leave_target_groups(env, &g, &ids);
        if !ids.is_empty() {
            self.terminate_instances(env, &ids)?;
        }
        self.autoscaling_groups.remove(&g.id);
        Ok(())
    }

    fn leave_target_groups(&mut self, env: &Env, g: &Group, ids: &[String]) {
        for tg in &g.target_groups {
            let registered: Vec<(String, Option<u16>)> = match self.elb_target_groups.get(tg) {
                Some(t) => t
                    .targets
                    .iter()
                    .filter(|x| ids.contains(&x.id) && x.state != "draining")
                    .map(|x| (x.id.clone(), Some(x.port)))
                    .collect(),
                None => continue,
            };
            if !registered.is_empty() {
                let _ = self.deregister_targets(env, tg, &registered);
            }
        }
    }

    /// Whether any group needs the tick.
    pub fn autoscaling_due(&self, now: Timestamp) -> bool {
        self.autoscaling_groups
            .iter()
            .any(|g| self.group_plan(g, now).is_some())
    }

    /// The first thing a group needs, if anything: (kind, instance).
    fn group_plan(&self, g: &Group, now: Timestamp) -> Option<(&'static str, Option<String>)> {
        for m in &g.members {
            let state = self.instances.get(&m.instance_id).map(|i| i.state);
            match state {
                Some(InstanceState::Pending) => {}
                Some(InstanceState::Running) => {
                    if m.lifecycle == "Pending" {
                        return Some(("in-service", Some(m.instance_id.clone())));
                    }
                    let grace_over = now.0 >= m.launched.0 + g.grace_s * 1000;
                    if g.health_check_type == "ELB" && grace_over {
                        let unhealthy = g.target_groups.iter().any(|tg| {
                            self.elb_target_groups.get(tg).is_some_and(|t| {
                                t.targets
                                    .iter()
                                    .any(|x| x.id == m.instance_id && x.state == "unhealthy")
                            })
                        });
                        if unhealthy {
                            return Some(("elb-unhealthy", Some(m.instance_id.clone())));
                        }
                    }
                }
                _ => return Some(("gone", Some(m.instance_id.clone()))),
            }
        }
        let n = g.members.len() as u32;
        if n < g.desired && g.retry_at.is_none_or(|t| t <= now) {
            return Some(("launch", None));
        }
        if n > g.desired {
            return Some(("shrink", None));
        }
        None
    }

    fn record(
        &mut self,
        group: &str,
        env_now: Timestamp,
        description: String,
        cause: String,
        ok: Result<(), String>,
    ) {
        let bits = self.alloc_bits();
        if let Some(g) = self.autoscaling_groups.get_mut(group) {
            g.activities.insert(
                0,
                Activity {
                    id: format!(
                        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        (bits >> 32) as u32,
                        (bits >> 16) as u16,
                        bits as u16,
                        (bits >> 48) as u16,
                        bits & 0xffff_ffff_ffff
                    ),
                    description,
                    cause,
                    start: env_now,
                    end: env_now,
                    status: if ok.is_ok() { "Successful" } else { "Failed" }.into(),
                    status_message: ok.err(),
                },
            );
            g.activities.truncate(MAX_ACTIVITIES);
        }
    }

    /// One tick of every group: repeats each group's plan until it needs nothing (at
    /// most a bounded number of steps).
    pub fn advance_autoscaling(&mut self, now: Timestamp) {
        for id in self.autoscaling_groups.ids_where(|_| true) {
            for _ in 0..64 {
                let Some(g) = self.autoscaling_groups.get(&id).cloned() else {
                    break;
                };
                let Some((step, instance)) = self.group_plan(&g, now) else {
                    break;
                };
                let env = Env::new(g.region.clone(), now).with_action("vpclab:AutoScaling");
                let when = fmt_time(now);
                match (step, instance) {
                    ("in-service", Some(i)) => {
                        if let Some(x) = self.autoscaling_groups.get_mut(&id)
                            && let Some(m) = x.members.iter_mut().find(|m| m.instance_id == i)
                        {
                            m.lifecycle = "InService".into();
                        }
                        for tg in &g.target_groups {
                            let _ = self.register_targets(&env, tg, &[(i.clone(), None, None)]);
                        }
                    }
                    ("gone", Some(i)) | ("elb-unhealthy", Some(i)) => {
                        let cause = if step == "gone" {
                            format!(
                                "At {when} an instance was taken out of service in response to an EC2 instance status check failure (the instance is no longer running)."
                            )
                        } else {
                            format!(
                                "At {when} an instance was taken out of service in response to an ELB system health check failure."
                            )
                        };
                        self.leave_target_groups(&env, &g, std::slice::from_ref(&i));
                        let live = self.instances.get(&i).is_some_and(|x| {
                            !matches!(
                                x.state,
                                InstanceState::Terminated | InstanceState::ShuttingDown
                            )
                        });
                        if live {
                            let _ = self.terminate_instances(&env, std::slice::from_ref(&i));
                        }
                        if let Some(x) = self.autoscaling_groups.get_mut(&id) {
                            x.members.retain(|m| m.instance_id != i);
                        }
                        self.record(
                            &id,
                            now,
                            format!("Terminating EC2 instance: {i}"),
                            cause,
                            Ok(()),
                        );
                    }
                    ("launch", _) => {
                        let before = g.members.len();
                        let r = self.launch_member(&env, &g);
                        let cause = format!(
                            "{}At {when} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {before} to {}.",
                            g.desired_cause
                                .as_ref()
                                .map(|c| format!("{c}  "))
                                .unwrap_or_default(),
                            before + 1
                        );
                        match r {
                            Ok(i) => self.record(
                                &id,
                                now,
                                format!("Launching a new EC2 instance: {i}"),
                                cause,
                                Ok(()),
                            ),
                            Err(e) => {
                                self.record(
                                    &id,
                                    now,
                                    "Launching a new EC2 instance.  Status Reason: the launch failed".into(),
                                    cause,
                                    Err(format!("{}: {}", e.code, e.message)),
                                );
                                if let Some(x) = self.autoscaling_groups.get_mut(&id) {
                                    x.retry_at = Some(now.plus_ms(10_000));
                                }
                                break;
                            }
                        }
                    }
                    ("shrink", _) => {
                        // Terminate from the zone with the most members, newest first.
                        let mut counts: std::collections::BTreeMap<&str, usize> =
                            Default::default();
                        for m in &g.members {
                            *counts.entry(m.availability_zone.as_str()).or_default() += 1;
                        }
                        let victim = g
                            .members
                            .iter()
                            .max_by_key(|m| (counts[m.availability_zone.as_str()], m.launched))
                            .map(|m| m.instance_id.clone());
                        let Some(i) = victim else {
                            break;
                        };
                        self.leave_target_groups(&env, &g, std::slice::from_ref(&i));
                        let _ = self.terminate_instances(&env, std::slice::from_ref(&i));
                        if let Some(x) = self.autoscaling_groups.get_mut(&id) {
                            x.members.retain(|m| m.instance_id != i);
                        }
                        let n = g.members.len();
                        self.record(
                            &id,
                            now,
                            format!("Terminating EC2 instance: {i}"),
                            format!(
                                "{}  At {when} an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from {n} to {}.",
                                g.desired_cause.clone().unwrap_or_else(|| format!("At {when} a user request explicitly set group desired capacity changing the desired capacity from {n} to {}.", g.desired)),
                                n - 1
                            ),
                            Ok(()),
                        );
                    }
                    _ => break,
                }
            }
        }
    }

    /// Launches one instance for `g` into the subnet of the zone with the fewest members.
    fn launch_member(&mut self, env: &Env, g: &Group) -> ApiResult<String> {
        let mut best: Option<(usize, &String)> = None;
        for s in &g.subnets {
            let az = self
                .subnets
                .get(s)
                .map(|x| x.availability_zone.clone())
                .unwrap_or_default();
            let n = g
                .members
                .iter()
                .filter(|m| m.availability_zone == az)
                .count();
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, s));
            }
        }
        let subnet = best
            .map(|(_, s)| s.clone())
            .ok_or_else(|| validation("The group has no subnet"))?;
        let base = RunRequest {
            min_count: Some(1),
            max_count: Some(1),
            boot_delay_ms: g.boot_delay_ms,
            ..RunRequest::default()
        };
        let mut req = self.launch_request(
            env,
            Some(&g.template.id),
            None,
            Some(&g.template.version),
            base,
        )?;
        // The group's subnet wins over the template's.
        match req.network_interfaces.first_mut() {
            Some(n) => n.subnet_id = Some(subnet.clone()),
            None => req.subnet_id = Some(subnet.clone()),
        }
        let mut tags = vec![("aws:autoscaling:groupName".to_string(), g.name.clone())];
        tags.extend(g.tags.iter().cloned());
        let (_, ids) = self.run_instances(env, &req)?;
        let id = ids.first().cloned().ok_or_else(ApiError::internal)?;
        // `aws:` tags cannot be set through the API; Auto Scaling sets this one itself.
        let mut set = self.tags.get(&id).cloned().unwrap_or_else(|| TagSet {
            id: id.clone(),
            region: env.region.clone(),
            tags: Default::default(),
        });
        set.tags.extend(tags);
        self.tags.insert(set);
        let az = self
            .instances
            .get(&id)
            .map(|i| i.availability_zone.clone())
            .unwrap_or_default();
        if let Some(x) = self.autoscaling_groups.get_mut(&g.id) {
            x.retry_at = None;
            x.members.push(Member {
                instance_id: id.clone(),
                availability_zone: az,
                lifecycle: "Pending".into(),
                health: "Healthy".into(),
                launched: env.now,
            });
        }
        Ok(id)
    }
}

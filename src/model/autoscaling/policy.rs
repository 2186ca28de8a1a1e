//! Scaling policies of an Auto Scaling group: simple, step and target tracking, kept
//! inside the group's row, run by ExecutePolicy or by a CloudWatch alarm whose action
//! names the policy's ARN.
//!
//! The rules follow the EC2 Auto Scaling User Guide ("Step and simple scaling policies",
//! "Target tracking scaling policies") and the API reference of PutScalingPolicy:
//!
//! - `ChangeInCapacity` adds the adjustment, `ExactCapacity` sets it,
//!   `PercentChangeInCapacity` adds that percentage of the current capacity, rounded as
//!   the guide says (above 1 down, between 0 and 1 to 1, between -1 and 0 to -1, below -1
//!   up), at least `MinAdjustmentMagnitude` in size. The result is kept within the
//!   group's minimum and maximum.
//! - A simple policy waits out its cooldown (`Cooldown`, else the group's 300 s) after
//!   it scaled before it answers an alarm again; ExecutePolicy honours the cooldown
//!   only when asked (`HonorCooldown`).
//! - A step policy picks the step whose bounds (relative to the alarm's threshold)
//!   contain the breach: the metric's value minus the threshold.
//! - A target tracking policy creates two alarms, `TargetTracking-GROUP-AlarmHigh-UUID`
//!   (above the target for 3 one-minute datapoints) and `…-AlarmLow-UUID` (below 90 % of
//!   the target for 15; none when scale-in is disabled), whose actions name the policy;
//!   on either it sets the capacity in proportion to the metric (`ceil(capacity × value
//!   / target)`), only upwards from AlarmHigh and only downwards from AlarmLow.
//!   Deleting the policy deletes its alarms.

use serde::{Deserialize, Serialize};

use super::{Group, fmt_time, validation};
use crate::model::cloudwatch::Dimension;
use crate::model::cloudwatch::alarm::MetricAlarmInput;
use crate::model::{ApiError, ApiResult, Env, World};

/// The group's default cooldown (DescribeAutoScalingGroups' `DefaultCooldown`).
pub const DEFAULT_COOLDOWN_S: i64 = 300;

/// One step of a step scaling policy (bounds relative to the alarm threshold).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

/// The metric a target tracking policy follows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrackedMetric {
    /// `ASGAverageCPUUtilization`, …, or `None` for a customized metric.
    pub predefined: Option<String>,
    pub resource_label: Option<String>,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: String,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TargetTracking {
    pub metric: TrackedMetric,
    pub target: f64,
    pub disable_scale_in: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Policy {
    pub arn: String,
    pub name: String,
    /// `SimpleScaling`, `StepScaling` or `TargetTrackingScaling`.
    pub policy_type: String,
    pub adjustment_type: Option<String>,
    pub scaling_adjustment: Option<i64>,
    pub cooldown_s: Option<i64>,
    pub min_adjustment_magnitude: Option<i64>,
    pub metric_aggregation: Option<String>,
    pub steps: Vec<Step>,
    pub warmup_s: Option<i64>,
    pub target_tracking: Option<TargetTracking>,
    /// Names of the alarms a target tracking policy created.
    pub alarms: Vec<String>,
    pub enabled: bool,
}

/// What PutScalingPolicy gives (already parsed from the wire).
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub group: String,
    pub name: String,
    pub policy_type: Option<String>,
    pub adjustment_type: Option<String>,
    pub scaling_adjustment: Option<i64>,
    pub cooldown_s: Option<i64>,
    pub min_adjustment_magnitude: Option<i64>,
    pub metric_aggregation: Option<String>,
    pub steps: Vec<Step>,
    pub warmup_s: Option<i64>,
    pub target_tracking: Option<TargetTracking>,
    pub enabled: Option<bool>,
}

const ADJUSTMENT_TYPES: &[&str] = &[
    "ChangeInCapacity",
    "ExactCapacity",
    "PercentChangeInCapacity",
];

/// The AWS/EC2 or AWS/ApplicationELB metric of a predefined metric type.
pub fn predefined_metric(kind: &str, group: &str, label: Option<&str>) -> ApiResult<TrackedMetric> {
    let asg = |name: &str, unit: Option<&str>| TrackedMetric {
        predefined: Some(kind.to_string()),
        resource_label: None,
        namespace: "AWS/EC2".into(),
        metric_name: name.into(),
        dimensions: vec![("AutoScalingGroupName".into(), group.to_string())],
        statistic: "Average".into(),
        unit: unit.map(str::to_string),
    };
    match kind {
        "ASGAverageCPUUtilization" => Ok(asg("CPUUtilization", Some("Percent"))),
        "ASGAverageNetworkIn" => Ok(asg("NetworkIn", Some("Bytes"))),
        "ASGAverageNetworkOut" => Ok(asg("NetworkOut", Some("Bytes"))),
        "ALBRequestCountPerTarget" => {
            // ResourceLabel: app/LB-NAME/LB-ID/targetgroup/TG-NAME/TG-ID.
            let label = label.ok_or_else(|| {
                validation(
                    "ResourceLabel is required for predefined metric type ALBRequestCountPerTarget",
                )
            })?;
            let tg = label
                .find("targetgroup/")
                .map(|i| &label[i..])
                .filter(|_| label.starts_with("app/"))
                .ok_or_else(|| validation(format!("Invalid ResourceLabel {label}")))?;
            Ok(TrackedMetric {
                predefined: Some(kind.to_string()),
                resource_label: Some(label.to_string()),
                namespace: "AWS/ApplicationELB".into(),
                metric_name: "RequestCountPerTarget".into(),
                dimensions: vec![("TargetGroup".into(), tg.to_string())],
                statistic: "Sum".into(),
                unit: None,
            })
        }
        other => Err(validation(format!(
            "Unsupported predefined metric type {other} (ASGAverageCPUUtilization, ASGAverageNetworkIn, ASGAverageNetworkOut, ALBRequestCountPerTarget)"
        ))),
    }
}

/// `PercentChangeInCapacity`'s rounding (User Guide, "Step and simple scaling policies").
fn round_percent(change: f64) -> i64 {
    if change > 1.0 {
        change.floor() as i64
    } else if change > 0.0 {
        1
    } else if change > -1.0 && change < 0.0 {
        -1
    } else {
        change.ceil() as i64
    }
}

/// The capacity an adjustment asks for, before clamping.
fn adjusted(policy: &Policy, current: u32, adjustment: i64) -> i64 {
    let cur = i64::from(current);
    match policy.adjustment_type.as_deref() {
        Some("ExactCapacity") => adjustment,
        Some("PercentChangeInCapacity") => {
            let mut change = round_percent(cur as f64 * adjustment as f64 / 100.0);
            if let Some(m) = policy.min_adjustment_magnitude
                && change.abs() < m
            {
                change = m * change.signum();
            }
            cur + change
        }
        _ => cur + adjustment,
    }
}

fn policy_not_found(name: &str) -> ApiError {
    validation(format!(
        "No scaling policy found for service namespace and resource: {name}"
    ))
}

impl Group {
    /// A policy by name or ARN.
    pub fn policy(&self, ident: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.name == ident || p.arn == ident)
    }
}

impl World {
    /// The group and policy a policy ARN names (any region of this account).
    fn group_of_policy(&self, arn: &str) -> Option<(String, Policy)> {
        self.autoscaling_groups.iter().find_map(|g| {
            g.policies
                .iter()
                .find(|p| p.arn == arn)
                .map(|p| (g.id.clone(), p.clone()))
        })
    }

    /// PutScalingPolicy: creates or replaces a policy; returns its ARN and the alarms a
    /// target tracking policy created (name, ARN).
    pub fn put_scaling_policy(
        &mut self,
        env: &Env,
        spec: PolicySpec,
    ) -> ApiResult<(String, Vec<(String, String)>)> {
        let g = self.autoscaling_group(env, &spec.group)?.clone();
        if spec.name.is_empty() || spec.name.len() > 255 || spec.name.contains(':') {
            return Err(validation(
                "PolicyName must be 1 to 255 characters and contain no colon",
            ));
        }
        let policy_type = spec
            .policy_type
            .clone()
            .unwrap_or_else(|| "SimpleScaling".into());
        let adjustment_type = spec.adjustment_type.clone();
        if let Some(a) = &adjustment_type
            && !ADJUSTMENT_TYPES.contains(&a.as_str())
        {
            return Err(validation(format!(
                "Invalid adjustment type {a}. Valid values are ChangeInCapacity, ExactCapacity, PercentChangeInCapacity"
            )));
        }
        if spec.min_adjustment_magnitude.is_some()
            && adjustment_type.as_deref() != Some("PercentChangeInCapacity")
        {
            return Err(validation(
                "MinAdjustmentMagnitude may only be specified with the PercentChangeInCapacity adjustment type",
            ));
        }
        match policy_type.as_str() {
            "SimpleScaling" => {
                if adjustment_type.is_none() || spec.scaling_adjustment.is_none() {
                    return Err(validation(
                        "AdjustmentType and ScalingAdjustment are required for policy type SimpleScaling",
                    ));
                }
                if !spec.steps.is_empty() || spec.target_tracking.is_some() {
                    return Err(validation(
                        "StepAdjustments and TargetTrackingConfiguration are not allowed for policy type SimpleScaling",
                    ));
                }
                if spec.cooldown_s.is_some_and(|c| c < 0) {
                    return Err(validation("Cooldown must be 0 or more"));
                }
            }
            "StepScaling" => {
                if adjustment_type.is_none() || spec.steps.is_empty() {
                    return Err(validation(
                        "AdjustmentType and StepAdjustments are required for policy type StepScaling",
                    ));
                }
                if spec.scaling_adjustment.is_some() || spec.cooldown_s.is_some() {
                    return Err(validation(
                        "ScalingAdjustment and Cooldown are not allowed for policy type StepScaling",
                    ));
                }
                check_steps(&spec.steps)?;
                if let Some(m) = &spec.metric_aggregation
                    && !["Average", "Minimum", "Maximum"].contains(&m.as_str())
                {
                    return Err(validation(format!(
                        "Invalid MetricAggregationType {m}. Valid values are Average, Minimum, Maximum"
                    )));
                }
            }
            "TargetTrackingScaling" => {
                let Some(t) = &spec.target_tracking else {
                    return Err(validation(
                        "TargetTrackingConfiguration is required for policy type TargetTrackingScaling",
                    ));
                };
                if adjustment_type.is_some() || spec.scaling_adjustment.is_some() {
                    return Err(validation(
                        "AdjustmentType and ScalingAdjustment are not allowed for policy type TargetTrackingScaling",
                    ));
                }
                if !(t.target.is_finite() && t.target > 0.0) {
                    return Err(validation("TargetValue must be greater than 0"));
                }
            }
            "PredictiveScaling" => {
                return Err(validation(
                    "vpclab does not run predictive scaling policies (docs/fidelity.md)",
                ));
            }
            other => {
                return Err(validation(format!(
                    "Invalid policy type {other}. Valid values are SimpleScaling, StepScaling, TargetTrackingScaling, PredictiveScaling"
                )));
            }
        }
        let previous = g.policy(&spec.name).cloned();
        // A policy keeps its ARN when it is put again; its alarms are made anew.
        let arn = match &previous {
            Some(p) => p.arn.clone(),
            None => {
                let b = self.alloc_bits();
                format!(
                    "arn:aws:autoscaling:{}:{}:scalingPolicy:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}:autoScalingGroupName/{}:policyName/{}",
                    env.region,
                    self.account,
                    (b >> 32) as u32,
                    (b >> 16) as u16,
                    b & 0xfff,
                    (b >> 20) & 0xfff,
                    b & 0xffff_ffff_ffff,
                    g.name,
                    spec.name
                )
            }
        };
        if let Some(p) = &previous
            && !p.alarms.is_empty()
        {
            self.delete_alarms(env, &p.alarms)?;
        }
        let mut created = Vec::new();
        if let Some(t) = &spec.target_tracking {
            let b = self.alloc_bits();
            let uuid = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                (b >> 32) as u32,
                (b >> 16) as u16,
                b as u16,
                (b >> 48) as u16,
                b & 0xffff_ffff_ffff
            );
            let m = &t.metric;
            let make = |kind: &str, comparison: &str, threshold: f64, n: i64| {
                let name = format!("TargetTracking-{}-{kind}-{uuid}", g.name);
                let input = MetricAlarmInput {
                    name: name.clone(),
                    description: Some(format!(
                        "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {arn}."
                    )),
                    namespace: Some(m.namespace.clone()),
                    metric_name: Some(m.metric_name.clone()),
                    dimensions: m
                        .dimensions
                        .iter()
                        .map(|(k, v)| Dimension {
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    statistic: Some(m.statistic.clone()),
                    period: Some(60),
                    unit: m.unit.clone(),
                    threshold: Some(threshold),
                    comparison: Some(comparison.into()),
                    evaluation_periods: Some(n),
                    alarm_actions: vec![arn.clone()],
                    ..Default::default()
                };
                (name, input)
            };
            let mut alarms = vec![make("AlarmHigh", "GreaterThanThreshold", t.target, 3)];
            if !t.disable_scale_in {
                alarms.push(make("AlarmLow", "LessThanThreshold", t.target * 0.9, 15));
            }
            for (name, input) in alarms {
                self.put_metric_alarm(env, input)?;
                let alarm_arn = format!(
                    "arn:aws:cloudwatch:{}:{}:alarm:{name}",
                    env.region, self.account
                );
                created.push((name, alarm_arn));
            }
        }
        let policy = Policy {
            arn: arn.clone(),
            name: spec.name.clone(),
            policy_type,
            adjustment_type,
            scaling_adjustment: spec.scaling_adjustment,
            cooldown_s: spec.cooldown_s,
            min_adjustment_magnitude: spec.min_adjustment_magnitude,
            metric_aggregation: spec.metric_aggregation.clone(),
            steps: spec.steps.clone(),
            warmup_s: spec.warmup_s,
            target_tracking: spec.target_tracking.clone(),
            alarms: created.iter().map(|(n, _)| n.clone()).collect(),
            enabled: spec.enabled.unwrap_or(true),
        };
        if let Some(x) = self.autoscaling_groups.get_mut(&g.id) {
            match x.policies.iter_mut().find(|p| p.name == policy.name) {
                Some(p) => *p = policy,
                None => x.policies.push(policy),
            }
        }
        Ok((arn, created))
    }

    /// DeletePolicy (a target tracking policy's alarms go with it).
    pub fn delete_scaling_policy(
        &mut self,
        env: &Env,
        group: Option<&str>,
        ident: &str,
    ) -> ApiResult<()> {
        let (gid, p) = self.find_policy(env, group, ident)?;
        if !p.alarms.is_empty() {
            self.delete_alarms(env, &p.alarms)?;
        }
        if let Some(x) = self.autoscaling_groups.get_mut(&gid) {
            x.policies.retain(|q| q.arn != p.arn);
        }
        Ok(())
    }

    fn find_policy(
        &self,
        env: &Env,
        group: Option<&str>,
        ident: &str,
    ) -> ApiResult<(String, Policy)> {
        if ident.starts_with("arn:") {
            return self
                .group_of_policy(ident)
                .ok_or_else(|| policy_not_found(ident));
        }
        let Some(group) = group else {
            return Err(validation(
                "AutoScalingGroupName is required when PolicyName is not an ARN",
            ));
        };
        let g = self.autoscaling_group(env, group)?;
        g.policy(ident)
            .map(|p| (g.id.clone(), p.clone()))
            .ok_or_else(|| policy_not_found(ident))
    }

    /// ExecutePolicy. `metric` and `breach` are MetricValue and BreachThreshold (a step
    /// policy needs both).
    pub fn execute_scaling_policy(
        &mut self,
        env: &Env,
        group: Option<&str>,
        ident: &str,
        honor_cooldown: bool,
        metric: Option<f64>,
        breach: Option<f64>,
    ) -> ApiResult<()> {
        let (gid, p) = self.find_policy(env, group, ident)?;
        let adjustment = match p.policy_type.as_str() {
            "SimpleScaling" => p.scaling_adjustment.unwrap_or(0),
            "StepScaling" => {
                let (Some(m), Some(b)) = (metric, breach) else {
                    return Err(validation(
                        "MetricValue and BreachThreshold are required for a step scaling policy",
                    ));
                };
                step_for(&p.steps, m - b).ok_or_else(|| {
                    validation(format!(
                        "No step adjustment found for metric value {m} and breach threshold {b}"
                    ))
                })?
            }
            _ => {
                return Err(validation(
                    "ExecutePolicy is not supported for a target tracking scaling policy",
                ));
            }
        };
        let cause = format!("a user request executed policy {}", p.name);
        match self.apply_adjustment(env, &gid, &p, adjustment, honor_cooldown, cause) {
            Err(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// An alarm's action naming a policy ARN: runs the policy with the alarm's newest
    /// datapoint. Returns what happened, for the alarm's history.
    pub fn run_policy_for_alarm(
        &mut self,
        env: &Env,
        arn: &str,
        alarm: &str,
        state: &str,
        threshold: f64,
        value: Option<f64>,
    ) -> Result<String, String> {
        let (gid, p) = self
            .group_of_policy(arn)
            .ok_or_else(|| format!("the scaling policy {arn} does not exist"))?;
        if !p.enabled {
            return Ok(format!("policy {} is disabled", p.name));
        }
        let cause = format!(
            "a monitor alarm {alarm} in state {state} triggered policy {}",
            p.name
        );
        let current = self.autoscaling_groups.get(&gid).map_or(0, |g| g.desired);
        let outcome = match p.policy_type.as_str() {
            "SimpleScaling" => {
                let adj = p.scaling_adjustment.unwrap_or(0);
                self.apply_adjustment(env, &gid, &p, adj, true, cause)
            }
            "StepScaling" => {
                let v = value.ok_or("the alarm has no datapoint")?;
                let adj = step_for(&p.steps, v - threshold)
                    .ok_or_else(|| format!("no step adjustment for breach {}", v - threshold))?;
                self.apply_adjustment(env, &gid, &p, adj, false, cause)
            }
            _ => {
                let t = p
                    .target_tracking
                    .clone()
                    .ok_or("not a target tracking policy")?;
                let v = value.ok_or("the alarm has no datapoint")?;
                let want = (f64::from(current.max(1)) * v / t.target).ceil() as i64;
                let high = alarm.contains("-AlarmHigh-");
                let exact = if high {
                    want.max(i64::from(current))
                } else {
                    want.min(i64::from(current))
                };
                let q = Policy {
                    adjustment_type: Some("ExactCapacity".into()),
                    ..p.clone()
                };
                self.apply_adjustment(env, &gid, &q, exact, false, cause)
            }
        };
        match outcome {
            Ok(Some((from, to))) => Ok(format!(
                "changing the desired capacity of {} from {from} to {to}",
                p.name
            )),
            Ok(None) => Ok("the desired capacity stays".to_string()),
            Err(None) => Ok("the group is in its cooldown period".into()),
            Err(Some(e)) => Err(format!("{}: {}", e.code, e.message)),
        }
    }

    /// Sets the group's desired capacity from an adjustment, clamped to min and max.
    /// `Ok(Some((from, to)))` when it changed, `Ok(None)` when it stayed, `Err(None)` in
    /// cooldown (simple scaling only, when honoured).
    fn apply_adjustment(
        &mut self,
        env: &Env,
        gid: &str,
        p: &Policy,
        adjustment: i64,
        honor_cooldown: bool,
        cause: String,
    ) -> Result<Option<(u32, u32)>, Option<ApiError>> {
        let Some(g) = self.autoscaling_groups.get(gid).cloned() else {
            return Err(Some(validation("AutoScalingGroup not found")));
        };
        let simple = p.policy_type == "SimpleScaling";
        if simple && honor_cooldown && g.cooldown_until.is_some_and(|t| t > env.now) {
            return Err(None);
        }
        let want = adjusted(p, g.desired, adjustment);
        let to = want.clamp(i64::from(g.min), i64::from(g.max)) as u32;
        let from = g.desired;
        if let Some(x) = self.autoscaling_groups.get_mut(gid) {
            if simple {
                let cd = p.cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S);
                x.cooldown_until = Some(env.now.plus_ms(cd * 1000));
            }
            if to != from {
                x.desired = to;
                x.desired_cause = Some(format!(
                    "At {} {cause} changing the desired capacity from {from} to {to}.",
                    fmt_time(env.now)
                ));
            }
        }
        if to == from {
            return Ok(None);
        }
        self.advance_autoscaling(env.now);
        Ok(Some((from, to)))
    }
}

/// The adjustment of the step containing `breach` (lower bound inclusive, upper bound
/// exclusive, as the guide's examples read).
fn step_for(steps: &[Step], breach: f64) -> Option<i64> {
    steps
        .iter()
        .find(|s| s.lower.is_none_or(|l| breach >= l) && s.upper.is_none_or(|u| breach < u))
        .map(|s| s.adjustment)
}

/// Step adjustments may not overlap or leave gaps, and only the first may lack a lower
/// bound and only the last an upper bound.
fn check_steps(steps: &[Step]) -> ApiResult<()> {
    let mut sorted = steps.to_vec();
    sorted.sort_by(|a, b| {
        a.lower
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY))
    });
    for (i, s) in sorted.iter().enumerate() {
        if s.lower.is_none() && i != 0 {
            return Err(validation(
                "Only one step adjustment may have an unspecified lower bound",
            ));
        }
        if s.upper.is_none() && i + 1 != sorted.len() {
            return Err(validation(
                "Only one step adjustment may have an unspecified upper bound",
            ));
        }
        if let (Some(l), Some(u)) = (s.lower, s.upper)
            && l >= u
        {
            return Err(validation(
                "The upper bound of a step adjustment must be greater than its lower bound",
            ));
        }
        if let Some(next) = sorted.get(i + 1)
            && s.upper != next.lower
        {
            return Err(validation(
                "Step adjustments may not overlap or leave a gap between them",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(adj: i64, min_mag: Option<i64>) -> Policy {
        Policy {
            arn: String::new(),
            name: "p".into(),
            policy_type: "SimpleScaling".into(),
            adjustment_type: Some("PercentChangeInCapacity".into()),
            scaling_adjustment: Some(adj),
            cooldown_s: None,
            min_adjustment_magnitude: min_mag,
            metric_aggregation: None,
            steps: Vec::new(),
            warmup_s: None,
            target_tracking: None,
            alarms: Vec::new(),
            enabled: true,
        }
    }

    #[test]
    fn percent_changes_round_as_the_user_guide_says() {
        // "Values greater than 1 are rounded down": 10 × 127 % → +12.
        assert_eq!(adjusted(&pct(127, None), 10, 127), 22);
        // Between 0 and 1 → 1: 3 × 10 % = 0.3 → +1.
        assert_eq!(adjusted(&pct(10, None), 3, 10), 4);
        // Between -1 and 0 → -1.
        assert_eq!(adjusted(&pct(-10, None), 3, -10), 2);
        // Below -1 rounded up: 10 × -67 % = -6.7 → -6.
        assert_eq!(adjusted(&pct(-67, None), 10, -67), 4);
        // MinAdjustmentMagnitude: 4 × 25 % = 1, at least 2.
        assert_eq!(adjusted(&pct(25, Some(2)), 4, 25), 6);
    }

    #[test]
    fn steps_take_the_interval_containing_the_breach() {
        let steps = vec![
            Step {
                lower: Some(0.0),
                upper: Some(10.0),
                adjustment: 1,
            },
            Step {
                lower: Some(10.0),
                upper: None,
                adjustment: 3,
            },
        ];
        assert!(check_steps(&steps).is_ok());
        assert_eq!(step_for(&steps, 5.0), Some(1));
        assert_eq!(step_for(&steps, 10.0), Some(3));
        assert_eq!(step_for(&steps, -1.0), None);
        let gap = vec![
            Step {
                lower: Some(0.0),
                upper: Some(5.0),
                adjustment: 1,
            },
            Step {
                lower: Some(10.0),
                upper: None,
                adjustment: 3,
            },
        ];
        assert!(check_steps(&gap).is_err());
    }
}

//! Amazon EC2 Auto Scaling (awsQuery, `2011-01-01`): groups from launch templates,
//! their instances and activities, shaped as botocore's `autoscaling/2011-01-01` model
//! describes them, through the shared awsQuery layer ([`super::awsquery`]). The rules
//! and the tick's reconciliation are in `model::autoscaling`.

use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::awsquery::QueryService;
use super::awsquery::text_of;
use super::json::JsonCall;
use crate::model::autoscaling::policy::{
    Policy, PolicySpec, Step, TargetTracking, TrackedMetric, predefined_metric,
};
use crate::model::autoscaling::{Group, GroupSpec, validation};
use crate::model::{ApiError, ApiResult, World};

pub static QUERY: QueryService = QueryService {
    xmlns: "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    timestamps: &["CreatedTime", "StartTime", "EndTime"],
    maps: &[],
    handler: dispatch,
    iam_prefix: "autoscaling",
    resource: super::json::any_resource,
};

/// The operations vpclab answers (docs/api.md lists the same).
pub const OPERATIONS: &[&str] = &[
    "CreateAutoScalingGroup",
    "DescribeAutoScalingGroups",
    "UpdateAutoScalingGroup",
    "SetDesiredCapacity",
    "DeleteAutoScalingGroup",
    "DescribeScalingActivities",
    "DescribeAutoScalingInstances",
    "PutScalingPolicy",
    "DescribePolicies",
    "DeletePolicy",
    "ExecutePolicy",
];

pub async fn endpoint(state: AppState, req: Request) -> Response {
    super::awsquery::endpoint(state, req, &QUERY).await
}

fn text(c: &JsonCall, name: &str) -> Option<String> {
    text_of(c.body.get(name)).filter(|s| !s.is_empty())
}

fn int(c: &JsonCall, name: &str) -> ApiResult<Option<i64>> {
    match text(c, name) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| validation(format!("Value '{s}' at '{name}' is not an integer"))),
    }
}

fn float_of(v: Option<&Value>, name: &str) -> ApiResult<Option<f64>> {
    match text_of(v).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| validation(format!("Value '{s}' at '{name}' is not a number"))),
    }
}

fn bool_of(v: Option<&Value>) -> Option<bool> {
    text_of(v).map(|s| s == "true")
}

/// PutScalingPolicy's parameters.
fn policy_spec(c: &JsonCall) -> ApiResult<PolicySpec> {
    let group = required(c, "AutoScalingGroupName")?;
    let mut steps = Vec::new();
    if let Some(Value::Array(a)) = c.body.get("StepAdjustments") {
        for s in a {
            let adjustment = text_of(s.get("ScalingAdjustment"))
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| {
                    validation("Each step adjustment needs an integer ScalingAdjustment")
                })?;
            steps.push(Step {
                lower: float_of(
                    s.get("MetricIntervalLowerBound"),
                    "MetricIntervalLowerBound",
                )?,
                upper: float_of(
                    s.get("MetricIntervalUpperBound"),
                    "MetricIntervalUpperBound",
                )?,
                adjustment,
            });
        }
    }
    let target_tracking = match c.body.get("TargetTrackingConfiguration") {
        None => None,
        Some(t) => {
            let target = float_of(t.get("TargetValue"), "TargetValue")?
                .ok_or_else(|| validation("TargetTrackingConfiguration.TargetValue is required"))?;
            let metric = if let Some(p) = t.get("PredefinedMetricSpecification") {
                let kind = text_of(p.get("PredefinedMetricType")).unwrap_or_default();
                predefined_metric(&kind, &group, text_of(p.get("ResourceLabel")).as_deref())?
            } else if let Some(m) = t.get("CustomizedMetricSpecification") {
                let dims = match m.get("Dimensions") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|d| Some((text_of(d.get("Name"))?, text_of(d.get("Value"))?)))
                        .collect(),
                    _ => Vec::new(),
                };
                let (Some(name), Some(ns), Some(stat)) = (
                    text_of(m.get("MetricName")),
                    text_of(m.get("Namespace")),
                    text_of(m.get("Statistic")),
                ) else {
                    return Err(validation(
                        "CustomizedMetricSpecification needs MetricName, Namespace and Statistic (vpclab does not take Metrics queries)",
                    ));
                };
                TrackedMetric {
                    predefined: None,
                    resource_label: None,
                    namespace: ns,
                    metric_name: name,
                    dimensions: dims,
                    statistic: stat,
                    unit: text_of(m.get("Unit")),
                }
            } else {
                return Err(validation(
                    "TargetTrackingConfiguration needs a PredefinedMetricSpecification or a CustomizedMetricSpecification",
                ));
            };
            Some(TargetTracking {
                metric,
                target,
                disable_scale_in: bool_of(t.get("DisableScaleIn")).unwrap_or(false),
            })
        }
    };
    Ok(PolicySpec {
        group,
        name: required(c, "PolicyName")?,
        policy_type: text(c, "PolicyType"),
        adjustment_type: text(c, "AdjustmentType"),
        scaling_adjustment: int(c, "ScalingAdjustment")?,
        cooldown_s: int(c, "Cooldown")?,
        min_adjustment_magnitude: int(c, "MinAdjustmentMagnitude")?,
        metric_aggregation: text(c, "MetricAggregationType"),
        steps,
        warmup_s: int(c, "EstimatedInstanceWarmup")?,
        target_tracking,
        enabled: bool_of(c.body.get("Enabled")),
    })
}

fn policy_json(w: &World, g: &Group, p: &Policy) -> Value {
    let mut v = json!({
        "AutoScalingGroupName": g.name,
        "PolicyName": p.name,
        "PolicyARN": p.arn,
        "PolicyType": p.policy_type,
        "StepAdjustments": p.steps.iter().map(|s| {
            let mut x = json!({ "ScalingAdjustment": s.adjustment });
            if let Some(l) = s.lower { x["MetricIntervalLowerBound"] = json!(l); }
            if let Some(u) = s.upper { x["MetricIntervalUpperBound"] = json!(u); }
            x
        }).collect::<Vec<_>>(),
        "Alarms": p.alarms.iter().map(|n| json!({
            "AlarmName": n,
            "AlarmARN": format!("arn:aws:cloudwatch:{}:{}:alarm:{n}", g.region, w.account),
        })).collect::<Vec<_>>(),
        "Enabled": p.enabled,
    });
    let mut put = |k: &str, x: Option<Value>| {
        if let Some(x) = x {
            v[k] = x;
        }
    };
    put(
        "AdjustmentType",
        p.adjustment_type.as_ref().map(|x| json!(x)),
    );
    put("ScalingAdjustment", p.scaling_adjustment.map(|x| json!(x)));
    put("Cooldown", p.cooldown_s.map(|x| json!(x)));
    put(
        "MinAdjustmentMagnitude",
        p.min_adjustment_magnitude.map(|x| json!(x)),
    );
    put(
        "MetricAggregationType",
        p.metric_aggregation.as_ref().map(|x| json!(x)),
    );
    put("EstimatedInstanceWarmup", p.warmup_s.map(|x| json!(x)));
    put(
        "TargetTrackingConfiguration",
        p.target_tracking.as_ref().map(|t| {
            let m = &t.metric;
            let spec = match &m.predefined {
                Some(kind) => {
                    let mut s = json!({ "PredefinedMetricType": kind });
                    if let Some(l) = &m.resource_label {
                        s["ResourceLabel"] = json!(l);
                    }
                    json!({ "PredefinedMetricSpecification": s })
                }
                None => json!({ "CustomizedMetricSpecification": {
                    "MetricName": m.metric_name,
                    "Namespace": m.namespace,
                    "Dimensions": m.dimensions.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>(),
                    "Statistic": m.statistic,
                }}),
            };
            let mut out = spec;
            out["TargetValue"] = json!(t.target);
            out["DisableScaleIn"] = json!(t.disable_scale_in);
            out
        }),
    );
    v
}

fn strings(c: &JsonCall, name: &str) -> Vec<String> {
    match c.body.get(name) {
        Some(Value::Array(a)) => a.iter().filter_map(|v| text_of(Some(v))).collect(),
        _ => Vec::new(),
    }
}

fn required(c: &JsonCall, name: &str) -> ApiResult<String> {
    text(c, name).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn spec(c: &JsonCall) -> ApiResult<GroupSpec> {
    let lt = c.body.get("LaunchTemplate");
    if text(c, "LaunchConfigurationName").is_some() || c.body.get("MixedInstancesPolicy").is_some()
    {
        return Err(validation(
            "vpclab launches Auto Scaling groups from launch templates only (LaunchTemplate), not launch configurations or mixed instances policies",
        ));
    }
    let template = lt.map(|t| {
        (
            text_of(t.get("LaunchTemplateId")),
            text_of(t.get("LaunchTemplateName")),
            text_of(t.get("Version")),
        )
    });
    let mut tags = Vec::new();
    if let Some(Value::Array(a)) = c.body.get("Tags") {
        for t in a {
            if let Some(k) = text_of(t.get("Key")) {
                tags.push((k, text_of(t.get("Value")).unwrap_or_default()));
            }
        }
    }
    Ok(GroupSpec {
        name: required(c, "AutoScalingGroupName")?,
        template,
        min: int(c, "MinSize")?,
        max: int(c, "MaxSize")?,
        desired: int(c, "DesiredCapacity")?,
        subnets: text(c, "VPCZoneIdentifier").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        target_groups: c
            .body
            .get("TargetGroupARNs")
            .map(|_| strings(c, "TargetGroupARNs")),
        health_check_type: text(c, "HealthCheckType"),
        grace_s: int(c, "HealthCheckGracePeriod")?,
        tags,
    })
}

fn template_json(g: &Group) -> Value {
    json!({
        "LaunchTemplateId": g.template.id,
        "LaunchTemplateName": g.template.name,
        "Version": g.template.version,
    })
}

fn instance_type(w: &World, id: &str) -> String {
    w.instances
        .get(id)
        .map(|i| i.instance_type.clone())
        .unwrap_or_default()
}

fn group_json(w: &World, g: &Group) -> Value {
    let mut zones: Vec<String> = g
        .subnets
        .iter()
        .filter_map(|s| w.subnets.get(s).map(|x| x.availability_zone.clone()))
        .collect();
    zones.sort();
    zones.dedup();
    json!({
        "AutoScalingGroupName": g.name,
        "AutoScalingGroupARN": g.id,
        "LaunchTemplate": template_json(g),
        "MinSize": g.min,
        "MaxSize": g.max,
        "DesiredCapacity": g.desired,
        "DefaultCooldown": 300,
        "AvailabilityZones": zones,
        "LoadBalancerNames": [],
        "TargetGroupARNs": g.target_groups,
        "HealthCheckType": g.health_check_type,
        "HealthCheckGracePeriod": g.grace_s,
        "Instances": g.members.iter().map(|m| json!({
            "InstanceId": m.instance_id,
            "InstanceType": instance_type(w, &m.instance_id),
            "AvailabilityZone": m.availability_zone,
            "LifecycleState": m.lifecycle,
            "HealthStatus": m.health,
            "LaunchTemplate": template_json(g),
            "ProtectedFromScaleIn": false,
        })).collect::<Vec<_>>(),
        "CreatedTime": g.created.0,
        "VPCZoneIdentifier": g.subnets.join(","),
        "Tags": g.tags.iter().map(|(k, v)| json!({
            "ResourceId": g.name,
            "ResourceType": "auto-scaling-group",
            "Key": k,
            "Value": v,
            "PropagateAtLaunch": true,
        })).collect::<Vec<_>>(),
        "TerminationPolicies": ["Default"],
        "NewInstancesProtectedFromScaleIn": false,
        "ServiceLinkedRoleARN": format!("arn:aws:iam::{}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", w.account),
    })
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "CreateAutoScalingGroup" => {
            let spec = spec(c)?;
            let delay = c.boot_delay_ms;
            c.mutate(|w, env| w.create_autoscaling_group(env, spec, delay))?;
            Ok(json!({}))
        }
        "UpdateAutoScalingGroup" => {
            let spec = spec(c)?;
            c.mutate(|w, env| w.update_autoscaling_group(env, spec))?;
            Ok(json!({}))
        }
        "SetDesiredCapacity" => {
            let name = required(c, "AutoScalingGroupName")?;
            let d = int(c, "DesiredCapacity")?
                .ok_or_else(|| validation("DesiredCapacity must be given"))?;
            c.mutate(|w, env| w.set_desired_capacity(env, &name, d))?;
            Ok(json!({}))
        }
        "DeleteAutoScalingGroup" => {
            let name = required(c, "AutoScalingGroupName")?;
            let force = text(c, "ForceDelete").as_deref() == Some("true");
            c.mutate(|w, env| w.delete_autoscaling_group(env, &name, force))?;
            Ok(json!({}))
        }
        "DescribeAutoScalingGroups" => {
            let names = strings(c, "AutoScalingGroupNames");
            let w = c.read()?;
            let out: Vec<Value> = w
                .autoscaling_groups
                .in_region(&c.env.region)
                .filter(|g| names.is_empty() || names.contains(&g.name))
                .map(|g| group_json(&w, g))
                .collect();
            Ok(json!({ "AutoScalingGroups": out }))
        }
        "DescribeScalingActivities" => {
            let name = text(c, "AutoScalingGroupName");
            let w = c.read()?;
            let mut out = Vec::new();
            for g in w.autoscaling_groups.in_region(&c.env.region) {
                if name.as_ref().is_some_and(|n| n != &g.name) {
                    continue;
                }
                for a in &g.activities {
                    let mut v = json!({
                        "ActivityId": a.id,
                        "AutoScalingGroupName": g.name,
                        "AutoScalingGroupARN": g.id,
                        "Description": a.description,
                        "Cause": a.cause,
                        "StartTime": a.start.0,
                        "EndTime": a.end.0,
                        "StatusCode": a.status,
                        "Progress": 100,
                        "Details": format!("{{\"Subnet ID\":\"{}\"}}", g.subnets.first().cloned().unwrap_or_default()),
                    });
                    if let Some(m) = &a.status_message {
                        v["StatusMessage"] = json!(m);
                    }
                    out.push(v);
                }
            }
            Ok(json!({ "Activities": out }))
        }
        "DescribeAutoScalingInstances" => {
            let ids = strings(c, "InstanceIds");
            let w = c.read()?;
            let mut out = Vec::new();
            for g in w.autoscaling_groups.in_region(&c.env.region) {
                for m in &g.members {
                    if !ids.is_empty() && !ids.contains(&m.instance_id) {
                        continue;
                    }
                    out.push(json!({
                        "InstanceId": m.instance_id,
                        "InstanceType": instance_type(&w, &m.instance_id),
                        "AutoScalingGroupName": g.name,
                        "AvailabilityZone": m.availability_zone,
                        "LifecycleState": m.lifecycle,
                        "HealthStatus": m.health.to_uppercase(),
                        "LaunchTemplate": template_json(g),
                        "ProtectedFromScaleIn": false,
                    }));
                }
            }
            Ok(json!({ "AutoScalingInstances": out }))
        }
        "PutScalingPolicy" => {
            let spec = policy_spec(c)?;
            let (arn, alarms) = c.mutate(|w, env| w.put_scaling_policy(env, spec))?;
            Ok(json!({
                "PolicyARN": arn,
                "Alarms": alarms.iter().map(|(n, a)| json!({"AlarmName": n, "AlarmARN": a})).collect::<Vec<_>>(),
            }))
        }
        "DescribePolicies" => {
            let group = text(c, "AutoScalingGroupName");
            let names = strings(c, "PolicyNames");
            let types = strings(c, "PolicyTypes");
            let w = c.read()?;
            if let Some(g) = &group {
                w.autoscaling_group(&c.env, g)?;
            }
            let mut out = Vec::new();
            for g in w.autoscaling_groups.in_region(&c.env.region) {
                if group.as_ref().is_some_and(|n| n != &g.name) {
                    continue;
                }
                for p in &g.policies {
                    let named =
                        names.is_empty() || names.iter().any(|n| *n == p.name || *n == p.arn);
                    if named && (types.is_empty() || types.contains(&p.policy_type)) {
                        out.push(policy_json(&w, g, p));
                    }
                }
            }
            Ok(json!({ "ScalingPolicies": out }))
        }
        "DeletePolicy" => {
            let group = text(c, "AutoScalingGroupName");
            let name = required(c, "PolicyName")?;
            c.mutate(|w, env| w.delete_scaling_policy(env, group.as_deref(), &name))?;
            Ok(json!({}))
        }
        "ExecutePolicy" => {
            let group = text(c, "AutoScalingGroupName");
            let name = required(c, "PolicyName")?;
            let honor = bool_of(c.body.get("HonorCooldown")).unwrap_or(false);
            let metric = float_of(c.body.get("MetricValue"), "MetricValue")?;
            let breach = float_of(c.body.get("BreachThreshold"), "BreachThreshold")?;
            c.mutate(|w, env| {
                w.execute_scaling_policy(env, group.as_deref(), &name, honor, metric, breach)
            })?;
            Ok(json!({}))
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!(
                "vpclab does not implement the Auto Scaling operation {op} (see docs/api.md and docs/fidelity.md)"
            ),
        )),
    }
}

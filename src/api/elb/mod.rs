//! Elastic Load Balancing v2 (awsQuery, `2015-12-01`): load balancers, target groups,
//! targets and their health, listeners, rules and tags, shaped as botocore's
//! `elbv2/2015-12-01` model describes them, through the shared awsQuery layer
//! ([`super::awsquery`]). The rules are in `model::elb`; the data plane in `world::elb`.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::awsquery::QueryService;
use super::awsquery::text_of;
use super::json::JsonCall;
use crate::model::elb::{
    Action, Condition, HealthCheckInput, Listener, LoadBalancer, LoadBalancerSpec, TargetGroup,
    TargetGroupSpec, validation,
};
use crate::model::{ApiError, ApiResult, World};

pub static QUERY: QueryService = QueryService {
    xmlns: "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    timestamps: &["CreatedTime"],
    maps: &[],
    handler: dispatch,
    iam_prefix: "elasticloadbalancing",
    resource: super::json::any_resource,
};

/// The operations vpclab answers (docs/api.md lists the same).
pub const OPERATIONS: &[&str] = &[
    "CreateLoadBalancer",
    "DescribeLoadBalancers",
    "DeleteLoadBalancer",
    "CreateTargetGroup",
    "DescribeTargetGroups",
    "ModifyTargetGroup",
    "ModifyTargetGroupAttributes",
    "DescribeTargetGroupAttributes",
    "DeleteTargetGroup",
    "RegisterTargets",
    "DeregisterTargets",
    "DescribeTargetHealth",
    "CreateListener",
    "DescribeListeners",
    "ModifyListener",
    "DeleteListener",
    "CreateRule",
    "DescribeRules",
    "DeleteRule",
    "AddTags",
    "RemoveTags",
    "DescribeTags",
];

pub async fn endpoint(state: AppState, req: Request) -> Response {
    super::awsquery::endpoint(state, req, &QUERY).await
}

fn text(c: &JsonCall, name: &str) -> Option<String> {
    text_of(c.body.get(name))
}

fn required(c: &JsonCall, name: &str) -> ApiResult<String> {
    text(c, name).filter(|s| !s.is_empty()).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn int_of(name: &str, v: Option<&Value>) -> ApiResult<Option<i64>> {
    match text_of(v) {
        None => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            validation(format!(
                "Value '{s}' at '{}' is not an integer",
                lower_first(name)
            ))
        }),
    }
}

fn int(c: &JsonCall, name: &str) -> ApiResult<Option<i64>> {
    int_of(name, c.body.get(name))
}

fn port_of(name: &str, v: Option<&Value>) -> ApiResult<Option<u16>> {
    match int_of(name, v)? {
        None => Ok(None),
        Some(p) => u16::try_from(p).ok().filter(|p| *p >= 1).map(Some).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value '{p}' at '{}' failed to satisfy constraint: Member must have value between 1 and 65535",
                lower_first(name)
            ))
        }),
    }
}

fn list<'a>(c: &'a JsonCall, name: &str) -> &'a [Value] {
    match c.body.get(name) {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

fn strings(c: &JsonCall, name: &str) -> Vec<String> {
    list(c, name)
        .iter()
        .filter_map(|v| text_of(Some(v)))
        .collect()
}

fn tags_in(c: &JsonCall) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in list(c, "Tags") {
        let k = text_of(t.get("Key"))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| validation("A tag key must be specified"))?;
        out.insert(k, text_of(t.get("Value")).unwrap_or_default());
    }
    Ok(out)
}

fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// `Actions.member.N`: forward (by `TargetGroupArn` or `ForwardConfig`) and
/// fixed-response; others are refused with a clear message.
fn actions_of(v: &[Value]) -> ApiResult<Vec<Action>> {
    let mut with_order: Vec<(i64, Action)> = Vec::new();
    for (i, a) in v.iter().enumerate() {
        let ty = text_of(a.get("Type")).unwrap_or_default();
        let order = int_of("Order", a.get("Order"))?.unwrap_or(i as i64 + 1);
        let action = match ty.as_str() {
            "forward" => {
                let mut groups = Vec::new();
                if let Some(g) = text_of(a.get("TargetGroupArn")) {
                    groups.push((g, 1));
                }
                if let Some(Value::Array(tuples)) =
                    a.get("ForwardConfig").and_then(|f| f.get("TargetGroups"))
                {
                    for t in tuples {
                        let Some(g) = text_of(t.get("TargetGroupArn")) else {
                            continue;
                        };
                        let w = int_of("Weight", t.get("Weight"))?.unwrap_or(1);
                        let w = u32::try_from(w).ok().filter(|w| *w <= 999).ok_or_else(|| {
                            validation("A target group weight must be between 0 and 999")
                        })?;
                        if !groups.iter().any(|(x, _)| x == &g) {
                            groups.push((g, w));
                        }
                    }
                }
                Action::Forward { groups }
            }
            "fixed-response" => {
                let f = a.get("FixedResponseConfig");
                let status = text_of(f.and_then(|f| f.get("StatusCode")))
                    .ok_or_else(|| validation("A fixed-response action needs a status code"))?;
                let status = status
                    .parse::<u16>()
                    .map_err(|_| validation(format!("Status code '{status}' is not valid")))?;
                Action::FixedResponse {
                    status,
                    content_type: text_of(f.and_then(|f| f.get("ContentType"))),
                    body: text_of(f.and_then(|f| f.get("MessageBody"))),
                }
            }
            "redirect" => {
                let r = a.get("RedirectConfig");
                let part = |name: &str, default: &str| {
                    text_of(r.and_then(|r| r.get(name))).unwrap_or_else(|| default.to_string())
                };
                let code = text_of(r.and_then(|r| r.get("StatusCode")))
                    .ok_or_else(|| validation("A redirect action needs a status code"))?;
                let status = match code.as_str() {
                    "HTTP_301" => 301,
                    "HTTP_302" => 302,
                    other => {
                        return Err(validation(format!(
                            "1 validation error detected: Value '{other}' at 'redirectConfig.statusCode' failed to satisfy constraint: Member must satisfy enum value set: [HTTP_301, HTTP_302]"
                        )));
                    }
                };
                Action::Redirect {
                    protocol: part("Protocol", "#{protocol}")
                        .to_ascii_uppercase()
                        .replace("#{PROTOCOL}", "#{protocol}"),
                    port: part("Port", "#{port}"),
                    host: part("Host", "#{host}"),
                    path: part("Path", "/#{path}"),
                    query: part("Query", "#{query}"),
                    status,
                }
            }
            "" => return Err(validation("An action type must be specified")),
            other => {
                return Err(validation(format!(
                    "vpclab emulates 'forward', 'fixed-response' and 'redirect' actions, not '{other}' (see docs/fidelity.md)"
                )));
            }
        };
        with_order.push((order, action));
    }
    with_order.sort_by_key(|(o, _)| *o);
    Ok(with_order.into_iter().map(|(_, a)| a).collect())
}

fn action_json(a: &Action, order: usize) -> Value {
    match a {
        Action::Forward { groups } => {
            let mut v = json!({
                "Type": "forward",
                "Order": order,
                "ForwardConfig": {
                    "TargetGroups": groups.iter().map(|(g, w)| json!({"TargetGroupArn": g, "Weight": w})).collect::<Vec<_>>(),
                    "TargetGroupStickinessConfig": {"Enabled": false},
                },
            });
            if groups.len() == 1 {
                v["TargetGroupArn"] = json!(groups[0].0);
            }
            v
        }
        Action::Redirect {
            protocol,
            port,
            host,
            path,
            query,
            status,
        } => json!({
            "Type": "redirect",
            "Order": order,
            "RedirectConfig": {
                "Protocol": protocol,
                "Port": port,
                "Host": host,
                "Path": path,
                "Query": query,
                "StatusCode": format!("HTTP_{status}"),
            },
        }),
        Action::FixedResponse {
            status,
            content_type,
            body,
        } => json!({
            "Type": "fixed-response",
            "Order": order,
            "FixedResponseConfig": {
                "StatusCode": status.to_string(),
                "ContentType": content_type,
                "MessageBody": body,
            },
        }),
    }
}

fn actions_json(actions: &[Action]) -> Value {
    Value::Array(
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| action_json(a, i + 1))
            .collect(),
    )
}

fn conditions_of(v: &[Value]) -> ApiResult<Vec<Condition>> {
    v.iter()
        .map(|c| {
            let field = text_of(c.get("Field"))
                .ok_or_else(|| validation("A condition field must be specified"))?;
            let mut values: Vec<String> = match c.get("Values") {
                Some(Value::Array(a)) => a.iter().filter_map(|x| text_of(Some(x))).collect(),
                _ => Vec::new(),
            };
            let config = match field.as_str() {
                "path-pattern" => "PathPatternConfig",
                "host-header" => "HostHeaderConfig",
                _ => "",
            };
            if let Some(Value::Array(a)) = c.get(config).and_then(|x| x.get("Values")) {
                values.extend(a.iter().filter_map(|x| text_of(Some(x))));
            }
            Ok(Condition { field, values })
        })
        .collect()
}

fn condition_json(c: &Condition) -> Value {
    let mut v = json!({"Field": c.field, "Values": c.values});
    let config = match c.field.as_str() {
        "path-pattern" => "PathPatternConfig",
        _ => "HostHeaderConfig",
    };
    v[config] = json!({"Values": c.values});
    v
}

fn lb_json(w: &World, lb: &LoadBalancer) -> Value {
    let zones: Vec<Value> = lb
        .nodes
        .iter()
        .map(|n| {
            let eni = w.network_interfaces.get(&n.eni_id);
            let mut v = json!({"ZoneName": n.availability_zone, "SubnetId": n.subnet_id});
            // Only a network load balancer lists its node addresses (its static IPs).
            if lb.is_network()
                && let Some(e) = eni
            {
                let mut addr = json!({"PrivateIPv4Address": e.private_ip.to_string()});
                if let Some(a) = &e.association {
                    addr["IpAddress"] = json!(a.public_ip.to_string());
                }
                v["LoadBalancerAddresses"] = json!([addr]);
            }
            v
        })
        .collect();
    let mut v = json!({
        "LoadBalancerArn": lb.id,
        "DNSName": lb.dns_name,
        "CanonicalHostedZoneId": World::canonical_hosted_zone(lb),
        "CreatedTime": lb.created.0,
        "LoadBalancerName": lb.name,
        "Scheme": lb.scheme,
        "VpcId": lb.vpc_id,
        "State": {"Code": lb.state},
        "Type": lb.lb_type,
        "AvailabilityZones": zones,
        "IpAddressType": "ipv4",
    });
    if !lb.security_groups.is_empty() {
        v["SecurityGroups"] = json!(lb.security_groups);
    }
    v
}

fn tg_json(w: &World, tg: &TargetGroup) -> Value {
    let h = &tg.health;
    let mut v = json!({
        "TargetGroupArn": tg.id,
        "TargetGroupName": tg.name,
        "Protocol": tg.protocol,
        "Port": tg.port,
        "VpcId": tg.vpc_id,
        "HealthCheckProtocol": h.protocol,
        "HealthCheckPort": h.port,
        "HealthCheckEnabled": true,
        "HealthCheckIntervalSeconds": h.interval_s,
        "HealthCheckTimeoutSeconds": h.timeout_s,
        "HealthyThresholdCount": h.healthy_threshold,
        "UnhealthyThresholdCount": h.unhealthy_threshold,
        "LoadBalancerArns": w.load_balancers_of(&tg.id),
        "TargetType": tg.target_type,
        "IpAddressType": "ipv4",
    });
    if let Some(p) = &h.path {
        v["HealthCheckPath"] = json!(p);
    }
    if let Some(m) = &h.matcher {
        v["Matcher"] = json!({"HttpCode": m});
    }
    if matches!(tg.protocol.as_str(), "HTTP" | "HTTPS") {
        v["ProtocolVersion"] = json!("HTTP1");
    }
    v
}

fn listener_json(l: &Listener) -> Value {
    let mut v = json!({
        "ListenerArn": l.id,
        "LoadBalancerArn": l.load_balancer,
        "Port": l.port,
        "Protocol": l.protocol,
        "DefaultActions": actions_json(&l.default_actions),
    });
    if !l.certificates.is_empty() {
        v["Certificates"] = l
            .certificates
            .iter()
            .map(|c| json!({ "CertificateArn": c }))
            .collect();
    }
    if let Some(p) = &l.ssl_policy {
        v["SslPolicy"] = json!(p);
    }
    v
}

/// `Certificates.member.N.CertificateArn`.
fn certificates_in(c: &JsonCall) -> Vec<String> {
    list(c, "Certificates")
        .iter()
        .filter_map(|x| text_of(x.get("CertificateArn")))
        .collect()
}

fn rules_json(l: &Listener) -> Vec<Value> {
    let mut out: Vec<Value> = l
        .rules
        .iter()
        .map(|r| {
            json!({
                "RuleArn": r.arn,
                "Priority": r.priority.to_string(),
                "Conditions": r.conditions.iter().map(condition_json).collect::<Vec<_>>(),
                "Actions": actions_json(&r.actions),
                "IsDefault": false,
            })
        })
        .collect();
    out.push(json!({
        "RuleArn": l.default_rule_arn(),
        "Priority": "default",
        "Conditions": [],
        "Actions": actions_json(&l.default_actions),
        "IsDefault": true,
    }));
    out
}

fn health_input(c: &JsonCall) -> ApiResult<HealthCheckInput> {
    if text(c, "HealthCheckEnabled").as_deref() == Some("false") {
        return Err(validation(
            "Health checks cannot be disabled for target groups with target type 'instance' or 'ip'",
        ));
    }
    Ok(HealthCheckInput {
        protocol: text(c, "HealthCheckProtocol"),
        port: text(c, "HealthCheckPort"),
        path: text(c, "HealthCheckPath"),
        interval_s: int(c, "HealthCheckIntervalSeconds")?,
        timeout_s: int(c, "HealthCheckTimeoutSeconds")?,
        healthy_threshold: int(c, "HealthyThresholdCount")?,
        unhealthy_threshold: int(c, "UnhealthyThresholdCount")?,
        matcher: text_of(c.body.get("Matcher").and_then(|m| m.get("HttpCode"))),
    })
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    // `aws elb` (Classic Load Balancers) signs with the same service name.
    if text(c, "Version").as_deref() == Some("2012-06-01") {
        return Err(ApiError::new(
            "NotImplemented",
            "vpclab does not emulate Classic Load Balancers (aws elb); use application or network load balancers (aws elbv2)",
        )
        .with_status(501));
    }
    match op {
        "CreateLoadBalancer" => {
            let mut subnets = strings(c, "Subnets");
            for m in list(c, "SubnetMappings") {
                if let Some(s) = text_of(m.get("SubnetId")) {
                    subnets.push(s);
                }
            }
            let spec = LoadBalancerSpec {
                name: required(c, "Name")?,
                lb_type: text(c, "Type").unwrap_or_else(|| "application".into()),
                scheme: text(c, "Scheme").unwrap_or_else(|| "internet-facing".into()),
                subnets,
                security_groups: strings(c, "SecurityGroups"),
                tags: tags_in(c)?,
            };
            if text(c, "IpAddressType").is_some_and(|t| t != "ipv4") {
                return Err(validation(
                    "vpclab emulates IpAddressType 'ipv4' only (see docs/fidelity.md)",
                ));
            }
            let arn = c.mutate(|w, env| w.create_load_balancer(env, spec))?;
            let w = c.read()?;
            let lb = w.load_balancer(&c.env, &arn)?;
            Ok(json!({ "LoadBalancers": [lb_json(&w, lb)] }))
        }
        "DescribeLoadBalancers" => {
            let arns = strings(c, "LoadBalancerArns");
            let names = strings(c, "Names");
            let w = c.read()?;
            let mut out = Vec::new();
            for a in &arns {
                out.push(lb_json(&w, w.load_balancer(&c.env, a)?));
            }
            for n in &names {
                let lb = w
                    .elb_load_balancers
                    .in_region(&c.env.region)
                    .find(|l| &l.name == n)
                    .ok_or_else(|| {
                        ApiError::new(
                            "LoadBalancerNotFound",
                            format!("Load balancers '[{n}]' not found"),
                        )
                    })?;
                out.push(lb_json(&w, lb));
            }
            if arns.is_empty() && names.is_empty() {
                out = w
                    .elb_load_balancers
                    .in_region(&c.env.region)
                    .map(|l| lb_json(&w, l))
                    .collect();
            }
            Ok(json!({ "LoadBalancers": out }))
        }
        "DeleteLoadBalancer" => {
            let arn = required(c, "LoadBalancerArn")?;
            c.mutate(|w, env| w.delete_load_balancer(env, &arn))?;
            Ok(json!({}))
        }
        "CreateTargetGroup" => {
            let spec = TargetGroupSpec {
                name: required(c, "Name")?,
                protocol: text(c, "Protocol"),
                port: port_of("Port", c.body.get("Port"))?,
                vpc_id: text(c, "VpcId"),
                target_type: text(c, "TargetType").unwrap_or_else(|| "instance".into()),
                health: health_input(c)?,
                tags: tags_in(c)?,
            };
            let arn = c.mutate(|w, env| w.create_target_group(env, spec))?;
            let w = c.read()?;
            Ok(json!({ "TargetGroups": [tg_json(&w, w.target_group(&c.env, &arn)?)] }))
        }
        "DescribeTargetGroups" => {
            let arns = strings(c, "TargetGroupArns");
            let names = strings(c, "Names");
            let lb = text(c, "LoadBalancerArn");
            let w = c.read()?;
            let mut out = Vec::new();
            for a in &arns {
                out.push(tg_json(&w, w.target_group(&c.env, a)?));
            }
            for n in &names {
                let tg = w
                    .elb_target_groups
                    .in_region(&c.env.region)
                    .find(|t| &t.name == n)
                    .ok_or_else(|| {
                        ApiError::new(
                            "TargetGroupNotFound",
                            format!("One or more target groups not found: '{n}'"),
                        )
                    })?;
                out.push(tg_json(&w, tg));
            }
            if let Some(lb) = &lb {
                w.load_balancer(&c.env, lb)?;
                out = w
                    .elb_target_groups
                    .in_region(&c.env.region)
                    .filter(|t| w.load_balancers_of(&t.id).contains(lb))
                    .map(|t| tg_json(&w, t))
                    .collect();
            } else if arns.is_empty() && names.is_empty() {
                out = w
                    .elb_target_groups
                    .in_region(&c.env.region)
                    .map(|t| tg_json(&w, t))
                    .collect();
            }
            Ok(json!({ "TargetGroups": out }))
        }
        "ModifyTargetGroup" => {
            let arn = required(c, "TargetGroupArn")?;
            let h = health_input(c)?;
            c.mutate(|w, env| w.modify_target_group(env, &arn, &h))?;
            let w = c.read()?;
            Ok(json!({ "TargetGroups": [tg_json(&w, w.target_group(&c.env, &arn)?)] }))
        }
        "ModifyTargetGroupAttributes" | "DescribeTargetGroupAttributes" => {
            let arn = required(c, "TargetGroupArn")?;
            let mut set = Vec::new();
            for a in list(c, "Attributes") {
                let k = text_of(a.get("Key")).unwrap_or_default();
                let v = text_of(a.get("Value")).unwrap_or_default();
                if k != "deregistration_delay.timeout_seconds" {
                    return Err(validation(format!(
                        "vpclab supports the target group attribute 'deregistration_delay.timeout_seconds', not '{k}' (see docs/fidelity.md)"
                    )));
                }
                set.push(v);
            }
            if !set.is_empty() {
                c.mutate(|w, env| {
                    for v in &set {
                        w.set_deregistration_delay(env, &arn, v)?;
                    }
                    Ok(())
                })?;
            }
            let w = c.read()?;
            let tg = w.target_group(&c.env, &arn)?;
            Ok(json!({ "Attributes": [
                {"Key": "deregistration_delay.timeout_seconds", "Value": tg.deregistration_delay_s.to_string()},
                {"Key": "stickiness.enabled", "Value": "false"},
                {"Key": "load_balancing.algorithm.type", "Value": "round_robin"},
            ]}))
        }
        "DeleteTargetGroup" => {
            let arn = required(c, "TargetGroupArn")?;
            c.mutate(|w, env| w.delete_target_group(env, &arn))?;
            Ok(json!({}))
        }
        "RegisterTargets" | "DeregisterTargets" => {
            let arn = required(c, "TargetGroupArn")?;
            let mut targets = Vec::new();
            for t in list(c, "Targets") {
                let id = text_of(t.get("Id"))
                    .ok_or_else(|| validation("A target ID must be specified"))?;
                targets.push((
                    id,
                    port_of("Port", t.get("Port"))?,
                    text_of(t.get("AvailabilityZone")),
                ));
            }
            if targets.is_empty() {
                return Err(validation(
                    "1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null",
                ));
            }
            if op == "RegisterTargets" {
                c.mutate(|w, env| w.register_targets(env, &arn, &targets))?;
            } else {
                let t: Vec<(String, Option<u16>)> =
                    targets.into_iter().map(|(i, p, _)| (i, p)).collect();
                c.mutate(|w, env| w.deregister_targets(env, &arn, &t))?;
            }
            Ok(json!({}))
        }
        "DescribeTargetHealth" => {
            let arn = required(c, "TargetGroupArn")?;
            let mut asked = Vec::new();
            for t in list(c, "Targets") {
                let id = text_of(t.get("Id"))
                    .ok_or_else(|| validation("A target ID must be specified"))?;
                asked.push((id, port_of("Port", t.get("Port"))?));
            }
            let w = c.read()?;
            let tg = w.target_group(&c.env, &arn)?;
            let port_of_check = |t: u16| {
                if tg.health.port == "traffic-port" {
                    t.to_string()
                } else {
                    tg.health.port.clone()
                }
            };
            let describe = |t: &crate::model::elb::Target| {
                let (state, reason, description) = w.shown_health(tg, t);
                let mut target = json!({"Id": t.id, "Port": t.port});
                if let Some(az) = &t.availability_zone {
                    target["AvailabilityZone"] = json!(az);
                }
                let mut health = json!({"State": state});
                if let Some(r) = reason {
                    health["Reason"] = json!(r);
                }
                if let Some(d) = description {
                    health["Description"] = json!(d);
                }
                json!({"Target": target, "HealthCheckPort": port_of_check(t.port), "TargetHealth": health})
            };
            let out: Vec<Value> = if asked.is_empty() {
                tg.targets.iter().map(describe).collect()
            } else {
                asked
                    .iter()
                    .map(|(id, port)| {
                        match tg
                            .targets
                            .iter()
                            .find(|t| &t.id == id && port.is_none_or(|p| p == t.port))
                        {
                            Some(t) => describe(t),
                            None => {
                                let port = port.or(tg.port).unwrap_or(0);
                                json!({
                                    "Target": {"Id": id, "Port": port},
                                    "HealthCheckPort": port_of_check(port),
                                    "TargetHealth": {
                                        "State": "unused",
                                        "Reason": "Target.NotRegistered",
                                        "Description": "Target is not registered to the target group",
                                    },
                                })
                            }
                        }
                    })
                    .collect()
            };
            Ok(json!({ "TargetHealthDescriptions": out }))
        }
        "CreateListener" => {
            let lb = required(c, "LoadBalancerArn")?;
            let protocol = text(c, "Protocol").unwrap_or_else(|| "HTTP".into());
            let port = port_of("Port", c.body.get("Port"))?
                .ok_or_else(|| validation("A listener port must be specified"))?;
            let actions = actions_of(list(c, "DefaultActions"))?;
            let tags = tags_in(c)?;
            let certificates = certificates_in(c);
            let policy = text(c, "SslPolicy");
            let arn = c.mutate(|w, env| {
                w.create_listener(
                    env,
                    &lb,
                    &protocol,
                    port,
                    actions,
                    tags,
                    certificates,
                    policy,
                )
            })?;
            let w = c.read()?;
            Ok(json!({ "Listeners": [listener_json(w.listener(&c.env, &arn)?)] }))
        }
        "DescribeListeners" => {
            let arns = strings(c, "ListenerArns");
            let lb = text(c, "LoadBalancerArn");
            let w = c.read()?;
            let out: Vec<Value> = if let Some(lb) = &lb {
                w.load_balancer(&c.env, lb)?;
                let mut ls: Vec<&Listener> = w
                    .elb_listeners
                    .in_region(&c.env.region)
                    .filter(|l| &l.load_balancer == lb)
                    .collect();
                ls.sort_by_key(|l| l.port);
                ls.into_iter().map(listener_json).collect()
            } else if !arns.is_empty() {
                arns.iter()
                    .map(|a| w.listener(&c.env, a).map(listener_json))
                    .collect::<ApiResult<_>>()?
            } else {
                return Err(validation(
                    "You must specify either listener ARNs or a load balancer ARN",
                ));
            };
            Ok(json!({ "Listeners": out }))
        }
        "ModifyListener" => {
            let arn = required(c, "ListenerArn")?;
            let port = port_of("Port", c.body.get("Port"))?;
            let actions = match c.body.get("DefaultActions") {
                Some(_) => Some(actions_of(list(c, "DefaultActions"))?),
                None => None,
            };
            if c.body.get("Certificates").is_some() || c.body.get("SslPolicy").is_some() {
                return Err(validation(
                    "vpclab does not change a listener's certificate or security policy yet (see docs/fidelity.md)",
                ));
            }
            if let Some(p) = text(c, "Protocol") {
                let w = c.read()?;
                if w.listener(&c.env, &arn)?.protocol != p.to_ascii_uppercase() {
                    return Err(validation(
                        "vpclab does not change a listener's protocol (see docs/fidelity.md)",
                    ));
                }
            }
            c.mutate(|w, env| w.modify_listener(env, &arn, port, actions))?;
            let w = c.read()?;
            Ok(json!({ "Listeners": [listener_json(w.listener(&c.env, &arn)?)] }))
        }
        "DeleteListener" => {
            let arn = required(c, "ListenerArn")?;
            c.mutate(|w, env| w.delete_listener(env, &arn))?;
            Ok(json!({}))
        }
        "CreateRule" => {
            let listener = required(c, "ListenerArn")?;
            let priority = int(c, "Priority")?.ok_or_else(|| {
                validation("1 validation error detected: Value null at 'priority' failed to satisfy constraint: Member must not be null")
            })?;
            let priority = u32::try_from(priority).unwrap_or(0);
            let conditions = conditions_of(list(c, "Conditions"))?;
            let actions = actions_of(list(c, "Actions"))?;
            let arn =
                c.mutate(|w, env| w.create_rule(env, &listener, priority, conditions, actions))?;
            let w = c.read()?;
            let l = w.listener(&c.env, &listener)?;
            let rule = rules_json(l)
                .into_iter()
                .find(|r| r["RuleArn"] == arn)
                .unwrap_or(Value::Null);
            Ok(json!({ "Rules": [rule] }))
        }
        "DescribeRules" => {
            let listener = text(c, "ListenerArn");
            let arns = strings(c, "RuleArns");
            let w = c.read()?;
            let out: Vec<Value> = if let Some(l) = &listener {
                rules_json(w.listener(&c.env, l)?)
            } else if !arns.is_empty() {
                let mut out = Vec::new();
                for a in &arns {
                    let l = w.listener_of_rule(&c.env, a)?;
                    out.extend(rules_json(l).into_iter().filter(|r| r["RuleArn"] == *a));
                }
                out
            } else {
                return Err(validation(
                    "You must specify either listener rule ARNs or a listener ARN",
                ));
            };
            Ok(json!({ "Rules": out }))
        }
        "DeleteRule" => {
            let arn = required(c, "RuleArn")?;
            c.mutate(|w, env| w.delete_rule(env, &arn))?;
            Ok(json!({}))
        }
        "AddTags" => {
            let arns = strings(c, "ResourceArns");
            let tags = tags_in(c)?;
            c.mutate(|w, env| {
                for a in &arns {
                    let t = w.elb_tags_mut(env, a)?;
                    t.extend(tags.clone());
                    if t.len() > 50 {
                        return Err(ApiError::new(
                            "TooManyTags",
                            format!("The resource '{a}' would have more than 50 tags"),
                        ));
                    }
                }
                Ok(())
            })?;
            Ok(json!({}))
        }
        "RemoveTags" => {
            let arns = strings(c, "ResourceArns");
            let keys = strings(c, "TagKeys");
            c.mutate(|w, env| {
                for a in &arns {
                    let t = w.elb_tags_mut(env, a)?;
                    for k in &keys {
                        t.remove(k);
                    }
                }
                Ok(())
            })?;
            Ok(json!({}))
        }
        "DescribeTags" => {
            let arns = strings(c, "ResourceArns");
            let w = c.read()?;
            let mut out = Vec::new();
            for a in &arns {
                let tags = w.elb_tags(&c.env, a)?;
                out.push(json!({"ResourceArn": a, "Tags": tags_json(&tags)}));
            }
            Ok(json!({ "TagDescriptions": out }))
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!(
                "vpclab does not implement the Elastic Load Balancing operation {op} (see docs/api.md)"
            ),
        )),
    }
}

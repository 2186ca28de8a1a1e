//! Amazon ECS (AWS JSON 1.1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`):
//! clusters, task definitions, tasks (RunTask/StopTask on Fargate with awsvpc
//! networking), services and tags. The model (`model::ecs`) decides; this module
//! parses and renders, with timestamps as epoch seconds (the JSON protocols' format).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::json::{Body, JsonCall, JsonService, any_resource, unknown_operation};
use crate::model::ec2::eni::private_dns_name;
use crate::model::ecs::{self, AwsVpc, Register, RunSpec, Service, Task, TaskDefinition, invalid};
use crate::model::{ApiResult, Timestamp, World};

pub static SERVICE: JsonService = JsonService {
    content_type: "application/x-amz-json-1.1",
    validation_code: "InvalidParameterException",
    timestamps: &[],
    query_compatible: false,
    handler: dispatch,
    iam_prefix: "ecs",
    resource: any_resource,
    passed_roles,
};

/// The roles an ECS call hands over. A task definition's task and execution roles, and
/// a run's overrides of them, are passed to `ecs-tasks.amazonaws.com`; a service's
/// load-balancer role to `ecs.amazonaws.com` (Amazon ECS Developer Guide, "IAM roles for
/// Amazon ECS"; the task-role fields take a name or an ARN).
fn passed_roles(account: &str, op: &str, body: &Body) -> Vec<(String, &'static str)> {
    let arn = |v: &Value| {
        v.as_str().filter(|s| !s.is_empty()).map(|s| {
            if s.starts_with("arn:") {
                s.to_string()
            } else {
                format!("arn:aws:iam::{account}:role/{s}")
            }
        })
    };
    const TASK_ROLES: [&str; 2] = ["taskRoleArn", "executionRoleArn"];
    let to_tasks = |r: String| (r, "ecs-tasks.amazonaws.com");
    match op {
        "RegisterTaskDefinition" => TASK_ROLES
            .into_iter()
            .filter_map(|k| body.get(k).and_then(arn))
            .map(to_tasks)
            .collect(),
        "RunTask" | "StartTask" => TASK_ROLES
            .into_iter()
            .filter_map(|k| body.get("overrides").and_then(|o| o.get(k)).and_then(arn))
            .map(to_tasks)
            .collect(),
        "CreateService" => body
            .get("role")
            .and_then(arn)
            .map(|r| vec![(r, "ecs.amazonaws.com")])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

pub const OPERATIONS: &[&str] = &[
    "CreateCluster",
    "DescribeClusters",
    "ListClusters",
    "DeleteCluster",
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "DeregisterTaskDefinition",
    "RunTask",
    "StopTask",
    "DescribeTasks",
    "ListTasks",
    "CreateService",
    "UpdateService",
    "DescribeServices",
    "ListServices",
    "DeleteService",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

fn secs(t: Timestamp) -> f64 {
    t.0 as f64 / 1000.0
}

fn cluster_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:ecs:{region}:{account}:cluster/{name}")
}

/// `[{key, value}]` → map (ECS writes tag members in lower case).
fn tags_of(body: &Body, member: &str) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in body.list(member)? {
        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
        if k.is_empty() {
            return Err(invalid("Tag keys must not be empty."));
        }
        let v = t.get("value").and_then(Value::as_str).unwrap_or("");
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn render_tags(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

fn network_of(body: &Body) -> ApiResult<Option<AwsVpc>> {
    let Some(nc) = body.get("networkConfiguration") else {
        return Ok(None);
    };
    let Some(a) = nc.get("awsvpcConfiguration") else {
        return Ok(None);
    };
    let list = |name: &str| -> Vec<String> {
        a.get(name)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let assign = match a.get("assignPublicIp").and_then(Value::as_str) {
        None | Some("DISABLED") => false,
        Some("ENABLED") => true,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid value '{other}' for assignPublicIp: use ENABLED or DISABLED."
            )));
        }
    };
    Ok(Some(AwsVpc {
        subnets: list("subnets"),
        security_groups: list("securityGroups"),
        assign_public_ip: assign,
    }))
}

fn render_network(n: &AwsVpc) -> Value {
    json!({"awsvpcConfiguration": {
        "subnets": n.subnets,
        "securityGroups": n.security_groups,
        "assignPublicIp": if n.assign_public_ip { "ENABLED" } else { "DISABLED" },
    }})
}

fn render_cluster(w: &World, c: &ecs::Cluster) -> Value {
    let (running, pending, services) = w.ecs_cluster_counts(c);
    json!({
        "clusterArn": cluster_arn(&c.region, &w.account, &c.name),
        "clusterName": c.name,
        "status": c.status,
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
        "statistics": [],
        "tags": render_tags(&c.tags),
        "settings": [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    })
}

fn render_td(w: &World, t: &TaskDefinition) -> Value {
    let mut v = json!({
        "taskDefinitionArn": t.arn(&w.account),
        "containerDefinitions": t.containers,
        "family": t.family,
        "networkMode": t.network_mode,
        "revision": t.revision,
        "volumes": [],
        "status": t.status,
        "requiresAttributes": [],
        "placementConstraints": [],
        "compatibilities": if t.network_mode == "awsvpc" { json!(["EC2", "FARGATE"]) } else { json!(["EC2"]) },
        "requiresCompatibilities": t.requires_compatibilities,
        "registeredAt": secs(t.registered),
        "registeredBy": format!("arn:aws:iam::{}:root", w.account),
    });
    if let Some(c) = &t.cpu {
        v["cpu"] = json!(c);
    }
    if let Some(m) = &t.memory {
        v["memory"] = json!(m);
    }
    if let Some(r) = &t.execution_role_arn {
        v["executionRoleArn"] = json!(r);
    }
    if let Some(r) = &t.task_role_arn {
        v["taskRoleArn"] = json!(r);
    }
    if let Some(d) = t.deregistered {
        v["deregisteredAt"] = json!(secs(d));
    }
    v
}

fn render_task(w: &World, t: &Task) -> Value {
    let arn = t.arn(&w.account);
    let az = w
        .subnets
        .get(&t.subnet_id)
        .map(|s| s.availability_zone.clone())
        .unwrap_or_default();
    let att_status = match t.last_status.as_str() {
        "PROVISIONING" => "PRECREATED",
        "STOPPED" => "DELETED",
        "DEPROVISIONING" => "DETACHING",
        _ => "ATTACHED",
    };
    let mut details = vec![json!({"name": "subnetId", "value": t.subnet_id})];
    if let Some(e) = &t.eni_id {
        details.push(json!({"name": "networkInterfaceId", "value": e}));
    }
    if let Some(m) = &t.mac {
        details.push(json!({"name": "macAddress", "value": m}));
    }
    if let Some(ip) = t.private_ip {
        details.push(json!({"name": "privateDnsName", "value": private_dns_name(&t.region, ip)}));
        details.push(json!({"name": "privateIPv4Address", "value": ip.to_string()}));
    }
    let containers: Vec<Value> = t
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "containerArn": format!("arn:aws:ecs:{}:{}:container/{}/{}/{:08x}", t.region, w.account, t.cluster, t.id, i),
                "taskArn": arn,
                "name": c.name,
                "image": c.image,
                "lastStatus": c.last_status,
                "networkBindings": [],
                "networkInterfaces": t.private_ip.map(|ip| vec![json!({"attachmentId": t.attachment_id, "privateIpv4Address": ip.to_string()})]).unwrap_or_default(),
                "healthStatus": c.health,
                "cpu": "0",
            });
            if let Some(x) = c.exit_code {
                v["exitCode"] = json!(x);
            }
            if let Some(r) = &c.reason {
                v["reason"] = json!(r);
            }
            v
        })
        .collect();
    let td_arn = w
        .ecs_task_definitions
        .get(&t.task_definition)
        .map(|d| d.arn(&w.account))
        .unwrap_or_default();
    let mut v = json!({
        "attachments": [{
            "id": t.attachment_id,
            "type": "ElasticNetworkInterface",
            "status": att_status,
            "details": details,
        }],
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": az,
        "clusterArn": cluster_arn(&t.region, &w.account, &t.cluster),
        "connectivity": "CONNECTED",
        "containers": containers,
        "createdAt": secs(t.created),
        "desiredStatus": t.desired_status,
        "enableExecuteCommand": false,
        "group": t.group,
        "healthStatus": t.health(),
        "lastStatus": t.last_status,
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "overrides": {
            "containerOverrides": t.containers.iter().map(|c| json!({"name": c.name})).collect::<Vec<_>>(),
            "inferenceAcceleratorOverrides": [],
        },
        "taskArn": arn,
        "taskDefinitionArn": td_arn,
        "version": 1,
        "ephemeralStorage": {"sizeInGiB": 20},
        "tags": render_tags(&t.tags),
    });
    let opt = |v: &mut Value, k: &str, x: Option<Timestamp>| {
        if let Some(x) = x {
            v[k] = json!(secs(x));
        }
    };
    if let Some(c) = &t.cpu {
        v["cpu"] = json!(c);
    }
    if let Some(m) = &t.memory {
        v["memory"] = json!(m);
    }
    if let Some(s) = &t.started_by {
        v["startedBy"] = json!(s);
    }
    opt(&mut v, "pullStartedAt", t.pull_started);
    opt(&mut v, "pullStoppedAt", t.started);
    opt(&mut v, "startedAt", t.started);
    opt(&mut v, "stoppingAt", t.stopping);
    opt(&mut v, "executionStoppedAt", t.stopping);
    opt(&mut v, "stoppedAt", t.stopped);
    if t.stopped.is_some() || t.stopping.is_some() {
        if let Some(r) = &t.stopped_reason {
            v["stoppedReason"] = json!(r);
        }
        if let Some(c) = &t.stop_code {
            v["stopCode"] = json!(c);
        }
    }
    v
}

fn render_service(w: &World, s: &Service) -> Value {
    let group = format!("service:{}", s.name);
    let tasks: Vec<&Task> = w
        .ecs_tasks
        .iter()
        .filter(|t| t.region == s.region && t.cluster == s.cluster && t.group == group)
        .collect();
    let count = |td: Option<&str>, status: &[&str]| {
        tasks
            .iter()
            .filter(|t| td.is_none_or(|d| t.task_definition == d))
            .filter(|t| t.desired_status == "RUNNING" && status.contains(&t.last_status.as_str()))
            .count()
    };
    let td_arn = |id: &str| {
        w.ecs_task_definitions
            .get(id)
            .map(|d| d.arn(&w.account))
            .unwrap_or_default()
    };
    let deployments: Vec<Value> = s
        .deployments
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "status": d.status,
                "taskDefinition": td_arn(&d.task_definition),
                "desiredCount": d.desired,
                "pendingCount": count(Some(&d.task_definition), &["PROVISIONING", "PENDING"]),
                "runningCount": count(Some(&d.task_definition), &["RUNNING"]),
                "failedTasks": 0,
                "createdAt": secs(d.created),
                "updatedAt": secs(d.updated),
                "launchType": "FARGATE",
                "platformVersion": "1.4.0",
                "platformFamily": "Linux",
                "networkConfiguration": render_network(&s.network),
                "rolloutState": d.rollout_state,
                "rolloutStateReason": if d.rollout_state == "COMPLETED" {
                    "ECS deployment ecs-svc completed."
                } else {
                    "ECS deployment ecs-svc in progress."
                },
            })
        })
        .collect();
    json!({
        "serviceArn": s.arn(&w.account),
        "serviceName": s.name,
        "clusterArn": cluster_arn(&s.region, &w.account, &s.cluster),
        "loadBalancers": s.load_balancers,
        "healthCheckGracePeriodSeconds": s.grace_s,
        "serviceRegistries": [],
        "status": s.status,
        "desiredCount": s.desired,
        "runningCount": count(None, &["RUNNING"]),
        "pendingCount": count(None, &["PROVISIONING", "PENDING"]),
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "platformFamily": "Linux",
        "taskDefinition": td_arn(&s.task_definition),
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": false, "rollback": false},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
        "deployments": deployments,
        "events": s.events.iter().map(|e| json!({"id": e.id, "createdAt": secs(e.at), "message": e.message})).collect::<Vec<_>>(),
        "createdAt": secs(s.created),
        "placementConstraints": [],
        "placementStrategy": [],
        "networkConfiguration": render_network(&s.network),
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "createdBy": format!("arn:aws:iam::{}:root", w.account),
        "enableECSManagedTags": false,
        "propagateTags": "NONE",
        "enableExecuteCommand": false,
        "tags": render_tags(&s.tags),
    })
}

/// The cluster a call names (default `default`), which must be active.
fn cluster_name(c: &mut JsonCall) -> ApiResult<String> {
    let ident = c.body.str("cluster")?.map(str::to_string);
    let w = c.read()?;
    Ok(w.ecs_cluster(&c.env, ident.as_deref())?.name.clone())
}

fn page<T: Clone>(c: &JsonCall, all: Vec<T>) -> ApiResult<(Vec<T>, Option<String>)> {
    let start: usize = match c.body.str("nextToken")? {
        None => 0,
        Some(t) => t.parse().map_err(|_| invalid("Invalid nextToken."))?,
    };
    let max = match c.body.int("maxResults")? {
        None => 100,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => return Err(invalid("maxResults must be between 1 and 100.")),
    };
    let next = (start + max < all.len()).then(|| (start + max).to_string());
    Ok((all.into_iter().skip(start).take(max).collect(), next))
}

fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    v
}

/// The resource a tag call names: (kind, model id).
fn tag_target(w: &World, region: &str, arn: &str) -> ApiResult<(&'static str, String)> {
    let not_found = || invalid("The specified resource could not be found.");
    let rest = arn
        .strip_prefix("arn:aws:ecs:")
        .ok_or_else(|| invalid("The ARN is not valid."))?;
    let (_, path) = rest
        .split_once(":")
        .and_then(|(_, r)| r.split_once(':'))
        .ok_or_else(not_found)?;
    let (kind, ident) = path.split_once('/').ok_or_else(not_found)?;
    match kind {
        "cluster" => Ok(("cluster", format!("{region}|{ident}"))),
        "service" => {
            let (cl, name) = ident.split_once('/').ok_or_else(not_found)?;
            Ok(("service", format!("{region}|{cl}|{name}")))
        }
        "task" => Ok((
            "task",
            ident.rsplit('/').next().unwrap_or(ident).to_string(),
        )),
        "task-definition" => {
            let (fam, rev) = ident.rsplit_once(':').ok_or_else(not_found)?;
            let rev: u32 = rev.parse().map_err(|_| not_found())?;
            let id = format!("{region}|{fam}:{rev:08}");
            if w.ecs_task_definitions.contains(&id) {
                Ok(("task-definition", id))
            } else {
                Err(not_found())
            }
        }
        _ => Err(not_found()),
    }
}

fn tags_mut<'w>(
    w: &'w mut World,
    kind: &str,
    id: &str,
) -> ApiResult<&'w mut BTreeMap<String, String>> {
    let nf = || invalid("The specified resource could not be found.");
    Ok(match kind {
        "cluster" => &mut w.ecs_clusters.get_mut(id).ok_or_else(nf)?.tags,
        "service" => &mut w.ecs_services.get_mut(id).ok_or_else(nf)?.tags,
        "task" => &mut w.ecs_tasks.get_mut(id).ok_or_else(nf)?.tags,
        _ => &mut w.ecs_task_definitions.get_mut(id).ok_or_else(nf)?.tags,
    })
}

fn dispatch(c: &mut JsonCall, op: &str) -> ApiResult<Value> {
    match op {
        "CreateCluster" => {
            let name = c.body.str("clusterName")?.unwrap_or("default").to_string();
            let tags = tags_of(&c.body, "tags")?;
            let id = c.mutate(|w, env| w.create_ecs_cluster(env, &name, tags))?;
            let w = c.read()?;
            let cl = w.ecs_clusters.get(&id).ok_or_else(ecs::cluster_not_found)?;
            Ok(json!({ "cluster": render_cluster(&w, cl) }))
        }
        "DescribeClusters" => {
            let mut names = c.body.str_list("clusters")?;
            if names.is_empty() {
                names.push("default".into());
            }
            let w = c.read()?;
            let mut clusters = Vec::new();
            let mut failures = Vec::new();
            for n in names {
                let name = ecs::name_of(&n);
                match w.ecs_clusters.get(&format!("{}|{name}", c.env.region)) {
                    Some(cl) => clusters.push(render_cluster(&w, cl)),
                    None => failures.push(json!({
                        "arn": cluster_arn(&c.env.region, &w.account, name),
                        "reason": "MISSING",
                    })),
                }
            }
            Ok(json!({ "clusters": clusters, "failures": failures }))
        }
        "ListClusters" => {
            let w = c.read()?;
            let all: Vec<String> = w
                .ecs_clusters
                .in_region(&c.env.region)
                .filter(|cl| cl.status == "ACTIVE")
                .map(|cl| cluster_arn(&cl.region, &w.account, &cl.name))
                .collect();
            let (items, next) = page(c, all)?;
            Ok(with_next(json!({ "clusterArns": items }), next))
        }
        "DeleteCluster" => {
            let ident = c.body.required_str("cluster")?.to_string();
            let id = c.mutate(|w, env| w.delete_ecs_cluster(env, &ident))?;
            let w = c.read()?;
            let cl = w.ecs_clusters.get(&id).ok_or_else(ecs::cluster_not_found)?;
            Ok(json!({ "cluster": render_cluster(&w, cl) }))
        }
        "RegisterTaskDefinition" => {
            let r = Register {
                family: c.body.required_str("family")?.to_string(),
                network_mode: c.body.str("networkMode")?.map(str::to_string),
                requires_compatibilities: c.body.str_list("requiresCompatibilities")?,
                cpu: c.body.str("cpu")?.map(str::to_string),
                memory: c.body.str("memory")?.map(str::to_string),
                execution_role_arn: c.body.str("executionRoleArn")?.map(str::to_string),
                task_role_arn: c.body.str("taskRoleArn")?.map(str::to_string),
                containers: c.body.list("containerDefinitions")?.to_vec(),
                tags: tags_of(&c.body, "tags")?,
            };
            let id = c.mutate(|w, env| w.register_task_definition(env, r))?;
            let w = c.read()?;
            let td = w
                .ecs_task_definitions
                .get(&id)
                .ok_or_else(|| ecs::client("Unable to describe task definition."))?;
            Ok(json!({ "taskDefinition": render_td(&w, td), "tags": render_tags(&td.tags) }))
        }
        "DescribeTaskDefinition" => {
            let ident = c.body.required_str("taskDefinition")?.to_string();
            let w = c.read()?;
            let td = w.ecs_task_definition(&c.env, &ident)?;
            let mut out = json!({ "taskDefinition": render_td(&w, td) });
            if c.body.str_list("include")?.iter().any(|i| i == "TAGS") {
                out["tags"] = render_tags(&td.tags);
            }
            Ok(out)
        }
        "ListTaskDefinitions" => {
            let family = c.body.str("familyPrefix")?.map(str::to_string);
            let status = c.body.str("status")?.unwrap_or("ACTIVE").to_string();
            let desc = c.body.str("sort")? == Some("DESC");
            let w = c.read()?;
            let mut all: Vec<&TaskDefinition> = w
                .ecs_task_definitions
                .in_region(&c.env.region)
                .filter(|t| t.status == status)
                .filter(|t| family.as_ref().is_none_or(|f| t.family == *f))
                .collect();
            all.sort_by(|a, b| (&a.family, a.revision).cmp(&(&b.family, b.revision)));
            if desc {
                all.reverse();
            }
            let arns: Vec<String> = all.iter().map(|t| t.arn(&w.account)).collect();
            let (items, next) = page(c, arns)?;
            Ok(with_next(json!({ "taskDefinitionArns": items }), next))
        }
        "ListTaskDefinitionFamilies" => {
            let prefix = c.body.str("familyPrefix")?.unwrap_or("").to_string();
            let status = c.body.str("status")?.unwrap_or("ACTIVE").to_string();
            let w = c.read()?;
            let fams: std::collections::BTreeSet<String> = w
                .ecs_task_definitions
                .in_region(&c.env.region)
                .filter(|t| t.family.starts_with(&prefix))
                .filter(|t| status == "ALL" || t.status == status)
                .map(|t| t.family.clone())
                .collect();
            let (items, next) = page(c, fams.into_iter().collect())?;
            Ok(with_next(json!({ "families": items }), next))
        }
        "DeregisterTaskDefinition" => {
            let ident = c.body.required_str("taskDefinition")?.to_string();
            let id = c.mutate(|w, env| w.deregister_task_definition(env, &ident))?;
            let w = c.read()?;
            let td = w
                .ecs_task_definitions
                .get(&id)
                .ok_or_else(|| ecs::client("Unable to describe task definition."))?;
            Ok(json!({ "taskDefinition": render_td(&w, td) }))
        }
        "RunTask" => {
            let count = c.body.int("count")?.unwrap_or(1);
            let spec = RunSpec {
                cluster: c.body.str("cluster")?.unwrap_or("default").to_string(),
                task_definition: c.body.required_str("taskDefinition")?.to_string(),
                launch_type: c.body.str("launchType")?.map(str::to_string),
                network: network_of(&c.body)?,
                count: u32::try_from(count).unwrap_or(0),
                started_by: c.body.str("startedBy")?.map(str::to_string),
                group: c.body.str("group")?.map(str::to_string),
                tags: tags_of(&c.body, "tags")?,
            };
            let ids = c.mutate(|w, env| w.run_ecs_tasks(env, &spec))?;
            let w = c.read()?;
            let tasks: Vec<Value> = ids
                .iter()
                .filter_map(|id| w.ecs_tasks.get(id))
                .map(|t| render_task(&w, t))
                .collect();
            Ok(json!({ "tasks": tasks, "failures": [] }))
        }
        "StopTask" => {
            let cluster = cluster_name(c)?;
            let ident = c.body.required_str("task")?.to_string();
            let reason = c
                .body
                .str("reason")?
                .unwrap_or("Task stopped by user")
                .to_string();
            let id = c.mutate(|w, env| {
                w.stop_ecs_task(env, &cluster, &ident, &reason, "UserInitiated")
            })?;
            let w = c.read()?;
            let t = w
                .ecs_tasks
                .get(&id)
                .ok_or_else(|| invalid("The referenced task was not found."))?;
            Ok(json!({ "task": render_task(&w, t) }))
        }
        "DescribeTasks" => {
            let cluster = cluster_name(c)?;
            let idents = c.body.str_list("tasks")?;
            if idents.is_empty() {
                return Err(invalid("Tasks cannot be empty."));
            }
            if idents.len() > 100 {
                return Err(invalid("Tasks cannot have more than 100 items."));
            }
            let include_tags = c.body.str_list("include")?.iter().any(|i| i == "TAGS");
            let w = c.read()?;
            let mut tasks = Vec::new();
            let mut failures = Vec::new();
            for i in idents {
                match w.ecs_task(&c.env, &cluster, &i) {
                    Some(t) => {
                        let mut v = render_task(&w, t);
                        if !include_tags && let Some(o) = v.as_object_mut() {
                            o.remove("tags");
                        }
                        tasks.push(v);
                    }
                    None => failures.push(json!({
                        "arn": if i.starts_with("arn:") { i.clone() } else {
                            format!("arn:aws:ecs:{}:{}:task/{cluster}/{i}", c.env.region, w.account)
                        },
                        "reason": "MISSING",
                    })),
                }
            }
            Ok(json!({ "tasks": tasks, "failures": failures }))
        }
        "ListTasks" => {
            let cluster = cluster_name(c)?;
            let family = c.body.str("family")?.map(str::to_string);
            let service = c
                .body
                .str("serviceName")?
                .map(|s| ecs::name_of(s).to_string());
            let started_by = c.body.str("startedBy")?.map(str::to_string);
            let desired = c
                .body
                .str("desiredStatus")?
                .unwrap_or("RUNNING")
                .to_string();
            if !matches!(desired.as_str(), "RUNNING" | "PENDING" | "STOPPED") {
                return Err(invalid(format!("Invalid desiredStatus '{desired}'.")));
            }
            let w = c.read()?;
            if let Some(s) = &service {
                w.ecs_service(&c.env, &cluster, s)?;
            }
            let all: Vec<String> = w
                .ecs_tasks
                .in_region(&c.env.region)
                .filter(|t| t.cluster == cluster && t.desired_status == desired)
                .filter(|t| {
                    family.as_ref().is_none_or(|f| {
                        w.ecs_task_definitions
                            .get(&t.task_definition)
                            .is_some_and(|d| d.family == *f)
                    })
                })
                .filter(|t| {
                    service
                        .as_ref()
                        .is_none_or(|s| t.group == format!("service:{s}"))
                })
                .filter(|t| {
                    started_by
                        .as_ref()
                        .is_none_or(|s| t.started_by.as_ref() == Some(s))
                })
                .map(|t| t.arn(&w.account))
                .collect();
            let (items, next) = page(c, all)?;
            Ok(with_next(json!({ "taskArns": items }), next))
        }
        "CreateService" => {
            let cluster = c.body.str("cluster")?.map(str::to_string);
            let name = c.body.required_str("serviceName")?.to_string();
            let td = c
                .body
                .str("taskDefinition")?
                .ok_or_else(|| invalid("TaskDefinition must be specified."))?
                .to_string();
            let desired = c.body.int("desiredCount")?.unwrap_or(0);
            let desired =
                u32::try_from(desired).map_err(|_| invalid("desiredCount must be 0 or more."))?;
            let launch = c.body.str("launchType")?.map(str::to_string);
            let network = network_of(&c.body)?;
            let lbs = c.body.list("loadBalancers")?.to_vec();
            let tags = tags_of(&c.body, "tags")?;
            let grace = c.body.int("healthCheckGracePeriodSeconds")?;
            let id = c.mutate(|w, env| {
                let id = w.create_ecs_service(
                    env,
                    cluster.as_deref(),
                    &name,
                    &td,
                    desired,
                    launch.as_deref(),
                    network,
                    lbs,
                    tags,
                )?;
                if let Some(g) = grace {
                    w.set_ecs_service_grace(&id, g)?;
                }
                Ok(id)
            })?;
            let w = c.read()?;
            let s = w.ecs_services.get(&id).ok_or_else(ecs::service_not_found)?;
            Ok(json!({ "service": render_service(&w, s) }))
        }
        "UpdateService" => {
            let cluster = c.body.str("cluster")?.map(str::to_string);
            let name = c.body.required_str("service")?.to_string();
            let desired = match c.body.int("desiredCount")? {
                None => None,
                Some(n) => {
                    Some(u32::try_from(n).map_err(|_| invalid("desiredCount must be 0 or more."))?)
                }
            };
            let td = c.body.str("taskDefinition")?.map(str::to_string);
            let force = c.body.bool("forceNewDeployment")?.unwrap_or(false);
            let grace = c.body.int("healthCheckGracePeriodSeconds")?;
            let id = c.mutate(|w, env| {
                let id = w.update_ecs_service(
                    env,
                    cluster.as_deref(),
                    &name,
                    desired,
                    td.as_deref(),
                    force,
                )?;
                if let Some(g) = grace {
                    w.set_ecs_service_grace(&id, g)?;
                }
                Ok(id)
            })?;
            let w = c.read()?;
            let s = w.ecs_services.get(&id).ok_or_else(ecs::service_not_found)?;
            Ok(json!({ "service": render_service(&w, s) }))
        }
        "DescribeServices" => {
            let cluster = cluster_name(c)?;
            let names = c.body.str_list("services")?;
            if names.is_empty() {
                return Err(invalid("Services cannot be empty."));
            }
            let w = c.read()?;
            let mut services = Vec::new();
            let mut failures = Vec::new();
            for n in names {
                match w.ecs_service(&c.env, &cluster, &n) {
                    Ok(s) => services.push(render_service(&w, s)),
                    Err(_) => failures.push(json!({
                        "arn": format!("arn:aws:ecs:{}:{}:service/{cluster}/{}", c.env.region, w.account, ecs::name_of(&n)),
                        "reason": "MISSING",
                    })),
                }
            }
            Ok(json!({ "services": services, "failures": failures }))
        }
        "ListServices" => {
            let cluster = cluster_name(c)?;
            let w = c.read()?;
            let all: Vec<String> = w
                .ecs_services
                .in_region(&c.env.region)
                .filter(|s| s.cluster == cluster && s.status != "INACTIVE")
                .map(|s| s.arn(&w.account))
                .collect();
            let (items, next) = page(c, all)?;
            Ok(with_next(json!({ "serviceArns": items }), next))
        }
        "DeleteService" => {
            let cluster = c.body.str("cluster")?.map(str::to_string);
            let name = c.body.required_str("service")?.to_string();
            let force = c.body.bool("force")?.unwrap_or(false);
            let id =
                c.mutate(|w, env| w.delete_ecs_service(env, cluster.as_deref(), &name, force))?;
            let w = c.read()?;
            let s = w.ecs_services.get(&id).ok_or_else(ecs::service_not_found)?;
            Ok(json!({ "service": render_service(&w, s) }))
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            let arn = c.body.required_str("resourceArn")?.to_string();
            let add = tags_of(&c.body, "tags")?;
            let remove = c.body.str_list("tagKeys")?;
            let region = c.env.region.clone();
            if op == "ListTagsForResource" {
                let w = c.read()?;
                let (kind, id) = tag_target(&w, &region, &arn)?;
                let tags = match kind {
                    "cluster" => w.ecs_clusters.get(&id).map(|x| &x.tags),
                    "service" => w.ecs_services.get(&id).map(|x| &x.tags),
                    "task" => w.ecs_tasks.get(&id).map(|x| &x.tags),
                    _ => w.ecs_task_definitions.get(&id).map(|x| &x.tags),
                }
                .ok_or_else(|| invalid("The specified resource could not be found."))?;
                return Ok(json!({ "tags": render_tags(tags) }));
            }
            c.mutate(|w, _env| {
                let (kind, id) = tag_target(w, &region, &arn)?;
                let tags = tags_mut(w, kind, &id)?;
                if op == "TagResource" {
                    if add.is_empty() {
                        return Err(invalid("Tags cannot be empty."));
                    }
                    tags.extend(add);
                } else {
                    for k in &remove {
                        tags.remove(k);
                    }
                }
                Ok(())
            })?;
            Ok(json!({}))
        }
        _ => Err(unknown_operation(op)),
    }
}

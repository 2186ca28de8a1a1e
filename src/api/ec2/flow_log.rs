//! VPC Flow Logs actions: CreateFlowLogs, DescribeFlowLogs, DeleteFlowLogs.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::ApiResult;
use crate::model::ec2::flow_log::{CreateFlowLogs, FlowLog, flow_log_not_found};
use crate::model::{ApiError, World};

use super::{Handler, paginate, tag_set};

pub const ACTIONS: &[(&str, Handler)] = &[
    ("CreateFlowLogs", create_flow_logs),
    ("DescribeFlowLogs", describe_flow_logs),
    ("DeleteFlowLogs", delete_flow_logs),
];

fn unsuccessful(x: &mut Xml, failed: &[(String, ApiError)]) {
    x.set("unsuccessful", failed, |x, (id, e)| {
        x.node("error", |x| {
            x.leaf("code", &e.code).leaf("message", &e.message);
        })
        .leaf("resourceId", id);
    });
}

fn create_flow_logs(c: &mut Call) -> ApiResult<Xml> {
    let p = CreateFlowLogs {
        resource_ids: c.params.list("ResourceId"),
        resource_type: c.params.required("ResourceType")?.to_string(),
        traffic_type: c.params.required("TrafficType")?.to_string(),
        destination_type: c.params.get("LogDestinationType").map(str::to_string),
        log_group_name: c.params.get("LogGroupName").map(str::to_string),
        log_destination: c.params.get("LogDestination").map(str::to_string),
        deliver_logs_permission_arn: c.params.get("DeliverLogsPermissionArn").map(str::to_string),
        log_format: c.params.get("LogFormat").map(str::to_string),
        max_aggregation_interval: c.params.int("MaxAggregationInterval")?,
        tag_specs: c.params.tag_specs()?,
    };
    let token = c.params.get("ClientToken").map(str::to_string);
    let created = c.mutate(|w, env| w.create_flow_logs(env, &p))?;
    let mut x = Xml::new();
    x.opt("clientToken", token);
    x.set("flowLogIdSet", &created.ids, |x, id| {
        x.raw(&crate::api::xml::escape(id));
    });
    unsuccessful(&mut x, &created.unsuccessful);
    Ok(x)
}

fn render(x: &mut Xml, w: &World, f: &FlowLog) {
    x.leaf("creationTime", crate::model::Timestamp(f.created).iso())
        .leaf("deliverLogsStatus", "SUCCESS")
        .leaf("flowLogId", &f.id)
        .leaf("flowLogStatus", "ACTIVE")
        .leaf("logGroupName", &f.log_group_name)
        .leaf("resourceId", &f.resource_id)
        .leaf("trafficType", &f.traffic_type)
        .leaf("logDestinationType", "cloud-watch-logs")
        .leaf(
            "logDestination",
            crate::model::logs::group_arn(&f.region, &w.account, &f.log_group_name),
        )
        .leaf("logFormat", f.format_text())
        .leaf("maxAggregationInterval", f.max_aggregation_interval);
    x.opt(
        "deliverLogsPermissionArn",
        f.deliver_logs_permission_arn.clone(),
    );
    tag_set(x, w, &f.id);
}

fn describe_flow_logs(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("FlowLogId");
    let filters = c.params.filters()?;
    let w = c.read()?;
    let rows = w.select(
        &w.flow_logs,
        &c.env.region,
        &ids,
        &filters,
        flow_log_not_found,
    )?;
    let (page, next) = paginate(c, rows, |f| &f.id)?;
    let mut x = Xml::new();
    x.set("flowLogSet", page, |x, f| render(x, &w, f));
    x.opt("nextToken", next);
    Ok(x)
}

fn delete_flow_logs(c: &mut Call) -> ApiResult<Xml> {
    let ids = c.params.list("FlowLogId");
    let failed = c.mutate(|w, env| w.delete_flow_logs(env, &ids))?;
    let mut x = Xml::new();
    unsuccessful(&mut x, &failed);
    Ok(x)
}

//! VPC Flow Logs (CreateFlowLogs, DescribeFlowLogs, DeleteFlowLogs): which interfaces
//! are logged, what traffic, in which format, into which CloudWatch Logs group. The
//! records themselves come from the fabric's verdicts (`vpclab_netstack::flowlog`) and
//! are written by the world's flow-log flusher; this file only holds the configuration
//! and renders one record in a flow log's format ([`FlowLog::render`]).

use serde::{Deserialize, Serialize};

use crate::model::tags::TagSpec;
use crate::model::{ApiError, ApiResult, Env, Filterable, Resource, World};

/// The fields of the default format, version 2, in AWS's order.
pub const DEFAULT_FIELDS: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Every field a custom format may name, with the version that introduced it.
pub const FIELDS: &[(&str, u8)] = &[
    ("version", 2),
    ("account-id", 2),
    ("interface-id", 2),
    ("srcaddr", 2),
    ("dstaddr", 2),
    ("srcport", 2),
    ("dstport", 2),
    ("protocol", 2),
    ("packets", 2),
    ("bytes", 2),
    ("start", 2),
    ("end", 2),
    ("action", 2),
    ("log-status", 2),
    ("vpc-id", 3),
    ("subnet-id", 3),
    ("instance-id", 3),
    ("tcp-flags", 3),
    ("type", 3),
    ("pkt-srcaddr", 3),
    ("pkt-dstaddr", 3),
    ("region", 4),
    ("az-id", 4),
    ("sublocation-type", 4),
    ("sublocation-id", 4),
    ("pkt-src-aws-service", 5),
    ("pkt-dst-aws-service", 5),
    ("flow-direction", 5),
    ("traffic-path", 5),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowLog {
    pub id: String,
    pub region: String,
    pub resource_id: String,
    pub traffic_type: String,
    pub log_group_name: String,
    pub deliver_logs_permission_arn: Option<String>,
    /// The field names of the format, in order.
    pub fields: Vec<String>,
    /// 60 or 600 seconds.
    pub max_aggregation_interval: u32,
    pub created: i64,
}

impl Resource for FlowLog {
    const KIND: &'static str = "flow_log";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Filterable for FlowLog {
    fn filter_values(&self, _world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "flow-log-id" => vec![self.id.clone()],
            "resource-id" => vec![self.resource_id.clone()],
            "traffic-type" => vec![self.traffic_type.clone()],
            "log-group-name" => vec![self.log_group_name.clone()],
            "log-destination-type" => vec!["cloud-watch-logs".into()],
            "deliver-log-status" => vec!["SUCCESS".into()],
            _ => return None,
        })
    }
}

pub fn flow_log_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidFlowLogId.NotFound", "flow log ID", id)
}

/// The parameters of CreateFlowLogs.
#[derive(Clone, Debug, Default)]
pub struct CreateFlowLogs {
    pub resource_ids: Vec<String>,
    pub resource_type: String,
    pub traffic_type: String,
    pub destination_type: Option<String>,
    pub log_group_name: Option<String>,
    pub log_destination: Option<String>,
    pub deliver_logs_permission_arn: Option<String>,
    pub log_format: Option<String>,
    pub max_aggregation_interval: Option<i64>,
    pub tag_specs: Vec<TagSpec>,
}

/// What CreateFlowLogs answers: the new ids and, per resource it could not log, an
/// error (AWS reports these in `unsuccessful` rather than failing the call).
#[derive(Clone, Debug, Default)]
pub struct Created {
    pub ids: Vec<String>,
    pub unsuccessful: Vec<(String, ApiError)>,
}

/// Parses `${field} ${field} …` into field names; unknown fields are refused.
pub fn parse_format(text: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        let name = tok
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidParameter",
                    format!("LogFormat is invalid: '{tok}' is not of the form ${{field-name}}"),
                )
            })?;
        if !FIELDS.iter().any(|(f, _)| *f == name) {
            return Err(ApiError::new(
                "InvalidParameter",
                format!("Unknown fields provided: {name}"),
            ));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(ApiError::new("InvalidParameter", "LogFormat is empty"));
    }
    Ok(out)
}

impl FlowLog {
    /// `${a} ${b} …` as DescribeFlowLogs shows it.
    pub fn format_text(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("${{{f}}}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The version of the format: the highest version of any field it names.
    pub fn version(&self) -> u8 {
        self.fields
            .iter()
            .filter_map(|f| FIELDS.iter().find(|(n, _)| n == f).map(|(_, v)| *v))
            .max()
            .unwrap_or(2)
    }

    /// Whether this flow log records a packet of this action.
    pub fn wants(&self, accept: bool) -> bool {
        match self.traffic_type.as_str() {
            "ACCEPT" => accept,
            "REJECT" => !accept,
            _ => true,
        }
    }

    /// Renders one record: `value(field)` gives each field's text ("-" when unknown).
    pub fn render(&self, value: impl Fn(&str) -> String) -> String {
        self.fields
            .iter()
            .map(|f| value(f))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl World {
    pub fn create_flow_logs(&mut self, env: &Env, p: &CreateFlowLogs) -> ApiResult<Created> {
        if p.resource_ids.is_empty() {
            return Err(ApiError::missing("ResourceId"));
        }
        if !["VPC", "Subnet", "NetworkInterface"].contains(&p.resource_type.as_str()) {
            return Err(ApiError::bad_param("ResourceType", &p.resource_type));
        }
        if !["ACCEPT", "REJECT", "ALL"].contains(&p.traffic_type.as_str()) {
            return Err(ApiError::bad_param("TrafficType", &p.traffic_type));
        }
        match p.destination_type.as_deref() {
            None | Some("cloud-watch-logs") => {}
            Some(t @ ("s3" | "kinesis-data-firehose")) => {
                return Err(ApiError::new(
                    "Unsupported",
                    format!(
                        "vpclab delivers flow logs to CloudWatch Logs only; LogDestinationType {t} is not emulated (see docs/fidelity.md)"
                    ),
                ));
            }
            Some(t) => return Err(ApiError::bad_param("LogDestinationType", t)),
        }
        let group = match (&p.log_group_name, &p.log_destination) {
            (Some(g), None) => g.clone(),
            (None, Some(arn)) => {
                let rest = arn
                    .strip_prefix(&format!(
                        "arn:aws:logs:{}:{}:log-group:",
                        env.region, self.account
                    ))
                    .ok_or_else(|| ApiError::bad_param("LogDestination", arn))?;
                rest.strip_suffix(":*").unwrap_or(rest).to_string()
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::combination(
                    "Please only provide LogGroupName or only provide LogDestination.",
                ));
            }
            (None, None) => {
                return Err(ApiError::missing("LogGroupName or LogDestination"));
            }
        };
        if group.is_empty() {
            return Err(ApiError::bad_param("LogGroupName", &group));
        }
        if p.deliver_logs_permission_arn.is_none() {
            return Err(ApiError::missing("DeliverLogsPermissionArn"));
        }
        let interval = match p.max_aggregation_interval {
            None => 600,
            Some(60) => 60,
            Some(600) => 600,
            Some(n) => {
                return Err(ApiError::bad_param(
                    "MaxAggregationInterval",
                    &n.to_string(),
                ));
            }
        };
        let fields = match &p.log_format {
            None => DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect(),
            Some(f) => parse_format(f)?,
        };
        World::check_tag_specs(&p.tag_specs, &["vpc-flow-log"])?;
        let mut out = Created::default();
        for rid in &p.resource_ids {
            let exists = match p.resource_type.as_str() {
                "VPC" => self.vpcs.get(rid).is_some_and(|v| v.region == env.region),
                "Subnet" => self
                    .subnets
                    .get(rid)
                    .is_some_and(|s| s.region == env.region),
                _ => self
                    .network_interfaces
                    .get(rid)
                    .is_some_and(|e| e.region == env.region),
            };
            if !exists {
                let (code, what) = match p.resource_type.as_str() {
                    "VPC" => ("InvalidVpcID.NotFound", "vpc ID"),
                    "Subnet" => ("InvalidSubnetID.NotFound", "subnet ID"),
                    _ => ("InvalidNetworkInterfaceID.NotFound", "network interface ID"),
                };
                out.unsuccessful
                    .push((rid.clone(), ApiError::not_found(code, what, rid)));
                continue;
            }
            let duplicate = self.flow_logs.in_region(&env.region).any(|f| {
                &f.resource_id == rid
                    && f.traffic_type == p.traffic_type
                    && f.log_group_name == group
            });
            if duplicate {
                out.unsuccessful.push((
                    rid.clone(),
                    ApiError::new(
                        "FlowLogAlreadyExists",
                        "Error. There is an existing Flow Log with the same configuration and log destination.",
                    ),
                ));
                continue;
            }
            let id = self.alloc_id("fl");
            self.flow_logs.insert(FlowLog {
                id: id.clone(),
                region: env.region.clone(),
                resource_id: rid.clone(),
                traffic_type: p.traffic_type.clone(),
                log_group_name: group.clone(),
                deliver_logs_permission_arn: p.deliver_logs_permission_arn.clone(),
                fields: fields.clone(),
                max_aggregation_interval: interval,
                created: env.now.0,
            });
            self.apply_tag_specs(env, &id, "vpc-flow-log", &p.tag_specs)?;
            out.ids.push(id);
        }
        Ok(out)
    }

    /// Deletes flow logs; unknown ids are reported per id, as AWS does.
    pub fn delete_flow_logs(
        &mut self,
        env: &Env,
        ids: &[String],
    ) -> ApiResult<Vec<(String, ApiError)>> {
        if ids.is_empty() {
            return Err(ApiError::missing("FlowLogId"));
        }
        let mut failed = Vec::new();
        for id in ids {
            match self.flow_logs.get(id) {
                Some(f) if f.region == env.region => {
                    self.flow_logs.remove(id);
                    self.drop_tags(id);
                }
                _ => failed.push((id.clone(), flow_log_not_found(id))),
            }
        }
        Ok(failed)
    }

    /// The flow logs that cover an interface: its own, its subnet's and its VPC's.
    pub fn flow_logs_of_eni<'a>(&'a self, eni: &'a str) -> impl Iterator<Item = &'a FlowLog> {
        let e = self.network_interfaces.get(eni);
        self.flow_logs.iter().filter(move |f| {
            e.is_some_and(|e| {
                f.resource_id == e.id || f.resource_id == e.subnet_id || f.resource_id == e.vpc_id
            })
        })
    }

    /// Every interface some flow log covers.
    pub fn flow_logged_enis(&self) -> Vec<String> {
        if self.flow_logs.is_empty() {
            return Vec::new();
        }
        self.network_interfaces
            .iter()
            .filter(|e| self.flow_logs_of_eni(&e.id).next().is_some())
            .map(|e| e.id.clone())
            .collect()
    }
}

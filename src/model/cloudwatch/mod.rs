//! CloudWatch in the model: metrics and their datapoints, dashboards, and alarms
//! ([`alarm`]), per account and region, durable in the store like every other resource.
//!
//! A [`Metric`] row is one (namespace, name, dimensions) in a region; its id is those
//! four joined, so the table's id order is the order ListMetrics answers in. Each
//! PutMetricData datum becomes one [`Point`] holding the datum's statistic set (a single
//! value is a set of one), so every statistic of a period is exact: SampleCount and Sum
//! add, Minimum and Maximum fold, Average is Sum / SampleCount. Points are kept for 15
//! days and at most [`MAX_POINTS`] per metric, the newest first (docs/fidelity.md).
//! Percentiles are not computed.
//!
//! Metric math for GetMetricData is in [`math`]. Validation follows the CloudWatch API
//! reference and answers with its codes (`InvalidParameterValue`, `MissingParameter`,
//! `InvalidParameterCombination`, `ResourceNotFound`, `LimitExceeded`).

pub mod alarm;
pub mod math;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Env, Resource, World};

/// The newest points kept per metric.
pub const MAX_POINTS: usize = 20_000;
/// How long points are kept (AWS keeps 1-minute data 15 days).
pub const RETENTION_MS: i64 = 15 * 24 * 3600 * 1000;
/// PutMetricData accepts timestamps up to two weeks old and two hours ahead.
const TOO_OLD_MS: i64 = 14 * 24 * 3600 * 1000;
const TOO_NEW_MS: i64 = 2 * 3600 * 1000;
/// Most datums per PutMetricData, dimensions per metric (API reference).
pub const MAX_DATUMS: usize = 1000;
pub const MAX_DIMENSIONS: usize = 30;
/// Most values in one datum's `Values` array.
pub const MAX_VALUES: usize = 150;

/// The units CloudWatch accepts (`StandardUnit`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The statistics GetMetricStatistics and alarms know.
pub const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterValue", message)
}

pub fn missing(name: &str) -> ApiError {
    ApiError::new(
        "MissingParameter",
        format!("The parameter {name} is required."),
    )
}

/// One name/value dimension.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

/// A statistic set: what one datum (or one period) contributes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn one(v: f64) -> Stats {
        Stats {
            count: 1.0,
            sum: v,
            min: v,
            max: v,
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// One of [`STATISTICS`].
    pub fn get(&self, statistic: &str) -> Option<f64> {
        Some(match statistic {
            "SampleCount" => self.count,
            "Sum" => self.sum,
            "Minimum" => self.min,
            "Maximum" => self.max,
            "Average" => {
                if self.count == 0.0 {
                    0.0
                } else {
                    self.sum / self.count
                }
            }
            _ => return None,
        })
    }
}

/// One datum as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// Epoch milliseconds.
    pub t: i64,
    pub stats: Stats,
    pub unit: String,
    /// 1 (high resolution) or 60.
    #[serde(default = "sixty")]
    pub resolution: u32,
}

fn sixty() -> u32 {
    60
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metric {
    pub id: String,
    pub region: String,
    pub namespace: String,
    pub name: String,
    /// Sorted by name (a metric's identity does not depend on the order sent).
    pub dimensions: Vec<Dimension>,
    /// Ordered by time.
    pub points: Vec<Point>,
}

impl Resource for Metric {
    const KIND: &'static str = "metric";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// The row id of a metric: region, namespace, name and dimensions, `\u{1}`-separated
/// (a character no name contains), so ids sort by namespace then name.
pub fn metric_id(region: &str, namespace: &str, name: &str, dims: &[Dimension]) -> String {
    let mut id = format!("{region}\u{1}{namespace}\u{1}{name}");
    for d in dims {
        id.push('\u{1}');
        id.push_str(&d.name);
        id.push('=');
        id.push_str(&d.value);
    }
    id
}

impl Metric {
    /// The statistic sets of each period in [start, end), by period start, optionally
    /// only points of `unit`.
    pub fn periods(
        &self,
        start: i64,
        end: i64,
        period_ms: i64,
        unit: Option<&str>,
    ) -> BTreeMap<i64, Stats> {
        let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
        let from = self.points.partition_point(|p| p.t < start);
        for p in &self.points[from..] {
            if p.t >= end {
                break;
            }
            if unit.is_some_and(|u| u != p.unit) {
                continue;
            }
            let bucket = start + (p.t - start).div_euclid(period_ms) * period_ms;
            out.entry(bucket)
                .and_modify(|s| s.merge(&p.stats))
                .or_insert(p.stats);
        }
        out
    }

    /// The unit of the newest point (what answers report when none was asked for).
    pub fn unit(&self) -> &str {
        self.points.last().map_or("None", |p| p.unit.as_str())
    }
}

/// One datum of PutMetricData, parsed.
#[derive(Clone, Debug)]
pub struct Datum {
    pub name: String,
    pub dimensions: Vec<Dimension>,
    pub timestamp: Option<i64>,
    pub stats: Vec<Stats>,
    pub unit: Option<String>,
    pub resolution: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dashboard {
    /// `arn:aws:cloudwatch::ACCOUNT:dashboard/NAME` (dashboards are global).
    pub id: String,
    pub name: String,
    pub body: String,
    pub modified: i64,
}

impl Resource for Dashboard {
    const KIND: &'static str = "dashboard";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        "global"
    }
}

pub fn check_namespace(ns: &str) -> ApiResult<()> {
    if ns.is_empty() || ns.len() > 255 {
        return Err(invalid(
            "The parameter Namespace must be between 1 and 255 characters.",
        ));
    }
    if ns.starts_with(':') || !ns.chars().all(|c| !c.is_control()) {
        return Err(invalid(format!(
            "The value {ns} for parameter Namespace is invalid."
        )));
    }
    Ok(())
}

/// Dimensions: at most 30, names 1–255 characters, values 1–1024, no name twice.
pub fn check_dimensions(dims: &mut [Dimension]) -> ApiResult<()> {
    if dims.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "The collection Dimensions must not have a size greater than {MAX_DIMENSIONS}."
        )));
    }
    for d in dims.iter() {
        if d.name.is_empty() || d.name.len() > 255 {
            return Err(invalid(
                "The parameter Dimensions.member.N.Name must be between 1 and 255 characters.",
            ));
        }
        if d.value.is_empty() || d.value.len() > 1024 {
            return Err(invalid(format!(
                "The parameter Dimensions.member.N.Value for dimension {} must be between 1 and 1024 characters.",
                d.name
            )));
        }
    }
    dims.sort();
    if dims.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            "No metric may have more than one dimension with the same name.",
        ));
    }
    Ok(())
}

pub fn check_unit(unit: &str) -> ApiResult<()> {
    if UNITS.contains(&unit) {
        Ok(())
    } else {
        Err(invalid(format!(
            "The parameter Unit must be a value in the set [ {} ].",
            UNITS.join(", ")
        )))
    }
}

/// Periods: 1, 5, 10, 20, 30 seconds or a multiple of 60 (API reference, `Period`).
pub fn check_period(period: i64) -> ApiResult<()> {
    if [1, 5, 10, 20, 30].contains(&period) || (period >= 60 && period % 60 == 0) {
        Ok(())
    } else {
        Err(invalid(
            "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.",
        ))
    }
}

pub fn dashboard_arn(account: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch::{account}:dashboard/{name}")
}

impl World {
    /// The metric of exactly these dimensions.
    pub fn metric(
        &self,
        region: &str,
        ns: &str,
        name: &str,
        dims: &[Dimension],
    ) -> Option<&Metric> {
        let mut dims = dims.to_vec();
        dims.sort();
        self.metrics.get(&metric_id(region, ns, name, &dims))
    }

    /// PutMetricData: validates every datum (one bad datum fails the call, as on AWS),
    /// then appends each as a point.
    pub fn put_metric_data(&mut self, env: &Env, ns: &str, data: Vec<Datum>) -> ApiResult<()> {
        check_namespace(ns)?;
        if ns.starts_with("AWS/") && !env.action.starts_with("vpclab:") {
            return Err(invalid(
                "The value AWS/ for parameter Namespace is invalid: namespaces beginning with AWS/ are reserved for AWS services.",
            ));
        }
        if data.is_empty() {
            return Err(missing("MetricData"));
        }
        if data.len() > MAX_DATUMS {
            return Err(invalid(format!(
                "The collection MetricData must not have a size greater than {MAX_DATUMS}."
            )));
        }
        let now = env.now.0;
        let mut checked = Vec::with_capacity(data.len());
        for mut d in data {
            if d.name.is_empty() || d.name.len() > 255 {
                return Err(invalid(
                    "The parameter MetricData.member.N.MetricName must be between 1 and 255 characters.",
                ));
            }
            check_dimensions(&mut d.dimensions)?;
            if let Some(u) = &d.unit {
                check_unit(u)?;
            }
            let resolution = match d.resolution {
                None | Some(60) => 60,
                Some(1) => 1,
                Some(r) => {
                    return Err(invalid(format!(
                        "The value {r} for parameter MetricData.member.N.StorageResolution is invalid: it must be 1 or 60."
                    )));
                }
            };
            let t = d.timestamp.unwrap_or(now);
            if t < now - TOO_OLD_MS || t > now + TOO_NEW_MS {
                return Err(invalid(format!(
                    "The parameter MetricData.member.N.Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future (got {}).",
                    crate::model::Timestamp(t).iso()
                )));
            }
            if d.stats.is_empty() {
                return Err(ApiError::new(
                    "InvalidParameterCombination",
                    format!(
                        "The parameters MetricData.member.N.Value, MetricData.member.N.StatisticValues and MetricData.member.N.Values are mutually exclusive and one must be specified (metric {}).",
                        d.name
                    ),
                ));
            }
            for s in &d.stats {
                if !(s.sum.is_finite() && s.min.is_finite() && s.max.is_finite())
                    || s.count <= 0.0
                    || s.min > s.max
                {
                    return Err(invalid(format!(
                        "The values of metric {} must be finite numbers with SampleCount > 0 and Minimum <= Maximum.",
                        d.name
                    )));
                }
            }
            checked.push((d, t, resolution));
        }
        for (d, t, resolution) in checked {
            let id = metric_id(&env.region, ns, &d.name, &d.dimensions);
            if !self.metrics.contains(&id) {
                self.metrics.insert(Metric {
                    id: id.clone(),
                    region: env.region.clone(),
                    namespace: ns.to_string(),
                    name: d.name.clone(),
                    dimensions: d.dimensions.clone(),
                    points: Vec::new(),
                });
            }
            let m = self.metrics.get_mut(&id).expect("inserted above");
            let unit = d.unit.clone().unwrap_or_else(|| "None".into());
            for s in d.stats {
                let at = m.points.partition_point(|p| p.t <= t);
                m.points.insert(
                    at,
                    Point {
                        t,
                        stats: s,
                        unit: unit.clone(),
                        resolution,
                    },
                );
            }
            let floor = now - RETENTION_MS;
            let old = m.points.partition_point(|p| p.t < floor);
            let excess = m.points.len().saturating_sub(MAX_POINTS);
            m.points.drain(..old.max(excess));
        }
        Ok(())
    }

    pub fn put_dashboard(&mut self, env: &Env, name: &str, body: &str) -> ApiResult<()> {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(invalid(
                "The value for field DashboardName contains invalid characters. It can only contain alphanumerics, dash (-) and underscore (_).",
            ));
        }
        // The body is a JSON object with a `widgets` list (Dashboard Body Structure).
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(m)) => {
                if m.get("widgets").is_some_and(|w| !w.is_array()) {
                    return Err(ApiError::new(
                        "InvalidParameterInput",
                        "The field DashboardBody is invalid: widgets must be an array.",
                    ));
                }
            }
            _ => {
                return Err(ApiError::new(
                    "InvalidParameterInput",
                    "The field DashboardBody must be a valid JSON object.",
                ));
            }
        }
        let id = dashboard_arn(&self.account, name);
        self.dashboards.insert(Dashboard {
            id,
            name: name.to_string(),
            body: body.to_string(),
            modified: env.now.0,
        });
        Ok(())
    }

    pub fn dashboard(&self, name: &str) -> ApiResult<&Dashboard> {
        self.dashboards
            .get(&dashboard_arn(&self.account, name))
            .ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFound",
                    format!("Dashboard {name} does not exist"),
                )
                .with_status(404)
            })
    }

    /// DeleteDashboards: all or nothing.
    pub fn delete_dashboards(&mut self, names: &[String]) -> ApiResult<()> {
        if names.is_empty() {
            return Err(missing("DashboardNames"));
        }
        for n in names {
            self.dashboard(n)?;
        }
        for n in names {
            self.dashboards.remove(&dashboard_arn(&self.account, n));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000)).with_action("PutMetricData")
    }

    fn datum(v: f64, t: i64) -> Datum {
        Datum {
            name: "Latency".into(),
            dimensions: vec![Dimension {
                name: "Host".into(),
                value: "a".into(),
            }],
            timestamp: Some(t),
            stats: vec![Stats::one(v)],
            unit: Some("Milliseconds".into()),
            resolution: None,
        }
    }

    #[test]
    fn periods_aggregate_every_statistic_exactly() {
        let mut w = World::new("000000000000");
        let t0 = 1_700_000_000_000 - 600_000;
        w.put_metric_data(
            &env(),
            "App",
            vec![
                datum(1.0, t0),
                datum(3.0, t0 + 1000),
                datum(10.0, t0 + 61_000),
            ],
        )
        .unwrap();
        let m = w
            .metric(
                "us-east-1",
                "App",
                "Latency",
                &[Dimension {
                    name: "Host".into(),
                    value: "a".into(),
                }],
            )
            .unwrap();
        let p = m.periods(t0, t0 + 120_000, 60_000, None);
        let first = p[&t0];
        assert_eq!(first.get("Sum"), Some(4.0));
        assert_eq!(first.get("Average"), Some(2.0));
        assert_eq!(first.get("SampleCount"), Some(2.0));
        assert_eq!(p[&(t0 + 60_000)].get("Maximum"), Some(10.0));
        assert!(
            m.periods(t0, t0 + 120_000, 60_000, Some("Bytes"))
                .is_empty()
        );
    }

    #[test]
    fn bad_datums_fail_the_whole_call_with_aws_codes() {
        let mut w = World::new("000000000000");
        let now = 1_700_000_000_000;
        let e = w
            .put_metric_data(
                &env(),
                "App",
                vec![datum(1.0, now), datum(1.0, now - TOO_OLD_MS - 1)],
            )
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(w.metrics.is_empty());
        let mut d = datum(1.0, now);
        d.unit = Some("Furlongs".into());
        assert_eq!(
            w.put_metric_data(&env(), "App", vec![d]).unwrap_err().code,
            "InvalidParameterValue"
        );
        let mut d = datum(1.0, now);
        d.stats.clear();
        assert_eq!(
            w.put_metric_data(&env(), "App", vec![d]).unwrap_err().code,
            "InvalidParameterCombination"
        );
        assert_eq!(
            w.put_metric_data(&env(), "AWS/EC2", vec![datum(1.0, now)])
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
    }
}

//! Metric filters: CloudWatch Logs turns the log events that match a filter pattern
//! into CloudWatch metric datapoints (PutMetricFilter, DescribeMetricFilters,
//! DeleteMetricFilter).
//!
//! A filter lives in its log group's row (a group holds at most 100, and deleting the
//! group deletes them, as on AWS). When PutLogEvents stores events, every filter of the
//! group is tried on each stored event; a match publishes one datapoint of the filter's
//! metric at the event's timestamp, with the value its `metricValue` names: a number,
//! or a JSON selector (`$.latency`) read from the event (an event whose selected field
//! is not a number publishes nothing, as AWS does). A batch in which no event matched
//! publishes the `defaultValue`, when the filter has one, once at the batch's last
//! timestamp.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pattern::Pattern;
use super::{LogEvent, invalid};
use crate::model::cloudwatch::{Datum, Dimension, Stats};
use crate::model::{ApiError, ApiResult, Env, World};

/// Metric filters per log group (AWS quota).
pub const MAX_FILTERS_PER_GROUP: usize = 100;

/// One metric filter of a log group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricFilter {
    pub name: String,
    /// The filter pattern as given (parsed again when events arrive).
    pub pattern: String,
    pub transformation: MetricTransformation,
    pub created: i64,
}

/// What a match publishes (AWS allows exactly one transformation per filter).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricTransformation {
    pub metric_name: String,
    pub metric_namespace: String,
    /// A number, or `$.selector` into a JSON event.
    pub metric_value: String,
    pub default_value: Option<f64>,
    pub unit: Option<String>,
    pub dimensions: BTreeMap<String, String>,
}

impl MetricTransformation {
    /// The value one matching event publishes, if any.
    fn value_of(&self, message: &str) -> Option<f64> {
        let v = self.metric_value.trim();
        if let Ok(n) = v.parse::<f64>() {
            return Some(n);
        }
        let path = v.strip_prefix("$.")?;
        let json: serde_json::Value = serde_json::from_str(message).ok()?;
        let mut at = &json;
        for key in path.split('.') {
            at = at.get(key)?;
        }
        match at {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Checks what PutMetricFilter was given.
    fn check(&self) -> ApiResult<()> {
        for (what, s, max) in [
            ("metricName", &self.metric_name, 255),
            ("metricNamespace", &self.metric_namespace, 255),
            ("metricValue", &self.metric_value, 100),
        ] {
            if s.is_empty() || s.len() > max {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{s}' at 'metricTransformations.1.member.{what}' failed to satisfy constraint: Member must have length between 1 and {max}"
                )));
            }
        }
        if self.metric_namespace.starts_with("AWS/") {
            return Err(invalid(
                "Namespaces beginning with AWS/ are reserved for AWS services.",
            ));
        }
        let v = self.metric_value.trim();
        let selector = v
            .strip_prefix("$.")
            .is_some_and(|p| !p.is_empty() && p.split('.').all(|k| !k.is_empty()));
        if v.parse::<f64>().is_err() && !selector {
            return Err(invalid(format!(
                "Invalid metric value '{v}': vpclab publishes a number or a JSON selector such as $.latency (space-delimited $field values are not supported)"
            )));
        }
        if self.dimensions.len() > 3 {
            return Err(invalid("A metric filter can have at most 3 dimensions."));
        }
        if !self.dimensions.is_empty() && self.default_value.is_some() {
            return Err(invalid(
                "A metric filter with dimensions cannot have a default value.",
            ));
        }
        Ok(())
    }

    /// The datapoint of one value.
    fn datum(&self, message: &str, value: f64, timestamp: i64) -> Datum {
        let dimensions = self
            .dimensions
            .iter()
            .filter_map(|(name, v)| {
                // A dimension's value is a literal or a JSON selector of the event.
                let value = match v.strip_prefix("$.") {
                    None => v.clone(),
                    Some(path) => {
                        let json: serde_json::Value = serde_json::from_str(message).ok()?;
                        let mut at = &json;
                        for key in path.split('.') {
                            at = at.get(key)?;
                        }
                        match at {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }
                    }
                };
                Some(Dimension {
                    name: name.clone(),
                    value,
                })
            })
            .collect();
        Datum {
            name: self.metric_name.clone(),
            dimensions,
            timestamp: Some(timestamp),
            stats: vec![Stats::one(value)],
            unit: self.unit.clone(),
            resolution: None,
        }
    }
}

impl World {
    /// PutMetricFilter: creates or replaces the filter `name` of a log group.
    pub fn put_metric_filter(
        &mut self,
        env: &Env,
        group: &str,
        name: &str,
        pattern: &str,
        transformation: MetricTransformation,
    ) -> ApiResult<()> {
        if name.is_empty() || name.len() > 512 || name.contains(':') || name.contains('*') {
            return Err(invalid(format!(
                "1 validation error detected: Value '{name}' at 'filterName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
            )));
        }
        Pattern::parse(pattern)?;
        transformation.check()?;
        let id = self.log_group(env, group)?.id.clone();
        let Some(g) = self.log_groups.get_mut(&id) else {
            return Err(super::group_not_found());
        };
        if !g.metric_filters.contains_key(name) && g.metric_filters.len() >= MAX_FILTERS_PER_GROUP {
            return Err(ApiError::new(
                "LimitExceededException",
                "Resource limit exceeded.",
            ));
        }
        let created = g.metric_filters.get(name).map_or(env.now.0, |f| f.created);
        g.metric_filters.insert(
            name.to_string(),
            MetricFilter {
                name: name.to_string(),
                pattern: pattern.to_string(),
                transformation,
                created,
            },
        );
        Ok(())
    }

    /// DeleteMetricFilter.
    pub fn delete_metric_filter(&mut self, env: &Env, group: &str, name: &str) -> ApiResult<()> {
        let id = self.log_group(env, group)?.id.clone();
        let removed = self
            .log_groups
            .get_mut(&id)
            .and_then(|g| g.metric_filters.remove(name));
        if removed.is_none() {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                "The specified metric filter does not exist.",
            ));
        }
        Ok(())
    }

    /// Publishes what the metric filters of `group` make of newly stored events.
    pub(super) fn apply_metric_filters(&mut self, env: &Env, group: &str, events: &[LogEvent]) {
        let Ok(g) = self.log_group(env, group) else {
            return;
        };
        if g.metric_filters.is_empty() || events.is_empty() {
            return;
        }
        let mut by_namespace: BTreeMap<String, Vec<Datum>> = BTreeMap::new();
        for f in g.metric_filters.values() {
            // Stored patterns were checked when the filter was put.
            let Ok(pattern) = Pattern::parse(&f.pattern) else {
                continue;
            };
            let t = &f.transformation;
            let mut matched = false;
            for e in events {
                if !pattern.matches(&e.message) {
                    continue;
                }
                matched = true;
                if let Some(v) = t.value_of(&e.message) {
                    by_namespace
                        .entry(t.metric_namespace.clone())
                        .or_default()
                        .push(t.datum(&e.message, v, e.timestamp));
                }
            }
            if !matched
                && let Some(v) = t.default_value
                && let Some(last) = events.last()
            {
                by_namespace
                    .entry(t.metric_namespace.clone())
                    .or_default()
                    .push(t.datum(&last.message, v, last.timestamp));
            }
        }
        for (ns, data) in by_namespace {
            for chunk in data.chunks(crate::model::cloudwatch::MAX_DATUMS) {
                // The filter was validated when it was put; a datum CloudWatch refuses
                // (a dimension value out of its limits) is dropped, not the log events.
                if let Err(e) = self.put_metric_data(env, &ns, chunk.to_vec()) {
                    tracing::debug!(namespace = %ns, error = %e.message, "metric filter datum refused");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: &str) -> MetricTransformation {
        MetricTransformation {
            metric_name: "Errors".into(),
            metric_namespace: "App".into(),
            metric_value: value.into(),
            default_value: None,
            unit: None,
            dimensions: BTreeMap::new(),
        }
    }

    #[test]
    fn metric_values_are_numbers_or_json_selectors() {
        assert_eq!(t("1").value_of("anything"), Some(1.0));
        assert_eq!(
            t("$.latency").value_of(r#"{"latency": 12.5, "path": "/"}"#),
            Some(12.5)
        );
        assert_eq!(
            t("$.req.ms").value_of(r#"{"req": {"ms": "40"}}"#),
            Some(40.0)
        );
        assert_eq!(t("$.latency").value_of("not json"), None);
        assert_eq!(t("$.latency").value_of(r#"{"latency": "slow"}"#), None);
        assert!(t("$size").check().is_err(), "delimited fields are refused");
        assert!(t("").check().is_err());
        let mut aws = t("1");
        aws.metric_namespace = "AWS/EC2".into();
        assert!(aws.check().is_err());
    }
}

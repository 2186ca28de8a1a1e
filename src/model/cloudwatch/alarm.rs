//! CloudWatch alarms: metric alarms evaluated continuously against the stored
//! datapoints, composite alarms over other alarms' states, their history, and their
//! actions (EC2 stop/terminate/reboot/recover through the same model methods as the
//! EC2 API, SNS notifications through [`World::sns_publish`]).
//!
//! Evaluation, as the CloudWatch user guide describes it ("Evaluating an alarm"): at
//! each evaluation the alarm looks at its last `EvaluationPeriods` (N) complete
//! periods; each period's statistic is breaching, not breaching, or missing; the alarm
//! goes to ALARM when at least `DatapointsToAlarm` (M, default N) are breaching, else to
//! OK. Missing periods follow `TreatMissingData`: `notBreaching` counts them as good,
//! `breaching` as bad, `ignore` keeps the current state when every period is missing,
//! and `missing` (the default) goes to INSUFFICIENT_DATA when every period is missing.
//! An alarm is evaluated every `Period`, at most every 60 seconds (AWS evaluates
//! standard alarms every minute, high-resolution ones every 10 s). State changes are
//! recorded in the alarm's history and run that state's actions when actions are
//! enabled. Composite alarms re-evaluate their rule after every metric-alarm pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Dimension, check_dimensions, check_namespace, check_period, check_unit, invalid, missing,
};
use crate::model::{ApiError, ApiResult, Env, Resource, Timestamp, World};

pub const STATES: &[&str] = &["OK", "ALARM", "INSUFFICIENT_DATA"];
pub const COMPARISONS: &[&str] = &[
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];
pub const TREAT_MISSING: &[&str] = &["breaching", "notBreaching", "ignore", "missing"];
/// Most history items kept per alarm (newest kept).
const MAX_HISTORY: usize = 100;
/// Most actions per state (API reference: 5).
const MAX_ACTIONS: usize = 5;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryItem {
    pub at: i64,
    /// `StateUpdate`, `ConfigurationUpdate` or `Action`.
    pub kind: String,
    pub summary: String,
    pub data: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Alarm {
    /// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
    pub id: String,
    pub region: String,
    pub name: String,
    pub description: Option<String>,
    /// `Some` for a composite alarm (its AlarmRule); the metric fields are then unused.
    pub rule: Option<String>,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    pub statistic: String,
    /// Seconds.
    pub period: i64,
    pub unit: Option<String>,
    pub threshold: f64,
    pub comparison: String,
    pub evaluation_periods: i64,
    pub datapoints_to_alarm: Option<i64>,
    pub treat_missing: String,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_actions: Vec<String>,
    pub state: String,
    pub reason: String,
    pub reason_data: Option<String>,
    pub state_updated: i64,
    pub config_updated: i64,
    pub history: Vec<HistoryItem>,
    /// When the alarm is evaluated next (epoch ms).
    pub next_eval: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Resource for Alarm {
    const KIND: &'static str = "alarm";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Alarm {
    pub fn is_composite(&self) -> bool {
        self.rule.is_some()
    }

    fn eval_interval_ms(&self) -> i64 {
        if self.is_composite() {
            return 60_000;
        }
        self.period.clamp(1, 60) * 1000
    }

    fn breaches(&self, v: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => v >= self.threshold,
            "GreaterThanThreshold" => v > self.threshold,
            "LessThanThreshold" => v < self.threshold,
            _ => v <= self.threshold,
        }
    }

    fn actions_for(&self, state: &str) -> &[String] {
        match state {
            "ALARM" => &self.alarm_actions,
            "OK" => &self.ok_actions,
            _ => &self.insufficient_actions,
        }
    }

    fn record(&mut self, at: i64, kind: &str, summary: String, data: String) {
        self.history.push(HistoryItem {
            at,
            kind: kind.into(),
            summary,
            data,
        });
        let excess = self.history.len().saturating_sub(MAX_HISTORY);
        self.history.drain(..excess);
    }
}

/// The name AWS's notifications give a region ("US East (N. Virginia)").
fn region_title(region: &str) -> &str {
    match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "eu-west-1" => "EU (Ireland)",
        "eu-west-2" => "EU (London)",
        "eu-central-1" => "EU (Frankfurt)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        other => other,
    }
}

pub fn alarm_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

pub fn alarm_not_found(name: &str) -> ApiError {
    ApiError::new("ResourceNotFound", format!("Alarm {name} does not exist")).with_status(404)
}

/// What PutMetricAlarm asks for.
#[derive(Clone, Debug, Default)]
pub struct MetricAlarmInput {
    pub name: String,
    pub description: Option<String>,
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<Dimension>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub has_metrics: bool,
    pub period: Option<i64>,
    pub unit: Option<String>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    pub evaluation_periods: Option<i64>,
    pub datapoints_to_alarm: Option<i64>,
    pub treat_missing: Option<String>,
    pub actions_enabled: Option<bool>,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_actions: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// A composite alarm's rule: `ALARM(x)`, `OK(x)`, `INSUFFICIENT_DATA(x)`, `TRUE`,
/// `FALSE`, `AND`, `OR`, `NOT`, parentheses (the AlarmRule grammar of the API reference).
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    State(String, String),
    Const(bool),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

impl Rule {
    pub fn parse(s: &str) -> Result<Rule, String> {
        let toks = rule_tokens(s)?;
        let mut pos = 0;
        let r = rule_or(&toks, &mut pos, 0)?;
        if pos != toks.len() {
            return Err(format!("unexpected '{}'", toks[pos]));
        }
        Ok(r)
    }

    pub fn eval(&self, state_of: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Rule::State(want, alarm) => state_of(alarm).as_deref() == Some(want.as_str()),
            Rule::Const(b) => *b,
            Rule::Not(r) => !r.eval(state_of),
            Rule::And(a, b) => a.eval(state_of) && b.eval(state_of),
            Rule::Or(a, b) => a.eval(state_of) || b.eval(state_of),
        }
    }

    pub fn alarms(&self, out: &mut Vec<String>) {
        match self {
            Rule::State(_, a) => out.push(a.clone()),
            Rule::Const(_) => {}
            Rule::Not(r) => r.alarms(out),
            Rule::And(a, b) | Rule::Or(a, b) => {
                a.alarms(out);
                b.alarms(out);
            }
        }
    }
}

fn rule_tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let st = i + 1;
            i += 1;
            while i < cs.len() && cs[i] != '"' {
                i += 1;
            }
            if i >= cs.len() {
                return Err("unterminated quoted alarm name".into());
            }
            out.push(format!("\"{}", cs[st..i].iter().collect::<String>()));
            i += 1;
        } else {
            let st = i;
            while i < cs.len() && !cs[i].is_whitespace() && cs[i] != '(' && cs[i] != ')' {
                i += 1;
            }
            out.push(cs[st..i].iter().collect());
        }
    }
    Ok(out)
}

fn rule_or(t: &[String], pos: &mut usize, depth: usize) -> Result<Rule, String> {
    if depth > 64 {
        return Err("the rule is nested too deeply".into());
    }
    let mut r = rule_and(t, pos, depth)?;
    while t.get(*pos).is_some_and(|x| x == "OR") {
        *pos += 1;
        r = Rule::Or(Box::new(r), Box::new(rule_and(t, pos, depth)?));
    }
    Ok(r)
}

fn rule_and(t: &[String], pos: &mut usize, depth: usize) -> Result<Rule, String> {
    let mut r = rule_not(t, pos, depth)?;
    while t.get(*pos).is_some_and(|x| x == "AND") {
        *pos += 1;
        r = Rule::And(Box::new(r), Box::new(rule_not(t, pos, depth)?));
    }
    Ok(r)
}

fn rule_not(t: &[String], pos: &mut usize, depth: usize) -> Result<Rule, String> {
    let Some(tok) = t.get(*pos).cloned() else {
        return Err("the rule ends too early".into());
    };
    *pos += 1;
    match tok.as_str() {
        "NOT" => Ok(Rule::Not(Box::new(rule_not(t, pos, depth + 1)?))),
        "TRUE" => Ok(Rule::Const(true)),
        "FALSE" => Ok(Rule::Const(false)),
        "(" => {
            let r = rule_or(t, pos, depth + 1)?;
            if t.get(*pos).map(String::as_str) != Some(")") {
                return Err("missing ')'".into());
            }
            *pos += 1;
            Ok(r)
        }
        "ALARM" | "OK" | "INSUFFICIENT_DATA" => {
            if t.get(*pos).map(String::as_str) != Some("(") {
                return Err(format!("{tok} needs an alarm in parentheses"));
            }
            let name = t.get(*pos + 1).ok_or("missing alarm name")?;
            if t.get(*pos + 2).map(String::as_str) != Some(")") {
                return Err("missing ')'".into());
            }
            *pos += 3;
            let name = name.strip_prefix('"').unwrap_or(name);
            // An ARN names the alarm by its last segment.
            let name = if name.starts_with("arn:") {
                name.rsplit(":alarm:").next().unwrap_or(name)
            } else {
                name
            };
            Ok(Rule::State(tok, name.to_string()))
        }
        other => Err(format!("unexpected '{other}'")),
    }
}

/// Validates one action ARN for `region`.
fn check_action(region: &str, arn: &str) -> ApiResult<()> {
    let ec2 = ["stop", "terminate", "reboot", "recover"]
        .iter()
        .any(|a| arn == format!("arn:aws:automate:{region}:ec2:{a}"));
    let sns = arn.starts_with(&format!("arn:aws:sns:{region}:"));
    // An Auto Scaling policy of this region (model::autoscaling::policy).
    let scaling = arn.starts_with(&format!("arn:aws:autoscaling:{region}:"))
        && arn.contains(":scalingPolicy:");
    if ec2 || sns || scaling {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid action ARN {arn}: vpclab runs arn:aws:automate:{region}:ec2:stop|terminate|reboot|recover, SNS topics and Auto Scaling policies of this region."
        )))
    }
}

fn check_actions(region: &str, list: &[String], name: &str) -> ApiResult<()> {
    if list.len() > MAX_ACTIONS {
        return Err(invalid(format!(
            "The collection {name} must not have a size greater than {MAX_ACTIONS}."
        )));
    }
    list.iter().try_for_each(|a| check_action(region, a))
}

fn check_alarm_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(invalid(
            "The parameter AlarmName must be between 1 and 255 characters.",
        ));
    }
    Ok(())
}

impl World {
    pub fn alarm(&self, region: &str, name: &str) -> Option<&Alarm> {
        self.alarms.get(&alarm_arn(region, &self.account, name))
    }

    /// PutMetricAlarm: creates or replaces the alarm's configuration (an existing
    /// alarm keeps its state, as on AWS).
    pub fn put_metric_alarm(&mut self, env: &Env, a: MetricAlarmInput) -> ApiResult<()> {
        check_alarm_name(&a.name)?;
        if a.has_metrics {
            return Err(invalid(
                "vpclab does not evaluate alarms on metric math (Metrics); give MetricName, Namespace, Statistic and Period.",
            ));
        }
        if a.extended_statistic.is_some() {
            return Err(invalid(
                "vpclab does not compute percentiles (ExtendedStatistic); use Statistic.",
            ));
        }
        let namespace = a.namespace.ok_or_else(|| missing("Namespace"))?;
        check_namespace(&namespace)?;
        let metric_name = a.metric_name.ok_or_else(|| missing("MetricName"))?;
        let statistic = a.statistic.ok_or_else(|| missing("Statistic"))?;
        if !super::STATISTICS.contains(&statistic.as_str()) {
            return Err(invalid(format!(
                "The value {statistic} for parameter Statistic is not valid (SampleCount, Average, Sum, Minimum, Maximum)."
            )));
        }
        let period = a.period.ok_or_else(|| missing("Period"))?;
        check_period(period)?;
        if period < 60 && ![10, 30].contains(&period) {
            return Err(invalid(
                "The parameter Period of an alarm must be 10, 30, or a multiple of 60.",
            ));
        }
        let mut dimensions = a.dimensions;
        check_dimensions(&mut dimensions)?;
        if let Some(u) = &a.unit {
            check_unit(u)?;
        }
        let threshold = a.threshold.ok_or_else(|| missing("Threshold"))?;
        let comparison = a.comparison.ok_or_else(|| missing("ComparisonOperator"))?;
        if !COMPARISONS.contains(&comparison.as_str()) {
            return Err(invalid(format!(
                "The value {comparison} for parameter ComparisonOperator is not valid ({}).",
                COMPARISONS.join(", ")
            )));
        }
        let n = a
            .evaluation_periods
            .ok_or_else(|| missing("EvaluationPeriods"))?;
        if n < 1 {
            return Err(invalid(
                "The parameter EvaluationPeriods must be greater than or equal to 1.",
            ));
        }
        if period * n > 7 * 24 * 3600 {
            return Err(invalid(
                "The evaluation period (Period * EvaluationPeriods) may not exceed one week.",
            ));
        }
        if let Some(m) = a.datapoints_to_alarm
            && !(1..=n).contains(&m)
        {
            return Err(invalid(
                "DatapointsToAlarm must be between 1 and EvaluationPeriods.",
            ));
        }
        let treat = a.treat_missing.unwrap_or_else(|| "missing".into());
        if !TREAT_MISSING.contains(&treat.as_str()) {
            return Err(invalid(format!(
                "The value {treat} for parameter TreatMissingData is not valid (breaching, notBreaching, ignore, missing)."
            )));
        }
        check_actions(&env.region, &a.ok_actions, "OKActions")?;
        check_actions(&env.region, &a.alarm_actions, "AlarmActions")?;
        check_actions(
            &env.region,
            &a.insufficient_actions,
            "InsufficientDataActions",
        )?;
        let id = alarm_arn(&env.region, &self.account, &a.name);
        let now = env.now.0;
        let previous = self.alarms.get(&id).cloned();
        if previous.as_ref().is_some_and(Alarm::is_composite) {
            return Err(invalid(format!(
                "The alarm {} is a composite alarm.",
                a.name
            )));
        }
        let mut alarm = Alarm {
            id: id.clone(),
            region: env.region.clone(),
            name: a.name.clone(),
            description: a.description,
            rule: None,
            namespace,
            metric_name,
            dimensions,
            statistic,
            period,
            unit: a.unit,
            threshold,
            comparison,
            evaluation_periods: n,
            datapoints_to_alarm: a.datapoints_to_alarm,
            treat_missing: treat,
            actions_enabled: a.actions_enabled.unwrap_or(true),
            ok_actions: a.ok_actions,
            alarm_actions: a.alarm_actions,
            insufficient_actions: a.insufficient_actions,
            state: "INSUFFICIENT_DATA".into(),
            reason: "Unchecked: Initial alarm creation".into(),
            reason_data: None,
            state_updated: now,
            config_updated: now,
            history: Vec::new(),
            next_eval: now,
            tags: a.tags,
        };
        let verb = match previous {
            Some(p) => {
                alarm.state = p.state;
                alarm.reason = p.reason;
                alarm.reason_data = p.reason_data;
                alarm.state_updated = p.state_updated;
                alarm.history = p.history;
                let mut tags = p.tags;
                tags.extend(alarm.tags);
                alarm.tags = tags;
                "updated"
            }
            None => "created",
        };
        alarm.record(
            now,
            "ConfigurationUpdate",
            format!("Alarm \"{}\" {verb}", a.name),
            String::new(),
        );
        self.alarms.insert(alarm);
        Ok(())
    }

    /// PutCompositeAlarm.
    #[allow(clippy::too_many_arguments)]
    pub fn put_composite_alarm(
        &mut self,
        env: &Env,
        name: &str,
        rule: &str,
        description: Option<String>,
        actions_enabled: Option<bool>,
        ok_actions: Vec<String>,
        alarm_actions: Vec<String>,
        insufficient_actions: Vec<String>,
        tags: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        check_alarm_name(name)?;
        if rule.is_empty() || rule.len() > 10_240 {
            return Err(invalid(
                "The parameter AlarmRule must be between 1 and 10240 characters.",
            ));
        }
        let parsed =
            Rule::parse(rule).map_err(|e| invalid(format!("The AlarmRule is invalid: {e}.")))?;
        let mut refs = Vec::new();
        parsed.alarms(&mut refs);
        if refs.iter().any(|r| r == name) {
            return Err(invalid("A composite alarm may not refer to itself."));
        }
        check_actions(&env.region, &ok_actions, "OKActions")?;
        check_actions(&env.region, &alarm_actions, "AlarmActions")?;
        check_actions(
            &env.region,
            &insufficient_actions,
            "InsufficientDataActions",
        )?;
        let id = alarm_arn(&env.region, &self.account, name);
        let now = env.now.0;
        let previous = self.alarms.get(&id).cloned();
        if previous.as_ref().is_some_and(|p| !p.is_composite()) {
            return Err(invalid(format!("The alarm {name} is a metric alarm.")));
        }
        let mut alarm = Alarm {
            id,
            region: env.region.clone(),
            name: name.to_string(),
            description,
            rule: Some(rule.to_string()),
            namespace: String::new(),
            metric_name: String::new(),
            dimensions: Vec::new(),
            statistic: String::new(),
            period: 60,
            unit: None,
            threshold: 0.0,
            comparison: String::new(),
            evaluation_periods: 1,
            datapoints_to_alarm: None,
            treat_missing: "missing".into(),
            actions_enabled: actions_enabled.unwrap_or(true),
            ok_actions,
            alarm_actions,
            insufficient_actions,
            state: "INSUFFICIENT_DATA".into(),
            reason: "Unchecked: Initial alarm creation".into(),
            reason_data: None,
            state_updated: now,
            config_updated: now,
            history: Vec::new(),
            next_eval: now,
            tags,
        };
        if let Some(p) = previous {
            alarm.state = p.state;
            alarm.reason = p.reason;
            alarm.state_updated = p.state_updated;
            alarm.history = p.history;
        }
        alarm.record(
            now,
            "ConfigurationUpdate",
            format!("Alarm \"{name}\" updated"),
            String::new(),
        );
        self.alarms.insert(alarm);
        // A composite alarm takes its state at once from the alarms it watches.
        self.evaluate_composites(&env.region, now);
        Ok(())
    }

    /// DeleteAlarms: every name must exist (else `ResourceNotFound`, nothing deleted).
    pub fn delete_alarms(&mut self, env: &Env, names: &[String]) -> ApiResult<()> {
        for n in names {
            if self.alarm(&env.region, n).is_none() {
                return Err(alarm_not_found(n));
            }
        }
        for n in names {
            self.alarms
                .remove(&alarm_arn(&env.region, &self.account, n));
        }
        Ok(())
    }

    /// Enable/DisableAlarmActions (names that do not exist are ignored, as on AWS).
    pub fn set_alarm_actions_enabled(
        &mut self,
        env: &Env,
        names: &[String],
        on: bool,
    ) -> ApiResult<()> {
        if names.is_empty() {
            return Err(missing("AlarmNames"));
        }
        for n in names {
            let id = alarm_arn(&env.region, &self.account, n);
            if let Some(a) = self.alarms.get_mut(&id) {
                a.actions_enabled = on;
            }
        }
        Ok(())
    }

    /// SetAlarmState: the state is set now (and its actions run); the next evaluation
    /// sets it back from the data.
    pub fn set_alarm_state(
        &mut self,
        env: &Env,
        name: &str,
        state: &str,
        reason: &str,
        reason_data: Option<String>,
    ) -> ApiResult<()> {
        if !STATES.contains(&state) {
            return Err(invalid(format!(
                "The value {state} for parameter StateValue is not valid (OK, ALARM, INSUFFICIENT_DATA)."
            )));
        }
        if let Some(d) = &reason_data
            && serde_json::from_str::<serde_json::Value>(d).is_err()
        {
            return Err(ApiError::new(
                "InvalidFormat",
                "The parameter StateReasonData must be JSON.",
            ));
        }
        let id = alarm_arn(&env.region, &self.account, name);
        if !self.alarms.contains(&id) {
            return Err(alarm_not_found(name));
        }
        self.change_state(&id, state, reason.to_string(), reason_data, env.now.0);
        self.evaluate_composites(&env.region, env.now.0);
        Ok(())
    }

    /// Moves an alarm to `state` (if it is not in it), records the change and runs the
    /// state's actions.
    fn change_state(
        &mut self,
        id: &str,
        state: &str,
        reason: String,
        data: Option<String>,
        now: i64,
    ) {
        let Some(a) = self.alarms.get_mut(id) else {
            return;
        };
        if a.state == state {
            return;
        }
        let old = std::mem::replace(&mut a.state, state.to_string());
        a.reason = reason.clone();
        a.reason_data = data.clone();
        a.state_updated = now;
        let history_data = serde_json::json!({
            "version": "1.0",
            "oldState": { "stateValue": old },
            "newState": { "stateValue": state, "stateReason": reason, "stateReasonData": data },
        })
        .to_string();
        a.record(
            now,
            "StateUpdate",
            format!("Alarm updated from {old} to {state}"),
            history_data,
        );
        let alarm = a.clone();
        if !alarm.actions_enabled {
            return;
        }
        for action in alarm.actions_for(state) {
            let outcome = self.run_action(&alarm, action, &old, now);
            if let Some(a) = self.alarms.get_mut(id) {
                let summary = match &outcome {
                    Ok(what) => format!("Successfully executed action {action}: {what}"),
                    Err(e) => format!("Failed to execute action {action}: {e}"),
                };
                a.record(now, "Action", summary, String::new());
            }
        }
    }

    /// Runs the Auto Scaling actions of an alarm that stayed in its state, when a new
    /// minute in that state began since the previous evaluation.
    fn repeat_scaling_actions(&mut self, id: &str, data: String, now: i64, interval: i64) {
        let Some(a) = self.alarms.get(id).cloned() else {
            return;
        };
        let minute = |t: i64| (t - a.state_updated).div_euclid(60_000);
        if !a.actions_enabled || minute(now) < 1 || minute(now) == minute(now - interval) {
            return;
        }
        let actions: Vec<String> = a
            .actions_for(&a.state)
            .iter()
            .filter(|x| x.starts_with("arn:aws:autoscaling:"))
            .cloned()
            .collect();
        if actions.is_empty() {
            return;
        }
        let alarm = Alarm {
            reason_data: Some(data),
            ..a
        };
        for action in &actions {
            let outcome = self.run_action(&alarm, action, &alarm.state, now);
            if let Some(x) = self.alarms.get_mut(id) {
                let summary = match &outcome {
                    Ok(what) => format!("Successfully executed action {action}: {what}"),
                    Err(e) => format!("Failed to execute action {action}: {e}"),
                };
                x.record(now, "Action", summary, String::new());
            }
        }
    }

    fn run_action(
        &mut self,
        alarm: &Alarm,
        action: &str,
        old: &str,
        now: i64,
    ) -> Result<String, String> {
        let env = Env::new(alarm.region.clone(), Timestamp(now)).with_action("vpclab:AlarmAction");
        if action.starts_with("arn:aws:autoscaling:") {
            let newest = alarm
                .reason_data
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d["recentDatapoints"].get(0).and_then(|v| v.as_f64()));
            return self.run_policy_for_alarm(
                &env,
                action,
                &alarm.name,
                &alarm.state,
                alarm.threshold,
                newest,
            );
        }
        if let Some(verb) = action.strip_prefix(&format!("arn:aws:automate:{}:ec2:", alarm.region))
        {
            let instance = alarm
                .dimensions
                .iter()
                .find(|d| d.name == "InstanceId")
                .map(|d| d.value.clone())
                .ok_or("the alarm's metric has no InstanceId dimension")?;
            let ids = [instance.clone()];
            let r = match verb {
                "stop" => self.stop_instances(&env, &ids).map(|_| ()),
                "terminate" => self.terminate_instances(&env, &ids).map(|_| ()),
                // Recover moves an instance to new hardware on AWS; here, where there is
                // no hardware to fail, it restarts the instance in place.
                _ => self.reboot_instances(&env, &ids),
            };
            return r
                .map(|_| format!("{verb} {instance}"))
                .map_err(|e| format!("{}: {}", e.code, e.message));
        }
        let message = self.alarm_notification(alarm, old, now);
        let subject = format!(
            "{}: \"{}\" in {}",
            alarm.state,
            alarm.name,
            region_title(&alarm.region)
        );
        let subject: String = subject.chars().take(100).collect();
        self.sns_publish(&env, action, Some(subject), &message, BTreeMap::new())
            .map(|id| format!("published message {id}"))
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// The JSON message CloudWatch sends to SNS when an alarm changes state.
    fn alarm_notification(&self, a: &Alarm, old: &str, now: i64) -> String {
        let mut v = serde_json::json!({
            "AlarmName": a.name,
            "AlarmDescription": a.description,
            "AWSAccountId": self.account,
            "AlarmConfigurationUpdatedTimestamp": Timestamp(a.config_updated).iso(),
            "NewStateValue": a.state,
            "NewStateReason": a.reason,
            "StateChangeTime": Timestamp(now).iso(),
            "Region": region_title(&a.region),
            "AlarmArn": a.id,
            "OldStateValue": old,
            "OKActions": a.ok_actions,
            "AlarmActions": a.alarm_actions,
            "InsufficientDataActions": a.insufficient_actions,
        });
        if let Some(rule) = &a.rule {
            v["AlarmRule"] = serde_json::json!(rule);
        } else {
            v["Trigger"] = serde_json::json!({
                "MetricName": a.metric_name,
                "Namespace": a.namespace,
                "StatisticType": "Statistic",
                "Statistic": a.statistic.to_uppercase(),
                "Unit": a.unit,
                "Dimensions": a.dimensions.iter().map(|d| serde_json::json!({"value": d.value, "name": d.name})).collect::<Vec<_>>(),
                "Period": a.period,
                "EvaluationPeriods": a.evaluation_periods,
                "DatapointsToAlarm": a.datapoints_to_alarm.unwrap_or(a.evaluation_periods),
                "ComparisonOperator": a.comparison,
                "Threshold": a.threshold,
                "TreatMissingData": a.treat_missing,
                "EvaluateLowSampleCountPercentile": "",
            });
        }
        v.to_string()
    }

    /// Whether some alarm is due for evaluation at `now`.
    pub fn alarms_due(&self, now: Timestamp) -> bool {
        self.alarms.iter().any(|a| a.next_eval <= now.0)
    }

    /// Evaluates every alarm due at `now` (the daemon's ticker calls this through
    /// [`World::advance`]).
    pub fn evaluate_alarms(&mut self, now: Timestamp) {
        let now = now.0;
        let due = self
            .alarms
            .ids_where(|a| a.next_eval <= now && !a.is_composite());
        let mut regions = std::collections::BTreeSet::new();
        for id in due {
            let Some(a) = self.alarms.get(&id).cloned() else {
                continue;
            };
            regions.insert(a.region.clone());
            let (state, reason, data) = self.judge(&a, now);
            if let Some(x) = self.alarms.get_mut(&id) {
                x.next_eval = now + a.eval_interval_ms();
            }
            match state {
                Some(state) if state != a.state => {
                    self.change_state(&id, &state, reason, Some(data), now)
                }
                // Auto Scaling actions are invoked again once a minute while the alarm
                // stays in its state (CloudWatch User Guide, "Alarm actions").
                _ => self.repeat_scaling_actions(&id, data, now, a.eval_interval_ms()),
            }
        }
        for id in self
            .alarms
            .ids_where(|a| a.next_eval <= now && a.is_composite())
        {
            if let Some(a) = self.alarms.get_mut(&id) {
                regions.insert(a.region.clone());
                a.next_eval = now + 60_000;
            }
        }
        for r in regions {
            self.evaluate_composites(&r, now);
        }
    }

    /// The state the data says an alarm should be in (`None`: keep the current one),
    /// with the reason and its JSON data.
    fn judge(&self, a: &Alarm, now: i64) -> (Option<String>, String, String) {
        let p = a.period * 1000;
        let n = a.evaluation_periods;
        let m = a.datapoints_to_alarm.unwrap_or(n);
        let end = now.div_euclid(p) * p;
        let start = end - n * p;
        let metric = self.metric(&a.region, &a.namespace, &a.metric_name, &a.dimensions);
        let periods = metric
            .map(|x| x.periods(start, end, p, a.unit.as_deref()))
            .unwrap_or_default();
        let values: Vec<(i64, Option<f64>)> = (0..n)
            .map(|i| {
                let t = start + i * p;
                (t, periods.get(&t).and_then(|s| s.get(&a.statistic)))
            })
            .collect();
        let present: Vec<(i64, f64)> = values
            .iter()
            .filter_map(|(t, v)| Some((*t, (*v)?)))
            .collect();
        let data = serde_json::json!({
            "version": "1.0",
            "queryDate": Timestamp(now).iso(),
            "startDate": Timestamp(start).iso(),
            "statistic": a.statistic,
            "period": a.period,
            "recentDatapoints": present.iter().rev().map(|(_, v)| v).collect::<Vec<_>>(),
            "threshold": a.threshold,
            "evaluatedDatapoints": present.iter().rev().map(|(t, v)| serde_json::json!({"timestamp": Timestamp(*t).iso(), "value": v})).collect::<Vec<_>>(),
        })
        .to_string();
        if present.is_empty() {
            return match a.treat_missing.as_str() {
                "ignore" => (None, String::new(), data),
                "breaching" if m <= n => (
                    Some("ALARM".into()),
                    format!(
                        "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [Breaching]."
                    ),
                    data,
                ),
                "notBreaching" => (
                    Some("OK".into()),
                    format!(
                        "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [NonBreaching]."
                    ),
                    data,
                ),
                _ => (
                    Some("INSUFFICIENT_DATA".into()),
                    format!("Insufficient Data: {n} datapoints were unknown."),
                    data,
                ),
            };
        }
        let missing_count = values.len() - present.len();
        let breaching_present = present.iter().filter(|(_, v)| a.breaches(*v)).count();
        let breaching = breaching_present
            + if a.treat_missing == "breaching" {
                missing_count
            } else {
                0
            };
        let shown: Vec<String> = present
            .iter()
            .rev()
            .map(|(t, v)| format!("{v} ({})", Timestamp(*t).iso()))
            .collect();
        if breaching as i64 >= m {
            (
                Some("ALARM".into()),
                format!(
                    "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] {} the threshold ({}) (minimum {m} datapoints for OK -> ALARM transition).",
                    shown.join(", "),
                    if a.comparison.starts_with("Greater") {
                        "were greater than"
                    } else {
                        "were less than"
                    },
                    a.threshold
                ),
                data,
            )
        } else {
            (
                Some("OK".into()),
                format!(
                    "Threshold Crossed: {} out of the last {n} datapoints [{}] {} the threshold ({}) (minimum {m} datapoints for ALARM -> OK transition).",
                    n as usize - breaching,
                    shown.join(", "),
                    if a.comparison.starts_with("Greater") {
                        "were not greater than"
                    } else {
                        "were not less than"
                    },
                    a.threshold
                ),
                data,
            )
        }
    }

    /// Re-evaluates the composite alarms of a region from the states of the alarms
    /// their rules name (a rule naming an alarm that does not exist sees no state).
    fn evaluate_composites(&mut self, region: &str, now: i64) {
        // Composite alarms may watch composite alarms: a few passes settle chains.
        for _ in 0..4 {
            let mut changed = false;
            let ids = self
                .alarms
                .ids_where(|a| a.is_composite() && a.region == region);
            for id in ids {
                let Some(a) = self.alarms.get(&id).cloned() else {
                    continue;
                };
                let Some(Ok(rule)) = a.rule.as_deref().map(Rule::parse) else {
                    continue;
                };
                let state_of = |name: &str| self.alarm(region, name).map(|x| x.state.clone());
                let state = if rule.eval(&state_of) { "ALARM" } else { "OK" };
                if state != a.state {
                    let mut watched = Vec::new();
                    rule.alarms(&mut watched);
                    let reason = format!(
                        "arn:aws:cloudwatch:{region}:{}:alarm rule evaluated to {}; watched alarms: {}",
                        self.account,
                        state == "ALARM",
                        watched.join(", ")
                    );
                    self.change_state(&id, state, reason, None, now);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Datum, Stats};
    use super::*;

    const T0: i64 = 1_700_000_040_000;

    fn env(now: i64) -> Env {
        Env::new("us-east-1", Timestamp(now)).with_action("PutMetricAlarm")
    }

    fn alarm(name: &str, n: i64, m: Option<i64>, treat: &str) -> MetricAlarmInput {
        MetricAlarmInput {
            name: name.into(),
            namespace: Some("App".into()),
            metric_name: Some("Errors".into()),
            statistic: Some("Sum".into()),
            period: Some(60),
            threshold: Some(5.0),
            comparison: Some("GreaterThanThreshold".into()),
            evaluation_periods: Some(n),
            datapoints_to_alarm: m,
            treat_missing: Some(treat.into()),
            ..Default::default()
        }
    }

    fn put(w: &mut World, t: i64, v: f64) {
        let e = Env::new("us-east-1", Timestamp(t)).with_action("PutMetricData");
        w.put_metric_data(
            &e,
            "App",
            vec![Datum {
                name: "Errors".into(),
                dimensions: vec![],
                timestamp: Some(t),
                stats: vec![Stats::one(v)],
                unit: None,
                resolution: None,
            }],
        )
        .unwrap();
    }

    fn state(w: &World, name: &str) -> String {
        w.alarm("us-east-1", name).unwrap().state.clone()
    }

    #[test]
    fn m_of_n_needs_m_breaching_periods() {
        let mut w = World::new("000000000000");
        w.put_metric_alarm(&env(T0), alarm("a", 3, Some(2), "missing"))
            .unwrap();
        let base = T0 - T0 % 60_000;
        put(&mut w, base - 180_000 + 1, 10.0);
        put(&mut w, base - 120_000 + 1, 1.0);
        put(&mut w, base - 60_000 + 1, 1.0);
        w.evaluate_alarms(Timestamp(base + 1));
        assert_eq!(state(&w, "a"), "OK");
        put(&mut w, base - 60_000 + 2, 10.0);
        w.evaluate_alarms(Timestamp(base + 60_000));
        // The window moved: [base-120k, base+0) holds 1 and 11 → one breach of three… plus
        // the newest period [base, base+60k) is empty; two breaching needed.
        assert_eq!(state(&w, "a"), "OK");
        put(&mut w, base + 1, 9.0);
        w.evaluate_alarms(Timestamp(base + 120_000));
        assert_eq!(state(&w, "a"), "ALARM");
        let h = &w.alarm("us-east-1", "a").unwrap().history;
        assert!(
            h.iter()
                .any(|x| x.summary == "Alarm updated from OK to ALARM")
        );
    }

    #[test]
    fn every_treat_missing_data_mode_decides_an_empty_window() {
        for (mode, want) in [
            ("missing", "INSUFFICIENT_DATA"),
            ("notBreaching", "OK"),
            ("breaching", "ALARM"),
            ("ignore", "INSUFFICIENT_DATA"),
        ] {
            let mut w = World::new("000000000000");
            w.put_metric_alarm(&env(T0), alarm("a", 2, None, mode))
                .unwrap();
            w.evaluate_alarms(Timestamp(T0 + 1));
            assert_eq!(state(&w, "a"), want, "{mode}");
        }
        // ignore keeps whatever state the alarm had.
        let mut w = World::new("000000000000");
        w.put_metric_alarm(&env(T0), alarm("a", 1, None, "ignore"))
            .unwrap();
        w.set_alarm_state(&env(T0), "a", "ALARM", "test", None)
            .unwrap();
        w.evaluate_alarms(Timestamp(T0 + 1));
        assert_eq!(state(&w, "a"), "ALARM");
        // breaching counts missing periods as bad: one real breach + one missing = 2 of 2.
        let mut w = World::new("000000000000");
        w.put_metric_alarm(&env(T0), alarm("a", 2, None, "breaching"))
            .unwrap();
        let base = T0 - T0 % 60_000;
        put(&mut w, base - 60_000 + 1, 9.0);
        w.evaluate_alarms(Timestamp(base + 1));
        assert_eq!(state(&w, "a"), "ALARM");
    }

    #[test]
    fn composite_rules_parse_and_follow_their_alarms() {
        let r = Rule::parse("ALARM(a) AND NOT (OK(\"b\") OR FALSE)").unwrap();
        let st = |n: &str| {
            Some(
                if n == "a" {
                    "ALARM"
                } else {
                    "INSUFFICIENT_DATA"
                }
                .to_string(),
            )
        };
        assert!(r.eval(&st));
        for bad in ["", "ALARM a", "ALARM(a", "a AND", "MAYBE(a)", "(TRUE"] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        let mut w = World::new("000000000000");
        w.put_metric_alarm(&env(T0), alarm("a", 1, None, "missing"))
            .unwrap();
        w.put_composite_alarm(
            &env(T0),
            "c",
            "ALARM(a)",
            None,
            None,
            vec![],
            vec![],
            vec![],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(state(&w, "c"), "OK");
        w.set_alarm_state(&env(T0), "a", "ALARM", "test", None)
            .unwrap();
        assert_eq!(state(&w, "c"), "ALARM");
    }

    #[test]
    fn bad_alarms_get_aws_codes() {
        let mut w = World::new("000000000000");
        let mut a = alarm("a", 1, None, "missing");
        a.namespace = None;
        assert_eq!(
            w.put_metric_alarm(&env(T0), a).unwrap_err().code,
            "MissingParameter"
        );
        let mut a = alarm("a", 1, None, "sometimes");
        a.treat_missing = Some("sometimes".into());
        assert_eq!(
            w.put_metric_alarm(&env(T0), a).unwrap_err().code,
            "InvalidParameterValue"
        );
        let mut a = alarm("a", 2, Some(3), "missing");
        a.datapoints_to_alarm = Some(3);
        assert_eq!(
            w.put_metric_alarm(&env(T0), a).unwrap_err().code,
            "InvalidParameterValue"
        );
        let mut a = alarm("a", 1, None, "missing");
        a.alarm_actions = vec!["arn:aws:automate:us-east-1:ec2:explode".into()];
        assert_eq!(
            w.put_metric_alarm(&env(T0), a).unwrap_err().code,
            "InvalidParameterValue"
        );
        assert_eq!(
            w.set_alarm_state(&env(T0), "nope", "OK", "x", None)
                .unwrap_err()
                .code,
            "ResourceNotFound"
        );
    }
}

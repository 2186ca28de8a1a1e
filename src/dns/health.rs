//! Route 53 health-check results: what each health checker saw, how a checker decides
//! that an endpoint is healthy, and how the checkers' opinions combine.
//!
//! Sans-IO: the prober (`world::health`) sends probes through the fabric and hands each
//! outcome to [`HealthBoard::record`] with the time it was checked. The board keeps, per
//! health check and checker region, the last report and the checker's verdict, and
//! publishes the combined verdict into the DNS view's `health` map, so the next query
//! sees failover. GetHealthCheckStatus reads the reports back.
//!
//! The rules are Route 53's ("How Amazon Route 53 determines whether a health check is
//! healthy"): a checker considers an endpoint unhealthy after `FailureThreshold`
//! consecutive failed probes and healthy again after as many consecutive successes; the
//! check is healthy while more than 18% of the checkers consider it healthy; a disabled
//! check is healthy; `Inverted` turns the result around.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::Views;

pub use crate::model::route53::health::CHECKER_REGIONS;

/// The checkers' addresses as one CIDR block (GetCheckerIpRanges).
pub const CHECKER_RANGE: &str = "192.0.2.96/29";

/// The checker address of a region.
pub fn checker_addr(region: &str) -> Option<Ipv4Addr> {
    CHECKER_REGIONS
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(_, a)| *a)
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// TCP: the handshake completed.
    TcpConnected,
    /// HTTP: a response with this status (2xx and 3xx pass).
    Http(u16),
    /// HTTP_STR_MATCH: a response; whether the search string is in the first 5,120
    /// bytes of the body.
    HttpMatch { status: u16, found: bool },
    /// No answer to the SYN (a security group or network ACL dropped it, or no route).
    ConnectTimedOut,
    /// The endpoint answered with a reset: nothing listens on the port.
    Refused,
    /// Connected, but no complete response in time.
    ResponseTimedOut,
    /// The domain name did not resolve to an IPv4 address.
    Unresolvable(String),
    /// Anything else (a malformed response, a connection reset mid-response).
    Error(String),
}

impl ProbeOutcome {
    /// Whether the probe counts as a success.
    pub fn success(&self) -> bool {
        match self {
            Self::TcpConnected => true,
            Self::Http(status) => (200..400).contains(status),
            Self::HttpMatch { status, found } => (200..400).contains(status) && *found,
            _ => false,
        }
    }

    /// The `StatusReport.Status` text, in Route 53's wording.
    pub fn status_text(&self) -> String {
        match self {
            Self::TcpConnected => "Success: TCP connection established".to_owned(),
            Self::Http(status) if self.success() => {
                format!("Success: HTTP Status Code {status}, {}", reason(*status))
            }
            Self::Http(status) => {
                format!("Failure: HTTP Status Code {status}, {}", reason(*status))
            }
            Self::HttpMatch { status, found } => match (self.success(), found) {
                (true, _) => format!(
                    "Success: HTTP Status Code {status}, {}. Search string found in the response body",
                    reason(*status)
                ),
                (false, true) => {
                    format!("Failure: HTTP Status Code {status}, {}", reason(*status))
                }
                (false, false) => format!(
                    "Failure: HTTP Status Code {status}, {}. Search string not found in the response body",
                    reason(*status)
                ),
            },
            Self::ConnectTimedOut => "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall. See https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-router-firewall-rules.html".to_owned(),
            Self::Refused => "Failure: Connection refused. The endpoint did not accept the connection: nothing listens on the port.".to_owned(),
            Self::ResponseTimedOut => "Failure: Response timed out. The endpoint accepted the connection but did not answer in time.".to_owned(),
            Self::Unresolvable(name) => format!("Failure: DNS resolution failed: {name} does not resolve to an IPv4 address."),
            Self::Error(why) => format!("Failure: {why}"),
        }
    }
}

/// The reason phrase of an HTTP status (RFC 9110).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// One checker's last report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `StatusReport.Status`.
    pub status: String,
    /// `StatusReport.CheckedTime`, milliseconds since the Unix epoch.
    pub checked_ms: i64,
}

/// One `HealthCheckObservation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub region: String,
    pub ip: Ipv4Addr,
    pub report: Report,
}

/// How a check combines its checkers (from its configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRules {
    pub failure_threshold: u32,
    pub inverted: bool,
    pub disabled: bool,
    /// The checker regions that probe it.
    pub regions: Vec<String>,
}

#[derive(Clone, Debug)]
struct Checker {
    /// This checker's verdict (a new check starts healthy).
    healthy: bool,
    /// Consecutive results that disagree with `healthy`.
    streak: u32,
    last: Option<Report>,
    last_failure: Option<Report>,
}

impl Checker {
    fn new() -> Self {
        Self {
            healthy: true,
            streak: 0,
            last: None,
            last_failure: None,
        }
    }

    fn record(&mut self, success: bool, report: Report, threshold: u32) {
        if success == self.healthy {
            self.streak = 0;
        } else {
            self.streak += 1;
            if self.streak >= threshold.max(1) {
                self.healthy = success;
                self.streak = 0;
            }
        }
        if !success {
            self.last_failure = Some(report.clone());
        }
        self.last = Some(report);
    }
}

#[derive(Clone, Debug)]
struct CheckState {
    rules: CheckRules,
    checkers: BTreeMap<String, Checker>,
}

impl CheckState {
    /// Route 53: healthy while more than 18% of the checkers say so; disabled counts
    /// as healthy; inverted turns it around.
    fn healthy(&self) -> bool {
        let raw = if self.rules.disabled {
            true
        } else {
            let total = self.checkers.len();
            let up = self.checkers.values().filter(|c| c.healthy).count();
            total == 0 || up * 100 > total * 18
        };
        raw != self.rules.inverted
    }
}

/// Every health check's results; cheap to clone. Publishes each check's verdict into
/// the DNS views it was built with (every account's: a view consults only the checks
/// its own records name, and check ids are unique).
#[derive(Clone)]
pub struct HealthBoard {
    checks: Arc<Mutex<BTreeMap<String, CheckState>>>,
    views: Views,
}

impl HealthBoard {
    /// A board that publishes into `views`.
    pub fn new(views: Views) -> Self {
        Self {
            checks: Arc::default(),
            views,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CheckState>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers check `id` or changes its rules (after UpdateHealthCheck): checkers of
    /// regions it keeps keep their verdicts.
    pub fn configure(&self, id: &str, rules: CheckRules) {
        let mut checks = self.lock();
        let state = checks.entry(id.to_owned()).or_insert_with(|| CheckState {
            rules: rules.clone(),
            checkers: BTreeMap::new(),
        });
        state.checkers.retain(|r, _| rules.regions.contains(r));
        for r in &rules.regions {
            state.checkers.entry(r.clone()).or_insert_with(Checker::new);
        }
        state.rules = rules;
        let healthy = state.healthy();
        self.publish(id, Some(healthy));
    }

    /// Records one probe of check `id` by the checker of `region`, checked at
    /// `checked_ms`. Unknown checks and regions are ignored (the check was just deleted).
    pub fn record(&self, id: &str, region: &str, outcome: &ProbeOutcome, checked_ms: i64) {
        let mut checks = self.lock();
        let Some(state) = checks.get_mut(id) else {
            return;
        };
        let threshold = state.rules.failure_threshold;
        let Some(checker) = state.checkers.get_mut(region) else {
            return;
        };
        let report = Report {
            status: outcome.status_text(),
            checked_ms,
        };
        checker.record(outcome.success(), report, threshold);
        let healthy = state.healthy();
        self.publish(id, Some(healthy));
    }

    /// Forgets check `id` (deleted): records naming it count as healthy again.
    pub fn remove(&self, id: &str) {
        let mut checks = self.lock();
        checks.remove(id);
        self.publish(id, None);
    }

    /// The ids the board knows.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The combined verdict of check `id`, if it is registered.
    pub fn healthy(&self, id: &str) -> Option<bool> {
        self.lock().get(id).map(CheckState::healthy)
    }

    /// The last report of every checker that has probed check `id` (GetHealthCheckStatus).
    pub fn observations(&self, id: &str) -> Vec<Observation> {
        self.collect(id, |c| c.last.clone())
    }

    /// The last failure each checker saw (GetHealthCheckLastFailureReason).
    pub fn last_failures(&self, id: &str) -> Vec<Observation> {
        self.collect(id, |c| c.last_failure.clone())
    }

    fn collect(&self, id: &str, pick: impl Fn(&Checker) -> Option<Report>) -> Vec<Observation> {
        let checks = self.lock();
        let Some(state) = checks.get(id) else {
            return Vec::new();
        };
        state
            .checkers
            .iter()
            .filter_map(|(region, c)| {
                Some(Observation {
                    region: region.clone(),
                    ip: checker_addr(region)?,
                    report: pick(c)?,
                })
            })
            .collect()
    }

    /// Writes a verdict into the DNS view (called with the board locked, so the view
    /// always ends up with the latest verdict). `None` removes it.
    fn publish(&self, id: &str, healthy: Option<bool>) {
        for view in self.views.all() {
            let mut view = view.write().unwrap_or_else(|e| e.into_inner());
            match healthy {
                Some(h) => {
                    if view.health.get(id) != Some(&h) {
                        view.health.insert(id.to_owned(), h);
                    }
                }
                None => {
                    view.health.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SharedView;
    use super::*;

    fn rules(threshold: u32, regions: usize) -> CheckRules {
        CheckRules {
            failure_threshold: threshold,
            inverted: false,
            disabled: false,
            regions: CHECKER_REGIONS
                .iter()
                .take(regions)
                .map(|(r, _)| (*r).to_owned())
                .collect(),
        }
    }

    fn round(board: &HealthBoard, id: &str, outcome: &ProbeOutcome, regions: usize, t: i64) {
        for (r, _) in CHECKER_REGIONS.iter().take(regions) {
            board.record(id, r, outcome, t);
        }
    }

    #[test]
    fn a_check_turns_unhealthy_after_failure_threshold_consecutive_failures() {
        let view = SharedView::default();
        let board = HealthBoard::new(Views::single(view.clone()));
        board.configure("hc", rules(3, 8));
        assert_eq!(view.read().expect("view").health.get("hc"), Some(&true));
        for t in 0..2 {
            round(&board, "hc", &ProbeOutcome::ConnectTimedOut, 8, t);
            assert_eq!(board.healthy("hc"), Some(true), "after {} failures", t + 1);
        }
        round(&board, "hc", &ProbeOutcome::ConnectTimedOut, 8, 2);
        assert_eq!(board.healthy("hc"), Some(false));
        assert_eq!(view.read().expect("view").health.get("hc"), Some(&false));
        // A success resets nothing until it, too, is repeated threshold times.
        round(&board, "hc", &ProbeOutcome::Http(200), 8, 3);
        round(&board, "hc", &ProbeOutcome::Http(200), 8, 4);
        assert_eq!(board.healthy("hc"), Some(false));
        round(&board, "hc", &ProbeOutcome::Http(200), 8, 5);
        assert_eq!(board.healthy("hc"), Some(true));
    }

    #[test]
    fn more_than_18_percent_of_checkers_keep_a_check_healthy() {
        let board = HealthBoard::new(Views::default());
        board.configure("hc", rules(1, 8));
        round(&board, "hc", &ProbeOutcome::Refused, 8, 0);
        assert_eq!(board.healthy("hc"), Some(false));
        // One of eight (12.5%) is not enough; two (25%) are.
        board.record("hc", "us-east-1", &ProbeOutcome::Http(200), 1);
        assert_eq!(board.healthy("hc"), Some(false));
        board.record("hc", "us-west-1", &ProbeOutcome::Http(301), 1);
        assert_eq!(board.healthy("hc"), Some(true));
    }

    #[test]
    fn inverted_and_disabled_checks() {
        let board = HealthBoard::new(Views::default());
        let mut r = rules(1, 3);
        r.inverted = true;
        board.configure("hc", r.clone());
        assert_eq!(board.healthy("hc"), Some(false));
        round(&board, "hc", &ProbeOutcome::ConnectTimedOut, 3, 0);
        assert_eq!(board.healthy("hc"), Some(true));
        r.inverted = false;
        r.disabled = true;
        board.configure("hc", r);
        assert_eq!(board.healthy("hc"), Some(true));
    }

    #[test]
    fn status_texts_follow_route53() {
        assert_eq!(
            ProbeOutcome::Http(200).status_text(),
            "Success: HTTP Status Code 200, OK"
        );
        assert_eq!(
            ProbeOutcome::Http(503).status_text(),
            "Failure: HTTP Status Code 503, Service Unavailable"
        );
        assert!(
            ProbeOutcome::ConnectTimedOut
                .status_text()
                .starts_with("Failure: Connection timed out.")
        );
        assert!(!ProbeOutcome::Http(404).success());
        assert!(ProbeOutcome::Http(302).success());
        assert!(
            !ProbeOutcome::HttpMatch {
                status: 200,
                found: false
            }
            .success()
        );
    }

    #[test]
    fn observations_report_each_checker_and_removal_clears_the_view() {
        let view = SharedView::default();
        let board = HealthBoard::new(Views::single(view.clone()));
        board.configure("hc", rules(1, 3));
        assert!(board.observations("hc").is_empty());
        board.record("hc", "us-west-1", &ProbeOutcome::Http(200), 42);
        let obs = board.observations("hc");
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].ip, Ipv4Addr::new(192, 0, 2, 97));
        assert_eq!(obs[0].report.checked_ms, 42);
        board.remove("hc");
        assert!(!view.read().expect("view").health.contains_key("hc"));
    }
}

//! Route 53 health checks: the rules of CreateHealthCheck (CallerReference
//! idempotency, `HealthCheckConfig` validation), UpdateHealthCheck (version check) and
//! DeleteHealthCheck, stored as one row per check (region `"global"`).
//!
//! Only the configuration lives here. Whether a check is healthy is runtime state: the
//! checkers probe the endpoint through the fabric (`world::health`) and record what they
//! see in a [`crate::dns::health::HealthBoard`], which the DNS view and
//! GetHealthCheckStatus read.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{bare_id, invalid_input};
use crate::model::{ApiError, ApiResult, Env, Resource, Timestamp, World};

/// The health checkers, one per Route 53 checker region (botocore's
/// `HealthCheckRegion`), on the simulated internet. A security group or network ACL
/// must let them in for a check to pass, as AWS's checker ranges must be allowed.
pub const CHECKER_REGIONS: &[(&str, Ipv4Addr)] = &[
    ("us-east-1", Ipv4Addr::new(192, 0, 2, 96)),
    ("us-west-1", Ipv4Addr::new(192, 0, 2, 97)),
    ("us-west-2", Ipv4Addr::new(192, 0, 2, 98)),
    ("eu-west-1", Ipv4Addr::new(192, 0, 2, 99)),
    ("ap-southeast-1", Ipv4Addr::new(192, 0, 2, 100)),
    ("ap-southeast-2", Ipv4Addr::new(192, 0, 2, 101)),
    ("ap-northeast-1", Ipv4Addr::new(192, 0, 2, 102)),
    ("sa-east-1", Ipv4Addr::new(192, 0, 2, 103)),
];

/// The probe types vpclab runs. `HTTPS` is accepted and probed as a TCP connection
/// (the simulated internet speaks no TLS); `HTTPS_STR_MATCH`, calculated, CloudWatch
/// and recovery-control types answer `NotImplemented`. A `ResourcePath` or
/// `SearchString` a type does not use is stored and ignored.
pub const SUPPORTED_TYPES: &[&str] = &["HTTP", "HTTPS", "TCP", "HTTP_STR_MATCH"];
/// Every type Route 53 knows (botocore's `HealthCheckType`).
pub const ALL_TYPES: &[&str] = &[
    "HTTP",
    "HTTPS",
    "HTTP_STR_MATCH",
    "HTTPS_STR_MATCH",
    "TCP",
    "CALCULATED",
    "CLOUDWATCH_METRIC",
    "RECOVERY_CONTROL",
];

/// A health check's configuration (botocore's `HealthCheckConfig`, the part vpclab
/// emulates).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub ip_address: Option<Ipv4Addr>,
    pub port: Option<u16>,
    /// `HTTP`, `HTTPS`, `TCP` or `HTTP_STR_MATCH`.
    pub check_type: String,
    pub resource_path: Option<String>,
    pub fqdn: Option<String>,
    pub search_string: Option<String>,
    /// 10 or 30 seconds (fixed at creation, as on AWS).
    pub request_interval: u32,
    /// 1 to 10 consecutive results before a checker changes its mind.
    pub failure_threshold: u32,
    pub measure_latency: bool,
    pub inverted: bool,
    pub disabled: bool,
    pub enable_sni: Option<bool>,
    /// Checker regions (at least three); empty means all of them.
    pub regions: Vec<String>,
}

impl HealthCheckConfig {
    /// The port probed: the configured one, else 80 for HTTP and 443 for HTTPS.
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.check_type.starts_with("HTTPS") {
                443
            } else {
                80
            })
    }

    /// The regions whose checkers probe this endpoint.
    pub fn effective_regions(&self) -> Vec<String> {
        if self.regions.is_empty() {
            CHECKER_REGIONS
                .iter()
                .map(|(r, _)| (*r).to_owned())
                .collect()
        } else {
            self.regions.clone()
        }
    }
}

/// A Route 53 health check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthCheck {
    /// UUID-shaped, as Route 53's.
    pub id: String,
    pub caller_reference: String,
    pub config: HealthCheckConfig,
    /// `HealthCheckVersion`: starts at 1, incremented by every update.
    pub version: u64,
    pub created: Timestamp,
}

impl Resource for HealthCheck {
    const KIND: &'static str = "route53_health_check";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        "global"
    }
}

/// `NoSuchHealthCheck` (404).
pub fn no_such_health_check(id: &str) -> ApiError {
    ApiError::new(
        "NoSuchHealthCheck",
        format!("A health check with id {id} does not exist."),
    )
    .with_status(404)
}

/// The fields UpdateHealthCheck may change (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct HealthCheckUpdate {
    pub version: Option<u64>,
    pub ip_address: Option<Ipv4Addr>,
    pub port: Option<u16>,
    pub resource_path: Option<String>,
    pub fqdn: Option<String>,
    pub search_string: Option<String>,
    pub failure_threshold: Option<u32>,
    pub inverted: Option<bool>,
    pub disabled: Option<bool>,
    pub enable_sni: Option<bool>,
    pub regions: Option<Vec<String>>,
    /// `ResetElements`: `ResourcePath`, `FullyQualifiedDomainName`, `Regions`.
    pub reset: Vec<String>,
}

/// Route 53 health checkers are on the internet: they cannot reach private, loopback,
/// link-local, multicast or otherwise non-routable addresses, and Route 53 refuses them.
fn checkable(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || o[0] >= 240)
}

/// Validates a configuration as CreateHealthCheck and UpdateHealthCheck do.
pub fn validate_config(c: &HealthCheckConfig) -> ApiResult<()> {
    if !ALL_TYPES.contains(&c.check_type.as_str()) {
        return Err(invalid_input(format!(
            "Invalid XML ; cvc-enumeration-valid: Value '{}' is not facet-valid with respect to enumeration '{ALL_TYPES:?}'.",
            c.check_type
        )));
    }
    if !SUPPORTED_TYPES.contains(&c.check_type.as_str()) {
        return Err(ApiError::new(
            "NotImplemented",
            format!(
                "vpclab emulates HTTP, HTTPS (probed as TCP), HTTP_STR_MATCH and TCP health checks, not {}.",
                c.check_type
            ),
        )
        .with_status(501));
    }
    if c.ip_address.is_none() && c.fqdn.is_none() {
        return Err(invalid_input(
            "Invalid parameter : A health check must specify either IPAddress or FullyQualifiedDomainName.",
        ));
    }
    if let Some(ip) = c.ip_address
        && !checkable(ip)
    {
        return Err(invalid_input(format!(
            "Invalid parameter : IP address {ip} is not a valid health check target: Route 53 health checkers cannot reach private, local, non-routable or multicast addresses."
        )));
    }
    if c.check_type == "TCP" && c.port.is_none() {
        return Err(invalid_input(
            "Invalid parameter : A TCP health check must specify a Port.",
        ));
    }
    if c.port == Some(0) {
        return Err(invalid_input(
            "1 validation error detected: Value '0' at 'healthCheckConfig.port' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    if c.check_type.ends_with("STR_MATCH") && c.search_string.as_deref().is_none_or(str::is_empty) {
        return Err(invalid_input(
            "Invalid parameter : A string-matching health check must specify a SearchString.",
        ));
    }
    if let Some(p) = &c.resource_path
        && p.len() > 255
    {
        return Err(invalid_input(
            "1 validation error detected: Value at 'healthCheckConfig.resourcePath' failed to satisfy constraint: Member must have length less than or equal to 255",
        ));
    }
    if let Some(f) = &c.fqdn
        && (f.is_empty() || f.len() > 255)
    {
        return Err(invalid_input(
            "Invalid parameter : FullyQualifiedDomainName is not a valid domain name.",
        ));
    }
    if c.request_interval != 10 && c.request_interval != 30 {
        return Err(invalid_input(format!(
            "Invalid parameter : RequestInterval must be either 10 or 30 seconds, not {}.",
            c.request_interval
        )));
    }
    if !(1..=10).contains(&c.failure_threshold) {
        return Err(invalid_input(format!(
            "1 validation error detected: Value '{}' at 'healthCheckConfig.failureThreshold' failed to satisfy constraint: Member must have value between 1 and 10",
            c.failure_threshold
        )));
    }
    if !c.regions.is_empty() {
        if c.regions.len() < 3 {
            return Err(invalid_input(
                "1 validation error detected: Value at 'healthCheckConfig.regions' failed to satisfy constraint: Member must have length greater than or equal to 3",
            ));
        }
        for r in &c.regions {
            if !CHECKER_REGIONS.iter().any(|(name, _)| name == r) {
                return Err(invalid_input(format!(
                    "Invalid XML ; cvc-enumeration-valid: Value '{r}' is not facet-valid with respect to the health checker regions."
                )));
            }
        }
    }
    Ok(())
}

impl World {
    /// A UUID-shaped id from the world's seeded allocator, unique in this world.
    fn alloc_health_check_id(&mut self) -> String {
        loop {
            let (a, b) = (self.alloc_bits(), self.alloc_bits());
            let id = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            );
            if !self.health_checks.contains(&id) {
                return id;
            }
        }
    }

    /// CreateHealthCheck. The same CallerReference with the same configuration returns
    /// the existing check (the request is idempotent); with another configuration it is
    /// `HealthCheckAlreadyExists`. Returns the check and whether it was created now.
    pub fn create_health_check(
        &mut self,
        env: &Env,
        caller_reference: &str,
        config: HealthCheckConfig,
    ) -> ApiResult<(HealthCheck, bool)> {
        if caller_reference.is_empty() || caller_reference.len() > 64 {
            return Err(invalid_input(
                "1 validation error detected: Value at 'callerReference' failed to satisfy constraint: Member must have length between 1 and 64",
            ));
        }
        validate_config(&config)?;
        if let Some(existing) = self
            .health_checks
            .iter()
            .find(|h| h.caller_reference == caller_reference)
        {
            if existing.config == config {
                return Ok((existing.clone(), false));
            }
            return Err(ApiError::new(
                "HealthCheckAlreadyExists",
                format!(
                    "A health check with the caller reference {caller_reference} already exists, with a different configuration."
                ),
            )
            .with_status(409));
        }
        let check = HealthCheck {
            id: self.alloc_health_check_id(),
            caller_reference: caller_reference.to_owned(),
            config,
            version: 1,
            created: env.now,
        };
        self.health_checks.insert(check.clone());
        Ok((check, true))
    }

    /// A health check by id.
    pub fn health_check(&self, id: &str) -> ApiResult<&HealthCheck> {
        let id = bare_id(id, "/healthcheck/");
        self.health_checks
            .get(id)
            .ok_or_else(|| no_such_health_check(id))
    }

    /// DeleteHealthCheck. As on AWS, a check that record sets still name may be
    /// deleted ("Route 53 does not prevent you from deleting a health check even if the
    /// health check is associated with one or more resource record sets"); those records
    /// then count as healthy.
    pub fn delete_health_check(&mut self, id: &str) -> ApiResult<()> {
        let id = self.health_check(id)?.id.clone();
        self.health_checks.remove(&id);
        Ok(())
    }

    /// UpdateHealthCheck: `HealthCheckVersionMismatch` when the given version is not the
    /// current one; the version is incremented.
    pub fn update_health_check(
        &mut self,
        id: &str,
        update: HealthCheckUpdate,
    ) -> ApiResult<HealthCheck> {
        let mut check = self.health_check(id)?.clone();
        if let Some(v) = update.version
            && v != check.version
        {
            return Err(ApiError::new(
                "HealthCheckVersionMismatch",
                format!(
                    "The value of HealthCheckVersion in the request ({v}) doesn't match the value of HealthCheckVersion in the health check ({}).",
                    check.version
                ),
            )
            .with_status(409));
        }
        let c = &mut check.config;
        for element in &update.reset {
            match element.as_str() {
                "ResourcePath" => c.resource_path = None,
                "FullyQualifiedDomainName" => c.fqdn = None,
                "Regions" => c.regions.clear(),
                "ChildHealthChecks" => {}
                other => {
                    return Err(invalid_input(format!(
                        "Invalid XML ; cvc-enumeration-valid: Value '{other}' is not a resettable element."
                    )));
                }
            }
        }
        if update.ip_address.is_some() {
            c.ip_address = update.ip_address;
        }
        if update.port.is_some() {
            c.port = update.port;
        }
        if update.resource_path.is_some() {
            c.resource_path = update.resource_path;
        }
        if update.fqdn.is_some() {
            c.fqdn = update.fqdn;
        }
        if update.search_string.is_some() {
            c.search_string = update.search_string;
        }
        if let Some(t) = update.failure_threshold {
            c.failure_threshold = t;
        }
        if let Some(b) = update.inverted {
            c.inverted = b;
        }
        if let Some(b) = update.disabled {
            c.disabled = b;
        }
        if update.enable_sni.is_some() {
            c.enable_sni = update.enable_sni;
        }
        if let Some(r) = update.regions {
            c.regions = r;
        }
        validate_config(c)?;
        check.version += 1;
        self.health_checks.insert(check.clone());
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    fn http(ip: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            ip_address: Some(ip.parse().expect("ip")),
            check_type: "HTTP".into(),
            request_interval: 30,
            failure_threshold: 3,
            ..HealthCheckConfig::default()
        }
    }

    #[test]
    fn the_same_caller_reference_returns_the_same_check_unless_the_config_differs() {
        let mut w = World::new("000000000000");
        let (a, created) = w
            .create_health_check(&env(), "ref-1", http("198.18.0.7"))
            .expect("create");
        assert!(created);
        assert_eq!(a.id.len(), 36);
        let (b, created) = w
            .create_health_check(&env(), "ref-1", http("198.18.0.7"))
            .expect("idempotent");
        assert!(!created);
        assert_eq!(a.id, b.id);
        let err = w
            .create_health_check(&env(), "ref-1", http("198.18.0.8"))
            .expect_err("different config");
        assert_eq!(err.code, "HealthCheckAlreadyExists");
        assert_eq!(err.status, 409);
    }

    #[test]
    fn private_addresses_intervals_and_thresholds_are_validated() {
        let mut w = World::new("000000000000");
        let err = w
            .create_health_check(&env(), "r", http("10.0.1.5"))
            .expect_err("private");
        assert_eq!(err.code, "InvalidInput");
        let mut c = http("198.18.0.7");
        c.request_interval = 20;
        assert_eq!(
            validate_config(&c).expect_err("interval").code,
            "InvalidInput"
        );
        let mut c = http("198.18.0.7");
        c.failure_threshold = 11;
        assert_eq!(
            validate_config(&c).expect_err("threshold").code,
            "InvalidInput"
        );
        let mut c = http("198.18.0.7");
        c.check_type = "TCP".into();
        assert_eq!(
            validate_config(&c).expect_err("tcp port").code,
            "InvalidInput"
        );
        c.port = Some(22);
        validate_config(&c).expect("tcp with a port");
        let mut c = http("198.18.0.7");
        c.check_type = "CALCULATED".into();
        assert_eq!(validate_config(&c).expect_err("calculated").status, 501);
    }

    #[test]
    fn update_needs_the_current_version_and_increments_it() {
        let mut w = World::new("000000000000");
        let (hc, _) = w
            .create_health_check(&env(), "r", http("198.18.0.7"))
            .expect("create");
        let updated = w
            .update_health_check(
                &hc.id,
                HealthCheckUpdate {
                    version: Some(1),
                    port: Some(8080),
                    ..HealthCheckUpdate::default()
                },
            )
            .expect("update");
        assert_eq!(updated.version, 2);
        assert_eq!(updated.config.port, Some(8080));
        let err = w
            .update_health_check(
                &hc.id,
                HealthCheckUpdate {
                    version: Some(1),
                    ..HealthCheckUpdate::default()
                },
            )
            .expect_err("stale version");
        assert_eq!(err.code, "HealthCheckVersionMismatch");
        w.delete_health_check(&hc.id).expect("delete");
        assert_eq!(
            w.health_check(&hc.id).expect_err("gone").code,
            "NoSuchHealthCheck"
        );
    }
}

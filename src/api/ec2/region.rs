//! Region and account actions: DescribeRegions, DescribeAvailabilityZones,
//! DescribeAccountAttributes.

use crate::api::Call;
use crate::api::xml::Xml;
use crate::model::filter::wildcard;
use crate::model::region::REGIONS;
use crate::model::{ApiError, ApiResult, Filter};

use super::Handler;

pub const ACTIONS: &[(&str, Handler)] = &[
    ("DescribeRegions", describe_regions),
    ("DescribeAvailabilityZones", describe_availability_zones),
    ("DescribeAccountAttributes", describe_account_attributes),
];

/// Applies filters to a row given as (name, values) pairs; unknown names are errors.
fn matches(filters: &[Filter], fields: &[(&str, String)]) -> ApiResult<bool> {
    for f in filters {
        let Some((_, have)) = fields.iter().find(|(n, _)| *n == f.name) else {
            return Err(ApiError::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        };
        if !f.values.iter().any(|w| wildcard(w, have)) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn describe_regions(c: &mut Call) -> ApiResult<Xml> {
    let names = c.params.list("RegionName");
    let filters = c.params.filters()?;
    for n in &names {
        if !REGIONS.iter().any(|r| r.name == n) {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!("Invalid region name: {n}"),
            ));
        }
    }
    let mut rows = Vec::new();
    for r in REGIONS {
        if !names.is_empty() && !names.iter().any(|n| n == r.name) {
            continue;
        }
        let endpoint = format!("ec2.{}.amazonaws.com", r.name);
        let fields = [
            ("region-name", r.name.to_string()),
            ("endpoint", endpoint.clone()),
            ("opt-in-status", "opt-in-not-required".to_string()),
        ];
        if matches(&filters, &fields)? {
            rows.push((r.name, endpoint));
        }
    }
    let mut x = Xml::new();
    x.set("regionInfo", rows, |x, (name, endpoint)| {
        x.leaf("regionName", name)
            .leaf("regionEndpoint", endpoint)
            .leaf("optInStatus", "opt-in-not-required");
    });
    Ok(x)
}

fn describe_availability_zones(c: &mut Call) -> ApiResult<Xml> {
    let names = c.params.list("ZoneName");
    let ids = c.params.list("ZoneId");
    let filters = c.params.filters()?;
    let zones = crate::model::region::zones(&c.env.region);
    for n in &names {
        if !zones.iter().any(|z| &z.name == n) {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!("The zone '{n}' does not exist."),
            ));
        }
    }
    let mut rows = Vec::new();
    for z in zones {
        if (!names.is_empty() || !ids.is_empty())
            && !names.contains(&z.name)
            && !ids.contains(&z.zone_id)
        {
            continue;
        }
        let fields = [
            ("zone-name", z.name.clone()),
            ("zone-id", z.zone_id.clone()),
            ("state", "available".to_string()),
            ("region-name", z.region.to_string()),
            ("zone-type", "availability-zone".to_string()),
            ("group-name", z.region.to_string()),
            ("opt-in-status", "opt-in-not-required".to_string()),
        ];
        if matches(&filters, &fields)? {
            rows.push(z);
        }
    }
    let mut x = Xml::new();
    x.set("availabilityZoneInfo", rows, |x, z| {
        x.leaf("zoneName", &z.name)
            .leaf("zoneState", "available")
            .leaf("regionName", z.region)
            .leaf("zoneId", &z.zone_id)
            .leaf("groupName", z.region)
            .leaf("networkBorderGroup", z.region)
            .leaf("optInStatus", "opt-in-not-required")
            .leaf("zoneType", "availability-zone")
            .set("messageSet", std::iter::empty::<()>(), |_, _| {});
    });
    Ok(x)
}

fn describe_account_attributes(c: &mut Call) -> ApiResult<Xml> {
    let wanted = c.params.list("AttributeName");
    let w = c.read()?;
    let default_vpc = w
        .default_vpc(&c.env.region)
        .map(|v| v.id.clone())
        .unwrap_or_else(|| "none".into());
    let attrs: Vec<(&str, Vec<String>)> = vec![
        ("supported-platforms", vec!["VPC".into()]),
        ("default-vpc", vec![default_vpc]),
        ("max-instances", vec!["20".into()]),
        ("vpc-max-security-groups-per-interface", vec!["5".into()]),
        ("max-elastic-ips", vec!["5".into()]),
        ("vpc-max-elastic-ips", vec!["5".into()]),
    ];
    for n in &wanted {
        if !attrs.iter().any(|(a, _)| a == n) {
            return Err(ApiError::bad_param("attributeName", n));
        }
    }
    let rows = attrs
        .into_iter()
        .filter(|(a, _)| wanted.is_empty() || wanted.iter().any(|n| n == a));
    let mut x = Xml::new();
    x.set("accountAttributeSet", rows, |x, (name, values)| {
        x.leaf("attributeName", name)
            .set("attributeValueSet", values, |x, v| {
                x.leaf("attributeValue", v);
            });
    });
    Ok(x)
}

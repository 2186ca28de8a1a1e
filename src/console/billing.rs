//! Billing: what the account's resources would cost on AWS, so far and per day, from a
//! dated price table (the seed course's prices, plus AWS's published public IPv4 and NAT
//! gateway prices for us-east-1). Nothing is charged: this is to learn what leaving
//! things running costs.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::pages::{cell, idc};
use super::{Console, Nav, error_page, page};
use crate::model::ec2::instance::InstanceState;
use crate::model::{Timestamp, World};

/// When the price table was last checked.
pub const PRICES_DATED: &str = "2026-12-01";
/// Hours in AWS's billing month (GB-month prices are per 730 hours).
const HOURS_PER_MONTH: f64 = 730.0;

/// One row of the price table.
pub struct Price {
    pub item: &'static str,
    pub usd: f64,
    pub unit: &'static str,
    pub source: &'static str,
}

pub static PRICES: &[Price] = &[
    Price {
        item: "t2.micro instance (Linux, on demand)",
        usd: 0.013,
        unit: "per hour",
        source: "course seed",
    },
    Price {
        item: "r5.large instance (Linux, on demand)",
        usd: 0.126,
        unit: "per hour",
        source: "course seed",
    },
    Price {
        item: "EBS volume (gp2/gp3 storage)",
        usd: 0.10,
        unit: "per GB-month",
        source: "course seed",
    },
    Price {
        item: "Load balancer",
        usd: 0.0225,
        unit: "per hour",
        source: "course seed",
    },
    Price {
        item: "Public IPv4 address (Elastic IP or auto-assigned, in use or idle)",
        usd: 0.005,
        unit: "per hour",
        source: "AWS VPC pricing, since 2024-02-01",
    },
    Price {
        item: "NAT gateway",
        usd: 0.045,
        unit: "per hour (plus $0.045 per GB processed)",
        source: "AWS VPC pricing, us-east-1",
    },
];

fn price(item_prefix: &str) -> f64 {
    PRICES
        .iter()
        .find(|p| p.item.starts_with(item_prefix))
        .map(|p| p.usd)
        .unwrap_or(0.0)
}

/// One billed resource.
pub struct Line {
    pub id: String,
    pub what: String,
    /// USD per hour while it is billed now (0 when it is not billed now).
    pub hourly_now: f64,
    /// Hours billed so far, when known.
    pub hours: Option<f64>,
    /// Cost so far, when known.
    pub so_far: Option<f64>,
}

fn hours(from: Timestamp, to: Timestamp) -> f64 {
    (to.0 - from.0).max(0) as f64 / 3_600_000.0
}

/// The billed lines of a region at `now`. Instance hours count from the last start
/// (`launchTime`); earlier running periods are not recorded by the model.
pub fn lines(w: &World, region: &str, now: Timestamp) -> Vec<Line> {
    let mut out = Vec::new();
    for i in w.instances.in_region(region) {
        let v = w.instance_view(i, now);
        if v.state == InstanceState::Terminated {
            continue;
        }
        let rate = match i.instance_type.as_str() {
            "t2.micro" => Some(price("t2.micro")),
            "r5.large" => Some(price("r5.large")),
            _ => None,
        };
        let running = v.state == InstanceState::Running;
        let h = if running {
            hours(i.launch_time, now)
        } else {
            0.0
        };
        out.push(Line {
            id: i.id.clone(),
            what: match rate {
                Some(_) => format!("{} instance ({})", i.instance_type, v.state.name()),
                None => format!(
                    "{} instance ({}): not in the price table",
                    i.instance_type,
                    v.state.name()
                ),
            },
            hourly_now: if running { rate.unwrap_or(0.0) } else { 0.0 },
            hours: Some(h),
            so_far: rate.map(|r| r * h),
        });
        // The root volume is billed while the instance exists, running or stopped. An
        // instance launched before volumes were rows has its root billed here; the
        // others' volumes are billed below, one line each.
        if !w.volumes.contains(&i.root_volume_id) {
            let gib = f64::from(v.image.map(|im| im.root_volume_size_gib).unwrap_or(8));
            let vh = hours(i.created, now);
            let per_hour = gib * price("EBS") / HOURS_PER_MONTH;
            out.push(Line {
                id: i.root_volume_id.clone(),
                what: format!("EBS root volume of {}, {gib} GiB", i.id),
                hourly_now: per_hour,
                hours: Some(vh),
                so_far: Some(per_hour * vh),
            });
        }
        // An auto-assigned public address is billed while the instance runs.
        if running && v.public_ip.is_some() && v.public_ip_owner.as_deref() == Some("amazon") {
            out.push(Line {
                id: i.id.clone(),
                what: format!(
                    "public IPv4 address {} (auto-assigned)",
                    v.public_ip.map(|p| p.to_string()).unwrap_or_default()
                ),
                hourly_now: price("Public IPv4"),
                hours: Some(h),
                so_far: Some(price("Public IPv4") * h),
            });
        }
    }
    // EBS: the seed's price per GB-month for every volume, attached or not, from
    // its creation (prorated by the hour, as AWS bills volumes).
    for v in w.volumes.in_region(region) {
        let gib = f64::from(v.size_gib);
        let vh = hours(v.create_time, now);
        let per_hour = gib * price("EBS") / HOURS_PER_MONTH;
        out.push(Line {
            id: v.id.clone(),
            what: match w.instances.iter().find(|i| i.root_volume_id == v.id) {
                Some(i) => format!(
                    "EBS root volume of {}, {} {} GiB",
                    i.id, v.volume_type, v.size_gib
                ),
                None => format!(
                    "EBS {} volume, {} GiB ({})",
                    v.volume_type,
                    v.size_gib,
                    v.state_at(now).name()
                ),
            },
            hourly_now: per_hour,
            hours: Some(vh),
            so_far: Some(per_hour * vh),
        });
    }
    for a in w.addresses.in_region(region) {
        out.push(Line {
            id: a.id.clone(),
            what: format!(
                "Elastic IP {} ({})",
                a.public_ip,
                if a.association.is_some() {
                    "associated"
                } else {
                    "idle"
                }
            ),
            hourly_now: price("Public IPv4"),
            hours: None,
            so_far: None,
        });
    }
    for n in w.nat_gateways.in_region(region) {
        let end = n.delete_time.unwrap_or(now);
        let h = hours(n.create_time, end);
        let live = n.state == "pending" || n.state == "available";
        out.push(Line {
            id: n.id.clone(),
            what: format!("NAT gateway ({})", n.state),
            hourly_now: if live { price("NAT gateway") } else { 0.0 },
            hours: Some(h),
            so_far: Some(price("NAT gateway") * h),
        });
    }
    // A load balancer is billed per hour from its creation (the seed's price; no LCUs).
    for lb in w.elb_load_balancers.in_region(region) {
        let h = hours(lb.created, now);
        out.push(Line {
            id: lb.name.clone(),
            what: format!("{} load balancer ({})", lb.lb_type, lb.state),
            hourly_now: price("Load balancer"),
            hours: Some(h),
            so_far: Some(price("Load balancer") * h),
        });
    }
    out
}

fn usd(x: f64) -> String {
    format!("${x:.4}")
}

pub(crate) async fn page_route(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = match c.world(&ctx) {
        Ok(w) => w,
        Err(e) => return error_page(&ctx, &e),
    };
    let ls = lines(&w, &ctx.region, c.now());
    let so_far: f64 = ls.iter().filter_map(|l| l.so_far).sum();
    let per_day: f64 = ls.iter().map(|l| l.hourly_now * 24.0).sum();
    let body = html! {
        h1 { "Billing" }
        p { "What the resources in " (ctx.region) " would cost on AWS. Nothing is charged here: the point is to see what leaving "
            "things running costs, and to delete what you no longer need, as you would on AWS." }
        div.cards {
            div.card { h2 { "Cost so far" } p #cost-so-far { strong { (usd(so_far)) } } p { "Elastic IPs not included (their allocation time is not recorded)." } }
            div.card { h2 { "Per day at the current rate" } p #cost-per-day { strong { (usd(per_day)) } } p { "If everything keeps running as it is now." } }
        }
        h2 { "Resources" }
        @if ls.is_empty() {
            p.muted { "Nothing billable in " (ctx.region) "." }
        } @else {
            table #billing-lines {
                thead { tr {
                    th scope="col" { "Resource" } th scope="col" { "What" } th scope="col" { "Rate now (per hour)" }
                    th scope="col" { "Hours so far" } th scope="col" { "Cost so far" } th scope="col" { "Per day" }
                } }
                tbody {
                    @for l in &ls {
                        tr {
                            td { (cell(&idc(&l.id))) }
                            td { (l.what) }
                            td { (usd(l.hourly_now)) }
                            td { (l.hours.map(|h| format!("{h:.2}")).unwrap_or_else(|| "—".into())) }
                            td { (l.so_far.map(usd).unwrap_or_else(|| "—".into())) }
                            td { (usd(l.hourly_now * 24.0)) }
                        }
                    }
                }
            }
        }
        h2 #prices { "Price table" }
        p { "Prices in US dollars, dated " time datetime=(PRICES_DATED) { (PRICES_DATED) } ". Real AWS prices vary by region and change over time." }
        table {
            thead { tr { th scope="col" { "Item" } th scope="col" { "Price" } th scope="col" { "Unit" } th scope="col" { "Source" } } }
            tbody {
                @for p in PRICES {
                    tr { td { (p.item) } td { "$" (p.usd) } td { (p.unit) } td { (p.source) } }
                }
            }
        }
        p.hint { "Not billed here: data transfer, NAT gateway data processing, instance types outside the table, "
            "and running time before an instance's last start." }
    };
    page(&ctx, "Billing", Nav::Billing, body)
}

#[cfg(test)]
mod ebs_tests {
    use super::*;
    use crate::model::ec2::volume::VolumeSpec;
    use crate::model::{Env, World};

    /// A 100 GiB volume kept for a 730-hour month costs the seed's $0.10 per GB-month:
    /// $10.
    #[test]
    fn a_volume_is_billed_per_gb_month_from_its_creation() {
        let mut w = World::new("000000000000");
        let env = Env::new("us-east-1", Timestamp(0));
        let spec = VolumeSpec {
            size_gib: Some(100),
            ..VolumeSpec::default()
        };
        let v = w
            .create_volume(&env, "us-east-1a", &spec, &[])
            .expect("volume");
        let month = Timestamp((HOURS_PER_MONTH * 3_600_000.0) as i64);
        let lines = lines(&w, "us-east-1", month);
        let line = lines.iter().find(|l| l.id == v.id).expect("billed");
        assert!(
            line.what.contains("gp2") && line.what.contains("100 GiB"),
            "{}",
            line.what
        );
        let cost = line.so_far.expect("cost");
        assert!((cost - 10.0).abs() < 1e-6, "{cost}");
    }
}

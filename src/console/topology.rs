//! The VPC dashboard: a picture of the network drawn on the server as SVG, from the
//! model alone (no JavaScript drawing library).
//!
//! Each VPC is a box; inside it one column per availability zone, and in each column the
//! subnets, marked public (their route table sends traffic to an internet gateway) or
//! private, with their route table and network ACL, and the instances (addresses and
//! security groups) and NAT gateways in them. The internet gateway sits on the VPC's top
//! edge; the VPC's route tables and their routes are listed on its right. Every shape
//! links to its resource's page, so the picture is also keyboard navigation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::pages::{self, name_of, subnet_is_public};
use super::{Console, Nav, error_page, fragment, page};
use crate::model::ec2::instance::InstanceState;
use crate::model::ec2::vpc::Vpc;
use crate::model::{Timestamp, World};

const LINE: i32 = 15;
const AZ_W: i32 = 300;
const RT_W: i32 = 290;
const PAD: i32 = 12;

/// Minimal XML escaping for text and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Cuts a label to about `max` characters (the boxes have a fixed width).
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

struct Svg {
    out: String,
}

impl Svg {
    fn text(&mut self, x: i32, y: i32, class: &str, s: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x}" y="{y}" class="{class}">{}</text>"#,
            esc(s)
        );
    }
    fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, class: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="4" class="{class}"></rect>"#
        );
    }
    fn link_open(&mut self, id: &str, title: &str) {
        let href = pages::href_of(id).unwrap_or_default();
        let _ = write!(
            self.out,
            r#"<a href="{}"><title>{}</title>"#,
            esc(&href),
            esc(title)
        );
    }
    fn link_close(&mut self) {
        self.out.push_str("</a>");
    }
}

struct InstanceBox {
    id: String,
    lines: Vec<String>,
    state: &'static str,
}

struct SubnetBox {
    id: String,
    public: bool,
    lines: Vec<String>,
    items: Vec<InstanceBox>,
}

impl SubnetBox {
    fn height(&self) -> i32 {
        let header = LINE * self.lines.len() as i32 + 10;
        let items: i32 = self
            .items
            .iter()
            .map(|i| LINE * i.lines.len() as i32 + 10 + 6)
            .sum();
        header + items + 8
    }
}

fn subnet_boxes(w: &World, vpc: &Vpc, now: Timestamp) -> BTreeMap<String, Vec<SubnetBox>> {
    let mut by_az: BTreeMap<String, Vec<SubnetBox>> = BTreeMap::new();
    let mut subnets: Vec<_> = w.subnets.iter().filter(|s| s.vpc_id == vpc.id).collect();
    subnets.sort_by_key(|s| (s.cidr.network(), s.cidr.prefix_len()));
    for s in subnets {
        let public = subnet_is_public(w, &s.id);
        let name = name_of(w, &s.id);
        let rt = w
            .route_table_for_subnet(&s.id)
            .map(|t| t.id.clone())
            .unwrap_or_default();
        let acl = w
            .nacl_for_subnet(&s.id)
            .map(|t| t.id.clone())
            .unwrap_or_default();
        let mut lines = vec![
            // The id is on the next line: the first names the kind and the Name tag.
            fit(
                format!(
                    "{} subnet {name}",
                    if public { "Public" } else { "Private" }
                )
                .trim_end(),
                36,
            ),
            format!("{}  {}", s.ipv4_cidr_text(), s.id),
            format!("route table {rt}"),
            format!("network ACL {acl}"),
        ];
        lines.truncate(4);
        let mut items = Vec::new();
        for n in w
            .nat_gateways
            .iter()
            .filter(|n| n.subnet_id == s.id && n.state != "deleted")
        {
            let a = n.addresses.first();
            items.push(InstanceBox {
                id: n.id.clone(),
                state: "nat",
                lines: vec![
                    fit(&format!("NAT gateway {} ({})", n.id, n.state), 42),
                    format!(
                        "{} → {}",
                        a.map(|a| a.private_ip.to_string()).unwrap_or_default(),
                        a.and_then(|a| a.public_ip)
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "no public IP".into())
                    ),
                ],
            });
        }
        for i in w
            .instances
            .iter()
            .filter(|i| i.subnet_id == s.id && !i.expired(now))
        {
            let v = w.instance_view(i, now);
            if v.state == InstanceState::Terminated {
                continue;
            }
            let name = name_of(w, &i.id);
            let groups: Vec<String> = v.groups.iter().map(|(_, n)| n.clone()).collect();
            items.push(InstanceBox {
                id: i.id.clone(),
                state: v.state.name(),
                lines: vec![
                    fit(
                        &format!(
                            "{} {} ({})",
                            if name.is_empty() { "instance" } else { &name },
                            i.id,
                            v.state.name()
                        ),
                        42,
                    ),
                    format!(
                        "{}{}",
                        i.ipv4()
                            .map_or_else(|| "-".to_string(), |ip| ip.to_string()),
                        v.public_ip
                            .map(|p| format!("  public {p}"))
                            .unwrap_or_default()
                    ),
                    fit(&format!("SG: {}", groups.join(", ")), 42),
                ],
            });
        }
        by_az
            .entry(s.availability_zone.clone())
            .or_default()
            .push(SubnetBox {
                id: s.id.clone(),
                public,
                lines,
                items,
            });
    }
    by_az
}

/// Draws one VPC at vertical offset `y0`; returns its height.
fn draw_vpc(svg: &mut Svg, w: &World, vpc: &Vpc, y0: i32, now: Timestamp) -> i32 {
    let by_az = subnet_boxes(w, vpc, now);
    let igw = w.igw_of_vpc(&vpc.id);
    let tables: Vec<_> = w
        .route_tables
        .iter()
        .filter(|t| t.vpc_id == vpc.id)
        .collect();
    let cols = by_az.len().max(1) as i32;
    let inner_top = y0 + 40 + if igw.is_some() { 34 } else { 0 };
    let col_h = by_az
        .values()
        .map(|subs| subs.iter().map(|s| s.height() + 10).sum::<i32>())
        .max()
        .unwrap_or(40)
        + 30;
    let rt_h: i32 = tables
        .iter()
        .map(|t| LINE * (t.routes.len() as i32 + 1) + 14)
        .sum::<i32>()
        + 24;
    let body_h = col_h.max(rt_h);
    let width = cols * (AZ_W + PAD) + PAD + RT_W + PAD;
    let height = inner_top - y0 + body_h + PAD;
    // The VPC.
    let name = name_of(w, &vpc.id);
    svg.link_open(&vpc.id, &format!("VPC {}", vpc.id));
    svg.rect(4, y0, width, height, "vpc");
    svg.text(
        16,
        y0 + 20,
        "h",
        &format!(
            "VPC {}{}  {}",
            if name.is_empty() {
                String::new()
            } else {
                format!("{name} ")
            },
            vpc.id,
            vpc.cidrs
                .iter()
                .map(|c| c.cidr.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    svg.link_close();
    svg.text(
        16,
        y0 + 34,
        "m",
        if vpc.is_default { "default VPC" } else { "" },
    );
    if let Some(g) = igw {
        svg.link_open(&g.id, &format!("Internet gateway {} (attached)", g.id));
        svg.rect(16, y0 + 40, 260, 26, "igw");
        svg.text(26, y0 + 58, "b", &format!("Internet gateway {}", g.id));
        svg.link_close();
    }
    // One column per availability zone.
    for (ci, (az, subs)) in by_az.iter().enumerate() {
        let x = PAD + 4 + ci as i32 * (AZ_W + PAD);
        svg.rect(x, inner_top, AZ_W, col_h, "az");
        svg.text(
            x + 8,
            inner_top + 16,
            "m",
            &format!("Availability Zone {az}"),
        );
        let mut y = inner_top + 26;
        for s in subs {
            let h = s.height();
            svg.link_open(
                &s.id,
                &format!(
                    "{} subnet {}",
                    if s.public { "Public" } else { "Private" },
                    s.id
                ),
            );
            svg.rect(
                x + 8,
                y,
                AZ_W - 16,
                h,
                if s.public { "pub" } else { "priv" },
            );
            for (li, l) in s.lines.iter().enumerate() {
                svg.text(
                    x + 16,
                    y + 16 + li as i32 * LINE,
                    if li == 0 { "b" } else { "s" },
                    l,
                );
            }
            svg.link_close();
            let mut iy = y + LINE * s.lines.len() as i32 + 10;
            for it in &s.items {
                let ih = LINE * it.lines.len() as i32 + 10;
                svg.link_open(&it.id, &it.lines.join(" · "));
                svg.rect(x + 18, iy, AZ_W - 36, ih, &format!("inst {}", it.state));
                for (li, l) in it.lines.iter().enumerate() {
                    svg.text(
                        x + 26,
                        iy + 15 + li as i32 * LINE,
                        if li == 0 { "b" } else { "s" },
                        l,
                    );
                }
                svg.link_close();
                iy += ih + 6;
            }
            y += h + 10;
        }
    }
    // Route tables with their routes.
    let rx = PAD + 4 + cols * (AZ_W + PAD);
    svg.rect(rx, inner_top, RT_W, body_h, "az");
    svg.text(rx + 8, inner_top + 16, "m", "Route tables");
    let mut y = inner_top + 26;
    for t in &tables {
        let h = LINE * (t.routes.len() as i32 + 1) + 8;
        svg.link_open(&t.id, &format!("Route table {}", t.id));
        svg.rect(rx + 8, y, RT_W - 16, h, "rt");
        svg.text(
            rx + 14,
            y + 14,
            "b",
            &format!("{}{}", t.id, if t.is_main() { " (main)" } else { "" }),
        );
        for (ri, r) in t.routes.iter().enumerate() {
            let state = w.route_state(t, r);
            svg.text(
                rx + 14,
                y + 14 + (ri as i32 + 1) * LINE,
                if state == "blackhole" { "s bad" } else { "s" },
                &fit(
                    &format!(
                        "{} → {}{}",
                        r.destination,
                        r.target.id(),
                        if state == "blackhole" {
                            " (blackhole)"
                        } else {
                            ""
                        }
                    ),
                    40,
                ),
            );
        }
        svg.link_close();
        y += h + 6;
    }
    height
}

/// The picture of the region's VPCs (or of one VPC), as an inline SVG element.
pub(crate) fn picture_svg(w: &World, region: &str, only: Option<&str>, now: Timestamp) -> String {
    let vpcs: Vec<&Vpc> = w
        .vpcs
        .in_region(region)
        .filter(|v| only.is_none_or(|o| o == v.id))
        .collect();
    let mut svg = Svg { out: String::new() };
    let mut y = 4;
    let mut width = 600;
    for v in &vpcs {
        let cols = w
            .subnets
            .iter()
            .filter(|s| s.vpc_id == v.id)
            .map(|s| s.availability_zone.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            .max(1) as i32;
        width = width.max(cols * (AZ_W + PAD) + PAD + RT_W + PAD + 10);
        y += draw_vpc(&mut svg, w, v, y, now) + 16;
    }
    let subnets = w
        .subnets
        .in_region(region)
        .filter(|s| only.is_none_or(|o| o == s.vpc_id))
        .count();
    let summary = format!(
        "{} VPC(s) and {} subnet(s) in {region}. Each shape links to its resource.",
        vpcs.len(),
        subnets
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" role="img" aria-labelledby="topo-title topo-desc" font-family="system-ui, sans-serif"><title id="topo-title">VPC topology</title><desc id="topo-desc">{}</desc>{}</svg>"##,
        esc(&summary),
        svg.out
    )
}

/// `GET /console/vpc/picture`: the picture alone (what live updates fetch).
pub(crate) async fn picture(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = pages::query_form(q.as_deref());
    let w = match c.world(&ctx) {
        Ok(w) => w,
        Err(e) => return error_page(&ctx, &e),
    };
    fragment(PreEscaped(picture_svg(
        &w,
        &ctx.region,
        q.get("vpc"),
        c.now(),
    )))
}

/// `GET /console/vpc`: the dashboard (picture and a summary of the region).
pub(crate) async fn dashboard(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = pages::query_form(q.as_deref());
    let w = match c.world(&ctx) {
        Ok(w) => w,
        Err(e) => return error_page(&ctx, &e),
    };
    let only = q.get("vpc").filter(|v| !v.is_empty());
    let now = c.now();
    let src = match only {
        Some(v) => format!("/console/vpc/picture?vpc={v}"),
        None => "/console/vpc/picture".to_string(),
    };
    let counts = w.summary(&ctx.region);
    let body: Markup = html! {
        h1 { "VPC dashboard" }
        div.row {
            a.button href="/console/vpc/create" { "Create VPC" }
            a.button href="/console/launch" { "Launch an instance" }
            form.row method="get" action="/console/vpc" {
                div.field {
                    label for="vpc-pick" { "Show" }
                    select #vpc-pick name="vpc" {
                        option value="" { "All VPCs in " (ctx.region) }
                        @for v in w.vpcs.in_region(&ctx.region) {
                            option value=(v.id) selected[only == Some(v.id.as_str())] { (v.id) @let n = name_of(&w, &v.id); @if !n.is_empty() { " (" (n) ")" } }
                        }
                    }
                }
                button.secondary type="submit" { "Show" }
            }
        }
        p.live #live-status role="status" aria-live="polite" { "Live updates start when the page has loaded." }
        h2 { "Topology" }
        p.hint { "Green subnets are public (their route table has a route to an internet gateway); grey ones are private. "
            "Select a shape to open its resource." }
        div.topology data-live-src=(src) {
            (PreEscaped(picture_svg(&w, &ctx.region, only, now)))
        }
        h2 { "Resources in " (ctx.region) }
        table {
            thead { tr { th scope="col" { "Resource" } th scope="col" { "Count" } } }
            tbody {
                @for (slug, title, kind) in [
                    ("vpcs", "VPCs", "vpc"), ("subnets", "Subnets", "subnet"), ("route-tables", "Route tables", "route_table"),
                    ("internet-gateways", "Internet gateways", "internet_gateway"), ("nat-gateways", "NAT gateways", "nat_gateway"),
                    ("elastic-ips", "Elastic IPs", "address"), ("network-acls", "Network ACLs", "network_acl"),
                    ("security-groups", "Security groups", "security_group"), ("instances", "Instances", "instance"),
                ] {
                    tr { td { a href={ "/console/r/" (slug) } { (title) } } td { (counts.get(kind).copied().unwrap_or(0)) } }
                }
            }
        }
    };
    page(&ctx, "VPC dashboard", Nav::Vpc, body)
}

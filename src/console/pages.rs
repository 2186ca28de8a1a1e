//! Read-only pages: home (services, resource counts, resource groups by tag), one table
//! per resource kind (filterable, with ids and tags) and one detail page per resource.
//! Everything is read from the account's world snapshot; nothing here changes state.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::forms::Failed;
use super::{Console, Ctx, FormData, Nav, error_page, page};
use crate::model::ec2::instance::InstanceState;
use crate::model::ec2::route_table::RouteTarget;
use crate::model::ec2::sg::Peer;
use crate::model::{Timestamp, World};

/// One resource kind the console lists.
pub(crate) struct Kind {
    pub slug: &'static str,
    pub title: &'static str,
    pub singular: &'static str,
    pub nav: Nav,
    pub columns: &'static [&'static str],
    pub rows: fn(&World, &str, Timestamp) -> Vec<Row>,
}

/// One cell: its text (what the filter searches), and optionally a link or a badge.
pub(crate) struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub badge: bool,
    pub mono: bool,
}

pub(crate) struct Row {
    pub id: String,
    pub cells: Vec<Cell>,
}

pub(crate) fn txt(s: impl Into<String>) -> Cell {
    Cell {
        text: s.into(),
        href: None,
        badge: false,
        mono: false,
    }
}

pub(crate) fn badge_cell(s: impl Into<String>) -> Cell {
    Cell {
        badge: true,
        ..txt(s)
    }
}

/// An id, linked to its detail page when the console has one.
pub(crate) fn idc(id: &str) -> Cell {
    Cell {
        href: href_of(id),
        mono: true,
        ..txt(id)
    }
}

fn ids(list: &[String]) -> Cell {
    Cell {
        mono: true,
        ..txt(list.join(", "))
    }
}

/// The detail page of a resource id, by its AWS prefix.
pub(crate) fn href_of(id: &str) -> Option<String> {
    let slug = match id.split_once('-').map(|(p, _)| p) {
        Some("vpc") => "vpcs",
        Some("subnet") => "subnets",
        Some("rtb") => "route-tables",
        Some("igw") => "internet-gateways",
        Some("nat") => "nat-gateways",
        Some("eipalloc") => "elastic-ips",
        Some("acl") => "network-acls",
        Some("sg") => "security-groups",
        Some("eni") => "network-interfaces",
        Some("i") => "instances",
        Some("key") => "key-pairs",
        Some("ami") => "images",
        _ => return None,
    };
    Some(format!("/console/r/{slug}/{id}"))
}

pub(crate) fn cell(c: &Cell) -> Markup {
    html! {
        @if let Some(h) = &c.href {
            a href=(h) class=[c.mono.then_some("mono")] { (c.text) }
        } @else if c.badge {
            span class={ "badge " (c.text) } { (c.text) }
        } @else if c.mono {
            span.mono { (c.text) }
        } @else {
            (c.text)
        }
    }
}

pub(crate) fn name_of(w: &World, id: &str) -> String {
    w.tags_of(id)
        .and_then(|t| t.get("Name"))
        .cloned()
        .unwrap_or_default()
}

fn tags_text(w: &World, id: &str) -> String {
    w.tags_of(id)
        .map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Whether a subnet is public: its route table sends some destination to an internet
/// gateway (what AWS's console calls a public subnet).
pub(crate) fn subnet_is_public(w: &World, subnet_id: &str) -> bool {
    w.route_table_for_subnet(subnet_id).is_some_and(|rt| {
        rt.routes
            .iter()
            .any(|r| matches!(&r.target, RouteTarget::Gateway(g) if g.starts_with("igw-")))
    })
}

pub(crate) static KINDS: &[Kind] = &[
    Kind {
        slug: "vpcs",
        title: "Your VPCs",
        singular: "VPC",
        nav: Nav::Kind("vpcs"),
        columns: &["Name", "VPC ID", "State", "IPv4 CIDR", "Default", "Tags"],
        rows: |w, region, _| {
            w.vpcs
                .in_region(region)
                .map(|v| Row {
                    id: v.id.clone(),
                    cells: vec![
                        txt(name_of(w, &v.id)),
                        idc(&v.id),
                        badge_cell(&v.state),
                        txt(v
                            .cidrs
                            .iter()
                            .map(|c| c.cidr.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")),
                        txt(if v.is_default { "Yes" } else { "No" }),
                        txt(tags_text(w, &v.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "subnets",
        title: "Subnets",
        singular: "Subnet",
        nav: Nav::Kind("subnets"),
        columns: &[
            "Name",
            "Subnet ID",
            "VPC",
            "IPv4 CIDR",
            "Availability Zone",
            "Type",
            "Available IPs",
            "Tags",
        ],
        rows: |w, region, _| {
            w.subnets
                .in_region(region)
                .map(|s| Row {
                    id: s.id.clone(),
                    cells: vec![
                        txt(name_of(w, &s.id)),
                        idc(&s.id),
                        idc(&s.vpc_id),
                        txt(s.ipv4_cidr_text()),
                        txt(&s.availability_zone),
                        badge_cell(if subnet_is_public(w, &s.id) {
                            "public"
                        } else {
                            "private"
                        }),
                        txt(w.available_ip_count(s).to_string()),
                        txt(tags_text(w, &s.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "route-tables",
        title: "Route tables",
        singular: "Route table",
        nav: Nav::Kind("route-tables"),
        columns: &[
            "Name",
            "Route table ID",
            "VPC",
            "Main",
            "Explicit subnet associations",
            "Routes",
            "Tags",
        ],
        rows: |w, region, _| {
            w.route_tables
                .in_region(region)
                .map(|t| Row {
                    id: t.id.clone(),
                    cells: vec![
                        txt(name_of(w, &t.id)),
                        idc(&t.id),
                        idc(&t.vpc_id),
                        txt(if t.is_main() { "Yes" } else { "No" }),
                        ids(&t
                            .associations
                            .iter()
                            .filter_map(|a| a.subnet_id.clone())
                            .collect::<Vec<_>>()),
                        txt(t
                            .routes
                            .iter()
                            .map(|r| format!("{} → {}", r.destination, r.target.id()))
                            .collect::<Vec<_>>()
                            .join("; ")),
                        txt(tags_text(w, &t.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "internet-gateways",
        title: "Internet gateways",
        singular: "Internet gateway",
        nav: Nav::Kind("internet-gateways"),
        columns: &["Name", "Internet gateway ID", "State", "VPC", "Tags"],
        rows: |w, region, _| {
            w.internet_gateways
                .in_region(region)
                .map(|g| Row {
                    id: g.id.clone(),
                    cells: vec![
                        txt(name_of(w, &g.id)),
                        idc(&g.id),
                        badge_cell(if g.attached_vpc.is_some() {
                            "attached"
                        } else {
                            "detached"
                        }),
                        g.attached_vpc
                            .as_deref()
                            .map(idc)
                            .unwrap_or_else(|| txt("")),
                        txt(tags_text(w, &g.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "nat-gateways",
        title: "NAT gateways",
        singular: "NAT gateway",
        nav: Nav::Kind("nat-gateways"),
        columns: &[
            "Name",
            "NAT gateway ID",
            "State",
            "Connectivity",
            "Subnet",
            "VPC",
            "Public IPv4",
            "Private IPv4",
            "Tags",
        ],
        rows: |w, region, _| {
            w.nat_gateways
                .in_region(region)
                .map(|n| {
                    let a = n.addresses.first();
                    Row {
                        id: n.id.clone(),
                        cells: vec![
                            txt(name_of(w, &n.id)),
                            idc(&n.id),
                            badge_cell(&n.state),
                            txt(&n.connectivity_type),
                            idc(&n.subnet_id),
                            idc(&n.vpc_id),
                            txt(a
                                .and_then(|a| a.public_ip)
                                .map(|i| i.to_string())
                                .unwrap_or_default()),
                            txt(a.map(|a| a.private_ip.to_string()).unwrap_or_default()),
                            txt(tags_text(w, &n.id)),
                        ],
                    }
                })
                .collect()
        },
    },
    Kind {
        slug: "elastic-ips",
        title: "Elastic IP addresses",
        singular: "Elastic IP address",
        nav: Nav::Kind("elastic-ips"),
        columns: &[
            "Name",
            "Allocated IPv4 address",
            "Allocation ID",
            "Associated instance",
            "Network interface",
            "Private IP",
            "Tags",
        ],
        rows: |w, region, _| {
            w.addresses
                .in_region(region)
                .map(|a| {
                    let asn = a.association.as_ref();
                    let inst = asn.and_then(|s| w.instance_of_eni(&s.network_interface_id));
                    Row {
                        id: a.id.clone(),
                        cells: vec![
                            txt(name_of(w, &a.id)),
                            txt(a.public_ip.to_string()),
                            idc(&a.id),
                            inst.as_deref().map(idc).unwrap_or_else(|| txt("")),
                            asn.map(|s| idc(&s.network_interface_id))
                                .unwrap_or_else(|| txt("")),
                            txt(asn.map(|s| s.private_ip.to_string()).unwrap_or_default()),
                            txt(tags_text(w, &a.id)),
                        ],
                    }
                })
                .collect()
        },
    },
    Kind {
        slug: "network-acls",
        title: "Network ACLs",
        singular: "Network ACL",
        nav: Nav::Kind("network-acls"),
        columns: &[
            "Name",
            "Network ACL ID",
            "VPC",
            "Default",
            "Associated with",
            "Inbound rules",
            "Outbound rules",
            "Tags",
        ],
        rows: |w, region, _| {
            w.network_acls
                .in_region(region)
                .map(|n| Row {
                    id: n.id.clone(),
                    cells: vec![
                        txt(name_of(w, &n.id)),
                        idc(&n.id),
                        idc(&n.vpc_id),
                        txt(if n.is_default { "Yes" } else { "No" }),
                        ids(&n
                            .associations
                            .iter()
                            .map(|a| a.subnet_id.clone())
                            .collect::<Vec<_>>()),
                        txt(n.entries.iter().filter(|e| !e.egress).count().to_string()),
                        txt(n.entries.iter().filter(|e| e.egress).count().to_string()),
                        txt(tags_text(w, &n.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "security-groups",
        title: "Security groups",
        singular: "Security group",
        nav: Nav::Kind("security-groups"),
        columns: &[
            "Name",
            "Security group ID",
            "Group name",
            "VPC",
            "Description",
            "Inbound rules",
            "Outbound rules",
            "Tags",
        ],
        rows: |w, region, _| {
            w.security_groups
                .in_region(region)
                .map(|g| Row {
                    id: g.id.clone(),
                    cells: vec![
                        txt(name_of(w, &g.id)),
                        idc(&g.id),
                        txt(&g.group_name),
                        idc(&g.vpc_id),
                        txt(&g.description),
                        txt(g.rules.iter().filter(|r| !r.egress).count().to_string()),
                        txt(g.rules.iter().filter(|r| r.egress).count().to_string()),
                        txt(tags_text(w, &g.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "network-interfaces",
        title: "Network interfaces",
        singular: "Network interface",
        nav: Nav::Kind("network-interfaces"),
        columns: &[
            "Name",
            "Network interface ID",
            "Subnet",
            "VPC",
            "Type",
            "Status",
            "Private IPv4",
            "Public IPv4",
            "Security groups",
            "Instance",
        ],
        rows: |w, region, _| {
            w.network_interfaces
                .in_region(region)
                .map(|e| Row {
                    id: e.id.clone(),
                    cells: vec![
                        txt(name_of(w, &e.id)),
                        idc(&e.id),
                        idc(&e.subnet_id),
                        idc(&e.vpc_id),
                        txt(&e.interface_type),
                        badge_cell(&e.status),
                        // `-`: an interface in an IPv6-only subnet has no IPv4.
                        txt(e
                            .ipv4()
                            .map_or_else(|| "-".to_string(), |ip| ip.to_string())),
                        txt(e
                            .association
                            .as_ref()
                            .map(|a| a.public_ip.to_string())
                            .unwrap_or_default()),
                        ids(&e.groups),
                        e.attachment
                            .as_ref()
                            .map(|a| idc(&a.instance_id))
                            .unwrap_or_else(|| txt("")),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "instances",
        title: "Instances",
        singular: "Instance",
        nav: Nav::Ec2,
        columns: &[
            "Name",
            "Instance ID",
            "State",
            "Type",
            "Availability Zone",
            "Public IPv4",
            "Private IPv4",
            "Security groups",
            "Key name",
        ],
        rows: |w, region, now| {
            w.instances
                .in_region(region)
                .filter(|i| !i.expired(now))
                .map(|i| {
                    let v = w.instance_view(i, now);
                    Row {
                        id: i.id.clone(),
                        cells: vec![
                            txt(name_of(w, &i.id)),
                            idc(&i.id),
                            badge_cell(v.state.name()),
                            txt(&i.instance_type),
                            txt(&i.availability_zone),
                            txt(v.public_ip.map(|p| p.to_string()).unwrap_or_default()),
                            txt(if v.state == InstanceState::Terminated {
                                String::new()
                            } else {
                                i.ipv4()
                                    .map_or_else(|| "-".to_string(), |ip| ip.to_string())
                            }),
                            txt(v
                                .groups
                                .iter()
                                .map(|(_, n)| n.clone())
                                .collect::<Vec<_>>()
                                .join(", ")),
                            txt(i.key_name.clone().unwrap_or_default()),
                        ],
                    }
                })
                .collect()
        },
    },
    Kind {
        slug: "key-pairs",
        title: "Key pairs",
        singular: "Key pair",
        nav: Nav::Kind("key-pairs"),
        columns: &[
            "Name",
            "Key pair ID",
            "Type",
            "Fingerprint",
            "Created",
            "Tags",
        ],
        rows: |w, region, _| {
            w.key_pairs
                .in_region(region)
                .map(|k| Row {
                    id: k.id.clone(),
                    cells: vec![
                        txt(&k.name),
                        idc(&k.id),
                        txt(&k.key_type),
                        Cell {
                            mono: true,
                            ..txt(&k.fingerprint)
                        },
                        txt(k.create_time.iso()),
                        txt(tags_text(w, &k.id)),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "images",
        title: "AMIs",
        singular: "AMI",
        nav: Nav::Kind("images"),
        columns: &[
            "AMI ID",
            "AMI name",
            "Owner",
            "Architecture",
            "Root volume (GiB)",
            "Created",
        ],
        rows: |_, _, _| {
            crate::catalog::IMAGES
                .iter()
                .map(|i| Row {
                    id: i.image_id.to_string(),
                    cells: vec![
                        idc(i.image_id),
                        txt(i.name),
                        txt(i.owner_alias),
                        txt(i.architecture),
                        txt(i.root_volume_size_gib.to_string()),
                        txt(i.creation_date),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "hosted-zones",
        title: "Hosted zones",
        singular: "Hosted zone",
        nav: Nav::Route53,
        columns: &[
            "Hosted zone name",
            "Hosted zone ID",
            "Type",
            "Record count",
            "Comment",
        ],
        rows: |w, _, _| {
            w.hosted_zones
                .iter()
                .map(|z| Row {
                    id: z.id.clone(),
                    cells: vec![
                        txt(&z.name),
                        Cell {
                            href: Some(format!("/console/r/hosted-zones/{}", z.id)),
                            mono: true,
                            ..txt(&z.id)
                        },
                        txt(if z.private { "Private" } else { "Public" }),
                        txt(z.record_sets.len().to_string()),
                        txt(z.comment.clone().unwrap_or_default()),
                    ],
                })
                .collect()
        },
    },
    Kind {
        slug: "health-checks",
        title: "Health checks",
        singular: "Health check",
        nav: Nav::Route53,
        columns: &[
            "Health check ID",
            "Type",
            "Endpoint",
            "Port",
            "Path",
            "Interval (s)",
            "Failure threshold",
        ],
        rows: |w, _, _| {
            w.health_checks
                .iter()
                .map(|h| {
                    let c = &h.config;
                    Row {
                        id: h.id.clone(),
                        cells: vec![
                            Cell {
                                href: Some(format!("/console/r/health-checks/{}", h.id)),
                                mono: true,
                                ..txt(&h.id)
                            },
                            txt(&c.check_type),
                            txt(c
                                .fqdn
                                .clone()
                                .or(c.ip_address.map(|i| i.to_string()))
                                .unwrap_or_default()),
                            txt(c.effective_port().to_string()),
                            txt(c.resource_path.clone().unwrap_or_default()),
                            txt(c.request_interval.to_string()),
                            txt(c.failure_threshold.to_string()),
                        ],
                    }
                })
                .collect()
        },
    },
];

pub(crate) fn kind(slug: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.slug == slug)
}

/// The console's home: services, what this region holds, resource groups by tag.
pub(crate) async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = match c.world(&ctx) {
        Ok(w) => w,
        Err(e) => return error_page(&ctx, &e),
    };
    let now = c.now();
    let counts: Vec<(&Kind, usize)> = KINDS
        .iter()
        .filter(|k| k.slug != "images")
        .map(|k| (k, (k.rows)(&w, &ctx.region, now).len()))
        .collect();
    // Resource groups: every tag key=value (but Name) with the resources carrying it.
    let mut groups: std::collections::BTreeMap<(String, String), Vec<String>> =
        std::collections::BTreeMap::new();
    for t in w.tags.in_region(&ctx.region) {
        for (k, v) in &t.tags {
            if k != "Name" {
                groups
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .push(t.id.clone());
            }
        }
    }
    let body = html! {
        h1 { "Console home" }
        p { "Your private AWS, offline. Everything here is the same state the "
            code { "aws" } " CLI sees at this endpoint: create a VPC on either side and it appears on the other." }
        section aria-labelledby="services-h" {
            h2 #services-h { "Services" }
            div.cards {
                div.card { h3 { a href="/console/vpc" { "VPC" } } p { "Networks, subnets, routes, gateways, network ACLs, security groups; the topology picture." } }
                div.card { h3 { a href="/console/r/instances" { "EC2" } } p { "Instances you can SSH into, key pairs, AMIs, Elastic IPs." } p { a href="/console/launch" { "Launch an instance" } } }
                div.card { h3 { a href="/console/r/hosted-zones" { "Route 53" } } p { "Hosted zones, records and health checks, answered by the world's DNS." } }
                div.card { h3 { a href="/console/reach" { "Reachability" } } p { "Why can't A reach B? The path a packet takes, and the rule that stops it." } }
                div.card { h3 { a href="/console/billing" { "Billing" } } p { "What these resources would cost on AWS." } }
            }
            details {
                summary { "Other AWS services (not emulated yet)" }
                ul {
                    @for s in crate::api::services::SERVICES.iter().filter(|s| s.handler.is_none()) {
                        li { (s.title) }
                    }
                }
            }
        }
        @if let Some(proxy) = ctx.proxy {
            section aria-labelledby="browser-h" {
                h2 #browser-h { "Your browser inside the world" }
                p { "Set your browser's proxy to SOCKS v5 " code { (proxy) } " (with “Proxy DNS when using SOCKS v5”), or use it as an HTTP proxy. "
                    "Pages you open then travel from your computer's address in the world, through the internet gateway, network ACLs and security groups, and names resolve in the world's public DNS; "
                    "a connection the network refuses shows why." }
                pre.cmd { "curl --proxy socks5h://" (proxy) " http://example.com/" }
            }
        }
        section aria-labelledby="counts-h" {
            h2 #counts-h { "Resources in " (ctx.region) }
            table {
                thead { tr { th scope="col" { "Resource" } th scope="col" { "Count" } } }
                tbody {
                    @for (k, n) in &counts {
                        tr { td { a href={ "/console/r/" (k.slug) } { (k.title) } } td { (n) } }
                    }
                }
            }
        }
        section aria-labelledby="groups-h" {
            h2 #groups-h { "Resource groups (by tag)" }
            @if groups.is_empty() {
                p.muted { "No resource in " (ctx.region) " has a tag other than Name. Tag resources (for example "
                    code { "Project=web" } ") and they are grouped here." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Tag" } th scope="col" { "Resources" } } }
                    tbody {
                        @for ((k, v), members) in &groups {
                            tr {
                                td { code { (k) "=" (v) } }
                                td { @for (i, id) in members.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (cell(&idc(id)))
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&ctx, "Home", Nav::Home, body)
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct TableQuery {
    #[serde(default)]
    q: String,
}

/// A resource table, filtered by `q` (every word must appear in some cell).
pub(crate) async fn table(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(tq): Query<TableQuery>,
) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(k) = kind(&slug) else {
        return not_found(&ctx);
    };
    let w = match c.world(&ctx) {
        Ok(w) => w,
        Err(e) => return error_page(&ctx, &e),
    };
    let all = (k.rows)(&w, &ctx.region, c.now());
    let total = all.len();
    let words: Vec<String> = tq.q.split_whitespace().map(str::to_lowercase).collect();
    let rows: Vec<Row> = all
        .into_iter()
        .filter(|r| {
            let hay = r
                .cells
                .iter()
                .map(|c| c.text.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect();
    let body = html! {
        h1 { (k.title) }
        @if k.slug == "instances" { p { a.button href="/console/launch" { "Launch an instance" } } }
        @if k.slug == "vpcs" { p { a.button href="/console/vpc/create" { "Create VPC" } } }
        form.filter role="search" method="get" action={ "/console/r/" (k.slug) }
            hx-get={ "/console/r/" (k.slug) } hx-trigger="input changed delay:300ms from:#q" hx-target="#rows" hx-select="#rows" hx-swap="outerHTML" hx-push-url="true" {
            label for="q" { "Filter " (k.title.to_lowercase()) }
            input #q type="search" name="q" value=(tq.q) placeholder="id, name, CIDR, tag…";
            button.secondary type="submit" { "Filter" }
        }
        div #rows {
            p.muted aria-live="polite" { (rows.len()) " of " (total) " shown" @if k.slug != "images" && k.slug != "hosted-zones" && k.slug != "health-checks" { " in " (ctx.region) } "." }
            (render_table(k.title, k.columns, &rows))
        }
    };
    page(&ctx, k.title, k.nav, body)
}

pub(crate) fn render_table(caption: &str, columns: &[&str], rows: &[Row]) -> Markup {
    html! {
        table {
            caption.visually-hidden { (caption) }
            thead { tr { @for c in columns { th scope="col" { (c) } } } }
            tbody {
                @for r in rows {
                    tr #{ "row-" (r.id) } {
                        @for c in &r.cells { td { (cell(c)) } }
                    }
                }
            }
        }
    }
}

pub(crate) async fn detail(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let ctx = match c.page_ctx(&headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    detail_page(&c, &ctx, &slug, &id, None, None)
}

/// A detail page, with a failed form's error (and its values) or a notice.
pub(crate) fn detail_page(
    c: &Console,
    ctx: &Ctx,
    slug: &str,
    id: &str,
    failed: Option<&Failed>,
    notice: Option<Markup>,
) -> Response {
    let Some(k) = kind(slug) else {
        return not_found(ctx);
    };
    let w = match c.world(ctx) {
        Ok(w) => w,
        Err(e) => return error_page(ctx, &e),
    };
    let now = c.now();
    let Some(body) = detail_body(ctx, &w, slug, id, now, failed) else {
        return not_found(ctx);
    };
    let name = name_of(&w, id);
    let title = if name.is_empty() {
        format!("{} {id}", k.singular)
    } else {
        format!("{} {id} ({name})", k.singular)
    };
    let body = html! {
        nav aria-label="Breadcrumb" { a href={ "/console/r/" (k.slug) } { (k.title) } " › " span.mono { (id) } }
        h1 { (title) }
        @if let Some(n) = notice { (n) }
        (body)
        (tags_section(&w, id))
    };
    let mut r = page(ctx, &title, k.nav, body);
    if failed.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

fn not_found(ctx: &Ctx) -> Response {
    let mut r = page(
        ctx,
        "Not found",
        Nav::Home,
        html! { h1 { "Not found" } p { "No such resource in " (ctx.region) ". " a href="/console/" { "Console home" } } },
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

fn tags_section(w: &World, id: &str) -> Markup {
    let tags = w.tags_of(id);
    html! {
        h2 { "Tags" }
        @match tags.filter(|t| !t.is_empty()) {
            None => p.muted { "No tags." },
            Some(t) => table {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in t { tr { td { code { (k) } } td { (v) } } } }
            },
        }
    }
}

pub(crate) fn render_props(items: Vec<(&str, Cell)>) -> Markup {
    html! {
        dl.props {
            @for (k, v) in &items { dt { (k) } dd { (cell(v)) } }
        }
    }
}

fn port_range(proto: &str, from: Option<i32>, to: Option<i32>) -> String {
    match (proto, from, to) {
        ("-1", _, _) => "All".into(),
        ("icmp", Some(t), Some(c)) => format!("type {t}, code {c}"),
        (_, Some(a), Some(b)) if a == b => a.to_string(),
        (_, Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "All".into(),
    }
}

pub(crate) fn proto_name(p: &str) -> String {
    match p {
        "-1" => "All traffic".into(),
        "6" | "tcp" => "TCP".into(),
        "17" | "udp" => "UDP".into(),
        "1" | "icmp" => "ICMP".into(),
        other => other.to_string(),
    }
}

/// The anchor of a NACL entry on its page (`rule-in-100`, `rule-out-default`).
pub(crate) fn nacl_anchor(egress: bool, rule: Option<i32>) -> String {
    let dir = if egress { "out" } else { "in" };
    match rule {
        Some(n) if n < 32767 => format!("rule-{dir}-{n}"),
        _ => format!("rule-{dir}-default"),
    }
}

fn detail_body(
    ctx: &Ctx,
    w: &World,
    slug: &str,
    id: &str,
    now: Timestamp,
    failed: Option<&Failed>,
) -> Option<Markup> {
    let region = ctx.region.as_str();
    let in_region = |r: &str| r == region;
    Some(match slug {
        "vpcs" => {
            let v = w.vpcs.get(id).filter(|v| in_region(&v.region))?;
            let subnets: Vec<Row> = (kind("subnets")?.rows)(w, region, now)
                .into_iter()
                .filter(|r| w.subnets.get(&r.id).is_some_and(|s| s.vpc_id == v.id))
                .collect();
            html! {
                p { a href={ "/console/vpc?vpc=" (v.id) } { "See this VPC on the dashboard picture" } }
                (render_props(vec![
                    ("VPC ID", idc(&v.id)),
                    ("State", badge_cell(&v.state)),
                    ("IPv4 CIDRs", txt(v.cidrs.iter().map(|c| c.cidr.to_string()).collect::<Vec<_>>().join(", "))),
                    ("Default VPC", txt(if v.is_default { "Yes" } else { "No" })),
                    ("Tenancy", txt(&v.instance_tenancy)),
                    ("DNS resolution", txt(if v.enable_dns_support { "Enabled" } else { "Disabled" })),
                    ("DNS hostnames", txt(if v.enable_dns_hostnames { "Enabled" } else { "Disabled" })),
                    ("Main route table", w.main_route_table(&v.id).map(|t| idc(&t.id)).unwrap_or_else(|| txt(""))),
                    ("Main network ACL", w.default_nacl(&v.id).map(|t| idc(&t.id)).unwrap_or_else(|| txt(""))),
                    ("Internet gateway", w.igw_of_vpc(&v.id).map(|g| idc(&g.id)).unwrap_or_else(|| txt("none"))),
                ]))
                h2 { "Subnets" }
                (render_table("Subnets", kind("subnets")?.columns, &subnets))
            }
        }
        "subnets" => {
            let s = w.subnets.get(id).filter(|s| in_region(&s.region))?;
            let rt = w.route_table_for_subnet(&s.id);
            let explicit = rt.is_some_and(|t| {
                t.associations
                    .iter()
                    .any(|a| a.subnet_id.as_deref() == Some(&s.id))
            });
            html! {
                (render_props(vec![
                    ("Subnet ID", idc(&s.id)),
                    ("VPC", idc(&s.vpc_id)),
                    ("IPv4 CIDR", txt(s.ipv4_cidr_text())),
                    ("Availability Zone", txt(format!("{} ({})", s.availability_zone, s.availability_zone_id))),
                    ("Type", badge_cell(if subnet_is_public(w, &s.id) { "public" } else { "private" })),
                    ("Available IPv4 addresses", txt(w.available_ip_count(s).to_string())),
                    ("Auto-assign public IPv4", txt(if s.map_public_ip_on_launch { "Yes" } else { "No" })),
                    ("Route table", rt.map(|t| idc(&t.id)).unwrap_or_else(|| txt(""))),
                    ("Network ACL", w.nacl_for_subnet(&s.id).map(|n| idc(&n.id)).unwrap_or_else(|| txt(""))),
                ]))
                @if let Some(t) = rt {
                    h2 { "Routes (" @if explicit { "explicitly associated" } @else { "main route table" } ")" }
                    (routes_table(w, t))
                }
            }
        }
        "route-tables" => {
            let t = w.route_tables.get(id).filter(|t| in_region(&t.region))?;
            html! {
                (render_props(vec![
                    ("Route table ID", idc(&t.id)),
                    ("VPC", idc(&t.vpc_id)),
                    ("Main", txt(if t.is_main() { "Yes" } else { "No" })),
                ]))
                h2 { "Routes" }
                (routes_table(w, t))
                h2 { "Subnet associations" }
                @let subs: Vec<&String> = t.associations.iter().filter_map(|a| a.subnet_id.as_ref()).collect();
                @if subs.is_empty() { p.muted { "No explicit associations" @if t.is_main() { " (subnets without one use this main table)" } "." } }
                @else { ul { @for s in subs { li { (cell(&idc(s))) } } } }
            }
        }
        "internet-gateways" => {
            let g = w
                .internet_gateways
                .get(id)
                .filter(|g| in_region(&g.region))?;
            render_props(vec![
                ("Internet gateway ID", idc(&g.id)),
                (
                    "State",
                    badge_cell(if g.attached_vpc.is_some() {
                        "attached"
                    } else {
                        "detached"
                    }),
                ),
                (
                    "VPC",
                    g.attached_vpc
                        .as_deref()
                        .map(idc)
                        .unwrap_or_else(|| txt("none")),
                ),
            ])
        }
        "nat-gateways" => {
            let n = w.nat_gateways.get(id).filter(|n| in_region(&n.region))?;
            let a = n.addresses.first();
            render_props(vec![
                ("NAT gateway ID", idc(&n.id)),
                ("State", badge_cell(&n.state)),
                ("Connectivity", txt(&n.connectivity_type)),
                ("Subnet", idc(&n.subnet_id)),
                ("VPC", idc(&n.vpc_id)),
                (
                    "Elastic IP allocation",
                    a.and_then(|a| a.allocation_id.as_deref())
                        .map(idc)
                        .unwrap_or_else(|| txt("")),
                ),
                (
                    "Public IPv4",
                    txt(a
                        .and_then(|a| a.public_ip)
                        .map(|i| i.to_string())
                        .unwrap_or_default()),
                ),
                (
                    "Private IPv4",
                    txt(a.map(|a| a.private_ip.to_string()).unwrap_or_default()),
                ),
                (
                    "Network interface",
                    a.map(|a| idc(&a.network_interface_id))
                        .unwrap_or_else(|| txt("")),
                ),
                ("Created", txt(n.create_time.iso())),
            ])
        }
        "elastic-ips" => {
            let a = w.addresses.get(id).filter(|a| in_region(&a.region))?;
            let asn = a.association.as_ref();
            render_props(vec![
                ("Allocated IPv4 address", txt(a.public_ip.to_string())),
                ("Allocation ID", idc(&a.id)),
                (
                    "Association ID",
                    txt(asn.map(|s| s.association_id.clone()).unwrap_or_default()),
                ),
                (
                    "Network interface",
                    asn.map(|s| idc(&s.network_interface_id))
                        .unwrap_or_else(|| txt("not associated")),
                ),
                (
                    "Private IP",
                    txt(asn.map(|s| s.private_ip.to_string()).unwrap_or_default()),
                ),
            ])
        }
        "network-acls" => {
            let n = w.network_acls.get(id).filter(|n| in_region(&n.region))?;
            let entries = n.effective_entries();
            html! {
                (render_props(vec![
                    ("Network ACL ID", idc(&n.id)),
                    ("VPC", idc(&n.vpc_id)),
                    ("Default", txt(if n.is_default { "Yes" } else { "No" })),
                ]))
                p { "Rules are evaluated in ascending order of rule number; the first rule that matches decides, and the "
                    code { "*" } " rule denies what no rule matched. Network ACLs are stateless: replies need their own rule." }
                @for egress in [false, true] {
                    h2 #{ (if egress { "outbound" } else { "inbound" }) } { (if egress { "Outbound rules" } else { "Inbound rules" }) }
                    table {
                        thead { tr {
                            th scope="col" { "Rule number" } th scope="col" { "Type" } th scope="col" { "Port range" }
                            th scope="col" { (if egress { "Destination" } else { "Source" }) } th scope="col" { "Allow/Deny" }
                        } }
                        tbody {
                            @for e in entries.iter().filter(|e| e.egress == egress) {
                                @let rule = if e.rule_number >= 32767 { "*".to_string() } else { e.rule_number.to_string() };
                                tr #(nacl_anchor(egress, Some(e.rule_number))) {
                                    td { (rule) }
                                    td { (proto_name(&e.protocol)) }
                                    td { (match (e.port_range, e.icmp) {
                                        (Some((a, b)), _) if a == b => a.to_string(),
                                        (Some((a, b)), _) => format!("{a}-{b}"),
                                        (_, Some((t, c))) => format!("type {t}, code {c}"),
                                        _ => "All".to_string(),
                                    }) }
                                    td { (e.cidr) }
                                    td { span class={ "badge " (e.rule_action) } { (e.rule_action) } }
                                }
                            }
                        }
                    }
                }
                h2 { "Subnet associations" }
                @if n.associations.is_empty() { p.muted { "None." } }
                @else { ul { @for a in &n.associations { li { (cell(&idc(&a.subnet_id))) } } } }
                (super::forms::nacl_editor(ctx, n, failed))
            }
        }
        "security-groups" => {
            let g = w.security_groups.get(id).filter(|g| in_region(&g.region))?;
            html! {
                (render_props(vec![
                    ("Security group ID", idc(&g.id)),
                    ("Group name", txt(&g.group_name)),
                    ("Description", txt(&g.description)),
                    ("VPC", idc(&g.vpc_id)),
                ]))
                p { "Security groups are stateful: a reply to an allowed connection is allowed. Only allow rules exist; what no rule allows is denied." }
                @for egress in [false, true] {
                    h2 { (if egress { "Outbound rules" } else { "Inbound rules" }) }
                    table {
                        thead { tr {
                            th scope="col" { "Rule ID" } th scope="col" { "Protocol" } th scope="col" { "Port range" }
                            th scope="col" { (if egress { "Destination" } else { "Source" }) } th scope="col" { "Description" } th scope="col" { "Action" }
                        } }
                        tbody {
                            @for r in g.rules.iter().filter(|r| r.egress == egress) {
                                tr #(r.id) {
                                    td.mono { (r.id) }
                                    td { (proto_name(&r.protocol)) }
                                    td { (port_range(&r.protocol, r.from_port, r.to_port)) }
                                    td { (match &r.peer { Peer::Cidr(c) => html! { (c) }, Peer::Cidr6(c) => html! { (c) }, Peer::Group(gid) => cell(&idc(gid)), Peer::PrefixList(pl) => html! { (pl) } }) }
                                    td { (r.description.clone().unwrap_or_default()) }
                                    td { (super::forms::sg_revoke_button(ctx, g, r)) }
                                }
                            }
                        }
                    }
                }
                (super::forms::sg_editor(ctx, g, failed))
            }
        }
        "network-interfaces" => {
            let e = w
                .network_interfaces
                .get(id)
                .filter(|e| in_region(&e.region))?;
            render_props(vec![
                ("Network interface ID", idc(&e.id)),
                ("Description", txt(&e.description)),
                ("Type", txt(&e.interface_type)),
                ("Status", badge_cell(&e.status)),
                ("Subnet", idc(&e.subnet_id)),
                ("VPC", idc(&e.vpc_id)),
                ("Availability Zone", txt(&e.availability_zone)),
                (
                    "Private IPv4",
                    txt(e
                        .ipv4()
                        .map_or_else(|| "-".to_string(), |ip| ip.to_string())),
                ),
                (
                    "Public IPv4",
                    txt(e
                        .association
                        .as_ref()
                        .map(|a| a.public_ip.to_string())
                        .unwrap_or_default()),
                ),
                (
                    "MAC address",
                    Cell {
                        mono: true,
                        ..txt(&e.mac)
                    },
                ),
                ("Security groups", ids(&e.groups)),
                (
                    "Source/dest. check",
                    txt(if e.source_dest_check { "true" } else { "false" }),
                ),
                (
                    "Instance",
                    e.attachment
                        .as_ref()
                        .map(|a| idc(&a.instance_id))
                        .unwrap_or_else(|| txt("")),
                ),
            ])
        }
        "instances" => {
            let i = w
                .instances
                .get(id)
                .filter(|i| in_region(&i.region) && !i.expired(now))?;
            super::forms::instance_body(ctx, w, i, now, failed)
        }
        "key-pairs" => {
            let k = w.key_pairs.get(id).filter(|k| in_region(&k.region))?;
            render_props(vec![
                ("Name", txt(&k.name)),
                ("Key pair ID", idc(&k.id)),
                ("Type", txt(&k.key_type)),
                (
                    "Fingerprint",
                    Cell {
                        mono: true,
                        ..txt(&k.fingerprint)
                    },
                ),
                ("Created", txt(k.create_time.iso())),
                ("Imported", txt(if k.imported { "Yes" } else { "No" })),
            ])
        }
        "images" => {
            let i = crate::catalog::image(id)?;
            html! {
                (render_props(vec![
                    ("AMI ID", idc(i.image_id)),
                    ("Name", txt(i.name)),
                    ("Description", txt(i.description)),
                    ("Owner", txt(format!("{} ({})", i.owner_alias, i.owner_id))),
                    ("Architecture", txt(i.architecture)),
                    ("Root device", txt(i.root_device_name)),
                    ("Root volume size (GiB)", txt(i.root_volume_size_gib.to_string())),
                    ("Default user", txt(i.default_user())),
                    ("Created", txt(i.creation_date)),
                ]))
                p { a.button href={ "/console/launch?image=" (i.image_id) } { "Launch an instance from this AMI" } }
            }
        }
        "hosted-zones" => {
            let z = w.hosted_zones.get(id)?;
            html! {
                (render_props(vec![
                    ("Hosted zone ID", Cell { mono: true, ..txt(&z.id) }),
                    ("Domain name", txt(&z.name)),
                    ("Type", txt(if z.private { "Private hosted zone" } else { "Public hosted zone" })),
                    ("Associated VPCs", ids(&z.vpcs.iter().map(|v| v.vpc_id.clone()).collect::<Vec<_>>())),
                    ("Name servers", txt(z.name_servers.join(", "))),
                    ("Comment", txt(z.comment.clone().unwrap_or_default())),
                ]))
                h2 { "Records" }
                table {
                    thead { tr {
                        th scope="col" { "Record name" } th scope="col" { "Type" } th scope="col" { "Routing" }
                        th scope="col" { "Value / route traffic to" } th scope="col" { "TTL (s)" } th scope="col" { "Health check" }
                    } }
                    tbody {
                        @for r in &z.record_sets {
                            tr {
                                td { (r.name) }
                                td { (r.rtype) }
                                td { (if r.weight.is_some() { "Weighted" } else if r.failover.is_some() { "Failover" } else if r.multi_value_answer == Some(true) { "Multivalue" } else { "Simple" })
                                     @if let Some(s) = &r.set_identifier { " (" (s) ")" } }
                                td.mono { @if let Some(a) = &r.alias { "alias → " (a.dns_name) } @else { (r.records.join("\n")) } }
                                td { (r.ttl.map(|t| t.to_string()).unwrap_or_default()) }
                                td { @if let Some(h) = &r.health_check_id { a.mono href={ "/console/r/health-checks/" (h) } { (h) } } }
                            }
                        }
                    }
                }
            }
        }
        "health-checks" => {
            let h = w.health_checks.get(id)?;
            let cfg = &h.config;
            render_props(vec![
                (
                    "Health check ID",
                    Cell {
                        mono: true,
                        ..txt(&h.id)
                    },
                ),
                ("Type", txt(&cfg.check_type)),
                (
                    "IP address",
                    txt(cfg.ip_address.map(|i| i.to_string()).unwrap_or_default()),
                ),
                ("Domain name", txt(cfg.fqdn.clone().unwrap_or_default())),
                ("Port", txt(cfg.effective_port().to_string())),
                ("Path", txt(cfg.resource_path.clone().unwrap_or_default())),
                (
                    "Search string",
                    txt(cfg.search_string.clone().unwrap_or_default()),
                ),
                (
                    "Request interval (s)",
                    txt(cfg.request_interval.to_string()),
                ),
                ("Failure threshold", txt(cfg.failure_threshold.to_string())),
                ("Inverted", txt(if cfg.inverted { "Yes" } else { "No" })),
                ("Disabled", txt(if cfg.disabled { "Yes" } else { "No" })),
                ("Checker regions", txt(cfg.effective_regions().join(", "))),
            ])
        }
        _ => return None,
    })
}

fn routes_table(w: &World, t: &crate::model::ec2::route_table::RouteTable) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Destination" } th scope="col" { "Target" } th scope="col" { "Status" } th scope="col" { "Origin" } } }
            tbody {
                @for r in &t.routes {
                    tr #{ "route-" (r.destination.to_string().replace(['/', '.'], "-")) } {
                        td { (r.destination) }
                        td { (cell(&idc(r.target.id()))) }
                        td { @let st = w.route_state(t, r); span class={ "badge " (st) } { (st) } }
                        td { (r.origin) }
                    }
                }
            }
        }
    }
}

/// Query-string helper for pages that read optional values.
pub(crate) fn query_form(uri_query: Option<&str>) -> FormData {
    FormData(
        form_urlencoded::parse(uri_query.unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    )
}

//! Transit gateways: Create/Delete/Modify/DescribeTransitGateways, VPC attachments
//! (Create/Delete/Describe, DescribeTransitGatewayAttachments), transit gateway route
//! tables (Create/Delete/Describe), associations, propagations, static and blackhole
//! routes, SearchTransitGatewayRoutes and the Get…Associations/Propagations views.
//!
//! AWS rules kept here (Transit Gateway guide, "How transit gateways work", and the
//! EC2 API reference of each action): a new gateway gets a default route table when
//! default association or propagation is enabled, and new attachments are associated
//! with it and propagate to it; an attachment is associated with at most one route
//! table; a VPC attachment has one subnet per Availability Zone and a requester-managed
//! interface in each; one VPC attaches once to a gateway; the gateway must be
//! `available` before attachments are made; propagation puts the attached VPC's IPv4
//! blocks in the table; for the same prefix a static route wins over a propagated one;
//! a blackhole route drops what it matches; a gateway with attachments cannot be deleted.
//!
//! States move with time like NAT gateways' (`pending → available`, `deleting →
//! deleted`, then the row goes): [`World::advance_tgw`] runs from the daemon's tick.
//! Associations and propagations take effect at once (the responses show
//! `associating`/`enabled` as AWS's do).
//!
//! What the data plane sees: each gateway with its available attachments and every
//! route table's effective routes ([`super::compile`]).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::eni::EniSpec;
use crate::model::tags::TagSpec;
use crate::model::{
    ApiError, ApiResult, Env, Filterable, Resource, Timestamp, World, filter::b, parse_cidr,
};

/// How long a new gateway, attachment or route table stays `pending` (AWS: minutes;
/// shortened so a lab does not wait), and a deleted one `deleting`.
pub const TGW_PENDING_MS: i64 = 1_000;
/// How long a deleted gateway, attachment or route table stays visible as `deleted`.
pub const TGW_DELETED_VISIBLE_MS: i64 = 3_600_000;

/// `TransitGatewayOptions` as DescribeTransitGateways shows them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TgwOptions {
    pub amazon_side_asn: i64,
    pub auto_accept_shared_attachments: bool,
    pub default_route_table_association: bool,
    pub association_default_route_table_id: Option<String>,
    pub default_route_table_propagation: bool,
    pub propagation_default_route_table_id: Option<String>,
    pub vpn_ecmp_support: bool,
    pub dns_support: bool,
    pub multicast_support: bool,
}

/// What CreateTransitGateway and ModifyTransitGateway may set (`None`: unchanged or
/// AWS's default).
#[derive(Clone, Debug, Default)]
pub struct TgwOptionsInput {
    pub amazon_side_asn: Option<i64>,
    pub auto_accept_shared_attachments: Option<bool>,
    pub default_route_table_association: Option<bool>,
    pub association_default_route_table_id: Option<String>,
    pub default_route_table_propagation: Option<bool>,
    pub propagation_default_route_table_id: Option<String>,
    pub vpn_ecmp_support: Option<bool>,
    pub dns_support: Option<bool>,
    pub multicast_support: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitGateway {
    pub id: String,
    pub region: String,
    pub description: String,
    /// `pending`, `available`, `modifying`, `deleting`, `deleted`.
    pub state: String,
    pub options: TgwOptions,
    pub created: Timestamp,
    pub next_transition: Option<Timestamp>,
}

impl Resource for TransitGateway {
    const KIND: &'static str = "transit_gateway";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitGatewayAttachment {
    pub id: String,
    pub region: String,
    pub transit_gateway_id: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    /// The requester-managed interfaces, one per subnet.
    pub network_interface_ids: Vec<String>,
    /// `pending`, `available`, `modifying`, `deleting`, `deleted`.
    pub state: String,
    pub dns_support: bool,
    pub ipv6_support: bool,
    pub appliance_mode_support: bool,
    /// The associated transit gateway route table.
    pub association: Option<String>,
    pub created: Timestamp,
    pub next_transition: Option<Timestamp>,
}

impl Resource for TransitGatewayAttachment {
    const KIND: &'static str = "transit_gateway_attachment";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl TransitGatewayAttachment {
    pub fn is_available(&self) -> bool {
        self.state == "available"
    }
    fn is_live(&self) -> bool {
        !matches!(self.state.as_str(), "deleting" | "deleted")
    }
}

/// A static route of a transit gateway route table: to an attachment, or a blackhole.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TgwStaticRoute {
    pub cidr: Ipv4Net,
    pub attachment: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitGatewayRouteTable {
    pub id: String,
    pub region: String,
    pub transit_gateway_id: String,
    /// `pending`, `available`, `deleting`, `deleted`.
    pub state: String,
    pub routes: Vec<TgwStaticRoute>,
    /// Attachments whose VPC blocks propagate into this table.
    pub propagations: Vec<String>,
    pub created: Timestamp,
    pub next_transition: Option<Timestamp>,
}

impl Resource for TransitGatewayRouteTable {
    const KIND: &'static str = "transit_gateway_route_table";
    fn id(&self) -> &str {
        &self.id
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// One route of a table as SearchTransitGatewayRoutes shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgwRouteView {
    pub cidr: Ipv4Net,
    pub attachment: Option<String>,
    /// `static` or `propagated`.
    pub kind: &'static str,
    /// `active` or `blackhole`.
    pub state: &'static str,
}

pub fn tgw_not_found(id: &str) -> ApiError {
    ApiError::not_found("InvalidTransitGatewayID.NotFound", "transitGateway ID", id)
}

pub fn attachment_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidTransitGatewayAttachmentID.NotFound",
        "transitGatewayAttachment ID",
        id,
    )
}

pub fn tgw_route_table_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidRouteTableID.NotFound",
        "transitGatewayRouteTable ID",
        id,
    )
}

fn incorrect_state(message: String) -> ApiError {
    ApiError::new("IncorrectState", message)
}

fn gone(state: &str) -> bool {
    matches!(state, "deleting" | "deleted")
}

impl Filterable for TransitGateway {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let o = &self.options;
        let ed = |v: bool| if v { "enable" } else { "disable" }.to_string();
        Some(match name {
            "transit-gateway-id" => vec![self.id.clone()],
            "state" => vec![self.state.clone()],
            "owner-id" => vec![world.account.clone()],
            "options.amazon-side-asn" => vec![o.amazon_side_asn.to_string()],
            "options.association-default-route-table-id" => o
                .association_default_route_table_id
                .iter()
                .cloned()
                .collect(),
            "options.propagation-default-route-table-id" => o
                .propagation_default_route_table_id
                .iter()
                .cloned()
                .collect(),
            "options.default-route-table-association" => {
                vec![ed(o.default_route_table_association)]
            }
            "options.default-route-table-propagation" => {
                vec![ed(o.default_route_table_propagation)]
            }
            "options.dns-support" => vec![ed(o.dns_support)],
            "options.vpn-ecmp-support" => vec![ed(o.vpn_ecmp_support)],
            "options.auto-accept-shared-attachments" => {
                vec![ed(o.auto_accept_shared_attachments)]
            }
            _ => return None,
        })
    }
}

impl Filterable for TransitGatewayAttachment {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "transit-gateway-attachment-id" => vec![self.id.clone()],
            "transit-gateway-id" => vec![self.transit_gateway_id.clone()],
            "transit-gateway-owner-id" | "resource-owner-id" | "vpc-owner-id" => {
                vec![world.account.clone()]
            }
            "vpc-id" | "resource-id" => vec![self.vpc_id.clone()],
            "resource-type" => vec!["vpc".into()],
            "state" => vec![self.state.clone()],
            "association.transit-gateway-route-table-id" => {
                self.association.iter().cloned().collect()
            }
            "association.state" => self
                .association
                .iter()
                .map(|_| "associated".to_string())
                .collect(),
            _ => return None,
        })
    }
}

impl Filterable for TransitGatewayRouteTable {
    fn filter_values(&self, world: &World, name: &str) -> Option<Vec<String>> {
        let tgw = world.transit_gateways.get(&self.transit_gateway_id);
        let default_of = |f: fn(&TgwOptions) -> &Option<String>| {
            tgw.is_some_and(|t| f(&t.options).as_deref() == Some(self.id.as_str()))
        };
        Some(match name {
            "transit-gateway-route-table-id" => vec![self.id.clone()],
            "transit-gateway-id" => vec![self.transit_gateway_id.clone()],
            "state" => vec![self.state.clone()],
            "default-association-route-table" => {
                vec![b(default_of(|o| &o.association_default_route_table_id))]
            }
            "default-propagation-route-table" => {
                vec![b(default_of(|o| &o.propagation_default_route_table_id))]
            }
            _ => return None,
        })
    }
}

impl World {
    pub fn transit_gateway(&self, region: &str, id: &str) -> ApiResult<&TransitGateway> {
        match self.transit_gateways.get(id) {
            Some(t) if t.region == region => Ok(t),
            _ => Err(tgw_not_found(id)),
        }
    }

    pub fn tgw_attachment(&self, region: &str, id: &str) -> ApiResult<&TransitGatewayAttachment> {
        match self.transit_gateway_attachments.get(id) {
            Some(a) if a.region == region => Ok(a),
            _ => Err(attachment_not_found(id)),
        }
    }

    pub fn tgw_route_table(&self, region: &str, id: &str) -> ApiResult<&TransitGatewayRouteTable> {
        match self.transit_gateway_route_tables.get(id) {
            Some(r) if r.region == region => Ok(r),
            _ => Err(tgw_route_table_not_found(id)),
        }
    }

    /// The available attachment of gateway `tgw` in VPC `vpc`, if any: what makes a
    /// VPC route to the gateway `active`.
    pub fn tgw_attachment_in_vpc(&self, tgw: &str, vpc: &str) -> Option<&TransitGatewayAttachment> {
        self.transit_gateway_attachments
            .iter()
            .find(|a| a.transit_gateway_id == tgw && a.vpc_id == vpc && a.is_available())
    }

    /// The effective routes of a table, sorted by prefix: its static routes (a
    /// blackhole when created so, or when the attachment is not available) and the
    /// IPv4 blocks of the VPCs of available attachments propagating into it, unless a
    /// static route has the same prefix (AWS: static routes take priority).
    pub fn tgw_routes(&self, rt: &TransitGatewayRouteTable) -> Vec<TgwRouteView> {
        let mut out: Vec<TgwRouteView> = rt
            .routes
            .iter()
            .map(|r| {
                let alive = r.attachment.as_ref().is_some_and(|a| {
                    self.transit_gateway_attachments
                        .get(a)
                        .is_some_and(|a| a.is_available())
                });
                TgwRouteView {
                    cidr: r.cidr,
                    attachment: r.attachment.clone(),
                    kind: "static",
                    state: if alive { "active" } else { "blackhole" },
                }
            })
            .collect();
        for a in &rt.propagations {
            let Some(att) = self
                .transit_gateway_attachments
                .get(a)
                .filter(|a| a.is_available())
            else {
                continue;
            };
            let Some(vpc) = self.vpcs.get(&att.vpc_id) else {
                continue;
            };
            for c in &vpc.cidrs {
                if rt.routes.iter().any(|r| r.cidr == c.cidr) {
                    continue;
                }
                out.push(TgwRouteView {
                    cidr: c.cidr,
                    attachment: Some(att.id.clone()),
                    kind: "propagated",
                    state: "active",
                });
            }
        }
        out.sort_by(|x, y| {
            (x.cidr.network(), x.cidr.prefix_len()).cmp(&(y.cidr.network(), y.cidr.prefix_len()))
        });
        out
    }

    fn new_tgw_route_table(&mut self, env: &Env, tgw: &str) -> String {
        let id = self.alloc_id("tgw-rtb");
        self.transit_gateway_route_tables
            .insert(TransitGatewayRouteTable {
                id: id.clone(),
                region: env.region.clone(),
                transit_gateway_id: tgw.to_string(),
                state: "pending".into(),
                routes: Vec::new(),
                propagations: Vec::new(),
                created: env.now,
                next_transition: Some(env.now.plus_ms(TGW_PENDING_MS)),
            });
        id
    }

    /// CreateTransitGateway. The default route table is made with it when default
    /// association or propagation is enabled (both are by default).
    pub fn create_transit_gateway(
        &mut self,
        env: &Env,
        description: Option<&str>,
        input: &TgwOptionsInput,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["transit-gateway"])?;
        let asn = input.amazon_side_asn.unwrap_or(64512);
        // AWS: 64512-65534 for 16-bit ASNs, 4200000000-4294967294 for 32-bit ones.
        if !((64512..=65534).contains(&asn) || (4_200_000_000..=4_294_967_294).contains(&asn)) {
            return Err(ApiError::invalid_value(format!(
                "Amazon side ASN {asn} is not in the private ranges 64512-65534 or 4200000000-4294967294."
            )));
        }
        if input.association_default_route_table_id.is_some()
            || input.propagation_default_route_table_id.is_some()
        {
            return Err(ApiError::new(
                "UnknownParameter",
                "The default route table ids can be set by ModifyTransitGateway only.",
            ));
        }
        let id = self.alloc_id("tgw");
        let assoc = input.default_route_table_association.unwrap_or(true);
        let prop = input.default_route_table_propagation.unwrap_or(true);
        let default_rt = (assoc || prop).then(|| self.new_tgw_route_table(env, &id));
        self.transit_gateways.insert(TransitGateway {
            id: id.clone(),
            region: env.region.clone(),
            description: description.unwrap_or_default().to_string(),
            state: "pending".into(),
            options: TgwOptions {
                amazon_side_asn: asn,
                auto_accept_shared_attachments: input
                    .auto_accept_shared_attachments
                    .unwrap_or(false),
                default_route_table_association: assoc,
                association_default_route_table_id: default_rt.clone().filter(|_| assoc),
                default_route_table_propagation: prop,
                propagation_default_route_table_id: default_rt.filter(|_| prop),
                vpn_ecmp_support: input.vpn_ecmp_support.unwrap_or(true),
                dns_support: input.dns_support.unwrap_or(true),
                multicast_support: input.multicast_support.unwrap_or(false),
            },
            created: env.now,
            next_transition: Some(env.now.plus_ms(TGW_PENDING_MS)),
        });
        self.apply_tag_specs(env, &id, "transit-gateway", specs)?;
        Ok(id)
    }

    /// ModifyTransitGateway: description and options; a default route table id must
    /// name a table of this gateway.
    pub fn modify_transit_gateway(
        &mut self,
        env: &Env,
        id: &str,
        description: Option<&str>,
        input: &TgwOptionsInput,
    ) -> ApiResult<()> {
        let mut t = self.transit_gateway(&env.region, id)?.clone();
        if t.state != "available" {
            return Err(incorrect_state(format!(
                "Transit Gateway {id} is in invalid state {}.",
                t.state
            )));
        }
        for rt in [
            &input.association_default_route_table_id,
            &input.propagation_default_route_table_id,
        ]
        .into_iter()
        .flatten()
        {
            let r = self.tgw_route_table(&env.region, rt)?;
            if r.transit_gateway_id != id || gone(&r.state) {
                return Err(tgw_route_table_not_found(rt));
            }
        }
        if let Some(asn) = input.amazon_side_asn {
            if self
                .transit_gateway_attachments
                .iter()
                .any(|a| a.transit_gateway_id == id && a.is_live())
            {
                return Err(incorrect_state(format!(
                    "The Amazon side ASN of {id} can change only while it has no attachments."
                )));
            }
            t.options.amazon_side_asn = asn;
        }
        if let Some(d) = description {
            t.description = d.to_string();
        }
        let o = &mut t.options;
        if let Some(v) = input.default_route_table_association {
            o.default_route_table_association = v;
        }
        if let Some(v) = input.default_route_table_propagation {
            o.default_route_table_propagation = v;
        }
        if let Some(v) = &input.association_default_route_table_id {
            o.association_default_route_table_id = Some(v.clone());
        }
        if let Some(v) = &input.propagation_default_route_table_id {
            o.propagation_default_route_table_id = Some(v.clone());
        }
        if let Some(v) = input.auto_accept_shared_attachments {
            o.auto_accept_shared_attachments = v;
        }
        if let Some(v) = input.vpn_ecmp_support {
            o.vpn_ecmp_support = v;
        }
        if let Some(v) = input.dns_support {
            o.dns_support = v;
        }
        self.transit_gateways.insert(t);
        Ok(())
    }

    /// DeleteTransitGateway: refused while attachments that are not deleted remain;
    /// its route tables go with it.
    pub fn delete_transit_gateway(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let t = self.transit_gateway(&env.region, id)?.clone();
        if gone(&t.state) {
            return Err(incorrect_state(format!(
                "Transit Gateway {id} is in invalid state {}.",
                t.state
            )));
        }
        if self
            .transit_gateway_attachments
            .iter()
            .any(|a| a.transit_gateway_id == id && a.is_live())
        {
            return Err(incorrect_state(format!(
                "{id} has non-deleted Transit Gateway Attachments."
            )));
        }
        let due = Some(env.now.plus_ms(TGW_PENDING_MS));
        for rt in self
            .transit_gateway_route_tables
            .ids_where(|r| r.transit_gateway_id == id && !gone(&r.state))
        {
            if let Some(r) = self.transit_gateway_route_tables.get_mut(&rt) {
                r.state = "deleting".into();
                r.next_transition = due;
            }
        }
        if let Some(t) = self.transit_gateways.get_mut(id) {
            t.state = "deleting".into();
            t.next_transition = due;
        }
        Ok(())
    }

    /// CreateTransitGatewayVpcAttachment. Returns the attachment id.
    #[allow(clippy::too_many_arguments)]
    pub fn create_tgw_vpc_attachment(
        &mut self,
        env: &Env,
        tgw_id: &str,
        vpc_id: &str,
        subnet_ids: &[String],
        options: (Option<bool>, Option<bool>, Option<bool>),
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["transit-gateway-attachment"])?;
        let tgw = self.transit_gateway(&env.region, tgw_id)?.clone();
        if tgw.state != "available" {
            return Err(incorrect_state(format!(
                "Transit Gateway {tgw_id} is in invalid state {}.",
                tgw.state
            )));
        }
        self.vpc(&env.region, vpc_id)?;
        if subnet_ids.is_empty() {
            return Err(ApiError::missing("SubnetIds"));
        }
        let mut zones = Vec::new();
        for s in subnet_ids {
            let subnet = self.subnet(&env.region, s)?;
            if subnet.vpc_id != vpc_id {
                return Err(ApiError::invalid_value(format!(
                    "Subnet {s} does not belong to VPC {vpc_id}."
                )));
            }
            // AWS: "You can select only one subnet per Availability Zone."
            if zones.contains(&subnet.availability_zone) {
                return Err(ApiError::new(
                    "DuplicateSubnetsInSameZone",
                    format!(
                        "Subnets in the same Availability Zone {} are not allowed.",
                        subnet.availability_zone
                    ),
                ));
            }
            zones.push(subnet.availability_zone.clone());
        }
        if self
            .transit_gateway_attachments
            .iter()
            .any(|a| a.transit_gateway_id == tgw_id && a.vpc_id == vpc_id && a.is_live())
        {
            return Err(ApiError::new(
                "DuplicateTransitGatewayAttachment",
                format!("{tgw_id} has non-deleted Transit Gateway Attachments with same VPC ID."),
            ));
        }
        let id = self.alloc_id("tgw-attach");
        let mut enis = Vec::new();
        for s in subnet_ids {
            enis.push(self.create_interface(
                env,
                EniSpec {
                    subnet_id: s.clone(),
                    description: format!("Network Interface for Transit Gateway Attachment {id}"),
                    interface_type: "transit_gateway".into(),
                    requester_managed: true,
                    ..Default::default()
                },
            )?);
        }
        let o = &tgw.options;
        let association = o
            .association_default_route_table_id
            .clone()
            .filter(|_| o.default_route_table_association);
        if o.default_route_table_propagation
            && let Some(rt) = &o.propagation_default_route_table_id
            && let Some(r) = self.transit_gateway_route_tables.get_mut(rt)
        {
            r.propagations.push(id.clone());
        }
        self.transit_gateway_attachments
            .insert(TransitGatewayAttachment {
                id: id.clone(),
                region: env.region.clone(),
                transit_gateway_id: tgw_id.to_string(),
                vpc_id: vpc_id.to_string(),
                subnet_ids: subnet_ids.to_vec(),
                network_interface_ids: enis,
                state: "pending".into(),
                dns_support: options.0.unwrap_or(true),
                ipv6_support: options.1.unwrap_or(false),
                appliance_mode_support: options.2.unwrap_or(false),
                association,
                created: env.now,
                next_transition: Some(env.now.plus_ms(TGW_PENDING_MS)),
            });
        self.apply_tag_specs(env, &id, "transit-gateway-attachment", specs)?;
        Ok(id)
    }

    /// DeleteTransitGatewayVpcAttachment: the attachment leaves its route table and
    /// propagations at once, its interfaces go, and it shows `deleting`.
    pub fn delete_tgw_vpc_attachment(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let a = self.tgw_attachment(&env.region, id)?.clone();
        if !a.is_live() {
            return Err(incorrect_state(format!(
                "tgw-attachment {id} is in invalid state {}.",
                a.state
            )));
        }
        for rt in self
            .transit_gateway_route_tables
            .ids_where(|r| r.propagations.contains(&a.id))
        {
            if let Some(r) = self.transit_gateway_route_tables.get_mut(&rt) {
                r.propagations.retain(|p| *p != a.id);
            }
        }
        for e in &a.network_interface_ids {
            self.network_interfaces.remove(e);
        }
        if let Some(x) = self.transit_gateway_attachments.get_mut(id) {
            x.state = "deleting".into();
            x.association = None;
            x.network_interface_ids.clear();
            x.next_transition = Some(env.now.plus_ms(TGW_PENDING_MS));
        }
        Ok(())
    }

    /// CreateTransitGatewayRouteTable.
    pub fn create_tgw_route_table(
        &mut self,
        env: &Env,
        tgw_id: &str,
        specs: &[TagSpec],
    ) -> ApiResult<String> {
        World::check_tag_specs(specs, &["transit-gateway-route-table"])?;
        let t = self.transit_gateway(&env.region, tgw_id)?;
        if t.state != "available" {
            return Err(incorrect_state(format!(
                "Transit Gateway {tgw_id} is in invalid state {}.",
                t.state
            )));
        }
        let id = self.new_tgw_route_table(env, tgw_id);
        self.apply_tag_specs(env, &id, "transit-gateway-route-table", specs)?;
        Ok(id)
    }

    /// DeleteTransitGatewayRouteTable: not while attachments are associated with it,
    /// and not the gateway's default association or propagation table.
    pub fn delete_tgw_route_table(&mut self, env: &Env, id: &str) -> ApiResult<()> {
        let rt = self.tgw_route_table(&env.region, id)?.clone();
        if gone(&rt.state) {
            return Err(incorrect_state(format!(
                "tgw-rtb {id} is in invalid state {}.",
                rt.state
            )));
        }
        if self
            .transit_gateway_attachments
            .iter()
            .any(|a| a.association.as_deref() == Some(id))
        {
            return Err(incorrect_state(format!(
                "{id} has associations: disassociate its attachments first."
            )));
        }
        if let Some(t) = self.transit_gateways.get(&rt.transit_gateway_id)
            && (t.options.association_default_route_table_id.as_deref() == Some(id)
                || t.options.propagation_default_route_table_id.as_deref() == Some(id))
        {
            return Err(incorrect_state(format!(
                "{id} is the default route table of {}: it is deleted with the transit gateway.",
                t.id
            )));
        }
        if let Some(r) = self.transit_gateway_route_tables.get_mut(id) {
            r.state = "deleting".into();
            r.propagations.clear();
            r.next_transition = Some(env.now.plus_ms(TGW_PENDING_MS));
        }
        Ok(())
    }

    /// The route table and attachment of one association or propagation call, checked
    /// to belong to the same gateway and to be usable.
    fn rt_and_attachment(
        &self,
        env: &Env,
        rt_id: &str,
        att_id: &str,
    ) -> ApiResult<(TransitGatewayRouteTable, TransitGatewayAttachment)> {
        let rt = self.tgw_route_table(&env.region, rt_id)?.clone();
        let a = self.tgw_attachment(&env.region, att_id)?.clone();
        if gone(&rt.state) {
            return Err(incorrect_state(format!(
                "tgw-rtb {rt_id} is in invalid state {}.",
                rt.state
            )));
        }
        if !a.is_live() {
            return Err(incorrect_state(format!(
                "tgw-attachment {att_id} is in invalid state {}.",
                a.state
            )));
        }
        if rt.transit_gateway_id != a.transit_gateway_id {
            return Err(ApiError::invalid_value(format!(
                "Route table {rt_id} and attachment {att_id} belong to different transit gateways."
            )));
        }
        Ok((rt, a))
    }

    /// AssociateTransitGatewayRouteTable: "You can associate only one route table with
    /// an attachment."
    pub fn associate_tgw_route_table(
        &mut self,
        env: &Env,
        rt_id: &str,
        att_id: &str,
    ) -> ApiResult<()> {
        let (_, a) = self.rt_and_attachment(env, rt_id, att_id)?;
        if let Some(cur) = &a.association {
            return Err(ApiError::new(
                "Resource.AlreadyAssociated",
                format!(
                    "Transit Gateway Attachment {att_id} is already associated to a route table {cur}."
                ),
            ));
        }
        if let Some(x) = self.transit_gateway_attachments.get_mut(att_id) {
            x.association = Some(rt_id.to_string());
        }
        Ok(())
    }

    /// DisassociateTransitGatewayRouteTable.
    pub fn disassociate_tgw_route_table(
        &mut self,
        env: &Env,
        rt_id: &str,
        att_id: &str,
    ) -> ApiResult<()> {
        let (_, a) = self.rt_and_attachment(env, rt_id, att_id)?;
        if a.association.as_deref() != Some(rt_id) {
            return Err(ApiError::new(
                "InvalidAssociation.NotFound",
                format!(
                    "Transit Gateway Attachment {att_id} is not associated with route table {rt_id}."
                ),
            ));
        }
        if let Some(x) = self.transit_gateway_attachments.get_mut(att_id) {
            x.association = None;
        }
        Ok(())
    }

    /// Enable/DisableTransitGatewayRouteTablePropagation.
    pub fn set_tgw_propagation(
        &mut self,
        env: &Env,
        rt_id: &str,
        att_id: &str,
        enable: bool,
    ) -> ApiResult<()> {
        let (rt, _) = self.rt_and_attachment(env, rt_id, att_id)?;
        let present = rt.propagations.iter().any(|p| p == att_id);
        if enable && present {
            return Err(ApiError::new(
                "TransitGatewayRouteTablePropagation.Duplicate",
                format!("Propagation of {att_id} to {rt_id} is already enabled."),
            ));
        }
        if !enable && !present {
            return Err(ApiError::new(
                "TransitGatewayRouteTablePropagation.NotFound",
                format!("Propagation of {att_id} to {rt_id} is not enabled."),
            ));
        }
        if let Some(r) = self.transit_gateway_route_tables.get_mut(rt_id) {
            if enable {
                r.propagations.push(att_id.to_string());
            } else {
                r.propagations.retain(|p| p != att_id);
            }
        }
        Ok(())
    }

    /// The static route's target: an attachment of the table's gateway, or a
    /// blackhole; exactly one of the two.
    fn tgw_route_target(
        &self,
        env: &Env,
        rt: &TransitGatewayRouteTable,
        attachment: Option<&str>,
        blackhole: bool,
    ) -> ApiResult<Option<String>> {
        match (attachment, blackhole) {
            (Some(_), true) => Err(ApiError::combination(
                "Specify either TransitGatewayAttachmentId or Blackhole, not both.",
            )),
            (None, false) => Err(ApiError::missing("TransitGatewayAttachmentId")),
            (None, true) => Ok(None),
            (Some(a), false) => {
                let att = self.tgw_attachment(&env.region, a)?;
                if att.transit_gateway_id != rt.transit_gateway_id || !att.is_live() {
                    return Err(attachment_not_found(a));
                }
                Ok(Some(a.to_string()))
            }
        }
    }

    fn live_tgw_rt(&self, env: &Env, rt_id: &str) -> ApiResult<TransitGatewayRouteTable> {
        let rt = self.tgw_route_table(&env.region, rt_id)?.clone();
        if gone(&rt.state) {
            return Err(incorrect_state(format!(
                "tgw-rtb {rt_id} is in invalid state {}.",
                rt.state
            )));
        }
        Ok(rt)
    }

    /// CreateTransitGatewayRoute (static, to an attachment or `--blackhole`).
    pub fn create_tgw_route(
        &mut self,
        env: &Env,
        rt_id: &str,
        cidr: &str,
        attachment: Option<&str>,
        blackhole: bool,
    ) -> ApiResult<TgwStaticRoute> {
        let rt = self.live_tgw_rt(env, rt_id)?;
        let cidr = parse_cidr("DestinationCidrBlock", cidr)?;
        let target = self.tgw_route_target(env, &rt, attachment, blackhole)?;
        if rt.routes.iter().any(|r| r.cidr == cidr) {
            return Err(ApiError::new(
                "RouteAlreadyExists",
                format!("Route {cidr} already exists in Transit Gateway Route Table {rt_id}."),
            ));
        }
        let route = TgwStaticRoute {
            cidr,
            attachment: target,
        };
        if let Some(r) = self.transit_gateway_route_tables.get_mut(rt_id) {
            r.routes.push(route.clone());
        }
        Ok(route)
    }

    /// ReplaceTransitGatewayRoute: the static route for `cidr` gets a new target.
    pub fn replace_tgw_route(
        &mut self,
        env: &Env,
        rt_id: &str,
        cidr: &str,
        attachment: Option<&str>,
        blackhole: bool,
    ) -> ApiResult<TgwStaticRoute> {
        let rt = self.live_tgw_rt(env, rt_id)?;
        let cidr = parse_cidr("DestinationCidrBlock", cidr)?;
        let target = self.tgw_route_target(env, &rt, attachment, blackhole)?;
        let pos = rt
            .routes
            .iter()
            .position(|r| r.cidr == cidr)
            .ok_or_else(|| tgw_route_not_found(rt_id, cidr))?;
        let route = TgwStaticRoute {
            cidr,
            attachment: target,
        };
        if let Some(r) = self.transit_gateway_route_tables.get_mut(rt_id) {
            r.routes[pos] = route.clone();
        }
        Ok(route)
    }

    /// DeleteTransitGatewayRoute: a static route only (propagated routes go by
    /// disabling the propagation).
    pub fn delete_tgw_route(
        &mut self,
        env: &Env,
        rt_id: &str,
        cidr: &str,
    ) -> ApiResult<TgwStaticRoute> {
        let rt = self.live_tgw_rt(env, rt_id)?;
        let cidr = parse_cidr("DestinationCidrBlock", cidr)?;
        let pos = rt
            .routes
            .iter()
            .position(|r| r.cidr == cidr)
            .ok_or_else(|| tgw_route_not_found(rt_id, cidr))?;
        let route = rt.routes[pos].clone();
        if let Some(r) = self.transit_gateway_route_tables.get_mut(rt_id) {
            r.routes.remove(pos);
        }
        Ok(route)
    }

    /// Whether a transit gateway state change is due at `now`.
    pub fn tgw_due(&self, now: Timestamp) -> bool {
        let due = |t: Option<Timestamp>| t.is_some_and(|t| t <= now);
        self.transit_gateways.iter().any(|t| due(t.next_transition))
            || self
                .transit_gateway_attachments
                .iter()
                .any(|a| due(a.next_transition))
            || self
                .transit_gateway_route_tables
                .iter()
                .any(|r| due(r.next_transition))
    }

    /// `pending → available`, `deleting → deleted` (visible for an hour), then gone.
    pub fn advance_tgw(&mut self, now: Timestamp) {
        fn step(state: &mut String, next: &mut Option<Timestamp>, now: Timestamp) -> bool {
            match state.as_str() {
                "pending" | "modifying" => {
                    *state = "available".into();
                    *next = None;
                }
                "deleting" => {
                    *state = "deleted".into();
                    *next = Some(now.plus_ms(TGW_DELETED_VISIBLE_MS));
                }
                "deleted" => return true,
                _ => *next = None,
            }
            false
        }
        let due = |t: Option<Timestamp>| t.is_some_and(|t| t <= now);
        for id in self.transit_gateways.ids_where(|t| due(t.next_transition)) {
            let remove = self
                .transit_gateways
                .get_mut(&id)
                .is_some_and(|t| step(&mut t.state, &mut t.next_transition, now));
            if remove {
                self.transit_gateways.remove(&id);
                self.drop_tags(&id);
            }
        }
        for id in self
            .transit_gateway_attachments
            .ids_where(|a| due(a.next_transition))
        {
            let remove = self
                .transit_gateway_attachments
                .get_mut(&id)
                .is_some_and(|a| step(&mut a.state, &mut a.next_transition, now));
            if remove {
                self.transit_gateway_attachments.remove(&id);
                self.drop_tags(&id);
            }
        }
        for id in self
            .transit_gateway_route_tables
            .ids_where(|r| due(r.next_transition))
        {
            let remove = self
                .transit_gateway_route_tables
                .get_mut(&id)
                .is_some_and(|r| step(&mut r.state, &mut r.next_transition, now));
            if remove {
                self.transit_gateway_route_tables.remove(&id);
                self.drop_tags(&id);
            }
        }
    }
}

fn tgw_route_not_found(rt_id: &str, cidr: Ipv4Net) -> ApiError {
    ApiError::new(
        "InvalidRoute.NotFound",
        format!("No static route {cidr} in Transit Gateway Route Table {rt_id}."),
    )
}

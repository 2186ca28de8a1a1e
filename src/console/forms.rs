//! Every state change the console makes. Each handler checks the session and its CSRF
//! token, then calls the same model action the EC2 API calls (through
//! [`Console::mutate`], the one door), so validation, error codes and change events are
//! those of the API. On success the browser is sent back to the resource (POST, then
//! redirect, then GET); on failure the same page is shown again with the AWS error text
//! next to the field it is about and the values the user typed.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::pages::{self, cell, idc, name_of, subnet_is_public};
use super::{Console, Ctx, FormData, Nav, aws_error_text, page, redirect};
use crate::model::ec2::instance::{Instance, InstanceState, NicSpec, RunRequest};
use crate::model::ec2::nacl::{NaclEntryInput, NetworkAcl};
use crate::model::ec2::route_table::RouteTarget;
use crate::model::ec2::sg::{PermissionInput, SecurityGroup, SgRule};
use crate::model::tags::TagSpec;
use crate::model::{ApiError, Timestamp, World};
use vpclab_netstack::internet::LEARNER_ADDR;

/// A form that failed: which form, the field the error is about (`""`: the whole form),
/// the AWS error as the CLI prints it, and what the user had typed.
pub(crate) struct Failed {
    pub form: &'static str,
    pub field: String,
    pub text: String,
    pub values: FormData,
}

impl Failed {
    /// Attaches `e` to the field whose API parameter its message names (AWS messages
    /// name the parameter: "Value (x) for parameter CidrBlock is invalid"), else to
    /// `fallback`.
    fn new(
        form: &'static str,
        e: &ApiError,
        params: &[(&str, &str)],
        fallback: &str,
        values: FormData,
    ) -> Failed {
        let field = params
            .iter()
            .find(|(needle, _)| e.message.contains(needle) || e.code.contains(needle))
            .map(|(_, f)| *f)
            .unwrap_or(fallback);
        Failed {
            form,
            field: field.to_string(),
            text: aws_error_text(e),
            values,
        }
    }
}

/// The error of `field` in `form`, if the failed form is that one.
fn err<'a>(failed: Option<&'a Failed>, form: &str, field: &str) -> Option<&'a str> {
    failed
        .filter(|f| f.form == form && f.field == field)
        .map(|f| f.text.as_str())
}

/// The value the user typed (after a failure), else `default`.
fn typed(failed: Option<&Failed>, form: &str, field: &str, default: &str) -> String {
    failed
        .filter(|f| f.form == form)
        .and_then(|f| f.values.get(field).map(str::to_string))
        .unwrap_or_else(|| default.to_string())
}

/// A labelled input with its error (if any) announced and linked by `aria-describedby`.
fn field(
    failed: Option<&Failed>,
    form: &str,
    name: &str,
    label: &str,
    hint: Option<&str>,
    input: Markup,
) -> Markup {
    let e = err(failed, form, name);
    html! {
        div.field {
            label for={ (form) "-" (name) } { (label) @if let Some(h) = hint { " " span.hint { (h) } } }
            (input)
            @if let Some(e) = e { p.error #{ (form) "-" (name) "-error" } role="alert" { (e) } }
        }
    }
}

fn text_input(
    failed: Option<&Failed>,
    form: &str,
    name: &str,
    default: &str,
    extra: Option<&str>,
) -> Markup {
    let e = err(failed, form, name);
    html! {
        input id={ (form) "-" (name) } name=(name) value=(typed(failed, form, name, default))
            placeholder=[extra]
            aria-invalid=[e.map(|_| "true")]
            aria-describedby=[e.map(|_| format!("{form}-{name}-error"))];
    }
}

fn form_alert(failed: Option<&Failed>, form: &str) -> Markup {
    html! {
        @if let Some(e) = err(failed, form, "") { p.alert role="alert" { (e) } }
    }
}

fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

fn name_tag(kind: &str, name: Option<String>) -> Vec<TagSpec> {
    name.map(|n| {
        vec![TagSpec {
            resource_type: kind.to_string(),
            tags: vec![("Name".to_string(), n)],
        }]
    })
    .unwrap_or_default()
}

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/console/vpc/create", get(create_vpc_page).post(create_vpc))
        .route("/console/launch", get(launch_page).post(launch))
        .route("/console/key-pairs", post(create_key_pair))
        .route("/console/instances/{id}/{op}", post(instance_op))
        .route("/console/sg/{id}/authorize", post(sg_authorize))
        .route("/console/sg/{id}/revoke", post(sg_revoke))
        .route("/console/nacl/{id}/entry", post(nacl_entry))
        .route("/console/nacl/{id}/delete", post(nacl_delete))
}

macro_rules! ctx_or_return {
    ($e:expr) => {
        match $e {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

// ---------------------------------------------------------------- create VPC / VPC and more

fn create_vpc_form(ctx: &Ctx, failed: Option<&Failed>) -> Markup {
    const F: &str = "vpc";
    let mode = typed(failed, F, "mode", "more");
    html! {
        h1 { "Create VPC" }
        p { "Like the AWS console: " strong { "VPC only" } " creates the network; " strong { "VPC and more" }
            " also creates subnets in one or two availability zones, an internet gateway with a public route table, "
            "private route tables, and optionally a NAT gateway. Everything is created at once, or nothing is." }
        (form_alert(failed, F))
        form.stack method="post" action="/console/vpc/create" {
            (csrf(ctx))
            fieldset {
                legend { "Resources to create" }
                label { input type="radio" name="mode" value="vpc" checked[mode == "vpc"]; " VPC only" }
                " "
                label { input type="radio" name="mode" value="more" checked[mode != "vpc"]; " VPC and more" }
            }
            (field(failed, F, "name", "Name tag", Some("(prefix of every name)"), text_input(failed, F, "name", "project", None)))
            (field(failed, F, "cidr", "IPv4 CIDR block", Some("(/16 to /28)"), text_input(failed, F, "cidr", "10.0.0.0/16", None)))
            @let azs = typed(failed, F, "azs", "2");
            @let public = typed(failed, F, "public", "1");
            @let private = typed(failed, F, "private", "1");
            @let nat = typed(failed, F, "nat", "none");
            div.row {
                div.field {
                    label for="vpc-azs" { "Availability Zones" }
                    select #vpc-azs name="azs" { @for n in ["1", "2"] { option selected[azs == n] { (n) } } }
                }
                div.field {
                    label for="vpc-public" { "Public subnets per AZ" }
                    select #vpc-public name="public" { @for n in ["0", "1"] { option selected[public == n] { (n) } } }
                }
                div.field {
                    label for="vpc-private" { "Private subnets per AZ" }
                    select #vpc-private name="private" { @for n in ["0", "1"] { option selected[private == n] { (n) } } }
                }
                div.field {
                    label for="vpc-nat" { "NAT gateways" }
                    select #vpc-nat name="nat" {
                        option value="none" selected[nat == "none"] { "None" }
                        option value="one" selected[nat == "one"] { "In 1 AZ" }
                    }
                }
            }
            div { button type="submit" { "Create VPC" } }
        }
    }
}

async fn create_vpc_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    let ctx = ctx_or_return!(c.page_ctx(&headers));
    page(
        &ctx,
        "Create VPC",
        Nav::Kind("vpcs"),
        create_vpc_form(&ctx, None),
    )
}

/// The subnet blocks of "VPC and more": the VPC split in 16 (AWS's wizard gives a /16
/// twenty-bit subnets), public ones from the bottom, private ones from the middle.
fn wizard_block(vpc: ipnet::Ipv4Net, index: u32) -> Option<ipnet::Ipv4Net> {
    let len = (vpc.prefix_len() + 4).min(28);
    vpc.subnets(len).ok()?.nth(index as usize)
}

async fn create_vpc(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let name = form.val("name");
    let cidr = form.get("cidr").unwrap_or("").trim().to_string();
    let more = form.get("mode") != Some("vpc");
    let azs: usize = if form.get("azs") == Some("1") { 1 } else { 2 };
    let public = form.get("public") != Some("0");
    let private = form.get("private") != Some("0");
    let nat = form.get("nat") == Some("one");
    let region = ctx.region.clone();
    let result = c.mutate(
        &ctx,
        if more { "vpclab:ConsoleVpcAndMore" } else { "CreateVpc" },
        |w, env| {
            let p = |s: &str| name.as_ref().map(|n| format!("{n}-{s}"));
            let vpc_id = w.create_vpc(env, &cidr, None, &name_tag("vpc", p("vpc")))?;
            if !more {
                return Ok(vpc_id);
            }
            let block = w.vpc(&region, &vpc_id)?.cidr();
            let zones = crate::model::region::zones(&region);
            let zones: Vec<_> = zones.iter().take(azs).collect();
            let mut public_ids = Vec::new();
            let mut private_ids = Vec::new();
            for (i, z) in zones.iter().enumerate() {
                let n = i as u32 + 1;
                if public {
                    let b = wizard_block(block, i as u32).ok_or_else(|| too_small(&cidr))?;
                    let id = w.create_subnet(env, &vpc_id, &b.to_string(), Some(&z.name), None,
                        &name_tag("subnet", p(&format!("subnet-public{n}-{}", z.name))))?;
                    public_ids.push(id);
                }
                if private {
                    let b = wizard_block(block, 8 + i as u32).ok_or_else(|| too_small(&cidr))?;
                    let id = w.create_subnet(env, &vpc_id, &b.to_string(), Some(&z.name), None,
                        &name_tag("subnet", p(&format!("subnet-private{n}-{}", z.name))))?;
                    private_ids.push((id, z.name.clone(), n));
                }
            }
            if !public_ids.is_empty() {
                let igw = w.create_internet_gateway(env, &name_tag("internet-gateway", p("igw")))?;
                w.attach_internet_gateway(env, &igw, &vpc_id)?;
                let rt = w.create_route_table(env, &vpc_id, &name_tag("route-table", p("rtb-public")))?;
                w.create_route(env, &rt, "0.0.0.0/0", RouteTarget::Gateway(igw))?;
                for s in &public_ids {
                    w.associate_route_table(env, &rt, s)?;
                }
            }
            let nat_id = if nat && !private_ids.is_empty() {
                let Some(first) = public_ids.first() else {
                    return Err(ApiError::invalid_value(
                        "A NAT gateway needs a public subnet: choose at least one public subnet per AZ.",
                    ));
                };
                let az = w.subnet(&region, first)?.availability_zone.clone();
                let (alloc, _) = w.allocate_address(env, &name_tag("elastic-ip", p(&format!("eip-{az}"))))?;
                Some(w.create_nat_gateway(env, first, Some(&alloc), None, None,
                    &name_tag("natgateway", p(&format!("nat-public1-{az}"))))?)
            } else {
                None
            };
            for (s, az, n) in &private_ids {
                let rt = w.create_route_table(env, &vpc_id, &name_tag("route-table", p(&format!("rtb-private{n}-{az}"))))?;
                if let Some(nat) = &nat_id {
                    w.create_route(env, &rt, "0.0.0.0/0", RouteTarget::NatGateway(nat.clone()))?;
                }
                w.associate_route_table(env, &rt, s)?;
            }
            Ok(vpc_id)
        },
    );
    match result {
        Ok(id) => redirect(&format!("/console/vpc?vpc={id}")),
        Err(e) => {
            let failed = Failed::new(
                "vpc",
                &e,
                &[("CidrBlock", "cidr"), ("CIDR", "cidr"), ("Tag", "name")],
                "",
                form,
            );
            let mut r = page(
                &ctx,
                "Create VPC",
                Nav::Kind("vpcs"),
                create_vpc_form(&ctx, Some(&failed)),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

fn too_small(cidr: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "Value ({cidr}) for parameter CidrBlock is invalid. The VPC is too small to split into the wizard's subnets; use a larger block (such as a /16) or VPC only."
    ))
}

// ---------------------------------------------------------------- key pairs and launch

async fn create_key_pair(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let name = form.get("key_name").unwrap_or("").trim().to_string();
    let key_type = match form.get("key_type") {
        Some("ed25519") => crate::keys::KeyType::Ed25519,
        _ => crate::keys::KeyType::Rsa,
    };
    // Validate before spending randomness, as the API does.
    let pre = c
        .world(&ctx)
        .and_then(|w| w.precheck_create_key_pair(&ctx.region, &name, &[]));
    let result = pre.and_then(|()| {
        let created = match key_type {
            crate::keys::KeyType::Rsa => crate::keys::pooled_rsa(),
            crate::keys::KeyType::Ed25519 => crate::keys::generate_ed25519(&mut rand::rng()),
        }
        .map_err(|e| {
            tracing::error!(error = %e, "key generation failed");
            ApiError::internal()
        })?;
        let kp = c.mutate(&ctx, "CreateKeyPair", |w, env| {
            w.create_key_pair(env, &name, &created, &[])
        })?;
        Ok((kp, created))
    });
    match result {
        Ok((kp, created)) => {
            use base64::Engine;
            // As the CLI saves `KeyMaterial`: with a final newline (OpenSSH wants one).
            let mut pem = created.private_key.clone();
            if !pem.ends_with('\n') {
                pem.push('\n');
            }
            let data = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
            let file = format!("{}.pem", kp.name);
            let body = html! {
                h1 { "Key pair " (kp.name) " created" }
                div.notice role="status" {
                    p { strong { "Download the private key now: this is the only time it is shown." }
                        " AWS keeps only the public key, and so does vpclab." }
                    p { a.button href={ "data:application/x-pem-file;base64," (data) } download=(file) { "Download " (file) } }
                    p { "Then make it readable only by you, or OpenSSH refuses to use it:" }
                    pre.cmd { "chmod 400 " (file) }
                }
                (pages_props_key(&kp))
                p { a href={ "/console/launch?key=" (kp.name) } { "Continue to launch an instance with this key" } }
            };
            page(&ctx, "Key pair created", Nav::Kind("key-pairs"), body)
        }
        Err(e) => {
            let failed = Failed::new(
                "key",
                &e,
                &[
                    ("KeyName", "key_name"),
                    ("key pair", "key_name"),
                    ("KeyPair", "key_name"),
                ],
                "key_name",
                form,
            );
            launch_response(&c, &ctx, None, Some(&failed))
        }
    }
}

fn pages_props_key(k: &crate::model::ec2::key_pair::KeyPair) -> Markup {
    html! {
        dl.props {
            dt { "Key pair ID" } dd { (cell(&idc(&k.id))) }
            dt { "Type" } dd { (k.key_type) }
            dt { "Fingerprint" } dd.mono { (k.fingerprint) }
        }
    }
}

fn launch_form(ctx: &Ctx, w: &World, q: &FormData, failed: Option<&Failed>) -> Markup {
    const F: &str = "launch";
    let region = &ctx.region;
    // As AWS's console: the newest Amazon Linux unless the user picked another.
    let newest_al = crate::catalog::IMAGES
        .iter()
        .rev()
        .find(|i| i.default_user() == "ec2-user")
        .or(crate::catalog::IMAGES.last())
        .map(|i| i.image_id)
        .unwrap_or("");
    let image = typed(failed, F, "image", q.get("image").unwrap_or(newest_al));
    let itype = typed(
        failed,
        F,
        "instance_type",
        crate::catalog::DEFAULT_INSTANCE_TYPE,
    );
    let key = typed(failed, F, "key_name", q.get("key").unwrap_or(""));
    let default_subnet = w
        .default_vpc(region)
        .and_then(|v| {
            w.subnets
                .in_region(region)
                .find(|s| s.vpc_id == v.id)
                .map(|s| s.id.clone())
        })
        .unwrap_or_default();
    let subnet = typed(failed, F, "subnet", &default_subnet);
    let sg_mode = typed(failed, F, "sg_mode", "new");
    let chosen_sgs: Vec<String> = failed
        .filter(|f| f.form == F)
        .map(|f| f.values.all("groups"))
        .unwrap_or_default();
    let fresh = failed.is_none_or(|f| f.form != F);
    let checked = |k: &str| fresh || failed.is_some_and(|f| f.values.checked(k));
    let mut images: Vec<_> = crate::catalog::IMAGES.iter().collect();
    images.reverse();
    html! {
        h1 { "Launch an instance" }
        (form_alert(failed, F))
        form.stack method="post" action="/console/launch" {
            (csrf(ctx))
            (field(failed, F, "name", "Name", None, text_input(failed, F, "name", "my-web-server", None)))
            (field(failed, F, "image", "Application and OS image (AMI)", None, html! {
                select #launch-image name="image" aria-invalid=[err(failed, F, "image").map(|_| "true")] {
                    @for i in &images { option value=(i.image_id) selected[i.image_id == image] { (i.name) " (" (i.image_id) ", user " (i.default_user()) ")" } }
                }
            }))
            (field(failed, F, "instance_type", "Instance type", Some("(t2.micro is the free-tier type)"), html! {
                select #launch-instance_type name="instance_type" {
                    @for t in crate::catalog::INSTANCE_TYPES { option selected[t.name == itype] { (t.name) } }
                }
            }))
            (field(failed, F, "key_name", "Key pair (login)", Some("(create one below if you have none)"), html! {
                select #launch-key_name name="key_name" aria-invalid=[err(failed, F, "key_name").map(|_| "true")]
                    aria-describedby=[err(failed, F, "key_name").map(|_| "launch-key_name-error")] {
                    option value="" { "Proceed without a key pair (not recommended)" }
                    @for k in w.key_pairs.in_region(region) { option selected[k.name == key] { (k.name) } }
                }
            }))
            (field(failed, F, "subnet", "Subnet", None, html! {
                select #launch-subnet name="subnet" aria-invalid=[err(failed, F, "subnet").map(|_| "true")] {
                    @for s in w.subnets.in_region(region) {
                        option value=(s.id) selected[s.id == subnet] {
                            (s.id) " · " (s.ipv4_cidr_text()) " · " (s.availability_zone) " · " (if subnet_is_public(w, &s.id) { "public" } else { "private" })
                            @let n = name_of(w, &s.id); @if !n.is_empty() { " · " (n) }
                            @if w.vpcs.get(&s.vpc_id).is_some_and(|v| v.is_default) { " (default VPC)" }
                        }
                    }
                }
            }))
            div.field {
                label { input type="checkbox" name="public_ip" checked[checked("public_ip")]; " Auto-assign public IP" }
            }
            fieldset {
                legend { "Firewall (security groups)" }
                @if let Some(e) = err(failed, F, "groups") { p.error #launch-groups-error role="alert" { (e) } }
                label { input type="radio" name="sg_mode" value="new" checked[sg_mode != "existing"]; " Create security group" }
                div {
                    label { input type="checkbox" name="ssh_my_ip" checked[checked("ssh_my_ip")]; " Allow SSH traffic from My IP (" (LEARNER_ADDR) "/32, your computer as the world sees it)" }
                    br;
                    label { input type="checkbox" name="http_anywhere" checked[checked("http_anywhere")]; " Allow HTTP traffic from the internet (0.0.0.0/0)" }
                }
                label { input type="radio" name="sg_mode" value="existing" checked[sg_mode == "existing"]; " Select existing security groups" }
                div {
                    label for="launch-groups" { "Security groups " span.hint { "(of the subnet's VPC; Ctrl-click for several)" } }
                    br;
                    select #launch-groups name="groups" multiple size="4" {
                        @for g in w.security_groups.in_region(region) {
                            option value=(g.id) selected[chosen_sgs.contains(&g.id)] { (g.group_name) " (" (g.id) ", " (g.vpc_id) ")" }
                        }
                    }
                }
            }
            div { button type="submit" { "Launch instance" } }
        }
        section aria-labelledby="newkey-h" {
            h2 #newkey-h { "Create a new key pair" }
            (form_alert(failed, "key"))
            form.row method="post" action="/console/key-pairs" {
                (csrf(ctx))
                (field(failed, "key", "key_name", "Key pair name", None, text_input(failed, "key", "key_name", "", Some("my-key"))))
                div.field {
                    label for="key-type" { "Key pair type" }
                    select #key-type name="key_type" { option value="rsa" { "RSA" } option value="ed25519" { "ED25519" } }
                }
                div { button.secondary type="submit" { "Create key pair (.pem)" } }
            }
            p.hint { "The private key downloads once as a .pem file; keep it, then run " code { "chmod 400 KEY.pem" } "." }
        }
    }
}

fn launch_response(
    c: &Console,
    ctx: &Ctx,
    q: Option<&FormData>,
    failed: Option<&Failed>,
) -> Response {
    let w = match c.world(ctx) {
        Ok(w) => w,
        Err(e) => return super::error_page(ctx, &e),
    };
    let empty = FormData::default();
    let mut r = page(
        ctx,
        "Launch an instance",
        Nav::Ec2,
        launch_form(ctx, &w, q.unwrap_or(&empty), failed),
    );
    if failed.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

async fn launch_page(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let ctx = ctx_or_return!(c.page_ctx(&headers));
    let q = pages::query_form(q.as_deref());
    launch_response(&c, &ctx, Some(&q), None)
}

async fn launch(
    State(c): State<Console>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let subnet = form.val("subnet").unwrap_or_default();
    let new_sg = form.get("sg_mode") != Some("existing");
    let name = form.val("name");
    let boot_delay_ms = c.api.boot_delay_ms;
    let result = c.mutate(&ctx, "RunInstances", |w, env| {
        let groups = if new_sg {
            let vpc = w.subnet(&env.region, &subnet)?.vpc_id.clone();
            let n = (1..)
                .find(|n| {
                    !w.security_groups
                        .iter()
                        .any(|g| g.vpc_id == vpc && g.group_name == format!("launch-wizard-{n}"))
                })
                .unwrap_or(1);
            let gname = format!("launch-wizard-{n}");
            let desc = format!(
                "launch-wizard-{n} created {}",
                env.now
                    .iso()
                    .get(..19)
                    .unwrap_or_default()
                    .replace('T', " ")
            );
            let sg = w.create_security_group(env, &gname, &desc, Some(&vpc), &[])?;
            let mut perms = Vec::new();
            if form.checked("ssh_my_ip") {
                perms.push(PermissionInput {
                    protocol: Some("tcp".into()),
                    from_port: Some("22".into()),
                    to_port: Some("22".into()),
                    cidrs: vec![(format!("{LEARNER_ADDR}/32"), Some("SSH from my IP".into()))],
                    ..Default::default()
                });
            }
            if form.checked("http_anywhere") {
                perms.push(PermissionInput {
                    protocol: Some("tcp".into()),
                    from_port: Some("80".into()),
                    to_port: Some("80".into()),
                    cidrs: vec![("0.0.0.0/0".into(), Some("HTTP from anywhere".into()))],
                    ..Default::default()
                });
            }
            if !perms.is_empty() {
                w.authorize_security_group(env, &sg, false, &perms, &[])?;
            }
            vec![sg]
        } else {
            form.all("groups")
        };
        let req = RunRequest {
            image_id: form.val("image"),
            instance_type: form.val("instance_type"),
            key_name: form.val("key_name"),
            min_count: Some(1),
            max_count: Some(1),
            network_interfaces: vec![NicSpec {
                device_index: Some(0),
                subnet_id: Some(subnet.clone()),
                associate_public_ip: Some(form.checked("public_ip")),
                groups,
                ..Default::default()
            }],
            tag_specs: name_tag("instance", name.clone()),
            boot_delay_ms,
            ..Default::default()
        };
        let (_, ids) = w.run_instances(env, &req)?;
        ids.into_iter().next().ok_or_else(ApiError::internal)
    });
    match result {
        Ok(id) => redirect(&format!("/console/r/instances/{id}")),
        Err(e) => {
            let failed = Failed::new(
                "launch",
                &e,
                &[
                    ("KeyPair", "key_name"),
                    ("key pair", "key_name"),
                    ("AMI", "image"),
                    ("image", "image"),
                    ("InstanceType", "instance_type"),
                    ("Subnet", "subnet"),
                    ("subnet", "subnet"),
                    ("Group", "groups"),
                    ("group", "groups"),
                    ("Tag", "name"),
                ],
                "",
                form,
            );
            launch_response(&c, &ctx, None, Some(&failed))
        }
    }
}

// ---------------------------------------------------------------- instances

/// The instance page: state and actions, the exact `ssh` line, addresses, console output.
pub(crate) fn instance_body(
    ctx: &Ctx,
    w: &World,
    i: &Instance,
    now: Timestamp,
    failed: Option<&Failed>,
) -> Markup {
    let v = w.instance_view(i, now);
    let user = v.image.map(|im| im.default_user()).unwrap_or("ec2-user");
    let host = if !v.public_dns_name.is_empty() {
        v.public_dns_name.clone()
    } else {
        v.public_ip.map(|p| p.to_string()).unwrap_or_default()
    };
    // The address a bastion in the VPC uses: the private IPv4, or the IPv6 address of
    // an instance in an IPv6-only subnet.
    let inside_addr = match i.ipv4() {
        Some(ip) => ip.to_string(),
        None => v
            .eni
            .and_then(|e| e.ipv6_addresses.first())
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let key = i.key_name.clone().unwrap_or_else(|| "KEY".into());
    let env = crate::model::Env::new(ctx.region.clone(), now);
    let console = w.console_output(&env, &i.id).ok().and_then(|(t, _)| t);
    html! {
        (form_alert(failed, "instance"))
        div.row {
            @for (op, label, allowed) in [
                ("start", "Start instance", v.state == InstanceState::Stopped),
                ("stop", "Stop instance", v.state == InstanceState::Running || v.state == InstanceState::Pending),
                ("reboot", "Reboot instance", v.state == InstanceState::Running),
                ("terminate", "Terminate instance", v.state != InstanceState::Terminated && v.state != InstanceState::ShuttingDown),
            ] {
                @if allowed {
                    form.inline method="post" action={ "/console/instances/" (i.id) "/" (op) } {
                        (csrf(ctx))
                        button.secondary[op != "terminate"] .danger[op == "terminate"] type="submit" { (label) }
                    }
                }
            }
        }
        (pages::render_props(vec![
            ("Instance ID", idc(&i.id)),
            ("State", pages::badge_cell(v.state.name())),
            ("Instance type", pages::txt(&i.instance_type)),
            ("AMI", idc(&i.image_id)),
            ("Key pair", pages::txt(i.key_name.clone().unwrap_or_else(|| "none".into()))),
            ("VPC", idc(&i.vpc_id)),
            ("Subnet", idc(&i.subnet_id)),
            ("Availability Zone", pages::txt(&i.availability_zone)),
            ("Private IPv4", pages::txt(if v.state == InstanceState::Terminated { String::new() } else { i.ipv4().map_or_else(|| "-".to_string(), |ip| ip.to_string()) })),
            ("Private DNS", pages::txt(&v.private_dns_name)),
            ("Public IPv4", pages::txt(v.public_ip.map(|p| p.to_string()).unwrap_or_else(|| "none".into()))),
            ("Public DNS", pages::txt(&v.public_dns_name)),
            ("Security groups", pages::txt(v.groups.iter().map(|(id, n)| format!("{n} ({id})")).collect::<Vec<_>>().join(", "))),
            ("Network interface", i.primary_eni.as_deref().map(idc).unwrap_or_else(|| pages::txt(""))),
            ("Launch time", pages::txt(i.launch_time.iso())),
        ]))
        h2 { "Connect" }
        @if host.is_empty() {
            p { "This instance has no public IP address. Reach it from another instance in its VPC (a bastion), for example "
                code { "ssh -i " (key) ".pem " (user) "@" (inside_addr) } "." }
        } @else {
            p { "With " code { "vpclab ssh-config >> ~/.ssh/config" } " done once (it routes the world's public names through vpclab), connect with OpenSSH:" }
            pre.cmd #ssh-line { "ssh -i " (key) ".pem " (user) "@" (host) }
            p { "Without the ssh-config entry:" }
            pre.cmd { "ssh -i " (key) ".pem -o ProxyCommand='vpclab connect %h %p' " (user) "@" (host) }
            p.hint { "The key file must be readable only by you: " code { "chmod 400 " (key) ".pem" } ". "
                "The security group must allow SSH (TCP 22) from your computer (" (LEARNER_ADDR) ") — "
                a href={ "/console/reach?from=me&to=" (i.id) "&proto=tcp&port=22" } { "check with Reachability" } "." }
        }
        @if let (false, Some(proxy)) = (host.is_empty(), ctx.proxy) {
            h2 { "Open it in your browser" }
            p { "A web server on this instance answers your own browser through vpclab's proxy (SOCKS5 or HTTP, "
                code { (proxy) } "): your browser's connections then leave from your computer's address in the world, so the internet gateway, network ACLs and security groups decide." }
            pre.cmd #browse-line { "curl --proxy socks5h://" (proxy) " http://" (host) "/" }
            p.hint { "In Firefox: Settings → Network Settings → Manual proxy configuration → SOCKS Host "
                code { (proxy.ip()) } ", Port " code { (proxy.port()) } ", SOCKS v5, and tick “Proxy DNS when using SOCKS v5”." }
        }
        h2 { "Console output" }
        @match console {
            Some(t) => pre.cmd { (t) },
            None => p.muted { "No console output yet (the instance has not booted)." },
        }
    }
}

async fn instance_op(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let ids = vec![id.clone()];
    let delay = c.api.boot_delay_ms;
    let result = match op.as_str() {
        "start" => c.mutate(&ctx, "StartInstances", |w, env| {
            w.start_instances(env, &ids, delay).map(|_| ())
        }),
        "stop" => c.mutate(&ctx, "StopInstances", |w, env| {
            w.stop_instances(env, &ids).map(|_| ())
        }),
        "reboot" => c.mutate(&ctx, "RebootInstances", |w, env| {
            w.reboot_instances(env, &ids)
        }),
        "terminate" => c.mutate(&ctx, "TerminateInstances", |w, env| {
            w.terminate_instances(env, &ids).map(|_| ())
        }),
        _ => return super::refused("Unknown instance action."),
    };
    match result {
        Ok(()) => redirect(&format!("/console/r/instances/{id}")),
        Err(e) => {
            let failed = Failed::new("instance", &e, &[], "", form);
            pages::detail_page(&c, &ctx, "instances", &id, Some(&failed), None)
        }
    }
}

// ---------------------------------------------------------------- security groups

pub(crate) fn sg_revoke_button(ctx: &Ctx, g: &SecurityGroup, r: &SgRule) -> Markup {
    html! {
        form.inline method="post" action={ "/console/sg/" (g.id) "/revoke" } {
            (csrf(ctx))
            input type="hidden" name="rule_id" value=(r.id);
            input type="hidden" name="direction" value=(if r.egress { "egress" } else { "ingress" });
            button.secondary type="submit" aria-label={ "Delete rule " (r.id) } { "Delete" }
        }
    }
}

pub(crate) fn sg_editor(ctx: &Ctx, g: &SecurityGroup, failed: Option<&Failed>) -> Markup {
    const F: &str = "sg";
    let dir = typed(failed, F, "direction", "ingress");
    let proto = typed(failed, F, "protocol", "tcp");
    html! {
        section aria-labelledby="sg-add-h" {
            h2 #sg-add-h { "Add a rule" }
            (form_alert(failed, F))
            form.stack method="post" action={ "/console/sg/" (g.id) "/authorize" } {
                (csrf(ctx))
                div.row {
                    div.field {
                        label for="sg-direction" { "Direction" }
                        select #sg-direction name="direction" {
                            option value="ingress" selected[dir == "ingress"] { "Inbound" }
                            option value="egress" selected[dir == "egress"] { "Outbound" }
                        }
                    }
                    (field(failed, F, "protocol", "Protocol", None, html! {
                        select #sg-protocol name="protocol" aria-invalid=[err(failed, F, "protocol").map(|_| "true")] {
                            @for (v, l) in [("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP"), ("-1", "All traffic")] {
                                option value=(v) selected[proto == v] { (l) }
                            }
                        }
                    }))
                    (field(failed, F, "from_port", "From port", None, text_input(failed, F, "from_port", "22", None)))
                    (field(failed, F, "to_port", "To port", None, text_input(failed, F, "to_port", "22", None)))
                }
                (field(failed, F, "peer", "Source or destination", Some("(a CIDR such as 203.0.113.10/32, or a security group id)"),
                    text_input(failed, F, "peer", "0.0.0.0/0", None)))
                (field(failed, F, "description", "Description", Some("(optional)"), text_input(failed, F, "description", "", None)))
                div { button type="submit" { "Add rule" } }
            }
        }
    }
}

fn sg_perm(form: &FormData) -> PermissionInput {
    let peer = form.get("peer").unwrap_or("").trim().to_string();
    let desc = form.val("description");
    let mut p = PermissionInput {
        protocol: form.val("protocol"),
        from_port: form.val("from_port"),
        to_port: form.val("to_port"),
        ..Default::default()
    };
    if p.protocol.as_deref() == Some("-1") {
        p.from_port = None;
        p.to_port = None;
    }
    if peer.starts_with("sg-") {
        p.groups = vec![(Some(peer), None, desc)];
    } else {
        p.cidrs = vec![(peer, desc)];
    }
    p
}

async fn sg_authorize(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let egress = form.get("direction") == Some("egress");
    let perm = sg_perm(&form);
    let action = if egress {
        "AuthorizeSecurityGroupEgress"
    } else {
        "AuthorizeSecurityGroupIngress"
    };
    match c.mutate(&ctx, action, |w, env| {
        w.authorize_security_group(env, &id, egress, &[perm], &[])
    }) {
        Ok(_) => redirect(&format!("/console/r/security-groups/{id}")),
        Err(e) => {
            let failed = Failed::new(
                "sg",
                &e,
                &[
                    ("port", "from_port"),
                    ("Port", "from_port"),
                    ("protocol", "protocol"),
                    ("CIDR", "peer"),
                    ("CidrIp", "peer"),
                    ("cidr", "peer"),
                    ("group", "peer"),
                    ("Group", "peer"),
                    ("Duplicate", "peer"),
                ],
                "",
                form,
            );
            pages::detail_page(&c, &ctx, "security-groups", &id, Some(&failed), None)
        }
    }
}

async fn sg_revoke(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let egress = form.get("direction") == Some("egress");
    let rule = form.val("rule_id").into_iter().collect::<Vec<_>>();
    let action = if egress {
        "RevokeSecurityGroupEgress"
    } else {
        "RevokeSecurityGroupIngress"
    };
    match c.mutate(&ctx, action, |w, env| {
        w.revoke_security_group(env, &id, egress, &[], &rule)
    }) {
        Ok(()) => redirect(&format!("/console/r/security-groups/{id}")),
        Err(e) => {
            let failed = Failed::new("sg", &e, &[], "", form);
            pages::detail_page(&c, &ctx, "security-groups", &id, Some(&failed), None)
        }
    }
}

// ---------------------------------------------------------------- network ACLs

pub(crate) fn nacl_editor(ctx: &Ctx, n: &NetworkAcl, failed: Option<&Failed>) -> Markup {
    const F: &str = "nacl";
    let dir = typed(failed, F, "direction", "ingress");
    let proto = typed(failed, F, "protocol", "6");
    let action = typed(failed, F, "rule_action", "allow");
    let mode = typed(failed, F, "mode", "create");
    html! {
        section aria-labelledby="nacl-edit-h" {
            h2 #nacl-edit-h { "Add or replace a rule" }
            (form_alert(failed, F))
            form.stack method="post" action={ "/console/nacl/" (n.id) "/entry" } {
                (csrf(ctx))
                div.row {
                    div.field {
                        label for="nacl-mode" { "Operation" }
                        select #nacl-mode name="mode" {
                            option value="create" selected[mode == "create"] { "Add a new rule" }
                            option value="replace" selected[mode == "replace"] { "Replace the rule with this number" }
                        }
                    }
                    div.field {
                        label for="nacl-direction" { "Direction" }
                        select #nacl-direction name="direction" {
                            option value="ingress" selected[dir == "ingress"] { "Inbound" }
                            option value="egress" selected[dir == "egress"] { "Outbound" }
                        }
                    }
                    (field(failed, F, "rule_number", "Rule number", Some("(1-32766)"), text_input(failed, F, "rule_number", "100", None)))
                    (field(failed, F, "protocol", "Protocol", None, html! {
                        select #nacl-protocol name="protocol" {
                            @for (v, l) in [("6", "TCP"), ("17", "UDP"), ("1", "ICMP"), ("-1", "All traffic")] {
                                option value=(v) selected[proto == v] { (l) }
                            }
                        }
                    }))
                }
                div.row {
                    (field(failed, F, "port_from", "Port range from", None, text_input(failed, F, "port_from", "22", None)))
                    (field(failed, F, "port_to", "to", None, text_input(failed, F, "port_to", "22", None)))
                    (field(failed, F, "cidr", "Source / destination CIDR", None, text_input(failed, F, "cidr", "0.0.0.0/0", None)))
                    div.field {
                        label for="nacl-rule_action" { "Allow / Deny" }
                        select #nacl-rule_action name="rule_action" {
                            option value="allow" selected[action == "allow"] { "Allow" }
                            option value="deny" selected[action == "deny"] { "Deny" }
                        }
                    }
                }
                div { button type="submit" { "Save rule" } }
            }
            h2 { "Delete a rule" }
            form.row method="post" action={ "/console/nacl/" (n.id) "/delete" } {
                (csrf(ctx))
                div.field {
                    label for="nacl-del-direction" { "Direction" }
                    select #nacl-del-direction name="direction" { option value="ingress" { "Inbound" } option value="egress" { "Outbound" } }
                }
                (field(failed, "nacl-del", "rule_number", "Rule number", None, text_input(failed, "nacl-del", "rule_number", "", None)))
                div { button.danger type="submit" { "Delete rule" } }
            }
        }
    }
}

async fn nacl_entry(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let proto = form.val("protocol");
    let ported = matches!(proto.as_deref(), Some("6") | Some("17"));
    let input = NaclEntryInput {
        rule_number: form.val("rule_number"),
        egress: form.get("direction") == Some("egress"),
        protocol: proto.clone(),
        rule_action: form.val("rule_action"),
        cidr_block: form.val("cidr"),
        ipv6_cidr_block: None,
        port_from: if ported { form.val("port_from") } else { None },
        port_to: if ported { form.val("port_to") } else { None },
        icmp_type: (proto.as_deref() == Some("1")).then(|| "-1".to_string()),
        icmp_code: (proto.as_deref() == Some("1")).then(|| "-1".to_string()),
    };
    let replace = form.get("mode") == Some("replace");
    let result = if replace {
        c.mutate(&ctx, "ReplaceNetworkAclEntry", |w, env| {
            w.replace_network_acl_entry(env, &id, &input)
        })
    } else {
        c.mutate(&ctx, "CreateNetworkAclEntry", |w, env| {
            w.create_network_acl_entry(env, &id, &input)
        })
    };
    let anchor = pages::nacl_anchor(
        input.egress,
        form.val("rule_number").and_then(|n| n.parse().ok()),
    );
    match result {
        Ok(()) => redirect(&format!("/console/r/network-acls/{id}#{anchor}")),
        Err(e) => {
            let failed = Failed::new(
                "nacl",
                &e,
                &[
                    ("RuleNumber", "rule_number"),
                    ("rule number", "rule_number"),
                    ("NetworkAclEntry", "rule_number"),
                    ("CidrBlock", "cidr"),
                    ("CIDR", "cidr"),
                    ("Port", "port_from"),
                    ("port", "port_from"),
                    ("rotocol", "protocol"),
                ],
                "",
                form,
            );
            pages::detail_page(&c, &ctx, "network-acls", &id, Some(&failed), None)
        }
    }
}

async fn nacl_delete(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<FormData>,
) -> Response {
    let ctx = ctx_or_return!(c.post_ctx(&headers, &form));
    let egress = form.get("direction") == Some("egress");
    let n = form.get("rule_number").unwrap_or("").trim().to_string();
    match c.mutate(&ctx, "DeleteNetworkAclEntry", |w, env| {
        w.delete_network_acl_entry(env, &id, &n, egress)
    }) {
        Ok(()) => redirect(&format!("/console/r/network-acls/{id}")),
        Err(e) => {
            let failed = Failed::new("nacl-del", &e, &[], "rule_number", form);
            pages::detail_page(&c, &ctx, "network-acls", &id, Some(&failed), None)
        }
    }
}

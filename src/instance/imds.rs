//! Instance metadata (IMDS), as an HTTP/1.1 responder over any stream: the caller
//! accepts connections to 169.254.169.254:80 on the instance's own stack and hands them
//! here; the shell's `curl` reaches it the same way.
//!
//! IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
//! (1–21600) returns a session token; requests carry it in `X-aws-ec2-metadata-token`.
//! IMDSv1 (no token) is answered unless the instance requires v2 (`HttpTokens=required`),
//! in which case it gets 401 — as documented in the EC2 user guide ("Use IMDSv2").

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite};

use super::InstanceState;
use crate::http1::{self, Request, Response};

/// The longest session a token may ask for (6 hours).
const MAX_TTL: u64 = 21600;

/// Serves metadata requests on one connection until the client closes it (every answer
/// says `Connection: close`, as EC2's does).
pub async fn serve_imds<S>(stream: S, inst: Arc<InstanceState>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let handler: http1::Handler = Arc::new(move |req: &Request| answer(&inst, req));
    http1::serve_connection(stream, http1::NO_PEER, handler).await
}

/// A response with EC2's metadata headers.
fn ec2ws(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    Response::new(status, content_type, body)
        .with_header("Server", "EC2ws")
        .with_header("Connection", "close")
}

fn text(body: &str) -> Response {
    ec2ws(200, "text/plain", body)
}

fn error_page(status: u16) -> Response {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{status} - {reason}</title>\n </head>\n <body>\n  <h1>{status} - {reason}</h1>\n </body>\n</html>\n"
    );
    ec2ws(status, "text/html", body)
}

/// The response to one request (a HEAD request gets the same headers; the server drops
/// the body).
pub fn answer(inst: &InstanceState, req: &Request) -> Response {
    let path = req.path();
    if path == "/latest/api/token" {
        if req.method != "PUT" {
            return error_page(405);
        }
        // A forwarded request is refused: the token is meant for the instance itself.
        if req.header("x-forwarded-for").is_some() {
            return error_page(403);
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TTL).contains(t)) else {
            return error_page(400);
        };
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 42]>());
        let expiry = tokio::time::Instant::now() + Duration::from_secs(ttl);
        inst.lock_runtime()
            .imds_tokens
            .insert(token.clone(), expiry);
        return Response::new(200, "text/plain", token)
            .with_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl.to_string())
            .with_header("Server", "EC2ws")
            .with_header("Connection", "close");
    }
    if req.method != "GET" && req.method != "HEAD" {
        return error_page(405);
    }
    let p = inst.profile();
    match req.header("x-aws-ec2-metadata-token") {
        Some(token) => {
            let now = tokio::time::Instant::now();
            let mut rt = inst.lock_runtime();
            rt.imds_tokens.retain(|_, exp| *exp > now);
            if !rt.imds_tokens.contains_key(token) {
                return error_page(401);
            }
        }
        None if p.imds_v2_required => return error_page(401),
        None => {}
    }
    match lookup(inst, path) {
        Some(Entry::Leaf(v)) => text(&v),
        Some(Entry::Dir(items)) => text(&items.join("\n")),
        Some(Entry::Bytes(b)) => ec2ws(200, "application/octet-stream", b),
        None => error_page(404),
    }
}

enum Entry {
    Leaf(String),
    Dir(Vec<String>),
    Bytes(Vec<u8>),
}

fn dir(items: &[&str]) -> Option<Entry> {
    Some(Entry::Dir(items.iter().map(|s| s.to_string()).collect()))
}

fn lookup(inst: &InstanceState, path: &str) -> Option<Entry> {
    let p = inst.profile();
    let path = path.trim_start_matches('/');
    let (version, rest) = path.split_once('/').unwrap_or((path, ""));
    if version != "latest" && !version.starts_with("20") {
        if version.is_empty() {
            return Some(Entry::Dir(vec!["latest".to_string()]));
        }
        return None;
    }
    let leaf = |s: String| Some(Entry::Leaf(s));
    let subnet = p
        .ipv4()
        .and_then(|ip| ipnet::Ipv4Net::new(ip, p.subnet_prefix_len).ok())
        .map(|n| n.trunc().to_string())
        .unwrap_or_default();
    let mac = p.mac.clone();
    let mac_prefix = format!("meta-data/network/interfaces/macs/{mac}/");
    match rest {
        "" => dir(&["dynamic", "meta-data", "user-data"]),
        "user-data" => {
            if p.user_data.is_empty() {
                None
            } else {
                Some(Entry::Bytes(p.user_data.clone()))
            }
        }
        "meta-data" | "meta-data/" => {
            let mut items = vec![
                "ami-id",
                "ami-launch-index",
                "ami-manifest-path",
                "block-device-mapping/",
                "events/",
                "hostname",
                "instance-action",
                "instance-id",
                "instance-life-cycle",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "mac",
                "network/",
                "placement/",
                "profile",
            ];
            if p.public_ip.is_some() {
                items.push("public-hostname");
                items.push("public-ipv4");
            }
            if p.key_name.is_some() {
                items.push("public-keys/");
            }
            if p.iam.is_some() {
                items.push("iam/");
            }
            items.extend(["reservation-id", "security-groups", "services/"]);
            dir(&items)
        }
        "meta-data/ami-id" => leaf(p.ami_id.clone()),
        "meta-data/ami-launch-index" => leaf("0".into()),
        "meta-data/ami-manifest-path" => leaf("(unknown)".into()),
        "meta-data/block-device-mapping" | "meta-data/block-device-mapping/" => {
            dir(&["ami", "root"])
        }
        "meta-data/block-device-mapping/ami" | "meta-data/block-device-mapping/root" => {
            leaf("/dev/xvda".into())
        }
        "meta-data/events" | "meta-data/events/" => dir(&["maintenance/"]),
        "meta-data/hostname" | "meta-data/local-hostname" => leaf(p.local_hostname()),
        "meta-data/instance-action" => leaf("none".into()),
        "meta-data/instance-id" => leaf(p.instance_id.clone()),
        "meta-data/instance-life-cycle" => leaf("on-demand".into()),
        "meta-data/instance-type" => leaf(p.instance_type.clone()),
        // No IPv4 address (IPv6-only subnet): no such entry.
        "meta-data/local-ipv4" => p.ipv4().map(|ip| Entry::Leaf(ip.to_string())),
        "meta-data/mac" => leaf(mac.clone()),
        "meta-data/profile" => leaf("default-hvm".into()),
        "meta-data/reservation-id" => leaf(format!("r-{}", p.instance_id.trim_start_matches("i-"))),
        "meta-data/public-ipv4" => p.public_ip.map(|ip| Entry::Leaf(ip.to_string())),
        "meta-data/public-hostname" => p.public_hostname().map(Entry::Leaf),
        "meta-data/security-groups" => leaf(p.security_groups.join("\n")),
        r if r == "meta-data/iam" || r.starts_with("meta-data/iam/") => {
            iam_entry(p.iam.as_ref()?, &r["meta-data/iam".len()..])
        }
        "meta-data/placement" | "meta-data/placement/" => {
            dir(&["availability-zone", "availability-zone-id", "region"])
        }
        "meta-data/placement/availability-zone" => leaf(p.availability_zone.clone()),
        "meta-data/placement/availability-zone-id" => {
            let suffix = p.availability_zone.chars().last().unwrap_or('a');
            let n = (suffix as u32).saturating_sub('a' as u32) + 1;
            leaf(format!("use1-az{n}"))
        }
        "meta-data/placement/region" => leaf(p.region.clone()),
        "meta-data/services" | "meta-data/services/" => dir(&["domain", "partition"]),
        "meta-data/services/domain" => leaf("amazonaws.com".into()),
        "meta-data/services/partition" => leaf("aws".into()),
        "meta-data/public-keys" | "meta-data/public-keys/" => p
            .key_name
            .as_ref()
            .map(|k| Entry::Dir(vec![format!("0={k}")])),
        "meta-data/public-keys/0" | "meta-data/public-keys/0/" => p
            .key_name
            .as_ref()
            .map(|_| Entry::Dir(vec!["openssh-key".into()])),
        "meta-data/public-keys/0/openssh-key" => p.authorized_key.as_ref().map(|k| {
            let mut line = k.trim_end().to_string();
            line.push('\n');
            Entry::Leaf(line)
        }),
        "meta-data/network" | "meta-data/network/" => dir(&["interfaces/"]),
        "meta-data/network/interfaces" | "meta-data/network/interfaces/" => dir(&["macs/"]),
        "meta-data/network/interfaces/macs" | "meta-data/network/interfaces/macs/" => {
            Some(Entry::Dir(vec![format!("{mac}/")]))
        }
        r if r == mac_prefix || r == mac_prefix.trim_end_matches('/') => {
            let mut items = vec![
                "device-number",
                "interface-id",
                "local-hostname",
                "local-ipv4s",
                "mac",
                "owner-id",
            ];
            if p.public_ip.is_some() {
                items.extend(["public-hostname", "public-ipv4s"]);
            }
            items.extend([
                "security-group-ids",
                "security-groups",
                "subnet-id",
                "subnet-ipv4-cidr-block",
                "vpc-id",
            ]);
            dir(&items)
        }
        r if r.starts_with(&mac_prefix) => match &r[mac_prefix.len()..] {
            "device-number" => leaf("0".into()),
            "interface-id" => leaf(p.interface_id.clone()),
            "local-hostname" => leaf(p.local_hostname()),
            "local-ipv4s" => p.ipv4().map(|ip| Entry::Leaf(ip.to_string())),
            "mac" => leaf(mac.clone()),
            "owner-id" => leaf(p.account_id.clone()),
            "public-hostname" => p.public_hostname().map(Entry::Leaf),
            "public-ipv4s" => p.public_ip.map(|ip| Entry::Leaf(ip.to_string())),
            "security-groups" => leaf(p.security_groups.join("\n")),
            "security-group-ids" => leaf(p.security_group_ids.join("\n")),
            "subnet-id" => leaf(p.subnet_id.clone()),
            "subnet-ipv4-cidr-block" => leaf(subnet.clone()),
            "vpc-id" => leaf(p.vpc_id.clone()),
            _ => None,
        },
        "dynamic" | "dynamic/" => dir(&["instance-identity/"]),
        "dynamic/instance-identity" | "dynamic/instance-identity/" => dir(&["document"]),
        "dynamic/instance-identity/document" => leaf(
            serde_json::to_string_pretty(&serde_json::json!({
                "accountId": p.account_id,
                "architecture": "x86_64",
                "availabilityZone": p.availability_zone,
                "imageId": p.ami_id,
                "instanceId": p.instance_id,
                "instanceType": p.instance_type,
                "privateIp": p.ipv4().map(|ip| ip.to_string()),
                "region": p.region,
                "version": "2017-09-30",
            }))
            .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// `meta-data/iam…` (the EC2 user guide, "Retrieve security credentials from instance
/// metadata"): `info` describes the profile, `security-credentials/` lists the role and
/// `security-credentials/ROLE` holds its current temporary credentials as JSON.
fn iam_entry(iam: &crate::instance::ImdsIam, rest: &str) -> Option<Entry> {
    let pretty = |v: serde_json::Value| {
        Some(Entry::Leaf(
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        ))
    };
    match rest {
        "" | "/" => {
            let mut items = vec!["info"];
            if iam.role.is_some() {
                items.push("security-credentials/");
            }
            dir(&items)
        }
        "/info" => pretty(serde_json::json!({
            "Code": "Success",
            "LastUpdated": iam.associated,
            "InstanceProfileArn": iam.profile_arn,
            "InstanceProfileId": iam.profile_id,
        })),
        "/security-credentials" | "/security-credentials/" => {
            iam.role.as_ref().map(|r| Entry::Leaf(r.clone()))
        }
        other => {
            let name = other.strip_prefix("/security-credentials/")?;
            let name = name.strip_suffix('/').unwrap_or(name);
            if iam.role.as_deref() != Some(name) {
                return None;
            }
            let c = iam.credentials.as_ref()?;
            pretty(serde_json::json!({
                "Code": "Success",
                "LastUpdated": c.last_updated,
                "Type": "AWS-HMAC",
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.token,
                "Expiration": c.expiration,
            }))
        }
    }
}

//! The names of the simulated internet that no hosted zone holds: well-known public
//! names (`example.com`, `www.google.com` …) and AWS's service endpoints
//! (`ec2.us-east-1.amazonaws.com`, `BUCKET.s3.eu-west-1.amazonaws.com` …), each with a
//! stable address inside the fabric (netstack's address plan: well-known names in
//! 198.51.100.128/26, endpoints in 198.51.100.0/26, `checkip.amazonaws.com` at the
//! what-is-my-IP service). These are documentation addresses: nothing real answers
//! there, so even an escaped packet could reach no one.
//!
//! A name in neither table is NXDOMAIN, as a name nobody registered is on the internet.
//! The engine asks here only after the learner's public hosted zones (which win for
//! names outside AWS's domains) and EC2's instance names.

use std::net::{Ipv4Addr, Ipv6Addr};

use vpclab_netstack::internet::{SERVICE_ENDPOINTS, WELL_KNOWN, WELL_KNOWN6, WHATISMYIP_ADDR};

/// Well-known names, by offset inside [`WELL_KNOWN`] (offset 0 is the network
/// address, unused). Names sharing an offset are one site (`www.` and its apex).
const WELL_KNOWN_NAMES: &[(&str, u8)] = &[
    ("example.com", 1),
    ("www.example.com", 1),
    ("example.org", 2),
    ("www.example.org", 2),
    ("example.net", 3),
    ("www.example.net", 3),
    ("google.com", 4),
    ("www.google.com", 5),
    ("amazon.com", 6),
    ("www.amazon.com", 6),
    ("aws.amazon.com", 7),
    ("github.com", 8),
    ("www.github.com", 8),
    ("api.github.com", 9),
    ("raw.githubusercontent.com", 10),
    ("pypi.org", 11),
    ("files.pythonhosted.org", 12),
    ("registry.npmjs.org", 13),
    ("www.npmjs.com", 14),
    ("crates.io", 15),
    ("static.crates.io", 16),
    ("index.crates.io", 17),
    ("ubuntu.com", 18),
    ("archive.ubuntu.com", 19),
    ("security.ubuntu.com", 20),
    ("wikipedia.org", 21),
    ("www.wikipedia.org", 21),
    ("cloudflare.com", 22),
    ("www.cloudflare.com", 22),
    ("docker.io", 23),
    ("registry-1.docker.io", 24),
    ("stackoverflow.com", 25),
];

/// Well-known sites without an IPv6 address (GitHub's names publish A records only):
/// their AAAA query is NODATA, so a learner meets an IPv4-only name too.
const IPV4_ONLY: &[&str] = &["github.com", "www.github.com", "api.github.com"];

/// Names of "what is my IP" services: the world's one at 192.0.2.10.
const WHAT_IS_MY_IP: &[&str] = &[
    "checkip.amazonaws.com",
    "icanhazip.com",
    "ifconfig.me",
    "api.ipify.org",
];

/// The AWS services whose endpoint names resolve, with the offset of their address
/// inside [`SERVICE_ENDPOINTS`]. `global`: the service also (or only) answers at
/// `SERVICE.amazonaws.com` (AWS "Global endpoints": IAM, STS's legacy global
/// endpoint, S3's legacy `s3.amazonaws.com`, Route 53).
struct Endpoint {
    service: &'static str,
    offset: u8,
    global: bool,
    regional: bool,
}

const fn ep(service: &'static str, offset: u8, global: bool, regional: bool) -> Endpoint {
    Endpoint {
        service,
        offset,
        global,
        regional,
    }
}

const ENDPOINTS: &[Endpoint] = &[
    ep("ec2", 1, false, true),
    ep("s3", 2, true, true),
    ep("sts", 3, true, true),
    ep("iam", 4, true, false),
    ep("dynamodb", 5, false, true),
    ep("logs", 6, false, true),
    ep("monitoring", 7, false, true),
    ep("sns", 8, false, true),
    ep("sqs", 9, false, true),
    ep("ssm", 10, false, true),
    ep("route53", 11, true, false),
    ep("lambda", 12, false, true),
    ep("kms", 13, false, true),
    ep("secretsmanager", 14, false, true),
    ep("elasticloadbalancing", 15, false, true),
    ep("autoscaling", 16, false, true),
    ep("cloudformation", 17, false, true),
    ep("events", 18, false, true),
    ep("ecs", 19, false, true),
    ep("api.ecr", 20, false, true),
];

fn in_block(block: ipnet::Ipv4Net, offset: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(block.network()) + u32::from(offset))
}

/// The address of a public name of the simulated internet, if it has one. `key` is
/// lower-case without the trailing dot.
pub fn lookup(key: &str) -> Option<Ipv4Addr> {
    if WHAT_IS_MY_IP.contains(&key) {
        return Some(WHATISMYIP_ADDR);
    }
    if let Some(&(_, offset)) = WELL_KNOWN_NAMES.iter().find(|(n, _)| *n == key) {
        return Some(in_block(WELL_KNOWN, offset));
    }
    endpoint(key).map(|(offset, _)| in_block(SERVICE_ENDPOINTS, offset))
}

/// The IPv6 address of a public name (its AAAA record), if it has one: the well-known
/// sites, at the mirror of their IPv4 address in [`WELL_KNOWN6`] (198.51.100.129 →
/// 3fff:198:51:100::129, the last octet's decimal digits read as hexadecimal so the two
/// look alike). AWS's endpoint names and the what-is-my-IP names have none: the legacy
/// endpoint names are IPv4-only on AWS too (dual-stack endpoints have other names).
pub fn lookup6(key: &str) -> Option<Ipv6Addr> {
    if IPV4_ONLY.contains(&key) {
        return None;
    }
    let &(_, offset) = WELL_KNOWN_NAMES.iter().find(|(n, _)| *n == key)?;
    let last = in_block(WELL_KNOWN, offset).octets()[3];
    let group = u16::from_str_radix(&last.to_string(), 16).ok()?;
    let base = u128::from(WELL_KNOWN6.network());
    Some(Ipv6Addr::from(base | u128::from(group)))
}

/// The service of an endpoint name and its region (`None` for a global endpoint):
/// `ec2.eu-west-1.amazonaws.com` → ("ec2", Some("eu-west-1")). S3's virtual-hosted
/// names (`BUCKET.s3.REGION.amazonaws.com`, `BUCKET.s3.amazonaws.com`) count as S3's.
pub fn endpoint_service(key: &str) -> Option<(&'static str, Option<&'static str>)> {
    let (offset, region) = endpoint(key)?;
    let service = ENDPOINTS.iter().find(|e| e.offset == offset)?.service;
    Some((service, region))
}

fn endpoint(key: &str) -> Option<(u8, Option<&'static str>)> {
    // Lambda function URLs (`<url-id>.lambda-url.<region>.on.aws`) are served by
    // Lambda's endpoint host.
    if let Some(rest) = key.strip_suffix(".on.aws")
        && let Some((id, region)) = rest.split_once(".lambda-url.")
        && !id.is_empty()
        && !id.contains('.')
        && let Some(info) = crate::model::region::region(region)
    {
        let lambda = ENDPOINTS.iter().find(|e| e.service == "lambda")?;
        return Some((lambda.offset, Some(info.name)));
    }
    let rest = key.strip_suffix(".amazonaws.com")?;
    // SERVICE.REGION, or SERVICE alone for a global endpoint.
    let regional = |name: &str| -> Option<(u8, Option<&'static str>)> {
        for e in ENDPOINTS {
            if name == e.service && e.global {
                return Some((e.offset, None));
            }
            if e.regional
                && let Some(region) = name
                    .strip_prefix(e.service)
                    .and_then(|r| r.strip_prefix('.'))
                && let Some(info) = crate::model::region::region(region)
            {
                return Some((e.offset, Some(info.name)));
            }
        }
        None
    };
    if let Some(hit) = regional(rest) {
        return Some(hit);
    }
    // S3 website endpoints: BUCKET.s3-website-REGION or BUCKET.s3-website.REGION (the
    // two forms AWS uses, depending on the region), served by S3 like its API.
    if let Some((bucket, tail)) = rest.rsplit_once(".s3-website") {
        let region = tail.strip_prefix('-').or_else(|| tail.strip_prefix('.'))?;
        let info = crate::model::region::region(region)?;
        return (!bucket.is_empty()).then_some((2, Some(info.name)));
    }
    // S3's legacy dash form, `s3-REGION` for path style and `BUCKET.s3-REGION` for
    // virtual-hosted style (S3 User Guide, "Virtual hosting of general purpose
    // buckets": some older Regions also take `s3-Region`; every region vpclab offers
    // predates the cut-off, 2019-03-20). The seed's URL structure uses it.
    let dash = |label: &str| {
        label
            .strip_prefix("s3-")
            .and_then(crate::model::region::region)
            .map(|info| (2, Some(info.name)))
    };
    if let Some(hit) = dash(rest) {
        return Some(hit);
    }
    if let Some((bucket, label)) = rest.rsplit_once('.')
        && !bucket.is_empty()
        && let Some(hit) = dash(label)
    {
        return Some(hit);
    }
    // Virtual-hosted S3: BUCKET.s3[.REGION] (a bucket name may itself hold dots).
    let (bucket, s3) = rest.split_once(".s3")?;
    let s3 = format!("s3{s3}");
    match regional(&s3) {
        Some((2, region)) if !bucket.is_empty() => Some((2, region)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS-managed prefix lists (and so gateway endpoints) hold the addresses this
    /// table gives S3 and DynamoDB: the model knows them without asking DNS.
    #[test]
    fn prefix_list_addresses_are_the_resolved_endpoint_addresses() {
        use crate::model::ec2::prefix_list::{MANAGED_SERVICES, service_address};
        for service in MANAGED_SERVICES {
            for region in ["us-east-1", "eu-west-1"] {
                assert_eq!(
                    service_address(service),
                    lookup(&format!("{service}.{region}.amazonaws.com")),
                    "{service} in {region}"
                );
            }
        }
    }

    #[test]
    fn well_known_names_have_stable_addresses_in_the_documentation_block() {
        let a = lookup("example.com").unwrap();
        assert_eq!(a, lookup("www.example.com").unwrap());
        assert_eq!(a, "198.51.100.129".parse::<Ipv4Addr>().unwrap());
        assert!(WELL_KNOWN.contains(&lookup("www.google.com").unwrap()));
        assert_ne!(lookup("google.com"), lookup("www.google.com"));
        assert_eq!(lookup("checkip.amazonaws.com"), Some(WHATISMYIP_ADDR));
        assert_eq!(lookup("no-such-name.example"), None);
        assert_eq!(lookup("example.co"), None);
    }

    /// Well-known sites answer AAAA at the mirror of their IPv4 address in 3fff::/20,
    /// which the catch-all host serves; IPv4-only names and AWS endpoints have none.
    #[test]
    fn well_known_names_have_ipv6_mirrors_except_the_ipv4_only_ones() {
        let v6 = lookup6("example.com").unwrap();
        assert_eq!(v6, "3fff:198:51:100::129".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lookup6("www.example.com"), Some(v6));
        assert!(vpclab_netstack::internet::is_internet_host6(v6));
        let google = lookup6("www.google.com").unwrap();
        assert_eq!(google, "3fff:198:51:100::133".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lookup6("github.com"), None);
        assert!(lookup("github.com").is_some());
        assert_eq!(lookup6("ec2.us-east-1.amazonaws.com"), None);
        assert_eq!(lookup6("checkip.amazonaws.com"), None);
        assert_eq!(lookup6("no-such-name.example"), None);
    }

    #[test]
    fn endpoint_names_follow_aws_syntax_and_known_regions() {
        assert_eq!(
            endpoint_service("ec2.us-east-1.amazonaws.com"),
            Some(("ec2", Some("us-east-1")))
        );
        assert_eq!(endpoint_service("iam.amazonaws.com"), Some(("iam", None)));
        assert_eq!(endpoint_service("s3.amazonaws.com"), Some(("s3", None)));
        // Website endpoints, both forms, are S3's too.
        assert_eq!(
            endpoint_service("my-site.s3-website-us-east-1.amazonaws.com"),
            Some(("s3", Some("us-east-1")))
        );
        assert_eq!(
            endpoint_service("my.site.s3-website.eu-central-1.amazonaws.com"),
            Some(("s3", Some("eu-central-1")))
        );
        assert_eq!(endpoint_service("s3-website-us-east-1.amazonaws.com"), None);
        // The legacy dash form (the seed's `https://s3-us-west-1.amazonaws.com/BUCKET/KEY`).
        assert_eq!(
            endpoint_service("s3-us-west-1.amazonaws.com"),
            Some(("s3", Some("us-west-1")))
        );
        assert_eq!(
            endpoint_service("ofkido.org.s3-us-west-1.amazonaws.com"),
            Some(("s3", Some("us-west-1")))
        );
        assert_eq!(
            lookup("s3-eu-west-1.amazonaws.com"),
            lookup("s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(endpoint_service("s3-mars-1.amazonaws.com"), None);
        assert_eq!(endpoint_service("ec2-us-east-1.amazonaws.com"), None);
        assert_eq!(endpoint_service("x.s3-website-mars-1.amazonaws.com"), None);
        assert_eq!(
            endpoint_service("my.bucket.s3.eu-west-1.amazonaws.com"),
            Some(("s3", Some("eu-west-1")))
        );
        assert_eq!(
            endpoint_service("photos.s3.amazonaws.com"),
            Some(("s3", None))
        );
        assert_eq!(
            endpoint_service("logs.us-west-2.amazonaws.com"),
            Some(("logs", Some("us-west-2")))
        );
        // Not a region, not a global endpoint, not an endpoint at all.
        assert_eq!(endpoint_service("ec2.mars-north-1.amazonaws.com"), None);
        assert_eq!(endpoint_service("ec2.amazonaws.com"), None);
        // Function URLs resolve to Lambda's endpoint.
        assert_eq!(
            endpoint_service("abc123.lambda-url.eu-west-1.on.aws"),
            Some(("lambda", Some("eu-west-1")))
        );
        assert_eq!(endpoint_service("lambda-url.eu-west-1.on.aws"), None);
        assert_eq!(endpoint_service("x.lambda-url.mars-1.on.aws"), None);
        assert_eq!(endpoint_service("iam.us-east-1.amazonaws.com"), None);
        assert_eq!(endpoint_service(".s3.amazonaws.com"), None);
        assert_eq!(endpoint_service("ec2.us-east-1.amazonaws.com.evil"), None);
        let ec2 = lookup("ec2.us-east-1.amazonaws.com").unwrap();
        assert!(SERVICE_ENDPOINTS.contains(&ec2));
        assert_eq!(lookup("ec2.eu-west-1.amazonaws.com"), Some(ec2));
        assert_ne!(lookup("s3.us-east-1.amazonaws.com"), Some(ec2));
    }
}

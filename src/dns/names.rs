//! EC2's DNS names for instance addresses, as AWS spells them.
//!
//! - private: `ip-10-0-1-5.ec2.internal` in us-east-1, `ip-10-0-1-5.<region>.compute.internal`
//!   elsewhere;
//! - public: `ec2-198-18-0-7.compute-1.amazonaws.com` in us-east-1,
//!   `ec2-198-18-0-7.<region>.compute.amazonaws.com` elsewhere;
//! - resource-based: `i-0123456789abcdef0.ec2.internal` (same suffix as the private name);
//! - reverse: `5.1.0.10.in-addr.arpa` (RFC 1035 §3.5).
//!
//! The control plane can use these to fill `PrivateDnsName`/`PublicDnsName` in
//! `DescribeInstances`, so that what the API shows is what resolves.

use std::net::Ipv4Addr;

/// The private DNS suffix of a region.
pub fn private_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_owned()
    } else {
        format!("{region}.compute.internal")
    }
}

/// The public DNS suffix of a region.
pub fn public_domain(region: &str) -> String {
    if region == "us-east-1" {
        "compute-1.amazonaws.com".to_owned()
    } else {
        format!("{region}.compute.amazonaws.com")
    }
}

/// `ip-10-0-1-5.ec2.internal` for 10.0.1.5 in us-east-1.
pub fn private_name(ip: Ipv4Addr, region: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{}", private_domain(region))
}

/// `ec2-198-18-0-7.compute-1.amazonaws.com` for 198.18.0.7 in us-east-1.
pub fn public_name(ip: Ipv4Addr, region: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ec2-{a}-{b}-{c}-{d}.{}", public_domain(region))
}

/// `i-0123….ec2.internal`: the resource-based private name.
pub fn resource_name(instance_id: &str, region: &str) -> String {
    format!("{instance_id}.{}", private_domain(region))
}

/// `5.1.0.10.in-addr.arpa` for 10.0.1.5.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// The reverse zone an address falls in, one per /24 (`1.0.10.in-addr.arpa`).
pub fn reverse_zone(ip: Ipv4Addr) -> String {
    let [a, b, c, _] = ip.octets();
    format!("{c}.{b}.{a}.in-addr.arpa")
}

/// The address in a label like `ip-10-0-1-5` (with `prefix` = `ip-`). Octets must be
/// written canonically (no leading zeros), as EC2 writes them.
pub fn parse_address_label(label: &str, prefix: &str) -> Option<Ipv4Addr> {
    let rest = label.strip_prefix(prefix)?;
    let mut octets = [0u8; 4];
    let mut parts = rest.split('-');
    for octet in &mut octets {
        *octet = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// The address a full reverse name (`5.1.0.10.in-addr.arpa`, a key) stands for.
pub fn parse_reverse(key: &str) -> Option<Ipv4Addr> {
    let rest = key.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = rest.split('.');
    for i in (0..4).rev() {
        octets[i] = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

fn parse_octet(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_east_1_uses_ec2_internal_and_compute_1() {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        assert_eq!(private_name(ip, "us-east-1"), "ip-10-0-1-5.ec2.internal");
        assert_eq!(
            public_name(Ipv4Addr::new(198, 18, 0, 7), "us-east-1"),
            "ec2-198-18-0-7.compute-1.amazonaws.com"
        );
    }

    #[test]
    fn other_regions_name_the_region() {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        assert_eq!(
            private_name(ip, "eu-west-1"),
            "ip-10-0-1-5.eu-west-1.compute.internal"
        );
        assert_eq!(
            public_name(ip, "eu-west-1"),
            "ec2-10-0-1-5.eu-west-1.compute.amazonaws.com"
        );
    }

    #[test]
    fn address_labels_round_trip_and_reject_noise() {
        assert_eq!(
            parse_address_label("ip-10-0-1-5", "ip-"),
            Some(Ipv4Addr::new(10, 0, 1, 5))
        );
        assert_eq!(parse_address_label("ip-10-0-1", "ip-"), None);
        assert_eq!(parse_address_label("ip-10-0-1-5-6", "ip-"), None);
        assert_eq!(parse_address_label("ip-10-0-01-5", "ip-"), None);
        assert_eq!(parse_address_label("ip-10-0-1-256", "ip-"), None);
        assert_eq!(parse_address_label("ec2-10-0-1-5", "ip-"), None);
    }

    #[test]
    fn reverse_names_round_trip() {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        assert_eq!(reverse_name(ip), "5.1.0.10.in-addr.arpa");
        assert_eq!(parse_reverse(&reverse_name(ip)), Some(ip));
        assert_eq!(parse_reverse("1.0.10.in-addr.arpa"), None);
    }
}

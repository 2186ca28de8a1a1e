//! Per-learner parameters. The seed is SHA-256 of the learner id, the lab id and the
//! course secret, so each learner gets their own addresses and names (a neighbour's
//! answer does not fit), and an instructor who knows the secret recomputes them.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::spec::ParamSpec;

/// The seed of one learner's copy of one lab.
pub fn seed(learner: &str, lab: &str, secret: &str) -> u64 {
    let mut h = Sha256::new();
    for part in [learner, lab, secret] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Draws every parameter. A parameter may refer to another (`within = "{{vpc_cidr}}"`);
/// they are drawn in dependency order, then by name, so the same seed always gives the
/// same values.
pub fn draw(
    specs: &BTreeMap<String, ParamSpec>,
    seed: u64,
) -> Result<BTreeMap<String, String>, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    // Blocks already drawn inside each parent, so that siblings never overlap.
    let mut taken: BTreeMap<String, Vec<Ipv4Net>> = BTreeMap::new();
    let mut pending: Vec<&String> = specs.keys().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            let name = pending[i];
            let spec = &specs[name];
            let deps = dependencies(spec);
            if deps.iter().any(|d| !out.contains_key(d)) {
                if let Some(d) = deps.iter().find(|d| !specs.contains_key(*d)) {
                    return Err(format!("params.{name}: uses undeclared parameter {d}"));
                }
                i += 1;
                continue;
            }
            let value = draw_one(name, spec, &out, &mut taken, &mut rng)?;
            out.insert(name.clone(), value);
            pending.remove(i);
        }
        if pending.len() == before {
            return Err(format!(
                "params: circular references among {}",
                pending
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(out)
}

fn dependencies(spec: &ParamSpec) -> Vec<String> {
    spec.cidr
        .as_ref()
        .map(|c| super::template::names(&c.within))
        .unwrap_or_default()
}

fn draw_one(
    name: &str,
    spec: &ParamSpec,
    drawn: &BTreeMap<String, String>,
    taken: &mut BTreeMap<String, Vec<Ipv4Net>>,
    rng: &mut ChaCha8Rng,
) -> Result<String, String> {
    let set = [
        spec.cidr.is_some(),
        spec.range.is_some(),
        spec.pick.is_some(),
        spec.pattern.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(format!(
            "params.{name}: expected exactly one of cidr, range, pick, pattern"
        ));
    }
    if let Some(c) = &spec.cidr {
        let within_text = super::template::render(&c.within, drawn);
        let within: Ipv4Net = within_text
            .parse()
            .map_err(|_| format!("params.{name}.cidr.within: {within_text:?} is not a CIDR"))?;
        if c.prefix < within.prefix_len() || c.prefix > 28 {
            return Err(format!(
                "params.{name}.cidr.prefix: expected {}..=28, found {}",
                within.prefix_len(),
                c.prefix
            ));
        }
        let blocks = 1u64 << (c.prefix - within.prefix_len());
        let siblings = taken.entry(within.to_string()).or_default();
        for _ in 0..256 {
            let i = rng.random_range(0..blocks);
            let base = u32::from(within.network()) as u64 + (i << (32 - c.prefix));
            let net = Ipv4Net::new(std::net::Ipv4Addr::from(base as u32), c.prefix)
                .map_err(|e| format!("params.{name}: {e}"))?;
            if !siblings
                .iter()
                .any(|s| s.contains(&net.network()) || net.contains(&s.network()))
            {
                siblings.push(net);
                return Ok(net.to_string());
            }
        }
        return Err(format!(
            "params.{name}: no free /{} left in {within}",
            c.prefix
        ));
    }
    if let Some([lo, hi]) = spec.range {
        if lo > hi {
            return Err(format!("params.{name}.range: {lo} is above {hi}"));
        }
        return Ok(rng.random_range(lo..=hi).to_string());
    }
    if let Some(list) = &spec.pick {
        if list.is_empty() {
            return Err(format!("params.{name}.pick: expected at least one value"));
        }
        return Ok(list[rng.random_range(0..list.len())].clone());
    }
    let pattern = spec.pattern.as_deref().unwrap_or_default();
    Ok(pattern
        .chars()
        .map(|c| {
            if c == '#' {
                char::from(b'0' + rng.random_range(0..10u8))
            } else {
                c
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::CidrSpec;

    fn specs() -> BTreeMap<String, ParamSpec> {
        let mut m = BTreeMap::new();
        m.insert(
            "vpc".to_string(),
            ParamSpec {
                cidr: Some(CidrSpec {
                    within: "10.0.0.0/8".into(),
                    prefix: 16,
                }),
                ..Default::default()
            },
        );
        for s in ["a", "b"] {
            m.insert(
                s.to_string(),
                ParamSpec {
                    cidr: Some(CidrSpec {
                        within: "{{vpc}}".into(),
                        prefix: 24,
                    }),
                    ..Default::default()
                },
            );
        }
        m.insert(
            "key".to_string(),
            ParamSpec {
                pattern: Some("key-###".into()),
                ..Default::default()
            },
        );
        m
    }

    #[test]
    fn the_same_seed_gives_the_same_values_and_siblings_do_not_overlap() {
        let one = draw(&specs(), seed("ann", "custom-vpc", "")).expect("draws");
        let again = draw(&specs(), seed("ann", "custom-vpc", "")).expect("draws");
        let other = draw(&specs(), seed("bob", "custom-vpc", "")).expect("draws");
        assert_eq!(one, again);
        assert_ne!(one, other);
        let vpc: Ipv4Net = one["vpc"].parse().expect("cidr");
        let a: Ipv4Net = one["a"].parse().expect("cidr");
        let b: Ipv4Net = one["b"].parse().expect("cidr");
        assert!(vpc.contains(&a) && vpc.contains(&b) && a != b);
        assert!(one["key"].starts_with("key-") && one["key"].len() == 7);
    }

    #[test]
    fn an_undeclared_reference_is_an_error() {
        let mut m = specs();
        m.remove("vpc");
        let e = draw(&m, 1).expect_err("vpc is missing");
        assert!(e.contains("undeclared parameter vpc"), "{e}");
    }
}

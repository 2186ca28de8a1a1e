//! Compiles a world into the DNS view the resolver answers from: VPCs with their DNS
//! attributes and CIDR blocks, every network interface's addresses (private, and the
//! public one mapped to it), and the Route 53 hosted zones with their record sets.
//!
//! Called after every committed change (see `cli::up`), so a ChangeResourceRecordSets or
//! a ModifyVpcAttribute is visible on the next query.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::RecordType;

use crate::dns::{self, DnsView, FailoverRole, InstanceDns, Policy, RecordSet, Views, VpcDns};
use crate::model::route53::{HostedZone, ResourceRecordSet};
use crate::model::{Commit, Subscriber, World};

/// The resource kinds the DNS view is built from.
pub const DNS_KINDS: &[&str] = &[
    "vpc",
    "network_interface",
    "instance",
    "address",
    "route53_hosted_zone",
    "elb_load_balancer",
    "vpc_peering_connection",
    "vpc_endpoint",
];

/// A control subscriber that keeps each account's view in `views` equal to the DNS
/// view of its world: after each commit that touches a name, an address, a zone or a
/// VPC's DNS attributes, the next query in that world sees the new state. Accounts never
/// share a view: one account's zones cannot answer in another's world.
pub fn dns_subscriber(views: Views) -> Subscriber {
    Box::new(move |commit: &Commit, world: &Arc<World>| {
        // Only these kinds feed the view (names, addresses, zones, VPC DNS attributes).
        if !commit.touches(DNS_KINDS) {
            return;
        }
        let shared = views.of(&commit.account);
        let mut current = shared.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut current, world, commit);
    })
}

/// Brings `view` in line with `world` after `commit`, doing only the work the commit
/// needs: a VPC change updates that VPC's entry, a zone change recompiles that zone, an
/// interface or address change rebuilds the address list. A `vpclab:Load` commit (or a
/// view that has never been built) rebuilds everything. Health-check results are runtime
/// state the health board publishes into the view; they are kept.
pub fn apply(view: &mut DnsView, world: &World, commit: &Commit) {
    // A view that was never built has seed 0 (a built one has the world's seed).
    if commit.is_load() || view.seed == 0 {
        let health = std::mem::take(&mut view.health);
        *view = dns_view(world);
        view.health = health;
        return;
    }
    if commit.touches(&["vpc_endpoint", "network_interface"]) {
        view.endpoint_names = world.endpoint_public_names().into_iter().collect();
        for vpc in world.vpcs.iter() {
            let names = world.endpoint_private_names(&vpc.id);
            if let Some(v) = view.vpcs.get_mut(&vpc.id)
                && (!names.is_empty() || !v.endpoint_names.is_empty())
            {
                v.endpoint_names = names.into_iter().collect();
            }
        }
    }
    if commit.touches(&["vpc_peering_connection"]) {
        // A peering changes what its two VPCs' names mean in each other.
        for vpc in world.vpcs.iter() {
            view.vpcs.insert(vpc.id.clone(), vpc_dns(world, vpc));
        }
    }
    for change in commit.of_kind("vpc") {
        match world.vpcs.get(&change.id) {
            Some(vpc) => {
                view.vpcs.insert(vpc.id.clone(), vpc_dns(world, vpc));
            }
            None => {
                view.vpcs.remove(&change.id);
            }
        }
    }
    for change in commit.of_kind("route53_hosted_zone") {
        match world.hosted_zones.get(&change.id) {
            Some(zone) => {
                view.zones.insert(zone.id.clone(), compile_zone(zone));
            }
            None => {
                view.zones.remove(&change.id);
            }
        }
    }
    if commit.touches(&["network_interface", "instance", "address"]) {
        view.instances = addresses(world);
    }
    if commit.touches(&["network_interface", "elb_load_balancer"]) {
        view.load_balancers = load_balancers(world);
    }
}

fn vpc_dns(world: &World, vpc: &crate::model::ec2::vpc::Vpc) -> VpcDns {
    let private_names_for = world
        .vpc_peering_connections
        .iter()
        .filter(|p| p.is_active())
        .filter_map(|p| {
            let (mine, theirs) = if p.requester.vpc_id == vpc.id {
                (&p.requester, &p.accepter)
            } else if p.accepter.vpc_id == vpc.id {
                (&p.accepter, &p.requester)
            } else {
                return None;
            };
            mine.allow_dns_resolution_from_remote_vpc
                .then(|| theirs.vpc_id.clone())
        })
        .collect();
    VpcDns {
        private_names_for,
        endpoint_names: world.endpoint_private_names(&vpc.id).into_iter().collect(),
        region: vpc.region.clone(),
        enable_dns_support: vpc.enable_dns_support,
        enable_dns_hostnames: vpc.enable_dns_hostnames,
        cidrs: vpc
            .cidrs
            .iter()
            .filter(|c| c.state == "associated")
            .map(|c| c.cidr)
            .collect(),
    }
}

/// The DNS view of one account's world.
pub fn dns_view(world: &World) -> DnsView {
    let mut view = DnsView {
        seed: world.meta().map_or(0, |m| m.seed),
        ..DnsView::default()
    };
    for vpc in world.vpcs.iter() {
        view.vpcs.insert(vpc.id.clone(), vpc_dns(world, vpc));
    }
    view.instances = addresses(world);
    view.load_balancers = load_balancers(world);
    view.endpoint_names = world.endpoint_public_names().into_iter().collect();
    for zone in world.hosted_zones.iter() {
        view.zones.insert(zone.id.clone(), compile_zone(zone));
    }
    view
}

/// Each load balancer's DNS name and its nodes' addresses.
fn load_balancers(world: &World) -> BTreeMap<String, Vec<std::net::Ipv4Addr>> {
    world
        .elb_load_balancers
        .iter()
        .map(|lb| (lb.dns_name.to_ascii_lowercase(), world.node_addresses(lb)))
        .collect()
}

/// Every private address of every interface, with the public address mapped to it.
fn addresses(world: &World) -> Vec<InstanceDns> {
    let mut out = Vec::new();
    for eni in world.network_interfaces.iter() {
        let owner = eni
            .attachment
            .as_ref()
            .map_or_else(|| eni.id.clone(), |a| a.instance_id.clone());
        // The instance's hostname options (launched with its subnet's): whether its
        // resource-based name answers A and AAAA queries.
        let options = eni
            .attachment
            .as_ref()
            .and_then(|a| world.instances.get(&a.instance_id))
            .map(|i| i.dns_name_options.clone())
            .unwrap_or_default();
        out.push(InstanceDns {
            instance_id: owner.clone(),
            vpc_id: eni.vpc_id.clone(),
            // None in an IPv6-only subnet: only the resource-based name exists, and
            // it answers AAAA only.
            private_ip: eni.ipv4(),
            public_ip: eni.association.as_ref().map(|a| a.public_ip),
            resource_name: options.a_record,
            ipv6: eni.ipv6_addresses.first().copied(),
            resource_aaaa: options.aaaa_record,
        });
        for ip in &eni.secondary_ips {
            // An Elastic IP may be mapped to a secondary address.
            let public_ip = world
                .addresses
                .iter()
                .find(|a| {
                    a.association
                        .as_ref()
                        .is_some_and(|s| s.network_interface_id == eni.id && s.private_ip == *ip)
                })
                .map(|a| a.public_ip);
            out.push(InstanceDns {
                instance_id: owner.clone(),
                vpc_id: eni.vpc_id.clone(),
                private_ip: Some(*ip),
                public_ip,
                resource_name: false,
                ipv6: None,
                resource_aaaa: false,
            });
        }
    }
    out
}

/// One hosted zone as the engine sees it. Values were validated when they were written;
/// one that no longer parses (a newer state dir) is skipped, not fatal.
pub fn compile_zone(zone: &HostedZone) -> dns::HostedZone {
    let mut out = dns::HostedZone::new(&zone.name, zone.private);
    out.vpcs = zone.vpcs.iter().map(|v| v.vpc_id.clone()).collect();
    for set in &zone.record_sets {
        if let Some(compiled) = compile_set(set)
            && let Err(e) = out.insert(&set.name, compiled)
        {
            tracing::warn!(zone = %zone.id, error = %e, "record set left out of DNS");
        }
    }
    out
}

fn compile_set(set: &ResourceRecordSet) -> Option<RecordSet> {
    let rtype = RecordType::from_str(&set.rtype).ok()?;
    let mut compiled = match &set.alias {
        Some(alias) => RecordSet::alias(rtype, &alias.dns_name, alias.evaluate_target_health),
        None => {
            let values: Vec<&str> = set.records.iter().map(String::as_str).collect();
            RecordSet::simple(rtype, set.ttl.unwrap_or(300), &values).ok()?
        }
    };
    let identifier = set.set_identifier.as_deref().unwrap_or_default();
    if let Some(weight) = set.weight {
        compiled = compiled.with_policy(Policy::Weighted(weight), identifier);
    } else if let Some(role) = &set.failover {
        let role = if role == "SECONDARY" {
            FailoverRole::Secondary
        } else {
            FailoverRole::Primary
        };
        compiled = compiled.with_policy(Policy::Failover(role), identifier);
    } else if set.multi_value_answer.is_some() {
        compiled = compiled.with_policy(Policy::MultiValue, identifier);
    }
    if let Some(id) = &set.health_check_id {
        compiled = compiled.with_health_check(id);
    }
    Some(compiled)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};

    use super::*;
    use crate::dns::{Transport, Vantage, answer};
    use crate::model::ec2::address::AssociateAddressInput;
    use crate::model::ec2::eni::EniSpec;
    use crate::model::ec2::vpc::VpcAttribute;
    use crate::model::route53::{ChangeAction, CreateZoneInput, RecordChange, ZoneVpc};
    use crate::model::{Env, Timestamp};

    fn env() -> Env {
        Env::new("us-east-1", Timestamp(1_700_000_000_000))
    }

    fn ask(view: &DnsView, vantage: Vantage<'_>, name: &str) -> Message {
        let mut q = Message::new(1, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_str(name).expect("name"),
            RecordType::A,
        ));
        let out =
            answer(view, vantage, &q.to_vec().expect("encode"), Transport::UDP).expect("an answer");
        Message::from_vec(&out).expect("parse")
    }

    /// One change batch creating `name` A `ip` (TTL 60).
    fn create_a(name: &str, ip: &str) -> Vec<RecordChange> {
        vec![RecordChange {
            action: ChangeAction::Create,
            set: ResourceRecordSet {
                name: name.into(),
                rtype: "A".into(),
                ttl: Some(60),
                records: vec![ip.into()],
                ..ResourceRecordSet::default()
            },
        }]
    }

    fn a_records(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect()
    }

    /// A world with the default VPC, one interface with an Elastic IP, and a private zone
    /// associated with the default VPC.
    fn world() -> (World, String, String, String) {
        let mut w = World::new("000000000000");
        w.ensure_region(&env()).expect("region");
        let vpc = w.default_vpc("us-east-1").expect("default vpc").id.clone();
        let subnet = w
            .subnets
            .iter()
            .find(|s| s.vpc_id == vpc)
            .expect("default subnet")
            .id
            .clone();
        let eni = w
            .create_network_interface(
                &env(),
                EniSpec {
                    subnet_id: subnet,
                    ..EniSpec::default()
                },
                &[],
            )
            .expect("eni");
        let (allocation, _) = w.allocate_address(&env(), &[]).expect("eip");
        w.associate_address(
            &env(),
            &AssociateAddressInput {
                allocation_id: Some(allocation),
                public_ip: None,
                instance_id: None,
                network_interface_id: Some(eni.clone()),
                private_ip: None,
                allow_reassociation: false,
            },
        )
        .expect("associate");
        let (zone, _) = w
            .create_hosted_zone(
                &env(),
                CreateZoneInput {
                    name: "corp.internal".into(),
                    caller_reference: "r".into(),
                    vpc: Some(ZoneVpc {
                        region: "us-east-1".into(),
                        vpc_id: vpc.clone(),
                    }),
                    ..CreateZoneInput::default()
                },
            )
            .expect("zone");
        w.change_record_sets(
            &env(),
            &zone.id,
            None,
            create_a("db.corp.internal", "172.31.9.9"),
        )
        .expect("record");
        (w, vpc, eni, zone.id)
    }

    #[test]
    fn interfaces_resolve_by_their_ec2_names_with_split_horizon() {
        let (w, vpc, eni, _) = world();
        let view = dns_view(&w);
        let iface = w.network_interfaces.get(&eni).expect("eni");
        let private = iface.private_ip;
        let public = iface.association.as_ref().expect("eip").public_ip;
        let private_name = format!("{}.", dns::names::private_name(private, "us-east-1"));
        let public_name = format!("{}.", dns::names::public_name(public, "us-east-1"));
        assert_eq!(
            a_records(&ask(&view, Vantage::Vpc(&vpc), &private_name)),
            vec![private.to_string()]
        );
        // The default VPC has enableDnsHostnames: the public name exists, split horizon.
        assert_eq!(
            a_records(&ask(&view, Vantage::Vpc(&vpc), &public_name)),
            vec![private.to_string()]
        );
        assert_eq!(
            a_records(&ask(&view, Vantage::Internet, &public_name)),
            vec![public.to_string()]
        );
    }

    /// VPC Peering Guide: with DNS resolution enabled for a peering, a peer instance's
    /// public DNS hostname resolves to its private address from the other VPC.
    #[test]
    fn a_peering_with_dns_resolution_resolves_the_peers_public_names_privately() {
        use crate::model::ec2::peering::PeeringSideKind;
        let (mut w, vpc, eni, _) = world();
        let other = w.create_vpc(&env(), "10.9.0.0/16", None, &[]).expect("vpc");
        let pcx = w
            .create_vpc_peering_connection(&env(), &vpc, &other, None, None, &[])
            .expect("peering");
        w.accept_vpc_peering_connection(&env(), &pcx)
            .expect("accept");
        let iface = w.network_interfaces.get(&eni).expect("eni").clone();
        let public = iface.association.as_ref().expect("eip").public_ip;
        let name = format!("{}.", dns::names::public_name(public, "us-east-1"));
        let from_peer = |w: &World| a_records(&ask(&dns_view(w), Vantage::Vpc(&other), &name));
        assert_eq!(from_peer(&w), vec![public.to_string()], "option off");
        // The default VPC is the requester: its side's option lets the peer resolve it.
        w.modify_vpc_peering_connection_options(
            &env(),
            &pcx,
            &[(PeeringSideKind::Requester, true)],
        )
        .expect("modify");
        assert_eq!(from_peer(&w), vec![iface.private_ip.to_string()]);
        w.delete_vpc_peering_connection(&env(), &pcx)
            .expect("delete");
        assert_eq!(from_peer(&w), vec![public.to_string()], "deleted peering");
    }

    #[test]
    fn modify_vpc_attribute_changes_what_resolves() {
        let (mut w, vpc, _, _) = world();
        let view = dns_view(&w);
        assert_eq!(
            a_records(&ask(&view, Vantage::Vpc(&vpc), "db.corp.internal.")),
            vec!["172.31.9.9"]
        );
        // Private zones need enableDnsHostnames too.
        w.modify_vpc_attribute(&env(), &vpc, VpcAttribute::EnableDnsHostnames, false)
            .expect("hostnames off");
        let view = dns_view(&w);
        let m = ask(&view, Vantage::Vpc(&vpc), "db.corp.internal.");
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // enableDnsSupport off: the resolver is silent.
        w.modify_vpc_attribute(&env(), &vpc, VpcAttribute::EnableDnsSupport, false)
            .expect("support off");
        let view = dns_view(&w);
        let mut q = Message::new(1, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_str("db.corp.internal.").expect("name"),
            RecordType::A,
        ));
        let bytes = q.to_vec().expect("encode");
        assert_eq!(
            answer(&view, Vantage::Vpc(&vpc), &bytes, Transport::UDP),
            None
        );
    }

    #[test]
    fn the_subscriber_publishes_every_change() {
        let (w, vpc, _, _) = world();
        let shared: crate::dns::SharedView = Arc::default();
        let sub = dns_subscriber(crate::dns::Views::single(shared.clone()));
        let commit = |action: &str, changes: Vec<crate::model::Change>| Commit {
            seq: 1,
            account: crate::model::DEFAULT_ACCOUNT.to_string(),
            action: action.to_string(),
            at: crate::model::Timestamp(0),
            changes,
        };
        // A commit touching nothing the view is built from leaves it alone…
        sub(
            &commit(
                "CreateKeyPair",
                vec![crate::model::Change {
                    kind: "key_pair",
                    id: "key-1".into(),
                    op: crate::model::ChangeOp::Created,
                }],
            ),
            &Arc::new(w.clone()),
        );
        assert!(shared.read().expect("lock").vpcs.is_empty());
        // …one that touches a zone rebuilds it.
        sub(&commit("CreateHostedZone", w.all_rows()), &Arc::new(w));
        let view = shared.read().expect("lock").clone();
        assert_eq!(
            a_records(&ask(&view, Vantage::Vpc(&vpc), "db.corp.internal.")),
            vec!["172.31.9.9"]
        );
    }

    /// A world of `account` with one public zone `apex` holding `name` A `ip`.
    fn world_with_public_record(account: &str, apex: &str, name: &str, ip: &str) -> World {
        let mut w = World::new(account);
        w.ensure_region(&env()).expect("region");
        let (zone, _) = w
            .create_hosted_zone(
                &env(),
                CreateZoneInput {
                    name: apex.into(),
                    caller_reference: format!("ref-{apex}"),
                    ..CreateZoneInput::default()
                },
            )
            .expect("zone");
        w.change_record_sets(&env(), &zone.id, None, create_a(name, ip))
            .expect("record");
        w
    }

    /// Issue 10, item 4: public zones of all accounts were merged into one view where
    /// the most specific zone won, so account B's `app.corp.example` shadowed account
    /// A's `corp.example` inside A's world, and B's `compute-1.amazonaws.com` rewrote
    /// EC2's public names for everyone.
    #[test]
    fn issue10_one_account_cannot_rewrite_another_accounts_dns() {
        let views = crate::dns::Views::default();
        let sub = dns_subscriber(views.clone());
        let a = world_with_public_record(
            "111111111111",
            "corp.example",
            "app.corp.example",
            "203.0.113.1",
        );
        let b = world_with_public_record(
            "222222222222",
            "app.corp.example",
            "app.corp.example",
            "203.0.113.2",
        );
        for w in [a, b] {
            let commit = Commit {
                seq: 1,
                account: w.account.clone(),
                action: "ChangeResourceRecordSets".into(),
                at: crate::model::Timestamp(0),
                changes: w.all_rows(),
            };
            sub(&commit, &Arc::new(w));
        }
        let view_a = views.of("111111111111").read().expect("lock").clone();
        let view_b = views.of("222222222222").read().expect("lock").clone();
        assert_eq!(
            a_records(&ask(&view_a, Vantage::Internet, "app.corp.example.")),
            vec!["203.0.113.1"],
            "account A's world answers from A's zone only"
        );
        assert_eq!(
            a_records(&ask(&view_b, Vantage::Internet, "app.corp.example.")),
            vec!["203.0.113.2"]
        );
        // A public zone under amazonaws.com never answers, even in its own world.
        let c = world_with_public_record(
            "333333333333",
            "compute-1.amazonaws.com",
            "ec2-198-18-0-1.compute-1.amazonaws.com",
            "203.0.113.66",
        );
        let view_c = dns_view(&c);
        assert!(
            !a_records(&ask(
                &view_c,
                Vantage::Internet,
                "ec2-198-18-0-1.compute-1.amazonaws.com."
            ))
            .contains(&"203.0.113.66".to_string()),
            "EC2's public names are not the learner's to rewrite"
        );
    }

    /// The incremental update gives exactly the view a full rebuild gives, commit after
    /// commit of a session that creates, modifies and deletes what the view reads.
    #[test]
    fn incremental_updates_equal_a_full_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = crate::model::Control::open(&crate::model::store::StorePaths {
            dir: dir.path().to_path_buf(),
            db: dir.path().join("t.db"),
            lock: dir.path().join("t.lock"),
        })
        .expect("control");
        let views = crate::dns::Views::default();
        c.subscribe(dns_subscriber(views.clone()));
        let acct = crate::model::DEFAULT_ACCOUNT;
        let same = |c: &crate::model::Control| {
            let w = c.snapshot(acct).expect("world");
            let mut full = dns_view(&w);
            let got = views.of(acct).read().expect("lock").clone();
            full.health = got.health.clone();
            assert_eq!(format!("{got:?}"), format!("{full:?}"));
        };
        let vpc = c
            .mutate(acct, &env(), false, |w, e| {
                w.create_vpc(e, "10.0.0.0/16", None, &[])
            })
            .expect("vpc");
        same(&c);
        c.mutate(acct, &env(), false, |w, e| {
            w.modify_vpc_attribute(
                e,
                &vpc,
                crate::model::ec2::vpc::VpcAttribute::EnableDnsHostnames,
                true,
            )
        })
        .expect("attr");
        same(&c);
        let (zone, _) = c
            .mutate(acct, &env(), false, |w, e| {
                w.create_hosted_zone(
                    e,
                    CreateZoneInput {
                        name: "corp.internal".into(),
                        caller_reference: "r1".into(),
                        vpc: Some(ZoneVpc {
                            region: "us-east-1".into(),
                            vpc_id: vpc.clone(),
                        }),
                        ..CreateZoneInput::default()
                    },
                )
            })
            .expect("zone");
        same(&c);
        c.mutate(acct, &env(), false, |w, e| {
            w.change_record_sets(e, &zone.id, None, create_a("db.corp.internal", "10.0.0.9"))
        })
        .expect("record");
        same(&c);
        c.mutate(acct, &env(), false, |w, e| {
            let subnet = w.create_subnet(e, &vpc, "10.0.1.0/24", None, None, &[])?;
            w.create_network_interface(
                e,
                crate::model::ec2::eni::EniSpec {
                    subnet_id: subnet,
                    ..Default::default()
                },
                &[],
            )
        })
        .expect("eni");
        same(&c);
    }
}

//! Unit tests of AWS rules the model enforces, one per rule, named after it. (The wire
//! shapes are covered by the black-box tests in `tests/api/blackbox.rs`.)

use super::nacl::NaclEntryInput;
use super::route_table::RouteTarget;
use super::*;
use crate::model::{DEFAULT_ACCOUNT, Env, Timestamp, World};

fn env() -> Env {
    Env::new("us-east-1", Timestamp(1_700_000_000_000))
}

fn world_with_vpc() -> (World, String) {
    let mut w = World::new(DEFAULT_ACCOUNT);
    w.ensure_region(&env()).unwrap();
    let vpc = w.create_vpc(&env(), "10.0.0.0/16", None, &[]).unwrap();
    (w, vpc)
}

#[test]
fn subnet_reserves_five_addresses_and_hands_out_the_next_free_one() {
    let (mut w, vpc) = world_with_vpc();
    let s = w
        .create_subnet(&env(), &vpc, "10.0.1.0/28", None, None, &[])
        .unwrap();
    let subnet = w.subnets.get(&s).unwrap().clone();
    assert_eq!(
        w.available_ip_count(&subnet),
        11,
        "a /28 offers 11 addresses"
    );
    assert_eq!(w.next_private_ip(&s).unwrap().to_string(), "10.0.1.4");
    for reserved in ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.15"] {
        let err = w
            .check_private_ip(&s, reserved.parse().unwrap())
            .unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue", "{reserved}");
    }
}

#[test]
fn subnet_blocks_must_be_16_to_28_inside_the_vpc_and_not_overlap() {
    let (mut w, vpc) = world_with_vpc();
    let code = |w: &mut World, c: &str| {
        w.create_subnet(&env(), &vpc, c, None, None, &[])
            .unwrap_err()
            .code
    };
    assert_eq!(code(&mut w, "10.0.0.0/29"), "InvalidSubnet.Range");
    assert_eq!(code(&mut w, "10.1.0.0/24"), "InvalidSubnet.Range");
    w.create_subnet(&env(), &vpc, "10.0.0.0/24", None, None, &[])
        .unwrap();
    assert_eq!(code(&mut w, "10.0.0.128/25"), "InvalidSubnet.Conflict");
    assert_eq!(code(&mut w, "10.0.0.0/16"), "InvalidSubnet.Conflict");
}

#[test]
fn secondary_block_gets_local_routes_and_the_primary_cannot_be_removed() {
    let (mut w, vpc) = world_with_vpc();
    let assoc = w
        .associate_vpc_cidr_block(&env(), &vpc, "10.1.0.0/16")
        .unwrap();
    let main = w.main_route_table(&vpc).unwrap();
    assert!(
        main.routes
            .iter()
            .any(|r| r.destination.to_string() == "10.1.0.0/16" && r.target == RouteTarget::Local)
    );
    assert_eq!(
        w.associate_vpc_cidr_block(&env(), &vpc, "10.1.128.0/17")
            .unwrap_err()
            .code,
        "InvalidVpc.Range"
    );
    let primary = w.vpcs.get(&vpc).unwrap().cidrs[0].association_id.clone();
    assert_eq!(
        w.disassociate_vpc_cidr_block(&env(), &primary)
            .unwrap_err()
            .code,
        "OperationNotPermitted"
    );
    w.disassociate_vpc_cidr_block(&env(), &assoc).unwrap();
    assert!(
        !w.main_route_table(&vpc)
            .unwrap()
            .routes
            .iter()
            .any(|r| r.destination.to_string() == "10.1.0.0/16")
    );
}

#[test]
fn local_route_cannot_be_deleted_or_replaced() {
    let (mut w, vpc) = world_with_vpc();
    let rt = w.main_route_table(&vpc).unwrap().id.clone();
    assert_eq!(
        w.delete_route(&env(), &rt, "10.0.0.0/16").unwrap_err().code,
        "InvalidParameterValue"
    );
    let igw = w.create_internet_gateway(&env(), &[]).unwrap();
    w.attach_internet_gateway(&env(), &igw, &vpc).unwrap();
    assert_eq!(
        w.replace_route(&env(), &rt, "10.0.0.0/16", RouteTarget::Gateway(igw))
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
}

#[test]
fn route_to_an_internet_gateway_of_another_vpc_is_refused() {
    let (mut w, vpc) = world_with_vpc();
    let rt = w.create_route_table(&env(), &vpc, &[]).unwrap();
    let igw = w.create_internet_gateway(&env(), &[]).unwrap();
    let err = w
        .create_route(&env(), &rt, "0.0.0.0/0", RouteTarget::Gateway(igw))
        .unwrap_err();
    assert!(
        err.message.contains("belong to different networks"),
        "{err:?}"
    );
}

#[test]
fn replacing_the_main_association_moves_the_main_role() {
    let (mut w, vpc) = world_with_vpc();
    let old = w.main_route_table(&vpc).unwrap().clone();
    let new = w.create_route_table(&env(), &vpc, &[]).unwrap();
    let assoc = old.associations.iter().find(|a| a.main).unwrap().id.clone();
    w.replace_route_table_association(&env(), &assoc, &new)
        .unwrap();
    assert_eq!(w.main_route_table(&vpc).unwrap().id, new);
    // The old table is now deletable; the new main one is not.
    w.delete_route_table(&env(), &old.id).unwrap();
    assert_eq!(
        w.delete_route_table(&env(), &new).unwrap_err().code,
        "DependencyViolation"
    );
}

#[test]
fn internet_gateway_cannot_be_detached_while_public_addresses_are_mapped() {
    let (mut w, vpc) = world_with_vpc();
    let igw = w.create_internet_gateway(&env(), &[]).unwrap();
    w.attach_internet_gateway(&env(), &igw, &vpc).unwrap();
    let s = w
        .create_subnet(&env(), &vpc, "10.0.1.0/24", None, None, &[])
        .unwrap();
    let eni = w
        .create_network_interface(
            &env(),
            eni::EniSpec {
                subnet_id: s,
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    let (alloc, _) = w.allocate_address(&env(), &[]).unwrap();
    let input = address::AssociateAddressInput {
        allocation_id: Some(alloc.clone()),
        network_interface_id: Some(eni),
        ..Default::default()
    };
    let assoc = w.associate_address(&env(), &input).unwrap();
    assert_eq!(
        w.detach_internet_gateway(&env(), &igw, &vpc)
            .unwrap_err()
            .code,
        "DependencyViolation"
    );
    assert_eq!(
        w.release_address(&env(), Some(&alloc), None)
            .unwrap_err()
            .code,
        "InvalidIPAddress.InUse"
    );
    w.disassociate_address(&env(), Some(&assoc), None).unwrap();
    w.detach_internet_gateway(&env(), &igw, &vpc).unwrap();
    w.release_address(&env(), Some(&alloc), None).unwrap();
}

#[test]
fn nacl_rule_numbers_are_1_to_32766_and_tcp_rules_need_ports() {
    let (mut w, vpc) = world_with_vpc();
    let acl = w.create_network_acl(&env(), &vpc, &[]).unwrap();
    let entry = |n: &str, proto: &str, ports: Option<(&str, &str)>| NaclEntryInput {
        rule_number: Some(n.into()),
        protocol: Some(proto.into()),
        rule_action: Some("allow".into()),
        cidr_block: Some("0.0.0.0/0".into()),
        port_from: ports.map(|p| p.0.into()),
        port_to: ports.map(|p| p.1.into()),
        ..Default::default()
    };
    for bad in ["0", "32767", "-1", "x"] {
        let err = w
            .create_network_acl_entry(&env(), &acl, &entry(bad, "-1", None))
            .unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue", "{bad}");
    }
    assert_eq!(
        w.create_network_acl_entry(&env(), &acl, &entry("10", "tcp", None))
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    w.create_network_acl_entry(&env(), &acl, &entry("10", "tcp", Some(("80", "80"))))
        .unwrap();
    let stored = &w.network_acls.get(&acl).unwrap().entries[0];
    assert_eq!(
        (stored.protocol.as_str(), stored.port_range),
        ("6", Some((80, 80)))
    );
    // Same number, other direction, is a different rule.
    let mut egress = entry("10", "-1", None);
    egress.egress = true;
    w.create_network_acl_entry(&env(), &acl, &egress).unwrap();
}

#[test]
fn a_new_network_acl_denies_everything_with_its_final_rule() {
    let (mut w, vpc) = world_with_vpc();
    let acl = w.create_network_acl(&env(), &vpc, &[]).unwrap();
    let all = w.network_acls.get(&acl).unwrap().effective_entries();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|e| e.rule_number == nacl::DEFAULT_DENY_RULE && e.rule_action == "deny")
    );
}

#[test]
fn default_security_group_and_acl_cannot_be_deleted() {
    let (mut w, vpc) = world_with_vpc();
    let sg = w.default_sg(&vpc).unwrap().id.clone();
    assert_eq!(
        w.delete_security_group(&env(), &sg).unwrap_err().code,
        "CannotDelete"
    );
    let acl = w.default_nacl(&vpc).unwrap().id.clone();
    assert_eq!(
        w.delete_network_acl(&env(), &acl).unwrap_err().code,
        "InvalidParameterValue"
    );
}

#[test]
fn deleting_a_vpc_takes_its_default_parts_and_tags_with_it() {
    let (mut w, vpc) = world_with_vpc();
    w.create_tags(
        &env(),
        std::slice::from_ref(&vpc),
        &[("Name".into(), "x".into())],
    )
    .unwrap();
    w.delete_vpc(&env(), &vpc).unwrap();
    assert!(w.route_tables.iter().all(|r| r.vpc_id != vpc));
    assert!(w.network_acls.iter().all(|a| a.vpc_id != vpc));
    assert!(w.security_groups.iter().all(|g| g.vpc_id != vpc));
    assert!(w.tags_of(&vpc).is_none());
}

#[test]
fn tags_obey_aws_limits() {
    let (mut w, vpc) = world_with_vpc();
    let id = std::slice::from_ref(&vpc);
    assert_eq!(
        w.create_tags(&env(), id, &[("aws:x".into(), "y".into())])
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
    assert_eq!(
        w.create_tags(&env(), id, &many).unwrap_err().code,
        "TagLimitExceeded"
    );
    assert_eq!(
        w.create_tags(
            &env(),
            &["subnet-nope".to_string()],
            &[("a".into(), "b".into())]
        )
        .unwrap_err()
        .code,
        "InvalidSubnetID.NotFound"
    );
    w.create_tags(&env(), id, &[("team".into(), "net".into())])
        .unwrap();
    w.delete_tags(id, &[("team".into(), Some("other".into()))])
        .unwrap();
    assert_eq!(
        w.tags_of(&vpc).unwrap().get("team").map(String::as_str),
        Some("net"),
        "value must match to delete"
    );
    w.delete_tags(id, &[("team".into(), None)]).unwrap();
    assert!(w.tags_of(&vpc).is_none());
}

#[test]
fn each_region_gets_its_own_default_vpc() {
    let mut w = World::new(DEFAULT_ACCOUNT);
    w.ensure_region(&env()).unwrap();
    let eu = Env::new("eu-west-1", Timestamp(0));
    w.ensure_region(&eu).unwrap();
    assert_eq!(
        w.vpcs
            .in_region("eu-west-1")
            .filter(|v| v.is_default)
            .count(),
        1
    );
    assert_eq!(w.subnets.in_region("eu-west-1").count(), 3);
    assert_eq!(
        w.ensure_region(&Env::new("mars-1", Timestamp(0)))
            .unwrap_err()
            .code,
        "AuthFailure"
    );
}

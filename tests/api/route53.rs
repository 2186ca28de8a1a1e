//! The Route 53 REST-XML handler without a socket: document shapes botocore relies on
//! (element names, the error envelope, paging), and bad input that must earn an AWS
//! error rather than a 500 or a panic.

use std::sync::{Arc, Mutex};

use vpclab::api::route53::{Reply, handle};
use vpclab::api::sigv4::SignedRequest;
use vpclab::api::{AppState, Clock};
use vpclab::model::{Control, Timestamp};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/route53/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123";

struct Api {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().expect("tmp");
        let control =
            Control::open(&vpclab::daemon::StateDir::new(dir.path()).store()).expect("state dir");
        let clock: Clock = Arc::new(|| Timestamp(1_764_000_000_000));
        Api {
            state: AppState::new(Arc::new(Mutex::new(control)), clock),
            _dir: dir,
        }
    }

    fn call(&self, method: &str, path: &str, query: Option<&str>, body: &str) -> Reply {
        let req = SignedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers: vec![("authorization".to_owned(), AUTH.to_owned())],
        };
        handle(&self.state, &req, body.as_bytes())
    }

    fn zone(&self, name: &str) -> String {
        let r = self.call(
            "POST",
            "/2013-04-01/hostedzone",
            None,
            &format!(
                "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>{name}</Name><CallerReference>{name}</CallerReference></CreateHostedZoneRequest>"
            ),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        between(&r.body, "<Id>/hostedzone/", "</Id>").to_owned()
    }

    fn change(&self, zone: &str, changes: &str) -> Reply {
        self.call(
            "POST",
            &format!("/2013-04-01/hostedzone/{zone}/rrset/"),
            None,
            &format!(
                "<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes>{changes}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
            ),
        )
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let a = s
        .find(start)
        .map(|i| i + start.len())
        .expect("start marker");
    let b = s[a..].find(end).map(|i| a + i).expect("end marker");
    &s[a..b]
}

fn create_a(name: &str, value: &str) -> String {
    format!(
        "<Change><Action>CREATE</Action><ResourceRecordSet><Name>{name}</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>"
    )
}

#[test]
fn create_hosted_zone_answers_201_with_location_and_delegation_set() {
    let api = Api::new();
    let r = api.call(
        "POST",
        "/2013-04-01/hostedzone",
        None,
        "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>Example.LAB</Name><CallerReference>c1</CallerReference><HostedZoneConfig><Comment>lab &amp; test</Comment></HostedZoneConfig></CreateHostedZoneRequest>",
    );
    assert_eq!(r.status, 201);
    assert!(r.body.starts_with("<?xml"));
    assert!(r.body.contains(
        "<CreateHostedZoneResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">"
    ));
    assert!(r.body.contains("<Name>example.lab.</Name>"));
    assert!(r.body.contains("<Comment>lab &amp; test</Comment>"));
    assert!(r.body.contains("<Status>PENDING</Status>"));
    assert_eq!(
        between(&r.body, "<NameServers>", "</NameServers>")
            .matches("<NameServer>")
            .count(),
        4
    );
    let id = between(&r.body, "<Id>/hostedzone/", "</Id>");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("https://route53.amazonaws.com/2013-04-01/hostedzone/{id}").as_str())
    );
}

#[test]
fn errors_use_the_route53_envelope() {
    let api = Api::new();
    let r = api.call("GET", "/2013-04-01/hostedzone/ZNOPE", None, "");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found with ID: ZNOPE</Message></Error><RequestId>"), "{}", r.body);
    let r = api.call("GET", "/2013-04-01/change/CNOPE", None, "");
    assert!(r.body.contains("<Code>NoSuchChange</Code>"));
}

#[test]
fn garbage_bodies_are_invalid_input_not_a_crash() {
    let api = Api::new();
    for body in [
        "",
        "<<<<",
        "<CreateHostedZoneRequest><Name>x</Name>",
        "<Wrong/>",
        "\u{0}\u{1}binary",
        "<CreateHostedZoneRequest><Name></Name><CallerReference>r</CallerReference></CreateHostedZoneRequest>",
    ] {
        let r = api.call("POST", "/2013-04-01/hostedzone", None, body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        assert!(
            r.body.contains("<Code>InvalidInput</Code>")
                || r.body.contains("<Code>InvalidDomainName</Code>"),
            "{body:?}: {}",
            r.body
        );
    }
    let zone = api.zone("example.lab");
    let r = api.change(&zone, "<Change><Action>EXPLODE</Action></Change>");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>InvalidInput</Code>"));
    let r = api.change(
        &zone,
        "<Change><Action>CREATE</Action><ResourceRecordSet><Name>www.example.lab</Name><Type>A</Type><TTL>minus one</TTL></ResourceRecordSet></Change>",
    );
    assert!(r.body.contains("<Code>InvalidInput</Code>"), "{}", r.body);
    let r = api.change(
        &zone,
        "<Change><Action>CREATE</Action><ResourceRecordSet><Name>www.example.lab</Name><Type>A</Type></ResourceRecordSet></Change>",
    );
    assert!(
        r.body
            .contains("Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords]"),
        "{}",
        r.body
    );
}

#[test]
fn unknown_paths_and_unemulated_features_are_errors_not_silence() {
    let api = Api::new();
    let r = api.call("GET", "/2013-04-01/nonsense", None, "");
    assert_eq!(r.status, 404);
    let r = api.call("GET", "/2013-04-01/trafficpolicies", None, "");
    assert_eq!(r.status, 501);
    assert!(r.body.contains("<Code>NotImplemented</Code>"));
    let r = api.call(
        "POST",
        "/2013-04-01/healthcheck",
        None,
        "<CreateHealthCheckRequest/>",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("<Code>InvalidInput</Code>"));
    // Calculated checks are a Route 53 feature vpclab does not emulate.
    let r = api.call(
        "POST",
        "/2013-04-01/healthcheck",
        None,
        "<CreateHealthCheckRequest><CallerReference>c</CallerReference><HealthCheckConfig><Type>CALCULATED</Type></HealthCheckConfig></CreateHealthCheckRequest>",
    );
    assert_eq!(r.status, 501, "{}", r.body);
}

#[test]
fn health_check_status_lists_each_checker_observation() {
    use vpclab::dns::health::{CheckRules, ProbeOutcome};
    let api = Api::new();
    let r = api.call(
        "POST",
        "/2013-04-01/healthcheck",
        None,
        "<CreateHealthCheckRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><CallerReference>c</CallerReference><HealthCheckConfig><IPAddress>198.18.0.7</IPAddress><Port>80</Port><Type>HTTP</Type><ResourcePath>/</ResourcePath></HealthCheckConfig></CreateHealthCheckRequest>",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body.contains(
            "<RequestInterval>30</RequestInterval><FailureThreshold>3</FailureThreshold>"
        ),
        "{}",
        r.body
    );
    let id = r
        .body
        .split("<Id>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("id")
        .to_owned();
    assert_eq!(
        r.location.as_deref(),
        Some(format!("https://route53.amazonaws.com/2013-04-01/healthcheck/{id}").as_str())
    );
    // What the prober would record: two checkers have answered.
    api.state.health.configure(
        &id,
        CheckRules {
            failure_threshold: 3,
            inverted: false,
            disabled: false,
            regions: vec!["us-east-1".into(), "eu-west-1".into(), "sa-east-1".into()],
        },
    );
    api.state.health.record(
        &id,
        "us-east-1",
        &ProbeOutcome::Http(200),
        1_700_000_000_000,
    );
    api.state.health.record(
        &id,
        "eu-west-1",
        &ProbeOutcome::ConnectTimedOut,
        1_700_000_001_000,
    );
    let r = api.call(
        "GET",
        &format!("/2013-04-01/healthcheck/{id}/status"),
        None,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<GetHealthCheckStatusResponse"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<HealthCheckObservation><Region>us-east-1</Region><IPAddress>192.0.2.96</IPAddress><StatusReport><Status>Success: HTTP Status Code 200, OK</Status><CheckedTime>2023-11-14T22:13:20.000Z</CheckedTime></StatusReport></HealthCheckObservation>"), "{}", r.body);
    assert!(r.body.contains("<Region>eu-west-1</Region><IPAddress>192.0.2.99</IPAddress><StatusReport><Status>Failure: Connection timed out."), "{}", r.body);
    assert_eq!(r.body.matches("<HealthCheckObservation>").count(), 2);
    let r = api.call(
        "GET",
        &format!("/2013-04-01/healthcheck/{id}/lastfailurereason"),
        None,
        "",
    );
    assert_eq!(
        r.body.matches("<HealthCheckObservation>").count(),
        1,
        "{}",
        r.body
    );
    let r = api.call("GET", "/2013-04-01/healthcheck/nope/status", None, "");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("<Code>NoSuchHealthCheck</Code>"));
}

#[test]
fn requests_without_credentials_are_refused() {
    let api = Api::new();
    let req = SignedRequest {
        method: "GET".into(),
        path: "/2013-04-01/hostedzone".into(),
        query: None,
        headers: vec![],
    };
    let r = handle(&api.state, &req, b"");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("<ErrorResponse"));
}

#[test]
fn record_sets_list_in_route53_order_with_paging_and_escaped_wildcards() {
    let api = Api::new();
    let zone = api.zone("example.lab");
    let r = api.change(
        &zone,
        &[
            create_a("b.example.lab", "198.18.0.2"),
            create_a("a.example.lab", "198.18.0.1"),
            create_a("*.example.lab", "198.18.0.9"),
            create_a("a.b.example.lab", "198.18.0.3"),
        ]
        .concat(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let path = format!("/2013-04-01/hostedzone/{zone}/rrset");
    let r = api.call("GET", &path, None, "");
    let names: Vec<&str> = r
        .body
        .split("<ResourceRecordSet><Name>")
        .skip(1)
        .map(|s| &s[..s.find("</Name>").expect("name end")])
        .collect();
    // Labels compared from the right: the apex, then `*`, `a`, `b`, then below `b`.
    assert_eq!(
        names,
        vec![
            "example.lab.",
            "example.lab.",
            "\\052.example.lab.",
            "a.example.lab.",
            "b.example.lab.",
            "a.b.example.lab."
        ]
    );
    let r = api.call("GET", &path, Some("maxitems=2"), "");
    assert!(r.body.contains("<IsTruncated>true</IsTruncated>"));
    assert!(
        r.body
            .contains("<NextRecordName>\\052.example.lab.</NextRecordName>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<MaxItems>2</MaxItems>"));
    let r = api.call("GET", &path, Some("name=b.example.lab&type=A"), "");
    assert!(r.body.starts_with("<?xml"));
    assert!(!r.body.contains("<Name>a.example.lab.</Name>"));
    assert!(r.body.contains("<Name>b.example.lab.</Name>"));
}

#[test]
fn hosted_zones_by_name_sort_by_reversed_labels() {
    let api = Api::new();
    api.zone("zeta.com");
    api.zone("alpha.org");
    api.zone("beta.com");
    let r = api.call("GET", "/2013-04-01/hostedzonesbyname", None, "");
    let names: Vec<&str> = r
        .body
        .split("<HostedZone><Id>")
        .skip(1)
        .map(|s| between(s, "<Name>", "</Name>"))
        .collect();
    assert_eq!(names, vec!["beta.com.", "zeta.com.", "alpha.org."]);
    let r = api.call("GET", "/2013-04-01/hostedzonecount", None, "");
    assert!(r.body.contains("<HostedZoneCount>3</HostedZoneCount>"));
}

#[test]
fn associating_a_vpc_with_a_public_zone_is_refused() {
    let api = Api::new();
    let zone = api.zone("example.lab");
    let r = api.call(
        "POST",
        &format!("/2013-04-01/hostedzone/{zone}/associatevpc"),
        None,
        "<AssociateVPCWithHostedZoneRequest><VPC><VPCRegion>us-east-1</VPCRegion><VPCId>vpc-1</VPCId></VPC></AssociateVPCWithHostedZoneRequest>",
    );
    assert!(
        r.body.contains("<Code>PublicZoneVPCAssociation</Code>"),
        "{}",
        r.body
    );
}

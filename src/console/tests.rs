//! Handler tests without a socket: the console's router with its templates, driven by
//! `tower::ServiceExt::oneshot`, asserting what a user would see.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use tower::ServiceExt;

use super::Console;
use crate::api::sigv4::{AccessKey, AuthMode, KeyFile, SignedRequest};
use crate::api::{AppState, Clock, handle_ec2};
use crate::model::{Control, Timestamp};

const T0: i64 = 1_764_000_000_000;

struct Site {
    app: Router,
    api: AppState,
    now: Arc<AtomicI64>,
    cookies: Vec<String>,
    _dir: tempfile::TempDir,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

fn site(auth: AuthMode) -> Site {
    let dir = tempfile::tempdir().expect("tmp");
    let control =
        Control::open(&crate::model::store::StorePaths::scratch(dir.path())).expect("state dir");
    let now = Arc::new(AtomicI64::new(T0));
    let n = now.clone();
    let clock: Clock = Arc::new(move || Timestamp(n.load(Ordering::Relaxed)));
    let api = AppState::new(Arc::new(Mutex::new(control)), clock)
        .with_auth(auth)
        .with_boot_delay(std::time::Duration::from_millis(300));
    let console = Console::new(api.clone(), "us-east-1");
    api.lock().subscribe(console.subscriber());
    let app = console.router().merge(crate::api::router(api.clone()));
    Site {
        app,
        api,
        now,
        cookies: Vec::new(),
        _dir: dir,
    }
}

fn open_site() -> Site {
    site(AuthMode::Open)
}

fn alice() -> AccessKey {
    AccessKey {
        access_key: "AKIAALICE0000000000".into(),
        secret_key: "alice-secret".into(),
        account: "111111111111".into(),
    }
}

impl Site {
    async fn send(&mut self, mut req: Request<Body>) -> Page {
        if !self.cookies.is_empty() {
            req.headers_mut()
                .insert(header::COOKIE, self.cookies.join("; ").parse().unwrap());
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        for c in resp.headers().get_all(header::SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap().to_string();
            let name = pair.split('=').next().unwrap().to_string();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            if !pair.ends_with('=') {
                self.cookies.push(pair);
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(
            Request::get(path)
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// A token from a fresh page (and the session cookie with it).
    async fn csrf(&mut self) -> String {
        self.get("/console/").await.csrf()
    }

    /// One EC2 API call, as the CLI would make it (open mode); (status, XML).
    fn ec2(&self, form: &str) -> (u16, String) {
        let req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: None,
            headers: vec![(
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=test/20251124/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0".into(),
            )],
        };
        handle_ec2(&self.api, &req, form.as_bytes())
    }

    fn ec2_id(&self, form: &str, tag: &str) -> String {
        let (s, xml) = self.ec2(form);
        assert_eq!(s, 200, "{xml}");
        let open = format!("<{tag}>");
        let at = xml.find(&open).unwrap_or_else(|| panic!("{tag} in {xml}")) + open.len();
        xml[at..at + xml[at..].find('<').unwrap()].to_string()
    }

    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::Relaxed);
    }
}

fn xml_message(xml: &str) -> String {
    let a = xml.find("<Message>").unwrap() + "<Message>".len();
    let b = xml.find("</Message>").unwrap();
    xml[a..b].to_string()
}

/// The HTML-escaped form of a text (what a page shows for it).
fn escaped(s: &str) -> String {
    maud::html! { (s) }.into_string()
}

#[tokio::test]
async fn a_browser_at_the_root_is_sent_to_the_console_but_aws_clients_are_not() {
    let mut s = open_site();
    let p = s.get("/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/console/");
    // A signed request (any AWS client) keeps going to the service router.
    let p = s
        .send(
            Request::get("/")
                .header(header::ACCEPT, "text/html")
                .header(
                    header::AUTHORIZATION,
                    "AWS4-HMAC-SHA256 Credential=test/20251124/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_ne!(p.status, StatusCode::SEE_OTHER);
    assert!(p.body.contains("<Response><Errors>"), "{}", p.body);
    // A query-string API call, even from a browser, is the EC2 Query API.
    let p = s.get("/?Action=DescribeRegions&Version=2016-11-15").await;
    assert_ne!(p.status, StatusCode::SEE_OTHER);
    assert!(p.body.contains("Response"), "{}", p.body);
    // A client that does not ask for HTML gets the API's answer.
    let p = s.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_ne!(p.status, StatusCode::SEE_OTHER);
    assert!(p.body.contains("<Response><Errors>"), "{}", p.body);
}

#[tokio::test]
async fn home_lists_services_region_selector_and_resource_groups() {
    let mut s = open_site();
    let vpc = s.ec2_id(
        "Action=CreateVpc&CidrBlock=10.9.0.0/16&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Project&TagSpecification.1.Tag.1.Value=web",
        "vpcId",
    );
    let p = s.get("/console/").await;
    assert_eq!(p.status, StatusCode::OK);
    let cookie = p.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(p.body.contains("Amazon EC2") || p.body.contains("EC2"));
    assert!(
        p.body.contains(r#"<option value="eu-west-1""#),
        "every region offered"
    );
    assert!(p.body.contains("Project=web"), "resource group by tag");
    assert!(p.body.contains(&vpc));
    assert!(
        p.body.contains(r#"<main id="main""#) && p.body.contains(r#"<label for="region-select">"#)
    );
    // Choosing a region is kept in a cookie.
    let token = p.csrf();
    let p = s
        .post(
            "/console/region",
            &[("csrf", &token), ("region", "eu-west-1")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let p = s.get("/console/r/vpcs").await;
    assert!(
        p.body.contains(r#"<option value="eu-west-1" selected>"#),
        "{}",
        p.body
    );
    assert!(
        !p.body.contains(&vpc),
        "the us-east-1 VPC is not listed in eu-west-1"
    );
}

#[tokio::test]
async fn a_vpc_created_through_the_api_appears_on_the_dashboard_with_public_and_private_subnets() {
    let mut s = open_site();
    let vpc = s.ec2_id(
        "Action=CreateVpc&CidrBlock=10.1.0.0/16&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=lab-vpc",
        "vpcId",
    );
    let public = s.ec2_id(
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.1.1.0/24&AvailabilityZone=us-east-1a"
        ),
        "subnetId",
    );
    let private = s.ec2_id(
        &format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.1.2.0/24&AvailabilityZone=us-east-1b"
        ),
        "subnetId",
    );
    let igw = s.ec2_id("Action=CreateInternetGateway", "internetGatewayId");
    s.ec2_id(
        &format!("Action=AttachInternetGateway&InternetGatewayId={igw}&VpcId={vpc}"),
        "return",
    );
    let rt = s.ec2_id(
        &format!("Action=CreateRouteTable&VpcId={vpc}"),
        "routeTableId",
    );
    s.ec2_id(
        &format!(
            "Action=CreateRoute&RouteTableId={rt}&DestinationCidrBlock=0.0.0.0/0&GatewayId={igw}"
        ),
        "return",
    );
    s.ec2_id(
        &format!("Action=AssociateRouteTable&RouteTableId={rt}&SubnetId={public}"),
        "associationId",
    );

    let p = s.get("/console/vpc").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<svg"), "the picture is inline SVG");
    assert!(p.body.contains(&format!("VPC lab-vpc {vpc}")), "{}", p.body);
    assert!(p.body.contains(&format!("Public subnet {public}")));
    assert!(p.body.contains(&format!("Private subnet {private}")));
    assert!(p.body.contains(&format!("Internet gateway {igw}")));
    assert!(
        p.body.contains(&format!("0.0.0.0/0 → {igw}")),
        "routes are drawn"
    );
    assert!(
        p.body.contains("Availability Zone us-east-1a")
            && p.body.contains("Availability Zone us-east-1b")
    );
    // The picture alone (what live updates fetch) shows the same.
    let p = s.get(&format!("/console/vpc/picture?vpc={vpc}")).await;
    assert!(p.body.starts_with("<svg") && p.body.contains(&public));
    // Subnet table marks them, detail pages show their routes.
    let p = s.get("/console/r/subnets").await;
    assert!(p.body.contains(&public) && p.body.contains(r#"class="badge public""#));
    let p = s.get(&format!("/console/r/subnets/{public}")).await;
    assert!(p.body.contains(&rt) && p.body.contains("0.0.0.0/0"));
}

#[tokio::test]
async fn every_table_and_detail_page_renders_and_filters() {
    let mut s = open_site();
    let vpc = s.ec2_id(
        "Action=CreateVpc&CidrBlock=10.2.0.0/16&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=findme",
        "vpcId",
    );
    s.ec2_id("Action=CreateVpc&CidrBlock=10.3.0.0/16", "vpcId");
    for k in super::pages::KINDS {
        let p = s.get(&format!("/console/r/{}", k.slug)).await;
        assert_eq!(p.status, StatusCode::OK, "{}", k.slug);
        assert!(p.body.contains(k.title), "{}", k.slug);
    }
    let p = s.get("/console/r/vpcs?q=findme").await;
    assert!(p.body.contains(&vpc));
    assert!(
        p.body.contains("1 of 3 shown"),
        "default VPC + 2, one matches: {}",
        p.body
    );
    let p = s.get(&format!("/console/r/vpcs/{vpc}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("10.2.0.0/16") && p.body.contains("findme"));
    let p = s.get("/console/r/vpcs/vpc-0000000000000000f").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let image = crate::catalog::IMAGES[0].image_id;
    let p = s.get(&format!("/console/r/images/{image}")).await;
    assert!(p.body.contains("ec2-user") || p.body.contains("ubuntu"));
    let p = s.get("/console/nowhere").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_form_error_shows_the_same_aws_error_text_as_the_api_next_to_the_field() {
    let mut s = open_site();
    let (status, xml) = s.ec2("Action=CreateVpc&CidrBlock=10.0.0.1/16");
    assert_eq!(status, 400);
    let api_message = xml_message(&xml);
    let token = s.csrf().await;
    let p = s
        .post(
            "/console/vpc/create",
            &[
                ("csrf", &token),
                ("mode", "vpc"),
                ("name", "x"),
                ("cidr", "10.0.0.1/16"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.body
            .contains(&escaped(&format!("InvalidParameterValue: {api_message}"))),
        "{}",
        p.body
    );
    // Next to the CIDR field, linked to it, with what the user typed kept.
    let err_at = p
        .body
        .find(r#"id="vpc-cidr-error""#)
        .expect("an error by the field");
    let field_at = p.body.find(r#"id="vpc-cidr""#).expect("the field");
    assert!(field_at < err_at);
    assert!(p.body.contains(r#"aria-describedby="vpc-cidr-error""#));
    assert!(p.body.contains(r#"value="10.0.0.1/16""#));
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let mut s = open_site();
    let _ = s.csrf().await;
    let before = s.ec2("Action=DescribeVpcs").1.matches("<vpcId>").count();
    let p = s
        .post(
            "/console/vpc/create",
            &[("mode", "vpc"), ("cidr", "10.5.0.0/16")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("CSRF"));
    let p = s
        .post(
            "/console/vpc/create",
            &[("csrf", "0000"), ("mode", "vpc"), ("cidr", "10.5.0.0/16")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // Without the session cookie, even a real token is refused.
    let token = s.csrf().await;
    s.cookies.clear();
    let p = s
        .post(
            "/console/vpc/create",
            &[("csrf", &token), ("mode", "vpc"), ("cidr", "10.5.0.0/16")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.ec2("Action=DescribeVpcs").1.matches("<vpcId>").count(),
        before
    );
}

#[tokio::test]
async fn strict_mode_asks_for_an_access_key_pair_and_shows_only_that_account() {
    let mut s = site(AuthMode::strict(KeyFile {
        keys: vec![alice()],
    }));
    let p = s.get("/console/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/console/login");
    let p = s.get("/console/vpc").await;
    assert_eq!(p.location(), "/console/login");
    let p = s.get("/console/login").await;
    assert!(p.body.contains("Secret access key") && p.body.contains(r#"type="password""#));
    // A POST without a session goes to the login page too, and changes nothing.
    let p = s
        .post("/console/vpc/create", &[("cidr", "10.5.0.0/16")])
        .await;
    assert_eq!(p.location(), "/console/login");
    let p = s
        .post(
            "/console/login",
            &[
                ("access_key", "AKIAALICE0000000000"),
                ("secret_key", "wrong"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("AuthFailure"));
    let p = s
        .post(
            "/console/login",
            &[
                ("access_key", "AKIAALICE0000000000"),
                ("secret_key", "alice-secret"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let p = s.get("/console/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("111111111111"));
    assert!(p.body.contains("Sign out"));
    // A forged cookie for another account is not a session.
    s.cookies = s
        .cookies
        .iter()
        .map(|c| c.replace(".111111111111.", ".000000000000."))
        .collect();
    assert_eq!(s.get("/console/").await.status, StatusCode::SEE_OTHER);
}

/// The seed's flow: a key pair (the .pem once, with chmod 400), t2.micro, a security
/// group with SSH from my IP and HTTP from anywhere; the instance page's ssh line.
#[tokio::test]
async fn launch_flow_creates_key_group_and_instance_and_shows_the_ssh_line() {
    let mut s = open_site();
    let p = s.get("/console/launch").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains(r#"<option selected>t2.micro</option>"#),
        "t2.micro preselected"
    );
    let token = p.csrf();
    let p = s
        .post(
            "/console/key-pairs",
            &[
                ("csrf", &token),
                ("key_name", "lab-key"),
                ("key_type", "ed25519"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("chmod 400 lab-key.pem"));
    assert!(p.body.contains(r#"download="lab-key.pem""#));
    assert!(p.body.contains("data:application/x-pem-file;base64,"));
    assert!(p.body.contains("only time it is shown"));
    // The same name again: the API's duplicate error, by the name field.
    let p = s
        .post(
            "/console/key-pairs",
            &[
                ("csrf", &token),
                ("key_name", "lab-key"),
                ("key_type", "ed25519"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("InvalidKeyPair.Duplicate"), "{}", p.body);
    assert!(p.body.contains(r#"id="key-key_name-error""#));

    let p = s.get("/console/launch?key=lab-key").await;
    assert!(p.body.contains(r#"<option selected>lab-key</option>"#));
    let subnet = {
        let at = p.body.find(r#"<option value="subnet-"#).unwrap() + r#"<option value=""#.len();
        p.body[at..at + p.body[at..].find('"').unwrap()].to_string()
    };
    let image = crate::catalog::IMAGES
        .iter()
        .find(|i| i.default_user() == "ec2-user")
        .unwrap()
        .image_id;
    let p = s
        .post(
            "/console/launch",
            &[
                ("csrf", &token),
                ("name", "web-1"),
                ("image", image),
                ("instance_type", "t2.micro"),
                ("key_name", "lab-key"),
                ("subnet", &subnet),
                ("public_ip", "on"),
                ("sg_mode", "new"),
                ("ssh_my_ip", "on"),
                ("http_anywhere", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let instance_page = p.location().to_string();
    assert!(instance_page.starts_with("/console/r/instances/i-"));
    let xml = s.ec2("Action=DescribeInstances").1;
    assert!(
        xml.contains("<instanceType>t2.micro</instanceType>")
            && xml.contains("<keyName>lab-key</keyName>")
    );
    let sgs = s.ec2("Action=DescribeSecurityGroups&Filter.1.Name=group-name&Filter.1.Value.1=launch-wizard-1").1;
    assert!(
        sgs.contains("<cidrIp>203.0.113.10/32</cidrIp>") && sgs.contains("<fromPort>22</fromPort>"),
        "{sgs}"
    );
    assert!(
        sgs.contains("<cidrIp>0.0.0.0/0</cidrIp>") && sgs.contains("<fromPort>80</fromPort>"),
        "{sgs}"
    );
    s.advance(1_000);
    let p = s.get(&instance_page).await;
    assert!(p.body.contains("running"), "{}", p.body);
    let at = p.body.find(r#"id="ssh-line">"#).unwrap() + r#"id="ssh-line">"#.len();
    let line = &p.body[at..at + p.body[at..].find('<').unwrap()];
    assert!(
        line.starts_with("ssh -i lab-key.pem ec2-user@ec2-"),
        "{line}"
    );
    assert!(line.ends_with(".compute-1.amazonaws.com"), "{line}");
    // Stop it from the page.
    let id = instance_page.rsplit('/').next().unwrap().to_string();
    let p = s
        .post(
            &format!("/console/instances/{id}/stop"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    s.advance(1_000);
    assert!(
        s.get(&instance_page)
            .await
            .body
            .contains(r#"class="badge stopped""#)
    );
    // The billing page prices it (the root volume stays billed while stopped).
    let p = s.get("/console/billing").await;
    assert!(p.body.contains("t2.micro instance (stopped)") && p.body.contains("$0.013"));
    assert!(p.body.contains("EBS root volume"));
    assert!(p.body.contains(super::billing::PRICES_DATED));
}

/// Reachability names the NACL rule that blocks SSH and links to it; the NACL editor
/// is the same CreateNetworkAclEntry as the API.
#[tokio::test]
async fn reachability_names_the_blocking_nacl_rule_and_links_to_it() {
    let mut s = open_site();
    let token = s.csrf().await;
    let image = crate::catalog::IMAGES[0].image_id;
    let p = s.get("/console/launch").await;
    let subnet = {
        let at = p.body.find(r#"<option value="subnet-"#).unwrap() + r#"<option value=""#.len();
        p.body[at..at + p.body[at..].find('"').unwrap()].to_string()
    };
    let p = s
        .post(
            "/console/launch",
            &[
                ("csrf", &token),
                ("image", image),
                ("subnet", &subnet),
                ("public_ip", "on"),
                ("sg_mode", "new"),
                ("ssh_my_ip", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let id = p
        .location()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    s.advance(1_000);
    let p = s
        .get(&format!("/console/reach?from=me&to={id}&proto=tcp&port=22"))
        .await;
    assert!(p.body.contains("Reachable."), "{}", p.body);
    // HTTP is not allowed by the new group: the security group is named.
    let p = s
        .get(&format!("/console/reach?from=me&to={id}&proto=tcp&port=80"))
        .await;
    assert!(
        p.body.contains("Not reachable.") && p.body.contains("launch-wizard-1"),
        "{}",
        p.body
    );
    // Deny SSH in the subnet's network ACL from the console's editor.
    let xml = s.ec2(&format!("Action=DescribeNetworkAcls&Filter.1.Name=association.subnet-id&Filter.1.Value.1={subnet}")).1;
    let acl = {
        let at = xml.find("<networkAclId>").unwrap() + "<networkAclId>".len();
        xml[at..at + 21].to_string()
    };
    let p = s
        .post(
            &format!("/console/nacl/{acl}/entry"),
            &[
                ("csrf", &token),
                ("mode", "create"),
                ("direction", "ingress"),
                ("rule_number", "90"),
                ("protocol", "6"),
                ("port_from", "22"),
                ("port_to", "22"),
                ("cidr", "0.0.0.0/0"),
                ("rule_action", "deny"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(
        s.ec2(&format!("Action=DescribeNetworkAcls&NetworkAclId.1={acl}"))
            .1
            .contains("<ruleNumber>90</ruleNumber>")
    );
    let p = s
        .get(&format!("/console/reach?from=me&to={id}&proto=tcp&port=22"))
        .await;
    assert!(p.body.contains("Not reachable."), "{}", p.body);
    assert!(
        p.body
            .contains(&format!("blocked by network ACL {acl} inbound rule 90")),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(&format!(
            r#"href="/console/r/network-acls/{acl}#rule-in-90""#
        )),
        "{}",
        p.body
    );
    assert!(p.body.contains(r#"class="decisive""#));
    // The link target exists on the NACL page.
    let p = s.get(&format!("/console/r/network-acls/{acl}")).await;
    assert!(p.body.contains(r#"id="rule-in-90""#));
    // The same rule number again: the API's error, next to the rule number.
    let p = s
        .post(
            &format!("/console/nacl/{acl}/entry"),
            &[
                ("csrf", &token),
                ("mode", "create"),
                ("direction", "ingress"),
                ("rule_number", "90"),
                ("protocol", "6"),
                ("port_from", "22"),
                ("port_to", "22"),
                ("cidr", "0.0.0.0/0"),
                ("rule_action", "deny"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.body.contains("NetworkAclEntryAlreadyExists"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(r#"id="nacl-rule_number-error""#),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn security_group_editor_adds_and_deletes_rules_with_api_errors() {
    let mut s = open_site();
    let token = s.csrf().await;
    let sg = s.ec2_id(
        "Action=CreateSecurityGroup&GroupName=web&GroupDescription=web",
        "groupId",
    );
    let p = s
        .post(
            &format!("/console/sg/{sg}/authorize"),
            &[
                ("csrf", &token),
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("from_port", "443"),
                ("to_port", "443"),
                ("peer", "0.0.0.0/0"),
                ("description", "https"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = s.get(&format!("/console/r/security-groups/{sg}")).await;
    assert!(p.body.contains("443") && p.body.contains("https"));
    // A bad CIDR: the API's text, by the source field.
    let (_, xml) = s.ec2(&format!("Action=AuthorizeSecurityGroupIngress&GroupId={sg}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=banana"));
    let p = s
        .post(
            &format!("/console/sg/{sg}/authorize"),
            &[
                ("csrf", &token),
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("from_port", "22"),
                ("to_port", "22"),
                ("peer", "banana"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.body.contains(&escaped(&xml_message(&xml))),
        "{}\n{xml}",
        p.body
    );
    assert!(p.body.contains(r#"id="sg-peer-error""#), "{}", p.body);
    // Delete the inbound rule by its id, from the button on its row.
    let page = s
        .get(&format!("/console/r/security-groups/{sg}"))
        .await
        .body;
    let inbound = &page[page.find("Inbound rules").unwrap()..page.find("Outbound rules").unwrap()];
    let rule = {
        let at = inbound.find(r#"<tr id=""#).unwrap() + r#"<tr id=""#.len();
        inbound[at..at + inbound[at..].find('"').unwrap()].to_string()
    };
    let dir = "ingress";
    let p = s
        .post(
            &format!("/console/sg/{sg}/revoke"),
            &[("csrf", &token), ("rule_id", &rule), ("direction", dir)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(
        !s.ec2(&format!(
            "Action=DescribeSecurityGroupRules&Filter.1.Name=group-id&Filter.1.Value.1={sg}"
        ))
        .1
        .contains(&rule)
    );
}

#[tokio::test]
async fn vpc_and_more_creates_the_whole_network_at_once() {
    let mut s = open_site();
    let token = s.csrf().await;
    let p = s
        .post(
            "/console/vpc/create",
            &[
                ("csrf", &token),
                ("mode", "more"),
                ("name", "shop"),
                ("cidr", "10.20.0.0/16"),
                ("azs", "2"),
                ("public", "1"),
                ("private", "1"),
                ("nat", "one"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let vpc = p.location().split("vpc=").nth(1).unwrap().to_string();
    let subnets = s
        .ec2(&format!(
            "Action=DescribeSubnets&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc}"
        ))
        .1;
    assert_eq!(subnets.matches("<subnetId>").count(), 4, "{subnets}");
    assert!(
        subnets.contains("<cidrBlock>10.20.0.0/20</cidrBlock>")
            && subnets.contains("<cidrBlock>10.20.128.0/20</cidrBlock>")
    );
    assert!(subnets.contains("shop-subnet-public1-us-east-1a"));
    let nat = s.ec2("Action=DescribeNatGateways").1;
    assert!(nat.contains(&vpc));
    let p = s.get(&format!("/console/vpc?vpc={vpc}")).await;
    assert_eq!(
        p.body.matches("Public subnet shop-subnet-public").count(),
        2,
        "{}",
        p.body
    );
    assert_eq!(
        p.body.matches("Private subnet shop-subnet-private").count(),
        2
    );
    assert!(p.body.contains("NAT gateway nat-"));
    // A block too small for the wizard: nothing is created.
    let before = s.ec2("Action=DescribeVpcs").1.matches("<vpcId>").count();
    let p = s
        .post(
            "/console/vpc/create",
            &[("csrf", &token), ("mode", "more"), ("cidr", "10.30.0.0/27")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.ec2("Action=DescribeVpcs").1.matches("<vpcId>").count(),
        before
    );
}

/// Live update: an API change reaches an open event stream as a `change` event.
#[tokio::test]
async fn an_api_change_reaches_the_event_stream() {
    use http_body_util::BodyExt;
    let mut s = open_site();
    let _ = s.csrf().await;
    let mut req = Request::get("/console/events").body(Body::empty()).unwrap();
    req.headers_mut()
        .insert(header::COOKIE, s.cookies.join("; ").parse().unwrap());
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.into_body();
    let vpc = s.ec2_id("Action=CreateVpc&CidrBlock=10.7.0.0/16", "vpcId");
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("no error");
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.contains("event: change"), "{text}");
    assert!(
        text.contains(&format!("CreateVpc: vpc {vpc} created")),
        "{text}"
    );
}

#[tokio::test]
async fn static_files_are_served_from_the_binary() {
    let mut s = open_site();
    let p = s.get("/console/static/htmx.min.js").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.starts_with("/* htmx 2.0.11") && p.body.contains("Zero-Clause BSD"));
    let p = s.get("/console/static/console.css").await;
    assert!(p.body.contains(":focus-visible"));
    let p = s.get("/console/").await;
    assert!(
        p.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
}

/// Puts `values` of `Lab/App CPUUtilization` for `i-1` one minute apart, ending now, and
/// an alarm on it, a dashboard and a log stream (the default account, us-east-1).
fn cloudwatch_fixture(s: &Site, values: &[f64]) {
    use crate::model::cloudwatch::alarm::MetricAlarmInput;
    use crate::model::cloudwatch::{Datum, Dimension, Stats};
    let now = s.now.load(Ordering::Relaxed);
    let dims = vec![Dimension {
        name: "InstanceId".into(),
        value: "i-1".into(),
    }];
    let data: Vec<Datum> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Datum {
            name: "CPUUtilization".into(),
            dimensions: dims.clone(),
            timestamp: Some(now - (values.len() - 1 - i) as i64 * 60_000),
            stats: vec![Stats::one(*v)],
            unit: Some("Percent".into()),
            resolution: None,
        })
        .collect();
    let env = crate::model::Env::new("us-east-1", Timestamp(now));
    s.api
        .lock()
        .mutate(crate::model::DEFAULT_ACCOUNT, &env, false, |w, env| {
            w.put_metric_data(env, "Lab/App", data)?;
            w.put_metric_alarm(
                env,
                MetricAlarmInput {
                    name: "cpu-high".into(),
                    namespace: Some("Lab/App".into()),
                    metric_name: Some("CPUUtilization".into()),
                    dimensions: dims.clone(),
                    statistic: Some("Average".into()),
                    period: Some(60),
                    threshold: Some(50.0),
                    comparison: Some("GreaterThanThreshold".into()),
                    evaluation_periods: Some(1),
                    ..MetricAlarmInput::default()
                },
            )?;
            w.put_dashboard(
                env,
                "ops",
                r#"{"widgets":[{"type":"metric","properties":{"title":"CPU of i-1","stat":"Maximum","period":60,"metrics":[["Lab/App","CPUUtilization","InstanceId","i-1"],["Lab/App","NetworkIn","InstanceId","i-gone"]]}},{"type":"text","properties":{"markdown":"hello ops"}}]}"#,
            )?;
            w.create_log_group(env, "/app/web", None, Default::default())?;
            w.put_log_events(
                env,
                "/app/web",
                "host-1",
                &[crate::model::logs::InputEvent {
                    timestamp: now,
                    message: "GET /index.html 200 <ok>".into(),
                }],
                true,
            )
        })
        .expect("cloudwatch fixture");
}

#[tokio::test]
async fn cloudwatch_pages_show_alarms_metrics_charts_dashboards_and_logs() {
    let mut s = open_site();
    cloudwatch_fixture(&s, &[10.0, 20.0, 95.0]);

    let p = s.get("/console/cloudwatch").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"alarm-list\""), "{}", p.body);
    assert!(p.body.contains("cpu-high"));
    assert!(
        p.body.contains("Average &gt; 50 for 1 × 60 s"),
        "{}",
        p.body
    );
    assert!(p.body.contains("CPUUtilization") && p.body.contains("InstanceId=i-1"));
    assert!(p.body.contains("/console/cloudwatch/dashboards/ops"));
    assert!(
        p.body
            .contains("/console/cloudwatch/logs?group=%2Fapp%2Fweb")
    );

    // The chart: one polyline through the three datapoints, the values in the table.
    let p = s
        .get("/console/cloudwatch/metric?ns=Lab%2FApp&name=CPUUtilization&dim=InstanceId%3Di-1&stat=Maximum&period=60")
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("<svg class=\"chart\""), "{}", p.body);
    assert_eq!(p.body.matches("<polyline").count(), 1);
    assert_eq!(p.body.matches("<circle").count(), 3);
    assert!(p.body.contains("<td>95</td>") && p.body.contains("<td>10</td>"));
    assert!(p.body.contains("Maximum of Lab/App CPUUtilization"));
    // Another statistic over a longer period merges the points: one datapoint.
    let p = s
        .get("/console/cloudwatch/metric?ns=Lab%2FApp&name=CPUUtilization&dim=InstanceId%3Di-1&stat=Sum&period=3600")
        .await;
    assert!(
        p.body.contains("<td>125</td>") || p.body.matches("<circle").count() == 2,
        "one hour bucket (or two when the hour turns): {}",
        p.body
    );
    // Bad input: the error says what is wrong.
    let p = s
        .get("/console/cloudwatch/metric?ns=Lab%2FApp&name=CPUUtilization&dim=InstanceId%3Di-1&stat=Median")
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.body.contains("The statistic Median is not one of"),
        "{}",
        p.body
    );
    let p = s
        .get("/console/cloudwatch/metric?ns=Lab%2FApp&name=CPUUtilization&dim=InstanceId%3Di-2")
        .await;
    assert!(
        p.body
            .contains("No metric Lab/App CPUUtilization InstanceId=i-2"),
        "{}",
        p.body
    );

    // The alarm: state, the chart with its dashed threshold, the history.
    let p = s.get("/console/cloudwatch/alarms/cpu-high").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("id=\"alarm-state\""));
    assert!(p.body.contains("class=\"threshold\""), "{}", p.body);
    assert!(p.body.contains("id=\"alarm-history\""));
    assert!(
        p.body.contains("Alarm &quot;cpu-high&quot; created") || p.body.contains("created"),
        "{}",
        p.body
    );
    let p = s.get("/console/cloudwatch/alarms/nope").await;
    assert!(p.body.contains("nope"), "{}", p.body);
    assert_ne!(p.status, StatusCode::OK);

    // The dashboard: the metric widget drawn, the missing metric named, the text shown.
    let p = s.get("/console/cloudwatch/dashboards/ops").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("CPU of i-1"));
    assert_eq!(p.body.matches("<polyline").count(), 1, "{}", p.body);
    assert!(p.body.contains("No data: NetworkIn i-gone"), "{}", p.body);
    assert!(p.body.contains("hello ops"));

    // Logs: the group's streams, then the stream's events (escaped).
    let p = s.get("/console/cloudwatch/logs?group=%2Fapp%2Fweb").await;
    assert!(
        p.body.contains("id=\"log-stream-list\"") && p.body.contains("host-1"),
        "{}",
        p.body
    );
    let p = s
        .get("/console/cloudwatch/logs?group=%2Fapp%2Fweb&stream=host-1")
        .await;
    assert!(
        p.body.contains(&escaped("GET /index.html 200 <ok>")),
        "{}",
        p.body
    );
    let p = s.get("/console/cloudwatch/logs?group=%2Fnope").await;
    assert!(
        p.body.contains("ResourceNotFoundException") || p.body.contains("does not exist"),
        "{}",
        p.body
    );
}

/// A lab engine stand-in with the answers the real one gives (`lab::service`): the panel
/// is the console's; grading is tested with the engine.
fn fake_labs(calls: Arc<Mutex<Vec<String>>>, running: bool) -> super::lab::LabOps {
    Arc::new(move |op, account| {
        calls.lock().unwrap().push(format!("{op} {account}"));
        let answer = if !running {
            Err("learner has no lab in progress (vpclab lab start LAB)".to_string())
        } else {
            Ok(match op {
                "status" => serde_json::json!({
                    "title": "Public and private subnets", "points": 10, "max_points": 30,
                    "percent": 33, "mode": "practice", "completed": false,
                    "steps": [
                        {"title": "Create the VPC", "state": "done"},
                        {"title": "Route the public subnet", "state": "current"},
                        {"title": "Reach the web server", "state": "todo"}],
                    "current": {"index": 2, "of": 3, "title": "Route the public subnet"}
                }),
                "check" => serde_json::json!({
                    "passed": false,
                    "results": [
                        {"id": "igw-attached", "status": "pass", "message": "igw-1 is attached to vpc-1"},
                        {"id": "default-route", "status": "fail", "message": "rtb-1 has no route to 0.0.0.0/0 through an internet gateway"}]
                }),
                _ => {
                    serde_json::json!({"hints": ["Look at the route table of the public subnet."]})
                }
            })
        };
        Box::pin(std::future::ready(answer))
    })
}

#[tokio::test]
async fn the_lab_panel_shows_the_step_and_checks_with_reasons_and_hints() {
    let mut s = open_site();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let console =
        Console::new(s.api.clone(), "us-east-1").with_labs(fake_labs(calls.clone(), true));
    s.app = console.router().merge(crate::api::router(s.api.clone()));

    // Every page loads the panel.
    let p = s.get("/console/vpc").await;
    assert!(
        p.body.contains(r#"hx-get="/console/lab/panel""#),
        "{}",
        p.body
    );
    let p = s.get("/console/lab/panel").await;
    assert!(
        p.body.contains("Lab: Public and private subnets"),
        "{}",
        p.body
    );
    assert!(p.body.contains("Step 2 of 3: Route the public subnet"));
    assert!(p.body.contains("✓ Create the VPC"));
    assert!(p.body.contains("10 / 30 points"));

    // Check needs the CSRF token.
    let p = s.post("/console/lab/check", &[("csrf", "forged")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!calls.lock().unwrap().iter().any(|c| c.starts_with("check")));
    let csrf = s.csrf().await;
    let p = s.post("/console/lab/check", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Not yet."), "{}", p.body);
    assert!(p.body.contains("class=\"check-pass\"") && p.body.contains("class=\"check-fail\""));
    assert!(
        p.body
            .contains("rtb-1 has no route to 0.0.0.0/0 through an internet gateway")
    );
    assert!(
        calls
            .lock()
            .unwrap()
            .contains(&format!("check {}", crate::model::DEFAULT_ACCOUNT)),
        "the check ran for the session's account"
    );
    let p = s.post("/console/lab/hint", &[("csrf", &csrf)]).await;
    assert!(
        p.body
            .contains("Look at the route table of the public subnet."),
        "{}",
        p.body
    );

    // No lab running: no panel content.
    let mut s = open_site();
    let console = Console::new(s.api.clone(), "us-east-1")
        .with_labs(fake_labs(Arc::new(Mutex::new(Vec::new())), false));
    s.app = console.router().merge(crate::api::router(s.api.clone()));
    let p = s.get("/console/lab/panel").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(!p.body.contains("lab-panel"), "{}", p.body);
    // And without a lab engine the frame does not even ask.
    let mut s = open_site();
    let p = s.get("/console/vpc").await;
    assert!(!p.body.contains("/console/lab/panel"));
}

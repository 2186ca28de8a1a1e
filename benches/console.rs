//! Console benchmark: the VPC dashboard's server time, and how fast a change made through
//! the API reaches an open live-update stream.
//!
//! Prints `BENCH console dashboard_ms=<p50> sse_ms=<p50>`:
//! - `dashboard_ms`: p50 of `GET /console/vpc` (the whole page with the SVG picture of
//!   every VPC) over a new loopback connection each, in an account holding 20 VPCs, 100
//!   subnets and 200 instances (running on the fabric, as `vpclab up` runs them);
//! - `sse_ms`: p50 from sending an API change (`CreateTags`) to its `event: change`
//!   arriving on an open `GET /console/events` stream.
//!
//! Everything listens on 127.0.0.1; the run is bounded (fixed counts, timeouts).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vpclab::daemon::{Background, DaemonConfig, DnsListen, StateDir};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

fn request(port: u16, head: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let req = format!(
        "{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

fn ec2(port: u16, form: &str) -> String {
    let r = request(
        port,
        &format!(
            "POST / HTTP/1.1\r\nAuthorization: {AUTH}\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Type: application/x-www-form-urlencoded"
        ),
        form,
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{form}: {r}");
    r
}

fn field(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let at = xml.find(&open).unwrap_or_else(|| panic!("{tag} in {xml}")) + open.len();
    xml[at..at + xml[at..].find('<').expect("end")].to_string()
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (vpcs, subnets_per_vpc, instances_per_subnet, pages, changes) = if full {
        (20, 5, 2, 31, 31)
    } else {
        (2, 2, 1, 3, 3)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = DaemonConfig::for_tests(StateDir::new(dir.path().to_path_buf()));
    cfg.dns_listen = DnsListen::Off;
    let bg = Background::start(cfg).expect("start the daemon");
    let port = bg.api_addr.port();

    let image = field(
        &ec2(port, "Action=DescribeImages&Owner.1=amazon"),
        "imageId",
    );
    let mut first_vpc = String::new();
    for v in 0..vpcs {
        let vpc = field(
            &ec2(port, &format!("Action=CreateVpc&CidrBlock=10.{v}.0.0/16")),
            "vpcId",
        );
        if first_vpc.is_empty() {
            first_vpc = vpc.clone();
        }
        let igw = field(
            &ec2(port, "Action=CreateInternetGateway"),
            "internetGatewayId",
        );
        ec2(
            port,
            &format!("Action=AttachInternetGateway&InternetGatewayId={igw}&VpcId={vpc}"),
        );
        let rt = field(
            &ec2(port, &format!("Action=CreateRouteTable&VpcId={vpc}")),
            "routeTableId",
        );
        ec2(
            port,
            &format!(
                "Action=CreateRoute&RouteTableId={rt}&DestinationCidrBlock=0.0.0.0/0&GatewayId={igw}"
            ),
        );
        for s in 0..subnets_per_vpc {
            let az = ["a", "b", "c"][s % 3];
            let subnet = field(
                &ec2(
                    port,
                    &format!(
                        "Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.{v}.{s}.0/24&AvailabilityZone=us-east-1{az}"
                    ),
                ),
                "subnetId",
            );
            if s == 0 {
                ec2(
                    port,
                    &format!("Action=AssociateRouteTable&RouteTableId={rt}&SubnetId={subnet}"),
                );
            }
            ec2(
                port,
                &format!(
                    "Action=RunInstances&ImageId={image}&InstanceType=t2.micro&MinCount={instances_per_subnet}&MaxCount={instances_per_subnet}&SubnetId={subnet}"
                ),
            );
        }
    }

    // A console session (open mode hands one out with the first page).
    let home = request(port, "GET /console/ HTTP/1.1\r\nAccept: text/html", "");
    let cookie = home
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();

    let mut times = Vec::new();
    for _ in 0..pages {
        let t = Instant::now();
        let page = request(
            port,
            &format!("GET /console/vpc HTTP/1.1\r\nAccept: text/html\r\nCookie: {cookie}"),
            "",
        );
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains(&first_vpc),
            "the dashboard shows the VPCs"
        );
    }
    let dashboard = p50(times);

    // The live stream: a reader thread stamps every `event: change` line.
    let mut sse = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sse.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(sse, "GET /console/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n").expect("write");
    let (tx, rx) = mpsc::channel::<Instant>();
    let reader = BufReader::new(sse.try_clone().expect("clone"));
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.contains("event: change") && tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut times = Vec::new();
    for i in 0..changes {
        while rx.try_recv().is_ok() {}
        let t = Instant::now();
        ec2(
            port,
            &format!("Action=CreateTags&ResourceId.1={first_vpc}&Tag.1.Key=Round&Tag.1.Value={i}"),
        );
        let at = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a change event within 10 s");
        times.push(at.duration_since(t).as_secs_f64() * 1000.0);
    }
    let sse_ms = p50(times);
    drop(sse);
    eprintln!(
        "console: dashboard p50 {dashboard:.2} ms ({vpcs} VPCs, {} subnets, {} instances), sse p50 {sse_ms:.2} ms",
        vpcs * subnets_per_vpc,
        vpcs * subnets_per_vpc * instances_per_subnet
    );
    bg.stop().expect("stop");
    if full {
        println!("BENCH console dashboard_ms={dashboard:.2} sse_ms={sse_ms:.2}");
    } else {
        println!(
            "console bench smoke run ok (run `cargo bench -p vpclab --bench console` for figures)"
        );
    }
}

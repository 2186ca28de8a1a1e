//! The web console on a real daemon's API port, over loopback HTTP: a browser at `/`
//! is sent to the console while the aws CLI keeps working on the same port, a VPC the
//! CLI creates appears on the dashboard, the live stream announces CLI changes, and an
//! open stream does not hold up the daemon's shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Lab, TestDaemon};

fn http(port: u16, head: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

fn session_cookie(response: &str) -> String {
    response
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case("set-cookie").then_some(v)
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

#[test]
fn a_browser_gets_the_console_and_sees_what_the_cli_creates_live() {
    let mut d = TestDaemon::start();
    let port = d.api_port();
    let root = http(
        port,
        "GET / HTTP/1.1\r\nAccept: text/html,application/xhtml+xml",
    );
    assert!(root.starts_with("HTTP/1.1 303"), "{root}");
    assert!(
        root.contains("location: /console/") || root.contains("Location: /console/"),
        "{root}"
    );
    let home = http(port, "GET /console/ HTTP/1.1\r\nAccept: text/html");
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    let cookie = session_cookie(&home);

    // Open the live stream, then change the world with the aws CLI.
    let mut sse = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sse.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        sse,
        "GET /console/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
    )
    .expect("write");
    let mut lines = BufReader::new(sse.try_clone().expect("clone")).lines();
    let status = lines.next().expect("a status line").expect("read");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    std::thread::sleep(Duration::from_millis(100));
    let vpc = d.aws(&["create-vpc", "--cidr-block", "10.42.0.0/16"]);
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().expect("VpcId").to_string();
    let wanted = format!("CreateVpc: vpc {vpc_id} created");
    let started = Instant::now();
    let event = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(&wanted))
        .expect("the change event");
    assert!(started.elapsed() < Duration::from_secs(5), "{event}");

    let page = http(
        port,
        &format!("GET /console/vpc HTTP/1.1\r\nAccept: text/html\r\nCookie: {cookie}"),
    );
    assert!(page.starts_with("HTTP/1.1 200"));
    assert!(
        page.contains(&format!("VPC {vpc_id}  10.42.0.0/16")),
        "{page}"
    );

    // Stopping the daemon ends the open stream instead of waiting for it.
    let t = Instant::now();
    d.stop();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
}

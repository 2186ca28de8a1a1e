//! Tests of the emulated shell: grammar at work, builtins, files, permissions, network
//! tools over a fake network, packages and services.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::instance::net::FakeNet;
use crate::instance::{Image, InstanceProfile, InstanceState};

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);

fn instance(image: Image) -> (Arc<InstanceState>, Arc<FakeNet>) {
    let mut p = InstanceProfile::example(image, ME);
    p.key_name = Some("test01".into());
    p.authorized_key = Some(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test01"
            .into(),
    );
    let net = FakeNet::new(ME, 24, &p.mac);
    (InstanceState::launch(p, net.clone()), net)
}

async fn run(sh: &mut Shell, line: &str) -> (i32, String, String) {
    let mut io = Io::buffered();
    let status = sh.run_script(line, &mut io).await;
    let out = String::from_utf8_lossy(&io.out.take_buf()).to_string();
    let err = String::from_utf8_lossy(&io.err.take_buf()).to_string();
    (status, out, err)
}

fn al() -> Shell {
    let (inst, _) = instance(Image::AmazonLinux2023);
    Shell::new(inst, "ec2-user")
}

#[tokio::test]
async fn unknown_command_prints_bash_message_and_exits_127() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "frobnicate --now").await;
    assert_eq!(st, 127);
    assert_eq!(out, "");
    assert_eq!(err, "-bash: frobnicate: command not found\n");
    let (_, out, _) = run(&mut sh, "echo $?").await;
    assert_eq!(out, "127\n");
}

#[tokio::test]
async fn and_or_and_semicolon_follow_exit_statuses() {
    let mut sh = al();
    let (_, out, _) = run(
        &mut sh,
        "false && echo no; true && echo yes || echo never; false || echo rescue",
    )
    .await;
    assert_eq!(out, "yes\nrescue\n");
}

#[tokio::test]
async fn quoting_keeps_spaces_and_single_quotes_block_expansion() {
    let mut sh = al();
    let (_, out, _) = run(&mut sh, r#"X='a  b'; echo "$X" '$X' $X"#).await;
    assert_eq!(out, "a  b $X a b\n");
}

#[tokio::test]
async fn pipes_feed_the_next_command() {
    let mut sh = al();
    let (st, out, _) = run(&mut sh, "printf 'b\\na\\nb\\n' | sort | uniq | wc -l").await;
    assert_eq!((st, out.as_str()), (0, "2\n"));
    let (st, out, _) = run(&mut sh, "cat /etc/os-release | grep -i '^name='").await;
    assert_eq!((st, out.as_str()), (0, "NAME=\"Amazon Linux\"\n"));
}

#[tokio::test]
async fn redirections_write_append_and_read_files() {
    let mut sh = al();
    run(&mut sh, "echo one > f.txt; echo two >> f.txt").await;
    let (_, out, _) = run(&mut sh, "cat < f.txt").await;
    assert_eq!(out, "one\ntwo\n");
    let (_, out, _) = run(&mut sh, "ls nothing 2>&1 | wc -l").await;
    assert_eq!(out, "1\n");
    let (_, out, err) = run(&mut sh, "cat missing 2>/dev/null; echo $?").await;
    assert_eq!((out.as_str(), err.as_str()), ("1\n", ""));
}

#[tokio::test]
async fn writing_into_the_web_root_needs_sudo() {
    let mut sh = al();
    let (st, _, err) = run(&mut sh, "echo hi > /var/www/html/index.html").await;
    assert_eq!(st, 1);
    assert_eq!(err, "-bash: /var/www/html/index.html: Permission denied\n");
    let (st, _, _) = run(&mut sh, "echo hi | sudo tee /var/www/html/index.html").await;
    assert_eq!(st, 0);
    let (_, out, _) = run(&mut sh, "cat /var/www/html/index.html; whoami; sudo whoami").await;
    assert_eq!(out, "hi\nec2-user\nroot\n");
}

#[tokio::test]
async fn sudo_su_enters_a_root_shell_until_exit() {
    let mut sh = al();
    run(&mut sh, "sudo su -").await;
    assert_eq!(sh.prompt(), "[root@ip-10-0-1-5 ~]# ");
    run(&mut sh, "exit").await;
    assert_eq!(sh.exit_requested, None);
    assert_eq!(sh.prompt(), "[ec2-user@ip-10-0-1-5 ~]$ ");
    run(&mut sh, "exit 3").await;
    assert_eq!(sh.exit_requested, Some(3));
}

#[tokio::test]
async fn cd_and_pwd_track_the_directory_and_prompt() {
    let mut sh = al();
    let (st, out, _) = run(&mut sh, "mkdir -p a/b && cd a/b && pwd").await;
    assert_eq!((st, out.as_str()), (0, "/home/ec2-user/a/b\n"));
    assert_eq!(sh.prompt(), "[ec2-user@ip-10-0-1-5 b]$ ");
    let (st, _, err) = run(&mut sh, "cd /nope").await;
    assert_eq!(st, 1);
    assert_eq!(err, "-bash: cd: /nope: No such file or directory\n");
    run(&mut sh, "cd").await;
    assert_eq!(sh.cwd, "/home/ec2-user");
}

#[tokio::test]
async fn file_commands_copy_move_remove() {
    let mut sh = al();
    let (st, out, err) = run(
        &mut sh,
        "touch a; cp a b; mv b c; mkdir d; cp a c d/; rm a; ls; ls d; rm d; echo $?; rm -r d; ls",
    )
    .await;
    assert_eq!(st, 0);
    assert_eq!(out, "c\nd\na\nc\n1\nc\n");
    assert_eq!(err, "rm: cannot remove 'd': Is a directory\n");
}

#[tokio::test]
async fn glob_expands_against_the_directory() {
    let mut sh = al();
    let (_, out, _) = run(
        &mut sh,
        "touch x1.txt x2.txt y.log; echo *.txt; echo nomatch*",
    )
    .await;
    assert_eq!(out, "x1.txt x2.txt\nnomatch*\n");
}

#[tokio::test]
async fn chmod_symbolic_and_octal_change_ls_long_output() {
    let mut sh = al();
    run(
        &mut sh,
        "touch key.pem; chmod 644 key.pem; chmod go-r key.pem",
    )
    .await;
    let (_, out, _) = run(&mut sh, "ls -l key.pem").await;
    assert!(out.starts_with("-rw------- 1 ec2-user ec2-user "), "{out}");
    run(&mut sh, "chmod 400 key.pem").await;
    let (_, out, _) = run(&mut sh, "ls -l key.pem").await;
    assert!(out.starts_with("-r-------- "), "{out}");
}

#[tokio::test]
async fn head_tail_grep_wc_behave_like_coreutils() {
    let mut sh = al();
    run(&mut sh, "printf '1\\n2\\n3\\n4\\n5\\n' > n").await;
    let (_, out, _) = run(
        &mut sh,
        "head -n 2 n; tail -2 n; grep -c . n; grep -v 3 n | wc -l; wc -l n",
    )
    .await;
    assert_eq!(out, "1\n2\n4\n5\n5\n4\n5 n\n");
    let (st, _, _) = run(&mut sh, "grep zzz n").await;
    assert_eq!(st, 1);
}

#[tokio::test]
async fn identity_commands_match_the_image() {
    let mut sh = al();
    let (_, out, _) = run(&mut sh, "hostname; whoami; id; uname -r").await;
    assert_eq!(
        out,
        "ip-10-0-1-5.ec2.internal\nec2-user\nuid=1000(ec2-user) gid=1000(ec2-user) groups=1000(ec2-user),4(adm),10(wheel),190(systemd-journal)\n6.1.115-126.197.amzn2023.x86_64\n"
    );
    let (inst, _) = instance(Image::Ubuntu2404);
    let mut ub = Shell::new(inst, "ubuntu");
    let (_, out, _) = run(&mut ub, "hostname; pwd").await;
    assert_eq!(out, "ip-10-0-1-5\n/home/ubuntu\n");
    assert_eq!(ub.prompt(), "ubuntu@ip-10-0-1-5:~$ ");
}

#[tokio::test]
async fn command_substitution_and_export_reach_env() {
    let mut sh = al();
    let (_, out, _) = run(
        &mut sh,
        "export GREETING=\"hi $(whoami)\"; env | grep GREETING",
    )
    .await;
    assert_eq!(out, "GREETING=hi ec2-user\n");
    let (_, out, _) = run(&mut sh, "A=1; echo ${A}x; unset A; echo \"[$A]\"").await;
    assert_eq!(out, "1x\n[]\n");
}

#[tokio::test]
async fn heredoc_writes_a_file_with_expansion() {
    let mut sh = al();
    let (st, _, _) = run(
        &mut sh,
        "cat > page.html <<EOF\n<h1>$(hostname -s)</h1>\nEOF\n",
    )
    .await;
    assert_eq!(st, 0);
    let (_, out, _) = run(&mut sh, "cat page.html").await;
    assert_eq!(out, "<h1>ip-10-0-1-5</h1>\n");
}

#[tokio::test]
async fn syntax_error_is_reported_with_status_2() {
    let mut sh = al();
    let (st, _, err) = run(&mut sh, "echo 'oops").await;
    assert_eq!(st, 2);
    assert!(
        err.contains("unexpected EOF while looking for matching `''"),
        "{err}"
    );
}

#[tokio::test]
async fn bash_c_and_test_brackets() {
    let mut sh = al();
    let (st, out, _) = run(
        &mut sh,
        "bash -c 'exit 4'; echo $?; [ -d /var/log ] && echo dir; test -f /nope || echo nofile",
    )
    .await;
    assert_eq!(st, 0);
    assert_eq!(out, "4\ndir\nnofile\n");
    assert_eq!(sh.exit_requested, None);
}

#[tokio::test]
async fn history_lists_previous_lines() {
    let mut sh = al();
    sh.history.push("whoami".into());
    sh.history.push("history".into());
    let (_, out, _) = run(&mut sh, "history").await;
    assert_eq!(out, "    1  whoami\n    2  history\n");
}

#[tokio::test]
async fn ip_addr_shows_private_address_only() {
    let (inst, _) = instance(Image::AmazonLinux2023);
    let mut p = inst.profile();
    p.public_ip = Some(Ipv4Addr::new(198, 18, 0, 7));
    inst.set_profile(p);
    let mut sh = Shell::new(inst, "ec2-user");
    let (st, out, _) = run(&mut sh, "ip addr").await;
    assert_eq!(st, 0);
    assert!(
        out.contains("inet 10.0.1.5/24 metric 512 brd 10.0.1.255 scope global dynamic ens5"),
        "{out}"
    );
    assert!(
        !out.contains("198.18.0.7"),
        "the public address is NAT-ed by the IGW, never on the interface"
    );
    let (_, out, _) = run(&mut sh, "ip route").await;
    assert!(
        out.starts_with("default via 10.0.1.1 dev ens5 proto dhcp src 10.0.1.5 metric 512\n"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn ping_to_filtered_host_reports_full_loss() {
    let mut sh = al();
    let (st, out, _) = run(&mut sh, "ping -c 2 10.0.2.9").await;
    assert_eq!(st, 1);
    assert!(
        out.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn ping_to_reachable_host_prints_replies_and_rtt() {
    let (inst, net) = instance(Image::AmazonLinux2023);
    net.add_pingable(Ipv4Addr::new(10, 0, 1, 6), Duration::from_micros(500));
    let mut sh = Shell::new(inst, "ec2-user");
    let (st, out, _) = run(&mut sh, "ping -c 2 10.0.1.6").await;
    assert_eq!(st, 0);
    assert!(out.starts_with("PING 10.0.1.6 (10.0.1.6) 56(84) bytes of data.\n64 bytes from 10.0.1.6: icmp_seq=1 ttl=127 time=0.500 ms\n"), "{out}");
    assert!(
        out.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{out}"
    );
}

fn http_service(body: &'static str) -> crate::instance::net::FakeService {
    use crate::http1;
    Arc::new(move |stream, peer| {
        let handler: http1::Handler = Arc::new(move |req: &http1::Request| http1::Response {
            version: "HTTP/1.1",
            status: 200,
            reason: "OK".into(),
            headers: vec![("Server".into(), "test".into())],
            body: format!("{} {}", req.method, body).into_bytes(),
        });
        Box::pin(async move {
            let _ = http1::serve_connection(stream, peer.into(), handler).await;
        })
    })
}

#[tokio::test(start_paused = true)]
async fn curl_fetches_over_the_instance_network_and_times_out_when_filtered() {
    let (inst, net) = instance(Image::AmazonLinux2023);
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 80),
        http_service("203.0.113.7"),
    );
    let mut sh = Shell::new(inst, "ec2-user");
    let (st, out, _) = run(&mut sh, "curl -s http://192.0.2.10/").await;
    assert_eq!((st, out.as_str()), (0, "GET 203.0.113.7"));
    let (st, out, _) = run(&mut sh, "curl -sI 192.0.2.10").await;
    assert_eq!(st, 0);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nServer: test\r\n"),
        "{out}"
    );
    let (st, _, err) = run(&mut sh, "curl -m 5 http://10.0.2.9/").await;
    assert_eq!(st, 28);
    assert!(
        err.starts_with("curl: (28) Failed to connect to 10.0.2.9 port 80 after 5000 ms"),
        "{err}"
    );
    net.add_refusing_host(Ipv4Addr::new(10, 0, 1, 7));
    let (st, _, err) = run(&mut sh, "curl http://10.0.1.7:8080/").await;
    assert_eq!(st, 7);
    assert!(err.contains("Couldn't connect to server"), "{err}");
    let (st, _, _) = run(&mut sh, "curl -s -o page.txt 192.0.2.10 && cat page.txt").await;
    assert_eq!(st, 0);
}

#[tokio::test]
async fn curl_reaches_instance_metadata() {
    let mut sh = al();
    let (st, out, _) = run(
        &mut sh,
        "curl -s http://169.254.169.254/latest/meta-data/local-ipv4",
    )
    .await;
    assert_eq!((st, out.as_str()), (0, "10.0.1.5"));
    let (st, out, _) = run(
        &mut sh,
        "TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); curl -s -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/placement/availability-zone",
    )
    .await;
    assert_eq!((st, out.as_str()), (0, "us-east-1a"));
    // `HttpEndpoint` disabled (ModifyInstanceMetadataOptions): nothing answers.
    let mut p = sh.inst.profile();
    p.imds_disabled = true;
    sh.inst.set_profile(p);
    let (st, _, err) = run(
        &mut sh,
        "curl -m 2 http://169.254.169.254/latest/meta-data/local-ipv4",
    )
    .await;
    assert_eq!(st, 28, "{err}");
}

fn dns_responder() -> crate::instance::net::FakeUdp {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{RData, Record, rdata::A};
    Arc::new(|q: &[u8]| {
        let req = Message::from_vec(q).ok()?;
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.message_type = MessageType::Response;
        resp.metadata.recursion_available = true;
        let query = req.queries.first()?.clone();
        if query.name().to_ascii() == "web.example.com." {
            resp.add_answer(Record::from_rdata(
                query.name().clone(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 10))),
            ));
        } else {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        resp.add_query(query);
        resp.to_vec().ok()
    })
}

#[tokio::test(start_paused = true)]
async fn dig_nslookup_host_query_the_vpc_resolver() {
    let (inst, net) = instance(Image::AmazonLinux2023);
    net.add_udp(
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 53),
        dns_responder(),
    );
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 80),
        http_service("ok"),
    );
    let mut sh = Shell::new(inst, "ec2-user");
    let (st, out, _) = run(&mut sh, "dig +short web.example.com").await;
    assert_eq!((st, out.as_str()), (0, "192.0.2.10\n"));
    let (_, out, _) = run(&mut sh, "dig web.example.com").await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("web.example.com.\t\t60\tIN\tA\t192.0.2.10"),
        "{out}"
    );
    assert!(
        out.contains(";; SERVER: 10.0.0.2#53(10.0.0.2) (UDP)"),
        "{out}"
    );
    let (st, out, _) = run(&mut sh, "host web.example.com; host nope.example.com").await;
    assert_eq!(st, 1);
    assert_eq!(
        out,
        "web.example.com has address 192.0.2.10\nHost nope.example.com not found: 3(NXDOMAIN)\n"
    );
    let (st, out, _) = run(&mut sh, "nslookup web.example.com").await;
    assert_eq!(st, 0);
    assert!(
        out.contains("Name:\tweb.example.com\nAddress: 192.0.2.10\n"),
        "{out}"
    );
    let (st, out, _) = run(&mut sh, "curl -s web.example.com").await;
    assert_eq!((st, out.as_str()), (0, "GET ok"));
    let (st, out, _) = run(&mut sh, "dig @10.9.9.9 web.example.com").await;
    assert_eq!(st, 9);
    assert!(out.ends_with(";; no servers could be reached\n\n"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn nc_zv_reports_open_refused_and_filtered_ports() {
    let (inst, net) = instance(Image::Ubuntu2404);
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 9), 22),
        http_service(""),
    );
    net.add_refusing_host(Ipv4Addr::new(10, 0, 1, 8));
    let mut sh = Shell::new(inst, "ubuntu");
    let (st, _, err) = run(&mut sh, "nc -zv 10.0.1.9 22").await;
    assert_eq!(
        (st, err.as_str()),
        (0, "Connection to 10.0.1.9 22 port [tcp/ssh] succeeded!\n")
    );
    let (st, _, err) = run(&mut sh, "nc -zv 10.0.1.8 80").await;
    assert_eq!(
        (st, err.as_str()),
        (
            1,
            "nc: connect to 10.0.1.8 port 80 (tcp) failed: Connection refused\n"
        )
    );
    let (st, _, err) = run(&mut sh, "nc -zv -w 2 10.0.2.8 80").await;
    assert_eq!(
        (st, err.as_str()),
        (
            1,
            "nc: connect to 10.0.2.8 port 80 (tcp) timed out: Operation now in progress\n"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn dnf_install_times_out_without_a_path_to_the_mirror() {
    let mut sh = al();
    let (st, _, err) = run(&mut sh, "dnf install -y httpd").await;
    assert_eq!(st, 1);
    assert!(err.contains("superuser privileges"), "{err}");
    let (st, _, err) = run(&mut sh, "sudo dnf install -y httpd").await;
    assert_eq!(st, 1);
    assert!(
        err.contains("Curl error (28): Timeout was reached"),
        "{err}"
    );
    assert!(
        err.contains("Error: Failed to download metadata for repo 'amazonlinux'"),
        "{err}"
    );
    let (st, _, err) = run(&mut sh, "sudo systemctl start httpd").await;
    assert_eq!(st, 5);
    assert_eq!(
        err,
        "Failed to start httpd.service: Unit httpd.service not found.\n"
    );
}

#[tokio::test(start_paused = true)]
async fn httpd_installed_from_mirror_serves_the_web_root_on_port_80() {
    let (inst, net) = instance(Image::AmazonLinux2023);
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 80),
        http_service("repo"),
    );
    let mut sh = Shell::new(inst.clone(), "ec2-user");
    let (st, out, _) = run(&mut sh, "sudo dnf install -y httpd").await;
    assert_eq!(st, 0, "{out}");
    assert!(out.ends_with("Complete!\n"), "{out}");
    let (st, _, err) = run(&mut sh, "systemctl start httpd").await;
    assert_eq!(st, 1);
    assert!(err.contains("Interactive authentication required"), "{err}");
    let (st, _, _) = run(
        &mut sh,
        "sudo systemctl start httpd && sudo systemctl enable httpd",
    )
    .await;
    assert_eq!(st, 0);
    let (st, out, _) = run(&mut sh, "curl -s -o /dev/null -w '%{http_code}' localhost").await;
    assert_eq!(
        (st, out.as_str()),
        (0, "403"),
        "empty web root shows the welcome page"
    );
    run(
        &mut sh,
        "echo '<h1>Hello from vpclab</h1>' | sudo tee /var/www/html/index.html > /dev/null",
    )
    .await;
    let (st, out, _) = run(&mut sh, "curl -s http://10.0.1.5/").await;
    assert_eq!((st, out.as_str()), (0, "<h1>Hello from vpclab</h1>\n"));
    let (_, out, _) = run(&mut sh, "curl -sI http://10.0.1.5/missing").await;
    assert!(
        out.starts_with("HTTP/1.1 404 Not Found\r\nServer: Apache/2.4.62 (Amazon Linux)\r\n"),
        "{out}"
    );
    let (_, out, _) = run(
        &mut sh,
        "systemctl is-active httpd; sudo ss -tlnp | grep -c httpd",
    )
    .await;
    assert_eq!(out, "active\n1\n");
    assert!(inst.disk().enabled.contains("httpd"));
    let (st, _, _) = run(
        &mut sh,
        "sudo systemctl stop httpd; systemctl is-active httpd",
    )
    .await;
    assert_eq!(st, 3);
}

#[tokio::test(start_paused = true)]
async fn apt_install_nginx_starts_it_on_ubuntu() {
    let (inst, net) = instance(Image::Ubuntu2404);
    net.add_service(
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 80),
        http_service("repo"),
    );
    let mut sh = Shell::new(inst, "ubuntu");
    let (st, _, err) = run(&mut sh, "apt install -y nginx").await;
    assert_eq!(st, 100);
    assert!(err.contains("are you root?"), "{err}");
    let (st, _, _) = run(&mut sh, "sudo apt-get install -y nginx").await;
    assert_eq!(st, 0);
    let (st, out, _) = run(
        &mut sh,
        "curl -s localhost | grep -c '<h1>Welcome to nginx'",
    )
    .await;
    assert_eq!((st, out.as_str()), (0, "1\n"));
    let (st, _, err) = run(&mut sh, "sudo apt install -y nosuchpkg").await;
    assert_eq!(st, 100);
    assert!(
        err.contains("E: Unable to locate package nosuchpkg"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn ssh_from_instance_checks_key_mode_and_reports_timeout() {
    let mut sh = al();
    run(&mut sh, "echo k > key.pem; chmod 644 key.pem").await;
    let (st, _, err) = run(&mut sh, "ssh -i key.pem ec2-user@10.0.2.5").await;
    assert_eq!(st, 255);
    assert!(err.contains("UNPROTECTED PRIVATE KEY FILE"), "{err}");
    assert!(
        err.ends_with("ssh: connect to host 10.0.2.5 port 22: Connection timed out\n"),
        "{err}"
    );
}

#[tokio::test]
async fn wildcard_matching() {
    assert!(glob("*.txt", "a.txt", false));
    assert!(glob("a?c", "abc", false));
    assert!(!glob("*.txt", "a.log", false));
    assert!(glob("*", "", false));
    // `?` is one character, not one byte.
    assert!(glob("caf?.txt", "café.txt", false));
    assert!(glob("*é?", "aébéc", false));
    assert!(!glob("*é?", "aébé", false));
    assert!(!glob("??", "é", false));
}

/// A private instance at 10.0.2.10 serving SSH on the bastion's fake network, and the
/// bastion's shell with the private instance's key in `~/key.pem`.
fn bastion_and_private() -> (Shell, Arc<InstanceState>) {
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
    let public = key.public_key().to_openssh().expect("public");
    let pem = key.to_openssh(LineEnding::LF).expect("pem").to_string();
    let private_ip = Ipv4Addr::new(10, 0, 2, 10);
    let mut pp = InstanceProfile::example(Image::AmazonLinux2023, private_ip);
    pp.authorized_key = Some(format!("{public} private-key"));
    let private = InstanceState::launch(pp.clone(), FakeNet::new(private_ip, 24, &pp.mac));
    let (bastion, net) = instance(Image::AmazonLinux2023);
    let target = private.clone();
    net.add_service(
        SocketAddrV4::new(private_ip, 22),
        Arc::new(move |stream, _| {
            let inst = target.clone();
            Box::pin(async move {
                let _ = crate::instance::serve_ssh(stream, inst).await;
            })
        }),
    );
    {
        let mut disk = bastion.lock_disk();
        disk.fs
            .write(
                "/home/ec2-user/key.pem",
                pem.as_bytes(),
                false,
                Image::AmazonLinux2023.default_cred(),
                0o400,
            )
            .expect("key written");
    }
    (Shell::new(bastion, "ec2-user"), private)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_from_bastion_runs_a_command_on_the_private_instance() {
    let (mut sh, _private) = bastion_and_private();
    let (st, out, err) = run(
        &mut sh,
        "ssh -i key.pem -o StrictHostKeyChecking=no ec2-user@10.0.2.10 'hostname; exit 4'",
    )
    .await;
    assert_eq!(st, 4, "{err}");
    assert_eq!(out, "ip-10-0-2-10.ec2.internal\n");
    assert!(
        err.contains(
            "Warning: Permanently added '10.0.2.10' (ED25519) to the list of known hosts."
        ),
        "{err}"
    );
    // Known now: no question, no warning.
    let (st, out, err) = run(&mut sh, "ssh -i key.pem ec2-user@10.0.2.10 whoami").await;
    assert_eq!((st, out.as_str(), err.as_str()), (0, "ec2-user\n", ""));
    let (st, _, err) = run(&mut sh, "ssh -i key.pem ubuntu@10.0.2.10 whoami").await;
    assert_eq!(st, 255);
    assert_eq!(err, "ubuntu@10.0.2.10: Permission denied (publickey).\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_from_bastion_asks_about_an_unknown_host_key() {
    let (mut sh, _private) = bastion_and_private();
    let mut io = Io::buffered();
    io.stdin = Stdin::Bytes(b"no\n".to_vec());
    let st = sh
        .run_script("ssh -i key.pem ec2-user@10.0.2.10 true", &mut io)
        .await;
    let err = String::from_utf8_lossy(&io.err.take_buf()).to_string();
    assert_eq!(st, 255);
    assert!(
        err.contains("The authenticity of host '10.0.2.10 (10.0.2.10)' can't be established."),
        "{err}"
    );
    assert!(err.ends_with("Host key verification failed.\n"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_ssh_from_bastion_relays_the_terminal() {
    let (mut sh, _private) = bastion_and_private();
    sh.tty = true;
    let mut io = Io::buffered();
    io.stdin = Stdin::Bytes(b"whoami\nexit\n".to_vec());
    let st = sh
        .run_script(
            "ssh -o StrictHostKeyChecking=no -i key.pem ec2-user@10.0.2.10",
            &mut io,
        )
        .await;
    let out = String::from_utf8_lossy(&io.out.take_buf()).to_string();
    let err = String::from_utf8_lossy(&io.err.take_buf()).to_string();
    assert_eq!(st, 0, "{err}");
    assert!(out.contains("[ec2-user@ip-10-0-2-10 ~]$ "), "{out}");
    assert!(out.contains("ec2-user\r\n"), "{out}");
    assert!(err.ends_with("Connection to 10.0.2.10 closed.\n"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_ends_an_endless_ping_with_its_statistics() {
    let (inst, net) = instance(Image::AmazonLinux2023);
    net.add_pingable(Ipv4Addr::new(10, 0, 1, 6), Duration::from_micros(500));
    let mut sh = Shell::new(inst, "ec2-user");
    sh.tty = true;
    let mut io = Io::buffered();
    let term = io.term.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        term.interrupt.notify_one();
    });
    let st = sh.run_script("ping 10.0.1.6", &mut io).await;
    let out = String::from_utf8_lossy(&io.out.take_buf()).to_string();
    assert_eq!(st, 0);
    assert!(out.contains("icmp_seq=3 "), "{out}");
    assert!(
        out.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_from_bastion_copies_files_both_ways() {
    let (mut sh, private) = bastion_and_private();
    let (st, _, err) = run(
        &mut sh,
        "echo 'from the bastion' > note.txt; scp -o StrictHostKeyChecking=no -i key.pem note.txt ec2-user@10.0.2.10:",
    )
    .await;
    assert_eq!(st, 0, "{err}");
    let stored = private
        .disk()
        .fs
        .read("/home/ec2-user/note.txt", crate::instance::vfs::Cred::ROOT)
        .map(<[u8]>::to_vec)
        .expect("copied");
    assert_eq!(stored, b"from the bastion\n");
    let (st, out, err) = run(
        &mut sh,
        "scp -i key.pem ec2-user@10.0.2.10:/etc/hostname private-hostname && cat private-hostname",
    )
    .await;
    assert_eq!(
        (st, out.as_str()),
        (0, "ip-10-0-2-10.ec2.internal\n"),
        "{err}"
    );
    let (st, _, err) = run(
        &mut sh,
        "scp -i key.pem note.txt ec2-user@10.0.2.10:/var/www/html/",
    )
    .await;
    assert_eq!(st, 1);
    assert!(err.contains("scp: dest open"), "{err}");
}

#[tokio::test]
async fn reading_files_leaves_the_disk_unsaved_and_writing_one_marks_it_for_saving() {
    let (inst, _) = instance(Image::AmazonLinux2023);
    let mut sh = Shell::new(inst.clone(), "ec2-user");
    let before = inst.disk_generation();
    run(
        &mut sh,
        "cat /etc/os-release > /dev/null; ls -la ~; wc -l /etc/hostname",
    )
    .await;
    assert_eq!(
        inst.disk_generation(),
        before,
        "commands that only read must not make the runtime save the disk"
    );
    run(&mut sh, "echo hi > ~/note").await;
    let (generation, disk) = inst.disk_snapshot();
    assert!(generation > before, "a write must mark the disk changed");
    assert!(disk.fs.exists("/home/ec2-user/note"));
}

// Issue 10, item 5: a time argument that is NaN, negative or infinite used to reach
// `Duration::from_secs_f64` and panic, which hung the SSH session. Each tool now refuses
// it the way the real one does.

#[tokio::test(start_paused = true)]
async fn issue10_sleep_nan_is_an_error_not_a_panic() {
    let mut sh = al();
    for arg in ["nan", "-1"] {
        let (st, out, err) = run(&mut sh, &format!("sleep {arg}")).await;
        assert_eq!((st, out.as_str()), (1, ""));
        assert_eq!(
            err,
            format!(
                "sleep: invalid time interval '{arg}'\nTry 'sleep --help' for more information.\n"
            )
        );
    }
    // Infinity is a valid interval for GNU sleep; the emulation waits its hour at most.
    let (st, _, err) = run(&mut sh, "sleep inf").await;
    assert_eq!((st, err.as_str()), (0, ""));
    let (st, _, _) = run(&mut sh, "sleep 0.5 1s").await;
    assert_eq!(st, 0);
}

#[tokio::test(start_paused = true)]
async fn issue10_ping_negative_linger_time_is_an_error_not_a_panic() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "ping -c 1 -W -1 10.0.1.9").await;
    assert_eq!(
        (st, out.as_str(), err.as_str()),
        (2, "", "ping: bad linger time: -1\n")
    );
    let (st, _, err) = run(&mut sh, "ping -c 1 -W nan 10.0.1.9").await;
    assert_eq!((st, err.as_str()), (2, "ping: bad linger time: nan\n"));
    let (st, _, err) = run(&mut sh, "ping -c 1 -i inf 10.0.1.9").await;
    assert_eq!((st, err.as_str()), (2, "ping: bad timing interval: inf\n"));
    let (st, _, err) = run(&mut sh, "ping -c 1 -w -1 10.0.1.9").await;
    assert_eq!(st, 2);
    assert!(err.starts_with("ping: invalid argument: '-1'"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn issue10_curl_negative_max_time_is_an_error_not_a_panic() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "curl -s -m -1 http://192.0.2.10/").await;
    assert_eq!((st, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "curl: option -m: expected a positive numerical parameter\ncurl: try 'curl --help' or 'curl --manual' for more information\n"
    );
    let (st, _, err) = run(&mut sh, "curl --connect-timeout nan http://192.0.2.10/").await;
    assert_eq!(st, 2);
    assert!(
        err.starts_with("curl: option --connect-timeout: expected a proper numerical parameter\n"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn issue10_wget_infinite_timeout_is_an_error_not_a_panic() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "wget -T inf http://192.0.2.10/").await;
    assert_eq!(
        (st, out.as_str(), err.as_str()),
        (
            2,
            "",
            "wget: timeout: Invalid time period \u{2018}inf\u{2019}\n"
        )
    );
    let (st, _, err) = run(&mut sh, "wget --timeout=-3 http://192.0.2.10/").await;
    assert_eq!(
        (st, err.as_str()),
        (2, "wget: timeout: Invalid time period \u{2018}-3\u{2019}\n")
    );
}

#[tokio::test(start_paused = true)]
async fn issue10_nc_negative_wait_is_an_error_not_a_panic() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "nc -w -5 10.0.1.9 22").await;
    assert_eq!(
        (st, out.as_str(), err.as_str()),
        (
            2,
            "",
            "Ncat: Invalid -w timeout (must be greater than 0). QUITTING.\n"
        )
    );
    let (inst, _) = instance(Image::Ubuntu2404);
    let mut sh = Shell::new(inst, "ubuntu");
    let (st, _, err) = run(&mut sh, "nc -w -5 10.0.1.9 22").await;
    assert_eq!((st, err.as_str()), (1, "nc: timeout too small: -5\n"));
    let (st, _, err) = run(&mut sh, "nc -w nan 10.0.1.9 22").await;
    assert_eq!((st, err.as_str()), (1, "nc: timeout invalid: nan\n"));
}

/// Issue 10 (resource limits): a variable that doubles each line stops at the limit with
/// bash's kind of error instead of taking the daemon's memory.
#[tokio::test]
async fn issue10_a_doubling_variable_is_refused_past_the_limit() {
    let mut sh = al();
    // 16 bytes doubled 16 times is exactly the limit; once more is past it.
    let mut script = String::from("x=0123456789abcdef\n");
    for _ in 0..16 {
        script.push_str("x=$x$x\n");
    }
    let (st, _, err) = run(&mut sh, &script).await;
    assert_eq!((st, err.as_str()), (0, ""), "up to the limit is fine");
    let (st, _, err) = run(&mut sh, "x=$x$x").await;
    assert_eq!(st, 1);
    assert!(
        err.contains("-bash: x: value of 2097152 bytes") && err.contains("1 MiB"),
        "{err}"
    );
    let (_, out, _) = run(&mut sh, "echo $x | wc -c").await;
    assert_eq!(
        out.trim(),
        (VARIABLE_LIMIT + 1).to_string(),
        "the old value is kept"
    );
    let (st, _, err) = run(&mut sh, "export y=$x$x").await;
    assert_eq!(st, 1);
    assert!(err.contains("-bash: y: value of"), "{err}");
}

/// Issue 10 (resource limits): a pipe holds at most PIPE_BUFFER_LIMIT bytes; the rest is
/// dropped and the shell says so, so `cat` of a file many times over cannot exhaust the
/// daemon's memory.
#[tokio::test]
async fn issue10_a_pipe_is_bounded_and_says_what_it_dropped() {
    let mut sh = al();
    let mut script = String::from("x=0123456789abcdef\n");
    for _ in 0..16 {
        script.push_str("x=$x$x\n");
    }
    script.push_str("echo $x > mib\n");
    let (st, _, err) = run(&mut sh, &script).await;
    assert_eq!((st, err.as_str()), (0, ""));
    let files = vec!["mib"; 20].join(" ");
    let (st, out, err) = run(&mut sh, &format!("cat {files} | wc -c")).await;
    assert_eq!(st, 0);
    assert_eq!(out.trim(), PIPE_BUFFER_LIMIT.to_string());
    assert!(
        err.contains("-bash: pipe: output beyond 16 MiB was dropped"),
        "{err}"
    );
    // Under the limit nothing is said.
    let (_, out, err) = run(&mut sh, "cat mib mib | wc -c").await;
    assert_eq!(
        (out.trim(), err.as_str()),
        ((2 * (VARIABLE_LIMIT + 1)).to_string().as_str(), "")
    );
}

/// Issue 10: nested command substitutions run recursively; past a depth they are refused
/// (as bash refuses runaway recursion) instead of overflowing the stack, which would
/// abort the whole daemon.
#[tokio::test]
async fn issue10_deeply_nested_substitutions_are_refused_not_a_stack_overflow() {
    let mut sh = al();
    let (st, out, _) = run(&mut sh, "echo $(echo $(echo $(echo deep)))").await;
    assert_eq!((st, out.as_str()), (0, "deep\n"));
    let depth = MAX_NESTING - 2;
    let src = format!("echo {}x{}", "$(echo ".repeat(depth), ")".repeat(depth));
    let (st, out, _) = run(&mut sh, &src).await;
    assert_eq!((st, out.as_str()), (0, "x\n"), "{depth} levels are fine");
    // A file that sources itself stops at the limit too.
    let (st, _, err) = run(&mut sh, "echo '. ./loop.sh' > loop.sh; . ./loop.sh").await;
    assert_ne!(st, 0);
    assert!(err.contains("maximum nesting level exceeded"), "{err}");
    let depth = 10_000;
    let src = format!("echo {}x{}", "$(echo ".repeat(depth), ")".repeat(depth));
    // The innermost levels are refused; as in bash, `echo` itself still succeeds, with
    // what the substitutions produced (nothing).
    let (st, out, err) = run(&mut sh, &src).await;
    assert_eq!((st, out.as_str()), (0, "\n"));
    assert!(err.contains("maximum nesting level exceeded"), "{err}");
}

/// What a command substitution writes to stderr reaches the terminal, as in bash.
#[tokio::test]
async fn command_substitution_stderr_reaches_the_terminal() {
    let mut sh = al();
    let (st, out, err) = run(&mut sh, "x=$(cat /nonexistent); echo \"[$x]\"").await;
    assert_eq!((st, out.as_str()), (0, "[]\n"));
    assert_eq!(err, "cat: /nonexistent: No such file or directory\n");
}

/// The EBS routine on a t2 (Xen): the new volume shows in `lsblk` as `xvdf`, has no
/// filesystem (`file -s` says `data`, `mount` refuses it), `mkfs -t xfs` needs root,
/// and a file written under the mount point is on the volume after `umount`: another
/// instance that mounts it reads the file.
#[tokio::test]
async fn an_attached_volume_is_formatted_mounted_and_keeps_its_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let vol = crate::instance::volumes::AttachedVolume {
        volume_id: "vol-0a".into(),
        device: "/dev/sdf".into(),
        size_gib: 10,
        snapshot_id: None,
    };
    let attach = |p: &mut InstanceProfile| {
        p.volumes = vec![vol.clone()];
        p.volume_dir = Some(dir.path().to_path_buf());
    };
    let (a, _) = instance(Image::AmazonLinux2023);
    let mut p = a.profile();
    attach(&mut p);
    a.set_profile(p);
    let mut sh = Shell::new(a.clone(), "ec2-user");
    let (st, out, _) = run(&mut sh, "lsblk").await;
    assert_eq!(st, 0);
    assert!(out.contains("xvda"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("xvdf") && l.contains("10G")),
        "{out}"
    );
    let (_, out, _) = run(&mut sh, "sudo file -s /dev/xvdf").await;
    assert_eq!(out.trim(), "/dev/xvdf: data");
    let (st, _, err) = run(&mut sh, "sudo mkdir /data && sudo mount /dev/xvdf /data").await;
    assert_eq!(st, 32);
    assert!(err.contains("wrong fs type"), "{err}");
    let (st, _, err) = run(&mut sh, "mkfs -t xfs /dev/xvdf").await;
    assert_ne!(st, 0);
    assert!(err.contains("Permission denied"), "{err}");
    let (st, out, _) = run(&mut sh, "sudo mkfs -t xfs /dev/xvdf").await;
    assert_eq!(st, 0);
    assert!(out.contains("meta-data=/dev/xvdf"), "{out}");
    let (st, _, err) = run(
        &mut sh,
        "sudo mount /dev/xvdf /data && sudo chown ec2-user /data && echo kept > /data/notes.txt",
    )
    .await;
    assert_eq!(st, 0, "{err}");
    let (_, out, _) = run(&mut sh, "lsblk; df -h; mount").await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("xvdf") && l.ends_with("/data")),
        "{out}"
    );
    assert!(out.contains("/dev/xvdf on /data type xfs"), "{out}");
    let (st, _, _) = run(&mut sh, "sudo umount /data").await;
    assert_eq!(st, 0);
    let (st, _, _) = run(&mut sh, "cat /data/notes.txt").await;
    assert_ne!(
        st, 0,
        "unmounted: the file is on the volume, not the root disk"
    );

    // Another instance (a t3: NVMe names) attaches the same volume.
    let (b, _) = instance(Image::AmazonLinux2023);
    let mut p = b.profile();
    p.instance_type = "t3.micro".into();
    attach(&mut p);
    b.set_profile(p);
    let mut sh = Shell::new(b, "ec2-user");
    let (_, out, _) = run(&mut sh, "lsblk").await;
    assert!(out.lines().any(|l| l.starts_with("nvme1n1")), "{out}");
    let (st, out, err) = run(
        &mut sh,
        "sudo mkdir /mnt/vol && sudo mount /dev/nvme1n1 /mnt/vol && cat /mnt/vol/notes.txt",
    )
    .await;
    assert_eq!((st, out.as_str()), (0, "kept\n"), "{err}");
}

/// `/etc/fstab` (EC2 User Guide, "Automatically mount an attached volume after reboot"):
/// an entry by `UUID=` (the UUID `blkid` prints) is mounted by `mount -a` and at boot; a
/// missing device fails `mount -a` unless the entry has `nofail`.
#[tokio::test]
async fn fstab_entries_are_mounted_by_mount_a_and_at_boot() {
    let dir = tempfile::tempdir().expect("tmp");
    let vol = crate::instance::volumes::AttachedVolume {
        volume_id: "vol-0f".into(),
        device: "/dev/sdf".into(),
        size_gib: 8,
        snapshot_id: None,
    };
    let (a, _) = instance(Image::AmazonLinux2023);
    let mut p = a.profile();
    p.volumes = vec![vol.clone()];
    p.volume_dir = Some(dir.path().to_path_buf());
    a.set_profile(p);
    let mut sh = Shell::new(a.clone(), "ec2-user");
    let (st, _, err) = run(
        &mut sh,
        "sudo mkfs -t xfs /dev/xvdf && sudo mkdir /data && sudo mount /dev/xvdf /data && sudo touch /data/kept && sudo umount /data",
    )
    .await;
    assert_eq!(st, 0, "{err}");
    let (_, out, _) = run(&mut sh, "sudo blkid /dev/xvdf").await;
    let uuid = crate::instance::volumes::fake_uuid("vol-0f");
    assert!(out.contains(&uuid), "{out}");
    let line = format!("UUID={uuid}  /data  xfs  defaults,nofail  0  2");
    let (st, _, err) = run(
        &mut sh,
        &format!("echo '{line}' | sudo tee -a /etc/fstab >/dev/null && sudo mount -a && ls /data"),
    )
    .await;
    assert_eq!(st, 0, "{err}");
    let (_, out, _) = run(&mut sh, "mount").await;
    assert!(out.contains("/dev/xvdf on /data type xfs"), "{out}");
    // A device that is not attached: an error, unless the entry says nofail.
    let (st, _, err) = run(
        &mut sh,
        "sudo mkdir /logs && echo '/dev/sdg /logs xfs defaults 0 2' | sudo tee -a /etc/fstab >/dev/null && sudo mount -a",
    )
    .await;
    assert_eq!(st, 32);
    assert!(err.contains("/dev/sdg does not exist"), "{err}");
    let (st, _, err) = run(
        &mut sh,
        &format!("printf '%s\\n' '{line}' '/dev/sdg /logs xfs defaults,nofail 0 2' | sudo tee /etc/fstab >/dev/null && sudo mount -a"),
    )
    .await;
    assert_eq!(st, 0, "{err}");

    // After a stop (everything unmounted) the boot mounts the volume again.
    a.unmount_detached(true);
    let (st, _, _) = run(&mut sh, "ls /data/kept").await;
    assert_ne!(st, 0);
    a.boot().await;
    let (st, _, err) = run(&mut sh, "ls /data/kept").await;
    assert_eq!(st, 0, "{err}");
}

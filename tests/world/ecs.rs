//! ECS on Fargate, end to end with the real aws CLI: a task is a host on the fabric with
//! its own interface, so the learner reaches an nginx task's public IP only when the
//! task's security group allows port 80; an instance in the same VPC reaches a task in a
//! private subnet by its private address; what the containers print (and nginx's access
//! log) lands in CloudWatch Logs under the awslogs stream names.

use std::time::{Duration, Instant};

use crate::support::{Lab, Network, TestDaemon, stderr, stdout};

/// An HTTP GET from the learner's computer through `vpclab connect`.
fn learner_get(d: &dyn Lab, host: &str, port: u16) -> std::process::Output {
    d.vpclab(
        &["connect", "--timeout", "2", host, &port.to_string()],
        format!("GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: learner-test\r\n\r\n").as_bytes(),
    )
}

/// The seed's `webserver` task definition, with container cpu and memory as numbers
/// (the CLI refuses the seed's strings before any request is sent: docs/compute.md),
/// plus a port mapping and the awslogs driver.
const WEBSERVER: &str = r#"{
  "family": "webserver",
  "executionRoleArn": "ecsTaskExecutionRole",
  "requiresCompatibilities": ["FARGATE"],
  "containerDefinitions": [
    {
      "name": "web",
      "image": "nginx",
      "memory": 100,
      "cpu": 99,
      "portMappings": [{ "containerPort": 80 }],
      "healthCheck": {
        "command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
        "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 10
      },
      "logConfiguration": {
        "logDriver": "awslogs",
        "options": {
          "awslogs-group": "/ecs/webserver",
          "awslogs-region": "us-east-1",
          "awslogs-stream-prefix": "ecs",
          "awslogs-create-group": "true"
        }
      }
    }
  ],
  "networkMode": "awsvpc",
  "memory": "1024",
  "cpu": "256"
}"#;

fn register(d: &dyn Lab, json: &str) -> serde_json::Value {
    let file = d.path("taskdef.json");
    std::fs::write(&file, json).expect("write task definition");
    d.aws_cli_json(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ])
}

/// Polls DescribeTasks until the task's lastStatus is `status`.
fn wait_task(d: &dyn Lab, cluster: &str, task: &str, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = d.aws_cli_json(&[
            "ecs",
            "describe-tasks",
            "--cluster",
            cluster,
            "--tasks",
            task,
        ]);
        let t = v["tasks"][0].clone();
        if t["lastStatus"] == status {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task never reached {status}: {t}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn detail(task: &serde_json::Value, name: &str) -> String {
    task["attachments"][0]["details"]
        .as_array()
        .expect("details")
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn fargate_nginx_task_serves_the_learner_only_when_its_security_group_allows_80() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    // The seed's command, verbatim.
    let c = d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    assert_eq!(c["cluster"]["status"], "ACTIVE");
    assert_eq!(c["cluster"]["clusterName"], "myapp");
    let td = register(&d, WEBSERVER);
    assert_eq!(td["taskDefinition"]["revision"], 1);
    assert_eq!(td["taskDefinition"]["cpu"], "256");
    let sg = net.security_group(&d, "task", &[]);
    let run = d.aws_cli_json(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "webserver",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &format!(
            "awsvpcConfiguration={{subnets=[{}],securityGroups=[{sg}],assignPublicIp=ENABLED}}",
            net.public_subnet
        ),
    ]);
    let task_arn = run["tasks"][0]["taskArn"]
        .as_str()
        .expect("arn")
        .to_string();
    assert_eq!(run["tasks"][0]["lastStatus"], "PROVISIONING");
    assert_eq!(run["tasks"][0]["desiredStatus"], "RUNNING");
    // The waiter learners use.
    let out = d.aws_cli(&[
        "ecs",
        "wait",
        "tasks-running",
        "--cluster",
        "myapp",
        "--tasks",
        &task_arn,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let task = wait_task(&d, "myapp", &task_arn, "RUNNING");
    assert_eq!(task["healthStatus"], "HEALTHY", "{task}");
    let eni = detail(&task, "networkInterfaceId");
    let private_ip = detail(&task, "privateIPv4Address");
    assert!(private_ip.starts_with("10.0.1."), "{private_ip}");

    // The task's interface, as EC2 shows it: requester-managed, described as an ECS
    // attachment, with the public IP the task asked for.
    let e = d.aws(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    let e = &e["NetworkInterfaces"][0];
    assert_eq!(e["RequesterManaged"], true);
    assert!(
        e["Description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("arn:aws:ecs:us-east-1:"),
        "{e}"
    );
    assert_eq!(e["Groups"][0]["GroupId"], sg.as_str());
    let public_ip = e["Association"]["PublicIp"]
        .as_str()
        .expect("public ip")
        .to_string();

    let out = learner_get(&d, &public_ip, 80);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));

    crate::support::allow_tcp(&d, &sg, 80, "0.0.0.0/0");
    let out = learner_get(&d, &public_ip, 80);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
    assert!(page.contains("Server: nginx/"), "{page}");

    // The container's output and nginx's access line, in the awslogs stream.
    let task_id = task_arn.rsplit('/').next().expect("id");
    let stream = format!("ecs/web/{task_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let messages = loop {
        let v = d.aws_cli_json(&[
            "logs",
            "get-log-events",
            "--log-group-name",
            "/ecs/webserver",
            "--log-stream-name",
            &stream,
        ]);
        let messages: Vec<String> = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect();
        if messages
            .iter()
            .any(|m| m.contains("\"GET / HTTP/1.0\" 200"))
        {
            break messages;
        }
        assert!(
            Instant::now() < deadline,
            "no access log line: {messages:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Configuration complete; ready for start up")),
        "{messages:?}"
    );
    // The learner's computer, as the task sees it.
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("203.0.113.10 - - [") && m.contains("learner-test")),
        "{messages:?}"
    );

    // StopTask: the task stops as a user stop, and its interface is deleted.
    let out = d.aws_cli_json(&[
        "ecs",
        "stop-task",
        "--cluster",
        "myapp",
        "--task",
        &task_arn,
        "--reason",
        "lesson over",
    ]);
    assert_eq!(out["task"]["desiredStatus"], "STOPPED");
    let stopped = wait_task(&d, "myapp", &task_arn, "STOPPED");
    assert_eq!(stopped["stopCode"], "UserInitiated");
    assert_eq!(stopped["stoppedReason"], "lesson over");
    let out = d.aws_raw(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("InvalidNetworkInterfaceID.NotFound"),
        "{}",
        stderr(&out)
    );
    let out = learner_get(&d, &public_ip, 80);
    assert!(!out.status.success());
}

#[test]
fn a_task_in_a_private_subnet_answers_an_instance_of_its_vpc() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    register(&d, WEBSERVER);
    let sg = net.security_group(&d, "task", &[(80, "10.0.0.0/16")]);
    let run = d.aws_cli_json(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "webserver:1",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &format!(
            "awsvpcConfiguration={{subnets=[{}],securityGroups=[{sg}]}}",
            net.private_subnet
        ),
    ]);
    let task_arn = run["tasks"][0]["taskArn"]
        .as_str()
        .expect("arn")
        .to_string();
    let task = wait_task(&d, "myapp", &task_arn, "RUNNING");
    let ip = detail(&task, "privateIPv4Address");
    assert!(ip.starts_with("10.0.2."), "{ip}");
    let eni = detail(&task, "networkInterfaceId");
    let e = d.aws(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    assert!(
        e["NetworkInterfaces"][0].get("Association").is_none(),
        "{e}"
    );

    let bastion_sg = net.security_group(&d, "bastion", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "rsa");
    let (_, bastion, _) = net.launch(&d, &net.public_subnet, "lab", &bastion_sg, &[]);
    let out = d.ssh(
        &key,
        "ec2-user",
        &bastion,
        &format!("curl -s -m 3 http://{ip}/ | grep '<h1>'"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "<h1>Welcome to nginx!</h1>\n");
}

//! Amazon ECS with the real aws CLI: task definitions checked against the Fargate
//! CPU/memory table, AWS's errors for the mistakes a course meets, services that keep
//! their desired count, and tasks of images vpclab cannot run stopping the way a task
//! whose essential container exits does.

use std::time::{Duration, Instant};

use crate::support::{Lab, Network, TestDaemon};

fn register(d: &dyn Lab, name: &str, json: &str) -> std::process::Output {
    let file = d.path(name);
    std::fs::write(&file, json).expect("write task definition");
    d.aws_cli(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ])
}

fn err(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Polls until `check` accepts the output of `args`.
fn until(
    d: &dyn Lab,
    args: &[&str],
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = d.aws_cli_json(args);
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}: {v}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn fargate(cpu: &str, memory: &str) -> String {
    format!(
        r#"{{"family": "sized", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "{cpu}", "memory": "{memory}",
            "containerDefinitions": [{{"name": "web", "image": "nginx"}}]}}"#
    )
}

#[test]
fn task_definitions_follow_the_fargate_cpu_memory_table() {
    let d = TestDaemon::start();
    // The Developer Guide's table: 256 CPU units take 512 MiB, 1 GB or 2 GB.
    let out = register(&d, "bad.json", &fargate("256", "4096"));
    let e = err(&out);
    assert!(
        e.contains("(ClientException)") && e.contains("Invalid 'cpu' setting for task."),
        "{e}"
    );
    // 2048 units: 4–16 GB in 1 GB steps.
    let e = err(&register(&d, "bad2.json", &fargate("2048", "5000")));
    assert!(e.contains("ClientException"), "{e}");
    // The seed's units: "1 vCpu" and "2 gb" register as 1024 and 2048.
    let v = ok(&register(&d, "good.json", &fargate("1 vCpu", "2 gb")));
    assert_eq!(v["taskDefinition"]["cpu"], "1024");
    assert_eq!(v["taskDefinition"]["memory"], "2048");
    assert_eq!(v["taskDefinition"]["revision"], 1);
    let v = ok(&register(&d, "good2.json", &fargate("512", "3072")));
    assert_eq!(v["taskDefinition"]["revision"], 2);
    // Fargate needs awsvpc and task-level sizes.
    let e = err(&register(
        &d,
        "bridge.json",
        r#"{"family": "b", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "web", "image": "nginx"}]}"#,
    ));
    assert!(e.contains("Fargate only supports network mode"), "{e}");
    // A container may not ask for more memory than its task has.
    let e = err(&register(
        &d,
        "big.json",
        r#"{"family": "c", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 1024}]}"#,
    ));
    assert!(e.contains("ClientException"), "{e}");
    // awslogs on Fargate needs an execution role.
    let e = err(&register(
        &d,
        "logs.json",
        r#"{"family": "l", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "web", "image": "nginx",
              "logConfiguration": {"logDriver": "awslogs",
                "options": {"awslogs-group": "g", "awslogs-stream-prefix": "p"}}}]}"#,
    ));
    assert!(e.contains("execution role ARN"), "{e}");

    let v = d.aws_cli_json(&["ecs", "list-task-definitions", "--family-prefix", "sized"]);
    assert_eq!(
        v["taskDefinitionArns"],
        serde_json::json!([
            "arn:aws:ecs:us-east-1:000000000000:task-definition/sized:1",
            "arn:aws:ecs:us-east-1:000000000000:task-definition/sized:2"
        ])
    );
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        "sized",
    ]);
    assert_eq!(v["taskDefinition"]["revision"], 2);
    let v = d.aws_cli_json(&[
        "ecs",
        "deregister-task-definition",
        "--task-definition",
        "sized:2",
    ]);
    assert_eq!(v["taskDefinition"]["status"], "INACTIVE");
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        "sized",
    ]);
    assert_eq!(v["taskDefinition"]["revision"], 1);
}

#[test]
fn run_task_and_clusters_answer_with_aws_errors() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    let e = d.aws_cli_err(&[
        "ecs",
        "describe-services",
        "--cluster",
        "nope",
        "--services",
        "x",
    ]);
    assert!(e.contains("(ClusterNotFoundException)"), "{e}");
    let v = d.aws_cli_json(&["ecs", "describe-clusters", "--clusters", "nope"]);
    assert_eq!(v["failures"][0]["reason"], "MISSING");
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    ok(&register(&d, "td.json", &fargate("256", "512")));
    let vpc = format!("awsvpcConfiguration={{subnets=[{}]}}", net.private_subnet);
    // No launch type: ECS looks for EC2 container instances, and there are none.
    let e = d.aws_cli_err(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "sized",
        "--network-configuration",
        &vpc,
    ]);
    assert!(
        e.contains("(InvalidParameterException)")
            && e.contains("No Container Instances were found in your cluster."),
        "{e}"
    );
    let e = d.aws_cli_err(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "sized",
        "--launch-type",
        "FARGATE",
    ]);
    assert!(
        e.contains(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified."
        ),
        "{e}"
    );
    let e = d.aws_cli_err(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "missing",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &vpc,
    ]);
    assert!(
        e.contains("(ClientException)") && e.contains("Unable to describe task definition."),
        "{e}"
    );

    // A running task keeps the cluster from being deleted.
    let run = d.aws_cli_json(&[
        "ecs",
        "run-task",
        "--cluster",
        "myapp",
        "--task-definition",
        "sized",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &vpc,
    ]);
    let arn = run["tasks"][0]["taskArn"]
        .as_str()
        .expect("arn")
        .to_string();
    let e = d.aws_cli_err(&["ecs", "delete-cluster", "--cluster", "myapp"]);
    assert!(e.contains("(ClusterContainsTasksException)"), "{e}");
    d.aws_cli_json(&["ecs", "stop-task", "--cluster", "myapp", "--task", &arn]);
    until(
        &d,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "myapp",
            "--tasks",
            &arn,
        ],
        "stopped",
        |v| v["tasks"][0]["lastStatus"] == "STOPPED",
    );
    let v = d.aws_cli_json(&["ecs", "delete-cluster", "--cluster", "myapp"]);
    assert_eq!(v["cluster"]["status"], "INACTIVE");
}

#[test]
fn tasks_of_images_vpclab_cannot_run_stop_like_an_exited_essential_container() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    // The seed's chat container (an ECR image vpclab has no copy of), on Fargate.
    ok(&register(
        &d,
        "chat.json",
        r#"{"family": "chat", "cpu": "1 vCpu", "memory": "2 gb", "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"], "executionRoleArn": "ecsTaskExecutionRole",
            "containerDefinitions": [{"name": "chat",
              "image": "xxx.dkr.ecr.us-east-1.amazonaws.com/chat-app",
              "cpu": 256, "memoryReservation": 512, "portMappings": [{"containerPort": 8080}],
              "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "chat-app", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "chat-app"}}}]}"#,
    ));
    let vpc = format!("awsvpcConfiguration={{subnets=[{}]}}", net.private_subnet);
    let run = |d: &TestDaemon| {
        let v = d.aws_cli_json(&[
            "ecs",
            "run-task",
            "--cluster",
            "myapp",
            "--task-definition",
            "chat",
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &vpc,
        ]);
        v["tasks"][0]["taskArn"].as_str().expect("arn").to_string()
    };
    // The seed creates the log group first; without it the task cannot start.
    let arn = run(&d);
    let v = until(
        &d,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "myapp",
            "--tasks",
            &arn,
        ],
        "stopped",
        |v| v["tasks"][0]["lastStatus"] == "STOPPED",
    );
    assert_eq!(v["tasks"][0]["stopCode"], "TaskFailedToStart");
    assert!(
        v["tasks"][0]["stoppedReason"]
            .as_str()
            .unwrap_or_default()
            .contains("The specified log group does not exist."),
        "{v}"
    );
    d.aws_cli_json(&["logs", "create-log-group", "--log-group-name", "chat-app"]);
    let arn = run(&d);
    let v = until(
        &d,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "myapp",
            "--tasks",
            &arn,
        ],
        "stopped",
        |v| v["tasks"][0]["lastStatus"] == "STOPPED",
    );
    let t = &v["tasks"][0];
    assert_eq!(t["stopCode"], "EssentialContainerExited");
    assert_eq!(t["stoppedReason"], "Essential container in task exited");
    assert_eq!(t["containers"][0]["exitCode"], 1);
    let id = arn.rsplit('/').next().expect("id");
    let v = d.aws_cli_json(&[
        "logs",
        "get-log-events",
        "--log-group-name",
        "chat-app",
        "--log-stream-name",
        &format!("chat-app/chat/{id}"),
    ]);
    let line = v["events"][0]["message"].as_str().unwrap_or_default();
    assert!(
        line.contains("cannot run the image xxx.dkr.ecr.us-east-1.amazonaws.com/chat-app"),
        "{v}"
    );
}

#[test]
fn a_service_keeps_its_desired_count_and_replaces_stopped_tasks() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    ok(&register(
        &d,
        "chat.json",
        r#"{"family": "chat", "cpu": "1 vCpu", "memory": "2 gb", "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [{"name": "chat", "image": "public.ecr.aws/nginx/nginx:latest",
              "cpu": 256, "memoryReservation": 512, "portMappings": [{"containerPort": 80}]}]}"#,
    ));
    let vpc = format!(
        "awsvpcConfiguration={{subnets=[{},{}]}}",
        net.private_subnet, net.public_subnet
    );
    // ECS wants an `ip` target group (awsvpc tasks) that a load balancer uses.
    let tg = d.aws_cli_json(&[
        "elbv2",
        "create-target-group",
        "--name",
        "chat",
        "--protocol",
        "TCP",
        "--port",
        "80",
        "--target-type",
        "ip",
        "--vpc-id",
        &net.vpc,
    ])["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .expect("TargetGroupArn")
        .to_string();
    let nlb = d.aws_cli_json(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "chat",
        "--type",
        "network",
        "--subnets",
        &net.public_subnet,
    ])["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .expect("LoadBalancerArn")
        .to_string();
    d.aws_cli_json(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &nlb,
        "--protocol",
        "TCP",
        "--port",
        "80",
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg}"),
    ]);
    let lbs =
        format!(r#"[{{"targetGroupArn": "{tg}", "containerName": "chat", "containerPort": 80}}]"#);
    let lbs = lbs.as_str();
    // A load balancer entry must name a port of the container.
    let e = d.aws_cli_err(&[
        "ecs",
        "create-service",
        "--cluster",
        "myapp",
        "--service-name",
        "chat",
        "--task-definition",
        "chat:1",
        "--desired-count",
        "2",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &vpc,
        "--load-balancers",
        &lbs.replace("\"containerPort\": 80", "\"containerPort\": 8080"),
    ]);
    assert!(e.contains("InvalidParameterException"), "{e}");
    let v = d.aws_cli_json(&[
        "ecs",
        "create-service",
        "--cluster",
        "myapp",
        "--service-name",
        "chat",
        "--task-definition",
        "chat:1",
        "--desired-count",
        "2",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &vpc,
        "--load-balancers",
        lbs,
    ]);
    assert_eq!(v["service"]["status"], "ACTIVE");
    assert_eq!(v["service"]["loadBalancers"][0]["containerPort"], 80);
    let describe = [
        "ecs",
        "describe-services",
        "--cluster",
        "myapp",
        "--services",
        "chat",
    ];
    let v = until(&d, &describe, "steady", |v| {
        v["services"][0]["runningCount"] == 2
            && v["services"][0]["events"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("has reached a steady state"))
    });
    assert_eq!(
        v["services"][0]["deployments"][0]["rolloutState"],
        "COMPLETED"
    );
    let tasks = d.aws_cli_json(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "myapp",
        "--service-name",
        "chat",
    ]);
    let arns: Vec<String> = tasks["taskArns"]
        .as_array()
        .expect("arns")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(arns.len(), 2);
    // One task in each subnet.
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-tasks",
        "--cluster",
        "myapp",
        "--tasks",
        &arns[0],
        &arns[1],
    ]);
    let mut subnets: Vec<String> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            t["attachments"][0]["details"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    subnets.sort();
    let mut want = vec![net.private_subnet.clone(), net.public_subnet.clone()];
    want.sort();
    assert_eq!(subnets, want);

    // A stopped task is replaced.
    d.aws_cli_json(&["ecs", "stop-task", "--cluster", "myapp", "--task", &arns[0]]);
    let v = until(
        &d,
        &[
            "ecs",
            "list-tasks",
            "--cluster",
            "myapp",
            "--service-name",
            "chat",
        ],
        "replaced",
        |v| {
            let a = v["taskArns"].as_array().cloned().unwrap_or_default();
            a.len() == 2 && !a.iter().any(|x| x == arns[0].as_str())
        },
    );
    assert!(
        v["taskArns"]
            .as_array()
            .expect("arns")
            .iter()
            .any(|x| x == arns[1].as_str())
    );
    until(&d, &describe, "running again", |v| {
        v["services"][0]["runningCount"] == 2
    });

    // Scaling in stops one, as a scheduler stop.
    let e = d.aws_cli_err(&[
        "ecs",
        "delete-service",
        "--cluster",
        "myapp",
        "--service",
        "chat",
    ]);
    assert!(
        e.contains("The service cannot be stopped while it is scaled above 0."),
        "{e}"
    );
    d.aws_cli_json(&[
        "ecs",
        "update-service",
        "--cluster",
        "myapp",
        "--service",
        "chat",
        "--desired-count",
        "1",
    ]);
    until(&d, &describe, "scaled in", |v| {
        v["services"][0]["runningCount"] == 1
    });
    let v = d.aws_cli_json(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "myapp",
        "--service-name",
        "chat",
        "--desired-status",
        "STOPPED",
    ]);
    let stopped: Vec<String> = v["taskArns"]
        .as_array()
        .expect("arns")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-tasks",
        "--cluster",
        "myapp",
        "--tasks",
        &stopped[0],
        &stopped[1],
    ]);
    let codes: Vec<&str> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["stopCode"].as_str())
        .collect();
    assert!(
        codes.contains(&"UserInitiated") && codes.contains(&"ServiceSchedulerInitiated"),
        "{codes:?}"
    );
    let e = d.aws_cli_err(&["ecs", "delete-cluster", "--cluster", "myapp"]);
    assert!(e.contains("(ClusterContainsServicesException)"), "{e}");
    let v = d.aws_cli_json(&[
        "ecs",
        "delete-service",
        "--cluster",
        "myapp",
        "--service",
        "chat",
        "--force",
    ]);
    assert_eq!(v["service"]["status"], "DRAINING");
    until(&d, &describe, "inactive", |v| {
        v["services"][0]["status"] == "INACTIVE"
    });
}

#[test]
fn a_failing_container_health_check_waits_out_its_start_period_and_retries() {
    let d = TestDaemon::start();
    let net = Network::build(&d);
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "hc"]);
    // Out-of-range settings are refused with the field named.
    let e = err(&register(
        &d,
        "bad.json",
        r#"{"family": "bad", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "web",
              "image": "nginx", "healthCheck": {"command": ["CMD-SHELL", "true"],
              "startPeriod": 301}}]}"#,
    ));
    assert!(
        e.contains("ClientException") && e.contains("startPeriod"),
        "{e}"
    );
    // nginx has curl, but nothing answers on port 8080: the check always fails. With
    // checks every 5 s, a 12 s start period and 2 retries, the failures at 5 and 10 s
    // do not count; those at 15 and 20 s do: UNHEALTHY about 20 s after the start.
    ok(&register(
        &d,
        "hc.json",
        r#"{"family": "hc", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "web",
              "image": "nginx", "portMappings": [{"containerPort": 80}],
              "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"],
                "interval": 5, "timeout": 2, "retries": 2, "startPeriod": 12}}]}"#,
    ));
    let vpc = format!("awsvpcConfiguration={{subnets=[{}]}}", net.private_subnet);
    let arn = d.aws_cli_json(&[
        "ecs",
        "run-task",
        "--cluster",
        "hc",
        "--task-definition",
        "hc",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &vpc,
    ])["tasks"][0]["taskArn"]
        .as_str()
        .expect("arn")
        .to_string();
    let describe = ["ecs", "describe-tasks", "--cluster", "hc", "--tasks", &arn];
    let running = until(&d, &describe, "running", |v| {
        v["tasks"][0]["lastStatus"] == "RUNNING"
    });
    let started = Instant::now();
    assert_eq!(
        running["tasks"][0]["containers"][0]["healthStatus"], "UNKNOWN",
        "{running}"
    );
    assert_eq!(running["tasks"][0]["healthStatus"], "UNKNOWN", "{running}");
    // Still UNKNOWN well into the start period and the first counted check.
    std::thread::sleep(Duration::from_secs(12));
    let v = d.aws_cli_json(&describe);
    if started.elapsed() < Duration::from_secs(16) {
        assert_eq!(
            v["tasks"][0]["containers"][0]["healthStatus"], "UNKNOWN",
            "{v}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = d.aws_cli_json(&describe);
        if v["tasks"][0]["healthStatus"] == "UNHEALTHY" {
            break v;
        }
        assert!(Instant::now() < deadline, "never UNHEALTHY: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        v["tasks"][0]["containers"][0]["healthStatus"], "UNHEALTHY",
        "{v}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(14) && took < Duration::from_secs(30),
        "unhealthy after {took:?}"
    );
}

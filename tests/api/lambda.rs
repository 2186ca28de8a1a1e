//! Lambda through the real `aws lambda` CLI: Python and Node functions run as local
//! processes on the Runtime API, return their payloads, log to CloudWatch Logs, time out
//! and fail as AWS reports it; versions, aliases, permissions; AWS's errors; functions
//! survive a daemon restart; function code has no network.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::support::{Lab, Network, TestDaemon, have};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-basic";

/// A zip of `files` (name, text) written with Python's zipfile, as a learner's `zip` would.
fn zip(d: &dyn Lab, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let path = d.path(name);
    let mut script = String::from(
        "import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)\n",
    );
    for (i, (file, _)) in files.iter().enumerate() {
        script.push_str(&format!(
            "z.writestr({file:?}, open(sys.argv[{}]).read())\n",
            i + 2
        ));
    }
    script.push_str("z.close()\n");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script).arg(&path);
    for (i, (_, text)) in files.iter().enumerate() {
        let src = d.path(&format!("{name}.src{i}"));
        std::fs::write(&src, text).expect("write source");
        cmd.arg(src);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// A daemon whose account has the `lambda-basic` role, when `tools` are installed.
fn lab(tools: &[&str]) -> Option<TestDaemon> {
    if !tools.iter().all(|t| have(t)) {
        return None;
    }
    let d = TestDaemon::start();
    role(&d);
    Some(d)
}

/// A Python 3.12 function `name` whose `app.py` is `code` (handler `app.handler`).
fn python_app(d: &TestDaemon, name: &str, code: &str, extra: &[&str]) -> serde_json::Value {
    let z = zip(d, &format!("{name}.zip"), &[("app.py", code)]);
    create(d, name, "python3.12", "app.handler", &z, extra)
}

/// How many zips the code store holds.
fn stored_zips(d: &TestDaemon) -> usize {
    std::fs::read_dir(d.state_dir().join("lambda/zips"))
        .expect("zips")
        .count()
}

fn role(d: &TestDaemon) {
    d.aws_cli_json(&[
        "iam",
        "create-role",
        "--role-name",
        "lambda-basic",
        "--assume-role-policy-document",
        TRUST,
    ]);
}

fn create(
    d: &TestDaemon,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let file = format!("fileb://{}", zip.display());
    let mut args = vec![
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        runtime,
        "--handler",
        handler,
        "--role",
        ROLE,
        "--zip-file",
        &file,
    ];
    args.extend_from_slice(extra);
    d.aws_cli_json(&args)
}

/// `aws lambda invoke`: (the CLI's JSON answer, the payload written to the out file).
fn invoke(
    d: &TestDaemon,
    name: &str,
    payload: &str,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let out = d.path(&format!("{name}-out.json"));
    let outs = out.display().to_string();
    let mut args = vec![
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        payload,
    ];
    args.extend_from_slice(extra);
    args.push(&outs);
    let meta = d.aws_cli_json(&args);
    let body = std::fs::read_to_string(&out).unwrap_or_default();
    (meta, body)
}

fn tail(meta: &serde_json::Value) -> String {
    let b64 = meta["LogResult"].as_str().unwrap_or("");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 log"),
    )
    .expect("utf-8 log")
}

fn lambda_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let mut all = vec!["lambda"];
    all.extend_from_slice(args);
    let err = d.aws_cli_err(&all);
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

const PY: &str = r#"import os

def handler(event, context):
    print("hello from python", event.get("name"))
    return {
        "greeting": "hi " + event["name"],
        "stage": os.environ.get("STAGE"),
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000,
        "request_id": context.aws_request_id,
    }
"#;

const NODE: &str = r#"exports.handler = async (event, context) => {
  console.log('hello from node', event.name);
  return { greeting: 'hi ' + event.name, function: context.functionName, version: process.env.AWS_LAMBDA_FUNCTION_VERSION };
};
"#;

#[test]
fn python_and_node_functions_return_their_payloads_and_log_to_cloudwatch() {
    let Some(d) = lab(&["aws", "node"]) else {
        return;
    };
    let py = zip(&d, "py.zip", &[("lambda_function.py", PY)]);
    let created = create(
        &d,
        "hello-py",
        "python3.12",
        "lambda_function.handler",
        &py,
        &[
            "--environment",
            "Variables={STAGE=test}",
            "--memory-size",
            "256",
        ],
    );
    assert_eq!(
        created["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:hello-py"
    );
    assert_eq!(created["State"], "Active");
    assert_eq!(created["Environment"]["Variables"]["STAGE"], "test");

    let (meta, body) = invoke(&d, "hello-py", r#"{"name":"ada"}"#, &["--log-type", "Tail"]);
    assert_eq!(meta["StatusCode"], 200);
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json payload");
    assert_eq!(v["greeting"], "hi ada");
    assert_eq!(v["stage"], "test");
    assert_eq!(v["function"], "hello-py");
    assert_eq!(v["memory"], "256");
    assert_eq!(v["remaining_ok"], true);
    let log = tail(&meta);
    let rid = v["request_id"].as_str().expect("request id");
    assert!(
        log.contains(&format!("START RequestId: {rid} Version: $LATEST")),
        "{log}"
    );
    assert!(log.contains("hello from python ada"), "{log}");
    assert!(log.contains(&format!("END RequestId: {rid}")), "{log}");
    assert!(log.contains("Memory Size: 256 MB"), "{log}");
    assert!(
        log.contains("Init Duration:"),
        "a cold start reports its init: {log}"
    );
    // The second invoke reuses the warm process: no Init Duration.
    let (meta2, body2) = invoke(&d, "hello-py", r#"{"name":"bob"}"#, &["--log-type", "Tail"]);
    assert!(body2.contains("hi bob"), "{body2}");
    assert!(!tail(&meta2).contains("Init Duration"), "{}", tail(&meta2));

    let js = zip(&d, "node.zip", &[("index.js", NODE)]);
    create(&d, "hello-node", "nodejs20.x", "index.handler", &js, &[]);
    let (meta, body) = invoke(&d, "hello-node", r#"{"name":"grace"}"#, &[]);
    assert_eq!(meta["StatusCode"], 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json payload");
    assert_eq!(v["greeting"], "hi grace");
    assert_eq!(v["function"], "hello-node");
    assert_eq!(v["version"], "$LATEST");

    // The logs are in CloudWatch Logs, in /aws/lambda/NAME, stream YYYY/MM/DD/[$LATEST]…
    let events = d.aws_cli_json(&[
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/lambda/hello-py",
    ]);
    let messages: Vec<String> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("hello from python ada")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("hello from python bob")),
        "{messages:?}"
    );
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.starts_with("REPORT RequestId:"))
            .count(),
        2
    );
    let stream = events["events"][0]["logStreamName"].as_str().unwrap_or("");
    assert!(
        regex::Regex::new(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
            .unwrap()
            .is_match(stream),
        "{stream}"
    );
    let node_events = d.aws_cli_json(&[
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/lambda/hello-node",
        "--filter-pattern",
        "grace",
    ]);
    let line = node_events["events"][0]["message"].as_str().unwrap_or("");
    assert!(line.contains("\tINFO\thello from node grace"), "{line}");
}

#[test]
fn timeouts_and_exceptions_are_reported_as_aws_reports_them() {
    let Some(d) = lab(&["aws", "node"]) else {
        return;
    };
    let sleepy = zip(
        &d,
        "sleepy.zip",
        &[(
            "app.py",
            "import time\ndef handler(e, c):\n    time.sleep(60)\n    return 1\n",
        )],
    );
    create(
        &d,
        "sleepy",
        "python3.11",
        "app.handler",
        &sleepy,
        &["--timeout", "1"],
    );
    let started = std::time::Instant::now();
    let (meta, body) = invoke(&d, "sleepy", "{}", &["--log-type", "Tail"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout is enforced"
    );
    assert_eq!(meta["FunctionError"], "Unhandled");
    assert!(body.contains("Task timed out after 1.00 seconds"), "{body}");
    let log = tail(&meta);
    assert!(log.contains("Task timed out after 1.00 seconds"), "{log}");
    // The killed environment is replaced: the next invoke times out the same way.
    let (_, body) = invoke(&d, "sleepy", "{}", &[]);
    assert!(body.contains("Task timed out after 1.00 seconds"), "{body}");

    let boom = zip(
        &d,
        "boom.zip",
        &[(
            "app.py",
            "def handler(e, c):\n    raise ValueError('boom ' + e['x'])\n",
        )],
    );
    create(&d, "boom", "python3.12", "app.handler", &boom, &[]);
    let (meta, body) = invoke(&d, "boom", r#"{"x":"42"}"#, &["--log-type", "Tail"]);
    assert_eq!(meta["FunctionError"], "Unhandled");
    let v: serde_json::Value = serde_json::from_str(&body).expect("error document");
    assert_eq!(v["errorType"], "ValueError");
    assert_eq!(v["errorMessage"], "boom 42");
    assert!(
        v["stackTrace"].as_array().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    let log = tail(&meta);
    assert!(log.contains("[ERROR] ValueError: boom 42"), "{log}");

    let nodeboom = zip(
        &d,
        "nodeboom.zip",
        &[(
            "index.js",
            "exports.handler = async () => { throw new TypeError('bad thing'); };\n",
        )],
    );
    create(
        &d,
        "nodeboom",
        "nodejs22.x",
        "index.handler",
        &nodeboom,
        &[],
    );
    let (meta, body) = invoke(&d, "nodeboom", "{}", &[]);
    assert_eq!(meta["FunctionError"], "Unhandled");
    let v: serde_json::Value = serde_json::from_str(&body).expect("error document");
    assert_eq!(v["errorType"], "TypeError");
    assert_eq!(v["errorMessage"], "bad thing");
    assert!(v["trace"].as_array().is_some_and(|t| !t.is_empty()), "{v}");

    // A handler that does not exist is the runtime's init error.
    let missing = zip(&d, "missing.zip", &[("app.py", "x = 1\n")]);
    create(
        &d,
        "missing",
        "python3.12",
        "nothere.handler",
        &missing,
        &[],
    );
    let (meta, body) = invoke(&d, "missing", "{}", &[]);
    assert_eq!(meta["FunctionError"], "Unhandled");
    assert!(body.contains("Runtime.ImportModuleError"), "{body}");
    assert!(body.contains("Unable to import module 'nothere'"), "{body}");

    // Memory is limited: allocating more than MemorySize fails inside the function.
    let hog = zip(
        &d,
        "hog.zip",
        &[(
            "app.py",
            "def handler(e, c):\n    try:\n        b = bytearray(400 * 1024 * 1024)\n        return 'allocated'\n    except MemoryError:\n        return 'MemoryError'\n",
        )],
    );
    create(
        &d,
        "hog",
        "python3.12",
        "app.handler",
        &hog,
        &["--memory-size", "128"],
    );
    let (_, body) = invoke(&d, "hog", "{}", &[]);
    assert_eq!(body, "\"MemoryError\"");
}

#[test]
fn function_code_has_no_network() {
    let Some(d) = lab(&["aws"]) else {
        return;
    };
    let port = d.api_port();
    let code = format!(
        "import socket\ndef handler(e, c):\n    s = socket.socket()\n    s.settimeout(2)\n    try:\n        s.connect(('127.0.0.1', {port}))\n        return 'connected'\n    except OSError as err:\n        return 'refused: ' + type(err).__name__\n"
    );
    python_app(&d, "net", &code, &[]);
    let (_, body) = invoke(&d, "net", "{}", &[]);
    assert!(
        body.starts_with("\"refused"),
        "the daemon's port is not reachable from a function: {body}"
    );
}

#[test]
fn bad_input_gets_aws_errors() {
    let Some(d) = lab(&["aws"]) else {
        return;
    };
    let z = zip(
        &d,
        "ok.zip",
        &[("app.py", "def handler(e, c):\n    return e\n")],
    );
    // Leaked: the argument vectors below borrow it for the whole test.
    let file: &'static str = Box::leak(format!("fileb://{}", z.display()).into_boxed_str());
    let base = |name: &'static str| {
        vec![
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--zip-file",
            file,
        ]
    };
    let with = |mut v: Vec<&'static str>, extra: &[&'static str]| {
        v.extend_from_slice(extra);
        v
    };
    // (Timeout 0 and MemorySize 64 are refused by the CLI itself, before any request.)
    lambda_err(
        &d,
        &with(base("f"), &["--role", ROLE, "--memory-size", "20000"]),
        "ValidationException",
    );
    lambda_err(
        &d,
        &with(base("f"), &["--role", "not-an-arn"]),
        "ValidationException",
    );
    let err = lambda_err(
        &d,
        &with(
            base("f"),
            &["--role", "arn:aws:iam::000000000000:role/nobody"],
        ),
        "InvalidParameterValueException",
    );
    assert!(err.contains("cannot be assumed by Lambda"), "{err}");
    let mut old = base("f");
    old[4] = "python2.7";
    lambda_err(
        &d,
        &with(old, &["--role", ROLE]),
        "InvalidParameterValueException",
    );
    // (A file that is not a zip is refused by the CLI itself; the daemon's own check
    // is the zip module's unit test.)

    d.aws_cli_json(
        &["lambda"]
            .into_iter()
            .chain(with(base("f"), &["--role", ROLE]))
            .collect::<Vec<_>>(),
    );
    let err = lambda_err(
        &d,
        &with(base("f"), &["--role", ROLE]),
        "ResourceConflictException",
    );
    assert!(err.contains("Function already exist: f"), "{err}");
    let err = lambda_err(
        &d,
        &["get-function", "--function-name", "nope"],
        "ResourceNotFoundException",
    );
    assert!(
        err.contains("Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"),
        "{err}"
    );
    lambda_err(
        &d,
        &["invoke", "--function-name", "nope", "/dev/null"],
        "ResourceNotFoundException",
    );
    lambda_err(
        &d,
        &[
            "invoke",
            "--function-name",
            "f",
            "--payload",
            "not json",
            "/dev/null",
        ],
        "InvalidRequestContentException",
    );
    lambda_err(
        &d,
        &[
            "update-function-configuration",
            "--function-name",
            "f",
            "--timeout",
            "901",
        ],
        "InvalidParameterValueException",
    );
    lambda_err(
        &d,
        &["get-policy", "--function-name", "f"],
        "ResourceNotFoundException",
    );
    // A failed create leaves no zip behind; the good one left exactly one.
    assert_eq!(stored_zips(&d), 1);
}

#[test]
fn versions_aliases_permissions_and_restart() {
    let Some(mut d) = lab(&["aws"]) else {
        return;
    };
    let v1 = zip(
        &d,
        "v1.zip",
        &[(
            "app.py",
            "def handler(e, c):\n    return 'v1 ' + c.invoked_function_arn\n",
        )],
    );
    create(
        &d,
        "greeter",
        "python3.12",
        "app.handler",
        &v1,
        &["--tags", "team=web"],
    );
    let p = d.aws_cli_json(&["lambda", "publish-version", "--function-name", "greeter"]);
    assert_eq!(p["Version"], "1");
    assert_eq!(
        p["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:greeter:1"
    );
    // Nothing changed: publishing again returns version 1.
    let again = d.aws_cli_json(&["lambda", "publish-version", "--function-name", "greeter"]);
    assert_eq!(again["Version"], "1");
    let alias = d.aws_cli_json(&[
        "lambda",
        "create-alias",
        "--function-name",
        "greeter",
        "--name",
        "live",
        "--function-version",
        "1",
    ]);
    assert_eq!(
        alias["AliasArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:greeter:live"
    );
    let v2 = zip(
        &d,
        "v2.zip",
        &[("app.py", "def handler(e, c):\n    return 'v2'\n")],
    );
    let v2f = format!("fileb://{}", v2.display());
    d.aws_cli_json(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "greeter",
        "--zip-file",
        &v2f,
    ]);
    let (_, latest) = invoke(&d, "greeter", "{}", &[]);
    assert_eq!(latest, "\"v2\"");
    let (meta, live) = invoke(&d, "greeter", "{}", &["--qualifier", "live"]);
    assert_eq!(
        live,
        "\"v1 arn:aws:lambda:us-east-1:000000000000:function:greeter:live\""
    );
    assert_eq!(meta["ExecutedVersion"], "1");
    let versions = d.aws_cli_json(&[
        "lambda",
        "list-versions-by-function",
        "--function-name",
        "greeter",
    ]);
    assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(2));

    // The same statement id twice is a conflict.
    let grant = [
        "add-permission",
        "--function-name",
        "greeter",
        "--statement-id",
        "s3invoke",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "s3.amazonaws.com",
    ];
    let mut first = vec!["lambda"];
    first.extend_from_slice(&grant);
    first.extend_from_slice(&["--source-arn", "arn:aws:s3:::uploads"]);
    d.aws_cli_json(&first);
    lambda_err(&d, &grant, "ResourceConflictException");
    let policy = d.aws_cli_json(&["lambda", "get-policy", "--function-name", "greeter"]);
    let doc: serde_json::Value =
        serde_json::from_str(policy["Policy"].as_str().expect("policy")).expect("json");
    assert_eq!(
        doc["Statement"][0]["Principal"]["Service"],
        "s3.amazonaws.com"
    );
    assert_eq!(
        doc["Statement"][0]["Condition"]["ArnLike"]["AWS:SourceArn"],
        "arn:aws:s3:::uploads"
    );
    let url = d.aws_cli_json(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "greeter",
        "--auth-type",
        "NONE",
    ]);
    assert!(
        url["FunctionUrl"]
            .as_str()
            .unwrap_or("")
            .contains(".lambda-url.us-east-1.localhost"),
        "{url}"
    );
    let tags = d.aws_cli_json(&[
        "lambda",
        "list-tags",
        "--resource",
        "arn:aws:lambda:us-east-1:000000000000:function:greeter",
    ]);
    assert_eq!(tags["Tags"]["team"], "web");

    // Everything survives a restart, and the functions still run.
    d.stop();
    d.launch();
    let (_, live) = invoke(&d, "greeter", "{}", &["--qualifier", "live"]);
    assert!(live.starts_with("\"v1 "), "{live}");
    let (_, latest) = invoke(&d, "greeter", "{}", &[]);
    assert_eq!(latest, "\"v2\"");
    let policy = d.aws_cli_json(&["lambda", "get-policy", "--function-name", "greeter"]);
    assert!(policy["Policy"].as_str().unwrap_or("").contains("s3invoke"));

    d.aws_cli_json(&[
        "lambda",
        "remove-permission",
        "--function-name",
        "greeter",
        "--statement-id",
        "s3invoke",
    ]);
    lambda_err(
        &d,
        &["get-policy", "--function-name", "greeter"],
        "ResourceNotFoundException",
    );
    d.aws_cli(&[
        "lambda",
        "delete-alias",
        "--function-name",
        "greeter",
        "--name",
        "live",
    ]);
    d.aws_cli(&["lambda", "delete-function", "--function-name", "greeter"]);
    lambda_err(
        &d,
        &["get-function", "--function-name", "greeter"],
        "ResourceNotFoundException",
    );
    assert_eq!(stored_zips(&d), 0, "deleting the function deleted its zips");
}

/// Prints what an SNS event says.
const SNS_APP: &str = "def handler(event, context):\n    r = event['Records'][0]\n    print('got', r['EventSource'], r['Sns']['Subject'], r['Sns']['Message'])\n";

#[test]
fn sns_messages_invoke_subscribed_functions() {
    let Some(d) = lab(&["aws"]) else {
        return;
    };
    python_app(&d, "on-alert", SNS_APP, &[]);
    let topic = d.aws_cli_json(&["sns", "create-topic", "--name", "alerts"]);
    let topic = topic["TopicArn"].as_str().expect("topic arn").to_string();
    let sub = d.aws_cli_json(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "lambda",
        "--notification-endpoint",
        "arn:aws:lambda:us-east-1:000000000000:function:on-alert",
    ]);
    assert!(
        sub["SubscriptionArn"]
            .as_str()
            .unwrap_or("")
            .starts_with(&topic),
        "{sub}"
    );
    d.aws_cli_json(&[
        "sns",
        "publish",
        "--topic-arn",
        &topic,
        "--subject",
        "disk",
        "--message",
        "almost-full",
    ]);
    wait_for_log(&d, "/aws/lambda/on-alert", "got aws:sns disk almost-full");
}

/// Waits (up to 20 s) until the log group holds `needle`; returns the log's text.
fn wait_for_log(d: &TestDaemon, group: &str, needle: &str) -> String {
    wait_for_log_within(d, group, needle, 20)
}

/// [`wait_for_log`] with its own limit, in seconds.
fn wait_for_log_within(d: &TestDaemon, group: &str, needle: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let out = d.aws_cli(&["logs", "filter-log-events", "--log-group-name", group]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the function never logged {needle:?}: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// Prints what each record of an S3 event says.
const S3_APP: &str = "def handler(event, context):\n    for r in event['Records']:\n        o = r['s3']['object']\n        print('got', r['eventSource'], r['eventName'], r['s3']['bucket']['name'], o['key'], o.get('size'), o.get('eTag'))\n";

/// S3 User Guide, "Granting permissions to invoke an AWS Lambda function": S3 checks the
/// function's resource policy when the configuration is put, then invokes the function
/// asynchronously with the event message (keys URL-encoded) for each matching write.
#[test]
fn s3_events_invoke_permitted_functions_with_the_event_message() {
    let Some(d) = lab(&["aws"]) else {
        return;
    };
    python_app(&d, "thumbs", S3_APP, &[]);
    d.aws_cli_json(&["s3api", "create-bucket", "--bucket", "photos"]);
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:thumbs";
    let config = format!(
        r#"{{"LambdaFunctionConfigurations":[{{"Id":"thumbs","LambdaFunctionArn":"{arn}","Events":["s3:ObjectCreated:*"],"Filter":{{"Key":{{"FilterRules":[{{"Name":"prefix","Value":"in/"}},{{"Name":"suffix","Value":".jpg"}}]}}}}}}]}}"#
    );
    let put = [
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "photos",
        "--notification-configuration",
        &config,
    ];
    // Without a permission for s3.amazonaws.com, S3 cannot validate the destination.
    let err = d.aws_cli_err(&put);
    assert!(
        err.contains("InvalidArgument")
            && err.contains("Unable to validate the following destination configurations"),
        "{err}"
    );
    // A permission for another bucket does not count either.
    let grant = |sid: &str, bucket: &str| {
        d.aws_cli_json(&[
            "lambda",
            "add-permission",
            "--function-name",
            "thumbs",
            "--statement-id",
            sid,
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "s3.amazonaws.com",
            "--source-arn",
            &format!("arn:aws:s3:::{bucket}"),
            "--source-account",
            "000000000000",
        ])
    };
    grant("other", "elsewhere");
    let err = d.aws_cli_err(&put);
    assert!(err.contains("Unable to validate"), "{err}");
    grant("s3", "photos");
    d.aws_cli_json(&put);
    let got = d.aws_cli_json(&[
        "s3api",
        "get-bucket-notification-configuration",
        "--bucket",
        "photos",
    ]);
    assert_eq!(
        got["LambdaFunctionConfigurations"][0]["LambdaFunctionArn"], arn,
        "{got}"
    );

    let body = d.path("cat.jpg");
    std::fs::write(&body, b"12345").expect("write object");
    let bodys = body.display().to_string();
    for key in ["in/skip.png", "out/skip.jpg", "in/my cat.jpg"] {
        d.aws_cli_json(&[
            "s3api",
            "put-object",
            "--bucket",
            "photos",
            "--key",
            key,
            "--body",
            &bodys,
        ]);
    }
    // The key arrives URL-encoded, as S3 sends it; size and ETag describe the object.
    let text = wait_for_log(
        &d,
        "/aws/lambda/thumbs",
        "got aws:s3 ObjectCreated:Put photos in/my+cat.jpg 5 827ccb0eea8a706c4c34a16891f84e7b",
    );
    assert!(
        !text.contains("skip"),
        "filtered-out keys invoked the function: {text}"
    );
}

/// `curl` a function URL: (status, headers and body). `extra` goes before the URL.
fn curl_url(url: &str, extra: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

const URL_APP: &str = r#"import json

def handler(event, context):
    http = event['requestContext']['http']
    if event['rawPath'] == '/plain':
        return {'hello': 'world'}
    return {
        'statusCode': 201,
        'headers': {'content-type': 'text/plain', 'x-caller': event['requestContext']['accountId']},
        'body': 'v=%s %s %s q=%s body=%s' % (event['version'], http['method'], event['rawPath'],
                                         event['rawQueryString'], event.get('body')),
    }
"#;

/// Lambda developer guide, "Invoking Lambda function URLs" and "Control access to
/// Lambda function URLs": a URL answers HTTP with the function's response (payload
/// format 2.0); auth type NONE needs the resource policy to let `*` call both
/// `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction`, AWS_IAM needs a SigV4
/// signature; refusals are `403 {"Message":"Forbidden"}`. Inside the world the
/// `https://<id>.lambda-url.<region>.on.aws/` name answers an instance's curl.
#[test]
fn function_urls_answer_http_from_the_learner_and_from_an_instance() {
    if !have("aws") || !have("curl") || !have("ssh") {
        return;
    }
    // Strict authentication, so that a wrong signature is really refused.
    let d = TestDaemon::start_strict(
        "[[key]]\naccess_key = \"test\"\nsecret_key = \"test\"\naccount = \"000000000000\"\n",
    );
    role(&d);
    let z = zip(&d, "url.zip", &[("app.py", URL_APP)]);
    create(&d, "web", "python3.12", "app.handler", &z, &[]);
    let cfg = d.aws_cli_json(&[
        "lambda",
        "create-function-url-config",
        "--function-name",
        "web",
        "--auth-type",
        "NONE",
    ]);
    let url = cfg["FunctionUrl"].as_str().expect("url").to_string();
    assert!(
        url.starts_with("http://") && url.contains(".lambda-url.us-east-1.localhost:"),
        "{cfg}"
    );
    let url_id = url["http://".len()..]
        .split('.')
        .next()
        .unwrap()
        .to_string();
    // No public permission yet: Forbidden.
    let (status, text) = curl_url(&format!("{url}hello"), &[]);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains(r#"{"Message":"Forbidden"}"#), "{text}");
    let grant = |sid: &str, action: &str, extra: &[&str]| {
        let mut args = vec![
            "lambda",
            "add-permission",
            "--function-name",
            "web",
            "--statement-id",
            sid,
            "--action",
            action,
            "--principal",
            "*",
        ];
        args.extend_from_slice(extra);
        d.aws_cli_json(&args);
    };
    grant(
        "url",
        "lambda:InvokeFunctionUrl",
        &["--function-url-auth-type", "NONE"],
    );
    // Since October 2025 a new URL also needs lambda:InvokeFunction.
    let (status, _) = curl_url(&format!("{url}hello"), &[]);
    assert_eq!(status, 403);
    grant(
        "invoke",
        "lambda:InvokeFunction",
        &["--invoked-via-function-url"],
    );

    let (status, text) = curl_url(&format!("{url}hello?a=1&b=2"), &["-d", "ping"]);
    assert_eq!(status, 201, "{text}");
    assert!(
        text.contains("v=2.0 POST /hello q=a=1&b=2 body=ping"),
        "{text}"
    );
    assert!(text.contains("x-caller: anonymous"), "{text}");
    // A JSON answer without statusCode: 200, application/json, the JSON as body.
    let (status, text) = curl_url(&format!("{url}plain"), &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("application/json") && text.contains(r#"{"hello": "world"}"#),
        "{text}"
    );

    // Inside the world: AWS's https name, vpclab's CA, from an instance.
    let net = Network::build(&d);
    let sg = net.security_group(&d, "web", &[(22, "0.0.0.0/0")]);
    let key = d.key_pair("lab", "ed25519");
    let (_, ip, _) = net.launch(&d, &net.public_subnet, "lab", &sg, &[]);
    let out = d.ssh(
        &key,
        "ec2-user",
        &ip,
        &format!("curl -s -X PUT -d inside https://{url_id}.lambda-url.us-east-1.on.aws/from-vpc"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("v=2.0 PUT /from-vpc q= body=inside"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // AWS_IAM: unsigned or badly signed requests are refused; a SigV4 signature for
    // `lambda` is accepted and the caller's account reaches the function.
    d.aws_cli_json(&[
        "lambda",
        "update-function-url-config",
        "--function-name",
        "web",
        "--auth-type",
        "AWS_IAM",
    ]);
    let (status, _) = curl_url(&format!("{url}hello"), &[]);
    assert_eq!(status, 403);
    let sign = ["--aws-sigv4", "aws:amz:us-east-1:lambda"];
    let (status, _) = curl_url(
        &format!("{url}hello"),
        &[&sign[..], &["--user", "test:wrong"]].concat(),
    );
    assert_eq!(status, 403);
    let (status, text) = curl_url(
        &format!("{url}hello"),
        &[&sign[..], &["--user", "test:test"]].concat(),
    );
    assert_eq!(status, 201, "{text}");
    assert!(text.contains("x-caller: 000000000000"), "{text}");
}

/// Lambda developer guide, "How Lambda handles errors and retries with asynchronous
/// invocation": a failed `Event` invocation is tried again after a minute (at most
/// `MaximumRetryAttempts` times, 0–2), and each attempt logs under the same request id.
/// The function fails the first time (its state is a file) and succeeds on the retry.
#[test]
fn a_failed_event_invocation_is_retried_after_a_minute() {
    let Some(d) = lab(&["aws"]) else {
        return;
    };
    let state = d.path("flaky.state");
    let env = format!("Variables={{STATE={}}}", state.display());
    python_app(
        &d,
        "flaky",
        "import os\ndef handler(event, context):\n    p = os.environ['STATE']\n    if not os.path.exists(p):\n        open(p, 'w').write('x')\n        raise RuntimeError('first attempt fails')\n    print('recovered on retry')\n    return 'ok'\n",
        &["--environment", &env],
    );
    // The settings, with AWS's limits.
    lambda_err(
        &d,
        &[
            "put-function-event-invoke-config",
            "--function-name",
            "flaky",
            "--maximum-retry-attempts",
            "3",
        ],
        "ValidationException",
    );
    lambda_err(
        &d,
        &[
            "get-function-event-invoke-config",
            "--function-name",
            "flaky",
        ],
        "ResourceNotFoundException",
    );
    let cfg = d.aws_cli_json(&[
        "lambda",
        "put-function-event-invoke-config",
        "--function-name",
        "flaky",
        "--maximum-retry-attempts",
        "1",
        "--maximum-event-age-in-seconds",
        "600",
    ]);
    assert_eq!(cfg["MaximumRetryAttempts"], 1, "{cfg}");
    assert!(
        cfg["FunctionArn"]
            .as_str()
            .unwrap_or("")
            .ends_with(":function:flaky:$LATEST"),
        "{cfg}"
    );
    let got = d.aws_cli_json(&[
        "lambda",
        "get-function-event-invoke-config",
        "--function-name",
        "flaky",
    ]);
    assert_eq!(got["MaximumEventAgeInSeconds"], 600, "{got}");

    let (meta, _) = invoke(&d, "flaky", "{}", &["--invocation-type", "Event"]);
    assert_eq!(meta["StatusCode"], 202, "{meta}");
    let group = "/aws/lambda/flaky";
    let first = wait_for_log(&d, group, "first attempt fails");
    assert!(!first.contains("recovered on retry"), "{first}");
    let started = std::time::Instant::now();
    let text = wait_for_log_within(&d, group, "recovered on retry", 100);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(45),
        "retried after {waited:?}, not about a minute"
    );
    // Two attempts, one request id.
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let starts: Vec<String> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("START RequestId: "))
        .map(|m| m.split_whitespace().nth(2).unwrap_or("").to_string())
        .collect();
    assert_eq!(starts.len(), 2, "{text}");
    assert_eq!(starts[0], starts[1], "{text}");
    d.aws_cli(&[
        "lambda",
        "delete-function-event-invoke-config",
        "--function-name",
        "flaky",
    ]);
    lambda_err(
        &d,
        &[
            "get-function-event-invoke-config",
            "--function-name",
            "flaky",
        ],
        "ResourceNotFoundException",
    );
}

//! DynamoDB and SSM Parameter Store through the real clients: the seed's
//! `aws dynamodb put-item … file://item.json` verbatim, its Node.js `aws-sdk` snippet
//! (only the endpoint added) and the same with `@aws-sdk/client-dynamodb` v3,
//! expressions, queries with paging, transactions, AWS's errors for oversized items;
//! `aws ssm` parameters, versions, paths and the public AMI parameters.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Lab, TestDaemon, have, in_ci};

fn ddb(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    d.aws_cli_json(&[&["--region", "us-east-1", "dynamodb"], args].concat())
}

fn ddb_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(&[&["--region", "us-east-1", "dynamodb"], args].concat());
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

fn ssm(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    d.aws_cli_json(&[&["--region", "us-east-1", "ssm"], args].concat())
}

fn ssm_err(d: &TestDaemon, args: &[&str], code: &str) -> String {
    let err = d.aws_cli_err(&[&["--region", "us-east-1", "ssm"], args].concat());
    assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    err
}

fn create_seed_table(d: &TestDaemon) {
    ddb(
        d,
        &[
            "create-table",
            "--table-name",
            "aws-developer",
            "--attribute-definitions",
            "AttributeName=id,AttributeType=S",
            "--key-schema",
            "AttributeName=id,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
}

/// The folder holding `node_modules` with `aws-sdk` and `@aws-sdk/client-dynamodb`
/// (scripts/install-test-deps).
fn node_deps() -> Option<PathBuf> {
    let dir = std::env::var_os("VPCLAB_NODE_DEPS")
        .map(PathBuf::from)
        .or_else(|| dirs_home().map(|h| h.join(".cache/vpclab/node")))?;
    let ok = dir.join("node_modules/aws-sdk").is_dir()
        && dir.join("node_modules/@aws-sdk/client-dynamodb").is_dir();
    if !ok {
        assert!(
            !in_ci(),
            "the Node.js AWS SDKs are missing from {}: run scripts/install-test-deps",
            dir.display()
        );
        eprintln!("note: Node.js AWS SDKs not installed, skipping");
        return None;
    }
    Some(dir)
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn node(d: &TestDaemon, deps: &std::path::Path, script: &str, args: &[&str]) -> String {
    let path = d.dir().join("snippet.js");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("node")
        .arg(&path)
        .args(args)
        .env("NODE_PATH", deps.join("node_modules"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE", "1")
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_seeds_dynamodb_commands_work_verbatim() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    create_seed_table(&d);
    // `aws dynamodb put-item --table-name aws-developer --item file://item.json`, run in
    // the folder holding item.json as the seed does.
    std::fs::write(
        d.dir().join("item.json"),
        r#"{"id":{"S":"1586635875916"},"Value":{"S":"pizza"}}"#,
    )
    .unwrap();
    let mut cmd = Command::new("aws");
    cmd.args([
        "dynamodb",
        "put-item",
        "--table-name",
        "aws-developer",
        "--item",
        "file://item.json",
        "--region",
        "us-east-1",
    ])
    .current_dir(d.dir());
    d.env(&mut cmd);
    let out = cmd.output().expect("aws");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = ddb(
        &d,
        &[
            "get-item",
            "--table-name",
            "aws-developer",
            "--key",
            r#"{"id":{"S":"1586635875916"}}"#,
        ],
    );
    assert_eq!(got["Item"]["Value"]["S"], "pizza");

    let Some(deps) = node_deps() else { return };
    if !have("node") {
        return;
    }
    // The seed's snippet with only the endpoint added.
    let v2 = format!(
        r#"// import the sdk
const AWS = require("aws-sdk");

// set the region to format the urls
AWS.config.update({{ region: "us-east-1" }});

// set a client to connect to the dynamoDB
const dynamodb = new AWS.DynamoDB({{ endpoint: "{}" }});

// create a item to insert
const item = {{
  Item: {{
    id: {{
      S: new Date().getTime().toString(),
    }},
    Value: {{
      S: process.argv[2],
    }},
  }},
  // name of value to create
  TableName: "aws-developer",
}};

// put the item in the cloud
dynamodb.putItem(item, (err, res) => {{
  if (err) throw err;
}});
"#,
        d.url()
    );
    node(&d, &deps, &v2, &["tacos"]);
    let v3 = format!(
        r#"const {{ DynamoDBClient, PutItemCommand }} = require("@aws-sdk/client-dynamodb");
const client = new DynamoDBClient({{ region: "us-east-1", endpoint: "{}" }});
client.send(new PutItemCommand({{
  TableName: "aws-developer",
  Item: {{ id: {{ S: "v3-" + Date.now() }}, Value: {{ S: process.argv[2] }} }},
}})).then(() => console.log("ok"), (e) => {{ console.error(e); process.exit(1); }});
"#,
        d.url()
    );
    assert!(node(&d, &deps, &v3, &["sushi"]).contains("ok"));
    let scan = ddb(&d, &["scan", "--table-name", "aws-developer"]);
    let mut values: Vec<String> = scan["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Value"]["S"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    assert_eq!(values, ["pizza", "sushi", "tacos"]);
}

#[test]
fn queries_expressions_transactions_and_bad_items() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    ddb(
        &d,
        &[
            "create-table",
            "--table-name",
            "orders",
            "--attribute-definitions",
            "AttributeName=customer,AttributeType=S",
            "AttributeName=at,AttributeType=N",
            "--key-schema",
            "AttributeName=customer,KeyType=HASH",
            "AttributeName=at,KeyType=RANGE",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    for at in 1..=5 {
        let item = format!(
            r#"{{"customer":{{"S":"ana"}},"at":{{"N":"{at}"}},"total":{{"N":"{}"}}}}"#,
            at * 10
        );
        ddb(&d, &["put-item", "--table-name", "orders", "--item", &item]);
    }
    // Key condition with a range, one item per page: the CLI follows LastEvaluatedKey.
    let q = ddb(
        &d,
        &[
            "query",
            "--table-name",
            "orders",
            "--key-condition-expression",
            "customer = :c AND #t BETWEEN :a AND :b",
            "--expression-attribute-names",
            r##"{"#t":"at"}"##,
            "--expression-attribute-values",
            r#"{":c":{"S":"ana"},":a":{"N":"2"},":b":{"N":"4"}}"#,
            "--page-size",
            "1",
        ],
    );
    assert_eq!(q["Count"], 3, "{q}");
    // A conditional write that fails leaves the item as it was.
    ddb_err(
        &d,
        &[
            "put-item",
            "--table-name",
            "orders",
            "--item",
            r#"{"customer":{"S":"ana"},"at":{"N":"1"}}"#,
            "--condition-expression",
            "attribute_not_exists(customer)",
        ],
        "ConditionalCheckFailedException",
    );
    let upd = ddb(
        &d,
        &[
            "update-item",
            "--table-name",
            "orders",
            "--key",
            r#"{"customer":{"S":"ana"},"at":{"N":"1"}}"#,
            "--update-expression",
            // TOTAL is one of DynamoDB's reserved words: it needs a placeholder.
            "SET #n = #n + :d",
            "--expression-attribute-names",
            r##"{"#n":"total"}"##,
            "--expression-attribute-values",
            r#"{":d":{"N":"5"}}"#,
            "--return-values",
            "ALL_NEW",
        ],
    );
    assert_eq!(upd["Attributes"]["total"]["N"], "15");
    // An item over DynamoDB's 400 KB limit is refused with ValidationException.
    let big = "x".repeat(410 * 1024);
    let item_file = d.dir().join("big.json");
    std::fs::write(
        &item_file,
        format!(r#"{{"customer":{{"S":"bob"}},"at":{{"N":"1"}},"blob":{{"S":"{big}"}}}}"#),
    )
    .unwrap();
    let arg = format!("file://{}", item_file.display());
    ddb_err(
        &d,
        &["put-item", "--table-name", "orders", "--item", &arg],
        "ValidationException",
    );
    // Nothing was lost: ana's five orders are all there.
    let scan = ddb(&d, &["scan", "--table-name", "orders", "--select", "COUNT"]);
    assert_eq!(scan["Count"], 5);
    // A transaction whose condition fails writes nothing.
    ddb_err(
        &d,
        &[
            "transact-write-items",
            "--transact-items",
            r##"[{"Put":{"TableName":"orders","Item":{"customer":{"S":"cy"},"at":{"N":"1"}}}},{"ConditionCheck":{"TableName":"orders","Key":{"customer":{"S":"ana"},"at":{"N":"1"}},"ConditionExpression":"#n > :m","ExpressionAttributeNames":{"#n":"total"},"ExpressionAttributeValues":{":m":{"N":"1000"}}}}]"##,
        ],
        "TransactionCanceledException",
    );
    let cy = ddb(
        &d,
        &[
            "get-item",
            "--table-name",
            "orders",
            "--key",
            r#"{"customer":{"S":"cy"},"at":{"N":"1"}}"#,
        ],
    );
    assert!(cy.get("Item").is_none(), "{cy}");
    ddb_err(
        &d,
        &["describe-table", "--table-name", "nope"],
        "ResourceNotFoundException",
    );
}

#[test]
fn parameters_have_versions_paths_and_aws_public_ami_names() {
    if !have("aws") {
        return;
    }
    let d = TestDaemon::start();
    ssm(
        &d,
        &[
            "put-parameter",
            "--name",
            "/app/prod/db-url",
            "--value",
            "db.internal:5432",
            "--type",
            "String",
        ],
    );
    ssm(
        &d,
        &[
            "put-parameter",
            "--name",
            "/app/prod/db-password",
            "--value",
            "s3cret",
            "--type",
            "SecureString",
        ],
    );
    ssm(
        &d,
        &[
            "put-parameter",
            "--name",
            "/app/dev/db-url",
            "--value",
            "localhost",
            "--type",
            "String",
        ],
    );
    ssm_err(
        &d,
        &[
            "put-parameter",
            "--name",
            "/app/prod/db-url",
            "--value",
            "x",
            "--type",
            "String",
        ],
        "ParameterAlreadyExists",
    );
    let v = ssm(
        &d,
        &[
            "put-parameter",
            "--name",
            "/app/prod/db-url",
            "--value",
            "db2.internal:5432",
            "--overwrite",
        ],
    );
    assert_eq!(v["Version"], 2);
    let p = ssm(&d, &["get-parameter", "--name", "/app/prod/db-url:1"]);
    assert_eq!(p["Parameter"]["Value"], "db.internal:5432");
    // SecureString: hidden unless decrypted.
    let hidden = ssm(&d, &["get-parameter", "--name", "/app/prod/db-password"]);
    assert_ne!(hidden["Parameter"]["Value"], "s3cret");
    let shown = ssm(
        &d,
        &[
            "get-parameter",
            "--name",
            "/app/prod/db-password",
            "--with-decryption",
        ],
    );
    assert_eq!(shown["Parameter"]["Value"], "s3cret");
    let by_path = ssm(
        &d,
        &[
            "get-parameters-by-path",
            "--path",
            "/app",
            "--recursive",
            "--max-items",
            "10",
        ],
    );
    assert_eq!(by_path["Parameters"].as_array().map(Vec::len), Some(3));
    let one_level = ssm(&d, &["get-parameters-by-path", "--path", "/app"]);
    assert_eq!(one_level["Parameters"].as_array().map(Vec::len), Some(0));
    let many = ssm(
        &d,
        &["get-parameters", "--names", "/app/dev/db-url", "/missing"],
    );
    assert_eq!(many["InvalidParameters"][0], "/missing");
    ssm_err(
        &d,
        &[
            "put-parameter",
            "--name",
            "aws-reserved",
            "--value",
            "x",
            "--type",
            "String",
        ],
        "ValidationException",
    );
    ssm(&d, &["delete-parameter", "--name", "/app/dev/db-url"]);
    ssm_err(
        &d,
        &["get-parameter", "--name", "/app/dev/db-url"],
        "ParameterNotFound",
    );
    // The tutorials' AMI lookup, then a launch with the id it returns.
    let ami = ssm(
        &d,
        &[
            "get-parameters",
            "--names",
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        ],
    );
    let id = ami["Parameters"][0]["Value"]
        .as_str()
        .expect("an image id")
        .to_string();
    let images = d.aws(&["describe-images", "--image-ids", &id]);
    assert_eq!(images["Images"][0]["ImageId"], id.as_str());
    let ubuntu = ssm(
        &d,
        &[
            "get-parameter",
            "--name",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        ],
    );
    assert!(
        ubuntu["Parameter"]["Value"]
            .as_str()
            .unwrap()
            .starts_with("ami-")
    );
}

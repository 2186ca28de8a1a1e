//! Amazon ECR with the real clients: the seed's `create-repository`, `skopeo copy` of a
//! hand-written OCI layout to the registry endpoint with the `get-login-password`
//! token, DescribeImages and BatchGetImage showing what was pushed, and an ECS task
//! running the pushed image as the known image its config labels name.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::{Lab, Network, TestDaemon, have, in_ci, require};

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Writes an OCI image layout (one empty tar layer, a config whose labels say the image
/// is built from nginx) and returns the config's digest.
fn oci_layout(dir: &std::path::Path) -> String {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).expect("write blob");
        d
    };
    // An empty tar archive: two zero blocks.
    let layer = vec![0u8; 1024];
    let layer_digest = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.base.name": "docker.io/library/nginx:1.27"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    config_digest
}

#[test]
fn skopeo_pushes_an_oci_image_that_describe_images_lists_and_ecs_runs() {
    if !have("skopeo") {
        if in_ci() {
            require("skopeo");
        }
        eprintln!("note: skopeo is not installed; skipping");
        return;
    }
    let d = TestDaemon::start();
    // The seed's command, verbatim.
    let v = d.aws_cli_json(&["ecr", "create-repository", "--repository-name", "myimage"]);
    assert_eq!(
        v["repository"]["repositoryUri"],
        "000000000000.dkr.ecr.us-east-1.amazonaws.com/myimage"
    );
    let e = d.aws_cli_err(&["ecr", "create-repository", "--repository-name", "myimage"]);
    assert!(e.contains("(RepositoryAlreadyExistsException)"), "{e}");

    let out = d.aws_cli(&["ecr", "get-login-password", "--region", "us-east-1"]);
    assert!(out.status.success());
    let password = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let layout = d.path("layout");
    let config_digest = oci_layout(&layout);
    let digest_file = d.path("pushed-digest");
    let push = |creds: &str| {
        std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                "--digestfile",
            ])
            .arg(&digest_file)
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!(
                "docker://127.0.0.1:{}/myimage:latest",
                d.api_port()
            ))
            .output()
            .expect("run skopeo")
    };
    // A wrong password is refused.
    let out = push("AWS:not-a-token");
    assert!(!out.status.success());
    let out = push(&format!("AWS:{password}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // skopeo compresses the layer on the way, so the manifest it writes is not the
    // layout's; --digestfile says which one it pushed.
    let digest = std::fs::read_to_string(&digest_file).expect("digest file");
    let digest = digest.trim();
    let v = d.aws_cli_json(&["ecr", "describe-images", "--repository-name", "myimage"]);
    let img = v["imageDetails"][0].clone();
    assert_eq!(img["imageDigest"], digest);
    assert_eq!(img["imageTags"], serde_json::json!(["latest"]));
    assert_eq!(
        img["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let v = d.aws_cli_json(&[
        "ecr",
        "batch-get-image",
        "--repository-name",
        "myimage",
        "--image-ids",
        "imageTag=latest",
    ]);
    let manifest = v["images"][0]["imageManifest"].as_str().expect("manifest");
    assert_eq!(sha(manifest.as_bytes()), digest);
    // The size DescribeImages reports is the config's and the layers' as pushed.
    let m: serde_json::Value = serde_json::from_str(manifest).expect("manifest json");
    assert_eq!(m["config"]["digest"], config_digest.as_str());
    let size =
        m["config"]["size"].as_u64().unwrap_or(0) + m["layers"][0]["size"].as_u64().unwrap_or(0);
    assert_eq!(img["imageSizeInBytes"], size);
    let v = d.aws_cli_json(&["ecr", "list-images", "--repository-name", "myimage"]);
    assert_eq!(v["imageIds"][0]["imageTag"], "latest");

    // Pulling it back gives the same manifest.
    let back = d.path("back");
    let out = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
        ])
        .arg(format!("AWS:{password}"))
        .arg(format!(
            "docker://127.0.0.1:{}/myimage:latest",
            d.api_port()
        ))
        .arg(format!("oci:{}:latest", back.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let e = d.aws_cli_err(&["ecr", "delete-repository", "--repository-name", "myimage"]);
    assert!(e.contains("(RepositoryNotEmptyException)"), "{e}");
    d.aws_cli_json(&[
        "ecr", "put-lifecycle-policy", "--repository-name", "myimage", "--lifecycle-policy-text",
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#,
    ]);
    let v = d.aws_cli_json(&[
        "ecr",
        "get-lifecycle-policy",
        "--repository-name",
        "myimage",
    ]);
    assert!(
        v["lifecyclePolicyText"]
            .as_str()
            .unwrap_or_default()
            .contains("rulePriority")
    );

    // ECS runs the pushed image as nginx (its config's base image label), and cannot
    // pull a tag that was never pushed.
    let net = Network::build(&d);
    d.aws_cli_json(&["ecs", "create-cluster", "--cluster-name", "myapp"]);
    let td = |family: &str, tag: &str| {
        let file = d.path(&format!("{family}.json"));
        std::fs::write(
            &file,
            format!(
                r#"{{"family": "{family}", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
                    "cpu": "256", "memory": "512",
                    "containerDefinitions": [{{"name": "web",
                      "image": "000000000000.dkr.ecr.us-east-1.amazonaws.com/myimage:{tag}",
                      "healthCheck": {{"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}}}}]}}"#
            ),
        )
        .expect("write");
        d.aws_cli_json(&[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ]);
        let vpc = format!("awsvpcConfiguration={{subnets=[{}]}}", net.private_subnet);
        let v = d.aws_cli_json(&[
            "ecs",
            "run-task",
            "--cluster",
            "myapp",
            "--task-definition",
            family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &vpc,
        ]);
        v["tasks"][0]["taskArn"].as_str().expect("arn").to_string()
    };
    let wait = |arn: &str, status: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = d.aws_cli_json(&[
                "ecs",
                "describe-tasks",
                "--cluster",
                "myapp",
                "--tasks",
                arn,
            ]);
            if v["tasks"][0]["lastStatus"] == status {
                return v["tasks"][0].clone();
            }
            assert!(Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let good = td("pushed", "latest");
    let missing = td("missing", "v2");
    let t = wait(&good, "RUNNING");
    assert_eq!(t["healthStatus"], "HEALTHY", "{t}");
    let t = wait(&missing, "STOPPED");
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    assert!(
        t["stoppedReason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("CannotPullContainerError"),
        "{t}"
    );
    // The pushed image keeps running.
    std::thread::sleep(Duration::from_millis(1500));
    let v = d.aws_cli_json(&[
        "ecs",
        "describe-tasks",
        "--cluster",
        "myapp",
        "--tasks",
        &good,
    ]);
    assert_eq!(v["tasks"][0]["lastStatus"], "RUNNING");
}

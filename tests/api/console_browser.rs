//! The web console in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, Debian's `chromium` and `chromium-driver`, which `scripts/test`
//! installs), with the real aws CLI and OpenSSH on the other side.
//!
//! These tests run only in CI (`CI=true`); elsewhere they print a note and pass, so a
//! developer without Chromium is not held up. They install nothing themselves. Each saves
//! screenshots under `target/console-screenshots/` for a reviewer to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::{Lab, TestDaemon, in_ci, require, write_private_key};

/// Whether browser tests run here (only in CI, see the module doc).
fn enabled(test: &str) -> bool {
    if !in_ci() {
        eprintln!("{test}: skipped (browser tests run with CI=true)");
        return false;
    }
    require("chromium");
    require("chromedriver");
    true
}

/// A headless Chromium behind its own chromedriver on a loopback port.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--no-proxy-server"]
            }
        }))
        .expect("capabilities");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut b =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            match b.capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Browser {
            driver,
            client,
            shots,
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Waits until the page's source contains `text` (without navigating).
    async fn wait_for(&self, text: &str, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.source().await.contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The element `what` once it is on the page: after a click that posts a form or
    /// follows a link, the next page may still be loading when the click returns.
    async fn appear(&self, what: Locator<'_>) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(what)
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("{what:?}: {e}; the page: {}", self.source().await),
        }
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn browser_dashboard_shows_a_cli_vpc_and_updates_live_without_reload() {
    if !enabled("browser_dashboard") {
        return;
    }
    let d = TestDaemon::start();
    let first = d.aws(&[
        "create-vpc",
        "--cidr-block",
        "10.61.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=from-cli}]",
    ]);
    let first = first["Vpc"]["VpcId"].as_str().expect("VpcId").to_string();
    runtime().block_on(async {
        let b = Browser::start().await;
        b.client
            .goto(&format!("{}/", d.url()))
            .await
            .expect("open /");
        let here = b.client.current_url().await.expect("url");
        assert!(
            here.path().starts_with("/console/"),
            "a browser at / lands on the console: {here}"
        );
        b.client
            .goto(&format!("{}/console/vpc", d.url()))
            .await
            .expect("dashboard");
        assert!(b.source().await.contains(&format!("VPC from-cli {first}")));
        b.shot("dashboard").await;
        // Mark this page; a reload would lose the mark.
        b.client
            .execute("window.vpclabMark = 42; return 1;", vec![])
            .await
            .expect("js");
        assert!(
            b.wait_for(
                "Live: changes made with the CLI appear here.",
                Duration::from_secs(10)
            )
            .await
        );
        let second = d.aws(&["create-vpc", "--cidr-block", "10.62.0.0/16"]);
        let second = second["Vpc"]["VpcId"].as_str().expect("VpcId").to_string();
        assert!(
            b.wait_for(&second, Duration::from_secs(10)).await,
            "the new VPC appears live"
        );
        let mark = b
            .client
            .execute("return window.vpclabMark;", vec![])
            .await
            .expect("js");
        assert_eq!(mark, serde_json::json!(42), "no reload happened");
        b.shot("dashboard-live-update").await;
        b.close().await;
    });
}

#[test]
fn browser_launch_flow_pem_logs_in_and_reachability_names_the_nacl_rule() {
    if !enabled("browser_launch") {
        return;
    }
    require("ssh");
    let d = TestDaemon::start();
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = &b.client;
        c.goto(&format!("{}/console/launch", d.url()))
            .await
            .expect("launch page");
        c.find(Locator::Id("key-key_name"))
            .await
            .expect("key name")
            .send_keys("browser-key")
            .await
            .expect("type");
        c.find(Locator::XPath("//button[contains(., 'Create key pair')]"))
            .await
            .expect("button")
            .click()
            .await
            .expect("click");
        let link = b
            .appear(Locator::XPath("//a[@download='browser-key.pem']"))
            .await;
        let href = link.attr("href").await.expect("href").expect("an href");
        b.shot("key-pair-created").await;
        assert!(b.source().await.contains("chmod 400 browser-key.pem"));
        use base64::Engine;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(href.split_once("base64,").expect("a data URL").1)
            .expect("base64");
        let key = d.path("browser-key.pem");
        write_private_key(&key, &String::from_utf8(pem).expect("text"));
        c.find(Locator::LinkText(
            "Continue to launch an instance with this key",
        ))
        .await
        .expect("continue")
        .click()
        .await
        .expect("click");
        b.appear(Locator::Id("launch-name"))
            .await
            .clear()
            .await
            .expect("clear");
        c.find(Locator::Id("launch-name"))
            .await
            .expect("name")
            .send_keys("web-1")
            .await
            .expect("type");
        b.shot("launch-form").await;
        c.find(Locator::XPath("//button[.='Launch instance']"))
            .await
            .expect("launch")
            .click()
            .await
            .expect("click");
        let line = b
            .appear(Locator::Id("ssh-line"))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            line.starts_with("ssh -i browser-key.pem ec2-user@ec2-"),
            "{line}"
        );
        let host = line.rsplit('@').next().expect("host").trim().to_string();
        // Wait for it to run, then log in with the downloaded key, as the page says.
        let started = Instant::now();
        loop {
            c.refresh().await.expect("reload");
            if b.source().await.contains(r#"class="badge running""#) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the instance did not start"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        b.shot("instance-page").await;
        let mut ok = false;
        for _ in 0..10 {
            let out = d.ssh(&key, "ec2-user", &host, "echo logged-in");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("logged-in") {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(ok, "OpenSSH logs in with the console's .pem");

        // Block SSH in the subnet's network ACL with the CLI; the console names the rule.
        let url = c.current_url().await.expect("url");
        let instance = url.path().rsplit('/').next().expect("id").to_string();
        let desc = d.aws(&["describe-instances", "--instance-ids", &instance]);
        let subnet = desc["Reservations"][0]["Instances"][0]["SubnetId"]
            .as_str()
            .expect("subnet")
            .to_string();
        let acls = d.aws(&[
            "describe-network-acls",
            "--filters",
            &format!("Name=association.subnet-id,Values={subnet}"),
        ]);
        let acl = acls["NetworkAcls"][0]["NetworkAclId"]
            .as_str()
            .expect("acl")
            .to_string();
        d.aws_cli_json(&[
            "ec2",
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--ingress",
            "--rule-number",
            "90",
            "--protocol",
            "tcp",
            "--port-range",
            "From=22,To=22",
            "--cidr-block",
            "0.0.0.0/0",
            "--rule-action",
            "deny",
        ]);
        c.goto(&format!("{}/console/reach", d.url()))
            .await
            .expect("reach");
        b.appear(Locator::XPath(&format!(
            "//select[@id='reach-to']/option[@value='{instance}']"
        )))
        .await
        .click()
        .await
        .expect("pick");
        c.find(Locator::XPath("//button[.='Analyse path']"))
            .await
            .expect("analyse")
            .click()
            .await
            .expect("click");
        let verdict = format!("blocked by network ACL {acl} inbound rule 90");
        assert!(
            b.wait_for(&verdict, Duration::from_secs(20)).await,
            "{verdict}; the page: {}",
            b.source().await
        );
        b.shot("reachability-nacl").await;
        c.find(Locator::Css("a[href$='#rule-in-90']"))
            .await
            .expect("a link to the rule")
            .click()
            .await
            .expect("follow");
        b.appear(Locator::Id("rule-in-90")).await;
        let there = c.current_url().await.expect("url");
        assert_eq!(there.fragment(), Some("rule-in-90"));
        b.shot("nacl-rule").await;
        b.close().await;
    });
}

/// S3 CORS in a real browser: a page on one bucket's website endpoint fetches an
/// object from another bucket's REST endpoint (virtual-hosted, `*.localhost`, which
/// Chromium resolves to loopback itself), with a custom header so that the browser
/// sends a preflight first. Without CORS on the data bucket the browser blocks the
/// answer; after `aws s3api put-bucket-cors` allowing the website's origin, the page
/// shows the object's text (S3 User Guide, "Using cross-origin resource sharing
/// (CORS)", scenario 1).
#[test]
fn browser_website_fetches_another_bucket_once_its_cors_allows_the_origin() {
    if !enabled("browser_cors") {
        return;
    }
    let d = TestDaemon::start();
    let port = d.url().rsplit(':').next().unwrap_or("").to_string();
    let s3 = |args: &[&str]| {
        let out = d.aws_cli(&[&["--region", "us-east-1"], args].concat());
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let public_read = |bucket: &str| {
        s3(&["s3api", "delete-public-access-block", "--bucket", bucket]);
        s3(&[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            bucket,
            "--policy",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
            ),
        ]);
    };
    let data_url = format!("http://shared-data.s3.localhost:{port}/message.txt");
    let page = format!(
        r#"<!doctype html><html><body><p id="out">loading</p><script>
fetch("{data_url}", {{ headers: {{ "X-Requested-By": "page" }} }})
  .then(r => r.text())
  .then(t => {{ document.getElementById("out").textContent = "got: " + t; }})
  .catch(e => {{ document.getElementById("out").textContent = "fetch failed: " + e; }});
</script></body></html>"#
    );
    let index = d.dir().join("index.html");
    std::fs::write(&index, page).expect("write the page");
    let message = d.dir().join("message.txt");
    std::fs::write(&message, "hello from the data bucket").expect("write the object");
    s3(&["s3", "mb", "s3://shared-page"]);
    s3(&["s3", "mb", "s3://shared-data"]);
    s3(&[
        "s3",
        "cp",
        index.to_str().expect("utf-8 path"),
        "s3://shared-page/index.html",
        "--content-type",
        "text/html",
    ]);
    s3(&[
        "s3",
        "cp",
        message.to_str().expect("utf-8 path"),
        "s3://shared-data/message.txt",
    ]);
    s3(&[
        "s3",
        "website",
        "s3://shared-page",
        "--index-document",
        "index.html",
    ]);
    public_read("shared-page");
    public_read("shared-data");
    let origin = format!("http://shared-page.s3-website-us-east-1.localhost:{port}");
    runtime().block_on(async {
        let b = Browser::start().await;
        let c = &b.client;
        c.goto(&format!("{origin}/")).await.expect("the website");
        assert!(
            b.wait_for("fetch failed", Duration::from_secs(20)).await,
            "without CORS the browser must block the answer: {}",
            b.source().await
        );
        assert!(!b.source().await.contains("hello from the data bucket"));
        b.shot("cors-blocked").await;

        let rules = format!(
            r#"{{"CORSRules":[{{"AllowedOrigins":["{origin}"],"AllowedMethods":["GET"],"AllowedHeaders":["*"],"MaxAgeSeconds":60}}]}}"#
        );
        s3(&[
            "s3api",
            "put-bucket-cors",
            "--bucket",
            "shared-data",
            "--cors-configuration",
            &rules,
        ]);
        c.refresh().await.expect("reload");
        assert!(
            b.wait_for("got: hello from the data bucket", Duration::from_secs(20))
                .await,
            "with CORS the page must show the object: {}",
            b.source().await
        );
        b.shot("cors-allowed").await;
        b.close().await;
    });
}

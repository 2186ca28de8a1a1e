//! The service router: which AWS service a request is for, and who answers it.
//!
//! Every request on the API port names its service in one of the ways AWS clients do,
//! tried in this order:
//!
//! 1. the SigV4 credential scope (`Credential=AKID/20260101/us-east-1/ecs/aws4_request`
//!    in `Authorization`, or `X-Amz-Credential` of a presigned URL): what the SDKs and
//!    the CLI always send;
//! 2. the `X-Amz-Target` header of the JSON protocols (`DynamoDB_20120810.PutItem`);
//! 3. the path of a REST API (`/2013-04-01/…` is Route 53);
//! 4. the `Host` header, when it names a service endpoint (`logs.us-east-1.amazonaws.com`,
//!    as requests through the endpoints inside a world do);
//! 5. an unsigned request whose first path segment is a bucket name and which names
//!    no `Action` is S3's, in path style (`curl localhost:PORT/BUCKET/KEY`), as is a
//!    CORS preflight (`OPTIONS`);
//! 6. otherwise the EC2 Query endpoint at `/`, as anonymous tools expect.
//!
//! [`SERVICES`] is the one table: a service vpclab emulates has a handler there; every
//! other service is listed with its protocol, so a learner who tries it gets that
//! protocol's error shape, which the CLI prints as one line naming the service:
//! `An error occurred (NotImplemented) when calling the ListKeys operation: vpclab
//! does not emulate AWS KMS yet (see docs/fidelity.md)`. The status is 501, which
//! the SDKs do not retry.
//!
//! # Adding a service
//!
//! Write its model in `model/<service>/` and its wire protocol in `api/<service>/`,
//! then give its row in [`SERVICES`] a handler.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::AppState;
use super::xml::escape;

/// The wire protocol of a service (botocore's `metadata.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's Query dialect (`<Response><Errors><Error>…`).
    Ec2,
    /// AWS Query (`<ErrorResponse><Error>…`): IAM, STS, SNS, CloudWatch, ELB, Auto Scaling.
    Query,
    /// REST with XML bodies: S3, Route 53, CloudFront.
    RestXml,
    /// REST with JSON bodies: Lambda, API Gateway.
    RestJson,
    /// JSON 1.0/1.1 with `X-Amz-Target`: DynamoDB, ECS, ECR, CloudWatch Logs, SSM.
    Json,
}

/// Answers one request of a service.
pub type Handler = fn(AppState, Request) -> Pin<Box<dyn Future<Output = Response> + Send>>;

/// One AWS service as the router knows it.
pub struct Service {
    /// The SigV4 signing name (`ec2`, `route53`, `ecs` …).
    pub signing_name: &'static str,
    /// The name a learner knows it by.
    pub title: &'static str,
    pub protocol: Protocol,
    /// `X-Amz-Target` prefixes (before the `.`) of JSON-protocol services.
    pub targets: &'static [&'static str],
    /// `None`: not emulated (yet).
    pub handler: Option<Handler>,
}

const fn svc(
    signing_name: &'static str,
    title: &'static str,
    protocol: Protocol,
    targets: &'static [&'static str],
) -> Service {
    Service {
        signing_name,
        title,
        protocol,
        targets,
        handler: None,
    }
}

fn ec2(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::ec2_endpoint(state, req))
}

fn route53(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::route53::endpoint(state, req))
}

fn s3(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::s3::endpoint(state, req))
}

fn dynamodb(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::dynamodb::endpoint(state, req))
}

fn acm(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::json::endpoint(state, req, &super::acm::SERVICE))
}

fn ssm(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::json::endpoint(state, req, &super::ssm::SERVICE))
}

fn ecs(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::json::endpoint(state, req, &super::ecs::SERVICE))
}

fn ecr(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::json::endpoint(state, req, &super::ecr::SERVICE))
}

fn logs(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::json::endpoint(state, req, &super::logs::SERVICE))
}

fn iam(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::iam::endpoint(state, req, super::iam::Svc::Iam))
}

fn sts(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::iam::endpoint(state, req, super::iam::Svc::Sts))
}

fn lambda(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::lambda::endpoint(state, req))
}

fn cloudwatch(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::cloudwatch::endpoint(state, req))
}

fn elbv2(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::elb::endpoint(state, req))
}

fn autoscaling(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::autoscaling::endpoint(state, req))
}

fn sns(state: AppState, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(super::sns::endpoint(state, req))
}

/// Every service the router knows, emulated or not.
pub static SERVICES: &[Service] = &[
    Service {
        handler: Some(ec2),
        ..svc("ec2", "Amazon EC2", Protocol::Ec2, &[])
    },
    Service {
        handler: Some(route53),
        ..svc("route53", "Amazon Route 53", Protocol::RestXml, &[])
    },
    Service {
        handler: Some(s3),
        ..svc("s3", "Amazon S3", Protocol::RestXml, &[])
    },
    Service {
        handler: Some(iam),
        ..svc("iam", "AWS IAM", Protocol::Query, &[])
    },
    Service {
        handler: Some(sts),
        ..svc("sts", "AWS STS", Protocol::Query, &[])
    },
    Service {
        handler: Some(dynamodb),
        ..svc(
            "dynamodb",
            "Amazon DynamoDB",
            Protocol::Json,
            &["DynamoDB_20120810"],
        )
    },
    Service {
        handler: Some(ecs),
        ..svc(
            "ecs",
            "Amazon ECS",
            Protocol::Json,
            &["AmazonEC2ContainerServiceV20141113"],
        )
    },
    Service {
        handler: Some(ecr),
        ..svc(
            "ecr",
            "Amazon ECR",
            Protocol::Json,
            &["AmazonEC2ContainerRegistry_V20150921"],
        )
    },
    Service {
        handler: Some(lambda),
        ..svc("lambda", "AWS Lambda", Protocol::RestJson, &[])
    },
    Service {
        handler: Some(logs),
        ..svc(
            "logs",
            "Amazon CloudWatch Logs",
            Protocol::Json,
            &["Logs_20140328"],
        )
    },
    Service {
        handler: Some(cloudwatch),
        ..svc("monitoring", "Amazon CloudWatch", Protocol::Query, &[])
    },
    Service {
        handler: Some(sns),
        ..svc("sns", "Amazon SNS", Protocol::Query, &[])
    },
    svc("sqs", "Amazon SQS", Protocol::Json, &["AmazonSQS"]),
    Service {
        handler: Some(elbv2),
        ..svc(
            "elasticloadbalancing",
            "Elastic Load Balancing",
            Protocol::Query,
            &[],
        )
    },
    Service {
        handler: Some(autoscaling),
        ..svc(
            "autoscaling",
            "Amazon EC2 Auto Scaling",
            Protocol::Query,
            &[],
        )
    },
    Service {
        handler: Some(ssm),
        ..svc("ssm", "AWS Systems Manager", Protocol::Json, &["AmazonSSM"])
    },
    svc(
        "secretsmanager",
        "AWS Secrets Manager",
        Protocol::Json,
        &["secretsmanager"],
    ),
    svc("kms", "AWS KMS", Protocol::Json, &["TrentService"]),
    svc(
        "events",
        "Amazon EventBridge",
        Protocol::Json,
        &["AWSEvents"],
    ),
    svc("cloudformation", "AWS CloudFormation", Protocol::Query, &[]),
    svc("rds", "Amazon RDS", Protocol::Query, &[]),
    svc(
        "elasticbeanstalk",
        "AWS Elastic Beanstalk",
        Protocol::Query,
        &[],
    ),
    svc("cloudfront", "Amazon CloudFront", Protocol::RestXml, &[]),
    svc("apigateway", "Amazon API Gateway", Protocol::RestJson, &[]),
    svc("eks", "Amazon EKS", Protocol::RestJson, &[]),
    Service {
        handler: Some(acm),
        ..svc(
            "acm",
            "AWS Certificate Manager",
            Protocol::Json,
            &["CertificateManager"],
        )
    },
];

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A service of [`SERVICES`].
    Known(&'static str),
    /// A signing name vpclab has never heard of, with the protocol its request looks like.
    Unknown(String, Protocol),
}

/// The signing name of the SigV4 credential scope, from `Authorization` or a presigned
/// URL's `X-Amz-Credential`.
fn scope_service(req: &Request) -> Option<String> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let cred = v.split("Credential=").nth(1)?;
            let cred = cred.split([',', ' ']).next()?;
            Some(cred.to_string())
        });
    let from_query = || {
        let q = req.uri().query()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.into_owned())
    };
    let cred = from_header.or_else(from_query)?;
    // AKID/date/region/service/aws4_request
    let service = cred.split('/').nth(3)?;
    (!service.is_empty()).then(|| service.to_ascii_lowercase())
}

/// Decides which service a request is for.
pub fn route(req: &Request) -> Route {
    // Virtual-hosted and website hosts are S3's whatever the request carries (website
    // GETs are anonymous).
    if super::s3::is_s3_host(req.headers()) || super::s3::is_sigv2_presigned(req.uri().query()) {
        return Route::Known("s3");
    }
    // A function URL's host (`<id>.lambda-url.<region>.on.aws`) is Lambda's.
    if super::lambda::url::is_url_request(req.headers()) {
        return Route::Known("lambda");
    }
    if let Some(name) = scope_service(req) {
        return match SERVICES.iter().find(|s| s.signing_name == name) {
            Some(s) => Route::Known(s.signing_name),
            None => {
                let protocol = guess_protocol(req);
                Route::Unknown(name, protocol)
            }
        };
    }
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let prefix = target.split('.').next().unwrap_or(target);
        if let Some(s) = SERVICES.iter().find(|s| s.targets.contains(&prefix)) {
            return Route::Known(s.signing_name);
        }
        return Route::Unknown(prefix.to_string(), Protocol::Json);
    }
    let path = req.uri().path();
    if path == "/2013-04-01" || path.starts_with("/2013-04-01/") {
        return Route::Known("route53");
    }
    if path.starts_with("/2015-03-31/functions") {
        return Route::Known("lambda");
    }
    // An unsigned request to a service's endpoint name inside a world
    // (`curl http://logs.us-east-1.amazonaws.com/`) is for that service.
    if let Some(service) = endpoint_host(req)
        && let Some(s) = SERVICES.iter().find(|s| s.signing_name == service)
    {
        return Route::Known(s.signing_name);
    }
    // A CORS preflight carries no credentials and no service name; of the services on
    // the shared endpoint only S3 answers one (`OPTIONS /BUCKET/KEY`, path style).
    if req.method() == axum::http::Method::OPTIONS {
        return Route::Known("s3");
    }
    if is_anonymous_path_style_s3(req) {
        return Route::Known("s3");
    }
    Route::Known("ec2")
}

/// Whether an unsigned request that named no service is S3's in path style
/// (`GET /BUCKET/KEY`: a browser or curl reading an object a bucket policy makes
/// public). The Query APIs (EC2, and IAM, STS, SNS … when unsigned) are answered only
/// at `/` and always name an `Action`, which no S3 request carries; their form bodies
/// (`application/x-www-form-urlencoded`, unread here) come with a POST. Anything else
/// whose first path segment is a valid bucket name ("Bucket naming rules") goes to S3,
/// which answers it as S3 does: `NoSuchBucket`, or `AccessDenied` for a private object.
/// The console's and vpclab's own paths are routes of their own and never get here.
fn is_anonymous_path_style_s3(req: &Request) -> bool {
    let Some(first) = req
        .uri()
        .path()
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
    else {
        return false;
    };
    if crate::model::s3::bucket_name_problem(first).is_some() {
        return false;
    }
    let names_an_action = req
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "Action"));
    let query_form = req.method() == axum::http::Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    !names_an_action && !query_form
}

/// The signing name of the service whose endpoint the `Host` header names.
fn endpoint_host(req: &Request) -> Option<&'static str> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    let (service, _) = crate::dns::public_names::endpoint_service(&name.to_ascii_lowercase())?;
    Some(match service {
        "api.ecr" => "ecr",
        other => other,
    })
}

/// The protocol an unknown service's request looks like.
fn guess_protocol(req: &Request) -> Protocol {
    if req.headers().contains_key("x-amz-target") {
        return Protocol::Json;
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        Protocol::Query
    } else {
        Protocol::RestXml
    }
}

/// The router's entry point: every request not served by a more specific route.
pub async fn dispatch(state: AppState, req: Request) -> Response {
    match route(&req) {
        Route::Known(name) => {
            let service = SERVICES
                .iter()
                .find(|s| s.signing_name == name)
                .expect("route() names only services of the table");
            match service.handler {
                Some(handler) => handler(state, req).await,
                None => unemulated(&state, service.title, service.protocol),
            }
        }
        Route::Unknown(name, protocol) => {
            unemulated(&state, &format!("the AWS service {name:?}"), protocol)
        }
    }
}

/// The answer for a service vpclab does not emulate, in its protocol's error shape.
pub fn unemulated(state: &AppState, title: &str, protocol: Protocol) -> Response {
    let code = "NotImplemented";
    let message = format!("vpclab does not emulate {title} yet (see docs/fidelity.md)");
    let id = state.request_id();
    let (content_type, body) = match protocol {
        Protocol::Ec2 => (
            "text/xml;charset=UTF-8",
            super::ec2_error_body(&crate::model::ApiError::new(code, message.clone()), &id),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                escape(&message)
            ),
        ),
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>{id}</RequestId></Error>",
                escape(&message)
            ),
        ),
        Protocol::RestJson | Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        ),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::NOT_IMPLEMENTED;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-amzn-ErrorType", HeaderValue::from_static(code));
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-amzn-RequestId", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>, target: Option<&str>, path: &str) -> Request {
        let mut b = axum::http::Request::builder().uri(path).method("POST");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        if let Some(t) = target {
            b = b.header("x-amz-target", t);
        }
        b.body(Body::empty()).unwrap()
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
        )
    }

    #[test]
    fn the_credential_scope_picks_the_service() {
        assert_eq!(
            route(&req(Some(&auth("ec2")), None, "/")),
            Route::Known("ec2")
        );
        assert_eq!(
            route(&req(Some(&auth("route53")), None, "/2013-04-01/hostedzone")),
            Route::Known("route53")
        );
        assert_eq!(
            route(&req(Some(&auth("iam")), None, "/")),
            Route::Known("iam")
        );
        assert_eq!(
            route(&req(
                Some(&auth("ecs")),
                Some("AmazonEC2ContainerServiceV20141113.CreateCluster"),
                "/"
            )),
            Route::Known("ecs")
        );
    }

    #[test]
    fn without_a_signature_the_target_then_the_path_decide() {
        assert_eq!(
            route(&req(None, Some("DynamoDB_20120810.ListTables"), "/")),
            Route::Known("dynamodb")
        );
        assert_eq!(
            route(&req(None, None, "/2013-04-01/hostedzone")),
            Route::Known("route53")
        );
        assert_eq!(route(&req(None, None, "/")), Route::Known("ec2"));
        // Inside a world, the endpoint's name says which service an unsigned request
        // is for.
        let mut r = req(None, None, "/");
        r.headers_mut().insert(
            header::HOST,
            HeaderValue::from_static("logs.eu-west-1.amazonaws.com"),
        );
        assert_eq!(route(&r), Route::Known("logs"));
        r.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("www.example.com"));
        assert_eq!(route(&r), Route::Known("ec2"));
    }

    /// A path-style CORS preflight (`OPTIONS /BUCKET/KEY`, unsigned) is S3's.
    #[test]
    fn an_unsigned_options_request_is_an_s3_preflight() {
        let mut r = req(None, None, "/bucket/key");
        *r.method_mut() = axum::http::Method::OPTIONS;
        assert_eq!(route(&r), Route::Known("s3"));
    }

    /// Issue s15: an unsigned path-style GET or HEAD (`curl localhost:PORT/BUCKET/KEY`)
    /// is S3's; the Query APIs keep `/` and every request naming an `Action`.
    #[test]
    fn an_unsigned_path_style_request_is_s3s_unless_it_is_a_query_api_call() {
        for (method, path) in [
            ("GET", "/public-site/index.html"),
            ("HEAD", "/public-site/a/b.txt"),
            ("GET", "/public-site"),
            ("GET", "/public-site/"),
            ("PUT", "/public-site/k"),
            ("GET", "/my.bucket-1/k?versionId=x"),
        ] {
            let mut r = req(None, None, path);
            *r.method_mut() = method.parse().unwrap();
            assert_eq!(route(&r), Route::Known("s3"), "{method} {path}");
        }
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/?Action=DescribeRegions&Version=2016-11-15"),
            ("GET", "/public-site/k?Action=DescribeRegions"),
            ("GET", "/Not_A_Bucket/k"),
            ("GET", "/ab/k"),
            ("GET", "/_vpclab/whoami"),
        ] {
            let mut r = req(None, None, path);
            *r.method_mut() = method.parse().unwrap();
            assert_eq!(route(&r), Route::Known("ec2"), "{method} {path}");
        }
        let mut form = req(None, None, "/some-bucket");
        form.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(route(&form), Route::Known("ec2"));
        // A signed request still goes where its credential scope says.
        assert_eq!(
            route(&req(Some(&auth("iam")), None, "/some-bucket/k")),
            Route::Known("iam")
        );
    }

    #[test]
    fn an_unheard_of_service_is_named_with_its_protocol() {
        let mut r = req(Some(&auth("quantumledger")), None, "/");
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            route(&r),
            Route::Unknown("quantumledger".into(), Protocol::Query)
        );
    }

    /// The router answers without a socket: an unemulated service gets its own
    /// protocol's error shape naming it; EC2 still answers at `/`.
    #[tokio::test]
    async fn unemulated_services_answer_in_their_protocol_and_ec2_still_works() {
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let control = crate::model::Control::open(&crate::model::store::StorePaths {
            dir: dir.path().to_path_buf(),
            db: dir.path().join("t.db"),
            lock: dir.path().join("t.lock"),
        })
        .unwrap();
        let state = AppState::new(
            std::sync::Arc::new(std::sync::Mutex::new(control)),
            crate::model::system_clock(),
        );
        let app = super::super::router(state);
        let send = |r: Request| {
            let app = app.clone();
            async move {
                let resp = app.oneshot(r).await.unwrap();
                let status = resp.status();
                let ctype = resp.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .to_string();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, ctype, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let (status, ctype, body) =
            send(req(Some(&auth("kms")), Some("TrentService.ListKeys"), "/")).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        assert!(ctype.contains("json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["__type"], "NotImplemented");
        assert!(v["message"].as_str().unwrap().contains("AWS KMS"));
        let (status, _, body) = send(req(Some(&auth("cloudformation")), None, "/")).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        assert!(
            body.contains("<ErrorResponse>") && body.contains("AWS CloudFormation"),
            "{body}"
        );
        let (status, _, body) = send(req(Some(&auth("cloudfront")), None, "/")).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        assert!(
            body.contains("<Error><Code>NotImplemented</Code>")
                && body.contains("Amazon CloudFront")
        );
        let mut ec2 = axum::http::Request::builder()
            .uri("/?Action=DescribeRegions&Version=2016-11-15")
            .method("GET")
            .header(header::AUTHORIZATION, auth("ec2"))
            .body(Body::empty())
            .unwrap();
        ec2.headers_mut()
            .insert("x-amz-date", HeaderValue::from_static("20260101T000000Z"));
        let (status, _, body) = send(ec2).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("DescribeRegionsResponse"));
    }

    #[test]
    fn every_signing_name_is_listed_once() {
        let mut names: Vec<_> = SERVICES.iter().map(|s| s.signing_name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}

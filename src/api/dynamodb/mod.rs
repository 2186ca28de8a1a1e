//! Amazon DynamoDB (AWS JSON 1.0, `X-Amz-Target: DynamoDB_20120810.<Operation>`), served
//! by the embeddable engine `dynoxide-rs`: tables, items, condition/update/key-condition/
//! filter/projection expressions, Query/Scan paging, batch and transact operations,
//! GSIs/LSIs, TTL and PartiQL are its work, checked by its own conformance suite against
//! DynamoDB. This module authenticates the request (the one SigV4 door), picks the
//! account's database, turns the JSON body into the engine's request type and its answer
//! or error back into DynamoDB's JSON.
//!
//! Each account has its own SQLite database, `dynamodb/<account>.db` in the state
//! directory: the engine commits each write before it answers, so items are durable
//! like the rest of the state, but they live beside `state.db`, not in it (no change
//! events; docs/fidelity.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use dynoxide::Database;
use dynoxide::actions as a;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AppState;

/// DynamoDB's largest request: BatchWriteItem's 16 MB.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// How often expired TTL items are swept (DynamoDB deletes them "within a few days";
/// vpclab within seconds, which is what a lab can wait for).
const TTL_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The databases of every account, opened on first use.
pub struct Tables {
    dir: PathBuf,
    open: Mutex<BTreeMap<String, (Database, Instant)>>,
}

impl Tables {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Tables> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Tables {
            dir,
            open: Mutex::new(BTreeMap::new()),
        })
    }

    /// The account's database (sweeping due TTL deletions now and then).
    fn database(&self, account: &str) -> Result<Database, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((db, swept)) = open.get_mut(account) {
            if swept.elapsed() >= TTL_SWEEP_EVERY {
                *swept = Instant::now();
                if let Err(e) = db.sweep_ttl() {
                    tracing::warn!(error = %e, "DynamoDB TTL sweep failed");
                }
            }
            return Ok(db.clone());
        }
        // Account ids are 12 digits (strict mode's key file is validated), so the name
        // is a plain file name.
        let path = self.dir.join(format!("{account}.db"));
        let db = Database::new(&path.to_string_lossy()).map_err(|e| e.to_string())?;
        // dynoxide opens with SQLite's default `synchronous=FULL`, an fsync per write.
        // Its "normal" pragmas are `synchronous=NORMAL` with SQLite's default cache: the
        // guarantee of vpclab's own store (a write survives SIGKILL, not an OS crash).
        db.disable_bulk_loading().map_err(|e| e.to_string())?;
        open.insert(account.to_string(), (db.clone(), Instant::now()));
        Ok(db)
    }
}

fn parse<T: DeserializeOwned>(body: &str) -> dynoxide::Result<T> {
    serde_json::from_str(body)
        .map_err(|e| dynoxide::DynoxideError::SerializationException(e.to_string()))
}

fn render<T: Serialize>(r: dynoxide::Result<T>) -> dynoxide::Result<String> {
    let v = r?;
    serde_json::to_string(&v)
        .map_err(|e| dynoxide::DynoxideError::InternalServerError(e.to_string()))
}

/// Runs one operation on the engine. `None`: an operation DynamoDB does not have.
fn run(db: &Database, op: &str, body: &str) -> Option<dynoxide::Result<String>> {
    macro_rules! ops {
        ($($name:literal => $method:ident ($module:ident :: $req:ident)),* $(,)?) => {
            match op {
                $($name => Some(parse::<a::$module::$req>(body).and_then(|r| render(db.$method(r)))),)*
                _ => None,
            }
        };
    }
    ops! {
        "CreateTable" => create_table(create_table::CreateTableRequest),
        "DeleteTable" => delete_table(delete_table::DeleteTableRequest),
        "DescribeTable" => describe_table(describe_table::DescribeTableRequest),
        "ListTables" => list_tables(list_tables::ListTablesRequest),
        "UpdateTable" => update_table(update_table::UpdateTableRequest),
        "PutItem" => put_item(put_item::PutItemRequest),
        "GetItem" => get_item(get_item::GetItemRequest),
        "DeleteItem" => delete_item(delete_item::DeleteItemRequest),
        "UpdateItem" => update_item(update_item::UpdateItemRequest),
        "Query" => query(query::QueryRequest),
        "Scan" => scan(scan::ScanRequest),
        "BatchGetItem" => batch_get_item(batch_get_item::BatchGetItemRequest),
        "BatchWriteItem" => batch_write_item(batch_write_item::BatchWriteItemRequest),
        "TransactWriteItems" => transact_write_items(transact_write_items::TransactWriteItemsRequest),
        "TransactGetItems" => transact_get_items(transact_get_items::TransactGetItemsRequest),
        "UpdateTimeToLive" => update_time_to_live(update_time_to_live::UpdateTimeToLiveRequest),
        "DescribeTimeToLive" => describe_time_to_live(describe_time_to_live::DescribeTimeToLiveRequest),
        "TagResource" => tag_resource(tag_resource::TagResourceRequest),
        "UntagResource" => untag_resource(untag_resource::UntagResourceRequest),
        "ListTagsOfResource" => list_tags_of_resource(list_tags_of_resource::ListTagsOfResourceRequest),
        "ExecuteStatement" => execute_statement(execute_statement::ExecuteStatementRequest),
        "BatchExecuteStatement" => batch_execute_statement(batch_execute_statement::BatchExecuteStatementRequest),
        "ExecuteTransaction" => execute_transaction(execute_transaction::ExecuteTransactionRequest),
    }
}

fn respond(status: u16, body: String, error: Option<&str>, request_id: &str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Some(code) = error.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert("x-amzn-ErrorType", code);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

fn error(code: &str, message: &str, status: u16, request_id: &str) -> Response {
    let body = serde_json::json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message });
    respond(status, body.to_string(), Some(code), request_id)
}

/// The router's entry point for DynamoDB requests.
pub async fn endpoint(state: AppState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = state.request_id();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST).await else {
        return error(
            "ValidationException",
            "Request size exceeded 16 MB",
            413,
            &request_id,
        );
    };
    let signed = super::signed_request(&parts);
    let identity = match state.authenticate(&signed, &bytes) {
        Ok(i) => i,
        Err(e) => {
            let code = if e.code == "AuthFailure" {
                "UnrecognizedClientException"
            } else {
                &e.code
            };
            return error(code, &e.message, e.status.max(400), &request_id);
        }
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix("DynamoDB_20120810.") else {
        return error("UnknownOperationException", "", 400, &request_id);
    };
    let Some(tables) = state.dynamodb.clone() else {
        return error(
            "InternalServerError",
            "This vpclab server has no DynamoDB store.",
            500,
            &request_id,
        );
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error("SerializationException", "", 400, &request_id);
    };
    let text = if text.trim().is_empty() { "{}" } else { text };
    // IAM (when enforced): `dynamodb:<Op>` on the table the call names
    // (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`), else `*`.
    let table = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("TableName")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        });
    let resource = table.map_or_else(
        || "*".to_string(),
        |t| {
            format!(
                "arn:aws:dynamodb:{}:{}:table/{t}",
                identity.credential.region, identity.account
            )
        },
    );
    let denied = {
        let control = state.lock();
        state
            .authorize(
                &control,
                &identity,
                &format!("dynamodb:{op}"),
                &resource,
                &signed,
            )
            .err()
    };
    if let Some(d) = denied {
        let e = d.json();
        return error(&e.code, &e.message, e.status.max(400), &request_id);
    }
    let db = match tables.database(&identity.account) {
        Ok(db) => db,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the DynamoDB database");
            return error(
                "InternalServerError",
                "Internal server error",
                500,
                &request_id,
            );
        }
    };
    // SQLite work: off the async workers.
    let op_owned = op.to_string();
    let text = text.to_string();
    let result = tokio::task::spawn_blocking(move || run(&db, &op_owned, &text)).await;
    match result {
        Ok(Some(Ok(json))) => respond(200, json, None, &request_id),
        Ok(Some(Err(e))) => {
            let code = e.error_type().rsplit('#').next().unwrap_or("").to_string();
            respond(e.status_code(), e.to_json(), Some(&code), &request_id)
        }
        Ok(None) => error(
            "UnknownOperationException",
            &format!("vpclab does not implement the DynamoDB operation {op} (see docs/api.md)"),
            400,
            &request_id,
        ),
        Err(_) => error(
            "InternalServerError",
            "Internal server error",
            500,
            &request_id,
        ),
    }
}

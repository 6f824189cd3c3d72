//! Admin routes under `/__admin` (never journaled): journal, faults, records, reset,
//! credentials.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::credentials;
use super::response::MockResponse;
use super::{Fault, JournalEntry, MockShared, Vendor};

/// `{"error": ...}` with an optional message.
fn admin_error(status: StatusCode, error: &str, message: Option<&str>) -> MockResponse {
    match message {
        Some(message) => MockResponse::error_message(status, error, message),
        None => MockResponse::json(status, &json!({ "error": error })),
    }
}

/// 405 naming the allowed methods.
fn method_not_allowed(allowed: &str) -> MockResponse {
    admin_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", None)
        .with_header("allow", allowed)
}

/// Handles a request under `/__admin`.
pub(super) fn handle(
    shared: &MockShared,
    method: &Method,
    path: &str,
    body: &[u8],
) -> MockResponse {
    let route = path.strip_prefix("/__admin").unwrap_or_default();
    match route {
        "/journal" => match *method {
            Method::GET => {
                MockResponse::json(StatusCode::OK, &journal_json(&shared.lock().journal))
            }
            Method::DELETE => {
                shared.lock().journal.clear();
                MockResponse::empty(StatusCode::NO_CONTENT)
            }
            _ => method_not_allowed("GET, DELETE"),
        },
        "/faults" => match *method {
            Method::POST => match serde_json::from_slice::<Fault>(body) {
                Ok(fault) => {
                    let echoed = serde_json::to_value(&fault).unwrap_or(Value::Null);
                    shared.lock().faults.push(fault);
                    MockResponse::json(StatusCode::CREATED, &echoed)
                }
                Err(error) => admin_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    Some(&format!("Invalid fault: {error}")),
                ),
            },
            Method::DELETE => {
                shared.lock().faults.clear();
                MockResponse::empty(StatusCode::NO_CONTENT)
            }
            _ => method_not_allowed("POST, DELETE"),
        },
        "/reset" => match *method {
            Method::POST => {
                shared.lock().reset();
                MockResponse::empty(StatusCode::NO_CONTENT)
            }
            _ => method_not_allowed("POST"),
        },
        "/credentials" => match *method {
            Method::GET => MockResponse::json(StatusCode::OK, &credentials_json()),
            _ => method_not_allowed("GET"),
        },
        _ => match route
            .strip_prefix("/records/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((vendor, id)) if !id.is_empty() && !id.contains('/') => match *method {
                Method::GET => {
                    let record =
                        Vendor::parse(vendor).and_then(|vendor| shared.lock().record(vendor, id));
                    match record {
                        Some(record) => MockResponse::json(StatusCode::OK, &record),
                        None => admin_error(StatusCode::NOT_FOUND, "Not Found", None),
                    }
                }
                _ => method_not_allowed("GET"),
            },
            _ => admin_error(StatusCode::NOT_FOUND, "Not Found", None),
        },
    }
}

/// The journal as `[{"method","path","query","headers":[[name,value]],"body","gzipped"}]`,
/// the body decoded and shown as (lossy UTF-8) text.
fn journal_json(journal: &[JournalEntry]) -> Value {
    Value::Array(
        journal
            .iter()
            .map(|entry| {
                json!({
                    "method": entry.method,
                    "path": entry.path,
                    "query": entry.query,
                    "headers": entry
                        .headers
                        .iter()
                        .map(|(name, value)| json!([name, value]))
                        .collect::<Vec<_>>(),
                    "body": String::from_utf8_lossy(&entry.decoded_body()),
                    "gzipped": entry.is_gzipped(),
                })
            })
            .collect(),
    )
}

/// The credential constants, keyed by their names.
fn credentials_json() -> Value {
    json!({
        "BILLINGPLATFORM_USERNAME": credentials::BILLINGPLATFORM_USERNAME,
        "BILLINGPLATFORM_PASSWORD": credentials::BILLINGPLATFORM_PASSWORD,
        "BILLINGPLATFORM_SESSION_ID": credentials::BILLINGPLATFORM_SESSION_ID,
        "ZUORA_CLIENT_ID": credentials::ZUORA_CLIENT_ID,
        "ZUORA_CLIENT_SECRET": credentials::ZUORA_CLIENT_SECRET,
        "ZUORA_TOKEN": credentials::ZUORA_TOKEN,
        "ELEVATE_BRAND": credentials::ELEVATE_BRAND,
        "ELEVATE_USERNAME": credentials::ELEVATE_USERNAME,
        "ELEVATE_PASSWORD": credentials::ELEVATE_PASSWORD,
        "ELEVATE_TOKEN": credentials::ELEVATE_TOKEN,
        "REBILLY_API_KEY": credentials::REBILLY_API_KEY,
        "REBILLY_READONLY_API_KEY": credentials::REBILLY_READONLY_API_KEY,
        "REBILLY_JWT": credentials::REBILLY_JWT,
    })
}

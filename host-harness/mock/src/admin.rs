//! Admin routes under `/__admin` (never journaled): journal, faults, limits, records,
//! reset, credentials.

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
            Method::POST => match reset_options(body) {
                Ok(options) => {
                    let mut state = shared.lock();
                    if let Some(seed) = options.fault_seed {
                        state.set_fault_seed(seed);
                    }
                    state.reset();
                    MockResponse::empty(StatusCode::NO_CONTENT)
                }
                Err(error) => admin_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    Some(&format!("Invalid reset options: {error}")),
                ),
            },
            _ => method_not_allowed("POST"),
        },
        "/limits" => match *method {
            Method::GET => MockResponse::json(StatusCode::OK, &shared.limits().to_json()),
            Method::PUT => match set_limits(shared, body) {
                Ok(()) => MockResponse::json(StatusCode::OK, &shared.limits().to_json()),
                Err(message) => admin_error(StatusCode::BAD_REQUEST, "Bad Request", Some(&message)),
            },
            _ => method_not_allowed("GET, PUT"),
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
                Method::PUT => {
                    let Some(vendor) = Vendor::parse(vendor) else {
                        return admin_error(StatusCode::NOT_FOUND, "Not Found", None);
                    };
                    let stored = serde_json::from_slice::<Value>(body)
                        .map_err(|error| format!("Invalid record: {error}"))
                        .and_then(|record| shared.lock().put_record(vendor, id, record));
                    match stored {
                        Ok(()) => MockResponse::empty(StatusCode::NO_CONTENT),
                        Err(message) => {
                            admin_error(StatusCode::BAD_REQUEST, "Bad Request", Some(&message))
                        }
                    }
                }
                _ => method_not_allowed("GET, PUT"),
            },
            _ => admin_error(StatusCode::NOT_FOUND, "Not Found", None),
        },
    }
}

/// The body of `PUT /__admin/limits`: `{"rates": {"zuora": "50/s", "rebilly": null},
/// "latencyMs": 20}`. A vendor left out keeps its limit, `null` lifts it; `latencyMs`
/// left out keeps the latency.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct LimitsUpdate {
    rates: std::collections::BTreeMap<String, Option<String>>,
    latency_ms: Option<u64>,
}

/// Applies a `PUT /__admin/limits` body, all of it or (on an error naming the field)
/// none of it.
fn set_limits(shared: &MockShared, body: &[u8]) -> Result<(), String> {
    let update: LimitsUpdate =
        serde_json::from_slice(body).map_err(|e| format!("Invalid limits: {e}"))?;
    let mut rates = Vec::new();
    for (vendor, rate) in update.rates {
        let found = Vendor::parse(&vendor).ok_or_else(|| {
            format!("rates.{vendor}: not a vendor (billingplatform, zuora, elevate, rebilly)")
        })?;
        let rate = match rate {
            None => None,
            Some(text) => Some(
                text.parse::<harness_pacing::Rate>()
                    .map_err(|e| format!("rates.{vendor}: {e}"))?,
            ),
        };
        rates.push((found, rate));
    }
    let mut limits = shared.limits();
    for (vendor, rate) in rates {
        limits.set(vendor, rate);
    }
    if let Some(ms) = update.latency_ms {
        limits.set_latency(std::time::Duration::from_millis(ms));
    }
    Ok(())
}

/// The optional body of `POST /__admin/reset`: `{"faultSeed": 42}` seeds the random
/// sequence of `probability` faults.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ResetOptions {
    /// The new fault seed (`None`: keep the current one).
    fault_seed: Option<u64>,
}

/// Parses the reset options; an empty body means none.
fn reset_options(body: &[u8]) -> serde_json::Result<ResetOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(ResetOptions::default())
    } else {
        serde_json::from_slice(body)
    }
}

/// The journal as
/// `[{"method","path","query","headers":[[name,value]],"body","gzipped","bodyUnread"}]`,
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
                    "bodyUnread": entry.body_unread,
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

//! Request intake: admin or vendor, journal, faults, then the vendor's handler.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::limits::{self, Quota};
use super::request::{self, VendorRequest};
use super::response::MockResponse;
use super::state::MockState;
use super::{Fault, JournalEntry, MockShared, Vendor, admin};
use super::{billingplatform, elevate, rebilly, zuora};

/// The service error that makes hyper close the connection without answering: how the
/// `drop`, `dropBeforeBody` and `dropAfterApply` faults (or a broken request body) end
/// the exchange.
#[derive(Debug)]
pub(super) struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("connection dropped by the mock")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Whether the path is an admin route (never journaled).
fn is_admin_path(path: &str) -> bool {
    path == "/__admin" || path.starts_with("/__admin/")
}

/// The vendor whose prefix the path is under, by its first segment.
pub(super) fn vendor_of_path(path: &str) -> Option<Vendor> {
    let first_segment = path.trim_start_matches('/').split('/').next()?;
    Vendor::parse(first_segment).filter(|vendor| vendor.name() == first_segment)
}

/// Serves one request.
pub(super) async fn serve_request(
    shared: Arc<MockShared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ConnectionDropped> {
    let (parts, body) = request.into_parts();
    if is_admin_path(parts.uri.path()) {
        let Some(raw_body) = read_body(body).await? else {
            return Ok(too_large());
        };
        return Ok(
            admin::handle(&shared, &parts.method, parts.uri.path(), &raw_body).into_hyper(false),
        );
    }
    let in_flight = shared.begin_request();
    // The fault is drawn on the request head, so that it can act before the body is read.
    let fault = shared
        .lock()
        .faults
        .take_matching(parts.method.as_str(), parts.uri.path());
    if let Some(fault) = fault.as_ref().filter(|fault| fault.drop_before_body) {
        shared.lock().journal.push(journal_entry(&parts, None));
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        return Err(ConnectionDropped);
    }
    let Some(raw_body) = read_body(body).await? else {
        shared.lock().journal.push(journal_entry(&parts, None));
        return Ok(too_large());
    };
    shared
        .lock()
        .journal
        .push(journal_entry(&parts, Some(&raw_body)));
    let gzipped = parts
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("gzip"));
    if gzipped && request::inflates_too_far(&raw_body) {
        return Ok(too_large());
    }
    // The mock's latency (`--latency-ms`) and a fault's delay add up.
    let delay = shared.limits().latency()
        + Duration::from_millis(fault.as_ref().map_or(0, |fault| fault.delay_ms));
    if delay.is_zero() {
        return answer(&shared, parts, &raw_body, fault.as_ref());
    }
    // A delayed request is handled to the end in a task of its own: hyper drops this
    // future when the client goes away, but a server that was slow to answer still
    // applies the request.
    let handled = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let answer = answer(&shared, parts, &raw_body, fault.as_ref());
        drop(in_flight);
        answer
    });
    handled.await.unwrap_or(Err(ConnectionDropped))
}

/// Reads a whole request body of at most [`request::MAX_REQUEST_BODY_BYTES`] (`None`
/// when it is larger); a broken one drops the connection.
async fn read_body(body: Incoming) -> Result<Option<Bytes>, ConnectionDropped> {
    match http_body_util::Limited::new(body, request::MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(Some(collected.to_bytes())),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Ok(None)
        }
        Err(_) => Err(ConnectionDropped),
    }
}

/// 413 for a request body beyond the mock's limit, as sent or decoded.
fn too_large() -> Response<Full<Bytes>> {
    MockResponse::json(
        StatusCode::PAYLOAD_TOO_LARGE,
        &serde_json::json!({
            "message": format!(
                "Request body too large: the limit is {} bytes, as sent and decoded",
                request::MAX_REQUEST_BODY_BYTES
            )
        }),
    )
    .into_hyper(false)
}

/// The journal entry of a vendor request; `raw_body` is `None` when the body was not read.
fn journal_entry(parts: &http::request::Parts, raw_body: Option<&Bytes>) -> JournalEntry {
    JournalEntry {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: raw_body.map(|body| body.to_vec()).unwrap_or_default(),
        body_unread: raw_body.is_none(),
    }
}

/// Handles a vendor request whose body has been read, as the fault it drew (if any) says:
/// dropped unanswered, answered by the fault, or handled by the vendor, and then maybe
/// dropped after all or answered with a truncated gzip body.
fn answer(
    shared: &MockShared,
    parts: http::request::Parts,
    raw_body: &[u8],
    fault: Option<&Fault>,
) -> Result<Response<Full<Bytes>>, ConnectionDropped> {
    if fault.is_some_and(|fault| fault.drop) {
        return Err(ConnectionDropped);
    }
    let request = VendorRequest::new(
        parts.method,
        parts.uri.path().to_owned(),
        parts.uri.query().map(str::to_owned),
        parts.headers,
        raw_body,
        shared.address,
    );
    let response = {
        let quota = answers_itself(fault)
            .then(|| vendor_of_path(&request.path))
            .flatten()
            .map(|vendor| shared.limits().take(vendor));
        let mut state = shared.lock();
        respond(&mut state, &request, fault, quota)
    };
    match fault {
        Some(fault) if fault.drop_after_apply => Err(ConnectionDropped),
        Some(fault) if fault.truncate_gzip => Ok(response.into_hyper_truncated_gzip()),
        _ => Ok(response.into_hyper(request.accepts_gzip())),
    }
}

/// Whether the vendor handles the request (no fault answers in its place): only then
/// does it count against the vendor's limit.
fn answers_itself(fault: Option<&Fault>) -> bool {
    fault.is_none_or(|fault| fault.rate_limited.is_none() && fault.status.is_none())
}

/// The response to a vendor request, given the fault it drew (if any) and where it
/// stands against its vendor's limit (`quota`: `None` when a fault answers).
fn respond(
    state: &mut MockState,
    request: &VendorRequest,
    fault: Option<&Fault>,
    quota: Option<Quota>,
) -> MockResponse {
    let vendor = vendor_of_path(&request.path);
    let mut response = match (fault, vendor) {
        (_, Some(vendor)) if quota.is_some_and(|quota| quota.over) => {
            let seconds = quota.map_or(1, |quota| quota.reset_seconds);
            too_many_requests(vendor, request, seconds)
        }
        (
            Some(Fault {
                rate_limited: Some(seconds),
                ..
            }),
            Some(vendor),
        ) => too_many_requests(vendor, request, *seconds),
        (
            Some(Fault {
                rate_limited: Some(seconds),
                ..
            }),
            None,
        ) => MockResponse::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({ "error": "Too Many Requests" }),
        )
        .with_header("retry-after", seconds.to_string()),
        (
            Some(Fault {
                status: Some(status),
                headers,
                body,
                ..
            }),
            _,
        ) => injected_response(*status, headers, body.as_ref()),
        (_, Some(vendor)) => handle(state, vendor, request),
        (_, None) => MockResponse::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "Not Found" }),
        ),
    };
    let quota = match (quota, vendor) {
        (Some(quota), _) => quota,
        // A fault's answer: the vendor's headers, the window as it was.
        (None, Some(vendor)) => Quota {
            limit: limits::nominal_limit(vendor),
            remaining: 0,
            reset_seconds: 0,
            over: false,
        },
        (None, None) => return response,
    };
    match vendor {
        Some(Vendor::Zuora) => state.zuora.decorate(request, &mut response, &quota),
        Some(Vendor::Rebilly) => rebilly::RebillyState::decorate(&mut response, &quota),
        _ => {}
    }
    response
}

/// A vendor's normal handling.
fn handle(state: &mut MockState, vendor: Vendor, request: &VendorRequest) -> MockResponse {
    match vendor {
        Vendor::BillingPlatform => billingplatform::handle(&mut state.billingplatform, request),
        Vendor::Zuora => zuora::handle(&mut state.zuora, request),
        Vendor::Elevate => elevate::handle(&mut state.elevate, request),
        Vendor::Rebilly => rebilly::handle(&mut state.rebilly, request),
    }
}

/// The vendor's own 429, asking to wait `seconds`.
fn too_many_requests(vendor: Vendor, request: &VendorRequest, seconds: u64) -> MockResponse {
    match vendor {
        Vendor::BillingPlatform => billingplatform::too_many_requests(seconds),
        Vendor::Zuora => zuora::too_many_requests(seconds),
        Vendor::Elevate => elevate::too_many_requests(seconds),
        Vendor::Rebilly => rebilly::too_many_requests(request, seconds),
    }
}

/// The response a `status` fault asks for. An invalid status code becomes 500.
fn injected_response(
    status: u16,
    headers: &[(String, String)],
    body: Option<&serde_json::Value>,
) -> MockResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        None => MockResponse::empty(status),
        Some(serde_json::Value::String(text)) => MockResponse {
            status,
            headers: Vec::new(),
            body: text.clone().into_bytes(),
        },
        Some(json) => MockResponse::json(status, json),
    };
    // The fault's own headers win over the JSON content type.
    if headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        response
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
    }
    response.headers.extend(headers.iter().cloned());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_is_the_first_path_segment() {
        assert_eq!(
            vendor_of_path("/billingplatform/acme/rest/2.0/login"),
            Some(Vendor::BillingPlatform)
        );
        assert_eq!(vendor_of_path("/zuora"), Some(Vendor::Zuora));
        assert_eq!(vendor_of_path("/zuorax/v1"), None);
        assert_eq!(vendor_of_path("/Zuora/v1"), None);
        assert_eq!(vendor_of_path("/elevate/v1/x"), Some(Vendor::Elevate));
        assert_eq!(
            vendor_of_path("/rebilly/organizations/o/usages"),
            Some(Vendor::Rebilly)
        );
        assert_eq!(vendor_of_path("/"), None);
        assert!(is_admin_path("/__admin/journal"));
        assert!(!is_admin_path("/__administrator"));
    }

    #[test]
    fn injected_string_bodies_are_raw_text() {
        let response = injected_response(
            503,
            &[("Retry-After".to_owned(), "2".to_owned())],
            Some(&serde_json::Value::String("busy".to_owned())),
        );
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.body, b"busy");
        assert!(!response.has_header("content-type"));
        assert!(response.has_header("retry-after"));
        let json = injected_response(500, &[], Some(&serde_json::json!({ "a": 1 })));
        assert!(json.has_header("content-type"));
        assert_eq!(json.body, br#"{"a":1}"#);
    }
}

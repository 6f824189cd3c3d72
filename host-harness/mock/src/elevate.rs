//! Elevate Billing under `/elevate/v1`: authentication and usage product inventories
//! (`PATCH`/`GET /usage-product-inventories/{id}`, JSON Patch applied atomically).
//!
//! Errors are `{"error": ..., "message": ...}`. A failed JSON Patch `test` gets 409 and any
//! other patch failure 422 (not documented by Elevate; the mock's choice). The mock's
//! token belongs to site 1: records of other sites get 403.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use json_patch::{Patch, PatchErrorKind};
use serde_json::{Value, json};

use super::clock;
use super::credentials::{ELEVATE_BRAND, ELEVATE_PASSWORD, ELEVATE_TOKEN, ELEVATE_USERNAME};
use super::request::VendorRequest;
use super::response::MockResponse;

/// The site the mock's credentials give access to.
const ACCESSIBLE_SITE_ID: u64 = 1;
/// The content type a PATCH must declare.
const JSON_PATCH_MEDIA_TYPE: &str = "application/json-patch+json";

/// Stored usage product inventories by id.
#[derive(Debug)]
pub(super) struct Inventories {
    /// Records by id; each is a JSON object.
    records: BTreeMap<u64, Value>,
}

/// A seeded inventory record.
fn seeded_inventory(id: u64, site_id: u64) -> Value {
    json!({
        "id": id,
        "siteId": site_id,
        "usageProductId": 7,
        "startDate": "2026-01-01",
        "endDate": null,
        "serviceId": "SVC-0001",
        "billable": true,
        "inFlightOrder": false,
        "usageCapEnabled": false,
        "defaultUsageCap": 5000,
        "overrideUsageCap": null,
        "applySurcharges": false,
        "productReferences": [{ "id": 1, "productReference": "07700900001", "primary": true }],
    })
}

impl Inventories {
    /// Id 1 (site 1, accessible) and id 3 (site 2, forbidden).
    pub(super) fn seeded() -> Inventories {
        Inventories {
            records: BTreeMap::from([(1, seeded_inventory(1, 1)), (3, seeded_inventory(3, 2))]),
        }
    }

    /// The stored record `id` (decimal text).
    pub(super) fn record(&self, id: &str) -> Option<Value> {
        parse_inventory_id(id).and_then(|id| self.records.get(&id).cloned())
    }

    /// Stores `record` as inventory `id` (decimal text), its `id` set to `id`; it must
    /// be a valid inventory (as a patched one must).
    pub(super) fn put(&mut self, id: &str, mut record: Value) -> Result<(), String> {
        let id = parse_inventory_id(id)
            .ok_or_else(|| format!("inventory id {id} is not an integer of at least 1"))?;
        let Value::Object(fields) = &mut record else {
            return Err("an Elevate inventory must be a JSON object".to_owned());
        };
        fields.insert("id".to_owned(), json!(id));
        validate_inventory(id, &record)
            .map_err(|field| format!("the inventory's {field} is not valid"))?;
        self.records.insert(id, record);
        Ok(())
    }

    /// Applies `patch` to record `id` atomically: the record is replaced only when every
    /// operation applies and the result is a valid record.
    fn apply_patch(&mut self, id: u64, patch: &Patch) -> Result<Value, PatchRejection> {
        let stored = self.records.get(&id).ok_or(PatchRejection::NotFound)?;
        if stored.get("siteId").and_then(Value::as_u64) != Some(ACCESSIBLE_SITE_ID) {
            return Err(PatchRejection::Forbidden);
        }
        let mut candidate = stored.clone();
        json_patch::patch(&mut candidate, &patch.0).map_err(|error| match error.kind {
            PatchErrorKind::TestFailed => PatchRejection::TestFailed(error.path.to_string()),
            _ => PatchRejection::NotApplicable(error.to_string()),
        })?;
        validate_inventory(id, &candidate).map_err(PatchRejection::Invalid)?;
        self.records.insert(id, candidate.clone());
        Ok(candidate)
    }
}

/// Why a patch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatchRejection {
    /// No such record.
    NotFound,
    /// The record belongs to another site.
    Forbidden,
    /// A `test` operation failed at this path.
    TestFailed(String),
    /// Another operation could not be applied (json_patch's error text).
    NotApplicable(String),
    /// The patched record breaks a rule on this field.
    Invalid(&'static str),
}

/// Parses an inventory id: decimal digits only, an `int64` of at least 1.
fn parse_inventory_id(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse()
        .ok()
        .filter(|id| (1..=i64::MAX as u64).contains(id))
}

/// Checks a patched record; `Err` names the first field breaking a rule.
fn validate_inventory(id: u64, record: &Value) -> Result<(), &'static str> {
    let field = |name: &str| record.get(name);
    if field("id").and_then(Value::as_u64) != Some(id) {
        return Err("id");
    }
    if field("startDate")
        .and_then(Value::as_str)
        .is_none_or(|date| !clock::is_calendar_date(date))
    {
        return Err("startDate");
    }
    match field("endDate") {
        None | Some(Value::Null) => {}
        Some(Value::String(date)) if clock::is_calendar_date(date) => {}
        Some(_) => return Err("endDate"),
    }
    match field("serviceId") {
        None => {}
        Some(Value::String(service_id)) if (4..=100).contains(&service_id.chars().count()) => {}
        Some(_) => return Err("serviceId"),
    }
    if field("productReferences")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err("productReferences");
    }
    for flag in ["usageCapEnabled", "billable"] {
        if field(flag).is_some_and(|value| !value.is_boolean()) {
            return Err(flag);
        }
    }
    if field("defaultUsageCap").is_some_and(|value| !value.is_number()) {
        return Err("defaultUsageCap");
    }
    if field("overrideUsageCap").is_some_and(|value| !(value.is_number() || value.is_null())) {
        return Err("overrideUsageCap");
    }
    Ok(())
}

/// The routes under `/elevate/v1`.
enum Route<'a> {
    /// `/authenticate`
    Authenticate,
    /// `/usage-product-inventories/{id}` (id not yet validated)
    Inventory(&'a str),
}

/// The route of a full request path, if it is one.
fn route_of(path: &str) -> Option<Route<'_>> {
    let route = path.strip_prefix("/elevate/v1")?;
    if route == "/authenticate" {
        return Some(Route::Authenticate);
    }
    route
        .strip_prefix("/usage-product-inventories/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(Route::Inventory)
}

/// Handles a request under the Elevate prefix.
pub(super) fn handle(inventories: &mut Inventories, request: &VendorRequest) -> MockResponse {
    let Some(route) = route_of(&request.path) else {
        return MockResponse::error_message(
            StatusCode::NOT_FOUND,
            "Not Found",
            &format!("No resource at {}", request.path),
        );
    };
    match (route, &request.method) {
        (Route::Authenticate, &Method::POST) => authenticate(request),
        (Route::Authenticate, _) => method_not_allowed(request, "POST"),
        (Route::Inventory(id), &Method::PATCH) => {
            authenticated(request).unwrap_or_else(|| patch(inventories, request, id))
        }
        (Route::Inventory(id), &Method::GET) => {
            authenticated(request).unwrap_or_else(|| match parse_inventory_id(id) {
                None => invalid_field("usage_product_inventory_id"),
                Some(id) => match inventories.records.get(&id) {
                    Some(record) => MockResponse::json(StatusCode::OK, record),
                    None => not_found(id),
                },
            })
        }
        (Route::Inventory(_), _) => method_not_allowed(request, "GET, PATCH"),
    }
}

/// Elevate's 429.
pub(super) fn too_many_requests(seconds: u64) -> MockResponse {
    MockResponse::error_message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too Many Requests",
        "Rate limit exceeded",
    )
    .with_header("retry-after", seconds.to_string())
}

/// 400 `Validation failed for field '<name>'`.
fn invalid_field(name: &str) -> MockResponse {
    bad_request(&format!("Validation failed for field '{name}'"))
}

/// 400 with Elevate's error body.
fn bad_request(message: &str) -> MockResponse {
    MockResponse::error_message(StatusCode::BAD_REQUEST, "Bad Request", message)
}

/// 404 for an unknown inventory id.
fn not_found(id: u64) -> MockResponse {
    MockResponse::error_message(
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("Usage product inventory {id} not found"),
    )
}

/// 405 naming the allowed methods.
fn method_not_allowed(request: &VendorRequest, allowed: &str) -> MockResponse {
    MockResponse::error_message(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        &format!("Request method '{}' is not supported", request.method),
    )
    .with_header("allow", allowed)
}

/// `None` when the request carries the token, else the 401 to send.
fn authenticated(request: &VendorRequest) -> Option<MockResponse> {
    (request.bearer_token() != Some(ELEVATE_TOKEN)).then(|| {
        MockResponse::error_message(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Full authentication is required to access this resource",
        )
    })
}

/// `POST /authenticate` with `{"brand","username","password"}`.
fn authenticate(request: &VendorRequest) -> MockResponse {
    let Ok(body) = request.body() else {
        return bad_request("Request body is not valid gzip");
    };
    let Ok(credentials) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Malformed JSON body");
    };
    let field = |name: &str| credentials.get(name).and_then(Value::as_str);
    if field("brand") == Some(ELEVATE_BRAND)
        && field("username") == Some(ELEVATE_USERNAME)
        && field("password") == Some(ELEVATE_PASSWORD)
    {
        MockResponse::json(
            StatusCode::OK,
            &json!({ "token": ELEVATE_TOKEN, "username": ELEVATE_USERNAME }),
        )
    } else {
        MockResponse::error_message(StatusCode::UNAUTHORIZED, "Unauthorized", "Bad credentials")
    }
}

/// `PATCH /usage-product-inventories/{id}`.
fn patch(inventories: &mut Inventories, request: &VendorRequest, id: &str) -> MockResponse {
    let Some(id) = parse_inventory_id(id) else {
        return invalid_field("usage_product_inventory_id");
    };
    if request.media_type().as_deref() != Some(JSON_PATCH_MEDIA_TYPE) {
        return MockResponse::error_message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "Content-Type must be application/json-patch+json",
        );
    }
    let Ok(body) = request.body() else {
        return bad_request("Request body is not valid gzip");
    };
    let Ok(patch) = serde_json::from_slice::<Patch>(body) else {
        return bad_request("Malformed JSON Patch");
    };
    match inventories.apply_patch(id, &patch) {
        Ok(record) => MockResponse::json(StatusCode::OK, &record),
        Err(PatchRejection::NotFound) => not_found(id),
        Err(PatchRejection::Forbidden) => MockResponse::error_message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("Access denied to usage product inventory {id}"),
        ),
        Err(PatchRejection::TestFailed(path)) => MockResponse::error_message(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("JSON Patch test failed at {path}; nothing was applied"),
        ),
        Err(PatchRejection::NotApplicable(reason)) => MockResponse::error_message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Entity",
            &format!("JSON Patch could not be applied: {reason}"),
        ),
        Err(PatchRejection::Invalid(field)) => invalid_field(field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch_of(json: &str) -> Patch {
        match serde_json::from_str(json) {
            Ok(patch) => patch,
            Err(error) => panic!("bad test patch {json}: {error}"),
        }
    }

    #[test]
    fn a_valid_patch_is_stored() {
        let mut inventories = Inventories::seeded();
        let result = inventories.apply_patch(
            1,
            &patch_of(
                r#"[{"op":"test","path":"/serviceId","value":"SVC-0001"},
                    {"op":"replace","path":"/usageCapEnabled","value":true},
                    {"op":"replace","path":"/defaultUsageCap","value":7500},
                    {"op":"add","path":"/productReferences/-","value":{"productReference":"07700900002"}}]"#,
            ),
        );
        let stored = inventories.record("1");
        assert_eq!(result.ok(), stored);
        let stored = stored.unwrap_or_default();
        assert_eq!(stored["usageCapEnabled"], json!(true));
        assert_eq!(stored["defaultUsageCap"].to_string(), "7500");
        assert_eq!(
            stored["productReferences"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_failing_operation_leaves_the_record_untouched() {
        let mut inventories = Inventories::seeded();
        let before = inventories.record("1");
        let failed_test = inventories.apply_patch(
            1,
            &patch_of(
                r#"[{"op":"replace","path":"/billable","value":false},
                    {"op":"test","path":"/serviceId","value":"SVC-9999"}]"#,
            ),
        );
        assert_eq!(
            failed_test,
            Err(PatchRejection::TestFailed("/serviceId".to_owned()))
        );
        let missing_target = inventories.apply_patch(
            1,
            &patch_of(
                r#"[{"op":"replace","path":"/billable","value":false},
                    {"op":"remove","path":"/noSuchField"}]"#,
            ),
        );
        assert!(matches!(
            missing_target,
            Err(PatchRejection::NotApplicable(_))
        ));
        let invalid_result = inventories.apply_patch(
            1,
            &patch_of(
                r#"[{"op":"replace","path":"/billable","value":false},
                    {"op":"replace","path":"/serviceId","value":"X"}]"#,
            ),
        );
        assert_eq!(invalid_result, Err(PatchRejection::Invalid("serviceId")));
        assert_eq!(inventories.record("1"), before);
    }

    #[test]
    fn other_sites_are_forbidden_and_unknown_ids_not_found() {
        let mut inventories = Inventories::seeded();
        let empty = patch_of("[]");
        assert_eq!(
            inventories.apply_patch(3, &empty),
            Err(PatchRejection::Forbidden)
        );
        assert_eq!(
            inventories.apply_patch(2, &empty),
            Err(PatchRejection::NotFound)
        );
    }

    #[test]
    fn validation_names_the_broken_field() {
        let valid = seeded_inventory(1, 1);
        assert_eq!(validate_inventory(1, &valid), Ok(()));
        let with = |name: &str, value: Value| {
            let mut record = valid.clone();
            record[name] = value;
            record
        };
        assert_eq!(validate_inventory(1, &with("id", json!(2))), Err("id"));
        assert_eq!(
            validate_inventory(1, &with("startDate", json!("2026/01/01"))),
            Err("startDate")
        );
        assert_eq!(
            validate_inventory(1, &with("endDate", json!("2026-12-31"))),
            Ok(())
        );
        assert_eq!(
            validate_inventory(1, &with("endDate", json!(20261231))),
            Err("endDate")
        );
        assert_eq!(
            validate_inventory(1, &with("serviceId", json!("x".repeat(101)))),
            Err("serviceId")
        );
        assert_eq!(
            validate_inventory(1, &with("productReferences", json!([]))),
            Err("productReferences")
        );
        assert_eq!(
            validate_inventory(1, &with("usageCapEnabled", json!("yes"))),
            Err("usageCapEnabled")
        );
        assert_eq!(
            validate_inventory(1, &with("billable", json!(1))),
            Err("billable")
        );
        assert_eq!(
            validate_inventory(1, &with("defaultUsageCap", json!(null))),
            Err("defaultUsageCap")
        );
        assert_eq!(
            validate_inventory(1, &with("overrideUsageCap", json!(null))),
            Ok(())
        );
        assert_eq!(
            validate_inventory(1, &with("overrideUsageCap", json!("10"))),
            Err("overrideUsageCap")
        );
    }

    #[test]
    fn inventory_ids_are_positive_integers() {
        assert_eq!(parse_inventory_id("1"), Some(1));
        assert_eq!(parse_inventory_id("0"), None);
        assert_eq!(parse_inventory_id("+1"), None);
        assert_eq!(parse_inventory_id("abc"), None);
        assert_eq!(parse_inventory_id(""), None);
    }
}

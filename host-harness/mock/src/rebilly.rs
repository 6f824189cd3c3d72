//! Rebilly under `/rebilly/organizations/{organizationId}`: usages (`POST /usages`,
//! `GET /usages/{id}`) and subscriptions (`GET /subscriptions/{id}`).
//!
//! Errors are RFC 7807 problems (`application/problem+json`) with the fields in the order
//! type, title, status, detail, instance. Quantities are counted exactly in thousandths.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::clock;
use super::credentials::{REBILLY_API_KEY, REBILLY_JWT, REBILLY_READONLY_API_KEY};
use super::decimal::{self, DecimalTextError};
use super::limits::Quota;
use super::request::VendorRequest;
use super::response::MockResponse;

/// The most characters a `subscriptionId` may have.
const SUBSCRIPTION_ID_MAX_CHARACTERS: usize = 50;
/// Where problem types live.
const PROBLEM_TYPE_BASE: &str = "https://api.rebilly.com/errors/";

/// A subscription as far as usage reporting cares.
#[derive(Debug, Clone)]
struct Subscription {
    /// `active` or `canceled`.
    status: &'static str,
    /// The most quantity the subscription may use, in thousandths; `None` = no limit.
    hard_limit: Option<i128>,
    /// Quantity used so far, in thousandths.
    used: i128,
}

/// Rebilly subscriptions, created usages and counters.
#[derive(Debug)]
pub(super) struct RebillyState {
    /// Subscriptions by id.
    subscriptions: BTreeMap<String, Subscription>,
    /// Created usages by id, as returned by `POST /usages`.
    usages: BTreeMap<String, Value>,
    /// Usages created so far (the next id is `usage_<this + 1>`).
    usages_created: u64,
}

impl RebillyState {
    /// `sub_mock_001` (no limit), `sub_capped` (hard limit 100, 95 used), `sub_canceled`.
    pub(super) fn seeded() -> RebillyState {
        let subscription = |id: &str, status, hard_limit: Option<i128>, used: i128| {
            (
                id.to_owned(),
                Subscription {
                    status,
                    hard_limit: hard_limit.map(|units| units * 1000),
                    used: used * 1000,
                },
            )
        };
        RebillyState {
            subscriptions: BTreeMap::from([
                subscription("sub_mock_001", "active", None, 0),
                subscription("sub_capped", "active", Some(100), 95),
                subscription("sub_canceled", "canceled", None, 0),
            ]),
            usages: BTreeMap::new(),
            usages_created: 0,
        }
    }

    /// The usage `id`, else the subscription `id` as `GET /subscriptions/{id}` shows it.
    pub(super) fn record(&self, id: &str) -> Option<Value> {
        self.usages
            .get(id)
            .cloned()
            .or_else(|| self.subscription_json(id))
    }

    /// `{"id","status","hardLimit","usedQuantity"}` of subscription `id`.
    fn subscription_json(&self, id: &str) -> Option<Value> {
        let subscription = self.subscriptions.get(id)?;
        Some(json!({
            "id": id,
            "status": subscription.status,
            "hardLimit": subscription.hard_limit.map_or(Value::Null, decimal::thousandths_number),
            "usedQuantity": decimal::thousandths_number(subscription.used),
        }))
    }

    /// Adds `X-RateLimit-Limit` / `X-RateLimit-Remaining` unless the response has them,
    /// from where the request stands against the limit.
    pub(super) fn decorate(response: &mut MockResponse, quota: &Quota) {
        response.add_header_if_absent("x-ratelimit-limit", quota.limit.to_string());
        response.add_header_if_absent("x-ratelimit-remaining", quota.remaining.to_string());
    }
}

/// The routes under `/rebilly/organizations/{organizationId}`.
enum Route<'a> {
    /// `/usages`
    Usages,
    /// `/usages/{id}`
    Usage(&'a str),
    /// `/subscriptions/{id}`
    Subscription(&'a str),
}

/// Splits a full request path into the organization's base path
/// (`/rebilly/organizations/{organizationId}`) and the route after it.
fn split_base_path(path: &str) -> Option<(&str, &str)> {
    let after_prefix = path.strip_prefix("/rebilly/organizations/")?;
    let organization_length = after_prefix.find('/')?;
    if organization_length == 0 {
        return None;
    }
    let base_length = path.len() - after_prefix.len() + organization_length;
    Some(path.split_at(base_length))
}

/// The route of a full request path, if it is one.
fn route_of(path: &str) -> Option<Route<'_>> {
    let (_base, route) = split_base_path(path)?;
    let single_segment = |id: &&str| !id.is_empty() && !id.contains('/');
    if route == "/usages" {
        Some(Route::Usages)
    } else if let Some(id) = route.strip_prefix("/usages/").filter(single_segment) {
        Some(Route::Usage(id))
    } else {
        route
            .strip_prefix("/subscriptions/")
            .filter(single_segment)
            .map(Route::Subscription)
    }
}

/// An RFC 7807 problem response.
fn problem(
    status: StatusCode,
    type_slug: &str,
    title: &str,
    detail: &str,
    instance: &str,
) -> MockResponse {
    MockResponse::json_as(
        status,
        "application/problem+json",
        &problem_body(status, type_slug, title, detail, instance),
    )
}

/// An RFC 7807 problem object, fields in order type, title, status, detail, instance.
fn problem_body(
    status: StatusCode,
    type_slug: &str,
    title: &str,
    detail: &str,
    instance: &str,
) -> Value {
    json!({
        "type": format!("{PROBLEM_TYPE_BASE}{type_slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
    })
}

/// Handles a request under the Rebilly prefix.
pub(super) fn handle(state: &mut RebillyState, request: &VendorRequest) -> MockResponse {
    let Some(route) = route_of(&request.path) else {
        return not_found(request, &format!("No resource at {}", request.path));
    };
    let allowed = match route {
        Route::Usages => "POST",
        Route::Usage(_) | Route::Subscription(_) => "GET",
    };
    if request.method.as_str() != allowed {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            &format!("Method {} is not allowed on this resource", request.method),
            &request.path,
        )
        .with_header("allow", allowed);
    }
    let access = match access_of(request) {
        Some(access) => access,
        None => {
            return problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "Invalid or missing API key",
                &request.path,
            );
        }
    };
    match route {
        Route::Usages => create_usage(state, request, access),
        Route::Usage(id) => match state.usages.get(id) {
            Some(usage) => MockResponse::json(StatusCode::OK, usage),
            None => not_found(request, &format!("Usage {id} not found")),
        },
        Route::Subscription(id) => match state.subscription_json(id) {
            Some(subscription) => MockResponse::json(StatusCode::OK, &subscription),
            None => not_found(request, &format!("Subscription {id} not found")),
        },
    }
}

/// Rebilly's 429: no `Retry-After`, but `X-RateLimit-Retry-After` holding the UTC epoch
/// second when the limit resets.
pub(super) fn too_many_requests(request: &VendorRequest, seconds: u64) -> MockResponse {
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        "Too Many Requests",
        "Rate limit exceeded",
        &request.path,
    )
    .with_header("x-ratelimit-remaining", "0")
    .with_header(
        "x-ratelimit-retry-after",
        clock::unix_seconds_now()
            .saturating_add(seconds)
            .to_string(),
    )
}

/// 404 problem.
fn not_found(request: &VendorRequest, detail: &str) -> MockResponse {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not Found",
        detail,
        &request.path,
    )
}

/// What the credentials allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Everything.
    Full,
    /// Reads only: every POST gets 403.
    ReadOnly,
}

/// The access the request's credentials give, `None` when they are missing or wrong.
fn access_of(request: &VendorRequest) -> Option<Access> {
    match request.header("reb-apikey") {
        Some(REBILLY_API_KEY) => return Some(Access::Full),
        Some(REBILLY_READONLY_API_KEY) => return Some(Access::ReadOnly),
        _ => {}
    }
    (request.bearer_token() == Some(REBILLY_JWT)).then_some(Access::Full)
}

/// A usage request that passed field validation.
#[derive(Debug)]
struct UsageRequest {
    /// `subscriptionId`.
    subscription_id: String,
    /// `quantity` as sent (exact text).
    quantity: serde_json::Number,
    /// `quantity` in thousandths.
    quantity_thousandths: i128,
    /// `usageTime` as sent, if given and not empty.
    usage_time: Option<String>,
    /// `acceptPartialQuantity` (default false).
    accept_partial_quantity: bool,
}

/// One entry of a 422's `invalidFields`.
type InvalidField = (&'static str, String);

/// Checks the fields of a `POST /usages` body, listing every problem found (subscription
/// existence included).
fn validate_usage(
    fields: &Map<String, Value>,
    subscriptions: &BTreeMap<String, Subscription>,
) -> Result<UsageRequest, Vec<InvalidField>> {
    let mut invalid: Vec<InvalidField> = Vec::new();

    let subscription_id = match fields.get("subscriptionId") {
        Some(Value::String(id)) if id.chars().count() > SUBSCRIPTION_ID_MAX_CHARACTERS => {
            invalid.push((
                "subscriptionId",
                format!(
                    "subscriptionId must be at most {SUBSCRIPTION_ID_MAX_CHARACTERS} characters"
                ),
            ));
            None
        }
        Some(Value::String(id)) if !id.is_empty() => {
            if !subscriptions.contains_key(id) {
                invalid.push((
                    "subscriptionId",
                    format!("Subscription {id} does not exist"),
                ));
            }
            Some(id.clone())
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            invalid.push(("subscriptionId", "subscriptionId is required".to_owned()));
            None
        }
        Some(_) => {
            invalid.push((
                "subscriptionId",
                "subscriptionId must be a string".to_owned(),
            ));
            None
        }
    };

    let quantity = match fields.get("quantity") {
        None | Some(Value::Null) => Err("quantity is required".to_owned()),
        Some(Value::Number(number)) => match decimal::parse_thousandths(&number.to_string()) {
            Ok(thousandths) if thousandths < 1 => Err("quantity must be at least 0.001".to_owned()),
            Ok(thousandths) => Ok((number.clone(), thousandths)),
            Err(DecimalTextError::TooManyDecimalPlaces) => {
                Err("quantity must have at most 3 decimal places".to_owned())
            }
            Err(DecimalTextError::OutOfRange) => Err("quantity is too large".to_owned()),
            Err(DecimalTextError::NotANumber) => Err("quantity must be a number".to_owned()),
        },
        Some(_) => Err("quantity must be a number".to_owned()),
    };
    let quantity = quantity
        .map_err(|message| invalid.push(("quantity", message)))
        .ok();

    let usage_time = match fields.get("usageTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(time)) if time.is_empty() => None,
        Some(Value::String(time)) if clock::is_rfc3339_date_time(time) => Some(time.clone()),
        Some(_) => {
            invalid.push((
                "usageTime",
                "usageTime must be an RFC 3339 date-time".to_owned(),
            ));
            None
        }
    };

    let accept_partial_quantity = match fields.get("acceptPartialQuantity") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(accept)) => *accept,
        Some(_) => {
            invalid.push((
                "acceptPartialQuantity",
                "acceptPartialQuantity must be a boolean".to_owned(),
            ));
            false
        }
    };

    match (subscription_id, quantity) {
        (Some(subscription_id), Some((quantity, quantity_thousandths))) if invalid.is_empty() => {
            Ok(UsageRequest {
                subscription_id,
                quantity,
                quantity_thousandths,
                usage_time,
                accept_partial_quantity,
            })
        }
        _ => Err(invalid),
    }
}

/// How much of a requested quantity a subscription takes, in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowance {
    /// All of it.
    Whole,
    /// Only this much (partial quantity accepted).
    Clipped(i128),
    /// Nothing left under the hard limit.
    NothingLeft,
    /// More than is left, partial quantity not accepted; this much remains.
    Exceeds(i128),
}

/// Checks `quantity` against the subscription's hard limit.
fn allowance(
    subscription: &Subscription,
    quantity: i128,
    accept_partial_quantity: bool,
) -> Allowance {
    let Some(hard_limit) = subscription.hard_limit else {
        return Allowance::Whole;
    };
    let remaining = hard_limit - subscription.used;
    if quantity <= remaining {
        Allowance::Whole
    } else if !accept_partial_quantity {
        Allowance::Exceeds(remaining.max(0))
    } else if remaining > 0 {
        Allowance::Clipped(remaining)
    } else {
        Allowance::NothingLeft
    }
}

/// 422 problem with `invalidFields`.
fn invalid_data(request: &VendorRequest, invalid: &[InvalidField]) -> MockResponse {
    let mut body = problem_body(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-data",
        "Invalid data",
        "The request contains invalid fields",
        &request.path,
    );
    if let Value::Object(fields) = &mut body {
        let invalid_fields = invalid
            .iter()
            .map(|(field, message)| json!({ "field": field, "message": message }))
            .collect();
        fields.insert("invalidFields".to_owned(), Value::Array(invalid_fields));
    }
    MockResponse::json_as(
        StatusCode::UNPROCESSABLE_ENTITY,
        "application/problem+json",
        &body,
    )
}

/// `POST /usages`.
fn create_usage(state: &mut RebillyState, request: &VendorRequest, access: Access) -> MockResponse {
    if access == Access::ReadOnly {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "This API key may not create usages",
            &request.path,
        );
    }
    let bad_request = |detail: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            detail,
            &request.path,
        )
    };
    let Ok(body) = request.body() else {
        return bad_request("Request body is not valid gzip");
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Malformed JSON");
    };
    let usage = match validate_usage(&fields, &state.subscriptions) {
        Ok(usage) => usage,
        Err(invalid) => return invalid_data(request, &invalid),
    };
    let Some(subscription) = state.subscriptions.get_mut(&usage.subscription_id) else {
        return invalid_data(
            request,
            &[(
                "subscriptionId",
                format!("Subscription {} does not exist", usage.subscription_id),
            )],
        );
    };
    if subscription.status == "canceled" {
        return problem(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            &format!("Subscription {} is canceled", usage.subscription_id),
            &request.path,
        );
    }
    let hard_limit_text = subscription
        .hard_limit
        .map(decimal::format_thousandths)
        .unwrap_or_default();
    let (quantity, quantity_thousandths) = match allowance(
        subscription,
        usage.quantity_thousandths,
        usage.accept_partial_quantity,
    ) {
        Allowance::Whole => (Value::Number(usage.quantity), usage.quantity_thousandths),
        Allowance::Clipped(remaining) => (decimal::thousandths_number(remaining), remaining),
        Allowance::NothingLeft => {
            return invalid_data(
                request,
                &[(
                    "quantity",
                    format!("No quantity left under the hard limit of {hard_limit_text}"),
                )],
            );
        }
        Allowance::Exceeds(remaining) => {
            return invalid_data(
                request,
                &[(
                    "quantity",
                    format!(
                        "Quantity exceeds the hard limit of {hard_limit_text} ({} remaining)",
                        decimal::format_thousandths(remaining)
                    ),
                )],
            );
        }
    };
    subscription.used = subscription.used.saturating_add(quantity_thousandths);

    state.usages_created += 1;
    let id = format!("usage_{}", state.usages_created);
    let base_path = split_base_path(&request.path).map_or("", |(base, _)| base);
    let location = format!("http://{}{base_path}/usages/{id}", request.server_address);
    let now = clock::utc_timestamp_now();
    let record = json!({
        "id": id,
        "subscriptionId": usage.subscription_id,
        "quantity": quantity,
        "usageTime": usage.usage_time.unwrap_or_else(|| now.clone()),
        // Usage.yaml: writeOnly, so never returned.
        "invoiceId": null,
        "invoiceItemId": null,
        "createdTime": now,
        "updatedTime": now,
        "_links": [{ "href": location, "rel": "self" }],
    });
    state.usages.insert(id, record.clone());
    MockResponse::json(StatusCode::CREATED, &record).with_header("location", location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(fields)) => fields,
            other => panic!("not an object {json}: {other:?}"),
        }
    }

    fn subscriptions() -> BTreeMap<String, Subscription> {
        RebillyState::seeded().subscriptions
    }

    #[test]
    fn a_valid_usage_keeps_the_quantity_text() {
        let usage = validate_usage(
            &object(
                r#"{"subscriptionId":"sub_mock_001","quantity":1.500,"usageTime":"2026-01-05T10:00:00Z"}"#,
            ),
            &subscriptions(),
        );
        let usage = usage.unwrap_or_else(|invalid| panic!("{invalid:?}"));
        assert_eq!(usage.quantity.to_string(), "1.500");
        assert_eq!(usage.quantity_thousandths, 1500);
        assert_eq!(usage.usage_time.as_deref(), Some("2026-01-05T10:00:00Z"));
        assert!(!usage.accept_partial_quantity);
    }

    #[test]
    fn every_invalid_field_is_listed() {
        let long_id = "s".repeat(51);
        let invalid = validate_usage(
            &object(&format!(r#"{{"subscriptionId":"{long_id}","quantity":0.0001,"acceptPartialQuantity":"yes"}}"#)),
            &subscriptions(),
        )
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = invalid.iter().map(|(field, _)| *field).collect();
        assert_eq!(
            fields,
            ["subscriptionId", "quantity", "acceptPartialQuantity"]
        );

        let invalid = validate_usage(
            &object(r#"{"subscriptionId":"sub_nope","quantity":0}"#),
            &subscriptions(),
        )
        .err()
        .unwrap_or_default();
        assert_eq!(
            invalid,
            [
                (
                    "subscriptionId",
                    "Subscription sub_nope does not exist".to_owned()
                ),
                ("quantity", "quantity must be at least 0.001".to_owned()),
            ]
        );

        let invalid = validate_usage(&object("{}"), &subscriptions())
            .err()
            .unwrap_or_default();
        assert_eq!(invalid.len(), 2);
    }

    #[test]
    fn hard_limit_clips_or_rejects() {
        let capped = Subscription {
            status: "active",
            hard_limit: Some(100_000),
            used: 95_000,
        };
        assert_eq!(allowance(&capped, 5_000, false), Allowance::Whole);
        assert_eq!(allowance(&capped, 10_000, false), Allowance::Exceeds(5_000));
        assert_eq!(allowance(&capped, 10_000, true), Allowance::Clipped(5_000));
        let full = Subscription {
            used: 100_000,
            ..capped.clone()
        };
        assert_eq!(allowance(&full, 1, true), Allowance::NothingLeft);
        assert_eq!(allowance(&full, 1, false), Allowance::Exceeds(0));
        let unlimited = Subscription {
            hard_limit: None,
            ..capped
        };
        assert_eq!(
            allowance(&unlimited, i128::from(u64::MAX), false),
            Allowance::Whole
        );
    }

    #[test]
    fn base_path_accepts_any_organization() {
        assert_eq!(
            split_base_path("/rebilly/organizations/org_x/usages"),
            Some(("/rebilly/organizations/org_x", "/usages"))
        );
        assert_eq!(split_base_path("/rebilly/organizations//usages"), None);
        assert_eq!(split_base_path("/rebilly/organizations/org_x"), None);
        assert!(matches!(
            route_of("/rebilly/organizations/o/usages/usage_1"),
            Some(Route::Usage("usage_1"))
        ));
        assert!(matches!(
            route_of("/rebilly/organizations/o/subscriptions/s"),
            Some(Route::Subscription("s"))
        ));
        assert!(route_of("/rebilly/organizations/o/usages/").is_none());
    }

    #[test]
    fn problems_keep_field_order() {
        let body = problem_body(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            "gone",
            "/x",
        );
        assert_eq!(
            body.to_string(),
            r#"{"type":"https://api.rebilly.com/errors/not-found","title":"Not Found","status":404,"detail":"gone","instance":"/x"}"#
        );
    }
}

//! Zuora under `/zuora`: OAuth tokens and usage records
//! (`PUT`/`GET /v1/object/usage/{id}`).
//!
//! Every Zuora response carries `Zuora-Request-Id`, `RateLimit-*` headers, and echoes
//! `Zuora-Track-Id`.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::credentials::{ZUORA_CLIENT_ID, ZUORA_CLIENT_SECRET, ZUORA_TOKEN};
use super::limits::Quota;
use super::request::VendorRequest;
use super::response::MockResponse;

/// The seeded pending usage record.
const PENDING_USAGE_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
/// The seeded usage record already processed by the rating engine (cannot be updated).
const PROCESSED_USAGE_ID: &str = "8ad08ae29085a77b0190908bfdd6processed";
/// The most characters a `Quantity` may have.
const QUANTITY_MAX_CHARACTERS: usize = 16;
/// The body fields a usage update may carry (plus custom fields ending `__c`).
const UPDATABLE_FIELDS: [&str; 5] = [
    "StartDateTime",
    "EndDateTime",
    "Quantity",
    "RbeStatus",
    "UOM",
];

/// Zuora usage records and the counters behind its response headers.
#[derive(Debug)]
pub(super) struct ZuoraState {
    /// Usage records by id; each is a JSON object.
    usages: BTreeMap<String, Map<String, Value>>,
    /// Responses sent, for unique `Zuora-Request-Id`s.
    responses_sent: u64,
}

/// A long description (about 1500 characters) so that a GET of the record is over 1000
/// bytes, which triggers response gzip.
fn long_description() -> String {
    let sentence = "Mock usage record used to exercise gzip responses of the Zuora mock. ";
    sentence.repeat(1500 / sentence.len() + 1)[..1500]
        .trim_end()
        .to_owned()
}

impl ZuoraState {
    /// The pending record (with a long description) and the processed one.
    pub(super) fn seeded() -> ZuoraState {
        let usage = |id: &str, quantity: u32, status: &str, description: String| {
            let record = json!({
                "Id": id,
                "AccountId": "8ad08ae29085a77b0190908bfdd6acc1",
                "Quantity": quantity,
                "UOM": "Each",
                "StartDateTime": "2026-11-01T00:00:00.000+00:00",
                "EndDateTime": "2026-11-30T23:59:59.000+00:00",
                "RbeStatus": status,
                "Description__c": description,
            });
            match record {
                Value::Object(fields) => (id.to_owned(), fields),
                _ => (id.to_owned(), Map::new()),
            }
        };
        ZuoraState {
            usages: BTreeMap::from([
                usage(PENDING_USAGE_ID, 10, "Pending", long_description()),
                usage(
                    PROCESSED_USAGE_ID,
                    5,
                    "Processed",
                    "Usage already rated and billed".to_owned(),
                ),
            ]),
            responses_sent: 0,
        }
    }

    /// The stored usage record `id`.
    pub(super) fn record(&self, id: &str) -> Option<Value> {
        self.usages.get(id).cloned().map(Value::Object)
    }

    /// Stores `record` (an object) as usage record `id`, its `Id` set to `id`.
    pub(super) fn put(&mut self, id: &str, record: Value) -> Result<(), String> {
        let Value::Object(mut fields) = record else {
            return Err("a Zuora usage record must be a JSON object".to_owned());
        };
        fields.insert("Id".to_owned(), Value::String(id.to_owned()));
        self.usages.insert(id.to_owned(), fields);
        Ok(())
    }

    /// Adds Zuora's response headers that the response does not set already; the
    /// `RateLimit-*` ones from where the request stands against the limit.
    pub(super) fn decorate(
        &mut self,
        request: &VendorRequest,
        response: &mut MockResponse,
        quota: &Quota,
    ) {
        self.responses_sent += 1;
        response.add_header_if_absent(
            "zuora-request-id",
            format!("00000000-0000-4000-8000-{:012x}", self.responses_sent),
        );
        if let Some(track_id) = request.header("zuora-track-id") {
            response.add_header_if_absent("zuora-track-id", track_id);
        }
        response.add_header_if_absent("ratelimit-limit", quota.limit.to_string());
        response.add_header_if_absent("ratelimit-remaining", quota.remaining.to_string());
        response.add_header_if_absent("ratelimit-reset", quota.reset_seconds.to_string());
    }
}

/// The routes under `/zuora`.
enum Route<'a> {
    /// `/oauth/token`
    Token,
    /// `/v1/object/usage/{id}`
    Usage(&'a str),
}

/// The route of a full request path, if it is one.
fn route_of(path: &str) -> Option<Route<'_>> {
    let route = path.strip_prefix("/zuora")?;
    if route == "/oauth/token" {
        return Some(Route::Token);
    }
    route
        .strip_prefix("/v1/object/usage/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(Route::Usage)
}

/// Handles a request under the Zuora prefix.
pub(super) fn handle(state: &mut ZuoraState, request: &VendorRequest) -> MockResponse {
    let Some(route) = route_of(&request.path) else {
        return MockResponse::json(StatusCode::NOT_FOUND, &json!({ "message": "Not Found" }));
    };
    match (route, &request.method) {
        (Route::Token, &Method::POST) => token(request),
        (Route::Token, _) => method_not_allowed("POST"),
        (Route::Usage(id), &Method::PUT) => {
            authenticated(request).unwrap_or_else(|| update(state, request, id))
        }
        (Route::Usage(id), &Method::GET) => authenticated(request).unwrap_or_else(|| {
            state.record(id).map_or_else(
                || not_found(id),
                |record| MockResponse::json(StatusCode::OK, &record),
            )
        }),
        (Route::Usage(_), _) => method_not_allowed("GET, PUT"),
    }
}

/// Zuora's 429.
pub(super) fn too_many_requests(seconds: u64) -> MockResponse {
    MockResponse::json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({ "message": "Too many requests" }),
    )
    .with_header("retry-after", seconds.to_string())
    .with_header("ratelimit-remaining", "0")
    .with_header("ratelimit-reset", seconds.to_string())
}

/// 405 naming the allowed methods.
fn method_not_allowed(allowed: &str) -> MockResponse {
    MockResponse::json(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({ "message": "Method Not Allowed" }),
    )
    .with_header("allow", allowed)
}

/// A CRUD failure body `{"Success":false,"Errors":[{"Code","Message"}]}`.
fn crud_failure(status: StatusCode, code: &str, message: &str) -> MockResponse {
    MockResponse::json(
        status,
        &json!({ "Success": false, "Errors": [{ "Code": code, "Message": message }] }),
    )
}

/// 404 for an unknown usage id (not documented by Zuora; the mock's choice).
fn not_found(id: &str) -> MockResponse {
    crud_failure(
        StatusCode::NOT_FOUND,
        "INVALID_VALUE",
        &format!("The usage record {id} does not exist"),
    )
}

/// `None` when the request carries the OAuth token, else the 401 to send.
fn authenticated(request: &VendorRequest) -> Option<MockResponse> {
    (request.bearer_token() != Some(ZUORA_TOKEN)).then(|| {
        MockResponse::json(
            StatusCode::UNAUTHORIZED,
            &json!({ "message": "Authentication error" }),
        )
    })
}

/// `POST /oauth/token` (form: `client_id`, `client_secret`, `grant_type`).
fn token(request: &VendorRequest) -> MockResponse {
    let Ok(body) = request.body() else {
        return crud_failure(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "The request body is not valid gzip",
        );
    };
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    let accepted = field("client_id") == Some(ZUORA_CLIENT_ID)
        && field("client_secret") == Some(ZUORA_CLIENT_SECRET)
        && field("grant_type") == Some("client_credentials");
    if accepted {
        MockResponse::json(
            StatusCode::OK,
            &json!({
                "access_token": ZUORA_TOKEN,
                "token_type": "bearer",
                "expires_in": 3598,
                "scope": "entity.mock tenant.mock",
                "jti": "mock-jti",
            }),
        )
    } else {
        MockResponse::json(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "invalid_client", "error_description": "Bad client credentials" }),
        )
    }
}

/// Whether a usage update may carry this body field.
fn is_updatable_field(name: &str) -> bool {
    UPDATABLE_FIELDS.contains(&name) || name.ends_with("__c")
}

/// Whether a `Quantity` value is acceptable: a JSON number of at most 16 characters.
fn is_valid_quantity(quantity: &Value) -> bool {
    matches!(quantity, Value::Number(number) if number.to_string().len() <= QUANTITY_MAX_CHARACTERS)
}

/// `PUT /v1/object/usage/{id}`.
fn update(state: &mut ZuoraState, request: &VendorRequest, id: &str) -> MockResponse {
    let malformed = || {
        crud_failure(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "The request body is not valid JSON",
        )
    };
    let Ok(body) = request.body() else {
        return crud_failure(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "The request body is not valid gzip",
        );
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return malformed();
    };
    if request.query_flag("rejectUnknownFields")
        && !fields.keys().all(|name| is_updatable_field(name))
    {
        return MockResponse::json(
            StatusCode::BAD_REQUEST,
            &json!({ "message": "Error - unrecognised fields" }),
        );
    }
    let Some(record) = state.usages.get_mut(id) else {
        return not_found(id);
    };
    if record.get("RbeStatus").and_then(Value::as_str) == Some("Processed") {
        return crud_failure(
            StatusCode::OK,
            "INVALID_VALUE",
            "The usage record has been processed and cannot be updated",
        );
    }
    if fields
        .get("Quantity")
        .is_some_and(|quantity| !is_valid_quantity(quantity))
    {
        return crud_failure(StatusCode::OK, "INVALID_VALUE", "Quantity: invalid value");
    }
    for (name, value) in fields {
        if is_updatable_field(&name) {
            record.insert(name, value);
        }
    }
    MockResponse::json(StatusCode::OK, &json!({ "Id": id, "Success": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_pending_record_is_over_1000_bytes() {
        let state = ZuoraState::seeded();
        let record = state.record(PENDING_USAGE_ID);
        assert!(record.is_some_and(|record| record.to_string().len() > 1000));
    }

    #[test]
    fn quantity_is_checked_on_its_text() -> serde_json::Result<()> {
        assert!(is_valid_quantity(&serde_json::from_str("12.5")?));
        assert!(is_valid_quantity(&serde_json::from_str(
            "-1234567890.1234"
        )?));
        assert!(!is_valid_quantity(&serde_json::from_str(
            "1234567890.1234567"
        )?));
        assert!(!is_valid_quantity(&serde_json::from_str("\"12\"")?));
        assert!(!is_valid_quantity(&Value::Null));
        Ok(())
    }

    #[test]
    fn custom_fields_are_updatable() {
        assert!(is_updatable_field("Quantity"));
        assert!(is_updatable_field("Note__c"));
        assert!(!is_updatable_field("AccountId"));
    }
}

//! BillingPlatform under `/billingplatform/{org}`: login, and usage identifiers
//! (`PUT /rest/2.0/USAGE_IDENTIFIER`, `GET /rest/2.0/USAGE_IDENTIFIER/{id}`).
//!
//! Errors are `{"error": ..., "message": ...}`.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::clock;
use super::credentials::{
    BILLINGPLATFORM_PASSWORD, BILLINGPLATFORM_SESSION_ID, BILLINGPLATFORM_USERNAME,
};
use super::request::VendorRequest;
use super::response::MockResponse;

/// Fields only the server sets; a client sending one gets 400.
const SYSTEM_FIELDS: [&str; 4] = ["Created", "Updated", "CreatedUserId", "UpdatedUserId"];

/// The user id the mock records as the updater.
const API_USER_ID: &str = "mock-api-user";

/// Stored `USAGE_IDENTIFIER` records by `Id`.
#[derive(Debug)]
pub(super) struct UsageIdentifiers {
    /// Records by id; each is a JSON object.
    records: BTreeMap<String, Map<String, Value>>,
}

impl UsageIdentifiers {
    /// Ids 1001 (`API_CALLS`) and 1002 (`STORAGE_GB`).
    pub(super) fn seeded() -> UsageIdentifiers {
        let record = |id: &str, usage_identifier: &str| {
            let record = json!({
                "Id": id,
                "UsageIdentifier": usage_identifier,
                "Created": "2026-01-05T10:00:00Z",
                "Updated": "2026-01-05T10:00:00Z",
                "CreatedUserId": "42",
                "UpdatedUserId": "42",
            });
            match record {
                Value::Object(fields) => (id.to_owned(), fields),
                _ => (id.to_owned(), Map::new()),
            }
        };
        UsageIdentifiers {
            records: BTreeMap::from([record("1001", "API_CALLS"), record("1002", "STORAGE_GB")]),
        }
    }

    /// The stored record `id`.
    pub(super) fn record(&self, id: &str) -> Option<Value> {
        self.records.get(id).cloned().map(Value::Object)
    }

    /// Stores `record` (an object) as usage identifier `id`, its `Id` set to `id`.
    pub(super) fn put(&mut self, id: &str, record: Value) -> Result<(), String> {
        let Value::Object(mut fields) = record else {
            return Err("a BillingPlatform record must be a JSON object".to_owned());
        };
        fields.insert("Id".to_owned(), Value::String(id.to_owned()));
        self.records.insert(id.to_owned(), fields);
        Ok(())
    }
}

/// The routes under `/billingplatform/{org}`.
enum Route<'a> {
    /// `/rest/2.0/login`
    Login,
    /// `/rest/2.0/USAGE_IDENTIFIER`
    UsageIdentifiers,
    /// `/rest/2.0/USAGE_IDENTIFIER/{id}`
    UsageIdentifier(&'a str),
}

/// The route of a full request path, if it is one.
fn route_of(path: &str) -> Option<Route<'_>> {
    let (_org, route) = path
        .strip_prefix("/billingplatform/")?
        .split_once('/')
        .filter(|(org, _)| !org.is_empty())?;
    match route {
        "rest/2.0/login" => Some(Route::Login),
        "rest/2.0/USAGE_IDENTIFIER" => Some(Route::UsageIdentifiers),
        _ => route
            .strip_prefix("rest/2.0/USAGE_IDENTIFIER/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(Route::UsageIdentifier),
    }
}

/// Handles a request under the BillingPlatform prefix.
pub(super) fn handle(records: &mut UsageIdentifiers, request: &VendorRequest) -> MockResponse {
    let Some(route) = route_of(&request.path) else {
        return MockResponse::error_message(
            StatusCode::NOT_FOUND,
            "Not Found",
            &format!("No resource at {}", request.path),
        );
    };
    match (route, &request.method) {
        (Route::Login, &Method::POST) => login(request),
        (Route::Login, _) => method_not_allowed(request, "POST"),
        (Route::UsageIdentifiers, &Method::PUT) => {
            authenticated(request).unwrap_or_else(|| update(records, request))
        }
        (Route::UsageIdentifiers, _) => method_not_allowed(request, "PUT"),
        (Route::UsageIdentifier(id), &Method::GET) => {
            authenticated(request).unwrap_or_else(|| match records.record(id) {
                Some(record) => {
                    MockResponse::json(StatusCode::OK, &json!({ "queryResponse": [record] }))
                }
                None => not_found(id),
            })
        }
        (Route::UsageIdentifier(_), _) => method_not_allowed(request, "GET"),
    }
}

/// BillingPlatform's 429.
pub(super) fn too_many_requests(seconds: u64) -> MockResponse {
    MockResponse::error_message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too Many Requests",
        "Rate limit exceeded: at most 15 requests per second",
    )
    .with_header("retry-after", seconds.to_string())
}

/// 400 with BillingPlatform's error body.
fn bad_request(message: &str) -> MockResponse {
    MockResponse::error_message(StatusCode::BAD_REQUEST, "Bad Request", message)
}

/// 404 for an unknown usage identifier id.
fn not_found(id: &str) -> MockResponse {
    MockResponse::error_message(
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("USAGE_IDENTIFIER {id} not found"),
    )
}

/// 405 naming the allowed method.
fn method_not_allowed(request: &VendorRequest, allowed: &str) -> MockResponse {
    MockResponse::error_message(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        &format!(
            "Method {} is not supported for this resource",
            request.method
        ),
    )
    .with_header("allow", allowed)
}

/// `None` when the request carries the session (header `sessionId` or a bearer token),
/// else the 401 to send.
fn authenticated(request: &VendorRequest) -> Option<MockResponse> {
    let by_session_header = request.header("sessionid") == Some(BILLINGPLATFORM_SESSION_ID);
    let by_bearer = request.bearer_token() == Some(BILLINGPLATFORM_SESSION_ID);
    if by_session_header || by_bearer {
        None
    } else {
        Some(MockResponse::error_message(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid or expired session",
        ))
    }
}

/// `POST /rest/2.0/login`.
fn login(request: &VendorRequest) -> MockResponse {
    let Ok(body) = request.body() else {
        return bad_request("Request body is not valid gzip");
    };
    let Ok(credentials) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Malformed JSON body");
    };
    let username = credentials.get("username").and_then(Value::as_str);
    let password = credentials.get("password").and_then(Value::as_str);
    if username == Some(BILLINGPLATFORM_USERNAME) && password == Some(BILLINGPLATFORM_PASSWORD) {
        MockResponse::json(
            StatusCode::OK,
            &json!({
                "loginResponse": [{
                    "SessionID": BILLINGPLATFORM_SESSION_ID,
                    "ErrorCode": "0",
                    "ErrorText": [],
                }]
            }),
        )
    } else {
        MockResponse::error_message(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid username or password",
        )
    }
}

/// `PUT /rest/2.0/USAGE_IDENTIFIER`.
fn update(records: &mut UsageIdentifiers, request: &VendorRequest) -> MockResponse {
    let Ok(body) = request.body() else {
        return bad_request("Request body is not valid gzip");
    };
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Malformed JSON body");
    };
    // "REST Methods": update takes an array of records too, answered per record in the
    // newer `updateResponse` shape.
    if let Some(items) = document.get("brmObjects").and_then(Value::as_array) {
        let results: Vec<Value> = items
            .iter()
            .map(|item| update_item(records, item))
            .collect();
        return MockResponse::json(StatusCode::OK, &json!({ "updateResponse": results }));
    }
    let Some(fields) = document.get("brmObjects").and_then(Value::as_object) else {
        return bad_request("brmObjects is required");
    };
    match apply(records, fields) {
        Ok(record) => MockResponse::json(
            StatusCode::OK,
            &json!({ "retrieveResponse": Value::Object(record) }),
        ),
        Err(Refused::Missing(id)) => not_found(&id),
        Err(Refused::Field(_, text)) => bad_request(&text),
    }
}

/// Why one record was not updated.
enum Refused {
    /// A field breaks a rule: the field and the text.
    Field(&'static str, String),
    /// No record has this Id.
    Missing(String),
}

/// Update one record from `fields` (the record as stored after the update), or say why
/// not; a refused record changes nothing.
fn apply(
    records: &mut UsageIdentifiers,
    fields: &Map<String, Value>,
) -> Result<Map<String, Value>, Refused> {
    for required in ["Id", "UsageIdentifier"] {
        let present = fields
            .get(required)
            .and_then(Value::as_str)
            .is_some_and(|value| !value.is_empty());
        if !present {
            return Err(Refused::Field(
                required,
                format!("Field '{required}' is required"),
            ));
        }
    }
    if let Some(system_field) = SYSTEM_FIELDS
        .into_iter()
        .find(|field| fields.contains_key(*field))
    {
        return Err(Refused::Field(
            system_field,
            format!("Field '{system_field}' is system controlled"),
        ));
    }
    let id = fields.get("Id").and_then(Value::as_str).unwrap_or_default();
    let Some(record) = records.records.get_mut(id) else {
        return Err(Refused::Missing(id.to_owned()));
    };
    for (name, value) in fields {
        record.insert(name.clone(), value.clone());
    }
    record.insert(
        "Updated".to_owned(),
        Value::String(clock::utc_timestamp_now()),
    );
    record.insert(
        "UpdatedUserId".to_owned(),
        Value::String(API_USER_ID.to_owned()),
    );
    Ok(record.clone())
}

/// One record of an array update: `{"Id", "success", "ErrorCode", "ErrorText",
/// "ErrorElementField"}`; a failed record changes nothing.
fn update_item(records: &mut UsageIdentifiers, item: &Value) -> Value {
    let id = item.get("Id").and_then(Value::as_str).unwrap_or_default();
    let failed = |field: &str, text: &str| {
        json!({
            "Id": id,
            "success": false,
            "ErrorCode": "1",
            "ErrorText": text,
            "ErrorElementField": field,
        })
    };
    let Some(fields) = item.as_object() else {
        return failed("brmObjects", "record must be an object");
    };
    match apply(records, fields) {
        Ok(_) => json!({ "Id": id, "success": true, "ErrorCode": "0", "ErrorText": [] }),
        Err(Refused::Field(field, text)) => failed(field, &text),
        Err(Refused::Missing(id)) => {
            failed("Id", &format!("No USAGE_IDENTIFIER record with Id {id}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_accept_any_org() {
        assert!(matches!(
            route_of("/billingplatform/acme/rest/2.0/login"),
            Some(Route::Login)
        ));
        assert!(matches!(
            route_of("/billingplatform/other/rest/2.0/USAGE_IDENTIFIER"),
            Some(Route::UsageIdentifiers)
        ));
        assert!(matches!(
            route_of("/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER/1001"),
            Some(Route::UsageIdentifier("1001"))
        ));
        assert!(route_of("/billingplatform//rest/2.0/login").is_none());
        assert!(route_of("/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER/").is_none());
        assert!(route_of("/billingplatform/acme").is_none());
    }
}

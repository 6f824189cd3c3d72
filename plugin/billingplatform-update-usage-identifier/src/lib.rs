//! Task component `billingplatform-update-usage-identifier`: BillingPlatform
//! `PUT /rest/2.0/USAGE_IDENTIFIER`.
//!
//! The body is `{"brmObjects": {"Id", "UsageIdentifier", …}}`, or an array of such
//! records ("REST Methods": update takes arrays). System-controlled fields (`Created`,
//! `Updated`, `CreatedUserId`, `UpdatedUserId`) are left out of the request and named in
//! the output's `warnings`. A 200 in the newer `updateResponse` shape whose item says
//! `success: false` (or has a non-zero `ErrorCode`) is a failure.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("billingplatform-update-usage-identifier");
}

use bindings::exports::usage_billing::tasks::billingplatform_usage_identifier::{
    Guest as UsageIdentifier, UpdateRequest,
};
use serde_json::{Map, Value, json};
use task_guest::rules::{self, Problems};
use task_guest::{Endpoint, HeaderRule, HttpResponse, Method, TaskError};

/// The endpoint, from BillingPlatform's documentation.
pub static ENDPOINT: Endpoint = Endpoint {
    name: "billingplatform-update-usage-identifier",
    description: "Update a BillingPlatform USAGE_IDENTIFIER record (the token a usage collector triggers).",
    method: Method::Put,
    path: "/rest/2.0/USAGE_IDENTIFIER",
    idempotent: true,
    path_params: &[],
    query_params: &[],
    header_rules: &[
        HeaderRule {
            name: "sessionId",
            check: task_guest::non_empty,
        },
        HeaderRule {
            name: "Authorization",
            check: task_guest::bearer,
        },
    ],
    refused_headers: &[],
    content_type: "application/json; charset=utf-8",
    body,
    check_success,
    check_failure: task_guest::as_classified,
    input_schema: include_str!("../schema.json"),
    example_input: include_str!("../example.json"),
};

const SYSTEM_FIELDS: [&str; 4] = ["Created", "Updated", "CreatedUserId", "UpdatedUserId"];

fn body(value: Option<&Value>, problems: &mut Problems) -> Option<Value> {
    let object = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => {
            problems.add(
                "body",
                "required: {\"brmObjects\": {\"Id\": …, \"UsageIdentifier\": …}}",
            );
            return None;
        }
        Some(_) => {
            problems.add("body", "must be an object {\"brmObjects\": {…}}");
            return None;
        }
    };
    // The seed page: the body holds brmObjects.
    for key in object.keys().filter(|k| *k != "brmObjects") {
        problems.add(
            format!("body.{key}"),
            "unknown field; the body holds only brmObjects",
        );
    }
    // "REST Methods": update takes one record or an array of them.
    match object.get("brmObjects") {
        Some(Value::Object(record)) => {
            let record = checked_record("body.brmObjects", record, problems);
            Some(json!({ "brmObjects": record }))
        }
        Some(Value::Array(records)) if !records.is_empty() => {
            let mut sent = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let at = format!("body.brmObjects[{i}]");
                match record.as_object() {
                    Some(record) => sent.push(Value::Object(checked_record(&at, record, problems))),
                    None => problems.add(at, "must be an object (a USAGE_IDENTIFIER record)"),
                }
            }
            Some(json!({ "brmObjects": sent }))
        }
        Some(Value::Array(_)) => {
            problems.add("body.brmObjects", "must hold at least one record");
            None
        }
        None | Some(Value::Null) => {
            problems.add("body.brmObjects", "required");
            None
        }
        Some(_) => {
            problems.add(
                "body.brmObjects",
                "must be an object (the USAGE_IDENTIFIER record) or an array of them",
            );
            None
        }
    }
}

/// One USAGE_IDENTIFIER record: `Id` and `UsageIdentifier` required (the seed page);
/// the system-controlled fields left out with a warning; the rest sent as given.
fn checked_record(
    at: &str,
    record: &Map<String, Value>,
    problems: &mut Problems,
) -> Map<String, Value> {
    for key in ["Id", "UsageIdentifier"] {
        let field = format!("{at}.{key}");
        match record.get(key) {
            None | Some(Value::Null) => problems.add(field, "required"),
            Some(value) => {
                rules::string(&field, value, problems);
            }
        }
    }
    let kept = rules::omit_fields(
        record,
        at,
        &SYSTEM_FIELDS,
        "system-controlled: BillingPlatform sets it (API reference); left out of the request",
        problems,
    );
    rules::without_nulls(&kept)
}

/// The newer schema answers `{"updateResponse": [{"Id", "success", "ErrorCode",
/// "ErrorText", "ErrorElementField", …}]}` (API reference): an item with
/// `success: false` or a non-zero `ErrorCode` means that record was not updated.
fn check_success(response: &HttpResponse) -> Option<TaskError> {
    let body: UpdateAnswer = serde_json::from_slice(&response.body).ok()?;
    let items = body.update_response?;
    let items = items.as_array()?;
    let failed = items.iter().any(item_failed);
    failed.then(|| TaskError::Rejected(response.clone()))
}

/// The part of an answer the task reads; the rest of a body (however large) is skipped,
/// never built in memory.
#[derive(serde::Deserialize)]
struct UpdateAnswer {
    #[serde(rename = "updateResponse", default)]
    update_response: Option<Value>,
}

fn item_failed(item: &Value) -> bool {
    let error_code = match item.get("ErrorCode") {
        Some(Value::String(code)) => code != "0",
        Some(Value::Number(code)) => code.to_string() != "0",
        _ => false,
    };
    let unsuccessful = matches!(item.get("success"), Some(Value::Bool(false)))
        || matches!(item.get("success"), Some(Value::String(s)) if s.eq_ignore_ascii_case("false"));
    error_code || unsuccessful
}

struct Component;

task_guest::endpoint_task!(Component, ENDPOINT);

impl UsageIdentifier for Component {
    fn update(request: UpdateRequest) -> Result<HttpResponse, TaskError> {
        let mut headers = Map::new();
        task_guest::put(&mut headers, "sessionId", request.session_id);
        task_guest::put(&mut headers, "Authorization", request.authorization);
        let mut input = Map::new();
        input.insert("baseUrl".into(), request.base_url.into());
        input.insert("headers".into(), Value::Object(headers));
        input.insert(
            "body".into(),
            json!({ "brmObjects": { "Id": request.record.id, "UsageIdentifier": request.record.usage_identifier } }),
        );
        task_guest::put_options(&mut input, &request.options);
        task_guest::execute(&ENDPOINT, Value::Object(input))
    }
}

// Exported only when built as a component: the export names (`usage-billing:tasks/task@0.1.0#run`)
// are not valid native symbol names, and native builds exist only for lints and type checks.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

//! Task component `billingplatform-update-usage-identifier`: BillingPlatform
//! `PUT /rest/2.0/USAGE_IDENTIFIER`.
//!
//! The body is `{"brmObjects": {"Id", "UsageIdentifier", …}}`. System-controlled fields
//! (`Created`, `Updated`, `CreatedUserId`, `UpdatedUserId`) are refused, never sent.
//! A 200 in the newer `updateResponse` shape whose item has a non-zero `ErrorCode` is a
//! failure.

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
    for key in object.keys().filter(|k| *k != "brmObjects") {
        problems.add(
            format!("body.{key}"),
            "unknown field; the body holds only brmObjects",
        );
    }
    let record = match object.get("brmObjects") {
        Some(Value::Object(record)) => record,
        None | Some(Value::Null) => {
            problems.add("body.brmObjects", "required");
            return None;
        }
        Some(_) => {
            problems.add(
                "body.brmObjects",
                "must be an object (the USAGE_IDENTIFIER record)",
            );
            return None;
        }
    };
    for key in ["Id", "UsageIdentifier"] {
        let field = format!("body.brmObjects.{key}");
        match record.get(key) {
            None | Some(Value::Null) => problems.add(field, "required"),
            Some(value) => {
                if let Some(text) = rules::string(&field, value, problems)
                    && text.trim().is_empty()
                {
                    problems.add(field, "must not be empty");
                }
            }
        }
    }
    rules::refuse_fields(
        record,
        "body.brmObjects",
        &SYSTEM_FIELDS,
        "system-controlled: BillingPlatform sets it; remove it from the input",
        problems,
    );
    Some(json!({ "brmObjects": rules::without_nulls(record) }))
}

/// The newer schema answers `{"updateResponse": [{"ErrorCode": "0", …}]}`; a non-zero
/// `ErrorCode` in any item means that record was not updated.
fn check_success(response: &HttpResponse) -> Option<TaskError> {
    let body = task_guest::body_json(response)?;
    let items = body.get("updateResponse")?.as_array()?;
    let failed = items.iter().any(|item| match item.get("ErrorCode") {
        Some(Value::String(code)) => code != "0",
        Some(Value::Number(code)) => code.to_string() != "0",
        _ => false,
    });
    failed.then(|| TaskError::Rejected(response.clone()))
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

//! Task component `rebilly-create-usage`: Rebilly `POST /usages`.
//!
//! Not idempotent, and Rebilly has no idempotency header: a request that may have
//! reached the server must not be sent again blindly (a duplicate is double billing).
//! Read-only fields (`id`, `invoiceId`, `invoiceItemId`, `createdTime`, `updatedTime`,
//! `_links`) are left out of the request and named in the output's `warnings`.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("rebilly-create-usage");
}

use bindings::exports::usage_billing::tasks::rebilly_usage::{
    CreateRequest, Guest as RebillyUsage,
};
use serde_json::{Map, Value};
use task_guest::rules::{self, Problems};
use task_guest::{Endpoint, HeaderRule, HttpResponse, Method, TaskError};

/// The endpoint, from Rebilly's documentation.
pub static ENDPOINT: Endpoint = Endpoint {
    name: "rebilly-create-usage",
    description: "Report usage of a Rebilly subscription (creates a usage record; not idempotent).",
    method: Method::Post,
    path: "/usages",
    idempotent: false,
    path_params: &[],
    query_params: &[],
    header_rules: &[
        HeaderRule {
            name: "REB-APIKEY",
            check: task_guest::non_empty,
        },
        HeaderRule {
            name: "Authorization",
            check: task_guest::bearer,
        },
    ],
    refused_headers: &[],
    content_type: "application/json",
    body,
    check_success: task_guest::always_success,
    check_failure: task_guest::as_classified,
    input_schema: include_str!("../schema.json"),
    example_input: include_str!("../example.json"),
};

const READ_ONLY: [&str; 6] = [
    "id",
    "invoiceId",
    "invoiceItemId",
    "createdTime",
    "updatedTime",
    "_links",
];

fn body(value: Option<&Value>, problems: &mut Problems) -> Option<Value> {
    let given = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => {
            problems.add("body", "required: {\"subscriptionId\": …, \"quantity\": …}");
            return None;
        }
        Some(_) => {
            problems.add("body", "must be an object");
            return None;
        }
    };
    // Usage.yaml: readOnly; Rebilly sets them, so they are left out (and named).
    let object = rules::omit_fields(
        given,
        "body",
        &READ_ONLY,
        "read-only at Rebilly (Usage.yaml): left out of the request",
        problems,
    );
    // Fields the task does not list are sent as given: Rebilly decides on them.
    let mut out = rules::without_nulls(&object);
    // Usage.yaml: required, string, maxLength 50.
    match object.get("subscriptionId") {
        None | Some(Value::Null) => problems.add("body.subscriptionId", "required"),
        Some(value) => {
            if let Some(id) = rules::string("body.subscriptionId", value, problems) {
                rules::max_chars("body.subscriptionId", id, 50, problems);
            }
        }
    }
    // Usage.yaml: required, a JSON number (exponents included), minimum 0.001, and the
    // seed page: at most 3 decimal places. Both apply to the value, not its spelling.
    match object.get("quantity") {
        None | Some(Value::Null) => problems.add("body.quantity", "required"),
        Some(value) => {
            if let Some(decimal) = rules::decimal("body.quantity", value, problems) {
                if decimal.negative || decimal.is_zero() {
                    problems.add("body.quantity", "must be at least 0.001");
                } else if decimal.fraction.len() > 3 {
                    problems.add(
                        "body.quantity",
                        "at most 3 decimal places (the minimum billable unit is 0.001)",
                    );
                } else {
                    out.insert("quantity".into(), rules::decimal_json(&decimal));
                    problems.exact("/quantity", &decimal);
                }
            }
        }
    }
    // Usage.yaml: format date-time; "if this value is not provided or is empty, the date
    // and time of the request is used", so "" is sent as given.
    if let Some(value) = object.get("usageTime").filter(|v| !v.is_null())
        && let Some(time) = rules::string("body.usageTime", value, problems)
        && !time.is_empty()
        && !rules::is_rfc3339(time)
    {
        problems.add(
            "body.usageTime",
            "must be an RFC 3339 date-time like 2026-11-01T12:00:00Z, or empty",
        );
    }
    // The seed page: a boolean.
    if let Some(value) = object.get("acceptPartialQuantity").filter(|v| !v.is_null())
        && !value.is_boolean()
    {
        problems.add("body.acceptPartialQuantity", "must be a boolean");
    }
    Some(Value::Object(out))
}

struct Component;

task_guest::endpoint_task!(Component, ENDPOINT);

impl RebillyUsage for Component {
    fn create(request: CreateRequest) -> Result<HttpResponse, TaskError> {
        let mut headers = Map::new();
        task_guest::put(&mut headers, "REB-APIKEY", request.api_key);
        task_guest::put(&mut headers, "Authorization", request.authorization);
        let usage = request.usage;
        let mut body = Map::new();
        body.insert("subscriptionId".into(), usage.subscription_id.into());
        body.insert(
            "quantity".into(),
            task_guest::decimal_value(&usage.quantity),
        );
        task_guest::put(&mut body, "usageTime", usage.usage_time);
        task_guest::put(
            &mut body,
            "acceptPartialQuantity",
            usage.accept_partial_quantity,
        );
        let mut input = Map::new();
        input.insert("baseUrl".into(), request.base_url.into());
        input.insert("headers".into(), Value::Object(headers));
        input.insert("body".into(), Value::Object(body));
        task_guest::put_options(&mut input, &request.options);
        task_guest::execute(&ENDPOINT, Value::Object(input))
    }
}

// Exported only when built as a component: the export names (`usage-billing:tasks/task@0.1.0#run`)
// are not valid native symbol names, and native builds exist only for lints and type checks.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

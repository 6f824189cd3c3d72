//! Task component `elevate-patch-usage-product-inventory`: Elevate Billing
//! `PATCH /usage-product-inventories/{usage_product_inventory_id}` with an RFC 6902
//! JSON Patch body, which the server applies atomically.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("elevate-patch-usage-product-inventory");
}

use bindings::exports::usage_billing::tasks::elevate_usage_product_inventory::{
    Guest as UsageProductInventory, PatchOp, PatchRequest,
};
use serde_json::{Map, Value, json};
use task_guest::rules::{self, Problems};
use task_guest::{Endpoint, HeaderRule, HttpResponse, Method, PathParam, TaskError};

/// The endpoint, from Elevate's documentation.
pub static ENDPOINT: Endpoint = Endpoint {
    name: "elevate-patch-usage-product-inventory",
    description: "Apply a JSON Patch (RFC 6902) to an Elevate usage product inventory, atomically.",
    method: Method::Patch,
    path: "/usage-product-inventories/{usage_product_inventory_id}",
    idempotent: false,
    path_params: &[PathParam {
        name: "usage_product_inventory_id",
        rule: inventory_id,
    }],
    query_params: &[],
    header_rules: &[HeaderRule {
        name: "Authorization",
        check: task_guest::bearer,
    }],
    refused_headers: &[],
    content_type: "application/json-patch+json",
    body,
    check_success: task_guest::always_success,
    check_failure: task_guest::as_classified,
    input_schema: include_str!("../schema.json"),
    example_input: include_str!("../example.json"),
};

const OPS: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];

fn inventory_id(field: &str, value: &Value, problems: &mut Problems) -> Option<String> {
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    // Elevate's API reference: `integer <int64> >= 1`.
    match id {
        Some(id) if (1..=i64::MAX as u64).contains(&id) => Some(id.to_string()),
        _ => {
            problems.add(
                field,
                "must be an integer from 1 to 9223372036854775807 (int64)",
            );
            None
        }
    }
}

fn body(value: Option<&Value>, problems: &mut Problems) -> Option<Value> {
    let operations = match value {
        Some(Value::Array(operations)) => operations,
        None | Some(Value::Null) => {
            problems.add("body", "required: a JSON Patch array, e.g. [{\"op\": \"replace\", \"path\": \"/usageCapEnabled\", \"value\": true}]");
            return None;
        }
        Some(_) => {
            problems.add(
                "body",
                "must be a JSON Patch array of operations (RFC 6902)",
            );
            return None;
        }
    };
    // RFC 6902 §3: a patch is an array of operations; an empty one is a valid no-op,
    // sent as given.
    for (i, operation) in operations.iter().enumerate() {
        let at = format!("body[{i}]");
        let Some(operation) = operation.as_object() else {
            problems.add(at, "must be an object {op, path, value?, from?}");
            continue;
        };
        // RFC 6902 §4: "Members that are not explicitly defined for the operation in
        // question MUST be ignored", so they are sent as given (Elevate's own request
        // sample puts `from` on an `add`).
        let op = match operation.get("op") {
            None | Some(Value::Null) => {
                problems.add(
                    format!("{at}.op"),
                    "required: one of add, remove, replace, move, copy, test",
                );
                None
            }
            Some(Value::String(op)) if OPS.contains(&op.as_str()) => Some(op.as_str()),
            Some(_) => {
                problems.add(
                    format!("{at}.op"),
                    "must be one of add, remove, replace, move, copy, test",
                );
                None
            }
        };
        pointer(&format!("{at}.path"), operation.get("path"), true, problems);
        // RFC 6902 §4.4, §4.5: move and copy need `from`, a JSON Pointer.
        if let Some("move" | "copy") = op {
            pointer(&format!("{at}.from"), operation.get("from"), true, problems)
        }
        // RFC 6902 §4.1, §4.3, §4.6: add, replace and test need `value`.
        if let Some(op @ ("add" | "replace" | "test")) = op
            && !operation.contains_key("value")
        {
            problems.add(format!("{at}.value"), format!("required for {op}"));
        }
    }
    Some(Value::Array(operations.clone()))
}

fn pointer(field: &str, value: Option<&Value>, required: bool, problems: &mut Problems) {
    match value {
        None | Some(Value::Null) if required => {
            problems.add(field, "required: a JSON Pointer like /usageCapEnabled")
        }
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if rules::is_json_pointer(text) => {}
        Some(_) => problems.add(
            field,
            "must be a JSON Pointer (RFC 6901): empty, or starting with / with ~ only as ~0 or ~1",
        ),
    }
}

struct Component;

task_guest::endpoint_task!(Component, ENDPOINT);

impl UsageProductInventory for Component {
    fn patch(request: PatchRequest) -> Result<HttpResponse, TaskError> {
        let mut operations = Vec::new();
        for (i, operation) in request.operations.into_iter().enumerate() {
            let op = match operation.op {
                PatchOp::Add => "add",
                PatchOp::Remove => "remove",
                PatchOp::Replace => "replace",
                PatchOp::Move => "move",
                PatchOp::Copy => "copy",
                PatchOp::Test => "test",
            };
            let mut object = Map::new();
            object.insert("op".into(), op.into());
            object.insert("path".into(), operation.path.into());
            task_guest::put(&mut object, "from", operation.from);
            if let Some(text) = operation.value {
                object.insert(
                    "value".into(),
                    task_guest::json_text(&format!("body[{i}].value"), &text)?,
                );
            }
            operations.push(Value::Object(object));
        }
        let mut headers = Map::new();
        task_guest::put(&mut headers, "Authorization", request.authorization);
        let mut input = Map::new();
        input.insert("baseUrl".into(), request.base_url.into());
        input.insert(
            "path".into(),
            json!({ "usage_product_inventory_id": request.usage_product_inventory_id }),
        );
        input.insert("headers".into(), Value::Object(headers));
        input.insert("body".into(), Value::Array(operations));
        task_guest::put_options(&mut input, &request.options);
        task_guest::execute(&ENDPOINT, Value::Object(input))
    }
}

// Exported only when built as a component: the export names (`usage-billing:tasks/task@0.1.0#run`)
// are not valid native symbol names, and native builds exist only for lints and type checks.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

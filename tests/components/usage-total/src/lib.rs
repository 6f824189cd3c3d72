//! Example of a user's own task component, `usage-total`: it totals the `quantity` of
//! usage records, so a workflow can report one figure to a vendor. It exports the
//! `usage-billing:tasks/task` interface of the `task-runner` world (`wit/worlds.wit`),
//! which is all `harness --tasks DIR` needs; see docs/user-tasks.md.
//!
//! Input: `{"records": [{"quantity": 1.5}, …], "decimals": 2}` (`decimals` optional,
//! default 2). Output: `{"total": 4.25, "count": 2}`. A record without a numeric
//! `quantity`, or any other input key, is an `invalid-input` error naming it, as the
//! shipped tasks report them.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "task-runner",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::exports::usage_billing::tasks::task::Guest;
use bindings::usage_billing::tasks::types::{FieldError, TaskError, TaskInfo};
use serde_json::{Value, json};

struct UsageTotal;

impl Guest for UsageTotal {
    fn info() -> TaskInfo {
        TaskInfo {
            name: "usage-total".into(),
            description: "Totals the quantity of usage records (an example user task).".into(),
            method: "NONE".into(),
            path: "".into(),
            // It sends nothing: running it twice is harmless.
            idempotent: true,
            input_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["records"],
                "properties": {
                    "records": { "type": "array", "items": { "type": "object", "required": ["quantity"] } },
                    "decimals": { "type": "integer", "minimum": 0, "maximum": 9 },
                },
            })
            .to_string(),
            example_input: json!({ "records": [{ "quantity": 1.5 }, { "quantity": 2.75 }] })
                .to_string(),
        }
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input: Value = serde_json::from_str(&input).map_err(|e| invalid("$", e.to_string()))?;
        // Strict on purpose: the host adds nothing to a user task's input (no `baseUrl`
        // it did not ask for), so any other key is the caller's mistake.
        if let Some(object) = input.as_object()
            && let Some(key) = object.keys().find(|k| *k != "records" && *k != "decimals")
        {
            return Err(invalid(
                key,
                "unknown input field; allowed: records, decimals".into(),
            ));
        }
        let Some(records) = input.get("records").and_then(Value::as_array) else {
            return Err(invalid(
                "records",
                "required: a list of usage records".into(),
            ));
        };
        let decimals = match input.get("decimals") {
            None | Some(Value::Null) => 2,
            Some(value) => match value.as_u64().filter(|d| *d <= 9) {
                Some(d) => d as i32,
                None => {
                    return Err(invalid(
                        "decimals",
                        "must be a whole number from 0 to 9".into(),
                    ));
                }
            },
        };
        let mut problems = Vec::new();
        let mut total = 0.0;
        for (i, record) in records.iter().enumerate() {
            match record.get("quantity").and_then(Value::as_f64) {
                Some(quantity) => total += quantity,
                None => problems.push(FieldError {
                    field: format!("records[{i}].quantity"),
                    message: "required: a number".into(),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(TaskError::InvalidInput(problems));
        }
        let scale = 10f64.powi(decimals);
        let total = (total * scale).round() / scale;
        Ok(json!({ "total": total, "count": records.len() }).to_string())
    }
}

fn invalid(field: &str, message: String) -> TaskError {
    TaskError::InvalidInput(vec![FieldError {
        field: field.into(),
        message,
    }])
}

// Exported only when built as a component (native builds exist for lints only).
#[cfg(target_arch = "wasm32")]
bindings::export!(UsageTotal with_types_in bindings);

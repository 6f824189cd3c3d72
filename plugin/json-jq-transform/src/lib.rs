//! Task component `json-jq-transform`: Conductor's `JSON_JQ_TRANSFORM`, its jq query
//! run by jaq (a well-kept jq implementation in Rust) inside the sandbox, so a query
//! that loops or allocates without end meets the run's time and memory limits, and has
//! no network (the host grants it none).
//!
//! As Conductor's `JsonJqTransform`: the whole task input is jq's `.`
//! (`queryExpression` included); `queryExpression` is required; the output is `result`
//! (the first value, or null) and `resultList` (every value). A query that does not
//! parse or fails is an `invalid-input` error naming `queryExpression`, with jaq's
//! message.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    // Only the shared types: this world imports no network.
    wit_bindgen::generate!({
        world: "json-jq-transform",
        path: "../../wit",
        with: {
            "usage-billing:tasks/types@0.1.0": task_guest::bindings::usage_billing::tasks::types,
        },
    });
}

use bindings::exports::usage_billing::tasks::task::Guest as Task;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, RcIter};
use jaq_json::Val;
use serde_json::{Value, json};
use task_guest::{FieldError, TaskError, TaskInfo};

/// The most values one query may give: a query that streams without end fails here
/// instead of filling memory first.
const MAX_RESULTS: usize = 100_000;

fn info() -> TaskInfo {
    TaskInfo {
        name: "json-jq-transform".into(),
        description: "Conductor's JSON_JQ_TRANSFORM: a jq query over the task input, run by jaq in the sandbox.".into(),
        // It sends no request.
        method: "NONE".into(),
        path: "-".into(),
        idempotent: true,
        input_schema: include_str!("../schema.json").into(),
        example_input: include_str!("../example.json").into(),
    }
}

fn invalid(message: String) -> TaskError {
    TaskError::InvalidInput(vec![FieldError {
        field: "queryExpression".into(),
        message,
    }])
}

/// Run `queryExpression` over the whole input, as Conductor does.
fn transform(input: Value) -> Result<Value, TaskError> {
    let Some(query) = input.get("queryExpression").and_then(Value::as_str) else {
        return Err(invalid(
            "required: a jq query (Conductor: \"Missing 'queryExpression' in input parameters\")"
                .into(),
        ));
    };
    let query = query.to_string();
    let program = File {
        code: query.as_str(),
        path: (),
    };
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let arena = Arena::default();
    let modules = loader.load(&arena, program).map_err(|errors| {
        invalid(format!(
            "does not parse: {:?}",
            errors.iter().map(|(_, e)| e).collect::<Vec<_>>()
        ))
    })?;
    let filter = Compiler::default()
        .with_funs(jaq_std::funs().chain(jaq_json::funs()))
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .iter()
                .flat_map(|(_, errs)| {
                    errs.iter()
                        .map(|(name, undefined)| format!("{name} ({undefined:?})"))
                })
                .collect();
            invalid(format!("does not compile: undefined {}", names.join(", ")))
        })?;
    let inputs = RcIter::new(core::iter::empty());
    let mut results = Vec::new();
    for value in filter.run((Ctx::new([], &inputs), Val::from(input))) {
        match value {
            Ok(value) => results.push(Value::from(value)),
            Err(e) => return Err(invalid(format!("failed: {e}"))),
        }
        if results.len() > MAX_RESULTS {
            return Err(invalid(format!("gave more than {MAX_RESULTS} values")));
        }
    }
    Ok(json!({
        "result": results.first().cloned().unwrap_or(Value::Null),
        "resultList": results,
    }))
}

struct Component;

impl Task for Component {
    fn info() -> TaskInfo {
        info()
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input = task_guest::parse_input(&input)?;
        transform(input).map(|output| output.to_string())
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

//! Task component `javascript`: the scripts of Conductor's INLINE, LAMBDA, SWITCH
//! (`javascript` / `graaljs` evaluators) and DO_WHILE (`loopCondition`), run by Boa (a
//! maintained ECMAScript engine in Rust; Conductor's ScriptEvaluator uses GraalJS) inside
//! the sandbox: a script that loops or allocates without end meets the run's time and
//! memory limits, every loop has an iteration budget and calls a depth budget, and it
//! has no network, file or environment (the host grants it none).
//!
//! Input: `script` (the source) and `input` (what the script sees as `$`). Output:
//! `result`, the value of the script's last statement, as Conductor's `getObject`
//! converts it (an integral number is an integer, `undefined` is null). A script that
//! does not parse, throws or meets a budget is an `invalid-input` error naming `script`,
//! with Conductor's "Error evaluating the script `…`".

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    // Only the shared types: this world imports no network.
    wit_bindgen::generate!({
        world: "javascript",
        path: "../../wit",
        with: {
            "usage-billing:tasks/types@0.1.0": task_guest::bindings::usage_billing::tasks::types,
        },
    });
}

use bindings::exports::usage_billing::tasks::task::Guest as Task;
use boa_engine::property::Attribute;
use boa_engine::{Context, JsError, JsValue, Source, js_string};
use serde_json::{Number, Value, json};
use task_guest::{FieldError, TaskError, TaskInfo};

/// Iterations one loop of a script may run: a loop that never ends fails here with a
/// message naming the budget, before the time limit.
pub const LOOP_ITERATION_LIMIT: u64 = 10_000_000;
/// How deep a script's calls may nest.
pub const RECURSION_LIMIT: usize = 512;

fn info() -> TaskInfo {
    TaskInfo {
        name: "javascript".into(),
        description: "Conductor's JavaScript (INLINE, LAMBDA, SWITCH, DO_WHILE): a script over `$`, run by Boa in the sandbox.".into(),
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
        field: "script".into(),
        message,
    }])
}

/// Conductor's `handlePolyglotException`: "Error evaluating the script `MESSAGE`".
fn script_error(error: &JsError, context: &mut Context) -> TaskError {
    let message = match error.try_native(context) {
        Ok(native) => native.to_string(),
        Err(_) => error.to_string(),
    };
    invalid(format!("Error evaluating the script `{message}`"))
}

/// Evaluate `script` with `$` bound to `input`.
pub fn evaluate(script: &str, input: &Value) -> Result<Value, TaskError> {
    let mut context = Context::default();
    let limits = context.runtime_limits_mut();
    limits.set_loop_iteration_limit(LOOP_ITERATION_LIMIT);
    limits.set_recursion_limit(RECURSION_LIMIT);
    let dollar = JsValue::from_json(input, &mut context)
        .map_err(|e| invalid(format!("`input` cannot be given to the script: {e}")))?;
    context
        .register_global_property(js_string!("$"), dollar, Attribute::all())
        .map_err(|e| script_error(&e, &mut context))?;
    let value = context
        .eval(Source::from_bytes(script))
        .map_err(|e| script_error(&e, &mut context))?;
    let result = value
        .to_json(&mut context)
        .map_err(|e| script_error(&e, &mut context))?
        .unwrap_or(Value::Null);
    Ok(integral(result))
}

/// As Conductor's `getObject`: a number that fits an integer is one (`3`, not `3.0`).
fn integral(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            match n.as_f64() {
                // 2^63: the largest magnitude an i64 holds.
                Some(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 =>
                {
                    #[allow(clippy::cast_possible_truncation)]
                    Value::Number(Number::from(f as i64))
                }
                _ => Value::Number(n),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

fn run(input: &Value) -> Result<Value, TaskError> {
    let Some(script) = input.get("script").and_then(Value::as_str) else {
        return Err(invalid("required: the JavaScript to evaluate".into()));
    };
    if script.trim().is_empty() {
        return Err(invalid("must not be blank".into()));
    }
    let bindings = input.get("input").unwrap_or(&Value::Null);
    evaluate(script, bindings).map(|result| json!({ "result": result }))
}

struct Component;

impl Task for Component {
    fn info() -> TaskInfo {
        info()
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input = task_guest::parse_input(&input)?;
        run(&input).map(|output| output.to_string())
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(script: &str, input: Value) -> Result<Value, String> {
        evaluate(script, &input).map_err(|e| match e {
            TaskError::InvalidInput(fields) => fields[0].message.clone(),
            other => format!("{other:?}"),
        })
    }

    /// The shapes Conductor users write: `$` is the input, the last statement's value is
    /// the result, functions and arrows work, integral numbers come back as integers.
    #[test]
    fn scripts_see_the_input_as_dollar_and_give_their_last_value() {
        let input = json!({ "qty": 2.5, "items": [1, 2, 3], "name": "acme" });
        for (script, result) in [
            ("$.qty * 2", json!(5)),
            ("$.qty / 2", json!(1.25)),
            ("$.name == 'acme' ? 'big' : 'small'", json!("big")),
            ("if ($.qty > 1) { true; } else { false; }", json!(true)),
            (
                "function scriptFun(){ return $.items.map(i => i * 10); } scriptFun();",
                json!([10, 20, 30]),
            ),
            (
                "({ total: $.items.reduce((a, b) => a + b, 0), first: $.items[0] })",
                json!({ "total": 6, "first": 1 }),
            ),
            ("$.missing", Value::Null),
            ("undefined", Value::Null),
            (
                "JSON.stringify({ a: [1, 'b'] })",
                json!("{\"a\":[1,\"b\"]}"),
            ),
        ] {
            assert_eq!(eval(script, input.clone()), Ok(result), "{script}");
        }
    }

    /// A script that throws, does not parse or loops without end fails naming why.
    #[test]
    fn a_throw_a_syntax_error_and_an_endless_loop_fail_with_their_reason() {
        assert_eq!(
            eval(
                "throw new Error('no rating for ' + $.id)",
                json!({ "id": "u1" })
            ),
            Err("Error evaluating the script `Error: no rating for u1 (unknown at :1:7)`".into())
        );
        let parse = eval("{ total: ", json!({})).unwrap_err();
        assert!(
            parse.starts_with("Error evaluating the script `SyntaxError"),
            "{parse}"
        );
        assert_eq!(
            eval("while (true) {}", json!({})),
            Err(format!(
                "Error evaluating the script `RuntimeLimit: Maximum loop iteration limit {LOOP_ITERATION_LIMIT} exceeded`"
            ))
        );
        let deep = eval("function f(n) { return f(n + 1); } f(0)", json!({})).unwrap_err();
        assert_eq!(
            deep,
            "Error evaluating the script `RuntimeLimit: exceeded maximum number of recursive calls`"
        );
    }
}

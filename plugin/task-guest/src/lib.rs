//! The shared guest library of the usage-billing task components.
//!
//! Every endpoint component describes itself as an [`Endpoint`] (method, path template,
//! parameters and body rules from the vendor's documentation) and hands its JSON input
//! to [`run`]. This library validates the whole input before anything is sent, builds
//! the request, sends it through `wasi:http/outgoing-handler`, decodes gzip and
//! classifies the answer into the WIT `task-error` cases.

#![allow(unsafe_code)] // wit-bindgen's generated glue

pub mod bindings {
    //! `wasi:http` imports and the shared `usage-billing:tasks/types` interface.
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "guest-imports",
        path: "../../wit",
        generate_all,
    });
}

mod envelope;
mod exchange;
mod response;
pub mod rules;
mod send;

pub use bindings::usage_billing::tasks::types::{
    FieldError, HttpResponse, PlannedRequest, RequestOptions, RetryResponse, TaskError, TaskInfo,
};
pub use envelope::{
    Endpoint, HeaderRule, Method, PathParam, QueryKind, QueryParam, always_success, as_classified,
};
pub use exchange::{plan, read, received};
pub use response::{
    body_json, classify, output_json, rate_limit_wait_ms, reason_phrase, retry_after_ms,
};
pub use rules::Problems;
pub use send::{OutgoingRequest, send};

use serde_json::Value;

/// Run an endpoint task on its JSON input: validate, send, classify.
/// Returns the Conductor-shaped output JSON on success, with a `warnings` list naming
/// every input field the task left out of the request (read-only at the vendor).
pub fn run(endpoint: &Endpoint, input: &str) -> Result<String, TaskError> {
    let value = parse_input(input)?;
    let (request, warnings) = endpoint.plan(&value)?;
    let response = exchange(endpoint, &request)?;
    Ok(output_with_warnings(&response, &warnings))
}

/// Like [`run`] but on an already parsed input, returning the raw response; the typed
/// WIT interfaces use this (their typed fields hold nothing a task leaves out).
pub fn execute(endpoint: &Endpoint, input: Value) -> Result<HttpResponse, TaskError> {
    let request = endpoint.build_request(&input)?;
    exchange(endpoint, &request)
}

/// Send a planned request and classify the answer as the endpoint's vendor documents it.
fn exchange(endpoint: &Endpoint, request: &OutgoingRequest) -> Result<HttpResponse, TaskError> {
    answer(endpoint, send(request)?)
}

/// Classify a received answer as the endpoint's vendor documents it.
fn answer(endpoint: &Endpoint, response: HttpResponse) -> Result<HttpResponse, TaskError> {
    let response = classify(response).map_err(endpoint.check_failure)?;
    if let Some(unreadable) = unreadable_success(&response) {
        return Err(unreadable);
    }
    match (endpoint.check_success)(&response) {
        Some(failed) => Err((endpoint.check_failure)(failed)),
        None => Ok(response),
    }
}

/// The output JSON, with `warnings: [{field, message}]` when there are any.
pub fn output_with_warnings(response: &HttpResponse, warnings: &[FieldError]) -> String {
    let mut output = output_json(response);
    if warnings.is_empty() {
        return output;
    }
    let listed: Vec<Value> = warnings
        .iter()
        .map(|w| serde_json::json!({ "field": w.field, "message": w.message }))
        .collect();
    // The output is one JSON object: its closing brace gives way to the warnings.
    output.pop();
    output.push_str(&format!(",\"warnings\":{}}}", Value::Array(listed)));
    output
}

/// Every vendor endpoint answers success with a JSON body (the record, or Zuora's
/// `{"Success": …}`). A 2xx whose body is empty or not JSON (a proxy's HTML page, a body
/// cut short) is no usable answer: it cannot tell whether the request was applied, so
/// it is a `transport` failure (retried when the call is idempotent, checked first when
/// it is not) rather than a success that nothing downstream can read.
fn unreadable_success(response: &HttpResponse) -> Option<TaskError> {
    if response::json_text(&response.body).is_some() {
        return None;
    }
    let status = format!("{} {}", response.status_code, response.reason_phrase);
    let cannot_tell = "the vendor answers JSON, so whether the request was applied cannot be told";
    Some(TaskError::Transport(if response.body.is_empty() {
        format!("{status} with an empty body: {cannot_tell}")
    } else {
        let content_type = response
            .headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map_or("no content type", |(_, value)| value.as_str());
        let text = String::from_utf8_lossy(&response.body);
        let start: String = text.chars().take(60).collect();
        let more = if start.len() < text.len() { "…" } else { "" };
        format!(
            "{status} with a body that is not JSON ({content_type}, {} bytes): {cannot_tell}; it begins {start:?}{more}",
            response.body.len()
        )
    }))
}

/// Parse a task input string as JSON, reporting a parse error as an input error.
pub fn parse_input(input: &str) -> Result<Value, TaskError> {
    serde_json::from_str(input).map_err(|e| {
        TaskError::InvalidInput(vec![FieldError {
            field: "$".into(),
            message: format!("input is not valid JSON: {e}"),
        }])
    })
}

/// Describe an endpoint as the WIT `task-info` record.
pub fn info(endpoint: &Endpoint) -> TaskInfo {
    TaskInfo {
        name: endpoint.name.into(),
        description: endpoint.description.into(),
        method: endpoint.method.as_str().into(),
        path: endpoint.path.into(),
        idempotent: endpoint.idempotent,
        input_schema: endpoint.input_schema.into(),
        example_input: endpoint.example_input.into(),
    }
}

/// Put an optional value into a JSON object under `key` when present.
pub fn put<T: Into<Value>>(
    object: &mut serde_json::Map<String, Value>,
    key: &str,
    value: Option<T>,
) {
    if let Some(value) = value {
        object.insert(key.into(), value.into());
    }
}

/// The `connectionTimeOut` / `readTimeOut` input keys from typed request options.
pub fn put_options(object: &mut serde_json::Map<String, Value>, options: &RequestOptions) {
    put(object, "connectionTimeOut", options.connect_timeout_ms);
    put(object, "readTimeOut", options.read_timeout_ms);
}

/// Parse JSON text given in a typed field (e.g. a patch `value`), naming the field on error.
pub fn json_text(field: &str, text: &str) -> Result<Value, TaskError> {
    serde_json::from_str(text).map_err(|e| {
        TaskError::InvalidInput(vec![FieldError {
            field: field.into(),
            message: format!("must be JSON text: {e}"),
        }])
    })
}

/// A decimal given as text in a typed field, as a JSON number with exactly that text;
/// left as a string (to be rejected by validation) when it is not a number.
pub fn decimal_value(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(text.into()),
    }
}

/// Generate a task component's bindings for `world`, reusing this library's `wasi:http`
/// and shared-types bindings so that every component shares one set of Rust types.
#[macro_export]
macro_rules! bind_world {
    ($world:tt) => {
        wit_bindgen::generate!({
            world: $world,
            path: "../../wit",
            with: {
                "wasi:http/outgoing-handler@0.2.12": task_guest::bindings::wasi::http::outgoing_handler,
                "wasi:http/types@0.2.12": task_guest::bindings::wasi::http::types,
                "wasi:io/poll@0.2.12": task_guest::bindings::wasi::io::poll,
                "wasi:io/error@0.2.12": task_guest::bindings::wasi::io::error,
                "wasi:io/streams@0.2.12": task_guest::bindings::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": task_guest::bindings::wasi::clocks::monotonic_clock,
                "usage-billing:tasks/types@0.1.0": task_guest::bindings::usage_billing::tasks::types,
            },
        });
    };
}

/// Implement the generated `task` and `exchange` interfaces for `$component` with an
/// [`Endpoint`]: `info` describes it, `run` validates, sends and classifies, and
/// `exchange` does the same in two halves for a host that sends the request itself. Use it inside the crate
/// where [`bind_world!`] generated the `bindings` module.
#[macro_export]
macro_rules! endpoint_task {
    ($component:ident, $endpoint:expr) => {
        impl bindings::exports::usage_billing::tasks::task::Guest for $component {
            fn info() -> task_guest::TaskInfo {
                task_guest::info(&$endpoint)
            }

            fn run(input: String) -> Result<String, task_guest::TaskError> {
                task_guest::run(&$endpoint, &input)
            }
        }

        impl bindings::exports::usage_billing::tasks::exchange::Guest for $component {
            fn plan(input: String) -> Result<task_guest::PlannedRequest, task_guest::TaskError> {
                task_guest::plan(&$endpoint, &input)
            }

            fn read(
                request: task_guest::PlannedRequest,
                response: task_guest::HttpResponse,
            ) -> Result<String, task_guest::TaskError> {
                task_guest::read(&$endpoint, &request, response)
            }
        }
    };
}

/// Header rule: `Authorization` must be `Bearer <token>`.
pub fn bearer(field: &str, value: &str, problems: &mut Problems) {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "));
    if token.is_none_or(|t| t.trim().is_empty()) {
        problems.add(field, "must be `Bearer <token>`");
    }
}

/// Header rule: the value must not be empty.
pub fn non_empty(field: &str, value: &str, problems: &mut Problems) {
    if value.trim().is_empty() {
        problems.add(field, "must not be empty");
    }
}

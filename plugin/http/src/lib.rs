//! Task component `http`: the generic Conductor HTTP task, sandboxed.
//!
//! Input as Conductor's `HttpTask` reads it, under `http_request` (its siblings then
//! ignored) or flat: `uri`, `method` (required), `headers` (values of any JSON type, as
//! text; nulls skipped), `body` (a string as it is, anything else as JSON), `accept` (a
//! media type or a list, default `application/json`), `contentType` (default
//! `application/json`), `connectionTimeOut` and `readTimeOut` (ms, numbers or numeric
//! strings, default 3000 each). Keys Conductor ignores are ignored with a warning in the
//! output. The component can reach only the origins its host grants.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("http");
}

use bindings::exports::usage_billing::tasks::exchange::Guest as Exchange;
use bindings::exports::usage_billing::tasks::http_task::{Guest as HttpTask, HttpRequest};
use bindings::exports::usage_billing::tasks::task::Guest as Task;
use serde_json::{Map, Value};
use task_guest::rules::{self, Problems};
use task_guest::{
    FieldError, HttpResponse, Method, OutgoingRequest, PlannedRequest, TaskError, TaskInfo,
};

/// The fields of Conductor's `HttpTask.Input` (`http-task/.../HttpTask.java`). Conductor
/// reads the input with `FAIL_ON_UNKNOWN_PROPERTIES` off, so any other key is ignored
/// there; here it is ignored with a warning naming it.
const KEYS: [&str; 10] = [
    "uri",
    "method",
    "headers",
    "body",
    "accept",
    "contentType",
    "connectionTimeOut",
    "readTimeOut",
    "vipAddress",
    "appName",
];

fn info() -> TaskInfo {
    TaskInfo {
        name: "http".into(),
        description: "The Conductor HTTP task (uri, method, headers, body), limited to the origins the host grants.".into(),
        method: "ANY".into(),
        path: "{uri}".into(),
        idempotent: false,
        input_schema: include_str!("../schema.json").into(),
        example_input: include_str!("../example.json").into(),
    }
}

/// `HttpTask.Input`'s defaults for `connectionTimeOut` and `readTimeOut`, in ms.
const CONDUCTOR_TIMEOUT_MS: u32 = 3000;

/// Validate a Conductor HTTP task input as `HttpTask` reads it and build the request,
/// with a warning for every part of the input that has no effect.
fn build_request(input: &Value) -> Result<(OutgoingRequest, Vec<FieldError>), TaskError> {
    let mut problems = Problems::default();
    let Some(top) = input.as_object() else {
        problems.add("$", "task input must be a JSON object");
        return Err(problems.into_error());
    };
    // `asyncComplete` is read from the task input, beside `http_request`.
    if top
        .get("asyncComplete")
        .is_some_and(|v| v == true || v == "true")
    {
        problems.warn(
            "asyncComplete",
            "has no effect here: the task completes when the response comes (Conductor would leave it IN_PROGRESS for an external update)",
        );
    }
    // HttpTask.start: `http_request` when it is given, the whole input otherwise.
    let (object, prefix) = match top.get("http_request") {
        None | Some(Value::Null) => (top, ""),
        Some(Value::Object(nested)) => {
            for key in top.keys() {
                if key != "http_request" && key != "asyncComplete" {
                    problems.warn(
                        key.as_str(),
                        "ignored: Conductor's HTTP task reads only http_request when it is given",
                    );
                }
            }
            (nested, "http_request.")
        }
        Some(_) => {
            problems.add(
                "http_request",
                "must be an object holding the request (uri, method, headers, body, …)",
            );
            return Err(problems.into_error());
        }
    };
    let field = |name: &str| format!("{prefix}{name}");
    for key in object.keys() {
        match key.as_str() {
            "vipAddress" | "appName" if !object[key].is_null() => problems.warn(
                field(key),
                "has no effect: Conductor OSS's HTTP task only logs it",
            ),
            // `__index`: Conductor's, given to each task of a FORK_JOIN_DYNAMIC.
            "asyncComplete" | "__index" if prefix.is_empty() => {}
            key if !KEYS.contains(&key) => problems.warn(
                field(key),
                format!(
                    "not an input of Conductor's HTTP task: ignored, as Conductor ignores it (its inputs: {})",
                    KEYS.join(", ")
                ),
            ),
            _ => {}
        }
    }
    let url = match object.get("uri") {
        None | Some(Value::Null) => {
            problems.add(
                field("uri"),
                "required: an absolute http:// or https:// URL (Conductor fails the task with \"Missing HTTP URI\")",
            );
            None
        }
        Some(value) => rules::string(&field("uri"), value, &mut problems).and_then(|text| {
            rules::parse_url(text)
                .map_err(|rule| problems.add(field("uri"), rule))
                .ok()
        }),
    };
    let methods = "GET, PUT, POST, PATCH, DELETE, OPTIONS or HEAD";
    let method = match object.get("method") {
        None | Some(Value::Null) => {
            problems.add(
                field("method"),
                format!("required: {methods} (Conductor fails the task with \"No HTTP method specified\")"),
            );
            None
        }
        Some(Value::String(name)) if name.eq_ignore_ascii_case("TRACE") => {
            problems.add(
                field("method"),
                "TRACE is not sent: the server echoes the request, credentials the host adds included",
            );
            None
        }
        Some(Value::String(name)) => {
            let method = Method::parse(name);
            if method.is_none() {
                problems.add(field("method"), format!("must be {methods}"));
            }
            method
        }
        Some(_) => {
            problems.add(field("method"), format!("must be a string: {methods}"));
            None
        }
    };
    let accept = accept(&field("accept"), object.get("accept"), &mut problems);
    let content_type = match object.get("contentType") {
        None | Some(Value::Null) => Some("application/json".to_string()),
        Some(Value::String(text)) if !text.contains(['\r', '\n', '\0']) => Some(text.clone()),
        Some(_) => {
            problems.add(
                field("contentType"),
                "must be a media type string without CR or LF",
            );
            None
        }
    };
    // HttpTask adds each header with `value.toString()`, skipping nulls.
    let headers = match object.get("headers") {
        Some(Value::Object(map)) => Some(Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(n, v)| (n.clone(), Value::String(java_text::to_string(v))))
                .collect(),
        )),
        other => other.cloned(),
    };
    let headers = rules::header_map(&field("headers"), headers.as_ref(), &mut problems);
    let mut options = rules::request_options(object, prefix, &mut problems);
    options
        .connect_timeout_ms
        .get_or_insert(CONDUCTOR_TIMEOUT_MS);
    options.read_timeout_ms.get_or_insert(CONDUCTOR_TIMEOUT_MS);
    let warnings = problems.take_warnings();
    if !problems.is_empty() {
        return Err(problems.into_error());
    }
    let ((scheme, authority, path), method, headers) =
        (url.unwrap(), method.unwrap(), headers.unwrap());
    let (accept, content_type) = (accept.unwrap(), content_type.unwrap());
    let path = path.split('#').next().unwrap_or_default();
    let path_with_query = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out = Vec::new();
    if !given("accept") {
        out.push(("Accept".to_string(), accept.into_bytes()));
    }
    // RestTemplate writes a string body as it is (its string converter comes before
    // Jackson's, whatever the content type), anything else as JSON.
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(value) => serde_json::to_vec(value).expect("a JSON value serializes"),
    };
    if !body.is_empty() && !given("content-type") {
        out.push(("Content-Type".to_string(), content_type.into_bytes()));
    }
    let gzip = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
    out.extend(headers.into_iter().map(|(n, v)| (n, v.into_bytes())));
    let request = OutgoingRequest {
        method,
        scheme,
        authority,
        path_with_query,
        headers: out,
        body: if gzip { rules::gzip(&body) } else { body },
        options,
        url_field: field("uri"),
    };
    Ok((request, warnings))
}

/// `accept`: one media type, or a list of them (`HttpTask.Input.setAccept` takes a
/// string or a list, each item by `toString`), sent as one `Accept` header.
fn accept(field: &str, value: Option<&Value>, problems: &mut Problems) -> Option<String> {
    let types: Vec<String> = match value {
        None | Some(Value::Null) => return Some("application/json".into()),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(java_text::to_string).collect()
        }
        Some(_) => {
            problems.add(field, "must be a media type or a non-empty list of them");
            return None;
        }
    };
    if types.iter().any(|t| t.contains(['\r', '\n', '\0'])) {
        problems.add(field, "a media type must not contain CR, LF or NUL");
        return None;
    }
    Some(types.join(", "))
}

fn execute(input: &Value) -> Result<(HttpResponse, Vec<FieldError>), TaskError> {
    let (request, warnings) = build_request(input)?;
    Ok((task_guest::classify(task_guest::send(&request)?)?, warnings))
}

struct Component;

impl Task for Component {
    fn info() -> TaskInfo {
        info()
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input = task_guest::parse_input(&input)?;
        execute(&input)
            .map(|(response, warnings)| task_guest::output_with_warnings(&response, &warnings))
    }
}

impl Exchange for Component {
    fn plan(input: String) -> Result<PlannedRequest, TaskError> {
        let input = task_guest::parse_input(&input)?;
        let (request, warnings) = build_request(&input)?;
        Ok(request.planned(warnings))
    }

    // Any answer is the task's to report: no vendor rules on success bodies.
    fn read(request: PlannedRequest, response: HttpResponse) -> Result<String, TaskError> {
        let response = task_guest::classify(task_guest::received(response)?)?;
        Ok(task_guest::output_with_warnings(
            &response,
            &request.warnings,
        ))
    }
}

impl HttpTask for Component {
    fn send(request: HttpRequest) -> Result<HttpResponse, TaskError> {
        let mut input = Map::new();
        input.insert("uri".into(), request.uri.into());
        input.insert("method".into(), request.method.into());
        let headers: Map<String, Value> = request
            .headers
            .into_iter()
            .map(|(n, v)| (n, v.into()))
            .collect();
        input.insert("headers".into(), Value::Object(headers));
        task_guest::put(&mut input, "body", request.body);
        task_guest::put(&mut input, "accept", request.accept);
        task_guest::put(&mut input, "contentType", request.content_type);
        task_guest::put_options(&mut input, &request.options);
        execute(&Value::Object(input)).map(|(response, _)| response)
    }
}

// Exported only when built as a component: the export names (`usage-billing:tasks/task@0.1.0#run`)
// are not valid native symbol names, and native builds exist only for lints and type checks.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

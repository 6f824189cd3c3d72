//! Task component `http`: the generic Conductor HTTP task, sandboxed.
//!
//! Input as Conductor writes it, flat or under `http_request`: `uri`, `method` (default
//! `GET`), `headers`, `body`, `accept` (default `application/json`), `contentType`
//! (default `application/json`), `connectionTimeOut`, `readTimeOut`. The component can
//! reach only the origins its host grants.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("http");
}

use bindings::exports::usage_billing::tasks::http_task::{Guest as HttpTask, HttpRequest};
use bindings::exports::usage_billing::tasks::task::Guest as Task;
use serde_json::{Map, Value};
use task_guest::rules::{self, Problems};
use task_guest::{HttpResponse, Method, OutgoingRequest, TaskError, TaskInfo};

const KEYS: [&str; 8] = [
    "uri",
    "method",
    "headers",
    "body",
    "accept",
    "contentType",
    "connectionTimeOut",
    "readTimeOut",
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

/// Validate a Conductor HTTP task input and build the request.
fn build_request(input: &Value) -> Result<OutgoingRequest, TaskError> {
    let mut problems = Problems::default();
    let Some(mut object) = input.as_object() else {
        problems.add("$", "task input must be a JSON object");
        return Err(problems.into_error());
    };
    let mut prefix = String::new();
    if let Some(nested) = object.get("http_request") {
        for key in object.keys().filter(|k| *k != "http_request") {
            problems.add(
                key.as_str(),
                "give the request either flat or under http_request, not both",
            );
        }
        match nested.as_object() {
            Some(nested) => object = nested,
            None => {
                problems.add("http_request", "must be an object");
                return Err(problems.into_error());
            }
        }
        prefix = "http_request.".into();
    }
    let field = |name: &str| format!("{prefix}{name}");
    for key in object.keys() {
        if !KEYS.contains(&key.as_str()) {
            problems.add(
                field(key),
                format!("unknown input field; allowed: {}", KEYS.join(", ")),
            );
        }
    }
    let url = match object.get("uri") {
        None | Some(Value::Null) => {
            problems.add(
                field("uri"),
                "required: an absolute http:// or https:// URL",
            );
            None
        }
        Some(value) => rules::string(&field("uri"), value, &mut problems).and_then(|text| {
            rules::parse_url(text)
                .map_err(|rule| problems.add(field("uri"), rule))
                .ok()
        }),
    };
    let method = match object.get("method") {
        None | Some(Value::Null) => Some(Method::Get),
        Some(Value::String(name)) => {
            let method = Method::parse(name);
            if method.is_none() {
                problems.add(
                    field("method"),
                    "must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                );
            }
            method
        }
        Some(_) => {
            problems.add(field("method"), "must be a string");
            None
        }
    };
    let mut text_option = |name: &str, default: &str| match object.get(name) {
        None | Some(Value::Null) => Some(default.to_string()),
        Some(Value::String(text)) if !text.contains(['\r', '\n', '\0']) => Some(text.clone()),
        Some(_) => {
            problems.add(field(name), "must be a media type string without CR or LF");
            None
        }
    };
    let accept = text_option("accept", "application/json");
    let content_type = text_option("contentType", "application/json");
    let headers = rules::header_map(&field("headers"), object.get("headers"), &mut problems);
    let options = rules::request_options(object, &mut problems);
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
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if !content_type.to_ascii_lowercase().contains("json") => {
            text.clone().into_bytes()
        }
        Some(value) => serde_json::to_vec(value).expect("a JSON value serializes"),
    };
    if !body.is_empty() && !given("content-type") {
        out.push(("Content-Type".to_string(), content_type.into_bytes()));
    }
    let gzip = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
    out.extend(headers.into_iter().map(|(n, v)| (n, v.into_bytes())));
    Ok(OutgoingRequest {
        method,
        scheme,
        authority,
        path_with_query,
        headers: out,
        body: if gzip { rules::gzip(&body) } else { body },
        options,
        url_field: field("uri"),
    })
}

fn execute(input: &Value) -> Result<HttpResponse, TaskError> {
    let request = build_request(input)?;
    task_guest::classify(task_guest::send(&request)?)
}

struct Component;

impl Task for Component {
    fn info() -> TaskInfo {
        info()
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input = task_guest::parse_input(&input)?;
        execute(&input).map(|response| task_guest::output_json(&response))
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
        execute(&Value::Object(input))
    }
}

// Exported only when built as a component: the export names (`usage-billing:tasks/task@0.1.0#run`)
// are not valid native symbol names, and native builds exist only for lints and type checks.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);

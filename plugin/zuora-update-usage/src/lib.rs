//! Task component `zuora-update-usage`: Zuora `PUT /v1/object/usage/{id}`.
//!
//! Every body field is optional; the ones the task knows are checked against Zuora's
//! documented limits before anything is sent, and any other field is sent as given
//! (Zuora ignores unknown fields, or answers 400 "Error - unrecognised fields" when
//! `rejectUnknownFields=true`: that answer is Zuora's to give). A 200 whose body says
//! `"Success": false` is a failure, retryable when Zuora documents its error as
//! transient.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    task_guest::bind_world!("zuora-update-usage");
}

use bindings::exports::usage_billing::tasks::zuora_usage::{Guest as ZuoraUsage, UpdateRequest};
use serde_json::{Map, Value};
use task_guest::rules::{self, Problems};
use task_guest::{
    Endpoint, HeaderRule, HttpResponse, Method, PathParam, QueryKind, QueryParam, TaskError,
};

/// The endpoint, from Zuora's documentation.
pub static ENDPOINT: Endpoint = Endpoint {
    name: "zuora-update-usage",
    description: "Update a Zuora usage record (quantity, dates, status, UOM, custom fields).",
    method: Method::Put,
    path: "/v1/object/usage/{id}",
    idempotent: true,
    path_params: &[PathParam {
        name: "id",
        rule: usage_id,
    }],
    query_params: &[QueryParam {
        name: "rejectUnknownFields",
        kind: QueryKind::Bool,
    }],
    header_rules: &[
        HeaderRule {
            name: "Authorization",
            check: task_guest::bearer,
        },
        HeaderRule {
            name: "Zuora-Track-Id",
            check: track_id,
        },
        HeaderRule {
            name: "Zuora-Version",
            check: zuora_version,
        },
        HeaderRule {
            name: "Zuora-Entity-Ids",
            check: id_list,
        },
        HeaderRule {
            name: "Zuora-Org-Ids",
            check: id_list,
        },
        HeaderRule {
            name: "Accept-Encoding",
            check: task_guest::non_empty,
        },
    ],
    refused_headers: &[(
        "Idempotency-Key",
        "Zuora accepts Idempotency-Key on POST and PATCH only, never on PUT; remove it (PUT is idempotent)",
    )],
    content_type: "application/json",
    body,
    check_success,
    check_failure,
    input_schema: include_str!("../schema.json"),
    example_input: include_str!("../example.json"),
};

const RBE_STATUSES: [&str; 3] = ["Importing", "Pending", "Processed"];

fn usage_id(field: &str, value: &Value, problems: &mut Problems) -> Option<String> {
    let id = rules::string(field, value, problems)?;
    if id.trim().is_empty() {
        problems.add(field, "must not be empty");
        return None;
    }
    Some(id.to_string())
}

fn track_id(field: &str, value: &str, problems: &mut Problems) {
    rules::max_chars(field, value, 64, problems);
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        problems.add(field, "must be printable US-ASCII");
    }
    if value.contains([':', ';', '"', '\'']) {
        problems.add(field, "must not contain : ; \" or '");
    }
}

fn zuora_version(field: &str, value: &str, problems: &mut Problems) {
    let legacy = value.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    });
    let dated = value.len() == 10 && rules::is_date_time(value);
    if !legacy && !dated {
        problems.add(field, "must be a minor version date YYYY-MM-DD (e.g. 2026-02-20) or a legacy version like 196.0");
    }
}

fn id_list(field: &str, value: &str, problems: &mut Problems) {
    if value.split(',').any(|id| id.trim().is_empty()) {
        problems.add(field, "must be comma-separated ids, none empty");
    }
}

fn body(value: Option<&Value>, problems: &mut Problems) -> Option<Value> {
    let object = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => {
            problems.add("body", "required: the usage fields to update (StartDateTime, EndDateTime, Quantity, RbeStatus, UOM, custom fields ending __c)");
            return None;
        }
        Some(_) => {
            problems.add("body", "must be an object of usage fields");
            return None;
        }
    };
    let mut out = Map::new();
    for (key, value) in object {
        let field = format!("body.{key}");
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "StartDateTime" | "EndDateTime" => {
                if let Some(text) = rules::string(&field, value, problems)
                    && rules::max_chars(&field, text, 29, problems)
                    && !rules::is_date_time(text)
                {
                    problems.add(
                        &field,
                        "must be a date-time like 2024-06-30T02:00:00.000+01:00",
                    );
                }
            }
            "Quantity" => {
                // "Requests and responses": decimals use +-0-9.eE (7.7e2 is valid); the
                // v1 reference: at most 16 characters, counted on the text as sent.
                if let Some(decimal) = rules::decimal(&field, value, problems)
                    && rules::max_chars(&field, &decimal.text, 16, problems)
                {
                    out.insert(key.clone(), rules::decimal_json(&decimal));
                    problems.exact("/Quantity", &decimal);
                }
                continue;
            }
            "RbeStatus" => {
                if let Some(text) = rules::string(&field, value, problems)
                    && !RBE_STATUSES.contains(&text)
                {
                    problems.add(&field, "must be one of Importing, Pending, Processed");
                }
            }
            // v1 reference: a string (whether Zuora takes an empty one is Zuora's to say).
            "UOM" => {
                rules::string(&field, value, problems);
            }
            // Custom fields (`…__c`) and fields the task does not list: sent as given.
            _ => {}
        }
        out.insert(key.clone(), value.clone());
    }
    // Every body field is optional (v1 reference): an update that sets none is sent.
    Some(Value::Object(out))
}

/// A 200 from Zuora's CRUD API is a failure when its body says `"Success": false`
/// ("Error handling": a 200 does not prove success). It is retryable when an error is
/// one Zuora documents as transient, else the request was rejected.
fn check_success(response: &HttpResponse) -> Option<TaskError> {
    let body: CrudAnswer = serde_json::from_slice(&response.body).ok()?;
    if body.success != Some(Value::Bool(false)) {
        return None;
    }
    let errors = body.errors.as_ref().and_then(Value::as_array);
    let transient = errors.is_some_and(|errors| errors.iter().any(is_transient));
    Some(if transient {
        TaskError::ServerError(task_guest::RetryResponse {
            retry_after_ms: None,
            response: response.clone(),
        })
    } else {
        TaskError::Rejected(response.clone())
    })
}

/// The parts of a CRUD answer the task reads; the rest of a body (however large) is
/// skipped, never built in memory.
#[derive(serde::Deserialize)]
struct CrudAnswer {
    #[serde(rename = "Success", default)]
    success: Option<Value>,
    #[serde(rename = "Errors", default)]
    errors: Option<Value>,
}

/// Whether one `{"Code", "Message"}` error says to retry: `LOCK_COMPETITION` (SOAP and
/// CRUD error codes: "the operation failed from a lock competition … Retry later"), or an
/// eight-digit code whose category (its last two digits, "Error codes" guide) is 50 (lock
/// competition), 60 (internal error), 61 (temporary error) or 70 (request exceeded limit).
fn is_transient(error: &Value) -> bool {
    let code = match error.get("Code") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(code)) => code.to_string(),
        _ => return false,
    };
    if code == "LOCK_COMPETITION" {
        return true;
    }
    code.len() == 8
        && code.bytes().all(|b| b.is_ascii_digit())
        && ["50", "60", "61", "70"].contains(&&code[6..])
}

/// A 401 whose message is "Failed to get user info" is transient ("Error handling":
/// retry the request); any other 401 ("Authentication error") stays `unauthorized`.
fn check_failure(error: TaskError) -> TaskError {
    match error {
        TaskError::Unauthorized(response)
            if task_guest::body_json(&response)
                .and_then(|body| {
                    body.get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .is_some_and(|message| message.eq_ignore_ascii_case("Failed to get user info")) =>
        {
            TaskError::ServerError(task_guest::RetryResponse {
                retry_after_ms: None,
                response,
            })
        }
        other => other,
    }
}

struct Component;

task_guest::endpoint_task!(Component, ENDPOINT);

impl ZuoraUsage for Component {
    fn update(request: UpdateRequest) -> Result<HttpResponse, TaskError> {
        let mut headers = Map::new();
        task_guest::put(&mut headers, "Authorization", request.authorization);
        task_guest::put(&mut headers, "Zuora-Track-Id", request.track_id);
        task_guest::put(&mut headers, "Zuora-Entity-Ids", request.entity_ids);
        task_guest::put(&mut headers, "Zuora-Org-Ids", request.org_ids);
        task_guest::put(&mut headers, "Zuora-Version", request.zuora_version);
        if request.accept_gzip {
            headers.insert("Accept-Encoding".into(), "gzip".into());
        }
        if request.gzip_request {
            headers.insert("Content-Encoding".into(), "gzip".into());
        }
        let fields = request.fields;
        let mut body = Map::new();
        task_guest::put(&mut body, "StartDateTime", fields.start_date_time);
        task_guest::put(&mut body, "EndDateTime", fields.end_date_time);
        task_guest::put(
            &mut body,
            "Quantity",
            fields.quantity.as_deref().map(task_guest::decimal_value),
        );
        task_guest::put(&mut body, "RbeStatus", fields.rbe_status);
        task_guest::put(&mut body, "UOM", fields.uom);
        for (name, json) in fields.custom_fields {
            let value = task_guest::json_text(&format!("body.{name}"), &json)?;
            body.insert(name, value);
        }
        let mut input = Map::new();
        input.insert("baseUrl".into(), request.base_url.into());
        input.insert("path".into(), serde_json::json!({ "id": request.id }));
        if let Some(reject) = request.reject_unknown_fields {
            input.insert(
                "query".into(),
                serde_json::json!({ "rejectUnknownFields": reject }),
            );
        }
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

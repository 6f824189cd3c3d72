//! The task input envelope shared by the endpoint tasks:
//! `baseUrl`, `path`, `query`, `headers`, `body`, `connectionTimeOut`, `readTimeOut`.

use crate::rules::{self, Problems};
use crate::{FieldError, HttpResponse, OutgoingRequest, TaskError};
use serde_json::{Map, Value};

/// An HTTP method a task may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    /// The method's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Parse a method name (case-insensitive).
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }
}

/// A path parameter: its documented name and the rule its value must meet. The rule
/// returns the text to put in the path, or records a problem.
pub struct PathParam {
    /// Documented name, e.g. `id`.
    pub name: &'static str,
    /// Checks the value (field name given for messages) and returns its path text.
    pub rule: fn(&str, &Value, &mut Problems) -> Option<String>,
}

/// The type of a query parameter.
#[derive(Debug, Clone, Copy)]
pub enum QueryKind {
    /// `true` or `false` (JSON booleans, or those two strings).
    Bool,
}

/// A documented query parameter.
pub struct QueryParam {
    /// Documented name, e.g. `rejectUnknownFields`.
    pub name: &'static str,
    /// The value's type.
    pub kind: QueryKind,
}

/// A rule for one documented header (matched case-insensitively).
pub struct HeaderRule {
    /// Header name.
    pub name: &'static str,
    /// Checks the value; the first argument is the field name for messages.
    pub check: fn(&str, &str, &mut Problems),
}

/// One vendor endpoint, described from its documentation.
pub struct Endpoint {
    /// Task name, e.g. `zuora-update-usage`.
    pub name: &'static str,
    /// One line on what it does.
    pub description: &'static str,
    /// The method it sends.
    pub method: Method,
    /// The path template appended to `baseUrl`, with `{param}` placeholders.
    pub path: &'static str,
    /// Whether a repeat has no further effect.
    pub idempotent: bool,
    /// Path parameters, all required.
    pub path_params: &'static [PathParam],
    /// Documented query parameters; others are rejected.
    pub query_params: &'static [QueryParam],
    /// Rules for documented headers.
    pub header_rules: &'static [HeaderRule],
    /// Headers this endpoint must never be sent, with the reason.
    pub refused_headers: &'static [(&'static str, &'static str)],
    /// The request media type.
    pub content_type: &'static str,
    /// Validates `body` (absent when `None`) and returns the JSON to send.
    pub body: fn(Option<&Value>, &mut Problems) -> Option<Value>,
    /// Finds a failure reported inside a 2xx response (Zuora `Success: false`).
    pub check_success: fn(&HttpResponse) -> Option<TaskError>,
    /// Reclassifies a failure by what the vendor documents about it (Zuora: a 401
    /// "Failed to get user info" is to be retried); [`as_classified`] keeps it.
    pub check_failure: fn(TaskError) -> TaskError,
    /// JSON Schema of the input.
    pub input_schema: &'static str,
    /// A valid example input.
    pub example_input: &'static str,
}

/// `check_failure` for endpoints whose failures mean what their status says.
pub fn as_classified(error: TaskError) -> TaskError {
    error
}

/// `check_success` for endpoints whose 2xx always means success.
pub fn always_success(_: &HttpResponse) -> Option<TaskError> {
    None
}

/// The most bytes a path parameter may take once percent-encoded.
const MAX_PATH_PARAM_BYTES: usize = 60_000;

const ENVELOPE_KEYS: [&str; 7] = [
    "baseUrl",
    "path",
    "query",
    "headers",
    "body",
    "connectionTimeOut",
    "readTimeOut",
];

impl Endpoint {
    /// Validate a whole task input and build the request; every problem is reported at once.
    pub fn build_request(&self, input: &Value) -> Result<OutgoingRequest, TaskError> {
        self.plan(input).map(|(request, _)| request)
    }

    /// [`Endpoint::build_request`], with the warnings: the input fields left out of the
    /// request (read-only or system-controlled at the vendor).
    pub fn plan(&self, input: &Value) -> Result<(OutgoingRequest, Vec<FieldError>), TaskError> {
        let mut problems = Problems::default();
        let Some(object) = input.as_object() else {
            problems.add("$", "task input must be a JSON object");
            return Err(problems.into_error());
        };
        for key in object.keys() {
            // `__index` is Conductor's: a FORK_JOIN_DYNAMIC gives it to each forked task.
            if !ENVELOPE_KEYS.contains(&key.as_str()) && key != "__index" {
                problems.add(
                    key.as_str(),
                    format!("unknown input field; allowed: {}", ENVELOPE_KEYS.join(", ")),
                );
            }
        }
        let base = rules::base_url("baseUrl", object.get("baseUrl"), &mut problems);
        let path = self.resolve_path(object.get("path"), &mut problems);
        let query = self.resolve_query(object.get("query"), &mut problems);
        let headers = self.resolve_headers(object.get("headers"), &mut problems);
        let body = (self.body)(object.get("body"), &mut problems);
        let options = rules::request_options(object, "", &mut problems);
        if !problems.is_empty() {
            return Err(problems.into_error());
        }
        let warnings = problems.take_warnings();
        let exact = problems.take_exact();
        let (base, path, headers) = (base.unwrap(), path.unwrap(), headers.unwrap());
        let mut path_with_query = format!("{}{}", base.path, path);
        if !query.is_empty() {
            path_with_query.push('?');
            path_with_query.push_str(&query);
        }
        let mut request = OutgoingRequest {
            method: self.method,
            scheme: base.scheme,
            authority: base.authority,
            path_with_query,
            headers: Vec::new(),
            body: Vec::new(),
            options,
            url_field: "baseUrl".into(),
        };
        if let Some(body) = body {
            let has_content_type = headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
            if !has_content_type {
                request
                    .headers
                    .push(("Content-Type".into(), self.content_type.as_bytes().to_vec()));
            }
            request.body = rules::to_json_exact(&body, &exact);
        }
        let gzip = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        request
            .headers
            .extend(headers.into_iter().map(|(n, v)| (n, v.into_bytes())));
        if gzip {
            request.body = rules::gzip(&request.body);
        }
        Ok((request, warnings))
    }

    fn resolve_path(&self, value: Option<&Value>, problems: &mut Problems) -> Option<String> {
        let empty = Map::new();
        let params = match value {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => {
                problems.add("path", "must be an object of path parameters");
                return None;
            }
        };
        for key in params.keys() {
            if !self.path_params.iter().any(|p| p.name == key) {
                problems.add(
                    format!("path.{key}"),
                    format!(
                        "unknown path parameter; {} takes {}",
                        self.path,
                        names(self.path_params.iter().map(|p| p.name))
                    ),
                );
            }
        }
        let mut path = self.path.to_string();
        let mut ok = true;
        for param in self.path_params {
            let field = format!("path.{}", param.name);
            match params.get(param.name) {
                None | Some(Value::Null) => {
                    problems.add(field, "required");
                    ok = false;
                }
                Some(value) => match (param.rule)(&field, value, problems) {
                    // RFC 3986 §5.2.4: a proxy or server that normalizes the path would
                    // resolve `.` and `..`, sending the call to another resource.
                    Some(text) if text == "." || text == ".." => {
                        problems.add(
                            field,
                            "must not be . or .. (a dot segment: a normalizing proxy would send the request to another path)",
                        );
                        ok = false;
                    }
                    // http::Uri carries at most 65534 bytes of path and query.
                    Some(text) if rules::percent_encode(&text).len() > MAX_PATH_PARAM_BYTES => {
                        problems.add(
                            field,
                            format!(
                                "too long: at most {MAX_PATH_PARAM_BYTES} bytes once percent-encoded (the longest URL path the transport carries)"
                            ),
                        );
                        ok = false;
                    }
                    Some(text) => {
                        path = path.replace(
                            &format!("{{{}}}", param.name),
                            &rules::percent_encode(&text),
                        );
                    }
                    None => ok = false,
                },
            }
        }
        ok.then_some(path)
    }

    fn resolve_query(&self, value: Option<&Value>, problems: &mut Problems) -> String {
        let mut query = String::new();
        let params = match value {
            None | Some(Value::Null) => return query,
            Some(Value::Object(map)) => map,
            Some(_) => {
                problems.add("query", "must be an object of query parameters");
                return query;
            }
        };
        for (key, value) in params {
            let field = format!("query.{key}");
            let Some(param) = self.query_params.iter().find(|p| p.name == key) else {
                let allowed = if self.query_params.is_empty() {
                    "this endpoint takes no query parameters".to_string()
                } else {
                    format!(
                        "allowed: {}",
                        names(self.query_params.iter().map(|p| p.name))
                    )
                };
                problems.add(field, format!("unknown query parameter; {allowed}"));
                continue;
            };
            let text = match (param.kind, value) {
                (_, Value::Null) => continue,
                (QueryKind::Bool, Value::Bool(b)) => b.to_string(),
                (QueryKind::Bool, Value::String(s)) if s == "true" || s == "false" => s.clone(),
                (QueryKind::Bool, _) => {
                    problems.add(field, "must be a boolean");
                    continue;
                }
            };
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&rules::percent_encode(key));
            query.push('=');
            query.push_str(&rules::percent_encode(&text));
        }
        query
    }

    fn resolve_headers(
        &self,
        value: Option<&Value>,
        problems: &mut Problems,
    ) -> Option<Vec<(String, String)>> {
        let headers = rules::header_map("headers", value, problems)?;
        for (name, value) in &headers {
            let field = format!("headers.{name}");
            if let Some((_, why)) = self
                .refused_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                problems.add(&field, *why);
            }
            if name.eq_ignore_ascii_case("content-type")
                && !rules::same_media_type(value, self.content_type)
            {
                problems.add(&field, format!("must be {}", self.content_type));
            }
            for rule in self.header_rules {
                if rule.name.eq_ignore_ascii_case(name) {
                    (rule.check)(&field, value, problems);
                }
            }
        }
        Some(headers)
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

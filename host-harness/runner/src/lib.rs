//! One task execution: prepare the input (base URL, granted origin), run it in the
//! sandbox, and classify the result into the task output the CLI prints.

use harness_sandbox::policy::{Origin, SendPolicy};
use harness_sandbox::{HttpResponse, RunResult, Sandbox, SandboxError, TaskError, TaskRun};
use serde_json::{Map, Value, json};

/// How a task ended, as Conductor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// The call succeeded.
    Completed,
    /// The call failed but a retry may help (`rate-limited`, `server-error`, `transport`).
    Failed,
    /// The call failed and retrying the same input cannot help.
    FailedWithTerminalError,
    /// An attempt passed its task definition's time limit (a workflow task).
    TimedOut,
    /// An optional workflow task failed; the workflow went on.
    CompletedWithErrors,
    /// A workflow task stopped because its workflow ended first.
    Canceled,
    /// A workflow task that was not run.
    Skipped,
}

impl TaskStatus {
    /// The status as printed, in Conductor's names: `COMPLETED`, `FAILED`,
    /// `FAILED_WITH_TERMINAL_ERROR`, `TIMED_OUT`, `COMPLETED_WITH_ERRORS`, `CANCELED`,
    /// `SKIPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::FailedWithTerminalError => "FAILED_WITH_TERMINAL_ERROR",
            TaskStatus::TimedOut => "TIMED_OUT",
            TaskStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            TaskStatus::Canceled => "CANCELED",
            TaskStatus::Skipped => "SKIPPED",
        }
    }
}

impl PartialEq<&str> for TaskStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The kind of a task failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input broke a documented rule; nothing was sent.
    InvalidInput,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 400, 422, another 4xx, or a 2xx reporting failure.
    Rejected,
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// No usable response.
    Transport,
    /// The sandbox policy refused the request.
    Denied,
    /// The component trapped or hit a limit.
    Sandbox,
}

impl ErrorKind {
    /// The kind as printed, e.g. `invalid-input`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Rejected => "rejected",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::ServerError => "server-error",
            ErrorKind::Transport => "transport",
            ErrorKind::Denied => "denied",
            ErrorKind::Sandbox => "sandbox",
        }
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::InvalidInput,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Rejected,
        ErrorKind::RateLimited,
        ErrorKind::ServerError,
        ErrorKind::Transport,
        ErrorKind::Denied,
        ErrorKind::Sandbox,
    ];

    /// The kind printed as `name` (the inverse of [`ErrorKind::as_str`]).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether a retry of the same input may help.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::ServerError | ErrorKind::Transport
        )
    }
}

/// Why a task did not complete.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened and what to do next.
    pub message: String,
    /// The rejected input fields (for `invalid-input`).
    pub fields: Vec<(String, String)>,
    /// The wait the server asked for before a retry, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl TaskFailure {
    /// A failure of `kind` with `message`, no rejected fields and no server-named wait.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            kind,
            message: message.into(),
            fields: Vec::new(),
            retry_after_ms: None,
        }
    }

    /// The status of a task that failed so: `FAILED` when a retry may help, else
    /// `FAILED_WITH_TERMINAL_ERROR`.
    pub fn status(&self) -> TaskStatus {
        if self.kind.retryable() {
            TaskStatus::Failed
        } else {
            TaskStatus::FailedWithTerminalError
        }
    }
}

/// The result of one task run, printable as the CLI's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// Task name.
    pub task: String,
    /// How it ended.
    pub status: TaskStatus,
    /// `{"response": …}` when an HTTP response came back, else `{}`.
    pub output: Value,
    /// Why it did not complete.
    pub failure: Option<TaskFailure>,
    /// What the component wrote to stdout and stderr (diagnostics, not part of the output).
    pub guest_log: String,
    /// Whether a request may have reached the server (see [`TaskRun::reached_server`]).
    pub reached_server: bool,
    /// Whether sending this input twice has the effect of sending it once.
    pub idempotent: bool,
    /// How its connection's pacing held its requests back.
    pub paced: harness_sandbox::pool::Paced,
}

impl TaskOutcome {
    /// Replace every occurrence of each of `secrets` in the output, the failure message
    /// and the guest log with `***`: a vendor that echoes a header, or an error that
    /// quotes the input, never puts a secret into a record or a log.
    pub fn redact(&mut self, secrets: &[String]) {
        let secrets = non_empty(secrets);
        if secrets.is_empty() {
            return;
        }
        redact_json(&mut self.output, &secrets);
        if let Some(failure) = self.failure.as_mut() {
            scrub(&mut failure.message, &secrets);
        }
        scrub(&mut self.guest_log, &secrets);
    }

    /// A task that did not complete and has no output (no response to show): its status
    /// follows from the failure's kind. `reached_server`: whether a request may have
    /// reached the server; `idempotent`: whether sending the input twice is harmless.
    pub fn failed(
        task: &str,
        failure: TaskFailure,
        reached_server: bool,
        idempotent: bool,
    ) -> TaskOutcome {
        TaskOutcome {
            task: task.to_string(),
            status: failure.status(),
            output: json!({}),
            failure: Some(failure),
            guest_log: String::new(),
            reached_server,
            idempotent,
            paced: Default::default(),
        }
    }

    /// The JSON the CLI prints: `task`, `status`, `output`, and when it did not complete,
    /// `reasonForIncompletion` and `error`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("task".into(), self.task.clone().into());
        object.insert("status".into(), self.status.as_str().into());
        object.insert("output".into(), self.output.clone());
        if let Some(failure) = &self.failure {
            object.insert(
                "reasonForIncompletion".into(),
                failure.message.clone().into(),
            );
            let fields: Vec<Value> = failure
                .fields
                .iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
            object.insert(
                "error".into(),
                json!({
                    "kind": failure.kind.as_str(),
                    "message": failure.message,
                    "fields": fields,
                    "retryable": failure.kind.retryable(),
                    "retryAfterMs": failure.retry_after_ms,
                }),
            );
        }
        Value::Object(object)
    }
}

/// The input as it will be run and the origin it is granted.
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// The input JSON text handed to the component.
    pub input: String,
    /// What the run may reach.
    pub policy: SendPolicy,
    /// The secret values put into the input (`${workflow.secrets.NAME}`): whatever the
    /// run gives back is [redacted](TaskOutcome::redact) of them.
    pub secrets: Vec<String>,
}

/// Whether a task input names its server itself: a `baseUrl`, an absolute `uri` for
/// `http`, or a `connection`. An input that does not is sent to a default (the mock).
pub fn names_server(task: &str, input: &Value) -> bool {
    if input.get("connection").is_some() {
        return true;
    }
    if task == "http" {
        let request = input.get("http_request").unwrap_or(input);
        request
            .get("uri")
            .and_then(Value::as_str)
            .is_some_and(|u| !u.starts_with('/'))
    } else {
        input.get("baseUrl").is_some_and(|b| !b.is_null())
    }
}

/// Fill in the base URL and work out the granted origin. For an endpoint task,
/// `base_url` (when given) replaces the input's `baseUrl`, and the origin of `baseUrl`
/// is granted. For the `http` task, a relative `uri` (starting with `/`) is resolved
/// against `base_url`, and the origin of `uri` is granted.
pub fn prepare(task: &str, mut input: Value, base_url: Option<&str>) -> PreparedInput {
    let mut granted = None;
    if let Some(object) = input.as_object_mut() {
        if task == "http" {
            let request = match object
                .get_mut("http_request")
                .and_then(Value::as_object_mut)
            {
                Some(nested) => nested,
                None => object,
            };
            if let (Some(Value::String(uri)), Some(base)) = (request.get("uri"), base_url)
                && uri.starts_with('/')
            {
                let joined = format!("{}{}", base.trim_end_matches('/'), uri);
                request.insert("uri".into(), joined.into());
            }
            granted = request
                .get("uri")
                .and_then(Value::as_str)
                .and_then(Origin::of_url);
        } else {
            if let Some(base) = base_url {
                object.insert("baseUrl".into(), base.into());
            }
            granted = object
                .get("baseUrl")
                .and_then(Value::as_str)
                .and_then(Origin::of_url);
        }
    }
    PreparedInput {
        input: input.to_string(),
        policy: SendPolicy::allow(granted),
        secrets: Vec::new(),
    }
}

/// Like [`prepare`], for an input that may name a `"connection"` instead of a server
/// and credentials: the connection's base URL is filled in, its origin granted, and its
/// credentials attached to requests for that origin by the host. An unknown connection
/// is an `invalid-input` outcome (nothing is sent).
pub fn prepare_connected(
    task: &str,
    mut input: Value,
    base_url: Option<&str>,
    credentials: Option<&std::sync::Arc<harness_config::Credentials>>,
) -> Result<PreparedInput, Box<TaskOutcome>> {
    let Some(connection) = input.as_object_mut().and_then(|o| o.remove("connection")) else {
        let mut prepared = prepare(task, input, base_url);
        if let Some(credentials) = credentials {
            prepared.policy = credentials
                .connections()
                .policy()
                .apply(task, prepared.policy);
        }
        return Ok(prepared);
    };
    let invalid = |message: String| {
        let failure = TaskFailure {
            fields: vec![("connection".into(), message.clone())],
            ..TaskFailure::new(
                ErrorKind::InvalidInput,
                format!("invalid input, nothing was sent: connection: {message}"),
            )
        };
        Box::new(TaskOutcome::failed(task, failure, false, true))
    };
    let Some(name) = connection.as_str() else {
        return Err(invalid("must be the name of a connection".into()));
    };
    let Some(credentials) = credentials else {
        return Err(invalid(format!(
            "unknown connection `{name}`: no connections are configured"
        )));
    };
    let Some(found) = credentials.connections().get(name) else {
        let known = credentials.connections().names().join(", ");
        return Err(invalid(format!(
            "unknown connection `{name}`; known: {known}"
        )));
    };
    if task != "http" && input.get("baseUrl").is_some_and(|b| !b.is_null()) {
        return Err(invalid(
            "give either connection or baseUrl, not both".into(),
        ));
    }
    let Some(origin) = found.origin() else {
        return Err(invalid(format!(
            "connection `{name}` has no usable base URL"
        )));
    };
    let prepared = prepare(task, input, Some(&found.base_url));
    // A task on a connection reaches that connection's origin, and what the config's
    // `[policy]` grants it, nothing else.
    let policy = SendPolicy::deny_all().with_connection(origin, name, credentials.clone());
    Ok(PreparedInput {
        input: prepared.input,
        policy: credentials.connections().policy().apply(task, policy),
        secrets: Vec::new(),
    })
}

/// Run a task once and classify the result.
pub async fn run_task(
    sandbox: &Sandbox,
    task: &str,
    input: &str,
    policy: SendPolicy,
) -> Result<TaskOutcome, SandboxError> {
    let (idempotent, policy) = run_setup(sandbox, task, input, policy)?;
    let run = sandbox.run(task, input, policy).await?;
    Ok(classify(task, idempotent, run))
}

/// [`run_task`], given up (`Ok(None)`) once `within` has passed since the run started
/// (waiting for a free slot in the sandbox's instance pool does not count).
pub async fn run_task_within(
    sandbox: &Sandbox,
    task: &str,
    input: &str,
    policy: SendPolicy,
    within: std::time::Duration,
) -> Result<Option<TaskOutcome>, SandboxError> {
    let (idempotent, policy) = run_setup(sandbox, task, input, policy)?;
    let run = sandbox.run_within(task, input, policy, within).await?;
    Ok(run.map(|run| classify(task, idempotent, run)))
}

/// Whether the run is idempotent, and its policy: an endpoint task sends its one
/// documented method, and nothing else.
fn run_setup(
    sandbox: &Sandbox,
    task: &str,
    input: &str,
    policy: SendPolicy,
) -> Result<(bool, SendPolicy), SandboxError> {
    let Some(info) = sandbox.info(task) else {
        return Err(SandboxError::UnknownTask(task.to_string()));
    };
    Ok((
        is_idempotent(sandbox, task, input),
        policy.only_method(&info.method),
    ))
}

/// Header names whose values are credentials: a plan shows them as `[redacted]`.
const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "sessionid",
    "reb-apikey",
    "x-api-key",
    "apikey",
];

/// What a task would send for an input, planned in the sandbox with nothing sent: the
/// plan JSON ([`plan_json`]), or the outcome of a task that would not send (its input
/// is invalid, or the sandbox stopped it). `Ok(None)`: the task cannot plan apart from
/// sending (a user's task that does not export `exchange`).
pub async fn plan_task(
    sandbox: &Sandbox,
    task: &str,
    prepared: &PreparedInput,
) -> Result<Option<Result<Value, TaskOutcome>>, SandboxError> {
    let (idempotent, policy) = run_setup(sandbox, task, &prepared.input, prepared.policy.clone())?;
    let Some(planned) = sandbox.plan(task, &prepared.input).await? else {
        return Ok(None);
    };
    Ok(Some(match planned {
        Ok(planned) => {
            let mut plan = plan_json(task, &planned, &policy);
            redact_json(&mut plan, &non_empty(&prepared.secrets));
            Ok(plan)
        }
        Err(result) => {
            let run = TaskRun {
                result,
                denied: Vec::new(),
                stdout: Vec::new(),
                stderr: Vec::new(),
                duration: std::time::Duration::ZERO,
                reached_server: false,
                logins_refused: Vec::new(),
                paced: Default::default(),
            };
            let mut outcome = classify(task, idempotent, run);
            outcome.redact(&prepared.secrets);
            Err(outcome)
        }
    }))
}

/// A planned request as JSON: `task`, `status` `PLANNED`, `sent: false`, the `request`
/// (`method`, `url`, `headers` as `[name, value]` pairs in send order with credential
/// values `[redacted]`, `body` as text, or `bodyBase64` when it is not UTF-8, `bodyBytes`,
/// `connectionTimeOut`, `readTimeOut`), `credentials` (the connection whose credentials
/// the host adds when it sends, or null), `refusal` (why the sandbox policy would refuse
/// the request, or null) and `warnings`.
pub fn plan_json(
    task: &str,
    planned: &harness_sandbox::PlannedRequest,
    policy: &SendPolicy,
) -> Value {
    let url = format!(
        "{}://{}{}",
        planned.scheme, planned.authority, planned.path_with_query
    );
    let headers: Vec<Value> = planned
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                "[redacted]".to_string()
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            json!([name, shown])
        })
        .collect();
    let mut request = Map::new();
    request.insert("method".into(), planned.method.clone().into());
    request.insert("url".into(), url.clone().into());
    request.insert("headers".into(), Value::Array(headers));
    match std::str::from_utf8(&planned.body) {
        _ if planned.body.is_empty() => {
            request.insert("body".into(), Value::Null);
        }
        Ok(text) => {
            request.insert("body".into(), text.into());
        }
        Err(_) => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&planned.body);
            request.insert("bodyBase64".into(), encoded.into());
        }
    }
    request.insert("bodyBytes".into(), planned.body.len().into());
    request.insert(
        "connectionTimeOut".into(),
        planned.options.connect_timeout_ms.into(),
    );
    request.insert("readTimeOut".into(), planned.options.read_timeout_ms.into());
    let origin = Origin::of_url(&format!("{}://{}", planned.scheme, planned.authority));
    let connection = origin
        .as_ref()
        .and_then(|o| policy.connection_for(o))
        .map(|(name, _)| name.to_string());
    let refusal = match &origin {
        Some(origin) => policy.refusal(origin, &planned.method),
        None => Some(format!(
            "the sandbox would deny a request to {url}: not an absolute http(s) URL"
        )),
    };
    let warnings: Vec<Value> = planned
        .warnings
        .iter()
        .map(|w| json!({ "field": w.field, "message": w.message }))
        .collect();
    json!({
        "task": task,
        "status": "PLANNED",
        "sent": false,
        "request": request,
        "credentials": connection.map(|name| json!({
            "connection": name,
            "note": "the host adds this connection's credentials when it sends, replacing any the input set; they are not shown",
        })),
        "refusal": refusal,
        "warnings": warnings,
    })
}

/// The secrets worth looking for (an empty one would match everywhere).
fn non_empty(secrets: &[String]) -> Vec<&str> {
    secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Replace every occurrence of each of `secrets` in `text` with `***`.
fn scrub(text: &mut String, secrets: &[&str]) {
    for secret in secrets {
        if text.contains(secret) {
            *text = text.replace(secret, "***");
        }
    }
}

/// [`scrub`] every string of a JSON value, object keys included.
fn redact_json(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(text) => scrub(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, secrets)),
        Value::Object(map) => {
            if map.keys().any(|k| secrets.iter().any(|s| k.contains(s))) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(mut key, value)| {
                        scrub(&mut key, secrets);
                        (key, value)
                    })
                    .collect();
            }
            map.values_mut().for_each(|v| redact_json(v, secrets));
        }
        _ => {}
    }
}

/// Whether a failed attempt may be sent again: the failure is one a retry can help
/// (`rate-limited`, `server-error`, `transport`), and sending again cannot apply the call
/// twice: the task is idempotent, or the server refused it with a 429, or no request
/// reached a server. A non-idempotent call that may have been applied is never re-sent
/// blindly (a duplicate usage record bills twice).
pub fn may_resend(outcome: &TaskOutcome) -> bool {
    outcome.failure.as_ref().is_some_and(|failure| {
        failure.kind.retryable()
            && (outcome.idempotent
                || failure.kind == ErrorKind::RateLimited
                || !outcome.reached_server)
    })
}

/// Whether sending this input to `task` twice has the effect of sending it once: the
/// task's own idempotency, or for `http` its method's (RFC 9110 9.2.2) or an
/// `Idempotency-Key` header's (the IETF httpapi draft real definitions and many APIs
/// use so that a POST or PATCH may be re-sent).
pub fn is_idempotent(sandbox: &Sandbox, task: &str, input: &str) -> bool {
    sandbox.info(task).is_some_and(|info| info.idempotent)
        || (task == "http" && http_request_is_idempotent(input))
}

/// Whether the `http` task input's method (default GET) is idempotent (RFC 9110 9.2.2),
/// or the request carries a non-empty `Idempotency-Key` header.
fn http_request_is_idempotent(input: &str) -> bool {
    let Ok(input) = serde_json::from_str::<Value>(input) else {
        return false;
    };
    let request = input.get("http_request").unwrap_or(&input);
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET");
    let keyed = request
        .get("headers")
        .and_then(Value::as_object)
        .is_some_and(|headers| {
            headers.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("idempotency-key")
                    && match value {
                        Value::String(key) => !key.trim().is_empty(),
                        Value::Null => false,
                        _ => true,
                    }
            })
        });
    keyed
        || ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]
            .contains(&method.to_ascii_uppercase().as_str())
}

fn classify(task: &str, idempotent: bool, run: TaskRun) -> TaskOutcome {
    let guest_log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    // Nothing that never reached a server can have been applied there.
    let outcome_known = idempotent || !run.reached_server;
    let (output, failure) = match run.result {
        RunResult::Returned(Ok(output)) => match serde_json::from_str::<Value>(&output) {
            Ok(output) => (output, None),
            // Every task answers JSON: anything else is a broken component, never a
            // success (and the call may have been applied).
            Err(e) => {
                let unknown = if outcome_known {
                    String::new()
                } else {
                    format!(" {UNKNOWN_OUTCOME}")
                };
                (
                    json!({}),
                    Some(TaskFailure::new(
                        ErrorKind::Sandbox,
                        format!("the component's output is not JSON ({e}).{unknown}"),
                    )),
                )
            }
        },
        RunResult::Returned(Err(error)) => {
            let (output, mut failure) = describe_error(error, outcome_known);
            if let Some(out) = &run.paced.refused {
                // Held back by its connection for longer than a run may wait: nothing of
                // it was sent, and the retry waits out the rest.
                let ms = u64::try_from(out.wait.as_millis()).unwrap_or(u64::MAX);
                failure = TaskFailure {
                    retry_after_ms: Some(ms),
                    ..TaskFailure::new(
                        ErrorKind::RateLimited,
                        format!(
                            "not sent: {} for another {ms} ms, longer than a run waits; retry after {ms} ms.",
                            out.reason
                        ),
                    )
                };
            } else if !run.denied.is_empty() {
                failure.kind = ErrorKind::Denied;
                failure.message = run.denied.join("; ");
            } else if !run.logins_refused.is_empty() {
                // A login refused for good (wrong credentials, a missing secret): no retry
                // can help, and the connection is not tried again in this run.
                failure.kind = ErrorKind::Unauthorized;
                failure.message = format!(
                    "{}. Nothing was sent to the task's endpoint; fix the connection in harness.toml and run it again.",
                    run.logins_refused.join("; ")
                );
            }
            (output, Some(failure))
        }
        // Stopped after a request reached the server (its answer blew a limit, or the
        // component trapped reading it): the call may have been applied all the same.
        RunResult::Stopped(message) if !outcome_known => (
            json!({}),
            Some(TaskFailure::new(
                ErrorKind::Sandbox,
                format!("{message}. {UNKNOWN_OUTCOME}"),
            )),
        ),
        RunResult::Stopped(message) => (
            json!({}),
            Some(TaskFailure::new(ErrorKind::Sandbox, message)),
        ),
    };
    let status = failure
        .as_ref()
        .map_or(TaskStatus::Completed, TaskFailure::status);
    TaskOutcome {
        task: task.to_string(),
        status,
        output,
        failure,
        guest_log,
        reached_server: run.reached_server,
        idempotent,
        paced: run.paced,
    }
}

/// What a failure after a non-idempotent request reached its server says.
const UNKNOWN_OUTCOME: &str = "The request may have been applied: check the record before sending it again (a duplicate may bill twice).";

fn describe_error(error: TaskError, outcome_known: bool) -> (Value, TaskFailure) {
    let failure = |kind, message: String, retry_after_ms| TaskFailure {
        kind,
        message,
        fields: Vec::new(),
        retry_after_ms,
    };
    let unknown_outcome = if outcome_known {
        String::new()
    } else {
        format!(" {UNKNOWN_OUTCOME}")
    };
    match error {
        TaskError::InvalidInput(fields) => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            (
                json!({}),
                TaskFailure {
                    kind: ErrorKind::InvalidInput,
                    message: format!("invalid input, nothing was sent: {}", list.join("; ")),
                    fields: fields.into_iter().map(|f| (f.field, f.message)).collect(),
                    retry_after_ms: None,
                },
            )
        }
        TaskError::Unauthorized(r) => (
            response_output(&r),
            failure(
                ErrorKind::Unauthorized,
                format!(
                    "{}. Check the credentials (token, sessionId or API key) for this server.",
                    summary(&r)
                ),
                None,
            ),
        ),
        TaskError::Forbidden(r) => (
            response_output(&r),
            failure(
                ErrorKind::Forbidden,
                format!(
                    "{}. The credentials are valid but lack permission for this call.",
                    summary(&r)
                ),
                None,
            ),
        ),
        TaskError::NotFound(r) => (
            response_output(&r),
            failure(
                ErrorKind::NotFound,
                format!("{}. Check the record id and the baseUrl.", summary(&r)),
                None,
            ),
        ),
        TaskError::Conflict(r) => (
            response_output(&r),
            failure(
                ErrorKind::Conflict,
                format!(
                    "{}. Nothing was applied; re-read the record and rebuild the request.",
                    summary(&r)
                ),
                None,
            ),
        ),
        TaskError::Rejected(r) => (
            response_output(&r),
            failure(
                ErrorKind::Rejected,
                format!(
                    "{}. The vendor rejected the request; fix the input and run it again.",
                    summary(&r)
                ),
                None,
            ),
        ),
        TaskError::RateLimited(r) => {
            let wait = r
                .retry_after_ms
                .map(|ms| format!("retry after {ms} ms"))
                .unwrap_or_else(|| "retry later (the server named no wait)".into());
            (
                response_output(&r.response),
                failure(
                    ErrorKind::RateLimited,
                    format!("{}: {wait}.", summary(&r.response)),
                    r.retry_after_ms,
                ),
            )
        }
        TaskError::ServerError(r) => (
            response_output(&r.response),
            failure(
                ErrorKind::ServerError,
                format!(
                    "{}. The server failed; a retry may help.{unknown_outcome}",
                    summary(&r.response)
                ),
                r.retry_after_ms,
            ),
        ),
        TaskError::Transport(message) => (
            json!({}),
            failure(
                ErrorKind::Transport,
                format!("{message}.{unknown_outcome}"),
                None,
            ),
        ),
        TaskError::Denied(message) => (json!({}), failure(ErrorKind::Denied, message, None)),
    }
}

/// `{"response": {statusCode, reasonPhrase, headers, body}}` for a response.
pub fn response_output(response: &HttpResponse) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in &response.headers {
        match headers.get_mut(name) {
            Some(Value::Array(values)) => values.push(value.clone().into()),
            _ => {
                headers.insert(name.clone(), json!([value]));
            }
        }
    }
    json!({
        "response": {
            "statusCode": response.status_code,
            "reasonPhrase": response.reason_phrase,
            "headers": headers,
            "body": body_value(&response.body),
        }
    })
}

fn body_value(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// "404 Not Found: <the vendor's own message>".
fn summary(response: &HttpResponse) -> String {
    let status = format!("{} {}", response.status_code, response.reason_phrase);
    match vendor_message(&body_value(&response.body)) {
        Some(message) => format!("{status}: {message}"),
        None => status,
    }
}

/// The human message in a vendor error body, whatever the vendor's style.
fn vendor_message(body: &Value) -> Option<String> {
    // BillingPlatform's per-record results: each record that failed, by position and Id,
    // with the field and the text it names.
    if let Some(items) = body.get("updateResponse").and_then(Value::as_array) {
        let failed: Vec<String> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| {
                item.get("success") == Some(&Value::Bool(false))
                    || item
                        .get("ErrorCode")
                        .is_some_and(|c| c.as_str().map_or(c.to_string(), str::to_string) != "0")
            })
            .map(|(i, item)| {
                let text = |key: &str| match item.get(key) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Array(parts)) if !parts.is_empty() => Some(
                        parts
                            .iter()
                            .map(|p| p.as_str().map_or(p.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    _ => None,
                };
                let id = text("Id")
                    .map(|id| format!(" (Id {id})"))
                    .unwrap_or_default();
                let field = text("ErrorElementField")
                    .map(|f| format!(" {f}:"))
                    .unwrap_or_default();
                let why = text("ErrorText").unwrap_or_else(|| "not updated".into());
                format!("record {i}{id}:{field} {why}")
            })
            .collect();
        if !failed.is_empty() {
            return Some(failed.join("; "));
        }
    }
    if let Some(errors) = body.get("Errors").and_then(Value::as_array) {
        let messages: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let message = e.get("Message")?.as_str()?;
                Some(match e.get("Code").and_then(Value::as_str) {
                    Some(code) => format!("{code}: {message}"),
                    None => message.to_string(),
                })
            })
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
    }
    if let Some(fields) = body.get("invalidFields").and_then(Value::as_array) {
        let messages: Vec<String> = fields
            .iter()
            .filter_map(|f| {
                Some(format!(
                    "{}: {}",
                    f.get("field")?.as_str()?,
                    f.get("message")?.as_str()?
                ))
            })
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
    }
    ["detail", "message", "error_description", "error", "title"]
        .iter()
        .find_map(|key| body.get(*key).and_then(Value::as_str).map(str::to_string))
        .or_else(|| body.as_str().map(|s| s.chars().take(200).collect()))
}

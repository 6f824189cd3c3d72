//! Workflow definitions run locally: Conductor-shaped definitions, expressions, forks,
//! switches, and retries that know billing (a call that may have been applied is never
//! re-sent blindly).

pub mod definition;
pub mod expression;
pub mod validate;

use crate::runner::{self, ErrorKind, TaskOutcome, TaskStatus};
use crate::sandbox::Sandbox;
use definition::{TaskDef, TaskKind, WorkflowDef, WorkflowTask};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time as the workflow runner sees it, so that tests can run retries without sleeping.
pub trait Clock: Send + Sync {
    /// Milliseconds since the clock started.
    fn now_ms(&self) -> u64;
    /// Wait `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// A random jitter in `0..=max_ms`.
    fn jitter_ms(&self, max_ms: u64) -> u64;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    started: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            started: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
    fn jitter_ms(&self, max_ms: u64) -> u64 {
        if max_ms == 0 {
            0
        } else {
            fastrand::u64(0..=max_ms)
        }
    }
}

/// A clock for tests: sleeping returns at once and moves time forward; every wait is
/// recorded; jitter is always its maximum.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// The waits asked for so far.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if let Ok(mut sleeps) = self.sleeps.lock() {
            sleeps.push(duration);
        }
        self.now.fetch_add(
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        Box::pin(async {})
    }
    fn jitter_ms(&self, max_ms: u64) -> u64 {
        max_ms
    }
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1 for the first.
    pub number: u32,
    /// When it started, ms since the workflow started.
    pub started_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// `COMPLETED`, `FAILED` or `FAILED_WITH_TERMINAL_ERROR`.
    pub status: TaskStatus,
    /// The failure kind.
    pub kind: Option<ErrorKind>,
    /// The failure message.
    pub message: Option<String>,
    /// The wait chosen before the next attempt, ms.
    pub wait_ms: Option<u64>,
    /// Why that wait.
    pub wait_reason: Option<String>,
}

/// One task of a run, as the result reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// `taskReferenceName`.
    pub reference: String,
    /// Task name (or the control type).
    pub task: String,
    /// Final status.
    pub status: String,
    /// Every attempt (component tasks).
    pub attempts: Vec<Attempt>,
    /// The input as resolved.
    pub input: Value,
    /// The output.
    pub output: Value,
}

/// The result of a workflow run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowResult {
    /// Workflow name.
    pub workflow: String,
    /// `COMPLETED` or `FAILED`.
    pub status: &'static str,
    /// The resolved `outputParameters`.
    pub output: Value,
    /// Every task that ran, in the order they finished.
    pub tasks: Vec<TaskRecord>,
    /// Why it failed.
    pub reason: Option<String>,
}

impl WorkflowResult {
    /// The JSON `harness run` prints.
    pub fn to_json(&self) -> Value {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                let attempts: Vec<Value> = t
                    .attempts
                    .iter()
                    .map(|a| {
                        json!({
                            "attempt": a.number,
                            "startedMs": a.started_ms,
                            "durationMs": a.duration_ms,
                            "status": a.status.as_str(),
                            "kind": a.kind.map(ErrorKind::as_str),
                            "message": a.message,
                            "waitMs": a.wait_ms,
                            "waitReason": a.wait_reason,
                        })
                    })
                    .collect();
                json!({
                    "ref": t.reference,
                    "task": t.task,
                    "status": t.status,
                    "attempts": attempts,
                    "input": redacted(&t.input),
                    "output": t.output,
                })
            })
            .collect();
        let mut object = Map::new();
        object.insert("workflow".into(), self.workflow.clone().into());
        object.insert("status".into(), self.status.into());
        object.insert("output".into(), self.output.clone());
        if let Some(reason) = &self.reason {
            object.insert("reasonForIncompletion".into(), reason.clone().into());
        }
        object.insert("tasks".into(), Value::Array(tasks));
        Value::Object(object)
    }
}

/// Where a task input without `baseUrl` (or an `http` task with a relative `uri`) is sent.
pub type BaseUrlFor = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// Receives one progress line per attempt.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs workflow definitions on a sandbox.
#[derive(Clone)]
pub struct WorkflowRunner {
    sandbox: Arc<Sandbox>,
    clock: Arc<dyn Clock>,
    base_url_for: BaseUrlFor,
    progress: Progress,
    credentials: Option<Arc<crate::connections::Credentials>>,
    policy: crate::policy::PolicyConfig,
}

struct Run {
    runner: WorkflowRunner,
    task_defs: HashMap<String, TaskDef>,
}

/// How a list of tasks ended (locally, or in the Temporal workflow).
pub(crate) struct Branch {
    pub(crate) records: Vec<TaskRecord>,
    pub(crate) context: Map<String, Value>,
    pub(crate) failure: Option<String>,
}

impl WorkflowRunner {
    /// A runner on `sandbox` with `clock`; tasks without a server go to `base_url_for(task)`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        clock: Arc<dyn Clock>,
        base_url_for: BaseUrlFor,
        progress: Progress,
    ) -> Self {
        WorkflowRunner {
            sandbox,
            clock,
            base_url_for,
            progress,
            credentials: None,
            policy: crate::policy::PolicyConfig::default(),
        }
    }

    /// Grant tasks what `policy` grants (`[policy]` of `harness.toml`). Inside a
    /// workflow only connections, this policy and the default server (`base_url_for`)
    /// grant origins, never a task's input: a `baseUrl` or `uri` computed from workflow
    /// data cannot steer a task to a server of its choosing.
    pub fn with_policy(mut self, policy: crate::policy::PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// Resolve the `"connection"` of task inputs with these credentials.
    pub fn with_credentials(mut self, credentials: Arc<crate::connections::Credentials>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Run a definition on a workflow input.
    pub async fn run(&self, definition: &WorkflowDef, input: Value) -> WorkflowResult {
        let run = Arc::new(Run {
            runner: self.clone(),
            task_defs: definition
                .task_definitions
                .iter()
                .map(|d| (d.name.clone(), d.clone()))
                .collect(),
        });
        let context = initial_context(input);
        let branch = run.run_list(definition.tasks.clone(), context).await;
        finish(definition, branch.records, &branch.context, branch.failure)
    }
}

/// The start of a run's context: `{"workflow": {"input": …}}`.
pub(crate) fn initial_context(input: Value) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("workflow".into(), json!({ "input": input }));
    context
}

/// The result of a run whose tasks ended with `records`, `context` and `failure`: the
/// `outputParameters` resolved when nothing failed.
pub(crate) fn finish(
    definition: &WorkflowDef,
    records: Vec<TaskRecord>,
    context: &Map<String, Value>,
    failure: Option<String>,
) -> WorkflowResult {
    let (status, output, reason) = match failure {
        Some(reason) => ("FAILED", json!({}), Some(reason)),
        None => match expression::resolve(
            &Value::Object(definition.output_parameters.clone()),
            context,
        ) {
            Ok(output) => ("COMPLETED", output, None),
            Err(e) => ("FAILED", json!({}), Some(format!("outputParameters: {e}"))),
        },
    };
    WorkflowResult {
        workflow: definition.name.clone(),
        status,
        output,
        tasks: records,
        reason,
    }
}

/// A JOIN's record: the outputs of the tasks it joins on.
pub(crate) fn join_record(task: &WorkflowTask, context: &Map<String, Value>) -> TaskRecord {
    let output: Map<String, Value> = task
        .join_on
        .iter()
        .map(|r| {
            (
                r.clone(),
                context
                    .get(r)
                    .map(|c| c["output"].clone())
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    record(task, "JOIN", "COMPLETED", json!({}), Value::Object(output))
}

/// A SWITCH evaluated on `context` (`value-param`: the value of the input parameter named
/// by `expression` picks the case, else `defaultCase`): its record and the tasks to run.
/// The error is the workflow's failure reason.
pub(crate) fn evaluate_switch(
    task: &WorkflowTask,
    context: &Map<String, Value>,
) -> Result<(TaskRecord, Vec<WorkflowTask>), String> {
    let input = expression::resolve(&Value::Object(task.input_parameters.clone()), context)
        .map_err(|e| format!("{}: {e}", task.task_reference_name))?;
    let key = task.expression.clone().unwrap_or_default();
    let chosen = match input.get(&key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let cases = task
        .cases()
        .map_err(|e| format!("{}: {e}", task.task_reference_name))?;
    let (case, list) = cases
        .into_iter()
        .find(|(case, _)| *case == chosen)
        .unwrap_or_else(|| ("defaultCase".to_string(), task.default_case.clone()));
    let switch = record(
        task,
        "SWITCH",
        "COMPLETED",
        input,
        json!({ "evaluationResult": [case] }),
    );
    Ok((switch, list))
}

/// Where a component task runs inside a workflow: its input prepared (connection, default
/// server) and what it is granted. The grant is the connection's origin, the default
/// server and the policy; never the origin the input itself names, so workflow data
/// cannot steer a task to a server of its choosing. An unknown connection is the
/// `invalid-input` outcome.
pub(crate) fn prepare_in_workflow(
    component: &str,
    input: &Value,
    base_url_for: &BaseUrlFor,
    credentials: Option<&Arc<crate::connections::Credentials>>,
    policy: &crate::policy::PolicyConfig,
) -> Result<runner::PreparedInput, Box<TaskOutcome>> {
    let has_server = runner::names_server(component, input);
    let default_server = base_url_for(component);
    let base = if has_server {
        None
    } else {
        default_server.clone()
    };
    let prepared =
        runner::prepare_connected(component, input.clone(), base.as_deref(), credentials)?;
    let mut grant = if input.get("connection").is_some() {
        prepared.policy.clone()
    } else {
        crate::policy::SendPolicy::deny_all()
    };
    if let Some(origin) = default_server
        .as_deref()
        .and_then(crate::policy::Origin::of_url)
    {
        grant = grant.allow_trusted(origin);
    }
    Ok(runner::PreparedInput {
        input: prepared.input,
        policy: policy.apply(component, grant),
    })
}

impl Run {
    fn run_list(
        self: &Arc<Self>,
        tasks: Vec<WorkflowTask>,
        mut context: Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Branch> + Send>> {
        let run = self.clone();
        Box::pin(async move {
            let mut records = Vec::new();
            for task in tasks {
                let kind = match task.kind() {
                    Ok(kind) => kind,
                    Err(e) => {
                        let failure = Some(format!("{}: {e}", task.task_reference_name));
                        return Branch {
                            records,
                            context,
                            failure,
                        };
                    }
                };
                let step = match kind {
                    TaskKind::Component => run.run_component(&task, &context).await,
                    TaskKind::Join => Step::done(join_record(&task, &context)),
                    TaskKind::ForkJoin => {
                        let mut branches = tokio::task::JoinSet::new();
                        for (i, branch) in task.fork_tasks.iter().enumerate() {
                            let (run, branch, context) =
                                (run.clone(), branch.clone(), context.clone());
                            branches.spawn(async move { (i, run.run_list(branch, context).await) });
                        }
                        let mut done = Vec::new();
                        while let Some(joined) = branches.join_next().await {
                            match joined {
                                Ok(branch) => done.push(branch),
                                Err(e) => {
                                    let failure = Some(format!(
                                        "{}: a branch stopped: {e}",
                                        task.task_reference_name
                                    ));
                                    return Branch {
                                        records,
                                        context,
                                        failure,
                                    };
                                }
                            }
                        }
                        done.sort_by_key(|(i, _)| *i);
                        let mut failure = None;
                        for (_, branch) in done {
                            records.extend(branch.records);
                            for (key, value) in branch.context {
                                context.entry(key).or_insert(value);
                            }
                            failure = failure.or(branch.failure);
                        }
                        if failure.is_some() {
                            return Branch {
                                records,
                                context,
                                failure,
                            };
                        }
                        Step::done(record(
                            &task,
                            "FORK_JOIN",
                            "COMPLETED",
                            json!({}),
                            json!({}),
                        ))
                    }
                    TaskKind::Switch => {
                        let (switch, list) = match evaluate_switch(&task, &context) {
                            Ok(chosen) => chosen,
                            Err(failure) => {
                                return Branch {
                                    records,
                                    context,
                                    failure: Some(failure),
                                };
                            }
                        };
                        context.insert(task.task_reference_name.clone(), entry(&switch));
                        records.push(switch);
                        let branch = run.run_list(list, context).await;
                        records.extend(branch.records);
                        context = branch.context;
                        if branch.failure.is_some() {
                            return Branch {
                                records,
                                context,
                                failure: branch.failure,
                            };
                        }
                        continue;
                    }
                };
                context.insert(task.task_reference_name.clone(), entry(&step.record));
                records.push(step.record);
                if let Some(failure) = step.failure
                    && !task.optional
                {
                    return Branch {
                        records,
                        context,
                        failure: Some(failure),
                    };
                }
            }
            Branch {
                records,
                context,
                failure: None,
            }
        })
    }

    async fn run_component(&self, task: &WorkflowTask, context: &Map<String, Value>) -> Step {
        let component = task.component().to_string();
        let reference = task.task_reference_name.clone();
        let input =
            match expression::resolve(&Value::Object(task.input_parameters.clone()), context) {
                Ok(input) => input,
                Err(e) => {
                    let message = format!("task {reference}: {e}");
                    return Step::terminal(task, &component, json!({}), message);
                }
            };
        let prepared = match prepare_in_workflow(
            &component,
            &input,
            &self.runner.base_url_for,
            self.runner.credentials.as_ref(),
            &self.runner.policy,
        ) {
            Ok(prepared) => prepared,
            Err(outcome) => {
                let message = outcome.failure.map(|f| f.message).unwrap_or_default();
                let message = format!("task {reference} failed: {message}");
                return Step::terminal(task, &component, input, message);
            }
        };
        let def = self.task_defs.get(&component).cloned().unwrap_or_default();
        let clock = &self.runner.clock;
        let first_started = clock.now_ms();
        let mut attempts = Vec::new();
        let mut number = 1;
        loop {
            let started = clock.now_ms();
            let wall = Instant::now();
            let (sandbox, policy) = (&self.runner.sandbox, prepared.policy.clone());
            // timeoutSeconds counts from when the attempt starts running, as Conductor
            // counts it from IN_PROGRESS: not while it waits for a slot in the pool.
            let outcome = if def.timeout_seconds > 0 {
                let within = Duration::from_secs(def.timeout_seconds);
                runner::run_task_within(sandbox, &component, &prepared.input, policy, within)
                    .await
                    .map(|outcome| {
                        outcome.unwrap_or_else(|| {
                            timed_out(
                                &component,
                                def.timeout_seconds,
                                runner::is_idempotent(sandbox, &component, &prepared.input),
                            )
                        })
                    })
            } else {
                runner::run_task(sandbox, &component, &prepared.input, policy).await
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    let message = format!("task {reference}: {e}");
                    return Step::terminal(task, &component, input, message);
                }
            };
            let duration_ms = u64::try_from(wall.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut attempt = Attempt {
                number,
                started_ms: started,
                duration_ms,
                status: outcome.status,
                kind: outcome.failure.as_ref().map(|f| f.kind),
                message: outcome.failure.as_ref().map(|f| f.message.clone()),
                wait_ms: None,
                wait_reason: None,
            };
            let Some(failure) = &outcome.failure else {
                (self.runner.progress)(&format!(
                    "{reference} {component} attempt {number}: COMPLETED in {duration_ms} ms"
                ));
                attempts.push(attempt);
                let mut done = record(task, &component, "COMPLETED", input, outcome.output.clone());
                done.attempts = attempts;
                return Step::done(done);
            };
            let may_retry = runner::may_resend(&outcome) && number <= def.retry_count;
            let wait = may_retry
                .then(|| wait_before(&def, number + 1, failure.retry_after_ms, clock.as_ref()));
            let over_total = wait.as_ref().is_some_and(|(ms, _)| {
                def.total_timeout_seconds > 0
                    && clock
                        .now_ms()
                        .saturating_sub(first_started)
                        .saturating_add(*ms)
                        > def.total_timeout_seconds.saturating_mul(1000)
            });
            // A server asking for longer than the definition allows fails the task rather
            // than stalling the workflow (or retrying early into another 429).
            let over_max = wait.as_ref().is_some_and(|(ms, _)| {
                *ms > def.max_retry_delay_seconds.saturating_mul(1000)
                    && def.max_retry_delay_seconds > 0
                    || *ms > MAX_WAIT_MS
            });
            let status = outcome.status.as_str();
            match wait {
                Some((ms, reason)) if !over_total && !over_max => {
                    (self.runner.progress)(&format!(
                        "{reference} {component} attempt {number}: {status} ({}) in {duration_ms} ms; waiting {ms} ms ({reason})",
                        failure.kind.as_str()
                    ));
                    attempt.wait_ms = Some(ms);
                    attempt.wait_reason = Some(reason);
                    attempts.push(attempt);
                    clock.sleep(Duration::from_millis(ms)).await;
                    number += 1;
                }
                _ => {
                    let why = if over_max {
                        let ms = wait.as_ref().map_or(0, |(ms, _)| *ms);
                        format!(
                            " (the server asked to wait {ms} ms, longer than maxRetryDelaySeconds or 24 hours allow)"
                        )
                    } else if over_total {
                        format!(
                            " (the next wait would pass totalTimeoutSeconds {})",
                            def.total_timeout_seconds
                        )
                    } else if failure.kind.retryable() && number > def.retry_count {
                        format!(" (after {number} attempts)")
                    } else if failure.kind.retryable() {
                        " (not retried: the call is not idempotent and may have been applied)"
                            .to_string()
                    } else {
                        String::new()
                    };
                    (self.runner.progress)(&format!(
                        "{reference} {component} attempt {number}: {status} ({}) in {duration_ms} ms",
                        failure.kind.as_str()
                    ));
                    attempts.push(attempt);
                    let mut failed =
                        record(task, &component, status, input, outcome.output.clone());
                    failed.attempts = attempts;
                    let message = format!("task {reference} failed{why}: {}", failure.message);
                    return Step {
                        record: failed,
                        failure: Some(message),
                    };
                }
            }
        }
    }
}

/// The longest wait a run accepts from a server, whatever the definition says: 24 hours.
pub const MAX_WAIT_MS: u64 = 24 * 60 * 60 * 1000;

/// The wait before attempt `next`: the larger of the backoff and the server's wait.
fn wait_before(
    def: &TaskDef,
    next: u32,
    retry_after_ms: Option<u64>,
    clock: &dyn Clock,
) -> (u64, String) {
    let backoff = def
        .backoff_ms(next)
        .saturating_add(clock.jitter_ms(def.backoff_jitter_ms));
    let logic = match def.retry_logic {
        definition::RetryLogic::Fixed => "FIXED",
        definition::RetryLogic::ExponentialBackoff => "EXPONENTIAL_BACKOFF",
        definition::RetryLogic::LinearBackoff => "LINEAR_BACKOFF",
    };
    match retry_after_ms {
        Some(server) if server > backoff => {
            (server, format!("the server asked to wait {server} ms"))
        }
        _ => (backoff, format!("{logic} backoff")),
    }
}

/// Header names whose values are credentials.
const CREDENTIAL_HEADERS: [&str; 6] = [
    "authorization",
    "reb-apikey",
    "sessionid",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// The input with credential header values (given literally instead of through a
/// connection) replaced by `***`, for printing.
pub(crate) fn redacted(input: &Value) -> Value {
    let mut input = input.clone();
    let request = match input.get_mut("http_request") {
        Some(nested) => nested,
        None => &mut input,
    };
    if let Some(Value::Object(headers)) = request.get_mut("headers") {
        for (name, value) in headers.iter_mut() {
            if CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                *value = Value::String("***".into());
            }
        }
    }
    input
}

fn timed_out(task: &str, seconds: u64, idempotent: bool) -> TaskOutcome {
    TaskOutcome {
        task: task.to_string(),
        status: TaskStatus::Failed,
        output: json!({}),
        failure: Some(runner::TaskFailure {
            kind: ErrorKind::Transport,
            message: format!("the attempt exceeded timeoutSeconds ({seconds} s)"),
            fields: Vec::new(),
            retry_after_ms: None,
        }),
        guest_log: String::new(),
        // The attempt may have sent its request before it was cut off.
        reached_server: true,
        idempotent,
    }
}

struct Step {
    record: TaskRecord,
    failure: Option<String>,
}

impl Step {
    fn done(record: TaskRecord) -> Step {
        Step {
            record,
            failure: None,
        }
    }

    /// A component task that failed outside its attempts (unresolvable reference,
    /// unknown connection, sandbox error): terminal, with no output.
    fn terminal(task: &WorkflowTask, component: &str, input: Value, failure: String) -> Step {
        Step {
            record: record(
                task,
                component,
                "FAILED_WITH_TERMINAL_ERROR",
                input,
                json!({}),
            ),
            failure: Some(failure),
        }
    }
}

pub(crate) fn record(
    task: &WorkflowTask,
    name: &str,
    status: &str,
    input: Value,
    output: Value,
) -> TaskRecord {
    TaskRecord {
        reference: task.task_reference_name.clone(),
        task: name.to_string(),
        status: status.to_string(),
        attempts: Vec::new(),
        input,
        output,
    }
}

/// A task's entry in the run context, which later expressions read (`${ref.output…}`).
pub(crate) fn entry(record: &TaskRecord) -> Value {
    json!({ "input": record.input, "output": record.output, "status": record.status })
}

//! The `run-definition` workflow: one of our workflow definitions (with its input) run
//! durably on Temporal. Each component task is an activity (type = task name) with the
//! retry policy translated from its task definition; `FORK_JOIN` branches run as
//! parallel activities; `SWITCH` and expressions are evaluated in the workflow by the
//! same interpreter as a local run (deterministic: it reads only the definition, the
//! input and earlier task outputs). The result has the shape of `harness run`'s.

// The Temporal macros generate public marker constants without docs.
#![allow(missing_docs)]

use futures::future::LocalBoxFuture;
use harness_runner::{ErrorKind, TaskStatus};
use harness_workflow::Attempt;
use harness_workflow::definition::{RetryLogic, TaskDef, WorkflowDef};
use harness_workflow::interpreter::{self, ReadyTask, TaskExecutor, TaskResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use temporalio_common::error::IncomingError;
use temporalio_common::protos::temporal::api::history::v1::{HistoryEvent, history_event};
use temporalio_common::{ActivityDefinition, RetryPolicy};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityExecutionError, ActivityOptions, WorkflowContext, WorkflowResult};

/// The workflow input: a definition (Conductor JSON, inline `taskDefinitions` included)
/// and the workflow input it runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDefinitionInput {
    /// The definition.
    pub definition: Value,
    /// Its input (a JSON object).
    #[serde(default)]
    pub input: Value,
    /// `${workflow.correlationId}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// `--mock-outputs`, in the shape of Conductor's workflow test request (null: none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub mocks: Value,
    /// `--definitions`: the workflows the run may start (`failureWorkflow`, `SUB_WORKFLOW`s
    /// by name), as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<Value>,
    /// The user's own task names (`--tasks`): run as `user-task` activities by workers
    /// started with the same `--tasks DIR`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
}

/// An attempt without `timeoutSeconds` may run this long (the sandbox stops a task long
/// before, at its `timeout_ms`; a worker that dies is noticed by the heartbeat timeout).
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(600);

/// The `run-definition` workflow.
#[workflow]
#[derive(Default)]
pub struct RunDefinition;

#[workflow_methods]
impl RunDefinition {
    /// Run the definition; the result is `harness run`'s JSON (a failed task makes a
    /// `FAILED` result, not a failed workflow execution).
    #[run(name = "run-definition")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        mut input: RunDefinitionInput,
    ) -> WorkflowResult<Value> {
        // An invalid definition fails the execution (as `harness run` refuses to start
        // it), rather than completing with a FAILED result.
        let mocks = if input.mocks.is_null() {
            harness_workflow::Mocks::default()
        } else {
            harness_workflow::Mocks::parse(&input.mocks).map_err(|e| {
                temporalio_sdk::ApplicationFailure::non_retryable(anyhow::anyhow!(
                    "the mocks are not valid: {e}"
                ))
            })?
        };
        let mocked: std::collections::BTreeSet<String> =
            mocks.references().map(String::from).collect();
        let definitions =
            harness_workflow::Definitions::from_values(&input.definitions).map_err(|e| {
                temporalio_sdk::ApplicationFailure::non_retryable(anyhow::anyhow!(
                    "the definitions are not valid: {e}"
                ))
            })?;
        let mut tasks = crate::activities::activity_names();
        tasks.extend(input.tasks.iter().map(String::as_str));
        let schemas = Default::default();
        let report = harness_workflow::validate::validate(
            &input.definition,
            &harness_workflow::validate::Catalog {
                tasks: &tasks,
                connections: None,
                schemas: &schemas,
                mocked: &mocked,
                secrets: None,
                definitions: &definitions,
            },
        );
        if !report.problems.is_empty() {
            let listed: Vec<String> = report
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            return Err(
                temporalio_sdk::ApplicationFailure::non_retryable(anyhow::anyhow!(
                    "the definition is not valid: {}",
                    listed.join("; ")
                ))
                .into(),
            );
        }
        let definition: WorkflowDef =
            serde_json::from_value(input.definition.clone()).map_err(|e| {
                temporalio_sdk::ApplicationFailure::non_retryable(anyhow::anyhow!(
                    "the definition does not parse: {e}"
                ))
            })?;
        // Which connections have a task queue of their own (paced across workers): asked
        // once, of the worker running this workflow, and recorded in the history. Runs
        // started before the question existed go on without it.
        let queues = if ctx.patched(CONNECTION_QUEUES_PATCH) {
            let options = temporalio_sdk::LocalActivityOptions::builder()
                .start_to_close_timeout(Duration::from_secs(10))
                .build();
            let answer = ctx
                .execute_local_activity(
                    TaskActivity(crate::activities::CONNECTION_QUEUES_ACTIVITY.to_string()),
                    Value::Null,
                    options,
                )
                .await
                .map_err(|e| {
                    temporalio_sdk::ApplicationFailure::non_retryable(anyhow::anyhow!(
                        "asking the worker for its connection task queues: {e}"
                    ))
                })?;
            serde_json::from_value(answer).unwrap_or_default()
        } else {
            crate::activities::ConnectionQueues::new()
        };
        let mut activities = Activities {
            ctx: ctx.clone(),
            started: ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH),
            queues,
            limiters: Default::default(),
            cancel_stopped: false,
        };
        // Sub-workflows time out on their own in runs started since they could; older
        // runs replay without those timers.
        let without_sub_workflow_timeouts = !ctx.patched(SUB_WORKFLOW_TIMEOUTS_PATCH);
        // A failed branch ends its fork at once in runs started since it does; older
        // runs replay with the other branches going on.
        let forks_wait_for_every_branch = !ctx.patched(FAILED_BRANCH_ENDS_FORK_PATCH);
        activities.cancel_stopped = !forks_wait_for_every_branch;
        // A failed sub-workflow starts its own failureWorkflow in runs started since it
        // does; older runs replay without those runs.
        let without_sub_workflow_failure_workflows =
            !ctx.patched(SUB_WORKFLOW_FAILURE_WORKFLOWS_PATCH);
        // A fork keeps at most BRANCHES_AT_ONCE branches in progress in runs started
        // since it does; older runs replay with every branch started at once.
        let every_branch_at_once = !ctx.patched(BRANCHES_AT_ONCE_PATCH);
        // A DYNAMIC task naming a system task's type runs that system task in runs
        // started since it does; older runs replay with every name a worker's.
        let dynamic_names_are_workers = !ctx.patched(DYNAMIC_SYSTEM_TASKS_PATCH);
        // A task's `permissive` is Conductor's in runs started since the `permissive`
        // patch; older runs, which ignored it, replay with it left out (the definitions
        // parsed once more without it: they parsed with it above).
        let permissive_ignored = !ctx.patched(PERMISSIVE_PATCH);
        let (definition, definitions) = if !permissive_ignored {
            (definition, definitions)
        } else {
            harness_workflow::strip_permissive(&mut input.definition);
            input
                .definitions
                .iter_mut()
                .for_each(harness_workflow::strip_permissive);
            (
                serde_json::from_value(input.definition.clone()).unwrap_or(definition),
                harness_workflow::Definitions::from_values(&input.definitions)
                    .unwrap_or(definitions),
            )
        };
        let options = interpreter::RunOptions {
            workflow_id: ctx.workflow_id().to_string(),
            correlation_id: input.correlation_id,
            mocks,
            definitions: Arc::new(definitions),
            without_sub_workflow_timeouts,
            forks_wait_for_every_branch,
            without_sub_workflow_failure_workflows,
            every_branch_at_once,
            dynamic_names_are_workers,
            permissive_ignored,
        };
        let result =
            interpreter::drive(&activities, Arc::new(definition), input.input, options).await;
        Ok(pack(result.to_json()))
    }
}

/// An activity called by task name with JSON in and out.
struct TaskActivity(String);

impl ActivityDefinition for TaskActivity {
    type Input = Value;
    type Output = Value;
    fn name(&self) -> &str {
        &self.0
    }
}

/// The patch that marks runs whose sub-workflows time out on their own
/// (`timeoutSeconds` with `TIME_OUT_WF` in the sub-workflow's definition).
const SUB_WORKFLOW_TIMEOUTS_PATCH: &str = "sub-workflow-timeouts";

/// The patch under which a task failing a fork's branch fails the workflow at once, the
/// other branches' tasks canceled (runs started before it let them go on).
const FAILED_BRANCH_ENDS_FORK_PATCH: &str = "failed-branch-ends-fork";

/// The patch under which a failed sub-workflow starts its own `failureWorkflow` (runs
/// started before it did not).
const SUB_WORKFLOW_FAILURE_WORKFLOWS_PATCH: &str = "sub-workflow-failure-workflows";

/// The patch under which a fork keeps at most `BRANCHES_AT_ONCE` branches in progress,
/// starting the next as one ends (runs started before it started every branch at once).
const BRANCHES_AT_ONCE_PATCH: &str = "branches-at-once";

/// The patch under which a DYNAMIC task naming a system task's type (HTTP, INLINE, …)
/// runs that system task (runs started before it ran a worker of that name).
const DYNAMIC_SYSTEM_TASKS_PATCH: &str = "dynamic-system-tasks";

/// The patch under which a task's `permissive` holds (runs started before it ignored it).
const PERMISSIVE_PATCH: &str = "permissive";

/// The patch that marks runs which ask for the connection task queues.
const CONNECTION_QUEUES_PATCH: &str = "connection-queues";

/// The interpreter's executor in the workflow: each component task is an activity.
struct Activities {
    ctx: WorkflowContext<RunDefinition>,
    started: SystemTime,
    /// Paced connections' task queues: a task on one of them is scheduled there.
    queues: crate::activities::ConnectionQueues,
    /// The task definitions' Conductor limits, by task definition name.
    limiters: std::cell::RefCell<HashMap<String, std::rc::Rc<RunLimiter>>>,
    /// Whether a task the run stops (dropped before its activity ended: a fork's other
    /// branches when one failed, a timed-out sub-workflow's tasks) has its activity
    /// canceled, so that Temporal retries it no more: in runs started since the
    /// `failed-branch-ends-fork` patch.
    cancel_stopped: bool,
}

/// An activity's future that requests the activity's cancellation when it is dropped
/// before it ended (Temporal would otherwise go on retrying it by its retry policy).
struct CancelOnDrop<F: temporalio_sdk::CancellableFuture> {
    future: std::pin::Pin<Box<F>>,
    cancel: bool,
}

impl<F: temporalio_sdk::CancellableFuture> std::future::Future for CancelOnDrop<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let polled = self.future.as_mut().poll(cx);
        if polled.is_ready() {
            self.cancel = false;
        }
        polled
    }
}

impl<F: temporalio_sdk::CancellableFuture> Drop for CancelOnDrop<F> {
    fn drop(&mut self) {
        if self.cancel && !self.future.is_terminated() {
            self.future.cancel();
        }
    }
}

/// A task definition's `rateLimitPerFrequency` / `rateLimitFrequencyInSeconds` and
/// `concurrentExecLimit` within one run on Temporal, on workflow time (timers), so that a
/// replay holds the same tasks the same way. Applied before the activity is scheduled;
/// its retries, which Temporal runs, are not held again.
struct RunLimiter {
    name: String,
    limits: harness_pacing::TaskDefLimits,
    /// Starts within the window, on workflow time.
    starts: std::cell::RefCell<harness_pacing::StartWindow>,
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl RunLimiter {
    fn new(def: &TaskDef) -> Option<RunLimiter> {
        let limits = harness_pacing::TaskDefLimits {
            rate_limit_per_frequency: def.rate_limit_per_frequency,
            rate_limit_frequency_in_seconds: def.rate_limit_frequency_in_seconds,
            concurrent_exec_limit: def.concurrent_exec_limit,
        };
        limits.is_limited().then(|| RunLimiter {
            name: def.name.clone(),
            limits,
            starts: std::cell::RefCell::new(harness_pacing::StartWindow::new(
                limits.rate_limit_per_frequency,
                Duration::from_secs(limits.rate_limit_frequency_in_seconds),
            )),
            slots: (limits.concurrent_exec_limit > 0).then(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    limits.concurrent_exec_limit as usize,
                ))
            }),
        })
    }

    /// Wait until the task may start: a slot (held until it ends), then room in the
    /// window. Returns the slot and what the wait was, if any.
    async fn admit(
        &self,
        ctx: &WorkflowContext<RunDefinition>,
        started: SystemTime,
    ) -> (
        Option<tokio::sync::OwnedSemaphorePermit>,
        Option<harness_workflow::Paced>,
    ) {
        use harness_pacing::WaitReason;
        let label = format!("task definition `{}`", self.name);
        let first = now_ms(ctx, started);
        let mut reasons: Vec<String> = Vec::new();
        let slot = match &self.slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    let reason = WaitReason::InFlight {
                        limiter: label.clone(),
                        max: self.limits.concurrent_exec_limit,
                    };
                    reasons.push(reason.to_string());
                    // The semaphore is never closed.
                    slots.clone().acquire_owned().await.ok()
                }
            },
        };
        let (count, seconds) = (
            self.limits.rate_limit_per_frequency,
            self.limits.rate_limit_frequency_in_seconds,
        );
        if count > 0 && seconds > 0 {
            loop {
                let now = Duration::from_millis(now_ms(ctx, started));
                let tried = self.starts.borrow_mut().try_start(now);
                let Err(wait) = tried else { break };
                let reason = WaitReason::Frequency {
                    limiter: label.clone(),
                    count,
                    seconds,
                }
                .to_string();
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
                let _ = ctx.timer(wait).await;
            }
        }
        let waited_ms = now_ms(ctx, started).saturating_sub(first);
        let paced = (waited_ms > 0 || !reasons.is_empty()).then(|| harness_workflow::Paced {
            waited_ms,
            wait_reason: reasons.join("; "),
        });
        (slot, paced)
    }
}

impl Activities {
    /// Milliseconds since the workflow started, in workflow time (replays the same).
    fn now_ms(&self) -> u64 {
        now_ms(&self.ctx, self.started)
    }
}

fn now_ms(ctx: &WorkflowContext<RunDefinition>, started: SystemTime) -> u64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(started).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TaskExecutor for Activities {
    type Run = LocalBoxFuture<'static, TaskResult>;

    fn now_ms(&self) -> u64 {
        Activities::now_ms(self)
    }

    type Wake<'a> = LocalBoxFuture<'a, ()>;

    fn wake_at(&self, at_ms: u64) -> Self::Wake<'_> {
        let wait = Duration::from_millis(at_ms.saturating_sub(Activities::now_ms(self)));
        let timer = self.ctx.timer(wait);
        Box::pin(async move {
            let _ = timer.await;
        })
    }

    fn epoch_ms(&self) -> u64 {
        self.ctx
            .workflow_time()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn execute(&self, task: ReadyTask) -> Self::Run {
        let (ctx, started, cancel_stopped) = (self.ctx.clone(), self.started, self.cancel_stopped);
        let limiter = {
            let mut limiters = self.limiters.borrow_mut();
            match limiters.get(&task.def.name) {
                Some(limiter) => Some(limiter.clone()),
                None => RunLimiter::new(&task.def).map(|limiter| {
                    let limiter = std::rc::Rc::new(limiter);
                    limiters.insert(task.def.name.clone(), limiter.clone());
                    limiter
                }),
            }
        };
        let queue = task
            .input
            .get("connection")
            .and_then(Value::as_str)
            .and_then(|connection| self.queues.get(connection))
            .cloned();
        let started_ms = self.now_ms();
        if let Some(wait) = task.wait {
            // A WAIT is a durable Temporal timer.
            let ms = wait.ms_from(TaskExecutor::epoch_ms(self));
            return Box::pin(async move {
                if ms > 0 {
                    let _ = ctx.timer(Duration::from_millis(ms)).await;
                }
                TaskResult::waited(started_ms, ms)
            });
        }
        Box::pin(async move {
            let ReadyTask {
                reference,
                component,
                input,
                def,
                ..
            } = task;
            // A shipped task is the activity of its name; a user's own task goes through
            // the one `user-task` activity.
            let (activity, input) =
                if crate::activities::activity_names().contains(&component.as_str()) {
                    (component, input)
                } else {
                    (
                        crate::activities::USER_TASK_ACTIVITY.to_string(),
                        json!({ "task": component, "input": input }),
                    )
                };
            // Conductor keeps a task SCHEDULED while its definition's limits hold it: the
            // activity is scheduled (and its timeouts count) once it is let through.
            let (slot, paced) = match &limiter {
                Some(limiter) => limiter.admit(&ctx, started).await,
                None => (None, None),
            };
            let started_ms = now_ms(&ctx, started);
            let mut options = activity_options(&def, &reference);
            options.task_queue = queue;
            let result = CancelOnDrop {
                future: Box::pin(ctx.execute_activity(TaskActivity(activity), input, options)),
                cancel: cancel_stopped,
            }
            .await;
            drop(slot);
            let duration_ms = now_ms(&ctx, started).saturating_sub(started_ms);
            let attempt = |number, status, kind, message| Attempt {
                number,
                started_ms,
                duration_ms,
                status,
                kind,
                message,
                wait_ms: None,
                wait_reason: None,
                paced: paced.clone(),
            };
            match result {
                // The number of the final attempt: filled in from the history by the
                // submitter (the workflow sees only the activity's result).
                Ok(output) => TaskResult {
                    status: TaskStatus::Completed,
                    attempts: vec![attempt(0, TaskStatus::Completed, None, None)],
                    output,
                    failure: None,
                },
                Err(error) => {
                    let failed = describe_failure(&error, &def);
                    let message =
                        format!("task {reference} failed{}: {}", failed.why, failed.message);
                    TaskResult {
                        status: failed.status,
                        attempts: vec![attempt(
                            failed.attempt,
                            failed.status,
                            Some(failed.kind),
                            Some(failed.message),
                        )],
                        output: failed.output,
                        failure: Some(message),
                    }
                }
            }
        })
    }
}

/// The activity options of a task: Conductor's retry settings as Temporal's retry policy
/// (`retryCount` + 1 attempts; `FIXED` a backoff coefficient of 1, `EXPONENTIAL_BACKOFF`
/// 2; `LINEAR_BACKOFF`, which Temporal cannot express, the first linear delay
/// (`retryDelaySeconds × backoffScaleFactor`) every time; `maxRetryDelaySeconds` the
/// maximum interval; `backoffJitterMs`, which it cannot express either, is not applied),
/// `timeoutSeconds` (or a smaller `responseTimeoutSeconds`) the start-to-close timeout and
/// `totalTimeoutSeconds` the schedule-to-close timeout. The activity id is the task's
/// reference name.
pub fn activity_options(def: &TaskDef, reference: &str) -> ActivityOptions {
    let (delay_ms, coefficient) = match def.retry_logic {
        RetryLogic::Fixed => (def.backoff_ms(2), 1.0),
        RetryLogic::ExponentialBackoff => (def.backoff_ms(2), 2.0),
        RetryLogic::LinearBackoff => (def.backoff_ms(2), 1.0),
    };
    let retry_policy = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(
            delay_ms.max(harness_workflow::definition::MIN_RETRY_DELAY_MS),
        ))
        .backoff_coefficient(coefficient)
        .maybe_maximum_interval(
            (def.max_retry_delay_seconds > 0)
                .then(|| Duration::from_secs(def.max_retry_delay_seconds)),
        )
        .maximum_attempts(
            def.retry_count
                .min(harness_workflow::definition::MAX_RETRY_COUNT)
                .saturating_add(1),
        )
        .build();
    let start_to_close = if def.attempt_limit_seconds() > 0 {
        Duration::from_secs(def.attempt_limit_seconds())
    } else {
        DEFAULT_ATTEMPT_TIMEOUT
    };
    let close = if def.total_timeout_seconds > 0 {
        temporalio_sdk::ActivityCloseTimeouts::ScheduleAndStartToClose {
            start_to_close,
            schedule_to_close: Duration::from_secs(def.total_timeout_seconds),
        }
    } else {
        temporalio_sdk::ActivityCloseTimeouts::StartToClose(start_to_close)
    };
    ActivityOptions::with_close_timeouts(close)
        .activity_id(reference.to_string())
        .heartbeat_timeout(super::activities::HEARTBEAT_TIMEOUT)
        .retry_policy(retry_policy)
        .build()
}

/// A failed activity as the result reports it.
struct Failed {
    status: TaskStatus,
    kind: ErrorKind,
    message: String,
    output: Value,
    attempt: u32,
    why: String,
}

fn describe_failure(error: &ActivityExecutionError, def: &TaskDef) -> Failed {
    let exhausted = match error {
        ActivityExecutionError::Failed(failed) => {
            failed.retry_state() == temporalio_sdk::RetryState::MaximumAttemptsReached
        }
        _ => false,
    };
    match error.cause() {
        Some(IncomingError::Application(app)) => {
            let details: Value = app.details().ok().flatten().unwrap_or_default();
            let kind = app
                .type_name()
                .and_then(ErrorKind::from_name)
                .unwrap_or(ErrorKind::Sandbox);
            let attempt = details["attempt"].as_u64().unwrap_or(0);
            let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
            Failed {
                status: if kind.retryable() {
                    TaskStatus::Failed
                } else {
                    TaskStatus::FailedWithTerminalError
                },
                kind,
                message: app.to_string(),
                output: details.get("output").cloned().unwrap_or_else(|| json!({})),
                attempt,
                why: if exhausted && kind.retryable() {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                },
            }
        }
        Some(IncomingError::Timeout(timeout)) => Failed {
            status: TaskStatus::Failed,
            kind: ErrorKind::Transport,
            message: format!(
                "the attempt timed out ({:?}; timeoutSeconds {}, totalTimeoutSeconds {})",
                timeout.timeout_type(),
                def.timeout_seconds,
                def.total_timeout_seconds
            ),
            output: json!({}),
            attempt: 0,
            why: String::new(),
        },
        _ => Failed {
            status: TaskStatus::Failed,
            kind: ErrorKind::Transport,
            message: error.to_string(),
            output: json!({}),
            attempt: 0,
            why: String::new(),
        },
    }
}

/// The key of a packed result: its JSON, gzip-compressed, as base64 text.
const PACKED: &str = "harnessResultGzipBase64";

/// Results whose JSON is longer than this travel packed.
const PACK_ABOVE: usize = 256 << 10;

/// The longest packed result sent whole: Temporal refuses a payload over 2 MB.
const PACKED_AT_MOST: usize = 1_900_000;

/// A run's result as the workflow returns it: as it is, or, when its JSON is longer
/// than [`PACK_ABOVE`], packed (gzip, then base64) under [`PACKED`]. Temporal refuses a
/// result over 2 MB (`limit.blobSize.error`), about 640 records of the batch example as
/// JSON; packed, a record takes about 300 bytes (about 6,000 records fit). A result too
/// large even packed goes back without its task records, saying so in `warnings`. The
/// packing is deterministic (the same result gives the same text on a replay).
pub fn pack(result: Value) -> Value {
    let text = result.to_string();
    if text.len() <= PACK_ABOVE {
        return result;
    }
    use std::io::Write;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let packed = gzip.write_all(text.as_bytes()).and_then(|()| gzip.finish());
    let bytes = match packed {
        Ok(bytes) => bytes,
        // Writing to memory does not fail; if it did, the result goes as it is.
        Err(_) => return result,
    };
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    if text.len() <= PACKED_AT_MOST {
        return serde_json::json!({ PACKED: text });
    }
    // Too large even packed: Temporal would refuse the workflow's completion again and
    // again, and the run would never end. The run's status, output and reason go back,
    // and the result says that its task records were left out and where they are.
    let tasks = result["tasks"].as_array().map_or(0, Vec::len);
    let mut summary = serde_json::Map::new();
    for key in [
        "workflow",
        "workflowId",
        "status",
        "output",
        "reasonForIncompletion",
    ] {
        if let Some(value) = result.get(key) {
            summary.insert(key.into(), value.clone());
        }
    }
    summary.insert("tasks".into(), Value::Array(Vec::new()));
    summary.insert(
        "warnings".into(),
        serde_json::json!([format!(
            "the result's {tasks} task records ({} bytes packed) exceed Temporal's 2 MB result limit and are left out, with the runs of any failure workflows: each task's input and output is in the workflow's history (temporal workflow show -w ID)",
            text.len()
        )]),
    );
    Value::Object(summary)
}

/// A result as [`pack`] made it, unpacked: the run's result JSON.
pub fn unpack(result: Value) -> Result<Value, String> {
    let Some(text) = result.get(PACKED).and_then(Value::as_str) else {
        return Ok(result);
    };
    use base64::Engine;
    use std::io::Read;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("the packed result is not base64: {e}"))?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut json)
        .map_err(|e| format!("the packed result does not inflate: {e}"))?;
    serde_json::from_str(&json).map_err(|e| format!("the packed result is not JSON: {e}"))
}

/// What the history tells about a run's tasks that the workflow could not see, filled
/// into `result` (the run's JSON) by the submitter:
/// - the number of each task's final attempt (the workflow sees only an activity's final
///   outcome);
/// - for a task scheduled on a paced connection's own task queue (`BASE.CONNECTION`,
///   `base_queue` being the run's), how long its first attempt was held there from
///   scheduled to started (the Temporal server's rate limit on that queue, and any wait
///   for a free worker), as the attempt's `paced`, added to what the workflow recorded.
///   A retried task's later attempts are not counted: their wait includes the backoff.
pub fn fill_attempt_numbers(result: &mut Value, events: &[HistoryEvent], base_queue: &str) {
    struct Scheduled {
        activity_id: String,
        queue: String,
        at_ms: Option<i64>,
    }
    let at_ms = |event: &HistoryEvent| {
        event
            .event_time
            .as_ref()
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
    };
    let mut scheduled: HashMap<i64, Scheduled> = HashMap::new();
    // Per activity id: the final attempt's number, and the first attempt's hold on a
    // paced queue (ms, queue).
    let mut attempts: HashMap<String, (i32, Option<(i64, String)>)> = HashMap::new();
    let paced_prefix = format!("{base_queue}.");
    for event in events {
        match &event.attributes {
            Some(history_event::Attributes::ActivityTaskScheduledEventAttributes(a)) => {
                scheduled.insert(
                    event.event_id,
                    Scheduled {
                        activity_id: a.activity_id.clone(),
                        queue: a
                            .task_queue
                            .as_ref()
                            .map(|q| q.name.clone())
                            .unwrap_or_default(),
                        at_ms: at_ms(event),
                    },
                );
            }
            Some(history_event::Attributes::ActivityTaskStartedEventAttributes(a)) => {
                if let Some(s) = scheduled.get(&a.scheduled_event_id) {
                    let held = match (s.at_ms, at_ms(event)) {
                        (Some(from), Some(to))
                            if a.attempt == 1 && s.queue.starts_with(&paced_prefix) =>
                        {
                            Some(((to - from).max(0), s.queue.clone()))
                        }
                        _ => None,
                    };
                    attempts.insert(s.activity_id.clone(), (a.attempt, held));
                }
            }
            _ => {}
        }
    }
    let Some(tasks) = result.get_mut("tasks").and_then(Value::as_array_mut) else {
        return;
    };
    for task in tasks {
        let Some(reference) = task.get("ref").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let Some((number, held)) = attempts.get(&reference) else {
            continue;
        };
        let Some(first) = task
            .get_mut("attempts")
            .and_then(Value::as_array_mut)
            .and_then(|a| a.first_mut())
        else {
            continue;
        };
        if first["attempt"].as_u64() != Some(0) {
            continue;
        }
        first["attempt"] = (*number).into();
        if let Some((held_ms, queue)) = held.as_ref().filter(|(ms, _)| *ms > 0) {
            let reason = format!(
                "task queue `{queue}`: held {held_ms} ms from scheduled to started (the Temporal server's rate limit on the connection's queue, and any wait for a free worker)"
            );
            let (waited, reasons) = match first.get("paced") {
                Some(Value::Object(paced)) => (
                    paced.get("waitedMs").and_then(Value::as_i64).unwrap_or(0),
                    format!(
                        "{}; {reason}",
                        paced
                            .get("waitReason")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                ),
                _ => (0, reason),
            };
            first["paced"] = serde_json::json!({
                "waitedMs": waited + held_ms,
                "waitReason": reasons,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_with(tasks: Vec<Value>) -> Value {
        serde_json::json!({
            "workflow": "period_usage_batch", "workflowId": "wf-1", "status": "COMPLETED",
            "output": { "synced": tasks.len() }, "tasks": tasks,
        })
    }

    /// A result within the threshold goes as it is; a larger one travels packed and
    /// unpacks to the same JSON; packing it again gives the same text (replays agree).
    #[test]
    fn a_large_result_travels_packed_and_unpacks_to_the_same_json() {
        let small = result_with(vec![serde_json::json!({ "ref": "a" })]);
        assert_eq!(pack(small.clone()), small);
        assert_eq!(unpack(small.clone()), Ok(small));
        let tasks = (0..5_000)
            .map(|i| serde_json::json!({ "ref": format!("_sync_each_{i}"), "status": "COMPLETED", "output": { "quantity": i } }))
            .collect();
        let large = result_with(tasks);
        assert!(large.to_string().len() > PACK_ABOVE);
        let packed = pack(large.clone());
        assert_eq!(packed.as_object().map(|m| m.len()), Some(1));
        assert!(packed[PACKED].as_str().unwrap().len() < large.to_string().len() / 4);
        assert_eq!(pack(large.clone()), packed);
        assert_eq!(unpack(packed), Ok(large));
    }

    /// A result too large even packed goes back without its task records, and says so.
    #[test]
    fn a_result_too_large_even_packed_keeps_its_status_and_output_and_says_its_records_are_left_out()
     {
        let mut rng = fastrand::Rng::with_seed(7);
        let tasks: Vec<Value> = (0..3_000)
            .map(|i| {
                let noise: String = (0..1_000).map(|_| rng.alphanumeric()).collect();
                serde_json::json!({ "ref": format!("t{i}"), "output": noise })
            })
            .collect();
        let summary = pack(result_with(tasks));
        assert_eq!(summary["status"], "COMPLETED");
        assert_eq!(summary["output"], serde_json::json!({ "synced": 3_000 }));
        assert_eq!(summary["tasks"], serde_json::json!([]));
        let warning = summary["warnings"][0].as_str().unwrap();
        assert!(
            warning.starts_with("the result's 3000 task records (")
                && warning.ends_with(" bytes packed) exceed Temporal's 2 MB result limit and are left out, with the runs of any failure workflows: each task's input and output is in the workflow's history (temporal workflow show -w ID)"),
            "{warning}"
        );
        assert_eq!(unpack(summary.clone()), Ok(summary));
    }
    use temporalio_common::protos::temporal::api::history::v1::{
        ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes,
    };

    fn def(logic: RetryLogic) -> TaskDef {
        TaskDef {
            retry_count: 2,
            retry_logic: logic,
            retry_delay_seconds: 3,
            backoff_scale_factor: 2,
            ..TaskDef::default()
        }
    }

    #[test]
    fn task_definitions_become_retry_policies_and_timeouts() {
        let options = activity_options(&def(RetryLogic::Fixed), "update");
        assert_eq!(options.activity_id.as_deref(), Some("update"));
        let policy = options.retry_policy.unwrap();
        assert_eq!(policy.maximum_attempts(), 3);
        assert_eq!(policy.initial_interval(), Duration::from_secs(3));
        assert_eq!(policy.backoff_coefficient(), 1.0);
        assert_eq!(policy.maximum_interval(), None);
        // Conductor's default responseTimeoutSeconds (3600) bounds an attempt.
        assert!(matches!(
            options.close_timeouts,
            temporalio_sdk::ActivityCloseTimeouts::StartToClose(d) if d == Duration::from_secs(3600)
        ));
        let unbounded = TaskDef {
            response_timeout_seconds: 0,
            ..def(RetryLogic::Fixed)
        };
        assert!(matches!(
            activity_options(&unbounded, "x").close_timeouts,
            temporalio_sdk::ActivityCloseTimeouts::StartToClose(d) if d == DEFAULT_ATTEMPT_TIMEOUT
        ));

        let exponential = activity_options(&def(RetryLogic::ExponentialBackoff), "x");
        assert_eq!(exponential.retry_policy.unwrap().backoff_coefficient(), 2.0);
        // No linear backoff in Temporal: the first linear delay every time.
        let linear = activity_options(&def(RetryLogic::LinearBackoff), "x")
            .retry_policy
            .unwrap();
        assert_eq!(linear.initial_interval(), Duration::from_secs(6));
        assert_eq!(linear.backoff_coefficient(), 1.0);

        let bounded = TaskDef {
            max_retry_delay_seconds: 30,
            timeout_seconds: 5,
            total_timeout_seconds: 60,
            ..TaskDef::default()
        };
        let options = activity_options(&bounded, "x");
        assert_eq!(
            options.retry_policy.unwrap().maximum_interval(),
            Some(Duration::from_secs(30))
        );
        assert!(matches!(
            options.close_timeouts,
            temporalio_sdk::ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close,
                start_to_close,
            } if schedule_to_close == Duration::from_secs(60) && start_to_close == Duration::from_secs(5)
        ));
    }

    #[test]
    fn final_attempt_numbers_come_from_the_history() {
        let event = |event_id, attributes| HistoryEvent {
            event_id,
            attributes: Some(attributes),
            ..HistoryEvent::default()
        };
        let events = vec![
            event(
                5,
                history_event::Attributes::ActivityTaskScheduledEventAttributes(
                    ActivityTaskScheduledEventAttributes {
                        activity_id: "update".into(),
                        ..Default::default()
                    },
                ),
            ),
            event(
                6,
                history_event::Attributes::ActivityTaskStartedEventAttributes(
                    ActivityTaskStartedEventAttributes {
                        scheduled_event_id: 5,
                        attempt: 3,
                        ..Default::default()
                    },
                ),
            ),
        ];
        let mut result = json!({ "tasks": [
            { "ref": "update", "attempts": [{ "attempt": 0 }] },
            { "ref": "other", "attempts": [{ "attempt": 0 }] },
            { "ref": "switch", "attempts": [] },
        ]});
        fill_attempt_numbers(&mut result, &events, "usage-billing");
        assert_eq!(result["tasks"][0]["attempts"][0]["attempt"], 3);
        assert_eq!(result["tasks"][1]["attempts"][0]["attempt"], 0);
    }

    #[test]
    fn a_first_attempt_held_on_a_paced_connections_queue_is_its_attempts_paced() {
        let event = |event_id, ms: i64, attributes| HistoryEvent {
            event_id,
            event_time: Some(prost_wkt_types::Timestamp {
                seconds: ms / 1000,
                nanos: i32::try_from(ms % 1000).unwrap() * 1_000_000,
            }),
            attributes: Some(attributes),
            ..HistoryEvent::default()
        };
        let scheduled = |id: &str, queue: &str| {
            history_event::Attributes::ActivityTaskScheduledEventAttributes(
                ActivityTaskScheduledEventAttributes {
                    activity_id: id.into(),
                    task_queue: Some(
                        temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue {
                            name: queue.into(),
                            ..Default::default()
                        },
                    ),
                    ..Default::default()
                },
            )
        };
        let started = |scheduled_event_id, attempt| {
            history_event::Attributes::ActivityTaskStartedEventAttributes(
                ActivityTaskStartedEventAttributes {
                    scheduled_event_id,
                    attempt,
                    ..Default::default()
                },
            )
        };
        let events = vec![
            // Held 750 ms on the connection's queue, first attempt.
            event(5, 10_000, scheduled("bp", "usage-billing.billingplatform")),
            event(6, 10_750, started(5, 1)),
            // On the run's own queue: not paced there.
            event(7, 10_000, scheduled("js", "usage-billing")),
            event(8, 10_040, started(7, 1)),
            // A third attempt: its wait holds the retry backoff, not counted.
            event(
                9,
                10_000,
                scheduled("retried", "usage-billing.billingplatform"),
            ),
            event(10, 16_000, started(9, 3)),
            // Already held by its task definition's limit in the workflow: both add up.
            event(
                11,
                10_000,
                scheduled("limited", "usage-billing.billingplatform"),
            ),
            event(12, 10_200, started(11, 1)),
        ];
        let mut result = json!({ "tasks": [
            { "ref": "bp", "attempts": [{ "attempt": 0 }] },
            { "ref": "js", "attempts": [{ "attempt": 0 }] },
            { "ref": "retried", "attempts": [{ "attempt": 0 }] },
            { "ref": "limited", "attempts": [{ "attempt": 0, "paced": {
                "waitedMs": 1000, "waitReason": "task definition `bp`: rateLimitPerFrequency 1 per 1 s",
            } }] },
        ]});
        fill_attempt_numbers(&mut result, &events, "usage-billing");
        let queue = "task queue `usage-billing.billingplatform`";
        let why = "(the Temporal server's rate limit on the connection's queue, and any wait for a free worker)";
        assert_eq!(
            result["tasks"][0]["attempts"][0],
            json!({ "attempt": 1, "paced": {
                "waitedMs": 750,
                "waitReason": format!("{queue}: held 750 ms from scheduled to started {why}"),
            } })
        );
        assert_eq!(result["tasks"][1]["attempts"][0], json!({ "attempt": 1 }));
        assert_eq!(result["tasks"][2]["attempts"][0], json!({ "attempt": 3 }));
        assert_eq!(
            result["tasks"][3]["attempts"][0],
            json!({ "attempt": 1, "paced": {
                "waitedMs": 1200,
                "waitReason": format!("task definition `bp`: rateLimitPerFrequency 1 per 1 s; {queue}: held 200 ms from scheduled to started {why}"),
            } })
        );
    }
}

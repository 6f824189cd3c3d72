//! What a run reports: each task's record and attempts, the workflow's result, and the
//! pieces of the interpreter that build them (JOIN and SWITCH records, context entries).

use crate::definition::{WorkflowDef, WorkflowTask};
use crate::expression::{self, Context};
use harness_runner::{ErrorKind, TaskStatus};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// How a workflow run ended, as Conductor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowStatus {
    /// Every task completed (or failed optionally) and the output resolved.
    Completed,
    /// A task failed it, or its output did not resolve.
    Failed,
}

impl WorkflowStatus {
    /// The status as printed: `COMPLETED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Completed => "COMPLETED",
            WorkflowStatus::Failed => "FAILED",
        }
    }
}

impl PartialEq<&str> for WorkflowStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
    pub status: TaskStatus,
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
    /// How it ended.
    pub status: WorkflowStatus,
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
                    "status": t.status.as_str(),
                    "attempts": attempts,
                    "input": redacted(&t.input),
                    "output": t.output,
                })
            })
            .collect();
        let mut object = Map::new();
        object.insert("workflow".into(), self.workflow.clone().into());
        object.insert("status".into(), self.status.as_str().into());
        object.insert("output".into(), self.output.clone());
        if let Some(reason) = &self.reason {
            object.insert("reasonForIncompletion".into(), reason.clone().into());
        }
        object.insert("tasks".into(), Value::Array(tasks));
        Value::Object(object)
    }
}

/// The result of a run whose tasks ended with `records`, `context` and `failure`: the
/// `outputParameters` resolved when nothing failed.
pub(crate) fn finish(
    definition: &WorkflowDef,
    records: Vec<TaskRecord>,
    context: &Context,
    failure: Option<String>,
) -> WorkflowResult {
    let (status, output, reason) = match failure {
        Some(reason) => (WorkflowStatus::Failed, json!({}), Some(reason)),
        None => match expression::resolve(
            &Value::Object(definition.output_parameters.clone()),
            context,
        ) {
            Ok(output) => (WorkflowStatus::Completed, output, None),
            Err(e) => (
                WorkflowStatus::Failed,
                json!({}),
                Some(format!("outputParameters: {e}")),
            ),
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
pub(crate) fn join_record(task: &WorkflowTask, context: &Context) -> TaskRecord {
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
    record(
        task,
        "JOIN",
        TaskStatus::Completed,
        json!({}),
        Value::Object(output),
    )
}

/// A SWITCH evaluated on `context` (`value-param`: the value of the input parameter named
/// by `expression` picks the case, else `defaultCase`): its record and the tasks to run.
/// The error is the workflow's failure reason.
pub(crate) fn evaluate_switch(
    task: &WorkflowTask,
    context: &Context,
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
        TaskStatus::Completed,
        input,
        json!({ "evaluationResult": [case] }),
    );
    Ok((switch, list))
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

pub(crate) fn record(
    task: &WorkflowTask,
    name: &str,
    status: TaskStatus,
    input: Value,
    output: Value,
) -> TaskRecord {
    TaskRecord {
        reference: task.task_reference_name.clone(),
        task: name.to_string(),
        status,
        attempts: Vec::new(),
        input,
        output,
    }
}

/// A task's entry in the run context, which later expressions read (`${ref.output…}`).
pub(crate) fn entry(record: &TaskRecord) -> Arc<Value> {
    Arc::new(
        json!({ "input": record.input, "output": record.output, "status": record.status.as_str() }),
    )
}

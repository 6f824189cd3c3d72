//! What a run reports: each task's record and attempts, the workflow's result, and the
//! pieces of the interpreter that build them (JOIN and SWITCH records, context entries).

use crate::definition::{TaskKind, WorkflowDef, WorkflowTask};
use crate::expression::{self, Context};
use harness_runner::{ErrorKind, TaskStatus};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// How a workflow run ended, as Conductor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowStatus {
    /// Every task completed (or failed optionally) and the output resolved.
    Completed,
    /// A task failed it, or its output did not resolve.
    Failed,
    /// A task that timed out with `TIME_OUT_WF`, or the workflow's own `timeoutSeconds`.
    TimedOut,
    /// Ended by a TERMINATE task or a canceled task.
    Terminated,
}

impl WorkflowStatus {
    /// The status as printed: `COMPLETED`, `FAILED`, `TIMED_OUT` or `TERMINATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Completed => "COMPLETED",
            WorkflowStatus::Failed => "FAILED",
            WorkflowStatus::TimedOut => "TIMED_OUT",
            WorkflowStatus::Terminated => "TERMINATED",
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
    /// How its requests were held back before they left (connection pacing) or the
    /// attempt before it started (its task definition's limits).
    pub paced: Option<Paced>,
}

/// A wait for pacing within an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paced {
    /// How long, ms.
    pub waited_ms: u64,
    /// Why, each reason once, joined with `; `.
    pub wait_reason: String,
}

/// How a run, or a task list within it, ended early: the workflow's status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// `FAILED`, `TIMED_OUT` or `TERMINATED`.
    pub status: WorkflowStatus,
    /// Conductor's `reasonForIncompletion`.
    pub reason: String,
}

impl Ending {
    /// A failure for `reason`.
    pub fn failed(reason: impl Into<String>) -> Ending {
        Ending {
            status: WorkflowStatus::Failed,
            reason: reason.into(),
        }
    }
}

/// One task of a run, as the result reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// `taskReferenceName`.
    pub reference: String,
    /// Task name (or the control type).
    pub task: String,
    /// Conductor's `taskType`: the type (`HTTP`, `SWITCH`, …), or a SIMPLE task's name.
    pub task_type: String,
    /// Conductor's `taskId`.
    pub task_id: String,
    /// Final status.
    pub status: TaskStatus,
    /// Every attempt (component tasks).
    pub attempts: Vec<Attempt>,
    /// The input as resolved.
    pub input: Value,
    /// The output.
    pub output: Value,
    /// A SUB_WORKFLOW's run.
    pub sub_workflow: Option<SubWorkflowRun>,
    /// A failed `permissive` task's reason: the workflow went on past it and fails when
    /// it would complete, naming it (not printed: the reason is the run's).
    pub permissive_failure: Option<String>,
}

/// The result of a workflow run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowResult {
    /// Workflow name.
    pub workflow: String,
    /// `${workflow.workflowId}`.
    pub workflow_id: String,
    /// How it ended.
    pub status: WorkflowStatus,
    /// The resolved `outputParameters`.
    pub output: Value,
    /// Every task that ran, in the order they finished.
    pub tasks: Vec<TaskRecord>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The `failureWorkflow` started because this one failed, and how it ended.
    pub failure_workflow: Option<Box<WorkflowResult>>,
    /// The `failureWorkflow`s its failed sub-workflows started (each sub-workflow's
    /// output names its one's id in `conductor.failure_workflow`), in the order those
    /// failed, and how they ended.
    pub sub_workflow_failure_workflows: Vec<WorkflowResult>,
}

impl WorkflowResult {
    /// The JSON `harness run` prints (its [`Serialize`] form, which `harness run` writes
    /// out as it goes instead of building this value).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A finished sub-workflow's run as it is printed, kept as compact JSON text
/// compressed with DEFLATE: a batch of 10,000 sub-workflows keeps 10,000 of these to
/// the end of the run (about 3 KB of text each for two HTTP tasks, under 1 KB
/// compressed), not their records and values (ten times as much).
#[derive(Debug, Clone, PartialEq)]
pub struct SubWorkflowRun(Box<[u8]>);

impl SubWorkflowRun {
    /// `result`, as it will be printed.
    pub fn of(result: &WorkflowResult) -> SubWorkflowRun {
        use std::io::Write as _;
        let text = serde_json::to_vec(result).unwrap_or_default();
        let mut packed =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = packed.write_all(&text);
        SubWorkflowRun(packed.finish().unwrap_or_default().into_boxed_slice())
    }

    /// Its printed JSON.
    pub fn to_json(&self) -> Value {
        use std::io::Read as _;
        let mut text = Vec::new();
        // Unpacked whole first: parsing from the decoder directly reads it byte by byte.
        match flate2::read::DeflateDecoder::new(&self.0[..]).read_to_end(&mut text) {
            Ok(_) => serde_json::from_slice(&text).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

impl Serialize for SubWorkflowRun {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // One sub-workflow's value at a time, while it is written.
        self.to_json().serialize(serializer)
    }
}

impl Serialize for Attempt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("attempt", &self.number)?;
        map.serialize_entry("startedMs", &self.started_ms)?;
        map.serialize_entry("durationMs", &self.duration_ms)?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("kind", &self.kind.map(ErrorKind::as_str))?;
        map.serialize_entry("message", &self.message)?;
        map.serialize_entry("waitMs", &self.wait_ms)?;
        map.serialize_entry("waitReason", &self.wait_reason)?;
        if let Some(paced) = &self.paced {
            map.serialize_entry(
                "paced",
                &json!({ "waitedMs": paced.waited_ms, "waitReason": paced.wait_reason }),
            )?;
        }
        map.end()
    }
}

impl Serialize for TaskRecord {
    /// As printed: the input with literal credential headers redacted.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("ref", &self.reference)?;
        map.serialize_entry("task", &self.task)?;
        map.serialize_entry("taskType", &self.task_type)?;
        map.serialize_entry("taskId", &self.task_id)?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("attempts", &self.attempts)?;
        map.serialize_entry("input", &redacted(&self.input))?;
        map.serialize_entry("output", &self.output)?;
        if let Some(sub) = &self.sub_workflow {
            map.serialize_entry("subWorkflow", sub)?;
        }
        map.end()
    }
}

impl Serialize for WorkflowResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("workflow", &self.workflow)?;
        map.serialize_entry("workflowId", &self.workflow_id)?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("output", &self.output)?;
        if let Some(reason) = &self.reason {
            map.serialize_entry("reasonForIncompletion", reason)?;
        }
        map.serialize_entry("tasks", &self.tasks)?;
        if let Some(failure) = &self.failure_workflow {
            map.serialize_entry("failureWorkflow", failure)?;
        }
        if !self.sub_workflow_failure_workflows.is_empty() {
            map.serialize_entry(
                "subWorkflowFailureWorkflows",
                &self.sub_workflow_failure_workflows,
            )?;
        }
        map.end()
    }
}

/// The result of a run whose tasks ended with `records`, `context` and `ending` (none:
/// it completed).
pub(crate) fn finish(
    definition: &WorkflowDef,
    workflow_id: &str,
    records: Vec<TaskRecord>,
    context: &Context,
    ending: Option<Ending>,
) -> WorkflowResult {
    // DeciderService.updateWorkflowOutput, on completion and on failure alike: the
    // `outputParameters` resolved, or without them the last task's output.
    let output = || {
        if definition.output_parameters.is_empty() {
            return Ok(records
                .last()
                .map_or_else(|| json!({}), |last| last.output.clone()));
        }
        expression::resolve(
            &Value::Object(definition.output_parameters.clone()),
            context,
        )
    };
    // DeciderService: a workflow that would complete (its tasks done, or a TERMINATE
    // COMPLETED it) with a permissive task failed fails, naming each.
    let permissive: Vec<String> = records
        .iter()
        .filter_map(|r| {
            let reason = r.permissive_failure.as_ref()?;
            Some(format!(
                "Task {} failed with status: {} and reason: '{reason}'",
                r.task_id,
                r.status.as_str()
            ))
        })
        .collect();
    let ending = match ending {
        None
        | Some(Ending {
            status: WorkflowStatus::Completed,
            ..
        }) if !permissive.is_empty() => Some(Ending::failed(permissive.join(". "))),
        ending => ending,
    };
    let (status, output, reason) = match ending {
        Some(Ending { status, reason }) => {
            (status, output().unwrap_or_else(|_| json!({})), Some(reason))
        }
        None => match output() {
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
        workflow_id: workflow_id.to_string(),
        status,
        output,
        tasks: records,
        reason,
        failure_workflow: None,
        sub_workflow_failure_workflows: Vec::new(),
    }
}

/// A JOIN's record: the outputs of the tasks it joins on.
///
/// When it runs, every task it joins has ended, and one that failed without ending the
/// run was `permissive`: as Conductor's `Join`, the JOIN then fails (`CANCELED` when
/// every such task was canceled), its output the tasks' up to the first failed one, its
/// reason theirs; the second value is that reason.
pub(crate) fn join_record(
    task: &WorkflowTask,
    join_on: &[String],
    context: &Context,
    task_id: String,
) -> (TaskRecord, Option<String>) {
    let status_of = |r: &String| {
        context
            .get(r)
            .and_then(|c| c["status"].as_str().map(str::to_string))
    };
    let failed = |status: &str| {
        !matches!(
            status,
            "COMPLETED" | "COMPLETED_WITH_ERRORS" | "SKIPPED" | "IN_PROGRESS"
        )
    };
    let mut output = Map::new();
    let mut first_failed = None;
    for r in join_on {
        output.insert(
            r.clone(),
            context
                .get(r)
                .map(|c| c["output"].clone())
                .unwrap_or(Value::Null),
        );
        if status_of(r).is_some_and(|s| failed(&s)) {
            first_failed = Some(r);
            break;
        }
    }
    let Some(_) = first_failed else {
        let done = record(
            task,
            "JOIN",
            task_id,
            TaskStatus::Completed,
            json!({ "joinOn": join_on }),
            Value::Object(output),
        );
        return (done, None);
    };
    let failures: Vec<(String, Option<String>)> = join_on
        .iter()
        .filter_map(|r| {
            let status = status_of(r).filter(|s| failed(s))?;
            let reason = context[r]["reasonForIncompletion"]
                .as_str()
                .map(str::to_string);
            Some((status, reason))
        })
        .collect();
    let reason: Vec<&str> = failures.iter().filter_map(|(_, r)| r.as_deref()).collect();
    let status = if failures.iter().all(|(s, _)| s == "CANCELED") {
        TaskStatus::Canceled
    } else {
        TaskStatus::Failed
    };
    let done = record(
        task,
        "JOIN",
        task_id,
        status,
        json!({ "joinOn": join_on }),
        Value::Object(output),
    );
    (done, Some(reason.join(" ")))
}

/// A SWITCH's or DECISION's input, resolved on `context` as its mapper resolves it; the
/// error is the failure reason.
pub(crate) fn switch_input(
    task: &WorkflowTask,
    context: &Context,
    task_id: &str,
) -> Result<Value, String> {
    expression::resolve_for_task(
        &Value::Object(task.input_parameters.clone()),
        context,
        Some(task_id),
    )
    .map_err(|e| format!("{}: {e}", task.task_reference_name))
}

/// The script that picks the case: a SWITCH's `expression` with the `javascript` or
/// `graaljs` evaluator, a DECISION's non-blank `caseExpression`.
pub(crate) fn switch_script(task: &WorkflowTask) -> Option<&str> {
    if matches!(task.kind(), Ok(TaskKind::Decision)) {
        task.case_expression
            .as_deref()
            .filter(|e| !e.trim().is_empty())
    } else {
        matches!(
            task.evaluator_type.as_deref(),
            Some("javascript" | "graaljs")
        )
        .then(|| task.expression.as_deref().unwrap_or_default())
    }
}

/// The case a `value-param` SWITCH or a `caseValueParam` DECISION picks: the input
/// parameter named by `expression` (or `caseValueParam`), written as Java writes it
/// (`null` when missing).
pub(crate) fn param_case(task: &WorkflowTask, input: &Value) -> String {
    let key = if matches!(task.kind(), Ok(TaskKind::Decision)) {
        task.case_value_param.clone()
    } else {
        task.expression.clone()
    }
    .unwrap_or_default();
    expression::java_string(input.get(&key).unwrap_or(&Value::Null), false)
}

/// A SWITCH or DECISION that picked `chosen`, as Conductor's mappers record it: the
/// case's tasks, else `defaultCase`; the record has `evaluationResult` and
/// `selectedCase` (SWITCH) or `caseOutput` (DECISION), and the input gets `case`. The
/// error is the failure reason.
pub(crate) fn switch_record(
    task: &WorkflowTask,
    mut input: Value,
    chosen: String,
    task_id: String,
) -> Result<(TaskRecord, Vec<WorkflowTask>), String> {
    let decision = matches!(task.kind(), Ok(TaskKind::Decision));
    let cases = task
        .cases()
        .map_err(|e| format!("{}: {e}", task.task_reference_name))?;
    let list = cases
        .into_iter()
        .find(|(case, _)| *case == chosen)
        .map_or_else(|| task.default_case.clone(), |(_, list)| list);
    if let Value::Object(map) = &mut input {
        map.insert("case".into(), chosen.clone().into());
    }
    let (name, output) = if decision {
        ("DECISION", json!({ "caseOutput": [chosen] }))
    } else {
        (
            "SWITCH",
            json!({ "evaluationResult": [chosen], "selectedCase": chosen }),
        )
    };
    let switch = record(task, name, task_id, TaskStatus::Completed, input, output);
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

/// A task's record; `task_type` is the control type, the component, or `HTTP`.
pub(crate) fn record(
    task: &WorkflowTask,
    task_type: &str,
    task_id: String,
    status: TaskStatus,
    input: Value,
    output: Value,
) -> TaskRecord {
    TaskRecord {
        sub_workflow: None,
        permissive_failure: None,
        reference: task.task_reference_name.clone(),
        task: task.name.clone(),
        task_type: task_type.to_string(),
        task_id,
        status,
        attempts: Vec::new(),
        input,
        output,
    }
}

/// A task's entry in the run context, which later expressions read (`${ref.output…}`),
/// with the fields Conductor's `ParametersUtils` gives a task.
pub(crate) fn entry(record: &TaskRecord, reason: Option<&str>) -> Arc<Value> {
    let retries = record.attempts.len().saturating_sub(1);
    // Sized to its fields: a run keeps one per task to its end (a batch, 10,000), and
    // a map grown one field at a time holds room for 16.
    let mut entry = Map::with_capacity(9);
    entry.insert("input".into(), record.input.clone());
    entry.insert("output".into(), record.output.clone());
    entry.insert("status".into(), record.status.as_str().into());
    entry.insert("taskType".into(), record.task_type.clone().into());
    entry.insert("referenceTaskName".into(), record.reference.clone().into());
    entry.insert("taskDefName".into(), record.task.clone().into());
    entry.insert("taskId".into(), record.task_id.clone().into());
    entry.insert("retryCount".into(), retries.into());
    entry.insert("reasonForIncompletion".into(), reason.into());
    Arc::new(Value::Object(entry))
}

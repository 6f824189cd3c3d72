//! Workflow definitions in Conductor's JSON shape.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A workflow definition: `name`, `version`, `inputParameters`, `tasks`,
/// `outputParameters`, the settings Conductor runs it with, and inline `taskDefinitions`.
/// Fields the harness does not read are kept in `other`, so validation can name them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDef {
    /// Workflow name.
    pub name: String,
    /// Version number.
    #[serde(default)]
    pub version: Option<u32>,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// The workflow input keys it documents (as in Conductor, not a strict declaration).
    #[serde(default)]
    pub input_parameters: Vec<String>,
    /// Defaults for workflow input keys the caller leaves out.
    #[serde(default)]
    pub input_template: Map<String, Value>,
    /// The tasks, run in order.
    pub tasks: Vec<WorkflowTask>,
    /// The workflow output, with expressions.
    #[serde(default)]
    pub output_parameters: Map<String, Value>,
    /// Limit on the whole run, in seconds (0: none).
    #[serde(default)]
    pub timeout_seconds: u64,
    /// What passing `timeoutSeconds` does (default `ALERT_ONLY`, as in Conductor).
    #[serde(default)]
    pub timeout_policy: WorkflowTimeoutPolicy,
    /// A workflow started, with Conductor's input, when this one fails.
    #[serde(default)]
    pub failure_workflow: Option<String>,
    /// The version of `failureWorkflow` (none: its latest).
    #[serde(default)]
    pub failure_workflow_version: Option<u32>,
    /// Initial `${workflow.variables…}`.
    #[serde(default)]
    pub variables: Map<String, Value>,
    /// Retry and timeout settings per task name.
    #[serde(default)]
    pub task_definitions: Vec<TaskDef>,
    /// Every other field, as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Conductor's workflow `timeoutPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowTimeoutPolicy {
    /// Note the timeout and go on.
    #[default]
    AlertOnly,
    /// End the workflow `TIMED_OUT`.
    TimeOutWf,
}

/// One task in a definition, with Conductor's field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTask {
    /// Task name: its task definition's name (a SIMPLE task: the worker it runs).
    pub name: String,
    /// Unique reference name; other tasks read its output as `${ref.output…}`.
    pub task_reference_name: String,
    /// `SIMPLE` (the default, as in Conductor), `HTTP`, `FORK_JOIN`, `JOIN`, `SWITCH`,
    /// `DECISION`, parsed when the definition is read.
    #[serde(default, rename = "type")]
    pub kind: TaskType,
    /// Task input, with expressions.
    #[serde(default)]
    pub input_parameters: Map<String, Value>,
    /// A failed optional task ends `COMPLETED_WITH_ERRORS` and does not fail the workflow.
    #[serde(default)]
    pub optional: bool,
    /// Conductor's `permissive`: a failed task (out of retries, not optional) keeps its
    /// status and the workflow goes on; a JOIN on it fails once all it joins ended, and
    /// the workflow fails when it would complete (DeciderService, Join).
    #[serde(default)]
    pub permissive: bool,
    /// Overrides the task definition's `retryCount`.
    #[serde(default)]
    pub retry_count: Option<u32>,
    /// An inline task definition, used instead of the one found by `name`.
    #[serde(default)]
    pub task_definition: Option<TaskDef>,
    /// FORK_JOIN: the parallel branches.
    #[serde(default)]
    pub fork_tasks: Vec<Vec<WorkflowTask>>,
    /// JOIN: the references it waits for.
    #[serde(default)]
    pub join_on: Vec<String>,
    /// SWITCH: `value-param` (the default), `javascript` or `graaljs`.
    #[serde(default)]
    pub evaluator_type: Option<String>,
    /// SWITCH: the input parameter whose value picks the case (`value-param`), or the
    /// script whose value does (`javascript`).
    #[serde(default)]
    pub expression: Option<String>,
    /// DECISION: the input parameter whose value picks the case.
    #[serde(default)]
    pub case_value_param: Option<String>,
    /// DECISION: JavaScript whose value picks the case (before `caseValueParam`).
    #[serde(default)]
    pub case_expression: Option<String>,
    /// SWITCH / DECISION: the cases.
    #[serde(default)]
    pub decision_cases: Map<String, Value>,
    /// SWITCH / DECISION: the tasks when no case matches.
    #[serde(default)]
    pub default_case: Vec<WorkflowTask>,
    /// SUB_WORKFLOW: which workflow to run.
    #[serde(default)]
    pub sub_workflow_param: Option<SubWorkflowParams>,
    /// FORK_JOIN_DYNAMIC: the input key holding the list of tasks to fork.
    #[serde(default)]
    pub dynamic_fork_tasks_param: Option<String>,
    /// FORK_JOIN_DYNAMIC: the input key holding each forked task's input, by reference.
    #[serde(default)]
    pub dynamic_fork_tasks_input_param_name: Option<String>,
    /// FORK_JOIN_DYNAMIC, Conductor's legacy form: the input key holding
    /// `{"dynamicTasks": [{"taskName", "referenceName", "type", "input"}, …]}`.
    #[serde(default)]
    pub dynamic_fork_join_tasks_param: Option<String>,
    /// DYNAMIC: the input key holding the name of the task to run.
    #[serde(default)]
    pub dynamic_task_name_param: Option<String>,
    /// Set on the task a DYNAMIC task resolved to: the DYNAMIC task's name parameter,
    /// kept in the task's recorded input (as Conductor records it) but left out of the
    /// input its component is given (a component refuses fields it does not know, and
    /// the parameter was Conductor's routing, not the worker's input).
    #[serde(skip)]
    pub routed_by: Option<String>,
    /// DO_WHILE: the JavaScript evaluated after each iteration; true runs another.
    #[serde(default)]
    pub loop_condition: Option<String>,
    /// DO_WHILE: the tasks of one iteration.
    #[serde(default)]
    pub loop_over: Vec<WorkflowTask>,
    /// DO_WHILE: the list to iterate over (an expression), one iteration per item.
    #[serde(default)]
    pub items: Option<Value>,
    /// Every other field, as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A SUB_WORKFLOW's `subWorkflowParam`: the workflow by `name` and `version` (none: its
/// latest) from `--definitions`, or inline as `workflowDefinition`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubWorkflowParams {
    /// The workflow's name.
    #[serde(default)]
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<u32>,
    /// The definition itself, instead of one found by name.
    #[serde(default)]
    pub workflow_definition: Option<Value>,
    /// Every other field (`taskToDomain`, `priority`, `idempotencyKey`, …), as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A task's `type` as written: a kind the harness runs, or another Conductor type it
/// does not (kept, so validation can name it with its path).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
pub enum TaskType {
    /// No `type`: SIMPLE, as in Conductor.
    #[default]
    Unset,
    /// A type the harness runs.
    Known(TaskKind),
    /// Any other type, as written.
    Unsupported(String),
}

impl From<String> for TaskType {
    fn from(text: String) -> TaskType {
        match text.as_str() {
            "SIMPLE" => TaskType::Known(TaskKind::Simple),
            "HTTP" => TaskType::Known(TaskKind::Http),
            "FORK_JOIN" => TaskType::Known(TaskKind::ForkJoin),
            "JOIN" => TaskType::Known(TaskKind::Join),
            "SWITCH" => TaskType::Known(TaskKind::Switch),
            "DECISION" => TaskType::Known(TaskKind::Decision),
            "TERMINATE" => TaskType::Known(TaskKind::Terminate),
            "SET_VARIABLE" => TaskType::Known(TaskKind::SetVariable),
            "JSON_JQ_TRANSFORM" => TaskType::Known(TaskKind::JsonJqTransform),
            "SUB_WORKFLOW" => TaskType::Known(TaskKind::SubWorkflow),
            "FORK_JOIN_DYNAMIC" => TaskType::Known(TaskKind::ForkJoinDynamic),
            "DYNAMIC" => TaskType::Known(TaskKind::Dynamic),
            "WAIT" => TaskType::Known(TaskKind::Wait),
            "INLINE" => TaskType::Known(TaskKind::Inline),
            "LAMBDA" => TaskType::Known(TaskKind::Lambda),
            "DO_WHILE" => TaskType::Known(TaskKind::DoWhile),
            _ => TaskType::Unsupported(text),
        }
    }
}

/// What a workflow task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A worker task, found by `name`: one of our components, a user's component, or a
    /// mock.
    Simple,
    /// Conductor's HTTP task, whatever its name: the sandboxed `http` component.
    Http,
    /// Parallel branches.
    ForkJoin,
    /// Wait for branches.
    Join,
    /// Pick a case (`value-param`).
    Switch,
    /// Conductor's legacy SWITCH (`caseValueParam`).
    Decision,
    /// End the workflow (`terminationStatus`, `terminationReason`, `workflowOutput`).
    Terminate,
    /// Set `${workflow.variables…}` from its input.
    SetVariable,
    /// A jq query over its input: the sandboxed `json-jq-transform` component.
    JsonJqTransform,
    /// Another workflow, run to its end (`subWorkflowParam`).
    SubWorkflow,
    /// Parallel branches made from its input at run time, joined by the next JOIN.
    ForkJoinDynamic,
    /// A worker task whose name is read from its input (`dynamicTaskNameParam`).
    Dynamic,
    /// Wait `duration` or `until` a time, on the executor's clock.
    Wait,
    /// A script (`evaluatorType` `javascript`/`graaljs`: the sandboxed `javascript`
    /// component; `value-param`: an input by name); `output.result`.
    Inline,
    /// Conductor's older script task: `scriptExpression`, the body of a function.
    Lambda,
    /// `loopOver` run again while `loopCondition` holds (or once per `items`).
    DoWhile,
}

impl TaskKind {
    /// The type as Conductor names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Simple => "SIMPLE",
            TaskKind::Http => "HTTP",
            TaskKind::ForkJoin => "FORK_JOIN",
            TaskKind::Join => "JOIN",
            TaskKind::Switch => "SWITCH",
            TaskKind::Decision => "DECISION",
            TaskKind::Terminate => "TERMINATE",
            TaskKind::SetVariable => "SET_VARIABLE",
            TaskKind::JsonJqTransform => "JSON_JQ_TRANSFORM",
            TaskKind::SubWorkflow => "SUB_WORKFLOW",
            TaskKind::ForkJoinDynamic => "FORK_JOIN_DYNAMIC",
            TaskKind::Dynamic => "DYNAMIC",
            TaskKind::Wait => "WAIT",
            TaskKind::Inline => "INLINE",
            TaskKind::Lambda => "LAMBDA",
            TaskKind::DoWhile => "DO_WHILE",
        }
    }
}

impl WorkflowTask {
    /// What kind of task this is (`type`, defaulting to SIMPLE).
    pub fn kind(&self) -> Result<TaskKind, UnsupportedType> {
        match &self.kind {
            TaskType::Unset => Ok(TaskKind::Simple),
            TaskType::Known(kind) => Ok(*kind),
            TaskType::Unsupported(other) => Err(UnsupportedType(other.clone())),
        }
    }

    /// The component a worker task runs: `http` for an HTTP task, `json-jq-transform`
    /// for a JSON_JQ_TRANSFORM, else its name.
    pub fn component(&self) -> &str {
        match self.kind() {
            Ok(TaskKind::Http) => "http",
            Ok(TaskKind::JsonJqTransform) => "json-jq-transform",
            _ => &self.name,
        }
    }

    /// This task as it runs in iteration `n` of a DO_WHILE: its reference, and those of
    /// every task inside it (cases, branches, JOINs' `joinOn`), with Conductor's `__n`.
    pub fn in_iteration(&self, n: u32) -> WorkflowTask {
        let suffix = format!("__{n}");
        let mut task = self.clone();
        task.task_reference_name.push_str(&suffix);
        for reference in &mut task.join_on {
            reference.push_str(&suffix);
        }
        for branch in &mut task.fork_tasks {
            for inner in branch.iter_mut() {
                *inner = inner.in_iteration(n);
            }
        }
        for inner in &mut task.default_case {
            *inner = inner.in_iteration(n);
        }
        for inner in &mut task.loop_over {
            *inner = inner.in_iteration(n);
        }
        for list in task.decision_cases.values_mut() {
            rename_in_json(list, &suffix);
        }
        task
    }

    /// SWITCH / DECISION cases parsed as task lists.
    pub fn cases(&self) -> Result<Vec<(String, Vec<WorkflowTask>)>, String> {
        self.decision_cases
            .iter()
            .map(|(case, tasks)| {
                serde_json::from_value(tasks.clone())
                    .map(|tasks| (case.clone(), tasks))
                    .map_err(|e| format!("decisionCases.{case}: {e}"))
            })
            .collect()
    }

    /// The task definition this task runs with, as Conductor finds it: the inline
    /// `taskDefinition`, else the one named like the task, else Conductor's ad-hoc one
    /// (a SIMPLE task gets the defaults; any other type no retries and no response
    /// timeout); then the task's own `retryCount` wins.
    pub fn effective_def(&self, defs: &std::collections::HashMap<String, TaskDef>) -> TaskDef {
        let mut def = match (&self.task_definition, defs.get(&self.name)) {
            (Some(inline), _) => inline.clone(),
            (None, Some(named)) => named.clone(),
            (None, None) => {
                let mut ad_hoc = TaskDef {
                    name: self.name.clone(),
                    ..TaskDef::default()
                };
                if !matches!(self.kind(), Ok(TaskKind::Simple)) {
                    ad_hoc.retry_count = 0;
                    ad_hoc.response_timeout_seconds = 0;
                }
                ad_hoc
            }
        };
        if let Some(retries) = self.retry_count {
            def.retry_count = retries;
        }
        def
    }
}

/// Append `suffix` to every `taskReferenceName` and `joinOn` entry of a task list
/// written as JSON (a SWITCH's cases, which are parsed when they run), nested lists
/// included, inputs left alone.
fn rename_in_json(list: &mut Value, suffix: &str) {
    let Value::Array(tasks) = list else {
        return;
    };
    for task in tasks.iter_mut() {
        let Value::Object(task) = task else {
            continue;
        };
        for (key, inner) in task.iter_mut() {
            match (key.as_str(), inner) {
                ("taskReferenceName", Value::String(reference)) => reference.push_str(suffix),
                ("joinOn", Value::Array(refs)) => {
                    for reference in refs.iter_mut() {
                        if let Value::String(reference) = reference {
                            reference.push_str(suffix);
                        }
                    }
                }
                ("forkTasks", Value::Array(branches)) => {
                    branches.iter_mut().for_each(|b| rename_in_json(b, suffix));
                }
                ("defaultCase" | "loopOver", list) => rename_in_json(list, suffix),
                ("decisionCases", Value::Object(cases)) => {
                    cases.values_mut().for_each(|c| rename_in_json(c, suffix));
                }
                _ => {}
            }
        }
    }
}

/// A task `type` the harness does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "task type `{0}` needs a Conductor server (the harness runs SIMPLE, HTTP, FORK_JOIN, JOIN, SWITCH, DECISION, TERMINATE, SET_VARIABLE, JSON_JQ_TRANSFORM, SUB_WORKFLOW, FORK_JOIN_DYNAMIC, DYNAMIC, WAIT, INLINE, LAMBDA and DO_WHILE): give its output with --mock-outputs to run the rest here"
)]
pub struct UnsupportedType(pub String);

/// The most retries a task definition may ask for: Conductor's `TaskDef` limit.
pub const MAX_RETRY_COUNT: u32 = 10;

/// The shortest wait between two attempts, whatever the definition says: a retry storm
/// against a vendor (no delay, many retries) is never sent.
pub const MIN_RETRY_DELAY_MS: u64 = 1000;

/// How the delay between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryLogic {
    /// `retryDelaySeconds` every time.
    #[default]
    Fixed,
    /// `retryDelaySeconds × 2^(attempt−1)`.
    ExponentialBackoff,
    /// `retryDelaySeconds × backoffScaleFactor × attempt`.
    LinearBackoff,
}

/// Conductor's task definition fields for retries and timeouts, with Conductor's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDef {
    /// Task name these settings apply to.
    pub name: String,
    /// Retries after the first attempt (default 3).
    pub retry_count: u32,
    /// Delay growth (default FIXED).
    pub retry_logic: RetryLogic,
    /// Base delay (default 60 s).
    pub retry_delay_seconds: u64,
    /// Cap on the delay (0: none).
    pub max_retry_delay_seconds: u64,
    /// LINEAR_BACKOFF factor (default 1).
    pub backoff_scale_factor: u64,
    /// Random extra delay, up to this many ms (default 0).
    pub backoff_jitter_ms: u64,
    /// Limit on one attempt (0: the sandbox's own limit).
    pub timeout_seconds: u64,
    /// Limit on all attempts together, waits included (0: none).
    pub total_timeout_seconds: u64,
    /// Limit on one attempt without a reply (default 3600; 0: none). The harness's tasks
    /// report only when they end, so it bounds an attempt as `timeoutSeconds` does.
    pub response_timeout_seconds: u64,
    /// What passing `timeoutSeconds` does (default `TIME_OUT_WF`).
    pub timeout_policy: TaskTimeoutPolicy,
    /// Defaults for input keys the task leaves out or that resolve to null.
    pub input_template: Map<String, Value>,
    /// At most this many of the task's attempts start within any
    /// `rateLimitFrequencyInSeconds` (0: no limit), across the run.
    pub rate_limit_per_frequency: u32,
    /// The window of `rateLimitPerFrequency`, seconds (Conductor's default 1).
    pub rate_limit_frequency_in_seconds: u64,
    /// At most this many of the task's attempts in progress at once (0: no limit).
    pub concurrent_exec_limit: u32,
    /// Every other field, as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Conductor's task-definition `timeoutPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskTimeoutPolicy {
    /// The task is `TIMED_OUT` and retried under its retry rules.
    Retry,
    /// The task is `TIMED_OUT` and the workflow with it.
    #[default]
    TimeOutWf,
    /// Only noted: the attempt is not cut at `timeoutSeconds`.
    AlertOnly,
}

impl Default for TaskDef {
    fn default() -> Self {
        TaskDef {
            name: String::new(),
            retry_count: 3,
            retry_logic: RetryLogic::Fixed,
            retry_delay_seconds: 60,
            max_retry_delay_seconds: 0,
            backoff_scale_factor: 1,
            backoff_jitter_ms: 0,
            timeout_seconds: 0,
            total_timeout_seconds: 0,
            response_timeout_seconds: 3600,
            timeout_policy: TaskTimeoutPolicy::TimeOutWf,
            input_template: Map::new(),
            rate_limit_per_frequency: 0,
            rate_limit_frequency_in_seconds: 1,
            concurrent_exec_limit: 0,
            other: Map::new(),
        }
    }
}

impl TaskDef {
    /// The limit on one attempt, in seconds (0: none): the smaller of `timeoutSeconds`
    /// (unless its policy is `ALERT_ONLY`) and `responseTimeoutSeconds`.
    pub fn attempt_limit_seconds(&self) -> u64 {
        let timeout = match self.timeout_policy {
            TaskTimeoutPolicy::AlertOnly => 0,
            _ => self.timeout_seconds,
        };
        match (timeout, self.response_timeout_seconds) {
            (0, response) => response,
            (timeout, 0) => timeout,
            (timeout, response) => timeout.min(response),
        }
    }

    /// The backoff before attempt `next` (2 = the first retry), in milliseconds, jitter aside.
    pub fn backoff_ms(&self, next: u32) -> u64 {
        let retry = u64::from(next.saturating_sub(1).max(1));
        let base = self.retry_delay_seconds.saturating_mul(1000);
        let delay = match self.retry_logic {
            RetryLogic::Fixed => base,
            RetryLogic::ExponentialBackoff => base.saturating_mul(1u64 << (retry - 1).min(32)),
            RetryLogic::LinearBackoff => base
                .saturating_mul(self.backoff_scale_factor)
                .saturating_mul(retry),
        };
        match self.max_retry_delay_seconds {
            0 => delay,
            max => delay.min(max.saturating_mul(1000)),
        }
    }
}

//! Workflow definitions in Conductor's JSON shape.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A workflow definition: `name`, `version`, `inputParameters`, `tasks`,
/// `outputParameters`, and inline `taskDefinitions`.
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
    /// The workflow input keys it expects.
    #[serde(default)]
    pub input_parameters: Vec<String>,
    /// The tasks, run in order.
    pub tasks: Vec<WorkflowTask>,
    /// The workflow output, with expressions.
    #[serde(default)]
    pub output_parameters: Map<String, Value>,
    /// Retry and timeout settings per task name.
    #[serde(default)]
    pub task_definitions: Vec<TaskDef>,
}

/// One task in a definition: a component task (`name` = task name or `HTTP`) or a
/// control task (`type` `FORK_JOIN`, `JOIN`, `SWITCH`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTask {
    /// Task name: one of the component tasks, or `HTTP`.
    pub name: String,
    /// Unique reference name; other tasks read its output as `${ref.output…}`.
    pub task_reference_name: String,
    /// `SIMPLE`/`HTTP` (default) or `FORK_JOIN`, `JOIN`, `SWITCH`, parsed when the
    /// definition is read.
    #[serde(default, rename = "type")]
    pub kind: TaskType,
    /// Task input, with expressions.
    #[serde(default)]
    pub input_parameters: Map<String, Value>,
    /// A failed optional task does not fail the workflow.
    #[serde(default)]
    pub optional: bool,
    /// FORK_JOIN: the parallel branches.
    #[serde(default)]
    pub fork_tasks: Vec<Vec<WorkflowTask>>,
    /// JOIN: the references it waits for.
    #[serde(default)]
    pub join_on: Vec<String>,
    /// SWITCH: `value-param`.
    #[serde(default)]
    pub evaluator_type: Option<String>,
    /// SWITCH: the input parameter whose value picks the case.
    #[serde(default)]
    pub expression: Option<String>,
    /// SWITCH: the cases.
    #[serde(default)]
    pub decision_cases: Map<String, Value>,
    /// SWITCH: the tasks when no case matches.
    #[serde(default)]
    pub default_case: Vec<WorkflowTask>,
}

/// A task's `type` as written: a kind the harness runs, or another Conductor type it
/// does not (kept, so validation can name it with its path).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
pub enum TaskType {
    /// No `type`: a component task.
    #[default]
    Unset,
    /// A type the harness runs.
    Known(TaskKind),
    /// Any other type, as written.
    Unsupported(String),
}

impl From<String> for TaskType {
    fn from(text: String) -> TaskType {
        match text.to_ascii_uppercase().as_str() {
            "SIMPLE" | "HTTP" => TaskType::Known(TaskKind::Component),
            "FORK_JOIN" => TaskType::Known(TaskKind::ForkJoin),
            "JOIN" => TaskType::Known(TaskKind::Join),
            "SWITCH" => TaskType::Known(TaskKind::Switch),
            _ => TaskType::Unsupported(text),
        }
    }
}

/// What a workflow task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A component task.
    Component,
    /// Parallel branches.
    ForkJoin,
    /// Wait for branches.
    Join,
    /// Pick a case.
    Switch,
}

impl WorkflowTask {
    /// What kind of task this is (`type`, defaulting to a component task).
    pub fn kind(&self) -> Result<TaskKind, UnsupportedType> {
        match &self.kind {
            TaskType::Unset => Ok(TaskKind::Component),
            TaskType::Known(kind) => Ok(*kind),
            TaskType::Unsupported(other) => Err(UnsupportedType(other.clone())),
        }
    }

    /// The component task this names (`HTTP` is the `http` task).
    pub fn component(&self) -> &str {
        if self.name == "HTTP" {
            "http"
        } else {
            &self.name
        }
    }

    /// SWITCH cases parsed as task lists.
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
}

/// A task `type` the harness does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported task type `{0}`; use SIMPLE, HTTP, FORK_JOIN, JOIN or SWITCH")]
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
        }
    }
}

impl TaskDef {
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

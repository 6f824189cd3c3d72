//! The one workflow interpreter: the control flow of a definition (task order, FORK_JOIN
//! and JOIN, SWITCH and DECISION, optional tasks, mocks, expressions, the workflow
//! timeout) as a plain state machine, in the manner of Conductor's decider. It never runs
//! a task itself: it hands out the worker tasks that are ready, with their inputs
//! resolved, and is told how each ended. [`drive`] runs it with a [`TaskExecutor`]: the
//! local runner (sandbox, the runner's retries) or the Temporal `run-definition` workflow
//! (an activity with its retry policy). Both get the same semantics from the same code,
//! and because the state machine is synchronous and reads only the definition, the input,
//! the run's identity and the tasks' results, it is deterministic, as a Temporal workflow
//! must be.

use crate::definition::{
    TaskDef, TaskKind, UnsupportedType, WorkflowDef, WorkflowTask, WorkflowTimeoutPolicy,
};
use crate::definitions::Definitions;
use crate::expression::{self, Context};
use crate::mocks::Mocks;
use crate::record::{
    Attempt, Ending, SubWorkflowRun, TaskRecord, WorkflowResult, WorkflowStatus, entry, finish,
    join_record, param_case, record, switch_input, switch_record, switch_script,
};
use harness_runner::TaskStatus;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// Identifies one worker task handed out by the interpreter, until it is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(u64);

/// A worker task ready to run: what an executor needs to run it.
#[derive(Debug, Clone)]
pub struct ReadyTask {
    /// Pass back to [`Interpreter::complete`].
    pub id: TaskId,
    /// Conductor's `taskId` (`${CPEWF_TASK_ID}`).
    pub task_id: String,
    /// The task's `taskReferenceName`; in a sub-workflow, after the SUB_WORKFLOW
    /// tasks' (`report/update`), so that it is unique in the run (a Temporal activity id).
    pub reference: String,
    /// The component it runs (`http` for an HTTP task, else the task's name).
    pub component: String,
    /// Its input, every expression resolved (`${workflow.secrets.…}` left for the
    /// executor to substitute when it hands the task over).
    pub input: Value,
    /// Its task definition (retries, timeouts), as Conductor finds it.
    pub def: TaskDef,
    /// A WAIT: no component runs, the executor waits (`component` is empty).
    pub wait: Option<Wait>,
    /// Where it is in the run's forks: per fork it is inside, outermost first, the
    /// index of its branch (empty outside forks). An executor that cannot run every
    /// ready task at once runs the lowest first, so that a fork's earlier branches
    /// finish (and their records shrink to their printed form) before later ones start
    /// more tasks: a fork of 10,000 sub-workflows then holds about the pool's width of
    /// them half done, not all 10,000.
    pub branch: Vec<u32>,
}

/// How long a WAIT waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `duration`, in milliseconds from when it starts.
    For(u64),
    /// `until`, in milliseconds since the Unix epoch.
    Until(u64),
}

impl Wait {
    /// The milliseconds left to wait when the clock reads `epoch_ms` (an `until` in the
    /// past waits for nothing).
    pub fn ms_from(self, epoch_ms: u64) -> u64 {
        match self {
            Wait::For(ms) => ms,
            Wait::Until(at) => at.saturating_sub(epoch_ms),
        }
    }
}

/// How a worker task ended, as its executor reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// Its final status.
    pub status: TaskStatus,
    /// Every attempt the executor knows of.
    pub attempts: Vec<Attempt>,
    /// Its output (`{"response": …}`, or `{}`).
    pub output: Value,
    /// Why it failed: the workflow's failure reason unless the task is optional.
    pub failure: Option<String>,
}

impl TaskResult {
    /// A WAIT that started at `started_ms` of the run and waited `ms`.
    pub fn waited(started_ms: u64, ms: u64) -> TaskResult {
        TaskResult {
            status: TaskStatus::Completed,
            attempts: vec![Attempt {
                number: 1,
                started_ms,
                duration_ms: ms,
                status: TaskStatus::Completed,
                kind: None,
                message: None,
                wait_ms: None,
                wait_reason: None,
                paced: None,
            }],
            output: json!({}),
            failure: None,
        }
    }

    /// A task that failed before any attempt (its connection is unknown, the sandbox
    /// could not run it): terminal, with no output.
    pub fn terminal(failure: String) -> TaskResult {
        TaskResult {
            status: TaskStatus::FailedWithTerminalError,
            attempts: Vec::new(),
            output: json!({}),
            failure: Some(failure),
        }
    }
}

/// Runs a worker task of a workflow, and keeps the workflow's time.
pub trait TaskExecutor {
    /// The running task; `Send` or not as the executor needs (a local run spawns its
    /// tasks on threads, a Temporal workflow runs on one).
    type Run: Future<Output = TaskResult>;
    /// Start running `task`.
    fn execute(&self, task: ReadyTask) -> Self::Run;
    /// The run has taken in the results it had and started the tasks they made ready:
    /// an executor that holds back tasks may now choose which to start (the local one
    /// gives the places of the tasks that ended to the earliest branches waiting, the
    /// tasks just started included). Nothing by default.
    fn settled(&self) {}
    /// A wake-up from [`TaskExecutor::wake_at`].
    type Wake<'a>: Future<Output = ()>
    where
        Self: 'a;
    /// Milliseconds since the workflow started, in the executor's time.
    fn now_ms(&self) -> u64;
    /// Milliseconds since the Unix epoch, in the executor's time (a WAIT's `until`).
    fn epoch_ms(&self) -> u64;
    /// Resolves at `at_ms` of the executor's time (the workflow's `timeoutSeconds`); a
    /// clock that cannot wake (a test clock) may never resolve: the deadline is also
    /// checked each time a task ends.
    fn wake_at(&self, at_ms: u64) -> Self::Wake<'_>;
}

/// Who a run is: Conductor's `workflowId` and `correlationId`, and its mocks.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `${workflow.workflowId}`; task ids derive from it, so a replay gives the same.
    pub workflow_id: String,
    /// `${workflow.correlationId}`.
    pub correlation_id: Option<String>,
    /// Tasks answered by mocks instead of being run.
    pub mocks: Mocks,
    /// The workflows it may start (`failureWorkflow`), by name and version.
    pub definitions: Arc<Definitions>,
    /// Set for Temporal runs started before sub-workflows had timeouts of their own:
    /// their histories replay without the timers. Otherwise a sub-workflow whose
    /// definition has `timeoutSeconds` with `TIME_OUT_WF` times out on its own, as
    /// every Conductor workflow does.
    pub without_sub_workflow_timeouts: bool,
    /// Set for Temporal runs started before a failed branch ended its fork at once:
    /// their histories replay with the other branches going on to their ends.
    /// Otherwise a task failing a fork's branch fails the workflow there, as Conductor's
    /// decider does, and the other branches' tasks are canceled.
    pub forks_wait_for_every_branch: bool,
    /// Set for Temporal runs started before a failed sub-workflow started its own
    /// `failureWorkflow`: their histories replay without those runs. Otherwise a
    /// sub-workflow that fails, times out or is terminated by its own TERMINATE starts
    /// its definition's `failureWorkflow`, as every Conductor workflow does.
    pub without_sub_workflow_failure_workflows: bool,
    /// Set for Temporal runs started before a fork kept at most [`BRANCHES_AT_ONCE`]
    /// branches in progress: their histories replay with every branch started when the
    /// fork starts. Otherwise a fork with more branches starts the next one each time
    /// one ends.
    pub every_branch_at_once: bool,
    /// Set for Temporal runs started before a DYNAMIC task naming a system task's type
    /// (HTTP, INLINE, …) ran that system task: their histories replay with every name
    /// a worker's. Otherwise the name is Conductor's taskType, as there.
    pub dynamic_names_are_workers: bool,
    /// Set for Temporal runs started before a task's `permissive` held: the tasks a
    /// dynamic fork makes from its input are made without it, as those runs made them
    /// (the Temporal workflow leaves it out of the definitions themselves).
    pub permissive_ignored: bool,
}

/// The most branches of one fork in progress at once (eight times `harness run`'s
/// default pool width). A fork with more starts the next when one ends, in branch order:
/// a fork of 10,000 sub-workflows then holds this many half done, not 10,000 runs and
/// their ready tasks. A constant, not the pool's width: a Temporal run must start its
/// branches in the same order on every worker and on replay.
pub const BRANCHES_AT_ONCE: usize = 512;

impl RunOptions {
    /// A run with a fresh random workflow id.
    pub fn fresh() -> RunOptions {
        RunOptions {
            workflow_id: uuid_from(fastrand::u128(..)),
            ..RunOptions::default()
        }
    }
}

/// A 128-bit number written as a version-4 UUID.
fn uuid_from(bits: u128) -> String {
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The id of the `n`th task of the run `workflow_id`: the same on every replay.
fn task_id_of(workflow_id: &str, n: u64) -> String {
    uuid_from(hash_of(workflow_id, n))
}

/// FNV-1a, 128 bits, of a workflow id and a number: stable across builds, unlike the
/// standard library's hasher.
fn hash_of(workflow_id: &str, n: u64) -> u128 {
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for byte in workflow_id.bytes().chain(n.to_le_bytes()) {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
    }
    hash
}

/// A definition being interpreted.
#[derive(Debug)]
pub struct Interpreter {
    definition: Arc<WorkflowDef>,
    task_defs: HashMap<String, TaskDef>,
    root: Frame,
    next_id: u64,
    workflow_id: String,
    mocks: Mocks,
    /// `${workflow…}`: one entry for the whole run, so that a SET_VARIABLE is seen by
    /// every task that starts after it, in any branch.
    workflow: Arc<Value>,
    /// A TERMINATE that ran: how the workflow ends, and its output.
    terminated: Option<(Ending, Value)>,
    /// The workflows a SUB_WORKFLOW may run by name.
    definitions: Arc<Definitions>,
    /// `${workflow.correlationId}`, which its sub-workflows share.
    correlation_id: Option<String>,
    /// The counter of [`TaskId`]s, unique across the run and its sub-workflows (the
    /// root's own; a sub-workflow uses its parent's).
    next_key: u64,
    /// Before the references of its ready tasks: empty for the root, `report/` for the
    /// sub-workflow of the SUB_WORKFLOW `report`.
    prefix: String,
    /// The FORK_JOIN_DYNAMICs started so far (Conductor names the tasks of all but the
    /// first after their fork).
    dynamic_forks: u64,
    /// The executor's time when it last advanced (a sub-workflow's deadline counts
    /// from when it starts).
    now_ms: u64,
    /// When it started, in the executor's time (its timeout counts from then).
    started_ms: u64,
    /// [`RunOptions::without_sub_workflow_timeouts`].
    without_sub_timeouts: bool,
    /// [`RunOptions::forks_wait_for_every_branch`].
    forks_wait: bool,
    /// [`RunOptions::without_sub_workflow_failure_workflows`].
    without_sub_failures: bool,
    /// [`RunOptions::every_branch_at_once`].
    every_branch: bool,
    /// [`RunOptions::dynamic_names_are_workers`].
    dynamic_workers: bool,
    /// [`RunOptions::permissive_ignored`].
    permissive_ignored: bool,
    /// The tasks canceled while running since the executor last asked (the root's).
    stopped: Vec<TaskId>,
    /// The failure workflows its failed sub-workflows start, in the order they failed
    /// (the root's): run after it, as Conductor runs them beside it.
    failures: Vec<FailureStart>,
}

/// A `failureWorkflow` to start: its id, its definition and its input.
#[derive(Debug)]
struct FailureStart {
    id: String,
    definition: Arc<WorkflowDef>,
    input: Value,
}

impl Interpreter {
    /// Start interpreting `definition` on the workflow `input` (its `inputTemplate`
    /// filling keys the input leaves out).
    pub fn new(definition: Arc<WorkflowDef>, input: Value, options: RunOptions) -> Interpreter {
        let task_defs = definition
            .task_definitions
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        let mut input = input;
        if let Value::Object(map) = &mut input {
            for (key, value) in &definition.input_template {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        let workflow = json!({
            "input": input,
            "output": {},
            "status": "RUNNING",
            "workflowId": options.workflow_id,
            "parentWorkflowId": null,
            "parentWorkflowTaskId": null,
            "workflowType": definition.name,
            "version": definition.version.unwrap_or(1),
            "correlationId": options.correlation_id,
            "reasonForIncompletion": null,
            "schemaVersion": 2,
            "variables": definition.variables,
        });
        let workflow = Arc::new(workflow);
        let mut context = Context::new();
        context.insert("workflow".into(), workflow.clone());
        let root = Frame::new(definition.tasks.clone(), context);
        Interpreter {
            definition,
            task_defs,
            root,
            next_id: 0,
            workflow_id: options.workflow_id,
            mocks: options.mocks,
            workflow,
            terminated: None,
            definitions: options.definitions,
            correlation_id: options.correlation_id,
            next_key: 0,
            now_ms: 0,
            started_ms: 0,
            without_sub_timeouts: options.without_sub_workflow_timeouts,
            forks_wait: options.forks_wait_for_every_branch,
            without_sub_failures: options.without_sub_workflow_failure_workflows,
            every_branch: options.every_branch_at_once,
            dynamic_workers: options.dynamic_names_are_workers,
            permissive_ignored: options.permissive_ignored,
            stopped: Vec::new(),
            failures: Vec::new(),
            prefix: String::new(),
            dynamic_forks: 0,
        }
    }

    /// Advance as far as possible: the worker tasks that became ready (none when the
    /// workflow has finished or waits only on running tasks).
    pub fn start(&mut self) -> Vec<ReadyTask> {
        let mut ready = Vec::new();
        let mut next_key = self.next_key;
        let mut stopped = std::mem::take(&mut self.stopped);
        let mut failures = std::mem::take(&mut self.failures);
        self.advance_with(&mut next_key, &mut ready, &mut stopped, &mut failures);
        self.next_key = next_key;
        self.stopped = stopped;
        self.failures = failures;
        ready
    }

    /// The tasks canceled while running since it was last asked (a fork's other
    /// branches, when one failed; a sub-workflow's, when a TERMINATE ended it): the
    /// executor stops them, and their results are not awaited.
    pub fn take_stopped(&mut self) -> Vec<TaskId> {
        std::mem::take(&mut self.stopped)
    }

    /// [`Interpreter::start`] with the run's [`TaskId`] counter (a sub-workflow's is its
    /// parent's), the ready tasks added to `ready` and the tasks canceled while running
    /// to `stopped`.
    fn advance_with(
        &mut self,
        next_key: &mut u64,
        ready: &mut Vec<ReadyTask>,
        stopped: &mut Vec<TaskId>,
        failures: &mut Vec<FailureStart>,
    ) {
        let before = ready.len();
        self.scoped(next_key, ready, stopped, failures, |root, scope| {
            root.advance(scope);
        });
        // A TERMINATE ends the workflow at once, wherever it ran, as Conductor's
        // decider does: the tasks still running are canceled, and those that became
        // ready in this advance never start.
        if let Some((ending, _)) = &self.terminated
            && !matches!(self.root.state, State::Done(Some(_)))
        {
            let ending = ending.clone();
            let mut canceling = Canceling::of_ready(&ready[before..]);
            self.end_with(ending, &mut canceling, next_key, failures);
            ready.truncate(before);
            // Temporal runs started before the failed-branch-ends-fork patch went on
            // waiting for a terminated sub-workflow's tasks: their replays do so too.
            if !self.forks_wait {
                stopped.extend(canceling.stopped);
            }
        }
    }

    /// Run `f` on the root frame with this run's [`Scope`] (the [`TaskId`] counter and
    /// where tasks go given, a sub-workflow's being its parent's).
    fn scoped<R>(
        &mut self,
        next_key: &mut u64,
        ready: &mut Vec<ReadyTask>,
        stopped: &mut Vec<TaskId>,
        failures: &mut Vec<FailureStart>,
        f: impl FnOnce(&mut Frame, &mut Scope<'_>) -> R,
    ) -> R {
        let mut scope = Scope {
            task_defs: &self.task_defs,
            next_key,
            definitions: &self.definitions,
            correlation_id: self.correlation_id.as_deref(),
            prefix: &self.prefix,
            dynamic_forks: &mut self.dynamic_forks,
            now_ms: self.now_ms,
            without_sub_timeouts: self.without_sub_timeouts,
            forks_wait: self.forks_wait,
            without_sub_failures: self.without_sub_failures,
            every_branch: self.every_branch,
            dynamic_workers: self.dynamic_workers,
            permissive_ignored: self.permissive_ignored,
            stopped,
            failures,
            next_id: &mut self.next_id,
            workflow_id: &self.workflow_id,
            mocks: &mut self.mocks,
            ready,
            workflow: &mut self.workflow,
            terminated: &mut self.terminated,
        };
        f(&mut self.root, &mut scope)
    }

    /// Record how the task `id` ended, then advance: the tasks that became ready.
    pub fn complete(&mut self, id: TaskId, result: TaskResult) -> Vec<ReadyTask> {
        self.root.complete(id, result);
        self.start()
    }

    /// Whether the workflow has finished (every task done, or one failed it).
    pub fn finished(&self) -> bool {
        matches!(self.root.state, State::Done(_))
    }

    /// End the run now with `ending`: tasks still running are recorded `CANCELED`.
    pub fn end(&mut self, ending: Ending) {
        let mut next_key = self.next_key;
        let mut failures = std::mem::take(&mut self.failures);
        self.end_with(
            ending,
            &mut Canceling::default(),
            &mut next_key,
            &mut failures,
        );
        self.next_key = next_key;
        self.failures = failures;
    }

    /// [`Interpreter::end`], telling the canceled tasks that had not started apart,
    /// with the run's [`TaskId`] counter (a fork's branches that had not started are
    /// started to be canceled: their tasks are never handed out).
    fn end_with(
        &mut self,
        ending: Ending,
        canceling: &mut Canceling,
        next_key: &mut u64,
        failures: &mut Vec<FailureStart>,
    ) {
        let (mut ready, mut stopped) = (Vec::new(), Vec::new());
        self.scoped(
            next_key,
            &mut ready,
            &mut stopped,
            failures,
            |root, scope| {
                root.cancel(&ending.reason, canceling, scope);
            },
        );
        self.root.state = State::Done(Some(ending));
    }

    /// Tell it the executor's time (before [`Interpreter::start`] or
    /// [`Interpreter::expire`]).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// End, `TIMED_OUT`, every sub-workflow whose own deadline has passed (their tasks
    /// still running `CANCELED`), as Conductor's decider times out any workflow; the
    /// next [`Interpreter::start`] records their SUB_WORKFLOW tasks `TIMED_OUT`. Returns
    /// the tasks that were running in them: the executor stops them.
    pub fn expire(&mut self) -> Vec<TaskId> {
        let mut stopped = Vec::new();
        self.root
            .expire(self.now_ms, &mut stopped, &mut self.next_key);
        stopped
    }

    /// The earliest deadline of a sub-workflow still running, in the executor's time.
    pub fn next_deadline(&self) -> Option<u64> {
        self.root.next_deadline()
    }

    /// Its definition's deadline (`timeoutSeconds` with `TIME_OUT_WF`), counted from
    /// when it started.
    fn own_deadline(&self) -> Option<u64> {
        (self.definition.timeout_seconds > 0
            && self.definition.timeout_policy == WorkflowTimeoutPolicy::TimeOutWf)
            .then(|| {
                self.started_ms
                    .saturating_add(self.definition.timeout_seconds.saturating_mul(1000))
            })
    }

    /// As a sub-workflow, the deadline it times out at on its own (none in runs
    /// [without sub-workflow timeouts](RunOptions::without_sub_workflow_timeouts)).
    fn sub_deadline(&self) -> Option<u64> {
        self.own_deadline().filter(|_| !self.without_sub_timeouts)
    }

    /// The workflow's result: its `outputParameters` resolved when it completed. Called
    /// before it finished, the result is a failure saying so.
    pub fn result(self) -> WorkflowResult {
        let Frame {
            state,
            records,
            mut context,
            ..
        } = self.root;
        let ending = match state {
            State::Done(ending) => ending,
            _ => Some(Ending::failed(
                "the workflow stopped before its tasks finished",
            )),
        };
        // DeciderService: a TERMINATE is a successful task whatever its
        // terminationStatus, so a run it ended with a permissive task failed fails for
        // that task instead (`finish` names it).
        let ending = match ending {
            Some(_)
                if self.terminated.is_some()
                    && records.iter().any(|r| r.permissive_failure.is_some()) =>
            {
                None
            }
            ending => ending,
        };
        context.insert("workflow".into(), self.workflow.clone());
        let mut result = finish(
            &self.definition,
            &self.workflow_id,
            records,
            &context,
            ending,
        );
        // DeciderService.updateWorkflowOutput: a TERMINATE's output is the workflow's.
        if let Some((_, output)) = self.terminated {
            result.output = output;
        }
        result
    }
}

/// Run `definition` on `input` with `executor`: the tasks that are ready run at once
/// (a FORK_JOIN's branches in parallel); each result advances the interpreter. Results
/// are taken in the order the tasks were started whenever several are ready at once,
/// so a replay sees the same order. A workflow `timeoutSeconds` with `TIME_OUT_WF` ends
/// it `TIMED_OUT` when it passes, the tasks still running `CANCELED`.
///
/// A run that ends `FAILED`, `TIMED_OUT` or `TERMINATED` starts its `failureWorkflow`, as Conductor's
/// `WorkflowExecutor.terminateWorkflow` does (and so does each failed sub-workflow).
pub async fn drive<E: TaskExecutor>(
    executor: &E,
    definition: Arc<WorkflowDef>,
    input: Value,
    options: RunOptions,
) -> WorkflowResult {
    let definitions = options.definitions.clone();
    let failure_options = |id: String| RunOptions {
        workflow_id: id,
        correlation_id: options.correlation_id.clone(),
        mocks: options.mocks.clone(),
        // Its own failureWorkflow is not started: one definition naming itself would
        // start failure workflows without end.
        definitions: Arc::default(),
        without_sub_workflow_timeouts: options.without_sub_workflow_timeouts,
        forks_wait_for_every_branch: options.forks_wait_for_every_branch,
        without_sub_workflow_failure_workflows: options.without_sub_workflow_failure_workflows,
        every_branch_at_once: options.every_branch_at_once,
        dynamic_names_are_workers: options.dynamic_names_are_workers,
        permissive_ignored: options.permissive_ignored,
    };
    let (mut result, started_by_subs) =
        drive_one(executor, definition.clone(), input.clone(), options.clone()).await;
    let own = failure_start(&definition, &input, &mut result, &definitions);
    // The failure workflows of failed sub-workflows, in the order those failed (Conductor
    // starts each when its sub-workflow fails and runs it beside the parent), then its own.
    let own_started = own.is_some();
    let mut runs = Vec::new();
    for start in started_by_subs.into_iter().chain(own) {
        let options = failure_options(start.id);
        let (run, _) = Box::pin(drive_one(executor, start.definition, start.input, options)).await;
        runs.push(run);
    }
    if own_started {
        result.failure_workflow = runs.pop().map(Box::new);
    }
    result.sub_workflow_failure_workflows = runs;
    result
}

/// The `failureWorkflow` that `result`, a run of `definition` on `input`, starts, as
/// Conductor's `WorkflowExecutor.terminateWorkflow` starts it, with `conductor.failure_workflow`
/// set in its output: the failure workflow's id, or why it cannot start (then `None`).
fn failure_start(
    definition: &WorkflowDef,
    input: &Value,
    result: &mut WorkflowResult,
    definitions: &Definitions,
) -> Option<FailureStart> {
    let name = failure_workflow_name(definition, input, result)?;
    let version = definition.failure_workflow_version;
    let id = uuid_from(hash_of(&result.workflow_id, u64::MAX));
    let Some(failure) = definitions.get(&name, version) else {
        let known = definitions.names().join(", ");
        let known = if known.is_empty() {
            "none: give them with --definitions DIR".into()
        } else {
            known
        };
        set_output(
            result,
            format!(
                "Error workflow {name} failed to start.  reason: no definition `{name}`{} (definitions: {known})",
                version.map(|v| format!(" version {v}")).unwrap_or_default()
            ),
        );
        return None;
    };
    let mut failure_input = match input {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    failure_input.insert("workflowId".into(), result.workflow_id.clone().into());
    failure_input.insert("reason".into(), result.reason.clone().into());
    failure_input.insert("failureStatus".into(), result.status.as_str().into());
    if let Some(task) = result.tasks.iter().find(|t| {
        matches!(
            t.status,
            TaskStatus::Failed | TaskStatus::FailedWithTerminalError | TaskStatus::TimedOut
        )
    }) {
        failure_input.insert("failureTaskId".into(), task.task_id.clone().into());
    }
    failure_input.insert("failedWorkflow".into(), result.to_json());
    set_output(result, id.clone());
    Some(FailureStart {
        id,
        definition: failure,
        input: Value::Object(failure_input),
    })
}

/// `conductor.failure_workflow` in a failed workflow's output: the id of the failure
/// workflow started, or why it did not start.
fn set_output(result: &mut WorkflowResult, value: String) {
    if !result.output.is_object() {
        result.output = json!({});
    }
    if let Some(output) = result.output.as_object_mut() {
        output.insert("conductor.failure_workflow".into(), value.into());
    }
}

/// The `failureWorkflow` to start for `result`: when it ended `FAILED`, `TIMED_OUT` or
/// `TERMINATED` and the definition names one. A name starting with `$` is read from the workflow
/// input, as Conductor reads `${workflow.input.NAME}` (`WorkflowExecutor.terminate`).
fn failure_workflow_name(
    definition: &WorkflowDef,
    input: &Value,
    result: &WorkflowResult,
) -> Option<String> {
    // WorkflowExecutor.terminate: a failure, a timeout, or a TERMINATE with FAILED or
    // TERMINATED.
    if !matches!(
        result.status,
        WorkflowStatus::Failed | WorkflowStatus::TimedOut | WorkflowStatus::Terminated
    ) {
        return None;
    }
    let name = definition.failure_workflow.as_deref()?.trim();
    let name = if name.starts_with('$') {
        let key = name
            .trim_start_matches(['$', '{'])
            .trim_end_matches('}')
            .split('.')
            .nth(2)?;
        input.get(key)?.as_str()?.to_string()
    } else {
        name.to_string()
    };
    (!name.is_empty()).then_some(name)
}

/// One run of `definition`, without its failure workflow: its result, and the failure
/// workflows its failed sub-workflows start.
async fn drive_one<E: TaskExecutor>(
    executor: &E,
    definition: Arc<WorkflowDef>,
    input: Value,
    options: RunOptions,
) -> (WorkflowResult, Vec<FailureStart>) {
    let started_ms = executor.now_ms();
    let timeout = definition.timeout_seconds;
    let timed_out = move |now: u64| timed_out_after(now.saturating_sub(started_ms) / 1000, timeout);
    let mut interpreter = Interpreter::new(definition, input, options);
    interpreter.started_ms = started_ms;
    let deadline = interpreter.own_deadline();
    let mut running = Running::default();
    interpreter.set_now(started_ms);
    let mut ready = interpreter.start();
    // The wake-up armed: the workflow's deadline, or a running sub-workflow's when that
    // comes first.
    let mut armed = deadline;
    let mut wake = deadline.map(|at| Box::pin(executor.wake_at(at)));
    loop {
        for task in ready.drain(..) {
            let id = task.id;
            running.push(id, Box::pin(executor.execute(task)));
        }
        executor.settled();
        if running.is_empty() {
            break;
        }
        let next_wake = [deadline, interpreter.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        if next_wake != armed {
            armed = next_wake;
            wake = next_wake.map(|at| Box::pin(executor.wake_at(at)));
        }
        let next = std::future::poll_fn(|cx| {
            if let Some(wake) = wake.as_mut()
                && wake.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(None);
            }
            running.poll_next(cx).map(Some)
        })
        .await;
        let now = executor.now_ms();
        let now = match next {
            Some((id, result)) => {
                interpreter.root.complete(id, result);
                now
            }
            // The wake-up armed for `armed` came: that time has come.
            None => {
                let at = armed.take().unwrap_or(now);
                wake = None;
                now.max(at)
            }
        };
        // As Conductor's decider, the workflow's timeout is checked before anything
        // else is scheduled: a task that ends past it starts no other. A sub-workflow
        // past its own deadline ends the same way, before its next task starts.
        if deadline.is_some_and(|at| now >= at) && !interpreter.finished() {
            interpreter.end(timed_out(now));
            break;
        }
        interpreter.set_now(now);
        for stopped in interpreter.expire() {
            running.remove(stopped);
        }
        ready = interpreter.start();
        // A fork's other branches when one failed, a sub-workflow's tasks when a
        // TERMINATE ended it: canceled, they are dropped, not awaited.
        for stopped in interpreter.take_stopped() {
            running.remove(stopped);
        }
        // A TERMINATE ended it: the tasks still running are dropped (canceled).
        if interpreter.finished() {
            break;
        }
    }
    // The tasks still running are dropped (their places go on at once), then the
    // places of those that ended are handed on.
    drop(running);
    executor.settled();
    let failures = std::mem::take(&mut interpreter.failures);
    (interpreter.result(), failures)
}

/// The tasks a run has started and not yet seen end, in the order they started. Only
/// the tasks whose wakers fired since they were last polled are polled again (a fork of
/// 10,000 branches does not poll 10,000 futures per result), in start order, and the
/// first of them that is ready is taken: what polling every task in start order would
/// take, since a task that was not woken is not ready.
struct Running<F> {
    tasks: std::collections::BTreeMap<u64, (TaskId, Pin<Box<F>>, Waker)>,
    next: u64,
    woken: Arc<Woken>,
}

/// The keys of the running tasks woken since they were last polled, and the waker of
/// the run polling them.
#[derive(Default)]
struct Woken {
    keys: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    run: std::sync::Mutex<Option<Waker>>,
}

/// Wakes one running task: marks its key and wakes the run.
struct TaskWaker {
    key: u64,
    woken: Arc<Woken>,
}

impl std::task::Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.woken.keys).insert(self.key);
        if let Some(run) = lock(&self.woken.run).as_ref() {
            run.wake_by_ref();
        }
    }
}

/// A mutex's value, also after a panic elsewhere (the sets stay consistent: each
/// operation on them is one call).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<F> Default for Running<F> {
    fn default() -> Self {
        Running {
            tasks: std::collections::BTreeMap::new(),
            next: 0,
            woken: Arc::default(),
        }
    }
}

impl<F: Future> Running<F> {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Start tracking `run`; it is polled at the next [`Running::poll_next`].
    fn push(&mut self, id: TaskId, run: Pin<Box<F>>) {
        let key = self.next;
        self.next += 1;
        let waker = Waker::from(Arc::new(TaskWaker {
            key,
            woken: self.woken.clone(),
        }));
        self.tasks.insert(key, (id, run, waker));
        lock(&self.woken.keys).insert(key);
    }

    /// Stop tracking the task `id` (dropping it stops it).
    fn remove(&mut self, id: TaskId) {
        self.tasks.retain(|_, (task, _, _)| *task != id);
    }

    /// The first task, in start order, of those woken that has ended. Each is polled at
    /// most once per call: one that wakes itself while polled (a cooperative yield) is
    /// polled again at the next call, which its waking brings.
    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<(TaskId, F::Output)> {
        *lock(&self.woken.run) = Some(cx.waker().clone());
        let mut woken = std::mem::take(&mut *lock(&self.woken.keys));
        while let Some(key) = woken.pop_first() {
            let Some((id, run, waker)) = self.tasks.get_mut(&key) else {
                continue;
            };
            let id = *id;
            if let Poll::Ready(output) = run
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
            {
                self.tasks.remove(&key);
                // The woken ones not polled yet stay woken.
                lock(&self.woken.keys).append(&mut woken);
                return Poll::Ready((id, output));
            }
        }
        Poll::Pending
    }
}

/// How a workflow with `timeoutSeconds` and `TIME_OUT_WF` ends when it is found past
/// it, `elapsed` seconds after it started, in the words of Conductor's
/// `DeciderService.checkWorkflowTimeout`.
fn timed_out_after(elapsed: u64, timeout: u64) -> Ending {
    Ending {
        status: WorkflowStatus::TimedOut,
        reason: format!(
            "Workflow timed out after {elapsed} seconds. Timeout configured as {timeout} seconds. Timeout policy configured to TIME_OUT_WF"
        ),
    }
}

/// What advancing needs besides the frame: task definitions, ids, mocks, and where
/// ready tasks go.
struct Scope<'a> {
    task_defs: &'a HashMap<String, TaskDef>,
    next_id: &'a mut u64,
    workflow_id: &'a str,
    mocks: &'a mut Mocks,
    ready: &'a mut Vec<ReadyTask>,
    workflow: &'a mut Arc<Value>,
    terminated: &'a mut Option<(Ending, Value)>,
    next_key: &'a mut u64,
    definitions: &'a Arc<Definitions>,
    correlation_id: Option<&'a str>,
    prefix: &'a str,
    dynamic_forks: &'a mut u64,
    now_ms: u64,
    without_sub_timeouts: bool,
    /// [`RunOptions::forks_wait_for_every_branch`].
    forks_wait: bool,
    /// [`RunOptions::every_branch_at_once`].
    every_branch: bool,
    /// [`RunOptions::dynamic_names_are_workers`].
    dynamic_workers: bool,
    /// [`RunOptions::permissive_ignored`].
    permissive_ignored: bool,
    /// Where the tasks canceled while running go (the executor stops them).
    stopped: &'a mut Vec<TaskId>,
    /// [`RunOptions::without_sub_workflow_failure_workflows`].
    without_sub_failures: bool,
    /// Where the failure workflows of failed sub-workflows go.
    failures: &'a mut Vec<FailureStart>,
}

/// Tasks being canceled: which of them became ready in this advance and were never
/// handed to the executor (nothing was sent), and which were running.
#[derive(Debug, Default)]
struct Canceling {
    /// Ready in this advance, not started.
    unstarted: HashSet<TaskId>,
    /// Canceled while running: the executor stops them.
    stopped: Vec<TaskId>,
}

impl Canceling {
    fn of_ready(ready: &[ReadyTask]) -> Canceling {
        Canceling {
            unstarted: ready.iter().map(|task| task.id).collect(),
            stopped: Vec::new(),
        }
    }
}

impl Scope<'_> {
    /// A fresh id and Conductor task id.
    fn ids(&mut self) -> (TaskId, String) {
        let n = *self.next_id;
        *self.next_id += 1;
        let key = *self.next_key;
        *self.next_key += 1;
        (TaskId(key), task_id_of(self.workflow_id, n))
    }
}

/// A list of tasks run in order (the workflow's, a fork branch's, a switch case's),
/// with its own context and records.
#[derive(Debug)]
struct Frame {
    tasks: Vec<WorkflowTask>,
    next: usize,
    /// Shared entries: a fork's branches clone pointers, never the workflow input.
    context: Context,
    /// The references the next JOIN joins on, set by a FORK_JOIN_DYNAMIC.
    join_on: Option<Vec<String>>,
    /// Inside iteration N of a DO_WHILE: a task `ref__N` is also `ref` to expressions,
    /// as Conductor's `ParametersUtils` gives loop tasks.
    iteration: Option<u32>,
    records: Vec<TaskRecord>,
    state: State,
}

/// A DO_WHILE on its way: Conductor's `DoWhile` task model.
#[derive(Debug)]
struct Loop {
    task_id: String,
    /// Its resolved input.
    input: Value,
    /// Its output: `iteration`, each iteration's task outputs by reference (`"1"`, …),
    /// `loopIndex` and `loopItem` when it iterates over `items`.
    output: Map<String, Value>,
    iteration: u32,
    /// The list it iterates over, with `items`.
    items: Option<Vec<Value>>,
    /// The records of its iterations so far.
    records: Vec<TaskRecord>,
}

#[derive(Debug)]
enum State {
    /// The next task may start.
    Ready,
    /// A worker task (`tasks[next - 1]`) is running.
    Running {
        id: TaskId,
        task_id: String,
        task_type: String,
        input: Value,
    },
    /// A FORK_JOIN (`tasks[next - 1]`) waits for its branches; a FORK_JOIN_DYNAMIC's
    /// also has its input and the references the next JOIN joins on.
    Forked {
        branches: Vec<Frame>,
        task_id: String,
        dynamic: Option<(Value, Vec<String>)>,
        /// How many branches have started, in order (at most [`BRANCHES_AT_ONCE`] of
        /// them unfinished); the rest wait as their unstarted frames.
        started: usize,
        /// How many branches, from the first, have all finished: a result is looked for
        /// among, and an advance walks, only those in progress after them.
        settled: usize,
    },
    /// A SWITCH or DECISION (`tasks[next - 1]`) waits for the script that picks its
    /// case.
    Choosing {
        id: TaskId,
        task_id: String,
        input: Value,
    },
    /// A SWITCH runs its chosen case.
    Switched { case: Box<Frame> },
    /// A DO_WHILE (`tasks[next - 1]`) runs an iteration of its `loopOver`.
    Looping { body: Box<Frame>, lp: Box<Loop> },
    /// A DO_WHILE waits for its `loopCondition` script, `id`.
    LoopCondition {
        id: TaskId,
        lp: Box<Loop>,
        context: Context,
        /// With `items`: whether an item is left.
        more_items: Option<bool>,
    },
    /// A SUB_WORKFLOW (`tasks[next - 1]`) runs its workflow.
    SubWorkflow {
        child: Box<Interpreter>,
        task_id: String,
        input: Value,
    },
    /// The list finished: `Some` with what stopped it.
    Done(Option<Ending>),
}

impl Frame {
    fn new(tasks: Vec<WorkflowTask>, context: Context) -> Frame {
        Frame {
            tasks,
            next: 0,
            context,
            join_on: None,
            iteration: None,
            records: Vec::new(),
            state: State::Ready,
        }
    }

    fn done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Record a finished worker task and its context entry, as Conductor's decider
    /// would: a failed optional task becomes `COMPLETED_WITH_ERRORS` and the list goes
    /// on; a failed permissive one keeps its status and the list goes on (the workflow
    /// fails when it would complete); a task `TIMED_OUT` (its timeout policy
    /// `TIME_OUT_WF`, or out of retries) ends the workflow `TIMED_OUT`; any other
    /// failure ends it `FAILED`.
    fn push(&mut self, mut done: TaskRecord, failure: Option<String>, tolerance: Tolerance) {
        let failed = !matches!(done.status, TaskStatus::Completed);
        if failed && tolerance.optional {
            done.status = TaskStatus::CompletedWithErrors;
        }
        if failed && !tolerance.optional && tolerance.permissive {
            done.permissive_failure = Some(failure.clone().unwrap_or_default());
        }
        // Inside a DO_WHILE's iteration a failed permissive task stops it: Conductor's
        // DoWhile fails the loop (see `iteration_done`).
        let in_loop = done.permissive_failure.is_some() && self.iteration.is_some();
        let optional = tolerance.optional || (tolerance.permissive && !in_loop);
        let entry = entry(&done, failure.as_deref().filter(|_| failed));
        if let Some(base) = self.iteration.and_then(|n| loop_base(&done.reference, n)) {
            self.context.insert(base.to_string(), entry.clone());
        }
        self.context.insert(done.reference.clone(), entry);
        let status = done.status;
        self.records.push(done);
        self.state = match (failed && !optional, status) {
            (false, _) => State::Ready,
            (true, TaskStatus::TimedOut) => State::Done(Some(Ending {
                status: WorkflowStatus::TimedOut,
                reason: failure.unwrap_or_default(),
            })),
            (true, TaskStatus::Canceled) => State::Done(Some(Ending {
                status: WorkflowStatus::Terminated,
                reason: failure.unwrap_or_default(),
            })),
            (true, _) => State::Done(Some(Ending::failed(failure.unwrap_or_default()))),
        };
    }

    fn advance(&mut self, scope: &mut Scope<'_>) {
        loop {
            match &mut self.state {
                State::Done(_)
                | State::Running { .. }
                | State::Choosing { .. }
                | State::LoopCondition { .. } => return,
                State::Looping { body, .. } => {
                    body.advance(scope);
                    if !body.done() {
                        return;
                    }
                    let State::Looping { body, lp } =
                        std::mem::replace(&mut self.state, State::Ready)
                    else {
                        unreachable!("matched Looping above");
                    };
                    self.iteration_done(*body, lp, scope);
                }
                State::Forked {
                    branches,
                    started,
                    settled,
                    ..
                } => {
                    let fork_start = scope.ready.len();
                    let in_progress = *settled..*started;
                    // A branch that a task's result failed stops the fork before any
                    // other branch goes on: Conductor's decide pass throws at the failed
                    // task and schedules nothing.
                    let failed = !scope.forks_wait
                        && branches[in_progress.clone()]
                            .iter()
                            .any(|b| matches!(b.state, State::Done(Some(_))));
                    if !failed {
                        for i in in_progress.clone() {
                            let branch = &mut branches[i];
                            if !branch.done() {
                                branch.advance_as(i, scope);
                                branch.shed_if_done(&self.context);
                            }
                        }
                        // Conductor schedules every branch at once; here the next ones
                        // start as earlier ones end, at most BRANCHES_AT_ONCE unfinished.
                        let mut open = branches[in_progress].iter().filter(|b| !b.done()).count();
                        while *started < branches.len()
                            && (scope.every_branch || open < BRANCHES_AT_ONCE)
                        {
                            let branch = &mut branches[*started];
                            branch.advance_as(*started, scope);
                            branch.shed_if_done(&self.context);
                            open += usize::from(!branch.done());
                            *started += 1;
                        }
                        while *settled < *started && branches[*settled].done() {
                            *settled += 1;
                        }
                    }
                    // DeciderService: a task that fails its branch (not optional, out
                    // of retries) fails the workflow at once; WorkflowExecutor then
                    // cancels the tasks of the other branches, and none starts after.
                    if !scope.forks_wait
                        && let Some(reason) =
                            branches[*settled..*started]
                                .iter()
                                .find_map(|b| match &b.state {
                                    State::Done(Some(ending)) => Some(ending.reason.clone()),
                                    _ => None,
                                })
                    {
                        let mut canceling = Canceling::of_ready(&scope.ready[fork_start..]);
                        for (i, branch) in branches.iter_mut().enumerate() {
                            if i >= *started {
                                branch.cancel_unstarted(&reason, scope);
                            } else if !branch.done() {
                                branch.cancel(&reason, &mut canceling, scope);
                            }
                        }
                        *started = branches.len();
                        *settled = branches.len();
                        let unstarted = &canceling.unstarted;
                        scope.ready.retain(|task| !unstarted.contains(&task.id));
                        scope.stopped.extend(canceling.stopped);
                    }
                    if *settled < branches.len() {
                        return;
                    }
                    let branches = std::mem::take(branches);
                    self.join_branches(branches);
                }
                State::Switched { case } => {
                    case.advance(scope);
                    let State::Done(ending) = &case.state else {
                        return;
                    };
                    let ending = ending.clone();
                    let case =
                        std::mem::replace(case, Box::new(Frame::new(Vec::new(), Context::new())));
                    self.records.extend(case.records);
                    self.context = case.context;
                    self.state = match ending {
                        Some(ending) => State::Done(Some(ending)),
                        None => State::Ready,
                    };
                }
                State::SubWorkflow { child, .. } => {
                    child.now_ms = scope.now_ms;
                    child.advance_with(scope.next_key, scope.ready, scope.stopped, scope.failures);
                    if !child.finished() {
                        return;
                    }
                    let State::SubWorkflow {
                        child,
                        task_id,
                        input,
                    } = std::mem::replace(&mut self.state, State::Ready)
                    else {
                        unreachable!("matched SubWorkflow above");
                    };
                    let task = &self.tasks[self.next - 1];
                    // Conductor's WorkflowExecutor.terminateWorkflow starts a failed
                    // sub-workflow's own failureWorkflow, as any workflow's (not when its
                    // parent cancels it: SubWorkflow.cancel passes none).
                    let definition = child.definition.clone();
                    let workflow_input = child.workflow.get("input").cloned();
                    let mut run = child.result();
                    if !scope.without_sub_failures
                        && let Some(start) = failure_start(
                            &definition,
                            &workflow_input.unwrap_or(Value::Null),
                            &mut run,
                            scope.definitions,
                        )
                    {
                        scope.failures.push(start);
                    }
                    let (done, failure) = sub_workflow_record(task, task_id, input, run);
                    let optional = Tolerance::of(task);
                    self.push(done, failure, optional);
                }
                State::Ready => self.start_next(scope),
            }
        }
    }

    /// Advance the fork branch `i`, its ready tasks marked as in that branch.
    fn advance_as(&mut self, i: usize, scope: &mut Scope<'_>) {
        let before = scope.ready.len();
        self.advance(scope);
        for task in &mut scope.ready[before..] {
            task.branch.insert(0, u32::try_from(i).unwrap_or(u32::MAX));
        }
    }

    /// A fork branch that finished keeps only what its JOIN takes (its records, the
    /// context entries its tasks made): its tasks and the entries it shares with the
    /// fork's frame (`forked`) go, so that 10,000 finished branches hold their records,
    /// not 10,000 copies of their definitions.
    fn shed_if_done(&mut self, forked: &Context) {
        if !self.done() {
            return;
        }
        self.tasks = Vec::new();
        self.context
            .retain(|key, value| !forked.get(key).is_some_and(|kept| Arc::ptr_eq(kept, value)));
    }

    /// Cancel a fork branch that had not started, as Conductor cancels a branch it
    /// scheduled: its first task is recorded `CANCELED`, nothing sent. Nothing of it
    /// runs (no script, no TERMINATE or SET_VARIABLE, no mock used, no sub-workflow).
    fn cancel_unstarted(&mut self, reason: &str, scope: &mut Scope<'_>) {
        self.state = State::Done(None);
        let Some(task) = self.tasks.first() else {
            return;
        };
        self.next = 1;
        self.context
            .insert("workflow".into(), scope.workflow.clone());
        let (_, task_id) = scope.ids();
        let def = task.effective_def(scope.task_defs);
        let mut input = task_input(task, &def, &self.context, &task_id).unwrap_or_default();
        // A SUB_WORKFLOW's input is recorded as a started one's is.
        if let (Ok(TaskKind::SubWorkflow), Some(params)) = (task.kind(), &task.sub_workflow_param) {
            let inline = params.workflow_definition.as_ref();
            let name = inline
                .and_then(|d| d["name"].as_str())
                .unwrap_or(&params.name);
            // As `start_sub_workflow` finds it: the inline one, else the one by name.
            let version = match inline {
                Some(inline) => inline["version"].as_u64(),
                None => scope
                    .definitions
                    .get(&params.name, params.version)
                    .and_then(|d| d.version)
                    .map(u64::from),
            }
            .unwrap_or(1);
            input = json!({
                "subWorkflowName": name,
                "subWorkflowVersion": version,
                "workflowInput": input,
            });
        }
        // Conductor's taskType: the system task's type, a SIMPLE task's name.
        let task_type = match task.kind() {
            Ok(TaskKind::Simple) => task.name.clone(),
            Ok(kind) => kind.as_str().to_string(),
            Err(UnsupportedType(task_type)) => task_type,
        };
        let message = format!("canceled ({reason}) before it started: nothing was sent");
        let canceled = canceled_record(task, &task_type, task_id, input, message);
        self.records.push(canceled);
    }

    /// A fork's branches are done: the FORK_JOIN's own record first (Conductor completes
    /// it when it schedules the branches, so it lists before them, even when one fails),
    /// then their records in branch order and their context entries (the first branch's
    /// wins); the first branch failure stops the list.
    fn join_branches(&mut self, branches: Vec<Frame>) {
        let (task_id, dynamic) = match &mut self.state {
            State::Forked {
                task_id, dynamic, ..
            } => (task_id.clone(), dynamic.take()),
            _ => (String::new(), None),
        };
        let task = &self.tasks[self.next - 1];
        let (fork, join_on) = fork_record(task, task_id, dynamic);
        self.join_on = join_on;
        self.push(fork, None, Tolerance::default());
        let mut ending = None;
        for branch in branches {
            self.records.extend(branch.records);
            // In iteration N of a loop a branch task's `ref` is also its `ref__N`: that
            // one replaces the previous iteration's `ref`, as Conductor's ParametersUtils
            // gives a loop task's plain reference its current iteration.
            let current: Vec<String> = match self.iteration {
                Some(n) => branch
                    .context
                    .iter()
                    .filter(|(key, value)| {
                        branch
                            .context
                            .get(&format!("{key}__{n}"))
                            .is_some_and(|this| Arc::ptr_eq(this, value))
                    })
                    .map(|(key, _)| key.clone())
                    .collect(),
                None => Vec::new(),
            };
            for (key, value) in branch.context {
                if current.contains(&key) {
                    self.context.insert(key, value);
                } else {
                    self.context.entry(key).or_insert(value);
                }
            }
            if let State::Done(Some(branch_ending)) = branch.state {
                ending = ending.or(Some(branch_ending));
            }
        }
        if let Some(ending) = ending {
            self.state = State::Done(Some(ending));
        }
    }

    /// End the sub-workflows under this frame whose deadline is at or before `now_ms`;
    /// the tasks that were running in them go to `stopped`.
    fn expire(&mut self, now_ms: u64, stopped: &mut Vec<TaskId>, next_key: &mut u64) {
        match &mut self.state {
            State::SubWorkflow { child, .. } => {
                if child.finished() {
                    return;
                }
                if child.sub_deadline().is_some_and(|at| at <= now_ms) {
                    child.root.running(stopped);
                    let elapsed = now_ms.saturating_sub(child.started_ms) / 1000;
                    let timeout = child.definition.timeout_seconds;
                    let mut failures = Vec::new();
                    child.end_with(
                        timed_out_after(elapsed, timeout),
                        &mut Canceling::default(),
                        next_key,
                        &mut failures,
                    );
                } else {
                    child.root.expire(now_ms, stopped, next_key);
                }
            }
            State::Forked {
                branches,
                started,
                settled,
                ..
            } => {
                for branch in &mut branches[*settled..*started] {
                    branch.expire(now_ms, stopped, next_key);
                }
            }
            State::Switched { case } => case.expire(now_ms, stopped, next_key),
            State::Looping { body, .. } => body.expire(now_ms, stopped, next_key),
            _ => {}
        }
    }

    /// The tasks running under this frame.
    fn running(&self, out: &mut Vec<TaskId>) {
        match &self.state {
            State::Running { id, .. }
            | State::Choosing { id, .. }
            | State::LoopCondition { id, .. } => out.push(*id),
            State::SubWorkflow { child, .. } => child.root.running(out),
            State::Forked {
                branches,
                started,
                settled,
                ..
            } => {
                for branch in &branches[*settled..*started] {
                    branch.running(out);
                }
            }
            State::Switched { case } => case.running(out),
            State::Looping { body, .. } => body.running(out),
            State::Ready | State::Done(_) => {}
        }
    }

    /// The earliest deadline of a sub-workflow running under this frame.
    fn next_deadline(&self) -> Option<u64> {
        match &self.state {
            State::SubWorkflow { child, .. } if !child.finished() => {
                match (child.sub_deadline(), child.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Forked {
                branches,
                started,
                settled,
                ..
            } => branches[*settled..*started]
                .iter()
                .filter_map(Frame::next_deadline)
                .min(),
            State::Switched { case } => case.next_deadline(),
            State::Looping { body, .. } => body.next_deadline(),
            _ => None,
        }
    }

    /// Record every task still running as `CANCELED` (the run ended without it); those
    /// that were running (not just ready) go to `canceling.stopped`.
    fn cancel(&mut self, reason: &str, canceling: &mut Canceling, scope: &mut Scope<'_>) {
        match std::mem::replace(&mut self.state, State::Done(None)) {
            State::Running {
                id,
                task_id,
                task_type,
                input,
            } => {
                let message = if canceling.unstarted.contains(&id) {
                    format!("canceled ({reason}) before it started: nothing was sent")
                } else {
                    canceling.stopped.push(id);
                    format!(
                        "canceled ({reason}) while running: its request may have been sent and applied; check the record before running it again"
                    )
                };
                let task = &self.tasks[self.next - 1];
                let canceled = canceled_record(task, &task_type, task_id, input, message);
                self.records.push(canceled);
            }
            State::Forked {
                branches,
                task_id,
                dynamic,
                started,
                ..
            } => {
                // Conductor completed the fork when it scheduled the branches.
                let (fork, _) = fork_record(&self.tasks[self.next - 1], task_id, dynamic);
                self.records.push(fork);
                for (i, mut branch) in branches.into_iter().enumerate() {
                    if i >= started {
                        branch.cancel_unstarted(reason, scope);
                    } else {
                        branch.cancel(reason, canceling, scope);
                    }
                    self.records.extend(branch.records);
                }
            }
            State::Switched { mut case } => {
                case.cancel(reason, canceling, scope);
                self.records.extend(case.records);
            }
            State::SubWorkflow {
                mut child,
                task_id,
                input,
            } => {
                child.end_with(
                    Ending {
                        status: WorkflowStatus::Terminated,
                        reason: reason.to_string(),
                    },
                    canceling,
                    scope.next_key,
                    scope.failures,
                );
                let task = &self.tasks[self.next - 1];
                let (mut done, _) = sub_workflow_record(task, task_id, input, child.result());
                done.status = TaskStatus::Canceled;
                self.records.push(done);
            }
            State::Looping { mut body, lp } => {
                body.cancel(reason, canceling, scope);
                self.records
                    .push(canceled_loop(&self.tasks[self.next - 1], &lp));
                self.records.extend(lp.records);
                self.records.extend(body.records);
            }
            State::LoopCondition { id, lp, .. } => {
                if !canceling.unstarted.contains(&id) {
                    canceling.stopped.push(id);
                }
                self.records
                    .push(canceled_loop(&self.tasks[self.next - 1], &lp));
                self.records.extend(lp.records);
            }
            // A script picking a case sent nothing: there is nothing to record.
            State::Choosing { id, .. } => {
                if !canceling.unstarted.contains(&id) {
                    canceling.stopped.push(id);
                }
            }
            State::Ready | State::Done(_) => {}
        }
    }

    fn start_next(&mut self, scope: &mut Scope<'_>) {
        let Some(task) = self.tasks.get(self.next) else {
            self.state = State::Done(None);
            return;
        };
        self.next += 1;
        // The run's `${workflow…}` as it is now (after any SET_VARIABLE).
        self.context
            .insert("workflow".into(), scope.workflow.clone());
        let reference = task.task_reference_name.clone();
        let kind = match task.kind() {
            Ok(kind) => kind,
            // A type only a Conductor server runs (EVENT, HUMAN, …): its mock runs in
            // its place.
            Err(UnsupportedType(task_type)) if scope.mocks.has(&reference) => {
                let (_, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let input = task_input(task, &def, &self.context, &task_id).unwrap_or_default();
                self.push_mocked(scope.mocks, &def, &task_type, task_id, input);
                return;
            }
            Err(e) => {
                self.state = State::Done(Some(Ending::failed(format!("{reference}: {e}"))));
                return;
            }
        };
        match kind {
            TaskKind::Simple | TaskKind::Http | TaskKind::JsonJqTransform => {
                let (id, task_id) = scope.ids();
                // Conductor's taskType: the system task's type, a SIMPLE task's name.
                let task_type = match kind {
                    TaskKind::Simple => task.name.clone(),
                    system => system.as_str().to_string(),
                };
                let def = task.effective_def(scope.task_defs);
                let input = match task_input(task, &def, &self.context, &task_id) {
                    Ok(input) => input,
                    Err(e) => {
                        self.push_unresolved(&task_type, task_id, &e);
                        return;
                    }
                };
                if scope.mocks.has(&reference) {
                    self.push_mocked(scope.mocks, &def, &task_type, task_id, input);
                    return;
                }
                let mut given = input.clone();
                if let (Some(param), Value::Object(given)) = (&task.routed_by, &mut given) {
                    given.remove(param);
                }
                scope.ready.push(ReadyTask {
                    id,
                    branch: Vec::new(),
                    task_id: task_id.clone(),
                    reference: format!("{}{reference}", scope.prefix),
                    def,
                    component: task.component().to_string(),
                    input: given,
                    wait: None,
                });
                self.state = State::Running {
                    id,
                    task_id,
                    task_type,
                    input,
                };
            }
            TaskKind::Terminate | TaskKind::SetVariable => {
                let (_, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let input = match task_input(task, &def, &self.context, &task_id) {
                    Ok(input) => input,
                    Err(e) => {
                        self.push_unresolved(kind.as_str(), task_id, &e);
                        return;
                    }
                };
                let (done, failure) = if kind == TaskKind::Terminate {
                    terminate(task, task_id, input, scope)
                } else {
                    set_variable(task, task_id, input, scope)
                };
                let optional = Tolerance::of(task);
                self.push(done, failure, optional);
                // Nothing after a TERMINATE runs: the lists above it end with it.
                if let Some((ending, _)) = scope.terminated.as_ref() {
                    self.state = State::Done(Some(ending.clone()));
                }
            }
            TaskKind::SubWorkflow => {
                let (_, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let started = task_input(task, &def, &self.context, &task_id)
                    .map_err(|e| e.to_string())
                    .and_then(|input| start_sub_workflow(task, &task_id, input, scope));
                match started {
                    Ok((child, input)) => {
                        self.state = State::SubWorkflow {
                            child: Box::new(child),
                            task_id,
                            input,
                        };
                    }
                    Err(e) => {
                        self.push_unresolved("SUB_WORKFLOW", task_id, &e);
                    }
                }
            }
            TaskKind::Join => {
                let (_, task_id) = scope.ids();
                let join_on = self.join_on.take().unwrap_or_else(|| task.join_on.clone());
                let (join, failure) = join_record(task, &join_on, &self.context, task_id);
                let optional = Tolerance::of(task);
                self.push(join, failure, optional);
            }
            TaskKind::ForkJoin => {
                let (_, task_id) = scope.ids();
                let branches = task
                    .fork_tasks
                    .iter()
                    .map(|branch| {
                        let mut frame = Frame::new(branch.clone(), self.context.clone());
                        frame.iteration = self.iteration;
                        frame
                    })
                    .collect();
                self.state = State::Forked {
                    branches,
                    task_id,
                    dynamic: None,
                    started: 0,
                    settled: 0,
                };
            }
            TaskKind::ForkJoinDynamic => {
                let (_, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let nested = *scope.dynamic_forks > 0;
                *scope.dynamic_forks += 1;
                let followed_by_join = self
                    .tasks
                    .get(self.next)
                    .is_some_and(|next| matches!(next.kind(), Ok(TaskKind::Join)));
                let forked = task_input(task, &def, &self.context, &task_id)
                    .map_err(|e| e.to_string())
                    .and_then(|input| {
                        if !followed_by_join {
                            return Err("Dynamic join definition is not followed by a join task.  Check the workflow definition.".into());
                        }
                        // In iteration N of a loop the mapper sees the task as defined
                        // (its reference without `__N`); every task it makes is then
                        // scheduled as `ref__N`, as `DeciderService.filterNextLoopOverTasks`
                        // renames them.
                        let Some(n) = self.iteration else {
                            return dynamic_fork_tasks(task, &input, nested)
                                .map(|tasks| (input, tasks));
                        };
                        let mut defined = task.clone();
                        if let Some(base) = loop_base(&task.task_reference_name, n) {
                            defined.task_reference_name = base.to_string();
                        }
                        dynamic_fork_tasks(&defined, &input, nested).map(|tasks| {
                            let tasks = tasks.iter().map(|t| t.in_iteration(n)).collect();
                            (input, tasks)
                        })
                    });
                match forked {
                    Ok((input, mut tasks)) => {
                        if scope.permissive_ignored {
                            tasks.iter_mut().for_each(without_permissive);
                        }
                        let refs = tasks
                            .iter()
                            .map(|t| t.task_reference_name.clone())
                            .collect();
                        // Collected into a Vec of its own size: collecting in place would
                        // keep the tasks' (four times larger) allocation for the frames.
                        let mut branches = Vec::with_capacity(tasks.len());
                        branches.extend(tasks.into_iter().map(|t| {
                            let mut frame = Frame::new(vec![t], self.context.clone());
                            frame.iteration = self.iteration;
                            frame
                        }));
                        self.state = State::Forked {
                            branches,
                            task_id,
                            dynamic: Some((input, refs)),
                            started: 0,
                            settled: 0,
                        };
                    }
                    Err(e) => {
                        self.state =
                            State::Done(Some(Ending::failed(format!("task {reference}: {e}"))));
                    }
                }
            }
            TaskKind::Wait => {
                let (id, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let input = task_input(task, &def, &self.context, &task_id).unwrap_or_default();
                let optional = Tolerance::of(task);
                if scope.mocks.has(&reference) {
                    self.push_mocked(scope.mocks, &def, "WAIT", task_id, input);
                    return;
                }
                match wait_of(&input) {
                    Ok(wait) => {
                        scope.ready.push(ReadyTask {
                            id,
                            branch: Vec::new(),
                            task_id: task_id.clone(),
                            reference: format!("{}{reference}", scope.prefix),
                            component: String::new(),
                            input: input.clone(),
                            def,
                            wait: Some(wait),
                        });
                        self.state = State::Running {
                            id,
                            task_id,
                            task_type: "WAIT".into(),
                            input,
                        };
                    }
                    Err(e) => {
                        let failed = record(
                            task,
                            "WAIT",
                            task_id,
                            TaskStatus::FailedWithTerminalError,
                            input,
                            json!({}),
                        );
                        self.push(failed, Some(format!("task {reference}: {e}")), optional);
                    }
                }
            }
            TaskKind::DoWhile => {
                let (_, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let started = task_input(task, &def, &self.context, &task_id)
                    .map_err(|e| e.to_string())
                    .and_then(|input| {
                        loop_items(task, &input, &self.context, &task_id)
                            .map(|items| (input, items))
                    });
                let (input, items) = match started {
                    Ok(started) => started,
                    Err(e) => {
                        self.push_unresolved("DO_WHILE", task_id, &e);
                        return;
                    }
                };
                let lp = Box::new(Loop {
                    task_id,
                    input,
                    output: Map::new(),
                    iteration: 0,
                    items,
                    records: Vec::new(),
                });
                let context = self.context.clone();
                if lp.items.as_ref().is_some_and(Vec::is_empty) {
                    // Nothing to iterate over: done at once, `iteration` 0.
                    let mut lp = lp;
                    lp.output.insert("iteration".into(), json!(0));
                    self.after_condition(lp, context, false);
                    return;
                }
                self.start_iteration(lp, context);
            }
            TaskKind::Inline | TaskKind::Lambda => {
                let (id, task_id) = scope.ids();
                let def = task.effective_def(scope.task_defs);
                let optional = Tolerance::of(task);
                let name = kind.as_str();
                let input = match task_input(task, &def, &self.context, &task_id) {
                    Ok(input) => input,
                    Err(e) => {
                        self.push_unresolved(name, task_id, &e);
                        return;
                    }
                };
                if scope.mocks.has(&reference) {
                    self.push_mocked(scope.mocks, &def, name, task_id, input);
                    return;
                }
                match script_of(kind, &input) {
                    Ok(Script::Value(result)) => {
                        let done = record(
                            task,
                            name,
                            task_id,
                            TaskStatus::Completed,
                            input,
                            json!({ "result": result }),
                        );
                        self.push(done, None, optional);
                    }
                    Ok(Script::JavaScript(script)) => {
                        scope.ready.push(ReadyTask {
                            id,
                            branch: Vec::new(),
                            task_id: task_id.clone(),
                            reference: format!("{}{reference}", scope.prefix),
                            def,
                            component: JAVASCRIPT.to_string(),
                            input: json!({ "script": script, "input": input }),
                            wait: None,
                        });
                        self.state = State::Running {
                            id,
                            task_id,
                            task_type: name.to_string(),
                            input,
                        };
                    }
                    Err((status, reason)) => {
                        let failed = record(
                            task,
                            name,
                            task_id,
                            status,
                            input,
                            json!({ "error": reason }),
                        );
                        self.push(
                            failed,
                            Some(format!("task {reference}: {reason}")),
                            optional,
                        );
                    }
                }
            }
            TaskKind::Dynamic => {
                // DynamicTaskMapper: the task named by the input runs in its place, with
                // the same reference and input.
                let (_, task_id) = scope.ids();
                let param = task.dynamic_task_name_param.clone().unwrap_or_default();
                let input = match task_input(
                    task,
                    &task.effective_def(scope.task_defs),
                    &self.context,
                    &task_id,
                ) {
                    Ok(input) => input,
                    Err(e) => {
                        self.push_unresolved("DYNAMIC", task_id, &e);
                        return;
                    }
                };
                // Conductor takes `String.valueOf` of whatever the parameter resolved to;
                // only a missing (null) one cannot name a task.
                let value = input.get(&param).cloned().unwrap_or_default();
                let name = match &value {
                    Value::Null => None,
                    Value::String(name) => Some(name.clone()),
                    other => Some(other.to_string()),
                };
                let Some(name) = name.filter(|n| !(scope.dynamic_workers && n.is_empty())) else {
                    // Conductor's reason prints the whole input; only the parameter is
                    // named here (the rest may carry credentials).
                    self.state = State::Done(Some(Ending::failed(format!(
                        "task {reference}: Cannot map a dynamic task based on the parameter and input. Parameter= {param}, its value= {value}"
                    ))));
                    return;
                };
                // Conductor then looks the name up among the task definitions; no name
                // finds none.
                if name.is_empty() {
                    self.state = State::Done(Some(Ending::failed(format!(
                        "task {reference}: Invalid task specified.  Cannot find task by name  in the task definitions"
                    ))));
                    return;
                }
                // Conductor gives the task the name as its taskType, and a system task
                // of that type runs it; any other name is a worker's.
                use crate::definition::TaskType;
                let kind = match TaskType::from(name.clone()) {
                    _ if scope.dynamic_workers => TaskType::Unset,
                    TaskType::Known(
                        kind @ (TaskKind::Http
                        | TaskKind::JsonJqTransform
                        | TaskKind::Inline
                        | TaskKind::Lambda
                        | TaskKind::Wait
                        | TaskKind::Terminate
                        | TaskKind::SetVariable),
                    ) => TaskType::Known(kind),
                    TaskType::Known(TaskKind::Simple) | TaskType::Unsupported(_) => TaskType::Unset,
                    TaskType::Known(_) => {
                        self.state = State::Done(Some(Ending::failed(format!(
                            "task {reference}: the dynamic task names `{name}`, which Conductor does not run as one scheduled task (a dynamic task may name a worker task or the HTTP, JSON_JQ_TRANSFORM, INLINE, LAMBDA, WAIT, TERMINATE or SET_VARIABLE system task): give the task the type `{name}` in the definition instead"
                        ))));
                        return;
                    }
                    TaskType::Unset => TaskType::Unset,
                };
                let mut resolved = task.clone();
                resolved.name = name;
                resolved.kind = kind;
                resolved.routed_by = Some(param);
                self.tasks[self.next - 1] = resolved;
                self.next -= 1;
                self.start_next(scope);
            }
            TaskKind::Switch | TaskKind::Decision => {
                let (id, task_id) = scope.ids();
                let input = match switch_input(task, &self.context, &task_id) {
                    Ok(input) => input,
                    Err(failure) => {
                        self.state = State::Done(Some(Ending::failed(failure)));
                        return;
                    }
                };
                if let Some(script) = switch_script(task) {
                    // The script runs in the sandbox; the case is picked when it ends.
                    scope.ready.push(ReadyTask {
                        id,
                        branch: Vec::new(),
                        task_id: task_id.clone(),
                        reference: format!("{}{reference}", scope.prefix),
                        def: task.effective_def(scope.task_defs),
                        component: JAVASCRIPT.to_string(),
                        input: json!({ "script": script, "input": input }),
                        wait: None,
                    });
                    self.state = State::Choosing { id, task_id, input };
                    return;
                }
                let chosen = param_case(task, &input);
                self.switch_to(input, chosen, task_id);
            }
        }
    }

    /// The task `tasks[next - 1]` ran as its next mock, of type `task_type`.
    fn push_mocked(
        &mut self,
        mocks: &mut Mocks,
        def: &TaskDef,
        task_type: &str,
        task_id: String,
        input: Value,
    ) {
        let task = &self.tasks[self.next - 1];
        let result = mocked(mocks, &task.task_reference_name, def);
        let mut done = record(
            task,
            task_type,
            task_id,
            result.status,
            input,
            result.output,
        );
        done.attempts = result.attempts;
        let optional = Tolerance::of(task);
        self.push(done, result.failure, optional);
    }

    /// The task `tasks[next - 1]`, of type `task_type`, failed before it could run
    /// (its input did not resolve): terminal, with no input or output.
    fn push_unresolved(
        &mut self,
        task_type: &str,
        task_id: String,
        failure: &dyn std::fmt::Display,
    ) {
        let task = &self.tasks[self.next - 1];
        let failed = record(
            task,
            task_type,
            task_id,
            TaskStatus::FailedWithTerminalError,
            json!({}),
            json!({}),
        );
        let reason = format!("task {}: {failure}", task.task_reference_name);
        let optional = Tolerance::of(task);
        self.push(failed, Some(reason), optional);
    }

    /// Start the next iteration of the DO_WHILE `tasks[next - 1]` on `context`: its
    /// `iteration` (and `loopIndex`, `loopItem`) in its output, seen by the loop's tasks
    /// as `${ref.output…}`, and the loop's tasks renamed `ref__N`.
    fn start_iteration(&mut self, mut lp: Box<Loop>, mut context: Context) {
        let task = &self.tasks[self.next - 1];
        if lp.iteration >= MAX_LOOP_ITERATIONS {
            let reason = format!(
                "the loop ran {MAX_LOOP_ITERATIONS} iterations, the harness's cap on one DO_WHILE (its loopCondition still holds): loop over pages or items of a bounded list"
            );
            self.loop_failed(lp, context, TaskStatus::FailedWithTerminalError, reason);
            return;
        }
        lp.iteration += 1;
        let n = lp.iteration;
        lp.output.insert("iteration".into(), json!(n));
        if let Some(items) = &lp.items {
            let index = (n - 1) as usize;
            lp.output.insert("loopIndex".into(), json!(index));
            if let Some(item) = items.get(index) {
                lp.output.insert("loopItem".into(), item.clone());
            }
        }
        context.insert(
            task.task_reference_name.clone(),
            Arc::new(json!({
                "input": lp.input,
                "output": lp.output,
                "status": "IN_PROGRESS",
                "taskType": "DO_WHILE",
                "referenceTaskName": task.task_reference_name,
                "taskDefName": task.name,
                "taskId": lp.task_id,
                "iteration": n,
            })),
        );
        let tasks = task.loop_over.iter().map(|t| t.in_iteration(n)).collect();
        let mut body = Frame::new(tasks, context);
        body.iteration = Some(n);
        self.state = State::Looping {
            body: Box::new(body),
            lp,
        };
    }

    /// An iteration of the DO_WHILE `tasks[next - 1]` ended: record its outputs, then
    /// evaluate `loopCondition` (in the sandbox) unless the loop failed or its `items`
    /// alone decide.
    fn iteration_done(&mut self, body: Frame, mut lp: Box<Loop>, scope: &mut Scope<'_>) {
        let task = &self.tasks[self.next - 1];
        let n = lp.iteration;
        let outputs: Map<String, Value> = body
            .records
            .iter()
            .filter_map(|r| {
                loop_base(&r.reference, n).map(|base| (base.to_string(), r.output.clone()))
            })
            .collect();
        lp.output.insert(n.to_string(), Value::Object(outputs));
        lp.records.extend(body.records);
        // keepLastN: only the last N iterations' outputs and tasks are kept.
        if let Some(keep) = task
            .input_parameters
            .get("keepLastN")
            .and_then(Value::as_u64)
            && u64::from(n) > keep
        {
            let last_dropped = u64::from(n) - keep;
            for old in 1..=last_dropped {
                lp.output.remove(&old.to_string());
            }
            lp.records.retain(|r| {
                r.reference
                    .rsplit_once("__")
                    .and_then(|(_, i)| i.parse::<u64>().ok())
                    .is_none_or(|i| i > last_dropped)
            });
        }
        let context = body.context;
        if let State::Done(Some(ending)) = &body.state
            && ending.status == WorkflowStatus::Failed
            && lp.records.iter().any(|r| r.permissive_failure.is_some())
        {
            // DoWhile.execute: a failed (permissive) task of the iteration fails the loop,
            // which its own optional or permissive may then let the workflow go past.
            let done = record(
                task,
                "DO_WHILE",
                lp.task_id.clone(),
                TaskStatus::Failed,
                lp.input.clone(),
                Value::Object(lp.output.clone()),
            );
            let tolerance = Tolerance::of(task);
            let reason = ending.reason.clone();
            self.context = context;
            self.push(done, Some(reason), tolerance);
            self.records.extend(lp.records);
            return;
        }
        if let State::Done(Some(ending)) = body.state {
            // A task of the loop failed it (or a TERMINATE ended the run).
            let status = match ending.status {
                WorkflowStatus::Failed | WorkflowStatus::TimedOut => TaskStatus::Failed,
                _ => TaskStatus::Canceled,
            };
            let done = record(
                task,
                "DO_WHILE",
                lp.task_id.clone(),
                status,
                lp.input.clone(),
                Value::Object(lp.output.clone()),
            );
            self.context = context;
            self.context
                .insert(done.reference.clone(), entry(&done, Some(&ending.reason)));
            // Conductor schedules the DO_WHILE before its loop's tasks: it lists first.
            self.records.push(done);
            self.records.extend(lp.records);
            self.state = State::Done(Some(ending));
            return;
        }
        let more_items = lp.items.as_ref().map(|items| (n as usize) < items.len());
        let condition = task
            .loop_condition
            .as_deref()
            .filter(|c| !c.trim().is_empty());
        let Some(condition) = condition else {
            // Without a loopCondition: the items decide, else the loop ran once.
            self.after_condition(lp, context, more_items.unwrap_or(false));
            return;
        };
        // DoWhile.evaluateCondition: its input, its own output by its reference, each
        // loop task's latest output by its reference; loopIndex and loopItem with items.
        let mut input = match &lp.input {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        input.insert(
            task.task_reference_name.clone(),
            Value::Object(lp.output.clone()),
        );
        for r in &lp.records {
            if let Some((base, _)) = r.reference.rsplit_once("__") {
                input.insert(base.to_string(), r.output.clone());
            }
        }
        if let Some(items) = &lp.items {
            let index = (n - 1) as usize;
            input.insert("loopIndex".into(), json!(index));
            if let Some(item) = items.get(index) {
                input.insert("loopItem".into(), item.clone());
            }
        }
        let (id, _) = scope.ids();
        scope.ready.push(ReadyTask {
            id,
            branch: Vec::new(),
            task_id: lp.task_id.clone(),
            reference: format!("{}{}__{n}", scope.prefix, task.task_reference_name),
            def: task.effective_def(scope.task_defs),
            component: JAVASCRIPT.to_string(),
            input: json!({ "script": condition, "input": Value::Object(input) }),
            wait: None,
        });
        self.state = State::LoopCondition {
            id,
            lp,
            context,
            more_items,
        };
    }

    /// The DO_WHILE `tasks[next - 1]`'s condition gave `go_on`: another iteration, or
    /// the loop is done.
    fn after_condition(&mut self, lp: Box<Loop>, context: Context, go_on: bool) {
        if go_on {
            self.start_iteration(lp, context);
            return;
        }
        let task = &self.tasks[self.next - 1];
        let done = record(
            task,
            "DO_WHILE",
            lp.task_id,
            TaskStatus::Completed,
            lp.input,
            Value::Object(lp.output),
        );
        let optional = Tolerance::of(task);
        self.context = context;
        // The DO_WHILE lists before its loop's tasks, as Conductor schedules it.
        self.push(done, None, optional);
        self.records.extend(lp.records);
    }

    /// The DO_WHILE `tasks[next - 1]` failed with `reason`.
    fn loop_failed(&mut self, lp: Box<Loop>, context: Context, status: TaskStatus, reason: String) {
        let task = &self.tasks[self.next - 1];
        let reason = format!("task {}: {reason}", task.task_reference_name);
        let done = record(
            task,
            "DO_WHILE",
            lp.task_id,
            status,
            lp.input,
            Value::Object(lp.output),
        );
        let optional = Tolerance::of(task);
        self.context = context;
        self.push(done, Some(reason), optional);
        self.records.extend(lp.records);
    }

    /// The SWITCH or DECISION (`tasks[next - 1]`) picked `chosen`: record it and run the
    /// case.
    fn switch_to(&mut self, input: Value, chosen: String, task_id: String) {
        let task = &self.tasks[self.next - 1];
        match switch_record(task, input, chosen, task_id) {
            Err(failure) => self.state = State::Done(Some(Ending::failed(failure))),
            Ok((switch, list)) => {
                self.context
                    .insert(switch.reference.clone(), entry(&switch, None));
                self.records.push(switch);
                let context = std::mem::take(&mut self.context);
                let mut case = Frame::new(list, context);
                case.iteration = self.iteration;
                self.state = State::Switched {
                    case: Box::new(case),
                };
            }
        }
    }

    /// Complete the running task `id` if it is in this frame or below; whether it was.
    fn complete(&mut self, id: TaskId, result: TaskResult) -> Option<TaskResult> {
        match &mut self.state {
            State::Choosing { id: running, .. } if *running == id => {
                let State::Choosing { task_id, input, .. } =
                    std::mem::replace(&mut self.state, State::Ready)
                else {
                    unreachable!("matched Choosing above");
                };
                if result.status == TaskStatus::Completed {
                    // SwitchTaskMapper: `"" + result`, as Java writes it.
                    let value = result.output.get("result").unwrap_or(&Value::Null);
                    let chosen = expression::java_string(value, false);
                    self.switch_to(input, chosen, task_id);
                    return None;
                }
                let task = &self.tasks[self.next - 1];
                let kind = task.kind().map_or("SWITCH", TaskKind::as_str);
                let failed = record(task, kind, task_id, TaskStatus::Failed, input, json!({}));
                let reason = format!(
                    "task {}: {}",
                    task.task_reference_name,
                    result.failure.unwrap_or_default()
                );
                self.push(failed, Some(reason), Tolerance::default());
                None
            }
            State::Running { id: running, .. } if *running == id => {
                let State::Running {
                    task_id,
                    task_type,
                    input,
                    ..
                } = std::mem::replace(&mut self.state, State::Ready)
                else {
                    unreachable!("matched Running above");
                };
                let task = &self.tasks[self.next - 1];
                let mut output = result.output;
                let mut status = result.status;
                // Conductor's Inline, Lambda and JsonJqTransform: a failed script's or
                // query's message in `error`; a failed query is FAILED (its ad-hoc
                // definition has no retries, so it is not run again).
                let kind = task.kind();
                if matches!(
                    kind,
                    Ok(TaskKind::Inline | TaskKind::Lambda | TaskKind::JsonJqTransform)
                ) && let Some(failure) = result.failure.as_deref()
                    && output.as_object().is_none_or(serde_json::Map::is_empty)
                {
                    output = json!({ "error": failure });
                    if kind == Ok(TaskKind::JsonJqTransform)
                        && status == TaskStatus::FailedWithTerminalError
                    {
                        status = TaskStatus::Failed;
                    }
                }
                let mut done = record(task, &task_type, task_id, status, input, output);
                done.attempts = result.attempts;
                let optional = Tolerance::of(task);
                self.push(done, result.failure, optional);
                None
            }
            State::Forked {
                branches,
                started,
                settled,
                ..
            } => {
                let mut result = Some(result);
                for branch in &mut branches[*settled..*started] {
                    match result.take() {
                        Some(r) => result = branch.complete(id, r),
                        None => break,
                    }
                }
                result
            }
            State::Switched { case } => case.complete(id, result),
            State::Looping { body, .. } => body.complete(id, result),
            State::LoopCondition { id: running, .. } if *running == id => {
                let State::LoopCondition {
                    lp,
                    context,
                    more_items,
                    ..
                } = std::mem::replace(&mut self.state, State::Ready)
                else {
                    unreachable!("matched LoopCondition above");
                };
                if result.status == TaskStatus::Completed {
                    let holds = to_boolean(result.output.get("result").unwrap_or(&Value::Null));
                    self.after_condition(lp, context, holds && more_items.unwrap_or(true));
                } else {
                    let task = &self.tasks[self.next - 1];
                    let reason = format!(
                        "Unable to evaluate condition {}, exception {}",
                        task.loop_condition.as_deref().unwrap_or_default(),
                        result.failure.unwrap_or_default()
                    );
                    self.loop_failed(lp, context, TaskStatus::FailedWithTerminalError, reason);
                }
                None
            }
            State::SubWorkflow { child, .. } => child.root.complete(id, result),
            _ => Some(result),
        }
    }
}

/// Conductor's `Terminate`: `terminationStatus` `COMPLETED`, `FAILED` or `TERMINATED`
/// (anything else fails the task: "given termination status is not valid"); its output
/// is `workflowOutput` (an object as it is, any other value under `output`), which
/// becomes the workflow's output; the reason is `terminationReason`, or Conductor's
/// "Workflow is STATUS by TERMINATE task: ID".
fn terminate(
    task: &WorkflowTask,
    task_id: String,
    input: Value,
    scope: &mut Scope<'_>,
) -> (TaskRecord, Option<String>) {
    let status = match input.get("terminationStatus").and_then(Value::as_str) {
        Some("COMPLETED") => WorkflowStatus::Completed,
        Some("FAILED") => WorkflowStatus::Failed,
        Some("TERMINATED") => WorkflowStatus::Terminated,
        _ => {
            let failed = record(
                task,
                "TERMINATE",
                task_id,
                TaskStatus::Failed,
                input,
                json!({}),
            );
            let reason = format!(
                "task {}: given termination status is not valid (terminationStatus must be COMPLETED, FAILED or TERMINATED)",
                task.task_reference_name
            );
            return (failed, Some(reason));
        }
    };
    let output = match input.get("workflowOutput") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(other) => json!({ "output": other }),
    };
    let reason = match input.get("terminationReason").and_then(Value::as_str) {
        Some(reason) if !reason.trim().is_empty() => reason.to_string(),
        _ => format!(
            "Workflow is {} by TERMINATE task: {task_id}",
            status.as_str()
        ),
    };
    let done = record(
        task,
        "TERMINATE",
        task_id,
        TaskStatus::Completed,
        input,
        output.clone(),
    );
    *scope.terminated = Some((Ending { status, reason }, output));
    (done, None)
}

/// The shipped component that runs JavaScript.
pub const JAVASCRIPT: &str = "javascript";

/// The most iterations one DO_WHILE may run: a condition that never turns false fails
/// the loop here instead of running without end.
pub const MAX_LOOP_ITERATIONS: u32 = 10_000;

/// `ref` for `ref__N`, the reference of a task in iteration `n` of a loop.
fn loop_base(reference: &str, n: u32) -> Option<&str> {
    reference.strip_suffix(&format!("__{n}"))
}

/// Conductor's `ScriptEvaluator.toBoolean`: a boolean, or a number above 0.
fn to_boolean(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
        _ => false,
    }
}

/// A DO_WHILE's list, as `DoWhile.evaluateItemsList` reads it: `items` (an expression
/// resolved as a task input), else the input's `_items` (Orkes); a list as it is, one
/// other value as a list of it, null as none. `None`: it loops by `loopCondition`.
fn loop_items(
    task: &WorkflowTask,
    input: &Value,
    context: &Context,
    task_id: &str,
) -> Result<Option<Vec<Value>>, String> {
    let value = match &task.items {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(
            expression::resolve_for_task(&Value::String(text.clone()), context, Some(task_id))
                .map_err(|e| format!("items: {e}"))?,
        ),
        Some(Value::String(_)) | Some(Value::Null) | None => None,
        Some(other) => Some(other.clone()),
    };
    let value = match value {
        Some(value) => Some(value),
        None => match task.input_parameters.get("_items") {
            Some(Value::String(t)) if t.trim().is_empty() => None,
            Some(Value::Null) | None => None,
            Some(_) => Some(input.get("_items").cloned().unwrap_or(Value::Null)),
        },
    };
    Ok(value.map(|value| match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }))
}

/// What an INLINE or LAMBDA evaluates.
enum Script {
    /// JavaScript, for the `javascript` component.
    JavaScript(String),
    /// A `value-param` INLINE's value, found at once.
    Value(Value),
}

/// An INLINE's or LAMBDA's script, as Conductor's `Inline` and `Lambda` read their
/// input: INLINE's `evaluatorType` (default `javascript`; `graaljs` the same;
/// `value-param` the input named by `expression`) and `expression`; LAMBDA's
/// `scriptExpression`, run as the body of a function (`function scriptFun(){…}
/// scriptFun();`). The error is the status and Conductor's reason.
fn script_of(kind: TaskKind, input: &Value) -> Result<Script, (TaskStatus, String)> {
    let text = |key: &str| {
        input
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
    };
    if kind == TaskKind::Lambda {
        return text("scriptExpression")
            .map(|body| Script::JavaScript(format!("function scriptFun(){{{body}}} scriptFun();")))
            .ok_or((
                TaskStatus::Failed,
                "Empty 'scriptExpression' in Lambda task's input parameters. A non-empty String value must be provided.".into(),
            ));
    }
    let terminal = |reason: String| (TaskStatus::FailedWithTerminalError, reason);
    let evaluator = match input.get("evaluatorType") {
        None | Some(Value::Null) => "javascript",
        Some(value) => value.as_str().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            terminal("Empty 'evaluatorType' in INLINE task's input parameters. A non-empty String value must be provided.".into())
        })?,
    };
    let expression = text("expression").ok_or_else(|| {
        terminal("Empty 'expression' in Inline task's input parameters. A non-empty String value must be provided.".into())
    })?;
    match evaluator {
        "javascript" | "graaljs" => Ok(Script::JavaScript(expression.to_string())),
        // Conductor's ValueParamEvaluator: the input parameter named by `expression`.
        "value-param" => Ok(Script::Value(
            input.get(expression).cloned().unwrap_or(Value::Null),
        )),
        other => Err(terminal(format!(
            "Unknown evaluator '{other}' in INLINE task."
        ))),
    }
}

/// A WAIT's wait, as Conductor's `WaitTaskMapper` reads its input: `duration`
/// (`DateTimeUtils.parseDuration`: `2 days 3h 10m 5s`, units `d`/`day(s)`, `h`/`hr(s)`/
/// `hour(s)`, `m`/`min(s)`/`minute(s)`, `s`/`sec(s)`/`second(s)`), or `until`
/// (`yyyy-MM-dd HH:mm`, `yyyy-MM-dd HH:mm z`, `yyyy-MM-dd`; without a zone, UTC); not
/// both. Without either, a WAIT waits for an external update: that needs a Conductor
/// server, or a mock.
pub(crate) fn wait_of(input: &Value) -> Result<Wait, String> {
    let text = |key: &str| match input.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => Some(expression::java_string(value, false)).filter(|t| !t.trim().is_empty()),
    };
    match (text("duration"), text("until")) {
        (Some(_), Some(_)) => Err("Both 'duration' and 'until' specified. Please provide only one input".into()),
        (Some(duration), None) => parse_duration(&duration)
            .map(|s| Wait::For(s.saturating_mul(1000)))
            .ok_or_else(|| format!("Not valid duration: {duration}")),
        (None, Some(until)) => parse_until(&until)
            .map(Wait::Until)
            .ok_or_else(|| format!("Invalid/Unsupported Wait Until format.  Provided: {until}")),
        (None, None) => Err("a WAIT without duration or until waits for an external update, which needs a Conductor server: give its output with --mock-outputs".into()),
    }
}

/// Conductor's `DURATION_PATTERN`: optional days, hours, minutes, seconds, in that
/// order, each a number and a unit; seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let units: [(&[&str], u64); 4] = [
        (&["days", "day", "d"], 86_400),
        (&["hours", "hour", "hrs", "hr", "h"], 3_600),
        (&["minutes", "minute", "mins", "min", "m"], 60),
        (&["seconds", "second", "secs", "sec", "s"], 1),
    ];
    let mut rest = text.trim().to_ascii_lowercase();
    let mut total: u64 = 0;
    for (names, seconds) in units {
        let trimmed = rest.trim_start();
        let digits: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            continue;
        }
        let after = trimmed[digits.len()..].trim_start();
        let Some(name) = names.iter().find(|n| {
            after.starts_with(**n)
                && !after[n.len()..].starts_with(|c: char| c.is_ascii_alphabetic())
        }) else {
            continue;
        };
        total = total.saturating_add(digits.parse::<u64>().ok()?.saturating_mul(seconds));
        rest = after[name.len()..].to_string();
    }
    rest.trim().is_empty().then_some(total)
}

/// `until` as Conductor's `DateTimeUtils.parseDate` reads it (`yyyy-MM-dd HH:mm`,
/// `yyyy-MM-dd HH:mm z`, `yyyy-MM-dd`), as milliseconds since the epoch. Without a zone
/// the time is UTC (a Conductor server's is its JVM's zone, UTC in its images); the zone
/// is `UTC`, `GMT`, `Z` or an offset (`+05:30`, `GMT-08:00`).
fn parse_until(text: &str) -> Option<u64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let text = text.trim();
    let utc = |at: NaiveDateTime| u64::try_from(at.and_utc().timestamp_millis()).ok();
    if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M") {
        return utc(at);
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return utc(day.and_hms_opt(0, 0, 0)?);
    }
    let (at, zone) = text.rsplit_once(char::is_whitespace)?;
    let offset = zone.trim_start_matches("GMT").trim_start_matches("UTC");
    if offset.is_empty() || zone == "Z" {
        return utc(NaiveDateTime::parse_from_str(at.trim(), "%Y-%m-%d %H:%M").ok()?);
    }
    let at =
        DateTime::parse_from_str(&format!("{} {offset}", at.trim()), "%Y-%m-%d %H:%M %#z").ok()?;
    u64::try_from(at.timestamp_millis()).ok()
}

/// The tasks a FORK_JOIN_DYNAMIC forks, as Conductor's `ForkJoinDynamicTaskMapper` makes
/// them from its resolved `input`:
/// - `forkTaskInputs` (a list): one task per item, `forkTaskName` (default: the system
///   `forkTaskType`, else the fork's reference) of `forkTaskType` (default SIMPLE), or a
///   SUB_WORKFLOW of `forkTaskWorkflow` / `forkTaskWorkflowVersion`; its input the item
///   (an object, else `{"input": item}`) with `__index`; its reference `_NAME_i` (after
///   the first dynamic fork of the run, `_FORKREF_NAME_i`); optional when the fork is;
/// - otherwise `dynamicForkTasksParam` names the list of tasks and
///   `dynamicForkTasksInputParamName` the map of their inputs by reference;
/// - otherwise (the legacy form, `getDynamicForkJoinTasksAndInput`)
///   `dynamicForkJoinTasksParam` names `{"dynamicTasks": [...]}`, each with `taskName`,
///   `referenceName`, `type` (default SIMPLE) and its `input`.
fn dynamic_fork_tasks(
    task: &WorkflowTask,
    input: &Value,
    nested: bool,
) -> Result<Vec<WorkflowTask>, String> {
    if let Some(items) = input.get("forkTaskInputs").and_then(Value::as_array) {
        let text = |key: &str| input.get(key).and_then(Value::as_str).map(String::from);
        let workflow = text("forkTaskWorkflow");
        let version = match input.get("forkTaskWorkflowVersion") {
            Some(Value::String(v)) => v.trim().parse::<u32>().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
            _ => None,
        };
        let kind = text("forkTaskType");
        let is_system = kind.as_deref().is_some_and(|k| k != "SIMPLE");
        let name = text("forkTaskName")
            .or_else(|| kind.clone().filter(|_| is_system))
            .unwrap_or_else(|| task.task_reference_name.clone());
        let kind = kind.unwrap_or_else(|| "SIMPLE".into());
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut parameters = match item {
                    Value::Object(map) => map.clone(),
                    other => Map::from_iter([("input".to_string(), other.clone())]),
                };
                parameters.insert("__index".into(), i.into());
                let reference = if nested {
                    format!("_{}_{name}_{i}", task.task_reference_name)
                } else {
                    format!("_{name}_{i}")
                };
                let generated = match &workflow {
                    Some(workflow) => json!({
                        "name": workflow, "taskReferenceName": reference, "type": "SUB_WORKFLOW",
                        "subWorkflowParam": { "name": workflow, "version": version },
                        "inputParameters": parameters, "optional": task.optional,
                    }),
                    None => json!({
                        "name": name, "taskReferenceName": reference, "type": kind,
                        "inputParameters": parameters, "optional": task.optional,
                    }),
                };
                serde_json::from_value(generated).map_err(|e| format!("forkTaskInputs[{i}]: {e}"))
            })
            .collect();
    }
    if task.dynamic_fork_tasks_param.is_none()
        && let Some(param) = &task.dynamic_fork_join_tasks_param
    {
        return legacy_dynamic_fork_tasks(param, input);
    }
    let tasks_param = task.dynamic_fork_tasks_param.clone().unwrap_or_default();
    let listed = input.get(&tasks_param).cloned().unwrap_or(Value::Null);
    let invalid = || {
        format!(
            "Input '{tasks_param}' is invalid. Cannot deserialize a list of Workflow Tasks from '{}'",
            expression::java_string(&listed, false)
        )
    };
    let mut tasks: Vec<WorkflowTask> =
        serde_json::from_value(listed.clone()).map_err(|_| invalid())?;
    let inputs_param = task
        .dynamic_fork_tasks_input_param_name
        .clone()
        .unwrap_or_default();
    let Some(Value::Object(inputs)) = input.get(&inputs_param) else {
        return Err(format!(
            "Input to the dynamically forked tasks is not a map -> expecting a map of K,V  but found {}",
            expression::java_string(input.get(&inputs_param).unwrap_or(&Value::Null), false)
        ));
    };
    for forked in &mut tasks {
        if let Some(Value::Object(given)) = inputs.get(&forked.task_reference_name) {
            for (key, value) in given {
                forked.input_parameters.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(tasks)
}

/// One task of Conductor's legacy `DynamicForkJoinTaskList`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DynamicForkJoinTask {
    task_name: Option<String>,
    reference_name: Option<String>,
    #[serde(default)]
    input: Map<String, Value>,
    #[serde(rename = "type", default = "simple")]
    kind: String,
}

fn simple() -> String {
    "SIMPLE".into()
}

/// The legacy form's tasks: `input[param]` is `{"dynamicTasks": [...]}`, as Conductor's
/// `DynamicForkJoinTaskList` reads it; each becomes a task named `taskName`, referenced
/// `referenceName`, of `type`, with `input` as its input.
fn legacy_dynamic_fork_tasks(param: &str, input: &Value) -> Result<Vec<WorkflowTask>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DynamicForkJoinTaskList {
        #[serde(default)]
        dynamic_tasks: Vec<DynamicForkJoinTask>,
    }
    let value = input.get(param).cloned().unwrap_or(Value::Null);
    if value.is_null() {
        return Err(format!(
            "Dynamic tasks could not be created. The value of {param} from task's input {} has no dynamic tasks to be scheduled",
            expression::java_string(input, false)
        ));
    }
    let list: DynamicForkJoinTaskList = serde_json::from_value(value.clone()).map_err(|_| {
        format!(
            "Input '{param}' is invalid. Cannot deserialize a DynamicForkJoinTaskList from '{}'",
            expression::java_string(&value, false)
        )
    })?;
    list.dynamic_tasks
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let generated = json!({
                "name": task.task_name,
                "taskReferenceName": task.reference_name,
                "type": task.kind,
                "inputParameters": task.input,
            });
            serde_json::from_value(generated).map_err(|e| format!("{param}.dynamicTasks[{i}]: {e}"))
        })
        .collect()
}

/// Start a SUB_WORKFLOW's workflow, as Conductor's `SubWorkflowTaskMapper` and
/// `SubWorkflow.start` do: the inline `workflowDefinition`, else `name` at `version` (none:
/// its latest) from the definitions; its input is the task's input; its id derives from
/// the task's, so a replay gives the same; the mocks under `subWorkflowTestRequest` for
/// this task answer its tasks. Returns the sub-workflow and the task's input record.
fn start_sub_workflow(
    task: &WorkflowTask,
    task_id: &str,
    input: Value,
    scope: &Scope<'_>,
) -> Result<(Interpreter, Value), String> {
    let params = task
        .sub_workflow_param
        .as_ref()
        .ok_or("a SUB_WORKFLOW needs subWorkflowParam (name, version or workflowDefinition)")?;
    let definition: Arc<WorkflowDef> = match &params.workflow_definition {
        Some(inline) => Arc::new(
            serde_json::from_value(inline.clone())
                .map_err(|e| format!("subWorkflowParam.workflowDefinition: {e}"))?,
        ),
        None => scope
            .definitions
            .get(&params.name, params.version)
            .ok_or_else(|| {
                format!(
                    "no workflow `{}`{} among the definitions (--definitions DIR)",
                    params.name,
                    params
                        .version
                        .map(|v| format!(" version {v}"))
                        .unwrap_or_default()
                )
            })?,
    };
    let id = uuid_from(hash_of(task_id, 0));
    let mocks = scope
        .mocks
        .sub_workflows
        .get(&task.task_reference_name)
        .cloned()
        .unwrap_or_default();
    let recorded = json!({
        "subWorkflowName": definition.name,
        "subWorkflowVersion": definition.version.unwrap_or(1),
        "workflowInput": input,
    });
    let options = RunOptions {
        workflow_id: id,
        correlation_id: scope.correlation_id.map(String::from),
        mocks,
        definitions: scope.definitions.clone(),
        without_sub_workflow_timeouts: scope.without_sub_timeouts,
        forks_wait_for_every_branch: scope.forks_wait,
        without_sub_workflow_failure_workflows: scope.without_sub_failures,
        every_branch_at_once: scope.every_branch,
        dynamic_names_are_workers: scope.dynamic_workers,
        permissive_ignored: scope.permissive_ignored,
    };
    let mut child = Interpreter::new(definition, input, options);
    child.prefix = format!("{}{}/", scope.prefix, task.task_reference_name);
    // A sub-workflow is a workflow of its own in Conductor: its definition's timeout
    // counts from when it starts.
    child.now_ms = scope.now_ms;
    child.started_ms = scope.now_ms;
    Ok((child, recorded))
}

/// A fork's own record, `COMPLETED` as Conductor completes it when it schedules the
/// branches: a FORK_JOIN, or for a dynamic fork a FORK with `forkedTasks` in its input,
/// and the references the JOIN after it joins on.
fn fork_record(
    task: &WorkflowTask,
    task_id: String,
    dynamic: Option<(Value, Vec<String>)>,
) -> (TaskRecord, Option<Vec<String>>) {
    match dynamic {
        Some((mut input, refs)) => {
            if let Value::Object(map) = &mut input {
                map.insert("forkedTasks".into(), json!(refs));
            }
            let fork = record(
                task,
                "FORK",
                task_id,
                TaskStatus::Completed,
                input,
                json!({}),
            );
            (fork, Some(refs))
        }
        None => {
            let fork = record(
                task,
                "FORK_JOIN",
                task_id,
                TaskStatus::Completed,
                json!({}),
                json!({}),
            );
            (fork, None)
        }
    }
}

/// A DO_WHILE's record when the run ended during it: `CANCELED`, its output so far.
/// `task` and the tasks inside it without `permissive`.
fn without_permissive(task: &mut WorkflowTask) {
    task.permissive = false;
    let inner = task
        .fork_tasks
        .iter_mut()
        .flatten()
        .chain(task.default_case.iter_mut())
        .chain(task.loop_over.iter_mut());
    inner.for_each(without_permissive);
    for case in task.decision_cases.values_mut() {
        strip_permissive(case);
    }
}

/// Leave `permissive` out of every task in `value` (a definition, a SWITCH's cases, as
/// JSON), as runs that ignored it read them.
pub fn strip_permissive(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("taskReferenceName") {
                map.remove("permissive");
            }
            map.values_mut().for_each(strip_permissive);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_permissive),
        _ => {}
    }
}

/// What a task's failure does not end: its `optional` and `permissive`.
#[derive(Debug, Clone, Copy, Default)]
struct Tolerance {
    optional: bool,
    permissive: bool,
}

impl Tolerance {
    fn of(task: &WorkflowTask) -> Tolerance {
        Tolerance {
            optional: task.optional,
            permissive: task.permissive,
        }
    }
}

/// The record of a task canceled by the run: `CANCELED`, no output, one attempt whose
/// message says whether its request may have been sent.
fn canceled_record(
    task: &WorkflowTask,
    task_type: &str,
    task_id: String,
    input: Value,
    message: String,
) -> TaskRecord {
    let mut canceled = record(
        task,
        task_type,
        task_id,
        TaskStatus::Canceled,
        input,
        json!({}),
    );
    canceled.attempts.push(Attempt {
        number: 1,
        started_ms: 0,
        duration_ms: 0,
        status: TaskStatus::Canceled,
        kind: None,
        message: Some(message),
        wait_ms: None,
        wait_reason: None,
        paced: None,
    });
    canceled
}

fn canceled_loop(task: &WorkflowTask, lp: &Loop) -> TaskRecord {
    record(
        task,
        "DO_WHILE",
        lp.task_id.clone(),
        TaskStatus::Canceled,
        lp.input.clone(),
        Value::Object(lp.output.clone()),
    )
}

/// A finished SUB_WORKFLOW's record, as Conductor's `SubWorkflow.updateTaskStatus`
/// makes it: `COMPLETED`, `FAILED`, `TIMED_OUT`, or `CANCELED` for a `TERMINATED`
/// workflow; its output the workflow's output with `subWorkflowId`; a failure says
/// "Sub workflow NAME.VERSION/ID failure reason: …".
fn sub_workflow_record(
    task: &WorkflowTask,
    task_id: String,
    input: Value,
    result: WorkflowResult,
) -> (TaskRecord, Option<String>) {
    let status = match result.status {
        WorkflowStatus::Completed => TaskStatus::Completed,
        WorkflowStatus::Failed => TaskStatus::Failed,
        WorkflowStatus::TimedOut => TaskStatus::TimedOut,
        WorkflowStatus::Terminated => TaskStatus::Canceled,
    };
    let mut output = match &result.output {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    output.insert("subWorkflowId".into(), result.workflow_id.clone().into());
    let version = input["subWorkflowVersion"].as_u64().unwrap_or(1);
    let failure = (status != TaskStatus::Completed).then(|| {
        format!(
            "task {}: Sub workflow {}.{version}/{} failure reason: {}",
            task.task_reference_name,
            result.workflow,
            result.workflow_id,
            result.reason.clone().unwrap_or_default()
        )
    });
    let mut done = record(
        task,
        "SUB_WORKFLOW",
        task_id,
        status,
        input,
        Value::Object(output),
    );
    done.sub_workflow = Some(SubWorkflowRun::of(&result));
    (done, failure)
}

/// Conductor's limit on a workflow's variables (`maxWorkflowVariablesPayloadSizeThreshold`,
/// 256 KB by default).
const MAX_VARIABLES_BYTES: usize = 256 * 1024;

/// Conductor's `SetVariable`: each input key becomes `${workflow.variables.KEY}` for the
/// tasks that start after it. Variables past 256 KB fail the task
/// `FAILED_WITH_TERMINAL_ERROR`, the variables unchanged.
fn set_variable(
    task: &WorkflowTask,
    task_id: String,
    input: Value,
    scope: &mut Scope<'_>,
) -> (TaskRecord, Option<String>) {
    let mut workflow = (**scope.workflow).clone();
    if let (Some(variables), Value::Object(new)) = (
        workflow.get_mut("variables").and_then(Value::as_object_mut),
        &input,
    ) {
        for (key, value) in new {
            variables.insert(key.clone(), value.clone());
        }
    }
    let size = workflow["variables"].to_string().len();
    if size > MAX_VARIABLES_BYTES {
        let failed = record(
            task,
            "SET_VARIABLE",
            task_id,
            TaskStatus::FailedWithTerminalError,
            input,
            json!({}),
        );
        let reason = format!(
            "task {}: The variables payload size: {size} of workflow: {} is greater than the permissible limit: {} kilobytes",
            task.task_reference_name,
            scope.workflow_id,
            MAX_VARIABLES_BYTES / 1024
        );
        return (failed, Some(reason));
    }
    *scope.workflow = Arc::new(workflow);
    let done = record(
        task,
        "SET_VARIABLE",
        task_id,
        TaskStatus::Completed,
        input,
        json!({}),
    );
    (done, None)
}

/// A worker task's input as Conductor's `getTaskInputV2` makes it: the task definition's
/// `inputTemplate` fills keys the task leaves out, expressions are resolved, and a key
/// that resolved to null takes the template's value.
fn task_input(
    task: &WorkflowTask,
    def: &TaskDef,
    context: &Context,
    task_id: &str,
) -> Result<Value, expression::ExpressionError> {
    let mut parameters = task.input_parameters.clone();
    for (key, value) in &def.input_template {
        parameters
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    let resolved =
        expression::resolve_for_task(&Value::Object(parameters), context, Some(task_id))?;
    let Value::Object(mut resolved) = resolved else {
        return Ok(resolved);
    };
    for (key, value) in resolved.iter_mut() {
        if value.is_null()
            && let Some(template) = def.input_template.get(key)
        {
            *value = template.clone();
        }
    }
    Ok(Value::Object(resolved))
}

/// A mocked task's executions: one entry per attempt, retried (without waiting) under
/// the task definition's `retryCount` while an entry says `FAILED`.
fn mocked(mocks: &mut Mocks, reference: &str, def: &TaskDef) -> TaskResult {
    let retries = def.retry_count.min(crate::definition::MAX_RETRY_COUNT);
    let mut attempts = Vec::new();
    let mut number = 1;
    loop {
        let Some(mock) = mocks.take(reference) else {
            return TaskResult::terminal(format!("task {reference}: no mock left"));
        };
        attempts.push(Attempt {
            number,
            started_ms: 0,
            duration_ms: 0,
            status: mock.status,
            kind: None,
            message: Some("mocked (--mock-outputs)".into()),
            wait_ms: None,
            wait_reason: None,
            paced: None,
        });
        let failure = match mock.status {
            TaskStatus::Completed => None,
            status => Some(format!(
                "task {reference} failed: its mock says {}{}",
                status.as_str(),
                mock.output
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
        };
        if mock.status == TaskStatus::Failed && number <= retries {
            number += 1;
            continue;
        }
        return TaskResult {
            status: mock.status,
            attempts,
            output: mock.output,
            failure,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Conductor's `DateTimeUtils.parseDuration` accepts these (its `DURATION_PATTERN`).
    #[test]
    fn wait_durations_parse_as_conductor_parses_them() {
        for (text, seconds) in [
            ("30s", Some(30)),
            ("1m 30s", Some(90)),
            ("2 days 3h 10m 5s", Some(2 * 86_400 + 3 * 3_600 + 600 + 5)),
            ("1 day", Some(86_400)),
            ("5 MINUTES", Some(300)),
            ("2hrs 1min", Some(7_260)),
            ("  10 secs ", Some(10)),
            ("", Some(0)),
            ("5 ms", None),
            ("10s 1m", None),
            ("ten seconds", None),
            ("-5s", None),
        ] {
            assert_eq!(parse_duration(text), seconds, "{text:?}");
        }
    }

    /// `until` in the three patterns of `DateTimeUtils.parseDate`; UTC without a zone.
    #[test]
    fn wait_until_times_parse_in_conductors_three_patterns() {
        let day = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        for (text, ms) in [
            ("2026-12-01", Some(day)),
            ("2026-12-01 10:30", Some(day + 37_800_000)),
            ("2026-12-01 10:30 UTC", Some(day + 37_800_000)),
            ("2026-12-01 10:30 GMT", Some(day + 37_800_000)),
            ("2026-12-01 10:30 +01:00", Some(day + 34_200_000)),
            ("2026-12-01 10:30 GMT-08:00", Some(day + 66_600_000)),
            ("2026-12-01T10:30", None),
            ("2026-13-01", None),
            ("tomorrow", None),
        ] {
            assert_eq!(parse_until(text), ms, "{text:?}");
        }
    }

    /// A 5 MB input and a fork of 1,000 branches once passed 3 GB before any task ran:
    /// each branch must share the workflow input, not copy it.
    #[test]
    fn fork_branches_share_the_workflow_input_instead_of_copying_it() {
        let branch = |i: usize| {
            json!([{
                "name": "zuora-update-usage",
                "taskReferenceName": format!("t{i}"),
                "inputParameters": { "id": "${workflow.input.id}" },
            }])
        };
        let branches: Vec<Value> = (0..1000).map(branch).collect();
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "wide",
            "tasks": [{ "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": branches }],
        }))
        .unwrap();
        let input = json!({ "id": "x", "blob": "b".repeat(5 << 20) });
        let options = RunOptions {
            every_branch_at_once: true,
            ..RunOptions::fresh()
        };
        let mut interpreter = Interpreter::new(Arc::new(definition), input, options);
        let ready = interpreter.start();
        assert_eq!(ready.len(), 1000);
        assert_eq!(ready[999].input, json!({ "id": "x" }));
        let State::Forked { branches, .. } = &interpreter.root.state else {
            panic!("the fork is running");
        };
        let workflow = &interpreter.root.context["workflow"];
        for branch in branches {
            assert!(Arc::ptr_eq(&branch.context["workflow"], workflow));
        }
    }

    /// A static fork of `n` branches of one worker task each (`t0`, `t1`, …), then its
    /// JOIN on the first and the last; the workflow's output reads the last.
    fn wide_fork(n: usize) -> Arc<WorkflowDef> {
        Arc::new(serde_json::from_value(wide_fork_json(n)).unwrap())
    }

    fn wide_fork_json(n: usize) -> Value {
        let branches: Vec<Value> = (0..n)
            .map(|i| {
                json!([{
                    "name": "zuora-update-usage",
                    "taskReferenceName": format!("t{i}"),
                    "inputParameters": { "n": i },
                }])
            })
            .collect();
        json!({
            "name": "wide",
            "tasks": [
                { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": branches },
                { "name": "j", "taskReferenceName": "join", "type": "JOIN",
                  "joinOn": ["t0", format!("t{}", n - 1)] },
            ],
            "outputParameters": { "last": format!("${{t{}.output.n}}", n - 1) },
        })
    }

    /// A worker task's result: completed, its output its input's `n`.
    fn completed_as(task: &ReadyTask) -> TaskResult {
        TaskResult {
            status: TaskStatus::Completed,
            attempts: Vec::new(),
            output: json!({ "n": task.input["n"] }),
            failure: None,
        }
    }

    fn canceled_message(record: &TaskRecord) -> &str {
        assert_eq!(record.status, TaskStatus::Canceled, "{}", record.reference);
        record.attempts[0].message.as_deref().unwrap()
    }

    #[test]
    fn a_fork_keeps_at_most_branches_at_once_in_progress_and_starts_the_next_as_one_ends() {
        let mut interpreter = Interpreter::new(wide_fork(600), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        let refs: Vec<&str> = ready.iter().map(|t| t.reference.as_str()).collect();
        let first: Vec<String> = (0..BRANCHES_AT_ONCE).map(|i| format!("t{i}")).collect();
        assert_eq!(refs, first);
        assert_eq!(ready[511].branch, vec![511]);
        // A branch ending starts the next one not started, and only that one.
        let next = interpreter.complete(ready[5].id, completed_as(&ready[5]));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].reference, "t512");
        assert_eq!(next[0].branch, vec![512]);
        assert_eq!(next[0].input, json!({ "n": 512 }));
        let mut running: Vec<ReadyTask> =
            ready.into_iter().filter(|t| t.reference != "t5").collect();
        running.extend(next);
        while let Some(task) = running.pop() {
            running.extend(interpreter.complete(task.id, completed_as(&task)));
            assert!(running.len() <= BRANCHES_AT_ONCE);
        }
        assert!(interpreter.finished());
        let result = interpreter.result();
        assert_eq!(result.status, WorkflowStatus::Completed);
        let mut expected = vec!["fork".to_string()];
        expected.extend((0..600).map(|i| format!("t{i}")));
        expected.push("join".into());
        let recorded: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
        assert_eq!(recorded, expected);
        // What the finished branches kept is what the JOIN and the output read.
        assert_eq!(
            result.tasks[601].output,
            json!({ "t0": { "n": 0 }, "t599": { "n": 599 } })
        );
        assert_eq!(result.output, json!({ "last": 599 }));
    }

    #[test]
    fn a_failed_branch_cancels_the_branches_not_started_yet_as_never_sent() {
        let mut interpreter = Interpreter::new(wide_fork(600), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        let failed = TaskResult::terminal("t0 refused".into());
        assert!(interpreter.complete(ready[0].id, failed).is_empty());
        let stopped: HashSet<TaskId> = interpreter.take_stopped().into_iter().collect();
        let running: HashSet<TaskId> = ready[1..].iter().map(|t| t.id).collect();
        assert_eq!(stopped, running);
        assert!(interpreter.finished());
        let result = interpreter.result();
        assert_eq!(result.status, WorkflowStatus::Failed);
        let recorded: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
        let mut expected = vec!["fork".to_string()];
        expected.extend((0..600).map(|i| format!("t{i}")));
        assert_eq!(recorded, expected);
        assert_eq!(result.tasks[1].status, TaskStatus::FailedWithTerminalError);
        assert!(
            canceled_message(&result.tasks[2])
                .contains("while running: its request may have been sent")
        );
        assert!(canceled_message(&result.tasks[512]).contains("while running"));
        for unstarted in &result.tasks[513..] {
            assert_eq!(
                unstarted.input,
                json!({ "n": unstarted.reference[1..].parse::<u64>().unwrap() })
            );
            assert_eq!(
                canceled_message(unstarted),
                "canceled (t0 refused) before it started: nothing was sent"
            );
        }
    }

    /// In iteration 2 of a DO_WHILE, a task after a fork's JOIN that reads a branch task
    /// by its plain reference reads iteration 2's, as Conductor resolves a loop task's
    /// reference to its current iteration.
    #[test]
    fn after_a_join_in_a_loop_a_branch_task_reads_as_its_current_iteration() {
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "looped_fork",
            "tasks": [{
                "name": "each", "taskReferenceName": "each", "type": "DO_WHILE",
                "loopCondition": "$.each['iteration'] < 2",
                "loopOver": [
                    { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
                      "forkTasks": [[{ "name": "zuora-update-usage", "taskReferenceName": "t0" }]] },
                    { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["t0"] },
                    { "name": "zuora-update-usage", "taskReferenceName": "after",
                      "inputParameters": { "seen": "${t0.output.n}" } },
                ],
            }],
        }))
        .unwrap();
        let mut interpreter =
            Interpreter::new(Arc::new(definition), json!({}), RunOptions::fresh());
        let output = |n: u32| TaskResult {
            status: TaskStatus::Completed,
            attempts: Vec::new(),
            output: json!({ "n": n, "result": true }),
            failure: None,
        };
        let mut seen = Vec::new();
        let mut ready = interpreter.start();
        for n in [1, 2] {
            assert_eq!(ready[0].reference, format!("t0__{n}"));
            ready = interpreter.complete(ready[0].id, output(n));
            assert_eq!(ready[0].reference, format!("after__{n}"));
            seen.push(ready[0].input["seen"].clone());
            ready = interpreter.complete(ready[0].id, output(n));
            // The loop condition's script: go on once.
            assert_eq!(ready[0].component, JAVASCRIPT);
            let go_on = TaskResult {
                output: json!({ "result": n < 2 }),
                ..output(n)
            };
            ready = interpreter.complete(ready[0].id, go_on);
        }
        assert!(interpreter.finished());
        assert_eq!(seen, [json!(1), json!(2)]);
    }

    /// A permissive task failing in a DO_WHILE's iteration fails the loop at once, as
    /// Conductor's DoWhile does (no next task, no next iteration); an optional loop lets
    /// the workflow go on, which then fails at its end for the permissive task.
    #[test]
    fn a_failed_permissive_task_fails_its_loop_at_once() {
        let looped = |optional: bool| -> WorkflowDef {
            serde_json::from_value(json!({
                "name": "looped",
                "tasks": [
                    { "name": "each", "taskReferenceName": "each", "type": "DO_WHILE", "optional": optional,
                      "loopCondition": "$.each['iteration'] < 3",
                      "loopOver": [
                          { "name": "zuora-update-usage", "taskReferenceName": "t", "permissive": true },
                          { "name": "zuora-update-usage", "taskReferenceName": "u" },
                      ] },
                    { "name": "zuora-update-usage", "taskReferenceName": "after" },
                ],
            }))
            .unwrap()
        };
        let mut interpreter =
            Interpreter::new(Arc::new(looped(false)), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        assert_eq!(ready[0].reference, "t__1");
        let failed = TaskResult::terminal("t refused".into());
        assert!(interpreter.complete(ready[0].id, failed.clone()).is_empty());
        let result = interpreter.result();
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(result.reason.as_deref(), Some("t refused"));
        let statuses: Vec<(&str, TaskStatus)> = result
            .tasks
            .iter()
            .map(|t| (t.reference.as_str(), t.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("each", TaskStatus::Failed),
                ("t__1", TaskStatus::FailedWithTerminalError)
            ]
        );

        let mut interpreter =
            Interpreter::new(Arc::new(looped(true)), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        let next = interpreter.complete(ready[0].id, failed);
        assert_eq!(next[0].reference, "after");
        assert!(
            interpreter
                .complete(
                    next[0].id,
                    TaskResult {
                        status: TaskStatus::Completed,
                        attempts: Vec::new(),
                        output: json!({}),
                        failure: None,
                    }
                )
                .is_empty()
        );
        let result = interpreter.result();
        assert_eq!(result.tasks[0].status, TaskStatus::CompletedWithErrors);
        assert_eq!(result.status, WorkflowStatus::Failed);
        let t = &result.tasks[1];
        assert_eq!(
            result.reason,
            Some(format!(
                "Task {} failed with status: FAILED_WITH_TERMINAL_ERROR and reason: 't refused'",
                t.task_id
            ))
        );
    }

    /// A Temporal run started before `permissive` held makes its dynamic fork's tasks
    /// without it, as it made them: the failed task fails the fork at once (no JOIN),
    /// where a newer run's JOIN fails once the branch ended.
    #[test]
    fn a_run_that_ignored_permissive_makes_its_dynamic_fork_tasks_without_it() {
        let definition: Arc<WorkflowDef> = Arc::new(
            serde_json::from_value(json!({
                "name": "dynamic",
                "tasks": [
                    { "name": "dyn", "taskReferenceName": "dyn", "type": "FORK_JOIN_DYNAMIC",
                      "dynamicForkTasksParam": "tasks", "dynamicForkTasksInputParamName": "inputs",
                      "inputParameters": { "tasks": "${workflow.input.tasks}", "inputs": "${workflow.input.inputs}" } },
                    { "name": "j", "taskReferenceName": "join", "type": "JOIN" },
                ],
            }))
            .unwrap(),
        );
        let input = json!({
            "tasks": [{ "name": "zuora-update-usage", "taskReferenceName": "p", "permissive": true }],
            "inputs": { "p": {} },
        });
        let run = |permissive_ignored: bool| {
            let options = RunOptions {
                permissive_ignored,
                ..RunOptions::fresh()
            };
            let mut interpreter = Interpreter::new(definition.clone(), input.clone(), options);
            let ready = interpreter.start();
            assert_eq!(ready[0].reference, "p");
            interpreter.complete(ready[0].id, TaskResult::terminal("p refused".into()));
            let result = interpreter.result();
            assert_eq!(result.status, WorkflowStatus::Failed);
            assert_eq!(result.reason.as_deref(), Some("p refused"));
            result
                .tasks
                .iter()
                .map(|t| t.reference.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(true), ["dyn", "p"]);
        assert_eq!(run(false), ["dyn", "p", "join"]);
    }

    /// A TERMINATE after a failed permissive task, whatever its terminationStatus, ends
    /// the run failed for that task, as Conductor's decider has it.
    #[test]
    fn a_terminate_after_a_failed_permissive_task_fails_the_run_for_that_task() {
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "stop_after",
            "tasks": [
                { "name": "zuora-update-usage", "taskReferenceName": "t", "permissive": true },
                { "name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
                  "inputParameters": { "terminationStatus": "TERMINATED", "terminationReason": "stopped" } },
            ],
        }))
        .unwrap();
        let mut interpreter =
            Interpreter::new(Arc::new(definition), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        assert!(
            interpreter
                .complete(ready[0].id, TaskResult::terminal("t refused".into()))
                .is_empty()
        );
        let result = interpreter.result();
        assert_eq!(result.tasks[1].reference, "stop");
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(
            result.reason,
            Some(format!(
                "Task {} failed with status: FAILED_WITH_TERMINAL_ERROR and reason: 't refused'",
                result.tasks[0].task_id
            ))
        );
    }

    /// A branch canceled before it started runs nothing: its TERMINATE neither ends the
    /// run its way nor gives the run its output.
    #[test]
    fn a_branch_canceled_before_it_started_runs_none_of_its_tasks() {
        let mut definition = wide_fork_json(600);
        definition["tasks"][0]["forkTasks"][599] = json!([{
            "name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
            "inputParameters": { "terminationStatus": "COMPLETED", "workflowOutput": { "stopped": true } },
        }]);
        definition["tasks"][1]["joinOn"] = json!(["t0"]);
        definition["outputParameters"] = json!({ "first": "${t0.output.n}" });
        let definition = Arc::new(serde_json::from_value(definition).unwrap());
        let mut interpreter = Interpreter::new(definition, json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        let failed = TaskResult::terminal("t0 refused".into());
        assert!(interpreter.complete(ready[0].id, failed).is_empty());
        let result = interpreter.result();
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(result.reason.as_deref(), Some("t0 refused"));
        assert_eq!(result.output, json!({ "first": null }));
        let stop = &result.tasks[600];
        assert_eq!(
            (stop.reference.as_str(), stop.task_type.as_str()),
            ("stop", "TERMINATE")
        );
        assert_eq!(
            canceled_message(stop),
            "canceled (t0 refused) before it started: nothing was sent"
        );
    }

    /// A SUB_WORKFLOW branch canceled before it started records its input as a started
    /// one does (the workflow it would run, and its input).
    #[test]
    fn a_sub_workflow_branch_canceled_before_it_started_records_the_workflow_it_would_run() {
        let mut definition = wide_fork_json(600);
        definition["tasks"][0]["forkTasks"][599] = json!([{
            "name": "sync_usage_record", "taskReferenceName": "sync", "type": "SUB_WORKFLOW",
            "inputParameters": { "quantity": 5 },
            "subWorkflowParam": { "name": "sync_usage_record", "workflowDefinition": {
                "name": "sync_usage_record", "version": 3,
                "tasks": [{ "name": "zuora-update-usage", "taskReferenceName": "put" }],
            } },
        }]);
        let definition = Arc::new(serde_json::from_value(definition).unwrap());
        let mut interpreter = Interpreter::new(definition, json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        interpreter.end(Ending::failed("Workflow timed out"));
        assert_eq!(ready.len(), BRANCHES_AT_ONCE);
        let result = interpreter.result();
        let sync = &result.tasks[600];
        assert_eq!(
            (sync.reference.as_str(), sync.task_type.as_str()),
            ("sync", "SUB_WORKFLOW")
        );
        assert_eq!(
            sync.input,
            json!({
                "subWorkflowName": "sync_usage_record",
                "subWorkflowVersion": 3,
                "workflowInput": { "quantity": 5 },
            })
        );
        assert!(sync.sub_workflow.is_none());
        assert_eq!(
            canceled_message(sync),
            "canceled (Workflow timed out) before it started: nothing was sent"
        );
    }

    /// Ending the run while a fork inside a fork has branches waiting: a task running in
    /// the outer fork's other branch is still told apart as running.
    #[test]
    fn a_run_ended_with_a_wide_inner_fork_stops_the_tasks_running_beside_it() {
        let inner = wide_fork_json(600);
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "nested",
            "tasks": [
                { "name": "outer", "taskReferenceName": "outer", "type": "FORK_JOIN",
                  "forkTasks": [inner["tasks"], [{ "name": "zuora-update-usage", "taskReferenceName": "w" }]] },
                { "name": "j", "taskReferenceName": "outer_join", "type": "JOIN", "joinOn": ["join", "w"] },
            ],
        }))
        .unwrap();
        let mut interpreter =
            Interpreter::new(Arc::new(definition), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        assert_eq!(ready.len(), BRANCHES_AT_ONCE + 1);
        assert_eq!(ready[BRANCHES_AT_ONCE].reference, "w");
        interpreter.end(Ending::failed("Workflow timed out"));
        let result = interpreter.result();
        let w = result.tasks.iter().find(|t| t.reference == "w").unwrap();
        assert!(canceled_message(w).contains("while running"));
        let waiting = result.tasks.iter().find(|t| t.reference == "t599").unwrap();
        assert!(canceled_message(waiting).contains("before it started"));
    }

    #[test]
    fn a_run_ended_while_branches_wait_to_start_records_them_canceled_before_they_started() {
        let mut interpreter = Interpreter::new(wide_fork(600), json!({}), RunOptions::fresh());
        let ready = interpreter.start();
        interpreter.end(Ending::failed("Workflow timed out"));
        let result = interpreter.result();
        assert_eq!(result.tasks.len(), 601);
        assert!(canceled_message(&result.tasks[512]).contains("while running"));
        assert_eq!(
            canceled_message(&result.tasks[513]),
            "canceled (Workflow timed out) before it started: nothing was sent"
        );
        // Each task keeps the id it was handed out with; the late ones get their own.
        let ids: HashSet<&str> = result.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids.len(), 601);
        assert_eq!(result.tasks[1].task_id, ready[0].task_id);
    }
}

//! The one workflow interpreter: the control flow of a definition (task order, FORK_JOIN
//! and JOIN, SWITCH, optional tasks, expressions) as a plain state machine, in the manner
//! of Conductor's decider. It never runs a task itself: it hands out the component tasks
//! that are ready, with their inputs resolved, and is told how each ended. [`drive`]
//! runs it with a [`TaskExecutor`]: the local runner (sandbox, the runner's retries) or
//! the Temporal `run-definition` workflow (an activity with its retry policy). Both get
//! the same semantics from the same code, and because the state machine is synchronous
//! and reads only the definition, the input and the tasks' results, it is deterministic,
//! as a Temporal workflow must be.

use crate::definition::{TaskDef, TaskKind, WorkflowDef, WorkflowTask};
use crate::expression::{self, Context};
use crate::record::{
    Attempt, TaskRecord, WorkflowResult, entry, evaluate_switch, finish, join_record, record,
};
use harness_runner::TaskStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// Identifies one component task handed out by the interpreter, until it is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(u64);

/// A component task ready to run: what an executor needs to run it.
#[derive(Debug, Clone)]
pub struct ReadyTask {
    /// Pass back to [`Interpreter::complete`].
    pub id: TaskId,
    /// The task's `taskReferenceName`.
    pub reference: String,
    /// The component task it runs (`HTTP` already mapped to `http`).
    pub component: String,
    /// Its input, every expression resolved.
    pub input: Value,
    /// Its task definition (retries, timeouts), Conductor's defaults when none is given.
    pub def: TaskDef,
}

/// How a component task ended, as its executor reports it.
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

/// Runs a component task of a workflow.
pub trait TaskExecutor {
    /// The running task; `Send` or not as the executor needs (a local run spawns its
    /// tasks on threads, a Temporal workflow runs on one).
    type Run: Future<Output = TaskResult>;
    /// Start running `task`.
    fn execute(&self, task: ReadyTask) -> Self::Run;
}

/// A definition being interpreted.
#[derive(Debug)]
pub struct Interpreter {
    definition: Arc<WorkflowDef>,
    task_defs: HashMap<String, TaskDef>,
    root: Frame,
    next_id: u64,
}

impl Interpreter {
    /// Start interpreting `definition` on the workflow `input`.
    pub fn new(definition: Arc<WorkflowDef>, input: Value) -> Interpreter {
        let task_defs = definition
            .task_definitions
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        let root = Frame::new(definition.tasks.clone(), initial_context(input));
        Interpreter {
            definition,
            task_defs,
            root,
            next_id: 0,
        }
    }

    /// Advance as far as possible: the component tasks that became ready (none when the
    /// workflow has finished or waits only on running tasks).
    pub fn start(&mut self) -> Vec<ReadyTask> {
        let mut ready = Vec::new();
        let mut scope = Scope {
            task_defs: &self.task_defs,
            next_id: &mut self.next_id,
            ready: &mut ready,
        };
        self.root.advance(&mut scope);
        ready
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

    /// The workflow's result: its `outputParameters` resolved when it completed. Called
    /// before it finished, the result is a failure saying so.
    pub fn result(self) -> WorkflowResult {
        let Frame {
            state,
            records,
            context,
            ..
        } = self.root;
        let failure = match state {
            State::Done(failure) => failure,
            _ => Some("the workflow stopped before its tasks finished".into()),
        };
        finish(&self.definition, records, &context, failure)
    }
}

/// Run `definition` on `input` with `executor`: the tasks that are ready run at once
/// (a FORK_JOIN's branches in parallel); each result advances the interpreter. Results
/// are taken in the order the tasks were started whenever several are ready at once,
/// so a replay sees the same order.
pub async fn drive<E: TaskExecutor>(
    executor: &E,
    definition: Arc<WorkflowDef>,
    input: Value,
) -> WorkflowResult {
    let mut interpreter = Interpreter::new(definition, input);
    let mut running: Vec<(TaskId, Pin<Box<E::Run>>)> = Vec::new();
    let mut ready = interpreter.start();
    loop {
        for task in ready.drain(..) {
            let id = task.id;
            running.push((id, Box::pin(executor.execute(task))));
        }
        if running.is_empty() {
            break;
        }
        let (id, result) = std::future::poll_fn(|cx| {
            for i in 0..running.len() {
                if let Poll::Ready(result) = running[i].1.as_mut().poll(cx) {
                    let (id, _) = running.remove(i);
                    return Poll::Ready((id, result));
                }
            }
            Poll::Pending
        })
        .await;
        ready = interpreter.complete(id, result);
    }
    interpreter.result()
}

/// The start of a run's context: `{"workflow": {"input": …}}`.
fn initial_context(input: Value) -> Context {
    let mut context = Context::new();
    context.insert("workflow".into(), Arc::new(json!({ "input": input })));
    context
}

/// What advancing needs besides the frame: task definitions, the id counter, and where
/// ready tasks go.
struct Scope<'a> {
    task_defs: &'a HashMap<String, TaskDef>,
    next_id: &'a mut u64,
    ready: &'a mut Vec<ReadyTask>,
}

/// A list of tasks run in order (the workflow's, a fork branch's, a switch case's),
/// with its own context and records.
#[derive(Debug)]
struct Frame {
    tasks: Vec<WorkflowTask>,
    next: usize,
    /// Shared entries: a fork's branches clone pointers, never the workflow input.
    context: Context,
    records: Vec<TaskRecord>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// The next task may start.
    Ready,
    /// A component task (`tasks[next - 1]`) is running.
    Running {
        id: TaskId,
        component: String,
        input: Value,
    },
    /// A FORK_JOIN (`tasks[next - 1]`) waits for its branches.
    Forked { branches: Vec<Frame> },
    /// A SWITCH runs its chosen case.
    Switched { case: Box<Frame> },
    /// The list finished: `Some` with the failure that stopped it.
    Done(Option<String>),
}

impl Frame {
    fn new(tasks: Vec<WorkflowTask>, context: Context) -> Frame {
        Frame {
            tasks,
            next: 0,
            context,
            records: Vec::new(),
            state: State::Ready,
        }
    }

    fn done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Record a finished task and its context entry; a failure stops the list unless
    /// the task is optional.
    fn push(&mut self, done: TaskRecord, failure: Option<String>, optional: bool) {
        self.context.insert(done.reference.clone(), entry(&done));
        self.records.push(done);
        self.state = match failure {
            Some(failure) if !optional => State::Done(Some(failure)),
            _ => State::Ready,
        };
    }

    fn advance(&mut self, scope: &mut Scope<'_>) {
        loop {
            match &mut self.state {
                State::Done(_) | State::Running { .. } => return,
                State::Forked { branches } => {
                    for branch in branches.iter_mut() {
                        branch.advance(scope);
                    }
                    if !branches.iter().all(Frame::done) {
                        return;
                    }
                    let branches = std::mem::take(branches);
                    self.join_branches(branches);
                }
                State::Switched { case } => {
                    case.advance(scope);
                    let State::Done(failure) = &case.state else {
                        return;
                    };
                    let failure = failure.clone();
                    let case =
                        std::mem::replace(case, Box::new(Frame::new(Vec::new(), Context::new())));
                    self.records.extend(case.records);
                    self.context = case.context;
                    self.state = match failure {
                        Some(failure) => State::Done(Some(failure)),
                        None => State::Ready,
                    };
                }
                State::Ready => self.start_next(scope),
            }
        }
    }

    /// A fork's branches are done: their records in branch order, their context entries
    /// (the first branch's wins), the first branch failure stops the list; else the
    /// FORK_JOIN's own record.
    fn join_branches(&mut self, branches: Vec<Frame>) {
        let mut failure = None;
        for branch in branches {
            self.records.extend(branch.records);
            for (key, value) in branch.context {
                self.context.entry(key).or_insert(value);
            }
            if let State::Done(Some(branch_failure)) = branch.state {
                failure = failure.or(Some(branch_failure));
            }
        }
        if let Some(failure) = failure {
            self.state = State::Done(Some(failure));
            return;
        }
        let task = &self.tasks[self.next - 1];
        let fork = record(
            task,
            "FORK_JOIN",
            TaskStatus::Completed,
            json!({}),
            json!({}),
        );
        self.push(fork, None, false);
    }

    fn start_next(&mut self, scope: &mut Scope<'_>) {
        let Some(task) = self.tasks.get(self.next) else {
            self.state = State::Done(None);
            return;
        };
        self.next += 1;
        let reference = task.task_reference_name.clone();
        let kind = match task.kind() {
            Ok(kind) => kind,
            Err(e) => {
                self.state = State::Done(Some(format!("{reference}: {e}")));
                return;
            }
        };
        match kind {
            TaskKind::Component => {
                let component = task.component().to_string();
                let input = match expression::resolve(
                    &Value::Object(task.input_parameters.clone()),
                    &self.context,
                ) {
                    Ok(input) => input,
                    Err(e) => {
                        let failed = record(
                            task,
                            &component,
                            TaskStatus::FailedWithTerminalError,
                            json!({}),
                            json!({}),
                        );
                        let optional = task.optional;
                        self.push(failed, Some(format!("task {reference}: {e}")), optional);
                        return;
                    }
                };
                let id = TaskId(*scope.next_id);
                *scope.next_id += 1;
                scope.ready.push(ReadyTask {
                    id,
                    reference,
                    // A definition named as the task is written (`HTTP`) or as the
                    // component it runs (`http`).
                    def: scope
                        .task_defs
                        .get(&task.name)
                        .or_else(|| scope.task_defs.get(&component))
                        .cloned()
                        .unwrap_or_default(),
                    component: component.clone(),
                    input: input.clone(),
                });
                self.state = State::Running {
                    id,
                    component,
                    input,
                };
            }
            TaskKind::Join => {
                let join = join_record(task, &self.context);
                let optional = task.optional;
                self.push(join, None, optional);
            }
            TaskKind::ForkJoin => {
                let branches = task
                    .fork_tasks
                    .iter()
                    .map(|branch| Frame::new(branch.clone(), self.context.clone()))
                    .collect();
                self.state = State::Forked { branches };
            }
            TaskKind::Switch => match evaluate_switch(task, &self.context) {
                Err(failure) => self.state = State::Done(Some(failure)),
                Ok((switch, list)) => {
                    self.context
                        .insert(switch.reference.clone(), entry(&switch));
                    self.records.push(switch);
                    let context = std::mem::take(&mut self.context);
                    self.state = State::Switched {
                        case: Box::new(Frame::new(list, context)),
                    };
                }
            },
        }
    }

    /// Complete the running task `id` if it is in this frame or below; whether it was.
    fn complete(&mut self, id: TaskId, result: TaskResult) -> Option<TaskResult> {
        match &mut self.state {
            State::Running { id: running, .. } if *running == id => {
                let State::Running {
                    component, input, ..
                } = std::mem::replace(&mut self.state, State::Ready)
                else {
                    unreachable!("matched Running above");
                };
                let task = &self.tasks[self.next - 1];
                let mut done = record(task, &component, result.status, input, result.output);
                done.attempts = result.attempts;
                let optional = task.optional;
                self.push(done, result.failure, optional);
                None
            }
            State::Forked { branches } => {
                let mut result = Some(result);
                for branch in branches.iter_mut() {
                    match result.take() {
                        Some(r) => result = branch.complete(id, r),
                        None => break,
                    }
                }
                result
            }
            State::Switched { case } => case.complete(id, result),
            _ => Some(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut interpreter = Interpreter::new(Arc::new(definition), input);
        let ready = interpreter.start();
        assert_eq!(ready.len(), 1000);
        assert_eq!(ready[999].input, json!({ "id": "x" }));
        let State::Forked { branches } = &interpreter.root.state else {
            panic!("the fork is running");
        };
        let workflow = &interpreter.root.context["workflow"];
        for branch in branches {
            assert!(Arc::ptr_eq(&branch.context["workflow"], workflow));
        }
    }
}

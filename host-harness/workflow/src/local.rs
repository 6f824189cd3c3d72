//! The local executor: a workflow's component tasks run in the sandbox, with
//! Conductor's retry settings applied by the runner's rules (a call that may have been
//! applied is never re-sent blindly), on a [`Clock`] tests can drive.

use crate::definition::{self, TaskDef, WorkflowDef};
use crate::expression;
use crate::interpreter::{self, ReadyTask, RunOptions, TaskExecutor, TaskResult};
use crate::record::{Attempt, WorkflowResult};
use harness_pacing::{TaskDefLimiter, TaskDefLimits};
use harness_runner::{self as runner, ErrorKind, TaskOutcome, TaskStatus};
use harness_sandbox::Sandbox;
use serde_json::Value;
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
    /// Milliseconds since the Unix epoch, now (a WAIT's `until`).
    fn epoch_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    /// Resolves at `at_ms` (a workflow's deadline).
    fn wake_at(&self, at_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.sleep(Duration::from_millis(at_ms.saturating_sub(self.now_ms())))
    }
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
    /// It starts at 2026-12-01T00:00:00Z.
    fn epoch_ms(&self) -> u64 {
        1_796_083_200_000 + self.now_ms()
    }
    /// Time moves only when something sleeps: a deadline not yet reached never wakes
    /// by itself (the interpreter checks it each time a task ends).
    fn wake_at(&self, at_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if self.now_ms() >= at_ms {
            Box::pin(async {})
        } else {
            Box::pin(std::future::pending())
        }
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
    credentials: Option<Arc<harness_config::Credentials>>,
    policy: harness_sandbox::policy::PolicyConfig,
    /// Per task definition with limits, its limiter, shared by the run's tasks.
    task_limits: Arc<std::sync::Mutex<HashMap<String, Arc<TaskDefLimiter>>>>,
    /// Set when the runner plans instead of sending ([`WorkflowRunner::planning`]): the
    /// plans so far, in the order the tasks were reached.
    plans: Option<Arc<Mutex<Vec<Value>>>>,
    /// Component tasks admitted at once: the instance pool's width. A task waits here,
    /// as its small ready state, before its run (a tokio task with the whole run's
    /// state) exists, so a fork of 10,000 branches holds at most the pool's width of
    /// runs, not 10,000 waiting for a slot.
    admission: Arc<Admission>,
}

/// Admits component tasks up to a width; those that wait are admitted lowest
/// [`ReadyTask::branch`] first, then in the order they came (a fork's earlier branches
/// before its later ones).
#[derive(Debug)]
struct Admission {
    state: Mutex<AdmissionState>,
}

#[derive(Debug)]
struct AdmissionState {
    free: usize,
    /// Places of runs that ended, for [`Admission::settle`] to hand on.
    deferred: usize,
    waiting: std::collections::BinaryHeap<std::cmp::Reverse<Waiting>>,
    next: u64,
}

/// A task waiting to be admitted; ordered by branch, then arrival.
#[derive(Debug)]
struct Waiting {
    branch: Vec<u32>,
    seq: u64,
    admit: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (&self.branch, self.seq) == (&other.branch, other.seq)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.branch, self.seq).cmp(&(&other.branch, other.seq))
    }
}

/// An admitted task's place. [`Admitted::finish`] (its run ended) sets it aside for
/// [`Admission::settle`]; dropped otherwise (the run was dropped), it goes to the next
/// at once.
struct Admitted(Option<Arc<Admission>>);

impl Admitted {
    /// The run ended: its place waits for the run to take the result in, so that the
    /// tasks that result makes ready compete for it.
    fn finish(mut self) {
        if let Some(admission) = self.0.take() {
            admission.state().deferred += 1;
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(admission) = self.0.take() {
            admission.release();
        }
    }
}

/// A task's place among those admitted, for the whole of its run: given up while it
/// waits to retry and claimed again after, at its branch.
struct Place {
    admission: Arc<Admission>,
    branch: Vec<u32>,
    admitted: Option<Admitted>,
}

impl Place {
    /// Give the place to the next waiting task (it goes at once).
    fn step_out(&mut self) {
        self.admitted = None;
    }

    /// Claim a place again, waiting behind earlier branches.
    async fn step_in(&mut self) {
        if self.admitted.is_none() {
            let ticket = self.admission.claim(self.branch.clone());
            self.admitted = Some(ticket.admitted().await);
        }
    }

    /// The run ended: see [`Admitted::finish`].
    fn finish(mut self) {
        if let Some(admitted) = self.admitted.take() {
            admitted.finish();
        }
    }
}

/// A task's claim on a place: admitted at once, or waiting for a place to be handed
/// over. Dropped before it was admitted (its run was dropped: a workflow timeout), it
/// gives back a place handed to it meanwhile.
struct Ticket {
    admission: Arc<Admission>,
    waiting: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Ticket {
    /// Wait for the place.
    async fn admitted(mut self) -> Admitted {
        if let Some(waiting) = self.waiting.as_mut() {
            // The sender is only dropped by handing over the place.
            let _ = waiting.await;
        }
        self.waiting = None;
        Admitted(Some(self.admission.clone()))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(mut waiting) = self.waiting.take() {
            waiting.close();
            if waiting.try_recv().is_ok() {
                self.admission.release();
            }
        }
    }
}

impl Admission {
    fn new(width: usize) -> Admission {
        Admission {
            state: Mutex::new(AdmissionState {
                free: width,
                deferred: 0,
                waiting: std::collections::BinaryHeap::new(),
                next: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claim a place for a task at `branch`: at once when one is free and nobody waits.
    fn claim(self: &Arc<Self>, branch: Vec<u32>) -> Ticket {
        let mut state = self.state();
        let waiting = if state.free > 0 && state.waiting.is_empty() {
            state.free -= 1;
            None
        } else {
            let (admit, admitted) = tokio::sync::oneshot::channel();
            let seq = state.next;
            state.next += 1;
            state
                .waiting
                .push(std::cmp::Reverse(Waiting { branch, seq, admit }));
            Some(admitted)
        };
        Ticket {
            admission: self.clone(),
            waiting,
        }
    }

    /// Hand the places set aside by finished runs to the waiting tasks.
    fn settle(&self) {
        let deferred = std::mem::take(&mut self.state().deferred);
        for _ in 0..deferred {
            self.release();
        }
    }

    /// A place came free: to the first waiting task still there, else back to the pool.
    fn release(&self) {
        let mut state = self.state();
        while let Some(std::cmp::Reverse(next)) = state.waiting.pop() {
            if next.admit.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }
}

/// The run's [`Clock`] as the pacing clock, so that Conductor's task-definition limits
/// wait on the runner's time (tests never sleep).
struct PacingClock(Arc<dyn Clock>);

impl std::fmt::Debug for PacingClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacingClock")
    }
}

impl harness_pacing::PaceClock for PacingClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms())
    }

    fn unix_ms(&self) -> u64 {
        self.0.epoch_ms()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.0.sleep(duration)
    }
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
            clock,
            base_url_for,
            progress,
            credentials: None,
            policy: harness_sandbox::policy::PolicyConfig::default(),
            task_limits: Arc::default(),
            plans: None,
            admission: Arc::new(Admission::new(sandbox_width(&sandbox))),
            sandbox,
        }
    }

    /// Admit at most `width` component tasks at once (at least one; the default is the
    /// sandbox pool's width). Those that wait are admitted a fork's earlier branches
    /// first ([`ReadyTask::branch`](crate::interpreter::ReadyTask::branch)).
    pub fn with_width(mut self, width: usize) -> Self {
        self.admission = Arc::new(Admission::new(width.max(1)));
        self
    }

    /// A runner that plans instead of sending: every task that may send is planned in
    /// the sandbox (its request as it would go out, credentials redacted) and sends
    /// nothing; its output is unknown (`null`) to the tasks after it, unless a mock
    /// gives one. Tasks that cannot send (scripts, jq, a user's task without network)
    /// run as usual. [`WorkflowRunner::plans`] lists what was planned.
    pub fn planning(mut self) -> Self {
        self.plans = Some(Arc::default());
        self
    }

    /// What a [planning](WorkflowRunner::planning) runner planned, in the order the tasks
    /// were reached: per task `reference`, `task`, `planned` and either the plan's
    /// `request`, `credentials`, `refusal` and `warnings`
    /// ([`harness_runner::plan_json`]) or the `reason` it could not be planned.
    pub fn plans(&self) -> Vec<Value> {
        self.plans
            .as_ref()
            .and_then(|plans| plans.lock().ok().map(|p| p.clone()))
            .unwrap_or_default()
    }

    /// The limiter of a task definition with `rateLimitPerFrequency` or
    /// `concurrentExecLimit`, shared by every task of the run that uses it.
    fn task_limiter(&self, def: &definition::TaskDef) -> Option<Arc<TaskDefLimiter>> {
        let limits = TaskDefLimits {
            rate_limit_per_frequency: def.rate_limit_per_frequency,
            rate_limit_frequency_in_seconds: def.rate_limit_frequency_in_seconds,
            concurrent_exec_limit: def.concurrent_exec_limit,
        };
        if !limits.is_limited() {
            return None;
        }
        let mut all = self
            .task_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limiter = all.entry(def.name.clone()).or_insert_with(|| {
            Arc::new(TaskDefLimiter::new(
                &def.name,
                limits,
                Arc::new(PacingClock(self.clock.clone())),
            ))
        });
        Some(limiter.clone())
    }

    /// Grant tasks what `policy` grants (`[policy]` of `harness.toml`). Inside a
    /// workflow only connections, this policy and the default server (`base_url_for`)
    /// grant origins, never a task's input: a `baseUrl` or `uri` computed from workflow
    /// data cannot steer a task to a server of its choosing.
    pub fn with_policy(mut self, policy: harness_sandbox::policy::PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// Resolve the `"connection"` of task inputs with these credentials.
    pub fn with_credentials(mut self, credentials: Arc<harness_config::Credentials>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Run a definition on a workflow input, with a fresh workflow id.
    pub async fn run(&self, definition: &WorkflowDef, input: Value) -> WorkflowResult {
        self.run_with(definition, input, RunOptions::fresh()).await
    }

    /// Run a definition on a workflow input as the run `options` (ids, mocks).
    pub async fn run_with(
        &self,
        definition: &WorkflowDef,
        input: Value,
        options: RunOptions,
    ) -> WorkflowResult {
        interpreter::drive(self, Arc::new(definition.clone()), input, options).await
    }
}

/// `${workflow.secrets.NAME}` in a task's input, from `[secrets]` of the configuration,
/// substituted only now that the task is handed over (records keep the reference).
/// Returns the input and the secret values put into it.
fn with_secrets(
    input: &Value,
    connections: Option<&harness_config::Connections>,
) -> Result<(Value, Vec<String>), String> {
    let failure = Mutex::new(None);
    let used = Mutex::new(Vec::new());
    let lookup = |name: &str| match connections?.secret(name)? {
        Ok(secret) => {
            if let Ok(mut used) = used.lock() {
                used.push(secret.clone());
            }
            Some(secret)
        }
        Err(e) => {
            if let Ok(mut failure) = failure.lock() {
                *failure = Some(e);
            }
            None
        }
    };
    let substituted = expression::substitute_secrets(input, &lookup);
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    Ok((substituted?, used.into_inner().unwrap_or_default()))
}

/// How many component tasks a runner on `sandbox` admits at once: its pool's width
/// (without a pool, any number).
fn sandbox_width(sandbox: &Sandbox) -> usize {
    sandbox.width().unwrap_or(usize::MAX)
}

/// Aborts a spawned task when dropped: a run that ends (its timeout) stops its tasks.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TaskExecutor for WorkflowRunner {
    type Run = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

    /// Each task runs as a tokio task of its own, so a fork's branches use every core.
    fn execute(&self, task: ReadyTask) -> Self::Run {
        if let Some(wait) = task.wait {
            // A WAIT: the clock's time passes (a test clock's at once).
            let clock = self.clock.clone();
            let progress = self.progress.clone();
            return Box::pin(async move {
                let started_ms = clock.now_ms();
                let ms = wait.ms_from(clock.epoch_ms());
                progress(&format!("{} WAIT: waiting {ms} ms", task.reference));
                clock.sleep(Duration::from_millis(ms)).await;
                TaskResult::waited(started_ms, ms)
            });
        }
        let runner = self.clone();
        // Claimed now, before the run takes in other results, so that a task made ready
        // by one competes for that one's place (see `settled`).
        let ticket = self.admission.claim(task.branch.clone());
        let admission = self.admission.clone();
        Box::pin(async move {
            let admitted = ticket.admitted().await;
            let reference = task.reference.clone();
            let mut place = Place {
                admission,
                branch: task.branch.clone(),
                admitted: Some(admitted),
            };
            let running = tokio::spawn(async move {
                let result = runner.run_component(task, &mut place).await;
                (result, place)
            });
            let abort = AbortOnDrop(running.abort_handle());
            let result = match running.await {
                // Here, not in the spawned task: the driver takes this result as soon as
                // this future ends, and hands the place on after (`settled`).
                Ok((result, place)) => {
                    place.finish();
                    result
                }
                Err(e) => TaskResult::terminal(format!("task {reference}: the task stopped: {e}")),
            };
            drop(abort);
            result
        })
    }

    fn settled(&self) {
        self.admission.settle();
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn epoch_ms(&self) -> u64 {
        self.clock.epoch_ms()
    }

    type Wake<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    fn wake_at(&self, at_ms: u64) -> Self::Wake<'_> {
        self.clock.wake_at(at_ms)
    }
}

/// Where a component task runs inside a workflow: its input prepared (connection, default
/// server) and what it is granted. The grant is the connection's origin, the default
/// server and the policy; never the origin the input itself names, so workflow data
/// cannot steer a task to a server of its choosing. An unknown connection is the
/// `invalid-input` outcome.
pub fn prepare_in_workflow(
    component: &str,
    input: &Value,
    base_url_for: &BaseUrlFor,
    credentials: Option<&Arc<harness_config::Credentials>>,
    policy: &harness_sandbox::policy::PolicyConfig,
) -> Result<runner::PreparedInput, Box<TaskOutcome>> {
    let (substituted, secrets);
    let input = if expression::holds_secret(input) {
        (substituted, secrets) = with_secrets(input, credentials.map(|c| c.connections()))
            .map_err(|e| {
                Box::new(TaskOutcome::failed(
                    component,
                    runner::TaskFailure::new(ErrorKind::InvalidInput, e),
                    false,
                    false,
                ))
            })?;
        &substituted
    } else {
        secrets = Vec::new();
        input
    };
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
        harness_sandbox::policy::SendPolicy::deny_all()
    };
    if let Some(origin) = default_server
        .as_deref()
        .and_then(harness_sandbox::policy::Origin::of_url)
    {
        grant = grant.allow_trusted(origin);
    }
    Ok(runner::PreparedInput {
        input: prepared.input,
        policy: policy.apply(component, grant),
        secrets,
    })
}

impl WorkflowRunner {
    /// Plan one component task instead of running it; what it planned, or why it could
    /// not, goes to `plans`. It completes with an unknown (`null`) output.
    async fn plan_component(&self, task: ReadyTask, plans: &Mutex<Vec<Value>>) -> TaskResult {
        let (reference, component) = (task.reference.clone(), task.component.clone());
        let not_planned = |reason: String| {
            serde_json::json!({
                "reference": reference, "task": component, "planned": false, "reason": reason,
            })
        };
        let prepared = prepare_in_workflow(
            &component,
            &task.input,
            &self.base_url_for,
            self.credentials.as_ref(),
            &self.policy,
        );
        let entry = match prepared {
            Err(outcome) => not_planned(outcome.failure.map(|f| f.message).unwrap_or_default()),
            Ok(prepared) => match runner::plan_task(&self.sandbox, &component, &prepared).await {
                Ok(Some(Ok(mut plan))) => {
                    if let Some(plan) = plan.as_object_mut() {
                        plan.remove("status");
                        plan.remove("sent");
                        plan.remove("task");
                    }
                    let mut entry = serde_json::json!({
                        "reference": reference, "task": component, "planned": true,
                    });
                    if let (Some(entry), Value::Object(plan)) = (entry.as_object_mut(), plan) {
                        entry.extend(plan);
                    }
                    entry
                }
                Ok(Some(Err(outcome))) => {
                    not_planned(outcome.failure.map(|f| f.message).unwrap_or_default())
                }
                Ok(None) => not_planned(format!(
                    "task `{component}` may send but cannot plan its request apart from sending it (its component does not export usage-billing:tasks/exchange): not run"
                )),
                Err(e) => not_planned(e.to_string()),
            },
        };
        let line = match (&entry["planned"], &entry["request"]) {
            (Value::Bool(true), request) => format!(
                "{reference} {component}: planned {} {}",
                request["method"].as_str().unwrap_or_default(),
                request["url"].as_str().unwrap_or_default()
            ),
            _ => format!(
                "{reference} {component}: not planned: {}",
                entry["reason"].as_str().unwrap_or_default()
            ),
        };
        (self.progress)(&line);
        if let Ok(mut plans) = plans.lock() {
            plans.push(entry);
        }
        TaskResult {
            status: TaskStatus::Completed,
            attempts: Vec::new(),
            output: Value::Null,
            failure: None,
        }
    }

    /// Run one component task: its attempts, with the waits its task definition and the
    /// server ask for. A planning runner plans it instead, when it may send.
    async fn run_component(&self, task: ReadyTask, place: &mut Place) -> TaskResult {
        if let Some(plans) = &self.plans
            && self.sandbox.may_send(&task.component)
        {
            return self.plan_component(task, plans).await;
        }
        let ReadyTask {
            reference,
            component,
            input,
            def,
            ..
        } = task;
        let prepared = match prepare_in_workflow(
            &component,
            &input,
            &self.base_url_for,
            self.credentials.as_ref(),
            &self.policy,
        ) {
            Ok(prepared) => prepared,
            Err(outcome) => {
                let message = outcome.failure.map(|f| f.message).unwrap_or_default();
                return TaskResult::terminal(format!("task {reference} failed: {message}"));
            }
        };
        let clock = &self.clock;
        let first_started = clock.now_ms();
        let mut attempts = Vec::new();
        let mut number = 1;
        let limiter = self.task_limiter(&def);
        loop {
            // Conductor keeps a task SCHEDULED while its definition's limits hold it: the
            // attempt starts (and its timeouts count) once it is let through.
            let admission = match &limiter {
                Some(limiter) => {
                    // Held back by its definition's limits, it holds no place meanwhile
                    // (others may run), and claims one again once let through.
                    let mut admit = Box::pin(limiter.admit());
                    let now =
                        std::future::poll_fn(|cx| std::task::Poll::Ready(admit.as_mut().poll(cx)))
                            .await;
                    Some(match now {
                        std::task::Poll::Ready(admitted) => admitted,
                        std::task::Poll::Pending => {
                            place.step_out();
                            let admitted = admit.await;
                            place.step_in().await;
                            admitted
                        }
                    })
                }
                None => None,
            };
            let started = clock.now_ms();
            let wall = Instant::now();
            let (sandbox, policy) = (&self.sandbox, prepared.policy.clone());
            // timeoutSeconds counts from when the attempt starts running, as Conductor
            // counts it from IN_PROGRESS: not while it waits for a slot in the pool.
            let limit = def.attempt_limit_seconds();
            let outcome = if limit > 0 {
                let within = Duration::from_secs(limit);
                runner::run_task_within(sandbox, &component, &prepared.input, policy, within)
                    .await
                    .map(|outcome| {
                        outcome.unwrap_or_else(|| {
                            timed_out(
                                &component,
                                &def,
                                runner::is_idempotent(sandbox, &component, &prepared.input),
                            )
                        })
                    })
            } else {
                runner::run_task(sandbox, &component, &prepared.input, policy).await
            };
            let mut outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => return TaskResult::terminal(format!("task {reference}: {e}")),
            };
            outcome.redact(&prepared.secrets);
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
                paced: paced_of(admission.as_ref(), &outcome.paced),
            };
            drop(admission);
            let paced_note = attempt.paced.as_ref().map_or(String::new(), |p| {
                format!(" (paced {} ms: {})", p.waited_ms, p.wait_reason)
            });
            let Some(failure) = &outcome.failure else {
                (self.progress)(&format!(
                    "{reference} {component} attempt {number}: COMPLETED in {duration_ms} ms{paced_note}"
                ));
                attempts.push(attempt);
                return TaskResult {
                    status: TaskStatus::Completed,
                    attempts,
                    output: outcome.output,
                    failure: None,
                };
            };
            // A definition that skipped validation still gets at most Conductor's 10.
            let retry_count = def.retry_count.min(definition::MAX_RETRY_COUNT);
            // A timeout under TIME_OUT_WF ends the workflow; it is not retried.
            let times_out_workflow = outcome.status == TaskStatus::TimedOut
                && def.timeout_policy == definition::TaskTimeoutPolicy::TimeOutWf;
            let may_retry =
                runner::may_resend(&outcome) && number <= retry_count && !times_out_workflow;
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
                    (self.progress)(&format!(
                        "{reference} {component} attempt {number}: {status} ({}) in {duration_ms} ms{paced_note}; waiting {ms} ms ({reason})",
                        failure.kind.as_str()
                    ));
                    attempt.wait_ms = Some(ms);
                    attempt.wait_reason = Some(reason);
                    attempts.push(attempt);
                    // As a Conductor task waiting out its retry delay holds no worker,
                    // this one gives its place to others meanwhile.
                    place.step_out();
                    clock.sleep(Duration::from_millis(ms)).await;
                    place.step_in().await;
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
                    } else if times_out_workflow {
                        " (timeoutPolicy TIME_OUT_WF)".to_string()
                    } else if failure.kind.retryable() && number > retry_count {
                        format!(" (after {number} attempts)")
                    } else if failure.kind.retryable() {
                        " (not retried: the call is not idempotent and may have been applied)"
                            .to_string()
                    } else {
                        String::new()
                    };
                    (self.progress)(&format!(
                        "{reference} {component} attempt {number}: {status} ({}) in {duration_ms} ms{paced_note}",
                        failure.kind.as_str()
                    ));
                    attempts.push(attempt);
                    let message = format!("task {reference} failed{why}: {}", failure.message);
                    return TaskResult {
                        status: outcome.status,
                        attempts,
                        output: outcome.output,
                        failure: Some(message),
                    };
                }
            }
        }
    }
}

/// An attempt's pacing as its record shows it (its task definition's limits before it
/// started, its connection's while it ran): none when it never waited.
fn paced_of(
    before: Option<&harness_pacing::Admission>,
    paced: &harness_sandbox::pool::Paced,
) -> Option<crate::record::Paced> {
    let mut waited = paced.waited;
    let mut reasons: Vec<String> = Vec::new();
    if let Some(before) = before {
        waited += before.waited;
        reasons.extend(before.reasons.iter().map(ToString::to_string));
    }
    reasons.extend(paced.reasons.iter().cloned());
    (!waited.is_zero() || !reasons.is_empty()).then(|| crate::record::Paced {
        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        wait_reason: reasons.join("; "),
    })
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
        Some(server) if server > backoff.max(definition::MIN_RETRY_DELAY_MS) => {
            (server, format!("the server asked to wait {server} ms"))
        }
        _ if backoff < definition::MIN_RETRY_DELAY_MS => (
            definition::MIN_RETRY_DELAY_MS,
            format!(
                "{logic} backoff, raised to the {} ms minimum between attempts",
                definition::MIN_RETRY_DELAY_MS
            ),
        ),
        _ => (backoff, format!("{logic} backoff")),
    }
}

/// An attempt cut off at its task definition's limit: `TIMED_OUT`.
fn timed_out(task: &str, def: &TaskDef, idempotent: bool) -> TaskOutcome {
    let limit = def.attempt_limit_seconds();
    let which = if def.timeout_policy != definition::TaskTimeoutPolicy::AlertOnly
        && def.timeout_seconds == limit
    {
        "timeoutSeconds"
    } else {
        "responseTimeoutSeconds"
    };
    let failure = runner::TaskFailure::new(
        ErrorKind::Transport,
        format!("the attempt exceeded {which} ({limit} s)"),
    );
    // The attempt may have sent its request before it was cut off.
    let mut outcome = TaskOutcome::failed(task, failure, true, idempotent);
    outcome.status = TaskStatus::TimedOut;
    outcome
}

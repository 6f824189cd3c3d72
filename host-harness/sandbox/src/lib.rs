//! The sandbox: one wasmtime [`Engine`], each task component compiled and
//! pre-instantiated once, and a fresh [`Store`] per run with no filesystem, environment,
//! arguments or stdin, captured stdout/stderr, a memory cap, a wall-clock deadline, and
//! outgoing HTTP limited to the origins the run was granted.

pub mod credentials;
pub mod policy;
pub mod pool;

use crate::credentials::ConnectionCredentials;
use crate::policy::{AddressRules, Origin, SendPolicy};
use crate::pool::{HttpPool, Notes, WireLimits};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        world: "task-runner",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

mod exchange_bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        world: "exchange-runner",
        path: "../../wit",
        exports: { default: async },
        with: {
            "usage-billing:tasks/types": super::bindings::usage_billing::tasks::types,
        },
    });
}

mod exchange;

use bindings::TaskRunnerPre;
pub use bindings::usage_billing::tasks::types::{
    FieldError, HttpResponse, PlannedRequest, RequestOptions, RetryResponse, TaskError, TaskInfo,
};
use exchange_bindings::{ExchangeRunner, ExchangeRunnerPre};

pub use harness_artifacts::BUILTIN_COMPONENTS;

/// Why the sandbox could not run a task (not a task failure: those are [`TaskError`]s).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No component with that task name is loaded.
    #[error("unknown task `{0}`; `harness list` shows the tasks")]
    UnknownTask(String),
    /// A component could not be read, compiled or linked.
    #[error("cannot load {component}: {reason}")]
    Load {
        /// The component (its task name, or its file).
        component: String,
        /// What went wrong.
        reason: String,
    },
    /// The engine could not be set up.
    #[error("cannot set up the wasmtime engine: {0}")]
    Engine(String),
}

/// Per-run limits. Each is reported by name and value when a run hits it; the names
/// are the keys of `[limits]` in `harness.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock limit for one run, including its HTTP exchange (`timeout_ms`). A
    /// component that computes without end is stopped by it: the engine's epoch ticks
    /// every 10 ms and the run yields to the deadline on each tick.
    pub timeout: Duration,
    /// Cap on a component's linear memory, in bytes (`memory_mib`).
    pub memory_bytes: usize,
    /// Cap on the elements of any one table (`table_elements`).
    pub table_elements: usize,
    /// Fuel per run (`fuel`, off by default): roughly one unit per wasm instruction; a
    /// deterministic CPU budget, at some cost in speed.
    pub fuel: Option<u64>,
    /// Cap on a response body as received, in bytes (`response_body_bytes`).
    pub response_body_bytes: u64,
    /// Cap on a response's header section (names and values), in bytes
    /// (`response_header_bytes`).
    pub response_header_bytes: usize,
    /// Cap on the task's output JSON, in bytes (`output_bytes`).
    pub output_bytes: usize,
    /// Cap on the guest's stdout and stderr kept, in bytes each (`log_bytes`); the rest
    /// is dropped, not an error.
    pub log_bytes: usize,
    /// Tasks whose vendor needs a longer wall-clock limit than [`Limits::timeout`] by
    /// default; a `timeout_ms` the operator sets applies to every task instead.
    pub task_timeouts: Vec<(String, Duration)>,
}

/// BillingPlatform's server times a request out at 400 seconds and its API reference
/// advises clients to wait longer: its task's default limit is above that.
pub const BILLINGPLATFORM_TIMEOUT: Duration = Duration::from_secs(420);

impl Limits {
    /// The wall-clock limit of one run of `task`.
    pub fn timeout_for(&self, task: &str) -> Duration {
        self.task_timeouts
            .iter()
            .find(|(name, _)| name == task)
            .map_or(self.timeout, |(_, timeout)| *timeout)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Zuora times requests out at 120 s; a run gets a little more.
            timeout: Duration::from_secs(130),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            fuel: None,
            response_body_bytes: 16 << 20,
            response_header_bytes: 64 << 10,
            output_bytes: 16 << 20,
            log_bytes: 64 << 10,
            task_timeouts: vec![(
                "billingplatform-update-usage-identifier".into(),
                BILLINGPLATFORM_TIMEOUT,
            )],
        }
    }
}

/// How the sandbox is set up: per-run limits, the compiled-code cache, instance pooling.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Per-run limits.
    pub limits: Limits,
    /// Where compiled components are cached on disk (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Runs that may be in flight at once: sizes wasmtime's pooling instance allocator
    /// (`0` allocates each instance on demand instead). Runs beyond it wait for a slot.
    pub max_in_flight: u32,
    /// The user's own task components (`--tasks DIR`): every `*.wasm` file in it that
    /// exports the `task` interface is loaded beside the shipped tasks, under the name
    /// its `info` gives.
    pub tasks_dir: Option<PathBuf>,
    /// Who sends the requests of tasks that export `exchange` (the default: the host,
    /// with a fresh instance to read the answer).
    pub send_path: SendPath,
}

/// Who sends the request of a task that exports `exchange`. Tasks that do not export it
/// always send through `wasi:http` from inside the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendPath {
    /// The task plans in one instance, which is dropped before the host sends the
    /// planned request; a fresh instance reads the answer. A task waiting on its vendor
    /// holds no instance (the default).
    #[default]
    Host,
    /// As [`SendPath::Host`], but the planning instance is kept through the send and
    /// reads the answer: one instantiation less per attempt, an instance held while the
    /// request is out (for measuring the trade).
    HostKeepingInstance,
    /// The task sends through `wasi:http` from inside the guest (`task.run`), as in any
    /// other WASI host (for comparing the paths).
    Guest,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            limits: Limits::default(),
            cache_dir: None,
            max_in_flight: 1024,
            tasks_dir: None,
            send_path: SendPath::Host,
        }
    }
}

/// The default on-disk cache of compiled components: `$HARNESS_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/usage-billing-harness`, else `~/.cache/usage-billing-harness`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HARNESS_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("usage-billing-harness"))
}

/// How a run ended, from the sandbox's point of view.
#[derive(Debug)]
pub enum RunResult {
    /// The component returned: its JSON output, or the task error it reported.
    Returned(Result<String, TaskError>),
    /// The component trapped or hit a limit; the message says which.
    Stopped(String),
}

/// One finished run.
#[derive(Debug)]
pub struct TaskRun {
    /// What the component did.
    pub result: RunResult,
    /// The sandbox's refusals of the component's requests, one sentence each (origin
    /// not granted, method not allowed, address not allowed).
    pub denied: Vec<String>,
    /// What the component wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the component wrote to stderr.
    pub stderr: Vec<u8>,
    /// How long the run took.
    pub duration: Duration,
    /// Whether any request may have reached a server (false when every request was
    /// denied or failed to connect): decides whether a non-idempotent call may be re-sent.
    pub reached_server: bool,
    /// Logins of the run's connections that failed for good (wrong credentials, a
    /// missing secret, a denied address), one sentence each naming the connection.
    pub logins_refused: Vec<String>,
    /// How its connection's pacing held its requests back (and whether one was not sent
    /// because it would have waited too long).
    pub paced: pool::Paced,
}

#[derive(Clone)]
struct LoadedTask {
    pre: TaskRunnerPre<RunState>,
    /// Set when the component exports `exchange` (plans and reads apart from sending):
    /// its runs then send from the host ([`Sandbox::run`]).
    exchange: Option<ExchangeRunnerPre<RunState>>,
    info: TaskInfo,
    component: Component,
}

/// Compiled task components, ready to run.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    tasks: BTreeMap<String, LoadedTask>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    cache_hits: AtomicUsize,
    http: Arc<HttpPool>,
    /// Free slots in the instance pool (`None` without one): a run beyond the pool's size
    /// waits for a slot instead of failing to instantiate.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    /// [`SandboxOptions::max_in_flight`] (`0`: no pool).
    width: u32,
    /// [`SandboxOptions::send_path`].
    send_path: SendPath,
}

impl Sandbox {
    /// An empty sandbox (no components loaded) with the given limits and defaults otherwise.
    pub fn new(limits: Limits) -> Result<Sandbox, SandboxError> {
        Sandbox::with_options(SandboxOptions {
            limits,
            ..SandboxOptions::default()
        })
    }

    /// An empty sandbox set up as `options` says.
    pub fn with_options(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let engine_error = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        if options.limits.fuel.is_some() {
            config.consume_fuel(true);
        }
        if options.max_in_flight > 0 {
            let mut pooling = PoolingAllocationConfig::new();
            let n = options.max_in_flight;
            // A component built by wit-bindgen holds a handful of core instances.
            pooling.total_component_instances(n);
            pooling.total_core_instances(n.saturating_mul(8));
            pooling.total_memories(n.saturating_mul(2));
            pooling.total_tables(n.saturating_mul(4));
            // Every run executes on its own async stack: as many as runs (the default,
            // 1000, would fail runs beyond it although the semaphore let them in).
            pooling.total_stacks(n);
            pooling.max_memory_size(options.limits.memory_bytes);
            pooling.table_elements(options.limits.table_elements);
            // Reset a freed slot's memory by zeroing only the pages the run dirtied
            // (PAGEMAP_SCAN, Linux 6.7+; plain madvise elsewhere) and keep them resident,
            // so the next run in the slot takes no page faults; batch what is decommitted.
            pooling.pagemap_scan(wasmtime::Enabled::Auto);
            pooling.linear_memory_keep_resident(options.limits.memory_bytes.min(2 << 20));
            pooling.table_keep_resident(64 << 10);
            pooling.decommit_batch_size(32);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
            // Reserve only what a memory may grow to, so a large pool stays small in
            // address space.
            config.memory_reservation(options.limits.memory_bytes as u64);
            config.memory_guard_size(64 << 10);
        }
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
        start_epoch_ticker(&engine);
        Ok(Sandbox {
            engine,
            linker,
            tasks: BTreeMap::new(),
            limits: options.limits,
            cache_dir: options.cache_dir,
            cache_hits: AtomicUsize::new(0),
            http: Arc::new(HttpPool::default()),
            slots: (options.max_in_flight > 0)
                .then(|| Arc::new(tokio::sync::Semaphore::new(options.max_in_flight as usize))),
            width: options.max_in_flight,
            send_path: options.send_path,
        })
    }

    /// How many runs the instance pool holds at once ([`SandboxOptions::max_in_flight`]);
    /// `None` without a pool (instances allocated on demand).
    pub fn width(&self) -> Option<usize> {
        (self.width > 0).then_some(self.width as usize)
    }

    /// A sandbox with every shipped task component loaded.
    pub async fn builtin(limits: Limits) -> Result<Sandbox, SandboxError> {
        Sandbox::builtin_with(SandboxOptions {
            limits,
            ..SandboxOptions::default()
        })
        .await
    }

    /// A sandbox set up as `options` says with every shipped task component loaded.
    /// The user's components of `options.tasks_dir` are loaded too.
    pub async fn builtin_with(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let tasks_dir = options.tasks_dir.clone();
        let mut sandbox = Sandbox::with_options(options)?;
        for (task, wasm) in BUILTIN_COMPONENTS {
            sandbox.load_named(task, wasm).await?;
        }
        if let Some(dir) = tasks_dir {
            sandbox.load_dir(&dir).await?;
        }
        Ok(sandbox)
    }

    /// Load every `*.wasm` component of `dir` (the user's own tasks), in file-name
    /// order. A component whose task name is already loaded (a shipped task, or another
    /// file) is refused, naming both: a user task never replaces another silently.
    /// Returns the task names loaded.
    pub async fn load_dir(&mut self, dir: &Path) -> Result<Vec<String>, SandboxError> {
        let load_error = |reason: String| SandboxError::Load {
            component: dir.display().to_string(),
            reason,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| load_error(format!("--tasks: {e}")))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        let mut loaded = Vec::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(|e| SandboxError::Load {
                component: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let what = path.display().to_string();
            let (name, task) = self.prepare_task(&what, &bytes).await?;
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SandboxError::Load {
                    component: what,
                    reason: format!(
                        "its task name {name:?} is empty or holds spaces or control characters"
                    ),
                });
            }
            if self.tasks.contains_key(&name) {
                return Err(SandboxError::Load {
                    component: what,
                    reason: format!(
                        "its task name `{name}` is already taken by another task; give it a name of its own in info()"
                    ),
                });
            }
            self.tasks.insert(name.clone(), task);
            loaded.push(name);
        }
        Ok(loaded)
    }

    /// A sandbox with only the named shipped task loaded (faster start for one task).
    /// A task that is not shipped is looked for among the user's components of
    /// `options.tasks_dir`.
    pub async fn builtin_only(
        task: &str,
        options: SandboxOptions,
    ) -> Result<Sandbox, SandboxError> {
        let Some(wasm) = harness_artifacts::component(task) else {
            if options.tasks_dir.is_some() {
                let sandbox = Sandbox::builtin_with(options).await?;
                if sandbox.tasks.contains_key(task) {
                    return Ok(sandbox);
                }
            }
            return Err(SandboxError::UnknownTask(task.to_string()));
        };
        let mut sandbox = Sandbox::with_options(options)?;
        sandbox.load_named(task, wasm).await?;
        Ok(sandbox)
    }

    /// Compile a component file, pre-instantiate it and ask it for its task info.
    /// Returns the task name it registered under.
    pub async fn load_file(&mut self, path: &Path) -> Result<String, SandboxError> {
        let bytes = std::fs::read(path).map_err(|e| SandboxError::Load {
            component: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.load_named(&path.display().to_string(), &bytes).await
    }

    /// Compile a component's bytes, pre-instantiate it and ask it for its task info.
    /// Returns the task name it registered under.
    pub async fn load(&mut self, wasm: &[u8]) -> Result<String, SandboxError> {
        self.load_named("a component", wasm).await
    }

    /// [`Sandbox::load`], naming the component `what` in errors.
    async fn load_named(&mut self, what: &str, bytes: &[u8]) -> Result<String, SandboxError> {
        let (name, task) = self.prepare_task(what, bytes).await?;
        self.tasks.insert(name.clone(), task);
        Ok(name)
    }

    /// Compile and pre-instantiate a component and ask it for its task info.
    async fn prepare_task(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<(String, LoadedTask), SandboxError> {
        let load_error = |reason: String| SandboxError::Load {
            component: what.to_string(),
            reason,
        };
        let component = self
            .compile(bytes)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let exchange = ExchangeRunnerPre::new(instance_pre.clone()).ok();
        let pre = TaskRunnerPre::new(instance_pre).map_err(|e| load_error(format!("{e:#}")))?;
        let mut store = self.store(RunState::idle(&self.limits, self.http.clone()));
        let runner = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| load_error(format!("{e:#}")))?;
        let info = runner
            .usage_billing_tasks_task()
            .call_info(&mut store)
            .await
            .map_err(|e| load_error(format!("info() failed: {e:#}")))?;
        let name = info.name.clone();
        Ok((
            name,
            LoadedTask {
                pre,
                exchange,
                info,
                component,
            },
        ))
    }

    /// Every loaded task's info, by name.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskInfo> {
        self.tasks.values().map(|t| &t.info)
    }

    /// One task's info.
    pub fn info(&self, task: &str) -> Option<&TaskInfo> {
        self.tasks.get(task).map(|t| &t.info)
    }

    /// One task's compiled component (for inspecting its exports).
    pub fn component(&self, task: &str) -> Option<&Component> {
        self.tasks.get(task).map(|t| &t.component)
    }

    /// The engine the components were compiled with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Run a task on a JSON input in a fresh store, with outgoing HTTP limited by `policy`.
    /// When every slot of the instance pool is taken, the run first waits for one; its
    /// limits count from then.
    pub async fn run(
        &self,
        task: &str,
        input: &str,
        policy: SendPolicy,
    ) -> Result<TaskRun, SandboxError> {
        let _slot = self.slot().await;
        self.run_in_slot(task, input, policy).await
    }

    /// [`Sandbox::run`], given up (`Ok(None)`) once `within` has passed since the run got
    /// its slot in the instance pool: the time spent waiting for a slot, when nothing of
    /// the run had started, does not count.
    pub async fn run_within(
        &self,
        task: &str,
        input: &str,
        policy: SendPolicy,
        within: Duration,
    ) -> Result<Option<TaskRun>, SandboxError> {
        let _slot = self.slot().await;
        // A run cut off here has dropped its store (and instance) by the end of this
        // statement, before the slot is released.
        let timed = tokio::time::timeout(within, self.run_in_slot(task, input, policy)).await;
        match timed {
            Ok(run) => run.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn run_in_slot(
        &self,
        task: &str,
        input: &str,
        policy: SendPolicy,
    ) -> Result<TaskRun, SandboxError> {
        let loaded = self
            .tasks
            .get(task)
            .ok_or_else(|| SandboxError::UnknownTask(task.to_string()))?;
        let started = Instant::now();
        let hooks = PolicyHooks::new(&self.limits, policy, self.http.clone());
        let stdout = LogPipe::new(self.limits.log_bytes);
        let stderr = LogPipe::new(self.limits.log_bytes);
        let (denied, reached, in_flight, notes) = (
            hooks.denied.clone(),
            hooks.reached.clone(),
            hooks.in_flight.clone(),
            hooks.notes.clone(),
        );
        let logs = (stdout.clone(), stderr.clone());
        let call = async {
            match (loaded.exchange.as_ref(), self.send_path) {
                (Some(exchange), SendPath::Host | SendPath::HostKeepingInstance) => {
                    self.run_exchange(exchange, input, hooks, logs).await
                }
                _ => self.run_guest(&loaded.pre, input, hooks, logs).await,
            }
        };
        let timeout = self.limits.timeout_for(task);
        let timed = tokio::time::timeout(timeout, call).await;
        let result = match timed {
            Ok(result) => result,
            // Cut off while a request was out: the server may have acted on it, so this is
            // a transport failure with an unknown outcome, not a sandbox stop.
            Err(_) if in_flight.load(Ordering::SeqCst) > 0 => {
                reached.store(true, Ordering::SeqCst);
                RunResult::Returned(Err(TaskError::Transport(format!(
                    "the run exceeded its time limit of {} ms while waiting for the server",
                    timeout.as_millis()
                ))))
            }
            Err(_) => RunResult::Stopped(format!(
                "stopped: the run exceeded its time limit of {} ms",
                timeout.as_millis()
            )),
        };
        let logins_refused = notes.logins_refused();
        let paced = notes.pacing();
        // Name the timeout or limit that ended an exchange: the component only saw an
        // error code.
        let notes = notes.all();
        let result = match result {
            RunResult::Returned(Err(TaskError::Transport(message))) if !notes.is_empty() => {
                RunResult::Returned(Err(TaskError::Transport(format!(
                    "{message}: {}",
                    notes.join("; ")
                ))))
            }
            other => other,
        };
        let denied = denied.lock().map(|d| d.clone()).unwrap_or_default();
        Ok(TaskRun {
            result,
            denied,
            stdout: stdout.contents(),
            stderr: stderr.contents(),
            duration: started.elapsed(),
            reached_server: reached.load(Ordering::SeqCst),
            logins_refused,
            paced,
        })
    }

    /// A run of a task that sends through `wasi:http` itself: one instance calls `run`.
    async fn run_guest(
        &self,
        pre: &TaskRunnerPre<RunState>,
        input: &str,
        hooks: PolicyHooks,
        (stdout, stderr): (LogPipe, LogPipe),
    ) -> RunResult {
        let mut store = self.store(RunState::new(&self.limits, hooks, stdout, stderr));
        let returned = async {
            let runner = pre.instantiate_async(&mut store).await?;
            runner
                .usage_billing_tasks_task()
                .call_run(&mut store, input)
                .await
        }
        .await;
        self.returned(returned, &store)
    }

    /// A run of a task that exports `exchange`: it plans in one instance, which is gone
    /// before the host sends the planned request (a task waiting on its vendor holds no
    /// instance), and reads the answer in a fresh one; or, with
    /// [`SendPath::HostKeepingInstance`], in the planning one, kept through the send.
    async fn run_exchange(
        &self,
        pre: &ExchangeRunnerPre<RunState>,
        input: &str,
        hooks: PolicyHooks,
        (stdout, stderr): (LogPipe, LogPipe),
    ) -> RunResult {
        let quiet = || PolicyHooks::deny_all(&self.limits, self.http.clone());
        let mut store = self.store(RunState::new(
            &self.limits,
            quiet(),
            stdout.clone(),
            stderr.clone(),
        ));
        let (runner, planned) = match self.plan_in(pre, &mut store, input).await {
            Ok(planned) => planned,
            Err(ended) => return ended,
        };
        // The fuel limit is per run: the reading instance gets what planning left.
        let fuel_left = self.limits.fuel.and_then(|_| store.get_fuel().ok());
        let kept = match self.send_path {
            SendPath::HostKeepingInstance => Some((store, runner)),
            _ => {
                drop((store, runner));
                None
            }
        };
        let response = match exchange::send(&hooks, &planned).await {
            Ok(response) => response,
            Err(error) => return RunResult::Returned(Err(error)),
        };
        let (mut store, runner) = match kept {
            Some(kept) => kept,
            None => {
                let mut store = self.store(RunState::new(&self.limits, quiet(), stdout, stderr));
                if let Some(fuel) = fuel_left {
                    // Cannot fail: fuel is enabled on the engine whenever a limit is set.
                    let _ = store.set_fuel(fuel);
                }
                match pre.instantiate_async(&mut store).await {
                    Ok(runner) => (store, runner),
                    Err(trap) => return self.returned(Err(trap), &store),
                }
            }
        };
        let returned = runner
            .usage_billing_tasks_exchange()
            .call_read(&mut store, &planned, &response)
            .await;
        self.returned(returned, &store)
    }

    /// Instantiate an `exchange` task in `store` and plan `input`: the instance and its
    /// plan, or how the run ended instead (the task's input error, or the sandbox's stop).
    async fn plan_in(
        &self,
        pre: &ExchangeRunnerPre<RunState>,
        store: &mut Store<RunState>,
        input: &str,
    ) -> Result<(ExchangeRunner, PlannedRequest), RunResult> {
        let planning = async {
            let runner = pre.instantiate_async(&mut *store).await?;
            let planned = runner
                .usage_billing_tasks_exchange()
                .call_plan(&mut *store, input)
                .await?;
            Ok::<_, wasmtime::Error>((runner, planned))
        }
        .await;
        match planning {
            Ok((runner, Ok(planned))) => Ok((runner, planned)),
            Ok((_, Err(error))) => Err(RunResult::Returned(Err(error))),
            Err(trap) => Err(self.returned(Err(trap), store)),
        }
    }

    /// What a call into a task came to: its output (held to `output_bytes`) or error,
    /// or why the sandbox stopped it.
    fn returned(
        &self,
        returned: wasmtime::Result<Result<String, TaskError>>,
        store: &Store<RunState>,
    ) -> RunResult {
        match returned {
            Ok(Ok(output)) if output.len() > self.limits.output_bytes => {
                RunResult::Stopped(format!(
                    "stopped: the task output of {} bytes exceeds the limit of {} bytes (output_bytes)",
                    output.len(),
                    self.limits.output_bytes
                ))
            }
            Ok(returned) => RunResult::Returned(returned),
            Err(trap) => RunResult::Stopped(stopped_message(
                &trap,
                store.data().limiter.hit.as_deref(),
                &self.limits,
            )),
        }
    }

    /// Plan a task's request on a JSON input, in a fresh store, and send nothing: the
    /// request as the task would send it, or why it would not (its input error, or the
    /// sandbox's stop). `Ok(None)`: the task cannot plan apart from sending (it does not
    /// export `exchange`, as a user's own task may not).
    pub async fn plan(
        &self,
        task: &str,
        input: &str,
    ) -> Result<Option<Result<PlannedRequest, RunResult>>, SandboxError> {
        let loaded = self
            .tasks
            .get(task)
            .ok_or_else(|| SandboxError::UnknownTask(task.to_string()))?;
        let Some(pre) = &loaded.exchange else {
            return Ok(None);
        };
        let _slot = self.slot().await;
        let mut store = self.store(RunState::idle(&self.limits, self.http.clone()));
        let timeout = self.limits.timeout_for(task);
        let timed = tokio::time::timeout(timeout, self.plan_in(pre, &mut store, input)).await;
        Ok(Some(match timed {
            Ok(planned) => planned.map(|(_, planned)| planned),
            Err(_) => Err(RunResult::Stopped(format!(
                "stopped: the run exceeded its time limit of {} ms",
                timeout.as_millis()
            ))),
        }))
    }

    /// The same compiled tasks, engine and HTTP client, sending by another path
    /// ([`SandboxOptions::send_path`]), sharing the instance pool: for comparing the
    /// paths in one process.
    pub fn with_send_path(&self, send_path: SendPath) -> Sandbox {
        Sandbox {
            engine: self.engine.clone(),
            linker: self.linker.clone(),
            tasks: self.tasks.clone(),
            limits: self.limits.clone(),
            cache_dir: self.cache_dir.clone(),
            cache_hits: AtomicUsize::new(0),
            http: self.http.clone(),
            slots: self.slots.clone(),
            width: self.width,
            send_path,
        }
    }

    /// Whether a task may send requests at all: its component imports
    /// `wasi:http/outgoing-handler` (the jq transform and the script evaluator do not).
    /// An unknown task may.
    pub fn may_send(&self, task: &str) -> bool {
        self.tasks.get(task).is_none_or(|t| {
            t.component
                .component_type()
                .imports(&self.engine)
                .any(|(name, _)| name.starts_with("wasi:http/outgoing-handler"))
        })
    }

    /// Whether a task plans and reads apart from sending (it exports `exchange`): its
    /// runs then send from the host.
    pub fn sends_from_host(&self, task: &str) -> bool {
        self.send_path != SendPath::Guest
            && self.tasks.get(task).is_some_and(|t| t.exchange.is_some())
    }

    /// Instantiate a task in a fresh store without calling it (what every run pays
    /// before the guest starts); for benchmarks.
    pub async fn instantiate_only(&self, task: &str) -> Result<(), SandboxError> {
        let loaded = self
            .tasks
            .get(task)
            .ok_or_else(|| SandboxError::UnknownTask(task.to_string()))?;
        let _slot = self.slot().await;
        let mut store = self.store(RunState::idle(&self.limits, self.http.clone()));
        loaded
            .pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))
    }

    /// Wait for a free slot in the instance pool (none to wait for without a pool). The
    /// semaphore is never closed, so this never fails.
    async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.slots {
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        }
    }

    /// The pooled HTTP client the runs share (logins for connections use it too).
    pub fn http(&self) -> Arc<HttpPool> {
        self.http.clone()
    }

    /// How many components were loaded from the on-disk cache instead of compiled.
    pub fn cache_hits(&self) -> usize {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Compile a component, or load its code from the cache. The cache key covers the
    /// component's bytes (SHA-256) and the engine's compatibility hash (wasmtime version,
    /// target and every setting that affects code), so a changed component or engine
    /// never loads stale code; a file that fails to load or does not match its checksum
    /// is recompiled and replaced, never executed.
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes);
        };
        let path = dir.join(format!("{}.cwasm", self.cache_key(bytes)));
        if path.exists()
            && let Ok(component) = code_cache::load(&self.engine, &path)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        let compiled = self.engine.precompile_component(bytes)?;
        // A cache that cannot be written only costs the next start a compile.
        let _ = code_cache::store(dir, &path, &compiled);
        code_cache::load(&self.engine, &path).or_else(|_| Component::new(&self.engine, bytes))
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        use sha2::Digest;
        use std::hash::{Hash, Hasher};
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = sha2::Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        // `-v2`: entries carry their digest (see `code_cache`).
        format!("{hex}-{:016x}-v2", engine_hash.finish())
    }

    fn store(&self, state: RunState) -> Store<RunState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if let Some(fuel) = self.limits.fuel {
            // Cannot fail: fuel is enabled on the engine whenever a limit is set.
            let _ = store.set_fuel(fuel);
        }
        // Yield to the executor on every epoch tick so that the wall-clock deadline can
        // stop a component that computes without end. The first deadline is the next
        // tick: a store's own starts at 0, already past, so without it every run yielded
        // at its first epoch check, and a burst of runs held hundreds of instances at once
        // (each waiting behind the others to be polled again), their slots then kept warm.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        store
    }
}

/// Why a run stopped, naming the limit and its value when it hit one.
fn stopped_message(trap: &wasmtime::Error, limit_hit: Option<&str>, limits: &Limits) -> String {
    if let Some(limit) = limit_hit {
        return format!("stopped: {limit}");
    }
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => format!(
            "stopped: the component used up its fuel limit of {} (fuel)",
            limits.fuel.unwrap_or_default()
        ),
        Some(wasmtime::Trap::StackOverflow) => {
            "stopped: the component overflowed the host stack (a recursion without end?)".into()
        }
        // Rust and C components keep their stack in linear memory: overflowing it is an
        // out-of-bounds access.
        Some(wasmtime::Trap::MemoryOutOfBounds) => format!(
            "stopped: the component trapped: {} (its stack overflowed, or it has a bug)",
            wasmtime::Trap::MemoryOutOfBounds
        ),
        Some(other) => format!("stopped: the component trapped: {other}"),
        None => format!("stopped: the component failed: {}", trap.root_cause()),
    }
}

/// Tick the engine's epoch every 10 ms for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// The per-run store state.
struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: PolicyHooks,
    limiter: RunLimiter,
}

impl RunState {
    /// The state of a store that may send nothing and whose logs nobody reads.
    fn idle(limits: &Limits, http: Arc<HttpPool>) -> RunState {
        RunState::new(
            limits,
            PolicyHooks::deny_all(limits, http),
            LogPipe::new(limits.log_bytes),
            LogPipe::new(limits.log_bytes),
        )
    }

    fn new(limits: &Limits, hooks: PolicyHooks, stdout: LogPipe, stderr: LogPipe) -> RunState {
        // No preopened directories, no environment, no arguments, no stdin, no sockets.
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RunState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks,
            limiter: RunLimiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                hit: None,
            },
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The per-run memory and table caps. Growing past one stops the run (a trap rather than
/// a failed allocation the guest might mishandle) and records which limit was hit.
struct RunLimiter {
    memory_bytes: usize,
    table_elements: usize,
    hit: Option<String>,
}

impl wasmtime::ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let hit = format!(
                "the component exceeded its memory limit of {} bytes (memory_mib = {}) asking for {desired} bytes",
                self.memory_bytes,
                self.memory_bytes >> 20
            );
            self.hit = Some(hit.clone());
            return Err(wasmtime::format_err!("{hit}"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            let hit = format!(
                "the component exceeded its table limit of {} elements (table_elements) asking for {desired}",
                self.table_elements
            );
            self.hit = Some(hit.clone());
            return Err(wasmtime::format_err!("{hit}"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

/// Captured guest stdout or stderr: keeps the first `capacity` bytes and counts the rest,
/// so a chatty component loses log lines, never its run.
#[derive(Clone)]
struct LogPipe {
    capacity: usize,
    kept: Arc<Mutex<(Vec<u8>, u64)>>,
}

impl LogPipe {
    fn new(capacity: usize) -> LogPipe {
        LogPipe {
            capacity,
            kept: Arc::new(Mutex::new((Vec::new(), 0))),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(kept.0.len());
        let taken = bytes.len().min(room);
        kept.0.extend_from_slice(&bytes[..taken]);
        kept.1 += (bytes.len() - taken) as u64;
    }

    /// What was kept, with a note of how much was dropped.
    fn contents(&self) -> Vec<u8> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut contents = kept.0.clone();
        if kept.1 > 0 {
            contents.extend_from_slice(
                format!(
                    "\n[{} more bytes dropped: the limit is {} bytes (log_bytes)]\n",
                    kept.1, self.capacity
                )
                .as_bytes(),
            );
        }
        contents
    }
}

impl wasmtime_wasi::cli::IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl wasmtime_wasi::p2::OutputStream for LogPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.take(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The longest a request of a run waits for its connection's pacing: half the run's time
/// limit, at most 60 s. A request that would wait longer is not sent, and the run ends
/// `rate-limited` with the wait left as its retry delay, so that the retry waits without
/// holding an instance.
fn max_pace_wait(limits: &Limits) -> Duration {
    (limits.timeout / 2).min(Duration::from_secs(60))
}

/// The outgoing-HTTP hook: requests to granted origins go out, the rest are refused
/// with `HttpRequestDenied` and recorded.
struct PolicyHooks {
    policy: SendPolicy,
    denied: Arc<Mutex<Vec<String>>>,
    reached: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    http: Arc<HttpPool>,
    notes: Notes,
    wire: WireLimits,
    max_pace_wait: Duration,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for PolicyHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let response = self.dispatch(request, options);
        Box::new(async move {
            let response = Box::into_pin(response).await?;
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// A request on its way out: the response once it has come, or why none did.
type DispatchFuture = Box<
    dyn Future<Output = wasmtime_wasi_http::Result<http::Response<wasmtime_wasi_http::WasiBody>>>
        + Send,
>;

impl PolicyHooks {
    /// The hooks of a run that may send nothing (planning, reading, `info`).
    fn deny_all(limits: &Limits, http: Arc<HttpPool>) -> PolicyHooks {
        PolicyHooks::new(limits, SendPolicy::deny_all(), http)
    }

    fn new(limits: &Limits, policy: SendPolicy, http: Arc<HttpPool>) -> PolicyHooks {
        PolicyHooks {
            policy,
            denied: Arc::new(Mutex::new(Vec::new())),
            reached: Arc::new(AtomicBool::new(false)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            http,
            notes: Notes::default(),
            wire: WireLimits {
                body_bytes: limits.response_body_bytes,
                header_bytes: limits.response_header_bytes,
            },
            max_pace_wait: max_pace_wait(limits),
        }
    }

    /// Send one request of the run: refused unless its origin is granted, with the
    /// connection's credentials and pacing when it has them, held to the run's address
    /// rules and wire limits. Whether it may have reached a server, and what the policy
    /// refused, are recorded for the run.
    fn dispatch(
        &self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
    ) -> DispatchFuture {
        let origin = Origin::of_uri(request.uri());
        let refusal = match &origin {
            Some(origin) => self.policy.refusal(origin, request.method().as_str()),
            None => Some(format!(
                "the sandbox denied a request to {}: not an absolute http(s) URL",
                request.uri()
            )),
        };
        if let Some(refusal) = refusal {
            if let Ok(mut denied) = self.denied.lock() {
                denied.push(refusal);
            }
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // The destination is the URI's authority, and so is the Host header: wasi:http
        // forbids guests to set one, and this holds even if a runtime let one through.
        let mut request = request;
        if let Some(authority) = request
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(http::header::HOST, authority);
        }
        let addresses = self.policy.addresses().clone();
        let (http, reached, in_flight, notes, wire, denied, max_pace_wait) = (
            self.http.clone(),
            self.reached.clone(),
            self.in_flight.clone(),
            self.notes.clone(),
            self.wire,
            self.denied.clone(),
            self.max_pace_wait,
        );
        let connection = origin
            .as_ref()
            .and_then(|o| self.policy.connection_for(o))
            .map(|(name, credentials)| (name.to_string(), credentials.clone()));
        Box::new(async move {
            in_flight.fetch_add(1, Ordering::SeqCst);
            let result = match connection {
                None => {
                    http.send_limited(request, options, wire, &addresses, &notes)
                        .await
                }
                Some((name, credentials)) => {
                    let pacer = credentials.pacer(&name);
                    let to = Destination {
                        http: &http,
                        wire,
                        addresses: &addresses,
                        notes: &notes,
                        pacer: pacer.as_deref(),
                        max_pace_wait,
                    };
                    send_authenticated(to, request, options, &name, credentials.as_ref()).await
                }
            };
            // Refused or timed-out connections, addresses refused by the policy, and
            // failed logins (InternalError) sent nothing.
            let not_sent = matches!(
                result,
                Err(wasmtime_wasi_http::Error::ConnectionRefused
                    | wasmtime_wasi_http::Error::ConnectionTimeout
                    | wasmtime_wasi_http::Error::HttpRequestDenied
                    | wasmtime_wasi_http::Error::InternalError(_))
            );
            if let Ok(mut denied) = denied.lock() {
                denied.extend(notes.take_denials());
            }
            if !not_sent {
                reached.store(true, Ordering::SeqCst);
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

/// Send with the connection's credentials added (replacing any the guest set); on a 401,
/// log in again once and resend. The body is buffered so that it can be resent.
async fn send_authenticated(
    to: Destination<'_>,
    request: http::Request<wasmtime_wasi_http::WasiBody>,
    options: Option<wasmtime_wasi_http::RequestOptions>,
    connection: &str,
    credentials: &dyn ConnectionCredentials,
) -> wasmtime_wasi_http::Result<http::Response<wasmtime_wasi_http::WasiBody>> {
    use http_body_util::{BodyExt, Full};
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let build = |headers: Vec<(String, String)>| -> wasmtime_wasi_http::Result<_> {
        let mut request = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(
                Full::new(body.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
        *request.headers_mut() = parts.headers.clone();
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                wasmtime_wasi_http::Error::InternalError(Some("bad credential header name".into()))
            })?;
            let value = http::HeaderValue::from_str(&value).map_err(|_| {
                wasmtime_wasi_http::Error::InternalError(Some("bad credential header value".into()))
            })?;
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    };
    // A login failure reaches the component as an error that names the connection,
    // never a secret.
    let headers = login(to, options, connection, credentials).await?;
    let response = send_paced(to, options, || build(headers.clone())).await?;
    if response.status() != http::StatusCode::UNAUTHORIZED || !credentials.refreshable(connection) {
        return Ok(response);
    }
    credentials.invalidate(connection);
    let headers = login(to, options, connection, credentials).await?;
    send_paced(to, options, || build(headers.clone())).await
}

/// Send a request once its connection's pacing lets it leave, and tell the pacing what
/// the vendor answered (a 429 pauses every request of the connection; the task that got
/// it sees it and is retried by its engine's rules). A request its connection would hold
/// past the run's pacing wait is not sent: the exchange fails as denied, and the run
/// reports it rate-limited ([`Notes::paced_out`]).
async fn send_paced(
    to: Destination<'_>,
    options: Option<wasmtime_wasi_http::RequestOptions>,
    build: impl Fn() -> wasmtime_wasi_http::Result<http::Request<wasmtime_wasi_http::WasiBody>>,
) -> wasmtime_wasi_http::Result<http::Response<wasmtime_wasi_http::WasiBody>> {
    let Some(pacer) = to.pacer else {
        return to
            .http
            .send_limited(build()?, options, to.wire, to.addresses, to.notes)
            .await;
    };
    let admission = match pacer.admit(to.max_pace_wait).await {
        Ok(admission) => admission,
        Err(refused) => {
            to.notes.paced_out(pool::PacedOut {
                wait: refused.wait,
                reason: refused.reason.to_string(),
            });
            return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
        }
    };
    if !admission.waited.is_zero() || !admission.reasons.is_empty() {
        to.notes.paced(
            admission.waited,
            admission.reasons.iter().map(ToString::to_string),
        );
    }
    let response = to
        .http
        .send_limited(build()?, options, to.wire, to.addresses, to.notes)
        .await?;
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    pacer.observe(response.status().as_u16(), headers);
    drop(admission);
    Ok(response)
}

/// The headers of `connection`, the login held to the run's address rules and to the
/// request's own timeouts (`connectionTimeOut` + `readTimeOut`). A login refused for
/// good is noted, so the run fails `unauthorized`; one that may succeed later fails the
/// attempt as `transport`, naming the connection.
async fn login(
    to: Destination<'_>,
    options: Option<wasmtime_wasi_http::RequestOptions>,
    connection: &str,
    credentials: &dyn ConnectionCredentials,
) -> wasmtime_wasi_http::Result<Vec<(String, String)>> {
    let within = options.and_then(|o| match (o.connect_timeout, o.first_byte_timeout) {
        (None, None) => None,
        (connect, first_byte) => Some(connect.unwrap_or_default() + first_byte.unwrap_or_default()),
    });
    let headers = credentials.headers(connection, to.addresses);
    let result = match within {
        None => headers.await,
        Some(within) => tokio::time::timeout(within, headers).await.unwrap_or_else(|_| {
            Err(crate::credentials::CredentialError {
                message: format!(
                    "connection `{connection}`: login failed: no answer within {} ms (connectionTimeOut + readTimeOut)",
                    within.as_millis()
                ),
                transient: true,
            })
        }),
    };
    result.map_err(|e| {
        if e.transient {
            to.notes.add(e.message.clone());
        } else {
            to.notes.login_refused(e.message.clone());
        }
        wasmtime_wasi_http::Error::InternalError(Some(e.message))
    })
}

/// The pool a run sends through, with its wire limits and where it notes what it hit.
#[derive(Clone, Copy)]
struct Destination<'a> {
    http: &'a HttpPool,
    wire: WireLimits,
    addresses: &'a AddressRules,
    notes: &'a Notes,
    /// The connection's pacing, if it has any.
    pacer: Option<&'a harness_pacing::Pacer>,
    /// How long a request may wait for it.
    max_pace_wait: Duration,
}

/// Reading and writing precompiled component code. Each file is the SHA-256 digest of
/// the code followed by the code: a file that does not match its digest (truncated,
/// corrupted, or written by something else) is never handed to wasmtime, whose own
/// check covers only the version and settings recorded in the code.
mod code_cache {
    #![allow(unsafe_code)]

    use sha2::Digest;
    use std::path::Path;
    use wasmtime::Engine;
    use wasmtime::component::Component;

    const DIGEST_BYTES: usize = 32;

    /// Load precompiled code written by [`store`], if it matches its digest. The file is
    /// read into memory rather than mapped: a mapped file truncated by another process
    /// would crash this one.
    pub(super) fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
        let file = std::fs::read(path)?;
        if file.len() < DIGEST_BYTES {
            wasmtime::bail!("{} is too short to be a cache entry", path.display());
        }
        let (digest, code) = file.split_at(DIGEST_BYTES);
        if sha2::Sha256::digest(code).as_slice() != digest {
            wasmtime::bail!("{} does not match its checksum", path.display());
        }
        // SAFETY: the code is what this harness wrote with `Engine::precompile_component`
        // into its cache directory, as its SHA-256 digest (checked above) shows, under a
        // name keyed by the component's hash and the engine's compatibility hash; wasmtime
        // checks the version and settings recorded in it on load.
        unsafe { Component::deserialize(engine, code) }
    }

    /// Write precompiled code with its digest, atomically (temporary file, then rename).
    pub(super) fn store(dir: &Path, path: &Path, code: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        let mut file = Vec::with_capacity(DIGEST_BYTES + code.len());
        file.extend_from_slice(&sha2::Sha256::digest(code));
        file.extend_from_slice(code);
        std::fs::write(&temporary, file)?;
        std::fs::rename(&temporary, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_billingplatform_task_waits_longer_than_its_400_second_server_timeout() {
        let limits = Limits::default();
        let billingplatform = limits.timeout_for("billingplatform-update-usage-identifier");
        assert!(billingplatform > Duration::from_secs(400));
        assert_eq!(billingplatform, BILLINGPLATFORM_TIMEOUT);
        assert_eq!(
            limits.timeout_for("zuora-update-usage"),
            Duration::from_secs(130)
        );
    }
}

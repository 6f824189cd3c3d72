//! The `harness` command line: argument parsing, printing and exit codes, no logic.
//! It lives in the library so that tests drive it in-process with captured output.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harness_mock::{MockServer, Vendor};
use harness_runner::{self as runner, TaskStatus};
use harness_sandbox::{self as sandbox, Sandbox, SandboxError, SandboxOptions};
use std::io::Read;
use std::io::Write;
use std::path::PathBuf;

/// Run billing integrations as sandboxed WebAssembly tasks.
#[derive(Parser)]
#[command(name = "harness", version, about)]
struct Cli {
    /// Directory of the compiled-code cache (default: $HARNESS_CACHE_DIR, else
    /// $XDG_CACHE_HOME/usage-billing-harness, else ~/.cache/usage-billing-harness).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Compile the components without reading or writing the code cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Connections file (`harness.toml`). Without it, connections named `billingplatform`,
    /// `zuora`, `elevate` and `rebilly` lead to the embedded mock with its credentials.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Wall-clock limit of one task run, in milliseconds (default 130000; overrides
    /// `[limits] timeout_ms`).
    #[arg(long, global = true)]
    timeout_ms: Option<u64>,
    /// Linear memory cap of one task run, in MiB (default 64; overrides `[limits] memory_mib`).
    #[arg(long, global = true)]
    memory_mib: Option<u64>,
    /// Fuel per task run, a deterministic CPU budget (default off; overrides `[limits] fuel`).
    #[arg(long, global = true)]
    fuel: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one task on a JSON input and print its result as JSON.
    Task {
        /// Task name (see `harness list`).
        task: String,
        /// Input file, or `-` for stdin.
        #[arg(long, default_value = "-")]
        input: String,
        /// Server to call; replaces the input's `baseUrl` (for `http`, resolves a relative `uri`).
        /// Without it and without a `baseUrl`, an embedded mock is started and used.
        #[arg(long)]
        base_url: Option<String>,
        /// Print the request the task would send (credentials redacted, body exact) and
        /// send nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// List the tasks with their method and path.
    List {
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// Print a task's input JSON Schema and an example input.
    Describe {
        /// Task name.
        task: String,
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// Check a workflow definition: every problem at once, with its JSON path.
    Validate {
        /// The definition (Conductor JSON).
        definition: PathBuf,
        /// Task definitions in a separate file (a JSON array, as Conductor keeps them);
        /// they add to, and win over, the definition's inline `taskDefinitions`.
        #[arg(long)]
        task_definitions: Option<PathBuf>,
        /// Outputs for tasks that are not run, as Conductor's workflow test request
        /// (`{"taskRefToMockOutput": {"<ref>": [{"status": …, "output": {…}}]}}`).
        #[arg(long)]
        mock_outputs: Option<PathBuf>,
        /// Workflow definitions a run may start (`failureWorkflow`, `SUB_WORKFLOW` by name), one per file:
        /// `NAME.json` or `NAME_vVERSION.json`; they are validated too.
        #[arg(long)]
        definitions: Option<PathBuf>,
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// Validate, then run a workflow definition locally, with progress on stderr and the
    /// result as JSON on stdout.
    Run {
        /// The definition (Conductor JSON).
        definition: PathBuf,
        /// The workflow input (JSON object).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Task definitions in a separate file (a JSON array, as Conductor keeps them);
        /// they add to, and win over, the definition's inline `taskDefinitions`.
        #[arg(long)]
        task_definitions: Option<PathBuf>,
        /// Outputs for tasks that are not run, as Conductor's workflow test request
        /// (`{"taskRefToMockOutput": {"<ref>": [{"status": …, "output": {…}}]}}`): custom
        /// workers this harness does not have, or tasks you do not want to call.
        #[arg(long)]
        mock_outputs: Option<PathBuf>,
        /// Workflow definitions a run may start (`failureWorkflow`, `SUB_WORKFLOW` by name), one per file:
        /// `NAME.json` or `NAME_vVERSION.json`.
        #[arg(long)]
        definitions: Option<PathBuf>,
        /// `${workflow.correlationId}`.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Run it on a Temporal cluster (its frontend, HOST:PORT) instead of locally: the
        /// definition is submitted as a `run-definition` workflow, run by `harness worker`s.
        #[arg(long)]
        temporal_address: Option<String>,
        /// Print the request every task would send (credentials redacted, bodies exact)
        /// and send nothing: outputs come from --mock-outputs where given and are unknown
        /// (null) otherwise; tasks that could not be planned are named (exit 1).
        #[arg(long, conflicts_with = "temporal_address")]
        plan: bool,
        #[command(flatten)]
        temporal: TemporalArgs,
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// Serve Temporal: every task as an activity (type = task name) and the
    /// `run-definition` workflow, on a task queue, until interrupted.
    Worker {
        /// The Temporal frontend, HOST:PORT.
        #[arg(long)]
        temporal_address: String,
        #[command(flatten)]
        temporal: TemporalArgs,
        #[command(flatten)]
        user_tasks: UserTasks,
    },
    /// Measure task cost against a native pooled HTTP baseline, in one process.
    Bench {
        /// A small run (a few iterations of everything), for CI.
        #[arg(long)]
        quick: bool,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Drive many workflows against the in-process mock, then account for every task in
    /// the mock's records (exit 1 if any is missing or duplicated). `--scenario faults`
    /// (the default) injects random faults; `--scenario paced` sends one vendor's tasks
    /// against its enforced rate limit (exit 1 also when a task failed).
    Soak {
        /// `faults` or `paced`.
        #[arg(long, value_enum, default_value_t = SoakScenario::Faults)]
        scenario: SoakScenario,
        /// How many tasks, one workflow each (default 10,000 for faults, dealt to the
        /// four vendor tasks in turn; 1,000 for paced).
        #[arg(long)]
        tasks: Option<usize>,
        /// faults: the fraction of task requests that get an injected fault, 0 to 1
        /// (default 0.05).
        #[arg(long)]
        fault_rate: Option<f64>,
        /// faults: seed of the mock's random fault sequence (default 42).
        #[arg(long)]
        seed: Option<u64>,
        /// paced: the vendor every task calls (billingplatform, zuora, elevate, rebilly).
        #[arg(long, value_parser = parse_vendor)]
        vendor: Option<Vendor>,
        /// paced: the rate the mock enforces, in the vendor's style: requests per second
        /// (`15`) or a rate (`3000/10m`).
        #[arg(long, value_parser = harness_loadtest::paced::parse_rate)]
        vendor_rate: Option<harness_pacing::Rate>,
        /// paced: the rate the connection is paced at (default: the vendor's).
        #[arg(long, value_parser = harness_loadtest::paced::parse_rate)]
        connection_rate: Option<harness_pacing::Rate>,
        /// paced: latency the mock adds to every answer, in milliseconds.
        #[arg(long)]
        latency_ms: Option<u64>,
        /// The most workflows in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Serve the vendor mock until interrupted.
    Mock {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Enforce a vendor's rate limit, in the vendor's style (its own 429 and
        /// headers): VENDOR=RATE, e.g. `zuora=50/s`, `rebilly=3000/10m`. Repeatable.
        #[arg(long = "rate", value_name = "VENDOR=RATE", value_parser = harness_mock::parse_vendor_rate)]
        rates: Vec<(Vendor, harness_pacing::Rate)>,
        /// Add this much latency before every vendor answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
}

/// What `harness soak` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SoakScenario {
    /// Random faults on every vendor's endpoint.
    Faults,
    /// One vendor's tasks against its enforced rate limit.
    Paced,
}

/// `--vendor NAME`.
fn parse_vendor(text: &str) -> std::result::Result<Vendor, String> {
    Vendor::parse(text).ok_or_else(|| {
        format!("`{text}` is not a vendor (billingplatform, zuora, elevate, rebilly)")
    })
}

/// `--tasks DIR`, on the commands that run or describe tasks.
#[derive(clap::Args)]
struct UserTasks {
    /// Your own task components: every `*.wasm` in DIR that exports the `task`
    /// interface runs beside the shipped tasks, under the name its `info` gives, in the
    /// same sandbox (docs/user-tasks.md).
    #[arg(long = "tasks", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Command {
    /// The `--tasks DIR` of a command that takes it.
    fn tasks_dir(&self) -> Option<PathBuf> {
        match self {
            Command::Task { user_tasks, .. }
            | Command::List { user_tasks }
            | Command::Describe { user_tasks, .. }
            | Command::Validate { user_tasks, .. }
            | Command::Run { user_tasks, .. }
            | Command::Worker { user_tasks, .. } => user_tasks.dir.clone(),
            Command::Bench { .. } | Command::Soak { .. } | Command::Mock { .. } => None,
        }
    }
}

/// Where on a Temporal cluster.
#[derive(clap::Args)]
struct TemporalArgs {
    /// Temporal namespace.
    #[arg(long, default_value = harness_temporal::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Temporal task queue.
    #[arg(long, default_value = harness_temporal::DEFAULT_TASK_QUEUE)]
    task_queue: String,
}

/// A usage or configuration error: exit status 2 with a one-line message.
struct UsageError(String);

/// Exit status: the task completed (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// Exit status: the task failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: usage or configuration error (unknown task, unreadable or non-JSON input).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the task or workflow ran, so its requests may have been sent and applied,
/// but its result could not be written (stdout closed or full). Never "nothing happened":
/// check the records before running it again.
pub const EXIT_UNREPORTED: u8 = 3;

/// The result of a command that ran could not be written.
#[derive(Debug)]
struct Unreported(std::io::Error);

impl std::fmt::Display for Unreported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the result could not be written ({}); the run's requests may have been sent and applied: check the records before running it again",
            self.0
        )
    }
}

impl std::error::Error for Unreported {}

/// Write the result of a command that ran (requests may have gone out).
/// It is written as it is serialized, never held whole as text (a batch's result can be
/// tens of megabytes).
fn report(out: &mut (dyn Write + Send), result: &impl serde::Serialize) -> Result<()> {
    let mut buffered = std::io::BufWriter::with_capacity(64 << 10, &mut *out);
    serde_json::to_writer_pretty(&mut buffered, result)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(buffered))
        .and_then(|()| buffered.flush())
        .map_err(|e| Unreported(e).into())
}

/// Run the command line `args` (program name first), writing results to `out` and
/// messages to `err`; returns the exit status.
pub async fn run(
    args: Vec<String>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let config = match cli
        .config
        .as_deref()
        .map(harness_config::Connections::load)
        .transpose()
    {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(err, "harness: {e}");
            return EXIT_USAGE;
        }
    };
    // Limits: defaults, then `[limits]` of the config, then the command line.
    let overrides = harness_config::LimitsEntry {
        timeout_ms: cli.timeout_ms,
        memory_mib: cli.memory_mib,
        fuel: cli.fuel,
        ..Default::default()
    };
    let limits = config
        .as_ref()
        .map_or(Ok(sandbox::Limits::default()), |c| {
            c.limits().apply(sandbox::Limits::default())
        })
        .and_then(|limits| overrides.apply(limits));
    let limits = match limits {
        Ok(limits) => limits,
        Err(e) => {
            // Named as the option the user most likely gave.
            let option = e.key.replace('_', "-");
            let _ = writeln!(
                err,
                "harness: --{option}: must be between {} and {}, not {}",
                e.min, e.max, e.value
            );
            return EXIT_USAGE;
        }
    };
    let options = SandboxOptions {
        limits,
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.or_else(sandbox::default_cache_dir)
        },
        // One command runs one task at a time: a small instance pool.
        max_in_flight: 16,
        tasks_dir: cli.command.tasks_dir(),
        send_path: config
            .as_ref()
            .and_then(|c| c.send_path())
            .unwrap_or_default(),
    };
    match execute(cli.command, options, config, out, err).await {
        Ok(code) => code,
        Err(e) if e.is::<Unreported>() => {
            let _ = writeln!(err, "harness: {e}");
            EXIT_UNREPORTED
        }
        Err(e) => {
            match e.downcast::<UsageError>() {
                Ok(UsageError(message)) => {
                    let _ = writeln!(err, "harness: {}", printable(&message));
                }
                Err(e) => {
                    let _ = writeln!(err, "harness: {}", printable(&format!("{e:#}")));
                }
            }
            EXIT_USAGE
        }
    }
}

impl std::fmt::Debug for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn unknown_task(e: SandboxError) -> anyhow::Error {
    match e {
        SandboxError::UnknownTask(_) => usage(e.to_string()),
        other => other.into(),
    }
}

async fn execute(
    command: Command,
    options: SandboxOptions,
    config: Option<harness_config::Connections>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    match command {
        Command::Task {
            task,
            input,
            base_url,
            plan,
            ..
        } => {
            run_task(
                &task,
                &input,
                base_url.as_deref(),
                plan,
                options,
                config,
                out,
                err,
            )
            .await
        }
        Command::List { .. } => {
            let sandbox = Sandbox::builtin_with(options).await?;
            for info in sandbox.tasks() {
                writeln!(
                    out,
                    "{:<42} {:<6} {:<58} {}",
                    info.name,
                    info.method,
                    info.path,
                    if info.idempotent {
                        "idempotent"
                    } else {
                        "not idempotent"
                    }
                )?;
            }
            Ok(EXIT_OK)
        }
        Command::Describe { task, .. } => {
            let sandbox = Sandbox::builtin_only(&task, options)
                .await
                .map_err(unknown_task)?;
            let info = sandbox.info(&task).context("task info")?;
            let schema: serde_json::Value =
                serde_json::from_str(&info.input_schema).context("the task's input schema")?;
            let example: serde_json::Value =
                serde_json::from_str(&info.example_input).context("the task's example input")?;
            let described = serde_json::json!({
                "name": info.name,
                "description": info.description,
                "method": info.method,
                "path": info.path,
                "idempotent": info.idempotent,
                "inputSchema": schema,
                "exampleInput": example,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&described)?)?;
            Ok(EXIT_OK)
        }
        Command::Validate {
            definition,
            task_definitions,
            mock_outputs,
            definitions,
            ..
        } => {
            let value =
                with_task_definitions(read_json(&definition)?, task_definitions.as_deref())?;
            let mocks = read_mocks(mock_outputs.as_deref())?;
            let definitions = read_definitions(definitions.as_deref())?;
            let sandbox = Sandbox::builtin_with(options).await?;
            let report =
                definition_problems(&value, config.as_ref(), &sandbox, &mocks, &definitions);
            for warning in &report.warnings {
                writeln!(
                    out,
                    "warning: {}: {}",
                    printable(&warning.path),
                    printable(&warning.message)
                )?;
            }
            let problems = report.problems;
            if problems.is_empty() {
                writeln!(out, "{}: valid", definition.display())?;
                return Ok(EXIT_OK);
            }
            for problem in &problems {
                writeln!(
                    out,
                    "{}: {}",
                    printable(&problem.path),
                    printable(&problem.message)
                )?;
            }
            writeln!(
                out,
                "{}: {} problem(s)",
                definition.display(),
                problems.len()
            )?;
            Ok(EXIT_FAILED)
        }
        Command::Run {
            definition,
            input,
            task_definitions,
            mock_outputs,
            definitions,
            correlation_id,
            temporal_address,
            plan,
            temporal,
            ..
        } => {
            let definitions = read_definitions(definitions.as_deref())?;
            let value =
                with_task_definitions(read_json(&definition)?, task_definitions.as_deref())?;
            let mocks_value = match mock_outputs.as_deref() {
                Some(file) => read_json(file)?,
                None => serde_json::Value::Null,
            };
            let mocks = read_mocks(mock_outputs.as_deref())?;
            if let Some(address) = temporal_address {
                let target = harness_temporal::Target {
                    address,
                    namespace: temporal.namespace,
                    task_queue: temporal.task_queue,
                };
                let sandbox = Sandbox::builtin_with(options).await?;
                ensure_valid(
                    &value,
                    config.as_ref(),
                    &sandbox,
                    &definition,
                    (&mocks, &definitions),
                    err,
                )?;
                warn_task_limits_on_temporal(&value, err);
                let input = match input {
                    Some(file) => read_json(&file)?,
                    None => serde_json::json!({}),
                };
                let run = harness_temporal::workflow::RunDefinitionInput {
                    definition: value,
                    input,
                    correlation_id,
                    mocks: mocks_value,
                    definitions: definitions.values().to_vec(),
                    tasks: sandbox
                        .tasks()
                        .map(|info| info.name.clone())
                        .filter(|name| !sandbox::BUILTIN_COMPONENTS.iter().any(|(b, _)| b == name))
                        .collect(),
                };
                return run_on_temporal(&target, run, out, err).await;
            }
            let sandbox = std::sync::Arc::new(
                Sandbox::builtin_with(SandboxOptions {
                    max_in_flight: 64,
                    ..options
                })
                .await?,
            );
            ensure_valid(
                &value,
                config.as_ref(),
                &sandbox,
                &definition,
                (&mocks, &definitions),
                err,
            )?;
            let def: harness_workflow::definition::WorkflowDef = serde_json::from_value(value)
                .map_err(|e| usage(format!("{}: {e}", definition.display())))?;
            let input = match input {
                Some(file) => read_json(&file)?,
                None => serde_json::json!({}),
            };
            // Without --config, tasks that name no server call the embedded mock. With it,
            // no mock is started and such a task fails on its missing baseUrl: real usage
            // never goes to a mock.
            let (connections, mock) = connections_or_mock(config).await;
            let base_url_for = mock_base_urls(mock);
            let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let progress: harness_workflow::Progress = std::sync::Arc::new(move |line: &str| {
                let _ = lines_tx.send(line.to_string());
            });
            let policy = connections.policy().clone();
            let credentials = std::sync::Arc::new(harness_config::Credentials::new(
                connections,
                sandbox.http(),
            ));
            // A plan waits for nothing: its WAITs and retries pass on a clock of its own.
            let clock: std::sync::Arc<dyn harness_workflow::Clock> = if plan {
                std::sync::Arc::new(harness_workflow::ManualClock::default())
            } else {
                std::sync::Arc::new(harness_workflow::SystemClock::default())
            };
            let runner =
                harness_workflow::WorkflowRunner::new(sandbox, clock, base_url_for, progress)
                    .with_credentials(credentials)
                    .with_policy(policy);
            let runner = if plan { runner.planning() } else { runner };
            let run_options = harness_workflow::RunOptions {
                correlation_id,
                mocks,
                definitions: std::sync::Arc::new(definitions),
                ..harness_workflow::RunOptions::fresh()
            };
            let running = runner.run_with(&def, input, run_options);
            tokio::pin!(running);
            let result = loop {
                tokio::select! {
                    result = &mut running => break result,
                    Some(line) = lines_rx.recv() => {
                        // Progress is best effort: a closed stderr never stops a run.
                        let _ = writeln!(err, "{}", printable(&line));
                        let _ = err.flush();
                    }
                }
            };
            while let Ok(line) = lines_rx.try_recv() {
                let _ = writeln!(err, "{}", printable(&line));
            }
            if plan {
                return plan_report(&runner.plans(), &result, out);
            }
            report(out, &result)?;
            Ok(if result.status == "COMPLETED" {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        Command::Worker {
            temporal_address,
            temporal,
            ..
        } => {
            let target = harness_temporal::Target {
                address: temporal_address,
                namespace: temporal.namespace,
                task_queue: temporal.task_queue,
            };
            run_worker(&target, options, config, err).await
        }
        Command::Bench { quick, json } => {
            let exe = std::env::current_exe().ok();
            // Cold start is timed on real `harness` processes when this is that binary.
            let harness_bin = exe.filter(|p| p.file_stem().is_some_and(|s| s == "harness"));
            let report = harness_loadtest::bench::run(
                harness_loadtest::bench::BenchOptions { quick, harness_bin },
                out,
            )
            .await?;
            if let Some(file) = json {
                std::fs::write(&file, serde_json::to_string_pretty(&report)?)
                    .map_err(|e| usage(format!("cannot write {}: {e}", file.display())))?;
            }
            Ok(EXIT_OK)
        }
        Command::Soak {
            scenario,
            tasks,
            fault_rate,
            seed,
            vendor,
            vendor_rate,
            connection_rate,
            latency_ms,
            concurrency,
            json,
        } => {
            if config.is_some() {
                return Err(usage("soak runs on the embedded mock only; drop --config"));
            }
            let write_json = |report: &serde_json::Value| -> Result<()> {
                if let Some(file) = &json {
                    std::fs::write(file, serde_json::to_string_pretty(report)?)
                        .map_err(|e| usage(format!("cannot write {}: {e}", file.display())))?;
                }
                Ok(())
            };
            match scenario {
                SoakScenario::Faults => {
                    let paced_only = [
                        ("--vendor", vendor.is_some()),
                        ("--vendor-rate", vendor_rate.is_some()),
                        ("--connection-rate", connection_rate.is_some()),
                        ("--latency-ms", latency_ms.is_some()),
                    ];
                    if let Some((flag, _)) = paced_only.iter().find(|(_, given)| *given) {
                        return Err(usage(format!(
                            "{flag} is for --scenario paced (the fault soak deals tasks to every vendor, unlimited)"
                        )));
                    }
                    let soak = harness_loadtest::soak::SoakOptions {
                        tasks: tasks.unwrap_or(10_000),
                        fault_rate: fault_rate.unwrap_or(0.05),
                        concurrency,
                        seed: seed.unwrap_or(harness_loadtest::soak::DEFAULT_SEED),
                    };
                    soak.check().map_err(|e| usage(e.to_string()))?;
                    let report = harness_loadtest::soak::run(soak, options, out).await?;
                    write_json(&report.to_json())?;
                    Ok(if report.clean() { EXIT_OK } else { EXIT_FAILED })
                }
                SoakScenario::Paced => {
                    if let Some(flag) = [
                        ("--fault-rate", fault_rate.is_some()),
                        ("--seed", seed.is_some()),
                    ]
                    .iter()
                    .find_map(|(flag, given)| given.then_some(flag))
                    {
                        return Err(usage(format!(
                            "{flag} is for --scenario faults (the paced soak injects no faults)"
                        )));
                    }
                    let (Some(vendor), Some(vendor_rate)) = (vendor, vendor_rate) else {
                        return Err(usage(
                            "--scenario paced needs --vendor V and --vendor-rate R, e.g. --vendor zuora --vendor-rate 15",
                        ));
                    };
                    let paced = harness_loadtest::paced::PacedOptions {
                        vendor,
                        tasks: tasks.unwrap_or(harness_loadtest::paced::DEFAULT_TASKS),
                        vendor_rate,
                        connection_rate,
                        latency_ms: latency_ms.unwrap_or(0),
                        concurrency,
                    };
                    paced.check().map_err(|e| usage(e.to_string()))?;
                    let report = harness_loadtest::paced::run(paced, options, out).await?;
                    write_json(&report.to_json())?;
                    Ok(if report.ok() { EXIT_OK } else { EXIT_FAILED })
                }
            }
        }
        Command::Mock {
            port,
            rates,
            latency_ms,
        } => {
            let mock = MockServer::start_on(port)
                .await
                .map_err(|e| usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
            for (vendor, rate) in rates {
                mock.set_rate_limit(vendor, Some(rate));
            }
            mock.set_latency(std::time::Duration::from_millis(latency_ms));
            writeln!(out, "mock listening on {}", mock.uri())?;
            for vendor in [
                Vendor::BillingPlatform,
                Vendor::Zuora,
                Vendor::Elevate,
                Vendor::Rebilly,
            ] {
                let limit = mock
                    .rate_limit(vendor)
                    .map_or(String::new(), |rate| format!(" (limited to {rate})"));
                writeln!(
                    out,
                    "  {:<16} {}{limit}",
                    vendor.name(),
                    mock.base_url(vendor)
                )?;
            }
            writeln!(
                out,
                "  admin            {}/__admin/journal, /__admin/faults, /__admin/limits, /__admin/records, /__admin/reset",
                mock.uri()
            )?;
            out.flush()?;
            tokio::signal::ctrl_c().await?;
            Ok(EXIT_OK)
        }
    }
}

/// `harness run --temporal-address`: submit the run (validated as a local run is),
/// wait, print.
async fn run_on_temporal(
    target: &harness_temporal::Target,
    run: harness_temporal::workflow::RunDefinitionInput,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    let line = format!(
        "on Temporal {} (namespace {}, task queue {}): waiting for its result",
        target.address, target.namespace, target.task_queue
    );
    let result = harness_temporal::submit(target, run, |id| {
        let _ = writeln!(
            err,
            "started workflow {id} ({}) {line}",
            harness_temporal::WORKFLOW_TYPE
        );
        let _ = err.flush();
    })
    .await
    .map_err(|e| usage(format!("{e:#}")))?;
    report(out, &result)?;
    Ok(if result["status"] == "COMPLETED" {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `harness worker`: the activities run on the same sandbox, connections, policy and
/// default server (the embedded mock without `--config`) as a local `harness run`.
async fn run_worker(
    target: &harness_temporal::Target,
    options: SandboxOptions,
    config: Option<harness_config::Connections>,
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    let sandbox = std::sync::Arc::new(
        Sandbox::builtin_with(SandboxOptions {
            max_in_flight: harness_temporal::ACTIVITY_SLOTS,
            ..options
        })
        .await?,
    );
    let (connections, mock) = connections_or_mock(config).await;
    let mock_uri = mock.as_ref().map(|mock| mock.uri());
    let base_url_for = mock_base_urls(mock);
    let policy = connections.policy().clone();
    let credentials = std::sync::Arc::new(harness_config::Credentials::new(
        connections,
        sandbox.http(),
    ));
    // Progress lines go to stderr as they happen (the worker runs until interrupted).
    let progress: harness_workflow::Progress = std::sync::Arc::new(|line: &str| {
        eprintln!("{}", printable(line));
    });
    let env = std::sync::Arc::new(harness_temporal::activities::ActivityEnv {
        sandbox,
        credentials: Some(credentials),
        policy,
        base_url_for,
        progress,
    });
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let paced: String = harness_temporal::paced_queues(&target.task_queue, &env)
        .iter()
        .map(|p| {
            format!(
                " and {} (connection {}, at most {} across workers)",
                p.queue, p.connection, p.rate
            )
        })
        .collect();
    let ready_line = format!(
        "worker polling task queue {}{paced} in namespace {} on Temporal {}{}",
        target.task_queue,
        target.namespace,
        target.address,
        match mock_uri {
            Some(uri) => format!(" (tasks without a server call the embedded mock at {uri})"),
            None => String::new(),
        }
    );
    harness_temporal::run_worker(target.clone(), env, shutdown, move || {
        eprintln!("{ready_line}");
    })
    .await
    .map_err(|e| usage(format!("{e:#}")))?;
    writeln!(err, "worker stopped")?;
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)]
async fn run_task(
    task: &str,
    input: &str,
    base_url: Option<&str>,
    plan: bool,
    options: SandboxOptions,
    config: Option<harness_config::Connections>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    let text = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("cannot read the input from stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(PathBuf::from(input))
            .map_err(|e| usage(format!("cannot read input file {input}: {e}")))?
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| usage(format!("input {input} is not JSON: {e}")))?;
    let sandbox = Sandbox::builtin_only(task, options)
        .await
        .map_err(unknown_task)?;

    // Without a server to call (or a configured connection), start the embedded mock:
    // for a shipped task (a user's own task is given no server it did not ask for).
    let named_connection = value.get("connection").is_some();
    let names_server = runner::names_server(task, &value);
    let shipped = Vendor::for_task(task).is_some() || task == "http";
    let needs_mock =
        config.is_none() && (named_connection || (shipped && base_url.is_none() && !names_server));
    let mock = if needs_mock {
        Some(MockServer::start().await)
    } else {
        None
    };
    let mock_base = mock.as_ref().map(|mock| match Vendor::for_task(task) {
        Some(vendor) => mock.base_url(vendor),
        None => mock.uri(),
    });
    let connections = match (config, &mock) {
        (Some(config), _) => Some(config),
        (None, Some(mock)) => Some(harness_config::Connections::for_mock(mock)),
        (None, None) => None,
    };
    let credentials = connections
        .map(|c| std::sync::Arc::new(harness_config::Credentials::new(c, sandbox.http())));
    let prepared = runner::prepare_connected(
        task,
        value,
        base_url.or(mock_base.as_deref()),
        credentials.as_ref(),
    );
    if plan {
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(outcome) => {
                report(out, &outcome.to_json())?;
                return Ok(EXIT_FAILED);
            }
        };
        return match runner::plan_task(&sandbox, task, &prepared)
            .await
            .map_err(unknown_task)?
        {
            Some(Ok(plan)) => {
                report(out, &plan)?;
                Ok(EXIT_OK)
            }
            Some(Err(outcome)) => {
                report(out, &outcome.to_json())?;
                Ok(EXIT_FAILED)
            }
            None => Err(usage(format!(
                "task `{task}` cannot plan its request apart from sending it: its component does not export usage-billing:tasks/exchange (run it without --plan)"
            ))),
        };
    }
    let outcome = match prepared {
        Ok(prepared) => runner::run_task(&sandbox, task, &prepared.input, prepared.policy)
            .await
            .map_err(unknown_task)?,
        Err(outcome) => *outcome,
    };
    for line in outcome.guest_log.lines() {
        let _ = writeln!(err, "[{task}] {}", printable(line));
    }
    report(out, &outcome.to_json())?;
    Ok(match outcome.status {
        TaskStatus::Completed => EXIT_OK,
        _ => EXIT_FAILED,
    })
}

/// `harness run --plan`'s report: `status` `PLANNED` (every task that may send was
/// planned) or `INCOMPLETE`, `sent: false`, the `tasks` as planned in the order they were
/// reached, `notPlanned` (their references), and the walk's own end (`workflowStatus`,
/// `reasonForIncompletion`: a TERMINATE, or a SWITCH on an unknown output, decides it).
fn plan_report(
    plans: &[serde_json::Value],
    result: &harness_workflow::WorkflowResult,
    out: &mut (dyn Write + Send),
) -> Result<u8> {
    let not_planned: Vec<serde_json::Value> = plans
        .iter()
        .filter(|p| p["planned"] != true)
        .map(|p| p["reference"].clone())
        .collect();
    let walked = result.to_json();
    let complete = not_planned.is_empty();
    report(
        out,
        &serde_json::json!({
            "status": if complete { "PLANNED" } else { "INCOMPLETE" },
            "sent": false,
            "tasks": plans,
            "notPlanned": not_planned,
            "workflowStatus": walked["status"],
            "reasonForIncompletion": walked.get("reasonForIncompletion"),
        }),
    )?;
    Ok(if complete { EXIT_OK } else { EXIT_FAILED })
}

/// The most bytes a definition, task-definitions or workflow input file may hold
/// (`definition_bytes`): it is read whole, and every fork branch starts from it.
const MAX_JSON_FILE_BYTES: u64 = 16 << 20;

fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let length = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?
        .len();
    if length > MAX_JSON_FILE_BYTES {
        return Err(usage(format!(
            "{} holds {length} bytes, more than the {MAX_JSON_FILE_BYTES} a definition or input file may (definition_bytes)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| usage(format!("{} is not JSON: {e}", path.display())))
}

/// Merge task definitions kept in a separate file into the definition's
/// `taskDefinitions` (the file's entry wins for a task named in both).
fn with_task_definitions(
    mut definition: serde_json::Value,
    file: Option<&std::path::Path>,
) -> Result<serde_json::Value> {
    let Some(file) = file else {
        return Ok(definition);
    };
    let extra = read_json(file)?;
    let serde_json::Value::Array(extra) = extra else {
        return Err(usage(format!(
            "{}: must be a JSON array of task definitions",
            file.display()
        )));
    };
    let Some(object) = definition.as_object_mut() else {
        return Ok(definition);
    };
    let names: Vec<serde_json::Value> = extra
        .iter()
        .filter_map(|d| d.get("name").cloned())
        .collect();
    let mut merged: Vec<serde_json::Value> = match object.remove("taskDefinitions") {
        Some(serde_json::Value::Array(inline)) => inline
            .into_iter()
            .filter(|d| d.get("name").is_none_or(|n| !names.contains(n)))
            .collect(),
        _ => Vec::new(),
    };
    merged.extend(extra);
    object.insert("taskDefinitions".into(), serde_json::Value::Array(merged));
    Ok(definition)
}

/// Warn, for a run on Temporal, about task definitions whose Conductor limits
/// (`rateLimitPerFrequency`, `concurrentExecLimit`) the workflow holds within the run
/// only (a Conductor server holds them across all its workflows).
fn warn_task_limits_on_temporal(definition: &serde_json::Value, err: &mut (dyn Write + Send)) {
    let defs = definition["taskDefinitions"]
        .as_array()
        .into_iter()
        .flatten();
    for (i, def) in defs.enumerate() {
        let set: Vec<&str> = ["rateLimitPerFrequency", "concurrentExecLimit"]
            .into_iter()
            .filter(|field| def[*field].as_u64().is_some_and(|n| n > 0))
            .collect();
        if set.is_empty() {
            continue;
        }
        let _ = writeln!(
            err,
            "warning: $.taskDefinitions[{i}] ({}): on Temporal {} within this run only, not across runs as on a Conductor server; to pace across runs and workers, set `rate` / `max_in_flight` on the connection in harness.toml (docs/pacing.md)",
            printable(def["name"].as_str().unwrap_or_default()),
            match set.as_slice() {
                [one] => format!("{one} holds"),
                _ => format!("{} hold", set.join(" and ")),
            }
        );
    }
}

/// A usage error listing every problem of a definition that is not valid; its warnings
/// go to `err`.
fn ensure_valid(
    value: &serde_json::Value,
    config: Option<&harness_config::Connections>,
    sandbox: &Sandbox,
    definition: &std::path::Path,
    (mocks, definitions): (&harness_workflow::Mocks, &harness_workflow::Definitions),
    err: &mut (dyn Write + Send),
) -> Result<()> {
    let report = definition_problems(value, config, sandbox, mocks, definitions);
    for warning in &report.warnings {
        let _ = writeln!(
            err,
            "warning: {}: {}",
            printable(&warning.path),
            printable(&warning.message)
        );
    }
    let problems = report.problems;
    if problems.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", printable(&p.path), printable(&p.message)))
        .collect();
    Err(usage(format!(
        "{} is not valid (run `harness validate` for details): {}",
        definition.display(),
        listed.join("; ")
    )))
}

/// Every problem of a definition and of the definitions it may start: task and
/// connection names, references, and literal inputs against each loaded task's input
/// JSON Schema. A problem of a started definition has its name and version before its
/// path.
fn definition_problems(
    definition: &serde_json::Value,
    config: Option<&harness_config::Connections>,
    sandbox: &Sandbox,
    mocks: &harness_workflow::Mocks,
    definitions: &harness_workflow::Definitions,
) -> harness_workflow::validate::Report {
    let names = connection_names(config);
    let connections: Vec<&str> = names.iter().map(String::as_str).collect();
    let schemas: std::collections::BTreeMap<String, serde_json::Value> = sandbox
        .tasks()
        .filter_map(|info| {
            Some((
                info.name.clone(),
                serde_json::from_str(&info.input_schema).ok()?,
            ))
        })
        .collect();
    let mocked = mocks.references().map(String::from).collect();
    let secrets: Vec<&str> = config.map(|c| c.secret_names()).unwrap_or_default();
    let tasks: Vec<&str> = sandbox.tasks().map(|info| info.name.as_str()).collect();
    let catalog = harness_workflow::validate::Catalog {
        tasks: &tasks,
        connections: Some(&connections),
        schemas: &schemas,
        mocked: &mocked,
        secrets: Some(&secrets),
        definitions,
    };
    let mut report = harness_workflow::validate::validate(definition, &catalog);
    for started in definitions.values() {
        let name = format!(
            "{} version {}",
            started["name"].as_str().unwrap_or_default(),
            started["version"].as_u64().unwrap_or(1)
        );
        let found = harness_workflow::validate::validate(started, &catalog);
        let named = |mut p: harness_workflow::validate::Problem| {
            p.path = format!("{name} {}", p.path);
            p
        };
        report
            .problems
            .extend(found.problems.into_iter().map(named));
        report
            .warnings
            .extend(found.warnings.into_iter().map(named));
    }
    report
}

/// `--definitions DIR`, read (a usage error names the file).
fn read_definitions(dir: Option<&std::path::Path>) -> Result<harness_workflow::Definitions> {
    match dir {
        None => Ok(harness_workflow::Definitions::default()),
        Some(dir) => harness_workflow::Definitions::load_dir(dir).map_err(|e| usage(e.to_string())),
    }
}

/// `--mock-outputs`, read and checked (a usage error names the field).
fn read_mocks(file: Option<&std::path::Path>) -> Result<harness_workflow::Mocks> {
    let Some(file) = file else {
        return Ok(harness_workflow::Mocks::default());
    };
    harness_workflow::Mocks::parse(&read_json(file)?)
        .map_err(|e| usage(format!("{}: {e}", file.display())))
}
/// The configured connection names, or the embedded mock's.
fn connection_names(config: Option<&harness_config::Connections>) -> Vec<String> {
    match config {
        Some(config) => config.names().into_iter().map(String::from).collect(),
        None => ["billingplatform", "elevate", "rebilly", "zuora"]
            .map(String::from)
            .to_vec(),
    }
}

/// The configured connections; without a config, the embedded mock (started here, and
/// only here: a run with `--config` opens no listening socket) and its connections.
async fn connections_or_mock(
    config: Option<harness_config::Connections>,
) -> (
    harness_config::Connections,
    Option<std::sync::Arc<MockServer>>,
) {
    match config {
        Some(config) => (config, None),
        None => {
            let mock = std::sync::Arc::new(MockServer::start().await);
            (harness_config::Connections::for_mock(&mock), Some(mock))
        }
    }
}

/// Where a workflow task that names no server is sent: the embedded mock's URL for its
/// vendor when there is one (no `--config`), else nowhere (the task fails on its missing
/// `baseUrl`).
fn mock_base_urls(mock: Option<std::sync::Arc<MockServer>>) -> harness_workflow::BaseUrlFor {
    std::sync::Arc::new(move |task: &str| {
        // The embedded mock serves the shipped tasks; a user's own task gets no
        // default server.
        let mock = mock.as_ref()?;
        match Vendor::for_task(task) {
            Some(vendor) => Some(mock.base_url(vendor)),
            None if task == "http" => Some(mock.uri()),
            None => None,
        }
    })
}

/// A line as printed to a terminal or log: control characters (a newline or an escape
/// sequence in a task name, reference or guest log) are written escaped (`\n`,
/// `\u{1b}`), so no input can forge or hide a line.
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

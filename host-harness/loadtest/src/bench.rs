//! `harness bench`: the cost of a task next to the network call it makes, measured in
//! one process against the in-process mock on loopback. Every figure is printed beside
//! a baseline from the same run (a native pooled hyper request doing the same PUT), so
//! the ratios mean something on a noisy machine.

use crate::{Context, LoadtestError, Result, ensure};
use bytes::Bytes;
use harness_mock::{Fault, MockServer, Vendor};
use harness_runner as runner;
use harness_sandbox::{BUILTIN_COMPONENTS, Sandbox, SandboxOptions, SendPath};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// A small run (for CI): a few iterations of everything.
    pub quick: bool,
    /// The `harness` executable for the cold-start figures; without it, cold start is
    /// measured in-process (fresh engine, load, first result).
    pub harness_bin: Option<PathBuf>,
}

struct Sizes {
    latency: usize,
    throughput: usize,
    in_flight: usize,
}

const ZUORA_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
const ZUORA_BODY: &str = r#"{"Quantity":12.5,"UOM":"Each"}"#;

/// Run the benchmark, print a table to `out`, and return the JSON report.
pub async fn run(options: BenchOptions, out: &mut (dyn Write + Send)) -> Result<Value> {
    let sizes = if options.quick {
        Sizes {
            latency: 20,
            throughput: 64,
            in_flight: 50,
        }
    } else {
        Sizes {
            latency: 2000,
            throughput: 4000,
            in_flight: 1000,
        }
    };
    let mock = MockServer::start().await;
    let cache_dir =
        std::env::temp_dir().join(format!("harness-bench-cache-{}", std::process::id()));
    // Compile the components into the cache in a separate `harness` process, so that this
    // one loads them from the cache as a restarted worker does: compiling in-process
    // leaves about 30 MB of the compiler's memory resident, which would count as the
    // tasks' own in (g). Without the `harness` binary (the tests) it compiles in-process.
    if let Some(bin) = &options.harness_bin {
        let mut command = std::process::Command::new(bin);
        command.arg("--cache-dir").arg(&cache_dir).arg("list");
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&cache_dir);
            return Err(LoadtestError::Failed(format!(
                "`harness list` could not fill the bench's code cache: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
    }
    let sandbox = Arc::new(
        Sandbox::builtin_with(SandboxOptions {
            cache_dir: Some(cache_dir.clone()),
            max_in_flight: (sizes.in_flight as u32).max(256) + 64,
            ..SandboxOptions::default()
        })
        .await?,
    );
    let baseline = Arc::new(Baseline::new(&mock));
    let zuora_input = task_inputs(&mock)
        .into_iter()
        .find(|(task, _)| *task == "zuora-update-usage")
        .map(|(_, input)| input)
        .context("zuora input")?;

    // (g) resident memory with many tasks in flight, first: what a harness process that
    // has loaded its components costs with that many runs open, before the phases below
    // fill the in-process mock's journal and records.
    run_once(&sandbox, "zuora-update-usage", &zuora_input).await?;
    baseline.put().await?;
    let rss = rss_in_flight(&sandbox, &mock, &zuora_input, sizes.in_flight).await?;
    // The same with the planning instance kept through the send, and with the guest
    // sending (each after the one before, so its peak includes what that one left).
    let keeping = Arc::new(sandbox.with_send_path(SendPath::HostKeepingInstance));
    let guest = Arc::new(sandbox.with_send_path(SendPath::Guest));
    let rss_keeping = rss_in_flight(&keeping, &mock, &zuora_input, sizes.in_flight).await?;
    let rss_guest = rss_in_flight(&guest, &mock, &zuora_input, sizes.in_flight).await?;

    // (a) baseline and (b) every endpoint task, sequentially. Each task's timings are
    // interleaved with baseline requests (blocks of each in turn), so that a task and its
    // baseline see the machine in the same state; the baseline figure is over all of them.
    let mut baseline_samples = Vec::new();
    let mut tasks = Map::new();
    for (task, input) in task_inputs(&mock) {
        run_once(&sandbox, task, &input).await?;
        let (base_runs, runs) = paired(sizes.latency, &baseline, || {
            run_once(&sandbox, task, &input)
        })
        .await?;
        let (base, latency) = (Latency::of(base_runs.clone()), Latency::of(runs));
        baseline_samples.extend(base_runs);
        tasks.insert(
            task.to_string(),
            json!({
                "p50_us": latency.p50,
                "p99_us": latency.p99,
                "ratio_p50": ratio(latency.p50, base.p50),
            }),
        );
        mock.clear_journal();
    }

    // The same zuora task by the other paths: the planning instance kept to read the
    // answer, and the guest sending through wasi:http itself (`task.run`, as before the
    // host sent): what each choice costs, in the same run.
    let mut by_path = Vec::new();
    for other in [&keeping, &guest] {
        run_once(other, "zuora-update-usage", &zuora_input).await?;
        let (base, runs) = paired(sizes.latency, &baseline, || {
            run_once(other, "zuora-update-usage", &zuora_input)
        })
        .await?;
        let (base, latency) = (Latency::of(base), Latency::of(runs));
        mock.clear_journal();
        by_path.push(json!({
            "p50_us": latency.p50,
            "p99_us": latency.p99,
            "ratio_p50": ratio(latency.p50, base.p50),
        }));
    }
    let [keeping_instance, guest_sends]: [Value; 2] = by_path
        .try_into()
        .map_err(|_| LoadtestError::Failed("two paths".into()))?;

    // The task's own cost without the network: the same task on an input it refuses
    // before sending anything (instantiate, parse and validate, report, tear down).
    let refused = {
        let mut input = zuora_input.clone();
        input["body"]["Quantity"] = json!("twelve");
        input
    };
    let (base, runs) = paired(sizes.latency, &baseline, || {
        run_refused(&sandbox, "zuora-update-usage", &refused)
    })
    .await?;
    let (no_network, no_network_base) = (Latency::of(runs), Latency::of(base));
    let baseline_latency = Latency::of(baseline_samples);

    // (c) instantiate only.
    let instantiate = Latency::of(
        timings(sizes.latency, || async {
            Ok(sandbox.instantiate_only("zuora-update-usage").await?)
        })
        .await?,
    );

    // (d) throughput at concurrency 1, 64, 256.
    let mut throughput = Map::new();
    for concurrency in [1usize, 64, 256] {
        let total = sizes.throughput.max(concurrency * 2);
        let task_rate = rate(total, concurrency, {
            let (sandbox, input) = (sandbox.clone(), zuora_input.clone());
            move || {
                let (sandbox, input) = (sandbox.clone(), input.clone());
                async move { run_once(&sandbox, "zuora-update-usage", &input).await }
            }
        })
        .await?;
        let baseline_rate = rate(total, concurrency, {
            let baseline = baseline.clone();
            move || {
                let baseline = baseline.clone();
                async move { baseline.put().await }
            }
        })
        .await?;
        mock.clear_journal();
        throughput.insert(
            concurrency.to_string(),
            json!({
                "task_per_s": round(task_rate),
                "baseline_per_s": round(baseline_rate),
                "ratio": ratio(task_rate, baseline_rate),
            }),
        );
    }

    // Throughput at concurrency 64 by the other paths (planning instance kept, guest
    // sending), against the same baseline figure.
    let mut throughput_by_path = Map::new();
    for (path, other) in [("keeping_instance", &keeping), ("guest_sends", &guest)] {
        let total = sizes.throughput.max(128);
        let task_rate = rate(total, 64, {
            let (sandbox, input) = (other.clone(), zuora_input.clone());
            move || {
                let (sandbox, input) = (sandbox.clone(), input.clone());
                async move { run_once(&sandbox, "zuora-update-usage", &input).await }
            }
        })
        .await?;
        mock.clear_journal();
        let baseline_rate = throughput["64"]["baseline_per_s"].as_f64().unwrap_or(1.0);
        throughput_by_path.insert(
            path.to_string(),
            json!({ "task_per_s": round(task_rate), "ratio": ratio(task_rate, baseline_rate) }),
        );
    }

    // CPU per operation by path, sequentially: the process's CPU time (this process
    // runs the mock too, so each figure includes the mock's side, as the baseline's
    // does). Less noisy than wall-clock figures on a shared 2-core machine.
    let cpu_n = sizes.latency;
    let cpu_baseline = cpu_per_op(cpu_n, || baseline.put()).await?;
    let mut cpu = Map::new();
    cpu.insert("baseline".into(), json!(round(cpu_baseline)));
    for (path, other) in [
        ("host_sends", &sandbox),
        ("keeping_instance", &keeping),
        ("guest_sends", &guest),
    ] {
        let us = cpu_per_op(cpu_n, || {
            run_once(other, "zuora-update-usage", &zuora_input)
        })
        .await?;
        mock.clear_journal();
        cpu.insert(
            path.into(),
            json!({ "us": round(us), "ratio": ratio(us, cpu_baseline) }),
        );
    }

    // The same task under a peer host: Node.js with jco, where they are installed.
    let jco_node = jco_node_peer(&zuora_input, sizes.latency.min(500)).await;
    let jco_node = match jco_node {
        Ok((p50, p99)) => json!({
            "p50_us": round(p50),
            "p99_us": round(p99),
            "ratio_p50": ratio(p50, baseline_latency.p50),
        }),
        Err(why) => json!({ "unavailable": why }),
    };

    // (e) cold start, (f) sizes.
    let cold = cold_start(&options, &mock, &zuora_input).await?;
    let mut component_bytes = Map::new();
    for (task, wasm) in BUILTIN_COMPONENTS {
        component_bytes.insert(task.to_string(), json!(wasm.len()));
    }
    let _ = std::fs::remove_dir_all(&cache_dir);

    let report = json!({
        "quick": options.quick,
        "baseline": { "p50_us": baseline_latency.p50, "p99_us": baseline_latency.p99 },
        "tasks": tasks,
        "zuora_keeping_instance": keeping_instance,
        "zuora_guest_sends": guest_sends,
        "task_without_network": {
            "p50_us": no_network.p50,
            "p99_us": no_network.p99,
            "ratio_p50": ratio(no_network.p50, no_network_base.p50),
        },
        "instantiate": { "p50_us": instantiate.p50, "p99_us": instantiate.p99 },
        "throughput": throughput,
        "throughput_64_by_path": throughput_by_path,
        "cpu_us_per_zuora_task": cpu,
        "peers": { "jco_node": jco_node },
        "cold_start_ms": cold,
        "component_bytes": component_bytes,
        "tasks_in_flight": sizes.in_flight,
        "rss_components_from_cache": sandbox.cache_hits() == BUILTIN_COMPONENTS.len(),
        "rss_mb_start": rss.0,
        "rss_mb_1000_in_flight": rss.1,
        "rss_mb_1000_in_flight_keeping_instance": rss_keeping.1,
        "rss_mb_1000_in_flight_guest_sends": rss_guest.1,
    });
    print_table(&report, out)?;
    Ok(report)
}

/// Where the Node.js side of the portability test lives (its `run-task.mjs` and the
/// npm packages `scripts/test.sh` installs): `$HARNESS_NODE_PEER_DIR`, else the source
/// tree's `tests/portability` when this binary was built there.
fn node_peer_dir() -> PathBuf {
    std::env::var_os("HARNESS_NODE_PEER_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/portability"),
        PathBuf::from,
    )
}

/// p50 and p99 of the zuora task's `task.run` under Node.js with jco (the component
/// transpiled to JavaScript, WASI by preview2-shim), `n` calls in one Node process against
/// the same mock, in microseconds; or why that peer cannot run here.
async fn jco_node_peer(input: &Value, n: usize) -> std::result::Result<(f64, f64), String> {
    let dir = node_peer_dir();
    let script = dir.join("run-task.mjs");
    if !script.exists() || !dir.join("node_modules/.bin/jco").exists() {
        return Err(format!(
            "jco is not installed in {} (scripts/test.sh installs it; or set HARNESS_NODE_PEER_DIR)",
            dir.display()
        ));
    }
    let work = std::env::temp_dir().join(format!("harness-bench-jco-{}", std::process::id()));
    let files = || -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(&work)?;
        // A name of its own: the portability test transpiles `zuora-update-usage` into the
        // same out/ directory, maybe at the same time.
        let wasm = work.join("bench-zuora-update-usage.wasm");
        let component = harness_artifacts::component("zuora-update-usage").unwrap_or_default();
        std::fs::write(&wasm, component)?;
        let input_file = work.join("input.json");
        std::fs::write(&input_file, input.to_string())?;
        Ok((wasm, input_file))
    };
    let (wasm, input_file) = files().map_err(|e| format!("cannot write the peer's files: {e}"))?;
    let mut command = std::process::Command::new("node");
    command
        .arg(&script)
        .args(["--repeat", &n.to_string()])
        .arg(&wasm)
        .arg(&input_file);
    // The script calls this process's mock: run it off the async threads.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run node: {e}"));
    let _ = std::fs::remove_dir_all(&work);
    let output = output?;
    if !output.status.success() {
        return Err(format!(
            "node run-task.mjs failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let printed: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("node run-task.mjs printed no JSON: {e}"))?;
    let repeat = &printed["repeat"];
    if repeat["failed"].as_u64() != Some(0) {
        return Err(format!("the task failed under Node: {printed}"));
    }
    match (repeat["p50Us"].as_f64(), repeat["p99Us"].as_f64()) {
        (Some(p50), Some(p99)) => Ok((p50, p99)),
        _ => Err(format!("unexpected output of run-task.mjs: {printed}")),
    }
}

/// The process's CPU time (user and system) per run of `op`, over `n` sequential runs,
/// in microseconds.
async fn cpu_per_op<F, Fut>(n: usize, mut op: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let before = process_cpu_seconds();
    for _ in 0..n {
        op().await?;
    }
    let spent = process_cpu_seconds() - before;
    Ok(spent * 1e6 / n.max(1) as f64)
}

/// This process's CPU time so far, user and system, in seconds (Linux
/// `/proc/self/stat`, in clock ticks of 1/100 s; 0 elsewhere).
fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which is in parentheses.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after `)`.
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or_default()
}

/// p50 and p99 of a set of timings, in microseconds.
struct Latency {
    p50: f64,
    p99: f64,
}

impl Latency {
    fn of(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Latency {
            p50: round(at(0.50)),
            p99: round(at(0.99)),
        }
    }
}

/// Time `n` runs of `op`, each in microseconds.
async fn timings<F, Fut>(n: usize, mut op: F) -> Result<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        op().await?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

/// Time `n` runs of `op` and `n` baseline requests, alternating blocks of each so that
/// both see the machine in the same state over the run, and each still runs back to back
/// as it would alone: (baseline, op) timings in microseconds.
async fn paired<F, Fut>(n: usize, baseline: &Baseline, mut op: F) -> Result<(Vec<f64>, Vec<f64>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    const BLOCK: usize = 100;
    let (mut base, mut runs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while runs.len() < n {
        let block = BLOCK.min(n - runs.len());
        base.extend(timings(block, || baseline.put()).await?);
        runs.extend(timings(block, &mut op).await?);
    }
    Ok((base, runs))
}

/// Operations per second with `concurrency` workers sharing `total` operations.
async fn rate<F, Fut>(total: usize, concurrency: usize, op: F) -> Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, op) = (next.clone(), op.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                op().await?;
            }
            Ok::<(), LoadtestError>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn run_once(sandbox: &Sandbox, task: &str, input: &Value) -> Result<()> {
    let prepared = runner::prepare(task, input.clone(), None);
    let outcome = runner::run_task(sandbox, task, &prepared.input, prepared.policy).await?;
    ensure!(
        outcome.failure.is_none(),
        "{task} did not complete: {:?}",
        outcome.failure.map(|f| f.message)
    );
    Ok(())
}

/// Run `task` on an input it must refuse before sending anything.
async fn run_refused(sandbox: &Sandbox, task: &str, input: &Value) -> Result<()> {
    let prepared = runner::prepare(task, input.clone(), None);
    let outcome = runner::run_task(sandbox, task, &prepared.input, prepared.policy).await?;
    ensure!(
        outcome
            .failure
            .as_ref()
            .is_some_and(|f| f.kind == runner::ErrorKind::InvalidInput),
        "{task} did not refuse its input: {:?}",
        outcome.failure.map(|f| f.message)
    );
    ensure!(!outcome.reached_server, "{task} sent a refused input");
    Ok(())
}

/// A valid input per endpoint task, aimed at the mock; each can run any number of times.
fn task_inputs(mock: &MockServer) -> Vec<(&'static str, Value)> {
    vec![
        (
            "zuora-update-usage",
            json!({
                "baseUrl": mock.base_url(Vendor::Zuora),
                "path": { "id": ZUORA_ID },
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "body": { "Quantity": 12.5, "UOM": "Each" },
            }),
        ),
        (
            "billingplatform-update-usage-identifier",
            json!({
                "baseUrl": mock.base_url(Vendor::BillingPlatform),
                "headers": { "sessionId": "mock-bp-session" },
                "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "API_CALLS_V2" } },
            }),
        ),
        (
            "elevate-patch-usage-product-inventory",
            json!({
                "baseUrl": mock.base_url(Vendor::Elevate),
                "path": { "usage_product_inventory_id": 1 },
                "headers": { "Authorization": "Bearer mock-elevate-token" },
                "body": [{ "op": "replace", "path": "/defaultUsageCap", "value": 7500 }],
            }),
        ),
        (
            "rebilly-create-usage",
            json!({
                "baseUrl": mock.base_url(Vendor::Rebilly),
                "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": "sub_mock_001", "quantity": 1 },
            }),
        ),
        (
            "http",
            json!({
                "method": "GET", "uri": format!("{}/v1/object/usage/{ZUORA_ID}", mock.base_url(Vendor::Zuora)),
                "headers": { "Authorization": "Bearer mock-zuora-token" },
            }),
        ),
    ]
}

/// The native baseline: a pooled hyper client sending the same Zuora PUT.
struct Baseline {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: String,
}

impl Baseline {
    fn new(mock: &MockServer) -> Baseline {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Baseline {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri: format!(
                "{}/v1/object/usage/{ZUORA_ID}",
                mock.base_url(Vendor::Zuora)
            ),
        }
    }

    async fn put(&self) -> Result<()> {
        let request = http::Request::put(&self.uri)
            .header("content-type", "application/json")
            .header("authorization", "Bearer mock-zuora-token")
            .body(Full::new(Bytes::from_static(ZUORA_BODY.as_bytes())))?;
        let response = self.client.request(request).await?;
        ensure!(
            response.status() == 200,
            "baseline PUT answered {}",
            response.status()
        );
        response.into_body().collect().await?;
        Ok(())
    }
}

/// Cold start to first result, in milliseconds, with and without the code cache.
async fn cold_start(options: &BenchOptions, mock: &MockServer, input: &Value) -> Result<Value> {
    let dir = std::env::temp_dir().join(format!("harness-bench-cold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = match &options.harness_bin {
        Some(bin) => {
            let file = dir.join("input.json");
            std::fs::write(&file, input.to_string())?;
            let cache = dir.join("cache");
            let process = |cached: bool| {
                let mut command = std::process::Command::new(bin);
                if cached {
                    command.arg("--cache-dir").arg(&cache);
                } else {
                    command.arg("--no-cache");
                }
                command
                    .args(["task", "zuora-update-usage", "--input"])
                    .arg(&file)
                    .args(["--base-url", &mock.base_url(Vendor::Zuora)]);
                command
            };
            // The subprocess calls this process's mock: run it off the async threads.
            let timed = |mut command: std::process::Command| {
                tokio::task::spawn_blocking(move || -> Result<f64> {
                    let started = Instant::now();
                    let output = command.output()?;
                    ensure!(output.status.success(), "harness task failed: {output:?}");
                    Ok(started.elapsed().as_secs_f64() * 1e3)
                })
            };
            let uncached = timed(process(false)).await??;
            timed(process(true)).await??; // fills the cache
            let cached = timed(process(true)).await??;
            json!({ "cached": round(cached), "uncached": round(uncached), "method": "process" })
        }
        None => {
            let once = |cache_dir: Option<PathBuf>| async move {
                let started = Instant::now();
                let mut sandbox = Sandbox::with_options(SandboxOptions {
                    cache_dir,
                    max_in_flight: 16,
                    ..SandboxOptions::default()
                })?;
                let wasm = harness_artifacts::component("zuora-update-usage")
                    .context("zuora component")?;
                sandbox.load(wasm).await?;
                run_once(&sandbox, "zuora-update-usage", input).await?;
                Ok::<f64, LoadtestError>(started.elapsed().as_secs_f64() * 1e3)
            };
            let uncached = once(None).await?;
            once(Some(dir.join("cache"))).await?;
            let cached = once(Some(dir.join("cache"))).await?;
            json!({ "cached": round(cached), "uncached": round(uncached), "method": "in-process" })
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

/// Resident memory (MB) before, and at its peak while `n` tasks wait on slow replies.
async fn rss_in_flight(
    sandbox: &Arc<Sandbox>,
    mock: &MockServer,
    input: &Value,
    n: usize,
) -> Result<(f64, f64)> {
    mock.clear_journal();
    let start = resident_mb();
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{ZUORA_ID}"),
        times: n as u32,
        delay_ms: 500,
        ..Fault::default()
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (sandbox, input) = (sandbox.clone(), input.clone());
        tasks.spawn(async move { run_once(&sandbox, "zuora-update-usage", &input).await });
    }
    let mut peak = start;
    let sampler = async {
        loop {
            peak = peak.max(resident_mb());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let all_done = async {
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok::<(), LoadtestError>(())
    };
    tokio::select! {
        done = all_done => done?,
        () = sampler => {}
    }
    mock.clear_journal();
    Ok((round(start), round(peak)))
}

/// This process's resident set size in MB (Linux `/proc/self/status` `VmRSS`).
pub(crate) fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        (value / baseline * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// A figure as table text (JSON values ignore format widths).
fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn print_table(report: &Value, out: &mut (dyn Write + Send)) -> Result<()> {
    let row = |out: &mut (dyn Write + Send), name: &str, cells: [&Value; 3]| {
        writeln!(
            out,
            "{name:<44} {:>10} {:>10} {:>9}",
            cell(cells[0]),
            cell(cells[1]),
            cell(cells[2])
        )
    };
    let heading = |a: &str, b: &str, c: &str| [Value::from(a), Value::from(b), Value::from(c)];
    let [a, b, c] = heading("p50 µs", "p99 µs", "x base");
    row(out, "latency (sequential)", [&a, &b, &c])?;
    let base = &report["baseline"];
    row(
        out,
        "native pooled hyper PUT (baseline)",
        [&base["p50_us"], &base["p99_us"], &Value::from("1.00")],
    )?;
    // A latency figure: p50, p99 and the p50's ratio to its baseline.
    let latency = |out: &mut (dyn Write + Send), name: &str, figures: &Value| {
        row(
            out,
            name,
            [
                &figures["p50_us"],
                &figures["p99_us"],
                &figures["ratio_p50"],
            ],
        )
    };
    if let Some(tasks) = report["tasks"].as_object() {
        for (task, figures) in tasks {
            latency(out, task, figures)?;
        }
    }
    latency(
        out,
        "zuora, host sends, planning instance kept",
        &report["zuora_keeping_instance"],
    )?;
    latency(
        out,
        "zuora, guest sends (wasi:http)",
        &report["zuora_guest_sends"],
    )?;
    let jco = &report["peers"]["jco_node"];
    match jco.get("unavailable") {
        None => latency(out, "zuora under Node.js with jco (peer)", jco)?,
        Some(why) => writeln!(out, "zuora under Node.js with jco (peer): {}", cell(why))?,
    }
    latency(
        out,
        "zuora, input refused (no network)",
        &report["task_without_network"],
    )?;
    let instantiate = &report["instantiate"];
    row(
        out,
        "instantiate only",
        [
            &instantiate["p50_us"],
            &instantiate["p99_us"],
            &Value::from(""),
        ],
    )?;
    writeln!(out)?;
    let [a, b, c] = heading("task/s", "base/s", "x base");
    row(out, "throughput (zuora-update-usage)", [&a, &b, &c])?;
    if let Some(levels) = report["throughput"].as_object() {
        for (concurrency, figures) in levels {
            let name = format!("concurrency {concurrency}");
            row(
                out,
                &name,
                [
                    &figures["task_per_s"],
                    &figures["baseline_per_s"],
                    &figures["ratio"],
                ],
            )?;
        }
    }
    if let Some(cpu) = report["cpu_us_per_zuora_task"].as_object() {
        writeln!(out)?;
        let [a, b, c] = heading("CPU µs", "", "x base");
        row(out, "CPU per zuora task, sequential", [&a, &b, &c])?;
        let none = Value::from("");
        for (path, figures) in cpu {
            let (us, ratio) = match figures {
                Value::Object(_) => (&figures["us"], &figures["ratio"]),
                _ => (figures, &none),
            };
            row(out, &path.replace('_', " "), [us, &none, ratio])?;
        }
    }
    if let Some(paths) = report["throughput_64_by_path"].as_object() {
        for (path, figures) in paths {
            let name = format!("concurrency 64, {}", path.replace('_', " "));
            row(
                out,
                &name,
                [&figures["task_per_s"], &Value::from(""), &figures["ratio"]],
            )?;
        }
    }
    writeln!(out)?;
    let cold = &report["cold_start_ms"];
    writeln!(
        out,
        "cold start to first result ({}): {} ms cached, {} ms uncached",
        cell(&cold["method"]),
        cell(&cold["cached"]),
        cell(&cold["uncached"])
    )?;
    if let Some(sizes) = report["component_bytes"].as_object() {
        for (task, bytes) in sizes {
            writeln!(out, "component {task}: {} bytes", cell(bytes))?;
        }
    }
    writeln!(
        out,
        "resident memory: {} MB at start, {} MB peak with {} tasks in flight (components {})",
        cell(&report["rss_mb_start"]),
        cell(&report["rss_mb_1000_in_flight"]),
        cell(&report["tasks_in_flight"]),
        if report["rss_components_from_cache"] == true {
            "loaded from the code cache"
        } else {
            "compiled in this process"
        }
    )?;
    writeln!(
        out,
        "  then {} MB peak with the planning instance kept through the send, then {} MB with the guest sending",
        cell(&report["rss_mb_1000_in_flight_keeping_instance"]),
        cell(&report["rss_mb_1000_in_flight_guest_sends"]),
    )?;
    Ok(())
}

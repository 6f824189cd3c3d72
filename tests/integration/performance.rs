//! The fast path's mechanisms: the on-disk code cache and the pooled HTTP client.
//! (Speed itself is measured by `harness bench`, never asserted here.)

use harness_mock::{Fault, MockServer, Vendor};
use harness_runner as runner;
use harness_sandbox::{Sandbox, SandboxOptions};
use integration_tests::{json, run};
use serde_json::json;
use std::path::{Path, PathBuf};

fn zuora_component() -> &'static [u8] {
    harness_artifacts::component("zuora-update-usage").unwrap()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("harness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn cached_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn options(dir: &Path, max_in_flight: u32) -> SandboxOptions {
    SandboxOptions {
        cache_dir: Some(dir.to_path_buf()),
        max_in_flight,
        ..SandboxOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_load_comes_from_the_code_cache() {
    let dir = scratch_dir("cache-hit");
    let mut first = Sandbox::with_options(options(&dir, 4)).unwrap();
    first.load(zuora_component()).await.unwrap();
    assert_eq!(first.cache_hits(), 0);
    assert_eq!(cached_files(&dir).len(), 1);

    let mut second = Sandbox::with_options(options(&dir, 4)).unwrap();
    assert_eq!(
        second.load(zuora_component()).await.unwrap(),
        "zuora-update-usage"
    );
    assert_eq!(second.cache_hits(), 1);
    assert_eq!(cached_files(&dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_engine_config_never_loads_cached_code() {
    let dir = scratch_dir("cache-engine");
    let mut pooled = Sandbox::with_options(options(&dir, 4)).unwrap();
    pooled.load(zuora_component()).await.unwrap();
    // On-demand allocation compiles different bounds checks: another key, another file.
    let mut on_demand = Sandbox::with_options(options(&dir, 0)).unwrap();
    on_demand.load(zuora_component()).await.unwrap();
    assert_eq!(on_demand.cache_hits(), 0);
    assert_eq!(cached_files(&dir).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_file_is_recompiled_and_replaced() {
    let dir = scratch_dir("cache-corrupt");
    let mut first = Sandbox::with_options(options(&dir, 4)).unwrap();
    first.load(zuora_component()).await.unwrap();
    let file = cached_files(&dir).remove(0);
    std::fs::write(&file, b"not compiled code").unwrap();

    let mut second = Sandbox::with_options(options(&dir, 4)).unwrap();
    second.load(zuora_component()).await.unwrap();
    assert_eq!(second.cache_hits(), 0);
    let mut third = Sandbox::with_options(options(&dir, 4)).unwrap();
    third.load(zuora_component()).await.unwrap();
    assert_eq!(third.cache_hits(), 1, "the replaced file loads");
}

/// A byte of compiled code changed after it was written (a disk error, a partial copy):
/// wasmtime's own check reads only the header, so without the entry's checksum the
/// altered machine code would run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_entry_altered_after_it_was_written_is_recompiled_not_run() {
    let dir = scratch_dir("cache-altered");
    let mut first = Sandbox::with_options(options(&dir, 4)).unwrap();
    first.load(zuora_component()).await.unwrap();
    let file = cached_files(&dir).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();

    let mut second = Sandbox::with_options(options(&dir, 4)).unwrap();
    second.load(zuora_component()).await.unwrap();
    assert_eq!(second.cache_hits(), 0, "the altered entry was not loaded");
    assert_ne!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the entry was rewritten"
    );
    let mock = MockServer::start().await;
    let prepared = runner::prepare(
        "zuora-update-usage",
        json!({
            "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
            "headers": { "Authorization": "Bearer mock-zuora-token" },
            "body": { "UOM": "Each" },
        }),
        Some(&mock.base_url(Vendor::Zuora)),
    );
    let outcome = runner::run_task(
        &second,
        "zuora-update-usage",
        &prepared.input,
        prepared.policy,
    )
    .await
    .unwrap();
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    let mut third = Sandbox::with_options(options(&dir, 4)).unwrap();
    third.load(zuora_component()).await.unwrap();
    assert_eq!(third.cache_hits(), 1, "the rewritten entry loads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_client_reuses_one_connection_across_tasks() {
    let mock = MockServer::start().await;
    let input = json!({
        "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    });
    for _ in 0..8 {
        let outcome = run(&mock, "zuora-update-usage", input.clone()).await;
        assert_eq!(json(&outcome)["status"], "COMPLETED");
        // hyper-util puts a connection back in its pool from a task of its own once the
        // reply is read; a request started before that task ran opens a second one (seen
        // once in CI under load). Give it the moment it needs.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mock.journal().len(), 8);
    // Eight tasks in turn: one connection, or two when the return above lost the race.
    assert!(
        mock.connections() <= 2,
        "{} connections for 8 tasks in turn",
        mock.connections()
    );
}

const ZUORA_PATH: &str = "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb";

/// Start `runs` zuora tasks at once on a sandbox whose pool has `pool` slots, against a
/// mock that holds every reply for `delay_ms`; the outcomes (as printed) and the mock.
async fn zuora_runs_at_once(
    name: &str,
    pool: u32,
    runs: usize,
    delay_ms: u64,
) -> (Vec<serde_json::Value>, MockServer) {
    let (sandbox, mock) = zuora_sandbox_and_mock(name, pool, runs, delay_ms).await;
    let mut running = start_zuora_runs(&sandbox, &mock, runs);
    let mut outcomes = Vec::new();
    while let Some(outcome) = running.join_next().await {
        outcomes.push(json(&outcome.unwrap()));
    }
    (outcomes, mock)
}

/// A sandbox with the zuora task and a pool of `pool` slots, and a mock that holds its
/// replies to the first `runs` PUTs for `delay_ms`.
async fn zuora_sandbox_and_mock(
    name: &str,
    pool: u32,
    runs: usize,
    delay_ms: u64,
) -> (std::sync::Arc<Sandbox>, MockServer) {
    let mut sandbox = Sandbox::with_options(options(&scratch_dir(name), pool)).unwrap();
    sandbox.load(zuora_component()).await.unwrap();
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: ZUORA_PATH.into(),
        times: runs as u32,
        delay_ms,
        ..Fault::default()
    });
    (std::sync::Arc::new(sandbox), mock)
}

/// `runs` zuora tasks started at once against `mock`, each a tokio task.
fn start_zuora_runs(
    sandbox: &std::sync::Arc<Sandbox>,
    mock: &MockServer,
    runs: usize,
) -> tokio::task::JoinSet<runner::TaskOutcome> {
    let input = json!({
        "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    });
    let base = mock.base_url(Vendor::Zuora);
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let (sandbox, prepared) = (
            sandbox.clone(),
            runner::prepare("zuora-update-usage", input.clone(), Some(&base)),
        );
        running.spawn(async move {
            runner::run_task(
                &sandbox,
                "zuora-update-usage",
                &prepared.input,
                prepared.policy,
            )
            .await
            .unwrap()
        });
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_beyond_the_instance_pool_wait_for_a_free_slot_instead_of_failing() {
    // Slow replies keep the first runs in their slots while the others start.
    let (outcomes, mock) = zuora_runs_at_once("pool-wait", 2, 5, 300).await;
    assert_eq!(outcomes.len(), 5);
    for outcome in &outcomes {
        assert_eq!(outcome["status"], "COMPLETED", "{outcome}");
        assert_eq!(
            outcome["output"]["response"]["statusCode"], 200,
            "{outcome}"
        );
    }
    let journal = mock.journal();
    assert_eq!(journal.len(), 5);
    for entry in &journal {
        assert_eq!(
            (entry.method.as_str(), entry.path.as_str()),
            ("PUT", ZUORA_PATH)
        );
        assert_eq!(entry.query, None);
        assert!(
            entry
                .headers
                .contains(&("authorization".into(), "Bearer mock-zuora-token".into())),
            "{:?}",
            entry.headers
        );
        let body: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(body, json!({ "UOM": "Each" }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_thousand_runs_in_flight_all_complete() {
    // wasmtime's pool holds 1000 async stacks unless told otherwise: the sandbox sizes
    // them to its runs. Replies held for 4 s keep every run in flight at once.
    const RUNS: usize = 1010;
    let (outcomes, mock) = zuora_runs_at_once("pool-wide", RUNS as u32, RUNS, 4000).await;
    assert_eq!(outcomes.len(), RUNS);
    for outcome in &outcomes {
        assert_eq!(outcome["status"], "COMPLETED", "{outcome}");
    }
    assert_eq!(mock.journal().len(), RUNS);
}

/// A burst of runs that end up waiting on their vendor holds only the instances of the
/// runs planning or reading at that moment, not one per run: a run yields to the
/// executor only when an epoch tick (10 ms) passes during it. (A store's epoch deadline
/// starts already past; before it was set one tick ahead, every run yielded at its
/// first epoch check, and a burst of 300 held 286 instances at once, each slot then
/// kept warm with its pages resident; with it, 3 to 19 were seen.) Counted by wasmtime's
/// pool, never timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_runs_waiting_on_replies_holds_no_instance_per_run() {
    const RUNS: usize = 300;
    let (sandbox, mock) = zuora_sandbox_and_mock("burst", RUNS as u32, RUNS, 3_000).await;
    let engine = sandbox.engine().clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let metrics = engine.pooling_allocator_metrics().unwrap();
                most = most.max(metrics.component_instances());
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            (
                most,
                engine
                    .pooling_allocator_metrics()
                    .unwrap()
                    .unused_warm_memories(),
            )
        })
    };
    let mut running = start_zuora_runs(&sandbox, &mock, RUNS);
    // Every request received: every run has planned and waits on its reply.
    while mock.journal().len() < RUNS {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (most, warm) = sampler.join().unwrap();
    // A run still yields when a tick passes during it, and on a machine busy with the
    // other tests a debug build's runs are slow: tens may be alive at once, not hundreds.
    assert!(
        most <= RUNS as u64 / 3,
        "{most} instances alive at once in a burst of {RUNS} runs"
    );
    assert!(
        warm <= RUNS as u32 / 3,
        "{warm} memories kept warm after the burst"
    );
    while let Some(outcome) = running.join_next().await {
        assert_eq!(json(&outcome.unwrap())["status"], "COMPLETED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_at_a_tiny_size_and_writes_the_json_report() {
    let file = std::env::temp_dir().join(format!("harness-bench-{}.json", std::process::id()));
    let argv = [
        "harness",
        "bench",
        "--quick",
        "--json",
        file.to_str().unwrap(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = host_harness::cli::run(argv.map(String::from).to_vec(), &mut out, &mut err).await;
    assert_eq!(
        code,
        host_harness::cli::EXIT_OK,
        "{}",
        String::from_utf8_lossy(&err)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{pointer} missing in {report}"))
    };
    for pointer in [
        "/baseline/p50_us",
        "/baseline/p99_us",
        "/instantiate/p50_us",
        "/zuora_keeping_instance/p50_us",
        "/zuora_keeping_instance/ratio_p50",
        "/throughput_64_by_path/keeping_instance/task_per_s",
        "/throughput_64_by_path/guest_sends/task_per_s",
        "/rss_mb_1000_in_flight_keeping_instance",
        "/rss_mb_1000_in_flight_guest_sends",
        "/zuora_guest_sends/p50_us",
        "/zuora_guest_sends/ratio_p50",
        "/task_without_network/p50_us",
        "/task_without_network/ratio_p50",
        "/cold_start_ms/cached",
        "/cold_start_ms/uncached",
        "/rss_mb_1000_in_flight",
    ] {
        assert!(number(pointer) > 0.0, "{pointer}");
    }
    // CPU time is counted in 1/100 s ticks: a tiny run may read 0, but every figure is there.
    for path in ["host_sends", "keeping_instance", "guest_sends"] {
        let pointer = format!("/cpu_us_per_zuora_task/{path}/us");
        assert!(number(&pointer) >= 0.0, "{pointer}");
    }
    assert!(number("/cpu_us_per_zuora_task/baseline") >= 0.0);
    // The jco/Node peer runs where scripts/test.sh installed it (as for the portability
    // test); elsewhere the report says why not.
    let jco = &report["peers"]["jco_node"];
    let jco_installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("portability/node_modules/.bin/jco")
        .exists();
    if jco_installed {
        assert!(number("/peers/jco_node/p50_us") > 0.0, "{jco}");
        assert!(number("/peers/jco_node/ratio_p50") > 0.0, "{jco}");
    } else {
        assert!(jco["unavailable"].as_str().is_some(), "{jco}");
    }
    // Run in-process (no `harness` binary to fill the cache first): compiled here.
    assert_eq!(report["rss_components_from_cache"], json!(false));
    for task in [
        "zuora-update-usage",
        "billingplatform-update-usage-identifier",
        "elevate-patch-usage-product-inventory",
        "rebilly-create-usage",
        "http",
    ] {
        assert!(number(&format!("/tasks/{task}/ratio_p50")) > 0.0, "{task}");
        let size = harness_artifacts::component(task).unwrap().len() as u64;
        assert_eq!(report["component_bytes"][task], size, "{task}");
    }
    for concurrency in ["1", "64", "256"] {
        assert!(number(&format!("/throughput/{concurrency}/ratio")) > 0.0);
    }
    // The test binary is not `harness`: cold start is timed in-process.
    assert_eq!(report["cold_start_ms"]["method"], "in-process");
    let table = String::from_utf8(out).unwrap();
    for row in [
        "native pooled hyper PUT (baseline)",
        "zuora, input refused (no network)",
        "resident memory:",
    ] {
        assert!(table.contains(row), "{row} missing in {table}");
    }
}

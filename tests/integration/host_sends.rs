//! The host-sends path (`exchange`: plan in the sandbox, send from the host, read in the
//! sandbox) against the guest-sends path (`task.run` through `wasi:http`): the same
//! request on the wire, byte for byte, and the same result, for every endpoint task and
//! for answers of every kind. And `plan` alone sends nothing.

use harness_mock::{Fault, JournalEntry, MockServer};
use harness_runner::{self as runner, TaskOutcome};
use harness_sandbox::{Sandbox, SendPath};
use integration_tests::{sandbox, vendor_of};
use serde_json::{Value, json};
use std::path::PathBuf;

const ZUORA_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";

fn example(task: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tasks")
        .join(format!("{task}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The base URL of `task` on `mock` (the `http` task gets the mock's root).
fn base_of(mock: &MockServer, task: &str) -> String {
    match task {
        "http" => mock.uri(),
        _ => mock.base_url(vendor_of(task)),
    }
}

async fn run_on(sandbox: &Sandbox, base: &str, task: &str, input: &Value) -> TaskOutcome {
    let prepared = runner::prepare(task, input.clone(), Some(base));
    runner::run_task(sandbox, task, &prepared.input, prepared.policy)
        .await
        .expect("the sandbox runs the task")
}

/// The outcome as printed, without the `date` header the mock's HTTP server adds (it
/// may tick between the two runs).
fn printed(outcome: &TaskOutcome) -> Value {
    let mut printed = outcome.to_json();
    if let Some(headers) = printed["output"]["response"]["headers"].as_object_mut() {
        headers.remove("date");
    }
    printed
}

/// Run `input` once through each path (host sends, host sends keeping the planning
/// instance, guest sends) on a freshly reset mock (with `fault` injected first, when
/// given), and return (what went out, what came back, whether it reached the server).
async fn every_path(
    mock: &MockServer,
    task: &str,
    input: &Value,
    fault: Option<&Fault>,
) -> [(Vec<JournalEntry>, Value, bool); 3] {
    let host = sandbox().await;
    assert!(host.sends_from_host(task), "{task}");
    let keeping = host.with_send_path(SendPath::HostKeepingInstance);
    let guest = host.with_send_path(SendPath::Guest);
    assert!(!guest.sends_from_host(task), "{task}");
    let mut results = Vec::new();
    for sandbox in [host, &keeping, &guest] {
        mock.reset();
        if let Some(fault) = fault {
            mock.inject(fault.clone());
        }
        let outcome = run_on(sandbox, &base_of(mock, task), task, input).await;
        mock.wait_until_idle().await;
        results.push((mock.journal(), printed(&outcome), outcome.reached_server));
    }
    results.try_into().unwrap()
}

async fn assert_same(task: &str, input: Value, fault: Option<Fault>) -> Value {
    let mock = MockServer::start().await;
    let [host, keeping, guest] = every_path(&mock, task, &input, fault.as_ref()).await;
    for (other, path) in [
        (keeping, "keeping its instance"),
        (guest, "the guest sending"),
    ] {
        assert_eq!(host.0, other.0, "{task}, {path}: the requests on the wire");
        assert_eq!(host.1, other.1, "{task}, {path}: the results");
        assert_eq!(host.2, other.2, "{task}, {path}: reached the server");
    }
    host.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_sends_the_same_request_and_gets_the_same_result_from_host_and_guest() {
    for task in [
        "billingplatform-update-usage-identifier",
        "zuora-update-usage",
        "elevate-patch-usage-product-inventory",
        "rebilly-create-usage",
        "http",
    ] {
        let result = assert_same(task, example(task), None).await;
        assert_eq!(result["status"], "COMPLETED", "{task}: {result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_request_a_gzip_answer_and_warnings_come_out_the_same_from_host_and_guest() {
    let zuora_gzip = json!({
        "path": { "id": ZUORA_ID },
        "headers": { "Authorization": "Bearer mock-zuora-token", "Content-Encoding": "gzip" },
        "body": { "Quantity": 2, "UOM": "Each" },
    });
    let result = assert_same("zuora-update-usage", zuora_gzip, None).await;
    assert_eq!(result["status"], "COMPLETED", "{result}");

    // The example http task asks Zuora for a record with Accept-Encoding: gzip.
    let result = assert_same("http", example("http"), None).await;
    assert_eq!(
        result["output"]["response"]["headers"]["content-encoding"],
        json!(["gzip"])
    );

    let read_only = json!({
        "headers": { "REB-APIKEY": "sk_sandbox_mock" },
        "body": { "id": "use_1", "subscriptionId": "sub_mock_001", "quantity": 2 },
    });
    let result = assert_same("rebilly-create-usage", read_only, None).await;
    assert_eq!(
        result["output"]["warnings"][0]["field"], "body.id",
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified_the_same_from_host_and_guest() {
    let zuora = json!({
        "path": { "id": ZUORA_ID },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "Quantity": 2 },
    });
    let cases = [
        (
            Fault {
                path: "/zuora/".into(),
                rate_limited: Some(7),
                ..Fault::default()
            },
            "rate-limited",
        ),
        (
            Fault {
                path: "/zuora/".into(),
                status: Some(503),
                headers: vec![("Retry-After".into(), "2".into())],
                body: Some(json!({ "message": "down for maintenance" })),
                ..Fault::default()
            },
            "server-error",
        ),
        (
            Fault {
                path: "/zuora/".into(),
                status: Some(200),
                body: Some(json!("<html>proxy</html>")),
                ..Fault::default()
            },
            "transport",
        ),
        (
            Fault {
                path: "/zuora/".into(),
                drop: true,
                ..Fault::default()
            },
            "transport",
        ),
    ];
    for (fault, kind) in cases {
        let result = assert_same("zuora-update-usage", zuora.clone(), Some(fault)).await;
        assert_eq!(result["error"]["kind"], kind, "{result}");
    }
    // Refused before anything is sent: invalid input, and a server that is not there.
    let invalid = json!({ "path": { "id": ZUORA_ID }, "body": { "Quantity": "many" } });
    let result = assert_same("zuora-update-usage", invalid, None).await;
    assert_eq!(result["error"]["kind"], "invalid-input", "{result}");
    let host = sandbox().await;
    let guest = host.with_send_path(SendPath::Guest);
    let mut refused = Vec::new();
    for sandbox in [host, &guest] {
        let outcome = run_on(sandbox, "http://127.0.0.1:1", "zuora-update-usage", &zuora).await;
        refused.push((outcome.to_json(), outcome.reached_server));
    }
    assert_eq!(refused[0], refused[1]);
    assert_eq!(refused[0].0["reasonForIncompletion"], "connection refused.");
    assert!(!refused[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_the_exact_request_with_credentials_redacted_and_nothing_is_sent() {
    let mock = MockServer::start().await;
    let base = mock.base_url(vendor_of("zuora-update-usage"));
    let input = json!({
        "path": { "id": ZUORA_ID },
        "query": { "rejectUnknownFields": true },
        "headers": { "Authorization": "Bearer mock-zuora-token", "Zuora-Track-Id": "batch-7" },
        "body": { "Quantity": 1234567890123.45, "UOM": "Each" },
        "readTimeOut": 5000,
    });
    let prepared = runner::prepare("zuora-update-usage", input, Some(&base));
    let plan = runner::plan_task(sandbox().await, "zuora-update-usage", &prepared)
        .await
        .unwrap()
        .expect("an endpoint task plans")
        .expect("a valid input plans");
    let body = r#"{"Quantity":1234567890123.45,"UOM":"Each"}"#;
    assert_eq!(
        plan,
        json!({
            "task": "zuora-update-usage",
            "status": "PLANNED",
            "sent": false,
            "request": {
                "method": "PUT",
                "url": format!("{base}/v1/object/usage/{ZUORA_ID}?rejectUnknownFields=true"),
                "headers": [
                    ["Content-Type", "application/json"],
                    ["Authorization", "[redacted]"],
                    ["Zuora-Track-Id", "batch-7"],
                    ["Content-Length", body.len().to_string()],
                ],
                "body": body,
                "bodyBytes": body.len(),
                "connectionTimeOut": null,
                "readTimeOut": 5000,
            },
            "credentials": null,
            "refusal": null,
            "warnings": [],
        })
    );
    assert_eq!(mock.journal(), vec![], "a plan sends nothing");

    // Planning an invalid input gives the failure a run would, and sends nothing.
    let prepared = runner::prepare(
        "zuora-update-usage",
        json!({ "path": { "id": ZUORA_ID }, "body": { "Quantity": "many" } }),
        Some(&base),
    );
    let refused = runner::plan_task(sandbox().await, "zuora-update-usage", &prepared)
        .await
        .unwrap()
        .unwrap()
        .expect_err("an invalid input does not plan");
    assert_eq!(refused.to_json()["error"]["kind"], "invalid-input");
    assert_eq!(
        refused.to_json()["error"]["fields"][0]["field"],
        "body.Quantity"
    );
    assert_eq!(mock.journal(), vec![]);
}

fn plan_definition() -> Value {
    json!({
        "name": "plan_me",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "zuora-update-usage", "taskReferenceName": "zuora", "type": "SIMPLE",
                "inputParameters": {
                    "path": { "id": "${workflow.input.usageId}" },
                    "headers": { "Authorization": "Bearer mock-zuora-token" },
                    "body": { "Quantity": "${workflow.input.quantity}" },
                },
            },
            {
                "name": "double", "taskReferenceName": "double", "type": "INLINE",
                "inputParameters": {
                    "evaluatorType": "javascript",
                    "expression": "$.q * 2",
                    "q": "${workflow.input.quantity}",
                },
            },
            {
                "name": "rebilly-create-usage", "taskReferenceName": "rebilly", "type": "SIMPLE",
                "inputParameters": {
                    "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                    "body": {
                        "subscriptionId": "${zuora.output.response.body.Id}",
                        "quantity": "${double.output.result}",
                    },
                },
            },
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_plan_plans_every_sending_task_runs_scripts_and_names_what_an_unknown_output_stopped() {
    let dir = std::env::temp_dir().join(format!("harness-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let definition = dir.join("wf.json");
    std::fs::write(&definition, plan_definition().to_string()).unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "usageId": ZUORA_ID, "quantity": 2.5 }).to_string(),
    )
    .unwrap();
    let (definition, input) = (definition.to_str().unwrap(), input.to_str().unwrap());

    // Zuora's answer is unknown in a plan: Rebilly's subscriptionId comes out null.
    let (code, out, err) =
        crate::workflows::harness_cli(&["run", definition, "--input", input, "--plan"]).await;
    assert_eq!(code, 1, "{err}");
    let mut report: Value = serde_json::from_str(&out).unwrap();
    let zuora_url = report["tasks"][0]["request"]["url"].take();
    let zuora_url = zuora_url.as_str().unwrap();
    assert!(zuora_url.starts_with("http://127.0.0.1:"), "{zuora_url}");
    assert!(
        zuora_url.ends_with(&format!("/zuora/v1/object/usage/{ZUORA_ID}")),
        "{zuora_url}"
    );
    assert_eq!(
        report,
        json!({
            "status": "INCOMPLETE",
            "sent": false,
            "tasks": [
                {
                    "reference": "zuora",
                    "task": "zuora-update-usage",
                    "planned": true,
                    "request": {
                        "method": "PUT",
                        "url": null,
                        "headers": [
                            ["Content-Type", "application/json"],
                            ["Authorization", "[redacted]"],
                            ["Content-Length", "16"],
                        ],
                        "body": r#"{"Quantity":2.5}"#,
                        "bodyBytes": 16,
                        "connectionTimeOut": null,
                        "readTimeOut": null,
                    },
                    "credentials": null,
                    "refusal": null,
                    "warnings": [],
                },
                {
                    "reference": "rebilly",
                    "task": "rebilly-create-usage",
                    "planned": false,
                    "reason": "invalid input, nothing was sent: body.subscriptionId: required",
                },
            ],
            "notPlanned": ["rebilly"],
            "workflowStatus": "COMPLETED",
            "reasonForIncompletion": null,
        })
    );
    assert!(
        err.contains("zuora zuora-update-usage: planned PUT http://127.0.0.1:"),
        "{err}"
    );

    // With Zuora's answer mocked, Rebilly plans on it, the script's result included.
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": { "zuora": [{ "status": "COMPLETED", "output": { "response": { "body": { "Id": "sub_mock_001" } } } }] } })
            .to_string(),
    )
    .unwrap();
    let (code, out, err) = crate::workflows::harness_cli(&[
        "run",
        definition,
        "--input",
        input,
        "--mock-outputs",
        mocks.to_str().unwrap(),
        "--plan",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "PLANNED");
    assert_eq!(report["notPlanned"], json!([]));
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "the mocked task is not planned: {report}");
    assert_eq!(tasks[0]["reference"], "rebilly");
    assert_eq!(
        tasks[0]["request"]["body"],
        r#"{"subscriptionId":"sub_mock_001","quantity":5}"#
    );
    assert_eq!(
        tasks[0]["request"]["headers"][1],
        json!(["REB-APIKEY", "[redacted]"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

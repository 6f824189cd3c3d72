//! The `harness` command line, driven in-process: exact stdout JSON and exit codes.

use host_harness::cli::{self, EXIT_FAILED, EXIT_OK, EXIT_UNREPORTED, EXIT_USAGE};
use serde_json::json;
use std::path::PathBuf;

struct Ran {
    code: u8,
    stdout: String,
    stderr: String,
}

async fn harness(args: &[&str]) -> Ran {
    let mut argv = vec!["harness".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(argv, &mut out, &mut err).await;
    Ran {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn example(task: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("examples/tasks")
        .join(format!("{task}.json"))
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_task_completes_against_the_embedded_mock() {
    for task in [
        "billingplatform-update-usage-identifier",
        "zuora-update-usage",
        "elevate-patch-usage-product-inventory",
        "rebilly-create-usage",
        "http",
    ] {
        let ran = harness(&["task", task, "--input", &example(task)]).await;
        let printed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
        assert_eq!(printed["status"], "COMPLETED", "{task}: {}", ran.stdout);
        assert_eq!(printed["task"], task);
        assert_eq!(ran.code, EXIT_OK, "{task}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zuora_example_prints_the_exact_result() {
    let ran = harness(&[
        "task",
        "zuora-update-usage",
        "--input",
        &example("zuora-update-usage"),
    ])
    .await;
    let mut printed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let headers = printed["output"]["response"]["headers"].take();
    assert_eq!(
        printed,
        json!({
            "task": "zuora-update-usage",
            "status": "COMPLETED",
            "output": { "response": {
                "statusCode": 200,
                "reasonPhrase": "OK",
                "headers": null,
                "body": { "Id": "8ad08ae29085a77b0190908bfdd67abb", "Success": true },
            } },
        })
    );
    assert_eq!(headers["zuora-track-id"], json!(["usage-sync-2026-11"]));
    assert_eq!(headers["content-type"], json!(["application/json"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_exits_1_with_the_error_json() {
    let dir = std::env::temp_dir().join(format!("harness-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"body": {"subscriptionId": "sub_mock_001", "quantity": 0.0001}}"#,
    )
    .unwrap();
    let ran = harness(&[
        "task",
        "rebilly-create-usage",
        "--input",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(ran.code, EXIT_FAILED);
    let printed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(
        printed,
        json!({
            "task": "rebilly-create-usage",
            "status": "FAILED_WITH_TERMINAL_ERROR",
            "output": {},
            "reasonForIncompletion": "invalid input, nothing was sent: body.quantity: at most 3 decimal places (the minimum billable unit is 0.001)",
            "error": {
                "kind": "invalid-input",
                "message": "invalid input, nothing was sent: body.quantity: at most 3 decimal places (the minimum billable unit is 0.001)",
                "fields": [{ "field": "body.quantity", "message": "at most 3 decimal places (the minimum billable unit is 0.001)" }],
                "retryable": false,
                "retryAfterMs": null,
            },
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_exits_2_with_one_line() {
    let ran = harness(&["task", "stripe-charge", "--input", &example("http")]).await;
    assert_eq!(ran.code, EXIT_USAGE);
    assert_eq!(ran.stdout, "");
    assert_eq!(
        ran.stderr,
        "harness: unknown task `stripe-charge`; `harness list` shows the tasks\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_input_exits_2() {
    let file =
        std::env::temp_dir().join(format!("harness-cli-nonjson-{}.json", std::process::id()));
    std::fs::write(&file, "Quantity=12").unwrap();
    let ran = harness(&[
        "task",
        "zuora-update-usage",
        "--input",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(ran.code, EXIT_USAGE);
    assert_eq!(ran.stdout, "");
    assert!(
        ran.stderr
            .starts_with(&format!("harness: input {} is not JSON: ", file.display())),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stderr.lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_input_exits_2() {
    let ran = harness(&[
        "task",
        "zuora-update-usage",
        "--input",
        "/nonexistent/input.json",
    ])
    .await;
    assert_eq!(ran.code, EXIT_USAGE);
    assert!(
        ran.stderr
            .starts_with("harness: cannot read input file /nonexistent/input.json: "),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_every_task_with_method_and_path() {
    let ran = harness(&["list"]).await;
    assert_eq!(ran.code, EXIT_OK);
    let rows: Vec<Vec<&str>> = ran
        .stdout
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "billingplatform-update-usage-identifier",
                "PUT",
                "/rest/2.0/USAGE_IDENTIFIER"
            ],
            vec![
                "elevate-patch-usage-product-inventory",
                "PATCH",
                "/usage-product-inventories/{usage_product_inventory_id}"
            ],
            vec!["http", "ANY", "{uri}"],
            vec!["javascript", "NONE", "-"],
            vec!["json-jq-transform", "NONE", "-"],
            vec!["rebilly-create-usage", "POST", "/usages"],
            vec!["zuora-update-usage", "PUT", "/v1/object/usage/{id}"],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_prints_schema_and_example() {
    let ran = harness(&["describe", "rebilly-create-usage"]).await;
    assert_eq!(ran.code, EXIT_OK);
    let described: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(described["name"], "rebilly-create-usage");
    assert_eq!(described["method"], "POST");
    assert_eq!(described["idempotent"], false);
    assert_eq!(
        described["inputSchema"]["properties"]["body"]["required"],
        json!(["subscriptionId", "quantity"])
    );
    assert_eq!(
        described["exampleInput"]["body"]["subscriptionId"],
        "sub_01HXYZ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_out_of_range_on_the_command_line_is_a_usage_error() {
    let ran = harness(&[
        "--memory-mib",
        "0",
        "task",
        "zuora-update-usage",
        "--input",
        &example("zuora-update-usage"),
    ])
    .await;
    assert_eq!(ran.code, EXIT_USAGE);
    assert_eq!(ran.stdout, "");
    assert_eq!(
        ran.stderr,
        "harness: --memory-mib: must be between 1 and 4096, not 0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_limit_on_the_command_line_applies_to_the_run() {
    let mock = harness_mock::MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/zuora/".into(),
        times: 1,
        delay_ms: 5_000,
        ..Default::default()
    });
    let base = mock.base_url(harness_mock::Vendor::Zuora);
    let ran = harness(&[
        "--timeout-ms",
        "300",
        "task",
        "zuora-update-usage",
        "--input",
        &example("zuora-update-usage"),
        "--base-url",
        &base,
    ])
    .await;
    let printed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(ran.code, EXIT_FAILED, "{printed}");
    assert_eq!(printed["error"]["kind"], "transport");
    assert_eq!(
        printed["error"]["message"],
        "the run exceeded its time limit of 300 ms while waiting for the server."
    );
}

/// Standard output that refuses every write, as a closed pipe does.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_cannot_be_written_after_the_post_went_out_is_exit_3_not_2() {
    let input = example("rebilly-create-usage");
    let argv = [
        "harness",
        "task",
        "rebilly-create-usage",
        "--input",
        input.as_str(),
    ]
    .map(String::from)
    .to_vec();
    let mut err = Vec::new();
    let code = cli::run(argv, &mut ClosedPipe, &mut err).await;
    assert_eq!(code, EXIT_UNREPORTED);
    assert_ne!(code, EXIT_USAGE);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.starts_with("harness: the result could not be written (broken pipe); the run's requests may have been sent and applied: check the records before running it again"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_plan_prints_the_request_and_sends_nothing() {
    // Nothing listens on port 1: a plan that sent anything would fail.
    let ran = harness(&[
        "task",
        "rebilly-create-usage",
        "--input",
        &example("rebilly-create-usage"),
        "--base-url",
        "http://127.0.0.1:1",
        "--plan",
    ])
    .await;
    assert_eq!(ran.code, EXIT_OK, "{}", ran.stderr);
    let printed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let body =
        r#"{"subscriptionId":"sub_mock_001","quantity":0.001,"usageTime":"2026-11-21T12:00:00Z"}"#;
    assert_eq!(
        printed,
        json!({
            "task": "rebilly-create-usage",
            "status": "PLANNED",
            "sent": false,
            "request": {
                "method": "POST",
                "url": "http://127.0.0.1:1/usages",
                "headers": [
                    ["Content-Type", "application/json"],
                    ["REB-APIKEY", "[redacted]"],
                    ["Content-Length", body.len().to_string()],
                ],
                "body": body,
                "bodyBytes": body.len(),
                "connectionTimeOut": 3000,
                "readTimeOut": 10000,
            },
            "credentials": null,
            "refusal": null,
            "warnings": [],
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_plan_of_a_task_that_cannot_plan_is_a_usage_error() {
    let ran = harness(&[
        "task",
        "javascript",
        "--input",
        &example("javascript"),
        "--plan",
    ])
    .await;
    assert_eq!(ran.code, EXIT_USAGE);
    assert_eq!(
        ran.stderr,
        "harness: task `javascript` cannot plan its request apart from sending it: its component does not export usage-billing:tasks/exchange (run it without --plan)\n"
    );
}

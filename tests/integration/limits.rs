//! Per-run limits: a component that loops, allocates, recurses, traps, floods its output
//! or waits on a slow server is stopped with a message naming the limit and its value,
//! and the next task in the same sandbox still completes.

use harness_mock::{Fault, MockServer, Vendor};
use harness_runner::{self as runner, TaskOutcome};
use harness_sandbox::policy::{Origin, SendPolicy};
use harness_sandbox::{BUILTIN_COMPONENTS, Limits, Sandbox, SandboxOptions};
use integration_tests::TEST_COMPONENTS;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Small limits, so that hitting them is quick.
fn small_limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(1_000),
        memory_bytes: 16 << 20,
        output_bytes: 1 << 20,
        log_bytes: 4 << 10,
        response_body_bytes: 4 << 10,
        response_header_bytes: 2 << 10,
        ..Limits::default()
    }
}

async fn sandbox_with(limits: Limits) -> Sandbox {
    let mut sandbox = Sandbox::with_options(SandboxOptions {
        limits,
        max_in_flight: 8,
        ..SandboxOptions::default()
    })
    .unwrap();
    for (name, wasm) in TEST_COMPONENTS.iter().chain(BUILTIN_COMPONENTS) {
        if ["hostile", "zuora-update-usage", "http"].contains(name) {
            sandbox.load(wasm).await.unwrap();
        }
    }
    sandbox
}

static LIMITED: OnceCell<Sandbox> = OnceCell::const_new();

/// One sandbox with [`small_limits`], the `hostile` test component and two real tasks.
async fn limited() -> &'static Sandbox {
    LIMITED.get_or_init(|| sandbox_with(small_limits())).await
}

async fn hostile(sandbox: &Sandbox, input: Value) -> TaskOutcome {
    runner::run_task(
        sandbox,
        "hostile",
        &input.to_string(),
        SendPolicy::deny_all(),
    )
    .await
    .unwrap()
}

/// A real task on the same sandbox completes after the hostile one was stopped.
async fn next_task_completes(sandbox: &Sandbox) {
    let mock = MockServer::start().await;
    let input = json!({
        "baseUrl": mock.base_url(Vendor::Zuora),
        "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    });
    let prepared = runner::prepare("zuora-update-usage", input, None);
    let outcome = runner::run_task(
        sandbox,
        "zuora-update-usage",
        &prepared.input,
        prepared.policy,
    )
    .await
    .unwrap();
    assert_eq!(outcome.to_json()["status"], "COMPLETED", "{outcome:?}");
    assert_eq!(mock.journal().len(), 1);
}

fn assert_stopped(outcome: &TaskOutcome, message: &str) {
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR", "{printed}");
    assert_eq!(printed["error"]["kind"], "sandbox", "{printed}");
    assert_eq!(printed["error"]["retryable"], false);
    assert_eq!(printed["error"]["message"], message, "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_loops_forever_is_stopped_at_the_time_limit() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "loop" })).await;
    assert_stopped(
        &outcome,
        "stopped: the run exceeded its time limit of 1000 ms",
    );
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_allocates_without_end_is_stopped_at_the_memory_limit() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "allocate" })).await;
    let message = outcome.to_json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(
            "stopped: the component exceeded its memory limit of 16777216 bytes (memory_mib = 16) asking for "
        ),
        "{message}"
    );
    assert_stopped(&outcome, &message);
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_recurses_without_end_is_stopped_when_its_stack_overflows() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "recurse" })).await;
    assert_stopped(
        &outcome,
        "stopped: the component trapped: wasm trap: out of bounds memory access (its stack overflowed, or it has a bug)",
    );
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_traps_is_stopped_and_its_panic_is_in_the_log() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "trap" })).await;
    assert_stopped(
        &outcome,
        "stopped: the component trapped: wasm trap: wasm `unreachable` instruction executed",
    );
    assert!(
        outcome
            .guest_log
            .contains("hostile component panics on purpose"),
        "{}",
        outcome.guest_log
    );
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_limit_stops_the_run() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "output", "bytes": 2 << 20 })).await;
    assert_stopped(
        &outcome,
        "stopped: the task output of 2097152 bytes exceeds the limit of 1048576 bytes (output_bytes)",
    );
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_log_output_is_cut_at_the_log_limit_without_failing_the_run() {
    let sandbox = limited().await;
    let outcome = hostile(sandbox, json!({ "do": "log", "bytes": 1 << 20 })).await;
    assert_eq!(outcome.to_json()["status"], "COMPLETED");
    let expected = format!(
        "{}\n[{} more bytes dropped: the limit is 4096 bytes (log_bytes)]\n",
        "y".repeat(4096),
        (1 << 20) - 4096
    );
    assert_eq!(outcome.guest_log, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_out_of_fuel_is_stopped_naming_the_fuel_limit() {
    let sandbox = sandbox_with(Limits {
        fuel: Some(5_000_000),
        ..small_limits()
    })
    .await;
    let outcome = hostile(&sandbox, json!({ "do": "loop" })).await;
    assert_stopped(
        &outcome,
        "stopped: the component used up its fuel limit of 5000000 (fuel)",
    );
    next_task_completes(&sandbox).await;
}

async fn http_get(sandbox: &Sandbox, mock: &MockServer, extra: Value) -> Value {
    let mut input = json!({ "method": "GET", "uri": format!("{}/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb", mock.uri()) });
    for (key, value) in extra.as_object().unwrap() {
        input[key] = value.clone();
    }
    let policy = SendPolicy::allow(Origin::of_url(&mock.uri()));
    runner::run_task(sandbox, "http", &input.to_string(), policy)
        .await
        .unwrap()
        .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_over_the_limit_fails_as_transport_naming_the_limit() {
    let sandbox = limited().await;
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(200),
        body: Some(Value::String("z".repeat(5_000))),
        ..Fault::default()
    });
    let printed = http_get(sandbox, &mock, json!({})).await;
    assert_eq!(printed["status"], "FAILED", "{printed}");
    assert_eq!(printed["error"]["kind"], "transport");
    assert_eq!(
        printed["error"]["message"],
        "HTTP transport error: ErrorCode::HttpResponseBodySize(Some(5000)): the response body exceeds the limit of 4096 bytes (response_body_bytes)."
    );
    next_task_completes(sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_over_the_limit_fail_as_transport_naming_the_limit() {
    let sandbox = limited().await;
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(200),
        headers: vec![("X-Padding".into(), "p".repeat(3_000))],
        body: Some(json!({})),
        ..Fault::default()
    });
    let printed = http_get(sandbox, &mock, json!({})).await;
    assert_eq!(printed["status"], "FAILED", "{printed}");
    assert_eq!(printed["error"]["kind"], "transport");
    assert_eq!(
        printed["error"]["message"],
        "HTTP transport error: ErrorCode::HttpResponseHeaderSectionSize(Some(3224)): the response headers (3224 bytes) exceed the limit of 2048 bytes (response_header_bytes)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_slower_than_read_timeout_fails_as_transport_naming_read_timeout() {
    let sandbox = limited().await;
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        delay_ms: 900,
        ..Fault::default()
    });
    let printed = http_get(sandbox, &mock, json!({ "readTimeOut": 200 })).await;
    assert_eq!(printed["status"], "FAILED", "{printed}");
    assert_eq!(printed["error"]["kind"], "transport");
    assert_eq!(
        printed["error"]["message"],
        "read timed out (readTimeOut): no response within 200 ms (readTimeOut, the first-byte timeout)."
    );
    next_task_completes(sandbox).await;
}

/// Limits for the large-answer tests: a 16 MiB component reading up to 4 MiB.
fn large_answer_limits() -> Limits {
    Limits {
        // These tests are about memory: a time limit of 1 s failed them on a loaded
        // machine (a debug build parsing a 2 MB answer), not for what they check.
        timeout: std::time::Duration::from_secs(30),
        memory_bytes: 16 << 20,
        response_body_bytes: 4 << 20,
        output_bytes: 8 << 20,
        ..small_limits()
    }
}

/// An `http` POST of a Rebilly usage to a fresh mock that answers 201 with `answer`:
/// the outcome, and the mock for its journal.
async fn rebilly_post_answered(sandbox: &Sandbox, answer: Value) -> (TaskOutcome, MockServer) {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/rebilly/".into(),
        times: 1,
        status: Some(201),
        body: Some(answer),
        ..Fault::default()
    });
    let input = json!({
        "uri": format!("{}/rebilly/organizations/org_mock/usages", mock.uri()),
        "method": "POST",
        "headers": { "REB-APIKEY": "sk_sandbox_mock" },
        "body": { "subscriptionId": "sub_mock_001", "quantity": 1 },
    });
    let policy = SendPolicy::allow(Origin::of_url(&mock.uri()));
    let outcome = runner::run_task(sandbox, "http", &input.to_string(), policy)
        .await
        .unwrap();
    (outcome, mock)
}

/// A POST that reached the server and whose answer then stopped the run (here: an output
/// over `output_bytes`) may have been applied: the failure says so, as a transport
/// failure after a POST does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_after_its_post_reached_the_server_says_it_may_have_been_applied() {
    let sandbox = sandbox_with(Limits {
        output_bytes: 4 << 10,
        response_body_bytes: 1 << 20,
        ..small_limits()
    })
    .await;
    let (outcome, mock) = rebilly_post_answered(
        &sandbox,
        json!({ "id": "usage_1", "padding": "x".repeat(8 << 10) }),
    )
    .await;
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "sandbox");
    let message = printed["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("stopped: the task output of "),
        "{message}"
    );
    assert!(
        message.ends_with("exceeds the limit of 4096 bytes (output_bytes). The request may have been applied: check the record before sending it again (a duplicate may bill twice)."),
        "{message}"
    );
    assert_eq!(mock.journal().len(), 1);
    assert!(!runner::may_resend(&outcome));
}

/// A large answer of many small values (a million zeros, 2 MB) fits a 16 MiB component:
/// the body goes into the output as text, never parsed into a tree inside the guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_of_many_small_values_fits_the_component_memory() {
    let sandbox = sandbox_with(large_answer_limits()).await;
    let zeros = vec![0; 1_000_000];
    let (outcome, _mock) =
        rebilly_post_answered(&sandbox, json!({ "id": "usage_1", "values": zeros })).await;
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "COMPLETED", "{}", printed["error"]);
    let body = &printed["output"]["response"]["body"];
    assert_eq!(body["id"], "usage_1");
    assert_eq!(body["values"].as_array().unwrap().len(), 1_000_000);
}

/// Zuora's success check reads `Success` and `Errors` only: a large answer of many small
/// values is skipped, not built in a 16 MiB component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zuora_reads_success_from_a_large_answer_without_building_it() {
    let sandbox = sandbox_with(large_answer_limits()).await;
    let mock = MockServer::start().await;
    let id = "8ad08ae29085a77b0190908bfdd67abb";
    mock.inject(Fault {
        path: format!("/zuora/v1/object/usage/{id}"),
        times: 1,
        status: Some(200),
        body: Some(json!({ "Id": id, "Success": true, "values": vec![0; 1_000_000] })),
        ..Fault::default()
    });
    let input = json!({
        "path": { "id": id },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    });
    let prepared = runner::prepare(
        "zuora-update-usage",
        input,
        Some(&mock.base_url(Vendor::Zuora)),
    );
    let outcome = runner::run_task(
        &sandbox,
        "zuora-update-usage",
        &prepared.input,
        prepared.policy,
    )
    .await
    .unwrap();
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "COMPLETED", "{}", printed["error"]);
    assert_eq!(printed["output"]["response"]["body"]["Success"], true);
}

/// An answer holding one large string (3 MB) also fits a 16 MiB component: the body is
/// copied once, into the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_of_one_long_string_fits_the_component_memory() {
    let sandbox = sandbox_with(large_answer_limits()).await;
    let (outcome, _mock) = rebilly_post_answered(
        &sandbox,
        json!({ "id": "usage_1", "note": "n".repeat(3 << 20) }),
    )
    .await;
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "COMPLETED", "{}", printed["error"]);
    assert_eq!(
        printed["output"]["response"]["body"]["note"]
            .as_str()
            .unwrap()
            .len(),
        3 << 20
    );
}

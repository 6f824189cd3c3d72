//! The fault matrix: every task against every way a vendor call can go wrong (5xx, the
//! vendor's own 429, a connection dropped before the body or after the request was
//! applied, a reply slower than `readTimeOut`, and 200s whose body cannot be read), with
//! the exact status, error kind and retryability printed, and what the vendor stored.
//! The non-idempotent calls (Rebilly's POST, Elevate's PATCH, an `http` POST) also run
//! each fault through a one-task workflow with retries, which must apply them at most
//! once (exactly once when the workflow completes).

use harness_mock::{Fault, MockServer, Vendor};
use harness_workflow::definition::WorkflowDef;
use harness_workflow::{ManualClock, WorkflowResult, WorkflowRunner};
use integration_tests::{json, run_with_base, shared_sandbox};
use serde_json::{Value, json};
use std::sync::Arc;

/// What the runner appends to a `server-error` or `transport` failure of a call that is
/// not idempotent.
const UNKNOWN_OUTCOME: &str = " The request may have been applied: check the record before sending it again (a duplicate may bill twice).";

const ZUORA_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
const REBILLY_USAGES: &str = "/rebilly/organizations/org_mock/usages";

/// One task of the matrix: its input, the request it sends, and how to count what the
/// vendor stored from it.
struct Case {
    /// Task name.
    task: &'static str,
    /// The vendor on the mock (for `http`: the one its `uri` points at).
    vendor: Vendor,
    /// The request the task sends.
    method: &'static str,
    path: &'static str,
    /// The body the task sends, as JSON.
    body: fn() -> Value,
    /// The task input (without a server: the mock's is filled in).
    input: fn() -> Value,
    /// Whether sending it twice is the same as once.
    idempotent: bool,
}

const CASES: [Case; 5] = [
    Case {
        task: "billingplatform-update-usage-identifier",
        vendor: Vendor::BillingPlatform,
        method: "PUT",
        path: "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
        body: || json!({ "brmObjects": { "Id": "1001", "UsageIdentifier": "API_CALLS_V2" } }),
        input: || {
            json!({
                "headers": { "sessionId": "mock-bp-session" },
                "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "API_CALLS_V2" } },
            })
        },
        idempotent: true,
    },
    Case {
        task: "zuora-update-usage",
        vendor: Vendor::Zuora,
        method: "PUT",
        path: "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
        body: || json!({ "Quantity": 12.5, "UOM": "Each" }),
        input: || {
            json!({
                "path": { "id": ZUORA_ID },
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "body": { "Quantity": 12.5, "UOM": "Each" },
            })
        },
        idempotent: true,
    },
    Case {
        task: "elevate-patch-usage-product-inventory",
        vendor: Vendor::Elevate,
        method: "PATCH",
        path: "/elevate/v1/usage-product-inventories/1",
        // Appending is not idempotent: every application adds one product reference.
        body: || json!([{ "op": "add", "path": "/productReferences/-", "value": { "productReference": "07700900002" } }]),
        input: || {
            json!({
                "path": { "usage_product_inventory_id": 1 },
                "headers": { "Authorization": "Bearer mock-elevate-token" },
                "body": [{ "op": "add", "path": "/productReferences/-", "value": { "productReference": "07700900002" } }],
            })
        },
        idempotent: false,
    },
    Case {
        task: "rebilly-create-usage",
        vendor: Vendor::Rebilly,
        method: "POST",
        path: REBILLY_USAGES,
        body: || json!({ "subscriptionId": "sub_mock_001", "quantity": 2 }),
        input: || {
            json!({
                "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": "sub_mock_001", "quantity": 2 },
            })
        },
        idempotent: false,
    },
    Case {
        task: "http",
        vendor: Vendor::Rebilly,
        method: "POST",
        path: REBILLY_USAGES,
        body: || json!({ "subscriptionId": "sub_mock_001", "quantity": 2 }),
        input: || {
            json!({
                "uri": REBILLY_USAGES,
                "method": "POST",
                "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": "sub_mock_001", "quantity": 2 },
            })
        },
        idempotent: false,
    },
];

/// The non-idempotent cases, which also run through a workflow with retries.
fn non_idempotent() -> impl Iterator<Item = &'static Case> {
    CASES.iter().filter(|case| !case.idempotent)
}

impl Case {
    /// The base URL the task is given on `mock` (for `http`, the server its `uri` is
    /// relative to).
    fn base(&self, mock: &MockServer) -> String {
        if self.task == "http" {
            mock.uri()
        } else {
            mock.base_url(self.vendor)
        }
    }

    /// A fault for exactly this case's request.
    fn fault(&self, fault: Fault) -> Fault {
        Fault {
            method: Some(self.method.into()),
            path: self.path.into(),
            times: 1,
            ..fault
        }
    }

    /// How many times the vendor has applied this case's request since the last reset.
    fn applied(&self, mock: &MockServer) -> usize {
        match self.vendor {
            Vendor::BillingPlatform => {
                let record = mock.record(Vendor::BillingPlatform, "1001").unwrap();
                usize::from(record["UsageIdentifier"] == "API_CALLS_V2")
            }
            Vendor::Zuora => {
                let record = mock.record(Vendor::Zuora, ZUORA_ID).unwrap();
                let sent: Value = serde_json::from_str("12.5").unwrap();
                usize::from(record["Quantity"] == sent)
            }
            Vendor::Elevate => {
                let record = mock.record(Vendor::Elevate, "1").unwrap();
                record["productReferences"].as_array().unwrap().len() - 1
            }
            Vendor::Rebilly => (1..)
                .take_while(|n| {
                    mock.record(Vendor::Rebilly, &format!("usage_{n}"))
                        .is_some()
                })
                .count(),
        }
    }

    /// Runs the task once against `mock` (reset first, `fault` injected) with `input`
    /// changed by `adjust`; returns the printed outcome once the mock is idle.
    async fn run(&self, mock: &MockServer, fault: Fault, adjust: fn(&mut Value)) -> Value {
        mock.reset();
        mock.inject(self.fault(fault));
        let mut input = (self.input)();
        adjust(&mut input);
        let outcome = run_with_base(self.task, input, Some(&self.base(mock))).await;
        // A request the mock delayed is applied even when the task gave up on it.
        mock.wait_until_idle().await;
        json(&outcome)
    }

    /// Asserts that exactly one request went out, the one this case sends (its body
    /// unread when the fault dropped the connection before it).
    fn assert_one_request(&self, mock: &MockServer, fault: &str, body_unread: bool) {
        let journal = mock.journal();
        let name = self.task;
        assert_eq!(journal.len(), 1, "{name}, {fault}: one request");
        let request = &journal[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            (self.method, self.path),
            "{name}, {fault}"
        );
        assert_eq!(request.body_unread, body_unread, "{name}, {fault}");
        if !body_unread {
            assert_eq!(
                request.body_json(),
                Some((self.body)()),
                "{name}, {fault}: the body sent"
            );
        }
    }
}

fn unchanged(_: &mut Value) {}

/// What a faulted run must print.
struct Expected {
    status: &'static str,
    /// `None`: completed.
    kind: Option<&'static str>,
    /// The message starts with this (the unknown-outcome sentence is checked apart).
    message_prefix: &'static str,
    /// How many times the vendor applied the request.
    applied: usize,
}

impl Expected {
    fn transport(message_prefix: &'static str, applied: usize) -> Expected {
        Expected {
            status: "FAILED",
            kind: Some("transport"),
            message_prefix,
            applied,
        }
    }
}

/// Asserts the printed outcome of `case` under `fault`.
fn assert_outcome(
    case: &Case,
    mock: &MockServer,
    fault: &str,
    printed: &Value,
    expected: &Expected,
) {
    let name = case.task;
    assert_eq!(printed["task"], name);
    assert_eq!(
        printed["status"], expected.status,
        "{name}, {fault}: {printed}"
    );
    assert_eq!(
        case.applied(mock),
        expected.applied,
        "{name}, {fault}: times the vendor applied the request"
    );
    let Some(kind) = expected.kind else {
        assert!(printed.get("error").is_none(), "{name}, {fault}: {printed}");
        return;
    };
    let error = &printed["error"];
    assert_eq!(error["kind"], kind, "{name}, {fault}: {printed}");
    let retryable = ["rate-limited", "server-error", "transport"].contains(&kind);
    assert_eq!(error["retryable"], retryable, "{name}, {fault}");
    assert_eq!(error["fields"], json!([]), "{name}, {fault}");
    assert_eq!(
        printed["reasonForIncompletion"], error["message"],
        "{name}, {fault}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(expected.message_prefix),
        "{name}, {fault}: {message:?} should start with {:?}",
        expected.message_prefix
    );
    // Only a call that may have been applied and is not idempotent carries the warning.
    let may_double_bill = !case.idempotent && ["server-error", "transport"].contains(&kind);
    assert_eq!(
        message.ends_with(UNKNOWN_OUTCOME),
        may_double_bill,
        "{name}, {fault}: {message:?}"
    );
    if !may_double_bill {
        assert!(
            !message.contains("may have been applied"),
            "{name}, {fault}: {message:?}"
        );
    }
}

/// A one-task workflow with retries (`retryCount` 2) on its own mock and manual clock.
struct Workflow {
    mock: Arc<MockServer>,
    clock: Arc<ManualClock>,
    runner: WorkflowRunner,
}

impl Workflow {
    async fn start() -> Workflow {
        let mock = Arc::new(MockServer::start().await);
        let clock = Arc::new(ManualClock::default());
        let base = {
            let mock = mock.clone();
            Arc::new(move |task: &str| {
                Some(match Vendor::for_task(task) {
                    Some(vendor) => mock.base_url(vendor),
                    None => mock.uri(),
                })
            })
        };
        let runner = WorkflowRunner::new(
            shared_sandbox().await,
            clock.clone(),
            base,
            Arc::new(|_: &str| {}),
        );
        Workflow {
            mock,
            clock,
            runner,
        }
    }

    /// Runs `case` as the only task of a workflow, `fault` injected on its first attempt.
    async fn run(&self, case: &Case, fault: Fault) -> WorkflowResult {
        self.mock.reset();
        self.mock.inject(case.fault(fault));
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "one-task",
            "tasks": [{ "name": case.task, "taskReferenceName": "call", "inputParameters": (case.input)() }],
            "taskDefinitions": [{ "name": case.task, "retryCount": 2, "retryDelaySeconds": 1 }],
        }))
        .unwrap();
        let result = self.runner.run(&definition, json!({})).await;
        self.mock.wait_until_idle().await;
        result
    }

    /// Runs `fault` through a workflow for every non-idempotent case and asserts that it
    /// failed after one attempt without resending, the vendor having applied the request
    /// `applied` times (0 or 1).
    async fn assert_not_resent(&self, fault_name: &str, fault: Fault, applied: usize) {
        for case in non_idempotent() {
            let name = case.task;
            let result = self.run(case, fault.clone()).await;
            assert_eq!(result.status, "FAILED", "{name}, {fault_name}");
            assert_eq!(result.tasks[0].attempts.len(), 1, "{name}, {fault_name}");
            assert_eq!(
                self.mock.journal().len(),
                1,
                "{name}, {fault_name}: sent once"
            );
            assert_eq!(case.applied(&self.mock), applied, "{name}, {fault_name}");
            let reason = result.reason.unwrap();
            assert!(
                reason.starts_with(
                    "task call failed (not retried: the call is not idempotent and may have been applied): "
                ) && reason.ends_with(UNKNOWN_OUTCOME),
                "{name}, {fault_name}: {reason}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retryable_apply_nothing_and_a_post_or_patch_is_not_resent() {
    let mock = MockServer::start().await;
    for status in [500u16, 502, 503] {
        let fault_name = format!("{status}");
        for case in &CASES {
            let fault = Fault {
                status: Some(status),
                body: Some(json!({ "error": "boom" })),
                ..Fault::default()
            };
            let printed = case.run(&mock, fault, unchanged).await;
            let reason = match status {
                500 => "500 Internal Server Error: boom.",
                502 => "502 Bad Gateway: boom.",
                _ => "503 Service Unavailable: boom.",
            };
            let expected = Expected {
                status: "FAILED",
                kind: Some("server-error"),
                message_prefix: reason,
                applied: 0,
            };
            assert_outcome(case, &mock, &fault_name, &printed, &expected);
            let response = &printed["output"]["response"];
            assert_eq!(response["statusCode"], status, "{}", case.task);
            assert_eq!(
                response["body"],
                json!({ "error": "boom" }),
                "{}",
                case.task
            );
            assert_eq!(printed["error"]["retryAfterMs"], Value::Null);
            case.assert_one_request(&mock, &fault_name, false);
        }
    }
    let workflow = Workflow::start().await;
    for status in [500u16, 502, 503] {
        let fault = Fault {
            status: Some(status),
            ..Fault::default()
        };
        workflow
            .assert_not_resent(&format!("{status}"), fault, 0)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendors_own_429_is_rate_limited_with_its_wait_and_a_post_or_patch_is_resent_once() {
    let mock = MockServer::start().await;
    let fault = || Fault {
        rate_limited: Some(7),
        ..Fault::default()
    };
    for case in &CASES {
        let name = case.task;
        let printed = case.run(&mock, fault(), unchanged).await;
        let expected = Expected {
            status: "FAILED",
            kind: Some("rate-limited"),
            message_prefix: "429 Too Many Requests: ",
            applied: 0,
        };
        assert_outcome(case, &mock, "429", &printed, &expected);
        case.assert_one_request(&mock, "429", false);
        let response = &printed["output"]["response"];
        assert_eq!(response["statusCode"], 429, "{name}");
        let wait = printed["error"]["retryAfterMs"].as_u64().unwrap();
        if case.vendor == Vendor::Rebilly {
            // X-RateLimit-Retry-After is the epoch second the limit resets: the wait is
            // until then, a little under 7 s.
            let reset: u64 = response["headers"]["x-ratelimit-retry-after"][0]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(reset > 1_700_000_000, "{name}: an epoch timestamp");
            assert!((5_000..=7_000).contains(&wait), "{name}: {wait} ms");
            assert!(
                printed["error"]["message"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(": retry after {wait} ms.")),
                "{name}"
            );
        } else {
            assert_eq!(response["headers"]["retry-after"], json!(["7"]), "{name}");
            assert_eq!(wait, 7_000, "{name}");
            assert!(
                printed["error"]["message"]
                    .as_str()
                    .unwrap()
                    .ends_with(": retry after 7000 ms."),
                "{name}"
            );
        }
    }
    // A 429 says the request was not processed: the workflow sends it again after the
    // wait, and the vendor applies it exactly once.
    let workflow = Workflow::start().await;
    for case in non_idempotent() {
        let name = case.task;
        let result = workflow.run(case, fault()).await;
        assert_eq!(result.status, "COMPLETED", "{name}: {:?}", result.reason);
        let attempts = &result.tasks[0].attempts;
        assert_eq!(attempts.len(), 2, "{name}");
        assert_eq!(attempts[0].kind.map(|k| k.as_str()), Some("rate-limited"));
        let journal = workflow.mock.journal();
        assert_eq!(journal.len(), 2, "{name}: the first attempt and one resend");
        assert_eq!(journal[0].body, journal[1].body, "{name}: the same request");
        assert_eq!(
            case.applied(&workflow.mock),
            1,
            "{name}: applied exactly once"
        );
    }
    let waits: Vec<u128> = workflow
        .clock
        .sleeps()
        .iter()
        .map(|wait| wait.as_millis())
        .collect();
    assert_eq!(waits.len(), 3, "one wait per workflow: {waits:?}");
    assert_eq!(waits[0], 7_000, "Elevate's Retry-After");
    assert!(
        waits[1..].iter().all(|ms| (5_000..=7_000).contains(ms)),
        "{waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_before_the_body_is_a_transport_failure_that_applies_nothing() {
    let mock = MockServer::start().await;
    let fault = || Fault {
        drop_before_body: true,
        ..Fault::default()
    };
    for case in &CASES {
        let printed = case.run(&mock, fault(), unchanged).await;
        let expected = Expected::transport("connection closed before a complete response.", 0);
        assert_outcome(case, &mock, "dropBeforeBody", &printed, &expected);
        assert_eq!(printed["output"], json!({}), "{}", case.task);
        case.assert_one_request(&mock, "dropBeforeBody", true);
    }
    // The request head reached the server: it may have been applied as far as the task
    // can tell, so a POST or PATCH is not resent.
    let workflow = Workflow::start().await;
    workflow
        .assert_not_resent("dropBeforeBody", fault(), 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_apply_is_a_transport_failure_and_the_effect_is_stored_once() {
    let mock = MockServer::start().await;
    let fault = || Fault {
        drop_after_apply: true,
        ..Fault::default()
    };
    for case in &CASES {
        let printed = case.run(&mock, fault(), unchanged).await;
        let expected = Expected::transport("connection closed before a complete response.", 1);
        assert_outcome(case, &mock, "dropAfterApply", &printed, &expected);
        assert_eq!(printed["output"], json!({}), "{}", case.task);
        case.assert_one_request(&mock, "dropAfterApply", false);
    }
    let workflow = Workflow::start().await;
    workflow
        .assert_not_resent("dropAfterApply", fault(), 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_slower_than_read_timeout_is_a_transport_failure_and_the_late_effect_is_stored_once()
 {
    let mock = MockServer::start().await;
    // The mock answers a second late; the task waits 200 ms for the first byte.
    let fault = || Fault {
        delay_ms: 1_000,
        ..Fault::default()
    };
    fn short_read_timeout(input: &mut Value) {
        input["readTimeOut"] = json!(200);
    }
    for case in &CASES {
        let printed = case.run(&mock, fault(), short_read_timeout).await;
        let expected = Expected::transport(
            "read timed out (readTimeOut): no response within 200 ms (readTimeOut, the first-byte timeout).",
            1,
        );
        assert_outcome(case, &mock, "slow reply", &printed, &expected);
        case.assert_one_request(&mock, "slow reply", false);
    }
    let workflow = Workflow::start().await;
    for case in non_idempotent() {
        let name = case.task;
        workflow.mock.reset();
        workflow.mock.inject(case.fault(fault()));
        let mut input = (case.input)();
        short_read_timeout(&mut input);
        let definition: WorkflowDef = serde_json::from_value(json!({
            "name": "one-task",
            "tasks": [{ "name": case.task, "taskReferenceName": "call", "inputParameters": input }],
            "taskDefinitions": [{ "name": case.task, "retryCount": 2, "retryDelaySeconds": 1 }],
        }))
        .unwrap();
        let result = workflow.runner.run(&definition, json!({})).await;
        workflow.mock.wait_until_idle().await;
        assert_eq!(result.status, "FAILED", "{name}");
        assert_eq!(result.tasks[0].attempts.len(), 1, "{name}: not resent");
        assert_eq!(workflow.mock.journal().len(), 1, "{name}");
        assert_eq!(
            case.applied(&workflow.mock),
            1,
            "{name}: applied once, late"
        );
        assert_eq!(
            result.reason.as_deref(),
            Some(
                format!("task call failed (not retried: the call is not idempotent and may have been applied): read timed out (readTimeOut): no response within 200 ms (readTimeOut, the first-byte timeout).{UNKNOWN_OUTCOME}")
                    .as_str()
            ),
            "{name}"
        );
    }
}

/// A 200 whose body is `body` with content type `content_type` (none if `None`).
fn ok_with(body: Option<Value>, content_type: Option<&str>) -> Fault {
    Fault {
        status: Some(200),
        headers: content_type
            .map(|value| vec![("Content-Type".to_owned(), value.to_owned())])
            .unwrap_or_default(),
        body,
        ..Fault::default()
    }
}

/// Runs a 200 fault whose body is not JSON: an endpoint task cannot tell from it whether
/// the vendor applied the request, so it fails as `transport` (retried when idempotent,
/// never resent when not); the generic `http` task completes with the body as text
/// (`Value::Null` when empty), as Conductor's HTTP task does.
async fn assert_unreadable_200(
    fault_name: &str,
    fault: fn() -> Fault,
    message_prefix: &'static str,
    http_body: Value,
) {
    let mock = MockServer::start().await;
    for case in &CASES {
        let printed = case.run(&mock, fault(), unchanged).await;
        let expected = if case.task == "http" {
            Expected {
                status: "COMPLETED",
                kind: None,
                message_prefix: "",
                applied: 0,
            }
        } else {
            Expected::transport(message_prefix, 0)
        };
        assert_outcome(case, &mock, fault_name, &printed, &expected);
        case.assert_one_request(&mock, fault_name, false);
        if case.task == "http" {
            let response = &printed["output"]["response"];
            assert_eq!(response["statusCode"], 200);
            assert_eq!(response["body"], http_body, "http, {fault_name}");
        } else {
            assert_eq!(printed["output"], json!({}), "{}, {fault_name}", case.task);
        }
    }
    let workflow = Workflow::start().await;
    // The http task completed above; the endpoint tasks are not resent.
    for case in non_idempotent().filter(|case| case.task != "http") {
        let name = case.task;
        let result = workflow.run(case, fault()).await;
        assert_eq!(result.status, "FAILED", "{name}, {fault_name}");
        assert_eq!(result.tasks[0].attempts.len(), 1, "{name}, {fault_name}");
        assert_eq!(workflow.mock.journal().len(), 1, "{name}, {fault_name}");
        assert_eq!(case.applied(&workflow.mock), 0, "{name}, {fault_name}");
    }
    // An idempotent update is simply sent again, and completes.
    let zuora = &CASES[1];
    let result = workflow.run(zuora, fault()).await;
    assert_eq!(result.status, "COMPLETED", "zuora, {fault_name}");
    assert_eq!(result.tasks[0].attempts.len(), 2, "zuora, {fault_name}");
    assert_eq!(zuora.applied(&workflow.mock), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_with_200_is_a_transport_failure_for_endpoint_tasks_and_text_for_http() {
    assert_unreadable_200(
        "malformed JSON 200",
        || {
            ok_with(
                Some(json!("{\"id\": \"usage_1\", ")),
                Some("application/json"),
            )
        },
        "200 OK with a body that is not JSON (application/json, 18 bytes): ",
        json!("{\"id\": \"usage_1\", "),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_200_is_a_transport_failure_for_endpoint_tasks_and_null_for_http() {
    assert_unreadable_200(
        "empty 200",
        || ok_with(None, None),
        "200 OK with an empty body: ",
        Value::Null,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_200_is_a_transport_failure_for_endpoint_tasks_and_text_for_http() {
    const PAGE: &str = "<html><body>Service temporarily moved</body></html>";
    assert_unreadable_200(
        "text/html 200",
        || ok_with(Some(json!(PAGE)), Some("text/html; charset=utf-8")),
        "200 OK with a body that is not JSON (text/html; charset=utf-8, 51 bytes): ",
        json!(PAGE),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_gzip_body_is_a_transport_failure_and_the_effect_is_stored_once() {
    let mock = MockServer::start().await;
    let fault = || Fault {
        truncate_gzip: true,
        ..Fault::default()
    };
    for case in &CASES {
        let printed = case.run(&mock, fault(), unchanged).await;
        let expected = Expected::transport("response says gzip but its body does not decode: ", 1);
        assert_outcome(case, &mock, "truncated gzip", &printed, &expected);
        assert_eq!(printed["output"], json!({}), "{}", case.task);
        case.assert_one_request(&mock, "truncated gzip", false);
    }
    let workflow = Workflow::start().await;
    workflow
        .assert_not_resent("truncated gzip", fault(), 1)
        .await;
}

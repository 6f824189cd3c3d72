//! `rebilly-create-usage` against the mock.

use harness_mock::{MockServer, Vendor};
use integration_tests::{json, run};
use serde_json::json;

const TASK: &str = "rebilly-create-usage";

fn input(body: serde_json::Value) -> serde_json::Value {
    json!({ "headers": { "REB-APIKEY": "sk_sandbox_mock" }, "body": body })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_usage_and_sends_exact_request() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        TASK,
        input(json!({ "subscriptionId": "sub_mock_001", "quantity": 0.001, "usageTime": "2026-11-21T12:00:00Z" })),
    )
    .await;

    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    let request = &journal[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/rebilly/organizations/org_mock/usages");
    assert_eq!(request.query, None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("reb-apikey"), Some("sk_sandbox_mock"));
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":0.001,"usageTime":"2026-11-21T12:00:00Z"}"#
    );

    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    let response = &printed["output"]["response"];
    assert_eq!(response["statusCode"], 201);
    assert_eq!(response["reasonPhrase"], "Created");
    let base = mock.base_url(Vendor::Rebilly);
    assert_eq!(
        response["headers"]["location"],
        json!([format!("{base}/usages/usage_1")])
    );
    assert_eq!(response["body"]["id"], "usage_1");
    assert_eq!(response["body"]["quantity"].to_string(), "0.001");
    assert_eq!(response["body"]["subscriptionId"], "sub_mock_001");
    assert!(mock.record(Vendor::Rebilly, "usage_1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_usage_time_out_when_not_given() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        TASK,
        input(json!({ "subscriptionId": "sub_mock_001", "quantity": 3 })),
    )
    .await;
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":3}"#
    );
}

async fn assert_rejected_before_sending(body: serde_json::Value, expected: serde_json::Value) {
    let mock = MockServer::start().await;
    let printed = json(&run(&mock, TASK, input(body)).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(printed["error"]["fields"], expected);
    assert!(
        mock.journal().is_empty(),
        "nothing may be sent for an invalid input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_subscription_id_and_quantity() {
    assert_rejected_before_sending(
        json!({}),
        json!([
            { "field": "body.subscriptionId", "message": "required" },
            { "field": "body.quantity", "message": "required" },
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_subscription_id_over_50_characters() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "s".repeat(51), "quantity": 1 }),
        json!([{ "field": "body.subscriptionId", "message": "at most 50 characters (got 51)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_below_one_thousandth() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "sub_mock_001", "quantity": 0 }),
        json!([{ "field": "body.quantity", "message": "must be at least 0.001" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_negative_quantity() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "sub_mock_001", "quantity": -1 }),
        json!([{ "field": "body.quantity", "message": "must be at least 0.001" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_with_four_decimal_places() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "sub_mock_001", "quantity": 1.0005 }),
        json!([{ "field": "body.quantity", "message": "at most 3 decimal places (the minimum billable unit is 0.001)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_quantity_text_with_leading_zeros_that_json_cannot_carry() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "sub_mock_001", "quantity": "007" }),
        json!([{ "field": "body.quantity", "message": "must not have leading zeros" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_out_read_only_fields_and_names_them_in_warnings() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({
                "subscriptionId": "sub_mock_001", "quantity": 1,
                "id": "u1", "invoiceId": "i", "invoiceItemId": "ii", "createdTime": "t", "updatedTime": "t", "_links": [],
            })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let why = "read-only at Rebilly (Usage.yaml): left out of the request";
    assert_eq!(
        printed["output"]["warnings"],
        json!([
            { "field": "body.id", "message": why },
            { "field": "body.invoiceId", "message": why },
            { "field": "body.invoiceItemId", "message": why },
            { "field": "body.createdTime", "message": why },
            { "field": "body.updatedTime", "message": why },
            { "field": "body._links", "message": why },
        ])
    );
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":1}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_in_exponent_form_is_sent_as_written_and_checked_on_its_value() {
    let mock = MockServer::start().await;
    let body: serde_json::Value =
        serde_json::from_str(r#"{"subscriptionId": "sub_mock_001", "quantity": 1.5e1}"#).unwrap();
    let printed = json(&run(&mock, TASK, input(body)).await);
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let journal = mock.journal();
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":1.5e+1}"#
    );
    // The mock records the number it parsed (15, in its JSON text).
    assert_eq!(
        printed["output"]["response"]["body"]["quantity"].to_string(),
        "1.5e+1"
    );

    let tiny: serde_json::Value =
        serde_json::from_str(r#"{"subscriptionId": "sub_mock_001", "quantity": 1E-4}"#).unwrap();
    let printed = json(&run(&mock, TASK, input(tiny)).await);
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "body.quantity", "message": "at most 3 decimal places (the minimum billable unit is 0.001)" }])
    );
    assert_eq!(mock.journal().len(), 1, "the refused quantity was not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_usage_time_is_sent_and_rebilly_uses_the_request_time() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "subscriptionId": "sub_mock_001", "quantity": 2, "usageTime": "" })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    assert_eq!(
        String::from_utf8(mock.journal()[0].body.clone()).unwrap(),
        r#"{"subscriptionId":"sub_mock_001","quantity":2,"usageTime":""}"#
    );
    let body = &printed["output"]["response"]["body"];
    assert_eq!(body["usageTime"], body["createdTime"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_usage_time_that_is_not_rfc3339() {
    assert_rejected_before_sending(
        json!({ "subscriptionId": "sub_mock_001", "quantity": 1, "usageTime": "21/11/2026" }),
        json!([{ "field": "body.usageTime", "message": "must be an RFC 3339 date-time like 2026-11-01T12:00:00Z, or empty" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantity_over_hard_limit_is_rejected_with_invalid_fields() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "subscriptionId": "sub_capped", "quantity": 10 })),
        )
        .await,
    );
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
    let response = &printed["output"]["response"];
    assert_eq!(response["statusCode"], 422);
    assert_eq!(
        response["headers"]["content-type"],
        json!(["application/problem+json"])
    );
    assert_eq!(
        response["body"]["invalidFields"],
        json!([{ "field": "quantity", "message": "Quantity exceeds the hard limit of 100 (5 remaining)" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_partial_quantity_clips_to_the_hard_limit() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "subscriptionId": "sub_capped", "quantity": 10, "acceptPartialQuantity": true })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(
        printed["output"]["response"]["body"]["quantity"].to_string(),
        "5"
    );
    // Usage.yaml: acceptPartialQuantity is writeOnly, never returned.
    let body = printed["output"]["response"]["body"].as_object().unwrap();
    assert!(!body.contains_key("acceptPartialQuantity"), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_subscription_is_a_conflict() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "subscriptionId": "sub_canceled", "quantity": 1 })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_key_is_unauthorized_and_read_only_key_is_forbidden() {
    let mock = MockServer::start().await;
    let body = json!({ "subscriptionId": "sub_mock_001", "quantity": 1 });
    let mut wrong = input(body.clone());
    wrong["headers"]["REB-APIKEY"] = json!("sk_sandbox_wrong");
    assert_eq!(
        json(&run(&mock, TASK, wrong).await)["error"]["kind"],
        "unauthorized"
    );
    let mut read_only = input(body);
    read_only["headers"]["REB-APIKEY"] = json!("sk_sandbox_readonly");
    assert_eq!(
        json(&run(&mock, TASK, read_only).await)["error"]["kind"],
        "forbidden"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_after_post_says_the_outcome_is_unknown() {
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/rebilly/".into(),
        times: 1,
        status: Some(503),
        ..Default::default()
    });
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "subscriptionId": "sub_mock_001", "quantity": 1 })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "server-error");
    assert_eq!(
        printed["reasonForIncompletion"],
        "503 Service Unavailable. The server failed; a retry may help. The request may have been applied: check the record before sending it again (a duplicate may bill twice)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_while_waiting_for_the_server_reports_an_unknown_outcome() {
    use harness_sandbox::{Limits, Sandbox, SandboxOptions};
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/rebilly/".into(),
        times: 1,
        delay_ms: 3_000,
        ..Default::default()
    });
    let options = SandboxOptions {
        limits: Limits {
            timeout: std::time::Duration::from_millis(300),
            ..Limits::default()
        },
        max_in_flight: 4,
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::builtin_only(TASK, options).await.unwrap();
    let prepared = harness_runner::prepare(
        TASK,
        input(json!({ "subscriptionId": "sub_mock_001", "quantity": 1 })),
        Some(&mock.base_url(Vendor::Rebilly)),
    );
    let outcome = harness_runner::run_task(&sandbox, TASK, &prepared.input, prepared.policy)
        .await
        .unwrap();
    let printed = json(&outcome);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "transport");
    assert!(outcome.reached_server);
    assert_eq!(
        printed["error"]["message"],
        "the run exceeded its time limit of 300 ms while waiting for the server. The request may have been applied: check the record before sending it again (a duplicate may bill twice)."
    );
}

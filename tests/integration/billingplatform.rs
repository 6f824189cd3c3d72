//! `billingplatform-update-usage-identifier` against the mock.

use harness_mock::{Fault, MockServer, Vendor};
use integration_tests::{json, run};
use serde_json::json;

const TASK: &str = "billingplatform-update-usage-identifier";

fn input(record: serde_json::Value) -> serde_json::Value {
    json!({ "headers": { "sessionId": "mock-bp-session" }, "body": { "brmObjects": record } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_usage_identifier_and_sends_exact_request() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        TASK,
        input(json!({ "Id": "1001", "UsageIdentifier": "API_CALLS_V2" })),
    )
    .await;

    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    let request = &journal[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(
        request.path,
        "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER"
    );
    assert_eq!(request.query, None);
    assert_eq!(
        request.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(request.header("sessionid"), Some("mock-bp-session"));
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"{"brmObjects":{"Id":"1001","UsageIdentifier":"API_CALLS_V2"}}"#
    );

    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    let record = &printed["output"]["response"]["body"]["retrieveResponse"];
    assert_eq!(record["Id"], "1001");
    assert_eq!(record["UsageIdentifier"], "API_CALLS_V2");
    assert_eq!(record["UpdatedUserId"], "mock-api-user");
    assert_eq!(
        mock.record(Vendor::BillingPlatform, "1001").unwrap()["UsageIdentifier"],
        "API_CALLS_V2"
    );
}

async fn assert_rejected_before_sending(input: serde_json::Value, expected: serde_json::Value) {
    let mock = MockServer::start().await;
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(printed["error"]["fields"], expected);
    assert!(
        mock.journal().is_empty(),
        "nothing may be sent for an invalid input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_missing_id_and_usage_identifier() {
    assert_rejected_before_sending(
        input(json!({})),
        json!([
            { "field": "body.brmObjects.Id", "message": "required" },
            { "field": "body.brmObjects.UsageIdentifier", "message": "required" },
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_out_system_controlled_fields_and_names_them_in_warnings() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({
                "Id": "1001", "UsageIdentifier": "X",
                "Created": "2026-01-01", "Updated": "2026-01-01", "CreatedUserId": "1", "UpdatedUserId": "1",
            })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let why = "system-controlled: BillingPlatform sets it (API reference); left out of the request";
    assert_eq!(
        printed["output"]["warnings"],
        json!([
            { "field": "body.brmObjects.Created", "message": why },
            { "field": "body.brmObjects.Updated", "message": why },
            { "field": "body.brmObjects.CreatedUserId", "message": why },
            { "field": "body.brmObjects.UpdatedUserId", "message": why },
        ])
    );
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"brmObjects":{"Id":"1001","UsageIdentifier":"X"}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_an_array_of_records_in_one_request() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!([
                { "Id": "1001", "UsageIdentifier": "API_CALLS_V2" },
                { "Id": "1002", "UsageIdentifier": "STORAGE_TB" },
            ])),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        ("PUT", "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER")
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"brmObjects":[{"Id":"1001","UsageIdentifier":"API_CALLS_V2"},{"Id":"1002","UsageIdentifier":"STORAGE_TB"}]}"#
    );
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "updateResponse": [
            { "Id": "1001", "success": true, "ErrorCode": "0", "ErrorText": [] },
            { "Id": "1002", "success": true, "ErrorCode": "0", "ErrorText": [] },
        ]})
    );
    assert_eq!(
        mock.record(Vendor::BillingPlatform, "1002").unwrap()["UsageIdentifier"],
        "STORAGE_TB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_whose_record_says_success_false_is_rejected_naming_the_record_and_field() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!([
                { "Id": "1001", "UsageIdentifier": "API_CALLS_V2" },
                { "Id": "999", "UsageIdentifier": "NOPE" },
            ])),
        )
        .await,
    );
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(printed["output"]["response"]["statusCode"], 200);
    assert_eq!(
        printed["reasonForIncompletion"],
        "200 OK: record 1 (Id 999): Id: No USAGE_IDENTIFIER record with Id 999. The vendor rejected the request; fix the input and run it again."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_body_without_brm_objects() {
    assert_rejected_before_sending(
        json!({ "body": { "Id": "1001" } }),
        json!([
            { "field": "body.Id", "message": "unknown field; the body holds only brmObjects" },
            { "field": "body.brmObjects", "message": "required" },
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_is_unauthorized() {
    let mock = MockServer::start().await;
    let mut input = input(json!({ "Id": "1001", "UsageIdentifier": "X" }));
    input["headers"]["sessionId"] = json!("expired");
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["error"]["kind"], "unauthorized");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "error": "Unauthorized", "message": "Invalid or expired session" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_record_is_not_found() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Id": "999", "UsageIdentifier": "X" })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "not-found");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "error": "Not Found", "message": "USAGE_IDENTIFIER 999 not found" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_is_rejected() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/billingplatform/".into(),
        times: 1,
        status: Some(400),
        body: Some(json!({ "error": "Bad request", "message": "Bad request" })),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Id": "1001", "UsageIdentifier": "X" })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_error_is_a_retryable_server_error() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/billingplatform/".into(),
        times: 1,
        status: Some(500),
        body: Some(json!({ "error": "Internal error", "message": "Internal error" })),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Id": "1001", "UsageIdentifier": "X" })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "server-error");
    assert_eq!(printed["status"], "FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_response_with_error_code_is_rejected() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/billingplatform/".into(),
        times: 1,
        status: Some(200),
        body: Some(json!({ "updateResponse": [{ "ErrorCode": "12", "ErrorText": "Record locked", "Id": "1001" }] })),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Id": "1001", "UsageIdentifier": "X" })),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_update_response_shape_completes() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/billingplatform/".into(),
        times: 1,
        status: Some(200),
        body: Some(
            json!({ "updateResponse": [{ "ErrorCode": "0", "ErrorText": "", "Id": "1001" }] }),
        ),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!({ "Id": "1001", "UsageIdentifier": "X" })),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED");
}

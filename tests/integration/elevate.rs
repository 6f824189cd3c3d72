//! `elevate-patch-usage-product-inventory` against the mock.

use harness_mock::{MockServer, Vendor};
use integration_tests::{json, run};
use serde_json::json;

const TASK: &str = "elevate-patch-usage-product-inventory";

fn input(id: serde_json::Value, patch: serde_json::Value) -> serde_json::Value {
    json!({
        "path": { "usage_product_inventory_id": id },
        "headers": { "Authorization": "Bearer mock-elevate-token" },
        "body": patch,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_inventory_and_sends_exact_request() {
    let mock = MockServer::start().await;
    let patch = json!([
        { "op": "test", "path": "/usageCapEnabled", "value": false },
        { "op": "replace", "path": "/usageCapEnabled", "value": true },
        { "op": "replace", "path": "/defaultUsageCap", "value": 7500 },
    ]);
    let outcome = run(&mock, TASK, input(json!(1), patch)).await;

    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    let request = &journal[0];
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.path, "/elevate/v1/usage-product-inventories/1");
    assert_eq!(request.query, None);
    assert_eq!(
        request.header("content-type"),
        Some("application/json-patch+json")
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer mock-elevate-token")
    );
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"[{"op":"test","path":"/usageCapEnabled","value":false},{"op":"replace","path":"/usageCapEnabled","value":true},{"op":"replace","path":"/defaultUsageCap","value":7500}]"#
    );

    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(
        printed["output"]["response"]["body"]["usageCapEnabled"],
        true
    );
    assert_eq!(
        printed["output"]["response"]["body"]["defaultUsageCap"],
        7500
    );
    let stored = mock.record(Vendor::Elevate, "1").unwrap();
    assert_eq!(stored["usageCapEnabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_test_is_a_conflict_and_changes_nothing() {
    let mock = MockServer::start().await;
    let before = mock.record(Vendor::Elevate, "1").unwrap();
    let patch = json!([
        { "op": "replace", "path": "/defaultUsageCap", "value": 1 },
        { "op": "test", "path": "/usageCapEnabled", "value": true },
    ]);
    let printed = json(&run(&mock, TASK, input(json!(1), patch)).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "conflict");
    assert_eq!(printed["output"]["response"]["statusCode"], 409);
    assert_eq!(mock.record(Vendor::Elevate, "1").unwrap(), before);
}

async fn assert_rejected_before_sending(input: serde_json::Value, expected: serde_json::Value) {
    let mock = MockServer::start().await;
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(printed["error"]["fields"], expected);
    assert!(
        mock.journal().is_empty(),
        "nothing may be sent for an invalid input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_id_below_one() {
    assert_rejected_before_sending(
        input(json!(0), json!([{ "op": "remove", "path": "/endDate" }])),
        json!([{ "field": "path.usage_product_inventory_id", "message": "must be an integer from 1 to 9223372036854775807 (int64)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_id_that_is_not_an_integer() {
    assert_rejected_before_sending(
        input(json!("1.5"), json!([{ "op": "remove", "path": "/endDate" }])),
        json!([{ "field": "path.usage_product_inventory_id", "message": "must be an integer from 1 to 9223372036854775807 (int64)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_id_beyond_int64() {
    assert_rejected_before_sending(
        input(json!("9223372036854775808"), json!([{ "op": "remove", "path": "/endDate" }])),
        json!([{ "field": "path.usage_product_inventory_id", "message": "must be an integer from 1 to 9223372036854775807 (int64)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_an_operation_does_not_define_are_sent_as_given() {
    let mock = MockServer::start().await;
    // RFC 6902 §4: such members MUST be ignored (Elevate's own sample puts from on an add).
    let patch = json!([
        { "op": "add", "path": "/endDate", "value": "2026-12-31", "from": "/startDate" },
        { "op": "replace", "path": "/defaultUsageCap", "value": 9000, "note": "raised for Q4" },
    ]);
    let printed = json(&run(&mock, TASK, input(json!(1), patch.clone())).await);
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].body_json().unwrap(), patch);
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"[{"op":"add","path":"/endDate","value":"2026-12-31","from":"/startDate"},{"op":"replace","path":"/defaultUsageCap","value":9000,"note":"raised for Q4"}]"#
    );
    let record = mock.record(Vendor::Elevate, "1").unwrap();
    assert_eq!(record["endDate"], "2026-12-31");
    assert_eq!(record["defaultUsageCap"], 9000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_patch_is_sent_and_changes_nothing() {
    let mock = MockServer::start().await;
    let before = mock.record(Vendor::Elevate, "1").unwrap();
    let printed = json(&run(&mock, TASK, input(json!(1), json!([]))).await);
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(String::from_utf8(journal[0].body.clone()).unwrap(), "[]");
    assert_eq!(mock.record(Vendor::Elevate, "1").unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_patch_that_is_not_an_array() {
    assert_rejected_before_sending(
        input(json!(1), json!({ "op": "remove", "path": "/endDate" })),
        json!([{ "field": "body", "message": "must be a JSON Patch array of operations (RFC 6902)" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_unknown_op() {
    assert_rejected_before_sending(
        input(json!(1), json!([{ "op": "merge", "path": "/endDate", "value": 1 }])),
        json!([{ "field": "body[0].op", "message": "must be one of add, remove, replace, move, copy, test" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_from_for_move_and_copy() {
    assert_rejected_before_sending(
        input(json!(1), json!([{ "op": "move", "path": "/endDate" }, { "op": "copy", "path": "/x" }])),
        json!([
            { "field": "body[0].from", "message": "required: a JSON Pointer like /usageCapEnabled" },
            { "field": "body[1].from", "message": "required: a JSON Pointer like /usageCapEnabled" },
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_path_that_is_not_a_json_pointer() {
    assert_rejected_before_sending(
        input(json!(1), json!([{ "op": "replace", "path": "usageCapEnabled", "value": true }, { "op": "remove", "path": "/a~2b" }])),
        json!([
            { "field": "body[0].path", "message": "must be a JSON Pointer (RFC 6901): empty, or starting with / with ~ only as ~0 or ~1" },
            { "field": "body[1].path", "message": "must be a JSON Pointer (RFC 6901): empty, or starting with / with ~ only as ~0 or ~1" },
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_value_for_replace() {
    assert_rejected_before_sending(
        input(
            json!(1),
            json!([{ "op": "replace", "path": "/usageCapEnabled" }]),
        ),
        json!([{ "field": "body[0].value", "message": "required for replace" }]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_inventory_is_not_found() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(json!(99), json!([{ "op": "remove", "path": "/endDate" }])),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_sites_inventory_is_forbidden() {
    let mock = MockServer::start().await;
    let printed = json(
        &run(
            &mock,
            TASK,
            input(
                json!(3),
                json!([{ "op": "replace", "path": "/billable", "value": false }]),
            ),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "forbidden");
    assert_eq!(printed["output"]["response"]["statusCode"], 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_record_after_patch_is_rejected_and_not_stored() {
    let mock = MockServer::start().await;
    let before = mock.record(Vendor::Elevate, "1").unwrap();
    let printed = json(
        &run(
            &mock,
            TASK,
            input(
                json!(1),
                json!([{ "op": "replace", "path": "/serviceId", "value": "AB" }]),
            ),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "error": "Bad Request", "message": "Validation failed for field 'serviceId'" })
    );
    assert_eq!(mock.record(Vendor::Elevate, "1").unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_unauthorized() {
    let mock = MockServer::start().await;
    let mut input = input(json!(1), json!([{ "op": "remove", "path": "/endDate" }]));
    input["headers"] = json!({});
    let printed = json(&run(&mock, TASK, input).await);
    assert_eq!(printed["error"]["kind"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_with_a_missing_target_is_unprocessable_and_changes_nothing() {
    let mock = MockServer::start().await;
    let before = mock.record(Vendor::Elevate, "1").unwrap();
    let printed = json(
        &run(
            &mock,
            TASK,
            input(
                json!(1),
                json!([
                    { "op": "replace", "path": "/defaultUsageCap", "value": 1 },
                    { "op": "remove", "path": "/noSuchField" },
                ]),
            ),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rejected");
    assert_eq!(printed["output"]["response"]["statusCode"], 422);
    assert_eq!(mock.record(Vendor::Elevate, "1").unwrap(), before);
}

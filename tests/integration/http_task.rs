//! The generic `http` task (Conductor's HTTP task, sandboxed).

use harness_mock::MockServer;
use integration_tests::{json, run_with_base};
use serde_json::json;

const ID: &str = "8ad08ae29085a77b0190908bfdd67abb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_nested_http_request_exactly() {
    let mock = MockServer::start().await;
    let outcome = run_with_base(
        "http",
        json!({
            "http_request": {
                "uri": format!("/zuora/v1/object/usage/{ID}"),
                "method": "PUT",
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "body": { "UOM": "Each" },
            }
        }),
        Some(&mock.uri()),
    )
    .await;
    let request = &mock.journal()[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, format!("/zuora/v1/object/usage/{ID}"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        r#"{"UOM":"Each"}"#
    );
    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "Id": ID, "Success": true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_get_reads_a_record_back() {
    let mock = MockServer::start().await;
    let outcome = run_with_base(
        "http",
        json!({ "uri": "/elevate/v1/usage-product-inventories/1", "headers": { "Authorization": "Bearer mock-elevate-token" } }),
        Some(&mock.uri()),
    )
    .await;
    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(
        printed["output"]["response"]["body"]["serviceId"],
        "SVC-0001"
    );
    let request = &mock.journal()[0];
    assert_eq!(request.method, "GET");
    assert!(request.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_unknown_method_and_missing_uri() {
    let mock = MockServer::start().await;
    let printed =
        json(&run_with_base("http", json!({ "method": "FETCH" }), Some(&mock.uri())).await);
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(
        printed["error"]["fields"],
        json!([
            { "field": "uri", "message": "required: an absolute http:// or https:// URL" },
            { "field": "method", "message": "must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" },
        ])
    );
    assert!(mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_crlf_in_a_header_value() {
    let mock = MockServer::start().await;
    let printed = json(
        &run_with_base(
            "http",
            json!({ "uri": "/zuora/v1/object/usage/x", "headers": { "X-Trace": "a\nb" } }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "headers.X-Trace", "message": "header value must not contain CR, LF or NUL" }])
    );
    assert!(mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_is_a_transport_error() {
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/zuora/".into(),
        times: 1,
        drop: true,
        ..Default::default()
    });
    let printed = json(
        &run_with_base(
            "http",
            json!({ "uri": format!("/zuora/v1/object/usage/{ID}"), "headers": { "Authorization": "Bearer mock-zuora-token" } }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "transport");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reply_past_read_timeout_is_a_transport_error() {
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/zuora/".into(),
        times: 1,
        delay_ms: 2_000,
        ..Default::default()
    });
    let printed = json(
        &run_with_base(
            "http",
            json!({
                "uri": format!("/zuora/v1/object/usage/{ID}"),
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "readTimeOut": 200,
            }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "transport");
    assert_eq!(
        printed["error"]["message"],
        "read timed out (readTimeOut): no response within 200 ms (readTimeOut, the first-byte timeout)."
    );
}

/// `readTimeOut: 0` means no timeout of its own (the run's time limit still bounds it),
/// so a slow answer completes every time instead of racing an instant deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_timeout_of_zero_means_no_timeout_of_its_own() {
    let mock = MockServer::start().await;
    for _ in 0..3 {
        mock.inject(harness_mock::Fault {
            path: "/zuora/".into(),
            times: 1,
            delay_ms: 300,
            ..Default::default()
        });
        let printed = json(
            &run_with_base(
                "http",
                json!({
                    "uri": format!("/zuora/v1/object/usage/{ID}"),
                    "headers": { "Authorization": "Bearer mock-zuora-token" },
                    "readTimeOut": 0,
                    "connectionTimeOut": 0,
                }),
                Some(&mock.uri()),
            )
            .await,
        );
        assert_eq!(printed["status"], "COMPLETED", "{printed}");
    }
    assert_eq!(mock.journal().len(), 3);
}

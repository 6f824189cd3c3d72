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
        json!({ "uri": "/elevate/v1/usage-product-inventories/1", "method": "GET", "headers": { "Authorization": "Bearer mock-elevate-token" } }),
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
            { "field": "uri", "message": "required: an absolute http:// or https:// URL (Conductor fails the task with \"Missing HTTP URI\")" },
            { "field": "method", "message": "must be GET, PUT, POST, PATCH, DELETE, OPTIONS or HEAD" },
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
            json!({ "uri": "/zuora/v1/object/usage/x", "method": "GET", "headers": { "X-Trace": "a\nb" } }),
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
            json!({ "uri": format!("/zuora/v1/object/usage/{ID}"), "method": "GET", "headers": { "Authorization": "Bearer mock-zuora-token" } }),
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
                "method": "GET",
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
                    "method": "GET",
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

/// A request written for Conductor, as its `HttpTask` reads it: `http_request` with
/// siblings (ignored), header values of any JSON type (by `toString`, nulls skipped),
/// `accept` as a list, timeouts as numeric strings, legacy and unknown keys (ignored):
/// everything it ignores is named in the output's `warnings`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_written_for_conductor_is_sent_as_conductor_sends_it_and_what_it_ignores_is_named()
 {
    let mock = MockServer::start().await;
    let printed = json(
        &run_with_base(
            "http",
            json!({
                "http_request": {
                    "uri": format!("/zuora/v1/object/usage/{ID}"),
                    "method": "PUT",
                    "headers": {
                        "Authorization": "Bearer mock-zuora-token",
                        "X-Batch": 42,
                        "X-Ratio": 1.5,
                        "X-Dry-Run": false,
                        "X-Tags": ["a", "b"],
                        "X-None": null,
                    },
                    "accept": ["application/json", "text/plain"],
                    "body": { "UOM": "Each" },
                    "connectionTimeOut": "5000",
                    "readTimeOut": 5000.0,
                    "vipAddress": "zuora-api",
                    "encode": true,
                },
                "asyncComplete": true,
                "note": "period 2026-11",
            }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    let journal = mock.journal();
    let request = &journal[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, format!("/zuora/v1/object/usage/{ID}"));
    assert_eq!(request.query, None);
    assert_eq!(
        request.header("accept"),
        Some("application/json, text/plain")
    );
    assert_eq!(request.header("x-batch"), Some("42"));
    assert_eq!(request.header("x-ratio"), Some("1.5"));
    assert_eq!(request.header("x-dry-run"), Some("false"));
    assert_eq!(request.header("x-tags"), Some("[a, b]"));
    assert_eq!(request.header("x-none"), None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, br#"{"UOM":"Each"}"#);
    let ignored = "not an input of Conductor's HTTP task: ignored, as Conductor ignores it (its inputs: uri, method, headers, body, accept, contentType, connectionTimeOut, readTimeOut, vipAddress, appName)";
    assert_eq!(
        printed["output"]["warnings"],
        json!([
            { "field": "asyncComplete", "message": "has no effect here: the task completes when the response comes (Conductor would leave it IN_PROGRESS for an external update)" },
            { "field": "note", "message": "ignored: Conductor's HTTP task reads only http_request when it is given" },
            { "field": "http_request.vipAddress", "message": "has no effect: Conductor OSS's HTTP task only logs it" },
            { "field": "http_request.encode", "message": ignored },
        ])
    );
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "Id": ID, "Success": true })
    );
}

/// RestTemplate writes a string body as it is, JSON content type or not: a definition
/// that builds its JSON as text sends that text, not a JSON string holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_body_is_sent_as_it_is_whatever_the_content_type() {
    let mock = MockServer::start().await;
    let printed = json(
        &run_with_base(
            "http",
            json!({
                "uri": format!("/zuora/v1/object/usage/{ID}"),
                "method": "PUT",
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "body": "{\"UOM\":\"Each\"}",
            }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(printed["status"], "COMPLETED", "{printed}");
    assert_eq!(printed["output"].get("warnings"), None);
    let request = &mock.journal()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, br#"{"UOM":"Each"}"#);
}

/// Conductor fails an HTTP task without a method ("No HTTP method specified"); TRACE
/// would echo the credentials the host adds; a timeout must hold a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_method_trace_and_a_timeout_that_is_no_number_are_refused_before_sending() {
    let mock = MockServer::start().await;
    let uri = format!("/zuora/v1/object/usage/{ID}");
    let missing = json(
        &run_with_base(
            "http",
            json!({ "http_request": { "uri": uri, "readTimeOut": "soon", "connectionTimeOut": -1 } }),
            Some(&mock.uri()),
        )
        .await,
    );
    let rule = "must be a whole number of milliseconds from 0 to 4294967295";
    assert_eq!(
        missing["error"]["fields"],
        json!([
            { "field": "http_request.method", "message": "required: GET, PUT, POST, PATCH, DELETE, OPTIONS or HEAD (Conductor fails the task with \"No HTTP method specified\")" },
            { "field": "http_request.connectionTimeOut", "message": rule },
            { "field": "http_request.readTimeOut", "message": format!("{rule} (a number, or a string holding one)") },
        ])
    );
    let trace = json(
        &run_with_base(
            "http",
            json!({ "uri": uri, "method": "TRACE" }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(
        trace["error"]["fields"],
        json!([{ "field": "method", "message": "TRACE is not sent: the server echoes the request, credentials the host adds included" }])
    );
    assert!(mock.journal().is_empty());
}

/// Without `readTimeOut`, Conductor's default of 3000 ms applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timeouts_conductors_default_of_three_seconds_applies() {
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/zuora/".into(),
        times: 1,
        delay_ms: 4_000,
        ..Default::default()
    });
    let printed = json(
        &run_with_base(
            "http",
            json!({
                "uri": format!("/zuora/v1/object/usage/{ID}"),
                "method": "GET",
                "headers": { "Authorization": "Bearer mock-zuora-token" },
            }),
            Some(&mock.uri()),
        )
        .await,
    );
    assert_eq!(
        printed["error"]["message"],
        "read timed out (readTimeOut): no response within 3000 ms (readTimeOut, the first-byte timeout)."
    );
}

//! gzip both ways: compressed responses are decoded, plain ones left alone even when
//! gzip was asked for, and `Content-Encoding: gzip` request bodies are compressed.

use harness_mock::{MockServer, Vendor};
use integration_tests::{json, run, run_with_base};
use serde_json::json;
use std::io::Read;

const ID: &str = "8ad08ae29085a77b0190908bfdd67abb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_a_gzipped_response_over_1000_bytes() {
    let mock = MockServer::start().await;
    let outcome = run_with_base(
        "http",
        json!({
            "method": "GET", "uri": format!("/zuora/v1/object/usage/{ID}"),
            "headers": { "Authorization": "Bearer mock-zuora-token", "Accept-Encoding": "gzip" },
        }),
        Some(&mock.uri()),
    )
    .await;
    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    let response = &printed["output"]["response"];
    assert_eq!(response["headers"]["content-encoding"], json!(["gzip"]));
    assert_eq!(response["body"], mock.record(Vendor::Zuora, ID).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_a_small_plain_response_alone_when_gzip_was_asked() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        "zuora-update-usage",
        json!({
            "path": { "id": ID },
            "headers": { "Authorization": "Bearer mock-zuora-token", "Accept-Encoding": "gzip" },
            "body": { "UOM": "Each" },
        }),
    )
    .await;
    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    assert!(
        printed["output"]["response"]["headers"]
            .get("content-encoding")
            .is_none()
    );
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "Id": ID, "Success": true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzips_the_request_body_when_content_encoding_is_gzip() {
    let mock = MockServer::start().await;
    let outcome = run(
        &mock,
        "zuora-update-usage",
        json!({
            "path": { "id": ID },
            "headers": { "Authorization": "Bearer mock-zuora-token", "Content-Encoding": "gzip" },
            "body": { "Quantity": 42.125 },
        }),
    )
    .await;
    assert_eq!(json(&outcome)["status"], "COMPLETED");
    let request = &mock.journal()[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(&request.body[..2], &[0x1f, 0x8b], "the wire body is gzip");
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&request.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, r#"{"Quantity":42.125}"#);
    assert_eq!(
        mock.record(Vendor::Zuora, ID).unwrap()["Quantity"].to_string(),
        "42.125"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_gzip_response_is_a_transport_error() {
    let mock = MockServer::start().await;
    mock.inject(harness_mock::Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(200),
        headers: vec![("Content-Encoding".into(), "gzip".into())],
        body: Some(json!("\u{1f}not really gzip")),
        ..Default::default()
    });
    let outcome = run(
        &mock,
        "zuora-update-usage",
        json!({ "path": { "id": ID }, "headers": { "Authorization": "Bearer mock-zuora-token" }, "body": { "UOM": "Each" } }),
    )
    .await;
    let printed = json(&outcome);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "transport");
}

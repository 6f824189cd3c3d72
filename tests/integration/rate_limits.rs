//! 429 handling: the wait comes from `Retry-After` (seconds or HTTP-date) or Rebilly's
//! `X-RateLimit-Retry-After` (an epoch timestamp, not seconds).

use harness_mock::{Fault, MockServer};
use integration_tests::{json, run};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn zuora_input() -> serde_json::Value {
    json!({
        "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zuora_429_waits_retry_after_seconds() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        rate_limited: Some(7),
        ..Fault::default()
    });
    let printed = json(&run(&mock, "zuora-update-usage", zuora_input()).await);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(printed["error"]["retryable"], true);
    assert_eq!(printed["error"]["retryAfterMs"], 7000);
    let headers = &printed["output"]["response"]["headers"];
    assert_eq!(headers["retry-after"], json!(["7"]));
    assert_eq!(headers["ratelimit-remaining"], json!(["0"]));
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "message": "Too many requests" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date_in_the_past_means_no_wait() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(429),
        headers: vec![("Retry-After".into(), "Wed, 21 Oct 2015 07:28:00 GMT".into())],
        ..Fault::default()
    });
    let printed = json(&run(&mock, "zuora-update-usage", zuora_input()).await);
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(printed["error"]["retryAfterMs"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date_in_the_future_waits_until_then() {
    let mock = MockServer::start().await;
    let at = SystemTime::now() + Duration::from_secs(30);
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(429),
        headers: vec![("Retry-After".into(), httpdate::fmt_http_date(at))],
        ..Fault::default()
    });
    let printed = json(&run(&mock, "zuora-update-usage", zuora_input()).await);
    let wait = printed["error"]["retryAfterMs"].as_u64().unwrap();
    // The HTTP-date has whole seconds: the wait is at most 30 s and more than 28 s.
    assert!((28_000..=30_000).contains(&wait), "wait {wait} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebilly_429_waits_until_the_epoch_timestamp() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/rebilly/".into(),
        times: 1,
        rate_limited: Some(20),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            "rebilly-create-usage",
            json!({ "headers": { "REB-APIKEY": "sk_sandbox_mock" }, "body": { "subscriptionId": "sub_mock_001", "quantity": 1 } }),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rate-limited");
    let headers = &printed["output"]["response"]["headers"];
    let reset: u64 = headers["x-ratelimit-retry-after"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset > now + 10,
        "the header holds a timestamp, not seconds"
    );
    let wait = printed["error"]["retryAfterMs"].as_u64().unwrap();
    assert!(
        (18_000..=20_000).contains(&wait),
        "wait {wait} ms, not {reset} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zuora_429_without_retry_after_waits_until_rate_limit_reset() {
    let mock = MockServer::start().await;
    // Zuora's own 429 example carries only the RateLimit-* headers.
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(429),
        headers: vec![
            ("RateLimit-Remaining".into(), "0".into()),
            ("RateLimit-Reset".into(), "600".into()),
        ],
        ..Fault::default()
    });
    let printed = json(&run(&mock, "zuora-update-usage", zuora_input()).await);
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(
        printed["output"]["response"]["headers"]["ratelimit-reset"],
        json!(["600"])
    );
    assert_eq!(printed["error"]["retryAfterMs"], 600_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_without_a_wait_header_reports_no_wait() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/rebilly/".into(),
        times: 1,
        status: Some(429),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            "rebilly-create-usage",
            json!({ "headers": { "REB-APIKEY": "sk_sandbox_mock" }, "body": { "subscriptionId": "sub_mock_001", "quantity": 1 } }),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(printed["error"]["retryAfterMs"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billingplatform_429_waits_retry_after_seconds() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/billingplatform/".into(),
        times: 1,
        rate_limited: Some(3),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            "billingplatform-update-usage-identifier",
            json!({
                "headers": { "sessionId": "mock-bp-session" },
                "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "X" } },
            }),
        )
        .await,
    );
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(printed["error"]["retryAfterMs"], 3000);
    assert_eq!(
        printed["output"]["response"]["body"],
        json!({ "error": "Too Many Requests", "message": "Rate limit exceeded: at most 15 requests per second" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevate_429_waits_retry_after_seconds() {
    let mock = MockServer::start().await;
    mock.inject(Fault {
        path: "/elevate/".into(),
        times: 1,
        rate_limited: Some(1),
        ..Fault::default()
    });
    let printed = json(
        &run(
            &mock,
            "elevate-patch-usage-product-inventory",
            json!({
                "path": { "usage_product_inventory_id": 1 },
                "headers": { "Authorization": "Bearer mock-elevate-token" },
                "body": [{ "op": "replace", "path": "/billable", "value": false }],
            }),
        )
        .await,
    );
    assert_eq!(printed["error"]["kind"], "rate-limited");
    assert_eq!(printed["error"]["retryAfterMs"], 1000);
    assert_eq!(printed["status"], "FAILED");
}

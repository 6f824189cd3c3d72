//! The sandbox's outgoing-HTTP policy: a component reaches only its granted origin.

use host_harness::mock::{MockServer, Vendor};
use host_harness::policy::{Origin, SendPolicy};
use host_harness::runner;
use integration_tests::sandbox;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_an_origin_not_granted_is_denied_and_never_sent() {
    let granted = MockServer::start().await;
    let other = MockServer::start().await;
    let input = json!({
        "baseUrl": other.base_url(Vendor::Zuora),
        "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
        "headers": { "Authorization": "Bearer mock-zuora-token" },
        "body": { "UOM": "Each" },
    });
    let policy = SendPolicy::allow(Origin::of_url(&granted.uri()));
    let outcome = runner::run_task(
        sandbox().await,
        "zuora-update-usage",
        &input.to_string(),
        policy,
    )
    .await
    .unwrap();
    let printed = outcome.to_json();
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "denied");
    let other_origin = Origin::of_url(&other.uri()).unwrap().to_string();
    let granted_origin = Origin::of_url(&granted.uri()).unwrap().to_string();
    assert_eq!(
        printed["error"]["message"],
        format!(
            "the sandbox denied a request to {other_origin}: this run may reach only {granted_origin}. Use that origin as the task's baseUrl/uri, or grant the origin"
        )
    );
    assert!(
        other.journal().is_empty(),
        "the denied origin saw no request"
    );
    assert!(granted.journal().is_empty());
    assert_eq!(other.connections(), 0, "not even a connection was opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_grants_the_origin_of_the_input_base_url() {
    let mock = MockServer::start().await;
    let prepared = runner::prepare(
        "zuora-update-usage",
        json!({ "baseUrl": format!("{}/zuora", mock.uri()) }),
        None,
    );
    assert_eq!(
        prepared.policy.origins(),
        &[Origin::of_url(&mock.uri()).unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_option_replaces_the_input_base_url() {
    let prepared = runner::prepare(
        "rebilly-create-usage",
        json!({ "baseUrl": "https://api.rebilly.com/organizations/o1" }),
        Some("http://127.0.0.1:9/rebilly/organizations/o1"),
    );
    let input: serde_json::Value = serde_json::from_str(&prepared.input).unwrap();
    assert_eq!(
        input["baseUrl"],
        "http://127.0.0.1:9/rebilly/organizations/o1"
    );
    assert_eq!(
        prepared.policy.origins(),
        &[Origin::of_url("http://127.0.0.1:9").unwrap()]
    );
}

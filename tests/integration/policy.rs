//! The sandbox's outgoing-HTTP policy: a component reaches only its granted origin.

use harness_mock::{MockServer, Vendor};
use harness_runner as runner;
use harness_sandbox::policy::{Origin, SendPolicy};
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

/// A workflow runner whose tasks have no default server and get what `config` grants.
async fn workflow_runner(config: &str) -> harness_workflow::WorkflowRunner {
    use harness_workflow::{ManualClock, WorkflowRunner};
    use std::sync::Arc;
    let config = harness_config::Connections::parse(config).unwrap();
    let sandbox = Arc::new(
        harness_sandbox::Sandbox::builtin(harness_sandbox::Limits::default())
            .await
            .unwrap(),
    );
    WorkflowRunner::new(
        sandbox,
        Arc::new(ManualClock::default()),
        Arc::new(|_: &str| None),
        Arc::new(|_: &str| {}),
    )
    .with_policy(config.policy().clone())
}

/// A one-task workflow: a Zuora usage update sent to `base_url`.
fn zuora_workflow(base_url: &str) -> harness_workflow::definition::WorkflowDef {
    serde_json::from_value(json!({
        "name": "wf",
        "tasks": [{
            "name": "zuora-update-usage",
            "taskReferenceName": "z",
            "inputParameters": {
                "baseUrl": base_url,
                "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
                "headers": { "Authorization": "Bearer mock-zuora-token" },
                "body": { "UOM": "Each" },
            },
        }],
    }))
    .unwrap()
}

fn last_message(result: &harness_workflow::WorkflowResult) -> String {
    result.tasks[0].attempts[0]
        .message
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_workflow_the_input_base_url_grants_nothing() {
    let mock = MockServer::start().await;
    let runner = workflow_runner("").await;
    let result = runner
        .run(&zuora_workflow(&mock.base_url(Vendor::Zuora)), json!({}))
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.tasks[0].attempts[0].kind.map(|k| k.as_str()),
        Some("denied")
    );
    let origin = Origin::of_url(&mock.uri()).unwrap();
    assert_eq!(
        last_message(&result),
        format!(
            "the sandbox denied a request to {origin}: this run may reach only no origin. Use that origin as the task's baseUrl/uri, or grant the origin"
        )
    );
    assert_eq!(mock.connections(), 0, "not even a connection was opened");
    assert!(mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_origin_on_a_loopback_address_is_denied_unless_the_config_allows_it() {
    let mock = MockServer::start().await;
    let origin = Origin::of_url(&mock.uri()).unwrap();
    let grant = format!("[[policy.allow]]\norigin = \"{}\"\n", mock.uri());
    let runner = workflow_runner(&grant).await;
    let result = runner
        .run(&zuora_workflow(&mock.base_url(Vendor::Zuora)), json!({}))
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.tasks[0].attempts[0].kind.map(|k| k.as_str()),
        Some("denied")
    );
    assert_eq!(
        last_message(&result),
        format!(
            "the sandbox denied a request to {origin}: 127.0.0.1 is a loopback address; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them ([policy] allow_addresses)"
        )
    );
    assert_eq!(mock.connections(), 0, "not even a connection was opened");

    let allowed = format!("[policy]\nallow_addresses = [\"127.0.0.1/32\"]\n{grant}");
    let runner = workflow_runner(&allowed).await;
    let result = runner
        .run(&zuora_workflow(&mock.base_url(Vendor::Zuora)), json!({}))
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(mock.journal().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_is_checked_on_the_address_it_resolves_to() {
    let mock = MockServer::start().await;
    let port = Origin::of_url(&mock.uri()).unwrap().port;
    // `localhost` resolves (from /etc/hosts) to loopback only: no packet leaves the machine.
    let grant = format!("[[policy.allow]]\norigin = \"http://localhost:{port}\"\n");
    let runner = workflow_runner(&grant).await;
    let base = format!("http://localhost:{port}/zuora");
    let result = runner.run(&zuora_workflow(&base), json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.tasks[0].attempts[0].kind.map(|k| k.as_str()),
        Some("denied")
    );
    let message = last_message(&result);
    assert!(
        message.starts_with(&format!(
            "the sandbox denied a request to http://localhost:{port}: localhost resolves to "
        )) && message.ends_with(", a loopback address; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them ([policy] allow_addresses)"),
        "{message}"
    );
    assert_eq!(mock.connections(), 0, "not even a connection was opened");

    let allowed = format!("[policy]\nallow_addresses = [\"127.0.0.0/8\"]\n{grant}");
    let runner = workflow_runner(&allowed).await;
    let result = runner.run(&zuora_workflow(&base), json!({})).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let journal = mock.journal();
    assert_eq!(journal.len(), 1);
    let host: Vec<&(String, String)> = journal[0]
        .headers
        .iter()
        .filter(|(name, _)| name == "host")
        .collect();
    assert_eq!(host, [&("host".to_string(), format!("localhost:{port}"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_for_some_methods_denies_the_others_before_anything_is_sent() {
    let mock = MockServer::start().await;
    let config = format!(
        "[policy]\nallow_addresses = [\"127.0.0.1\"]\n[[policy.allow]]\norigin = \"{}\"\nmethods = [\"GET\"]\ntasks = [\"http\"]\n",
        mock.uri()
    );
    let runner = workflow_runner(&config).await;
    let def = serde_json::from_value(json!({
        "name": "wf",
        "tasks": [{
            "name": "HTTP",
            "type": "HTTP",
            "taskReferenceName": "h",
            "inputParameters": {
                "uri": format!("{}/rebilly/organizations/o/usages", mock.uri()),
                "method": "POST",
                "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": "sub_mock_001", "quantity": 1 },
            },
        }],
    }))
    .unwrap();
    let result = runner.run(&def, json!({})).await;
    assert_eq!(result.status, "FAILED");
    let origin = Origin::of_url(&mock.uri()).unwrap();
    assert_eq!(
        last_message(&result),
        format!(
            "the sandbox denied a POST request to {origin}: the origin is granted for GET only"
        )
    );
    assert_eq!(mock.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    use harness_mock::Fault;
    let mock = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(302),
        headers: vec![(
            "Location".into(),
            format!(
                "{}/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
                elsewhere.uri()
            ),
        )],
        ..Fault::default()
    });
    let prepared = runner::prepare(
        "http",
        json!({
            "method": "GET", "uri": format!("{}/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb", mock.uri()),
            "headers": { "Authorization": "Bearer mock-zuora-token" },
        }),
        None,
    );
    let outcome = runner::run_task(sandbox().await, "http", &prepared.input, prepared.policy)
        .await
        .unwrap();
    let printed = outcome.to_json();
    assert_eq!(
        printed["output"]["response"]["statusCode"], 302,
        "{printed}"
    );
    assert_eq!(mock.journal().len(), 1);
    assert_eq!(elsewhere.connections(), 0, "the redirect was not followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_header_from_the_input_never_chooses_the_destination() {
    let mock = MockServer::start().await;
    let prepared = runner::prepare(
        "http",
        json!({
            "method": "GET", "uri": format!("{}/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb", mock.uri()),
            "headers": { "Authorization": "Bearer mock-zuora-token", "Host": "169.254.169.254" },
        }),
        None,
    );
    let outcome = runner::run_task(sandbox().await, "http", &prepared.input, prepared.policy)
        .await
        .unwrap();
    let printed = outcome.to_json();
    assert_eq!(printed["error"]["kind"], "invalid-input", "{printed}");
    assert_eq!(
        printed["error"]["fields"][0],
        json!({ "field": "headers.Host", "message": "set by the transport; remove it from the input" })
    );
    assert!(mock.journal().is_empty(), "nothing was sent");
}

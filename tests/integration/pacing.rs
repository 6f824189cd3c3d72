//! Pacing per connection: the rate spaces requests, a 429 pauses the whole connection
//! (every task on it waits the vendor's time), a pause longer than a run waits
//! sends nothing, and `harness.toml` names its rate and in-flight limits. The host's
//! pacing runs on a manual clock here, so nothing sleeps.

use harness_config::{Connections, Credentials};
use harness_mock::{Fault, MockServer, Vendor};
use harness_pacing::{ConnectionLimits, ManualClock, PaceClock};
use harness_runner::{self as runner, ErrorKind, TaskStatus};
use integration_tests::sandbox;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "8ad08ae29085a77b0190908bfdd67abb";

/// The embedded mock's connections, Zuora's at `limits`, paced on a manual clock.
async fn paced(
    mock: &MockServer,
    limits: ConnectionLimits,
) -> (Arc<ManualClock>, Arc<Credentials>) {
    let clock = Arc::new(ManualClock::new(1_796_083_200_000));
    let connections = Connections::for_mock(mock).with_connection_limits("zuora", limits);
    let credentials = Credentials::with_clock(connections, sandbox().await.http(), clock.clone());
    (clock, Arc::new(credentials))
}

async fn update(credentials: &Arc<Credentials>, quantity: u32) -> runner::TaskOutcome {
    let input =
        json!({ "connection": "zuora", "path": { "id": USAGE }, "body": { "Quantity": quantity } });
    let prepared = runner::prepare_connected("zuora-update-usage", input, None, Some(credentials))
        .unwrap_or_else(|outcome| panic!("{:?}", outcome.failure));
    runner::run_task(
        sandbox().await,
        "zuora-update-usage",
        &prepared.input,
        prepared.policy,
    )
    .await
    .unwrap()
}

fn puts(mock: &MockServer) -> Vec<String> {
    mock.journal()
        .iter()
        .filter(|e| e.method == "PUT")
        .map(|e| String::from_utf8_lossy(&e.decoded_body()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_rate_spaces_its_requests_and_says_why_they_waited() {
    let mock = MockServer::start().await;
    let limits = ConnectionLimits {
        rate: Some("2/s".parse().unwrap()),
        max_in_flight: None,
    };
    let (clock, credentials) = paced(&mock, limits).await;
    let mut left_at = Vec::new();
    for quantity in 1..=3 {
        let outcome = update(&credentials, quantity).await;
        assert_eq!(
            outcome.status,
            TaskStatus::Completed,
            "{:?}",
            outcome.failure
        );
        left_at.push((clock.now().as_millis(), outcome.paced.waited.as_millis()));
        if quantity > 1 {
            assert_eq!(outcome.paced.reasons, ["connection `zuora`: rate 2/s"]);
        } else {
            assert!(outcome.paced.reasons.is_empty());
        }
    }
    assert_eq!(left_at, [(0, 0), (500, 500), (1000, 500)]);
    assert_eq!(
        puts(&mock),
        [
            r#"{"Quantity":1}"#,
            r#"{"Quantity":2}"#,
            r#"{"Quantity":3}"#
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_whole_connection_until_the_vendors_time() {
    let mock = MockServer::start().await;
    let (clock, credentials) = paced(&mock, ConnectionLimits::default()).await;
    mock.inject(Fault {
        path: "/zuora/v1".into(),
        times: 1,
        rate_limited: Some(7),
        ..Fault::default()
    });
    // The task that got the 429 sees it (its engine retries it as its rules say) ...
    let limited = update(&credentials, 4).await;
    let failure = limited.failure.as_ref().unwrap();
    assert_eq!(failure.kind, ErrorKind::RateLimited);
    assert_eq!(failure.retry_after_ms, Some(7000));
    assert!(limited.paced.reasons.is_empty());
    assert_eq!(credentials.pacer("zuora").unwrap().rate_limited(), 1);
    // ... and the next task on the connection waits the vendor's 7 s before it is sent.
    let outcome = update(&credentials, 5).await;
    assert_eq!(
        outcome.status,
        TaskStatus::Completed,
        "{:?}",
        outcome.failure
    );
    assert_eq!(outcome.paced.waited, Duration::from_secs(7));
    assert_eq!(
        outcome.paced.reasons,
        ["connection `zuora` paused: the vendor answered 429 with retry-after: 7"]
    );
    assert_eq!(clock.now(), Duration::from_secs(7));
    assert_eq!(puts(&mock), [r#"{"Quantity":4}"#, r#"{"Quantity":5}"#]);
    // The pause is over: the next task goes at once.
    let next = update(&credentials, 6).await;
    assert_eq!(next.paced.waited, Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_a_run_waits_sends_nothing_and_ends_the_attempt_rate_limited() {
    let mock = MockServer::start().await;
    let (clock, credentials) = paced(&mock, ConnectionLimits::default()).await;
    mock.inject(Fault {
        path: "/zuora/v1".into(),
        times: 1,
        rate_limited: Some(600),
        ..Fault::default()
    });
    let limited = update(&credentials, 6).await;
    assert_eq!(limited.failure.unwrap().retry_after_ms, Some(600_000));
    // Another task on the same connection is held too, and sends nothing.
    let outcome = update(&credentials, 7).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    let failure = outcome.failure.as_ref().unwrap();
    assert_eq!(failure.kind, ErrorKind::RateLimited);
    assert_eq!(failure.retry_after_ms, Some(600_000));
    assert_eq!(
        failure.message,
        "not sent: connection `zuora` paused: the vendor answered 429 with retry-after: 600 for another 600000 ms, longer than a run waits; retry after 600000 ms."
    );
    assert!(!outcome.reached_server);
    assert!(runner::may_resend(&outcome));
    assert_eq!(clock.now(), Duration::ZERO);
    assert_eq!(puts(&mock), [r#"{"Quantity":6}"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_mocks_connections_take_the_mocks_own_limits() {
    let mock = MockServer::start().await;
    mock.set_rate_limit(Vendor::Rebilly, Some("3000/10m".parse().unwrap()));
    let connections = Connections::for_mock(&mock);
    assert_eq!(
        connections.get("rebilly").unwrap().limits.rate,
        Some("3000/10m".parse().unwrap())
    );
    assert_eq!(
        connections.get("zuora").unwrap().limits,
        ConnectionLimits::default()
    );
}

#[test]
fn harness_toml_names_a_connections_rate_and_requests_in_flight() {
    let toml = "[connections.zuora]\nbase_url = \"https://rest.zuora.com\"\nrate = \"15/s\"\nmax_in_flight = 4\nauth = { type = \"zuora-oauth\", client_id = \"abc\", client_secret_env = \"ZUORA_SECRET\" }\n";
    let connections = Connections::parse(toml).unwrap();
    let limits = connections.get("zuora").unwrap().limits;
    assert_eq!(limits.rate, Some("15/s".parse().unwrap()));
    assert_eq!(limits.max_in_flight.map(|m| m.get()), Some(4));
    for (setting, expected) in [
        (
            "rate = \"15 a second\"",
            "connections.zuora.rate: `15 a second` is not a rate: no `/`; write COUNT/PERIOD, e.g. \"15/s\" or \"3000/10m\" (units ms, s, m, h, d)",
        ),
        (
            "max_in_flight = 0",
            "connections.zuora.max_in_flight: must be at least 1 (leave it out for no limit)",
        ),
    ] {
        let text = toml
            .replace("rate = \"15/s\"\n", "")
            .replace("max_in_flight = 4\n", &format!("{setting}\n"));
        assert_eq!(Connections::parse(&text).unwrap_err().to_string(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_definitions_rate_limit_per_frequency_holds_the_next_start_as_conductor_does() {
    let h = crate::workflows::harness().await;
    let tasks: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(crate::workflows::zuora_task)
        .collect();
    let def: harness_workflow::definition::WorkflowDef = serde_json::from_value(json!({
        "name": "paced",
        "tasks": tasks,
        "taskDefinitions": [{
            "name": "zuora-update-usage",
            "rateLimitPerFrequency": 2,
            "rateLimitFrequencyInSeconds": 10,
        }],
    }))
    .unwrap();
    let result = h.runner.run(&def, json!({})).await;
    let printed = result.to_json();
    assert_eq!(printed["status"], "COMPLETED", "{printed:#}");
    let started: Vec<_> = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ref"].clone(),
                t["attempts"][0]["startedMs"].clone(),
                t["attempts"][0]["paced"].clone(),
            )
        })
        .collect();
    assert_eq!(
        started,
        [
            (json!("a"), json!(0), serde_json::Value::Null),
            (json!("b"), json!(0), serde_json::Value::Null),
            (
                json!("c"),
                json!(10_000),
                json!({
                    "waitedMs": 10_000,
                    "waitReason": "task definition `zuora-update-usage`: rateLimitPerFrequency 2 per 10 s",
                })
            ),
        ]
    );
    let lines = h.lines.lock().unwrap().clone();
    assert!(
        lines[2].starts_with("c zuora-update-usage attempt 1: COMPLETED in ")
            && lines[2].ends_with(
                " ms (paced 10000 ms: task definition `zuora-update-usage`: rateLimitPerFrequency 2 per 10 s)"
            ),
        "{lines:?}"
    );
    assert_eq!(h.mock.journal().len(), 3);
}

/// Submitted to Temporal, a definition whose task definitions set Conductor's limits is
/// warned about: the workflow there holds them within the run only. (The cluster here is not
/// reachable: the warning comes before the submission fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_definition_limits_are_warned_about_when_submitted_to_temporal() {
    let dir = std::env::temp_dir().join(format!("harness-taskdef-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("limited.json");
    let definition = json!({
        "name": "limited",
        "tasks": [crate::workflows::zuora_task("a")],
        "taskDefinitions": [
            { "name": "zuora-update-usage", "rateLimitPerFrequency": 2, "concurrentExecLimit": 1 },
            { "name": "zuora-update-usage-copy", "retryCount": 1 }
        ]
    });
    std::fs::write(&file, definition.to_string()).unwrap();
    let argv = [
        "harness",
        "run",
        file.to_str().unwrap(),
        "--temporal-address",
        "127.0.0.1:1",
    ]
    .map(String::from)
    .to_vec();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = host_harness::cli::run(argv, &mut out, &mut err).await;
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, host_harness::cli::EXIT_USAGE, "{err}");
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(
            "warning: $.taskDefinitions[1].name: no task of this definition is named `zuora-update-usage-copy`: it applies to none"
        ),
        "{err}"
    );
    assert_eq!(
        lines.next(),
        Some(
            "warning: $.taskDefinitions[0] (zuora-update-usage): on Temporal rateLimitPerFrequency and concurrentExecLimit hold within this run only, not across runs as on a Conductor server; to pace across runs and workers, set `rate` / `max_in_flight` on the connection in harness.toml (docs/pacing.md)"
        ),
        "{err}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("harness: cannot connect to Temporal at 127.0.0.1:1")),
        "{err}"
    );
    assert_eq!(lines.next(), None, "{err}");
}

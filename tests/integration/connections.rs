//! Connections: the host logs in, caches the token, injects credentials for the
//! connection's origin only, refreshes once on 401, and no secret reaches a component,
//! an output, a log line or an error.

use harness_config::{Connections, Credentials};
use harness_mock::MockServer;
use harness_runner as runner;
use integration_tests::{json, sandbox};
use serde_json::json;
use std::sync::Arc;

const SECRETS: [&str; 7] = [
    "mock-zuora-token",
    "mock-client-secret",
    "mock-password",
    "mock-bp-session",
    "mock-elevate-token",
    "sk_sandbox_mock",
    "wrong-password-xyz",
];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "secret {secret} leaked into: {text}"
        );
    }
}

async fn run_connected(
    credentials: &Arc<Credentials>,
    task: &str,
    input: serde_json::Value,
) -> harness_runner::TaskOutcome {
    match runner::prepare_connected(task, input, None, Some(credentials)) {
        Ok(prepared) => {
            assert_no_secret(&prepared.input);
            runner::run_task(sandbox().await, task, &prepared.input, prepared.policy)
                .await
                .unwrap()
        }
        Err(outcome) => *outcome,
    }
}

fn zuora_input() -> serde_json::Value {
    json!({ "connection": "zuora", "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" }, "body": { "UOM": "Each" } })
}

async fn mock_credentials(mock: &MockServer) -> Arc<Credentials> {
    Arc::new(Credentials::new(
        Connections::for_mock(mock),
        sandbox().await.http(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zuora_connection_logs_in_once_and_injects_the_token() {
    let mock = MockServer::start().await;
    let credentials = mock_credentials(&mock).await;
    for _ in 0..2 {
        let printed = json(&run_connected(&credentials, "zuora-update-usage", zuora_input()).await);
        assert_eq!(printed["status"], "COMPLETED");
        assert_no_secret(&printed.to_string());
    }
    let journal = mock.journal();
    let calls: Vec<(&str, &str)> = journal
        .iter()
        .map(|e| (e.method.as_str(), e.path.as_str()))
        .collect();
    let put = "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb";
    assert_eq!(
        calls,
        [("POST", "/zuora/oauth/token"), ("PUT", put), ("PUT", put)]
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        "client_id=mock-client-id&client_secret=mock-client-secret&grant_type=client_credentials"
    );
    assert_eq!(
        journal[1].header("authorization"),
        Some("Bearer mock-zuora-token")
    );
    assert_eq!(credentials.logins(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_logs_in_again_once_and_resends() {
    let mock = MockServer::start().await;
    let credentials = mock_credentials(&mock).await;
    assert_eq!(
        json(&run_connected(&credentials, "zuora-update-usage", zuora_input()).await)["status"],
        "COMPLETED"
    );
    mock.clear_journal();
    mock.inject(harness_mock::Fault {
        path: "/zuora/v1/".into(),
        times: 1,
        status: Some(401),
        body: Some(json!({ "message": "Authentication error" })),
        ..Default::default()
    });
    let printed = json(&run_connected(&credentials, "zuora-update-usage", zuora_input()).await);
    assert_eq!(printed["status"], "COMPLETED");
    let calls: Vec<String> = mock
        .journal()
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    let put = "PUT /zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb";
    assert_eq!(calls, [put, "POST /zuora/oauth/token", put]);
    assert_eq!(credentials.logins(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billingplatform_and_elevate_logins_supply_their_headers() {
    let mock = MockServer::start().await;
    let credentials = mock_credentials(&mock).await;
    let bp = json!({ "connection": "billingplatform", "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "X" } } });
    assert_eq!(
        json(&run_connected(&credentials, "billingplatform-update-usage-identifier", bp).await)["status"],
        "COMPLETED"
    );
    let elevate = json!({
        "connection": "elevate",
        "path": { "usage_product_inventory_id": 1 },
        "body": [{ "op": "replace", "path": "/billable", "value": false }],
    });
    assert_eq!(
        json(
            &run_connected(
                &credentials,
                "elevate-patch-usage-product-inventory",
                elevate
            )
            .await
        )["status"],
        "COMPLETED"
    );
    let journal = mock.journal();
    let calls: Vec<String> = journal
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        calls,
        [
            "POST /billingplatform/acme/rest/2.0/login",
            "PUT /billingplatform/acme/rest/2.0/USAGE_IDENTIFIER",
            "POST /elevate/v1/authenticate",
            "PATCH /elevate/v1/usage-product-inventories/1",
        ]
    );
    assert_eq!(journal[1].header("sessionid"), Some("mock-bp-session"));
    assert_eq!(
        journal[3].header("authorization"),
        Some("Bearer mock-elevate-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_the_connections_origin() {
    let mock = MockServer::start().await;
    let other = MockServer::start().await;
    let credentials = mock_credentials(&mock).await;
    // An http task on the connection may not reach another origin, so no token leaves.
    let input = json!({ "connection": "zuora", "method": "GET", "uri": format!("{}/zuora/v1/object/usage/x", other.uri()) });
    let printed = json(&run_connected(&credentials, "http", input).await);
    assert_eq!(printed["error"]["kind"], "denied");
    assert!(other.journal().is_empty());
    assert_eq!(credentials.logins(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_connection_is_invalid_input_and_nothing_is_sent() {
    let mock = MockServer::start().await;
    let credentials = mock_credentials(&mock).await;
    let mut input = zuora_input();
    input["connection"] = json!("zuora-prod");
    let printed = json(&run_connected(&credentials, "zuora-update-usage", input).await);
    assert_eq!(printed["error"]["kind"], "invalid-input");
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "connection", "message": "unknown connection `zuora-prod`; known: billingplatform, elevate, rebilly, zuora" }])
    );
    assert!(mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_terminal_remembered_and_names_the_connection_but_not_the_secret() {
    let mock = MockServer::start().await;
    let dir = std::env::temp_dir().join(format!("harness-conn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("password");
    std::fs::write(&secret, "wrong-password-xyz\n").unwrap();
    let config = format!(
        "[policy]\nallow_addresses = [\"127.0.0.1\"]\n\n[connections.bp]\nbase_url = \"{}\"\nauth = {{ type = \"billingplatform-login\", username = \"mock-user\", password_file = \"{}\" }}\n",
        mock.base_url(harness_mock::Vendor::BillingPlatform),
        secret.display()
    );
    let credentials = Arc::new(Credentials::new(
        Connections::parse(&config).unwrap(),
        sandbox().await.http(),
    ));
    let input = json!({ "connection": "bp", "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "X" } } });
    let outcome = run_connected(
        &credentials,
        "billingplatform-update-usage-identifier",
        input,
    )
    .await;
    let printed = json(&outcome);
    // Wrong credentials: no retry can help (and a vendor locks accounts after failures).
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(printed["error"]["kind"], "unauthorized");
    let message = printed["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("connection `bp`: login failed: ") && message.ends_with("answered 401 Unauthorized. Nothing was sent to the task's endpoint; fix the connection in harness.toml and run it again."),
        "{printed}"
    );
    assert_no_secret(&printed.to_string());
    assert_no_secret(&outcome.guest_log);
    // The failed login is remembered: the next task on the connection tries no login.
    let again = run_connected(
        &credentials,
        "billingplatform-update-usage-identifier",
        json!({ "connection": "bp", "body": { "brmObjects": { "Id": "1002", "UsageIdentifier": "Y" } } }),
    )
    .await;
    assert_eq!(json(&again)["error"]["message"], message.as_str());
    assert_eq!(credentials.logins(), 1);
    // The login was refused; the update itself was never sent.
    let calls: Vec<String> = mock
        .journal()
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(calls, ["POST /billingplatform/acme/rest/2.0/login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_goes_through_the_same_address_rules_as_the_task() {
    let mock = MockServer::start().await;
    // No `[policy] allow_addresses`: the mock's loopback address is refused to the task,
    // and so to the login that would carry the client secret there.
    let secret = std::env::temp_dir().join(format!("harness-login-rules-{}", std::process::id()));
    std::fs::write(&secret, harness_mock::credentials::ZUORA_CLIENT_SECRET).unwrap();
    let config = format!(
        "[connections.zuora]\nbase_url = \"{}\"\nauth = {{ type = \"zuora-oauth\", client_id = \"{}\", client_secret_file = \"{}\" }}\n",
        mock.base_url(harness_mock::Vendor::Zuora),
        harness_mock::credentials::ZUORA_CLIENT_ID,
        secret.display(),
    );
    let credentials = Arc::new(Credentials::new(
        Connections::parse(&config).unwrap(),
        sandbox().await.http(),
    ));
    let input = json!({ "connection": "zuora", "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" }, "body": { "UOM": "Each" } });
    let printed = json(&run_connected(&credentials, "zuora-update-usage", input).await);
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR", "{printed}");
    let message = printed["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("connection `zuora`: "), "{message}");
    assert!(
        message.contains("is a loopback address; tasks reach loopback, private, link-local and metadata addresses only where harness.toml allows them"),
        "{message}"
    );
    assert!(
        mock.journal().is_empty(),
        "no login reached the refused address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflow_run_prints_no_secret() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/workflows");
    let argv = [
        "harness".to_string(),
        "run".into(),
        root.join("end-of-period-usage-sync.json")
            .display()
            .to_string(),
        "--input".into(),
        root.join("end-of-period-usage-sync.input.json")
            .display()
            .to_string(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = host_harness::cli::run(argv.to_vec(), &mut out, &mut err).await;
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert_no_secret(&out);
    assert_no_secret(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_looking_for_its_credentials_finds_none() {
    use harness_sandbox::{Sandbox, SandboxOptions};
    let mock = MockServer::start().await;
    let mut snooping = Sandbox::with_options(SandboxOptions {
        max_in_flight: 4,
        ..SandboxOptions::default()
    })
    .unwrap();
    assert_eq!(
        snooping
            .load(integration_tests::test_component("snoop"))
            .await
            .unwrap(),
        "snoop"
    );
    let credentials = Arc::new(Credentials::new(
        Connections::for_mock(&mock),
        snooping.http(),
    ));
    // Log in first, so that a token exists in the host while the component runs.
    credentials.headers("zuora").await.unwrap();
    let prepared = runner::prepare_connected(
        "snoop",
        json!({ "connection": "zuora" }),
        None,
        Some(&credentials),
    )
    .unwrap();
    let outcome = runner::run_task(&snooping, "snoop", &prepared.input, prepared.policy)
        .await
        .unwrap();
    let printed = json(&outcome);
    assert_eq!(printed["status"], "COMPLETED");
    let seen = &printed["output"];
    assert_eq!(seen["env"], json!([]));
    assert_eq!(seen["args"], json!([]));
    assert!(
        seen["root"].as_str().unwrap().starts_with("error: "),
        "{seen}"
    );
    assert!(
        seen["config"].as_str().unwrap().starts_with("error: "),
        "{seen}"
    );
    assert_eq!(seen["stdin"], "");
    assert_eq!(
        seen["input"],
        json!({ "baseUrl": mock.base_url(harness_mock::Vendor::Zuora) }).to_string()
    );
    assert_no_secret(&printed.to_string());
    // What the component printed is captured, not lost or mixed into the output.
    assert_eq!(outcome.guest_log, "snoop looked around\n");
}

#[test]
fn policy_and_limits_in_the_config_are_checked_naming_the_key_and_the_rule() {
    for (config, expected) in [
        (
            "[[policy.allow]]\norigin = \"https://api.example.com/v1\"\n",
            "policy.allow[0].origin: must be an origin such as https://api.example.com (scheme, host, optional port; no path), not `https://api.example.com/v1`",
        ),
        (
            "[[policy.allow]]\norigin = \"https://api.example.com\"\nmethods = [\"FETCH\"]\n",
            "policy.allow[0].methods: `FETCH` is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)",
        ),
        (
            "[policy]\nallow_addresses = [\"10.0.0.0/33\"]\n",
            "policy.allow_addresses[0]: `10.0.0.0/33` is not an IP address or CIDR range such as 10.0.0.0/8",
        ),
        (
            "[limits]\nmemory_mib = 0\n",
            "limits.memory_mib: must be between 1 and 4096, not 0",
        ),
        (
            "[limits]\ntimeout_ms = 100000000\n",
            "limits.timeout_ms: must be between 1 and 86400000, not 100000000",
        ),
        (
            "[sandbox]\nsend_path = \"native\"\n",
            "sandbox.send_path: must be \"host\", \"host-keeping-instance\" or \"guest\", not \"native\"",
        ),
    ] {
        assert_eq!(
            Connections::parse(config).unwrap_err().to_string(),
            expected,
            "{config}"
        );
    }
    let unknown = Connections::parse("[limits]\nmemory = 1\n").unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `memory`"),
        "{unknown}"
    );
}

#[test]
fn limits_in_the_config_override_the_defaults() {
    use harness_sandbox::Limits;
    let config = Connections::parse(
        "[limits]\ntimeout_ms = 5000\nmemory_mib = 32\nfuel = 1000000\nresponse_body_bytes = 4096\nlog_bytes = 0\n",
    )
    .unwrap();
    let limits = config.limits().apply(Limits::default()).unwrap();
    assert_eq!(
        limits,
        Limits {
            timeout: std::time::Duration::from_millis(5000),
            memory_bytes: 32 << 20,
            fuel: Some(1_000_000),
            response_body_bytes: 4096,
            log_bytes: 0,
            // The operator's timeout_ms applies to every task, BillingPlatform's too.
            task_timeouts: Vec::new(),
            ..Limits::default()
        }
    );
}

/// `[sandbox] send_path` names who sends a task's planned request; without it the
/// sandbox's default (the host, a fresh instance reading the answer) holds.
#[test]
fn the_send_path_in_the_config_chooses_who_sends_the_request() {
    use harness_sandbox::SendPath;
    for (name, path) in [
        ("host", SendPath::Host),
        ("host-keeping-instance", SendPath::HostKeepingInstance),
        ("guest", SendPath::Guest),
    ] {
        let config = Connections::parse(&format!("[sandbox]\nsend_path = \"{name}\"\n")).unwrap();
        assert_eq!(config.send_path(), Some(path), "{name}");
    }
    assert_eq!(Connections::parse("").unwrap().send_path(), None);
}

#[test]
fn a_toml_mistake_names_the_line_and_table_but_never_echoes_the_value() {
    let text = "[connections.zuora]\nbase_url = \"https://rest.zuora.com\"\nauth = { type = \"zuora-oauth\", client_id = \"abc\", client_secret = \"s3cr3t-do-not-print\" }\n";
    let error = Connections::parse(text).unwrap_err().to_string();
    assert!(!error.contains("s3cr3t-do-not-print"), "{error}");
    assert!(
        error.starts_with("line 3, column 8 in [connections.zuora]: "),
        "{error}"
    );
    assert!(error.contains("unknown field `client_secret`"), "{error}");
    // A value quoted in serde's message is masked too.
    let typed = Connections::parse("[limits]\ntimeout_ms = \"hunter2\"\n")
        .unwrap_err()
        .to_string();
    assert!(!typed.contains("hunter2"), "{typed}");
    assert!(
        typed.starts_with("line 2, column 14 in [limits]: "),
        "{typed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_must_be_a_small_regular_file() {
    let dir = std::env::temp_dir().join(format!("harness-secret-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.join("big");
    std::fs::write(&big, vec![b'k'; (64 << 10) + 1]).unwrap();
    for (path, expected) in [
        (fifo.display().to_string(), format!("connection `rebilly`: secret file {} is not a regular file (a FIFO, device or directory)", fifo.display())),
        ("/dev/zero".to_string(), "connection `rebilly`: secret file /dev/zero is not a regular file (a FIFO, device or directory)".to_string()),
        (big.display().to_string(), format!("connection `rebilly`: secret file {} holds 65537 bytes, more than the 65536 a secret may", big.display())),
    ] {
        let config = Connections::parse(&format!(
            "[connections.rebilly]\nbase_url = \"https://api-sandbox.rebilly.com/organizations/o\"\nauth = {{ type = \"header\", name = \"REB-APIKEY\", value_file = \"{path}\" }}\n"
        ))
        .unwrap();
        let credentials = Credentials::new(config, Arc::new(Default::default()));
        let started = std::time::Instant::now();
        let error = credentials.headers("rebilly").await.unwrap_err().to_string();
        assert_eq!(error, expected);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "it did not block");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_never_answers_is_cut_off_at_the_tasks_read_timeout() {
    // A login server that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let (stream, _) = silent.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(5));
        drop(stream);
    });
    let secret = std::env::temp_dir().join(format!("harness-silent-login-{}", std::process::id()));
    std::fs::write(&secret, "pw").unwrap();
    let config = format!(
        "[policy]\nallow_addresses = [\"127.0.0.1\"]\n\n[connections.bp]\nbase_url = \"http://127.0.0.1:{port}/bp\"\nauth = {{ type = \"billingplatform-login\", username = \"u\", password_file = \"{}\" }}\n",
        secret.display()
    );
    let credentials = Arc::new(Credentials::new(
        Connections::parse(&config).unwrap(),
        sandbox().await.http(),
    ));
    let outcome = run_connected(
        &credentials,
        "billingplatform-update-usage-identifier",
        json!({ "connection": "bp", "readTimeOut": 300, "body": { "brmObjects": { "Id": "1001", "UsageIdentifier": "X" } } }),
    )
    .await;
    let printed = json(&outcome);
    // The server may answer later: retryable, and nothing reached the task's endpoint.
    assert_eq!(printed["status"], "FAILED", "{printed}");
    assert_eq!(printed["error"]["kind"], "transport");
    assert!(
        printed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connection `bp`: login failed: no answer within 300 ms (connectionTimeOut + readTimeOut)"),
        "{printed}"
    );
    assert!(runner::may_resend(&outcome));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_starting_at_once_on_a_refused_connection_send_one_login() {
    let mock = MockServer::start().await;
    let secret = std::env::temp_dir().join(format!("harness-one-login-{}", std::process::id()));
    std::fs::write(&secret, "wrong-password").unwrap();
    let config = format!(
        "[policy]\nallow_addresses = [\"127.0.0.1\"]\n\n[connections.bp]\nbase_url = \"{}\"\nauth = {{ type = \"billingplatform-login\", username = \"mock-user\", password_file = \"{}\" }}\n",
        mock.base_url(harness_mock::Vendor::BillingPlatform),
        secret.display()
    );
    let credentials = Arc::new(Credentials::new(
        Connections::parse(&config).unwrap(),
        sandbox().await.http(),
    ));
    // Twenty tasks at once, as a fork's branches start.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let credentials = credentials.clone();
        tasks.spawn(async move {
            json(
                &run_connected(
                    &credentials,
                    "billingplatform-update-usage-identifier",
                    json!({ "connection": "bp", "body": { "brmObjects": { "Id": format!("{i}"), "UsageIdentifier": "X" } } }),
                )
                .await,
            )
        });
    }
    while let Some(printed) = tasks.join_next().await {
        let printed = printed.unwrap();
        assert_eq!(printed["error"]["kind"], "unauthorized", "{printed}");
    }
    assert_eq!(
        credentials.logins(),
        1,
        "one login for the connection, not one per task"
    );
    assert_eq!(mock.journal().len(), 1);
}

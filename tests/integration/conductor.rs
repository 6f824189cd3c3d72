//! Definitions written for Conductor, run as Conductor means them: HTTP tasks with their
//! own names and `http_request` nesting, SIMPLE workers answered by mocks in the shape of
//! Conductor's workflow test API, expressions as `ParametersUtils` resolves them, and the
//! settings (optional, timeouts, DECISION) Conductor users rely on.

use crate::workflows::{harness, harness_cli, rebilly_task, zuora_task};
use harness_mock::{Fault, MockServer};
use harness_workflow::definition::WorkflowDef;
use harness_workflow::{Clock, Mocks, RunOptions};
use serde_json::{Value, json};

const ID: &str = "8ad08ae29085a77b0190908bfdd67abb";

fn def(value: Value) -> WorkflowDef {
    serde_json::from_value(value).unwrap()
}

fn mocks(value: Value) -> Mocks {
    Mocks::parse(&value).unwrap()
}

fn options(mocks: Mocks) -> RunOptions {
    RunOptions {
        workflow_id: "3b9d6c52-0000-4000-8000-000000000001".into(),
        correlation_id: Some("period-2026-11".into()),
        mocks,
        ..RunOptions::default()
    }
}

/// A Conductor HTTP task as the docs write one: its own name, `type: HTTP`, the request
/// nested in `http_request`, reading a worker's output; the worker is mocked.
fn billing_definition() -> Value {
    json!({
        "name": "correct_period_usage",
        "version": 3,
        "schemaVersion": 2,
        "ownerEmail": "billing@example.com",
        "inputParameters": ["usageId"],
        "tasks": [
            {
                "name": "compute_usage_correction",
                "taskReferenceName": "compute",
                "inputParameters": { "usageId": "${workflow.input.usageId}" },
            },
            {
                "name": "put_zuora_usage",
                "taskReferenceName": "put_usage",
                "type": "HTTP",
                "inputParameters": {
                    "http_request": {
                        "uri": "/zuora/v1/object/usage/${workflow.input.usageId}",
                        "method": "PUT",
                        "headers": { "Authorization": "Bearer mock-zuora-token" },
                        "body": { "UOM": "${compute.output.uom}", "Quantity": "${compute.output.quantity}" },
                    },
                },
            },
        ],
        "outputParameters": {
            "zuoraId": "${put_usage.output.response.body.Id}",
            "statusCode": "${put_usage.output.response.statusCode}",
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_with_its_own_name_reads_a_mocked_worker_and_sends_exactly_that() {
    let h = harness().await;
    let mocked = mocks(json!({
        "taskRefToMockOutput": {
            "compute": [{ "status": "COMPLETED", "output": { "uom": "Each", "quantity": 12.5 } }],
        },
    }));
    let result = h
        .runner
        .run_with(
            &def(billing_definition()),
            json!({ "usageId": ID }),
            options(mocked),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "zuoraId": ID, "statusCode": 200 }));
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1, "the mocked worker sent nothing");
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        ("PUT", format!("/zuora/v1/object/usage/{ID}").as_str())
    );
    assert_eq!(journal[0].query, None);
    assert_eq!(
        journal[0].header("authorization"),
        Some("Bearer mock-zuora-token")
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":12.5}"#
    );
    let printed = result.to_json();
    let tasks = printed["tasks"].as_array().unwrap();
    assert_eq!(
        (&tasks[0]["ref"], &tasks[0]["taskType"], &tasks[0]["status"]),
        (
            &json!("compute"),
            &json!("compute_usage_correction"),
            &json!("COMPLETED")
        )
    );
    assert_eq!(
        tasks[0]["output"],
        json!({ "uom": "Each", "quantity": 12.5 })
    );
    assert_eq!(
        tasks[0]["attempts"][0]["message"],
        "mocked (--mock-outputs)"
    );
    assert_eq!(
        (&tasks[1]["task"], &tasks[1]["taskType"]),
        (&json!("put_zuora_usage"), &json!("HTTP"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_mocked_worker_takes_the_next_entry_and_the_last_repeats() {
    let h = harness().await;
    let definition = def(json!({
        "name": "w",
        "tasks": [
            { "name": "flaky_worker", "taskReferenceName": "flaky", "retryCount": 2 },
            { "name": "flaky_worker", "taskReferenceName": "again", "retryCount": 0 },
        ],
    }));
    let mocked = mocks(json!({
        "taskRefToMockOutput": {
            "flaky": [
                { "status": "FAILED", "output": { "reason": "busy" } },
                { "status": "COMPLETED", "output": { "n": 2 } },
            ],
            "again": [{ "status": "FAILED_WITH_TERMINAL_ERROR", "output": { "reason": "bad record" } }],
        },
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), options(mocked))
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.reason.as_deref(),
        Some("task again failed: its mock says FAILED_WITH_TERMINAL_ERROR: bad record")
    );
    let attempts: Vec<Vec<&str>> = result
        .tasks
        .iter()
        .map(|t| t.attempts.iter().map(|a| a.status.as_str()).collect())
        .collect();
    assert_eq!(
        attempts,
        [
            vec!["FAILED", "COMPLETED"],
            vec!["FAILED_WITH_TERMINAL_ERROR"]
        ]
    );
    assert_eq!(result.tasks[0].output, json!({ "n": 2 }));
    assert!(h.mock.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_fields_task_ids_jsonpath_and_java_text_resolve_as_in_conductor() {
    let h = harness().await;
    let definition = def(json!({
        "name": "expressions",
        "variables": { "region": "eu" },
        "inputTemplate": { "currency": "EUR" },
        "tasks": [
            { "name": "list_usage", "taskReferenceName": "list" },
            {
                "name": "echo", "taskReferenceName": "echo",
                "inputParameters": {
                    "workflowId": "${workflow.workflowId}",
                    "correlationId": "${workflow.correlationId}",
                    "type": "${workflow.workflowType}",
                    "input": "${workflow.input}",
                    "region": "${workflow.variables.region}",
                    "taskId": "${CPEWF_TASK_ID}",
                    "big": "${list.output.items[?(@.qty > 1)].id}",
                    "count": "${list.output.items.length()}",
                    "allIds": "${list..id}",
                    "header": "${list.output.headers.Content-Type[0]}",
                    "missing": "${list.output.nothing.here}",
                    "notRun": "${skipped.output.x}",
                    "text": "first=${list.output.items[0]} qty=${list.output.items[1].qty} none=${list.output.nothing}",
                    "literal": "$${workflow.input.currency}",
                    "listStatus": "${list.status}",
                },
            },
        ],
    }));
    let mocked = mocks(json!({
        "taskRefToMockOutput": {
            "list": [{ "status": "COMPLETED", "output": {
                "items": [{ "id": "u1", "qty": 1 }, { "id": "u2", "qty": 2.5 }],
                "headers": { "Content-Type": ["application/json"] },
            } }],
            "echo": [{ "status": "COMPLETED", "output": {} }],
        },
    }));
    let result = h
        .runner
        .run_with(&definition, json!({ "period": "2026-11" }), options(mocked))
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let echo = &result.tasks[1];
    let task_id = echo.task_id.clone();
    assert_eq!(task_id.len(), 36);
    assert_eq!(
        echo.input,
        json!({
            "workflowId": "3b9d6c52-0000-4000-8000-000000000001",
            "correlationId": "period-2026-11",
            "type": "expressions",
            "input": { "period": "2026-11", "currency": "EUR" },
            "region": "eu",
            "taskId": task_id,
            "big": ["u2"],
            "count": 2,
            "allIds": ["u1", "u2"],
            "header": "application/json",
            "missing": null,
            "notRun": null,
            "text": "first={id=u1, qty=1} qty=2.5 none=null",
            "literal": "${workflow.input.currency}",
            "listStatus": "COMPLETED",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_optional_task_is_completed_with_errors_and_the_workflow_completes() {
    let h = harness().await;
    let mut zuora = zuora_task("z");
    zuora["inputParameters"]["headers"]["Authorization"] = json!("Bearer wrong");
    zuora["optional"] = json!(true);
    let definition = def(json!({
        "name": "w",
        "tasks": [zuora, rebilly_task("after")],
        "outputParameters": { "zuoraStatus": "${z.status}", "reason": "${z.reasonForIncompletion}" },
    }));
    let result = h.runner.run(&definition, json!({})).await;
    assert_eq!(result.status, "COMPLETED");
    assert_eq!(result.tasks[0].status, "COMPLETED_WITH_ERRORS");
    assert_eq!(result.tasks[1].status, "COMPLETED");
    assert_eq!(result.output["zuoraStatus"], "COMPLETED_WITH_ERRORS");
    assert!(
        result.output["reason"]
            .as_str()
            .unwrap()
            .starts_with("task z failed: "),
        "{}",
        result.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_decision_picks_its_case_by_case_value_param() {
    let h = harness().await;
    let definition = def(json!({
        "name": "w",
        "tasks": [{
            "name": "route", "taskReferenceName": "route", "type": "DECISION",
            "caseValueParam": "vendor",
            "inputParameters": { "vendor": "${workflow.input.vendor}" },
            "decisionCases": { "zuora": [zuora_task("z")], "rebilly": [rebilly_task("r")] },
        }],
    }));
    let result = h
        .runner
        .run(&definition, json!({ "vendor": "rebilly" }))
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["route", "r"]);
    assert_eq!(result.tasks[0].task_type, "DECISION");
    assert_eq!(result.tasks[0].output, json!({ "caseOutput": ["rebilly"] }));
    // No value at all is Java's "null": no case is named so, the default (none) runs.
    let none = h.runner.run(&definition, json!({})).await;
    assert_eq!(none.tasks.len(), 1);
    assert_eq!(none.tasks[0].output, json!({ "caseOutput": ["null"] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_past_its_timeout_with_time_out_wf_ends_timed_out_before_the_next_task() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 2,
        status: Some(503),
        ..Fault::default()
    });
    let definition = def(json!({
        "name": "w",
        "timeoutSeconds": 100,
        "timeoutPolicy": "TIME_OUT_WF",
        "tasks": [zuora_task("z"), rebilly_task("never")],
        "taskDefinitions": [{ "name": "zuora-update-usage", "retryCount": 3, "retryDelaySeconds": 60 }],
    }));
    let result = h.runner.run(&definition, json!({})).await;
    assert_eq!(result.status, "TIMED_OUT");
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "Workflow timed out after 120 seconds. Timeout configured as 100 seconds. Timeout policy configured to TIME_OUT_WF"
        )
    );
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["z"], "the next task never starts");
    assert_eq!(h.clock.now_ms(), 120_000);
    assert_eq!(h.mock.journal().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_without_a_task_definition_is_not_retried_as_in_conductor() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(503),
        ..Fault::default()
    });
    let definition = def(json!({
        "name": "w",
        "tasks": [{
            "name": "get_zuora_usage", "taskReferenceName": "get", "type": "HTTP",
            "inputParameters": { "http_request": {
                "uri": format!("/zuora/v1/object/usage/{ID}"), "method": "PUT",
                "headers": { "Authorization": "Bearer mock-zuora-token" }, "body": { "UOM": "Each" },
            } },
        }],
    }));
    let result = h.runner.run(&definition, json!({})).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.tasks[0].attempts.len(), 1);
    // The workflow task's own retryCount overrides the ad-hoc definition.
    let mut retried: Value = serde_json::to_value(json!({
        "name": "w",
        "tasks": [{
            "name": "get_zuora_usage", "taskReferenceName": "get", "type": "HTTP", "retryCount": 1,
            "inputParameters": { "http_request": {
                "uri": format!("/zuora/v1/object/usage/{ID}"), "method": "PUT",
                "headers": { "Authorization": "Bearer mock-zuora-token" }, "body": { "UOM": "Each" },
            } },
        }],
    }))
    .unwrap();
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(503),
        ..Fault::default()
    });
    let result = h.runner.run(&def(retried.take()), json!({})).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.tasks[0].attempts.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_post_is_re_sent_after_an_unknown_outcome_only_with_an_idempotency_key() {
    let h = harness().await;
    let post = |key: Option<&str>| {
        let mut headers = json!({ "REB-APIKEY": "sk_sandbox_mock" });
        if let Some(key) = key {
            headers["Idempotency-Key"] = json!(key);
        }
        def(json!({
            "name": "w",
            "tasks": [{
                "name": "create_usage", "taskReferenceName": "create", "type": "HTTP", "retryCount": 2,
                "inputParameters": { "http_request": {
                    "uri": "/rebilly/organizations/org_mock/usages", "method": "POST",
                    "headers": headers, "body": { "subscriptionId": "sub_mock_001", "quantity": 1 },
                } },
            }],
        }))
    };
    for (key, attempts) in [(None, 1), (Some("usage-2026-11-sub_mock_001"), 2)] {
        h.mock.clear_journal();
        h.mock.inject(Fault {
            path: "/rebilly/".into(),
            times: 1,
            drop_after_apply: true,
            ..Fault::default()
        });
        let result = h.runner.run(&post(key), json!({})).await;
        assert_eq!(result.tasks[0].attempts.len(), attempts, "{key:?}");
        assert_eq!(h.mock.journal().len(), attempts, "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_sent_resolved_and_recorded_as_written() {
    let mock = MockServer::start().await;
    let dir = std::env::temp_dir().join(format!("harness-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("zuora-token");
    std::fs::write(&secret, "mock-zuora-token\n").unwrap();
    let usage_id = dir.join("usage-id");
    std::fs::write(&usage_id, ID).unwrap();
    let config = dir.join("harness.toml");
    std::fs::write(
        &config,
        format!(
            "[secrets]\nzuora_token = {{ file = \"{}\" }}\nusage_id = {{ file = \"{}\" }}\n[policy]\nallow_addresses = [\"127.0.0.1\"]\n[[policy.allow]]\norigin = \"{}\"\n",
            secret.display(),
            usage_id.display(),
            mock.uri()
        ),
    )
    .unwrap();
    let definition = dir.join("wf.json");
    let workflow = json!({
        "name": "w",
        "tasks": [{
            "name": "put_usage", "taskReferenceName": "put", "type": "HTTP",
            "inputParameters": { "http_request": {
                "uri": format!("{}/zuora/v1/object/usage/${{workflow.secrets.usage_id}}", mock.uri()), "method": "PUT",
                "headers": {
                    "Authorization": "Bearer ${workflow.secrets.zuora_token}",
                    "X-Billing-Run": "${workflow.secrets.zuora_token}",
                },
                "body": { "UOM": "Each" },
            } },
        }],
    });
    std::fs::write(&definition, workflow.to_string()).unwrap();
    let config = config.to_str().unwrap();
    let (code, out, err) =
        harness_cli(&["run", definition.to_str().unwrap(), "--config", config]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        mock.journal()[0].header("authorization"),
        Some("Bearer mock-zuora-token")
    );
    assert_eq!(
        mock.journal()[0].header("x-billing-run"),
        Some("mock-zuora-token")
    );
    assert_eq!(
        mock.journal()[0].path,
        format!("/zuora/v1/object/usage/{ID}")
    );
    assert!(!out.contains("mock-zuora-token"), "{out}");
    let result: Value = serde_json::from_str(&out).unwrap();
    // Zuora answers with the id the path held: the output has it redacted.
    assert_eq!(
        result["tasks"][0]["output"]["response"]["body"],
        json!({ "Id": "***", "Success": true })
    );
    assert!(!out.contains(ID), "{out}");
    assert_eq!(
        result["tasks"][0]["input"]["http_request"]["headers"],
        json!({ "Authorization": "***", "X-Billing-Run": "${workflow.secrets.zuora_token}" }),
        "the record keeps the reference, never the secret"
    );

    // A secret the configuration does not have: validate names it, nothing is sent.
    let mut unknown = workflow.clone();
    unknown["tasks"][0]["inputParameters"]["http_request"]["headers"] =
        json!({ "Authorization": "Bearer ${workflow.secrets.other}" });
    std::fs::write(&definition, unknown.to_string()).unwrap();
    let (code, out, _) =
        harness_cli(&["validate", definition.to_str().unwrap(), "--config", config]).await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("$.tasks[0].inputParameters.http_request.headers.Authorization: ${workflow.secrets.other}: no secret `other` in [secrets] of the configuration"),
        "{out}"
    );
    assert_eq!(mock.journal().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_run_take_mocks_for_workers_this_harness_does_not_have() {
    let dir = std::env::temp_dir().join(format!("harness-mocks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let definition = dir.join("wf.json");
    std::fs::write(&definition, billing_definition().to_string()).unwrap();
    let definition = definition.to_str().unwrap();
    let (code, out, _) = harness_cli(&["validate", definition]).await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with(
            "$.tasks[0].name: no component `compute_usage_correction` and no mock for `compute`"
        ),
        "{out}"
    );
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": { "compute": [{ "status": "COMPLETED", "output": { "uom": "Each", "quantity": 3 } }] } })
            .to_string(),
    )
    .unwrap();
    let mocks = mocks.to_str().unwrap();
    let (code, out, _) = harness_cli(&["validate", definition, "--mock-outputs", mocks]).await;
    assert_eq!((code, out), (0, format!("{definition}: valid\n")));
    let input = dir.join("input.json");
    std::fs::write(&input, json!({ "usageId": ID }).to_string()).unwrap();
    let (code, out, err) = harness_cli(&[
        "run",
        definition,
        "--input",
        input.to_str().unwrap(),
        "--mock-outputs",
        mocks,
        "--correlation-id",
        "period-2026-11",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "COMPLETED");
    assert_eq!(
        result["output"],
        json!({ "zuoraId": ID, "statusCode": 200 })
    );

    std::fs::write(
        dir.join("bad-mocks.json"),
        json!({ "taskRefToMockOutput": { "compute": [{ "status": "IN_PROGRESS" }] } }).to_string(),
    )
    .unwrap();
    let bad = dir.join("bad-mocks.json");
    let (code, _, err) =
        harness_cli(&["run", definition, "--mock-outputs", bad.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("$.taskRefToMockOutput.compute[0].status: `IN_PROGRESS` is not COMPLETED, FAILED or FAILED_WITH_TERMINAL_ERROR"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_warns_of_fields_it_does_not_apply_instead_of_ignoring_them() {
    let dir = std::env::temp_dir().join(format!("harness-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let definition = dir.join("wf.json");
    let mut zuora = zuora_task("z");
    zuora["startDelay"] = json!(30);
    std::fs::write(
        &definition,
        json!({
            "name": "w",
            "ownerEmail": "billing@example.com",
            "failureWorkflow": "notify_billing",
            "rateLimitConfig": { "concurrentExecLimit": 1 },
            "tasks": [zuora],
            "taskDefinitions": [{ "name": "zuora-update-usage", "rateLimitPerFrequency": 15, "ownerEmail": "x@example.com" }],
        })
        .to_string(),
    )
    .unwrap();
    let (code, out, _) = harness_cli(&["validate", definition.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}");
    let path = definition.display();
    assert_eq!(
        out,
        format!(
            "warning: $.tasks[0].startDelay: `startDelay` is not applied by the harness (docs/conductor.md)\n\
             warning: $.rateLimitConfig: `rateLimitConfig` is not applied by the harness (docs/conductor.md)\n\
             warning: $.failureWorkflow: `notify_billing` is not among the definitions (--definitions DIR): when this workflow fails, starting it fails, and the output's `conductor.failure_workflow` says so\n\
             {path}: valid\n"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP task in a Conductor definition, as `HttpTask` reads it: siblings of
/// `http_request` ignored with a warning in the task's output, `accept` as a list, a
/// numeric header value; and a response header read by the name Conductor users write
/// (`Content-Type`), although the harness gives header names in lowercase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_takes_conductor_inputs_and_its_response_headers_are_read_in_any_case() {
    let h = harness().await;
    let definition = def(json!({
        "name": "read_usage",
        "version": 1,
        "tasks": [{
            "name": "get_zuora_usage",
            "taskReferenceName": "get_usage",
            "type": "HTTP",
            "inputParameters": {
                "http_request": {
                    "uri": "/zuora/v1/object/usage/${workflow.input.usageId}",
                    "method": "GET",
                    "accept": ["application/json"],
                    "headers": { "Authorization": "Bearer mock-zuora-token", "X-Page-Size": 100 },
                    "connectionTimeOut": "2000",
                },
                "asyncComplete": false,
                "retryNote": "read only",
            },
        }],
        "outputParameters": {
            "contentType": "${get_usage.output.response.headers.Content-Type[0]}",
            "uom": "${get_usage.output.response.body.UOM}",
        },
    }));
    let result = h
        .runner
        .run_with(&definition, json!({ "usageId": ID }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let record = h.mock.record(harness_mock::Vendor::Zuora, ID).unwrap();
    assert_eq!(
        result.output,
        json!({ "contentType": "application/json", "uom": record["UOM"] })
    );
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        ("GET", format!("/zuora/v1/object/usage/{ID}").as_str())
    );
    assert_eq!(journal[0].query, None);
    assert_eq!(journal[0].header("accept"), Some("application/json"));
    assert_eq!(journal[0].header("x-page-size"), Some("100"));
    assert!(journal[0].body.is_empty());
    let printed = result.to_json();
    assert_eq!(
        printed["tasks"][0]["output"]["warnings"],
        json!([{ "field": "retryNote", "message": "ignored: Conductor's HTTP task reads only http_request when it is given" }])
    );
}

/// A failed workflow starts its `failureWorkflow` from `--definitions`, as Conductor's
/// `terminateWorkflow` does: the failed workflow's input plus `workflowId`, `reason`,
/// `failureStatus`, `failureTaskId` and `failedWorkflow`; its id goes into the failed
/// workflow's output as `conductor.failure_workflow`, whose `outputParameters` are
/// resolved as far as they can be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_workflow_starts_its_failure_workflow_with_conductors_input() {
    let dir = std::env::temp_dir().join(format!("harness-failure-wf-{}", std::process::id()));
    let definitions = dir.join("definitions");
    std::fs::create_dir_all(&definitions).unwrap();
    let mut failing = billing_definition();
    failing["failureWorkflow"] = json!("notify_billing_failure");
    failing["failureWorkflowVersion"] = json!(2);
    let definition = dir.join("wf.json");
    std::fs::write(&definition, failing.to_string()).unwrap();
    let notify = json!({
        "name": "notify_billing_failure",
        "version": 2,
        "tasks": [{
            "name": "page_billing_on_call",
            "taskReferenceName": "page",
            "inputParameters": { "text": "${workflow.input.reason}", "usageId": "${workflow.input.usageId}" },
        }],
        "outputParameters": {
            "failedWorkflowId": "${workflow.input.workflowId}",
            "failureStatus": "${workflow.input.failureStatus}",
            "failureTaskId": "${workflow.input.failureTaskId}",
            "failedTasks": "${workflow.input.failedWorkflow.tasks.length()}",
            "usageId": "${workflow.input.usageId}",
            "paged": "${page.output.paged}",
        },
    });
    std::fs::write(
        definitions.join("notify_billing_failure_v2.json"),
        notify.to_string(),
    )
    .unwrap();
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({ "taskRefToMockOutput": {
            "compute": [{ "status": "FAILED_WITH_TERMINAL_ERROR", "output": { "error": "no rating for plan" } }],
            "page": [{ "status": "COMPLETED", "output": { "paged": true } }],
        } })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(&input, json!({ "usageId": ID }).to_string()).unwrap();
    let (definition, definitions, mocks) = (
        definition.to_str().unwrap(),
        definitions.to_str().unwrap(),
        mocks.to_str().unwrap(),
    );
    let (code, out, _) = harness_cli(&[
        "validate",
        definition,
        "--mock-outputs",
        mocks,
        "--definitions",
        definitions,
    ])
    .await;
    assert_eq!((code, out), (0, format!("{definition}: valid\n")));
    let (code, out, err) = harness_cli(&[
        "run",
        definition,
        "--input",
        input.to_str().unwrap(),
        "--mock-outputs",
        mocks,
        "--definitions",
        definitions,
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["status"], "FAILED");
    assert_eq!(
        result["tasks"].as_array().unwrap().len(),
        1,
        "nothing was sent"
    );
    let failure = &result["failureWorkflow"];
    assert_eq!(failure["workflow"], "notify_billing_failure");
    assert_eq!(failure["status"], "COMPLETED");
    assert_eq!(
        result["output"],
        json!({
            "zuoraId": null,
            "statusCode": null,
            "conductor.failure_workflow": failure["workflowId"],
        })
    );
    assert_eq!(
        failure["output"],
        json!({
            "failedWorkflowId": result["workflowId"],
            "failureStatus": "FAILED",
            "failureTaskId": result["tasks"][0]["taskId"],
            "failedTasks": 1,
            "usageId": ID,
            "paged": true,
        })
    );
    assert_eq!(
        failure["tasks"][0]["input"],
        json!({ "text": result["reasonForIncompletion"], "usageId": ID })
    );

    // Without the definition, the failed workflow's output says it could not start.
    let empty = dir.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, out, _) = harness_cli(&[
        "run",
        definition,
        "--input",
        input.to_str().unwrap(),
        "--mock-outputs",
        mocks,
        "--definitions",
        empty.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result["output"]["conductor.failure_workflow"],
        "Error workflow notify_billing_failure failed to start.  reason: no definition `notify_billing_failure` version 2 (definitions: none: give them with --definitions DIR)"
    );
    assert_eq!(result.get("failureWorkflow"), None);

    // A file named for another definition is refused, naming the file.
    std::fs::write(dir.join("none/notify_v1.json"), notify.to_string()).unwrap();
    let (code, _, err) = harness_cli(&[
        "validate",
        definition,
        "--definitions",
        empty.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("notify_v1.json: the file name says notify version 1, the definition is notify_billing_failure version 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without `outputParameters`, a workflow's output is its last task's output, as
/// Conductor's `DeciderService.updateWorkflowOutput` gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_output_parameters_the_output_is_the_last_tasks_output() {
    let h = harness().await;
    let definition = def(json!({
        "name": "rate_usage",
        "tasks": [
            { "name": "load_usage", "taskReferenceName": "load" },
            { "name": "rate_usage", "taskReferenceName": "rate", "inputParameters": { "rows": "${load.output.rows}" } },
        ],
    }));
    let mocked = mocks(json!({ "taskRefToMockOutput": {
        "load": [{ "status": "COMPLETED", "output": { "rows": 3 } }],
        "rate": [{ "status": "COMPLETED", "output": { "amount": 7.5, "currency": "USD" } }],
    } }));
    let result = h
        .runner
        .run_with(&definition, json!({}), options(mocked))
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "amount": 7.5, "currency": "USD" }));
    assert!(h.mock.journal().is_empty());
}

//! Conductor's system tasks, as its `tasks/` and mappers run them, in definitions
//! written as Conductor users write them.

use crate::workflows::{harness, zuora_task};
use harness_mock::Fault;
use harness_runner::TaskStatus;
use harness_workflow::definition::WorkflowDef;
use harness_workflow::{Mocks, RunOptions};
use serde_json::{Value, json};

fn def(value: Value) -> WorkflowDef {
    serde_json::from_value(value).unwrap()
}

/// validate with no components, connections or definitions, `mocked` answered by mocks.
fn validate_alone(
    definition: &Value,
    mocked: &std::collections::BTreeSet<String>,
) -> harness_workflow::validate::Report {
    harness_workflow::validate::validate(
        definition,
        &harness_workflow::validate::Catalog {
            tasks: &[],
            connections: None,
            schemas: &Default::default(),
            mocked,
            secrets: None,
            definitions: &Default::default(),
        },
    )
}

fn mocked(value: Value) -> RunOptions {
    RunOptions {
        mocks: Mocks::parse(&value).unwrap(),
        ..RunOptions::fresh()
    }
}

/// SET_VARIABLE sets `${workflow.variables…}` for the tasks after it; TERMINATE with
/// `COMPLETED` ends the workflow there: its `workflowOutput` is the workflow's output,
/// its `terminationReason` the reason, and nothing after it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_variable_feeds_later_tasks_and_terminate_ends_the_workflow_with_its_output() {
    let h = harness().await;
    let definition = def(json!({
        "name": "sync_or_skip",
        "variables": { "attempts": 0 },
        "tasks": [
            { "name": "lookup_usage", "taskReferenceName": "lookup" },
            { "name": "remember", "taskReferenceName": "remember", "type": "SET_VARIABLE",
              "inputParameters": { "period": "${workflow.input.period}", "attempts": 1 } },
            { "name": "decide", "taskReferenceName": "decide", "type": "SWITCH",
              "evaluatorType": "value-param", "expression": "found",
              "inputParameters": { "found": "${lookup.output.found}" },
              "decisionCases": { "false": [{
                  "name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
                  "inputParameters": {
                      "terminationStatus": "COMPLETED",
                      "terminationReason": "no usage for ${workflow.variables.period}",
                      "workflowOutput": { "period": "${workflow.variables.period}", "attempts": "${workflow.variables.attempts}", "skipped": true },
                  },
              }] },
              "defaultCase": [] },
            zuora_task("update"),
        ],
        "outputParameters": { "updated": "${update.output.response.body.Success}" },
    }));
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "period": "2026-11" }),
            mocked(json!({ "taskRefToMockOutput": { "lookup": [{ "status": "COMPLETED", "output": { "found": false } }] } })),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.reason.as_deref(), Some("no usage for 2026-11"));
    assert_eq!(
        result.output,
        json!({ "period": "2026-11", "attempts": 1, "skipped": true })
    );
    assert!(
        h.mock.journal().is_empty(),
        "the Zuora task after it never ran"
    );
    let printed = result.to_json();
    let tasks: Vec<(&str, &str, &str)> = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ref"].as_str().unwrap(),
                t["taskType"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("lookup", "lookup_usage", "COMPLETED"),
            ("remember", "SET_VARIABLE", "COMPLETED"),
            ("decide", "SWITCH", "COMPLETED"),
            ("stop", "TERMINATE", "COMPLETED"),
        ]
    );
    assert_eq!(
        printed["tasks"][1]["input"],
        json!({ "period": "2026-11", "attempts": 1 })
    );
    assert_eq!(printed["tasks"][3]["output"], result.output);
}

/// A TERMINATE with `FAILED` in one branch of a fork ends the workflow at once, as
/// Conductor's decider does: the other branch's running request (sent, its reply held by
/// the mock) is canceled, and its record says it may have been applied. Without a
/// reason, Conductor's own is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_in_a_fork_branch_ends_the_workflow_and_cancels_the_running_branch() {
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        delay_ms: 3_000,
        ..Default::default()
    });
    let definition = def(json!({
        "name": "guarded_sync",
        "tasks": [{
            "name": "both", "taskReferenceName": "both", "type": "FORK_JOIN",
            "forkTasks": [
                [zuora_task("update")],
                [{ "name": "settle", "taskReferenceName": "settle", "type": "WAIT",
                   "inputParameters": { "duration": "1 seconds" } },
                 { "name": "abort", "taskReferenceName": "abort", "type": "TERMINATE",
                   "inputParameters": { "terminationStatus": "FAILED", "workflowOutput": "${workflow.input.batch}" } }],
            ],
        }, { "name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["update", "abort"] }],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({ "batch": "b-17" }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    let printed = result.to_json();
    let abort = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ref"] == "abort")
        .unwrap();
    assert_eq!(
        result.reason,
        Some(format!(
            "Workflow is FAILED by TERMINATE task: {}",
            abort["taskId"].as_str().unwrap()
        ))
    );
    assert_eq!(result.output, json!({ "output": "b-17" }));
    let update = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ref"] == "update")
        .unwrap();
    assert_eq!(update["status"], "CANCELED");
    assert!(
        update["attempts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("may have been sent and applied"),
        "{update}"
    );
    assert!(
        printed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["ref"] != "join")
    );
}

/// A TERMINATE that runs in the same step as another branch's first task is scheduled
/// (Conductor cancels a task still SCHEDULED): that task never starts, nothing is sent,
/// and its record says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_beside_a_task_not_yet_started_cancels_it_before_anything_is_sent() {
    let h = harness().await;
    let definition = def(json!({
        "name": "guarded_sync",
        "tasks": [{
            "name": "both", "taskReferenceName": "both", "type": "FORK_JOIN",
            "forkTasks": [
                [zuora_task("update")],
                [{ "name": "abort", "taskReferenceName": "abort", "type": "TERMINATE",
                   "inputParameters": { "terminationStatus": "FAILED", "terminationReason": "batch closed" } }],
            ],
        }, { "name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["update", "abort"] }],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.reason.as_deref(), Some("batch closed"));
    let update = result
        .tasks
        .iter()
        .find(|t| t.reference == "update")
        .unwrap();
    assert_eq!(update.status, TaskStatus::Canceled);
    assert_eq!(
        update.attempts[0].message.as_deref(),
        Some("canceled (batch closed) before it started: nothing was sent")
    );
    assert!(h.mock.journal().is_empty(), "nothing was sent");
}

/// JSON_JQ_TRANSFORM as Conductor's `JsonJqTransform` runs it: the whole input is `.`,
/// the output `result` (the first value) and `resultList`; the query runs in the
/// sandbox, so it sends nothing and a query that allocates without end meets the
/// memory limit instead of the worker's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jq_transform_shapes_the_next_request_and_runs_within_the_sandbox_limits() {
    let h = harness().await;
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${sum.output.result.total}");
    let definition = def(json!({
        "name": "report_total",
        "tasks": [
            { "name": "sum_usage", "taskReferenceName": "sum", "type": "JSON_JQ_TRANSFORM",
              "inputParameters": {
                  "records": "${workflow.input.records}",
                  "queryExpression": "{ total: ([.records[].quantity] | add), ids: [.records[].id] }",
              } },
            update,
        ],
    }));
    let input =
        json!({ "records": [{ "id": "u1", "quantity": 2.5 }, { "id": "u2", "quantity": 4 }] });
    let result = h
        .runner
        .run_with(&definition, input, RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    assert_eq!(printed["tasks"][0]["taskType"], "JSON_JQ_TRANSFORM");
    assert_eq!(
        printed["tasks"][0]["output"],
        json!({
            "result": { "total": 6.5, "ids": ["u1", "u2"] },
            "resultList": [{ "total": 6.5, "ids": ["u1", "u2"] }],
        })
    );
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1, "the query sent nothing");
    assert_eq!(journal[0].method, "PUT");
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":6.5}"#
    );

    // A query that fails, one that does not parse, and one that allocates without end.
    for (query, expected) in [
        (".records[] | error(\"no rating for \\(.id)\")", "failed: "),
        ("{ total: ", "does not parse"),
        ("[range(1000000000)]", "memory"),
    ] {
        let definition = def(json!({
            "name": "bad_query",
            "tasks": [{ "name": "q", "taskReferenceName": "q", "type": "JSON_JQ_TRANSFORM",
                        "inputParameters": { "records": [{ "id": "u1" }], "queryExpression": query } }],
        }));
        let result = h
            .runner
            .run_with(&definition, json!({}), RunOptions::fresh())
            .await;
        assert_eq!(result.status, "FAILED", "{query}");
        // As Conductor's JsonJqTransform: FAILED, the message in `error`.
        assert_eq!(result.tasks[0].status, "FAILED", "{query}");
        let error = result.tasks[0].output["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{query}: {error}");
        let reason = result.reason.unwrap_or_default();
        assert!(reason.contains(expected), "{query}: {reason}");
    }
    assert_eq!(h.mock.journal().len(), 1);
}

/// SUB_WORKFLOW as Conductor runs it: a workflow by name and version from the
/// definitions, or inline; the task's input is its input, its output the task's output
/// with `subWorkflowId`; mocks for its tasks come under `subWorkflowTestRequest`; a
/// failed sub-workflow fails the task with Conductor's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_workflow_runs_by_name_or_inline_and_its_failure_fails_the_task() {
    const ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
    let h = harness().await;
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${workflow.input.quantity}");
    let report = json!({
        "name": "report_zuora_usage",
        "version": 2,
        "tasks": [update],
        "outputParameters": { "zuoraId": "${update.output.response.body.Id}" },
    });
    let older = json!({ "name": "report_zuora_usage", "version": 1, "tasks": [] });
    let definitions = harness_workflow::Definitions::from_values(&[older, report]).unwrap();
    let definition = def(json!({
        "name": "period_close",
        "tasks": [
            { "name": "report", "taskReferenceName": "report", "type": "SUB_WORKFLOW",
              "subWorkflowParam": { "name": "report_zuora_usage" },
              "inputParameters": { "quantity": "${workflow.input.quantity}" } },
            { "name": "notify", "taskReferenceName": "notify", "type": "SUB_WORKFLOW",
              "subWorkflowParam": { "name": "notify_inline", "workflowDefinition": {
                  "name": "notify_inline",
                  "tasks": [{ "name": "page_on_call", "taskReferenceName": "page",
                              "inputParameters": { "id": "${workflow.input.id}" } }],
                  "outputParameters": { "paged": "${page.output.paged}", "id": "${workflow.input.id}" },
              } },
              "inputParameters": { "id": "${report.output.zuoraId}" } },
        ],
        "outputParameters": {
            "zuoraId": "${report.output.zuoraId}",
            "paged": "${notify.output.paged}",
            "sub": "${report.output.subWorkflowId}",
        },
    }));
    let options = |page_status: &str| {
        RunOptions {
        mocks: Mocks::parse(&json!({ "subWorkflowTestRequest": { "notify": { "taskRefToMockOutput": {
            "page": [{ "status": page_status, "output": { "paged": true, "reason": "pager down" } }],
        } } } }))
        .unwrap(),
        definitions: std::sync::Arc::new(definitions.clone()),
        ..RunOptions::fresh()
    }
    };
    let result = h
        .runner
        .run_with(&definition, json!({ "quantity": 7 }), options("COMPLETED"))
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let report = &printed["tasks"][0];
    assert_eq!(report["taskType"], "SUB_WORKFLOW");
    assert_eq!(
        report["input"],
        json!({ "subWorkflowName": "report_zuora_usage", "subWorkflowVersion": 2, "workflowInput": { "quantity": 7 } })
    );
    let sub_id = report["subWorkflow"]["workflowId"].clone();
    assert_eq!(
        report["output"],
        json!({ "zuoraId": ID, "subWorkflowId": sub_id })
    );
    assert_eq!(report["subWorkflow"]["workflow"], "report_zuora_usage");
    assert_eq!(report["subWorkflow"]["tasks"][0]["ref"], "update");
    assert_eq!(
        result.output,
        json!({ "zuoraId": ID, "paged": true, "sub": sub_id })
    );
    assert_eq!(
        printed["tasks"][1]["subWorkflow"]["tasks"][0]["input"],
        json!({ "id": ID })
    );
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1, "the paging worker was mocked");
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        ("PUT", format!("/zuora/v1/object/usage/{ID}").as_str())
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":7}"#
    );

    // The inline sub-workflow fails: its task fails with Conductor's reason, and the
    // workflow with it.
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "quantity": 7 }),
            options("FAILED_WITH_TERMINAL_ERROR"),
        )
        .await;
    assert_eq!(result.status, "FAILED");
    let printed = result.to_json();
    let notify = &printed["tasks"][1];
    assert_eq!(notify["status"], "FAILED");
    let reason = result.reason.unwrap();
    assert_eq!(
        reason,
        format!(
            "task notify: Sub workflow notify_inline.1/{} failure reason: task page failed: its mock says FAILED_WITH_TERMINAL_ERROR: pager down",
            notify["subWorkflow"]["workflowId"].as_str().unwrap()
        )
    );
}

/// FORK_JOIN_DYNAMIC as Conductor's mapper makes it: one task per `forkTaskInputs` item
/// (`_NAME_i`, its input the item with `__index`), or the tasks and inputs given by
/// `dynamicForkTasksParam` / `dynamicForkTasksInputParamName`; the JOIN after it joins on
/// them; a failed item (not optional) fails the workflow, which says which, and the
/// other branch's running task is canceled, as Conductor's decider does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_fork_runs_one_branch_per_item_and_its_join_collects_them() {
    let h = harness().await;
    let usage = |subscription: &str, quantity: f64| {
        json!({ "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": subscription, "quantity": quantity } })
    };
    let definition = def(json!({
        "name": "period_usage_batch",
        "tasks": [
            { "name": "report_each", "taskReferenceName": "report_each", "type": "FORK_JOIN_DYNAMIC",
              "inputParameters": { "forkTaskName": "rebilly-create-usage", "forkTaskInputs": "${workflow.input.records}" } },
            { "name": "join", "taskReferenceName": "join", "type": "JOIN" },
        ],
        "outputParameters": { "first": "${join.output._rebilly-create-usage_0.response.body.quantity}" },
    }));
    let records = json!([usage("sub_mock_001", 2.0), usage("sub_mock_001", 3.5)]);
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "records": records }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let by_ref = |reference: &str| {
        printed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ref"] == reference)
            .unwrap_or_else(|| panic!("no task {reference}: {printed}"))
            .clone()
    };
    let fork = by_ref("report_each");
    assert_eq!(fork["taskType"], "FORK");
    assert_eq!(
        fork["input"]["forkedTasks"],
        json!(["_rebilly-create-usage_0", "_rebilly-create-usage_1"])
    );
    let second = by_ref("_rebilly-create-usage_1");
    assert_eq!(second["taskType"], "rebilly-create-usage");
    assert_eq!(second["input"]["__index"], 1);
    let join = by_ref("join");
    assert_eq!(
        join["input"],
        json!({ "joinOn": ["_rebilly-create-usage_0", "_rebilly-create-usage_1"] })
    );
    assert_eq!(
        join["output"]["_rebilly-create-usage_1"]["response"]["body"]["quantity"],
        3.5
    );
    assert_eq!(result.output, json!({ "first": 2.0 }));
    let mut bodies: Vec<String> = h
        .mock
        .journal()
        .iter()
        .map(|r| {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/rebilly/organizations/org_mock/usages")
            );
            String::from_utf8(r.body.clone()).unwrap()
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            r#"{"subscriptionId":"sub_mock_001","quantity":2.0}"#,
            r#"{"subscriptionId":"sub_mock_001","quantity":3.5}"#
        ]
    );

    // The other form, with a failing item (refused before sending) while the other's
    // POST waits on its reply (held by the mock): the workflow fails, naming the failed
    // item, and the other is canceled.
    h.mock.inject(Fault {
        path: "/rebilly/organizations/org_mock/usages".into(),
        times: 1,
        delay_ms: 600_000,
        ..Fault::default()
    });
    let definition = def(json!({
        "name": "period_usage_batch_v1",
        "tasks": [
            { "name": "report_each", "taskReferenceName": "report_each", "type": "FORK_JOIN_DYNAMIC",
              "dynamicForkTasksParam": "tasks", "dynamicForkTasksInputParamName": "inputs",
              "inputParameters": {
                  "tasks": [
                      { "name": "rebilly-create-usage", "taskReferenceName": "ok" },
                      { "name": "rebilly-create-usage", "taskReferenceName": "bad" },
                  ],
                  "inputs": { "ok": usage("sub_mock_001", 1.0), "bad": usage("sub_mock_001", -1.0) },
              } },
            { "name": "join", "taskReferenceName": "join", "type": "JOIN" },
        ],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    assert!(
        result
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("task bad"),
        "{:?}",
        result.reason
    );
    let printed = result.to_json();
    let status = |reference: &str| {
        printed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ref"] == reference)
            .map(|t| t["status"].clone())
    };
    assert_eq!(status("ok"), Some(json!("CANCELED")));
    assert_eq!(status("bad"), Some(json!("FAILED_WITH_TERMINAL_ERROR")));
    assert_eq!(status("join"), None);
}

/// Conductor's legacy FORK_JOIN_DYNAMIC form: `dynamicForkJoinTasksParam` names an input
/// holding `{"dynamicTasks": [{taskName, referenceName, input}, …]}`
/// (`ForkJoinDynamicTaskMapper.getDynamicForkJoinTasksAndInput`); each is forked under
/// its reference with its input, and the JOIN after it joins on them. Without the
/// value, the fork fails with Conductor's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_dynamic_fork_join_tasks_param_forks_each_listed_task() {
    let h = harness().await;
    let usage = |quantity: f64| {
        json!({ "headers": { "REB-APIKEY": "sk_sandbox_mock" },
                "body": { "subscriptionId": "sub_mock_001", "quantity": quantity } })
    };
    let value = json!({
        "name": "legacy_dynamic_fork",
        "tasks": [
            { "name": "report_each", "taskReferenceName": "report_each", "type": "FORK_JOIN_DYNAMIC",
              "dynamicForkJoinTasksParam": "dynamicTasks",
              "inputParameters": { "dynamicTasks": "${workflow.input.forks}" } },
            { "name": "join", "taskReferenceName": "join", "type": "JOIN" },
        ],
        "outputParameters": { "second": "${join.output.usage_b.response.body.quantity}" },
    });
    let definition = def(value.clone());
    let forks = json!({ "dynamicTasks": [
        { "taskName": "rebilly-create-usage", "referenceName": "usage_a", "input": usage(1.5) },
        { "taskName": "rebilly-create-usage", "referenceName": "usage_b", "type": "SIMPLE", "input": usage(2.5) },
    ] });
    let result = h
        .runner
        .run_with(&definition, json!({ "forks": forks }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "second": 2.5 }));
    let printed = result.to_json();
    let by_ref = |reference: &str| {
        printed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ref"] == reference)
            .unwrap_or_else(|| panic!("no task {reference}: {printed}"))
            .clone()
    };
    assert_eq!(
        by_ref("report_each")["input"]["forkedTasks"],
        json!(["usage_a", "usage_b"])
    );
    assert_eq!(by_ref("usage_a")["taskType"], "rebilly-create-usage");
    assert_eq!(
        by_ref("join")["input"],
        json!({ "joinOn": ["usage_a", "usage_b"] })
    );
    let mut bodies: Vec<String> = h
        .mock
        .journal()
        .iter()
        .map(|r| {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/rebilly/organizations/org_mock/usages")
            );
            String::from_utf8(r.body.clone()).unwrap()
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            r#"{"subscriptionId":"sub_mock_001","quantity":1.5}"#,
            r#"{"subscriptionId":"sub_mock_001","quantity":2.5}"#
        ]
    );

    // No value under the named input: nothing is forked or sent.
    h.mock.clear_journal();
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    let reason = result.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(
            "Dynamic tasks could not be created. The value of dynamicTasks from task's input {dynamicTasks=null} has no dynamic tasks to be scheduled"
        ),
        "{reason}"
    );
    assert!(h.mock.journal().is_empty());

    // Valid as written (no warning about the field); both forms at once are refused in
    // Conductor's words.
    let report = validate_alone(&value, &Default::default());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let both = json!({
        "name": "both_forms",
        "tasks": [
            { "name": "report_each", "taskReferenceName": "report_each", "type": "FORK_JOIN_DYNAMIC",
              "dynamicForkJoinTasksParam": "dynamicTasks", "dynamicForkTasksParam": "tasks",
              "inputParameters": { "dynamicTasks": "${workflow.input.forks}" } },
            { "name": "join", "taskReferenceName": "join", "type": "JOIN" },
        ],
    });
    assert_eq!(
        validate_alone(&both, &Default::default()).problems,
        vec![harness_workflow::validate::Problem {
            path: "$.tasks[0]".into(),
            message: "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: report_each".into(),
        }]
    );
}

/// A dynamic fork inside a DO_WHILE, as Conductor names its tasks: every task scheduled
/// in iteration N gets `__N` (`DeciderService.filterNextLoopOverTasks`), the forked ones
/// too; from the second iteration on the run already holds a dynamic fork, so the
/// mapper names them `_FORKREF_NAME_i`; the JOIN joins on the iteration's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_fork_in_a_loop_names_its_tasks_per_iteration_as_conductor_does() {
    let h = harness().await;
    let value = json!({
        "name": "paged_batch",
        "tasks": [{
            "name": "pages", "taskReferenceName": "pages", "type": "DO_WHILE",
            "loopCondition": "$.pages['iteration'] < 2",
            "loopOver": [
                { "name": "report_each", "taskReferenceName": "report_each", "type": "FORK_JOIN_DYNAMIC",
                  "inputParameters": {
                      "forkTaskName": "rebilly-create-usage",
                      "forkTaskInputs": "${workflow.input.records}"
                  } },
                { "name": "join", "taskReferenceName": "join", "type": "JOIN" },
            ],
        }],
    });
    let records = json!([
        { "headers": { "REB-APIKEY": "sk_sandbox_mock" }, "body": { "subscriptionId": "sub_mock_001", "quantity": 1 } },
        { "headers": { "REB-APIKEY": "sk_sandbox_mock" }, "body": { "subscriptionId": "sub_mock_001", "quantity": 2 } },
    ]);
    let result = h
        .runner
        .run_with(
            &def(value),
            json!({ "records": records }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let by_ref = |reference: &str| {
        printed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ref"] == reference)
            .unwrap_or_else(|| panic!("no task {reference}: {printed:#}"))
            .clone()
    };
    // Sorted: this pins the names; the record order (the DO_WHILE first, as Conductor
    // lists it) is pinned by the DO_WHILE tests.
    let mut references: Vec<String> = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ref"].as_str().unwrap().to_string())
        .collect();
    references.sort();
    assert_eq!(
        references,
        [
            "_rebilly-create-usage_0__1",
            "_rebilly-create-usage_1__1",
            "_report_each_rebilly-create-usage_0__2",
            "_report_each_rebilly-create-usage_1__2",
            "join__1",
            "join__2",
            "pages",
            "report_each__1",
            "report_each__2",
        ],
        "{printed:#}"
    );
    assert_eq!(
        by_ref("report_each__2")["input"]["forkedTasks"],
        json!([
            "_report_each_rebilly-create-usage_0__2",
            "_report_each_rebilly-create-usage_1__2"
        ])
    );
    assert_eq!(
        by_ref("join__1")["input"]["joinOn"],
        json!(["_rebilly-create-usage_0__1", "_rebilly-create-usage_1__1"])
    );
    // Each iteration's outputs, by the references as defined.
    assert_eq!(
        by_ref("pages")["output"]["2"]["join"]["_report_each_rebilly-create-usage_1__2"]["response"]
            ["body"]["quantity"],
        2,
        "{printed:#}"
    );
    assert_eq!(h.mock.journal().len(), 4);
}

/// The batch sync of `examples/workflows/period-usage-batch.json`, as the README runs
/// it: 500 records, each reported to Rebilly and its Zuora usage corrected by its own
/// sub-workflow (FORK_JOIN_DYNAMIC + forkTaskWorkflow); every record is created exactly
/// once, and a record that fails fails only its own branch: the others complete and the
/// output names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_example_creates_every_record_once_and_a_bad_record_fails_only_its_branch() {
    batch_creates_every_record_once(false, 7).await;
}

/// The batch of 1,000 records (the example's and 500 more), wider than the 512 branches
/// a fork keeps in progress: the later branches start as earlier ones end, every record
/// is still created exactly once, and a bad record past the first 512 fails only its own
/// branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_wider_than_the_branches_in_progress_creates_every_record_once() {
    batch_creates_every_record_once(true, 800).await;
}

/// Run the batch example on the embedded mock, its records doubled (500 more, each
/// quantity plus 1,000) or not, record `bad` given a quantity Rebilly refuses; check
/// that every other record was created and corrected exactly once.
async fn batch_creates_every_record_once(doubled: bool, bad: usize) {
    let h = harness().await;
    let connections = harness_config::Connections::for_mock(&h.mock);
    let policy = connections.policy().clone();
    let sandbox = harness_sandbox::Sandbox::builtin(Default::default())
        .await
        .unwrap();
    let credentials = std::sync::Arc::new(harness_config::Credentials::new(
        connections,
        sandbox.http(),
    ));
    let runner = h
        .runner
        .clone()
        .with_credentials(credentials)
        .with_policy(policy);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/workflows");
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(examples.join(file)).unwrap()).unwrap()
    };
    let definitions =
        harness_workflow::Definitions::load_dir(&examples.join("definitions")).unwrap();
    let mut input = read("period-usage-batch.input.json");
    assert_eq!(input["records"].as_array().unwrap().len(), 500);
    if doubled {
        let example = input["records"].as_array().unwrap().clone();
        let more = example.into_iter().map(|mut record| {
            record["quantity"] = json!(record["quantity"].as_f64().unwrap() + 1000.0);
            record
        });
        input["records"].as_array_mut().unwrap().extend(more);
    }
    let total = input["records"].as_array().unwrap().len();
    input["records"][bad]["quantity"] = json!(-1);
    let options = RunOptions {
        definitions: std::sync::Arc::new(definitions),
        ..RunOptions::fresh()
    };
    let result = runner
        .run_with(
            &def(read("period-usage-batch.json")),
            input.clone(),
            options,
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let bad_ref = format!("_sync_each_{bad}");
    assert_eq!(
        result.output,
        json!({ "period": "2026-11", "synced": total - 1, "failed": [bad_ref] })
    );
    let printed = result.to_json();
    let failed = printed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ref"] == bad_ref.as_str())
        .unwrap();
    assert_eq!(failed["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(failed["subWorkflow"]["status"], "FAILED");

    let journal = h.mock.journal();
    let mut created = std::collections::BTreeMap::new();
    let (mut corrected, mut logins) = (0, 0);
    for request in journal.iter() {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/rebilly/organizations/org_mock/usages") => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                *created
                    .entry((body["usageTime"].to_string(), body["quantity"].to_string()))
                    .or_insert(0) += 1;
            }
            ("PUT", "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb") => corrected += 1,
            // The host's login for the zuora connection, once (its token is cached).
            ("POST", "/zuora/oauth/token") => logins += 1,
            other => panic!("unexpected request {other:?}"),
        }
    }
    let expected: std::collections::BTreeMap<(String, String), i32> = input["records"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != bad)
        .map(|(_, r)| ((r["usageTime"].to_string(), r["quantity"].to_string()), 1))
        .collect();
    assert_eq!(
        created.len(),
        total - 1,
        "every record but the bad one, once each"
    );
    assert_eq!(created, expected);
    assert_eq!(corrected, total - 1);
    assert_eq!(logins, 1);
}

/// WAIT waits its `duration` or `until` on the runner's clock (a test clock here, so the
/// test never sleeps): `1m 30s` is 90 s, and `until` 00:10 UTC, reached 90 s after the
/// clock's 2026-12-01T00:00Z start, is 510 s more; the task after it then runs. Given
/// both, the WAIT fails terminally with Conductor's reason and nothing after it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_waits_its_duration_or_until_on_the_runners_clock_then_the_next_task_runs() {
    let h = harness().await;
    let definition = def(json!({
        "name": "settle_then_sync",
        "tasks": [
            { "name": "settle", "taskReferenceName": "settle", "type": "WAIT",
              "inputParameters": { "duration": "${workflow.input.settle}" } },
            { "name": "cutoff", "taskReferenceName": "cutoff", "type": "WAIT",
              "inputParameters": { "until": "2026-12-01 00:10 UTC" } },
            zuora_task("update"),
        ],
    }));
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "settle": "1m 30s" }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(
        h.clock.sleeps(),
        [90_000, 510_000].map(std::time::Duration::from_millis)
    );
    let printed = result.to_json();
    let waits: Vec<(&str, &str, Value, u64)> = printed["tasks"].as_array().unwrap()[..2]
        .iter()
        .map(|t| {
            (
                t["ref"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
                t["output"].clone(),
                t["attempts"][0]["durationMs"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waits,
        [
            ("settle", "COMPLETED", json!({}), 90_000),
            ("cutoff", "COMPLETED", json!({}), 510_000)
        ]
    );
    assert_eq!(h.mock.journal().len(), 1, "the update ran after the waits");

    let both = def(json!({
        "name": "ambiguous_wait",
        "tasks": [
            { "name": "w", "taskReferenceName": "w", "type": "WAIT",
              "inputParameters": { "duration": "10s", "until": "2026-12-01 00:10" } },
            zuora_task("update"),
        ],
    }));
    let h = harness().await;
    let result = h
        .runner
        .run_with(&both, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.reason.as_deref(),
        Some("task w: Both 'duration' and 'until' specified. Please provide only one input")
    );
    assert_eq!(result.tasks[0].status, "FAILED_WITH_TERMINAL_ERROR");
    assert!(h.clock.sleeps().is_empty());
    assert!(h.mock.journal().is_empty());
}

/// validate refuses what Conductor's WaitTaskMapper fails (both `duration` and `until`)
/// and a WAIT for an external update, which only a Conductor server can complete,
/// unless `--mock-outputs` answers it; a literal duration or time is parsed as Conductor
/// parses it, an expression is left for the run.
#[test]
fn validate_refuses_a_wait_with_both_times_or_neither_unless_it_is_mocked() {
    use harness_workflow::validate::Problem;
    let mocked = ["approval".to_string()].into_iter().collect();
    let report = validate_alone(
        &json!({
            "name": "waits",
            "tasks": [
                { "name": "w", "taskReferenceName": "both", "type": "WAIT",
                  "inputParameters": { "duration": "10s", "until": "2026-12-01" } },
                { "name": "w", "taskReferenceName": "signal", "type": "WAIT" },
                { "name": "w", "taskReferenceName": "approval", "type": "WAIT" },
                { "name": "w", "taskReferenceName": "settle", "type": "WAIT",
                  "inputParameters": { "duration": "${workflow.input.settle}" } },
                { "name": "w", "taskReferenceName": "typo", "type": "WAIT",
                  "inputParameters": { "duration": "5 ms" } },
                { "name": "w", "taskReferenceName": "iso", "type": "WAIT",
                  "inputParameters": { "until": "2026-12-01T10:00:00Z" } },
                { "name": "w", "taskReferenceName": "cutoff", "type": "WAIT",
                  "inputParameters": { "until": "2026-12-01 10:00 GMT" } },
            ],
        }),
        &mocked,
    );
    let problem = |path: &str, message: &str| Problem {
        path: path.into(),
        message: message.into(),
    };
    assert_eq!(
        report.problems,
        vec![
            problem(
                "$.tasks[0].inputParameters",
                "Both 'duration' and 'until' specified. Please provide only one input"
            ),
            problem(
                "$.tasks[1].inputParameters",
                "a WAIT without duration or until waits for an external update, which needs a Conductor server: give its output with --mock-outputs"
            ),
            problem(
                "$.tasks[4].inputParameters.duration",
                "Not valid duration: 5 ms"
            ),
            problem(
                "$.tasks[5].inputParameters.until",
                "Invalid/Unsupported Wait Until format.  Provided: 2026-12-01T10:00:00Z"
            ),
        ]
    );
}

/// INLINE and LAMBDA as Conductor's `Inline` and `Lambda` run them: `$` is the task's
/// input, the script's value is `output.result`, and the next request is shaped from
/// it; `value-param` reads an input by name; LAMBDA's `scriptExpression` is a function
/// body. The scripts send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_lambda_scripts_give_their_result_to_the_next_request() {
    let h = harness().await;
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${total.output.result.quantity}");
    update["inputParameters"]["body"]["Description"] = json!("${label.output.result}");
    update["inputParameters"]["body"]["UOM"] = json!("${uom.output.result}");
    let definition = def(json!({
        "name": "shape_usage",
        "tasks": [
            { "name": "total", "taskReferenceName": "total", "type": "INLINE",
              "inputParameters": {
                  "records": "${workflow.input.records}",
                  "evaluatorType": "graaljs",
                  "expression": "(function () { var q = 0; for (var i = 0; i < $.records.length; i++) { q += $.records[i].quantity; } return { quantity: q, count: $.records.length }; })()",
              } },
            { "name": "label", "taskReferenceName": "label", "type": "LAMBDA",
              "inputParameters": {
                  "period": "${workflow.input.period}", "count": "${total.output.result.count}",
                  "scriptExpression": "return $.count + ' records for ' + $.period;",
              } },
            { "name": "uom", "taskReferenceName": "uom", "type": "INLINE",
              "inputParameters": { "unit": "Each", "evaluatorType": "value-param", "expression": "unit" } },
            update,
        ],
    }));
    let input = json!({ "period": "2026-11", "records": [{ "quantity": 2.5 }, { "quantity": 4 }] });
    let result = h
        .runner
        .run_with(&definition, input, RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let outputs: Vec<(&str, &str, Value)> = result
        .tasks
        .iter()
        .take(3)
        .map(|t| (t.reference.as_str(), t.task_type.as_str(), t.output.clone()))
        .collect();
    assert_eq!(
        outputs,
        [
            (
                "total",
                "INLINE",
                json!({ "result": { "quantity": 6.5, "count": 2 } })
            ),
            (
                "label",
                "LAMBDA",
                json!({ "result": "2 records for 2026-11" })
            ),
            ("uom", "INLINE", json!({ "result": "Each" })),
        ]
    );
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1, "the scripts sent nothing");
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":6.5,"Description":"2 records for 2026-11"}"#
    );
}

/// A script that throws, one that never ends and an unknown evaluator fail the INLINE
/// `FAILED_WITH_TERMINAL_ERROR` with the reason in `output.error`, as Conductor does;
/// the endless loop meets the loop budget and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_fails_its_task_with_the_reason_in_its_output() {
    let h = harness().await;
    for (evaluator, script, expected) in [
        (
            "javascript",
            "throw new Error('no rate for ' + $.sku)",
            "Error evaluating the script `Error: no rate for sku_1 (unknown at :1:7)`",
        ),
        (
            "javascript",
            "while (true) {}",
            "Maximum loop iteration limit 10000000 exceeded",
        ),
        (
            "python",
            "1 + 1",
            "Unknown evaluator 'python' in INLINE task.",
        ),
    ] {
        let definition = def(json!({
            "name": "bad_script",
            "tasks": [
                { "name": "rate", "taskReferenceName": "rate", "type": "INLINE",
                  "inputParameters": { "sku": "sku_1", "evaluatorType": evaluator, "expression": script } },
                zuora_task("update"),
            ],
        }));
        let result = h
            .runner
            .run_with(&definition, json!({}), RunOptions::fresh())
            .await;
        assert_eq!(result.status, "FAILED", "{script}");
        let task = &result.tasks[0];
        assert_eq!(task.status, "FAILED_WITH_TERMINAL_ERROR", "{script}");
        let error = task.output["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{script}: {error}");
        let reason = result.reason.unwrap_or_default();
        assert!(
            reason.starts_with("task rate") && reason.contains(expected),
            "{script}: {reason}"
        );
    }
    assert!(
        h.mock.journal().is_empty(),
        "nothing after a failed script ran"
    );
}

/// A SWITCH with the `javascript` evaluator, as in Conductor's docs, picks its case by
/// the script's value over `$` (its inputs), written as Java writes it; a DECISION's
/// `caseExpression` likewise; a script that throws fails the SWITCH and the workflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_switch_and_a_case_expression_pick_their_case_by_the_scripts_value() {
    let h = harness().await;
    let definition = def(json!({
        "name": "route_usage",
        "tasks": [
            { "name": "route", "taskReferenceName": "route", "type": "SWITCH",
              "evaluatorType": "javascript",
              "expression": "$.quantity > 100 ? 'bulk' : ($.quantity > 0 ? 'single' : 'none')",
              "inputParameters": { "quantity": "${workflow.input.quantity}" },
              "decisionCases": {
                  "bulk": [{ "name": "bulk_review", "taskReferenceName": "bulk" }],
                  "single": [zuora_task("update")],
              },
              "defaultCase": [] },
            { "name": "legacy", "taskReferenceName": "legacy", "type": "DECISION",
              "caseExpression": "$.count * 2",
              "inputParameters": { "count": 2 },
              "decisionCases": { "4": [{ "name": "four", "taskReferenceName": "four" }] } },
        ],
    }));
    let mocks = || {
        mocked(json!({ "taskRefToMockOutput": {
            "bulk": [{ "status": "COMPLETED", "output": { "queued": true } }],
            "four": [{ "status": "COMPLETED", "output": {} }],
        } }))
    };
    for (quantity, case, ran) in [
        (250, "bulk", "bulk"),
        (3, "single", "update"),
        (0, "none", "legacy"),
    ] {
        let h = harness().await;
        let result = h
            .runner
            .run_with(&definition, json!({ "quantity": quantity }), mocks())
            .await;
        assert_eq!(
            result.status, "COMPLETED",
            "{quantity}: {:?}",
            result.reason
        );
        let switch = &result.tasks[0];
        assert_eq!(switch.task_type, "SWITCH");
        assert_eq!(
            switch.output,
            json!({ "evaluationResult": [case], "selectedCase": case }),
            "{quantity}"
        );
        assert_eq!(switch.input, json!({ "quantity": quantity, "case": case }));
        assert_eq!(result.tasks[1].reference, ran, "{quantity}");
        let decision = result
            .tasks
            .iter()
            .find(|t| t.reference == "legacy")
            .unwrap();
        assert_eq!(decision.output, json!({ "caseOutput": ["4"] }));
        assert!(result.tasks.iter().any(|t| t.reference == "four"));
        assert_eq!(h.mock.journal().len(), usize::from(case == "single"));
    }

    let mut failing = definition.clone();
    failing.tasks[0].expression = Some("$.quantity.toFixed()".into());
    let result = h.runner.run_with(&failing, json!({}), mocks()).await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.tasks.len(), 1, "no case ran");
    assert_eq!(result.tasks[0].status, "FAILED");
    let reason = result.reason.unwrap_or_default();
    assert!(
        reason.starts_with("task route")
            && reason.contains("Error evaluating the script `TypeError"),
        "{reason}"
    );
}

/// DO_WHILE as Conductor's `DoWhile` runs it, paging: each iteration's tasks are
/// `ref__N` in the record and plain `ref` to expressions (the latest iteration's), the
/// `loopCondition` sees `$.<loop ref>.iteration` and each loop task's output by its
/// reference, the DO_WHILE's output has `iteration` and each iteration's outputs under
/// `"N"`, and after the loop `${ref…}` is the last iteration's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_while_pages_until_its_condition_fails_with_conductors_iteration_names() {
    let h = harness().await;
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${fetch.output.quantity}");
    let definition = def(json!({
        "name": "page_usage",
        "tasks": [{
            "name": "pages", "taskReferenceName": "pages", "type": "DO_WHILE",
            "inputParameters": { "limit": "${workflow.input.limit}" },
            "loopCondition": "if ($.pages['iteration'] < $.limit && $.fetch['hasMore']) { true; } else { false; }",
            "loopOver": [
                { "name": "fetch_usage_page", "taskReferenceName": "fetch",
                  "inputParameters": { "page": "${pages.output.iteration}" } },
                update,
            ],
        }],
        "outputParameters": { "pages": "${pages.output.iteration}", "last": "${fetch.output.quantity}" },
    }));
    let page = |quantity: f64, more: bool| json!({ "status": "COMPLETED", "output": { "quantity": quantity, "hasMore": more } });
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "limit": 10 }),
            mocked(json!({ "taskRefToMockOutput": { "fetch": [page(1.5, true), page(2.0, true), page(3.25, false)] } })),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "pages": 3, "last": 3.25 }));
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(
        refs,
        [
            "pages",
            "fetch__1",
            "update__1",
            "fetch__2",
            "update__2",
            "fetch__3",
            "update__3",
        ],
        "the DO_WHILE first, as Conductor schedules it before its loop's tasks"
    );
    assert_eq!(
        result.tasks[3].input,
        json!({ "page": 2 }),
        "the loop's own iteration"
    );
    let pages = &result.tasks[0];
    assert_eq!(pages.task_type, "DO_WHILE");
    assert_eq!(pages.output["iteration"], 3);
    assert_eq!(
        pages.output["2"]["fetch"],
        json!({ "quantity": 2.0, "hasMore": true })
    );
    assert_eq!(
        pages.output["3"]["update"]["response"]["body"]["Success"],
        true
    );
    let bodies: Vec<String> = h
        .mock
        .journal()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"UOM":"Each","Quantity":1.5}"#,
            r#"{"UOM":"Each","Quantity":2.0}"#,
            r#"{"UOM":"Each","Quantity":3.25}"#
        ]
    );
}

/// DO_WHILE over `items` (Conductor OSS's list iteration): one iteration per item,
/// `loopItem` and `loopIndex` in its output; an empty list runs nothing (`iteration`
/// 0); `keepLastN` keeps only the last iterations' outputs and tasks; a failed loop task
/// fails the DO_WHILE and the workflow; a condition that throws fails the loop with
/// Conductor's "Unable to evaluate condition".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_while_over_items_runs_once_per_item_and_keeps_the_last_n() {
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${each.output.loopItem.quantity}");
    update["inputParameters"]["body"]["Description"] = json!("record ${each.output.loopIndex}");
    let definition = def(json!({
        "name": "each_record",
        "tasks": [{
            "name": "each", "taskReferenceName": "each", "type": "DO_WHILE",
            "items": "${workflow.input.records}",
            "inputParameters": { "keepLastN": 2 },
            "loopOver": [update],
        }],
    }));
    let h = harness().await;
    let records = json!([{ "quantity": 1 }, { "quantity": 2 }, { "quantity": 3 }]);
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "records": records }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["each", "update__2", "update__3"], "keepLastN 2");
    let each = &result.tasks[0].output;
    assert_eq!(each["iteration"], 3);
    assert_eq!(each["loopIndex"], 2);
    assert_eq!(each["loopItem"], json!({ "quantity": 3 }));
    assert!(each.get("1").is_none() && each.get("2").is_some() && each.get("3").is_some());
    let bodies: Vec<String> = h
        .mock
        .journal()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"UOM":"Each","Quantity":1,"Description":"record 0"}"#,
            r#"{"UOM":"Each","Quantity":2,"Description":"record 1"}"#,
            r#"{"UOM":"Each","Quantity":3,"Description":"record 2"}"#
        ],
        "every record sent once, in order"
    );

    let h = harness().await;
    let result = h
        .runner
        .run_with(&definition, json!({ "records": [] }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED");
    assert_eq!(result.tasks.len(), 1);
    assert_eq!(result.tasks[0].output, json!({ "iteration": 0 }));
    assert!(h.mock.journal().is_empty());

    // A loop task that fails fails the loop and the workflow.
    let h = harness().await;
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(400),
        body: Some(json!({ "Success": false, "Errors": [{ "Code": "INVALID_VALUE", "Message": "bad quantity" }] })),
        ..Default::default()
    });
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "records": records }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "FAILED");
    let statuses: Vec<(&str, &str)> = result
        .tasks
        .iter()
        .map(|t| (t.reference.as_str(), t.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("each", "FAILED"),
            ("update__1", "FAILED_WITH_TERMINAL_ERROR")
        ]
    );
    assert_eq!(h.mock.journal().len(), 1, "no item after the failed one");

    // A condition that throws.
    let throwing = def(json!({
        "name": "bad_condition",
        "tasks": [{
            "name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE",
            "loopCondition": "$.nothing.here > 1",
            "loopOver": [{ "name": "step", "taskReferenceName": "step" }],
        }],
    }));
    let result = h
        .runner
        .run_with(
            &throwing,
            json!({}),
            mocked(json!({ "taskRefToMockOutput": { "step": [{ "status": "COMPLETED", "output": {} }] } })),
        )
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        (result.tasks[0].reference.as_str(), result.tasks[0].status),
        ("loop", TaskStatus::FailedWithTerminalError)
    );
    let reason = result.reason.unwrap_or_default();
    assert!(
        reason.starts_with("task loop: Unable to evaluate condition $.nothing.here > 1, exception")
            && reason.contains("TypeError"),
        "{reason}"
    );
}

/// validate for the scripted tasks: a DO_WHILE needs its loopOver and cannot hold
/// another (the harness's limit), one without a condition or items is warned of
/// (Conductor runs it once); an INLINE needs its script and a known evaluator; a
/// javascript SWITCH and references to a loop's tasks are fine.
#[test]
fn validate_checks_loops_and_scripts_as_they_will_run() {
    use harness_workflow::validate::Problem;
    let report = validate_alone(
        &json!({
            "name": "scripted",
            "tasks": [
                { "name": "l", "taskReferenceName": "empty_loop", "type": "DO_WHILE",
                  "loopCondition": "false", "loopOver": [] },
                { "name": "l", "taskReferenceName": "outer", "type": "DO_WHILE",
                  "loopCondition": "$.outer['iteration'] < 2",
                  "loopOver": [{ "name": "l", "taskReferenceName": "inner", "type": "DO_WHILE",
                                 "items": "${workflow.input.x}",
                                 "loopOver": [{ "name": "w", "taskReferenceName": "w", "type": "WAIT",
                                                "inputParameters": { "duration": "1s" } }] }] },
                { "name": "l", "taskReferenceName": "once", "type": "DO_WHILE",
                  "loopOver": [{ "name": "w", "taskReferenceName": "w2", "type": "WAIT",
                                 "inputParameters": { "duration": "1s" } }] },
                { "name": "i", "taskReferenceName": "blank", "type": "INLINE",
                  "inputParameters": { "expression": " " } },
                { "name": "i", "taskReferenceName": "py", "type": "INLINE",
                  "inputParameters": { "evaluatorType": "python", "expression": "1" } },
                { "name": "s", "taskReferenceName": "route", "type": "SWITCH",
                  "evaluatorType": "javascript", "expression": "$.n > 1 ? 'big' : 'small'",
                  "inputParameters": { "n": "${w2.output.n}" }, "decisionCases": {} },
            ],
        }),
        &Default::default(),
    );
    let problem = |path: &str, message: &str| Problem {
        path: path.into(),
        message: message.into(),
    };
    assert_eq!(
        report.problems,
        vec![
            problem(
                "$.tasks[0].loopOver",
                "required: the tasks of one iteration"
            ),
            problem(
                "$.tasks[1].loopOver",
                "a DO_WHILE inside a DO_WHILE is not supported by the harness: move the inner loop into a SUB_WORKFLOW"
            ),
            problem(
                "$.tasks[3].inputParameters.expression",
                "required: a non-empty script (Conductor fails the task without one)"
            ),
            problem(
                "$.tasks[4].inputParameters.evaluatorType",
                "the `python` evaluator is not supported: use javascript, graaljs or value-param"
            ),
        ]
    );
    assert_eq!(
        report.warnings,
        vec![problem(
            "$.tasks[2].loopCondition",
            "no loopCondition and no items: the loop runs once"
        )]
    );
}

/// A task type only a Conductor server runs (HUMAN, EVENT, …) is a validate problem
/// saying so, unless `--mock-outputs` answers it: then its mock runs in its place and
/// the workflow goes on with its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_only_task_type_runs_as_its_mock_or_is_refused_naming_the_server() {
    use harness_workflow::validate::Problem;
    let definition = json!({
        "name": "approve_then_sync",
        "tasks": [
            { "name": "approve", "taskReferenceName": "approve", "type": "HUMAN" },
            { "name": "notify", "taskReferenceName": "notify", "type": "EVENT", "sink": "conductor" },
        ],
    });
    let mocked_refs = ["approve".to_string()].into_iter().collect();
    let report = validate_alone(&definition, &mocked_refs);
    assert_eq!(
        report.problems,
        vec![Problem {
            path: "$.tasks[1].type".into(),
            message: "task type `EVENT` needs a Conductor server (the harness runs SIMPLE, HTTP, FORK_JOIN, JOIN, SWITCH, DECISION, TERMINATE, SET_VARIABLE, JSON_JQ_TRANSFORM, SUB_WORKFLOW, FORK_JOIN_DYNAMIC, DYNAMIC, WAIT, INLINE, LAMBDA and DO_WHILE): give its output with --mock-outputs to run the rest here".into(),
        }]
    );

    let h = harness().await;
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Description"] =
        json!("approved by ${approve.output.approver}");
    let definition = def(json!({
        "name": "approve_then_sync",
        "tasks": [{ "name": "approve", "taskReferenceName": "approve", "type": "HUMAN" }, update],
    }));
    let result = h
        .runner
        .run_with(
            &definition,
            json!({}),
            mocked(json!({ "taskRefToMockOutput": { "approve": [{ "status": "COMPLETED", "output": { "approver": "finance" } }] } })),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.tasks[0].task_type, "HUMAN");
    assert_eq!(result.tasks[0].output, json!({ "approver": "finance" }));
    assert_eq!(
        String::from_utf8(h.mock.journal()[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Description":"approved by finance"}"#
    );
}

/// DYNAMIC (Conductor's DynamicTaskMapper): the task its `dynamicTaskNameParam` input
/// names runs in its place, under the DYNAMIC task's reference and with its whole
/// resolved input, recorded with that task's name as its type; when the parameter
/// resolves to nothing the workflow fails with Conductor's reason and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_task_runs_the_task_its_input_names_under_its_own_reference() {
    let h = harness().await;
    let mut correct = zuora_task("correct");
    correct["name"] = json!("correct_usage");
    correct["type"] = json!("DYNAMIC");
    correct["dynamicTaskNameParam"] = json!("taskToExecute");
    correct["inputParameters"]["taskToExecute"] = json!("${workflow.input.vendorTask}");
    correct["inputParameters"]["body"]["Quantity"] = json!("${workflow.input.quantity}");
    let definition = def(json!({
        "name": "correct_by_vendor",
        "tasks": [correct],
        "outputParameters": { "updated": "${correct.output.response.body.Success}" },
    }));
    let result = h
        .runner
        .run_with(
            &definition,
            json!({ "vendorTask": "zuora-update-usage", "quantity": 7 }),
            RunOptions::fresh(),
        )
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "updated": true }));
    let printed = result.to_json();
    let task = &printed["tasks"][0];
    assert_eq!(
        (
            &task["ref"],
            &task["task"],
            &task["taskType"],
            &task["status"]
        ),
        (
            &json!("correct"),
            &json!("zuora-update-usage"),
            &json!("zuora-update-usage"),
            &json!("COMPLETED")
        )
    );
    assert_eq!(
        task["input"],
        json!({
            "taskToExecute": "zuora-update-usage",
            "path": { "id": "8ad08ae29085a77b0190908bfdd67abb" },
            "headers": { "Authorization": "***" },
            "body": { "UOM": "Each", "Quantity": 7 },
        })
    );
    assert_eq!(printed["tasks"].as_array().unwrap().len(), 1);
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        (
            "PUT",
            "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb"
        )
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":7}"#
    );

    let result = h
        .runner
        .run_with(&definition, json!({ "quantity": 7 }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "task correct: Cannot map a dynamic task based on the parameter and input. Parameter= taskToExecute, its value= null"
        )
    );
    assert!(result.tasks.is_empty());
    assert_eq!(h.mock.journal().len(), 1, "nothing more was sent");
}

/// Conductor's DynamicTaskMapper gives the task the name as its taskType, so a name
/// that is a system task's type runs that system task (here HTTP, as a definition
/// choosing between a vendor task and a raw HTTP call has it); a control-flow type
/// cannot be one scheduled task and fails the run before anything is sent, and an empty
/// name fails as Conductor's task definition lookup does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_task_naming_a_system_task_type_runs_that_system_task() {
    let h = harness().await;
    let definition = def(json!({
        "name": "correct_by_kind",
        "tasks": [{
            "name": "correct_usage",
            "taskReferenceName": "correct",
            "type": "DYNAMIC",
            "dynamicTaskNameParam": "taskToExecute",
            "inputParameters": {
                "taskToExecute": "${workflow.input.kind}",
                "http_request": {
                    "uri": "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb",
                    "method": "PUT",
                    "headers": { "Authorization": "Bearer mock-zuora-token" },
                    "body": { "UOM": "Each", "Quantity": 9 },
                },
            },
        }],
        "outputParameters": { "status": "${correct.output.response.statusCode}" },
    }));
    let result = h
        .runner
        .run_with(&definition, json!({ "kind": "HTTP" }), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    assert_eq!(result.output, json!({ "status": 200 }));
    let printed = result.to_json();
    let task = &printed["tasks"][0];
    assert_eq!(
        (&task["ref"], &task["task"], &task["taskType"]),
        (&json!("correct"), &json!("HTTP"), &json!("HTTP"))
    );
    let journal = h.mock.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        (journal[0].method.as_str(), journal[0].path.as_str()),
        (
            "PUT",
            "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb"
        )
    );
    assert_eq!(journal[0].query, None);
    assert_eq!(
        journal[0].header("authorization"),
        Some("Bearer mock-zuora-token")
    );
    assert_eq!(
        String::from_utf8(journal[0].body.clone()).unwrap(),
        r#"{"UOM":"Each","Quantity":9}"#
    );

    for (kind, reason) in [
        (
            "FORK_JOIN",
            "task correct: the dynamic task names `FORK_JOIN`, which Conductor does not run as one scheduled task (a dynamic task may name a worker task or the HTTP, JSON_JQ_TRANSFORM, INLINE, LAMBDA, WAIT, TERMINATE or SET_VARIABLE system task): give the task the type `FORK_JOIN` in the definition instead",
        ),
        (
            "",
            "task correct: Invalid task specified.  Cannot find task by name  in the task definitions",
        ),
    ] {
        let result = h
            .runner
            .run_with(&definition, json!({ "kind": kind }), RunOptions::fresh())
            .await;
        assert_eq!(result.status, "FAILED");
        assert_eq!(result.reason.as_deref(), Some(reason));
        assert!(result.tasks.is_empty());
    }
    assert_eq!(h.mock.journal().len(), 1, "nothing more was sent");
}

/// The shipped Zuora task of `zuora_task`, sending `quantity`.
fn zuora_put(reference: &str, quantity: u32) -> Value {
    let mut task = zuora_task(reference);
    task["inputParameters"]["body"]["Quantity"] = json!(quantity);
    task
}

/// The `Quantity` of each request the mock received, in order.
fn sent_quantities(h: &crate::workflows::Harness) -> Vec<Value> {
    h.mock
        .journal()
        .iter()
        .map(|r| r.body_json().unwrap_or_default()["Quantity"].clone())
        .collect()
}

/// When fewer tasks may run than are ready, a fork's earlier branches go first: with one
/// task at a time, each branch of a three-branch FORK_JOIN runs both its tasks before the
/// next branch starts (so a fork of 10,000 sub-workflows holds about the pool's width of
/// them half done, not all of them); the records and the JOIN are as Conductor has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_admits_its_earlier_branches_first_when_tasks_must_wait() {
    let mut h = harness().await;
    h.runner = h.runner.clone().with_width(1);
    let definition = def(json!({
        "name": "three_branches",
        "tasks": [
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
              "forkTasks": [[zuora_put("a1", 11), zuora_put("a2", 12)], [zuora_put("b1", 21), zuora_put("b2", 22)], [zuora_put("c1", 31), zuora_put("c2", 32)]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a2", "b2", "c2"] },
        ],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let quantities: Vec<Value> = sent_quantities(&h);
    assert_eq!(
        quantities,
        [
            json!(11),
            json!(12),
            json!(21),
            json!(22),
            json!(31),
            json!(32)
        ]
    );
    let refs: Vec<&str> = result.tasks.iter().map(|t| t.reference.as_str()).collect();
    assert_eq!(refs, ["fork", "a1", "a2", "b1", "b2", "c1", "c2", "join"]);
}

/// A Zuora PUT of `quantity` to a usage id the mock does not have: a 404, which no retry
/// helps, so it fails its branch.
fn zuora_put_unknown(reference: &str, quantity: u32) -> Value {
    let mut task = zuora_put(reference, quantity);
    task["inputParameters"]["path"]["id"] = json!("8ad08ae29085a77b0190908bfd000000");
    task
}

/// The mock holds its reply to the first PUT to the known Zuora usage for ten minutes,
/// and answers the one to the unknown usage after a second: the branch whose task sent
/// the first is still running, its request received, when the other branch fails.
fn hold_the_known_usage(h: &crate::workflows::Harness) {
    h.mock.inject(Fault {
        path: "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb".into(),
        times: 1,
        delay_ms: 600_000,
        ..Fault::default()
    });
    h.mock.inject(Fault {
        path: "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfd000000".into(),
        times: 1,
        delay_ms: 1_000,
        ..Fault::default()
    });
}

/// The statuses of printed records, by reference.
fn statuses(tasks: &Value) -> Vec<(&str, &str)> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["ref"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect()
}

/// A branch of a fork: a PUT the mock holds (b1), then one that must never be sent (b2);
/// the other branch's PUT gets a 404.
fn a_fork_whose_first_branch_fails() -> Vec<Value> {
    vec![
        json!({ "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
          "forkTasks": [[zuora_put_unknown("a1", 11)], [zuora_put("b1", 21), zuora_put("b2", 22)]] }),
        json!({ "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a1", "b2"] }),
    ]
}

/// Conductor's `permissive`: a task that fails (out of retries, not optional) keeps its
/// status and the workflow goes on to its next task; the workflow then fails when it
/// would complete, naming the task (DeciderService's "Task … failed with status: …").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_permissive_task_lets_the_workflow_go_on_then_fails_it_at_the_end() {
    let h = harness().await;
    let mut first = zuora_put_unknown("a1", 11);
    first["permissive"] = json!(true);
    let definition = def(json!({
        "name": "permissive_then_more",
        "tasks": [first, zuora_put("b1", 21)],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(sent_quantities(&h), [json!(11), json!(21)]);
    let printed = result.to_json();
    assert_eq!(
        statuses(&printed["tasks"]),
        [("a1", "FAILED_WITH_TERMINAL_ERROR"), ("b1", "COMPLETED")]
    );
    assert_eq!(result.status, "FAILED");
    let a1 = printed["tasks"][0]["taskId"].as_str().unwrap();
    assert_eq!(
        result.reason.as_deref(),
        Some(
            format!(
                "Task {a1} failed with status: FAILED_WITH_TERMINAL_ERROR and reason: '{PUT_404}'"
            )
            .as_str()
        )
    );
}

/// The failure reason of [`zuora_put_unknown`]'s task `a1`.
const PUT_404: &str = "task a1 failed: 404 Not Found: INVALID_VALUE: The usage record 8ad08ae29085a77b0190908bfd000000 does not exist. Check the record id and the baseUrl.";

/// A JOIN on a failed permissive task fails, as Conductor's `Join` does once every task
/// it joins has ended: the other branch still runs to its end, the JOIN's output holds
/// the outputs up to the failed task, its reason is the task's, and the task after the
/// JOIN never starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_on_a_failed_permissive_task_fails_once_every_branch_ended() {
    let h = harness().await;
    let mut failing = zuora_put_unknown("a1", 11);
    failing["permissive"] = json!(true);
    let definition = def(json!({
        "name": "permissive_fork",
        "tasks": [
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
              "forkTasks": [[failing], [zuora_put("b1", 21), zuora_put("b2", 22)]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a1", "b2"] },
            zuora_put("after", 31),
        ],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    let mut sent = sent_quantities(&h);
    sent.sort_by_key(|q| q.as_u64());
    assert_eq!(sent, [json!(11), json!(21), json!(22)]);
    let printed = result.to_json();
    assert_eq!(
        statuses(&printed["tasks"]),
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("b1", "COMPLETED"),
            ("b2", "COMPLETED"),
            ("join", "FAILED"),
        ]
    );
    let join = &printed["tasks"][4];
    assert_eq!(
        join["output"],
        json!({ "a1": printed["tasks"][1]["output"] })
    );
    assert_eq!(result.status, "FAILED");
    assert_eq!(result.reason.as_deref(), Some(PUT_404));
}

/// How long a test waits for a run that must not wait on the held reply.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Run `definition` on `{}`, failing the test if the run waits out [`PATIENCE`] (for a
/// reply the mock holds ten minutes).
async fn run_within_patience(
    h: &crate::workflows::Harness,
    definition: &WorkflowDef,
) -> harness_workflow::WorkflowResult {
    let run = h
        .runner
        .run_with(definition, json!({}), RunOptions::fresh());
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the run waited for the canceled branch")
}

/// A task failing its branch fails the workflow at once, as Conductor's decider has it
/// (`DeciderService.retry` throws `TerminateWorkflowException` for a task out of retries
/// that is not optional), and the other branch's running task is canceled, with no wait
/// for its reply (held ten minutes by the mock): that branch's next PUT, the JOIN and the
/// task after it never start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_branch_fails_the_workflow_and_cancels_the_other_branches() {
    let h = harness().await;
    hold_the_known_usage(&h);
    let mut tasks = a_fork_whose_first_branch_fails();
    tasks.push(zuora_put("after", 3));
    let definition = def(json!({ "name": "one_branch_fails", "tasks": tasks }));
    let result = run_within_patience(&h, &definition).await;
    assert_eq!(result.status, "FAILED");
    let printed = result.to_json();
    assert_eq!(
        statuses(&printed["tasks"]),
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("b1", "CANCELED")
        ]
    );
    let mut sent = sent_quantities(&h);
    sent.sort_by_key(|q| q.as_u64());
    assert_eq!(
        sent,
        [json!(11), json!(21)],
        "a1 and b1 were sent, b2 and after never"
    );
    let reason = result.reason.as_deref().unwrap();
    assert!(reason.contains("a1"), "{reason}");
    assert_eq!(
        result.tasks[2].attempts[0].message.as_deref(),
        Some(format!(
            "canceled ({reason}) while running: its request may have been sent and applied; check the record before running it again"
        ))
        .as_deref()
    );
}

/// In a sub-workflow, a failed branch fails the sub-workflow at once: the other branch's
/// running task is canceled and not waited for (its reply is held ten minutes), and the
/// SUB_WORKFLOW, optional here, completes with errors, so the parent's next task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_branch_in_a_sub_workflow_stops_the_other_branches_without_waiting() {
    let h = harness().await;
    hold_the_known_usage(&h);
    let definition = def(json!({
        "name": "parent",
        "tasks": [
            { "name": "forked_sync", "taskReferenceName": "sub", "type": "SUB_WORKFLOW", "optional": true,
              "subWorkflowParam": { "name": "forked_sync", "workflowDefinition": {
                  "name": "forked_sync", "tasks": a_fork_whose_first_branch_fails(),
              } } },
            zuora_put("after", 3),
        ],
    }));
    let result = run_within_patience(&h, &definition).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let sub = &printed["tasks"][0];
    assert_eq!(sub["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(sub["subWorkflow"]["status"], "FAILED");
    assert_eq!(
        statuses(&sub["subWorkflow"]["tasks"]),
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("b1", "CANCELED")
        ]
    );
    assert_eq!(statuses(&printed["tasks"])[1], ("after", "COMPLETED"));
    let mut sent = sent_quantities(&h);
    let last = sent.pop();
    sent.sort_by_key(|q| q.as_u64());
    assert_eq!((sent, last), (vec![json!(11), json!(21)], Some(json!(3))));
}

/// A failed branch cancels a DO_WHILE running in the other branch, and a fork inside it:
/// each keeps its own record, the DO_WHILE `CANCELED` before its loop's tasks, the inner
/// fork `COMPLETED` (Conductor completes a fork when it schedules its branches) before
/// its branch's canceled PUT, held by the mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_branch_cancels_a_loop_and_a_fork_in_the_other_branch_keeping_their_records() {
    let h = harness().await;
    hold_the_known_usage(&h);
    let definition = def(json!({
        "name": "loop_beside_a_failure",
        "tasks": [
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
              "forkTasks": [
                  [zuora_put_unknown("a1", 11)],
                  [{ "name": "pages", "taskReferenceName": "pages", "type": "DO_WHILE",
                     "loopCondition": "false",
                     "loopOver": [
                         { "name": "inner", "taskReferenceName": "inner", "type": "FORK_JOIN",
                           "forkTasks": [[zuora_put("b1", 21)]] },
                         { "name": "inner_join", "taskReferenceName": "inner_join", "type": "JOIN", "joinOn": ["b1"] },
                     ] }],
              ] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a1", "pages"] },
        ],
    }));
    let result = run_within_patience(&h, &definition).await;
    assert_eq!(result.status, "FAILED");
    let printed = result.to_json();
    assert_eq!(
        statuses(&printed["tasks"]),
        [
            ("fork", "COMPLETED"),
            ("a1", "FAILED_WITH_TERMINAL_ERROR"),
            ("pages", "CANCELED"),
            ("inner__1", "COMPLETED"),
            ("b1__1", "CANCELED")
        ]
    );
}

/// A sub-workflow that fails starts its own `failureWorkflow`, as every Conductor workflow
/// does (`WorkflowExecutor.terminateWorkflow`), with Conductor's input; the failed
/// sub-workflow's output, and so its SUB_WORKFLOW task's, names it in
/// `conductor.failure_workflow`; it runs beside the parent (here after it, in the
/// result's `subWorkflowFailureWorkflows`), and the parent, whose SUB_WORKFLOW is
/// optional, completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sub_workflow_starts_its_own_failure_workflow() {
    let h = harness().await;
    let undo = json!({
        "name": "undo_correction",
        "tasks": [zuora_put("undo", 9)],
        "outputParameters": {
            "failedWorkflowId": "${workflow.input.workflowId}",
            "failureStatus": "${workflow.input.failureStatus}",
            "failureTaskId": "${workflow.input.failureTaskId}",
            "period": "${workflow.input.period}",
        },
    });
    let definitions = harness_workflow::Definitions::from_values(&[undo]).unwrap();
    let definition = def(json!({
        "name": "period_close",
        "tasks": [
            { "name": "correct_usage", "taskReferenceName": "correct", "type": "SUB_WORKFLOW", "optional": true,
              "inputParameters": { "period": "2026-11" },
              "subWorkflowParam": { "name": "correct_usage", "workflowDefinition": {
                  "name": "correct_usage", "failureWorkflow": "undo_correction",
                  "tasks": [zuora_put_unknown("fix", 5)],
              } } },
            zuora_put("after", 3),
        ],
    }));
    let options = RunOptions {
        definitions: std::sync::Arc::new(definitions),
        ..RunOptions::fresh()
    };
    let result = h.runner.run_with(&definition, json!({}), options).await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let correct = &printed["tasks"][0];
    assert_eq!(correct["status"], "COMPLETED_WITH_ERRORS");
    let sub = &correct["subWorkflow"];
    assert_eq!(sub["status"], "FAILED");
    let started = &printed["subWorkflowFailureWorkflows"];
    assert_eq!(started.as_array().map(Vec::len), Some(1), "{printed}");
    let undo = &started[0];
    assert_eq!(undo["workflow"], "undo_correction");
    assert_eq!(undo["status"], "COMPLETED");
    assert_eq!(
        sub["output"]["conductor.failure_workflow"],
        undo["workflowId"]
    );
    assert_eq!(
        correct["output"]["conductor.failure_workflow"],
        undo["workflowId"]
    );
    assert_eq!(
        undo["output"],
        json!({
            "failedWorkflowId": sub["workflowId"],
            "failureStatus": "FAILED",
            "failureTaskId": sub["tasks"][0]["taskId"],
            "period": "2026-11",
        })
    );
    assert_eq!(printed.get("failureWorkflow"), None);
    assert_eq!(sent_quantities(&h), [json!(5), json!(3), json!(9)]);
}

/// A task waiting out its retry delay holds no place, as a Conductor task in its retry
/// delay holds no worker: with one task at a time, the second branch's first task runs
/// while the first branch's first task waits to retry, and the retry, of the earlier
/// branch, goes before the second branch's next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_to_retry_gives_its_place_to_the_next_branch() {
    let mut h = harness().await;
    h.runner = h.runner.clone().with_width(1);
    h.mock.inject(Fault {
        path: "/zuora/".into(),
        times: 1,
        status: Some(503),
        ..Fault::default()
    });
    let definition = def(json!({
        "name": "retry_in_a_fork",
        "tasks": [
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
              "forkTasks": [[zuora_put("a1", 11), zuora_put("a2", 12)], [zuora_put("b1", 21), zuora_put("b2", 22)]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a2", "b2"] },
        ],
        "taskDefinitions": [{ "name": "zuora-update-usage", "retryCount": 1, "retryDelaySeconds": 5 }],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let sent: Vec<Value> = sent_quantities(&h);
    assert_eq!(
        sent,
        [json!(11), json!(21), json!(11), json!(12), json!(22)],
        "a1 (503), b1, a1 again, a2, b2"
    );
    let a1 = &result.tasks[1];
    assert_eq!((a1.reference.as_str(), a1.attempts.len()), ("a1", 2));
    assert_eq!(a1.attempts[0].wait_ms, Some(5_000));
    assert_eq!(a1.attempts[1].status, TaskStatus::Completed);
}

/// A task its definition's `concurrentExecLimit` holds back gives its place up while it
/// waits, as a Conductor task held SCHEDULED holds no worker: with two places, x1 and x2
/// (Zuora PUTs of one definition, limited to one at a time) take them; the first PUT
/// received has its reply held five seconds by the mock, the other, held back by the
/// limit, steps out, so the Rebilly POST of the third branch is received while that reply
/// is still held (without the step-out it would wait for the first PUT to end), and the
/// other PUT goes last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_held_by_its_definitions_limit_gives_its_place_to_the_next_branch() {
    let mut h = harness().await;
    h.runner = h.runner.clone().with_width(2);
    h.mock.inject(Fault {
        path: "/zuora/v1/object/usage/8ad08ae29085a77b0190908bfdd67abb".into(),
        times: 1,
        delay_ms: 5_000,
        ..Fault::default()
    });
    let definition = def(json!({
        "name": "limited_in_a_fork",
        "tasks": [
            { "name": "f", "taskReferenceName": "fork", "type": "FORK_JOIN",
              "forkTasks": [[zuora_put("x1", 1)], [zuora_put("x2", 2)], [crate::workflows::rebilly_task("y")]] },
            { "name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["x1", "x2", "y"] },
        ],
        "taskDefinitions": [{ "name": "zuora-update-usage", "concurrentExecLimit": 1 }],
    }));
    let runner = h.runner.clone();
    let run = tokio::spawn(async move {
        runner
            .run_with(&definition, json!({}), RunOptions::fresh())
            .await
    });
    let methods = |h: &crate::workflows::Harness| -> Vec<String> {
        h.mock.journal().iter().map(|r| r.method.clone()).collect()
    };
    // While x1's reply is held: the POST arrives beside it.
    let waited = std::time::Instant::now();
    while !methods(&h).contains(&"POST".to_string())
        && waited.elapsed() < std::time::Duration::from_millis(4_000)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut early = methods(&h);
    early.sort();
    assert_eq!(
        early,
        ["POST", "PUT"],
        "y was sent while the first PUT's reply was held"
    );
    let first = sent_quantities(&h).into_iter().find(|q| !q.is_null());
    let result = run.await.unwrap();
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let mut quantities = sent_quantities(&h);
    let last = quantities.pop();
    assert!(
        last.as_ref().is_some_and(|q| !q.is_null()) && last != first,
        "the other PUT went last: {first:?} then {last:?}"
    );
}

/// A sub-workflow is a workflow of its own, as in Conductor: its definition's
/// `timeoutSeconds` with `TIME_OUT_WF` counts from when it starts. Past it (a WAIT of
/// 60 s in a 10 s sub-workflow, on the runner's clock), it ends `TIMED_OUT` before its
/// next task starts, so its PUT is never sent; the SUB_WORKFLOW task, optional here,
/// completes with errors and the parent goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_workflow_times_out_on_its_own_timeout() {
    let h = harness().await;
    let definition = def(json!({
        "name": "parent",
        "tasks": [
            { "name": "slow_sync", "taskReferenceName": "sub", "type": "SUB_WORKFLOW", "optional": true,
              "subWorkflowParam": { "name": "slow_sync", "workflowDefinition": {
                  "name": "slow_sync", "timeoutSeconds": 10, "timeoutPolicy": "TIME_OUT_WF",
                  "tasks": [
                      { "name": "hold", "taskReferenceName": "hold", "type": "WAIT",
                        "inputParameters": { "duration": "60 seconds" } },
                      zuora_put("inside", 1),
                  ],
              } } },
            zuora_put("after", 2),
        ],
    }));
    let result = h
        .runner
        .run_with(&definition, json!({}), RunOptions::fresh())
        .await;
    assert_eq!(result.status, "COMPLETED", "{:?}", result.reason);
    let printed = result.to_json();
    let sub = &printed["tasks"][0];
    assert_eq!(
        (sub["ref"].as_str(), sub["status"].as_str()),
        (Some("sub"), Some("COMPLETED_WITH_ERRORS"))
    );
    let run = &sub["subWorkflow"];
    assert_eq!(run["status"], "TIMED_OUT");
    assert_eq!(
        run["reasonForIncompletion"],
        "Workflow timed out after 60 seconds. Timeout configured as 10 seconds. Timeout policy configured to TIME_OUT_WF"
    );
    let inner: Vec<(&str, &str)> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["ref"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inner,
        [("hold", "COMPLETED")],
        "nothing after the deadline starts"
    );
    let sent: Vec<Value> = sent_quantities(&h);
    assert_eq!(
        sent,
        [json!(2)],
        "only the parent's PUT after the sub-workflow"
    );
}

//! The user's own task components (`--tasks DIR`): loaded beside the shipped tasks,
//! run in the same sandbox, in `harness task` and in workflows. The component is the
//! example of docs/user-tasks.md, `tests/components/usage-total`.

use crate::workflows::{harness_cli, zuora_task};
use integration_tests::test_component;
use serde_json::{Value, json};

/// A directory holding the example component as `usage-total.wasm`.
fn tasks_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("harness-user-{label}-{}", std::process::id()));
    let tasks = dir.join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::write(
        tasks.join("usage-total.wasm"),
        test_component("usage-total"),
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_component_is_listed_described_and_run_as_a_task() {
    let dir = tasks_dir("task");
    let tasks = dir.join("tasks");
    let tasks = tasks.to_str().unwrap();
    let (code, out, err) = harness_cli(&["list", "--tasks", tasks]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("usage-total ") && l.ends_with(" idempotent")),
        "{out}"
    );
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "records": [{ "quantity": 1.5 }, { "quantity": 2.755 }], "decimals": 2 })
            .to_string(),
    )
    .unwrap();
    let (code, out, err) = harness_cli(&[
        "task",
        "usage-total",
        "--tasks",
        tasks,
        "--input",
        input.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["status"], "COMPLETED");
    assert_eq!(printed["output"], json!({ "total": 4.26, "count": 2 }));

    std::fs::write(
        &input,
        json!({ "records": [{ "quantity": 1 }, { "qty": 2 }] }).to_string(),
    )
    .unwrap();
    let (code, out, _) = harness_cli(&[
        "task",
        "usage-total",
        "--tasks",
        tasks,
        "--input",
        input.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert_eq!(
        printed["error"]["fields"],
        json!([{ "field": "records[1].quantity", "message": "required: a number" }])
    );

    // Without --tasks the task does not exist.
    let (code, _, err) =
        harness_cli(&["task", "usage-total", "--input", input.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown task `usage-total`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SIMPLE task named like the user's component runs it, and its output feeds the
/// next task as any worker's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_task_named_like_a_users_component_runs_it_in_a_workflow() {
    let dir = tasks_dir("workflow");
    let tasks = dir.join("tasks");
    let mut update = zuora_task("update");
    update["inputParameters"]["body"]["Quantity"] = json!("${total.output.total}");
    let definition = dir.join("wf.json");
    std::fs::write(
        &definition,
        json!({
            "name": "report_period_total",
            "tasks": [
                { "name": "usage-total", "taskReferenceName": "total",
                  "inputParameters": { "records": "${workflow.input.records}" } },
                update,
            ],
            "outputParameters": { "reported": "${total.output.total}", "success": "${update.output.response.body.Success}" },
        })
        .to_string(),
    )
    .unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        json!({ "records": [{ "quantity": 10 }, { "quantity": 2.5 }] }).to_string(),
    )
    .unwrap();
    let (definition, tasks) = (definition.to_str().unwrap(), tasks.to_str().unwrap());
    let (code, out, _) = harness_cli(&["validate", definition]).await;
    assert_eq!(code, 1, "without --tasks the SIMPLE task has no component");
    assert!(
        out.starts_with("$.tasks[0].name: no component `usage-total`"),
        "{out}"
    );
    let (code, out, _) = harness_cli(&["validate", definition, "--tasks", tasks]).await;
    assert_eq!((code, out), (0, format!("{definition}: valid\n")));
    let (code, out, err) = harness_cli(&[
        "run",
        definition,
        "--tasks",
        tasks,
        "--input",
        input.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result["output"],
        json!({ "reported": 12.5, "success": true })
    );
    assert_eq!(result["tasks"][0]["taskType"], "usage-total");
    assert_eq!(
        result["tasks"][0]["input"],
        json!({ "records": [{ "quantity": 10 }, { "quantity": 2.5 }] }),
        "the component refuses unknown keys: the host added no baseUrl"
    );
    assert_eq!(
        result["tasks"][1]["input"]["body"],
        json!({ "UOM": "Each", "Quantity": 12.5 })
    );

    // Two components of one name: refused, naming the file, before anything runs.
    std::fs::write(dir.join("tasks/copy.wasm"), test_component("usage-total")).unwrap();
    let (code, _, err) = harness_cli(&["validate", definition, "--tasks", tasks]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "usage-total.wasm: its task name `usage-total` is already taken by another task"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Portability, proven: the shipped components, as embedded in `harness`, run in a
//! second WASI 0.2 host (Node.js with `@bytecodealliance/jco` and
//! `@bytecodealliance/preview2-shim` from npm, in `tests/portability/`) against the
//! mock, and send the same requests and give the same outputs as under `harness` on the
//! example inputs. `scripts/test.sh` installs the npm packages (`npm ci`).

use harness_mock::{JournalEntry, MockServer, Vendor};
use harness_sandbox::BUILTIN_COMPONENTS;
use integration_tests::run_with_base;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn portability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("portability")
}

/// What varies between two runs against a reset mock: the `date` header and the record
/// times the mock stamps, at one-second resolution.
fn stable(mut output: Value) -> Value {
    if let Some(response) = output.get_mut("response") {
        if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
            headers.remove("date");
        }
        for pointer in [
            "/body/retrieveResponse/Updated",
            "/body/createdTime",
            "/body/updatedTime",
        ] {
            if let Some(stamped) = response.pointer_mut(pointer) {
                *stamped = Value::Null;
            }
        }
    }
    output
}

/// A request as both hosts must send it (headers in name order): Node adds
/// `connection: keep-alive`, the only header left out.
fn request(entry: &JournalEntry) -> Value {
    let mut headers: Vec<(String, String)> = entry
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("connection"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect();
    headers.sort();
    serde_json::json!({
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "headers": headers,
        "body": String::from_utf8_lossy(&entry.decoded_body()),
    })
}

/// Run `wasm` under Node on `input` (a file), with `base_url`: the one line it prints.
fn run_under_node(wasm: &Path, input: &Path, base_url: &str) -> Value {
    let dir = portability_dir();
    let output = Command::new("node")
        .arg(dir.join("run-task.mjs"))
        .args(["--base-url", base_url])
        .arg(wasm)
        .arg(input)
        .current_dir(&dir)
        .output()
        .expect("running node (Node.js 20 or later must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node run-task.mjs {}: {stdout}{}",
        wasm.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_component_sends_and_answers_the_same_under_node_with_jco() {
    let dir = portability_dir();
    assert!(
        dir.join("node_modules/.bin/jco").exists(),
        "jco is not installed in {}: run scripts/test.sh, or `npm ci` there",
        dir.display()
    );
    let scratch = std::env::temp_dir().join(format!("harness-portability-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tasks");
    let mock = MockServer::start().await;
    assert_eq!(BUILTIN_COMPONENTS.len(), 7);
    for (task, wasm) in BUILTIN_COMPONENTS {
        let wasm_file = scratch.join(format!("{task}.wasm"));
        std::fs::write(&wasm_file, wasm).unwrap();
        let input_file = examples.join(format!("{task}.json"));
        let input: Value =
            serde_json::from_str(&std::fs::read_to_string(&input_file).unwrap()).unwrap();
        let base_url = match Vendor::for_task(task) {
            Some(vendor) => mock.base_url(vendor),
            None => mock.uri(),
        };

        mock.reset();
        let outcome = run_with_base(task, input, Some(&base_url)).await;
        assert_eq!(outcome.to_json()["status"], "COMPLETED", "{task}");
        let harness_requests: Vec<Value> = mock.journal().iter().map(request).collect();

        mock.reset();
        let (file, base) = (wasm_file.clone(), base_url.clone());
        let node = tokio::task::spawn_blocking(move || run_under_node(&file, &input_file, &base))
            .await
            .unwrap();
        let node_requests: Vec<Value> = mock.journal().iter().map(request).collect();

        assert_eq!(node_requests, harness_requests, "{task}: the requests sent");
        // Every task sends one request, but the jq transform and the scripts: none.
        let requests = usize::from(!["json-jq-transform", "javascript"].contains(task));
        assert_eq!(harness_requests.len(), requests, "{task}");
        let Some(node_output) = node.get("ok") else {
            panic!("{task}: under Node the task failed: {node}");
        };
        assert_eq!(
            stable(node_output.clone()),
            stable(outcome.output.clone()),
            "{task}: the output"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

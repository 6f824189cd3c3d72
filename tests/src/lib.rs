//! Fixtures shared by the integration tests: one sandbox (engine and compiled
//! components) for the whole test binary, and a way to run a task against a mock.

use harness_mock::{MockServer, Vendor};
use harness_runner::{self as runner, TaskOutcome};
use harness_sandbox::{Limits, Sandbox};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::OnceCell;

include!(concat!(env!("OUT_DIR"), "/gen.rs"));

/// The bytes of the test-only component `name` (`snoop`, `hostile`, `usage-total`).
pub fn test_component(name: &str) -> &'static [u8] {
    TEST_COMPONENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
        .unwrap_or_else(|| panic!("no test component {name}"))
}

static SANDBOX: OnceCell<Arc<Sandbox>> = OnceCell::const_new();

/// The shared sandbox with every shipped component compiled once.
pub async fn sandbox() -> &'static Sandbox {
    shared_sandbox_ref().await
}

/// The same shared sandbox, as the `Arc` a `WorkflowRunner` takes.
pub async fn shared_sandbox() -> Arc<Sandbox> {
    Arc::clone(shared_sandbox_ref().await)
}

async fn shared_sandbox_ref() -> &'static Arc<Sandbox> {
    SANDBOX
        .get_or_init(|| async {
            Arc::new(
                Sandbox::builtin(Limits::default())
                    .await
                    .expect("loading the built-in components"),
            )
        })
        .await
}

/// The mock vendor a task talks to.
pub fn vendor_of(task: &str) -> Vendor {
    Vendor::for_task(task).unwrap_or_else(|| panic!("no vendor for task {task}"))
}

/// Run an endpoint task against `mock` (its `baseUrl` set to the mock's vendor base).
pub async fn run(mock: &MockServer, task: &str, input: Value) -> TaskOutcome {
    let base = mock.base_url(vendor_of(task));
    run_with_base(task, input, Some(&base)).await
}

/// Run a task with an explicit base URL (or none: the input's own `baseUrl`/`uri`).
pub async fn run_with_base(task: &str, input: Value, base_url: Option<&str>) -> TaskOutcome {
    let prepared = runner::prepare(task, input, base_url);
    runner::run_task(sandbox().await, task, &prepared.input, prepared.policy)
        .await
        .expect("the sandbox runs the task")
}

/// The printed JSON of an outcome.
pub fn json(outcome: &TaskOutcome) -> Value {
    outcome.to_json()
}

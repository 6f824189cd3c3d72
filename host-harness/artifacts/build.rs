//! Builds the shipped task components (the `plugin/` crates) for `wasm32-wasip2` and
//! embeds them in this crate (`include_bytes!` in the generated `gen.rs`), so a `harness`
//! binary carries its tasks wherever it is copied or installed.

use anyhow::Result;

/// (task name, crate name) of every shipped task component.
const TASKS: [(&str, &str); 7] = [
    (
        "billingplatform-update-usage-identifier",
        "billingplatform-update-usage-identifier",
    ),
    ("zuora-update-usage", "zuora-update-usage"),
    (
        "elevate-patch-usage-product-inventory",
        "elevate-patch-usage-product-inventory",
    ),
    ("rebilly-create-usage", "rebilly-create-usage"),
    ("http", "http"),
    ("json-jq-transform", "json-jq-transform"),
    ("javascript", "javascript"),
];

fn main() -> Result<()> {
    // This crate is host-harness/artifacts.
    let root = harness_guest_build::workspace_root(2)?;
    harness_guest_build::watch(&root, &["wit", "plugin", "Cargo.lock", "Cargo.toml"])?;
    let crates: Vec<&str> = TASKS.iter().map(|(_, krate)| *krate).collect();
    let built = harness_guest_build::build(&root, &crates)?;
    let components: Vec<(&str, std::path::PathBuf)> =
        TASKS.iter().map(|(task, _)| *task).zip(built).collect();
    harness_guest_build::write_embedded(
        "BUILTIN_COMPONENTS",
        "Every shipped task component: (task name, the component's bytes).",
        &components,
    )
}

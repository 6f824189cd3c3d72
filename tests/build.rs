//! Builds the test-only components (`tests/components/`) for `wasm32-wasip2` and embeds
//! them in the test fixtures; they are never part of a shipped binary.

use anyhow::Result;

/// (name, crate name) of the components built only for the tests: two hostile probes
/// and the example of a user's own task (docs/user-tasks.md).
const TEST_COMPONENTS: [(&str, &str); 3] = [
    ("snoop", "test-snoop"),
    ("hostile", "test-hostile"),
    ("usage-total", "example-usage-total"),
];

fn main() -> Result<()> {
    // This crate is tests/.
    let root = harness_guest_build::workspace_root(1)?;
    harness_guest_build::watch(
        &root,
        &["wit", "tests/components", "Cargo.lock", "Cargo.toml"],
    )?;
    let crates: Vec<&str> = TEST_COMPONENTS.iter().map(|(_, krate)| *krate).collect();
    let built = harness_guest_build::build(&root, &crates)?;
    let components: Vec<(&str, std::path::PathBuf)> = TEST_COMPONENTS
        .iter()
        .map(|(name, _)| *name)
        .zip(built)
        .collect();
    harness_guest_build::write_embedded(
        "TEST_COMPONENTS",
        "Components built only for the tests, never shipped: (name, the component's bytes).",
        &components,
    )
}

//! Builds the task components (the `plugin/` crates) for `wasm32-wasip2` with an inner
//! cargo, into a target dir of its own under `OUT_DIR`, and writes their paths into
//! `gen.rs`, so that `cargo run` / `cargo test` at the root need no other build step.

use anyhow::{Context, Result, bail};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (task name, crate name) of every shipped task component.
const TASKS: [(&str, &str); 5] = [
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
];

/// (name, crate name) of components built only for the tests, never shipped.
const TEST_COMPONENTS: [(&str, &str); 2] = [("snoop", "test-snoop"), ("hostile", "test-hostile")];

const TARGET: &str = "wasm32-wasip2";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .context("host-harness sits in the workspace root")?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    for watched in [
        "wit",
        "plugin",
        "tests/components",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        watch(&root.join(watched))?;
    }
    println!("cargo:rerun-if-changed=build.rs");

    ensure_target()?;

    let target_dir = out_dir.join("guest-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--target", TARGET, "--profile", "guest"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's flags and wrappers (clippy, coverage) are not for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CARGO_BUILD_TARGET");
    for (_, krate) in TASKS.iter().chain(&TEST_COMPONENTS) {
        build.args(["-p", krate]);
    }
    let status = build
        .status()
        .context("running the inner cargo build of the task components")?;
    if !status.success() {
        bail!("building the task components for {TARGET} failed (see the errors above)");
    }

    let mut generated = String::from(
        "/// Every shipped task component: (task name, path of the built `.wasm`).\n\
         pub const BUILTIN_COMPONENTS: &[(&str, &str)] = &[\n",
    );
    for (task, krate) in TASKS {
        let wasm = target_dir
            .join(TARGET)
            .join("guest")
            .join(format!("{}.wasm", krate.replace('-', "_")));
        if !wasm.exists() {
            bail!("expected component {} was not built", wasm.display());
        }
        generated.push_str(&format!(
            "    ({task:?}, {:?}),\n",
            wasm.display().to_string()
        ));
    }
    generated.push_str("];\n");
    generated.push_str(
        "/// Components built only for the tests (never shipped): (name, path of the `.wasm`).\n\
         pub const TEST_COMPONENTS: &[(&str, &str)] = &[\n",
    );
    for (name, krate) in TEST_COMPONENTS {
        let wasm = target_dir
            .join(TARGET)
            .join("guest")
            .join(format!("{}.wasm", krate.replace('-', "_")));
        generated.push_str(&format!(
            "    ({name:?}, {:?}),\n",
            wasm.display().to_string()
        ));
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("gen.rs"), generated)?;
    Ok(())
}

/// Make sure the standard library for wasm32-wasip2 is installed: install it with rustup
/// when it is missing, or fail with the exact command to run.
fn ensure_target() -> Result<()> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output()?;
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout)?.trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        add.args(["--toolchain", &toolchain]);
    }
    match add.status() {
        Ok(status) if status.success() => Ok(()),
        _ => bail!(
            "the Rust target {TARGET} is not installed and `rustup target add {TARGET}` failed; \
             install it (run `rustup target add {TARGET}`) and build again"
        ),
    }
}

/// Cargo scans a watched directory recursively for changes.
fn watch(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("{} is missing", path.display());
    }
    println!("cargo:rerun-if-changed={}", path.display());
    Ok(())
}

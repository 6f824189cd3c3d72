//! Builds guest crates (the `plugin/` tasks, the test components) for `wasm32-wasip2`
//! from a build script, with an inner cargo in a target dir of its own, so that
//! `cargo run` / `cargo test` at the root need no other build step.
//!
//! Every build script that uses it shares one inner target dir beside the outer
//! profile's (`target/<profile>/guest-target`), so the guests' dependencies compile once
//! however many crates embed guests; cargo's own lock orders concurrent inner builds.

use anyhow::{Context, Result, bail};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root, from a build script of a crate `depth` directories below it.
pub fn workspace_root(depth: usize) -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    manifest_dir
        .ancestors()
        .nth(depth)
        .map(Path::to_path_buf)
        .context("the crate sits inside the workspace")
}

/// Tell cargo to rerun the build script when `paths` (relative to `root`) change, and
/// when the build script does.
pub fn watch(root: &Path, paths: &[&str]) -> Result<()> {
    for watched in paths {
        let path = root.join(watched);
        if !path.exists() {
            bail!("{} is missing", path.display());
        }
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}

/// Build `crates` (package names) of the workspace at `root` for [`TARGET`] with the
/// `guest` profile, and return the path of each one's `.wasm`, in order.
pub fn build(root: &Path, crates: &[&str]) -> Result<Vec<PathBuf>> {
    ensure_target()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .map(|profile| profile.join("guest-target"))
        .unwrap_or_else(|| out_dir.join("guest-target"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
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
    for krate in crates {
        command.args(["-p", krate]);
    }
    let status = command
        .status()
        .context("running the inner cargo build of the guest components")?;
    if !status.success() {
        bail!("building the guest components for {TARGET} failed (see the errors above)");
    }
    crates
        .iter()
        .map(|krate| {
            let wasm = target_dir
                .join(TARGET)
                .join("guest")
                .join(format!("{}.wasm", krate.replace('-', "_")));
            if wasm.exists() {
                Ok(wasm)
            } else {
                bail!("expected component {} was not built", wasm.display())
            }
        })
        .collect()
}

/// Write `gen.rs` into `OUT_DIR`: a `pub const {name}: &[(&str, &[u8])]` of
/// (component name, its bytes embedded with `include_bytes!`).
pub fn write_embedded(name: &str, doc: &str, components: &[(&str, PathBuf)]) -> Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut generated = format!("/// {doc}\npub const {name}: &[(&str, &[u8])] = &[\n");
    for (component, wasm) in components {
        generated.push_str(&format!(
            "    ({component:?}, include_bytes!({:?})),\n",
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

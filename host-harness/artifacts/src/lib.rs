//! The shipped task components, embedded in the binary: built by this crate's build
//! script from the `plugin/` crates and included with `include_bytes!`, so a `harness`
//! copied to another machine or installed with `cargo install` carries every task and
//! reads nothing from the build tree. Test-only components live in the tests crate.

include!(concat!(env!("OUT_DIR"), "/gen.rs"));

/// The embedded component of `task`, if it is a shipped task.
pub fn component(task: &str) -> Option<&'static [u8]> {
    BUILTIN_COMPONENTS
        .iter()
        .find(|(name, _)| *name == task)
        .map(|(_, wasm)| *wasm)
}

/// The names of the shipped tasks, in a fixed order.
pub fn task_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_COMPONENTS.iter().map(|(name, _)| *name)
}

//! The host harness: runs the usage-billing WebAssembly task components sandboxed in
//! wasmtime, and serves a stateful mock of the four vendor APIs.
//!
//! Layers, top to bottom: `cli` (the `harness` binary), [`runner`] (one task execution:
//! input → run → classified output), [`sandbox`] (engine, components, stores, limits,
//! outgoing-HTTP policy), [`mock`] (the vendor mock server).

pub mod bench;
pub mod cli;
pub mod connections;
pub mod mock;
pub mod policy;
pub mod pool;
pub mod runner;
pub mod sandbox;
pub mod soak;
pub mod temporal;
pub mod workflow;

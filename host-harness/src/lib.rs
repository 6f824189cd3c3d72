//! The `harness` command: arguments, printing, exit codes and wiring of the layer crates
//! (see `docs/architecture.md`). It lives in a library so that tests drive it in-process
//! with captured output.

pub mod cli;

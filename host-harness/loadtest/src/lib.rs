//! Load tests of the harness itself: `harness bench` (a task's cost against a native
//! pooled HTTP baseline, in one process) and `harness soak` (many workflows against the
//! in-process mock with injected faults, every task accounted in the mock's records).

pub mod bench;
pub mod soak;

//! Conductor-shaped workflow definitions: their types ([`definition`]), expressions
//! ([`expression`]), validation ([`validate`]), the one interpreter of their control flow
//! ([`interpreter`]) and the local executor ([`WorkflowRunner`]: the sandbox with retries
//! that know billing, so a call that may have been applied is never re-sent blindly).
//! The Temporal `run-definition` workflow drives the same interpreter with activities.

pub mod definition;
pub mod definitions;
pub mod expression;
pub mod interpreter;
mod local;
pub mod mocks;
mod record;
pub mod validate;

pub use definitions::{Definitions, DefinitionsError};
pub use interpreter::{RunOptions, strip_permissive};
pub use local::{
    BaseUrlFor, Clock, MAX_WAIT_MS, ManualClock, Progress, SystemClock, WorkflowRunner,
    prepare_in_workflow,
};
pub use mocks::Mocks;
pub use record::{
    Attempt, Ending, Paced, SubWorkflowRun, TaskRecord, WorkflowResult, WorkflowStatus,
};

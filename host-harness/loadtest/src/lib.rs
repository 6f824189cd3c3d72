//! Load tests of the harness itself: `harness bench` (a task's cost against a native
//! pooled HTTP baseline, in one process), `harness soak` (many workflows against the
//! in-process mock with injected faults, every task accounted in the mock's records) and
//! `harness soak --scenario paced` (one vendor's tasks against its enforced rate limit).

pub mod bench;
pub mod paced;
pub mod soak;

/// Why a benchmark or soak could not run to its report (a failed check, the sandbox,
/// writing the report). A soak that ran and found missing or duplicated records is not
/// an error: its report says so.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The sandbox could not be set up or run a task.
    #[error(transparent)]
    Sandbox(#[from] harness_sandbox::SandboxError),
    /// Writing the report failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON document (a definition, a report) could not be read or written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A task of the load test stopped (panicked or was cancelled).
    #[error("a load-test task stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
    /// The native baseline's HTTP exchange failed.
    #[error("the native baseline request failed: {0}")]
    Baseline(String),
    /// A step failed; the message says which and why.
    #[error("{0}")]
    Failed(String),
}

impl From<http::Error> for LoadtestError {
    fn from(e: http::Error) -> Self {
        LoadtestError::Baseline(e.to_string())
    }
}

impl From<hyper_util::client::legacy::Error> for LoadtestError {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        LoadtestError::Baseline(format!("{e:?}"))
    }
}

impl From<hyper::Error> for LoadtestError {
    fn from(e: hyper::Error) -> Self {
        LoadtestError::Baseline(e.to_string())
    }
}

/// The result of a load-test step.
pub(crate) type Result<T> = std::result::Result<T, LoadtestError>;

/// Name the step that failed, as `anyhow`'s `context` would.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| LoadtestError::Failed(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| LoadtestError::Failed(what.to_string()))
    }
}

/// Fail the step with a message unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::LoadtestError::Failed(format!($($message)+)));
        }
    };
}
pub(crate) use ensure;

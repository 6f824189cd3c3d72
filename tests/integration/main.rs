//! Integration tests: every task against the vendor mock, the sandbox policy, the
//! components themselves, and the `harness` command line. One module per feature.

mod billingplatform;
mod cli;
mod components;
mod conductor;
mod connections;
mod elevate;
mod faults;
mod gzip;
mod host_sends;
mod http_task;
mod limits;
mod pacing;
mod performance;
mod policy;
mod portability;
mod properties;
mod rate_limits;
mod rebilly;
mod soak;
mod system_tasks;
mod user_tasks;
mod workflows;
mod zuora;

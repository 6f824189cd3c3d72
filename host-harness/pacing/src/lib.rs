//! Pacing requests to a vendor.
//!
//! - [`Rate`]: a rate as `harness.toml` and the CLI write it (`"15/s"`, `"3000/10m"`).
//! - [`Pacer`]: the limits of one connection, shared by every task of a run or a worker
//!   that uses it: a rate (requests leave evenly spaced, never in bursts), at most
//!   `max_in_flight` requests out at once, and what the vendor says: a 429 pauses the
//!   whole connection until the vendor's time, and a remaining quota of 0 holds requests
//!   back before the 429 comes ([`Pacer::observe`]).
//! - [`TaskDefLimiter`]: Conductor's task-definition `rateLimitPerFrequency` /
//!   `rateLimitFrequencyInSeconds` (a sliding window, as Conductor's Redis DAO counts it)
//!   and `concurrentExecLimit`.
//! - [`Bucket`]: a token bucket that reports what is left (the mock's vendor limits).
//! - [`PaceClock`]: the clock all of them read and sleep on: [`SystemClock`] for real
//!   runs, [`ManualClock`] for tests (sleeping advances it at once, so tests never sleep).

mod bucket;
mod clock;
mod pacer;
mod rate;
mod signals;
mod taskdef;

pub use bucket::{Bucket, Take};
pub use clock::{ManualClock, PaceClock, SystemClock};
pub use pacer::{Admission, ConnectionLimits, Pacer, Refused, WaitReason};
pub use rate::{Rate, RateError};
pub use signals::Signals;
pub use taskdef::{StartWindow, TaskDefLimiter, TaskDefLimits};

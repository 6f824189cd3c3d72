//! The clock pacing reads and sleeps on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock: monotonic time for limits, wall time for vendors' epoch timestamps, and
/// sleeping.
pub trait PaceClock: Send + Sync + fmt::Debug {
    /// Monotonic time since an arbitrary start.
    fn now(&self) -> Duration;
    /// Milliseconds since the Unix epoch (to read `X-RateLimit-Retry-After: 1713187500`
    /// and HTTP dates).
    fn unix_ms(&self) -> u64;
    /// Sleep for `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl PaceClock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: it moves only when told to, or when something sleeps on it (the
/// sleep returns at once, the clock advanced by its duration).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Duration>,
    unix_ms_at_start: u64,
}

impl ManualClock {
    /// A clock at 0 whose wall time starts at `unix_ms_at_start`.
    pub fn new(unix_ms_at_start: u64) -> ManualClock {
        ManualClock {
            now: Mutex::new(Duration::ZERO),
            unix_ms_at_start,
        }
    }

    /// Move the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl PaceClock for ManualClock {
    fn now(&self) -> Duration {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unix_ms(&self) -> u64 {
        self.unix_ms_at_start
            .saturating_add(u64::try_from(self.now().as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

/// A [`PaceClock`] as governor's clock (its instants are the clock's durations).
#[derive(Debug, Clone)]
pub(crate) struct GovernorClock(pub(crate) std::sync::Arc<dyn PaceClock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.now()
    }
}

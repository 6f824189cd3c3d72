//! A token bucket on governor's GCRA, reporting what is left.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::{GovernorClock, PaceClock};
use crate::rate::Rate;

type Limiter = RateLimiter<NotKeyed, InMemoryState, GovernorClock, StateInformationMiddleware>;

/// A token bucket: `burst` tokens at most, one more every [`Rate::interval`]. It starts
/// full.
pub struct Bucket {
    limiter: Limiter,
    clock: GovernorClock,
    rate: Rate,
    burst: NonZeroU32,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

/// What taking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A token was taken; this many are left.
    Taken {
        /// Tokens left.
        remaining: u32,
    },
    /// None left: the next comes after `wait`.
    Empty {
        /// Until the next token.
        wait: Duration,
    },
}

impl Bucket {
    /// A full bucket of `burst` tokens refilling at `rate`.
    pub fn new(rate: Rate, burst: NonZeroU32, clock: Arc<dyn PaceClock>) -> Bucket {
        let clock = GovernorClock(clock);
        // The interval is at least 1 ms / u32::MAX, never zero: Rate::per is at least 1 ms.
        let quota = Quota::with_period(rate.interval().max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        Bucket {
            limiter,
            clock,
            rate,
            burst,
        }
    }

    /// Take one token if there is one.
    pub fn take(&self) -> Take {
        match self.limiter.check() {
            Ok(state) => Take::Taken {
                remaining: state.remaining_burst_capacity(),
            },
            Err(not_until) => Take::Empty {
                wait: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// The rate it refills at.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// How many tokens it holds when full.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// How long until a bucket with `remaining` tokens is full again.
    pub fn until_full(&self, remaining: u32) -> Duration {
        self.rate.interval() * self.burst.get().saturating_sub(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_bucket_gives_its_burst_then_one_token_per_interval() {
        let clock = Arc::new(ManualClock::new(0));
        let bucket = Bucket::new(
            "4/s".parse().unwrap(),
            NonZeroU32::new(4).unwrap(),
            clock.clone(),
        );
        for left in [3, 2, 1, 0] {
            assert_eq!(bucket.take(), Take::Taken { remaining: left });
        }
        assert_eq!(
            bucket.take(),
            Take::Empty {
                wait: Duration::from_millis(250)
            }
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(
            bucket.take(),
            Take::Empty {
                wait: Duration::from_millis(150)
            }
        );
        clock.advance(Duration::from_millis(150));
        assert_eq!(bucket.take(), Take::Taken { remaining: 0 });
        clock.advance(Duration::from_secs(5));
        assert_eq!(bucket.take(), Take::Taken { remaining: 3 });
        assert_eq!(bucket.until_full(3), Duration::from_millis(250));
    }
}

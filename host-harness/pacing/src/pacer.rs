//! One connection's limits, shared by every request that uses it.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::bucket::{Bucket, Take};
use crate::clock::PaceClock;
use crate::rate::Rate;
use crate::signals::Signals;

/// The longest pause a vendor's answer can put on a connection: 24 hours.
pub const MAX_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a connection pauses after a 429 that names no wait, or after a remaining
/// quota of 0 with no reset time: 1 second, the shortest window vendors use.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// How long a connection keeps the rate a 429 taught it (see [`Pacer::observe`]) before
/// it goes back to its configured rate: 60 seconds.
pub const SLOWED_FOR: Duration = Duration::from_secs(60);

/// How far back a 429 looks at the answers the vendor accepted: 10 seconds.
pub const LEARN_WINDOW: Duration = Duration::from_secs(10);

/// A 429 never slows a connection below 1 request a second (unless its configured rate
/// is slower): a 429 after a quiet spell must not crawl the next batch.
const SLOWEST_TAUGHT: Duration = Duration::from_secs(1);

/// A connection's configured limits (`[connections.X]` `rate`, `max_in_flight`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// At most this many requests per period, evenly spaced.
    pub rate: Option<Rate>,
    /// At most this many requests out at once.
    pub max_in_flight: Option<NonZeroU32>,
}

/// Why a request waited (or would have to) before it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Every request slot was taken.
    InFlight {
        /// `connection `zuora``, `task definition `x``.
        limiter: String,
        /// The limit.
        max: u32,
    },
    /// The rate allowed no request yet.
    Rate {
        /// `connection `zuora``.
        limiter: String,
        /// The rate.
        rate: Rate,
    },
    /// A 429 slowed the connection to the rate the vendor had accepted.
    Slowed {
        /// `connection `zuora``.
        limiter: String,
        /// The rate it was slowed to.
        rate: Rate,
    },
    /// The vendor's answer paused the connection.
    Paused {
        /// `connection `zuora``.
        limiter: String,
        /// What the vendor said, e.g. `429 with Retry-After: 2`.
        why: String,
    },
    /// Conductor's `rateLimitPerFrequency` allowed no start yet.
    Frequency {
        /// `task definition `x``.
        limiter: String,
        /// `rateLimitPerFrequency`.
        count: u32,
        /// `rateLimitFrequencyInSeconds`.
        seconds: u64,
    },
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::InFlight { limiter, max } => {
                write!(
                    f,
                    "{limiter}: {max} requests in flight (max_in_flight {max})"
                )
            }
            WaitReason::Rate { limiter, rate } => write!(f, "{limiter}: rate {rate}"),
            WaitReason::Slowed { limiter, rate } => {
                write!(f, "{limiter}: slowed to {rate} after the vendor's 429")
            }
            WaitReason::Paused { limiter, why } => write!(f, "{limiter} paused: {why}"),
            WaitReason::Frequency {
                limiter,
                count,
                seconds,
            } => write!(
                f,
                "{limiter}: rateLimitPerFrequency {count} per {seconds} s"
            ),
        }
    }
}

/// A request admitted: it may leave now. Dropping it (when the response head is in, or
/// the exchange failed) frees its in-flight slot.
#[derive(Debug)]
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    in_flight: Option<Arc<AtomicUsize>>,
    /// How long it waited.
    pub waited: Duration,
    /// Why, in order, each reason once.
    pub reasons: Vec<WaitReason>,
}

impl Admission {
    pub(crate) fn new(
        slot: Option<OwnedSemaphorePermit>,
        in_flight: Option<Arc<AtomicUsize>>,
        waited: Duration,
        reasons: Vec<WaitReason>,
    ) -> Admission {
        if let Some(count) = &in_flight {
            count.fetch_add(1, Ordering::SeqCst);
        }
        Admission {
            _slot: slot,
            in_flight,
            waited,
            reasons,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(count) = &self.in_flight {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A request that would have had to wait longer than it may: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// How long until it could leave.
    pub wait: Duration,
    /// Why.
    pub reason: WaitReason,
}

/// What the vendor's answers put on the connection.
#[derive(Debug, Default)]
struct Adaptive {
    /// No request leaves before this, and why.
    paused: Option<(Duration, String)>,
    /// Requests the vendor has left for us until `budget_until`, as far as its last
    /// answer said, less the requests that were out when it came.
    budget: Option<(u64, Duration, String)>,
    /// The rate the last 429 taught, until when.
    slowed: Option<(Bucket, Duration)>,
    /// When the answers other than 429 since `since` (the end of the last pause, or the
    /// start) came, the last [`LEARN_WINDOW`] of them.
    accepted: std::collections::VecDeque<Duration>,
    /// Where the count of accepted answers starts.
    since: Duration,
}

/// One decision for a request about to leave.
enum Decision {
    Go,
    Wait { until: Duration, reason: WaitReason },
}

/// The limits of one connection, shared by every request that uses it: its rate, its
/// requests in flight, and the pauses its vendor asks for.
pub struct Pacer {
    label: String,
    limits: ConnectionLimits,
    clock: Arc<dyn PaceClock>,
    rate: Option<Bucket>,
    slots: Option<Arc<Semaphore>>,
    in_flight: Arc<AtomicUsize>,
    adaptive: Mutex<Adaptive>,
    rate_limited: AtomicU64,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("label", &self.label)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// The pacer of connection `name`.
    pub fn new(name: &str, limits: ConnectionLimits, clock: Arc<dyn PaceClock>) -> Pacer {
        Pacer {
            label: format!("connection `{name}`"),
            limits,
            // Burst 1: requests leave evenly spaced, so that no window of the vendor's,
            // however aligned, sees more than the rate.
            rate: limits
                .rate
                .map(|rate| Bucket::new(rate, NonZeroU32::MIN, clock.clone())),
            slots: limits
                .max_in_flight
                .map(|max| Arc::new(Semaphore::new(max.get() as usize))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            adaptive: Mutex::new(Adaptive {
                since: clock.now(),
                ..Adaptive::default()
            }),
            rate_limited: AtomicU64::new(0),
            clock,
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Requests admitted whose exchange has not ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// 429s the connection has received.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::SeqCst)
    }

    /// Wait until a request may leave: a free in-flight slot, then no pause, quota left
    /// and the rate's next turn. A request that would wait past `max_wait` in all (not
    /// counting the wait for a slot, which other requests' time limits bound) is refused
    /// and nothing is sent: the caller retries it later without holding anything.
    pub async fn admit(&self, max_wait: Duration) -> Result<Admission, Refused> {
        let start = self.clock.now();
        let mut reasons = Vec::new();
        let slot = match &self.slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    reasons.push(WaitReason::InFlight {
                        limiter: self.label.clone(),
                        max: self.limits.max_in_flight.map_or(0, NonZeroU32::get),
                    });
                    // The semaphore is never closed.
                    slots.clone().acquire_owned().await.ok()
                }
            },
        };
        let slot_taken = self.clock.now();
        loop {
            match self.decide() {
                Decision::Go => break,
                Decision::Wait { until, reason } => {
                    let now = self.clock.now();
                    if until.saturating_sub(slot_taken) > max_wait {
                        return Err(Refused {
                            wait: until.saturating_sub(now),
                            reason,
                        });
                    }
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                    self.clock.sleep(until.saturating_sub(now)).await;
                }
            }
        }
        let waited = self.clock.now().saturating_sub(start);
        Ok(Admission::new(
            slot,
            Some(self.in_flight.clone()),
            waited,
            reasons,
        ))
    }

    fn decide(&self) -> Decision {
        let now = self.clock.now();
        let mut adaptive = self.adaptive.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((until, why)) = &adaptive.paused {
            if now < *until {
                return Decision::Wait {
                    until: *until,
                    reason: WaitReason::Paused {
                        limiter: self.label.clone(),
                        why: why.clone(),
                    },
                };
            }
            adaptive.paused = None;
        }
        if let Some((left, until, why)) = &adaptive.budget {
            if now >= *until {
                adaptive.budget = None;
            } else if *left == 0 {
                return Decision::Wait {
                    until: *until,
                    reason: WaitReason::Paused {
                        limiter: self.label.clone(),
                        why: why.clone(),
                    },
                };
            }
        }
        if let Some((_, until)) = &adaptive.slowed
            && now >= *until
        {
            adaptive.slowed = None;
        }
        if let Some((bucket, _)) = &adaptive.slowed
            && let Take::Empty { wait } = bucket.take()
        {
            return Decision::Wait {
                until: now + wait,
                reason: WaitReason::Slowed {
                    limiter: self.label.clone(),
                    rate: bucket.rate(),
                },
            };
        }
        if let Some(bucket) = &self.rate
            && let Take::Empty { wait } = bucket.take()
        {
            return Decision::Wait {
                until: now + wait,
                reason: WaitReason::Rate {
                    limiter: self.label.clone(),
                    rate: bucket.rate(),
                },
            };
        }
        if let Some((left, _, _)) = adaptive.budget.as_mut() {
            *left = left.saturating_sub(1);
        }
        Decision::Go
    }

    /// Take in what a response of the connection says: a 429 pauses every request of the
    /// connection until the vendor's time (`Retry-After`, else `X-RateLimit-Retry-After`,
    /// else `RateLimit-Reset`, else [`DEFAULT_PAUSE`]); a remaining quota holds requests
    /// back once it is used up, until the window resets. Call it while the request's
    /// [`Admission`] is still held.
    ///
    /// A 429 also teaches the connection a rate, for vendors that give no remaining
    /// quota to slow down by: the answers it accepted since the last pause ended (the
    /// last [`LEARN_WINDOW`] of them), over the time from the first of them to the end of
    /// this pause, never slower than 1 request a second. For [`SLOWED_FOR`] the connection
    /// sends no faster than that (evenly spaced), so that after the pause it does not
    /// run into the vendor's limit again at once.
    pub fn observe<'a>(&self, status: u16, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let signals = Signals::read(headers, self.clock.unix_ms());
        let now = self.clock.now();
        let mut adaptive = self.adaptive.lock().unwrap_or_else(PoisonError::into_inner);
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::SeqCst);
            let (wait, why) = match (&signals.retry_after, &signals.reset) {
                (Some((wait, header)), _) | (None, Some((wait, header))) => {
                    (*wait, format!("the vendor answered 429 with {header}"))
                }
                (None, None) => (
                    DEFAULT_PAUSE,
                    format!(
                        "the vendor answered 429 without a wait; pausing {} ms",
                        DEFAULT_PAUSE.as_millis()
                    ),
                ),
            };
            let until = now + wait.min(MAX_PAUSE);
            // A 429 to a request sent before the pause it belongs to teaches nothing new.
            if now >= adaptive.since {
                prune(&mut adaptive.accepted, now);
                let accepted = u32::try_from(adaptive.accepted.len())
                    .ok()
                    .and_then(NonZeroU32::new);
                let first = adaptive.accepted.front().copied().unwrap_or(now);
                let over = until.saturating_sub(first.max(adaptive.since));
                if let Some(count) = accepted
                    && !over.is_zero()
                {
                    let taught = Rate::new(count, over);
                    let rate = if taught.interval() > SLOWEST_TAUGHT {
                        Rate::new(NonZeroU32::MIN, SLOWEST_TAUGHT)
                    } else {
                        taught
                    };
                    let configured_slower = self
                        .limits
                        .rate
                        .is_some_and(|configured| configured.interval() >= rate.interval());
                    if !configured_slower {
                        let bucket = Bucket::new(rate, NonZeroU32::MIN, self.clock.clone());
                        adaptive.slowed = Some((bucket, until + SLOWED_FOR));
                    }
                }
                adaptive.accepted.clear();
                adaptive.since = until;
            }
            if adaptive.paused.as_ref().is_none_or(|(old, _)| *old < until) {
                adaptive.paused = Some((until, why));
            }
            return;
        }
        adaptive.accepted.push_back(now);
        prune(&mut adaptive.accepted, now);
        if let Some((left, header)) = signals.remaining {
            // The requests still out may or may not have been counted in `left`: count
            // them as spent.
            let others = self.in_flight().saturating_sub(1) as u64;
            let (reset, why) = match &signals.reset {
                Some((reset, reset_header)) => (
                    *reset,
                    format!("the vendor's quota is used up ({header}, {reset_header})"),
                ),
                None => (
                    DEFAULT_PAUSE,
                    format!(
                        "the vendor's quota is used up ({header}); waiting {} ms",
                        DEFAULT_PAUSE.as_millis()
                    ),
                ),
            };
            let reset = reset.clamp(Duration::from_millis(1), MAX_PAUSE);
            adaptive.budget = Some((left.saturating_sub(others), now + reset, why));
        }
    }
}

/// Forget the accepted answers older than [`LEARN_WINDOW`] before `now`.
fn prune(accepted: &mut std::collections::VecDeque<Duration>, now: Duration) {
    while accepted
        .front()
        .is_some_and(|t| now.saturating_sub(*t) > LEARN_WINDOW)
    {
        accepted.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn pacer(rate: Option<&str>, max_in_flight: u32) -> (Arc<ManualClock>, Pacer) {
        let clock = Arc::new(ManualClock::new(1_713_187_500_000));
        let limits = ConnectionLimits {
            rate: rate.map(|r| r.parse().unwrap()),
            max_in_flight: NonZeroU32::new(max_in_flight),
        };
        (clock.clone(), Pacer::new("zuora", limits, clock))
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn requests_leave_evenly_spaced_at_the_rate() {
        let (clock, pacer) = pacer(Some("4/s"), 0);
        let mut left_at = Vec::new();
        for _ in 0..5 {
            let admission = pacer.admit(LONG).await.unwrap();
            left_at.push(clock.now().as_millis());
            drop(admission);
        }
        assert_eq!(left_at, [0, 250, 500, 750, 1000]);
        let admission = pacer.admit(LONG).await.unwrap();
        assert_eq!(admission.waited, Duration::from_millis(250));
        assert_eq!(
            admission
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["connection `zuora`: rate 4/s"]
        );
    }

    #[tokio::test]
    async fn a_429_pauses_the_whole_connection_for_the_vendors_retry_after() {
        let (clock, pacer) = pacer(None, 0);
        let first = pacer.admit(LONG).await.unwrap();
        pacer.observe(429, [("Retry-After", "2"), ("RateLimit-Reset", "600")]);
        drop(first);
        assert_eq!(pacer.rate_limited(), 1);
        let next = pacer.admit(LONG).await.unwrap();
        assert_eq!(clock.now(), Duration::from_secs(2));
        assert_eq!(next.waited, Duration::from_secs(2));
        assert_eq!(
            next.reasons[0].to_string(),
            "connection `zuora` paused: the vendor answered 429 with Retry-After: 2"
        );
        // The pause is over: the request after it does not wait.
        drop(next);
        assert_eq!(pacer.admit(LONG).await.unwrap().waited, Duration::ZERO);
    }

    #[tokio::test]
    async fn rebillys_epoch_retry_after_pauses_until_that_second() {
        let (clock, pacer) = pacer(None, 0);
        pacer.observe(
            429,
            [
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Retry-After", "1713187505"),
            ],
        );
        let admission = pacer.admit(LONG).await.unwrap();
        assert_eq!(clock.now(), Duration::from_secs(5));
        assert_eq!(
            admission.reasons[0].to_string(),
            "connection `zuora` paused: the vendor answered 429 with X-RateLimit-Retry-After: 1713187505"
        );
    }

    #[tokio::test]
    async fn a_429_slows_the_connection_to_the_rate_the_vendor_accepted_for_a_minute() {
        let (clock, pacer) = pacer(Some("100/s"), 0);
        for _ in 0..3 {
            let admission = pacer.admit(LONG).await.unwrap();
            pacer.observe(200, []);
            drop(admission);
        }
        // 3 accepted in the 20 ms since the start, then a 429 asking for 980 ms more:
        // the vendor took 3 requests per second.
        let refused = pacer.admit(LONG).await.unwrap();
        assert_eq!(clock.now(), Duration::from_millis(30));
        pacer.observe(429, [("Retry-After", "1")]);
        drop(refused);
        let mut left_at = Vec::new();
        let mut reasons = Vec::new();
        for _ in 0..4 {
            let admission = pacer.admit(LONG).await.unwrap();
            left_at.push(clock.now().as_millis());
            pacer.observe(200, []);
            reasons.extend(admission.reasons.iter().map(ToString::to_string));
        }
        assert_eq!(left_at, [1030, 1373, 1716, 2059]);
        assert_eq!(
            reasons,
            [
                "connection `zuora` paused: the vendor answered 429 with Retry-After: 1",
                "connection `zuora`: slowed to 3/1030ms after the vendor's 429",
                "connection `zuora`: slowed to 3/1030ms after the vendor's 429",
                "connection `zuora`: slowed to 3/1030ms after the vendor's 429",
            ]
        );
        // A minute after the pause, the configured rate again.
        clock.advance(SLOWED_FOR);
        let first = pacer.admit(LONG).await.unwrap();
        let second = pacer.admit(LONG).await.unwrap();
        assert_eq!(
            (first.waited, second.waited),
            (Duration::ZERO, Duration::from_millis(10))
        );
    }

    #[tokio::test]
    async fn a_429_after_a_quiet_spell_learns_from_the_recent_answers_only() {
        let (clock, pacer) = pacer(None, 0);
        pacer.observe(200, []);
        clock.advance(Duration::from_secs(3600));
        // An hour later, 10 answers 10 ms apart, then a 429 asking for 1 s: the vendor
        // took 10 in the 1.1 s from the first of them to the end of the pause.
        for _ in 0..10 {
            pacer.observe(200, []);
            clock.advance(Duration::from_millis(10));
        }
        pacer.observe(429, [("Retry-After", "1")]);
        let first = pacer.admit(LONG).await.unwrap();
        let second = pacer.admit(LONG).await.unwrap();
        assert_eq!(
            second.reasons.last().map(ToString::to_string).as_deref(),
            Some("connection `zuora`: slowed to 10/1100ms after the vendor's 429")
        );
        assert_eq!(second.waited, Duration::from_millis(110));
        drop((first, second));
        // A 429 that saw one answer in its window slows to 1 a second, no slower.
        clock.advance(SLOWED_FOR + Duration::from_secs(20));
        pacer.observe(200, []);
        clock.advance(Duration::from_secs(5));
        pacer.observe(429, [("Retry-After", "1")]);
        pacer.admit(LONG).await.unwrap();
        let next = pacer.admit(LONG).await.unwrap();
        assert_eq!(next.waited, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_429_without_a_wait_pauses_one_second() {
        let (clock, pacer) = pacer(None, 0);
        pacer.observe(429, []);
        pacer.admit(LONG).await.unwrap();
        assert_eq!(clock.now(), DEFAULT_PAUSE);
    }

    #[tokio::test]
    async fn a_used_up_quota_holds_requests_back_before_the_429_comes() {
        let (clock, pacer) = pacer(None, 0);
        let first = pacer.admit(LONG).await.unwrap();
        let second = pacer.admit(LONG).await.unwrap();
        // The vendor had 2 left when it answered the first; the second is still out.
        pacer.observe(
            200,
            [("RateLimit-Remaining", "2"), ("RateLimit-Reset", "3")],
        );
        drop(first);
        let third = pacer.admit(LONG).await.unwrap();
        assert_eq!(third.waited, Duration::ZERO);
        drop((second, third));
        let fourth = pacer.admit(LONG).await.unwrap();
        assert_eq!(clock.now(), Duration::from_secs(3));
        assert_eq!(
            fourth.reasons[0].to_string(),
            "connection `zuora` paused: the vendor's quota is used up (RateLimit-Remaining: 2, RateLimit-Reset: 3)"
        );
        // After the reset, requests go until the vendor says otherwise.
        drop(fourth);
        assert_eq!(pacer.admit(LONG).await.unwrap().waited, Duration::ZERO);
    }

    #[tokio::test]
    async fn a_wait_longer_than_allowed_is_refused_and_sends_nothing() {
        let (clock, pacer) = pacer(None, 0);
        pacer.observe(429, [("Retry-After", "600")]);
        let refused = pacer.admit(Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(refused.wait, Duration::from_secs(600));
        assert_eq!(clock.now(), Duration::ZERO);
        assert_eq!(pacer.in_flight(), 0);
    }

    #[tokio::test]
    async fn max_in_flight_holds_the_next_request_until_one_ends() {
        let (_clock, pacer) = pacer(None, 1);
        let pacer = Arc::new(pacer);
        let first = pacer.admit(LONG).await.unwrap();
        assert_eq!(pacer.in_flight(), 1);
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move { pacer.admit(LONG).await.unwrap().reasons.clone() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let reasons = waiting.await.unwrap();
        assert_eq!(
            reasons[0].to_string(),
            "connection `zuora`: 1 requests in flight (max_in_flight 1)"
        );
        assert_eq!(pacer.in_flight(), 0);
    }
}

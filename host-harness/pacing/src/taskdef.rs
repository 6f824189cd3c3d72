//! Conductor's task-definition limits.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::clock::PaceClock;
use crate::pacer::{Admission, WaitReason};

/// A task definition's `rateLimitPerFrequency`, `rateLimitFrequencyInSeconds` and
/// `concurrentExecLimit` (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskDefLimits {
    /// At most this many starts per window (0: none).
    pub rate_limit_per_frequency: u32,
    /// The window, seconds (Conductor's default 1).
    pub rate_limit_frequency_in_seconds: u64,
    /// At most this many in progress (0: none).
    pub concurrent_exec_limit: u32,
}

impl TaskDefLimits {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        (self.rate_limit_per_frequency > 0 && self.rate_limit_frequency_in_seconds > 0)
            || self.concurrent_exec_limit > 0
    }
}

/// Conductor's `rateLimitPerFrequency` window: at most `count` starts within any
/// `window` (a sliding window, as `RedisRateLimitingDAO.exceedsRateLimitPerFrequency`
/// counts). Times are whatever clock the caller keeps (the pacing clock, or workflow
/// time on Temporal).
#[derive(Debug, Clone)]
pub struct StartWindow {
    count: usize,
    window: Duration,
    starts: VecDeque<Duration>,
}

impl StartWindow {
    /// At most `count` starts per `window`.
    pub fn new(count: u32, window: Duration) -> StartWindow {
        StartWindow {
            count: count as usize,
            window,
            starts: VecDeque::new(),
        }
    }

    /// Record a start at `now` if the window has room for it, else say how long until it
    /// has.
    pub fn try_start(&mut self, now: Duration) -> Result<(), Duration> {
        while self.starts.front().is_some_and(|t| *t + self.window <= now) {
            self.starts.pop_front();
        }
        if self.starts.len() < self.count {
            self.starts.push_back(now);
            return Ok(());
        }
        Err(self
            .starts
            .front()
            .map_or(Duration::ZERO, |oldest| *oldest + self.window - now))
    }
}

/// The limits of one task definition, across every task of a run that uses it, as
/// Conductor applies them: a task waits (stays `SCHEDULED`) until fewer than
/// `concurrentExecLimit` are in progress, and until fewer than `rateLimitPerFrequency`
/// started within the last `rateLimitFrequencyInSeconds` (a sliding window, as
/// `RedisRateLimitingDAO.exceedsRateLimitPerFrequency` counts).
pub struct TaskDefLimiter {
    label: String,
    limits: TaskDefLimits,
    clock: Arc<dyn PaceClock>,
    starts: Mutex<StartWindow>,
    slots: Option<Arc<Semaphore>>,
}

impl fmt::Debug for TaskDefLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDefLimiter")
            .field("label", &self.label)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TaskDefLimiter {
    /// The limiter of task definition `name`.
    pub fn new(name: &str, limits: TaskDefLimits, clock: Arc<dyn PaceClock>) -> TaskDefLimiter {
        TaskDefLimiter {
            label: format!("task definition `{name}`"),
            limits,
            clock,
            starts: Mutex::new(StartWindow::new(
                limits.rate_limit_per_frequency,
                Duration::from_secs(limits.rate_limit_frequency_in_seconds),
            )),
            slots: (limits.concurrent_exec_limit > 0)
                .then(|| Arc::new(Semaphore::new(limits.concurrent_exec_limit as usize))),
        }
    }

    /// Wait until the task may start; the admission is held while it is in progress.
    pub async fn admit(&self) -> Admission {
        let start = self.clock.now();
        let mut reasons = Vec::new();
        let slot = match &self.slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    reasons.push(WaitReason::InFlight {
                        limiter: self.label.clone(),
                        max: self.limits.concurrent_exec_limit,
                    });
                    slots.clone().acquire_owned().await.ok()
                }
            },
        };
        let (count, seconds) = (
            self.limits.rate_limit_per_frequency,
            self.limits.rate_limit_frequency_in_seconds,
        );
        if count > 0 && seconds > 0 {
            loop {
                let now = self.clock.now();
                let tried = self
                    .starts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .try_start(now);
                let Err(wait) = tried else { break };
                let reason = WaitReason::Frequency {
                    limiter: self.label.clone(),
                    count,
                    seconds,
                };
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
                self.clock.sleep(wait).await;
            }
        }
        let waited = self.clock.now().saturating_sub(start);
        Admission::new(slot, None, waited, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn rate_limit_per_frequency_counts_starts_in_a_sliding_window() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = TaskDefLimiter::new(
            "report_usage",
            TaskDefLimits {
                rate_limit_per_frequency: 2,
                rate_limit_frequency_in_seconds: 10,
                concurrent_exec_limit: 0,
            },
            clock.clone(),
        );
        let mut started_at = Vec::new();
        for _ in 0..5 {
            let admission = limiter.admit().await;
            started_at.push(clock.now().as_secs());
            drop(admission);
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(started_at, [0, 1, 10, 11, 20]);
        assert!(limiter.admit().await.reasons.is_empty());
        let admission = limiter.admit().await;
        assert_eq!(clock.now(), Duration::from_secs(30));
        assert_eq!(
            admission.reasons[0].to_string(),
            "task definition `report_usage`: rateLimitPerFrequency 2 per 10 s"
        );
    }

    #[tokio::test]
    async fn concurrent_exec_limit_holds_a_task_until_one_ends() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = Arc::new(TaskDefLimiter::new(
            "report_usage",
            TaskDefLimits {
                concurrent_exec_limit: 1,
                ..TaskDefLimits::default()
            },
            clock,
        ));
        let first = limiter.admit().await;
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.admit().await.reasons.clone() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(
            waiting.await.unwrap()[0].to_string(),
            "task definition `report_usage`: 1 requests in flight (max_in_flight 1)"
        );
    }
}

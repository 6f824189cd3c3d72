//! What a vendor's response says about its rate limit.

use std::time::{Duration, UNIX_EPOCH};

/// A number at or above this is an epoch timestamp in seconds, below it a number of
/// seconds to wait (September 2001: no vendor asks for a wait that long).
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;

/// The rate-limit headers of one response, read as the vendors write them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// How long the vendor asks to wait, and the header that said so: `Retry-After`
    /// (seconds or an HTTP date, RFC 9110 10.2.3; Zuora, BillingPlatform, Elevate) or
    /// Rebilly's `X-RateLimit-Retry-After` (an epoch timestamp).
    pub retry_after: Option<(Duration, String)>,
    /// Requests left in the vendor's window: `RateLimit-Remaining` (Zuora) or
    /// `X-RateLimit-Remaining` (Rebilly).
    pub remaining: Option<(u64, String)>,
    /// When the window starts again: `RateLimit-Reset` (Zuora: seconds) or
    /// `X-RateLimit-Reset` (seconds or an epoch timestamp).
    pub reset: Option<(Duration, String)>,
}

impl Signals {
    /// Read the headers of a response; `unix_ms` is the time now, for timestamps.
    pub fn read<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        unix_ms: u64,
    ) -> Signals {
        let mut signals = Signals::default();
        for (name, value) in headers {
            let value = value.trim();
            let shown = || format!("{name}: {value}");
            match name.to_ascii_lowercase().as_str() {
                "retry-after" => {
                    if let Some(wait) = retry_after(value, unix_ms) {
                        // Retry-After is the wait, whatever else the response says.
                        signals.retry_after = Some((wait, shown()));
                    }
                }
                "x-ratelimit-retry-after" if signals.retry_after.is_none() => {
                    if let Some(wait) = seconds_or_epoch(value, unix_ms) {
                        signals.retry_after = Some((wait, shown()));
                    }
                }
                "ratelimit-remaining" | "x-ratelimit-remaining" => {
                    if let Some(left) = first_number(value) {
                        signals.remaining = Some((left, shown()));
                    }
                }
                "ratelimit-reset" | "x-ratelimit-reset" => {
                    if let Some(wait) =
                        first_number(value).and_then(|n| seconds_or_epoch(&n.to_string(), unix_ms))
                    {
                        signals.reset = Some((wait, shown()));
                    }
                }
                _ => {}
            }
        }
        signals
    }
}

/// The first whole number of a header value such as `0` or `2250000, 50000;w=60`.
fn first_number(value: &str) -> Option<u64> {
    value
        .split([',', ';'])
        .next()
        .and_then(|first| first.trim().parse().ok())
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(value: &str, unix_ms: u64) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(Duration::from_millis(at_ms.saturating_sub(unix_ms)))
}

/// Seconds to wait, or an epoch timestamp in seconds to wait for.
fn seconds_or_epoch(value: &str, unix_ms: u64) -> Option<Duration> {
    let number: u64 = value.parse().ok()?;
    if number >= EPOCH_SECONDS_FROM {
        Some(Duration::from_millis(
            number.saturating_mul(1000).saturating_sub(unix_ms),
        ))
    } else {
        Some(Duration::from_secs(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-04-15T13:25:00Z, the epoch of Rebilly's example.
    const NOW_MS: u64 = 1_713_187_500_000;

    #[test]
    fn zuoras_retry_after_is_the_wait_not_its_ratelimit_reset() {
        let signals = Signals::read(
            [
                ("RateLimit-Limit", "2250000, 50000;w=60"),
                ("RateLimit-Remaining", "0"),
                ("RateLimit-Reset", "600"),
                ("Retry-After", "2"),
            ],
            NOW_MS,
        );
        assert_eq!(
            signals.retry_after,
            Some((Duration::from_secs(2), "Retry-After: 2".into()))
        );
        assert_eq!(
            signals.remaining,
            Some((0, "RateLimit-Remaining: 0".into()))
        );
        assert_eq!(
            signals.reset,
            Some((Duration::from_secs(600), "RateLimit-Reset: 600".into()))
        );
    }

    #[test]
    fn rebillys_retry_after_is_an_epoch_timestamp() {
        let signals = Signals::read(
            [
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-retry-after", "1713187503"),
            ],
            NOW_MS,
        );
        assert_eq!(
            signals.retry_after,
            Some((
                Duration::from_secs(3),
                "x-ratelimit-retry-after: 1713187503".into()
            ))
        );
        // A timestamp already past asks for no wait.
        let past = Signals::read([("X-RateLimit-Retry-After", "1713187400")], NOW_MS);
        assert_eq!(past.retry_after.unwrap().0, Duration::ZERO);
    }

    #[test]
    fn retry_after_may_be_an_http_date() {
        let signals = Signals::read([("Retry-After", "Mon, 15 Apr 2024 13:25:30 GMT")], NOW_MS);
        assert_eq!(signals.retry_after.unwrap().0, Duration::from_secs(30));
        let garbled = Signals::read([("Retry-After", "soon")], NOW_MS);
        assert_eq!(garbled.retry_after, None);
    }
}

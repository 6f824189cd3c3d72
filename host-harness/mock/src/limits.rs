//! The vendors' rate limits as the mock enforces them (`harness mock --rate`,
//! `PUT /__admin/limits`), and the latency it adds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use harness_pacing::{Bucket, PaceClock, Rate, SystemClock, Take};

use super::Vendor;

/// Without a limit set, what Zuora's and Rebilly's headers show as their limit (none is
/// enforced, and the remaining count stays at it).
pub(super) fn nominal_limit(vendor: Vendor) -> u32 {
    match vendor {
        Vendor::Zuora => 1000,
        Vendor::Rebilly => 3000,
        Vendor::BillingPlatform | Vendor::Elevate => 0,
    }
}

/// Zuora's `RateLimit-Reset` without a limit set, seconds.
const NOMINAL_RESET_SECONDS: u64 = 60;

/// Where a vendor request stands against its vendor's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quota {
    /// Requests per window (the `RateLimit-Limit` / `X-RateLimit-Limit` value).
    pub(super) limit: u32,
    /// Requests left.
    pub(super) remaining: u32,
    /// Whole seconds until the window is whole again (`RateLimit-Reset`); for a refused
    /// request, until the next one would be let through (`Retry-After`).
    pub(super) reset_seconds: u64,
    /// Whether the request was refused.
    pub(super) over: bool,
}

/// Each vendor's limit (a token bucket holding one window's requests, refilling evenly),
/// and the latency added to every vendor request.
pub(super) struct Limits {
    clock: Arc<dyn PaceClock>,
    buckets: BTreeMap<&'static str, Bucket>,
    latency: Duration,
    refused: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::on(Arc::new(SystemClock::new()))
    }
}

impl Limits {
    /// No limits, no latency, on `clock`.
    pub(super) fn on(clock: Arc<dyn PaceClock>) -> Limits {
        Limits {
            clock,
            buckets: BTreeMap::new(),
            latency: Duration::ZERO,
            refused: 0,
        }
    }

    /// Limit `vendor` to `rate` (`None`: no limit). The bucket starts full.
    pub(super) fn set(&mut self, vendor: Vendor, rate: Option<Rate>) {
        match rate {
            Some(rate) => {
                let bucket = Bucket::new(rate, rate.count, self.clock.clone());
                self.buckets.insert(vendor.name(), bucket);
            }
            None => {
                self.buckets.remove(vendor.name());
            }
        }
    }

    /// The limit of `vendor`.
    pub(super) fn rate(&self, vendor: Vendor) -> Option<Rate> {
        self.buckets.get(vendor.name()).map(Bucket::rate)
    }

    /// The added latency.
    pub(super) fn latency(&self) -> Duration {
        self.latency
    }

    /// Set the added latency.
    pub(super) fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Requests refused with a 429 for their vendor's limit so far.
    pub(super) fn refused(&self) -> u64 {
        self.refused
    }

    /// Count one request of `vendor` against its limit.
    pub(super) fn take(&mut self, vendor: Vendor) -> Quota {
        let Some(bucket) = self.buckets.get(vendor.name()) else {
            return Quota {
                limit: nominal_limit(vendor),
                remaining: nominal_limit(vendor),
                reset_seconds: NOMINAL_RESET_SECONDS,
                over: false,
            };
        };
        let limit = bucket.burst().get();
        match bucket.take() {
            Take::Taken { remaining } => Quota {
                limit,
                remaining,
                reset_seconds: whole_seconds(bucket.until_full(remaining)),
                over: false,
            },
            Take::Empty { wait } => {
                self.refused += 1;
                Quota {
                    limit,
                    remaining: 0,
                    reset_seconds: whole_seconds(wait).max(1),
                    over: true,
                }
            }
        }
    }

    /// `{"rates": {"zuora": "50/s", …}, "latencyMs": 0}`.
    pub(super) fn to_json(&self) -> serde_json::Value {
        let rates: serde_json::Map<String, serde_json::Value> = self
            .buckets
            .iter()
            .map(|(vendor, bucket)| ((*vendor).to_string(), bucket.rate().to_string().into()))
            .collect();
        serde_json::json!({
            "rates": rates,
            "latencyMs": u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// A duration in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// `VENDOR=RATE` as `harness mock --rate` takes it (`zuora=50/s`).
pub fn parse_vendor_rate(text: &str) -> Result<(Vendor, Rate), String> {
    let (vendor, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write VENDOR=RATE, e.g. zuora=50/s"))?;
    let vendor = Vendor::parse(vendor.trim()).ok_or_else(|| {
        format!("`{vendor}` is not a vendor (billingplatform, zuora, elevate, rebilly)")
    })?;
    let rate = rate.trim().parse::<Rate>().map_err(|e| e.to_string())?;
    Ok((vendor, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_pacing::ManualClock;

    #[test]
    fn a_limited_vendor_lets_a_window_through_then_refuses_until_the_next_request_is_due() {
        let clock = Arc::new(ManualClock::new(0));
        let mut limits = Limits::on(clock.clone());
        let rate: Rate = "4/2s".parse().unwrap();
        limits.set(Vendor::Zuora, Some(rate));
        let remaining: Vec<u32> = (0..4)
            .map(|_| limits.take(Vendor::Zuora).remaining)
            .collect();
        assert_eq!(remaining, [3, 2, 1, 0]);
        assert_eq!(
            limits.take(Vendor::Zuora),
            Quota {
                limit: 4,
                remaining: 0,
                reset_seconds: 1,
                over: true
            }
        );
        assert_eq!(limits.refused(), 1);
        clock.advance(Duration::from_millis(500));
        let quota = limits.take(Vendor::Zuora);
        assert_eq!(
            (quota.over, quota.remaining, quota.reset_seconds),
            (false, 0, 2)
        );
        // Other vendors are not limited, and say so.
        let rebilly = limits.take(Vendor::Rebilly);
        assert_eq!(
            (rebilly.limit, rebilly.remaining, rebilly.over),
            (3000, 3000, false)
        );
        assert_eq!(
            limits.to_json()["rates"],
            serde_json::json!({"zuora": "4/2s"})
        );
    }

    #[test]
    fn vendor_rates_name_the_vendor_and_the_rate() {
        assert_eq!(
            parse_vendor_rate("zuora=50/s").unwrap(),
            (Vendor::Zuora, "50/s".parse().unwrap())
        );
        assert_eq!(
            parse_vendor_rate("stripe=5/s").unwrap_err(),
            "`stripe` is not a vendor (billingplatform, zuora, elevate, rebilly)"
        );
        assert_eq!(
            parse_vendor_rate("zuora").unwrap_err(),
            "`zuora`: write VENDOR=RATE, e.g. zuora=50/s"
        );
        assert!(
            parse_vendor_rate("zuora=fast")
                .unwrap_err()
                .contains("is not a rate")
        );
    }
}

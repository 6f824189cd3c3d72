//! Everything the mock remembers: the journal, queued faults, and each vendor's records.

use std::collections::VecDeque;

use serde_json::Value;

use super::{Fault, JournalEntry, Vendor, billingplatform, elevate, rebilly, zuora};

/// The mock's whole state, behind one mutex.
#[derive(Debug)]
pub(super) struct MockState {
    /// Vendor requests received, in order.
    pub(super) journal: Vec<JournalEntry>,
    /// Faults waiting for matching requests.
    pub(super) faults: FaultQueue,
    /// BillingPlatform usage identifiers.
    pub(super) billingplatform: billingplatform::UsageIdentifiers,
    /// Zuora usage records and response counters.
    pub(super) zuora: zuora::ZuoraState,
    /// Elevate usage product inventories.
    pub(super) elevate: elevate::Inventories,
    /// Rebilly subscriptions, usages and counters.
    pub(super) rebilly: rebilly::RebillyState,
}

impl MockState {
    /// The state with seeded records, empty journal, no faults.
    pub(super) fn seeded() -> MockState {
        MockState {
            journal: Vec::new(),
            faults: FaultQueue::default(),
            billingplatform: billingplatform::UsageIdentifiers::seeded(),
            zuora: zuora::ZuoraState::seeded(),
            elevate: elevate::Inventories::seeded(),
            rebilly: rebilly::RebillyState::seeded(),
        }
    }

    /// Back to [`MockState::seeded`], keeping the fault seed (and restarting its sequence).
    pub(super) fn reset(&mut self) {
        let seed = self.faults.dice.seed;
        *self = MockState::seeded();
        self.set_fault_seed(seed);
    }

    /// Seeds (and restarts) the random sequence `probability` faults draw from.
    pub(super) fn set_fault_seed(&mut self, seed: u64) {
        self.faults.dice = FaultDice::seeded(seed);
    }

    /// Stores `record` as record `id` of `vendor` (not Rebilly: its usages are created
    /// with `POST /usages`).
    pub(super) fn put_record(
        &mut self,
        vendor: Vendor,
        id: &str,
        record: Value,
    ) -> Result<(), String> {
        match vendor {
            Vendor::BillingPlatform => self.billingplatform.put(id, record),
            Vendor::Zuora => self.zuora.put(id, record),
            Vendor::Elevate => self.elevate.put(id, record),
            Vendor::Rebilly => {
                Err("Rebilly records cannot be stored: create usages with POST /usages".to_owned())
            }
        }
    }

    /// The current stored record `id` of `vendor`.
    pub(super) fn record(&self, vendor: Vendor, id: &str) -> Option<Value> {
        match vendor {
            Vendor::BillingPlatform => self.billingplatform.record(id),
            Vendor::Zuora => self.zuora.record(id),
            Vendor::Elevate => self.elevate.record(id),
            Vendor::Rebilly => self.rebilly.record(id),
        }
    }
}

/// Queued faults, each with how many more times it applies (`None`: no limit), and the
/// random sequence `probability` faults draw from.
#[derive(Debug, Default)]
pub(super) struct FaultQueue {
    /// In injection order.
    pending: VecDeque<(Fault, Option<u32>)>,
    /// Decides whether a `probability` fault is drawn.
    dice: FaultDice,
    /// Faults given to requests so far (every kind, drawn or not by probability).
    taken: u64,
}

impl FaultQueue {
    /// Queues a fault: `times` 0 counts as 1, except for a `probability` fault, where it
    /// means no limit.
    pub(super) fn push(&mut self, fault: Fault) {
        let times = match (fault.probability, fault.times) {
            (Some(_), 0) => None,
            (_, times) => Some(times.max(1)),
        };
        self.pending.push_back((fault, times));
    }

    /// Faults given to requests so far.
    pub(super) fn taken(&self) -> u64 {
        self.taken
    }

    /// Drops every queued fault (the random sequence goes on).
    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Takes one use of the first fault matching the request, in injection order: same
    /// method (or any) and a path prefix of `path`, and for a `probability` fault a
    /// successful draw (a failed draw moves on to the next matching fault). A used-up
    /// fault leaves the queue.
    pub(super) fn take_matching(&mut self, method: &str, path: &str) -> Option<Fault> {
        let FaultQueue {
            pending,
            dice,
            taken,
        } = self;
        let index = pending.iter().position(|(fault, _)| {
            let matches = fault
                .method
                .as_deref()
                .is_none_or(|fault_method| fault_method.eq_ignore_ascii_case(method))
                && path.starts_with(&fault.path);
            matches
                && fault
                    .probability
                    .is_none_or(|probability| dice.draw(probability))
        })?;
        let (fault, remaining) = pending.get_mut(index)?;
        let given = fault.clone();
        if let Some(remaining) = remaining {
            *remaining -= 1;
            if *remaining == 0 {
                pending.remove(index);
            }
        }
        *taken += 1;
        Some(given)
    }
}

/// A seeded random sequence (SplitMix64): small, fast, and the same on every platform,
/// so a seed replays the same faults.
#[derive(Debug, Clone, Default)]
pub(super) struct FaultDice {
    /// The seed the sequence started from.
    seed: u64,
    /// The generator's state.
    state: u64,
}

impl FaultDice {
    /// The sequence for `seed`, from its start.
    fn seeded(seed: u64) -> FaultDice {
        FaultDice { seed, state: seed }
    }

    /// The next 64 random bits (SplitMix64, Steele, Lea and Flood 2014).
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `probability` (at or below 0, and NaN: never; at or above
    /// 1: always). Every call takes one number from the sequence.
    fn draw(&mut self, probability: f64) -> bool {
        // 53 random bits as a uniform value in [0, 1).
        let uniform = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        uniform < probability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(method: Option<&str>, path: &str, times: u32, status: u16) -> Fault {
        Fault {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            times,
            status: Some(status),
            ..Fault::default()
        }
    }

    #[test]
    fn faults_are_consumed_in_fifo_order_among_matches() {
        let mut faults = FaultQueue::default();
        faults.push(fault(Some("GET"), "/zuora", 1, 500));
        faults.push(fault(None, "/zuora/v1", 2, 503));
        faults.push(fault(None, "/zuora/v1", 0, 502));
        let status = |fault: Option<Fault>| fault.and_then(|fault| fault.status);
        assert_eq!(
            status(faults.take_matching("PUT", "/zuora/v1/x")),
            Some(503)
        );
        assert_eq!(
            status(faults.take_matching("put", "/zuora/v1/x")),
            Some(503)
        );
        assert_eq!(
            status(faults.take_matching("PUT", "/zuora/v1/x")),
            Some(502)
        );
        assert_eq!(status(faults.take_matching("PUT", "/zuora/v1/x")), None);
        assert_eq!(status(faults.take_matching("GET", "/elevate")), None);
        assert_eq!(
            status(faults.take_matching("GET", "/zuora/v1/x")),
            Some(500)
        );
        assert_eq!(status(faults.take_matching("GET", "/zuora/v1/x")), None);
    }

    #[test]
    fn fault_json_uses_camel_case() -> serde_json::Result<()> {
        let fault: Fault = serde_json::from_str(
            r#"{"path":"/rebilly","rateLimited":3,"delayMs":20,"headers":[["Retry-After","2"]]}"#,
        )?;
        assert_eq!(fault.rate_limited, Some(3));
        assert_eq!(fault.delay_ms, 20);
        assert_eq!(
            fault.headers,
            vec![("Retry-After".to_owned(), "2".to_owned())]
        );
        assert!(!fault.drop);
        assert!(!fault.drop_before_body && !fault.drop_after_apply && !fault.truncate_gzip);
        assert_eq!(fault.probability, None);
        let fault: Fault = serde_json::from_str(
            r#"{"path":"/zuora","dropBeforeBody":true,"dropAfterApply":true,"truncateGzip":true,"probability":0.05}"#,
        )?;
        assert!(fault.drop_before_body && fault.drop_after_apply && fault.truncate_gzip);
        assert_eq!(fault.probability, Some(0.05));
        let echoed = serde_json::to_value(&fault)?;
        assert_eq!(echoed["dropBeforeBody"], serde_json::json!(true));
        assert_eq!(echoed["probability"], serde_json::json!(0.05));
        Ok(())
    }

    /// Which of `requests` matching requests draw a `probability` fault (by index).
    fn drawn(faults: &mut FaultQueue, requests: usize) -> Vec<usize> {
        (0..requests)
            .filter(|_| faults.take_matching("PUT", "/zuora/v1/x").is_some())
            .collect()
    }

    fn chance(probability: f64, times: u32) -> Fault {
        Fault {
            path: "/zuora".to_owned(),
            times,
            status: Some(503),
            probability: Some(probability),
            ..Fault::default()
        }
    }

    #[test]
    fn probability_faults_replay_the_same_draws_for_the_same_seed() {
        let mut faults = FaultQueue {
            dice: FaultDice::seeded(7),
            ..FaultQueue::default()
        };
        faults.push(chance(0.05, 0));
        let first = drawn(&mut faults, 2000);
        // Unlimited with times 0, and about 5% drawn: 100 expected, 6 standard deviations.
        assert!((40..=160).contains(&first.len()), "{}", first.len());
        faults.dice = FaultDice::seeded(7);
        assert_eq!(drawn(&mut faults, 2000), first, "same seed, same draws");
        faults.dice = FaultDice::seeded(8);
        assert_ne!(drawn(&mut faults, 2000), first, "another seed, other draws");
        // Requests that do not match draw nothing and use up no number.
        faults.dice = FaultDice::seeded(7);
        assert!(faults.take_matching("PUT", "/elevate/v1").is_none());
        assert_eq!(drawn(&mut faults, 2000), first);
    }

    #[test]
    fn probability_faults_count_only_the_faults_drawn() {
        let mut faults = FaultQueue::default();
        faults.push(chance(0.5, 3));
        let hits = drawn(&mut faults, 100);
        assert_eq!(hits.len(), 3, "times counts faults drawn: {hits:?}");
        assert_eq!(faults.taken(), 3);
        assert!(faults.pending.is_empty());
        // Certain and impossible draws.
        faults.push(chance(1.0, 0));
        assert_eq!(drawn(&mut faults, 50).len(), 50);
        faults.clear();
        faults.push(chance(0.0, 0));
        faults.push(chance(f64::NAN, 0));
        assert!(drawn(&mut faults, 50).is_empty());
    }

    #[test]
    fn a_failed_draw_moves_on_to_the_next_matching_fault() {
        let mut faults = FaultQueue::default();
        faults.push(chance(0.0, 0));
        faults.push(fault(None, "/zuora/v1", 1, 500));
        assert_eq!(
            faults
                .take_matching("PUT", "/zuora/v1/x")
                .and_then(|fault| fault.status),
            Some(500)
        );
        assert!(faults.take_matching("PUT", "/zuora/v1/x").is_none());
    }

    #[test]
    fn reset_keeps_the_seed_and_restarts_the_sequence() {
        let mut state = MockState::seeded();
        state.set_fault_seed(42);
        let first: Vec<u64> = (0..4).map(|_| state.faults.dice.next_u64()).collect();
        state.reset();
        let again: Vec<u64> = (0..4).map(|_| state.faults.dice.next_u64()).collect();
        assert_eq!(first, again);
        // SplitMix64's published first output for seed 0.
        assert_eq!(FaultDice::seeded(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}

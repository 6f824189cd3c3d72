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

    /// Back to [`MockState::seeded`].
    pub(super) fn reset(&mut self) {
        *self = MockState::seeded();
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

/// Queued faults, each with how many more requests it applies to.
#[derive(Debug, Default)]
pub(super) struct FaultQueue {
    /// In injection order.
    pending: VecDeque<(Fault, u32)>,
}

impl FaultQueue {
    /// Queues a fault (`times` 0 counts as 1).
    pub(super) fn push(&mut self, fault: Fault) {
        let times = fault.times.max(1);
        self.pending.push_back((fault, times));
    }

    /// Drops every queued fault.
    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Takes one use of the first fault matching the request: same method (or any) and
    /// a path prefix of `path`. A used-up fault leaves the queue.
    pub(super) fn take_matching(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self.pending.iter().position(|(fault, _)| {
            fault
                .method
                .as_deref()
                .is_none_or(|fault_method| fault_method.eq_ignore_ascii_case(method))
                && path.starts_with(&fault.path)
        })?;
        let (fault, remaining) = self.pending.get_mut(index)?;
        *remaining -= 1;
        let taken = fault.clone();
        if *remaining == 0 {
            self.pending.remove(index);
        }
        Some(taken)
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
        Ok(())
    }
}

//! `harness soak`: many workflows, one task each, against the in-process mock with seeded
//! random faults, at bounded concurrency; then every task is accounted for in the records
//! the mock stored.
//!
//! Each task carries a unique key that its effect leaves in the mock:
//!
//! | vendor | task | effect, keyed by task `i` |
//! |---|---|---|
//! | Rebilly | `rebilly-create-usage` (POST, not idempotent) | a usage whose `usageTime` is 2026-01-01T00:00:00Z plus `i` seconds |
//! | Elevate | `elevate-patch-usage-product-inventory` (PATCH, not idempotent) | a JSON Patch `add` of `{"productReference": "soak-<i>"}` to `/productReferences/-` of inventory 100000 + `i` |
//! | Zuora | `zuora-update-usage` (PUT) | a custom field `Soak<i>__c` = `soak-<i>` on the seeded pending usage record (all Zuora tasks update that one record) |
//! | BillingPlatform | `billingplatform-update-usage-identifier` (PUT) | usage identifier `soak-<i>` renamed `soak-<i>-identifier` |
//!
//! Task `i` goes to the vendor `i % 4` in that order. The Elevate inventories and
//! BillingPlatform usage identifiers are stored in the mock before the run (copies of
//! the seeded inventory 1 and identifier 1001), one per task, so that every task's
//! request and answer stay the same size however long the run (the mock answers a PATCH
//! or a PUT with the whole record). Afterwards every task is one of:
//! completed with its effect stored once; failed (counted by the kind of its last
//! attempt) with no effect; or failed with its effect stored once (`failed_applied`:
//! the request was applied but its answer was lost, so the task reports an unknown
//! outcome; legitimate for the non-idempotent calls, which are never re-sent blindly).
//! A completed task whose effect is not stored is *missing*; an effect stored more than
//! once (two Rebilly usages, two product references with one key) is a *duplicate*: a
//! double bill. Either fails the soak, as does a task with no result (*unaccounted*) or
//! an effect with a soak key no task owns (*stray*).
//!
//! Faults: on each vendor's task endpoint, a fraction `fault_rate` of requests draws
//! one fault, split evenly among [`FAULT_KINDS`] (the mock's `probability` faults, from
//! its seeded random sequence). Under concurrency the order in which requests draw
//! differs from run to run, so a seed fixes the fault mix, not which task gets which.
//! The tasks retry as a workflow would (`retryCount` 3, `FIXED` 1 s), on a clock that
//! shortens every wait a thousandfold so that the soak is not slow; `readTimeOut` is
//! 500 ms and the slow fault answers after 1 s (the mock still applies it).

use crate::bench::resident_mb;
use crate::{Context, LoadtestError, Result, ensure};
use harness_config::{Connections, Credentials};
use harness_mock::{Fault, MockServer, Vendor};
use harness_runner::ErrorKind;
use harness_sandbox::{BUILTIN_COMPONENTS, Sandbox, SandboxOptions};
use harness_workflow::definition::WorkflowDef;
use harness_workflow::{Clock, WorkflowResult, WorkflowRunner};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fault seed when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// The most workflows a soak runs at once (each holds a pooled instance slot).
pub const MAX_CONCURRENCY: usize = 4096;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// How many tasks (one workflow each).
    pub tasks: usize,
    /// The fraction of task requests that draw an injected fault (0 to 1).
    pub fault_rate: f64,
    /// The most workflows in flight at once.
    pub concurrency: usize,
    /// Seed of the mock's fault sequence.
    pub seed: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            tasks: 10_000,
            fault_rate: 0.05,
            concurrency: 64,
            seed: DEFAULT_SEED,
        }
    }
}

impl SoakOptions {
    /// Why these options cannot run, if they cannot.
    pub fn check(&self) -> std::result::Result<(), InvalidSoakOption> {
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(InvalidSoakOption(format!(
                "--fault-rate {} must be between 0 and 1",
                self.fault_rate
            )));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(InvalidSoakOption(format!(
                "--concurrency {} must be between 1 and {MAX_CONCURRENCY}",
                self.concurrency
            )));
        }
        Ok(())
    }
}

/// A soak option out of its range; the message names the option and the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSoakOption(pub String);

/// The injected fault kinds, each drawn by an equal share of the faulted requests.
pub const FAULT_KINDS: [&str; 8] = [
    "status 500",
    "status 503 (Retry-After 1)",
    "429 rateLimited 1 s",
    "dropBeforeBody",
    "drop (body read, nothing applied)",
    "dropAfterApply",
    "truncateGzip (applied, answer cut)",
    "slow (delay past readTimeOut, applied)",
];

/// `readTimeOut` of every task input, ms.
const READ_TIMEOUT_MS: u64 = 500;
/// How long the slow fault waits before answering, ms.
const SLOW_MS: u64 = 1000;
/// Retries per task (Conductor `retryCount`).
const RETRY_COUNT: u32 = 3;
/// The clock divides every wait by this.
const WAIT_DIVISOR: u32 = 1000;
/// The mock's journal is cleared every this many tasks, so that the in-process mock's
/// memory does not grow with the run (the accounting reads the stored records).
const JOURNAL_CLEAR_EVERY: usize = 500;
/// Rebilly `usageTime` of task 0: 2026-01-01T00:00:00Z.
const USAGE_TIME_BASE: i64 = 1_767_225_600;
/// The Zuora usage record the Zuora tasks tag.
const ZUORA_USAGE_ID: &str = "8ad08ae29085a77b0190908bfdd67abb";
/// The seeded BillingPlatform usage identifier copied for each BillingPlatform task.
const BILLINGPLATFORM_TEMPLATE_ID: &str = "1001";
/// The seeded Elevate inventory copied for each Elevate task.
const ELEVATE_TEMPLATE_ID: &str = "1";
/// Task `i`'s Elevate inventory is this plus `i`.
const ELEVATE_FIRST_ID: usize = 100_000;
/// At most this many problems are listed in the report.
const PROBLEMS_LISTED: usize = 20;

/// The vendors in the order tasks are dealt to them.
const VENDORS: [Vendor; 4] = [
    Vendor::Rebilly,
    Vendor::Elevate,
    Vendor::Zuora,
    Vendor::BillingPlatform,
];

/// Which vendor each task calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Deal {
    /// Task `i` calls vendor `i % 4` of [`VENDORS`].
    #[default]
    RoundRobin,
    /// Every task calls this vendor.
    Only(Vendor),
}

impl Deal {
    /// The vendor task `i` calls.
    pub(crate) fn vendor(self, i: usize) -> Vendor {
        match self {
            Deal::RoundRobin => VENDORS[i % VENDORS.len()],
            Deal::Only(vendor) => vendor,
        }
    }
}

/// The vendor task `i` calls in the fault soak.
#[cfg(test)]
fn vendor_of(i: usize) -> Vendor {
    Deal::RoundRobin.vendor(i)
}

/// The task name for `vendor`.
fn task_of(vendor: Vendor) -> &'static str {
    vendor.task()
}

/// Task `i`'s unique key.
fn key(i: usize) -> String {
    format!("soak-{i:07}")
}

/// Task `i`'s Rebilly `usageTime`.
fn usage_time(i: usize) -> String {
    let seconds = USAGE_TIME_BASE.saturating_add(i64::try_from(i).unwrap_or(i64::MAX));
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The task whose Rebilly `usageTime` this is.
fn task_of_usage_time(text: &str) -> Option<usize> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    usize::try_from(time.unix_timestamp().checked_sub(USAGE_TIME_BASE)?).ok()
}

/// The task whose key this is.
fn task_of_key(text: &str) -> Option<usize> {
    let digits = text.strip_prefix("soak-")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// Task `i`'s Elevate inventory id.
fn inventory_id(i: usize) -> usize {
    ELEVATE_FIRST_ID.saturating_add(i)
}

/// The workflow input of task `i`.
pub(crate) fn workflow_input(deal: Deal, i: usize) -> Value {
    let vendor = deal.vendor(i);
    let key = key(i);
    let mut input = json!({ "vendor": vendor.name(), "key": key.clone() });
    let extra = match vendor {
        Vendor::Rebilly => ("usageTime", json!(usage_time(i))),
        Vendor::Elevate => ("inventoryId", json!(inventory_id(i))),
        Vendor::Zuora => ("zuoraFields", json!({ format!("Soak{i:07}__c"): key })),
        Vendor::BillingPlatform => return input,
    };
    if let Value::Object(fields) = &mut input {
        fields.insert(extra.0.into(), extra.1);
    }
    input
}

/// Stores the records tasks `range` work on: a copy of Elevate inventory 1 per Elevate
/// task and of BillingPlatform usage identifier 1001 per BillingPlatform task.
pub(crate) fn store_records(
    mock: &MockServer,
    deal: Deal,
    range: std::ops::Range<usize>,
) -> Result<()> {
    let inventory = mock
        .record(Vendor::Elevate, ELEVATE_TEMPLATE_ID)
        .context("the seeded Elevate inventory")?;
    let identifier = mock
        .record(Vendor::BillingPlatform, BILLINGPLATFORM_TEMPLATE_ID)
        .context("the seeded BillingPlatform usage identifier")?;
    for i in range {
        match deal.vendor(i) {
            Vendor::Elevate => mock.put_record(
                Vendor::Elevate,
                &inventory_id(i).to_string(),
                inventory.clone(),
            ),
            Vendor::BillingPlatform => {
                mock.put_record(Vendor::BillingPlatform, &key(i), identifier.clone())
            }
            Vendor::Rebilly | Vendor::Zuora => Ok(()),
        }
        .map_err(|e| LoadtestError::Failed(e.to_string()))?;
    }
    Ok(())
}

/// The soak workflow: a SWITCH on the vendor, one task per case.
pub fn definition() -> Value {
    let task_def = |name: &str| {
        json!({
            "name": name,
            "retryCount": RETRY_COUNT,
            "retryLogic": "FIXED",
            "retryDelaySeconds": 1
        })
    };
    json!({
        "name": "soak-usage",
        "version": 1,
        "description": "One usage effect per run, keyed by workflow.input.key: a Rebilly usage, an Elevate product reference, a Zuora or BillingPlatform custom field.",
        "inputParameters": ["vendor", "key", "usageTime", "inventoryId", "zuoraFields"],
        "tasks": [{
            "name": "by_vendor",
            "taskReferenceName": "by_vendor",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "vendor",
            "inputParameters": { "vendor": "${workflow.input.vendor}" },
            "decisionCases": {
                "rebilly": [{
                    "name": "rebilly-create-usage",
                    "taskReferenceName": "report_usage",
                    "inputParameters": {
                        "connection": "rebilly",
                        "readTimeOut": READ_TIMEOUT_MS,
                        "body": {
                            "subscriptionId": "sub_mock_001",
                            "quantity": 1,
                            "usageTime": "${workflow.input.usageTime}"
                        }
                    }
                }],
                "elevate": [{
                    "name": "elevate-patch-usage-product-inventory",
                    "taskReferenceName": "add_reference",
                    "inputParameters": {
                        "connection": "elevate",
                        "readTimeOut": READ_TIMEOUT_MS,
                        "path": { "usage_product_inventory_id": "${workflow.input.inventoryId}" },
                        "body": [{
                            "op": "add",
                            "path": "/productReferences/-",
                            "value": { "productReference": "${workflow.input.key}" }
                        }]
                    }
                }],
                "zuora": [{
                    "name": "zuora-update-usage",
                    "taskReferenceName": "tag_usage",
                    "inputParameters": {
                        "connection": "zuora",
                        "readTimeOut": READ_TIMEOUT_MS,
                        "path": { "id": ZUORA_USAGE_ID },
                        "headers": { "Zuora-Track-Id": "${workflow.input.key}" },
                        "body": "${workflow.input.zuoraFields}"
                    }
                }],
                "billingplatform": [{
                    "name": "billingplatform-update-usage-identifier",
                    "taskReferenceName": "tag_identifier",
                    "inputParameters": {
                        "connection": "billingplatform",
                        "readTimeOut": READ_TIMEOUT_MS,
                        "body": {
                            "brmObjects": {
                                "Id": "${workflow.input.key}",
                                "UsageIdentifier": "${workflow.input.key}-identifier"
                            }
                        }
                    }
                }]
            },
            "defaultCase": []
        }],
        "taskDefinitions": [
            task_def("rebilly-create-usage"),
            task_def("elevate-patch-usage-product-inventory"),
            task_def("zuora-update-usage"),
            task_def("billingplatform-update-usage-identifier"),
        ]
    })
}

/// The faults of [`FAULT_KINDS`] for one endpoint, each drawn by `rate / 8` of its
/// requests. A request that does not draw a fault goes on to the next, so the k-th is
/// drawn with probability `share / (1 - (k - 1) * share)`.
fn faults_for(method: &str, path: &str, rate: f64) -> Vec<Fault> {
    let share = rate / FAULT_KINDS.len() as f64;
    let base = Fault {
        method: Some(method.to_string()),
        path: path.to_string(),
        times: 0,
        ..Fault::default()
    };
    let kinds = [
        Fault {
            status: Some(500),
            ..base.clone()
        },
        Fault {
            status: Some(503),
            headers: vec![("Retry-After".into(), "1".into())],
            ..base.clone()
        },
        Fault {
            rate_limited: Some(1),
            ..base.clone()
        },
        Fault {
            drop_before_body: true,
            ..base.clone()
        },
        Fault {
            drop: true,
            ..base.clone()
        },
        Fault {
            drop_after_apply: true,
            ..base.clone()
        },
        Fault {
            truncate_gzip: true,
            ..base.clone()
        },
        Fault {
            delay_ms: SLOW_MS,
            ..base
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(k, fault)| {
            let left = 1.0 - k as f64 * share;
            Fault {
                probability: Some(if left > 0.0 {
                    (share / left).min(1.0)
                } else {
                    1.0
                }),
                ..fault
            }
        })
        .collect()
}

/// Every vendor's task endpoint on the mock: method and path prefix.
fn endpoints(mock: &MockServer) -> Vec<(&'static str, String)> {
    let base = |vendor: Vendor| {
        let url = mock.base_url(vendor);
        url.strip_prefix(&mock.uri()).unwrap_or(&url).to_string()
    };
    vec![
        ("POST", format!("{}/usages", base(Vendor::Rebilly))),
        (
            "PATCH",
            format!("{}/usage-product-inventories/", base(Vendor::Elevate)),
        ),
        ("PUT", format!("{}/v1/object/usage/", base(Vendor::Zuora))),
        (
            "PUT",
            format!(
                "{}/rest/2.0/USAGE_IDENTIFIER",
                base(Vendor::BillingPlatform)
            ),
        ),
    ]
}

/// Real time, with every wait shortened [`WAIT_DIVISOR`]-fold: retries keep their
/// order and spacing relative to each other without making the soak slow.
struct FastClock {
    started: Instant,
}

impl Clock for FastClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration / WAIT_DIVISOR))
    }
    fn jitter_ms(&self, max_ms: u64) -> u64 {
        if max_ms == 0 {
            0
        } else {
            fastrand::u64(0..=max_ms)
        }
    }
}

/// What one task's workflow run came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ran {
    /// The task completed.
    pub(crate) completed: bool,
    /// Why not: the kind of its last attempt (`no-attempt` when it never ran).
    kind: Option<&'static str>,
    /// The failure message, when it failed.
    pub(crate) message: Option<String>,
    /// Attempts made.
    attempts: usize,
    /// The attempts that failed: kind and cause (the first sentence of the message).
    attempt_failures: Vec<(&'static str, String)>,
}

/// What a failure message says happened: its first sentence up to any `: ` detail
/// (`429 Too Many Requests`, `read timed out (readTimeOut)`), without waits or advice.
fn cause(message: &str) -> String {
    let sentence = message.split_once(". ").map_or(message, |(first, _)| first);
    sentence
        .split_once(": ")
        .map_or(sentence, |(head, _)| head)
        .trim_end_matches('.')
        .to_string()
}

fn summarize(result: &WorkflowResult) -> Ran {
    let record = result.tasks.iter().find(|t| t.task_type != "SWITCH");
    let attempts = record.map_or(&[][..], |r| r.attempts.as_slice());
    let completed = result.status == "COMPLETED" && record.is_some_and(|r| r.status == "COMPLETED");
    let kind = (!completed).then(|| {
        attempts
            .last()
            .and_then(|a| a.kind)
            .map_or("no-attempt", ErrorKind::as_str)
    });
    Ran {
        completed,
        kind,
        message: (!completed).then(|| result.reason.clone().unwrap_or_default()),
        attempts: attempts.len(),
        attempt_failures: attempts
            .iter()
            .filter_map(|a| {
                let kind = a.kind?.as_str();
                Some((kind, cause(a.message.as_deref().unwrap_or_default())))
            })
            .collect(),
    }
}

/// Runs tasks `range` with at most `concurrency` workflows in flight; slot `j` holds
/// task `range.start + j`'s result, `None` when it never came back.
pub(crate) async fn drive(
    runner: &WorkflowRunner,
    definition: &Arc<WorkflowDef>,
    mock: &Arc<MockServer>,
    deal: Deal,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<Option<Ran>> {
    let slots = Arc::new(Mutex::new(vec![None; range.len()]));
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(range.len()) {
        let (runner, definition, mock, slots, next) = (
            runner.clone(),
            definition.clone(),
            mock.clone(),
            slots.clone(),
            next.clone(),
        );
        let range = range.clone();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end {
                    break;
                }
                if i % JOURNAL_CLEAR_EVERY == 0 {
                    mock.clear_journal();
                }
                let result = runner.run(&definition, workflow_input(deal, i)).await;
                let ran = summarize(&result);
                let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
                slots[i - range.start] = Some(ran);
            }
        });
    }
    // A worker that panicked leaves its task's slot empty: unaccounted, not hidden.
    while workers.join_next().await.is_some() {}
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *slots)
}

/// How many times each task's effect is stored in the mock, and effects no task owns.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Effects {
    /// How tasks were dealt to vendors.
    deal: Deal,
    /// By task index.
    counts: Vec<u32>,
    /// Soak-keyed effects that belong to no task of this run (or to another vendor's).
    stray: usize,
}

impl Effects {
    fn add(&mut self, task: Option<usize>, vendor: Vendor) {
        match task {
            Some(i) if i < self.counts.len() && self.deal.vendor(i) == vendor => {
                self.counts[i] += 1
            }
            _ => self.stray += 1,
        }
    }
}

/// Reads every soak effect from the mock's stored records.
pub(crate) fn read_effects(mock: &MockServer, deal: Deal, tasks: usize) -> Effects {
    let mut effects = Effects {
        deal,
        counts: vec![0; tasks],
        stray: 0,
    };
    // Rebilly usages are usage_1, usage_2, … in creation order.
    for n in 1.. {
        let Some(usage) = mock.record(Vendor::Rebilly, &format!("usage_{n}")) else {
            break;
        };
        let task = usage["usageTime"].as_str().and_then(task_of_usage_time);
        effects.add(task, Vendor::Rebilly);
    }
    // Elevate: the product references added to each task's inventory.
    for i in (0..tasks).filter(|i| deal.vendor(*i) == Vendor::Elevate) {
        let Some(inventory) = mock.record(Vendor::Elevate, &inventory_id(i).to_string()) else {
            continue;
        };
        for reference in inventory["productReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match reference["productReference"].as_str() {
                Some(text) if text == key(i) => effects.counts[i] += 1,
                Some(text) if text.starts_with("soak-") => effects.stray += 1,
                _ => {}
            }
        }
    }
    // BillingPlatform: each task's usage identifier renamed.
    for i in (0..tasks).filter(|i| deal.vendor(*i) == Vendor::BillingPlatform) {
        let renamed = mock
            .record(Vendor::BillingPlatform, &key(i))
            .is_some_and(|record| {
                record["UsageIdentifier"].as_str() == Some(&format!("{}-identifier", key(i)))
            });
        effects.counts[i] += u32::from(renamed);
    }
    // Zuora: the custom fields on the one record.
    let Some(Value::Object(fields)) = mock.record(Vendor::Zuora, ZUORA_USAGE_ID) else {
        return effects;
    };
    for (name, value) in fields {
        let Some(digits) = name
            .strip_prefix("Soak")
            .and_then(|rest| rest.strip_suffix("__c"))
        else {
            continue;
        };
        let task = task_of_key(&format!("soak-{digits}"))
            .filter(|i| value.as_str() == Some(key(*i).as_str()));
        effects.add(task, Vendor::Zuora);
    }
    effects
}

/// Figures for one vendor's tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VendorFigures {
    /// Tasks dealt to it.
    pub tasks: usize,
    /// Completed with the effect stored once.
    pub completed: usize,
    /// Failed (whatever the effect).
    pub failed: usize,
    /// Failed with the effect stored once.
    pub failed_applied: usize,
    /// Attempts after the first.
    pub retries: usize,
}

/// The soak's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoakReport {
    /// Tasks run.
    pub tasks: usize,
    /// Tasks completed.
    pub completed: usize,
    /// Failed tasks by the kind of their last attempt.
    pub failed_by_kind: BTreeMap<String, usize>,
    /// Failed tasks whose effect is stored once (applied, answer lost).
    pub failed_applied: usize,
    /// Attempts in all.
    pub attempts: usize,
    /// Attempts after the first.
    pub retries: usize,
    /// Failed attempts by kind.
    pub attempt_failures_by_kind: BTreeMap<String, usize>,
    /// Failed attempts by kind and cause (`kind: first sentence of the message`).
    pub attempt_failures_by_cause: BTreeMap<String, usize>,
    /// Faults the mock gave to requests.
    pub injected_faults: u64,
    /// Tasks whose effect is stored more than once.
    pub duplicates: usize,
    /// Completed tasks whose effect is not stored.
    pub missing: usize,
    /// Tasks with no result.
    pub unaccounted: usize,
    /// Soak-keyed effects no task owns.
    pub stray_effects: usize,
    /// Per vendor.
    pub by_vendor: BTreeMap<String, VendorFigures>,
    /// The first failure message of each kind.
    pub failure_examples: BTreeMap<String, String>,
    /// The first problems found (missing, duplicate, unaccounted), one sentence each.
    pub problems: Vec<String>,
    /// Resident memory after loading and warm-up, MB.
    pub rss_start_mb: f64,
    /// Resident memory at the end, MB.
    pub rss_end_mb: f64,
    /// The highest resident memory sampled during the run, MB.
    pub rss_peak_mb: f64,
    /// How long the tasks took, ms.
    pub elapsed_ms: u64,
    /// The options.
    pub fault_rate: f64,
    /// The options.
    pub concurrency: usize,
    /// The options.
    pub seed: u64,
}

impl SoakReport {
    /// Every task accounted for: none missing, duplicated, unaccounted or stray.
    pub fn clean(&self) -> bool {
        self.duplicates == 0
            && self.missing == 0
            && self.unaccounted == 0
            && self.stray_effects == 0
            && self.completed + self.failed() == self.tasks
    }

    /// Failed tasks.
    pub fn failed(&self) -> usize {
        self.failed_by_kind.values().sum()
    }

    /// The JSON report.
    pub fn to_json(&self) -> Value {
        let vendors: Map<String, Value> = self
            .by_vendor
            .iter()
            .map(|(vendor, f)| {
                (
                    vendor.clone(),
                    json!({
                        "tasks": f.tasks, "completed": f.completed, "failed": f.failed,
                        "failed_applied": f.failed_applied, "retries": f.retries,
                    }),
                )
            })
            .collect();
        let elapsed_s = self.elapsed_ms as f64 / 1000.0;
        json!({
            "ok": self.clean(),
            "tasks": self.tasks,
            "completed": self.completed,
            "failed": self.failed(),
            "failed_by_kind": self.failed_by_kind,
            "failed_applied": self.failed_applied,
            "attempts": self.attempts,
            "retries": self.retries,
            "attempt_failures_by_kind": self.attempt_failures_by_kind,
            "attempt_failures_by_cause": self.attempt_failures_by_cause,
            "injected_faults": self.injected_faults,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "unaccounted": self.unaccounted,
            "stray_effects": self.stray_effects,
            "by_vendor": vendors,
            "failure_examples": self.failure_examples,
            "problems": self.problems,
            "rss_start_mb": self.rss_start_mb,
            "rss_end_mb": self.rss_end_mb,
            "rss_peak_mb": self.rss_peak_mb,
            "elapsed_ms": self.elapsed_ms,
            "tasks_per_s": if elapsed_s > 0.0 { round(self.tasks as f64 / elapsed_s) } else { 0.0 },
            "fault_rate": self.fault_rate,
            "concurrency": self.concurrency,
            "seed": self.seed,
        })
    }
}

/// Counts the results against the effects.
pub(crate) fn account(results: &[Option<Ran>], effects: &Effects) -> SoakReport {
    let mut report = SoakReport {
        tasks: results.len(),
        stray_effects: effects.stray,
        ..SoakReport::default()
    };
    let problem = |report: &mut SoakReport, text: String| {
        if report.problems.len() < PROBLEMS_LISTED {
            report.problems.push(text);
        }
    };
    for (i, ran) in results.iter().enumerate() {
        let vendor = effects.deal.vendor(i);
        let task = task_of(vendor);
        let figures = report.by_vendor.entry(vendor.name().into()).or_default();
        figures.tasks += 1;
        let stored = effects.counts.get(i).copied().unwrap_or(0);
        let Some(ran) = ran else {
            report.unaccounted += 1;
            problem(
                &mut report,
                format!("task {i} ({task}, {}): no result", key(i)),
            );
            continue;
        };
        figures.retries += ran.attempts.saturating_sub(1);
        if ran.completed {
            figures.completed += 1;
        } else {
            figures.failed += 1;
            if stored == 1 {
                figures.failed_applied += 1;
            }
        }
        report.attempts += ran.attempts;
        report.retries += ran.attempts.saturating_sub(1);
        for (kind, cause) in &ran.attempt_failures {
            *report
                .attempt_failures_by_kind
                .entry((*kind).into())
                .or_default() += 1;
            *report
                .attempt_failures_by_cause
                .entry(format!("{kind}: {cause}"))
                .or_default() += 1;
        }
        if ran.completed {
            report.completed += 1;
        } else {
            let kind = ran.kind.unwrap_or("no-attempt");
            *report.failed_by_kind.entry(kind.into()).or_default() += 1;
            report
                .failure_examples
                .entry(kind.into())
                .or_insert_with(|| ran.message.clone().unwrap_or_default());
            if stored == 1 {
                report.failed_applied += 1;
            }
        }
        let status = if ran.completed { "completed" } else { "failed" };
        if stored > 1 {
            report.duplicates += 1;
            problem(
                &mut report,
                format!(
                    "task {i} ({task}, {}): {status} after {} attempt(s), its effect is stored {stored} times (duplicate)",
                    key(i),
                    ran.attempts
                ),
            );
        } else if ran.completed && stored == 0 {
            report.missing += 1;
            problem(
                &mut report,
                format!(
                    "task {i} ({task}, {}): completed but its effect is not stored (missing)",
                    key(i)
                ),
            );
        }
    }
    if effects.stray > 0 {
        let text = format!(
            "{} stored effect(s) carry a soak key that no task of this run owns",
            effects.stray
        );
        problem(&mut report, text);
    }
    report
}

/// Highest resident memory seen by a sampler.
#[derive(Default)]
pub(crate) struct Peak(AtomicU64);

impl Peak {
    pub(crate) fn sample(&self) {
        let now = resident_mb();
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| {
                (now > f64::from_bits(bits)).then(|| now.to_bits())
            });
    }
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::SeqCst))
    }
}

/// The soak's mock, sandbox and workflow.
pub(crate) struct Setup {
    /// The in-process mock.
    pub(crate) mock: Arc<MockServer>,
    /// The shipped tasks, pooled for the concurrency.
    pub(crate) sandbox: Arc<Sandbox>,
    /// [`definition`], validated.
    pub(crate) definition: Arc<WorkflowDef>,
}

/// Start the mock and the sandbox (its instance pool sized for `concurrency`) and check
/// the soak workflow.
pub(crate) async fn setup(concurrency: usize, sandbox: SandboxOptions) -> Result<Setup> {
    let mock = Arc::new(MockServer::start().await);
    let slots = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let sandbox = Arc::new(
        Sandbox::builtin_with(SandboxOptions {
            max_in_flight: slots.saturating_add(16),
            ..sandbox
        })
        .await?,
    );
    let value = definition();
    let tasks = BUILTIN_COMPONENTS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>();
    let schemas = sandbox
        .tasks()
        .filter_map(|info| {
            Some((
                info.name.clone(),
                serde_json::from_str(&info.input_schema).ok()?,
            ))
        })
        .collect::<BTreeMap<String, Value>>();
    let problems = harness_workflow::validate::validate(
        &value,
        &harness_workflow::validate::Catalog {
            tasks: &tasks,
            connections: Some(&VENDORS.map(Vendor::name)),
            schemas: &schemas,
            mocked: &Default::default(),
            secrets: None,
            definitions: &Default::default(),
        },
    )
    .problems;
    ensure!(
        problems.is_empty(),
        "the soak workflow does not validate: {problems:?}"
    );
    let definition: Arc<WorkflowDef> =
        Arc::new(serde_json::from_value(value).context("the soak workflow")?);
    Ok(Setup {
        mock,
        sandbox,
        definition,
    })
}

/// A runner of the soak workflow against `mock`, on a clock that shortens retry waits.
pub(crate) fn runner(
    mock: &Arc<MockServer>,
    sandbox: &Arc<Sandbox>,
    credentials: Arc<Credentials>,
) -> WorkflowRunner {
    let base_url_for: harness_workflow::BaseUrlFor = {
        let mock = mock.clone();
        Arc::new(move |task: &str| Vendor::for_task(task).map(|vendor| mock.base_url(vendor)))
    };
    WorkflowRunner::new(
        sandbox.clone(),
        Arc::new(FastClock {
            started: Instant::now(),
        }),
        base_url_for,
        Arc::new(|_: &str| {}),
    )
    .with_credentials(credentials)
}

/// Run the soak: print a table to `out` and return the figures. `sandbox` sets limits
/// and the code cache; its instance pool is sized for `options.concurrency`.
pub async fn run(
    options: SoakOptions,
    sandbox: SandboxOptions,
    out: &mut (dyn Write + Send),
) -> Result<SoakReport> {
    options
        .check()
        .map_err(|e| LoadtestError::Failed(e.to_string()))?;
    let Setup {
        mock,
        sandbox,
        definition,
    } = setup(options.concurrency, sandbox).await?;
    mock.set_fault_seed(options.seed);
    let credentials = Arc::new(Credentials::new(
        Connections::for_mock(&mock),
        sandbox.http(),
    ));
    let runner = runner(&mock, &sandbox, credentials);

    // Warm up (instances, connections, logins) without faults, then start afresh. A
    // warm-up task may time out on a loaded machine; none completing means a broken setup.
    let warm_up = options.concurrency.clamp(VENDORS.len(), 256);
    store_records(&mock, Deal::RoundRobin, 0..warm_up)?;
    let warmed = drive(
        &runner,
        &definition,
        &mock,
        Deal::RoundRobin,
        0..warm_up,
        options.concurrency,
    )
    .await;
    ensure!(
        warmed.iter().flatten().any(|ran| ran.completed),
        "none of the {warm_up} warm-up tasks completed (without faults): {:?}",
        warmed.iter().flatten().find_map(|ran| ran.message.clone())
    );
    mock.wait_until_idle().await;
    mock.reset();
    store_records(&mock, Deal::RoundRobin, 0..options.tasks)?;
    for (method, path) in endpoints(&mock) {
        for fault in faults_for(method, &path, options.fault_rate) {
            mock.inject(fault);
        }
    }

    let rss_start = resident_mb();
    let peak = Arc::new(Peak::default());
    peak.sample();
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                peak.sample();
            }
        })
    };
    let started = Instant::now();
    let results = drive(
        &runner,
        &definition,
        &mock,
        Deal::RoundRobin,
        0..options.tasks,
        options.concurrency,
    )
    .await;
    let elapsed = started.elapsed();
    // Requests whose client gave up (the slow fault) are still applied: wait for them.
    mock.wait_until_idle().await;
    peak.sample();
    sampler.abort();
    let rss_end = resident_mb();

    let effects = read_effects(&mock, Deal::RoundRobin, options.tasks);
    let mut report = account(&results, &effects);
    report.injected_faults = mock.faults_injected();
    report.rss_start_mb = round(rss_start);
    report.rss_end_mb = round(rss_end);
    report.rss_peak_mb = round(peak.get());
    report.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    report.fault_rate = options.fault_rate;
    report.concurrency = options.concurrency;
    report.seed = options.seed;
    print_table(&report, out)?;
    Ok(report)
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// `kind n, kind n` or `none`.
fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(report: &SoakReport, out: &mut (dyn Write + Send)) -> Result<()> {
    writeln!(
        out,
        "soak: {} tasks, fault rate {}, concurrency {}, seed {}",
        report.tasks, report.fault_rate, report.concurrency, report.seed
    )?;
    writeln!(out)?;
    let row = |out: &mut (dyn Write + Send), cells: [&str; 6]| {
        writeln!(
            out,
            "{:<42} {:>7} {:>10} {:>7} {:>15} {:>8}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )
    };
    row(
        out,
        [
            "task",
            "tasks",
            "completed",
            "failed",
            "failed-applied",
            "retries",
        ],
    )?;
    let mut total = VendorFigures::default();
    for vendor in VENDORS {
        let Some(f) = report.by_vendor.get(vendor.name()) else {
            continue;
        };
        row(
            out,
            [
                task_of(vendor),
                &f.tasks.to_string(),
                &f.completed.to_string(),
                &f.failed.to_string(),
                &f.failed_applied.to_string(),
                &f.retries.to_string(),
            ],
        )?;
        total.tasks += f.tasks;
        total.completed += f.completed;
        total.failed += f.failed;
        total.failed_applied += f.failed_applied;
        total.retries += f.retries;
    }
    row(
        out,
        [
            "all",
            &total.tasks.to_string(),
            &total.completed.to_string(),
            &total.failed.to_string(),
            &total.failed_applied.to_string(),
            &total.retries.to_string(),
        ],
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "failed by kind:            {}",
        counts(&report.failed_by_kind)
    )?;
    writeln!(
        out,
        "faults injected:           {} (attempts failed: {})",
        report.injected_faults,
        counts(&report.attempt_failures_by_kind)
    )?;
    for (cause, n) in &report.attempt_failures_by_cause {
        writeln!(out, "  {n:>6}  {cause}")?;
    }
    writeln!(
        out,
        "duplicates / missing:      {} / {} (unaccounted {}, stray effects {})",
        report.duplicates, report.missing, report.unaccounted, report.stray_effects
    )?;
    writeln!(
        out,
        "resident memory:           {} MB at start, {} MB at end, {} MB peak",
        report.rss_start_mb, report.rss_end_mb, report.rss_peak_mb
    )?;
    let seconds = report.elapsed_ms as f64 / 1000.0;
    writeln!(
        out,
        "elapsed:                   {seconds:.1} s ({} tasks/s)",
        if seconds > 0.0 {
            (report.tasks as f64 / seconds).round()
        } else {
            0.0
        }
    )?;
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    writeln!(
        out,
        "{}",
        if report.clean() {
            "every task accounted for: none missing, none duplicated"
        } else {
            "NOT CLEAN: tasks missing, duplicated or unaccounted (see above)"
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(completed: bool, attempts: usize) -> Option<Ran> {
        Some(Ran {
            completed,
            kind: (!completed).then_some("transport"),
            message: (!completed).then(|| "dropped".to_string()),
            attempts,
            attempt_failures: vec![
                ("transport", "dropped".to_string());
                attempts.saturating_sub(usize::from(completed))
            ],
        })
    }

    #[test]
    fn causes_drop_the_details() {
        assert_eq!(
            cause("429 Too Many Requests: Rate limit exceeded: retry after 485 ms. Wait."),
            "429 Too Many Requests"
        );
        assert_eq!(
            cause("read timed out (readTimeOut): no response within 500 ms"),
            "read timed out (readTimeOut)"
        );
        assert_eq!(
            cause(
                "connection closed before a complete response. The request may have been applied"
            ),
            "connection closed before a complete response"
        );
        assert_eq!(
            cause("500 Internal Server Error"),
            "500 Internal Server Error"
        );
    }

    #[test]
    fn keys_and_usage_times_name_their_task() {
        assert_eq!(key(17), "soak-0000017");
        assert_eq!(task_of_key("soak-0000017"), Some(17));
        assert_eq!(task_of_key("soak-x"), None);
        assert_eq!(task_of_key("07700900001"), None);
        assert_eq!(usage_time(0), "2026-01-01T00:00:00Z");
        assert_eq!(usage_time(3661), "2026-01-01T01:01:01Z");
        assert_eq!(task_of_usage_time(&usage_time(123_456)), Some(123_456));
        assert_eq!(task_of_usage_time("2025-12-31T23:59:59Z"), None);
        assert_eq!(vendor_of(0), Vendor::Rebilly);
        assert_eq!(vendor_of(7), Vendor::BillingPlatform);
    }

    #[test]
    fn the_faults_split_the_rate_evenly() {
        let faults = faults_for("PUT", "/zuora/v1/object/usage/", 0.08);
        assert_eq!(faults.len(), FAULT_KINDS.len());
        // The chance that a request draws fault k: its probability times the chance
        // that it drew none before.
        let mut none_before = 1.0;
        for fault in &faults {
            let p = fault.probability.unwrap_or_default();
            assert!((none_before * p - 0.01).abs() < 1e-12, "{p}");
            none_before *= 1.0 - p;
        }
        assert!((none_before - 0.92).abs() < 1e-12);
        let all = faults_for("PUT", "/", 1.0);
        assert_eq!(all.last().and_then(|f| f.probability), Some(1.0));
        assert!(
            faults_for("PUT", "/", 0.0)
                .iter()
                .all(|f| f.probability == Some(0.0))
        );
    }

    #[test]
    fn accounting_finds_missing_duplicated_and_applied_failures() {
        // Tasks 0..8: 0 ok, 1 completed but missing, 2 failed not applied, 3 failed
        // applied, 4 completed and stored twice, 5 no result, 6 and 7 ok.
        let results = vec![
            ran(true, 1),
            ran(true, 2),
            ran(false, 1),
            ran(false, 1),
            ran(true, 1),
            None,
            ran(true, 1),
            ran(true, 3),
        ];
        let effects = Effects {
            deal: Deal::RoundRobin,
            counts: vec![1, 0, 0, 1, 2, 0, 1, 1],
            stray: 1,
        };
        let report = account(&results, &effects);
        assert_eq!(report.tasks, 8);
        assert_eq!(report.completed, 5);
        assert_eq!(
            report.failed_by_kind,
            BTreeMap::from([("transport".to_string(), 2)])
        );
        assert_eq!(report.failed_applied, 1);
        assert_eq!(report.missing, 1);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.unaccounted, 1);
        assert_eq!(report.stray_effects, 1);
        assert_eq!(report.attempts, 10);
        assert_eq!(report.retries, 3);
        assert!(!report.clean());
        assert_eq!(report.problems.len(), 4, "{:?}", report.problems);
        assert!(report.problems[0].starts_with(
            "task 1 (elevate-patch-usage-product-inventory, soak-0000001): completed but"
        ));
        assert!(report.problems[1].contains("stored 2 times (duplicate)"));
        assert_eq!(report.by_vendor["rebilly"].failed_applied, 0);
        assert_eq!(report.by_vendor["billingplatform"].failed_applied, 1);
        let clean = account(
            &results[..1],
            &Effects {
                deal: Deal::RoundRobin,
                counts: vec![1],
                stray: 0,
            },
        );
        assert!(clean.clean());
        let json = clean.to_json();
        for field in [
            "tasks",
            "completed",
            "failed_by_kind",
            "retries",
            "duplicates",
            "missing",
            "rss_start_mb",
            "rss_end_mb",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn effects_are_read_back_from_the_mock_with_duplicates_and_strays() {
        let mock = MockServer::start().await;
        store_records(&mock, Deal::RoundRobin, 0..8).unwrap();
        let pool = harness_sandbox::pool::HttpPool::default();
        let send = |method: &str, path: String, headers: Vec<(&str, &str)>, body: Value| {
            let mut request = http::Request::builder()
                .method(method)
                .uri(format!("{}{path}", mock.uri()));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let body = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
                http_body_util::Full::new(bytes::Bytes::from(body.to_string())),
                |never| match never {},
            ));
            let request = request.body(body);
            let pool = &pool;
            async move {
                let response = pool.send(request.map_err(|e| e.to_string())?, None).await;
                let status = response.map_err(|e| format!("{e:?}"))?.status();
                assert!(status.is_success(), "{status}");
                Ok::<(), String>(())
            }
        };
        let rebilly = ("reb-apikey", "sk_sandbox_mock");
        let usage = |i: usize| json!({ "subscriptionId": "sub_mock_001", "quantity": 1, "usageTime": usage_time(i) });
        // Task 0 (Rebilly) twice, task 4 (Rebilly) once; task 8 is not in a 8-task run.
        for i in [0, 0, 4, 8] {
            send(
                "POST",
                "/rebilly/organizations/org_mock/usages".into(),
                vec![rebilly],
                usage(i),
            )
            .await
            .unwrap();
        }
        let elevate = [
            ("authorization", "Bearer mock-elevate-token"),
            ("content-type", "application/json-patch+json"),
        ];
        let add = |i: usize| json!([{ "op": "add", "path": "/productReferences/-", "value": { "productReference": key(i) } }]);
        // Task 1's reference twice on its own inventory, once on task 5's.
        for inventory in [1, 1, 5] {
            let path = format!(
                "/elevate/v1/usage-product-inventories/{}",
                inventory_id(inventory)
            );
            send("PATCH", path, elevate.to_vec(), add(1)).await.unwrap();
        }
        send(
            "PUT",
            format!("/zuora/v1/object/usage/{ZUORA_USAGE_ID}"),
            vec![("authorization", "Bearer mock-zuora-token")],
            json!({ "Soak0000002__c": key(2), "Soak0000006__c": "soak-wrong" }),
        )
        .await
        .unwrap();
        // Task 3's identifier renamed as the task does, task 7's otherwise.
        for (i, name) in [
            (3, format!("{}-identifier", key(3))),
            (7, "OTHER".to_string()),
        ] {
            send(
                "PUT",
                "/billingplatform/acme/rest/2.0/USAGE_IDENTIFIER".into(),
                vec![("sessionid", "mock-bp-session")],
                json!({ "brmObjects": { "Id": key(i), "UsageIdentifier": name } }),
            )
            .await
            .unwrap();
        }
        let effects = read_effects(&mock, Deal::RoundRobin, 8);
        assert_eq!(effects.counts, vec![2, 2, 1, 1, 1, 0, 0, 0]);
        // Task 8's usage (not in the run), task 1's reference on task 5's inventory,
        // Zuora's wrong value.
        assert_eq!(effects.stray, 3);
    }

    #[test]
    fn every_task_input_fits_the_definition() {
        let definition: WorkflowDef = serde_json::from_value(definition()).unwrap();
        for i in 0..4 {
            let input = workflow_input(Deal::RoundRobin, i);
            for (name, _) in input.as_object().unwrap() {
                assert!(definition.input_parameters.contains(name), "{name}");
            }
            assert_eq!(input["vendor"], vendor_of(i).name());
        }
        assert_eq!(
            workflow_input(Deal::RoundRobin, 2)["zuoraFields"],
            json!({ "Soak0000002__c": "soak-0000002" })
        );
    }
}

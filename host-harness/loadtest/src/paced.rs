//! `harness soak --scenario paced`: one vendor, N tasks, the mock enforcing the vendor's
//! rate R in the vendor's style (its own 429 and headers), the connection paced at C
//! (default R). The figures say how close the run came to the vendor's bound (N / R),
//! how many 429s it met, and, as in the fault soak, that every task's effect is stored
//! exactly once.
//!
//! The tasks and their effects are the fault soak's ([`crate::soak`]), all dealt to the
//! one vendor; no faults are injected. Before the measured run, a warm-up without any
//! limit fills the instance pool and the HTTP connections; the measured run then starts
//! with fresh credentials (so its logins are part of it) and a fresh pacer.
//!
//! Targets (a benchmark, not a timed test): configured at the vendor's rate, the elapsed
//! time within 5% of the bound with no 429; configured 10× too fast, no failed task and
//! 429s under 2% of the requests.

use crate::soak::{self, Deal, Peak, Setup};
use crate::{LoadtestError, Result, ensure};
use harness_config::{Connections, Credentials};
use harness_mock::Vendor;
use harness_pacing::{ConnectionLimits, Rate};
use harness_sandbox::SandboxOptions;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many tasks when none is given.
pub const DEFAULT_TASKS: usize = 1_000;
/// How many warm-up tasks (at most the concurrency).
const WARM_UP: usize = 32;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PacedOptions {
    /// The vendor every task calls.
    pub vendor: Vendor,
    /// How many tasks (one workflow each).
    pub tasks: usize,
    /// The rate the mock enforces, as the vendor would.
    pub vendor_rate: Rate,
    /// The connection's configured rate (`None`: the vendor's).
    pub connection_rate: Option<Rate>,
    /// Latency the mock adds to every answer, ms.
    pub latency_ms: u64,
    /// The most workflows in flight at once.
    pub concurrency: usize,
}

impl PacedOptions {
    /// The rate the connection is paced at.
    pub fn connection_rate(&self) -> Rate {
        self.connection_rate.unwrap_or(self.vendor_rate)
    }

    /// How long N tasks take at the vendor's rate, at the least: N × period / count.
    pub fn bound(&self) -> Duration {
        let nanos = self.vendor_rate.per.as_nanos() * self.tasks as u128
            / u128::from(self.vendor_rate.count.get());
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Why these options cannot run, if they cannot.
    pub fn check(&self) -> std::result::Result<(), soak::InvalidSoakOption> {
        if self.tasks == 0 {
            return Err(soak::InvalidSoakOption(
                "--tasks must be at least 1".to_string(),
            ));
        }
        if !(1..=soak::MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(soak::InvalidSoakOption(format!(
                "--concurrency {} must be between 1 and {}",
                self.concurrency,
                soak::MAX_CONCURRENCY
            )));
        }
        Ok(())
    }
}

/// `--vendor-rate` / `--connection-rate`: a number of requests per second (`15`), or a
/// rate as `harness.toml` writes it (`15/s`, `3000/10m`).
pub fn parse_rate(text: &str) -> std::result::Result<Rate, String> {
    match text.trim().parse::<u32>() {
        Ok(count) => NonZeroU32::new(count)
            .map(|count| Rate::new(count, Duration::from_secs(1)))
            .ok_or_else(|| format!("`{text}`: a rate must allow at least 1 request")),
        Err(_) => text.trim().parse::<Rate>().map_err(|e| e.to_string()),
    }
}

/// The paced soak's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PacedReport {
    /// The options.
    pub options: PacedOptions,
    /// Accounting of every task, as the fault soak does it.
    pub accounting: soak::SoakReport,
    /// How long the tasks took, ms.
    pub elapsed_ms: u64,
    /// N / R, ms.
    pub bound_ms: u64,
    /// Requests the tasks sent (attempts).
    pub requests: usize,
    /// 429s the mock answered for the vendor's limit.
    pub rate_limited_responses: u64,
    /// 429s the connection's pacer received (the same, seen from the host).
    pub rate_limited_seen: u64,
    /// The highest resident memory sampled during the run, MB.
    pub rss_peak_mb: f64,
}

impl PacedReport {
    /// Failed tasks.
    pub fn failed(&self) -> usize {
        self.accounting.failed()
    }

    /// Every task accounted for (none missing or duplicated) and none failed.
    pub fn ok(&self) -> bool {
        self.accounting.clean() && self.failed() == 0
    }

    /// Elapsed over the bound.
    pub fn elapsed_over_bound(&self) -> f64 {
        if self.bound_ms == 0 {
            0.0
        } else {
            self.elapsed_ms as f64 / self.bound_ms as f64
        }
    }

    /// 429s per request.
    pub fn rate_limited_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.rate_limited_responses as f64 / self.requests as f64
        }
    }

    /// The JSON report.
    pub fn to_json(&self) -> Value {
        let a = &self.accounting;
        json!({
            "scenario": "paced",
            "ok": self.ok(),
            "vendor": self.options.vendor.name(),
            "tasks": a.tasks,
            "vendor_rate": self.options.vendor_rate.to_string(),
            "connection_rate": self.options.connection_rate().to_string(),
            "latency_ms": self.options.latency_ms,
            "concurrency": self.options.concurrency,
            "elapsed_ms": self.elapsed_ms,
            "bound_ms": self.bound_ms,
            "elapsed_over_bound": round3(self.elapsed_over_bound()),
            "requests": self.requests,
            "rate_limited_responses": self.rate_limited_responses,
            "rate_limited_seen": self.rate_limited_seen,
            "rate_limited_share": round3(self.rate_limited_share()),
            "completed": a.completed,
            "failed": self.failed(),
            "failed_by_kind": a.failed_by_kind,
            "failure_examples": a.failure_examples,
            "retries": a.retries,
            "duplicates": a.duplicates,
            "missing": a.missing,
            "unaccounted": a.unaccounted,
            "stray_effects": a.stray_effects,
            "problems": a.problems,
            "rss_peak_mb": self.rss_peak_mb,
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Run the paced soak: print a table to `out` and return the figures.
pub async fn run(
    options: PacedOptions,
    sandbox: SandboxOptions,
    out: &mut (dyn Write + Send),
) -> Result<PacedReport> {
    options
        .check()
        .map_err(|e| LoadtestError::Failed(e.to_string()))?;
    let Setup {
        mock,
        sandbox,
        definition,
    } = soak::setup(options.concurrency, sandbox).await?;
    let deal = Deal::Only(options.vendor);

    // Warm up without limits: instances, connections.
    let warm_up = options.concurrency.min(WARM_UP);
    soak::store_records(&mock, deal, 0..warm_up)?;
    let unlimited = Arc::new(Credentials::new(
        Connections::for_mock(&mock),
        sandbox.http(),
    ));
    let warmed = soak::drive(
        &soak::runner(&mock, &sandbox, unlimited),
        &definition,
        &mock,
        deal,
        0..warm_up,
        options.concurrency,
    )
    .await;
    ensure!(
        warmed.iter().flatten().any(|ran| ran.completed),
        "none of the {warm_up} warm-up tasks completed (without limits): {:?}",
        warmed.iter().flatten().find_map(|ran| ran.message.clone())
    );
    mock.wait_until_idle().await;
    mock.reset();
    soak::store_records(&mock, deal, 0..options.tasks)?;

    // The vendor's limit and latency on the mock, the connection's on a fresh pacer.
    mock.set_rate_limit(options.vendor, Some(options.vendor_rate));
    mock.set_latency(Duration::from_millis(options.latency_ms));
    let refused_before = mock.rate_limited_responses();
    let connections = Connections::for_mock(&mock).with_connection_limits(
        options.vendor.name(),
        ConnectionLimits {
            rate: Some(options.connection_rate()),
            max_in_flight: None,
        },
    );
    let credentials = Arc::new(Credentials::new(connections, sandbox.http()));
    let runner = soak::runner(&mock, &sandbox, credentials.clone());

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
    let results = soak::drive(
        &runner,
        &definition,
        &mock,
        deal,
        0..options.tasks,
        options.concurrency,
    )
    .await;
    let elapsed = started.elapsed();
    mock.wait_until_idle().await;
    peak.sample();
    sampler.abort();
    let rate_limited_responses = mock.rate_limited_responses() - refused_before;
    mock.set_rate_limit(options.vendor, None);

    let effects = soak::read_effects(&mock, deal, options.tasks);
    let accounting = soak::account(&results, &effects);
    let report = PacedReport {
        bound_ms: u64::try_from(options.bound().as_millis()).unwrap_or(u64::MAX),
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        requests: accounting.attempts,
        rate_limited_responses,
        rate_limited_seen: credentials
            .pacer(options.vendor.name())
            .map_or(0, |pacer| pacer.rate_limited()),
        rss_peak_mb: (peak.get() * 10.0).round() / 10.0,
        accounting,
        options,
    };
    print_table(&report, out)?;
    Ok(report)
}

fn print_table(report: &PacedReport, out: &mut (dyn Write + Send)) -> Result<()> {
    let o = &report.options;
    let a = &report.accounting;
    writeln!(
        out,
        "paced soak: {} {} tasks, vendor limit {}, connection paced at {}, latency {} ms, concurrency {}",
        a.tasks,
        o.vendor.name(),
        o.vendor_rate,
        o.connection_rate(),
        o.latency_ms,
        o.concurrency
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "elapsed:            {:.1} s, bound (N / R) {:.1} s: {:.3}× the bound",
        report.elapsed_ms as f64 / 1000.0,
        report.bound_ms as f64 / 1000.0,
        report.elapsed_over_bound()
    )?;
    writeln!(
        out,
        "429s:               {} of {} requests ({:.2}%), {} seen by the connection",
        report.rate_limited_responses,
        report.requests,
        report.rate_limited_share() * 100.0,
        report.rate_limited_seen
    )?;
    let by_kind: BTreeMap<&String, &usize> = a.failed_by_kind.iter().collect();
    writeln!(
        out,
        "tasks:              {} completed, {} failed {:?}, {} retries",
        a.completed,
        report.failed(),
        by_kind,
        a.retries
    )?;
    writeln!(
        out,
        "duplicates/missing: {} / {} (unaccounted {}, stray effects {})",
        a.duplicates, a.missing, a.unaccounted, a.stray_effects
    )?;
    writeln!(out, "resident memory:    {} MB peak", report.rss_peak_mb)?;
    for problem in &a.problems {
        writeln!(out, "problem: {problem}")?;
    }
    writeln!(
        out,
        "{}",
        if report.ok() {
            "every task completed and accounted for: none missing, none duplicated"
        } else {
            "NOT CLEAN: tasks failed, missing, duplicated or unaccounted (see above)"
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_numbers_or_written_rates() {
        assert_eq!(parse_rate("15").unwrap(), "15/s".parse().unwrap());
        assert_eq!(parse_rate("3000/10m").unwrap(), "3000/10m".parse().unwrap());
        assert_eq!(
            parse_rate("0").unwrap_err(),
            "`0`: a rate must allow at least 1 request"
        );
        assert!(parse_rate("fast").unwrap_err().contains("is not a rate"));
    }

    #[test]
    fn the_bound_is_the_tasks_at_the_vendors_rate() {
        let options = PacedOptions {
            vendor: Vendor::Zuora,
            tasks: 600,
            vendor_rate: "15/s".parse().unwrap(),
            connection_rate: None,
            latency_ms: 0,
            concurrency: 64,
        };
        assert_eq!(options.bound(), Duration::from_secs(40));
        assert_eq!(options.connection_rate(), "15/s".parse().unwrap());
        let rebilly = PacedOptions {
            vendor_rate: "3000/10m".parse().unwrap(),
            ..options
        };
        assert_eq!(rebilly.bound(), Duration::from_secs(120));
        let thirds = PacedOptions {
            vendor_rate: "3/s".parse().unwrap(),
            tasks: 10,
            ..rebilly
        };
        assert_eq!(thirds.bound(), Duration::from_nanos(3_333_333_333));
    }
}

//! `harness soak` at CI size: every task accounted for exactly, and faults really
//! injected. (Times and memory are measured, never asserted, beyond being present.)

use host_harness::cli::{self, EXIT_OK, EXIT_USAGE};
use serde_json::Value;

struct Soaked {
    code: u8,
    stdout: String,
    stderr: String,
    report: Value,
}

async fn soak(name: &str, args: &[&str]) -> Soaked {
    let file =
        std::env::temp_dir().join(format!("harness-soak-{name}-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mut argv = vec!["harness".to_string(), "soak".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["--json".to_string(), file.display().to_string()]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(argv, &mut out, &mut err).await;
    let stdout = String::from_utf8(out).unwrap();
    let stderr = String::from_utf8(err).unwrap();
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout {stdout}; stderr {stderr}"));
    let _ = std::fs::remove_file(&file);
    Soaked {
        code,
        stdout,
        stderr,
        report: serde_json::from_str(&text).unwrap(),
    }
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {report:#}"))
}

fn sum(report: &Value, key: &str) -> u64 {
    report[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} missing in {report:#}"))
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_is_accounted_for_exactly() {
    let ran = soak(
        "ci",
        &[
            "--tasks",
            "200",
            "--fault-rate",
            "0.05",
            "--concurrency",
            "16",
        ],
    )
    .await;
    let report = &ran.report;
    assert_eq!(
        ran.code, EXIT_OK,
        "{}\n{}\n{report:#}",
        ran.stdout, ran.stderr
    );
    for key in [
        "tasks",
        "completed",
        "failed_by_kind",
        "retries",
        "duplicates",
        "missing",
        "rss_start_mb",
        "rss_end_mb",
        "failed_applied",
        "injected_faults",
        "elapsed_ms",
    ] {
        assert!(report.get(key).is_some(), "{key} missing in {report:#}");
    }
    assert_eq!(count(report, "tasks"), 200);
    assert_eq!(
        count(report, "completed") + sum(report, "failed_by_kind"),
        200,
        "{report:#}"
    );
    assert_eq!(count(report, "duplicates"), 0, "{report:#}");
    assert_eq!(count(report, "missing"), 0, "{report:#}");
    assert_eq!(count(report, "unaccounted"), 0, "{report:#}");
    assert_eq!(count(report, "stray_effects"), 0, "{report:#}");
    assert!(count(report, "failed_applied") <= sum(report, "failed_by_kind"));
    assert_eq!(report["ok"], true);
    assert_eq!(report["fault_rate"], 0.05);
    assert_eq!(count(report, "concurrency"), 16);
    // Every vendor task got its share: 50 each.
    for vendor in ["rebilly", "elevate", "zuora", "billingplatform"] {
        assert_eq!(report["by_vendor"][vendor]["tasks"], 50, "{vendor}");
    }
    for key in ["rss_start_mb", "rss_end_mb"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(
        ran.stdout
            .contains("every task accounted for: none missing, none duplicated"),
        "{}",
        ran.stdout
    );
}

/// At a high fault rate and one workflow at a time (so the seeded faults fall on the
/// same requests every run), faults are injected, retried, and some non-idempotent
/// tasks fail rather than being re-sent; still none missing or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_really_injected_and_retried() {
    let ran = soak(
        "faults",
        &[
            "--tasks",
            "40",
            "--fault-rate",
            "0.5",
            "--concurrency",
            "1",
            "--seed",
            "7",
        ],
    )
    .await;
    let report = &ran.report;
    assert_eq!(
        ran.code, EXIT_OK,
        "{}\n{}\n{report:#}",
        ran.stdout, ran.stderr
    );
    assert!(count(report, "injected_faults") > 0, "{report:#}");
    assert!(count(report, "retries") > 0, "{report:#}");
    assert!(sum(report, "attempt_failures_by_kind") > 0, "{report:#}");
    let non_idempotent_failed = report["by_vendor"]["rebilly"]["failed"].as_u64().unwrap()
        + report["by_vendor"]["elevate"]["failed"].as_u64().unwrap();
    assert!(non_idempotent_failed > 0, "{report:#}");
    assert_eq!(
        count(report, "completed") + sum(report, "failed_by_kind"),
        40
    );
    assert_eq!(count(report, "duplicates"), 0, "{report:#}");
    assert_eq!(count(report, "missing"), 0, "{report:#}");
}

/// Paced at the vendor's own rate, Rebilly's non-idempotent usages meet no 429, every
/// one is created exactly once, and the run takes at least the spacing the rate asks
/// for (N - 1 intervals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_paced_at_the_vendors_rate_meets_no_429_and_loses_nothing() {
    let ran = soak(
        "paced-at-rate",
        &[
            "--scenario",
            "paced",
            "--vendor",
            "rebilly",
            "--tasks",
            "40",
            "--vendor-rate",
            "20",
        ],
    )
    .await;
    let report = &ran.report;
    assert_eq!(
        ran.code, EXIT_OK,
        "{}\n{}\n{report:#}",
        ran.stdout, ran.stderr
    );
    assert_eq!(report["scenario"], "paced");
    assert_eq!(report["vendor"], "rebilly");
    assert_eq!(report["vendor_rate"], "20/s");
    assert_eq!(report["connection_rate"], "20/s");
    assert_eq!(count(report, "tasks"), 40);
    assert_eq!(count(report, "completed"), 40, "{report:#}");
    assert_eq!(count(report, "failed"), 0, "{report:#}");
    assert_eq!(count(report, "requests"), 40, "{report:#}");
    assert_eq!(count(report, "rate_limited_responses"), 0, "{report:#}");
    assert_eq!(count(report, "rate_limited_seen"), 0, "{report:#}");
    assert_eq!(count(report, "duplicates"), 0, "{report:#}");
    assert_eq!(count(report, "missing"), 0, "{report:#}");
    assert_eq!(count(report, "bound_ms"), 2000);
    assert!(count(report, "elapsed_ms") >= 1950, "{report:#}");
    assert!(report["rss_peak_mb"].as_f64().unwrap() > 0.0);
    assert!(
        ran.stdout
            .contains("every task completed and accounted for: none missing, none duplicated"),
        "{}",
        ran.stdout
    );
}

/// Paced ten times faster than BillingPlatform allows, the connection meets the
/// vendor's 429s (which it gives no remaining count before), pauses and slows down;
/// no task fails and none is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_paced_too_fast_is_pushed_back_and_no_task_fails() {
    let ran = soak(
        "paced-too-fast",
        &[
            "--scenario",
            "paced",
            "--vendor",
            "billingplatform",
            "--tasks",
            "60",
            "--vendor-rate",
            "20",
            "--connection-rate",
            "200/s",
        ],
    )
    .await;
    let report = &ran.report;
    assert_eq!(
        ran.code, EXIT_OK,
        "{}\n{}\n{report:#}",
        ran.stdout, ran.stderr
    );
    assert_eq!(report["connection_rate"], "200/s");
    assert_eq!(count(report, "completed"), 60, "{report:#}");
    assert_eq!(count(report, "failed"), 0, "{report:#}");
    // The mock's bucket holds 20: the requests after them, sent 5 ms apart, are refused.
    let refused = count(report, "rate_limited_responses");
    assert!(refused >= 1, "{report:#}");
    assert_eq!(count(report, "rate_limited_seen"), refused, "{report:#}");
    assert_eq!(count(report, "requests"), 60 + refused, "{report:#}");
    assert_eq!(count(report, "retries"), refused, "{report:#}");
    assert_eq!(count(report, "duplicates"), 0, "{report:#}");
    assert_eq!(count(report, "missing"), 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_refuses_bad_options() {
    for args in [
        &["soak", "--fault-rate", "1.5"][..],
        &["soak", "--concurrency", "0"],
        &["soak", "--vendor", "zuora"],
        &["soak", "--scenario", "paced", "--vendor", "zuora"],
        &["soak", "--scenario", "paced", "--fault-rate", "0.1"],
        &[
            "soak",
            "--scenario",
            "paced",
            "--vendor",
            "zuora",
            "--vendor-rate",
            "20",
            "--tasks",
            "0",
        ],
    ] {
        let argv = std::iter::once("harness")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli::run(argv, &mut out, &mut err).await;
        assert_eq!(code, EXIT_USAGE, "{args:?}");
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("harness: --"), "{args:?}: {err}");
    }
}

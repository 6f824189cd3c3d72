//! `harness bench` run as a user runs it: the real binary, which fills the code cache in a
//! separate `harness list` process before measuring and times cold starts as real
//! `harness task` processes. (The in-process run is tested in tests/integration.)

use serde_json::{Value, json};
use std::process::Command;

#[test]
fn bench_binary_measures_with_components_from_a_cache_another_process_filled() {
    let file = std::env::temp_dir().join(format!("harness-bench-bin-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["bench", "--quick", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(report["rss_components_from_cache"], json!(true), "{report}");
    assert_eq!(
        report["cold_start_ms"]["method"],
        json!("process"),
        "{report}"
    );
    assert!(
        stdout.contains("tasks in flight (components loaded from the code cache)"),
        "{stdout}"
    );
}

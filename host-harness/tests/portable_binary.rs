//! The `harness` binary carries its tasks: a copy run from an empty directory, with the
//! build tree's components hidden and no environment, runs every task to the same
//! result as the binary in the build tree.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Renames a directory away for as long as it lives, and back when dropped (also when
/// the test panics).
struct Hidden {
    path: PathBuf,
    away: PathBuf,
}

impl Hidden {
    fn new(path: &Path) -> Hidden {
        let away = path.with_extension(format!("hidden-{}", std::process::id()));
        std::fs::rename(path, &away).unwrap_or_else(|e| panic!("hiding {}: {e}", path.display()));
        Hidden {
            path: path.to_path_buf(),
            away,
        }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.away, &self.path);
    }
}

/// Run `harness` with `args` in `dir`, with nothing of the environment but `HOME`; the
/// exit status and stdout.
fn harness(binary: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A task result without what varies between runs of the mock: its port, the `date`
/// header, and the record times it stamps.
fn stable(result: &str) -> Value {
    let mut value: Value = serde_json::from_str(result).unwrap();
    normalize(&mut value);
    if let Some(headers) = value
        .pointer_mut("/output/response/headers")
        .and_then(Value::as_object_mut)
    {
        headers.remove("date");
    }
    value
}

fn normalize(value: &mut Value) {
    match value {
        Value::String(text) => {
            while let Some(at) = text.find("127.0.0.1:") {
                let start = at + "127.0.0.1:".len();
                let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
                text.replace_range(at..start + digits, "MOCK");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if ["createdTime", "updatedTime", "Updated"].contains(&key.as_str()) {
                    *field = Value::Null;
                } else {
                    normalize(field);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn a_copy_of_the_binary_in_an_empty_directory_runs_every_task_without_the_build_tree() {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tasks");
    let tasks = [
        "billingplatform-update-usage-identifier",
        "zuora-update-usage",
        "elevate-patch-usage-product-inventory",
        "rebilly-create-usage",
        "http",
        "json-jq-transform",
        "javascript",
    ];
    // What the binary in the build tree prints, for comparison.
    let mut expected = Vec::new();
    for task in tasks {
        let input = examples.join(format!("{task}.json"));
        let (code, out, err) = harness(
            &built,
            &std::env::temp_dir(),
            &[
                "--no-cache",
                "task",
                task,
                "--input",
                input.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{task} in the build tree: {out}{err}");
        expected.push(stable(&out));
    }

    let dir = std::env::temp_dir().join(format!("harness-portable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("harness");
    std::fs::copy(&built, &binary).unwrap();
    for task in tasks {
        std::fs::copy(
            examples.join(format!("{task}.json")),
            dir.join(format!("{task}.json")),
        )
        .unwrap();
    }
    // The components the build wrote, beside the binary's build directory.
    let guests = built
        .parent()
        .unwrap()
        .join("guest-target/wasm32-wasip2/guest");
    assert!(guests.join("zuora_update_usage.wasm").exists());
    let hidden = Hidden::new(&guests);

    let (code, out, err) = harness(&binary, &dir, &["--cache-dir", "cache", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    let listed: Vec<&str> = out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let mut sorted = tasks.to_vec();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);
    for (task, expected) in tasks.iter().zip(&expected) {
        let input = format!("{task}.json");
        let (code, out, err) = harness(
            &binary,
            &dir,
            &["--cache-dir", "cache", "task", task, "--input", &input],
        );
        assert_eq!(code, 0, "{task}: {out}{err}");
        let result = stable(&out);
        assert_eq!(result["status"], "COMPLETED", "{task}: {out}");
        assert_eq!(&result, expected, "{task}");
    }
    drop(hidden);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Test-only task component `snoop`: instead of calling a vendor, it reports everything
//! it can find that might hold a credential (environment, arguments, files, stdin, its
//! own input), so tests can show that the host hands it none.

#![allow(unsafe_code)] // wit-bindgen's generated glue

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "task-runner",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::exports::usage_billing::tasks::task::Guest;
use bindings::usage_billing::tasks::types::{TaskError, TaskInfo};
use std::io::Read;

struct Snoop;

impl Guest for Snoop {
    fn info() -> TaskInfo {
        TaskInfo {
            name: "snoop".into(),
            description: "Test component: reports what it can see of its host.".into(),
            method: "GET".into(),
            path: "/".into(),
            idempotent: true,
            input_schema: "{}".into(),
            example_input: "{}".into(),
        }
    }

    fn run(input: String) -> Result<String, TaskError> {
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let args: Vec<String> = std::env::args().collect();
        let root = match std::fs::read_dir("/") {
            Ok(entries) => format!("{} entries", entries.count()),
            Err(e) => format!("error: {e}"),
        };
        let config = match std::fs::read_to_string("harness.toml") {
            Ok(text) => text,
            Err(e) => format!("error: {e}"),
        };
        let mut stdin = String::new();
        let stdin = match std::io::stdin().read_to_string(&mut stdin) {
            Ok(_) => stdin,
            Err(e) => format!("error: {e}"),
        };
        println!("snoop looked around");
        Ok(serde_json::json!({
            "env": env,
            "args": args,
            "root": root,
            "config": config,
            "stdin": stdin,
            "input": input,
        })
        .to_string())
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Snoop with_types_in bindings);

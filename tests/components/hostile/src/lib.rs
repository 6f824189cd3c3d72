//! Test-only task component `hostile`: does what its input's `"do"` asks, each a way a
//! task component could misbehave, so tests can show the sandbox stops it and goes on
//! serving other tasks:
//! - `loop`: computes forever;
//! - `allocate`: allocates (and touches) memory without end;
//! - `recurse`: recurses without end (stack overflow);
//! - `trap`: panics (a wasm trap);
//! - `call`: sends a GET to `uri` (an origin the host may not have granted);
//! - `output`: returns an output of `bytes` bytes;
//! - `log`: writes `bytes` bytes to stdout, then returns `{}`.

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
use bindings::wasi::http::{outgoing_handler, types as http};
use serde_json::Value;
use std::io::Write;

struct Hostile;

impl Guest for Hostile {
    fn info() -> TaskInfo {
        TaskInfo {
            name: "hostile".into(),
            description: "Test component: misbehaves as its input asks.".into(),
            method: "GET".into(),
            path: "/".into(),
            idempotent: true,
            input_schema: "{}".into(),
            example_input: r#"{"do": "loop"}"#.into(),
        }
    }

    fn run(input: String) -> Result<String, TaskError> {
        let input: Value = serde_json::from_str(&input).unwrap_or_default();
        let bytes = input["bytes"].as_u64().unwrap_or(0) as usize;
        match input["do"].as_str().unwrap_or("") {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "allocate" => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    kept.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&kept);
                }
            }
            "recurse" => Ok(recurse(std::hint::black_box(1)).to_string()),
            "trap" => panic!("hostile component panics on purpose"),
            "call" => call(input["uri"].as_str().unwrap_or("")),
            "output" => Ok(format!("\"{}\"", "x".repeat(bytes.saturating_sub(2)))),
            "log" => {
                let line = [b'y'; 1024];
                let mut stdout = std::io::stdout();
                for _ in 0..bytes / 1024 {
                    let _ = stdout.write_all(&line);
                }
                let _ = stdout.flush();
                Ok("{}".into())
            }
            other => Err(TaskError::Transport(format!("unknown behaviour `{other}`"))),
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[depth as usize % 64] + 1) + frame[0]
}

/// GET `uri` through wasi:http; the host's answer (or refusal) comes back as the result.
fn call(uri: &str) -> Result<String, TaskError> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| TaskError::Transport("uri must be absolute".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let request = http::OutgoingRequest::new(http::Fields::new());
    let scheme = if scheme == "https" {
        http::Scheme::Https
    } else {
        http::Scheme::Http
    };
    let refused = |what: &str| TaskError::Transport(format!("{what} refused"));
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| refused("path"))?;
    let body = request.body().map_err(|()| refused("body"))?;
    let future = outgoing_handler::handle(request, None).map_err(error)?;
    http::OutgoingBody::finish(body, None).map_err(error)?;
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response.map_err(|()| refused("response"))?.map_err(error)?;
    Ok(serde_json::json!({ "status": response.status() }).to_string())
}

fn error(code: http::ErrorCode) -> TaskError {
    match code {
        http::ErrorCode::HttpRequestDenied => TaskError::Denied("request denied".into()),
        other => TaskError::Transport(format!("{other:?}")),
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Hostile with_types_in bindings);

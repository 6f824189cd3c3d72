//! A run with `--config` opens no listening socket: the embedded mock (with its open
//! admin routes) starts only when a run uses it. (The worker's case is in temporal.rs.)

#[path = "common/sockets.rs"]
mod sockets;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn harness_mock_is_seen_listening_on_the_port_it_prints() {
    let mut mock = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["mock", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(mock.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let ports = sockets::listening_ports(mock.id());
    let _ = mock.kill();
    let _ = mock.wait();
    assert_eq!(ports, vec![port]);
}

#[test]
fn a_run_with_a_config_opens_no_listening_socket_while_its_task_is_out() {
    // A vendor stand-in that holds its answer until the test has looked.
    let vendor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let vendor_port = vendor.local_addr().unwrap().port();
    let (looked_tx, looked_rx) = std::sync::mpsc::channel::<()>();
    let (arrived_tx, arrived_rx) = std::sync::mpsc::channel::<String>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = vendor.accept().unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).unwrap();
            request.extend_from_slice(&buffer[..n]);
        }
        let head = String::from_utf8_lossy(&request).into_owned();
        arrived_tx.send(head).unwrap();
        looked_rx.recv().unwrap();
        let body = r#"{"id":"usage_1"}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });

    let dir = std::env::temp_dir().join(format!("harness-listeners-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("harness.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nallow_addresses = [\"127.0.0.1\"]\n\n[connections.vendor]\nbase_url = \"http://127.0.0.1:{vendor_port}\"\nauth = {{ type = \"header\", name = \"REB-APIKEY\", value_env = \"T_KEY\" }}\n"
        ),
    )
    .unwrap();
    let definition = dir.join("definition.json");
    std::fs::write(
        &definition,
        r#"{"name": "one-usage", "tasks": [{"name": "rebilly-create-usage", "taskReferenceName": "report",
            "inputParameters": {"connection": "vendor", "body": {"subscriptionId": "sub_1", "quantity": 1, "usageTime": "2026-11-21T12:00:00Z"}}}]}"#,
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .arg(&definition)
        .env("T_KEY", "k")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = arrived_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the task's request reaches the vendor");
    assert!(head.starts_with("POST /usages HTTP/1.1\r\n"), "{head}");
    let ports = sockets::listening_ports(run.id());
    looked_tx.send(()).unwrap();
    let output = run.wait_with_output().unwrap();
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ports, Vec::<u16>::new(), "listening while the task was out");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(result["status"], "COMPLETED", "{result}");
    assert_eq!(result["tasks"][0]["output"]["response"]["statusCode"], 201);
}

//! `harness`: run usage-billing task components sandboxed, or serve the vendor mock.

use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_library_backtraces();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("harness: cannot start the async runtime: {e}");
            return ExitCode::from(host_harness::cli::EXIT_USAGE);
        }
    };
    let args = std::env::args().collect();
    let code = runtime.block_on(host_harness::cli::run(
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ));
    ExitCode::from(code)
}

/// wasmtime builds an error value each time a store is dropped; with `RUST_BACKTRACE`
/// set, every such value captures a stack backtrace, a cost paid on every task run.
/// Library backtraces stay off unless `RUST_LIB_BACKTRACE` asks for them; panics still
/// print theirs under `RUST_BACKTRACE`.
#[allow(unsafe_code)]
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so no
        // thread can read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

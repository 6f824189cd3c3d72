//! `harness`: run usage-billing task components sandboxed, or serve the vendor mock.

use std::process::ExitCode;

fn main() -> ExitCode {
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

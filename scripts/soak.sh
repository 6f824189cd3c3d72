#!/usr/bin/env bash
# The full-size soaks for the README and docs figures. Builds the release harness, then:
#
# 1. the fault soak: `harness soak` with its defaults (10,000 tasks, fault rate 0.05,
#    concurrency 64, seed 42) against the in-process mock, the figures as JSON in
#    $SOAK_JSON (default: <target dir>/soak.json). Extra arguments go to this run
#    (e.g. `--tasks 100000 --concurrency 256`);
# 2. the paced soak (`--scenario paced`), 600 tasks against a vendor limit of 15/s
#    (BillingPlatform's advice), for BillingPlatform (429 with Retry-After only) and
#    Zuora (RateLimit-Remaining/-Reset on every answer), each with the connection
#    configured at the vendor's rate and at 10 times it. Figures in
#    <target dir>/soak-paced-VENDOR-at-rate.json and …-10x.json.
#
# Exit status: 0 when every run is clean (fault soak: every task accounted for, none
# missing, none duplicated; paced: also no task failed), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="${SOAK_JSON:-$target/soak.json}"
cargo build --release -p host-harness
harness="$target/release/harness"
status=0
"$harness" soak --json "$out" "$@" || status=1
echo "figures written to $out"
for vendor in billingplatform zuora; do
  for case in at-rate 10x; do
    connection=15
    [ "$case" = 10x ] && connection=150
    json="$target/soak-paced-$vendor-$case.json"
    echo
    "$harness" soak --scenario paced --vendor "$vendor" --tasks 600 \
      --vendor-rate 15 --connection-rate "$connection" --json "$json" || status=1
    echo "figures written to $json"
  done
done
exit "$status"

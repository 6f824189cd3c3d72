#!/usr/bin/env bash
# Installs the second WASI host of the portability test (tests/integration/portability.rs)
# when missing: @bytecodealliance/jco and @bytecodealliance/preview2-shim from npm, at
# the versions pinned in tests/portability/package-lock.json. Needs Node.js 20+ and npm.
set -euo pipefail
cd "$(dirname "$0")/../tests/portability"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "the portability test needs Node.js 20 or later with npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -x node_modules/.bin/jco ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "installing jco and preview2-shim into tests/portability/node_modules (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
fi

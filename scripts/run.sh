#!/usr/bin/env bash
# The main job: builds tars and starts a node on port 8000 (embedded
# defaults; extra arguments go to `tars serve`, e.g. --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target tars
exec ./build/tars serve "$@"

#!/usr/bin/env bash
# The main job: builds tars and starts a node on http://127.0.0.1:8000.
# With no arguments it serves the demo model from the shared fixtures
# (stories260K); with arguments they go to `tars serve` as they are, e.g.
#   scripts/run.sh --model ~/models/mistral-7b-instruct.Q4_K_M.gguf --host 0.0.0.0
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target tars
if [ "$#" -eq 0 ]; then
  demo="${TARS_FIXTURES:-../shared/models}/stories260K/stories260K.gguf"
  exec ./build/tars serve --model "$demo"
fi
exec ./build/tars serve "$@"

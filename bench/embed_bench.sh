#!/usr/bin/env bash
# Embedding throughput for the all-MiniLM-L6-v2 shape (BENCHMARKS.md,
# "Embeddings"): builds bench_embed_bench and runs it with 2 threads. The
# random F32 model is written to /tmp on the first run. Extra arguments go
# to the benchmark (--reps N, --batch-tokens N, --type f16, --threads N).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TARS_BUILD_DIR:-build}
bash scripts/build.sh --target bench_embed_bench
"$BUILD_DIR/bench/bench_embed_bench" --threads 2 --reps 3 --fixtures "${TARS_FIXTURES:-../shared/models}" "$@"

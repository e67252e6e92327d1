#!/usr/bin/env bash
# The engine's speed benchmark (BENCHMARKS.md): a TinyLlama-1.1B-shaped model
# with random weights, written in F16 by the project's own GGUF writer
# (bench_make_model), quantized by `tars quantize` to Q4_0, Q8_0 and Q4_K_M,
# then `tars bench` pp512 / tg128 on each, printed next to the llama.cpp
# figures of ../shared/BASELINES.md with the ratio. Never fails on speed.
#
#   bench/engine_bench.sh [--threads 2] [--reps 5] [--types "Q4_0 Q8_0 Q4_K_M"]
#
# Environment: BUILD_DIR (default build), MODELS_DIR (default
# build/bench-models, gitignored), VOCAB (default
# ../shared/models/vocab/ggml-vocab-llama-spm.gguf), KEEP_F16=1 to keep the
# 2.2 GB F16 file after quantizing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
MODELS_DIR=${MODELS_DIR:-$ROOT/build/bench-models}
VOCAB=${VOCAB:-$ROOT/../shared/models/vocab/ggml-vocab-llama-spm.gguf}
THREADS=2
REPS=5
TYPES="Q4_0 Q8_0 Q4_K_M"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --types) TYPES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# llama.cpp on this kind of machine, 2 threads (../shared/BASELINES.md).
declare -A BASE_PP=([Q4_0]=265 [Q8_0]=145 [Q4_K_M]=195)
declare -A BASE_TG=([Q4_0]=61 [Q8_0]=36 [Q4_K_M]=58)

if [[ ! -x $BUILD_DIR/tars || ! -x $BUILD_DIR/bench/bench_make_model ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target tars bench_make_model -j2
fi
TARS=$BUILD_DIR/tars
mkdir -p "$MODELS_DIR"
F16=$MODELS_DIR/tinyllama-shape-f16.gguf

need_f16=0
for t in $TYPES; do [[ -f $MODELS_DIR/tinyllama-shape-$t.gguf ]] || need_f16=1; done
if [[ $need_f16 == 1 && ! -f $F16 ]]; then
  echo "== writing $F16 (TinyLlama-1.1B shape, random F16 weights)" >&2
  "$BUILD_DIR/bench/bench_make_model" "$F16" --vocab "$VOCAB"
fi
for t in $TYPES; do
  out=$MODELS_DIR/tinyllama-shape-$t.gguf
  if [[ ! -f $out ]]; then
    echo "== tars quantize $t" >&2
    "$TARS" quantize "$F16" "$out" "$t"
  fi
done
if [[ ${KEEP_F16:-0} != 1 && -f $F16 ]]; then rm -f "$F16"; fi

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs;" \
     "flags: $(grep -o -w -E 'avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== date: $(date -u +%Y-%m-%dT%H:%MZ); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

results=()
for t in $TYPES; do
  json=$("$TARS" bench "$MODELS_DIR/tinyllama-shape-$t.gguf" -p 512 -n 128 -t "$THREADS" -r "$REPS" --json 2>/dev/null)
  results+=("$t $(jq -r '[.[] | "\(.test)=\(.avg_ts)±\(.stddev_ts)"] | join(" ")' <<<"$json") $(jq -r '.[0].isa' <<<"$json")")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

printf '\n| weights | test | tars t/s | llama.cpp t/s | ratio |\n| --- | --- | ---: | ---: | ---: |\n'
for r in "${results[@]}"; do
  read -r t pp tg isa <<<"$r"
  for kv in "$pp" "$tg"; do
    test=${kv%%=*}; val=${kv#*=}; mean=${val%%±*}; sd=${val#*±}
    if [[ $test == pp* ]]; then base=${BASE_PP[$t]}; else base=${BASE_TG[$t]}; fi
    printf '| %s | %s | %.1f ± %.1f | %s | %.2f |\n' "$t" "$test" "$mean" "$sd" "$base" "$(echo "$mean / $base" | bc -l)"
  done
done
echo
echo "threads $THREADS, $REPS repetitions after a warm-up; kernel level: $(read -r _ _ _ isa <<<"${results[0]}"; echo "$isa")"
echo "load average before: see above; after: $load_after (figures are noisy above about 1.5)"

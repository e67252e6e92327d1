#!/usr/bin/env bash
# The GPU check of issue 7: on a machine with an NVIDIA GPU, run the GPU
# tests, then the benchmarks, and print one table. Takes a build made
# beforehand (configure with -DTARS_CUDA=ON -DTARS_CUDA_ARCHS=90 and build
# the targets tars tars_gpu_tests bench_make_model bench_gpu_bandwidth
# bench_embed_bench), so
# only those binaries need to travel. Finishes in a few minutes.
#
#   bench/gpu_check.sh BUILD_DIR [--reps 3]
#
# Environment: MODELS_DIR (default BUILD_DIR/bench-models), VOCAB (default
# ../shared/models/vocab/ggml-vocab-llama-spm.gguf), TARS_FIXTURES (the
# shared model fixtures the tests read).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:?usage: bench/gpu_check.sh BUILD_DIR [--reps N]}
shift
REPS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
MODELS_DIR=${MODELS_DIR:-$BUILD_DIR/bench-models}
VOCAB=${VOCAB:-$ROOT/../shared/models/vocab/ggml-vocab-llama-spm.gguf}
TARS=$BUILD_DIR/tars
rows=()

echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
echo "== date: $(date -u +%Y-%m-%dT%H:%MZ)"

# 1. GPU tests: the test binary directly (gtest_discover_tests needs the
# configure tree; the binary alone is what travels).
echo "== GPU tests"
if "$BUILD_DIR/tests/tars_gpu_tests" --gtest_brief=1; then gpu_tests=pass; else gpu_tests=FAIL; fi
rows+=("gpu tests | - | $gpu_tests")

# 2. Device bandwidth (device-to-device copy).
bw=$("$BUILD_DIR/bench/bench_gpu_bandwidth" 2>&1 | sed -n 's/.*bandwidth_gbs=//p')
rows+=("bandwidth (D2D copy) | GB/s | ${bw:-n/a}")

# 3. Decode and prompt speed. Needs `tars bench --device cuda` (the backend
# selection flag, wired by the lead); reported as n/a until it exists.
if "$TARS" bench --help 2>&1 | grep -q -- '--device'; then
  mkdir -p "$MODELS_DIR"
  for shape in 1.1b 7b; do
    f16=$MODELS_DIR/$shape-f16.gguf
    [[ -f $f16 ]] || "$BUILD_DIR/bench/bench_make_model" "$f16" --vocab "$VOCAB" --shape "$shape" >&2
    # The k-quant quantizer is slow (minutes for 7B): the 7B shape gets Q4_0 only.
    types="Q4_0 Q4_K_M"
    [[ $shape == 7b ]] && types="Q4_0"
    for t in $types; do
      m=$MODELS_DIR/$shape-$t.gguf
      [[ -f $m ]] || "$TARS" quantize "$f16" "$m" "$t" >&2
      json=$("$TARS" bench "$m" --device cuda -p 512 -n 128 -r "$REPS" --json 2>/dev/null)
      for test in pp512 tg128; do
        v=$(jq -r --arg t "$test" '.[] | select(.test == $t) | .avg_ts' <<<"$json" 2>/dev/null)
        rows+=("$shape $t $test | tokens/s | ${v:-n/a}")
      done
      if [[ $t == Q4_0 && -n ${bw:-} ]]; then
        bytes=$(stat -c %s "$m")
        tg=$(jq -r '.[] | select(.test == "tg128") | .avg_ts' <<<"$json" 2>/dev/null)
        [[ -n $tg ]] && rows+=("$shape Q4_0 tg128 / bandwidth limit | fraction | $(echo "$tg * $bytes / ($bw * 10^9)" | bc -l | cut -c1-5)")
      fi
      # Partial offload: half the layers on the GPU, the rest on the CPU.
      if [[ $shape == 7b && $t == Q4_0 ]]; then
        json=$("$TARS" bench "$m" --device cuda --gpu-layers 16 -p 512 -n 128 -r 1 --json 2>/dev/null)
        for test in pp512 tg128; do
          v=$(jq -r --arg t "$test" '.[] | select(.test == $t) | .avg_ts' <<<"$json" 2>/dev/null)
          rows+=("$shape $t $test, 16 of 32 layers on the GPU | tokens/s | ${v:-n/a}")
        done
      fi
    done
  done
else
  rows+=("tg128 / pp512 (1.1B, 7B; Q4_0, Q4_K_M) | tokens/s | n/a: tars bench has no --device option yet")
fi
# 4. MiniLM-shape embeddings: 12-token sentences sent 32 and 128 at a time.
if [[ -x $BUILD_DIR/bench/bench_embed_bench ]]; then
  out=$("$BUILD_DIR/bench/bench_embed_bench" --device cuda --call-inputs 32 --call-inputs 128 \
        --reps "$REPS" --fixtures "${TARS_FIXTURES:-$ROOT/../shared/models}" 2>&1)
  echo "$out"
  for n in 32 128; do
    v=$(grep "calls of *$n x" <<<"$out" | sed -n 's/.*sentences_per_s=//p')
    rows+=("MiniLM embeddings, 12 tokens, batch $n | sentences/s | ${v:-n/a}")
  done
else
  rows+=("MiniLM embeddings (batch 32, 128) | sentences/s | n/a: bench_embed_bench not built")
fi

# 5. The node on the GPU: `tars gpus`, then `tars serve --device cuda` with
# the demo model and a 1.1B Q4_0 split 11/22 layers (GPU/CPU); /status shows
# where each model's memory is, and one completion each.
echo "== tars gpus"
"$TARS" gpus
port=18931
data=$(mktemp -d)
m11=$MODELS_DIR/1.1b-Q4_0.gguf
cat > "$data/node.toml" <<TOML
[engine]
device = "cuda"
ctx_size = 512
[[model]]
path = "$ROOT/../shared/models/stories260K/stories260K.gguf"
alias = "stories"
[[model]]
path = "$m11"
alias = "tiny-1.1b"
gpu_layers = 11
TOML
"$TARS" serve --config "$data/node.toml" --port $port --data-dir "$data" > "$data/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.5; done
status=$(curl -s "http://127.0.0.1:$port/status")
jq -c '.models_loaded[] | {id, backend, parts: .memory.parts}' <<<"$status"
for id in stories tiny-1.1b; do
  curl -s "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' \
    -d "{\"model\": \"$id\", \"prompt\": \"Once upon a time\", \"max_tokens\": 16, \"temperature\": 0}" |
    jq -c '{model, text: .choices[0].text}'
done
kill $serve_pid; wait $serve_pid 2>/dev/null
gpu_parts=$(jq -r '[.models_loaded[].memory.parts[] | select(.backend == "cuda")] | length' <<<"$status" 2>/dev/null)
rows+=("tars serve --device cuda: model parts on the GPU | count | ${gpu_parts:-n/a} (log: $data/serve.log)")

printf '\n| check | unit | value |\n| --- | --- | ---: |\n'
for r in "${rows[@]}"; do echo "| $r |"; done
[[ $gpu_tests == pass ]]

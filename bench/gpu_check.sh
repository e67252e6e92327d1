#!/usr/bin/env bash
# The GPU check of issue 7: on a machine with an NVIDIA GPU, run the GPU
# tests, then the benchmarks, and print one table. Takes a build made
# beforehand, or better the bundle bench/gpu_bundle.sh makes of it (the
# binaries, their shared libraries and the fixtures: a GPU machine may have
# none of them), so only that needs to travel. Needs python3 (for JSON), no
# jq, bc or curl.
#
#   bench/gpu_check.sh BUILD_OR_BUNDLE_DIR [--reps 3] [--quick]
#
# --quick: tests, bandwidth, the node checks and the 1.1B shape only (no 7B:
# writing its two 3.8 GB files takes a minute or so).
# Environment: MODELS_DIR (default DIR/bench-models), VOCAB, TARS_FIXTURES
# (default DIR/models when the bundle has them, else ../shared/models),
# GPU_CHECK_DEVICE (default cuda; cpu rehearses the script without a GPU).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:?usage: bench/gpu_check.sh BUILD_OR_BUNDLE_DIR [--reps N] [--quick]}
DIR=$(cd "$DIR" && pwd)
shift
REPS=3
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -d $DIR/models ]]; then FIXTURES_DEFAULT=$DIR/models; else FIXTURES_DEFAULT=$ROOT/../shared/models; fi
export TARS_FIXTURES=${TARS_FIXTURES:-$FIXTURES_DEFAULT}
MODELS_DIR=${MODELS_DIR:-$DIR/bench-models}
VOCAB=${VOCAB:-$TARS_FIXTURES/vocab/ggml-vocab-llama-spm.gguf}
# The bundle's libraries, and cuBLAS wherever CUDA put it.
cublas=$(ls /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda*/lib64/libcublas.so.13 \
           /usr/lib/x86_64-linux-gnu/libcublas.so.13 2>/dev/null | head -1)
[[ -z $cublas ]] && cublas=$(find /opt /usr/local -name 'libcublas.so.13' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$DIR/lib${cublas:+:$(dirname "$cublas")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
TARS=$DIR/tars
DEV=${GPU_CHECK_DEVICE:-cuda}
rows=()
# Each row goes into the final table and, at once, into the log ("ROW | ..."),
# so a run cut short by a time limit still shows what it measured.
add_row() {
  rows+=("$1")
  echo "ROW | $1 |"
}
# py 'expression over j (the JSON on stdin)': prints the value, or nothing.
py() { python3 -c "import json,sys
try:
    j = json.load(sys.stdin); v = $1
    print('' if v is None else v)
except Exception:
    pass"; }

echo "== device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
echo "== date: $(date -u +%Y-%m-%dT%H:%MZ); cuBLAS: ${cublas:-not found}"

# 1. GPU tests: the test binary directly (gtest_discover_tests needs the
# configure tree; the binary alone is what travels), one process per suite:
# a CUDA fault poisons its process's context, and must not hide the other
# suites' results.
echo "== GPU tests"
gpu_tests=pass; skipped_total=0; failed_suites=()
for suite in $("$DIR/tests/tars_gpu_tests" --gtest_list_tests | sed -n 's/^\([^ #][^ ]*\)\.$/\1/p'); do
  test_out=$(timeout 300 "$DIR/tests/tars_gpu_tests" --gtest_brief=1 --gtest_filter="$suite.*" 2>&1)
  test_rc=$?
  echo "$test_out" | grep -v "Skipped$\|^no CUDA device\|^Running main\|^Note: Google Test filter" | tail -12
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) tests\{0,1\}[.,].*/\1/p' <<<"$test_out" | head -1)
  skipped_total=$((skipped_total + ${skipped:-0}))
  if [[ $test_rc -ne 0 ]]; then
    failed_suites+=("$suite (rc $test_rc)")
    # Again with synchronous launches, so an error names the kernel that made it.
    echo "-- $suite again with CUDA_LAUNCH_BLOCKING=1:"
    CUDA_LAUNCH_BLOCKING=1 timeout 300 "$DIR/tests/tars_gpu_tests" --gtest_brief=1 --gtest_filter="$suite.*" 2>&1 | tail -25
  fi
done
# Everything prepared at once: NEXT's kernels, mat-vec variant 5 and
# programmatic dependent launches (TARS_CUDA_PDL, sm_90).
all_tests=pass
if ! TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5 TARS_CUDA_PDL=1 timeout 300 "$DIR/tests/tars_gpu_tests" --gtest_brief=1 \
     > /tmp/gpu_check_all.log 2>&1; then
  all_tests=FAIL
  tail -30 /tmp/gpu_check_all.log
fi
add_row "gpu tests (every suite) with TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5 TARS_CUDA_PDL=1 | - | $all_tests"
if [[ ${#failed_suites[@]} -gt 0 ]]; then gpu_tests="FAIL: ${failed_suites[*]}"
elif [[ $skipped_total -gt 0 ]]; then gpu_tests="pass, but $skipped_total skipped (no device?)"; fi
add_row "gpu tests | - | $gpu_tests"
# 2. Device bandwidth (device-to-device copy), for the decode rows' fractions.
bw=$("$DIR/bench/bench_gpu_bandwidth" 2>&1 | sed -n 's/.*bandwidth_gbs=//p')
add_row "bandwidth (D2D copy) | GB/s | ${bw:-n/a}"
# Decode and prompt speed (random weights, the project's writer and quantizer).
declare -A measured=()  # bench_row labels already run (the first 7B rows run early)
bench_row() {  # bench_row LABEL MODEL [extra tars bench flags...]; BENCH_PP=0: decode only
  local label=$1 m=$2
  shift 2
  [[ -n ${measured[$label]:-} ]] && return
  measured[$label]=1
  local pp=${BENCH_PP:-512} tests="pp512 tg128"
  [[ $pp == 0 ]] && tests=tg128
  json=$(env ${BENCH_ENV:-} "$TARS" bench "$m" --device "$DEV" -p "$pp" -n 128 -r "$REPS" --json "$@" 2>>"${BENCH_LOG:-/dev/null}")
  for test in $tests; do
    local v
    v=$(echo "$json" | py "round([r['avg_ts'] for r in j if r['test'] == '$test'][0], 1)")
    add_row "$label $test | tokens/s | ${v:-n/a}"
    if [[ $test == tg128 && -n $v && -n ${bw:-} && $# -eq 0 ]]; then
      local bytes frac
      bytes=$(stat -c %s "$m")
      frac=$(python3 -c "print(round($v * $bytes / ($bw * 1e9), 3))")
      add_row "$label tg128 x file bytes / bandwidth | fraction of the limit | $frac"
    fi
  done
}
make_model() {  # make_model SHAPE TYPE: the file, written once
  # Written directly in the mix (bench_make_model --type: the engine's
  # quantize plan and row quantizers, tiles of random rows): seconds, where
  # quantizing a 7B F16 file to Q4_K_M would take minutes.
  local m=$MODELS_DIR/$1-$2.gguf
  mkdir -p "$MODELS_DIR"
  [[ -f $m ]] || "$DIR/bench/bench_make_model" "$m" --vocab "$VOCAB" --shape "$1" --type "$2" >&2
}
graph_rows() {  # graph_rows SHAPE: decode as CUDA graphs, replayed and re-captured
  # CudaBackendOptions::graphs, off by default: replayed without a capture
  # while the steps match, and, to compare in the same run, captured anew
  # every step (as before graph replay).
  [[ -n ${measured["$1 Q4_0, CUDA graphs"]:-} ]] && return
  BENCH_ENV=TARS_CUDA_GRAPHS=1 bench_row "$1 Q4_0, CUDA graphs" "$MODELS_DIR/$1-Q4_0.gguf"
  add_row "$1 Q4_0, CUDA graphs: launches / replays / mismatches / instantiations | count | $(echo "$json" | py "'%d / %d / %d / %d' % (j[-1]['cuda_graph_launches'], j[-1]['cuda_graph_replays'], j[-1]['cuda_graph_mismatches'], j[-1]['cuda_graph_instantiations'])")"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_GRAPHS=1 TARS_CUDA_RECAPTURE=1" bench_row \
    "$1 Q4_0, CUDA graphs captured every step" "$MODELS_DIR/$1-Q4_0.gguf"
}
# The decode candidates (TARS_CUDA_PDL: dependent launches, sm_90).
candidate_rows() {  # candidate_rows SHAPE
  local m=$MODELS_DIR/$1-Q4_0.gguf
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_PDL=1 bench_row "$1 Q4_0, TARS_CUDA_PDL=1" "$m"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_PDL=1 TARS_CUDA_GRAPHS=1" bench_row "$1 Q4_0, PDL + graphs" "$m"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5" bench_row "$1 Q4_0, TARS_CUDA_NEXT=1 + mat-vec 5" "$m"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5 TARS_CUDA_PDL=1" bench_row \
    "$1 Q4_0, TARS_CUDA_NEXT=1 + mat-vec 5 + PDL" "$m"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5 TARS_CUDA_PDL=1 TARS_CUDA_GRAPHS=1" bench_row \
    "$1 Q4_0, TARS_CUDA_NEXT=1 + mat-vec 5 + PDL + graphs" "$m"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_MATVEC=5 TARS_CUDA_PDL=1 TARS_CUDA_GRAPHS=1" bench_row \
    "$1 Q4_0, mat-vec 5 + PDL + graphs" "$m"
}

# 3. First the figure issue 7 is judged by, 7B Q4_0 decode: the defaults
# and the candidates, so that a run cut short still has them (--quick: the
# 1.1B's).
first=7b
[[ $QUICK == 1 ]] && first=1.1b
make_model $first Q4_0
bench_row "$first Q4_0" "$MODELS_DIR/$first-Q4_0.gguf"
graph_rows $first
candidate_rows $first

# 4. The other test runs: each mat-vec variant and NEXT's kernels alone.
# The mat-vec's other variants (TARS_CUDA_MATVEC=2, 3, 5; 4 is TARS_CUDA_NEXT's,
# below) through the suites that use it.
for v in 2 3 5; do
  result=pass
  if ! TARS_CUDA_MATVEC=$v timeout 300 "$DIR/tests/tars_gpu_tests" --gtest_brief=1 \
       --gtest_filter='CudaWeightOps.*:CudaModel.*' > /tmp/gpu_check_v$v.log 2>&1; then
    result=FAIL
    tail -30 /tmp/gpu_check_v$v.log
  fi
  add_row "gpu tests (mat-vec and model suites) with TARS_CUDA_MATVEC=$v | - | $result"
done
# The kernels prepared for the next measurement (src/engine/cuda/cuda_next.h).
next_tests=pass
if ! TARS_CUDA_NEXT=1 timeout 300 "$DIR/tests/tars_gpu_tests" --gtest_brief=1 > /tmp/gpu_check_next.log 2>&1; then
  next_tests=FAIL
  tail -30 /tmp/gpu_check_next.log
fi
add_row "gpu tests (every suite) with TARS_CUDA_NEXT=1 | - | $next_tests"
# 5. Each kernel alone on 7B-shaped operands (printed in the log, not the table).
echo "== kernels (bench_gpu_kernels)"
"$DIR/bench/bench_gpu_kernels" --reps 30 2>&1
echo "== kernels with TARS_CUDA_NEXT=1 (attention and norm rows)"
TARS_CUDA_NEXT=1 "$DIR/bench/bench_gpu_kernels" --reps 30 2>&1 | grep -v "^matvec"

# 6. The node on the GPU: `tars gpus`, then `tars serve --device cuda` with
# the demo model (and, once made below, nothing else: the split check runs
# with the 1.1B file in step 7); /status says where each model's memory is.
echo "== tars gpus"
"$TARS" gpus
serve_check() {  # serve_check NAME CONFIG_MODELS...: starts a node, prints parts, one completion per alias
  local name=$1 toml=$2
  local port=$((18900 + RANDOM % 500)) data
  data=$(mktemp -d)
  printf '[engine]\ndevice = "%s"\nctx_size = 512\n%s' "$DEV" "$toml" > "$data/node.toml"
  "$TARS" serve --config "$data/node.toml" --port $port --data-dir "$data" > "$data/serve.log" 2>&1 &
  local pid=$!
  local status=""
  for _ in $(seq 1 240); do
    status=$(python3 -c "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:$port/status').read().decode())" 2>/dev/null) && break
    sleep 0.5
  done
  echo "$status" | py "'\n'.join(json.dumps({'id': m['id'], 'backend': m.get('backend'), 'parts': m.get('memory', {}).get('parts')}) for m in j['models_loaded'])"
  for id in $(echo "$status" | py "' '.join(m['id'] for m in j['models_loaded'])"); do
    python3 - "$port" "$id" <<'PY'
import json, sys, urllib.request
port, model = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
    data=json.dumps({"model": model, "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}).encode(),
    headers={"content-type": "application/json"})
r = json.load(urllib.request.urlopen(req))
print(json.dumps({"model": model, "text": r["choices"][0]["text"]}))
PY
  done
  # Honest accounting: the device memory the node's process really holds
  # (nvidia-smi: CUDA context, kernels, cuBLAS workspace and all) against the
  # bytes /status reports on the GPU; the difference is what the planner's
  # runtime overhead allowance (kGpuRuntimeOverheadBytes, 384 MiB) must cover.
  local used reported
  used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
         awk -F', *' -v p=$pid '$1 == p {print $2}')
  reported=$(echo "$status" | py "round(sum(p['total'] for m in j['models_loaded'] for p in m['memory']['parts'] if p['backend'] == 'cuda') / 2**20, 1)")
  add_row "tars serve ($name): device memory in use (nvidia-smi) / on the GPU in /status | MiB | ${used:-n/a} / ${reported:-n/a}"
  kill $pid; wait $pid 2>/dev/null
  local on_gpu
  on_gpu=$(echo "$status" | py "len([p for m in j['models_loaded'] for p in m['memory']['parts'] if p['backend'] == 'cuda'])")
  add_row "tars serve --device cuda ($name): model parts on the GPU | count | ${on_gpu:-n/a} (log $data/serve.log)"
}
serve_check "demo model" "[[model]]
path = \"$TARS_FIXTURES/stories260K/stories260K.gguf\"
alias = \"stories\"
"

# 6b. MiniLM-shape embeddings: 12-token sentences sent 32 and 128 at a time.
out=$("$DIR/bench/bench_embed_bench" --device "$DEV" --call-inputs 32 --call-inputs 128 \
      --reps "$REPS" --fixtures "$TARS_FIXTURES" 2>&1)
echo "$out"
for n in 32 128; do
  v=$(grep "calls of *$n x" <<<"$out" | sed -n 's/.*sentences_per_s=//p')
  add_row "MiniLM embeddings, 12 tokens, batch $n | sentences/s | ${v:-n/a}"
done

# 7. Decode and prompt speed, 1.1B then 7B (what step 3 ran is not run again), and the
# split check on the 1.1B file.
shapes="1.1b 7b"
[[ $QUICK == 1 ]] && shapes="1.1b"
for shape in $shapes; do
  for t in Q4_0 Q4_K_M; do
    make_model "$shape" "$t"
    bench_row "$shape $t" "$MODELS_DIR/$shape-$t.gguf"
  done
  graph_rows "$shape"
  candidate_rows "$shape"
  # The decode-step variants: unfused kernels, the second mat-vec, both with graphs.
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_FUSE=0 bench_row "$shape Q4_0, unfused (TARS_CUDA_FUSE=0)" "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_MATVEC=2 bench_row "$shape Q4_0, mat-vec variant 2" "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_MATVEC=2 TARS_CUDA_GRAPHS=1" bench_row "$shape Q4_0, mat-vec 2 + graphs" \
    "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_MATVEC=2 bench_row "$shape Q4_K_M, mat-vec variant 2" "$MODELS_DIR/$shape-Q4_K_M.gguf"
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_NEXT=1 bench_row "$shape Q4_0, TARS_CUDA_NEXT=1" "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_MATVEC=5 bench_row "$shape Q4_0, mat-vec variant 5" "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5" bench_row "$shape Q4_K_M, TARS_CUDA_NEXT=1 + mat-vec 5" \
    "$MODELS_DIR/$shape-Q4_K_M.gguf"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=3" bench_row "$shape Q4_0, TARS_CUDA_NEXT=1 + mat-vec 3" \
    "$MODELS_DIR/$shape-Q4_0.gguf"
  BENCH_PP=0 BENCH_ENV=TARS_CUDA_NEXT=1 bench_row "$shape Q4_K_M, TARS_CUDA_NEXT=1" "$MODELS_DIR/$shape-Q4_K_M.gguf"
  BENCH_PP=0 BENCH_ENV="TARS_CUDA_NEXT=1 TARS_CUDA_GRAPHS=1" bench_row "$shape Q4_0, TARS_CUDA_NEXT=1 + graphs" \
    "$MODELS_DIR/$shape-Q4_0.gguf"
  if [[ $shape == 7b ]]; then
    # Where a decode step's GPU time goes (TARS_CUDA_PROFILE: each step starts
    # behind a kernel that holds the GPU while the host queues it, so these
    # are GPU times without waits for the host), default and prepared kernels.
    for penv in "" "TARS_CUDA_NEXT=1 TARS_CUDA_MATVEC=5"; do
      echo "-- 7b Q4_0 decode profile ${penv:-(defaults)}, 32 steps:"
      env $penv TARS_CUDA_PROFILE=1 "$TARS" bench "$MODELS_DIR/7b-Q4_0.gguf" --device "$DEV" -p 0 -n 32 -r 1 \
        --json 2>&1 >/dev/null | grep -A14 "CUDA time per operation" | head -15
    done
  fi
  if [[ $shape == 1.1b ]]; then
    bench_row "1.1b Q4_0, 11 of 22 layers on the GPU" "$MODELS_DIR/1.1b-Q4_0.gguf" --gpu-layers 11
    serve_check "1.1B split 11/22" "[[model]]
path = \"$MODELS_DIR/1.1b-Q4_0.gguf\"
alias = \"tiny-1.1b\"
gpu_layers = 11
"
  fi
done

printf '\n| check | unit | value |\n| --- | --- | ---: |\n'
for r in "${rows[@]}"; do echo "| $r |"; done
[[ ${#failed_suites[@]} -eq 0 ]]

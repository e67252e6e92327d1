#!/usr/bin/env bash
# Packs what bench/gpu_check.sh needs on a GPU machine that has neither this
# build's shared libraries (spdlog, fmt, toml++, cpp-httplib, ...) nor the
# model fixtures: the binaries of a CUDA build, the shared libraries they load
# (all but the C library itself), and the fixtures the GPU tests and
# benchmarks read. The result mirrors a build directory, so
#
#   bench/gpu_bundle.sh build-cuda            # writes build-cuda/bundle (about 60 MiB)
#                                             # and build-cuda/bundle.tar.gz (about 36 MiB)
#   tar xzf build-cuda/bundle.tar.gz -C build-cuda && bench/gpu_check.sh build-cuda/bundle
#                                             # on the GPU machine
#
# Build first: cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release
#   -DTARS_CUDA=ON -DTARS_CUDA_ARCHS=90 && cmake --build build-cuda --target tars
#   tars_gpu_tests bench_make_model bench_gpu_bandwidth bench_gpu_kernels bench_embed_bench
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:?usage: bench/gpu_bundle.sh BUILD_DIR [OUT_DIR]}
OUT=${2:-$BUILD_DIR/bundle}
FIXTURES=${TARS_FIXTURES:-$ROOT/../shared/models}

rm -rf "$OUT"
mkdir -p "$OUT/tests" "$OUT/bench" "$OUT/lib" "$OUT/models/vocab"
bins=(tars tests/tars_gpu_tests bench/bench_make_model bench/bench_gpu_bandwidth bench/bench_gpu_kernels
      bench/bench_embed_bench)
for b in "${bins[@]}"; do
  [[ -x $BUILD_DIR/$b ]] || { echo "missing $BUILD_DIR/$b: build it first (see the top of this script)" >&2; exit 1; }
  cp "$BUILD_DIR/$b" "$OUT/$b"
  # Symbol tables are not needed there, and what travels is capped at 64 MiB
  # (the bundle with the repository came within 0.2 MiB of it unstripped).
  if command -v strip > /dev/null; then strip --strip-unneeded "$OUT/$b"; fi
done
# Every shared library the binaries load except the C library and the
# dynamic loader (the GPU machine's own are used for those).
for b in "${bins[@]}"; do ldd "$BUILD_DIR/$b"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$OUT/lib/"; done
# The fixtures the GPU tests and benchmarks read.
cp -r "$FIXTURES/stories260K" "$FIXTURES/reference" "$FIXTURES/minilm" "$OUT/models/"
cp "$FIXTURES/vocab/ggml-vocab-llama-spm.gguf" "$OUT/models/vocab/"
du -sh "$OUT"
# The same, compressed: binaries and libraries shrink to about a third (62 MB
# of bundle to 38), which leaves room under the 64 MiB a device call carries.
tar czf "$OUT.tar.gz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
du -sh "$OUT.tar.gz"
rel=${OUT#"$ROOT"/}
echo "carry: $rel.tar.gz   run: tar xzf $rel.tar.gz -C $(dirname "$rel") && bench/gpu_check.sh $rel"

#!/usr/bin/env bash
# Installs the Debian packages that building and testing tars needs.
# Idempotent and quick when everything is already there: apt is only called
# for packages that dpkg does not report as installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  nlohmann-json3-dev    # JSON everywhere (HTTP bodies, JSON-RPC, inventories)
  libcpp-httplib-dev    # HTTP server and client
  libcli11-dev          # command-line parsing
  libspdlog-dev libfmt-dev  # logging (stderr + rotating files), formatting
  libtomlplusplus-dev   # the TOML configuration file
  libssl-dev            # sha256 (model files, tests); httplib's TLS
  prometheus-cpp-dev    # GET /metrics: metric types and the text exposition format
  prometheus            # tests: promtool checks /metrics and the alert rules; a real server scrapes a cluster
  libhiredis-dev        # the shared embedding cache in Redis ([cache] redis)
  redis-server          # tests: a real Redis for the embedding cache
  systemd               # tests: systemd-analyze verify checks deploy/systemd
  libpq-dev             # the usage ledger in PostgreSQL ([state] postgres)
  postgresql            # tests: a real PostgreSQL server for the usage ledger
  podman mmdebstrap     # tests: build deploy/docker/Dockerfile and run the image (no Docker engine)
  docker-compose        # tests: validate deploy/compose (docker-compose config)
  libpcre2-dev          # Unicode character classes for BPE pre-tokenizers
  libzstd-dev zstd      # compressed vocabulary fixtures
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and micro-benchmarks
  clang-14 libclang-rt-14-dev  # libFuzzer targets
  python3               # black-box test helpers use only the standard library
  python3-jsonschema    # tests: validates structured output (engine/json_schema.h) against its schema
)

missing=()
# Node.js and npm (client tests with the official npm packages) may come from
# the machine image rather than Debian; only ask apt when the commands are absent.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present" >&2
fi

#!/usr/bin/env bash
# Checks deploy/systemd/*.service with systemd's own parser
# (`systemd-analyze verify`: any warning fails, not only errors) and runs
# each unit's ExecStart command line with --print-config, so a flag the
# binary does not know fails here rather than on the user's machine.
# Usage: systemd_units.sh TARS_BINARY DEPLOY_DIR
set -euo pipefail
tars="$1"
units="$2/systemd"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (Debian's systemd package)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
touch "$work/tars.toml" "$work/worker.env"
n=0
for unit in "$units"/*.service; do
  name="$(basename "$unit")"
  # The binary and files as installed on the user's machine, here.
  sed -e "s|/usr/local/bin/tars|$tars|g" -e "s|/etc/tars/tars.toml|$work/tars.toml|g" \
      -e "s|/etc/tars/worker.env|$work/worker.env|g" "$unit" > "$work/$name"
  if ! out="$(systemd-analyze verify "$work/$name" 2>&1)" || [ -n "$out" ]; then
    echo "FAIL $name: systemd-analyze verify says:"; echo "$out"; exit 1
  fi
  exec_start="$(sed -n 's/^ExecStart=//p' "$work/$name")"
  [ -n "$exec_start" ] || { echo "FAIL $name: no ExecStart"; exit 1; }
  exec_start="${exec_start//\/var\/lib\/tars/$work/data}"
  # shellcheck disable=SC2086
  if ! $exec_start --print-config > "$work/config.out" 2>&1; then
    echo "FAIL $name: '$exec_start --print-config' failed:"; cat "$work/config.out"; exit 1
  fi
  echo "ok $name"
  n=$((n + 1))
done
[ "$n" -ge 2 ] || { echo "FAIL: expected the coordinator's and the worker's units, found $n"; exit 1; }

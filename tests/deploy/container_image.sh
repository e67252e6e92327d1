#!/usr/bin/env bash
# Builds deploy/docker/Dockerfile (the CPU image) with podman and runs it.
#
# No Docker engine runs on the development and CI machines, so:
# - the base image (debian:bookworm-slim in the Dockerfile) is made here from
#   Debian's mirror with mmdebstrap and imported into podman's local store;
# - podman builds the real Dockerfile (chroot isolation: this kernel's hybrid
#   cgroups stop crun), so every RUN, COPY and the runtime package list run;
# - the image runs in a mount and PID namespace of its own, chrooted into a
#   container's root file system as the image's user, with the image's
#   entrypoint, command, environment and working directory (read back from the
#   image), sharing the host's network. crun cannot start containers on this
#   kernel; what it would add here is cgroups and a network namespace.
# Then: /health answers, greedy text equals the host build's, the image's own
# HEALTHCHECK command passes while the node runs and fails once it stopped,
# SIGTERM stops it cleanly, and no shared library is missing.
#
# Usage: container_image.sh TARS_BINARY FIXTURES_DIR   (run as root)
set -euo pipefail
host_tars="$1"
fixtures="${TARS_FIXTURES:-$2}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
model=stories260K/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (podman's store, namespaces, chroot)"
for tool in podman mmdebstrap unshare chroot curl python3; do
  command -v "$tool" > /dev/null || fail "$tool not found (scripts/setup.sh installs it)"
done
[ -f "$fixtures/$model" ] || fail "fixture $fixtures/$model missing"

base=localhost/tars-test-base:bookworm
tag="localhost/tars-test:$$"
work="$(mktemp -d)"
ctr=""
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  [ -n "$ctr" ] && { podman umount "$ctr" > /dev/null 2>&1 || true; podman rm -f "$ctr" > /dev/null 2>&1 || true; }
  podman rmi "$tag" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The base image: Debian 12 with apt, like debian:bookworm-slim. Kept in
#    podman's store between runs (it does not depend on this repository).
if ! podman image exists "$base"; then
  echo "== making $base with mmdebstrap"
  mmdebstrap --quiet --variant=apt bookworm "$work/base.tar"
  podman import --quiet "$work/base.tar" "$base" > /dev/null
  rm -f "$work/base.tar"
fi

# 2. Build the Dockerfile as it is, from the repository root.
echo "== podman build"
start=$SECONDS
podman build --quiet --isolation=chroot --format docker --build-arg "BUILD_IMAGE=$base" \
  -f "$repo/deploy/docker/Dockerfile" -t "$tag" "$repo" > "$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log"; fail "podman build failed"; }
echo "built in $((SECONDS - start)) s"

# 3. What the image says about itself.
podman image inspect "$tag" > "$work/config.json"
python3 - "$work/config.json" > "$work/run.env" << 'PY'
import json, shlex, sys
image = json.load(open(sys.argv[1]))[0]
c = image["Config"]
def need(cond, what):
    if not cond:
        sys.exit(f"image config: {what}: {json.dumps(c)}")
need(c.get("User") == "tars", "runs as the user tars")
need(c.get("Entrypoint") == ["tars"], "entrypoint is tars")
need(c.get("Cmd") == ["serve"], "default command is serve")
need("8000/tcp" in (c.get("ExposedPorts") or {}), "exposes 8000")
env = dict(e.split("=", 1) for e in c.get("Env", []))
need(env.get("TARS_HOST") == "0.0.0.0", "listens on every address")
hc = (image.get("Healthcheck") or {}).get("Test") or []
need(hc[:1] == ["CMD-SHELL"] and "/health" in hc[1], "health check asks /health")
print("ENV=" + shlex.quote(" ".join(shlex.quote(e) for e in c["Env"])))
print("WORKDIR=" + shlex.quote(c.get("WorkingDir") or "/"))
print("HEALTH=" + shlex.quote(hc[1]))
PY
# shellcheck disable=SC1091
source "$work/run.env"
echo "image config: user tars, entrypoint tars serve, port 8000, health check"

# 4. A container's root file system (writable, like a started container's).
ctr="$(podman create --no-healthcheck "$tag")"
root="$(podman mount "$ctr")"
uid="$(chroot "$root" id -u tars)"
gid="$(chroot "$root" id -g tars)"
missing="$(chroot "$root" ldd /usr/local/bin/tars | grep "not found" || true)"
[ -z "$missing" ] || fail "libraries missing in the image: $missing"
mkdir -p "$root/models"
# A data volume (VOLUME /var/lib/tars), owned by the image's user.
volume() { mkdir "$work/$1"; chown "$uid:$gid" "$work/$1"; echo "$work/$1"; }
# Runs a command inside the container's file system, namespaces and user, with
# DATA as its data volume. The root file system is read-only, as deploy/k8s
# runs it (readOnlyRootFilesystem): the node may write only to its volume.
in_container() {
  local data="$1"
  shift
  unshare --mount --pid --fork --kill-child bash -c '
    set -e; root="$1"; fixtures="$2"; data="$3"; shift 3
    mount --make-rprivate /
    mount --bind "$root" "$root"
    mount --bind "$fixtures" "$root/models"; mount -o remount,bind,ro "$root/models"
    mount --bind "$data" "$root/var/lib/tars"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -o remount,bind,ro "$root"
    exec chroot --userspec='"$uid:$gid"' "$root" "$@"' _ "$root" "$fixtures" "$data" "$@"
}
eval "env_args=($ENV)"
# docker run: the image's environment, working directory and entrypoint, with
# the variables and arguments given. Usage: run_image DATA LOG VAR=VALUE... -- ARGS...
run_image() {
  local data="$1" log="$2" vars=()
  shift 2
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  in_container "$data" env -i "${env_args[@]}" "${vars[@]}" sh -c 'cd "$0" && exec "$@"' "$WORKDIR" \
    tars "$@" > "$log" 2>&1 &
  pids+=($!)
}
# docker stop: SIGTERM to the container's PID 1, which is tars (every step of
# in_container execs; it is the child of unshare --fork). Sets $status.
stop_image() {
  local pid1="$1"
  for _ in 1 2 3; do [ "$(cat "/proc/$pid1/comm")" = tars ] && break; pid1="$(pgrep -P "$pid1" | head -1)"; done
  [ "$(cat "/proc/$pid1/comm")" = tars ] || fail "PID 1 of the container is $(cat "/proc/$pid1/comm"), not tars"
  kill -TERM "$pid1"
  wait "$1" && status=0 || status=$?
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$1/health" > /dev/null 2>&1 && return 0
    kill -0 "$2" 2> /dev/null || { cat "$3"; fail "the container's tars exited"; }
    sleep 0.1
  done
  cat "$3"
  fail "no /health in 30 s"
}

data="$(volume data)"
if in_container "$data" /bin/sh -c 'touch /probe' 2> /dev/null; then fail "the root file system is writable"; fi
in_container "$data" /bin/sh -c 'touch /var/lib/tars/probe && rm /var/lib/tars/probe' \
  || fail "the data volume is not writable"
port="$(free_port)"
pids=()
run_image "$data" "$work/server.log" TARS_PORT="$port" -- serve -m "/models/$model" --threads 2
wait_health "$port" "${pids[0]}" "$work/server.log"
echo "the container's node answers /health"

# 5. Greedy text from the image equals the host build's.
body='{"model":"stories260K","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
text_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])'; }
image_text="$(curl -fsS -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/completions" | text_of)"
[ -n "$image_text" ] || fail "empty completion from the image"
host_text="$("$host_tars" run "$fixtures/$model" "Once upon a time" -n 24 --temp 0 --threads 2 --device cpu 2> /dev/null)"
case "$host_text" in
  "Once upon a time$image_text"*|"$image_text"*) ;;
  *) fail "image said '$image_text', host build said '$host_text'" ;;
esac
echo "greedy completion equals the host build's: '$image_text'"

# 6. The image's HEALTHCHECK, run as docker would (sh -c, inside the container).
health() { in_container "$data" env -i "${env_args[@]}" TARS_PORT="$port" /bin/sh -c "$HEALTH"; }
health || fail "the health check failed against a running node"
stop_image "${pids[0]}"
pids=()
[ "$status" = 0 ] || { cat "$work/server.log"; fail "tars exited with $status on SIGTERM"; }
if health 2> /dev/null; then fail "the health check passed with the node stopped"; fi
echo "health check passes while serving and fails once stopped; SIGTERM exits 0"
ls "$work/data/logs" > /dev/null || fail "no logs in the data volume"

# 7. Two containers of the image as a cluster, as deploy/compose and deploy/k8s
#    run them: a coordinator whose configuration pins the model to the worker,
#    and a worker (no model files) that fetches it into its own volume.
cdata="$(volume coordinator)"
wdata="$(volume worker)"
printf '[[model]]\npath = "/models/%s"\npin = "box-worker"\n' "$model" > "$cdata/tars.toml"
cport="$(free_port)"
wport="$(free_port)"
run_image "$cdata" "$work/coordinator.log" TARS_NODE_NAME=box-coordinator TARS_PORT="$cport" \
  TARS_JOIN_TOKEN=box-token TARS_ADVERTISE="http://127.0.0.1:$cport" -- serve --config /var/lib/tars/tars.toml
wait_health "$cport" "${pids[0]}" "$work/coordinator.log"
run_image "$wdata" "$work/worker.log" TARS_NODE_NAME=box-worker TARS_PORT="$wport" TARS_JOIN_TOKEN=box-token \
  TARS_JOIN="http://127.0.0.1:$cport" TARS_ADVERTISE="http://127.0.0.1:$wport" -- worker
wait_health "$wport" "${pids[1]}" "$work/worker.log"
cluster_text=""
for _ in $(seq 1 600); do
  cluster_text="$(curl -fsS -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$cport/v1/completions" 2> /dev/null | text_of 2> /dev/null)" && break
  sleep 0.1
done
[ "$cluster_text" = "$image_text" ] \
  || { cat "$work/coordinator.log" "$work/worker.log"; fail "the cluster said '$cluster_text', not '$image_text'"; }
find "$wdata" -name "$(basename "$model")" | grep -q . || fail "the worker's volume has no fetched model"
for i in 1 0; do
  stop_image "${pids[$i]}"
  [ "$status" = 0 ] || fail "container $i exited with $status on SIGTERM"
done
pids=()
echo "coordinator and worker containers: the worker fetched the model into its volume and answered through the coordinator"
echo "ok container image"

#!/usr/bin/env python3
"""Checks deploy/compose the way a user runs it, without a Docker engine.

Follows the README's steps in a scratch copy (example.env -> .env,
tars.toml.example -> tars.toml), then:
- `docker-compose config` (Debian's docker-compose: the Compose file schema,
  every key checked, and the variables interpolated) on both files;
- every tars service's command, with its environment and the image's, runs
  through the real binary with --print-config: each TARS_* variable must be
  one the binary takes (an unknown one would be ignored silently), and the
  mounted configuration file must parse;
- what the files say about each other holds: bind-mounted files exist, the
  Prometheus configuration's discovery URL names the coordinator's alias and
  port, Grafana's datasource names the Prometheus service, the dashboard
  lands where the provisioning file looks, the worker joins the port the
  coordinator publishes and advertises the one it publishes itself, and the
  GPUs are reserved for both.

Usage: compose_files.py TARS_BINARY REPO_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import yaml

tars, repo = sys.argv[1], os.path.abspath(sys.argv[2])
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def compose_config(workdir, name):
    """The resolved file, as docker-compose interpolates and validates it."""
    r = subprocess.run(["docker-compose", "-f", name, "config"], cwd=workdir,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: docker-compose config {name}: {r.stderr.strip()}")
    return yaml.safe_load(r.stdout)


def image_env():
    """ENV of the runtime stage of deploy/docker/Dockerfile."""
    text = open(os.path.join(repo, "deploy/docker/Dockerfile")).read()
    runtime = text.split("AS runtime", 1)[1]
    block = re.search(r"^ENV (.*?)(?<!\\)\n", runtime, re.S | re.M).group(1)
    return dict(kv.split("=", 1) for kv in block.replace("\\\n", " ").split())


def binds(service):
    """Container path -> host path for the service's bind mounts."""
    out = {}
    for v in service.get("volumes", []):
        parts = v.split(":") if isinstance(v, str) else [v["source"], v["target"]]
        if parts[0].startswith("/"):
            out[parts[1]] = parts[0]
    return out


def run_print_config(service, data_dir):
    mounts = binds(service)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARS_")}
    env.update(image_env())
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    env["TARS_DATA_DIR"] = data_dir  # the volume, here
    args = []
    for a in service["command"]:
        args.append(mounts.get(a, a))  # a mounted file: the host's copy
    r = subprocess.run([tars] + args + ["--print-config"], env=env, capture_output=True, text=True)
    if not check(r.returncode == 0, f"{' '.join(args)} --print-config: {r.stderr.strip()}"):
        return
    from_env = len(re.findall(r"# env$", r.stdout, re.M))
    given = [k for k in env if k.startswith("TARS_") and k != "TARS_CONFIG"]
    check(from_env == len(given),
          f"{args[0]}: {len(given)} TARS_* variables set ({sorted(given)}) but the binary took "
          f"{from_env} of them:\n{r.stdout}")
    return r.stdout


def gpu_reserved(service):
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def port_of(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port


def published(service, target):
    for p in service.get("ports", []):
        if int(p["target"]) == target:
            return int(p["published"])
    return None


scratch = tempfile.mkdtemp()
try:
    # The layout a user has: the repository, with the two files copied.
    shutil.copytree(os.path.join(repo, "deploy"), os.path.join(scratch, "deploy"))
    os.symlink(os.path.join(repo, "src"), os.path.join(scratch, "src"))
    shutil.copy(os.path.join(repo, "CMakeLists.txt"), scratch)
    cdir = os.path.join(scratch, "deploy/compose")
    shutil.copy(os.path.join(cdir, "example.env"), os.path.join(cdir, ".env"))
    shutil.copy(os.path.join(cdir, "tars.toml.example"), os.path.join(cdir, "tars.toml"))
    dotenv = dict(l.split("=", 1) for l in open(os.path.join(cdir, ".env")).read().splitlines()
                  if l and not l.startswith("#"))

    main = compose_config(cdir, "compose.yaml")["services"]
    worker = compose_config(cdir, "worker.yaml")["services"]
    print("docker-compose config: compose.yaml and worker.yaml valid")

    for name, svc in list(main.items()) + list(worker.items()):
        for container_path, host_path in binds(svc).items():
            if host_path.startswith(scratch) and not host_path.endswith("/models"):
                check(os.path.exists(host_path), f"{name}: mounts {host_path}, which does not exist")

    coordinator, w = main["tars"], worker["tars-worker"]
    for name, svc in (("tars", coordinator), ("tars-worker", w)):
        check(svc["build"]["dockerfile"] == "deploy/docker/Dockerfile", f"{name} builds the Dockerfile")
        check(os.path.isfile(os.path.join(svc["build"]["context"], svc["build"]["dockerfile"])),
              f"{name}: the Dockerfile is in the build context")
        check(gpu_reserved(svc), f"{name}: reserves the NVIDIA GPUs")
        check(svc["environment"].get("TARS_DEVICE") == "auto", f"{name}: TARS_DEVICE=auto (GPU when usable)")
        out = run_print_config(svc, os.path.join(scratch, "data-" + name))
        if out:
            print(f"{name}: '{' '.join(svc['command'])}' takes its configuration "
                  f"({out.count('# env')} values from the environment)")

    # The coordinator: its port, and the aliases other services use.
    c_port = int(coordinator["environment"].get("TARS_PORT", 8000))
    check(published(coordinator, c_port) is not None, "the coordinator publishes its port")
    aliases = set(coordinator.get("networks", {}).get("default", {}).get("aliases", [])) | {"tars"}

    # Prometheus: the mounted configuration's discovery URL and rule file.
    prom = main["prometheus"]
    pmounts = binds(prom)
    pconf_host = pmounts["/etc/prometheus/prometheus.yml"]
    pconf = yaml.safe_load(open(pconf_host))
    sd_url = pconf["scrape_configs"][0]["http_sd_configs"][0]["url"]
    host, port = port_of(sd_url)
    check(host in aliases and port == c_port,
          f"Prometheus discovers {sd_url}; the coordinator is {sorted(aliases)} port {c_port}")
    for rule_file in pconf.get("rule_files", []):
        check(os.path.join("/etc/prometheus", rule_file) in pmounts,
              f"Prometheus's rule file {rule_file} is mounted beside its configuration")
    if shutil.which("promtool"):
        pdir = os.path.join(scratch, "prometheus-etc")
        os.mkdir(pdir)
        for target, src in pmounts.items():
            if target.startswith("/etc/prometheus/"):
                shutil.copy(src, os.path.join(pdir, os.path.basename(target)))
        r = subprocess.run(["promtool", "check", "config", os.path.join(pdir, "prometheus.yml")],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"promtool check config (as mounted): {r.stdout}{r.stderr}")
    else:
        check(False, "promtool not found (Debian's prometheus package)")

    # Grafana: the datasource names the Prometheus service, the dashboard is
    # where the provisioning file looks.
    graf = main["grafana"]
    gmounts = binds(graf)
    ds = yaml.safe_load(open(gmounts["/etc/grafana/provisioning/datasources/prometheus.yml"]))
    host, port = port_of(ds["datasources"][0]["url"])
    check(host == "prometheus" and port == 9090, f"Grafana's datasource is {host}:{port}")
    prov = yaml.safe_load(open(gmounts["/etc/grafana/provisioning/dashboards/tars.yml"]))
    dash_dir = prov["providers"][0]["options"]["path"]
    check(any(t.startswith(dash_dir + "/") and t.endswith(".json") for t in gmounts),
          f"a dashboard is mounted under {dash_dir}")

    # The worker: joins the coordinator's published port on PC1's address,
    # advertises the port it publishes on PC2's.
    host, port = port_of(w["environment"]["TARS_JOIN"])
    check(host == dotenv["TARS_PC1_ADDRESS"] and port == published(coordinator, c_port),
          f"the worker joins {host}:{port}")
    w_port = int(w["environment"].get("TARS_PORT", 8000))
    host, port = port_of(w["environment"]["TARS_ADVERTISE"])
    check(host == dotenv["TARS_PC2_ADDRESS"] and port == published(w, w_port) == w_port,
          f"the worker advertises {host}:{port} and listens on {w_port}")
    host, port = port_of(coordinator["environment"]["TARS_ADVERTISE"])
    check(host == dotenv["TARS_PC1_ADDRESS"] and port == published(coordinator, c_port),
          f"the coordinator advertises {host}:{port}")
    for var in ("TARS_REDIS", "TARS_POSTGRES"):
        host, port = port_of(w["environment"][var])
        svc = "redis" if var == "TARS_REDIS" else "postgres"
        check(host == dotenv["TARS_PC1_ADDRESS"] and published(main[svc], port) == port,
              f"the worker's {var} reaches PC1's published {svc} port")
        host, port = port_of(coordinator["environment"][var])
        check(host == svc and any(int(p["target"]) == port for p in main[svc]["ports"]),
              f"the coordinator's {var} names the {svc} service and its port")
finally:
    shutil.rmtree(scratch)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("ok compose files")

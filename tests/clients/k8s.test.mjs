// deploy/k8s checked without a cluster (none can run here):
// - every object against the Kubernetes API's schemas, twice: kubernetes-models
//   (types, required fields, formats) and the field lists of the official
//   client (@kubernetes/client-node), which catch a misspelt or misplaced key
//   that the API server would drop or refuse;
// - every tars container's arguments and environment (secrets, the downward
//   API and $(VAR) references resolved as the kubelet does) through the real
//   binary's --print-config: each TARS_* variable must be one it takes, and the
//   ConfigMap's tars.toml must parse;
// - the references between objects: selectors, Services and their ports,
//   probes, volumes, Secrets and ConfigMaps, the addresses the nodes give each
//   other (join, advertise, Redis, PostgreSQL), the image's user and data
//   directory (deploy/docker/Dockerfile) against the pods' security context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';

const deployDir = new URL('../../deploy/', import.meta.url).pathname;
const k8sDir = join(deployDir, 'k8s');
const models = { 'v1/Namespace': Namespace, 'v1/Secret': Secret, 'v1/ConfigMap': ConfigMap,
  'v1/Service': Service, 'apps/v1/Deployment': Deployment, 'apps/v1/StatefulSet': StatefulSet };

const files = readdirSync(k8sDir).filter((f) => f.endsWith('.yaml')).sort();
const objects = files.flatMap((f) => YAML.parseAllDocuments(readFileSync(join(k8sDir, f), 'utf8'))
  .map((d) => { if (d.errors.length) throw new Error(`${f}: ${d.errors[0].message}`); return d.toJS(); })
  .filter(Boolean).map((o) => ({ file: f, ...o })));
const withoutFile = ({ file, ...o }) => o;
const all = (kind) => objects.filter((o) => o.kind === kind);
const one = (kind, name) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `no ${kind} ${name} in deploy/k8s`);
  return o;
};
const workloads = () => [...all('StatefulSet'), ...all('Deployment')];

// Unknown keys: walk the object along the official client's field lists.
function unknownFields(value, type, path, out) {
  if (value === null || value === undefined) return out;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) out.push(`${path}: a list expected`);
    else value.forEach((v, i) => unknownFields(v, m[1], `${path}[${i}]`, out));
    return out;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${path}.${k}`, out);
    return out;
  }
  const fields = k8s[type]?.getAttributeTypeMap?.();
  if (!fields) return out; // a scalar, or IntOrString
  if (typeof value !== 'object' || Array.isArray(value)) {
    out.push(`${path}: an object (${type}) expected`);
    return out;
  }
  const known = new Map(fields.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!known.has(k)) out.push(`${path}.${k}: not a field of ${type}`);
    else unknownFields(v, known.get(k), `${path}.${k}`, out);
  }
  return out;
}

// What deploy/docker/Dockerfile's runtime stage sets.
function imageFacts() {
  const text = readFileSync(join(deployDir, 'docker/Dockerfile'), 'utf8').split('AS runtime')[1];
  return { uid: Number(/--uid (\d+)/.exec(text)[1]), dataDir: /TARS_DATA_DIR=(\S+)/.exec(text)[1],
    host: /TARS_HOST=(\S+)/.exec(text)[1] };
}

const podSpec = (w) => w.spec.template.spec;
const tarsContainers = () => workloads().flatMap((w) => podSpec(w).containers
  .filter((c) => c.image.split(':')[0].endsWith('tars')).map((c) => ({ w, c })));

// The environment as the kubelet gives it: secrets, the downward API, $(VAR).
function resolveEnv(w, c) {
  const env = {};
  for (const e of c.env ?? []) {
    let v;
    if (e.value !== undefined) {
      v = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (s, n) => (n in env ? env[n] : s));
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      v = one('Secret', name).stringData?.[key];
      assert.ok(v !== undefined, `${w.metadata.name}: secret ${name} has no ${key}`);
    } else if (e.valueFrom?.fieldRef) {
      const sample = { 'spec.nodeName': 'pc1', 'metadata.name': `${w.metadata.name}-0`,
        'metadata.namespace': w.metadata.namespace, 'status.podIP': '10.42.0.7' };
      v = sample[e.valueFrom.fieldRef.fieldPath];
      assert.ok(v !== undefined, `${w.metadata.name}: unexpected fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
    }
    assert.ok(!/\$\(/.test(v), `${w.metadata.name}: ${e.name}=${v} refers to a variable not defined before it`);
    env[e.name] = v;
  }
  return env;
}

// The Service a URL's host names (NAME, NAME.NS, NAME.NS.svc.cluster.local),
// or for a StatefulSet pod POD.SERVICE.NS.svc.cluster.local.
function serviceOf(url) {
  const u = new URL(url);
  const parts = u.hostname.split('.');
  const port = Number(u.port || 80);
  for (const skip of [0, 1]) {
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === parts[skip]
      && (parts.length === skip + 1 || parts[skip + 1] === o.metadata.namespace));
    if (svc) return { svc, port, pod: skip ? parts[0] : null, u };
  }
  assert.fail(`${url}: no Service named by its host`);
}
const selects = (svc, w) => Object.entries(svc.spec.selector)
  .every(([k, v]) => w.spec.template.metadata.labels[k] === v);
const containerPort = (w, name) => podSpec(w).containers.flatMap((c) => c.ports ?? [])
  .find((p) => p.name === name || p.containerPort === name)?.containerPort;
// The container port a Service port leads to, in the workload it selects.
function backend(svc, port) {
  const sp = svc.spec.ports.find((p) => p.port === port);
  assert.ok(sp, `Service ${svc.metadata.name} has no port ${port}`);
  const w = workloads().find((x) => selects(svc, x));
  assert.ok(w, `Service ${svc.metadata.name} selects no workload`);
  return { w, port: containerPort(w, sp.targetPort ?? sp.port) };
}

test('every object matches the Kubernetes API schemas, with no unknown field', () => {
  assert.ok(objects.length >= 10, `only ${objects.length} objects in deploy/k8s`);
  assert.equal(files[0], '00-namespace.yaml', 'the namespace is applied first (kubectl apply -f takes files in order)');
  for (const o of objects) {
    const id = `${o.file}: ${o.kind} ${o.metadata?.name}`;
    const Model = models[`${o.apiVersion}/${o.kind}`];
    assert.ok(Model, `${id}: ${o.apiVersion} ${o.kind} is not a kind this test knows`);
    assert.doesNotThrow(() => new Model(withoutFile(o)).validate(), id);
    assert.deepEqual(unknownFields(withoutFile(o), `V1${o.kind}`, o.kind, []), [], id);
    if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, one('Namespace', 'tars').metadata.name, id);
  }
});

test('the schema checks catch a misspelt field and a wrong type', () => {
  const sts = structuredClone(withoutFile(one('StatefulSet', 'tars')));
  podSpec(sts).containers[0].portz = podSpec(sts).containers[0].ports;
  assert.deepEqual(unknownFields(sts, 'V1StatefulSet', 'StatefulSet', []),
    ['StatefulSet.spec.template.spec.containers[0].portz: not a field of V1Container']);
  sts.spec.replicas = 'one';
  assert.throws(() => new StatefulSet(sts).validate(), /replicas/);
});

test('selectors, Services, probes, volumes and references fit together', () => {
  for (const w of workloads()) {
    const name = w.metadata.name;
    for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) {
      assert.equal(w.spec.template.metadata.labels[k], v, `${name}: selector ${k}`);
    }
    if (w.kind === 'StatefulSet') one('Service', w.spec.serviceName);
    const spec = podSpec(w);
    const volumes = new Set([...(spec.volumes ?? []).map((v) => v.name),
      ...(w.spec.volumeClaimTemplates ?? []).map((v) => v.metadata.name)]);
    for (const v of spec.volumes ?? []) {
      if (v.configMap) one('ConfigMap', v.configMap.name);
      if (v.secret) one('Secret', v.secret.secretName);
    }
    for (const c of spec.containers) {
      for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name), `${name}: volume ${m.name}`);
      for (const probe of [c.readinessProbe, c.livenessProbe].filter(Boolean)) {
        if (probe.httpGet) assert.ok(containerPort(w, probe.httpGet.port), `${name}: probe port ${probe.httpGet.port}`);
      }
    }
  }
  for (const svc of all('Service')) {
    for (const p of svc.spec.ports) assert.ok(backend(svc, p.port).port, `${svc.metadata.name}: port ${p.port}`);
  }
});

test('each tars container takes its configuration, runs as the image user and writes only its volume', () => {
  const binary = process.env.TARS_BINARY;
  assert.ok(binary, 'TARS_BINARY is not set');
  const image = imageFacts();
  const pods = tarsContainers();
  assert.deepEqual(pods.map(({ w }) => w.metadata.name).sort(), ['tars', 'tars-worker']);
  const scratch = mkdtempSync(join(tmpdir(), 'tars-k8s-'));
  try {
    for (const { w, c } of pods) {
      const name = w.metadata.name;
      const spec = podSpec(w);
      assert.equal(spec.securityContext.runAsUser, image.uid, `${name}: the image's user`);
      assert.equal(spec.securityContext.fsGroup, image.uid, `${name}: volumes writable by the image's user`);
      assert.ok(Number(c.resources.limits['nvidia.com/gpu']) >= 1, `${name}: a GPU`);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${name}: read-only root`);
      assert.ok(c.volumeMounts.some((m) => m.mountPath === image.dataDir && !m.readOnly),
        `${name}: the data directory ${image.dataDir} is a writable volume`);
      const env = resolveEnv(w, c);
      // Mounted ConfigMaps: their files, here.
      const args = [...c.args];
      for (const m of c.volumeMounts) {
        const vol = (spec.volumes ?? []).find((v) => v.name === m.name);
        if (!vol?.configMap) continue;
        const dir = join(scratch, name + m.mountPath.replaceAll('/', '_'));
        mkdirSync(dir);
        for (const [f, text] of Object.entries(one('ConfigMap', vol.configMap.name).data)) {
          writeFileSync(join(dir, f), text);
        }
        for (let i = 0; i < args.length; i++) {
          if (args[i].startsWith(`${m.mountPath}/`)) args[i] = dir + args[i].slice(m.mountPath.length);
        }
      }
      const given = { TARS_HOST: image.host, TARS_DATA_DIR: join(scratch, `data-${name}`), ...env };
      const r = spawnSync(binary, [...args, '--print-config'],
        { encoding: 'utf8', env: { PATH: process.env.PATH, ...given } });
      assert.equal(r.status, 0, `${name}: ${args.join(' ')} --print-config: ${r.stderr}`);
      const taken = (r.stdout.match(/# env$/gm) ?? []).length;
      const tarsVars = Object.keys(given).filter((k) => k.startsWith('TARS_'));
      assert.equal(taken, tarsVars.length, `${name}: set ${tarsVars.join(', ')}; the binary took ${taken}:\n${r.stdout}`);
      const port = Number(env.TARS_PORT ?? 8000);
      assert.ok(c.ports.some((p) => p.containerPort === port), `${name}: the container port is TARS_PORT ${port}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('the nodes reach each other, Redis and PostgreSQL at the addresses they are given', () => {
  const coordinator = tarsContainers().find(({ c }) => c.args[0] === 'serve');
  const worker = tarsContainers().find(({ c }) => c.args[0] === 'worker');
  const cEnv = resolveEnv(coordinator.w, coordinator.c);
  const wEnv = resolveEnv(worker.w, worker.c);
  const cPort = Number(cEnv.TARS_PORT ?? 8000);
  const wPort = Number(wEnv.TARS_PORT ?? 8000);
  for (const url of [wEnv.TARS_JOIN, cEnv.TARS_ADVERTISE]) {
    const { svc, port } = serviceOf(url);
    const b = backend(svc, port);
    assert.equal(b.w, coordinator.w, `${url} leads to the coordinator`);
    assert.equal(b.port, cPort, `${url} leads to the coordinator's port`);
  }
  // A worker's own name: POD.SERVICE, through its StatefulSet's headless Service.
  const adv = serviceOf(wEnv.TARS_ADVERTISE);
  assert.equal(adv.svc.metadata.name, worker.w.spec.serviceName, 'the worker advertises its pod name under its serviceName');
  assert.equal(adv.svc.spec.clusterIP, 'None', 'pod names need a headless Service');
  assert.equal(adv.pod, `${worker.w.metadata.name}-0`, 'the pod name comes from metadata.name');
  assert.equal(backend(adv.svc, adv.port).port, wPort, 'the worker advertises the port it listens on');
  for (const env of [cEnv, wEnv]) {
    assert.equal(cEnv.TARS_JOIN_TOKEN, wEnv.TARS_JOIN_TOKEN, 'one join token');
    const redis = serviceOf(env.TARS_REDIS);
    assert.equal(podSpec(backend(redis.svc, redis.port).w).containers[0].name, 'redis');
    assert.equal(backend(redis.svc, redis.port).port, 6379);
    const pg = serviceOf(env.TARS_POSTGRES);
    const db = backend(pg.svc, pg.port);
    assert.equal(db.port, 5432);
    const pgEnv = resolveEnv(db.w, podSpec(db.w).containers[0]);
    assert.equal(decodeURIComponent(pg.u.username), pgEnv.POSTGRES_USER);
    assert.equal(decodeURIComponent(pg.u.password), pgEnv.POSTGRES_PASSWORD);
    assert.equal(pg.u.pathname, `/${pgEnv.POSTGRES_DB}`);
  }
});

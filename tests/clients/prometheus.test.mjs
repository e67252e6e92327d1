// A real Prometheus server (Debian's prometheus package) monitoring a real
// two-node tars cluster on loopback, with the repository's own alert rules
// (deploy/prometheus/alerts.yml) and Grafana dashboard
// (deploy/grafana/tars-dashboard.json):
// - it finds both nodes through the coordinator's GET /metrics/targets
//   (HTTP service discovery) and scrapes them;
// - the GPU figures it stores are the simulated inventories' values;
// - the GPU alerts are pending for the hot, full card and for no other;
// - every metric the rules and the dashboard name exists, and every
//   dashboard query is valid PromQL that Prometheus evaluates;
// - promtool's linter accepts both nodes' /metrics;
// - a worker killed with SIGKILL turns `up` and tars_cluster_node_up to 0
//   and its alerts pending.
// Bounded: every wait has a deadline (30 s), the whole file under 2 min.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const deploy = resolve(process.cwd(), '../../deploy');
const rulesFile = join(deploy, 'prometheus/alerts.yml');
const dashboard = JSON.parse(readFileSync(join(deploy, 'grafana/tars-dashboard.json'), 'utf8'));
const TOKEN = 'prometheus-test-token';

// Installed by scripts/setup.sh (Debian's prometheus package): missing, the
// test fails and says so.
function tool(name) {
  const r = spawnSync(name, ['--version'], { encoding: 'utf8' });
  if (r.error) throw new Error(`${name} not found (scripts/setup.sh installs Debian's prometheus package): ${r.error.message}`);
  return name;
}

const dir = mkdtempSync(join(tmpdir(), 'tars-prometheus-'));
// The user's two cards: the RTX 3060 cool with room, the GTX 1660 Super at
// 92 C with 200 MiB of its 6 GiB free.
const GIB = 1024 ** 3;
const inventories = {
  pc1: { gpus: [{ name: 'NVIDIA GeForce RTX 3060', total_memory: '12GiB', free_memory: '11GiB',
    compute_capability: '8.6', temperature: 45, utilization: 7 }] },
  pc2: { gpus: [{ name: 'NVIDIA GeForce GTX 1660 SUPER', total_memory: '6GiB', free_memory: '200MiB',
    compute_capability: '7.5', temperature: 92, utilization: 100 }] },
};
for (const [name, inv] of Object.entries(inventories)) {
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(inv));
}

let coordinator;
let worker;
let prometheus;
let promUrl;
let embedUsage;

async function until(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function api(path) {
  const r = await fetch(`${promUrl}${path}`);
  const body = await r.json();
  if (body.status !== 'success') throw new Error(`${path}: ${JSON.stringify(body)}`);
  return body.data;
}

const query = (q) => api(`/api/v1/query?query=${encodeURIComponent(q)}`);
// node label -> value of a one-series-per-node query.
async function byNode(q) {
  const out = {};
  for (const s of (await query(q)).result) {
    if (s.metric.node in out) throw new Error(`${q}: two series for node ${s.metric.node}`);
    out[s.metric.node] = Number(s.value[1]);
  }
  return out;
}
const alertsOf = async (name) => (await api('/api/v1/alerts')).alerts.filter((a) => a.labels.alertname === name);

before(async () => {
  tool('prometheus');
  tool('promtool');
  coordinator = await startNode(['--model', `${fixtures}/stories260K/stories260K.gguf`,
    '--embedding-model', `${fixtures}/reference/bert-tiny.gguf`, '--simulate-devices', join(dir, 'pc1.json'), '--join-token', TOKEN,
    '--heartbeat-ms', '200', '--failure-deadline-ms', '1500']);
  const workerPort = await freePort();
  worker = spawn(process.env.TARS_BINARY, ['worker', '--join', coordinator.url,
    '--port', String(workerPort), '--data-dir', join(dir, 'pc2-data'), '--node-name', 'pc2',
    '--join-token', TOKEN, '--simulate-devices', join(dir, 'pc2.json'), '--heartbeat-ms', '200',
    '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  worker.url = `http://127.0.0.1:${workerPort}`;
  await until('the worker to join', async () => {
    const s = await (await fetch(`${coordinator.url}/status`)).json();
    return s.cluster.members.filter((m) => m.state === 'alive').length === 2;
  });
  // Traffic, so the request and generation families have samples.
  const r = await fetch(`${coordinator.url}/v1/completions`, { method: 'POST',
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 8, temperature: 0 }) });
  assert.equal(r.status, 200);
  await (await fetch(`${worker.url}/v1/completions`, { method: 'POST',
    body: JSON.stringify({ prompt: 'Once', max_tokens: 4, stream: true }) })).text();
  const e = await fetch(`${coordinator.url}/v1/embeddings`, { method: 'POST',
    body: JSON.stringify({ model: 'bert-tiny', input: ['one sentence', 'and another'] }) });
  assert.equal(e.status, 200);
  embedUsage = (await e.json()).usage;

  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'rule_files:', `  - ${rulesFile}`,
    'scrape_configs:', '  - job_name: tars', '    http_sd_configs:',
    `      - url: ${coordinator.url}/metrics/targets`, '        refresh_interval: 1s', ''].join('\n'));
  prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await until('Prometheus to scrape both nodes', async () => {
    const t = await api('/api/v1/targets?state=active');
    return t.activeTargets.length === 2 && t.activeTargets.every((x) => x.health === 'up');
  });
});

after(async () => {
  prometheus?.kill('SIGKILL');
  if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await coordinator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('service discovery: both nodes, labelled with their names and roles', async () => {
  const t = await api('/api/v1/targets?state=active');
  const seen = t.activeTargets.map((x) => `${x.labels.node}/${x.labels.tars_role}/${x.scrapeUrl}`).sort();
  assert.deepEqual(seen, [`client-test/coordinator/${coordinator.url}/metrics`,
    `pc2/worker/${worker.url}/metrics`]);
});

test('the GPU figures Prometheus stores are the cards\' own', async () => {
  assert.deepEqual(await byNode('tars_gpu_temperature_celsius'), { 'client-test': 45, pc2: 92 });
  assert.deepEqual(await byNode('tars_gpu_memory_total_bytes'), { 'client-test': 12 * GIB, pc2: 6 * GIB });
  assert.deepEqual(await byNode('tars_gpu_memory_free_bytes'), { 'client-test': 11 * GIB, pc2: 200 * 1024 ** 2 });
  assert.deepEqual(await byNode('tars_gpu_utilization_ratio'), { 'client-test': 0.07, pc2: 1 });
  const info = (await query('tars_gpu_info{node="pc2"}')).result;
  assert.equal(info.length, 1);
  assert.equal(info[0].metric.name, 'NVIDIA GeForce GTX 1660 SUPER');
  assert.equal(info[0].metric.compute_capability, '7.5');
});

test('the cluster\'s figures, and the request and model counters after traffic', async () => {
  const up = {};
  for (const s of (await query('tars_cluster_node_up')).result) up[s.metric.member] = Number(s.value[1]);
  assert.deepEqual(up, { 'client-test': 1, pc2: 1 });
  // The completion on the coordinator and the streamed one forwarded from
  // the worker both ran on the coordinator's model.
  await until('the model counters', async () => {
    const done = await byNode('tars_model_requests_total{model="stories260K",outcome="done"}');
    return done['client-test'] === 2;
  });
  const generated = await byNode('tars_model_generated_tokens_total');
  assert.equal(generated['client-test'], 12);
  // The embedding request: one request, two inputs, its tokens as the
  // answer's usage said.
  const embedded = (await query('tars_model_embedded_inputs_total')).result;
  assert.equal(embedded.length, 1);
  assert.equal(embedded[0].metric.model, 'bert-tiny');
  assert.equal(Number(embedded[0].value[1]), 2);
  const tokens = (await query('tars_model_prompt_tokens_total{model="bert-tiny"}')).result;
  assert.equal(Number(tokens[0].value[1]), embedUsage.prompt_tokens);
  const embedDone = (await query('tars_model_requests_total{model="bert-tiny",outcome="done"}')).result;
  assert.equal(Number(embedDone[0].value[1]), 1);
  const forwarded = await query('tars_http_requests_total{node="pc2",route="/v1/completions",code="200"}');
  assert.equal(forwarded.result.length, 1);
  assert.equal(Number(forwarded.result[0].value[1]), 1);
  // pc2 forwarded that stream to the coordinator, which answered it whole.
  const hops = (await query('tars_forwarded_requests_total')).result
    .map((s) => `${s.metric.node}->${s.metric.to}:${s.metric.outcome}=${s.value[1]}`);
  assert.deepEqual(hops, ['pc2->client-test:answered=1']);
});

test('GPU alerts: pending for the hot, full card only', async () => {
  for (const name of ['TarsGpuTemperatureHigh', 'TarsGpuTemperatureCritical', 'TarsGpuMemoryAlmostFull']) {
    const alerts = await until(name, async () => {
      const a = await alertsOf(name);
      return a.length ? a : null;
    });
    assert.deepEqual(alerts.map((a) => [a.labels.node, a.labels.gpu, a.state]), [['pc2', '0', 'pending']], name);
    assert.match(alerts[0].annotations.summary, /GTX 1660 SUPER\) on pc2/);
  }
});

test('every metric the alert rules and the dashboard name exists in what Prometheus scraped', async () => {
  const names = new Set(await api('/api/v1/label/__name__/values'));
  const text = readFileSync(rulesFile, 'utf8') + JSON.stringify(dashboard);
  const used = new Set(text.match(/\b(tars|process)_[a-z0-9_]+/g));
  assert.ok(used.size > 20, `only ${used.size} names found`);
  const missing = [...used].filter((n) => !names.has(n));
  assert.deepEqual(missing, []);
});

test('every dashboard query is PromQL that Prometheus evaluates', async () => {
  const exprs = [];
  for (const p of dashboard.panels) for (const t of p.targets) exprs.push(t.expr);
  assert.ok(exprs.length >= 19);
  for (const e of exprs) {
    const q = e.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*');
    const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = await r.json();
    assert.equal(body.status, 'success', `${e}: ${JSON.stringify(body)}`);
  }
  // The node variable's query finds both nodes.
  const nodes = (await query('group by (node) (tars_node_info)')).result.map((s) => s.metric.node).sort();
  assert.deepEqual(nodes, ['client-test', 'pc2']);
});

test('promtool\'s linter accepts both nodes\' /metrics', async () => {
  for (const url of [coordinator.url, worker.url]) {
    const r = await fetch(`${url}/metrics`);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: await r.text(), encoding: 'utf8' });
    assert.equal(lint.status, 0, `${url}: ${lint.stdout}${lint.stderr}`);
  }
});

test('a worker killed with SIGKILL: up and tars_cluster_node_up go to 0, its alerts pending', async () => {
  worker.kill('SIGKILL');
  await until('up{node="pc2"} == 0', async () => (await byNode('up')).pc2 === 0);
  await until('tars_cluster_node_up{member="pc2"} == 0', async () => {
    const r = (await query('tars_cluster_node_up{member="pc2"}')).result;
    return r.length === 1 && Number(r[0].value[1]) === 0;
  });
  for (const name of ['TarsTargetDown', 'TarsNodeDown']) {
    const alerts = await until(name, async () => {
      const a = await alertsOf(name);
      return a.length ? a : null;
    });
    assert.equal(alerts.length, 1, name);
    assert.equal(alerts[0].state, 'pending');
    assert.equal(name === 'TarsNodeDown' ? alerts[0].labels.member : alerts[0].labels.node, 'pc2');
  }
  // The down worker stays a target, so its `up` keeps saying so.
  const targets = await (await fetch(`${coordinator.url}/metrics/targets`)).json();
  assert.deepEqual(targets.map((t) => t.labels.node).sort(), ['client-test', 'pc2']);
});

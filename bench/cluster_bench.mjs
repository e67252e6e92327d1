// What forwarding costs: a coordinator and one worker as real processes on
// loopback (simulated RTX 3060 / GTX 1660 SUPER inventories, CPU engine), the
// same requests sent to the node that hosts the model and to the other one,
// which forwards them (issue 6). Prints median and p90 latency of each path
// and the difference; a small model keeps the model's own time small, so
// the figure is mostly the extra hop.
//
//   node bench/cluster_bench.mjs [--tars build/tars] [--requests 200] \
//        [--fixtures ../shared/models]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const tars = args.tars ?? 'build/tars';
const requests = Number(args.requests ?? 200);
const fixtures = resolve(args.fixtures ?? '../shared/models');
const root = resolve(new URL('..', import.meta.url).pathname);

const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const dir = mkdtempSync(join(tmpdir(), 'tars-cluster-bench-'));
writeFileSync(join(dir, 'tars.toml'),
  `[[model]]\npath = "${fixtures}/stories260K/stories260K.gguf"\nalias = "story"\n` +
  `[[model]]\npath = "${fixtures}/reference/bert-tiny.gguf"\nalias = "embed"\nrole = "embedding"\n`);
const common = (name, port, inv) => ['--port', String(port), '--data-dir', join(dir, name), '--node-name', name,
  '--join-token', 'bench', '--simulate-devices', `${root}/examples/inventories/${inv}`, '--threads', '1',
  '--log-level', 'warn'];
const p1 = await freePort();
const p2 = await freePort();
const procs = [
  spawn(tars, ['serve', '--config', join(dir, 'tars.toml'), ...common('pc1', p1, 'pc1-rtx3060.json')], { stdio: 'inherit' }),
];
const up = async (port) => {
  for (let i = 0; i < 600; i += 1) {
    try { if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return; } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`node on ${port} did not start`);
};
await up(p1);
procs.push(spawn(tars, ['worker', '--join', `http://127.0.0.1:${p1}`, ...common('pc2', p2, 'pc2-gtx1660super.json')], { stdio: 'inherit' }));
await up(p2);
// Wait until the plan has settled with both nodes and every model loaded.
let routes;
for (let i = 0; i < 600; i += 1) {
  const s = await (await fetch(`http://127.0.0.1:${p1}/status`)).json();
  const alive = s.cluster.members.filter((m) => m.state === 'alive').length;
  routes = s.cluster.routes.routes;
  if (alive === 2 && routes.every((r) => r.replicas.length === 1 && r.replicas[0].loaded)) break;
  await new Promise((r) => setTimeout(r, 100));
}
const hostOf = Object.fromEntries(routes.map((r) => [r.model, r.replicas[0].url]));

async function timeOne(url, path, body) {
  const t0 = performance.now();
  const r = await fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  await r.text();
  if (!r.ok) throw new Error(`${url}${path}: ${r.status}`);
  return performance.now() - t0;
}
const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const cases = [
  ['story', '/v1/completions', JSON.stringify({ model: 'story', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 })],
  ['embed', '/v1/embeddings', JSON.stringify({ model: 'embed', input: 'the quick brown fox' })],
];
console.log(`tars cluster_bench: ${requests} sequential requests per path, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| model | request | direct (hosting node) median / p90 ms | forwarded (other node) median / p90 ms | extra median ms |');
console.log('| --- | --- | ---: | ---: | ---: |');
const out = [];
for (const [model, path, body] of cases) {
  const direct = hostOf[model];
  const other = direct.endsWith(`:${p1}`) ? `http://127.0.0.1:${p2}` : `http://127.0.0.1:${p1}`;
  for (let i = 0; i < 10; i += 1) { await timeOne(direct, path, body); await timeOne(other, path, body); }
  const d = [], f = [];
  for (let i = 0; i < requests; i += 1) {  // interleaved so drift hits both alike
    d.push(await timeOne(direct, path, body));
    f.push(await timeOne(other, path, body));
  }
  const row = { model, path, direct_median: pct(d, 0.5), direct_p90: pct(d, 0.9), fwd_median: pct(f, 0.5), fwd_p90: pct(f, 0.9) };
  out.push(row);
  console.log(`| ${model} | ${path} | ${row.direct_median.toFixed(2)} / ${row.direct_p90.toFixed(2)} | ` +
    `${row.fwd_median.toFixed(2)} / ${row.fwd_p90.toFixed(2)} | ${(row.fwd_median - row.direct_median).toFixed(2)} |`);
}
console.log(JSON.stringify({ requests, results: out }));
for (const p of procs.reverse()) p.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 500));
rmSync(dir, { recursive: true, force: true });

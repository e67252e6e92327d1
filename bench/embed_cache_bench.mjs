// What the shared embedding cache ([cache] redis) costs and saves, through
// a real `tars serve` and a real redis-server on loopback:
//   no cache   the node alone (the baseline, measured in the same run)
//   cold       with the cache, every input new (MGET + embed + SET)
//   warm       with the cache, the same inputs again (MGET only)
// Each round posts N sentences to /v1/embeddings in requests of B inputs, one
// request at a time, and prints sentences per second and the ratio to the
// baseline. The sentences are 11 words drawn from a fixed list with a fixed
// seed (about 13 tokens each, as BASELINES.md's sentences); the cold round
// uses sentences no earlier round sent.
//
//   node bench/embed_cache_bench.mjs --model /tmp/tars-bench-minilm-f32.gguf \
//        [--tars build/tars] [--sentences 1024] [--batch 64] [--threads 2] [--client http|fetch]
//
// The MiniLM-shaped model: `build/bench/bench_embed_bench --reps 1` writes
// /tmp/tars-bench-minilm-f32.gguf (random F32 weights, the real shape).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const model = args.model ?? '/tmp/tars-bench-minilm-f32.gguf';
const tars = args.tars ?? 'build/tars';
const n = Number(args.sentences ?? 1024);
const batch = Number(args.batch ?? 64);
const threads = args.threads ?? '2';
const client = args.client ?? 'http';  // http (node:http) or fetch (to see its delayed-ACK wait)

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

async function waitFor(fn, what) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const words = ('the of and to in is was for on that with as by at from his her they this are had not but be have ' +
  'one all were which their there when who will more no if out so said what up its about into than them can only ' +
  'other new some could time these two may then do first any my now such like our over man me even most made after ' +
  'also did many before must through back years where much your way well down should because each just those people ' +
  'how too little state good very make world still own see men work long get here between both life being under ' +
  'never day same another know while last might us great old year off come since against go came right used take ' +
  'three house river garden window letter music paper water story light night city family school').split(' ');
let seed = 12345;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const sentence = () => Array.from({ length: 11 }, () => words[Math.floor(rand() * words.length)]).join(' ');

// node:http with a keep-alive agent (TCP_NODELAY on, the request in one
// write). Not fetch: it sends a body above about a kilobyte after the
// headers in a second write without TCP_NODELAY, so each request on a kept
// connection waits for the server's delayed ACK (~40 ms), which would be
// what this measured.
const agent = new http.Agent({ keepAlive: true });
function post(url, body) {
  const u = new URL(`${url}/v1/embeddings`);
  return new Promise((resolve, reject) => {
    const q = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
      r.resume();
      r.on('end', () => (r.statusCode === 200 ? resolve() : reject(new Error(`status ${r.statusCode}`))));
    });
    q.on('error', reject);
    q.end(body);
  });
}

async function postFetch(url, body) {
  const r = await fetch(`${url}/v1/embeddings`, { method: 'POST', body });
  if (r.status !== 200) throw new Error(`status ${r.status}`);
  await r.arrayBuffer();
}

async function round(url, sentences) {
  const send = client === 'fetch' ? postFetch : post;
  const t0 = performance.now();
  for (let i = 0; i < sentences.length; i += batch) {
    await send(url, JSON.stringify({ input: sentences.slice(i, i + batch) }));
  }
  return sentences.length / ((performance.now() - t0) / 1000);
}

async function node(extra) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tars-cache-bench-'));
  const child = spawn(tars, ['serve', '--port', String(port), '--data-dir', dir, '--embedding-model', model,
    '--threads', threads, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/health`)).ok, 'tars');
  return { url, stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); } };
}

if (spawnSync('redis-server', ['--version']).error) {
  console.error('redis-server not found (Debian package redis-server)');
  process.exit(2);
}
const redisPort = await freePort();
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '',
  '--appendonly', 'no'], { stdio: 'ignore' });
await waitFor(() => new Promise((resolve) => {
  const s = net.connect(redisPort, '127.0.0.1', () => { s.end(); resolve(true); });
  s.on('error', () => resolve(false));
}), 'redis-server');

const warmup = Array.from({ length: batch }, sentence);
const plainSet = Array.from({ length: n }, sentence);
const cachedSet = Array.from({ length: n }, sentence);
const rows = [];
try {
  const plain = await node([]);
  await round(plain.url, warmup);
  rows.push(['no cache', await round(plain.url, plainSet)]);
  plain.stop();
  const cached = await node(['--redis', `redis://127.0.0.1:${redisPort}`]);
  await round(cached.url, warmup);
  rows.push(['cold (all misses)', await round(cached.url, cachedSet)]);
  rows.push(['warm (all hits)', await round(cached.url, cachedSet)]);
  const m = await (await fetch(`${cached.url}/metrics`)).text();
  const hits = Number(/^tars_embed_cache_hits_total (\S+)/m.exec(m)[1]);
  cached.stop();
  if (hits !== n) throw new Error(`expected ${n} cache hits, the node counted ${hits}`);
} finally {
  redis.kill('SIGKILL');
}
console.log(`embed_cache_bench: ${n} sentences of 11 words, requests of ${batch}, ${threads} threads, ${client}, ` +
  `load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| round | sentences/s | vs no cache |');
console.log('| --- | ---: | ---: |');
for (const [name, rate] of rows) console.log(`| ${name} | ${rate.toFixed(1)} | ${(rate / rows[0][1]).toFixed(2)}x |`);

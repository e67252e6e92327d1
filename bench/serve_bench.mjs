// Aggregate generation speed of a real `tars serve` over HTTP with 1, 4 and 8
// concurrent streaming clients, and time to first token (issue 5).
//
//   node bench/serve_bench.mjs --model build/bench-models/tinyllama-shape-Q4_0.gguf \
//        [--tars build/tars] [--clients 1,4,8] [--tokens 64] [--threads 2]
//
// Every client sends the same kind of request: a ~40-token prompt (different
// per client), max_tokens N with ignore_eos, temperature 0, streamed. The
// aggregate rate is all generated tokens / wall time of the round; TTFT is
// measured by the client (request sent -> first content chunk). Prints a
// table and one JSON line; the ratio column is against the 1-client round.
import { cpus, loadavg } from 'node:os';
import { benchArgs, startTars } from './tars_serve.mjs';

const args = benchArgs('serve_bench.mjs --model FILE [--tars BIN] [--clients 1,4,8] [--tokens 64]');
const model = args.model;
const tars = args.tars ?? 'build/tars';
const clients = (args.clients ?? '1,4,8').split(',').map(Number);
const tokens = Number(args.tokens ?? 64);
const threads = args.threads ?? '2';
const slots = Math.max(...clients);

const server = await startTars(tars, ['--model', model, '--slots', String(slots), '--threads', threads,
  '--ctx-size', '512', '--log-level', 'warn']);
const { url } = server;

const words = 'the quick brown fox jumps over a lazy dog while seven small birds sing in the old tree by the river'.split(' ');
const promptFor = (i) => Array.from({ length: 36 }, (_, k) => words[(k * 7 + i * 3) % words.length]).join(' ');

async function one(i) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    // cache_prompt off: each round reads its prompts whole, as the figures
    // before the prompt cache did (bench/prompt_cache_bench.mjs measures it).
    body: JSON.stringify({ prompt: promptFor(i), max_tokens: tokens, temperature: 0, ignore_eos: true,
      cache_prompt: false, stream: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft = null; let generated = 0; let buf = '';
  const decoder = new TextDecoder();
  for await (const chunk of r.body) {
    buf += decoder.decode(chunk, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, at); buf = buf.slice(at + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const ev = JSON.parse(line.slice(6));
      if (ev.usage) generated = ev.usage.completion_tokens;
      if (ttft === null && ev.choices?.[0]?.text) ttft = performance.now() - t0;
    }
  }
  return { ttft, generated, ms: performance.now() - t0 };
}

// Warm-up: one short request.
await one(99);
const rows = [];
for (const n of clients) {
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  const wall = (performance.now() - t0) / 1000;
  const total = res.reduce((s, r) => s + r.generated, 0);
  const ttfts = res.map((r) => r.ttft).sort((a, b) => a - b);
  rows.push({ clients: n, tokens: total, wall_s: wall, agg_tps: total / wall,
    per_client_tps: total / wall / n, ttft_ms_median: ttfts[Math.floor(n / 2)], ttft_ms_max: ttfts[n - 1] });
}
const status = await (await fetch(`${url}/status`)).json();
await server.stop();

const base = rows[0].agg_tps;
console.log(`model ${model}, ${tokens} tokens per client, ${threads} threads, ${slots} slots; ` +
  `client CPU: ${cpus()[0].model} x${cpus().length}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| clients | tokens | wall s | aggregate tok/s | ratio vs 1 | per client tok/s | TTFT median ms | TTFT max ms |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.clients} | ${r.tokens} | ${r.wall_s.toFixed(2)} | ${r.agg_tps.toFixed(1)} | ${(r.agg_tps / base).toFixed(2)} | ` +
    `${r.per_client_tps.toFixed(1)} | ${r.ttft_ms_median.toFixed(0)} | ${r.ttft_ms_max.toFixed(0)} |`);
}
console.log(JSON.stringify({ rows, counters: status.models_loaded[0].counters }));

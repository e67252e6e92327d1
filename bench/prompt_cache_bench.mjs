// What the prompt cache saves in a conversation: a real `tars serve` over
// HTTP, a chat that grows turn by turn (each turn's prompt is the whole
// conversation so far plus a new user message, as chat clients send it).
// Each turn is asked twice, in the same run: first with the cache (a slot
// holds the conversation up to the previous answer; only the new message is
// read), then with "cache_prompt": false (the baseline: the whole prompt
// read, as before the cache existed). The cached answer continues the
// conversation.
//
//   node bench/prompt_cache_bench.mjs --model build/bench-models/tinyllama-shape-Q4_0.gguf \
//        [--tars build/tars] [--turns 8] [--tokens 32] [--threads 2]
//
// Time to first token is the server's timings.ttft_ms (arrival to first
// token); the ratio column is uncached / cached. Prints a table and one JSON
// line.
import { cpus, loadavg } from 'node:os';
import { benchArgs, startTars } from './tars_serve.mjs';

const args = benchArgs('prompt_cache_bench.mjs --model FILE [--tars BIN] [--turns 8] [--tokens 32]');
const model = args.model;
const tars = args.tars ?? 'build/tars';
const turns = Number(args.turns ?? 8);
const tokens = Number(args.tokens ?? 32);
const threads = args.threads ?? '2';

const server = await startTars(tars, ['--model', model, '--slots', '2', '--threads', threads,
  '--ctx-size', '2048', '--log-level', 'warn']);

const words = 'the quick brown fox jumps over a lazy dog while seven small birds sing in the old tree by the river'.split(' ');
const userTurn = (t) => `\nUser: ${Array.from({ length: 40 }, (_, k) => words[(k * 5 + t * 3) % words.length]).join(' ')}\nAssistant:`;

async function ask(prompt, cache) {
  const r = await fetch(`${server.url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: tokens, temperature: 0, ignore_eos: true, cache_prompt: cache }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  return r.json();
}

await ask('warm up', false);
let conversation = 'A conversation between a user and an assistant.';
const rows = [];
for (let t = 0; t < turns; t += 1) {
  conversation += userTurn(t);
  const cached = await ask(conversation, true);
  const whole = await ask(conversation, false);
  rows.push({ turn: t + 1, prompt_tokens: cached.usage.prompt_tokens,
    cached_tokens: cached.usage.prompt_tokens_details.cached_tokens,
    ttft_ms_uncached: whole.timings.ttft_ms, ttft_ms_cached: cached.timings.ttft_ms });
  conversation += cached.choices[0].text;
}
const status = await (await fetch(`${server.url}/status`)).json();
await server.stop();

console.log(`model ${model}, ${tokens} tokens per answer, ${threads} threads, 2 slots; ` +
  `CPU: ${cpus()[0].model} x${cpus().length}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| turn | prompt tokens | from the cache | TTFT uncached ms | TTFT cached ms | ratio |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.turn} | ${r.prompt_tokens} | ${r.cached_tokens} | ${r.ttft_ms_uncached.toFixed(0)} | ` +
    `${r.ttft_ms_cached.toFixed(0)} | ${(r.ttft_ms_uncached / r.ttft_ms_cached).toFixed(1)} |`);
}
const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
console.log(`all turns: TTFT ${sum('ttft_ms_uncached').toFixed(0)} ms uncached, ${sum('ttft_ms_cached').toFixed(0)} ms cached, ` +
  `ratio ${(sum('ttft_ms_uncached') / sum('ttft_ms_cached')).toFixed(1)}`);
console.log(JSON.stringify({ rows, counters: status.models_loaded[0].counters }));

// Continuous batching seen from outside: many concurrent streaming clients,
// a client that disconnects mid-stream, a full queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const model = `${fixtures}/stories260K/stories260K.gguf`;
const prompts = ['Once upon a time', 'The cat sat', 'Lily and Ben went to the park', 'One day',
  'There was a big dog', 'Tom liked to play', 'The sun was hot', 'A little bird'];

async function status(url) {
  const r = await fetch(`${url}/status`);
  assert.equal(r.status, 200);
  const s = await r.json();
  return s.models_loaded[0];
}

async function streamText(client, prompt, extra = {}) {
  const stream = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 40, temperature: 0, stream: true, ...extra,
  });
  let text = '';
  for await (const chunk of stream) for (const c of chunk.choices) text += c.text;
  return text;
}

let node;
let client;
before(async () => {
  // --ctx-size beyond the trained 128 lets one request run long enough to be
  // interrupted; rope positions past 128 are valid arithmetic.
  node = await startNode(['--model', model, '--slots', '4', '--ctx-size', '4096']);
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await node?.stop(); });

test('16 concurrent streaming clients on 4 slots each get their solo output', async () => {
  const solo = [];
  for (const p of prompts) solo.push(await streamText(client, p));
  const before = await status(node.url);
  const all = await Promise.all(
    Array.from({ length: 16 }, (_, i) => streamText(client, prompts[i % prompts.length])));
  all.forEach((text, i) => assert.equal(text, solo[i % prompts.length], `client ${i}`));
  const after = await status(node.url);
  const steps = after.counters.steps - before.counters.steps;
  const seqs = after.counters.step_sequences - before.counters.step_sequences;
  assert.ok(seqs / steps > 1.5, `steps ran ${seqs / steps} sequences on average`);
  assert.ok(after.counters.max_sequences_per_step >= 4);
  assert.equal(after.slots.busy, 0);
});

test('a client that disconnects mid-stream frees its slot', async () => {
  const before = await status(node.url);
  const controller = new AbortController();
  const stream = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 4000, temperature: 0,
    stream: true, ignore_eos: true,
  }, { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {  // eslint-disable-line no-unused-vars
      chunks += 1;
      if (chunks === 5) {
        controller.abort();  // closes the connection
        break;
      }
    }
  } catch (e) {
    assert.match(String(e?.name ?? e), /Abort/);
  }
  assert.equal(chunks, 5);
  // The slot must be free again well before 4000 tokens could be generated.
  const deadline = Date.now() + 10000;
  let s;
  for (;;) {
    s = await status(node.url);
    if (s.slots.busy === 0 && s.counters.requests_cancelled > before.counters.requests_cancelled) break;
    assert.ok(Date.now() < deadline, `slot still busy: ${JSON.stringify(s.slots)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const generated = s.counters.tokens_out - before.counters.tokens_out;
  assert.ok(generated < 4000, `generated ${generated} tokens after the disconnect`);
});

test('a full queue answers 503 with Retry-After at once', async () => {
  const busy = await startNode(['--model', model, '--slots', '1', '--queue', '0',
    '--ctx-size', '4096']);
  try {
    const c = new OpenAI({ baseURL: `${busy.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const controller = new AbortController();
    const stream = await c.completions.create({
      model: 'stories260K', prompt: 'Once upon a time', max_tokens: 4000, temperature: 0,
      stream: true, ignore_eos: true,
    }, { signal: controller.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();  // the only slot is now generating
    const t0 = Date.now();
    const r = await fetch(`${busy.url}/v1/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: 'Hi', max_tokens: 5 }),
    });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    const body = await r.json();
    assert.match(body.error.message, /queue is full/);
    assert.ok(Date.now() - t0 < 2000, 'refused at once');
    controller.abort();
  } finally {
    await busy.stop();
  }
});

// The official openai npm package's embeddings client against a node that
// serves an embedding model (the bert-tiny reference model) next to a chat
// model; vectors are compared with another engine's recorded output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const reference = JSON.parse(readFileSync(`${fixtures}/reference/bert-tiny.embeddings.json`, 'utf8'));

let node;
let client;
before(async () => {
  node = await startNode(['--model', `${fixtures}/stories260K/stories260K.gguf`,
    '--embedding-model', `${fixtures}/reference/bert-tiny.gguf`]);
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await node?.stop(); });

const cosine = (a, b) => {
  let ab = 0; let aa = 0; let bb = 0;
  for (let i = 0; i < a.length; i += 1) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
};

test('both models are listed', async () => {
  const ids = (await client.models.list()).data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['bert-tiny', 'stories260K']);
});

test('embeddings of the reference inputs match the recorded ones, as one batch', async () => {
  const inputs = reference.cases.map((c) => c.input);
  const r = await client.embeddings.create({ model: 'bert-tiny', input: inputs, encoding_format: 'float' });
  assert.equal(r.data.length, inputs.length);
  r.data.forEach((d, i) => {
    assert.equal(d.index, i);
    const c = cosine(d.embedding, reference.cases[i].embedding);
    assert.ok(c > 0.9999, `input ${i}: cosine ${c}`);
    const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `input ${i}: norm ${norm}`);
  });
  assert.ok(r.usage.prompt_tokens > inputs.length);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
});

test('base64 encoding decodes to the float vectors', async () => {
  // The SDK asks for base64 by default and decodes it itself; compare with floats.
  const asFloat = await client.embeddings.create({ model: 'bert-tiny', input: 'hello world', encoding_format: 'float' });
  const viaBase64 = await client.embeddings.create({ model: 'bert-tiny', input: 'hello world' });
  assert.equal(viaBase64.data[0].embedding.length, 64);
  viaBase64.data[0].embedding.forEach((x, i) => assert.equal(x, asFloat.data[0].embedding[i]));
});

test('errors name the input and the reason', async () => {
  await assert.rejects(client.embeddings.create({ model: 'bert-tiny', input: [] }),
    (e) => e.status === 400 && /empty/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'bert-tiny', input: ['ok', 7] }),
    (e) => e.status === 400 && /input'\[1\]/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'bert-tiny', input: 'x', dimensions: 32 }),
    (e) => e.status === 400 && /dimensions/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'stories260K', input: 'x' }),
    (e) => e.status === 400 && /embedding model/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'nope', input: 'x' }),
    (e) => e.status === 404);
});

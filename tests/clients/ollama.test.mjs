// The official ollama npm package (ollama-js) against a real node serving
// stories260K and the bert-tiny reference embedding model through Ollama's
// native API: the text must be what the engine gives greedily (the
// reference text of ../shared/models), embeddings another engine's
// recorded vectors, errors Ollama's shape.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const greedy = readFileSync(`${fixtures}/stories260K/reference_greedy_64.txt`, 'utf8');
const reference = JSON.parse(readFileSync(`${fixtures}/reference/bert-tiny.embeddings.json`, 'utf8'));

let node;
let ollama;
let openai;
before(async () => {
  node = await startNode(['--model', `${fixtures}/stories260K/stories260K.gguf`,
    '--embedding-model', `${fixtures}/reference/bert-tiny.gguf`]);
  ollama = new Ollama({ host: node.url });
  openai = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await node?.stop(); });

// Greedy, without Ollama's default repeat penalty: the engine's plain path.
const greedyOptions = (n) => ({ temperature: 0, repeat_penalty: 1, num_predict: n });

test('generate with raw: the reference greedy continuation', async () => {
  const r = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true,
    options: greedyOptions(20) });
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 20);
  assert.equal(r.prompt_eval_count, 5);  // BOS + 4 prompt tokens
  assert.ok(greedy.startsWith(`Once upon a time${r.response}`), r.response);
  assert.ok(r.total_duration >= r.eval_duration && r.eval_duration > 0);
  assert.match(r.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
});

test('streamed generate gives the same text, then one closing line', async () => {
  const stream = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true,
    stream: true, options: greedyOptions(20) });
  let text = '';
  let last;
  let parts = 0;
  for await (const part of stream) {
    text += part.response;
    last = part;
    parts += 1;
  }
  assert.ok(parts > 2);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, 20);
  assert.ok(greedy.startsWith(`Once upon a time${text}`), text);
});

test('chat gives what the OpenAI endpoint gives for the same conversation', async () => {
  const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell one.' }];
  const viaOllama = await ollama.chat({ model: 'stories260K', messages, options: greedyOptions(16) });
  const viaOpenAI = await openai.chat.completions.create({ model: 'stories260K', messages, temperature: 0,
    max_tokens: 16 });
  assert.equal(viaOllama.message.role, 'assistant');
  assert.equal(viaOllama.message.content, viaOpenAI.choices[0].message.content);
  assert.equal(viaOllama.prompt_eval_count, viaOpenAI.usage.prompt_tokens);
  assert.equal(viaOllama.eval_count, 16);

  const stream = await ollama.chat({ model: 'stories260K', messages, stream: true, options: greedyOptions(16) });
  let text = '';
  for await (const part of stream) text += part.message.content;
  assert.equal(text, viaOllama.message.content);
});

test('a chat longer than the context loses its oldest turns, the system message stays', async () => {
  // stories260K's context is 128 tokens; this chat is longer.
  const system = { role: 'system', content: 'Tell short stories.' };
  const turns = [];
  for (let i = 0; i < 8; i += 1) {
    turns.push({ role: 'user', content: `Tell me story number ${i} about a cat and a dog.` });
    turns.push({ role: 'assistant', content: `Once upon a time there was a cat and a dog number ${i}.` });
  }
  turns.push({ role: 'user', content: 'Now one about a bird.' });
  const messages = [system, ...turns];
  // llama-server's way (the OpenAI endpoint) refuses it...
  await assert.rejects(openai.chat.completions.create({ model: 'stories260K', messages, max_tokens: 1 }),
    (e) => e.status === 400 && /exceeds/.test(e.message));
  // ...Ollama's keeps the system message and the latest turns, starting at
  // the earliest user message from which the prompt fits (with a token to
  // write). The prompt sizes of the candidates come from the OpenAI endpoint.
  let expected = null;
  for (let i = 2; i < turns.length && expected === null; i += 2) {
    try {
      const r = await openai.chat.completions.create({ model: 'stories260K', messages: [system, ...turns.slice(i)],
        max_tokens: 1, temperature: 0 });
      if (r.usage.prompt_tokens + 1 <= 128) expected = r.usage.prompt_tokens;
    } catch (e) {
      assert.equal(e.status, 400);
    }
  }
  assert.ok(expected !== null);
  const r = await ollama.chat({ model: 'stories260K', messages, options: greedyOptions(1) });
  assert.equal(r.prompt_eval_count, expected);
  assert.equal(r.done_reason, 'length');
});

test('a prompt still too long loses its start, all but its first num_keep tokens', async () => {
  const post = async (path, body) => (await fetch(`${node.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  })).json();
  // One message, far longer than the 128-token context.
  const long = 'The cat sat on the mat and looked at the dog. '.repeat(30) + 'Then the bird sang.';
  const messages = [{ role: 'user', content: long }];
  const { prompt } = await post('/apply-template', { model: 'stories260K', messages });
  const { tokens } = await post('/tokenize', { model: 'stories260K', content: prompt, add_special: true });
  assert.ok(tokens.length > 300, `${tokens.length}`);
  // What Ollama keeps: the first 4 tokens and the end, with room for num_predict.
  const kept = [...tokens.slice(0, 4), ...tokens.slice(tokens.length - (128 - 8 - 4))];
  const r = await ollama.chat({ model: 'stories260K', messages, options: greedyOptions(8) });
  assert.equal(r.prompt_eval_count, 128 - 8);
  const reference = await post('/completion', { model: 'stories260K', prompt: kept, n_predict: 8, temperature: 0 });
  assert.equal(r.message.content, reference.content);
  // num_keep sets how much of the start stays; no num_predict leaves a quarter of the context.
  const g = await ollama.generate({ model: 'stories260K', prompt: long, raw: true,
    options: { temperature: 0, repeat_penalty: 1, num_keep: 1 } });
  assert.equal(g.prompt_eval_count, 128 - 32);
  const { tokens: raw } = await post('/tokenize', { model: 'stories260K', content: long, add_special: true });
  const rawKept = [raw[0], ...raw.slice(raw.length - (128 - 32 - 1))];
  const rawReference = await post('/completion', { model: 'stories260K', prompt: rawKept, n_predict: 32, temperature: 0 });
  assert.equal(g.response, rawReference.content);
  // The OpenAI endpoint refuses it, as llama-server does.
  await assert.rejects(openai.chat.completions.create({ model: 'stories260K', messages, max_tokens: 8 }),
    (e) => e.status === 400 && /exceeds/.test(e.message));
});

test('stop strings and seeds work as options', async () => {
  const r = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true,
    options: { ...greedyOptions(60), stop: ['Lily'] } });
  assert.equal(r.done_reason, 'stop');
  assert.equal(r.response, ', there was a little girl named ');
  const sampled = (seed) => ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true,
    options: { temperature: 1, seed, num_predict: 24 } });
  assert.equal((await sampled(7)).response, (await sampled(7)).response);
});

test('format json keeps the answer a JSON object', async () => {
  const r = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true, format: 'json',
    options: { temperature: 0, num_predict: 40 } });
  assert.ok(r.response.startsWith('{'), r.response);
  if (r.done_reason === 'stop') assert.equal(typeof JSON.parse(r.response), 'object');
});

test('an empty prompt loads the model and answers at once', async () => {
  const r = await ollama.generate({ model: 'stories260K', prompt: '' });
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'load');
  assert.equal(r.response, '');
});

test('embed matches the recorded vectors; the legacy endpoint is not normalized', async () => {
  const inputs = reference.cases.map((c) => c.input);
  const r = await ollama.embed({ model: 'bert-tiny', input: inputs });
  assert.equal(r.model, 'bert-tiny');
  assert.equal(r.embeddings.length, inputs.length);
  r.embeddings.forEach((e, i) => {
    const want = reference.cases[i].embedding;
    let ab = 0; let aa = 0; let bb = 0;
    for (let k = 0; k < e.length; k += 1) { ab += e[k] * want[k]; aa += e[k] * e[k]; bb += want[k] * want[k]; }
    assert.ok(ab / Math.sqrt(aa * bb) > 0.9999, `input ${i}`);
    assert.ok(Math.abs(Math.sqrt(aa) - 1) < 1e-5, `input ${i}: norm ${Math.sqrt(aa)}`);
  });
  assert.ok(r.prompt_eval_count > inputs.length);

  const legacy = await ollama.embeddings({ model: 'bert-tiny', prompt: inputs[0] });
  const norm = Math.sqrt(legacy.embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) > 0.1, `legacy norm ${norm}`);  // the pooled vector as it is
  assert.deepEqual((await ollama.embeddings({ model: 'bert-tiny', prompt: '' })).embedding, []);
  legacy.embedding.forEach((x, k) => assert.ok(Math.abs(x / norm - r.embeddings[0][k]) < 1e-5));
});

test('list, ps, show and version describe the served models', async () => {
  const tags = await ollama.list();
  assert.deepEqual(tags.models.map((m) => m.name).sort(), ['bert-tiny', 'stories260K']);
  const story = tags.models.find((m) => m.name === 'stories260K');
  assert.equal(story.details.format, 'gguf');
  assert.equal(story.details.family, 'llama');
  assert.equal(story.details.quantization_level, 'F32');
  assert.ok(story.size > 1_000_000);

  const ps = await ollama.ps();
  assert.deepEqual(ps.models.map((m) => m.name).sort(), ['bert-tiny', 'stories260K']);
  ps.models.forEach((m) => {
    assert.ok(m.size > 0, m.name);
    assert.equal(m.size_vram, 0, m.name);  // the CPU here
  });

  const show = await ollama.show({ model: 'stories260K' });
  assert.equal(show.model_info['general.architecture'], 'llama');
  assert.equal(show.model_info['llama.block_count'], 5);
  assert.deepEqual(show.capabilities, ['completion']);
  assert.deepEqual((await ollama.show({ model: 'bert-tiny' })).capabilities, ['embedding']);

  assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+/);
});

test('errors arrive as Ollama errors with their status', async () => {
  await assert.rejects(ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e.name === 'ResponseError' && e.status_code === 404 && /nope/.test(e.message));
  await assert.rejects(ollama.generate({ model: 'stories260K', prompt: 'x', options: { temprature: 0 } }),
    (e) => e.status_code === 400 && /options\.temprature/.test(e.message));
  await assert.rejects(ollama.generate({ model: 'stories260K', prompt: 'x', format: 'yaml' }),
    (e) => e.status_code === 400 && /format/.test(e.message));
  await assert.rejects(ollama.embed({ model: 'stories260K', input: 'x' }),
    (e) => e.status_code === 400 && /embedding model/.test(e.message));
  await assert.rejects(ollama.show({ model: 'nope' }), (e) => e.status_code === 404);
  await assert.rejects(ollama.pull({ model: 'llama3' }),
    (e) => e.status_code === 501 && /configuration/.test(e.message));
});

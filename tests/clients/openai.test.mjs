// The official openai npm package against a real tars node serving the
// stories260K model. Run by CTest (label clients) with TARS_BINARY and
// TARS_FIXTURES set; see tests/CMakeLists.txt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const model = `${fixtures}/stories260K/stories260K.gguf`;
const reference = (await import('node:fs')).readFileSync(
  `${fixtures}/stories260K/reference_greedy_64.txt`, 'utf8');
const prompt = 'Once upon a time';
// The 60 greedy tokens after the prompt, without the file's final newline.
const greedy60 = reference.slice(prompt.length).replace(/\n$/, '');

let node;
let client;

before(async () => {
  node = await startNode(['--model', model, '--slots', '2']);
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await node?.stop();
});

test('models.list shows the served model', async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  assert.deepEqual(ids, ['stories260K']);
});

test('completions: greedy text equals the reference engines', async () => {
  const r = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 60, temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, greedy60);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.prompt_tokens, 5);
  assert.equal(r.usage.completion_tokens, 60);
  assert.equal(r.usage.total_tokens, 65);
});

test('completions: streaming gives the same text, then [DONE]', async () => {
  const stream = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 60, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, greedy60);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 60);
});

test('chat: non-streaming and streaming agree at temperature 0', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story about Lily.' }];
  const whole = await client.chat.completions.create({
    model: 'stories260K', messages, max_tokens: 30, temperature: 0,
  });
  assert.equal(whole.object, 'chat.completion');
  const msg = whole.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.ok(msg.content.length > 0);
  assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
  assert.ok(whole.usage.prompt_tokens > 5);

  const stream = await client.chat.completions.create({
    model: 'stories260K', messages, max_tokens: 30, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      text += c.delta.content ?? '';
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, msg.content);
  // Asked again, the prompt is in a slot's cache but its last token.
  assert.equal(usage.prompt_tokens_details.cached_tokens, whole.usage.prompt_tokens - 1);
  assert.deepEqual({ ...usage, prompt_tokens_details: null }, { ...whole.usage, prompt_tokens_details: null });
});

test('seed makes sampling reproducible', async () => {
  const ask = (seed) => client.completions.create({
    model: 'stories260K', prompt, max_tokens: 40, temperature: 1.0, seed,
  }).then((r) => r.choices[0].text);
  const a = await ask(42);
  const b = await ask(42);
  const c = await ask(43);
  assert.equal(a, b);
  assert.notEqual(a, c);
});

test('prompt cache: the next chat turn reads only its new tokens', async () => {
  const first = [{ role: 'user', content: 'Tell me a story about a cat.' }];
  const r1 = await client.chat.completions.create({
    model: 'stories260K', messages: first, max_tokens: 20, temperature: 0,
  });
  const next = [...first, { role: 'assistant', content: r1.choices[0].message.content },
    { role: 'user', content: 'And then what happened?' }];
  const cachedBefore = await tokensCached();
  const r2 = await client.chat.completions.create({
    model: 'stories260K', messages: next, max_tokens: 20, temperature: 0,
  });
  const cached = r2.usage.prompt_tokens_details.cached_tokens;
  // At least the first turn's prompt (its last token may merge with the
  // answer's first when the conversation is tokenized again), never all.
  assert.ok(cached >= r1.usage.prompt_tokens - 1, `cached ${cached} of ${r2.usage.prompt_tokens}`);
  assert.ok(cached < r2.usage.prompt_tokens);
  assert.equal(r2.timings.cached_tokens, cached);
  assert.equal(await tokensCached() - cachedBefore, cached);
  // Read whole, the answer is the same.
  const whole = await client.chat.completions.create({
    model: 'stories260K', messages: next, max_tokens: 20, temperature: 0, cache_prompt: false,
  });
  assert.equal(whole.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal(whole.choices[0].message.content, r2.choices[0].message.content);
  await assert.rejects(
    client.chat.completions.create({ model: 'stories260K', messages: next, cache_prompt: 'yes' }),
    (e) => e.status === 400 && /cache_prompt/.test(e.message));
});

// The node's count of prompt tokens read from the cache (/status).
async function tokensCached() {
  const status = await (await fetch(`${node.url}/status`)).json();
  return status.models_loaded.find((m) => m.id === 'stories260K').counters.tokens_cached;
}

test('stop strings end the text before them', async () => {
  const r = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 60, temperature: 0, stop: ['Lily'],
  });
  assert.equal(r.choices[0].text, ', there was a little girl named ');
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('chat logprobs with top_logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5,
    temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 5);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
  }
});

test('logit_bias forces a token, and refuses ids past the vocabulary', async () => {
  const once = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 1, temperature: 0, logit_bias: { 300: 100 },
  });
  const piece = once.choices[0].text;
  assert.notEqual(piece, greedy60.slice(0, piece.length), 'the bias changed the greedy token');
  const thrice = await client.completions.create({
    model: 'stories260K', prompt, max_tokens: 3, temperature: 0.8, seed: 1, logit_bias: { 300: 100 },
  });
  assert.equal(thrice.choices[0].text, piece.repeat(3));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt, max_tokens: 1, logit_bias: { 512: -100 } }),
    (e) => e.status === 400 && /logit_bias/.test(e.message) && /512 tokens/.test(e.message));
});

test('JSON mode keeps the answer a JSON object', async () => {
  // A story model never writes JSON by itself: the constraint does it. Its
  // answers begin an object, and every one that ends (stop) is a whole one.
  const messages = [{ role: 'user', content: 'Once upon a time' }];
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create({ model: 'stories260K', messages, temperature, seed: 4,
      max_tokens: 60, response_format: { type: 'json_object' } });
    const { content } = r.choices[0].message;
    assert.ok(content.startsWith('{'), content);
    if (r.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(content), 'object');
  }
  // With '}' (the byte token 128) favoured, the object closes at once and
  // generation ends there: the end is allowed only then.
  const closed = await client.chat.completions.create({ model: 'stories260K', messages, temperature: 0,
    max_tokens: 60, response_format: { type: 'json_object' }, logit_bias: { 128: 100 } });
  assert.equal(closed.choices[0].message.content, '{}');
  assert.equal(closed.choices[0].finish_reason, 'stop');
  // Streamed, the same text arrives in pieces.
  const stream = await client.chat.completions.create({ model: 'stories260K', messages, temperature: 0,
    max_tokens: 60, response_format: { type: 'json_object' }, logit_bias: { 128: 100 }, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, '{}');
});

test('what tars does not do is refused, not ignored', async () => {
  // (A schema is structured output, structured_output.test.mjs; one it cannot keep is refused.)
  await assert.rejects(
    client.chat.completions.create({
      model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }],
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a+' } } },
    }),
    (e) => e.status === 400 && /response_format\.json_schema\.schema.*pattern/.test(e.message));
  // stories260K has no chat template (the plain format): it cannot be told of tools.
  await assert.rejects(
    client.chat.completions.create({
      model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }],
      tools: [{ type: 'function', function: { name: 'f' } }],
    }),
    (e) => e.status === 400 && /no place for tools/.test(e.message));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt, suffix: ' The end.' }),
    (e) => e.status === 400 && /suffix/.test(e.message));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt, best_of: 3 }),
    (e) => e.status === 400 && /best_of/.test(e.message));
  const ok = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0,
    response_format: { type: 'text' },
  });
  assert.equal(ok.choices[0].finish_reason, 'length');
});

test('tokenize and detokenize (llama-server shape) agree with the completion usage', async () => {
  const post = async (path, body) => {
    const r = await fetch(`${node.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  const t = await post('/tokenize', { content: prompt, add_special: true });
  assert.equal(t.status, 200);
  assert.equal(t.body.tokens.length, 5);  // as usage.prompt_tokens above: BOS + 4
  const p = await post('/tokenize', { content: prompt, with_pieces: true });
  assert.deepEqual(p.body.tokens.map((x) => x.id), t.body.tokens.slice(1));
  assert.equal(p.body.tokens.map((x) => x.piece).join(''), ` ${prompt}`);
  // A character the vocabulary lacks falls back to byte tokens: pieces that are
  // not UTF-8 come as their bytes, and together they are the character.
  const zh = await post('/tokenize', { content: '中', with_pieces: true });
  const bytes = zh.body.tokens.filter((x) => Array.isArray(x.piece)).flatMap((x) => x.piece);
  assert.deepEqual(bytes, [...Buffer.from('中')]);
  const d = await post('/detokenize', { tokens: t.body.tokens.slice(1) });
  assert.equal(d.status, 200);
  assert.equal(d.body.content, prompt);
  const bad = await post('/detokenize', { tokens: [512] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /512 tokens/);
  const unknown = await post('/tokenize', { content: 'x', model: 'nope' });
  assert.equal(unknown.status, 404);
  // The same tokens as the prompt of a completion (OpenAI takes ids too): the same answer.
  for (const ids of [t.body.tokens, [t.body.tokens]]) {
    const r = await client.completions.create({ model: 'stories260K', prompt: ids, max_tokens: 60, temperature: 0 });
    assert.equal(r.choices[0].text, greedy60);
    assert.equal(r.usage.prompt_tokens, 5);
  }
  await assert.rejects(client.completions.create({ model: 'stories260K', prompt: [1, 99999], max_tokens: 1 }),
    (e) => e.status === 400 && /holds token 99999, but model 'stories260K' has 512 tokens/.test(e.message));
});

test('errors: unknown model 404, invalid body 400, too large 413', async () => {
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt, max_tokens: 5 }),
    (e) => e.status === 404 && /no-such-model/.test(e.message));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt, temperature: 'hot' }),
    (e) => e.status === 400 && /temperature/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'stories260K', messages: [] }),
    (e) => e.status === 400 && /messages/.test(e.message));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt, max_tokens: 5000 }),
    (e) => e.status === 400 && /context/.test(e.message));
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'x'.repeat(9 << 20) }),
    (e) => e.status === 413);
});

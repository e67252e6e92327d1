// Structured output through the official clients: OpenAI's response_format
// json_schema (the openai package, including its parse helper and a stream)
// and Ollama's format with a schema (the ollama package), on stories260K.
// Every answer is checked by an independent validator (Ajv, JSON Schema
// 2020-12). stories260K likes blanks, and its context is 128 tokens, so the
// OpenAI requests bias its blank tokens away (logit_bias) to finish in time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import Ajv2020 from 'ajv/dist/2020.js';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const model = `${fixtures}/stories260K/stories260K.gguf`;
let node;
let openai;
let ollama;
let noBlanks;
before(async () => {
  node = await startNode(['--model', model, '--alias', 'story']);
  openai = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  ollama = new Ollama({ host: node.url });
  // The ids of stories260K's blank tokens, from the node's own tokenizer.
  const res = await fetch(`${node.url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: ' \n\t' }) });
  const { tokens } = await res.json();
  noBlanks = Object.fromEntries(tokens.map((id) => [String(id), -100]));
  assert.ok(Object.keys(noBlanks).length >= 2, JSON.stringify(tokens));
});
after(async () => {
  await node?.stop();
});

const ajv = new Ajv2020({ strict: false });
const valid = (schema, text) => {
  const value = JSON.parse(text);
  const check = ajv.compile(schema);
  assert.ok(check(value), `${text}\n${JSON.stringify(check.errors)}`);
  return value;
};

const cat = {
  type: 'object',
  properties: {
    mood: { enum: ['happy', 'sad'] },
    ok: { type: 'boolean' },
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 2 },
  },
  required: ['mood', 'ok', 'tags'],
  additionalProperties: false,
};
const ask = [{ role: 'user', content: 'Tell me about a cat' }];

test('openai: response_format json_schema gives a value the schema accepts, greedy and sampled', async () => {
  for (const [temperature, seed] of [[0, 1], [0.8, 2], [1, 3]]) {
    const r = await openai.chat.completions.create({
      model: 'story', messages: ask, temperature, seed, max_tokens: 100, logit_bias: noBlanks,
      response_format: { type: 'json_schema', json_schema: { name: 'cat', strict: true, schema: cat } },
    });
    assert.equal(r.choices[0].finish_reason, 'stop', r.choices[0].message.content);
    const v = valid(cat, r.choices[0].message.content);
    assert.deepEqual(Object.keys(v).sort(), ['mood', 'ok', 'tags']);
  }
});

test('openai: the parse helper reads the answer back, and a stream carries the same text', async () => {
  const request = {
    model: 'story', messages: ask, temperature: 0, max_tokens: 100, logit_bias: noBlanks,
    response_format: { type: 'json_schema', json_schema: { name: 'cat', strict: true, schema: cat } },
  };
  const parsed = await openai.chat.completions.parse(request);
  const message = parsed.choices[0].message;
  assert.deepEqual(message.parsed, valid(cat, message.content));
  let streamed = '';
  for await (const chunk of await openai.chat.completions.create({ ...request, stream: true })) {
    streamed += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(streamed, message.content);
});

test('ollama: format with a schema, on /api/chat and /api/generate', async () => {
  const words = { type: 'array', items: { type: 'string', maxLength: 8 }, minItems: 2, maxItems: 3 };
  const g = await ollama.generate({ model: 'story', prompt: 'Tell me about a cat', format: words,
    options: { temperature: 0, num_predict: 100 } });
  assert.equal(g.done_reason, 'stop', g.response);
  const list = valid(words, g.response);
  assert.ok(list.length >= 2 && list.length <= 3);
  const flag = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] };
  const c = await ollama.chat({ model: 'story', messages: ask, format: flag, options: { temperature: 0, num_predict: 100 } });
  assert.equal(c.done_reason, 'stop', c.message.content);
  assert.equal(typeof valid(flag, c.message.content).ok, 'boolean');
});

test('a schema tars cannot keep is a 400 naming the place and the keyword, on both APIs', async () => {
  const withPattern = { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z]+$' } } };
  await assert.rejects(
    openai.chat.completions.create({ model: 'story', messages: ask,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: withPattern } } }),
    (e) => e.status === 400 && /#\/properties\/id.*"pattern" is not supported/.test(e.message));
  await assert.rejects(
    ollama.chat({ model: 'story', messages: ask, format: { type: 'integer', minimum: 3 } }),
    (e) => e.status_code === 400 && /"minimum" is not supported/.test(e.error));
  await assert.rejects(
    ollama.generate({ model: 'story', prompt: 'x', format: { $ref: '#/$defs/nothing' } }),
    (e) => e.status_code === 400 && /names nothing/.test(e.error));
});

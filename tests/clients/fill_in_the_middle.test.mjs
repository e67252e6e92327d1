// Filling in the middle (code completion between a prefix and a suffix), with
// the official openai and ollama npm clients: OpenAI's completions `suffix`,
// Ollama's generate `suffix`. The model is a chain model
// (tests/support/chain_model.h) with Qwen2.5-Coder's fill-in-the-middle
// control tokens; its greedy answer after <|fim_middle|> is "return a + b"
// and then <|fim_pad|>, which must end the answer (without it the chain goes
// round again: <|fim_prefix|> <|fim_suffix|> <|fim_middle|> "return a + b"...).
// The prompt must be [BOS] <|fim_prefix|> before <|fim_suffix|> after
// <|fim_middle|>, whose size the test checks against /tokenize.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { startChainNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const prefix = 'def add(a, b):\n    ';
const suffix = '\n\nprint(add(1, 2))\n';
const middle = 'return a + b';

let node;
let client;
let ollama;
before(async () => {
  node = await startChainNode('fim', {
    coder: [`${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`, '<|fim_middle|>', middle, middle,
      '<|fim_pad|>', '<|fim_pad|>', '<|fim_prefix|>', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_suffix|>',
      '<|fim_middle|>'],
  }, [`${fixtures}/stories260K/stories260K.gguf`]);
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  ollama = new Ollama({ host: node.url });
});
after(async () => {
  await node?.stop();
});

async function tokens(content) {
  const r = await fetch(`${node.url}/tokenize`, {
    method: 'POST', body: JSON.stringify({ model: 'coder', content, add_special: false, parse_special: false }),
  });
  return (await r.json()).tokens.length;
}

test('openai completions: the suffix makes it fill in the middle', async () => {
  const r = await client.completions.create({ model: 'coder', prompt: prefix, suffix, temperature: 0, max_tokens: 40 });
  assert.equal(r.choices[0].text, middle);
  assert.equal(r.choices[0].finish_reason, 'stop');  // <|fim_pad|> ended it
  // BOS, the three markers, and the two texts as they tokenize.
  assert.equal(r.usage.prompt_tokens, 4 + await tokens(prefix) + await tokens(suffix));
  const stream = await client.completions.create({ model: 'coder', prompt: prefix, suffix, temperature: 0,
    max_tokens: 40, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, middle);
  // Nothing before the gap (the start of a file).
  const start = await client.completions.create({ model: 'coder', prompt: '', suffix, temperature: 0, max_tokens: 40 });
  assert.equal(start.choices[0].text, middle);
  assert.equal(start.usage.prompt_tokens, 4 + await tokens(suffix));
});

test('ollama generate: suffix, and the insert capability', async () => {
  const r = await ollama.generate({ model: 'coder', prompt: prefix, suffix, options: { temperature: 0 } });
  assert.equal(r.response, middle);
  assert.equal(r.done_reason, 'stop');
  const show = await ollama.show({ model: 'coder' });
  assert.ok(show.capabilities.includes('insert'), JSON.stringify(show.capabilities));
  assert.ok(!(await ollama.show({ model: 'stories260K' })).capabilities.includes('insert'));
});

test('a model without fill-in-the-middle tokens refuses a suffix', async () => {
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'Once', suffix: ' The end.' }),
    (e) => e.status === 400 && /cannot fill in the middle/.test(e.message));
  await assert.rejects(
    ollama.generate({ model: 'stories260K', prompt: 'Once', suffix: ' The end.' }),
    (e) => e.status_code === 400 && /cannot fill in the middle/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'coder', messages: [{ role: 'user', content: 'x' }], suffix: 'y' }),
    (e) => e.status === 400 && /suffix/.test(e.message));
});

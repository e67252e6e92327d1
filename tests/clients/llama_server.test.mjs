// llama-server's utility endpoints, as its web UI and tools call them with
// fetch: GET /props (the model's context, slots, default sampling, chat
// template and special tokens) and POST /apply-template (the prompt a chat
// would send), on chain models with Qwen2.5's real chat template; the
// rendered prompt is checked against the template's known output and against
// the chat completion's own prompt size.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startChainNode, weatherChainModels } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const qwenTemplate = readFileSync(`${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`, 'utf8');
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];

let node;
before(async () => {
  node = await startChainNode('llama-server', weatherChainModels(fixtures, 'Hmm.'));
});
after(async () => {
  await node?.stop();
});

async function call(method, path, body) {
  const r = await fetch(`${node.url}${path}`, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

test('GET /props: the model\'s context, slots, sampling defaults, template and tokens', async () => {
  const { status, json } = await call('GET', '/props?model=qwen-talker');
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.model_alias, 'qwen-talker');
  assert.match(json.model_path, /qwen-talker\.gguf$/);
  assert.equal(json.chat_template, qwenTemplate);
  assert.equal(json.eos_token, '<|im_end|>');
  assert.ok(json.total_slots >= 1);
  const s = json.default_generation_settings;
  assert.equal(s.model, 'qwen-talker');
  assert.ok(s.n_ctx >= 128, `n_ctx ${s.n_ctx}`);
  // What a request that sets nothing gets (the engine's sampler defaults).
  assert.equal(s.params.top_k, 40);
  assert.equal(s.params.n_predict, -1);
  assert.deepEqual(json.modalities, { vision: false, audio: false });
  // The context is what the scheduler enforces: a prompt one token longer than it is refused.
  const { json: sizes } = await call('POST', '/v1/chat/completions', {
    model: 'qwen-talker', messages: [{ role: 'user', content: 'x '.repeat(s.n_ctx) }], max_tokens: 1,
  });
  assert.match(sizes.error.message, new RegExp(`context of ${s.n_ctx} tokens`));
  const unknown = await call('GET', '/props?model=nope');
  assert.equal(unknown.status, 404);
});

test('POST /apply-template: the rendered chat, as the chat completion reads it', async () => {
  const { status, json } = await call('POST', '/apply-template', { model: 'qwen-talker', messages });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.prompt,
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  // Read as the chat's prompt is: special tokens parsed, and the vocabulary's BOS added.
  const tokens = await call('POST', '/tokenize', {
    model: 'qwen-talker', content: json.prompt, parse_special: true, add_special: true,
  });
  const chat = await call('POST', '/v1/chat/completions', { model: 'qwen-talker', messages, max_tokens: 1 });
  assert.equal(tokens.json.tokens.length, chat.json.usage.prompt_tokens);
  // Tools reach the template too.
  const withTools = await call('POST', '/apply-template', { model: 'qwen-talker', messages, tools: [
    { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] });
  assert.match(withTools.json.prompt, /<tools>[\s\S]*get_weather[\s\S]*<\/tools>/);
  const bad = await call('POST', '/apply-template', { model: 'qwen-talker' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /messages/);
});

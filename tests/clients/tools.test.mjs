// Tool calls end to end, with the official openai and ollama npm clients.
// The models are chain models (tests/support/chain_model.h): real GGUF files
// run by the real engine, whose weights make the greedy answer to any prompt a
// fixed text, here a call of get_weather in each family's own way (Qwen2.5's
// <tool_call> blocks, Llama 3.1's bare JSON), with the family's real chat
// template from ../shared/models. The server must show the tools to the model
// through the template, read the call back out of the answer and give it to
// the client as a tool call; then take the call and its result back in the
// next request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const maker = process.env.TARS_MAKE_CHAIN_MODEL;

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather now in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const question = [{ role: 'user', content: 'What is the weather in Paris?' }];

let dir;
let qwen;    // node serving the Qwen2.5-template chain model
let llama;   // node serving the Llama-3.1-template chain model
let talkers; // node serving two chain models that answer with text, in each template
let mistral; // node serving Mistral-template chain models: f[ARGS]{...} after text, and a [TOOL_CALLS] list
let client;
let llamaClient;
let ollama;
before(async () => {
  assert.ok(maker, 'TARS_MAKE_CHAIN_MODEL is not set (ctest sets it)');
  dir = mkdtempSync(join(tmpdir(), 'tars-tools-'));
  // The answer after the prompt's last token ('\n', the byte token <0x0A>).
  execFileSync(maker, [join(dir, 'qwen-chain.gguf'), `${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`,
    '<0x0A>', '<tool_call>\n',
    '<tool_call>\n', '{"name": "get_weather", ',
    '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}',
    '"arguments": {"city": "Paris"}}', '\n</tool_call>',
    '\n</tool_call>', '<|im_end|>']);
  execFileSync(maker, [join(dir, 'llama-chain.gguf'),
    `${fixtures}/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja`,
    '<0x0A>', '{"name": "get_weather", ',
    '{"name": "get_weather", ', '"parameters": {"city": "Paris"}}',
    '"parameters": {"city": "Paris"}}', '<|im_end|>']);
  // Models that answer "It is sunny." to anything: a call can only come
  // from tool_choice forcing one.
  execFileSync(maker, [join(dir, 'qwen-talker.gguf'), `${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`,
    '<0x0A>', 'It is sunny.', 'It is sunny.', '<|im_end|>']);
  execFileSync(maker, [join(dir, 'llama-talker.gguf'),
    `${fixtures}/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja`,
    '<0x0A>', 'It is sunny.', 'It is sunny.', '<|im_end|>']);
  writeFileSync(join(dir, 'talkers.toml'), `[[model]]\npath = "${join(dir, 'qwen-talker.gguf')}"\n\n`
    + `[[model]]\npath = "${join(dir, 'llama-talker.gguf')}"\n`);
  talkers = await startNode(['--config', join(dir, 'talkers.toml')]);
  // Mistral's calls begin with the control token [TOOL_CALLS] (and Ministral's
  // arguments with [ARGS]); the prompt ends with the bytes of "[/INST]".
  const ministral = `${fixtures}/chat-templates/mistralai-Ministral-3-14B-Reasoning-2512.jinja`;
  execFileSync(maker, [join(dir, 'mistral-args.gguf'), ministral,
    '<0x5D>', 'Let me check.', 'Let me check.', '[TOOL_CALLS]', '[TOOL_CALLS]', 'get_weather',
    'get_weather', '[ARGS]', '[ARGS]', '{"city": "Paris"}', '{"city": "Paris"}', '<|im_end|>']);
  execFileSync(maker, [join(dir, 'mistral-list.gguf'), ministral,
    '<0x5D>', '[TOOL_CALLS]', '[TOOL_CALLS]', ' [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    ' [{"name": "get_weather", "arguments": {"city": "Paris"}}]', '<|im_end|>']);
  writeFileSync(join(dir, 'mistral.toml'), `[[model]]\npath = "${join(dir, 'mistral-args.gguf')}"\n\n`
    + `[[model]]\npath = "${join(dir, 'mistral-list.gguf')}"\n`);
  mistral = await startNode(['--config', join(dir, 'mistral.toml')]);
  qwen = await startNode(['--model', join(dir, 'qwen-chain.gguf')]);
  llama = await startNode(['--model', join(dir, 'llama-chain.gguf')]);
  client = new OpenAI({ baseURL: `${qwen.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  llamaClient = new OpenAI({ baseURL: `${llama.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  ollama = new Ollama({ host: qwen.url });
});
after(async () => {
  await qwen?.stop();
  await llama?.stop();
  await talkers?.stop();
  await mistral?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const expectWeatherCall = (message) => {
  assert.equal(message.tool_calls.length, 1);
  const [call] = message.tool_calls;
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
};

test('a call in <tool_call> tags comes back as tool_calls', async () => {
  const r = await client.chat.completions.create({ model: 'qwen-chain', messages: question, tools, temperature: 0 });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.content, null);
  expectWeatherCall(r.choices[0].message);
});

test('streamed, the SDK assembles the same call and no tag leaks as content', async () => {
  const stream = client.chat.completions.stream({ model: 'qwen-chain', messages: question, tools, temperature: 0 });
  let content = '';
  stream.on('content', (delta) => { content += delta; });
  const final = await stream.finalChatCompletion();
  assert.equal(content, '');
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  expectWeatherCall(final.choices[0].message);
});

test('the call and its result go back in the next request', async () => {
  const first = await client.chat.completions.create({ model: 'qwen-chain', messages: question, tools,
    temperature: 0 });
  const call = first.choices[0].message.tool_calls[0];
  const messages = [...question, first.choices[0].message,
    { role: 'tool', tool_call_id: call.id, content: '18 degrees, sunny' }];
  const second = await client.chat.completions.create({ model: 'qwen-chain', messages, tools, temperature: 0 });
  // The template rendered the call and the result (the prompt grew by them);
  // this model answers every prompt with the same call.
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens + 20,
    `${second.usage.prompt_tokens} vs ${first.usage.prompt_tokens}`);
  expectWeatherCall(second.choices[0].message);
});

test('tool_choice none: the model is not told, and its text stays text', async () => {
  const r = await client.chat.completions.create({ model: 'qwen-chain', messages: question, tools,
    tool_choice: 'none', temperature: 0 });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.match(r.choices[0].message.content, /<tool_call>/);
  const told = await client.chat.completions.create({ model: 'qwen-chain', messages: question, tools,
    temperature: 0 });
  assert.ok(told.usage.prompt_tokens > r.usage.prompt_tokens + 100);  // the tools' part of the system prompt
  await assert.rejects(client.chat.completions.create({ model: 'qwen-chain', messages: question, tools,
    tool_choice: { type: 'function', function: { name: 'get_time' } } }),
  (e) => e.status === 400 && /tool_choice.*get_time.*not among the tools/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'qwen-chain', messages: question,
    tool_choice: 'required' }), (e) => e.status === 400 && /tool_choice.*needs tools/.test(e.message));
});

test('a Llama 3.1 bare-JSON call comes back as tool_calls', async () => {
  const r = await llamaClient.chat.completions.create({ model: 'llama-chain', messages: question, tools,
    temperature: 0 });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  expectWeatherCall(r.choices[0].message);
  const stream = llamaClient.chat.completions.stream({ model: 'llama-chain', messages: question, tools,
    temperature: 0 });
  expectWeatherCall((await stream.finalChatCompletion()).choices[0].message);
});

test('Ollama clients get Ollama tool calls, streamed or not', async () => {
  const r = await ollama.chat({ model: 'qwen-chain', messages: question, tools });
  assert.equal(r.done_reason, 'stop');
  assert.equal(r.message.content, '');
  assert.deepEqual(r.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
  const stream = await ollama.chat({ model: 'qwen-chain', messages: question, tools, stream: true });
  const calls = [];
  let content = '';
  for await (const part of stream) {
    content += part.message.content;
    if (part.message.tool_calls) calls.push(...part.message.tool_calls);
  }
  assert.equal(content, '');
  assert.deepEqual(calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
  // And back: Ollama's call (arguments as an object) and the tool's answer.
  const next = await ollama.chat({ model: 'qwen-chain', tools, messages: [...question, r.message,
    { role: 'tool', content: '18 degrees, sunny', tool_name: 'get_weather' }] });
  assert.ok(next.prompt_eval_count > r.prompt_eval_count + 20);
});

// tool_choice "required" and a named function: the answer is kept one call
// (its object compiled from the tools' parameters, engine/json_schema.h), so
// a model that would answer with text calls a function, with arguments its
// parameters accept, in its family's own way.
const forcedTools = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object',
    properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } }, required: ['city'] } } },
  { type: 'function', function: { name: 'get_time', description: 'The time now in a zone', parameters: {
    type: 'object', properties: { zone: { $ref: '#/$defs/zone' } }, required: ['zone'],
    $defs: { zone: { enum: ['UTC', 'CET'] } } } } },
];
const expectedArguments = { get_weather: (a) => ['Paris', 'Rome'].includes(a.city),
  get_time: (a) => ['UTC', 'CET'].includes(a.zone) };

test('tool_choice required or named makes a model that answers with text call a function', async () => {
  const talkerClient = new OpenAI({ baseURL: `${talkers.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (const model of ['qwen-talker', 'llama-talker']) {
    const plain = await talkerClient.chat.completions.create({ model, messages: question, tools: forcedTools,
      temperature: 0 });
    assert.equal(plain.choices[0].message.content, 'It is sunny.');
    assert.equal(plain.choices[0].message.tool_calls, undefined);
    for (const toolChoice of ['required', { type: 'function', function: { name: 'get_time' } },
      { type: 'function', function: { name: 'get_weather' } }]) {
      const r = await talkerClient.chat.completions.create({ model, messages: question, tools: forcedTools,
        tool_choice: toolChoice, temperature: 0 });
      const where = `${model} ${JSON.stringify(toolChoice)}: ${JSON.stringify(r.choices[0].message)}`;
      assert.equal(r.choices[0].finish_reason, 'tool_calls', where);
      assert.equal(r.choices[0].message.tool_calls.length, 1, where);
      const call = r.choices[0].message.tool_calls[0].function;
      if (typeof toolChoice === 'object') assert.equal(call.name, toolChoice.function.name, where);
      assert.ok(expectedArguments[call.name](JSON.parse(call.arguments)), where);
    }
  }
  // Streamed, the SDK assembles the same call.
  const request = { model: 'qwen-talker', messages: question, tools: forcedTools,
    tool_choice: { type: 'function', function: { name: 'get_time' } }, temperature: 0 };
  const once = await talkerClient.chat.completions.create(request);
  const final = await talkerClient.chat.completions.stream(request).finalChatCompletion();
  assert.deepEqual(final.choices[0].message.tool_calls.map((c) => c.function),
    once.choices[0].message.tool_calls.map((c) => c.function));
});

// Mistral's calls: [TOOL_CALLS] and [ARGS] are control tokens, which never
// reach the text by themselves; the node writes them in so that the calls are
// found, and no marker leaks as content, streamed or not, on both APIs.
test('Mistral [TOOL_CALLS] calls come back as tool calls, after the text before them', async () => {
  const mistralClient = new OpenAI({ baseURL: `${mistral.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (const [model, content] of [['mistral-args', 'Let me check.'], ['mistral-list', null]]) {
    const r = await mistralClient.chat.completions.create({ model, messages: question, tools, temperature: 0 });
    assert.equal(r.choices[0].finish_reason, 'tool_calls', JSON.stringify(r.choices[0]));
    assert.equal(r.choices[0].message.content, content);
    expectWeatherCall(r.choices[0].message);
    const stream = mistralClient.chat.completions.stream({ model, messages: question, tools, temperature: 0 });
    let streamed = '';
    stream.on('content', (delta) => { streamed += delta; });
    const final = await stream.finalChatCompletion();
    assert.equal(streamed, content ?? '');
    expectWeatherCall(final.choices[0].message);
    // The call and its result go back through the template ([TOOL_CALLS]...[TOOL_RESULTS]).
    const call = r.choices[0].message.tool_calls[0];
    const messages = [...question, r.choices[0].message,
      { role: 'tool', tool_call_id: call.id, content: '18 degrees, sunny' }];
    const second = await mistralClient.chat.completions.create({ model, messages, tools, temperature: 0 });
    assert.ok(second.usage.prompt_tokens > r.usage.prompt_tokens + 20);
  }
  const mistralOllama = new Ollama({ host: mistral.url });
  const o = await mistralOllama.chat({ model: 'mistral-args', messages: question, tools });
  assert.equal(o.message.content, 'Let me check.');
  assert.deepEqual(o.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
  // Without tools the markers are not text: the answer is what the model wrote around them.
  const plain = await mistralClient.chat.completions.create({ model: 'mistral-args', messages: question,
    temperature: 0 });
  assert.equal(plain.choices[0].message.content, 'Let me check.get_weather{"city": "Paris"}');
  await assert.rejects(mistralClient.chat.completions.create({ model: 'mistral-args', messages: question, tools,
    tool_choice: 'required' }), (e) => e.status === 400 && /control token/.test(e.message));
});

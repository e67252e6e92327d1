// Anthropic's Messages API end to end, with the official @anthropic-ai/sdk
// npm client (what coding agents that speak Anthropic's API are built on).
// The models are chain models (tests/support/chain_model.h): real GGUF files
// run by the real engine whose greedy answer to any prompt is a fixed text,
// with the family's real chat template from ../shared/models: a Qwen2.5 model
// that calls get_weather in <tool_call> blocks, one that answers "It is
// sunny.", and a SmolLM3 model that thinks in <think> tags first. Prompt
// sizes are checked against the OpenAI endpoint's count for the same chat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startChainNode, weatherChainModels } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const thought = 'The user asks about the weather.';

const tools = [{
  name: 'get_weather',
  description: 'The weather now in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];
const question = [{ role: 'user', content: 'What is the weather in Paris?' }];

let node;
let client;
let openai;
before(async () => {
  node = await startChainNode('anthropic', weatherChainModels(fixtures, thought));
  client = new Anthropic({ baseURL: node.url, apiKey: 'unused', maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await node?.stop();
});

// The prompt size of the same chat through the OpenAI endpoint.
async function openaiPromptTokens(model, messages) {
  const r = await openai.chat.completions.create({ model, messages, max_tokens: 1, cache_prompt: false });
  return r.usage.prompt_tokens;
}

test('a text answer: content blocks, end_turn, usage that counts the prompt', async () => {
  const m = await client.messages.create({
    model: 'qwen-talker', max_tokens: 32, system: 'Be brief.', messages: question,
  });
  assert.match(m.id, /^msg_/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'qwen-talker');
  assert.deepEqual(m.content, [{ type: 'text', text: 'It is sunny.' }]);
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.stop_sequence, null);
  const want = await openaiPromptTokens('qwen-talker', [{ role: 'system', content: 'Be brief.' }, ...question]);
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, want);
  assert.equal(m.usage.output_tokens, 1);  // 'It is sunny.' is one piece of the chain model (the end is not counted)
  // The system prompt as text blocks reads the same prompt.
  const counted = await client.messages.countTokens({
    model: 'qwen-talker', system: [{ type: 'text', text: 'Be brief.' }], messages: question,
  });
  assert.equal(counted.input_tokens, want);
});

test('stop sequences and max_tokens end the answer with their stop_reason', async () => {
  const s = await client.messages.create({
    model: 'qwen-talker', max_tokens: 32, messages: question, stop_sequences: ['never', 'sunny'],
  });
  assert.deepEqual(s.content, [{ type: 'text', text: 'It is ' }]);
  assert.equal(s.stop_reason, 'stop_sequence');
  assert.equal(s.stop_sequence, 'sunny');
  const l = await client.messages.create({ model: 'smol-thinker', max_tokens: 2, messages: question });
  assert.equal(l.stop_reason, 'max_tokens');
  assert.equal(l.usage.output_tokens, 2);
});

test('streamed: the SDK assembles the events into the same message', async () => {
  const stream = client.messages.stream({ model: 'qwen-talker', max_tokens: 32, messages: question });
  const kinds = [];
  let text = '';
  stream.on('streamEvent', (e) => kinds.push(e.type));
  stream.on('text', (t) => { text += t; });
  const m = await stream.finalMessage();
  assert.equal(text, 'It is sunny.');
  assert.deepEqual(m.content, [{ type: 'text', text: 'It is sunny.' }]);
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(kinds[0], 'message_start');
  assert.equal(kinds.at(-1), 'message_stop');
  assert.equal(kinds.at(-2), 'message_delta');
  assert.deepEqual(kinds.slice(1, -2), ['content_block_start', 'content_block_delta', 'content_block_stop']);
});

test('tools: a tool_use block with the input object, then the result goes back in', async () => {
  const m = await client.messages.create({ model: 'qwen-caller', max_tokens: 64, tools, messages: question });
  assert.equal(m.stop_reason, 'tool_use');
  const calls = m.content.filter((b) => b.type === 'tool_use');
  assert.equal(calls.length, 1, JSON.stringify(m.content));
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(calls[0].input, { city: 'Paris' });
  assert.match(calls[0].id, /^toolu_/);
  assert.equal(m.content.some((b) => b.type === 'text' && b.text.includes('<tool_call>')), false);

  // The call and its result back in: the template shows both to the model.
  const conversation = [
    ...question,
    { role: 'assistant', content: m.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: calls[0].id, content: '18 degrees, sunny' }] },
  ];
  const r = await client.messages.create({ model: 'qwen-talker', max_tokens: 32, tools, messages: conversation });
  assert.deepEqual(r.content, [{ type: 'text', text: 'It is sunny.' }]);
  // The same prompt as the OpenAI endpoint's for the same chat in its shape.
  const want = await openaiPromptTokens('qwen-talker', [
    ...question,
    { role: 'assistant', content: null, tool_calls: [{ id: calls[0].id, type: 'function',
      function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
    { role: 'tool', tool_call_id: calls[0].id, content: '18 degrees, sunny' },
  ]);
  const counted = await client.messages.countTokens({ model: 'qwen-talker', messages: conversation });
  assert.equal(counted.input_tokens, want);
  const without = await client.messages.countTokens({ model: 'qwen-talker', messages: question });
  assert.ok(counted.input_tokens > without.input_tokens + 10, `${counted.input_tokens} vs ${without.input_tokens}`);
});

test('tools, streamed: the call comes as a tool_use block with input_json_delta', async () => {
  const stream = client.messages.stream({ model: 'qwen-caller', max_tokens: 64, tools, messages: question });
  const m = await stream.finalMessage();
  assert.equal(m.stop_reason, 'tool_use');
  const calls = m.content.filter((b) => b.type === 'tool_use');
  assert.equal(calls.length, 1, JSON.stringify(m.content));
  assert.deepEqual(calls[0].input, { city: 'Paris' });
});

test('tool_choice: a named tool is called even by a model that would answer in text', async () => {
  // An enum keeps the random model's forced argument short.
  const forced = [{ ...tools[0], input_schema: { type: 'object',
    properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } }, required: ['city'] } }];
  for (const tool_choice of [{ type: 'tool', name: 'get_weather' }, { type: 'any' }]) {
    const m = await client.messages.create({
      model: 'qwen-talker', max_tokens: 3000, tools: forced, messages: question, tool_choice,
    });
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m));
    const calls = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(calls.length, 1, JSON.stringify(m.content));
    assert.equal(calls[0].name, 'get_weather');
    assert.ok(['Paris', 'Rome'].includes(calls[0].input.city), JSON.stringify(calls[0]));  // the schema's constraint wrote it
  }
  const none = await client.messages.create({
    model: 'qwen-caller', max_tokens: 64, tools, messages: question, tool_choice: { type: 'none' },
  });
  assert.equal(none.content.some((b) => b.type === 'tool_use'), false);
});

test('thinking: the thought comes as a thinking block before the text, whole and streamed', async () => {
  const m = await client.messages.create({
    model: 'smol-thinker', max_tokens: 64, messages: question, thinking: { type: 'enabled', budget_tokens: 1024 },
  });
  assert.equal(m.content.length, 2, JSON.stringify(m.content));
  assert.equal(m.content[0].type, 'thinking');
  assert.equal(m.content[0].thinking, thought);
  assert.deepEqual(m.content[1], { type: 'text', text: 'Sunny.' });

  const stream = client.messages.stream({
    model: 'smol-thinker', max_tokens: 64, messages: question, thinking: { type: 'enabled', budget_tokens: 1024 },
  });
  let thinking = '';
  stream.on('thinking', (t) => { thinking += t; });
  const s = await stream.finalMessage();
  assert.equal(thinking, thought);
  assert.equal(s.content[0].thinking, thought);
  assert.equal(s.content[1].text, 'Sunny.');
  // Thinking asked of a model that does not think.
  await assert.rejects(
    client.messages.create({ model: 'qwen-talker', max_tokens: 8, messages: question, thinking: { type: 'enabled', budget_tokens: 1024 } }),
    (e) => e instanceof Anthropic.BadRequestError && /does not think/.test(e.message));
});

test('bad requests: Anthropic errors the SDK reads, naming the field', async () => {
  const cases = [
    [{ model: 'qwen-talker', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] },
      Anthropic.BadRequestError, /messages\[0\]\.content\[0\].*image/],
    [{ model: 'qwen-talker', messages: question }, Anthropic.BadRequestError, /max_tokens/],
    [{ model: 'qwen-talker', max_tokens: 8, messages: [] }, Anthropic.BadRequestError, /messages/],
    [{ model: 'qwen-talker', max_tokens: 8, messages: [...question, { role: 'assistant', content: 'It is' }] },
      Anthropic.BadRequestError, /prefilled/],
    [{ model: 'qwen-talker', max_tokens: 8, messages: question, tools: [{ type: 'web_search_20250305', name: 'web_search' }] },
      Anthropic.BadRequestError, /server tools/],
    [{ model: 'qwen-talker', max_tokens: 8, messages: question, temperature: 1.5 }, Anthropic.BadRequestError, /temperature/],
    [{ model: 'nope', max_tokens: 8, messages: question }, Anthropic.NotFoundError, /nope/],
  ];
  for (const [body, kind, message] of cases) {
    await assert.rejects(client.messages.create(body), (e) => {
      assert.ok(e instanceof kind, `${JSON.stringify(body)}: ${e.constructor.name} ${e.message}`);
      assert.match(e.message, message);
      assert.equal(e.error?.type, 'error');
      return true;
    });
  }
  // Still serving.
  const m = await client.messages.create({ model: 'qwen-talker', max_tokens: 32, messages: question });
  assert.equal(m.content[0].text, 'It is sunny.');
});

// OpenAI's Responses API end to end, with the official openai npm client's
// client.responses (create, and stream with its event accumulator). The
// models are chain models (tests/support/chain_model.h): real GGUF files run
// by the real engine whose greedy answer to any prompt is a fixed text, with
// the family's real chat template from ../shared/models: a Qwen2.5 model that
// calls get_weather in <tool_call> blocks, one that answers "It is sunny.",
// and a SmolLM3 model that thinks in <think> tags first. Prompt sizes are
// checked against the chat completions endpoint's count for the same chat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startChainNode, weatherChainModels } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const thought = 'The user asks about the weather.';
const question = 'What is the weather in Paris?';
const tools = [{
  type: 'function',
  name: 'get_weather',
  description: 'The weather now in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];

let node;
let client;
before(async () => {
  node = await startChainNode('responses', weatherChainModels(fixtures, thought));
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await node?.stop();
});

async function chatPromptTokens(model, messages) {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 1, cache_prompt: false });
  return r.usage.prompt_tokens;
}

test('a text answer: a message item, output_text, usage that counts the prompt', async () => {
  const r = await client.responses.create({ model: 'qwen-talker', instructions: 'Be brief.', input: question });
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.model, 'qwen-talker');
  assert.equal(r.instructions, 'Be brief.');
  assert.equal(r.output_text, 'It is sunny.');
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.deepEqual(r.output[0].content.map((c) => [c.type, c.text]), [['output_text', 'It is sunny.']]);
  const want = await chatPromptTokens('qwen-talker', [{ role: 'system', content: 'Be brief.' },
    { role: 'user', content: question }]);
  assert.equal(r.usage.input_tokens, want);
  assert.equal(r.usage.total_tokens, want + r.usage.output_tokens);
  // Items instead of a string: a developer message is the system prompt.
  const items = await client.responses.create({ model: 'qwen-talker', input: [
    { role: 'developer', content: 'Be brief.' },
    { role: 'user', content: [{ type: 'input_text', text: question }] }] });
  assert.equal(items.output_text, 'It is sunny.');
  assert.equal(items.usage.input_tokens, want);
});

test('streamed: numbered events the client assembles into the same response', async () => {
  const stream = client.responses.stream({ model: 'qwen-talker', input: question });
  const types = [];
  const numbers = [];
  let text = '';
  stream.on('event', (e) => { types.push(e.type); numbers.push(e.sequence_number); });
  stream.on('response.output_text.delta', (e) => { text += e.delta; });
  const r = await stream.finalResponse();
  assert.equal(text, 'It is sunny.');
  assert.equal(r.output_text, 'It is sunny.');
  assert.equal(r.status, 'completed');
  assert.deepEqual(types, ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed']);
  assert.deepEqual(numbers, numbers.map((_, i) => i));
});

test('tools: a function_call item, then its output goes back in as an item', async () => {
  const r = await client.responses.create({ model: 'qwen-caller', input: question, tools });
  const calls = r.output.filter((o) => o.type === 'function_call');
  assert.equal(calls.length, 1, JSON.stringify(r.output));
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
  assert.match(calls[0].call_id, /^call_/);
  assert.equal(r.output_text, '');

  const input = [
    { role: 'user', content: question },
    { type: 'function_call', call_id: calls[0].call_id, name: 'get_weather', arguments: calls[0].arguments },
    { type: 'function_call_output', call_id: calls[0].call_id, output: '18 degrees, sunny' },
  ];
  const answer = await client.responses.create({ model: 'qwen-talker', input, tools });
  assert.equal(answer.output_text, 'It is sunny.');
  // The same prompt as chat completions' for the same chat in its shape.
  const want = await client.chat.completions.create({ model: 'qwen-talker', max_tokens: 1, cache_prompt: false, tools: [
    { type: 'function', function: { name: 'get_weather', description: tools[0].description, parameters: tools[0].parameters } }],
  messages: [
    { role: 'user', content: question },
    { role: 'assistant', content: null, tool_calls: [{ id: calls[0].call_id, type: 'function',
      function: { name: 'get_weather', arguments: calls[0].arguments } }] },
    { role: 'tool', tool_call_id: calls[0].call_id, content: '18 degrees, sunny' },
  ] });
  assert.equal(answer.usage.input_tokens, want.usage.prompt_tokens);

  // Streamed: the call comes as an item with its arguments.
  const s = await client.responses.stream({ model: 'qwen-caller', input: question, tools }).finalResponse();
  const streamed = s.output.filter((o) => o.type === 'function_call');
  assert.equal(streamed.length, 1, JSON.stringify(s.output));
  assert.deepEqual(JSON.parse(streamed[0].arguments), { city: 'Paris' });
  // tool_choice none: the model is not told, its text stays text.
  const none = await client.responses.create({ model: 'qwen-caller', input: question, tools, tool_choice: 'none' });
  assert.equal(none.output.some((o) => o.type === 'function_call'), false);
  assert.match(none.output_text, /<tool_call>/);
});

test('reasoning: the thought is a reasoning item before the message, whole and streamed', async () => {
  const r = await client.responses.create({ model: 'smol-thinker', input: question });
  assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'message']);
  assert.equal(r.output[0].content[0].type, 'reasoning_text');
  assert.equal(r.output[0].content[0].text, thought);
  assert.equal(r.output_text, 'Sunny.');
  const stream = client.responses.stream({ model: 'smol-thinker', input: question });
  let reasoning = '';
  stream.on('response.reasoning_text.delta', (e) => { reasoning += e.delta; });
  const s = await stream.finalResponse();
  assert.equal(reasoning, thought);
  assert.equal(s.output[0].content[0].text, thought);
  assert.equal(s.output_text, 'Sunny.');
});

test('max_output_tokens: an incomplete response that says why', async () => {
  const r = await client.responses.create({ model: 'smol-thinker', input: question, max_output_tokens: 2 });
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.usage.output_tokens, 2);
  const types = [];
  const stream = client.responses.stream({ model: 'smol-thinker', input: question, max_output_tokens: 2 });
  stream.on('event', (e) => types.push(e.type));
  const s = await stream.finalResponse();
  assert.equal(s.status, 'incomplete');
  assert.equal(types.at(-1), 'response.incomplete');
});

test('stored responses: retrieve, continue with previous_response_id, delete', async () => {
  const first = await client.responses.create({ model: 'qwen-talker', instructions: 'Be brief.', input: question });
  assert.equal(first.store, true);  // OpenAI's default
  assert.equal(first.previous_response_id, null);
  const got = await client.responses.retrieve(first.id);
  assert.deepEqual(got, { ...first, output_text: got.output_text });
  assert.equal(got.output_text, 'It is sunny.');
  // The next turn sends only what is new; its prompt is the whole conversation's.
  const next = await client.responses.create({ model: 'qwen-talker', instructions: 'Be brief.',
    previous_response_id: first.id, input: 'And tomorrow?' });
  assert.equal(next.previous_response_id, first.id);
  assert.equal(next.output_text, 'It is sunny.');
  const whole = await chatPromptTokens('qwen-talker', [{ role: 'system', content: 'Be brief.' },
    { role: 'user', content: question }, { role: 'assistant', content: 'It is sunny.' },
    { role: 'user', content: 'And tomorrow?' }]);
  assert.equal(next.usage.input_tokens, whole);
  // The instructions are not carried over: without them, no system prompt
  // but the template's own.
  const bare = await client.responses.create({ model: 'qwen-talker', previous_response_id: first.id, input: 'And tomorrow?' });
  assert.equal(bare.usage.input_tokens, await chatPromptTokens('qwen-talker', [{ role: 'user', content: question },
    { role: 'assistant', content: 'It is sunny.' }, { role: 'user', content: 'And tomorrow?' }]));
  // A call in one response, its output in the next: the call's name comes from the stored turn.
  const call = await client.responses.stream({ model: 'qwen-caller', input: question, tools }).finalResponse();
  const fc = call.output.find((o) => o.type === 'function_call');
  assert.ok(fc, JSON.stringify(call.output));
  assert.equal((await client.responses.retrieve(call.id)).output.find((o) => o.type === 'function_call').call_id,
    fc.call_id);  // the streamed response is stored too
  const answer = await client.responses.create({ model: 'qwen-talker', tools, previous_response_id: call.id,
    input: [{ type: 'function_call_output', call_id: fc.call_id, output: '18 degrees, sunny' }] });
  assert.equal(answer.output_text, 'It is sunny.');
  const want = await client.chat.completions.create({ model: 'qwen-talker', max_tokens: 1, cache_prompt: false, tools: [
    { type: 'function', function: { name: 'get_weather', description: tools[0].description, parameters: tools[0].parameters } }],
  messages: [
    { role: 'user', content: question },
    { role: 'assistant', content: null, tool_calls: [{ id: fc.call_id, type: 'function',
      function: { name: 'get_weather', arguments: fc.arguments } }] },
    { role: 'tool', tool_call_id: fc.call_id, content: '18 degrees, sunny' },
  ] });
  assert.equal(answer.usage.input_tokens, want.usage.prompt_tokens);
  // store: false keeps nothing; delete forgets.
  const unstored = await client.responses.create({ model: 'qwen-talker', input: question, store: false });
  assert.equal(unstored.store, false);
  await assert.rejects(client.responses.retrieve(unstored.id), (e) => e.status === 404 && /not stored/.test(e.message));
  await client.responses.delete(first.id);
  await assert.rejects(client.responses.retrieve(first.id), (e) => e.status === 404);
  const raw = await fetch(`${node.url}/v1/responses/${next.id}`, { method: 'DELETE' });
  assert.deepEqual(await raw.json(), { id: next.id, object: 'response', deleted: true });
  await assert.rejects(client.responses.create({ model: 'qwen-talker', previous_response_id: first.id, input: 'x' }),
    (e) => e.status === 404 && /previous_response_id/.test(e.message));
  await assert.rejects(client.responses.delete(first.id), (e) => e.status === 404);
});

test('bad requests: 400s naming the field, 404 for an unknown model', async () => {
  const cases = [
    [{ model: 'qwen-talker', input: question, previous_response_id: 'resp_1' }, 404, /previous_response_id.*not stored/],
    [{ model: 'qwen-talker', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 400,
      /input\[0\]\.content\[0\].*input_image/],
    [{ model: 'qwen-talker', input: question, tools: [{ type: 'web_search' }] }, 400, /built-in tools/],
    [{ model: 'qwen-talker', input: [] }, 400, /input/],
    [{ model: 'qwen-talker', input: question, temperature: 3 }, 400, /temperature/],
    [{ model: 'qwen-talker', input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '[1]' }] }, 400,
      /arguments/],
    [{ model: 'nope', input: question }, 404, /nope/],
  ];
  for (const [body, status, message] of cases) {
    await assert.rejects(client.responses.create(body), (e) => {
      assert.equal(e.status, status, `${JSON.stringify(body)}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
  }
  const r = await client.responses.create({ model: 'qwen-talker', input: question });
  assert.equal(r.output_text, 'It is sunny.');
});

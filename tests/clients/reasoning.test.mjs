// Reasoning models' thoughts end to end, with the official openai and ollama
// npm clients. The models are chain models (tests/support/chain_model.h):
// real GGUF files run by the real engine, whose greedy answer to any prompt
// is a fixed text, here a thought between tags and then an answer, with the
// family's real chat template from ../shared/models: SmolLM3's <think> tags
// (plain text, cut inside the closing tag so the server must hold it back),
// and Ministral's [THINK] / [/THINK] control tokens (which the decoder drops
// from text and the server must write back). The server must give the thought
// apart from the answer: reasoning_content on the OpenAI API, thinking on
// Ollama's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { startChainNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const thought = 'The user says hi.';
const answer = 'Hello there!';
const question = [{ role: 'user', content: 'Hi!' }];

const templates = `${fixtures}/chat-templates`;
let opener;  // a folder with a template that opens the thought in the prompt, as DeepSeek-R1's does
let node;
let client;
let ollama;
before(async () => {
  opener = mkdtempSync(join(tmpdir(), 'tars-opener-'));
  writeFileSync(join(opener, 'opener.jinja'),
    '{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<think>\n{% endif %}');
  node = await startChainNode('reasoning', {
    // SmolLM3's prompt ends with '\n' (the byte token <0x0A>) with thinking
    // on and off alike.
    'smol-thinker': [`${templates}/HuggingFaceTB-SmolLM3-3B.jinja`, '<0x0A>', '<think>', '<think>', `\n${thought}`,
      `\n${thought}`, '\n</thi', '\n</thi', 'nk>\n\n', 'nk>\n\n', answer, answer, '<|im_end|>'],
    // Ministral's ends with the bytes of "[/INST]".
    'ministral-thinker': [`${templates}/mistralai-Ministral-3-14B-Reasoning-2512.jinja`, '<0x5D>', '[THINK]',
      '[THINK]', 'Checking the sky.', 'Checking the sky.', '[/THINK]', '[/THINK]', 'Sunny.', 'Sunny.', '<|im_end|>'],
    // Its answer starts inside the thought the prompt opened.
    'opener-thinker': [join(opener, 'opener.jinja'), '<0x0A>', 'Plan.', 'Plan.', '</think>', '</think>', 'Done.',
      'Done.', '<|im_end|>'],
    // A model without thinking tags in its template.
    'qwen-talker': [`${templates}/Qwen-Qwen2.5-7B-Instruct.jinja`, '<0x0A>', 'It is sunny.', 'It is sunny.',
      '<|im_end|>'],
  });
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  ollama = new Ollama({ host: node.url });
});
after(async () => {
  await node?.stop();
  if (opener) rmSync(opener, { recursive: true, force: true });
});

test('openai: the thought comes as reasoning_content, the answer as content', async () => {
  const r = await client.chat.completions.create({ model: 'smol-thinker', messages: question, temperature: 0 });
  assert.equal(r.choices[0].message.reasoning_content, thought);
  assert.equal(r.choices[0].message.content, answer);
  assert.equal(r.choices[0].finish_reason, 'stop');
  // Control-token tags too.
  const m = await client.chat.completions.create({ model: 'ministral-thinker', messages: question, temperature: 0 });
  assert.equal(m.choices[0].message.reasoning_content, 'Checking the sky.');
  assert.equal(m.choices[0].message.content, 'Sunny.');
  // A model that does not think has no reasoning_content.
  const q = await client.chat.completions.create({ model: 'qwen-talker', messages: question, temperature: 0 });
  assert.equal(q.choices[0].message.content, 'It is sunny.');
  assert.equal('reasoning_content' in q.choices[0].message, false);
});

test('openai stream: reasoning_content deltas, then content; no tag leaks', async () => {
  const stream = await client.chat.completions.create({
    model: 'smol-thinker', messages: question, temperature: 0, stream: true,
  });
  let reasoning = '';
  let content = '';
  let contentBeforeThoughtEnded = false;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (c.delta.reasoning_content) {
        if (content) contentBeforeThoughtEnded = true;
        reasoning += c.delta.reasoning_content;
      }
      content += c.delta.content ?? '';
    }
  }
  assert.equal(reasoning, thought);
  assert.equal(content, answer);
  assert.equal(contentBeforeThoughtEnded, false);
});

test('openai: reasoning_format none leaves the thought in the content', async () => {
  const r = await client.chat.completions.create({
    model: 'smol-thinker', messages: question, temperature: 0, reasoning_format: 'none',
  });
  assert.equal(r.choices[0].message.content, `<think>\n${thought}\n</think>\n\n${answer}`);
  assert.equal('reasoning_content' in r.choices[0].message, false);
  await assert.rejects(
    client.chat.completions.create({ model: 'smol-thinker', messages: question, reasoning_format: 'xml' }),
    (e) => e.status === 400 && /reasoning_format/.test(e.message));
});

test('openai: chat_template_kwargs reach the template; earlier thoughts are accepted back', async () => {
  const on = await client.chat.completions.create({ model: 'smol-thinker', messages: question, max_tokens: 1 });
  const off = await client.chat.completions.create({
    model: 'smol-thinker', messages: question, max_tokens: 1, chat_template_kwargs: { enable_thinking: false },
  });
  // SmolLM3's long reasoning instructions are in the prompt only when thinking.
  assert.ok(off.usage.prompt_tokens < on.usage.prompt_tokens - 100,
    `${off.usage.prompt_tokens} vs ${on.usage.prompt_tokens}`);
  const next = await client.chat.completions.create({
    model: 'smol-thinker', temperature: 0, messages: [...question,
      { role: 'assistant', content: answer, reasoning_content: thought }, { role: 'user', content: 'Again?' }],
  });
  assert.equal(next.choices[0].message.content, answer);
  await assert.rejects(
    client.chat.completions.create({ model: 'smol-thinker', messages: question,
      chat_template_kwargs: { messages: [] } }),
    (e) => e.status === 400 && /chat_template_kwargs\.messages/.test(e.message));
});

test('openai: a prompt that opens the thought; a constrained answer (JSON mode) is all content', async () => {
  const open = await client.chat.completions.create({ model: 'opener-thinker', messages: question, temperature: 0 });
  assert.equal(open.choices[0].message.reasoning_content, 'Plan.');
  assert.equal(open.choices[0].message.content, 'Done.');
  const r = await client.chat.completions.create({
    model: 'opener-thinker', messages: question, temperature: 0, max_tokens: 40,
    response_format: { type: 'json_object' },
  });
  // (This model's flat logits keep it inside a string until max_tokens.)
  assert.match(r.choices[0].message.content, /^\{/);
  assert.equal('reasoning_content' in r.choices[0].message, false);
});

test('ollama chat: message.thinking, whole and streamed; think false turns it off in the template', async () => {
  const r = await ollama.chat({ model: 'smol-thinker', messages: question, think: true, options: { temperature: 0 } });
  assert.equal(r.message.thinking, thought);
  assert.equal(r.message.content, answer);
  let thinking = '';
  let content = '';
  for await (const part of await ollama.chat({ model: 'ministral-thinker', messages: question, stream: true,
    options: { temperature: 0 } })) {
    thinking += part.message.thinking ?? '';
    content += part.message.content;
  }
  assert.equal(thinking, 'Checking the sky.');
  assert.equal(content, 'Sunny.');
  const on = await ollama.chat({ model: 'smol-thinker', messages: question, options: { num_predict: 1 } });
  const off = await ollama.chat({ model: 'smol-thinker', messages: question, think: false,
    options: { num_predict: 1 } });
  assert.ok(off.prompt_eval_count < on.prompt_eval_count - 100, `${off.prompt_eval_count} vs ${on.prompt_eval_count}`);
  // Earlier thoughts go back as the assistant message's thinking.
  const next = await ollama.chat({ model: 'smol-thinker', options: { temperature: 0 }, messages: [...question,
    { role: 'assistant', content: answer, thinking: thought }, { role: 'user', content: 'Again?' }] });
  assert.equal(next.message.content, answer);
});

test('ollama generate: thinking beside the response', async () => {
  const r = await ollama.generate({ model: 'smol-thinker', prompt: 'Hi!', think: true, options: { temperature: 0 } });
  assert.equal(r.thinking, thought);
  assert.equal(r.response, answer);
});

test('ollama: think on a model that does not think is a 400; show lists the capability', async () => {
  await assert.rejects(
    ollama.chat({ model: 'qwen-talker', messages: question, think: true }),
    (e) => e.status_code === 400 && /does not think/.test(e.message));
  await assert.rejects(
    ollama.chat({ model: 'smol-thinker', messages: question, think: 'high' }),
    (e) => e.status_code === 400 && /think/.test(e.message));
  const smol = await ollama.show({ model: 'smol-thinker' });
  assert.ok(smol.capabilities.includes('thinking'));
  const qwen = await ollama.show({ model: 'qwen-talker' });
  assert.deepEqual(qwen.capabilities, ['completion', 'tools']);
});

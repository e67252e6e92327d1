// A client that leaves in the middle of a streamed answer, on every API
// that streams: the node notices at its next write, cancels the generation
// and frees the slot, which GET /slots shows. The model is a chain model
// (tests/support/chain_model.h) with Qwen2.5's real chat template that,
// after the '\n' ending every prompt here, writes "a\n" forever: without the
// cancel, each stream would run to its 3500 tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startChainNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const qwen = `${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`;
const limit = 3500;  // with the chat prompts (Qwen's default system prompt, a token a letter), within the 4096 context

let node;
before(async () => {
  node = await startChainNode('disconnect', { looper: [qwen, '<0x0A>', 'a\n', 'a\n', 'a\n'] });
});
after(async () => {
  await node?.stop();
});

async function slots() {
  const r = await fetch(`${node.url}/slots?model=looper`);
  assert.equal(r.status, 200);
  return r.json();
}

const messages = [{ role: 'user', content: 'Go on\n' }];
const streams = {
  'llama-server /completion': ['/completion', { prompt: '\n', n_predict: limit, stream: true }],
  'OpenAI chat': ['/v1/chat/completions', { messages, max_tokens: limit, stream: true }],
  'OpenAI completions': ['/v1/completions', { prompt: '\n', max_tokens: limit, stream: true }],
  'Ollama chat': ['/api/chat', { messages, options: { num_predict: limit } }],
  'Ollama generate': ['/api/generate', { prompt: '\n', raw: true, options: { num_predict: limit } }],
  'Anthropic messages': ['/v1/messages', { messages, max_tokens: limit, stream: true }],
  'OpenAI responses': ['/v1/responses', { input: 'Go on\n', max_output_tokens: limit, stream: true }],
};

for (const [name, [path, body]] of Object.entries(streams)) {
  test(`${name}: the client leaving frees the slot`, async () => {
    assert.ok((await slots()).every((s) => !s.is_processing));
    const controller = new AbortController();
    const r = await fetch(`${node.url}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'looper', ...body }), signal: controller.signal,
    });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    let seen = '';
    while (!seen.includes('a\\n')) {  // the answer has begun (as JSON text in every API)
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream ended: ${seen}`);
      seen += new TextDecoder().decode(value);
    }
    let busy;
    try {
      busy = (await slots()).filter((s) => s.is_processing);
      assert.equal(busy.length, 1);
    } finally {
      controller.abort();  // also when the check fails, so that the next test starts idle
    }
    let freed = null;
    for (let i = 0; i < 100 && !freed; ++i) {
      await new Promise((done) => setTimeout(done, 50));
      const now = await slots();
      if (now.every((s) => !s.is_processing)) freed = now.find((s) => s.id === busy[0].id);
    }
    assert.ok(freed, 'the slot is still busy 5 s after the client left');
    // Cancelled early: the cache holds the prompt and the tokens made until then.
    assert.ok(freed.n_cached_tokens < busy[0].n_prompt_tokens + limit * 0.75,
      `${freed.n_cached_tokens} tokens cached: the generation ran on`);
  });
}

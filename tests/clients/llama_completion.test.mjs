// llama-server's own completion API (POST /completion and /infill), as
// editors' code-completion plugins and scripts call it with fetch, on chain
// models (tests/support/chain_model.h) whose greedy answers are known:
//   talker    after '\n' answers "It is sunny." (Qwen2.5's real template)
//   indenter  after '\n' writes "x\n", "  y\n", "z\n": lines of indentation 0, 2, 0
//   looper    after '\n' writes "a\n" forever
//   trailer   after '\n' writes "x\n" and "  ", ending in an indentation
//   coder     Qwen2.5-Coder's fill-in-the-middle and repository tokens; after
//             <|fim_middle|> writes "return a + b" and <|fim_pad|>
// and on stories260K, a real model, for probabilities and the prompt cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startChainNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const qwen = `${fixtures}/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja`;
const middle = 'return a + b';

let node;
before(async () => {
  node = await startChainNode('llama-completion', {
    talker: [qwen, '<0x0A>', 'It is sunny.', 'It is sunny.', '<|im_end|>'],
    indenter: [qwen, '<0x0A>', 'x\n', 'x\n', '  y\n', '  y\n', 'z\n', 'z\n', '<|im_end|>'],
    looper: [qwen, '<0x0A>', 'a\n', 'a\n', 'a\n'],
    trailer: [qwen, '<0x0A>', 'x\n', 'x\n', '  ', '  ', '<|im_end|>'],
    coder: [qwen, '<|fim_middle|>', middle, middle, '<|fim_pad|>', '<|fim_pad|>', '<|fim_prefix|>',
      '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|repo_name|>', '<|file_sep|>',
      '<|file_sep|>', '<|repo_name|>'],
  }, [`${fixtures}/stories260K/stories260K.gguf`], { coder: 'ctx_size = 512' });
});
after(async () => {
  await node?.stop();
});

async function post(path, body) {
  const r = await fetch(`${node.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

// The events of a streamed completion (server-sent events, no "[DONE]").
async function stream(path, body) {
  const r = await fetch(`${node.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const text = await r.text();
  assert.ok(!text.includes('[DONE]'));
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
}

// The prompt as text, with the chain models' SentencePiece space marks as
// spaces: their vocabulary has no '▁' token, so the mark the tokenizer puts
// before each text (and for each space) is written with the bytes of '▁'.
const plain = (prompt) => prompt.replaceAll('▁', ' ');

async function tokenCount(model, content, parseSpecial = false) {
  const { json } = await post('/tokenize', { model, content, add_special: false, parse_special: parseSpecial });
  return json.tokens.length;
}

test('/completion: content, stop type, token counts and settings', async () => {
  const { status, json } = await post('/completion', { model: 'talker', prompt: 'Hi\n', n_predict: 32, return_tokens: true });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.content, 'It is sunny.');
  assert.equal(json.stop, true);
  assert.equal(json.stop_type, 'eos');
  assert.equal(json.stopping_word, '');
  assert.equal(json.model, 'talker');
  assert.equal(json.tokens_predicted, 1);
  assert.equal(json.tokens.length, 1);
  // BOS and the text's tokens.
  assert.equal(json.tokens_evaluated, 1 + await tokenCount('talker', 'Hi\n'));
  assert.equal(plain(json.prompt), '<s> Hi\n');
  assert.equal(json.generation_settings.n_predict, 32);
  assert.equal(json.generation_settings.n_ctx, 4096);
  assert.equal(json.timings.predicted_n, 1);
  assert.equal(json.timings.prompt_n + json.timings.cache_n, json.tokens_evaluated);
  assert.equal(json.truncated, false);
  // Without return_tokens, no ids.
  assert.deepEqual((await post('/completion', { model: 'talker', prompt: 'Hi\n' })).json.tokens, []);
  // A stop word ends it; n_predict is a limit.
  const word = await post('/completion', { model: 'indenter', prompt: '\n', stop: ['z'] });
  assert.equal(word.json.content, 'x\n  y\n');
  assert.equal(word.json.stop_type, 'word');
  assert.equal(word.json.stopping_word, 'z');
  const limit = await post('/completion', { model: 'looper', prompt: '\n', n_predict: 3 });
  assert.equal(limit.json.content, 'a\na\na\n');
  assert.equal(limit.json.stop_type, 'limit');
  assert.equal(limit.json.tokens_predicted, 3);
  // /completions is the same endpoint.
  assert.equal((await post('/completions', { model: 'talker', prompt: 'Hi\n' })).json.content, 'It is sunny.');
});

test('/completion: a prompt of token ids and texts mixed', async () => {
  const { json: ids } = await post('/tokenize', { model: 'talker', content: 'Hi\n', add_special: true });
  const asIds = await post('/completion', { model: 'talker', prompt: ids.tokens });
  assert.equal(asIds.json.content, 'It is sunny.');
  assert.equal(asIds.json.tokens_evaluated, ids.tokens.length);
  // Ids, then text: no BOS added before a text that does not come first.
  const mixed = await post('/completion', { model: 'talker', prompt: [ids.tokens[0], 'Hi\n'] });
  assert.equal(mixed.json.tokens_evaluated, ids.tokens.length);
  assert.equal(mixed.json.content, 'It is sunny.');
  // Special-token text in the prompt is that token (the model's own format).
  const special = await post('/completion', { model: 'talker', prompt: '<|im_start|>user\nHi<|im_end|>\n' });
  assert.equal(special.json.tokens_evaluated,
    1 + await tokenCount('talker', '<|im_start|>user\nHi<|im_end|>\n', true));
  assert.equal(special.status, 200);
});

test('/completion streamed: a chunk per token, then the answer\'s fields', async () => {
  const events = await stream('/completion', { model: 'indenter', prompt: '\n', return_tokens: true });
  const last = events.at(-1);
  const chunks = events.slice(0, -1);
  assert.deepEqual(chunks.map((e) => e.content), ['x\n', '  y\n', 'z\n']);
  assert.ok(chunks.every((e) => e.stop === false && e.tokens.length === 1));
  assert.deepEqual(chunks.map((e) => e.tokens_predicted), [1, 2, 3]);
  assert.equal(last.stop, true);
  assert.equal(last.content, '');
  assert.equal(last.stop_type, 'eos');
  assert.equal(last.tokens_predicted, 3);
  assert.equal(last.timings.predicted_n, 3);
});

test('/completion: n_indent ends the answer at a line indented less', async () => {
  const two = await post('/completion', { model: 'indenter', prompt: '\n', n_indent: 2 });
  assert.equal(two.json.content, 'x\n  y\n');
  assert.equal(two.json.stop_type, 'limit');
  const three = await post('/completion', { model: 'indenter', prompt: '\n', n_indent: 3 });
  assert.equal(three.json.content, 'x\n');
  const streamed = await stream('/completion', { model: 'indenter', prompt: '\n', n_indent: 2 });
  assert.equal(streamed.map((e) => e.content).join(''), 'x\n  y\n');
  assert.equal(streamed.at(-1).stop_type, 'limit');
  // The model's slot is free again: the next request runs whole.
  assert.equal((await post('/completion', { model: 'indenter', prompt: '\n' })).json.content, 'x\n  y\nz\n');
  // An answer that ends in an indentation keeps it, whole and streamed.
  const trailing = await post('/completion', { model: 'trailer', prompt: '\n', n_indent: 4 });
  assert.equal(trailing.json.content, 'x\n  ');
  assert.equal(trailing.json.stop_type, 'eos');
  const trailingStream = await stream('/completion', { model: 'trailer', prompt: '\n', n_indent: 4 });
  assert.equal(trailingStream.map((e) => e.content).join(''), 'x\n  ');
});

test('/completion: t_max_predict_ms ends a long answer after a line', async () => {
  // A thousand tokens take far more than a millisecond on any machine.
  const { json } = await post('/completion', { model: 'looper', prompt: '\n', n_predict: 1000, t_max_predict_ms: 1 });
  assert.equal(json.stop_type, 'limit');
  assert.ok(json.tokens_predicted < 1000, `${json.tokens_predicted} tokens`);
  assert.ok(json.content.length > 0 && /^(a\n)+$/.test(json.content), JSON.stringify(json.content));
});

test('/completion: response_fields keeps the fields asked for', async () => {
  const { json } = await post('/completion', {
    model: 'talker', prompt: 'Hi\n', response_fields: ['content', 'generation_settings/n_ctx', 'missing'],
  });
  assert.deepEqual(json, { content: 'It is sunny.', 'generation_settings/n_ctx': 4096 });
});

test('/completion on a real model: probabilities, the prompt cache, n_predict 0', async () => {
  const prompt = 'Once upon a time, there was a little girl named Lily.';
  // n_predict 0: the prompt is read into the cache, nothing is generated.
  const warm = await post('/completion', { model: 'stories260K', prompt, n_predict: 0 });
  assert.equal(warm.status, 200, JSON.stringify(warm.json));
  assert.equal(warm.json.content, '');
  assert.equal(warm.json.tokens_predicted, 0);
  const { json } = await post('/completion', { model: 'stories260K', prompt, n_predict: 6, temperature: 0, n_probs: 3 });
  assert.equal(json.tokens_cached, json.tokens_evaluated - 1);  // all but the last token, read again
  assert.equal(json.completion_probabilities.length, 6);
  for (const p of json.completion_probabilities) {
    assert.equal(p.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(p.id, p.top_logprobs[0].id);
    assert.equal(p.logprob, p.top_logprobs[0].logprob);
    assert.ok(p.top_logprobs[0].logprob >= p.top_logprobs[1].logprob);
    assert.deepEqual(p.bytes, [...Buffer.from(p.token)]);
  }
  assert.equal(json.completion_probabilities.map((p) => p.token).join(''), json.content);
  // Greedy is repeatable, and the same as OpenAI's completions endpoint.
  const oai = await post('/v1/completions', { model: 'stories260K', prompt, max_tokens: 6, temperature: 0 });
  assert.equal(oai.json.choices[0].text, json.content);
  // Leaving temperature out of the samplers draws from the plain distribution:
  // with top_k 1 left in, the draw has one candidate.
  const topOne = await post('/completion', {
    model: 'stories260K', prompt, n_predict: 6, temperature: 5, top_k: 1, samplers: ['top_k'],
  });
  assert.equal(topOne.json.content, json.content);
});

test('/infill: prefix, suffix, files and the start of the middle', async () => {
  const prefix = 'def add(a, b):\n    ';
  const suffix = '\n\nprint(add(1, 2))\n';
  const { status, json } = await post('/infill', { model: 'coder', input_prefix: prefix, input_suffix: suffix });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.content, middle);
  assert.equal(json.stop_type, 'eos');  // <|fim_pad|> ended it
  assert.equal(plain(json.prompt), `<s><|fim_prefix|> ${prefix}<|fim_suffix|> ${suffix}<|fim_middle|>`);
  assert.equal(json.tokens_evaluated, 4 + await tokenCount('coder', prefix) + await tokenCount('coder', suffix));
  // Files before it, with the repository markers the model has.
  const files = [{ filename: 'util.py', text: 'X = 1\n' }, { filename: 'main.py', text: 'import util\n' }];
  const withFiles = await post('/infill', { model: 'coder', input_prefix: prefix, input_suffix: suffix, input_extra: files });
  assert.equal(plain(withFiles.json.prompt),
    '<s><|repo_name|> project\n<|file_sep|> util.py\nX = 1\n<|file_sep|> main.py\nimport util\n<|file_sep|> file\n' +
    `<|fim_prefix|> ${prefix}<|fim_suffix|> ${suffix}<|fim_middle|>`);
  assert.equal(withFiles.json.content, middle);
  // The start of the middle comes after its marker.
  const started = await post('/infill', { model: 'coder', input_prefix: prefix, input_suffix: suffix, prompt: 'ret' });
  assert.ok(plain(started.json.prompt).endsWith('<|fim_middle|> ret'), started.json.prompt);
  // Streamed.
  const events = await stream('/infill', { model: 'coder', input_prefix: prefix, input_suffix: suffix });
  assert.equal(events.map((e) => e.content).join(''), middle);
  // What llama.vim sends: sampled (no temperature step: the plain
  // distribution), with the infill step; the chain model's answer is all but
  // certain, and its end outweighs the rest after it.
  const editor = await post('/infill', {
    model: 'coder', input_prefix: prefix, input_suffix: suffix, input_extra: files, prompt: '', n_predict: 128,
    top_k: 40, top_p: 0.9, samplers: ['top_k', 'top_p', 'infill'], cache_prompt: true, t_max_prompt_ms: 500,
    t_max_predict_ms: 1000, n_indent: 4, stream: false,
    response_fields: ['content', 'timings/prompt_n', 'timings/predicted_n', 'tokens_cached', 'truncated'],
  });
  assert.equal(editor.status, 200, JSON.stringify(editor.json));
  assert.equal(editor.json.content, middle);
  assert.deepEqual(Object.keys(editor.json).sort(),
    ['content', 'timings/predicted_n', 'timings/prompt_n', 'tokens_cached', 'truncated']);
});

test('/infill: what does not fit the context is cut from the far ends', async () => {
  // The coder's context is 512 tokens; these texts are a token a letter.
  const prefix = 'p'.repeat(800) + 'def add(a, b):\n    ';
  const suffix = '\n\nprint(add(1, 2))\n' + 's'.repeat(600);
  const files = [{ filename: 'old.py', text: 'o'.repeat(300) }];
  const { status, json } = await post('/infill', {
    model: 'coder', input_prefix: prefix, input_suffix: suffix, input_extra: files, n_predict: 40,
  });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.content, middle);
  assert.equal(json.tokens_evaluated, 512 - 40);  // filled to the room left for n_predict
  assert.ok(!json.prompt.includes('old.py'), 'the file goes first');
  const [before, rest] = plain(json.prompt).split('<|fim_suffix|>');
  assert.ok(before.endsWith('def add(a, b):\n    ') && before.startsWith('<s><|fim_prefix|>p'), before.slice(0, 40));
  assert.ok(rest.startsWith(' \n\nprint(add(1, 2))\n'), rest.slice(0, 40));
  // The suffix keeps at least a quarter of the room.
  assert.ok(rest.length >= (512 - 40 - 4) / 4, `${rest.length}`);
  assert.ok(!rest.endsWith('s'.repeat(600) + '<|fim_middle|>'), 'the suffix was cut');
});

test('errors: bad bodies, models without markers, samplers tars lacks', async () => {
  const cases = [
    [{ model: 'talker' }, /'prompt' is required/],
    [{ model: 'talker', prompt: ['one', 'two'] }, /one prompt per request/],
    [{ model: 'talker', prompt: [1, 'x', -3] }, /prompt\[2\]/],
    [{ model: 'talker', prompt: [999999] }, /holds token 999999, but model 'talker' has/],
    [{ model: 'talker', prompt: 'x', mirostat: 2 }, /'mirostat' is not supported/],
    [{ model: 'talker', prompt: 'x', samplers: ['top_k', 'nucleus2'] }, /not a sampler tars knows/],
    [{ model: 'talker', prompt: 'x', samplers: ['temperature', 'top_k'] }, /in that order/],
    [{ model: 'talker', prompt: 'x', grammar: 'root ::= "a"' }, /GBNF/],
    [{ model: 'talker', prompt: 'x', input_prefix: 'y' }, /belongs to \/infill/],
    [{ model: 'talker', prompt: 'x', logit_bias: [['Hello', 1]] }, /token ids/],
    [{ model: 'talker', prompt: 'x', wat: 1 }, /'wat' is not a known parameter/],
  ];
  for (const [body, message] of cases) {
    const { status, json } = await post('/completion', body);
    assert.equal(status, 400, JSON.stringify(body));
    assert.match(json.error.message, message);
  }
  const noMarkers = await post('/infill', { model: 'talker', input_prefix: 'x' });
  assert.equal(noMarkers.status, 400);
  assert.match(noMarkers.json.error.message, /cannot fill in the middle/);
  const unknown = await post('/completion', { model: 'nope', prompt: 'x' });
  assert.equal(unknown.status, 404);
  // The neutral values of those samplers pass.
  const neutral = await post('/completion', {
    model: 'talker', prompt: 'Hi\n', mirostat: 0, typical_p: 1, dry_multiplier: 0, xtc_probability: 0, grammar: '',
    samplers: ['dry', 'top_k', 'typ_p', 'top_p', 'min_p', 'xtc', 'temperature'], id_slot: -1, n_keep: 0,
  });
  assert.equal(neutral.status, 200, JSON.stringify(neutral.json));
  assert.equal(neutral.json.content, 'It is sunny.');
});

test('GET /slots: what each slot does; a stream\'s client leaving frees its slot', async () => {
  const get = async (path) => { const r = await fetch(`${node.url}${path}`); return { status: r.status, json: await r.json() }; };
  const { json: props } = await get('/props?model=looper');
  let { json: slots } = await get('/slots?model=looper');
  assert.equal(slots.length, props.total_slots);
  assert.deepEqual(slots.map((s) => s.id), [...slots.keys()]);
  assert.ok(slots.every((s) => !s.is_processing && s.state === 'idle' && s.n_ctx === 4096), JSON.stringify(slots));
  assert.equal((await get('/slots?model=looper&fail_on_no_slot=1')).status, 200);
  // A long stream: its slot is busy while it runs.
  const controller = new AbortController();
  const r = await fetch(`${node.url}/completion`, {
    method: 'POST', body: JSON.stringify({ model: 'looper', prompt: '\n', n_predict: 4000, stream: true }),
    signal: controller.signal,
  });
  const reader = r.body.getReader();
  await reader.read();  // the first token's event
  ({ json: slots } = await get('/slots?model=looper'));
  const busy = slots.filter((s) => s.is_processing);
  assert.equal(busy.length, 1, JSON.stringify(slots));
  assert.equal(busy[0].n_prompt_tokens, 1 + await tokenCount('looper', '\n'));
  assert.equal(busy[0].next_token.has_next_token, true);
  assert.equal(busy[0].next_token.n_decoded + busy[0].next_token.n_remain, 4000);
  // The client goes: the generation is cancelled and the slot freed, long
  // before 4000 tokens.
  controller.abort();
  let freed = null;
  for (let i = 0; i < 100 && !freed; ++i) {
    await new Promise((done) => setTimeout(done, 50));
    ({ json: slots } = await get('/slots?model=looper'));
    if (slots.every((s) => !s.is_processing)) freed = slots.find((s) => s.id === busy[0].id);
  }
  assert.ok(freed, 'the slot is still busy 5 s after the client left');
  assert.ok(freed.n_cached_tokens < 3000, `${freed.n_cached_tokens} tokens cached: the generation ran on`);
  assert.ok(freed.n_cached_tokens > busy[0].n_prompt_tokens);
  assert.equal((await get('/slots?model=nope')).status, 404);
});

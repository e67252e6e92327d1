// Ollama's keep_alive through the official ollama npm package: how long a
// model stays loaded after a request (/api/ps's expires_at), loading with an
// empty prompt, and unloading with keep_alive 0 (what `ollama stop` sends).
// The node serves stories260K twice: "story" always loaded, "story-od" on
// demand with the configuration's keep_alive of 300 s; and the bert-tiny
// embedding model on demand ("bert-od").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import { startNode } from './node_helper.mjs';

const fixtures = process.env.TARS_FIXTURES || process.env.TARS_FIXTURES_DEFAULT;
const model = `${fixtures}/stories260K/stories260K.gguf`;
let dir;
let node;
let ollama;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tars-keep-alive-'));
  writeFileSync(join(dir, 'tars.toml'), `[[model]]\npath = "${model}"\nalias = "story"\n\n`
    + `[[model]]\npath = "${model}"\nalias = "story-od"\nload = "on_demand"\nkeep_alive = 300\n\n`
    + `[[model]]\npath = "${fixtures}/reference/bert-tiny.gguf"\nalias = "bert-od"\nrole = "embedding"\n`
    + 'load = "on_demand"\nkeep_alive = 300\n');
  node = await startNode(['--config', join(dir, 'tars.toml')]);
  ollama = new Ollama({ host: node.url });
});
after(async () => {
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const running = async () => Object.fromEntries((await ollama.ps()).models.map((m) => [m.name, m]));
// Seconds from now to a model's expires_at.
const expiresIn = (m) => (Date.parse(m.expires_at) - Date.now()) / 1000;
const story = { prompt: 'Once upon a time', raw: true, options: { temperature: 0, num_predict: 4 } };

test('an empty prompt loads an on-demand model for its configured keep_alive', async () => {
  assert.deepEqual(Object.keys(await running()), ['story']);
  assert.match((await running()).story.expires_at, /^9999-/);  // always loaded
  const r = await ollama.generate({ model: 'story-od', prompt: '' });
  assert.equal(r.done_reason, 'load');
  const ps = await running();
  assert.ok(ps['story-od'], JSON.stringify(ps));
  assert.ok(Math.abs(expiresIn(ps['story-od']) - 300) < 30, ps['story-od'].expires_at);
});

test('each request sets the keep_alive: a duration, forever, or back to the configured one', async () => {
  await ollama.generate({ model: 'story-od', ...story, keep_alive: '1h' });
  assert.ok(Math.abs(expiresIn((await running())['story-od']) - 3600) < 30);
  await ollama.generate({ model: 'story-od', ...story, keep_alive: 90 });
  assert.ok(Math.abs(expiresIn((await running())['story-od']) - 90) < 30);
  await ollama.chat({ model: 'story-od', messages: [{ role: 'user', content: 'hi' }], options: story.options,
    keep_alive: -1 });
  assert.match((await running())['story-od'].expires_at, /^9999-/);
  await ollama.generate({ model: 'story-od', ...story });  // none given: the configuration's 300 s
  assert.ok(Math.abs(expiresIn((await running())['story-od']) - 300) < 30);
});

test('keep_alive 0 with an empty prompt unloads the model; with a prompt, after the answer', async () => {
  const r = await ollama.generate({ model: 'story-od', prompt: '', keep_alive: 0 });
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'unload');
  assert.deepEqual(Object.keys(await running()), ['story']);
  // Unloading what is not loaded answers the same.
  assert.equal((await ollama.chat({ model: 'story-od', messages: [], keep_alive: '0s' })).done_reason, 'unload');

  const answer = await ollama.generate({ model: 'story-od', ...story, keep_alive: 0 });
  assert.equal(answer.eval_count, 4);  // it ran, then the model goes
  const deadline = Date.now() + 10000;
  while ((await running())['story-od'] && Date.now() < deadline) await new Promise((s) => setTimeout(s, 50));
  assert.deepEqual(Object.keys(await running()), ['story']);
  // The next request loads it again.
  assert.equal((await ollama.generate({ model: 'story-od', ...story })).eval_count, 4);
  assert.ok((await running())['story-od']);
});

test('an always-loaded model is not unloaded; bad values and unknown models are refused', async () => {
  await assert.rejects(ollama.generate({ model: 'story', prompt: '', keep_alive: 0 }),
    (e) => e.status_code === 400 && /always loaded/.test(e.message));
  assert.ok((await running()).story);
  // keep_alive on a request to it is accepted and changes nothing.
  assert.equal((await ollama.generate({ model: 'story', ...story, keep_alive: 0 })).eval_count, 4);
  assert.match((await running()).story.expires_at, /^9999-/);
  for (const keepAlive of ['5 minutes', '', 'm5', true]) {
    await assert.rejects(ollama.generate({ model: 'story-od', ...story, keep_alive: keepAlive }),
      (e) => e.status_code === 400 && /keep_alive/.test(e.message), String(keepAlive));
  }
  await assert.rejects(ollama.generate({ model: 'nope', prompt: '', keep_alive: 0 }),
    (e) => e.status_code === 404);
});

test('embedding requests set the keep_alive the same way', async () => {
  await ollama.embed({ model: 'bert-od', input: 'hello', keep_alive: '-1' });
  assert.match((await running())['bert-od'].expires_at, /^9999-/);
  await ollama.embed({ model: 'bert-od', input: 'hello' });
  assert.ok(Math.abs(expiresIn((await running())['bert-od']) - 300) < 30);
  const r = await ollama.embed({ model: 'bert-od', input: 'hello', keep_alive: 0 });
  assert.equal(r.embeddings.length, 1);
  const deadline = Date.now() + 10000;
  while ((await running())['bert-od'] && Date.now() < deadline) await new Promise((s) => setTimeout(s, 50));
  assert.equal((await running())['bert-od'], undefined);
  await assert.rejects(ollama.embed({ model: 'bert-od', input: 'hello', keep_alive: 'later' }),
    (e) => e.status_code === 400 && /keep_alive/.test(e.message));
});

// An independent JSON-RPC 2.0 implementation, the jayson npm package's HTTP
// client, against POST /rpc of a real `tars serve` started with a join
// token: single calls, batches, notifications, the error codes a caller can
// provoke from outside, malformed JSON and the join-token cases.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import jayson from 'jayson';
import { startNode } from './node_helper.mjs';

const TOKEN = 'client-test-token';

let node;
let bare; // a node started without a join token
before(async () => {
  node = await startNode(['--join-token', TOKEN]);
  bare = await startNode([]);
});
after(async () => {
  await node?.stop();
  await bare?.stop();
});

// A jayson HTTP client for `url`'s /rpc sending `token` (none when null).
function client(url, token = TOKEN) {
  const { hostname, port } = new URL(url);
  const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
  return jayson.client.http({ hostname, port, path: '/rpc', headers });
}

// client.request(...args) as a promise of the raw response (undefined when
// the node answered nothing).
function request(c, ...args) {
  return new Promise((resolve, reject) => {
    c.request(...args, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

async function rawPost(body, token = TOKEN) {
  const headers = { 'Content-Type': 'application/json' };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  return fetch(`${node.url}/rpc`, { method: 'POST', headers, body });
}

test('rpc.methods lists the base methods with idempotence and help', async () => {
  const r = await request(client(node.url), 'rpc.methods', [], 1);
  assert.equal(r.jsonrpc, '2.0');
  assert.equal(r.id, 1);
  assert.equal(r.result.protocol, 1);
  const names = r.result.methods.map((m) => m.name);
  for (const name of ['rpc.methods', 'node.info', 'node.status']) assert.ok(names.includes(name), name);
  for (const m of r.result.methods) {
    assert.equal(typeof m.idempotent, 'boolean');
    assert.ok(m.help.length > 0, m.name);
  }
});

test('node.info and node.status describe the node as /health and /status do', async () => {
  const health = await (await fetch(`${node.url}/health`)).json();
  const status = await (await fetch(`${node.url}/status`)).json();
  const info = (await request(client(node.url), 'node.info', undefined, 'info-1'));
  assert.equal(info.id, 'info-1');
  assert.equal(info.result.node_id, health.node_id);
  assert.equal(info.result.node_name, 'client-test');
  assert.equal(info.result.version, health.version);
  assert.equal(info.result.protocol, 1);
  assert.deepEqual(Object.keys(info.result.devices).sort(), Object.keys(status.devices).sort());
  const st = await request(client(node.url), 'node.status', {}, 2);
  assert.equal(st.result.node_id, health.node_id);
  assert.ok('models_loaded' in st.result);
  assert.ok('requests_in_flight' in st.result);
});

test('a batch answers each call with an id, in order, and skips notifications', async () => {
  const c = client(node.url);
  const batch = [
    c.request('node.info', [], 'a'),
    c.request('node.status', [], null), // a notification
    c.request('no.such.method', [], 7),
    c.request('rpc.methods', [], 'c'),
  ];
  const r = await request(c, batch);
  assert.ok(Array.isArray(r));
  assert.deepEqual(r.map((m) => m.id), ['a', 7, 'c']);
  assert.equal(r[0].result.node_name, 'client-test');
  assert.equal(r[1].error.code, -32601);
  assert.ok(Array.isArray(r[2].result.methods));
});

test('notifications get no answer, alone or as a whole batch (HTTP 204)', async () => {
  const c = client(node.url);
  assert.equal(await request(c, 'node.info', [], null), undefined);
  assert.equal(await request(c, [c.request('node.info', [], null), c.request('nope', [], null)]), undefined);
  const raw = await rawPost(JSON.stringify({ jsonrpc: '2.0', method: 'node.info' }));
  assert.equal(raw.status, 204);
  assert.equal(await raw.text(), '');
});

test('ids may be strings, numbers or null and come back unchanged', async () => {
  const c = client(node.url);
  for (const id of ['x-1', 0, -3, 12.5, null]) {
    const r = await request(c, { jsonrpc: '2.0', method: 'rpc.methods', id });
    assert.strictEqual(r.id, id);
    assert.ok(r.result);
  }
});

test('-32700: malformed JSON is a JSON-RPC parse error with id null, not HTTP 400', async () => {
  const r = await rawPost('{"jsonrpc": "2.0", "method": "node.info", "id": 1');
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.error.code, -32700);
  assert.strictEqual(body.id, null);
});

test('-32600: invalid requests, an empty batch, invalid batch members', async () => {
  const c = client(node.url);
  let r = await request(c, { jsonrpc: '2.0', method: 1, params: 'bar' });
  assert.equal(r.error.code, -32600);
  assert.strictEqual(r.id, null);
  r = await request(c, { jsonrpc: '1.0', method: 'node.info', id: 3 });
  assert.equal(r.error.code, -32600);
  r = await request(c, []);
  assert.ok(!Array.isArray(r), 'an empty batch is answered by one error, not an array');
  assert.equal(r.error.code, -32600);
  r = await request(c, [1, 2, 3]);
  assert.equal(r.length, 3);
  for (const m of r) {
    assert.equal(m.error.code, -32600);
    assert.strictEqual(m.id, null);
  }
});

test('-32601: unknown method', async () => {
  const r = await request(client(node.url), 'model.nonexistent', { a: 1 }, 5);
  assert.equal(r.error.code, -32601);
  assert.match(r.error.message, /model\.nonexistent/);
  assert.equal(r.id, 5);
});

test('-32602: invalid params', async () => {
  const r = await request(client(node.url), 'node.info', [1, 2], 6);
  assert.equal(r.error.code, -32602);
  assert.equal(r.id, 6);
});

test('-32001: a wrong or missing join token, with a message that says which', async () => {
  let r = await request(client(node.url, 'not-the-token'), 'node.info', [], 1);
  assert.equal(r.error.code, -32001);
  assert.equal(r.error.message, 'wrong join token');
  r = await request(client(node.url, null), 'node.info', [], 1);
  assert.equal(r.error.code, -32001);
  assert.match(r.error.message, /missing join token .*Authorization: Bearer/);
  // A refused notification is still answered: the caller must learn why nothing ran.
  r = await request(client(node.url, 'nope'), 'node.info', [], null);
  assert.equal(r.error.code, -32001);
  const raw = await rawPost('{"jsonrpc":"2.0","method":"node.info","id":1}', 'bad');
  assert.equal(raw.status, 200);
});

test('-32001: a node without a join token refuses every /rpc call', async () => {
  const r = await request(client(bare.url, 'anything'), 'rpc.methods', [], 1);
  assert.equal(r.error.code, -32001);
  assert.match(r.error.message, /--join-token/);
});

test('only POST is allowed on /rpc', async () => {
  const r = await fetch(`${node.url}/rpc`);
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'POST');
});

test('node.register: a worker of another protocol version is refused with -32002 naming both', async () => {
  const params = {
    node_id: 'jayson-node', name: 'future', url: 'http://127.0.0.1:1', version: '9.9.9',
    protocol: 99, devices: { gpus: [] },
  };
  const r = await request(client(node.url), 'node.register', params, 7);
  assert.equal(r.id, 7);
  assert.equal(r.error.code, -32002);
  assert.match(r.error.message, /protocol 99/);
  assert.match(r.error.message, /speaks 1 /);
});

test('node.register with bad params is -32602; a heartbeat from a stranger says known: false', async () => {
  const bad = await request(client(node.url), 'node.register', { node_id: 5 }, 8);
  assert.equal(bad.error.code, -32602);
  const hb = await request(client(node.url), 'node.heartbeat',
    { node_id: 'nobody', devices: { gpus: [] }, models: [], queue_depth: 0 }, 9);
  assert.equal(hb.error, undefined, JSON.stringify(hb.error));
  assert.equal(hb.result.known, false);
});

test('model.unload of a model the node does not host is -32004', async () => {
  // Every node serves the model methods (the coordinator's own node included).
  const r = await request(client(node.url), 'model.unload', { id: 'no-such-model' }, 10);
  if (r.error?.code === -32601) return assert.fail('model.unload is not served by tars serve');
  assert.equal(r.error.code, -32004);
  assert.match(r.error.message, /no-such-model/);
});

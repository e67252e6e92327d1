// Starts a real `tars serve` on a free loopback port for the client tests.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function startNode(args) {
  const binary = process.env.TARS_BINARY;
  if (!binary) throw new Error('TARS_BINARY is not set');
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tars-client-'));
  const child = spawn(binary, ['serve', '--port', String(port), '--data-dir', dataDir,
    '--node-name', 'client-test', '--log-level', 'warn', ...args],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tars exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('tars did not come up within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// Writes chain models (tests/support/chain_model.h, by the helper ctest names
// in TARS_MAKE_CHAIN_MODEL) into a new temporary folder and starts a node
// serving them, and the GGUF files in `others` too. `models` maps a model id
// to [the chat template's file, then the chain's FROM TO pairs].
export async function startChainNode(tag, models, others = [], settings = {}) {
  const maker = process.env.TARS_MAKE_CHAIN_MODEL;
  if (!maker) throw new Error('TARS_MAKE_CHAIN_MODEL is not set (ctest sets it)');
  const dir = mkdtempSync(join(tmpdir(), `tars-${tag}-`));
  const paths = [];
  for (const [id, [template, ...chain]] of Object.entries(models)) {
    paths.push(join(dir, `${id}.gguf`));
    execFileSync(maker, [paths.at(-1), template, ...chain]);
  }
  // settings: more lines of a chain model's [[model]] table, by id ("ctx_size = 512").
  const ids = Object.keys(models);
  writeFileSync(join(dir, 'tars.toml'), [...paths, ...others]
    .map((p, i) => `[[model]]\npath = "${p}"\n${settings[ids[i]] ?? ''}\n`).join('\n'));
  const node = await startNode(['--config', join(dir, 'tars.toml')]);
  return {
    url: node.url,
    async stop() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The chain models of the agent APIs' tests (anthropic.test.mjs,
// responses.test.mjs), each with its family's real chat template; the
// answer follows the prompt's last token ('\n', the byte token <0x0A>):
//   qwen-caller   calls get_weather({"city": "Paris"}) in a <tool_call> block
//   qwen-talker   answers "It is sunny."
//   smol-thinker  thinks `thought` in <think> tags, then answers "Sunny."
export function weatherChainModels(fixtures, thought) {
  const templates = `${fixtures}/chat-templates`;
  const qwen = `${templates}/Qwen-Qwen2.5-7B-Instruct.jinja`;
  return {
    'qwen-caller': [qwen, '<0x0A>', '<tool_call>\n', '<tool_call>\n', '{"name": "get_weather", ',
      '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}', '"arguments": {"city": "Paris"}}',
      '\n</tool_call>', '\n</tool_call>', '<|im_end|>'],
    'qwen-talker': [qwen, '<0x0A>', 'It is sunny.', 'It is sunny.', '<|im_end|>'],
    'smol-thinker': [`${templates}/HuggingFaceTB-SmolLM3-3B.jinja`, '<0x0A>', '<think>', '<think>', `\n${thought}`,
      `\n${thought}`, '\n</think>\n\n', '\n</think>\n\n', 'Sunny.', 'Sunny.', '<|im_end|>'],
  };
}

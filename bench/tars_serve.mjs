// For the HTTP benchmarks: their command line, and a real `tars serve` on a
// free loopback port (startTars(binary, [serve arguments]) -> { url, stop() }).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export async function startTars(tars, args) {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'tars-bench-'));
  const child = spawn(tars, ['serve', '--port', String(port), '--data-dir', dataDir, ...args],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* starting */ }
    if (i > 1200) { child.kill('SIGKILL'); throw new Error('tars did not start'); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// The command line's --name value pairs as an object; exits with `usage`
// when --model is missing.
export function benchArgs(usage) {
  const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []));
  if (!args.model) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return args;
}

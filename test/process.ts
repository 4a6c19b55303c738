/**
 * `silk serve` as a child process, for tests that must kill it (crash,
 * drain) or restart it on the same data dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

export interface Served {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
}

/**
 * Write `config` to `dir/silk.json` and start `silk serve` on a free port;
 * resolves once it logs that it listens (the config's logLevel must be info
 * or lower).
 */
export async function serve(dir: string, config: object, args: readonly string[] = ['--port', '0']): Promise<Served> {
  const file = join(dir, 'silk.json');
  writeFileSync(file, JSON.stringify({ dataDir: join(dir, 'data'), logLevel: 'info', ...config }));
  const child = spawn(process.execPath, [CLI, 'serve', '--config', file, '--host', '127.0.0.1', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    let port: number | undefined;
    try {
      port = (JSON.parse(line) as { port?: number }).port;
    } catch {
      continue; // not a log line (the default app banner)
    }
    if (port !== undefined) {
      // Keep draining stdout so the child never blocks on a full pipe.
      lines.on('line', () => undefined);
      return { child, port, url: `http://127.0.0.1:${port}` };
    }
  }
  throw new Error('silk serve exited before listening');
}

/** Kill the child if it still runs. */
export function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

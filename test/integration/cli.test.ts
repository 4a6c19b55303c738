import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** The parent's environment without any SILK_ variable, so the children see only what a test sets. */
const baseEnv: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter((e): e is [string, string] => !e[0].startsWith('SILK_') && e[1] !== undefined),
);

interface Run {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout: string;
  stderr: string;
  /** Exit code and signal, once the process has exited and its output is read. */
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolve once stdout satisfies `pred`; reject if the process exits first or after `ms`. */
  waitFor(pred: (stdout: string) => boolean, ms?: number): Promise<void>;
}

const running = new Set<Run>();
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'silk-cli-'));
  tempDirs.push(dir);
  return dir;
}

function cli(args: string[], opts: { cwd: string; env?: Record<string, string> }): Run {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd,
    env: { ...baseEnv, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.ok(child.pid !== undefined, 'the child started');
  let exited = false;
  const listeners = new Set<() => void>();
  const run: Run = {
    child,
    pid: child.pid,
    stdout: '',
    stderr: '',
    done: new Promise((resolve) =>
      child.once('close', (code, signal) => {
        exited = true;
        running.delete(run);
        for (const l of listeners) l();
        resolve({ code, signal });
      }),
    ),
    waitFor(pred, ms = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (pred(run.stdout)) finish();
          else if (exited) finish(new Error(`exited first; stdout ${JSON.stringify(run.stdout)} stderr ${JSON.stringify(run.stderr)}`));
        };
        const timer = setTimeout(() => finish(new Error(`timed out; stdout ${JSON.stringify(run.stdout)}`)), ms);
        const finish = (err?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err === undefined) resolve();
          else reject(err);
        };
        listeners.add(check);
        check();
      });
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    run.stdout += d;
    for (const l of listeners) l();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    run.stderr += d;
  });
  running.add(run);
  return run;
}

/** Stop a child by PID with SIGKILL (if still running) and wait for it to be gone. */
async function kill(run: Run): Promise<void> {
  if (running.has(run)) {
    try {
      process.kill(run.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await run.done;
}

/** The port from the node's JSON "listening" log line on stdout. */
function listeningPort(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line);
      if (typeof rec.port === 'number') return rec.port;
    } catch {
      /* not a complete JSON line yet */
    }
  }
  return undefined;
}

async function serve(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<{ run: Run; port: number }> {
  const run = cli(['serve', ...args], opts);
  await run.waitFor((out) => listeningPort(out) !== undefined);
  return { run, port: listeningPort(run.stdout)! };
}

describe('cli', () => {
  after(async () => {
    await Promise.all([...running].map(kill));
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  test('help - --help prints usage with silk serve and silk token and exits 0', async () => {
    const run = cli(['--help'], { cwd: tempDir() });
    try {
      const { code } = await run.done;
      assert.equal(code, 0);
      assert.match(run.stdout, /Usage:/);
      assert.match(run.stdout, /silk serve/);
      assert.match(run.stdout, /silk token/);
      assert.equal(run.stderr, '');
    } finally {
      await kill(run);
    }
  });

  test('serve - a configuration file with an unknown key exits 2 naming the key', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ port: 0, bogusKey: true }));
    const run = cli(['serve', '--config', file], { cwd: dir });
    try {
      const { code } = await run.done;
      assert.equal(code, 2);
      assert.match(run.stderr, /bogusKey/);
      assert.equal(run.stderr.split('\n').filter((l) => l.startsWith('    at ')).length, 0, 'no stack trace');
    } finally {
      await kill(run);
    }
  });

  test('serve - bad configuration values, bad JSON, unknown flags and commands exit 2', async () => {
    const dir = tempDir();
    const badValue = join(dir, 'value.json');
    writeFileSync(badValue, JSON.stringify({ limits: { maxFrameBytes: 1 } }));
    const badJson = join(dir, 'broken.json');
    writeFileSync(badJson, '{"port": 0,');
    const cases: [string[], RegExp][] = [
      [['serve', '--config', badValue], /limits\.maxFrameBytes/],
      [['serve', '--config', badJson], /broken\.json/],
      [['serve', '--config', join(dir, 'missing.json')], /missing\.json/],
      [['serve', '--port', 'eighty'], /--port/],
      [['serve', '--bogus-flag'], /bogus-flag/],
      [['launch'], /launch/],
      [['token', '--channels', '*', '--data', join(dir, 'data')], /--user/],
    ];
    const runs = cases.map(([args]) => cli(args, { cwd: dir }));
    try {
      const results = await Promise.all(runs.map((r) => r.done));
      cases.forEach(([args, message], i) => {
        assert.equal(results[i]!.code, 2, `${args.join(' ')}: ${runs[i]!.stderr}`);
        assert.match(runs[i]!.stderr, message, args.join(' '));
      });
    } finally {
      await Promise.all(runs.map(kill));
    }
  });

  test('serve - with no apps creates the default app, and silk token mints a token that connects', async () => {
    const dir = tempDir();
    const data = join(dir, 'data');
    const runs: Run[] = [];
    let client: Client | undefined;
    try {
      const { run: server, port } = await serve(['--port', '0', '--host', '127.0.0.1', '--data', data], { cwd: dir });
      runs.push(server);
      assert.ok(port > 0);
      await server.waitFor((out) => /apiKey:/.test(out));
      const file = join(data, 'default-app.json');
      const app = JSON.parse(readFileSync(file, 'utf8'));
      assert.equal(app.id, 'default');
      assert.ok(app.secret.length >= 32);
      assert.ok(server.stdout.includes(app.secret), 'the secret is printed');
      assert.ok(server.stdout.includes(app.apiKey), 'the apiKey is printed');
      assert.equal(statSync(file).mode & 0o077, 0, 'the credentials file is private to its owner');

      const tok = cli(['token', '--user', 'alice', '--channels', '*', '--data', data], { cwd: dir });
      runs.push(tok);
      const { code } = await tok.done;
      assert.equal(code, 0, tok.stderr);
      assert.match(tok.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
      const token = tok.stdout.trim();

      client = await Client.open(`ws://127.0.0.1:${port}/v1/connect?token=${token}`);
      assert.equal(client.frames[0].type, 'welcome');
      assert.equal(client.frames[0].user, 'alice');
      assert.equal((await client.subscribe('lobby')).type, 'reply');
      // The printed API key publishes to the default app.
      const res = await fetch(`http://127.0.0.1:${port}/v1/apps/default/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: { channels: ['lobby'] }, data: 'hello alice' }),
      });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      assert.deepEqual(await client.next((f) => f.id === id), { type: 'message', id, channel: 'lobby', data: 'hello alice' });

      // SIGTERM drains: the client is told "going away" (1001) and the process exits 0.
      process.kill(server.pid, 'SIGTERM');
      assert.equal((await client.closed).code, 1001);
      assert.deepEqual(await server.done, { code: 0, signal: null });

      // A restart on the same data dir keeps the credentials: the token still connects, nothing is re-created.
      const { run: again, port: port2 } = await serve(['--port', '0', '--host', '127.0.0.1', '--data', data], { cwd: dir });
      runs.push(again);
      client = await Client.open(`ws://127.0.0.1:${port2}/v1/connect?token=${token}`);
      assert.equal(client.frames[0].user, 'alice');
      assert.equal(again.stdout.includes(app.secret), false, 'the secret is not printed again');
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), app);
    } finally {
      client?.ws.terminate();
      for (const r of runs) await kill(r);
    }
  });

  test('serve - --port overrides SILK_PORT', async () => {
    // A port that is taken: a node that used SILK_PORT could not listen.
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    const dir = tempDir();
    const runs: Run[] = [];
    try {
      const env = { SILK_PORT: String(taken) };
      const { run, port } = await serve(['--port', '0', '--host', '127.0.0.1', '--data', join(dir, 'data')], { cwd: dir, env });
      runs.push(run);
      assert.notEqual(port, taken);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(health.status, 200);
      // Without the flag, SILK_PORT is used (and here it is taken, so the node cannot start).
      const envOnly = cli(['serve', '--host', '127.0.0.1', '--data', join(dir, 'data')], { cwd: dir, env });
      runs.push(envOnly);
      const { code } = await envOnly.done;
      assert.notEqual(code, 0);
      assert.match(envOnly.stderr, /EADDRINUSE/);
      assert.match(envOnly.stderr, new RegExp(String(taken)));
    } finally {
      for (const r of runs) await kill(r);
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

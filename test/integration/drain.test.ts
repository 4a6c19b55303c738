import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { CloseCode } from '../../src/protocol/codes.js';
import { APP_A, Client, tempDir } from '../helpers.js';
import { kill, serve as serveIn } from '../process.js';
import { RawClient } from '../raw-client.js';

const started: { child: ChildProcess; dir: string }[] = [];
after(() => {
  for (const s of started) {
    kill(s.child);
    rmSync(s.dir, { recursive: true, force: true });
  }
});

/** `silk serve` in a fresh directory. */
async function serve(config: object): Promise<{ child: ChildProcess; port: number; dir: string }> {
  const dir = tempDir('silk-drain-');
  const s = await serveIn(dir, config);
  return { child: s.child, port: s.port, dir };
}

test('drain - SIGTERM sends going-away to every client, refuses new ones, exits 0', async () => {
  const s = await serve({ apps: [APP_A], drainSeconds: 2, logLevel: 'info' });
  started.push(s);
  const token = await signToken({ app: APP_A.id, user: 'd', secret: APP_A.secret, ttlSeconds: 600 });
  const url = `ws://127.0.0.1:${s.port}/v1/connect?token=${token}`;
  const clients = await Promise.all([Client.open(url), Client.open(url)]);
  // A client that never answers the close frame keeps the drain open until drainSeconds.
  const stubborn = await RawClient.open(s.port, `/v1/connect?token=${token}`);
  const exited = once(s.child, 'exit');
  const t0 = Date.now();
  s.child.kill('SIGTERM');
  for (const c of clients) assert.equal((await c.closed).code, CloseCode.GOING_AWAY);
  const ready = await fetch(`http://127.0.0.1:${s.port}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { error: { code: string } }).error.code, 'draining');
  const refused = new WebSocket(url);
  const [, res] = await once(refused, 'unexpected-response');
  assert.equal(res.statusCode, 503);
  refused.on('error', () => undefined); // terminate() during the handshake reports an abort
  refused.terminate();
  const [code] = await exited;
  const took = Date.now() - t0;
  assert.equal(code, 0);
  assert.ok(took < 5000, `exited within the drain bound (${took} ms)`);
  stubborn.destroy();
});

test('drain - exits at once when every client closes promptly', async () => {
  const s = await serve({ apps: [APP_A], drainSeconds: 30, logLevel: 'info' });
  started.push(s);
  const token = await signToken({ app: APP_A.id, user: 'q', secret: APP_A.secret, ttlSeconds: 600 });
  const c = await Client.open(`ws://127.0.0.1:${s.port}/v1/connect?token=${token}`);
  const exited = once(s.child, 'exit');
  const t0 = Date.now();
  s.child.kill('SIGINT');
  assert.equal((await c.closed).code, CloseCode.GOING_AWAY);
  const [code] = await exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 10_000, 'did not wait for the 30 s bound');
});

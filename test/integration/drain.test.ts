import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { CloseCode } from '../../src/protocol/codes.js';
import { SilkClient } from '../../sdk/src/node.js';
import { APP_A, Client, startTestNode, tempDir } from '../helpers.js';
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

test('drain - each client is told when to come back, spread evenly over drainSpreadSeconds', async () => {
  const t = await startTestNode({ drainSeconds: 1, drainSpreadSeconds: 4 });
  const n = 20;
  const clients: Client[] = [];
  for (let i = 0; i < n; i++) clients.push(await t.connect(`spread-${i}`));
  await t.node.drain();
  const after: number[] = [];
  for (const c of clients) {
    assert.equal((await c.closed).code, CloseCode.GOING_AWAY);
    const hint = c.frames.find((f) => f.type === 'reconnect');
    assert.ok(hint !== undefined, 'a reconnect frame before the close');
    after.push(hint.after);
  }
  // The i-th client (in connection order) comes back in the i-th twentieth of the 4 s window.
  after.forEach((ms, i) => assert.ok(ms >= (i * 4000) / n && ms < ((i + 1) * 4000) / n, `client ${i}: ${ms} ms`));
  await t.close();
});

test('drain - the SDK waits the delay the draining node announced before it reconnects', async () => {
  const t = await startTestNode({ drainSeconds: 1, drainSpreadSeconds: 10 });
  // A first connection: the SDK's is the second of two, so its delay falls in the second half of the window.
  await t.connect('first');
  const sdk = new SilkClient({
    url: t.url,
    getToken: () => signToken({ app: APP_A.id, user: 'sdk', secret: APP_A.secret, ttlSeconds: 600 }),
    reconnect: { minDelayMs: 50, maxDelayMs: 400 },
  });
  try {
    const connected = sdk.wait('connected');
    sdk.connect();
    await connected;
    const gone = sdk.wait('disconnected');
    await t.node.drain();
    const d = await gone;
    assert.equal(d.code, CloseCode.GOING_AWAY);
    assert.equal(d.willRetry, true);
    assert.ok(d.delayMs !== undefined && d.delayMs >= 5000 && d.delayMs < 10_000, `delay ${d.delayMs} ms, not the SDK's own 0–50 ms`);
  } finally {
    sdk.close();
    await t.close();
  }
});

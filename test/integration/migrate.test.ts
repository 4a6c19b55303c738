import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { BlockIds } from '../../src/core/ids.js';
import { RedisStore } from '../../src/engines/redis/store.js';
import { SqliteStore } from '../../src/engines/sqlite/store.js';
import { SilkCluster } from '../cluster.js';
import { APP_A, tempDir } from '../helpers.js';
import { CLI } from '../process.js';
import { RedisServer } from '../redis.js';

const USERS = 30;
const PER_USER = 100;
let dir: string;
let redis: RedisServer;
let client: Redis;
const sent = new Map<string, string[]>();
const history: string[] = [];
let maxId = 0n;

before(async () => {
  dir = tempDir('silk-migrate-');
  const store = new SqliteStore({ dir: join(dir, 'data'), limits: DEFAULT_LIMITS });
  const ids = new BlockIds(store);
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < PER_USER; i++) {
    for (let u = 0; u < USERS; u++) {
      await ids.ensure(1);
      const id = ids.next().toString();
      const user = `user-${u}`;
      sent.set(user, [...(sent.get(user) ?? []), id]);
      writes.push(store.write({ app: APP_A.id, message: { id, data: JSON.stringify({ u, i }), at: Date.now() }, users: [user] }));
    }
  }
  for (let i = 0; i < 120; i++) {
    await ids.ensure(1);
    const id = ids.next().toString();
    history.push(id);
    writes.push(store.write({ app: APP_A.id, message: { id, data: String(i), at: Date.now(), event: 'tick' }, channels: ['news'] }));
  }
  await ids.ensure(1);
  const keyed = ids.next().toString();
  writes.push(store.write({ app: APP_A.id, message: { id: keyed, data: '"k"', at: Date.now() }, idempotencyKey: 'order-1' }));
  await Promise.all(writes);
  maxId = BigInt(keyed);
  await store.close();
  redis = await RedisServer.start();
  client = new Redis(redis.url);
});
after(async () => {
  client?.disconnect();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Run `silk migrate`; `stopAfter` kills it (SIGKILL) at the first output line matching it. */
async function runMigrate(stopAfter?: RegExp): Promise<{ code: number | null; signal: string | null; lines: string[] }> {
  const child = spawn(process.execPath, [CLI, 'migrate', '--to', redis.url, '--data', join(dir, 'data'), '--batch', '100'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (l) => {
    lines.push(l);
    if (stopAfter?.test(l)) child.kill('SIGKILL');
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  return { code, signal, lines };
}

test('migrate - interrupted, resumed, verified: inboxes, history, keys and the id position land in Redis', { timeout: 60_000 }, async () => {
  const first = await runMigrate(/inbox 1000\//);
  assert.equal(first.signal, 'SIGKILL', first.lines.join('\n'));
  const second = await runMigrate();
  assert.equal(second.code, 0, second.lines.join('\n'));
  assert.match(second.lines[0]!, /resuming .* at inbox \((1000|1100) inbox/);
  assert.match(second.lines.at(-1)!, /verified/);

  const store = new RedisStore({ client, limits: DEFAULT_LIMITS });
  for (const [user, ids] of sent) {
    const page = await store.inbox(APP_A.id, user, undefined, 1000);
    assert.deepEqual(page.messages.map((m) => m.id), ids, user);
  }
  const h = await store.history(APP_A.id, 'news', history[9]!, 1000);
  assert.deepEqual(h.messages.map((m) => m.id), history.slice(10));
  assert.equal(h.messages[0]!.event, 'tick');
  const dup = await store.write({ app: APP_A.id, message: { id: '1', data: '1', at: Date.now() }, idempotencyKey: 'order-1' });
  assert.equal(dup.duplicate, true);
  assert.ok((await store.leaseIds(10, 0n)) > maxId);

  // A third run finds it done and only verifies.
  const third = await runMigrate();
  assert.equal(third.code, 0);
  assert.match(third.lines[0]!, /migrated before/);

  // A cluster node on that Redis serves the migrated inbox, and its ids go on above.
  const cluster = new SilkCluster(redis.url);
  try {
    const [node] = await cluster.start(1);
    const device = await node!.connect('user-7');
    assert.equal(device.frames[0].unread, PER_USER);
    const r = await node!.publish({ to: { users: ['user-7'] }, data: 'new' });
    assert.ok(BigInt(r.body.id) > maxId);
  } finally {
    await cluster.close();
  }
});

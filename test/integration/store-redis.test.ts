import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { SilkError } from '../../src/core/errors.js';
import { connect, ready, Script } from '../../src/engines/redis/client.js';
import { keys } from '../../src/engines/redis/keys.js';
import { IN_PROGRESS_MS, RedisStore } from '../../src/engines/redis/store.js';
import { CONTRACT_LIMITS, storeContract } from '../contract/store.js';
import { eventually } from '../helpers.js';
import { RedisServer } from '../redis.js';

let server: RedisServer;
const clients: Redis[] = [];
before(async () => {
  server = await RedisServer.start();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await server.destroy();
});

storeContract('redis', {
  densePositions: true,
  async open(options) {
    // Each store gets an empty database: FLUSHALL between stores of the suite.
    const c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    await c.flushall();
    return new RedisStore({ ...options, client: c });
  },
  async reopen(options) {
    const c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    return new RedisStore({ ...options, client: c });
  },
});

describe('redis store - idempotency claims', () => {
  const limits = { ...CONTRACT_LIMITS };
  let c: Redis;
  let store: RedisStore;
  let seq = 9_000_000_000_000_000n;
  const message = () => ({ id: (++seq).toString(), data: '"x"', at: Date.now() });
  const claimKey = (key: string) => keys.idempotency('a', key);
  before(async () => {
    c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    await c.flushall();
    store = new RedisStore({ limits, client: c });
  });

  test('a claim younger than IN_PROGRESS_MS refuses another publish with idempotency_key_in_use', async () => {
    const until = Date.now() + 60_000;
    await c.set(claimKey('busy'), `p:123:${until}:${Date.now() - 1000}`);
    await assert.rejects(store.write({ app: 'a', message: message(), users: ['u1'], idempotencyKey: 'busy' }), (err: unknown) => {
      assert.ok(err instanceof SilkError);
      assert.equal(err.code, 'idempotency_key_in_use');
      return true;
    });
    assert.equal((await store.inbox('a', 'u1', undefined, 10)).unread, 0, 'nothing stored');
  });

  test('a claim abandoned for longer than IN_PROGRESS_MS is taken over and completed under its id', async () => {
    const until = Date.now() + 60_000;
    await c.set(claimKey('abandoned'), `p:4567:${until}:${Date.now() - IN_PROGRESS_MS - 1}`);
    const w = await store.write({ app: 'a', message: message(), users: ['u2'], idempotencyKey: 'abandoned' });
    assert.deepEqual([w.id, w.duplicate], ['4567', false]);
    assert.deepEqual((await store.inbox('a', 'u2', undefined, 10)).messages.map((m) => m.id), ['4567']);
    assert.equal(await c.get(claimKey('abandoned')), `d:4567:${until}`);
  });

  test('a publish that fails marks its claim failed, and a retry completes it at once under the same id', async () => {
    // The user's inbox key holds a string: the inbox script fails with WRONGTYPE after the claim.
    const inbox = keys.inbox('a', 'u3');
    await c.set(inbox, 'not a sorted set');
    const first = message();
    await assert.rejects(store.write({ app: 'a', message: first, users: ['u3'], idempotencyKey: 'failing' }), /WRONGTYPE/);
    await eventually(async () => assert.match((await c.get(claimKey('failing'))) ?? '', new RegExp(`^f:${first.id}:`)));
    await c.del(inbox);
    const retry = await store.write({ app: 'a', message: message(), users: ['u3'], idempotencyKey: 'failing' });
    assert.deepEqual([retry.id, retry.duplicate], [first.id, false]);
    assert.deepEqual((await store.inbox('a', 'u3', undefined, 10)).messages.map((m) => m.id), [first.id]);
    const repeat = await store.write({ app: 'a', message: message(), users: ['u3'], idempotencyKey: 'failing' });
    assert.deepEqual([repeat.id, repeat.duplicate], [first.id, true]);
  });
});

describe('redis store - scripts after a Redis restart', () => {
  test('a command connection loads every script when it becomes ready, so an inbox read cannot overtake the ack before it', async () => {
    const c = connect({ url: server.url }, 'command') as Redis;
    clients.push(c);
    await ready(c, 5000);
    const store = new RedisStore({ limits: CONTRACT_LIMITS, client: c });
    // A restart forgets every script; the connection comes back by itself.
    await server.stop();
    const back = once(c, 'ready');
    await server.restart();
    await back;
    await eventually(async () => assert.match(await server.cli('info', 'memory'), new RegExp(`number_of_cached_scripts:${Script.count}\\b`)));
    const m = { id: '9100000000000000001', data: '"x"', at: Date.now() };
    await store.write({ app: 'a', message: m, users: ['after-restart'] });
    assert.equal((await store.inbox('a', 'after-restart', undefined, 10)).unread, 1);
    // Sent in one tick, in this order: the read must see the acknowledgement.
    const acked = store.ack('a', 'after-restart', { all: true });
    const page = store.inbox('a', 'after-restart', undefined, 10);
    assert.equal((await acked).removed, 1);
    assert.deepEqual(await page, { messages: [], unread: 0, more: false });
  });
});

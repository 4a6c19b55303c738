/**
 * A node on a Redis that is slow rather than down: every packet between
 * them delayed (a proxy in between). Publishes take longer and all land;
 * past the command timeout they are refused with 503 instead of hanging;
 * once the path is fast again everything works, and no message answered
 * 202 is lost or delivered twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { COMMAND_TIMEOUT_MS } from '../../src/engines/redis/client.js';
import { DelayProxy } from '../delay-proxy.js';
import { RedisServer } from '../redis.js';
import { startTestNode, type TestNode } from '../helpers.js';

describe('faults - a slow Redis', { timeout: 60_000 }, () => {
  let redis: RedisServer;
  let proxy: DelayProxy;
  let t: TestNode;
  before(async () => {
    redis = await RedisServer.start();
    proxy = await DelayProxy.start(redis.port, 0);
    t = await startTestNode({ redis: `redis://127.0.0.1:${proxy.port}` });
  });
  after(async () => {
    await t?.close();
    await proxy?.close();
    await redis?.destroy();
  });

  test('slow redis - 50 ms each way: durable publishes all land, in order, once; past the command timeout 503; fast again, all well', async () => {
    const c = await t.connect('slowpoke', { channels: ['*'] });
    await c.subscribe('lagging');
    await new Promise((r) => setTimeout(r, 200)); // the subscription reaches Redis
    proxy.delayMs = 50;
    const accepted: string[] = [];
    const started = performance.now();
    const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => t.publish({ to: { channels: ['lagging'] }, data: { i }, durable: true })));
    for (const r of sent) {
      assert.equal(r.status, 202);
      accepted.push(r.body.id);
    }
    assert.ok(performance.now() - started >= 100, 'the delay was felt');

    proxy.delayMs = COMMAND_TIMEOUT_MS + 1500;
    const t0 = performance.now();
    const refused = await t.publish({ to: { channels: ['lagging'] }, data: 'too slow', durable: true });
    const waited = performance.now() - t0;
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'store_unavailable');
    assert.ok(waited < COMMAND_TIMEOUT_MS * 2 + 1000, `refused after ${waited.toFixed(0)} ms, not left hanging`);

    proxy.delayMs = 5;
    // What was in flight drains; then the path is fast again.
    let after: { status: number; body: any } | undefined;
    for (let i = 0; i < 50; i++) {
      after = await t.publish({ to: { channels: ['lagging'] }, data: 'fast again', durable: true });
      if (after.status === 202) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(after!.status, 202);
    accepted.push(after!.body.id);
    await c.next((f) => f.id === after!.body.id, 15_000);
    const got = c.messages().map((m) => m.id as string);
    assert.equal(new Set(got).size, got.length, 'nothing twice');
    assert.deepEqual(accepted.filter((id) => !got.includes(id)), [], 'every message answered 202 arrived');
    // The history agrees: a client resuming from the first gets the rest, each once.
    const late = await t.connect('late', { channels: ['*'] });
    assert.equal((await late.request({ type: 'subscribe', channel: 'lagging', since: accepted[0] })).recovered, true);
    const replay = late.messages().map((m) => m.id as string);
    assert.equal(new Set(replay).size, replay.length);
    for (const id of accepted.slice(1)) assert.ok(replay.includes(id), `${id} in the history`);
  });
});

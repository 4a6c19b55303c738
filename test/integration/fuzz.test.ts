/**
 * A live node under fuzzed device frames: random, mutated and broken frames,
 * protocol violations and odd framings, over real sockets. Every answer is a
 * documented frame, error code or close code, nothing throws, and a
 * well-behaved client on the same node is served throughout. The long run
 * (a million frames and more) is `npm run bench -- fuzz`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { FuzzClient, newTally, shot } from '../fuzz.js';
import { startTestNode, type Client, type TestNode } from '../helpers.js';

describe('fuzz - device frames', { timeout: 120_000 }, () => {
  let t: TestNode;
  before(async () => {
    // A flood limit out of the way, so the fuzz reaches the parser rather than the flood close.
    t = await startTestNode({ limits: { maxFramesPerSecond: 1_000_000 } });
  });
  after(() => t.close());

  test('fuzz - 4,000 hostile frames get documented answers and closes; the node and a well-behaved client carry on', async () => {
    const good: Client = await t.connect('good', { channels: ['*'] });
    await good.subscribe('live');
    const tally = newTally();
    const token = await t.token('fuzzer', { channels: ['open.*'] });
    const shots = fc.sample(shot, { numRuns: 4000, seed: 20261204 });
    let c = await FuzzClient.open(t.node.port, `/v1/connect?token=${token}`, tally);
    let reconnects = 0;
    const published: string[] = [];
    for (let i = 0; i < shots.length; i++) {
      if (!c.open) {
        await c.closed;
        c = await FuzzClient.open(t.node.port, `/v1/connect?token=${token}`, tally);
        reconnects++;
      }
      await c.exchange(shots[i]!);
      if (i % 200 === 199) {
        // The well-behaved client is served while the fuzz goes on.
        const r = await t.publish({ to: { channels: ['live'] }, data: { i } });
        assert.equal(r.status, 202);
        published.push(r.body.id);
        await good.next((f) => f.id === r.body.id, 5000);
        assert.equal((await good.request({ type: 'ping' })).type, 'reply');
      }
    }
    c.sock.destroy();
    if (process.env['SILK_FUZZ_REPORT']) console.log(JSON.stringify({ ...tally, reconnects }));
    assert.deepEqual(tally.strange, [], 'every server frame and close code is documented');
    assert.equal(tally.shots, 4000);
    assert.ok(tally.textFrames > 1000, `the node answered (${tally.textFrames} frames)`);
    assert.ok(Object.keys(tally.errors).length >= 3, `several error codes: ${JSON.stringify(tally.errors)}`);
    assert.ok(reconnects > 0 && Object.keys(tally.closes).length >= 2, `protocol violations closed the connection: ${JSON.stringify(tally.closes)}`);
    assert.deepEqual(
      good.messages().map((m) => m.id),
      published,
      'the well-behaved client got every message, in order',
    );
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });
});

/**
 * Catch-ups run in slices with the loop polling I/O between them, on the
 * embedded stores (whose reads resolve without yielding to I/O): an HTTP
 * request made while a long recovery runs is answered before it ends, and
 * the recovery still delivers every message once, in order.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestNode } from '../helpers.js';

const MESSAGES = 3000;

for (const store of ['sqlite', 'memory']) {
  describe(`catch-up scheduler - ${store} store`, () => {
    test('a recovery of many pages lets an HTTP request in between its slices, and loses and repeats nothing', async () => {
      const t = await startTestNode({ store, limits: { historyMaxMessages: 5000, catchupFramesPerTurn: 50 } });
      try {
        const first = (await t.publish({ to: { channels: ['feed'] }, data: -1, durable: true })).body.id as string;
        const ids: string[] = [];
        for (let b = 0; b < MESSAGES / 1000; b++) {
          const r = await t.api('POST', '/v1/apps/acme/messages/batch', {
            messages: Array.from({ length: 1000 }, (_, i) => ({ to: { channels: ['feed'] }, data: b * 1000 + i, durable: true })),
          });
          assert.equal(r.status, 202);
          ids.push(...(r.body.ids as string[]));
        }
        const c = await t.connect('reader', { channels: ['*'] });
        const order: string[] = [];
        let asked = false;
        c.ws.on('message', () => {
          if (asked) return;
          asked = true;
          // The first recovered message is here: the recovery has begun and has far to go.
          fetch(t.url + '/healthz').then(() => order.push('http'));
        });
        const reply = await c.request({ type: 'subscribe', channel: 'feed', since: first });
        order.push('recovered');
        assert.equal(reply.recovered, true);
        assert.deepEqual(
          c.messages().map((m) => m.id),
          ids,
          'every message once, in order',
        );
        assert.deepEqual(order, ['http', 'recovered'], 'the request was served while the recovery ran');
        const metrics = await (await fetch(t.url + '/metrics')).text();
        assert.match(metrics, new RegExp(`^silk_catchup_frames_total ${MESSAGES}$`, 'm'));
        assert.match(metrics, /^silk_recovery_seconds_count 1$/m);
        assert.match(metrics, /^silk_catchups_running 0$/m);
      } finally {
        await t.close();
      }
    });
  });
}

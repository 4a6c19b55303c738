/**
 * Abuse that is not one bad frame: requests that never finish arriving
 * (slowloris, on the API and on the upgrade), and one app flooding the API
 * while another publishes.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HTTP_HEADERS_TIMEOUT_MS } from '../../src/core/limits.js';
import { APP_A, APP_B, startTestNode, type TestNode } from '../helpers.js';

/** A socket that sends `head` and then one more header byte a second, never finishing; resolves with what came back and when it closed. */
function slowloris(port: number, head: string): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const sock = connect(port, '127.0.0.1');
    let answer = '';
    sock.on('data', (d) => (answer += String(d)));
    sock.on('error', () => undefined);
    sock.once('connect', () => sock.write(head));
    const drip = setInterval(() => {
      if (!sock.destroyed) sock.write('x');
    }, 1000);
    sock.once('close', () => {
      clearInterval(drip);
      resolve({ answer, ms: Date.now() - start });
    });
  });
}

describe('abuse', { timeout: 60_000 }, () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { apiRequestsPerSecond: 500 } });
  });
  after(() => t.close());

  test('slowloris - requests whose headers never end are answered 408 and closed after the headers timeout, on the API and on the upgrade', async () => {
    const [api, upgrade] = await Promise.all([
      slowloris(t.node.port, `POST /v1/apps/acme/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${APP_A.apiKey}\r\nX-Slow: `),
      slowloris(t.node.port, 'GET /v1/connect?token=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: '),
    ]);
    for (const r of [api, upgrade]) {
      assert.match(r.answer, /^HTTP\/1\.1 408 /);
      // Within the headers timeout and the once-a-second check (and a second of slack for a busy machine).
      assert.ok(r.ms >= HTTP_HEADERS_TIMEOUT_MS - 100 && r.ms < HTTP_HEADERS_TIMEOUT_MS + 3000, `closed after ${r.ms} ms`);
    }
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });

  test('flood - one app over its API rate is refused with 429 while another app publishes at its own pace', async () => {
    let running = true;
    const flood = { accepted: 0, limited: 0 };
    const flooders = Array.from({ length: 32 }, async () => {
      while (running) {
        const r = await fetch(`${t.url}/v1/apps/acme/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${APP_A.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: { channels: ['flood'] }, data: 'x'.repeat(1000), durable: true }),
        });
        await r.arrayBuffer();
        if (r.status === 202) flood.accepted++;
        else if (r.status === 429) flood.limited++;
      }
    });
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      const r = await fetch(`${t.url}/v1/apps/globex/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${APP_B.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: { users: ['bob'] }, data: i, durable: true }),
      });
      await r.arrayBuffer();
      assert.equal(r.status, 202, 'the other app is never refused');
      times.push(performance.now() - start);
    }
    running = false;
    await Promise.all(flooders);
    times.sort((a, b) => a - b);
    const p99 = times[Math.floor(times.length * 0.99)]!;
    if (process.env['SILK_ABUSE_REPORT']) console.log(JSON.stringify({ flood, p50: times[100], p99 }));
    assert.ok(flood.limited > 0, 'the flooding app went over its rate');
    // The bound docs/security.md gives (measured around 10–30 ms here); generous for a shared machine.
    assert.ok(p99 < 250, `the other app's publish p99 is ${p99.toFixed(1)} ms`);
  });
});

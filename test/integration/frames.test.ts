import { connect } from 'node:net';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { APP_B, eventually, startTestNode, type Client, type TestNode } from '../helpers.js';
import { RawClient } from '../raw-client.js';

/** `p`, or a rejection after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Open a WebSocket the server must refuse; resolve with the HTTP status and JSON body. */
async function refused(url: string): Promise<{ status: number; body: any }> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  try {
    const res = await within(
      new Promise<IncomingMessage>((resolve, reject) => {
        ws.once('unexpected-response', (_req, r) => resolve(r));
        ws.once('open', () => reject(new Error('the upgrade was accepted')));
        ws.once('close', () => reject(new Error('closed without an HTTP response')));
      }),
      5000,
      'the refusal',
    );
    let text = '';
    for await (const chunk of res) text += String(chunk);
    return { status: res.statusCode ?? 0, body: JSON.parse(text) };
  } finally {
    ws.terminate();
    await closed;
  }
}

/** Read one sample from Prometheus text, 0 if absent. */
function sample(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('frames', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({
      limits: { maxFrameBytes: 1024, maxFramesPerSecond: 20, maxSubscriptionsPerConnection: 3 },
    });
  });
  after(() => t.close());

  /**
   * Send a bad frame, then a ping with an id: exactly one frame must come
   * back before the ping's reply, the error.
   */
  async function errorFor(c: Client, bad: string | Buffer | object): Promise<any> {
    const before = c.frames.length;
    if (Buffer.isBuffer(bad)) c.ws.send(bad, { binary: true });
    else c.send(bad);
    const pong = await c.request({ type: 'ping' });
    assert.equal(pong.type, 'reply', 'the connection answers after the bad frame');
    const between = c.frames.slice(before, c.frames.indexOf(pong));
    assert.equal(between.length, 1, `frames before the reply: ${JSON.stringify(between)}`);
    const err = between[0];
    assert.equal(err.type, 'error');
    assert.equal(typeof err.message, 'string');
    return err;
  }

  const cases: { name: string; frame: string | Buffer | object; code: string; id?: number }[] = [
    { name: 'not JSON', frame: '{"type":"ping"', code: 'invalid_json' },
    { name: 'a JSON array', frame: '[{"type":"ping","id":1}]', code: 'invalid_request' },
    { name: 'a JSON string', frame: '"ping"', code: 'invalid_request' },
    { name: 'a frame without type', frame: { id: 5, channel: 'news' }, code: 'invalid_request', id: 5 },
    { name: 'a non-string type', frame: { type: 3, id: 6 }, code: 'invalid_request', id: 6 },
    { name: 'an unknown type', frame: { type: 'publish', id: 7 }, code: 'unknown_frame', id: 7 },
    { name: 'a subscribe without id', frame: { type: 'subscribe', channel: 'news' }, code: 'invalid_request' },
    { name: 'a subscribe with a string id', frame: { type: 'subscribe', id: '8', channel: 'news' }, code: 'invalid_request' },
    {
      name: 'a subscribe with an unknown field',
      frame: { type: 'subscribe', id: 9, channel: 'news', since: 0 },
      code: 'invalid_request',
      id: 9,
    },
    { name: 'a binary frame', frame: Buffer.from('{"type":"ping","id":10}'), code: 'invalid_request' },
    { name: 'a channel with a space', frame: { type: 'subscribe', id: 11, channel: 'bad name' }, code: 'invalid_channel', id: 11 },
    { name: 'a channel of 201 chars', frame: { type: 'subscribe', id: 12, channel: 'c'.repeat(201) }, code: 'invalid_channel', id: 12 },
    { name: 'a non-string channel', frame: { type: 'subscribe', id: 13, channel: ['news'] }, code: 'invalid_channel', id: 13 },
    { name: 'an unsubscribe with an empty channel', frame: { type: 'unsubscribe', id: 14, channel: '' }, code: 'invalid_channel', id: 14 },
    { name: 'a ping with a bad id', frame: { type: 'ping', id: -1 }, code: 'invalid_request' },
    // A pong spelled exactly `{"type":"pong"}` skips parsing: these are not that.
    { name: 'a pong with an unknown field', frame: '{"type":"pong","x":1}', code: 'invalid_request' },
    { name: 'a binary pong', frame: Buffer.from('{"type":"pong"}'), code: 'invalid_request' },
  ];
  for (const k of cases) {
    test(`bad frame - ${k.name} gets error ${k.code} and the connection lives on`, async () => {
      const c = await t.connect('bad-frames', { channels: ['*'] });
      const err = await errorFor(c, k.frame);
      assert.equal(err.code, k.code);
      if (k.id === undefined) assert.equal('id' in err, false, `unexpected id in ${JSON.stringify(err)}`);
      else assert.equal(err.id, k.id);
      assert.deepEqual(await c.subscribe('after-bad'), { type: 'reply', id: 1002 });
      await c.close();
    });
  }

  test('frame size - a frame of exactly limits.maxFrameBytes is read', async () => {
    const c = await t.connect('size-ok');
    const frame = '{"type":"ping","id":77}';
    c.send(' '.repeat(1024 - frame.length) + frame);
    assert.deepEqual(await c.next((f) => f.id === 77), { type: 'reply', id: 77 });
    await c.close();
  });

  test('frame size - a frame over limits.maxFrameBytes closes the connection with 1009', async () => {
    const c = await t.connect('size-big');
    const frame = '{"type":"ping","id":78}';
    c.send(' '.repeat(1025 - frame.length) + frame);
    const closed = await within(c.closed, 5000, 'the close');
    assert.equal(closed.code, 1009);
    assert.equal(c.frames.some((f) => f.id === 78), false);
  });

  test('flood - more than limits.maxFramesPerSecond frames in a second closes with 4008', async () => {
    const c = await t.connect('flooder');
    for (let i = 0; i < 30; i++) c.send({ type: 'ping', id: i });
    const closed = await within(c.closed, 5000, 'the close');
    assert.equal(closed.code, 4008);
    assert.equal(closed.reason, 'flood');
    const replies = c.frames.filter((f) => f.type === 'reply').length;
    assert.ok(replies <= 20, `${replies} frames answered`);
  });

  test('flood - pongs count toward limits.maxFramesPerSecond like any frame', async () => {
    const c = await t.connect('pong-flooder');
    for (let i = 0; i < 30; i++) c.send('{"type":"pong"}');
    const closed = await within(c.closed, 5000, 'the close');
    assert.equal(closed.code, 4008);
    assert.equal(closed.reason, 'flood');
  });

  test('pong - any JSON spelling of a pong is taken without an answer', async () => {
    const c = await t.connect('spaced-pong');
    const before = c.frames.length;
    c.send('{"type":"pong"}');
    c.send('{ "type" : "pong" }');
    c.send('{"type":"\\u0070ong"}');
    const reply = await c.request({ type: 'ping' });
    assert.equal(reply.type, 'reply');
    assert.deepEqual(c.frames.slice(before, c.frames.indexOf(reply)), [], 'no error for any of the pongs');
    await c.close();
  });

  test('flood - up to limits.maxFramesPerSecond frames in a second are fine', async () => {
    const c = await t.connect('busy');
    for (let i = 0; i < 19; i++) c.send({ type: 'ping', id: i });
    await c.next((f) => f.id === 18);
    assert.deepEqual(await c.request({ type: 'ping' }), { type: 'reply', id: 1001 });
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    await c.close();
  });

  test('subscriptions - over limits.maxSubscriptionsPerConnection is too_many_subscriptions, the connection lives', async () => {
    const c = await t.connect('subs', { channels: ['*'] });
    for (const ch of ['s1', 's2', 's3']) assert.equal((await c.subscribe(ch)).type, 'reply', ch);
    const err = await c.subscribe('s4');
    assert.equal(err.type, 'error');
    assert.equal(err.code, 'too_many_subscriptions');
    assert.equal(typeof err.id, 'number');
    assert.equal((await c.request({ type: 'ping' })).type, 'reply');
    // Unsubscribing frees a slot.
    assert.equal((await c.request({ type: 'unsubscribe', channel: 's1' })).type, 'reply');
    assert.equal((await c.subscribe('s4')).type, 'reply');
    const res = await t.publish({ to: { channels: ['s4'] }, data: 'in s4' });
    await c.next((f) => f.id === res.body.id && f.channel === 's4');
    await c.close();
  });

  test('subscriptions - resubscribing to the same channel is not counted twice', async () => {
    const c = await t.connect('resub', { channels: ['*'] });
    for (let i = 0; i < 5; i++) assert.equal((await c.subscribe('same')).type, 'reply');
    assert.equal((await c.subscribe('other-1')).type, 'reply');
    assert.equal((await c.subscribe('other-2')).type, 'reply');
    assert.equal((await c.subscribe('other-3')).code, 'too_many_subscriptions');
    assert.deepEqual((await t.api('GET', '/v1/apps/acme/channels/same')).body, { channel: 'same', subscribers: 1 });
    const res = await t.publish({ to: { channels: ['same'] }, data: 'once' });
    await c.next((f) => f.id === res.body.id);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().filter((m) => m.id === res.body.id).length, 1);
    await c.close();
  });

  test('metrics - frame errors are counted by code and disconnects by reason', async () => {
    const m = await t.api('GET', '/metrics');
    assert.equal(m.status, 200);
    const text = m.body as string;
    assert.ok(sample(text, 'silk_frame_errors_total{code="invalid_json"}') >= 1, 'invalid_json');
    assert.ok(sample(text, 'silk_frame_errors_total{code="invalid_request"}') >= 6, 'invalid_request');
    assert.ok(sample(text, 'silk_frame_errors_total{code="unknown_frame"}') >= 1, 'unknown_frame');
    assert.ok(sample(text, 'silk_frame_errors_total{code="invalid_channel"}') >= 4, 'invalid_channel');
    assert.ok(sample(text, 'silk_frame_errors_total{code="too_many_subscriptions"}') >= 2, 'too_many_subscriptions');
    assert.equal(sample(text, 'silk_disconnects_total{reason="flood"}'), 2, 'the two flood tests');
    assert.equal(sample(text, 'silk_disconnects_total{reason="payload_too_large"}'), 1);
    assert.ok(sample(text, 'silk_disconnects_total{reason="client"}') >= 1, 'client');
  });

  test('handshake - the 101 response and welcome arrive together, and the connection then works', async () => {
    // The embedded store answers the inbox read within the tick: one write carries both (websocket.ts, connection.ts).
    const port = Number(new URL(t.url).port);
    const raw = await RawClient.open(port, `/v1/connect?token=${await t.token('one-write', { channels: ['*'] })}`);
    try {
      assert.ok(raw.received > 0, 'bytes after the 101 in its segment');
      const [welcome] = await raw.read(() => true);
      assert.equal(JSON.parse(welcome!.payload.toString()).type, 'welcome');
      raw.send('{"type":"subscribe","id":1,"channel":"news"}');
      const [reply] = await raw.read(() => true);
      assert.deepEqual(JSON.parse(reply!.payload.toString()), { type: 'reply', id: 1 });
    } finally {
      raw.destroy();
    }
  });

  test('metrics - socket writes and the frames they carried are counted', async () => {
    const read = async (): Promise<{ writes: number; frames: number }> => {
      const text = (await t.api('GET', '/metrics')).body as string;
      return { writes: sample(text, 'silk_socket_writes_total'), frames: sample(text, 'silk_frames_written_total') };
    };
    const c = await t.connect('metrics-user', { channels: ['metrics'] });
    assert.equal((await c.subscribe('metrics')).type, 'reply');
    const before = await read();
    // Published in one burst, so several frames share a write.
    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => t.publish({ to: { channels: ['metrics'] }, data: i })));
    const last = sent[sent.length - 1]!.body.id;
    await c.next((f) => f.id === last);
    const after = await read();
    assert.ok(after.frames - before.frames >= 20, `frames ${before.frames} -> ${after.frames}`);
    assert.ok(after.writes > before.writes, 'writes counted');
    assert.ok(after.writes - before.writes <= after.frames - before.frames, 'never more writes than frames');
    // A node samples its very first mark, so by now it has timed at least one wait.
    const text = (await t.api('GET', '/metrics')).body as string;
    assert.match(text, /# TYPE silk_flush_delay_seconds histogram/);
    assert.ok(sample(text, 'silk_flush_delay_seconds_count') >= 1, 'a flush delay was sampled');
    assert.ok(sample(text, 'silk_flush_delay_seconds_bucket{le="+Inf"}') >= 1);
    await c.close();
  });
});

describe('frames connection limit', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { maxConnectionsPerApp: 2 } });
  });
  after(() => t.close());

  test('connections - over limits.maxConnectionsPerApp is refused with 503 too_many_connections, per app', async () => {
    const a1 = await t.connect('a1');
    const a2 = await t.connect('a2');
    const third = await refused(`${t.wsUrl}?token=${await t.token('a3')}`);
    assert.equal(third.status, 503);
    assert.equal(third.body.error.code, 'too_many_connections');
    assert.equal(typeof third.body.error.message, 'string');
    // The other app has its own budget.
    const b1 = await t.connect('b1', { app: APP_B });
    assert.equal(b1.frames[0].type, 'welcome');
    // The connections still open are unaffected.
    assert.equal((await a1.request({ type: 'ping' })).type, 'reply');
    // Once one closes, there is room again.
    await a2.close();
    await eventually(async () => {
      const s = await t.api('GET', '/v1/apps/acme/stats');
      assert.equal(s.body.connections, 1);
    });
    const a3 = await t.connect('a3');
    assert.equal(a3.frames[0].type, 'welcome');
  });

  test('connections - refused malformed handshakes do not use up the connection budget', async () => {
    const token = await t.token('bad', { app: APP_B });
    for (let i = 0; i < 3; i++) {
      // A valid token but no Sec-WebSocket-Key: ws refuses the handshake itself.
      const sock = connect(t.node.port, '127.0.0.1');
      sock.write(`GET /v1/connect?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      const [status] = await Promise.all([
        new Promise<string>((resolve) => sock.once('data', (d) => resolve(d.toString().split('\r\n')[0]!))),
        once(sock, 'close'),
      ]);
      assert.match(status, / 400 /);
    }
    const b2 = await t.connect('b2', { app: APP_B });
    assert.equal(b2.frames[0].type, 'welcome');
  });
});

describe('frames connection limit under a burst', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { maxConnectionsPerApp: 3 } });
  });
  after(() => t.close());

  test('connections - a burst of handshakes at once opens exactly limits.maxConnectionsPerApp, the rest get 503', async () => {
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => t.token(`burst${i}`)));
    const sockets = tokens.map((token) => new WebSocket(`${t.wsUrl}?token=${token}`));
    try {
      const outcomes = await within(
        Promise.all(
          sockets.map(
            (ws) =>
              new Promise<number>((resolve) => {
                ws.on('error', () => undefined);
                ws.once('open', () => resolve(101));
                ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
              }),
          ),
        ),
        10_000,
        'every handshake answered',
      );
      assert.equal(outcomes.filter((s) => s === 101).length, 3, `statuses: ${outcomes.join(',')}`);
      assert.equal(outcomes.filter((s) => s === 503).length, 7, `statuses: ${outcomes.join(',')}`);
      const s = await t.api('GET', '/v1/apps/acme/stats');
      assert.equal(s.body.connections, 3);
    } finally {
      for (const ws of sockets) ws.terminate();
    }
  });
});

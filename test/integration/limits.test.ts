import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloseCode } from '../../src/protocol/codes.js';
import { eventually, startTestNode, type TestNode } from '../helpers.js';
import { closeCode, RawClient } from '../raw-client.js';

describe('limits - slow consumer', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { maxOutboundBytes: 65536 } });
  });
  after(() => t.close());

  test('slow consumer - a client that stops reading is closed with 4009; the rest is dropped', async () => {
    const raw = await RawClient.open(t.node.port, `/v1/connect?token=${await t.token('slow')}`);
    const fast = await t.connect('fast');
    // Far more than kernel socket buffers plus the 64 KiB queue limit can hold.
    const chunk = 'x'.repeat(32 * 1024);
    const total = 400;
    let published = 0;
    for (let i = 0; i < total; i++) {
      const res = await t.publish({ to: { users: ['slow', 'fast'] }, data: { i, chunk } });
      assert.equal(res.status, 202);
      published += chunk.length;
    }
    await eventually(async () => assert.equal((await t.api('GET', '/v1/apps/acme/users/slow')).body.online, false));
    // The reading client got everything and stays connected.
    await fast.next((f) => f.type === 'message' && f.data.i === total - 1, 10_000);
    assert.equal(fast.messages().length, total);
    assert.equal((await fast.request({ type: 'ping' })).type, 'reply');
    // Resume reading: what was queued before the cut arrives, then the close frame.
    const frames = await raw.read((f) => f.opcode === 0x8);
    const close = frames.at(-1)!;
    assert.equal(close.opcode, 0x8);
    assert.equal(closeCode(close), CloseCode.SLOW_CONSUMER);
    const messages = frames.filter((f) => f.opcode === 0x1).length - 1; // minus welcome
    assert.ok(messages < total, `only part of the backlog was kept (${messages} of ${total})`);
    assert.ok(raw.received < published / 2, `server dropped the backlog (${raw.received} of ${published} bytes)`);
    raw.destroy();
    const metrics = await (await fetch(t.url + '/metrics')).text();
    assert.match(metrics, /silk_disconnects_total\{reason="slow_consumer"\} 1/);
  });
});

describe('limits - heartbeat', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ heartbeatSeconds: 0.2 });
  });
  after(() => t.close());

  test('heartbeat - a silent client is closed with 4010, one that answers pings stays', async () => {
    const answering = await t.connect('alive');
    const silent = await t.connect('silent', { pong: false });
    const started = Date.now();
    const { code } = await silent.closed;
    const after = Date.now() - started;
    assert.equal(code, CloseCode.HEARTBEAT_TIMEOUT);
    assert.ok(after >= 250, `closed after ${after} ms, not before 1.5 intervals`);
    assert.ok(silent.frames.some((f) => f.type === 'ping'), 'the server pinged first');
    // The answering client outlives several more intervals.
    for (let i = 0; i < 5; i++) await answering.next((f) => f.type === 'ping' && answering.frames.filter((g) => g.type === 'ping').length > i + 3);
    assert.equal(answering.ws.readyState, answering.ws.OPEN);
    assert.equal((await t.api('GET', '/v1/apps/acme/users/silent')).body.online, false);
    const metrics = await (await fetch(t.url + '/metrics')).text();
    assert.match(metrics, /silk_disconnects_total\{reason="heartbeat_timeout"\} 1/);
  });
});

describe('limits - frames waiting out a catch-up', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({
      limits: { maxOutboundBytes: 65536, maxFrameBytes: 1024, maxDeferredBytes: 4096, inboxMaxBytes: 64 * 1024 * 1024, inboxPageSize: 200 },
    });
  });
  after(() => t.close());

  /** An inbox far larger than the kernel's socket buffers: a client that does not read stalls its welcome catch-up. */
  async function fill(user: string): Promise<void> {
    const chunk = 'x'.repeat(60 * 1024);
    for (let i = 0; i < 200; i++) {
      assert.equal((await t.publish({ to: { users: [user] }, data: { i, chunk }, durable: true })).status, 202);
    }
  }

  /** A ping frame of about 112 bytes (valid JSON, padded with spaces). */
  const ping = (id: number): string => `{"type":"ping","id":${id}}` + ' '.repeat(90);

  test('deferred bytes - a client that stops reading and keeps sending is closed with 4011; others are served', async () => {
    await fill('stalled');
    const raw = await RawClient.open(t.node.port, `/v1/connect?token=${await t.token('stalled')}`);
    const other = await t.connect('other');
    // 40 frames of ~112 bytes: over maxDeferredBytes (4096) while the catch-up waits for the socket to drain.
    for (let i = 1; i <= 40; i++) raw.send(ping(i));
    await eventually(async () => assert.equal((await t.api('GET', '/v1/apps/acme/users/stalled')).body.online, false));
    // The node went on serving the other client meanwhile.
    assert.equal((await other.request({ type: 'ping' })).type, 'reply');
    assert.equal((await t.publish({ to: { users: ['other'] }, data: 'still here' })).status, 202);
    await other.next((f) => f.type === 'message' && f.data === 'still here');
    const frames = await raw.read((f) => f.opcode === 0x8);
    const close = frames.at(-1)!;
    assert.equal(close.opcode, 0x8);
    assert.equal(closeCode(close), CloseCode.REQUEST_OVERFLOW);
    assert.equal(close.payload.subarray(2).toString(), 'request_overflow');
    const texts = frames.filter((f) => f.opcode === 0x1).map((f) => JSON.parse(f.payload.toString()));
    assert.ok(!texts.some((f) => f.type === 'reply'), 'no waiting frame was handled');
    raw.destroy();
    const metrics = await (await fetch(t.url + '/metrics')).text();
    assert.match(metrics, /silk_disconnects_total\{reason="request_overflow"\} 1/);
  });

  test('deferred bytes - frames under the cap wait out a stalled catch-up and are answered after it, in order', async () => {
    await fill('patient');
    const raw = await RawClient.open(t.node.port, `/v1/connect?token=${await t.token('patient')}`);
    for (let i = 1; i <= 30; i++) raw.send(ping(i));
    const frames = await raw.read((f) => f.opcode === 0x8 || (f.opcode === 0x1 && JSON.parse(f.payload.toString()).id === 30));
    const texts = frames.filter((f) => f.opcode === 0x1).map((f) => JSON.parse(f.payload.toString()));
    assert.equal(texts[0].type, 'welcome');
    assert.equal(texts.filter((f) => f.type === 'message').length, 200, 'the whole first page');
    const replies = texts.filter((f) => f.type === 'reply');
    assert.deepEqual(
      replies.map((f) => f.id),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.ok(texts.findIndex((f) => f.type === 'reply') > texts.findLastIndex((f) => f.type === 'message'), 'replies after the catch-up');
    raw.destroy();
  });
});

describe('limits - heartbeat after a stall of the node', () => {
  test('heartbeat - a visit that comes late closes nobody: silence is counted from when the node ran again', async () => {
    const t = await startTestNode({ heartbeatSeconds: 1 });
    try {
      // A client that never answers: it must be closed, but on its own silence, not on the node's stall.
      const silent = await t.connect('quiet', { pong: false });
      await new Promise((r) => setTimeout(r, 1000));
      // The node (this process) stalls for 0.7 s: the client's silence reaches 1.7 s, past the 1.5 intervals.
      const end = Date.now() + 700;
      while (Date.now() < end);
      const unblocked = Date.now();
      const closed = await silent.closed;
      const after = Date.now() - unblocked;
      assert.equal(closed.code, 4010);
      assert.ok(after >= 1200, `closed ${after} ms after the stall; the round right after it must close nobody`);
    } finally {
      await t.close();
    }
  });
});

describe('limits - connections set up per turn', () => {
  test('connectsPerTurn - many clients at once with a budget of one a turn: every one is set up and welcomed, and HTTP is served meanwhile', async () => {
    const t = await startTestNode({ limits: { connectsPerTurn: 1 } });
    try {
      const opening = Array.from({ length: 40 }, (_, i) => t.connect(`burst-${i}`));
      const health = await fetch(`${t.url}/healthz`);
      assert.equal(health.status, 200);
      const clients = await Promise.all(opening);
      assert.equal(clients.length, 40);
      for (const c of clients) assert.equal(c.frames[0].type, 'welcome');
      assert.equal(new Set(clients.map((c) => c.frames[0].connection)).size, 40);
      const m = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(m, /^silk_connects_waiting 0$/m);
    } finally {
      await t.close();
    }
  });
});

describe('limits - the node-wide outbound budget', () => {
  test('maxOutboundBytesTotal - clients that stop reading are cut, the largest first, and the node holds no more than the budget; a reading client is served throughout', async () => {
    const budget = 8 * 1024 * 1024;
    const t = await startTestNode({ limits: { maxOutboundBytes: 64 * 1024 * 1024, maxOutboundBytesTotal: budget } });
    try {
      const gauge = async (): Promise<{ bytes: number; shed: number }> => {
        const m = await (await fetch(`${t.url}/metrics`)).text();
        const v = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)?.[1] ?? NaN);
        return { bytes: v('silk_outbound_bytes'), shed: v('silk_outbound_shed_total') };
      };
      const online = async (user: string): Promise<boolean> => (await t.api('GET', `/v1/apps/acme/users/${user}`)).body.online;
      const heavy = await RawClient.open(t.node.port, `/v1/connect?token=${await t.token('heavy')}`);
      const lights = await Promise.all(Array.from({ length: 6 }, async (_, i) => RawClient.open(t.node.port, `/v1/connect?token=${await t.token(`light-${i}`)}`)));
      const reader = await t.connect('reader');
      const chunk = 'x'.repeat(32 * 1024);
      let sent = 0;
      const peak = { bytes: 0 };
      const send = async (users: string[]): Promise<void> => {
        const res = await t.publish({ to: { users: [...users, 'reader'] }, data: { n: sent++, chunk } });
        assert.equal(res.status, 202);
        const g = await gauge();
        peak.bytes = Math.max(peak.bytes, g.bytes);
        assert.ok(g.bytes <= budget, `the node holds ${g.bytes} bytes, over the budget of ${budget}`);
      };
      // One client that stops reading takes the most.
      for (let i = 0; i < 200; i++) await send(['heavy']);
      assert.equal(await online('heavy'), true, 'under the budget nobody is cut');
      assert.equal((await gauge()).shed, 0);
      // Then several more: once the node is over its budget, the largest goes first.
      const lightUsers = lights.map((_, i) => `light-${i}`);
      for (let i = 0; i < 600 && (await gauge()).shed === 0; i++) await send(lightUsers);
      assert.equal((await gauge()).shed, 1, 'one cut was enough to get back under');
      await eventually(async () => assert.equal(await online('heavy'), false));
      for (const u of lightUsers) assert.equal(await online(u), true, `${u} holds less than heavy and stays`);
      // On and on: the others go too, the node never over its budget.
      for (let i = 0; i < 1500 && (await gauge()).shed < 7; i++) await send(lightUsers);
      assert.ok((await gauge()).shed >= 2);
      assert.ok(peak.bytes > budget / 2, `the run filled the budget (peak ${peak.bytes})`);
      // The reading client got every message and is still connected.
      await reader.next((f) => f.type === 'message' && f.data.n === sent - 1, 20_000);
      assert.equal(reader.messages().length, sent);
      assert.equal(await online('reader'), true);
      heavy.destroy();
      for (const l of lights) l.destroy();
    } finally {
      await t.close();
    }
  });
});

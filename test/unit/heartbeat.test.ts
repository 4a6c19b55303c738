import assert from 'node:assert/strict';
import { test } from 'node:test';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { HeartbeatWheel, LATE_MS, slotsFor, type Beating } from '../../src/session/heartbeat.js';

test('the wheel has a slot per 100 ms of the interval, within 16–600 (as protocol.md says)', () => {
  assert.equal(slotsFor(25_000), 250);
  assert.equal(slotsFor(1_000), 16);
  assert.equal(slotsFor(50), 16);
  assert.equal(slotsFor(3_600_000), 600);
});

test('every member is visited once per interval, spread over the ticks', async () => {
  const intervalMs = 3_200; // 32 slots, a tick every 100 ms
  const members: Beating[] = Array.from({ length: 320 }, () => ({ slot: -1 }));
  const visits = new Map<Beating, number>();
  const perTick: number[] = [];
  let lastTick = -1;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const start = Date.now();
  const wheel = new HeartbeatWheel<Beating>(intervalMs, (m, now) => {
    if (now !== lastTick) {
      perTick.push(0);
      lastTick = now;
    }
    perTick[perTick.length - 1]!++;
    visits.set(m, (visits.get(m) ?? 0) + 1);
    if (visits.size === members.length && [...visits.values()].every((n) => n >= 1)) done();
  });
  // The wheel's timer does not hold the process open; this one does, and bounds the test.
  const guard = setTimeout(done, intervalMs + 3_000);
  try {
    for (const m of members) wheel.add(m);
    await finished;
    assert.equal(visits.size, members.length, 'every member visited');
    assert.ok(Date.now() - start <= intervalMs + 1_000, 'all visited within about one interval');
    assert.ok(Math.max(...perTick) <= 10, `at most 10 visits per tick, got ${Math.max(...perTick)}`);
    assert.ok([...visits.values()].every((n) => n === 1), 'no member visited twice before all were visited once');
  } finally {
    clearTimeout(guard);
    wheel.stop();
  }
});

test('a tick more than LATE_MS late marks a stall: resumedAt is when the wheel ran again', async () => {
  const wheel = new HeartbeatWheel<Beating>(1_600, () => undefined); // 16 slots, a tick every 100 ms
  try {
    await new Promise((r) => setTimeout(r, 150));
    // Hold the process for three ticks, as a burst of synchronous work or a GC pause would.
    const end = Date.now() + LATE_MS * 3;
    while (Date.now() < end);
    const unblocked = Date.now();
    await new Promise((r) => setTimeout(r, 250));
    assert.ok(wheel.resumedAt >= unblocked, `resumedAt ${wheel.resumedAt} is at or after the end of the stall ${unblocked}`);
    assert.ok(wheel.resumedAt - unblocked < 250, 'noticed at the first tick after it');
  } finally {
    wheel.stop();
  }
});

test('a visit judges on what the clients sent: data that arrived while the node was stalled is read first', async () => {
  const order: string[] = [];
  const server = createServer((socket) => socket.on('data', () => order.push('data')));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  await new Promise((r) => setImmediate(r));
  const wheel = new HeartbeatWheel<Beating>(1_600, () => order.push('visit'));
  wheel.add({ slot: -1 });
  try {
    // The client's bytes reach the server's socket buffer while this process is blocked past a tick.
    client.write('pong');
    const end = Date.now() + 250;
    while (Date.now() < end);
    while (!order.includes('visit')) await new Promise((r) => setTimeout(r, 10));
    assert.equal(order[0], 'data', `read before judged: ${order.join(', ')}`);
  } finally {
    wheel.stop();
    client.destroy();
    server.close();
  }
});

test('a stall before the wheel has ticked at all counts too (a node frozen right after it started)', async () => {
  const wheel = new HeartbeatWheel<Beating>(1_600, () => undefined);
  try {
    const end = Date.now() + 1_300;
    while (Date.now() < end);
    const unblocked = Date.now();
    await new Promise((r) => setTimeout(r, 250));
    assert.ok(wheel.resumedAt >= unblocked, `resumedAt ${wheel.resumedAt}, stall ended ${unblocked}`);
  } finally {
    wheel.stop();
  }
});

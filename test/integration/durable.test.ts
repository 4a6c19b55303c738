import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_LIMITS } from '../../src/config.js';
import type { HistoryPage, WriteRequest, WriteResult } from '../../src/core/store.js';
import { SqliteStore } from '../../src/engines/sqlite/store.js';
import { APP_B, eventually, startTestNode, tempDir, type Client, type TestNode } from '../helpers.js';

/**
 * The real SQLite store with history reads held back until released: the
 * one interleaving that matters for recovery (messages stored and delivered
 * live while their history is being read) is otherwise a matter of luck.
 */
class SlowHistoryStore extends SqliteStore {
  gate: Promise<void> | undefined;
  /** Called when a history read reaches the gate. */
  onHistory: (() => void) | undefined;
  /** Called once, right after the next write is queued (so a history read released by it joins the same group commit). */
  onWrite: (() => void) | undefined;
  override async history(app: string, channel: string, since: string, limit: number): Promise<HistoryPage> {
    this.onHistory?.();
    await this.gate;
    return super.history(app, channel, since, limit);
  }
  override write(req: WriteRequest): Promise<WriteResult> {
    const done = super.write(req);
    const hook = this.onWrite;
    this.onWrite = undefined;
    hook?.();
    return done;
  }
}

const durableTo = (users: string[], data: unknown, extra: Record<string, unknown> = {}) => ({
  to: { users },
  data,
  durable: true,
  ...extra,
});

/** Publish durable messages one after another; returns their ids. */
async function publishMany(t: TestNode, body: (i: number) => unknown, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await t.publish(body(i));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  return ids;
}

describe('durable - inbox', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(() => t.close());

  test('inbox - an offline user gets the messages after welcome, oldest first, with the unread count', async () => {
    const ids = await publishMany(t, (i) => durableTo(['offline'], { i }, { event: 'note' }), 3);
    const c = await t.connect('offline');
    assert.equal(c.frames[0].type, 'welcome');
    assert.equal(c.frames[0].unread, 3);
    await c.next((f) => f.id === ids[2]);
    assert.deepEqual(
      c.messages(),
      ids.map((id, i) => ({ type: 'message', id, event: 'note', durable: true, data: { i } })),
    );
  });

  test('inbox - online devices get a durable message at once, then their unread count', async () => {
    const phone = await t.connect('online');
    const laptop = await t.connect('online');
    const r = await t.publish(durableTo(['online'], 'now'));
    for (const c of [phone, laptop]) {
      const m = await c.next((f) => f.type === 'message');
      assert.deepEqual(m, { type: 'message', id: r.body.id, durable: true, data: 'now' });
      const u = await c.next((f) => f.type === 'unread');
      assert.equal(u.count, 1);
      assert.ok(c.frames.indexOf(u) > c.frames.indexOf(m), 'unread follows the message');
    }
  });

  test('ack - acknowledged messages are not delivered again to any device, and unread falls everywhere', async () => {
    const ids = await publishMany(t, (i) => durableTo(['acker'], i), 3);
    const a = await t.connect('acker');
    const b = await t.connect('acker');
    await a.next((f) => f.id === ids[2]);
    await b.next((f) => f.id === ids[2]);
    const reply = await a.request({ type: 'ack', ids: [ids[0], ids[1]] });
    assert.deepEqual(reply, { type: 'reply', id: reply.id, removed: 2, unread: 1 });
    // The other device learns the new count.
    assert.equal((await b.next((f) => f.type === 'unread')).count, 1);
    assert.equal((await a.next((f) => f.type === 'unread')).count, 1);
    const again = await t.connect('acker');
    assert.equal(again.frames[0].unread, 1);
    await again.next((f) => f.id === ids[2]);
    await again.request({ type: 'ping' });
    assert.deepEqual(again.messages().map((m) => m.id), [ids[2]]);
    // upTo acknowledges the rest.
    assert.equal((await again.request({ type: 'ack', upTo: ids[2] })).unread, 0);
    const last = await t.connect('acker');
    assert.equal(last.frames[0].unread, 0);
    await last.request({ type: 'ping' });
    assert.equal(last.messages().length, 0);
  });

  test('ack - unacknowledged messages are delivered again on the next connection', async () => {
    const [id] = await publishMany(t, () => durableTo(['forgetful'], 'again'), 1);
    const first = await t.connect('forgetful');
    await first.next((f) => f.id === id);
    await first.close();
    const second = await t.connect('forgetful');
    assert.equal(second.frames[0].unread, 1);
    assert.equal((await second.next((f) => f.type === 'message')).id, id);
  });

  test('inbox - a large inbox comes in pages: the first after welcome, more on request', async () => {
    const n = 250;
    const ids = await publishMany(t, (i) => durableTo(['big'], { i }), n);
    const c = await t.connect('big');
    assert.equal(c.frames[0].unread, n);
    await c.next((f) => f.id === ids[99]);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().length, 100, 'one page of 100 after welcome');
    const p2 = await c.request({ type: 'inbox', after: ids[99] });
    assert.deepEqual(p2, { type: 'reply', id: p2.id, count: 100, unread: n, more: true });
    const p3 = await c.request({ type: 'inbox', after: ids[199], limit: 500 });
    assert.equal(p3.count, 50);
    assert.equal(p3.more, false);
    assert.deepEqual(c.messages().map((m) => m.id), ids);
    const bad = await c.request({ type: 'inbox', limit: 5000 });
    assert.equal(bad.code, 'invalid_request');
  });

  test('idempotency - a retried publish with the same key returns the same id and delivers once', async () => {
    const c = await t.connect('idem');
    const body = durableTo(['idem'], 'once', { idempotencyKey: 'order-17' });
    const first = await t.publish(body);
    const again = await t.publish(body);
    assert.equal(first.status, 202);
    assert.equal(again.status, 202);
    assert.equal(again.body.id, first.body.id);
    const res = await fetch(`${t.url}/v1/apps/acme/messages`, {
      method: 'POST',
      headers: { authorization: 'Bearer acme-key-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.headers.get('idempotent-replayed'), 'true');
    await c.next((f) => f.id === first.body.id);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().length, 1);
    const inbox = await t.api('GET', '/v1/apps/acme/users/idem/inbox');
    assert.equal(inbox.body.unread, 1);
    // The same key in another app is another message.
    const other = await t.publish(body, APP_B);
    assert.notEqual(other.body.id, first.body.id);
    // Ephemeral messages take keys too.
    const e1 = await t.publish({ to: { users: ['idem'] }, data: 'e', idempotencyKey: 'ping-1' });
    const e2 = await t.publish({ to: { users: ['idem'] }, data: 'e', idempotencyKey: 'ping-1' });
    assert.equal(e2.body.id, e1.body.id);
    await c.next((f) => f.id === e1.body.id);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().filter((m) => m.id === e1.body.id).length, 1);
  });

  test('backend - reads, acknowledges and deletes inbox messages on the user’s behalf', async () => {
    const ids = await publishMany(t, (i) => durableTo(['backend'], { i }, { ttl: 3600 }), 5);
    const device = await t.connect('backend');
    await device.next((f) => f.id === ids[4]);
    const page = await t.api('GET', '/v1/apps/acme/users/backend/inbox?limit=2');
    assert.equal(page.status, 200);
    assert.equal(page.body.unread, 5);
    assert.equal(page.body.more, true);
    assert.deepEqual(page.body.messages.map((m: any) => [m.id, m.data]), [[ids[0], { i: 0 }], [ids[1], { i: 1 }]]);
    assert.match(page.body.messages[0].publishedAt, /^\d{4}-\d\d-\d\dT/);
    assert.ok(Date.parse(page.body.messages[0].expiresAt) > Date.now() + 3500_000);
    const rest = await t.api('GET', `/v1/apps/acme/users/backend/inbox?after=${ids[1]}`);
    assert.deepEqual(rest.body.messages.map((m: any) => m.id), ids.slice(2));
    const ack = await t.api('POST', '/v1/apps/acme/users/backend/inbox/ack', { ids: [ids[0]] });
    assert.deepEqual(ack.body, { user: 'backend', removed: 1, unread: 4 });
    assert.equal((await device.next((f) => f.type === 'unread' && f.count === 4)).count, 4);
    const del = await t.api('DELETE', `/v1/apps/acme/users/backend/inbox/${ids[1]}`);
    assert.equal(del.body.unread, 3);
    const upTo = await t.api('POST', '/v1/apps/acme/users/backend/inbox/ack', { upTo: ids[2] });
    assert.equal(upTo.body.unread, 2);
    const all = await t.api('DELETE', '/v1/apps/acme/users/backend/inbox');
    assert.deepEqual(all.body, { user: 'backend', removed: 2, unread: 0 });
    await device.next((f) => f.type === 'unread' && f.count === 0);
    for (const [method, path, body] of [
      ['POST', '/v1/apps/acme/users/backend/inbox/ack', { ids: [] }],
      ['POST', '/v1/apps/acme/users/backend/inbox/ack', { ids: ['1'], upTo: '2' }],
      ['POST', '/v1/apps/acme/users/backend/inbox/ack', { upTo: 'abc' }],
      ['DELETE', '/v1/apps/acme/users/backend/inbox/12x', undefined],
      ['GET', '/v1/apps/acme/users/backend/inbox?limit=0', undefined],
      ['GET', '/v1/apps/acme/users/backend/inbox?after=-1', undefined],
    ] as const) {
      const r = await t.api(method, path, body);
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.equal(r.body.error.code, 'invalid_request');
    }
    // Another app's key cannot read this inbox.
    assert.equal((await t.api('GET', '/v1/apps/acme/users/backend/inbox', undefined, { key: APP_B.apiKey })).status, 401);
  });

  test('publish - durable options are checked', async () => {
    const cases: [unknown, string][] = [
      [{ to: { all: true }, data: 1, durable: true }, 'invalid_target'],
      [{ to: { users: ['u'] }, data: 1, ttl: 10 }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, durable: 'yes' }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, durable: true, ttl: 0 }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, durable: true, ttl: 1.5 }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, durable: true, ttl: 10 ** 9 }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, idempotencyKey: '' }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, idempotencyKey: 'x'.repeat(201) }, 'invalid_request'],
      [{ to: { users: ['u'] }, data: 1, idempotencyKey: 'a\nb' }, 'invalid_request'],
    ];
    for (const [body, code] of cases) {
      const r = await t.publish(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, code, JSON.stringify(body));
    }
  });

  test('frames - ack and inbox frames are checked', async () => {
    const c = await t.connect('framer');
    for (const frame of [
      { type: 'ack' },
      { type: 'ack', ids: [] },
      { type: 'ack', ids: ['1'], upTo: '1' },
      { type: 'ack', ids: [1] },
      { type: 'ack', upTo: '01' },
      { type: 'inbox', after: 'x' },
      { type: 'subscribe', channel: 'c', since: 5 },
    ]) {
      const r = await c.request(frame);
      assert.equal(r.type, 'error', JSON.stringify(frame));
      assert.equal(r.code, 'invalid_request', JSON.stringify(frame));
    }
  });
});

describe('durable - limits', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { inboxMaxMessages: 3 } });
  });
  after(() => t.close());

  test('caps - a full inbox drops its oldest messages', async () => {
    const ids = await publishMany(t, (i) => durableTo(['capped'], i), 5);
    const inbox = await t.api('GET', '/v1/apps/acme/users/capped/inbox');
    assert.deepEqual(inbox.body.messages.map((m: any) => m.id), ids.slice(2));
    assert.equal(inbox.body.unread, 3);
    const c = await t.connect('capped');
    assert.equal(c.frames[0].unread, 3);
    const metrics = await (await fetch(t.url + '/metrics')).text();
    assert.match(metrics, /silk_inbox_evicted_total 2/);
    assert.match(metrics, /silk_durable_messages_total 5/);
  });

  test('ttl - a message past its ttl is no longer delivered or counted', async () => {
    const r = await t.publish(durableTo(['brief'], 'soon gone', { ttl: 1 }));
    const kept = await t.publish(durableTo(['brief'], 'kept'));
    assert.equal((await t.api('GET', '/v1/apps/acme/users/brief/inbox')).body.unread, 2);
    // Time passing is the event here: poll until the ttl has run out.
    await eventually(async () => assert.equal((await t.api('GET', '/v1/apps/acme/users/brief/inbox')).body.unread, 1), 4000);
    const c = await t.connect('brief');
    assert.equal(c.frames[0].unread, 1);
    await c.next((f) => f.id === kept.body.id);
    assert.equal(c.messages().some((m) => m.id === r.body.id), false);
  });
});

describe('durable - channel recovery', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { historyMaxMessages: 50 } });
  });
  after(() => t.close());

  const toChannel = (ch: string, data: unknown) => ({ to: { channels: [ch] }, data, durable: true });

  async function subscribed(user: string, channel: string, since?: string): Promise<{ c: Client; reply: any }> {
    const c = await t.connect(user, { channels: ['*'] });
    const reply = await c.request(since === undefined ? { type: 'subscribe', channel } : { type: 'subscribe', channel, since });
    return { c, reply };
  }

  test('recovery - a resubscribe with since gets exactly what it missed, in order, then live ones', async () => {
    const { c: first } = await subscribed('r1', 'scores');
    const seen = await publishMany(t, (i) => toChannel('scores', { i }), 3);
    await first.next((f) => f.id === seen[2]);
    assert.equal((await first.next((f) => f.id === seen[0])).durable, true);
    await first.close();
    const missed = await publishMany(t, (i) => toChannel('scores', { i: 3 + i }), 5);
    // Ephemeral messages are not kept: they are not recovered.
    await t.publish({ to: { channels: ['scores'] }, data: 'ephemeral' });
    const { c, reply } = await subscribed('r1', 'scores', seen[2]);
    assert.deepEqual(reply, { type: 'reply', id: reply.id, recovered: true });
    assert.deepEqual(c.messages().map((m) => m.id), missed);
    assert.deepEqual(c.messages().map((m) => m.data.i), [3, 4, 5, 6, 7]);
    assert.ok(c.messages().every((m) => m.channel === 'scores' && m.durable === true));
    const live = await t.publish(toChannel('scores', { i: 8 }));
    await c.next((f) => f.id === live.body.id);
    assert.deepEqual(c.messages().map((m) => m.id), [...missed, live.body.id]);
  });

  test('recovery - resubscribing again and again under a stream of publishes leaves no gap and no duplicate', async () => {
    const { c: first } = await subscribed('r2', 'busy');
    const [start] = await publishMany(t, () => toChannel('busy', 'start'), 1);
    await first.next((f) => f.id === start);
    await first.close();
    // Four publishers at once, so writes, deliveries and history reads interleave.
    let publishing = true;
    const published: string[] = [];
    const publisher = async (): Promise<void> => {
      while (publishing) published.push((await t.publish(toChannel('busy', published.length))).body.id);
    };
    const publishers = [publisher(), publisher(), publisher(), publisher()];
    const received: string[] = [];
    let since = start!;
    for (let round = 0; round < 12; round++) {
      const { c, reply } = await subscribed('r2', 'busy', since);
      assert.equal(reply.recovered, true, `round ${round}`);
      const target = published.length + 3;
      await eventually(() => assert.ok(c.messages().length > 0 && published.length >= target));
      await c.close();
      const got = c.messages().map((m) => m.id);
      received.push(...got);
      since = got.at(-1)!;
    }
    publishing = false;
    await Promise.all(publishers);
    // On one node ids follow the order messages were stored, which is the delivery order.
    const expected = published.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)).slice(0, received.length);
    assert.deepEqual(received, expected);
  });

  test('recovery - recovered is false when history no longer reaches back', async () => {
    const { c: first } = await subscribed('r3', 'long');
    const [old] = await publishMany(t, () => toChannel('long', 'old'), 1);
    await first.next((f) => f.id === old);
    await first.close();
    // historyMaxMessages is 50: 60 more push the old one out.
    await publishMany(t, (i) => toChannel('long', i), 60);
    const { c, reply } = await subscribed('r3', 'long', old);
    assert.equal(reply.recovered, false);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().length, 0, 'nothing is replayed when recovery fails');
    const live = await t.publish(toChannel('long', 'live'));
    await c.next((f) => f.id === live.body.id);
    // An unknown id is not recovered either.
    const { reply: unknown } = await subscribed('r3', 'long', '1');
    assert.equal(unknown.recovered, false);
  });

  test('recovery - a channel the token does not allow is refused before any history is read', async () => {
    const c = await t.connect('r4', { channels: ['news'] });
    const r = await c.request({ type: 'subscribe', channel: 'scores', since: '1' });
    assert.equal(r.code, 'forbidden_channel');
  });
});

describe('durable - recovery racing live delivery', () => {
  let t: TestNode;
  let store: SlowHistoryStore;
  before(async () => {
    const dir = tempDir();
    store = new SlowHistoryStore({ dir, limits: DEFAULT_LIMITS });
    t = await startTestNode({ dataDir: dir }, { store });
  });
  after(() => t.close());

  test('recovery - messages stored while the history is read arrive once, in order, before later live ones', async () => {
    const c = await t.connect('racer', { channels: ['*'] });
    await c.subscribe('race');
    const [seen] = await publishMany(t, () => ({ to: { channels: ['race'] }, data: 'seen', durable: true }), 1);
    await c.next((f) => f.id === seen);
    await c.close();
    const missed = await publishMany(t, (i) => ({ to: { channels: ['race'] }, data: i, durable: true }), 3);
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const again = await t.connect('racer', { channels: ['*'] });
    const reply = again.request({ type: 'subscribe', channel: 'race', since: seen });
    // While the read waits, these are stored and delivered live: held back, and also in the history read.
    const during = await publishMany(t, (i) => ({ to: { channels: ['race'] }, data: 10 + i, durable: true }), 3);
    const ephemeral = await t.publish({ to: { channels: ['race'] }, data: 'ephemeral' });
    release();
    assert.equal((await reply).recovered, true);
    const after = await t.publish({ to: { channels: ['race'] }, data: 'after', durable: true });
    await again.next((f) => f.id === after.body.id);
    assert.deepEqual(again.messages().map((m) => m.id), [...missed, ...during, ephemeral.body.id, after.body.id]);
  });

  test('recovery - a message stored in the same commit as the history read arrives once, not again live', async () => {
    const c = await t.connect('same-turn', { channels: ['*'] });
    await c.subscribe('turn');
    const [seen] = await publishMany(t, () => ({ to: { channels: ['turn'] }, data: 'seen', durable: true }), 1);
    await c.next((f) => f.id === seen);
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const waiting = new Promise<void>((r) => (store.onHistory = r));
    const reply = c.request({ type: 'subscribe', channel: 'turn', since: seen });
    await waiting;
    store.onHistory = undefined;
    // The read is released as the next message is queued for writing: both run in one group
    // commit, so the read finds the message while its live copy is still on its way out.
    store.onWrite = release;
    const m = await t.publish({ to: { channels: ['turn'] }, data: 'm', durable: true });
    assert.equal((await reply).recovered, true);
    const after = await t.publish({ to: { channels: ['turn'] }, data: 'after' });
    await c.next((f) => f.id === after.body.id);
    assert.deepEqual(c.messages().map((f) => f.id), [seen, m.body.id, after.body.id]);
  });
});

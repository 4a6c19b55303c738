import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { APP_B, startTestNode, type TestNode } from '../helpers.js';

describe('delivery', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(() => t.close());

  test('welcome - carries connection, user and heartbeat', async () => {
    const c = await t.connect('welcome-user');
    const w = c.frames[0];
    assert.equal(w.type, 'welcome');
    assert.equal(w.user, 'welcome-user');
    assert.equal(typeof w.connection, 'string');
    assert.equal(w.heartbeat, 25);
    await c.close();
  });

  test('to users - every device of the user gets it, others do not', async () => {
    const phone = await t.connect('u1');
    const laptop = await t.connect('u1');
    const other = await t.connect('u2');
    const res = await t.publish({ to: { users: ['u1'] }, data: { text: 'hi' }, event: 'greet' });
    assert.equal(res.status, 202);
    assert.match(res.body.id, /^\d+$/);
    for (const c of [phone, laptop]) {
      const m = await c.next((f) => f.type === 'message');
      assert.deepEqual(m, { type: 'message', id: res.body.id, event: 'greet', data: { text: 'hi' } });
    }
    await other.request({ type: 'ping' });
    assert.equal(other.messages().length, 0);
  });

  test('to a list of users - each listed user gets one copy', async () => {
    const a = await t.connect('list-a');
    const b = await t.connect('list-b');
    const c = await t.connect('list-c');
    const res = await t.publish({ to: { users: ['list-a', 'list-b', 'list-a', 'nobody'] }, data: 1 });
    assert.equal(res.status, 202);
    await a.next((f) => f.id === res.body.id);
    await b.next((f) => f.id === res.body.id);
    await a.request({ type: 'ping' });
    assert.equal(a.messages().length, 1);
    await c.request({ type: 'ping' });
    assert.equal(c.messages().length, 0);
  });

  test('to channels - subscribers get it with the channel name, in publish order', async () => {
    const s1 = await t.connect('sub1', { channels: ['news', 'sport'] });
    const s2 = await t.connect('sub2', { channels: ['*'] });
    const outsider = await t.connect('sub3', { channels: ['*'] });
    assert.deepEqual(await s1.subscribe('news'), { type: 'reply', id: 1001 });
    await s1.subscribe('sport');
    await s2.subscribe('sport');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await t.publish({ to: { channels: ['sport'] }, data: i })).body.id);
    const both = await t.publish({ to: { channels: ['news', 'sport'] }, data: 'both' });
    await s1.next((f) => f.id === both.body.id && f.channel === 'news');
    await s1.next((f) => f.id === both.body.id && f.channel === 'sport');
    await s2.next((f) => f.id === both.body.id);
    const sport = s2.messages().filter((m) => m.channel === 'sport');
    assert.deepEqual(sport.map((m) => m.data), [...Array.from({ length: 20 }, (_, i) => i), 'both']);
    assert.deepEqual(sport.slice(0, 20).map((m) => m.id), ids);
    assert.deepEqual(
      ids.map(BigInt).map((x, i, a) => i === 0 || x > a[i - 1]!),
      ids.map(() => true),
      'ids increase',
    );
    assert.equal(s2.messages().some((m) => m.channel === 'news'), false);
    await outsider.request({ type: 'ping' });
    assert.equal(outsider.messages().length, 0);
  });

  test('unsubscribe - no more messages from that channel', async () => {
    const c = await t.connect('unsub', { channels: ['*'] });
    await c.subscribe('u-ch');
    const first = await t.publish({ to: { channels: ['u-ch'] }, data: 'one' });
    await c.next((f) => f.id === first.body.id);
    assert.equal((await c.request({ type: 'unsubscribe', channel: 'u-ch' })).type, 'reply');
    await t.publish({ to: { channels: ['u-ch'] }, data: 'two' });
    await c.request({ type: 'ping' });
    assert.deepEqual(c.messages().map((m) => m.data), ['one']);
    const ch = await t.api('GET', '/v1/apps/acme/channels/u-ch');
    assert.deepEqual(ch.body, { channel: 'u-ch', subscribers: 0 });
  });

  test('to all - every connection of the app, none of another app', async () => {
    const a1 = await t.connect('all-1');
    const a2 = await t.connect('all-2');
    const b1 = await t.connect('all-1', { app: APP_B });
    const res = await t.publish({ to: { all: true }, data: 'everyone' });
    await a1.next((f) => f.id === res.body.id);
    await a2.next((f) => f.id === res.body.id);
    await b1.request({ type: 'ping' });
    assert.equal(b1.messages().length, 0);
  });

  test('apps - same user and channel names in two apps never cross', async () => {
    const a = await t.connect('same', { channels: ['*'] });
    const b = await t.connect('same', { app: APP_B, channels: ['*'] });
    await a.subscribe('shared');
    await b.subscribe('shared');
    const ra = await t.publish({ to: { channels: ['shared'] }, data: 'A' });
    const rb = await t.publish({ to: { users: ['same'] }, data: 'B' }, APP_B);
    await a.next((f) => f.id === ra.body.id);
    await b.next((f) => f.id === rb.body.id);
    await a.request({ type: 'ping' });
    await b.request({ type: 'ping' });
    assert.deepEqual(a.messages().map((m) => m.data), ['A']);
    assert.deepEqual(b.messages().map((m) => m.data), ['B']);
    const statsB = await t.api('GET', '/v1/apps/globex/channels/shared', undefined, { key: APP_B.apiKey });
    assert.equal(statsB.body.subscribers, 1);
  });

  test('channel permissions - token patterns decide, no claim allows nothing', async () => {
    const none = await t.connect('perm-none');
    const r0 = await none.subscribe('news');
    assert.equal(r0.type, 'error');
    assert.equal(r0.code, 'forbidden_channel');
    const some = await t.connect('perm-some', { channels: ['news', 'match:*'] });
    assert.equal((await some.subscribe('news')).type, 'reply');
    assert.equal((await some.subscribe('match:17')).type, 'reply');
    assert.equal((await some.subscribe('newsroom')).code, 'forbidden_channel');
    assert.equal((await some.subscribe('matc')).code, 'forbidden_channel');
    const res = await t.publish({ to: { channels: ['match:17'] }, data: 'goal' });
    await some.next((f) => f.id === res.body.id && f.channel === 'match:17');
  });

  test('presence - users, channels and stats answer for the app', async () => {
    const c1 = await t.connect('pres', { channels: ['*'] });
    const c2 = await t.connect('pres');
    await c1.subscribe('pres-ch');
    const u = await t.api('GET', '/v1/apps/acme/users/pres');
    assert.equal(u.status, 200);
    assert.equal(u.body.online, true);
    assert.deepEqual(
      u.body.devices.map((d: any) => d.connection).sort(),
      [c1.frames[0].connection, c2.frames[0].connection].sort(),
    );
    assert.equal(u.body.devices[0].transport, 'websocket');
    assert.ok(!Number.isNaN(Date.parse(u.body.devices[0].since)));
    assert.deepEqual((await t.api('GET', '/v1/apps/acme/channels/pres-ch')).body, { channel: 'pres-ch', subscribers: 1 });
    const s = await t.api('GET', '/v1/apps/acme/stats');
    assert.equal(s.body.app, 'acme');
    for (const k of ['connections', 'users', 'channels', 'subscriptions', 'messagesIn', 'messagesOut']) {
      assert.equal(typeof s.body[k], 'number', k);
    }
    assert.ok(s.body.connections >= 2);
    assert.ok(s.body.messagesIn > 0 && s.body.messagesOut > 0);
    const off = await t.api('GET', '/v1/apps/acme/users/nobody-here');
    assert.deepEqual(off.body, { user: 'nobody-here', online: false, devices: [] });
  });

  test('disconnect - every device of the user is closed with 4003', async () => {
    const d1 = await t.connect('kick');
    const d2 = await t.connect('kick');
    const keep = await t.connect('stay');
    const res = await t.api('POST', '/v1/apps/acme/users/kick/disconnect');
    assert.deepEqual(res.body, { user: 'kick', disconnected: 2 });
    assert.equal((await d1.closed).code, 4003);
    assert.equal((await d2.closed).code, 4003);
    assert.equal((await t.api('GET', '/v1/apps/acme/users/kick')).body.online, false);
    assert.equal((await keep.request({ type: 'ping' })).type, 'reply');
  });

  test('client ping - answered with pong, or a reply when it has an id', async () => {
    const c = await t.connect('pinger');
    c.send({ type: 'ping' });
    await c.next((f) => f.type === 'pong');
    c.send({ type: 'ping', id: 7 });
    assert.deepEqual(await c.next((f) => f.id === 7), { type: 'reply', id: 7 });
  });

  test('batch - many messages in one request are delivered in order; one bad message fails the whole batch', async () => {
    const c = await t.connect('batcher', { channels: ['*'] });
    await c.subscribe('batch-ch');
    const r = await t.api('POST', '/v1/apps/acme/messages/batch', {
      messages: [
        { to: { users: ['batcher'] }, data: 1 },
        { to: { channels: ['batch-ch'] }, data: 2, event: 'e' },
        { to: { users: ['batcher'] }, data: 3, durable: true, idempotencyKey: 'b-1' },
      ],
    });
    assert.equal(r.status, 202);
    assert.equal(r.body.ids.length, 3);
    assert.equal(r.body.duplicates, 0);
    assert.ok(r.body.ids.every((id: string, i: number, a: string[]) => i === 0 || BigInt(id) > BigInt(a[i - 1]!)));
    await c.next((f) => f.id === r.body.ids[2]);
    assert.deepEqual(c.messages().map((m) => m.data), [1, 2, 3]);
    const again = await t.api('POST', '/v1/apps/acme/messages/batch', { messages: [{ to: { users: ['batcher'] }, data: 3, durable: true, idempotencyKey: 'b-1' }] });
    assert.deepEqual(again.body, { ids: [r.body.ids[2]], duplicates: 1 });
    const bad = await t.api('POST', '/v1/apps/acme/messages/batch', {
      messages: [{ to: { users: ['batcher'] }, data: 'never' }, { to: { users: ['batcher'] } }],
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^messages\[1\]: /);
    for (const body of [{}, { messages: [] }, { messages: 'x' }, { messages: [], extra: 1 }]) {
      assert.equal((await t.api('POST', '/v1/apps/acme/messages/batch', body)).status, 400);
    }
    await c.request({ type: 'ping' });
    assert.equal(c.messages().some((m) => m.data === 'never'), false);
  });

  test('order - channel, user and all messages reach a connection in the order they were accepted', async () => {
    const a = await t.connect('mixer', { channels: ['*'] });
    const b = await t.connect('mixer-2', { channels: ['*'] });
    await a.subscribe('mix-1');
    await a.subscribe('mix-2');
    await b.subscribe('mix-1');
    // Runs of one channel (which join one fan-out batch) broken by the other channel, users and all.
    const plan: unknown[] = [];
    const targets = [
      { channels: ['mix-1'] },
      { channels: ['mix-1'] },
      { users: ['mixer'] },
      { channels: ['mix-1'] },
      { channels: ['mix-2'] },
      { channels: ['mix-1'] },
      { all: true },
      { channels: ['mix-1', 'mix-2'] },
      { users: ['mixer', 'mixer-2'] },
      { channels: ['mix-1'] },
    ];
    for (let i = 0; i < 40; i++) plan.push({ to: targets[i % targets.length], data: i });
    const r = await t.api('POST', '/v1/apps/acme/messages/batch', { messages: plan });
    assert.equal(r.status, 202);
    // Single publishes in flight together, each its own request.
    const singles = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.publish({ to: targets[i % targets.length], data: 100 + i })),
    );
    assert.ok(singles.every((s) => s.status === 202));
    const last = [...r.body.ids, ...singles.map((s) => s.body.id)].sort((x: string, y: string) => (BigInt(x) < BigInt(y) ? -1 : 1)).at(-1);
    await a.next((f) => f.id === last);
    await b.request({ type: 'ping' });
    for (const c of [a, b]) {
      const ids = c.messages().map((m) => BigInt(m.id));
      assert.ok(ids.length > 0);
      assert.ok(ids.every((id, i) => i === 0 || id >= ids[i - 1]!), 'ids never go down');
    }
    // Each connection got exactly its copies: a is in both channels, b only in mix-1.
    const copies = (c: typeof a, wanted: (to: any) => number): void => {
      const expected = [...plan, ...singles.map((_, i) => ({ to: targets[i % targets.length], data: 100 + i }))].reduce(
        (n: number, m: any) => n + wanted(m.to),
        0,
      );
      assert.equal(c.messages().length, expected);
    };
    copies(a, (to) => (to.all ? 1 : to.users ? Number(to.users.includes('mixer')) : to.channels.length));
    copies(b, (to) => (to.all ? 1 : to.users ? Number(to.users.includes('mixer-2')) : Number(to.channels.includes('mix-1'))));
  });
});

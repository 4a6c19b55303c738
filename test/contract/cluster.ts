/**
 * The cluster contract: what every cluster engine must do for its users
 * (routing to the nodes that need a message, presence and stats for the
 * whole cluster, durable delivery and recovery across nodes, ids, the
 * backend's disconnect). It runs on three nodes on Redis
 * (test/integration/cluster.test.ts) and on three nodes in one process on
 * the memory network (test/integration/cluster-memory.test.ts); call it
 * inside a describe that starts them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { subscribers, type ClusterNode } from '../cluster.js';
import { APP_B, eventually } from '../helpers.js';

export function clusterContract(nodes: () => readonly [ClusterNode, ClusterNode, ClusterNode]): void {
  let n1: ClusterNode;
  let n2: ClusterNode;
  let n3: ClusterNode;
  const each = (name: string, fn: () => Promise<void>): void => {
    test(name, async () => {
      [n1, n2, n3] = nodes();
      await fn();
    });
  };
  each('nodes - every node registers and GET /v1/nodes lists the live ones', async () => {
    // Each node refreshes its view at its own beat (a third of nodeTtlSeconds).
    for (const n of [n1, n2, n3]) await eventually(async () => assert.equal((await n.api('GET', '/v1/nodes')).body.nodes.length, 3));
    const { nodes } = (await n3.api('GET', '/v1/nodes')).body;
    assert.deepEqual(nodes.map((n: { url: string }) => n.url).sort(), [n1.url, n2.url, n3.url].sort());
    for (const n of nodes) {
      assert.deepEqual(n.roles, ['gateway', 'api']);
      assert.match(n.started, /^\d{4}-/);
      assert.equal(typeof n.load, 'number');
    }
  });

  each('channels - subscribers on any node get a message published through another, in publish order', async () => {
    const a = await n1.connect('ch-a', { channels: ['*'] });
    const b = await n2.connect('ch-b', { channels: ['*'] });
    await a.subscribe('news');
    await b.subscribe('news');
    await subscribers(n3, 'news', 2);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await n3.publish({ to: { channels: ['news'] }, data: i })).body.id);
    for (const c of [a, b]) {
      await c.next((f) => f.id === ids[19]);
      assert.deepEqual(c.messages().map((m) => m.data), Array.from({ length: 20 }, (_, i) => i));
    }
  });

  each('channels - a channel message travels only to nodes with subscribers', async () => {
    const c = await n1.connect('only-n1', { channels: ['*'] });
    await c.subscribe('quiet');
    await subscribers(n3, 'quiet', 1);
    const before2 = await n2.metric('silk_bus_received_total');
    const before1 = await n1.metric('silk_bus_received_total');
    const last = await (async () => {
      let id = '';
      for (let i = 0; i < 10; i++) id = (await n3.publish({ to: { channels: ['quiet'] }, data: i })).body.id;
      return id;
    })();
    await c.next((f) => f.id === last);
    assert.equal((await n1.metric('silk_bus_received_total')) - before1, 10);
    assert.equal(await n2.metric('silk_bus_received_total'), before2, 'node 2 has no subscriber and got nothing');
  });

  each('users - a user on two nodes gets one copy per device; other users and nodes get nothing', async () => {
    const d1 = await n1.connect('multi');
    const d2 = await n1.connect('multi');
    const d3 = await n2.connect('multi');
    const other = await n3.connect('someone-else');
    await eventually(async () => assert.equal((await n3.api('GET', '/v1/apps/acme/users/multi')).body.devices.length, 3));
    const before3 = await n3.metric('silk_bus_received_total');
    const r = await n3.publish({ to: { users: ['multi'] }, data: 'hi', event: 'greet' });
    for (const d of [d1, d2, d3]) await d.next((f) => f.id === r.body.id);
    for (const d of [d1, d2, d3, other]) await d.request({ type: 'ping' });
    assert.deepEqual([d1, d2, d3].map((d) => d.messages().length), [1, 1, 1]);
    assert.equal(other.messages().length, 0);
    assert.equal(await n3.metric('silk_bus_received_total'), before3, 'node 3 holds no device of the user');
    const devices = (await n2.api('GET', '/v1/apps/acme/users/multi')).body.devices;
    assert.deepEqual(devices.map((d: { transport: string }) => d.transport), ['websocket', 'websocket', 'websocket']);
  });

  each('all - a broadcast reaches every connection of the app on every node, and no other app', async () => {
    const a = await n1.connect('b-a');
    const b = await n2.connect('b-b');
    const foreign = await n2.connect('b-x', { app: APP_B });
    await eventually(async () => assert.ok((await n3.api('GET', '/v1/apps/acme/stats')).body.connections >= 2));
    const r = await n3.publish({ to: { all: true }, data: 'everyone' });
    await a.next((f) => f.id === r.body.id);
    await b.next((f) => f.id === r.body.id);
    await foreign.request({ type: 'ping' });
    assert.equal(foreign.messages().length, 0);
  });

  each('durable - stored through one node, delivered on another after connect; an ack there updates every device', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await n1.publish({ to: { users: ['roamer'] }, data: i, durable: true })).body.id);
    const phone = await n2.connect('roamer');
    assert.equal(phone.frames[0].unread, 3);
    await phone.next((f) => f.id === ids[2]);
    const laptop = await n3.connect('roamer');
    const reply = await phone.request({ type: 'ack', ids: [ids[0]] });
    assert.equal(reply.unread, 2);
    await laptop.next((f) => f.type === 'unread' && f.count === 2);
    // Idempotency holds across nodes: the same key through another node is the same message.
    const k1 = await n1.publish({ to: { users: ['roamer'] }, data: 'once', durable: true, idempotencyKey: 'x-1' });
    const k2 = await n2.publish({ to: { users: ['roamer'] }, data: 'once', durable: true, idempotencyKey: 'x-1' });
    assert.equal(k2.body.id, k1.body.id);
    assert.equal(k2.headers.get('idempotent-replayed'), 'true');
    // Sent together through three nodes (a backend retrying while its first try is still out): stored and delivered once;
    // the others are repeats, or refused as in progress.
    const together = await Promise.all([n1, n2, n3].map((n) => n.publish({ to: { users: ['roamer'] }, data: 'race', durable: true, idempotencyKey: 'x-2' })));
    assert.ok(together.every((r) => r.status === 202 || (r.status === 409 && r.body.error.code === 'idempotency_key_in_use')), JSON.stringify(together.map((r) => r.body)));
    const firsts = together.filter((r) => r.status === 202 && r.headers.get('idempotent-replayed') !== 'true');
    assert.equal(firsts.length, 1);
    const raced = firsts[0]!.body.id;
    assert.ok(together.every((r) => r.status === 409 || r.body.id === raced));
    const later = await n3.publish({ to: { users: ['roamer'] }, data: 'race', durable: true, idempotencyKey: 'x-2' });
    assert.deepEqual([later.status, later.body.id, later.headers.get('idempotent-replayed')], [202, raced, 'true']);
    // In one batch, a key used by an earlier message makes the later one its repeat.
    const batch = await n1.api('POST', '/v1/apps/acme/messages/batch', {
      messages: [0, 1].map((i) => ({ to: { users: ['roamer'] }, data: i, durable: true, idempotencyKey: 'x-3' })),
    });
    assert.equal(batch.status, 202);
    assert.equal(batch.body.ids[1], batch.body.ids[0]);
    assert.equal(batch.body.duplicates, 1);
    await phone.next((f) => f.id === batch.body.ids[0]);
    await phone.request({ type: 'ping' });
    assert.equal(phone.messages().filter((m) => m.id === raced).length, 1, 'the raced message arrived once');
    assert.equal(phone.messages().filter((m) => m.id === batch.body.ids[0]).length, 1);
  });

  each('durable - channel recovery across nodes: resubscribe elsewhere with since gets what was missed', async () => {
    const first = await n1.connect('rec', { channels: ['*'] });
    await first.subscribe('hist');
    await subscribers(n3, 'hist', 1);
    const [seen] = [(await n3.publish({ to: { channels: ['hist'] }, data: 0, durable: true })).body.id];
    await first.next((f) => f.id === seen);
    await first.close();
    const missed: string[] = [];
    for (let i = 1; i <= 5; i++) missed.push((await n2.publish({ to: { channels: ['hist'] }, data: i, durable: true })).body.id);
    const again = await n3.connect('rec', { channels: ['*'] });
    const reply = await again.request({ type: 'subscribe', channel: 'hist', since: seen });
    assert.equal(reply.recovered, true);
    assert.deepEqual(again.messages().map((m) => m.id), missed);
  });

  each('ids - unique across nodes and increasing within each', async () => {
    const per: string[][] = [[], [], []];
    await Promise.all(
      [n1, n2, n3].map(async (n, i) => {
        for (let k = 0; k < 30; k++) per[i]!.push((await n.publish({ to: { users: ['nobody'] }, data: k })).body.id);
      }),
    );
    for (const list of per) assert.ok(list.every((id, i) => i === 0 || BigInt(id) > BigInt(list[i - 1]!)));
    const all = per.flat();
    assert.equal(new Set(all).size, all.length);
  });

  each('stats - answer for the whole cluster', async () => {
    const view = async (n: ClusterNode): Promise<number> => (await n.api('GET', '/v1/apps/globex/stats', undefined, APP_B)).body.connections;
    // Start from a settled count: every node's view agrees once each has beaten since the last change.
    let before = 0;
    await eventually(async () => {
      const views = await Promise.all([n1, n2, n3].map(view));
      assert.ok(views.every((v) => v === views[0]), `views ${views}`);
      before = views[0]!;
    }, 5000);
    await n2.connect('s1', { app: APP_B });
    await n3.connect('s2', { app: APP_B });
    // Other nodes' counts arrive with their next heartbeat (a third of nodeTtlSeconds).
    await eventually(async () => {
      const now = (await n1.api('GET', '/v1/apps/globex/stats', undefined, APP_B)).body.connections;
      assert.equal(now, before + 2, `connections ${now}, before ${before}`);
    }, 5000);
  });

  each('disconnect - the backend disconnects a user on every node', async () => {
    const a = await n1.connect('kicked');
    const b = await n2.connect('kicked');
    await eventually(async () => assert.equal((await n3.api('GET', '/v1/apps/acme/users/kicked')).body.devices.length, 2));
    const r = await n3.api('POST', '/v1/apps/acme/users/kicked/disconnect');
    assert.deepEqual(r.body, { user: 'kicked', disconnected: 2 });
    assert.equal((await a.closed).code, 4003);
    assert.equal((await b.closed).code, 4003);
  });

  each('channels - durable messages published through every node at once reach every subscriber in the history order', async () => {
    const subs = await Promise.all([n1, n2, n3].map((n, i) => n.connect(`ord-${i}`, { channels: ['*'] })));
    for (const s of subs) await s.subscribe('ordered');
    await subscribers(n1, 'ordered', 3);
    const first = (await n1.publish({ to: { channels: ['ordered'] }, data: 'start', durable: true })).body.id;
    const sent = await Promise.all([n1, n2, n3].flatMap((n) => Array.from({ length: 10 }, (_, i) => n.publish({ to: { channels: ['ordered'] }, data: i, durable: true }))));
    const ids = sent.map((r) => r.body.id as string);
    // The history's order, as a client that resumes from the first message recovers it.
    const late = await n2.connect('ord-late', { channels: ['*'] });
    assert.equal((await late.request({ type: 'subscribe', channel: 'ordered', since: first })).recovered, true);
    const history = late.messages().map((m) => m.id as string);
    assert.deepEqual([...history].sort(), [...ids].sort());
    for (const s of subs) {
      await eventually(() => assert.equal(s.messages().length, 31));
      assert.deepEqual(s.messages().map((m) => m.id), [first, ...history]);
    }
  });
}

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { SilkClient } from '../../sdk/src/node.js';
import { subscribers, SilkCluster, type SilkProc } from '../cluster.js';
import { APP_A, APP_B, eventually } from '../helpers.js';
import { RedisServer } from '../redis.js';
import { COMMAND_TIMEOUT_MS } from '../../src/engines/redis/client.js';
import { keys } from '../../src/engines/redis/keys.js';

describe('cluster on one Redis', { timeout: 120_000 }, () => {
  let redis: RedisServer;
  let cluster: SilkCluster;
  let n1: SilkProc;
  let n2: SilkProc;
  let n3: SilkProc;
  before(async () => {
    redis = await RedisServer.start({ persist: true });
    cluster = new SilkCluster(redis.url);
    [n1, n2, n3] = (await cluster.start(3)) as [SilkProc, SilkProc, SilkProc];
  });
  after(async () => {
    await cluster.close();
    await redis.destroy();
  });

  test('nodes - every node registers and GET /v1/nodes lists the live ones', async () => {
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

  test('channels - subscribers on any node get a message published through another, in publish order', async () => {
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

  test('channels - a channel message travels only to nodes with subscribers', async () => {
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

  test('users - a user on two nodes gets one copy per device; other users and nodes get nothing', async () => {
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

  test('all - a broadcast reaches every connection of the app on every node, and no other app', async () => {
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

  test('durable - stored through one node, delivered on another after connect; an ack there updates every device', async () => {
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

  test('durable - channel recovery across nodes: resubscribe elsewhere with since gets what was missed', async () => {
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

  test('ids - unique across nodes and increasing within each', async () => {
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

  test('stats - answer for the whole cluster', async () => {
    const view = async (n: SilkProc): Promise<number> => (await n.api('GET', '/v1/apps/globex/stats', undefined, APP_B)).body.connections;
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

  test('disconnect - the backend disconnects a user on every node', async () => {
    const a = await n1.connect('kicked');
    const b = await n2.connect('kicked');
    await eventually(async () => assert.equal((await n3.api('GET', '/v1/apps/acme/users/kicked')).body.devices.length, 2));
    const r = await n3.api('POST', '/v1/apps/acme/users/kicked/disconnect');
    assert.deepEqual(r.body, { user: 'kicked', disconnected: 2 });
    assert.equal((await a.closed).code, 4003);
    assert.equal((await b.closed).code, 4003);
  });

  test('redis down - durable publishes fail fast with 503, clients stay connected, and it all comes back', async () => {
    const c = await n1.connect('survivor', { channels: ['*'] });
    await c.subscribe('after');
    await subscribers(n2, 'after', 1);
    await redis.stop();
    await eventually(async () => assert.equal((await n2.api('GET', '/readyz')).status, 503), 5000);
    const t0 = Date.now();
    const r = await n2.publish({ to: { users: ['survivor'] }, data: 'x', durable: true });
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'store_unavailable');
    assert.ok(Date.now() - t0 < 2000, 'failed fast');
    for (const path of ['/v1/apps/acme/stats', '/v1/apps/acme/users/survivor', '/v1/apps/acme/channels/after', '/v1/nodes']) {
      const p = await n2.api('GET', path);
      assert.equal(p.status, 503, path);
      assert.equal(p.body.error.code, 'store_unavailable', path);
    }
    assert.equal((await c.request({ type: 'ping' })).type, 'reply', 'the device is still connected');
    await redis.restart();
    await eventually(async () => assert.equal((await n2.api('GET', '/readyz')).status, 200), 10_000);
    // Subscriptions and routes are back: live delivery across nodes works again.
    await eventually(async () => {
      const p = await n2.publish({ to: { channels: ['after'] }, data: 'back' });
      assert.equal(p.status, 202);
      await c.next((f) => f.id === p.body.id, 300);
    }, 10_000);
    const u = await n3.publish({ to: { users: ['survivor'] }, data: 'routed', durable: true });
    await c.next((f) => f.id === u.body.id);
  });

  test('node frozen - longer than nodeTtlSeconds and its heartbeat: it keeps its users and its clients, and messages sent meanwhile arrive when it wakes', async () => {
    // A long pause (a VM stall, a GC storm) looks like death to the others. It is also longer than
    // 1.5 heartbeats (1 s here): the silence of its clients meanwhile is the node's own, not theirs.
    const sleeper = await cluster.add();
    const c = await sleeper.connect('dormouse', { channels: ['*'] });
    const listed = async (): Promise<boolean> =>
      ((await n3.api('GET', '/v1/nodes')).body.nodes as { url: string }[]).some((n) => n.url === sleeper.url);
    await eventually(async () => assert.ok(await listed()));
    // Before the freeze: n3 sees the device's route (written just after welcome, see cluster.md) and the
    // heartbeat runs.
    await eventually(async () => assert.equal((await n3.api('GET', '/v1/apps/acme/users/dormouse')).body.devices.length, 1));
    await c.next((f) => f.type === 'ping', 5000);
    sleeper.child.kill('SIGSTOP');
    let frozen = true;
    try {
      // Within nodeTtlSeconds (2 s) and a beat, n3 no longer counts it as live.
      await eventually(async () => assert.ok(!(await listed())), 6000);
      const during = await n3.publish({ to: { users: ['dormouse'] }, data: 'while frozen' });
      assert.equal(during.status, 202);
      sleeper.child.kill('SIGCONT');
      frozen = false;
      await c.next((f) => f.id === during.body.id, 10_000);
      // Its route is still there: later messages reach it too.
      const after = await n3.publish({ to: { users: ['dormouse'] }, data: 'awake' });
      await c.next((f) => f.id === after.body.id);
      await eventually(async () => assert.ok(await listed()));
      // Two heartbeats after waking, the client (which answers pings) is still connected.
      const pings = (): number => c.frames.filter((f) => f.type === 'ping').length;
      const seen = pings();
      await eventually(() => assert.ok(pings() >= seen + 2), 5000);
      assert.equal(c.ws.readyState, WebSocket.OPEN, 'not closed as heartbeat_timeout');
    } finally {
      if (frozen) sleeper.child.kill('SIGCONT');
      await c.close();
      // Leave the cluster as the other tests expect it: three nodes.
      const gone = once(sleeper.child, 'exit');
      sleeper.child.kill('SIGTERM');
      await gone;
    }
  });

  test('redis stalls - a durable publish gets 503 once the command timeout passes, and works again when Redis answers', async () => {
    const c = await n1.connect('patient', { channels: ['*'] });
    // n2 has just published, so it has a fresh block of ids in hand. After a quiet second it would
    // first try to lease a new block, and wait for that too (see cluster.md, "Redis is unreachable").
    assert.equal((await n2.publish({ to: { users: ['patient'] }, data: 'warm' })).status, 202);
    const token = await signToken({ app: APP_A.id, user: 'newcomer', secret: APP_A.secret, ttlSeconds: 3600 });
    redis.pause();
    let resumed = false;
    try {
      const t0 = Date.now();
      // A device connecting meanwhile: its handshake completes at once, and `welcome` comes when the inbox read gives up.
      const late = new WebSocket(`${n1.ws}?token=${token}`);
      const frames: any[] = [];
      late.on('message', (d) => {
        const f = JSON.parse(d.toString());
        if (f.type === 'ping') late.send('{"type":"pong"}');
        else frames.push(f);
      });
      const opened = once(late, 'open').then(() => Date.now() - t0);
      const r = await n2.publish({ to: { users: ['patient'] }, data: 'stalled', durable: true });
      const waited = Date.now() - t0;
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'store_unavailable');
      assert.ok((await opened) < COMMAND_TIMEOUT_MS / 2, `the handshake took ${await opened} ms`);
      // The heartbeat (1 s here) does not count the wait for welcome as the client's silence.
      await eventually(() => assert.deepEqual(frames.map((f) => f.type), ['welcome', 'error']), 2 * COMMAND_TIMEOUT_MS);
      assert.equal(frames[1].code, 'store_unavailable');
      assert.equal(late.readyState, WebSocket.OPEN);
      late.terminate();
      // Its command may be pipelined behind an earlier batch that waits too (a lease of ids, a heartbeat): then it goes out,
      // and times out, when that batch has given up.
      assert.ok(waited >= COMMAND_TIMEOUT_MS - 100 && waited < 2 * COMMAND_TIMEOUT_MS + 2000, `answered after ${waited} ms`);
      assert.equal((await c.request({ type: 'ping' })).type, 'reply', 'the device is still connected');
      redis.resume();
      resumed = true;
      // The stalled write may still have been applied when Redis woke: a retry with an idempotencyKey is the safe way.
      const u = await n3.publish({ to: { users: ['patient'] }, data: 'after', durable: true });
      assert.equal(u.status, 202);
      await c.next((f) => f.id === u.body.id);
    } finally {
      if (!resumed) redis.resume();
    }
  });

  test('redis restart under load - no acknowledged durable message is lost (AOF, appendfsync always)', async () => {
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    let running = true;
    const publisher = async (node: SilkProc): Promise<void> => {
      for (let i = 0; running; i++) {
        const r = await node.publish({ to: { users: ['ledger'] }, data: i, durable: true }).catch(() => ({ status: 0, body: null }));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 202) accepted.push(r.body.id);
        else await new Promise((res) => setTimeout(res, 20));
      }
    };
    const load = [publisher(n1), publisher(n2), publisher(n3)];
    await eventually(() => assert.ok(accepted.length >= 100), 10_000);
    await redis.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    const mark = accepted.length;
    await eventually(() => assert.ok(accepted.length >= mark + 100), 15_000);
    running = false;
    await Promise.all(load);
    assert.ok([...statuses.keys()].every((s) => s === 202 || s === 503), JSON.stringify([...statuses]));
    const stored = new Set<string>();
    let after = '';
    for (;;) {
      const page = (await n1.api('GET', `/v1/apps/acme/users/ledger/inbox?limit=1000${after}`)).body;
      for (const m of page.messages) stored.add(m.id);
      if (!page.more) break;
      after = `&after=${page.messages.at(-1).id}`;
    }
    const lost = accepted.filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `all ${accepted.length} acknowledged messages are stored`);
  });

  test('node killed - its clients reconnect to another node and get the durable messages sent meanwhile; its routes go', async () => {
    const victim = await cluster.add();
    const token = (): Promise<string> => signToken({ app: APP_A.id, user: 'phoenix', secret: APP_A.secret, ttlSeconds: 3600, channels: ['*'] });
    // The client starts on a random node of its list: take one that landed on the victim.
    const victimId = (await victim.api('GET', '/v1/nodes')).body.nodes.find((n: { url: string }) => n.url === victim.url).id as string;
    let client!: SilkClient;
    let info!: { connection: string };
    for (let attempt = 0; attempt < 30; attempt++) {
      client = new SilkClient({ url: [victim.url, n2.url], getToken: token, reconnect: { minDelayMs: 50, maxDelayMs: 200 } });
      const connected = client.wait('connected', undefined, 5000);
      client.connect();
      info = await connected;
      if (info.connection.startsWith(victimId + '.')) break;
      client.close();
    }
    assert.ok(info.connection.startsWith(victimId + '.'), 'a client landed on the victim');
    const inbox: unknown[] = [];
    const channel: unknown[] = [];
    client.inbox.on('message', (m) => inbox.push(m.data));
    client.subscribe('phoenix-feed', (m) => channel.push(m.data));
    await subscribers(n3, 'phoenix-feed', 1);
    await n3.publish({ to: { channels: ['phoenix-feed'] }, data: 'before', durable: true });
    await eventually(() => assert.deepEqual(channel, ['before']));
    const gone = once(victim.child, 'exit');
    const reconnected = client.wait('connected', undefined, 15_000);
    victim.child.kill('SIGKILL');
    await gone;
    const t0 = Date.now();
    await n3.publish({ to: { users: ['phoenix'] }, data: 'while away', durable: true });
    await n3.publish({ to: { channels: ['phoenix-feed'] }, data: 'missed', durable: true });
    const back = await reconnected;
    assert.ok(!back.connection.startsWith(victimId + '.'), 'reconnected to another node');
    await eventually(() => {
      assert.deepEqual(inbox, ['while away']);
      assert.deepEqual(channel, ['before', 'missed']);
    }, 10_000);
    // The dead node's routes stop counting within nodeTtlSeconds (2 s) plus a beat (a third of it).
    await eventually(async () => {
      const devices = (await n3.api('GET', '/v1/apps/acme/users/phoenix')).body.devices as { connection: string }[];
      assert.equal(devices.length, 1);
      assert.ok(!devices[0]!.connection.startsWith(victimId + '.'));
    }, 6000);
    assert.ok(Date.now() - t0 < 6000);
    await eventually(async () => assert.equal((await n1.api('GET', '/v1/nodes')).body.nodes.length, 3), 6000);
    client.close();
  });
});

describe('cluster membership', { timeout: 60_000 }, () => {
  let redis: RedisServer;
  let cluster: SilkCluster;
  before(async () => {
    redis = await RedisServer.start();
    cluster = new SilkCluster(redis.url);
  });
  after(async () => {
    await cluster.close();
    await redis.destroy();
  });

  test('new node - a device on a node that started after the publishing node last beat gets user messages, and keeps its route', async () => {
    // With a 60 s TTL this node beats every 20 s: it does not see the next node start during the test.
    const early = await cluster.add({ nodeTtlSeconds: 60 });
    const late = await cluster.add();
    const c = await late.connect('newcomer');
    const route = keys.route(APP_A.id, 'newcomer');
    await eventually(async () => assert.equal(await redis.cli('hlen', route), '1'));
    const u = await early.publish({ to: { users: ['newcomer'] }, data: 'welcome aboard', durable: true });
    await c.next((f) => f.id === u.body.id);
    const e = await early.publish({ to: { users: ['newcomer'] }, data: 'ephemeral too' });
    await c.next((f) => f.id === e.body.id);
    assert.equal(await redis.cli('hlen', route), '1', 'the route is kept');
    const devices = (await early.api('GET', `/v1/apps/${APP_A.id}/users/newcomer`)).body.devices as unknown[];
    assert.equal(devices.length, 1, 'presence shows the device');
  });
});

describe('cluster roles', { timeout: 60_000 }, () => {
  let redis: RedisServer;
  let cluster: SilkCluster;
  before(async () => {
    redis = await RedisServer.start();
    cluster = new SilkCluster(redis.url);
  });
  after(async () => {
    await cluster.close();
    await redis.destroy();
  });

  test('roles - an api-only node publishes to devices on a gateway-only node; each refuses the other role', async () => {
    const gw = await cluster.add({ roles: ['gateway'] });
    const api = await cluster.add({ roles: ['api'] });
    const c = await gw.connect('split', { channels: ['*'] });
    await c.subscribe('roles');
    const u = await api.publish({ to: { users: ['split'] }, data: 'to you' });
    assert.equal(u.status, 202);
    await c.next((f) => f.id === u.body.id);
    await subscribers(api, 'roles', 1);
    const ch = await api.publish({ to: { channels: ['roles'] }, data: 'to the channel' });
    await c.next((f) => f.id === ch.body.id);
    const refused = await gw.publish({ to: { all: true }, data: 1 });
    assert.equal(refused.status, 404);
    assert.equal(refused.body.error.code, 'not_found');
    const ws = new WebSocket(`${api.ws}?token=${await signToken({ app: APP_A.id, user: 'nope', secret: APP_A.secret, ttlSeconds: 60 })}`);
    ws.on('error', () => undefined);
    const [, res] = await once(ws, 'unexpected-response');
    assert.equal(res.statusCode, 404);
    ws.terminate();
    const nodes = (await api.api('GET', '/v1/nodes')).body.nodes;
    assert.deepEqual(nodes.map((n: { roles: string[] }) => n.roles.join()).sort(), ['api', 'gateway']);
  });
});

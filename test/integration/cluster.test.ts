import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { SilkClient } from '../../sdk/src/node.js';
import { subscribers, SilkCluster, type SilkProc } from '../cluster.js';
import { clusterContract } from '../contract/cluster.js';
import { APP_A, eventually } from '../helpers.js';
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

  clusterContract(() => [n1, n2, n3]);

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

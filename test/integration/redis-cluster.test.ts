import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { RedisStore } from '../../src/engines/redis/store.js';
import { subscribers, SilkCluster, type SilkProc } from '../cluster.js';
import { storeContract } from '../contract/store.js';
import { eventually } from '../helpers.js';
import { startCluster, type RedisServer } from '../redis.js';

// With a password (and a character that must be escaped in a URL): Silk takes it from the seed URLs.
const PASSWORD = 'cluster-p@ss';
let servers: RedisServer[] = [];
const clients: Cluster[] = [];
before(async () => {
  servers = await startCluster({ password: PASSWORD });
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.destroy();
});

const seeds = (): { host: string; port: number }[] => servers.map((s) => ({ host: '127.0.0.1', port: s.port }));

storeContract('redis cluster', {
  densePositions: true,
  async open(options) {
    const c = new Cluster(seeds(), { enableAutoPipelining: true, redisOptions: { password: PASSWORD } });
    clients.push(c);
    // The masters are known once the slots are loaded.
    await new Promise((resolve) => c.once('ready', resolve));
    await Promise.all(c.nodes('master').map((n) => n.flushall()));
    return new RedisStore({ ...options, client: c });
  },
  async reopen(options) {
    const c = new Cluster(seeds(), { enableAutoPipelining: true, redisOptions: { password: PASSWORD } });
    clients.push(c);
    return new RedisStore({ ...options, client: c });
  },
});

describe('silk on a three-master Redis Cluster', { timeout: 60_000 }, () => {
  let cluster: SilkCluster;
  let a: SilkProc;
  let b: SilkProc;
  before(async () => {
    cluster = new SilkCluster({ cluster: servers.map((s) => s.url) });
    [a, b] = (await cluster.start(2)) as [SilkProc, SilkProc];
  });
  after(() => cluster.close());

  test('cluster - channels on many slots, users and broadcasts cross nodes; durable recovery works', async () => {
    const channels = Array.from({ length: 12 }, (_, i) => `room-${i}`);
    const x = await a.connect('x', { channels: ['*'] });
    const y = await b.connect('y', { channels: ['*'] });
    for (const ch of channels) {
      await x.subscribe(ch);
      await y.subscribe(ch);
    }
    for (const ch of channels) await subscribers(b, ch, 2);
    const ids: string[] = [];
    for (const ch of channels) ids.push((await a.publish({ to: { channels: [ch] }, data: ch })).body.id);
    for (const c of [x, y]) {
      await eventually(() => assert.equal(c.messages().length, channels.length));
      // Each channel's shard channel may live on another master, so messages to
      // different channels can arrive in either order (docs/cluster.md, Order).
      assert.deepEqual(c.messages().map((m) => m.channel).sort(), [...channels].sort());
    }
    const u = await b.publish({ to: { users: ['x'] }, data: 'direct' });
    await x.next((f) => f.id === u.body.id);
    const all = await a.publish({ to: { all: true }, data: 'all' });
    await y.next((f) => f.id === all.body.id);
    // Durable history on its slot, recovered through the other node.
    const seen = await b.publish({ to: { channels: ['room-3'] }, data: 'seen', durable: true });
    await y.next((f) => f.id === seen.body.id);
    const missed = await b.publish({ to: { channels: ['room-3'] }, data: 'missed', durable: true });
    const z = await a.connect('z', { channels: ['*'] });
    const reply = await z.request({ type: 'subscribe', channel: 'room-3', since: seen.body.id });
    assert.equal(reply.recovered, true);
    assert.deepEqual(z.messages().map((m) => m.id), [missed.body.id]);
    // Inboxes and acknowledgements on the user's slot.
    const d = await a.publish({ to: { users: ['w'] }, data: 'kept', durable: true });
    const w = await b.connect('w');
    assert.equal(w.frames[0].unread, 1);
    await w.next((f) => f.id === d.body.id);
    assert.equal((await w.request({ type: 'ack', ids: [d.body.id] })).unread, 0);
  });
});

/**
 * Silk on Redis over TLS: one server (`rediss://` URL, handled by ioredis),
 * a three-master Redis Cluster whose seed URLs carry TLS and a password
 * (client.ts passes both on to every node), and a master found through a
 * Sentinel, both over TLS and each with an ACL user. The servers use a
 * test CA made with openssl; the Silk nodes trust it through
 * NODE_EXTRA_CA_CERTS, as a deployment with a private CA would.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { SilkCluster } from '../cluster.js';
import { eventually, tempDir } from '../helpers.js';
import { makeTestCa, RedisServer, startCluster, startSentinel, type Sentinel, type TlsFiles } from '../redis.js';

describe('redis over TLS', { timeout: 120_000 }, () => {
  const certs = tempDir('silk-tls-');
  let single: RedisServer;
  let masters: RedisServer[] = [];
  let tls: TlsFiles;
  const clusters: SilkCluster[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  before(async () => {
    tls = await makeTestCa(certs);
    // Inherited by the `silk serve` children.
    process.env['NODE_EXTRA_CA_CERTS'] = tls.ca;
    [single, masters] = await Promise.all([RedisServer.start({ tls }), startCluster({ tls, password: 'tls-p@ss' })]);
  });
  after(async () => {
    for (const c of clusters) await c.close();
    for (const f of cleanups) await f();
    await Promise.all([single, ...masters].filter((s) => s !== undefined).map((s) => s.destroy()));
    rmSync(certs, { recursive: true, force: true });
  });

  test('tls - one Redis through a rediss:// URL: durable messages are stored and delivered', async () => {
    assert.match(single.url, /^rediss:/);
    const cluster = new SilkCluster(single.url);
    clusters.push(cluster);
    const [n] = await cluster.start(1);
    const c = await n!.connect('secure');
    await eventually(async () => assert.equal((await n!.api('GET', '/v1/apps/acme/users/secure')).body.devices.length, 1));
    const m = await n!.publish({ to: { users: ['secure'] }, data: 'over tls', durable: true });
    assert.equal(m.status, 202);
    await c.next((f) => f.id === m.body.id);
    assert.equal((await n!.api('GET', '/v1/apps/acme/users/secure/inbox')).body.unread, 1);
  });

  test('tls - a Redis Cluster through rediss:// seeds with a password: messages cross nodes, the inbox is stored', async () => {
    const cluster = new SilkCluster({ cluster: masters.map((s) => s.url) });
    clusters.push(cluster);
    const [a, b] = await cluster.start(2);
    const c = await b!.connect('cluster-secure');
    await eventually(async () => assert.equal((await a!.api('GET', '/v1/apps/acme/users/cluster-secure')).body.devices.length, 1));
    const m = await a!.publish({ to: { users: ['cluster-secure'] }, data: 'across', durable: true });
    assert.equal(m.status, 202);
    await c.next((f) => f.id === m.body.id);
    assert.equal((await b!.api('GET', '/v1/apps/acme/users/cluster-secure/inbox')).body.unread, 1);
  });

  test('tls - a master found through a Sentinel, both over TLS with ACL users: durable messages are stored, delivered, and survive a failover', async () => {
    // The `default` users' passwords differ from the ACL users': only the user and password configured get in.
    const server = { tls, password: 'default-pw', user: { name: 'silk', password: 'silk-pw' } };
    const master = await RedisServer.start(server);
    cleanups.push(() => master.destroy());
    const replica = await RedisServer.start({ ...server, replicaOf: master });
    cleanups.push(() => replica.destroy());
    await eventually(async () => assert.match(await replica.cli('info', 'replication'), /master_link_status:up/), 15_000);
    const sentinel = await startSentinel(master, 'tlsmaster', { tls, user: { name: 'watcher', password: 'watch-pw' } });
    cleanups.unshift(() => sentinel.stop());
    const cluster = new SilkCluster({
      sentinel: {
        sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
        name: 'tlsmaster',
        username: 'silk',
        password: 'silk-pw',
        sentinelUsername: 'watcher',
        sentinelPassword: 'watch-pw',
        tls: true,
        sentinelTls: true,
      },
    });
    clusters.push(cluster);
    const [n] = await cluster.start(1);
    const c = await n!.connect('sentinel-secure');
    await eventually(async () => assert.equal((await n!.api('GET', '/v1/apps/acme/users/sentinel-secure')).body.devices.length, 1));
    const m = await n!.publish({ to: { users: ['sentinel-secure'] }, data: 'through sentinel', durable: true });
    assert.equal(m.status, 202);
    await c.next((f) => f.id === m.body.id);
    assert.equal((await n!.api('GET', '/v1/apps/acme/users/sentinel-secure/inbox')).body.unread, 1);
    assert.ok(Number(await master.cli('dbsize')) > 0, 'the data went to the master the Sentinel named');

    // The master dies once the replica has what it holds; the Sentinel promotes the replica, and the
    // node reconnects to it, over TLS as the ACL user.
    const offset = (info: string, key: string): number => Number(new RegExp(`${key}:(\\d+)`).exec(info)?.[1] ?? -1);
    const written = offset(await master.cli('info', 'replication'), 'master_repl_offset');
    await eventually(async () => assert.ok(offset(await replica.cli('info', 'replication'), 'slave_repl_offset') >= written), 15_000);
    await master.stop();
    await eventually(async () => assert.match(await replica.cli('info', 'replication'), /role:master/), 20_000);
    let again: Awaited<ReturnType<typeof n.publish>> | undefined;
    // Retried until the node is back on a master; the key makes a retry of an attempt that landed store nothing twice.
    await eventually(async () => {
      again = await n!.publish({ to: { users: ['sentinel-secure'] }, data: 'after the failover', durable: true, idempotencyKey: 'failover-1' });
      assert.equal(again.status, 202);
    }, 40_000);
    // Both are in the inbox on the new master. (Live delivery waits for the node's subscriber to be back
    // on the new master: a message published before that is delivered from the inbox.)
    const inbox = (await n!.api('GET', '/v1/apps/acme/users/sentinel-secure/inbox')).body;
    assert.equal(inbox.unread, 2, 'the first message was on the replica too');
    assert.deepEqual(
      inbox.messages.map((x: { id: string }) => x.id),
      [m.body.id, again!.body.id],
    );
  });

  test('tls - Sentinels the listed one names are dialled over TLS too: a failover is found after the listed Sentinel is gone', async () => {
    const server = { tls, password: 'default-pw', user: { name: 'silk', password: 'silk-pw' } };
    const master = await RedisServer.start(server);
    cleanups.push(() => master.destroy());
    const replica = await RedisServer.start({ ...server, replicaOf: master });
    cleanups.push(() => replica.destroy());
    await eventually(async () => assert.match(await replica.cli('info', 'replication'), /master_link_status:up/), 15_000);
    // Three, so that the two left once the listed one is gone are a majority that may fail over.
    const watcher = { name: 'watcher', password: 'watch-pw' };
    const sentinels: Sentinel[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await startSentinel(master, 'found', { tls, user: watcher });
      cleanups.unshift(() => s.stop());
      sentinels.push(s);
    }
    const [listed] = sentinels;
    // The Sentinels find each other through the master; the node learns the others from the listed one.
    await eventually(async () => assert.equal((await listed!.cli('sentinel', 'sentinels', 'found')).match(/^name$/gm)?.length, 2), 20_000);
    const cluster = new SilkCluster({
      sentinel: {
        sentinels: [{ host: '127.0.0.1', port: listed!.port }],
        name: 'found',
        username: 'silk',
        password: 'silk-pw',
        sentinelUsername: 'watcher',
        sentinelPassword: 'watch-pw',
        tls: true,
        sentinelTls: true,
      },
    });
    clusters.push(cluster);
    const [n] = await cluster.start(1);
    const m = await n!.publish({ to: { users: ['found-by-discovery'] }, data: 'before', durable: true });
    assert.equal(m.status, 202);

    // The listed Sentinel goes, then the master: only the Sentinels the node discovered know the new master.
    await listed!.stop();
    const offset = (info: string, key: string): number => Number(new RegExp(`${key}:(\\d+)`).exec(info)?.[1] ?? -1);
    const written = offset(await master.cli('info', 'replication'), 'master_repl_offset');
    await eventually(async () => assert.ok(offset(await replica.cli('info', 'replication'), 'slave_repl_offset') >= written), 15_000);
    await master.stop();
    await eventually(async () => assert.match(await replica.cli('info', 'replication'), /role:master/), 30_000);
    let again: Awaited<ReturnType<typeof n.publish>> | undefined;
    await eventually(async () => {
      again = await n!.publish({ to: { users: ['found-by-discovery'] }, data: 'after', durable: true, idempotencyKey: 'discovered-1' });
      assert.equal(again.status, 202);
    }, 40_000);
    const inbox = (await n!.api('GET', '/v1/apps/acme/users/found-by-discovery/inbox')).body;
    assert.deepEqual(
      inbox.messages.map((x: { id: string }) => x.id),
      [m.body.id, again!.body.id],
    );
    assert.ok(Number(await replica.cli('dbsize')) > 0, 'the data is on the promoted replica');
  });
});

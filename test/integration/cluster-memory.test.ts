/**
 * Three nodes in one process on the memory network: the cluster contract,
 * and what a node leaving does to the others' view.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryCluster, subscribers, type MemoryNode } from '../cluster.js';
import { clusterContract } from '../contract/cluster.js';
import { eventually } from '../helpers.js';

describe('cluster in one process (memory network)', { timeout: 60_000 }, () => {
  let cluster: MemoryCluster;
  let n1: MemoryNode;
  let n2: MemoryNode;
  let n3: MemoryNode;
  before(async () => {
    cluster = new MemoryCluster();
    [n1, n2, n3] = (await cluster.start(3)) as [MemoryNode, MemoryNode, MemoryNode];
  });
  after(() => cluster.close());

  clusterContract(() => [n1, n2, n3]);

  test('recovery - a live copy the bus brings after the recovery sent the stored one is dropped: no duplicate', async () => {
    const watcher = await n2.connect('lag-watcher', { channels: ['*'] });
    await watcher.subscribe('lagging');
    await subscribers(n1, 'lagging', 1);
    const first = (await n1.publish({ to: { channels: ['lagging'] }, data: 'first', durable: true })).body.id;
    await watcher.next((f) => f.id === first);
    // The store has the second message; its bus copy is still on the way to node 2.
    cluster.network.lag();
    const second = (await n1.publish({ to: { channels: ['lagging'] }, data: 'second', durable: true })).body.id;
    const back = await n2.connect('lag-back', { channels: ['*'] });
    assert.equal((await back.request({ type: 'subscribe', channel: 'lagging', since: first })).recovered, true);
    assert.deepEqual(back.messages().map((m) => m.id), [second]);
    cluster.network.catchUp();
    await watcher.next((f) => f.id === second);
    const third = (await n1.publish({ to: { channels: ['lagging'] }, data: 'third', durable: true })).body.id;
    await back.next((f) => f.id === third);
    assert.deepEqual(back.messages().map((m) => m.id), [second, third]);
    assert.deepEqual(watcher.messages().map((m) => m.id), [first, second, third]);
  });

  test('leaving - a node that drains and stops leaves the node list, its devices leave presence, and user messages go only to the others', async () => {
    const n4 = await cluster.add();
    const gone = await n4.connect('leaver');
    const stays = await n1.connect('leaver');
    await eventually(async () => assert.equal((await n2.api('GET', '/v1/nodes')).body.nodes.length, 4));
    assert.equal((await n2.api('GET', '/v1/apps/acme/users/leaver')).body.devices.length, 2);
    await n4.node.drain();
    assert.equal((await gone.closed).code, 1001);
    assert.deepEqual((await n2.api('GET', '/v1/nodes')).body.nodes.map((n: { url: string }) => n.url).sort(), [n1.url, n2.url, n3.url].sort());
    const devices = (await n2.api('GET', '/v1/apps/acme/users/leaver')).body.devices;
    assert.deepEqual(devices.map((d: { node: string }) => d.node), [n1.node.id]);
    const r = await n3.publish({ to: { users: ['leaver'] }, data: 'still here' });
    assert.equal((await stays.next((f) => f.id === r.body.id)).data, 'still here');
  });
});

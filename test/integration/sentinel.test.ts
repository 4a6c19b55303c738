import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SilkCluster, subscribers } from '../cluster.js';
import { RedisServer, startSentinel } from '../redis.js';

let master: RedisServer;
let sentinel: { port: number; stop: () => Promise<void> };
let cluster: SilkCluster;
before(async () => {
  master = await RedisServer.start();
  sentinel = await startSentinel(master, 'silkmaster');
  cluster = new SilkCluster({ sentinel: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'silkmaster' } });
});
after(async () => {
  await cluster.close();
  await sentinel.stop();
  await master.destroy();
});

test('sentinel - nodes find the master through Sentinel and work as one', { timeout: 30_000 }, async () => {
  const [a, b] = await cluster.start(2);
  const c = await a!.connect('s', { channels: ['*'] });
  await c.subscribe('via-sentinel');
  await subscribers(b!, 'via-sentinel', 1);
  const r = await b!.publish({ to: { channels: ['via-sentinel'] }, data: 'hello', durable: true });
  assert.equal(r.status, 202);
  await c.next((f) => f.id === r.body.id);
  assert.ok(Number(await master.cli('dbsize')) > 0, 'the data went to the master Sentinel named');
});

import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/engines/redis/store.js';
import { storeContract } from '../contract/store.js';
import { RedisServer } from '../redis.js';

let server: RedisServer;
const clients: Redis[] = [];
before(async () => {
  server = await RedisServer.start();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await server.destroy();
});

storeContract('redis', {
  async open(options) {
    // Each store gets an empty database: FLUSHALL between stores of the suite.
    const c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    await c.flushall();
    return new RedisStore({ ...options, client: c });
  },
  async reopen(options) {
    const c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    return new RedisStore({ ...options, client: c });
  },
});

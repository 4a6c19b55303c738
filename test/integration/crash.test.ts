import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { APP_A, Client, tempDir } from '../helpers.js';
import { signToken } from '../../src/auth/tokens.js';
import { kill, serve, type Served } from '../process.js';

const dirs: string[] = [];
const children: Served[] = [];
after(() => {
  for (const s of children) kill(s.child);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const headers = { authorization: `Bearer ${APP_A.apiKey}`, 'content-type': 'application/json' };

async function inbox(url: string, user: string): Promise<{ id: string; data: unknown }[]> {
  const out: { id: string; data: unknown }[] = [];
  let after = '';
  for (;;) {
    const res = await fetch(`${url}/v1/apps/${APP_A.id}/users/${user}/inbox?limit=1000${after}`, { headers });
    const body = (await res.json()) as { messages: { id: string; data: unknown }[]; more: boolean };
    out.push(...body.messages.map((m) => ({ id: m.id, data: m.data })));
    if (!body.more) return out;
    after = `&after=${body.messages.at(-1)!.id}`;
  }
}

test('crash - kill -9 right after the 202s loses no acknowledged durable message; ids continue above', async () => {
  const dir = tempDir('silk-crash-');
  dirs.push(dir);
  const config = { apps: [APP_A] };
  const first = await serve(dir, config);
  children.push(first);
  const exited = once(first.child, 'exit');
  const acked: { id: string; user: string; n: number }[] = [];
  let killed = false;
  let n = 0;
  // Eight publishers at once, so the kill lands in the middle of group commits.
  const publisher = async (): Promise<void> => {
    while (!killed) {
      const i = n++;
      const user = `u${i % 10}`;
      let res: Response;
      try {
        res = await fetch(`${first.url}/v1/apps/${APP_A.id}/messages`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ to: { users: [user] }, data: { n: i }, durable: true }),
        });
      } catch {
        return; // the server is gone: this one was never acknowledged
      }
      if (res.status !== 202) return;
      const { id } = (await res.json()) as { id: string };
      acked.push({ id, user, n: i });
      if (acked.length >= 400 && !killed) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, publisher));
  assert.deepEqual((await exited).slice(0, 2), [null, 'SIGKILL']);

  const second = await serve(dir, config);
  children.push(second);
  let stored = 0;
  for (let u = 0; u < 10; u++) {
    const have = new Map((await inbox(second.url, `u${u}`)).map((m) => [m.id, m.data]));
    for (const a of acked.filter((x) => x.user === `u${u}`)) {
      assert.deepEqual(have.get(a.id), { n: a.n }, `acknowledged message ${a.id} (n=${a.n}) survived`);
      stored++;
    }
  }
  assert.equal(stored, acked.length);
  const token = await signToken({ app: APP_A.id, user: 'u3', secret: APP_A.secret, ttlSeconds: 60 });
  const device = await Client.open(`ws://127.0.0.1:${second.port}/v1/connect?token=${token}`);
  assert.ok(device.frames[0].unread >= acked.filter((a) => a.user === 'u3').length);
  device.ws.terminate();

  const maxAcked = acked.reduce((m, a) => (BigInt(a.id) > m ? BigInt(a.id) : m), 0n);
  const next = await fetch(`${second.url}/v1/apps/${APP_A.id}/messages`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ to: { users: ['u0'] }, data: 'after restart' }),
  });
  const { id } = (await next.json()) as { id: string };
  assert.ok(BigInt(id) > maxAcked, `id ${id} after the crash is above every id handed out before (${maxAcked})`);

  // And across a clean restart.
  const stopped = once(second.child, 'exit');
  second.child.kill('SIGTERM');
  await stopped;
  const third = await serve(dir, config);
  children.push(third);
  const later = await fetch(`${third.url}/v1/apps/${APP_A.id}/messages`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ to: { users: ['u0'] }, data: 'after a clean restart' }),
  });
  assert.ok(BigInt(((await later.json()) as { id: string }).id) > BigInt(id));
  // Messages stored but cut off before their 202 may be there too: at least every acknowledged one is.
  assert.ok((await inbox(third.url, 'u0')).length >= acked.filter((a) => a.user === 'u0').length);
});

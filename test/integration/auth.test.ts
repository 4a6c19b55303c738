import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import { APP_A, APP_B, Client, startTestNode, type TestNode } from '../helpers.js';

interface Refusal {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: any;
  /** Whether the WebSocket ever opened or received a frame. */
  readonly opened: boolean;
  readonly frames: number;
}

/** Open a WebSocket that the server must refuse; resolve with the HTTP status and JSON body. */
async function refused(url: string, timeoutMs = 5000): Promise<Refusal> {
  const ws = new WebSocket(url);
  let opened = false;
  let frames = 0;
  ws.on('open', () => {
    opened = true;
  });
  ws.on('message', () => {
    frames++;
  });
  ws.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no HTTP response in ${timeoutMs} ms`)), timeoutMs);
      ws.once('unexpected-response', (_req, r) => {
        clearTimeout(timer);
        resolve(r);
      });
      ws.once('open', () => {
        clearTimeout(timer);
        reject(new Error('the upgrade was accepted'));
      });
      ws.once('close', () => {
        clearTimeout(timer);
        reject(new Error('the connection closed without an HTTP response'));
      });
    });
    let text = '';
    for await (const chunk of res) text += String(chunk);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      assert.fail(`the refusal body is not JSON: ${JSON.stringify(text)}`);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body, opened, frames };
  } finally {
    ws.terminate();
    await closed;
  }
}

/** Assert a refused upgrade: HTTP status, JSON error body with `code`, and no WebSocket traffic. */
function assertRefused(r: Refusal, status: number, code: string): void {
  assert.equal(r.status, status);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal(r.body.error.code, code);
  assert.equal(typeof r.body.error.message, 'string');
  assert.equal(r.opened, false, 'no WebSocket was opened');
  assert.equal(r.frames, 0, 'no WebSocket frame flowed');
}

function b64url(v: unknown): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

/** `p`, or a rejection after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600;

/** A JWT made by hand, signed with app A's secret: any claims, any HMAC algorithm. */
function hmacToken(claims: Record<string, unknown>, alg: 'HS256' | 'HS512' = 'HS256'): string {
  const input = `${b64url({ alg, typ: 'JWT' })}.${b64url(claims)}`;
  return `${input}.${createHmac(alg === 'HS256' ? 'sha256' : 'sha512', APP_A.secret).update(input).digest('base64url')}`;
}

describe('auth', () => {
  let t: TestNode;
  const url = (token?: string): string => (token === undefined ? t.wsUrl : `${t.wsUrl}?token=${encodeURIComponent(token)}`);

  before(async () => {
    t = await startTestNode();
  });
  after(() => t.close());

  test('connect - a valid token opens a connection with a welcome', async () => {
    const c = await t.connect('valid-user');
    assert.equal(c.frames[0].type, 'welcome');
    assert.equal(c.frames[0].user, 'valid-user');
    await c.close();
  });

  test('connect - missing token is refused with 401 token_missing', async () => {
    assertRefused(await refused(url()), 401, 'token_missing');
    assertRefused(await refused(`${t.wsUrl}?token=`), 401, 'token_missing');
    assertRefused(await refused(`${t.wsUrl}?other=1`), 401, 'token_missing');
  });

  test('connect - expired token is refused with 401 token_expired', async () => {
    const token = await signToken({ app: APP_A.id, user: 'late', secret: APP_A.secret, ttlSeconds: -60 });
    assertRefused(await refused(url(token)), 401, 'token_expired');
  });

  test('connect - token signed with the wrong secret is refused with 401 token_invalid', async () => {
    const token = await signToken({ app: APP_A.id, user: 'mallory', secret: 'z'.repeat(40), ttlSeconds: 3600 });
    assertRefused(await refused(url(token)), 401, 'token_invalid');
  });

  test('connect - token for app acme signed with app globex secret is refused with 401 token_invalid', async () => {
    const token = await signToken({ app: APP_A.id, user: 'forger', secret: APP_B.secret, ttlSeconds: 3600 });
    assertRefused(await refused(url(token)), 401, 'token_invalid');
  });

  test('connect - unsigned alg none token is refused with 401 token_invalid', async () => {
    const payload = { app: APP_A.id, sub: 'nobody', exp: inAnHour() };
    const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`;
    assertRefused(await refused(url(none)), 401, 'token_invalid');
    const noneUpper = `${b64url({ alg: 'NONE', typ: 'JWT' })}.${b64url(payload)}.`;
    assertRefused(await refused(url(noneUpper)), 401, 'token_invalid');
  });

  test('connect - token with another algorithm is refused with 401 token_invalid', async () => {
    const hs512 = hmacToken({ app: APP_A.id, sub: 'alg-user', exp: inAnHour() }, 'HS512');
    assertRefused(await refused(url(hs512)), 401, 'token_invalid');
    // RS256 header over an HMAC-SHA256 signature made with the app secret (algorithm confusion).
    const signingInput = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({ app: APP_A.id, sub: 'alg-user', exp: inAnHour() })}`;
    const sig = createHmac('sha256', APP_A.secret).update(signingInput).digest('base64url');
    assertRefused(await refused(url(`${signingInput}.${sig}`)), 401, 'token_invalid');
  });

  test('connect - malformed token strings are refused with 401 token_invalid', async () => {
    for (const bad of ['abc', 'a.b.c', '...', 'x'.repeat(10 * 1024), `${b64url({ alg: 'HS256' })}.not-base64!.sig`]) {
      assertRefused(await refused(url(bad)), 401, 'token_invalid');
    }
  });

  test('connect - a tampered payload is refused with 401 token_invalid', async () => {
    const token = await signToken({ app: APP_A.id, user: 'honest', secret: APP_A.secret, ttlSeconds: 3600 });
    const [h, , s] = token.split('.');
    const forged = `${h}.${b64url({ app: APP_A.id, sub: 'admin', exp: inAnHour() })}.${s}`;
    assertRefused(await refused(url(forged)), 401, 'token_invalid');
  });

  test('connect - token without sub or exp is refused with 401 token_invalid', async () => {
    const noSub = hmacToken({ app: APP_A.id, exp: inAnHour() });
    assertRefused(await refused(url(noSub)), 401, 'token_invalid');
    const noExp = hmacToken({ app: APP_A.id, sub: 'forever' });
    assertRefused(await refused(url(noExp)), 401, 'token_invalid');
    const noApp = hmacToken({ sub: 'appless', exp: inAnHour() });
    assertRefused(await refused(url(noApp)), 401, 'token_invalid');
  });

  test('connect - unknown app claim is refused with 404 app_not_found', async () => {
    const token = await signToken({ app: 'initech', user: 'peter', secret: APP_A.secret, ttlSeconds: 3600 });
    assertRefused(await refused(url(token)), 404, 'app_not_found');
  });

  test('connect - channels claim that is not an array of patterns is refused with 401 token_invalid', async () => {
    for (const channels of ['news', { news: true }, 7, [1, 2], ['']]) {
      const token = hmacToken({ app: APP_A.id, channels, sub: 'chan-user', exp: inAnHour() });
      assertRefused(await refused(url(token)), 401, 'token_invalid');
    }
  });

  test('connect - a path other than /v1/connect is refused with 404 not_found', async () => {
    const token = await t.token('elsewhere');
    const r = await refused(`${t.url.replace('http', 'ws')}/v1/other?token=${token}`);
    assertRefused(r, 404, 'not_found');
  });

  test('isolation - a globex token never reaches acme users, channels or broadcasts', async () => {
    const intruder = await t.connect('iso-user', { app: APP_B, channels: ['*'] });
    assert.equal((await intruder.subscribe('iso-ch')).type, 'reply');
    const victim = await t.connect('iso-victim', { channels: ['*'] });
    await victim.subscribe('iso-ch');
    const r1 = await t.publish({ to: { users: ['iso-user'] }, data: 'for acme iso-user' });
    const r2 = await t.publish({ to: { channels: ['iso-ch'] }, data: 'acme channel' });
    const r3 = await t.publish({ to: { all: true }, data: 'acme everyone' });
    for (const r of [r1, r2, r3]) assert.equal(r.status, 202);
    await victim.next((f) => f.id === r3.body.id);
    await intruder.request({ type: 'ping' });
    assert.deepEqual(intruder.messages(), []);
    const inAcme = await t.api('GET', '/v1/apps/acme/users/iso-user');
    assert.deepEqual(inAcme.body, { user: 'iso-user', online: false, devices: [] });
    const inGlobex = await t.api('GET', '/v1/apps/globex/users/iso-user', undefined, { key: APP_B.apiKey });
    assert.equal(inGlobex.body.online, true);
    await intruder.close();
    await victim.close();
  });

  test('token expiry - a connection whose token expires is closed with 4001', async () => {
    // Expiry is checked at each heartbeat visit. 0.5 s keeps that well inside the 2 s allowed below, and leaves
    // 0.75 s of silence before a heartbeat timeout, so a pause of this busy test process does not end it first.
    const short = await startTestNode({ heartbeatSeconds: 0.5 });
    let c: Client | undefined;
    try {
      // `exp` is in whole seconds: mint early in a wall-clock second so a 1 s token is still valid at connect.
      const ms = Date.now() % 1000;
      if (ms > 500) await new Promise((r) => setTimeout(r, 1010 - ms));
      const token = await short.token('brief', { ttlSeconds: 1 });
      const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
      c = await Client.open(`${short.wsUrl}?token=${token}`);
      const client = c;
      // Answer the server's heartbeat pings, as a live client does.
      client.ws.on('message', (d) => {
        if (JSON.parse(d.toString()).type === 'ping') client.send({ type: 'pong' });
      });
      assert.equal(client.frames[0].heartbeat, 0.5);
      assert.equal((await client.request({ type: 'ping' })).type, 'reply');
      const closed = await within(client.closed, 5000, 'the close after expiry');
      const at = Date.now();
      assert.equal(closed.code, 4001);
      assert.equal(closed.reason, 'token_expired');
      assert.ok(at >= exp * 1000 - 50, `closed ${exp * 1000 - at} ms before expiry`);
      assert.ok(at < exp * 1000 + 2000, `closed ${at - exp * 1000} ms after expiry`);
    } finally {
      c?.ws.terminate();
      await short.close();
    }
  });
});

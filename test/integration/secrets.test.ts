/**
 * Secret and API key rotation without downtime, and what a run of every
 * authentication attack leaves in the logs and the answers: never a secret
 * or an API key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { signToken } from '../../src/auth/tokens.js';
import type { AppConfig } from '../../src/config.js';
import { Client, startTestNode, tempDir, type TestNode } from '../helpers.js';

const hex = (n: number): string => randomBytes(n).toString('hex');
const OLD_SECRET = `old-secret-${hex(16)}`;
const NEW_SECRET = `new-secret-${hex(16)}`;
const OLD_KEY = `old-key-${hex(8)}`;
const NEW_KEY = `new-key-${hex(8)}`;
const OTHER: AppConfig = { id: 'other', secret: `other-secret-${hex(16)}`, apiKey: `other-key-${hex(8)}` };
const ROTATING: AppConfig = { id: 'rot', secret: NEW_SECRET, apiKey: NEW_KEY, previousSecret: OLD_SECRET, previousApiKey: OLD_KEY };
const ROTATED: AppConfig = { id: 'rot', secret: NEW_SECRET, apiKey: NEW_KEY };
const SECRETS = [OLD_SECRET, NEW_SECRET, OLD_KEY, NEW_KEY, OTHER.secret, OTHER.apiKey];

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const token = (secret: string, claims: Record<string, unknown> = {}): Promise<string> =>
  signToken({ app: 'rot', user: 'u', secret, ttlSeconds: 60, ...claims });

/** The HTTP status of a refused upgrade, or 101 once it opened (and it is closed again). */
async function upgrade(url: string): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.once('close', () => resolve({ status: 0, body: '' }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
  });
}

async function publish(t: TestNode, app: string, key: string | null): Promise<{ status: number; body: string }> {
  const res = await fetch(`${t.url}/v1/apps/${app}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ to: { users: ['u'] }, data: 1 }),
  });
  return { status: res.status, body: await res.text() };
}

const connectUrl = (t: TestNode, tok: string): string => `${t.wsUrl}?token=${tok}`;

describe('secrets - rotation and leaks', { timeout: 60_000 }, () => {
  const nodes: TestNode[] = [];
  after(async () => {
    for (const t of nodes) await t.close();
  });

  test('rotation - during a rotation tokens of either secret connect and either API key works; once the old ones are removed they are refused', async () => {
    const dataDir = tempDir();
    const before = await startTestNode({ apps: [ROTATING, OTHER], dataDir });
    nodes.push(before);
    const oldToken = await token(OLD_SECRET);
    const newToken = await token(NEW_SECRET);
    assert.equal((await upgrade(connectUrl(before, oldToken))).status, 101, 'a token of the previous secret');
    assert.equal((await upgrade(connectUrl(before, newToken))).status, 101, 'a token of the new secret');
    assert.equal((await publish(before, 'rot', OLD_KEY)).status, 202, 'the previous API key');
    assert.equal((await publish(before, 'rot', NEW_KEY)).status, 202, 'the new API key');
    // Neither of this app's keys opens another app's paths, nor the other way round.
    assert.equal((await publish(before, 'other', OLD_KEY)).status, 401);
    assert.equal((await publish(before, 'other', NEW_KEY)).status, 401);
    assert.equal((await publish(before, 'rot', OTHER.apiKey)).status, 401);
    // A client connected with the previous secret's token stays connected through the rotation.
    const held = await Client.open(connectUrl(before, oldToken));
    assert.equal(held.frames[0].type, 'welcome');
    held.ws.terminate();
    await before.close();
    nodes.pop();

    const afterRotation = await startTestNode({ apps: [ROTATED, OTHER], dataDir });
    nodes.push(afterRotation);
    const refused = await upgrade(connectUrl(afterRotation, oldToken));
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body).error.code, 'token_invalid');
    assert.equal((await upgrade(connectUrl(afterRotation, newToken))).status, 101);
    const oldKey = await publish(afterRotation, 'rot', OLD_KEY);
    assert.equal(oldKey.status, 401);
    assert.equal(JSON.parse(oldKey.body).error.code, 'unauthorized');
    assert.equal((await publish(afterRotation, 'rot', NEW_KEY)).status, 202);
  });

  test('leaks - a run of every authentication attack leaves no secret or API key in the logs or in any answer', async () => {
    let logs = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        logs += String(chunk);
        done();
      },
    });
    const t = await startTestNode({ apps: [ROTATING, OTHER] }, { logger: pino({ level: 'trace' }, sink) });
    nodes.push(t);
    const answers: string[] = [];
    const now = Math.floor(Date.now() / 1000);
    const header = (alg: string): string => b64({ alg, typ: 'JWT' });
    const claims = b64({ app: 'rot', sub: 'u', exp: now + 60 });
    const attacks: string[] = [
      `${header('none')}.${claims}.`, // alg none
      `${header('HS512')}.${claims}.${b64('x')}`, // another algorithm
      `${header('RS256')}.${claims}.${b64('x')}`, // algorithm confusion
      await token(`wrong-secret-${hex(16)}`), // wrong secret
      await token(NEW_SECRET, { ttlSeconds: -10 }), // expired
      await signToken({ app: 'rot', user: 'u', secret: OTHER.secret, ttlSeconds: 60 }), // another app's secret
      await signToken({ app: 'other', user: 'u', secret: NEW_SECRET, ttlSeconds: 60 }), // this app's secret, another app's claim
      await signToken({ app: 'nope', user: 'u', secret: NEW_SECRET, ttlSeconds: 60 }), // unknown app
      'not.a.jwt',
      NEW_SECRET, // a secret sent as a token
    ];
    // Not yet valid: `nbf` in the future, signed with the real secret.
    const { createSigner } = await import('fast-jwt');
    attacks.push(createSigner({ key: NEW_SECRET, algorithm: 'HS256' })({ app: 'rot', sub: 'u', exp: now + 60, nbf: now + 3600 }));
    for (const a of attacks) {
      const r = await upgrade(connectUrl(t, encodeURIComponent(a)));
      assert.notEqual(r.status, 101, `attack token ${a.slice(0, 40)} was let in`);
      answers.push(r.body);
    }
    // A token whose channels do not allow the channel.
    const limited = await Client.open(connectUrl(t, await token(NEW_SECRET, { channels: ['open.*'] })));
    const denied = await limited.request({ type: 'subscribe', channel: 'secret-room' });
    assert.equal(denied.code, 'forbidden_channel');
    answers.push(JSON.stringify(limited.frames));
    limited.ws.terminate();
    // API keys: wrong, missing, another app's, malformed headers, a secret sent as a key.
    for (const [app, key] of [
      ['rot', `wrong-${hex(8)}`],
      ['rot', null],
      ['rot', OTHER.apiKey],
      ['other', NEW_KEY],
      ['other', OLD_KEY],
      ['rot', NEW_SECRET],
      ['rot', `${NEW_KEY} `.repeat(3)],
    ] as const) {
      const r = await publish(t, app, key);
      assert.equal(r.status, 401, `${app} with ${String(key).slice(0, 12)}…`);
      answers.push(r.body);
    }
    const odd = await fetch(`${t.url}/v1/apps/rot/messages`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`rot:${NEW_KEY}`).toString('base64')}` }, body: '{}' });
    assert.equal(odd.status, 401);
    answers.push(await odd.text());

    // The refusals are logged, with their codes: the lines a leak would be in.
    for (const code of ['token_invalid', 'token_expired', 'app_not_found', 'unauthorized']) assert.ok(logs.includes(`"code":"${code}"`), `${code} is logged`);
    for (const s of SECRETS) {
      assert.ok(!logs.includes(s), `a secret or key (${s.slice(0, 8)}…) is in the logs`);
      for (const a of answers) assert.ok(!a.includes(s), `a secret or key (${s.slice(0, 8)}…) is in an answer: ${a.slice(0, 200)}`);
    }
  });
});

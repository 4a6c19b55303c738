import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { verifyToken, verifyKey } from '../../src/auth/tokens.js';
import { APP_A, startTestNode, type TestNode } from '../helpers.js';

const nodes: TestNode[] = [];
after(async () => {
  for (const n of nodes) await n.close();
});

test('dev token - without --dev and with configured apps the route does not exist', async () => {
  const t = await startTestNode();
  nodes.push(t);
  const r = await fetch(t.url + '/v1/dev/token', { method: 'POST', body: '{"user":"x"}' });
  assert.equal(r.status, 404);
});

test('dev token - with dev on it mints a token for the first app and returns its API key', async () => {
  const t = await startTestNode({ dev: true });
  nodes.push(t);
  const r = await fetch(t.url + '/v1/dev/token', { method: 'POST', body: JSON.stringify({ user: 'dora', channels: ['news'] }) });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { app: string; user: string; token: string; apiKey: string };
  assert.equal(body.app, APP_A.id);
  assert.equal(body.apiKey, APP_A.apiKey);
  const key = verifyKey(APP_A.secret);
  const grant = verifyToken(body.token, (app) => (app === APP_A.id ? key : undefined));
  assert.deepEqual([grant.user, grant.channels], ['dora', ['news']]);
  const bad = await fetch(t.url + '/v1/dev/token', { method: 'POST', body: JSON.stringify({ user: '' }) });
  assert.equal(bad.status, 400);
  const unknown = await fetch(t.url + '/v1/dev/token', { method: 'POST', body: JSON.stringify({ user: 'x', app: 'nope' }) });
  assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'app_not_found');
  assert.equal((await fetch(t.url + '/v1/dev/token')).status, 405);
});

test('static - the SDK bundle and the demo page are served', async () => {
  const t = await startTestNode();
  nodes.push(t);
  const sdk = await fetch(t.url + '/sdk/silk.js');
  assert.equal(sdk.status, 200);
  assert.match(sdk.headers.get('content-type') ?? '', /javascript/);
  assert.match(await sdk.text(), /SilkClient/);
  const page = await fetch(t.url + '/');
  assert.match(await page.text(), /<title>Silk demo<\/title>/);
  // The icon every browser asks for: no 404 in the console.
  for (const path of ['/favicon.ico', '/favicon.svg']) {
    const icon = await fetch(t.url + path);
    assert.equal(icon.status, 200, path);
    assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
    assert.match(await icon.text(), /^<svg /);
  }
});

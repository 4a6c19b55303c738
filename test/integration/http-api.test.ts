import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { APP_A, APP_B, startTestNode, type TestNode } from '../helpers.js';

interface Res {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: any;
}

/** One HTTP request with full control over the Authorization header (null: none) and the raw body. */
async function call(
  base: string,
  method: string,
  path: string,
  opts: { key?: string | null; body?: unknown; raw?: string; authorization?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.authorization !== undefined) headers['authorization'] = opts.authorization;
  else if (opts.key !== null) headers['authorization'] = `Bearer ${opts.key ?? APP_A.apiKey}`;
  const body = opts.raw !== undefined ? opts.raw : opts.body !== undefined ? JSON.stringify(opts.body) : undefined;
  const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/** Assert the error contract: status, JSON content type, body exactly {error: {code, message}}. */
function assertError(res: Res, status: number, code: string, what = ''): void {
  const where = `${what} -> ${res.status} ${res.text}`;
  assert.equal(res.status, status, where);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, where);
  assert.equal(typeof res.body, 'object', where);
  assert.deepEqual(Object.keys(res.body), ['error'], where);
  assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message'], where);
  assert.equal(res.body.error.code, code, where);
  assert.equal(typeof res.body.error.message, 'string', where);
  assert.ok(res.body.error.message.length > 0, where);
}

describe('http api', () => {
  let t: TestNode;
  const api = (method: string, path: string, opts: Parameters<typeof call>[3] = {}): Promise<Res> =>
    call(t.url, method, path, opts);
  const publish = (body: unknown): Promise<Res> => api('POST', '/v1/apps/acme/messages', { body });

  before(async () => {
    t = await startTestNode({ limits: { maxBodyBytes: 4096, maxMessageBytes: 1024, maxRecipients: 5 } });
  });
  after(() => t.close());

  test('publish - 202 with a decimal string id, ids increase', async () => {
    const ids: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await publish({ to: { users: ['someone'] }, data: { i } });
      assert.equal(res.status, 202);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(Object.keys(res.body), ['id']);
      assert.equal(typeof res.body.id, 'string');
      assert.match(res.body.id, /^[1-9]\d*$/);
      ids.push(BigInt(res.body.id));
    }
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `id ${ids[i]} after ${ids[i - 1]}`);
  });

  test('invalid_json - a malformed body is 400 invalid_json', async () => {
    for (const raw of ['{"to":', 'not json', '', "{'to': 1}", '{"to":{"all":true},"data":1}}']) {
      assertError(await api('POST', '/v1/apps/acme/messages', { raw }), 400, 'invalid_json', JSON.stringify(raw));
    }
  });

  test('invalid_request - unknown field, non-object body, missing data, bad event is 400 invalid_request', async () => {
    const bodies: unknown[] = [
      { to: { all: true }, data: 1, extra: true },
      [{ to: { all: true }, data: 1 }],
      'a string',
      42,
      null,
      { to: { all: true } },
      { to: { all: true }, data: 1, event: 5 },
      { to: { all: true }, data: 1, event: '' },
      { to: { all: true }, data: 1, event: 'e'.repeat(101) },
    ];
    for (const body of bodies) assertError(await publish(body), 400, 'invalid_request', JSON.stringify(body));
  });

  test('invalid_target - missing, ambiguous, empty or oversized targets are 400 invalid_target', async () => {
    const bodies: unknown[] = [
      { data: 1 },
      { to: 'everyone', data: 1 },
      { to: {}, data: 1 },
      { to: { users: ['a'], channels: ['b'] }, data: 1 },
      { to: { users: ['a'], all: true }, data: 1 },
      { to: { users: [] }, data: 1 },
      { to: { users: 'a' }, data: 1 },
      { to: { users: [7] }, data: 1 },
      { to: { channels: [] }, data: 1 },
      { to: { all: false }, data: 1 },
      { to: { all: 'yes' }, data: 1 },
      { to: { groups: ['a'] }, data: 1 },
      { to: { users: ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'] }, data: 1 },
      { to: { channels: ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'] }, data: 1 },
    ];
    for (const body of bodies) assertError(await publish(body), 400, 'invalid_target', JSON.stringify(body));
    // Exactly maxRecipients is fine.
    assert.equal((await publish({ to: { users: ['u1', 'u2', 'u3', 'u4', 'u5'] }, data: 1 })).status, 202);
  });

  test('invalid_channel - bad channel names are 400 invalid_channel', async () => {
    for (const ch of ['with space', 'c'.repeat(201), '', 'tab\there', 'ünï']) {
      assertError(await publish({ to: { channels: [ch] }, data: 1 }), 400, 'invalid_channel', JSON.stringify(ch));
    }
    assert.equal((await publish({ to: { channels: ['c'.repeat(200)] }, data: 1 })).status, 202);
    assertError(await api('GET', '/v1/apps/acme/channels/bad%20name'), 400, 'invalid_channel', 'GET channels/bad name');
  });

  test('unauthorized - missing, wrong or another app key is 401 unauthorized', async () => {
    const body = { to: { all: true }, data: 1 };
    assertError(await api('POST', '/v1/apps/acme/messages', { key: null, body }), 401, 'unauthorized', 'no header');
    assertError(await api('POST', '/v1/apps/acme/messages', { key: 'wrong-key-0123456789', body }), 401, 'unauthorized', 'wrong');
    assertError(await api('POST', '/v1/apps/acme/messages', { key: APP_B.apiKey, body }), 401, 'unauthorized', 'globex key');
    assertError(await api('GET', '/v1/apps/globex/stats', { key: APP_A.apiKey }), 401, 'unauthorized', 'acme key');
    assertError(
      await api('POST', '/v1/apps/acme/messages', { authorization: `Basic ${APP_A.apiKey}`, body }),
      401,
      'unauthorized',
      'Basic scheme',
    );
    assertError(await api('POST', '/v1/apps/acme/messages', { key: APP_A.apiKey.slice(0, -1), body }), 401, 'unauthorized', 'prefix');
    assertError(await api('POST', '/v1/apps/acme/messages', { key: APP_A.apiKey + 'x', body }), 401, 'unauthorized', 'longer');
  });

  test('app_not_found - an unknown app is 404 app_not_found', async () => {
    assertError(await api('POST', '/v1/apps/initech/messages', { body: { to: { all: true }, data: 1 } }), 404, 'app_not_found');
    assertError(await api('GET', '/v1/apps/initech/stats'), 404, 'app_not_found');
  });

  test('not_found - an unknown route is 404 not_found', async () => {
    for (const path of ['/nothing', '/v2/apps/acme/messages', '/v1/apps/acme', '/v1/apps/acme/nope', '/v1/apps/acme/users/u/x', '/healthz/x']) {
      assertError(await api('GET', path), 404, 'not_found', path);
    }
  });

  test('invalid_request - a malformed percent-encoding in the path is 400 invalid_request', async () => {
    assertError(await api('GET', '/v1/apps/acme/users/%E0%A4%A'), 400, 'invalid_request');
  });

  test('method_not_allowed - GET on messages is 405 with an Allow header', async () => {
    const res = await api('GET', '/v1/apps/acme/messages');
    assertError(res, 405, 'method_not_allowed');
    assert.equal(res.headers.get('allow'), 'POST');
    const del = await api('DELETE', '/v1/apps/acme/users/someone');
    assertError(del, 405, 'method_not_allowed');
    assert.equal(del.headers.get('allow'), 'GET');
  });

  test('method_not_allowed - the operator endpoints answer 405 with an Allow header too', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await api('POST', path);
      assertError(res, 405, 'method_not_allowed', path);
      // RFC 9110 §15.5.6: a 405 response MUST carry Allow.
      assert.ok(res.headers.get('allow')?.includes('GET'), `${path}: Allow is ${res.headers.get('allow')}`);
    }
  });

  test('payload_too_large - a body over limits.maxBodyBytes is 413', async () => {
    const big = JSON.stringify({ to: { all: true }, data: 'x'.repeat(5000) });
    assertError(await api('POST', '/v1/apps/acme/messages', { raw: big }), 413, 'payload_too_large', 'declared length');
    // Same body without Content-Length (chunked): the limit holds while reading.
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        `${t.url}/v1/apps/acme/messages`,
        { method: 'POST', headers: { authorization: `Bearer ${APP_A.apiKey}`, 'content-type': 'application/json' } },
        (r) => {
          let text = '';
          r.on('data', (d) => (text += String(d)));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(big);
    });
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.text).error.code, 'payload_too_large');
  });

  test('payload_too_large - data over limits.maxMessageBytes is 413', async () => {
    const res = await publish({ to: { all: true }, data: 'x'.repeat(2000) });
    assertError(res, 413, 'payload_too_large');
    // data of exactly maxMessageBytes serialised (1022 chars + 2 quotes) is accepted.
    assert.equal((await publish({ to: { all: true }, data: 'x'.repeat(1022) })).status, 202);
  });

  test('healthz and readyz - 200 while running', async () => {
    const h = await api('GET', '/healthz', { key: null });
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: 'ok' });
    const r = await api('GET', '/readyz', { key: null });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
  });

  test('metrics - Prometheus text with connection, message, error and runtime metrics', async () => {
    const c = await t.connect('metrics-user');
    const res = await publish({ to: { users: ['metrics-user'] }, data: 'counted' });
    await c.next((f) => f.id === res.body.id);
    const m = await api('GET', '/metrics', { key: null });
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
    for (const name of [
      'silk_connections',
      'silk_messages_published_total',
      'silk_messages_delivered_total',
      'silk_frame_errors_total',
      'silk_disconnects_total',
      'silk_nodejs_gc_duration_seconds',
    ]) {
      assert.match(m.text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.match(m.text, /^# TYPE silk_nodejs_eventloop_lag\w* /m, 'an event-loop lag metric');
    // Collectors that walk every socket on each scrape are left out (docs/http-api.md).
    for (const name of ['silk_process_open_fds', 'silk_nodejs_active_handles', 'silk_nodejs_active_resources']) {
      assert.doesNotMatch(m.text, new RegExp(`^# TYPE ${name}`, 'm'), name);
    }
    const value = (series: string): number => {
      const line = m.text.split('\n').find((l) => l.startsWith(series + ' '));
      assert.ok(line !== undefined, `no series ${series}`);
      return Number(line.slice(series.length + 1));
    };
    assert.ok(value('silk_connections{app="acme"}') >= 1);
    assert.ok(value('silk_messages_published_total{app="acme"}') >= 1);
    assert.ok(value('silk_messages_delivered_total{app="acme"}') >= 1);
    assert.equal(value('silk_connections{app="globex"}'), 0);
    await c.close();
  });

  test('robustness - garbage on the socket gets 400 and the server keeps serving', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(t.node.port, '127.0.0.1', () => s.end('THIS IS NOT HTTP\r\n\r\n'));
      let text = '';
      s.on('data', (d) => (text += String(d)));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });

  test('robustness - after every bad request a good publish still succeeds and is delivered', async () => {
    const c = await t.connect('still-here');
    const res = await publish({ to: { users: ['still-here'] }, data: { ok: true }, event: 'final' });
    assert.equal(res.status, 202);
    const m = await c.next((f) => f.id === res.body.id);
    assert.deepEqual(m, { type: 'message', id: res.body.id, event: 'final', data: { ok: true } });
    assert.equal((await api('GET', '/healthz', { key: null })).status, 200);
    await c.close();
  });
});

describe('http api rate limit', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { apiRequestsPerSecond: 5 } });
  });
  after(() => t.close());

  test('rate_limited - over limits.apiRequestsPerSecond is 429 with Retry-After, per app', async () => {
    const body = { to: { users: ['nobody'] }, data: 1 };
    const results = await Promise.all(Array.from({ length: 20 }, () => call(t.url, 'POST', '/v1/apps/acme/messages', { body })));
    const ok = results.filter((r) => r.status === 202);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, 20, `statuses ${results.map((r) => r.status)}`);
    assert.ok(ok.length >= 5 && ok.length <= 7, `${ok.length} accepted`);
    assert.ok(limited.length >= 13, `${limited.length} limited`);
    for (const r of limited) {
      assertError(r, 429, 'rate_limited');
      const retry = r.headers.get('retry-after');
      assert.match(retry ?? '', /^\d+$/, `Retry-After ${retry}`);
      assert.ok(Number(retry) >= 1);
    }
    // The other app has its own budget.
    const other = await call(t.url, 'POST', '/v1/apps/globex/messages', { key: APP_B.apiKey, body });
    assert.equal(other.status, 202);
    // Operator endpoints are not rate limited.
    assert.equal((await call(t.url, 'GET', '/healthz', { key: null })).status, 200);
  });
});

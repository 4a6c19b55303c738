/**
 * The HTTP API under fuzzed requests: every route with random methods,
 * path segments, query strings, headers, content types and bodies, over
 * real sockets. Every answer is a documented status with a documented
 * error body, no request is answered 500, nothing leaks across apps, and
 * the node stays healthy. Bodies that never end are cut at the size limit.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/core/errors.js';
import { APP_A, APP_B, startTestNode, type TestNode } from '../helpers.js';

const ROUTES = [
  'messages',
  'messages/batch',
  'stats',
  'users/:',
  'users/:/disconnect',
  'users/:/inbox',
  'users/:/inbox/ack',
  'users/:/inbox/:',
  'channels/:',
];
const FIXED = ['/healthz', '/readyz', '/metrics', '/v1/nodes', '/v1/dev/token', '/', '/sdk/silk.js', '/favicon.ico', '/v1/apps', '/v1/apps/', '/v1//apps', '/v1/apps/acme'];

const segment = fc.oneof(
  fc.constantFrom('alice', 'news', '1795443777662001', '..', '.', '%2e%2e', '%00', '%ff', '%', 'x'.repeat(300), 'ä', '%F0%9F%98%80', '*'),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const body = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.record({ to: fc.jsonValue({ maxDepth: 2 }), data: fc.jsonValue({ maxDepth: 2 }), durable: fc.jsonValue(), ttl: fc.jsonValue(), event: fc.jsonValue(), idempotencyKey: fc.jsonValue() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.record({ messages: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }) }).map((o) => JSON.stringify(o)),
  fc.record({ ids: fc.jsonValue(), upTo: fc.jsonValue(), all: fc.jsonValue() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom('', '{', '[]', 'null', '{"to":{"users":["a"]},"data":1}', '{"to":{"channels":["news"]},"data":1,"durable":true}', '['.repeat(10_000)),
);
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  path: fc.oneof(
    fc.tuple(fc.constantFrom('acme', 'globex', 'nope', ''), fc.constantFrom(...ROUTES), fc.array(segment, { minLength: 3, maxLength: 3 })).map(
      ([app, shape, segs]) => `/v1/apps/${app}/` + shape.split('/').map((p, i) => (p === ':' ? segs[i % 3] : p)).join('/'),
    ),
    fc.constantFrom(...FIXED),
  ),
  query: fc.oneof(fc.constant(''), fc.constantFrom('?limit=0', '?limit=99999', '?limit=abc', '?after=x', '?cursor=', '?a=1&a=2', '?%zz'), fc.string({ maxLength: 30 }).map((s) => '?' + encodeURIComponent(s))),
  auth: fc.constantFrom('acme', 'globex', 'none', 'garbage', 'basic'),
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', ''),
  body,
});

describe('fuzz - HTTP API', { timeout: 120_000 }, () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ limits: { apiRequestsPerSecond: 0, maxBodyBytes: 65536 } });
  });
  after(() => t.close());

  test('fuzz - 3,000 random requests get documented statuses and error bodies, never 500; the node stays up', async () => {
    const statuses: Record<number, number> = {};
    const codes: Record<string, number> = {};
    const reqs = fc.sample(request, { numRuns: 3000, seed: 20261204 });
    for (const r of reqs) {
      const headers: Record<string, string> = {};
      if (r.contentType !== '') headers['content-type'] = r.contentType;
      if (r.auth === 'acme') headers['authorization'] = `Bearer ${APP_A.apiKey}`;
      if (r.auth === 'globex') headers['authorization'] = `Bearer ${APP_B.apiKey}`;
      if (r.auth === 'garbage') headers['authorization'] = 'Bearer \u0000';
      if (r.auth === 'basic') headers['authorization'] = 'Basic YTpi';
      let res: Response;
      try {
        res = await fetch(`${t.url}${r.path}${r.query}`, {
          method: r.method,
          headers,
          ...(r.method === 'GET' || r.method === 'HEAD' ? {} : { body: r.body }),
        });
      } catch (err) {
        // fetch itself refuses some inputs (a header value it cannot send): not the server's answer.
        if (err instanceof TypeError && /header|ByteString/i.test(String(err.message) + String((err as { cause?: unknown }).cause))) continue;
        throw err;
      }
      const text = await res.text();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      assert.ok(res.status < 500 || res.status === 503, `${r.method} ${r.path}${r.query} → ${res.status} ${text.slice(0, 200)}`);
      if (res.status >= 400 && r.method !== 'HEAD') {
        const e = JSON.parse(text) as { error: { code: string; message: string } };
        assert.ok(e.error.code in ErrorCodes, `undocumented code ${e.error.code}`);
        assert.equal(typeof e.error.message, 'string');
        assert.equal(ErrorCodes[e.error.code as keyof typeof ErrorCodes].status, res.status, `${e.error.code} with its documented status`);
        codes[e.error.code] = (codes[e.error.code] ?? 0) + 1;
      }
      // One app's key never opens the other's paths.
      if (r.auth === 'globex' && r.path.startsWith('/v1/apps/acme/')) assert.ok(res.status >= 400, `${r.path} with globex's key → ${res.status}`);
    }
    if (process.env['SILK_FUZZ_REPORT']) console.log(JSON.stringify({ statuses, codes }));
    assert.ok(Object.keys(codes).length >= 5, `several error codes: ${JSON.stringify(codes)}`);
    assert.ok((statuses[202] ?? 0) + (statuses[200] ?? 0) > 0, 'some requests were good ones');
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });

  test('fuzz - a body that never ends is cut at maxBodyBytes with 413, and the node goes on', async () => {
    const sock = connect(t.node.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let answer = '';
    sock.on('data', (d) => (answer += String(d)));
    const closed = new Promise((r) => sock.once('close', r));
    sock.on('error', () => undefined);
    sock.write(`POST /v1/apps/acme/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${APP_A.apiKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = 'x'.repeat(8192);
    // As fast as the socket takes it, and on after the answer: the client never stops.
    const writer = setInterval(() => {
      if (!sock.destroyed && sock.writableLength < 65536) sock.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    }, 1);
    await closed;
    clearInterval(writer);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /"code":"payload_too_large"/);
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });
});

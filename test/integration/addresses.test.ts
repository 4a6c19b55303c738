/**
 * Connections per client address: a count and a rate per address, with
 * `X-Forwarded-For` believed only from the proxies `trustedProxies` lists.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { clientAddress } from '../../src/gateway/addresses.js';
import { startTestNode, type TestNode } from '../helpers.js';

/** Open a connection, optionally with an X-Forwarded-For; resolves with the socket once open, or the refusal. */
function open(t: TestNode, token: string, forwardedFor?: string): Promise<{ ws?: WebSocket; status?: number; body?: string; retryAfter?: string }> {
  const ws = new WebSocket(`${t.wsUrl}?token=${token}`, forwardedFor === undefined ? {} : { headers: { 'x-forwarded-for': forwardedFor } });
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('message', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: String(res.headers['retry-after']) }));
    });
  });
}

describe('limits - per client address', { timeout: 30_000 }, () => {
  const nodes: TestNode[] = [];
  after(async () => {
    for (const t of nodes) await t.close();
  });

  test('maxConnectionsPerAddress - an address over its count is refused with 429 address_limit until one of its connections closes', async () => {
    const t = await startTestNode({ limits: { maxConnectionsPerAddress: 2 } });
    nodes.push(t);
    const tok = await t.token('u');
    const a = await open(t, tok);
    const b = await open(t, tok);
    assert.ok(a.ws && b.ws);
    const c = await open(t, tok);
    assert.equal(c.status, 429);
    assert.equal(JSON.parse(c.body!).error.code, 'address_limit');
    assert.equal(c.retryAfter, '1');
    const closed = new Promise((r) => a.ws!.once('close', r));
    a.ws!.close();
    await closed;
    // The server sees the close a moment after the client does.
    for (let i = 0; i < 50; i++) {
      const d = await open(t, tok);
      if (d.ws) {
        d.ws.terminate();
        b.ws!.terminate();
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail('the address never got its connection back');
  });

  test('connectsPerAddressPerSecond - an address opening faster is refused with 429 address_limit, and others are not', async () => {
    const t = await startTestNode({ limits: { connectsPerAddressPerSecond: 3 }, trustedProxies: ['127.0.0.1'] });
    nodes.push(t);
    const tok = await t.token('u');
    const opened: WebSocket[] = [];
    let refused = 0;
    for (let i = 0; i < 6; i++) {
      const r = await open(t, tok, '203.0.113.7');
      if (r.ws) opened.push(r.ws);
      else {
        assert.equal(JSON.parse(r.body!).error.code, 'address_limit');
        refused++;
      }
    }
    assert.ok(opened.length >= 3 && opened.length <= 4, `about 3 a second got in (${opened.length})`);
    assert.ok(refused >= 2);
    // Another client behind the same trusted proxy is its own address.
    const other = await open(t, tok, '203.0.113.8');
    assert.ok(other.ws, 'another address is not limited by the first');
    for (const w of [...opened, other.ws!]) w.terminate();
  });

  test('trustedProxies - X-Forwarded-For counts only from a listed proxy', async () => {
    const t = await startTestNode({ limits: { maxConnectionsPerAddress: 1 } });
    nodes.push(t);
    const tok = await t.token('u');
    const first = await open(t, tok, '198.51.100.1');
    assert.ok(first.ws);
    // Not a trusted proxy: the header is ignored, and both come from 127.0.0.1.
    const second = await open(t, tok, '198.51.100.2');
    assert.equal(second.status, 429);
    first.ws!.terminate();
  });

  test('clientAddress - the last hop a trusted proxy did not add', () => {
    const trusted = new Set(['10.0.0.1', '10.0.0.2']);
    assert.equal(clientAddress('::ffff:10.0.0.9', '1.2.3.4', trusted), '10.0.0.9', 'an untrusted peer is the client');
    assert.equal(clientAddress('10.0.0.1', '1.2.3.4', trusted), '1.2.3.4');
    assert.equal(clientAddress('10.0.0.1', 'spoofed, 1.2.3.4, 10.0.0.2', trusted), '1.2.3.4', 'what the client wrote itself is not believed');
    assert.equal(clientAddress('10.0.0.1', undefined, trusted), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', ['5.6.7.8', '1.2.3.4'], trusted), '1.2.3.4');
    assert.equal(clientAddress('10.0.0.1', '10.0.0.2', trusted), '10.0.0.2', 'all trusted: the farthest proxy');
  });
});

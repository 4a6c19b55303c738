import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { verifyKey, signToken, TokenCache, verifyToken, type KeyLookup } from '../../src/auth/tokens.js';
import { SilkError } from '../../src/core/errors.js';

const KEY = verifyKey('s3cret-for-the-cache-test');
const keyOf: KeyLookup = (app) => (app === 'a' ? KEY : undefined);

function code(verify: () => unknown): string {
  try {
    verify();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof SilkError, String(err));
    return err.code;
  }
}

test('a cached token gives the same grant without verifying again', async () => {
  const cache = new TokenCache(10);
  const token = await signToken({ app: 'a', user: 'u1', secret: 's3cret-for-the-cache-test', ttlSeconds: 60, channels: ['news'] });
  const first = cache.verify(token, keyOf);
  assert.equal(cache.size, 1);
  const second = cache.verify(token, keyOf);
  assert.equal(second, first);
  assert.deepEqual(second, { app: 'a', user: 'u1', expires: first.expires, channels: ['news'] });
});

test('a cached token past its expiry is refused', async () => {
  const cache = new TokenCache(10);
  const token = await signToken({ app: 'a', user: 'u1', secret: 's3cret-for-the-cache-test', ttlSeconds: 60 });
  const grant = cache.verify(token, keyOf);
  assert.equal(code(() => cache.verify(token, keyOf, grant.expires + 1)), 'token_expired');
  assert.equal(cache.size, 0);
});

test('a cached token is verified again once its app signs with another key', async () => {
  const cache = new TokenCache(10);
  const token = await signToken({ app: 'a', user: 'u1', secret: 's3cret-for-the-cache-test', ttlSeconds: 60 });
  cache.verify(token, keyOf);
  const rotated: KeyLookup = (app) => (app === 'a' ? verifyKey('another-secret-now') : undefined);
  assert.equal(code(() => cache.verify(token, rotated)), 'token_invalid');
  const removed: KeyLookup = () => undefined;
  assert.equal(code(() => cache.verify(token, removed)), 'app_not_found');
});

test('refused tokens are never cached, and the cache stays within its bound', async () => {
  const cache = new TokenCache(4);
  const bad = await signToken({ app: 'a', user: 'u1', secret: 'wrong-secret', ttlSeconds: 60 });
  assert.equal(code(() => cache.verify(bad, keyOf)), 'token_invalid');
  assert.equal(code(() => cache.verify(bad, keyOf)), 'token_invalid');
  assert.equal(code(() => cache.verify('', keyOf)), 'token_missing');
  assert.equal(cache.size, 0);
  const tokens = await Promise.all(
    [1, 2, 3, 4, 5].map((i) => signToken({ app: 'a', user: `u${i}`, secret: 's3cret-for-the-cache-test', ttlSeconds: 60 })),
  );
  const grants = tokens.map((t) => cache.verify(t, keyOf));
  assert.ok(cache.size <= 4, `size ${cache.size}`);
  // The newest are kept (a hit returns the very grant cached), the oldest were dropped.
  assert.equal(cache.verify(tokens[4], keyOf), grants[4]);
  assert.equal(cache.verify(tokens[3], keyOf), grants[3]);
  const again = cache.verify(tokens[0], keyOf);
  assert.notEqual(again, grants[0]);
  assert.deepEqual(again, grants[0]);
  assert.ok(cache.size <= 4, `size ${cache.size}`);
});

test('a verification key object accepts the app’s tokens and refuses others', async () => {
  const key = verifyKey('s3cret-for-the-cache-test');
  const lookup: KeyLookup = (app) => (app === 'a' ? key : undefined);
  const good = await signToken({ app: 'a', user: 'u7', secret: 's3cret-for-the-cache-test', ttlSeconds: 60 });
  assert.equal((verifyToken(good, lookup)).user, 'u7');
  const forged = await signToken({ app: 'a', user: 'u7', secret: 'not-the-secret', ttlSeconds: 60 });
  assert.equal(code(() => verifyToken(forged, lookup)), 'token_invalid');
});

test('tokens that are not yet valid, carry an unknown critical header or use another algorithm are refused', () => {
  const secret = 's3cret-for-the-cache-test';
  const hmac = (header: Record<string, unknown>, claims: Record<string, unknown>, hash = 'sha256'): string => {
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
  };
  const exp = Math.floor(Date.now() / 1000) + 60;
  assert.equal(verifyToken(hmac({ alg: 'HS256', typ: 'JWT' }, { app: 'a', sub: 'u', exp }), keyOf).user, 'u');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS256' }, { app: 'a', sub: 'u', exp, nbf: exp - 10 }), keyOf)), 'token_invalid');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS256', crit: ['x'], x: 1 }, { app: 'a', sub: 'u', exp }), keyOf)), 'token_invalid');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS384' }, { app: 'a', sub: 'u', exp }, 'sha384'), keyOf)), 'token_invalid');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS256' }, { app: 'a', sub: 'u', exp: String(exp) }), keyOf)), 'token_invalid');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS256' }, { app: 'a', sub: 'u', exp: exp - 120 }), keyOf)), 'token_expired');
  assert.equal(code(() => verifyToken(hmac({ alg: 'HS256' }, { app: 'a', sub: 7, exp }), keyOf)), 'token_invalid');
});

test('rotation - a token of the previous secret verifies while the app keeps it, and is refused once it is removed, cached or not', async () => {
  const { AppRegistry } = await import('../../src/apps/registry.js');
  const { keysOf } = await import('../../src/auth/tokens.js');
  const apps = new AppRegistry([{ id: 'r', secret: 'new-secret-0123456789-0123456789', apiKey: 'k'.repeat(16), previousSecret: 'old-secret-0123456789-0123456789' }]);
  const keys = keysOf(apps);
  const cache = new TokenCache(10);
  const old = await signToken({ app: 'r', user: 'u', secret: 'old-secret-0123456789-0123456789', ttlSeconds: 60 });
  const fresh = await signToken({ app: 'r', user: 'u', secret: 'new-secret-0123456789-0123456789', ttlSeconds: 60 });
  const wrong = await signToken({ app: 'r', user: 'u', secret: 'not-a-secret-of-this-app-012345', ttlSeconds: 60 });
  assert.equal(cache.verify(old, keys).user, 'u');
  assert.equal(cache.verify(fresh, keys).user, 'u');
  assert.equal(code(() => cache.verify(wrong, keys)), 'token_invalid');
  const expiredOld = await signToken({ app: 'r', user: 'u', secret: 'old-secret-0123456789-0123456789', ttlSeconds: -5 });
  assert.equal(code(() => verifyToken(expiredOld, keys)), 'token_expired', 'the previous secret still checks expiry');
  apps.set({ id: 'r', secret: 'new-secret-0123456789-0123456789', apiKey: 'k'.repeat(16) });
  assert.equal(code(() => cache.verify(old, keys)), 'token_invalid', 'the cached grant of the old secret is not honoured');
  assert.equal(cache.verify(fresh, keys).user, 'u');
});

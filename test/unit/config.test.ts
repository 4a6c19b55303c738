import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyOverrides,
  ConfigError,
  DEFAULT_LIMITS,
  DEFAULTS,
  overridesFromEnv,
  validateConfig,
} from '../../src/config.js';

const app = (id: string, n: number): Record<string, unknown> => ({
  id,
  secret: String(n).repeat(40),
  apiKey: `key-${id}-0123456789abcdef`,
});

/** Assert that `fn` throws a ConfigError whose message names `key`. */
function rejects(fn: () => unknown, key: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.ok(err.message.includes(key), `message ${JSON.stringify(err.message)} does not name ${key}`);
    return true;
  });
}

describe('config', () => {
  test('validateConfig - an empty file gets every default', () => {
    const c = validateConfig({});
    assert.deepEqual(c, DEFAULTS);
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.dataDir, './data');
    assert.deepEqual(c.apps, []);
    assert.equal(c.heartbeatSeconds, 25);
    assert.equal(c.drainSeconds, 10);
    assert.equal(c.logLevel, 'info');
    assert.deepEqual(c.limits, DEFAULT_LIMITS);
  });

  test('validateConfig - given values are kept and missing limits filled in', () => {
    const c = validateConfig({
      port: 0,
      host: '127.0.0.1',
      dataDir: '/var/lib/silk',
      apps: [app('acme', 1)],
      heartbeatSeconds: 0.5,
      drainSeconds: 0,
      logLevel: 'silent',
      limits: { maxFrameBytes: 1024, apiRequestsPerSecond: 0 },
    });
    assert.equal(c.port, 0);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.dataDir, '/var/lib/silk');
    assert.deepEqual(c.apps, [app('acme', 1)]);
    assert.equal(c.heartbeatSeconds, 0.5);
    assert.equal(c.drainSeconds, 0);
    assert.equal(c.logLevel, 'silent');
    assert.deepEqual(c.limits, { ...DEFAULT_LIMITS, maxFrameBytes: 1024, apiRequestsPerSecond: 0 });
  });

  test('validateConfig - validating does not change the defaults', () => {
    validateConfig({ port: 1, limits: { maxRecipients: 2 } });
    assert.equal(DEFAULTS.port, 8080);
    assert.equal(DEFAULT_LIMITS.maxRecipients, 1000);
    assert.equal(validateConfig({}).limits.maxRecipients, 1000);
  });

  test('validateConfig - a file that is not an object is rejected', () => {
    for (const file of [null, [], 'port: 80', 8080]) {
      assert.throws(() => validateConfig(file), ConfigError, JSON.stringify(file));
    }
  });

  test('validateConfig - unknown keys are rejected naming the key', () => {
    rejects(() => validateConfig({ prot: 8080 }), 'prot');
    rejects(() => validateConfig({ limits: { maxFrames: 5 } }), 'limits.maxFrames');
    rejects(() => validateConfig({ apps: [{ ...app('acme', 1), name: 'Acme' }] }), 'apps[0].name');
  });

  test('validateConfig - bad values are rejected naming the key', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ port: 'x' }, 'port'],
      [{ port: '8080' }, 'port'],
      [{ port: 70000 }, 'port'],
      [{ port: -1 }, 'port'],
      [{ port: 80.5 }, 'port'],
      [{ host: '' }, 'host'],
      [{ host: 7 }, 'host'],
      [{ dataDir: '' }, 'dataDir'],
      [{ heartbeatSeconds: 0 }, 'heartbeatSeconds'],
      [{ heartbeatSeconds: -5 }, 'heartbeatSeconds'],
      [{ heartbeatSeconds: '25' }, 'heartbeatSeconds'],
      [{ drainSeconds: -1 }, 'drainSeconds'],
      [{ logLevel: 'verbose' }, 'logLevel'],
      [{ logLevel: 'INFO' }, 'logLevel'],
      [{ limits: 5 }, 'limits'],
      [{ limits: { maxRecipients: -1 } }, 'limits.maxRecipients'],
      [{ limits: { maxFrameBytes: -1024 } }, 'limits.maxFrameBytes'],
      [{ limits: { maxFramesPerSecond: 0 } }, 'limits.maxFramesPerSecond'],
      [{ limits: { apiRequestsPerSecond: -1 } }, 'limits.apiRequestsPerSecond'],
      [{ limits: { maxBodyBytes: 1.5 } }, 'limits.maxBodyBytes'],
      [{ limits: { maxConnectionsPerApp: '10' } }, 'limits.maxConnectionsPerApp'],
      [{ apps: {} }, 'apps'],
      [{ apps: ['acme'] }, 'apps[0]'],
      [{ apps: [{ ...app('acme', 1), secret: 'short' }] }, 'apps[0].secret'],
      [{ apps: [{ ...app('acme', 1), secret: 'x'.repeat(31) }] }, 'apps[0].secret'],
      [{ apps: [{ ...app('acme', 1), apiKey: 'short' }] }, 'apps[0].apiKey'],
      [{ apps: [{ ...app('acme', 1), id: 'has space' }] }, 'apps[0].id'],
      [{ apps: [{ ...app('acme', 1), id: '' }] }, 'apps[0].id'],
      [{ apps: [{ secret: 'x'.repeat(40), apiKey: 'k'.repeat(20) }] }, 'apps[0].id'],
      [{ apps: [app('acme', 1), app('acme', 2)] }, 'apps[1].id'],
      [{ apps: [app('acme', 1), { ...app('globex', 2), apiKey: app('acme', 1)['apiKey'] }] }, 'apps[1].apiKey'],
      [{ apps: [{ ...app('acme', 1), previousSecret: 'short' }] }, 'apps[0].previousSecret'],
      [{ apps: [{ ...app('acme', 1), previousSecret: app('acme', 1)['secret'] }] }, 'apps[0].previousSecret'],
      [{ apps: [{ ...app('acme', 1), previousApiKey: app('acme', 1)['apiKey'] }] }, 'apps[0].previousApiKey'],
      [{ apps: [app('acme', 1), { ...app('globex', 2), previousApiKey: app('acme', 1)['apiKey'] }] }, 'apps[1].previousApiKey'],
      [{ apps: [{ ...app('acme', 1), previousApiKey: 'p'.repeat(20) }, { ...app('globex', 2), apiKey: 'p'.repeat(20) }] }, 'apps[1].apiKey'],
    ];
    for (const [file, key] of bad) rejects(() => validateConfig(file), key);
  });

  test('validateConfig - an app may carry the secret and API key it is rotating out; errors never repeat a secret or key', () => {
    const ok = validateConfig({ apps: [{ ...app('acme', 1), previousSecret: 'p'.repeat(32), previousApiKey: 'q'.repeat(16) }] });
    assert.equal(ok.apps[0]!.previousSecret, 'p'.repeat(32));
    assert.equal(ok.apps[0]!.previousApiKey, 'q'.repeat(16));
    for (const [field, value] of [['secret', 'tooshort-secret-zz'], ['apiKey', 'shortkey-zz'], ['previousSecret', 'tooshort-prev-zz'], ['previousApiKey', 'prevkey-zz']]) {
      assert.throws(
        () => validateConfig({ apps: [{ ...app('acme', 1), [field!]: value }] }),
        (err: Error) => err.message.includes(`apps[0].${field}`) && !err.message.includes(value!),
        field,
      );
    }
  });

  test('validateConfig - Redis Cluster seeds share scheme and credentials, and name no database', () => {
    const ok = validateConfig({ redis: { cluster: ['rediss://u:p%40ss@10.0.0.1:7000', 'rediss://u:p%40ss@10.0.0.2:7000/0'] } });
    assert.deepEqual(ok.redis, { cluster: ['rediss://u:p%40ss@10.0.0.1:7000', 'rediss://u:p%40ss@10.0.0.2:7000/0'] });
    const bad: [string[], string, RegExp][] = [
      [['redis://:a@h1:7000', 'redis://:b@h2:7000'], 'redis.cluster[1]', /same scheme, user and password/],
      [['redis://h1:7000', 'rediss://h2:7000'], 'redis.cluster[1]', /same scheme/],
      [['redis://h1:7000/2'], 'redis.cluster[0]', /only database 0/],
      [['redis://h1:7000?db=2'], 'redis.cluster[0]', /no query/],
      [['http://h1:7000'], 'redis.cluster[0]', /redis: or rediss:/],
    ];
    for (const [cluster, key, why] of bad) {
      rejects(() => validateConfig({ redis: { cluster } }), key);
      assert.throws(() => validateConfig({ redis: { cluster } }), why);
    }
  });

  test('validateConfig - Sentinel takes ACL users and TLS for the master and the Sentinels', () => {
    const sentinel = {
      sentinels: [{ host: '10.0.0.11', port: 26379 }],
      name: 'silk',
      username: 'silk',
      password: 'pw',
      sentinelUsername: 'watcher',
      sentinelPassword: 'spw',
      tls: true,
      sentinelTls: false,
    };
    assert.deepEqual(validateConfig({ redis: { sentinel } }).redis, { sentinel });
    const bad: [Record<string, unknown>, string][] = [
      [{ ...sentinel, tls: 'yes' }, 'redis.sentinel.tls'],
      [{ ...sentinel, sentinelTls: 1 }, 'redis.sentinel.sentinelTls'],
      [{ ...sentinel, username: '' }, 'redis.sentinel.username'],
      [{ ...sentinel, sentinelUsername: 7 }, 'redis.sentinel.sentinelUsername'],
      [{ ...sentinel, ssl: true }, 'redis.sentinel.ssl'],
      [{ ...sentinel, password: undefined }, 'redis.sentinel.username'],
      [{ ...sentinel, sentinelPassword: undefined }, 'redis.sentinel.sentinelUsername'],
    ];
    for (const [s, key] of bad) rejects(() => validateConfig({ redis: { sentinel: s } }), key);
  });

  test('validateConfig - the message says what was given', () => {
    assert.throws(() => validateConfig({ port: 70000 }), /70000/);
    assert.throws(() => validateConfig({ logLevel: 'verbose' }), /verbose/);
  });

  test('validateConfig - limits at the edges of their ranges are accepted', () => {
    const c = validateConfig({ limits: { maxFrameBytes: 256, maxBodyBytes: 1024, maxMessageBytes: 16, maxRecipients: 1 } });
    assert.equal(c.limits.maxFrameBytes, 256);
    assert.equal(c.limits.maxRecipients, 1);
    rejects(() => validateConfig({ limits: { maxFrameBytes: 255 } }), 'limits.maxFrameBytes');
  });

  test('validateConfig - maxDeferredBytes holds a frame of the largest size, and grows with maxFrameBytes when unset', () => {
    assert.equal(validateConfig({}).limits.maxDeferredBytes, 262144);
    assert.equal(validateConfig({ limits: { maxFrameBytes: 1048576 } }).limits.maxDeferredBytes, 1048576);
    assert.equal(validateConfig({ limits: { maxFrameBytes: 1024, maxDeferredBytes: 1024 } }).limits.maxDeferredBytes, 1024);
    rejects(() => validateConfig({ limits: { maxFrameBytes: 65536, maxDeferredBytes: 4096 } }), 'limits.maxDeferredBytes');
  });

  test('overridesFromEnv - reads SILK_PORT, SILK_HOST and SILK_DATA_DIR only', () => {
    assert.deepEqual(overridesFromEnv({}), {});
    assert.deepEqual(overridesFromEnv({ SILK_PORT: '9000', SILK_HOST: '::1', SILK_DATA_DIR: '/tmp/silk', PORT: '1', HOME: '/root' }), {
      port: 9000,
      host: '::1',
      dataDir: '/tmp/silk',
    });
    assert.deepEqual(overridesFromEnv({ SILK_PORT: '0' }), { port: 0 });
  });

  test('overridesFromEnv - bad values are rejected naming the variable', () => {
    for (const port of ['x', '70000', '-1', '80.5', '', ' 80', '8080abc', '0x50']) {
      rejects(() => overridesFromEnv({ SILK_PORT: port }), 'SILK_PORT');
    }
    rejects(() => overridesFromEnv({ SILK_HOST: '' }), 'SILK_HOST');
    rejects(() => overridesFromEnv({ SILK_DATA_DIR: '' }), 'SILK_DATA_DIR');
  });

  test('applyOverrides - environment overrides the file, flags override the environment', () => {
    const file = validateConfig({ port: 1000, host: 'file-host', dataDir: 'file-dir', logLevel: 'warn' });
    const env = overridesFromEnv({ SILK_PORT: '2000', SILK_HOST: 'env-host' });
    const flags = { port: 3000 };
    const envOnly = applyOverrides(file, env);
    assert.equal(envOnly.port, 2000);
    assert.equal(envOnly.host, 'env-host');
    assert.equal(envOnly.dataDir, 'file-dir');
    const all = applyOverrides(file, env, flags);
    assert.equal(all.port, 3000);
    assert.equal(all.host, 'env-host');
    assert.equal(all.dataDir, 'file-dir');
    assert.equal(all.logLevel, 'warn');
    assert.deepEqual(all.limits, DEFAULT_LIMITS);
    // The file's configuration object is not modified.
    assert.equal(file.port, 1000);
  });

  test('applyOverrides - no layers keeps the configuration', () => {
    const file = validateConfig({ port: 1234 });
    assert.deepEqual(applyOverrides(file), file);
    assert.deepEqual(applyOverrides(file, {}, {}), file);
  });
});

/**
 * Configuration: every default in one object, one validator that rejects
 * unknown keys and bad values with a message naming the exact key.
 *
 * Precedence, lowest first: defaults, the JSON file, environment variables,
 * command-line flags. `docs/configuration.md` documents each key.
 */
import { isIP } from 'node:net';

/**
 * One tenant: its id, the secret that signs its connection tokens, its API
 * key, and during a rotation the ones they replace (still accepted until
 * removed).
 */
export interface AppConfig {
  readonly id: string;
  readonly secret: string;
  readonly apiKey: string;
  readonly previousSecret?: string;
  readonly previousApiKey?: string;
}

/** Bounds on every buffer, queue and rate. */
export interface Limits {
  /** Largest inbound WebSocket frame (bytes). @default 65536 */
  readonly maxFrameBytes: number;
  /** Largest HTTP request body (bytes). @default 1048576 */
  readonly maxBodyBytes: number;
  /** Largest published `data`, serialised (bytes). @default 65536 */
  readonly maxMessageBytes: number;
  /** Users or channels one message may name. @default 1000 */
  readonly maxRecipients: number;
  /** Messages one `POST …/messages/batch` request may carry. @default 1000 */
  readonly maxBatchMessages: number;
  /** Channels one connection may be subscribed to. @default 128 */
  readonly maxSubscriptionsPerConnection: number;
  /** Inbound frames per second per connection before it is closed. @default 100 */
  readonly maxFramesPerSecond: number;
  /** Bytes queued for one connection before it is closed as a slow consumer. @default 4194304 */
  readonly maxOutboundBytes: number;
  /** Bytes queued for all connections of the node together; over it the largest queues are cut first. @default 268435456 */
  readonly maxOutboundBytesTotal: number;
  /** Bytes of client frames that may wait while a connection catches up from the store, before it is closed. @default 262144, or maxFrameBytes if larger */
  readonly maxDeferredBytes: number;
  /** Stored messages all catch-ups of the node may send per turn of the event loop (a store read counts as one). @default 1000 */
  readonly catchupFramesPerTurn: number;
  /** Catch-ups of the node that may read the store at once; the others wait in line. @default 64 */
  readonly catchupConcurrency: number;
  /** Connections the node opens per turn of the event loop (handshake, session, welcome); the others wait for a later turn. @default 100 */
  readonly connectsPerTurn: number;
  /** Open connections from one client address on this node. @default 10000 */
  readonly maxConnectionsPerAddress: number;
  /** Connections one client address may open per second on this node (a bucket of as many). @default 1000 */
  readonly connectsPerAddressPerSecond: number;
  /** Open connections per app. @default 100000 */
  readonly maxConnectionsPerApp: number;
  /** Server API requests per second per app (0: unlimited). @default 10000 */
  readonly apiRequestsPerSecond: number;
  /** Longest `ttl` a durable message may ask for (seconds). @default 2592000 (30 days) */
  readonly maxTtlSeconds: number;
  /** Messages one user's inbox keeps; beyond it the oldest are dropped. @default 1000 */
  readonly inboxMaxMessages: number;
  /** Bytes of `data` one user's inbox keeps; beyond it the oldest are dropped. @default 4194304 */
  readonly inboxMaxBytes: number;
  /** Inbox messages sent after `welcome`, and the default page of an `inbox` request. @default 100 */
  readonly inboxPageSize: number;
  /** Durable messages one channel's history keeps. @default 1000 */
  readonly historyMaxMessages: number;
  /** Seconds a durable message stays in its channel's history. @default 86400 */
  readonly historyMaxAgeSeconds: number;
  /** Seconds an idempotency key is remembered. @default 86400 */
  readonly idempotencySeconds: number;
}

export interface Config {
  /** TCP port for the HTTP API and WebSocket connections. @default 8080 */
  readonly port: number;
  /** Address to listen on. @default "0.0.0.0" */
  readonly host: string;
  /** Where the node keeps its state. @default "./data" */
  readonly dataDir: string;
  /** The tenants. Empty: a `default` app is created and kept in the data dir. */
  readonly apps: readonly AppConfig[];
  /** Seconds between server pings; a client silent for 1.5 intervals is closed at its next visit. @default 25 */
  readonly heartbeatSeconds: number;
  /** Seconds a drain (SIGTERM) waits for clients to close before closing them by force. @default 10 */
  readonly drainSeconds: number;
  /** Window over which a draining node tells its clients to come back (a `reconnect` frame before the 1001 close); 0: no hint. @default 10 */
  readonly drainSpreadSeconds: number;
  /** pino log level. @default "info" */
  readonly logLevel: LogLevel;
  /** Development mode: `POST /v1/dev/token` answers anyone (it hands out the API key). @default false */
  readonly dev: boolean;
  /** Where durable messages live: `sqlite` (in the data dir) or `memory` (lost at exit). @default "sqlite" */
  readonly store: StoreEngine;
  /** SQLite `synchronous`: `normal` survives process crashes, `full` also power loss. @default "normal" */
  readonly sqliteSynchronous: SqliteSynchronous;
  /** Cluster mode: the Redis every node shares (store, presence, bus, ids). null: the embedded engines. @default null */
  readonly redis: RedisConfig | null;
  /** What this node does: `gateway` (holds connections), `api` (serves the server API). @default ["gateway","api"] */
  readonly roles: readonly Role[];
  /** Seconds after its last heartbeat that a node (and every route to it) counts as gone. @default 6 */
  readonly nodeTtlSeconds: number;
  /** The URL this node is reached at, listed by `GET /v1/nodes`. @default "http://<host>:<port>" */
  readonly advertiseUrl: string | null;
  /** Peers whose `X-Forwarded-For` is believed (proxies in front of Silk), as IP addresses. @default [] */
  readonly trustedProxies: readonly string[];
  readonly limits: Limits;
}

/** A Redis deployment: one server, a Sentinel-watched master, or a Redis Cluster. */
export type RedisConfig =
  | { readonly url: string }
  | {
      readonly sentinel: {
        readonly sentinels: readonly { readonly host: string; readonly port: number }[];
        readonly name: string;
        /** ACL user and password for the master and replicas (`AUTH`). */
        readonly username?: string;
        readonly password?: string;
        /** ACL user and password for the Sentinels. */
        readonly sentinelUsername?: string;
        readonly sentinelPassword?: string;
        /** Speak TLS to the master and replicas. */
        readonly tls?: boolean;
        /** Speak TLS to the Sentinels. */
        readonly sentinelTls?: boolean;
      };
    }
  | { readonly cluster: readonly string[] };

export const ROLES = ['gateway', 'api'] as const;
export type Role = (typeof ROLES)[number];

export const STORE_ENGINES = ['sqlite', 'memory'] as const;
export type StoreEngine = (typeof STORE_ENGINES)[number];
export const SQLITE_SYNCHRONOUS = ['normal', 'full'] as const;
export type SqliteSynchronous = (typeof SQLITE_SYNCHRONOUS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxFrameBytes: 65536,
  maxBodyBytes: 1048576,
  maxMessageBytes: 65536,
  maxRecipients: 1000,
  maxBatchMessages: 1000,
  maxSubscriptionsPerConnection: 128,
  maxFramesPerSecond: 100,
  maxOutboundBytes: 4194304,
  maxOutboundBytesTotal: 268435456,
  maxDeferredBytes: 262144,
  catchupFramesPerTurn: 1000,
  catchupConcurrency: 64,
  connectsPerTurn: 100,
  maxConnectionsPerAddress: 10000,
  connectsPerAddressPerSecond: 1000,
  maxConnectionsPerApp: 100000,
  apiRequestsPerSecond: 10000,
  maxTtlSeconds: 2592000,
  inboxMaxMessages: 1000,
  inboxMaxBytes: 4194304,
  inboxPageSize: 100,
  historyMaxMessages: 1000,
  historyMaxAgeSeconds: 86400,
  idempotencySeconds: 86400,
});

export const DEFAULTS: Config = Object.freeze({
  port: 8080,
  host: '0.0.0.0',
  dataDir: './data',
  apps: [],
  heartbeatSeconds: 25,
  drainSeconds: 10,
  drainSpreadSeconds: 10,
  logLevel: 'info',
  dev: false,
  store: 'sqlite',
  sqliteSynchronous: 'normal',
  redis: null,
  roles: ['gateway', 'api'] as Role[],
  nodeTtlSeconds: 6,
  advertiseUrl: null,
  trustedProxies: [],
  limits: DEFAULT_LIMITS,
});

/** A configuration problem; the message names the key and what is wrong. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Where an integer limit may lie. */
const LIMIT_RANGES: Record<keyof Limits, readonly [number, number]> = {
  maxFrameBytes: [256, 16 * 1024 * 1024],
  maxBodyBytes: [1024, 64 * 1024 * 1024],
  maxMessageBytes: [16, 16 * 1024 * 1024],
  maxRecipients: [1, 1_000_000],
  maxBatchMessages: [1, 100_000],
  maxSubscriptionsPerConnection: [1, 100_000],
  maxFramesPerSecond: [1, 1_000_000],
  maxOutboundBytes: [1024, 1024 * 1024 * 1024],
  maxOutboundBytesTotal: [1024, 1024 * 1024 * 1024 * 1024],
  maxDeferredBytes: [1024, 1024 * 1024 * 1024],
  catchupFramesPerTurn: [1, 1_000_000],
  catchupConcurrency: [1, 100_000],
  connectsPerTurn: [1, 100_000],
  maxConnectionsPerAddress: [1, 100_000_000],
  connectsPerAddressPerSecond: [1, 1_000_000],
  maxConnectionsPerApp: [1, 100_000_000],
  apiRequestsPerSecond: [0, 100_000_000],
  maxTtlSeconds: [1, 10 * 365 * 86400],
  inboxMaxMessages: [1, 1_000_000],
  inboxMaxBytes: [1024, 1024 * 1024 * 1024],
  inboxPageSize: [1, 1000],
  historyMaxMessages: [1, 1_000_000],
  historyMaxAgeSeconds: [1, 10 * 365 * 86400],
  idempotencySeconds: [1, 30 * 86400],
};

const APP_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TOP_KEYS = new Set([
  'port',
  'host',
  'dataDir',
  'apps',
  'heartbeatSeconds',
  'drainSeconds',
  'drainSpreadSeconds',
  'logLevel',
  'dev',
  'store',
  'sqliteSynchronous',
  'redis',
  'roles',
  'nodeTtlSeconds',
  'advertiseUrl',
  'trustedProxies',
  'limits',
]);
const APP_KEYS = new Set(['id', 'secret', 'apiKey', 'previousSecret', 'previousApiKey']);

function fail(key: string, what: string, got: unknown): never {
  throw new ConfigError(`${key} ${what}, got ${JSON.stringify(got) ?? String(got)}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function url(key: string, v: unknown, protocols: readonly string[]): string {
  if (typeof v !== 'string') fail(key, 'must be a URL string', v);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    fail(key, 'must be a URL', v);
  }
  if (!protocols.includes(u.protocol)) fail(key, `must be a ${protocols.join(' or ')} URL`, v);
  return v;
}

/** `"redis://…"`, `{ "sentinel": {…} }` or `{ "cluster": ["redis://…", …] }`. */
function validateRedis(v: unknown): RedisConfig {
  if (typeof v === 'string') return { url: url('redis', v, ['redis:', 'rediss:']) };
  if (!isObject(v)) fail('redis', 'must be a redis:// URL, {"sentinel": {…}} or {"cluster": [urls]}', v);
  const keys = Object.keys(v);
  if (keys.length !== 1 || (keys[0] !== 'sentinel' && keys[0] !== 'cluster')) {
    fail('redis', 'must have exactly one key: sentinel or cluster', v);
  }
  if (keys[0] === 'cluster') {
    const nodes = v['cluster'];
    if (!Array.isArray(nodes) || nodes.length === 0) fail('redis.cluster', 'must be a non-empty array of redis:// URLs', nodes);
    const urls = nodes.map((n, i) => url(`redis.cluster[${i}]`, n, ['redis:', 'rediss:']));
    // One scheme and one set of credentials for the whole cluster: ioredis connects to every node
    // it discovers with them, not only to the seeds.
    const auth = (u: URL): string => `${u.protocol}//${u.username}:${u.password}`;
    const first = new URL(urls[0]!);
    urls.forEach((text, i) => {
      const u = new URL(text);
      if (auth(u) !== auth(first)) fail(`redis.cluster[${i}]`, 'every seed URL must have the same scheme, user and password', text);
      if (u.pathname !== '' && u.pathname !== '/' && u.pathname !== '/0') {
        fail(`redis.cluster[${i}]`, 'a Redis Cluster has only database 0: drop the /db path', text);
      }
      if (u.search !== '' || u.hash !== '') fail(`redis.cluster[${i}]`, 'takes no query or fragment', text);
    });
    return { cluster: urls };
  }
  const s = v['sentinel'];
  if (!isObject(s)) fail('redis.sentinel', 'must be an object', s);
  checkKeys(s, new Set(['sentinels', 'name', 'username', 'password', 'sentinelUsername', 'sentinelPassword', 'tls', 'sentinelTls']), 'redis.sentinel.');
  const list = s['sentinels'];
  if (!Array.isArray(list) || list.length === 0) fail('redis.sentinel.sentinels', 'must be a non-empty array of {host, port}', list);
  const sentinels = list.map((x, i) => {
    const where = `redis.sentinel.sentinels[${i}]`;
    if (!isObject(x)) fail(where, 'must be {host, port}', x);
    checkKeys(x, new Set(['host', 'port']), `${where}.`);
    return { host: string(`${where}.host`, x['host']), port: integer(`${where}.port`, x['port'], 1, 65535) };
  });
  // An ACL user without its password would be sent as `AUTH <user>`, which Redis takes for the default user's password.
  if (s['username'] !== undefined && s['password'] === undefined) fail('redis.sentinel.username', 'needs redis.sentinel.password', s['username']);
  if (s['sentinelUsername'] !== undefined && s['sentinelPassword'] === undefined) {
    fail('redis.sentinel.sentinelUsername', 'needs redis.sentinel.sentinelPassword', s['sentinelUsername']);
  }
  return {
    sentinel: {
      sentinels,
      name: string('redis.sentinel.name', s['name']),
      ...(s['username'] !== undefined ? { username: string('redis.sentinel.username', s['username']) } : {}),
      ...(s['password'] !== undefined ? { password: string('redis.sentinel.password', s['password']) } : {}),
      ...(s['sentinelUsername'] !== undefined ? { sentinelUsername: string('redis.sentinel.sentinelUsername', s['sentinelUsername']) } : {}),
      ...(s['sentinelPassword'] !== undefined ? { sentinelPassword: string('redis.sentinel.sentinelPassword', s['sentinelPassword']) } : {}),
      ...(s['tls'] !== undefined ? { tls: boolean('redis.sentinel.tls', s['tls']) } : {}),
      ...(s['sentinelTls'] !== undefined ? { sentinelTls: boolean('redis.sentinel.sentinelTls', s['sentinelTls']) } : {}),
    },
  };
}

/** A non-empty list of roles, from the file (array) or a flag (comma-separated). */
export function validateRoles(key: string, v: unknown): Role[] {
  const list = typeof v === 'string' ? v.split(',').map((r) => r.trim()) : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((r) => ROLES.includes(r as Role))) {
    fail(key, `must be a non-empty list of ${ROLES.join(', ')}`, v);
  }
  return [...new Set(list as Role[])];
}

function oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) fail(key, `must be one of ${allowed.join(', ')}`, v);
  return v as T;
}

function checkKeys(obj: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.has(k)) {
      throw new ConfigError(`${where}${k} is not a known key (known: ${[...allowed].join(', ')})`);
    }
  }
}

function integer(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(key, `must be an integer from ${min} to ${max}`, v);
  }
  return v;
}

function seconds(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    fail(key, `must be a number of seconds from ${min} to ${max}`, v);
  }
  return v;
}

function boolean(key: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(key, 'must be true or false', v);
  return v;
}

function string(key: string, v: unknown, minLength = 1): string {
  if (typeof v !== 'string' || v.length < minLength) {
    fail(key, minLength > 1 ? `must be a string of at least ${minLength} characters` : 'must be a non-empty string', v);
  }
  return v;
}

/** A secret or key: as {@link string}, but an error never repeats the value (it ends up in logs). */
function secretString(key: string, v: unknown, minLength: number): string {
  if (typeof v !== 'string' || v.length < minLength) {
    throw new ConfigError(`${key} must be a string of at least ${minLength} characters, got ${typeof v === 'string' ? `${v.length} characters` : typeof v}`);
  }
  return v;
}

function validateProxies(v: unknown): string[] {
  if (!Array.isArray(v)) fail('trustedProxies', 'must be an array of IP addresses', v);
  return v.map((a: unknown, i) => {
    if (typeof a !== 'string' || isIP(a) === 0) fail(`trustedProxies[${i}]`, 'must be an IP address such as "10.0.0.2" or "::1"', a);
    return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
  });
}

function validateApps(v: unknown): AppConfig[] {
  if (!Array.isArray(v)) fail('apps', 'must be an array', v);
  const ids = new Set<string>();
  const keys = new Set<string>();
  return v.map((raw: unknown, i) => {
    const where = `apps[${i}]`;
    if (!isObject(raw)) fail(where, 'must be an object', raw);
    checkKeys(raw, APP_KEYS, `${where}.`);
    const id = string(`${where}.id`, raw['id']);
    if (!APP_ID.test(id)) fail(`${where}.id`, 'must be 1–64 characters of A-Z a-z 0-9 _ -', id);
    // HS256 wants a key at least as long as the hash (RFC 7518 §3.2).
    const secret = secretString(`${where}.secret`, raw['secret'], 32);
    const apiKey = secretString(`${where}.apiKey`, raw['apiKey'], 16);
    const previousSecret = raw['previousSecret'] === undefined ? undefined : secretString(`${where}.previousSecret`, raw['previousSecret'], 32);
    const previousApiKey = raw['previousApiKey'] === undefined ? undefined : secretString(`${where}.previousApiKey`, raw['previousApiKey'], 16);
    if (ids.has(id)) fail(`${where}.id`, 'is used by another app', id);
    if (previousSecret === secret) throw new ConfigError(`${where}.previousSecret is the same as its secret`);
    if (previousApiKey === apiKey) throw new ConfigError(`${where}.previousApiKey is the same as its apiKey`);
    for (const [k, key] of [['apiKey', apiKey], ['previousApiKey', previousApiKey]] as const) {
      if (key === undefined) continue;
      if (keys.has(key)) throw new ConfigError(`${where}.${k} is used by another app`);
      keys.add(key);
    }
    ids.add(id);
    return {
      id,
      secret,
      apiKey,
      ...(previousSecret !== undefined ? { previousSecret } : {}),
      ...(previousApiKey !== undefined ? { previousApiKey } : {}),
    };
  });
}

function validateLimits(v: unknown): Limits {
  if (!isObject(v)) fail('limits', 'must be an object', v);
  checkKeys(v, new Set(Object.keys(DEFAULT_LIMITS)), 'limits.');
  const out: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [k, range] of Object.entries(LIMIT_RANGES)) {
    if (v[k] !== undefined) out[k] = integer(`limits.${k}`, v[k], range[0], range[1]);
  }
  // Unset, it grows with maxFrameBytes, so that a configuration written before it existed still loads.
  if (v['maxDeferredBytes'] === undefined) out['maxDeferredBytes'] = Math.max(DEFAULT_LIMITS.maxDeferredBytes, out['maxFrameBytes']!);
  return out as unknown as Limits;
}

/**
 * Validate a parsed configuration file (or `{}`), filling in defaults.
 * @throws ConfigError naming the first bad key
 */
export function validateConfig(file: unknown): Config {
  if (!isObject(file)) fail('the configuration', 'must be a JSON object', file);
  checkKeys(file, TOP_KEYS, '');
  const c = { ...DEFAULTS } as { -readonly [K in keyof Config]: Config[K] };
  if (file['port'] !== undefined) c.port = integer('port', file['port'], 0, 65535);
  if (file['host'] !== undefined) c.host = string('host', file['host']);
  if (file['dataDir'] !== undefined) c.dataDir = string('dataDir', file['dataDir']);
  if (file['apps'] !== undefined) c.apps = validateApps(file['apps']);
  if (file['heartbeatSeconds'] !== undefined) {
    c.heartbeatSeconds = seconds('heartbeatSeconds', file['heartbeatSeconds'], 0.05, 3600);
  }
  if (file['drainSeconds'] !== undefined) c.drainSeconds = seconds('drainSeconds', file['drainSeconds'], 0, 3600);
  if (file['drainSpreadSeconds'] !== undefined) c.drainSpreadSeconds = seconds('drainSpreadSeconds', file['drainSpreadSeconds'], 0, 3600);
  if (file['logLevel'] !== undefined) {
    if (!LOG_LEVELS.includes(file['logLevel'] as LogLevel)) {
      fail('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`, file['logLevel']);
    }
    c.logLevel = file['logLevel'] as LogLevel;
  }
  if (file['dev'] !== undefined) c.dev = boolean('dev', file['dev']);
  if (file['store'] !== undefined) c.store = oneOf('store', file['store'], STORE_ENGINES);
  if (file['sqliteSynchronous'] !== undefined) {
    c.sqliteSynchronous = oneOf('sqliteSynchronous', file['sqliteSynchronous'], SQLITE_SYNCHRONOUS);
  }
  if (file['redis'] !== undefined && file['redis'] !== null) c.redis = validateRedis(file['redis']);
  if (file['roles'] !== undefined) c.roles = validateRoles('roles', file['roles']);
  if (file['nodeTtlSeconds'] !== undefined) c.nodeTtlSeconds = seconds('nodeTtlSeconds', file['nodeTtlSeconds'], 1, 300);
  if (file['advertiseUrl'] !== undefined) c.advertiseUrl = url('advertiseUrl', file['advertiseUrl'], ['http:', 'https:']);
  if (file['trustedProxies'] !== undefined) c.trustedProxies = validateProxies(file['trustedProxies']);
  if (file['limits'] !== undefined) c.limits = validateLimits(file['limits']);
  // A message must fit in an empty inbox, or storing it would evict it at once.
  if (c.limits.inboxMaxBytes < c.limits.maxMessageBytes) {
    throw new ConfigError(
      `limits.inboxMaxBytes (${c.limits.inboxMaxBytes}) must be at least limits.maxMessageBytes (${c.limits.maxMessageBytes})`,
    );
  }
  // One frame of the largest size must be able to wait out a catch-up.
  if (c.limits.maxDeferredBytes < c.limits.maxFrameBytes) {
    throw new ConfigError(
      `limits.maxDeferredBytes (${c.limits.maxDeferredBytes}) must be at least limits.maxFrameBytes (${c.limits.maxFrameBytes})`,
    );
  }
  return c;
}

/** Overrides from the environment and flags, already typed. */
export interface Overrides {
  port?: number;
  host?: string;
  dataDir?: string;
  dev?: boolean;
  redis?: RedisConfig;
  roles?: readonly Role[];
}

/**
 * Read `SILK_PORT`, `SILK_HOST`, `SILK_DATA_DIR` from an environment.
 * @throws ConfigError on a bad value
 */
export function overridesFromEnv(env: Readonly<Record<string, string | undefined>>): Overrides {
  const o: Overrides = {};
  if (env['SILK_PORT'] !== undefined) o.port = parsePort('SILK_PORT', env['SILK_PORT']);
  if (env['SILK_HOST'] !== undefined) o.host = string('SILK_HOST', env['SILK_HOST']);
  if (env['SILK_DATA_DIR'] !== undefined) o.dataDir = string('SILK_DATA_DIR', env['SILK_DATA_DIR']);
  if (env['SILK_REDIS_URL'] !== undefined) o.redis = validateRedis(env['SILK_REDIS_URL']);
  if (env['SILK_ROLES'] !== undefined) o.roles = validateRoles('SILK_ROLES', env['SILK_ROLES']);
  return o;
}

/** Parse a redis:// URL given as text (flag). */
export function parseRedisUrl(key: string, text: string): RedisConfig {
  return { url: url(key, text, ['redis:', 'rediss:']) };
}

/** Parse a port given as text (env or flag). */
export function parsePort(key: string, text: string): number {
  if (!/^\d{1,5}$/.test(text)) fail(key, 'must be an integer from 0 to 65535', text);
  return integer(key, Number(text), 0, 65535);
}

/** Apply overrides in order (later wins). */
export function applyOverrides(config: Config, ...layers: Overrides[]): Config {
  let out = config;
  for (const layer of layers) out = { ...out, ...layer };
  return out;
}

/**
 * The composition root: builds one Silk node from a validated configuration
 * and wires the engines, the gateway, the API and metrics. Nothing else
 * constructs these parts.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { readFileSync } from 'node:fs';
import { HttpApi, type DevTokens, type StaticFile } from './api/http-api.js';
import { signToken, verifyKey } from './auth/tokens.js';
import type { AppConfig, Config } from './config.js';
import { loadOrCreateDefaultApp, type DefaultApp } from './default-app.js';
import { SilkError } from './core/errors.js';
import { Hub } from './core/hub.js';
import { BlockIds } from './core/ids.js';
import { isSignal } from './core/message.js';
import type { NodeInfo } from './core/ports.js';
import type { Store } from './core/store.js';
import { openEngines } from './engines.js';
import { CONNECT_PATH, WebSocketGateway } from './gateway/websocket.js';
import { Metrics } from './metrics.js';

/** Files served as they are: the browser SDK bundle and the demo page, relative to this module in dist/src. */
const FILES: readonly { path: readonly string[]; file: string; contentType: string }[] = [
  { path: ['/sdk/silk.js'], file: '../sdk/silk.js', contentType: 'text/javascript; charset=utf-8' },
  { path: ['/', '/index.html'], file: '../../demo/index.html', contentType: 'text/html; charset=utf-8' },
];

/** Read the files to serve; a missing one is logged and not served. */
function loadFiles(logger: Logger): Map<string, StaticFile> {
  const out = new Map<string, StaticFile>();
  for (const f of FILES) {
    let body: Buffer;
    try {
      body = readFileSync(new URL(f.file, import.meta.url));
    } catch (err) {
      logger.warn({ file: f.file, err: (err as Error).message }, 'not serving a missing file (run npm run build)');
      continue;
    }
    for (const p of f.path) out.set(p, { contentType: f.contentType, body });
  }
  return out;
}

/** Demo tokens for the demo page: with the implicit `default` app (loopback only) or in `--dev` mode. */
function devTokens(config: Config, apps: readonly AppConfig[], implicit: boolean): DevTokens | undefined {
  if (!config.dev && !implicit) return undefined;
  return {
    loopbackOnly: !config.dev,
    defaultApp: apps[0]!.id,
    async mint(app, user, channels) {
      const a = apps.find((x) => x.id === app);
      if (a === undefined) throw new SilkError('app_not_found', `no app ${JSON.stringify(app)}`);
      const token = await signToken({ app, user, secret: a.secret, ttlSeconds: 3600, ...(channels !== undefined ? { channels } : {}) });
      return { token, apiKey: a.apiKey };
    },
  };
}

/** How often expired and aged stored messages are removed (ms). */
const SWEEP_MS = 30_000;
/** A sweep that removed this many rows may have left more. */
const SWEEP_BATCH = 1000;

/** Node lifecycle states. */
export type NodeState = 'running' | 'draining' | 'closed';

export interface NodeOptions {
  /** Logger; defaults to pino on stdout at `config.logLevel`. */
  readonly logger?: Logger;
  /** A store to use instead of the one `config.store` names (the node closes it). */
  readonly store?: Store;
}

/** A running Silk node. */
export interface SilkNode {
  readonly id: string;
  /** Bound port (useful with port 0). */
  readonly port: number;
  /** `http://host:port` of the node. */
  readonly url: string;
  /** The apps served, including a created `default` app. */
  readonly apps: readonly AppConfig[];
  /** The message store (for tests and tools that read what is stored). */
  readonly store: Store;
  /** Set when the node runs on the `default` app from the data dir. */
  readonly defaultApp: DefaultApp | undefined;
  readonly state: NodeState;
  /** Socket writes to clients so far and the frames they carried (zeros without a gateway). */
  readonly written: { readonly writes: number; readonly frames: number };
  /** Refuse new connections, close open ones with "going away", then stop (within `drainSeconds`). */
  drain(): Promise<void>;
  /** Stop at once, cutting connections. */
  close(): Promise<void>;
}

/** Start a node and resolve once it listens. */
export async function startNode(config: Config, options: NodeOptions = {}): Promise<SilkNode> {
  const logger = options.logger ?? pino({ level: config.logLevel, base: { pid: process.pid } });
  let defaultApp: DefaultApp | undefined;
  let apps = config.apps;
  if (apps.length === 0) {
    defaultApp = loadOrCreateDefaultApp(config.dataDir);
    apps = [defaultApp.app];
  }
  const id = randomBytes(4).toString('hex');
  const byId = new Map(apps.map((a) => [a.id, a]));
  const keys = new Map(apps.map((a) => [a.id, verifyKey(a.secret)]));
  const appIds = apps.map((a) => a.id);
  const started = new Date().toISOString();
  const hasGateway = config.roles.includes('gateway');
  const hasApi = config.roles.includes('api');
  let port = config.port;
  const hostPart = config.host.includes(':') ? `[${config.host}]` : config.host;
  const baseUrl = (): string => `http://${hostPart === '0.0.0.0' ? '127.0.0.1' : hostPart === '[::]' ? '[::1]' : hostPart}:${port}`;

  const hub = new Hub();
  let gateway: WebSocketGateway | null = null;
  const info = (): NodeInfo => ({
    id,
    url: config.advertiseUrl ?? baseUrl(),
    roles: config.roles,
    started,
    load: gateway?.size ?? 0,
  });
  const engines = await openEngines({
    config,
    hub,
    node: info,
    apps: () => appIds,
    logger,
    ...(options.store !== undefined ? { store: options.store } : {}),
  });
  const { store, bus, presence } = engines;
  const ids = new BlockIds(store);
  try {
    await ids.ensure(1);
  } catch (err) {
    await engines.close();
    throw err;
  }
  const metrics = new Metrics(hub, () => appIds);
  if (hasGateway) {
    gateway = new WebSocketGateway({
      hub,
      store,
      bus,
      keyOf: (app) => keys.get(app),
      nodeId: id,
      heartbeatSeconds: config.heartbeatSeconds,
      limits: config.limits,
      logger,
      events: metrics,
    });
    const g = gateway;
    metrics.countWrites(() => g.written);
  }
  let state: NodeState = 'running';
  const dev = hasApi ? devTokens(config, apps, defaultApp !== undefined) : undefined;
  const api = new HttpApi({
    apps: byId,
    hub,
    bus,
    ids,
    store,
    presence,
    limits: config.limits,
    logger,
    serveApps: hasApi,
    ready: () => (state !== 'running' ? new SilkError('draining', 'the node is draining') : engines.unready()),
    metrics: () => metrics.scrape(),
    events: metrics,
    files: loadFiles(logger),
    ...(dev !== undefined ? { dev } : {}),
  });

  bus.onMessage((m) => {
    metrics.busReceived();
    if (!isSignal(m)) hub.deliver(m);
    else if (m.kind === 'unread') hub.unread(m.app, m.user, m.count);
    else gateway?.disconnectUser(m.app, m.user);
  });
  // Expired inbox messages, aged history and old idempotency keys go in the background.
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    void (async () => {
      // Each sweep removes a bounded batch in one group commit; go on while batches come back full.
      for (let i = 0; i < 100; i++) if ((await store.sweep()) < SWEEP_BATCH) break;
    })()
      .catch((err: unknown) => logger.warn({ err }, 'store sweep failed'))
      .finally(() => {
        sweeping = false;
      });
  }, SWEEP_MS);
  sweeper.unref();

  const server: Server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => api.handle(req, res));
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === CONNECT_PATH && gateway !== null) return gateway.handleUpgrade(req, socket, head);
    const err = new SilkError('not_found', gateway === null ? 'this node has no gateway role' : `no WebSocket route ${path}`);
    const body = JSON.stringify(err.toJSON());
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
    await engines.start();
  } catch (err) {
    clearInterval(sweeper);
    server.close();
    gateway?.close();
    await engines.close();
    throw err;
  }
  logger.info({ node: id, port, host: config.host, apps: appIds, roles: config.roles, cluster: config.redis !== null }, 'silk node listening');

  const stop = async (): Promise<void> => {
    state = 'closed';
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    clearInterval(sweeper);
    await engines.close();
    logger.info({ node: id }, 'silk node stopped');
  };

  return {
    id,
    port,
    url: baseUrl(),
    apps,
    store,
    defaultApp,
    get state() {
      return state;
    },
    get written() {
      return gateway?.written ?? { writes: 0, frames: 0 };
    },
    async drain() {
      if (state !== 'running') return;
      state = 'draining';
      logger.info({ node: id, connections: gateway?.size ?? 0 }, 'draining');
      await gateway?.drain(config.drainSeconds * 1000);
      await stop();
    },
    async close() {
      if (state === 'closed') return;
      gateway?.close();
      await stop();
    },
  };
}

/**
 * The composition root: builds one Silk node from a validated configuration
 * and wires the engines, the gateway, the API and metrics. Nothing else
 * constructs these parts.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { devTokenPath } from './api/dev-token.js';
import type { PathHandler } from './api/router.js';
import { HttpApi } from './api/router.js';
import { inboxRoutes } from './api/routes/inbox.js';
import { messageRoutes } from './api/routes/messages.js';
import { opsPaths } from './api/routes/ops.js';
import { nodesPath, presenceRoutes } from './api/routes/presence.js';
import { staticPaths } from './api/static-files.js';
import { AppRegistry } from './apps/registry.js';
import { keysOf } from './auth/tokens.js';
import type { AppConfig, Config } from './config.js';
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS } from './core/limits.js';
import { Inbox } from './services/inbox.js';
import { Publisher } from './services/publisher.js';
import { loadOrCreateDefaultApp, type DefaultApp } from './default-app.js';
import { SilkError } from './core/errors.js';
import { Hub } from './core/hub.js';
import { BlockIds } from './core/ids.js';
import { isSignal } from './core/message.js';
import type { NodeInfo } from './core/ports.js';
import type { Store } from './core/store.js';
import { openEngines } from './engines.js';
import type { MemoryNetwork } from './engines/memory/cluster.js';
import { Gateway } from './gateway/gateway.js';
import { ProtocolV1 } from './protocol/v1/handler.js';
import { Catchup } from './services/catchup.js';
import { CatchupScheduler } from './services/scheduler.js';
import { WebSocketTransport } from './transports/websocket/server.js';
import { Metrics } from './metrics.js';

/** How often expired and aged stored messages are removed (ms). */
const SWEEP_MS = 30_000;
/** A sweep that removed this many rows may have left more. */
const SWEEP_BATCH = 1000;

/**
 * Connections the kernel queues for accept (Linux caps it at
 * net.core.somaxconn, 4096 by default). Node's default of 511 overflows
 * when thousands of clients come back at once: with SYN cookies a client
 * then sends its upgrade on a connection the server never accepted and is
 * reset (the reconnect storm benchmark saw about 250 of 5,000).
 */
const LISTEN_BACKLOG = 4096;

/** Longest a stopping node waits for the HTTP requests in flight before it cuts them, ms. */
const STOP_REQUESTS_MS = 5000;

/** Node lifecycle states. */
export type NodeState = 'running' | 'draining' | 'closed';

export interface NodeOptions {
  /** Logger; defaults to pino on stdout at `config.logLevel`. */
  readonly logger?: Logger;
  /** A store to use instead of the one `config.store` names (the node closes it). */
  readonly store?: Store;
  /**
   * Join an in-process cluster (tests): the node uses the network's store,
   * bus and presence instead of the configured engines, and leaves the
   * store open when it stops.
   */
  readonly network?: MemoryNetwork;
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
  const registry = new AppRegistry(apps);
  const appIds = (): string[] => registry.list().map((a) => a.id);
  const started = new Date().toISOString();
  const hasGateway = config.roles.includes('gateway');
  const hasApi = config.roles.includes('api');
  let port = config.port;
  const hostPart = config.host.includes(':') ? `[${config.host}]` : config.host;
  const baseUrl = (): string => `http://${hostPart === '0.0.0.0' ? '127.0.0.1' : hostPart === '[::]' ? '[::1]' : hostPart}:${port}`;

  const hub = new Hub();
  let gateway: Gateway | null = null;
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
    apps: appIds,
    logger,
    ...(options.store !== undefined ? { store: options.store } : {}),
    ...(options.network !== undefined ? { network: options.network } : {}),
  });
  const { store, bus, presence } = engines;
  const ids = new BlockIds(store);
  try {
    await ids.ensure(1);
  } catch (err) {
    await engines.close();
    throw err;
  }
  const metrics = new Metrics(hub, appIds);
  const inbox = new Inbox({ store, bus, logger, events: metrics });
  if (hasGateway) {
    const protocol = new ProtocolV1({
      hub,
      inbox,
      catchup: new Catchup({
        store,
        inbox,
        hub,
        scheduler: metrics.catchups(new CatchupScheduler(config.limits)),
        logger,
        storeError: () => metrics.storeError(),
        recovered: (seconds) => metrics.recovered(seconds),
      }),
      heartbeatSeconds: config.heartbeatSeconds,
      inboxPageSize: config.limits.inboxPageSize,
      logger,
      frameError: (code) => metrics.frameError(code),
    });
    gateway = new Gateway({
      hub,
      keyOf: keysOf(registry),
      protocol,
      nodeId: id,
      heartbeatSeconds: config.heartbeatSeconds,
      limits: config.limits,
      logger,
      events: metrics,
    });
    const g = gateway;
    metrics.watchGateway(g);
  }
  const websocket = new WebSocketTransport({ gateway, maxFrameBytes: config.limits.maxFrameBytes, trustedProxies: new Set(config.trustedProxies), logger });
  let state: NodeState = 'running';
  const paths = new Map<string, PathHandler>([
    ...opsPaths({
      ready: () => (state !== 'running' ? new SilkError('draining', 'the node is draining') : engines.unready()),
      metrics: () => metrics.scrape(),
    }),
    ['/v1/nodes', nodesPath(presence, logger)],
    ...staticPaths(logger),
    // Demo tokens: with the implicit `default` app (loopback only) or in `--dev` mode.
    ...(hasApi && (config.dev || defaultApp !== undefined) ? [devTokenPath({ apps: registry, loopbackOnly: !config.dev })] : []),
  ]);
  const publisher = new Publisher({
    ids,
    store,
    bus,
    limits: config.limits,
    logger,
    events: { accepted: (app) => hub.countIn(app), stored: (evicted) => metrics.stored(evicted), storeError: () => metrics.storeError() },
  });
  const api = new HttpApi({
    apps: registry,
    apiRequestsPerSecond: config.limits.apiRequestsPerSecond,
    logger,
    paths,
    routes: hasApi
      ? [...messageRoutes(publisher, config.limits), ...presenceRoutes(presence, bus, logger), ...inboxRoutes(inbox, config.limits)]
      : null,
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

  let stopping = false;
  const server: Server = createServer(
    // The timeouts are checked once a second (Node's default is every 30 s, which would let a slow request hold its socket for up to 30 s more).
    { requestTimeout: HTTP_REQUEST_TIMEOUT_MS, headersTimeout: HTTP_HEADERS_TIMEOUT_MS, connectionsCheckingInterval: 1000 },
    (req, res) => {
      // A stopping node answers what reaches it on open connections, and closes each after its answer.
      if (stopping) res.shouldKeepAlive = false;
      api.handle(req, res);
    },
  );
  server.on('upgrade', (req, socket, head) => websocket.handleUpgrade(req, socket, head));
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // A request too slow to arrive (slowloris) is 408, headers too large 431, anything else unreadable 400.
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG }, () => {
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
    websocket.close();
    await engines.close();
    throw err;
  }
  logger.info({ node: id, port, host: config.host, apps: appIds(), roles: config.roles, cluster: config.redis !== null }, 'silk node listening');

  const stop = async (): Promise<void> => {
    state = 'closed';
    stopping = true;
    // Requests in flight are answered first (a publish cut here could be stored and never sent on),
    // within STOP_REQUESTS_MS; idle keep-alive connections close at once.
    await new Promise<void>((resolve) => {
      const cut = setTimeout(() => server.closeAllConnections(), STOP_REQUESTS_MS);
      server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      server.closeIdleConnections();
    });
    clearInterval(sweeper);
    websocket.close();
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
      await gateway?.drain(config.drainSeconds * 1000, config.drainSpreadSeconds * 1000);
      await stop();
    },
    async close() {
      if (state === 'closed') return;
      gateway?.close();
      await stop();
    },
  };
}

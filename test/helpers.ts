/**
 * Test harness: a real node on port 0, real HTTP, real `ws` clients.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { signToken } from '../src/auth/tokens.js';
import { validateConfig, type AppConfig } from '../src/config.js';
import { startNode, type NodeOptions, type SilkNode } from '../src/node.js';

export const APP_A: AppConfig = { id: 'acme', secret: 'a'.repeat(40), apiKey: 'acme-key-0123456789' };
export const APP_B: AppConfig = { id: 'globex', secret: 'b'.repeat(40), apiKey: 'globex-key-0123456789' };

export interface TestNode {
  readonly node: SilkNode;
  readonly url: string;
  readonly wsUrl: string;
  token(user: string, opts?: { app?: AppConfig; channels?: string[]; ttlSeconds?: number }): Promise<string>;
  /** Connect as `user`; the client answers server pings unless `pong: false`. */
  connect(user: string, opts?: { app?: AppConfig; channels?: string[]; pong?: boolean }): Promise<Client>;
  api(method: string, path: string, body?: unknown, opts?: { key?: string; raw?: string }): Promise<{ status: number; body: any }>;
  publish(body: unknown, app?: AppConfig): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

/** A fresh data directory under the system temp dir. */
export function tempDir(prefix = 'silk-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Start a node with two apps; `config` is merged into the file-level
 * configuration. Without a `dataDir` the node gets a temporary one, removed
 * on close.
 */
export async function startTestNode(config: Record<string, unknown> = {}, options: NodeOptions = {}): Promise<TestNode> {
  const own = config['dataDir'] === undefined ? tempDir() : undefined;
  const node = await startNode(
    validateConfig({ port: 0, host: '127.0.0.1', apps: [APP_A, APP_B], logLevel: 'silent', ...(own ? { dataDir: own } : {}), ...config }),
    { logger: pino({ level: 'silent' }), ...options },
  );
  const url = node.url;
  const clients: Client[] = [];
  const t: TestNode = {
    node,
    url,
    wsUrl: url.replace('http', 'ws') + '/v1/connect',
    token: (user, o = {}) =>
      signToken({
        app: (o.app ?? APP_A).id,
        user,
        secret: (o.app ?? APP_A).secret,
        ttlSeconds: o.ttlSeconds ?? 3600,
        ...(o.channels ? { channels: o.channels } : {}),
      }),
    async connect(user, o = {}) {
      const c = await Client.open(`${t.wsUrl}?token=${await t.token(user, o)}`, o.pong ?? true);
      clients.push(c);
      return c;
    },
    async api(method, path, body, o = {}) {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${o.key ?? APP_A.apiKey}`, 'content-type': 'application/json' },
        ...(o.raw !== undefined ? { body: o.raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed };
    },
    publish: (body, app = APP_A) => t.api('POST', `/v1/apps/${app.id}/messages`, body, { key: app.apiKey }),
    async close() {
      for (const c of clients) c.ws.terminate();
      await node.close();
      if (own !== undefined) rmSync(own, { recursive: true, force: true });
    },
  };
  return t;
}

/** A WebSocket client that records every frame and lets a test wait for one. */
export class Client {
  readonly ws: WebSocket;
  readonly frames: any[] = [];
  #waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  closed: Promise<{ code: number; reason: string }>;
  #seq = 0;

  private constructor(ws: WebSocket, pong: boolean) {
    this.ws = ws;
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      // Like a real client, answer the server's heartbeat (a test of silence turns this off).
      if (pong && f.type === 'ping' && f.id === undefined) ws.send('{"type":"pong"}');
      this.frames.push(f);
      this.#waiters = this.#waiters.filter((w) => (w.pred(f) ? (w.resolve(f), false) : true));
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Open and wait for `welcome`; the client answers pings unless `pong` is false. */
  static async open(url: string, pong = true): Promise<Client> {
    const ws = new WebSocket(url);
    const c = new Client(ws, pong);
    await c.next((f) => f.type === 'welcome');
    return c;
  }

  /** The first frame (already received or future) matching `pred`. */
  next(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
    const seen = this.frames.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.#waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  messages(): any[] {
    return this.frames.filter((f) => f.type === 'message');
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Send a request frame and wait for its reply or error. */
  async request(frame: Record<string, unknown>): Promise<any> {
    const id = ++this.#seq + 1000;
    this.send({ ...frame, id });
    return this.next((f) => (f.type === 'reply' || f.type === 'error') && f.id === id);
  }

  async subscribe(channel: string): Promise<any> {
    return this.request({ type: 'subscribe', channel });
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

/** Resolve when `ws` emits `event`, or reject after a timeout. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() - start > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export { once };

/**
 * Silk clusters for tests, with helpers to talk to their nodes as a device
 * and as a backend: {@link SilkCluster}, nodes as child processes on one
 * Redis (or Redis Cluster), each in a directory of its own; and
 * {@link MemoryCluster}, nodes in this process on one in-memory network
 * (src/engines/memory/cluster.ts). Both give {@link ClusterNode}s, so one
 * behaviour suite (test/contract/cluster.ts) runs on both.
 */
import { rmSync } from 'node:fs';
import { signToken } from '../src/auth/tokens.js';
import type { AppConfig } from '../src/config.js';
import { MemoryNetwork } from '../src/engines/memory/cluster.js';
import { CONTRACT_LIMITS } from './contract/store.js';
import { APP_A, APP_B, Client, startTestNode, tempDir, type TestNode } from './helpers.js';
import { kill, serve, type Served } from './process.js';

/** One node of a test cluster, as its devices and its backend see it. */
export interface ClusterNode {
  readonly url: string;
  readonly ws: string;
  /** GET/POST on this node's HTTP API as app acme (or `app`). */
  api(method: string, path: string, body?: unknown, app?: AppConfig): Promise<{ status: number; body: any; headers: Headers }>;
  publish(body: unknown, app?: AppConfig): Promise<{ status: number; body: any; headers: Headers }>;
  connect(user: string, opts?: { app?: AppConfig; channels?: string[] }): Promise<Client>;
  metric(name: string): Promise<number>;
}

export interface SilkProc extends Served, ClusterNode {
  readonly dir: string;
}

/** The device and backend side of the node at `url`; its clients go into `clients`. */
function nodeAt(url: string, clients: Client[]): ClusterNode {
  const n: ClusterNode = {
    url,
    ws: url.replace('http', 'ws') + '/v1/connect',
    api: async (method, path, body, app = APP_A) => {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${app.apiKey}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    publish: (body, app = APP_A) => n.api('POST', `/v1/apps/${app.id}/messages`, body, app),
    connect: async (user, o = {}) => {
      const app = o.app ?? APP_A;
      const token = await signToken({ app: app.id, user, secret: app.secret, ttlSeconds: 3600, ...(o.channels ? { channels: o.channels } : {}) });
      const c = await Client.open(`${n.ws}?token=${token}`);
      clients.push(c);
      return c;
    },
    metric: async (name) => {
      const text = await (await fetch(url + '/metrics')).text();
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
      return m === null ? 0 : Number(m[1]);
    },
  };
  return n;
}

export class SilkCluster {
  readonly nodes: SilkProc[] = [];
  readonly #clients: Client[] = [];
  readonly #config: Record<string, unknown>;

  /** `redis` is the value of the config's `redis` key. */
  constructor(redis: unknown, config: Record<string, unknown> = {}) {
    this.#config = { apps: [APP_A, APP_B], redis, nodeTtlSeconds: 2, heartbeatSeconds: 1, drainSeconds: 1, ...config };
  }

  /** Start one more node (with extra configuration). */
  async add(extra: Record<string, unknown> = {}): Promise<SilkProc> {
    const dir = tempDir('silk-node-');
    const s = await serve(dir, { ...this.#config, ...extra });
    const p: SilkProc = { ...s, ...nodeAt(s.url, this.#clients), dir };
    this.nodes.push(p);
    return p;
  }

  async start(n: number, extra: Record<string, unknown> = {}): Promise<SilkProc[]> {
    return Promise.all(Array.from({ length: n }, () => this.add(extra)));
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.ws.terminate();
    for (const n of this.nodes) {
      kill(n.child);
      rmSync(n.dir, { recursive: true, force: true });
    }
  }
}

export interface MemoryNode extends ClusterNode {
  readonly node: TestNode['node'];
}

/** Nodes in this process on one {@link MemoryNetwork}: its store, its bus, its presence. */
export class MemoryCluster {
  readonly network = new MemoryNetwork({ limits: CONTRACT_LIMITS });
  readonly nodes: MemoryNode[] = [];
  readonly #tests: TestNode[] = [];
  readonly #clients: Client[] = [];

  async add(extra: Record<string, unknown> = {}): Promise<MemoryNode> {
    const t = await startTestNode({ heartbeatSeconds: 1, drainSeconds: 1, ...extra }, { network: this.network });
    this.#tests.push(t);
    const n: MemoryNode = { ...nodeAt(t.url, this.#clients), node: t.node };
    this.nodes.push(n);
    return n;
  }

  async start(n: number, extra: Record<string, unknown> = {}): Promise<MemoryNode[]> {
    const out: MemoryNode[] = [];
    for (let i = 0; i < n; i++) out.push(await this.add(extra));
    return out;
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.ws.terminate();
    await Promise.all(this.#tests.map((t) => t.close()));
    await this.network.store.close();
  }
}

/** Wait until `node` counts `n` subscribers of `channel` across the cluster. */
export async function subscribers(node: ClusterNode, channel: string, n: number, app: AppConfig = APP_A): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await node.api('GET', `/v1/apps/${app.id}/channels/${channel}`, undefined, app);
    if (r.body.subscribers === n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${channel} never reached ${n} subscribers`);
}

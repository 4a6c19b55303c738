/**
 * Silk deployments for the cluster benchmarks: one embedded node, or a
 * Redis (a redis-server on a free port, no persistence) with several Silk
 * nodes on it, each a child process reporting its port over IPC.
 */
import { RedisServer } from '../../test/redis.js';
import { startChild, type Child } from './proc.js';
import { script } from './scenario.js';
import { serverNodeArgs } from './systems.js';

export interface Deployment {
  readonly name: string;
  readonly nodes: readonly { readonly child: Child; readonly port: number }[];
  readonly redis: RedisServer | undefined;
  stop(): Promise<void>;
}

export interface DeployOptions {
  /** Settings for every node (merged over BENCH_SILK_CONFIG). */
  readonly config?: Record<string, unknown>;
  /** More arguments for `silk-server.js`, such as `--drain`. */
  readonly args?: readonly string[];
  /** Pin the nodes to this CPU. */
  readonly cpu?: number;
}

/** `count` Silk nodes, on a fresh Redis when `cluster`. */
export async function deploy(name: string, count: number, cluster: boolean, limits: Record<string, number> = {}, o: DeployOptions = {}): Promise<Deployment> {
  const redis = cluster ? await RedisServer.start() : undefined;
  const nodes: { child: Child; port: number }[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const args = ['--limits', JSON.stringify({ maxConnectionsPerApp: 1_000_000, ...limits })];
      if (redis !== undefined) args.push('--redis', redis.url);
      const config = { ...(JSON.parse(process.env['BENCH_SILK_CONFIG'] || '{}') as Record<string, unknown>), ...o.config };
      if (Object.keys(config).length > 0) args.push('--config', JSON.stringify(config));
      args.push(...(o.args ?? []));
      const execArgv = serverNodeArgs();
      const child = startChild(script('silk-server.js'), args, {
        name: `${name}-${i}`,
        forwardStdout: false,
        ...(execArgv ? { execArgv } : {}),
        ...(o.cpu !== undefined ? { cpu: o.cpu } : {}),
      });
      const ready = await child.waitFor<{ port: number }>((m) => (m as { ready?: boolean }).ready === true, 30_000);
      nodes.push({ child, port: ready.port });
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.child.stop()));
    await redis?.destroy();
    throw err;
  }
  return {
    name,
    nodes,
    redis,
    async stop() {
      await Promise.all(nodes.map((n) => n.child.stop()));
      await redis?.destroy();
    },
  };
}

/**
 * Silk as the benchmarks run it: one node started in this process with
 * `startNode(validateConfig(…))`, listening on 127.0.0.1 (port 0 unless
 * `--port N`), serving the bench app. Prints `{"system":"silk","port":N}` on
 * stdout once it listens; logs (level warn) go to stderr.
 *
 *   node dist/bench/silk-server.js [--port N] [--limits '{"maxOutboundBytes":…}'] [--drain]
 *
 * With `--drain`, SIGTERM drains the node as `silk serve` does (a
 * `reconnect` frame and a 1001 close to every client) before it exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { validateConfig } from '../src/config.js';
import { startNode } from '../src/node.js';
import { BENCH_APP } from './lib/bench-app.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { announce, flushDelayBuckets, instrumentServer, lateness, LOOP_RESOLUTION_MS } from './lib/server-probe.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    limits: { type: 'string', default: '{}' },
    redis: { type: 'string' },
    config: { type: 'string', default: '{}' },
    drain: { type: 'boolean', default: false },
  },
  strict: true,
});

const extra = JSON.parse(values.config) as Record<string, unknown>;
// The bench owns these: a run that changed them would not be the run its scenario describes.
for (const k of ['port', 'host', 'dataDir', 'redis', 'apps', 'logLevel', 'limits']) {
  if (k in extra) throw new Error(`--config (BENCH_SILK_CONFIG) may not set ${k}: the bench sets it (limits: --limits)`);
}
const config = validateConfig({
  port: Number(values.port),
  host: '127.0.0.1',
  // The embedded default store, in a directory of its own removed at exit.
  dataDir: mkdtempSync(join(tmpdir(), 'silk-bench-')),
  ...(values.redis !== undefined ? { redis: values.redis } : {}),
  ...extra,
  apps: [BENCH_APP],
  logLevel: 'warn',
  limits: {
    apiRequestsPerSecond: 0,
    maxFramesPerSecond: 1000,
    maxConnectionsPerApp: 100_000,
    // Every load client is on loopback: one address for all of them.
    maxConnectionsPerAddress: 100_000_000,
    connectsPerAddressPerSecond: 1_000_000,
    ...(JSON.parse(values.limits) as Record<string, number>),
  },
});
process.on('exit', () => rmSync(config.dataDir, { recursive: true, force: true }));
const interval = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
interval.enable();
const node = await startNode(config, { logger: pino({ level: config.logLevel }, pino.destination(2)) });
instrumentServer(() => ({ ...node.written }), {
  // Cumulative counts of `silk_flush_delay_seconds`, by bucket bound (seconds), read off the node's own /metrics.
  flushDelay: async () => flushDelayBuckets(await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text()),
  // The event-loop delay since the last call, for figures over time (the window's own stays with reset/stats).
  interval: () => {
    const r = interval.count === 0 ? { p99: NaN, max: NaN } : { p99: lateness(interval.percentile(99)), max: lateness(interval.max) };
    interval.reset();
    return r;
  },
});
if (values.drain) {
  process.removeAllListeners('SIGTERM');
  process.once('SIGTERM', () => {
    void node.drain().then(() => process.exit(0));
  });
}
announce({ system: 'silk', port: node.port, pid: process.pid });

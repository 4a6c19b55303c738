/**
 * Silk as the benchmarks run it: one node started in this process with
 * `startNode(validateConfig(…))`, listening on 127.0.0.1 (port 0 unless
 * `--port N`), serving the bench app. Prints `{"system":"silk","port":N}` on
 * stdout once it listens; logs (level warn) go to stderr.
 *
 *   node dist/bench/silk-server.js [--port N] [--limits '{"maxOutboundBytes":…}']
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { validateConfig } from '../src/config.js';
import { startNode } from '../src/node.js';
import { BENCH_APP } from './lib/bench-app.js';
import { announce, flushDelayBuckets, instrumentServer } from './lib/server-probe.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    limits: { type: 'string', default: '{}' },
    redis: { type: 'string' },
    config: { type: 'string', default: '{}' },
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
    ...(JSON.parse(values.limits) as Record<string, number>),
  },
});
process.on('exit', () => rmSync(config.dataDir, { recursive: true, force: true }));
const node = await startNode(config, { logger: pino({ level: config.logLevel }, pino.destination(2)) });
instrumentServer(() => ({ ...node.written }), {
  // Cumulative counts of `silk_flush_delay_seconds`, by bucket bound (seconds), read off the node's own /metrics.
  flushDelay: async () => flushDelayBuckets(await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text()),
});
announce({ system: 'silk', port: node.port, pid: process.pid });

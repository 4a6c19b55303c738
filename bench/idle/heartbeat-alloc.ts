/**
 * What one heartbeat (a ping written, its pong read) allocates in a Silk
 * server, and where: a diagnostic for the idle scenario, whose settled
 * memory depends on it (V8 gives back a grown young generation only while a
 * process allocates under 1,000 bytes per ms).
 *
 * A Silk node runs in this process with a short heartbeat; one child opens
 * lean connections that answer pings as the SDK does (`fanout/clients.js`).
 * Once the connections are steady, V8's sampling heap profiler records every
 * allocation, including objects already collected, for `--seconds`; the
 * total and the top allocating functions are printed per heartbeat.
 *
 *   node dist/bench/idle/heartbeat-alloc.js [--connections 2000] [--heartbeat 2] [--seconds 10] [--top 15]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { validateConfig } from '../../src/config.js';
import { startNode } from '../../src/node.js';
import type { ConnectArgs, ConnectResult } from '../fanout/clients.js';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { startChild } from '../lib/proc.js';
import { script, sleep } from '../lib/scenario.js';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '2000' },
    heartbeat: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '10' },
    top: { type: 'string', default: '15' },
  },
  strict: true,
});
const connections = Number(values.connections);
const heartbeatSeconds = Number(values.heartbeat);
const seconds = Number(values.seconds);

const dataDir = mkdtempSync(join(tmpdir(), 'silk-bench-'));
const node = await startNode(
  validateConfig({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    heartbeatSeconds,
    apps: [BENCH_APP],
    logLevel: 'warn',
    limits: { apiRequestsPerSecond: 0, maxConnectionsPerApp: 100_000 },
  }),
  { logger: pino({ level: 'warn' }, pino.destination(2)) },
);
const clients = startChild(script('fanout/clients.js'), [], { name: 'clients' });
try {
  const args: ConnectArgs = {
    host: '127.0.0.1',
    port: node.port,
    mode: 'silk',
    count: connections,
    firstIndex: 0,
    concurrency: 64,
    app: BENCH_APP.id,
    secret: BENCH_APP.secret,
    channel: BENCH_CHANNEL,
    sampleEvery: 1,
  };
  const r = await clients.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 300_000);
  if (r.opened < connections) throw new Error(`${r.opened} of ${connections} connected`);
  // Two intervals: every connection has been pinged since the storm, and the storm's work is done.
  await sleep(2 * heartbeatSeconds * 1000);

  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 128,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await sleep(seconds * 1000);
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
  session.disconnect();

  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode): void => {
    if (n.selfSize > 0) {
      const f = n.callFrame;
      const where = f.url === '' ? '(native)' : `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`;
      const site = `${f.functionName || '(anonymous)'} ${where}`;
      bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  const heartbeats = (connections * seconds) / heartbeatSeconds;
  process.stdout.write(
    `${connections} connections, heartbeat ${heartbeatSeconds} s, ${seconds} s sampled: ` +
      `${(total / 1000 / seconds).toFixed(0)} kB/s allocated, ${(total / heartbeats).toFixed(0)} bytes per heartbeat\n\n` +
      'bytes per heartbeat, by allocating function:\n',
  );
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    process.stdout.write(`${(bytes / heartbeats).toFixed(0).padStart(6)}  ${site}\n`);
  }
} finally {
  await clients.call('close').catch(() => undefined);
  await clients.stop();
  await node.close();
  rmSync(dataDir, { recursive: true, force: true });
}

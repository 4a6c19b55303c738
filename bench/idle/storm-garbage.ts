/**
 * What a connection storm leaves dead in the old generation, and where it
 * was allocated: a diagnostic for the idle scenario, whose longest pause is
 * V8's memory reducer compacting the old generation after a storm.
 *
 * The server (Silk, or a bare `ws` server as in the baselines) runs in a
 * child process with V8's sampling heap profiler on while one client
 * process opens `--connections` lean connections, then for 5 s more. It
 * runs twice: once keeping only the objects still alive at the end, once
 * also keeping those collected by a full (mark-compact) collection, that
 * is, objects that lived long enough to be promoted and then died. The
 * difference, per connection and by allocating function, is the promoted
 * garbage.
 *
 *   node dist/bench/idle/storm-garbage.js [--system silk|ws] [--connections 10000] [--top 20]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import { validateConfig } from '../../src/config.js';
import { startNode } from '../../src/node.js';
import type { ConnectArgs, ConnectResult } from '../fanout/clients.js';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { canPin, startChild } from '../lib/proc.js';
import { script, sleep } from '../lib/scenario.js';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

interface Sample {
  readonly opened: number;
  readonly bySite: Record<string, number>;
}

const { values } = parseArgs({
  options: {
    system: { type: 'string', default: 'silk' },
    connections: { type: 'string', default: '10000' },
    top: { type: 'string', default: '20' },
    keep: { type: 'string' },
  },
  strict: true,
});
const system = values.system;
if (system !== 'silk' && system !== 'ws') throw new Error('--system: silk or ws');
const connections = Number(values.connections);
if (!(connections > 0 && connections <= 19_000)) throw new Error('--connections: 1 to 19,000 (file limit 20,000 per process)');

if (values.keep === undefined) {
  // The parent: one child run per kind of profile, on CPU 0 where taskset works, then the difference.
  const run = (keep: string): Sample => {
    const argv = [fileURLToPath(import.meta.url), '--system', system, '--connections', String(connections), '--keep', keep];
    const out = canPin() ? execFileSync('taskset', ['-c', '0', process.execPath, ...argv]) : execFileSync(process.execPath, argv);
    return JSON.parse(out.toString()) as Sample;
  };
  const live = run('live');
  const withMajor = run('major');
  const perConn = (s: Sample, site: string): number => (s.bySite[site] ?? 0) / s.opened;
  const total = (s: Sample): number => Object.values(s.bySite).reduce((a, b) => a + b, 0) / s.opened;
  const rows = Object.keys(withMajor.bySite)
    .map((site) => ({ site, dead: perConn(withMajor, site) - perConn(live, site), live: perConn(live, site) }))
    .sort((a, b) => b.dead - a.dead);
  process.stdout.write(
    `${system}, ${connections} connections: ${total(live).toFixed(0)} bytes per connection alive at the end, ` +
      `${(total(withMajor) - total(live)).toFixed(0)} promoted and dead (collected by a full collection)\n\n` +
      'bytes per connection, promoted and dead / alive, by allocating function:\n',
  );
  for (const r of rows.slice(0, Number(values.top))) {
    process.stdout.write(`${r.dead.toFixed(0).padStart(6)} ${r.live.toFixed(0).padStart(6)}  ${r.site}\n`);
  }
} else {
  // The child: a server, a storm, a profile.
  let port: number;
  let close: () => Promise<void>;
  if (system === 'silk') {
    const dataDir = mkdtempSync(join(tmpdir(), 'silk-bench-'));
    const node = await startNode(
      validateConfig({
        port: 0,
        host: '127.0.0.1',
        dataDir,
        apps: [BENCH_APP],
        logLevel: 'warn',
        limits: { apiRequestsPerSecond: 0, maxConnectionsPerApp: 100_000 },
      }),
      { logger: pino({ level: 'warn' }, pino.destination(2)) },
    );
    port = node.port;
    close = async () => {
      await node.close();
      rmSync(dataDir, { recursive: true, force: true });
    };
  } else {
    const wss = new WebSocketServer({ noServer: true });
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    close = async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => server.close(r));
    };
  }
  const clients = startChild(script('fanout/clients.js'), [], { name: 'clients', forwardStdout: false });
  try {
    const session = new Session();
    session.connect();
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: values.keep === 'major',
      includeObjectsCollectedByMinorGC: false,
    });
    const args: ConnectArgs = {
      host: '127.0.0.1',
      port,
      mode: system === 'silk' ? 'silk' : 'plain',
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
    await sleep(5000);
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
    session.disconnect();
    const bySite: Record<string, number> = {};
    const name = (f: ProfileNode['callFrame']): string =>
      `${f.functionName || '(anonymous)'} ${f.url === '' ? '(native)' : `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`}`;
    // A native site (a Map's or Set's table growing, say) is named with the JavaScript function that called it.
    const walk = (n: ProfileNode, caller: string): void => {
      const here = name(n.callFrame);
      if (n.selfSize > 0) {
        const site = n.callFrame.url === '' && caller !== '' ? `${here} ← ${caller}` : here;
        bySite[site] = (bySite[site] ?? 0) + n.selfSize;
      }
      for (const c of n.children) walk(c, n.callFrame.url === '' ? caller : here);
    };
    walk(profile.head, '');
    process.stdout.write(JSON.stringify({ opened: r.opened, bySite } satisfies Sample));
  } finally {
    await clients.call('close').catch(() => undefined);
    await clients.stop();
    await close();
  }
}

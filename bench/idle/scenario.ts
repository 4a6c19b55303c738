/**
 * Idle connections and connection setup: open `--connections` (19,000)
 * WebSocket connections to one server as fast as it accepts them (a
 * reconnect storm), then hold them idle. For Silk every connection is
 * authenticated with a token, subscribed to a channel, on the heartbeat
 * wheel and in presence, as in production.
 *
 * Reports connections opened per second (tokens are signed before the
 * clock starts) and the server's CPU time per connection: on loopback the
 * load generator pays for both ends of every TCP handshake in the kernel,
 * so on a small machine the storm rate is the generator's, and the server's
 * capacity is one CPU-second over its CPU per connection. Also server RSS per connection
 * (RSS less RSS before the storm, over the connections) twice: 5 s after the
 * storm, while the process still holds the storm's garbage and V8's grown
 * young generation, and at the end of the idle hold (`--settle`, 90 s), once
 * V8's memory reducer has given that back: the memory idle connections
 * keep. The reducer's compacting collections came 18–48 s after the storm
 * for bare `ws` and Silk here (near 80 s for Socket.IO), so a shorter hold
 * reads the storm's leftovers. And the server's
 * event-loop delay and longest GC pause twice: while connecting, and over
 * the idle hold (where the reducer's collections fall).
 */
import { parseArgs } from 'node:util';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { canPin, cpuTime, pinPid, rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { CHARTS_DIR, renderCharts, seriesOf, type BarChart } from '../lib/charts.js';
import { machine, ROOT, script, sleep, writeResult, type Machine, type Scenario } from '../lib/scenario.js';
import type { ServerStats } from '../lib/server-probe.js';
import { fmtSpread, si, spread, table } from '../lib/stats.js';
import { parseSystems, startSystem, type SystemSpec } from '../lib/systems.js';
import type { ClientResults, ConnectArgs, ConnectResult } from '../fanout/clients.js';

const CLIENT_PROCESSES = 4;
/** When, after the storm, the "right after the storm" memory figure is read. */
const STORM_SECONDS = 5;
/** RSS counts as settled once every later reading is within this fraction of the last one. */
const SETTLED_WITHIN = 0.03;

/** The first second (1-based) of `series` from which every reading is within {@link SETTLED_WITHIN} of the last. */
export function settledAfter(series: readonly number[]): number | undefined {
  const last = series.at(-1);
  if (last === undefined || !Number.isFinite(last)) return undefined;
  let i = series.length;
  // A missing reading (NaN) neither breaks nor makes the run of settled seconds.
  while (i > 0 && (Number.isNaN(series[i - 1]!) || Math.abs(series[i - 1]! - last) <= last * SETTLED_WITHIN)) i--;
  return i + 1;
}

export interface IdleRun {
  readonly system: string;
  readonly repeat: number;
  readonly connected: number;
  readonly connectsPerSecond: number;
  /** Server CPU (user + system) per connection opened, µs: the server's own cost of a connection. */
  readonly serverCpuMicros: number;
  /** The part of it spent in the kernel (system time), µs per connection. */
  readonly serverSystemMicros: number;
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  /** Server RSS, MiB, at each second of the idle hold after the storm. */
  readonly rssSeriesMiB?: number[];
  /** RSS growth per connection at the end of the idle hold (`--settle` seconds). */
  readonly bytesPerConnection: number;
  /** The second of the hold from which RSS stayed within {@link SETTLED_WITHIN} of its last reading (older results files lack it). */
  readonly settledAfterSeconds?: number;
  /** RSS growth per connection {@link STORM_SECONDS} after the storm (older results files lack it). */
  readonly stormBytesPerConnection?: number;
  readonly heapBytesPerConnection: number;
  /** JS heap allocated per second over the idle hold (heartbeats, timers); older results files lack it. */
  readonly idleAllocatedBytesPerSecond?: number;
  /** Server stats over the storm. */
  readonly server: ServerStats | undefined;
  /** Server stats over the idle hold (older results files lack it). */
  readonly serverIdle?: ServerStats;
  readonly notes: string[];
}

interface Options {
  readonly connections: number;
  readonly systems: SystemSpec[];
  readonly repeats: number;
  readonly settle: number;
}

async function oneRun(spec: SystemSpec, repeat: number, o: Options): Promise<IdleRun> {
  const pin = canPin();
  const notes: string[] = [];
  const { child: server, port } = await startSystem(spec, pin ? 0 : undefined);
  const clients: Child[] = [];
  try {
    await sleep(1000);
    const before = await server.call<ServerStats>('stats');
    const rssBefore = rssBytes(server.pid) ?? NaN;
    const per = Math.ceil(o.connections / CLIENT_PROCESSES);
    for (let i = 0; i < CLIENT_PROCESSES; i++) clients.push(startChild(script('fanout/clients.js'), [], { name: `clients-${i}`, ...(pin ? { cpu: 1 } : {}) }));
    await server.call('reset');
    const cpuA = cpuTime(server.pid);
    const results = await Promise.all(
      clients.map((c, i) => {
        const args: ConnectArgs = {
          host: '127.0.0.1',
          port,
          mode: spec.mode,
          count: Math.min(per, o.connections - i * per),
          firstIndex: i * per,
          concurrency: 64,
          app: BENCH_APP.id,
          secret: BENCH_APP.secret,
          channel: BENCH_CHANNEL,
          sampleEvery: 1,
        };
        return c.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 300_000);
      }),
    );
    const cpuB = cpuTime(server.pid);
    const stats = await server.call<ServerStats>('stats').catch(() => undefined);
    // The idle hold is a window of its own: what the server allocates while nothing but heartbeats happens.
    await server.call('reset').catch(() => undefined);
    const holdStart = performance.now();
    const connected = results.reduce((s, r) => s + r.opened, 0);
    if (connected < o.connections) notes.push(`${connected} of ${o.connections} connected: ${results.flatMap((r) => r.errors).join('; ')}`);
    // The processes connect side by side: the slowest one's time is the storm's.
    const seconds = Math.max(...results.map((r) => r.ms)) / 1000;
    // RSS once a second while the connections sit idle: right after a storm
    // it still holds the storm's garbage and V8's grown young generation,
    // which V8 gives back once allocation has been low for a while.
    const rssSeries: number[] = [];
    for (let s = 0; s < o.settle; s++) {
      await sleep(1000);
      rssSeries.push((rssBytes(server.pid) ?? NaN) / 2 ** 20);
    }
    const rssAfter = rssBytes(server.pid) ?? NaN;
    // A hold shorter than that (--quick) has no such reading.
    const rssStorm = rssSeries.length >= STORM_SECONDS ? rssSeries[STORM_SECONDS - 1]! * 2 ** 20 : NaN;
    const after = await server.call<ServerStats>('stats').catch(() => undefined);
    const holdSeconds = (performance.now() - holdStart) / 1000;
    const open = (await Promise.all(clients.map((c) => c.call<ClientResults>('results')))).reduce((s, r) => s + r.open, 0);
    if (open < connected) notes.push(`${connected - open} connections closed while idle`);
    return {
      system: spec.name,
      repeat,
      connected,
      connectsPerSecond: connected / seconds,
      serverCpuMicros:
        cpuA === undefined || cpuB === undefined ? NaN : ((cpuB.user + cpuB.system - cpuA.user - cpuA.system) * 1e6) / connected,
      serverSystemMicros: cpuA === undefined || cpuB === undefined ? NaN : ((cpuB.system - cpuA.system) * 1e6) / connected,
      rssBeforeMiB: rssBefore / 2 ** 20,
      rssAfterMiB: rssAfter / 2 ** 20,
      bytesPerConnection: (rssAfter - rssBefore) / connected,
      ...(Number.isNaN(rssStorm) ? {} : { stormBytesPerConnection: (rssStorm - rssBefore) / connected }),
      rssSeriesMiB: rssSeries,
      ...(settledAfter(rssSeries) === undefined ? {} : { settledAfterSeconds: settledAfter(rssSeries)! }),
      heapBytesPerConnection: after === undefined ? NaN : (after.memory.heapUsed - before.memory.heapUsed) / connected,
      ...(after?.allocatedBytes === undefined ? {} : { idleAllocatedBytesPerSecond: after.allocatedBytes / holdSeconds }),
      server: stats,
      ...(after === undefined ? {} : { serverIdle: after }),
      notes,
    };
  } finally {
    await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
    await Promise.all([server.stop(), ...clients.map((c) => c.stop())]);
  }
}

export function idleTable(runs: readonly IdleRun[]): string {
  const systems = [...new Set(runs.map((r) => r.system))];
  const ws = spread(runs.filter((r) => r.system === 'ws').map((r) => r.bytesPerConnection));
  const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
  const kb = (x: number): string => (x / 1024).toFixed(1);
  return table(
    ['system', 'connections', 'connects/s', 'server CPU µs/conn', 'connects per server CPU-s', `KB RSS/conn at ${STORM_SECONDS} s`, 'KB RSS/conn settled', 'settled after s', '÷ raw ws', 'KB heap/conn', 'idle alloc kB/s', 'RSS MiB', 'storm loop p99 ms', 'storm GC max ms', 'idle loop p99 ms', 'idle GC max ms'],
    systems.map((s) => {
      const rs = runs.filter((r) => r.system === s);
      const b = spread(rs.map((r) => r.bytesPerConnection));
      return [
        s,
        String(Math.min(...rs.map((r) => r.connected))),
        fmtSpread(spread(rs.map((r) => r.connectsPerSecond))),
        fmtSpread(spread(rs.map((r) => r.serverCpuMicros)), (x) => x.toFixed(0)),
        fmtSpread(spread(rs.map((r) => 1e6 / r.serverCpuMicros))),
        rs.some((r) => r.stormBytesPerConnection === undefined) ? '–' : fmtSpread(spread(rs.map((r) => r.stormBytesPerConnection!)), kb),
        fmtSpread(b, kb),
        rs.some((r) => r.settledAfterSeconds === undefined) ? '–' : fmtSpread(spread(rs.map((r) => r.settledAfterSeconds!)), (x) => x.toFixed(0)),
        ws.n === 0 ? '' : (b.median / ws.median).toFixed(2) + '×',
        fmtSpread(spread(rs.map((r) => r.heapBytesPerConnection)), kb),
        rs.some((r) => r.idleAllocatedBytesPerSecond === undefined) ? '–' : fmtSpread(spread(rs.map((r) => r.idleAllocatedBytesPerSecond!)), (x) => (x / 1000).toFixed(0)),
        fmtSpread(spread(rs.map((r) => r.rssAfterMiB)), (x) => x.toFixed(0)),
        fmtSpread(spread(rs.map((r) => r.server?.loopDelay.p99 ?? NaN)), ms),
        fmtSpread(spread(rs.map((r) => r.server?.gc.maxMs ?? NaN)), ms),
        rs.some((r) => r.serverIdle === undefined) ? '–' : fmtSpread(spread(rs.map((r) => r.serverIdle!.loopDelay.p99)), ms),
        rs.some((r) => r.serverIdle === undefined) ? '–' : fmtSpread(spread(rs.map((r) => r.serverIdle!.gc.maxMs)), ms),
      ];
    }),
  );
}

/** The charts of an idle results file. */
export function idleCharts(d: { machine: Machine; date: string; options: { systems: string[]; connections: number; settle?: number }; runs: IdleRun[] }): { file: string; chart: BarChart }[] {
  const where = `${d.options.connections.toLocaleString('en')} connections; ${d.machine.cpuModel}, ${d.machine.nproc} CPUs, Node ${d.machine.node}, ${d.date.slice(0, 10)}`;
  const systems = d.options.systems;
  const all = [{ label: `${d.options.connections.toLocaleString('en')} idle connections`, match: () => true }];
  return [
    {
      file: `${ROOT}/${CHARTS_DIR}/idle-memory.png`,
      chart: { title: `Server RSS per idle connection, KB${d.options.settle === undefined ? '' : `, ${d.options.settle} s after the storm`} (lower is better)`, subtitle: where, unit: 'KB', groups: all.map((g) => g.label), series: seriesOf(d.runs, systems, all, (r) => r.system, (r) => r.bytesPerConnection / 1024) },
    },
    {
      file: `${ROOT}/${CHARTS_DIR}/idle-connect.png`,
      chart: {
        title: 'Connection setup: connections per second of server CPU',
        subtitle: where,
        unit: 'connections/CPU-s',
        groups: all.map((g) => g.label),
        series: seriesOf(d.runs, systems, all, (r) => r.system, (r) => 1e6 / r.serverCpuMicros),
      },
    },
  ];
}

export const idle: Scenario = {
  name: 'idle',
  summary: 'connection storm then idle: connects/s and server memory per connection, Silk beside raw ws and Socket.IO',
  usage: 'idle [--connections 19000] [--systems silk,ws,socketio] [--repeats 2] [--settle 90] [--quick] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        connections: { type: 'string', default: '19000' },
        systems: { type: 'string', default: 'silk,ws,socketio' },
        repeats: { type: 'string', default: '2' },
        settle: { type: 'string', default: '90' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      connections: quick && !argv.includes('--connections') ? 3000 : Number(values.connections),
      systems: parseSystems(values.systems),
      repeats: quick ? 1 : Number(values.repeats),
      settle: quick ? 1 : Number(values.settle),
    };
    if (o.connections > 19_500) throw new Error('at most 19,500 connections: the server holds them in one process (file limit 20,000)');
    if (canPin()) pinPid(process.pid, 1);
    const runs: IdleRun[] = [];
    try {
      for (let r = 0; r < o.repeats; r++) {
        for (const spec of o.systems) {
          process.stderr.write(`idle: ${spec.name}, ${o.connections} connections, run ${r + 1}/${o.repeats}\n`);
          const run = await oneRun(spec, r, o);
          runs.push(run);
          process.stderr.write(
            `  ${si(run.connectsPerSecond)} connects/s, ${run.serverCpuMicros.toFixed(0)} µs server CPU/conn, ` +
              (run.stormBytesPerConnection === undefined ? '' : `${(run.stormBytesPerConnection / 1024).toFixed(1)} KB/conn at ${STORM_SECONDS} s, `) +
              `${(run.bytesPerConnection / 1024).toFixed(1)} KB/conn settled` +
              (run.settledAfterSeconds === undefined ? '' : ` (from ${run.settledAfterSeconds} s)`) +
              (run.serverIdle === undefined ? '' : `, idle GC max ${run.serverIdle.gc.maxMs.toFixed(1)} ms`) +
              (run.idleAllocatedBytesPerSecond === undefined ? '' : `, ${(run.idleAllocatedBytesPerSecond / 1000).toFixed(0)} kB/s allocated while idle`) +
              ` (RSS MiB by second: ${(run.rssSeriesMiB ?? []).map((x) => x.toFixed(0)).join(' ')})` +
              (run.notes.length > 0 ? `\n  notes: ${run.notes.join(' | ')}` : '') +
              '\n',
          );
        }
      }
    } finally {
      await stopAll();
    }
    const m = machine(canPin());
    const file = writeResult('idle', { scenario: 'idle', machine: m, options: { ...o, systems: o.systems.map((s) => s.name) }, runs }, values.out);
    process.stdout.write(`\nidle connections on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}${m.pinned ? ', server on CPU 0, load on CPU 1' : ''}\n\n`);
    process.stdout.write(idleTable(runs) + '\n\n');
    const charts = await renderCharts(idleCharts({ machine: m, date: new Date().toISOString(), options: { ...o, systems: o.systems.map((s) => s.name) }, runs }));
    process.stdout.write(`results: ${file}${charts.length > 0 ? `\ncharts: ${charts.join(', ')}` : ''}\n`);
  },
};

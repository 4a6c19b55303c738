/**
 * Unicast: `--users` (10,000) connected users, one connection each, and a
 * publisher process sending each message to one random user through the
 * HTTP API, `--batch` (50) messages per request (Silk's batch endpoint; the
 * baselines take the same body at `/publish/batch`).
 *
 * Phases per system: saturate (as fast as the server answers, so messages/s
 * delivered is the capacity), then paced at each of `--rates` messages/s,
 * which gives the latency at that load; the table reports the highest rate
 * whose p99 stays within `--p99` (20 ms). Latency is end to end, every
 * message sampled.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { now } from '../lib/lean-ws.js';
import { canPin, cpuPercent, cpuTime, pinPid, startChild, stopAll, type Child } from '../lib/proc.js';
import { CHARTS_DIR, renderCharts, seriesOf, type BarChart } from '../lib/charts.js';
import { machine, ROOT, script, sleep, writeResult, type Machine, type Scenario } from '../lib/scenario.js';
import { bucketQuantile, type ServerStats } from '../lib/server-probe.js';
import { fmtSpread, Histogram, si, spread, table } from '../lib/stats.js';
import { parseSystems, startSystem, type SystemSpec } from '../lib/systems.js';
import type { ClientResults, ConnectArgs, ConnectResult } from '../fanout/clients.js';
import type { RunArgs, RunResult } from '../fanout/publisher.js';

const PER_CLIENT_PROCESS = 5000;

export interface UnicastPhase {
  readonly delivered: number;
  readonly accepted: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly serverCpu: number;
  /** CPU of the load side (client processes and publisher, which share one CPU), % of one CPU. */
  readonly loadCpu: number;
  /** Publish request latency as the publisher saw it (sent to answered), ms: the server's answer, without delivery. */
  readonly apiP99: number;
  /**
   * Silk only: the bucket bound (ms) of the p99 of `silk_flush_delay_seconds` over the
   * phase, the wait between a message being queued for a connection and its write.
   */
  readonly flushDelayP99?: number;
  readonly server: ServerStats | undefined;
  readonly notes: string[];
}

export interface UnicastRun {
  readonly system: string;
  readonly repeat: number;
  readonly saturate: UnicastPhase;
  /** One phase per rate of `--rates`. */
  readonly paced: (UnicastPhase & { rate: number })[];
}

interface Options {
  readonly users: number;
  readonly batch: number;
  readonly rates: number[];
  readonly p99: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly repeats: number;
  readonly systems: SystemSpec[];
}

async function phase(
  spec: SystemSpec,
  server: Child,
  clients: Child[],
  publisher: Child,
  port: number,
  o: Options,
  rate: number | undefined,
): Promise<UnicastPhase> {
  const paced = rate !== undefined;
  const startAt = now() + 200;
  const t0 = startAt + o.warmup * 1000;
  const t1 = t0 + o.seconds * 1000;
  await Promise.all(clients.map((c) => c.call('window', { t0, t1 })));
  const run: RunArgs = {
    kind: paced ? 'paced' : 'saturate',
    host: '127.0.0.1',
    port,
    path: spec.publishPath,
    headers: spec.publishHeaders,
    channel: BENCH_CHANNEL,
    users: o.users,
    batch: o.batch,
    inflight: 16,
    window: 0,
    rate: (rate ?? 0) / o.batch,
    startAt,
    t0,
    t1,
    stopAt: t1,
  };
  const running = publisher.call<RunResult>('run', run as unknown as Record<string, unknown>, (o.warmup + o.seconds) * 1000 + 60_000);
  await sleep(t0 - now());
  await server.call('reset');
  const delayA = await server.call<[number, number][]>('flushDelay').catch(() => undefined);
  const cpuA = cpuTime(server.pid);
  const loadA = [...clients, publisher].map((c) => cpuTime(c.pid));
  await sleep(t1 - now());
  const cpuB = cpuTime(server.pid);
  const loadB = [...clients, publisher].map((c) => cpuTime(c.pid));
  const stats = await server.call<ServerStats>('stats').catch(() => undefined);
  const delayB = delayA === undefined ? undefined : await server.call<[number, number][]>('flushDelay').catch(() => undefined);
  const flushDelayP99 = delayA === undefined || delayB === undefined ? undefined : bucketQuantile(delayA, delayB, 0.99);
  const pub = await running;
  // What was written by t1 may still be on its way: give the clients a moment.
  await sleep(Math.min(1000, o.seconds * 200));
  const hist = new Histogram();
  const api = new Histogram();
  api.add(pub.apiLatency);
  let inWindow = 0;
  const notes: string[] = [];
  for (const c of clients) {
    const r = await c.call<ClientResults>('results');
    hist.add(r.latency);
    inWindow += r.inWindow;
    if (r.closed > 0) notes.push(`${r.closed} connections closed: ${JSON.stringify(r.closeCodes)}`);
  }
  if (pub.failed > 0) notes.push(`${pub.failed} failed: ${JSON.stringify(pub.statuses)} ${pub.errors.join('; ')}`);
  if (paced && pub.late > pub.sent / o.batch / 100) notes.push(`${pub.late} requests left over 5 ms late (the publisher could not keep the pace)`);
  return {
    delivered: inWindow / o.seconds,
    accepted: pub.acceptedInWindow / o.seconds,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    max: hist.maxMs,
    serverCpu: cpuPercent(cpuA, cpuB, o.seconds).total,
    loadCpu: loadA.reduce((sum, a, i) => sum + cpuPercent(a, loadB[i], o.seconds).total, 0),
    apiP99: api.quantile(0.99),
    ...(flushDelayP99 !== undefined ? { flushDelayP99 } : {}),
    server: stats,
    notes,
  };
}

async function oneRun(spec: SystemSpec, repeat: number, o: Options): Promise<UnicastRun> {
  const pin = canPin();
  const { child: server, port } = await startSystem(spec, pin ? 0 : undefined);
  const clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    const procs = Math.ceil(o.users / PER_CLIENT_PROCESS);
    for (let i = 0; i < procs; i++) clients.push(startChild(script('fanout/clients.js'), [], { name: `clients-${i}`, ...(pin ? { cpu: 1 } : {}) }));
    const results = await Promise.all(
      clients.map((c, i) => {
        const args: ConnectArgs = {
          host: '127.0.0.1',
          port,
          mode: spec.mode,
          count: Math.min(PER_CLIENT_PROCESS, o.users - i * PER_CLIENT_PROCESS),
          firstIndex: i * PER_CLIENT_PROCESS,
          concurrency: 64,
          app: BENCH_APP.id,
          secret: BENCH_APP.secret,
          channel: '',
          sampleEvery: 1,
        };
        return c.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 120_000);
      }),
    );
    const opened = results.reduce((s, r) => s + r.opened, 0);
    if (opened < o.users) throw new Error(`${spec.name}: only ${opened} of ${o.users} connected: ${results.flatMap((r) => r.errors).join('; ')}`);
    publisher = startChild(script('fanout/publisher.js'), [], { name: 'publisher', ...(pin ? { cpu: 1 } : {}) });
    const saturate = await phase(spec, server, clients, publisher, port, o, undefined);
    const paced: (UnicastPhase & { rate: number })[] = [];
    for (const rate of o.rates) paced.push({ rate, ...(await phase(spec, server, clients, publisher, port, o, rate)) });
    return { system: spec.name, repeat, saturate, paced };
  } finally {
    await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
    await Promise.all([server.stop(), publisher?.stop(), ...clients.map((c) => c.stop())]);
  }
}

/** The highest paced rate whose p99 stayed within `limit` (0 if none). */
export function bestRate(r: UnicastRun, limit: number): number {
  return Math.max(0, ...r.paced.filter((p) => p.p99 <= limit && p.delivered >= p.rate * 0.95).map((p) => p.rate));
}

export function unicastTable(runs: readonly UnicastRun[], rates: readonly number[], limit: number): string {
  const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
  const systems = [...new Set(runs.map((r) => r.system))];
  const silk = spread(runs.filter((r) => r.system === 'silk').map((r) => r.saturate.delivered));
  const all = (r: UnicastRun): UnicastPhase[] => [r.saturate, ...r.paced];
  return table(
    [
      'system',
      'max delivered/s',
      'silk ÷',
      `best rate, p99 ≤ ${limit} ms`,
      ...rates.map((x) => `p99 ms at ${si(x)}/s`),
      'server CPU at max',
      'loop p99 ms',
      'GC max ms',
    ],
    systems.map((s) => {
      const rs = runs.filter((r) => r.system === s);
      const d = spread(rs.map((r) => r.saturate.delivered));
      return [
        s,
        fmtSpread(d),
        s === 'silk' || silk.n === 0 ? '' : (silk.median / d.median).toFixed(2) + '×',
        fmtSpread(spread(rs.map((r) => bestRate(r, limit)))),
        ...rates.map((x) => fmtSpread(spread(rs.map((r) => r.paced.find((p) => p.rate === x)?.p99 ?? NaN)), ms)),
        fmtSpread(spread(rs.map((r) => r.saturate.serverCpu)), (x) => x.toFixed(0) + '%'),
        fmtSpread(spread(rs.flatMap((r) => all(r).map((p) => p.server?.loopDelay.p99 ?? NaN))), ms),
        fmtSpread(spread(rs.flatMap((r) => all(r).map((p) => p.server?.gc.maxMs ?? NaN))), ms),
      ];
    }),
  );
}

/** The charts of a unicast results file. */
export function unicastCharts(d: { machine: Machine; date: string; options: { systems: string[]; users: number; batch: number; rates: number[] }; runs: UnicastRun[] }): { file: string; chart: BarChart }[] {
  const where = `${d.options.users.toLocaleString('en')} users, ${d.options.batch} messages per request; ${d.machine.cpuModel}, ${d.machine.nproc} CPUs, Node ${d.machine.node}, ${d.date.slice(0, 10)}`;
  const systems = d.options.systems;
  return [
    {
      file: `${ROOT}/${CHARTS_DIR}/unicast-throughput.png`,
      chart: {
        title: 'Unicast to random users: messages delivered per second, saturated',
        subtitle: where,
        unit: 'messages/s',
        groups: ['saturated'],
        series: seriesOf(d.runs, systems, [{ label: 'saturated', match: () => true }], (r) => r.system, (r) => r.saturate.delivered),
      },
    },
    {
      file: `${ROOT}/${CHARTS_DIR}/unicast-latency.png`,
      chart: {
        title: 'Unicast: p99 end-to-end latency at a paced rate, ms (log scale)',
        subtitle: where,
        unit: 'ms',
        log: true,
        groups: d.options.rates.map((x) => `${si(x)} messages/s`),
        series: systems.map((name) => {
          const at = (x: number): number[] => d.runs.filter((r) => r.system === name).map((r) => r.paced.find((p) => p.rate === x)?.p99 ?? NaN);
          const med = (v: number[]): number | undefined => {
            const s = spread(v);
            return s.n === 0 ? undefined : s.median;
          };
          return {
            name,
            values: d.options.rates.map((x) => med(at(x))),
            min: d.options.rates.map((x) => (spread(at(x)).n === 0 ? undefined : spread(at(x)).min)),
            max: d.options.rates.map((x) => (spread(at(x)).n === 0 ? undefined : spread(at(x)).max)),
          };
        }),
      },
    },
  ];
}

export const unicast: Scenario = {
  name: 'unicast',
  summary: 'messages to random users of 10,000 through the HTTP API in batches: capacity and latency at 50k/s, Silk beside raw ws and Socket.IO',
  usage: `unicast [--users 10000] [--batch 50] [--rates 20000,35000,50000,65000] [--p99 20] [--systems silk,ws,socketio]
       [--seconds 5] [--warmup 1] [--repeats 2] [--quick] [--out FILE]`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        users: { type: 'string', default: '10000' },
        batch: { type: 'string', default: '50' },
        rates: { type: 'string', default: '20000,35000,50000,65000' },
        p99: { type: 'string', default: '20' },
        systems: { type: 'string', default: 'silk,ws,socketio' },
        seconds: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '1' },
        repeats: { type: 'string', default: '2' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      users: quick && !argv.includes('--users') ? 3000 : Number(values.users),
      batch: Number(values.batch),
      rates: quick ? [50_000] : values.rates.split(',').map(Number),
      p99: Number(values.p99),
      systems: parseSystems(values.systems),
      seconds: quick ? 1.5 : Number(values.seconds),
      warmup: quick ? 0.5 : Number(values.warmup),
      repeats: quick ? 1 : Number(values.repeats),
    };
    if (canPin()) pinPid(process.pid, 1);
    const runs: UnicastRun[] = [];
    try {
      for (let r = 0; r < o.repeats; r++) {
        for (const spec of o.systems) {
          process.stderr.write(`unicast: ${spec.name}, ${o.users} users, run ${r + 1}/${o.repeats}\n`);
          const run = await oneRun(spec, r, o);
          runs.push(run);
          const notes = [...run.saturate.notes, ...run.paced.flatMap((p) => p.notes)];
          process.stderr.write(
            `  max ${si(run.saturate.delivered)}/s (p99 ${run.saturate.p99.toFixed(1)} ms); p99 ${run.paced.map((p) => `${p.p99.toFixed(1)} ms at ${si(p.rate)}/s (API p99 ${p.apiP99.toFixed(1)} ms${p.flushDelayP99 !== undefined ? `, flush wait p99 ≤ ${p.flushDelayP99} ms` : ''}, load CPU ${p.loadCpu.toFixed(0)}%)`).join(', ')}` +
              (notes.length > 0 ? `\n  notes: ${notes.join(' | ')}` : '') +
              '\n',
          );
        }
      }
    } finally {
      await stopAll();
    }
    const m = machine(canPin());
    const file = writeResult('unicast', { scenario: 'unicast', machine: m, options: { ...o, systems: o.systems.map((s) => s.name) }, runs }, values.out);
    process.stdout.write(`\nunicast on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}${m.pinned ? ', server on CPU 0, load on CPU 1' : ''}\n\n`);
    process.stdout.write(unicastTable(runs, o.rates, o.p99) + '\n\n');
    const charts = await renderCharts(unicastCharts({ machine: m, date: new Date().toISOString(), options: { ...o, systems: o.systems.map((s) => s.name) }, runs }));
    process.stdout.write(`results: ${file}${charts.length > 0 ? `\ncharts: ${charts.join(', ')}` : ''}\n`);
  },
};

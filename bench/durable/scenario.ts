/**
 * Durable publish against ephemeral publish, in one run: a publisher posts
 * user messages as fast as Silk answers, one message per request and in
 * batches, with and without `"durable": true`. Durable messages land in the
 * inboxes of `--users` offline users in the embedded SQLite store (group
 * commit), and are answered only once committed. Reports messages answered
 * per second and the API latency (request sent to 202) percentiles.
 */
import { parseArgs } from 'node:util';
import { now } from '../lib/lean-ws.js';
import { canPin, cpuPercent, cpuTime, pinPid, rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { CHARTS_DIR, renderCharts, seriesOf, type BarChart } from '../lib/charts.js';
import { machine, ROOT, script, writeResult, type Machine, type Scenario } from '../lib/scenario.js';
import { fmtSpread, Histogram, si, spread, table } from '../lib/stats.js';
import { SYSTEMS, startSystem } from '../lib/systems.js';
import { BENCH_CHANNEL } from '../lib/bench-app.js';
import type { RunArgs, RunResult } from '../fanout/publisher.js';

interface Mode {
  readonly name: string;
  readonly durable: boolean;
  readonly batch: number;
  readonly inflight: number;
}

export interface DurableRun {
  readonly mode: string;
  readonly durable: boolean;
  readonly batch: number;
  readonly repeat: number;
  readonly messagesPerSecond: number;
  readonly apiMs: { p50: number; p99: number; max: number };
  readonly serverCpu: number;
  readonly serverRssMiB: number;
  readonly notes: string[];
}

interface Options {
  readonly users: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly repeats: number;
  readonly batch: number;
}

async function oneRun(mode: Mode, repeat: number, o: Options): Promise<DurableRun> {
  const pin = canPin();
  const spec = SYSTEMS.silk;
  const { child: server, port } = await startSystem(spec, pin ? 0 : undefined);
  let publisher: Child | undefined;
  try {
    publisher = startChild(script('fanout/publisher.js'), [], { name: 'publisher', ...(pin ? { cpu: 1 } : {}) });
    const startAt = now() + 200;
    const t0 = startAt + o.warmup * 1000;
    const t1 = t0 + o.seconds * 1000;
    const run: RunArgs = {
      kind: 'saturate',
      host: '127.0.0.1',
      port,
      path: spec.publishPath,
      headers: spec.publishHeaders,
      channel: BENCH_CHANNEL,
      users: o.users,
      batch: mode.batch,
      durable: mode.durable,
      inflight: mode.inflight,
      window: 0,
      rate: 0,
      startAt,
      t0,
      t1,
      stopAt: t1,
    };
    const running = publisher.call<RunResult>('run', run as unknown as Record<string, unknown>, (o.warmup + o.seconds) * 1000 + 60_000);
    await new Promise((r) => setTimeout(r, t0 - now()));
    const cpuA = cpuTime(server.pid);
    await new Promise((r) => setTimeout(r, t1 - now()));
    const cpuB = cpuTime(server.pid);
    const rss = rssBytes(server.pid) ?? NaN;
    const pub = await running;
    const notes: string[] = [];
    if (pub.failed > 0) notes.push(`${pub.failed} failed: ${JSON.stringify(pub.statuses)} ${pub.errors.join('; ')}`);
    const h = new Histogram();
    h.add(pub.apiLatency);
    return {
      mode: mode.name,
      durable: mode.durable,
      batch: mode.batch,
      repeat,
      messagesPerSecond: pub.acceptedInWindow / o.seconds,
      apiMs: { p50: h.quantile(0.5), p99: h.quantile(0.99), max: h.maxMs },
      serverCpu: cpuPercent(cpuA, cpuB, o.seconds).total,
      serverRssMiB: rss / 2 ** 20,
      notes,
    };
  } finally {
    await publisher?.stop();
    await server.stop();
  }
}

export function durableTable(runs: readonly DurableRun[]): string {
  const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
  const names = [...new Set(runs.map((r) => r.mode))];
  const rows = names.map((name) => {
    const rs = runs.filter((r) => r.mode === name);
    const eph = runs.filter((r) => r.batch === rs[0]!.batch && !r.durable);
    const ratio = rs[0]!.durable && eph.length > 0 ? (spread(rs.map((r) => r.messagesPerSecond)).median / spread(eph.map((r) => r.messagesPerSecond)).median).toFixed(2) + '×' : '';
    return [
      name,
      fmtSpread(spread(rs.map((r) => r.messagesPerSecond))),
      ratio,
      fmtSpread(spread(rs.map((r) => r.apiMs.p50)), ms),
      fmtSpread(spread(rs.map((r) => r.apiMs.p99)), ms),
      fmtSpread(spread(rs.map((r) => r.serverCpu)), (x) => x.toFixed(0) + '%'),
      fmtSpread(spread(rs.map((r) => r.serverRssMiB)), (x) => x.toFixed(0)),
    ];
  });
  return table(['publish', 'messages/s answered', '÷ ephemeral', 'API p50 ms', 'API p99 ms', 'server CPU', 'RSS MiB'], rows);
}

/** The charts of a durable results file. */
export function durableCharts(d: { machine: Machine; date: string; options: { users: number; batch: number }; runs: DurableRun[] }): { file: string; chart: BarChart }[] {
  const groups = [1, d.options.batch].map((b) => ({ label: b === 1 ? 'one message per request' : `${b} messages per request`, match: (r: DurableRun) => r.batch === b }));
  return [
    {
      file: `${ROOT}/${CHARTS_DIR}/durable-throughput.png`,
      chart: {
        title: 'Publish through the HTTP API: messages answered per second',
        subtitle: `durable: stored in SQLite (group commit) before 202; ${d.options.users.toLocaleString('en')} offline users; ${d.machine.cpuModel}, ${d.machine.nproc} CPUs, Node ${d.machine.node}, ${d.date.slice(0, 10)}`,
        unit: 'messages/s',
        log: true,
        groups: groups.map((g) => g.label),
        series: seriesOf(d.runs, ['ephemeral', 'durable'], groups, (r) => (r.durable ? 'durable' : 'ephemeral'), (r) => r.messagesPerSecond),
      },
    },
  ];
}

export const durable: Scenario = {
  name: 'durable',
  summary: 'durable publish (stored in the embedded SQLite store before 202) beside ephemeral publish',
  usage: 'durable [--users 10000] [--batch 50] [--seconds 6] [--warmup 2] [--repeats 3] [--quick] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        users: { type: 'string', default: '10000' },
        batch: { type: 'string', default: '50' },
        seconds: { type: 'string', default: '6' },
        warmup: { type: 'string', default: '2' },
        repeats: { type: 'string', default: '3' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      users: Number(values.users),
      batch: Number(values.batch),
      seconds: quick ? 1.5 : Number(values.seconds),
      warmup: quick ? 0.5 : Number(values.warmup),
      repeats: quick ? 1 : Number(values.repeats),
    };
    const modes: Mode[] = [
      { name: 'ephemeral, 1 per request', durable: false, batch: 1, inflight: 32 },
      { name: 'durable, 1 per request', durable: true, batch: 1, inflight: 32 },
      { name: `ephemeral, ${o.batch} per request`, durable: false, batch: o.batch, inflight: 32 },
      { name: `durable, ${o.batch} per request`, durable: true, batch: o.batch, inflight: 32 },
    ];
    if (canPin()) pinPid(process.pid, 1);
    const runs: DurableRun[] = [];
    try {
      for (let r = 0; r < o.repeats; r++) {
        for (const mode of modes) {
          process.stderr.write(`durable: ${mode.name}, run ${r + 1}/${o.repeats}\n`);
          const run = await oneRun(mode, r, o);
          runs.push(run);
          process.stderr.write(
            `  ${si(run.messagesPerSecond)} messages/s, API p99 ${run.apiMs.p99.toFixed(1)} ms` +
              (run.notes.length > 0 ? `\n  notes: ${run.notes.join(' | ')}` : '') +
              '\n',
          );
        }
      }
    } finally {
      await stopAll();
    }
    const m = machine(canPin());
    const file = writeResult('durable', { scenario: 'durable', machine: m, options: o, runs }, values.out);
    process.stdout.write(`\ndurable publish on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}, ${o.users} offline users\n\n`);
    process.stdout.write(durableTable(runs) + '\n\n');
    const charts = await renderCharts(durableCharts({ machine: m, date: new Date().toISOString(), options: o, runs }));
    process.stdout.write(`results: ${file}${charts.length > 0 ? `\ncharts: ${charts.join(', ')}` : ''}\n`);
  },
};

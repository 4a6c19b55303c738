/**
 * Channel fan-out: N subscribers on one channel, a publisher posting as
 * fast as the server takes it (bounded by an end-to-end window), each
 * system in turn, interleaved over repeats. Reports deliveries/s, end-to-end
 * latency percentiles, server CPU, RSS, event-loop delay and GC pauses.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { canPin, cpuPercent, cpuTime, pinPid, rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { CHARTS_DIR, renderCharts, seriesOf, type BarChart } from '../lib/charts.js';
import { machine, ROOT, script, sleep, writeResult, type Machine, type Scenario } from '../lib/scenario.js';
import type { ServerStats } from '../lib/server-probe.js';
import { fmtSpread, Histogram, si, spread, table } from '../lib/stats.js';
import { parseSystems, startSystem, type SystemSpec } from '../lib/systems.js';
import { now } from '../lib/lean-ws.js';
import type { ClientResults, ConnectArgs, ConnectResult } from './clients.js';
import type { RunArgs, RunResult } from './publisher.js';

/** Connections per load-client process (well under the 20,000 file limit). */
const PER_CLIENT_PROCESS = 5000;

export interface FanoutRun {
  readonly system: string;
  /** Messages/s the publisher was paced at; absent for saturation runs. */
  readonly pacedRate?: number;
  /** The pace as a fraction of Silk's maximum (older results files lack it: they paced at 0.5 only). */
  readonly pacedFraction?: number;
  /** Saturation runs: the end-to-end window, when it is the tight one (latency at saturation), not the main one. */
  readonly tightWindow?: number;
  readonly subscribers: number;
  readonly repeat: number;
  readonly deliveriesPerSecond: number;
  readonly messagesPerSecond: number;
  readonly latencyMs: { p50: number; p99: number; max: number; samples: number };
  readonly serverCpu: { total: number; user: number; system: number };
  readonly clientCpu: number;
  readonly serverRssMiB: number;
  readonly server: ServerStats | undefined;
  readonly connectMs: number;
  readonly complete: boolean;
  readonly notes: string[];
}

interface Options {
  readonly sizes: number[];
  readonly systems: SystemSpec[];
  readonly seconds: number;
  readonly warmup: number;
  readonly repeats: number;
  readonly window: number;
  readonly inflight: number;
  /** Sizes that also get latency runs paced at fractions of Silk's maximum rate. */
  readonly pacedSizes: number[];
  /** Those fractions (0.5 by default: the target's half rate). */
  readonly pacedFractions: number[];
  /** Sizes that also get a saturation run with the small window `tightWindow`: latency when the server is just kept busy. */
  readonly tightSizes: number[];
  readonly tightWindow: number;
}

async function oneRun(
  spec: SystemSpec,
  subscribers: number,
  repeat: number,
  o: Options,
  paced?: { rate: number; fraction: number },
  tightWindow?: number,
): Promise<FanoutRun> {
  const pacedRate = paced?.rate;
  const pin = canPin();
  const notes: string[] = [];
  const { child: server, port } = await startSystem(spec, pin ? 0 : undefined);
  const clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    const procs = Math.ceil(subscribers / PER_CLIENT_PROCESS);
    for (let i = 0; i < procs; i++) clients.push(startChild(script('fanout/clients.js'), [], { name: `clients-${i}`, ...(pin ? { cpu: 1 } : {}) }));
    const connectStart = performance.now();
    const results = await Promise.all(
      clients.map((c, i) => {
        const count = Math.min(PER_CLIENT_PROCESS, subscribers - i * PER_CLIENT_PROCESS);
        const args: ConnectArgs = {
          host: '127.0.0.1',
          port,
          mode: spec.mode,
          count,
          firstIndex: i * PER_CLIENT_PROCESS,
          concurrency: 64,
          app: BENCH_APP.id,
          secret: BENCH_APP.secret,
          channel: BENCH_CHANNEL,
          sampleEvery: Math.max(1, Math.round(subscribers / 500)),
        };
        return c.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 120_000);
      }),
    );
    const connectMs = performance.now() - connectStart;
    const opened = results.reduce((s, r) => s + r.opened, 0);
    if (opened < subscribers) notes.push(`only ${opened} of ${subscribers} connected: ${results.flatMap((r) => r.errors).join('; ')}`);

    publisher = startChild(script('fanout/publisher.js'), [], { name: 'publisher', ...(pin ? { cpu: 1 } : {}) });
    await publisher.call('probe', {
      host: '127.0.0.1',
      port,
      mode: spec.mode,
      app: BENCH_APP.id,
      secret: BENCH_APP.secret,
      channel: BENCH_CHANNEL,
    }, 150_000);

    const startAt = now() + 200;
    const t0 = startAt + o.warmup * 1000;
    const t1 = t0 + o.seconds * 1000;
    await Promise.all(clients.map((c) => c.call('window', { t0, t1 })));
    const run: RunArgs = {
      kind: pacedRate === undefined ? 'saturate' : 'paced',
      host: '127.0.0.1',
      port,
      path: spec.publishPath,
      headers: spec.publishHeaders,
      channel: BENCH_CHANNEL,
      inflight: o.inflight,
      window: pacedRate !== undefined ? 0 : tightWindow ?? o.window,
      rate: pacedRate ?? 0,
      startAt,
      t0,
      t1,
      stopAt: t1,
    };
    const running = publisher.call<RunResult>('run', run as unknown as Record<string, unknown>, (o.warmup + o.seconds) * 1000 + 60_000);
    await sleep(t0 - now());
    await server.call('reset');
    const cpuA = cpuTime(server.pid);
    const clientCpuA = clients.map((c) => cpuTime(c.pid));
    await sleep(t1 - now());
    const cpuB = cpuTime(server.pid);
    const clientCpuB = clients.map((c) => cpuTime(c.pid));
    const stats = await server.call<ServerStats>('stats').catch(() => undefined);
    const rss = rssBytes(server.pid) ?? NaN;
    const pub = await running;
    const drained = await publisher.call<{ probeReceived: number; accepted: number }>('drain', { timeoutMs: 10_000 }, 20_000);
    if (drained.probeReceived < drained.accepted) notes.push(`probe got ${drained.probeReceived} of ${drained.accepted} accepted messages`);
    if (pub.failed > 0) notes.push(`${pub.failed} publishes failed: ${JSON.stringify(pub.statuses)} ${pub.errors.join('; ')}`);
    if (pub.stalls > 0) notes.push(`${pub.stalls} window stalls`);
    if (pacedRate !== undefined && pub.late > pub.sent / 100) notes.push(`${pub.late} publishes left over 5 ms late`);

    // The clients may still be reading what the server already wrote: give them a bounded time.
    let all: ClientResults[] = [];
    const readBy = now() + 10_000;
    for (;;) {
      all = await Promise.all(clients.map((c) => c.call<ClientResults>('results')));
      if (all.every((r) => r.minTotal >= drained.probeReceived) || now() > readBy) break;
      await sleep(100);
    }
    const hist = new Histogram();
    let inWindow = 0;
    let minTotal = Infinity;
    let maxTotal = 0;
    for (const r of all) {
      hist.add(r.latency);
      inWindow += r.inWindow;
      minTotal = Math.min(minTotal, r.minTotal);
      maxTotal = Math.max(maxTotal, r.maxTotal);
      if (r.closed > 0) notes.push(`${r.closed} client connections closed: ${JSON.stringify(r.closeCodes)}`);
    }
    // Every subscriber should have every accepted message once the probe has them all.
    const complete = minTotal === maxTotal && maxTotal === drained.probeReceived;
    if (!complete) notes.push(`per-connection totals ${minTotal}–${maxTotal}, probe ${drained.probeReceived}`);
    const seconds = (t1 - t0) / 1000;
    const clientCpu = clientCpuA.reduce((s, a, i) => s + cpuPercent(a, clientCpuB[i], seconds).total, 0);
    return {
      system: spec.name,
      ...(paced !== undefined ? { pacedRate: paced.rate, pacedFraction: paced.fraction } : {}),
      ...(tightWindow !== undefined ? { tightWindow } : {}),
      subscribers,
      repeat,
      deliveriesPerSecond: inWindow / seconds,
      messagesPerSecond: pub.acceptedInWindow / seconds,
      latencyMs: { p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.maxMs, samples: hist.count },
      serverCpu: cpuPercent(cpuA, cpuB, seconds),
      clientCpu,
      serverRssMiB: rss / 2 ** 20,
      server: stats,
      connectMs,
      complete,
      notes,
    };
  } finally {
    await publisher?.call('close').catch(() => undefined);
    await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
    await Promise.all([server.stop(), publisher?.stop(), ...clients.map((c) => c.stop())]);
  }
}

/** Frames per socket write in the measure window (Silk reports its writes; NaN for the others). */
function framesPerWrite(r: FanoutRun): number {
  const x = r.server?.extra;
  return x?.['writes'] ? (x['frames'] ?? NaN) / x['writes'] : NaN;
}

/** The summary table: one row per system and size, medians with min–max. */
export function fanoutTable(all: readonly FanoutRun[], tight = false): string {
  const runs = all.filter((r) => r.pacedRate === undefined && (r.tightWindow !== undefined) === tight);
  const rows: string[][] = [];
  const sizes = [...new Set(runs.map((r) => r.subscribers))];
  const systems = [...new Set(runs.map((r) => r.system))];
  for (const n of sizes) {
    const silk = spread(runs.filter((r) => r.subscribers === n && r.system === 'silk').map((r) => r.deliveriesPerSecond));
    for (const s of systems) {
      const rs = runs.filter((r) => r.subscribers === n && r.system === s);
      if (rs.length === 0) continue;
      const d = spread(rs.map((r) => r.deliveriesPerSecond));
      const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
      rows.push([
        tight ? `${n}, ${rs[0]!.tightWindow}` : String(n),
        s,
        fmtSpread(d),
        s === 'silk' || silk.n === 0 ? '' : (silk.median / d.median).toFixed(2) + '×',
        fmtSpread(spread(rs.map((r) => r.latencyMs.p50)), ms),
        fmtSpread(spread(rs.map((r) => r.latencyMs.p99)), ms),
        fmtSpread(spread(rs.map((r) => r.serverCpu.total)), (x) => x.toFixed(0) + '%'),
        fmtSpread(spread(rs.map((r) => r.serverRssMiB)), (x) => x.toFixed(0)),
        fmtSpread(spread(rs.map((r) => r.server?.loopDelay.p99 ?? NaN)), ms),
        fmtSpread(spread(rs.map((r) => r.server?.gc.maxMs ?? NaN)), ms),
        fmtSpread(spread(rs.map(framesPerWrite)), (x) => x.toFixed(1)),
        rs.every((r) => r.complete) ? 'yes' : 'NO',
      ]);
    }
  }
  return table(
    [tight ? 'subs, window' : 'subs', 'system', 'deliveries/s', 'silk ÷', 'p50 ms', 'p99 ms', 'server CPU', 'RSS MiB', 'loop p99 ms', 'GC max ms', 'frames/write', 'complete'],
    rows,
  );
}

/** Latency at paced rates (fractions of Silk's maximum), one row per size, rate and system. */
export function pacedTable(all: readonly FanoutRun[]): string {
  const runs = all.filter((r) => r.pacedRate !== undefined);
  const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
  const rows: string[][] = [];
  for (const n of [...new Set(runs.map((r) => r.subscribers))]) {
    for (const rate of [...new Set(runs.filter((r) => r.subscribers === n).map((r) => r.pacedRate!))].sort((a, b) => a - b)) {
      for (const s of [...new Set(runs.map((r) => r.system))]) {
        const rs = runs.filter((r) => r.subscribers === n && r.pacedRate === rate && r.system === s);
        if (rs.length === 0) continue;
        rows.push([
          String(n),
          s,
          `${((rs[0]!.pacedFraction ?? 0.5) * 100).toFixed(0)}%`,
          si(rate),
          fmtSpread(spread(rs.map((r) => r.deliveriesPerSecond))),
          fmtSpread(spread(rs.map((r) => r.latencyMs.p50)), ms),
          fmtSpread(spread(rs.map((r) => r.latencyMs.p99)), ms),
          fmtSpread(spread(rs.map((r) => r.latencyMs.max)), ms),
          fmtSpread(spread(rs.map((r) => r.server?.loopDelay.p99 ?? NaN)), ms),
          fmtSpread(spread(rs.map((r) => r.server?.gc.maxMs ?? NaN)), ms),
          fmtSpread(spread(rs.map(framesPerWrite)), (x) => x.toFixed(1)),
        ]);
      }
    }
  }
  return table(['subs', 'system', 'of Silk max', 'messages/s', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'loop p99 ms', 'GC max ms', 'frames/write'], rows);
}

/** The charts of a fan-out results file. */
export function fanoutCharts(d: { machine: Machine; date: string; options: { systems: string[]; sizes: number[]; pacedSizes: number[]; tightSizes?: number[]; tightWindow?: number }; runs: FanoutRun[] }): { file: string; chart: BarChart }[] {
  const where = `${d.machine.cpuModel}, ${d.machine.nproc} CPUs, Node ${d.machine.node}, ${d.date.slice(0, 10)}`;
  const systems = d.options.systems;
  const sat = d.runs.filter((r) => r.pacedRate === undefined && r.tightWindow === undefined);
  const tight = (d.options.tightSizes ?? []).filter((n) => d.runs.some((r) => r.subscribers === n && r.tightWindow !== undefined));
  const groups = d.options.sizes.map((n) => ({ label: `${n.toLocaleString('en')} subscribers`, match: (r: FanoutRun) => r.subscribers === n }));
  // The latency chart shows the half-rate runs (the target's), where there are any.
  const isHalfRate = (r: FanoutRun): boolean => r.pacedRate !== undefined && (r.pacedFraction ?? 0.5) === 0.5;
  const half = d.options.pacedSizes.filter((n) => d.options.sizes.includes(n) && d.runs.some((r) => r.subscribers === n && isHalfRate(r)));
  return [
    {
      file: `${ROOT}/${CHARTS_DIR}/fanout-throughput.png`,
      chart: { title: 'Channel fan-out: deliveries per second (log scale)', subtitle: where, unit: 'deliveries/s', log: true, groups: groups.map((g) => g.label), series: seriesOf(sat, systems, groups, (r) => r.system, (r) => r.deliveriesPerSecond) },
    },
    {
      file: `${ROOT}/${CHARTS_DIR}/fanout-latency.png`,
      chart: {
        title: 'Channel fan-out: p99 end-to-end latency, ms (log scale)',
        subtitle: `at saturation (window ${d.options.tightWindow ?? '–'} where marked), and paced at half of Silk's maximum rate; ${where}`,
        unit: 'ms',
        log: true,
        groups: [
          ...groups.map((g) => `${g.label}, saturated`),
          ...tight.map((n) => `${n.toLocaleString('en')}, saturated, window ${d.options.tightWindow}`),
          ...half.map((n) => `${n.toLocaleString('en')}, half rate`),
        ],
        series: seriesOf(
          d.runs,
          systems,
          [
            ...groups.map((g) => ({ label: g.label, match: (r: FanoutRun) => g.match(r) && r.pacedRate === undefined && r.tightWindow === undefined })),
            ...tight.map((n) => ({ label: `w${n}`, match: (r: FanoutRun) => r.subscribers === n && r.tightWindow !== undefined })),
            ...half.map((n) => ({ label: String(n), match: (r: FanoutRun) => r.subscribers === n && isHalfRate(r) })),
          ],
          (r) => r.system,
          (r) => r.latencyMs.p99,
        ),
      },
    },
  ];
}

export const fanout: Scenario = {
  name: 'fanout',
  summary: 'channel fan-out to N subscribers: deliveries/s and latency, Silk beside raw ws and Socket.IO',
  usage: `fanout [--sizes 1000,10000] [--systems silk,ws-coalesce,ws,socketio] [--seconds 8] [--warmup 2]
       [--repeats 3] [--window 200] [--inflight 16] [--paced-sizes 1000]
       [--paced-fractions 0.5] [--tight-sizes 10000]
       [--tight-window 20] [--quick] [--out FILE]`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        sizes: { type: 'string', default: '1000,10000' },
        systems: { type: 'string', default: 'silk,ws-coalesce,ws,socketio' },
        'paced-sizes': { type: 'string', default: '1000' },
        'paced-fractions': { type: 'string', default: '0.5' },
        seconds: { type: 'string', default: '8' },
        warmup: { type: 'string', default: '2' },
        repeats: { type: 'string', default: '3' },
        window: { type: 'string', default: '200' },
        'tight-sizes': { type: 'string', default: '10000' },
        'tight-window': { type: 'string', default: '20' },
        inflight: { type: 'string', default: '16' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      // --quick: 1,000 subscribers unless sizes are given.
      sizes: quick && !argv.includes('--sizes') ? [1000] : values.sizes.split(',').map(Number),
      systems: parseSystems(values.systems),
      seconds: quick ? 1.5 : Number(values.seconds),
      warmup: quick ? 0.5 : Number(values.warmup),
      repeats: quick ? 1 : Number(values.repeats),
      window: Number(values.window),
      inflight: Number(values.inflight),
      // --quick: no paced runs unless asked for.
      pacedSizes: values['paced-sizes'] === '' || (quick && !argv.includes('--paced-sizes')) ? [] : values['paced-sizes'].split(',').map(Number),
      // --quick: no tight-window runs unless asked for.
      tightSizes: values['tight-sizes'] === '' || (quick && !argv.includes('--tight-sizes')) ? [] : values['tight-sizes'].split(',').map(Number),
      pacedFractions: values['paced-fractions'] === '' ? [] : values['paced-fractions'].split(',').map(Number),
      tightWindow: Number(values['tight-window']),
    };
    if (o.pacedFractions.some((f) => !(f > 0 && f <= 1))) throw new Error('--paced-fractions: each a fraction of Silk\'s maximum rate, above 0 and at most 1');
    // The runner itself shares the client CPU.
    if (canPin()) pinPid(process.pid, 1);
    const runs: FanoutRun[] = [];
    const report = (run: FanoutRun): void => {
      process.stderr.write(
        `  ${si(run.deliveriesPerSecond)} deliveries/s, p99 ${run.latencyMs.p99.toFixed(1)} ms, server CPU ${run.serverCpu.total.toFixed(0)}%, clients CPU ${run.clientCpu.toFixed(0)}%` +
          (run.notes.length > 0 ? `\n  notes: ${run.notes.join(' | ')}` : '') +
          '\n',
      );
    };
    // A run that fails (a baseline that stops answering, say) is reported and left out; the others go on.
    const failures: string[] = [];
    const tryRun = async (run: () => Promise<FanoutRun>, what: string): Promise<FanoutRun | undefined> => {
      try {
        return await run();
      } catch (err) {
        const why = `${what}: ${(err as Error).message}`;
        failures.push(why);
        process.stderr.write(`  failed: ${why}\n`);
        await stopAll();
        return undefined;
      }
    };
    const attempt = (run: FanoutRun | undefined): void => {
      if (run === undefined) return;
      runs.push(run);
      report(run);
    };
    try {
      for (const n of o.sizes) {
        for (let r = 0; r < o.repeats; r++) {
          // Interleave systems within each repeat (A B C A B C …) so drift hits all alike.
          for (const spec of o.systems) {
            process.stderr.write(`fanout: ${spec.name}, ${n} subscribers, run ${r + 1}/${o.repeats}\n`);
            attempt(await tryRun(() => oneRun(spec, n, r, o), `${spec.name}, ${n} subscribers`));
          }
        }
        if (o.tightSizes.includes(n)) {
          for (let r = 0; r < o.repeats; r++) {
            for (const spec of o.systems) {
              process.stderr.write(`fanout: ${spec.name}, ${n} subscribers, window ${o.tightWindow}, run ${r + 1}/${o.repeats}\n`);
              attempt(await tryRun(() => oneRun(spec, n, r, o, undefined, o.tightWindow), `${spec.name}, ${n} subscribers, window ${o.tightWindow}`));
            }
          }
        }
        const silk = spread(
          runs.filter((r) => r.subscribers === n && r.system === 'silk' && r.pacedRate === undefined && r.tightWindow === undefined).map((r) => r.messagesPerSecond),
        );
        if (!o.pacedSizes.includes(n) || silk.n === 0) continue;
        for (const fraction of o.pacedFractions) {
          // Rounded down, so a fraction of 1 stays within Silk's own maximum.
          const rate = Math.floor(silk.median * fraction);
          // A system whose maximum is below the pace would only queue without bound: its latency is not defined there.
          const able = o.systems.filter((spec) => {
            const max = spread(
              runs.filter((r) => r.subscribers === n && r.system === spec.name && r.pacedRate === undefined && r.tightWindow === undefined).map((r) => r.messagesPerSecond),
            );
            if (max.n > 0 && max.median >= rate) return true;
            process.stderr.write(`fanout: ${spec.name} is left out of the paced runs at ${si(rate)} messages/s: its maximum, ${si(max.median)}, is below\n`);
            return false;
          });
          for (let r = 0; r < o.repeats; r++) {
            for (const spec of able) {
              process.stderr.write(`fanout: ${spec.name}, ${n} subscribers, paced at ${si(rate)} messages/s, run ${r + 1}/${o.repeats}\n`);
              attempt(await tryRun(() => oneRun(spec, n, r, o, { rate, fraction }), `${spec.name}, ${n} subscribers, paced at ${si(rate)}/s`));
            }
          }
        }
      }
    } finally {
      await stopAll();
    }
    const m = machine(canPin());
    const file = writeResult('fanout', { scenario: 'fanout', machine: m, options: { ...o, systems: o.systems.map((s) => s.name) }, runs, failures }, values.out);
    process.stdout.write(`\nfan-out on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}${m.pinned ? ', server on CPU 0, load on CPU 1' : ''}\n\n`);
    process.stdout.write(fanoutTable(runs) + '\n\n');
    if (failures.length > 0) process.stdout.write(`runs that failed and are left out:\n${failures.map((f) => `- ${f}`).join('\n')}\n\n`);
    if (runs.some((r) => r.tightWindow !== undefined)) {
      process.stdout.write(`latency at saturation with a window of ${o.tightWindow} messages:\n\n${fanoutTable(runs, true)}\n\n`);
    }
    if (runs.some((r) => r.pacedRate !== undefined)) {
      process.stdout.write(`latency paced at fractions of Silk's maximum message rate:\n\n${pacedTable(runs)}\n\n`);
    }
    const charts = await renderCharts(fanoutCharts({ machine: m, date: new Date().toISOString(), options: { ...o, systems: o.systems.map((s) => s.name) }, runs }));
    process.stdout.write(`results: ${file}${charts.length > 0 ? `\ncharts: ${charts.join(', ')}` : ''}\n`);
  },
};

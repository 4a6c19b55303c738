/**
 * Reconnect storms. N subscribers (spread over `--channels` channels) and
 * a durable publisher at a steady rate; then, on one embedded node, every
 * other connection is reset at once (RST) and, after `--away` ms, all of
 * them come back together, each resubscribing with `since`; separately,
 * on two nodes on Redis, one node is drained with SIGTERM and its clients
 * move to the other after the delay their `reconnect` frame announced.
 *
 * It reports what an operator would check: how long until every client is
 * live and recovered, the node's event-loop delay during the storm, clients
 * closed that never lost their path (by heartbeat above all: must be 0),
 * messages missing and duplicated per client (must be 0), catch-up frames
 * per second beside the live fan-out's, what a caught-up frame costs next
 * to a live one, and for the drain the survivor's peak connects per second.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP } from '../lib/bench-app.js';
import { renderCharts, type BarChart } from '../lib/charts.js';
import { deploy, type Deployment } from '../lib/nodes.js';
import { cpuTime, startChild, stopAll, type Child } from '../lib/proc.js';
import { machine, script, sleep, writeResult, type Machine, type Scenario } from '../lib/scenario.js';
import type { ServerStats } from '../lib/server-probe.js';
import { si, table } from '../lib/stats.js';
import type { StormConnectArgs, StormCounts } from './clients.js';
import type { PublishArgs } from './publisher.js';

/** Clients per load process. */
const PER_PROCESS = 2500;
/** The over-time series' step, ms. */
const SAMPLE_MS = 250;

interface Options {
  readonly clients: number;
  readonly channels: number;
  /** Batches per second: each channel gets this many messages a second. */
  readonly ticks: number;
  readonly awayMs: number;
  readonly heartbeatSeconds: number;
  readonly drainSpreadSeconds: number;
  readonly steadySeconds: number;
  readonly drain: boolean;
}

/** One point of the over-time series. */
interface Sample {
  /** Seconds since the storm began (the cut, or the SIGTERM). */
  readonly t: number;
  readonly loopMax: number;
  readonly loopP99: number;
  /** Connections opened per second over the step, on the node measured. */
  readonly connectsPerSecond: number;
  readonly catchupFramesPerSecond: number;
  readonly catchupsWaiting: number;
}

interface Outcome {
  readonly clients: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly falseHeartbeatCloses: number;
  readonly closedByServer: Record<string, number>;
  readonly notRecovered: number;
  readonly reconnectFailures: number;
  readonly behind: number;
  readonly published: number;
  readonly publishFailures: number;
  readonly errors: string[];
}

export interface StormRun extends Outcome {
  readonly kind: 'storm';
  readonly cut: number;
  /** Messages each cut client missed while away (channel rate × away time). */
  readonly backlogPerClient: number;
  /** From the reconnects' start until the last `recovered` reply, s. */
  readonly allRecoveredSeconds: number;
  readonly recoveryP50Ms: number;
  readonly recoveryP99Ms: number;
  readonly loopP99: number;
  readonly loopMax: number;
  /** Longest GC pause in the storm, ms. */
  readonly gcMax: number;
  readonly catchupFrames: number;
  readonly catchupFramesPerSecond: number;
  /** Frames written per second in the steady phase before the storm. */
  readonly liveFramesPerSecond: number;
  /**
   * Server CPU µs per frame, above the idle node's (heartbeats): live in the
   * steady phase (publishing included); caught up in a second cut round with
   * the publisher paused while the clients come back, less the handshakes at
   * their measured cost. See bench/README.md.
   */
  readonly liveFrameUs: number;
  readonly catchupFrameUs: number;
  readonly connectUs: number;
  readonly samples: Sample[];
}

export interface DrainRun extends Outcome {
  readonly kind: 'drain';
  readonly drained: number;
  /** From SIGTERM until every client is live again, s. */
  readonly allBackSeconds: number;
  readonly survivorPeakConnectsPerSecond: number;
  /** What the spread allows: the drained node's clients over drainSpreadSeconds. */
  readonly spreadRate: number;
  readonly loopP99: number;
  readonly loopMax: number;
  readonly samples: Sample[];
}

const quantile = (xs: readonly number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

const metric = (text: string, name: string): number => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
};

/** Counters off a node's /metrics, for the over-time series. */
async function readMetrics(port: number): Promise<{ opened: number; catchupFrames: number; waiting: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return {
    opened: metric(text, 'silk_connections_opened_total'),
    catchupFrames: metric(text, 'silk_catchup_frames_total'),
    waiting: metric(text, 'silk_catchups_waiting'),
  };
}

/** Sample `node` every SAMPLE_MS until stopped. */
function sampler(node: Child, port: number): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  const t0 = performance.now();
  let running = true;
  const loop = (async () => {
    let prev = await readMetrics(port);
    let at = performance.now();
    await node.call('interval');
    while (running) {
      await sleep(SAMPLE_MS);
      const [m, lp] = await Promise.all([readMetrics(port).catch(() => prev), node.call<{ p99: number; max: number }>('interval').catch(() => ({ p99: NaN, max: NaN }))]);
      const now = performance.now();
      const dt = (now - at) / 1000;
      samples.push({
        t: (now - t0) / 1000,
        loopMax: lp.max,
        loopP99: lp.p99,
        connectsPerSecond: (m.opened - prev.opened) / dt,
        catchupFramesPerSecond: (m.catchupFrames - prev.catchupFrames) / dt,
        catchupsWaiting: m.waiting,
      });
      prev = m;
      at = now;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

async function startClients(o: Options, ports: number[]): Promise<Child[]> {
  const procs = Math.ceil(o.clients / PER_PROCESS);
  const clients = Array.from({ length: procs }, (_, i) => startChild(script('storm/clients.js'), [], { name: `storm-clients-${i}`, cpu: 1 }));
  const results = await Promise.all(
    clients.map((c, i) => {
      const count = Math.min(PER_PROCESS, o.clients - i * PER_PROCESS);
      const args: StormConnectArgs = { ports, count, firstIndex: i * PER_PROCESS, channels: o.channels, concurrency: 32, app: BENCH_APP.id, secret: BENCH_APP.secret };
      return c.call<StormCounts>('connect', args as unknown as Record<string, unknown>, 300_000);
    }),
  );
  const live = results.reduce((s, r) => s + r.live, 0);
  if (live < o.clients) throw new Error(`only ${live} of ${o.clients} clients connected: ${results.flatMap((r) => r.errors).slice(0, 3).join('; ')}`);
  return clients;
}

async function outcome(clients: Child[], publisher: Child): Promise<Outcome> {
  const pub = await publisher.call<{ acked: number[]; sent: number; failures: number }>('stop', {}, 30_000);
  const all = await Promise.all(
    clients.map((c) =>
      c.call<StormCounts & { behind: number }>('settle', { final: pub.acked, timeoutMs: 30_000 }, 60_000),
    ),
  );
  const closed: Record<string, number> = {};
  for (const r of all) for (const [k, v] of Object.entries(r.closedByServer)) closed[k] = (closed[k] ?? 0) + v;
  return {
    clients: all.reduce((s, r) => s + r.clients, 0),
    missing: all.reduce((s, r) => s + r.missing, 0),
    duplicated: all.reduce((s, r) => s + r.duplicated, 0),
    falseHeartbeatCloses: all.reduce((s, r) => s + r.falseHeartbeatCloses, 0),
    closedByServer: closed,
    notRecovered: all.reduce((s, r) => s + r.notRecovered, 0),
    reconnectFailures: all.reduce((s, r) => s + r.reconnectFailures, 0),
    behind: all.reduce((s, r) => s + r.behind, 0),
    published: pub.sent,
    publishFailures: pub.failures,
    errors: all.flatMap((r) => r.errors).slice(0, 5),
  };
}

async function teardown(d: Deployment, clients: readonly Child[], publisher: Child | undefined): Promise<void> {
  await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
  await Promise.all([publisher?.stop(), ...clients.map((c) => c.stop())]);
  await d.stop();
}

const cpuUs = (pid: number): number => {
  const c = cpuTime(pid);
  return c === undefined ? NaN : (c.user + c.system) * 1e6;
};

async function storm(o: Options): Promise<StormRun> {
  const d: Deployment = await deploy('storm', 1, false, {}, { config: { heartbeatSeconds: o.heartbeatSeconds }, cpu: 0 });
  const node = d.nodes[0]!;
  let clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    const c0 = cpuUs(node.child.pid);
    clients = await startClients(o, [node.port]);
    const connectUs = (cpuUs(node.child.pid) - c0) / o.clients;
    // Idle (heartbeats only), then steady: a live frame costs what publishing adds, per frame.
    await sleep(500);
    const i0 = cpuUs(node.child.pid);
    await sleep(o.steadySeconds * 1000);
    const idleUsPerSecond = (cpuUs(node.child.pid) - i0) / o.steadySeconds;
    publisher = startChild(script('storm/publisher.js'), [], { name: 'storm-publisher', cpu: 1 });
    const pub: PublishArgs = { port: node.port, app: BENCH_APP.id, apiKey: BENCH_APP.apiKey, channels: o.channels, ticksPerSecond: o.ticks };
    await publisher.call('start', pub as unknown as Record<string, unknown>);
    await sleep(1000);

    // Steady: what a live frame costs.
    await node.child.call('reset');
    const s0 = cpuUs(node.child.pid);
    await sleep(o.steadySeconds * 1000);
    const steady = await node.child.call<ServerStats>('stats');
    const liveFrameUs = (cpuUs(node.child.pid) - s0 - idleUsPerSecond * o.steadySeconds) / steady.extra['frames']!;
    const liveFramesPerSecond = steady.extra['frames']! / o.steadySeconds;

    // The storm.
    const series = sampler(node.child, node.port);
    const m0 = await readMetrics(node.port);
    await node.child.call('reset');
    const cuts = await Promise.all(
      clients.map((c) => c.call<{ cut: number; ms: number; recoveries: number[] }>('cut', { awayMs: o.awayMs, concurrency: 1000 }, 300_000)),
    );
    const stats = await node.child.call<ServerStats>('stats');
    const m1 = await readMetrics(node.port);
    await sleep(1000);
    const samples = await series.stop();

    const cut = cuts.reduce((s, c) => s + c.cut, 0);
    const recoveries = cuts.flatMap((c) => c.recoveries);
    const allRecoveredSeconds = Math.max(...cuts.map((c) => c.ms)) / 1000;
    const catchupFrames = m1.catchupFrames - m0.catchupFrames;

    // A second round for what a caught-up frame costs: the same cut, with the publisher paused as the
    // clients come back, so the node's CPU above idle is the handshakes (at their measured cost) and
    // the catch-ups alone.
    const pausing = sleep(o.awayMs).then(() => publisher!.call('pause'));
    const q0 = { cpu: cpuUs(node.child.pid), m: await readMetrics(node.port), at: performance.now() };
    await Promise.all(clients.map((c) => c.call('cut', { awayMs: o.awayMs, concurrency: 1000 }, 300_000)));
    await pausing;
    await sleep(500);
    const q1 = { cpu: cpuUs(node.child.pid), m: await readMetrics(node.port), at: performance.now() };
    const quietFrames = q1.m.catchupFrames - q0.m.catchupFrames;
    const quietCpu = q1.cpu - q0.cpu - idleUsPerSecond * ((q1.at - q0.at) / 1000);
    const catchupFrameUs = (quietCpu - (q1.m.opened - q0.m.opened) * connectUs) / quietFrames;
    await publisher.call('resume');
    await sleep(1000);
    const out = await outcome(clients, publisher);
    return {
      kind: 'storm',
      ...out,
      cut,
      backlogPerClient: Math.round((o.ticks * o.awayMs) / 1000),
      allRecoveredSeconds,
      recoveryP50Ms: quantile(recoveries, 0.5),
      recoveryP99Ms: quantile(recoveries, 0.99),
      loopP99: stats.loopDelay.p99,
      loopMax: stats.loopDelay.max,
      gcMax: stats.gc.maxMs,
      catchupFrames,
      catchupFramesPerSecond: catchupFrames / allRecoveredSeconds,
      liveFramesPerSecond,
      liveFrameUs,
      catchupFrameUs,
      connectUs,
      samples,
    };
  } finally {
    await teardown(d, clients, publisher);
  }
}

async function drain(o: Options): Promise<DrainRun> {
  const config = { heartbeatSeconds: o.heartbeatSeconds, drainSpreadSeconds: o.drainSpreadSeconds, drainSeconds: o.drainSpreadSeconds + 5 };
  const d: Deployment = await deploy('storm-drain', 2, true, {}, { config, args: ['--drain'] });
  const [victim, survivor] = [d.nodes[0]!, d.nodes[1]!];
  let clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    clients = await startClients(o, [victim.port, survivor.port]);
    // Subscriptions reach Redis asynchronously: give them a moment.
    await sleep(1000);
    publisher = startChild(script('storm/publisher.js'), [], { name: 'storm-publisher', cpu: 1 });
    const pub: PublishArgs = { port: survivor.port, app: BENCH_APP.id, apiKey: BENCH_APP.apiKey, channels: o.channels, ticksPerSecond: o.ticks };
    await publisher.call('start', pub as unknown as Record<string, unknown>);
    await sleep(2000);

    const series = sampler(survivor.child, survivor.port);
    await survivor.child.call('reset');
    const drained = Math.floor(o.clients / 2);
    const t0 = performance.now();
    process.kill(victim.child.pid, 'SIGTERM');
    const deadline = t0 + (o.drainSpreadSeconds + 30) * 1000;
    let back = 0;
    for (;;) {
      const counts = await Promise.all(clients.map((c) => c.call<StormCounts>('counts')));
      back = counts.reduce((s, c) => s + c.reconnects, 0);
      if ((back >= drained && counts.every((c) => c.live === c.clients)) || performance.now() > deadline) break;
      await sleep(100);
    }
    const allBackSeconds = (performance.now() - t0) / 1000;
    const stats = await survivor.child.call<ServerStats>('stats');
    await sleep(1000);
    const samples = await series.stop();
    await victim.child.exited;
    const out = await outcome(clients, publisher);
    // Peak over one-second windows of the series.
    const per = Math.round(1000 / SAMPLE_MS);
    let peak = 0;
    for (let i = 0; i + per <= samples.length; i++) {
      peak = Math.max(peak, samples.slice(i, i + per).reduce((s, x) => s + x.connectsPerSecond, 0) / per);
    }
    return {
      kind: 'drain',
      ...out,
      drained,
      allBackSeconds,
      survivorPeakConnectsPerSecond: peak,
      spreadRate: drained / o.drainSpreadSeconds,
      loopP99: stats.loopDelay.p99,
      loopMax: stats.loopDelay.max,
      samples,
    };
  } finally {
    await teardown(d, clients, publisher);
  }
}

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '–');

function closes(c: Record<string, number>): string {
  const e = Object.entries(c);
  return e.length === 0 ? '0' : e.map(([k, v]) => `${v}×${k}`).join(' ');
}

export function stormTables(runs: readonly (StormRun | DrainRun)[]): string {
  const out: string[] = [];
  const s = runs.filter((r): r is StormRun => r.kind === 'storm');
  if (s.length > 0) {
    out.push(
      table(
        ['clients', 'cut', 'backlog/client', 'failed attempts', 'all recovered s', 'recovery p50 / p99 ms', 'loop p99 ms', 'loop max ms', 'GC max ms', 'false 4010', 'other closes', 'missing', 'duplicated', 'catch-up frames/s', 'live frames/s', 'µs per frame: live / caught up (÷)'],
        s.map((r) => [
          String(r.clients),
          String(r.cut),
          String(r.backlogPerClient),
          String(r.reconnectFailures),
          r.allRecoveredSeconds.toFixed(2),
          `${ms(r.recoveryP50Ms)} / ${ms(r.recoveryP99Ms)}`,
          ms(r.loopP99),
          ms(r.loopMax),
          ms(r.gcMax),
          String(r.falseHeartbeatCloses),
          closes(r.closedByServer),
          String(r.missing),
          String(r.duplicated),
          si(r.catchupFramesPerSecond),
          si(r.liveFramesPerSecond),
          `${r.liveFrameUs.toFixed(2)} / ${r.catchupFrameUs.toFixed(2)} (${(r.catchupFrameUs / r.liveFrameUs).toFixed(2)}×)`,
        ]),
      ),
    );
  }
  const d = runs.filter((r): r is DrainRun => r.kind === 'drain');
  if (d.length > 0) {
    out.push(
      table(
        ['clients', 'drained', 'failed attempts', 'all back s', 'survivor peak connects/s', 'spread rate (drained ÷ drainSpreadSeconds)', 'loop p99 ms', 'loop max ms', 'false 4010', 'closes by the server', 'missing', 'duplicated'],
        d.map((r) => [
          String(r.clients),
          String(r.drained),
          String(r.reconnectFailures),
          r.allBackSeconds.toFixed(1),
          si(r.survivorPeakConnectsPerSecond),
          si(r.spreadRate),
          ms(r.loopP99),
          ms(r.loopMax),
          String(r.falseHeartbeatCloses),
          closes(r.closedByServer),
          String(r.missing),
          String(r.duplicated),
        ]),
      ),
    );
  }
  return out.join('\n\n');
}

/** Over-time charts: event-loop delay and connects per second, by second, for each run. */
export function stormCharts(data: { machine: Machine; runs: (StormRun | DrainRun)[] }): { file: string; chart: BarChart }[] {
  const bySecond = (r: StormRun | DrainRun, f: (xs: Sample[]) => number): (number | undefined)[] => {
    const n = Math.ceil(Math.max(0, ...r.samples.map((x) => x.t)));
    return Array.from({ length: n }, (_, i) => {
      const xs = r.samples.filter((x) => x.t > i && x.t <= i + 1);
      return xs.length === 0 ? undefined : f(xs);
    });
  };
  const len = Math.max(1, ...data.runs.map((r) => Math.ceil(Math.max(0, ...r.samples.map((x) => x.t)))));
  const groups = Array.from({ length: len }, (_, i) => `${i + 1}`);
  const name = (r: StormRun | DrainRun): string => (r.kind === 'storm' ? `one node: ${r.cut} cut and back` : `drain: survivor of 2 (${r.drained} moved)`);
  const subtitle = `${data.machine.cpuModel}, ${data.machine.nproc} CPUs, Node ${data.machine.node}; seconds since the storm began`;
  return [
    {
      file: 'bench/charts/storm-loop.png',
      chart: {
        title: 'Reconnect storm: event-loop delay, the worst in each second',
        subtitle,
        unit: 'ms',
        groups,
        series: data.runs.map((r) => ({ name: name(r), values: bySecond(r, (xs) => Math.max(...xs.map((x) => x.loopMax).filter(Number.isFinite))) })),
      },
    },
    {
      file: 'bench/charts/storm-connects.png',
      chart: {
        title: 'Reconnect storm: connections opened per second',
        subtitle,
        unit: 'connects/s',
        groups,
        series: data.runs.map((r) => ({ name: name(r), values: bySecond(r, (xs) => xs.reduce((s, x) => s + x.connectsPerSecond, 0) / xs.length) })),
      },
    },
  ];
}

export const stormScenario: Scenario = {
  name: 'storm',
  heavy: true,
  summary: 'reconnect storms: half the clients cut and back at once on one node, and one of two nodes drained; recovery, loop delay, losses',
  usage: 'storm [--clients 10000] [--channels 20] [--rate 5] [--away 20000] [--heartbeat 2] [--spread 10] [--steady 3] [--no-drain] [--quick] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        clients: { type: 'string' },
        channels: { type: 'string', default: '20' },
        rate: { type: 'string', default: '5' },
        away: { type: 'string', default: '20000' },
        heartbeat: { type: 'string', default: '2' },
        spread: { type: 'string', default: '10' },
        steady: { type: 'string', default: '3' },
        'no-drain': { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const o: Options = {
      clients: Number(values.clients ?? (values.quick ? 2000 : 10_000)),
      channels: Number(values.channels),
      ticks: Number(values.rate),
      awayMs: Number(values.away),
      heartbeatSeconds: Number(values.heartbeat),
      drainSpreadSeconds: Number(values.spread),
      steadySeconds: Number(values.steady),
      drain: !values['no-drain'],
    };
    const runs: (StormRun | DrainRun)[] = [];
    try {
      process.stderr.write(`storm: one node, ${o.clients} clients on ${o.channels} channels, ${o.channels * o.ticks} durable msgs/s; half cut for ${o.awayMs} ms\n`);
      runs.push(await storm(o));
      if (o.drain) {
        process.stderr.write(`storm: two nodes on Redis, one drained (drainSpreadSeconds ${o.drainSpreadSeconds})\n`);
        runs.push(await drain(o));
      }
    } finally {
      await stopAll();
    }
    const m = machine(true);
    const data = { scenario: 'storm', machine: m, options: o, runs };
    const file = writeResult('storm', data, values.out);
    process.stdout.write(`\nreconnect storms on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}\n\n${stormTables(runs)}\n\n`);
    for (const r of runs) if (r.errors.length > 0) process.stdout.write(`${r.kind} errors: ${r.errors.join(' | ')}\n`);
    process.stdout.write(`results: ${file}\n`);
    const charts = await renderCharts(stormCharts(data));
    if (charts.length > 0) process.stdout.write(`charts: ${charts.join(', ')}\n`);
  },
};

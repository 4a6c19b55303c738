/**
 * Cluster against a single node, in one run: the same subscribers and
 * users, spread over three Silk nodes on Redis or held by one embedded node.
 * Phase 1, cross-node fan-out: every subscriber on one channel, the
 * publisher posting to the first node. Phase 2, unicast: batches of user
 * messages to random users through the first node.
 *
 * Nothing is pinned: four or five busy processes share this machine's CPUs,
 * which is what running a cluster on one machine means.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP, BENCH_CHANNEL } from '../lib/bench-app.js';
import { now } from '../lib/lean-ws.js';
import { deploy, type Deployment } from '../lib/nodes.js';
import { cpuTime, rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { machine, script, sleep, writeResult, type Scenario } from '../lib/scenario.js';
import { fmtSpread, Histogram, si, spread, table } from '../lib/stats.js';
import type { ClientResults, ConnectArgs, ConnectResult } from '../fanout/clients.js';
import type { RunArgs, RunResult } from '../fanout/publisher.js';

interface PhaseResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly accepted: number;
  readonly notes: string[];
}

export interface ClusterRun {
  readonly setup: string;
  readonly repeat: number;
  readonly fanout: PhaseResult;
  readonly unicast: PhaseResult;
  readonly rssMiB: number;
  readonly cpuSeconds: number;
}

interface Options {
  readonly connections: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly repeats: number;
  readonly batch: number;
}

const HEADERS = { authorization: `Bearer ${BENCH_APP.apiKey}` };
const PATH = `/v1/apps/${BENCH_APP.id}/messages`;

async function measure(
  clients: Child[],
  publisher: Child,
  port: number,
  o: Options,
  extra: Partial<RunArgs>,
): Promise<PhaseResult> {
  const startAt = now() + 200;
  const t0 = startAt + o.warmup * 1000;
  const t1 = t0 + o.seconds * 1000;
  await Promise.all(clients.map((c) => c.call('window', { t0, t1 })));
  const run: RunArgs = {
    kind: 'saturate',
    host: '127.0.0.1',
    port,
    path: PATH,
    headers: HEADERS,
    channel: BENCH_CHANNEL,
    inflight: 8,
    window: 0,
    rate: 0,
    startAt,
    t0,
    t1,
    stopAt: t1,
    ...extra,
  };
  const pub = await publisher.call<RunResult>('run', run as unknown as Record<string, unknown>, (o.warmup + o.seconds) * 1000 + 60_000);
  await sleep(500);
  const hist = new Histogram();
  let inWindow = 0;
  for (const c of clients) {
    const r = await c.call<ClientResults>('results');
    hist.add(r.latency);
    inWindow += r.inWindow;
  }
  const notes: string[] = [];
  if (pub.failed > 0) notes.push(`${pub.failed} failed: ${JSON.stringify(pub.statuses)}`);
  if (pub.stalls > 0) notes.push(`${pub.stalls} window stalls`);
  return { perSecond: inWindow / o.seconds, p50: hist.quantile(0.5), p99: hist.quantile(0.99), accepted: pub.acceptedInWindow, notes };
}

async function oneRun(setup: 'single' | 'cluster', repeat: number, o: Options): Promise<ClusterRun> {
  const d: Deployment = await deploy(setup, setup === 'cluster' ? 3 : 1, setup === 'cluster');
  const clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    const per = Math.ceil(o.connections / 3);
    for (let i = 0; i < 3; i++) clients.push(startChild(script('fanout/clients.js'), [], { name: `clients-${i}` }));
    await Promise.all(
      clients.map((c, i) => {
        const node = d.nodes[i % d.nodes.length]!;
        const args: ConnectArgs = {
          host: '127.0.0.1',
          port: node.port,
          mode: 'silk',
          count: per,
          firstIndex: i * per,
          concurrency: 64,
          app: BENCH_APP.id,
          secret: BENCH_APP.secret,
          channel: BENCH_CHANNEL,
          sampleEvery: 4,
        };
        return c.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 120_000);
      }),
    );
    // Subscriptions reach Redis asynchronously: give them a moment.
    await sleep(1000);
    publisher = startChild(script('fanout/publisher.js'), [], { name: 'publisher' });
    // The probe (window bound) listens on the last node, so the window covers the farthest hop.
    const last = d.nodes[d.nodes.length - 1]!;
    await publisher.call('probe', { host: '127.0.0.1', port: last.port, mode: 'silk', app: BENCH_APP.id, secret: BENCH_APP.secret, channel: BENCH_CHANNEL });
    const cpuA = d.nodes.map((n) => cpuTime(n.child.pid));
    const first = d.nodes[0]!.port;
    const fanout = await measure(clients, publisher, first, o, { window: 20 });
    const unicast = await measure(clients, publisher, first, o, { users: per * 3, batch: o.batch, inflight: 4 });
    const cpuB = d.nodes.map((n) => cpuTime(n.child.pid));
    const cpuSeconds = cpuA.reduce((s, a, i) => s + ((cpuB[i]?.user ?? 0) + (cpuB[i]?.system ?? 0) - ((a?.user ?? 0) + (a?.system ?? 0))), 0);
    const rssMiB = d.nodes.reduce((s, n) => s + (rssBytes(n.child.pid) ?? 0), 0) / 2 ** 20;
    return { setup, repeat, fanout, unicast, rssMiB, cpuSeconds };
  } finally {
    await publisher?.call('close').catch(() => undefined);
    await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
    await Promise.all([publisher?.stop(), ...clients.map((c) => c.stop())]);
    await d.stop();
  }
}

export function clusterTable(runs: readonly ClusterRun[]): string {
  const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);
  const rows = ['single', 'cluster'].map((setup) => {
    const rs = runs.filter((r) => r.setup === setup);
    return [
      setup === 'single' ? '1 node (embedded)' : '3 nodes on Redis',
      fmtSpread(spread(rs.map((r) => r.fanout.perSecond))),
      fmtSpread(spread(rs.map((r) => r.fanout.p99)), ms),
      fmtSpread(spread(rs.map((r) => r.unicast.perSecond))),
      fmtSpread(spread(rs.map((r) => r.unicast.p50)), ms),
      fmtSpread(spread(rs.map((r) => r.unicast.p99)), ms),
      fmtSpread(spread(rs.map((r) => r.rssMiB)), (x) => x.toFixed(0)),
    ];
  });
  return table(['setup', 'fan-out deliveries/s', 'fan-out p99 ms', 'unicast msgs/s', 'unicast p50 ms', 'unicast p99 ms', 'RSS MiB (all nodes)'], rows);
}

export const cluster: Scenario = {
  name: 'cluster',
  heavy: true,
  summary: 'three nodes on Redis beside one node: cross-node fan-out and unicast throughput and latency',
  usage: 'cluster [--connections 3000] [--seconds 6] [--warmup 2] [--repeats 2] [--batch 50] [--quick] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        connections: { type: 'string', default: '3000' },
        seconds: { type: 'string', default: '6' },
        warmup: { type: 'string', default: '2' },
        repeats: { type: 'string', default: '2' },
        batch: { type: 'string', default: '50' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      connections: Number(values.connections),
      seconds: quick ? 3 : Number(values.seconds),
      warmup: quick ? 1 : Number(values.warmup),
      repeats: quick ? 1 : Number(values.repeats),
      batch: Number(values.batch),
    };
    const runs: ClusterRun[] = [];
    try {
      for (let r = 0; r < o.repeats; r++) {
        for (const setup of ['single', 'cluster'] as const) {
          process.stderr.write(`cluster: ${setup}, run ${r + 1}/${o.repeats}\n`);
          const run = await oneRun(setup, r, o);
          runs.push(run);
          process.stderr.write(
            `  fan-out ${si(run.fanout.perSecond)}/s p99 ${run.fanout.p99.toFixed(1)} ms; unicast ${si(run.unicast.perSecond)}/s p99 ${run.unicast.p99.toFixed(1)} ms` +
              ([...run.fanout.notes, ...run.unicast.notes].length > 0 ? `\n  notes: ${[...run.fanout.notes, ...run.unicast.notes].join(' | ')}` : '') +
              '\n',
          );
        }
      }
    } finally {
      await stopAll();
    }
    const m = machine(false);
    const file = writeResult('cluster', { scenario: 'cluster', machine: m, options: o, runs }, values.out);
    process.stdout.write(`\ncluster vs single node on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}, ${o.connections} connections\n\n`);
    process.stdout.write(clusterTable(runs) + '\n\n');
    process.stdout.write(`results: ${file}\n`);
  },
};

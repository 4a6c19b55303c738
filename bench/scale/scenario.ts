/**
 * Scale: hold `--connections` (100,000) concurrent authenticated WebSocket
 * connections on one machine, spread over `--nodes` Silk processes on one
 * Redis (the per-process file limit here is 20,000), then time broadcasts
 * that must reach every one of them.
 *
 * Load clients run in processes of at most 10,000 connections. They do not
 * bind a source address: the kernel then reuses source ports across the
 * nodes' different destination ports (about 28,000 per node here), whereas
 * explicit binds would exhaust the ephemeral range for everyone (the
 * publisher included) and make each bind a search. Reports the connect rate, server memory per connection (RSS of all
 * nodes after connecting, less their RSS before, over the connections) and,
 * for each broadcast, the time from the request to the last connection
 * receiving it.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP } from '../lib/bench-app.js';
import { now } from '../lib/lean-ws.js';
import { deploy, type Deployment } from '../lib/nodes.js';
import { rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { machine, script, sleep, writeResult, type Scenario } from '../lib/scenario.js';
import { si, table } from '../lib/stats.js';
import type { ClientResults, ConnectArgs, ConnectResult } from '../fanout/clients.js';

const PER_CLIENT_PROCESS = 10_000;

export interface ScaleRun {
  readonly nodes: number;
  readonly requested: number;
  readonly connected: number;
  readonly connectSeconds: number;
  readonly connectsPerSecond: number;
  readonly rssBeforeMiB: number[];
  readonly rssAfterMiB: number[];
  readonly bytesPerConnection: number;
  /** Per broadcast: ms from the request to the last delivery, and how many connections got it. */
  readonly broadcasts: { ms: number; reached: number }[];
  readonly notes: string[];
}

interface Options {
  readonly connections: number;
  readonly nodes: number;
  readonly broadcasts: number;
}

async function run(o: Options): Promise<ScaleRun> {
  const notes: string[] = [];
  const d: Deployment = await deploy('scale', o.nodes, true, { maxConnectionsPerApp: 1_000_000 });
  const clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    await sleep(1000);
    const rssBefore = d.nodes.map((n) => (rssBytes(n.child.pid) ?? NaN) / 2 ** 20);
    // A whole number of client processes per node, so every node holds the same share.
    const procs = o.nodes * Math.ceil(o.connections / o.nodes / PER_CLIENT_PROCESS);
    const per = Math.ceil(o.connections / procs);
    for (let i = 0; i < procs; i++) clients.push(startChild(script('fanout/clients.js'), [], { name: `clients-${i}` }));
    const start = performance.now();
    const results = await Promise.all(
      clients.map((c, i) => {
        const count = Math.min(per, o.connections - i * per);
        const args: ConnectArgs = {
          host: '127.0.0.1',
          port: d.nodes[i % d.nodes.length]!.port,
          mode: 'silk',
          count,
          firstIndex: i * per,
          concurrency: 32,
          app: BENCH_APP.id,
          secret: BENCH_APP.secret,
          channel: '',
          sampleEvery: 1,
        };
        return c.call<ConnectResult>('connect', args as unknown as Record<string, unknown>, 600_000);
      }),
    );
    const connectSeconds = (performance.now() - start) / 1000;
    const connected = results.reduce((s, r) => s + r.opened, 0);
    if (connected < o.connections) notes.push(`${connected} of ${o.connections} connected: ${results.flatMap((r) => r.errors).join('; ')}`);
    // Let the nodes settle (route registrations, buffers) before reading memory.
    await sleep(3000);
    const rssAfter = d.nodes.map((n) => (rssBytes(n.child.pid) ?? NaN) / 2 ** 20);
    const grown = rssAfter.reduce((s, x) => s + x, 0) - rssBefore.reduce((s, x) => s + x, 0);

    publisher = startChild(script('fanout/publisher.js'), [], { name: 'publisher' });
    const broadcasts: { ms: number; reached: number }[] = [];
    for (let b = 0; b < o.broadcasts; b++) {
      await Promise.all(clients.map((c) => c.call('zero')));
      const body = JSON.stringify({ to: { all: true }, data: { t: now(), b } });
      const sent = await publisher.call<{ at: number; status: number }>('once', {
        host: '127.0.0.1',
        port: d.nodes[0]!.port,
        path: `/v1/apps/${BENCH_APP.id}/messages`,
        headers: { authorization: `Bearer ${BENCH_APP.apiKey}` },
        body,
      });
      if (sent.status !== 202) {
        notes.push(`broadcast ${b} answered ${sent.status}`);
        continue;
      }
      // Wait (bounded) until every connection has it.
      const deadline = now() + 30_000;
      let all: ClientResults[] = [];
      for (;;) {
        all = await Promise.all(clients.map((c) => c.call<ClientResults>('results')));
        if (all.every((r) => r.minTotal >= 1) || now() > deadline) break;
        await sleep(20);
      }
      const reached = all.reduce((s, r) => s + (r.minTotal >= 1 ? r.open : 0), 0);
      const last = Math.max(...all.map((r) => r.lastArrival));
      broadcasts.push({ ms: last - sent.at, reached });
      if (!all.every((r) => r.minTotal >= 1)) notes.push(`broadcast ${b} did not reach every connection within 30 s`);
      await sleep(500);
    }
    const open = (await Promise.all(clients.map((c) => c.call<ClientResults>('results')))).reduce((s, r) => s + r.open, 0);
    if (open < connected) notes.push(`${connected - open} connections closed during the run`);
    return {
      nodes: o.nodes,
      requested: o.connections,
      connected,
      connectSeconds,
      connectsPerSecond: connected / connectSeconds,
      rssBeforeMiB: rssBefore,
      rssAfterMiB: rssAfter,
      bytesPerConnection: (grown * 2 ** 20) / connected,
      broadcasts,
      notes,
    };
  } finally {
    await publisher?.call('close').catch(() => undefined);
    await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
    await Promise.all([publisher?.stop(), ...clients.map((c) => c.stop())]);
    await d.stop();
  }
}

export const scale: Scenario = {
  name: 'scale',
  heavy: true,
  summary: '100,000 connections over several Silk nodes on Redis: connect rate, memory per connection, broadcast time',
  usage: 'scale [--connections 100000] [--nodes 6] [--broadcasts 3] [--quick] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        connections: { type: 'string', default: '100000' },
        nodes: { type: 'string', default: '6' },
        broadcasts: { type: 'string', default: '3' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const o: Options = {
      connections: values.quick ? Math.min(20_000, Number(values.connections)) : Number(values.connections),
      nodes: values.quick ? Math.min(2, Number(values.nodes)) : Number(values.nodes),
      broadcasts: Number(values.broadcasts),
    };
    if (Math.ceil(o.connections / o.nodes) > 18_000) throw new Error('more than 18,000 connections per node: add --nodes (the file limit is 20,000 per process)');
    let result: ScaleRun;
    try {
      process.stderr.write(`scale: ${o.connections} connections over ${o.nodes} nodes\n`);
      result = await run(o);
    } finally {
      await stopAll();
    }
    const m = machine(false);
    const file = writeResult('scale', { scenario: 'scale', machine: m, options: o, run: result }, values.out);
    const ms = result.broadcasts.map((b) => b.ms.toFixed(0)).join(', ');
    process.stdout.write(`\nscale on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}\n\n`);
    process.stdout.write(
      table(
        ['nodes', 'connections', 'connect time s', 'connects/s', 'RSS MiB (all nodes)', 'server KB/conn', 'broadcast to all, ms'],
        [
          [
            String(result.nodes),
            `${result.connected} of ${result.requested}`,
            result.connectSeconds.toFixed(1),
            si(result.connectsPerSecond),
            result.rssAfterMiB.reduce((s, x) => s + x, 0).toFixed(0),
            (result.bytesPerConnection / 1024).toFixed(1),
            ms,
          ],
        ],
      ) + '\n\n',
    );
    if (result.notes.length > 0) process.stdout.write(`notes: ${result.notes.join(' | ')}\n`);
    process.stdout.write(`results: ${file}\n`);
  },
};

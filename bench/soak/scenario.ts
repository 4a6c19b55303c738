/**
 * The soak run: two Silk nodes on Redis, thousands of subscribers that
 * check every durable message they get (bench/storm/clients.ts), a durable
 * publisher at a steady rate, connection churn (a share of the clients reset
 * and back every few seconds) and each node in turn drained with SIGTERM and
 * started again on its port, for as long as asked. It reports memory over
 * time (a PNG chart), errors, and messages lost or duplicated (must be 0).
 */
import { parseArgs } from 'node:util';
import { RedisServer, freePort } from '../../test/redis.js';
import { BENCH_APP } from '../lib/bench-app.js';
import { renderCharts, type BarChart } from '../lib/charts.js';
import { rssBytes, startChild, stopAll, type Child } from '../lib/proc.js';
import { machine, script, sleep, writeResult, type Scenario } from '../lib/scenario.js';
import { si, table } from '../lib/stats.js';
import type { StormConnectArgs, StormCounts } from '../storm/clients.js';
import type { PublishArgs } from '../storm/publisher.js';

const PER_PROCESS = 2500;

interface SoakSample {
  readonly t: number;
  readonly rssMiB: (number | undefined)[];
  readonly live: number;
}

async function startNode(port: number, redisUrl: string, name: string): Promise<Child> {
  const config = JSON.stringify({ heartbeatSeconds: 5, drainSeconds: 5, drainSpreadSeconds: 2 });
  const child = startChild(script('silk-server.js'), ['--port', String(port), '--redis', redisUrl, '--drain', '--config', config], { name, forwardStdout: false });
  await child.waitFor((m) => (m as { ready?: boolean }).ready === true, 30_000);
  return child;
}

export const soakScenario: Scenario = {
  name: 'soak',
  heavy: true,
  summary: 'a long run: two nodes on Redis, churn, restarts, durable traffic; memory over time, losses and duplicates',
  usage: 'soak [--minutes 10] [--clients 4000] [--channels 20] [--rate 5] [--churn 0.05] [--churn-every 5] [--restart-every 60] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        minutes: { type: 'string', default: '10' },
        clients: { type: 'string', default: '4000' },
        channels: { type: 'string', default: '20' },
        rate: { type: 'string', default: '5' },
        churn: { type: 'string', default: '0.05' },
        'churn-every': { type: 'string', default: '5' },
        'restart-every': { type: 'string', default: '60' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const o = {
      seconds: values.quick ? 60 : Number(values.minutes) * 60,
      clients: Number(values.clients),
      channels: Number(values.channels),
      rate: Number(values.rate),
      churn: Number(values.churn),
      churnEvery: Number(values['churn-every']),
      restartEvery: values.quick ? 20 : Number(values['restart-every']),
    };
    const redis = await RedisServer.start();
    const ports = [await freePort(), await freePort()];
    const nodes: Child[] = [];
    const clients: Child[] = [];
    let publisher: Child | undefined;
    const samples: SoakSample[] = [];
    let restarts = 0;
    try {
      for (let i = 0; i < 2; i++) nodes.push(await startNode(ports[i]!, redis.url, `soak-${i}`));
      const procs = Math.ceil(o.clients / PER_PROCESS);
      for (let i = 0; i < procs; i++) clients.push(startChild(script('storm/clients.js'), [], { name: `soak-clients-${i}` }));
      await Promise.all(
        clients.map((c, i) => {
          const args: StormConnectArgs = { ports, count: Math.min(PER_PROCESS, o.clients - i * PER_PROCESS), firstIndex: i * PER_PROCESS, channels: o.channels, concurrency: 32, app: BENCH_APP.id, secret: BENCH_APP.secret };
          return c.call('connect', args as unknown as Record<string, unknown>, 300_000);
        }),
      );
      await sleep(1000);
      publisher = startChild(script('storm/publisher.js'), [], { name: 'soak-publisher' });
      const pub: PublishArgs = { port: ports[0]!, fallbacks: [ports[1]!], app: BENCH_APP.id, apiKey: BENCH_APP.apiKey, channels: o.channels, ticksPerSecond: o.rate };
      await publisher.call('start', pub as unknown as Record<string, unknown>);
      const t0 = Date.now();
      let nextChurn = t0 + o.churnEvery * 1000;
      let nextRestart = t0 + o.restartEvery * 1000;
      while (Date.now() - t0 < o.seconds * 1000) {
        await sleep(1000);
        const counts = await Promise.all(clients.map((c) => c.call<StormCounts>('counts')));
        samples.push({ t: (Date.now() - t0) / 1000, rssMiB: nodes.map((n) => (n.pid ? (rssBytes(n.pid) ?? 0) / 2 ** 20 : undefined)), live: counts.reduce((s, c) => s + c.live, 0) });
        if (Date.now() >= nextChurn) {
          nextChurn += o.churnEvery * 1000;
          await Promise.all(clients.map((c) => c.call('churn', { fraction: o.churn, awayMs: 1000 })));
        }
        if (Date.now() >= nextRestart) {
          nextRestart += o.restartEvery * 1000;
          const k = restarts++ % 2;
          process.stderr.write(`soak: ${((Date.now() - t0) / 1000).toFixed(0)} s, restarting node ${k}\n`);
          process.kill(nodes[k]!.pid, 'SIGTERM');
          await nodes[k]!.exited;
          nodes[k] = await startNode(ports[k]!, redis.url, `soak-${k}`);
        }
      }
      const stopped = await publisher.call<{ acked: number[]; sent: number; failures: number }>('stop', {}, 30_000);
      const all = await Promise.all(clients.map((c) => c.call<StormCounts & { behind: number }>('settle', { final: stopped.acked, timeoutMs: 60_000 }, 90_000)));
      const sum = (f: (c: StormCounts & { behind: number }) => number): number => all.reduce((s, c) => s + f(c), 0);
      const closes: Record<string, number> = {};
      for (const c of all) for (const [k, v] of Object.entries(c.closedByServer)) closes[k] = (closes[k] ?? 0) + v;
      const m = machine(false);
      const peak = [0, 1].map((k) => Math.max(...samples.map((s) => s.rssMiB[k] ?? 0)));
      const result = {
        scenario: 'soak',
        machine: m,
        options: o,
        restarts,
        published: stopped.sent,
        publishRetries: stopped.failures,
        received: sum((c) => c.received),
        missing: sum((c) => c.missing),
        duplicated: sum((c) => c.duplicated),
        notRecovered: sum((c) => c.notRecovered),
        reconnects: sum((c) => c.reconnects),
        reconnectFailures: sum((c) => c.reconnectFailures),
        behind: sum((c) => c.behind),
        closedByServer: closes,
        errors: all.flatMap((c) => c.errors).slice(0, 5),
        peakRssMiB: peak,
        samples,
      };
      const file = writeResult('soak', result, values.out);
      process.stdout.write(`\nsoak on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}: ${o.seconds} s, ${o.clients} clients\n\n`);
      process.stdout.write(
        table(
          ['seconds', 'clients', 'restarts', 'published', 'received', 'missing', 'duplicated', 'not recovered', 'reconnects', 'failed attempts', 'closes by the server', 'peak RSS MiB (node 0 / 1)'],
          [[
            String(o.seconds),
            String(o.clients),
            String(restarts),
            si(result.published),
            si(result.received),
            String(result.missing),
            String(result.duplicated),
            String(result.notRecovered),
            si(result.reconnects),
            String(result.reconnectFailures),
            Object.entries(closes).map(([k, v]) => `${v}×${k}`).join(' ') || '0',
            `${peak[0]!.toFixed(0)} / ${peak[1]!.toFixed(0)}`,
          ]],
        ) + '\n\n',
      );
      process.stdout.write(`results: ${file}\n`);
      const charts = await renderCharts(soakCharts({ machine: m, samples }));
      if (charts.length > 0) process.stdout.write(`charts: ${charts.join(', ')}\n`);
      if (result.missing > 0 || result.duplicated > 0) throw new Error(`soak: ${result.missing} missing, ${result.duplicated} duplicated`);
    } finally {
      await publisher?.stop();
      await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
      await Promise.all([...clients.map((c) => c.stop()), ...nodes.map((n) => n.stop())]);
      await redis.destroy();
      await stopAll();
    }
  },
};

/** RSS of each node over time, one bar per sampled interval (every tenth of the run). */
export function soakCharts(d: { machine: { cpuModel: string; nproc: number; node: string }; samples: SoakSample[] }): { file: string; chart: BarChart }[] {
  const step = Math.max(1, Math.ceil(d.samples.length / 40));
  const picked = d.samples.filter((_, i) => i % step === 0);
  return [
    {
      file: 'bench/charts/soak-memory.png',
      chart: {
        title: 'Soak: RSS of each node over time (restarts drop it)',
        subtitle: `${d.machine.cpuModel}, ${d.machine.nproc} CPUs, Node ${d.machine.node}; seconds into the run`,
        unit: 'MiB',
        groups: picked.map((s) => s.t.toFixed(0)),
        series: [0, 1].map((k) => ({ name: `node ${k}`, values: picked.map((s) => s.rssMiB[k]) })),
      },
    },
  ];
}

/**
 * Many slow readers at once: N subscribers of one channel that stop
 * reading, under a flood of 8 kB messages, on one node with the default
 * node-wide outbound budget (`maxOutboundBytesTotal`) and with it out of
 * the way, side by side. Reports the server's peak RSS, the peak of
 * `silk_outbound_bytes`, and how many connections were cut and why.
 */
import { parseArgs } from 'node:util';
import { BENCH_APP } from '../lib/bench-app.js';
import { deploy } from '../lib/nodes.js';
import { rssBytes, startChild, stopAll } from '../lib/proc.js';
import { machine, script, sleep, writeResult, type Scenario } from '../lib/scenario.js';
import { si, table } from '../lib/stats.js';
import { DEFAULT_LIMITS } from '../../src/config.js';

const CHANNEL = 'slow';

export interface SlowRun {
  readonly setting: string;
  readonly budgetBytes: number;
  readonly clients: number;
  readonly published: number;
  readonly peakRssMiB: number;
  readonly baseRssMiB: number;
  readonly peakOutboundMiB: number;
  readonly shed: number;
  readonly slowConsumer: number;
}

const metric = (text: string, name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);

async function one(setting: string, budget: number, clients: number, bytes: number, seconds: number): Promise<SlowRun> {
  const d = await deploy(`slow-${setting}`, 1, false, { maxOutboundBytesTotal: budget }, { cpu: 0 });
  const node = d.nodes[0]!;
  const load = startChild(script('slow/clients.js'), [], { name: 'slow-clients', cpu: 1 });
  try {
    await load.call('connect', { port: node.port, count: clients, firstIndex: 0, channel: CHANNEL, app: BENCH_APP.id, secret: BENCH_APP.secret }, 120_000);
    const baseRss = rssBytes(node.child.pid) ?? 0;
    const body = JSON.stringify({ to: { channels: [CHANNEL] }, data: { pad: 'x'.repeat(bytes) } });
    const url = `http://127.0.0.1:${node.port}/v1/apps/${BENCH_APP.id}/messages`;
    const headers = { authorization: `Bearer ${BENCH_APP.apiKey}`, 'content-type': 'application/json' };
    let published = 0;
    let peakRss = baseRss;
    let peakOut = 0;
    const until = Date.now() + seconds * 1000;
    const sampler = (async () => {
      while (Date.now() < until) {
        peakRss = Math.max(peakRss, rssBytes(node.child.pid) ?? 0);
        await sleep(100);
      }
    })();
    const scraper = (async () => {
      while (Date.now() < until) {
        const m = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
        peakOut = Math.max(peakOut, metric(m, 'silk_outbound_bytes'));
        await sleep(250);
      }
    })();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < until) {
          const r = await fetch(url, { method: 'POST', headers, body });
          await r.arrayBuffer();
          if (r.status === 202) published++;
        }
      }),
    );
    await Promise.all([sampler, scraper]);
    const m = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
    return {
      setting,
      budgetBytes: budget,
      clients,
      published,
      peakRssMiB: peakRss / 2 ** 20,
      baseRssMiB: baseRss / 2 ** 20,
      peakOutboundMiB: peakOut / 2 ** 20,
      shed: metric(m, 'silk_outbound_shed_total'),
      slowConsumer: metric(m, 'silk_disconnects_total\\{reason="slow_consumer"\\}'),
    };
  } finally {
    await load.call('close').catch(() => undefined);
    await load.stop();
    await d.stop();
  }
}

export const slowScenario: Scenario = {
  name: 'slow',
  heavy: true,
  summary: 'many slow readers under a flood: the node-wide outbound budget against none, peak RSS and connections cut',
  usage: 'slow [--clients 1000] [--bytes 8192] [--seconds 10] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        clients: { type: 'string', default: '1000' },
        bytes: { type: 'string', default: '8192' },
        seconds: { type: 'string', default: '10' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const clients = Number(values.clients);
    const bytes = Number(values.bytes);
    const seconds = values.quick ? 4 : Number(values.seconds);
    const runs: SlowRun[] = [];
    try {
      for (const [setting, budget] of [
        ['default budget', DEFAULT_LIMITS.maxOutboundBytesTotal],
        ['no node budget', 2 ** 40],
      ] as const) {
        process.stderr.write(`slow: ${clients} slow readers, ${bytes} B messages for ${seconds} s, ${setting}\n`);
        runs.push(await one(setting, budget, clients, bytes, seconds));
      }
    } finally {
      await stopAll();
    }
    const m = machine(true);
    const file = writeResult('slow', { scenario: 'slow', machine: m, runs }, values.out);
    process.stdout.write(`\nslow readers on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}\n\n`);
    process.stdout.write(
      table(
        ['setting', 'maxOutboundBytesTotal', 'slow readers', 'messages', 'RSS MiB before', 'peak RSS MiB', 'peak silk_outbound_bytes MiB', 'cut by the budget', 'slow_consumer closes'],
        runs.map((r) => [
          r.setting,
          r.budgetBytes >= 2 ** 40 ? '1 TiB' : `${r.budgetBytes / 2 ** 20} MiB`,
          String(r.clients),
          si(r.published),
          r.baseRssMiB.toFixed(0),
          r.peakRssMiB.toFixed(0),
          r.peakOutboundMiB.toFixed(0),
          String(r.shed),
          String(r.slowConsumer),
        ]),
      ) + '\n\n',
    );
    process.stdout.write(`results: ${file}\n`);
  },
};

/**
 * The long fuzz run: a million hostile device frames and more (the
 * generators of test/fuzz.ts), over several connections at once against one
 * node, while a well-behaved client subscribed on the same node receives a
 * message a second and answers pings. Reports what was sent and what came
 * back, by error and close code; anything undocumented, a crash, or a
 * message the well-behaved client missed is a failure.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { signToken } from '../../src/auth/tokens.js';
import { FuzzClient, newTally, shot, type FuzzTally } from '../../test/fuzz.js';
import { BENCH_APP } from '../lib/bench-app.js';
import { LeanConn } from '../lib/lean-ws.js';
import { deploy } from '../lib/nodes.js';
import { rssBytes, stopAll } from '../lib/proc.js';
import { machine, sleep, writeResult, type Scenario } from '../lib/scenario.js';
import { si, table } from '../lib/stats.js';

export const fuzzScenario: Scenario = {
  name: 'fuzz',
  heavy: true,
  summary: 'a million fuzzed device frames against one node, a well-behaved client served throughout',
  usage: 'fuzz [--frames 1000000] [--connections 16] [--seed N] [--out FILE]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        frames: { type: 'string', default: '1000000' },
        connections: { type: 'string', default: '16' },
        seed: { type: 'string', default: '20261204' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const frames = values.quick ? 50_000 : Number(values.frames);
    const conns = Number(values.connections);
    const d = await deploy('fuzz', 1, false, { maxFramesPerSecond: 1_000_000 }, { cpu: 0 });
    const node = d.nodes[0]!;
    const tally: FuzzTally = newTally();
    let reconnects = 0;
    const started = Date.now();
    const rss0 = rssBytes(node.child.pid) ?? 0;
    let rssPeak = rss0;
    try {
      // The well-behaved client: subscribed, pinged, counting what it gets.
      let got = 0;
      const good = await LeanConn.open(
        { host: '127.0.0.1', port: node.port, path: `/v1/connect?token=${await signToken({ app: BENCH_APP.id, user: 'good', secret: BENCH_APP.secret, ttlSeconds: 3600, channels: ['live'] })}` },
        { message: () => void got++ },
      );
      await good.nextControl();
      good.sendText('{"type":"subscribe","id":1,"channel":"live"}');
      await good.nextControl();
      let running = true;
      let published = 0;
      let pings = 0;
      const heartbeat = (async () => {
        while (running) {
          const r = await fetch(`http://127.0.0.1:${node.port}/v1/apps/${BENCH_APP.id}/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${BENCH_APP.apiKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ to: { channels: ['live'] }, data: { n: published } }),
          });
          await r.arrayBuffer();
          if (r.status === 202) published++;
          good.sendText(`{"type":"ping","id":${++pings + 1}}`);
          await good.nextControl(10_000);
          rssPeak = Math.max(rssPeak, rssBytes(node.child.pid) ?? 0);
          await sleep(1000);
        }
      })();
      const token = await signToken({ app: BENCH_APP.id, user: 'fuzzer', secret: BENCH_APP.secret, ttlSeconds: 3600, channels: ['open.*'] });
      const path = `/v1/connect?token=${token}`;
      const per = Math.ceil(frames / conns);
      let lastReport = Date.now();
      await Promise.all(
        Array.from({ length: conns }, async (_, k) => {
          let c = await FuzzClient.open(node.port, path, tally);
          let sent = 0;
          let batch = 0;
          while (sent < per) {
            const shots = fc.sample(shot, { numRuns: Math.min(5000, per - sent), seed: Number(values.seed) + k * 100_000 + batch++ });
            for (const s of shots) {
              if (!c.open) {
                await c.closed;
                c = await FuzzClient.open(node.port, path, tally);
                reconnects++;
              }
              await c.exchange(s);
              sent++;
            }
            if (k === 0 && Date.now() - lastReport > 10_000) {
              lastReport = Date.now();
              process.stderr.write(`fuzz: ${si(tally.shots)} frames sent, ${si(tally.textFrames)} answered, ${reconnects} reconnects\n`);
            }
          }
          c.sock.destroy();
        }),
      );
      running = false;
      await heartbeat;
      await sleep(500);
      good.destroy();
      const seconds = (Date.now() - started) / 1000;
      const alive = (await fetch(`http://127.0.0.1:${node.port}/healthz`)).status === 200;
      const m = machine(true);
      const result = { scenario: 'fuzz', machine: m, frames: tally.shots, seconds, reconnects, tally, published, got, alive, rssMiB: { before: rss0 / 2 ** 20, peak: rssPeak / 2 ** 20 } };
      const file = writeResult('fuzz', result, values.out);
      process.stdout.write(`\nfuzz on ${m.cpuModel}, ${m.nproc} CPUs, Node ${m.node}\n\n`);
      process.stdout.write(
        table(
          ['frames sent', 'seconds', 'frames/s', 'server frames back', 'error answers', 'closes', 'undocumented', 'node alive', 'good client got', 'RSS MiB before / peak'],
          [[
            si(tally.shots),
            seconds.toFixed(0),
            si(tally.shots / seconds),
            si(tally.textFrames),
            Object.entries(tally.errors).map(([k, v]) => `${k} ${si(v)}`).join(', '),
            Object.entries(tally.closes).map(([k, v]) => `${k}×${v}`).join(' '),
            String(tally.strange.length),
            alive ? 'yes' : 'NO',
            `${got} of ${published}`,
            `${(rss0 / 2 ** 20).toFixed(0)} / ${(rssPeak / 2 ** 20).toFixed(0)}`,
          ]],
        ) + '\n\n',
      );
      process.stdout.write(`results: ${file}\n`);
      if (tally.strange.length > 0 || !alive || got !== published) throw new Error(`fuzz failed: ${tally.strange.slice(0, 5).join('; ')}${alive ? '' : ' node down'}; good client got ${got} of ${published}`);
    } finally {
      await d.stop();
      await stopAll();
    }
  },
};

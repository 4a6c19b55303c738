/**
 * Micro-benchmarks of the hot functions, in this process: WebSocket frame
 * encoding (beside `ws`'s own framing), the per-message JSON work, channel
 * permission checks, the hub's channel lookup among 100,000 channels, and
 * token verification with and without the cache.
 *
 * Each case is warmed up (which also sizes a round to about `--round-ms`),
 * then timed over several rounds; a case and its baseline run in alternate
 * rounds. The table gives the median with min–max over the rounds. Every
 * result is folded into a checksum that is printed and saved, so no call can
 * be optimised away.
 */
import { parseArgs } from 'node:util';
import * as wsModule from 'ws';
import { allows } from '../../src/core/channels.js';
import { Hub, type Peer } from '../../src/core/hub.js';
import { MessageDelivery, type Batch, type Delivery } from '../../src/core/delivery.js';
import type { Envelope } from '../../src/core/message.js';
import { encodingFor, text as v1Text } from '../../src/protocol/v1/frames.js';
import { verifyKey, signToken, TokenCache, verifyToken, type KeyLookup } from '../../src/auth/tokens.js';
import { WS_TEXT as WS_FRAMING, wsTextFrame } from '../../src/transports/websocket/frame.js';

const WS_V1 = encodingFor(WS_FRAMING);
import { machine, writeResult, type Scenario } from '../lib/scenario.js';
import { fmtSpread, si, spread, table, type Spread } from '../lib/stats.js';

/**
 * `ws`'s framing function. The package exports `Sender` but @types/ws does
 * not declare it, hence the narrow cast. Unmasked frames come back as
 * `[header, payload]`, which `ws` writes with two corked writes.
 */
interface WsSender {
  frame(
    data: Buffer,
    options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean },
  ): Buffer[];
}
const { Sender } = wsModule as unknown as { Sender: WsSender };
const WS_TEXT = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false };

/** One benchmarked operation. */
interface Case {
  readonly group: string;
  readonly name: string;
  /** Run the operation `n` times; return a number derived from every result (the checksum). */
  readonly batch: (n: number) => number | Promise<number>;
  /** The case this one is compared with (ratio = this ops/s ÷ that ops/s), and a short label for it. */
  readonly vs?: { readonly name: string; readonly label: string };
}

export interface MicroResult {
  readonly group: string;
  readonly name: string;
  /** Operations per timed round. */
  readonly opsPerRound: number;
  readonly opsPerSecond: Spread;
  readonly nsPerOp: Spread;
  /** Compared with this case (its name and a short label)… */
  readonly vs?: { readonly name: string; readonly label: string };
  /** …by ops/s, this ÷ that, per round (the two are timed in alternate rounds): median and min–max. */
  readonly ratio?: Spread;
}

interface Options {
  readonly rounds: number;
  /** Target length of one timed round, ms. */
  readonly roundMs: number;
  /** Warm-up per case, ms. */
  readonly warmupMs: number;
}

const nowNs = (): number => Number(process.hrtime.bigint());

/** Fold a value into a 32-bit checksum. */
const mix = (acc: number, x: number): number => (Math.imul(acc, 31) + x) | 0;

/** Run `c` over `n` operations, folding its checksum into `sink`. */
async function runBatch(c: Case, n: number, sink: { v: number }): Promise<void> {
  const r = c.batch(n);
  sink.v = mix(sink.v, typeof r === 'number' ? r : await r);
}

/**
 * Time a set of cases that are compared with one another: warm each up for
 * `warmupMs` while doubling its batch until one batch takes a tenth of a
 * round, size its round to `roundMs`, then time `rounds` rounds, the cases
 * interleaved (A B A B …) so that drift on a shared machine hits all alike.
 */
async function measure(set: readonly Case[], o: Options, sink: { v: number }): Promise<{ opsPerRound: number; nsPerOp: number[] }[]> {
  const sized = [];
  for (const c of set) {
    let n = 1;
    let perOp = NaN;
    const warmEnd = nowNs() + o.warmupMs * 1e6;
    for (;;) {
      const t0 = nowNs();
      await runBatch(c, n, sink);
      const dt = nowNs() - t0;
      perOp = dt / n;
      if (dt < (o.roundMs * 1e6) / 10) n *= 2;
      else if (nowNs() >= warmEnd) break;
    }
    sized.push({ opsPerRound: Math.max(1, Math.round((o.roundMs * 1e6) / perOp)), nsPerOp: [] as number[] });
  }
  for (let r = 0; r < o.rounds; r++) {
    for (let i = 0; i < set.length; i++) {
      const s = sized[i]!;
      const t0 = nowNs();
      await runBatch(set[i]!, s.opsPerRound, sink);
      s.nsPerOp.push((nowNs() - t0) / s.opsPerRound);
    }
  }
  return sized;
}

/** A message `data` object whose message frame is about `bytes` long. */
function payload(bytes: number): unknown {
  if (bytes <= 128) return { t: 1763900000000, s: 2, text: 'hello, world' };
  const items: { id: number; name: string; score: number; tags: string[] }[] = [];
  const data = { t: 1763900000000, s: 2, items };
  while (JSON.stringify(data).length < bytes - 60) {
    const i = items.length;
    items.push({ id: 1000 + i, name: `player-${i}`, score: (i * 7919) % 10000, tags: ['a', 'bc'] });
  }
  return data;
}

/** The envelope of a channel message carrying `data`, as the API hands it to the hub. */
function envelope(data: unknown, channel = 'news'): Envelope {
  return { app: 'bench', id: '123456789', target: { channels: [channel] }, data: JSON.stringify(data) };
}

/** Frame encoding and JSON cases, for a small and a ~2 KB message. */
function frameCases(): Case[] {
  const frames: Case[] = [];
  const json: Case[] = [];
  for (const [label, bytes] of [
    ['small', 100],
    ['2 KB', 2048],
  ] as const) {
    const data = payload(bytes);
    const env = envelope(data);
    const text = v1Text(MessageDelivery.of(env, 'news'));
    const size = `${label} (${Buffer.byteLength(text)} B)`;
    // Both framings must produce the same bytes, or the comparison means nothing.
    const ours = wsTextFrame(text);
    const theirs = Buffer.concat(Sender.frame(Buffer.from(text), WS_TEXT));
    if (!ours.equals(theirs)) throw new Error(`micro: wsTextFrame and ws Sender.frame differ for the ${label} frame`);
    const wsName = `ws Sender.frame(Buffer.from), ${size}`;
    frames.push(
      {
        group: 'frame',
        name: `wsTextFrame, ${size}`,
        vs: { name: wsName, label: 'ws' },
        batch: (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) acc = mix(acc, wsTextFrame(text).length);
          return acc;
        },
      },
      {
        group: 'frame',
        name: wsName,
        batch: (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            const parts = Sender.frame(Buffer.from(text), WS_TEXT);
            acc = mix(acc, parts[0]!.length + parts[1]!.length);
          }
          return acc;
        },
      },
    );
    json.push(
      {
        group: 'json',
        name: `JSON.stringify(data), ${size}`,
        batch: (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) acc = mix(acc, JSON.stringify(data).length);
          return acc;
        },
      },
      {
        // Everything done once per message before the fan-out: serialise the
        // data (publish), build the delivery (hub), and encode it as a v1
        // WebSocket frame (first connection; the others share the bytes).
        group: 'json',
        name: `stringify + delivery + encode, ${size}`,
        batch: (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            const e: Envelope = { ...env, data: JSON.stringify(data) };
            acc = mix(acc, MessageDelivery.of(e, 'news').bytes(WS_V1).length);
          }
          return acc;
        },
      },
    );
  }
  return [...frames, ...json];
}

/** `allows()` with 1, 10 and 256 patterns; each check scans every pattern. */
function allowsCases(): Case[] {
  const cases: Case[] = [];
  for (const count of [1, 10, 256]) {
    // Half exact names, half prefixes; the matching one is last (the worst case for a hit).
    const patterns: string[] = [];
    for (let i = 0; i < count - 1; i++) patterns.push(i % 2 === 0 ? `room-${i}` : `team-${i}:*`);
    patterns.push('match:*');
    for (const [kind, channel, expected] of [
      ['hit', 'match:17', true],
      ['miss', 'lobby:17', false],
    ] as const) {
      if (allows(patterns, channel) !== expected) throw new Error(`micro: allows() ${kind} case gave the wrong answer`);
      cases.push({
        group: 'allows',
        name: `allows(), ${count} pattern${count === 1 ? '' : 's'}, ${kind}`,
        batch: (n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) if (allows(patterns, channel)) acc++;
          return acc;
        },
      });
    }
  }
  return cases;
}

/** Channels in the hub for the lookup cases. */
const HUB_CHANNELS = 100_000;
const HUB_PEERS = 1_000;

/**
 * The hub's channel index with 100,000 channels, one subscriber each. The
 * hub takes any `Peer`, so these are plain objects that count frames: no
 * sockets. Lookups use `subscriberCount()`, which is the same two `Map`
 * gets `deliver()` makes; `deliver()` adds building the frame and queueing
 * it, and the case includes the `distribute()` that hands it to the peer.
 */
function hubCases(): Case[] {
  const hub = new Hub();
  let pushed = 0;
  const push = (d: Delivery): void => {
    pushed += (d as MessageDelivery).data.length;
  };
  const pushBatch = (b: Batch): void => {
    for (const d of b.deliveries) push(d);
  };
  const peers: Peer[] = [];
  for (let i = 0; i < HUB_PEERS; i++) {
    peers.push({ id: `c${i}`, app: 'bench', user: `u${i}`, since: 0, transport: 'bench', channels: null, push, pushBatch });
    hub.add(peers[i]!);
  }
  for (let c = 0; c < HUB_CHANNELS; c++) hub.subscribe(peers[c % HUB_PEERS]!, `room:${c}`);
  if (hub.counters('bench').channels !== HUB_CHANNELS) throw new Error('micro: hub setup failed');
  // Keys in a random order, built afresh (equal to, not the same strings as,
  // the hub's keys, as a channel name parsed from a publish would be).
  const KEYS = 1 << 16;
  const hits: string[] = [];
  const misses: string[] = [];
  const envs: Envelope[] = [];
  let seed = 12345;
  for (let i = 0; i < KEYS; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const c = seed % HUB_CHANNELS;
    hits.push(['room', String(c)].join(':'));
    misses.push(['hall', String(c)].join(':'));
    envs.push(envelope({ t: 1, s: 2 }, hits[i]));
  }
  const mask = KEYS - 1;
  return [
    {
      group: 'hub',
      name: `channel lookup among ${si(HUB_CHANNELS)}, hit`,
      batch: (n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += hub.subscriberCount('bench', hits[i & mask]!);
        if (acc !== n) throw new Error('micro: a hub lookup missed');
        return acc;
      },
    },
    {
      group: 'hub',
      name: `channel lookup among ${si(HUB_CHANNELS)}, miss`,
      batch: (n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += hub.subscriberCount('bench', misses[i & mask]!);
        return acc + n;
      },
    },
    {
      group: 'hub',
      name: `deliver() to a channel of 1 among ${si(HUB_CHANNELS)}`,
      batch: (n) => {
        const before = pushed;
        for (let i = 0; i < n; i++) {
          hub.deliver(envs[i & mask]!);
          hub.distribute();
        }
        if (pushed === before) throw new Error('micro: deliver() reached no peer');
        return mix(n, pushed);
      },
    },
  ];
}

/** Token verification: fast-jwt HS256 every time, and the cache's hit path. */
async function tokenCases(): Promise<Case[]> {
  const secret = 'micro-benchmark-secret-0123456789abcdef';
  const key = verifyKey(secret);
  // The same key object every time, as the app registry returns it (the cache checks identity).
  const keyOf: KeyLookup = (app) => (app === 'bench' ? key : undefined);
  const token = await signToken({ app: 'bench', user: 'user-42', secret, ttlSeconds: 3600, channels: ['news', 'match:*'] });
  const cache = new TokenCache();
  cache.verify(token, keyOf);
  if (cache.size !== 1) throw new Error('micro: the token was not cached');
  return [
    {
      group: 'token',
      name: 'verifyToken() (fast-jwt HS256)',
      batch: async (n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) acc = mix(acc, verifyToken(token, keyOf).user.length);
        return acc;
      },
    },
    {
      group: 'token',
      name: 'TokenCache.verify(), hit',
      vs: { name: 'verifyToken() (fast-jwt HS256)', label: 'verifyToken' },
      batch: async (n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) acc = mix(acc, cache.verify(token, keyOf).user.length);
        return acc;
      },
    },
  ];
}

/** How the cases are set up, printed under the table and saved with the results. */
const NOTES = [
  'frame: the bytes of both framings are checked equal first; ws returns [header, payload] (two writes), wsTextFrame one buffer.',
  'json: stringify + delivery + encode is the once-per-message work before the fan-out (publish, hub, first socket).',
  'allows: half exact names, half prefix patterns; the hit matches the last pattern, so hit and miss both scan them all.',
  `hub: a real Hub with ${HUB_CHANNELS.toLocaleString('en')} channels of one subscriber each (${HUB_PEERS.toLocaleString('en')} plain-object peers, no sockets); ` +
    'lookup is subscriberCount(), the same two Map gets deliver() makes; keys in random order.',
  'token: one HS256 token with two channel patterns; verification is synchronous, so neither path awaits.',
];

/** Nanoseconds per op, readable: "41.2 ns", "3.10 µs". */
function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return '–';
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + ' ms';
  if (ns >= 1e3) return (ns / 1e3).toFixed(ns >= 1e4 ? 1 : 2) + ' µs';
  return ns.toFixed(ns < 10 ? 2 : ns < 100 ? 1 : 0) + ' ns';
}

/** The summary table: one row per case. */
export function microTable(results: readonly MicroResult[]): string {
  return table(
    ['group', 'case', 'ops/s', 'time/op', 'ops/s ÷'],
    results.map((r) => [
      r.group,
      r.name,
      fmtSpread(r.opsPerSecond),
      fmtSpread(r.nsPerOp, fmtNs),
      r.ratio === undefined || r.vs === undefined ? '' : `${fmtSpread(r.ratio, (x) => x.toFixed(x >= 100 ? 0 : 2))}× ${r.vs.label}`,
    ]),
  );
}

export const micro: Scenario = {
  name: 'micro',
  summary: 'hot functions: frame encoding, channel index, token verification',
  usage: `micro [--rounds 10] [--round-ms 200] [--warmup-ms 300] [--quick] [--out FILE]`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        rounds: { type: 'string' },
        'round-ms': { type: 'string' },
        'warmup-ms': { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick;
    const o: Options = {
      rounds: Number(values.rounds ?? (quick ? 5 : 10)),
      roundMs: Number(values['round-ms'] ?? (quick ? 50 : 200)),
      warmupMs: Number(values['warmup-ms'] ?? (quick ? 100 : 300)),
    };
    if (!(o.rounds >= 1 && o.roundMs > 0 && o.warmupMs >= 0)) throw new Error('micro: --rounds must be ≥ 1 and --round-ms > 0');

    const cases = [...frameCases(), ...allowsCases(), ...hubCases(), ...(await tokenCases())];
    const sink = { v: 0 };
    const results: MicroResult[] = [];
    /** ns/op of every round, by case name. */
    const rounds = new Map<string, number[]>();
    // A case and the one it is compared with are timed together, interleaved.
    const sets: Case[][] = [];
    const placed = new Set<Case>();
    for (const c of cases) {
      if (placed.has(c)) continue;
      const set = cases.filter((d) => d === c || d.vs?.name === c.name || c.vs?.name === d.name);
      for (const d of set) placed.add(d);
      sets.push(set);
    }
    for (const set of sets) {
      const timed = await measure(set, o, sink);
      set.forEach((c, i) => {
        const { opsPerRound, nsPerOp } = timed[i]!;
        rounds.set(c.name, nsPerOp);
        const ns = spread(nsPerOp);
        const ops = spread(nsPerOp.map((x) => 1e9 / x));
        results.push({ group: c.group, name: c.name, opsPerRound, opsPerSecond: ops, nsPerOp: ns, ...(c.vs !== undefined ? { vs: c.vs } : {}) });
        process.stderr.write(`micro: ${c.name}: ${si(ops.median)} ops/s, ${fmtNs(ns.median)}/op\n`);
      });
    }
    // Ratios round by round: round r of a case ran right next to round r of its baseline.
    const withRatios = results.map((r) => {
      const mine = rounds.get(r.name)!;
      const base = r.vs === undefined ? undefined : rounds.get(r.vs.name);
      return base === undefined ? r : { ...r, ratio: spread(mine.map((ns, i) => base[i]! / ns)) };
    });

    const m = machine(false);
    const file = writeResult('micro', { scenario: 'micro', machine: m, options: o, notes: NOTES, checksum: sink.v, results: withRatios }, values.out);
    process.stdout.write(`\nmicro-benchmarks on ${m.cpuModel}, Node ${m.node}, ${o.rounds} rounds of ~${o.roundMs} ms per case (median, min–max)\n\n`);
    process.stdout.write(microTable(withRatios) + '\n\n');
    process.stdout.write(NOTES.map((n) => `- ${n}\n`).join('') + '\n');
    process.stdout.write(`checksum ${sink.v}\nresults: ${file}\n`);
  },
};

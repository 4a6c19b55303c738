/**
 * A storm load process: a few thousand lean WebSocket clients, each
 * subscribed to one of the storm's channels, each checking the sequence
 * numbers of what it receives (the publisher numbers each channel's
 * messages 0, 1, 2, …): a number past the next one is a gap, one already
 * seen a duplicate. A client that loses its connection comes back with
 * `since` (the last id it saw) as the SDK does, on the next node of its list
 * after a `1001` (after the delay the `reconnect` frame announced).
 * Driven by the runner over IPC.
 */
import { signToken } from '../../src/auth/tokens.js';
import { LeanConn, now, readNumberField, type LeanHandlers } from '../lib/lean-ws.js';
import { serveParent } from '../lib/proc.js';

export interface StormConnectArgs {
  readonly ports: readonly number[];
  readonly count: number;
  readonly firstIndex: number;
  readonly channels: number;
  readonly concurrency: number;
  readonly app: string;
  readonly secret: string;
}

export interface StormCounts {
  readonly clients: number;
  readonly live: number;
  readonly received: number;
  /** Messages skipped over (a number past the next one), and received twice. */
  readonly missing: number;
  readonly duplicated: number;
  /** Closes the client did not cause, by close code (4010: heartbeat). */
  readonly closedByServer: Record<string, number>;
  /** Of those, on clients that were never cut (their path never broke). */
  readonly falseHeartbeatCloses: number;
  /** Resubscribes answered `recovered: false`. */
  readonly notRecovered: number;
  readonly reconnects: number;
  /** Reconnect attempts that failed (each is tried again, up to 20 times). */
  readonly reconnectFailures: number;
  readonly errors: string[];
}

/** `message` frames start with `{"type":"message","id":"`: the id's first byte. */
const ID_AT = 24;
const KEY_N = 0x6e; // 'n'

interface Client {
  readonly index: number;
  readonly channel: string;
  conn: LeanConn | null;
  /** Highest sequence number seen, -1 before the first. */
  last: number;
  lastId: string;
  /** Cut on purpose (its path broke): closes that follow are not the server's doing. */
  cut: boolean;
  /** Index into the node list. */
  node: number;
}

const clients: Client[] = [];
let args: StormConnectArgs | undefined;
let received = 0;
let missing = 0;
let duplicated = 0;
const closedByServer: Record<string, number> = {};
let falseHeartbeatCloses = 0;
let notRecovered = 0;
let reconnects = 0;
let reconnectFailures = 0;
const errors: string[] = [];
/** Reconnect start → `recovered` reply, ms, for the clients of the last `cut` or drain. */
let recoveries: number[] = [];
let stopping = false;

const handlers: LeanHandlers = {
  message(c, buf, start, end) {
    const cl = clients[c.tick]!;
    received++;
    const n = readNumberField(buf, start, end, KEY_N);
    if (n === cl.last + 1) cl.last = n;
    else if (n > cl.last) {
      missing += n - cl.last - 1;
      cl.last = n;
    } else duplicated++;
    const idEnd = buf.indexOf(0x22, start + ID_AT);
    cl.lastId = buf.toString('latin1', start + ID_AT, idEnd);
  },
  closed(c, code) {
    const cl = clients[c.tick]!;
    if (cl.conn !== c) return;
    cl.conn = null;
    if (stopping || cl.cut) return;
    const key = String(code ?? 1006);
    closedByServer[key] = (closedByServer[key] ?? 0) + 1;
    if (code === 4010) falseHeartbeatCloses++;
    // Come back as the SDK does: after a drain, on the next node after the announced delay.
    void (async () => {
      let after = 100;
      if (code === 1001) {
        cl.node = (cl.node + 1) % args!.ports.length;
        const hint = await c.nextControl(1).catch(() => '');
        const m = /"type":"reconnect","after":(\d+)/.exec(hint);
        if (m !== null) after = Number(m[1]);
      }
      await sleep(after);
      const t0 = now();
      if (await open(cl, true)) recoveries.push(now() - t0);
    })();
  },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Open `cl`'s connection and subscribe, trying again (as the SDK would) up to 20 times; true once live. */
async function open(cl: Client, again: boolean): Promise<boolean> {
  for (let attempt = 0; attempt < 20 && !stopping; attempt++) {
    if (await openOnce(cl, again)) return true;
    // As the SDK does with several URLs: the next node, after a pause.
    cl.node = (cl.node + 1) % args!.ports.length;
    await sleep(250 + Math.random() * 250);
  }
  return false;
}

/** Open `cl`'s connection and subscribe (with `since` when it saw anything); true once live. */
async function openOnce(cl: Client, again: boolean): Promise<boolean> {
  const a = args!;
  try {
    const token = await signToken({ app: a.app, user: `s${cl.index}`, secret: a.secret, ttlSeconds: 24 * 3600, channels: [cl.channel] });
    const c = await LeanConn.open({ host: '127.0.0.1', port: a.ports[cl.node]!, path: `/v1/connect?token=${token}`, timeoutMs: 30_000 }, handlers);
    c.tick = cl.index - a.firstIndex;
    cl.conn = c;
    cl.cut = false;
    const welcome = await c.nextControl(30_000);
    if (!welcome.includes('"type":"welcome"')) throw new Error(`expected welcome, got ${welcome.slice(0, 100)}`);
    const since = cl.lastId === '' ? '' : `,"since":"${cl.lastId}"`;
    c.sendText(`{"type":"subscribe","id":1,"channel":"${cl.channel}"${since}}`);
    const reply = await c.nextControl(60_000);
    if (!reply.startsWith('{"type":"reply"')) throw new Error(`expected reply, got ${reply.slice(0, 100)}`);
    if (since !== '' && !reply.includes('"recovered":true')) notRecovered++;
    if (again) reconnects++;
    return true;
  } catch (err) {
    if (again) reconnectFailures++;
    if (errors.length < 10) errors.push(err instanceof Error ? err.message : String(err));
    cl.conn?.destroy();
    cl.conn = null;
    return false;
  }
}

/** Break these clients' paths: their TCP connections reset (RST), as a network that drops them would. */
function reset(gone: readonly Client[]): void {
  for (const c of gone) {
    c.cut = true;
    const conn = c.conn!;
    c.conn = null;
    conn.open = false;
    conn.sock.resetAndDestroy();
  }
}

async function pool(items: readonly Client[], concurrency: number, fn: (c: Client) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function counts(): StormCounts {
  return {
    clients: clients.length,
    live: clients.filter((c) => c.conn !== null).length,
    received,
    missing,
    duplicated,
    closedByServer: { ...closedByServer },
    falseHeartbeatCloses,
    notRecovered,
    reconnects,
    reconnectFailures,
    errors: [...errors],
  };
}

serveParent({
  async connect(msg) {
    args = msg as unknown as StormConnectArgs;
    for (let i = 0; i < args.count; i++) {
      const index = args.firstIndex + i;
      clients.push({ index, channel: `storm-${index % args.channels}`, conn: null, last: -1, lastId: '', cut: false, node: index % args.ports.length });
    }
    await pool(clients, args.concurrency, (c) => open(c, false));
    return counts();
  },
  /** Reset every other client's TCP connection (RST), wait `awayMs`, then bring them all back at once. */
  async cut(msg) {
    const { awayMs, concurrency } = msg as { awayMs: number; concurrency: number };
    const gone = clients.filter((c) => c.index % 2 === 0 && c.conn !== null);
    reset(gone);
    await sleep(awayMs);
    recoveries = [];
    const t0 = now();
    await pool(gone, concurrency, async (c) => {
      const s = now();
      if (await open(c, true)) recoveries.push(now() - s);
    });
    return { cut: gone.length, ms: now() - t0, recoveries };
  },
  /**
   * Reset a random `fraction` of the live clients' connections (RST) and
   * bring each back after `awayMs`, in the background; returns how many.
   */
  churn(msg) {
    const { fraction, awayMs } = msg as { fraction: number; awayMs: number };
    const gone = clients.filter((c) => c.conn !== null && Math.random() < fraction);
    reset(gone);
    setTimeout(() => void pool(gone, 200, (c) => open(c, true)), awayMs);
    return gone.length;
  },
  /** Recovery times since the last `cut` (or since connecting, for a drain's reconnects). */
  recoveries: () => recoveries,
  counts: () => counts(),
  /**
   * Wait until every client is live and has the last message of its
   * channel (`final[k]`: the last sequence number the publisher had
   * acknowledged on channel k), up to `timeoutMs`; then count what is still
   * missing at the tail.
   */
  async settle(msg) {
    const { final, timeoutMs } = msg as { final: number[]; timeoutMs: number };
    const done = (): boolean => clients.every((c) => c.conn !== null && c.last >= final[c.index % args!.channels]!);
    const until = Date.now() + timeoutMs;
    while (!done() && Date.now() < until) await sleep(50);
    let tail = 0;
    let behind = 0;
    for (const c of clients) {
      const f = final[c.index % args!.channels]!;
      if (c.last < f) {
        tail += f - c.last;
        behind++;
      }
    }
    return { ...counts(), missing: missing + tail, behind };
  },
  close() {
    stopping = true;
    for (const c of clients) c.conn?.destroy();
    return true;
  },
});

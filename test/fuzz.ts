/**
 * Fuzzing the device side: generators of hostile client frames (fast-check
 * arbitraries), and a bare WebSocket client on a raw socket that can send
 * anything, protocol violations included, and records every frame the
 * server sends back. Used by the fuzz tests and by `bench/fuzz`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { ErrorCodes } from '../src/core/errors.js';
import { CloseCode } from '../src/protocol/codes.js';

const TYPES = ['subscribe', 'unsubscribe', 'ack', 'inbox', 'ping', 'pong'];

/** JSON values of every shape, small. */
const value = fc.jsonValue({ maxDepth: 3 });

/** A message id, or something that looks a little like one. */
const idLike = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String),
  fc.constantFrom('0', '-1', '01', '9'.repeat(30), '1e5', ' 1', '', '0x10'),
  value,
);

/** Client frames with the right field names and random values, and random field names. */
const mutated = fc
  .record(
    {
      type: fc.oneof(fc.constantFrom(...TYPES), fc.string({ maxLength: 12 }), value),
      id: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.constantFrom(2 ** 53, -0, 1e308), value),
      channel: fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('a*', '*', '../x', 'ä'.repeat(201)), value),
      since: idLike,
      ids: fc.oneof(fc.array(idLike, { maxLength: 5 }), fc.array(fc.constant('1'), { minLength: 1000, maxLength: 1200 }), value),
      upTo: idLike,
      after: idLike,
      limit: fc.oneof(fc.integer(), fc.double(), value),
      extra: value,
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

/** Deep nesting, long strings, huge numbers. */
const extreme = fc.oneof(
  fc.integer({ min: 1, max: 20_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 1, max: 5_000 }).map((n) => '{"type":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.constantFrom(
    '{"type":"inbox","id":1e400,"limit":1e400}',
    '{"type":"ping","id":18446744073709551616}',
    '{"type":"subscribe","id":1,"channel":"' + 'x'.repeat(60_000) + '"}',
    '{"__proto__":{"type":"ping"},"type":"pong"}',
    '{"type":"ack","id":1,"ids":[],"upTo":"1"}',
    '',
    'null',
    '"ping"',
    '\u0000',
    '{"type":"pong"} ',
  ),
);

/** The text of one client frame: valid, nearly valid, or anything at all. */
export const frameText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: mutated, weight: 5 },
  { arbitrary: fc.json({ maxDepth: 3 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 2 },
  { arbitrary: extreme, weight: 1 },
);

/** One thing to send on the socket: a text frame's text, or raw bytes (any framing, any violation). */
export type Shot = { readonly text: string } | { readonly raw: Buffer; readonly what: string };

/** A masked frame as a client sends it (RFC 6455 §5.2), with the knobs a fuzzer turns. */
export function rawFrame(opcode: number, payload: Buffer, o: { fin?: boolean; mask?: boolean; rsv?: number; length?: number } = {}): Buffer {
  const fin = o.fin ?? true;
  const mask = o.mask ?? true;
  const len = o.length ?? payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((x, i) => x ^ key[i & 3]!));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/** Protocol violations and odd framings: binary frames, bad UTF-8, fragments, oversized and reserved bits. */
export const rawShot: fc.Arbitrary<Shot> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => ({ raw: rawFrame(0x2, Buffer.from(b)), what: 'binary' })),
  fc.constantFrom(
    { raw: rawFrame(0x1, Buffer.from([0xc3, 0x28, 0xa0, 0xa1])), what: 'invalid UTF-8' },
    { raw: rawFrame(0x1, Buffer.from([0xed, 0xa0, 0x80])), what: 'UTF-8 surrogate' },
    { raw: Buffer.concat([rawFrame(0x1, Buffer.from('{"type":'), { fin: false }), rawFrame(0x0, Buffer.from('"ping"}'))]), what: 'fragments' },
    { raw: rawFrame(0x0, Buffer.from('stray')), what: 'continuation without a start' },
    { raw: Buffer.concat([rawFrame(0x1, Buffer.from('{"ty'), { fin: false }), rawFrame(0x1, Buffer.from('pe":1}'))]), what: 'new message inside a fragmented one' },
    { raw: rawFrame(0x1, Buffer.from('{"type":"ping"}'), { mask: false }), what: 'unmasked' },
    { raw: rawFrame(0x1, Buffer.from('{"type":"ping"}'), { rsv: 4 }), what: 'reserved bit' },
    { raw: rawFrame(0x3, Buffer.from('x')), what: 'reserved opcode' },
    { raw: rawFrame(0x9, Buffer.alloc(200)), what: 'control frame over 125 bytes' },
    { raw: rawFrame(0x9, Buffer.from('hi')), what: 'ping' },
    { raw: rawFrame(0x1, Buffer.alloc(0), { length: 2 ** 40 }), what: 'oversized length' },
    { raw: rawFrame(0x1, Buffer.alloc(70_000, 0x20)), what: 'over maxFrameBytes' },
    { raw: rawFrame(0x8, Buffer.from([0x03, 0xe8])), what: 'close' },
  ),
);

/** A shot: mostly frame texts, some raw. */
export const shot: fc.Arbitrary<Shot> = fc.oneof({ arbitrary: frameText.map((text) => ({ text })), weight: 9 }, { arbitrary: rawShot, weight: 1 });

/** The frame types a server may send, and every code a Silk close may carry (RFC 6455's own included). */
export const SERVER_TYPES = new Set(['welcome', 'reply', 'error', 'pong', 'ping', 'message', 'unread', 'reconnect']);
export const CLOSE_CODES = new Set<number>([...Object.values(CloseCode), 1000, 1002, 1005, 1006, 1007, 1009, 1011]);

/** What a fuzzing run saw. */
export interface FuzzTally {
  shots: number;
  textFrames: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  /** Server frames that were not documented (must stay empty). */
  strange: string[];
}

export function newTally(): FuzzTally {
  return { shots: 0, textFrames: 0, errors: {}, closes: {}, strange: [] };
}

/**
 * A bare WebSocket client on a raw socket: sends any bytes, reads every
 * server frame, checks each against the protocol (documented frame types,
 * error codes and close codes) into a tally, and reports when it closed.
 */
export class FuzzClient {
  readonly sock: Socket;
  closed: Promise<number>;
  #buf = Buffer.alloc(0);
  #open = false;
  #code = 1006;
  #tally: FuzzTally;

  private constructor(sock: Socket, tally: FuzzTally) {
    this.sock = sock;
    this.#tally = tally;
    this.closed = new Promise((resolve) => sock.once('close', () => resolve(this.#code)));
  }

  static open(port: number, path: string, tally: FuzzTally): Promise<FuzzClient> {
    return new Promise((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      const sock = connect(port, '127.0.0.1');
      const c = new FuzzClient(sock, tally);
      sock.on('error', () => undefined);
      sock.once('connect', () =>
        sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`),
      );
      sock.on('data', (d: Buffer) => {
        c.#buf = Buffer.concat([c.#buf, d]);
        if (!c.#open) {
          const end = c.#buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = c.#buf.subarray(0, end).toString('latin1');
          if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) return reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
          c.#open = true;
          c.#buf = c.#buf.subarray(end + 4);
          resolve(c);
        }
        c.#read();
      });
      sock.once('close', () => reject(new Error('closed before the upgrade')));
    });
  }

  get open(): boolean {
    return this.#open && !this.sock.destroyed;
  }

  #probe = 0;
  #waiting: { id: number; done: () => void } | null = null;

  /**
   * Send `s`, then a ping with a fresh id, and resolve once its reply came
   * (the server has handled `s`) or the connection closed (it refused `s`).
   */
  async exchange(s: Shot): Promise<void> {
    this.#tally.shots++;
    if (!this.open) return;
    const id = 1_000_000_000 + ++this.#probe;
    const answered = new Promise<void>((resolve) => (this.#waiting = { id, done: resolve }));
    this.sock.write('text' in s ? rawFrame(0x1, Buffer.from(s.text)) : s.raw);
    this.sock.write(rawFrame(0x1, Buffer.from(`{"type":"ping","id":${id}}`)));
    await Promise.race([answered, this.closed]);
    this.#waiting = null;
  }

  #read(): void {
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      let len = b[1]! & 0x7f;
      let p = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        p = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        p = 10;
      }
      if (b.length < p + len) return;
      const op = b[0]! & 0x0f;
      const payload = b.subarray(p, p + len);
      this.#buf = b.subarray(p + len);
      const t = this.#tally;
      if (op === 0x1) {
        t.textFrames++;
        let f: { type?: unknown; code?: unknown };
        try {
          f = JSON.parse(payload.toString('utf8'));
        } catch {
          t.strange.push(`not JSON: ${payload.toString('utf8').slice(0, 80)}`);
          continue;
        }
        if (typeof f.type !== 'string' || !SERVER_TYPES.has(f.type)) t.strange.push(`frame type ${JSON.stringify(f.type)}`);
        if (f.type === 'error') {
          const code = String(f.code);
          if (!(code in ErrorCodes)) t.strange.push(`error code ${code}`);
          t.errors[code] = (t.errors[code] ?? 0) + 1;
        }
        if (f.type === 'ping') this.sock.write(rawFrame(0x1, Buffer.from('{"type":"pong"}')));
        const w = this.#waiting;
        if (w !== null && (f.type === 'reply' || f.type === 'error') && (f as { id?: unknown }).id === w.id) w.done();
      } else if (op === 0x8) {
        this.#code = len >= 2 ? payload.readUInt16BE(0) : 1005;
        t.closes[this.#code] = (t.closes[this.#code] ?? 0) + 1;
        if (!CLOSE_CODES.has(this.#code)) t.strange.push(`close code ${this.#code}`);
        this.sock.end();
      } else if (op === 0x9) {
        this.sock.write(rawFrame(0xa, Buffer.from(payload)));
      } else if (op !== 0xa) {
        t.strange.push(`opcode ${op}`);
      }
    }
  }
}

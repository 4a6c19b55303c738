/**
 * A lean WebSocket client for load generation: the handshake done by hand on
 * a `net` socket, then server frames parsed straight off the socket
 * (unmasked frames with 2-, 4- or 10-byte headers). Speaks Silk's protocol
 * and, for the baseline, Socket.IO 4's (`42[…]` events, `2`/`3` pings).
 * Message frames are
 * handed to a callback as a byte range of the chunk, without decoding them
 * to strings, so one process can count about a million frames a second.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEADER_END = Buffer.from('\r\n\r\n');

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export interface LeanOptions {
  readonly host: string;
  readonly port: number;
  /** Request target, such as `/v1/connect?token=…`. */
  readonly path: string;
  readonly localAddress?: string;
  readonly timeoutMs?: number;
}

/** What a connection reports; one object may serve many connections. */
export interface LeanHandlers {
  /**
   * A text frame whose `type` is `message`; its JSON is `buf[start, end)`.
   * `at` is when the chunk holding it arrived ({@link now}).
   */
  message(c: LeanConn, buf: Buffer, start: number, end: number, at: number): void;
  /** The connection closed after it was open; `code` from the server's close frame, if any. */
  closed?(c: LeanConn, code: number | undefined): void;
}

const enum Byte {
  m = 0x6d,
  p = 0x70,
  i = 0x69,
  two = 0x32,
  four = 0x34,
}

export class LeanConn {
  readonly sock: Socket;
  readonly #handlers: LeanHandlers;
  /** Message frames received since the connection opened. */
  messages = 0;
  /** Free for the owner (for example, a sampling counter). */
  tick = 0;
  /** Close code from the server's close frame. */
  closeCode: number | undefined;
  open = false;
  /** Protocol surprises (fragmented frames, bad opcodes). */
  oddities = 0;
  #rest: Buffer | null = null;
  #controls: string[] = [];
  #waiter: ((text: string) => void) | null = null;

  private constructor(sock: Socket, handlers: LeanHandlers) {
    this.sock = sock;
    this.#handlers = handlers;
  }

  /** Connect and complete the opening handshake. */
  static open(o: LeanOptions, handlers: LeanHandlers): Promise<LeanConn> {
    return new Promise<LeanConn>((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      const sock = connect({ host: o.host, port: o.port, ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}) });
      sock.setNoDelay(true);
      const c = new LeanConn(sock, handlers);
      let head: Buffer = Buffer.alloc(0);
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error('handshake timed out')), o.timeoutMs ?? 15_000);
      sock.once('connect', () => {
        sock.write(
          `GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      const onHandshake = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf(HEADER_END);
        if (end === -1) {
          if (head.length > 16_384) fail(new Error('handshake response too long'));
          return;
        }
        const text = head.subarray(0, end).toString('latin1');
        if (!text.startsWith('HTTP/1.1 101')) {
          return fail(new Error(`upgrade refused: ${text.split('\r\n')[0]} ${head.subarray(end + 4).toString('utf8').slice(0, 200)}`));
        }
        const m = /^sec-websocket-accept:\s*(\S+)/im.exec(text);
        if (m === null || m[1] !== accept) return fail(new Error('bad Sec-WebSocket-Accept'));
        settled = true;
        clearTimeout(timer);
        c.open = true;
        sock.off('data', onHandshake);
        sock.on('data', (d: Buffer) => c.#onData(d));
        resolve(c);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) c.#onData(rest);
      };
      sock.on('data', onHandshake);
      sock.on('error', (err) => fail(err));
      sock.on('close', () => {
        if (!settled) fail(new Error('closed during handshake'));
        else if (c.open) {
          c.open = false;
          c.#handlers.closed?.(c, c.closeCode);
        }
      });
    });
  }

  /** The next text frame that is neither a message nor a server ping (welcome, reply, error). */
  nextControl(timeoutMs = 10_000): Promise<string> {
    const queued = this.#controls.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new Error('no control frame in time'));
      }, timeoutMs);
      this.#waiter = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
    });
  }

  /** Send a masked text frame. */
  sendText(text: string): void {
    this.#send(0x81, Buffer.from(text, 'utf8'));
  }

  #send(first: number, payload: Buffer): void {
    if (!this.open) return;
    const len = payload.length;
    const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(head + 4 + len);
    frame[0] = first;
    if (head === 2) frame[1] = 0x80 | len;
    else if (head === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeUInt32BE(0, 2);
      frame.writeUInt32BE(len, 6);
    }
    const mask = randomBytes(4);
    mask.copy(frame, head);
    for (let i = 0; i < len; i++) frame[head + 4 + i] = payload[i]! ^ mask[i & 3]!;
    this.sock.write(frame);
  }

  /** Close the TCP connection at once. */
  destroy(): void {
    this.open = false;
    this.sock.destroy();
  }

  #onData(chunk: Buffer): void {
    const at = now();
    let b = chunk;
    if (this.#rest !== null) {
      b = Buffer.concat([this.#rest, chunk]);
      this.#rest = null;
    }
    const n = b.length;
    let i = 0;
    while (n - i >= 2) {
      const b0 = b[i]!;
      let len = b[i + 1]! & 0x7f;
      let p = i + 2;
      if (len === 126) {
        if (n - i < 4) break;
        len = b.readUInt16BE(i + 2);
        p = i + 4;
      } else if (len === 127) {
        if (n - i < 10) break;
        len = b.readUInt32BE(i + 2) * 2 ** 32 + b.readUInt32BE(i + 6);
        p = i + 10;
      }
      if (n - p < len) break;
      const end = p + len;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x80) === 0) this.oddities++;
      if (opcode === 1) {
        // Every Silk frame starts with {"type":" (9 bytes), so byte 9 tells the type apart.
        const c9 = b[p + 9];
        const c0 = b[p];
        if (c0 === Byte.four && b[p + 1] === Byte.two) {
          // Socket.IO: `42["message",…]` is an event.
          this.messages++;
          this.#handlers.message(this, b, p, end, at);
        } else if (c0 === Byte.two && len === 1) {
          // Engine.IO ping: answer pong.
          this.sendText('3');
        } else if (c9 === Byte.m) {
          this.messages++;
          this.#handlers.message(this, b, p, end, at);
        } else if (c9 === Byte.p && b[p + 10] === Byte.i) {
          this.sendText('{"type":"pong"}');
        } else {
          const text = b.toString('utf8', p, end);
          if (this.#waiter !== null) {
            const w = this.#waiter;
            this.#waiter = null;
            w(text);
          } else if (this.#controls.length < 16) {
            this.#controls.push(text);
          }
        }
      } else if (opcode === 9) {
        this.#send(0x8a, Buffer.from(b.subarray(p, end)));
      } else if (opcode === 8) {
        this.closeCode = len >= 2 ? b.readUInt16BE(p) : 1005;
        // Answer the close as a client must (RFC 6455 §5.5.1), so the server need not wait it out.
        this.#send(0x88, Buffer.from(b.subarray(p, p + Math.min(len, 2))));
        this.sock.end();
      } else if (opcode !== 10) {
        this.oddities++;
      }
      i = end;
    }
    // Keep a partial frame for the next chunk (a copy, not a view that pins the whole chunk).
    if (i < n) this.#rest = Buffer.from(b.subarray(i));
  }
}

/**
 * Read the number after `"key":` in `buf[start, end)`, searching backwards
 * from the end (the bench payload `{"t":…,"s":…}` closes every frame).
 * NaN when not found.
 */
export function readNumberField(buf: Buffer, start: number, end: number, key: number): number {
  // Pattern: " key " :  (0x22, key, 0x22, 0x3a)
  for (let j = end - 4; j >= start; j--) {
    if (buf[j] === 0x22 && buf[j + 1] === key && buf[j + 2] === 0x22 && buf[j + 3] === 0x3a) {
      let k = j + 4;
      let v = 0;
      let c = buf[k]!;
      while (c >= 0x30 && c <= 0x39) {
        v = v * 10 + (c - 0x30);
        c = buf[++k]!;
      }
      if (c === 0x2e) {
        let scale = 0.1;
        c = buf[++k]!;
        while (c >= 0x30 && c <= 0x39) {
          v += (c - 0x30) * scale;
          scale /= 10;
          c = buf[++k]!;
        }
      }
      return k === j + 4 ? NaN : v;
    }
  }
  return NaN;
}

export const KEY_T = 0x74; // 't'
export const KEY_S = 0x73; // 's'

/** Socket.IO 4: wait for the Engine.IO open packet, connect to the main namespace. */
export async function socketioConnect(c: LeanConn, timeoutMs = 10_000): Promise<void> {
  try {
    const open = await c.nextControl(timeoutMs);
    if (!open.startsWith('0{')) throw new Error(`expected an Engine.IO open packet, got ${open.slice(0, 120)}`);
    c.sendText('40');
    const joined = await c.nextControl(timeoutMs);
    if (!joined.startsWith('40')) throw new Error(`namespace connect failed: ${joined.slice(0, 120)}`);
  } catch (err) {
    c.destroy();
    throw err;
  }
}

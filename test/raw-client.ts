/**
 * A deliberately minimal WebSocket client on a bare TCP socket.
 *
 * It exists so a test can misbehave in ways a real client library will not:
 * stop reading (slow consumer), never answer a close frame (drain timeout),
 * or stay silent (heartbeat). It masks nothing it does not send and parses
 * only what a Silk server writes: unmasked text and close frames.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

export class RawClient {
  readonly socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  /** Total bytes received after the handshake. */
  received = 0;

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Connect and finish the handshake; resolves with the status line on failure too. */
  static async open(port: number, path: string): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    const c = new RawClient(socket);
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise<void>((resolve, reject) => {
      let head: Buffer = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!status.includes(' 101 ')) return reject(new Error(`handshake refused: ${status}`));
        c.#buf = head.subarray(end + 4);
        c.received = c.#buf.length;
        socket.pause();
        resolve();
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
    return c;
  }

  /** Read frames until `until` returns true for one, or the socket ends. */
  async read(until: (f: RawFrame) => boolean): Promise<RawFrame[]> {
    const frames: RawFrame[] = [];
    const take = (): boolean => {
      for (;;) {
        const f = this.#parse();
        if (f === undefined) return false;
        frames.push(f);
        if (until(f)) return true;
      }
    };
    if (take()) return frames;
    return new Promise((resolve) => {
      const onData = (d: Buffer): void => {
        this.received += d.length;
        this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
        if (take()) done();
      };
      const done = (): void => {
        this.socket.off('data', onData);
        this.socket.off('close', done);
        this.socket.pause();
        resolve(frames);
      };
      this.socket.on('data', onData);
      this.socket.once('close', done);
      this.socket.resume();
    });
  }

  /** Send a masked text frame. */
  send(text: string): void {
    const payload = Buffer.from(text);
    if (payload.length >= 126) throw new Error('raw client sends short frames only');
    const mask = randomBytes(4);
    const head = Buffer.from([0x81, 0x80 | payload.length]);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    this.socket.write(Buffer.concat([head, mask, masked]));
  }

  #parse(): RawFrame | undefined {
    const b = this.#buf;
    if (b.length < 2) return undefined;
    let len = b[1]! & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return undefined;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return undefined;
      len = Number(b.readBigUInt64BE(2));
      off = 10;
    }
    if (b.length < off + len) return undefined;
    const f = { opcode: b[0]! & 0x0f, payload: b.subarray(off, off + len) };
    this.#buf = b.subarray(off + len);
    return f;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The close code of a close frame. */
export function closeCode(f: RawFrame): number {
  return f.payload.readUInt16BE(0);
}

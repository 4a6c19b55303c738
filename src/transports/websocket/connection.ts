/**
 * One WebSocket connection as a {@link Transport}. It *is* the `ws` socket
 * object (a subclass), so the transport costs no object of its own, and its
 * event handlers are shared functions that read `this` rather than closures
 * made per connection. Writes go straight to the TCP socket, framed once
 * per delivery by the session's encoding (frame.ts), not through `ws`'s
 * sender.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Disconnect } from '../../protocol/codes.js';
import type { Session } from '../../session/session.js';
import type { Transport } from '../../session/transport.js';
import { WS_TEXT } from './frame.js';

export class WsConnection extends WebSocket implements Transport {
  /** The session on this connection, set right after the upgrade. */
  session: Session | null = null;
  sock: Duplex | null = null;
  /** The socket is corked from the handshake until the session's first flush (see {@link opened}). */
  #corked = false;
  /** The ws receiver's first fragments array, kept for the connection's life (see {@link releaseFragments}). */
  #fragments: unknown[] | null = null;

  constructor(...args: unknown[]) {
    // ws constructs it as `new WebSocket(null, undefined, options)`.
    super(...(args as ConstructorParameters<typeof WebSocket>));
    // EventEmitter starts `_events` as `{ __proto__: null }`, which V8 keeps in dictionary mode:
    // with the transport's five listeners that is about 300 bytes a connection (heap snapshot of
    // 3,000 idle connections). An object with the five names from the start is a fast object of
    // about 60 bytes; Node's own streams start their `_events` the same way.
    (this as unknown as { _events: object })._events = {
      message: undefined,
      ping: undefined,
      pong: undefined,
      close: undefined,
      error: undefined,
    };
  }

  get name(): string {
    return 'websocket';
  }

  get framing(): typeof WS_TEXT {
    return WS_TEXT;
  }

  /**
   * Keep the socket corked until the session's first flush, so that the
   * `101` response `ws` writes and `welcome` (when the store answered within
   * the tick) leave in one write. The session is on the next flush from its
   * start, so the `101` waits no longer than that whatever the store does.
   */
  holdHandshake(socket: Duplex): void {
    this.sock = socket;
    this.#corked = true;
  }

  opened(): void {
    if (this.#corked) {
      this.#corked = false;
      this.sock?.uncork();
    }
  }

  write(bytes: Buffer): void {
    this.sock!.write(bytes);
  }

  get buffered(): number {
    return this.sock?.writableLength ?? 0;
  }

  get needsDrain(): boolean {
    return this.sock?.writableNeedDrain ?? false;
  }

  async drained(): Promise<void> {
    const sock = this.sock;
    if (sock === null || !sock.writableNeedDrain) return;
    await Promise.race([once(sock, 'drain'), once(sock, 'close')]).catch(() => undefined);
  }

  disconnect(d: Disconnect): void {
    this.close(d.code, d.reason);
  }

  /**
   * Keep one fragments array in ws's receiver for the connection's life.
   * Call once the socket is set (after the upgrade).
   *
   * Why: ws (8.x, to at least 8.23.0) starts a new `_fragments` array after
   * every data message. On an idle connection that array lives until the
   * next message, so V8 promotes it to the old generation; the next message
   * (a heartbeat answer) is pushed into it, and ws then drops the array with
   * the payload still inside. A dead old-generation array is still scanned
   * by every young collection until the next full one, so it keeps the young
   * payload alive and V8 promotes that too: about 330 bytes per heartbeat
   * answer. With heartbeats every 25 s on 19,000 connections the old
   * generation grew ~250 KB/s, and an idle server's RSS crept by 30 MiB
   * over 90 s (bench/README.md, "Idle connections").
   *
   * Here the receiver keeps one array, emptied once each message is joined,
   * so no payload outlives its message. This reads and writes one private
   * field of ws, on Silk's own sockets only; if a ws release renames it the
   * workaround turns itself off, and test/integration/ws-fragments.test.ts
   * fails so that the bump is checked.
   */
  keepFragments(): void {
    const r = (this as unknown as { _receiver?: { _fragments?: unknown } })._receiver;
    if (Array.isArray(r?._fragments)) this.#fragments = r!._fragments as unknown[];
  }

  /**
   * Empty the kept fragments array and put it back in the receiver. Called
   * from the `message` listener: ws has joined the fragments into the
   * message by then (with the default `binaryType`, `nodebuffer`; with
   * `fragments` the message would be this very array), and it reads no more
   * frames until the listener returns.
   */
  releaseFragments(): void {
    const f = this.#fragments;
    if (f === null) return;
    f.length = 0;
    (this as unknown as { _receiver: { _fragments: unknown[] } })._receiver._fragments = f;
  }
}

/**
 * One WebSocket connection. It *is* the `ws` socket object (a subclass), so
 * a connection costs one object, and its event handlers are shared
 * functions that read `this` rather than closures made per connection.
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Peer } from '../core/hub.js';
import type { Outbound } from '../core/message.js';
import type { Beating } from './heartbeat.js';
import type { Flushable } from './flusher.js';
import { wsTextFrame } from './frame.js';

/** What a connection needs from its gateway; one object shared by all connections. */
export interface ConnectionContext {
  readonly maxOutboundBytes: number;
  /** Put a connection on the next flush. */
  mark(c: WsConnection): void;
  /** End a connection for a protocol or limit reason. */
  overflow(c: WsConnection): void;
}

export class WsConnection extends WebSocket implements Peer, Flushable, Beating {
  id = '';
  app = '';
  user = '';
  since = 0;
  channels: Set<string> | null = null;
  /** Subscribe patterns from the token, or null. */
  patterns: readonly string[] | null = null;
  /** Token expiry, ms since the epoch. */
  expires = 0;
  /** Last time anything arrived from the client. */
  lastSeen = 0;
  /** Start of the current one-second frame window, and frames seen in it. */
  window = 0;
  frames = 0;
  slot = 0;
  dirty = false;
  /** False once the connection is closing: nothing more is queued or written. */
  live = false;
  ctx: ConnectionContext | null = null;
  sock: Duplex | null = null;
  #queue: Buffer[] | null = null;
  #queued = 0;

  get transport(): string {
    return 'websocket';
  }

  push(frame: Outbound): void {
    if (!this.live) return;
    const bytes = frame.bytes(wsTextFrame);
    const ctx = this.ctx!;
    this.#queued += bytes.length;
    if (this.#queued + this.sock!.writableLength > ctx.maxOutboundBytes) {
      ctx.overflow(this);
      return;
    }
    if (this.#queue === null) this.#queue = [bytes];
    else this.#queue.push(bytes);
    if (!this.dirty) ctx.mark(this);
  }

  flush(): void {
    this.dirty = false;
    const q = this.#queue;
    if (q === null || q.length === 0) return;
    const bytes = this.#queued;
    this.#queued = 0;
    if (!this.live) {
      q.length = 0;
      return;
    }
    // One write per tick: a single frame as is, several joined into one buffer.
    this.sock!.write(q.length === 1 ? q[0]! : Buffer.concat(q, bytes));
    q.length = 0;
  }

  /** Drop whatever is queued and stop accepting frames. */
  halt(): void {
    this.live = false;
    if (this.#queue !== null) this.#queue.length = 0;
    this.#queued = 0;
  }
}

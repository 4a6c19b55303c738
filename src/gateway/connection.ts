/**
 * One WebSocket connection. It *is* the `ws` socket object (a subclass), so
 * a connection costs one object, and its event handlers are shared
 * functions that read `this` rather than closures made per connection.
 *
 * While the connection catches up from the store (its inbox after
 * `welcome`, a channel's history on a resubscribe), live frames are held
 * back and client requests wait; afterwards the held frames follow, minus
 * any the catch-up already delivered, so the client sees what it missed in
 * order, then live ones, with no duplicate and no gap.
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Peer } from '../core/hub.js';
import type { FrameBatch, Outbound } from '../core/message.js';
import type { Beating } from './heartbeat.js';
import type { Flushable } from './flusher.js';
import { wsTextFrame } from './frame.js';

/** What a connection needs from its gateway; one object shared by all connections. */
/** Socket writes made and message frames they carried (frames ÷ writes is the coalescing). */
export interface WriteCounts {
  writes: number;
  frames: number;
}

export interface ConnectionContext {
  readonly maxOutboundBytes: number;
  readonly written: WriteCounts;
  /** Put a connection on the next flush. */
  mark(c: WsConnection): void;
  /** End a connection whose outbound queue is over the limit. */
  overflow(c: WsConnection): void;
}

/** State that exists only while a connection catches up (rare: kept out of the connection object). */
interface Catchup {
  /** Live frames held back. */
  readonly held: Outbound[];
  heldBytes: number;
  /** Keys of the message frames the catch-up sent. */
  readonly sent: Set<string>;
  /** Client frames that arrived meanwhile, handled afterwards, and their bytes. */
  readonly requests: string[];
  requestBytes: number;
  /** The catch-up that opens the connection has not queued `welcome` yet: nothing may go before it. */
  unwelcomed: boolean;
}

export class WsConnection extends WebSocket implements Peer, Flushable, Beating {
  id = '';
  app = '';
  user = '';
  since = 0;
  channels: string | Set<string> | null = null;
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
  /**
   * Frames for the next flush: null, one buffer (most flushes: one reply, one
   * heartbeat, one fan-out batch) or several; no array is made for one.
   */
  #queue: Buffer | Buffer[] | null = null;
  /** Bytes and frames in the queue (a batch is one buffer of several frames). */
  #queued = 0;
  #frames = 0;
  /** The socket's `writableLength` when last read (at the last flush, or at a limit check). */
  #buffered = 0;
  #catchup: Catchup | null = null;
  /** The socket is corked from the handshake until the first flush (see {@link holdHandshake}). */
  #corked = false;
  /** The ws receiver's first fragments array, kept for the connection's life (see {@link releaseFragments}). */
  #fragments: unknown[] | null = null;

  constructor(...args: unknown[]) {
    // ws constructs it as `new WebSocket(null, undefined, options)`.
    super(...(args as ConstructorParameters<typeof WebSocket>));
    // EventEmitter starts `_events` as `{ __proto__: null }`, which V8 keeps in dictionary mode:
    // with the gateway's five listeners that is about 300 bytes a connection (heap snapshot of
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

  get transport(): string {
    return 'websocket';
  }

  /** Whether the connection is catching up from the store. */
  get catchingUp(): boolean {
    return this.#catchup !== null;
  }

  /** Bytes waiting to be written: queued here and buffered in the socket. */
  get pending(): number {
    return this.#queued + (this.sock?.writableLength ?? 0);
  }

  /** A live frame: held back while catching up, else queued. */
  push(frame: Outbound): void {
    if (!this.live) return;
    const cu = this.#catchup;
    if (cu === null) return this.#enqueue(frame.bytes(wsTextFrame), 1);
    const bytes = frame.bytes(wsTextFrame).length;
    cu.heldBytes += bytes;
    if (cu.heldBytes + this.pending > this.ctx!.maxOutboundBytes) return this.ctx!.overflow(this);
    cu.held.push(frame);
  }

  /** Live frames for several connections at once: one buffer queued, or held back frame by frame while catching up. */
  pushBatch(batch: FrameBatch): void {
    if (!this.live) return;
    if (this.#catchup !== null) {
      for (const f of batch.frames) this.push(f);
      return;
    }
    this.#enqueue(batch.bytes(wsTextFrame), batch.frames.length);
  }

  /** A frame of the conversation itself (a reply, a caught-up message): queued now. */
  direct(frame: Outbound): void {
    if (!this.live) return;
    if (this.#catchup !== null && frame.key !== undefined) this.#catchup.sent.add(frame.key);
    this.#enqueue(frame.bytes(wsTextFrame), 1);
  }

  #enqueue(bytes: Buffer, frames: number): void {
    const ctx = this.ctx!;
    this.#queued += bytes.length;
    // Since the last flush the socket's buffer has only drained (but for ws's few bytes of
    // control frames): read the real figure, a stream getter that costs at a million frames
    // a second, only when the figure from then is over the limit.
    if (this.#queued + this.#buffered > ctx.maxOutboundBytes) {
      this.#buffered = this.sock!.writableLength;
      if (this.#queued + this.#buffered > ctx.maxOutboundBytes) {
        ctx.overflow(this);
        return;
      }
    }
    this.#frames += frames;
    const q = this.#queue;
    if (q === null) this.#queue = bytes;
    else if (Array.isArray(q)) q.push(bytes);
    else this.#queue = [q, bytes];
    if (!this.dirty) ctx.mark(this);
  }

  /** Start holding live frames back; `welcome` when this catch-up opens the connection (see {@link greet}). */
  beginCatchup(welcome = false): void {
    this.#catchup ??= { held: [], heldBytes: 0, sent: new Set(), requests: [], requestBytes: 0, unwelcomed: welcome };
  }

  /**
   * Queue the `welcome` frame: from now on other frames (a heartbeat ping)
   * may be sent, and the client's silence counts from here.
   */
  greet(frame: Outbound): void {
    this.direct(frame);
    if (this.#catchup !== null) this.#catchup.unwelcomed = false;
    this.lastSeen = Date.now();
  }

  /** Whether `welcome` is queued (it waits on the store's inbox read). */
  get welcomed(): boolean {
    return this.#catchup === null || !this.#catchup.unwelcomed;
  }

  /** Keep a client frame of `bytes` for after the catch-up; false if not catching up. */
  deferRequest(text: string, bytes: number): boolean {
    const cu = this.#catchup;
    if (cu === null) return false;
    cu.requests.push(text);
    cu.requestBytes += bytes;
    return true;
  }

  /** Bytes of the client frames kept for after the catch-up. */
  get deferredBytes(): number {
    return this.#catchup?.requestBytes ?? 0;
  }

  /**
   * Stop holding back: queue the held frames the catch-up did not already
   * send, and return the client frames that waited.
   */
  endCatchup(): string[] {
    const cu = this.#catchup;
    if (cu === null) return [];
    this.#catchup = null;
    for (const f of cu.held) {
      if (f.key === undefined || !cu.sent.has(f.key)) this.push(f);
    }
    return cu.requests;
  }

  /**
   * The gateway corked the socket before `ws` wrote the `101` response:
   * keep it so until the first flush, so that the response and `welcome`
   * (when the store answered within the tick) leave in one write. The
   * connection goes on the next flush now, so the `101` waits no longer
   * than that whatever the store does.
   */
  holdHandshake(): void {
    this.#corked = true;
    if (!this.dirty) this.ctx!.mark(this);
  }

  flush(): void {
    this.dirty = false;
    this.#write();
    if (this.#corked) {
      this.#corked = false;
      this.sock?.uncork();
    }
  }

  #write(): void {
    const q = this.#queue;
    if (q === null) return;
    const bytes = this.#queued;
    const frames = this.#frames;
    this.#queue = null;
    this.#queued = 0;
    this.#frames = 0;
    if (!this.live) return;
    // One write per tick: a single buffer as is, several joined into one.
    this.sock!.write(Array.isArray(q) ? Buffer.concat(q, bytes) : q);
    this.#buffered = this.sock!.writableLength;
    const w = this.ctx!.written;
    w.writes++;
    w.frames += frames;
  }

  /** Drop whatever is queued and stop accepting frames. */
  halt(): void {
    this.live = false;
    this.#queue = null;
    this.#queued = 0;
    this.#frames = 0;
    this.#catchup = null;
  }
}

/**
 * One client connection, whatever carries it: who it is (app, user, the
 * token's grant), its outbound queue with the slow-consumer limit, the
 * hold-back of live deliveries while it catches up from the store, the
 * client frames that wait meanwhile, and flood control. It encodes what it
 * is handed in its transport's encoding and writes through the
 * {@link Transport}; the protocol it speaks decides what frames mean.
 *
 * Every per-connection limit is enforced here (docs/protocol.md, "Limits"):
 * `maxFramesPerSecond` in {@link Session.receive}, `maxOutboundBytes` in
 * {@link Session.push} and friends, `maxDeferredBytes` in
 * {@link Session.defer}, `maxSubscriptionsPerConnection` in
 * {@link Session.subscribe}.
 *
 * While the session catches up (its inbox after `welcome`, a channel's
 * history on a resubscribe), live deliveries are held back and client
 * frames wait; afterwards the held deliveries follow, minus any the
 * catch-up already sent, so the client sees what it missed in order, then
 * live ones, with no duplicate and no gap.
 */
import type { Batch, Delivery, Encoding, MessageDelivery } from '../core/delivery.js';
import type { ErrorCode } from '../core/errors.js';
import type { Hub, Peer } from '../core/hub.js';
import type { Disconnect, DisconnectReason } from '../protocol/codes.js';
import type { Flushable } from './flusher.js';
import type { Beating } from './heartbeat.js';
import type { SessionLimits } from './limits.js';
import type { Transport } from './transport.js';

/**
 * `opening`: registered, `welcome` not sent yet (it waits on the store's
 * inbox read); `open`: welcomed; `closed`: ended, by either side: nothing
 * more is queued or written.
 */
export type SessionState = 'opening' | 'open' | 'closed';

/** Socket writes made and message frames they carried (frames ÷ writes is the coalescing). */
export interface WriteCounts {
  writes: number;
  frames: number;
}

/** What the protocol a session speaks does with it. */
export interface Protocol {
  /** The encoding of this protocol's frames in `transport`'s framing. */
  encoding(transport: Transport): Encoding;
  /** A session opened: greet it. */
  open(s: Session): void;
  /** A frame from the client, after flood control. */
  receive(s: Session, data: Buffer, binary: boolean): void;
  /** The session's heartbeat visit, once per interval; `resumedAt`: when the node last came back from a stall. */
  beat(s: Session, now: number, resumedAt: number): void;
  /** The node drains: tell the client to come back after `afterMs` (its close follows). */
  goingAway(s: Session, afterMs: number): void;
}

/** What a session needs from the node; one object shared by many sessions. */
export interface SessionContext {
  readonly limits: SessionLimits;
  readonly hub: Hub;
  readonly protocol: Protocol;
  readonly written: WriteCounts;
  /** Put a session on the next flush. */
  mark(s: Session): void;
  /** Close a session for `reason` (the server's decision). */
  end(s: Session, reason: DisconnectReason): void;
  /** The client broke the transport's own protocol (`detail` says how); the transport closes the connection itself. */
  broken(s: Session, code: ErrorCode, detail: string): void;
  /** The transport is gone (closed by either side). */
  gone(s: Session): void;
  /** Bytes queued for every session of the node, here and in their transports (kept by the sessions). */
  readonly outbound: { total: number };
  /** `outbound.total` went over `maxOutboundBytesTotal`: cut the largest until it is back under. */
  shed(): void;
}

/** What a token grants a session. */
export interface SessionGrant {
  readonly app: string;
  readonly user: string;
  /** Token expiry, ms since the epoch. */
  readonly expires: number;
  /** Subscribe patterns, or null for none. */
  readonly channels: readonly string[] | null;
}

/** State that exists only while a session catches up (rare: kept out of the session object). */
interface Catchup {
  /** Live deliveries held back. */
  readonly held: Delivery[];
  heldBytes: number;
  /** Keys of the message deliveries the catch-up sent. */
  readonly sent: Set<string>;
  /** Client frames that arrived meanwhile, handled afterwards, and their bytes. */
  readonly requests: string[];
  requestBytes: number;
}

/** What {@link Session.subscribe} did. */
export type SubscribeResult = 'subscribed' | 'already' | 'too_many';

export class Session implements Peer, Flushable, Beating {
  readonly id: string;
  readonly app: string;
  readonly user: string;
  /** Connect time, ms since the epoch. */
  readonly since: number;
  /** Subscribe patterns from the token, or null. */
  readonly patterns: readonly string[] | null;
  /** Token expiry, ms since the epoch. */
  readonly expires: number;
  /** The client's address (the peer, or what a trusted proxy says). */
  readonly address: string;
  readonly ctx: SessionContext;
  /** Owned by the hub (see {@link Peer.channels}). */
  channels: string | Set<string> | null = null;
  state: SessionState = 'opening';
  /** Last time anything arrived from the client. */
  lastSeen: number;
  /** Owned by the heartbeat wheel and the flusher. */
  slot = 0;
  dirty = false;
  readonly #transport: Transport;
  readonly #encoding: Encoding;
  /** Start of the current one-second frame window, and frames seen in it. */
  #window: number;
  #frames = 0;
  /**
   * Bytes for the next flush: null, one buffer (most flushes: one reply, one
   * heartbeat, one fan-out batch) or several; no array is made for one.
   */
  #queue: Buffer | Buffer[] | null = null;
  /** Bytes and frames in the queue (a batch is one buffer of several frames). */
  #queued = 0;
  #queuedFrames = 0;
  /** The transport's `buffered` when last read (at the last flush, or at a limit check). */
  #buffered = 0;
  /** What this session adds to the node's `outbound.total` (its queued and buffered bytes when last counted). */
  #counted = 0;
  #catchup: Catchup | null = null;
  /**
   * Per recovered channel, the history place its recovery read up to (see
   * {@link recoveredTo}); null on almost every session.
   */
  #marks: Map<string, number> | null = null;
  /** Not flushed yet: the first flush tells the transport (see {@link Transport.opened}). */
  #fresh = true;

  constructor(ctx: SessionContext, transport: Transport, id: string, grant: SessionGrant, now: number, address = '') {
    this.ctx = ctx;
    this.address = address;
    this.#transport = transport;
    this.#encoding = ctx.protocol.encoding(transport);
    this.id = id;
    this.app = grant.app;
    this.user = grant.user;
    this.patterns = grant.channels;
    this.expires = grant.expires;
    this.since = now;
    this.lastSeen = now;
    this.#window = now;
  }

  get transport(): string {
    return this.#transport.name;
  }

  get live(): boolean {
    return this.state !== 'closed';
  }

  /** Whether the session is catching up from the store. */
  get catchingUp(): boolean {
    return this.#catchup !== null;
  }

  /** Bytes waiting to be written: queued here and buffered in the transport. */
  get pending(): number {
    return this.#queued + this.#transport.buffered;
  }

  /** The bytes this session holds as the node-wide budget counts them (queued, and buffered when last read). */
  get outboundBytes(): number {
    return this.#counted;
  }

  /** Bring this session's share of the node's outbound total up to date. */
  #account(): void {
    const now = this.#queued + this.#buffered;
    this.ctx.outbound.total += now - this.#counted;
    this.#counted = now;
  }

  /** Whether the transport asks for a pause until it drains. */
  get needsDrain(): boolean {
    return this.#transport.needsDrain;
  }

  /** Resolves once the transport drained, or closed. */
  drained(): Promise<void> {
    return this.#transport.drained();
  }

  /** Something arrived from the client (a frame, or the transport's own keep-alive). */
  seen(now = Date.now()): void {
    this.lastSeen = now;
  }

  /** A frame from the client: flood control, then the protocol. */
  receive(data: Buffer, binary: boolean): void {
    if (this.state === 'closed') return;
    const now = Date.now();
    this.lastSeen = now;
    if (now - this.#window >= 1000) {
      this.#window = now;
      this.#frames = 0;
    }
    if (++this.#frames > this.ctx.limits.maxFramesPerSecond) return this.end('flood');
    this.ctx.protocol.receive(this, data, binary);
  }

  /** Subscribe to `channel` in the hub, within `maxSubscriptionsPerConnection`. */
  subscribe(channel: string): SubscribeResult {
    const hub = this.ctx.hub;
    if (hub.subscribed(this, channel)) return 'already';
    if (hub.subscriptionsOf(this) >= this.ctx.limits.maxSubscriptionsPerConnection) return 'too_many';
    hub.subscribe(this, channel);
    return 'subscribed';
  }

  /** Close for `reason`. */
  end(reason: DisconnectReason): void {
    this.ctx.end(this, reason);
  }

  /** A live delivery: held back while catching up, else queued. */
  push(d: Delivery): void {
    if (this.state === 'closed') return;
    if (this.#marks !== null && d.kind === 'message' && this.#recovered(d as MessageDelivery)) return;
    const cu = this.#catchup;
    const bytes = d.bytes(this.#encoding);
    if (cu === null) return this.#enqueue(bytes, 1);
    cu.heldBytes += bytes.length;
    if (cu.heldBytes + this.pending > this.ctx.limits.maxOutboundBytes) return this.end('slow_consumer');
    cu.held.push(d);
  }

  /** Live deliveries for several sessions at once: one buffer queued, or held back one by one while catching up. */
  pushBatch(batch: Batch): void {
    if (this.state === 'closed') return;
    if (this.#catchup !== null || this.#marks !== null) {
      for (const d of batch.deliveries) this.push(d);
      return;
    }
    this.#enqueue(batch.bytes(this.#encoding), batch.deliveries.length);
  }

  /** A delivery of the conversation itself (a reply, a caught-up message): queued now. */
  direct(d: Delivery): void {
    if (this.state === 'closed') return;
    if (this.#catchup !== null && d.kind === 'message') this.#catchup.sent.add((d as MessageDelivery).key);
    this.#enqueue(d.bytes(this.#encoding), 1);
  }

  #enqueue(bytes: Buffer, frames: number): void {
    const max = this.ctx.limits.maxOutboundBytes;
    this.#queued += bytes.length;
    // Since the last flush the transport's buffer has only drained (but for a few bytes of WebSocket
    // control frames): read the real figure, a stream getter that costs at a million frames a
    // second, only when the figure from then is over the limit.
    if (this.#queued + this.#buffered > max) {
      this.#buffered = this.#transport.buffered;
      if (this.#queued + this.#buffered > max) {
        this.#queued -= bytes.length;
        return this.end('slow_consumer');
      }
    }
    const out = this.ctx.outbound;
    out.total += bytes.length;
    this.#counted += bytes.length;
    if (out.total > this.ctx.limits.maxOutboundBytesTotal) {
      // The node is over its budget: the largest queues go, perhaps this one.
      this.ctx.shed();
      if (this.state === 'closed') return;
    }
    this.#queuedFrames += frames;
    const q = this.#queue;
    if (q === null) this.#queue = bytes;
    else if (Array.isArray(q)) q.push(bytes);
    else this.#queue = [q, bytes];
    if (!this.dirty) this.ctx.mark(this);
  }

  /**
   * A recovery of `channel` read its history up to place `position`: a live
   * copy of a message at or before it that arrives later (in a cluster, the
   * bus can bring a message after the store had it, and after the catch-up
   * ended) was already sent, and is dropped. The mark goes with the first
   * live message past it.
   */
  recoveredTo(channel: string, position: number): void {
    (this.#marks ??= new Map()).set(channel, position);
  }

  /** Whether `d` is a live copy of a message a recovery already sent. */
  #recovered(d: MessageDelivery): boolean {
    const marks = this.#marks!;
    const mark = d.channel === undefined || d.position === undefined ? undefined : marks.get(d.channel);
    if (mark === undefined) return false;
    if (d.position! <= mark) return true;
    marks.delete(d.channel!);
    if (marks.size === 0) this.#marks = null;
    return false;
  }

  /** Start holding live deliveries back and keeping client frames for later. */
  beginCatchup(): void {
    this.#catchup ??= { held: [], heldBytes: 0, sent: new Set(), requests: [], requestBytes: 0 };
  }

  /**
   * Queue the `welcome` frame: from now on other frames (a heartbeat ping)
   * may be sent, and the client's silence counts from here.
   */
  greet(welcome: Delivery): void {
    this.direct(welcome);
    if (this.state === 'opening') this.state = 'open';
    this.lastSeen = Date.now();
  }

  /**
   * Keep a client frame of `bytes` for after the catch-up; false if not
   * catching up. Past `maxDeferredBytes` the session is closed with
   * `request_overflow`: a client that stops reading can hold a catch-up open
   * for good, and the flood limit bounds only the frames of one second.
   */
  defer(text: string, bytes: number): boolean {
    const cu = this.#catchup;
    if (cu === null) return false;
    cu.requests.push(text);
    cu.requestBytes += bytes;
    if (cu.requestBytes > this.ctx.limits.maxDeferredBytes) this.end('request_overflow');
    return true;
  }

  /**
   * Stop holding back: queue the held deliveries the catch-up did not
   * already send, and return the client frames that waited.
   */
  endCatchup(): string[] {
    const cu = this.#catchup;
    if (cu === null) return [];
    this.#catchup = null;
    // A catch-up that ended without greeting (a failure) still lets the heartbeat judge the client.
    if (this.state === 'opening') this.state = 'open';
    for (const d of cu.held) {
      if (d.kind !== 'message' || !cu.sent.has((d as MessageDelivery).key)) this.push(d);
    }
    return cu.requests;
  }

  /** Write what is queued, with one write. */
  flush(): void {
    this.dirty = false;
    const q = this.#queue;
    if (q !== null) {
      const bytes = this.#queued;
      const frames = this.#queuedFrames;
      this.#queue = null;
      this.#queued = 0;
      this.#queuedFrames = 0;
      if (this.state !== 'closed') {
        const t = this.#transport;
        t.write(Array.isArray(q) ? Buffer.concat(q, bytes) : q);
        this.#buffered = t.buffered;
        this.#account();
        const w = this.ctx.written;
        w.writes++;
        w.frames += frames;
      }
    }
    if (this.#fresh) {
      this.#fresh = false;
      this.#transport.opened();
    }
  }

  /**
   * Drop whatever is queued and stop accepting deliveries (the session is
   * over). What its transport still buffers stays counted until it is gone
   * ({@link released}).
   */
  halt(): void {
    this.state = 'closed';
    this.#queue = null;
    this.#queued = 0;
    this.#queuedFrames = 0;
    this.#catchup = null;
    this.#account();
  }

  /** The transport is gone, and its buffer with it: nothing of this session is counted any more. */
  released(): void {
    this.#queued = 0;
    this.#buffered = 0;
    this.#account();
  }

  /** End the transport with a disconnect (after {@link halt}). */
  disconnect(d: Disconnect): void {
    this.#transport.disconnect(d);
  }

  /** Cut the transport at once (its buffer is dropped with it). */
  terminate(): void {
    this.#transport.terminate();
    this.released();
  }
}

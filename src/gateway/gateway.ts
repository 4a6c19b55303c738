/**
 * The gateway: the node's sessions, whatever transport carries them. It
 * admits a connection (token, draining, the per-app connection limit),
 * opens its session in the hub, the heartbeat wheel and the flusher, ends
 * sessions with a disconnect, and drains. Transports (src/transports/) hand
 * it their connections; protocols (src/protocol/) speak on the sessions.
 */
import type { Logger } from 'pino';
import { TokenCache, type Grant, type KeyLookup } from '../auth/tokens.js';
import { SilkError, type ErrorCode } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { Disconnects, type DisconnectReason } from '../protocol/codes.js';
import { AddressTable, type AddressLimits } from './addresses.js';
import { Pacer } from './pacer.js';
import { Flusher } from '../session/flusher.js';
import { HeartbeatWheel } from '../session/heartbeat.js';
import type { SessionLimits } from '../session/limits.js';
import { Session, type Protocol, type SessionContext, type WriteCounts } from '../session/session.js';
import type { Transport } from '../session/transport.js';

/** Limits the gateway enforces, with those of its sessions. */
export interface GatewayLimits extends SessionLimits, AddressLimits {
  readonly maxConnectionsPerApp: number;
  readonly connectsPerTurn: number;
}

/** Things the gateway reports, for metrics. */
export interface GatewayEvents {
  /** A client broke the transport's protocol (counted with the frame errors). */
  frameError(code: ErrorCode): void;
  closed(reason: ErrorCode | 'client'): void;
  /** A sampled wait from frames queued for a connection to their write, ms (see {@link Flusher}). */
  flushDelay(ms: number): void;
}

export interface GatewayOptions {
  readonly hub: Hub;
  readonly keyOf: KeyLookup;
  readonly protocol: Protocol;
  readonly nodeId: string;
  readonly heartbeatSeconds: number;
  readonly limits: GatewayLimits;
  readonly logger: Logger;
  readonly events: GatewayEvents;
}

export class Gateway {
  readonly #o: GatewayOptions;
  readonly #flusher: Flusher;
  readonly #wheel: HeartbeatWheel<Session>;
  readonly #ctx: SessionContext;
  readonly #all = new Set<Session>();
  /** Tokens already verified (see {@link TokenCache}). */
  readonly #tokens = new TokenCache();
  #seq = 0;
  #draining = false;
  #drained: (() => void) | undefined;
  readonly #pacer: Pacer;
  readonly #addresses: AddressTable;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#pacer = new Pacer(options.limits.connectsPerTurn);
    this.#addresses = new AddressTable(options.limits);
    const hub = options.hub;
    // The hub's fan-out batches are handed out at the start of every flush slice.
    this.#flusher = new Flusher({ before: () => hub.distribute(), delay: (ms) => options.events.flushDelay(ms) });
    hub.onPending(() => this.#flusher.wake());
    const protocol = options.protocol;
    this.#wheel = new HeartbeatWheel(options.heartbeatSeconds * 1000, (s, now) => protocol.beat(s, now, this.#wheel.resumedAt));
    const flusher = this.#flusher;
    this.#ctx = {
      limits: options.limits,
      hub,
      protocol,
      written: { writes: 0, frames: 0 },
      mark: (s) => flusher.mark(s),
      end: (s, reason) => this.end(s, reason),
      broken: (s, code, detail) => {
        options.events.frameError(code);
        options.logger.debug({ app: s.app, user: s.user, connection: s.id, err: detail }, 'protocol error');
        if (s.live) this.#forget(s, code);
      },
      gone: (s) => this.#gone(s),
      outbound: { total: 0 },
      shed: () => this.#shed(),
    };
  }

  /** Open sessions on this node. */
  get size(): number {
    return this.#all.size;
  }

  /** Transport writes so far and the frames they carried. */
  get written(): Readonly<WriteCounts> {
    return this.#ctx.written;
  }

  /**
   * Whether a connection with `token` may open now.
   * @throws SilkError `draining`, `token_missing`, `token_invalid`, `token_expired`, `app_not_found`, `too_many_connections`
   */
  admit(token: string | null, address: string): Grant {
    if (this.#draining) throw new SilkError('draining', 'the node is shutting down; connect elsewhere');
    const refused = this.#addresses.refuse(address, Date.now());
    if (refused === 'count') throw new SilkError('address_limit', `this address holds ${this.#o.limits.maxConnectionsPerAddress} connections`);
    if (refused === 'rate') throw new SilkError('address_limit', `this address opened ${this.#o.limits.connectsPerAddressPerSecond} connections in the last second`);
    const grant = this.#tokens.verify(token, this.#o.keyOf);
    // A transport opens the session in the same turn as it admits it (the WebSocket transport
    // completes the handshake synchronously), so a burst cannot overshoot the limit
    // (frames.test.ts checks a concurrent burst).
    if (this.#o.hub.connectionCount(grant.app) >= this.#o.limits.maxConnectionsPerApp) {
      throw new SilkError('too_many_connections', `app ${grant.app} is at its connection limit`);
    }
    return grant;
  }

  /** Open the session of an admitted connection from `address` on `transport`. */
  open(transport: Transport, grant: Grant, address: string): Session {
    const now = Date.now();
    const s = new Session(this.#ctx, transport, this.#o.nodeId + '.' + (++this.#seq).toString(36), grant, now, address);
    this.#addresses.opened(address, now);
    this.#all.add(s);
    this.#wheel.add(s);
    this.#o.hub.add(s);
    // The first flush goes out with the next slice, whatever the store does (see Transport.opened).
    this.#flusher.mark(s);
    if (this.#draining) this.end(s, 'draining');
    else this.#o.protocol.open(s);
    return s;
  }

  /**
   * Run `connect`, a transport's whole connection setup (admission,
   * handshake, session, welcome), within `connectsPerTurn` setups per turn
   * of the loop (see {@link Pacer}).
   */
  pace(connect: () => void): void {
    this.#pacer.pace(connect);
  }

  /** Connections waiting for a turn to be set up. */
  get pacing(): number {
    return this.#pacer.waiting;
  }

  /** Close a session for `reason`, with that reason's disconnect. */
  end(s: Session, reason: DisconnectReason): void {
    if (!s.live) return;
    if (reason === 'draining') {
      this.#o.hub.distribute();
      // Distributing can close it (over its outbound limit): then it is already gone.
      if (!s.live) return;
      s.flush();
    }
    this.#forget(s, reason);
    s.disconnect(Disconnects[reason]);
  }

  #forget(s: Session, reason: ErrorCode | 'client'): void {
    s.halt();
    this.#o.hub.remove(s);
    this.#wheel.delete(s);
    this.#o.events.closed(reason);
    this.#o.logger.debug({ app: s.app, user: s.user, connection: s.id, reason }, 'connection closed');
  }

  /** Bytes queued for all sessions, here and in their transports (see `maxOutboundBytesTotal`). */
  get outboundBytes(): number {
    return this.#ctx.outbound.total;
  }

  /** Sessions cut to keep the node within `maxOutboundBytesTotal`. */
  shed = 0;

  /**
   * The node holds more outbound bytes than `maxOutboundBytesTotal`: cut the
   * sessions holding the most until it is back under nine tenths of it (so
   * the next pass is at least a tenth of the budget away). Sessions already
   * closing go first; the others are closed with `slow_consumer` and cut at
   * once, since a client that does not read would not read the close frame
   * either, and only a cut socket gives its buffer back.
   */
  #shed(): void {
    const out = this.#ctx.outbound;
    const target = this.#o.limits.maxOutboundBytesTotal * 0.9;
    const by = [...this.#all].filter((s) => s.outboundBytes > 0);
    // Closing ones first (their buffers are dead weight), then the largest.
    by.sort((a, b) => (a.live === b.live ? b.outboundBytes - a.outboundBytes : a.live ? 1 : -1));
    for (const s of by) {
      if (out.total <= target) break;
      if (s.live) {
        this.shed++;
        this.#forget(s, 'slow_consumer');
        s.disconnect(Disconnects.slow_consumer);
      }
      s.terminate();
    }
  }

  /** The transport is gone. */
  #gone(s: Session): void {
    if (s.live) this.#forget(s, 'client');
    s.released();
    if (this.#all.has(s)) this.#addresses.closed(s.address, Date.now());
    this.#all.delete(s);
    if (this.#all.size === 0) this.#drained?.();
  }

  /** Close every session of `user` in `app` with `disconnected`; returns how many. */
  disconnectUser(app: string, user: string): number {
    const devices = this.#o.hub.devices(app, user);
    for (const p of devices) this.end(p as Session, 'disconnected');
    return devices.length;
  }

  /**
   * Stop admitting connections, send every client "going away", and
   * resolve once all have closed or `timeoutMs` passed (the rest are cut).
   * With `spreadMs` > 0, each client is first told when to come back: the
   * i-th of n after `spreadMs × (i + u) / n` with u random in [0, 1), so
   * the reconnects land evenly over the window instead of all at once.
   */
  async drain(timeoutMs: number, spreadMs = 0): Promise<void> {
    this.#draining = true;
    const n = this.#all.size;
    let i = 0;
    for (const s of this.#all) {
      if (spreadMs > 0 && s.live) this.#o.protocol.goingAway(s, Math.floor((spreadMs * (i + Math.random())) / n));
      i++;
      this.end(s, 'draining');
    }
    if (this.#all.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.close();
  }

  /** Cut every connection at once and stop the timers. */
  close(): void {
    this.#draining = true;
    this.#wheel.stop();
    for (const s of this.#all) {
      if (s.live) this.#forget(s, 'draining');
      s.terminate();
    }
    this.#all.clear();
  }
}

/**
 * The WebSocket gateway: authenticates upgrades, runs the protocol on each
 * connection, and enforces the per-connection limits.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { TokenCache, type Grant, type KeyLookup } from '../auth/tokens.js';
import { allows, isValidChannel } from '../core/channels.js';
import { SilkError, type ErrorCode } from '../core/errors.js';
import { Disconnects, type DisconnectReason } from '../protocol/codes.js';
import type { Hub } from '../core/hub.js';
import type { Inbox } from '../services/inbox.js';
import type { InboxSelector, Store } from '../core/store.js';
import { Catchups } from './catchup.js';
import { WsConnection, type ConnectionContext, type WriteCounts } from './connection.js';
import { Flusher } from './flusher.js';
import { HeartbeatWheel } from './heartbeat.js';
import {
  errorFrame,
  FrameError,
  isPlainPong,
  parseClientFrame,
  PING,
  PONG,
  replyFrame,
  type ClientFrame,
} from './protocol.js';

/** The route devices connect to. */
export const CONNECT_PATH = '/v1/connect';

/** Limits the gateway enforces. */
export interface GatewayLimits {
  readonly maxFrameBytes: number;
  readonly maxSubscriptionsPerConnection: number;
  readonly maxFramesPerSecond: number;
  readonly maxOutboundBytes: number;
  readonly maxDeferredBytes: number;
  readonly maxConnectionsPerApp: number;
  readonly inboxPageSize: number;
}

/** Things the gateway reports, for metrics. */
export interface GatewayEvents {
  frameError(code: ErrorCode): void;
  closed(reason: ErrorCode | 'client'): void;
  opened(): void;
  storeError(): void;
  /** A sampled wait from frames queued for a connection to their write, ms (see {@link Flusher}). */
  flushDelay(ms: number): void;
}

export interface GatewayOptions {
  readonly hub: Hub;
  readonly store: Store;
  readonly inbox: Inbox;
  readonly keyOf: KeyLookup;
  readonly nodeId: string;
  readonly heartbeatSeconds: number;
  readonly limits: GatewayLimits;
  readonly logger: Logger;
  readonly events: GatewayEvents;
}

/** Write a JSON error response on a socket that has not been upgraded, then close it. */
function refuse(socket: Duplex, err: SilkError): void {
  const body = JSON.stringify(err.toJSON());
  const reason = err.status === 401 ? 'Unauthorized' : err.status === 404 ? 'Not Found' : 'Error';
  socket.end(
    `HTTP/1.1 ${err.status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function ignore(): void {}

// Shared event handlers: `this` is the connection, no closure per socket.
function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  (this as WsConnection).releaseFragments();
  gatewayOf(this).receive(this as WsConnection, data, isBinary);
}
function onSeen(this: WebSocket): void {
  (this as WsConnection).lastSeen = Date.now();
}
function onClose(this: WebSocket): void {
  gatewayOf(this).closed(this as WsConnection);
}
function onError(this: WebSocket, err: Error & { code?: string }): void {
  // ws closes the connection itself after a protocol error (1002, 1007, 1009).
  gatewayOf(this).protocolError(this as WsConnection, err);
}
function gatewayOf(ws: WebSocket): WebSocketGateway {
  return ((ws as WsConnection).ctx as GatewayContext).gateway;
}

class GatewayContext implements ConnectionContext {
  readonly gateway: WebSocketGateway;
  readonly maxOutboundBytes: number;
  readonly written: WriteCounts = { writes: 0, frames: 0 };
  readonly #flusher: Flusher;

  constructor(gateway: WebSocketGateway, flusher: Flusher, maxOutboundBytes: number) {
    this.gateway = gateway;
    this.#flusher = flusher;
    this.maxOutboundBytes = maxOutboundBytes;
  }

  mark(c: WsConnection): void {
    this.#flusher.mark(c);
  }

  overflow(c: WsConnection): void {
    this.gateway.end(c, 'slow_consumer');
  }
}

export class WebSocketGateway {
  readonly #o: GatewayOptions;
  readonly #wss: WebSocketServer;
  readonly #flusher: Flusher;
  readonly #wheel: HeartbeatWheel<WsConnection>;
  readonly #ctx: GatewayContext;
  readonly #all = new Set<WsConnection>();
  /** Tokens already verified (see {@link TokenCache}). */
  readonly #tokens = new TokenCache();
  readonly #heartbeatMs: number;
  readonly #catchups: Catchups;
  #seq = 0;
  #draining = false;
  #drained: (() => void) | undefined;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#heartbeatMs = options.heartbeatSeconds * 1000;
    // The hub's fan-out batches are handed out at the start of every flush slice.
    const hub = options.hub;
    this.#flusher = new Flusher({ before: () => hub.distribute(), delay: (ms) => options.events.flushDelay(ms) });
    hub.onPending(() => this.#flusher.wake());
    this.#ctx = new GatewayContext(this, this.#flusher, options.limits.maxOutboundBytes);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.limits.maxFrameBytes,
      WebSocket: WsConnection,
    });
    this.#wheel = new HeartbeatWheel(this.#heartbeatMs, (c, now) => this.#beat(c, now));
    this.#catchups = new Catchups({
      store: options.store,
      heartbeatSeconds: options.heartbeatSeconds,
      inboxPageSize: options.limits.inboxPageSize,
      maxOutboundBytes: options.limits.maxOutboundBytes,
      logger: options.logger,
      done: (c) => this.#resume(c),
      storeError: () => options.events.storeError(),
    });
  }

  /** Open connections on this node. */
  get size(): number {
    return this.#all.size;
  }

  /** Socket writes so far and the frames they carried. */
  get written(): Readonly<WriteCounts> {
    return this.#ctx.written;
  }

  /** Handle an HTTP upgrade request for {@link CONNECT_PATH}. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignore);
    try {
      this.#upgrade(req, socket, head);
    } catch (err) {
      this.#o.logger.error({ err }, 'upgrade failed');
      if (!socket.destroyed) refuse(socket, new SilkError('internal', 'upgrade failed'));
    }
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#draining) return refuse(socket, new SilkError('draining', 'the node is shutting down; connect elsewhere'));
    const path = req.url ?? '';
    const q = path.indexOf('?');
    let grant: Grant;
    try {
      grant = this.#tokens.verify(q < 0 ? null : new URLSearchParams(path.slice(q + 1)).get('token'), this.#o.keyOf);
    } catch (err) {
      if (err instanceof SilkError) return refuse(socket, err);
      throw err;
    }
    const app = grant.app;
    // With no verifyClient, ws completes a handshake (and #open puts the
    // connection in the hub's count) or refuses it before handleUpgrade
    // returns, so no upgrade is half done here and a burst cannot overshoot
    // the limit (frames.test.ts checks a concurrent burst).
    if (this.#o.hub.connectionCount(app) >= this.#o.limits.maxConnectionsPerApp) {
      return refuse(socket, new SilkError('too_many_connections', `app ${app} is at its connection limit`));
    }
    if (socket.destroyed) return;
    // Held until the connection's first flush: the `101` and `welcome` in one write (WsConnection.holdHandshake).
    // ws ends the socket on a handshake it refuses, and `end()` uncorks.
    socket.cork();
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws as WsConnection, socket, grant));
  }

  #open(c: WsConnection, socket: Duplex, grant: Grant): void {
    const now = Date.now();
    c.id = this.#o.nodeId + '.' + (++this.#seq).toString(36);
    c.app = grant.app;
    c.user = grant.user;
    c.since = now;
    c.patterns = grant.channels;
    c.expires = grant.expires;
    c.lastSeen = now;
    c.window = now;
    c.ctx = this.#ctx;
    c.sock = socket;
    c.live = true;
    c.holdHandshake();
    c.keepFragments();
    c.on('message', onMessage);
    c.on('pong', onSeen);
    c.on('ping', onSeen);
    c.on('close', onClose);
    c.on('error', onError);
    this.#all.add(c);
    this.#wheel.add(c);
    this.#o.hub.add(c);
    this.#o.events.opened();
    if (this.#draining) return this.end(c, 'draining');
    this.#catchups.welcome(c);
  }

  /** A catch-up ended: handle the client frames that waited, until one starts another catch-up. */
  #resume(c: WsConnection): void {
    // Live frames still in the hub's fan-out batches reach the connection while it is held back,
    // so the ones the catch-up already sent are dropped rather than sent twice.
    this.#o.hub.distribute();
    if (!c.live) return;
    const waiting = c.endCatchup();
    for (let i = 0; i < waiting.length; i++) {
      if (!c.live) return;
      if (c.catchingUp) {
        for (; i < waiting.length; i++) c.deferRequest(waiting[i]!, Buffer.byteLength(waiting[i]!));
        return;
      }
      this.#handle(c, waiting[i]!);
    }
  }

  /** A frame from a client. */
  receive(c: WsConnection, data: RawData, isBinary: boolean): void {
    if (!c.live) return;
    const now = Date.now();
    c.lastSeen = now;
    if (now - c.window >= 1000) {
      c.window = now;
      c.frames = 0;
    }
    if (++c.frames > this.#o.limits.maxFramesPerSecond) return this.end(c, 'flood');
    if (isBinary) return this.#reject(c, new FrameError('invalid_request', 'binary frames are not part of protocol v1'));
    // A pong has nothing to do but `lastSeen`, even while catching up.
    if (Buffer.isBuffer(data) && isPlainPong(data)) return;
    const text = data.toString();
    // While catching up from the store, requests wait their turn, up to maxDeferredBytes of them:
    // a client that stops reading can hold a catch-up open for good, and the flood limit bounds
    // only the frames of one second.
    if (c.deferRequest(text, Buffer.isBuffer(data) ? data.length : Buffer.byteLength(text))) {
      if (c.deferredBytes > this.#o.limits.maxDeferredBytes) this.end(c, 'request_overflow');
      return;
    }
    this.#handle(c, text);
  }

  #handle(c: WsConnection, text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      return this.#reject(c, err as FrameError);
    }
    switch (frame.type) {
      case 'subscribe':
        return this.#subscribe(c, frame.id, frame.channel, frame.since);
      case 'unsubscribe':
        if (!isValidChannel(frame.channel)) {
          return this.#reject(c, new FrameError('invalid_channel', 'invalid channel name', frame.id));
        }
        this.#o.hub.unsubscribe(c, frame.channel);
        return c.direct(replyFrame(frame.id));
      case 'ack':
        return this.#ack(c, frame.id, frame.which);
      case 'inbox':
        return this.#catchups.inbox(c, frame.id, frame.after, frame.limit);
      case 'ping':
        return c.direct(frame.id === undefined ? PONG : replyFrame(frame.id));
      case 'pong':
        return;
    }
  }

  #ack(c: WsConnection, id: number, which: InboxSelector): void {
    // Every device of the user learns the new count (this one too, in order with its messages).
    this.#o.inbox
      .ack(c.app, c.user, which, (r) => c.direct(replyFrame(id, { removed: r.removed, unread: r.unread })))
      .catch((err: SilkError) => c.direct(errorFrame(err.code, err.message, id)));
  }

  #subscribe(c: WsConnection, id: number, channel: unknown, since: string | undefined): void {
    if (!isValidChannel(channel)) return this.#reject(c, new FrameError('invalid_channel', 'invalid channel name', id));
    if (!allows(c.patterns, channel)) {
      return this.#reject(c, new FrameError('forbidden_channel', `the token does not allow channel ${channel}`, id));
    }
    const hub = this.#o.hub;
    if (!hub.subscribed(c, channel) && hub.subscriptionsOf(c) >= this.#o.limits.maxSubscriptionsPerConnection) {
      return this.#reject(
        c,
        new FrameError('too_many_subscriptions', `at most ${this.#o.limits.maxSubscriptionsPerConnection} subscriptions`, id),
      );
    }
    hub.subscribe(c, channel);
    if (since === undefined) return c.direct(replyFrame(id));
    this.#catchups.recover(c, id, channel, since);
  }

  #reject(c: WsConnection, err: FrameError): void {
    this.#o.events.frameError(err.code);
    c.direct(errorFrame(err.code, err.message, err.requestId));
  }

  /** ws reported a protocol error; it closes the connection itself. */
  protocolError(c: WsConnection, err: Error & { code?: string }): void {
    const code: ErrorCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'payload_too_large' : 'invalid_request';
    this.#o.events.frameError(code);
    this.#o.logger.debug({ app: c.app, user: c.user, connection: c.id, err: err.message }, 'protocol error');
    if (c.live) this.#forget(c, code);
  }

  #beat(c: WsConnection, now: number): void {
    if (!c.live) return;
    // Before `welcome` the client has had nothing to answer: the wait is the store's inbox read,
    // which its own timeout bounds (a Redis command gives up after 3 s).
    if (!c.welcomed) return;
    if (now >= c.expires) return this.end(c, 'token_expired');
    // A live client answers each ping at once; 1.5 intervals of silence leaves room for slow links.
    // Silence while this process was stalled is not the client's: it counts from the resume.
    if (now - Math.max(c.lastSeen, this.#wheel.resumedAt) > this.#heartbeatMs * 1.5) return this.end(c, 'heartbeat_timeout');
    // Not held back by a catch-up as messages are: a ping the client never saw could not be answered.
    c.direct(PING);
  }

  /** Close a connection for `reason`, with that reason's close code. */
  end(c: WsConnection, reason: DisconnectReason): void {
    if (!c.live) return;
    if (reason === 'draining') {
      this.#o.hub.distribute();
      // Distributing can close it (over its outbound limit): then it is already gone.
      if (!c.live) return;
      c.flush();
    }
    this.#forget(c, reason);
    const d = Disconnects[reason];
    c.close(d.code, d.reason);
  }

  #forget(c: WsConnection, reason: ErrorCode | 'client'): void {
    c.halt();
    this.#o.hub.remove(c);
    this.#wheel.delete(c);
    this.#o.events.closed(reason);
    this.#o.logger.debug({ app: c.app, user: c.user, connection: c.id, reason }, 'connection closed');
  }

  /** The socket is gone. */
  closed(c: WsConnection): void {
    if (c.live) this.#forget(c, 'client');
    this.#all.delete(c);
    c.sock = null;
    if (this.#all.size === 0) this.#drained?.();
  }

  /** Close every connection of `user` in `app` with code `disconnected`; returns how many. */
  disconnectUser(app: string, user: string): number {
    const devices = this.#o.hub.devices(app, user);
    for (const p of devices) this.end(p as WsConnection, 'disconnected');
    return devices.length;
  }

  /**
   * Stop accepting connections, send every client "going away", and resolve
   * once all have closed or `timeoutMs` passed (the rest are cut).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    for (const c of this.#all) this.end(c, 'draining');
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
    for (const c of this.#all) {
      if (c.live) this.#forget(c, 'draining');
      c.terminate();
    }
    this.#all.clear();
    this.#wss.close();
  }
}

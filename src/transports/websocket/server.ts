/**
 * The WebSocket transport's server side: upgrades on {@link CONNECT_PATH},
 * admitted by the gateway (token, draining, connection limit) before the
 * handshake, then a session on each connection. Everything `ws`-specific
 * stays in this folder.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Grant } from '../../auth/tokens.js';
import { SilkError } from '../../core/errors.js';
import { clientAddress } from '../../gateway/addresses.js';
import type { Gateway } from '../../gateway/gateway.js';
import { WsConnection } from './connection.js';

/** The route devices connect to. */
export const CONNECT_PATH = '/v1/connect';

export interface WebSocketTransportOptions {
  /** null on a node without the gateway role: upgrades are refused with `not_found`. */
  readonly gateway: Gateway | null;
  /** Largest inbound message (ws closes with 1009 above it). */
  readonly maxFrameBytes: number;
  /** Peers whose `X-Forwarded-For` names the client (config `trustedProxies`). */
  readonly trustedProxies: ReadonlySet<string>;
  readonly logger: Logger;
}

/** Write a JSON error response on a socket that has not been upgraded, then close it. */
function refuse(socket: Duplex, err: SilkError): void {
  const body = JSON.stringify(err.toJSON());
  const reason = err.status === 401 ? 'Unauthorized' : err.status === 404 ? 'Not Found' : err.status === 429 ? 'Too Many Requests' : 'Error';
  socket.end(
    `HTTP/1.1 ${err.status} ${reason}\r\nContent-Type: application/json\r\n` +
      (err.status === 429 ? 'Retry-After: 1\r\n' : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function ignore(): void {}

// Shared event handlers: `this` is the connection, no closure per socket.
function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const c = this as WsConnection;
  c.releaseFragments();
  // With the default binaryType every message is one Buffer, fragments joined.
  c.session!.receive(data as Buffer, isBinary);
}
function onSeen(this: WebSocket): void {
  (this as WsConnection).session!.seen();
}
function onClose(this: WebSocket): void {
  const c = this as WsConnection;
  c.session!.ctx.gone(c.session!);
  c.sock = null;
}
function onError(this: WebSocket, err: Error & { code?: string }): void {
  // ws closes the connection itself after a protocol error (1002, 1007, 1009).
  const s = (this as WsConnection).session!;
  s.ctx.broken(s, err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'payload_too_large' : 'invalid_request', err.message);
}

export class WebSocketTransport {
  readonly #o: WebSocketTransportOptions;
  readonly #wss: WebSocketServer;

  constructor(options: WebSocketTransportOptions) {
    this.#o = options;
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes,
      WebSocket: WsConnection,
    });
  }

  /** Handle an HTTP upgrade request (any path: only {@link CONNECT_PATH} is served). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', ignore);
    const run = (): void => {
      // A client that gave up while it waited for its turn.
      if (socket.destroyed) return;
      try {
        this.#upgrade(req, socket, head);
      } catch (err) {
        this.#o.logger.error({ err }, 'upgrade failed');
        if (!socket.destroyed) refuse(socket, new SilkError('internal', 'upgrade failed'));
      }
    };
    // Paced by the gateway (connectsPerTurn); without a gateway role it is refused at once.
    if (this.#o.gateway === null) run();
    else this.#o.gateway.pace(run);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const gateway = this.#o.gateway;
    if (path !== CONNECT_PATH || gateway === null) {
      return refuse(socket, new SilkError('not_found', gateway === null ? 'this node has no gateway role' : `no WebSocket route ${path}`));
    }
    const address = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], this.#o.trustedProxies);
    let grant: Grant;
    try {
      grant = gateway.admit(q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('token'), address);
    } catch (err) {
      if (err instanceof SilkError) {
        // The code only: the URL carries the token.
        this.#o.logger.debug({ code: err.code, status: err.status, remote: req.socket.remoteAddress }, 'upgrade refused');
        return refuse(socket, err);
      }
      throw err;
    }
    if (socket.destroyed) return;
    // Held until the session's first flush: the `101` and `welcome` in one write (WsConnection.holdHandshake).
    // ws ends the socket on a handshake it refuses, and `end()` uncorks.
    socket.cork();
    // With no verifyClient, ws completes the handshake (and the gateway opens the session, counting
    // it against the app's connection limit) or refuses it before handleUpgrade returns.
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws as WsConnection, socket, gateway, grant, address));
  }

  #open(c: WsConnection, socket: Duplex, gateway: Gateway, grant: Grant, address: string): void {
    c.holdHandshake(socket);
    c.keepFragments();
    c.on('message', onMessage);
    c.on('pong', onSeen);
    c.on('ping', onSeen);
    c.on('close', onClose);
    c.on('error', onError);
    c.session = gateway.open(c, grant, address);
  }

  close(): void {
    this.#wss.close();
  }
}

/**
 * The server API for app backends and the operator endpoints, on plain
 * `node:http` (it is on the publish hot path). docs/http-api.md is the
 * reference.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isValidChannel } from '../core/channels.js';
import { SilkError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { Bus, Ids, Presence } from '../core/ports.js';
import { validatePublish, type PublishLimits } from '../core/publish.js';
import { isValidUser } from '../core/users.js';
import { RateLimiter } from './rate-limit.js';

/** An app as the API sees it. */
export interface ApiApp {
  readonly id: string;
  readonly apiKey: string;
}

export interface ApiLimits extends PublishLimits {
  readonly maxBodyBytes: number;
  readonly apiRequestsPerSecond: number;
}

export interface ApiOptions {
  readonly apps: ReadonlyMap<string, ApiApp>;
  readonly hub: Hub;
  readonly bus: Bus;
  readonly ids: Ids;
  readonly presence: Presence;
  readonly limits: ApiLimits;
  readonly logger: Logger;
  /** Whether the node accepts traffic (false while draining). */
  readonly ready: () => boolean;
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
  /** Close every connection of a user; returns how many were closed. */
  readonly disconnectUser: (app: string, user: string) => number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, app: ApiApp, param: string) => Promise<void>;

interface Route {
  readonly method: 'GET' | 'POST';
  /** Path after `/v1/apps/{app}`: `messages`, `stats`, `users/:`, `users/:/disconnect`, `channels/:`. */
  readonly shape: string;
  readonly handle: Handler;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function failure(res: ServerResponse, err: SilkError): void {
  if (err.status === 429) res.setHeader('retry-after', '1');
  json(res, err.status, err.toJSON());
}

function keyMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Read a JSON body of at most `limit` bytes. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) throw new SilkError('payload_too_large', `the body is over limits.maxBodyBytes (${limit} bytes)`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new SilkError('payload_too_large', `the body is over limits.maxBodyBytes (${limit} bytes)`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks, size).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new SilkError('invalid_json', 'the body is not valid JSON');
  }
}

/** Split a path into decoded segments. */
function segments(path: string): string[] {
  const parts = path.split('/').slice(1);
  try {
    return parts.map(decodeURIComponent);
  } catch {
    throw new SilkError('invalid_request', 'the path has a malformed percent-encoding');
  }
}

export class HttpApi {
  readonly #o: ApiOptions;
  readonly #limiter: RateLimiter;
  readonly #routes: Route[];

  constructor(options: ApiOptions) {
    this.#o = options;
    this.#limiter = new RateLimiter(options.limits.apiRequestsPerSecond);
    this.#routes = [
      { method: 'POST', shape: 'messages', handle: (q, s, a) => this.#publish(q, s, a) },
      { method: 'GET', shape: 'stats', handle: (_q, s, a) => this.#stats(s, a) },
      { method: 'GET', shape: 'users/:', handle: (_q, s, a, p) => this.#user(s, a, p) },
      { method: 'POST', shape: 'users/:/disconnect', handle: (_q, s, a, p) => this.#disconnect(s, a, p) },
      { method: 'GET', shape: 'channels/:', handle: (_q, s, a, p) => this.#channel(s, a, p) },
    ];
  }

  /** The request listener. Never throws; every failure is an error response. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#route(req, res).catch((err: unknown) => {
      if (!(err instanceof SilkError)) {
        this.#o.logger.error({ err, url: req.url }, 'request failed');
        err = new SilkError('internal', 'internal error');
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // After a refused body, close rather than read the rest of it.
      if ((err as SilkError).code === 'payload_too_large') res.setHeader('connection', 'close');
      failure(res, err as SilkError);
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    switch (path) {
      case '/healthz':
        return this.#only(req, res, () => json(res, 200, { status: 'ok' }));
      case '/readyz':
        return this.#only(req, res, () =>
          this.#o.ready()
            ? json(res, 200, { status: 'ready' })
            : failure(res, new SilkError('draining', 'the node is draining')),
        );
      case '/metrics': {
        this.#only(req, res, () => undefined);
        const m = await this.#o.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
    }
    const seg = segments(path);
    if (seg[0] !== 'v1' || seg[1] !== 'apps' || seg.length < 4) throw new SilkError('not_found', `no route ${path}`);
    const rest = seg.slice(3);
    let param = '';
    const shape = rest
      .map((s, i) => {
        if (i === 1 && (rest[0] === 'users' || rest[0] === 'channels')) {
          param = s;
          return ':';
        }
        return s;
      })
      .join('/');
    const matches = this.#routes.filter((r) => r.shape === shape);
    if (matches.length === 0) throw new SilkError('not_found', `no route ${path}`);
    // HEAD is GET without the body (node:http drops it).
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const route = matches.find((r) => r.method === method);
    if (route === undefined) {
      res.setHeader('allow', matches.map((r) => r.method).join(', '));
      throw new SilkError('method_not_allowed', `${req.method} is not allowed on ${path}`);
    }
    const app = this.#o.apps.get(seg[2]!);
    if (app === undefined) throw new SilkError('app_not_found', `no app ${JSON.stringify(seg[2])}`);
    this.#authorize(req, app);
    if (!this.#limiter.take(app.id)) {
      throw new SilkError('rate_limited', `app ${app.id} is over ${this.#o.limits.apiRequestsPerSecond} requests/s`);
    }
    await route.handle(req, res, app, param);
  }

  /** Run `then` for GET (or HEAD); anything else is 405 with `Allow` (RFC 9110 §15.5.6). */
  #only(req: IncomingMessage, res: ServerResponse, then: () => void): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new SilkError('method_not_allowed', `${req.method} is not allowed here`);
    }
    then();
  }

  #authorize(req: IncomingMessage, app: ApiApp): void {
    const h = req.headers.authorization;
    if (h === undefined || !h.startsWith('Bearer ')) {
      throw new SilkError('unauthorized', 'send the app API key as `Authorization: Bearer <apiKey>`');
    }
    if (!keyMatches(h.slice(7).trim(), app.apiKey)) throw new SilkError('unauthorized', `wrong API key for app ${app.id}`);
  }

  async #publish(req: IncomingMessage, res: ServerResponse, app: ApiApp): Promise<void> {
    const body = await readJson(req, this.#o.limits.maxBodyBytes);
    const p = validatePublish(body, this.#o.limits);
    const id = this.#o.ids.next().toString();
    this.#o.hub.countIn(app.id);
    this.#o.bus.publish(
      p.event === undefined
        ? { app: app.id, id, target: p.target, data: p.data }
        : { app: app.id, id, target: p.target, data: p.data, event: p.event },
    );
    json(res, 202, { id });
  }

  async #stats(res: ServerResponse, app: ApiApp): Promise<void> {
    json(res, 200, { app: app.id, ...(await this.#o.presence.stats(app.id)) });
  }

  async #user(res: ServerResponse, app: ApiApp, user: string): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    const devices = await this.#o.presence.devices(app.id, user);
    json(res, 200, { user, online: devices.length > 0, devices });
  }

  async #disconnect(res: ServerResponse, app: ApiApp, user: string): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    json(res, 200, { user, disconnected: this.#o.disconnectUser(app.id, user) });
  }

  async #channel(res: ServerResponse, app: ApiApp, channel: string): Promise<void> {
    if (!isValidChannel(channel)) throw new SilkError('invalid_channel', 'invalid channel name');
    json(res, 200, { channel, subscribers: await this.#o.presence.subscribers(app.id, channel) });
  }
}

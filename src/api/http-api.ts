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
import type { Envelope } from '../core/message.js';
import type { Bus, Ids, Presence } from '../core/ports.js';
import { validatePublish, type PublishLimits, type PublishRequest } from '../core/publish.js';
import { isMessageId, type InboxSelector, type Store, type StoredMessage } from '../core/store.js';
import { isValidUser } from '../core/users.js';
import { RateLimiter } from './rate-limit.js';

/** An app as the API sees it. */
export interface ApiApp {
  readonly id: string;
  readonly apiKey: string;
}

export interface ApiLimits extends PublishLimits {
  readonly maxBodyBytes: number;
  readonly maxBatchMessages: number;
  readonly apiRequestsPerSecond: number;
  readonly inboxPageSize: number;
}

/** Largest inbox page the API returns, and most ids one acknowledgement names. */
export const MAX_INBOX_PAGE = 1000;

export interface ApiOptions {
  readonly apps: ReadonlyMap<string, ApiApp>;
  readonly hub: Hub;
  readonly bus: Bus;
  readonly ids: Ids;
  readonly store: Store;
  readonly presence: Presence;
  readonly limits: ApiLimits;
  readonly logger: Logger;
  /** Why the node does not take traffic now (draining, Redis unreachable), or null when it does. */
  readonly ready: () => SilkError | null;
  /** Whether this node has the api role (the `/v1/apps` routes). */
  readonly serveApps: boolean;
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
  /** Counts for metrics. */
  readonly events: { stored(evicted: number): void; storeError(): void };
  /** Files served as they are on GET and HEAD, by path: the SDK bundle, the demo page. */
  readonly files?: ReadonlyMap<string, StaticFile>;
  /** The development token endpoint `POST /v1/dev/token`; absent: the route does not exist. */
  readonly dev?: DevTokens;
}

/** A file the API serves as it is. */
export interface StaticFile {
  readonly contentType: string;
  readonly body: Buffer;
}

/** Mints demo tokens for `POST /v1/dev/token` (development only: it hands out the app's API key). */
export interface DevTokens {
  /** Answer only clients on the loopback interface. */
  readonly loopbackOnly: boolean;
  /** The first app's id, used when the request names none. */
  readonly defaultApp: string;
  /** @throws SilkError `app_not_found` */
  mint(app: string, user: string, channels: readonly string[] | undefined): Promise<{ token: string; apiKey: string }>;
}

/** Whether a peer address is on the loopback interface (127.0.0.0/8 or ::1). */
function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

type Handler = (req: IncomingMessage, res: ServerResponse, app: ApiApp, params: readonly string[], query: URLSearchParams) => Promise<void>;

interface Route {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Path after `/v1/apps/{app}`, with `:` for a parameter, such as `users/:/inbox`. */
  readonly shape: readonly string[];
  readonly handle: Handler;
}

/** The parameters of `seg` if it has the route's shape, else undefined. */
function match(shape: readonly string[], seg: readonly string[]): string[] | undefined {
  if (shape.length !== seg.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === ':') params.push(seg[i]!);
    else if (shape[i] !== seg[i]) return undefined;
  }
  return params;
}

/** A stored message as the API shows it; `data` is spliced in as the JSON text it is. */
function messageJson(m: StoredMessage): string {
  let s = '{"id":"' + m.id + '"';
  if (m.event !== undefined) s += ',"event":' + JSON.stringify(m.event);
  s += ',"data":' + m.data + ',"publishedAt":"' + new Date(m.at).toISOString() + '"';
  if (m.expires !== undefined) s += ',"expiresAt":"' + new Date(m.expires).toISOString() + '"';
  return s + '}';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The bus envelope of a checked message. */
function envelope(app: string, id: string, p: PublishRequest, unread: Record<string, number> | undefined): Envelope {
  return {
    app,
    id,
    target: p.target,
    data: p.data,
    ...(p.event !== undefined ? { event: p.event } : {}),
    ...(p.durable ? { durable: true } : {}),
    ...(unread !== undefined ? { unread } : {}),
  };
}

/** Which inbox messages an acknowledgement body names: `{"ids": [...]}` or `{"upTo": "…"}`. */
function selector(body: unknown): InboxSelector {
  if (!isObject(body)) throw new SilkError('invalid_request', 'the body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (k !== 'ids' && k !== 'upTo') throw new SilkError('invalid_request', `unknown field \`${k}\``);
  }
  const { ids, upTo } = body;
  if ((ids === undefined) === (upTo === undefined)) throw new SilkError('invalid_request', 'give exactly one of `ids` and `upTo`');
  if (upTo !== undefined) {
    if (!isMessageId(upTo)) throw new SilkError('invalid_request', '`upTo` must be a message id (a decimal string)');
    return { upTo };
  }
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_INBOX_PAGE || !ids.every(isMessageId)) {
    throw new SilkError('invalid_request', `\`ids\` must be an array of 1–${MAX_INBOX_PAGE} message ids (decimal strings)`);
  }
  return { ids };
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
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new SilkError('payload_too_large', `the body is over limits.maxBodyBytes (${limit} bytes)`));
  // Plain events rather than `for await`: the async iterator costs a promise per chunk and its own
  // end-of-stream watcher, a few µs of every publish request.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        done();
        reject(new SilkError('payload_too_large', `the body is over limits.maxBodyBytes (${limit} bytes)`));
        // Read no further (as an abandoned iterator does): the rest of a large body is not worth receiving.
        req.destroy();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      done();
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new SilkError('invalid_json', 'the body is not valid JSON'));
      }
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      done();
      reject(new Error('the request was aborted before its body was read'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
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
    const route = (method: Route['method'], shape: string, handle: Handler): Route => ({ method, shape: shape.split('/'), handle });
    this.#routes = [
      route('POST', 'messages', (q, s, a) => this.#publish(q, s, a)),
      route('POST', 'messages/batch', (q, s, a) => this.#publishBatch(q, s, a)),
      route('GET', 'stats', (_q, s, a) => this.#stats(s, a)),
      route('GET', 'users/:', (_q, s, a, p) => this.#user(s, a, p[0]!)),
      route('POST', 'users/:/disconnect', (_q, s, a, p) => this.#disconnect(s, a, p[0]!)),
      route('GET', 'users/:/inbox', (_q, s, a, p, query) => this.#inbox(s, a, p[0]!, query)),
      route('POST', 'users/:/inbox/ack', async (q, s, a, p) => this.#ack(s, a, p[0]!, selector(await readJson(q, this.#o.limits.maxBodyBytes)))),
      route('DELETE', 'users/:/inbox', (_q, s, a, p) => this.#ack(s, a, p[0]!, { all: true })),
      route('DELETE', 'users/:/inbox/:', (_q, s, a, p) => {
        if (!isMessageId(p[1])) throw new SilkError('invalid_request', 'the message id must be a decimal string');
        return this.#ack(s, a, p[0]!, { ids: [p[1]] });
      }),
      route('GET', 'channels/:', (_q, s, a, p) => this.#channel(s, a, p[0]!)),
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
        return this.#only(req, res, () => {
          const why = this.#o.ready();
          if (why === null) json(res, 200, { status: 'ready' });
          else failure(res, why);
        });
      case '/v1/nodes': {
        this.#only(req, res, () => undefined);
        json(res, 200, { nodes: await this.#presence(() => this.#o.presence.nodes()) });
        return;
      }
      case '/metrics': {
        this.#only(req, res, () => undefined);
        const m = await this.#o.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
      case '/v1/dev/token':
        if (this.#o.dev !== undefined) return this.#devToken(req, res, this.#o.dev);
        break;
    }
    const file = this.#o.files?.get(path);
    if (file !== undefined) {
      return this.#only(req, res, () => {
        res.writeHead(200, {
          'content-type': file.contentType,
          'content-length': file.body.length,
          'cache-control': 'no-cache',
        });
        res.end(file.body);
      });
    }
    const seg = segments(path);
    if (seg[0] !== 'v1' || seg[1] !== 'apps' || seg.length < 4) throw new SilkError('not_found', `no route ${path}`);
    if (!this.#o.serveApps) throw new SilkError('not_found', 'this node has no api role: send server API requests to an api node');
    const rest = seg.slice(3);
    const matches: { route: Route; params: string[] }[] = [];
    for (const r of this.#routes) {
      const params = match(r.shape, rest);
      if (params !== undefined) matches.push({ route: r, params });
    }
    if (matches.length === 0) throw new SilkError('not_found', `no route ${path}`);
    // HEAD is GET without the body (node:http drops it).
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    // A literal segment beats a parameter (`inbox/ack` before `inbox/:`): fewer parameters first.
    const found = matches.filter((m) => m.route.method === method).sort((a, b) => a.params.length - b.params.length)[0];
    if (found === undefined) {
      res.setHeader('allow', [...new Set(matches.map((m) => m.route.method))].join(', '));
      throw new SilkError('method_not_allowed', `${req.method} is not allowed on ${path}`);
    }
    const app = this.#o.apps.get(seg[2]!);
    if (app === undefined) throw new SilkError('app_not_found', `no app ${JSON.stringify(seg[2])}`);
    this.#authorize(req, app);
    if (!this.#limiter.take(app.id)) {
      throw new SilkError('rate_limited', `app ${app.id} is over ${this.#o.limits.apiRequestsPerSecond} requests/s`);
    }
    await found.route.handle(req, res, app, found.params, new URLSearchParams(q === -1 ? '' : url.slice(q + 1)));
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
    const r = await this.#send(app.id, p);
    if (r.duplicate) res.setHeader('idempotent-replayed', 'true');
    json(res, 202, { id: r.id });
  }

  /** Many messages in one request: all checked first (one bad message fails the batch), then sent in order. */
  async #publishBatch(req: IncomingMessage, res: ServerResponse, app: ApiApp): Promise<void> {
    const body = await readJson(req, this.#o.limits.maxBodyBytes);
    if (!isObject(body) || Object.keys(body).some((k) => k !== 'messages')) {
      throw new SilkError('invalid_request', 'the body must be {"messages": [ … ]}');
    }
    const list = body['messages'];
    const max = this.#o.limits.maxBatchMessages;
    if (!Array.isArray(list) || list.length === 0 || list.length > max) {
      throw new SilkError('invalid_request', `\`messages\` must be an array of 1–${max} messages`);
    }
    const checked = list.map((m, i) => {
      try {
        return validatePublish(m, this.#o.limits);
      } catch (err) {
        if (err instanceof SilkError) throw new SilkError(err.code, `messages[${i}]: ${err.message}`);
        throw err;
      }
    });
    await this.#o.ids.ensure(checked.length);
    if (checked.every((p) => !p.durable && p.idempotencyKey === undefined)) {
      // Nothing to store: every message goes on the bus now, in order, without a promise each.
      json(res, 202, { ids: checked.map((p) => this.#sendNow(app.id, p)), duplicates: 0 });
      return;
    }
    // Ids are taken in order as each send starts; the sends run together (durable ones share group commits).
    // A key the batch already used is a repeat of that message, whatever the store (not a publish racing it).
    const byKey = new Map<string, Promise<{ id: string; duplicate: boolean }>>();
    const results = await Promise.all(
      checked.map((p) => {
        const key = p.idempotencyKey;
        if (key === undefined) return this.#send(app.id, p);
        const first = byKey.get(key);
        if (first !== undefined) return first.then((r) => ({ id: r.id, duplicate: true }));
        const sent = this.#send(app.id, p);
        byKey.set(key, sent);
        return sent;
      }),
    );
    json(res, 202, { ids: results.map((r) => r.id), duplicates: results.filter((r) => r.duplicate).length });
  }

  /** An ephemeral message without an idempotency key: an id from those in hand, then the bus. */
  #sendNow(app: string, p: PublishRequest): string {
    const id = this.#o.ids.next().toString();
    this.#o.hub.countIn(app);
    this.#o.bus.publish(envelope(app, id, p, undefined));
    return id;
  }

  /**
   * Give a checked message an id, store it when it is durable or carries an
   * idempotency key (the answer waits for the store), and put it on the bus.
   */
  async #send(app: string, p: PublishRequest): Promise<{ id: string; duplicate: boolean }> {
    await this.#o.ids.ensure(1);
    if (!p.durable && p.idempotencyKey === undefined) return { id: this.#sendNow(app, p), duplicate: false };
    const id = this.#o.ids.next().toString();
    const at = Date.now();
    const message: StoredMessage = {
      id,
      data: p.data,
      at,
      ...(p.event !== undefined ? { event: p.event } : {}),
      ...(p.ttl !== undefined ? { expires: at + p.ttl * 1000 } : {}),
    };
    const t = p.target;
    let w;
    try {
      w = await this.#o.store.write({
        app,
        message,
        ...(p.durable && 'users' in t ? { users: t.users } : {}),
        ...(p.durable && 'channels' in t ? { channels: t.channels, publish: envelope(app, id, p, undefined) } : {}),
        ...(p.idempotencyKey !== undefined ? { idempotencyKey: p.idempotencyKey } : {}),
      });
    } catch (err) {
      if (err instanceof SilkError && err.code === 'idempotency_key_in_use') throw err;
      this.#o.events.storeError();
      this.#o.logger.warn({ err, app, id }, 'store write failed');
      throw new SilkError('store_unavailable', 'the message was not stored; retry');
    }
    if (w.duplicate) return { id: w.id, duplicate: true };
    if (p.durable) this.#o.events.stored(w.evicted);
    this.#o.hub.countIn(app);
    // The store put it on the bus together with the history append (Redis): not again.
    if (w.published === true) return { id: w.id, duplicate: false };
    this.#o.bus.publish(envelope(app, w.id, p, w.unread.size > 0 ? Object.fromEntries(w.unread) : undefined));
    return { id: w.id, duplicate: false };
  }

  async #devToken(req: IncomingMessage, res: ServerResponse, dev: DevTokens): Promise<void> {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      throw new SilkError('method_not_allowed', `${req.method} is not allowed here`);
    }
    if (dev.loopbackOnly && !isLoopback(req.socket.remoteAddress)) {
      throw new SilkError('not_found', 'the dev token endpoint answers only on loopback (start with --dev to open it)');
    }
    const body = await readJson(req, 4096);
    if (!isObject(body)) throw new SilkError('invalid_request', 'the body must be a JSON object');
    for (const k of Object.keys(body)) {
      if (k !== 'user' && k !== 'channels' && k !== 'app') throw new SilkError('invalid_request', `unknown field \`${k}\``);
    }
    const { user, channels } = body;
    const app = body['app'] ?? dev.defaultApp;
    if (!isValidUser(user)) throw new SilkError('invalid_request', '`user` must be a user id');
    if (typeof app !== 'string') throw new SilkError('invalid_request', '`app` must be an app id');
    if (channels !== undefined && (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 201))) {
      throw new SilkError('invalid_request', '`channels` must be an array of channel patterns');
    }
    const minted = await dev.mint(app, user, channels as string[] | undefined);
    json(res, 200, { app, user, token: minted.token, apiKey: minted.apiKey });
  }

  async #inbox(res: ServerResponse, app: ApiApp, user: string, query: URLSearchParams): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    const after = query.get('after') ?? undefined;
    if (after !== undefined && !isMessageId(after)) throw new SilkError('invalid_request', '`after` must be a message id');
    const limitText = query.get('limit');
    const limit = limitText === null ? this.#o.limits.inboxPageSize : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INBOX_PAGE) {
      throw new SilkError('invalid_request', `\`limit\` must be an integer from 1 to ${MAX_INBOX_PAGE}`);
    }
    let page;
    try {
      page = await this.#o.store.inbox(app.id, user, after, limit);
    } catch (err) {
      this.#o.events.storeError();
      this.#o.logger.warn({ err, app: app.id, user }, 'inbox read failed');
      throw new SilkError('store_unavailable', 'the inbox could not be read; retry');
    }
    const text =
      '{"user":' + JSON.stringify(user) + ',"messages":[' + page.messages.map(messageJson).join(',') + '],"unread":' +
      page.unread + ',"more":' + page.more + '}';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async #ack(res: ServerResponse, app: ApiApp, user: string, which: InboxSelector): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    let r;
    try {
      r = await this.#o.store.ack(app.id, user, which);
    } catch (err) {
      this.#o.events.storeError();
      this.#o.logger.warn({ err, app: app.id, user }, 'inbox ack failed');
      throw new SilkError('store_unavailable', 'the acknowledgement was not stored; retry');
    }
    if (r.removed > 0) this.#o.bus.publish({ kind: 'unread', app: app.id, user, count: r.unread });
    json(res, 200, { user, removed: r.removed, unread: r.unread });
  }

  /** A presence read; when the shared store (Redis) cannot answer, `store_unavailable` (503) rather than a 500. */
  async #presence<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      if (err instanceof SilkError) throw err;
      this.#o.logger.warn({ err }, 'presence read failed');
      throw new SilkError('store_unavailable', 'presence could not be read from the cluster store; retry');
    }
  }

  async #stats(res: ServerResponse, app: ApiApp): Promise<void> {
    json(res, 200, { app: app.id, ...(await this.#presence(() => this.#o.presence.stats(app.id))) });
  }

  async #user(res: ServerResponse, app: ApiApp, user: string): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    const devices = await this.#presence(() => this.#o.presence.devices(app.id, user));
    json(res, 200, { user, online: devices.length > 0, devices });
  }

  async #disconnect(res: ServerResponse, app: ApiApp, user: string): Promise<void> {
    if (!isValidUser(user)) throw new SilkError('invalid_request', 'invalid user id');
    // Every node holding a device of the user closes it; the answer counts the devices found.
    const devices = await this.#presence(() => this.#o.presence.devices(app.id, user));
    this.#o.bus.publish({ kind: 'disconnect', app: app.id, user });
    json(res, 200, { user, disconnected: devices.length });
  }

  async #channel(res: ServerResponse, app: ApiApp, channel: string): Promise<void> {
    if (!isValidChannel(channel)) throw new SilkError('invalid_channel', 'invalid channel name');
    json(res, 200, { channel, subscribers: await this.#presence(() => this.#o.presence.subscribers(app.id, channel)) });
  }
}

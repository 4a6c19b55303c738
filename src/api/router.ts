/**
 * The HTTP API's router, on plain `node:http` (it is on the publish hot
 * path): fixed paths (health, metrics, static files, the dev token route)
 * and the app routes under `/v1/apps/{app}/…`, which it authenticates with
 * the app's API key and rate-limits per app before the route runs. Routes
 * live in `routes/`, one file per concern; docs/http-api.md is the
 * reference.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { App, Apps } from '../core/apps.js';
import { SilkError } from '../core/errors.js';
import { failure, segments } from './http.js';
import { RateLimiter } from './rate-limit.js';

/** A request to an app route, after authentication. */
export interface AppRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly app: App;
  /** The `:` segments of the route's shape, decoded. */
  readonly params: readonly string[];
  readonly query: URLSearchParams;
}

/** A route under `/v1/apps/{app}/`. */
export interface AppRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path after `/v1/apps/{app}/`, with `:` for a parameter, such as `users/:/inbox`. */
  readonly shape: string;
  handle(r: AppRequest): Promise<void> | void;
}

/** A fixed path (no app, no API key): `/healthz`, `/metrics`, a static file. */
export type PathHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface RouterOptions {
  readonly apps: Apps;
  readonly apiRequestsPerSecond: number;
  readonly logger: Logger;
  /** Fixed paths, matched exactly before the app routes. */
  readonly paths: ReadonlyMap<string, PathHandler>;
  /** The app routes; null when this node has no api role (they answer `not_found`). */
  readonly routes: readonly AppRoute[] | null;
}

interface CompiledRoute {
  readonly route: AppRoute;
  readonly shape: readonly string[];
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

/**
 * Whether `given` is `expected`, in a time that depends on neither: the
 * digests are compared (same length, whatever the keys'), in constant time.
 */
function keyMatches(given: string, expected: string): boolean {
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());
}

export class HttpApi {
  readonly #o: RouterOptions;
  readonly #limiter: RateLimiter;
  readonly #routes: readonly CompiledRoute[] | null;

  constructor(options: RouterOptions) {
    this.#o = options;
    this.#limiter = new RateLimiter(options.apiRequestsPerSecond);
    this.#routes = options.routes?.map((route) => ({ route, shape: route.shape.split('/') })) ?? null;
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
      const e = err as SilkError;
      // The code and the path only: never a header (the API key), never the body.
      this.#o.logger.debug({ code: e.code, status: e.status, method: req.method, path: (req.url ?? '/').split('?')[0] }, 'request refused');
      // After a refused body, close rather than read the rest of it.
      if (e.code === 'payload_too_large') res.setHeader('connection', 'close');
      failure(res, e);
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const fixed = this.#o.paths.get(path);
    if (fixed !== undefined) return fixed(req, res);
    const seg = segments(path);
    if (seg[0] !== 'v1' || seg[1] !== 'apps' || seg.length < 4) throw new SilkError('not_found', `no route ${path}`);
    if (this.#routes === null) throw new SilkError('not_found', 'this node has no api role: send server API requests to an api node');
    const rest = seg.slice(3);
    const matches: { route: AppRoute; params: string[] }[] = [];
    for (const r of this.#routes) {
      const params = match(r.shape, rest);
      if (params !== undefined) matches.push({ route: r.route, params });
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
      throw new SilkError('rate_limited', `app ${app.id} is over ${this.#o.apiRequestsPerSecond} requests/s`);
    }
    await found.route.handle({ req, res, app, params: found.params, query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)) });
  }

  #authorize(req: IncomingMessage, app: App): void {
    const h = req.headers.authorization;
    if (h === undefined || !h.startsWith('Bearer ')) {
      throw new SilkError('unauthorized', 'send the app API key as `Authorization: Bearer <apiKey>`');
    }
    const given = h.slice(7).trim();
    // Both compared, whichever matches, so the time taken does not say which key it was.
    const current = keyMatches(given, app.apiKey);
    const previous = app.previousApiKey !== undefined && keyMatches(given, app.previousApiKey);
    if (!current && !previous) throw new SilkError('unauthorized', `wrong API key for app ${app.id}`);
  }
}

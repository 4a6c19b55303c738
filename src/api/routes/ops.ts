/** Operator endpoints on every node: `GET /healthz`, `GET /readyz`, `GET /metrics`. */
import type { SilkError } from '../../core/errors.js';
import { failure, json, onlyGet } from '../http.js';
import type { PathHandler } from '../router.js';

export interface OpsOptions {
  /** Why the node does not take traffic now (draining, Redis unreachable), or null when it does. */
  readonly ready: () => SilkError | null;
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
}

export function opsPaths(o: OpsOptions): [string, PathHandler][] {
  return [
    [
      '/healthz',
      (req, res) => {
        onlyGet(req, res);
        json(res, 200, { status: 'ok' });
      },
    ],
    [
      '/readyz',
      (req, res) => {
        onlyGet(req, res);
        const why = o.ready();
        if (why === null) json(res, 200, { status: 'ready' });
        else failure(res, why);
      },
    ],
    [
      '/metrics',
      async (req, res) => {
        onlyGet(req, res);
        const m = await o.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
      },
    ],
  ];
}

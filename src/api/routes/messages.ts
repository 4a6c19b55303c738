/**
 * `POST /v1/apps/{app}/messages` and `…/messages/batch`: the publish routes,
 * on the {@link Publisher} service.
 */
import { SilkError } from '../../core/errors.js';
import type { Publisher } from '../../services/publisher.js';
import { isObject, json, readJson } from '../http.js';
import type { AppRoute } from '../router.js';

export function messageRoutes(publisher: Publisher, limits: { readonly maxBodyBytes: number }): AppRoute[] {
  return [
    {
      method: 'POST',
      shape: 'messages',
      async handle({ req, res, app }) {
        const p = publisher.validate(await readJson(req, limits.maxBodyBytes));
        const r = await publisher.send(app.id, p);
        if (r.duplicate) res.setHeader('idempotent-replayed', 'true');
        json(res, 202, { id: r.id });
      },
    },
    {
      method: 'POST',
      shape: 'messages/batch',
      // Every message is checked first (one bad message fails the batch), then all are sent in order.
      async handle({ req, res, app }) {
        const body = await readJson(req, limits.maxBodyBytes);
        if (!isObject(body) || Object.keys(body).some((k) => k !== 'messages')) {
          throw new SilkError('invalid_request', 'the body must be {"messages": [ … ]}');
        }
        const r = await publisher.sendBatch(app.id, publisher.validateBatch(body['messages']));
        json(res, 202, r);
      },
    },
  ];
}

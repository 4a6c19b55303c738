/**
 * Who is connected, from the Presence port: `GET …/stats`, `GET …/users/{user}`,
 * `POST …/users/{user}/disconnect`, `GET …/channels/{channel}`, and
 * `GET /v1/nodes`.
 */
import { isValidChannel } from '../../core/channels.js';
import { SilkError } from '../../core/errors.js';
import type { Bus, Presence } from '../../core/ports.js';
import { isValidUser } from '../../core/users.js';
import type { Logger } from 'pino';
import { json, onlyGet } from '../http.js';
import type { AppRoute, PathHandler } from '../router.js';

/** A presence read; when the shared store (Redis) cannot answer, `store_unavailable` (503) rather than a 500. */
function reader(logger: Logger): <T>(read: () => Promise<T>) => Promise<T> {
  return async (read) => {
    try {
      return await read();
    } catch (err) {
      if (err instanceof SilkError) throw err;
      logger.warn({ err }, 'presence read failed');
      throw new SilkError('store_unavailable', 'presence could not be read from the cluster store; retry');
    }
  };
}

function user(params: readonly string[]): string {
  const u = params[0];
  if (!isValidUser(u)) throw new SilkError('invalid_request', 'invalid user id');
  return u;
}

export function presenceRoutes(presence: Presence, bus: Bus, logger: Logger): AppRoute[] {
  const read = reader(logger);
  return [
    {
      method: 'GET',
      shape: 'stats',
      async handle({ res, app }) {
        json(res, 200, { app: app.id, ...(await read(() => presence.stats(app.id))) });
      },
    },
    {
      method: 'GET',
      shape: 'users/:',
      async handle({ res, app, params }) {
        const u = user(params);
        const devices = await read(() => presence.devices(app.id, u));
        json(res, 200, { user: u, online: devices.length > 0, devices });
      },
    },
    {
      method: 'POST',
      shape: 'users/:/disconnect',
      async handle({ res, app, params }) {
        const u = user(params);
        // Every node holding a device of the user closes it; the answer counts the devices found.
        const devices = await read(() => presence.devices(app.id, u));
        bus.publish({ kind: 'disconnect', app: app.id, user: u });
        json(res, 200, { user: u, disconnected: devices.length });
      },
    },
    {
      method: 'GET',
      shape: 'channels/:',
      async handle({ res, app, params }) {
        const channel = params[0];
        if (!isValidChannel(channel)) throw new SilkError('invalid_channel', 'invalid channel name');
        json(res, 200, { channel, subscribers: await read(() => presence.subscribers(app.id, channel)) });
      },
    },
  ];
}

/** `GET /v1/nodes`: the nodes of the deployment. */
export function nodesPath(presence: Presence, logger: Logger): PathHandler {
  const read = reader(logger);
  return async (req, res) => {
    onlyGet(req, res);
    json(res, 200, { nodes: await read(() => presence.nodes()) });
  };
}

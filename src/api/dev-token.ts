/**
 * `POST /v1/dev/token`: demo tokens for the demo page, with the implicit
 * `default` app (loopback clients only) or in `--dev` mode (everyone). It
 * hands out the app's API key: development only.
 */
import type { Apps } from '../core/apps.js';
import { SilkError } from '../core/errors.js';
import { DEV_TOKEN_BODY_BYTES, MAX_PATTERN_LENGTH } from '../core/limits.js';
import { isValidUser } from '../core/users.js';
import { signToken } from '../auth/tokens.js';
import { isLoopback, isObject, json, onlyMethods, readJson } from './http.js';
import type { PathHandler } from './router.js';

/** How long a demo token is valid, seconds. */
const DEV_TOKEN_TTL_SECONDS = 3600;

export interface DevTokenOptions {
  readonly apps: Apps;
  /** Answer only clients on the loopback interface. */
  readonly loopbackOnly: boolean;
}

export function devTokenPath(o: DevTokenOptions): [string, PathHandler] {
  return [
    '/v1/dev/token',
    async (req, res) => {
      onlyMethods(req, res, ['POST']);
      if (o.loopbackOnly && !isLoopback(req.socket.remoteAddress)) {
        throw new SilkError('not_found', 'the dev token endpoint answers only on loopback (start with --dev to open it)');
      }
      const body = await readJson(req, DEV_TOKEN_BODY_BYTES);
      if (!isObject(body)) throw new SilkError('invalid_request', 'the body must be a JSON object');
      for (const k of Object.keys(body)) {
        if (k !== 'user' && k !== 'channels' && k !== 'app') throw new SilkError('invalid_request', `unknown field \`${k}\``);
      }
      const { user, channels } = body;
      // The first app's id, when the request names none.
      const appId = body['app'] ?? o.apps.list()[0]?.id;
      if (!isValidUser(user)) throw new SilkError('invalid_request', '`user` must be a user id');
      if (typeof appId !== 'string') throw new SilkError('invalid_request', '`app` must be an app id');
      if (
        channels !== undefined &&
        (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string' && c.length > 0 && c.length <= MAX_PATTERN_LENGTH))
      ) {
        throw new SilkError('invalid_request', '`channels` must be an array of channel patterns');
      }
      const app = o.apps.get(appId);
      if (app === undefined) throw new SilkError('app_not_found', `no app ${JSON.stringify(appId)}`);
      const token = await signToken({
        app: app.id,
        user,
        secret: app.secret,
        ttlSeconds: DEV_TOKEN_TTL_SECONDS,
        ...(channels !== undefined ? { channels: channels as string[] } : {}),
      });
      json(res, 200, { app: app.id, user, token, apiKey: app.apiKey });
    },
  ];
}

/**
 * The inbox routes under `/v1/apps/{app}/users/{user}/inbox`: read a page,
 * acknowledge, delete; on the {@link Inbox} service.
 */
import { MAX_ACK_IDS, MAX_INBOX_PAGE } from '../../core/limits.js';
import { SilkError } from '../../core/errors.js';
import { isMessageId, type InboxSelector, type StoredMessage } from '../../core/store.js';
import { isValidUser } from '../../core/users.js';
import type { Inbox } from '../../services/inbox.js';
import { isObject, json, jsonText, readJson } from '../http.js';
import type { AppRoute } from '../router.js';

/** A stored message as the API shows it; `data` is spliced in as the JSON text it is. */
function messageJson(m: StoredMessage): string {
  let s = '{"id":"' + m.id + '"';
  if (m.event !== undefined) s += ',"event":' + JSON.stringify(m.event);
  s += ',"data":' + m.data + ',"publishedAt":"' + new Date(m.at).toISOString() + '"';
  if (m.expires !== undefined) s += ',"expiresAt":"' + new Date(m.expires).toISOString() + '"';
  return s + '}';
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
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_ACK_IDS || !ids.every(isMessageId)) {
    throw new SilkError('invalid_request', `\`ids\` must be an array of 1–${MAX_ACK_IDS} message ids (decimal strings)`);
  }
  return { ids };
}

function user(params: readonly string[]): string {
  const u = params[0];
  if (!isValidUser(u)) throw new SilkError('invalid_request', 'invalid user id');
  return u;
}

export function inboxRoutes(inbox: Inbox, limits: { readonly maxBodyBytes: number; readonly inboxPageSize: number }): AppRoute[] {
  const ack = async (res: AppRouteArgs['res'], app: string, u: string, which: InboxSelector): Promise<void> => {
    const r = await inbox.ack(app, u, which);
    json(res, 200, { user: u, removed: r.removed, unread: r.unread });
  };
  return [
    {
      method: 'GET',
      shape: 'users/:/inbox',
      async handle({ res, app, params, query }) {
        const u = user(params);
        const after = query.get('after') ?? undefined;
        if (after !== undefined && !isMessageId(after)) throw new SilkError('invalid_request', '`after` must be a message id');
        const limitText = query.get('limit');
        const limit = limitText === null ? limits.inboxPageSize : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INBOX_PAGE) {
          throw new SilkError('invalid_request', `\`limit\` must be an integer from 1 to ${MAX_INBOX_PAGE}`);
        }
        const page = await inbox.page(app.id, u, after, limit);
        jsonText(
          res,
          200,
          '{"user":' + JSON.stringify(u) + ',"messages":[' + page.messages.map(messageJson).join(',') + '],"unread":' + page.unread + ',"more":' + page.more + '}',
        );
      },
    },
    {
      method: 'POST',
      shape: 'users/:/inbox/ack',
      async handle({ req, res, app, params }) {
        const which = selector(await readJson(req, limits.maxBodyBytes));
        await ack(res, app.id, user(params), which);
      },
    },
    {
      method: 'DELETE',
      shape: 'users/:/inbox',
      handle: ({ res, app, params }) => ack(res, app.id, user(params), { all: true }),
    },
    {
      method: 'DELETE',
      shape: 'users/:/inbox/:',
      handle({ res, app, params }) {
        const id = params[1];
        if (!isMessageId(id)) throw new SilkError('invalid_request', 'the message id must be a decimal string');
        return ack(res, app.id, user(params), { ids: [id] });
      },
    },
  ];
}

type AppRouteArgs = Parameters<AppRoute['handle']>[0];

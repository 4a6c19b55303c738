/**
 * Connection tokens: JWTs signed HS256 with the app's secret.
 *
 * Claims: `app` (app id), `sub` (user id), `exp` (required), optional
 * `channels` (patterns the connection may subscribe to, see core/channels).
 */
import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import type { Apps } from '../core/apps.js';
import { SilkError } from '../core/errors.js';
import { MAX_CHANNEL_PATTERNS, MAX_PATTERN_LENGTH, MAX_TOKEN_LENGTH, MAX_USER_LENGTH } from '../core/limits.js';
import { isValidUser } from '../core/users.js';

/** What a verified token grants. */
export interface Grant {
  readonly app: string;
  readonly user: string;
  /** Expiry, ms since the epoch. */
  readonly expires: number;
  /** Subscribe patterns, or null for none. */
  readonly channels: readonly string[] | null;
}


/**
 * An app's HS256 key, ready to verify with: made once per app secret (the
 * verifier holds the key object, so nothing is derived per token).
 * Verification is synchronous: a connection's token costs no promise.
 */
export class VerifyKey {
  readonly #verify: (token: string) => Record<string, unknown>;
  /** The secret being rotated out: a token whose signature the current one refuses may still carry it. */
  readonly #previous: ((token: string) => Record<string, unknown>) | undefined;

  constructor(secret: string, previous?: string) {
    const verifier = (s: string) => createVerifier({ key: Buffer.from(s, 'utf8'), algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] });
    this.#verify = verifier(secret);
    this.#previous = previous === undefined ? undefined : verifier(previous);
  }

  /** The token's claims once its signature, `alg`, `exp`, `nbf` and `crit` check out; throws fast-jwt's TokenError. */
  claims(token: string): Record<string, unknown> {
    try {
      return this.#verify(token);
    } catch (err) {
      // Only a signature the current secret refuses is tried with the previous one: anything else is the token's own fault.
      if (this.#previous === undefined || !(err instanceof TokenError) || err.code !== TokenError.codes.invalidSignature) throw err;
      return this.#previous(token);
    }
  }
}

/** Looks up an app's signing key; undefined for unknown apps. */
export type KeyLookup = (app: string) => VerifyKey | undefined;

/** An app secret (and the one it replaces, during a rotation) as a {@link VerifyKey}. */
export function verifyKey(secret: string, previous?: string): VerifyKey {
  return new VerifyKey(secret, previous);
}

/**
 * The signing keys of the apps in `apps`, read per call: a key is made once
 * per app secret (with its previous one) and the same object is returned
 * while they stay (which {@link TokenCache} relies on), a new one once
 * either changes (so a token verified with a previous secret that was since
 * removed is verified again, and refused), none once the app is gone.
 */
export function keysOf(apps: Apps): KeyLookup {
  const made = new Map<string, { secret: string; previous: string | undefined; key: VerifyKey }>();
  return (id) => {
    const app = apps.get(id);
    if (app === undefined) {
      made.delete(id);
      return undefined;
    }
    let k = made.get(id);
    if (k === undefined || k.secret !== app.secret || k.previous !== app.previousSecret) {
      k = { secret: app.secret, previous: app.previousSecret, key: new VerifyKey(app.secret, app.previousSecret) };
      made.set(id, k);
    }
    return k.key;
  };
}

/**
 * Verify a connection token.
 * @throws SilkError `token_missing`, `token_invalid`, `token_expired` or `app_not_found`
 */
export function verifyToken(token: string | null | undefined, keyOf: KeyLookup): Grant {
  if (token === null || token === undefined || token === '') throw new SilkError('token_missing', 'no token given');
  if (token.length > MAX_TOKEN_LENGTH) throw new SilkError('token_invalid', 'the token is too long');
  // The `app` claim picks the key; the key's verifier then checks the whole token.
  const a = token.indexOf('.');
  const b = token.indexOf('.', a + 1);
  let app: unknown;
  try {
    if (a < 0 || b < 0) throw new Error('not three parts');
    app = (JSON.parse(Buffer.from(token.slice(a + 1, b), 'base64url').toString()) as Record<string, unknown>)['app'];
  } catch {
    throw new SilkError('token_invalid', 'the token is not a JWT');
  }
  if (typeof app !== 'string') throw new SilkError('token_invalid', 'the token has no `app` claim');
  const key = keyOf(app);
  if (key === undefined) throw new SilkError('app_not_found', `no app ${JSON.stringify(app)}`);
  let payload;
  try {
    payload = key.claims(token);
  } catch (err) {
    if (err instanceof TokenError && err.code === TokenError.codes.expired) throw new SilkError('token_expired', 'the token has expired');
    const why = err instanceof TokenError ? err.code : 'unreadable';
    throw new SilkError('token_invalid', `the token does not verify (${why})`);
  }
  const user = payload['sub'];
  if (!isValidUser(user)) throw new SilkError('token_invalid', `\`sub\` must be a user id of 1–${MAX_USER_LENGTH} characters`);
  const channels = payload['channels'];
  if (channels !== undefined) {
    if (
      !Array.isArray(channels) ||
      channels.length > MAX_CHANNEL_PATTERNS ||
      !channels.every((c) => typeof c === 'string' && c.length > 0 && c.length <= MAX_PATTERN_LENGTH)
    ) {
      throw new SilkError('token_invalid', `\`channels\` must be an array of at most ${MAX_CHANNEL_PATTERNS} patterns`);
    }
  }
  return {
    app,
    user,
    expires: (payload['exp'] as number) * 1000,
    channels: channels === undefined ? null : (channels as string[]),
  };
}

/**
 * Verified tokens, remembered so that the same token presented again (a
 * reconnect storm after a restart, a page reload) skips the HMAC and the
 * claim checks. Bounded: at most `max` entries, in two generations of up to
 * half each; when the newer one fills, the older is dropped whole. (Evicting
 * the oldest entry of one Map one at a time scans the deleted slots at the
 * front of V8's hash table: several µs per connection in a storm.) A hit is
 * honoured only while the token is unexpired and the app still signs with
 * the very key it was verified with; anything else is verified afresh.
 */
export class TokenCache {
  readonly #half: number;
  #young = new Map<string, CachedGrant>();
  #old = new Map<string, CachedGrant>();

  constructor(max = 10_000) {
    this.#half = Math.floor(max / 2);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /** {@link verifyToken}, with the cache in front of it. */
  verify(token: string | null | undefined, keyOf: KeyLookup, now = Date.now()): Grant {
    if (typeof token === 'string') {
      const hit = this.#young.get(token) ?? this.#old.get(token);
      if (hit !== undefined) {
        if (hit.grant.expires <= now) {
          this.#forget(token);
          throw new SilkError('token_expired', 'the token has expired');
        }
        if (keyOf(hit.grant.app) === hit.key) return hit.grant;
        this.#forget(token);
      }
    }
    const grant = verifyToken(token, keyOf);
    const key = keyOf(grant.app);
    if (this.#half > 0 && key !== undefined && grant.expires > now) {
      if (this.#young.size >= this.#half) {
        this.#old = this.#young;
        this.#young = new Map();
      }
      // A copy of the token: the string handed in is often a slice of the request URL, which it would keep alive.
      this.#young.set(Buffer.from(token as string).toString(), { grant, key });
    }
    return grant;
  }

  #forget(token: string): void {
    this.#young.delete(token);
    this.#old.delete(token);
  }
}

interface CachedGrant {
  readonly grant: Grant;
  readonly key: VerifyKey;
}

/** Parse a duration such as `30s`, `15m`, `1h`, `7d` (or plain seconds) into seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text);
  if (m === null) throw new SilkError('invalid_request', `bad duration ${JSON.stringify(text)}: use 30s, 15m, 1h or 7d`);
  const n = Number(m[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

/** Mint a connection token (for `silk token`, tests and app backends written in JS). */
export async function signToken(opts: {
  app: string;
  user: string;
  secret: string;
  ttlSeconds: number;
  channels?: readonly string[];
}): Promise<string> {
  const claims: Record<string, unknown> = { app: opts.app, sub: opts.user, exp: Math.floor(Date.now() / 1000) + opts.ttlSeconds };
  if (opts.channels !== undefined) claims['channels'] = opts.channels;
  return createSigner({ key: opts.secret, algorithm: 'HS256' })(claims);
}

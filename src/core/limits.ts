/**
 * The bounds that are not settings: part of the wire protocol and the HTTP
 * API, so every node of a deployment agrees on them and clients can rely on
 * them. The configurable limits are `Limits` in src/config.ts;
 * docs/configuration.md lists both ("Limits", "Fixed bounds").
 */

/** Longest user id. */
export const MAX_USER_LENGTH = 200;
/** Longest channel name. */
export const MAX_CHANNEL_LENGTH = 200;
/** Longest channel pattern in a token's `channels` claim (a name and a trailing `*`). */
export const MAX_PATTERN_LENGTH = MAX_CHANNEL_LENGTH + 1;
/** Most patterns in a token's `channels` claim, which bounds the cost of a permission check. */
export const MAX_CHANNEL_PATTERNS = 256;
/** Longest connection token. */
export const MAX_TOKEN_LENGTH = 8192;
/** Longest `event` name of a message. */
export const MAX_EVENT_LENGTH = 100;
/** Longest idempotency key. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;
/** Largest inbox page one request may ask for (an `inbox` frame's or `GET …/inbox`'s `limit`). */
export const MAX_INBOX_PAGE = 1000;
/** Most message ids one acknowledgement may name (an `ack` frame, `POST …/inbox/ack`). */
export const MAX_ACK_IDS = 1000;
/** Messages a channel recovery reads from the store at a time. */
export const RECOVERY_PAGE = 100;
/** Largest body of `POST /v1/dev/token`. */
export const DEV_TOKEN_BODY_BYTES = 4096;
/** Longest an HTTP request may take from its first byte to its last (node:http `requestTimeout`), ms. */
export const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** Longest an HTTP request's headers may take to arrive (node:http `headersTimeout`), ms. */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;

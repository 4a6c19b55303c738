/**
 * What every route of the HTTP API shares: JSON answers, error answers,
 * bounded JSON bodies, path segments, method checks.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SilkError } from '../core/errors.js';

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Answer `status` with `body` as JSON. */
export function json(res: ServerResponse, status: number, body: unknown): void {
  jsonText(res, status, JSON.stringify(body));
}

/** Answer `status` with a JSON text made by the caller. */
export function jsonText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answer with an error's status and `{"error": {code, message}}`. */
export function failure(res: ServerResponse, err: SilkError): void {
  if (err.status === 429) res.setHeader('retry-after', '1');
  json(res, err.status, err.toJSON());
}

/** Throw `method_not_allowed` with `Allow` unless the request is a GET or HEAD (RFC 9110 §15.5.6). */
export function onlyGet(req: IncomingMessage, res: ServerResponse): void {
  onlyMethods(req, res, ['GET', 'HEAD']);
}

/** Throw `method_not_allowed` with `Allow` unless the request uses one of `methods`. */
export function onlyMethods(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): void {
  if (methods.includes(req.method ?? '')) return;
  res.setHeader('allow', methods.join(', '));
  throw new SilkError('method_not_allowed', `${req.method} is not allowed here`);
}

/** Whether a peer address is on the loopback interface (127.0.0.0/8 or ::1). */
export function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

/** Split a path into decoded segments. */
export function segments(path: string): string[] {
  const parts = path.split('/').slice(1);
  try {
    return parts.map(decodeURIComponent);
  } catch {
    throw new SilkError('invalid_request', 'the path has a malformed percent-encoding');
  }
}

/** How long the rest of an over-long body is read and dropped before its socket is cut, ms. */
const LINGER_MS = 1000;

function drop(): void {}

/** Read a JSON body of at most `limit` bytes. */
export function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
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
        // Keep no more of it, but go on reading (and dropping) it for a moment: a socket closed with
        // unread bytes is reset, and the reset would destroy the 413 on its way to the client (a
        // lingering close). The answer says `Connection: close`; the socket goes at the latest then.
        req.on('data', drop);
        req.resume();
        setTimeout(() => req.destroy(), LINGER_MS).unref();
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

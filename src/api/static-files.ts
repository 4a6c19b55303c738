/**
 * Files every node serves as they are, on GET and HEAD: the browser SDK
 * bundle at `/sdk/silk.js`, the demo page at `/` and its icon.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { onlyGet } from './http.js';
import type { PathHandler } from './router.js';

/** The files, relative to this module in dist/src/api. */
const FILES: readonly { path: readonly string[]; file: string; contentType: string }[] = [
  { path: ['/sdk/silk.js'], file: '../../sdk/silk.js', contentType: 'text/javascript; charset=utf-8' },
  { path: ['/', '/index.html'], file: '../../../demo/index.html', contentType: 'text/html; charset=utf-8' },
  // Browsers ask for /favicon.ico whatever the page says; an SVG answers both.
  { path: ['/favicon.svg', '/favicon.ico'], file: '../../../demo/favicon.svg', contentType: 'image/svg+xml' },
];

/** Read the files and answer their paths; a missing one is logged and not served. */
export function staticPaths(logger: Logger): [string, PathHandler][] {
  const out: [string, PathHandler][] = [];
  for (const f of FILES) {
    let body: Buffer;
    try {
      body = readFileSync(new URL(f.file, import.meta.url));
    } catch (err) {
      logger.warn({ file: f.file, err: (err as Error).message }, 'not serving a missing file (run npm run build)');
      continue;
    }
    const serve: PathHandler = (req, res) => {
      onlyGet(req, res);
      res.writeHead(200, { 'content-type': f.contentType, 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(body);
    };
    for (const p of f.path) out.push([p, serve]);
  }
  return out;
}

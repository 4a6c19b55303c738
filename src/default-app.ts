/**
 * The `default` app a node creates when the configuration names none, kept
 * in the data dir so its secret and API key survive restarts.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, validateConfig, type AppConfig } from './config.js';

export const DEFAULT_APP_FILE = 'default-app.json';

/** The default app, and whether it was created just now. */
export interface DefaultApp {
  readonly app: AppConfig;
  readonly created: boolean;
  readonly file: string;
}

/** Load `dataDir/default-app.json`, creating it with fresh random credentials if absent. */
export function loadOrCreateDefaultApp(dataDir: string): DefaultApp {
  const file = join(dataDir, DEFAULT_APP_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ConfigError(`${file} is not valid JSON`);
    }
    const [app] = validateConfig({ apps: [parsed] }).apps;
    return { app: app!, created: false, file };
  }
  const app: AppConfig = {
    id: 'default',
    secret: randomBytes(32).toString('base64url'),
    apiKey: randomBytes(24).toString('base64url'),
  };
  mkdirSync(dataDir, { recursive: true });
  // wx: never overwrite credentials another process just wrote.
  writeFileSync(file, JSON.stringify(app, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  return { app, created: true, file };
}

#!/usr/bin/env node
/**
 * The `silk` command. The only module that reads argv and the environment,
 * writes to the terminal and exits the process.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration, signToken } from './auth/tokens.js';
import {
  applyOverrides,
  ConfigError,
  overridesFromEnv,
  parsePort,
  parseRedisUrl,
  validateConfig,
  validateRoles,
  type Config,
  type Overrides,
} from './config.js';
import { SilkError } from './core/errors.js';
import { loadOrCreateDefaultApp } from './default-app.js';
import { migrate } from './migrate.js';
import { startNode } from './node.js';

const HELP = `silk — realtime message push

Usage:
  silk serve [--config FILE] [--port N] [--host H] [--data DIR] [--dev]
             [--redis URL] [--roles gateway,api]
      Run a node: on the embedded engines, or in a cluster on Redis. The
      demo page is at http://HOST:PORT/ and the browser SDK at /sdk/silk.js.
  silk token --app ID --user ID [--channels a,b] [--ttl 1h] [--config FILE] [--data DIR]
      Print a connection token signed with the app's secret (for trying things out).
  silk migrate --to URL [--config FILE] [--data DIR] [--batch N] [--restart]
      Copy a single node's data dir (inboxes, history, idempotency keys, id
      position) into Redis, resumably; verify the counts at the end.
  silk --help
      Show this help.

Options:
  --config FILE   JSON configuration file (or SILK_CONFIG); see docs/configuration.md
  --port N        TCP port (or SILK_PORT; default 8080)
  --host H        listen address (or SILK_HOST; default 0.0.0.0)
  --data DIR      data directory (or SILK_DATA_DIR; default ./data)
  --redis URL     cluster mode on this Redis (or SILK_REDIS_URL; Sentinel and
                  Redis Cluster through the config file's "redis" key)
  --roles LIST    gateway (holds connections), api (serves the server API);
                  default both (or SILK_ROLES)
  --dev           development mode: the demo token endpoint answers every
                  client, not only loopback (it hands out the API key)
  --app ID        app id of the token (default: default)
  --user ID       user id (the token's sub)
  --channels LIST comma-separated channel patterns the token allows ("*" for all)
  --ttl DURATION  token lifetime: 30s, 15m, 1h, 7d (default 1h)
  --to URL        migrate: the target Redis (redis://host:port)
  --batch N       migrate: rows per batch (default 500)
  --restart       migrate: forget earlier progress and start over

Precedence: flags over environment over the config file over defaults.
With no apps configured, silk creates an app "default" in the data dir and
prints its secret and API key on first start.
`;

function loadConfig(flags: {
  config?: string;
  port?: string;
  host?: string;
  data?: string;
  dev?: boolean;
  redis?: string;
  roles?: string;
}): Config {
  const path = flags.config ?? process.env['SILK_CONFIG'];
  let file: unknown = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`);
    }
    try {
      file = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${path} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const cli: Overrides = {};
  if (flags.port !== undefined) cli.port = parsePort('--port', flags.port);
  if (flags.host !== undefined) {
    if (flags.host === '') throw new ConfigError('--host must be a non-empty address');
    cli.host = flags.host;
  }
  if (flags.data !== undefined) cli.dataDir = flags.data;
  if (flags.dev === true) cli.dev = true;
  if (flags.redis !== undefined) cli.redis = parseRedisUrl('--redis', flags.redis);
  if (flags.roles !== undefined) cli.roles = validateRoles('--roles', flags.roles);
  return applyOverrides(validateConfig(file), overridesFromEnv(process.env), cli);
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      dev: { type: 'boolean' },
      redis: { type: 'string' },
      roles: { type: 'string' },
    },
    strict: true,
  });
  const config = loadConfig(values);
  const node = await startNode(config);
  if (node.defaultApp?.created) {
    const a = node.defaultApp.app;
    process.stdout.write(
      `\nCreated app "default" (kept in ${node.defaultApp.file}):\n` +
        `  secret:  ${a.secret}\n  apiKey:  ${a.apiKey}\n` +
        `Try: silk token --user alice --channels '*'\n\n`,
    );
  }
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`silk: ${signal}, draining (up to ${config.drainSeconds}s)\n`);
    node.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`silk: drain failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function migrateCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      to: { type: 'string' },
      config: { type: 'string' },
      data: { type: 'string' },
      batch: { type: 'string', default: '500' },
      restart: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.to === undefined) throw new ConfigError('--to is required (the target redis:// URL)');
  const redis = parseRedisUrl('--to', values.to);
  const batch = Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000) throw new ConfigError('--batch must be an integer from 1 to 100000');
  const config = loadConfig(values);
  const report = await migrate({
    dataDir: config.dataDir,
    redis,
    limits: config.limits,
    batch,
    restart: values.restart,
    log: (line) => process.stdout.write(line + '\n'),
  });
  if (report.mismatches.length > 0) {
    process.stdout.write(`migrate: ${report.mismatches.length} mismatches:\n  ${report.mismatches.join('\n  ')}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write('migrate: verified: every inbox and history count matches\n');
}

async function token(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      app: { type: 'string', default: 'default' },
      user: { type: 'string' },
      channels: { type: 'string' },
      ttl: { type: 'string', default: '1h' },
      config: { type: 'string' },
      data: { type: 'string' },
    },
    strict: true,
  });
  if (values.user === undefined) throw new ConfigError('--user is required');
  const config = loadConfig(values);
  const apps = config.apps.length > 0 ? config.apps : [loadOrCreateDefaultApp(config.dataDir).app];
  const app = apps.find((a) => a.id === values.app);
  if (app === undefined) throw new ConfigError(`no app ${JSON.stringify(values.app)} (apps: ${apps.map((a) => a.id).join(', ')})`);
  const channels = values.channels === undefined ? undefined : values.channels.split(',').filter((c) => c !== '');
  const t = await signToken({
    app: app.id,
    user: values.user,
    secret: app.secret,
    ttlSeconds: parseDuration(values.ttl),
    ...(channels === undefined ? {} : { channels }),
  });
  process.stdout.write(t + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
    case 'migrate':
      return migrateCommand(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      throw new ConfigError(`unknown command ${JSON.stringify(command)}; see silk --help`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const known = err instanceof ConfigError || err instanceof SilkError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  process.stderr.write(`silk: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}\n`);
  process.exit(known ? 2 : 1);
});

/**
 * Real Redis for tests: `redis-server` processes on free ports, each in a
 * directory of its own, stopped by PID at the end. A three-master Redis
 * Cluster is made with `redis-cli --cluster create`.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A test CA and a server certificate it signed for 127.0.0.1, as files in `dir`. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** Make {@link TlsFiles} in `dir` with openssl (RSA 2048, valid two days). */
export async function makeTestCa(dir: string): Promise<TlsFiles> {
  const f = (name: string): string => join(dir, name);
  const subj = (cn: string): string[] => ['-subj', `/CN=${cn}`];
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', ...subj('silk-test-ca')]);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), ...subj('127.0.0.1')]);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', [
    'x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('server.crt'), '-days', '2', '-extfile', f('ext.cnf'),
  ]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

/** A free port whose cluster bus port (the port + 10000) is a valid port and free too. */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 > 65535) continue;
    const bus = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      bus.once('error', () => resolve(false));
      bus.listen(port + 10000, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      bus.close();
      await once(bus, 'close');
      return port;
    }
  }
}

export class RedisServer {
  readonly port: number;
  readonly dir: string;
  /** What clients must AUTH with, if anything (`requirepass`). */
  readonly password: string | undefined;
  /** Set when the server speaks only TLS (on `port`). */
  readonly tls: TlsFiles | undefined;
  readonly #args: readonly string[];
  #proc: ChildProcess | null = null;

  private constructor(port: number, dir: string, args: readonly string[], password: string | undefined, tls: TlsFiles | undefined) {
    this.port = port;
    this.password = password;
    this.tls = tls;
    this.dir = dir;
    this.#args = args;
  }

  /**
   * Start a redis-server on a free port. `persist: true` turns on the
   * append-only file with fsync every write (what Silk's durability needs);
   * `replicaOf` makes it a replica (authenticating with `password`, over TLS
   * with `tls`).
   */
  static async start(
    opts: { persist?: boolean; cluster?: boolean; port?: number; password?: string; tls?: TlsFiles; user?: AclUser; replicaOf?: RedisServer } = {},
  ): Promise<RedisServer> {
    const port = opts.port ?? (opts.cluster ? await freeClusterPort() : await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'silk-redis-'));
    const t = opts.tls;
    const args = [
      ...(t === undefined
        ? ['--port', String(port)]
        : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', t.cert, '--tls-key-file', t.key, '--tls-ca-cert-file', t.ca, '--tls-auth-clients', 'no']),
      ...(t !== undefined && opts.cluster ? ['--tls-cluster', 'yes'] : []),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', opts.persist ? 'yes' : 'no',
      '--appendfsync', 'always',
      '--protected-mode', 'no',
      // A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by default).
      '--repl-diskless-sync-delay', '0',
      ...(opts.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'] : []),
      ...(opts.password !== undefined ? ['--requirepass', opts.password, '--masterauth', opts.password] : []),
      ...(opts.user !== undefined ? ['--user', ...aclUser(opts.user)] : []),
      ...(opts.replicaOf !== undefined ? ['--replicaof', '127.0.0.1', String(opts.replicaOf.port)] : []),
      ...(opts.replicaOf !== undefined && t !== undefined ? ['--tls-replication', 'yes'] : []),
    ];
    const r = new RedisServer(port, dir, args, opts.password, opts.tls);
    try {
      await r.restart();
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return r;
  }

  get url(): string {
    const scheme = this.tls === undefined ? 'redis' : 'rediss';
    return this.password === undefined
      ? `${scheme}://127.0.0.1:${this.port}`
      : `${scheme}://:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`;
  }

  /** redis-cli's arguments to reach this server. */
  get cliArgs(): string[] {
    return ['-p', String(this.port), ...cliAuth(this.password, this.tls)];
  }

  get running(): boolean {
    return this.#proc !== null && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** (Re)start the process on the same port and directory; resolves once it answers PING. */
  async restart(): Promise<void> {
    const proc = spawn('redis-server', this.#args, { stdio: 'ignore' });
    this.#proc = proc;
    for (let i = 0; i < 200; i++) {
      try {
        const { stdout } = await run('redis-cli', [...this.cliArgs, 'ping']);
        if (stdout.trim() === 'PONG') return;
      } catch {
        /* not up yet */
      }
      if (proc.exitCode !== null) throw new Error(`redis-server on ${this.port} exited with ${proc.exitCode}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.stop();
    throw new Error(`redis-server on ${this.port} did not answer`);
  }

  /** Stop the process (SIGKILL by default) and wait for it to go. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.#proc;
    if (p === null || p.exitCode !== null || p.signalCode !== null) return;
    const gone = once(p, 'exit');
    p.kill(signal);
    await gone;
  }

  /** Freeze the process (SIGSTOP): its connections stay open and nothing is answered. */
  pause(): void {
    this.#proc?.kill('SIGSTOP');
  }

  /** Let a paused process run again (SIGCONT). */
  resume(): void {
    this.#proc?.kill('SIGCONT');
  }

  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', [...this.cliArgs, ...args]);
    return stdout.trim();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An ACL user with every right (besides the `default` user). */
export interface AclUser {
  readonly name: string;
  readonly password: string;
}

function aclUser(u: AclUser): string[] {
  return [u.name, 'on', `>${u.password}`, '~*', '&*', '+@all'];
}

/** redis-cli's options for a password and TLS. */
function cliAuth(password: string | undefined, tls: TlsFiles | undefined): string[] {
  return [
    ...(password !== undefined ? ['-a', password, '--no-auth-warning'] : []),
    ...(tls !== undefined ? ['--tls', '--cacert', tls.ca] : []),
  ];
}

/** Three masters, no replicas, all slots assigned; resolves once the cluster says ok. */
export async function startCluster(opts: { password?: string; tls?: TlsFiles } = {}): Promise<RedisServer[]> {
  const started = await Promise.allSettled([0, 1, 2].map(() => RedisServer.start({ cluster: true, ...opts })));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    await run('redis-cli', [...cliAuth(opts.password, opts.tls), '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (let i = 0; i < 200; i++) {
      const states = await Promise.all(nodes.map((n) => n.cli('cluster', 'info')));
      if (states.every((s) => s.includes('cluster_state:ok'))) return nodes;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the cluster did not come up');
  } catch (err) {
    // Leave no redis-server behind: a live child would keep the test process from exiting.
    await Promise.all(nodes.map((n) => n.destroy()));
    throw err;
  }
}

/** A Sentinel started by {@link startSentinel}. */
export interface Sentinel {
  readonly port: number;
  /** Kill it (SIGKILL) and remove its directory. */
  stop(): Promise<void>;
  /** `redis-cli` against it, with its user and TLS; stdout. */
  cli(...args: string[]): Promise<string>;
}

/**
 * A Sentinel watching `master` under the name `name`; returns the process and its port.
 * With `tls`, it listens only for TLS and speaks TLS to the master (whose own TLS files it
 * shares); with `user`, it requires that ACL user (and its `default` user is off).
 */
export async function startSentinel(
  master: RedisServer,
  name: string,
  opts: { tls?: TlsFiles; user?: AclUser } = {},
): Promise<Sentinel> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'silk-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  const t = opts.tls;
  const lines = [
    ...(t === undefined
      ? [`port ${port}`]
      : ['port 0', `tls-port ${port}`, `tls-cert-file ${t.cert}`, `tls-key-file ${t.key}`, `tls-ca-cert-file ${t.ca}`, 'tls-auth-clients no', 'tls-replication yes']),
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${name} 1000`,
    // Two Sentinels that start a failover at once both lose the vote and wait 2 × this to retry (180 s by default).
    `sentinel failover-timeout ${name} 3000`,
    ...(master.password !== undefined ? [`sentinel auth-pass ${name} ${master.password}`] : []),
    // Sentinels ask each other for votes in a failover: as the same user, since `default` is off.
    ...(opts.user !== undefined
      ? [`user ${aclUser(opts.user).join(' ')}`, 'user default off', `sentinel sentinel-user ${opts.user.name}`, `sentinel sentinel-pass ${opts.user.password}`]
      : []),
  ];
  writeFileSync(conf, lines.join('\n') + '\n');
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const cli = [
    '-p', String(port),
    ...(opts.user !== undefined ? ['--user', opts.user.name, '--pass', opts.user.password, '--no-auth-warning'] : []),
    ...(t !== undefined ? ['--tls', '--cacert', t.ca] : []),
  ];
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = once(proc, 'exit');
      proc.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const sentinelCli = async (...args: string[]): Promise<string> => (await run('redis-cli', [...cli, ...args])).stdout;
  for (let i = 0; i < 200; i++) {
    try {
      const stdout = await sentinelCli('sentinel', 'get-master-addr-by-name', name);
      if (stdout.includes(String(master.port))) return { port, stop, cli: sentinelCli };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  await stop();
  throw new Error(`the Sentinel on port ${port} did not name the master ${name}`);
}

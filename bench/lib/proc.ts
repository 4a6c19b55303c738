/**
 * Child processes for the benchmarks: started pinned to a CPU (taskset when
 * it works), talked to over the Node IPC channel, read from /proc, and
 * always stopped by PID. Every child started here is tracked until it exits,
 * so `stopAll()` ends exactly the processes the runner started.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** A message a child sends back to answer a request. */
interface Reply {
  readonly re: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

function isReply(m: unknown): m is Reply {
  return typeof m === 'object' && m !== null && typeof (m as { re?: unknown }).re === 'number';
}

let tasksetChecked: boolean | undefined;

/** Whether `taskset` exists and can pin on this machine (needs at least 2 CPUs to be useful). */
export function canPin(): boolean {
  if (tasksetChecked !== undefined) return tasksetChecked;
  try {
    const cpus = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    tasksetChecked = cpus >= 2;
  } catch {
    tasksetChecked = false;
  }
  return tasksetChecked;
}

/** Pin an already running process (such as the runner itself) to one CPU; false if not possible. */
export function pinPid(pid: number, cpu: number): boolean {
  if (!canPin()) return false;
  try {
    execFileSync('taskset', ['-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let clockTicks: number | undefined;

/** Clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User and system CPU time of a process so far, in seconds (all its threads). */
export interface CpuTime {
  readonly user: number;
  readonly system: number;
}

/** Read /proc/PID/stat; undefined once the process is gone. */
export function cpuTime(pid: number): CpuTime | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const hz = clkTck();
    // Fields 14 and 15 of the stat line (utime, stime) are 11 and 12 after the name.
    return { user: Number(fields[11]) / hz, system: Number(fields[12]) / hz };
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in bytes, from /proc/PID/status; undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** CPU use between two readings, in percent of one core, split user/system. */
export interface CpuUse {
  readonly total: number;
  readonly user: number;
  readonly system: number;
}

export function cpuPercent(a: CpuTime | undefined, b: CpuTime | undefined, seconds: number): CpuUse {
  if (a === undefined || b === undefined || seconds <= 0) return { total: NaN, user: NaN, system: NaN };
  const user = ((b.user - a.user) / seconds) * 100;
  const system = ((b.system - a.system) / seconds) * 100;
  return { total: user + system, user, system };
}

export interface StartOptions {
  /** Shown in messages. */
  readonly name: string;
  /** CPU to pin the process to (ignored when pinning is not possible). */
  readonly cpu?: number;
  /** Node options such as `--cpu-prof`. */
  readonly execArgv?: readonly string[];
  /** Forward the child's stdout lines to our stderr (default true). */
  readonly forwardStdout?: boolean;
}

/** A child Node process with an IPC channel. */
export class Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<string>;
  #done = false;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #listeners: ((m: unknown) => void)[] = [];

  constructor(proc: ChildProcess, name: string, forwardStdout: boolean) {
    if (proc.pid === undefined) throw new Error(`${name}: the process did not start`);
    this.proc = proc;
    this.pid = proc.pid;
    this.name = name;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.#done = true;
        live.delete(this);
        for (const [, p] of this.#pending) {
          clearTimeout(p.timer);
          p.reject(new Error(`${name} (pid ${this.pid}) exited (${signal ?? code}) before answering`));
        }
        this.#pending.clear();
        resolve(String(signal ?? code));
      });
    });
    proc.on('error', () => undefined);
    proc.on('message', (m: unknown) => {
      if (isReply(m)) {
        const p = this.#pending.get(m.re);
        if (p === undefined) return;
        this.#pending.delete(m.re);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(`${name}: ${m.error ?? 'failed'}`));
        return;
      }
      for (const l of this.#listeners) l(m);
    });
    if (proc.stdout !== null) {
      const rl = createInterface({ input: proc.stdout });
      rl.on('line', (line) => {
        if (forwardStdout) process.stderr.write(`[${name}] ${line}\n`);
      });
    }
    live.add(this);
  }

  get running(): boolean {
    return !this.#done;
  }

  /** Send a command and wait for its answer (bounded by `timeoutMs`). */
  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (this.#done) return Promise.reject(new Error(`${this.name} has exited`));
    const id = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.proc.send({ id, cmd, ...args });
    });
  }

  /** Wait for an unsolicited message matching `pred`. */
  waitFor<T>(pred: (m: unknown) => boolean, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        remove();
        reject(new Error(`${this.name}: no expected message within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (m: unknown): void => {
        if (!pred(m)) return;
        clearTimeout(timer);
        remove();
        resolve(m as T);
      };
      const remove = (): void => {
        const i = this.#listeners.indexOf(listener);
        if (i >= 0) this.#listeners.splice(i, 1);
      };
      this.#listeners.push(listener);
      this.exited.then(() => {
        clearTimeout(timer);
        remove();
        reject(new Error(`${this.name} (pid ${this.pid}) exited before it was ready`));
      }, () => undefined);
    });
  }

  /** Stop by PID: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#done) return;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      if (this.#done) return;
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Every child started and not yet exited. */
const live = new Set<Child>();

/** Start `node script args…` with an IPC channel, pinned to `cpu` when possible. */
export function startChild(script: string, args: readonly string[], opts: StartOptions): Child {
  const nodeArgs = [...(opts.execArgv ?? []), script, ...args];
  const pin = opts.cpu !== undefined && canPin();
  const file = pin ? 'taskset' : process.execPath;
  // taskset execs node in place, so the PID we get is node's.
  const argv = pin ? ['-c', String(opts.cpu), process.execPath, ...nodeArgs] : nodeArgs;
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Child(proc, opts.name, opts.forwardStdout ?? true);
}

/** Stop every child still running, by PID. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

/** The number of children still running (for a final check). */
export function liveCount(): number {
  return live.size;
}

// ---------------------------------------------------------------------------
// The child side.

export type Handler = (msg: Record<string, unknown>) => unknown;

/**
 * In a child: answer the parent's commands with `handlers`, and exit when the
 * parent goes away (so nothing outlives a crashed runner).
 */
export function serveParent(handlers: Record<string, Handler>): void {
  if (process.send === undefined) throw new Error('this process has no IPC channel; start it from the bench runner');
  process.on('message', (raw: unknown) => {
    const msg = raw as Record<string, unknown> & { id: number; cmd: string };
    const h = handlers[msg.cmd];
    const reply = (r: Reply): void => {
      if (process.connected) process.send!(r);
    };
    if (h === undefined) return reply({ re: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
    Promise.resolve()
      .then(() => h(msg))
      .then(
        (result) => reply({ re: msg.id, ok: true, result }),
        (err: unknown) => reply({ re: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

/** In a child: tell the parent something without being asked. */
export function notifyParent(msg: Record<string, unknown>): void {
  if (process.send !== undefined && process.connected) process.send(msg);
}

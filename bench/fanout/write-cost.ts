/**
 * What one socket write costs this machine's CPU: the floor under every
 * fan-out round, whatever the server. A round that gives each of N
 * subscribers its batch is N writes, so N × this cost is the least time a
 * round can take on one core, and a message published just after a round
 * starts waits for that round and its own.
 *
 * This process (pinned to CPU 0 where `taskset` works) accepts `--sockets`
 * TCP connections from a child (CPU 1) that reads and drops everything,
 * then writes `--bytes` to every socket, `--rounds` times, one round per
 * `setImmediate`, with `socket.write` as any Node server does. It prints the
 * CPU time per write, user and system (on loopback the system time includes
 * the receiving end's TCP processing, as it does in the fan-out scenario).
 *
 *   node dist/bench/fanout/write-cost.js [--sockets 1000] [--bytes 600] [--rounds 1000]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { canPin, pinPid } from '../lib/proc.js';

const { values } = parseArgs({
  options: {
    sockets: { type: 'string', default: '1000' },
    bytes: { type: 'string', default: '600' },
    rounds: { type: 'string', default: '1000' },
    reader: { type: 'string' },
  },
  strict: true,
});
const sockets = Number(values.sockets);

if (values.reader !== undefined) {
  // The child: open the connections, 256 handshakes at a time (a burst of
  // thousands would overflow the listen queue), drop what arrives, and leave
  // when they close.
  const port = Number(values.reader);
  let started = 0;
  let open = 0;
  const next = (): void => {
    if (started >= sockets) return;
    started++;
    const s = connect(port, '127.0.0.1', () => {
      if (++open === sockets) process.send!('ready');
      next();
    });
    s.on('data', () => {});
    s.on('error', (err) => {
      process.stderr.write(`write-cost reader: ${err.message}\n`);
      process.exit(1);
    });
    s.on('close', () => {
      if (--open <= 0) process.exit(0);
    });
  };
  for (let i = 0; i < 256; i++) next();
  process.on('disconnect', () => process.exit(0));
} else {
  const bytes = Number(values.bytes);
  const rounds = Number(values.rounds);
  if (sockets > 19_000) throw new Error('at most 19,000 sockets (file limit 20,000 per process)');
  const pin = canPin();
  if (pin) pinPid(process.pid, 0);
  const accepted: Socket[] = [];
  let allAccepted: () => void = () => {};
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    if (accepted.push(s) === sockets) allAccepted();
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const reader = fork(fileURLToPath(import.meta.url), ['--reader', String(port), '--sockets', String(sockets)]);
  if (pin) pinPid(reader.pid!, 1);
  try {
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      Promise.all([once(reader, 'message'), new Promise<void>((r) => (allAccepted = r))]).then(() => 'ready' as const),
      once(reader, 'exit').then(() => 'gone' as const),
      new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 60_000))),
    ]);
    clearTimeout(timer);
    if (outcome === 'gone') throw new Error('the reader process exited before its connections were open');
    if (outcome === 'late') throw new Error(`${accepted.length} of ${sockets} connections accepted in 60 s`);
    const buf = Buffer.alloc(bytes, 0x78);
    // A short warm-up, so the write path is compiled before the clock starts.
    for (let r = 0; r < 20; r++) {
      for (const s of accepted) s.write(buf);
      await new Promise((res) => setImmediate(res));
    }
    const t0 = process.cpuUsage();
    const w0 = performance.now();
    // Writes that found the kernel's buffer full and waited in Node's: then
    // a later write sends several at once, and the figure is no longer one
    // send per write.
    let queued = 0;
    for (let r = 0; r < rounds; r++) {
      for (const s of accepted) if (!s.write(buf)) queued++;
      await new Promise((res) => setImmediate(res));
    }
    const cpu = process.cpuUsage(t0);
    const wallMs = performance.now() - w0;
    const writes = sockets * rounds;
    const per = (cpu.user + cpu.system) / writes;
    process.stdout.write(
      `${sockets} sockets, ${bytes}-byte writes, ${rounds} rounds${pin ? ' (writer on CPU 0, reader on CPU 1)' : ''}:\n` +
        `  ${per.toFixed(2)} µs of CPU per write (user ${(cpu.user / writes).toFixed(2)}, system ${(cpu.system / writes).toFixed(2)}); ` +
        `${((writes / wallMs) * 1000).toLocaleString('en', { maximumFractionDigits: 0 })} writes/s\n` +
        `  one round of ${sockets} writes: ${((per * sockets) / 1000).toFixed(2)} ms of CPU (${(wallMs / rounds).toFixed(2)} ms wall)\n` +
        (queued === 0 ? '' : `  note: ${queued} writes (${((queued / writes) * 100).toFixed(1)}%) found the socket's buffer full: the reader fell behind\n`),
    );
  } finally {
    for (const s of accepted) s.destroy();
    server.close();
    reader.kill();
  }
}

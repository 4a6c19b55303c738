/**
 * A TCP proxy that delays every chunk, both ways, by a delay that can be
 * changed while it runs: a slow network path to Redis, for fault tests.
 * Order is kept (each direction forwards in arrival order).
 */
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class DelayProxy {
  delayMs: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, delayMs: number) {
    this.#server = server;
    this.delayMs = delayMs;
  }

  static async start(targetPort: number, delayMs: number): Promise<DelayProxy> {
    const server = createServer();
    const p = new DelayProxy(server, delayMs);
    server.on('connection', (client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        p.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          p.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      p.#pipe(client, upstream);
      p.#pipe(upstream, client);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return p;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Forward `from` to `to`, each chunk `delayMs` after it arrived and never before the one ahead of it. */
  #pipe(from: Socket, to: Socket): void {
    let last = 0;
    from.on('data', (chunk) => {
      const due = Math.max(last, Date.now() + this.delayMs);
      last = due;
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, due - Date.now());
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise((r) => this.#server.close(r));
  }
}

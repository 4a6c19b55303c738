/**
 * Slow readers: lean WebSocket clients that subscribe to one channel and
 * then stop reading (their sockets paused), so everything the server sends
 * them piles up. Driven by the runner over IPC.
 */
import { signToken } from '../../src/auth/tokens.js';
import { LeanConn } from '../lib/lean-ws.js';
import { serveParent } from '../lib/proc.js';

const conns: LeanConn[] = [];
let closed = 0;

serveParent({
  async connect(msg) {
    const { port, count, firstIndex, channel, app, secret } = msg as { port: number; count: number; firstIndex: number; channel: string; app: string; secret: string };
    for (let i = 0; i < count; i++) {
      const token = await signToken({ app, user: `slow${firstIndex + i}`, secret, ttlSeconds: 3600, channels: [channel] });
      const c = await LeanConn.open({ host: '127.0.0.1', port, path: `/v1/connect?token=${token}` }, { message() {}, closed: () => void closed++ });
      await c.nextControl();
      c.sendText(`{"type":"subscribe","id":1,"channel":"${channel}"}`);
      await c.nextControl();
      c.sock.pause();
      conns.push(c);
    }
    return conns.length;
  },
  closed: () => closed,
  close() {
    for (const c of conns) c.destroy();
    return true;
  },
});

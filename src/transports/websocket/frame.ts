/**
 * Server-to-client WebSocket framing (RFC 6455 §5.2): one final text frame,
 * unmasked as servers send. Built once per delivery and encoding, and
 * shared by every socket that receives it.
 */
import type { Framing } from '../../session/transport.js';

/** Frame a JSON text as one WebSocket text frame. */
export function wsTextFrame(json: string): Buffer {
  const len = Buffer.byteLength(json);
  let head: number;
  if (len < 126) head = 2;
  else if (len < 65536) head = 4;
  else head = 10;
  const buf = Buffer.allocUnsafe(head + len);
  buf[0] = 0x81; // FIN + opcode 1 (text)
  if (head === 2) {
    buf[1] = len;
  } else if (head === 4) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(0, 2); // lengths here stay far below 2^32
    buf.writeUInt32BE(len, 6);
  }
  buf.write(json, head, 'utf8');
  return buf;
}

/** WebSocket text frames, the framing of every WebSocket connection. */
export const WS_TEXT: Framing = { name: 'websocket-text', frame: (text) => wsTextFrame(text) };

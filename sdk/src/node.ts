/**
 * The Node entry of silk-client: the same client, with the `ws` package as
 * its WebSocket unless the options name another.
 */
import { WebSocket } from 'ws';
import { SilkClient as BaseClient, type ClientOptions } from './client.js';
import type { SocketFactory } from './types.js';

export * from './index.js';

export class SilkClient extends BaseClient {
  constructor(options: ClientOptions) {
    super({ WebSocket: WebSocket as unknown as SocketFactory, ...options });
  }
}

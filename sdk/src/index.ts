/**
 * silk-client: the Silk SDK. In browsers it uses the native WebSocket; in
 * Node the package's `node` export (node.ts) supplies the `ws` package.
 *
 * @example
 * import { SilkClient } from 'silk-client';
 * const client = new SilkClient({ url: 'wss://push.example.com', getToken: () => fetchToken() });
 * client.subscribe('news', (m) => console.log(m.data));
 * client.inbox.on('message', (m) => show(m));
 * client.connect();
 */
export { SilkClient, Subscription, Inbox, type ClientOptions, type ReconnectOptions, type ClientEvents, type SubscriptionEvents, type InboxEvents } from './client.js';
export { CloseCode, policyOf, type RetryPolicy } from './protocol.js';
export {
  SilkClientError,
  type ConnectionState,
  type Message,
  type ConnectedInfo,
  type DisconnectedInfo,
  type SocketLike,
  type SocketFactory,
} from './types.js';

/**
 * The apps (tenants) port. Every request and every connection reads its
 * app through it, so apps can change while the node runs.
 */

/**
 * One tenant: its id, the secret that signs its connection tokens, its API
 * key. During a rotation the previous secret and API key are accepted too,
 * until they are removed.
 */
export interface App {
  readonly id: string;
  readonly secret: string;
  readonly apiKey: string;
  readonly previousSecret?: string;
  readonly previousApiKey?: string;
}

export interface Apps {
  /** The app with this id, or undefined. */
  get(id: string): App | undefined;
  /** Every app, in the order they were added. */
  list(): readonly App[];
}

/**
 * The apps a node serves, in memory: those of the configuration file (or
 * the `default` app of the data dir) today; apps managed at runtime later
 * join the same registry.
 */
import type { App, Apps } from '../core/apps.js';

export class AppRegistry implements Apps {
  readonly #byId = new Map<string, App>();
  #list: readonly App[] = [];

  constructor(apps: readonly App[] = []) {
    for (const a of apps) this.set(a);
  }

  get(id: string): App | undefined {
    return this.#byId.get(id);
  }

  list(): readonly App[] {
    return this.#list;
  }

  /** Add an app, or replace the one with its id. */
  set(app: App): void {
    this.#byId.set(app.id, app);
    this.#list = [...this.#byId.values()];
  }

  /** Remove an app; false if there was none. */
  delete(id: string): boolean {
    if (!this.#byId.delete(id)) return false;
    this.#list = [...this.#byId.values()];
    return true;
  }
}

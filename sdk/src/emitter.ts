/**
 * A small typed event emitter that runs the same in browsers and Node.
 * A handler that throws does not break the client: its error is rethrown
 * on its own task, where the runtime reports it like any uncaught error.
 */

/** Maps event names to handler signatures. */
export type EventMap = { [name: string]: (...args: never[]) => void };

export class Emitter<E extends EventMap> {
  #handlers = new Map<keyof E, Set<E[keyof E]>>();

  /** Call `handler` on every `event`; returns a function that removes it. */
  on<K extends keyof E>(event: K, handler: E[K]): () => void {
    let set = this.#handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }

  /** Call `handler` on the next `event` only. */
  once<K extends keyof E>(event: K, handler: E[K]): () => void {
    const wrapped = ((...args: Parameters<E[K]>) => {
      off();
      (handler as (...a: Parameters<E[K]>) => void)(...args);
    }) as unknown as E[K];
    const off = this.on(event, wrapped);
    return off;
  }

  /**
   * Resolve with the first argument of the next `event` that passes `pred`;
   * reject after `timeoutMs` (0: never).
   * @example const info = await client.wait('connected');
   */
  wait<K extends keyof E>(event: K, pred?: (arg: Parameters<E[K]>[0]) => boolean, timeoutMs = 0): Promise<Parameters<E[K]>[0]> {
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => (off(), reject(new Error(`no ${String(event)} within ${timeoutMs} ms`))), timeoutMs) : undefined;
      const off = this.on(event, ((...args: Parameters<E[K]>) => {
        if (pred !== undefined && !pred(args[0])) return;
        clearTimeout(timer);
        off();
        resolve(args[0]);
      }) as unknown as E[K]);
    });
  }

  off<K extends keyof E>(event: K, handler: E[K]): void {
    this.#handlers.get(event)?.delete(handler);
  }

  /** Whether anything listens to `event`. */
  protected listens(event: keyof E): boolean {
    return (this.#handlers.get(event)?.size ?? 0) > 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.#handlers.get(event);
    if (set === undefined) return;
    for (const h of [...set]) {
      try {
        (h as (...a: Parameters<E[K]>) => void)(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}

/**
 * Connections per client address: how many each address holds, and how
 * many it opened in the last second (a token bucket per address, refilled
 * continuously). Addresses with nothing open and a full bucket are dropped,
 * so the table holds only the addresses in use.
 */
export interface AddressLimits {
  readonly maxConnectionsPerAddress: number;
  readonly connectsPerAddressPerSecond: number;
}

interface Entry {
  open: number;
  tokens: number;
  at: number;
}

export class AddressTable {
  readonly #limits: AddressLimits;
  readonly #byAddress = new Map<string, Entry>();

  constructor(limits: AddressLimits) {
    this.#limits = limits;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#byAddress.size;
  }

  /** Why `address` may not open a connection now (`count` or `rate`), or undefined if it may. */
  refuse(address: string, now: number): 'count' | 'rate' | undefined {
    const e = this.#byAddress.get(address);
    if (e === undefined) return undefined;
    if (e.open >= this.#limits.maxConnectionsPerAddress) return 'count';
    this.#refill(e, now);
    return e.tokens < 1 ? 'rate' : undefined;
  }

  /** A connection from `address` opened. */
  opened(address: string, now: number): void {
    let e = this.#byAddress.get(address);
    if (e === undefined) {
      e = { open: 0, tokens: this.#limits.connectsPerAddressPerSecond, at: now };
      this.#byAddress.set(address, e);
    } else this.#refill(e, now);
    e.open++;
    e.tokens--;
  }

  /** A connection from `address` closed. */
  closed(address: string, now: number): void {
    const e = this.#byAddress.get(address);
    if (e === undefined) return;
    e.open--;
    this.#refill(e, now);
    if (e.open <= 0 && e.tokens >= this.#limits.connectsPerAddressPerSecond) this.#byAddress.delete(address);
  }

  #refill(e: Entry, now: number): void {
    const rate = this.#limits.connectsPerAddressPerSecond;
    e.tokens = Math.min(rate, e.tokens + ((now - e.at) / 1000) * rate);
    e.at = now;
  }
}

/** `::ffff:1.2.3.4` (an IPv4 address on a dual-stack socket) as `1.2.3.4`. */
export function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * The client's address: the socket's peer, or, when that peer is one of
 * `trusted` (a proxy in front of Silk), the last address of
 * `X-Forwarded-For` that is not a trusted proxy itself (each proxy appends
 * the address it received the request from, so only the entries a trusted
 * proxy added can be believed).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: ReadonlySet<string>): string {
  const p = plainAddress(peer ?? 'unknown');
  if (!trusted.has(p) || forwardedFor === undefined) return p;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let client = p;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plainAddress(hops[i]!.trim());
    if (hop === '') break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

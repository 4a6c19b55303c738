/**
 * The app every benchmark uses. The secret and key are for loopback
 * benchmarks only; they never leave the machine.
 */
export const BENCH_APP = {
  id: 'bench',
  secret: 'bench-secret-0123456789abcdef-0123456789',
  apiKey: 'bench-api-key-0123456789',
} as const;

/** The channel the fan-out scenario publishes on. */
export const BENCH_CHANNEL = 'bench';

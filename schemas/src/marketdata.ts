/**
 * Market data, derived from book events by the per-instrument market-data state machine
 * (packages/engine/src/marketdata). The exact event set and the checksum's bytes are defined there
 * and specified in schemas/PROTOCOL.md.
 */
export type CandleInterval = '1s' | '1m' | '1h';
export const CandleIntervalMs: { readonly [K in CandleInterval]: number } = { '1s': 1_000, '1m': 60_000, '1h': 3_600_000 };

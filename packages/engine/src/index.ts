/**
 * @bourse/engine public API: the trading domain's deterministic state machines, and the venue that
 * composes them.
 *
 * - book: `bookMachine`, `OrderBook` (one order book per instrument)
 * - risk: `ledgerMachine`, `holdFor` (one risk ledger per account, plus the `fees`/`clearing` ledgers)
 * - marketdata: `marketDataMachine`, `l2Snapshot`, `bbo` (derived from book events; the L2 client pieces
 *   — LocalBook, checksum — live in @bourse/schemas so the SDK can use them)
 * - venue: `Venue` (the saga in one process), routing, and the `VenueGateway` boundary for the edge
 * - strategy: `quotesFor` (the demo market maker)
 */
export * from './book/index.js';
export * from './risk/index.js';
export * from './marketdata/index.js';
export * from './venue/venue.js';
export type * from './venue/gateway.js';
export * from './strategy/market-maker.js';
export * from './host/index.js';
export * from './sim/index.js';

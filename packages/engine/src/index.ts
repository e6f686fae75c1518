/**
 * @bourse/engine public API: the trading domain's deterministic state machines.
 *
 * - book: `bookMachine`, `OrderBook` (one order book per instrument)
 * - risk: `ledgerMachine`, `holdFor` (one risk ledger per account, plus the `fees`/`clearing` ledgers)
 * - marketdata: `marketDataMachine`, `LocalBook`, checksums (derived from book events)
 *
 * Names are checked for clashes across the three: none today (the book's `Level` is internal; the
 * market data `Levels` is its own class).
 */
export * from './book/index.js';
export * from './risk/index.js';
// marketdata/index.ts exists and compiles in the working tree but is not committed yet; exporting it
// here before it is would leave this commit unbuildable. Uncomment in the commit that adds marketdata/.
// export * from './marketdata/index.js';

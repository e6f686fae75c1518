/**
 * The random traders shared by venue.test.ts and host.test.ts: a cash and a margin instrument, four
 * accounts (a4 thinly funded, so marks can liquidate it), and an fc arbitrary of their operations.
 * One definition, so the synchronous Venue and the actor host are always driven by the same workload.
 */
import fc from 'fast-check';
import { defineInstrument } from '@bourse/schemas';
import type { Side } from '@bourse/schemas';
import type { OrderRequest } from '../src/venue/venue.js';

export const SPOT = defineInstrument({ symbol: 'BTC-USD', tickSize: 5, lotSize: 1, minQty: 1, maxQty: 50, makerFeeBps: 10, takerFeeBps: 25, baseMultiplier: 100 });
export const PERP = defineInstrument({
  symbol: 'BTC-PERP', mode: 'margin', base: 'BTC', quote: 'USD', tickSize: 5, lotSize: 1, minQty: 1, maxQty: 50,
  makerFeeBps: 5, takerFeeBps: 20, maxLeverage: 10, maintenanceMarginBps: 500,
});
/** a3 has the longest id an account may have (64 characters): ids the venue derives from it must fit. */
export const ACCOUNTS = ['a1', 'a2', `a3${'-'.repeat(61)}@`, 'a4'];
export const MID = 1_000;

export type Op =
  | { k: 'deposit'; acct: number; asset: 'USD' | 'BTC'; amount: number }
  | { k: 'withdraw'; acct: number; asset: 'USD' | 'BTC'; amount: number }
  | { k: 'place'; acct: number; perp: boolean; side: Side; market: boolean; tif: 'GTC' | 'IOC' | 'FOK'; offset: number; qty: number; leverage: number; coid: boolean }
  | { k: 'cancel'; acct: number; nth: number }
  | { k: 'amend'; acct: number; nth: number; offset: number; qty: number }
  | { k: 'mass'; acct: number; perp: boolean }
  | { k: 'mark'; offset: number }
  | { k: 'tick'; dt: number };

// Random deposits go to a1..a3 only, so a4 stays thin.
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ k: fc.constant('deposit' as const), acct: fc.nat(2), asset: fc.constantFrom('USD' as const, 'BTC' as const), amount: fc.integer({ min: 1, max: 2_000_000 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('withdraw' as const), acct: fc.nat(3), asset: fc.constantFrom('USD' as const, 'BTC' as const), amount: fc.integer({ min: 1, max: 500_000 }) }) },
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant('place' as const), acct: fc.nat(3), perp: fc.boolean(), side: fc.constantFrom('buy' as const, 'sell' as const),
      market: fc.integer({ min: 0, max: 5 }).map((n) => n === 0), tif: fc.constantFrom('GTC' as const, 'GTC' as const, 'GTC' as const, 'IOC' as const, 'FOK' as const),
      offset: fc.integer({ min: -6, max: 6 }), qty: fc.integer({ min: 1, max: 12 }), leverage: fc.integer({ min: 1, max: 10 }), coid: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('cancel' as const), acct: fc.nat(3), nth: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('amend' as const), acct: fc.nat(3), nth: fc.nat(20), offset: fc.integer({ min: -4, max: 4 }), qty: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('mass' as const), acct: fc.nat(3), perp: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('mark' as const), offset: fc.integer({ min: -40, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('tick' as const), dt: fc.integer({ min: 1, max: 90_000 }) }) },
);

/** Every account's opening deposits: a4 gets 3,000 USD, the others 3,000,000. */
export const funded: Op[] = ACCOUNTS.flatMap((_, acct) => [
  { k: 'deposit', acct, asset: 'USD', amount: acct === 3 ? 3_000 : 3_000_000 } as Op,
  { k: 'deposit', acct, asset: 'BTC', amount: 5_000 } as Op,
]);

/**
 * The order a `place` op sends. Resting orders spread around MID; IOC and FOK lean across it, so they
 * find liquidity; market orders carry a protection price. `n` makes the clientOrderId unique.
 */
export function orderRequest(op: Extract<Op, { k: 'place' }>, n: number): OrderRequest {
  const symbol = op.perp ? PERP.symbol : SPOT.symbol;
  const lean = op.tif === 'GTC' ? op.offset : (op.side === 'buy' ? 1 : -1) * Math.abs(op.offset);
  const price = MID + lean * 5;
  const cap = op.side === 'buy' ? price + 50 : price - 50;
  const base = op.market
    ? { symbol, side: op.side, orderType: 'market' as const, tif: op.tif === 'GTC' ? ('IOC' as const) : op.tif, price: cap, qty: op.qty }
    : { symbol, side: op.side, orderType: 'limit' as const, tif: op.tif, price, qty: op.qty };
  return { ...base, ...(op.perp ? { leverage: op.leverage } : {}), ...(op.coid ? { clientOrderId: `c${n}` } : {}) };
}

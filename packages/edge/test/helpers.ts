/** Shared setup for edge tests: a FakeGateway (test-only, in memory) behind a real edge on 127.0.0.1. */
import { defineInstrument } from '@bourse/schemas';
import type { Instrument } from '@bourse/schemas';
import { startEdge, type Edge } from '../src/index.js';
import type { KeySpec } from '../src/auth.js';
import { FakeGateway } from './fake-gateway.js';

export const BTC: Instrument = defineInstrument({
  symbol: 'BTC-USD', base: 'BTC', quote: 'USD', tickSize: 50, lotSize: 1, minQty: 1, maxQty: 10_000,
  baseMultiplier: 100_000, quoteMultiplier: 1, makerFeeBps: 2, takerFeeBps: 5, priceBandBps: 1_000, referencePrice: 6_500_000,
});

export const KEYS: Record<string, KeySpec> = {
  alice: { key: 'alice.secret-a', role: 'trader', accounts: ['alice'], ordersPerSec: 100_000, messagesPerSec: 100_000 },
  bob: { key: 'bob.secret-b', role: 'marketMaker', accounts: ['bob'] },
  broker: { key: 'broker.secret-k', role: 'broker', accounts: ['alice', 'bob'] },
  analyst: { key: 'analyst.secret-n', role: 'analyst', accounts: ['*'] },
  admin: { key: 'admin.secret-d', role: 'admin' },
  slow: { key: 'slow.secret-s', role: 'trader', accounts: ['carol'], ordersPerSec: 5, messagesPerSec: 1_000 },
  chatty: { key: 'chatty.secret-c', role: 'trader', accounts: ['carol'], ordersPerSec: 1_000, messagesPerSec: 10 },
};

export const ACCOUNTS = ['alice', 'bob', 'carol'];

export interface World {
  readonly gw: FakeGateway;
  readonly edge: Edge;
  close(): Promise<void>;
}

export async function world(opts: { heartbeatMs?: number; frameBytesMax?: number } = {}): Promise<World> {
  const gw = new FakeGateway([BTC]);
  const ctx = { traceId: 'setup' };
  for (const a of ACCOUNTS) {
    await gw.openAccount(a, ctx);
    await gw.deposit(a, 'USD', 10_000_000_000_000, `usd-${a}`, ctx);
    await gw.deposit(a, 'BTC', 100_000_000_000, `btc-${a}`, ctx);
  }
  const edge = await startEdge({ gateway: gw, port: 0, keys: Object.values(KEYS), logLevel: 'silent', ...opts });
  return { gw, edge, close: () => edge.close() };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until true (or fails after `ms`). */
export async function until(cond: () => boolean, ms = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * `bourse demo`: the engine core alone, in one process and in memory (no journal, no network).
 *
 * It runs the real book, risk ledgers and market data (src/venue) with a demo spot instrument
 * (BTC-USD) and a margin perpetual (BTC-PERP). A market maker quotes both around a seeded random-walk
 * fair price, and three takers trade against it. Every second it prints each book's BBO, the last
 * trade, order and trade rates, and the conservation check of every asset.
 *
 * Everything random comes from the seed, and the venue itself is deterministic: the same seed and
 * the same number of steps give the same trades. The network edge, persistence through the actor
 * runtime and the HTTP API are not here yet (see ARCHITECTURE.md).
 */
import { defineInstrument } from '@bourse/schemas';
import type { Instrument, Side } from '@bourse/schemas';
import { Venue, quotesFor } from '@bourse/engine';

export interface DemoOptions {
  /** Stop after this many seconds (default: run until Ctrl-C). */
  readonly seconds: number | undefined;
  readonly seed: number;
  /** Simulated steps per second (each step: requotes and taker orders). */
  readonly stepsPerSec?: number;
  readonly print?: (line: string) => void;
}

export const DEMO_INSTRUMENTS: readonly Instrument[] = [
  // Prices in cents per BTC, quantities in 0.001 BTC (baseMultiplier 100_000 satoshi),
  // notional = price * qty cents-per-BTC * 0.001 BTC = price * qty / 1000 USD cents: quoteMultiplier 1 means
  // the USD asset is counted in 1/1000 cent (a "milli-cent").
  defineInstrument({
    symbol: 'BTC-USD', base: 'BTC', quote: 'USD', tickSize: 50, lotSize: 1, minQty: 1, maxQty: 10_000,
    baseMultiplier: 100_000, quoteMultiplier: 1, makerFeeBps: 2, takerFeeBps: 5, priceBandBps: 1_000, referencePrice: 6_500_000,
    marketMaxLevels: 10, marketMaxSlippageBps: 200,
  }),
  defineInstrument({
    symbol: 'BTC-PERP', mode: 'margin', base: 'BTC', quote: 'USD', tickSize: 50, lotSize: 1, minQty: 1, maxQty: 10_000,
    baseMultiplier: 1, quoteMultiplier: 1, makerFeeBps: 1, takerFeeBps: 4, maxLeverage: 20, maintenanceMarginBps: 250,
    priceBandBps: 1_000, referencePrice: 6_500_000, marketMaxLevels: 10, marketMaxSlippageBps: 200,
  }),
];

/** mulberry32: a small seeded PRNG, for the demo's traders (never inside a state machine). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The demo world: a venue, its funded accounts and the traders' next move. One `step` is deterministic given the seed. */
export class Demo {
  readonly venue = new Venue(DEMO_INSTRUMENTS);
  readonly rnd: () => number;
  fair = 6_500_000;
  ts = 1_700_000_000_000;
  orders = 0;
  trades = 0;
  rejects = 0;
  readonly lastTrade = new Map<string, number>();
  readonly #mmOrders = new Map<string, number[]>();

  constructor(seed: number) {
    this.rnd = prng(seed);
    const v = this.venue;
    v.subscribe((e) => {
      if (e.kind === 'book' && e.event.type === 'Fill') {
        this.trades++;
        this.lastTrade.set(e.stream.slice('book/'.length), e.event.price);
      }
    });
    for (const a of ['mm-1', 'taker-1', 'taker-2', 'taker-3']) {
      v.openAccount(a);
      v.deposit(this.ts, a, 'USD', 50_000_000_000_000, `seed-usd-${a}`); // $500M in milli-cents
      v.deposit(this.ts, a, 'BTC', 100_000_000_000, `seed-btc-${a}`); // 1000 BTC in satoshi
    }
  }

  step(dtMs: number): void {
    this.ts += dtMs;
    const v = this.venue;
    this.fair = Math.max(1_000_000, this.fair + Math.round((this.rnd() - 0.5) * 4) * 50);
    for (const i of DEMO_INSTRUMENTS) {
      // The market maker cancels its quotes and quotes again around fair value.
      for (const id of this.#mmOrders.get(i.symbol) ?? []) v.cancel(this.ts, 'mm-1', i.symbol, id);
      const ids: number[] = [];
      for (const q of quotesFor({ fair: this.fair, inventory: 0 }, { tick: i.tickSize, spreadTicks: 1, levels: 5, qty: 20, skewTicksPerQty: 0 })) {
        const r = v.place(this.ts, 'mm-1', { symbol: i.symbol, side: q.side, orderType: 'limit', tif: 'GTC', price: q.price, qty: q.qty, postOnly: true, ...(i.mode === 'margin' ? { leverage: 5 } : {}) });
        this.orders++;
        if (r.orderId !== undefined && r.rejected === undefined) ids.push(r.orderId);
        else this.rejects++;
      }
      this.#mmOrders.set(i.symbol, ids);
      // Takers send IOC orders that cross the spread now and then.
      for (const t of ['taker-1', 'taker-2', 'taker-3']) {
        if (this.rnd() < 0.5) continue;
        const side: Side = this.rnd() < 0.5 ? 'buy' : 'sell';
        const price = this.fair + (side === 'buy' ? 1 : -1) * Math.floor(this.rnd() * 4) * i.tickSize;
        const r = v.place(this.ts, t, { symbol: i.symbol, side, orderType: 'limit', tif: 'IOC', price, qty: 1 + Math.floor(this.rnd() * 15), ...(i.mode === 'margin' ? { leverage: 3 } : {}) });
        this.orders++;
        if (r.rejected !== undefined) this.rejects++;
      }
    }
    const last = this.lastTrade.get('BTC-PERP');
    if (last !== undefined) v.mark(this.ts, 'BTC-PERP', last);
    v.tick(this.ts);
  }
}

const fmtPrice = (p: number | undefined) => (p === undefined || p === 0 ? '-' : `$${(p / 100).toFixed(2)}`);

export async function runDemo(opts: DemoOptions): Promise<void> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const stepsPerSec = opts.stepsPerSec ?? 20;
  const demo = new Demo(opts.seed);
  print(`Bourse embedded venue (in-process, deterministic; seed ${opts.seed})`);
  print(`instruments: ${DEMO_INSTRUMENTS.map((i) => `${i.symbol} (${i.mode})`).join(', ')}; accounts: mm-1, taker-1..3`);
  print(opts.seconds === undefined ? 'Ctrl-C to stop.' : `running for ${opts.seconds} s.`);
  let stop = false;
  const onSig = () => { stop = true; };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const started = Date.now();
  let prevOrders = 0;
  let prevTrades = 0;
  try {
    for (let sec = 1; !stop && (opts.seconds === undefined || sec <= opts.seconds); sec++) {
      for (let k = 0; k < stepsPerSec && !stop; k++) {
        demo.step(1000 / stepsPerSec);
        await new Promise((r) => setTimeout(r, 1000 / stepsPerSec));
      }
      const parts: string[] = [];
      for (const i of DEMO_INSTRUMENTS) {
        const b = demo.venue.books.get(i.symbol)!.state;
        const bid = b.depth('buy', 1)[0];
        const ask = b.depth('sell', 1)[0];
        parts.push(`${i.symbol} ${fmtPrice(bid?.price)} x ${bid?.qty ?? 0} / ${fmtPrice(ask?.price)} x ${ask?.qty ?? 0} last ${fmtPrice(demo.lastTrade.get(i.symbol))}`);
      }
      const bad = demo.venue.conservation();
      parts.push(`orders/s ${demo.orders - prevOrders} trades/s ${demo.trades - prevTrades} rejects ${demo.rejects}`);
      parts.push(bad.length === 0 ? 'assets conserved' : `CONSERVATION VIOLATED ${JSON.stringify(bad)}`);
      prevOrders = demo.orders;
      prevTrades = demo.trades;
      print(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${parts.join(' | ')}`);
      if (bad.length) throw new Error('conservation violated');
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
  print(`stopped: ${demo.orders} orders, ${demo.trades} trades, ${demo.rejects} rejects.`);
}

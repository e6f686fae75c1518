import { expect } from 'chai';
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';
import {
  CandleIntervalMs,
  candleIntervals,
  mdBatchEventsMax,
  type BookEvent,
  type CandleClosed,
  type CandleInterval,
  type CandleUpdate,
  type L2Delta,
  type Level,
  type MdCommand,
  type MdEvent,
  type Quote,
  type Side,
  type TradeTick,
} from '@bourse/schemas';
import { marketDataMachine, l2Snapshot, bbo, type MdState } from '../src/marketdata/machine.js';
import { LocalBook } from '../src/marketdata/localbook.js';
import { checksumOf, checksumString } from '../src/marketdata/checksum.js';

const SYMBOL = 'BTC-USD';

// ------------------------------------------------------------------ a naive reference book
// Produces a consistent BookEvent stream (the real book lives in src/book; this test must not depend on it).

interface ROrder { id: number; account: string; side: Side; price: number; qty: number }

class RefBook {
  bids: ROrder[] = []; // best first, then time
  asks: ROrder[] = [];
  nextTradeId = 1;
  nextOrderId = 1;

  private sideOf(side: Side): ROrder[] { return side === 'buy' ? this.bids : this.asks; }
  private find(id: number): ROrder | undefined { return this.bids.find((o) => o.id === id) ?? this.asks.find((o) => o.id === id); }
  private remove(o: ROrder): void { const l = this.sideOf(o.side); l.splice(l.indexOf(o), 1); }
  private insert(o: ROrder): void {
    const l = this.sideOf(o.side);
    const better = (p: number) => (o.side === 'buy' ? p < o.price : p > o.price);
    const i = l.findIndex((x) => better(x.price));
    if (i < 0) l.push(o); else l.splice(i, 0, o);
  }

  /** Matches an incoming order; returns its remaining qty. `limit` 0 = market. */
  private match(ts: number, id: number, account: string, side: Side, limit: number, qty: number, out: BookEvent[], decrementBoth = false): number {
    const opp = side === 'buy' ? this.asks : this.bids;
    while (qty > 0 && opp.length > 0) {
      const m = opp[0]!;
      if (limit !== 0 && (side === 'buy' ? m.price > limit : m.price < limit)) break;
      const q = Math.min(qty, m.qty);
      if (decrementBoth && m.account === account) {
        // STP decrementBoth: both shrink by q, no trade. The maker's change is visible, the taker's is not.
        const mk = { ts, orderId: m.id, account, side: m.side, price: m.price };
        if (m.qty === q) {
          opp.shift();
          out.push({ type: 'OrderCancelled', ...mk, qty: q, reason: 'selfTrade', rested: true });
        } else {
          out.push({ type: 'OrderAmended', ...mk, oldPrice: m.price, oldQty: m.qty, qty: m.qty - q, priorityKept: true, rested: true });
          m.qty -= q;
        }
        const tk = { ts, orderId: id, account, side, price: limit };
        if (qty === q) out.push({ type: 'OrderCancelled', ...tk, qty: q, reason: 'selfTrade', rested: false });
        else out.push({ type: 'OrderAmended', ...tk, oldPrice: limit, oldQty: qty, qty: qty - q, priorityKept: true, rested: false });
        qty -= q;
        continue;
      }
      qty -= q;
      m.qty -= q;
      out.push({
        type: 'Fill', ts, tradeId: this.nextTradeId++, price: m.price, qty: q, takerOrderId: id, takerAccount: account, takerSide: side,
        makerOrderId: m.id, makerAccount: m.account, takerFee: 0, makerFee: 0, takerRemaining: qty, makerRemaining: m.qty,
      });
      if (m.qty === 0) opp.shift();
    }
    return qty;
  }

  place(ts: number, side: Side, kind: 'limit' | 'ioc' | 'market', price: number, qty: number, out: BookEvent[], decrementBoth = false): void {
    const id = this.nextOrderId++;
    const account = `acc-${id % 3}`;
    const limit = kind === 'market' ? 0 : price;
    out.push({
      type: 'OrderAccepted', ts, orderId: id, account, clientOrderId: undefined, side, orderType: kind === 'market' ? 'market' : 'limit',
      tif: kind === 'limit' ? 'GTC' : 'IOC', price: limit, qty, stopPrice: 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: decrementBoth ? 'decrementBoth' : 'cancelTaker',
    });
    const rem = this.match(ts, id, account, side, limit, qty, out, decrementBoth);
    if (rem === 0) return;
    if (kind === 'limit') {
      this.insert({ id, account, side, price, qty: rem });
      out.push({ type: 'OrderRested', ts, orderId: id, side, price, qty: rem });
    } else {
      out.push({ type: 'OrderCancelled', ts, orderId: id, account, side, price: limit, qty: rem, reason: kind === 'market' && rem === qty ? 'noLiquidity' : 'ioc', rested: false });
    }
  }

  cancel(ts: number, pick: number, out: BookEvent[]): void {
    const all = [...this.bids, ...this.asks];
    const o = all.length === 0 ? undefined : all[pick % all.length];
    if (!o || pick % 7 === 0) {
      out.push({ type: 'CommandRejected', ts, command: 'CancelOrder', orderId: 999_999, account: 'acc-0', clientOrderId: undefined, code: 2000 });
      return;
    }
    this.remove(o);
    out.push({ type: 'OrderCancelled', ts, orderId: o.id, account: o.account, side: o.side, price: o.price, qty: o.qty, reason: 'user', rested: true });
  }

  amend(ts: number, pick: number, newPrice: number, newQty: number, out: BookEvent[]): void {
    const all = [...this.bids, ...this.asks];
    const o = all.length === 0 ? undefined : this.find(all[pick % all.length]!.id);
    if (!o) {
      out.push({ type: 'CommandRejected', ts, command: 'AmendOrder', orderId: 999_999, account: 'acc-0', clientOrderId: undefined, code: 2000 });
      return;
    }
    const samePrice = pick % 2 === 0;
    const price = samePrice ? o.price : newPrice;
    const base = { type: 'OrderAmended' as const, ts, orderId: o.id, account: o.account, side: o.side, oldPrice: o.price, oldQty: o.qty, price, rested: true };
    if (price === o.price && newQty <= o.qty) {
      out.push({ ...base, qty: newQty, priorityKept: true });
      o.qty = newQty;
      return;
    }
    this.remove(o);
    out.push({ ...base, qty: newQty, priorityKept: false });
    const rem = this.match(ts, o.id, o.account, o.side, price, newQty, out);
    if (rem > 0) {
      this.insert({ ...o, price, qty: rem });
      out.push({ type: 'OrderRested', ts, orderId: o.id, side: o.side, price, qty: rem });
    }
  }

  stop(ts: number, side: Side, price: number, out: BookEvent[]): void {
    const id = this.nextOrderId++;
    out.push({ type: 'StopArmed', ts, orderId: id, side, stopPrice: price });
  }

  l2(side: Side): Level[] {
    const m = new Map<number, number>();
    for (const o of this.sideOf(side)) m.set(o.price, (m.get(o.price) ?? 0) + o.qty);
    return [...m.entries()].sort((a, b) => (side === 'buy' ? b[0] - a[0] : a[0] - b[0]));
  }
}

// ------------------------------------------------------------------ naive candles from the tape

function naiveCandles(tape: readonly TradeTick[], interval: CandleInterval): Map<number, Omit<CandleClosed, 'type' | 'ts' | 'symbol'>> {
  const ms = CandleIntervalMs[interval];
  const res = new Map<number, Omit<CandleClosed, 'type' | 'ts' | 'symbol'>>();
  for (const t of tape) {
    const start = t.ts - (t.ts % ms);
    const c = res.get(start);
    if (!c) res.set(start, { interval, start, open: t.price, high: t.price, low: t.price, close: t.price, volume: t.qty, trades: 1 });
    else res.set(start, { ...c, high: Math.max(c.high, t.price), low: Math.min(c.low, t.price), close: t.price, volume: c.volume + t.qty, trades: c.trades + 1 });
  }
  return res;
}
const candleOf = (e: CandleClosed | CandleUpdate) => ({ interval: e.interval, start: e.start, open: e.open, high: e.high, low: e.low, close: e.close, volume: e.volume, trades: e.trades });

// ------------------------------------------------------------------ random workloads

type Op =
  | { op: 'place'; dt: number; side: Side; kind: 'limit' | 'ioc' | 'market'; price: number; qty: number; stp: boolean }
  | { op: 'cancel'; dt: number; pick: number }
  | { op: 'amend'; dt: number; pick: number; price: number; qty: number }
  | { op: 'stop'; dt: number; side: Side; price: number }
  | { op: 'tick'; dt: number };

const dtArb = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 700 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 90_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 5_000_000 }) },
);
const sideArb = fc.constantFrom<Side>('buy', 'sell');
const priceArb = fc.integer({ min: 80, max: 120 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: fc.constant('place' as const), dt: dtArb, side: sideArb, kind: fc.constantFrom('limit' as const, 'limit' as const, 'limit' as const, 'limit' as const, 'limit' as const, 'ioc' as const, 'market' as const), price: fc.integer({ min: 0, max: 40 }), qty: fc.integer({ min: 1, max: 12 }), stp: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('cancel' as const), dt: dtArb, pick: fc.nat(1000) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('amend' as const), dt: dtArb, pick: fc.nat(1000), price: priceArb, qty: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stop' as const), dt: dtArb, side: sideArb, price: priceArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), dt: dtArb }) },
);

/**
 * Runs a property with a fresh seed (or MD_SEED) and prints the seed if it fails. Shrinking long streams
 * with these per-step checks takes minutes, so by default the first counterexample is reported as is;
 * MD_SHRINK=1 shrinks it (bounded to 60 s) when replaying a seed.
 */
function check<T>(name: string, arb: fc.Arbitrary<T>, body: (x: T) => void, numRuns: number): void {
  const seed = process.env.MD_SEED !== undefined ? Number(process.env.MD_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const shrink = process.env.MD_SHRINK === '1';
  try {
    fc.assert(fc.property(arb, body), { seed, numRuns, endOnFailure: !shrink, ...(shrink ? { interruptAfterTimeLimit: 60_000 } : {}) });
  } catch (err) {
    console.error(`\n${name} failed: replay with MD_SEED=${seed} (add MD_SHRINK=1 to shrink)`);
    throw err;
  }
}

function levelsOf(s: MdState): { bids: Level[]; asks: Level[] } {
  return { bids: s.bids.top(), asks: s.asks.top() };
}

// ------------------------------------------------------------------ the property

describe('marketdata - random book streams against a reference', function () {
  this.timeout(60_000);

  it('marketdata - L2, BBO, seq, local book, candles and replay hash agree with the reference after every step', () => {
    const arb = fc.record({
      ops: fc.array(opArb, { minLength: 1, maxLength: 200, size: 'max' }),
      batched: fc.boolean(),
      snapAt: fc.nat(200),
      t0: fc.integer({ min: 0, max: 10_000_000 }),
    });
    const seen = { runs: 0, steps: 0, deltas: 0, trades: 0, closed1s: 0, closed1m: 0, closed1h: 0, maxLevels: 0, deepSteps: 0, localChecks: 0 };
    check('marketdata property', arb, ({ ops, batched, snapAt, t0 }) => {
      seen.runs++;
      const md = marketDataMachine(SYMBOL);
      const ref = new RefBook();
      let s = md.init();
      let ts = t0;
      const all: MdEvent[] = [];
      let lastSeq = 0;
      let lastQuote: Quote | undefined;
      const tape: TradeTick[] = [];
      const closed: Record<CandleInterval, CandleClosed[]> = { '1s': [], '1m': [], '1h': [] };
      const updates: Record<CandleInterval, CandleUpdate | undefined> = { '1s': undefined, '1m': undefined, '1h': undefined };
      let local: LocalBook | undefined;
      let replay: MdState | undefined;
      const feed = (cmd: MdCommand): MdEvent[] => {
        const out: MdEvent[] = [];
        s = md.step(s, cmd, out);
        return out;
      };

      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        ts += op.dt;
        if (i === Math.min(snapAt, ops.length - 1)) {
          local = new LocalBook(SYMBOL);
          expect(local.applySnapshot(l2Snapshot(s, ts))).to.equal('ok');
          replay = md.restore(JSON.parse(JSON.stringify(md.snapshot(s))));
        }
        const bookEvents: BookEvent[] = [];
        switch (op.op) {
          case 'place': {
            // Buyers bid 63..103 and sellers offer 97..137: the spread crosses often, and the book grows deep.
            const price = op.side === 'buy' ? 103 - op.price : 97 + op.price;
            ref.place(ts, op.side, op.kind, price, op.qty, bookEvents, op.stp);
            break;
          }
          case 'cancel': ref.cancel(ts, op.pick, bookEvents); break;
          case 'amend': ref.amend(ts, op.pick, op.price, op.qty, bookEvents); break;
          case 'stop': ref.stop(ts, op.side, op.price, bookEvents); break;
          case 'tick': break;
        }
        const out: MdEvent[] = [];
        if (op.op === 'tick') out.push(...feed({ type: 'MarketDataTick', ts }));
        else if (batched) out.push(...feed({ type: 'BookEvents', events: bookEvents }));
        else for (const e of bookEvents) out.push(...feed(e));
        all.push(...out);

        // Output stream: seq without gaps, quotes only on change, local book follows.
        let deltasThisStep = 0;
        for (const e of out) {
          expect(e.type, 'no input is ignored on a consistent stream').to.not.equal('MdInputIgnored');
          if (e.type === 'L2Delta') {
            deltasThisStep++;
            expect(e.seq).to.equal(lastSeq + 1);
            lastSeq = e.seq;
            expect(e.bids.length + e.asks.length).to.be.greaterThan(0);
            if (local) expect(local.applyDelta(e)).to.equal('ok');
          } else if (e.type === 'Quote') {
            if (lastQuote) {
              const same = lastQuote.bidPrice === e.bidPrice && lastQuote.bidQty === e.bidQty && lastQuote.askPrice === e.askPrice && lastQuote.askQty === e.askQty;
              expect(same, 'a quote is emitted only when the BBO changes').to.equal(false);
            }
            lastQuote = e;
          } else if (e.type === 'TradeTick') tape.push(e);
          else if (e.type === 'CandleClosed') closed[e.interval].push(e);
          else if (e.type === 'CandleUpdate') updates[e.interval] = e;
          if (replay) replay = md.apply(replay, e);
        }
        if (batched && op.op !== 'tick') expect(deltasThisStep).to.be.at.most(1);

        // L2 equals the reference's aggregated book.
        const want = { bids: ref.l2('buy'), asks: ref.l2('sell') };
        expect(levelsOf(s)).to.deep.equal(want);
        expect(s.seq).to.equal(lastSeq);

        // BBO.
        const [bb, ba] = [want.bids[0], want.asks[0]];
        const wantBbo = { bidPrice: bb?.[0] ?? 0, bidQty: bb?.[1] ?? 0, askPrice: ba?.[0] ?? 0, askQty: ba?.[1] ?? 0 };
        expect(bbo(s)).to.deep.equal(wantBbo);
        const q = lastQuote ?? { bidPrice: 0, bidQty: 0, askPrice: 0, askQty: 0 };
        expect({ bidPrice: q.bidPrice, bidQty: q.bidQty, askPrice: q.askPrice, askQty: q.askQty }).to.deep.equal(wantBbo);

        seen.maxLevels = Math.max(seen.maxLevels, want.bids.length, want.asks.length);
        if (want.bids.length > 10 || want.asks.length > 10) seen.deepSteps++;
        // Local book rebuilt from a snapshot plus later deltas.
        if (local) {
          seen.localChecks++;
          expect(local.needsResync).to.equal(false);
          expect(local.seq).to.equal(s.seq);
          expect(local.depth()).to.deep.equal(want);
          expect(local.checksum()).to.equal(checksumOf(want.bids, want.asks));
          expect(local.checksum()).to.equal(l2Snapshot(s, ts).checksum);
        }

        // Candles against a naive recomputation from the tape; one close per closed non-empty bucket.
        for (const iv of candleIntervals) {
          const ms = CandleIntervalMs[iv];
          const naive = naiveCandles(tape, iv);
          const wantClosed = [...naive.values()].filter((c) => c.start + ms <= ts).sort((a, b) => a.start - b.start);
          expect(closed[iv].map(candleOf), `closed ${iv}`).to.deep.equal(wantClosed);
          const open = [...naive.values()].filter((c) => c.start + ms > ts);
          expect(open.length).to.be.at.most(1);
          const slot = s.candles.find((c) => c.interval === iv)!;
          if (open.length === 0) expect(slot.open, `no open ${iv}`).to.equal(null);
          else {
            expect(candleOf(updates[iv]!), `update ${iv}`).to.deep.equal(open[0]);
            expect({ interval: iv, ...slot.open }).to.deep.equal(open[0]);
          }
        }

        // snapshot/restore + apply reproduces the live state hash.
        if (replay) expect(md.stateHash(replay)).to.equal(md.stateHash(s));
      }

      seen.steps += ops.length;
      seen.deltas += lastSeq;
      seen.trades += tape.length;
      seen.closed1s += closed['1s'].length;
      seen.closed1m += closed['1m'].length;
      seen.closed1h += closed['1h'].length;
      // Replaying every event from init gives the live hash too.
      let r = md.init();
      for (const e of all) r = md.apply(r, e);
      expect(md.stateHash(r)).to.equal(md.stateHash(s));
    }, 150);
    // The generator must actually reach what the checks are about (and deeper than the checksum's 10 levels).
    console.log(`      coverage: ${JSON.stringify(seen)}`);
    expect(seen.trades).to.be.greaterThan(100);
    expect(seen.closed1s).to.be.greaterThan(10);
    expect(seen.closed1m).to.be.greaterThan(3);
    expect(seen.closed1h).to.be.greaterThan(0);
    expect(seen.deepSteps).to.be.greaterThan(100);
    expect(seen.localChecks).to.be.greaterThan(100);
  });
});

// ------------------------------------------------------------------ tables

const rested = (ts: number, orderId: number, side: Side, price: number, qty: number): BookEvent => ({ type: 'OrderRested', ts, orderId, side, price, qty });
const fill = (ts: number, tradeId: number, takerSide: Side, price: number, qty: number): BookEvent => ({
  type: 'Fill', ts, tradeId, price, qty, takerOrderId: 90, takerAccount: 'a', takerSide, makerOrderId: 1, makerAccount: 'b', takerFee: 0, makerFee: 0, takerRemaining: 0, makerRemaining: 0,
});
const cancelled = (ts: number, side: Side, price: number, qty: number, wasRested = true): BookEvent => ({
  type: 'OrderCancelled', ts, orderId: 1, account: 'a', side, price, qty, reason: 'user', rested: wasRested,
});
const amended = (ts: number, side: Side, oldPrice: number, oldQty: number, price: number, qty: number, priorityKept: boolean): BookEvent => ({
  type: 'OrderAmended', ts, orderId: 1, account: 'a', side, oldPrice, oldQty, price, qty, priorityKept, rested: true,
});

function run(cmds: MdCommand[]): { s: MdState; out: MdEvent[] } {
  const md = marketDataMachine(SYMBOL);
  let s = md.init();
  const out: MdEvent[] = [];
  for (const c of cmds) s = md.step(s, c, out);
  return { s, out };
}
const batch = (...events: BookEvent[]): MdCommand => ({ type: 'BookEvents', events });

describe('marketdata - how book events move L2', () => {
  const cases: { name: string; cmds: MdCommand[]; bids: Level[]; asks: Level[] }[] = [
    { name: 'rested adds', cmds: [batch(rested(1, 1, 'buy', 100, 3), rested(1, 2, 'buy', 100, 2), rested(1, 3, 'sell', 105, 1))], bids: [[100, 5]], asks: [[105, 1]] },
    { name: 'fill removes from the maker side', cmds: [batch(rested(1, 1, 'sell', 105, 4)), batch(fill(2, 1, 'buy', 105, 3))], bids: [], asks: [[105, 1]] },
    { name: 'cancel of a rested order removes', cmds: [batch(rested(1, 1, 'buy', 100, 4)), batch(cancelled(2, 'buy', 100, 4))], bids: [], asks: [] },
    { name: 'cancel of a never-rested remainder changes nothing', cmds: [batch(rested(1, 1, 'buy', 100, 4)), batch(cancelled(2, 'buy', 100, 9, false))], bids: [[100, 4]], asks: [] },
    { name: 'amend keeping priority shrinks in place', cmds: [batch(rested(1, 1, 'buy', 100, 4)), batch(amended(2, 'buy', 100, 4, 100, 1, true))], bids: [[100, 1]], asks: [] },
    { name: 'amend losing priority leaves, then re-rests', cmds: [batch(rested(1, 1, 'buy', 100, 4)), batch(amended(2, 'buy', 100, 4, 101, 6, false), rested(2, 1, 'buy', 101, 6))], bids: [[101, 6]], asks: [] },
    { name: 'a decremented STP taker (rested: false) is invisible, its maker shrinks', cmds: [batch(rested(1, 1, 'sell', 100, 4)), batch({ ...amended(2, 'sell', 100, 4, 100, 1, true) }, { ...amended(2, 'buy', 100, 3, 100, 0, true), rested: false } as BookEvent)], bids: [], asks: [[100, 1]] },
    { name: 'stops and accepts are invisible', cmds: [batch({ type: 'StopArmed', ts: 1, orderId: 5, side: 'buy', stopPrice: 120 }, { type: 'TradingStatusChanged', ts: 1, status: 'halted' })], bids: [], asks: [] },
  ];
  for (const c of cases) {
    it(`marketdata - ${c.name}`, () => {
      const { s } = run(c.cmds);
      expect(levelsOf(s)).to.deep.equal({ bids: c.bids, asks: c.asks });
    });
  }

  it('marketdata - one batch emits one coalesced delta, and none when nothing visible changed', () => {
    const { out } = run([batch(rested(1, 1, 'buy', 100, 3), rested(1, 2, 'sell', 101, 2)), batch(rested(2, 3, 'buy', 99, 1), cancelled(2, 'buy', 99, 1)), batch(fill(3, 1, 'sell', 100, 1), fill(3, 2, 'sell', 100, 2))]);
    const deltas = out.filter((e): e is L2Delta => e.type === 'L2Delta');
    expect(deltas.map((d) => [d.seq, d.bids, d.asks])).to.deep.equal([
      [1, [[100, 3]], [[101, 2]]],
      [2, [[100, 0]], []],
    ]);
    expect(out.map((e) => e.type)).to.deep.equal(['L2Delta', 'Quote', 'TradeTick', 'TradeTick', 'L2Delta', 'Quote', 'CandleUpdate', 'CandleUpdate', 'CandleUpdate']);
  });
});

describe('marketdata - candles', () => {
  it('marketdata - a tick closes the open candle once; empty intervals emit nothing', () => {
    const { s, out } = run([
      batch(rested(1_000, 1, 'sell', 100, 10)),
      batch(fill(1_200, 1, 'buy', 100, 2)),
      batch(fill(1_900, 2, 'buy', 100, 3)),
      { type: 'MarketDataTick', ts: 1_999 },
      { type: 'MarketDataTick', ts: 2_000 },
      { type: 'MarketDataTick', ts: 9_000 },
      { type: 'MarketDataTick', ts: 60_000 },
    ]);
    const closes = out.filter((e): e is CandleClosed => e.type === 'CandleClosed');
    expect(closes.map((c) => [c.interval, c.start, c.ts, c.volume, c.trades])).to.deep.equal([
      ['1s', 1_000, 2_000, 5, 2],
      ['1m', 0, 60_000, 5, 2],
    ]);
    expect(s.candles.find((c) => c.interval === '1h')!.open).to.deep.include({ start: 0, volume: 5 });
  });
});

// ------------------------------------------------------------------ checksum spec

describe('marketdata - checksum', () => {
  it('marketdata - hashes the documented string (MARKETDATA.md examples)', () => {
    // These exact examples are in schemas/MARKETDATA.md; if this test changes, the spec must too.
    const examples: { bids: Level[]; asks: Level[]; text: string; crc: number }[] = [
      { bids: [], asks: [], text: '', crc: 0x00000000 },
      { bids: [[100, 5], [99, 3]], asks: [[101, 7]], text: '100:5:101:7:99:3', crc: EXAMPLE_CRC[1]! },
      {
        bids: Array.from({ length: 12 }, (_, i): Level => [5000 - i, 10 + i]),
        asks: [[5001, 1], [5003, 250]],
        text: '5000:10:5001:1:4999:11:5003:250:4998:12:4997:13:4996:14:4995:15:4994:16:4993:17:4992:18:4991:19',
        crc: EXAMPLE_CRC[2]!,
      },
    ];
    for (const ex of examples) {
      expect(checksumString(ex.bids, ex.asks)).to.equal(ex.text);
      expect(checksumOf(ex.bids, ex.asks)).to.equal(ex.crc);
      expect(zlibCrc32(ex.text)).to.equal(ex.crc);
    }
  });
});
const EXAMPLE_CRC: number[] = [0x00000000, 0x8da96285, 0x970d43b8];

// ------------------------------------------------------------------ local book

function feedFrom(cmds: MdCommand[]): { s: MdState; deltas: L2Delta[] } {
  const { s, out } = run(cmds);
  return { s, deltas: out.filter((e): e is L2Delta => e.type === 'L2Delta') };
}
const liveFeed = () => {
  const md = marketDataMachine(SYMBOL);
  let s = md.init();
  const first: MdEvent[] = [];
  s = md.step(s, batch(rested(1, 1, 'buy', 100, 3), rested(1, 2, 'sell', 102, 4)), first);
  const snap = l2Snapshot(s, 1);
  const later: MdEvent[] = [];
  s = md.step(s, batch(rested(2, 3, 'buy', 101, 1)), later);
  s = md.step(s, batch(fill(3, 1, 'buy', 102, 1)), later);
  s = md.step(s, batch(cancelled(4, 'buy', 100, 3)), later);
  return { s, snap, deltas: later.filter((e): e is L2Delta => e.type === 'L2Delta') };
};

describe('marketdata - LocalBook', () => {
  it('marketdata - LocalBook rebuilds from snapshot plus deltas and buffers deltas that come first', () => {
    const { s, snap, deltas } = liveFeed();
    const book = new LocalBook(SYMBOL);
    expect(book.applyDelta(deltas[0]!)).to.equal('buffered');
    expect(book.applySnapshot(snap)).to.equal('ok');
    expect(book.seq).to.equal(deltas[0]!.seq);
    expect(book.applyDelta(deltas[0]!)).to.equal('stale');
    for (const d of deltas.slice(1)) expect(book.applyDelta(d)).to.equal('ok');
    expect(book.depth()).to.deep.equal(levelsOf(s));
    expect(book.synced).to.equal(true);
  });

  it('marketdata - LocalBook detects a dropped delta (gap) and recovers from a new snapshot', () => {
    const { s, snap, deltas } = liveFeed();
    const book = new LocalBook(SYMBOL);
    book.applySnapshot(snap);
    expect(book.applyDelta(deltas[0]!)).to.equal('ok');
    expect(book.applyDelta(deltas[2]!)).to.equal('gap');
    expect(book.needsResync).to.equal(true);
    expect(book.applyDelta(deltas[1]!)).to.equal('resyncing');
    expect(book.applySnapshot(l2Snapshot(s, 9))).to.equal('ok');
    expect(book.needsResync).to.equal(false);
    expect(book.depth()).to.deep.equal(levelsOf(s));
  });

  it('marketdata - LocalBook detects a corrupted delta by its checksum', () => {
    const { snap, deltas } = liveFeed();
    const wrongQty = new LocalBook(SYMBOL);
    wrongQty.applySnapshot(snap);
    const d0 = deltas[0]!;
    expect(wrongQty.applyDelta({ ...d0, bids: d0.bids.map(([p, q]): Level => [p, q + 1]) })).to.equal('checksum');
    expect(wrongQty.needsResync).to.equal(true);
    const wrongSum = new LocalBook(SYMBOL);
    wrongSum.applySnapshot(snap);
    expect(wrongSum.applyDelta({ ...d0, checksum: (d0.checksum ^ 1) >>> 0 })).to.equal('checksum');
    const badSnap = new LocalBook(SYMBOL);
    expect(badSnap.applySnapshot({ ...snap, asks: [[102, 5]] })).to.equal('checksum');
  });

  it('marketdata - LocalBook answers garbage with invalid, never throws', () => {
    const { snap, deltas } = liveFeed();
    const garbage: unknown[] = [null, 1, 'x', {}, { ...deltas[0], bids: 'no' }, { ...deltas[0], bids: [[1.5, 1]] }, { ...deltas[0], symbol: 'ETH-USD' }, { ...deltas[0], seq: NaN }];
    for (const g of garbage) {
      const book = new LocalBook(SYMBOL);
      book.applySnapshot(snap);
      expect(book.applyDelta(g as L2Delta)).to.equal('invalid');
      expect(book.needsResync).to.equal(true);
      expect(new LocalBook(SYMBOL).applySnapshot(g as never)).to.equal('invalid');
    }
  });
});

// ------------------------------------------------------------------ bad input

describe('marketdata - bad input', () => {
  it('marketdata - garbage commands and events are ignored with a count, change nothing, and replay', () => {
    const md = marketDataMachine(SYMBOL);
    let s = md.init();
    const out: MdEvent[] = [];
    s = md.step(s, batch(rested(1, 1, 'buy', 100, 3)), out);
    const before = { ...levelsOf(s), seq: s.seq };
    const garbage: unknown[] = [
      null, 42, 'OrderRested', [], {}, { type: 'Nope', ts: 1 }, { type: 'BookEvents', events: 'x' }, { type: 'MarketDataTick', ts: -1 },
      { type: 'MarketDataTick', ts: 1.5 }, { ...rested(2, 2, 'buy', 100, 1), side: 'up' }, { ...rested(2, 2, 'buy', 100, 1), price: -5 },
      { ...rested(2, 2, 'buy', 100, 1), qty: 0.5 }, { ...rested(2, 2, 'buy', 100, 1), ts: 'now' }, { ...fill(2, 1, 'buy', 100, 1), qty: 'lots' },
      { ...cancelled(2, 'buy', 100, 1), rested: 'yes' }, amended(2, 'buy', 100, 1, 100, 5, true), amended(2, 'buy', 100, 3, 101, 1, true),
      { ...amended(2, 'buy', 100, 3, 101, 1, false), priorityKept: undefined }, { ...rested(2, 2, 'buy', Number.MAX_SAFE_INTEGER + 2, 1) },
    ];
    let ignored = 0;
    for (const g of garbage) {
      const o: MdEvent[] = [];
      expect(() => (s = md.step(s, g as MdCommand, o))).to.not.throw();
      expect(o.map((e) => e.type), JSON.stringify(g)).to.deep.equal(['MdInputIgnored']);
      ignored++;
      out.push(...o);
      const o2: MdEvent[] = [];
      s = md.step(s, { type: 'BookEvents', events: [g as BookEvent] }, o2);
      expect(o2.map((e) => e.type), `in a batch: ${JSON.stringify(g)}`).to.deep.equal(['MdInputIgnored']);
      ignored++;
      out.push(...o2);
    }
    expect(s.ignored).to.equal(ignored);
    expect({ ...levelsOf(s), seq: s.seq }).to.deep.equal(before);

    // Inconsistent: removes more than the level holds; the level is cleared and the input counted.
    const o3: MdEvent[] = [];
    s = md.step(s, batch(cancelled(3, 'buy', 100, 7)), o3);
    expect(o3.map((e) => e.type)).to.deep.equal(['MdInputIgnored', 'L2Delta', 'Quote']);
    expect((o3[0] as { reason: string }).reason).to.equal('inconsistent');
    out.push(...o3);

    // Oversized batch: the excess is ignored once.
    const big = Array.from({ length: mdBatchEventsMax + 3 }, (): BookEvent => ({ type: 'StopArmed', ts: 4, orderId: 1, side: 'buy', stopPrice: 1 }));
    const o4: MdEvent[] = [];
    s = md.step(s, { type: 'BookEvents', events: big }, o4);
    expect(o4.filter((e) => e.type === 'MdInputIgnored' && e.reason === 'tooLarge')).to.have.length(1);
    out.push(...o4);

    let r = md.init();
    for (const e of out) r = md.apply(r, e);
    expect(md.stateHash(r)).to.equal(md.stateHash(s));
    expect(() => md.apply(r, { type: 'Whatever' } as never)).to.not.throw();
    expect(() => md.apply(r, null as never)).to.not.throw();
  });

  it('marketdata - arbitrary values mixed into a valid stream never throw and still replay', () => {
    const arb = fc.array(fc.oneof(fc.anything(), fc.record({ type: fc.constantFrom('OrderRested', 'Fill', 'OrderCancelled', 'OrderAmended', 'BookEvents', 'MarketDataTick'), ts: fc.anything(), side: fc.anything(), price: fc.anything(), qty: fc.anything(), events: fc.anything() })), { maxLength: 40 });
    check('marketdata garbage property', arb, (inputs) => {
      const md = marketDataMachine(SYMBOL);
      let s = md.init();
      const out: MdEvent[] = [];
      s = md.step(s, batch(rested(1, 1, 'buy', 100, 3), rested(1, 2, 'sell', 101, 3)), out);
      for (const x of inputs) s = md.step(s, x as MdCommand, out);
      let r = md.init();
      for (const e of out) r = md.apply(r, e);
      expect(md.stateHash(r)).to.equal(md.stateHash(s));
      expect(s.ignored).to.equal(out.filter((e) => e.type === 'MdInputIgnored').length);
    }, 200);
  });
});

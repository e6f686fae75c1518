/**
 * Ledger properties over random histories, driven by a small test-side saga that stands in for the
 * order book: PlaceOrder on a user ledger; if held, the saga synthesizes book outcomes (fills between two
 * held orders of opposite sides at a price within both limits, partial fills, cancels, expiries, book
 * rejects, amends) and delivers BookReports to both sides and the fee / P&L legs to `fees` / `clearing`.
 *
 * Failing runs print fast-check's seed and path; replay one with FC_SEED=<seed> FC_PATH=<path>.
 * RISK_DEBUG=1 prints how often each event and reject code occurred across the random histories.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { BookReport, Fill, Instrument, LedgerCommand, LedgerEvent, LedgerKind, PlaceOrder, Side } from '@bourse/schemas';
import { Reject, defineInstrument, feeOf, rejectName, LEDGER_OPEN_ORDERS_MAX } from '@bourse/schemas';
import { ledgerMachine } from '../src/risk/ledger.js';
import type { LedgerState } from '../src/risk/ledger.js';

const replay = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true } : {};

/** Every reject code any test in this file provoked. */
const seen = new Set<number>();
const histogram = new Map<string, number>();

const BTC_USD = defineInstrument({ symbol: 'BTC-USD', tickSize: 5, lotSize: 2, minQty: 2, maxQty: 200, baseMultiplier: 100, makerFeeBps: 10, takerFeeBps: 25 });
const ETH_BTC = defineInstrument({ symbol: 'ETH-BTC', base: 'ETH', quote: 'BTC', quoteMultiplier: 3, baseMultiplier: 7, makerFeeBps: 0, takerFeeBps: 30, maxQty: 100 });
const ETH_PERP = defineInstrument({ symbol: 'ETH-PERP', mode: 'margin', base: 'ETH', quote: 'USDT', maxLeverage: 10, maintenanceMarginBps: 500, makerFeeBps: 5, takerFeeBps: 10, maxQty: 100 });
const SOL_PERP = defineInstrument({ symbol: 'SOL-PERP', mode: 'margin', base: 'SOL', quote: 'USDT', maxLeverage: 5, maintenanceMarginBps: 1000, takerFeeBps: 20, quoteMultiplier: 2, maxQty: 100 });
const INSTRUMENTS = [BTC_USD, ETH_BTC, ETH_PERP, SOL_PERP];
const MID: Record<string, number> = { 'BTC-USD': 100, 'ETH-BTC': 20, 'ETH-PERP': 100, 'SOL-PERP': 30 };
const ASSETS = ['USD', 'BTC', 'ETH', 'USDT'];
const CASH_ASSETS = ['USD', 'BTC', 'ETH'];
const USERS = ['u1', 'u2', 'u3', 'u4'];

/** What an open order needs held, computed independently of the ledger's code. */
function expectedHold(i: Instrument, o: { side: Side; price: number; qty: number; reduceOnly: boolean; leverage: number }): number {
  const lots = Math.ceil(o.qty / i.lotSize);
  const feeReserve = o.price > 0 ? lots * Math.ceil((o.price * i.lotSize * i.quoteMultiplier * Math.max(i.makerFeeBps, i.takerFeeBps)) / 10_000) : 0;
  if (i.mode === 'cash') return o.side === 'buy' ? o.price * o.qty * i.quoteMultiplier + feeReserve : o.qty * i.baseMultiplier;
  return (o.reduceOnly ? 0 : Math.ceil((o.price * o.qty * i.quoteMultiplier) / o.leverage)) + feeReserve;
}

interface Ledger {
  readonly m: ReturnType<typeof ledgerMachine>;
  s: LedgerState;
  readonly log: LedgerEvent[];
  snap?: { data: string; at: number };
}

interface ModelOrder {
  orderId: number;
  account: string;
  inst: Instrument;
  side: Side;
  price: number;
  /** open quantity */
  qty: number;
  /** executed quantity (the book's total is filled + qty) */
  filled: number;
  reduceOnly: boolean;
  leverage: number;
  limitOnly: boolean;
}

/** The saga plus the bookkeeping the invariants compare against. */
class World {
  readonly ledgers = new Map<string, Ledger>();
  readonly open = new Map<number, ModelOrder>();
  readonly net = new Map<string, number>();
  readonly fees = new Map<string, number>();
  tradeId = 0;
  ts = 1_000;
  constructor() {
    const add = (name: string, accountNo: number, kind: LedgerKind) => {
      const m = ledgerMachine({ account: name, accountNo, kind });
      this.ledgers.set(name, { m, s: m.init(), log: [] });
    };
    USERS.forEach((u, n) => add(u, n + 1, 'user'));
    add('fees', 1_000, 'fees');
    add('clearing', 1_001, 'clearing');
  }

  send(name: string, c: LedgerCommand): LedgerEvent[] {
    const l = this.ledgers.get(name)!;
    const out: LedgerEvent[] = [];
    l.s = l.m.step(l.s, c, out);
    l.log.push(...out);
    for (const e of out) {
      if (e.type === 'LedgerRejected') seen.add(e.code);
      const key = e.type === 'LedgerRejected' ? rejectName(e.code) : e.type;
      histogram.set(key, (histogram.get(key) ?? 0) + 1);
      if (e.type === 'Deposited') this.net.set(e.asset, (this.net.get(e.asset) ?? 0) + e.amount);
      if (e.type === 'Withdrawn') this.net.set(e.asset, (this.net.get(e.asset) ?? 0) - e.amount);
      if (e.type === 'OrderHeld' || e.type === 'LiquidationOrder') {
        const inst = INSTRUMENTS.find((i) => i.symbol === e.symbol)!;
        this.open.set(e.orderId, {
          orderId: e.orderId, account: name, inst, side: e.side, price: e.price, qty: e.qty, filled: 0, reduceOnly: e.reduceOnly, leverage: e.leverage,
          limitOnly: e.orderType === 'limit' && e.type === 'OrderHeld',
        });
      }
    }
    return out;
  }

  report(name: string, inst: Instrument, event: BookReport['event']): LedgerEvent[] {
    const out = this.send(name, { type: 'BookReport', ts: this.ts, instrument: inst, event });
    const bad = out.filter((e) => e.type === 'LedgerRejected');
    expect(bad, `${name} refused a book report: ${JSON.stringify(bad)} for ${JSON.stringify(event)}`).to.have.length(0);
    // The saga's other legs: fees to `fees`, P&L to `clearing`.
    for (const e of out) {
      if (e.type !== 'FillSettled') continue;
      if (e.fee > 0) {
        this.fees.set(e.feeAsset, (this.fees.get(e.feeAsset) ?? 0) + e.fee);
        const r = this.send('fees', { type: 'PostEntry', ts: this.ts, entryId: `${e.symbol}:${e.tradeId}:${name}:${e.role}:fee`, asset: e.feeAsset, amount: e.fee });
        expect(r[0]!.type).to.equal('EntryPosted');
      }
      if (e.realizedPnl !== 0) {
        const r = this.send('clearing', { type: 'PostEntry', ts: this.ts, entryId: `${e.symbol}:${e.tradeId}:${name}:${e.role}:pnl`, asset: e.feeAsset, amount: -e.realizedPnl });
        expect(r[0]!.type).to.equal('EntryPosted');
      }
    }
    return out;
  }

  openList(): ModelOrder[] {
    return [...this.open.values()].sort((a, b) => a.orderId - b.orderId);
  }

  fill(pickBuy: number, pickSell: number, pickPrice: number, pickQty: number, buyerTakes: boolean): void {
    // Every pair of open orders on one instrument, opposite sides, whose limits cross (price 0 = no limit).
    const list = this.openList();
    const pairs: [ModelOrder, ModelOrder][] = [];
    for (const b of list) {
      if (b.side !== 'buy') continue;
      for (const s of list) if (s.side === 'sell' && s.inst === b.inst && (b.price === 0 || s.price <= b.price)) pairs.push([b, s]);
    }
    if (pairs.length === 0) return;
    const [buy, sell] = pairs[(pickBuy + pickSell) % pairs.length]!;
    const cap = buy.price > 0 ? buy.price : Infinity;
    const i = buy.inst;
    const lo = Math.max(sell.price, i.tickSize);
    const hi = cap === Infinity ? lo + 20 * i.tickSize : cap;
    const price = lo + i.tickSize * (pickPrice % (Math.floor((hi - lo) / i.tickSize) + 1));
    const maxLots = Math.min(buy.qty, sell.qty) / i.lotSize;
    const qty = i.lotSize * (1 + (pickQty % maxLots));
    const [taker, maker] = buyerTakes ? [buy, sell] : [sell, buy];
    const notional = price * qty * i.quoteMultiplier;
    this.ts += 1_000;
    const ev: Fill = {
      type: 'Fill', ts: this.ts, tradeId: ++this.tradeId, price, qty, takerOrderId: taker.orderId, takerAccount: taker.account,
      takerSide: taker.side, makerOrderId: maker.orderId, makerAccount: maker.account, takerFee: feeOf(notional, i.takerFeeBps),
      makerFee: feeOf(notional, i.makerFeeBps), takerRemaining: taker.qty - qty, makerRemaining: maker.qty - qty,
    };
    const out = [...this.report(taker.account, i, ev), ...(maker.account === taker.account ? [] : this.report(maker.account, i, ev))];
    expect(out.filter((e) => e.type === 'FillSettled')).to.have.length(2);
    for (const o of [buy, sell]) {
      o.qty -= qty;
      o.filled += qty;
      if (o.qty === 0) this.open.delete(o.orderId);
    }
  }

  end(pick: number, how: 'cancel' | 'expire' | 'reject'): void {
    const list = this.openList();
    if (list.length === 0) return;
    const o = list[pick % list.length]!;
    const event: BookReport['event'] = how === 'reject'
      ? { type: 'CommandRejected', ts: this.ts, command: 'NewOrder', orderId: o.orderId, account: o.account, clientOrderId: undefined, code: Reject.BOOK_HALTED }
      : { type: 'OrderCancelled', ts: this.ts, orderId: o.orderId, account: o.account, side: o.side, price: o.price, qty: o.qty, reason: how === 'expire' ? 'expired' : 'user', rested: true };
    const out = this.report(o.account, o.inst, event);
    expect(out.map((e) => e.type)).to.deep.equal(['HoldReleased']);
    this.open.delete(o.orderId);
  }

  amend(pick: number, priceTicks: number, qtyLots: number, bookAccepts: boolean): void {
    const list = this.openList().filter((o) => o.limitOnly);
    if (list.length === 0) return;
    const o = list[pick % list.length]!;
    const i = o.inst;
    const price = Math.max(i.tickSize, o.price + priceTicks * i.tickSize);
    // the new total (FIX cancel/replace): the book leaves total - executed open, or cancels the order
    const total = Math.max(i.minQty, qtyLots * i.lotSize);
    const out = this.send(o.account, { type: 'AmendHold', ts: this.ts, orderId: o.orderId, price, qty: total });
    if (out[0]!.type !== 'HoldChanged') return;
    const open = total - o.filled;
    if (bookAccepts && open <= 0) {
      const gone = this.report(o.account, i, { type: 'OrderCancelled', ts: this.ts, orderId: o.orderId, account: o.account, side: o.side, price: o.price, qty: o.qty, reason: 'amendedBelowFilled', rested: true });
      expect(gone.map((e) => e.type)).to.deep.equal(['HoldReleased']);
      this.open.delete(o.orderId);
      return;
    }
    const event: BookReport['event'] = bookAccepts
      ? { type: 'OrderAmended', ts: this.ts, orderId: o.orderId, account: o.account, side: o.side, oldPrice: o.price, oldQty: o.qty, price, qty: open, priorityKept: false, rested: true } as BookReport['event']
      : { type: 'CommandRejected', ts: this.ts, command: 'AmendOrder', orderId: o.orderId, account: o.account, clientOrderId: undefined, code: Reject.BOOK_AMEND_NOT_ALLOWED };
    this.report(o.account, i, event);
    if (bookAccepts) {
      o.price = price;
      o.qty = open;
    }
  }

  /** The invariants, checked after every step. */
  check(): void {
    const users = USERS.map((u) => this.ledgers.get(u)!.s);
    const all = [...this.ledgers.values()].map((l) => l.s);
    for (const asset of ASSETS) {
      let sum = 0;
      for (const s of all) {
        const b = s.balances.get(asset);
        if (!b) continue;
        sum += b.available + b.held;
        expect(b.held, `${s.account} ${asset} held`).to.be.at.least(0);
        if (CASH_ASSETS.includes(asset)) expect(b.available, `${s.account} ${asset} available (cash)`).to.be.at.least(0);
      }
      expect(sum, `${asset} conserved`).to.equal(this.net.get(asset) ?? 0);
      expect(this.ledgers.get('fees')!.s.balances.get(asset)?.available ?? 0, `${asset} fees`).to.equal(this.fees.get(asset) ?? 0);
    }
    // Holds: exactly what open orders need, plus position margin.
    for (const s of users) {
      const need = new Map<string, number>();
      const add = (a: string, n: number) => need.set(a, (need.get(a) ?? 0) + n);
      const mine = this.openList().filter((o) => o.account === s.account);
      expect(mine.map((o) => [o.orderId, o.qty])).to.deep.equal([...s.orders.values()].sort((a, b) => a.orderId - b.orderId).map((o) => [o.orderId, o.qty]));
      for (const o of mine) add(o.inst.mode === 'cash' && o.side === 'sell' ? o.inst.base : o.inst.quote, expectedHold(o.inst, o));
      for (const p of s.positions.values()) {
        add(p.collateral, p.margin);
        if (p.qty === 0) expect(p.margin).to.equal(0);
      }
      for (const asset of ASSETS) expect(s.balances.get(asset)?.held ?? 0, `${s.account} ${asset} held = open orders + position margin`).to.equal(need.get(asset) ?? 0);
    }
    // Clearing carries exactly the other side of every realized P&L.
    let realized = 0;
    for (const s of users) for (const p of s.positions.values()) realized += p.realizedPnl;
    expect(this.ledgers.get('clearing')!.s.balances.get('USDT')?.available ?? 0).to.equal(-realized);
  }

  /** Replay from init, and from the mid-run snapshot, must reproduce the live hash. */
  checkReplay(): void {
    for (const [name, l] of this.ledgers) {
      const live = l.m.stateHash(l.s);
      let r = l.m.init();
      for (const e of l.log) r = l.m.apply(r, e);
      expect(l.m.stateHash(r), `${name} replay from init`).to.equal(live);
      if (l.snap) {
        let t = l.m.restore(JSON.parse(l.snap.data));
        for (const e of l.log.slice(l.snap.at)) t = l.m.apply(t, e);
        expect(l.m.stateHash(t), `${name} snapshot + tail`).to.equal(live);
      }
      expect(l.m.stateHash(l.m.restore(JSON.parse(JSON.stringify(l.m.snapshot(l.s))))), `${name} snapshot round trip`).to.equal(live);
    }
  }
}

// ---------------------------------------------------------------- the random histories

const user = fc.constantFrom(...USERS);
const asset = fc.constantFrom(...ASSETS);
const amount = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 200_000 }) }, { weight: 1, arbitrary: fc.constantFrom(0, -5, 2 ** 50 + 1, 2 ** 49) });
const op = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('deposit' as const), u: user, asset, amount, dup: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('withdraw' as const), u: user, asset, amount }) },
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant('place' as const), u: user, inst: fc.nat(INSTRUMENTS.length - 1), side: fc.constantFrom<Side>('buy', 'sell'),
      type: fc.constantFrom('limit', 'limit', 'limit', 'market', 'stopLimit'), cap: fc.boolean(), ticks: fc.integer({ min: -6, max: 6 }),
      lots: fc.integer({ min: 1, max: 50 }), reduceOnly: fc.nat(5).map((n) => n === 0), leverage: fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }) }),
      coid: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('a', 'b', 'c') }), offTick: fc.nat(30),
    }),
  },
  { weight: 10, arbitrary: fc.record({ k: fc.constant('fill' as const), a: fc.nat(), b: fc.nat(), p: fc.nat(), q: fc.nat(), buyerTakes: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('end' as const), pick: fc.nat(), how: fc.constantFrom<'cancel' | 'expire' | 'reject'>('cancel', 'expire', 'reject') }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('amend' as const), pick: fc.nat(), ticks: fc.integer({ min: -3, max: 3 }), lots: fc.integer({ min: 1, max: 40 }), accept: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('mark' as const), inst: fc.constantFrom(ETH_PERP, SOL_PERP), ticks: fc.integer({ min: -80, max: 80 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('limits' as const), u: user, maxPos: fc.constantFrom(0, 10, 40), maxLev: fc.constantFrom(0, 1, 3), loss: fc.constantFrom(0, 50, 500) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('snap' as const) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function runOp(w: World, o: Op, n: number): void {
  w.ts += 1_000 + (n % 7) * 3_600_000; // crosses UTC days now and then
  switch (o.k) {
    case 'deposit':
      w.send(o.u, { type: 'Deposit', ts: w.ts, transferId: o.dup ? 'same' : `d${n}`, asset: o.asset, amount: o.amount });
      break;
    case 'withdraw':
      w.send(o.u, { type: 'Withdraw', ts: w.ts, transferId: `w${n}`, asset: o.asset, amount: o.amount });
      break;
    case 'place': {
      const i = INSTRUMENTS[o.inst]!;
      const orderType = o.type as PlaceOrder['orderType'];
      const priced = orderType !== 'market' || o.cap;
      const price = priced ? Math.max(0, MID[i.symbol]! + o.ticks * i.tickSize + (o.offTick === 0 ? 1 : 0)) : 0;
      const c: PlaceOrder = {
        type: 'PlaceOrder', ts: w.ts, instrument: i, side: o.side, orderType, tif: orderType === 'market' ? 'IOC' : 'GTC', price,
        qty: o.lots * i.lotSize, ...(orderType === 'stopLimit' ? { stopPrice: price } : {}),
        ...(o.reduceOnly && (i.mode === 'margin' || o.offTick === 1) ? { reduceOnly: true } : {}),
        ...(o.leverage !== null && (i.mode === 'margin' || o.offTick === 2) ? { leverage: o.leverage } : {}), ...(o.coid !== null ? { clientOrderId: o.coid } : {}),
      };
      w.send(o.u, c);
      break;
    }
    case 'fill':
      w.fill(o.a, o.b, o.p, o.q, o.buyerTakes);
      break;
    case 'end':
      w.end(o.pick, o.how);
      break;
    case 'amend':
      w.amend(o.pick, o.ticks, o.lots, o.accept);
      break;
    case 'mark':
      for (const u of USERS) w.send(u, { type: 'SetMarkPrice', ts: w.ts, instrument: o.inst, price: Math.max(o.inst.tickSize, MID[o.inst.symbol]! + o.ticks * o.inst.tickSize) });
      break;
    case 'limits':
      w.send(o.u, { type: 'SetRiskLimits', ts: w.ts, limits: { maxPositionQty: o.maxPos, maxLeverage: o.maxLev, dailyLossLimit: o.loss } });
      break;
    case 'snap':
      for (const l of w.ledgers.values()) if (!l.snap) l.snap = { data: JSON.stringify(l.m.snapshot(l.s)), at: l.log.length };
      break;
  }
}

describe('risk - ledger properties over random histories', function () {
  this.timeout(120_000);
  it('conserves every asset, never goes negative in cash, holds exactly what open orders need, and replays exactly', () => {
    const stats = { fills: 0, runs: 0 };
    fc.assert(
      fc.property(fc.array(op, { minLength: 30, maxLength: 100, size: 'max' }), (ops) => {
        const w = new World();
        // Fund everybody a little so orders get through; the random deposits add more.
        for (const u of USERS) for (const a of ASSETS) w.send(u, { type: 'Deposit', ts: 1, transferId: `seed-${a}`, asset: a, amount: (u === 'u1' || u === 'u2') && a === 'USDT' ? 800 : 20_000 });
        ops.forEach((o, n) => {
          runOp(w, o, n);
          w.check();
        });
        w.checkReplay();
        stats.fills += w.tradeId;
        stats.runs++;
      }),
      { numRuns: 150, verbose: 1, ...replay },
    );
    if (process.env.RISK_DEBUG) console.log(stats, [...histogram].sort((a, b) => b[1] - a[1]));
    expect(stats.fills, 'the histories trade').to.be.greaterThan(stats.runs * 3);
    expect(histogram.get('MarginCall') ?? 0, 'some histories liquidate').to.be.greaterThan(0);
  });
});

// ---------------------------------------------------------------- bad input

/** Runs one command and checks the answer: events or one typed reject, never a throw; replay still equal. */
function probe(kind: LedgerKind, setup: (w: World, name: string) => void, c: unknown): LedgerEvent[] {
  const w = new World();
  const name = kind === 'user' ? 'u1' : kind;
  setup(w, name);
  const out = w.send(name, c as LedgerCommand);
  for (const e of out) if (e.type === 'LedgerRejected') expect(rejectName(e.code), JSON.stringify(c)).to.not.match(/^UNKNOWN_/);
  w.checkReplay();
  return out;
}

function codeOf(out: LedgerEvent[]): string {
  const r = out.find((e) => e.type === 'LedgerRejected');
  return r && r.type === 'LedgerRejected' ? rejectName(r.code) : 'accepted';
}

const funded = (w: World, name: string) => {
  for (const a of ASSETS) w.send(name, { type: 'Deposit', ts: 1, transferId: `f-${a}`, asset: a, amount: 100_000 });
};
const withOrder = (w: World, name: string) => {
  funded(w, name);
  w.send(name, { type: 'PlaceOrder', ts: 2, instrument: BTC_USD, side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 2, clientOrderId: 'dup' });
};
const ORDER1 = 1 * 2 ** 32 + 1;
const place = (f: Partial<Record<keyof PlaceOrder, unknown>>) => ({ type: 'PlaceOrder', ts: 5, instrument: BTC_USD, side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 2, ...f });
const fillOf = (f: Partial<Record<keyof Fill, unknown>>) => ({
  type: 'BookReport', ts: 5, instrument: BTC_USD,
  event: { type: 'Fill', ts: 5, tradeId: 1, price: 100, qty: 2, takerOrderId: ORDER1, takerAccount: 'u1', takerSide: 'buy', makerOrderId: 99, makerAccount: 'x', takerFee: 1, makerFee: 0, takerRemaining: 0, makerRemaining: 0, ...f },
});

/** [what, ledger kind, setup, command, expected reject name] */
const TABLE: [string, LedgerKind, (w: World, n: string) => void, unknown, string][] = [
  ['null command', 'user', funded, null, 'ACTOR_UNKNOWN_COMMAND'],
  ['unknown type', 'user', funded, { type: 'Nope', ts: 1 }, 'ACTOR_UNKNOWN_COMMAND'],
  ['a string', 'fees', funded, 'Deposit', 'ACTOR_UNKNOWN_COMMAND'],
  ['deposit ts negative', 'user', funded, { type: 'Deposit', ts: -1, transferId: 't', asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TIMESTAMP'],
  ['deposit ts float', 'user', funded, { type: 'Deposit', ts: 1.5, transferId: 't', asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TIMESTAMP'],
  ['deposit transferId empty', 'user', funded, { type: 'Deposit', ts: 1, transferId: '', asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TRANSFER_ID'],
  ['deposit transferId number', 'user', funded, { type: 'Deposit', ts: 1, transferId: 7, asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TRANSFER_ID'],
  ['deposit asset lower case', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'usd', amount: 1 }, 'LEDGER_UNKNOWN_ASSET'],
  ['deposit asset missing', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', amount: 1 }, 'LEDGER_UNKNOWN_ASSET'],
  ['deposit amount zero', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: 0 }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['deposit amount NaN', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: NaN }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['deposit amount string', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: '5' }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['deposit amount 2^60', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: 2 ** 60 }, 'LEDGER_AMOUNT_OVERFLOW'],
  ['deposit amount Infinity', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: Infinity }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['withdraw amount float', 'user', funded, { type: 'Withdraw', ts: 1, transferId: 't', asset: 'USD', amount: 0.5 }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['deposit amount above max', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: 2 ** 50 + 1 }, 'LEDGER_AMOUNT_OVERFLOW'],
  ['deposit balance above max', 'user', funded, { type: 'Deposit', ts: 1, transferId: 't', asset: 'USD', amount: 2 ** 50 }, 'LEDGER_AMOUNT_OVERFLOW'],
  ['deposit duplicate id', 'user', funded, { type: 'Deposit', ts: 1, transferId: 'f-USD', asset: 'USD', amount: 1 }, 'LEDGER_DUPLICATE_TRANSFER'],
  ['withdraw more than available', 'user', funded, { type: 'Withdraw', ts: 1, transferId: 't', asset: 'USD', amount: 100_001 }, 'LEDGER_INSUFFICIENT_AVAILABLE'],
  ['withdraw held funds', 'user', withOrder, { type: 'Withdraw', ts: 1, transferId: 't', asset: 'USD', amount: 100_000 }, 'LEDGER_INSUFFICIENT_AVAILABLE'],
  ['post entry on a user ledger', 'user', funded, { type: 'PostEntry', ts: 1, entryId: 'e', asset: 'USD', amount: 1 }, 'LEDGER_NOT_SYSTEM_ACCOUNT'],
  ['post entry ts', 'fees', funded, { type: 'PostEntry', ts: 'now', entryId: 'e', asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TIMESTAMP'],
  ['post entry id', 'fees', funded, { type: 'PostEntry', ts: 1, entryId: 'has space', asset: 'USD', amount: 1 }, 'LEDGER_INVALID_TRANSFER_ID'],
  ['post entry asset', 'clearing', funded, { type: 'PostEntry', ts: 1, entryId: 'e', asset: '', amount: 1 }, 'LEDGER_UNKNOWN_ASSET'],
  ['negative fee', 'fees', funded, { type: 'PostEntry', ts: 1, entryId: 'e', asset: 'USD', amount: -1 }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['zero P&L leg', 'clearing', funded, { type: 'PostEntry', ts: 1, entryId: 'e', asset: 'USD', amount: 0 }, 'LEDGER_AMOUNT_NOT_POSITIVE'],
  ['huge P&L leg', 'clearing', funded, { type: 'PostEntry', ts: 1, entryId: 'e', asset: 'USD', amount: -(2 ** 51) }, 'LEDGER_AMOUNT_OVERFLOW'],
  ['duplicate entry', 'clearing', funded, { type: 'PostEntry', ts: 1, entryId: 'f-USD', asset: 'USD', amount: -3 }, 'LEDGER_DUPLICATE_TRANSFER'],
  ['order ts', 'user', funded, place({ ts: -3 }), 'ORDER_INVALID_TIMESTAMP'],
  ['order on the fees ledger', 'fees', funded, place({}), 'LEDGER_INVALID_ACCOUNT'],
  ['order instrument missing', 'user', funded, place({ instrument: undefined }), 'ORDER_UNKNOWN_INSTRUMENT'],
  ['order instrument broken', 'user', funded, place({ instrument: { ...BTC_USD, tickSize: 0 } }), 'ORDER_UNKNOWN_INSTRUMENT'],
  ['order clientOrderId', 'user', funded, place({ clientOrderId: 12 }), 'ORDER_INVALID_CLIENT_ORDER_ID'],
  ['order clientOrderId too long', 'user', funded, place({ clientOrderId: 'x'.repeat(65) }), 'ORDER_INVALID_CLIENT_ORDER_ID'],
  ['market order resting', 'user', funded, place({ orderType: 'market', tif: 'GTC' }), 'ORDER_INVALID_TIF'],
  ['market protection price off tick', 'user', funded, place({ orderType: 'market', tif: 'IOC', price: 101 }), 'ORDER_INVALID_PROTECTION'],
  ['order side', 'user', funded, place({ side: 'long' }), 'ORDER_INVALID_SIDE'],
  ['order type', 'user', funded, place({ orderType: 'iceberg' }), 'ORDER_INVALID_TYPE'],
  ['order market price negative', 'user', funded, place({ orderType: 'market', tif: 'IOC', price: -5 }), 'ORDER_INVALID_PROTECTION'],
  ['order tif', 'user', funded, place({ tif: 'DAY' }), 'ORDER_INVALID_TIF'],
  ['order price zero', 'user', funded, place({ price: 0 }), 'ORDER_PRICE_NOT_POSITIVE'],
  ['order price string', 'user', funded, place({ price: '100' }), 'ORDER_PRICE_NOT_POSITIVE'],
  ['order price tick', 'user', funded, place({ price: 101 }), 'ORDER_PRICE_NOT_TICK_MULTIPLE'],
  ['order qty negative', 'user', funded, place({ qty: -2 }), 'ORDER_QTY_NOT_POSITIVE'],
  ['order qty Infinity', 'user', funded, place({ qty: Infinity }), 'ORDER_QTY_NOT_POSITIVE'],
  ['order qty lot', 'user', funded, place({ qty: 3 }), 'ORDER_QTY_NOT_LOT_MULTIPLE'],
  ['order qty min', 'user', funded, place({ instrument: { ...BTC_USD, minQty: 4 }, qty: 2 }), 'ORDER_QTY_BELOW_MIN'],
  ['order qty max', 'user', funded, place({ qty: 202 }), 'ORDER_QTY_ABOVE_MAX'],
  ['order notional', 'user', funded, place({ instrument: { ...BTC_USD, maxNotional: 100 } }), 'ORDER_NOTIONAL_TOO_LARGE'],
  ['order stop price missing', 'user', funded, place({ orderType: 'stopLimit' }), 'ORDER_STOP_PRICE_INVALID'],
  ['order stop price on a limit', 'user', funded, place({ stopPrice: 100 }), 'ORDER_STOP_PRICE_INVALID'],
  ['order GTD without expiry', 'user', funded, place({ tif: 'GTD' }), 'ORDER_GTD_EXPIRY_INVALID'],
  ['order GTD expiry in the past', 'user', funded, place({ tif: 'GTD', expireAt: 5 }), 'ORDER_GTD_EXPIRY_INVALID'],
  ['order postOnly string', 'user', funded, place({ postOnly: 'yes' }), 'ORDER_INVALID_FLAG'],
  ['order reduceOnly number', 'user', funded, place({ reduceOnly: 1 }), 'ORDER_INVALID_FLAG'],
  ['order postOnly IOC', 'user', funded, place({ postOnly: true, tif: 'IOC' }), 'ORDER_POST_ONLY_INVALID'],
  ['order reduceOnly cash', 'user', funded, place({ reduceOnly: true }), 'ORDER_REDUCE_ONLY_NOT_MARGIN'],
  ['order stp', 'user', funded, place({ stp: 'ignore' }), 'ORDER_INVALID_STP'],
  ['order leverage on cash', 'user', funded, place({ leverage: 2 }), 'RISK_INVALID_LEVERAGE'],
  ['order leverage above max', 'user', funded, place({ instrument: ETH_PERP, leverage: 11 }), 'RISK_INVALID_LEVERAGE'],
  ['order leverage float', 'user', funded, place({ instrument: ETH_PERP, leverage: 2.5 }), 'RISK_INVALID_LEVERAGE'],
  ['market buy without cap', 'user', funded, place({ orderType: 'market', tif: 'IOC', price: 0 }), 'RISK_MARKET_NEEDS_PRICE_CAP'],
  ['margin market without cap', 'user', funded, place({ instrument: ETH_PERP, side: 'sell', orderType: 'market', tif: 'IOC', price: 0 }), 'RISK_MARKET_NEEDS_PRICE_CAP'],
  ['market sell without cap is fine', 'user', funded, place({ side: 'sell', orderType: 'market', tif: 'IOC', price: 0 }), 'accepted'],
  ['duplicate clientOrderId', 'user', withOrder, place({ clientOrderId: 'dup' }), 'RISK_DUPLICATE_ORDER'],
  ['reduce-only with no position', 'user', funded, place({ instrument: ETH_PERP, reduceOnly: true }), 'RISK_REDUCE_ONLY_WOULD_INCREASE'],
  ['insufficient balance', 'user', funded, place({ qty: 200, price: 1_000 }), 'RISK_INSUFFICIENT_BALANCE'],
  ['amend ts', 'user', withOrder, { type: 'AmendHold', ts: null, orderId: ORDER1, qty: 4 }, 'ORDER_INVALID_TIMESTAMP'],
  ['amend on clearing', 'clearing', funded, { type: 'AmendHold', ts: 1, orderId: ORDER1, qty: 4 }, 'LEDGER_INVALID_ACCOUNT'],
  ['amend order id', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: 'x', qty: 4 }, 'ORDER_INVALID_ID'],
  ['amend unknown order', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1 + 1, qty: 4 }, 'RISK_UNKNOWN_ORDER'],
  ['amend price', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, price: -5 }, 'ORDER_PRICE_NOT_POSITIVE'],
  ['amend price tick', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, price: 7 }, 'ORDER_PRICE_NOT_TICK_MULTIPLE'],
  ['amend qty', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, qty: 0 }, 'ORDER_QTY_NOT_POSITIVE'],
  ['amend qty lot', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, qty: 5 }, 'ORDER_QTY_NOT_LOT_MULTIPLE'],
  ['amend qty max', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, qty: 400 }, 'ORDER_QTY_ABOVE_MAX'],
  ['amend nothing', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1 }, 'RISK_INVALID_ORDER'],
  ['amend beyond balance', 'user', withOrder, { type: 'AmendHold', ts: 1, orderId: ORDER1, price: 5_000, qty: 200 }, 'RISK_INSUFFICIENT_BALANCE'],
  ['report ts', 'user', withOrder, { ...fillOf({}), ts: -1 }, 'RISK_INVALID_REPORT'],
  ['report on fees', 'fees', funded, fillOf({}), 'LEDGER_INVALID_ACCOUNT'],
  ['report without event', 'user', withOrder, { type: 'BookReport', ts: 1, instrument: BTC_USD }, 'RISK_INVALID_REPORT'],
  ['report instrument', 'user', withOrder, { ...fillOf({}), instrument: 'BTC-USD' }, 'ORDER_UNKNOWN_INSTRUMENT'],
  ['report unknown event', 'user', withOrder, { type: 'BookReport', ts: 1, instrument: BTC_USD, event: { type: 'StopArmed', orderId: ORDER1 } }, 'RISK_INVALID_REPORT'],
  ['fill of an unknown order', 'user', withOrder, fillOf({ takerOrderId: 5 }), 'RISK_UNKNOWN_ORDER'],
  ['fill for another account', 'user', withOrder, fillOf({ takerAccount: 'u2' }), 'RISK_UNKNOWN_ORDER'],
  ['fill qty float', 'user', withOrder, fillOf({ qty: 1.5 }), 'RISK_INVALID_REPORT'],
  ['fill qty beyond open', 'user', withOrder, fillOf({ qty: 4, takerRemaining: 0 }), 'RISK_INVALID_REPORT'],
  ['fill remaining inconsistent', 'user', withOrder, fillOf({ takerRemaining: 2 }), 'RISK_INVALID_REPORT'],
  ['fill above the buy limit', 'user', withOrder, fillOf({ price: 105 }), 'RISK_INVALID_REPORT'],
  ['fill fee negative', 'user', withOrder, fillOf({ takerFee: -1 }), 'RISK_INVALID_REPORT'],
  ['fill fee above notional', 'user', withOrder, fillOf({ takerFee: 10_000 }), 'RISK_INVALID_REPORT'],
  ['fill side wrong', 'user', withOrder, fillOf({ takerSide: 'sell' }), 'RISK_INVALID_REPORT'],
  ['fill side garbage', 'user', withOrder, fillOf({ takerSide: 3 }), 'RISK_INVALID_REPORT'],
  ['fill on the wrong instrument', 'user', withOrder, { ...fillOf({}), instrument: ETH_BTC }, 'RISK_INVALID_REPORT'],
  ['cancel of an unknown order', 'user', withOrder, { type: 'BookReport', ts: 1, instrument: BTC_USD, event: { type: 'OrderCancelled', ts: 1, orderId: 77, account: 'u1', side: 'buy', price: 1, qty: 1, reason: 'user', rested: true } }, 'RISK_UNKNOWN_ORDER'],
  ['amended to qty 0', 'user', withOrder, { type: 'BookReport', ts: 1, instrument: BTC_USD, event: { type: 'OrderAmended', ts: 1, orderId: ORDER1, account: 'u1', side: 'buy', oldPrice: 100, oldQty: 2, price: 100, qty: 0, priorityKept: true, rested: true } }, 'RISK_INVALID_REPORT'],
  ['mark ts', 'user', funded, { type: 'SetMarkPrice', ts: 'x', instrument: ETH_PERP, price: 100 }, 'LEDGER_INVALID_TIMESTAMP'],
  ['mark on fees', 'fees', funded, { type: 'SetMarkPrice', ts: 1, instrument: ETH_PERP, price: 100 }, 'LEDGER_INVALID_ACCOUNT'],
  ['mark instrument', 'user', funded, { type: 'SetMarkPrice', ts: 1, instrument: null, price: 100 }, 'ORDER_UNKNOWN_INSTRUMENT'],
  ['mark price', 'user', funded, { type: 'SetMarkPrice', ts: 1, instrument: ETH_PERP, price: 0 }, 'ORDER_PRICE_NOT_POSITIVE'],
  ['mark price tick', 'user', funded, { type: 'SetMarkPrice', ts: 1, instrument: BTC_USD, price: 7 }, 'ORDER_PRICE_NOT_TICK_MULTIPLE'],
  ['mark price huge', 'user', funded, { type: 'SetMarkPrice', ts: 1, instrument: ETH_PERP, price: 2 ** 52 }, 'ORDER_NOTIONAL_TOO_LARGE'],
  ['limits ts', 'user', funded, { type: 'SetRiskLimits', ts: undefined, limits: { maxPositionQty: 0, maxLeverage: 0, dailyLossLimit: 0 } }, 'LEDGER_INVALID_TIMESTAMP'],
  ['limits on clearing', 'clearing', funded, { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 0, dailyLossLimit: 0 } }, 'LEDGER_INVALID_ACCOUNT'],
  ['limits missing', 'user', funded, { type: 'SetRiskLimits', ts: 1 }, 'RISK_INVALID_LIMITS'],
  ['limits negative', 'user', funded, { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: -1, maxLeverage: 0, dailyLossLimit: 0 } }, 'RISK_INVALID_LIMITS'],
  ['limits leverage above 1000', 'user', funded, { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 1_001, dailyLossLimit: 0 } }, 'RISK_INVALID_LIMITS'],
];

describe('risk - bad input is answered with its code', () => {
  for (const [what, kind, setup, c, expected] of TABLE) {
    it(`${what} -> ${expected}`, () => {
      expect(codeOf(probe(kind, setup, c))).to.equal(expected);
    });
  }

  it('fuzzed garbage commands never throw and are answered with known codes', () => {
    const garbage = fc.oneof(
      fc.constantFrom(null, undefined, NaN, -1, 0, 1.5, 2 ** 60, Infinity, '', 'x', true, [], {}, '__proto__'),
      fc.anything(),
    );
    const templates = TABLE.map((t) => t[3]).filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null);
    fc.assert(
      fc.property(fc.nat(templates.length - 1), fc.constantFrom<LedgerKind>('user', 'fees', 'clearing'), fc.array(fc.tuple(fc.string({ maxLength: 12 }), garbage), { maxLength: 3 }), fc.boolean(), (t, kind, edits, deep) => {
        const c: Record<string, unknown> = JSON.parse(JSON.stringify(templates[t]!, (_k, v) => (v === undefined ? null : v)));
        if (c.instrument !== undefined) c.instrument = t % 2 === 0 ? BTC_USD : ETH_PERP;
        const target = deep && typeof c.event === 'object' && c.event !== null ? (c.event as Record<string, unknown>) : c;
        const keys = Object.keys(target);
        for (const [k, v] of edits) target[keys.length > 0 && k.length % 2 === 0 ? keys[k.length % keys.length]! : k] = v;
        expect(() => probe(kind, withOrder, c)).to.not.throw();
      }),
      { numRuns: 1_500, ...replay },
    );
  });
});

// ---------------------------------------------------------------- reject paths the random histories rarely reach

describe('risk - targeted reject paths', () => {
  it('refuses orders past the open-order cap', () => {
    const w = new World();
    w.send('u1', { type: 'Deposit', ts: 1, transferId: 'd', asset: 'BTC', amount: 2 ** 40 });
    let last: LedgerEvent[] = [];
    for (let n = 0; n <= LEDGER_OPEN_ORDERS_MAX; n++) {
      last = w.send('u1', { type: 'PlaceOrder', ts: 2, instrument: BTC_USD, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 2 });
    }
    expect(codeOf(last)).to.equal('RISK_TOO_MANY_OPEN_ORDERS');
  });

  it('refuses to amend a liquidation order, and a second amend before the book answers', () => {
    const w = new World();
    for (const u of ['u1', 'u2']) w.send(u, { type: 'Deposit', ts: 1, transferId: 'd', asset: 'USDT', amount: 200 });
    w.send('u1', { type: 'PlaceOrder', ts: 2, instrument: ETH_PERP, side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 10 });
    w.send('u2', { type: 'PlaceOrder', ts: 2, instrument: ETH_PERP, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10 });
    w.fill(0, 0, 0, 9, true);
    const amendable = w.send('u2', { type: 'PlaceOrder', ts: 3, instrument: ETH_PERP, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 1 });
    const id = (amendable[0] as { orderId: number }).orderId;
    expect(codeOf(w.send('u2', { type: 'AmendHold', ts: 3, orderId: id, qty: 2 }))).to.equal('accepted');
    expect(codeOf(w.send('u2', { type: 'AmendHold', ts: 3, orderId: id, qty: 3 }))).to.equal('RISK_INVALID_ORDER');
    const call = w.send('u1', { type: 'SetMarkPrice', ts: 4, instrument: ETH_PERP, price: 82 });
    const liq = call.find((e) => e.type === 'LiquidationOrder') as { orderId: number } | undefined;
    expect(liq, JSON.stringify(call)).to.not.equal(undefined);
    expect(codeOf(w.send('u1', { type: 'AmendHold', ts: 5, orderId: liq!.orderId, qty: 2 }))).to.equal('RISK_INVALID_ORDER');
    expect(codeOf(w.send('u1', { type: 'PlaceOrder', ts: 5, instrument: ETH_PERP, side: 'buy', orderType: 'limit', tif: 'GTC', price: 80, qty: 1 }))).to.equal('RISK_ACCOUNT_LIQUIDATING');
    w.report('u2', ETH_PERP, { type: 'CommandRejected', ts: 5, command: 'AmendOrder', orderId: id, account: 'u2', clientOrderId: undefined, code: Reject.BOOK_AMEND_NOT_ALLOWED });
    w.check();
  });

  it('reaches every RISK and LEDGER reject code', () => {
    // Those the ordered-check unit tests reach, provoked here once more so this file stands alone.
    const w = new World();
    w.send('u1', { type: 'Deposit', ts: 1, transferId: 'd', asset: 'USDT', amount: 10_000 });
    w.send('u1', { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 5, maxLeverage: 2, dailyLossLimit: 0 } });
    const perp = (qty: number, price = 100) => w.send('u1', { type: 'PlaceOrder', ts: 2, instrument: ETH_PERP, side: 'buy', orderType: 'limit', tif: 'GTC', price, qty });
    expect(codeOf(perp(6))).to.equal('RISK_POSITION_LIMIT');
    expect(codeOf(perp(5, 5_000))).to.equal('RISK_LEVERAGE_LIMIT');
    w.send('u1', { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 1_000, dailyLossLimit: 1 } });
    w.send('u2', { type: 'Deposit', ts: 1, transferId: 'd', asset: 'USDT', amount: 100_000 });
    perp(10);
    w.send('u2', { type: 'PlaceOrder', ts: 2, instrument: ETH_PERP, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10 });
    w.fill(0, 0, 0, 9, true); // pays a fee: today's P&L is below zero
    expect(codeOf(perp(1))).to.equal('RISK_DAILY_LOSS_LIMIT');
    w.send('u1', { type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 1_000, dailyLossLimit: 0 } });
    w.send('u1', { type: 'SetMarkPrice', ts: 3, instrument: ETH_PERP, price: 50 });
    // available 10000 - 100 margin - 1 fee; unrealized -500. A hold of 9500 + 100 fee reserve fits the first, not the second.
    expect(w.ledgers.get('u1')!.s.balances.get('USDT')!.available).to.equal(9_899);
    expect(codeOf(perp(100, 950))).to.equal('RISK_INSUFFICIENT_MARGIN');
    w.check();

    const want = Object.entries(Reject).filter(([n]) => n.startsWith('RISK_') || n.startsWith('LEDGER_'));
    const missing = want.filter(([, code]) => !seen.has(code)).map(([n]) => n);
    expect(missing, 'reject codes never reached').to.deep.equal([]);
  });
});

import { expect } from 'chai';
import type { Fill, Instrument, LedgerCommand, LedgerEvent, PlaceOrder, BookReport, FillSettled } from '@bourse/schemas';
import { Reject, defineInstrument, feeOf } from '@bourse/schemas';
import * as schemas from '@bourse/schemas';
import { ledgerMachine, holdFor } from '../src/risk/ledger.js';
import type { LedgerState } from '../src/risk/ledger.js';

const BTC_USD = defineInstrument({ symbol: 'BTC-USD', baseMultiplier: 100, quoteMultiplier: 1, makerFeeBps: 10, takerFeeBps: 25, lotSize: 1, maxQty: 10_000 });
const ETH_PERP = defineInstrument({ symbol: 'ETH-PERP', mode: 'margin', base: 'ETH', quote: 'USDT', maxLeverage: 10, maintenanceMarginBps: 200 });
const BTC_PERP = defineInstrument({ symbol: 'BTC-PERP', mode: 'margin', base: 'BTC', quote: 'USDT', maxLeverage: 10, maintenanceMarginBps: 200 });

/** A user ledger under test, with a tiny driver. */
class Acc {
  readonly m;
  s: LedgerState;
  readonly log: LedgerEvent[] = [];
  readonly commands: LedgerCommand[] = [];
  private seq = 0;
  constructor(readonly name: string, accountNo: number) {
    this.m = ledgerMachine({ account: name, accountNo, kind: 'user' });
    this.s = this.m.init();
  }
  run(c: LedgerCommand): LedgerEvent[] {
    this.commands.push(c);
    const out: LedgerEvent[] = [];
    this.s = this.m.step(this.s, c, out);
    this.log.push(...out);
    return out;
  }
  deposit(asset: string, amount: number): void {
    const e = this.run({ type: 'Deposit', ts: 1, transferId: `d${++this.seq}`, asset, amount });
    expect(e[0]!.type).to.equal('Deposited');
  }
  place(o: Partial<PlaceOrder> & Pick<PlaceOrder, 'instrument' | 'side' | 'price' | 'qty'>): number {
    const e = this.run({ type: 'PlaceOrder', ts: 1, orderType: 'limit', tif: 'GTC', ...o });
    const h = e.find((x) => x.type === 'OrderHeld');
    if (!h || h.type !== 'OrderHeld') throw new Error(`not held: ${JSON.stringify(e)}`);
    return h.orderId;
  }
  code(c: LedgerCommand): number {
    const e = this.run(c);
    const r = e.find((x) => x.type === 'LedgerRejected');
    return r && r.type === 'LedgerRejected' ? r.code : 0;
  }
  bal(asset: string): { available: number; held: number } {
    return this.s.balances.get(asset) ?? { available: 0, held: 0 };
  }
  pos(symbol: string) {
    return this.s.positions.get(symbol)!;
  }
}

let tradeId = 0;
/** Fills `qty` between a taker order and a maker order; the report goes to both ledgers (once if the same). */
function fill(i: Instrument, taker: Acc, takerId: number, maker: Acc, makerId: number, price: number, qty: number): FillSettled[] {
  const t = taker.s.orders.get(takerId)!;
  const mk = maker.s.orders.get(makerId)!;
  const notional = price * qty * i.quoteMultiplier;
  const ev: Fill = {
    type: 'Fill', ts: 2, tradeId: ++tradeId, price, qty, takerOrderId: takerId, takerAccount: taker.name, takerSide: t.side,
    makerOrderId: makerId, makerAccount: maker.name, takerFee: feeOf(notional, i.takerFeeBps), makerFee: feeOf(notional, i.makerFeeBps),
    takerRemaining: t.qty - qty, makerRemaining: mk.qty - qty,
  };
  const report: BookReport = { type: 'BookReport', ts: 2, instrument: i, event: ev };
  const out = [...taker.run(report), ...(maker === taker ? [] : maker.run(report))];
  expect(out.filter((e) => e.type === 'LedgerRejected'), JSON.stringify(out)).to.have.length(0);
  return out.filter((e): e is FillSettled => e.type === 'FillSettled');
}

describe('risk - cash holds and settlement', () => {
  it('holds notional plus a per-lot worst-case fee for a buy, and base for a sell', () => {
    const a = new Acc('a', 1);
    a.deposit('USD', 1_000_000);
    a.deposit('BTC', 10_000);
    a.place({ instrument: BTC_USD, side: 'buy', price: 1_000, qty: 10 });
    // 10 lots * ceil(1000 * 25 / 10000) = 10 * 3
    expect(a.bal('USD')).to.deep.equal({ available: 1_000_000 - 10_030, held: 10_030 });
    a.place({ instrument: BTC_USD, side: 'sell', price: 1_100, qty: 7 });
    expect(a.bal('BTC')).to.deep.equal({ available: 10_000 - 700, held: 700 });
  });

  it('settles both sides of a fill, releasing price improvement, and charges each side its fee', () => {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USD', 100_000);
    b.deposit('BTC', 1_000);
    const buy = a.place({ instrument: BTC_USD, side: 'buy', price: 1_000, qty: 10 });
    const sell = b.place({ instrument: BTC_USD, side: 'sell', price: 900, qty: 10 });
    // b's sell rests; a's buy is the taker at the maker's price 900, partially then fully.
    const [sa, sb] = fill(BTC_USD, a, buy, b, sell, 900, 4);
    expect(sa!.fee).to.equal(feeOf(3_600, 25));
    expect(sb!.fee).to.equal(feeOf(3_600, 10));
    expect(a.bal('BTC')).to.deep.equal({ available: 400, held: 0 });
    expect(a.bal('USD').held).to.equal(holdFor(BTC_USD, 'buy', 1_000, 6, false, 1));
    expect(a.bal('USD').available + a.bal('USD').held).to.equal(100_000 - 3_600 - sa!.fee);
    expect(b.bal('USD')).to.deep.equal({ available: 3_600 - sb!.fee, held: 0 });
    fill(BTC_USD, a, buy, b, sell, 900, 6);
    expect(a.s.orders.size).to.equal(0);
    expect(a.bal('USD')).to.deep.equal({ available: 100_000 - 9_000 - feeOf(3_600, 25) - feeOf(5_400, 25), held: 0 });
    expect(b.bal('BTC')).to.deep.equal({ available: 0, held: 0 });
  });

  it('releases the hold on cancel, expiry and book reject, and reconciles it on amend', () => {
    const a = new Acc('a', 1);
    a.deposit('USD', 100_000);
    const rep = (event: BookReport['event']) => a.run({ type: 'BookReport', ts: 3, instrument: BTC_USD, event });
    const base = { ts: 3, account: 'a', side: 'buy' as const, price: 1_000, qty: 10, rested: true };
    const o1 = a.place({ instrument: BTC_USD, side: 'buy', price: 1_000, qty: 10 });
    expect(rep({ type: 'OrderCancelled', orderId: o1, reason: 'expired', ...base })[0]).to.include({ type: 'HoldReleased', reason: 'expired' });
    const o2 = a.place({ instrument: BTC_USD, side: 'buy', price: 1_000, qty: 10 });
    expect(rep({ type: 'CommandRejected', ts: 3, command: 'NewOrder', orderId: o2, account: 'a', clientOrderId: undefined, code: Reject.BOOK_HALTED })[0]).to.include({ type: 'HoldReleased', reason: 'rejected' });
    expect(a.bal('USD')).to.deep.equal({ available: 100_000, held: 0 });
    const o3 = a.place({ instrument: BTC_USD, side: 'buy', price: 1_000, qty: 10 });
    // AmendHold reserves the larger of old and new before the book sees it ...
    expect(a.run({ type: 'AmendHold', ts: 3, orderId: o3, qty: 20 })[0]).to.include({ type: 'HoldChanged', hold: holdFor(BTC_USD, 'buy', 1_000, 20, false, 1) });
    // ... and the book's refusal puts it back.
    rep({ type: 'CommandRejected', ts: 3, command: 'AmendOrder', orderId: o3, account: 'a', clientOrderId: undefined, code: Reject.BOOK_AMEND_NOT_ALLOWED });
    expect(a.bal('USD').held).to.equal(holdFor(BTC_USD, 'buy', 1_000, 10, false, 1));
    a.run({ type: 'AmendHold', ts: 3, orderId: o3, price: 800, qty: 5 });
    expect(a.bal('USD').held).to.equal(holdFor(BTC_USD, 'buy', 1_000, 10, false, 1)); // a smaller amend reserves nothing more
    rep({ type: 'OrderAmended', ts: 3, orderId: o3, account: 'a', side: 'buy', oldPrice: 1_000, oldQty: 10, price: 800, qty: 5, priorityKept: false, rested: true } as BookReport['event']);
    expect(a.bal('USD').held).to.equal(holdFor(BTC_USD, 'buy', 800, 5, false, 1));
    expect(a.s.orders.get(o3)).to.include({ price: 800, qty: 5, pendingQty: 0 });
  });

  it('assigns venue order ids accountNo * 2^32 + seq', () => {
    const a = new Acc('a', 7);
    a.deposit('USD', 100_000);
    expect(a.place({ instrument: BTC_USD, side: 'buy', price: 10, qty: 1 })).to.equal(7 * 2 ** 32 + 1);
    expect(a.place({ instrument: BTC_USD, side: 'buy', price: 10, qty: 1 })).to.equal(7 * 2 ** 32 + 2);
  });

  it('refuses a duplicate transfer id without applying it again', () => {
    const a = new Acc('a', 1);
    expect(a.code({ type: 'Deposit', ts: 1, transferId: 'x', asset: 'USD', amount: 5 })).to.equal(0);
    expect(a.code({ type: 'Deposit', ts: 1, transferId: 'x', asset: 'USD', amount: 5 })).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.code({ type: 'Withdraw', ts: 1, transferId: 'x', asset: 'USD', amount: 5 })).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.bal('USD').available).to.equal(5);
    expect(a.code({ type: 'Withdraw', ts: 1, transferId: 'y', asset: 'USD', amount: 6 })).to.equal(Reject.LEDGER_INSUFFICIENT_AVAILABLE);
    expect(a.code({ type: 'Withdraw', ts: 1, transferId: 'z', asset: 'USD', amount: 5 })).to.equal(0);
    expect(a.bal('USD').available).to.equal(0);
  });
});

describe('risk - pre-trade checks run in order', () => {
  it('reports the first failing check: balance, position, leverage, daily loss, margin', () => {
    const a = new Acc('a', 1);
    a.deposit('USDT', 1_000);
    const po = (o: Partial<PlaceOrder>): number => a.code({ type: 'PlaceOrder', ts: 10, instrument: ETH_PERP, orderType: 'limit', tif: 'GTC', side: 'buy', price: 100, qty: 10, ...o });
    a.run({ type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 50, maxLeverage: 5, dailyLossLimit: 100 } });
    // Fails balance (hold 100_000 > 1000), position (1000 > 50) and leverage at once: balance wins.
    expect(po({ qty: 1_000, leverage: 1 })).to.equal(Reject.RISK_INSUFFICIENT_BALANCE);
    // Affordable at 10x (notional 6000, hold 600) but over the position limit and the leverage limit: position wins.
    expect(po({ qty: 60, leverage: 10 })).to.equal(Reject.RISK_POSITION_LIMIT);
    // Within position, over leverage (notional 5000 + 1000 > 5 * 1000).
    expect(po({ qty: 50, price: 120, leverage: 10 })).to.equal(Reject.RISK_LEVERAGE_LIMIT);
    expect(po({ qty: 10, leverage: 10 })).to.equal(0);
  });

  it('refuses new risk past the daily loss limit but lets reduce-only orders through, and resets at the UTC day', () => {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USDT', 100_000);
    b.deposit('USDT', 100_000);
    a.run({ type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 0, dailyLossLimit: 50 } });
    const buy = a.place({ instrument: ETH_PERP, side: 'buy', price: 100, qty: 10 });
    const sell = b.place({ instrument: ETH_PERP, side: 'sell', price: 100, qty: 10 });
    fill(ETH_PERP, a, buy, b, sell, 100, 10);
    const close = a.place({ instrument: ETH_PERP, side: 'sell', price: 90, qty: 6, reduceOnly: true });
    const bb = b.place({ instrument: ETH_PERP, side: 'buy', price: 90, qty: 6 });
    const [settled] = fill(ETH_PERP, a, close, b, bb, 90, 6);
    expect(settled!.realizedPnl).to.equal(-60);
    expect(settled!.dayPnl).to.equal(-60);
    const po = (o: Partial<PlaceOrder>): number => a.code({ type: 'PlaceOrder', ts: 2, instrument: ETH_PERP, orderType: 'limit', tif: 'GTC', side: 'buy', price: 100, qty: 1, ...o });
    expect(po({})).to.equal(Reject.RISK_DAILY_LOSS_LIMIT);
    expect(po({ side: 'sell', reduceOnly: true })).to.equal(0);
    expect(po({ ts: 86_400_000 })).to.equal(0);
  });

  it('checks margin against unrealized losses after the cash checks', () => {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USDT', 10_000);
    b.deposit('USDT', 100_000);
    a.run({ type: 'SetRiskLimits', ts: 1, limits: { maxPositionQty: 0, maxLeverage: 1_000, dailyLossLimit: 0 } });
    const buy = a.place({ instrument: ETH_PERP, side: 'buy', price: 100, qty: 10 });
    const sell = b.place({ instrument: ETH_PERP, side: 'sell', price: 100, qty: 10 });
    fill(ETH_PERP, a, buy, b, sell, 100, 10);
    a.run({ type: 'SetMarkPrice', ts: 3, instrument: ETH_PERP, price: 50 }); // unrealized -500
    const avail = a.bal('USDT').available; // 9900
    // Hold 9500: affordable from available, not once the 500 unrealized loss counts.
    expect(a.code({ type: 'PlaceOrder', ts: 4, instrument: ETH_PERP, orderType: 'limit', tif: 'GTC', side: 'buy', price: 100, qty: 950, leverage: 10 })).to.equal(Reject.RISK_INSUFFICIENT_MARGIN);
    expect(avail).to.equal(9_900);
    expect(a.code({ type: 'Withdraw', ts: 4, transferId: 'w', asset: 'USDT', amount: 9_500 })).to.equal(Reject.LEDGER_INSUFFICIENT_AVAILABLE);
  });
});

describe('risk - margin positions', () => {
  function pair() {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USDT', 1_000_000);
    b.deposit('USDT', 1_000_000);
    const trade = (i: Instrument, side: 'buy' | 'sell', price: number, qty: number): FillSettled => {
      const mine = a.place({ instrument: i, side, price, qty });
      const theirs = b.place({ instrument: i, side: side === 'buy' ? 'sell' : 'buy', price, qty });
      return fill(i, a, mine, b, theirs, price, qty)[0]!;
    };
    return { a, b, trade };
  }

  it('tracks average entry, realized P&L on reduce and flip, and unrealized P&L at the mark', () => {
    const { a, trade } = pair();
    trade(ETH_PERP, 'buy', 100, 10);
    expect(a.pos('ETH-PERP')).to.include({ qty: 10, entryCost: 1_000, realizedPnl: 0 });
    trade(ETH_PERP, 'buy', 120, 10);
    expect(a.pos('ETH-PERP')).to.include({ qty: 20, entryCost: 2_200 }); // average entry 110
    expect(trade(ETH_PERP, 'sell', 130, 5).realizedPnl).to.equal(5 * 130 - 550);
    expect(a.pos('ETH-PERP')).to.include({ qty: 15, entryCost: 1_650, realizedPnl: 100 });
    const flip = trade(ETH_PERP, 'sell', 90, 20); // closes 15 at 90 (-300), opens 5 short at 90
    expect(flip.realizedPnl).to.equal(15 * 90 - 1_650);
    expect(a.pos('ETH-PERP')).to.include({ qty: -5, entryCost: -450, realizedPnl: -200 });
    const [mp] = a.run({ type: 'SetMarkPrice', ts: 5, instrument: ETH_PERP, price: 80 });
    expect(mp).to.include({ type: 'MarkPriceSet', unrealizedPnl: 50 });
    // A short that buys back above entry loses.
    expect(trade(ETH_PERP, 'buy', 100, 5).realizedPnl).to.equal(-50);
    expect(a.pos('ETH-PERP')).to.include({ qty: 0, entryCost: 0, margin: 0, realizedPnl: -250 });
  });

  it('returns clearing to exactly zero once everybody is flat, whatever the rounding of partial closes', () => {
    const { a, b, trade } = pair();
    trade(ETH_PERP, 'buy', 333, 1);
    trade(ETH_PERP, 'buy', 333, 1);
    trade(ETH_PERP, 'buy', 334, 1);
    const r1 = trade(ETH_PERP, 'sell', 400, 1); // cost removed floor(1000 / 3) = 333
    expect(r1.realizedPnl).to.equal(67);
    const r2 = trade(ETH_PERP, 'sell', 400, 2);
    expect(r2.realizedPnl).to.equal(133);
    // Total P&L telescopes: the last close removes exactly the cost left, so every flat account's realized
    // P&L is (sells - buys) notional, and the notional of each fill cancels between its two sides.
    const total = a.pos('ETH-PERP').realizedPnl + b.pos('ETH-PERP').realizedPnl;
    expect(a.pos('ETH-PERP').qty + b.pos('ETH-PERP').qty).to.equal(0);
    expect(total).to.equal(0);
  });

  it('keeps position margin held, released in proportion on reduce', () => {
    const { a, trade } = pair();
    trade(ETH_PERP, 'buy', 100, 10); // IM ceil(1000 / 10) = 100
    expect(a.pos('ETH-PERP').margin).to.equal(100);
    expect(a.bal('USDT').held).to.equal(100);
    trade(ETH_PERP, 'sell', 100, 3);
    expect(a.pos('ETH-PERP').margin).to.equal(100 - 30);
    expect(a.bal('USDT').held).to.equal(70);
  });

  it('raises a margin call exactly when equity falls below maintenance margin, and liquidates deterministically', () => {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USDT', 300);
    b.deposit('USDT', 1_000_000);
    const open = (i: Instrument, price: number, qty: number) => {
      const mine = a.place({ instrument: i, side: 'buy', price, qty });
      const theirs = b.place({ instrument: i, side: 'sell', price, qty });
      fill(i, a, mine, b, theirs, price, qty);
    };
    open(ETH_PERP, 100, 10); // margin 100
    open(BTC_PERP, 100, 10); // margin 100; equity 300
    a.run({ type: 'SetMarkPrice', ts: 5, instrument: BTC_PERP, price: 100 });
    // equity = 300 + 10 (m - 100); maintenance = ceil(1000 * 2%) + ceil(10 m * 2%) = 20 + ceil(m / 5)
    const at77 = a.run({ type: 'SetMarkPrice', ts: 6, instrument: ETH_PERP, price: 77 }); // equity 70, mm 20 + 16 = 36
    expect(at77.map((e) => e.type)).to.deep.equal(['MarkPriceSet']);
    const at = a.run({ type: 'SetMarkPrice', ts: 7, instrument: ETH_PERP, price: 74 }); // equity 40, mm 20 + 15 = 35
    expect(at.map((e) => e.type)).to.deep.equal(['MarkPriceSet']);
    const call = a.run({ type: 'SetMarkPrice', ts: 8, instrument: ETH_PERP, price: 73 }); // equity 30, mm 35
    expect(call.map((e) => e.type)).to.deep.equal(['MarkPriceSet', 'MarginCall', 'LiquidationOrder', 'LiquidationOrder']);
    expect(call[1]).to.include({ equity: 30, maintenanceMargin: 35, collateral: 'USDT' });
    const liq = call.slice(2) as Extract<LedgerEvent, { type: 'LiquidationOrder' }>[];
    expect(liq.map((o) => [o.symbol, o.side, o.qty, o.orderType, o.tif, o.reduceOnly, o.price, o.hold])).to.deep.equal([
      ['BTC-PERP', 'sell', 10, 'market', 'IOC', true, 0, 0],
      ['ETH-PERP', 'sell', 10, 'market', 'IOC', true, 0, 0],
    ]);
    expect(liq[0]!.orderId).to.equal(2 ** 32 + 3);
    expect(a.code({ type: 'PlaceOrder', ts: 9, instrument: ETH_PERP, orderType: 'limit', tif: 'GTC', side: 'buy', price: 70, qty: 1 })).to.equal(Reject.RISK_ACCOUNT_LIQUIDATING);
    // Same commands, same events (ids and order included): a second ledger run on a's commands.
    const again = new Acc('a', 1);
    for (const c of a.commands) again.run(c);
    expect(JSON.stringify(again.log)).to.equal(JSON.stringify(a.log));
    // And the events alone rebuild the state.
    let replayed = a.m.init();
    for (const e of a.log) replayed = a.m.apply(replayed, e);
    expect(a.m.stateHash(replayed)).to.equal(a.m.stateHash(a.s));
    // The book fills the liquidation orders; once flat, new risk is accepted again.
    for (const o of liq) {
      const i = o.symbol === 'BTC-PERP' ? BTC_PERP : ETH_PERP;
      const px = o.symbol === 'BTC-PERP' ? 100 : 73;
      const bid = b.place({ instrument: i, side: 'buy', price: px, qty: 10 });
      const out = fill(i, a, o.orderId, b, bid, px, 10);
      expect(out).to.have.length(2);
    }
    expect(a.log.at(-1)).to.include({ type: 'LiquidationEnded' });
    expect(a.s.liquidating).to.equal(false);
    expect(a.pos('ETH-PERP').realizedPnl).to.equal(-270);
  });

  it('re-issues liquidation orders on the next mark price when the book could not fill them', () => {
    const a = new Acc('a', 1);
    const b = new Acc('b', 2);
    a.deposit('USDT', 100);
    b.deposit('USDT', 100_000);
    const mine = a.place({ instrument: ETH_PERP, side: 'buy', price: 100, qty: 10 });
    const theirs = b.place({ instrument: ETH_PERP, side: 'sell', price: 100, qty: 10 });
    fill(ETH_PERP, a, mine, b, theirs, 100, 10);
    // equity 100 + 10 (m - 100) against maintenance ceil(10 m * 2%): 92 -> 20 vs 19, 91 -> 10 vs 19
    expect(a.run({ type: 'SetMarkPrice', ts: 4, instrument: ETH_PERP, price: 92 }).map((e) => e.type)).to.deep.equal(['MarkPriceSet']);
    const call = a.run({ type: 'SetMarkPrice', ts: 5, instrument: ETH_PERP, price: 91 });
    const liq = call.find((e) => e.type === 'LiquidationOrder')!;
    expect(liq).to.include({ qty: 10 });
    // Still covered: nothing new.
    expect(a.run({ type: 'SetMarkPrice', ts: 6, instrument: ETH_PERP, price: 90 }).map((e) => e.type)).to.deep.equal(['MarkPriceSet']);
    a.run({ type: 'BookReport', ts: 7, instrument: ETH_PERP, event: { type: 'OrderCancelled', ts: 7, orderId: (liq as { orderId: number }).orderId, account: 'a', side: 'sell', price: 0, qty: 10, reason: 'noLiquidity', rested: false } });
    expect(a.run({ type: 'SetMarkPrice', ts: 8, instrument: ETH_PERP, price: 89 }).map((e) => e.type)).to.deep.equal(['MarkPriceSet', 'LiquidationOrder']);
  });
});

describe('risk - ledger wire codes', () => {
  it('are 301+ and unique against every other command and event code table in schemas', () => {
    const tables = Object.entries(schemas).filter(([name, v]) => /(Command|Event)Code$/.test(name) && typeof v === 'object' && v !== null);
    expect(tables.map(([n]) => n)).to.include.members(['LedgerEventCode', 'LedgerCommandCode', 'BookEventCode']);
    const all = tables.flatMap(([, v]) => Object.values(v as Record<string, number>));
    expect(new Set(all).size).to.equal(all.length);
    for (const code of Object.values(schemas.LedgerEventCode)) expect(code).to.be.within(301, 399);
  });
});

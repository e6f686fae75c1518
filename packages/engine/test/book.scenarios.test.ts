/**
 * Small table-driven scenarios: each row sets up a book, runs one more command, and lists the events
 * that command produced, in the short form of `brief`.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { Order, OrderIndex } from '../src/book/levels.js';
import type { BookCommand, Instrument } from '@bourse/schemas';
import { Reject, defineInstrument } from '@bourse/schemas';
import { OrderBook } from '../src/book/index.js';
import { brief, buy, checkStructure, inst, order, run, sell } from './book-fixtures.js';

interface Row {
  name: string;
  inst?: Instrument;
  given: BookCommand[];
  when: BookCommand;
  then: string[];
  /** resting orders afterwards, as "id qty@price", bids best first then asks */
  book?: string[];
}

function table(rows: Row[]): void {
  for (const r of rows) {
    it(`book - ${r.name}`, () => {
      const b = new OrderBook(r.inst ?? inst);
      run(b, r.given);
      expect(brief(run(b, [r.when]))).to.deep.equal(r.then);
      checkStructure(b);
      if (r.book) expect(b.restingOrders().map((o) => `${o.orderId} ${o.qty}@${o.price}`)).to.deep.equal(r.book);
    });
  }
}

const liquidity = [sell(1, 'm', 101, 2), sell(2, 'm', 101, 3), sell(3, 'x', 102, 4), sell(4, 'm', 103, 5)];

describe('book - matching and priority', () => {
  table([
    {
      name: 'price-time priority: best price first, then arrival order, at the maker price',
      given: liquidity,
      when: buy(10, 't', 102, 6),
      then: ['accepted 10', 'fill 10x1 2@101', 'fill 10x2 3@101', 'fill 10x3 1@102'],
      book: ['3 3@102', '4 5@103'],
    },
    {
      name: 'a limit order rests its remainder behind the level',
      given: [buy(1, 'a', 100, 1)],
      when: buy(2, 'b', 100, 2),
      then: ['accepted 2', 'rested 2 2@100'],
      book: ['1 1@100', '2 2@100'],
    },
    {
      name: 'IOC trades what it can and cancels the rest',
      given: liquidity,
      when: buy(10, 't', 101, 9, { tif: 'IOC' }),
      then: ['accepted 10', 'fill 10x1 2@101', 'fill 10x2 3@101', 'cancelled 10 4 ioc'],
    },
  ]);

  it('book - fills carry fees (ceil), remaining quantities and per-book trade ids', () => {
    const b = new OrderBook(defineInstrument({ symbol: 'F-USD', makerFeeBps: 7, takerFeeBps: 25, quoteMultiplier: 3 }));
    run(b, [sell(1, 'm', 101, 2), sell(2, 'n', 101, 3)]);
    const ev = run(b, [buy(3, 't', 101, 4)]);
    expect(ev.filter((e) => e.type === 'Fill')).to.deep.equal([
      { type: 'Fill', ts: ev[0]!.ts, tradeId: 1, price: 101, qty: 2, takerOrderId: 3, takerAccount: 't', takerSide: 'buy', makerOrderId: 1, makerAccount: 'm', takerFee: 2, makerFee: 1, takerRemaining: 2, makerRemaining: 0 },
      { type: 'Fill', ts: ev[0]!.ts, tradeId: 2, price: 101, qty: 2, takerOrderId: 3, takerAccount: 't', takerSide: 'buy', makerOrderId: 2, makerAccount: 'n', takerFee: 2, makerFee: 1, takerRemaining: 0, makerRemaining: 1 },
    ]);
  });
});

describe('book - self-trade prevention', () => {
  const given = [sell(1, 'a', 101, 2), sell(2, 'b', 101, 2), sell(3, 'a', 102, 5)];
  table([
    { name: 'STP cancelTaker (default) cancels the incoming remainder', given, when: buy(9, 'a', 102, 3), then: ['accepted 9', 'cancelled 9 3 selfTrade'] },
    {
      name: 'STP cancelMaker cancels own resting orders and keeps matching',
      given,
      when: buy(9, 'a', 102, 3, { stp: 'cancelMaker' }),
      then: ['accepted 9', 'cancelled 1 2 selfTrade rested', 'fill 9x2 2@101', 'cancelled 3 5 selfTrade rested', 'rested 9 1@102'],
    },
    { name: 'STP cancelBoth cancels the maker and the taker', given, when: buy(9, 'a', 102, 3, { stp: 'cancelBoth' }), then: ['accepted 9', 'cancelled 1 2 selfTrade rested', 'cancelled 9 3 selfTrade'] },
    {
      name: 'STP decrementBoth shrinks both by the smaller quantity',
      given,
      when: buy(9, 'a', 102, 3, { stp: 'decrementBoth' }),
      then: ['accepted 9', 'cancelled 1 2 selfTrade rested', 'amended 9 3@102->1@102 kept incoming', 'fill 9x2 1@101'],
      book: ['2 1@101', '3 5@102'],
    },
    {
      name: 'STP decrementBoth with a larger maker shrinks it in place and cancels the taker',
      given: [sell(1, 'a', 101, 5), sell(2, 'b', 101, 1)],
      when: buy(9, 'a', 101, 3, { stp: 'decrementBoth' }),
      then: ['accepted 9', 'amended 1 5@101->2@101 kept', 'cancelled 9 3 selfTrade'],
      book: ['1 2@101', '2 1@101'],
    },
  ]);
});

describe('book - FOK and post-only', () => {
  table([
    { name: 'FOK fills completely when it can', given: liquidity, when: buy(9, 't', 102, 9, { tif: 'FOK' }), then: ['accepted 9', 'fill 9x1 2@101', 'fill 9x2 3@101', 'fill 9x3 4@102'] },
    { name: 'FOK that cannot fill completely is cancelled with no fill', given: liquidity, when: buy(9, 't', 102, 10, { tif: 'FOK' }), then: ['accepted 9', 'cancelled 9 10 fok'], book: ['1 2@101', '2 3@101', '3 4@102', '4 5@103'] },
    { name: 'FOK counts own orders as no liquidity', given: liquidity, when: buy(9, 'm', 103, 1, { tif: 'FOK' }), then: ['accepted 9', 'cancelled 9 1 fok'] },
    { name: 'post-only that would take is rejected', given: liquidity, when: buy(9, 't', 101, 1, { postOnly: true }), then: [`rejected 9 ${Reject.BOOK_POST_ONLY_WOULD_TAKE}`] },
    { name: 'post-only that does not cross rests', given: liquidity, when: buy(9, 't', 100, 1, { postOnly: true }), then: ['accepted 9', 'rested 9 1@100'] },
    { name: 'post-only on IOC is invalid', given: [], when: buy(9, 't', 100, 1, { postOnly: true, tif: 'IOC' }), then: [`rejected 9 ${Reject.ORDER_POST_ONLY_INVALID}`] },
  ]);
});

describe('book - market orders and protection', () => {
  const prot = defineInstrument({ symbol: 'P-USD', marketMaxLevels: 2, marketMaxSlippageBps: 150 });
  const mkt = (id: number, qty: number, extra = {}) => order({ orderId: id, account: 't', orderType: 'market', tif: 'IOC', price: 0, qty, ...extra });
  table([
    { name: 'a market order sweeps the book and cancels the remainder when it runs out (ioc)', given: liquidity, when: mkt(9, 20), then: ['accepted 9', 'fill 9x1 2@101', 'fill 9x2 3@101', 'fill 9x3 4@102', 'fill 9x4 5@103', 'cancelled 9 6 ioc'] },
    { name: 'a market order on an empty side is cancelled (noLiquidity)', given: [], when: mkt(9, 1), then: ['accepted 9', 'cancelled 9 1 noLiquidity'] },
    { name: 'market protection: at most marketMaxLevels levels', inst: prot, given: liquidity, when: mkt(9, 20), then: ['accepted 9', 'fill 9x1 2@101', 'fill 9x2 3@101', 'fill 9x3 4@102', 'cancelled 9 11 marketProtection'] },
    {
      name: 'market protection: slippage from the best price at arrival',
      inst: defineInstrument({ symbol: 'P-USD', marketMaxSlippageBps: 100 }),
      given: [sell(1, 'm', 100, 1), sell(2, 'm', 101, 1), sell(3, 'm', 102, 1)],
      when: mkt(9, 5),
      then: ['accepted 9', 'fill 9x1 1@100', 'fill 9x2 1@101', 'cancelled 9 3 marketProtection'],
    },
    { name: 'a protection price caps a market order', given: liquidity, when: mkt(9, 20, { price: 101 }), then: ['accepted 9', 'fill 9x1 2@101', 'fill 9x2 3@101', 'cancelled 9 15 ioc'] },
    { name: 'market orders are IOC or FOK only', given: [], when: mkt(9, 1, { tif: 'GTC' }), then: [`rejected 9 ${Reject.ORDER_INVALID_TIF}`] },
  ]);
});

describe('book - amend', () => {
  const given = [buy(1, 'a', 100, 5), buy(2, 'b', 100, 5), sell(3, 'c', 103, 2)];
  table([
    { name: 'amend reducing qty keeps time priority', given, when: { type: 'AmendOrder', ts: 50, orderId: 1, account: 'a', qty: 2 }, then: ['amended 1 5@100->2@100 kept'], book: ['1 2@100', '2 5@100', '3 2@103'] },
    { name: 'amend increasing qty loses time priority', given, when: { type: 'AmendOrder', ts: 50, orderId: 1, account: 'a', qty: 6 }, then: ['amended 1 5@100->6@100', 'rested 1 6@100'], book: ['2 5@100', '1 6@100', '3 2@103'] },
    { name: 'amend to a new price loses priority and may cross and trade', given, when: { type: 'AmendOrder', ts: 50, orderId: 2, account: 'b', price: 103 }, then: ['amended 2 5@100->5@103', 'fill 2x3 2@103', 'rested 2 3@103'], book: ['2 3@103', '1 5@100'] },
    { name: 'amend with nothing to change is rejected', given, when: { type: 'AmendOrder', ts: 50, orderId: 1, account: 'a', qty: 5, price: 100 }, then: [`rejected 1 ${Reject.BOOK_AMEND_NO_CHANGE}`] },
    { name: 'amend of another account’s order is rejected', given, when: { type: 'AmendOrder', ts: 50, orderId: 1, account: 'b', qty: 1 }, then: [`rejected 1 ${Reject.BOOK_NOT_ORDER_OWNER}`] },
    { name: 'cancel removes the order and says it rested', given, when: { type: 'CancelOrder', ts: 50, orderId: 1, account: 'a' }, then: ['cancelled 1 5 user rested'] },
    {
      name: 'mass cancel by account and side, in time priority',
      given: [buy(1, 'a', 100, 1), sell(2, 'a', 105, 1), buy(3, 'b', 100, 1), buy(4, 'a', 99, 1)],
      when: { type: 'MassCancel', ts: 50, account: 'a', side: 'buy' },
      then: ['cancelled 1 1 massCancel rested', 'cancelled 4 1 massCancel rested'],
      book: ['3 1@100', '2 1@105'],
    },
  ]);
});

describe('book - stops', () => {
  const stop = (id: number, side: 'buy' | 'sell', stopPrice: number, extra = {}) =>
    order({ orderId: id, account: 's', side, orderType: 'stop', tif: 'IOC', price: 0, qty: 1, stopPrice, ...extra });
  const trade = (id: number, price: number) => [sell(id, 'm', price, 1), buy(id + 1, 'n', price, 1)];
  table([
    { name: 'a stop arms off the book', given: trade(1, 100), when: stop(9, 'buy', 102), then: ['accepted 9', 'armed 9'], book: [] },
    { name: 'a stop that would trigger at once is rejected', given: trade(1, 100), when: stop(9, 'buy', 100), then: [`rejected 9 ${Reject.ORDER_STOP_WOULD_TRIGGER}`] },
    {
      name: 'a buy stop fires when the last trade reaches it, as a market order',
      given: [...trade(1, 100), stop(9, 'buy', 102), sell(20, 'm', 102, 1), sell(21, 'm', 103, 1)],
      when: buy(22, 'n', 102, 1),
      then: ['accepted 22', 'fill 22x20 1@102', 'triggered 9 at 102', 'fill 9x21 1@103'],
    },
    {
      name: 'stops fire lowest buy stop price first and cascade',
      given: [...trade(1, 100), stop(9, 'buy', 103), stop(8, 'buy', 101), order({ orderId: 7, account: 's', orderType: 'stopLimit', tif: 'GTC', price: 104, qty: 1, stopPrice: 101 }), sell(20, 'm', 101, 1), sell(21, 'm', 103, 1), sell(23, 'm', 104, 2)],
      when: buy(22, 'n', 101, 1),
      then: ['accepted 22', 'fill 22x20 1@101', 'triggered 8 at 101', 'fill 8x21 1@103', 'triggered 7 at 103', 'fill 7x23 1@104', 'triggered 9 at 104', 'fill 9x23 1@104'],
    },
    {
      name: 'a sell stop-limit fires when the last trade falls to it and rests its limit',
      given: [...trade(1, 100), order({ orderId: 9, account: 's', side: 'sell', orderType: 'stopLimit', tif: 'GTC', price: 99, qty: 2, stopPrice: 98 }), buy(20, 'm', 98, 1)],
      when: sell(21, 'n', 98, 1),
      then: ['accepted 21', 'fill 21x20 1@98', 'triggered 9 at 98', 'rested 9 2@99'],
    },
    { name: 'a stop needs a stop price', given: [], when: stop(9, 'buy', 0), then: [`rejected 9 ${Reject.ORDER_STOP_PRICE_INVALID}`] },
  ]);
});

describe('book - GTD expiry and trading status', () => {
  table([
    {
      name: 'GTD orders expire before the first command at or after expireAt, by expiry then id',
      given: [buy(2, 'a', 100, 1, { tif: 'GTD', expireAt: 20, ts: 1 }), buy(1, 'a', 99, 1, { tif: 'GTD', expireAt: 20, ts: 2 }), buy(3, 'a', 98, 1, { tif: 'GTD', expireAt: 10, ts: 3 })],
      when: { type: 'BookTick', ts: 20 },
      then: ['cancelled 3 1 expired rested', 'cancelled 1 1 expired rested', 'cancelled 2 1 expired rested'],
    },
    { name: 'GTD needs expireAt after ts', given: [], when: buy(1, 'a', 100, 1, { tif: 'GTD', expireAt: 5, ts: 5 }), then: [`rejected 1 ${Reject.ORDER_GTD_EXPIRY_INVALID}`] },
    { name: 'halted: new orders are rejected', given: [{ type: 'SetTradingStatus', ts: 1, status: 'halted' }], when: buy(1, 'a', 100, 1), then: [`rejected 1 ${Reject.BOOK_HALTED}`] },
    {
      name: 'halted: cancels and qty-reducing amends are allowed, price amends are not',
      given: [buy(1, 'a', 100, 5, { ts: 1 }), { type: 'SetTradingStatus', ts: 30, status: 'halted' }, { type: 'AmendOrder', ts: 31, orderId: 1, account: 'a', qty: 4 }],
      when: { type: 'AmendOrder', ts: 32, orderId: 1, account: 'a', price: 101 },
      then: [`rejected 1 ${Reject.BOOK_HALTED}`],
      book: ['1 4@100'],
    },
    {
      name: 'closing cancels every resting and armed order in time priority',
      given: [buy(1, 'a', 100, 1, { ts: 1 }), sell(2, 'b', 105, 1, { ts: 2 }), order({ orderId: 3, account: 'c', orderType: 'stop', tif: 'IOC', price: 0, stopPrice: 110, ts: 3 })],
      when: { type: 'SetTradingStatus', ts: 40, status: 'closed' },
      then: ['status closed', 'cancelled 1 1 closed rested', 'cancelled 2 1 closed rested', 'cancelled 3 1 closed'],
      book: [],
    },
    { name: 'closed: new orders are rejected', given: [{ type: 'SetTradingStatus', ts: 1, status: 'closed' }], when: buy(1, 'a', 100, 1), then: [`rejected 1 ${Reject.BOOK_CLOSED}`] },
    {
      name: 'the price band follows the last trade price',
      inst: defineInstrument({ symbol: 'B-USD', priceBandBps: 500, referencePrice: 100 }),
      given: [sell(1, 'm', 104, 1), buy(2, 'n', 104, 1)],
      when: buy(3, 'a', 98, 1),
      then: [`rejected 3 ${Reject.ORDER_PRICE_OUTSIDE_BAND}`],
    },
  ]);
});

describe('book - queries', () => {
  it('book - best bid/ask, depth, lookup and open orders by account', () => {
    const b = new OrderBook(inst);
    run(b, [buy(1, 'a', 100, 2), buy(2, 'b', 100, 3), buy(3, 'a', 99, 1), sell(4, 'a', 102, 5)]);
    expect([b.bestBid(), b.bestAsk()]).to.deep.equal([100, 102]);
    expect(b.depth('buy', 5)).to.deep.equal([
      { price: 100, qty: 5, orders: 2 },
      { price: 99, qty: 1, orders: 1 },
    ]);
    expect(b.depth('buy', 1)).to.have.length(1);
    expect(b.order(2)?.qty).to.equal(3);
    expect(b.order(42)).to.equal(undefined);
    expect(b.openOrders('a').map((o) => o.orderId)).to.deep.equal([1, 3, 4]);
  });
});

describe('book - order index', () => {
  it('book - the open-addressing id index behaves like a Map under random set/delete (ids up to 2^53)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: 4096 }).map((x) => x * 2 ** 32 + 7))), { maxLength: 3000 }),
        (ops) => {
          const idx = new OrderIndex(4);
          const map = new Map<number, Order>();
          for (const [add, id] of ops) {
            if (add) {
              const o = new Order().init(id, 'a', undefined, 'buy', 'limit', 'GTC', 1, 1, 0, 0, false, false, 'cancelTaker', 0);
              idx.set(id, o);
              map.set(id, o);
            } else {
              idx.delete(id);
              map.delete(id);
            }
            expect(idx.size).to.equal(map.size);
          }
          for (const [, id] of ops) expect(idx.get(id)).to.equal(map.get(id));
          expect(idx.values().length).to.equal(map.size);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('book - amend is FIX cancel/replace: qty is the new total, open = total - executed', () => {
  // order 1: buy 5 @100, then 3 of it fill: executed 3, open 2, total 5
  const partly = [buy(1, 'a', 100, 5, { ts: 1 }), buy(2, 'b', 100, 4, { ts: 2 }), sell(9, 'm', 100, 3, { ts: 3 })];
  const amend = (qty: number | undefined, price?: number): BookCommand => ({ type: 'AmendOrder', ts: 50, orderId: 1, account: 'a', ...(qty === undefined ? {} : { qty }), ...(price === undefined ? {} : { price }) });
  table([
    { name: 'a total below what executed cancels the rest', given: partly, when: amend(2), then: ['cancelled 1 2 amendedBelowFilled rested'], book: ['2 4@100'] },
    { name: 'a total equal to what executed cancels the rest (the order is done), whatever the price', given: partly, when: amend(3, 99), then: ['cancelled 1 2 amendedBelowFilled rested'], book: ['2 4@100'] },
    { name: 'a total that leaves less open keeps time priority', given: partly, when: amend(4), then: ['amended 1 2@100->1@100 kept'], book: ['1 1@100', '2 4@100'] },
    { name: 'the same total as before is no change (the fill that raced it is not re-opened)', given: partly, when: amend(5), then: [`rejected 1 ${Reject.BOOK_AMEND_NO_CHANGE}`] },
    { name: 'a larger total leaves more open and loses time priority', given: partly, when: amend(7), then: ['amended 1 2@100->4@100', 'rested 1 4@100'], book: ['2 4@100', '1 4@100'] },
    { name: 'a price-only amend keeps the open quantity', given: partly, when: amend(undefined, 99), then: ['amended 1 2@100->2@99', 'rested 1 2@99'], book: ['2 4@100', '1 2@99'] },
    { name: 'a total at or below what executed cancels even while halted', given: [...partly, { type: 'SetTradingStatus', ts: 4, status: 'halted' }], when: amend(3), then: ['cancelled 1 2 amendedBelowFilled rested'] },
    {
      name: 'the notional check applies to the total at the new price',
      inst: defineInstrument({ symbol: 'N-USD', maxNotional: 600 }),
      given: [buy(1, 'a', 100, 5, { ts: 1 }), sell(9, 'm', 100, 3, { ts: 3 })],
      when: amend(undefined, 130),
      then: [`rejected 1 ${Reject.ORDER_NOTIONAL_TOO_LARGE}`],
    },
    {
      // decrementBoth takes 2 off order 1's total (5 -> 3), then 1 executes: total 3 = executed 1 + open 2
      name: 'a decrementBoth self-trade reduction lowers the total, not the executed quantity',
      given: [buy(1, 'a', 100, 5, { ts: 1 }), sell(8, 'a', 100, 2, { ts: 2, stp: 'decrementBoth' }), sell(9, 'm', 100, 1, { ts: 3 })],
      when: amend(2),
      then: ['amended 1 2@100->1@100 kept'],
      book: ['1 1@100'],
    },
  ]);

  it('book - executed quantity survives a re-entering amend and is in the order view and the snapshot', () => {
    const b = new OrderBook(inst);
    run(b, [...partly, amend(undefined, 99)]);
    expect(b.order(1)).to.include({ qty: 2, filled: 3 });
    const r = OrderBook.restore(inst, b.snapshot());
    expect(r.order(1)).to.include({ qty: 2, filled: 3 });
    expect(brief(run(r, [amend(3)]))).to.deep.equal(['cancelled 1 2 amendedBelowFilled rested']);
  });
});

describe('book - the command clock never goes back', () => {
  table([
    { name: 'a command stamped before the last event is refused with the command’s ts', given: [buy(1, 'a', 100, 1, { ts: 10 })], when: buy(2, 'a', 99, 1, { ts: 9 }), then: [`rejected 2 ${Reject.ORDER_INVALID_TIMESTAMP}`] },
    { name: 'the same ts as the last event is fine', given: [buy(1, 'a', 100, 1, { ts: 10 })], when: buy(2, 'a', 99, 1, { ts: 10 }), then: ['accepted 2', 'rested 2 1@99'] },
    { name: 'a backwards cancel is refused too', given: [buy(1, 'a', 100, 1, { ts: 10 })], when: { type: 'CancelOrder', ts: 3, orderId: 1, account: 'a' }, then: [`rejected 1 ${Reject.ORDER_INVALID_TIMESTAMP}`] },
    { name: 'a backwards unknown message is still an unknown message', given: [buy(1, 'a', 100, 1, { ts: 10 })], when: { type: 'Nope', ts: 3 } as unknown as BookCommand, then: [`rejected 0 ${Reject.PROTO_UNKNOWN_MESSAGE}`] },
    // only events move the clock, so that a recovered book (snapshot + events) refuses exactly what the live one does
    { name: 'a tick that expired nothing does not move the clock', given: [buy(1, 'a', 100, 1, { ts: 10 }), { type: 'BookTick', ts: 50 }], when: buy(2, 'a', 99, 1, { ts: 20 }), then: ['accepted 2', 'rested 2 1@99'] },
    { name: 'a rejected command does not move the clock', given: [buy(1, 'a', 100, 1, { ts: 10 }), buy(5, 'a', 100, 0, { ts: 2 ** 50 })], when: buy(2, 'a', 99, 1, { ts: 20 }), then: ['accepted 2', 'rested 2 1@99'] },
    { name: 'expiry moves the clock', given: [buy(1, 'a', 100, 1, { ts: 10, tif: 'GTD', expireAt: 40 }), { type: 'BookTick', ts: 45 }], when: buy(2, 'a', 99, 1, { ts: 44 }), then: [`rejected 2 ${Reject.ORDER_INVALID_TIMESTAMP}`] },
  ]);

  it('book - replay restores the clock: a restored book refuses what the live one refuses', () => {
    const b = new OrderBook(inst);
    const events = run(b, [buy(1, 'a', 100, 1, { ts: 10 }), sell(2, 'b', 101, 1, { ts: 30 }), { type: 'BookTick', ts: 99 }], true);
    const r = new OrderBook(inst);
    for (const e of events) r.apply(e);
    expect(r.lastTs).to.equal(30);
    expect(r.snapshot()).to.deep.equal(b.snapshot());
    expect(brief(run(r, [buy(3, 'a', 99, 1, { ts: 29 })]))).to.deep.equal([`rejected 3 ${Reject.ORDER_INVALID_TIMESTAMP}`]);
  });
});

describe('book - price band arithmetic is exact for large prices', () => {
  // ref * bps and diff * 10000 are beyond 2^53 here; in floats 9207949459508 looks inside the band
  const big = defineInstrument({ symbol: 'BIG-USD', priceBandBps: 9999, referencePrice: 4_604_204_940_001, maxNotional: 2 ** 50 });
  table([
    { name: 'one tick beyond the band edge is refused', inst: big, given: [], when: buy(1, 'a', 9_207_949_459_508, 1, { ts: 1 }), then: [`rejected 1 ${Reject.ORDER_PRICE_OUTSIDE_BAND}`] },
    { name: 'the band edge itself is accepted', inst: big, given: [], when: buy(1, 'a', 9_207_949_459_507, 1, { ts: 1 }), then: ['accepted 1', 'rested 1 1@9207949459507'] },
  ]);
});

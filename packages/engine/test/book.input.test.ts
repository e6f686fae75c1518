/**
 * Bad input: every field out of range gets its own reject code, the book state does not change, and
 * nothing throws, whatever garbage arrives.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { BookCommand, BookEvent, RejectCode } from '@bourse/schemas';
import { Reject, defineInstrument, rejectName } from '@bourse/schemas';
import { OrderBook, bookMachine } from '../src/book/index.js';
import { checkStructure, run } from './book-fixtures.js';

const strict = defineInstrument({
  symbol: 'BTC-USD',
  tickSize: 5,
  lotSize: 2,
  minQty: 4,
  maxQty: 1000,
  maxNotional: 1_000_000,
  priceBandBps: 1000,
  referencePrice: 1000,
});
const margin = defineInstrument({ symbol: 'BTC-PERP', mode: 'margin', maxLeverage: 10, maintenanceMarginBps: 500 });

const base = { type: 'NewOrder', ts: 10, orderId: 77, account: 'acc', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 4 };

/** A book with resting orders 1 (buy 995 x 10, 'acc'), 2 (sell 1010 x 4, 'other'), armed stop 3 ('acc'), last trade none. */
function setup(): OrderBook {
  const b = new OrderBook(strict, { stopsMax: 1, idLengthMax: 64 });
  run(b, [
    { ...base, ts: 1, orderId: 1, price: 995, qty: 10 },
    { ...base, ts: 2, orderId: 2, account: 'other', side: 'sell', price: 1010, qty: 4 },
    { ...base, ts: 3, orderId: 3, orderType: 'stop', tif: 'IOC', price: 0, stopPrice: 1050 },
  ] as BookCommand[]);
  return b;
}

type Case = [label: string, cmd: Record<string, unknown>, code: RejectCode, prepare?: BookCommand[]];

const nasty = [undefined, null, NaN, Infinity, -1, 0, 1.5, '7', true, {}, [], 2 ** 53];
const cases: Case[] = [
  ...nasty.filter((x) => x !== 7).map((x): Case => [`orderId ${String(x)}`, { ...base, orderId: x }, Reject.ORDER_INVALID_ID]),
  ...['', 5, undefined, null, 'x'.repeat(65)].map((x): Case => [`account ${String(x)}`, { ...base, account: x }, Reject.ORDER_INVALID_ACCOUNT]),
  ...[5, null, 'x'.repeat(65)].map((x): Case => [`clientOrderId ${String(x)}`, { ...base, clientOrderId: x }, Reject.ORDER_INVALID_CLIENT_ORDER_ID]),
  ...['BUY', undefined, 1, 'both'].map((x): Case => [`side ${String(x)}`, { ...base, side: x }, Reject.ORDER_INVALID_SIDE]),
  ...['iceberg', undefined, 3].map((x): Case => [`orderType ${String(x)}`, { ...base, orderType: x }, Reject.ORDER_INVALID_TYPE]),
  ...['GTX', undefined, 0].map((x): Case => [`tif ${String(x)}`, { ...base, tif: x }, Reject.ORDER_INVALID_TIF]),
  ['market GTC', { ...base, orderType: 'market', price: 0 }, Reject.ORDER_INVALID_TIF],
  ...[-1, 1.5, NaN, '1', undefined, 2 ** 60].map((x): Case => [`ts ${String(x)}`, { ...base, ts: x }, Reject.ORDER_INVALID_TIMESTAMP]),
  ...[0, -5, NaN, 'x', Infinity, undefined, 1000.5].map((x): Case => [`price ${String(x)}`, { ...base, price: x }, Reject.ORDER_PRICE_NOT_POSITIVE]),
  ['price off tick', { ...base, price: 1001 }, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE],
  ...[0, -2, 2.5, NaN, '4', undefined].map((x): Case => [`qty ${String(x)}`, { ...base, qty: x }, Reject.ORDER_QTY_NOT_POSITIVE]),
  ['qty off lot', { ...base, qty: 5 }, Reject.ORDER_QTY_NOT_LOT_MULTIPLE],
  ['qty below min', { ...base, qty: 2 }, Reject.ORDER_QTY_BELOW_MIN],
  ['qty above max', { ...base, qty: 1002 }, Reject.ORDER_QTY_ABOVE_MAX],
  ['price above band', { ...base, price: 1105 }, Reject.ORDER_PRICE_OUTSIDE_BAND],
  ['price below band', { ...base, price: 895 }, Reject.ORDER_PRICE_OUTSIDE_BAND],
  ['notional', { ...base, qty: 1000, price: 1100 }, Reject.ORDER_NOTIONAL_TOO_LARGE],
  ['GTD without expireAt', { ...base, tif: 'GTD' }, Reject.ORDER_GTD_EXPIRY_INVALID],
  ['GTD expireAt = ts', { ...base, tif: 'GTD', expireAt: 10 }, Reject.ORDER_GTD_EXPIRY_INVALID],
  ['GTD expireAt string', { ...base, tif: 'GTD', expireAt: '99' }, Reject.ORDER_GTD_EXPIRY_INVALID],
  ['expireAt on GTC', { ...base, expireAt: 99 }, Reject.ORDER_GTD_EXPIRY_INVALID],
  ['stop without stopPrice', { ...base, orderType: 'stopLimit' }, Reject.ORDER_STOP_PRICE_INVALID],
  ['stop with stopPrice off tick', { ...base, orderType: 'stopLimit', stopPrice: 1001 }, Reject.ORDER_STOP_PRICE_INVALID],
  ['stopPrice on a limit', { ...base, stopPrice: 1000 }, Reject.ORDER_STOP_PRICE_INVALID],
  ['postOnly not boolean', { ...base, postOnly: 'yes' }, Reject.ORDER_INVALID_FLAG],
  ['reduceOnly not boolean', { ...base, reduceOnly: 1 }, Reject.ORDER_INVALID_FLAG],
  ['postOnly on IOC', { ...base, tif: 'IOC', postOnly: true }, Reject.ORDER_POST_ONLY_INVALID],
  ['postOnly on market', { ...base, orderType: 'market', tif: 'IOC', price: 0, postOnly: true }, Reject.ORDER_POST_ONLY_INVALID],
  ['reduceOnly on cash', { ...base, reduceOnly: true }, Reject.ORDER_REDUCE_ONLY_NOT_MARGIN],
  ['stp unknown', { ...base, stp: 'cancelNewest' }, Reject.ORDER_INVALID_STP],
  ['market protection price off tick', { ...base, orderType: 'market', tif: 'IOC', price: 1001 }, Reject.ORDER_INVALID_PROTECTION],
  ['market protection price negative', { ...base, orderType: 'market', tif: 'IOC', price: -5 }, Reject.ORDER_INVALID_PROTECTION],
  ['duplicate live order id', { ...base, orderId: 1 }, Reject.BOOK_DUPLICATE_ORDER_ID],
  ['post-only would take', { ...base, price: 1010, postOnly: true }, Reject.BOOK_POST_ONLY_WOULD_TAKE],
  ['too many stops', { ...base, orderType: 'stop', tif: 'IOC', price: 0, stopPrice: 1060 }, Reject.BOOK_TOO_MANY_STOPS],
  ['stop would trigger', { ...base, orderType: 'stopLimit', stopPrice: 1010 }, Reject.ORDER_STOP_WOULD_TRIGGER, [
    { type: 'MassCancel', ts: 5, account: 'acc' },
    { ...base, ts: 6, orderId: 50, price: 1010 } as BookCommand,
  ]],
  ['halted', base, Reject.BOOK_HALTED, [{ type: 'SetTradingStatus', ts: 5, status: 'halted' }]],
  ['closed', base, Reject.BOOK_CLOSED, [{ type: 'SetTradingStatus', ts: 5, status: 'closed' }]],
  // cancel
  ['cancel orderId', { type: 'CancelOrder', ts: 10, orderId: 'x', account: 'acc' }, Reject.ORDER_INVALID_ID],
  ['cancel account', { type: 'CancelOrder', ts: 10, orderId: 1, account: 7 }, Reject.ORDER_INVALID_ACCOUNT],
  ['cancel unknown', { type: 'CancelOrder', ts: 10, orderId: 99, account: 'acc' }, Reject.BOOK_UNKNOWN_ORDER],
  ['cancel not owner', { type: 'CancelOrder', ts: 10, orderId: 1, account: 'other' }, Reject.BOOK_NOT_ORDER_OWNER],
  // amend
  ['amend orderId', { type: 'AmendOrder', ts: 10, orderId: -1, account: 'acc', qty: 4 }, Reject.ORDER_INVALID_ID],
  ['amend account', { type: 'AmendOrder', ts: 10, orderId: 1, account: '', qty: 4 }, Reject.ORDER_INVALID_ACCOUNT],
  ['amend price', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', price: NaN }, Reject.ORDER_PRICE_NOT_POSITIVE],
  ['amend price tick', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', price: 996 }, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE],
  ['amend qty', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', qty: 0 }, Reject.ORDER_QTY_NOT_POSITIVE],
  ['amend qty lot', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', qty: 3 }, Reject.ORDER_QTY_NOT_LOT_MULTIPLE],
  ['amend qty max', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', qty: 2000 }, Reject.ORDER_QTY_ABOVE_MAX],
  ['amend nothing', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc' }, Reject.BOOK_AMEND_NO_CHANGE],
  ['amend same values', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', qty: 10, price: 995 }, Reject.BOOK_AMEND_NO_CHANGE],
  ['amend unknown', { type: 'AmendOrder', ts: 10, orderId: 99, account: 'acc', qty: 4 }, Reject.BOOK_UNKNOWN_ORDER],
  ['amend not owner', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'other', qty: 4 }, Reject.BOOK_NOT_ORDER_OWNER],
  ['amend armed stop', { type: 'AmendOrder', ts: 10, orderId: 3, account: 'acc', qty: 4 }, Reject.BOOK_AMEND_NOT_ALLOWED],
  ['amend band', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', price: 1200 }, Reject.ORDER_PRICE_OUTSIDE_BAND],
  ['amend notional', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', price: 1050, qty: 1000 }, Reject.ORDER_NOTIONAL_TOO_LARGE],
  ['amend post-only would take', { type: 'AmendOrder', ts: 10, orderId: 60, account: 'acc', price: 1010 }, Reject.BOOK_POST_ONLY_WOULD_TAKE, [
    { ...base, ts: 5, orderId: 60, price: 990, postOnly: true } as BookCommand,
  ]],
  ['amend price while halted', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', price: 1000 }, Reject.BOOK_HALTED, [{ type: 'SetTradingStatus', ts: 5, status: 'halted' }]],
  ['amend while closed', { type: 'AmendOrder', ts: 10, orderId: 1, account: 'acc', qty: 4 }, Reject.BOOK_CLOSED, [{ type: 'SetTradingStatus', ts: 5, status: 'closed' }]],
  // others
  ['mass cancel account', { type: 'MassCancel', ts: 10, account: null }, Reject.ORDER_INVALID_ACCOUNT],
  ['mass cancel side', { type: 'MassCancel', ts: 10, account: 'acc', side: 'long' }, Reject.ORDER_INVALID_SIDE],
  ['status unknown', { type: 'SetTradingStatus', ts: 10, status: 'paused' }, Reject.BOOK_INVALID_STATUS],
  ['reference price', { type: 'SetReferencePrice', ts: 10, price: 0 }, Reject.ORDER_PRICE_NOT_POSITIVE],
  ['reference price tick', { type: 'SetReferencePrice', ts: 10, price: 1001 }, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE],
  ['unknown command type', { type: 'Explode', ts: 10 }, Reject.PROTO_UNKNOWN_MESSAGE],
  ['no type', { ts: 10 }, Reject.PROTO_UNKNOWN_MESSAGE],
];

describe('book - bad input', function () {
  this.timeout(60_000);
  for (const [label, cmd, code, prepare] of cases) {
    it(`book - rejects ${label} with ${rejectName(code)}`, () => {
      const b = setup();
      if (prepare) run(b, prepare);
      const before = JSON.stringify(b.snapshot());
      const out: BookEvent[] = [];
      b.step(cmd as unknown as BookCommand, out);
      expect(out.map((e) => (e.type === 'CommandRejected' ? rejectName(e.code) : e.type))).to.deep.equal([rejectName(code)]);
      expect(JSON.stringify(b.snapshot())).to.equal(before);
    });
  }

  it('book - reduce-only is accepted on a margin instrument (position checks belong to the ledger)', () => {
    const b = new OrderBook(margin);
    expect(run(b, [{ ...base, price: 100, reduceOnly: true } as BookCommand]).map((e) => e.type)).to.deep.equal(['OrderAccepted', 'OrderRested']);
  });

  it('book - every ORDER and BOOK reject code the book owns is reached by a case above', () => {
    const reached = new Set(cases.map((c) => c[2]));
    const notTheBooks = new Set<number>([Reject.ORDER_UNKNOWN_INSTRUMENT]); // routing decides the instrument, before any book
    const owned = Object.values(Reject).filter((c) => c >= 1000 && c < 3000 && !notTheBooks.has(c));
    expect(owned.filter((c) => !reached.has(c as RejectCode)).map(rejectName)).to.deep.equal([]);
  });

  it('book - rejected commands echo ids only when they are valid', () => {
    const out: BookEvent[] = [];
    new OrderBook(strict).step({ ...base, orderId: 'x', account: { evil: true }, clientOrderId: 'c-1', qty: -1 } as unknown as BookCommand, out);
    expect(out).to.deep.equal([{ type: 'CommandRejected', ts: 10, command: 'NewOrder', orderId: 0, account: '', clientOrderId: 'c-1', code: Reject.ORDER_INVALID_ID }]);
  });

  it('book - fuzzed garbage never throws, is rejected with a known code, and leaves the state as it was', () => {
    const m = bookMachine(strict);
    const field = fc.oneof(fc.anything(), fc.constantFrom(0, -1, 1.5, NaN, Infinity, '', 'buy', 'sell', 'GTC', 'limit', 1000, 4, 2 ** 53));
    const garbage = fc.oneof(
      fc.anything(),
      fc.record(
        {
          type: fc.constantFrom('NewOrder', 'CancelOrder', 'AmendOrder', 'MassCancel', 'SetTradingStatus', 'SetReferencePrice', 'BookTick', 'x'),
          ts: fc.oneof(fc.constant(10), field),
          orderId: fc.oneof(fc.constant(1), field),
          account: fc.oneof(fc.constant('acc'), field),
          side: field,
          orderType: field,
          tif: field,
          price: field,
          qty: field,
          stopPrice: field,
          expireAt: field,
          postOnly: field,
          reduceOnly: field,
          stp: field,
          status: field,
          clientOrderId: field,
        },
        { requiredKeys: ['type'] },
      ),
    );
    const codes = new Set<number>(Object.values(Reject));
    fc.assert(
      fc.property(garbage, (g) => {
        const b = setup();
        const before = m.stateHash(b);
        const out: BookEvent[] = [];
        expect(() => m.step(b, g as BookCommand, out)).to.not.throw();
        checkStructure(b);
        if (out.length === 1 && out[0]!.type === 'CommandRejected') {
          expect(codes.has(out[0]!.code)).to.equal(true);
          expect(m.stateHash(b)).to.equal(before);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

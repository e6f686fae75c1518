/**
 * Orders and trades, projected from book streams (`book/<symbol>`). Book events carry no symbol: the
 * stream id names the instrument.
 *
 * A page is folded in memory first (`foldBookPage`), then written with at most three statements,
 * whatever its length: one insert of the orders accepted in the page (each already carrying the rest
 * of the page's events), one insert of its trades, and one update of the orders accepted before the
 * page (fill deltas added to the stored totals, the last value of every other field). The result is
 * the same as applying the events one by one (a property test checks it against that reference).
 */
import { sql, type Transaction } from 'kysely';
import type { JournalPage } from '@bourse/actors';
import { assertNever, type BookEvent } from '@bourse/schemas';
import type { Database, OrderStatus, OrderTable, TradeTable } from '../db.js';
import type { Projection } from './framework.js';

export const BOOK_STREAM_PREFIX = 'book/';

export const instrumentOfBookStream = (persistenceId: string): string => persistenceId.slice(BOOK_STREAM_PREFIX.length);

/**
 * A status set by `OrderRested` on an order whose fills so far are all in the stored row: it reads
 * the stored `filled_qty` (> 0: partiallyFilled, else open).
 */
export const RESTED_BY_STORED_FILLS = '$rested';

/** What a page does to an order accepted before it. Absent fields are left as stored. */
export interface OrderPatch {
  order_id: number;
  /** Added to the stored totals. */
  fill_qty: number;
  fill_notional: number;
  leaves_qty?: number;
  status?: OrderStatus | typeof RESTED_BY_STORED_FILLS;
  is_open?: boolean;
  price?: number;
  cancel_reason?: string;
  updated_ts?: number;
}

export interface BookPageFold {
  /** Orders accepted in the page, with the page's later events applied, in acceptance order. */
  inserts: OrderTable[];
  trades: TradeTable[];
  /** Orders accepted before the page (or unknown: then the update touches nothing, as a per-event update would). */
  patches: OrderPatch[];
}

/** Folds a page of book events into rows to insert and patches to stored orders. */
export function foldBookPage(instrument: string, events: readonly BookEvent[]): BookPageFold {
  const inserts: OrderTable[] = [];
  const fresh = new Map<number, OrderTable>();
  const patches = new Map<number, OrderPatch>();
  const trades: TradeTable[] = [];
  // One event's effect on one order, whichever map it lives in.
  const touch = (orderId: number, f: (o: OrderTable) => void, p: (x: OrderPatch) => void) => {
    const o = fresh.get(orderId);
    if (o) return f(o);
    let x = patches.get(orderId);
    if (!x) patches.set(orderId, (x = { order_id: orderId, fill_qty: 0, fill_notional: 0 }));
    p(x);
  };
  for (const e of events) {
    switch (e.type) {
      case 'OrderAccepted': {
        const stop = e.orderType === 'stop' || e.orderType === 'stopLimit';
        const row: OrderTable = {
          instrument,
          order_id: e.orderId,
          account: e.account,
          client_order_id: e.clientOrderId ?? null,
          side: e.side,
          order_type: e.orderType,
          tif: e.tif,
          price: e.price,
          stop_price: e.stopPrice,
          qty: e.qty,
          leaves_qty: e.qty,
          filled_qty: 0,
          filled_notional: 0,
          status: stop ? 'pendingStop' : 'new',
          cancel_reason: null,
          is_open: true,
          created_ts: e.ts,
          updated_ts: e.ts,
        };
        // Events for it earlier in the page updated no row (it did not exist yet): forget them. A
        // second acceptance of one id fails the insert on the primary key, as it would one by one.
        patches.delete(e.orderId);
        inserts.push(row);
        fresh.set(e.orderId, row);
        break;
      }
      case 'Fill': {
        trades.push({
          instrument,
          trade_id: e.tradeId,
          ts: e.ts,
          price: e.price,
          qty: e.qty,
          taker_order_id: e.takerOrderId,
          taker_account: e.takerAccount,
          taker_side: e.takerSide,
          maker_order_id: e.makerOrderId,
          maker_account: e.makerAccount,
          taker_fee: e.takerFee,
          maker_fee: e.makerFee,
        });
        for (const [orderId, remaining] of [
          [e.takerOrderId, e.takerRemaining],
          [e.makerOrderId, e.makerRemaining],
        ] as const) {
          const status: OrderStatus = remaining === 0 ? 'filled' : 'partiallyFilled';
          touch(
            orderId,
            (o) => {
              o.filled_qty += e.qty;
              o.filled_notional += e.price * e.qty;
              o.leaves_qty = remaining;
              o.status = status;
              o.is_open = remaining > 0;
              o.updated_ts = e.ts;
            },
            (x) => {
              x.fill_qty += e.qty;
              x.fill_notional += e.price * e.qty;
              x.leaves_qty = remaining;
              x.status = status;
              x.is_open = remaining > 0;
              x.updated_ts = e.ts;
            },
          );
        }
        break;
      }
      case 'OrderRested':
        touch(
          e.orderId,
          (o) => {
            o.status = o.filled_qty > 0 ? 'partiallyFilled' : 'open';
            o.leaves_qty = e.qty;
            o.price = e.price;
            o.updated_ts = e.ts;
          },
          (x) => {
            // Fills only add, so a fill earlier in the page decides; else the stored total does.
            x.status = x.fill_qty > 0 ? 'partiallyFilled' : RESTED_BY_STORED_FILLS;
            x.leaves_qty = e.qty;
            x.price = e.price;
            x.updated_ts = e.ts;
          },
        );
        break;
      case 'OrderCancelled':
        touch(
          e.orderId,
          (o) => {
            o.status = 'cancelled';
            o.cancel_reason = e.reason;
            o.leaves_qty = 0;
            o.is_open = false;
            o.updated_ts = e.ts;
          },
          (x) => {
            x.status = 'cancelled';
            x.cancel_reason = e.reason;
            x.leaves_qty = 0;
            x.is_open = false;
            x.updated_ts = e.ts;
          },
        );
        break;
      case 'OrderAmended':
        touch(
          e.orderId,
          (o) => {
            o.price = e.price;
            o.leaves_qty = e.qty;
            o.updated_ts = e.ts;
          },
          (x) => {
            x.price = e.price;
            x.leaves_qty = e.qty;
            x.updated_ts = e.ts;
          },
        );
        break;
      case 'StopArmed':
      case 'StopTriggered': {
        const status: OrderStatus = e.type === 'StopArmed' ? 'pendingStop' : 'new';
        touch(
          e.orderId,
          (o) => {
            o.status = status;
            o.updated_ts = e.ts;
          },
          (x) => {
            x.status = status;
            x.updated_ts = e.ts;
          },
        );
        break;
      }
      case 'CommandRejected': // nothing entered the book
      case 'TradingStatusChanged':
      case 'ReferencePriceChanged':
        break;
      default:
        assertNever(e, 'book event');
    }
  }
  return { inserts, trades, patches: [...patches.values()].sort((a, b) => a.order_id - b.order_id) };
}

/** Rows per statement (orders and trades are inserted from arrays: 19 / 12 parameters, whatever the count). */
const CHUNK = 2000;

const col = <T, K extends keyof T>(rows: readonly T[], k: K): Array<T[K] | null> => rows.map((r) => (r[k] === undefined ? null : r[k]));

/** Pages of distinct book streams: every page folded, then at most three statements per chunk for all of them. */
async function applyBookPages(trx: Transaction<Database>, pages: readonly JournalPage<BookEvent>[]): Promise<void> {
  const inserts: OrderTable[] = [];
  const trades: TradeTable[] = [];
  const patches: Array<OrderPatch & { instrument: string }> = [];
  for (const page of pages) {
    const instrument = instrumentOfBookStream(page.persistenceId);
    const f = foldBookPage(instrument, page.events);
    inserts.push(...f.inserts);
    trades.push(...f.trades);
    for (const x of f.patches) patches.push({ ...x, instrument });
  }
  // Patches first: they name orders accepted before the page, which the inserts cannot contain.
  for (let i = 0; i < patches.length; i += CHUNK) {
    const c = patches.slice(i, i + CHUNK);
    await sql`
      update orders o set
        filled_qty = o.filled_qty + v.fill_qty,
        filled_notional = o.filled_notional + v.fill_notional,
        leaves_qty = coalesce(v.leaves_qty, o.leaves_qty),
        status = case when v.status = ${RESTED_BY_STORED_FILLS}
                      then (case when o.filled_qty > 0 then 'partiallyFilled' else 'open' end)
                      else coalesce(v.status, o.status) end,
        is_open = coalesce(v.is_open, o.is_open),
        price = coalesce(v.price, o.price),
        cancel_reason = coalesce(v.cancel_reason, o.cancel_reason),
        updated_ts = coalesce(v.updated_ts, o.updated_ts)
      from unnest(${col(c, 'instrument')}::text[], ${col(c, 'order_id')}::int8[], ${col(c, 'fill_qty')}::int8[], ${col(c, 'fill_notional')}::int8[],
                  ${col(c, 'leaves_qty')}::int8[], ${col(c, 'status')}::text[], ${col(c, 'is_open')}::bool[],
                  ${col(c, 'price')}::int8[], ${col(c, 'cancel_reason')}::text[], ${col(c, 'updated_ts')}::int8[])
           as v(instrument, order_id, fill_qty, fill_notional, leaves_qty, status, is_open, price, cancel_reason, updated_ts)
      where o.instrument = v.instrument and o.order_id = v.order_id`.execute(trx);
  }
  for (let i = 0; i < inserts.length; i += CHUNK) {
    const c = inserts.slice(i, i + CHUNK);
    await sql`
      insert into orders (instrument, order_id, account, client_order_id, side, order_type, tif, price, stop_price, qty, leaves_qty,
                          filled_qty, filled_notional, status, cancel_reason, is_open, created_ts, updated_ts)
      select * from unnest(${col(c, 'instrument')}::text[], ${col(c, 'order_id')}::int8[], ${col(c, 'account')}::text[], ${col(c, 'client_order_id')}::text[],
                           ${col(c, 'side')}::text[], ${col(c, 'order_type')}::text[], ${col(c, 'tif')}::text[], ${col(c, 'price')}::int8[],
                           ${col(c, 'stop_price')}::int8[], ${col(c, 'qty')}::int8[], ${col(c, 'leaves_qty')}::int8[], ${col(c, 'filled_qty')}::int8[],
                           ${col(c, 'filled_notional')}::int8[], ${col(c, 'status')}::text[], ${col(c, 'cancel_reason')}::text[], ${col(c, 'is_open')}::bool[],
                           ${col(c, 'created_ts')}::int8[], ${col(c, 'updated_ts')}::int8[])`.execute(trx);
  }
  for (let i = 0; i < trades.length; i += CHUNK) {
    const c = trades.slice(i, i + CHUNK);
    await sql`
      insert into trades (instrument, trade_id, ts, price, qty, taker_order_id, taker_account, taker_side, maker_order_id, maker_account, taker_fee, maker_fee)
      select * from unnest(${col(c, 'instrument')}::text[], ${col(c, 'trade_id')}::int8[], ${col(c, 'ts')}::int8[], ${col(c, 'price')}::int8[],
                           ${col(c, 'qty')}::int8[], ${col(c, 'taker_order_id')}::int8[], ${col(c, 'taker_account')}::text[], ${col(c, 'taker_side')}::text[],
                           ${col(c, 'maker_order_id')}::int8[], ${col(c, 'maker_account')}::text[], ${col(c, 'taker_fee')}::int8[], ${col(c, 'maker_fee')}::int8[])`.execute(trx);
  }
}

/** Orders (status, filled quantity, average price) and trades from book events. */
export const ordersAndTradesProjection: Projection<BookEvent> = {
  name: 'orders_trades',
  streamPrefix: BOOK_STREAM_PREFIX,
  apply: (trx, page) => applyBookPages(trx, [page]),
  applyPages: applyBookPages,
};

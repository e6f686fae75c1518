/**
 * Orders and trades, projected from book streams (`book/<symbol>`). Book events carry no symbol: the
 * stream id names the instrument.
 */
import type { Transaction } from 'kysely';
import { sql } from 'kysely';
import type { JournalPage } from '@bourse/actors';
import { assertNever, type BookEvent } from '@bourse/schemas';
import type { Database } from '../db.js';
import type { Projection } from './framework.js';

export const BOOK_STREAM_PREFIX = 'book/';

export const instrumentOfBookStream = (persistenceId: string): string => persistenceId.slice(BOOK_STREAM_PREFIX.length);

async function applyOne(trx: Transaction<Database>, instrument: string, e: BookEvent): Promise<void> {
  switch (e.type) {
    case 'OrderAccepted': {
      const stop = e.orderType === 'stop' || e.orderType === 'stopLimit';
      await trx
        .insertInto('orders')
        .values({
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
        })
        .execute();
      return;
    }
    case 'Fill': {
      await trx
        .insertInto('trades')
        .values({
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
        })
        .execute();
      for (const [orderId, remaining] of [
        [e.takerOrderId, e.takerRemaining],
        [e.makerOrderId, e.makerRemaining],
      ] as const) {
        await trx
          .updateTable('orders')
          .set({
            filled_qty: sql`filled_qty + ${e.qty}`,
            filled_notional: sql`filled_notional + ${e.price * e.qty}`,
            leaves_qty: remaining,
            status: remaining === 0 ? 'filled' : 'partiallyFilled',
            is_open: remaining > 0,
            updated_ts: e.ts,
          })
          .where('instrument', '=', instrument)
          .where('order_id', '=', orderId)
          .execute();
      }
      return;
    }
    case 'OrderRested':
      await trx
        .updateTable('orders')
        .set({ status: sql`case when filled_qty > 0 then 'partiallyFilled' else 'open' end`, leaves_qty: e.qty, price: e.price, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'OrderCancelled':
      await trx
        .updateTable('orders')
        .set({ status: 'cancelled', cancel_reason: e.reason, leaves_qty: 0, is_open: false, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'OrderAmended':
      await trx
        .updateTable('orders')
        .set({ price: e.price, leaves_qty: e.qty, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'StopArmed':
      await trx.updateTable('orders').set({ status: 'pendingStop', updated_ts: e.ts }).where('instrument', '=', instrument).where('order_id', '=', e.orderId).execute();
      return;
    case 'StopTriggered':
      await trx.updateTable('orders').set({ status: 'new', updated_ts: e.ts }).where('instrument', '=', instrument).where('order_id', '=', e.orderId).execute();
      return;
    case 'CommandRejected': // nothing entered the book
    case 'TradingStatusChanged':
    case 'ReferencePriceChanged':
      return;
    default:
      assertNever(e, 'book event');
  }
}

/** Orders (status, filled quantity, average price) and trades from book events. */
export const ordersAndTradesProjection: Projection<BookEvent> = {
  name: 'orders_trades',
  streamPrefix: BOOK_STREAM_PREFIX,
  async apply(trx, page: JournalPage<BookEvent>) {
    const instrument = instrumentOfBookStream(page.persistenceId);
    for (const e of page.events) await applyOne(trx, instrument, e);
  },
};

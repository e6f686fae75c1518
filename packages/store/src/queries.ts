/**
 * Read-model queries for the HTTP API. Pages are keyset-paged: pass the returned `next` cursor back.
 */
import type { Kysely } from 'kysely';
import type { CandleInterval } from '@bourse/schemas';
import type { Database, LedgerKindColumn, OrderStatus } from './db.js';

export interface OrderView {
  readonly instrument: string;
  readonly orderId: number;
  readonly account: string;
  readonly clientOrderId: string | null;
  readonly side: string;
  readonly orderType: string;
  readonly tif: string;
  readonly price: number;
  readonly stopPrice: number;
  readonly qty: number;
  readonly leavesQty: number;
  readonly filledQty: number;
  /** Volume-weighted average fill price, in price units (not money: may be fractional); null before a fill. */
  readonly avgPrice: number | null;
  readonly status: OrderStatus;
  readonly cancelReason: string | null;
  readonly createdTs: number;
  readonly updatedTs: number;
}

export interface TradeView {
  readonly instrument: string;
  readonly tradeId: number;
  readonly ts: number;
  readonly price: number;
  readonly qty: number;
  readonly takerOrderId: number;
  readonly takerAccount: string;
  readonly takerSide: string;
  readonly makerOrderId: number;
  readonly makerAccount: string;
  readonly takerFee: number;
  readonly makerFee: number;
}

export interface BalanceView {
  readonly kind: LedgerKindColumn;
  readonly account: string;
  readonly asset: string;
  readonly available: number;
  readonly held: number;
  /** available + held. */
  readonly total: number;
  readonly updatedTs: number;
  /** The ledger sequence this balance is as of. */
  readonly seq: number;
}

export interface PositionView {
  readonly account: string;
  readonly instrument: string;
  readonly collateral: string;
  readonly qty: number;
  readonly entryCost: number;
  readonly realizedPnl: number;
  readonly margin: number;
  readonly updatedTs: number;
  readonly seq: number;
}

export interface CandleView {
  readonly instrument: string;
  readonly interval: CandleInterval;
  readonly start: number;
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
  readonly volume: number;
  readonly trades: number;
  /** false while the bucket is still open (the latest CandleUpdate). */
  readonly closed: boolean;
  readonly updatedTs: number;
}

export interface Page<T, C> {
  readonly items: T[];
  /** Cursor for the next page; undefined on the last. */
  readonly next: C | undefined;
}

export type OrderCursor = { readonly createdTs: number; readonly instrument: string; readonly orderId: number };
export type TradeCursor = { readonly ts: number; readonly instrument: string; readonly tradeId: number };

const LIMIT_MAX = 1000;
const limitOf = (n: number | undefined) => Math.max(1, Math.min(LIMIT_MAX, n ?? 100));

export class ReadModels {
  constructor(readonly db: Kysely<Database>) {}

  /**
   * An account's orders, newest first: open ones, or the whole history.
   * @example const { items, next } = await store.readModels.ordersByAccount('acc-1', { open: true, limit: 50 });
   */
  async ordersByAccount(account: string, opts: { open?: boolean; limit?: number; after?: OrderCursor } = {}): Promise<Page<OrderView, OrderCursor>> {
    const limit = limitOf(opts.limit);
    let q = this.db.selectFrom('orders').selectAll().where('account', '=', account);
    if (opts.open) q = q.where('is_open', '=', true);
    const a = opts.after;
    if (a) {
      q = q.where((eb) =>
        eb.or([
          eb('created_ts', '<', a.createdTs),
          eb.and([eb('created_ts', '=', a.createdTs), eb.or([eb('instrument', '>', a.instrument), eb.and([eb('instrument', '=', a.instrument), eb('order_id', '>', a.orderId)])])]),
        ]),
      );
    }
    const rows = await q.orderBy('created_ts', 'desc').orderBy('instrument').orderBy('order_id').limit(limit + 1).execute();
    const items = rows.slice(0, limit).map(
      (r): OrderView => ({
        instrument: r.instrument,
        orderId: Number(r.order_id),
        account: r.account,
        clientOrderId: r.client_order_id,
        side: r.side,
        orderType: r.order_type,
        tif: r.tif,
        price: Number(r.price),
        stopPrice: Number(r.stop_price),
        qty: Number(r.qty),
        leavesQty: Number(r.leaves_qty),
        filledQty: Number(r.filled_qty),
        avgPrice: Number(r.filled_qty) > 0 ? Number(r.filled_notional) / Number(r.filled_qty) : null,
        status: r.status,
        cancelReason: r.cancel_reason,
        createdTs: Number(r.created_ts),
        updatedTs: Number(r.updated_ts),
      }),
    );
    const last = items.at(-1);
    return { items, next: rows.length > limit && last ? { createdTs: last.createdTs, instrument: last.instrument, orderId: last.orderId } : undefined };
  }

  /**
   * Trades of an instrument or of an account (either side) with `fromTs <= ts < toTs`, oldest first.
   * @example await store.readModels.trades({ instrument: 'BTC-USD' }, 0, Date.now());
   */
  async trades(
    by: { instrument: string } | { account: string },
    fromTs: number,
    toTs: number,
    opts: { limit?: number; after?: TradeCursor } = {},
  ): Promise<Page<TradeView, TradeCursor>> {
    const limit = limitOf(opts.limit);
    let q = this.db.selectFrom('trades').selectAll().where('ts', '>=', fromTs).where('ts', '<', toTs);
    q = 'instrument' in by ? q.where('instrument', '=', by.instrument) : q.where((eb) => eb.or([eb('taker_account', '=', by.account), eb('maker_account', '=', by.account)]));
    const a = opts.after;
    if (a) {
      q = q.where((eb) =>
        eb.or([
          eb('ts', '>', a.ts),
          eb.and([eb('ts', '=', a.ts), eb.or([eb('instrument', '>', a.instrument), eb.and([eb('instrument', '=', a.instrument), eb('trade_id', '>', a.tradeId)])])]),
        ]),
      );
    }
    const rows = await q.orderBy('ts').orderBy('instrument').orderBy('trade_id').limit(limit + 1).execute();
    const items = rows.slice(0, limit).map(
      (r): TradeView => ({
        instrument: r.instrument,
        tradeId: Number(r.trade_id),
        ts: Number(r.ts),
        price: Number(r.price),
        qty: Number(r.qty),
        takerOrderId: Number(r.taker_order_id),
        takerAccount: r.taker_account,
        takerSide: r.taker_side,
        makerOrderId: Number(r.maker_order_id),
        makerAccount: r.maker_account,
        takerFee: Number(r.taker_fee),
        makerFee: Number(r.maker_fee),
      }),
    );
    const last = items.at(-1);
    return { items, next: rows.length > limit && last ? { ts: last.ts, instrument: last.instrument, tradeId: last.tradeId } : undefined };
  }

  /**
   * An account's balances, one per asset (assets in order). `kind` selects a system ledger instead:
   * `balances('fees', 'fees')`.
   * @example const balances = await store.readModels.balancesByAccount('acc-1');
   */
  async balancesByAccount(account: string, kind: LedgerKindColumn = 'user'): Promise<BalanceView[]> {
    const rows = await this.db.selectFrom('balances').selectAll().where('kind', '=', kind).where('account', '=', account).orderBy('asset').limit(LIMIT_MAX).execute();
    return rows.map((r) => ({
      kind: r.kind,
      account: r.account,
      asset: r.asset,
      available: Number(r.available),
      held: Number(r.held),
      total: Number(r.available) + Number(r.held),
      updatedTs: Number(r.updated_ts),
      seq: Number(r.seq),
    }));
  }

  /**
   * An account's margin positions (instruments in order); `open: true` leaves out flat ones.
   * @example const open = await store.readModels.positionsByAccount('acc-1', { open: true });
   */
  async positionsByAccount(account: string, opts: { open?: boolean } = {}): Promise<PositionView[]> {
    let q = this.db.selectFrom('positions').selectAll().where('account', '=', account);
    if (opts.open) q = q.where('qty', '<>', 0);
    const rows = await q.orderBy('instrument').limit(LIMIT_MAX).execute();
    return rows.map((r) => ({
      account: r.account,
      instrument: r.instrument,
      collateral: r.collateral,
      qty: Number(r.qty),
      entryCost: Number(r.entry_cost),
      realizedPnl: Number(r.realized_pnl),
      margin: Number(r.margin),
      updatedTs: Number(r.updated_ts),
      seq: Number(r.seq),
    }));
  }

  /**
   * Candles of an instrument and interval whose bucket starts in `fromTs <= start < toTs`, oldest
   * first; the still-open bucket is included with `closed: false`. Page on with `after: next`.
   * @example await store.readModels.candles('BTC-USD', '1m', Date.now() - 3_600_000, Date.now());
   */
  async candles(
    instrument: string,
    interval: CandleInterval,
    fromTs: number,
    toTs: number,
    opts: { limit?: number; after?: number; closedOnly?: boolean } = {},
  ): Promise<Page<CandleView, number>> {
    const limit = limitOf(opts.limit);
    let q = this.db
      .selectFrom('candles')
      .selectAll()
      .where('instrument', '=', instrument)
      .where('interval', '=', interval)
      .where('start_ts', '>=', opts.after !== undefined ? Math.max(fromTs, opts.after + 1) : fromTs)
      .where('start_ts', '<', toTs);
    if (opts.closedOnly) q = q.where('closed', '=', true);
    const rows = await q.orderBy('start_ts').limit(limit + 1).execute();
    const items = rows.slice(0, limit).map(
      (r): CandleView => ({
        instrument: r.instrument,
        interval: r.interval as CandleInterval,
        start: Number(r.start_ts),
        open: Number(r.open),
        high: Number(r.high),
        low: Number(r.low),
        close: Number(r.close),
        volume: Number(r.volume),
        trades: Number(r.trades),
        closed: r.closed,
        updatedTs: Number(r.updated_ts),
      }),
    );
    const last = items.at(-1);
    return { items, next: rows.length > limit && last ? last.start : undefined };
  }
}

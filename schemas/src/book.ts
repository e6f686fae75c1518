/**
 * The order book's vocabulary: commands in, events out. One book per instrument.
 *
 * Every command carries `ts`, integer milliseconds of the command clock, stamped at ingress. The book
 * never reads a clock of its own: GTD expiry compares against `ts`. The clock never goes back: a command
 * whose `ts` is earlier than the `ts` of the book's last event is refused (ORDER_INVALID_TIMESTAMP, the
 * rejection carrying the command's own `ts`) and changes nothing, expiry included. Only events count, so
 * a recovered book (snapshot + events) refuses exactly what the live one would: a command that produced
 * no event (a BookTick that expired nothing) does not move the clock.
 *
 * Events are the book's journal: applying them in order to an empty book rebuilds it exactly
 * (`apply`), so every event carries what replay needs.
 */
import type { RejectCode } from './rejects.js';

export type Side = 'buy' | 'sell';
export type OrderType = 'limit' | 'market' | 'stop' | 'stopLimit';
/** GTC rests until cancelled; IOC never rests; FOK fills completely at once or not at all; GTD rests until `expireAt`. */
export type TimeInForce = 'GTC' | 'IOC' | 'FOK' | 'GTD';
/** Self-trade prevention, decided by the incoming (taker) order. */
export type SelfTradePrevention = 'cancelTaker' | 'cancelMaker' | 'cancelBoth' | 'decrementBoth';
export type TradingStatus = 'open' | 'halted' | 'closed';

export type CancelReason =
  | 'user' // CancelOrder
  | 'massCancel' // MassCancel
  | 'ioc' // IOC or market remainder that found no more liquidity within its limit
  | 'fok' // FOK that could not fill completely
  | 'marketProtection' // market order stopped by the level or slippage limit
  | 'noLiquidity' // market order with an empty opposite side
  | 'selfTrade' // self-trade prevention
  | 'expired' // GTD expiry
  | 'closed' // instrument closed
  | 'amendedBelowFilled'; // AmendOrder set the total quantity to at most what the order had already executed

// ---------------------------------------------------------------- commands

export interface NewOrder {
  readonly type: 'NewOrder';
  readonly ts: number;
  /** Venue order id: a positive safe integer, unique among the book's live orders. */
  readonly orderId: number;
  readonly account: string;
  readonly clientOrderId?: string;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  /** Limit price. For `market` and `stop`: 0, or a protection price the order never trades beyond. */
  readonly price: number;
  readonly qty: number;
  /** For `stop` and `stopLimit`: the last-trade price that triggers the order. */
  readonly stopPrice?: number;
  /** For GTD: expiry on the command clock (ms). The order is gone once a command with `ts >= expireAt` arrives. */
  readonly expireAt?: number;
  readonly postOnly?: boolean;
  /** Margin instruments only. Position reduction is enforced by the account's risk ledger. */
  readonly reduceOnly?: boolean;
  /** Default 'cancelTaker'. */
  readonly stp?: SelfTradePrevention;
}

export interface CancelOrder {
  readonly type: 'CancelOrder';
  readonly ts: number;
  readonly orderId: number;
  readonly account: string;
}

/**
 * Amend a resting order, with FIX OrderCancelReplaceRequest semantics.
 *
 * `qty` is the new **total** order quantity (FIX OrderQty), not the open quantity: the new open
 * (leaves) quantity is `qty - executed`, where `executed` is what the order has filled so far (FIX
 * CumQty), across earlier amends too. Self-trade prevention 'decrementBoth' reduces the order's total,
 * not its executed quantity, so at every moment total = executed + open. This makes an amend safe
 * against fills that race it: a client that asks for a total of N never gets more than N executed,
 * whatever filled between sending the amend and the book seeing it.
 *
 * - `qty <= executed`: the order is done; its open quantity is cancelled (OrderCancelled, reason
 *   'amendedBelowFilled'), whatever `price` says, even while halted. Band, notional and post-only checks
 *   do not apply, since nothing new goes on the book.
 * - Same price and a smaller open quantity: shrinks in place, time priority kept.
 * - A new price or a larger open quantity: loses time priority (the order re-enters and may trade).
 * - Omitted `qty`: the open quantity stays as it is; omitted `price`: the price stays.
 * - The notional check (ORDER_NOTIONAL_TOO_LARGE) applies to the total quantity at the new price, as
 *   for a NewOrder. Resulting in the same price and the same open quantity is BOOK_AMEND_NO_CHANGE.
 *
 * OrderAmended reports the result in open quantities (`oldQty` -> `qty`).
 */
export interface AmendOrder {
  readonly type: 'AmendOrder';
  readonly ts: number;
  readonly orderId: number;
  readonly account: string;
  readonly price?: number;
  readonly qty?: number;
}

export interface MassCancel {
  readonly type: 'MassCancel';
  readonly ts: number;
  readonly account: string;
  readonly side?: Side;
}

export interface SetTradingStatus {
  readonly type: 'SetTradingStatus';
  readonly ts: number;
  readonly status: TradingStatus;
}

export interface SetReferencePrice {
  readonly type: 'SetReferencePrice';
  readonly ts: number;
  readonly price: number;
}

/** Advances the command clock (expires GTD orders) without other effect. */
export interface BookTick {
  readonly type: 'BookTick';
  readonly ts: number;
}

export type BookCommand = NewOrder | CancelOrder | AmendOrder | MassCancel | SetTradingStatus | SetReferencePrice | BookTick;
export type BookCommandType = BookCommand['type'];

/** Stable wire codes. Never reuse a retired one. */
export const BookCommandCode: { readonly [K in BookCommandType]: number } = {
  NewOrder: 1,
  CancelOrder: 2,
  AmendOrder: 3,
  MassCancel: 4,
  SetTradingStatus: 5,
  SetReferencePrice: 6,
  BookTick: 7,
};

// ---------------------------------------------------------------- events

/** The order passed validation. Carries the full order, so that replay can rebuild it. */
export interface OrderAccepted {
  readonly type: 'OrderAccepted';
  readonly ts: number;
  readonly orderId: number;
  readonly account: string;
  readonly clientOrderId: string | undefined;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  readonly price: number;
  readonly qty: number;
  readonly stopPrice: number;
  readonly expireAt: number;
  readonly postOnly: boolean;
  readonly reduceOnly: boolean;
  readonly stp: SelfTradePrevention;
}

/**
 * A command was refused. Nothing in the book changed (GTD orders that expired at `ts` before the command
 * was looked at are still expired). `orderId` is 0 and `account` is '' when the command names no valid one;
 * `command` is 'unknown' when the command is not an object with a known `type` (code PROTO_UNKNOWN_MESSAGE),
 * and `ts` is 0 when the command's own `ts` is not valid.
 */
export interface CommandRejected {
  readonly type: 'CommandRejected';
  readonly ts: number;
  readonly command: BookCommandType | 'unknown';
  readonly orderId: number;
  readonly account: string;
  readonly clientOrderId: string | undefined;
  readonly code: RejectCode;
}

/** One execution between the incoming (taker) order and a resting (maker) order, at the maker's price. */
export interface Fill {
  readonly type: 'Fill';
  readonly ts: number;
  /** Per-book trade id, 1, 2, 3, ... */
  readonly tradeId: number;
  readonly price: number;
  readonly qty: number;
  readonly takerOrderId: number;
  readonly takerAccount: string;
  readonly takerSide: Side;
  readonly makerOrderId: number;
  readonly makerAccount: string;
  /** Quote minor units, charged to each side: ceil(notional * feeBps / 10000). */
  readonly takerFee: number;
  readonly makerFee: number;
  /** Open quantities after this fill. */
  readonly takerRemaining: number;
  readonly makerRemaining: number;
}

/** The order's open quantity now rests on the book at `price`, behind everything already there. */
export interface OrderRested {
  readonly type: 'OrderRested';
  readonly ts: number;
  readonly orderId: number;
  readonly side: Side;
  readonly price: number;
  readonly qty: number;
}

/**
 * The order's open quantity is gone. `rested` says whether that quantity was on the book (and so in L2).
 */
export interface OrderCancelled {
  readonly type: 'OrderCancelled';
  readonly ts: number;
  readonly orderId: number;
  readonly account: string;
  readonly side: Side;
  readonly price: number;
  readonly qty: number;
  readonly reason: CancelReason;
  readonly rested: boolean;
}

/**
 * A resting order changed. `oldQty` and `qty` are **open** (leaves) quantities, before and after, even
 * though AmendOrder's `qty` is the total: the book computed `qty` = AmendOrder.qty - executed. The
 * executed quantity itself never changes here (it changes only by Fill), so replay needs nothing more.
 * With `priorityKept` the open quantity shrank in place to `qty`. Without it the order left the book
 * (`oldQty` at `oldPrice`) and re-entered as a new incoming order with `price`/`qty`: Fill, OrderRested
 * or OrderCancelled events follow exactly as for a new order.
 *
 * Self-trade prevention 'decrementBoth' also uses this event (with `priorityKept`, reason implied) for the
 * side whose open quantity shrank but did not reach zero; the side that reached zero gets OrderCancelled
 * with reason 'selfTrade'. A decrement reduces the order's total quantity (executed is unchanged). For the
 * incoming (taker) order that quantity was not on the book: `rested` is false then, and true in every
 * other case.
 */
export interface OrderAmended {
  readonly type: 'OrderAmended';
  readonly ts: number;
  readonly orderId: number;
  readonly account: string;
  readonly side: Side;
  readonly oldPrice: number;
  readonly oldQty: number;
  readonly price: number;
  readonly qty: number;
  readonly priorityKept: boolean;
  /** Whether `oldQty` was on the visible book (and so in L2). False only for a decremented taker. */
  readonly rested: boolean;
}

/** A stop or stop-limit order waits, off the visible book, for the last trade price to reach `stopPrice`. */
export interface StopArmed {
  readonly type: 'StopArmed';
  readonly ts: number;
  readonly orderId: number;
  readonly side: Side;
  readonly stopPrice: number;
}

/**
 * A stop fired on `lastPrice`; it now enters as an incoming order (a `stop` as a market order, a
 * `stopLimit` as a limit order), and its Fill/Rested/Cancelled events follow.
 *
 * Trigger order: stops are looked at after an incoming order has finished matching, one at a time. Of
 * the armed buy stops with `stopPrice <= last` the lowest stop price fires first, of the sell stops with
 * `stopPrice >= last` the highest, ties by acceptance order; when both sides have one ready, the one
 * accepted first fires. Each fired order matches completely before the next stop is looked at. A
 * cascade is bounded by the number of armed stops, which the book caps (BOOK_TOO_MANY_STOPS).
 */
export interface StopTriggered {
  readonly type: 'StopTriggered';
  readonly ts: number;
  readonly orderId: number;
  readonly lastPrice: number;
}

export interface TradingStatusChanged {
  readonly type: 'TradingStatusChanged';
  readonly ts: number;
  readonly status: TradingStatus;
}

export interface ReferencePriceChanged {
  readonly type: 'ReferencePriceChanged';
  readonly ts: number;
  readonly price: number;
}

export type BookEvent =
  | OrderAccepted
  | CommandRejected
  | Fill
  | OrderRested
  | OrderCancelled
  | OrderAmended
  | StopArmed
  | StopTriggered
  | TradingStatusChanged
  | ReferencePriceChanged;
export type BookEventType = BookEvent['type'];

export const BookEventCode: { readonly [K in BookEventType]: number } = {
  OrderAccepted: 101,
  CommandRejected: 102,
  Fill: 103,
  OrderRested: 104,
  OrderCancelled: 105,
  OrderAmended: 106,
  StopArmed: 107,
  StopTriggered: 108,
  TradingStatusChanged: 109,
  ReferencePriceChanged: 110,
};

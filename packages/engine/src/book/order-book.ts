/**
 * The order book of one instrument: a mutable, deterministic core that `bookMachine` wraps.
 *
 * `step(cmd, out)` decides and applies a command in one pass and appends its events to `out`;
 * `apply(event)` replays one event. Both are integer-only, read no clock and no randomness.
 *
 * Semantics (exact; the reference book in test/book-reference.ts implements the same by brute force):
 * - A command whose `ts` is earlier than `lastTs` (the `ts` of the last event that was not a rejection) is
 *   refused with ORDER_INVALID_TIMESTAMP before anything else, expiry included.
 * - Before any command with a valid `ts`, GTD orders with `expireAt <= ts` are cancelled ('expired'), by
 *   (expireAt, orderId).
 * - Matching is strict price-time priority, at the maker's price. A taker finishes completely (fills,
 *   then rests or is cancelled) before any stop is looked at; see StopTriggered for the trigger order.
 * - Amend (FIX cancel/replace): AmendOrder.qty is the new total; open = total - filled, where `filled`
 *   counts executions only (a 'decrementBoth' reduction lowers the total, not `filled`). Open <= 0
 *   cancels the order ('amendedBelowFilled'); a smaller open at the same price keeps time priority.
 * - Time priority (`seq`) is given on acceptance, on re-entry after an amend that loses priority, and
 *   when a stop fires.
 * - Market orders: the best opposite price at arrival P0 bounds the sweep to `marketMaxLevels` levels
 *   and `marketMaxSlippageBps` from P0 (remainder 'marketProtection'); then the order's own protection
 *   price (remainder 'ioc'); running out of book is 'ioc'; an empty opposite side at arrival is
 *   'noLiquidity'.
 * - FOK: fills completely or is cancelled ('fok') with no other effect. Resting orders of the taker's own
 *   account on its path count as no liquidity, and with any STP mode but 'cancelMaker' they make it fail.
 * - Post-only: rejected (BOOK_POST_ONLY_WOULD_TAKE) if its price crosses the best opposite price.
 * - Closing cancels every resting and armed order ('closed') in time-priority (`seq`) order; mass cancel
 *   likewise for the account's orders.
 */
import type {
  BookCommand,
  BookCommandType,
  BookEvent,
  CancelReason,
  Instrument,
  OrderType,
  RejectCode,
  SelfTradePrevention,
  Side,
  TimeInForce,
  TradingStatus,
} from '@bourse/schemas';
import { BPS, Reject, feeOf, validateInstrument } from '@bourse/schemas';
import { AccountOrders, ExpiryHeap, Level, Order, OrderIndex, WHERE_ARMED, WHERE_BOOK, WHERE_INCOMING, searchLevel } from './levels.js';

/** Limits of one book. */
export interface BookLimits {
  /** Most armed stop orders at once; bounds one command's trigger cascade. */
  readonly stopsMax: number;
  /** Longest account and client order id strings. */
  readonly idLengthMax: number;
}

export const defaultBookLimits: BookLimits = Object.freeze({ stopsMax: 10_000, idLengthMax: 64 });

/** A read-only view of a live order (resting or armed). */
export interface OrderView {
  readonly orderId: number;
  readonly account: string;
  readonly clientOrderId: string | undefined;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly tif: TimeInForce;
  readonly price: number;
  /** Open (leaves) quantity. */
  readonly qty: number;
  /** Executed (cumulative filled) quantity; the order's total is `filled + qty`. */
  readonly filled: number;
  readonly stopPrice: number;
  readonly expireAt: number;
  readonly postOnly: boolean;
  readonly reduceOnly: boolean;
  readonly stp: SelfTradePrevention;
  readonly seq: number;
  readonly state: 'resting' | 'armed';
}

export interface DepthLevel {
  readonly price: number;
  readonly qty: number;
  readonly orders: number;
}

/** Canonical snapshot row of one order. */
type OrderRow = [
  id: number,
  account: string,
  clientOrderId: string | null,
  side: Side,
  orderType: OrderType,
  tif: TimeInForce,
  price: number,
  qty: number,
  stopPrice: number,
  expireAt: number,
  postOnly: boolean,
  reduceOnly: boolean,
  stp: SelfTradePrevention,
  seq: number,
  filled: number,
];

export interface BookSnapshot {
  readonly v: 2;
  readonly symbol: string;
  readonly status: TradingStatus;
  /** `ts` of the last event that was not a CommandRejected; earlier commands are refused. */
  readonly lastTs: number;
  readonly lastPrice: number;
  readonly referencePrice: number;
  readonly tradeId: number;
  readonly seq: number;
  /** Resting bids, best level first, time priority within a level. */
  readonly bids: OrderRow[];
  readonly asks: OrderRow[];
  /** Armed stops, by seq. */
  readonly stops: OrderRow[];
}

// sweep outcomes
const SWEEP_DONE = 0; // taker has no open quantity left (filled, or cancelled by STP)
const SWEEP_EMPTY = 1; // opposite side ran out
const SWEEP_LIMIT = 2; // next level beyond the taker's own limit or protection price
const SWEEP_PROTECTION = 3; // next level beyond the instrument's market protection

const NO_KEY = -Infinity;

/** floor(a * b / c) for non-negative safe integers, exact even when a * b is not a safe integer. */
function mulDivFloor(a: number, b: number, c: number): number {
  const p = a * b;
  if (p <= Number.MAX_SAFE_INTEGER) {
    const q = Math.floor(p / c);
    return q * c > p ? q - 1 : q; // the float quotient can round up to the next integer near 2^53
  }
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}

function isPosInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
}
function isSide(x: unknown): x is Side {
  return x === 'buy' || x === 'sell';
}
function isOrderType(x: unknown): x is OrderType {
  return x === 'limit' || x === 'market' || x === 'stop' || x === 'stopLimit';
}
function isTif(x: unknown): x is TimeInForce {
  return x === 'GTC' || x === 'IOC' || x === 'FOK' || x === 'GTD';
}
function isStp(x: unknown): x is SelfTradePrevention {
  return x === 'cancelTaker' || x === 'cancelMaker' || x === 'cancelBoth' || x === 'decrementBoth';
}
function isCommandType(x: unknown): x is BookCommandType {
  return (
    x === 'NewOrder' || x === 'CancelOrder' || x === 'AmendOrder' || x === 'MassCancel' || x === 'SetTradingStatus' || x === 'SetReferencePrice' || x === 'BookTick'
  );
}
function isStatus(x: unknown): x is TradingStatus {
  return x === 'open' || x === 'halted' || x === 'closed';
}

/** Buy stops fire lowest stopPrice first, sell stops highest first; ties by seq. `a` fires before `b`. */
function firesBefore(a: Order, b: Order): boolean {
  if (a.stopPrice === b.stopPrice) return a.seq < b.seq;
  return a.isBuy ? a.stopPrice < b.stopPrice : a.stopPrice > b.stopPrice;
}

function bySeq(a: Order, b: Order): number {
  return a.seq - b.seq;
}

export class OrderBook {
  readonly instrument: Instrument;
  readonly limits: BookLimits;

  status: TradingStatus = 'open';
  /** Price of the last trade, 0 before the first. */
  lastPrice = 0;
  /** Set by SetReferencePrice, 0 if never. */
  referencePrice = 0;
  tradeId = 0;
  seq = 0;
  /** `ts` of the book's last event other than CommandRejected: a command with an earlier `ts` is refused. */
  lastTs = 0;

  /** Ascending by key (price), best (highest) last. */
  readonly bids: Level[] = [];
  /** Ascending by key (-price), best (lowest price) last. */
  readonly asks: Level[] = [];
  /** Armed stops per side, the next to fire last. */
  readonly buyStops: Order[] = [];
  readonly sellStops: Order[] = [];
  readonly orders = new OrderIndex();
  readonly accounts = new Map<string, AccountOrders>();
  readonly expiries = new ExpiryHeap();

  /** Set by `reject` during one `step`: whether the command was refused. */
  private rejected = false;
  /** Replay only: the incoming order between its first event and its last. */
  private pending: Order | null = null;
  private readonly levelPool: Level[] = [];
  /** Orders that left the book for good, reused by `step` so that resting orders are not garbage. */
  private readonly orderPool: Order[] = [];

  // instrument, flattened for the hot path
  private readonly tick: number;
  private readonly lot: number;
  private readonly minQty: number;
  private readonly maxQty: number;
  private readonly maxNotional: number;
  private readonly quoteMultiplier: number;
  private readonly bandBps: number;
  private readonly makerFeeBps: number;
  private readonly takerFeeBps: number;
  private readonly marketMaxLevels: number;
  private readonly slippageBps: number;
  private readonly margin: boolean;

  constructor(instrument: Instrument, limits: BookLimits = defaultBookLimits) {
    const problems = validateInstrument(instrument);
    if (problems.length !== 0) throw new Error(`book: invalid instrument ${instrument.symbol}: ${problems.join('; ')}`);
    this.instrument = instrument;
    this.limits = limits;
    this.tick = instrument.tickSize;
    this.lot = instrument.lotSize;
    this.minQty = instrument.minQty;
    this.maxQty = instrument.maxQty;
    this.maxNotional = instrument.maxNotional;
    this.quoteMultiplier = instrument.quoteMultiplier;
    this.bandBps = instrument.priceBandBps;
    this.makerFeeBps = instrument.makerFeeBps;
    this.takerFeeBps = instrument.takerFeeBps;
    this.marketMaxLevels = instrument.marketMaxLevels;
    this.slippageBps = instrument.marketMaxSlippageBps;
    this.margin = instrument.mode === 'margin';
  }

  // ================================================================ queries

  /** Best bid price, 0 if none. */
  bestBid(): number {
    const n = this.bids.length;
    return n === 0 ? 0 : this.bids[n - 1]!.price;
  }

  /** Best ask price, 0 if none. */
  bestAsk(): number {
    const n = this.asks.length;
    return n === 0 ? 0 : this.asks[n - 1]!.price;
  }

  /** The band's reference: last trade price, else SetReferencePrice, else the instrument's; 0 = none. */
  bandReference(): number {
    return this.lastPrice > 0 ? this.lastPrice : this.referencePrice > 0 ? this.referencePrice : this.instrument.referencePrice;
  }

  /** Top `n` levels of one side, best first, aggregated. */
  depth(side: Side, n: number): DepthLevel[] {
    const levels = side === 'buy' ? this.bids : this.asks;
    const out: DepthLevel[] = [];
    for (let i = levels.length - 1; i >= 0 && out.length < n; i--) {
      const l = levels[i]!;
      out.push({ price: l.price, qty: l.qty, orders: l.count });
    }
    return out;
  }

  /** Number of price levels on one side. */
  levelCount(side: Side): number {
    return side === 'buy' ? this.bids.length : this.asks.length;
  }

  /** A live (resting or armed) order, or undefined. */
  order(orderId: number): OrderView | undefined {
    const o = this.orders.get(orderId);
    return o === undefined ? undefined : view(o);
  }

  /** An account's live orders, by time priority (seq). */
  openOrders(account: string): OrderView[] {
    const rec = this.accounts.get(account);
    const list: Order[] = [];
    for (let o = rec?.head ?? null; o !== null; o = o.accNext) list.push(o);
    return list.sort(bySeq).map(view);
  }

  /** Every resting order: bids best first then asks best first, time priority within a level. */
  restingOrders(): OrderView[] {
    const out: OrderView[] = [];
    for (const levels of [this.bids, this.asks]) {
      for (let i = levels.length - 1; i >= 0; i--) for (let o = levels[i]!.head; o !== null; o = o.next) out.push(view(o));
    }
    return out;
  }

  /** Armed stops, by seq. */
  armedStops(): OrderView[] {
    return [...this.buyStops, ...this.sellStops].sort(bySeq).map(view);
  }

  // ================================================================ step

  step(cmd: BookCommand, out: BookEvent[]): void {
    if (cmd === null || typeof cmd !== 'object') {
      this.reject(cmd, 'unknown', 0, Reject.PROTO_UNKNOWN_MESSAGE, out);
      return;
    }
    const ts = cmd.ts;
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
      const type = (cmd as { type: unknown }).type;
      this.reject(cmd, isCommandType(type) ? type : 'unknown', 0, isCommandType(type) ? Reject.ORDER_INVALID_TIMESTAMP : Reject.PROTO_UNKNOWN_MESSAGE, out);
      return;
    }
    if (ts < this.lastTs) {
      const type = (cmd as { type: unknown }).type;
      this.reject(cmd, isCommandType(type) ? type : 'unknown', ts, isCommandType(type) ? Reject.ORDER_INVALID_TIMESTAMP : Reject.PROTO_UNKNOWN_MESSAGE, out);
      return;
    }
    const n0 = out.length;
    this.rejected = false;
    this.dispatch(cmd, ts, out);
    // The clock moves with every event but a rejection (so a rejected command with a wild `ts` cannot lock
    // the book out); replay does the same in `apply`, so a recovered book refuses what the live one would.
    // A rejection is always the command's only event after any expiries, so "one event, and it was a
    // rejection" is exactly "no event but a rejection".
    const k = out.length - n0;
    if (k !== 0 && (k !== 1 || !this.rejected)) this.lastTs = ts;
  }

  private dispatch(cmd: BookCommand, ts: number, out: BookEvent[]): void {
    if (!isCommandType(cmd.type)) return this.reject(cmd, 'unknown', ts, Reject.PROTO_UNKNOWN_MESSAGE, out);
    // Every command first expires the GTD orders whose time has come on the command clock.
    if (this.expiries.items.length !== 0) this.expire(ts, out);
    switch (cmd.type) {
      case 'NewOrder':
        return this.newOrder(cmd, ts, out);
      case 'CancelOrder':
        return this.cancelOrder(cmd, ts, out);
      case 'AmendOrder':
        return this.amendOrder(cmd, ts, out);
      case 'MassCancel':
        return this.massCancel(cmd, ts, out);
      case 'SetTradingStatus':
        return this.setStatus(cmd, ts, out);
      case 'SetReferencePrice':
        return this.setReference(cmd, ts, out);
      case 'BookTick':
        return;
    }
  }

  private reject(cmd: unknown, command: BookCommandType | 'unknown', ts: number, code: RejectCode, out: BookEvent[]): void {
    const c = cmd !== null && typeof cmd === 'object' ? (cmd as Record<string, unknown>) : undefined;
    const orderId = c !== undefined && isPosInt(c.orderId) ? c.orderId : 0;
    const account = c !== undefined && typeof c.account === 'string' && c.account.length <= this.limits.idLengthMax ? c.account : '';
    const clientOrderId =
      c !== undefined && typeof c.clientOrderId === 'string' && c.clientOrderId.length <= this.limits.idLengthMax ? c.clientOrderId : undefined;
    out.push({ type: 'CommandRejected', ts, command, orderId, account, clientOrderId, code });
    this.rejected = true;
  }

  private isAccount(x: unknown): x is string {
    return typeof x === 'string' && x.length > 0 && x.length <= this.limits.idLengthMax;
  }

  /** Whether `price` is outside the band around the reference (false when there is no band or reference). */
  private outsideBand(price: number): boolean {
    if (this.bandBps === 0) return false;
    const ref = this.bandReference();
    if (ref === 0) return false;
    const diff = price > ref ? price - ref : ref - price;
    const lhs = diff * BPS;
    const rhs = ref * this.bandBps;
    // Exact while both products are safe integers (a product that is not rounds to >= 2^53, so the test
    // itself is exact); beyond that, compare exactly in BigInt.
    if (lhs <= Number.MAX_SAFE_INTEGER && rhs <= Number.MAX_SAFE_INTEGER) return lhs > rhs;
    return BigInt(diff) * BigInt(BPS) > BigInt(ref) * BigInt(this.bandBps);
  }

  // ---------------------------------------------------------------- NewOrder

  private newOrder(c: BookCommand & { type: 'NewOrder' }, ts: number, out: BookEvent[]): void {
    const code = this.validateNew(c, ts);
    if (code !== 0) {
      this.reject(c, 'NewOrder', ts, code as RejectCode, out);
      return;
    }
    const side = c.side;
    const orderType = c.orderType;
    const tif = c.tif;
    const price = c.price;
    const isStop = orderType === 'stop' || orderType === 'stopLimit';
    const stopPrice = isStop ? c.stopPrice! : 0;
    const postOnly = c.postOnly === true;
    if (isStop) {
      const last = this.lastPrice;
      if (last > 0 && (side === 'buy' ? last >= stopPrice : last <= stopPrice)) {
        this.reject(c, 'NewOrder', ts, Reject.ORDER_STOP_WOULD_TRIGGER, out);
        return;
      }
      if (this.buyStops.length + this.sellStops.length >= this.limits.stopsMax) {
        this.reject(c, 'NewOrder', ts, Reject.BOOK_TOO_MANY_STOPS, out);
        return;
      }
    } else if (postOnly && this.wouldTake(side === 'buy', price)) {
      this.reject(c, 'NewOrder', ts, Reject.BOOK_POST_ONLY_WOULD_TAKE, out);
      return;
    }
    const t = this.allocOrder().init(
      c.orderId,
      c.account,
      c.clientOrderId,
      side,
      orderType,
      tif,
      price,
      c.qty,
      stopPrice,
      tif === 'GTD' ? c.expireAt! : 0,
      postOnly,
      c.reduceOnly === true,
      c.stp === undefined ? 'cancelTaker' : c.stp,
      ++this.seq,
    );
    out.push({
      type: 'OrderAccepted',
      ts,
      orderId: t.id,
      account: t.account,
      clientOrderId: t.clientOrderId,
      side,
      orderType,
      tif,
      price,
      qty: t.qty,
      stopPrice,
      expireAt: t.expireAt,
      postOnly,
      reduceOnly: t.reduceOnly,
      stp: t.stp,
    });
    if (isStop) {
      out.push({ type: 'StopArmed', ts, orderId: t.id, side, stopPrice });
      this.arm(t);
      return;
    }
    const tradeId = this.tradeId;
    this.execute(t, ts, out);
    if (this.tradeId !== tradeId) this.runStops(ts, out);
  }

  /** 0 or the reject code of the first field that is wrong. Checks fields, then the book's status. */
  private validateNew(c: BookCommand & { type: 'NewOrder' }, ts: number): number {
    if (!isPosInt(c.orderId)) return Reject.ORDER_INVALID_ID;
    if (!this.isAccount(c.account)) return Reject.ORDER_INVALID_ACCOUNT;
    const coid = c.clientOrderId;
    if (coid !== undefined && (typeof coid !== 'string' || coid.length > this.limits.idLengthMax)) return Reject.ORDER_INVALID_CLIENT_ORDER_ID;
    if (!isSide(c.side)) return Reject.ORDER_INVALID_SIDE;
    const orderType = c.orderType;
    if (!isOrderType(orderType)) return Reject.ORDER_INVALID_TYPE;
    const tif = c.tif;
    if (!isTif(tif)) return Reject.ORDER_INVALID_TIF;
    const isMarket = orderType === 'market' || orderType === 'stop';
    if (isMarket && tif !== 'IOC' && tif !== 'FOK') return Reject.ORDER_INVALID_TIF;
    const price = c.price;
    if (isMarket) {
      if (price !== 0 && !(isPosInt(price) && price % this.tick === 0)) return Reject.ORDER_INVALID_PROTECTION;
    } else {
      if (!isPosInt(price)) return Reject.ORDER_PRICE_NOT_POSITIVE;
      if (price % this.tick !== 0) return Reject.ORDER_PRICE_NOT_TICK_MULTIPLE;
    }
    const qty = c.qty;
    if (!isPosInt(qty)) return Reject.ORDER_QTY_NOT_POSITIVE;
    if (qty % this.lot !== 0) return Reject.ORDER_QTY_NOT_LOT_MULTIPLE;
    if (qty < this.minQty) return Reject.ORDER_QTY_BELOW_MIN;
    if (qty > this.maxQty) return Reject.ORDER_QTY_ABOVE_MAX;
    const stopPrice = c.stopPrice;
    if (orderType === 'stop' || orderType === 'stopLimit') {
      if (!isPosInt(stopPrice) || stopPrice % this.tick !== 0) return Reject.ORDER_STOP_PRICE_INVALID;
    } else if (stopPrice !== undefined && stopPrice !== 0) return Reject.ORDER_STOP_PRICE_INVALID;
    const expireAt = c.expireAt;
    if (tif === 'GTD') {
      if (typeof expireAt !== 'number' || !Number.isSafeInteger(expireAt) || expireAt <= ts) return Reject.ORDER_GTD_EXPIRY_INVALID;
    } else if (expireAt !== undefined && expireAt !== 0) return Reject.ORDER_GTD_EXPIRY_INVALID;
    const postOnly = c.postOnly;
    if (postOnly !== undefined && typeof postOnly !== 'boolean') return Reject.ORDER_INVALID_FLAG;
    if (postOnly === true && (orderType !== 'limit' || (tif !== 'GTC' && tif !== 'GTD'))) return Reject.ORDER_POST_ONLY_INVALID;
    const reduceOnly = c.reduceOnly;
    if (reduceOnly !== undefined && typeof reduceOnly !== 'boolean') return Reject.ORDER_INVALID_FLAG;
    if (reduceOnly === true && !this.margin) return Reject.ORDER_REDUCE_ONLY_NOT_MARGIN;
    const stp = c.stp;
    if (stp !== undefined && !isStp(stp)) return Reject.ORDER_INVALID_STP;
    if (price !== 0) {
      if (!isMarket && this.outsideBand(price)) return Reject.ORDER_PRICE_OUTSIDE_BAND;
      if (price * qty * this.quoteMultiplier > this.maxNotional) return Reject.ORDER_NOTIONAL_TOO_LARGE;
    }
    if (this.status !== 'open') return this.status === 'halted' ? Reject.BOOK_HALTED : Reject.BOOK_CLOSED;
    if (this.orders.has(c.orderId)) return Reject.BOOK_DUPLICATE_ORDER_ID;
    return 0;
  }

  private wouldTake(isBuy: boolean, price: number): boolean {
    if (isBuy) {
      const n = this.asks.length;
      return n !== 0 && this.asks[n - 1]!.price <= price;
    }
    const n = this.bids.length;
    return n !== 0 && this.bids[n - 1]!.price >= price;
  }

  /**
   * Runs an incoming order (new, re-entered after an amend, or a fired stop) to its end: fills, then
   * rests or is cancelled. `t` is not in the book's maps.
   */
  private execute(t: Order, ts: number, out: BookEvent[]): void {
    const opp = t.isBuy ? this.asks : this.bids;
    let limitKey = NO_KEY;
    let protKey = NO_KEY;
    let maxLevels = 0;
    if (t.isMarket) {
      const n = opp.length;
      if (n === 0) {
        this.cancelIncoming(t, ts, 'noLiquidity', out);
        return;
      }
      const p0 = opp[n - 1]!.price;
      if (this.slippageBps !== 0) {
        const slip = mulDivFloor(p0, this.slippageBps, BPS);
        protKey = t.isBuy ? -(p0 + slip) : p0 - slip;
      }
      maxLevels = this.marketMaxLevels;
      if (t.price !== 0) limitKey = t.isBuy ? -t.price : t.price;
    } else {
      limitKey = t.isBuy ? -t.price : t.price;
    }
    if (t.tif === 'FOK' && !this.canFill(t, limitKey, protKey, maxLevels)) {
      this.cancelIncoming(t, ts, 'fok', out);
      return;
    }
    const r = this.sweep(t, ts, out, opp, limitKey, protKey, maxLevels);
    if (t.qty === 0) {
      this.freeOrder(t);
      return;
    }
    if (t.isMarket) this.cancelIncoming(t, ts, r === SWEEP_PROTECTION ? 'marketProtection' : 'ioc', out);
    else if (t.tif === 'IOC' || t.tif === 'FOK') this.cancelIncoming(t, ts, 'ioc', out);
    else {
      out.push({ type: 'OrderRested', ts, orderId: t.id, side: t.side, price: t.price, qty: t.qty });
      this.rest(t);
    }
  }

  private cancelIncoming(t: Order, ts: number, reason: CancelReason, out: BookEvent[]): void {
    out.push({ type: 'OrderCancelled', ts, orderId: t.id, account: t.account, side: t.side, price: t.price, qty: t.qty, reason, rested: false });
    t.qty = 0;
    this.freeOrder(t);
  }

  /** Whether a FOK order would fill completely; see the module doc for self-trades. */
  private canFill(t: Order, limitKey: number, protKey: number, maxLevels: number): boolean {
    const opp = t.isBuy ? this.asks : this.bids;
    let need = t.qty;
    let levels = 0;
    for (let i = opp.length - 1; i >= 0; i--) {
      const lvl = opp[i]!;
      if (lvl.key < protKey || (maxLevels !== 0 && levels >= maxLevels) || lvl.key < limitKey) return false;
      levels++;
      for (let m = lvl.head; m !== null; m = m.next) {
        if (m.account === t.account) {
          if (t.stp === 'cancelMaker') continue;
          return false;
        }
        if (m.qty >= need) return true;
        need -= m.qty;
      }
    }
    return false;
  }

  /** Matches `t` against the opposite side. Returns why it stopped. */
  private sweep(t: Order, ts: number, out: BookEvent[], opp: Level[], limitKey: number, protKey: number, maxLevels: number): number {
    let levels = 0;
    const qm = this.quoteMultiplier;
    const makerBps = this.makerFeeBps;
    const takerBps = this.takerFeeBps;
    for (;;) {
      const n = opp.length;
      if (n === 0) return SWEEP_EMPTY;
      const lvl = opp[n - 1]!;
      if (lvl.key < protKey || (maxLevels !== 0 && levels >= maxLevels)) return SWEEP_PROTECTION;
      if (lvl.key < limitKey) return SWEEP_LIMIT;
      levels++;
      const price = lvl.price;
      let m = lvl.head;
      while (m !== null) {
        const next = m.next;
        if (m.account === t.account) {
          if (this.selfTrade(t, m, lvl, ts, out)) break;
        } else {
          const mq = m.qty;
          const tq = t.qty;
          const q = mq < tq ? mq : tq;
          m.qty = mq - q;
          t.qty = tq - q;
          m.filled += q;
          t.filled += q;
          lvl.qty -= q;
          const notional = price * q * qm;
          out.push({
            type: 'Fill',
            ts,
            tradeId: ++this.tradeId,
            price,
            qty: q,
            takerOrderId: t.id,
            takerAccount: t.account,
            takerSide: t.side,
            makerOrderId: m.id,
            makerAccount: m.account,
            takerFee: takerBps === 0 ? 0 : feeOf(notional, takerBps),
            makerFee: makerBps === 0 ? 0 : feeOf(notional, makerBps),
            takerRemaining: t.qty,
            makerRemaining: m.qty,
          });
          if (m.qty === 0) {
            this.unlink(lvl, m);
            this.removeLive(m);
            this.freeOrder(m);
          }
          this.lastPrice = price;
          if (t.qty === 0) break;
        }
        m = next;
      }
      if (lvl.count === 0) {
        opp.pop();
        this.freeLevel(lvl);
      }
      if (t.qty === 0) return SWEEP_DONE;
    }
  }

  /** Self-trade prevention between taker `t` and maker `m`. Returns true when the taker is done. */
  private selfTrade(t: Order, m: Order, lvl: Level, ts: number, out: BookEvent[]): boolean {
    switch (t.stp) {
      case 'cancelTaker':
        out.push({ type: 'OrderCancelled', ts, orderId: t.id, account: t.account, side: t.side, price: t.price, qty: t.qty, reason: 'selfTrade', rested: false });
        t.qty = 0;
        return true;
      case 'cancelMaker':
        this.cancelResting(m, ts, 'selfTrade', out);
        return false;
      case 'cancelBoth':
        this.cancelResting(m, ts, 'selfTrade', out);
        out.push({ type: 'OrderCancelled', ts, orderId: t.id, account: t.account, side: t.side, price: t.price, qty: t.qty, reason: 'selfTrade', rested: false });
        t.qty = 0;
        return true;
      case 'decrementBoth': {
        const d = m.qty < t.qty ? m.qty : t.qty;
        if (m.qty === d) this.cancelResting(m, ts, 'selfTrade', out);
        else {
          out.push({ type: 'OrderAmended', ts, orderId: m.id, account: m.account, side: m.side, oldPrice: m.price, oldQty: m.qty, price: m.price, qty: m.qty - d, priorityKept: true, rested: true });
          m.qty -= d;
          lvl.qty -= d;
        }
        if (t.qty === d) {
          out.push({ type: 'OrderCancelled', ts, orderId: t.id, account: t.account, side: t.side, price: t.price, qty: t.qty, reason: 'selfTrade', rested: false });
          t.qty = 0;
          return true;
        }
        out.push({ type: 'OrderAmended', ts, orderId: t.id, account: t.account, side: t.side, oldPrice: t.price, oldQty: t.qty, price: t.price, qty: t.qty - d, priorityKept: true, rested: false });
        t.qty -= d;
        return false;
      }
    }
  }

  /** Fires triggered stops one at a time until none is triggered. */
  private runStops(ts: number, out: BookEvent[]): void {
    const bs = this.buyStops;
    const ss = this.sellStops;
    while (this.status === 'open') {
      const last = this.lastPrice;
      if (last === 0) return;
      const b = bs.length === 0 ? null : bs[bs.length - 1]!;
      const s = ss.length === 0 ? null : ss[ss.length - 1]!;
      const bReady = b !== null && last >= b.stopPrice;
      const sReady = s !== null && last <= s.stopPrice;
      let o: Order;
      if (bReady && (!sReady || b.seq < s!.seq)) o = b;
      else if (sReady) o = s!;
      else return;
      (o.isBuy ? bs : ss).pop();
      this.removeLive(o);
      o.where = WHERE_INCOMING;
      o.seq = ++this.seq;
      out.push({ type: 'StopTriggered', ts, orderId: o.id, lastPrice: last });
      this.execute(o, ts, out);
    }
  }

  // ---------------------------------------------------------------- cancel, amend, mass cancel

  private cancelOrder(c: BookCommand & { type: 'CancelOrder' }, ts: number, out: BookEvent[]): void {
    if (!isPosInt(c.orderId)) return this.reject(c, 'CancelOrder', ts, Reject.ORDER_INVALID_ID, out);
    if (!this.isAccount(c.account)) return this.reject(c, 'CancelOrder', ts, Reject.ORDER_INVALID_ACCOUNT, out);
    const o = this.orders.get(c.orderId);
    if (o === undefined) return this.reject(c, 'CancelOrder', ts, Reject.BOOK_UNKNOWN_ORDER, out);
    if (o.account !== c.account) return this.reject(c, 'CancelOrder', ts, Reject.BOOK_NOT_ORDER_OWNER, out);
    this.cancelLive(o, ts, 'user', out);
  }

  private amendOrder(c: BookCommand & { type: 'AmendOrder' }, ts: number, out: BookEvent[]): void {
    if (!isPosInt(c.orderId)) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_INVALID_ID, out);
    if (!this.isAccount(c.account)) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_INVALID_ACCOUNT, out);
    const price = c.price;
    if (price !== undefined) {
      if (!isPosInt(price)) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_PRICE_NOT_POSITIVE, out);
      if (price % this.tick !== 0) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE, out);
    }
    const qty = c.qty;
    if (qty !== undefined) {
      if (!isPosInt(qty)) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_QTY_NOT_POSITIVE, out);
      if (qty % this.lot !== 0) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_QTY_NOT_LOT_MULTIPLE, out);
      if (qty > this.maxQty) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_QTY_ABOVE_MAX, out);
    }
    if (price === undefined && qty === undefined) return this.reject(c, 'AmendOrder', ts, Reject.BOOK_AMEND_NO_CHANGE, out);
    if (this.status === 'closed') return this.reject(c, 'AmendOrder', ts, Reject.BOOK_CLOSED, out);
    const o = this.orders.get(c.orderId);
    if (o === undefined) return this.reject(c, 'AmendOrder', ts, Reject.BOOK_UNKNOWN_ORDER, out);
    if (o.account !== c.account) return this.reject(c, 'AmendOrder', ts, Reject.BOOK_NOT_ORDER_OWNER, out);
    if (o.where !== WHERE_BOOK) return this.reject(c, 'AmendOrder', ts, Reject.BOOK_AMEND_NOT_ALLOWED, out);
    // FIX OrderCancelReplace: `qty` is the new total; the open quantity is what the total leaves after
    // what already executed. At or below the executed quantity the order is done.
    const newQty = qty === undefined ? o.qty : qty - o.filled;
    if (newQty <= 0) return this.cancelLive(o, ts, 'amendedBelowFilled', out);
    const newPrice = price === undefined ? o.price : price;
    const oldPrice = o.price;
    const oldQty = o.qty;
    if (newPrice === oldPrice && newQty === oldQty) return this.reject(c, 'AmendOrder', ts, Reject.BOOK_AMEND_NO_CHANGE, out);
    const keep = newPrice === oldPrice && newQty < oldQty;
    if (!keep && this.status === 'halted') return this.reject(c, 'AmendOrder', ts, Reject.BOOK_HALTED, out);
    if (newPrice !== oldPrice && this.outsideBand(newPrice)) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_PRICE_OUTSIDE_BAND, out);
    if (newPrice * (o.filled + newQty) * this.quoteMultiplier > this.maxNotional) return this.reject(c, 'AmendOrder', ts, Reject.ORDER_NOTIONAL_TOO_LARGE, out);
    if (o.postOnly && newPrice !== oldPrice && this.wouldTakeExcept(o, newPrice)) {
      return this.reject(c, 'AmendOrder', ts, Reject.BOOK_POST_ONLY_WOULD_TAKE, out);
    }
    if (keep) {
      out.push({ type: 'OrderAmended', ts, orderId: o.id, account: o.account, side: o.side, oldPrice, oldQty, price: newPrice, qty: newQty, priorityKept: true, rested: true });
      o.level!.qty -= oldQty - newQty;
      o.qty = newQty;
      return;
    }
    out.push({ type: 'OrderAmended', ts, orderId: o.id, account: o.account, side: o.side, oldPrice, oldQty, price: newPrice, qty: newQty, priorityKept: false, rested: true });
    this.unrest(o);
    this.removeLive(o);
    o.price = newPrice;
    o.qty = newQty;
    o.seq = ++this.seq;
    const tradeId = this.tradeId;
    this.execute(o, ts, out);
    if (this.tradeId !== tradeId) this.runStops(ts, out);
  }

  /** Post-only check for an amend: the order itself is on its own side, so only the opposite matters. */
  private wouldTakeExcept(o: Order, price: number): boolean {
    return this.wouldTake(o.isBuy, price);
  }

  private massCancel(c: BookCommand & { type: 'MassCancel' }, ts: number, out: BookEvent[]): void {
    if (!this.isAccount(c.account)) return this.reject(c, 'MassCancel', ts, Reject.ORDER_INVALID_ACCOUNT, out);
    const side = c.side;
    if (side !== undefined && !isSide(side)) return this.reject(c, 'MassCancel', ts, Reject.ORDER_INVALID_SIDE, out);
    const rec = this.accounts.get(c.account);
    if (rec === undefined) return;
    const list: Order[] = [];
    for (let o = rec.head; o !== null; o = o.accNext) if (side === undefined || o.side === side) list.push(o);
    list.sort(bySeq);
    for (const o of list) this.cancelLive(o, ts, 'massCancel', out);
  }

  private setStatus(c: BookCommand & { type: 'SetTradingStatus' }, ts: number, out: BookEvent[]): void {
    const status = c.status;
    if (!isStatus(status)) return this.reject(c, 'SetTradingStatus', ts, Reject.BOOK_INVALID_STATUS, out);
    out.push({ type: 'TradingStatusChanged', ts, status });
    this.status = status;
    if (status !== 'closed') return;
    const all = this.orders.values().sort(bySeq);
    for (const o of all) this.cancelLive(o, ts, 'closed', out);
  }

  private setReference(c: BookCommand & { type: 'SetReferencePrice' }, ts: number, out: BookEvent[]): void {
    const price = c.price;
    if (!isPosInt(price)) return this.reject(c, 'SetReferencePrice', ts, Reject.ORDER_PRICE_NOT_POSITIVE, out);
    if (price % this.tick !== 0) return this.reject(c, 'SetReferencePrice', ts, Reject.ORDER_PRICE_NOT_TICK_MULTIPLE, out);
    out.push({ type: 'ReferencePriceChanged', ts, price });
    this.referencePrice = price;
  }

  private expire(ts: number, out: BookEvent[]): void {
    const heap = this.expiries;
    for (let o = heap.peek(); o !== undefined && o.expireAt <= ts; o = heap.peek()) this.cancelLive(o, ts, 'expired', out);
  }

  /** Cancels a resting or armed order. */
  private cancelLive(o: Order, ts: number, reason: CancelReason, out: BookEvent[]): void {
    out.push({ type: 'OrderCancelled', ts, orderId: o.id, account: o.account, side: o.side, price: o.price, qty: o.qty, reason, rested: o.where === WHERE_BOOK });
    if (o.where === WHERE_BOOK) this.unrest(o);
    else this.disarm(o);
    this.removeLive(o);
    this.freeOrder(o);
  }

  /** Cancels a maker met during a sweep (its level is the one being swept, which the sweep pops). */
  private cancelResting(m: Order, ts: number, reason: CancelReason, out: BookEvent[]): void {
    out.push({ type: 'OrderCancelled', ts, orderId: m.id, account: m.account, side: m.side, price: m.price, qty: m.qty, reason, rested: true });
    this.unlink(m.level!, m);
    this.removeLive(m);
    this.freeOrder(m);
  }

  // ================================================================ structure

  private allocOrder(): Order {
    const o = this.orderPool.pop();
    return o === undefined ? new Order() : o;
  }

  /** `o` is gone (filled or cancelled) and nothing refers to it any more. */
  private freeOrder(o: Order): void {
    if (this.orderPool.length < 65_536) this.orderPool.push(o);
  }

  private newLevel(price: number, key: number): Level {
    const l = this.levelPool.pop() ?? new Level();
    l.price = price;
    l.key = key;
    return l;
  }

  private freeLevel(l: Level): void {
    l.head = null;
    l.tail = null;
    l.qty = 0;
    l.count = 0;
    if (this.levelPool.length < 1024) this.levelPool.push(l);
  }

  /** Appends `o` to its price level (behind everything there) and makes it live. */
  private rest(o: Order): void {
    const levels = o.isBuy ? this.bids : this.asks;
    const key = o.isBuy ? o.price : -o.price;
    let i = searchLevel(levels, key);
    let lvl: Level;
    if (i >= 0) lvl = levels[i]!;
    else {
      i = -i - 1;
      lvl = this.newLevel(o.price, key);
      if (i === levels.length) levels.push(lvl);
      else levels.splice(i, 0, lvl);
    }
    o.level = lvl;
    o.prev = lvl.tail;
    o.next = null;
    if (lvl.tail === null) lvl.head = o;
    else lvl.tail.next = o;
    lvl.tail = o;
    lvl.count++;
    lvl.qty += o.qty;
    o.where = WHERE_BOOK;
    this.addLive(o);
  }

  /** Unlinks `o` from its level; the caller removes an empty level (or lets the sweep pop it). */
  private unlink(lvl: Level, o: Order): void {
    const p = o.prev;
    const n = o.next;
    if (p === null) lvl.head = n;
    else p.next = n;
    if (n === null) lvl.tail = p;
    else n.prev = p;
    o.prev = null;
    o.next = null;
    o.level = null;
    lvl.count--;
    lvl.qty -= o.qty;
    o.where = WHERE_INCOMING;
  }

  /** Takes a resting order off the book, removing its level if it empties. Not during a sweep. */
  private unrest(o: Order): void {
    const lvl = o.level!;
    this.unlink(lvl, o);
    if (lvl.count !== 0) return;
    const levels = o.isBuy ? this.bids : this.asks;
    const n = levels.length;
    if (levels[n - 1] === lvl) levels.pop();
    else levels.splice(searchLevel(levels, lvl.key), 1);
    this.freeLevel(lvl);
  }

  private arm(o: Order): void {
    const a = o.isBuy ? this.buyStops : this.sellStops;
    // ascending "fires later first": find the first index whose order fires before `o`
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (firesBefore(a[mid]!, o)) hi = mid;
      else lo = mid + 1;
    }
    a.splice(lo, 0, o);
    o.where = WHERE_ARMED;
    this.addLive(o);
  }

  private disarm(o: Order): void {
    const a = o.isBuy ? this.buyStops : this.sellStops;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (firesBefore(a[mid]!, o)) hi = mid;
      else lo = mid + 1;
    }
    // `o` itself does not fire before `o`, so it sits at lo - 1
    const i = lo - 1;
    if (a[i] !== o) throw new Error(`book: armed stop ${o.id} not found`);
    a.splice(i, 1);
    o.where = WHERE_INCOMING;
  }

  private addLive(o: Order): void {
    this.orders.set(o.id, o);
    let rec = this.accounts.get(o.account);
    if (rec === undefined) {
      rec = new AccountOrders();
      this.accounts.set(o.account, rec);
    }
    o.acc = rec;
    o.accPrev = rec.tail;
    o.accNext = null;
    if (rec.tail === null) rec.head = o;
    else rec.tail.accNext = o;
    rec.tail = o;
    rec.count++;
    if (o.tif === 'GTD') this.expiries.push(o);
  }

  private removeLive(o: Order): void {
    this.orders.delete(o.id);
    const rec = o.acc!;
    o.acc = null;
    const p = o.accPrev;
    const n = o.accNext;
    if (p === null) rec.head = n;
    else p.accNext = n;
    if (n === null) rec.tail = p;
    else n.accPrev = p;
    o.accPrev = null;
    o.accNext = null;
    if (--rec.count === 0) this.accounts.delete(o.account);
    if (o.heapIdx >= 0) this.expiries.remove(o);
  }

  // ================================================================ apply (replay)

  apply(e: BookEvent): void {
    if (e.type !== 'CommandRejected') this.lastTs = e.ts;
    switch (e.type) {
      case 'OrderAccepted': {
        this.pending = new Order().init(
          e.orderId,
          e.account,
          e.clientOrderId,
          e.side,
          e.orderType,
          e.tif,
          e.price,
          e.qty,
          e.stopPrice,
          e.expireAt,
          e.postOnly,
          e.reduceOnly,
          e.stp,
          ++this.seq,
        );
        return;
      }
      case 'CommandRejected':
        return;
      case 'Fill': {
        const m = this.orders.get(e.makerOrderId)!;
        const lvl = m.level!;
        m.qty = e.makerRemaining;
        m.filled += e.qty;
        lvl.qty -= e.qty;
        if (m.qty === 0) this.applyOffBook(m);
        const t = this.pending!;
        t.qty = e.takerRemaining;
        t.filled += e.qty;
        if (t.qty === 0) this.pending = null;
        this.lastPrice = e.price;
        this.tradeId = e.tradeId;
        return;
      }
      case 'OrderRested': {
        const t = this.pending!;
        t.price = e.price;
        t.qty = e.qty;
        this.rest(t);
        this.pending = null;
        return;
      }
      case 'OrderCancelled': {
        const t = this.pending;
        if (t !== null && t.id === e.orderId) {
          this.pending = null;
          return;
        }
        const o = this.orders.get(e.orderId)!;
        if (o.where === WHERE_BOOK) this.applyOffBook(o);
        else {
          this.disarm(o);
          this.removeLive(o);
        }
        return;
      }
      case 'OrderAmended': {
        if (!e.rested) {
          this.pending!.qty = e.qty;
          return;
        }
        const o = this.orders.get(e.orderId)!;
        if (e.priorityKept) {
          o.level!.qty -= o.qty - e.qty;
          o.qty = e.qty;
          return;
        }
        this.unrest(o);
        this.removeLive(o);
        o.price = e.price;
        o.qty = e.qty;
        o.seq = ++this.seq;
        this.pending = o;
        return;
      }
      case 'StopArmed': {
        this.arm(this.pending!);
        this.pending = null;
        return;
      }
      case 'StopTriggered': {
        const o = this.orders.get(e.orderId)!;
        this.disarm(o);
        this.removeLive(o);
        o.seq = ++this.seq;
        this.pending = o;
        return;
      }
      case 'TradingStatusChanged':
        this.status = e.status;
        return;
      case 'ReferencePriceChanged':
        this.referencePrice = e.price;
        return;
    }
  }

  /** Replay: a resting order leaves the book (filled or cancelled). */
  private applyOffBook(o: Order): void {
    this.unrest(o);
    this.removeLive(o);
  }

  // ================================================================ snapshot

  snapshot(): BookSnapshot {
    const bids: OrderRow[] = [];
    const asks: OrderRow[] = [];
    for (let i = this.bids.length - 1; i >= 0; i--) for (let o = this.bids[i]!.head; o !== null; o = o.next) bids.push(row(o));
    for (let i = this.asks.length - 1; i >= 0; i--) for (let o = this.asks[i]!.head; o !== null; o = o.next) asks.push(row(o));
    const stops = [...this.buyStops, ...this.sellStops].sort(bySeq).map(row);
    return {
      v: 2,
      symbol: this.instrument.symbol,
      status: this.status,
      lastTs: this.lastTs,
      lastPrice: this.lastPrice,
      referencePrice: this.referencePrice,
      tradeId: this.tradeId,
      seq: this.seq,
      bids,
      asks,
      stops,
    };
  }

  static restore(instrument: Instrument, snap: unknown, limits: BookLimits = defaultBookLimits): OrderBook {
    const s = snap as BookSnapshot;
    // v1 (before executed quantities were kept) is refused: its orders' totals cannot be known.
    if (s === null || typeof s !== 'object' || s.v !== 2) throw new Error('book: not a book snapshot (v2)');
    if (s.symbol !== instrument.symbol) throw new Error(`book: snapshot of ${s.symbol}, not ${instrument.symbol}`);
    const b = new OrderBook(instrument, limits);
    b.status = s.status;
    b.lastPrice = s.lastPrice;
    b.referencePrice = s.referencePrice;
    b.tradeId = s.tradeId;
    b.seq = s.seq;
    b.lastTs = s.lastTs;
    for (const r of s.bids) b.rest(fromRow(r));
    for (const r of s.asks) b.rest(fromRow(r));
    for (const r of s.stops) b.arm(fromRow(r));
    return b;
  }
}

function row(o: Order): OrderRow {
  return [o.id, o.account, o.clientOrderId ?? null, o.side, o.orderType, o.tif, o.price, o.qty, o.stopPrice, o.expireAt, o.postOnly, o.reduceOnly, o.stp, o.seq, o.filled];
}

function fromRow(r: OrderRow): Order {
  const o = new Order().init(r[0], r[1], r[2] ?? undefined, r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13]);
  o.filled = r[14];
  return o;
}

function view(o: Order): OrderView {
  return {
    orderId: o.id,
    account: o.account,
    clientOrderId: o.clientOrderId,
    side: o.side,
    orderType: o.orderType,
    tif: o.tif,
    price: o.price,
    qty: o.qty,
    filled: o.filled,
    stopPrice: o.stopPrice,
    expireAt: o.expireAt,
    postOnly: o.postOnly,
    reduceOnly: o.reduceOnly,
    stp: o.stp,
    seq: o.seq,
    state: o.where === WHERE_BOOK ? 'resting' : 'armed',
  };
}

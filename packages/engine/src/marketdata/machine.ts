/**
 * The market-data state machine: one per instrument, fed the book's journal in order.
 *
 * Input: `BookEvents` batches (the events of one book command), bare BookEvents (a batch of one) and
 * `MarketDataTick`s. Output per batch, in this order:
 *   CandleClosed*   as the batch's ts moves past a bucket end (before the trades that caused it)
 *   TradeTick*      one per Fill, in journal order
 *   MdInputIgnored* for any input it could not use (counted in the state, never thrown)
 *   L2Delta?        all levels the batch changed, coalesced, with the next seq and the checksum
 *   Quote?          if the best bid/offer changed
 *   CandleUpdate*   the open candle of each interval the batch traded in (1s, 1m, 1h)
 *
 * How book events move L2 (see schemas/src/book.ts): OrderRested adds qty at (side, price); Fill
 * removes qty at (opposite of takerSide, price); OrderCancelled with `rested` removes qty; OrderAmended
 * (unless `rested: false`, a decremented STP taker) with `priorityKept` removes oldQty - qty at price,
 * without it removes oldQty at oldPrice (the re-entry's own events follow). Everything else changes
 * nothing visible.
 *
 * Cost per batch: O(log n) per touched level plus a splice near the top of the book, one checksum over
 * at most 20 levels, no copies of the book.
 *
 * @example
 *   const md = marketDataMachine('BTC-USD');
 *   const out: MdEvent[] = [];
 *   let s = md.init();
 *   s = md.step(s, { type: 'BookEvents', events: [{ type: 'OrderRested', ts: 5, orderId: 1, side: 'buy', price: 100, qty: 3 }] }, out);
 *   // out: [L2Delta{seq:1, bids:[[100,3]], asks:[]}, Quote{bidPrice:100, bidQty:3, askPrice:0, askQty:0}]
 */
import {
  CandleIntervalMs,
  L2_CHECKSUM_DEPTH,
  candleIntervals,
  mdBatchEventsMax,
  type BookEvent,
  type BookEventType,
  type CandleInterval,
  type L2Snapshot,
  type Level,
  type MdCommand,
  type MdEvent,
  type MdIgnoreReason,
  type Side,
  type StateMachine,
} from '@bourse/schemas';
import { hashOf } from '../util/hash.js';
import { checksumOfLevels } from './checksum.js';
import { Levels } from './levels.js';

export interface OpenCandle {
  start: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
}

export interface CandleSlot {
  readonly interval: CandleInterval;
  readonly ms: number;
  /** The bucket being built, or null when no trade has arrived since the last close. */
  open: OpenCandle | null;
  /** End of the last closed bucket (0 if none): later trades never land in an earlier bucket. */
  closedThrough: number;
}

export interface MdState {
  readonly symbol: string;
  /** Seq of the last L2Delta (0 before the first). */
  seq: number;
  readonly bids: Levels;
  readonly asks: Levels;
  /** One per interval, in `candleIntervals` order. */
  readonly candles: CandleSlot[];
  lastTradeId: number;
  lastPrice: number;
  /** Inputs ignored so far (each one emitted an MdInputIgnored). */
  ignored: number;
  /** Checksum of the current top 10 levels: derived (not in the snapshot), cached so a delta deep in the book costs no CRC. */
  checksum: number;
}

/** Book event types that change nothing visible: accepted and skipped. */
const invisible: ReadonlySet<string> = new Set<BookEventType>([
  'OrderAccepted',
  'CommandRejected',
  'StopArmed',
  'StopTriggered',
  'TradingStatusChanged',
  'ReferencePriceChanged',
]);

const isQty = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
const isQty0 = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isPrice = isQty;
const isTs = isQty0;
const isSide = (x: unknown): x is Side => x === 'buy' || x === 'sell';
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const nameOf = (x: unknown): string => (isObject(x) && typeof x.type === 'string' ? x.type.slice(0, 32) : '');

export function marketDataMachine(symbol: string): StateMachine<MdState, MdCommand, MdEvent> {
  // Per-batch scratch (step is synchronous, so one set per machine is enough). Never part of the state.
  const touchedOld: [Map<number, number>, Map<number, number>] = [new Map(), new Map()];
  const dirty: boolean[] = candleIntervals.map(() => false);

  function init(): MdState {
    return {
      symbol,
      seq: 0,
      bids: new Levels('buy'),
      asks: new Levels('sell'),
      candles: candleIntervals.map((interval) => ({ interval, ms: CandleIntervalMs[interval], open: null, closedThrough: 0 })),
      lastTradeId: 0,
      lastPrice: 0,
      ignored: 0,
      checksum: 0,
    };
  }

  function ignore(s: MdState, ts: unknown, reason: MdIgnoreReason, input: unknown, out: MdEvent[]): void {
    s.ignored++;
    out.push({ type: 'MdInputIgnored', ts: isTs(ts) ? ts : 0, symbol, reason, input: nameOf(input) });
  }

  /** Closes every candle whose bucket ends at or before `ts`. */
  function advance(s: MdState, ts: number, out: MdEvent[]): void {
    for (let i = 0; i < s.candles.length; i++) {
      const slot = s.candles[i]!;
      const c = slot.open;
      if (c === null || ts < c.start + slot.ms) continue;
      out.push({
        type: 'CandleClosed', ts, symbol, interval: slot.interval, start: c.start,
        open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, trades: c.trades,
      });
      slot.closedThrough = c.start + slot.ms;
      slot.open = null;
      dirty[i] = false;
    }
  }

  function trade(s: MdState, ts: number, price: number, qty: number): void {
    for (let i = 0; i < s.candles.length; i++) {
      const slot = s.candles[i]!;
      const c = slot.open;
      if (c !== null) {
        // advance() already closed it if ts were past its end; an older ts is counted in the open bucket.
        if (price > c.high) c.high = price;
        if (price < c.low) c.low = price;
        c.close = price;
        c.volume += qty;
        c.trades++;
      } else {
        let start = ts - (ts % slot.ms);
        if (start < slot.closedThrough) start = slot.closedThrough; // never reopen a closed bucket
        slot.open = { start, open: price, high: price, low: price, close: price, volume: qty, trades: 1 };
      }
      dirty[i] = true;
    }
  }

  /** Changes the level at (side, price) by `change`; returns false if that would go below zero (the level is then cleared). */
  function move(s: MdState, side: Side, price: number, change: number): boolean {
    const levels = side === 'buy' ? s.bids : s.asks;
    const touched = touchedOld[side === 'buy' ? 0 : 1];
    const cur = levels.get(price);
    if (!touched.has(price)) touched.set(price, cur);
    const next = cur + change;
    levels.set(price, next < 0 ? 0 : next);
    return next >= 0;
  }

  function one(s: MdState, ev: unknown, out: MdEvent[]): number {
    if (!isObject(ev) || typeof ev.type !== 'string') {
      ignore(s, isObject(ev) ? ev.ts : 0, 'unknownType', ev, out);
      return -1;
    }
    const known = invisible.has(ev.type) || ev.type === 'OrderRested' || ev.type === 'Fill' || ev.type === 'OrderCancelled' || ev.type === 'OrderAmended';
    if (!known) {
      ignore(s, ev.ts, 'unknownType', ev, out);
      return -1;
    }
    if (!isTs(ev.ts)) {
      ignore(s, ev.ts, 'badField', ev, out);
      return -1;
    }
    const ts = ev.ts;
    const e = ev as unknown as BookEvent;
    switch (e.type) {
      case 'OrderRested': {
        if (!isSide(e.side) || !isPrice(e.price) || !isQty(e.qty)) break;
        advance(s, ts, out);
        if (!Number.isSafeInteger((e.side === 'buy' ? s.bids : s.asks).get(e.price) + e.qty)) break;
        move(s, e.side, e.price, e.qty);
        return ts;
      }
      case 'Fill': {
        if (!isSide(e.takerSide) || !isPrice(e.price) || !isQty(e.qty) || !isQty0(e.tradeId)) break;
        advance(s, ts, out);
        out.push({ type: 'TradeTick', ts, symbol, tradeId: e.tradeId, price: e.price, qty: e.qty, takerSide: e.takerSide });
        s.lastTradeId = e.tradeId;
        s.lastPrice = e.price;
        trade(s, ts, e.price, e.qty);
        if (!move(s, e.takerSide === 'buy' ? 'sell' : 'buy', e.price, -e.qty)) ignore(s, ts, 'inconsistent', ev, out);
        return ts;
      }
      case 'OrderCancelled': {
        if (e.rested === false) {
          advance(s, ts, out);
          return ts;
        }
        if (e.rested !== true || !isSide(e.side) || !isPrice(e.price) || !isQty0(e.qty)) break;
        advance(s, ts, out);
        if (e.qty > 0 && !move(s, e.side, e.price, -e.qty)) ignore(s, ts, 'inconsistent', ev, out);
        return ts;
      }
      case 'OrderAmended': {
        // `rested: false` is a decremented taker (STP decrementBoth): never on the book. A missing `rested`
        // reads as true, the only value the field had before it was added.
        const onBook = (e as { rested?: unknown }).rested;
        if (onBook === false) {
          advance(s, ts, out);
          return ts;
        }
        if ((onBook !== true && onBook !== undefined) || !isSide(e.side)) break;
        if (e.priorityKept === true) {
          if (!isPrice(e.price) || e.oldPrice !== e.price || !isQty0(e.qty) || !isQty0(e.oldQty) || e.qty > e.oldQty) break;
          advance(s, ts, out);
          if (e.oldQty > e.qty && !move(s, e.side, e.price, e.qty - e.oldQty)) ignore(s, ts, 'inconsistent', ev, out);
          return ts;
        }
        if (e.priorityKept !== false || !isPrice(e.oldPrice) || !isQty0(e.oldQty)) break;
        advance(s, ts, out);
        if (e.oldQty > 0 && !move(s, e.side, e.oldPrice, -e.oldQty)) ignore(s, ts, 'inconsistent', ev, out);
        return ts;
      }
      default:
        advance(s, ts, out);
        return ts;
    }
    ignore(s, ts, 'badField', ev, out);
    return -1;
  }

  function changedLevels(levels: Levels, touched: Map<number, number>, descending: boolean): Level[] {
    const res: Level[] = [];
    for (const [price, old] of touched) {
      const now = levels.get(price);
      if (now !== old) res.push([price, now]);
    }
    if (res.length > 1) res.sort(descending ? (a, b) => b[0] - a[0] : (a, b) => a[0] - b[0]);
    return res;
  }

  /**
   * Whether any changed level is, or was, among the side's top 10. A level in the top 10 after the batch
   * is at least as good as the 10th price; one that left it (removed) was better than the new 10th; one
   * pushed out was pushed by a better level that changed too. So if none qualifies the checksum stands.
   */
  function inTop(levels: Levels, changed: readonly Level[]): boolean {
    if (changed.length === 0) return false;
    if (levels.size < L2_CHECKSUM_DEPTH) return true;
    const tenth = levels.priceAt(L2_CHECKSUM_DEPTH - 1);
    for (const [price] of changed) if (levels.side === 'buy' ? price >= tenth : price <= tenth) return true;
    return false;
  }

  function batch(s: MdState, events: readonly unknown[], out: MdEvent[]): void {
    touchedOld[0].clear();
    touchedOld[1].clear();
    dirty.fill(false);
    const bidPrice0 = s.bids.bestPrice(), bidQty0 = s.bids.bestQty();
    const askPrice0 = s.asks.bestPrice(), askQty0 = s.asks.bestQty();
    let ts = -1;
    const n = Math.min(events.length, mdBatchEventsMax);
    for (let i = 0; i < n; i++) {
      const t = one(s, events[i], out);
      if (t >= 0) ts = t;
    }
    if (events.length > n) ignore(s, ts, 'tooLarge', { type: 'BookEvents' }, out);
    if (ts < 0) return;
    if (touchedOld[0].size + touchedOld[1].size > 0) {
      const bids = changedLevels(s.bids, touchedOld[0], true);
      const asks = changedLevels(s.asks, touchedOld[1], false);
      if (bids.length + asks.length > 0) {
        s.seq++;
        if (inTop(s.bids, bids) || inTop(s.asks, asks)) s.checksum = checksumOfLevels(s.bids, s.asks);
        out.push({ type: 'L2Delta', ts, symbol, seq: s.seq, bids, asks, checksum: s.checksum });
      }
    }
    const bidPrice = s.bids.bestPrice(), bidQty = s.bids.bestQty();
    const askPrice = s.asks.bestPrice(), askQty = s.asks.bestQty();
    if (bidPrice !== bidPrice0 || bidQty !== bidQty0 || askPrice !== askPrice0 || askQty !== askQty0) {
      out.push({ type: 'Quote', ts, symbol, seq: s.seq, bidPrice, bidQty, askPrice, askQty });
    }
    for (let i = 0; i < s.candles.length; i++) {
      if (!dirty[i]) continue;
      const slot = s.candles[i]!;
      const c = slot.open!;
      out.push({
        type: 'CandleUpdate', ts, symbol, interval: slot.interval, start: c.start,
        open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, trades: c.trades,
      });
    }
  }

  function step(s: MdState, cmd: MdCommand, out: MdEvent[]): MdState {
    const c = cmd as unknown;
    if (!isObject(c)) {
      ignore(s, 0, 'unknownType', c, out);
      return s;
    }
    if (c.type === 'BookEvents') {
      if (Array.isArray(c.events)) batch(s, c.events, out);
      else ignore(s, 0, 'badField', c, out);
    } else if (c.type === 'MarketDataTick') {
      if (isTs(c.ts)) advance(s, c.ts, out);
      else ignore(s, c.ts, 'badField', c, out);
    } else {
      batch(s, [c], out);
    }
    return s;
  }

  function apply(s: MdState, ev: MdEvent): MdState {
    const e = ev as unknown;
    if (!isObject(e)) return s;
    const x = ev;
    switch (x.type) {
      case 'L2Delta':
        for (const [p, q] of x.bids) s.bids.set(p, q);
        for (const [p, q] of x.asks) s.asks.set(p, q);
        s.seq = x.seq;
        s.checksum = x.checksum;
        break;
      case 'TradeTick':
        s.lastTradeId = x.tradeId;
        s.lastPrice = x.price;
        break;
      case 'CandleUpdate': {
        const slot = s.candles.find((k) => k.interval === x.interval);
        if (slot) slot.open = { start: x.start, open: x.open, high: x.high, low: x.low, close: x.close, volume: x.volume, trades: x.trades };
        break;
      }
      case 'CandleClosed': {
        const slot = s.candles.find((k) => k.interval === x.interval);
        if (slot) {
          slot.open = null;
          slot.closedThrough = x.start + slot.ms;
        }
        break;
      }
      case 'MdInputIgnored':
        s.ignored++;
        break;
      case 'Quote': // derived from L2
      case 'L2Snapshot': // a read of the state, not a change
        break;
      default:
        break; // unknown events are skipped: replay never throws on them
    }
    return s;
  }

  function snapshot(s: MdState): MdSnapshot {
    return {
      symbol: s.symbol,
      seq: s.seq,
      bids: s.bids.top().map(([p, q]) => [p, q]),
      asks: s.asks.top().map(([p, q]) => [p, q]),
      candles: s.candles.map((k) => ({
        interval: k.interval,
        closedThrough: k.closedThrough,
        open: k.open === null ? null : [k.open.start, k.open.open, k.open.high, k.open.low, k.open.close, k.open.volume, k.open.trades],
      })),
      lastTradeId: s.lastTradeId,
      lastPrice: s.lastPrice,
      ignored: s.ignored,
    };
  }

  function restore(snap: unknown): MdState {
    const x = snap as MdSnapshot;
    const s = init();
    s.seq = x.seq;
    for (const [p, q] of x.bids) s.bids.set(p, q);
    for (const [p, q] of x.asks) s.asks.set(p, q);
    for (const k of x.candles) {
      const slot = s.candles.find((c) => c.interval === k.interval);
      if (!slot) continue;
      slot.closedThrough = k.closedThrough;
      slot.open = k.open === null ? null : { start: k.open[0], open: k.open[1], high: k.open[2], low: k.open[3], close: k.open[4], volume: k.open[5], trades: k.open[6] };
    }
    s.lastTradeId = x.lastTradeId;
    s.lastPrice = x.lastPrice;
    s.ignored = x.ignored;
    s.checksum = checksumOfLevels(s.bids, s.asks);
    return s;
  }

  return {
    kind: 'marketdata',
    init,
    step,
    apply,
    snapshot,
    restore,
    stateHash: (s) => hashOf(snapshot(s)),
  };
}

/** The canonical snapshot: levels best first; an open candle as [start, open, high, low, close, volume, trades]. */
export interface MdSnapshot {
  symbol: string;
  seq: number;
  bids: [number, number][];
  asks: [number, number][];
  candles: { interval: CandleInterval; closedThrough: number; open: [number, number, number, number, number, number, number] | null }[];
  lastTradeId: number;
  lastPrice: number;
  ignored: number;
}

/**
 * The book as a new subscriber needs it: the state after delta `state.seq`, so delta seq + 1 follows
 * with no gap. `depth` cuts each side (default: all levels; only an uncut snapshot keeps a local book
 * exact). `ts` is the caller's command clock: the machine reads none.
 *
 * @example l2Snapshot(state, 1_700_000_000_000) // { type: 'L2Snapshot', seq, bids, asks, checksum, ... }
 */
export function l2Snapshot(state: MdState, ts: number, depth = Infinity): L2Snapshot {
  const bids = state.bids.top(depth);
  const asks = state.asks.top(depth);
  return {
    type: 'L2Snapshot',
    ts,
    symbol: state.symbol,
    seq: state.seq,
    depth: Number.isFinite(depth) ? depth : Math.max(bids.length, asks.length),
    truncated: bids.length < state.bids.size || asks.length < state.asks.size,
    bids,
    asks,
    checksum: state.checksum,
  };
}

/** Best bid and offer now (0/0 for an empty side). */
export function bbo(state: MdState): { bidPrice: number; bidQty: number; askPrice: number; askQty: number } {
  return { bidPrice: state.bids.bestPrice(), bidQty: state.bids.bestQty(), askPrice: state.asks.bestPrice(), askQty: state.asks.bestQty() };
}

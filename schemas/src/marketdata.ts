/**
 * Market data, derived from book events by the per-instrument market-data state machine
 * (packages/engine/src/marketdata). One machine per instrument; its input is the book's journal, in
 * order, and a clock tick; its output is the public feed below. schemas/MARKETDATA.md specifies the
 * feed (sequence rules, the checksum's exact bytes, candle rules) with worked examples.
 *
 * Conventions:
 * - All prices, quantities and timestamps are integers (price units, quantity units, ms of the
 *   command clock). A missing BBO side is price 0, qty 0.
 * - Levels are `[price, qty]` pairs, best first. In a delta `qty` is the level's new total and
 *   0 means the level was removed.
 * - `seq` is the instrument's L2 sequence: it starts at 0 (empty book, before any delta) and every
 *   L2Delta carries exactly the previous seq + 1. An L2Snapshot at seq N is followed by delta N + 1.
 */
import type { BookEvent, Side } from './book.js';

export type CandleInterval = '1s' | '1m' | '1h';
export const CandleIntervalMs: { readonly [K in CandleInterval]: number } = { '1s': 1_000, '1m': 60_000, '1h': 3_600_000 };
/** Every interval the machine keeps, in this order (the order CandleUpdate/CandleClosed are emitted in). */
export const candleIntervals: readonly CandleInterval[] = ['1s', '1m', '1h'];

/** Levels checksummed by L2Delta/L2Snapshot `checksum`: the top 10 per side. */
export const L2_CHECKSUM_DEPTH = 10;

/** One price level: `[price, qty]`. */
export type Level = readonly [price: number, qty: number];

// ---------------------------------------------------------------- commands

/**
 * The events one book command produced, in journal order. The machine coalesces them into at most
 * one L2Delta and one Quote. A bare BookEvent is accepted too and treated as a batch of one.
 */
export interface BookEvents {
  readonly type: 'BookEvents';
  readonly events: readonly BookEvent[];
}

/** Advances the market-data clock to `ts` and closes every candle whose bucket has ended. */
export interface MarketDataTick {
  readonly type: 'MarketDataTick';
  readonly ts: number;
}

export type MdCommand = BookEvents | MarketDataTick | BookEvent;
export type MdCommandType = BookEvents['type'] | MarketDataTick['type'];

/** Stable wire codes for the market-data machine's own commands (bare BookEvents use BookEventCode). */
export const MdCommandCode: { readonly [K in MdCommandType]: number } = {
  BookEvents: 451,
  MarketDataTick: 452,
};

// ---------------------------------------------------------------- events

/** Best bid and offer. Emitted once per input batch, and only when any of the four fields changed. */
export interface Quote {
  readonly type: 'Quote';
  readonly ts: number;
  readonly symbol: string;
  /** The L2 seq this quote is consistent with. */
  readonly seq: number;
  readonly bidPrice: number;
  readonly bidQty: number;
  readonly askPrice: number;
  readonly askQty: number;
}

/**
 * The levels that changed in one input batch, each with its new total (0 = removed). Bids best first
 * (price descending), then asks best first (price ascending). Never empty: a batch that leaves every
 * level as it was emits no delta and consumes no seq.
 */
export interface L2Delta {
  readonly type: 'L2Delta';
  readonly ts: number;
  readonly symbol: string;
  /** Previous delta's seq + 1, no gaps. */
  readonly seq: number;
  readonly bids: readonly Level[];
  readonly asks: readonly Level[];
  /** CRC-32 of the top 10 levels per side after this delta (see MARKETDATA.md), unsigned. */
  readonly checksum: number;
}

/**
 * The book at `seq`: the state after delta `seq`. A subscriber applies it, then deltas seq + 1, ....
 * `depth` is the most levels per side it was cut to; `truncated` says whether any side had more.
 * Only an untruncated snapshot is enough to keep a local book exact.
 */
export interface L2Snapshot {
  readonly type: 'L2Snapshot';
  readonly ts: number;
  readonly symbol: string;
  readonly seq: number;
  readonly depth: number;
  readonly truncated: boolean;
  readonly bids: readonly Level[];
  readonly asks: readonly Level[];
  readonly checksum: number;
}

/** One trade on the public tape (one per Fill). Accounts and order ids stay private. */
export interface TradeTick {
  readonly type: 'TradeTick';
  readonly ts: number;
  readonly symbol: string;
  /** The book's trade id: 1, 2, 3, ... */
  readonly tradeId: number;
  readonly price: number;
  readonly qty: number;
  /** The aggressor's side. */
  readonly takerSide: Side;
}

/** OHLCV of one bucket `[start, start + intervalMs)`. */
export interface Candle {
  readonly interval: CandleInterval;
  /** Bucket start, ms, a multiple of the interval. */
  readonly start: number;
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
  /** Sum of trade quantities. */
  readonly volume: number;
  readonly trades: number;
}

/** The open candle after an input batch that traded in it. At most one per interval per batch. */
export interface CandleUpdate extends Candle {
  readonly type: 'CandleUpdate';
  readonly ts: number;
  readonly symbol: string;
}

/**
 * A bucket is final. Emitted exactly once per non-empty bucket, when the first input with
 * `ts >= start + intervalMs` arrives (a book event or a MarketDataTick). Empty buckets emit nothing.
 */
export interface CandleClosed extends Candle {
  readonly type: 'CandleClosed';
  readonly ts: number;
  readonly symbol: string;
}

export type MdIgnoreReason =
  /** The input's `type` is not one the machine knows. */
  | 'unknownType'
  /** A field the machine reads is missing or out of range (non-integer, negative, bad side, ...). */
  | 'badField'
  /** Well-formed, but removes more quantity than the level holds; the level was cleared. */
  | 'inconsistent'
  /** A batch longer than mdBatchEventsMax; the events past the limit were ignored. */
  | 'tooLarge';

/**
 * An input (a command or one event of a batch) the machine could not use. It is counted in the
 * state, never thrown. `input` names the offending input's type, truncated to 32 chars ('' if none).
 */
export interface MdInputIgnored {
  readonly type: 'MdInputIgnored';
  readonly ts: number;
  readonly symbol: string;
  readonly reason: MdIgnoreReason;
  readonly input: string;
}

export type MdEvent = Quote | L2Delta | L2Snapshot | TradeTick | CandleUpdate | CandleClosed | MdInputIgnored;
export type MdEventType = MdEvent['type'];

/** Stable wire codes. Never reuse a retired one. */
export const MdEventCode: { readonly [K in MdEventType]: number } = {
  Quote: 401,
  L2Delta: 402,
  L2Snapshot: 403,
  TradeTick: 404,
  CandleUpdate: 405,
  CandleClosed: 406,
  MdInputIgnored: 407,
};

/** Most events in one BookEvents batch; the rest are ignored with reason 'tooLarge'. */
export const mdBatchEventsMax = 100_000;

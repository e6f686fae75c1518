/**
 * The venue as the edge sees it: the one boundary between `packages/edge` and whatever runs the
 * engine. Two implementations, with the same contract and the same gateway logic (`host/core.ts`):
 *
 * - in one process, the engine actors on the in-process transport and a PGlite journal (`bourse start`);
 * - a cluster, engine nodes reached over NATS, with a Postgres journal (`bourse node` / `bourse edge`).
 *
 * Contract (DESIGN.md guarantees 1, 2 and 6):
 * - A command's promise resolves only after every event behind its answer is committed to the
 *   journal. An ack, a fill or a cancel confirmation is never visible before that.
 * - Commands never throw for bad input. They resolve with `{ ok: false, code, message }`, a typed reject.
 *   A rejection means "not durable / not done"; an infrastructure failure (journal down) rejects the
 *   promise with an Error, and the caller may retry with the same `clientOrderId`.
 * - `clientOrderId` makes order entry idempotent per account: a resend gets the original answer.
 * - The private stream of an account is its ledger journal (`account/<id>`). `seq` is the journal
 *   sequence (increasing, with gaps where runtime records sit), so a client resumes from its last
 *   `seq` and never misses or double-counts a fill.
 * - `placeOrder` resolves ok once the ledger's hold AND the book's acceptance are committed; a book
 *   reject (post-only would take, price band, halted) resolves `{ ok: false, code }` like a risk reject.
 *
 * Implementations: `EmbeddedVenue` (src/host/embedded.ts) and `ClusterGateway` (src/host/cluster.ts),
 * both `VenueCore`s, which also offer `setRiskLimits`, `setMarkPrice`, `tick` and `settle` beyond this
 * interface.
 * - Public streams are the market-data journal of an instrument (`md/<symbol>`), with the L2
 *   sequence and checksum inside the events.
 */
import type { Instrument, LedgerEvent, MdEvent, L2Snapshot, RejectCode, Side, TradingStatus } from '@bourse/schemas';
import type { ReadModels } from '@bourse/store';
import type { OrderRequest } from './venue.js';

/**
 * Queries: the store's read models (orders, trades, balances, positions, candles), projected from
 * the journal. They may lag the journal by the projection interval; the private stream does not.
 */
export type VenueReads = Pick<ReadModels, 'ordersByAccount' | 'trades' | 'balancesByAccount' | 'positionsByAccount' | 'candles'>;

export type GatewayResult<T = object> = ({ readonly ok: true } & T) | { readonly ok: false; readonly code: RejectCode; readonly message: string };

/** Carried from the edge into the engine and into logs. */
export interface CommandContext {
  readonly traceId: string;
}

export interface PrivateEvent {
  readonly account: string;
  /**
   * The account ledger's journal sequence: strictly increasing per account, starting at 1, but NOT
   * contiguous — the actor runtime journals its own records (reliable-message receipts and acks)
   * in the same stream, and those sequences are skipped. Resume with the last `seq` seen; the stream
   * never skips or repeats a ledger event. (A session sequence for clients is the edge's own.)
   */
  readonly seq: number;
  readonly event: LedgerEvent;
}

export interface PublicEvent {
  readonly symbol: string;
  readonly event: MdEvent;
}

export type Unsubscribe = () => void;

export interface VenueGateway {
  instruments(): readonly Instrument[];

  // ---- order entry (trader, market maker, broker for its clients)
  placeOrder(account: string, req: OrderRequest, ctx: CommandContext): Promise<GatewayResult<{ orderId: number }>>;
  cancelOrder(account: string, symbol: string, orderId: number, ctx: CommandContext): Promise<GatewayResult>;
  /** `qty` is the new total order quantity (FIX semantics); `price` the new limit price. */
  amendOrder(account: string, symbol: string, orderId: number, change: { price?: number; qty?: number }, ctx: CommandContext): Promise<GatewayResult>;
  massCancel(account: string, symbol: string, side: Side | undefined, ctx: CommandContext): Promise<GatewayResult<{ cancelled: number }>>;

  // ---- admin
  openAccount(account: string, ctx: CommandContext): Promise<GatewayResult>;
  deposit(account: string, asset: string, amount: number, transferId: string, ctx: CommandContext): Promise<GatewayResult>;
  withdraw(account: string, asset: string, amount: number, transferId: string, ctx: CommandContext): Promise<GatewayResult>;
  setTradingStatus(symbol: string, status: TradingStatus, ctx: CommandContext): Promise<GatewayResult>;

  // ---- streams
  /** Committed ledger events of `account` with seq > `afterSeq`: first the journal's backlog, then live. */
  subscribePrivate(account: string, afterSeq: number, onEvent: (e: PrivateEvent) => void): Unsubscribe;
  /**
   * The highest journal sequence of `account`'s ledger now (0 if none): `subscribePrivate` after it
   * delivers only what is committed from now on, and nothing committed after this read is missed.
   */
  privateHead(account: string): Promise<number>;
  /** Committed market-data events of `symbol` from now on. Pair with `l2Snapshot` to start a book. */
  subscribePublic(symbol: string, onEvent: (e: PublicEvent) => void): Unsubscribe;
  /** The current L2 book (top `depth` levels), with the sequence the next delta follows. */
  l2Snapshot(symbol: string, depth: number): L2Snapshot | undefined;

  // ---- queries
  readonly reads: VenueReads;

  close(): Promise<void>;
}

/** The typed kysely schema. int8 columns are parsed to JS numbers (all values are safe integers). */
import type { Generated } from 'kysely';

export interface JournalTable {
  persistence_id: string;
  seq_from: number;
  seq_to: number;
  /** Payload format version: see codec.ts. */
  format: number;
  payload: Uint8Array;
}

/** The newest sequence per persistence id (kept by the append; a reader's hint). */
export interface JournalHeadTable {
  persistence_id: string;
  seq_to: number;
}

export interface JournalFenceTable {
  scope: string;
  token: number;
}

export interface SnapshotTable {
  persistence_id: string;
  seq: number;
  payload: Uint8Array;
  created_at: Generated<Date>;
}

export interface ProjectionCheckpointTable {
  projection: string;
  persistence_id: string;
  seq: number;
}

export type OrderStatus = 'pendingStop' | 'new' | 'open' | 'partiallyFilled' | 'filled' | 'cancelled';

export interface OrderTable {
  instrument: string;
  order_id: number;
  account: string;
  client_order_id: string | null;
  side: string;
  order_type: string;
  tif: string;
  price: number;
  stop_price: number;
  /** Quantity as accepted. */
  qty: number;
  /** Open quantity now (0 once filled or cancelled). */
  leaves_qty: number;
  filled_qty: number;
  /** Sum of price × qty over fills, for the average price. */
  filled_notional: number;
  status: OrderStatus;
  cancel_reason: string | null;
  is_open: boolean;
  created_ts: number;
  updated_ts: number;
}

export interface TradeTable {
  instrument: string;
  trade_id: number;
  ts: number;
  price: number;
  qty: number;
  taker_order_id: number;
  taker_account: string;
  taker_side: string;
  maker_order_id: number;
  maker_account: string;
  taker_fee: number;
  maker_fee: number;
}

/** Ledger kinds as stored: a user account (`account/<id>`) or a system ledger (`fees`, `clearing`). */
export type LedgerKindColumn = 'user' | 'fees' | 'clearing';

/** One asset's balance of one ledger, as of the ledger event `seq` (events carry absolute balances). */
export interface BalanceTable {
  kind: LedgerKindColumn;
  /** The account id (`acc-1` for stream `account/acc-1`); for system ledgers their name. */
  account: string;
  asset: string;
  available: number;
  held: number;
  updated_ts: number;
  /** Sequence of the ledger event that set this row. */
  seq: number;
}

/** A margin position of one account, as of the ledger event `seq`. Flat positions stay (qty 0). */
export interface PositionTable {
  account: string;
  instrument: string;
  collateral: string;
  /** Signed: positive long, negative short. */
  qty: number;
  /** Entry cost of the open qty, signed like qty (quote minor units). */
  entry_cost: number;
  realized_pnl: number;
  /** Collateral held as this position's margin. */
  margin: number;
  updated_ts: number;
  seq: number;
}

export interface CandleTable {
  instrument: string;
  /** '1s' | '1m' | '1h' (schemas' CandleInterval). */
  interval: string;
  /** Bucket start, ms. */
  start_ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  /** A CandleClosed was seen: the bucket is final. */
  closed: boolean;
  updated_ts: number;
  /** Sequence of the market-data event that set this row. */
  seq: number;
}

export interface Database {
  journal: JournalTable;
  journal_fences: JournalFenceTable;
  journal_heads: JournalHeadTable;
  snapshots: SnapshotTable;
  projection_checkpoints: ProjectionCheckpointTable;
  orders: OrderTable;
  trades: TradeTable;
  balances: BalanceTable;
  positions: PositionTable;
  candles: CandleTable;
}

export { openStore, type Store, type OpenStoreOptions } from './store.js';
export { migrate, migrateDb, type MigrateOptions, type MigrateReport } from './migrate.js';
export { StoreJournal, prepareAppend, type JournalOptions, type PreparedAppend } from './journal.js';
export type { StoreTarget, PgTarget, PGliteTarget, ConnectOptions, Dialect, RetryPolicy } from './connect.js';
export { PGliteDialect } from './pglite-dialect.js';
export type { Database } from './db.js';
export * from './errors.js';
export { GroupCommitter, type GroupCommitOptions } from './group-commit.js';
export { ProjectionRunner, projects, type Projection, type StreamProgress, type CatchUpOptions } from './projections/framework.js';
export { ordersAndTradesProjection, BOOK_STREAM_PREFIX } from './projections/book.js';
export {
  balancesAndPositionsProjection,
  foldLedgerPage,
  ledgerOfStream,
  ACCOUNT_STREAM_PREFIX,
  FEES_LEDGER,
  CLEARING_LEDGER,
  SYSTEM_LEDGERS,
} from './projections/ledger.js';
export { candlesProjection, foldCandlePage, MD_STREAM_PREFIX } from './projections/candles.js';
import { ordersAndTradesProjection as _orders } from './projections/book.js';
import { balancesAndPositionsProjection as _ledger } from './projections/ledger.js';
import { candlesProjection as _candles } from './projections/candles.js';
/** Every read-model projection, for a `ProjectionRunner`. */
export const allProjections = [_orders, _ledger, _candles] as const;
export { ReadModels, type OrderView, type TradeView, type BalanceView, type PositionView, type CandleView, type Page, type OrderCursor, type TradeCursor } from './queries.js';
export type { OrderStatus, LedgerKindColumn } from './db.js';

export { openStore, type Store, type OpenStoreOptions } from './store.js';
export { migrate, migrateDb, type MigrateOptions, type MigrateReport } from './migrate.js';
export { StoreJournal, type JournalOptions } from './journal.js';
export type { StoreTarget, PgTarget, PGliteTarget, ConnectOptions, Dialect, RetryPolicy } from './connect.js';
export { PGliteDialect } from './pglite-dialect.js';
export type { Database } from './db.js';
export * from './errors.js';

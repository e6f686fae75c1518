/**
 * The store's face: one call opens the database, checks it, migrates when asked (always for PGlite,
 * the embedded default) and returns the journal and the read models.
 */
import type { Kysely } from 'kysely';
import { Kysely as KyselyClass, PostgresDialect } from 'kysely';
import { connect, pgPool, type ConnectOptions, type Connection, type Dialect, type StoreTarget } from './connect.js';
import type { Database } from './db.js';
import { StoreJournal, type JournalOptions } from './journal.js';
import { assertMigrated, migrateDb } from './migrate.js';
import { ReadModels } from './queries.js';

export type OpenStoreOptions = StoreTarget &
  ConnectOptions & {
    /** Run pending migrations first. Default: true for PGlite, false for pg (run `bourse migrate`). */
    readonly migrate?: boolean;
    readonly journal?: JournalOptions;
  };

export interface Store {
  readonly dialect: Dialect;
  readonly db: Kysely<Database>;
  readonly journal: StoreJournal;
  readonly readModels: ReadModels;
  readonly connection: Connection;
  close(): Promise<void>;
}

/**
 * Opens the store.
 * @example
 *   const store = await openStore({ pglite: '.bourse/data' });
 *   await store.journal.append([{ persistenceId: 'demo/1', expectedSeq: 0, events: [{ hello: 'world' }] }]);
 *   await store.close();
 */
export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const conn = await connect(opts, opts);
  try {
    if ('pglite' in opts) {
      if (opts.migrate !== false) await migrateDb(conn.db);
      else await assertMigrated(conn.db);
    } else {
      const schema = opts.schema ?? 'public';
      if (opts.migrate) {
        // Migrations need one pinned session (advisory lock): a dedicated single-connection pool.
        const pool = pgPool(opts, { ...opts, poolMax: 1 });
        const mdb = new KyselyClass<Database>({ dialect: new PostgresDialect({ pool }) });
        try {
          await migrateDb(mdb, schema);
        } finally {
          await mdb.destroy();
        }
      } else {
        await assertMigrated(conn.db, schema);
      }
    }
  } catch (e) {
    await conn.db.destroy().catch(() => {});
    throw e;
  }
  const journal = new StoreJournal(conn, opts.journal);
  let closed = false;
  return {
    dialect: conn.dialect,
    db: conn.db,
    journal,
    readModels: new ReadModels(conn.db),
    connection: conn,
    async close() {
      if (closed) return;
      closed = true;
      await journal.close();
      await conn.db.destroy();
    },
  };
}

/**
 * A kysely dialect for PGlite (embedded Postgres in WebAssembly). Kysely's Postgres adapter, query
 * compiler and introspector, with a driver that runs queries on one PGlite instance. PGlite has a
 * single session, so the driver hands out one connection at a time (a `SessionLock`): a transaction
 * holds it from BEGIN to COMMIT and nothing else interleaves.
 *
 * The lock has two lanes. The journal takes it on the urgent lane, so an append waits for at most the
 * statement or transaction that holds the session now, never behind a queue of read-model work
 * (projections, queries), which takes the normal lane.
 */
import type { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

/** The one PGlite session, handed out in turn: urgent waiters first, then the rest, each lane FIFO. */
export class SessionLock {
  #busy = false;
  readonly #urgent: Array<() => void> = [];
  readonly #normal: Array<() => void> = [];

  /**
   * Resolves when the caller holds the session; `release()` hands it on.
   *
   * The normal lane first yields one turn of the event loop. PGlite runs a query synchronously inside
   * an async call, so a chain of read-model statements never returns to the event loop by itself, and
   * a journal request waiting as an I/O event (a message to the store's worker thread, a socket) would
   * not even be seen, let alone served first, until the whole chain ended.
   */
  async acquire(urgent = false): Promise<void> {
    if (!urgent) await new Promise<void>((resolve) => setImmediate(resolve));
    if (!this.#busy) {
      this.#busy = true;
      return;
    }
    await new Promise<void>((resolve) => (urgent ? this.#urgent : this.#normal).push(resolve));
  }

  release(): void {
    const next = this.#urgent.shift() ?? this.#normal.shift();
    if (next) next();
    else this.#busy = false;
  }

  async run<T>(urgent: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(urgent);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

export class PGliteDialect implements Dialect {
  constructor(
    private readonly pglite: PGlite,
    private readonly lock: SessionLock = new SessionLock(),
  ) {}
  createDriver(): Driver {
    return new PGliteDriver(this.pglite, this.lock);
  }
  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }
  createAdapter(): DialectAdapter {
    return new PostgresAdapter();
  }
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}

class PGliteConnection implements DatabaseConnection {
  constructor(private readonly pglite: PGlite) {}

  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const res = await this.pglite.query<R>(q.sql, q.parameters as unknown[]);
    return { rows: res.rows, numAffectedRows: res.affectedRows === undefined ? undefined : BigInt(res.affectedRows) };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGliteDialect does not stream; page with LIMIT instead');
  }
}

class PGliteDriver implements Driver {
  readonly #connection: PGliteConnection;

  constructor(
    private readonly pglite: PGlite,
    private readonly lock: SessionLock,
  ) {
    this.#connection = new PGliteConnection(pglite);
  }

  async init(): Promise<void> {
    await this.pglite.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.lock.acquire(false);
    return this.#connection;
  }

  async releaseConnection(): Promise<void> {
    this.lock.release();
  }

  async beginTransaction(conn: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let text = 'begin';
    if (settings.isolationLevel) text += ` isolation level ${settings.isolationLevel}`;
    if (settings.accessMode) text += ` ${settings.accessMode}`;
    await conn.executeQuery(CompiledQuery.raw(text));
  }

  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  }

  async destroy(): Promise<void> {
    if (!this.pglite.closed) await this.pglite.close();
  }
}

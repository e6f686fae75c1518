/**
 * Opening a kysely instance on either dialect, with the checks that turn a bad configuration into a
 * clear error at startup: malformed connection string, unreachable or silent server (bounded by
 * `connectTimeoutMs`), refused credentials, read-only database.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './db.js';
import { PGliteDialect, SessionLock } from './pglite-dialect.js';
import { makePGliteDurable } from './pglite-durable.js';
import { lockDataDir } from './data-dir-lock.js';
import { StoreAuthError, StoreConfigError, StoreReadOnlyError, StoreUnreachableError } from './errors.js';

export interface PgTarget {
  readonly pg: string;
  /** Postgres schema to use (created by `migrate`). Default `public`. */
  readonly schema?: string;
}
export interface PGliteTarget {
  /** Data directory; created when missing. */
  readonly pglite: string;
}
export type StoreTarget = PgTarget | PGliteTarget;

export interface ConnectOptions {
  /** Bound on establishing a connection (TCP + startup). Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Bound on one statement, server side. Default 30000. */
  readonly statementTimeoutMs?: number;
  /** Pool size for pg. Default 4. */
  readonly poolMax?: number;
  /** `application_name` of the sessions (pg). Default `bourse-store`. */
  readonly applicationName?: string;
}

export type Dialect = 'pg' | 'pglite';

export interface Connection {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly target: StoreTarget;
  /** pg only: the pool, for the journal's hot path. */
  readonly pool?: pg.Pool;
  /** PGlite only. */
  readonly pglite?: PGlite;
  /** PGlite only: the lock on its one session, shared with the kysely driver (the journal takes the urgent lane). */
  readonly lock?: SessionLock;
}

const INT8 = 20;
const BYTEA = 17;

/** `\\x0a1b...` (bytea_output = hex) to bytes. */
export function parseByteaHex(v: string): Uint8Array {
  if (v.startsWith('\\x')) return Buffer.from(v.slice(2), 'hex');
  throw new Error(`bytea: expected hex output (\\x...), got ${JSON.stringify(v.slice(0, 8))}`);
}

/**
 * PGlite: a bytea parameter as the bytes themselves. PGlite's Bind sends any ArrayBuffer view in
 * binary format (one copy), where a hex string costs a JS-side UTF-8 length pass and a byte-by-byte
 * string write of twice the size, then hex parsing in the server (about a fifth of an append's CPU).
 */
export function serializeByteaBinary(x: unknown): string {
  if (!(x instanceof Uint8Array)) throw new Error('Invalid input for bytea type');
  return x as unknown as string; // PGlite's serializer type says string; a Uint8Array goes out binary
}
const int8ToNumber = (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 ${v} is not a safe integer`);
  return n;
};

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** Validates a Postgres connection string without connecting. Throws StoreConfigError. */
export function parsePgUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new StoreConfigError(`invalid Postgres connection string ${JSON.stringify(redact(url))}: not a URL`, { cause: e });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new StoreConfigError(`invalid Postgres connection string ${JSON.stringify(redact(url))}: scheme must be postgres:// or postgresql://`);
  }
  if (!u.hostname && !u.searchParams.get('host')) {
    throw new StoreConfigError(`invalid Postgres connection string ${JSON.stringify(redact(url))}: no host`);
  }
  if (u.port && !(Number(u.port) > 0 && Number(u.port) < 65536)) {
    throw new StoreConfigError(`invalid Postgres connection string ${JSON.stringify(redact(url))}: bad port`);
  }
  return u;
}

/** The URL with any password replaced, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

export function checkSchemaName(schema: string): string {
  if (!SCHEMA_RE.test(schema)) throw new StoreConfigError(`invalid schema name ${JSON.stringify(schema)}: use [a-z_][a-z0-9_]*`);
  return schema;
}

export function pgPool(target: PgTarget, opts: ConnectOptions = {}): pg.Pool {
  parsePgUrl(target.pg);
  const schema = checkSchemaName(target.schema ?? 'public');
  const pool = new pg.Pool({
    connectionString: target.pg,
    max: opts.poolMax ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    options: `-c search_path=${schema}`,
    application_name: opts.applicationName ?? 'bourse-store',
    keepAlive: true,
    types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8 && format !== 'binary' ? int8ToNumber : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  // Nor may a checked-out one: pg-pool removes its idle listener on checkout, and pg emits 'error' on
  // a client whose server went away even while a query is pending (that query rejects on its own).
  // Without a listener that event is an uncaught exception.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

/** Translates a connect-time failure into a store error naming the cause. */
export function startupError(e: unknown, url: string): Error {
  const err = e as { code?: string; message?: string };
  const where = redact(url);
  const code = err?.code ?? '';
  const msg = err?.message ?? String(e);
  if (code === '28P01' || code === '28000' || code === '3D000' || code === '3F000') {
    return new StoreAuthError(`Postgres at ${where} refused the connection: ${msg}`, { cause: e });
  }
  if (/timeout/i.test(msg) || ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'].includes(code) || /terminated|closed/i.test(msg)) {
    return new StoreUnreachableError(`Postgres at ${where} is unreachable: ${msg}`, { cause: e });
  }
  if (e instanceof TypeError || /invalid|parse/i.test(msg)) {
    return new StoreConfigError(`invalid Postgres connection string ${JSON.stringify(where)}: ${msg}`, { cause: e });
  }
  return e instanceof Error ? e : new Error(msg);
}

/** Throws StoreReadOnlyError when the session cannot write. */
export async function assertWritable(db: Kysely<any>, where: string): Promise<void> {
  const { rows } = await sql<{ ro: string; recovery: boolean }>`select current_setting('transaction_read_only') as ro, pg_is_in_recovery() as recovery`.execute(db);
  const r = rows[0]!;
  if (r.ro === 'on' || r.recovery) {
    throw new StoreReadOnlyError(`database at ${where} is read-only (${r.recovery ? 'a standby in recovery' : 'transaction_read_only = on'}); the journal needs a writable primary`);
  }
}

export async function openPGlite(dir: string): Promise<PGlite> {
  if (typeof dir !== 'string' || dir.length === 0) throw new StoreConfigError('PGlite data directory: a non-empty path is required');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StoreConfigError(`PGlite data directory ${dir} cannot be created: ${(e as Error).message}`, { cause: e });
  }
  if (!statSync(dir).isDirectory()) throw new StoreConfigError(`PGlite data directory ${dir} is not a directory`);
  // initdb refuses a directory with files in it and PGlite only says "exit(1)": name the cause.
  if (!existsSync(path.join(dir, 'PG_VERSION')) && readdirSync(dir).length > 0) {
    throw new StoreConfigError(`PGlite data directory ${dir} is not empty and holds no database (no PG_VERSION): give an empty or new directory, or an existing Bourse data directory`);
  }
  // One process per directory (data-dir-lock.ts). An existing database is locked before PGlite opens
  // it; a new one just after initdb, which refuses a directory with a file in it.
  let release = existsSync(path.join(dir, 'PG_VERSION')) ? lockDataDir(dir) : undefined;
  let pglite: PGlite | undefined;
  try {
    // bytea results through Node's native hex codec, parameters as binary: PGlite's own parser and
    // serializer go through a JS closure per byte, which made journal appends and replays ~10x slower.
    pglite = new PGlite(dir, {
      parsers: { [INT8]: (v: string) => int8ToNumber(v), [BYTEA]: parseByteaHex },
      serializers: { [BYTEA]: serializeByteaBinary },
    });
    await pglite.waitReady;
    release ??= lockDataDir(dir);
    makePGliteDurable(pglite, dir); // Emscripten's NODEFS drops fsync: see pglite-durable.ts
    await trimPGliteParsers(pglite);
  } catch (e) {
    await pglite?.close().catch(() => {});
    release?.();
    if (e instanceof StoreConfigError) throw e;
    throw new StoreConfigError(`PGlite at ${dir} could not start: ${(e as Error).message}`, { cause: e });
  }
  const close = pglite.close.bind(pglite);
  const unlock = release;
  pglite.close = async () => {
    try {
      await close();
    } finally {
      unlock();
    }
  };
  return pglite;
}

/**
 * Shrinks PGlite's result-parser table to the types it parses by default (`types.parsers`: text,
 * integers, floats, bool, json, dates, bytea), their array types, and our overrides.
 *
 * Why: PGlite copies the whole table into a new object for every `query` (`{ ...this.parsers }` in
 * its parseResults), and at start-up it adds an array parser for every array type in the catalog,
 * about 316 entries with our schema. That copy cost ~150-190 µs per query here: a `select 1` went
 * from ~500 to ~310 µs, a two-row journal append from ~2.05 to ~1.78 ms. A column of any other array
 * type (none of our queries returns one) now comes back as Postgres's text form, as any type without
 * a parser always did. Only a speed-up: if PGlite's table is not where it was (an upgrade), it is left.
 */
async function trimPGliteParsers(pglite: PGlite): Promise<void> {
  const table = (pglite as unknown as { parsers?: Record<string, unknown> }).parsers;
  if (!table || typeof table !== 'object') return;
  const base = Object.keys(pgliteTypes.parsers);
  const arrays = await pglite.query<{ arr: number }>('select typarray::int4 as arr from pg_catalog.pg_type where typarray <> 0 and oid = any($1::int4[])', [
    base.filter((k) => /^[0-9]+$/.test(k)).map(Number),
  ]);
  const kept: Record<string, unknown> = {};
  for (const k of [...base, ...arrays.rows.map((r) => String(r.arr))]) if (table[k] !== undefined) kept[k] = table[k];
  // The array parsers find their element parser through `pglite.parsers` at call time: swap the table.
  (pglite as unknown as { parsers: Record<string, unknown> }).parsers = kept;
}

/**
 * Connects and checks the server: reachable within the timeout, credentials accepted, writable.
 * @example const c = await connect({ pglite: '.bourse/data' }); await c.db.destroy();
 */
export async function connect(target: StoreTarget, opts: ConnectOptions = {}): Promise<Connection> {
  if ('pglite' in target) {
    const pglite = await openPGlite(target.pglite);
    const lock = new SessionLock();
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite, lock) });
    return { db, dialect: 'pglite', target, pglite, lock };
  }
  if (typeof target.pg !== 'string') throw new StoreConfigError('Postgres connection string: a string is required');
  const pool = pgPool(target, opts);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    const client = await pool.connect().catch((e: unknown) => {
      throw startupError(e, target.pg);
    });
    client.release();
    await assertWritable(db, redact(target.pg));
  } catch (e) {
    await db.destroy().catch(() => {});
    throw e;
  }
  return { db, dialect: 'pg', target, pool };
}

// ---------------------------------------------------------------- transient errors and retry

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08007',
]);

/** A connection-level failure worth retrying (the server went away or is restarting). */
export function isTransient(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (err?.code && TRANSIENT_CODES.has(err.code)) return true;
  const msg = err?.message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(msg);
}

export interface RetryPolicy {
  /** Give up after this long. Default 15000. */
  readonly budgetMs: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}
export const defaultRetry: RetryPolicy = { budgetMs: 15_000, baseDelayMs: 20, maxDelayMs: 1000 };

/** Full-jitter exponential backoff delay for attempt `n` (0-based). */
export function backoffMs(policy: RetryPolicy, n: number): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

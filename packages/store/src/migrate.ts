/**
 * Running migrations: `migrate(pgUrl)` for `pnpm bourse migrate --pg URL`, and `migrateDb(db)` for
 * an already open database (PGlite at embedded start).
 */
import { Migrator, sql, type Kysely, type MigrationResultSet } from 'kysely';
import { Kysely as KyselyClass, PostgresDialect } from 'kysely';
import { assertWritable, checkSchemaName, pgPool, redact, startupError, type ConnectOptions } from './connect.js';
import type { Database } from './db.js';
import { StoreSchemaError } from './errors.js';
import { latestMigration, migrationProvider } from './migrations.js';

export interface MigrateOptions extends ConnectOptions {
  /** Postgres schema to create and migrate. Default `public`. */
  readonly schema?: string;
}

export interface MigrateReport {
  /** Names of the migrations this call applied (empty when already up to date). */
  readonly applied: string[];
  readonly latest: string;
}

/** Advisory-lock key: class 0x62_6f (“bo”), object = hash of the schema name. */
const LOCK_CLASS = 0x626f;

/**
 * Runs every pending migration on an open database, holding the migration advisory lock, so that
 * several nodes starting together apply each migration exactly once. The caller's `db` must be
 * pinned to one session (a single-connection pool, or PGlite).
 */
export async function migrateDb(db: Kysely<any>, schema = 'public'): Promise<MigrateReport> {
  checkSchemaName(schema);
  await sql`select pg_advisory_lock(${sql.lit(LOCK_CLASS)}, hashtext(${schema}))`.execute(db);
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: schema });
    const res: MigrationResultSet = await migrator.migrateToLatest();
    if (res.error) {
      const failed = res.results?.find((r) => r.status === 'Error')?.migrationName ?? '?';
      throw new StoreSchemaError(`migration ${failed} failed: ${(res.error as Error).message ?? res.error}`, { cause: res.error });
    }
    return { applied: (res.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName), latest: latestMigration };
  } finally {
    await sql`select pg_advisory_unlock(${sql.lit(LOCK_CLASS)}, hashtext(${schema}))`.execute(db).catch(() => {});
  }
}

/**
 * Migrates the Postgres database at `pgUrl` to the latest schema. Idempotent; safe to run from
 * several nodes at once. Throws StoreConfigError / StoreUnreachableError / StoreAuthError /
 * StoreReadOnlyError at once rather than hanging.
 *
 * @example
 *   import { migrate } from '@bourse/store';
 *   const { applied } = await migrate('postgres://postgres@127.0.0.1:5432/test');
 */
export async function migrate(pgUrl: string, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const schema = checkSchemaName(opts.schema ?? 'public');
  const pool = pgPool({ pg: pgUrl, schema }, { ...opts, poolMax: 1 });
  const db = new KyselyClass<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    try {
      (await pool.connect()).release();
    } catch (e) {
      throw startupError(e, pgUrl);
    }
    await assertWritable(db, redact(pgUrl));
    return await migrateDb(db, schema);
  } finally {
    await db.destroy().catch(() => {});
  }
}

/** Throws StoreSchemaError unless the schema has every migration this code knows. */
export async function assertMigrated(db: Kysely<any>, schema = 'public'): Promise<void> {
  let names: string[] = [];
  try {
    const { rows } = await sql<{ name: string }>`select name from ${sql.id(schema, 'kysely_migration')}`.execute(db);
    names = rows.map((r) => r.name);
  } catch (e) {
    if ((e as { code?: string }).code !== '42P01') throw e;
  }
  if (!names.includes(latestMigration)) {
    throw new StoreSchemaError(
      `the store schema ${schema} is ${names.length ? `at ${names.sort().at(-1)}` : 'not created'}, this code needs ${latestMigration}: run \`pnpm bourse migrate --pg URL\``,
    );
  }
}

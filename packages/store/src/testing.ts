/**
 * Test helpers: where Postgres is, and a fresh, private store per test run (a uniquely named
 * Postgres schema, or a temporary PGlite directory) that is dropped afterwards.
 *
 * The Postgres URL comes from env `BOURSE_PG_URL`, else `.bourse/services.json` (written by
 * `node ops/services.mjs ensure`), else `postgres://postgres@127.0.0.1:5432/test`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Dialect } from './connect.js';
import { migrate } from './migrate.js';
import { openStore, type OpenStoreOptions, type Store } from './store.js';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** The Postgres URL tests use. */
export function testPgUrl(): string {
  if (process.env.BOURSE_PG_URL) return process.env.BOURSE_PG_URL;
  try {
    const s = JSON.parse(readFileSync(path.join(repoRoot(), '.bourse', 'services.json'), 'utf8')) as { pgUrl?: string };
    if (s.pgUrl) return s.pgUrl;
  } catch {
    /* no services file */
  }
  return DEFAULT_PG_URL;
}

/** Dialects the suite runs against: env `BOURSE_STORE_DIALECTS=pg,pglite` (default both). */
export function testDialects(): Dialect[] {
  const v = process.env.BOURSE_STORE_DIALECTS;
  return v ? (v.split(',').map((s) => s.trim()) as Dialect[]) : ['pg', 'pglite'];
}

/** A schema name no other run uses. */
export function uniqueSchema(prefix = 'bourse_t'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export interface TestTarget {
  readonly dialect: Dialect;
  /** Options for `openStore` that reach this private database. */
  readonly options: OpenStoreOptions;
  /** Drops the schema or deletes the directory. */
  drop(): Promise<void>;
}

/** Creates and migrates a private database. */
export async function createTestTarget(dialect: Dialect): Promise<TestTarget> {
  if (dialect === 'pg') {
    const url = testPgUrl();
    const schema = uniqueSchema();
    await migrate(url, { schema, connectTimeoutMs: 5000 });
    return {
      dialect,
      options: { pg: url, schema },
      async drop() {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
        await c.connect();
        try {
          await c.query(`drop schema if exists ${schema} cascade`);
        } finally {
          await c.end();
        }
      },
    };
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'bourse-pglite-'));
  return {
    dialect,
    options: { pglite: dir },
    async drop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A private store; `cleanup` closes it and drops its database. */
export async function openTestStore(dialect: Dialect, extra: Partial<OpenStoreOptions> = {}): Promise<{ store: Store; target: TestTarget; cleanup(): Promise<void> }> {
  const target = await createTestTarget(dialect);
  const store = await openStore({ ...target.options, ...extra } as OpenStoreOptions);
  return {
    store,
    target,
    async cleanup() {
      await store.close();
      await target.drop();
    },
  };
}

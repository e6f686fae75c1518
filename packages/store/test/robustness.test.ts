import net from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import pg from 'pg';
import type { Connection } from '../src/connect.js';
import {
  migrate,
  openStore,
  StoreConfigError,
  StoreJournal,
  StoreReadOnlyError,
  StoreSchemaError,
  StoreUnreachableError,
  type Store,
} from '../src/index.js';
import { openTestStore, testDialects, testPgUrl, uniqueSchema } from '../src/testing.js';

const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'no error', (e: unknown) => e);

describe('store startup [pg]', function () {
  this.timeout(20_000);
  if (!testDialects().includes('pg')) return;

  it('startup - an invalid connection string is a config error, at once', async () => {
    for (const bad of ['not a url', 'mysql://u@h/db', 'postgres://u@h:99999/db']) {
      const e = await failure(openStore({ pg: bad }));
      expect(e, bad).to.be.instanceOf(StoreConfigError);
      expect(await failure(migrate(bad)), bad).to.be.instanceOf(StoreConfigError);
    }
  });

  it('startup - an unreachable or silent server is a clear error within the connect timeout', async () => {
    const refused = await failure(openStore({ pg: 'postgres://postgres@127.0.0.1:1/test', connectTimeoutMs: 1000 }));
    expect(refused).to.be.instanceOf(StoreUnreachableError);
    expect((refused as Error).message).to.match(/127\.0\.0\.1:1/);
    // A server that accepts TCP and never answers: must not hang.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const t0 = Date.now();
    try {
      const e = await failure(openStore({ pg: `postgres://postgres@127.0.0.1:${port}/test`, connectTimeoutMs: 500 }));
      expect(e).to.be.instanceOf(StoreUnreachableError);
      expect(Date.now() - t0).to.be.below(5000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('startup - a read-only database is refused with a clear error', async () => {
    const u = new URL(testPgUrl());
    u.searchParams.set('options', '-c default_transaction_read_only=on');
    const e = await failure(openStore({ pg: u.toString(), migrate: true, schema: uniqueSchema() }));
    expect(e).to.be.instanceOf(StoreReadOnlyError);
    expect(await failure(migrate(u.toString(), { schema: uniqueSchema() }))).to.be.instanceOf(StoreReadOnlyError);
  });

  it('startup - an unmigrated schema says to run bourse migrate', async () => {
    const e = await failure(openStore({ pg: testPgUrl(), schema: uniqueSchema('bourse_none') }));
    expect(e).to.be.instanceOf(StoreSchemaError);
    expect((e as Error).message).to.match(/bourse migrate/);
  });

  it('migrations - concurrent runs from several nodes apply each migration once', async () => {
    const schema = uniqueSchema();
    try {
      const reports = await Promise.all([1, 2, 3].map(() => migrate(testPgUrl(), { schema })));
      const applied = reports.flatMap((r) => r.applied);
      expect(applied.length).to.equal(new Set(applied).size);
      expect((await migrate(testPgUrl(), { schema })).applied).to.deep.equal([]);
    } finally {
      const c = new pg.Client({ connectionString: testPgUrl() });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    }
  });

  it('transient loss - appends and reads survive the server dropping the connections', async () => {
    const app = `bourse-store-test-${process.pid}`;
    const { store, cleanup } = await openTestStore('pg', { applicationName: app });
    const admin = new pg.Client({ connectionString: testPgUrl() });
    await admin.connect();
    try {
      await store.journal.append([{ persistenceId: 't/1', expectedSeq: 0, events: [1] }]);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [app]);
      await store.journal.append([{ persistenceId: 't/1', expectedSeq: 1, events: [2] }]);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [app]);
      expect(await store.journal.highestSeq('t/1')).to.equal(2);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [app]);
      // A replay (binary COPY on its own pooled client) survives it too.
      const got: unknown[] = [];
      for await (const p of store.journal.read('t/1', 1)) got.push(...p.events);
      expect(got).to.deep.equal([1, 2]);
    } finally {
      await admin.end();
      await cleanup();
    }
  });
});

describe('store startup [pglite]', () => {
  it('startup - a data directory that is a file is a config error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-bad-'));
    const file = path.join(dir, 'file');
    writeFileSync(file, 'x');
    try {
      expect(await failure(openStore({ pglite: file }))).to.be.instanceOf(StoreConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('startup - a non-empty directory that holds no database is a config error naming it; an empty one is initialised', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-bad-'));
    try {
      writeFileSync(path.join(dir, 'start.log'), 'x');
      const e = await failure(openStore({ pglite: dir }));
      expect(e).to.be.instanceOf(StoreConfigError);
      expect((e as Error).message).to.include(dir).and.include('not empty');
      rmSync(path.join(dir, 'start.log'));
      const store = await openStore({ pglite: dir });
      try {
        await store.journal.append([{ persistenceId: 'startup/1', expectedSeq: 0, events: [{ ok: 1 }] }]);
        expect(existsSync(path.join(dir, 'PG_VERSION'))).to.equal(true);
        expect(await store.journal.highestSeq('startup/1')).to.equal(1);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('startup - a PGlite directory in use by another live process is refused, naming it; a lock left by a process that has gone is taken over; close releases it', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-lock-'));
    const lock = path.join(dir, 'bourse.lock');
    // Another process that is running (it only sleeps), standing in for a second `bourse start`.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const first = await openStore({ pglite: dir });
      expect(readFileSync(lock, 'utf8').split('\n')[0]).to.equal(String(process.pid));
      await first.journal.append([{ persistenceId: 'lock/1', expectedSeq: 0, events: [{ n: 1 }] }]);
      await first.close();
      expect(existsSync(lock), 'released by close').to.equal(false);

      writeFileSync(lock, `${other.pid}\nsomehost\n2026-11-22T00:00:00Z\n`);
      const e = await failure(openStore({ pglite: dir }));
      expect(e).to.be.instanceOf(StoreConfigError);
      expect((e as Error).message).to.include(`in use by process ${other.pid}`).and.include(dir);
      expect(readFileSync(lock, 'utf8'), 'the other process keeps its lock').to.include(String(other.pid));

      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      const again = await openStore({ pglite: dir }); // the lock of a process that has gone is taken over
      try {
        expect(await again.journal.highestSeq('lock/1')).to.equal(1);
        expect(readFileSync(lock, 'utf8').split('\n')[0]).to.equal(String(process.pid));
      } finally {
        await again.close();
      }
    } finally {
      other.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('startup - PGlite keeps a small result-parser table (it copies it on every query) and still parses every type our queries return', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-parsers-'));
    const store = await openStore({ pglite: dir });
    try {
      const table = (store.connection.pglite as unknown as { parsers: Record<string, unknown> }).parsers;
      // PGlite registers ~316 with our schema (one per array type in the catalog).
      expect(Object.keys(table).length).to.be.below(60);
      const at = '2026-11-22T01:02:03.004Z';
      const { rows } = await store.connection.pglite!.query<Record<string, unknown>>(
        `select 9007199254740991::int8 as i8, '\\x0102'::bytea as b, array[1, 2]::int8[] as i8s, array['x', 'y']::text[] as ts, true as t,
                '{"k":1}'::jsonb as j, 1.5::float8 as f, 7::int4 as i4, 3::int2 as i2, '${at}'::timestamptz as at, 'v'::varchar as v, null::text as n`,
      );
      expect(rows[0]).to.deep.equal({
        i8: 9007199254740991, b: Buffer.from([1, 2]), i8s: [1, 2], ts: ['x', 'y'], t: true, j: { k: 1 }, f: 1.5, i4: 7, i2: 3, at: new Date(at), v: 'v', n: null,
      });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const dialect of testDialects()) {
  describe(`store recovery [${dialect}]`, function () {
    this.timeout(60_000);
    let store: Store;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ store, cleanup } = await openTestStore(dialect));
    });
    after(async () => cleanup?.());

    it('unknown outcome - a connection lost during commit is resolved by reading back, never duplicated', async () => {
      // A journal whose connection "breaks" once: after the append reached the server, or before.
      for (const when of ['after', 'before'] as const) {
        let armed = true;
        // The break is injected wherever the journal sends its append: kysely (db.executeQuery), the
        // pg pool (a named statement) or PGlite's protocol (its one session, on the journal's lane).
        const breaking = <T extends object>(target: T, method: string, sqlOf: (arg: any) => string): T =>
          new Proxy(target, {
            get(t, prop, recv) {
              const f = Reflect.get(t, prop, recv);
              if (prop !== method || typeof f !== 'function') return typeof f === 'function' ? f.bind(t) : f;
              return async (...args: unknown[]) => {
                const isAppend = sqlOf(args[0]).includes('bourse_journal_append');
                if (isAppend && armed && when === 'before') {
                  armed = false;
                  throw Object.assign(new Error('Connection terminated unexpectedly'), {});
                }
                const r = await f.apply(t, args);
                if (isAppend && armed && when === 'after') {
                  armed = false;
                  throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
                }
                return r;
              };
            },
          });
        const sqlOf = (a: any): string => (typeof a === 'string' ? a : String(a?.text ?? a?.sql ?? ''));
        // PGlite: the journal binds and executes its named append statement, then a Sync commits it.
        // The break comes before the Bind (nothing sent) or after that Sync returned (committed).
        const breakingPGlite = (target: NonNullable<Connection['pglite']>) => {
          let appending = false;
          return new Proxy(target, {
            get(t, prop, recv) {
              const f = Reflect.get(t, prop, recv);
              if (prop !== 'execProtocol' || typeof f !== 'function') return typeof f === 'function' ? f.bind(t) : f;
              return async (message: Uint8Array, ...rest: unknown[]) => {
                const type = String.fromCharCode(message[0]!);
                if (type === 'B' && Buffer.from(message).toString('latin1').includes('bourse_journal_append')) {
                  appending = true;
                  if (armed && when === 'before') {
                    armed = false;
                    throw Object.assign(new Error('Connection terminated unexpectedly'), {});
                  }
                }
                const r = await f.apply(t, [message, ...rest]);
                if (type === 'S' && appending) {
                  appending = false;
                  if (armed && when === 'after') {
                    armed = false;
                    throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
                  }
                }
                return r;
              };
            },
          });
        };
        const c = store.connection;
        const conn = {
          ...c,
          db: breaking(c.db, 'executeQuery', sqlOf),
          ...(c.pool ? { pool: breaking(c.pool, 'query', sqlOf) } : {}),
          ...(c.pglite ? { pglite: breakingPGlite(c.pglite) } : {}),
        } as Connection;
        const j = new StoreJournal(conn, { retry: { budgetMs: 3000, baseDelayMs: 1, maxDelayMs: 10 } });
        const id = `u/${when}`;
        await j.append([{ persistenceId: id, expectedSeq: 0, events: ['a', 'b'] }]);
        expect(armed, 'the failure was injected').to.equal(false);
        const got: unknown[] = [];
        for await (const p of store.journal.read(id, 1)) got.push(...p.events);
        expect(got).to.deep.equal(['a', 'b']);
      }
    });

    it('snapshots - snapshot plus journal tail equals full replay', async () => {
      type S = { n: number; sum: number; h: number };
      const step = (s: S, e: number): S => ({ n: s.n + 1, sum: s.sum + e, h: (Math.imul(s.h, 31) + e) | 0 });
      const packr = new Packr();
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 12 }),
          fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          async (batches, snapPicks, prune) => {
            const id = `snap/${++run}`;
            let seq = 0;
            let live: S = { n: 0, sum: 0, h: 7 };
            const total = batches.reduce((a, b) => a + b.length, 0);
            const snapAt = new Set(snapPicks.map((p) => 1 + (p % total)));
            for (const b of batches) {
              await store.journal.append([{ persistenceId: id, expectedSeq: seq, events: b }]);
              for (const e of b) {
                live = step(live, e);
                seq++;
                if (snapAt.has(seq)) await store.journal.saveSnapshot({ persistenceId: id, seq, data: packr.pack(live) });
              }
            }
            if (prune) {
              await store.journal.keepSnapshots(id, 1);
              await store.journal.deleteEventsTo(id, seq);
            }
            // Recovery: latest snapshot, then the tail.
            const snap = await store.journal.loadSnapshot(id);
            let rec: S = snap ? (packr.unpack(snap.data) as S) : { n: 0, sum: 0, h: 7 };
            for await (const p of store.journal.read(id, (snap?.seq ?? 0) + 1)) for (const e of p.events as number[]) rec = step(rec, e);
            expect(rec).to.deep.equal(live);
            if (!prune) {
              let full: S = { n: 0, sum: 0, h: 7 };
              for await (const p of store.journal.read(id, 1)) for (const e of p.events as number[]) full = step(full, e);
              expect(full).to.deep.equal(live);
            }
          },
        ),
        { numRuns: dialect === 'pg' ? 30 : 8 },
      );
    });
  });
}

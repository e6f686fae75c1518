import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Migrator, sql } from 'kysely';
import { JournalConflictError, JournalDecodeError, JournalFencedError, JournalGapError, JournalUsageError } from '@bourse/actors';
import type { JournalPage } from '@bourse/actors';
import { openTestStore, testDialects } from '../src/testing.js';
import { prepareAppend, StoreJournal } from '../src/journal.js';
import { connect } from '../src/connect.js';
import { migrationProvider } from '../src/migrations.js';
import { openStore } from '../src/store.js';
import type { Store } from '../src/store.js';
import { FORMAT_1_EVENTS, FORMAT_1_ROW_HEX } from './fixtures/format1.js';

export const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'no error', (e: unknown) => e);

async function readAll(store: Store, id: string, from = 1, pageEventsMax?: number): Promise<{ pages: JournalPage[]; events: unknown[] }> {
  const pages: JournalPage[] = [];
  const events: unknown[] = [];
  for await (const p of store.journal.read(id, from, pageEventsMax ? { pageEventsMax } : {})) {
    pages.push(p);
    events.push(...p.events);
  }
  return { pages, events };
}

for (const dialect of testDialects()) {
  describe(`store journal [${dialect}]`, function () {
    let store: Store;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ store, cleanup } = await openTestStore(dialect));
    });
    after(async () => cleanup?.());

    it('journal - appends a batch for many ids and reads each back in order', async () => {
      await store.journal.append([
        { persistenceId: 'a/1', expectedSeq: 0, events: [{ n: 1 }, { n: 2 }] },
        { persistenceId: 'a/2', expectedSeq: 0, events: [{ n: 1 }] },
      ]);
      await store.journal.append([{ persistenceId: 'a/1', expectedSeq: 2, events: [{ n: 3 }] }]);
      expect((await readAll(store, 'a/1')).events).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect(await store.journal.highestSeq('a/1')).to.equal(3);
      expect(await store.journal.highestSeq('nope')).to.equal(0);
      expect([...(await store.journal.highestSeqs(['a/1', 'a/2', 'nope']))]).to.deep.equal([['a/1', 3], ['a/2', 1], ['nope', 0]]);
    });

    it('journal - reads from a sequence inside a packed row, in bounded pages', async () => {
      const events = Array.from({ length: 100 }, (_, i) => ({ i }));
      await store.journal.append([{ persistenceId: 'p/1', expectedSeq: 0, events: events.slice(0, 30) }]);
      await store.journal.append([{ persistenceId: 'p/1', expectedSeq: 30, events: events.slice(30) }]);
      const { pages, events: got } = await readAll(store, 'p/1', 17, 20);
      expect(got).to.deep.equal(events.slice(16));
      for (const p of pages) expect(p.events.length).to.equal(p.toSeq - p.fromSeq + 1);
      expect(pages[0]!.fromSeq).to.equal(17);
      const bounded: unknown[] = [];
      for await (const p of store.journal.read('p/1', 5, { toSeq: 40 })) bounded.push(...p.events);
      expect(bounded).to.deep.equal(events.slice(4, 40));
    });

    it('journal - a stale writer gets a conflict naming id and sequences, and nothing of its batch is stored', async () => {
      await store.journal.append([{ persistenceId: 'c/1', expectedSeq: 0, events: [1, 2] }]);
      let err: unknown;
      try {
        await store.journal.append([
          { persistenceId: 'c/2', expectedSeq: 0, events: ['x'] },
          { persistenceId: 'c/1', expectedSeq: 1, events: [3] },
        ]);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(JournalConflictError);
      expect((err as JournalConflictError).conflicts).to.deep.equal([{ persistenceId: 'c/1', expectedSeq: 1, actualSeq: 2 }]);
      expect((err as Error).message).to.match(/c\/1 expected seq 1, actual 2/);
      expect(await store.journal.highestSeq('c/2')).to.equal(0);
      // A gap (expected beyond the head) is a conflict too.
      expect(await failure(store.journal.append([{ persistenceId: 'c/1', expectedSeq: 5, events: [9] }]))).to.be.instanceOf(JournalConflictError);
    });

    it('journal - any persistence id reads back, quotes, backslashes and dollars included (COPY literal escaping)', async () => {
      const ids = [`q/it's`, 'q/back\\slash\'', 'q/$1$2 $$x$$', 'q/ünï \\x00', "q/'); drop table journal; --"];
      for (const id of ids) await store.journal.append([{ persistenceId: id, expectedSeq: 0, events: [{ id }, 2] }]);
      for (const id of ids) {
        expect((await readAll(store, id)).events, id).to.deep.equal([{ id }, 2]);
        expect((await readAll(store, id, 2)).events, id).to.deep.equal([2]);
      }
      expect((await readAll(store, "q/it''s")).events).to.deep.equal([]);
    });

    it('journal - rejects a gap ahead of the head and a write into the middle of a row', async () => {
      await store.journal.append([{ persistenceId: 'g/1', expectedSeq: 0, events: [1, 2, 3, 4, 5] }]);
      for (const expectedSeq of [7, 2]) {
        const err = await store.journal.append([{ persistenceId: 'g/1', expectedSeq, events: [9] }]).then(() => undefined, (e: unknown) => e);
        expect(err, `expected ${expectedSeq}`).to.be.instanceOf(JournalConflictError);
      }
      expect(await store.journal.highestSeq('g/1')).to.equal(5);
    });

    it('journal - fencing: a lower token than stored fails the whole append', async () => {
      await store.journal.append([{ persistenceId: 'f/1', expectedSeq: 0, events: [1] }], { fences: [{ scope: 'shard-1', token: 5 }] });
      await store.journal.append([], { fences: [{ scope: 'shard-1', token: 6 }] });
      const err = await store.journal
        .append([{ persistenceId: 'f/1', expectedSeq: 1, events: [2] }], { fences: [{ scope: 'shard-1', token: 5 }] })
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(JournalFencedError);
      expect(err).to.include({ scope: 'shard-1', token: 5, storedToken: 6 });
      expect(await store.journal.highestSeq('f/1')).to.equal(1);
      await store.journal.append([{ persistenceId: 'f/1', expectedSeq: 1, events: [2] }], { fences: [{ scope: 'shard-1', token: 6 }] });
      expect(await store.journal.highestSeq('f/1')).to.equal(2);
    });

    it('journal - merges contiguous writes for one id and splits long ones into rows', async () => {
      await store.journal.append([
        { persistenceId: 'm/1', expectedSeq: 0, events: [1, 2] },
        { persistenceId: 'm/1', expectedSeq: 2, events: [3] },
      ]);
      const long = Array.from({ length: 10_000 }, (_, i) => i);
      await store.journal.append([{ persistenceId: 'm/1', expectedSeq: 3, events: long }]);
      expect((await readAll(store, 'm/1')).events).to.deep.equal([1, 2, 3, ...long]);
      expect(await failure(store.journal.append([{ persistenceId: 'm/1', expectedSeq: 0, events: [] }]))).to.be.instanceOf(JournalUsageError);
    });

    it('journal - one batch mixing new streams, continued streams and a stream split into rows commits whole, and each head moves to its last event', async () => {
      await store.journal.append([
        { persistenceId: 'x/old', expectedSeq: 0, events: [1, 2] },
        { persistenceId: 'x/split', expectedSeq: 0, events: [1] },
      ]);
      const long = Array.from({ length: 5000 }, (_, i) => i); // more than one row (4096 events a row)
      const batch = [
        { persistenceId: 'x/new', expectedSeq: 0, events: ['a'] },
        { persistenceId: 'x/old', expectedSeq: 2, events: [3] },
        { persistenceId: 'x/split', expectedSeq: 1, events: long },
        { persistenceId: 'x/new2', expectedSeq: 0, events: long },
      ];
      await store.journal.append(batch);
      expect([...(await store.journal.highestSeqs(['x/new', 'x/old', 'x/split', 'x/new2']))]).to.deep.equal([['x/new', 1], ['x/old', 3], ['x/split', 5001], ['x/new2', 5000]]);
      expect((await readAll(store, 'x/split', 4000)).events).to.deep.equal(long.slice(3998));
      // The same batch again: every id is stale, and the conflict names each with its stored head.
      const err = await failure(store.journal.append(batch));
      expect(err).to.be.instanceOf(JournalConflictError);
      expect((err as JournalConflictError).conflicts.map((c) => [c.persistenceId, c.expectedSeq, c.actualSeq]).sort()).to.deep.equal([
        ['x/new', 0, 1], ['x/new2', 0, 5000], ['x/old', 2, 3], ['x/split', 1, 5001],
      ]);
      // Continuing from the heads works, for a split stream too.
      await store.journal.append([{ persistenceId: 'x/split', expectedSeq: 5001, events: ['z'] }, { persistenceId: 'x/new', expectedSeq: 1, events: ['b'] }]);
      expect(await store.journal.highestSeq('x/split')).to.equal(5002);
      expect((await readAll(store, 'x/new')).events).to.deep.equal(['a', 'b']);
      // One row per id (no split): a new stream beside a continued one.
      await store.journal.append([{ persistenceId: 'x/new3', expectedSeq: 0, events: [1] }, { persistenceId: 'x/old', expectedSeq: 3, events: [4] }]);
      expect([...(await store.journal.highestSeqs(['x/new3', 'x/old']))]).to.deep.equal([['x/new3', 1], ['x/old', 4]]);
      expect((await readAll(store, 'x/old')).events).to.deep.equal([1, 2, 3, 4]);
    });

    it('journal - a batch prepared elsewhere (prepareAppend, cloned with its payload transferred) appends like append', async () => {
      const prep = prepareAppend<unknown>([
        { persistenceId: 'prep/1', expectedSeq: 0, events: [{ n: 1 }, { n: 2 }] },
        { persistenceId: 'prep/1', expectedSeq: 2, events: [{ n: 3 }] },
        { persistenceId: 'prep/2', expectedSeq: 0, events: ['x'] },
      ]);
      // What a worker thread receives: a structured clone, the payload's buffer moved, not copied.
      const moved = structuredClone(prep, { transfer: [prep.payload.buffer as ArrayBuffer] });
      expect(prep.payload.byteLength).to.equal(0);
      await store.journal.appendPrepared(moved);
      expect((await readAll(store, 'prep/1')).events).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect((await readAll(store, 'prep/2')).events).to.deep.equal(['x']);
      // The same sequence checks: a stale prepared batch conflicts and stores nothing.
      const stale = prepareAppend([{ persistenceId: 'prep/1', expectedSeq: 1, events: [{ n: 9 }] }]);
      expect(await failure(store.journal.appendPrepared(stale))).to.be.instanceOf(JournalConflictError);
      expect(() => prepareAppend([{ persistenceId: 'prep/1', expectedSeq: 0, events: [] }])).to.throw(JournalUsageError);
    });

    it('journal - an unknown format version or undecodable row errors with id and seq', async () => {
      await store.journal.append([{ persistenceId: 'd/1', expectedSeq: 0, events: [1, 2] }]);
      await store.journal.append([{ persistenceId: 'd/1', expectedSeq: 2, events: [3] }]);
      await store.db.updateTable('journal').set({ format: 99 }).where('persistence_id', '=', 'd/1').where('seq_from', '=', 3).execute();
      const err = await readAll(store, 'd/1').then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(JournalDecodeError);
      expect(err).to.include({ persistenceId: 'd/1', seq: 3 });
      expect((err as Error).message).to.match(/format version 99/);
      await store.db.updateTable('journal').set({ format: 1, payload: new Uint8Array([0xc1, 0xc1]) }).where('persistence_id', '=', 'd/1').where('seq_from', '=', 3).execute();
      const err2 = await readAll(store, 'd/1').then(() => undefined, (e: unknown) => e);
      expect(err2).to.be.instanceOf(JournalDecodeError);
      expect(err2).to.include({ persistenceId: 'd/1', seq: 3 });
    });

    it('journal - rows stored in format 1 (before format 2) still read back, next to format 2 rows', async () => {
      const events = FORMAT_1_EVENTS;
      await store.journal.append([{ persistenceId: 'f1/1', expectedSeq: 0, events }]);
      await store.journal.append([{ persistenceId: 'f1/1', expectedSeq: 5, events: [{ type: 'Fill', qty: 5, px: 1, acc: 'a3' }] }]);
      // The first row as the format-1 codec wrote it.
      await store.db.updateTable('journal').set({ format: 1, payload: Buffer.from(FORMAT_1_ROW_HEX, 'hex') }).where('persistence_id', '=', 'f1/1').where('seq_from', '=', 1).execute();
      const rows = await store.db.selectFrom('journal').select(['seq_from', 'format']).where('persistence_id', '=', 'f1/1').orderBy('seq_from').execute();
      expect(rows.map((r) => [Number(r.seq_from), r.format])).to.deep.equal([[1, 1], [6, 2]]);
      expect((await readAll(store, 'f1/1')).events).to.deep.equal([...events, { type: 'Fill', qty: 5, px: 1, acc: 'a3' }]);
      expect((await readAll(store, 'f1/1', 3)).events).to.deep.equal([...events.slice(2), { type: 'Fill', qty: 5, px: 1, acc: 'a3' }]);
    });

    it('journal - resolves an append outcome by reading back the expected sequences', async () => {
      const w = [{ persistenceId: 'r/1', expectedSeq: 0, events: [{ a: 1 }] }, { persistenceId: 'r/2', expectedSeq: 0, events: [{ b: 2 }, { b: 3 }] }];
      expect(await store.journal.resolveAppend(w)).to.equal('absent');
      await store.journal.append(w);
      expect(await store.journal.resolveAppend(w)).to.equal('committed');
      const other = [{ persistenceId: 'r/1', expectedSeq: 0, events: [{ a: 'someone else' }] }];
      const e = await store.journal.resolveAppend(other).then(() => undefined, (x: unknown) => x);
      expect(e).to.be.instanceOf(JournalConflictError);
    });

    it('snapshots - save, load latest, keep N, delete journal behind the snapshot', async () => {
      const id = 's/1';
      for (let s = 0; s < 10; s++) await store.journal.append([{ persistenceId: id, expectedSeq: s * 10, events: Array.from({ length: 10 }, (_, i) => s * 10 + i + 1) }]);
      for (const seq of [10, 20, 35, 50]) await store.journal.saveSnapshot({ persistenceId: id, seq, data: new Uint8Array([seq]) });
      expect((await store.journal.loadSnapshot(id))?.seq).to.equal(50);
      expect((await store.journal.loadSnapshot(id, 34))?.data).to.deep.equal(new Uint8Array([20]));
      expect(await store.journal.keepSnapshots(id, 2)).to.equal(2);
      expect((await store.journal.loadSnapshot(id, 30))).to.equal(undefined);
      // Asks for 95 but the latest snapshot is at 50: only rows wholly at or below 50 go.
      expect(await store.journal.deleteEventsTo(id, 95)).to.equal(50);
      expect(await store.journal.highestSeq(id)).to.equal(100);
      const tail: unknown[] = [];
      for await (const p of store.journal.read(id, 51)) tail.push(...p.events);
      expect(tail).to.deep.equal(Array.from({ length: 50 }, (_, i) => 51 + i));
      const gap = await readAll(store, id, 1).then(() => undefined, (e: unknown) => e);
      expect(gap).to.be.instanceOf(JournalGapError);
      await store.journal.saveSnapshot({ persistenceId: id, seq: 100, data: new Uint8Array([1]) });
      await store.journal.deleteEventsTo(id, 100);
      expect(await store.journal.highestSeq(id), 'the newest row survives').to.equal(100);
      await store.journal.append([{ persistenceId: id, expectedSeq: 100, events: [101] }]);
      expect(await store.journal.append([{ persistenceId: id, expectedSeq: 0, events: [1] }]).then(() => 'ok', (e: unknown) => e)).to.be.instanceOf(JournalConflictError);
    });

    it('snapshots - PGlite reuses the space of snapshots deleted by keepSnapshots (it has no autovacuum)', async function () {
      if (dialect !== 'pglite') this.skip(); // a server's autovacuum does this, on its own schedule
      const id = 's/space';
      const size = async () => Number((await sql<{ n: string }>`select pg_total_relation_size('snapshots')::int8 as n`.execute(store.db)).rows[0]!.n);
      // Incompressible bytes (xorshift), so the table's size follows what is stored.
      let x = 2463534242;
      const data = () => {
        const b = new Uint8Array(256 * 1024);
        for (let i = 0; i < b.length; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          b[i] = x & 0xff;
        }
        return b;
      };
      let after3 = 0;
      for (let seq = 1; seq <= 12; seq++) {
        await store.journal.saveSnapshot({ persistenceId: id, seq, data: data() });
        await store.journal.keepSnapshots(id, 2);
        if (seq === 3) after3 = await size();
      }
      expect((await store.journal.loadSnapshot(id))?.seq).to.equal(12);
      // Nine more snapshots of 256 KiB each were saved; without a vacuum the table grew by all of them.
      expect(await size() - after3).to.be.below(256 * 1024);
    });
  });
}

describe('store journal upgrade [pglite]', function () {
  this.timeout(60_000);
  if (!testDialects().includes('pglite')) return;
  it('migrations - a store whose journal 004 wrote takes 005 (the check on journal_heads) and goes on: continued, new and stale writes as before', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-upgrade-'));
    try {
      const conn = await connect({ pglite: dir });
      try {
        await new Migrator({ db: conn.db, provider: migrationProvider }).migrateTo('004_journal_heads');
        const old = new StoreJournal(conn);
        await old.append([{ persistenceId: 'u/1', expectedSeq: 0, events: [1, 2] }, { persistenceId: 'u/2', expectedSeq: 0, events: [1] }]);
        await old.append([{ persistenceId: 'u/1', expectedSeq: 2, events: [3] }]);
      } finally {
        await conn.db.destroy();
      }
      const store = await openStore({ pglite: dir });
      try {
        const fn = await sql<{ d: string }>`select pg_get_functiondef('bourse_journal_append'::regproc) as d`.execute(store.db);
        expect(fn.rows[0]!.d).to.match(/update journal_heads/);
        await store.journal.append([{ persistenceId: 'u/1', expectedSeq: 3, events: [4] }, { persistenceId: 'u/3', expectedSeq: 0, events: [1] }]);
        const err = await failure(store.journal.append([{ persistenceId: 'u/2', expectedSeq: 0, events: ['again'] }]));
        expect((err as JournalConflictError).conflicts).to.deep.equal([{ persistenceId: 'u/2', expectedSeq: 0, actualSeq: 1 }]);
        expect([...(await store.journal.highestSeqs(['u/1', 'u/2', 'u/3']))]).to.deep.equal([['u/1', 4], ['u/2', 1], ['u/3', 1]]);
        expect((await readAll(store, 'u/1')).events).to.deep.equal([1, 2, 3, 4]);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

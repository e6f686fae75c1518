import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { JournalConflictError, type JournalWrite } from '@bourse/actors';
import { openStore, type Store } from '../src/index.js';
import { createTestTarget, testDialects, type TestTarget } from '../src/testing.js';
import { pglitePendingWalFiles, pgliteSyncCount, pgliteWalBytes, walPositionOf } from '../src/pglite-durable.js';
import { batchPlan } from './fixtures/plan.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const isTs = import.meta.url.endsWith('.ts');

/** Starts the writer child; resolves with it once it has acked `minAcks` batches. */
function startWriter(target: TestTarget, onAck: (b: number) => void): { pid: number; exited: Promise<number | null>; ready: Promise<void> } {
  const script = path.join(here, 'fixtures', isTs ? 'writer.ts' : 'writer.js');
  // PGlite: checkpoints every 256 KiB of WAL, so the kill also lands during and between checkpoints.
  const options = 'pglite' in target.options ? { ...target.options, journal: { checkpointWalBytes: 256 * 1024 } } : target.options;
  const child = spawn(process.execPath, [...(isTs ? ['--import', 'tsx'] : []), script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'ready') readyResolve();
      else if (line.startsWith('ack ')) onAck(Number(line.slice(4)));
    }
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { pid: child.pid!, exited, ready };
}

for (const dialect of testDialects()) {
  describe(`store durability [${dialect}]`, function () {
    this.timeout(60_000);

    it('kill mid-batch - after SIGKILL every batch is all there or absent, sequences contiguous, acked batches kept', async () => {
      const target = await createTestTarget(dialect);
      try {
        let acked = 0;
        const w = startWriter(target, (b) => (acked = b));
        await w.ready;
        const want = dialect === 'pg' ? 40 : 15;
        while (acked < want) await new Promise((r) => setTimeout(r, 5));
        // Kill at a random point inside the next few appends.
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        process.kill(w.pid, 'SIGKILL');
        await w.exited;
        const ackedAtKill = acked;

        const store = await openStore(target.options);
        try {
          const present = new Map<number, Map<string, number>>(); // batch -> id -> events seen
          const ids = new Set<string>();
          for (let b = 1; b <= ackedAtKill + 5; b++) for (const p of batchPlan(b)) ids.add(p.id);
          for (const id of ids) {
            let expect1 = 1;
            for await (const page of store.journal.read(id, 1)) {
              expect(page.fromSeq).to.equal(expect1);
              expect1 = page.toSeq + 1;
              for (const e of page.events as Array<{ b: number }>) {
                const m = present.get(e.b) ?? new Map<string, number>();
                m.set(id, (m.get(id) ?? 0) + 1);
                present.set(e.b, m);
              }
            }
            expect(expect1 - 1, `contiguous ${id}`).to.equal(await store.journal.highestSeq(id));
          }
          const maxBatch = Math.max(...present.keys());
          expect(maxBatch).to.be.at.least(ackedAtKill);
          for (let b = 1; b <= maxBatch; b++) {
            const got = present.get(b);
            expect(got, `batch ${b} present (batches are appended in order)`).to.not.equal(undefined);
            for (const { id, count } of batchPlan(b)) expect(got!.get(id), `batch ${b} ${id}`).to.equal(count);
          }
        } finally {
          await store.close();
        }
      } finally {
        await target.drop();
      }
    });

    it('concurrent writers - exactly one wins each sequence, the other gets the conflict error', async () => {
      const target = await createTestTarget(dialect);
      // Two stores (two pools) for pg; PGlite is one process's database, so two writers share it.
      const a = await openStore(target.options);
      const b = dialect === 'pg' ? await openStore(target.options) : a;
      try {
        const id = 'race/1';
        const ATTEMPTS = 60;
        const writer = async (store: Store, name: string) => {
          let known = 0;
          let wins = 0;
          let conflicts = 0;
          for (let i = 0; i < ATTEMPTS; i++) {
            try {
              await store.journal.append([{ persistenceId: id, expectedSeq: known, events: [{ name, i }] } as JournalWrite]);
              known++;
              wins++;
            } catch (e) {
              expect(e).to.be.instanceOf(JournalConflictError);
              const c = (e as JournalConflictError).conflicts[0]!;
              expect(c).to.include({ persistenceId: id, expectedSeq: known });
              expect(c.actualSeq).to.be.greaterThan(known);
              known = c.actualSeq;
              conflicts++;
            }
          }
          return { wins, conflicts };
        };
        const [ra, rb] = await Promise.all([writer(a, 'a'), writer(b, 'b')]);
        const all: Array<{ name: string; i: number }> = [];
        for await (const p of a.journal.read(id, 1)) all.push(...(p.events as Array<{ name: string; i: number }>));
        expect(all.length).to.equal(ra.wins + rb.wins);
        expect(await a.journal.highestSeq(id)).to.equal(all.length);
        expect(all.filter((e) => e.name === 'a').length).to.equal(ra.wins);
        expect(ra.conflicts + rb.conflicts, 'the writers raced').to.be.greaterThan(0);
        expect(ra.wins + ra.conflicts).to.equal(ATTEMPTS);
      } finally {
        await a.close();
        if (b !== a) await b.close();
        await target.drop();
      }
    });
  });
}

describe('store durability [pglite] - commits reach the disk', function () {
  this.timeout(60_000);

  // PGlite's Emscripten file system drops Postgres's fsync/fdatasync (src/pglite-durable.ts); without
  // the patch an acknowledged append sat in the OS page cache only. Count the host syncs around it.
  it('an append resolves only after its writes are fdatasync-ed on the host; a read syncs nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-durable-'));
    const store = await openStore({ pglite: dir });
    try {
      const pglite = store.connection.pglite!;
      expect(pglite, 'a PGlite store').to.not.equal(undefined);
      const before = pgliteSyncCount(pglite);
      await store.journal.append([{ persistenceId: 'durable/1', expectedSeq: 0, events: [{ type: 'x', n: 1 }] }]);
      const afterAppend = pgliteSyncCount(pglite);
      expect(afterAppend, 'host syncs made by one append').to.be.greaterThan(before);
      for await (const page of store.journal.read('durable/1', 1)) expect(page.events).to.have.length(1);
      expect(pgliteSyncCount(pglite), 'host syncs made by a read').to.equal(afterAppend);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // As on a server: a commit syncs the WAL only; the data files (here the journal table, which grows a
  // page at almost every append) are synced by Postgres's own checkpoint. Syncing them at every commit
  // doubled the fdatasyncs per append.
  it('an append syncs the WAL, not the data files; a checkpoint syncs the data files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-durable-'));
    const store = await openStore({ pglite: dir });
    try {
      const pglite = store.connection.pglite!;
      const appends = 100;
      const before = pgliteSyncCount(pglite);
      for (let i = 0; i < appends; i++) {
        const events = Array.from({ length: 20 }, (_, k) => ({ type: 'x', i, k, pad: 'p'.repeat(300) })); // ~6 kB: a new table page per append
        await store.journal.append([{ persistenceId: 'durable/2', expectedSeq: i * 20, events }]);
      }
      const synced = pgliteSyncCount(pglite) - before;
      // One WAL fdatasync per append, plus one per WAL segment (1 MB) closed on a switch; ~2 per append when data files were synced too.
      expect(synced, 'host syncs made by 100 appends').to.be.at.least(appends).and.below(appends * 1.2);
      const beforeCheckpoint = pgliteSyncCount(pglite);
      await pglite.query('CHECKPOINT');
      expect(pgliteSyncCount(pglite) - beforeCheckpoint, 'data files synced by a checkpoint').to.be.greaterThan(5);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Postgres's WAL flushes are stubs under PGlite; a checkpoint syncs pg_control and the data files
  // through our fsync. Unless the WAL goes first, a power cut could leave a synced pg_control pointing
  // at a checkpoint record that never reached the disk (Postgres would not start).
  it('a checkpoint syncs the WAL written so far before it makes anything else durable', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-durable-'));
    const store = await openStore({ pglite: dir, journal: { checkpointWalBytes: 0 } });
    try {
      const pglite = store.connection.pglite!;
      await pglite.query('create table scratch (n int)');
      await pglite.query('insert into scratch select generate_series(1, 1000)'); // not the journal: nothing syncs it
      expect(pglitePendingWalFiles(pglite), 'WAL written and not yet synced').to.be.greaterThan(0);
      await pglite.query('CHECKPOINT');
      expect(pglitePendingWalFiles(pglite), 'WAL left unsynced by the checkpoint').to.equal(0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // PGlite has no checkpointer and never checkpoints while open: its WAL grew without bound (1.5 GB in
  // 6 minutes of appends) and a restart after a crash replayed all of it. The journal checkpoints by
  // WAL volume; Postgres then recycles the segments before the checkpoint (renamed for reuse, so the
  // oldest segment name moves forward) instead of keeping every one.
  // Each commit rewrites the WAL page it ends in, so small appends write every 8 KiB page many times:
  // counting bytes written made the journal checkpoint ~7x more often than checkpointWalBytes says.
  it('the WAL volume the journal checkpoints by is the log\'s advance (as pg_current_wal_lsn), not the bytes written', async () => {
    expect(walPositionOf('000000010000000200000003', 1 << 20, 8192, 8192)).to.equal(2 * 2 ** 32 + 3 * (1 << 20) + 16384);
    expect(walPositionOf('xlogtemp.42', 1 << 20, 0, 8192)).to.equal(undefined);
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-walpos-'));
    const store = await openStore({ pglite: dir, journal: { checkpointWalBytes: 0 } });
    try {
      const pglite = store.connection.pglite!;
      const lsn = async () => {
        const { rows } = await pglite.query<{ l: string }>('select pg_current_wal_lsn()::text as l');
        const [hi, lo] = rows[0]!.l.split('/');
        return parseInt(hi!, 16) * 2 ** 32 + parseInt(lo!, 16);
      };
      const lsn0 = await lsn();
      const wal0 = pgliteWalBytes(pglite);
      for (let i = 0; i < 1500; i++) await store.journal.append([{ persistenceId: `walpos/${i % 10}`, expectedSeq: Math.floor(i / 10), events: [{ type: 'Fill', i, price: 6_500_000 + i, qty: 100 }] }]);
      const advanced = (await lsn()) - lsn0;
      const counted = pgliteWalBytes(pglite) - wal0;
      expect(advanced, 'the appends advanced the log by many pages').to.be.greaterThan(256 * 1024);
      // Postgres writes whole 8 KiB WAL pages: the furthest write ends at most a page past the log's end.
      expect(Math.abs(counted - advanced), `counted ${counted}, log advanced ${advanced}`).to.be.at.most(2 * 8192);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the journal checkpoints by WAL volume and the old WAL segments are recycled; everything appended reads back after reopening', async () => {
    const segments = (dir: string) => readdirSync(path.join(dir, 'pg_wal')).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    const run = async (checkpointWalBytes: number) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'bourse-ckpt-'));
      const store = await openStore({ pglite: dir, journal: { checkpointWalBytes } });
      const first = segments(dir)[0]!;
      for (let i = 0; i < APPENDS; i++) {
        const events = Array.from({ length: 20 }, (_, k) => ({ type: 'x', i, k, pad: `${i}`.repeat(1500) })); // ~70 kB of WAL an append
        await store.journal.append([{ persistenceId: `ckpt/${i % 7}`, expectedSeq: Math.floor(i / 7) * 20, events }]);
      }
      await new Promise((r) => setTimeout(r, 50)); // a checkpoint started by the last append
      const stats = { ...store.journal.checkpointStats };
      const oldest = segments(dir)[0]!;
      await store.close();
      if (process.env.STORE_DEBUG) console.log({ checkpointWalBytes, stats, first, oldest });
      return { dir, stats, first, oldest };
    };
    const APPENDS = 50;
    const never = await run(0);
    const every = await run(512 * 1024);
    try {
      expect(never.stats.checkpoints).to.equal(0);
      expect(never.oldest, 'without checkpoints the first WAL segment is still there').to.equal(never.first);
      expect(every.stats.checkpoints, 'checkpoints at 512 KiB').to.be.at.least(3);
      expect(every.stats.failures).to.equal(0);
      expect(every.oldest > every.first, `the oldest segment moved on (${every.first} -> ${every.oldest})`).to.equal(true);
      const store = await openStore({ pglite: every.dir });
      try {
        for (let id = 0; id < 7; id++) {
          let n = 0;
          for await (const page of store.journal.read(`ckpt/${id}`, 1)) n += page.events.length;
          expect(n, `ckpt/${id}`).to.equal(Math.ceil((APPENDS - id) / 7) * 20);
        }
      } finally {
        await store.close();
      }
    } finally {
      for (const d of [never.dir, every.dir]) rmSync(d, { recursive: true, force: true });
    }
  });
});

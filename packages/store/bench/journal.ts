/**
 * Journal benchmark: `pnpm run bench:journal --pg URL` or `--pglite DIR` [--seconds N].
 * Prints its method, then ONE JSON line last: eventsPerSec, replayEventsPerSec, commitP99Ms,
 * rawRowsPerSec, dialect (and a few more figures).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { Packr } from 'msgpackr';
import type { JournalWrite } from '@bourse/actors';
import { GroupCommitter } from '../src/group-commit.js';
import { migrate } from '../src/migrate.js';
import { openStore, type Store } from '../src/store.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const pgUrl = arg('--pg');
const pgliteDir = arg('--pglite');
const seconds = Number(arg('--seconds') ?? 4);
if (!pgUrl === !pgliteDir) {
  console.error('usage: journal.js (--pg URL | --pglite DIR) [--seconds N]');
  process.exit(2);
}
const dialect = pgUrl ? 'pg' : 'pglite';
const log = (s: string) => console.log(s);

// ---------------------------------------------------------------- workload

const IDS = dialect === 'pg' ? 2000 : 500;
const EVENTS_PER_ID_PER_BATCH = 32;
const HEX_POOL = Array.from({ length: 4099 }, () => randomBytes(12).toString('hex'));
let hexNext = 0;
/** Varied 24-char strings without paying for crypto per event (a pool of random ones, cycled). */
const hex = (_n: number) => HEX_POOL[hexNext++ % HEX_POOL.length]!;
let tradeId = 0;
/** A Fill-shaped event, ~130-150 bytes msgpack on its own. Strings differ per event. */
function makeEvent(i: number) {
  tradeId++;
  return {
    type: 'Fill',
    ts: 1_763_000_000_000 + tradeId,
    tradeId,
    price: 6_512_300 + (i % 977),
    qty: 1 + (i % 13),
    takerOrderId: 4_294_967_296 * 42 + tradeId,
    takerAccount: `acc-${i % 5000}`,
    takerSide: i & 1 ? 'buy' : 'sell',
    makerOrderId: 4_294_967_296 * 7 + tradeId,
    makerAccount: `acc-${(i * 7) % 5000}`,
    takerFee: 1234 + (i % 100),
    makerFee: 617,
    takerRemaining: i % 50,
    makerRemaining: (i * 3) % 50,
    clientOrderId: hex(12),
  };
}
const sampleEvents = Array.from({ length: EVENTS_PER_ID_PER_BATCH }, (_, i) => makeEvent(i));
const single = new Packr().pack(sampleEvents[0]).length;
const packedPerEvent = new Packr({ useRecords: true }).pack(sampleEvents).length / sampleEvents.length;

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

// ---------------------------------------------------------------- phases

async function rawRows(store: Store): Promise<number> {
  const db = store.db;
  await db.executeQuery(CompiledQuery.raw('create table if not exists bench_raw (persistence_id text not null, seq bigint not null, payload bytea not null)'));
  await db.executeQuery(CompiledQuery.raw('truncate bench_raw'));
  const ROWS = 500;
  const payload = randomBytes(170);
  const values: string[] = [];
  for (let r = 0; r < ROWS; r++) values.push(`($${r * 3 + 1}, $${r * 3 + 2}, $${r * 3 + 3})`);
  const text = `insert into bench_raw (persistence_id, seq, payload) values ${values.join(',')}`;
  let rows = 0;
  let seq = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    const params: unknown[] = [];
    for (let r = 0; r < ROWS; r++) params.push(`book/X-${r}`, ++seq, payload);
    await db.executeQuery(CompiledQuery.raw(text, params));
    rows += ROWS;
  }
  const rate = rows / ((performance.now() - t0) / 1000);
  await db.executeQuery(CompiledQuery.raw('drop table bench_raw'));
  return rate;
}

async function appendThroughput(store: Store, heads: Map<string, number>): Promise<{ rate: number; batches: number }> {
  const gc = new GroupCommitter(store.journal, { inFlightMax: dialect === 'pg' ? 2 : 1, batchEventsMax: (IDS / 2) * EVENTS_PER_ID_PER_BATCH });
  const ids = Array.from({ length: IDS }, (_, i) => `bench/${i}`);
  let events = 0;
  let ev = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  const outstanding = new Set<Promise<void>>();
  let round = 0;
  while (performance.now() < until) {
    // Each round, half of the ids write 32 events each; rounds alternate halves (actors take turns).
    const half = round++ % 2;
    const batch: Promise<void>[] = [];
    for (let k = half; k < IDS; k += 2) {
      const id = ids[k]!;
      const list = [];
      for (let j = 0; j < EVENTS_PER_ID_PER_BATCH; j++) list.push(makeEvent(ev++));
      const expectedSeq = heads.get(id) ?? 0;
      heads.set(id, expectedSeq + list.length);
      const p = gc.submit({ persistenceId: id, expectedSeq, events: list } as JournalWrite);
      batch.push(p);
    }
    const all = Promise.all(batch).then(() => {
      events += (IDS / 2) * EVENTS_PER_ID_PER_BATCH;
    });
    outstanding.add(all);
    void all.finally(() => outstanding.delete(all));
    // Backpressure: at most 2 rounds queued beyond what is committing.
    while (outstanding.size >= 3) await Promise.race(outstanding);
  }
  await Promise.all(outstanding);
  return { rate: events / ((performance.now() - t0) / 1000), batches: gc.batches };
}

async function replay(store: Store, heads: Map<string, number>): Promise<{ rate: number; events: number }> {
  const ids = [...heads.keys()];
  let events = 0;
  const t0 = performance.now();
  const CONCURRENCY = dialect === 'pg' ? 4 : 1;
  let next = 0;
  async function worker() {
    while (next < ids.length) {
      const id = ids[next++]!;
      for await (const page of store.journal.read(id, 1, { pageEventsMax: 16384 })) events += page.events.length;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const rate = events / ((performance.now() - t0) / 1000);
  for (const [id, h] of heads) if (h > 0 && events === 0) throw new Error(`nothing replayed for ${id}`);
  return { rate, events };
}

async function commitLatency(store: Store, heads: Map<string, number>, offeredPerSec: number): Promise<{ p50: number; p99: number; p999: number; max: number; achieved: number }> {
  const gc = new GroupCommitter(store.journal, { inFlightMax: dialect === 'pg' ? 2 : 1 });
  const TICK_MS = 1;
  const perTick = Math.round((offeredPerSec * TICK_MS) / 1000); // 100 events per ms
  const WRITES_PER_TICK = 10; // 10 actors × 10 events each per ms
  const ids = Array.from({ length: 1000 }, (_, i) => `lat/${i}`);
  const latencies: number[] = [];
  let ev = 0;
  let done = 0;
  const t0 = performance.now();
  const total = Math.round((seconds * 1000) / TICK_MS);
  const warmupTicks = Math.round(500 / TICK_MS);
  const pending: Promise<void>[] = [];
  let cursor = 0;
  for (let tick = 0; tick < total; tick++) {
    const intended = t0 + tick * TICK_MS;
    // Open loop: wait for the tick's intended time (never for commits), then offer its events.
    const wait = intended - performance.now();
    if (wait > 0.5) await new Promise((r) => setTimeout(r, Math.floor(wait)));
    else if (tick % 8 === 0) await new Promise((r) => setImmediate(r));
    for (let w = 0; w < WRITES_PER_TICK; w++) {
      const id = ids[cursor++ % ids.length]!;
      const list = [];
      for (let j = 0; j < perTick / WRITES_PER_TICK; j++) list.push(makeEvent(ev++));
      const expectedSeq = heads.get(id) ?? 0;
      heads.set(id, expectedSeq + list.length);
      const record = tick >= warmupTicks;
      pending.push(
        gc.submit({ persistenceId: id, expectedSeq, events: list }).then(() => {
          done += list.length;
          // Latency from the intended offer time: includes any time the generator itself fell behind.
          if (record) latencies.push(performance.now() - intended);
        }),
      );
    }
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), p999: pct(latencies, 99.9), max: latencies.at(-1) ?? NaN, achieved: done / elapsed };
}

// ---------------------------------------------------------------- main

async function main() {
  let store: Store;
  let cleanup: () => Promise<void>;
  if (pgUrl) {
    const schema = `bourse_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
    await migrate(pgUrl, { schema });
    store = await openStore({ pg: pgUrl, schema, poolMax: 4 });
    cleanup = async () => {
      await store.close();
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      await c.query(`drop schema ${schema} cascade`);
      await c.end();
    };
  } else {
    const dir = path.join(pgliteDir!, `bench-${process.pid}-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
    store = await openStore({ pglite: dir });
    cleanup = async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  try {
    log(`# bench:journal — dialect ${dialect}, ${seconds} s per phase, node ${process.version}`);
    log(`# event: a Fill-shaped object, ${single} bytes msgpack alone, ${round(packedPerEvent, 1)} bytes/event packed ${EVENTS_PER_ID_PER_BATCH} to a row (msgpackr records)`);
    const heads = new Map<string, number>();
    // Warm-up: one short round of each path (JIT, plan cache, table files).
    {
      const w = new GroupCommitter(store.journal);
      await Promise.all(Array.from({ length: 50 }, (_, i) => w.submit({ persistenceId: `warm/${i}`, expectedSeq: 0, events: sampleEvents })));
    }

    const lat = await commitLatency(store, heads, 100_000);
    log(
      `commit latency: open loop at 100k events/s offered (every 1 ms: 10 writes × 10 events over 1000 ids), group commit with no linger, ` +
        `latency from the intended offer time to commit ack (coordinated omission corrected), first 0.5 s excluded, ${seconds} s: ` +
        `p50 ${round(lat.p50)} ms, p99 ${round(lat.p99)} ms, p99.9 ${round(lat.p999)} ms, max ${round(lat.max)} ms, achieved ${Math.round(lat.achieved)} events/s`,
    );
    const raw = await rawRows(store);
    log(`raw reference: plain multi-row INSERT of 500 rows (text id, int8, 170-byte bytea ≈ 200 bytes/row), one connection, sequential, ${seconds} s: ${Math.round(raw)} rows/s`);

    const app = await appendThroughput(store, heads);
    log(
      `append: group commit through GroupCommitter (${dialect === 'pg' ? 2 : 1} append(s) in flight), ${IDS} persistence ids, each round half of them write ${EVENTS_PER_ID_PER_BATCH} events each ` +
        `(${(IDS / 2) * EVENTS_PER_ID_PER_BATCH} events/append, one row per id), events built and encoded inside the timing, ${seconds} s: ${Math.round(app.rate)} events/s in ${app.batches} appends`,
    );

    const rep = await replay(store, heads);
    log(`replay: journal.read from seq 1 of every id (${IDS} ids, ${rep.events} events), pages of ≤16384 events, decoded to objects, ${dialect === 'pg' ? 4 : 1} reader(s): ${Math.round(rep.rate)} events/s`);

    console.log(
      JSON.stringify({
        dialect,
        eventsPerSec: Math.round(app.rate),
        replayEventsPerSec: Math.round(rep.rate),
        commitP99Ms: round(lat.p99),
        rawRowsPerSec: Math.round(raw),
        commitP50Ms: round(lat.p50),
        commitP999Ms: round(lat.p999),
        commitMaxMs: round(lat.max),
        latencyAchievedEventsPerSec: Math.round(lat.achieved),
        eventsVsRaw: round(app.rate / raw),
        eventBytesAlone: single,
        eventBytesPacked: round(packedPerEvent, 1),
      }),
    );
  } finally {
    await cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

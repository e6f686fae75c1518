/**
 * Journal benchmark: `pnpm run bench:journal --pg URL` or `--pglite DIR` [--seconds N].
 * Prints its method, then ONE JSON line last: eventsPerSec, replayEventsPerSec, commitP99Ms,
 * rawRowsPerSec, dialect (and a few more figures).
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { Packr } from 'msgpackr';
import type { JournalWrite } from '@bourse/actors';
import { GroupCommitter } from '../src/group-commit.js';
import { migrate } from '../src/migrate.js';
import { openStore, type Store } from '../src/store.js';
import { StoreJournal } from '../src/journal.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const pgUrl = arg('--pg');
const pgliteDir = arg('--pglite');
const seconds = Number(arg('--seconds') ?? 4);
/** `--only latency`: just the commit-latency phase (for repeated measurement); prints its JSON. */
const only = arg('--only');
if (!pgUrl === !pgliteDir) {
  console.error('usage: journal.js (--pg URL | --pglite DIR) [--seconds N] [--only latency] [--rate EVENTS_PER_SEC] [--in-flight N] [--bare-probe] [--no-checkpoint]');
  process.exit(2);
}
const dialect = pgUrl ? 'pg' : 'pglite';
/** Appends in flight at once in the commit-latency phase (pg; PGlite has one session: always 1). Default 4. */
const latencyInFlight = dialect === 'pg' ? Number(arg('--in-flight') ?? 4) : 1;
/** Offered rate of the commit-latency phase, events/s. Default 100000 (the figure). */
const latencyRate = Number(arg('--rate') ?? 100_000);
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

async function replay(journal: StoreJournal, heads: Map<string, number>): Promise<{ rate: number; events: number; cpuUsPerEvent: number }> {
  const ids = [...heads.keys()];
  let events = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const CONCURRENCY = dialect === 'pg' ? 4 : 1;
  let next = 0;
  async function worker() {
    while (next < ids.length) {
      const id = ids[next++]!;
      for await (const page of journal.read(id, 1, { pageEventsMax: 16384 })) events += page.events.length;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const rate = events / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  for (const [id, h] of heads) if (h > 0 && events === 0) throw new Error(`nothing replayed for ${id}`);
  return { rate, events, cpuUsPerEvent: (cpu.user + cpu.system) / events };
}

interface LatencyResult {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** Events acknowledged per second over the whole phase. */
  achieved: number;
  /** Events actually handed to the committer per second over the offering window. */
  offered: number;
  /** How late the generator was in sending, against each write's intended send time. */
  lagP50: number;
  lagP99: number;
  lagMax: number;
  /** Event-loop delay over the phase (ms), from perf_hooks. */
  loopP99: number;
  /** CPU this process used during the phase, % of one core (generator + committer + driver). */
  cpuPct: number;
  /** The appends (transactions) the committer made: count, mean events, duration p50/p99 (ms). */
  appends: number;
  appendEventsMean: number;
  appendP50: number;
  appendP99: number;
  /** The generator could not keep its schedule: its p99 lag is over 2 ms (timer grain is ~1 ms) or it offered < 97% of the target. */
  starved: boolean;
}

/**
 * The environment's own commit latency, measured during the latency phase: a one-row INSERT, each its
 * own transaction (one WAL flush), 100 times a second, from a worker thread with its own connection and
 * event loop (so the bench's event loop does not colour it). A physical reference for `commitP99Ms`:
 * group commit cannot beat the flush it waits for. Postgres server only.
 */
function startBareCommitProbe(url: string, schema: string): { stop(): Promise<{ p50: number; p99: number; n: number }> } {
  const pgPath = createRequire(import.meta.url).resolve('pg');
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const pg = require(workerData.pgPath);
     (async () => {
       const c = new pg.Client({ connectionString: workerData.url, options: '-c search_path=' + workerData.schema });
       await c.connect();
       await c.query('create table if not exists bench_commit_probe (k int)');
       const ms = [];
       let stop = false;
       parentPort.on('message', () => { stop = true; });
       while (!stop) {
         const t = performance.now();
         await c.query('insert into bench_commit_probe values (1)');
         ms.push(performance.now() - t);
         await new Promise((r) => setTimeout(r, 10));
       }
       await c.end();
       parentPort.postMessage(ms);
     })().catch((e) => parentPort.postMessage({ error: String(e) }));`,
    { eval: true, workerData: { pgPath, url, schema } },
  );
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        w.once('message', (ms: number[] | { error: string }) => {
          void w.terminate();
          if (!Array.isArray(ms)) return reject(new Error(`commit probe: ${ms.error}`));
          ms.sort((a, b) => a - b);
          resolve({ p50: pct(ms, 50), p99: pct(ms, 99), n: ms.length });
        });
        w.postMessage('stop');
      }),
  };
}

/**
 * The server's WAL before the latency phase. Postgres zero-fills each new 16 MB WAL segment it has to
 * create, and every commit waits meanwhile: measured here, stalls of 60-80 ms about once per 1.1 s at
 * 100k events/s, which alone put commit p99 at 40-77 ms. A server in steady state recycles the segments
 * its checkpoints free instead of creating new ones, so by default the phase starts after a CHECKPOINT
 * (needs superuser or pg_checkpoint; noted as not done otherwise, or with `--no-checkpoint`). Either way
 * the figures include how many segments the server created during the phase (needs pg_monitor).
 */
async function walSteadyState(store: Store, checkpoint: boolean): Promise<{ checkpointed: boolean; segmentsCreated(): Promise<number | undefined> }> {
  const q = async <R>(sql: string): Promise<R[] | undefined> => {
    try {
      return (await store.db.executeQuery<R>(CompiledQuery.raw(sql))).rows;
    } catch {
      return undefined;
    }
  };
  const checkpointed = checkpoint && (await q('checkpoint')) !== undefined;
  const count = async () => {
    const rows = await q<{ n: string | number }>('select count(*) as n from pg_ls_waldir()');
    return rows ? Number(rows[0]!.n) : undefined;
  };
  const before = await count();
  return {
    checkpointed,
    segmentsCreated: async () => {
      const after = await count();
      return before === undefined || after === undefined ? undefined : Math.max(0, after - before);
    },
  };
}

/**
 * Open-loop commit latency. Every write has an intended send time on a fixed schedule
 * (`t0 + k * intervalMs`), fixed before the run; the generator sends each write at (or, if it fell
 * behind, as soon as possible after) that time, never waiting for a commit. Latency runs from the
 * intended time to the ack, so a stalled generator or committer shows up in the figures instead of
 * silently lowering the load (no coordinated omission). The generator's own lag (actual − intended
 * send time) and the achieved offered rate are reported, so a starved run is visible as such.
 */
async function commitLatency(store: Store, heads: Map<string, number>, offeredPerSec: number): Promise<LatencyResult> {
  // The journal seen through a meter: how long each append (one transaction) takes and how big it is.
  const appendMs: number[] = [];
  let appendEvents = 0;
  const metered = Object.create(store.journal) as StoreJournal;
  metered.append = async (writes, opts) => {
    const a = performance.now();
    await store.journal.append(writes, opts);
    appendMs.push(performance.now() - a);
    for (const w of writes) appendEvents += w.events.length;
  };
  const gc = new GroupCommitter(metered, { inFlightMax: latencyInFlight });
  const WRITE_EVENTS = 10; // each write: one actor's 10 events
  const intervalMs = (WRITE_EVENTS * 1000) / offeredPerSec; // 0.1 ms between writes at 100k/s
  const ids = Array.from({ length: 1000 }, (_, i) => `lat/${i}`);
  const total = Math.round((seconds * 1000) / intervalMs);
  const warmup = Math.round(500 / intervalMs);
  const latencies: number[] = [];
  const lags: number[] = [];
  const pending: Promise<void>[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let ev = 0;
  let done = 0;
  loop.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let k = 0;
  let lastSend = t0;
  while (k < total) {
    const now = performance.now();
    const due = t0 + k * intervalMs;
    if (due > now) {
      // Ahead of schedule: sleep until the next write is due. Timers have a ~1 ms grain, so writes
      // leave in small bursts; each keeps its own intended time, so the grain is counted as lag and
      // latency, never hidden. (No busy-wait: on a shared 2-core machine it would starve Postgres.)
      await new Promise((r) => setTimeout(r, Math.max(1, Math.floor(due - now))));
      continue;
    }
    // Send every write that is due now, each stamped with its own intended time. No cap on a
    // catch-up burst: capping it would quietly lower the offered rate whenever the thread was blocked
    // (PGlite fsyncs on this thread), which is exactly the coordinated omission to avoid. But yield
    // after each burst, so acks and replies are processed even when the generator is always behind.
    while (k < total && t0 + k * intervalMs <= now) {
      const intended = t0 + k * intervalMs;
      const id = ids[k % ids.length]!;
      const list = [];
      for (let j = 0; j < WRITE_EVENTS; j++) list.push(makeEvent(ev++));
      const expectedSeq = heads.get(id) ?? 0;
      heads.set(id, expectedSeq + list.length);
      const record = k >= warmup;
      const sentAt = performance.now();
      if (record) lags.push(sentAt - intended);
      pending.push(
        gc.submit({ persistenceId: id, expectedSeq, events: list }).then(() => {
          done += list.length;
          if (record) latencies.push(performance.now() - intended);
        }),
      );
      k++;
      lastSend = sentAt;
    }
    await new Promise((r) => setImmediate(r));
  }
  const offeredWindow = (lastSend - t0) / 1000;
  await Promise.all(pending);
  loop.disable();
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  const appendEventsMean = appendEvents / Math.max(1, appendMs.length);
  appendMs.sort((a, b) => a - b);
  const offered = (total * WRITE_EVENTS) / Math.max(offeredWindow, seconds - intervalMs / 1000);
  const lagP99 = pct(lags, 99);
  return {
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    p999: pct(latencies, 99.9),
    max: latencies.at(-1) ?? NaN,
    achieved: done / elapsed,
    offered,
    lagP50: pct(lags, 50),
    lagP99,
    lagMax: lags.at(-1) ?? NaN,
    loopP99: loop.percentile(99) / 1e6,
    cpuPct: (100 * (cpu.user + cpu.system)) / 1e6 / elapsed,
    appends: appendMs.length,
    appendEventsMean,
    appendP50: pct(appendMs, 50),
    appendP99: pct(appendMs, 99),
    starved: lagP99 > 2 || offered < 0.97 * offeredPerSec,
  };
}

// ---------------------------------------------------------------- main

async function main() {
  let store: Store;
  let cleanup: () => Promise<void>;
  let benchSchema = '';
  if (pgUrl) {
    const schema = `bourse_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
    benchSchema = schema;
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

    const load0 = loadavg()[0]!;
    // Opt-in: on 2 cores the probe's thread competes with the generator (A/B at load 1-2: commitP99 54-258 ms
    // with it, 31-50 ms without), so it would perturb the figure it is meant to be a reference for.
    const wal = pgUrl ? await walSteadyState(store, !args.includes('--no-checkpoint')) : undefined;
    const probe = pgUrl && args.includes('--bare-probe') ? startBareCommitProbe(pgUrl, benchSchema) : undefined;
    const lat = await commitLatency(store, heads, latencyRate);
    const bare = probe ? await probe.stop() : undefined;
    const walCreated = wal ? await wal.segmentsCreated() : undefined;
    log(
      `commit latency: open loop at ${latencyRate} events/s offered (a write of 10 events every ${round(10_000 / latencyRate, 3)} ms, over 1000 ids, each at its intended send time), ` +
        `group commit with no linger, ${latencyInFlight} append(s) in flight, ` +
        `latency from the intended send time to the commit ack (coordinated-omission free), first 0.5 s excluded, ${seconds} s: ` +
        `p50 ${round(lat.p50)} ms, p99 ${round(lat.p99)} ms, p99.9 ${round(lat.p999)} ms, max ${round(lat.max)} ms; ` +
        `offered ${Math.round(lat.offered)} events/s, acked ${Math.round(lat.achieved)} events/s; generator lag p50 ${round(lat.lagP50, 3)} ms, p99 ${round(lat.lagP99, 3)} ms, max ${round(lat.lagMax)} ms; ` +
        `event-loop delay p99 ${round(lat.loopP99)} ms; this process used ${Math.round(lat.cpuPct)}% of a core; ${lat.appends} appends of ${Math.round(lat.appendEventsMean)} events on average, append p50 ${round(lat.appendP50)} ms, p99 ${round(lat.appendP99)} ms; load average ${round(load0)}${lat.starved ? ' — STARVED: the generator could not keep its schedule, latency figures are pessimistic' : ''}`,
    );
    if (wal) log(`server WAL: ${wal.checkpointed ? 'CHECKPOINT before the phase (so the server recycles old WAL segments, as in steady state)' : 'no CHECKPOINT before the phase'}; new WAL segments the server created during it: ${walCreated ?? 'unknown (needs pg_monitor)'}. Each new 16 MB segment is zero-filled (wal_init_zero) while every commit waits: stalls of 60-80 ms, about one per 1.1 s at 100k events/s, measured here.`);
    if (bare) log(`bare commit meanwhile (reference): a one-row INSERT per transaction, 100/s from another thread and connection: p50 ${round(bare.p50)} ms, p99 ${round(bare.p99)} ms (${bare.n} commits)`);
    const bareJson = {
      ...(bare ? { bareCommitP50Ms: round(bare.p50), bareCommitP99Ms: round(bare.p99) } : {}),
      ...(wal ? { walCheckpointed: wal.checkpointed, walSegmentsCreated: walCreated ?? null } : {}),
    };
    if (only === 'latency') {
      console.log(JSON.stringify({ dialect, only, rate: latencyRate, inFlight: latencyInFlight, commitP99Ms: round(lat.p99), commitP50Ms: round(lat.p50), commitP999Ms: round(lat.p999), commitMaxMs: round(lat.max),
        latencyOfferedEventsPerSec: Math.round(lat.offered), generatorLagP99Ms: round(lat.lagP99, 3), eventLoopDelayP99Ms: round(lat.loopP99), generatorStarved: lat.starved,
        latencyAppendP50Ms: round(lat.appendP50), latencyAppendP99Ms: round(lat.appendP99), cpuPct: Math.round(lat.cpuPct), appendEventsMean: Math.round(lat.appendEventsMean), ...bareJson, loadAvg1m: round(loadavg()[0]!) }));
      return;
    }
    const raw = await rawRows(store);
    log(`raw reference: plain multi-row INSERT of 500 rows (text id, int8, 170-byte bytea ≈ 200 bytes/row), one connection, sequential, ${seconds} s: ${Math.round(raw)} rows/s`);

    const app = await appendThroughput(store, heads);
    log(
      `append: group commit through GroupCommitter (${dialect === 'pg' ? 2 : 1} append(s) in flight), ${IDS} persistence ids, each round half of them write ${EVENTS_PER_ID_PER_BATCH} events each ` +
        `(${(IDS / 2) * EVENTS_PER_ID_PER_BATCH} events/append, one row per id), events built and encoded inside the timing, ${seconds} s: ${Math.round(app.rate)} events/s in ${app.batches} appends`,
    );

    const rep = await replay(store.journal, heads);
    log(
      `replay: journal.read from seq 1 of every id (${heads.size} ids, ${rep.events} events), pages of ≤16384 events, decoded to objects, ${dialect === 'pg' ? 4 : 1} reader(s)` +
        `${dialect === 'pg' ? ', rows fetched by binary COPY' : ''}: ${Math.round(rep.rate)} events/s (this process: ${round(rep.cpuUsPerEvent, 3)} µs CPU per event)`,
    );
    // For comparison on pg: the same replay through an ordinary query (bytea as hex text).
    const repQ = dialect === 'pg' ? await replay(new StoreJournal(store.connection, { copyReads: false }), heads) : undefined;
    if (repQ) log(`replay, same but rows fetched by a plain query (bytea as hex text): ${Math.round(repQ.rate)} events/s (${round(repQ.cpuUsPerEvent, 3)} µs CPU per event)`);

    console.log(
      JSON.stringify({
        dialect,
        eventsPerSec: Math.round(app.rate),
        replayEventsPerSec: Math.round(rep.rate),
        replayCpuUsPerEvent: round(rep.cpuUsPerEvent, 3),
        ...(repQ ? { replayQueryPathEventsPerSec: Math.round(repQ.rate), replayQueryPathCpuUsPerEvent: round(repQ.cpuUsPerEvent, 3) } : {}),
        commitP99Ms: round(lat.p99),
        latencyRate,
        latencyInFlight,
        rawRowsPerSec: Math.round(raw),
        commitP50Ms: round(lat.p50),
        commitP999Ms: round(lat.p999),
        commitMaxMs: round(lat.max),
        latencyAchievedEventsPerSec: Math.round(lat.achieved),
        latencyOfferedEventsPerSec: Math.round(lat.offered),
        generatorLagP99Ms: round(lat.lagP99, 3),
        generatorLagMaxMs: round(lat.lagMax),
        eventLoopDelayP99Ms: round(lat.loopP99),
        generatorStarved: lat.starved,
        latencyAppendP50Ms: round(lat.appendP50),
        latencyAppendP99Ms: round(lat.appendP99),
        latencyCpuPct: Math.round(lat.cpuPct),
        ...bareJson,
        loadAvg1m: round(loadavg()[0]!),
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

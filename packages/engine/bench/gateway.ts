/**
 * Gateway throughput: orders/s through `EmbeddedVenue` (the engine actors on one ActorNode, group
 * commit, reliable saga messages) on PGlite and on Postgres, with ack latency.
 *
 *   pnpm exec tsc -b packages/engine && node packages/engine/dist/bench/gateway.js [--seconds 5] [--clients 64] [--window 64]
 *        [--accounts 32] [--pg URL | --no-pg] [--no-pglite] [--projections] [--window-us 500] [--in-flight 256] [--queue-wait-ms 0] [--no-store-thread] [--rate N]
 *
 * Method: one instrument, `--accounts` funded accounts. `--clients` closed-loop clients each keep
 * `--window` placeOrder calls in flight (so up to clients×window outstanding), back to back for
 * `--seconds` after a 1 s warm-up. Each order is a limit of 1–5 lots on a random side: half GTC
 * 1–5 ticks on the passive side of mid (they rest), half IOC 1–5 ticks through mid (they fill against
 * the resting ones: settlement on both sides, fees, market data all run; the book stays bounded). The
 * answer is the gateway's: resolved once the ledger's hold and the book's decision are committed.
 * Latency = answer time − call time per order (closed loop: no schedule, so it shows queueing at
 * this concurrency, not latency at a fixed rate). With `--rate N` the load is open loop instead: N
 * orders/s on a fixed schedule, latency from each order's due time (free of coordinated omission). Projections (read models) off unless
 * `--projections`. Postgres URL: --pg, else BOURSE_PG_URL, else .bourse/services.json; a run whose
 * store cannot be opened reports its error instead. Prints the method, then ONE JSON line last.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { defineInstrument } from '@bourse/schemas';
import { migrate, openStore } from '@bourse/store';
import { MemoryJournal } from '@bourse/actors';
import { openEmbeddedVenue } from '../src/host/index.js';
import type { EmbeddedTarget } from '../src/host/index.js';

const args = process.argv.slice(2);
const flag = (n: string) => args.includes(`--${n}`);
const opt = (n: string, d: number) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const seconds = opt('seconds', 5);
const clients = opt('clients', 64);
const window = opt('window', 64);
const accounts = opt('accounts', 32);
const windowUs = opt('window-us', 500);

function pgUrl(): string {
  const i = args.indexOf('--pg');
  if (i >= 0) return args[i + 1]!;
  if (process.env.BOURSE_PG_URL) return process.env.BOURSE_PG_URL;
  let dir = process.cwd();
  for (let k = 0; k < 6; k++) {
    const f = path.join(dir, '.bourse', 'services.json');
    if (existsSync(f)) return (JSON.parse(readFileSync(f, 'utf8')) as { pgUrl: string }).pgUrl;
    dir = path.dirname(dir);
  }
  return 'postgres://postgres@127.0.0.1:5432/test';
}

const SPOT = defineInstrument({ symbol: 'BTC-USD', tickSize: 1, lotSize: 1, minQty: 1, maxQty: 1_000, makerFeeBps: 1, takerFeeBps: 2 });
const ctx = { traceId: 'bench' };

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 1000) / 1000;
}

async function run(target: EmbeddedTarget | { memory: true }) {
  if ('memory' in target) target = { journal: new MemoryJournal() };
  const v = await openEmbeddedVenue(target, { instruments: [SPOT], tickMs: 0, projectionIntervalMs: flag('projections') ? 100 : 0, groupCommit: { windowUs }, ordersInFlightMax: opt('in-flight', 256), ordersQueuedMaxWaitMs: opt('queue-wait-ms', 0), storeThread: !flag('no-store-thread') });
  try {
    const names = Array.from({ length: accounts }, (_, i) => `b${i}`);
    for (const a of names) {
      await v.openAccount(a, ctx);
      await v.deposit(a, 'USD', 1e12, `u-${a}`, ctx);
      await v.deposit(a, 'BTC', 1e9, `b-${a}`, ctx);
    }
    let rng = 12345;
    const rand = (n: number) => {
      rng = (rng * 1103515245 + 12345) & 0x7fffffff;
      return (rng >>> 12) % n; // the low bits of this LCG alternate
    };
    let measuring = false;
    let stop = false;
    let acked = 0;
    let rejected = 0;
    let errors = 0;
    const lat: number[] = [];
    const codes = new Map<number, number>();
    let seq = 0;
    const client = async (c: number) => {
      const one = async (): Promise<void> => {
        while (!stop) {
          const buy = rand(2) === 0;
          // Half rest on the passive side (GTC), half cross (IOC): the book stays about the same size.
          const cross = rand(2) === 0;
          const price = 10_000 + (buy === cross ? 1 : -1) * (1 + rand(5));
          const t0 = performance.now();
          const m = measuring;
          try {
            const r = await v.placeOrder(names[(c + seq++) % accounts]!, { symbol: SPOT.symbol, side: buy ? 'buy' : 'sell', orderType: 'limit', tif: cross ? 'IOC' : 'GTC', price, qty: 1 + rand(5) }, ctx);
            if (m && measuring) {
              if (r.ok) acked++;
              else {
                rejected++;
                codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
              }
              lat.push(performance.now() - t0);
            }
          } catch {
            errors++;
          }
        }
      };
      await Promise.all(Array.from({ length: window }, one));
    };
    const rate = opt('rate', 0);
    // Open loop (--rate N): orders are due at a fixed schedule; latency counts from the due time, so
    // queueing behind a slow answer is measured (no coordinated omission).
    const openLoop = async (): Promise<void> => {
      const t0 = performance.now();
      let sent = 0;
      const pending: Promise<void>[] = [];
      while (!stop) {
        // Orders 0..due-1 are due by now (order k at t0 + k/rate), so each leaves at its due time,
        // not one period later.
        const due = Math.floor(((performance.now() - t0) * rate) / 1000) + 1;
        for (; sent < due; sent++) {
          const at = t0 + (sent * 1000) / rate;
          const buy = rand(2) === 0;
          const cross = rand(2) === 0;
          const price = 10_000 + (buy === cross ? 1 : -1) * (1 + rand(5));
          const m = measuring;
          pending.push(
            v.placeOrder(names[sent % accounts]!, { symbol: SPOT.symbol, side: buy ? 'buy' : 'sell', orderType: 'limit', tif: cross ? 'IOC' : 'GTC', price, qty: 1 + rand(5) }, ctx).then(
              (r) => {
                if (!m || !measuring) return;
                if (r.ok) acked++;
                else rejected++;
                lat.push(performance.now() - at);
              },
              () => void errors++,
            ),
          );
          if (pending.length > 4096) pending.splice(0, 2048);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await Promise.all(pending);
    };
    const all = rate > 0 ? openLoop() : Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
    await new Promise((r) => setTimeout(r, 1_000));
    const s0 = { ...v.journal.stats };
    measuring = true;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    measuring = false;
    const dt = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const s1 = { ...v.journal.stats };
    stop = true;
    await all;
    lat.sort((a, b) => a - b);
    const appends = s1.appends - s0.appends;
    return {
      ordersPerSec: Math.round((acked + rejected) / dt),
      acked,
      rejected,
      errors,
      rejectCodes: Object.fromEntries(codes),
      ackP50Ms: pct(lat, 50),
      ackP99Ms: pct(lat, 99),
      ackP999Ms: pct(lat, 99.9),
      appendsPerSec: Math.round(appends / dt),
      recordsPerAppend: appends ? Math.round((s1.records - s0.records) / appends) : 0,
      rowsPerAppend: appends ? Math.round(((s1.rows - s0.rows) / appends) * 10) / 10 : 0,
      appendMsAvg: appends ? Math.round(((s1.appendMs - s0.appendMs) / appends) * 100) / 100 : 0,
      cpuPct: Math.round(((cpu.user + cpu.system) / 1e4 / dt) * 10) / 10,
      cpuUsPerOrder: acked + rejected ? Math.round((cpu.user + cpu.system) / (acked + rejected)) : 0,
      node: { ...v.node.stats },
    };
  } finally {
    await v.close();
  }
}

console.log(
  `gateway bench: EmbeddedVenue.placeOrder, ${opt('rate', 0) > 0 ? `open loop at ${opt('rate', 0)} orders/s (latency from the due time)` : `closed loop, ${clients} clients x ${window} in flight`}, ${accounts} accounts, 1 instrument, ` +
    `half GTC resting / half IOC crossing limits of 1-5 lots, ${seconds}s measured after 1s warm-up, group-commit window ${windowUs}us, ` +
    `store ${flag('no-store-thread') ? 'on the engine thread' : 'on its own worker thread'}, at most ${opt('in-flight', 256)} orders in the saga (the rest queue at the gateway; shedding by queue wait ${opt('queue-wait-ms', 0) > 0 ? `past ${opt('queue-wait-ms', 0)} ms` : 'off, so the closed loop measures capacity at its concurrency, not a storm of rejects'}), projections ${flag('projections') ? 'on (100 ms)' : 'off'}; latency = call to committed answer (closed loop)`,
);
const result: Record<string, unknown> = { bench: 'gateway', rate: opt('rate', 0), seconds, clients, window, accounts, windowUs, inFlight: opt('in-flight', 256), queueWaitMs: opt('queue-wait-ms', 0), storeThread: !flag('no-store-thread') };
if (flag('memory')) result.memory = await run({ memory: true });
if (!flag('no-pglite')) {
  const dir = mkdtempSync(path.join(tmpdir(), 'bourse-bench-'));
  try {
    result.pglite = await run({ pglite: dir });
  } catch (e) {
    result.pglite = { error: String(e) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (!flag('no-pg')) {
  const url = pgUrl();
  const schema = `bourse_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  try {
    await migrate(url, { schema, connectTimeoutMs: 3_000 });
    result.pg = await run({ pg: url, schema });
  } catch (e) {
    result.pg = { error: String(e) };
  } finally {
    try {
      const st = await openStore({ pg: url, schema, connectTimeoutMs: 3_000 });
      await st.db.schema.dropSchema(schema).ifExists().cascade().execute();
      await st.close();
    } catch {
      /* nothing to drop */
    }
  }
}
console.log(JSON.stringify(result));

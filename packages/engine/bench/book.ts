/**
 * Order book benchmark: the book state machine with full event emission, on a standard workload.
 *
 *   pnpm run bench:book --workload FILE [--accounts 16] [--passes 3]
 *   (FILE from: node ../shared/workloads/gen-book.mjs --ops 1000000 --seed 42 --out FILE)
 *
 * Method: the workload is read and parsed fully into command objects first. Ops map to commands:
 * L → NewOrder GTC limit, I → NewOrder IOC limit, C → CancelOrder, P → AmendOrder{price},
 * R → AmendOrder{qty}. AmendOrder.qty is the new *total* order quantity (FIX cancel/replace), and that
 * is what R's <qty> is: the generator halves the quantity the client last asked for (the order's total,
 * knowing nothing of fills). So R maps to AmendOrder{qty: <qty>} unchanged: the book leaves
 * <qty> − executed open, a reduction in place that keeps time priority, or cancels the order
 * ('amendedBelowFilled') when <qty> is not above what already executed; it never re-enters. One instrument (tick 1, lot 1, no band, no fees... see `instrument` below).
 * Orders are spread over `--accounts` accounts: order id N belongs to `acc-(N mod accounts)`, and
 * cancels/amends name that account, so self-trade prevention (cancelTaker) applies where two orders
 * of one account meet. `ts` is the op's index. Every op's events go to one reused `out` array, which
 * is cleared once it holds 1024 events (a host collects a batch of commands' events for one group commit);
 * the events are counted, so every event is really built.
 *
 * Before each timed pass a full GC runs (outside the timing), so earlier passes' garbage is not
 * collected inside it; collections caused by the book's own allocation are inside.
 * Passes: one warm-up pass over the whole workload on a throwaway book; then `--passes` throughput
 * passes, each on a fresh book and timed as a whole (median reported); then one latency pass on a
 * fresh book timing each op with process.hrtime.bigint() (closed loop: ops are issued back to back,
 * so there is no arrival schedule and no coordinated omission to correct for; the timer's own cost,
 * ~30-60 ns, is included). Prints the method, then ONE JSON line last.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { BookCommand, BookEvent } from '@bourse/schemas';
import { defineInstrument } from '@bourse/schemas';
import { OrderBook } from '../src/book/index.js';

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const file = arg('workload');
if (!file) {
  console.error('usage: node packages/engine/dist/bench/book.js --workload FILE [--accounts N] [--passes N]');
  process.exit(2);
}
const accountsN = Number(arg('accounts', '16'));
const passes = Number(arg('passes', '3'));

const instrument = defineInstrument({ symbol: 'BENCH-USD', tickSize: 1, lotSize: 1, minQty: 1, maxQty: 1_000_000, makerFeeBps: 1, takerFeeBps: 5 });

// ---------------------------------------------------------------- load
const text = readFileSync(file, 'utf8');
const lines = text.split('\n');
const header = lines[0]?.startsWith('#') ? lines[0] : '(no header)';
const accounts = Array.from({ length: accountsN }, (_, i) => `acc-${i}`);
const cmds: BookCommand[] = [];
const opCounts: Record<string, number> = { L: 0, I: 0, C: 0, P: 0, R: 0 };
for (let i = 0; i < lines.length; i++) {
  const line = lines[i]!;
  if (line.length === 0 || line[0] === '#') continue;
  const f = line.split(',');
  const op = f[0]!;
  const id = Number(f[1]);
  const account = accounts[id % accountsN]!;
  const ts = cmds.length + 1;
  opCounts[op] = (opCounts[op] ?? 0) + 1;
  switch (op) {
    case 'L':
    case 'I':
      cmds.push({ type: 'NewOrder', ts, orderId: id, account, side: f[2] === 'B' ? 'buy' : 'sell', orderType: 'limit', tif: op === 'L' ? 'GTC' : 'IOC', price: Number(f[3]), qty: Number(f[4]) });
      break;
    case 'C':
      cmds.push({ type: 'CancelOrder', ts, orderId: id, account });
      break;
    case 'P':
      cmds.push({ type: 'AmendOrder', ts, orderId: id, account, price: Number(f[2]) });
      break;
    case 'R':
      cmds.push({ type: 'AmendOrder', ts, orderId: id, account, qty: Number(f[2]) });
      break;
    default:
      throw new Error(`line ${i + 1}: unknown op ${op}`);
  }
}
const n = cmds.length;

// ---------------------------------------------------------------- passes
// A full collection before each timed pass, so that garbage of earlier passes (and of parsing) is
// not collected inside the next one. GC caused by the book's own allocation stays inside the timing.
v8.setFlagsFromString('--expose-gc');
const fullGc = vm.runInNewContext('gc') as () => void;

/** Events are collected across consecutive ops and the array cleared once it holds this many, as a host batches a group commit. */
const OUT_BATCH = 1024;

interface PassResult {
  secs: number;
  /** CPU time of this process during the pass (user + system; includes GC threads). */
  cpuSecs: number;
  events: number;
  fills: number;
}

function throughputPass(): PassResult {
  fullGc();
  const book = new OrderBook(instrument);
  const out: BookEvent[] = [];
  let events = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    book.step(cmds[i]!, out);
    if (out.length >= OUT_BATCH) {
      events += out.length;
      out.length = 0;
    }
  }
  events += out.length;
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  return { secs: Number(t1 - t0) / 1e9, cpuSecs: (c1.user + c1.system) / 1e6, events, fills: book.tradeId };
}

/** Counts event types (outside any timing), to show what the workload makes the book do. */
function eventCensus(): Record<string, number> {
  const book = new OrderBook(instrument);
  const out: BookEvent[] = [];
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    book.step(cmds[i]!, out);
    for (const e of out) {
      const k = e.type === 'OrderCancelled' ? `OrderCancelled(${e.reason})` : e.type === 'CommandRejected' ? `CommandRejected(${e.code})` : e.type;
      counts[k] = (counts[k] ?? 0) + 1;
    }
    out.length = 0;
  }
  counts['restingAtEnd'] = book.orders.size;
  return counts;
}

function latencyPass(): { lat: Float64Array; secs: number } {
  const lat = new Float64Array(n);
  fullGc();
  const book = new OrderBook(instrument);
  const out: BookEvent[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    book.step(cmds[i]!, out);
    const b = process.hrtime.bigint();
    lat[i] = Number(b - a);
    out.length = 0;
  }
  return { lat, secs: Number(process.hrtime.bigint() - t0) / 1e9 };
}

console.log(`book benchmark: ${file}`);
console.log(`  machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at start`);
console.log(`  workload: ${header}; ${n} ops ${JSON.stringify(opCounts)}`);
console.log(`  mapping: L→GTC limit, I→IOC limit, C→cancel, P→amend price, R→amend total qty (FIX: open = qty − executed); order id N → account acc-(N mod ${accountsN}), STP cancelTaker`);
console.log(`  instrument: tick 1, lot 1, maker 1 bps, taker 5 bps (fees computed per fill); node ${process.version}`);

const census = eventCensus();
console.log(`  events by type (one untimed pass): ${JSON.stringify(census)}`);

const warm = throughputPass();
console.log(`  warm-up: 1 full pass, ${warm.secs.toFixed(3)} s`);

const results: PassResult[] = [];
for (let p = 0; p < passes; p++) {
  const r = throughputPass();
  results.push(r);
  console.log(
    `  throughput pass ${p + 1}: ${r.secs.toFixed(3)} s wall, ${Math.round(n / r.secs).toLocaleString('en-US')} ops/s (CPU ${r.cpuSecs.toFixed(3)} s), ${r.events} events, ${r.fills} fills`,
  );
}
const sorted = [...results].sort((a, b) => a.secs - b.secs);
const median = sorted[Math.floor(sorted.length / 2)]!;

const { lat, secs: latSecs } = latencyPass();
lat.sort();
const pct = (q: number) => lat[Math.min(n - 1, Math.ceil(q * n) - 1)]! / 1000;
console.log(`  latency pass: ${n} ops timed one by one with process.hrtime.bigint(), ${latSecs.toFixed(3)} s wall (timer included)`);
console.log(`  reported: median of ${passes} throughput passes; percentiles from the latency pass; events/fills per pass`);
console.log(
  JSON.stringify({
    ops: n,
    secs: Number(median.secs.toFixed(4)),
    opsPerSec: Math.round(n / median.secs),
    p50Us: Number(pct(0.5).toFixed(3)),
    p99Us: Number(pct(0.99).toFixed(3)),
    p999Us: Number(pct(0.999).toFixed(3)),
    p9999Us: Number(pct(0.9999).toFixed(3)),
    maxUs: Number((lat[n - 1]! / 1000).toFixed(3)),
    events: median.events,
    fills: median.fills,
  }),
);

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
 * Passes: one warm-up pass over the whole workload on a throwaway book; then `--passes` (7) throughput
 * passes, each on a fresh book and timed as a whole (median reported, best and CPU-time rate shown);
 * then `--lat-passes` (3) latency passes on fresh books timing each op with process.hrtime.bigint()
 * (closed loop: ops are issued back to back, so there is no arrival schedule and no coordinated
 * omission to correct for; the timer's own cost, ~30-60 ns, is included); the percentiles reported
 * are those of the pass with the median p99.99, and every pass's p99.99 is printed. On a shared
 * machine wall time includes time the process was not scheduled; CPU time (user + system, GC helper
 * threads included) does not. Prints the method, then ONE JSON line last.
 *
 * Peers, in the same process on the same parsed workload (`--peers none` to skip them):
 * - nodejs-order-book 10.1.1 (`ob.limit`, `ob.cancel`, `ob.modify`): L → limit GTC, I → limit IOC,
 *   C → cancel, P → modify({price}), R → FIX-faithful like Bourse: new open = <qty> − executed, where
 *   executed = origSize − size of the library's order (cancel when <= 0, modify({size}) when smaller).
 *   What differs, because the library allows no better: every modify cancels and re-creates the order,
 *   so an R loses time priority (Bourse keeps it) and origSize restarts, so executed before a P is
 *   forgotten by a later R; re-created orders lose their account and STP mode. Orders carry
 *   accountId acc-(N mod accounts) and stpMode EXPIRE_TAKER (= cancelTaker). The library builds its
 *   own result objects per op (its equivalent of events) but no fees.
 * - a bare JS book: the same price-level layout as Bourse (sorted level arrays, intrusive FIFO lists,
 *   a Map by id), price-time matching, executed qty per order for R, and nothing else — no events,
 *   no validation, no accounts/STP, no fees. It is a floor for what the layout costs.
 * Each engine's passes are interleaved (Bourse, peer, bare, Bourse, ...) so that machine noise falls on
 * all of them alike.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
const passes = Number(arg('passes', '7'));
const peerPasses = Math.min(passes, Number(arg('peer-passes', '3')));
const latPasses = Number(arg('lat-passes', '3'));
const withPeers = arg('peers', 'all') !== 'none';

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

// ---------------------------------------------------------------- peer: nodejs-order-book 10.1.1
// CJS; its package.json points `types` at a file that does not exist, so it is typed here by hand.
interface NobOrder {
  readonly size: number;
  readonly origSize: number;
}
interface NobResult {
  done: unknown[];
  err: unknown;
}
interface NobBook {
  limit(o: { id: string; side: 'buy' | 'sell'; size: number; price: number; timeInForce?: 'GTC' | 'IOC'; accountId?: string; stpMode?: string }): NobResult;
  cancel(id: string): unknown;
  modify(id: string, u: { price?: number; size?: number }): NobResult;
  order(id: string): NobOrder | undefined;
}
const nob = createRequire(import.meta.url)('nodejs-order-book') as { OrderBook: new (o?: object) => NobBook };

/** Ops pre-converted for the peers (string ids for nodejs-order-book), outside any timing. */
const OP_L = 0;
const OP_I = 1;
const OP_C = 2;
const OP_P = 3;
const OP_R = 4;
const pOp = new Uint8Array(n);
const pId = new Float64Array(n);
const pSid: string[] = new Array<string>(n);
const pBuy = new Uint8Array(n);
const pPrice = new Float64Array(n);
const pQty = new Float64Array(n);
const pAcc: string[] = new Array<string>(n);
for (let i = 0; i < n; i++) {
  const c = cmds[i]!;
  pId[i] = c.type === 'NewOrder' || c.type === 'CancelOrder' || c.type === 'AmendOrder' ? c.orderId : 0;
  pSid[i] = String(pId[i]);
  pAcc[i] = accounts[pId[i]! % accountsN]!;
  if (c.type === 'NewOrder') {
    pOp[i] = c.tif === 'GTC' ? OP_L : OP_I;
    pBuy[i] = c.side === 'buy' ? 1 : 0;
    pPrice[i] = c.price;
    pQty[i] = c.qty;
  } else if (c.type === 'CancelOrder') pOp[i] = OP_C;
  else if (c.type === 'AmendOrder') {
    pOp[i] = c.price !== undefined ? OP_P : OP_R;
    pPrice[i] = c.price ?? 0;
    pQty[i] = c.qty ?? 0;
  }
}

function nobStep(ob: NobBook, i: number): number {
  switch (pOp[i]) {
    case OP_L:
    case OP_I: {
      const r = ob.limit({ id: pSid[i]!, side: pBuy[i] === 1 ? 'buy' : 'sell', size: pQty[i]!, price: pPrice[i]!, timeInForce: pOp[i] === OP_L ? 'GTC' : 'IOC', accountId: pAcc[i]!, stpMode: 'EXPIRE_TAKER' });
      return r.done.length;
    }
    case OP_C:
      ob.cancel(pSid[i]!);
      return 0;
    case OP_P: {
      const r = ob.modify(pSid[i]!, { price: pPrice[i]! });
      return r.done.length;
    }
    default: {
      // R: FIX total -> open = total - executed (executed = origSize - size since the library last created it)
      const o = ob.order(pSid[i]!);
      if (o === undefined) return 0;
      const open = pQty[i]! - (o.origSize - o.size);
      if (open <= 0) ob.cancel(pSid[i]!);
      else if (open < o.size) ob.modify(pSid[i]!, { size: open });
      return 0;
    }
  }
}

// ---------------------------------------------------------------- peer: a bare JS book (no events)
class BOrder {
  id = 0;
  isBuy = true;
  price = 0;
  qty = 0;
  filled = 0;
  prev: BOrder | null = null;
  next: BOrder | null = null;
  level: BLevel | null = null;
}
class BLevel {
  key = 0;
  head: BOrder | null = null;
  tail: BOrder | null = null;
}
class BareBook {
  /** best last; key = price for bids, -price for asks */
  readonly bids: BLevel[] = [];
  readonly asks: BLevel[] = [];
  readonly orders = new Map<number, BOrder>();
  fills = 0;

  private find(levels: BLevel[], key: number): number {
    let lo = 0;
    let hi = levels.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = levels[mid]!.key;
      if (k < key) lo = mid + 1;
      else if (k > key) hi = mid - 1;
      else return mid;
    }
    return -lo - 1;
  }

  /** Matches `o` as a taker, then rests it unless `ioc`. */
  run(o: BOrder, ioc: boolean): void {
    const opp = o.isBuy ? this.asks : this.bids;
    const limit = o.isBuy ? -o.price : o.price;
    while (o.qty > 0 && opp.length > 0) {
      const lvl = opp[opp.length - 1]!;
      if (lvl.key < limit) break;
      let m = lvl.head;
      while (m !== null && o.qty > 0) {
        const q = m.qty < o.qty ? m.qty : o.qty;
        m.qty -= q;
        m.filled += q;
        o.qty -= q;
        o.filled += q;
        this.fills++;
        const next = m.next;
        if (m.qty === 0) {
          lvl.head = next;
          if (next === null) lvl.tail = null;
          else next.prev = null;
          this.orders.delete(m.id);
        }
        m = next;
      }
      if (lvl.head === null) opp.pop();
    }
    if (o.qty === 0 || ioc) return;
    const side = o.isBuy ? this.bids : this.asks;
    const key = o.isBuy ? o.price : -o.price;
    let i = side.length > 0 && side[side.length - 1]!.key === key ? side.length - 1 : this.find(side, key);
    let lvl: BLevel;
    if (i >= 0) lvl = side[i]!;
    else {
      i = -i - 1;
      lvl = new BLevel();
      lvl.key = key;
      side.splice(i, 0, lvl);
    }
    o.level = lvl;
    o.prev = lvl.tail;
    o.next = null;
    if (lvl.tail === null) lvl.head = o;
    else lvl.tail.next = o;
    lvl.tail = o;
    this.orders.set(o.id, o);
  }

  unrest(o: BOrder): void {
    const lvl = o.level!;
    if (o.prev === null) lvl.head = o.next;
    else o.prev.next = o.next;
    if (o.next === null) lvl.tail = o.prev;
    else o.next.prev = o.prev;
    o.prev = o.next = o.level = null;
    this.orders.delete(o.id);
    if (lvl.head === null) {
      const side = o.isBuy ? this.bids : this.asks;
      side.splice(this.find(side, lvl.key), 1);
    }
  }

  step(i: number): void {
    switch (pOp[i]) {
      case OP_L:
      case OP_I: {
        const o = new BOrder();
        o.id = pId[i]!;
        o.isBuy = pBuy[i] === 1;
        o.price = pPrice[i]!;
        o.qty = pQty[i]!;
        this.run(o, pOp[i] === OP_I);
        return;
      }
      case OP_C: {
        const o = this.orders.get(pId[i]!);
        if (o !== undefined) this.unrest(o);
        return;
      }
      case OP_P: {
        const o = this.orders.get(pId[i]!);
        if (o === undefined || o.price === pPrice[i]) return;
        this.unrest(o);
        o.price = pPrice[i]!;
        this.run(o, false);
        return;
      }
      default: {
        const o = this.orders.get(pId[i]!);
        if (o === undefined) return;
        const open = pQty[i]! - o.filled;
        if (open <= 0) this.unrest(o);
        else if (open < o.qty) o.qty = open;
        return;
      }
    }
  }
}

interface PeerResult {
  secs: number;
  cpuSecs: number;
  fills: number;
}

function nobPass(): PeerResult {
  fullGc();
  const ob = new nob.OrderBook();
  let done = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) done += nobStep(ob, i);
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  return { secs: Number(t1 - t0) / 1e9, cpuSecs: (c1.user + c1.system) / 1e6, fills: done };
}

function barePass(): PeerResult {
  fullGc();
  const b = new BareBook();
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) b.step(i);
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  return { secs: Number(t1 - t0) / 1e9, cpuSecs: (c1.user + c1.system) / 1e6, fills: b.fills };
}

function peerLatency(kind: 'nob' | 'bare'): Float64Array {
  const lat = new Float64Array(n);
  fullGc();
  if (kind === 'nob') {
    const ob = new nob.OrderBook();
    for (let i = 0; i < n; i++) {
      const a = process.hrtime.bigint();
      nobStep(ob, i);
      lat[i] = Number(process.hrtime.bigint() - a);
    }
  } else {
    const b = new BareBook();
    for (let i = 0; i < n; i++) {
      const a = process.hrtime.bigint();
      b.step(i);
      lat[i] = Number(process.hrtime.bigint() - a);
    }
  }
  return lat;
}

// ---------------------------------------------------------------- run
console.log(`book benchmark: ${file}`);
console.log(`  machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at start`);
console.log(`  workload: ${header}; ${n} ops ${JSON.stringify(opCounts)}`);
console.log(`  mapping: L→GTC limit, I→IOC limit, C→cancel, P→amend price, R→amend total qty (FIX: open = qty − executed); order id N → account acc-(N mod ${accountsN}), STP cancelTaker`);
console.log(`  instrument: tick 1, lot 1, maker 1 bps, taker 5 bps (fees computed per fill); node ${process.version}`);

const census = eventCensus();
console.log(`  events by type (one untimed pass): ${JSON.stringify(census)}`);

const warm = throughputPass();
const warmNob = withPeers ? nobPass() : undefined;
const warmBare = withPeers ? barePass() : undefined;
console.log(`  warm-up: 1 full pass each, Bourse ${warm.secs.toFixed(3)} s${withPeers ? `, nodejs-order-book ${warmNob!.secs.toFixed(3)} s, bare ${warmBare!.secs.toFixed(3)} s` : ''}`);

const results: PassResult[] = [];
const nobResults: PeerResult[] = [];
const bareResults: PeerResult[] = [];
const fmt = (secs: number) => Math.round(n / secs).toLocaleString('en-US');
for (let p = 0; p < passes; p++) {
  const r = throughputPass();
  results.push(r);
  let line = `  pass ${p + 1}: Bourse ${r.secs.toFixed(3)} s = ${fmt(r.secs)} ops/s (CPU ${r.cpuSecs.toFixed(3)} s, ${r.events} events, ${r.fills} fills)`;
  if (withPeers && p < peerPasses) {
    const a = nobPass();
    const b = barePass();
    nobResults.push(a);
    bareResults.push(b);
    line += `; nodejs-order-book ${fmt(a.secs)} ops/s (CPU ${a.cpuSecs.toFixed(3)} s); bare ${fmt(b.secs)} ops/s (CPU ${b.cpuSecs.toFixed(3)} s, ${b.fills} fills)`;
  }
  console.log(line);
}
const medianOf = <T extends { secs: number }>(xs: T[]): T => [...xs].sort((a, b) => a.secs - b.secs)[Math.floor(xs.length / 2)]!;
const median = medianOf(results);

interface Pcts {
  p50: number;
  p99: number;
  p999: number;
  p9999: number;
  max: number;
}
function pcts(lat: Float64Array): Pcts {
  lat.sort();
  const at = (q: number) => Number((lat[Math.min(n - 1, Math.ceil(q * n) - 1)]! / 1000).toFixed(3));
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), p9999: at(0.9999), max: Number((lat[n - 1]! / 1000).toFixed(3)) };
}

const latRuns: { p: Pcts; secs: number }[] = [];
for (let k = 0; k < latPasses; k++) {
  const { lat, secs } = latencyPass();
  latRuns.push({ p: pcts(lat), secs });
}
const latMedian = [...latRuns].sort((a, b) => a.p.p9999 - b.p.p9999)[Math.floor(latRuns.length / 2)]!;
const bp = latMedian.p;
const latSecs = latMedian.secs;
const np = withPeers ? pcts(peerLatency('nob')) : undefined;
const xp = withPeers ? pcts(peerLatency('bare')) : undefined;
console.log(`  latency passes: ${n} ops each, timed one by one with process.hrtime.bigint() (Bourse ${latSecs.toFixed(3)} s wall, timer included)`);
console.log(`  Bourse p99.99 per latency pass (µs): ${latRuns.map((r) => r.p.p9999.toFixed(1)).join(', ')}; reported: the median pass`);
console.log(`  reported: median of ${passes} throughput passes (peers: of ${peerPasses}); best = fastest pass; ops/CPU-s = ops / CPU time of the median pass`);
console.log('');
const best = <T extends { secs: number }>(xs: T[]): T => [...xs].sort((a, b) => a.secs - b.secs)[0]!;
const row = (name: string, r: { secs: number; cpuSecs: number }, b: { secs: number }, p: Pcts, note: string) =>
  `  ${name.padEnd(22)}${fmt(r.secs).padStart(12)}${fmt(b.secs).padStart(12)}${fmt(r.cpuSecs).padStart(12)}${p.p50.toFixed(2).padStart(9)}${p.p99.toFixed(2).padStart(9)}${p.p999.toFixed(2).padStart(10)}${p.p9999.toFixed(2).padStart(10)}${p.max.toFixed(0).padStart(9)}  ${note}`;
console.log(`  ${'engine'.padEnd(22)}${'ops/s'.padStart(12)}${'best'.padStart(12)}${'ops/CPU-s'.padStart(12)}${'p50 µs'.padStart(9)}${'p99 µs'.padStart(9)}${'p99.9 µs'.padStart(10)}${'p99.99 µs'.padStart(10)}${'max µs'.padStart(9)}`);
console.log(row('Bourse (full events)', median, best(results), bp, `${median.events} events, ${median.fills} fills`));
if (withPeers) {
  const a = medianOf(nobResults);
  const b = medianOf(bareResults);
  console.log(row('nodejs-order-book', a, best(nobResults), np!, `${a.fills} orders done; modify always re-queues`));
  console.log(row('bare JS (no events)', b, best(bareResults), xp!, `${b.fills} fills; no validation, STP or fees`));
}
console.log('');
const peers = withPeers
  ? {
      'nodejs-order-book@10.1.1': { opsPerSec: Math.round(n / medianOf(nobResults).secs), p9999Us: np!.p9999 },
      bareJs: { opsPerSec: Math.round(n / medianOf(bareResults).secs), p9999Us: xp!.p9999 },
    }
  : {};
console.log(
  JSON.stringify({
    ops: n,
    secs: Number(median.secs.toFixed(4)),
    opsPerSec: Math.round(n / median.secs),
    p50Us: bp.p50,
    p99Us: bp.p99,
    p999Us: bp.p999,
    p9999Us: bp.p9999,
    maxUs: bp.max,
    events: median.events,
    fills: median.fills,
    peers,
  }),
);

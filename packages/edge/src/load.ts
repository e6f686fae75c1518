/**
 * `bourse load`: an order load generator over the binary protocol, through the SDK.
 *
 * Method. `clients` connections share the key. Each sends IOC limit orders of the smallest quantity on
 * one instrument, alternating buy and sell, priced at the opposite best price from the BBO feed (so
 * they trade against resting liquidity when there is any, and never rest), or at the instrument's
 * reference price when that side is empty. With `rate > 0` the orders are scheduled evenly
 * (`rate / clients` per connection) and each order's latency counts from its **scheduled** send
 * time, not from when it was actually sent: a stall delays the orders behind it and that delay is
 * measured (free of coordinated omission). In-flight orders per connection are bounded by `window`;
 * with `rate = 0` a new order is sent as soon as an answer frees a slot ("as fast as acks allow") and
 * latency counts from its send time. Fills are counted from the private stream (FillSettled events of
 * this run's orders). Orders still unanswered 5 s after the end count as `unanswered` (sent, neither acked nor rejected),
 * with the time waited so far as their latency (a lower bound).
 *
 * @example
 *   const r = await runLoad({ url: 'ws://127.0.0.1:8080', key: 'demo-mm.secret', rate: 10_000, durationS: 10, clients: 4 });
 *   // prints the method, then one JSON line: {"sent":..,"acked":..,"rejected":..,"fills":..,"ordersPerSec":..,"ackP50Ms":..,"ackP99Ms":..,"ackP999Ms":..}
 */
import { AuthError, BourseClient } from '@bourse/client';
import { rejectName } from '@bourse/schemas';
import type { Instrument, Side } from '@bourse/schemas';
import { startFsyncProbe } from './fsync-probe.js';
import type { FsyncProbeResult } from './fsync-probe.js';

export interface LoadOptions {
  /** `ws://host:port` of an edge. */
  readonly url: string;
  readonly key: string;
  /** Orders per second over all clients; 0 = as fast as acks allow. */
  readonly rate: number;
  readonly durationS: number;
  readonly clients: number;
  /** Default: the first cash instrument the edge lists. */
  readonly symbol?: string;
  /** Most orders in flight per client (default 64 at rate 0, else 10 000). */
  readonly window?: number;
  /**
   * Measure the disk's fdatasync latency in this directory during the run (`fsync-probe.ts`), the
   * physical floor under the ack percentiles of a node whose data lives on the same file system.
   */
  readonly fsyncProbeDir?: string;
  /** Where the method lines and the JSON line go (default console.log). */
  readonly print?: (line: string) => void;
}

export interface LoadResult {
  readonly sent: number;
  readonly acked: number;
  readonly rejected: number;
  readonly fills: number;
  readonly ordersPerSec: number;
  readonly ackP50Ms: number;
  readonly ackP99Ms: number;
  readonly ackP999Ms: number;
  readonly ackMaxMs: number;
  /** Orders with no answer 5 s after the end (in the percentiles with the time waited, a lower bound). */
  readonly unanswered: number;
  readonly rejectsByCode: Record<string, number>;
  readonly symbol: string;
  readonly rate: number;
  readonly clients: number;
  /** Most orders in flight per client. */
  readonly window: number;
  readonly durationS: number;
  /** With `fsyncProbeDir`: the disk's own sync latency over the same run. */
  readonly fsyncProbe?: FsyncProbeResult;
}

const pct = (sorted: Float64Array, p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const clientsN = Math.max(1, Math.floor(opts.clients));
  const rate = Math.max(0, opts.rate);
  const window = Math.max(1, Math.floor(opts.window ?? (rate === 0 ? 64 : 10_000)));
  const httpUrl = opts.url.replace(/^ws/, 'http').replace(/\/ws\/?$/, '');
  let instruments: Instrument[];
  try {
    const res = await fetch(`${httpUrl}/v1/instruments`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    instruments = (await res.json()) as Instrument[];
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot list instruments at ${httpUrl}/v1/instruments: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  const inst = opts.symbol ? instruments.find((i) => i.symbol === opts.symbol) : (instruments.find((i) => i.mode === 'cash') ?? instruments[0]);
  if (!inst) throw new Error(`load: no instrument ${opts.symbol ?? ''} at ${httpUrl}`);
  const symbol = inst.symbol;

  // Before any connection: a bad directory fails the run at once.
  const probe = opts.fsyncProbeDir !== undefined ? await startFsyncProbe(opts.fsyncProbeDir) : undefined;
  const connecting = Array.from({ length: clientsN }, () => BourseClient.connect({ url: opts.url, key: opts.key, reconnect: false, requestTimeoutMs: 60_000 }));
  let clients: BourseClient[];
  try {
    clients = await Promise.all(connecting);
  } catch (e) {
    // Leave nothing running: the probe's thread and the connections that did open.
    await probe?.stop().catch(() => undefined);
    for (const r of await Promise.allSettled(connecting)) if (r.status === 'fulfilled') await r.value.close();
    if (e instanceof AuthError) {
      // The demo keys exist only on a node that runs the demo (`bourse start` without --no-demo).
      throw new Error(`the edge at ${opts.url} refused key '${opts.key}': ${e.message} (code ${e.code}); pass --key with a key that node knows`, { cause: e });
    }
    throw e;
  }
  const ref = inst.referencePrice > 0 ? inst.referencePrice : inst.tickSize * 1000;
  let bid = 0;
  let ask = 0;
  await clients[0]!.onQuote(symbol, (q) => {
    bid = q.bidPrice;
    ask = q.askPrice;
  });
  // Fills of this run's orders: the private stream may deliver a fill before its order's ack, so
  // fills are counted per order id and matched against the acked ids at the end. From now: the
  // account's earlier history (other runs) is not replayed.
  const ours = new Set<number>();
  const fillsByOrder = new Map<number, number>();
  await clients[0]!.subscribePrivate(
    (m) => {
      if (m.event.type === 'FillSettled') fillsByOrder.set(m.event.orderId, (fillsByOrder.get(m.event.orderId) ?? 0) + 1);
    },
    { fromNow: true },
  );

  let latencies = new Float64Array(1 << 16);
  let nLat = 0;
  const record = (ms: number) => {
    if (nLat === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[nLat++] = ms;
  };
  let sent = 0;
  let closing = false;
  let unanswered = 0;
  let acked = 0;
  let rejected = 0;
  const rejectsByCode: Record<string, number> = {};
  const qty = Math.max(inst.minQty, inst.lotSize);

  print(`bourse load: ${clientsN} client(s) on ${opts.url}, ${symbol}, ${rate === 0 ? `as fast as acks allow (window ${window}/client)` : `${rate} orders/s scheduled evenly (window ${window}/client)`}, ${opts.durationS} s`);
  if (probe) print(`fsync probe: 8 KiB write + fdatasync every 10 ms in ${opts.fsyncProbeDir}, on a worker thread, for the whole run: the disk's own commit latency beside the acks`);
  print('method: IOC limit orders of the minimum qty, alternating buy/sell at the opposite best price (reference price when empty); latency = answer time - scheduled send time (coordinated-omission free); percentiles over every order of the run, no warm-up excluded');

  const startMs = performance.now() + 50;
  const endMs = startMs + opts.durationS * 1000;
  const perClientIntervalMs = rate === 0 ? 0 : (1000 * clientsN) / rate;

  const runClient = (c: BourseClient, ci: number) =>
    new Promise<void>((done) => {
      let k = 0;
      let inflight = 0;
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const offset = perClientIntervalMs * (ci / clientsN);
      const due = (i: number) => startMs + offset + i * perClientIntervalMs;
      const maybeDone = () => {
        if (!finished && inflight === 0 && (rate === 0 ? performance.now() >= endMs : due(k) >= endMs)) {
          finished = true;
          if (timer) clearTimeout(timer);
          done();
        }
      };
      const sendOne = (schedMs: number) => {
        const side: Side = (k + ci) % 2 === 0 ? 'buy' : 'sell';
        const px = side === 'buy' ? ask || ref : bid || ref;
        k++;
        sent++;
        inflight++;
        void c.place({ symbol, side, orderType: 'limit', tif: 'IOC', price: px, qty }).then((r) => {
          inflight--;
          if (closing) {
            // Still in flight when the run stopped waiting: no answer, not a reject. Its latency counts as
            // at least the wait so far, so that a stalled venue cannot flatter the percentiles.
            unanswered++;
            record(performance.now() - schedMs);
            return;
          }
          record(performance.now() - schedMs);
          if (r.ok) {
            acked++;
            ours.add(r.orderId);
          } else {
            rejected++;
            const n = rejectName(r.code);
            rejectsByCode[n] = (rejectsByCode[n] ?? 0) + 1;
          }
          if (rate === 0) pump();
          maybeDone();
        });
      };
      const pump = () => {
        const now = performance.now();
        if (rate === 0) {
          while (inflight < window && now < endMs) sendOne(performance.now());
        } else {
          while (inflight < window && due(k) <= now && due(k) < endMs) sendOne(due(k));
        }
        maybeDone();
        if (finished || (rate === 0 && now >= endMs)) return;
        if (rate > 0 && due(k) >= endMs) return;
        if (timer) clearTimeout(timer);
        const wait = rate === 0 ? Math.max(0, endMs - now) : Math.max(0, due(k) - now);
        if (rate > 0 || inflight === 0) timer = setTimeout(pump, Math.min(wait, 1));
      };
      const startWait = setTimeout(pump, Math.max(0, startMs - performance.now()));
      startWait.unref?.();
      // Answers that never come: stop waiting 5 s after the end.
      setTimeout(() => {
        if (!finished) {
          finished = true;
          done();
        }
      }, endMs - performance.now() + 5_000).unref();
    });

  await Promise.all(clients.map((c, i) => runClient(c, i)));
  const elapsedS = Math.max(opts.durationS, (performance.now() - startMs) / 1000);
  await new Promise((r) => setTimeout(r, 200)); // let the last fills arrive on the private stream
  closing = true;
  await Promise.all(clients.map((c) => c.close()));
  const fsyncProbe = await probe?.stop();

  let fills = 0;
  for (const [orderId, n] of fillsByOrder) if (ours.has(orderId)) fills += n;
  const sorted = latencies.subarray(0, nLat).sort();
  const result: LoadResult = {
    sent, acked, rejected, fills,
    ordersPerSec: Math.round((acked + rejected) / elapsedS),
    unanswered,
    ackP50Ms: round3(pct(sorted, 0.5)), ackP99Ms: round3(pct(sorted, 0.99)), ackP999Ms: round3(pct(sorted, 0.999)), ackMaxMs: round3(nLat ? sorted[nLat - 1]! : 0),
    rejectsByCode, symbol, rate, clients: clientsN, window, durationS: opts.durationS,
    ...(fsyncProbe && { fsyncProbe }),
  };
  print(JSON.stringify(result));
  return result;
}

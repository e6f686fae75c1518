/**
 * `bourse start`: one node on the embedded default. The engine actors run on the in-process
 * transport with a PGlite journal in `--data`, and the uWebSockets.js edge runs in front of them.
 *
 * In demo mode (the default) it opens a spot instrument and a margin perpetual, funds the demo
 * accounts and runs a simple market maker and takers through the gateway, so that quotes and trades
 * flow at once. Every order goes through the durable path: risk, book, journal commit, then the ack.
 * The demo API keys are fixed (DEMO_KEYS) and documented in the README.
 */
import { openEmbeddedVenue, quotesFor } from '@bourse/engine';
import type { VenueCore } from '@bourse/engine';
import type { Side } from '@bourse/schemas';
import { startEdge } from '../edge.js';
import { cliLogger, engineLogOptions } from '../engine-log.js';
import type { KeySpec } from '../auth.js';
import { DEMO_INSTRUMENTS, prng } from './demo.js';

/** Fixed in demo mode, printed at start, documented in README.md. Never use them outside a demo. */
export const DEMO_KEYS: readonly KeySpec[] = [
  { key: 'demo-mm', role: 'marketMaker', accounts: ['mm-1'], label: 'demo market maker' },
  { key: 'demo-alice', role: 'trader', accounts: ['alice'], label: 'demo trader' },
  { key: 'demo-bob', role: 'trader', accounts: ['bob'], label: 'demo trader' },
  { key: 'demo-load', role: 'marketMaker', accounts: ['load-1'], label: 'bourse load default' },
  { key: 'demo-analyst', role: 'analyst', accounts: ['*'], label: 'read-only' },
  { key: 'demo-admin', role: 'admin', label: 'admin' },
];
export const DEMO_ACCOUNTS = ['mm-1', 'alice', 'bob', 'load-1', 'taker-1'] as const;

export interface StartOptions {
  readonly port: number;
  readonly data: string;
  readonly demo: boolean;
  /** Stop after this many seconds (default: until Ctrl-C / SIGTERM). */
  readonly seconds?: number;
  readonly print?: (line: string) => void;
  /** Stops the node when aborted (tests; the CLI uses SIGINT/SIGTERM). */
  readonly signal?: AbortSignal;
}

const ctx = (traceId: string) => ({ traceId });

/** Opens and funds the demo accounts through any engine host (embedded venue or cluster gateway). */
export async function seedDemo(venue: VenueCore): Promise<void> {
  // Idempotent across restarts: an existing account and a repeated transfer id are refused, not re-applied.
  for (const a of DEMO_ACCOUNTS) {
    await venue.openAccount(a, ctx(`seed-${a}`));
    await venue.deposit(a, 'USD', 50_000_000_000_000, `demo-seed-usd-${a}`, ctx(`seed-usd-${a}`));
    await venue.deposit(a, 'BTC', 100_000_000_000, `demo-seed-btc-${a}`, ctx(`seed-btc-${a}`));
  }
}

/** The demo's traders: requotes and a taker order every `stepMs`, through the gateway like any client. */
export function runDemoTraders(
  venue: VenueCore,
  stepMs: number,
  onError: (e: unknown) => void = () => {},
): { stop(): Promise<void>; stats: { orders: number; rejects: number; failedSteps: number } } {
  const rnd = prng(42);
  const stats = { orders: 0, rejects: 0, failedSteps: 0 };
  let fair = 6_500_000;
  let stopped = false;
  const quotes = new Map<string, number[]>();
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await step();
      } catch (e) {
        // A step that fails (an ask timed out while the store was unavailable, say) must not end the
        // loop, let alone the process (an unhandled rejection): count it, report it, wait a step, go on.
        stats.failedSteps++;
        onError(e);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, stepMs - (Date.now() - started))));
    }
  })();
  async function step(): Promise<void> {
    fair = Math.max(1_000_000, fair + Math.round((rnd() - 0.5) * 4) * 50);
    for (const i of DEMO_INSTRUMENTS) {
      const lev = i.mode === 'margin' ? { leverage: 5 } : {};
      await Promise.all((quotes.get(i.symbol) ?? []).map((id) => venue.cancelOrder('mm-1', i.symbol, id, ctx('demo-mm'))));
      const placed = await Promise.all(
        quotesFor({ fair, inventory: 0 }, { tick: i.tickSize, spreadTicks: 1, levels: 5, qty: 20, skewTicksPerQty: 0 }).map((q) =>
          venue.placeOrder('mm-1', { symbol: i.symbol, side: q.side, orderType: 'limit', tif: 'GTC', price: q.price, qty: q.qty, postOnly: true, ...lev }, ctx('demo-mm')),
        ),
      );
      stats.orders += placed.length;
      quotes.set(i.symbol, placed.flatMap((r) => (r.ok ? [r.orderId] : (stats.rejects++, []))));
      const side: Side = rnd() < 0.5 ? 'buy' : 'sell';
      const price = fair + (side === 'buy' ? 1 : -1) * Math.floor(rnd() * 4) * i.tickSize;
      const r = await venue.placeOrder('taker-1', { symbol: i.symbol, side, orderType: 'limit', tif: 'IOC', price, qty: 1 + Math.floor(rnd() * 15), ...lev }, ctx('demo-taker'));
      stats.orders++;
      if (!r.ok) stats.rejects++;
    }
    const snap = venue.l2Snapshot('BTC-PERP', 1);
    const bid = snap?.bids[0]?.[0];
    const ask = snap?.asks[0]?.[0];
    if (bid && ask) await venue.setMarkPrice('BTC-PERP', Math.round((bid + ask) / 2 / 50) * 50, ctx('demo-mark'));
  }
  return {
    stats,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export async function runStart(opts: StartOptions): Promise<void> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const logger = cliLogger('bourse');
  const venue = await openEmbeddedVenue({ pglite: opts.data }, { instruments: DEMO_INSTRUMENTS, ...engineLogOptions(logger) });
  let edge: Awaited<ReturnType<typeof startEdge>> | undefined;
  let traders: ReturnType<typeof runDemoTraders> | undefined;
  try {
    if (opts.demo) await seedDemo(venue);
    edge = await startEdge({ gateway: venue, port: opts.port, host: '127.0.0.1', keys: opts.demo ? DEMO_KEYS : [], logger });
    print(`Bourse is up: ${edge.url} (binary WebSocket), ${edge.httpUrl}/v1 (HTTP), ${edge.httpUrl}/health, ${edge.httpUrl}/metrics`);
    print(`journal: PGlite in ${opts.data}`);
    if (opts.demo) {
      print(`instruments: ${DEMO_INSTRUMENTS.map((i) => `${i.symbol} (${i.mode})`).join(', ')}`);
      print('demo API keys (fixed, demo only):');
      for (const k of DEMO_KEYS) print(`  ${k.key.padEnd(13)} ${k.role.padEnd(12)} ${(k.accounts ?? ['*']).join(',')}`);
      traders = runDemoTraders(venue, 250, (err) => logger.warn({ err }, 'demo traders: a step failed; trying again'));
    }
    print(opts.seconds === undefined ? 'Ctrl-C to stop.' : `running for ${opts.seconds} s.`);
    let n = 0;
    const status = setInterval(() => {
      n++;
      const snap = venue.l2Snapshot('BTC-USD', 1);
      const fmt = (l: readonly [number, number] | undefined) => (l ? `$${(l[0] / 100).toFixed(2)} x ${l[1]}` : '-');
      print(`[${String(n * 5).padStart(4)}s] BTC-USD ${fmt(snap?.bids[0])} / ${fmt(snap?.asks[0])} | demo orders ${traders?.stats.orders ?? 0} rejects ${traders?.stats.rejects ?? 0} | sessions ${edge!.sessionCount()}`);
    }, 5_000);
    let onSignal: () => void = () => {};
    await new Promise<void>((resolve) => {
      onSignal = resolve;
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      if (opts.seconds !== undefined) setTimeout(resolve, opts.seconds * 1000).unref();
      if (opts.signal?.aborted) resolve();
      opts.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(status);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  } finally {
    await traders?.stop();
    await edge?.close();
    await venue.close();
    print('stopped.');
  }
}

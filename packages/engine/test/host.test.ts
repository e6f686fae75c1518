/**
 * The engine actors (src/host) behind the VenueGateway: the same random traders as venue.test.ts,
 * run through `EmbeddedVenue` and through the synchronous `Venue` side by side; crashes and journal
 * failures in the middle of order flow; private-stream resume; bad input.
 *
 * Replay a failure with HOST_SEED=<seed> HOST_PATH=<path> (printed by fast-check).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryJournal } from '@bourse/actors';
import type { Journal } from '@bourse/actors';
import { openStore } from '@bourse/store';
import { Reject } from '@bourse/schemas';
import type { LedgerEvent } from '@bourse/schemas';
import { Venue, FEES_ACCOUNT, CLEARING_ACCOUNT } from '../src/venue/venue.js';
import { openEmbeddedVenue, EmbeddedVenue, InjectedJournalFault } from '../src/host/index.js';
import { CATCH_UP_SLICE } from '../src/host/core.js';
import type { EmbeddedTarget, EmbeddedVenueOptions } from '../src/host/index.js';
import type { LedgerState } from '../src/risk/index.js';
import type { PrivateEvent } from '../src/venue/gateway.js';
import { SPOT, PERP, ACCOUNTS, MID, opArb, funded, orderRequest } from './traders.js';
import type { Op } from './traders.js';

const INSTRUMENTS = [SPOT, PERP];
const ctx = { traceId: 'test' };

/** A controllable ingress clock shared by both hosts. */
class TestClock {
  t = 1_000;
  now = () => this.t;
}

async function openTest(target: EmbeddedTarget, clock: TestClock, askTimeoutMs = 15_000): Promise<EmbeddedVenue> {
  return openEmbeddedVenue(target, { instruments: INSTRUMENTS, now: clock.now, tickMs: 0, projectionIntervalMs: 0, askTimeoutMs });
}

function ledgerOf(v: EmbeddedVenue, account: string): LedgerState {
  const s = v.node.inspect(`account/${account}`)?.state as { s?: LedgerState } | undefined;
  if (!s?.s) throw new Error(`no ledger ${account}`);
  return s.s;
}

/** Guarantee 2 on the embedded venue: every asset's sum over all ledgers equals deposits - withdrawals. */
function conservation(v: EmbeddedVenue, net: Map<string, number>): { asset: string; expected: number; actual: number }[] {
  const totals = new Map<string, number>();
  for (const a of [...ACCOUNTS, FEES_ACCOUNT, CLEARING_ACCOUNT]) {
    for (const [asset, b] of ledgerOf(v, a).balances) totals.set(asset, (totals.get(asset) ?? 0) + b.available + b.held);
  }
  const bad: { asset: string; expected: number; actual: number }[] = [];
  for (const asset of new Set([...totals.keys(), ...net.keys()])) {
    const expected = net.get(asset) ?? 0;
    const actual = totals.get(asset) ?? 0;
    if (expected !== actual) bad.push({ asset, expected, actual });
  }
  return bad;
}

function netDeposits(events: Iterable<LedgerEvent>): Map<string, number> {
  const net = new Map<string, number>();
  for (const e of events) {
    if (e.type === 'Deposited') net.set(e.asset, (net.get(e.asset) ?? 0) + e.amount);
    if (e.type === 'Withdrawn') net.set(e.asset, (net.get(e.asset) ?? 0) - e.amount);
  }
  return net;
}

/** Every entity's state hash (engine machine inside the host wrapper). */
function hashesOf(v: EmbeddedVenue): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of [SPOT.symbol, PERP.symbol]) {
    out[`book/${s}`] = v.node.stateHash(`book/${s}`)!;
    out[`md/${s}`] = v.node.stateHash(`md/${s}`)!;
  }
  for (const a of [...ACCOUNTS, FEES_ACCOUNT, CLEARING_ACCOUNT]) out[`account/${a}`] = v.node.stateHash(`account/${a}`)!;
  return out;
}

function venueHashes(v: Venue): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [s, b] of v.books) out[`book/${s}`] = b.machine.stateHash(b.state);
  for (const [s, m] of v.marketData) out[`md/${s}`] = m.machine.stateHash(m.state);
  for (const [a, l] of v.ledgers) out[`account/${a}`] = l.machine.stateHash(l.state);
  return out;
}

/**
 * Runs `ops` through the synchronous Venue and the EmbeddedVenue with the same ingress clock; after
 * each op the embedded saga is run to the end (settle), so both see the same per-entity input order.
 */
async function runBoth(ops: Op[], target: EmbeddedTarget): Promise<{ sync: Venue; emb: EmbeddedVenue; placed: number }> {
  const clock = new TestClock();
  const sync = new Venue(INSTRUMENTS);
  const emb = await openTest(target, clock);
  let n = 0;
  let placed = 0;
  try {
    for (const a of ACCOUNTS) {
      sync.openAccount(a);
      expect(await emb.openAccount(a, ctx)).to.deep.equal({ ok: true });
    }
    for (const op of ops) {
      clock.t += 7;
      const ts = clock.t;
      const acct = ACCOUNTS[(op as { acct?: number }).acct ?? 0]!;
      switch (op.k) {
        case 'deposit':
        case 'withdraw': {
          const id = `t${++n}`;
          const want = (op.k === 'deposit' ? sync.deposit(ts, acct, op.asset, op.amount, id) : sync.withdraw(ts, acct, op.asset, op.amount, id)).some((e) => e.event.type === 'LedgerRejected');
          const got = op.k === 'deposit' ? await emb.deposit(acct, op.asset, op.amount, id, ctx) : await emb.withdraw(acct, op.asset, op.amount, id, ctx);
          expect(got.ok, `${op.k} answer`).to.equal(!want);
          break;
        }
        case 'place': {
          const req = orderRequest(op, ++n);
          const want = sync.place(ts, acct, req);
          const got = await emb.placeOrder(acct, req, ctx);
          // The answer: the order id when held and accepted by the book, else the first reject code.
          if (want.rejected !== undefined) expect(got, 'place answer').to.deep.include({ ok: false, code: want.rejected });
          else expect(got, 'place answer').to.deep.equal({ ok: true, orderId: want.orderId });
          if (got.ok) placed++;
          break;
        }
        case 'cancel':
        case 'amend': {
          const orders = [...sync.ledgers.get(acct)!.state.orders.values()];
          if (orders.length === 0) break;
          const o = orders[op.nth % orders.length]!;
          if (op.k === 'cancel') {
            sync.cancel(ts, acct, o.symbol, o.orderId);
            await emb.cancelOrder(acct, o.symbol, o.orderId, ctx);
          } else {
            sync.amend(ts, acct, o.symbol, o.orderId, { price: MID + op.offset * 5, qty: op.qty });
            await emb.amendOrder(acct, o.symbol, o.orderId, { price: MID + op.offset * 5, qty: op.qty }, ctx);
          }
          break;
        }
        case 'mass':
          sync.massCancel(ts, acct, op.perp ? PERP.symbol : SPOT.symbol);
          await emb.massCancel(acct, op.perp ? PERP.symbol : SPOT.symbol, undefined, ctx);
          break;
        case 'mark':
          sync.mark(ts, PERP.symbol, MID + op.offset * 5);
          await emb.setMarkPrice(PERP.symbol, MID + op.offset * 5, ctx, { settleEach: true });
          break;
        case 'tick':
          clock.t += op.dt;
          sync.tick(clock.t);
          await emb.tick({ settleEach: true });
          break;
      }
      await emb.settle();
    }
    return { sync, emb, placed };
  } catch (e) {
    await emb.close();
    throw e;
  }
}

const seed = process.env.HOST_SEED ? Number(process.env.HOST_SEED) : undefined;
const replayPath = process.env.HOST_PATH;

describe('host - the engine actors behind the VenueGateway', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('host - random traders: answers, conservation, sound books and state hashes equal the synchronous Venue (MemoryJournal)', async function () {
    this.timeout(120_000);
    let placed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 20, maxLength: 80, size: 'max' }), async (ops) => {
        const { sync, emb, placed: p } = await runBoth([...funded, ...ops], { journal: new MemoryJournal() });
        try {
          placed += p;
          expect(hashesOf(emb), 'state hashes: embedded vs synchronous').to.deep.equal(venueHashes(sync));
          expect(conservation(emb, sync.netDeposits), 'conservation').to.deep.equal([]);
          for (const s of [SPOT.symbol, PERP.symbol]) {
            const book = (emb.node.inspect(`book/${s}`)!.state as { s: { bestBid(): number | undefined; bestAsk(): number | undefined } }).s;
            const bid = book.bestBid();
            const ask = book.bestAsk();
            if (bid && ask) expect(bid, `${s} crossed`).to.be.below(ask);
            // The committed L2 the gateway serves equals the book's depth.
            const snap = emb.l2Snapshot(s, 1_000)!;
            expect(snap.bids, `${s} L2 bids`).to.deep.equal((book as any).depth('buy', 1_000).map((d: { price: number; qty: number }) => [d.price, d.qty]));
            expect(snap.asks, `${s} L2 asks`).to.deep.equal((book as any).depth('sell', 1_000).map((d: { price: number; qty: number }) => [d.price, d.qty]));
          }
        } finally {
          await emb.close();
        }
      }),
      { numRuns: Number(process.env.HOST_RUNS ?? 60), ...(seed !== undefined ? { seed } : {}), ...(replayPath ? { path: replayPath } : {}) },
    );
    expect(placed, 'orders accepted across runs').to.be.greaterThan(50);
  });

  it('host - random traders on PGlite: same answers and state hashes as the synchronous Venue, and again after a restart', async function () {
    this.timeout(120_000);
    const ops = fc.sample(fc.array(opArb, { minLength: 60, maxLength: 60 }), { numRuns: 1, seed: seed ?? 42 })[0]!;
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-host-'));
    dirs.push(dir);
    const store = await openStore({ pglite: dir });
    try {
      const { sync, emb } = await runBoth([...funded, ...ops], { store });
      const want = venueHashes(sync);
      expect(hashesOf(emb)).to.deep.equal(want);
      await emb.close();
      // Recovery from the PGlite journal gives the same states (guarantee 4 across a restart).
      const again = await openTest({ store }, new TestClock());
      try {
        await again.settle();
        expect(hashesOf(again)).to.deep.equal(want);
        expect(conservation(again, sync.netDeposits)).to.deep.equal([]);
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
    }
  });

  it('host - read models catch up with the journal (PGlite): balances and orders match the ledgers', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-host-'));
    dirs.push(dir);
    const v = await openEmbeddedVenue({ pglite: dir }, { instruments: [SPOT], tickMs: 0, projectionIntervalMs: 20 });
    try {
      await v.openAccount('m', ctx);
      await v.openAccount('t', ctx);
      await v.deposit('m', 'BTC', 1_000, 'd1', ctx);
      await v.deposit('t', 'USD', 1_000_000, 'd2', ctx);
      const ask = await v.placeOrder('m', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 3 }, ctx);
      expect(ask.ok).to.equal(true);
      expect((await v.placeOrder('t', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_005, qty: 2 }, ctx)).ok).to.equal(true);
      await v.settle();
      const deadline = Date.now() + 10_000;
      for (;;) {
        const bal = await v.reads.balancesByAccount('t');
        const fees = await v.reads.balancesByAccount('fees', 'fees');
        const orders = await v.reads.ordersByAccount('m', { open: true });
        const btc = bal.find((b) => b.asset === 'BTC');
        if (btc?.available === 200 && fees.length > 0 && orders.items.length === 1 && orders.items[0]!.leavesQty === 1) break;
        if (Date.now() > deadline) throw new Error(`read models did not catch up: ${JSON.stringify({ bal, fees, orders })}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await v.close();
    }
  });

  it('host - PGlite: the journal checkpoints on the store thread by WAL volume, and /metrics counts it', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-host-'));
    dirs.push(dir);
    const v = await openEmbeddedVenue({ pglite: dir, checkpointWalBytes: 64 * 1024 }, { instruments: [SPOT], tickMs: 0, projectionIntervalMs: 0 });
    try {
      const value = (name: string) => Number(new RegExp(`^${name}\\{node="embedded"\\} ([0-9.e-]+)$`, 'm').exec(v.metricsText())?.[1] ?? NaN);
      expect(value('bourse_journal_checkpoints_total')).to.equal(0);
      await v.openAccount('m', ctx);
      await v.openAccount('t', ctx);
      await v.deposit('m', 'BTC', 1_000_000, 'd1', ctx);
      await v.deposit('t', 'USD', 1_000_000_000, 'd2', ctx);
      for (let i = 0; i < 60 && !(value('bourse_journal_checkpoints_total') >= 1); i++) {
        await Promise.all([
          v.placeOrder('m', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000 + (i % 5), qty: 2 }, ctx),
          v.placeOrder('t', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_010, qty: 1 }, ctx),
        ]);
      }
      expect(value('bourse_journal_checkpoints_total'), 'checkpoints at 64 KiB of WAL').to.be.at.least(1);
      expect(value('bourse_journal_checkpoint_seconds_total')).to.be.greaterThan(0);
      expect(value('bourse_journal_checkpoint_failures_total')).to.equal(0);
    } finally {
      await v.close();
    }
    const mem = await openTest({ journal: new MemoryJournal() }, new TestClock());
    try {
      expect(mem.metricsText(), 'no PGlite, no checkpoint lines').to.not.match(/bourse_journal_checkpoints_total/);
    } finally {
      await mem.close();
    }
  });

  it('host - guarantee 1: crashes and journal failures mid-flow lose no acknowledged order, apply none twice; resent clientOrderIds are answered, not re-executed', async function () {
    this.timeout(120_000);
    const rounds = Number(process.env.HOST_CRASH_ROUNDS ?? 12);
    const stats = { unknown: 0, acked: 0, failures: 0 };
    // The seed is chosen here so that a run mocha stops at its timeout (fast-check then reports
    // nothing) still names it: this property once timed out in a full local run on a loaded machine.
    const runSeed = seed ?? Math.floor(Math.random() * 0x7fffffff);
    const guard = setTimeout(() => console.error(`      host guarantee 1: still running after 110 s; replay with HOST_SEED=${runSeed}`), 110_000);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat(3), fc.boolean(), fc.integer({ min: -6, max: 6 }), fc.integer({ min: 1, max: 8 })), { minLength: 40, maxLength: 90 }), fc.integer({ min: 5, max: 60 }), fc.nat(4), async (orders, crashAt, faultMode) => {
          await crashRound(new MemoryJournal(), orders as CrashOrder[], crashAt, faultMode, stats);
        }),
        { numRuns: rounds, seed: runSeed },
      );
    } finally {
      clearTimeout(guard);
    }
    if (process.env.HOST_DEBUG) console.log(stats);
    // The property must exercise the hard cases: answers lost to crashes or failures, then retried.
    expect(stats.unknown, 'orders whose answer was lost').to.be.greaterThan(0);
    expect(stats.acked).to.be.greaterThan(rounds * 10);
  });

  it('host - guarantee 1 on PGlite: a node dropped mid-flow and reopened on the same store loses and doubles nothing', async function () {
    this.timeout(120_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-host-'));
    dirs.push(dir);
    const store = await openStore({ pglite: dir });
    try {
      const stats = { unknown: 0, acked: 0, failures: 0 };
      const orders = fc.sample(fc.array(fc.tuple(fc.nat(3), fc.boolean(), fc.integer({ min: -6, max: 6 }), fc.integer({ min: 1, max: 8 })), { minLength: 50, maxLength: 50 }), { numRuns: 1, seed: 11 })[0]!;
      await crashRound(store.journal, orders as CrashOrder[], 25, 0, stats);
      expect(stats.acked).to.be.greaterThan(10);
    } finally {
      await store.close();
    }
  });

  it('host - private stream: resuming from any seq gives every later ledger event once, in order, across the backlog/live switch', async function () {
    this.timeout(60_000);
    const journal = new MemoryJournal();
    const clock = new TestClock();
    const v = await openTest({ journal }, clock);
    try {
      await v.openAccount('m', ctx);
      await v.openAccount('t', ctx);
      await v.deposit('m', 'BTC', 100_000, 'd1', ctx);
      await v.deposit('t', 'USD', 100_000_000, 'd2', ctx);
      const full: PrivateEvent[] = [];
      v.subscribePrivate('t', 0, (e) => full.push(e));
      const place = async (i: number) => {
        clock.t++;
        await Promise.all([
          v.placeOrder('m', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000 + (i % 3) * 5, qty: 2 }, ctx),
          v.placeOrder('t', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_010, qty: 3 }, ctx),
        ]);
      };
      for (let i = 0; i < 20; i++) await place(i);
      await v.settle();
      const head = full[full.length - 1]!.seq;
      const rnd = fc.sample(fc.integer({ min: 0, max: head }), { numRuns: 6, seed: 7 });
      // Resume from random points while more trading happens concurrently.
      const subs = rnd.map((after) => {
        const got: PrivateEvent[] = [];
        const un = v.subscribePrivate('t', after, (e) => got.push(e));
        return { after, got, un };
      });
      for (let i = 20; i < 40; i++) await place(i);
      await v.settle();
      await new Promise((r) => setTimeout(r, 20));
      const seqs = full.map((e) => e.seq);
      expect(seqs, 'full stream strictly increasing').to.deep.equal([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).to.equal(seqs.length);
      // The full stream equals the journal's domain events of account/t.
      const fromJournal = await domainEvents(journal, 'account/t');
      expect(full.map((e) => e.event)).to.deep.equal(fromJournal);
      for (const s of subs) {
        s.un();
        expect(s.got.map((e) => e.seq), `resume after ${s.after}`).to.deep.equal(seqs.filter((q) => q > s.after));
      }
      expect(full.filter((e) => e.event.type === 'FillSettled').length).to.be.greaterThan(10);
    } finally {
      await v.close();
    }
  });

  it('host - private stream: a long backlog is replayed in slices, giving the event loop turns (one session cannot stall the others), and still arrives whole, once, in order', async function () {
    this.timeout(60_000);
    const journal = new MemoryJournal();
    const clock = new TestClock();
    const v = await openTest({ journal }, clock);
    try {
      await v.openAccount('r', ctx);
      const N = 4 * CATCH_UP_SLICE + 17;
      for (let i = 0; i < N; i += 50) await Promise.all(Array.from({ length: Math.min(50, N - i) }, (_, k) => v.deposit('r', 'USD', 1 + i + k, `bl-${i + k}`, ctx)));
      await v.settle();
      const got: PrivateEvent[] = [];
      // Event-loop turns taken while the backlog is delivered: each turn records how much had arrived.
      const seenAtTurn: number[] = [];
      let done = false;
      const tick = () => {
        seenAtTurn.push(got.length);
        if (!done) setImmediate(tick);
      };
      v.subscribePrivate('r', 0, (e) => got.push(e));
      setImmediate(tick);
      const t0 = Date.now();
      while (got.filter((e) => e.event.type === 'Deposited').length < N && Date.now() - t0 < 20_000) await new Promise((r) => setImmediate(r));
      done = true;
      expect(got.filter((e) => e.event.type === 'Deposited')).to.have.length(N);
      const seqs = got.map((e) => e.seq);
      expect(seqs).to.deep.equal([...new Set(seqs)].sort((a, b) => a - b));
      expect(got.map((e) => e.event)).to.deep.equal(await domainEvents(journal, 'account/r'));
      // Turns came while the backlog was partly delivered (never all of it in one synchronous burst).
      const partial = seenAtTurn.filter((n) => n > 0 && n < got.length);
      expect(partial.length, `turns: ${seenAtTurn.slice(0, 20).join(',')}`).to.be.greaterThanOrEqual(3);
      expect(Math.max(...seenAtTurn.map((n, i) => (i === 0 ? n : n - seenAtTurn[i - 1]!)))).to.be.at.most(CATCH_UP_SLICE);
    } finally {
      await v.close();
    }
  });

  it('host - bad input through the gateway resolves typed rejects and never throws', async function () {
    this.timeout(30_000);
    const v = await openTest({ journal: new MemoryJournal() }, new TestClock());
    try {
      await v.openAccount('a', ctx);
      await v.deposit('a', 'USD', 1_000_000, 'd1', ctx);
      const junk: unknown[] = [undefined, null, 1, 'x', {}, [], { symbol: 'NOPE' }, { symbol: 'BTC-USD' }, { symbol: 'BTC-USD', side: 'up', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1 },
        { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: -5, qty: 1 }, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1003, qty: 1 },
        { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1e300 }, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: '1000', qty: 1 },
        { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1, clientOrderId: 7 }, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1, clientOrderId: 'x'.repeat(500) }];
      const codes: number[] = [];
      for (const req of junk) {
        const r = await v.placeOrder('a', req as never, ctx);
        expect(r.ok, JSON.stringify(req)).to.equal(false);
        if (!r.ok) {
          expect(r.code).to.be.a('number');
          expect(r.message).to.be.a('string');
          codes.push(r.code);
        }
      }
      expect(codes).to.include(Reject.ORDER_UNKNOWN_INSTRUMENT);
      const calls: Promise<{ ok: boolean }>[] = [
        v.placeOrder('ghost', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1 }, ctx),
        v.placeOrder(undefined as never, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1 }, ctx),
        v.cancelOrder('a', 'BTC-USD', -1, ctx), v.cancelOrder('a', 'BTC-USD', 12345, ctx), v.cancelOrder('a', 'NOPE', 1, ctx), v.cancelOrder('a', 'BTC-USD', NaN, ctx),
        v.amendOrder('a', 'BTC-USD', 999, { price: 1000 }, ctx), v.amendOrder('a', 'BTC-USD', 1, null as never, ctx), v.amendOrder('a', 'BTC-USD', 1, { price: 'x' as never }, ctx),
        v.massCancel('a', 'BTC-USD', 'up' as never, ctx), v.massCancel('ghost', 'BTC-USD', undefined, ctx),
        v.deposit('a', 'USD', -5, 'd2', ctx), v.deposit('a', 'USD', 1.5, 'd3', ctx), v.deposit('a', '', 5, 'd4', ctx), v.deposit('a', 'USD', 5, 'd1', ctx), v.deposit('ghost', 'USD', 5, 'd5', ctx),
        v.withdraw('a', 'USD', 10_000_000, 'w1', ctx), v.withdraw('a', 'EUR', 1, 'w2', ctx),
        v.setTradingStatus('BTC-USD', 'sleeping' as never, ctx), v.setTradingStatus('NOPE', 'open', ctx),
        v.openAccount('', ctx), v.openAccount('fees', ctx), v.openAccount('a b', ctx), v.openAccount(42 as never, ctx),
        v.setMarkPrice('BTC-USD', 1000, ctx), v.setMarkPrice('BTC-PERP', -1, ctx),
      ];
      for (const [i, r] of (await Promise.all(calls)).entries()) {
        expect(r.ok, `call ${i}`).to.equal(false);
        expect((r as unknown as { code: number }).code, `call ${i} code`).to.be.a('number');
      }
      // The node kept working: a good order still goes through.
      expect((await v.placeOrder('a', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1000, qty: 1 }, ctx)).ok).to.equal(true);
      expect(v.node.stats.crashes, 'no entity crashed').to.equal(0);
    } finally {
      await v.close();
    }
  });

  /** A funded venue on a MemoryJournal whose commits `block()` holds until `openGate()`. */
  async function gatedVenue(opts: Pick<EmbeddedVenueOptions, 'ordersInFlightMax' | 'ordersQueuedMax' | 'ordersQueuedMaxWaitMs'>) {
    const journal = new MemoryJournal();
    const clock = new TestClock();
    const v = await openEmbeddedVenue({ journal }, { instruments: INSTRUMENTS, now: clock.now, tickMs: 0, projectionIntervalMs: 0, ...opts });
    for (const a of ACCOUNTS) await v.openAccount(a, ctx);
    for (const [i, a] of ACCOUNTS.entries()) {
      await v.deposit(a, 'USD', 5_000_000, `u${i}`, ctx);
      await v.deposit(a, 'BTC', 50_000, `b${i}`, ctx);
    }
    await v.settle();
    let openGate = () => {};
    const block = () => {
      const gate = new Promise<void>((r) => (openGate = r));
      journal.faults.beforeAppend = () => gate;
    };
    const open = () => {
      journal.faults.beforeAppend = undefined;
      openGate();
    };
    return { v, journal, clock, block, open };
  }

  it('host - load shedding: past ordersInFlightMax + ordersQueuedMax an order is rejected at once (THROTTLE_SYSTEM_BUSY), executes nothing, and its clientOrderId can be resent', async function () {
    this.timeout(30_000);
    const IN_FLIGHT = 4;
    const QUEUED = 3;
    const N = 12;
    const { v, journal, block, open } = await gatedVenue({ ordersInFlightMax: IN_FLIGHT, ordersQueuedMax: QUEUED });
    try {
      // Block every commit: admitted orders cannot be answered until the gate opens.
      block();
      // a1 buys and a2 sells at the same price, so the admitted orders trade once they run.
      const req = (i: number) => spotReq(i % 2 === 0, 0, 1, `s${i}`);
      const acct = (i: number) => (i % 2 === 0 ? 'a1' : 'a2');
      const answered = new Array<boolean>(N).fill(false);
      const t0 = performance.now();
      const calls = Array.from({ length: N }, (_, i) =>
        v.placeOrder(acct(i), req(i), ctx).then((r) => {
          answered[i] = true;
          return r;
        }),
      );
      const admitted = calls.slice(0, IN_FLIGHT + QUEUED);
      const excess = calls.slice(IN_FLIGHT + QUEUED);
      const tooLate = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('excess orders not answered while the journal is blocked (queued instead of shed?)')), 2_000).unref?.());
      const shed = await Promise.race([Promise.all(excess), tooLate]);
      const shedMs = performance.now() - t0;
      for (const [k, r] of shed.entries()) {
        expect(r, `order ${IN_FLIGHT + QUEUED + k}`).to.deep.include({ ok: false, code: Reject.THROTTLE_SYSTEM_BUSY });
        expect((r as { message?: unknown }).message).to.be.a('string');
      }
      // The admitted ones (in flight and queued) are still waiting behind the gate: the test measures what it claims.
      await new Promise((r) => setTimeout(r, 20));
      expect(answered.slice(0, IN_FLIGHT + QUEUED), 'admitted orders wait for the journal').to.deep.equal(new Array(IN_FLIGHT + QUEUED).fill(false));
      open();
      const results = await Promise.all(admitted);
      for (const [i, r] of results.entries()) expect(r.ok, `admitted order ${i}: ${JSON.stringify(r)}`).to.equal(true);
      await v.settle();
      // The journal holds each admitted order once and none of the shed ones.
      const heldCoids = async () => {
        const out: string[] = [];
        for (const a of ['a1', 'a2']) for (const e of await domainEvents(journal, `account/${a}`)) if ((e as LedgerEvent).type === 'OrderHeld') out.push((e as { clientOrderId?: string }).clientOrderId ?? '');
        return out.sort();
      };
      const want = Array.from({ length: IN_FLIGHT + QUEUED }, (_, i) => `s${i}`).sort();
      expect(await heldCoids(), 'held: the admitted orders, once each').to.deep.equal(want);
      // A shed clientOrderId was not consumed: resent later, it executes (once).
      const k = IN_FLIGHT + QUEUED;
      const resent = await v.placeOrder(acct(k), req(k), ctx);
      expect(resent.ok, JSON.stringify(resent)).to.equal(true);
      expect(await v.placeOrder(acct(k), req(k), ctx), 'a second resend is answered from the first').to.deep.equal(resent);
      await v.settle();
      expect(await heldCoids()).to.deep.equal([...want, `s${k}`].sort());
      const ledgerEvents: LedgerEvent[] = [];
      for (const a of [...ACCOUNTS, FEES_ACCOUNT, CLEARING_ACCOUNT]) for (const e of await domainEvents(journal, `account/${a}`)) ledgerEvents.push(e as LedgerEvent);
      expect(ledgerEvents.some((e) => e.type === 'FillSettled'), 'the admitted orders traded').to.equal(true);
      expect(conservation(v, netDeposits(ledgerEvents)), 'conservation').to.deep.equal([]);
      expect(shedMs, 'the excess was answered at once').to.be.below(1_000);
      expect(v.node.stats.crashes, 'no entity crashed').to.equal(0);
    } finally {
      open(); // close() waits for the blocked commit
      await v.close();
    }
  });

  it('host - load shedding by wait: while the oldest queued order has waited over ordersQueuedMaxWaitMs, new orders are rejected at once; the queued ones still execute', async function () {
    this.timeout(30_000);
    const WAIT_MS = 50;
    const { v, journal, clock, block, open } = await gatedVenue({ ordersInFlightMax: 2, ordersQueuedMax: 100, ordersQueuedMaxWaitMs: WAIT_MS });
    try {
      block();
      const req = (i: number) => spotReq(i % 2 === 0, 0, 1, `w${i}`);
      const acct = (i: number) => (i % 2 === 0 ? 'a1' : 'a2');
      const answered = new Set<number>();
      const place = (i: number) => v.placeOrder(acct(i), req(i), ctx).then((r) => (answered.add(i), r));
      // Two in flight, three queued at t = 1000.
      const first = [0, 1, 2, 3, 4].map(place);
      await new Promise((r) => setTimeout(r, 20));
      // At exactly the bound the queue still admits (one more queued, at t = 1050).
      clock.t += WAIT_MS;
      const atBound = place(5);
      await new Promise((r) => setTimeout(r, 20));
      expect([...answered], 'nothing answered while the journal is blocked').to.deep.equal([]);
      // Past it: answered at once, nothing executed.
      clock.t += 1;
      const shed = await Promise.race([place(6), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('not shed: queued instead')), 2_000).unref?.())]);
      expect(shed).to.deep.include({ ok: false, code: Reject.THROTTLE_SYSTEM_BUSY });
      expect((shed as { message: string }).message).to.match(/waited over 50 ms/);
      // A closed loop in this process that resends at once on every reject still lets timers run
      // (bounded, so that without it the test fails instead of hanging).
      let stop = false;
      let hammered = 0;
      setTimeout(() => (stop = true), 30);
      while (!stop && hammered < 100_000) {
        const r = await v.placeOrder(acct(7), req(7), ctx);
        expect(r).to.deep.include({ ok: false, code: Reject.THROTTLE_SYSTEM_BUSY });
        hammered++;
      }
      expect(stop, `the 30 ms timer ran while ${hammered} orders were shed in a loop`).to.equal(true);
      open();
      for (const [i, r] of (await Promise.all([...first, atBound])).entries()) expect(r.ok, `admitted order ${i}: ${JSON.stringify(r)}`).to.equal(true);
      // The queue drained: time alone sheds nothing.
      clock.t += 10 * WAIT_MS;
      expect((await place(6)).ok, 'the shed order, resent once the queue is empty').to.equal(true);
      await v.settle();
      const held: string[] = [];
      for (const a of ['a1', 'a2']) for (const e of await domainEvents(journal, `account/${a}`)) if ((e as LedgerEvent).type === 'OrderHeld') held.push((e as { clientOrderId?: string }).clientOrderId ?? '');
      expect(held.sort(), 'each admitted order held once, the shed one only after its resend').to.deep.equal(['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6']);
    } finally {
      open();
      await v.close();
    }
  });
});

type CrashOrder = [number, boolean, number, number];

/**
 * One round of the guarantee-1 property: orders flow (some concurrently), the node crashes at
 * `crashAt` (and for modes 1-4 appends fail before or after committing), the venue is reopened from
 * the same journal, clients retry what they got no answer for; then every answer is checked against
 * the journal and against a resend.
 */
async function crashRound(journal: Journal, orders: CrashOrder[], crashAt: number, faultMode: number, stats: { unknown: number; acked: number; failures: number }) {
  const clock = new TestClock();
  let v = await openTest({ journal }, clock, 1_500);
  for (const a of ACCOUNTS) await v.openAccount(a, ctx);
  for (const [i, a] of ACCOUNTS.entries()) {
    await v.deposit(a, 'USD', 5_000_000, `u${i}`, ctx);
    await v.deposit(a, 'BTC', 50_000, `b${i}`, ctx);
  }
  // What the clients were told: clientOrderId -> answer.
  const acked = new Map<string, { account: string; answer: { ok: boolean; orderId?: number; code?: number } }>();
  const unknown: { account: string; coid: string; req: ReturnType<typeof spotReq> }[] = [];
  let appends = 0;
  const arm = (venue: EmbeddedVenue) => {
    // Fault modes: 0 crash the node, 1 fail an append before it writes, 2 fail after it committed (outcome unknown), 3/4 both.
    venue.journal.faults = {
      failBefore: () => (faultMode === 1 || faultMode === 3) && ++appends % 17 === 0,
      failAfter: () => (faultMode === 2 || faultMode === 4) && ++appends % 13 === 0,
    };
  };
  arm(v);
  const inflight: Promise<void>[] = [];
  for (const [i, [acct, buy, offset, qty]] of orders.entries()) {
    clock.t += 3;
    const account = ACCOUNTS[acct]!;
    const coid = `o${i}`;
    const req = spotReq(buy, offset, qty, coid);
    const venue = v;
    inflight.push(
      venue.placeOrder(account, req, ctx).then(
        (answer) => void acked.set(coid, { account, answer }),
        () => void unknown.push({ account, coid, req }),
      ),
    );
    if (i === crashAt || (faultMode >= 3 && i === crashAt + 10)) {
      // Crash mid-flow: some orders are decided but not committed, saga messages in flight.
      await new Promise((r) => setTimeout(r, i % 3));
      venue.crash();
      await Promise.all(inflight);
      v = await openTest({ journal }, clock, 1_500);
      arm(v);
    } else if (i % 8 === 0) await Promise.all(inflight);
  }
  await Promise.all(inflight);
  v.journal.faults = {};
  // Clients retry what they never got an answer for; the venue answers, executing each at most once.
  for (const u of unknown) {
    const answer = await v.placeOrder(u.account, u.req, ctx);
    acked.set(u.coid, { account: u.account, answer });
  }
  await v.settle();
  // Every acknowledged answer is stable: a resend gets exactly it again (and nothing executes).
  const before = hashesOf(v);
  for (const [coid, { account, answer }] of acked) {
    const i = Number(coid.slice(1));
    const [, buy, offset, qty] = orders[i]!;
    const again = await v.placeOrder(account, spotReq(buy, offset, qty, coid), ctx);
    if (answer.ok) expect(again, `resend ${coid}`).to.deep.equal(answer);
    else expect(again, `resend ${coid}`).to.deep.include({ ok: false, code: answer.code });
  }
  await v.settle();
  expect(hashesOf(v), 'resends execute nothing').to.deep.equal(before);
  // Replay the whole journal: each acknowledged order was held exactly once, under its id, and the
  // book decided it exactly once, as the answer said.
  const held = new Map<string, number[]>();
  const ledgerEvents: LedgerEvent[] = [];
  for (const a of [...ACCOUNTS, FEES_ACCOUNT, CLEARING_ACCOUNT]) {
    for (const e of await domainEvents(journal, `account/${a}`)) {
      const le = e as LedgerEvent;
      ledgerEvents.push(le);
      if (le.type === 'OrderHeld' && le.clientOrderId) (held.get(le.clientOrderId) ?? held.set(le.clientOrderId, []).get(le.clientOrderId)!).push(le.orderId);
    }
  }
  const decided = new Map<number, string[]>();
  for (const e of await domainEvents(journal, `book/${SPOT.symbol}`)) {
    const be = e as { type: string; orderId: number; command?: string };
    if (be.type === 'OrderAccepted' || (be.type === 'CommandRejected' && be.command === 'NewOrder')) (decided.get(be.orderId) ?? decided.set(be.orderId, []).get(be.orderId)!).push(be.type);
  }
  for (const [coid, { answer }] of acked) {
    const h = held.get(coid) ?? [];
    if (answer.ok) {
      expect(h, `${coid} held once`).to.deep.equal([answer.orderId]);
      expect(decided.get(answer.orderId!), `${coid} accepted once`).to.deep.equal(['OrderAccepted']);
    } else expect(h.length, `${coid} held at most once`).to.be.at.most(1);
  }
  // Every order the book holds is one its ledger holds for (no lost or doubled saga step).
  const book = (v.node.inspect(`book/${SPOT.symbol}`)!.state as { s: { openOrders(a: string): { orderId: number }[] } }).s;
  for (const a of ACCOUNTS) {
    const resting = book.openOrders(a).map((o) => o.orderId).sort((x, y) => x - y);
    const ledgerOrders = [...ledgerOf(v, a).orders.keys()].sort((x, y) => x - y);
    expect(resting, `${a}: book vs ledger`).to.deep.equal(ledgerOrders);
  }
  expect(conservation(v, netDeposits(ledgerEvents)), 'conservation').to.deep.equal([]);
  stats.unknown += unknown.length;
  stats.acked += [...acked.values()].filter((x) => x.answer.ok).length;
  stats.failures += v.node.stats.journalFailures;
  await v.close();
  return stats;
}

function spotReq(buy: boolean, offset: number, qty: number, clientOrderId: string) {
  return { symbol: SPOT.symbol, side: buy ? ('buy' as const) : ('sell' as const), orderType: 'limit' as const, tif: 'GTC' as const, price: MID + offset * 5, qty, clientOrderId };
}

async function domainEvents(journal: Journal, pid: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const page of journal.read(pid, 1)) for (const e of page.events) if (!(e && typeof e === 'object' && '$rt' in e)) out.push(e);
  return out;
}

void InjectedJournalFault;

import { expect } from 'chai';
import fc from 'fast-check';
import { sql, type Transaction } from 'kysely';
import type { JournalWrite } from '@bourse/actors';
import { assertNever, type BalanceAfter, type BookEvent, type LedgerEvent, type MdEvent } from '@bourse/schemas';
import {
  balancesAndPositionsProjection,
  candlesProjection,
  GroupCommitter,
  ledgerOfStream,
  ordersAndTradesProjection,
  ProjectionRunner,
  type Projection,
  type Store,
} from '../src/index.js';
import { openTestStore, testDialects } from '../src/testing.js';
import type { Database } from '../src/db.js';

/** The reference: the book projection as it was, one statement (or three) per event. */
async function applyOneReference(trx: Transaction<Database>, instrument: string, e: BookEvent): Promise<void> {
  switch (e.type) {
    case 'OrderAccepted': {
      const stop = e.orderType === 'stop' || e.orderType === 'stopLimit';
      await trx
        .insertInto('orders')
        .values({
          instrument,
          order_id: e.orderId,
          account: e.account,
          client_order_id: e.clientOrderId ?? null,
          side: e.side,
          order_type: e.orderType,
          tif: e.tif,
          price: e.price,
          stop_price: e.stopPrice,
          qty: e.qty,
          leaves_qty: e.qty,
          filled_qty: 0,
          filled_notional: 0,
          status: stop ? 'pendingStop' : 'new',
          cancel_reason: null,
          is_open: true,
          created_ts: e.ts,
          updated_ts: e.ts,
        })
        .execute();
      return;
    }
    case 'Fill': {
      await trx
        .insertInto('trades')
        .values({
          instrument,
          trade_id: e.tradeId,
          ts: e.ts,
          price: e.price,
          qty: e.qty,
          taker_order_id: e.takerOrderId,
          taker_account: e.takerAccount,
          taker_side: e.takerSide,
          maker_order_id: e.makerOrderId,
          maker_account: e.makerAccount,
          taker_fee: e.takerFee,
          maker_fee: e.makerFee,
        })
        .execute();
      for (const [orderId, remaining] of [
        [e.takerOrderId, e.takerRemaining],
        [e.makerOrderId, e.makerRemaining],
      ] as const) {
        await trx
          .updateTable('orders')
          .set({
            filled_qty: sql`filled_qty + ${e.qty}`,
            filled_notional: sql`filled_notional + ${e.price * e.qty}`,
            leaves_qty: remaining,
            status: remaining === 0 ? 'filled' : 'partiallyFilled',
            is_open: remaining > 0,
            updated_ts: e.ts,
          })
          .where('instrument', '=', instrument)
          .where('order_id', '=', orderId)
          .execute();
      }
      return;
    }
    case 'OrderRested':
      await trx
        .updateTable('orders')
        .set({ status: sql`case when filled_qty > 0 then 'partiallyFilled' else 'open' end`, leaves_qty: e.qty, price: e.price, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'OrderCancelled':
      await trx
        .updateTable('orders')
        .set({ status: 'cancelled', cancel_reason: e.reason, leaves_qty: 0, is_open: false, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'OrderAmended':
      await trx
        .updateTable('orders')
        .set({ price: e.price, leaves_qty: e.qty, updated_ts: e.ts })
        .where('instrument', '=', instrument)
        .where('order_id', '=', e.orderId)
        .execute();
      return;
    case 'StopArmed':
      await trx.updateTable('orders').set({ status: 'pendingStop', updated_ts: e.ts }).where('instrument', '=', instrument).where('order_id', '=', e.orderId).execute();
      return;
    case 'StopTriggered':
      await trx.updateTable('orders').set({ status: 'new', updated_ts: e.ts }).where('instrument', '=', instrument).where('order_id', '=', e.orderId).execute();
      return;
    case 'CommandRejected': // nothing entered the book
    case 'TradingStatusChanged':
    case 'ReferencePriceChanged':
      return;
    default:
      assertNever(e, 'book event');
  }
}

/**
 * Random book histories over a few order ids: acceptances (a stop now and then), fills between any two
 * ids (self-trades too), rests, cancels, amends, stop arm/trigger, rejects; some events name an id
 * before it is accepted (an update of nothing). Ids are accepted at most once.
 */
const bookHistory = fc
  .array(
    fc.record({
      k: fc.integer({ min: 0, max: 8 }),
      a: fc.integer({ min: 1, max: 6 }),
      b: fc.integer({ min: 1, max: 6 }),
      q: fc.integer({ min: 1, max: 9 }),
      r: fc.integer({ min: 0, max: 3 }),
      s: fc.integer({ min: 0, max: 4 }),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((steps) => {
    const accepted = new Set<number>();
    let ts = 1000;
    let tradeId = 0;
    const out: BookEvent[] = [];
    for (const x of steps) {
      ts += 1 + x.r;
      const price = 100 + x.s;
      switch (x.k) {
        case 0:
        case 1:
          if (accepted.has(x.a)) break;
          accepted.add(x.a);
          out.push({ type: 'OrderAccepted', ts, orderId: x.a, account: `pf${x.a % 3}`, clientOrderId: x.s ? `c${x.a}` : undefined, side: x.a % 2 ? 'buy' : 'sell',
            orderType: x.r === 3 ? 'stopLimit' : 'limit', tif: 'GTC', price, qty: 10 + x.q, stopPrice: x.r === 3 ? 90 : 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: 'cancelTaker' });
          break;
        case 2:
        case 3:
          out.push({ type: 'Fill', ts, tradeId: ++tradeId, price, qty: x.q, takerOrderId: x.a, takerAccount: `pf${x.a % 3}`, takerSide: 'buy', makerOrderId: x.b, makerAccount: `pf${x.b % 3}`,
            takerFee: x.s, makerFee: x.r, takerRemaining: x.r === 0 ? 0 : x.q, makerRemaining: x.s === 0 ? 0 : x.r + 1 });
          break;
        case 4:
          out.push({ type: 'OrderRested', ts, orderId: x.a, side: 'buy', price, qty: x.q });
          break;
        case 5:
          out.push({ type: 'OrderCancelled', ts, orderId: x.a, account: `pf${x.a % 3}`, side: 'buy', price, qty: x.q, reason: x.r % 2 ? 'user' : 'ioc', rested: x.r > 1 } as BookEvent);
          break;
        case 6:
          out.push({ type: 'OrderAmended', ts, orderId: x.a, price, qty: x.q } as BookEvent);
          break;
        case 7:
          out.push(x.r % 2 ? { type: 'StopArmed', ts, orderId: x.a } as BookEvent : { type: 'StopTriggered', ts, orderId: x.a } as BookEvent);
          break;
        default:
          out.push({ type: 'CommandRejected', ts, command: 'Cancel', orderId: x.a, clientOrderId: undefined, account: 'pf0', code: 2001 } as unknown as BookEvent);
      }
    }
    return out;
  });


// ---------------------------------------------------------------- generated ledger and market-data streams
// Event n of a stream is a pure function of (stream, n), so the test's model can fold any prefix.

const ASSETS = ['BTC', 'USD'] as const;
const bal = (asset: string, id: string, seq: number): BalanceAfter => ({ asset, available: seq * 1000 + id.length * 7 + (asset === 'USD' ? 1 : 0), held: seq % 5 });

function ledgerEventAt(id: string, seq: number): LedgerEvent {
  const ts = 1_000 + seq;
  const asset = ASSETS[seq % 2]!;
  if (id === 'fees' || id === 'clearing') return { type: 'EntryPosted', ts, entryId: `e${seq}`, asset, amount: seq, balance: bal(asset, id, seq) };
  switch (seq % 5) {
    case 0:
      return { type: 'Deposited', ts, transferId: `t${seq}`, asset, amount: 10, balance: bal(asset, id, seq) };
    case 1:
      return {
        type: 'FillSettled', ts, symbol: 'BTC-PERP', tradeId: seq, orderId: 1, clientOrderId: undefined, role: 'taker', side: 'buy', mode: 'margin',
        price: 100, qty: 1, notional: 100, fee: 1, feeAsset: 'USD', realizedPnl: 0, remaining: 0, orderHold: 0,
        balances: [bal('BTC', id, seq), bal('USD', id, seq)],
        position: { symbol: 'BTC-PERP', collateral: 'USD', qty: (seq % 7) - 3, entryCost: seq * 100, realizedPnl: -seq, margin: seq },
        day: 0, dayPnl: 0,
      };
    case 2:
      return { type: 'HoldReleased', ts, orderId: seq, clientOrderId: undefined, reason: 'cancelled', released: 1, balance: bal(asset, id, seq) };
    case 3:
      return { type: 'MarkPriceSet', ts, symbol: 'BTC-PERP', price: 100 + seq, collateral: 'USD', equity: 0, unrealizedPnl: 0, maintenanceMargin: 0 };
    default:
      return { type: 'LedgerRejected', ts, command: 'Withdraw', ref: `t${seq}`, clientOrderId: undefined, code: 0 as never };
  }
}

function mdEventAt(id: string, seq: number): MdEvent {
  const ts = 10_000 + seq * 400;
  const start = Math.floor(ts / 1000) * 1000;
  const c = { ts, symbol: id.slice(3), start, open: 100 + seq, high: 110 + seq, low: 90, close: 100 + (seq % 9), volume: seq, trades: seq % 4 + 1 };
  switch (seq % 4) {
    case 0:
      return { type: 'CandleUpdate', interval: '1s', ...c };
    case 1:
      return { type: 'CandleClosed', interval: '1s', ...c };
    case 2:
      return { type: 'CandleUpdate', interval: '1m', ...c, start: Math.floor(ts / 60_000) * 60_000 };
    default:
      return { type: 'MdInputIgnored', ts, symbol: id.slice(3), reason: 'badField', input: 'X' };
  }
}

/** The model: what the balances/positions read model must hold for a ledger stream after events 1..cp. */
function expectedLedger(id: string, cp: number) {
  const b = new Map<string, { asset: string; available: number; held: number; seq: number }>();
  const p = new Map<string, { instrument: string; qty: number; entry_cost: number; realized_pnl: number; margin: number; seq: number }>();
  for (let seq = 1; seq <= cp; seq++) {
    const e = ledgerEventAt(id, seq) as any;
    for (const x of e.balances ?? (e.balance ? [e.balance] : [])) b.set(x.asset, { asset: x.asset, available: x.available, held: x.held, seq });
    if (e.position) p.set(e.position.symbol, { instrument: e.position.symbol, qty: e.position.qty, entry_cost: e.position.entryCost, realized_pnl: e.position.realizedPnl, margin: e.position.margin, seq });
  }
  const sort = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
  return { b: sort(b), p: sort(p) };
}

function expectedCandles(id: string, cp: number) {
  const m = new Map<string, { interval: string; start_ts: number; open: number; high: number; low: number; close: number; volume: number; trades: number; closed: boolean; seq: number }>();
  for (let seq = 1; seq <= cp; seq++) {
    const e = mdEventAt(id, seq);
    if (e.type !== 'CandleUpdate' && e.type !== 'CandleClosed') continue;
    const k = `${e.interval}/${String(e.start).padStart(15, '0')}`;
    m.set(k, { interval: e.interval, start_ts: e.start, open: e.open, high: e.high, low: e.low, close: e.close, volume: e.volume, trades: e.trades, closed: e.type === 'CandleClosed' || (m.get(k)?.closed ?? false), seq });
  }
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
}

const json = (v: unknown): any => (typeof v === 'string' ? JSON.parse(v) : v);

/** Checks, in ONE statement (one snapshot), that a ledger or md stream's read model is exactly its first `cp` events. */
async function checkRealStream(store: Store, id: string): Promise<number> {
  if (id.startsWith('md/')) {
    const { rows } = await sql<{ cp: number | null; applied: string; c: unknown }>`
      select (select seq from projection_checkpoints where projection = 'candles' and persistence_id = ${id}) as cp,
             (select count(*)::int || ',' || coalesce(max(seq), 0) from test_applied where projection = 'candles' and persistence_id = ${id}) as applied,
             (select coalesce(json_agg(json_build_object('interval', interval, 'start_ts', start_ts, 'open', open, 'high', high, 'low', low, 'close', close,
                       'volume', volume, 'trades', trades, 'closed', closed, 'seq', seq) order by interval, start_ts), '[]')::text
                from candles where instrument = ${id.slice(3)}) as c`.execute(store.db);
    const cp = Number(rows[0]!.cp ?? 0);
    expect(rows[0]!.applied, `candles of ${id}: every event applied once, up to the checkpoint`).to.equal(`${cp},${cp}`);
    expect(json(rows[0]!.c), `candles of ${id} at checkpoint ${cp}`).to.deep.equal(expectedCandles(id, cp));
    return cp;
  }
  const { kind, account } = ledgerOfStream(id);
  const { rows } = await sql<{ cp: number | null; applied: string; b: unknown; p: unknown }>`
    select (select seq from projection_checkpoints where projection = 'balances_positions' and persistence_id = ${id}) as cp,
           (select count(*)::int || ',' || coalesce(max(seq), 0) from test_applied where projection = 'balances_positions' and persistence_id = ${id}) as applied,
           (select coalesce(json_agg(json_build_object('asset', asset, 'available', available, 'held', held, 'seq', seq) order by asset), '[]')::text
              from balances where kind = ${kind} and account = ${account}) as b,
           (select coalesce(json_agg(json_build_object('instrument', instrument, 'qty', qty, 'entry_cost', entry_cost, 'realized_pnl', realized_pnl,
                     'margin', margin, 'seq', seq) order by instrument), '[]')::text
              from positions where ${kind} = 'user' and account = ${account}) as p`.execute(store.db);
  const cp = Number(rows[0]!.cp ?? 0);
  expect(rows[0]!.applied, `ledger ${id}: every event applied once, up to the checkpoint`).to.equal(`${cp},${cp}`);
  const want = expectedLedger(id, cp);
  expect(json(rows[0]!.b), `balances of ${id} at checkpoint ${cp}`).to.deep.equal(want.b);
  expect(json(rows[0]!.p), `positions of ${id} at checkpoint ${cp}`).to.deep.equal(want.p);
  return cp;
}

for (const dialect of testDialects()) {
  describe(`store projections [${dialect}]`, function () {
    this.timeout(120_000);
    let store: Store;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ store, cleanup } = await openTestStore(dialect));
      await sql`create table test_applied (projection text, persistence_id text, seq bigint, primary key (projection, persistence_id, seq))`.execute(store.db);
    });
    after(async () => cleanup?.());

    it('projections - under concurrent appends no projection (test, balances/positions, candles) skips or repeats an event (random interleavings)', async () => {
      let run = 0;
      // The system ledger `fees` is one stream for the whole suite: its head carries over between runs.
      const shared = new Map<string, number>();
      const op = fc.oneof(
        fc.record({ kind: fc.constant('append' as const), streams: fc.uniqueArray(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 4 }), n: fc.integer({ min: 1, max: 7 }) }),
        fc.record({ kind: fc.constant('project' as const), pages: fc.integer({ min: 1, max: 3 }), pageEvents: fc.integer({ min: 1, max: 6 }) }),
        fc.record({ kind: fc.constant('crash' as const), pageEvents: fc.integer({ min: 1, max: 6 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 24 }), fc.array(op, { minLength: 1, maxLength: 16 }), async (laneA, laneB) => {
          const r = ++run;
          const prefix = `prop${r}/`;
          const name = `prop_${r}`;
          const heads = new Map<string, number>();
          // Streams 0-4: a test projection that records every (id, seq) it applies. 5-6: account ledgers,
          // 7: the `fees` system ledger, 8: a market-data stream; checked against a fold of their events.
          const streamId = (s: number) => (s <= 4 ? `${prefix}${s}` : s <= 6 ? `account/p${r}-${s}` : s === 7 ? 'fees' : `md/P${r}-X`);
          const eventAt = (id: string, seq: number): unknown =>
            id.startsWith(prefix) ? { s: id, seq } : id.startsWith('md/') ? mdEventAt(id, seq) : ledgerEventAt(id, seq);
          // The real projections, each page also recorded (same transaction) so a repeat would show.
          const record = async (trx: Transaction<Database>, name: string, page: { persistenceId: string; fromSeq: number; events: readonly unknown[] }) => {
            for (let i = 0; i < page.events.length; i++) {
              await trx.insertInto('test_applied' as any).values({ projection: name, persistence_id: page.persistenceId, seq: page.fromSeq + i } as any).execute();
            }
          };
          // Both entry points wrapped: the runner applies batches of streams through applyPages.
          const real: Projection[] = [balancesAndPositionsProjection, candlesProjection].map((pr: Projection<any>) => ({
            ...pr,
            async apply(trx, page) {
              await pr.apply(trx, page);
              await record(trx, pr.name, page);
            },
            async applyPages(trx, pages) {
              await pr.applyPages!(trx, pages);
              for (const page of pages) await record(trx, pr.name, page);
            },
          }));
          const projection: Projection = {
            name,
            streamPrefix: prefix,
            async apply(trx, page) {
              for (let i = 0; i < page.events.length; i++) {
                const seq = page.fromSeq + i;
                expect(page.events[i]).to.deep.equal({ s: page.persistenceId, seq });
                await trx.insertInto('test_applied' as any).values({ projection: name, persistence_id: page.persistenceId, seq } as any).execute();
              }
            },
          };
          const runner = new ProjectionRunner(store.db, store.journal, [projection, ...real]);
          const gc = new GroupCommitter(store.journal, { inFlightMax: 2 });
          const exec = async (o: fc.Arbitrary<unknown> extends never ? never : any) => {
            if (o.kind === 'append') {
              const writes: JournalWrite[] = o.streams.map((s: number) => {
                const id = streamId(s);
                const expectedSeq = heads.get(id) ?? shared.get(id) ?? 0;
                heads.set(id, expectedSeq + o.n);
                if (id === 'fees') shared.set(id, expectedSeq + o.n);
                return { persistenceId: id, expectedSeq, events: Array.from({ length: o.n }, (_, k) => eventAt(id, expectedSeq + k + 1)) };
              });
              // One writer per stream, as in the runtime: the group committer orders writes of an id.
              await Promise.all(writes.map((w) => gc.submit(w)));
            } else if (o.kind === 'project') {
              await runner.runOnce({ pagesMax: o.pages, pageEventsMax: o.pageEvents });
            } else {
              // A runner that dies after applying a page, before its transaction commits.
              const crashing = new ProjectionRunner(
                store.db,
                store.journal,
                [projection, ...real].map((pr) => ({
                  ...pr,
                  apply: async (trx: any, page: any) => { await pr.apply(trx, page); throw new Error('injected crash mid-page'); },
                  applyPages: pr.applyPages && (async (trx: any, pages: any) => { await pr.applyPages!(trx, pages); throw new Error('injected crash mid-page'); }),
                })),
              );
              await crashing.runOnce({ pagesMax: 1, pageEventsMax: o.pageEvents }).catch((e: Error) => expect(e.message).to.match(/injected crash/));
            }
            // Invariant at every step: what was applied for each stream is exactly 1..checkpoint.
            // (one statement: one snapshot of both tables, as the other lane may be committing a page)
            const applied = await sql<{ persistence_id: string; n: number; mx: number; cp: number | null }>`
              select a.persistence_id, count(*)::int as n, max(a.seq) as mx,
                     (select c.seq from projection_checkpoints c where c.projection = ${name} and c.persistence_id = a.persistence_id) as cp
                from test_applied a where a.projection = ${name} group by a.persistence_id`.execute(store.db);
            for (const row of applied.rows) {
              expect(Number(row.n), 'no event skipped or repeated').to.equal(Number(row.mx));
              expect(Number(row.mx), 'applied up to the checkpoint, atomically').to.equal(Number(row.cp));
            }
            // The real read models: exactly the fold of events 1..checkpoint, never more, never less.
            for (const id of heads.keys()) if (!id.startsWith(prefix)) await checkRealStream(store, id);
          };
          // Two lanes run concurrently: their awaits interleave appends and projection pages.
          const lane = async (ops: any[]) => {
            for (const o of ops) await exec(o);
          };
          await Promise.all([lane(laneA), lane(laneB)]);
          await runner.runOnce();
          const total = [...heads].filter(([id]) => id.startsWith(prefix)).reduce((a, [, b]) => a + b, 0);
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from test_applied where projection = ${name}`.execute(store.db);
          expect(Number(rows[0]!.n)).to.equal(total);
          for (const [id, head] of heads) {
            if (id.startsWith(prefix)) expect(await runner.checkpoint(name, id)).to.equal(head);
            else expect(await checkRealStream(store, id), `${id} caught up`).to.equal(head);
          }
        }),
        { numRuns: dialect === 'pg' ? 25 : 6 },
      );
    });

    it('projections - the orders/trades page fold equals applying the events one by one, for any history and any page split', async () => {
      let run = 0;
      const rows = async (instrument: string) => {
        const o = await sql<Record<string, unknown>>`select order_id, account, client_order_id, side, order_type, tif, price, stop_price, qty, leaves_qty, filled_qty,
            filled_notional, status, cancel_reason, is_open, created_ts, updated_ts from orders where instrument = ${instrument} order by order_id`.execute(store.db);
        const t = await sql<Record<string, unknown>>`select trade_id, ts, price, qty, taker_order_id, taker_account, taker_side, maker_order_id, maker_account, taker_fee, maker_fee
            from trades where instrument = ${instrument} order by trade_id`.execute(store.db);
        return { orders: o.rows, trades: t.rows };
      };
      await fc.assert(
        fc.asyncProperty(bookHistory, fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 8 }), async (events, cuts) => {
          const r = ++run;
          const ref = `REF${r}`;
          const folded = `FOLD${r}`;
          await store.db.transaction().execute(async (trx) => {
            for (const e of events) await applyOneReference(trx, ref, e);
          });
          const bounds = [...new Set([0, ...cuts.filter((c) => c < events.length), events.length])].sort((a, b) => a - b);
          for (let i = 0; i + 1 < bounds.length; i++) {
            const from = bounds[i]!;
            const to = bounds[i + 1]!;
            await store.db.transaction().execute((trx) =>
              ordersAndTradesProjection.apply(trx, { persistenceId: `book/${folded}`, fromSeq: from + 1, toSeq: to, events: events.slice(from, to) }),
            );
          }
          expect(await rows(folded)).to.deep.equal(await rows(ref));
        }),
        { numRuns: dialect === 'pg' ? 150 : 120 },
      );
    });

    it('read models - orders and trades from book events, with paged queries', async () => {
      const ev: BookEvent[] = [
        { type: 'OrderAccepted', ts: 1000, orderId: 1, account: 'a1', clientOrderId: 'c1', side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10, stopPrice: 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: 'cancelTaker' },
        { type: 'OrderRested', ts: 1000, orderId: 1, side: 'sell', price: 100, qty: 10 },
        { type: 'OrderAccepted', ts: 2000, orderId: 2, account: 'a2', clientOrderId: undefined, side: 'buy', orderType: 'limit', tif: 'IOC', price: 101, qty: 4, stopPrice: 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: 'cancelTaker' },
        { type: 'Fill', ts: 2000, tradeId: 1, price: 100, qty: 4, takerOrderId: 2, takerAccount: 'a2', takerSide: 'buy', makerOrderId: 1, makerAccount: 'a1', takerFee: 1, makerFee: 0, takerRemaining: 0, makerRemaining: 6 },
        { type: 'OrderAccepted', ts: 3000, orderId: 3, account: 'a1', clientOrderId: 'c3', side: 'sell', orderType: 'limit', tif: 'GTC', price: 105, qty: 1, stopPrice: 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: 'cancelTaker' },
        { type: 'OrderRested', ts: 3000, orderId: 3, side: 'sell', price: 105, qty: 1 },
        { type: 'OrderCancelled', ts: 4000, orderId: 3, account: 'a1', side: 'sell', price: 105, qty: 1, reason: 'user', rested: true },
      ];
      await store.journal.append([{ persistenceId: 'book/BTC-USD', expectedSeq: 0, events: ev.slice(0, 4) }]);
      await store.journal.append([{ persistenceId: 'book/BTC-USD', expectedSeq: 4, events: ev.slice(4) }]);
      const runner = new ProjectionRunner(store.db, store.journal, [ordersAndTradesProjection]);
      expect(await runner.runOnce({ streams: (pid) => pid !== 'book/BTC-USD' }), 'a stream the filter leaves out is not projected').to.equal(0);
      expect(await runner.runOnce({ streams: (pid) => pid === 'book/BTC-USD' })).to.equal(ev.length);
      expect(await runner.runOnce(), 'idempotent: nothing new').to.equal(0);
      const rm = store.readModels;
      const open = await rm.ordersByAccount('a1', { open: true });
      expect(open.items.map((o) => [o.orderId, o.status, o.leavesQty, o.filledQty, o.avgPrice])).to.deep.equal([[1, 'partiallyFilled', 6, 4, 100]]);
      const p1 = await rm.ordersByAccount('a1', { limit: 1 });
      expect(p1.items.map((o) => o.orderId)).to.deep.equal([3]);
      expect(p1.items[0]).to.include({ status: 'cancelled', cancelReason: 'user' });
      const p2 = await rm.ordersByAccount('a1', { limit: 1, after: p1.next! });
      expect(p2.items.map((o) => o.orderId)).to.deep.equal([1]);
      expect(p2.next).to.equal(undefined);
      expect((await rm.ordersByAccount('a2')).items[0]).to.include({ status: 'filled', filledQty: 4, avgPrice: 100 });
      expect((await rm.trades({ instrument: 'BTC-USD' }, 0, 10_000)).items.map((t) => t.tradeId)).to.deep.equal([1]);
      expect((await rm.trades({ account: 'a1' }, 0, 10_000)).items).to.have.length(1);
      expect((await rm.trades({ account: 'a2' }, 2001, 10_000)).items).to.have.length(0);
    });

    it('read models - balances and positions by account from ledger streams (user, fees, clearing)', async () => {
      const usd = (available: number, held: number): BalanceAfter => ({ asset: 'USD', available, held });
      const acc: LedgerEvent[] = [
        { type: 'Deposited', ts: 10, transferId: 't1', asset: 'USD', amount: 1000, balance: usd(1000, 0) },
        { type: 'Deposited', ts: 11, transferId: 't2', asset: 'BTC', amount: 5, balance: { asset: 'BTC', available: 5, held: 0 } },
        { type: 'HoldChanged', ts: 12, orderId: 7, price: 100, qty: 2, pendingPrice: 0, pendingQty: 0, hold: 201, balance: usd(799, 201) },
        {
          type: 'FillSettled', ts: 13, symbol: 'ETH-PERP', tradeId: 1, orderId: 7, clientOrderId: 'c7', role: 'taker', side: 'buy', mode: 'margin',
          price: 100, qty: 2, notional: 200, fee: 1, feeAsset: 'USD', realizedPnl: 0, remaining: 0, orderHold: 0,
          balances: [usd(799, 200)], position: { symbol: 'ETH-PERP', collateral: 'USD', qty: 2, entryCost: 200, realizedPnl: 0, margin: 200 }, day: 0, dayPnl: -1,
        },
        { type: 'MarkPriceSet', ts: 14, symbol: 'ETH-PERP', price: 90, collateral: 'USD', equity: 979, unrealizedPnl: -20, maintenanceMargin: 9 },
        {
          type: 'FillSettled', ts: 15, symbol: 'ETH-PERP', tradeId: 2, orderId: 8, clientOrderId: undefined, role: 'maker', side: 'sell', mode: 'margin',
          price: 110, qty: 2, notional: 220, fee: 1, feeAsset: 'USD', realizedPnl: 20, remaining: 0, orderHold: 0,
          balances: [usd(1018, 0)], position: { symbol: 'ETH-PERP', collateral: 'USD', qty: 0, entryCost: 0, realizedPnl: 20, margin: 0 }, day: 0, dayPnl: 18,
        },
        {
          type: 'FillSettled', ts: 16, symbol: 'BTC-PERP', tradeId: 3, orderId: 9, clientOrderId: undefined, role: 'maker', side: 'sell', mode: 'margin',
          price: 50, qty: 1, notional: 50, fee: 0, feeAsset: 'USD', realizedPnl: 0, remaining: 0, orderHold: 0,
          balances: [usd(1013, 5)], position: { symbol: 'BTC-PERP', collateral: 'USD', qty: -1, entryCost: -50, realizedPnl: 0, margin: 5 }, day: 0, dayPnl: 18,
        },
      ];
      await store.journal.append([
        { persistenceId: 'account/acc-9', expectedSeq: 0, events: acc.slice(0, 4) },
        { persistenceId: 'clearing', expectedSeq: 0, events: [{ type: 'EntryPosted', ts: 15, entryId: 'pnl-2', asset: 'USD', amount: -20, balance: usd(-20, 0) }] },
      ]);
      const runner = new ProjectionRunner(store.db, store.journal, [balancesAndPositionsProjection]);
      expect(await runner.runOnce()).to.be.greaterThanOrEqual(5);
      await store.journal.append([{ persistenceId: 'account/acc-9', expectedSeq: 4, events: acc.slice(4) }]);
      expect(await runner.runOnce()).to.equal(3);
      expect(await runner.runOnce(), 'idempotent: nothing new').to.equal(0);
      const rm = store.readModels;
      expect((await rm.balancesByAccount('acc-9')).map((b) => [b.asset, b.available, b.held, b.total, b.seq, b.updatedTs])).to.deep.equal([
        ['BTC', 5, 0, 5, 2, 11],
        ['USD', 1013, 5, 1018, 7, 16],
      ]);
      expect((await rm.balancesByAccount('clearing', 'clearing')).map((b) => [b.asset, b.available])).to.deep.equal([['USD', -20]]);
      expect(await rm.balancesByAccount('clearing'), 'a system ledger is not a user account').to.deep.equal([]);
      expect(await rm.balancesByAccount('nobody')).to.deep.equal([]);
      const all = await rm.positionsByAccount('acc-9');
      expect(all.map((p) => [p.instrument, p.qty, p.entryCost, p.realizedPnl, p.margin, p.collateral])).to.deep.equal([
        ['BTC-PERP', -1, -50, 0, 5, 'USD'],
        ['ETH-PERP', 0, 0, 20, 0, 'USD'],
      ]);
      expect((await rm.positionsByAccount('acc-9', { open: true })).map((p) => p.instrument)).to.deep.equal(['BTC-PERP']);
    });

    it('read models - candles by instrument, interval and range from md/<symbol>, paged, closed sticky', async () => {
      const c = (type: 'CandleUpdate' | 'CandleClosed', interval: '1s' | '1m', start: number, close: number, ts: number): MdEvent => ({
        type, ts, symbol: 'ETH-USD', interval, start, open: 100, high: Math.max(100, close), low: Math.min(100, close), close, volume: close - 90, trades: 1,
      });
      const ev: MdEvent[] = [
        c('CandleUpdate', '1s', 1000, 101, 1100),
        c('CandleUpdate', '1m', 0, 101, 1100),
        c('CandleUpdate', '1s', 1000, 103, 1500),
        c('CandleClosed', '1s', 1000, 103, 2100),
        c('CandleUpdate', '1s', 2000, 99, 2100),
        { type: 'TradeTick', ts: 2100, symbol: 'ETH-USD', tradeId: 5, price: 99, qty: 9, takerSide: 'sell' },
        c('CandleClosed', '1s', 2000, 98, 3000),
        c('CandleUpdate', '1s', 5000, 97, 5000),
      ];
      await store.journal.append([{ persistenceId: 'md/ETH-USD', expectedSeq: 0, events: ev.slice(0, 3) }]);
      const runner = new ProjectionRunner(store.db, store.journal, [candlesProjection]);
      await runner.runOnce({ pageEventsMax: 2 });
      await store.journal.append([{ persistenceId: 'md/ETH-USD', expectedSeq: 3, events: ev.slice(3) }]);
      await runner.runOnce({ pageEventsMax: 3 });
      expect(await runner.checkpoint('candles', 'md/ETH-USD')).to.equal(ev.length);
      const rm = store.readModels;
      const p1 = await rm.candles('ETH-USD', '1s', 0, 10_000, { limit: 2 });
      expect(p1.items.map((k) => [k.start, k.close, k.closed])).to.deep.equal([[1000, 103, true], [2000, 98, true]]);
      const p2 = await rm.candles('ETH-USD', '1s', 0, 10_000, { limit: 2, after: p1.next! });
      expect(p2.items.map((k) => [k.start, k.close, k.closed, k.interval, k.instrument])).to.deep.equal([[5000, 97, false, '1s', 'ETH-USD']]);
      expect(p2.next).to.equal(undefined);
      expect((await rm.candles('ETH-USD', '1s', 1500, 5000)).items.map((k) => k.start), 'range is on the bucket start').to.deep.equal([2000]);
      expect((await rm.candles('ETH-USD', '1s', 0, 10_000, { closedOnly: true })).items).to.have.length(2);
      expect((await rm.candles('ETH-USD', '1m', 0, 60_000)).items.map((k) => [k.start, k.close, k.volume, k.closed])).to.deep.equal([[0, 101, 11, false]]);
      expect((await rm.candles('BTC-USD', '1s', 0, 10_000)).items).to.deep.equal([]);
    });
  });
}

describe('store - ledger streams', () => {
  it('store - names the system ledgers both bare and as the engine actors journal them (account/fees, account/clearing)', () => {
    expect(ledgerOfStream('account/acc-1')).to.deep.equal({ kind: 'user', account: 'acc-1' });
    expect(ledgerOfStream('fees')).to.deep.equal({ kind: 'fees', account: 'fees' });
    expect(ledgerOfStream('account/fees')).to.deep.equal({ kind: 'fees', account: 'fees' });
    expect(ledgerOfStream('clearing')).to.deep.equal({ kind: 'clearing', account: 'clearing' });
    expect(ledgerOfStream('account/clearing')).to.deep.equal({ kind: 'clearing', account: 'clearing' });
    expect(() => ledgerOfStream('book/BTC-USD')).to.throw(/not a ledger stream/);
  });
});

describe('store projections - scheduling', () => {
  /** A runner that records the options of each poll instead of touching a database. */
  class Recording extends ProjectionRunner {
    readonly polls: { timeBudgetMs?: number; until?: () => boolean }[] = [];
    constructor() {
      super(undefined as never, undefined as never, []);
    }
    override async runOnce(opts: { timeBudgetMs?: number; until?: () => boolean } = {}): Promise<number> {
      this.polls.push(opts);
      return 0;
    }
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('start - a quiet journal gets the idle share until appends arrive; a busy one the busy share; no counter, always busy', async () => {
    let appends = 0;
    const r = new Recording();
    const loop = r.start(10, () => {}, { appends: () => appends, busyShareMax: 0.25, idleShareMax: 0.9, idleAppendsMax: 3 });
    await sleep(35);
    appends += 50; // a burst
    const burstAt = r.polls.length;
    await sleep(35);
    await loop.stop();
    const quiet = r.polls.slice(0, burstAt);
    expect(quiet.length).to.be.greaterThan(0);
    for (const p of quiet) expect(p.timeBudgetMs).to.be.closeTo(90, 1e-9); // 10 ms * 0.9 / 0.1
    // The quiet poll in progress ends once more than 3 appends arrived after it started.
    expect(quiet.at(-1)!.until!()).to.equal(true);
    expect(r.polls[burstAt]!.timeBudgetMs, 'the poll after the burst').to.be.closeTo(10 / 3, 1e-9); // 10 ms * 0.25 / 0.75
    expect(r.polls[burstAt]!.until).to.equal(undefined);

    const plain = new Recording();
    const loop2 = plain.start(10, () => {});
    await sleep(25);
    await loop2.stop();
    expect(plain.polls.length).to.be.greaterThan(0);
    for (const p of plain.polls) expect([p.timeBudgetMs, p.until]).to.deep.equal([10 / 3, undefined]);
  });
});

for (const dialect of testDialects()) {
  describe(`store projections - until [${dialect}]`, function () {
    this.timeout(60_000);
    it('runOnce - `until` ends a poll after its first transaction', async () => {
      const { store, cleanup } = await openTestStore(dialect);
      try {
        for (let i = 0; i < 3; i++) {
          const ev: BookEvent[] = [{ type: 'OrderAccepted', ts: 1000, orderId: 1, account: 'a1', clientOrderId: undefined, side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10, stopPrice: 0, expireAt: 0, postOnly: false, reduceOnly: false, stp: 'cancelTaker' }];
          await store.journal.append([{ persistenceId: `book/S${i}`, expectedSeq: 0, events: ev }]);
        }
        const runner = new ProjectionRunner(store.db, store.journal, [ordersAndTradesProjection]);
        // One stream per transaction: `until` lets the first run, then stops the poll.
        expect(await runner.runOnce({ batchStreamsMax: 1, until: () => true })).to.equal(1);
        expect(await runner.runOnce({ batchStreamsMax: 1 }), 'the rest on the next poll').to.equal(2);
      } finally {
        await cleanup();
      }
    });
  });
}

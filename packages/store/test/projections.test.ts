import { expect } from 'chai';
import fc from 'fast-check';
import { sql } from 'kysely';
import type { JournalWrite } from '@bourse/actors';
import type { BookEvent } from '@bourse/schemas';
import { GroupCommitter, ordersAndTradesProjection, ProjectionRunner, type Projection, type Store } from '../src/index.js';
import { openTestStore, testDialects } from '../src/testing.js';

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

    it('projections - under concurrent appends a projection never skips or repeats an event (random interleavings)', async () => {
      let run = 0;
      const op = fc.oneof(
        fc.record({ kind: fc.constant('append' as const), streams: fc.uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }), n: fc.integer({ min: 1, max: 7 }) }),
        fc.record({ kind: fc.constant('project' as const), pages: fc.integer({ min: 1, max: 3 }), pageEvents: fc.integer({ min: 1, max: 6 }) }),
        fc.record({ kind: fc.constant('crash' as const), pageEvents: fc.integer({ min: 1, max: 6 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 24 }), fc.array(op, { minLength: 1, maxLength: 16 }), async (laneA, laneB) => {
          const r = ++run;
          const prefix = `prop${r}/`;
          const name = `prop_${r}`;
          const heads = new Map<string, number>();
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
          const runner = new ProjectionRunner(store.db, store.journal, [projection]);
          const gc = new GroupCommitter(store.journal, { inFlightMax: 2 });
          const exec = async (o: fc.Arbitrary<unknown> extends never ? never : any) => {
            if (o.kind === 'append') {
              const writes: JournalWrite[] = o.streams.map((s: number) => {
                const id = `${prefix}${s}`;
                const expectedSeq = heads.get(id) ?? 0;
                heads.set(id, expectedSeq + o.n);
                return { persistenceId: id, expectedSeq, events: Array.from({ length: o.n }, (_, k) => ({ s: id, seq: expectedSeq + k + 1 })) };
              });
              // One writer per stream, as in the runtime: the group committer orders writes of an id.
              await Promise.all(writes.map((w) => gc.submit(w)));
            } else if (o.kind === 'project') {
              await runner.runOnce({ pagesMax: o.pages, pageEventsMax: o.pageEvents });
            } else {
              // A runner that dies after applying a page, before its transaction commits.
              const crashing = new ProjectionRunner(store.db, store.journal, [
                { ...projection, apply: async (trx, page) => { await projection.apply(trx, page); throw new Error('injected crash mid-page'); } },
              ]);
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
          };
          // Two lanes run concurrently: their awaits interleave appends and projection pages.
          const lane = async (ops: any[]) => {
            for (const o of ops) await exec(o);
          };
          await Promise.all([lane(laneA), lane(laneB)]);
          await runner.runOnce();
          const total = [...heads.values()].reduce((a, b) => a + b, 0);
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from test_applied where projection = ${name}`.execute(store.db);
          expect(Number(rows[0]!.n)).to.equal(total);
          for (const [id, head] of heads) expect(await runner.checkpoint(name, id)).to.equal(head);
        }),
        { numRuns: dialect === 'pg' ? 25 : 6 },
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
      expect(await runner.runOnce()).to.equal(ev.length);
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
  });
}

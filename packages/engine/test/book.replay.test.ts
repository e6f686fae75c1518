/**
 * Snapshot and replay: for random histories, apply(all events) from init, and restore(snapshot at k) +
 * apply(events after k), both reproduce the live state hash after every command; and a restored book
 * then behaves exactly like the live one (same events for the same later commands).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { BookCommand, BookEvent } from '@bourse/schemas';
import { bookMachine } from '../src/book/index.js';
import { build, checkStructure, inst as plain, instrumentArb, templateArb } from './book-fixtures.js';
import type { BuildContext } from './book-fixtures.js';

const runs = Number(process.env.BOOK_RUNS ?? 400);
const replay = process.env.BOOK_SEED !== undefined ? { seed: Number(process.env.BOOK_SEED), path: process.env.BOOK_PATH } : {};

describe('book - snapshot and replay', function () {
  this.timeout(120_000);

  it('book - replaying events from init or from any snapshot reproduces the live state hash', () => {
    fc.assert(
      fc.property(instrumentArb, fc.array(templateArb, { minLength: 1, maxLength: 150, size: 'max' }), fc.nat(), (inst, templates, kSeed) => {
        const m = bookMachine(inst);
        let live = m.init();
        const ctx: BuildContext = { ts: 0, nextId: 0, live: [] };
        const cmds: BookCommand[] = [];
        const events: BookEvent[][] = [];
        const snaps: string[] = [JSON.stringify(m.snapshot(live))];
        const hashes: string[] = [m.stateHash(live)];
        for (const t of templates) {
          ctx.ts += t.dt;
          ctx.live = [...live.orders.values()].map((o) => [o.id, o.account] as const);
          const cmd = build(t, inst, ctx);
          const out: BookEvent[] = [];
          live = m.step(live, cmd, out);
          cmds.push(cmd);
          events.push(out);
          snaps.push(JSON.stringify(m.snapshot(live)));
          hashes.push(m.stateHash(live));
        }
        const n = cmds.length;

        // every event from init
        let r = m.init();
        for (let i = 0; i < n; i++) {
          for (const e of events[i]!) r = m.apply(r, e);
          expect(m.stateHash(r), `replay from init, after command ${i}: ${JSON.stringify(cmds[i])}`).to.equal(hashes[i + 1]);
        }
        checkStructure(r);

        // restore at k, then the journal tail
        const k = kSeed % (n + 1);
        let q = m.restore(JSON.parse(snaps[k]!));
        expect(m.stateHash(q)).to.equal(hashes[k]);
        for (let i = k; i < n; i++) {
          for (const e of events[i]!) q = m.apply(q, e);
          expect(m.stateHash(q), `replay from snapshot ${k}, after command ${i}`).to.equal(hashes[i + 1]);
        }
        checkStructure(q);

        // a restored book decides exactly like the live one
        let p = m.restore(JSON.parse(snaps[k]!));
        for (let i = k; i < n; i++) {
          const out: BookEvent[] = [];
          p = m.step(p, cmds[i]!, out);
          expect(out, `restored at ${k}, command ${i}`).to.deep.equal(events[i]);
        }
        expect(m.snapshot(m.restore(JSON.parse(snaps[n]!)))).to.deep.equal(JSON.parse(snaps[n]!));
      }),
      { numRuns: runs, verbose: 1, ...replay },
    );
  });

  it('book - the snapshot is canonical plain data and the hash sees every change', () => {
    const inst = bookMachine(plain);
    let s = inst.init();
    const h0 = inst.stateHash(s);
    const out: BookEvent[] = [];
    s = inst.step(s, { type: 'NewOrder', ts: 1, orderId: 1, account: 'a', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 2 }, out);
    const h1 = inst.stateHash(s);
    expect(h1).to.not.equal(h0);
    s = inst.step(s, { type: 'AmendOrder', ts: 2, orderId: 1, account: 'a', qty: 1 }, out);
    expect(inst.stateHash(s)).to.not.equal(h1);
    const snap = inst.snapshot(s);
    expect(JSON.parse(JSON.stringify(snap))).to.deep.equal(snap);
  });
});

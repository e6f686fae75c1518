/**
 * Model-based test: the fast book against the naive reference book (test/book-reference.ts), command by
 * command, with the book's invariants checked after every step.
 *
 * A failure prints fast-check's seed and path. Replay it with
 *   BOOK_SEED=<seed> BOOK_PATH=<path> pnpm exec mocha --import=tsx packages/engine/test/book.model.test.ts
 * and scale the search with BOOK_RUNS=<n>.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { BookCommand, BookEvent, Instrument } from '@bourse/schemas';
import { OrderBook } from '../src/book/index.js';
import { RefBook } from './book-reference.js';
import { Ledger, build, checkStructure, instrumentArb, templateArb } from './book-fixtures.js';
import type { BuildContext, Template } from './book-fixtures.js';

interface Model {
  ref: RefBook;
  ledger: Ledger;
  ctx: BuildContext;
  inst: Instrument;
  /** Per order: the total quantity last asked for (NewOrder qty, then each accepted AmendOrder qty) and what executed. */
  totals: Map<number, { asked: number; executed: number }>;
}
interface Real {
  book: OrderBook;
}

class BookCommandRun implements fc.Command<Model, Real> {
  private shown = '';
  constructor(readonly t: Template) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    m.ctx.ts += this.t.dt;
    m.ctx.live = m.ref.live.map((o) => [o.id, o.account] as const);
    const cmd = build(this.t, m.inst, m.ctx);
    this.shown = JSON.stringify(cmd);
    const got: BookEvent[] = [];
    r.book.step(cmd, got);
    const want = m.ref.step(cmd);
    expect(got, `events of ${this.shown}`).to.deep.equal(want);
    for (const e of got) m.ledger.event(e);
    checkTotals(m, cmd, got);
    m.ledger.checkBook(r.book);
    checkStructure(r.book);
    const resting = r.book.restingOrders().map((o) => [o.orderId, o.side, o.price, o.qty, o.filled, o.seq]);
    const refResting = [...m.ref.resting('buy'), ...m.ref.resting('sell')].map((o) => [o.id, o.side, o.price, o.qty, o.filled, o.seq]);
    expect(resting, 'resting orders').to.deep.equal(refResting);
    expect(r.book.armedStops().map((o) => [o.orderId, o.qty, o.seq])).to.deep.equal(m.ref.armed().map((o) => [o.id, o.qty, o.seq]));
    expect([r.book.lastPrice, r.book.tradeId, r.book.status, r.book.lastTs]).to.deep.equal([m.ref.lastPrice, m.ref.tradeId, m.ref.status, m.ref.lastTs]);
  }
  toString(): string {
    return this.shown || JSON.stringify(this.t);
  }
}

/** FIX amend semantics: an order never executes more than the total its owner last asked for. */
function checkTotals(m: Model, cmd: BookCommand, got: BookEvent[]): void {
  const rejected = got.some((e) => e.type === 'CommandRejected');
  if (!rejected && cmd.type === 'NewOrder') m.totals.set(cmd.orderId, { asked: cmd.qty, executed: 0 });
  if (!rejected && cmd.type === 'AmendOrder' && cmd.qty !== undefined) m.totals.get(cmd.orderId)!.asked = cmd.qty;
  for (const e of got) {
    if (e.type !== 'Fill') continue;
    for (const id of [e.takerOrderId, e.makerOrderId]) {
      const t = m.totals.get(id)!;
      t.executed += e.qty;
      if (t.executed > t.asked) throw new Error(`invariant: order ${id} executed ${t.executed} > asked total ${t.asked}`);
    }
  }
  for (const o of [...m.ref.live]) {
    const t = m.totals.get(o.id)!;
    if (t.executed !== o.filled || o.filled + o.qty > t.asked) throw new Error(`invariant: order ${o.id} filled ${o.filled} + open ${o.qty} vs asked ${t.asked}, executed ${t.executed}`);
  }
}

const runs = Number(process.env.BOOK_RUNS ?? 400);
const replay = process.env.BOOK_SEED !== undefined ? { seed: Number(process.env.BOOK_SEED), path: process.env.BOOK_PATH } : {};

describe('book - model-based against the reference book', function () {
  this.timeout(120_000);

  it('book - fills, resting orders and invariants match the reference after every command', () => {
    fc.assert(
      fc.property(instrumentArb, fc.commands([templateArb.map((t) => new BookCommandRun(t))], { maxCommands: 120, size: 'max' }), (inst, cmds) => {
        fc.modelRun(() => ({ model: { ref: new RefBook(inst), ledger: new Ledger(), ctx: { ts: 0, nextId: 0, live: [] }, inst, totals: new Map() }, real: { book: new OrderBook(inst) } }), cmds);
      }),
      { numRuns: runs, verbose: 1, ...replay },
    );
  });

  it('book - a dense single-account-heavy run (STP everywhere) matches the reference', () => {
    const arb = templateArb.map((t) => (t.k === 'new' ? { ...t, account: t.pick % 4 === 0 ? 'b' : 'a' } : t));
    fc.assert(
      fc.property(instrumentArb, fc.commands([arb.map((t) => new BookCommandRun(t as Template))], { maxCommands: 80, size: 'max' }), (inst, cmds) => {
        fc.modelRun(() => ({ model: { ref: new RefBook(inst), ledger: new Ledger(), ctx: { ts: 0, nextId: 0, live: [] }, inst, totals: new Map() }, real: { book: new OrderBook(inst) } }), cmds);
      }),
      { numRuns: Math.ceil(runs / 2), verbose: 1, ...replay },
    );
  });
});

/**
 * The ledger's idempotency state is bounded (risk/ledger.ts "idempotency"): a window of the last
 * LEDGER_ID_WINDOW transfer / entry ids, and one high-water mark per fill-entry source.
 *
 * The property test prints fast-check's seed and path when it fails; replay one with
 * FC_SEED=<seed> FC_PATH=<path>.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { LedgerCommand, LedgerEvent, LedgerKind } from '@bourse/schemas';
import { Reject } from '@bourse/schemas';
import { IdWindow, LEDGER_ID_WINDOW, fillEntryOf, ledgerMachine } from '../src/risk/ledger.js';
import type { LedgerState } from '../src/risk/ledger.js';

const replay = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true } : {};

/** One ledger with its event log; `code` is the reject code of a command, 0 when applied. */
class Ledger {
  readonly m;
  s: LedgerState;
  readonly log: LedgerEvent[] = [];
  constructor(account: string, accountNo: number, kind: LedgerKind) {
    this.m = ledgerMachine({ account, accountNo, kind });
    this.s = this.m.init();
  }
  code(c: LedgerCommand): number {
    const out: LedgerEvent[] = [];
    this.s = this.m.step(this.s, c, out);
    this.log.push(...out);
    const r = out.find((e) => e.type === 'LedgerRejected');
    return r && r.type === 'LedgerRejected' ? r.code : 0;
  }
  hash(): string {
    return this.m.stateHash(this.s);
  }
  replayed(): string {
    let r = this.m.init();
    for (const e of this.log) r = this.m.apply(r, e);
    return this.m.stateHash(r);
  }
}

const deposit = (transferId: string, amount = 1): LedgerCommand => ({ type: 'Deposit', ts: 1, transferId, asset: 'USD', amount });
const withdraw = (transferId: string, amount = 1): LedgerCommand => ({ type: 'Withdraw', ts: 1, transferId, asset: 'USD', amount });
const entry = (entryId: string, amount = 1): LedgerCommand => ({ type: 'PostEntry', ts: 1, entryId, asset: 'USD', amount });
const feeId = (symbol: string, tradeId: number, account: string, role: 'taker' | 'maker') => `fee:${symbol}:${tradeId}:${account}:${role}`;

describe('risk - bounded idempotency: the id window', () => {
  it('refuses a transfer or entry id seen within the window, for Deposit, Withdraw and PostEntry alike', () => {
    const a = new Ledger('a', 3, 'user');
    expect(a.code(deposit('t1', 10))).to.equal(0);
    expect(a.code(deposit('t1', 10))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.code(withdraw('t1'))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.code(withdraw('w1'))).to.equal(0);
    expect(a.code(deposit('w1'))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.s.balances.get('USD')).to.deep.equal({ available: 9, held: 0 });
    const fees = new Ledger('fees', 1, 'fees');
    expect(fees.code(entry('adj-1'))).to.equal(0);
    expect(fees.code(entry('adj-1'))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
  });

  it(`keeps exactly the last ${LEDGER_ID_WINDOW} ids: every one of them is refused again, the older ones are forgotten`, () => {
    const a = new Ledger('a', 3, 'user');
    const n = LEDGER_ID_WINDOW + 1_000;
    for (let k = 0; k < n; k++) expect(a.code(deposit(`d${k}`))).to.equal(0);
    expect(a.s.ids.size).to.equal(LEDGER_ID_WINDOW);
    expect(a.s.ids.toArray()[0]).to.equal(`d${n - LEDGER_ID_WINDOW}`);
    expect(a.s.ids.toArray().at(-1)).to.equal(`d${n - 1}`);
    for (const k of [n - LEDGER_ID_WINDOW, n - LEDGER_ID_WINDOW + 1, n - 2, n - 1]) expect(a.code(deposit(`d${k}`)), `d${k}`).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    // The documented limit: an id older than the window is no longer recognised.
    expect(a.code(deposit('d0'))).to.equal(0);
    expect(a.s.ids.size).to.equal(LEDGER_ID_WINDOW);
    expect(a.replayed()).to.equal(a.hash());
  });

  it('a window restored from a snapshot taken after it wrapped evicts in the same order as the live one', () => {
    const a = new Ledger('a', 3, 'user');
    for (let k = 0; k < LEDGER_ID_WINDOW + 123; k++) a.code(deposit(`d${k}`));
    const snap = JSON.stringify(a.m.snapshot(a.s));
    const b = new Ledger('a', 3, 'user');
    b.s = b.m.restore(JSON.parse(snap));
    expect(b.hash()).to.equal(a.hash());
    for (let k = 0; k < 500; k++) {
      const c = k % 7 === 0 ? deposit(`d${LEDGER_ID_WINDOW + 123 + k - 40}`) : deposit(`e${k}`);
      expect(b.code(c), JSON.stringify(c)).to.equal(a.code(c));
    }
    expect(b.hash()).to.equal(a.hash());
    expect(b.s.ids.toArray()).to.deep.equal(a.s.ids.toArray());
    expect(a.replayed()).to.equal(a.hash());
  });

  it('IdWindow is a ring: add is a no-op for an id it holds, and toArray is oldest first', () => {
    const w = new IdWindow(3);
    for (const id of ['a', 'b', 'a', 'c', 'd']) w.add(id);
    expect(w.toArray()).to.deep.equal(['b', 'c', 'd']);
    expect([w.has('a'), w.has('b'), w.size]).to.deep.equal([false, true, 3]);
    w.add('e');
    w.add('f');
    expect(w.toArray()).to.deep.equal(['d', 'e', 'f']);
    expect(() => new IdWindow(0)).to.throw(RangeError);
  });
});

describe('risk - bounded idempotency: fill entries', () => {
  it('parses only the saga\'s fill-entry ids, accounts with ":" included', () => {
    expect(fillEntryOf('fee:BTC-USD:12:acc-7:taker')).to.deep.equal({ source: 'fee:BTC-USD:acc-7', tradeId: 12, role: 0 });
    expect(fillEntryOf('pnl:ETH-PERP:3:x:taker:maker')).to.deep.equal({ source: 'pnl:ETH-PERP:x:taker', tradeId: 3, role: 1 });
    for (const id of ['adj-1', 'fee:BTC-USD:0:a:taker', 'fee:btc:1:a:taker', 'fee:BTC-USD:1:a:both', 'BTC-USD:1:a:taker:fee', 'fee:BTC-USD:1::taker', 'fee:BTC-USD:99999999999999999:a:taker']) {
      expect(fillEntryOf(id), id).to.equal(undefined);
    }
  });

  it('refuses every earlier entry of a source however old, and its state is one mark per source after 100k entries', () => {
    const fees = new Ledger('fees', 1, 'fees');
    const accounts = ['a', 'b', 'c', 'd'];
    const symbols = ['BTC-USD', 'ETH-USD'];
    const tradeIds = new Map<string, number>();
    let applied = 0;
    for (let k = 0; applied < 100_000; k++) {
      const symbol = symbols[k % 2]!;
      const t = (tradeIds.get(symbol) ?? 0) + 1;
      tradeIds.set(symbol, t);
      const taker = accounts[k % 4]!;
      const maker = accounts[(k + 1 + (k >> 3)) % 4]!;
      expect(fees.code(entry(feeId(symbol, t, taker, 'taker'), 3))).to.equal(0);
      expect(fees.code(entry(feeId(symbol, t, maker, 'maker'), 1))).to.equal(0);
      applied += 2;
    }
    expect(fees.s.ids.size).to.equal(0);
    expect(fees.s.fills.size).to.equal(accounts.length * symbols.length);
    expect(JSON.stringify(fees.m.snapshot(fees.s)).length).to.be.lessThan(2_000);
    expect(fees.s.balances.get('USD')).to.deep.equal({ available: 4 * (applied / 2), held: 0 });
    // Redeliveries, the oldest first: all refused.
    for (const [symbol, t, acc, role] of [['BTC-USD', 1, 'a', 'taker'], ['ETH-USD', 2, 'b', 'taker'], ['BTC-USD', 24_999, 'a', 'maker']] as const) {
      const last = fees.s.fills.get(`fee:${symbol}:${acc}`)!;
      expect(t <= last.tradeId, `${symbol} ${t} ${acc}`).to.equal(true);
      expect(fees.code(entry(feeId(symbol, t, acc, role)))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    }
    for (const [k, m] of fees.s.fills) {
      const [, symbol, acc] = k.split(':') as [string, string, string];
      const role = m.role === 0 ? 'taker' : 'maker';
      expect(fees.code(entry(feeId(symbol, m.tradeId, acc, role))), k).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    }
    expect(fees.replayed()).to.equal(fees.hash());
  });

  it('one account on both sides of a fill: taker then maker are both applied, each once', () => {
    const fees = new Ledger('fees', 1, 'fees');
    expect(fees.code(entry(feeId('BTC-USD', 5, 'a', 'taker')))).to.equal(0);
    expect(fees.code(entry(feeId('BTC-USD', 5, 'a', 'maker')))).to.equal(0);
    expect(fees.code(entry(feeId('BTC-USD', 5, 'a', 'taker')))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(fees.code(entry(feeId('BTC-USD', 5, 'a', 'maker')))).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(fees.code(entry(feeId('BTC-USD', 6, 'a', 'maker')))).to.equal(0);
    // Sources are independent: another prefix, symbol or account has its own mark.
    expect(fees.code(entry(feeId('BTC-USD', 1, 'b', 'maker')))).to.equal(0);
    expect(fees.code(entry(`pnl:BTC-USD:1:a:taker`))).to.equal(0);
    expect(fees.code(entry(feeId('ETH-USD', 1, 'a', 'taker')))).to.equal(0);
  });
});

/**
 * Random histories on a `fees` ledger and a user ledger: transfers with ids from a small pool (so
 * retries collide), fill entries from several sources in source order with random redeliveries of
 * earlier ones. Checked against a model that remembers every id (the histories stay inside the
 * window): exactly the first application of each id lands. Then replay from init, snapshot + tail
 * (through JSON) and a snapshot round trip all give the live hash.
 */
type Op =
  | { k: 'deposit' | 'withdraw' | 'entry'; id: number; amount: number }
  | { k: 'fill'; source: number; advance: boolean; back: number }
  | { k: 'snapshot' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constantFrom('deposit' as const, 'withdraw' as const, 'entry' as const), id: fc.nat(30), amount: fc.integer({ min: 1, max: 50 }) }),
  fc.record({ k: fc.constant('fill' as const), source: fc.nat(5), advance: fc.boolean(), back: fc.nat(4) }),
  fc.constant({ k: 'snapshot' as const }),
);

describe('risk - bounded idempotency over random histories', function () {
  this.timeout(120_000);
  it('applies each id exactly once, and replay, snapshot + tail and a snapshot round trip give the live hash', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 200 }), (ops) => {
        const user = new Ledger('u', 3, 'user');
        const fees = new Ledger('fees', 1, 'fees');
        const seen = new Set<string>();
        /** Per source: the fill entries posted so far, in order. */
        const posted: string[][] = [[], [], [], [], [], []];
        const tradeIds = [0, 0];
        const snaps: { ledger: Ledger; data: string; at: number }[] = [];
        for (const o of ops) {
          if (o.k === 'snapshot') {
            for (const l of [user, fees]) snaps.push({ ledger: l, data: JSON.stringify(l.m.snapshot(l.s)), at: l.log.length });
            continue;
          }
          if (o.k === 'fill') {
            const list = posted[o.source]!;
            let id: string;
            if (o.advance || list.length === 0) {
              // Sources 0-2 trade BTC-USD, 3-5 ETH-USD; a new trade id for that symbol, this source's leg.
              const sym = o.source < 3 ? 0 : 1;
              const t = ++tradeIds[sym]!;
              id = feeId(sym === 0 ? 'BTC-USD' : 'ETH-USD', t, `acc-${o.source % 3}`, o.source % 2 === 0 ? 'taker' : 'maker');
              list.push(id);
            } else id = list[Math.max(0, list.length - 1 - o.back)]!;
            const want = seen.has(id) ? Reject.LEDGER_DUPLICATE_TRANSFER : 0;
            expect(fees.code(entry(id, 2)), id).to.equal(want);
            seen.add(id);
            continue;
          }
          const id = `${o.k === 'entry' ? 'x' : 't'}${o.id}`;
          if (o.k === 'entry') {
            const want = seen.has(`fees|${id}`) ? Reject.LEDGER_DUPLICATE_TRANSFER : 0;
            expect(fees.code(entry(id, o.amount)), id).to.equal(want);
            seen.add(`fees|${id}`);
          } else {
            const before = user.s.balances.get('USD')?.available ?? 0;
            const code = user.code(o.k === 'deposit' ? deposit(id, o.amount) : withdraw(id, o.amount));
            if (seen.has(`u|${id}`)) expect(code, id).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
            else if (o.k === 'withdraw' && o.amount > before) expect(code, id).to.equal(Reject.LEDGER_INSUFFICIENT_AVAILABLE);
            else {
              expect(code, id).to.equal(0);
              seen.add(`u|${id}`);
            }
          }
        }
        for (const l of [user, fees]) {
          const live = l.hash();
          expect(l.replayed(), 'replay from init').to.equal(live);
          expect(l.m.stateHash(l.m.restore(JSON.parse(JSON.stringify(l.m.snapshot(l.s))))), 'snapshot round trip').to.equal(live);
        }
        for (const { ledger, data, at } of snaps) {
          let t = ledger.m.restore(JSON.parse(data));
          for (const e of ledger.log.slice(at)) t = ledger.m.apply(t, e);
          expect(ledger.m.stateHash(t), 'snapshot + tail').to.equal(ledger.hash());
        }
      }),
      { numRuns: 300, verbose: 1, ...replay },
    );
  });
});

describe('risk - bounded idempotency: version-2 snapshots still load', () => {
  // Written by the ledger before the window (commit 45ca6e3): every id applied, sorted.
  const OLD_USER = {
    v: 2, account: 'acc-7', accountNo: 7, kind: 'user', orderSeq: 0, balances: [['USD', 1050, 0]], transfers: ['dep-1', 'dep-10', 'dep-2', 'wd-1'],
    orders: [], positions: [], marks: [], instruments: [], limits: [0, 0, 0], day: 0, dayPnl: 0, liquidating: false,
  };
  const OLD_FEES = {
    v: 2, account: 'fees', accountNo: 1, kind: 'fees', orderSeq: 0, balances: [['USD', 24, 0]],
    transfers: [
      'adj-1', 'fee:BTC-USD:10:acc-7:taker', 'fee:BTC-USD:1:acc-7:taker', 'fee:BTC-USD:1:acc-8:maker', 'fee:BTC-USD:2:acc-7:maker',
      'fee:BTC-USD:2:acc-8:taker', 'fee:ETH-USD:3:acc-7:maker', 'fee:ETH-USD:3:acc-7:taker',
    ],
    orders: [], positions: [], marks: [], instruments: [], limits: [0, 0, 0], day: 0, dayPnl: 0, liquidating: false,
  };

  it('a user ledger keeps its transfer ids (as the window) and its balances', () => {
    const a = new Ledger('acc-7', 7, 'user');
    a.s = a.m.restore(structuredClone(OLD_USER));
    expect(a.s.ids.toArray()).to.deep.equal(['dep-1', 'dep-10', 'dep-2', 'wd-1']);
    expect(a.s.balances.get('USD')).to.deep.equal({ available: 1050, held: 0 });
    for (const id of OLD_USER.transfers) expect(a.code(deposit(id)), id).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(a.code(deposit('dep-3'))).to.equal(0);
    // It snapshots in the new format, which restores to the same hash.
    const snap = a.m.snapshot(a.s) as { v: number };
    expect(snap.v).to.equal(3);
    expect(a.m.stateHash(a.m.restore(JSON.parse(JSON.stringify(snap))))).to.equal(a.hash());
  });

  it('a fees ledger turns its fill entries into marks (the largest per source) and refuses all of them again', () => {
    const f = new Ledger('fees', 1, 'fees');
    f.s = f.m.restore(structuredClone(OLD_FEES));
    expect(f.s.ids.toArray()).to.deep.equal(['adj-1']);
    expect([...f.s.fills].sort()).to.deep.equal([
      ['fee:BTC-USD:acc-7', { tradeId: 10, role: 0 }],
      ['fee:BTC-USD:acc-8', { tradeId: 2, role: 0 }],
      ['fee:ETH-USD:acc-7', { tradeId: 3, role: 1 }],
    ]);
    for (const id of OLD_FEES.transfers) expect(f.code(entry(id)), id).to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(f.code(entry('fee:BTC-USD:5:acc-7:maker')), 'below the mark').to.equal(Reject.LEDGER_DUPLICATE_TRANSFER);
    expect(f.code(entry('fee:BTC-USD:11:acc-7:taker'))).to.equal(0);
    expect(f.code(entry('fee:BTC-USD:3:acc-8:maker'))).to.equal(0);
    expect(f.s.balances.get('USD')).to.deep.equal({ available: 26, held: 0 });
  });

  it(`more than ${LEDGER_ID_WINDOW} old ids: the window is the last ones in sorted order, the same on every restore`, () => {
    const ids = Array.from({ length: LEDGER_ID_WINDOW + 50 }, (_, k) => `t${String(k).padStart(6, '0')}`);
    const old = { ...OLD_USER, transfers: ids };
    const m = ledgerMachine({ account: 'acc-7', accountNo: 7, kind: 'user' });
    const s = m.restore(structuredClone(old));
    expect(s.ids.size).to.equal(LEDGER_ID_WINDOW);
    expect(s.ids.toArray()).to.deep.equal(ids.slice(50));
    expect(m.stateHash(m.restore(structuredClone(old)))).to.equal(m.stateHash(s));
  });
});

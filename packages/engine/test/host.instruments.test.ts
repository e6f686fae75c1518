/**
 * Instruments defined at run time (`VenueCore.addInstrument`, journaled by `venue/registry`): on the
 * embedded venue they trade, settle, stream and project like configured ones, survive a restart on the
 * same data directory, and bad or conflicting definitions get typed rejects. The registry's snapshot
 * keeps them (and still loads the old shape). The margin-call routing reads the ledger's own
 * instruments, so an outbox re-derived on replay matches the live one although the venue's list grew.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryJournal } from '@bourse/actors';
import { Reject, defineInstrument, parseInstrument } from '@bourse/schemas';
import type { Instrument } from '@bourse/schemas';
import { openEmbeddedVenue } from '../src/host/index.js';
import type { EmbeddedVenue } from '../src/host/index.js';
import { registryKind } from '../src/host/kinds.js';
import type { RegistryCommand, RegistryEvent, RegistryState } from '../src/host/kinds.js';
import type { PublicEvent } from '../src/venue/gateway.js';
import { SPOT } from './traders.js';

const ctx = { traceId: 'test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The admin body of a new cash instrument: the required fields plus a fee. */
const ETH = { symbol: 'ETH-USD', mode: 'cash', base: 'ETH', quote: 'USD', tickSize: 5, lotSize: 2, minQty: 2, maxQty: 100, takerFeeBps: 10 };

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('host - instruments defined at run time (embedded)', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('host/instruments - add on PGlite, trade between two accounts (fills settle, L2 and trades stream, read models project), restart on the same data dir: still there and tradable', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bourse-instr-'));
    dirs.push(dir);
    const open = () => openEmbeddedVenue({ pglite: dir }, { instruments: [SPOT], tickMs: 0, projectionIntervalMs: 20 });
    let v: EmbeddedVenue = await open();
    try {
      expect(v.instruments().map((i) => i.symbol)).to.deep.equal(['BTC-USD']);
      expect((await v.placeOrder('nobody', { symbol: 'ETH-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 100, qty: 2 }, ctx)).ok).to.equal(false);
      const added = await v.addInstrument(ETH, ctx);
      expect(added.ok, JSON.stringify(added)).to.equal(true);
      const eth = (added as { instrument: Instrument }).instrument;
      expect(eth).to.deep.include({ symbol: 'ETH-USD', tickSize: 5, lotSize: 2, takerFeeBps: 10, makerFeeBps: 0, maxLeverage: 1 });
      expect(v.instruments().map((i) => i.symbol)).to.deep.equal(['BTC-USD', 'ETH-USD']);
      // the identical definition again: the same answer; a different one: a conflict
      expect(await v.addInstrument(ETH, ctx)).to.deep.equal(added);
      const other = await v.addInstrument({ ...ETH, tickSize: 10 }, ctx);
      expect(other.ok).to.equal(false);
      expect((other as { code: number }).code).to.equal(Reject.ADMIN_INSTRUMENT_EXISTS);

      const pub: PublicEvent[] = [];
      v.subscribePublic('ETH-USD', (e) => pub.push(e));
      for (const a of ['m', 't']) expect((await v.openAccount(a, ctx)).ok).to.equal(true);
      expect((await v.deposit('m', 'ETH', 1_000, 'd1', ctx)).ok).to.equal(true);
      expect((await v.deposit('t', 'USD', 1_000_000, 'd2', ctx)).ok).to.equal(true);
      // the new instrument's own rules apply: lot 2, tick 5
      const badLot = await v.placeOrder('m', { symbol: 'ETH-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 3 }, ctx);
      expect(badLot.ok).to.equal(false);
      expect((await v.placeOrder('m', { symbol: 'ETH-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 100, qty: 10 }, ctx)).ok).to.equal(true);
      expect((await v.placeOrder('t', { symbol: 'ETH-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 105, qty: 4 }, ctx)).ok).to.equal(true);
      await v.settle();
      // 4 ETH at 100: the taker pays 400 + 1 fee (10 bps of 400, rounded up)
      const bal = (a: string) => Object.fromEntries([...(v.node.inspect(`account/${a}`)?.state as { s: { balances: Map<string, { available: number; held: number }> } }).s.balances].map(([k, b]) => [k, b.available + b.held]));
      expect(bal('t')).to.deep.equal({ USD: 1_000_000 - 401, ETH: 4 });
      expect(bal('m')).to.deep.equal({ ETH: 996, USD: 400 });
      expect(bal('fees')).to.deep.equal({ USD: 1 });
      expect(v.l2Snapshot('ETH-USD', 10)).to.deep.include({ asks: [[100, 6]], bids: [] });
      expect(pub.some((e) => e.event.type === 'TradeTick')).to.equal(true);
      await until(async () => (await v.reads.trades({ instrument: 'ETH-USD' }, 0, Date.now() + 1, { limit: 10 })).items.length === 1, 10_000, 'the trade in the read model');
      await until(async () => (await v.reads.balancesByAccount('t')).some((b) => b.asset === 'ETH' && b.available === 4), 10_000, 'the balance in the read model');
      await v.close();

      // Every process restarts: the definition comes back from the journal, and the book with its resting order.
      v = await open();
      expect(v.instruments().map((i) => i.symbol)).to.deep.equal(['BTC-USD', 'ETH-USD']);
      expect(v.instruments()[1]).to.deep.equal(eth);
      expect(v.l2Snapshot('ETH-USD', 10)).to.deep.include({ asks: [[100, 6]] });
      expect(await v.addInstrument(ETH, ctx)).to.deep.equal(added);
      expect((await v.placeOrder('t', { symbol: 'ETH-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 100, qty: 6 }, ctx)).ok).to.equal(true);
      await v.settle();
      expect(bal('t')).to.deep.equal({ USD: 1_000_000 - 401 - 601, ETH: 10 });
      expect(v.l2Snapshot('ETH-USD', 10)).to.deep.include({ asks: [], bids: [] });
    } finally {
      await v.close();
    }
  });

  it('host/instruments - bad definitions get ADMIN_INVALID_INSTRUMENT, a configured symbol with another spec ADMIN_INSTRUMENT_EXISTS; nothing is defined by them', async () => {
    const v = await openEmbeddedVenue({ journal: new MemoryJournal() }, { instruments: [SPOT], tickMs: 0 });
    try {
      const bad: unknown[] = [
        undefined, null, 'ETH-USD', [ETH], 42,
        { ...ETH, symbol: 'eth usd' }, { ...ETH, symbol: '' }, { ...ETH, symbol: 7 }, { ...ETH, symbol: 'X'.repeat(40) },
        { ...ETH, tickSize: 0 }, { ...ETH, tickSize: -5 }, { ...ETH, lotSize: 0 }, { ...ETH, tickSize: 1.5 }, { ...ETH, tickSize: '5' },
        { ...ETH, mode: 'futures' }, { ...ETH, mode: 3 }, { ...ETH, quote: 'ETH' }, { ...ETH, base: '' },
        { ...ETH, takerFeeBps: 5_000 }, { ...ETH, minQty: 3 }, { ...ETH, mode: 'margin' }, { ...ETH, tickSzie: 5 },
        { symbol: 'ETH-USD' }, { mode: 'cash', base: 'ETH', quote: 'USD', tickSize: 1, lotSize: 1 },
        Object.fromEntries(Object.entries(ETH).filter(([k]) => k !== 'lotSize')),
      ];
      for (const b of bad) {
        const r = await v.addInstrument(b, ctx);
        expect(r.ok, JSON.stringify(b)).to.equal(false);
        expect((r as { code: number }).code, JSON.stringify(b)).to.equal(Reject.ADMIN_INVALID_INSTRUMENT);
        expect((r as { message: string }).message.length).to.be.greaterThan(0);
      }
      const spot = { symbol: SPOT.symbol, mode: SPOT.mode, base: SPOT.base, quote: SPOT.quote, tickSize: SPOT.tickSize, lotSize: SPOT.lotSize };
      const clash = await v.addInstrument(spot, ctx);
      expect((clash as { code: number }).code).to.equal(Reject.ADMIN_INSTRUMENT_EXISTS);
      // the configured definition itself is answered as defined
      expect(await v.addInstrument({ ...SPOT }, ctx)).to.deep.equal({ ok: true, instrument: SPOT });
      expect(v.instruments()).to.deep.equal([SPOT]);
      // a margin instrument with its margin fields is fine
      const perp = await v.addInstrument({ symbol: 'ETH-PERP', mode: 'margin', base: 'ETH', quote: 'USD', tickSize: 1, lotSize: 1, maxLeverage: 10, maintenanceMarginBps: 500 }, ctx);
      expect(perp.ok, JSON.stringify(perp)).to.equal(true);
      expect(v.instruments().map((i) => i.symbol)).to.deep.equal(['BTC-USD', 'ETH-PERP']);
    } finally {
      await v.close();
    }
  });

  it('host/instruments - parseInstrument: required fields, no unknown fields, defaults as defineInstrument, validateInstrument on the whole', () => {
    const ok = parseInstrument(ETH);
    expect(ok.ok).to.equal(true);
    expect((ok as { instrument: Instrument }).instrument).to.deep.equal(defineInstrument(ETH as Partial<Instrument> & { symbol: string }));
    const missing = parseInstrument({ symbol: 'ETH-USD' });
    expect(missing.ok).to.equal(false);
    expect((missing as { problems: string[] }).problems).to.include.members(['mode: required', 'tickSize: required']);
    expect((parseInstrument({ ...ETH, extra: 1 }) as { problems: string[] }).problems).to.deep.equal(['extra: not an instrument field']);
  });

  it('host/instruments - the registry: defines once, answers an identical resend the same, refuses a different one, and its snapshot keeps the definitions (the old shape still loads)', () => {
    const configured = new Map([[SPOT.symbol, SPOT]]);
    const k = registryKind(100, configured);
    const m = k.machine;
    let s: RegistryState = m.init();
    const run = (c: RegistryCommand) => {
      const out: RegistryEvent[] = [];
      s = m.step(s, c, out);
      return { out, reply: k.reply!(s, c, out) };
    };
    const eth = parseInstrument(ETH) as { instrument: Instrument };
    const first = run({ type: 'DefineInstrument', ts: 5, instrument: eth.instrument });
    expect(first.out).to.deep.equal([{ type: 'InstrumentDefined', ts: 5, instrument: eth.instrument }]);
    expect(first.reply).to.deep.equal({ code: 0, instrument: eth.instrument });
    const again = run({ type: 'DefineInstrument', ts: 6, instrument: { ...eth.instrument } });
    expect(again.out).to.deep.equal([]);
    expect(again.reply).to.deep.equal(first.reply);
    expect(run({ type: 'DefineInstrument', ts: 7, instrument: { ...eth.instrument, lotSize: 1, minQty: 1 } }).reply).to.deep.include({ code: Reject.ADMIN_INSTRUMENT_EXISTS });
    expect(run({ type: 'DefineInstrument', ts: 7, instrument: { ...SPOT, tickSize: 1 } }).reply).to.deep.include({ code: Reject.ADMIN_INSTRUMENT_EXISTS });
    expect(run({ type: 'DefineInstrument', ts: 7, instrument: { ...eth.instrument, symbol: 'X-Y', tickSize: 0 } as Instrument }).reply).to.deep.include({ code: Reject.ADMIN_INVALID_INSTRUMENT });
    expect(run({ type: 'DefineInstrument', ts: 7, instrument: 'junk' as unknown as Instrument }).reply).to.deep.include({ code: Reject.ADMIN_INVALID_INSTRUMENT });
    run({ type: 'OpenAccount', account: 'alice' });
    expect(run({ type: 'ListInstruments' }).reply).to.deep.equal([eth.instrument]);
    // snapshot → restore gives the same state; replaying the events gives it too
    const snap = m.snapshot(s);
    expect(m.stateHash(m.restore(snap))).to.equal(m.stateHash(s));
    let r = m.init();
    r = m.apply(r, first.out[0]!);
    r = m.apply(r, { type: 'AccountOpened', account: 'alice', accountNo: 3 });
    expect(m.stateHash(r)).to.equal(m.stateHash(s));
    // a registry snapshot from before run-time instruments (no `i`)
    const old = m.restore({ a: [['bob', 3]], n: 4 });
    expect([...old.accounts]).to.deep.equal([['bob', 3]]);
    expect(old.instruments.size).to.equal(0);
  });

  it('host/instruments - a margin call journaled before an instrument was added sends nothing to its book after a restart (the outbox reads the ledger\'s own instruments)', async () => {
    const perp = defineInstrument({ symbol: 'BTC-PERP', mode: 'margin', base: 'BTC', quote: 'USD', maxLeverage: 10, maintenanceMarginBps: 500 });
    const journal = new MemoryJournal();
    const open = () => openEmbeddedVenue({ journal }, { instruments: [perp], tickMs: 0 });
    let v = await open();
    try {
      for (const a of ['mm', 'thin']) expect((await v.openAccount(a, ctx)).ok).to.equal(true);
      expect((await v.deposit('mm', 'USD', 100_000_000, 'd1', ctx)).ok).to.equal(true);
      expect((await v.deposit('thin', 'USD', 1_100, 'd2', ctx)).ok).to.equal(true);
      expect((await v.placeOrder('mm', { symbol: 'BTC-PERP', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 10 }, ctx)).ok).to.equal(true);
      expect((await v.placeOrder('thin', { symbol: 'BTC-PERP', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_000, qty: 10, leverage: 10 }, ctx)).ok).to.equal(true);
      await v.settle();
      expect((await v.setMarkPrice('BTC-PERP', 800, ctx)).ok).to.equal(true);
      await v.settle();
      const events: string[] = [];
      for await (const page of journal.read('account/thin', 1)) for (const e of page.events) events.push((e as { type?: string }).type ?? '');
      expect(events).to.include('MarginCall');
      // A margin instrument in the same collateral, defined after the margin call; then every process restarts.
      expect((await v.addInstrument({ symbol: 'ETH-PERP', mode: 'margin', base: 'ETH', quote: 'USD', tickSize: 1, lotSize: 1, maxLeverage: 10, maintenanceMarginBps: 500 }, ctx)).ok).to.equal(true);
      await v.close();
      v = await open();
      expect(v.instruments().map((i) => i.symbol)).to.deep.equal(['BTC-PERP', 'ETH-PERP']);
      await v.settle();
      // Re-derived from the journaled MarginCall, the outbox is what it was live: nothing for ETH-PERP's book.
      expect(await journal.highestSeq('book/ETH-PERP')).to.equal(0);
    } finally {
      await v.close();
    }
  });
});

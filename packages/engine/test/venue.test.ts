/**
 * The engine end to end, in one process: the real book, ledgers and market data wired by the saga
 * (src/venue). Random traders on a cash and a margin instrument; after every step the DESIGN.md
 * guarantees are checked on the composition, not on one machine alone.
 *
 * Replay a failure with VENUE_SEED=<seed> VENUE_PATH=<path> (printed by fast-check).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { rejectName } from '@bourse/schemas';
import type { BookEvent, LedgerEvent, MdEvent, Side } from '@bourse/schemas';
import { Venue, FEES_ACCOUNT, CLEARING_ACCOUNT } from '../src/venue/venue.js';
import type { VenueEvent } from '../src/venue/venue.js';
import { bookMachine } from '../src/book/index.js';
import { ledgerMachine } from '../src/risk/index.js';
import { marketDataMachine, l2Snapshot } from '../src/marketdata/index.js';
import { SPOT, PERP, ACCOUNTS, MID, opArb, funded, orderRequest } from './traders.js';
import type { Op } from './traders.js';

function run(ops: Op[]): { venue: Venue; log: VenueEvent[] } {
  const venue = new Venue([SPOT, PERP]);
  for (const a of ACCOUNTS) venue.openAccount(a);
  const log: VenueEvent[] = [];
  venue.subscribe((e) => log.push(e));
  let ts = 1_000;
  let n = 0;
  for (const op of ops) {
    ts += 7;
    const acct = ACCOUNTS[(op as { acct?: number }).acct ?? 0]!;
    switch (op.k) {
      case 'deposit':
        venue.deposit(ts, acct, op.asset, op.amount, `t${++n}`);
        break;
      case 'withdraw':
        venue.withdraw(ts, acct, op.asset, op.amount, `t${++n}`);
        break;
      case 'place':
        venue.place(ts, acct, orderRequest(op, ++n));
        break;
      case 'cancel':
      case 'amend': {
        const orders = [...venue.ledgers.get(acct)!.state.orders.values()];
        if (orders.length === 0) break;
        const o = orders[op.nth % orders.length]!;
        if (op.k === 'cancel') venue.cancel(ts, acct, o.symbol, o.orderId);
        else venue.amend(ts, acct, o.symbol, o.orderId, { price: MID + op.offset * 5, qty: op.qty });
        break;
      }
      case 'mass':
        venue.massCancel(ts, acct, op.perp ? PERP.symbol : SPOT.symbol);
        break;
      case 'mark':
        venue.mark(ts, PERP.symbol, MID + op.offset * 5);
        break;
      case 'tick':
        ts += op.dt;
        venue.tick(ts);
        break;
    }
    checkInvariants(venue);
  }
  return { venue, log };
}

function checkInvariants(venue: Venue): void {
  // Guarantee 2: every asset conserved across users, fees and clearing.
  expect(venue.conservation(), 'conservation').to.deep.equal([]);
  for (const [account, l] of venue.ledgers) {
    if (account === CLEARING_ACCOUNT) continue;
    for (const [asset, b] of l.state.balances) {
      expect(b.held, `${account} ${asset} held`).to.be.at.least(0);
      if (asset === 'BTC') expect(b.available, `${account} BTC available (cash asset)`).to.be.at.least(0);
    }
  }
  for (const symbol of [SPOT.symbol, PERP.symbol]) {
    const book = venue.books.get(symbol)!.state;
    // Guarantee 3: never crossed at rest.
    const bid = book.bestBid();
    const ask = book.bestAsk();
    if (bid !== undefined && ask !== undefined && bid > 0 && ask > 0) expect(bid, `${symbol} crossed`).to.be.below(ask);
    // Market data agrees with the book it is derived from: L2 equals the book's aggregated depth.
    const snap = l2Snapshot(venue.marketData.get(symbol)!.state, 0);
    const depth = (side: Side) => book.depth(side, 1_000).map((d) => [d.price, d.qty]);
    expect(snap.bids, `${symbol} L2 bids`).to.deep.equal(depth('buy'));
    expect(snap.asks, `${symbol} L2 asks`).to.deep.equal(depth('sell'));
    // Every resting order of a user is one its ledger holds for, and vice versa.
    for (const account of ACCOUNTS) {
      const resting = book.openOrders(account).map((o) => o.orderId).sort((a, b) => a - b);
      const held = [...venue.ledgers.get(account)!.state.orders.values()].filter((o) => o.symbol === symbol).map((o) => o.orderId).sort((a, b) => a - b);
      expect(resting, `${account} ${symbol} orders: book vs ledger`).to.deep.equal(held);
    }
  }
  // The fees ledger holds exactly the fees that were charged (checked via conservation) and never pays out.
  for (const b of venue.ledgers.get(FEES_ACCOUNT)!.state.balances.values()) expect(b.available).to.be.at.least(0);
}

/** Guarantee 4: every stream's journal, replayed from nothing, gives the live state hash. */
function checkReplay(venue: Venue, log: VenueEvent[]): void {
  const byStream = new Map<string, VenueEvent[]>();
  for (const e of log) (byStream.get(e.stream) ?? byStream.set(e.stream, []).get(e.stream)!).push(e);
  for (const [symbol, b] of venue.books) {
    const m = bookMachine(venue.instruments.get(symbol)!);
    let s = m.init();
    for (const e of byStream.get(`book/${symbol}`) ?? []) s = m.apply(s, e.event as BookEvent);
    expect(m.stateHash(s), `replay book/${symbol}`).to.equal(b.machine.stateHash(b.state));
  }
  for (const [symbol, md] of venue.marketData) {
    const m = marketDataMachine(symbol);
    let s = m.init();
    for (const e of byStream.get(`md/${symbol}`) ?? []) s = m.apply(s, e.event as MdEvent);
    expect(m.stateHash(s), `replay md/${symbol}`).to.equal(md.machine.stateHash(md.state));
  }
  for (const [account, l] of venue.ledgers) {
    const m = ledgerMachine({ account, accountNo: l.state.accountNo, kind: l.state.kind });
    let s = m.init();
    for (const e of byStream.get(`account/${account}`) ?? []) s = m.apply(s, e.event as LedgerEvent);
    expect(m.stateHash(s), `replay account/${account}`).to.equal(l.machine.stateHash(l.state));
  }
}

const seed = process.env.VENUE_SEED ? Number(process.env.VENUE_SEED) : undefined;
const path = process.env.VENUE_PATH;
const numRuns = Number(process.env.VENUE_RUNS ?? 120);

describe('venue - the saga over real book, ledgers and market data', () => {
  it('venue - conserves assets, keeps books sound, L2 equal to the book, ledgers equal to books, after every step', function () {
    this.timeout(120_000);
    let fills = 0;
    const debugCounts = new Map<string, number>();
    let liquidations = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 150, size: 'max' }), (ops) => {
        const { venue, log } = run([...funded, ...ops]);
        checkReplay(venue, log);
        fills += log.filter((e) => e.kind === 'book' && e.event.type === 'Fill').length;
        if (process.env.VENUE_DEBUG) {
          for (const e of log) {
            const code = e.event.type === 'LedgerRejected' || e.event.type === 'CommandRejected' ? rejectName(e.event.code) : e.event.type === 'OrderCancelled' ? `cancel:${e.event.reason}` : undefined;
            if (code) debugCounts.set(code, (debugCounts.get(code) ?? 0) + 1);
          }
        }
        liquidations += log.filter((e) => e.kind === 'ledger' && e.event.type === 'LiquidationOrder').length;
      }),
      { numRuns, verbose: 0, ...(seed !== undefined ? { seed } : {}), ...(path ? { path } : {}) },
    );
    if (process.env.VENUE_DEBUG) console.log([...debugCounts].sort((a, b) => b[1] - a[1]));
    // The property must actually exercise the saga: trades happened, and margin was called.
    expect(fills, 'fills across runs').to.be.greaterThan(numRuns * 5);
    // Liquidations happen in some seeds only; the deterministic test below covers that path every time.
    if (process.env.VENUE_DEBUG) console.log({ fills, liquidations });
  });

  it('venue - a fill settles both sides and pays fees into the fees ledger', () => {
    const v = new Venue([SPOT]);
    v.openAccount('maker');
    v.openAccount('taker');
    v.deposit(1, 'maker', 'BTC', 1_000, 'd1');
    v.deposit(1, 'taker', 'USD', 1_000_000, 'd2');
    const ask = v.place(2, 'maker', { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 3 });
    expect(ask.rejected).to.equal(undefined);
    const bid = v.place(3, 'taker', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_005, qty: 2 });
    expect(bid.rejected).to.equal(undefined);
    const fill = bid.events.find((e) => e.kind === 'book' && e.event.type === 'Fill');
    expect(fill, 'a fill').to.not.equal(undefined);
    const bal = (a: string, asset: string) => v.ledgers.get(a)!.state.balances.get(asset);
    // notional 2 * 1000 = 2000 quote; taker fee ceil(2000 * 25 / 10000) = 5, maker fee ceil(2000 * 10 / 10000) = 2
    expect(bal('taker', 'BTC')).to.deep.equal({ available: 200, held: 0 });
    expect(bal('taker', 'USD')).to.deep.equal({ available: 1_000_000 - 2_000 - 5, held: 0 });
    expect(bal('maker', 'USD')).to.deep.equal({ available: 2_000 - 2, held: 0 });
    expect(bal('maker', 'BTC')).to.deep.equal({ available: 1_000 - 300, held: 100 });
    expect(bal(FEES_ACCOUNT, 'USD')).to.deep.equal({ available: 7, held: 0 });
    expect(v.conservation()).to.deep.equal([]);
  });

  it('venue - accounts with 64-character ids (the longest allowed) still pay their fees into the fees ledger', () => {
    const v = new Venue([SPOT]);
    const maker = 'm'.repeat(64);
    const taker = 't'.repeat(63) + '@';
    v.openAccount(maker);
    v.openAccount(taker);
    v.deposit(1, maker, 'BTC', 1_000, 'd1');
    v.deposit(1, taker, 'USD', 1_000_000, 'd2');
    expect(v.place(2, maker, { symbol: 'BTC-USD', side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 3 }).rejected).to.equal(undefined);
    const bid = v.place(3, taker, { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'IOC', price: 1_005, qty: 2 });
    expect(bid.rejected).to.equal(undefined);
    const refused = bid.events.filter((e) => e.kind === 'ledger' && e.event.type === 'LedgerRejected');
    expect(refused, JSON.stringify(refused)).to.deep.equal([]);
    expect(v.ledgers.get(FEES_ACCOUNT)!.state.balances.get('USD')).to.deep.equal({ available: 7, held: 0 });
    expect(v.conservation()).to.deep.equal([]);
  });

  it('venue - a margin call cancels open orders and liquidates through the book, conserving every asset', () => {
    const v = new Venue([PERP]);
    for (const a of ['thin', 'rich', 'mm']) v.openAccount(a);
    v.deposit(1, 'thin', 'USD', 2_000, 'd1');
    v.deposit(1, 'rich', 'USD', 10_000_000, 'd2');
    v.deposit(1, 'mm', 'USD', 10_000_000, 'd3');
    // thin goes long 10 at 1000 with 10x leverage (margin 1000) against rich.
    v.place(2, 'rich', { symbol: PERP.symbol, side: 'sell', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 10, leverage: 10 });
    const long = v.place(3, 'thin', { symbol: PERP.symbol, side: 'buy', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 10, leverage: 10 });
    expect(long.rejected).to.equal(undefined);
    // thin also rests a bid that adds risk; the margin call must cancel it.
    const extra = v.place(4, 'thin', { symbol: PERP.symbol, side: 'buy', orderType: 'limit', tif: 'GTC', price: 900, qty: 1, leverage: 10 });
    expect(extra.rejected).to.equal(undefined);
    // A market maker bids, so the liquidation has someone to sell to.
    v.place(5, 'mm', { symbol: PERP.symbol, side: 'buy', orderType: 'limit', tif: 'GTC', price: 820, qty: 20, leverage: 10 });
    // The mark falls 18%: a 1800 loss leaves ~195 of equity, below maintenance (5% of 8200 = 410).
    const marked = v.mark(6, PERP.symbol, 820);
    const types = marked.map((e) => e.event.type);
    expect(types).to.include('MarginCall');
    expect(types).to.include('LiquidationOrder');
    expect(marked.some((e) => e.event.type === 'OrderCancelled' && e.event.orderId === extra.orderId && e.event.reason === 'massCancel'), 'risk-adding order cancelled').to.equal(true);
    const liqFill = marked.find((e) => e.kind === 'book' && e.event.type === 'Fill' && e.event.takerAccount === 'thin');
    expect(liqFill, 'the liquidation order traded').to.not.equal(undefined);
    expect(v.ledgers.get('thin')!.state.positions.get(PERP.symbol)?.qty ?? 0, 'thin is flat').to.equal(0);
    expect(v.conservation()).to.deep.equal([]);
  });

  it('venue - an order the ledger refuses never reaches the book, with its reject code', () => {
    const v = new Venue([SPOT]);
    v.openAccount('poor');
    const r = v.place(1, 'poor', { symbol: 'BTC-USD', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1_000, qty: 1 });
    expect(r.orderId).to.equal(undefined);
    expect(r.rejected).to.be.a('number');
    expect(r.events.some((e) => e.kind === 'book')).to.equal(false);
    expect(v.place(1, 'poor', { symbol: 'NOPE', side: 'buy', orderType: 'limit', tif: 'GTC', price: 1, qty: 1 }).rejected).to.be.a('number');
  });
});
